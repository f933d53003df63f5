// Fuzz target: the netcode 1.02 server and clients (sans-IO cores) on a link the input controls, with
// forged, tampered and replayed packets on their way to either side, and connection requests whose
// private tokens hold arbitrary bytes sealed under the server's real key (so the token parser is reached).
// Checked besides memory safety (ASan, UBSan):
//   - a packet that no honest side made (forged bytes, or a real packet with any byte changed or cut
//     short) is never answered and changes no connection: no packet out, no event;
//   - a datagram delivered twice has no effect the second time (no event: replay protection);
//   - the server's reply to a datagram is never larger than it (no amplification);
//   - connect and disconnect events pair up per slot, and no more clients connect than maxClients;
//   - nothing sent is larger than the largest netcode packet.
#include <sodium.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <vector>

#include "fuzz_input.h"
#include "netcode_fixtures.h"
#include "protocol/netcode/client.h"
#include "protocol/netcode/packet.h"
#include "protocol/netcode/server.h"
#include "protocol/netcode/wire.h"

namespace {

using namespace volley::netcode;
using namespace volley::fuzz;

constexpr size_t kClients = 4;
constexpr size_t kMaxQueued = 256;

struct Datagram {
  ServerAddress from, to;
  std::vector<uint8_t> bytes;
};

struct Wire {
  std::deque<Datagram> queued;
  uint64_t sent = 0;
  size_t largest = 0;  // the largest datagram sent since it was last reset
  void Add(const ServerAddress& from, const ServerAddress& to, const uint8_t* data, size_t size) {
    if (size == 0 || size > kMaxPacketBytes) Fail("a packet of an impossible size was sent");
    ++sent;
    largest = std::max(largest, size);
    if (queued.size() == kMaxQueued) queued.pop_front();
    queued.push_back(Datagram{from, to, std::vector<uint8_t>(data, data + size)});
  }
};

struct ServerSide : DatagramOut {
  Wire* wire = nullptr;
  ServerAddress self;
  uint32_t maxClients = 0;
  std::vector<bool> connected;
  uint64_t events = 0;
  void Send(const ServerAddress& to, const uint8_t* data, size_t size) override { wire->Add(self, to, data, size); }
  // The events of a call, checked as the engine takes them.
  void Poll(ServerCore& core) {
    ServerEvent event;
    while (core.PollEvent(&event)) {
      ++events;
      const uint32_t index = event.client;
      switch (event.type) {
        case ServerEvent::Type::kConnected:
          if (index >= maxClients || connected[index]) Fail("a connect event for a slot that is taken or does not exist");
          connected[index] = true;
          break;
        case ServerEvent::Type::kDisconnected:
          if (index >= maxClients || !connected[index]) Fail("a disconnect event for a slot that is not connected");
          connected[index] = false;
          break;
        case ServerEvent::Type::kPayload:
          if (index >= maxClients || !connected[index]) Fail("a payload from a slot that is not connected");
          if (event.size == 0 || event.size > kMaxPayloadBytes) Fail("a payload of an impossible size");
          break;
        case ServerEvent::Type::kPeerTimer: Fail("a peer timer with no layer above"); break;
      }
    }
  }
};

struct ClientSide : DatagramOut {
  Wire* wire = nullptr;
  ServerAddress self;
  uint64_t events = 0;
  void Send(const ServerAddress& to, const uint8_t* data, size_t size) override { wire->Add(self, to, data, size); }
  void Poll(ClientCore& core) {
    ClientEvent event;
    while (core.PollEvent(&event)) {
      ++events;
      if (event.type == ClientEvent::Type::kPayload && (event.size == 0 || event.size > kMaxPayloadBytes)) Fail("a payload of an impossible size");
    }
  }
};

// The cores as the engine drives them: their events polled after each call.
struct Server : ServerCore {
  ServerSide& side;
  Server(const ServerConfig& config, const uint8_t* challengeKey, ServerSide& out) : ServerCore(config, challengeKey, &out), side(out) {}
  void Receive(const ServerAddress& from, const uint8_t* data, size_t size, const Clock& now) {
    ServerCore::Receive(from, data, size, now);
    side.Poll(*this);
  }
  void Update(const Clock& now) {
    ServerCore::Update(now);
    side.Poll(*this);
  }
  bool SendPayload(uint32_t index, const uint8_t* data, size_t size, const Clock& now) {
    const bool sent = ServerCore::SendPayload(index, data, size, now);
    side.Poll(*this);
    return sent;
  }
  void Disconnect(uint32_t index, const Clock& now) {
    ServerCore::Disconnect(index, now);
    side.Poll(*this);
  }
  void Stop(const Clock& now) {
    ServerCore::Stop(now);
    side.Poll(*this);
  }
};

struct Client : ClientCore {
  ClientSide& side;
  explicit Client(ClientSide& out) : ClientCore(ClientConfig{}, &out), side(out) {}
  void Connect(const uint8_t* token, size_t size, const Clock& now) {
    ClientCore::Connect(token, size, now);
    side.Poll(*this);
  }
  void Receive(const ServerAddress& from, const uint8_t* data, size_t size, const Clock& now) {
    ClientCore::Receive(from, data, size, now);
    side.Poll(*this);
  }
  void Update(const Clock& now) {
    ClientCore::Update(now);
    side.Poll(*this);
  }
  bool SendPayload(const uint8_t* data, size_t size, const Clock& now) {
    const bool sent = ClientCore::SendPayload(data, size, now);
    side.Poll(*this);
    return sent;
  }
  void Disconnect(const Clock& now) {
    ClientCore::Disconnect(now);
    side.Poll(*this);
  }
};

// A connection request whose private token is `plain` (padded with zeros), sealed under the server's key
// as the standard says (associated data: version info, protocol id, expiry): only its contents are wrong.
std::vector<uint8_t> RequestWithPrivateBytes(const uint8_t* plain, size_t size, const uint8_t privateKey[kKeyBytes], uint64_t expire) {
  uint8_t padded[kPrivateConnectTokenBytes - kMacBytes] = {};
  std::memcpy(padded, plain, std::min(size, sizeof(padded)));
  uint8_t associated[kVersionInfoBytes + 16];
  WireWriter ad(associated, sizeof(associated));
  ad.Bytes(kVersionInfo, kVersionInfoBytes);
  ad.U64(kProtocolId);
  ad.U64(expire);
  uint8_t nonce[kConnectTokenNonceBytes] = {0x5a};
  std::vector<uint8_t> request(kConnectionRequestBytes);
  WireWriter writer(request.data(), request.size());
  writer.U8(kConnectionRequest);
  writer.Bytes(kVersionInfo, kVersionInfoBytes);
  writer.U64(kProtocolId);
  writer.U64(expire);
  writer.Bytes(nonce, sizeof(nonce));
  unsigned long long sealed = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(request.data() + writer.offset(), &sealed, padded, sizeof(padded), associated,
                                             sizeof(associated), nullptr, nonce, privateKey);
  return request;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool ready = sodium_init() >= 0;
  if (!ready) Fail("sodium_init");
  FuzzInput in(data, size);
  Wire wire;
  const ServerAddress serverAddress = Address(127, 0, 0, 1, 40000);
  ServerConfig config;
  config.protocolId = kProtocolId;
  for (size_t i = 0; i < kKeyBytes; ++i) config.privateKey[i] = static_cast<uint8_t>(i * 3 + 1);
  config.publicAddress = serverAddress;
  config.maxClients = 1 + in.Byte() % kClients;
  config.disconnectPackets = 1 + in.Byte() % 10;
  uint8_t challengeKey[kKeyBytes];
  for (size_t i = 0; i < kKeyBytes; ++i) challengeKey[i] = static_cast<uint8_t>(200 - i);
  ServerSide serverSide;
  serverSide.wire = &wire;
  serverSide.self = serverAddress;
  serverSide.maxClients = config.maxClients;
  serverSide.connected.assign(config.maxClients, false);
  Server server(config, challengeKey, serverSide);

  ClientSide clientSides[kClients];
  std::unique_ptr<Client> clients[kClients];
  Keys keys[kClients];
  for (uint32_t i = 0; i < kClients; ++i) {
    clientSides[i].wire = &wire;
    // Half of them on IPv6: the server's address tables take both families.
    const uint16_t port = static_cast<uint16_t>(5000 + i);
    clientSides[i].self = i % 2 == 0 ? Address(10, 0, 0, static_cast<uint8_t>(1 + i), port) : Address6(static_cast<uint8_t>(1 + i), port);
    clients[i] = std::make_unique<Client>(clientSides[i]);
    for (size_t k = 0; k < kKeyBytes; ++k) {
      keys[i].clientToServer[k] = static_cast<uint8_t>(i * 50 + k);
      keys[i].serverToClient[k] = static_cast<uint8_t>(i * 50 + k + 100);
    }
  }
  const ServerAddress stranger = Address(192, 168, 1, 9, 7777);
  Clock now{1000000, kUnixStart};
  uint64_t sequence = 0;  // for packets the input encrypts under a client's keys

  const auto events = [&] {
    uint64_t count = serverSide.events;
    for (const ClientSide& side : clientSides) count += side.events;
    return count;
  };
  // What must not change when a packet no honest side made is received.
  const auto quiet = [&](const char* what, auto&& receive) {
    const uint64_t before = events();
    const uint64_t sent = wire.sent;
    receive();
    if (wire.sent != sent || events() != before) Fail(what);
  };
  const auto serverReceive = [&](const ServerAddress& from, const uint8_t* bytes, size_t length) {
    wire.largest = 0;
    server.Receive(from, bytes, length, now);
    if (wire.largest > length) Fail("the server replied with a datagram larger than the one it received");
  };
  const auto deliver = [&](const Datagram& datagram) {
    if (SameServerAddress(datagram.to, serverAddress)) {
      serverReceive(datagram.from, datagram.bytes.data(), datagram.bytes.size());
      return;
    }
    for (uint32_t i = 0; i < kClients; ++i) {
      if (SameServerAddress(datagram.to, clientSides[i].self)) clients[i]->Receive(datagram.from, datagram.bytes.data(), datagram.bytes.size(), now);
    }
  };

  while (!in.empty()) {
    const uint32_t who = in.Byte() % kClients;
    switch (in.Byte() % 13) {
      case 0: {  // a client connects
        const int32_t timeout = static_cast<int32_t>(in.Byte() % 17) - 1;  // -1: never
        const std::vector<uint8_t> token = Token(who, config.privateKey, serverAddress, timeout, now.unixSeconds, keys[who]);
        clients[who]->Connect(token.data(), token.size(), now);
        break;
      }
      case 1: {  // the link carries some datagrams: each lost, delivered, delivered twice or held back
        const int count = in.Byte() % 16;
        for (int i = 0; i < count && !wire.queued.empty(); ++i) {
          Datagram datagram = std::move(wire.queued.front());
          wire.queued.pop_front();
          switch (in.Byte() % 4) {
            case 0: break;
            case 1: deliver(datagram); break;
            case 2: {
              deliver(datagram);
              const uint64_t before = events();
              deliver(datagram);
              if (events() != before) Fail("a datagram delivered twice had an effect the second time");
              break;
            }
            case 3: wire.queued.push_back(std::move(datagram)); break;
          }
        }
        break;
      }
      case 2: {  // time passes: by an amount, or to the next deadline of the server or a client
        const uint64_t step = in.Number(3);
        uint64_t due = server.NextDeadlineUs();
        for (auto& client : clients) due = std::min(due, client->NextDeadlineUs());
        const uint64_t nowUs = now.monotonicUs;
        now.monotonicUs = (step & 1) && due > nowUs && due - nowUs < 60000000 ? due : nowUs + step;
        now.unixSeconds = kUnixStart + (now.monotonicUs - 1000000) / 1000000;
        server.Update(now);
        for (auto& client : clients) client->Update(now);
        // A timer that stays due makes the engine's thread spin.
        if (server.NextDeadlineUs() <= now.monotonicUs) Fail("the server's timer is still due after Update");
        for (auto& client : clients) {
          if (client->NextDeadlineUs() <= now.monotonicUs) Fail("a client's timer is still due after Update");
        }
        break;
      }
      case 3: {  // forged bytes to the server, from a client's address or a stranger's
        size_t length = 0;
        const uint8_t* bytes = in.Bytes(1400, &length);
        const ServerAddress from = in.Byte() & 1 ? stranger : clientSides[who].self;
        quiet("the server answered forged bytes, or they changed a connection", [&] { serverReceive(from, bytes, length); });
        break;
      }
      case 4: {  // forged bytes to a client, from the server's address
        size_t length = 0;
        const uint8_t* bytes = in.Bytes(1400, &length);
        quiet("a client answered forged bytes, or they changed its state", [&] { clients[who]->Receive(serverAddress, bytes, length, now); });
        break;
      }
      case 5: {  // a packet of any type and body, encrypted under a client's key to the server (the peer
                 // itself may be hostile: its own packets pass decryption)
        size_t length = 0;
        const PacketType type = static_cast<PacketType>(1 + in.Byte() % (kPacketTypeCount - 1));
        const uint64_t packetSequence = in.Byte() & 1 ? in.Number(8) : sequence++;
        const uint8_t* body = in.Bytes(kMaxPayloadBytes + 20, &length);
        uint8_t packet[kMaxPacketBytes];
        const size_t packetSize = EncryptPacket(type, packetSequence, body, length, kProtocolId, keys[who].clientToServer, packet);
        if (packetSize > 0) serverReceive(clientSides[who].self, packet, packetSize);
        break;
      }
      case 6: {  // the same, under the server's key to a client
        size_t length = 0;
        const PacketType type = static_cast<PacketType>(1 + in.Byte() % (kPacketTypeCount - 1));
        const uint64_t packetSequence = in.Byte() & 1 ? in.Number(8) : (uint64_t{1} << 63) + sequence++;
        const uint8_t* body = in.Bytes(kMaxPayloadBytes + 20, &length);
        uint8_t packet[kMaxPacketBytes];
        const size_t packetSize = EncryptPacket(type, packetSequence, body, length, kProtocolId, keys[who].serverToClient, packet);
        if (packetSize > 0) clients[who]->Receive(serverAddress, packet, packetSize, now);
        break;
      }
      case 7: {  // a real datagram on the link, tampered with, to its destination
        if (wire.queued.empty()) break;
        const Datagram& original = wire.queued[in.Number(2) % wire.queued.size()];
        Datagram changed{original.from, original.to, Tampered(in, original.bytes)};
        if (changed.bytes == original.bytes) break;
        quiet("a tampered packet was answered, or changed a connection", [&] { deliver(changed); });
        break;
      }
      case 8: {  // a real datagram from the link, sent from a stranger's address
        if (wire.queued.empty()) break;
        Datagram copy = wire.queued[in.Number(2) % wire.queued.size()];
        if (!SameServerAddress(copy.to, serverAddress) || copy.bytes[0] == kConnectionRequest) break;
        copy.from = stranger;
        quiet("a packet replayed from another address was answered", [&] { deliver(copy); });
        break;
      }
      case 9: {  // a connection request with arbitrary private token contents
        size_t length = 0;
        const uint8_t* plain = in.Bytes(kPrivateConnectTokenBytes, &length);
        const std::vector<uint8_t> request = RequestWithPrivateBytes(plain, length, config.privateKey, now.unixSeconds + 30);
        serverReceive(clientSides[who].self, request.data(), request.size());
        break;
      }
      case 10: {  // payloads both ways, and leaving
        uint8_t payload[kMaxPayloadBytes + 1] = {};
        const size_t length = in.Number(2) % (sizeof(payload) + 1);
        const uint8_t what = in.Byte() % 4;
        if (what == 0) server.SendPayload(in.Byte() % (kClients + 1), payload, length, now);
        if (what == 1) clients[who]->SendPayload(payload, length, now);
        if (what == 2) server.Disconnect(in.Byte() % (kClients + 1), now);
        if (what == 3) clients[who]->Disconnect(now);
        break;
      }
      case 11:
        if (in.Byte() == 0xff) server.Stop(now);
        break;
      case 12: {  // a client given arbitrary bytes as its connect token (the application's input)
        size_t length = 0;
        const uint8_t* bytes = in.Bytes(kConnectTokenBytes + 8, &length);
        std::vector<uint8_t> token(bytes, bytes + length);
        if (in.Byte() & 1) {  // mostly a real token's frame, so the parse goes past its first checks
          token.resize(kConnectTokenBytes);
          std::memcpy(token.data(), kVersionInfo, kVersionInfoBytes);
        }
        clients[who]->Connect(token.data(), token.size(), now);
        break;
      }
    }
    if (server.connectedClients() > config.maxClients) Fail("more clients connected than maxClients");
    uint32_t connected = 0;
    for (bool slot : serverSide.connected) connected += slot;
    if (connected != server.connectedClients()) Fail("the events and the server disagree on who is connected");
  }
  return 0;
}
