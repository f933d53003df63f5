// netcode 1.02 wire constants (src/protocol/netcode/constants.ts is generated from them: scripts/emit-constants.cc).
#pragma once

#include <cstddef>
#include <cstdint>

namespace volley::netcode {

constexpr uint8_t kVersionInfo[13] = {'N', 'E', 'T', 'C', 'O', 'D', 'E', ' ', '1', '.', '0', '2', 0};
constexpr size_t kVersionInfoBytes = 13;
constexpr size_t kConnectTokenBytes = 2048;
constexpr size_t kPrivateConnectTokenBytes = 1024;
constexpr size_t kConnectTokenNonceBytes = 24;
constexpr size_t kChallengeTokenBytes = 300;
constexpr size_t kKeyBytes = 32;
constexpr size_t kUserDataBytes = 256;
constexpr size_t kMacBytes = 16;
constexpr size_t kConnectionRequestBytes = 1 + kVersionInfoBytes + 8 + 8 + kConnectTokenNonceBytes + kPrivateConnectTokenBytes;
constexpr size_t kChallengeBodyBytes = 8 + kChallengeTokenBytes;
constexpr size_t kKeepAliveBodyBytes = 8;
constexpr size_t kMaxPayloadBytes = 1200;
constexpr size_t kMinEncryptedPacketBytes = 18;
constexpr size_t kMaxServerAddresses = 32;
constexpr size_t kReplayBufferSize = 256;
// The connection defaults (ServerConfig, ClientConfig), and the API's (netcodeDefaults, generated from these).
constexpr uint64_t kDefaultRequestIntervalUs = 100000;     // requests and responses, 10 Hz
constexpr uint64_t kDefaultKeepAliveIntervalUs = 100000;   // 10 Hz when nothing else was sent
constexpr uint64_t kDefaultDisconnectIntervalUs = 100000;  // redundant disconnect packets, 10 Hz
constexpr uint32_t kDefaultDisconnectPackets = 10;
constexpr uint32_t kDefaultMaxClients = 256;
// Largest encrypted packet: prefix, 8 sequence bytes, the largest body, MAC.
constexpr size_t kMaxPacketBytes = 1 + 8 + kMaxPayloadBytes + kMacBytes;

enum PacketType : uint8_t {
  kConnectionRequest = 0,
  kConnectionDenied = 1,
  kConnectionChallenge = 2,
  kConnectionResponse = 3,
  kKeepAlive = 4,
  kPayload = 5,
  kDisconnect = 6,
  kPacketTypeCount = 7,
};

enum AddressType : uint8_t { kAddressIpv4 = 1, kAddressIpv6 = 2 };

// Why a packet was dropped (the server and client count each).
enum class DropReason : uint8_t {
  kNone = 0,
  kMalformed,
  kUnexpectedType,
  kReplayed,  // seen already, within the replay window
  kTooOld,    // older than the replay window
  kDecryptionFailed,
  kWrongProtocol,
  kExpired,
  kTokenRefused,
};

const char* DropReasonName(DropReason reason);

}  // namespace volley::netcode
