// Argument checks shared by the small test-surface bindings (timer wheel, delivery core): a bad argument
// throws a TypeError with code ERR_INVALID_ARG_VALUE and a message that says what is expected.
#pragma once

#include <napi.h>

#include <cmath>
#include <cstdint>
#include <string>

namespace volley {

constexpr double kMaxExactInteger = 9007199254740991.0;  // 2^53 - 1

inline bool ThrowInvalidArgument(Napi::Env env, const std::string& message) {
  Napi::Error error = Napi::TypeError::New(env, message);
  error.Set("code", Napi::String::New(env, "ERR_INVALID_ARG_VALUE"));
  error.ThrowAsJavaScriptException();
  return false;
}

// An integer from min to max (exact in a double) into *out, or a thrown error naming `name`.
inline bool ReadInteger(Napi::Env env, const Napi::Value& value, const std::string& name, double min, double max, uint64_t* out) {
  const double number = value.IsNumber() ? value.As<Napi::Number>().DoubleValue() : NAN;
  if (!std::isfinite(number) || number < min || number > max || std::floor(number) != number) {
    return ThrowInvalidArgument(env, name + " must be an integer from " + std::to_string(static_cast<uint64_t>(min)) + " to " +
                                         std::to_string(static_cast<uint64_t>(max)));
  }
  *out = static_cast<uint64_t>(number);
  return true;
}

}  // namespace volley
