#include "testing/netcode_binding.h"

#include <sodium.h>

#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <string>

#include "napi/binding_args.h"
#include "protocol/netcode/challenge_token.h"
#include "protocol/netcode/connect_token.h"
#include "protocol/netcode/packet.h"
#include "protocol/netcode/replay_window.h"
#include "protocol/netcode/client.h"
#include "protocol/netcode/server.h"

#include <vector>

namespace volley {
namespace {

using netcode::DropReason;

bool Fail(Napi::Env env, const std::string& message) {
  if (env.IsExceptionPending()) return false;  // see binding_args.h
  Napi::Error error = Napi::TypeError::New(env, message);
  error.Set("code", Napi::String::New(env, "ERR_INVALID_ARG_VALUE"));
  error.ThrowAsJavaScriptException();
  return false;
}

bool GetU64(Napi::Env env, Napi::Value value, const char* name, uint64_t* out) {
  if (!value.IsBigInt()) return Fail(env, std::string(name) + " must be a bigint");
  bool lossless = false;
  *out = value.As<Napi::BigInt>().Uint64Value(&lossless);
  return lossless || Fail(env, std::string(name) + " must fit in 64 bits unsigned");
}

// Points *out at the bytes of a Uint8Array of exactly `size` bytes (0: any size, *size written back).
bool GetBytes(Napi::Env env, Napi::Value value, const char* name, size_t size, const uint8_t** out,
              size_t* actual = nullptr) {
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    return Fail(env, std::string(name) + " must be a Uint8Array");
  }
  Napi::Uint8Array array = value.As<Napi::Uint8Array>();
  if (size != 0 && array.ElementLength() != size) {
    return Fail(env, std::string(name) + " must be " + std::to_string(size) + " bytes");
  }
  *out = array.Data();
  if (actual != nullptr) *actual = array.ElementLength();
  return true;
}

Napi::Uint8Array Copy(Napi::Env env, const uint8_t* data, size_t size) {
  Napi::Uint8Array array = Napi::Uint8Array::New(env, size);
  if (size > 0) std::memcpy(array.Data(), data, size);
  return array;
}

std::string FormatServerAddress(const netcode::ServerAddress& address) {
  const std::string host = FormatIp(address.ip);
  return (address.ip.family == 6 ? "[" + host + "]" : host) + ":" + std::to_string(address.port);
}

Napi::Array Addresses(Napi::Env env, const netcode::ServerAddress* addresses, uint32_t count) {
  Napi::Array list = Napi::Array::New(env, count);
  for (uint32_t i = 0; i < count; ++i) list.Set(i, FormatServerAddress(addresses[i]));
  return list;
}

Napi::Object PrivateTokenObject(Napi::Env env, const netcode::PrivateConnectToken& token) {
  Napi::Object result = Napi::Object::New(env);
  result.Set("clientId", Napi::BigInt::New(env, token.clientId));
  result.Set("timeoutSeconds", Napi::Number::New(env, token.timeoutSeconds));
  result.Set("serverAddresses", Addresses(env, token.serverAddresses, token.serverAddressCount));
  result.Set("clientToServerKey", Copy(env, token.clientToServerKey, netcode::kKeyBytes));
  result.Set("serverToClientKey", Copy(env, token.serverToClientKey, netcode::kKeyBytes));
  result.Set("userData", Copy(env, token.userData, netcode::kUserDataBytes));
  return result;
}

// generateConnectToken({ protocolId, privateKey, clientId, serverAddresses, createTimestamp, expireTimestamp,
//                        timeoutSeconds, userData, clientToServerKey, serverToClientKey, nonce }) -> Uint8Array
Napi::Value GenerateConnectToken(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) return Fail(env, "options must be an object"), env.Undefined();
  Napi::Object options = info[0].As<Napi::Object>();
  netcode::ConnectToken token;
  netcode::PrivateConnectToken secret;
  const uint8_t *privateKey, *userData, *c2s, *s2c, *nonce;
  // A getter runs JavaScript, which may shrink or detach a buffer whose bytes were located before it: every
  // buffer is read first, then located and copied with no JavaScript in between.
  const Napi::Value privateKeyValue = options.Get("privateKey"), userDataValue = options.Get("userData"),
                    c2sValue = options.Get("clientToServerKey"), s2cValue = options.Get("serverToClientKey"),
                    nonceValue = options.Get("nonce");
  if (!GetU64(env, options.Get("protocolId"), "protocolId", &token.protocolId) ||
      !GetU64(env, options.Get("clientId"), "clientId", &secret.clientId) ||
      !GetU64(env, options.Get("createTimestamp"), "createTimestamp", &token.createTimestamp) ||
      !GetU64(env, options.Get("expireTimestamp"), "expireTimestamp", &token.expireTimestamp) ||
      !GetBytes(env, privateKeyValue, "privateKey", netcode::kKeyBytes, &privateKey) ||
      !GetBytes(env, userDataValue, "userData", netcode::kUserDataBytes, &userData) ||
      !GetBytes(env, c2sValue, "clientToServerKey", netcode::kKeyBytes, &c2s) ||
      !GetBytes(env, s2cValue, "serverToClientKey", netcode::kKeyBytes, &s2c) ||
      !GetBytes(env, nonceValue, "nonce", netcode::kConnectTokenNonceBytes, &nonce)) {
    return env.Undefined();
  }
  // The private key's copy, wiped however the call ends (a failure below returns early).
  struct KeyCopy {
    uint8_t bytes[netcode::kKeyBytes];
    ~KeyCopy() { sodium_memzero(bytes, sizeof bytes); }
  } key;
  std::memcpy(key.bytes, privateKey, netcode::kKeyBytes);
  std::memcpy(token.clientToServerKey, c2s, netcode::kKeyBytes);
  std::memcpy(secret.clientToServerKey, c2s, netcode::kKeyBytes);
  std::memcpy(token.serverToClientKey, s2c, netcode::kKeyBytes);
  std::memcpy(secret.serverToClientKey, s2c, netcode::kKeyBytes);
  std::memcpy(secret.userData, userData, netcode::kUserDataBytes);
  std::memcpy(token.nonce, nonce, netcode::kConnectTokenNonceBytes);
  Napi::Value list = options.Get("serverAddresses");
  if (!list.IsArray()) return Fail(env, "serverAddresses must be an array"), env.Undefined();
  Napi::Array addresses = list.As<Napi::Array>();
  // Read once: an element's getter may change the array's length, and the token holds at most 32.
  const uint32_t count = addresses.Length();
  if (count < 1 || count > netcode::kMaxServerAddresses) {
    return Fail(env, "serverAddresses must hold 1 to 32 addresses"), env.Undefined();
  }
  token.serverAddressCount = secret.serverAddressCount = count;
  for (uint32_t i = 0; i < count; ++i) {
    const std::string text = StringOr(addresses.Get(i));
    if (!netcode::ParseServerAddress(text, &token.serverAddresses[i])) {
      return Fail(env, "server address '" + text + "' does not parse as a destination"), env.Undefined();
    }
    secret.serverAddresses[i] = token.serverAddresses[i];
  }
  const int64_t timeoutSeconds = I64Or(options.Get("timeoutSeconds"), 0);
  if (timeoutSeconds < INT32_MIN || timeoutSeconds > INT32_MAX) {
    return Fail(env, "timeoutSeconds must fit in 32 bits signed"), env.Undefined();
  }
  token.timeoutSeconds = secret.timeoutSeconds = static_cast<int32_t>(timeoutSeconds);
  const bool sealed = netcode::SealPrivateConnectToken(secret, token.protocolId, token.expireTimestamp, token.nonce, key.bytes,
                                                       token.privateData);
  if (!sealed) return Fail(env, "the private connect token could not be sealed"), env.Undefined();
  Napi::Uint8Array out = Napi::Uint8Array::New(env, netcode::kConnectTokenBytes);
  netcode::WriteConnectToken(token, out.Data());
  return out;
}

