// Argument reading shared by the bindings. A bad argument throws a TypeError with code ERR_INVALID_ARG_VALUE
// and a message that says what is expected. Values are read without calling into JavaScript: To*() would
// run valueOf/toString, and with C++ exceptions off a conversion that throws leaves an empty value that
// aborts the process when used. A getter that throws leaves its exception pending: the throw helpers then
// add none of their own (a second throw would abort too), and JavaScript sees the getter's.
#pragma once

#include <napi.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

#include "sockets/network_simulator.h"
#include "sockets/protocol_request.h"

namespace volley {

inline bool ThrowInvalidArgument(Napi::Env env, const std::string& message) {
  if (env.IsExceptionPending()) return false;
  Napi::Error error = Napi::TypeError::New(env, message);
  error.Set("code", Napi::String::New(env, "ERR_INVALID_ARG_VALUE"));
  error.ThrowAsJavaScriptException();
  return false;
}

// Neither adds an error to one already pending (a getter of an options object threw): see above.
// Each carries Node's code for its kind: the TypeScript layer checks first, but a direct caller is told too.
inline void ThrowRange(Napi::Env env, const std::string& message) {
  if (env.IsExceptionPending()) return;
  Napi::Error error = Napi::RangeError::New(env, message);
  error.Set("code", Napi::String::New(env, "ERR_OUT_OF_RANGE"));
  error.ThrowAsJavaScriptException();
}

inline void ThrowType(Napi::Env env, const std::string& message) {
  if (env.IsExceptionPending()) return;
  Napi::Error error = Napi::TypeError::New(env, message);
  error.Set("code", Napi::String::New(env, "ERR_INVALID_ARG_TYPE"));
  error.ThrowAsJavaScriptException();
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

// A number, or the fallback for a value of any other type (an empty value too).
inline double NumberOr(const Napi::Value& value, double fallback) {
  return value.IsNumber() ? value.As<Napi::Number>().DoubleValue() : fallback;
}

// An id or count: a number within 0..2^32 - 1, else the fallback (a fraction is cut).
inline uint32_t U32Or(const Napi::Value& value, uint32_t fallback) {
  const double number = NumberOr(value, NAN);
  return number >= 0 && number <= 4294967295.0 ? static_cast<uint32_t>(number) : fallback;
}

// A duration or size in a signed 64-bit range, else the fallback.
inline int64_t I64Or(const Napi::Value& value, int64_t fallback) {
  const double number = NumberOr(value, NAN);
  return number >= -kMaxExactInteger && number <= kMaxExactInteger ? static_cast<int64_t>(number) : fallback;
}

inline std::string StringOr(const Napi::Value& value, const std::string& fallback = std::string()) {
  return value.IsString() ? value.As<Napi::String>().Utf8Value() : fallback;
}

inline bool BoolOr(const Napi::Value& value, bool fallback = false) {
  return value.IsBoolean() ? value.As<Napi::Boolean>().Value() : fallback;
}

// previousKeys (absent: none): [{ key: Uint8Array(32), untilUs }], the keys a server rotated away from before it
// started that are still in their grace, newest first, accepted until untilUs on the clock the server is fed
// (the engine's: CLOCK_MONOTONIC, as process.hrtime), at most kMaxPrivateKeys - 1, into keys and *count.
// False with an error thrown.
inline bool ReadPreviousKeys(Napi::Env env, Napi::Value value, netcode::PreviousPrivateKey* keys, uint32_t* count) {
  if (value.IsUndefined()) return true;
  if (!value.IsArray() || value.As<Napi::Array>().Length() > netcode::kMaxPrivateKeys - 1) {
    return ThrowInvalidArgument(env, "previousKeys must be an array of at most " + std::to_string(netcode::kMaxPrivateKeys - 1) +
                                         " { key, untilUs }");
  }
  const Napi::Array list = value.As<Napi::Array>();
  const uint32_t length = list.Length();
  for (uint32_t i = 0; i < length && *count < netcode::kMaxPrivateKeys - 1; ++i) {
    const Napi::Value entry = list.Get(i);
    const Napi::Value key = entry.IsObject() ? entry.As<Napi::Object>().Get("key") : Napi::Value();
    const Napi::Value until = entry.IsObject() ? entry.As<Napi::Object>().Get("untilUs") : Napi::Value();
    const double untilUs = until.IsEmpty() ? NAN : NumberOr(until, NAN);
    if (key.IsEmpty() || !key.IsTypedArray() || key.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array ||
        key.As<Napi::Uint8Array>().ElementLength() != netcode::kKeyBytes || !(untilUs >= 0 && untilUs <= kMaxExactInteger)) {
      return ThrowInvalidArgument(env, "each of previousKeys must be { key: a Uint8Array of 32 bytes, untilUs: microseconds from 0 to 2^53 - 1 }");
    }
    netcode::PreviousPrivateKey& into = keys[(*count)++];
    std::memcpy(into.key, key.As<Napi::Uint8Array>().Data(), netcode::kKeyBytes);
    into.untilUs = static_cast<uint64_t>(untilUs);
  }
  return true;
}

// { loss, duplicate, reorder, latencyUs, jitterUs, bandwidthBytesPerSec, queueBytes, seed }, checked by
// JavaScript (src/api/network-simulator.ts); held within its ranges here too.
inline NetworkConditions ReadNetworkConditions(const Napi::Object& object) {
  const auto number = [&](const char* name) {
    Napi::Value field = object.Get(name);
    return field.IsNumber() ? field.As<Napi::Number>().DoubleValue() : 0.0;
  };
  // A double out of uint64_t's range (NaN, negative) is undefined behaviour to convert, and a direct caller's
  // could hold datagrams for ever.
  const auto count = [&](const char* name, double max) {
    const double given = number(name);
    return given >= 0 ? static_cast<uint64_t>(std::min(given, max)) : uint64_t{0};
  };
  NetworkConditions conditions;
  conditions.loss = number("loss");
  conditions.duplicate = number("duplicate");
  conditions.reorder = number("reorder");
  conditions.latencyUs = count("latencyUs", 60e6);
  conditions.jitterUs = count("jitterUs", 60e6);
  conditions.bandwidthBytesPerSec = count("bandwidthBytesPerSec", 1e12);
  conditions.queueBytes = count("queueBytes", 1e12);
  conditions.seed = count("seed", kMaxExactInteger);
  return conditions;
}

// The object behind `this` of an ObjectWrap<T> with accessors, or nullptr with a TypeError thrown. node-addon-api
// finds it with T::Unwrap, and V8 checks the receiver of methods only: an accessor's getter called on an object
// of another class would read that object as one of its own. Such a class tags its objects in its constructor
// and hides ObjectWrap<T>::Unwrap behind a static Unwrap that calls this.
template <typename T>
T* UnwrapTagged(Napi::Object object, const napi_type_tag* tag) {
  if (!object.CheckTypeTag(tag)) {
    if (!object.Env().IsExceptionPending()) Napi::TypeError::New(object.Env(), "Illegal invocation").ThrowAsJavaScriptException();
    return nullptr;
  }
  return Napi::ObjectWrap<T>::Unwrap(object);
}

}  // namespace volley
