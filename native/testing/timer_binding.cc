#include "testing/timer_binding.h"

#include "napi/binding_args.h"
#include "util/timer_wheel.h"

namespace volley {

namespace {

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
    info.This().As<Napi::Object>().TypeTag(&kTag);
    uint64_t tickUs = 1000, bucketBits = 10;
    if (info.Length() > 0 && !ReadInteger(info.Env(), info[0], "tickUs", 1, 1e9, &tickUs)) return;
    if (info.Length() > 1 && !ReadInteger(info.Env(), info[1], "bucketBits", 0, 20, &bucketBits)) return;
    wheel_ = TimerWheel(tickUs, static_cast<uint32_t>(bucketBits));
  }
  // What node-addon-api calls to find the wheel of `this` (binding_args.h: the size getter can be called on
  // any object).
  static TimerWheelWrap* Unwrap(Napi::Object object) { return UnwrapTagged<TimerWheelWrap>(object, &kTag); }

 private:
  static constexpr double kMaxId = 1 << 20;
  static constexpr napi_type_tag kTag = {0x766f6c6c65797469ull, 0x6d65727768656c6cull};

  Napi::Value Schedule(const Napi::CallbackInfo& info) {
    uint64_t id, due;
    if (ReadInteger(info.Env(), info[0], "id", 0, kMaxId, &id) && ReadInteger(info.Env(), info[1], "dueUs", 0, kMaxExactInteger, &due)) {
      wheel_.Schedule(static_cast<uint32_t>(id), due);
    }
    return info.Env().Undefined();
  }
  Napi::Value Cancel(const Napi::CallbackInfo& info) {
    uint64_t id;
    if (ReadInteger(info.Env(), info[0], "id", 0, kMaxId, &id)) wheel_.Cancel(static_cast<uint32_t>(id));
    return info.Env().Undefined();
  }
  Napi::Value DueUs(const Napi::CallbackInfo& info) {
    uint64_t id;
    if (!ReadInteger(info.Env(), info[0], "id", 0, kMaxId, &id)) return info.Env().Undefined();
    const uint64_t due = wheel_.DueUs(static_cast<uint32_t>(id));
    return due == TimerWheel::kNever ? info.Env().Null() : Napi::Number::New(info.Env(), static_cast<double>(due));
  }
  // advance(nowUs) -> ids fired, in firing order
  Napi::Value Advance(const Napi::CallbackInfo& info) {
    uint64_t now;
    if (!ReadInteger(info.Env(), info[0], "nowUs", 0, kMaxExactInteger, &now)) return info.Env().Undefined();
    std::vector<uint32_t> fired;
    wheel_.Advance(now, [&](uint32_t id) { fired.push_back(id); });
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
