// N-API surface of the network simulator: the conditions as JavaScript gives them (for the engine's
// sockets), and exports.NetworkSimulator, for tests that check the TypeScript one
// (src/engine/fallback/simulated-network.ts) against it.
#pragma once

#include <napi.h>

#include "engine/network_simulator.h"

namespace volley {

// { loss, duplicate, reorder, latencyUs, jitterUs, bandwidthBytesPerSec, queueBytes, seed }, checked by
// JavaScript (src/api/network-simulator.ts); held within its ranges here too.
NetworkConditions ReadNetworkConditions(const Napi::Object& object);

Napi::Function NetworkSimulatorBinding(Napi::Env env);

}  // namespace volley
