// Micro-benchmark of the server's side of handshakes and of payloads, sans-IO: volley's ServerCore fed the
// datagrams of many ClientCores in memory, batch by batch as the engine feeds it, on a fake clock. What it
// measures is the protocol and its crypto alone (no kernel, no JavaScript):
// - the server's time per completed handshake on a fresh server, then again with new clients after the first
//   ones left (as bench:connections' rounds do), and the allocations of the second round;
// - its time per 64-byte payload when every connected client sends one, in a random order, each batch copied
//   into one receive buffer first (as the kernel writes it), fed one by one (Receive) and as a batch
//   (ReceiveBatch, which asks for the senders' memory ahead), alternately: with many clients, their tables and
//   slots are more than the cache holds.
// For comparing two versions of the server's code in one sitting, where whole-process figures move by 20-40 %
// from one minute to the next. From the repository's root:
//   g++ -std=c++17 -O2 -Wall -Wextra -Inative -o bench/.build/server-costs bench/native/server-costs.cc
//       native/protocol/netcode/*.cc native/util/address.cc /usr/lib/x86_64-linux-gnu/libsodium.a
//   bench/.build/server-costs [clients, default 30000] [rounds, default 3]
#include <sodium.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <new>
#include <random>
#include <vector>

#include "protocol/netcode/client.h"
#include "protocol/netcode/connect_token.h"
#include "protocol/netcode/server.h"
#include "counting-new.h"  // gAllocs, gAllocBytes

using namespace volley::netcode;


