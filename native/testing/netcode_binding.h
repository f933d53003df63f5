// N-API surface of the netcode wire layer (exports.netcode): the same tokens and packets as the
// TypeScript codec, for differential tests and for tokens made without libsodium-wrappers.
#pragma once

#include <napi.h>

namespace volley {

namespace netcode {
struct ServerConfig;
}

Napi::Object NetcodeBinding(Napi::Env env);

// previousKeys (absent: none): [{ key: Uint8Array(32), untilUs }], the keys a server rotated away from before it
// started that are still in their grace, newest first, accepted until untilUs on the clock the server is fed
// (the engine's: CLOCK_MONOTONIC, as process.hrtime), at most kMaxPrivateKeys - 1. False with an error thrown.
bool ReadPreviousKeys(Napi::Env env, Napi::Value value, netcode::ServerConfig* config);

}  // namespace volley