// readConnectToken(bytes) -> public fields, or null when it is not a valid token
Napi::Value ReadConnectToken(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const uint8_t* data;
  size_t size = 0;
  if (!GetBytes(env, info[0], "token", 0, &data, &size)) return env.Undefined();
  netcode::ConnectToken token;
  if (!netcode::ReadConnectToken(data, size, &token)) return env.Null();
  Napi::Object result = Napi::Object::New(env);
  result.Set("protocolId", Napi::BigInt::New(env, token.protocolId));
  result.Set("createTimestamp", Napi::BigInt::New(env, token.createTimestamp));
  result.Set("expireTimestamp", Napi::BigInt::New(env, token.expireTimestamp));
  result.Set("nonce", Copy(env, token.nonce, netcode::kConnectTokenNonceBytes));
  result.Set("privateData", Copy(env, token.privateData, netcode::kPrivateConnectTokenBytes));
  result.Set("timeoutSeconds", Napi::Number::New(env, token.timeoutSeconds));
  result.Set("serverAddresses", Addresses(env, token.serverAddresses, token.serverAddressCount));
  result.Set("clientToServerKey", Copy(env, token.clientToServerKey, netcode::kKeyBytes));
  result.Set("serverToClientKey", Copy(env, token.serverToClientKey, netcode::kKeyBytes));
  return result;
}

// writeConnectionRequest(tokenBytes) -> the 1078-byte request for that token
Napi::Value WriteConnectionRequest(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const uint8_t* data;
  if (!GetBytes(env, info[0], "token", netcode::kConnectTokenBytes, &data)) return env.Undefined();
  netcode::ConnectToken token;
  if (!netcode::ReadConnectToken(data, netcode::kConnectTokenBytes, &token)) return env.Null();
  Napi::Uint8Array out = Napi::Uint8Array::New(env, netcode::kConnectionRequestBytes);
  netcode::WriteConnectionRequest(token, out.Data());
  return out;
}

// readConnectionRequest(packet, protocolId, privateKey, nowSeconds) -> { reason, ...private token }
Napi::Value ReadConnectionRequest(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const uint8_t *packet, *privateKey;
  size_t size = 0;
  uint64_t protocolId, now;
  if (!GetBytes(env, info[0], "packet", 0, &packet, &size) || !GetU64(env, info[1], "protocolId", &protocolId) ||
      !GetBytes(env, info[2], "privateKey", netcode::kKeyBytes, &privateKey) || !GetU64(env, info[3], "now", &now)) {
    return env.Undefined();
  }
  netcode::ConnectionRequest request;
  const netcode::PrivateKeys keys(privateKey);
  const DropReason reason = netcode::ReadConnectionRequest(packet, size, protocolId, keys, now, &request);
  if (reason != DropReason::kNone) {
    Napi::Object result = Napi::Object::New(env);
    result.Set("reason", netcode::DropReasonName(reason));
    return result;
  }
  Napi::Object result = PrivateTokenObject(env, request.token);
  result.Set("reason", "none");
  result.Set("expireTimestamp", Napi::BigInt::New(env, request.expireTimestamp));
  return result;
}

// openPrivateConnectToken(sealed, protocolId, expireTimestamp, nonce, key) -> private token or null
Napi::Value OpenPrivateConnectToken(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const uint8_t *sealed, *nonce, *key;
  uint64_t protocolId, expire;
  if (!GetBytes(env, info[0], "sealed", netcode::kPrivateConnectTokenBytes, &sealed) ||
      !GetU64(env, info[1], "protocolId", &protocolId) || !GetU64(env, info[2], "expireTimestamp", &expire) ||
      !GetBytes(env, info[3], "nonce", netcode::kConnectTokenNonceBytes, &nonce) ||
      !GetBytes(env, info[4], "key", netcode::kKeyBytes, &key)) {
    return env.Undefined();
  }
  netcode::PrivateConnectToken token;
  if (!netcode::OpenPrivateConnectToken(sealed, protocolId, expire, nonce, key, &token)) return env.Null();
  return PrivateTokenObject(env, token);
}

