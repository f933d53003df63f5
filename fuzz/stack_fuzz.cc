// Fuzz target: the engine's protocol glue (native/sockets/netcode_sockets.cc) with the delivery layer on, as the
// engine drives it: a NetcodeServerProtocol and a NetcodeClientProtocol on a link the input controls
// (loss, duplication, reordering, timing), messages of any size both ways (large ones parked for
// JavaScript), control requests (disconnects, stops, watches), and a hostile client whose own payload
// packets (encrypted under its real key, so they pass netcode) carry arbitrary delivery bytes.
// Checked besides memory safety (ASan, UBSan):
//   - every record handed to JavaScript is well formed: a known kind, a peer within maxClients, a length
//     within the records; a large payload's bytes are parked under its id, with its length; a settings
//     record once per connection, with valid modes, ahead of the connection's first message;
//   - while nothing forged has reached the server, the client's settings arrive as they are and no
//     connection ends for a mismatch of channels (both sides have the same);
//   - while nothing forged has reached the server, the client's messages arrive intact, in order on
//     reliable channels, never twice;
//   - no protocol timer stays due after a few turns (the engine's thread would spin).
#include <sodium.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <vector>

#include "protocol/delivery/link_stats.h"
#include "fuzz_input.h"
#include "fuzz_messages.h"
#include "sockets/large_messages.h"
#include "protocol/netcode/packet.h"
#include "netcode_fixtures.h"
#include "sockets/netcode_sockets.h"

namespace {

using namespace volley;
using namespace volley::fuzz;
using netcode::Clock;

constexpr uint32_t kMaxClients = 2;
constexpr size_t kMaxQueued = 256;

// Checks each record the server's protocol hands JavaScript.
struct ServerRecords {
  explicit ServerRecords(const netcode::ServerConfig* serverConfig, const DeliveryOptions* options, LargeMessages* parked)
      : config(serverConfig), settings(&options->config), large(parked), delivered(&options->config) {}

  const netcode::ServerConfig* config;
  const delivery::DeliveryConfig* settings;  // both sides'
  LargeMessages* large;
  // `unchecked` once something forged reached the server, or the connection ended (a new one starts its
  // channels afresh): then only the records' form is checked.
  DeliveredMessages delivered;
  bool connected = false;
  bool settingsSeen = false;  // of the connected peer
  uint32_t peer = 0;
  uint32_t slotEnds[kMaxClients] = {};  // disconnect records by slot: with the slot, JavaScript's name for a peer

  // The connected peer as JavaScript names it in sends (socket_protocol.h: kPeerSlotBits).
  uint32_t Tag() const { return peer | (slotEnds[peer] & 0xfff) << kPeerSlotBits; }

  void Message(uint8_t channel, const uint8_t* data, size_t size) { delivered.Check(channel, data, size); }

