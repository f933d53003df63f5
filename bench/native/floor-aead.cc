// The floor receiver's (floor-receiver.c, in C) way to the engine's ChaCha20-Poly1305
// (native/netcode/aead.cc), so that the floor opens each message as cheaply as volley's server does.
#include <cstddef>

#include "netcode/aead.h"

extern "C" int floor_open_aead(const unsigned char* sealed, size_t sealed_size, const unsigned char* associated,
                               size_t associated_size, const unsigned char* nonce, const unsigned char* key,
                               unsigned char* plain) {
  return volley::netcode::OpenAead(sealed, sealed_size, associated, associated_size, nonce, key, plain) ? 0 : -1;
}
