#include "sockets/socket_protocol.h"

#include <cstring>

#include "sockets/network_simulator.h"
#include "util/align.h"

namespace volley {

SocketProtocol::SocketProtocol() = default;
SocketProtocol::~SocketProtocol() = default;

void ProtocolOutput::Send(const netcode::ServerAddress& to, const uint8_t* data, size_t size, bool socketIsV6) {
  if (size > kMaxProtocolDatagram) return;
  // Grows by doubling from a few entries, then is reused: a quiet client keeps ~5 KiB, a busy server at most
  // kOutboxDrainAt entries.
  if (outboxCount >= kOutboxDrainAt && drain) drain();
  if (outboxCount == outbox.size()) outbox.resize(outbox.empty() ? 4 : outbox.size() * 2);
  Datagram& datagram = outbox[outboxCount++];
  datagram.nameLength = ToSockaddr(to.ip, to.port, socketIsV6, &datagram.name);
  datagram.size = static_cast<uint16_t>(size);
  std::memcpy(datagram.data, data, size);
}

uint8_t* ProtocolOutput::Record(PeerRecordKind kind, uint8_t code, uint32_t peer, const netcode::ServerAddress* address,
                                size_t size) {
  const size_t at = records.size();
  records.resize(at + Align8(kPeerRecordHeaderSize + size));
  uint8_t* record = records.data() + at;
  std::memset(record, 0, kPeerRecordHeaderSize);
  const auto length = static_cast<uint32_t>(size);
  std::memcpy(record, &length, 4);
  record[4] = kind;
  record[5] = code;
  std::memcpy(record + 8, &peer, 4);
  if (address != nullptr) {
    std::memcpy(record + 6, &address->port, 2);
    record[12] = address->ip.family;
    std::memcpy(record + 16, address->ip.bytes, 16);
  }
  ++recordCount;
  return record + kPeerRecordHeaderSize;
}

void ProtocolOutput::Payload(uint8_t channel, uint32_t peer, const uint8_t* data, size_t size, std::vector<uint8_t>* owned) {
  if (size <= kLargeMessageBytes || !large) {
    std::memcpy(Record(kPeerPayload, channel, peer, nullptr, size), data, size);
    return;
  }
  const uint32_t id = large->Park(owned != nullptr ? std::move(*owned) : std::vector<uint8_t>(data, data + size));
  uint8_t* record = Record(kPeerLargePayload, channel, peer, nullptr, 8);
  std::memcpy(record, &id, 4);
  const auto length = static_cast<uint32_t>(size);
  std::memcpy(record + 4, &length, 4);
}

}  // namespace volley
