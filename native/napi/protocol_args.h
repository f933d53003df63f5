// A socket protocol's options as JavaScript gives them (NativeServerProtocol or NativeClientProtocol in
// src/engine/native/addon.ts), read into a ProtocolRequest for sockets/protocol_request.cc, which checks them and
// gives the defaults: for the engine's openSocket(), and for the test bindings' SocketProtocol.
#pragma once

#include <napi.h>

#include <cmath>
#include <cstring>
#include <string>

#include "sockets/protocol_request.h"
#include "napi/binding_args.h"

namespace volley {

// channels: ('reliable' | 'unreliable' | 'sequenced')[]; absent: no delivery layer.
inline bool ReadChannels(Napi::Env env, Napi::Value channels, ProtocolRequest* request) {
  if (!channels.IsArray()) return true;
  const Napi::Array list = channels.As<Napi::Array>();
  const uint32_t count = list.Length();  // read once: an element's getter may change it
  request->hasChannels = true;
  for (uint32_t i = 0; i < count && i < 256; ++i) {
    delivery::ChannelMode mode;
    if (!ParseChannelMode(StringOr(list.Get(i)), &mode)) {
      ThrowType(env, "channels[" + std::to_string(i) + "] must be 'reliable', 'unreliable' or 'sequenced'");
      return false;
    }
    request->channels.push_back(mode);
  }
  if (count > 255) request->channels.resize(256);  // refused as too many by MakeSocketProtocol
  return true;
}

// { kind: 'server', protocolId, privateKey, previousKeys, publicAddress, maxClients, keepAliveIntervalUs,
//   disconnectIntervalUs, disconnectPackets } | { kind: 'client', requestIntervalUs, ... }, with the delivery
// layer's channels, maxMessageBytes, sendQueueBytes, reliableWindow, fragmentTimeoutUs, pingIntervalUs,
// reliableStallUs, reassemblyBudgetBytes (JavaScript has checked them: src/api/channels.ts) and the network
// simulator's clock skew. False with an error thrown (one that names the option, or a getter's own).
inline bool ReadProtocolRequest(Napi::Env env, Napi::Object options, ProtocolRequest* request) {
  const std::string kind = StringOr(options.Get("kind"));
  if (kind != "server" && kind != "client") {
    ThrowType(env, "protocol.kind must be 'server' or 'client'");
    return false;
  }
  request->server = kind == "server";
  for (const RequestNumberField& field : kRequestNumberFields) request->*field.member = NumberOr(options.Get(field.name), NAN);
  if (!ReadChannels(env, options.Get("channels"), request)) return false;
  Napi::Value simulator = options.Get("networkSimulator");
  if (simulator.IsObject()) {
    request->skewedClock = true;
    request->clockOffsetUs = NumberOr(simulator.As<Napi::Object>().Get("clockOffsetUs"), NAN);
    request->clockDriftPpm = NumberOr(simulator.As<Napi::Object>().Get("clockDriftPpm"), NAN);
  }
  if (request->server) {
    Napi::Value protocolId = options.Get("protocolId");
    Napi::Value privateKey = options.Get("privateKey");
    if (protocolId.IsBigInt()) {
      bool lossless = false;
      request->hasProtocolId = true;
      request->protocolId = protocolId.As<Napi::BigInt>().Uint64Value(&lossless);
    }
    if (privateKey.IsTypedArray() && privateKey.As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array &&
        privateKey.As<Napi::Uint8Array>().ElementLength() == netcode::kKeyBytes) {
      request->hasPrivateKey = true;
      std::memcpy(request->privateKey, privateKey.As<Napi::Uint8Array>().Data(), netcode::kKeyBytes);
    }
    if (!ReadPreviousKeys(env, options.Get("previousKeys"), request->previousKeys, &request->previousKeyCount)) return false;
    request->publicAddress = StringOr(options.Get("publicAddress"));
  }
  return !env.IsExceptionPending();  // a getter threw
}

// What MakeSocketProtocol refused, as the kind of error it names.
inline void ThrowRequestError(Napi::Env env, const ProtocolRequestError& error) {
  if (error.kind == ProtocolRequestError::Kind::kRange) ThrowRange(env, error.message);
  else ThrowType(env, error.message);
}

}  // namespace volley
