#include "netcode_binding.h"

#include <cstring>
#include <string>

#include "netcode/challenge_token.h"
#include "netcode/connect_token.h"
#include "netcode/packet.h"
#include "netcode/replay_window.h"

namespace volley {
namespace {

using netcode::DropReason;

bool Fail(Napi::Env env, const std::string& message) {
  Napi::TypeError::New(env, message).ThrowAsJavaScriptException();
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
  if (!GetU64(env, options.Get("protocolId"), "protocolId", &token.protocolId) ||
      !GetU64(env, options.Get("clientId"), "clientId", &secret.clientId) ||
      !GetU64(env, options.Get("createTimestamp"), "createTimestamp", &token.createTimestamp) ||
      !GetU64(env, options.Get("expireTimestamp"), "expireTimestamp", &token.expireTimestamp) ||
      !GetBytes(env, options.Get("privateKey"), "privateKey", netcode::kKeyBytes, &privateKey) ||
      !GetBytes(env, options.Get("userData"), "userData", netcode::kUserDataBytes, &userData) ||
      !GetBytes(env, options.Get("clientToServerKey"), "clientToServerKey", netcode::kKeyBytes, &c2s) ||
      !GetBytes(env, options.Get("serverToClientKey"), "serverToClientKey", netcode::kKeyBytes, &s2c) ||
      !GetBytes(env, options.Get("nonce"), "nonce", netcode::kConnectTokenNonceBytes, &nonce)) {
    return env.Undefined();
  }
  Napi::Value list = options.Get("serverAddresses");
  if (!list.IsArray()) return Fail(env, "serverAddresses must be an array"), env.Undefined();
  Napi::Array addresses = list.As<Napi::Array>();
  if (addresses.Length() < 1 || addresses.Length() > netcode::kMaxServerAddresses) {
    return Fail(env, "serverAddresses must hold 1 to 32 addresses"), env.Undefined();
  }
  token.serverAddressCount = secret.serverAddressCount = addresses.Length();
  for (uint32_t i = 0; i < addresses.Length(); ++i) {
    const std::string text = addresses.Get(i).ToString().Utf8Value();
    if (!netcode::ParseServerAddress(text, &token.serverAddresses[i])) {
      return Fail(env, "server address '" + text + "' does not parse"), env.Undefined();
    }
    secret.serverAddresses[i] = token.serverAddresses[i];
  }
  token.timeoutSeconds = secret.timeoutSeconds = options.Get("timeoutSeconds").ToNumber().Int32Value();
  std::memcpy(token.clientToServerKey, c2s, netcode::kKeyBytes);
  std::memcpy(secret.clientToServerKey, c2s, netcode::kKeyBytes);
  std::memcpy(token.serverToClientKey, s2c, netcode::kKeyBytes);
  std::memcpy(secret.serverToClientKey, s2c, netcode::kKeyBytes);
  std::memcpy(secret.userData, userData, netcode::kUserDataBytes);
  std::memcpy(token.nonce, nonce, netcode::kConnectTokenNonceBytes);
  if (!netcode::SealPrivateConnectToken(secret, token.protocolId, token.expireTimestamp, token.nonce, privateKey,
                                        token.privateData)) {
    return Fail(env, "the private connect token could not be sealed"), env.Undefined();
  }
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
  const DropReason reason = netcode::ReadConnectionRequest(packet, size, protocolId, privateKey, now, &request);
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
  const uint32_t type = info[0].ToNumber().Uint32Value();
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
                        InstanceMethod<&ReplayWindowWrap::Advance>("advance")});
  }
  explicit ReplayWindowWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ReplayWindowWrap>(info) {}
  netcode::ReplayWindow window;

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
  const uint32_t acceptMask = info[3].ToNumber().Uint32Value();
  netcode::ReplayWindow* replay = nullptr;
  if (info[4].IsObject()) replay = &ReplayWindowWrap::Unwrap(info[4].As<Napi::Object>())->window;
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
  return netcode;
}

}  // namespace volley
