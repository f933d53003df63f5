// N-API surface of the engine. One EngineWrap per engine; JavaScript (src/engine/native.ts) drives it.
// No C++ exceptions cross this boundary: failures become pending JavaScript exceptions.
#include <napi.h>
#include <sodium.h>
#include <sys/socket.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/busy_poll.h"
#include "engine/engine.h"
#include "engine/layout.h"
#include "engine/shared_memory.h"
#include "engine/socket_ids.h"
#include "engine/socket_stats.h"
#include "engine/udp_socket.h"
#include "napi/binding_args.h"
#include "napi/loop_wake.h"
#include "napi/protocol_args.h"
#include "protocol/delivery/link_stats.h"
#include "protocol/netcode/sequence_starts.h"
#include "sockets/netcode_sockets.h"
#include "sockets/network_simulator.h"
#include "sockets/protocol_request.h"
#include "util/address.h"
#include "util/monotonic_clock.h"

#ifndef VOLLEY_SOURCE_HASH
#define VOLLEY_SOURCE_HASH "unknown"
#endif

namespace volley {
namespace {


void ThrowSystemError(Napi::Env env, const SystemError& error) {
  Napi::Error failure = Napi::Error::New(env, std::string(error.syscall) + " " + std::strerror(error.code));
  failure.Set("errno", Napi::Number::New(env, -error.code));
  failure.Set("syscall", Napi::String::New(env, error.syscall));
  failure.ThrowAsJavaScriptException();
}

// As Node reports a failed allocation in its own C++ layer.
void ThrowOutOfMemory(Napi::Env env, const std::string& during) {
  if (env.IsExceptionPending()) return;
  Napi::Error error = Napi::Error::New(env, "Out of memory " + during);
  error.Set("code", Napi::String::New(env, "ERR_MEMORY_ALLOCATION_FAILED"));
  error.ThrowAsJavaScriptException();
}

class EngineWrap : public Napi::ObjectWrap<EngineWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Engine",
                       {
                           InstanceMethod<&EngineWrap::Events>("events"),
                           InstanceMethod<&EngineWrap::AddReceiveSlab>("addReceiveSlab"),
                           InstanceMethod<&EngineWrap::AddSendSlab>("addSendSlab"),
                           InstanceMethod<&EngineWrap::ReceiveSlab>("receiveSlab"),
                           InstanceMethod<&EngineWrap::SendSlab>("sendSlab"),
                           InstanceMethod<&EngineWrap::OpenSocket>("openSocket"),
                           InstanceMethod<&EngineWrap::CloseSocket>("closeSocket"),
                           InstanceMethod<&EngineWrap::ForgetSocket>("forgetSocket"),
                           InstanceMethod<&EngineWrap::Submit>("submit"),
                           InstanceMethod<&EngineWrap::ReadStats>("socketStats"),
                           InstanceMethod<&EngineWrap::ReadProtocolStats>("protocolStats"),
                           InstanceMethod<&EngineWrap::PeerCounterView>("peerCounters"),
                           InstanceMethod<&EngineWrap::PeerLinks>("peerLinks"),
                           InstanceMethod<&EngineWrap::ReleasedSlabsView>("releasedSlabs"),
                           InstanceMethod<&EngineWrap::TakeLarge>("takeLarge"),
                           InstanceMethod<&EngineWrap::LargeBytes>("largeBytes"),
                           InstanceMethod<&EngineWrap::InlineSendsYielded>("inlineSendsYielded"),
                           InstanceMethod<&EngineWrap::ReceivingInline>("receivingInline"),
                           InstanceMethod<&EngineWrap::BusyPollCounts>("busyPollCounts"),
                           InstanceMethod<&EngineWrap::ControlSocket>("control"),
                           InstanceMethod<&EngineWrap::SetRef>("setRef"),
                           InstanceMethod<&EngineWrap::Shutdown>("shutdown"),
                       });
  }

  // new Engine(onEvents: (count: number) => void): onEvents reads `count` events from events().
  explicit EngineWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<EngineWrap>(info) {
    // The addon is built without node-addon-api's C++ exceptions: a std::bad_alloc that reached N-API would
    // terminate the process. Caught where what failed leaves nothing half done: here, and a large message's copy.
    try {
      Construct(info);
    } catch (const std::bad_alloc&) {
      ShutdownNow();  // undoes what was made: node-addon-api deletes the object at once when the constructor throws
      ThrowOutOfMemory(info.Env(), "starting an engine");
    }
  }

  ~EngineWrap() override {
    referenced_ = false;  // being finalized: nothing to release on the wrapper itself
    ShutdownNow();
  }

 private:
  void Construct(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsFunction()) {
      ThrowType(env, "Engine(onEvents: Function) expected");
      return;
    }
    events_ = SharedMemory::Allocate(kEventCapacity * sizeof(Event));
    if (!events_) {
      ThrowOutOfMemory(env, "for the engine's event list");
      return;
    }
    onEvents_ = Napi::Persistent(info[0].As<Napi::Function>());

    // The wake-up exists before the I/O thread that signals it. When either fails, what was made is
    // undone here: node-addon-api deletes the object at once when the constructor throws.
    engine_ = std::make_unique<Engine>([this] { wake_.Signal(); });
    if (!wake_.Open(env, "volley:engine", OnWake, OnTeardown, this)) {
      stopped_ = true;
      Napi::Error::New(env, "could not create the engine's wake-up").ThrowAsJavaScriptException();
      return;
    }
    // JavaScript receives itself between light turns (Engine::ReceiveInline); VOLLEY_INLINE_RECEIVE=0 leaves
    // every datagram to the I/O thread (to measure one against the other).
    const char* inlineReceive = std::getenv("VOLLEY_INLINE_RECEIVE");
    engine_->EnableInlineReceive(inlineReceive == nullptr || std::strcmp(inlineReceive, "0") != 0);
    // And it looks for the next datagram a moment after a turn where request/response traffic shows one
    // is coming (busy_poll.h); VOLLEY_BUSY_POLL=0 never does.
    const char* busyPoll = std::getenv("VOLLEY_BUSY_POLL");
    busyPolling_ = busyPoll == nullptr || std::strcmp(busyPoll, "0") != 0;
    SystemError error;
    if (!engine_->Start(&error)) {  // (the I/O thread calls wake only once a socket exists)
      stopped_ = true;
      wake_.Close();
      ThrowSystemError(env, error);
      return;
    }
    // onEvents_ closes over the JavaScript engine, which holds this wrapper: until shutdown the wrapper
    // is kept (a running engine is never collected), and shutdown breaks the cycle.
    Ref();
    referenced_ = true;
  }

  static void OnTeardown(void* self) { static_cast<EngineWrap*>(self)->ShutdownNow(); }

  static void OnWake(napi_env env, void* self) { static_cast<EngineWrap*>(self)->Drain(Napi::Env(env)); }

  // The engine's epoll set is readable while JavaScript receives itself: one turn here, then its events;
  // then, where request/response traffic shows that the next datagram is a moment away, a look for it
  // and its turn, rather than a sleep in the loop and a wake-up for it (busy_poll.h).
  static void OnReadable(napi_env env, void* self, bool failed) {
    auto* wrap = static_cast<EngineWrap*>(self);
    if (wrap->stopped_) return;
    if (failed) {
      wrap->engine_->WakeIoThread();  // libuv no longer watches: the I/O thread reads
      wrap->Drain(Napi::Env(env));
      return;
    }
    BusyPoll& busyPoll = wrap->busyPoll_;
    busyPoll.WokenAt(MonotonicNs());
    for (int turns = 1;; turns++) {
      if (!wrap->engine_->ReceiveInline()) wrap->wake_.Unwatch();
      wrap->Drain(Napi::Env(env));  // JavaScript's handlers run here, and may close everything
      busyPoll.TurnEnded(MonotonicNs());
      if (!wrap->busyPolling_ || turns >= BusyPoll::kMaxTurnsPerWake || wrap->stopped_ || !wrap->engine_->ReceivingInline() ||
          !busyPoll.ShouldSpin()) {
        return;
      }
      const bool found = wrap->engine_->LookForReadable(BusyPoll::kWindowNs);
      busyPoll.Spun(found);
      if (!found) return;
    }
  }

  void Drain(Napi::Env env) {
    if (stopped_) return;
    // Whether the I/O thread left reading to this thread in the turn that made these events, or took it back.
    if (!engine_->ReceivingInline()) {
      wake_.Unwatch();
    } else if (!wake_.Watch(engine_->watchFd(), OnReadable)) {
      engine_->WakeIoThread();
    }
    Napi::HandleScope scope(env);
    engine_->TakeEvents(&drained_);
    bool calling = true;
    for (size_t first = 0; first < drained_.size(); first += kEventCapacity) {
      const size_t count = std::min(kEventCapacity, drained_.size() - first);
      if (calling) {
        std::memcpy(events_->data(), &drained_[first], count * sizeof(Event));
        napi_value argument = Napi::Number::New(env, static_cast<double>(count));
        // Not onEvents_.Call(): when the environment is being torn down the call fails with
        // napi_pending_exception and node-addon-api's attempt to rethrow aborts the process.
        // A call that threw (the process's uncaught-exception handling had it and went on) does not end
        // the calls: the batches after it are delivered too, or their closes and datagrams would be lost.
        if (!wake_.Call(env, onEvents_.Value(), 1, &argument) || stopped_) calling = false;
      }
      // Whatever happened, JavaScript is done with these batches: their slab space is free again.
      engine_->MarkDelivered(&drained_[first], count);
    }
  }

  void ShutdownNow() {
    if (stopped_) return;
    stopped_ = true;
    wake_.CloseWatch();  // before the engine closes the descriptor
    if (engine_) engine_->Stop();
    receiveSlabs_.clear();  // the I/O thread is gone: the slabs live on only in buffers JavaScript holds
    sendSlabs_.clear();
    wake_.Close();
    // No more events can come: break the cycle through onEvents_ and let the wrapper go.
    onEvents_.Reset();
    if (referenced_) {
      referenced_ = false;
      Unref();
    }
  }

  // events() -> Int32Array: the event list onEvents reads (kEventCapacity events of kEventWords words)
  Napi::Value Events(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::ArrayBuffer buffer = ArrayBufferSharing(env, events_);
    if (buffer.IsEmpty()) return env.Undefined();
    return Napi::Int32Array::New(env, kEventCapacity * kEventWords, buffer, 0);
  }

  // addReceiveSlab() -> id: a receive slab of kSlabSize bytes, made here and read through receiveSlab(id)
  Napi::Value AddReceiveSlab(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (stopped_) {
      ThrowType(env, "addReceiveSlab() on a running engine expected");
      return env.Undefined();
    }
    if (receiveSlabs_.size() >= Engine::kMaxReceiveSlabs) {
      ThrowRange(env, "the engine has its maximum of receive slabs");
      return env.Undefined();
    }
    std::shared_ptr<SharedMemory> slab = SharedMemory::Allocate(kSlabSize);
    if (!slab) {
      ThrowOutOfMemory(env, "for a receive slab");
      return env.Undefined();
    }
    const int id = engine_->AddReceiveSlab(slab->data(), slab->size());
    if (id < 0) {
      ThrowRange(env, "the engine has its maximum of receive slabs");
      return env.Undefined();
    }
    receiveSlabs_.push_back(std::move(slab));
    return Napi::Number::New(env, id);
  }

  // addSendSlab() -> id: a send slab of kSlabSize bytes, made here and written through sendSlab(id)
  Napi::Value AddSendSlab(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (stopped_) {
      ThrowType(env, "addSendSlab() on a running engine expected");
      return env.Undefined();
    }
    if (sendSlabs_.size() >= Engine::kMaxSendSlabs) {
      ThrowRange(env, "the engine has its maximum of send slabs");
      return env.Undefined();
    }
    std::shared_ptr<SharedMemory> slab = SharedMemory::Allocate(kSlabSize);
    if (!slab) {
      ThrowOutOfMemory(env, "for a send slab");
      return env.Undefined();
    }
    sendSlabs_.push_back(std::move(slab));
    return Napi::Number::New(env, static_cast<double>(sendSlabs_.size() - 1));
  }

  // receiveSlab(id) / sendSlab(id) -> ArrayBuffer | null: a new buffer over the slab's memory, each time;
  // JavaScript asks again when something detached the one it had.
  Napi::Value ReceiveSlab(const Napi::CallbackInfo& info) { return SlabBuffer(info.Env(), receiveSlabs_, info[0]); }
  Napi::Value SendSlab(const Napi::CallbackInfo& info) { return SlabBuffer(info.Env(), sendSlabs_, info[0]); }

  static Napi::Value SlabBuffer(Napi::Env env, const std::vector<std::shared_ptr<SharedMemory>>& slabs, Napi::Value id) {
    const uint32_t index = U32Or(id, UINT32_MAX);
    if (index >= slabs.size()) return env.Null();
    Napi::ArrayBuffer buffer = ArrayBufferSharing(env, slabs[index]);
    if (buffer.IsEmpty()) return env.Undefined();
    return buffer;
  }

  // openSocket({ ipv6, ipv6Only, reuseAddress, reusePort, receiveBufferSize, sendBufferSize, address, port,
  //              batchSize, coalesceUs }) -> { id, address, port, family, receiveBufferSize, sendBufferSize }
  Napi::Value OpenSocket(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (stopped_ || !info[0].IsObject()) {
      ThrowType(env, "openSocket(options) on a running engine expected");
      return env.Undefined();
    }
    Napi::Object options = info[0].As<Napi::Object>();
    SocketOptions socketOptions;
    socketOptions.ipv6 = BoolOr(options.Get("ipv6"));
    socketOptions.ipv6Only = BoolOr(options.Get("ipv6Only"));
    socketOptions.reuseAddress = BoolOr(options.Get("reuseAddress"));
    socketOptions.reusePort = BoolOr(options.Get("reusePort"));
    socketOptions.receiveBufferSize = static_cast<int32_t>(I64Or(options.Get("receiveBufferSize"), 0));
    socketOptions.sendBufferSize = static_cast<int32_t>(I64Or(options.Get("sendBufferSize"), 0));
    socketOptions.dontFragment = options.Get("protocol").IsObject();
    const double port = NumberOr(options.Get("port"), NAN);
    const double batchSize = NumberOr(options.Get("batchSize"), NAN);
    const double coalesceUs = NumberOr(options.Get("coalesceUs"), NAN);
    if (!(port >= 0 && port <= 65535) || !(batchSize >= 1 && batchSize <= kMaxBatchSize) ||
        !(coalesceUs >= 0 && coalesceUs <= 1000000)) {
      ThrowRange(env, "port must be 0..65535, batchSize 1..1024 and coalesceUs 0..1000000");
      return env.Undefined();
    }
    if (env.IsExceptionPending()) return env.Undefined();  // an option's getter threw: open nothing
    socketOptions.bindPort = static_cast<uint16_t>(port);
    const std::string address = StringOr(options.Get("address"));
    if (!address.empty()) {
      if (!ParseIp(address, &socketOptions.bindAddress) ||
          (socketOptions.bindAddress.family == 6 && !socketOptions.ipv6)) {
        ThrowType(env, "address '" + address + "' is not an IP address of the socket's family");
        return env.Undefined();
      }
    }
    auto socket = std::make_unique<UdpSocket>();
    SystemError error;
    IpAddress local;
    uint16_t localPort = 0;
    if (!socket->Open(socketOptions, &error) || !socket->LocalAddress(&local, &localPort, &error)) {
      ThrowSystemError(env, error);
      return env.Undefined();
    }
    int receiveBuffer = 0;
    int sendBuffer = 0;
    socklen_t length = sizeof(int);
    getsockopt(socket->fd(), SOL_SOCKET, SO_RCVBUF, &receiveBuffer, &length);
    length = sizeof(int);
    getsockopt(socket->fd(), SOL_SOCKET, SO_SNDBUF, &sendBuffer, &length);

    std::unique_ptr<SocketProtocol> protocol;
    std::shared_ptr<netcode::PeerCounterTable> peerCounters;
    ReplySource replySource;
    Napi::Value protocolOption = options.Get("protocol");
    if (protocolOption.IsObject()) {
      // A server for 2^20 clients holds hundreds of MB: a std::bad_alloc must not reach N-API.
      bool made = false;
      try {
        made = MakeProtocol(env, protocolOption.As<Napi::Object>(), local, localPort, socket->isV6(), &protocol, &peerCounters,
                            &replySource);
      } catch (const std::bad_alloc&) {
        ThrowOutOfMemory(env, "for the socket's protocol");
      }
      if (!made) return env.Undefined();
    }
    if (env.IsExceptionPending()) return env.Undefined();  // a getter of the protocol options threw
    if (stopped_) {  // a getter shut the engine down: it would never open nor close the socket
      ThrowType(env, "openSocket(options) on a running engine expected: an option's getter shut it down");
      return env.Undefined();
    }
    auto stats = std::make_shared<SocketStats>();
    // An id JavaScript has not forgotten yet (its socket's closed event not handled) is still in use.
    const uint32_t id = socketIds_.Next([this](uint32_t candidate) { return stats_.count(candidate) != 0; });
    engine_->AddSocket(id, std::move(socket), static_cast<uint32_t>(batchSize), static_cast<uint32_t>(coalesceUs * 1000), stats,
                       std::move(protocol), replySource);
    stats_[id] = std::move(stats);
    if (peerCounters) peerCounters_[id] = std::move(peerCounters);

    Napi::Object result = Napi::Object::New(env);
    result.Set("id", Napi::Number::New(env, id));
    result.Set("address", Napi::String::New(env, FormatIp(local)));
    result.Set("port", Napi::Number::New(env, localPort));
    result.Set("family", Napi::Number::New(env, local.family));
    result.Set("receiveBufferSize", Napi::Number::New(env, receiveBuffer));
    result.Set("sendBufferSize", Napi::Number::New(env, sendBuffer));
    return result;
  }

  // protocol: the options napi/protocol_args.h reads, for sockets/protocol_request.cc.
  static bool MakeProtocol(Napi::Env env, Napi::Object options, const IpAddress& boundAddress, uint16_t boundPort,
                           bool socketIsV6, std::unique_ptr<SocketProtocol>* out,
                           std::shared_ptr<netcode::PeerCounterTable>* peerCounters, ReplySource* replySource) {
    ProtocolRequest request;
    if (!ReadProtocolRequest(env, options, &request)) return false;
    ProtocolRequestError error;
    MadeProtocol made = MakeSocketProtocol(request, boundPort, MonotonicNs() / 1000, &error);
    if (!made.protocol) {
      ThrowRequestError(env, error);
      return false;
    }
    made.protocol->simulator = ReadNetworkSimulator(options);
    if (request.server) replySource->Configure(boundAddress, made.publicAddress.ip, socketIsV6);
    *peerCounters = std::move(made.peerCounters);
    *out = std::move(made.protocol);
    return true;
  }

  // networkSimulator: { loss, duplicate, reorder, latencyUs, jitterUs, bandwidthBytesPerSec, queueBytes, seed } (checked by
  // JavaScript, src/api/network-simulator.ts) -> a simulator for what the socket sends; none when absent.
  static std::unique_ptr<NetworkSimulator> ReadNetworkSimulator(Napi::Object options) {
    Napi::Value value = options.Get("networkSimulator");
    if (!value.IsObject()) return nullptr;
    return std::make_unique<NetworkSimulator>(ReadNetworkConditions(value.As<Napi::Object>()));
  }

  // peerLinks(socketId) -> Float64Array | null: the link statistics of every peer (layout.linkFields per
  // peer), over the memory the I/O thread writes: read at any time without a native call.
  Napi::Value PeerLinks(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const auto found = peerCounters_.find(U32Or(info[0], UINT32_MAX));
    if (found == peerCounters_.end() || !found->second->link) return env.Null();
    const size_t count = size_t{found->second->size} * found->second->linkFields;
    static_assert(sizeof(std::atomic<double>) == sizeof(double), "link fields are plain doubles in memory");
    Napi::ArrayBuffer buffer = ArrayBufferSharing(env, found->second, static_cast<void*>(found->second->link.get()), count * sizeof(double));
    if (buffer.IsEmpty()) return env.Undefined();
    return Napi::Float64Array::New(env, count, buffer, 0);
  }

  // releasedSlabs() -> Int32Array: the send slabs the I/O thread has finished with (released_slabs.h),
  // over memory it shares with this thread; kept alive by the array as long as JavaScript holds it.
  Napi::Value ReleasedSlabsView(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const std::shared_ptr<ReleasedSlabs>& slabs = engine_->releasedSlabs();
    Napi::ArrayBuffer buffer = ArrayBufferSharing(env, slabs, static_cast<void*>(slabs->words()), ReleasedSlabs::kWords * sizeof(int32_t));
    if (buffer.IsEmpty()) return env.Undefined();
    return Napi::Int32Array::New(env, ReleasedSlabs::kWords, buffer, 0);
  }

  // takeLarge(id) -> ArrayBuffer | null: a message too large for a receive slab (a large-payload record)
  Napi::Value TakeLarge(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto* bytes = new std::vector<uint8_t>();
    if (stopped_ || !engine_->largeMessages().Take(U32Or(info[0], UINT32_MAX), bytes)) {
      delete bytes;
      return env.Null();
    }
    Napi::ArrayBuffer buffer = Napi::ArrayBuffer::New(
        env, bytes->data(), bytes->size(), [](Napi::Env, void*, std::vector<uint8_t>* owned) { delete owned; }, bytes);
    if (buffer.IsEmpty()) delete bytes;  // external buffers refused (a V8 sandbox): the exception is pending
    return buffer;
  }

  // largeBytes() -> number: the bytes of large messages parked for JavaScript and not taken yet
  Napi::Value LargeBytes(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), stopped_ ? 0.0 : static_cast<double>(engine_->largeMessages().bytes()));
  }

  // inlineSendsYielded() -> number: small sends this thread left to the woken I/O thread (for tests)
  Napi::Value InlineSendsYielded(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), stopped_ ? 0.0 : static_cast<double>(engine_->inlineSendsYielded()));
  }

  // busyPollCounts() -> [spins, found]: the looks for a next datagram after a turn, and those that found one (for tests)
  Napi::Value BusyPollCounts(const Napi::CallbackInfo& info) {
    Napi::Array counts = Napi::Array::New(info.Env(), 2);
    counts.Set(0u, Napi::Number::New(info.Env(), static_cast<double>(busyPoll_.spins())));
    counts.Set(1u, Napi::Number::New(info.Env(), static_cast<double>(busyPoll_.found())));
    return counts;
  }

  // receivingInline() -> boolean: whether the I/O thread has left reading to this thread (for tests)
  Napi::Value ReceivingInline(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), !stopped_ && engine_->ReceivingInline());
  }

  // control(socketId, op, arg, data?: Uint8Array, suffix?: number)
  Napi::Value ControlSocket(const Napi::CallbackInfo& info) {
    if (stopped_) return info.Env().Undefined();
    std::vector<uint8_t> data;
    if (info[3].IsTypedArray()) {
      // An optional trailing byte (a large send's channel) goes after the bytes, in the same single copy:
      // the I/O thread drops it and hands the vector to the delivery layer as the message.
      Napi::Uint8Array bytes = info[3].As<Napi::Uint8Array>();
      const bool suffixed = info[4].IsNumber();
      try {  // up to maxMessageBytes (1 GiB): a memory limit may refuse it; nothing is changed before it is made
        data.reserve(bytes.ElementLength() + (suffixed ? 1 : 0));
      } catch (const std::bad_alloc&) {
        ThrowOutOfMemory(info.Env(), "copying a message of " + std::to_string(bytes.ElementLength()) + " bytes");
        return info.Env().Undefined();
      }
      data.insert(data.end(), bytes.Data(), bytes.Data() + bytes.ElementLength());
      if (suffixed) data.push_back(static_cast<uint8_t>(U32Or(info[4], UINT32_MAX)));
    }
    engine_->Control(U32Or(info[0], UINT32_MAX), U32Or(info[1], UINT32_MAX), U32Or(info[2], UINT32_MAX), std::move(data));
    return info.Env().Undefined();
  }

  // protocolStats(id, out: Float64Array(30)) -> boolean: the protocol's 24 counters, then what the kernel
  // dropped of the socket's traffic (receive buffer full) and the sends it refused with an error, then the
  // network simulator's 4 (lost, duplicated, reordered, overflowed; 0 without one).
  Napi::Value ReadProtocolStats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const auto found = stats_.find(U32Or(info[0], UINT32_MAX));
    if (found == stats_.end() || !info[1].IsTypedArray()) return Napi::Boolean::New(env, false);
    Napi::TypedArray out = info[1].As<Napi::TypedArray>();
    constexpr int kFields = SocketStats::kProtocolFieldCount + 2 + SocketStats::kSimulatorFieldCount;
    if (out.TypedArrayType() != napi_float64_array || out.ElementLength() < kFields) {
      ThrowType(env, "protocolStats needs a Float64Array of at least " + std::to_string(kFields) + " elements");
      return env.Undefined();
    }
    // The array's own data pointer: out.ArrayBuffer().Data() is null (and throws) for a SharedArrayBuffer.
    double* target = out.As<Napi::Float64Array>().Data();
    const SocketStats& stats = *found->second;
    for (int i = 0; i < SocketStats::kProtocolFieldCount; ++i) {
      target[i] = stats.protocol[i].load(std::memory_order_relaxed);
    }
    target[SocketStats::kProtocolFieldCount] = static_cast<double>(stats.kernelDrops.load(std::memory_order_relaxed));
    target[SocketStats::kProtocolFieldCount + 1] = static_cast<double>(stats.sendErrors.load(std::memory_order_relaxed));
    for (int i = 0; i < SocketStats::kSimulatorFieldCount; ++i) {
      target[SocketStats::kProtocolFieldCount + 2 + i] = stats.simulator[i].load(std::memory_order_relaxed);
    }
    return Napi::Boolean::New(env, true);
  }

  Napi::Value CloseSocket(const Napi::CallbackInfo& info) {
    if (!stopped_) engine_->CloseSocket(U32Or(info[0], UINT32_MAX));
    return info.Env().Undefined();
  }

  // peerCounters(socketId) -> Float64Array | null: every client slot's packets in, bytes in, packets out, bytes
  // out, clients so far and drops by cause (layout.peerCounterFields per slot: netcode/server.h's PeerCounters),
  // over the memory the I/O thread writes: read at any time without a native call.
  Napi::Value PeerCounterView(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const auto found = peerCounters_.find(U32Or(info[0], UINT32_MAX));
    if (found == peerCounters_.end()) return env.Null();
    const size_t count = size_t{found->second->size} * netcode::kPeerCounterFields;
    Napi::ArrayBuffer buffer = ArrayBufferSharing(env, found->second, static_cast<void*>(found->second->entries.get()), count * sizeof(double));
    if (buffer.IsEmpty()) return env.Undefined();
    return Napi::Float64Array::New(env, count, buffer, 0);
  }

  Napi::Value ForgetSocket(const Napi::CallbackInfo& info) {
    peerCounters_.erase(U32Or(info[0], UINT32_MAX));
    stats_.erase(U32Or(info[0], UINT32_MAX));
    return info.Env().Undefined();
  }

  // submit(slabId, byteLength): the slab's records are handed to the I/O thread.
  Napi::Value Submit(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const uint32_t slab = U32Or(info[0], UINT32_MAX);
    const double length = NumberOr(info[1], NAN);
    if (stopped_ || slab >= sendSlabs_.size() || !(length >= 0 && length <= sendSlabs_[slab]->size())) {
      ThrowRange(env, "submit(slab, length): unknown slab or length beyond it");
      return env.Undefined();
    }
    engine_->SubmitSendSlab(slab, sendSlabs_[slab]->data(), static_cast<size_t>(length));
    return env.Undefined();
  }

  // socketStats(id, out: Float64Array) -> boolean
  Napi::Value ReadStats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const auto found = stats_.find(U32Or(info[0], UINT32_MAX));
    if (found == stats_.end() || !info[1].IsTypedArray()) return Napi::Boolean::New(env, false);
    Napi::TypedArray out = info[1].As<Napi::TypedArray>();
    if (out.TypedArrayType() != napi_float64_array || out.ElementLength() < SocketStats::kFieldCount) {
      ThrowType(env, "socketStats needs a Float64Array of at least " + std::to_string(SocketStats::kFieldCount) + " elements");
      return env.Undefined();
    }
    found->second->CopyTo(out.As<Napi::Float64Array>().Data());  // (not out.ArrayBuffer(): see ReadProtocolStats)
    return Napi::Boolean::New(env, true);
  }

  // setRef(true) keeps the event loop alive while the engine has work; setRef(false) lets the process exit.
  Napi::Value SetRef(const Napi::CallbackInfo& info) {
    if (!stopped_) wake_.SetRef(BoolOr(info[0]));
    return info.Env().Undefined();
  }

  Napi::Value Shutdown(const Napi::CallbackInfo& info) {
    ShutdownNow();
    return info.Env().Undefined();
  }

  std::unique_ptr<Engine> engine_;
  LoopWake wake_;
  BusyPoll busyPoll_;  // JavaScript thread only
  bool busyPolling_ = true;
  bool stopped_ = false;
  bool referenced_ = false;
  std::shared_ptr<SharedMemory> events_;
  Napi::FunctionReference onEvents_;
  // The slabs, by id; the I/O thread uses them until it has stopped, JavaScript through its buffers.
  std::vector<std::shared_ptr<SharedMemory>> receiveSlabs_;
  std::vector<std::shared_ptr<SharedMemory>> sendSlabs_;
  std::unordered_map<uint32_t, std::shared_ptr<SocketStats>> stats_;  // by socket id: the ids in use
  SocketIds socketIds_;
  std::unordered_map<uint32_t, std::shared_ptr<netcode::PeerCounterTable>> peerCounters_;
  std::vector<Event> drained_;
};