  void Record(uint8_t kind, uint8_t code, uint32_t recordPeer, const uint8_t* data, uint32_t length) {
    if (recordPeer >= config->maxClients) Fail("a record for a peer beyond maxClients");
    switch (kind) {
      case kPeerPayload:
        if (!settingsSeen) Fail("a message before the peer's settings");  // JavaScript announces the peer on them
        Message(code, data, length);
        break;
      case kPeerLargePayload: {
        if (!settingsSeen) Fail("a message before the peer's settings");
        if (length != 8) Fail("a large payload record of the wrong size");
        uint32_t id = 0, size = 0;
        std::memcpy(&id, data, 4);
        std::memcpy(&size, data + 4, 4);
        std::vector<uint8_t> bytes;
        if (!large->Take(id, &bytes) || bytes.size() != size) Fail("a large payload not parked as its record says");
        if (size <= kLargeMessageBytes) Fail("a large payload record for a small message");
        Message(code, bytes.data(), bytes.size());
        break;
      }
      case kPeerConnect:
        if (connected) Fail("a second connect while connected");  // one client
        connected = true;
        settingsSeen = false;
        peer = recordPeer;
        break;
      case kPeerSettings: {
        if (!connected || recordPeer != peer) Fail("settings for a peer that is not connected");
        if (settingsSeen) Fail("a second settings record for one connection");
        settingsSeen = true;
        if (length < 5 || length > 4 + delivery::kMaxChannels) Fail("a settings record of the wrong size");
        uint32_t maxMessageBytes = 0;
        std::memcpy(&maxMessageBytes, data, 4);
        if (maxMessageBytes < 1 || maxMessageBytes > delivery::kMaxMessageBytesLimit) Fail("a settings record's largest message out of range");
        for (uint32_t i = 4; i < length; ++i) {
          if (data[i] < 1 || data[i] > 3) Fail("a settings record with an unknown mode");
        }
        if (!delivered.unchecked) {
          bool same = maxMessageBytes == settings->maxMessageBytes && length - 4 == settings->channels.size();
          for (uint32_t i = 4; same && i < length; ++i) same = data[i] == static_cast<uint8_t>(settings->channels[i - 4]);
          if (!same) Fail("the client's settings misreported");
        }
        break;
      }
      case kPeerDisconnect:
        if (!connected || recordPeer != peer) Fail("a disconnect for a peer that is not connected");
        if (code < 1 || code > kDisconnectReassemblyStalled) Fail("a disconnect record with an unknown reason");
        // The peer's last counters and, with channels, its link row.
        if (length != kFinalReadingsCounters * sizeof(double) &&
            length != (kFinalReadingsCounters + delivery::kLinkFieldCount) * sizeof(double)) {
          Fail("a disconnect record of the wrong size");
        }
        // (kDisconnectSettingsLate may come for the same settings: the link lost all the client sent for the wait.)
        if (code == kDisconnectChannelsMismatch && !delivered.unchecked) Fail("a mismatch of channels between two sides with the same");
        connected = false;
        ++slotEnds[peer];
        delivered.unchecked = true;
        break;
      case kPeerDrain: break;
      default: Fail("a record of an unknown kind");
    }
  }
};

// Takes the records a protocol handed JavaScript since the last call: visit(kind, code, peer, data, length)
// for each, after checking that it lies within them.
template <typename Visit>
void TakeRecords(ProtocolOutput& output, Visit visit) {
  const std::vector<uint8_t>& records = output.records;
  size_t at = output.recordsStart;
  for (uint32_t n = 0; n < output.recordCount; ++n) {
    if (records.size() - at < kPeerRecordHeaderSize) Fail("a record header past the end");
    uint32_t length = 0, peer = 0;
    std::memcpy(&length, records.data() + at, 4);
    std::memcpy(&peer, records.data() + at + 8, 4);
    if (records.size() - at - kPeerRecordHeaderSize < length) Fail("a record's data past the end");
    visit(records[at + 4], records[at + 5], peer, records.data() + at + kPeerRecordHeaderSize, length);
    at += (kPeerRecordHeaderSize + length + 7) & ~size_t{7};
  }
  output.records.clear();
  output.recordsStart = 0;
  output.recordCount = 0;
}

struct Datagram {
  bool toServer;
  std::vector<uint8_t> bytes;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool ready = sodium_init() >= 0;
  if (!ready) Fail("sodium_init");
  FuzzInput in(data, size);

