// N-API surface of the delivery layer's state machine (exports.DeliveryCore), driven by tests with a
// fake clock and a simulated network; the engine runs the same core on its I/O thread.
#pragma once

#include <napi.h>

namespace volley {

Napi::Function DeliveryCoreBinding(Napi::Env env);
Napi::Function ReassemblyBudgetBinding(Napi::Env env);  // exports.ReassemblyBudget, which DeliveryCores may share

}  // namespace volley
