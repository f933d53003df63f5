// A server core holding many handshakes at once: no memory it gives back holds one of their keys. Freed
// blocks are scanned through a replaced operator delete, for test/netcode/server-core.toolchain.test.ts. Prints JSON.
#include <sodium.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "protocol/netcode/connect_token.h"
#include "protocol/netcode/packet.h"
#include "protocol/netcode/server.h"

using namespace volley::netcode;

namespace {

constexpr uint8_t kMarkedKey = 0xA5;  // the first handshake's client-to-server key, byte after byte
bool watching = false;
int freedWithKey = 0;

void Scan(const void* block, size_t size) {
  if (!watching || block == nullptr) return;
  const auto* bytes = static_cast<const uint8_t*>(block);
  size_t run = 0;
  for (size_t i = 0; i < size; ++i) {
    run = bytes[i] == kMarkedKey ? run + 1 : 0;
    if (run == kKeyBytes) {
      ++freedWithKey;
      return;
    }
  }
}

struct DiscardingSink : DatagramOut {
  int challenges = 0;
  void Send(const ServerAddress&, const uint8_t*, size_t) override { ++challenges; }
};

ServerAddress Address(const std::string& text) {
  ServerAddress address;
  if (!ParseDatagramSource(text, &address)) std::abort();
  return address;
}

}  // namespace

void* operator new(size_t size) {
  void* block = std::malloc(size != 0 ? size : 1);
  if (block == nullptr) throw std::bad_alloc();
  return block;
}
void operator delete(void* block) noexcept { std::free(block); }
void operator delete(void* block, size_t size) noexcept {
  Scan(block, size);
  std::free(block);
}

int main() {
  if (sodium_init() < 0) return 1;
  constexpr uint64_t kProtocolId = 0x1234, kNow = 1'800'000'000;
  uint8_t privateKey[kKeyBytes], challengeKey[kKeyBytes];
  randombytes_buf(privateKey, sizeof privateKey);
  randombytes_buf(challengeKey, sizeof challengeKey);
  ServerConfig config;
  config.protocolId = kProtocolId;
  std::memcpy(config.privateKey, privateKey, kKeyBytes);
  config.publicAddress = Address("127.0.0.1:40000");
  config.maxClients = 4;
  DiscardingSink sink;
  const Clock now{1'000'000, kNow};
  watching = true;
  {
    ServerCore core(config, challengeKey, &sink);
    // 40 handshakes from as many addresses, the first one's key marked: its entry moves as they grow.
    for (int i = 0; i < 40; ++i) {
      PrivateConnectToken secret;
      secret.clientId = 100 + static_cast<uint64_t>(i);
      secret.timeoutSeconds = 5;
      secret.serverAddressCount = 1;
      secret.serverAddresses[0] = config.publicAddress;
      std::memset(secret.clientToServerKey, i == 0 ? kMarkedKey : 0x11, kKeyBytes);
      std::memset(secret.serverToClientKey, 0x22, kKeyBytes);
      ConnectToken token;
      token.protocolId = kProtocolId;
      token.createTimestamp = kNow;
      token.expireTimestamp = kNow + 300;
      randombytes_buf(token.nonce, sizeof token.nonce);
      if (!SealPrivateConnectToken(secret, kProtocolId, token.expireTimestamp, token.nonce, privateKey, token.privateData)) return 1;
      uint8_t request[kConnectionRequestBytes];
      WriteConnectionRequest(token, request);
      core.Receive(Address("10.0.0." + std::to_string(i + 1) + ":5000"), request, sizeof request, now);
    }
    std::printf("{\"challenges\":%d,\"freedWithKey\":%d}\n", sink.challenges, freedWithKey);
  }
  watching = false;
  return 0;
}