  const ServerAddress serverAddress = Address(127, 0, 0, 1, 40000);
  const ServerAddress clientAddress = Address(10, 0, 0, 1, 5000);
  netcode::ServerConfig config;
  config.protocolId = kProtocolId;
  for (size_t i = 0; i < kKeyBytes; ++i) config.privateKey[i] = static_cast<uint8_t>(i * 3 + 1);
  config.publicAddress = serverAddress;
  config.maxClients = kMaxClients;
  DeliveryOptions delivery;
  delivery.enabled = true;
  delivery.config.channels.clear();
  const uint8_t shape = in.Byte();
  const size_t channelCount = 1 + shape % 3;
  for (size_t i = 0; i < channelCount; ++i) delivery.config.channels.push_back(static_cast<delivery::ChannelMode>(1 + (shape >> (2 + i)) % 3));
  delivery.config.maxMessageBytes = 1 + in.Number(3) % 200000;  // past kLargeMessageBytes: parked for JavaScript
  delivery.config.sendQueueBytes = 1u << 30;  // never full here: a refused send would be a gap in the checks
  delivery.queueLimitBytes = 1 << 20;
  // The server's own: a reassembly budget its connections share (none, or a tight one, so that they evict each
  // other), and the stall timer.
  DeliveryOptions serverDelivery = delivery;
  const uint8_t budget = in.Byte();
  serverDelivery.reassemblyBudgetBytes = budget % 2 == 0 ? 0 : delivery.config.maxMessageBytes + (1 << 20) + uint64_t{budget} * 4096;
  serverDelivery.config.reliableStallUs = 20000000;
  uint8_t challengeKey[kKeyBytes] = {7};
  NetcodeServerProtocol server(config, challengeKey, serverDelivery);
  NetcodeClientProtocol client(netcode::ClientConfig{}, delivery);
  const auto large = std::make_shared<LargeMessages>();
  server.output.large = large;
  client.output.large = large;
  Keys keys;
  for (size_t k = 0; k < kKeyBytes; ++k) {
    keys.clientToServer[k] = static_cast<uint8_t>(k);
    keys.serverToClient[k] = static_cast<uint8_t>(k + 100);
  }

  ServerRecords records(&config, &delivery, large.get());

  std::deque<Datagram> link;
  Clock now{1000000, kUnixStart};
  bool clientConnected = false;
  uint64_t forgedSequence = uint64_t{1} << 40;  // above anything the client sends: the replay window takes it
  // After every step, as the engine does: datagrams from both outboxes onto the link, records checked.
  const auto settle = [&] {
    for (SocketProtocol* protocol : {static_cast<SocketProtocol*>(&server), static_cast<SocketProtocol*>(&client)}) {
      ProtocolOutput& output = protocol->output;
      for (size_t i = 0; i < output.outboxCount; ++i) {
        const ProtocolOutput::Datagram& datagram = output.outbox[i];
        if (link.size() == kMaxQueued) link.pop_front();
        link.push_back(Datagram{protocol == &client, std::vector<uint8_t>(datagram.data, datagram.data + datagram.size)});
      }
      output.outboxCount = 0;
    }
    TakeRecords(server.output, [&](uint8_t kind, uint8_t code, uint32_t peer, const uint8_t* bytes, uint32_t length) {
      records.Record(kind, code, peer, bytes, length);
    });
    // The client's messages are the delivery target's to check; here only whether it is connected.
    const bool wasConnected = clientConnected;
    TakeRecords(client.output, [&](uint8_t kind, uint8_t code, uint32_t, const uint8_t*, uint32_t length) {
      if (kind == kClientState) clientConnected = static_cast<int8_t>(code) == 3;
      // The server sends nothing forged: the client never finds a mismatch. It may give up waiting for the
      // server's settings (the wait in the record's data) when the link lost all the server sent.
      if (kind == kClientState && static_cast<int8_t>(code) == kClientStateChannelsMismatch && length != 4) Fail("the client found a mismatch of channels");
    });
    if (wasConnected && !clientConnected) records.delivered.unchecked = true;
  };

