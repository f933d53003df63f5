// exports.SocketProtocol of the test bindings: the engine's socket protocols (sockets/netcode_sockets.h, made by
// sockets/protocol_request.cc from the options napi/protocol_args.h reads, as the engine's openSocket() makes
// them) driven call by call with no socket: datagrams and time in, datagrams to send and records out. The
// WebAssembly build's exports (wasm/protocols.cc) drive the same protocols, so a test can feed both builds the
// same streams. exports.useDeterministicRandom(seed): this addon's libsodium draws from seed from then on.
#pragma once

#include <napi.h>

namespace volley {

Napi::Function SocketProtocolBinding(Napi::Env env);
Napi::Function UseDeterministicRandomBinding(Napi::Env env);

}  // namespace volley
