// N-API surface of the netcode wire layer (exports.netcode): the same tokens and packets as the
// TypeScript codec, for differential tests and for tokens made without libsodium-wrappers.
#pragma once

#include <napi.h>

namespace volley {

Napi::Object NetcodeBinding(Napi::Env env);

}  // namespace volley