  while (!in.empty()) {
    switch (in.Byte() % 9) {
      case 0: {  // the client connects
        const int32_t timeout = static_cast<int32_t>(in.Byte() % 16) + 1;
        const std::vector<uint8_t> token = Token(0, config.privateKey, serverAddress, timeout, now.unixSeconds, keys);
        client.Control(kControlConnect, 0, token, now);
        break;
      }
      case 1: {  // the link carries some datagrams: each lost, delivered, delivered twice or held back; or
                 // everything on it, delivered once (so that large transfers get somewhere)
        const uint8_t how = in.Byte();
        const size_t count = how >= 240 ? link.size() : how % 16;
        for (size_t i = 0; i < count && !link.empty(); ++i) {
          Datagram datagram = std::move(link.front());
          link.pop_front();
          const uint8_t fate = how >= 240 ? 1 : in.Byte() % 4;
          if (fate == 3) {
            link.push_back(std::move(datagram));
            continue;
          }
          for (int copy = 0; copy < fate; ++copy) {
            if (datagram.toServer) {
              server.Receive(clientAddress, datagram.bytes.data(), datagram.bytes.size(), now);
            } else {
              client.Receive(serverAddress, datagram.bytes.data(), datagram.bytes.size(), now);
            }
          }
        }
        server.EndBatch(now);
        client.EndBatch(now);
        break;
      }
      case 2: {  // time passes: by an amount, or to the next deadline of either
        const uint64_t step = in.Number(3);
        const uint64_t due = std::min(server.NextDeadlineUs(), client.NextDeadlineUs());
        now.monotonicUs = (step & 1) && due > now.monotonicUs && due - now.monotonicUs < 60000000 ? due : now.monotonicUs + step;
        now.unixSeconds = kUnixStart + (now.monotonicUs - 1000000) / 1000000;
        for (SocketProtocol* protocol : {static_cast<SocketProtocol*>(&server), static_cast<SocketProtocol*>(&client)}) {
          int turns = 0;
          do {
            protocol->Update(now);
          } while (protocol->NextDeadlineUs() <= now.monotonicUs && ++turns < 4);
          if (protocol->NextDeadlineUs() <= now.monotonicUs) Fail("a protocol's timer still due after four turns");
        }
        break;
      }
      case 3: {  // the client sends a message of any size, owned when large (as the engine hands it over)
        if (!clientConnected) break;  // JavaScript refuses it
        const uint8_t channel = in.Byte() % channelCount;
        std::vector<uint8_t> message(5 + in.Number(3) % (delivery.config.maxMessageBytes + 1));
        if (message.size() > delivery.config.maxMessageBytes) break;  // JavaScript refuses it
        FillMessage(channel, records.delivered.sent[channel], &message);
        ++records.delivered.sent[channel];
        if (in.Byte() & 1) {
          client.SendOwned(0, channel, std::move(message), now);
        } else {
          client.Send(0, channel, message.data(), message.size(), now);
        }
        client.EndBatch(now);
        break;
      }
      case 4: {  // the server sends
        const uint8_t channel = in.Byte() % channelCount;
        std::vector<uint8_t> message(1 + in.Number(2) % 3000);
        server.Send(records.Tag(), channel, message.data(), message.size(), now);
        server.EndBatch(now);
        break;
      }
      case 5: {  // the client's own key, arbitrary delivery bytes: a hostile peer's payload packet
        size_t length = 0;
        const uint8_t* bytes = in.Bytes(netcode::kMaxPayloadBytes, &length);
        uint8_t packet[netcode::kMaxPacketBytes];
        const size_t packetSize =
            netcode::EncryptPacket(netcode::kPayload, forgedSequence++, bytes, length, kProtocolId, keys.clientToServer, packet);
        if (packetSize == 0) break;
        records.delivered.unchecked = true;
        server.Receive(clientAddress, packet, packetSize, now);
        server.EndBatch(now);
        break;
      }
      case 6: {  // requests from JavaScript
        const uint8_t what = in.Byte() % 5;
        const std::vector<uint8_t> none;
        if (what == 0) server.Control(kControlWatchPeer, in.Byte() % (kMaxClients + 1), none, now);
        if (what == 1) client.Control(kControlWatchPeer, 0, none, now);
        if (what == 2) server.Control(kControlDisconnectPeer, in.Byte() % (kMaxClients + 1), none, now);
        if (what == 3) client.Control(kControlDisconnect, 0, none, now);
        if (what == 4 && in.Byte() == 0xff) server.Control(kControlStop, 0, none, now);
        break;
      }
      case 7: {  // a datagram on the link, cut short or with bytes overwritten
        if (link.empty()) break;
        Datagram& datagram = link[in.Number(2) % link.size()];
        datagram.bytes = Tampered(in, std::move(datagram.bytes));
        break;
      }
      case 8: {  // counters, as JavaScript reads them
        double counters[32];
        server.CopyCounters(counters, 32);
        client.CopyCounters(counters, 32);
        break;
      }
    }
    settle();
  }
  return 0;
}