// encryptPacket(type, sequence, body, protocolId, key) -> Uint8Array
Napi::Value EncryptPacket(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const uint32_t type = U32Or(info[0], UINT32_MAX);
  const uint8_t *body, *key;
  size_t bodySize = 0;
  uint64_t sequence, protocolId;
  if (!GetU64(env, info[1], "sequence", &sequence) || !GetBytes(env, info[2], "body", 0, &body, &bodySize) ||
      !GetU64(env, info[3], "protocolId", &protocolId) || !GetBytes(env, info[4], "key", netcode::kKeyBytes, &key)) {
    return env.Undefined();
  }
  if (type < 1 || type >= netcode::kPacketTypeCount || bodySize > netcode::kMaxPayloadBytes) {
    return Fail(env, "encryptPacket: type 1..6 and a body of at most 1200 bytes"), env.Undefined();
  }
  uint8_t out[netcode::kMaxPacketBytes];
  const size_t size = netcode::EncryptPacket(static_cast<netcode::PacketType>(type), sequence, body, bodySize,
                                             protocolId, key, out);
  return Copy(env, out, size);
}

class ReplayWindowWrap : public Napi::ObjectWrap<ReplayWindowWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "ReplayWindow",
                       {InstanceMethod<&ReplayWindowWrap::AlreadyReceived>("alreadyReceived"),
                        InstanceMethod<&ReplayWindowWrap::Advance>("advance"),
                        InstanceMethod<&ReplayWindowWrap::ResetBelow>("resetBelow"),
                        InstanceMethod<&ReplayWindowWrap::ReceivedEnd>("receivedEnd")});
  }
  explicit ReplayWindowWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ReplayWindowWrap>(info) {
    info.This().As<Napi::Object>().TypeTag(&kTag);
  }
  // The window of a ReplayWindow object, or nullptr for any other value (an object some other class
  // wraps too: unwrapping it as this one would read a foreign object).
  static netcode::ReplayWindow* Of(const Napi::Value& value) {
    if (!value.IsObject() || !value.As<Napi::Object>().CheckTypeTag(&kTag)) return nullptr;
    return &Unwrap(value.As<Napi::Object>())->window;
  }
  netcode::ReplayWindow window;
  static constexpr napi_type_tag kTag = {0x766f6c6c65797265ull, 0x706c617977696e64ull};

 private:
  Napi::Value AlreadyReceived(const Napi::CallbackInfo& info) {
    uint64_t sequence;
    if (!GetU64(info.Env(), info[0], "sequence", &sequence)) return info.Env().Undefined();
    return Napi::Boolean::New(info.Env(), window.AlreadyReceived(sequence));
  }
  Napi::Value Advance(const Napi::CallbackInfo& info) {
    uint64_t sequence;
    if (GetU64(info.Env(), info[0], "sequence", &sequence)) window.Advance(sequence);
    return info.Env().Undefined();
  }
  Napi::Value ResetBelow(const Napi::CallbackInfo& info) {
    uint64_t end;
    if (GetU64(info.Env(), info[0], "end", &end)) window.ResetBelow(end);
    return info.Env().Undefined();
  }
  Napi::Value ReceivedEnd(const Napi::CallbackInfo& info) { return Napi::BigInt::New(info.Env(), window.ReceivedEnd()); }
};

// The server's table of connected addresses, for a test against a model: insert/find/erase by
// 'a.b.c.d:port' or '[v6]:port'.
class AddressTableWrap : public Napi::ObjectWrap<AddressTableWrap> {
 public:
  static constexpr uint32_t kMaxTableCapacity = 1u << 22;  // a test surface: what a server could ever hold
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "AddressTable",
                       {InstanceMethod<&AddressTableWrap::Insert>("insert"), InstanceMethod<&AddressTableWrap::Set>("set"),
                        InstanceMethod<&AddressTableWrap::Find>("find"), InstanceMethod<&AddressTableWrap::Erase>("erase"),
                        InstanceAccessor<&AddressTableWrap::Size>("size")});
  }
  // new AddressTable(capacity)
  explicit AddressTableWrap(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<AddressTableWrap>(info), table_(std::min<uint32_t>(U32Or(info[0], 16), kMaxTableCapacity)) {
    info.This().As<Napi::Object>().TypeTag(&kTag);
  }
  // What node-addon-api calls to find the table of `this` (binding_args.h: the size getter can be called on
  // any object).
  static AddressTableWrap* Unwrap(Napi::Object object) { return UnwrapTagged<AddressTableWrap>(object, &kTag); }
  static constexpr napi_type_tag kTag = {0x766f6c6c65796164ull, 0x6472657373746162ull};

 private:
  bool Key(const Napi::CallbackInfo& info, netcode::AddressKey* out) {
    netcode::ServerAddress address;
    if (!info[0].IsString() || !netcode::ParseDatagramSource(info[0].As<Napi::String>().Utf8Value(), &address)) {
      Fail(info.Env(), "an address 'a.b.c.d:port' or '[v6]:port'");
      return false;
    }
    *out = netcode::AddressKey::Of(address);
    return true;
  }
  // A value the table can hold: kNone marks its empty entries.
  bool Value(const Napi::CallbackInfo& info, uint32_t* out) {
    uint64_t value;
    if (!ReadInteger(info.Env(), info[1], "value", 0, netcode::AddressTable::kNone - 1, &value)) return false;
    *out = static_cast<uint32_t>(value);
    return true;
  }
  Napi::Value Insert(const Napi::CallbackInfo& info) {
    netcode::AddressKey key;
    uint32_t value;
    if (!Key(info, &key) || !Value(info, &value)) return info.Env().Undefined();
    return Napi::Boolean::New(info.Env(), table_.Insert(key, value));
  }
  Napi::Value Set(const Napi::CallbackInfo& info) {
    netcode::AddressKey key;
    uint32_t value;
    if (!Key(info, &key) || !Value(info, &value)) return info.Env().Undefined();
    table_.Set(key, value);
    return info.Env().Undefined();
  }
  Napi::Value Find(const Napi::CallbackInfo& info) {
    netcode::AddressKey key;
    if (!Key(info, &key)) return info.Env().Undefined();
    const uint32_t value = table_.Find(key);
    return value == netcode::AddressTable::kNone ? info.Env().Null() : Napi::Number::New(info.Env(), value);
  }
  Napi::Value Erase(const Napi::CallbackInfo& info) {
    netcode::AddressKey key;
    if (!Key(info, &key)) return info.Env().Undefined();
    return Napi::Boolean::New(info.Env(), table_.Erase(key));
  }
  Napi::Value Size(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(table_.size())); }

  netcode::AddressTable table_;
};

