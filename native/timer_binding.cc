#include "timer_binding.h"

#include <cmath>

#include "timer_wheel.h"

namespace volley {

namespace {

constexpr double kMaxExactInteger = 9007199254740991.0;  // 2^53 - 1

bool ReadInteger(const Napi::CallbackInfo& info, size_t index, const char* name, double max, double* out) {
  const Napi::Value value = info[index];
  const double number = value.IsNumber() ? value.As<Napi::Number>().DoubleValue() : NAN;
  if (!std::isfinite(number) || number < 0 || number > max || std::floor(number) != number) {
    Napi::Error error = Napi::TypeError::New(info.Env(), std::string(name) + " must be an integer from 0 to " +
                                                             std::to_string(static_cast<uint64_t>(max)));
    error.Set("code", Napi::String::New(info.Env(), "ERR_INVALID_ARG_VALUE"));
    error.ThrowAsJavaScriptException();
    return false;
  }
  *out = number;
  return true;
}

class TimerWheelWrap : public Napi::ObjectWrap<TimerWheelWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "TimerWheel",
                       {InstanceMethod<&TimerWheelWrap::Schedule>("schedule"),
                        InstanceMethod<&TimerWheelWrap::Cancel>("cancel"),
                        InstanceMethod<&TimerWheelWrap::DueUs>("dueUs"),
                        InstanceMethod<&TimerWheelWrap::Advance>("advance"),
                        InstanceMethod<&TimerWheelWrap::NextDueUs>("nextDueUs"),
                        InstanceAccessor<&TimerWheelWrap::Size>("size")});
  }

  // new TimerWheel(tickUs, bucketBits)
  explicit TimerWheelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TimerWheelWrap>(info) {
    double tickUs = 1000, bucketBits = 10;
    if (info.Length() > 0 && !ReadInteger(info, 0, "tickUs", 1e9, &tickUs)) return;
    if (info.Length() > 1 && !ReadInteger(info, 1, "bucketBits", 20, &bucketBits)) return;
    if (tickUs < 1) tickUs = 1;
    wheel_ = TimerWheel(static_cast<uint64_t>(tickUs), static_cast<uint32_t>(bucketBits));
  }

 private:
  static constexpr double kMaxId = 1 << 20;

  Napi::Value Schedule(const Napi::CallbackInfo& info) {
    double id, due;
    if (ReadInteger(info, 0, "id", kMaxId, &id) && ReadInteger(info, 1, "dueUs", kMaxExactInteger, &due)) {
      wheel_.Schedule(static_cast<uint32_t>(id), static_cast<uint64_t>(due));
    }
    return info.Env().Undefined();
  }
  Napi::Value Cancel(const Napi::CallbackInfo& info) {
    double id;
    if (ReadInteger(info, 0, "id", kMaxId, &id)) wheel_.Cancel(static_cast<uint32_t>(id));
    return info.Env().Undefined();
  }
  Napi::Value DueUs(const Napi::CallbackInfo& info) {
    double id;
    if (!ReadInteger(info, 0, "id", kMaxId, &id)) return info.Env().Undefined();
    const uint64_t due = wheel_.DueUs(static_cast<uint32_t>(id));
    return due == TimerWheel::kNever ? info.Env().Null() : Napi::Number::New(info.Env(), static_cast<double>(due));
  }
  // advance(nowUs) -> ids fired, in firing order
  Napi::Value Advance(const Napi::CallbackInfo& info) {
    double now;
    if (!ReadInteger(info, 0, "nowUs", kMaxExactInteger, &now)) return info.Env().Undefined();
    std::vector<uint32_t> fired;
    wheel_.Advance(static_cast<uint64_t>(now), [&](uint32_t id) { fired.push_back(id); });
    Napi::Array out = Napi::Array::New(info.Env(), fired.size());
    for (size_t i = 0; i < fired.size(); ++i) out.Set(static_cast<uint32_t>(i), Napi::Number::New(info.Env(), fired[i]));
    return out;
  }
  Napi::Value NextDueUs(const Napi::CallbackInfo& info) {
    const uint64_t due = wheel_.NextDueUs();
    return due == TimerWheel::kNever ? info.Env().Null() : Napi::Number::New(info.Env(), static_cast<double>(due));
  }
  Napi::Value Size(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(wheel_.size()));
  }

  TimerWheel wheel_;
};

}  // namespace

Napi::Function TimerWheelBinding(Napi::Env env) { return TimerWheelWrap::Define(env); }

}  // namespace volley