// parseIp(text, out: Uint8Array(20)) -> 0 | 4 | 6; out = 16 address bytes + u32 scope id (little-endian)
Napi::Value ParseIpBinding(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString() || !info[1].IsTypedArray()) return Napi::Number::New(env, 0);
  Napi::Uint8Array out = info[1].As<Napi::Uint8Array>();
  if (out.ElementLength() < 20) return Napi::Number::New(env, 0);
  IpAddress address;
  if (!ParseIp(info[0].As<Napi::String>().Utf8Value(), &address)) return Napi::Number::New(env, 0);
  std::memcpy(out.Data(), address.bytes, 16);
  std::memcpy(out.Data() + 16, &address.scopeId, 4);
  return Napi::Number::New(env, address.family);
}

// formatIp(bytes: Uint8Array(16), family, scopeId = 0) -> string
Napi::Value FormatIpBinding(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray()) return Napi::String::New(env, "");
  Napi::Uint8Array bytes = info[0].As<Napi::Uint8Array>();
  IpAddress address;
  address.family = static_cast<uint8_t>(U32Or(info[1], UINT32_MAX));
  address.scopeId = info.Length() > 2 ? U32Or(info[2], 0) : 0;
  const size_t size = std::min<size_t>(16, bytes.ElementLength());
  if (size > 0) std::memcpy(address.bytes, bytes.Data(), size);
  return Napi::String::New(env, FormatIp(address));
}