// readEncryptedPacket(packet, protocolId, key, acceptMask, replay?) -> { reason } | { reason: 'none', type, sequence, body }
Napi::Value ReadEncryptedPacket(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const uint8_t *packet, *key;
  size_t size = 0;
  uint64_t protocolId;
  if (!GetBytes(env, info[0], "packet", 0, &packet, &size) || !GetU64(env, info[1], "protocolId", &protocolId) ||
      !GetBytes(env, info[2], "key", netcode::kKeyBytes, &key)) {
    return env.Undefined();
  }
  const uint32_t acceptMask = U32Or(info[3], UINT32_MAX);
  netcode::ReplayWindow* replay = nullptr;
  if (!info[4].IsUndefined()) {
    replay = ReplayWindowWrap::Of(info[4]);
    if (replay == nullptr) return Fail(env, "readEncryptedPacket: replay must be a ReplayWindow"), env.Undefined();
  }
  netcode::Packet result;
  uint8_t body[netcode::kMaxPayloadBytes];
  const DropReason reason = netcode::ReadEncryptedPacket(packet, size, protocolId, key, acceptMask, replay, &result, body);
  Napi::Object out = Napi::Object::New(env);
  out.Set("reason", netcode::DropReasonName(reason));
  if (reason == DropReason::kNone) {
    out.Set("type", Napi::Number::New(env, result.type));
    out.Set("sequence", Napi::BigInt::New(env, result.sequence));
    out.Set("body", Copy(env, body, result.bodySize));
  }
  return out;
}

// sealChallengeToken(clientId, userData, sequence, key) -> Uint8Array(300)
Napi::Value SealChallengeToken(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  netcode::ChallengeToken token;
  const uint8_t *userData, *key;
  uint64_t sequence;
  if (!GetU64(env, info[0], "clientId", &token.clientId) ||
      !GetBytes(env, info[1], "userData", netcode::kUserDataBytes, &userData) ||
      !GetU64(env, info[2], "sequence", &sequence) || !GetBytes(env, info[3], "key", netcode::kKeyBytes, &key)) {
    return env.Undefined();
  }
  std::memcpy(token.userData, userData, netcode::kUserDataBytes);
  Napi::Uint8Array out = Napi::Uint8Array::New(env, netcode::kChallengeTokenBytes);
  netcode::SealChallengeToken(token, sequence, key, out.Data());
  return out;
}

// openChallengeToken(sealed, sequence, key) -> { clientId, userData } | null
Napi::Value OpenChallengeToken(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const uint8_t *sealed, *key;
  uint64_t sequence;
  if (!GetBytes(env, info[0], "sealed", netcode::kChallengeTokenBytes, &sealed) ||
      !GetU64(env, info[1], "sequence", &sequence) || !GetBytes(env, info[2], "key", netcode::kKeyBytes, &key)) {
    return env.Undefined();
  }
  netcode::ChallengeToken token;
  if (!netcode::OpenChallengeToken(sealed, sequence, key, &token)) return env.Null();
  Napi::Object result = Napi::Object::New(env);
  result.Set("clientId", Napi::BigInt::New(env, token.clientId));
  result.Set("userData", Copy(env, token.userData, netcode::kUserDataBytes));
  return result;
}


// What a state machine did during one call from JavaScript, as an array of events for the test to read: its
// events as polled after the call, then the datagrams it sent, in the order it sent them.
class EventLog : public netcode::DatagramOut {
 public:
  void Send(const netcode::ServerAddress& to, const uint8_t* data, size_t size) override { LogSend(to, data, size); }

 protected:
  void StartLog(Napi::Env env) {
    env_ = env;
    events_ = Napi::Array::New(env);
    sends_ = Napi::Array::New(env);
  }
  // The log: the events, then the sends.
  Napi::Array Done() {
    for (uint32_t i = 0; i < sends_.Length(); ++i) events_.Set(events_.Length(), sends_.Get(i));
    sends_ = Napi::Array::New(env_);
    return events_;
  }
  Napi::Object Event(const char* kind) {
    Napi::Object event = Napi::Object::New(env_);
    event.Set("kind", kind);
    events_.Set(events_.Length(), event);
    return event;
  }
  void LogSend(const netcode::ServerAddress& to, const uint8_t* data, size_t size) {
    Napi::Object event = Napi::Object::New(env_);
    event.Set("kind", "send");
    event.Set("to", FormatServerAddress(to));
    event.Set("data", Copy(env_, data, size));
    sends_.Set(sends_.Length(), event);
  }

  Napi::Env env_ = Napi::Env(nullptr);
  Napi::Array events_;
  Napi::Array sends_;
};

// A deadline for JavaScript: null for "never".
Napi::Value Deadline(Napi::Env env, uint64_t deadline, uint64_t never) {
  return deadline == never ? env.Null() : Napi::Number::New(env, static_cast<double>(deadline));
}

// Counters as an object of numbers.
Napi::Object Counters(Napi::Env env, std::initializer_list<std::pair<const char*, uint64_t>> fields) {
  Napi::Object counters = Napi::Object::New(env);
  for (const auto& field : fields) counters.Set(field.first, Napi::Number::New(env, static_cast<double>(field.second)));
  return counters;
}

