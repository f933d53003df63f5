// The netcode 1.02 client as a state machine (sans-IO): given a connect token and the time, it sends
// requests and responses at its rates, moves to the token's next server address on failure, keeps the
// connection alive and reports every state of the standard.
#pragma once

#include <sodium.h>

#include <cstdint>
#include <vector>

#include "protocol/netcode/connect_token.h"
#include "protocol/netcode/constants.h"
#include "protocol/netcode/replay_window.h"
#include "protocol/netcode/timeout_pause.h"
#include "protocol/netcode/datagram_out.h"
#include "protocol/netcode/server.h"  // Clock

namespace volley::netcode {

enum class ClientState : int8_t {
  kConnectTokenExpired = -6,
  kInvalidConnectToken = -5,
  kConnectionTimedOut = -4,
  kConnectionResponseTimedOut = -3,
  kConnectionRequestTimedOut = -2,
  kConnectionDenied = -1,
  kDisconnected = 0,
  kSendingConnectionRequest = 1,
  kSendingConnectionResponse = 2,
  kConnected = 3,
};

const char* ClientStateName(ClientState state);

struct ClientConfig {
  uint64_t protocolId = 0;                 // 0: take it from the token
  uint64_t requestIntervalUs = kDefaultRequestIntervalUs;
  uint64_t keepAliveIntervalUs = kDefaultKeepAliveIntervalUs;
  uint64_t disconnectIntervalUs = kDefaultDisconnectIntervalUs;
  uint32_t disconnectPackets = kDefaultDisconnectPackets;
  // Where the client's sequence starts: random per socket in the engine (netcode/sequence_starts.h), so that a
  // token used again from another socket does not encrypt under one key and nonce; tests give it.
  uint64_t sequenceBase = 0;
};

// What a client's call did (ClientCore::PollEvent).
struct ClientEvent {
  enum class Type : uint8_t { kStateChanged, kPayload };
  Type type = Type::kStateChanged;
  // kStateChanged: each change of state, and each server address the client starts on (the state may stay
  // "sending connection request"), with the address it tries or is connected to when one is under way.
  ClientState state = ClientState::kDisconnected;
  bool hasServer = false;
  ServerAddress server;
  // kPayload: valid until the next call that feeds the core.
  const uint8_t* data = nullptr;
  size_t size = 0;
};

struct ClientCounters {
  uint64_t packetsIn = 0, bytesIn = 0, packetsOut = 0, bytesOut = 0;
  uint64_t malformed = 0, replayed = 0, decryptionFailed = 0, unknownAddress = 0;
  uint64_t tooOld = 0;  // older than the replay window: delayed or reordered that far, or replayed
};

class ClientCore {
 public:
  // out: where its datagrams go (it outlives the core).
  ClientCore(const ClientConfig& config, DatagramOut* out);
  ~ClientCore() { sodium_memzero(farewellKey_, kKeyBytes); }  // token_ wipes its own
  ClientCore(const ClientCore&) = delete;
  ClientCore& operator=(const ClientCore&) = delete;

  // Starts connecting with the first server address of the token (or fails as an invalid token).
  void Connect(const uint8_t* token, size_t size, const Clock& now);
  void Receive(const ServerAddress& from, const uint8_t* data, size_t size, const Clock& now);
  void Update(const Clock& now);
  // When Update() next has work to do (monotonic µs), kNoDeadline if never. Sends only move it later.
  uint64_t NextDeadlineUs() const;
  static constexpr uint64_t kNoDeadline = UINT64_MAX;
  bool SendPayload(const uint8_t* data, size_t size, const Clock& now);
  // Sends the redundant disconnect packets (through Update) and goes to disconnected at once.
  void Disconnect(const Clock& now);
  // As ServerCore's: no timeout while the engine does not read the socket, and the pause's length given
  // on resume.
  void PauseTimeouts(const Clock& now);
  void ResumeTimeouts(const Clock& now);

  // The next thing a call did, in order; false when none is left. Polled after each call.
  bool PollEvent(ClientEvent* event);

  ClientState state() const { return state_; }
  uint32_t clientIndex() const { return clientIndex_; }
  uint32_t maxClients() const { return maxClients_; }
  bool HasPendingDisconnects() const { return farewellsLeft_ > 0; }
  // The token's address the client tries or is connected to; null when no attempt or connection is under way.
  const ServerAddress* serverAddress() const;
  const ClientCounters& counters() const { return counters_; }

 private:
  void SetState(ClientState state);
  void ReportState();  // a state event for state_ and its server
  void StartAddress(uint32_t index, const Clock& now);
  // A failure while connecting: the next server address, or the error state when none is left.
  void Fail(ClientState error, const Clock& now);
  void Send(PacketType type, const uint8_t* body, size_t size, const Clock& now);
  void SendHandshake(const Clock& now);
  void SendFarewells(const Clock& now);
  void CountDrop(DropReason reason);

  ClientConfig config_;
  DatagramOut* out_;
  std::vector<ClientEvent> events_;  // from nextEvent_ on: not yet polled
  size_t nextEvent_ = 0;
  ConnectToken token_;
  uint64_t protocolId_ = 0;  // of the current token
  ClientState state_ = ClientState::kDisconnected;
  uint32_t addressIndex_ = 0;
  uint64_t connectStartUs_ = 0;
  uint64_t tokenLifetimeUs_ = 0;
  uint64_t lastSendUs_ = 0;
  uint64_t lastReceiveUs_ = 0;
  TimeoutPause timeoutPause_;
  uint64_t sequence_ = 0;  // from config_.sequenceBase, never reset: the key is the same for every server address
  // The replay window of each of the token's servers, its index's. A connection again with the same token to
  // a server it was connected to starts with that server's window (windowCarried_), whichever others it
  // tried in between: this library's server goes on past the sequences the earlier connection sent, and
  // those, captured and replayed, must not be taken for new packets. A server that starts again at 0, as
  // STANDARD.md has it (the reference's, or one restarted), shows it with its first keep-alive, and the
  // window then starts afresh (Receive): refused, it could never connect.
  struct ServerWindow {
    ReplayWindow replay;
    bool held = false;  // a connection to `server` under the key heldKeyHash_ names got this far
    ServerAddress server;
  };
  std::vector<ServerWindow> windows_;  // one per token address, sized at Connect()
  // A hash of the server-to-client key the held windows are under: a new key drops them. Not the key itself,
  // which then outlived the connection.
  uint8_t heldKeyHash_[crypto_generichash_BYTES] = {};
  bool windowCarried_ = false;
  ReplayWindow& replay() { return windows_[addressIndex_].replay; }
  uint8_t challengeBody_[kChallengeBodyBytes] = {};
  uint32_t clientIndex_ = 0;
  uint32_t maxClients_ = 0;
  uint32_t farewellsLeft_ = 0;
  uint64_t nextFarewellUs_ = 0;
  ServerAddress farewellAddress_;
  uint8_t farewellKey_[kKeyBytes] = {};  // the key of the connection they end: Connect() replaces token_
  ClientCounters counters_;
  // Requests and every encrypted packet, payloads of 1,200 bytes included, are built here.
  static_assert(kConnectionRequestBytes <= kMaxPacketBytes, "a request fits the packet buffer");
  uint8_t packetBuffer_[kMaxPacketBytes];
  uint8_t bodyBuffer_[kMaxPayloadBytes];
};

}  // namespace volley::netcode
