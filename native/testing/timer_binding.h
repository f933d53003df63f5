// N-API surface of the engine's timer wheel (exports.TimerWheel), for tests that check it against a
// model: the engine itself never crosses N-API per timer.
#pragma once

#include <napi.h>

namespace volley {

Napi::Function TimerWheelBinding(Napi::Env env);

}  // namespace volley