// The server state machine driven from JavaScript with a fake clock (tests; the engine drives it itself).
// new ServerCore({ protocolId, privateKey, publicAddress, maxClients, challengeKey, keepAliveIntervalUs,
//                  disconnectIntervalUs, disconnectPackets, layerAboveEveryUs, layerAboveStartUs,
//                  previousKeys: [{ key, untilUs }] })
// Every call takes the clock as (monotonicUs: number, unixSeconds: bigint) and returns what the server did:
// [{ kind: 'send', to, data } | { kind: 'connect', index, clientId, address, userData }
//  | { kind: 'disconnect', index, reason } | { kind: 'payload', index, data }]
class ServerCoreWrap : public Napi::ObjectWrap<ServerCoreWrap>, private EventLog {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "ServerCore",
                       {InstanceMethod<&ServerCoreWrap::Receive>("receive"),
                        InstanceMethod<&ServerCoreWrap::ReceiveBatchJs>("receiveBatch"),
                        InstanceMethod<&ServerCoreWrap::Update>("update"),
                        InstanceMethod<&ServerCoreWrap::SendPayloadJs>("sendPayload"),
                        InstanceMethod<&ServerCoreWrap::DisconnectJs>("disconnect"),
                        InstanceMethod<&ServerCoreWrap::StopJs>("stop"),
                        InstanceMethod<&ServerCoreWrap::PauseTimeoutsJs>("pauseTimeouts"),
                        InstanceMethod<&ServerCoreWrap::ResumeTimeoutsJs>("resumeTimeouts"),
                        InstanceMethod<&ServerCoreWrap::RotatePrivateKeyJs>("rotatePrivateKey"),
                        InstanceMethod<&ServerCoreWrap::ReceiveRequestsJs>("receiveRequests"),
                        InstanceMethod<&ServerCoreWrap::State>("state")});
  }

  explicit ServerCoreWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ServerCoreWrap>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsObject()) {
      Fail(env, "ServerCore(options) expected");
      return;
    }
    Napi::Object options = info[0].As<Napi::Object>();
    netcode::ServerConfig config;
    const uint8_t *privateKey, *challengeKey;
    const Napi::Value privateKeyValue = options.Get("privateKey"), challengeKeyValue = options.Get("challengeKey");
    if (!GetU64(env, options.Get("protocolId"), "protocolId", &config.protocolId) ||
        !GetBytes(env, privateKeyValue, "privateKey", netcode::kKeyBytes, &privateKey) ||
        !GetBytes(env, challengeKeyValue, "challengeKey", netcode::kKeyBytes, &challengeKey)) {
      return;
    }
    std::memcpy(config.privateKey, privateKey, netcode::kKeyBytes);
    // Copied before the getters below run JavaScript, which could shrink or detach its buffer.
    uint8_t challengeKeyCopy[netcode::kKeyBytes];
    std::memcpy(challengeKeyCopy, challengeKey, netcode::kKeyBytes);
    challengeKey = challengeKeyCopy;
    const std::string address = StringOr(options.Get("publicAddress"));
    if (!netcode::ParseServerAddress(address, &config.publicAddress)) {
      Fail(env, "publicAddress '" + address + "' does not parse as a destination");
      return;
    }
    config.maxClients = U32Or(options.Get("maxClients"), 0);
    if (config.maxClients < 1 || config.maxClients > (1u << 20)) {
      Fail(env, "maxClients must be 1..1048576");
      return;
    }
    if (options.Has("keepAliveIntervalUs")) config.keepAliveIntervalUs = I64Or(options.Get("keepAliveIntervalUs"), 0);
    if (options.Has("disconnectIntervalUs")) config.disconnectIntervalUs = I64Or(options.Get("disconnectIntervalUs"), 0);
    if (options.Has("disconnectPackets")) config.disconnectPackets = U32Or(options.Get("disconnectPackets"), 0);
    if (options.Has("challengeSequenceStart") &&
        !GetU64(env, options.Get("challengeSequenceStart"), "challengeSequenceStart", &config.challengeSequenceStart)) {
      return;
    }
    if (options.Has("previousKeys") && !ReadPreviousKeys(env, options.Get("previousKeys"), config.previousKeys, &config.previousKeyCount)) return;
    if (options.Has("layerAboveEveryUs")) {
      aboveEveryUs_ = I64Or(options.Get("layerAboveEveryUs"), 0);
      const uint64_t startUs = options.Has("layerAboveStartUs") ? I64Or(options.Get("layerAboveStartUs"), 0) : 0;
      aboveNextUs_.assign(config.maxClients, startUs);
    }
    core_ = std::make_unique<netcode::ServerCore>(config, challengeKey, static_cast<netcode::DatagramOut*>(this));
  }

  // A stand-in for the layer above (the delivery layer and its pings): with layerAboveEveryUs, a 1-byte
  // payload to each connected client every that many µs, from layerAboveStartUs on, each next one due an
  // interval after the last went (as the delivery layer schedules its pings).
  uint64_t AboveDeadlineUs(uint32_t index) const {
    return aboveEveryUs_ > 0 && index < aboveNextUs_.size() ? aboveNextUs_[index] : netcode::ServerCore::kNoDeadline;
  }
  void AboveTimer(uint32_t index, const netcode::Clock& now) {
    if (aboveEveryUs_ > 0 && index < aboveNextUs_.size() && now.monotonicUs >= aboveNextUs_[index]) {
      static const uint8_t kPing[1] = {0};
      aboveNextUs_[index] = now.monotonicUs + aboveEveryUs_;
      core_->SendPayload(index, kPing, sizeof(kPing), now);
    }
    core_->SetPeerDeadline(index, AboveDeadlineUs(index), now);
  }

  // The events of the call, after the datagrams it sent; the layer above answers its timers.
  Napi::Value Finish() {
    static const char* const names[] = {"", "timeout", "disconnected", "server-disconnect", "server-closed"};
    netcode::ServerEvent polled;
    while (core_->PollEvent(&polled)) {
      switch (polled.type) {
        case netcode::ServerEvent::Type::kConnected: {
          Napi::Object event = Event("connect");
          event.Set("index", polled.client);
          event.Set("clientId", Napi::BigInt::New(env_, polled.clientId));
          event.Set("address", FormatServerAddress(polled.from));
          event.Set("userData", Copy(env_, polled.data, netcode::kUserDataBytes));
          if (aboveEveryUs_ > 0) core_->SetPeerDeadline(polled.client, AboveDeadlineUs(polled.client), clock_);
          break;
        }
        case netcode::ServerEvent::Type::kPayload: {
          Napi::Object event = Event("payload");
          event.Set("index", polled.client);
          event.Set("data", Copy(env_, polled.data, polled.size));
          break;
        }
        case netcode::ServerEvent::Type::kDisconnected: {
          Napi::Object event = Event("disconnect");
          event.Set("index", polled.client);
          event.Set("reason", names[static_cast<int>(polled.reason)]);
          break;
        }
        case netcode::ServerEvent::Type::kPeerTimer: AboveTimer(polled.client, clock_); break;
      }
    }
    return Done();
  }

 private:
  bool Begin(const Napi::CallbackInfo& info, size_t clockAt, netcode::Clock* clock) {
    StartLog(info.Env());
    if (!core_) return Fail(env_, "the server core was not created");
    clock->monotonicUs = static_cast<uint64_t>(I64Or(info[clockAt], 0));
    const bool read = GetU64(env_, info[clockAt + 1], "unixSeconds", &clock->unixSeconds);
    clock_ = *clock;
    return read;
  }

  // receive(from, packet, monotonicUs, unixSeconds)
  Napi::Value Receive(const Napi::CallbackInfo& info) {
    netcode::Clock clock;
    const uint8_t* data;
    size_t size = 0;
    netcode::ServerAddress from;
    if (!Begin(info, 2, &clock) || !GetBytes(env_, info[1], "packet", 0, &data, &size)) return env_.Undefined();
    if (!netcode::ParseDatagramSource(StringOr(info[0]), &from)) return Fail(env_, "from does not parse"), env_.Undefined();
    core_->Receive(from, data, size, clock);
    return Finish();
  }
  // receiveBatch([[from, packet], ...], monotonicUs, unixSeconds): one ReceiveBatch, as the engine calls it
  Napi::Value ReceiveBatchJs(const Napi::CallbackInfo& info) {
    netcode::Clock clock;
    if (!Begin(info, 1, &clock)) return env_.Undefined();
    if (!info[0].IsArray()) return Fail(env_, "receiveBatch([[from, packet], ...]) expected"), env_.Undefined();
    const Napi::Array list = info[0].As<Napi::Array>();
    std::vector<netcode::ReceivedDatagram> batch(list.Length());
    for (uint32_t i = 0; i < list.Length(); ++i) {
      const Napi::Value entry = list.Get(i);
      if (!entry.IsArray()) return Fail(env_, "each datagram is [from, packet]"), env_.Undefined();
      const Napi::Array pair = entry.As<Napi::Array>();
      if (!GetBytes(env_, pair.Get(1u), "packet", 0, &batch[i].data, &batch[i].size)) return env_.Undefined();
      if (!netcode::ParseDatagramSource(StringOr(pair.Get(0u)), &batch[i].from)) return Fail(env_, "from does not parse"), env_.Undefined();
      batch[i].wireSize = batch[i].size;
    }
    core_->ReceiveBatch(batch.data(), batch.size(), clock);
    return Finish();
  }
  Napi::Value Update(const Napi::CallbackInfo& info) {
    netcode::Clock clock;
    if (!Begin(info, 0, &clock)) return env_.Undefined();
    core_->Update(clock);
    return Finish();
  }
  // sendPayload(index, data, monotonicUs, unixSeconds) -> events, with .accepted
  Napi::Value SendPayloadJs(const Napi::CallbackInfo& info) {
    netcode::Clock clock;
    const uint8_t* data;
    size_t size = 0;
    if (!Begin(info, 2, &clock) || !GetBytes(env_, info[1], "data", 0, &data, &size)) return env_.Undefined();
    const bool accepted = core_->SendPayload(U32Or(info[0], UINT32_MAX), data, size, clock);
    events_.Set("accepted", Napi::Boolean::New(env_, accepted));
    return Finish();
  }
  Napi::Value DisconnectJs(const Napi::CallbackInfo& info) {
    netcode::Clock clock;
    if (!Begin(info, 1, &clock)) return env_.Undefined();
    core_->Disconnect(U32Or(info[0], UINT32_MAX), clock);
    return Finish();
  }
  Napi::Value StopJs(const Napi::CallbackInfo& info) {
    netcode::Clock clock;
    if (!Begin(info, 0, &clock)) return env_.Undefined();
    core_->Stop(clock);
    return Finish();
  }
  Napi::Value PauseTimeoutsJs(const Napi::CallbackInfo& info) {
    netcode::Clock clock;
    if (!Begin(info, 0, &clock)) return env_.Undefined();
    core_->PauseTimeouts(clock);
    return Finish();
  }
  Napi::Value ResumeTimeoutsJs(const Napi::CallbackInfo& info) {
    netcode::Clock clock;
    if (!Begin(info, 0, &clock)) return env_.Undefined();
    core_->ResumeTimeouts(clock);
    return Finish();
  }
  // rotatePrivateKey(key, graceUs, monotonicUs, unixSeconds)
  Napi::Value RotatePrivateKeyJs(const Napi::CallbackInfo& info) {
    netcode::Clock clock;
    const uint8_t* key;
    uint64_t graceUs = 0;
    if (!Begin(info, 2, &clock) || !GetBytes(env_, info[0], "key", netcode::kKeyBytes, &key) ||
        !ReadInteger(env_, info[1], "graceUs", 0, kMaxExactInteger, &graceUs)) {
      return env_.Undefined();
    }
    core_->RotatePrivateKey(key, graceUs, clock);
    return Finish();
  }
  // receiveRequests(packet, count, monotonicUs, unixSeconds): Receive() of the same datagram `count` times, each
  // from another address (10.x.y.z, a port each), in one call: what bench/token-keys.ts times, with one crossing
  // per batch. One connect token from many addresses: after its first use each request is read, its token
  // opened, and then refused (a token is used from one address only), so that nothing is kept or sent.
  Napi::Value ReceiveRequestsJs(const Napi::CallbackInfo& info) {
    netcode::Clock clock;
    const uint8_t* data;
    size_t size = 0;
    uint64_t count = 0;
    if (!Begin(info, 2, &clock) || !GetBytes(env_, info[0], "packet", 0, &data, &size) ||
        !ReadInteger(env_, info[1], "count", 0, 1u << 24, &count)) {
      return env_.Undefined();
    }
    netcode::ServerAddress from;
    from.ip.family = 4;
    for (uint64_t i = 0; i < count; ++i) {
      const uint32_t n = static_cast<uint32_t>(i);
      from.ip.bytes[0] = 10;
      from.ip.bytes[1] = static_cast<uint8_t>(n >> 22);
      from.ip.bytes[2] = static_cast<uint8_t>(n >> 14);
      from.ip.bytes[3] = static_cast<uint8_t>(n >> 6);
      from.port = static_cast<uint16_t>(1024 + (n & 63));
      core_->Receive(from, data, size, clock);
    }
    return Finish();
  }
  // state() -> { connectedClients, pendingHandshakes, stopped, nextGlobalSequence, nextDeadlineUs, counters }
  Napi::Value State(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object state = Napi::Object::New(env);
    if (!core_) return state;
    const netcode::ServerCounters& c = core_->counters();
    state.Set("connectedClients", core_->connectedClients());
    state.Set("pendingHandshakes", static_cast<double>(core_->pendingHandshakes()));
    state.Set("stopped", core_->Stopped());
    state.Set("nextGlobalSequence", Napi::BigInt::New(env, core_->nextGlobalSequence()));
    state.Set("nextDeadlineUs", Deadline(env, core_->NextDeadlineUs(), netcode::ServerCore::kNoDeadline));
    state.Set("privateKeyCount", static_cast<double>(core_->privateKeyCount()));
    state.Set("counters", Counters(env, {{"packetsIn", c.packetsIn}, {"bytesIn", c.bytesIn}, {"packetsOut", c.packetsOut},
                                         {"bytesOut", c.bytesOut}, {"malformed", c.malformed}, {"replayed", c.replayed}, {"tooOld", c.tooOld},
                                         {"decryptionFailed", c.decryptionFailed}, {"unknownAddress", c.unknownAddress},
                                         {"tokenRefused", c.tokenRefused}, {"denied", c.denied},
                                         {"requestsThrottled", c.requestsThrottled}, {"handshakesReplaced", c.handshakesReplaced},
                                         {"handshakesEvicted", c.handshakesEvicted}, {"wrongProtocol", c.wrongProtocol},
                                         {"tokenExpired", c.tokenExpired}, {"previousKeyRequests", c.previousKeyRequests}}));
    return state;
  }

  std::unique_ptr<netcode::ServerCore> core_;
  uint64_t aboveEveryUs_ = 0;
  std::vector<uint64_t> aboveNextUs_;
  netcode::Clock clock_;  // the call's
};


