#include "testing/simulator_binding.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "napi/binding_args.h"

namespace volley {

namespace {

// A simulator over datagrams that carry only a number (their id, in their first 4 bytes) and a size.
class NetworkSimulatorWrap : public Napi::ObjectWrap<NetworkSimulatorWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NetworkSimulator",
                       {InstanceMethod<&NetworkSimulatorWrap::Submit>("submit"),
                        InstanceMethod<&NetworkSimulatorWrap::Release>("release"),
                        InstanceMethod<&NetworkSimulatorWrap::NextReleaseUs>("nextReleaseUs"),
                        InstanceMethod<&NetworkSimulatorWrap::Counters>("counters")});
  }

  // new NetworkSimulator(conditions)
  explicit NetworkSimulatorWrap(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<NetworkSimulatorWrap>(info),
        simulator_(info[0].IsObject() ? ReadNetworkConditions(info[0].As<Napi::Object>()) : NetworkConditions{}) {}

 private:
  // submit(id, size, nowUs)
  Napi::Value Submit(const Napi::CallbackInfo& info) {
    uint64_t id, size, now;
    if (ReadInteger(info.Env(), info[0], "id", 0, 0xffffffff, &id) && ReadInteger(info.Env(), info[1], "size", 4, kMaxProtocolDatagram, &size) &&
        ReadInteger(info.Env(), info[2], "nowUs", 0, kMaxExactInteger, &now)) {
      ProtocolOutput::Datagram datagram{};
      const auto tag = static_cast<uint32_t>(id);
      std::memcpy(datagram.data, &tag, 4);
      datagram.size = static_cast<uint16_t>(size);
      simulator_.Submit(datagram, now);
    }
    return info.Env().Undefined();
  }
  // release(nowUs) -> the ids due by then, in the order they leave
  Napi::Value Release(const Napi::CallbackInfo& info) {
    uint64_t now;
    if (!ReadInteger(info.Env(), info[0], "nowUs", 0, kMaxExactInteger, &now)) return info.Env().Undefined();
    std::vector<uint32_t> ids;
    for (;;) {
      const size_t count = simulator_.Release(now, &released_, 256);
      for (size_t i = 0; i < count; ++i) {
        uint32_t id;
        std::memcpy(&id, released_[i].data, 4);
        ids.push_back(id);
      }
      if (count < 256) break;
    }
    Napi::Array out = Napi::Array::New(info.Env(), ids.size());
    for (size_t i = 0; i < ids.size(); ++i) out.Set(static_cast<uint32_t>(i), Napi::Number::New(info.Env(), ids[i]));
    return out;
  }
  // nextReleaseUs() -> number | null
  Napi::Value NextReleaseUs(const Napi::CallbackInfo& info) {
    const uint64_t next = simulator_.NextReleaseUs();
    return next == UINT64_MAX ? info.Env().Null() : Napi::Number::New(info.Env(), static_cast<double>(next));
  }
  Napi::Value Counters(const Napi::CallbackInfo& info) {
    const NetworkSimulatorCounters& c = simulator_.counters();
    Napi::Object out = Napi::Object::New(info.Env());
    out.Set("submitted", static_cast<double>(c.submitted));
    out.Set("lost", static_cast<double>(c.lost));
    out.Set("duplicated", static_cast<double>(c.duplicated));
    out.Set("reordered", static_cast<double>(c.reordered));
    out.Set("overflowed", static_cast<double>(c.overflowed));
    return out;
  }

  NetworkSimulator simulator_;
  std::vector<ProtocolOutput::Datagram> released_;
};

}  // namespace

Napi::Function NetworkSimulatorBinding(Napi::Env env) { return NetworkSimulatorWrap::Define(env); }

}  // namespace volley
