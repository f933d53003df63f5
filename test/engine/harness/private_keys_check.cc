// A server core's private keys leave no copy in its memory once they are gone (their grace over, dropped past
// the cap of 4, the set destroyed, the config's copies once the core holds them), and requests opened under the
// current key or under one in its grace allocate nothing. Prints JSON, for
// test/netcode/private-keys-harness.toolchain.test.ts.
#include <sodium.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "counting_allocations.h"
#include "fuzz/netcode_fixtures.h"
#include "protocol/netcode/packet.h"
#include "protocol/netcode/private_keys.h"
#include "protocol/netcode/server.h"

using namespace volley::netcode;
using volley::fuzz::Address;
using volley::fuzz::Keys;
using volley::fuzz::kProtocolId;
using volley::fuzz::kUnixStart;
using volley::fuzz::Token;

namespace {

// How many times `key` appears in [memory, memory + size).
int Copies(const void* memory, size_t size, const uint8_t key[kKeyBytes]) {
  const uint8_t* bytes = static_cast<const uint8_t*>(memory);
  int found = 0;
  for (size_t i = 0; i + kKeyBytes <= size; ++i) found += std::memcmp(bytes + i, key, kKeyBytes) == 0 ? 1 : 0;
  return found;
}

struct Quiet : DatagramOut {
  int sent = 0;
  void Send(const ServerAddress&, const uint8_t*, size_t) override { ++sent; }
};

std::vector<uint8_t> Request(uint32_t i, const uint8_t key[kKeyBytes], const ServerAddress& server) {
  Keys keys;
  randombytes_buf(keys.clientToServer, kKeyBytes);
  randombytes_buf(keys.serverToClient, kKeyBytes);
  const std::vector<uint8_t> bytes = Token(i, key, server, 5, kUnixStart, keys);
  ConnectToken token;
  if (!ReadConnectToken(bytes.data(), bytes.size(), &token)) std::abort();
  std::vector<uint8_t> request(kConnectionRequestBytes);
  WriteConnectionRequest(token, request.data());
  return request;
}

}  // namespace

int main() {
  if (sodium_init() < 0) return 1;
  uint8_t keys[6][kKeyBytes];
  for (auto& key : keys) randombytes_buf(key, kKeyBytes);

  // The set alone, in memory of its own: what is left of each key after it has gone.
  alignas(PrivateKeys) unsigned char memory[sizeof(PrivateKeys)];
  PrivateKeys* set = new (memory) PrivateKeys(keys[0]);
  set->Rotate(keys[1], 100, 0);  // keys[0] until 100
  set->Rotate(keys[2], 500, 0);  // keys[1] until 500
  set->Expire(100);
  const int afterExpiry = Copies(memory, sizeof(memory), keys[0]);
  set->Rotate(keys[3], 500, 200);
  set->Rotate(keys[4], 500, 200);  // 4 held: 4 3 2 1
  set->Rotate(keys[5], 500, 200);  // 5 4 3 2: keys[1] dropped
  const int afterCap = Copies(memory, sizeof(memory), keys[1]);
  set->Rotate(keys[2], 0, 300);  // back to keys[2] (it leaves its older place), keys[5] refused at once
  const int afterZeroGrace = Copies(memory, sizeof(memory), keys[5]) + (Copies(memory, sizeof(memory), keys[2]) - 1);
  const size_t held = set->count();
  set->~PrivateKeys();
  int afterDestruction = 0;
  for (const auto& key : keys) afterDestruction += Copies(memory, sizeof(memory), key);

  // A server core started with a key in its grace: the config's copies are wiped once the core holds the keys,
  // and the previous key leaves no copy once its grace is over.
  ServerConfig config;
  config.protocolId = kProtocolId;
  std::memcpy(config.privateKey, keys[0], kKeyBytes);
  std::memcpy(config.previousKeys[0].key, keys[1], kKeyBytes);
  config.previousKeys[0].untilUs = 10'000'000;
  config.previousKeyCount = 1;
  config.publicAddress = Address(127, 0, 0, 1, 40000);
  config.maxClients = 16;
  uint8_t challengeKey[kKeyBytes];
  randombytes_buf(challengeKey, kKeyBytes);
  Quiet sink;
  alignas(ServerCore) unsigned char coreMemory[sizeof(ServerCore)];
  ServerCore* core = new (coreMemory) ServerCore(config, challengeKey, &sink);
  const int coreCopies = Copies(coreMemory, sizeof(coreMemory), keys[0]) + Copies(coreMemory, sizeof(coreMemory), keys[1]);

  // Requests under each key: one token each from many addresses, so that after its first use each request is
  // read and opened, then refused (used from one address only). Their first uses grow the tables; then nothing
  // may be allocated, under the current key or the previous one.
  Clock now{1'000'000, kUnixStart};
  const std::vector<uint8_t> current = Request(1, keys[0], config.publicAddress);
  const std::vector<uint8_t> previous = Request(2, keys[1], config.publicAddress);
  core->Receive(Address(10, 1, 0, 1, 5000), current.data(), current.size(), now);
  core->Receive(Address(10, 1, 0, 2, 5000), previous.data(), previous.size(), now);
  counting = true;
  for (int i = 0; i < 200; ++i) {
    const std::vector<uint8_t>& request = i % 2 == 0 ? current : previous;
    core->Receive(Address(10, 2, static_cast<uint8_t>(i >> 8), static_cast<uint8_t>(i), 6000), request.data(), request.size(), now);
  }
  counting = false;
  const ServerCounters opened = core->counters();
  now.monotonicUs = 10'000'000;
  core->Update(now);
  const size_t keysAfterGrace = core->privateKeyCount();
  const int previousLeft = Copies(coreMemory, sizeof(coreMemory), keys[1]);
  core->~ServerCore();

  std::printf(
      "{\"afterExpiry\":%d,\"afterCap\":%d,\"afterZeroGrace\":%d,\"held\":%zu,\"afterDestruction\":%d,\"coreCopies\":%d,"
      "\"challenges\":%d,\"previousKeyRequests\":%llu,\"tokenRefused\":%llu,\"allocations\":%d,\"keysAfterGrace\":%zu,"
      "\"previousLeft\":%d}\n",
      afterExpiry, afterCap, afterZeroGrace, held, afterDestruction, coreCopies, sink.sent,
      static_cast<unsigned long long>(opened.previousKeyRequests), static_cast<unsigned long long>(opened.tokenRefused), allocations,
      keysAfterGrace, previousLeft);
  return 0;
}
