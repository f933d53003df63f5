// Micro-benchmark of netcode's ChaCha20-Poly1305 (native/netcode/aead.cc) against libsodium's own AEAD call,
// side by side on the same bytes, for the sizes netcode seals: a keep-alive's 8 B body, 64 B and 200 B
// payloads, a challenge token's 284 B, a full 1200 B payload. Each case checks first that both give the
// same bytes. From the repository's root:
//   g++ -std=c++17 -O2 -Wall -Wextra -Inative -o bench/.build/aead-costs bench/native/aead-costs.cc native/netcode/aead.cc -l:libsodium.a
//   bench/.build/aead-costs [rounds]
#include <sodium.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "netcode/aead.h"

using namespace volley::netcode;

namespace {

double NowNs() {
  return std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

template <typename Work>
double NsPerCall(int calls, Work work) {
  const double start = NowNs();
  for (int i = 0; i < calls; ++i) work(i);
  return (NowNs() - start) / calls;
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  if (sodium_init() < 0) return 2;
  const int rounds = argc > 1 ? std::max(1, std::atoi(argv[1])) : 5;
  constexpr int kCalls = 200000;
  uint8_t key[kKeyBytes], associated[22], plain[kMaxAeadPlainBytes], opened[kMaxAeadPlainBytes];
  uint8_t theirs[kMaxAeadPlainBytes + kMacBytes], ours[kMaxAeadPlainBytes + kMacBytes];
  randombytes_buf(key, sizeof key);
  randombytes_buf(associated, sizeof associated);
  randombytes_buf(plain, sizeof plain);
  uint8_t nonce[kAeadNonceBytes];
  SequenceNonce(12345, nonce);
  std::printf("ns per call, median of %d rounds of %d (libsodium's crypto_aead_chacha20poly1305_ietf_* | volley's)\n",
              rounds, kCalls);
  std::printf("%8s %10s %10s %7s %10s %10s %7s\n", "bytes", "seal", "", "ratio", "open", "", "ratio");
  for (const size_t size : {size_t{8}, size_t{64}, size_t{200}, size_t{284}, kMaxAeadPlainBytes}) {
    unsigned long long sealedLength = 0;
    crypto_aead_chacha20poly1305_ietf_encrypt(theirs, &sealedLength, plain, size, associated, sizeof associated,
                                              nullptr, nonce, key);
    if (!SealAead(plain, size, associated, sizeof associated, nonce, key, ours) ||
        std::memcmp(ours, theirs, size + kMacBytes) != 0 ||
        !OpenAead(theirs, size + kMacBytes, associated, sizeof associated, nonce, key, opened) ||
        std::memcmp(opened, plain, size) != 0) {
      std::fprintf(stderr, "aead-costs: volley's AEAD differs from libsodium's at %zu bytes\n", size);
      return 1;
    }
    std::vector<double> sealTheirs, sealOurs, openTheirs, openOurs;
    for (int round = 0; round < rounds; ++round) {
      sealTheirs.push_back(NsPerCall(kCalls, [&](int) {
        unsigned long long length = 0;
        crypto_aead_chacha20poly1305_ietf_encrypt(theirs, &length, plain, size, associated, sizeof associated,
                                                  nullptr, nonce, key);
      }));
      sealOurs.push_back(
          NsPerCall(kCalls, [&](int) { SealAead(plain, size, associated, sizeof associated, nonce, key, ours); }));
      openTheirs.push_back(NsPerCall(kCalls, [&](int) {
        unsigned long long length = 0;
        if (crypto_aead_chacha20poly1305_ietf_decrypt(opened, &length, nullptr, theirs, size + kMacBytes, associated,
                                                      sizeof associated, nonce, key) != 0) {
          std::abort();
        }
      }));
      openOurs.push_back(NsPerCall(kCalls, [&](int) {
        if (!OpenAead(theirs, size + kMacBytes, associated, sizeof associated, nonce, key, opened)) std::abort();
      }));
    }
    const double st = Median(sealTheirs), so = Median(sealOurs), ot = Median(openTheirs), oo = Median(openOurs);
    std::printf("%8zu %10.0f %10.0f %6.2fx %10.0f %10.0f %6.2fx\n", size, st, so, so / st, ot, oo, oo / ot);
  }
  return 0;
}
