// exports.NetworkSimulator of the test bindings: the engine's network simulator driven datagram by datagram,
// for tests that check the TypeScript one (src/engine/fallback/simulated-network.ts) against it.
#pragma once

#include <napi.h>

#include "sockets/network_simulator.h"

namespace volley {

Napi::Function NetworkSimulatorBinding(Napi::Env env);

}  // namespace volley
