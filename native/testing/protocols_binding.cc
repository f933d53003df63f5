#include "testing/protocols_binding.h"

#include <sys/socket.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <ctime>
#include <memory>
#include <vector>

#include "sockets/protocol_request.h"
#include "sockets/socket_protocol.h"
#include "napi/binding_args.h"
#include "napi/protocol_args.h"
#include "testing/deterministic_random.h"
#include "util/address.h"

namespace volley {
namespace {

// As the WebAssembly exports make the clock (wasm/protocols.cc): JavaScript's monotonic µs, the wall clock's seconds.
netcode::Clock ClockAt(const Napi::Value& value) {
  const double us = NumberOr(value, 0);
  netcode::Clock clock;
  clock.monotonicUs = us > 0 ? static_cast<uint64_t>(us) : 0;
  clock.unixSeconds = static_cast<uint64_t>(time(nullptr));
  return clock;
}

// A Uint8Array's bytes, or nullptr and 0.
const uint8_t* BytesOf(const Napi::Value& value, size_t* size) {
  *size = 0;
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) return nullptr;
  Napi::Uint8Array bytes = value.As<Napi::Uint8Array>();
  *size = bytes.ElementLength();
  return bytes.Data();
}

Napi::Float64Array Doubles(Napi::Env env, const double* values, size_t count) {
  Napi::Float64Array out = Napi::Float64Array::New(env, count);
  if (count > 0) std::memcpy(out.Data(), values, count * sizeof(double));
  return out;
}

class SocketProtocolWrap : public Napi::ObjectWrap<SocketProtocolWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "SocketProtocol",
                       {InstanceMethod<&SocketProtocolWrap::Receive>("receive"),
                        InstanceMethod<&SocketProtocolWrap::Update>("update"),
                        InstanceMethod<&SocketProtocolWrap::NextDeadlineUs>("nextDeadlineUs"),
                        InstanceMethod<&SocketProtocolWrap::Send>("send"),
                        InstanceMethod<&SocketProtocolWrap::EndBatch>("endBatch"),
                        InstanceMethod<&SocketProtocolWrap::Control>("control"),
                        InstanceMethod<&SocketProtocolWrap::ReadingPaused>("readingPaused"),
                        InstanceMethod<&SocketProtocolWrap::Finished>("finished"),
                        InstanceMethod<&SocketProtocolWrap::Counters>("counters"),
                        InstanceMethod<&SocketProtocolWrap::PeerCounters>("peerCounters"),
                        InstanceMethod<&SocketProtocolWrap::Links>("links"),
                        InstanceMethod<&SocketProtocolWrap::TakeOutbox>("takeOutbox"),
                        InstanceMethod<&SocketProtocolWrap::TakeRecords>("takeRecords"),
                        InstanceMethod<&SocketProtocolWrap::Close>("close")});
  }

  // new SocketProtocol(options, boundPort, socketIsV6, nowUs): throws as openSocket() does for a refused request.
  explicit SocketProtocolWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SocketProtocolWrap>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsObject()) {
      ThrowType(env, "SocketProtocol(options, boundPort, socketIsV6, nowUs) expected");
      return;
    }
    ProtocolRequest request;
    if (!ReadProtocolRequest(env, info[0].As<Napi::Object>(), &request)) return;
    ProtocolRequestError error;
    made_ = MakeSocketProtocol(request, static_cast<uint16_t>(U32Or(info[1], 0)), ClockAt(info[3]).monotonicUs, &error);
    if (!made_.protocol) {
      ThrowRequestError(env, error);
      return;
    }
    made_.protocol->socketIsV6 = BoolOr(info[2]);
  }

 private:
  bool Open(Napi::Env env) {
    if (made_.protocol) return true;
    ThrowType(env, "the protocol is closed");
    return false;
  }

  // receive([[family, ip (16 bytes, IPv4 in the first 4), port, data], ...], nowUs): one batch, as the engine hands it.
  Napi::Value Receive(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Open(env)) return env.Undefined();
    if (!info[0].IsArray()) {
      ThrowType(env, "receive(datagrams, nowUs) expected");
      return env.Undefined();
    }
    const Napi::Array list = info[0].As<Napi::Array>();
    std::vector<netcode::ReceivedDatagram> batch;
    for (uint32_t i = 0; i < list.Length(); ++i) {
      if (!list.Get(i).IsArray()) continue;
      const Napi::Array entry = list.Get(i).As<Napi::Array>();
      netcode::ReceivedDatagram datagram{};
      datagram.from.ip.family = static_cast<uint8_t>(U32Or(entry.Get(0u), 4));
      size_t ipSize = 0;
      const uint8_t* ip = BytesOf(entry.Get(1u), &ipSize);
      if (ip != nullptr) std::memcpy(datagram.from.ip.bytes, ip, std::min<size_t>(ipSize, 16));
      datagram.from.port = static_cast<uint16_t>(U32Or(entry.Get(2u), 0));
      datagram.data = BytesOf(entry.Get(3u), &datagram.size);
      datagram.wireSize = datagram.size;
      batch.push_back(datagram);
    }
    if (!batch.empty()) made_.protocol->ReceiveBatch(batch.data(), batch.size(), ClockAt(info[1]));
    return env.Undefined();
  }

  Napi::Value Update(const Napi::CallbackInfo& info) {
    if (Open(info.Env())) made_.protocol->Update(ClockAt(info[0]));
    return info.Env().Undefined();
  }

  Napi::Value NextDeadlineUs(const Napi::CallbackInfo& info) {
    if (!Open(info.Env())) return info.Env().Undefined();
    const uint64_t us = made_.protocol->NextDeadlineUs();
    return Napi::Number::New(info.Env(), us == UINT64_MAX ? INFINITY : static_cast<double>(us));
  }

  // send(peer, channel, data, nowUs)
  Napi::Value Send(const Napi::CallbackInfo& info) {
    if (!Open(info.Env())) return info.Env().Undefined();
    size_t size = 0;
    const uint8_t* data = BytesOf(info[2], &size);
    made_.protocol->Send(U32Or(info[0], 0), static_cast<uint8_t>(U32Or(info[1], 0)), data, size, ClockAt(info[3]));
    return info.Env().Undefined();
  }

  Napi::Value EndBatch(const Napi::CallbackInfo& info) {
    if (Open(info.Env())) made_.protocol->EndBatch(ClockAt(info[0]));
    return info.Env().Undefined();
  }

  // control(op, arg, data, nowUs)
  Napi::Value Control(const Napi::CallbackInfo& info) {
    if (!Open(info.Env())) return info.Env().Undefined();
    size_t size = 0;
    const uint8_t* data = BytesOf(info[2], &size);
    const std::vector<uint8_t> bytes(data, data + size);
    made_.protocol->Control(U32Or(info[0], 0), U32Or(info[1], 0), bytes, ClockAt(info[3]));
    return info.Env().Undefined();
  }

  // readingPaused(paused, nowUs)
  Napi::Value ReadingPaused(const Napi::CallbackInfo& info) {
    if (Open(info.Env())) made_.protocol->ReadingPaused(BoolOr(info[0]), ClockAt(info[1]));
    return info.Env().Undefined();
  }

  Napi::Value Finished(const Napi::CallbackInfo& info) {
    if (!Open(info.Env())) return info.Env().Undefined();
    return Napi::Boolean::New(info.Env(), made_.protocol->Finished());
  }

  Napi::Value Counters(const Napi::CallbackInfo& info) {
    if (!Open(info.Env())) return info.Env().Undefined();
    double values[64];
    const size_t count = made_.protocol->CopyCounters(values, 64);
    return Doubles(info.Env(), values, count);
  }

  // Every peer slot's counters, as the engine shares them with JavaScript (netcode::PeerCounters each).
  Napi::Value PeerCounters(const Napi::CallbackInfo& info) {
    const auto& table = made_.peerCounters;
    if (!table) return Napi::Float64Array::New(info.Env(), 0);
    const size_t count = table->size * (sizeof(netcode::PeerCounters) / sizeof(double));
    return Doubles(info.Env(), reinterpret_cast<const double*>(table->entries.get()), count);
  }

  // Every peer slot's link statistics (linkFields doubles each), empty without the delivery layer.
  Napi::Value Links(const Napi::CallbackInfo& info) {
    const auto& table = made_.peerCounters;
    if (!table || !table->link) return Napi::Float64Array::New(info.Env(), 0);
    const size_t count = size_t{table->size} * table->linkFields;
    Napi::Float64Array out = Napi::Float64Array::New(info.Env(), count);
    for (size_t i = 0; i < count; ++i) out[i] = table->link[i].load(std::memory_order_relaxed);
    return out;
  }

  // The datagrams to send since the last call, [[family, ip (16 bytes), port, data], ...], and the outbox emptied.
  Napi::Value TakeOutbox(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Open(env)) return env.Undefined();
    ProtocolOutput& output = made_.protocol->output;
    Napi::Array out = Napi::Array::New(env, output.outboxCount);
    for (size_t i = 0; i < output.outboxCount; ++i) {
      const ProtocolOutput::Datagram& datagram = output.outbox[i];
      IpAddress ip;
      uint16_t port = 0;
      FromSockaddr(&datagram.name, &ip, &port);
      Napi::Array entry = Napi::Array::New(env, 4);
      entry.Set(0u, Napi::Number::New(env, ip.family));
      entry.Set(1u, Napi::Uint8Array::New(env, 16));
      std::memcpy(entry.Get(1u).As<Napi::Uint8Array>().Data(), ip.bytes, 16);
      entry.Set(2u, Napi::Number::New(env, port));
      Napi::Uint8Array data = Napi::Uint8Array::New(env, datagram.size);
      std::memcpy(data.Data(), datagram.data, datagram.size);
      entry.Set(3u, data);
      out.Set(static_cast<uint32_t>(i), entry);
    }
    output.outboxCount = 0;
    return out;
  }

  // The records since the last call (sockets/socket_protocol.h's layout), and how many: { bytes, count }.
  Napi::Value TakeRecords(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Open(env)) return env.Undefined();
    ProtocolOutput& output = made_.protocol->output;
    Napi::Object out = Napi::Object::New(env);
    Napi::Uint8Array bytes = Napi::Uint8Array::New(env, output.records.size() - output.recordsStart);
    if (bytes.ElementLength() > 0) std::memcpy(bytes.Data(), output.records.data() + output.recordsStart, bytes.ElementLength());
    out.Set("bytes", bytes);
    out.Set("count", Napi::Number::New(env, output.recordCount));
    output.records.clear();
    output.recordsStart = 0;
    output.recordCount = 0;
    return out;
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    made_.protocol.reset();
    return info.Env().Undefined();
  }

  MadeProtocol made_;
};

}  // namespace

Napi::Function SocketProtocolBinding(Napi::Env env) { return SocketProtocolWrap::Define(env); }

Napi::Function UseDeterministicRandomBinding(Napi::Env env) {
  return Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
    uint64_t seed = 0;
    if (ReadInteger(info.Env(), info[0], "seed", 0, kMaxExactInteger, &seed)) testing::UseDeterministicRandom(seed);
    return info.Env().Undefined();
  }, "useDeterministicRandom");
}

}  // namespace volley
