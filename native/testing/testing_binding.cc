// The test bindings' own addon (binding.gyp's volley_testing, built with `npm run build:native`): the protocol
// cores, the engine's socket protocols, the timer wheel and the network simulator driven call by call from the
// core-level suites. It never ships: the package's addon (napi/binding.cc) carries the engine alone.
#include <napi.h>
#include <sodium.h>

#include "testing/delivery_binding.h"
#include "testing/netcode_binding.h"
#include "testing/protocols_binding.h"
#include "testing/simulator_binding.h"
#include "testing/timer_binding.h"

namespace volley {
namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  if (sodium_init() < 0) {
    Napi::Error::New(env, "libsodium failed to initialise").ThrowAsJavaScriptException();
    return exports;
  }
  exports.Set("netcode", NetcodeBinding(env));
  exports.Set("TimerWheel", TimerWheelBinding(env));
  exports.Set("DeliveryCore", DeliveryCoreBinding(env));
  exports.Set("ReassemblyBudget", ReassemblyBudgetBinding(env));
  exports.Set("NetworkSimulator", NetworkSimulatorBinding(env));
  exports.Set("SocketProtocol", SocketProtocolBinding(env));
  exports.Set("useDeterministicRandom", UseDeterministicRandomBinding(env));
  return exports;
}

}  // namespace
}  // namespace volley

Napi::Object InitVolleyTesting(Napi::Env env, Napi::Object exports) { return volley::Init(env, exports); }

NODE_API_MODULE(volley_testing, InitVolleyTesting)
