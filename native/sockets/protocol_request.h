// What JavaScript asks of a socket's protocol (NativeServerProtocol or NativeClientProtocol in
// src/engine/native/addon.ts), as a binding (the N-API addon, or the WebAssembly build the fallback engine runs)
// reads it: plain values, numbers as JavaScript gave them (NaN: absent). The checks, defaults and limits that
// turn it into a protocol are here, once for both bindings.
#pragma once

#include <sodium.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "sockets/netcode_sockets.h"

namespace volley {

constexpr double kMaxExactInteger = 9007199254740991.0;  // 2^53 - 1
// An hour: the longest interval or timeout an option may set.
constexpr double kMaxIntervalUs = 3.6e9;
// A day: the largest clock offset the network simulator may give a socket (as its JavaScript option).
constexpr double kMaxClockOffsetUs = 8.64e10;

struct ProtocolRequest {
  bool server = false;
  // A server's: protocolId and privateKey are required.
  bool hasProtocolId = false;
  uint64_t protocolId = 0;
  bool hasPrivateKey = false;
  uint8_t privateKey[netcode::kKeyBytes] = {};
  netcode::PreviousPrivateKey previousKeys[netcode::kMaxPrivateKeys - 1];
  uint32_t previousKeyCount = 0;
  std::string publicAddress;  // ':0' at the end stands for the port the socket bound
  double maxClients = NAN;
  double keepAliveIntervalUs = NAN, disconnectIntervalUs = NAN, disconnectPackets = NAN;
  double requestIntervalUs = NAN;  // a client's
  // Where a server's challenge sequence starts (absent: the wall clock, netcode::ChallengeSequenceStart()). The
  // engines never give it; tests that feed two builds of the protocols the same streams do.
  double challengeSequenceStart = NAN;
  // Channels: the delivery layer runs inside payload packets (none: raw netcode payloads).
  bool hasChannels = false;
  std::vector<delivery::ChannelMode> channels;
  double maxMessageBytes = NAN, sendQueueBytes = NAN, reliableWindow = NAN, fragmentTimeoutUs = NAN, pingIntervalUs = NAN;
  double reliableStallUs = NAN, reassemblyBudgetBytes = NAN;
  // The network simulator's clock skew, when it is asked for: the clock the delivery layer reads.
  bool skewedClock = false;
  double clockOffsetUs = NAN, clockDriftPpm = NAN;

  ProtocolRequest() = default;
  ProtocolRequest(const ProtocolRequest&) = delete;
  ProtocolRequest& operator=(const ProtocolRequest&) = delete;
  ~ProtocolRequest() {
    sodium_memzero(privateKey, sizeof(privateKey));
    sodium_memzero(previousKeys, sizeof(previousKeys));
  }
};

// The request's numbers by the names of their JavaScript options: both bindings read them by this table.
struct RequestNumberField {
  const char* name;
  double ProtocolRequest::*member;
};
constexpr RequestNumberField kRequestNumberFields[] = {
    {"maxClients", &ProtocolRequest::maxClients},
    {"keepAliveIntervalUs", &ProtocolRequest::keepAliveIntervalUs},
    {"disconnectIntervalUs", &ProtocolRequest::disconnectIntervalUs},
    {"disconnectPackets", &ProtocolRequest::disconnectPackets},
    {"requestIntervalUs", &ProtocolRequest::requestIntervalUs},
    {"challengeSequenceStart", &ProtocolRequest::challengeSequenceStart},
    {"maxMessageBytes", &ProtocolRequest::maxMessageBytes},
    {"sendQueueBytes", &ProtocolRequest::sendQueueBytes},
    {"reliableWindow", &ProtocolRequest::reliableWindow},
    {"fragmentTimeoutUs", &ProtocolRequest::fragmentTimeoutUs},
    {"pingIntervalUs", &ProtocolRequest::pingIntervalUs},
    {"reliableStallUs", &ProtocolRequest::reliableStallUs},
    {"reassemblyBudgetBytes", &ProtocolRequest::reassemblyBudgetBytes},
};
constexpr size_t kRequestNumberFieldCount = sizeof(kRequestNumberFields) / sizeof(kRequestNumberFields[0]);

// A channel's mode by its JavaScript name ('reliable', 'unreliable', 'sequenced'); false for another.
bool ParseChannelMode(const std::string& name, delivery::ChannelMode* out);

// Why a request was refused: the kind of JavaScript error to throw, and its message.
struct ProtocolRequestError {
  enum class Kind { kNone, kType, kRange } kind = Kind::kNone;
  std::string message;
};

struct MadeProtocol {
  std::unique_ptr<SocketProtocol> protocol;
  std::shared_ptr<netcode::PeerCounterTable> peerCounters;
  netcode::ServerAddress publicAddress;  // a server's
};

// The protocol a request asks for, or none and *error. boundPort: the port the socket bound; nowUs: the
// monotonic clock now (where a skewed clock's drift counts from).
MadeProtocol MakeSocketProtocol(const ProtocolRequest& request, uint16_t boundPort, uint64_t nowUs, ProtocolRequestError* error);

}  // namespace volley