// The client state machine driven from JavaScript with a fake clock.
// new ClientCore({ requestIntervalUs?, keepAliveIntervalUs?, disconnectIntervalUs?, disconnectPackets? })
// Calls return [{ kind: 'send', to, data } | { kind: 'state', state } | { kind: 'payload', data }].
class ClientCoreWrap : public Napi::ObjectWrap<ClientCoreWrap>, private EventLog {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "ClientCore",
                       {InstanceMethod<&ClientCoreWrap::ConnectJs>("connect"),
                        InstanceMethod<&ClientCoreWrap::ReceiveJs>("receive"),
                        InstanceMethod<&ClientCoreWrap::UpdateJs>("update"),
                        InstanceMethod<&ClientCoreWrap::PauseTimeoutsJs>("pauseTimeouts"),
                        InstanceMethod<&ClientCoreWrap::ResumeTimeoutsJs>("resumeTimeouts"),
                        InstanceMethod<&ClientCoreWrap::SendPayloadJs>("sendPayload"),
                        InstanceMethod<&ClientCoreWrap::DisconnectJs>("disconnect"),
                        InstanceMethod<&ClientCoreWrap::State>("state")});
  }

  explicit ClientCoreWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ClientCoreWrap>(info) {
    netcode::ClientConfig config;
    if (info[0].IsObject()) {
      Napi::Object options = info[0].As<Napi::Object>();
      if (options.Has("requestIntervalUs")) config.requestIntervalUs = I64Or(options.Get("requestIntervalUs"), 0);
      if (options.Has("keepAliveIntervalUs")) config.keepAliveIntervalUs = I64Or(options.Get("keepAliveIntervalUs"), 0);
      if (options.Has("disconnectIntervalUs")) config.disconnectIntervalUs = I64Or(options.Get("disconnectIntervalUs"), 0);
      if (options.Has("disconnectPackets")) config.disconnectPackets = U32Or(options.Get("disconnectPackets"), 0);
    }
    core_ = std::make_unique<netcode::ClientCore>(config, static_cast<netcode::DatagramOut*>(this));
  }

  // The events of the call, after the datagrams it sent.
  Napi::Value Finish() {
    netcode::ClientEvent polled;
    while (core_->PollEvent(&polled)) {
      if (polled.type == netcode::ClientEvent::Type::kPayload) {
        Event("payload").Set("data", Copy(env_, polled.data, polled.size));
        continue;
      }
      Napi::Object event = Event("state");
      event.Set("state", netcode::ClientStateName(polled.state));
      if (polled.hasServer) event.Set("server", FormatServerAddress(polled.server));
    }
    return Done();
  }

 private:
  netcode::Clock Begin(const Napi::CallbackInfo& info, size_t clockAt) {
    StartLog(info.Env());
    netcode::Clock clock;
    clock.monotonicUs = static_cast<uint64_t>(I64Or(info[clockAt], 0));
    return clock;
  }

  // connect(token, monotonicUs)
  Napi::Value ConnectJs(const Napi::CallbackInfo& info) {
    const netcode::Clock clock = Begin(info, 1);
    const uint8_t* token;
    size_t size = 0;
    if (!GetBytes(env_, info[0], "token", 0, &token, &size)) return env_.Undefined();
    core_->Connect(token, size, clock);
    return Finish();
  }
  // receive(from, packet, monotonicUs)
  Napi::Value ReceiveJs(const Napi::CallbackInfo& info) {
    const netcode::Clock clock = Begin(info, 2);
    const uint8_t* data;
    size_t size = 0;
    netcode::ServerAddress from;
    if (!GetBytes(env_, info[1], "packet", 0, &data, &size)) return env_.Undefined();
    if (!netcode::ParseDatagramSource(StringOr(info[0]), &from)) return Fail(env_, "from does not parse"), env_.Undefined();
    core_->Receive(from, data, size, clock);
    return Finish();
  }
  Napi::Value UpdateJs(const Napi::CallbackInfo& info) {
    core_->Update(Begin(info, 0));
    return Finish();
  }
  Napi::Value PauseTimeoutsJs(const Napi::CallbackInfo& info) {
    core_->PauseTimeouts(Begin(info, 0));
    return Finish();
  }
  Napi::Value ResumeTimeoutsJs(const Napi::CallbackInfo& info) {
    core_->ResumeTimeouts(Begin(info, 0));
    return Finish();
  }
  Napi::Value SendPayloadJs(const Napi::CallbackInfo& info) {
    const netcode::Clock clock = Begin(info, 1);
    const uint8_t* data;
    size_t size = 0;
    if (!GetBytes(env_, info[0], "data", 0, &data, &size)) return env_.Undefined();
    events_.Set("accepted", Napi::Boolean::New(env_, core_->SendPayload(data, size, clock)));
    return Finish();
  }
  Napi::Value DisconnectJs(const Napi::CallbackInfo& info) {
    core_->Disconnect(Begin(info, 0));
    return Finish();
  }
  // state() -> { state, clientIndex, maxClients, pendingDisconnects, counters }
  Napi::Value State(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object state = Napi::Object::New(env);
    state.Set("state", netcode::ClientStateName(core_->state()));
    state.Set("clientIndex", core_->clientIndex());
    state.Set("maxClients", core_->maxClients());
    state.Set("pendingDisconnects", core_->HasPendingDisconnects());
    state.Set("nextDeadlineUs", Deadline(env, core_->NextDeadlineUs(), netcode::ClientCore::kNoDeadline));
    const netcode::ClientCounters& c = core_->counters();
    state.Set("counters", Counters(env, {{"packetsIn", c.packetsIn}, {"bytesIn", c.bytesIn}, {"packetsOut", c.packetsOut},
                                         {"bytesOut", c.bytesOut}, {"malformed", c.malformed}, {"replayed", c.replayed}, {"tooOld", c.tooOld},
                                         {"decryptionFailed", c.decryptionFailed}, {"unknownAddress", c.unknownAddress}}));
    return state;
  }

  std::unique_ptr<netcode::ClientCore> core_;
};

}  // namespace