Napi::Object Layout(Napi::Env env) {
  Napi::Object layout = Napi::Object::New(env);
  layout.Set("revision", Napi::Number::New(env, kLayoutRevision));
  layout.Set("maxDatagramSize", Napi::Number::New(env, kMaxDatagramSize));
  layout.Set("maxBatchSize", Napi::Number::New(env, kMaxBatchSize));
  layout.Set("receiveHeadSize", Napi::Number::New(env, kReceiveHeadSize));
  layout.Set("recvHeaderSize", Napi::Number::New(env, kRecvHeaderSize));
  layout.Set("sendHeaderSize", Napi::Number::New(env, kSendHeaderSize));
  layout.Set("slabSize", Napi::Number::New(env, kSlabSize));
  layout.Set("eventWords", Napi::Number::New(env, kEventWords));
  layout.Set("eventCapacity", Napi::Number::New(env, kEventCapacity));
  layout.Set("maxReceiveSlabs", Napi::Number::New(env, Engine::kMaxReceiveSlabs));
  layout.Set("maxSendSlabs", Napi::Number::New(env, Engine::kMaxSendSlabs));
  layout.Set("statsFields", Napi::Number::New(env, SocketStats::kFieldCount));
  layout.Set("peerRecordHeaderSize", Napi::Number::New(env, kPeerRecordHeaderSize));
  layout.Set("releasedSlabsCapacity", Napi::Number::New(env, ReleasedSlabs::kCapacity));
  layout.Set("queuedMessageOverheadBytes", Napi::Number::New(env, static_cast<double>(delivery::kQueuedMessageOverheadBytes)));
  layout.Set("peerSlotBits", Napi::Number::New(env, kPeerSlotBits));
  layout.Set("linkFields", Napi::Number::New(env, delivery::kLinkFieldCount));
  layout.Set("peerCounterFields", Napi::Number::New(env, netcode::kPeerCounterFields));
  layout.Set("maxPrivateKeys", Napi::Number::New(env, static_cast<double>(netcode::kMaxPrivateKeys)));
  return layout;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  if (sodium_init() < 0) {
    Napi::Error::New(env, "libsodium failed to initialise").ThrowAsJavaScriptException();
    return exports;
  }
  exports.Set("Engine", EngineWrap::Define(env));
  exports.Set("parseIp", Napi::Function::New<ParseIpBinding>(env, "parseIp"));
  exports.Set("formatIp", Napi::Function::New<FormatIpBinding>(env, "formatIp"));
  exports.Set("layout", Layout(env));
  exports.Set("sharedMemoryBytes", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
                return Napi::Number::New(info.Env(), static_cast<double>(SharedMemory::LiveBytes()));
              }, "sharedMemoryBytes"));
  exports.Set("sourceHash", Napi::String::New(env, VOLLEY_SOURCE_HASH));
  exports.Set("sodiumVersion", Napi::String::New(env, sodium_version_string()));
  return exports;
}

}  // namespace
}  // namespace volley

Napi::Object InitVolley(Napi::Env env, Napi::Object exports) { return volley::Init(env, exports); }

NODE_API_MODULE(volley, InitVolley)