namespace {

constexpr size_t kBatch = 64;  // the engine's receive batch
constexpr uint64_t kProtocolId = 0x1234;
constexpr uint32_t kFirstClientAddress = (127u << 24) | (1u << 16);  // 127.1.0.0

double NowNs() {
  return std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

ServerAddress Ipv4(uint32_t address, uint16_t port) {
  ServerAddress out;
  out.ip.family = 4;
  out.ip.bytes[0] = static_cast<uint8_t>(address >> 24);
  out.ip.bytes[1] = static_cast<uint8_t>(address >> 16);
  out.ip.bytes[2] = static_cast<uint8_t>(address >> 8);
  out.ip.bytes[3] = static_cast<uint8_t>(address);
  out.port = port;
  return out;
}

// A fixed buffer, so that the harness allocates nothing while the server's calls are timed.
struct Datagram {
  ServerAddress from;
  size_t size = 0;
  uint8_t bytes[kMaxPacketBytes];
};

// Every client's packets go to the server's inbox; the server's go to the client at their address.
struct Network;

class BenchClient : public DatagramOut {
 public:
  BenchClient(Network* network, uint32_t index) : network_(network), index_(index), core(ClientConfig{}, this) {}
  void Send(const ServerAddress&, const uint8_t* data, size_t size) override;
  void Poll() {  // its events, taken as the engine takes them (none matters here)
    ClientEvent event;
    while (core.PollEvent(&event)) {
    }
  }

 private:
  Network* network_;
  uint32_t index_;

 public:
  ClientCore core;
};

class BenchServerSink : public DatagramOut {
 public:
  explicit BenchServerSink(Network* network) : network_(network) {}
  void Send(const ServerAddress& to, const uint8_t* data, size_t size) override;
  // The server's events after each call, as the engine polls them.
  void Poll(ServerCore& server) {
    ServerEvent event;
    while (server.PollEvent(&event)) {
      if (event.type == ServerEvent::Type::kConnected) ++connected;
      if (event.type == ServerEvent::Type::kPayload) ++payloads;
    }
  }
  uint64_t connected = 0;
  uint64_t payloads = 0;

 private:
  Network* network_;
};

struct Network {
  std::vector<Datagram> toServer;
  std::vector<Datagram> toClients;
};

void BenchClient::Send(const ServerAddress&, const uint8_t* data, size_t size) {
  Datagram& datagram = network_->toServer.emplace_back();
  datagram.from = Ipv4(kFirstClientAddress + index_, 50000);
  datagram.size = size;
  std::memcpy(datagram.bytes, data, size);
}

void BenchServerSink::Send(const ServerAddress& to, const uint8_t* data, size_t size) {
  Datagram& datagram = network_->toClients.emplace_back();
  datagram.from = to;
  datagram.size = size;
  std::memcpy(datagram.bytes, data, size);
}

void MakeToken(const uint8_t privateKey[kKeyBytes], uint64_t clientId, const ServerAddress& server, uint64_t nowSeconds,
               uint8_t out[kConnectTokenBytes]) {
  PrivateConnectToken secret;
  secret.clientId = clientId;
  secret.timeoutSeconds = 10;
  secret.serverAddressCount = 1;
  secret.serverAddresses[0] = server;
  randombytes_buf(secret.clientToServerKey, kKeyBytes);
  randombytes_buf(secret.serverToClientKey, kKeyBytes);
  ConnectToken token;
  token.protocolId = kProtocolId;
  token.createTimestamp = nowSeconds;
  token.expireTimestamp = nowSeconds + 3600;
  randombytes_buf(token.nonce, kConnectTokenNonceBytes);
  token.timeoutSeconds = secret.timeoutSeconds;
  token.serverAddressCount = 1;
  token.serverAddresses[0] = server;
  std::memcpy(token.clientToServerKey, secret.clientToServerKey, kKeyBytes);
  std::memcpy(token.serverToClientKey, secret.serverToClientKey, kKeyBytes);
  if (!SealPrivateConnectToken(secret, kProtocolId, token.expireTimestamp, token.nonce, privateKey, token.privateData)) {
    std::fprintf(stderr, "could not seal a token\n");
    std::exit(1);
  }
  WriteConnectToken(token, out);
}

// What the server's calls took: per handshake completed, or per payload received.
struct Round {
  double serverNsEach;
  uint64_t count;
  uint64_t allocs;
};

// Connects `count` new clients (ids from firstId), all at once; the server's time is what its Receive calls take.
Round ConnectAll(ServerCore& server, BenchServerSink& sink, Network& network, uint32_t count, uint64_t firstId,
                 const uint8_t privateKey[kKeyBytes], const ServerAddress& serverAddress, Clock& clock,
                 std::vector<std::unique_ptr<BenchClient>>* clients) {
  clients->clear();
  std::vector<uint8_t> token(kConnectTokenBytes);
  network.toServer.reserve(count);
  for (uint32_t i = 0; i < count; ++i) {
    clients->push_back(std::make_unique<BenchClient>(&network, i));
    MakeToken(privateKey, firstId + i, serverAddress, clock.unixSeconds, token.data());
    (*clients)[i]->core.Connect(token.data(), token.size(), clock);
    (*clients)[i]->Poll();
  }
  const uint64_t connectedBefore = sink.connected;
  uint64_t allocs = 0;
  double serverNs = 0;
  std::vector<Datagram> batch;
  // Every page of the buffers touched before the clock runs: a first touch costs microseconds on a VM.
  batch.resize(count);
  batch.clear();
  network.toClients.resize(size_t{count} * 2);
  network.toClients.clear();
  while (!network.toServer.empty()) {
    batch.swap(network.toServer);
    network.toServer.clear();
    for (size_t first = 0; first < batch.size(); first += kBatch) {
      const size_t end = std::min(batch.size(), first + kBatch);
      const uint64_t allocsBefore = gAllocs;
      const double start = NowNs();
      for (size_t i = first; i < end; ++i) {
        server.Receive(batch[i].from, batch[i].bytes, batch[i].size, clock);
        sink.Poll(server);
      }
      serverNs += NowNs() - start;
      allocs += gAllocs - allocsBefore;
    }
    batch.clear();
    for (Datagram& reply : network.toClients) {
      uint32_t address = (uint32_t{reply.from.ip.bytes[0]} << 24) | (uint32_t{reply.from.ip.bytes[1]} << 16) |
                         (uint32_t{reply.from.ip.bytes[2]} << 8) | reply.from.ip.bytes[3];
      const uint32_t index = address - kFirstClientAddress;
      if (index < clients->size()) {
        (*clients)[index]->core.Receive(serverAddress, reply.bytes, reply.size, clock);
        (*clients)[index]->Poll();
      }
    }
    network.toClients.clear();
    clock.monotonicUs += 1000;
  }
  const uint64_t handshakes = sink.connected - connectedBefore;
  return {handshakes == 0 ? 0 : serverNs / static_cast<double>(handshakes), handshakes, allocs};
}

// Every connected client sends one 64-byte payload per pass, in a new random order each pass, as many senders'
// datagrams interleave in a gateway's batches; the server's time is what its Receive calls take.
Round ReceivePayloads(ServerCore& server, BenchServerSink& sink, Network& network, std::vector<std::unique_ptr<BenchClient>>& clients,
                      int passes, bool batched, Clock& clock) {
  std::mt19937 random(42);
  const uint8_t payload[64] = {1};
  const uint64_t before = sink.payloads;
  uint64_t allocs = 0;
  double serverNs = 0;
  network.toServer.reserve(clients.size());
  std::vector<Datagram> received(kBatch);
  for (int pass = 0; pass < passes; ++pass) {
    network.toServer.clear();
    for (auto& client : clients) client->core.SendPayload(payload, sizeof payload, clock);
    std::shuffle(network.toServer.begin(), network.toServer.end(), random);
    for (size_t first = 0; first < network.toServer.size(); first += kBatch) {
      const size_t end = std::min(network.toServer.size(), first + kBatch);
      // Into one receive buffer first, as the kernel copies a batch: its bytes are in the cache, its senders' state is not.
      for (size_t i = first; i < end; ++i) {
        Datagram& to = received[i - first];
        const Datagram& from = network.toServer[i];
        to.from = from.from;
        to.size = from.size;
        std::memcpy(to.bytes, from.bytes, from.size);
      }
      const size_t n = end - first;
      const uint64_t allocsBefore = gAllocs;
      const double start = NowNs();
      if (batched) {
        ReceivedDatagram datagrams[kBatch];
        for (size_t i = 0; i < n; ++i) datagrams[i] = {received[i].from, received[i].bytes, received[i].size, received[i].size};
        server.ReceiveBatch(datagrams, n, clock);
        sink.Poll(server);
      } else {
        for (size_t i = 0; i < n; ++i) {
          server.Receive(received[i].from, received[i].bytes, received[i].size, clock);
          sink.Poll(server);
        }
      }
      serverNs += NowNs() - start;
      allocs += gAllocs - allocsBefore;
    }
    clock.monotonicUs += 1000;
  }
  network.toServer.clear();
  const uint64_t payloads = sink.payloads - before;
  return {payloads == 0 ? 0 : serverNs / static_cast<double>(payloads), payloads, allocs};
}

}  // namespace

int main(int argc, char** argv) {
  if (sodium_init() < 0) return 1;
  const uint32_t count = argc > 1 ? static_cast<uint32_t>(std::strtoul(argv[1], nullptr, 10)) : 30000;
  const int rounds = argc > 2 ? std::atoi(argv[2]) : 3;
  if (count == 0 || count > 200000 || rounds < 1) {
    std::fprintf(stderr, "usage: server-costs [clients 1..200000] [rounds >= 1]\n");
    return 2;
  }
  const ServerAddress serverAddress = Ipv4((127u << 24) | 1, 40000);
  Clock clock;
  clock.monotonicUs = 1'000'000;
  clock.unixSeconds = static_cast<uint64_t>(std::time(nullptr));
  for (int round = 0; round < rounds; ++round) {
    Network network;
    BenchServerSink sink(&network);
    ServerConfig config;
    config.protocolId = kProtocolId;
    randombytes_buf(config.privateKey, kKeyBytes);
    config.publicAddress = serverAddress;
    config.maxClients = count;
    config.keepAliveIntervalUs = 10'000'000;
    uint8_t challengeKey[kKeyBytes];
    randombytes_buf(challengeKey, kKeyBytes);
    ServerCore server(config, challengeKey, &sink);
    std::vector<std::unique_ptr<BenchClient>> clients;
    const Round cold = ConnectAll(server, sink, network, count, 1, config.privateKey, serverAddress, clock, &clients);
    // They leave (the server ends each connection, as a client's disconnect would), and new clients come.
    for (uint32_t i = 0; i < count; ++i) server.Disconnect(i, clock);
    sink.Poll(server);
    clock.monotonicUs += 2'000'000;
    server.Update(clock);
    sink.Poll(server);
    network.toClients.clear();
    const Round warm = ConnectAll(server, sink, network, count, uint64_t{count} + 1, config.privateKey, serverAddress, clock, &clients);
    std::printf("server %d: fresh %.0f ns/handshake (%llu), next clients %.0f ns/handshake (%llu), server allocations (next clients) %llu\n", round + 1,
                cold.serverNsEach, static_cast<unsigned long long>(cold.count), warm.serverNsEach,
                static_cast<unsigned long long>(warm.count), static_cast<unsigned long long>(warm.allocs));
    // Interleaved, so that both ways see the same moments of the machine.
    for (bool batched : {false, true, false, true}) {
      const Round payloads = ReceivePayloads(server, sink, network, clients, 8, batched, clock);
      std::printf("server %d: payloads %s %.0f ns each (%llu), allocations %llu\n", round + 1, batched ? "batch" : "one by one", payloads.serverNsEach,
                  static_cast<unsigned long long>(payloads.count), static_cast<unsigned long long>(payloads.allocs));
    }
  }
  return 0;
}
