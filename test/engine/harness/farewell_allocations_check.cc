// A server core's redundant disconnect packets allocate nothing once its queues have grown to what the
// churn needs: eight clients connect (real ClientCores) and are disconnected, three times over, and the
// third time's disconnects and farewell packets are counted through a replaced operator new. The queue
// was a std::deque, which allocated a block for about every five packets as it turned over. Prints JSON,
// for test/netcode/server-core.toolchain.test.ts.
#include <sodium.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <new>
#include <vector>

#include "counting_allocations.h"
#include "fuzz/netcode_fixtures.h"
#include "protocol/netcode/client.h"
#include "protocol/netcode/server.h"

using namespace volley::netcode;
using volley::fuzz::Address;
using volley::fuzz::Keys;
using volley::fuzz::kProtocolId;
using volley::fuzz::kUnixStart;
using volley::fuzz::Token;

namespace {

using Datagram = std::vector<uint8_t>;

struct ClientSide : DatagramOut {
  std::vector<Datagram> out;
  void Send(const ServerAddress&, const uint8_t* data, size_t size) override { out.emplace_back(data, data + size); }
};

// The server's datagrams, and its events as the engine polls them after each call.
struct ServerSide : DatagramOut {
  std::vector<std::pair<ServerAddress, Datagram>> out;
  std::vector<uint32_t> connected;
  bool discarding = false;
  int discarded = 0;
  void Send(const ServerAddress& to, const uint8_t* data, size_t size) override {
    if (discarding) {
      ++discarded;
      return;
    }
    out.emplace_back(to, Datagram(data, data + size));
  }
  void Poll(ServerCore& core) {
    ServerEvent event;
    while (core.PollEvent(&event)) {
      if (event.type == ServerEvent::Type::kConnected) connected.push_back(event.client);
    }
  }
};

// A client's events, as the engine polls them after each call (they say nothing this check needs).
void Poll(ClientCore& client) {
  ClientEvent event;
  while (client.PollEvent(&event)) {
  }
}

}  // namespace

int main() {
  if (sodium_init() < 0) return 1;
  constexpr int kClients = 8, kCycles = 3;
  ServerConfig config;
  config.protocolId = kProtocolId;
  randombytes_buf(config.privateKey, kKeyBytes);
  config.publicAddress = Address(127, 0, 0, 1, 40000);
  config.maxClients = kClients;
  uint8_t challengeKey[kKeyBytes];
  randombytes_buf(challengeKey, kKeyBytes);
  ServerSide server;
  ServerCore core(config, challengeKey, &server);
  Clock now{1'000'000, kUnixStart};
  int connectedAll = 0;
  for (int cycle = 0; cycle < kCycles; ++cycle) {
    std::vector<std::unique_ptr<ClientSide>> sides;
    std::vector<std::unique_ptr<ClientCore>> clients;
    for (int i = 0; i < kClients; ++i) {
      Keys keys;
      randombytes_buf(keys.clientToServer, kKeyBytes);
      randombytes_buf(keys.serverToClient, kKeyBytes);
      const std::vector<uint8_t> token = Token(static_cast<uint32_t>(cycle * kClients + i), config.privateKey, config.publicAddress, 5, now.unixSeconds, keys);
      sides.push_back(std::make_unique<ClientSide>());
      clients.push_back(std::make_unique<ClientCore>(ClientConfig{}, sides.back().get()));
      clients.back()->Connect(token.data(), token.size(), now);
      Poll(*clients.back());
    }
    server.connected.clear();
    for (int step = 0; step < 100 && server.connected.size() < kClients; ++step) {
      for (int i = 0; i < kClients; ++i) {
        clients[i]->Update(now);
        Poll(*clients[i]);
        for (const Datagram& datagram : sides[i]->out) {
          core.Receive(Address(10, 0, 0, static_cast<uint8_t>(i + 1), 5000), datagram.data(), datagram.size(), now);
          server.Poll(core);
        }
        sides[i]->out.clear();
      }
      core.Update(now);
      server.Poll(core);
      for (const auto& [to, datagram] : server.out) {
        ClientCore& client = *clients[to.ip.bytes[3] - 1];
        client.Receive(config.publicAddress, datagram.data(), datagram.size(), now);
        Poll(client);
      }
      server.out.clear();
      now.monotonicUs += 10'000;
    }
    connectedAll += static_cast<int>(server.connected.size());
    // The clients go quiet; the server disconnects them and sends its farewells, 10 each at 10 Hz.
    clients.clear();
    server.discarding = true;
    server.discarded = 0;
    counting = cycle == kCycles - 1;
    for (uint32_t index : server.connected) core.Disconnect(index, now);
    server.Poll(core);
    for (int step = 0; step < 30; ++step) {
      now.monotonicUs += 50'000;
      core.Update(now);
      server.Poll(core);
    }
    counting = false;
    server.discarding = false;
    // The addresses' releases expire (they are kept while their clients' own farewells may still come).
    now.monotonicUs += 10'000'000;
    core.Update(now);
    server.Poll(core);
  }
  std::printf("{\"connected\":%d,\"farewellPackets\":%d,\"allocations\":%d}\n", connectedAll, server.discarded, allocations);
  return 0;
}
