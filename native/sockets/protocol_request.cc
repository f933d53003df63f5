#include "sockets/protocol_request.h"

#include <algorithm>

#include "protocol/netcode/sequence_starts.h"
#include "protocol/netcode/server_address.h"

namespace volley {
namespace {

// JavaScript checked every value; a direct caller's NaN, negative or zero one gives the default, and a huge
// one the largest allowed (an interval of 0 would fire the timer on every loop turn).
uint64_t AtLeastOne(double given, uint64_t fallback, double max) {
  return given >= 1 ? static_cast<uint64_t>(std::min(given, max)) : fallback;
}

double FiniteOr(double value, double fallback) { return std::isfinite(value) ? value : fallback; }

DeliveryOptions ReadDelivery(const ProtocolRequest& request, uint64_t nowUs) {
  DeliveryOptions out;
  if (!request.hasChannels) return out;
  out.enabled = true;
  out.config.channels = request.channels;
  out.config.maxMessageBytes = AtLeastOne(request.maxMessageBytes, out.config.maxMessageBytes, 1 << 30);
  out.queueLimitBytes = AtLeastOne(request.sendQueueBytes, 8u << 20, 1 << 30);
  out.config.sendQueueBytes = out.queueLimitBytes * 4;  // JavaScript's limit; the core's own is four times it
  out.config.reliableWindow = static_cast<uint32_t>(AtLeastOne(request.reliableWindow, out.config.reliableWindow, 65536));
  out.config.fragmentTimeoutUs = AtLeastOne(request.fragmentTimeoutUs, out.config.fragmentTimeoutUs, kMaxIntervalUs);
  out.config.pingIntervalUs = AtLeastOne(request.pingIntervalUs, out.config.pingIntervalUs, kMaxIntervalUs);
  // A server's (a client's are 0: no stall, no shared budget).
  out.config.reliableStallUs = AtLeastOne(request.reliableStallUs, 0, kMaxIntervalUs);
  out.reassemblyBudgetBytes = AtLeastOne(request.reassemblyBudgetBytes, 0, kMaxExactInteger);
  if (request.skewedClock) {
    out.clock.offsetUs = static_cast<uint64_t>(std::clamp(FiniteOr(request.clockOffsetUs, 0), 0.0, kMaxClockOffsetUs));
    out.clock.drift = std::clamp(FiniteOr(request.clockDriftPpm, 0), -1000.0, 1000.0) * 1e-6;
    out.clock.startUs = nowUs;
  }
  return out;
}

MadeProtocol Refuse(ProtocolRequestError* error, ProtocolRequestError::Kind kind, std::string message) {
  error->kind = kind;
  error->message = std::move(message);
  return {};
}

}  // namespace

bool ParseChannelMode(const std::string& name, delivery::ChannelMode* out) {
  if (name == "reliable") *out = delivery::ChannelMode::kReliable;
  else if (name == "unreliable") *out = delivery::ChannelMode::kUnreliable;
  else if (name == "sequenced") *out = delivery::ChannelMode::kSequenced;
  else return false;
  return true;
}

MadeProtocol MakeSocketProtocol(const ProtocolRequest& request, uint16_t boundPort, uint64_t nowUs, ProtocolRequestError* error) {
  using Kind = ProtocolRequestError::Kind;
  if (request.hasChannels && (request.channels.empty() || request.channels.size() > 255)) {
    return Refuse(error, Kind::kRange, "channels: 1 to 255 of them");
  }
  const uint32_t disconnectPackets =
      request.disconnectPackets >= 0 ? static_cast<uint32_t>(std::min(request.disconnectPackets, 100.0)) : netcode::kDefaultDisconnectPackets;
  const DeliveryOptions delivery = ReadDelivery(request, nowUs);
  MadeProtocol made;
  if (!request.server) {
    netcode::ClientConfig config;
    config.sequenceBase = netcode::RandomSequenceBase();
    config.requestIntervalUs = AtLeastOne(request.requestIntervalUs, config.requestIntervalUs, kMaxIntervalUs);
    config.keepAliveIntervalUs = AtLeastOne(request.keepAliveIntervalUs, config.keepAliveIntervalUs, kMaxIntervalUs);
    config.disconnectIntervalUs = AtLeastOne(request.disconnectIntervalUs, config.disconnectIntervalUs, kMaxIntervalUs);
    config.disconnectPackets = disconnectPackets;
    auto client = std::make_unique<NetcodeClientProtocol>(config, delivery);
    made.peerCounters = client->peerCounters();
    made.protocol = std::move(client);
    return made;
  }
  if (!request.hasProtocolId || !request.hasPrivateKey) {
    return Refuse(error, Kind::kType, "a server protocol needs protocolId (bigint) and privateKey (32 bytes)");
  }
  netcode::ServerConfig config;
  config.sequenceBase = netcode::RandomSequenceBase();
  config.globalSequenceStart = netcode::RandomGlobalSequenceStart();
  config.challengeSequenceStart = request.challengeSequenceStart >= 0 && request.challengeSequenceStart <= kMaxExactInteger
                                      ? static_cast<uint64_t>(request.challengeSequenceStart)
                                      : netcode::ChallengeSequenceStart();
  config.protocolId = request.protocolId;
  std::memcpy(config.privateKey, request.privateKey, netcode::kKeyBytes);
  config.previousKeyCount = std::min<uint32_t>(request.previousKeyCount, netcode::kMaxPrivateKeys - 1);
  std::copy(request.previousKeys, request.previousKeys + config.previousKeyCount, config.previousKeys);
  std::string address = request.publicAddress;
  if (address.size() > 2 && address.compare(address.size() - 2, 2, ":0") == 0) {
    address = address.substr(0, address.size() - 1) + std::to_string(boundPort);
  }
  if (!netcode::ParseServerAddress(address, &config.publicAddress)) {
    return Refuse(error, Kind::kType, "publicAddress '" + address + "' is not 'a.b.c.d:port' or '[v6]:port' that clients can send to");
  }
  if (!(request.maxClients >= 1 && request.maxClients <= kMaxClientsLimit)) {
    return Refuse(error, Kind::kRange, "maxClients must be 1.." + std::to_string(kMaxClientsLimit));
  }
  config.maxClients = static_cast<uint32_t>(request.maxClients);
  config.keepAliveIntervalUs = AtLeastOne(request.keepAliveIntervalUs, config.keepAliveIntervalUs, kMaxIntervalUs);
  config.disconnectIntervalUs = AtLeastOne(request.disconnectIntervalUs, config.disconnectIntervalUs, kMaxIntervalUs);
  config.disconnectPackets = disconnectPackets;
  uint8_t challengeKey[netcode::kKeyBytes];
  randombytes_buf(challengeKey, sizeof(challengeKey));  // made at each start, never leaves the server
  auto server = std::make_unique<NetcodeServerProtocol>(config, challengeKey, delivery);
  sodium_memzero(challengeKey, sizeof(challengeKey));
  made.peerCounters = server->peerCounters();
  made.publicAddress = config.publicAddress;
  made.protocol = std::move(server);
  return made;
}

}  // namespace volley
