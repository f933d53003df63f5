#include "netcode_sockets.h"

#include <cstring>

namespace volley {

namespace {

size_t CopyFields(const uint64_t* fields, size_t count, double* out, size_t capacity) {
  const size_t n = count < capacity ? count : capacity;
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<double>(fields[i]);
  return n;
}

}  // namespace

// --- server ---

NetcodeServerProtocol::NetcodeServerProtocol(const netcode::ServerConfig& config,
                                             const uint8_t challengeKey[netcode::kKeyBytes])
    : core_(config, challengeKey, this) {}

void NetcodeServerProtocol::Receive(const netcode::ServerAddress& from, const uint8_t* data, size_t size,
                                    const netcode::Clock& now) {
  core_.Receive(from, data, size, now);
}

void NetcodeServerProtocol::Update(const netcode::Clock& now) { core_.Update(now); }

void NetcodeServerProtocol::Send(uint32_t peer, const uint8_t* data, size_t size, const netcode::Clock& now) {
  core_.SendPayload(peer, data, size, now);  // a peer that left meanwhile: nothing to send to
}

void NetcodeServerProtocol::Control(uint32_t op, uint32_t arg, const std::vector<uint8_t>&, const netcode::Clock& now) {
  if (op == kControlDisconnectPeer) core_.Disconnect(arg, now);
  if (op == kControlStop) core_.Stop(now);
}

size_t NetcodeServerProtocol::CopyCounters(double* out, size_t capacity) const {
  const netcode::ServerCounters& c = core_.counters();
  const uint64_t fields[] = {c.packetsIn,        c.bytesIn,        c.packetsOut,   c.bytesOut,
                             c.malformed,        c.replayed,       c.decryptionFailed,
                             c.unknownAddress,   c.tokenRefused,   c.denied,       core_.connectedClients(),
                             output.sendDropped};
  return CopyFields(fields, sizeof(fields) / sizeof(fields[0]), out, capacity);
}

void NetcodeServerProtocol::SendPacket(const netcode::ServerAddress& to, const uint8_t* data, size_t size) {
  output.Send(to, data, size, socketIsV6);
}

void NetcodeServerProtocol::Connected(uint32_t index, uint64_t clientId, const netcode::ServerAddress& from,
                                      const uint8_t* userData) {
  uint8_t* data = output.Record(kPeerConnect, 0, index, &from, 8 + netcode::kUserDataBytes);
  std::memcpy(data, &clientId, 8);
  std::memcpy(data + 8, userData, netcode::kUserDataBytes);
}

void NetcodeServerProtocol::Disconnected(uint32_t index, netcode::DisconnectReason reason) {
  output.Record(kPeerDisconnect, static_cast<uint8_t>(reason), index, nullptr, 0);
}

void NetcodeServerProtocol::Payload(uint32_t index, const uint8_t* data, size_t size) {
  std::memcpy(output.Record(kPeerPayload, 0, index, nullptr, size), data, size);
}

// --- client ---

NetcodeClientProtocol::NetcodeClientProtocol(const netcode::ClientConfig& config) : core_(config, this) {}

void NetcodeClientProtocol::Receive(const netcode::ServerAddress& from, const uint8_t* data, size_t size,
                                    const netcode::Clock& now) {
  core_.Receive(from, data, size, now);
}

void NetcodeClientProtocol::Update(const netcode::Clock& now) { core_.Update(now); }

void NetcodeClientProtocol::Send(uint32_t, const uint8_t* data, size_t size, const netcode::Clock& now) {
  core_.SendPayload(data, size, now);
}

void NetcodeClientProtocol::Control(uint32_t op, uint32_t, const std::vector<uint8_t>& data, const netcode::Clock& now) {
  if (op == kControlConnect) core_.Connect(data.data(), data.size(), now);
  if (op == kControlDisconnect || op == kControlStop) {
    core_.Disconnect(now);
    if (op == kControlStop) stopping_ = true;
  }
}

size_t NetcodeClientProtocol::CopyCounters(double* out, size_t capacity) const {
  const netcode::ClientCounters& c = core_.counters();
  const uint64_t fields[] = {c.packetsIn, c.bytesIn,          c.packetsOut,     c.bytesOut,
                             c.malformed, c.replayed,         c.decryptionFailed, c.unknownAddress,
                             core_.clientIndex(), core_.maxClients(), output.sendDropped};
  return CopyFields(fields, sizeof(fields) / sizeof(fields[0]), out, capacity);
}

void NetcodeClientProtocol::SendPacket(const netcode::ServerAddress& to, const uint8_t* data, size_t size) {
  output.Send(to, data, size, socketIsV6);
}

void NetcodeClientProtocol::StateChanged(netcode::ClientState state) {
  output.Record(kClientState, static_cast<uint8_t>(static_cast<int8_t>(state)), 0, nullptr, 0);
}

void NetcodeClientProtocol::Payload(const uint8_t* data, size_t size) {
  std::memcpy(output.Record(kPeerPayload, 0, 0, nullptr, size), data, size);
}

}  // namespace volley