Napi::Object NetcodeBinding(Napi::Env env) {
  Napi::Object netcode = Napi::Object::New(env);
  netcode.Set("generateConnectToken", Napi::Function::New<GenerateConnectToken>(env, "generateConnectToken"));
  netcode.Set("readConnectToken", Napi::Function::New<ReadConnectToken>(env, "readConnectToken"));
  netcode.Set("openPrivateConnectToken", Napi::Function::New<OpenPrivateConnectToken>(env, "openPrivateConnectToken"));
  netcode.Set("writeConnectionRequest", Napi::Function::New<WriteConnectionRequest>(env, "writeConnectionRequest"));
  netcode.Set("readConnectionRequest", Napi::Function::New<ReadConnectionRequest>(env, "readConnectionRequest"));
  netcode.Set("encryptPacket", Napi::Function::New<EncryptPacket>(env, "encryptPacket"));
  netcode.Set("readEncryptedPacket", Napi::Function::New<ReadEncryptedPacket>(env, "readEncryptedPacket"));
  netcode.Set("sealChallengeToken", Napi::Function::New<SealChallengeToken>(env, "sealChallengeToken"));
  netcode.Set("openChallengeToken", Napi::Function::New<OpenChallengeToken>(env, "openChallengeToken"));
  netcode.Set("ReplayWindow", ReplayWindowWrap::Define(env));
  netcode.Set("AddressTable", AddressTableWrap::Define(env));
  netcode.Set("ServerCore", ServerCoreWrap::Define(env));
  netcode.Set("ClientCore", ClientCoreWrap::Define(env));
  // What a ServerConfig and a ClientConfig hold when nothing sets them: the TypeScript API's defaults are
  // checked against these.
  const netcode::ServerConfig server;
  const netcode::ClientConfig client;
  Napi::Object defaults = Napi::Object::New(env);
  defaults.Set("requestIntervalUs", Napi::Number::New(env, double(client.requestIntervalUs)));
  defaults.Set("keepAliveIntervalUs", Napi::Number::New(env, double(server.keepAliveIntervalUs)));
  defaults.Set("clientKeepAliveIntervalUs", Napi::Number::New(env, double(client.keepAliveIntervalUs)));
  defaults.Set("disconnectIntervalUs", Napi::Number::New(env, double(server.disconnectIntervalUs)));
  defaults.Set("clientDisconnectIntervalUs", Napi::Number::New(env, double(client.disconnectIntervalUs)));
  defaults.Set("disconnectPackets", Napi::Number::New(env, server.disconnectPackets));
  defaults.Set("clientDisconnectPackets", Napi::Number::New(env, client.disconnectPackets));
  defaults.Set("maxClients", Napi::Number::New(env, server.maxClients));
  netcode.Set("defaults", defaults);
  return netcode;
}

}  // namespace volley
