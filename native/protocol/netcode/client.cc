#include "protocol/netcode/client.h"

#include <sodium.h>

#include <cstring>

#include "protocol/netcode/packet.h"
#include "protocol/netcode/wire.h"

namespace volley::netcode {

namespace {

constexpr uint32_t kClientAccepts = (1u << kConnectionDenied) | (1u << kConnectionChallenge) | (1u << kKeepAlive) |
                                    (1u << kPayload) | (1u << kDisconnect);

bool Connecting(ClientState state) {
  return state == ClientState::kSendingConnectionRequest || state == ClientState::kSendingConnectionResponse;
}

}  // namespace

const char* ClientStateName(ClientState state) {
  switch (state) {
    case ClientState::kConnectTokenExpired: return "connect-token-expired";
    case ClientState::kInvalidConnectToken: return "invalid-connect-token";
    case ClientState::kConnectionTimedOut: return "connection-timed-out";
    case ClientState::kConnectionResponseTimedOut: return "connection-response-timed-out";
    case ClientState::kConnectionRequestTimedOut: return "connection-request-timed-out";
    case ClientState::kConnectionDenied: return "connection-denied";
    case ClientState::kDisconnected: return "disconnected";
    case ClientState::kSendingConnectionRequest: return "sending-connection-request";
    case ClientState::kSendingConnectionResponse: return "sending-connection-response";
    case ClientState::kConnected: return "connected";
  }
  return "unknown";
}

ClientCore::ClientCore(const ClientConfig& config, DatagramOut* out) : config_(config), out_(out) {
  sequence_ = config.sequenceBase;
}

bool ClientCore::PollEvent(ClientEvent* event) {
  if (nextEvent_ < events_.size()) {
    *event = events_[nextEvent_++];
    return true;
  }
  events_.clear();
  nextEvent_ = 0;
  return false;
}

void ClientCore::ReportState() {
  ClientEvent& event = events_.emplace_back();
  event.type = ClientEvent::Type::kStateChanged;
  event.state = state_;
  const ServerAddress* server = serverAddress();
  event.hasServer = server != nullptr;
  if (server != nullptr) event.server = *server;
}

const ServerAddress* ClientCore::serverAddress() const {
  return Connecting(state_) || state_ == ClientState::kConnected ? &token_.serverAddresses[addressIndex_] : nullptr;
}

void ClientCore::SetState(ClientState state) {
  if (state == state_) return;
  state_ = state;
  if (!Connecting(state) && state != ClientState::kConnected) {
    // The attempt or the connection ended: nothing is sent under its keys again (the disconnects that may
    // follow have a copy), so they need not outlive it until the next Connect().
    sodium_memzero(token_.clientToServerKey, kKeyBytes);
    sodium_memzero(token_.serverToClientKey, kKeyBytes);
  }
  ReportState();
}

void ClientCore::Connect(const uint8_t* token, size_t size, const Clock& now) {
  // Disconnect packets still owed to the previous connection go now, under its key, before the new
  // handshake: sent later, with the same key (the same token again) they would end the new connection.
  while (farewellsLeft_ > 0) {
    nextFarewellUs_ = now.monotonicUs;
    SendFarewells(now);
  }
  // Read apart: a token that fails half way must not leave token_ half overwritten (an address count past
  // the list) for whatever reads it next.
  ConnectToken read;
  if (!ReadConnectToken(token, size, &read) || (config_.protocolId != 0 && read.protocolId != config_.protocolId)) {
    // Reported even when the state already says so (an invalid token again): the caller waits for an answer.
    state_ = ClientState::kInvalidConnectToken;
    ReportState();
    return;
  }
  token_ = read;
  clientIndex_ = 0;  // the previous connection's, until this one's first keep-alive
  maxClients_ = 0;
  uint8_t keyHash[crypto_generichash_BYTES];
  crypto_generichash(keyHash, sizeof(keyHash), token_.serverToClientKey, kKeyBytes, nullptr, 0);
  if (sodium_memcmp(keyHash, heldKeyHash_, sizeof(keyHash)) != 0) {
    for (ServerWindow& window : windows_) window.held = false;
    std::memcpy(heldKeyHash_, keyHash, sizeof(keyHash));
  }
  windows_.resize(token_.serverAddressCount);
  protocolId_ = token_.protocolId;  // config_ keeps 0 ("from the token") for the next Connect()
  // The token's lifetime counts over the whole attempt, across its addresses, as STANDARD.md says (the
  // reference code restarts it at each address).
  connectStartUs_ = now.monotonicUs;
  // In µs, saturating: a token may live longer than 2^64 µs (about 584,000 years), and a wrapped product
  // would make a long-lived token expire at once.
  const uint64_t lifetimeSeconds = token_.expireTimestamp - token_.createTimestamp;
  tokenLifetimeUs_ = lifetimeSeconds > UINT64_MAX / 1000000u ? UINT64_MAX : lifetimeSeconds * 1000000u;
  StartAddress(0, now);
}

void ClientCore::StartAddress(uint32_t index, const Clock& now) {
  addressIndex_ = index;
  lastReceiveUs_ = now.monotonicUs;
  ServerWindow& window = windows_[index];
  if (!window.held || !SameServerAddress(window.server, token_.serverAddresses[index])) {
    window.replay.Reset();
    window.held = false;
  }
  windowCarried_ = window.held;
  // Reported at each address, even when the state stays "sending connection request" (a request that timed
  // out moves on to the next one): the sink learns which server the client now tries.
  state_ = ClientState::kSendingConnectionRequest;
  ReportState();
  SendHandshake(now);
}

void ClientCore::Fail(ClientState error, const Clock& now) {
  if (addressIndex_ + 1 < token_.serverAddressCount) {
    StartAddress(addressIndex_ + 1, now);
  } else {
    SetState(error);
  }
}

void ClientCore::SendHandshake(const Clock& now) {
  const ServerAddress& to = token_.serverAddresses[addressIndex_];
  if (state_ == ClientState::kSendingConnectionRequest) {
    WriteConnectionRequest(token_, packetBuffer_);
    lastSendUs_ = now.monotonicUs;
    ++counters_.packetsOut;
    counters_.bytesOut += kConnectionRequestBytes;
    out_->Send(to, packetBuffer_, kConnectionRequestBytes);
  } else {
    Send(kConnectionResponse, challengeBody_, kChallengeBodyBytes, now);
  }
}

void ClientCore::Send(PacketType type, const uint8_t* body, size_t size, const Clock& now) {
  const size_t length = EncryptPacket(type, sequence_++, body, size, protocolId_, token_.clientToServerKey, packetBuffer_);
  lastSendUs_ = now.monotonicUs;
  ++counters_.packetsOut;
  counters_.bytesOut += length;
  out_->Send(token_.serverAddresses[addressIndex_], packetBuffer_, length);
}

void ClientCore::CountDrop(DropReason reason) {
  switch (reason) {
    case DropReason::kReplayed: ++counters_.replayed; break;
    case DropReason::kTooOld: ++counters_.tooOld; break;
    case DropReason::kDecryptionFailed: ++counters_.decryptionFailed; break;
    default: ++counters_.malformed; break;
  }
}

void ClientCore::Receive(const ServerAddress& from, const uint8_t* data, size_t size, const Clock& now) {
  ++counters_.packetsIn;
  counters_.bytesIn += size;
  if (!Connecting(state_) && state_ != ClientState::kConnected) return;
  // A token that ran out takes the handshake no further, whatever comes before the next Update() would see
  // it (a fast server's challenge and keep-alive did: a token of no lifetime connected).
  if (Connecting(state_) && now.monotonicUs - connectStartUs_ >= tokenLifetimeUs_) {
    SetState(ClientState::kConnectTokenExpired);
    return;
  }
  if (!SameServerAddress(from, token_.serverAddresses[addressIndex_])) {
    ++counters_.unknownAddress;
    return;
  }
  // Whether a carried window still applies is known only at this connection's first keep-alive (below);
  // until then nothing replay-protected is taken (payloads and disconnects are ignored while connecting).
  const bool deciding = windowCarried_ && state_ == ClientState::kSendingConnectionResponse;
  Packet packet;
  const DropReason reason = ReadEncryptedPacket(data, size, protocolId_, token_.serverToClientKey, kClientAccepts,
                                                deciding ? nullptr : &replay(), &packet, bodyBuffer_);
  if (reason != DropReason::kNone) {
    CountDrop(reason);
    return;
  }
  switch (packet.type) {
    case kConnectionDenied:
      if (Connecting(state_)) Fail(ClientState::kConnectionDenied, now);
      return;
    case kConnectionChallenge:
      if (state_ == ClientState::kSendingConnectionResponse) {
        // Challenges are not replay-protected: one captured from an earlier handshake with this token (which
        // the server no longer takes) may come first. The server's challenges count up, so a later one wins.
        if (WireReader(bodyBuffer_, 8).U64() <= WireReader(challengeBody_, 8).U64()) return;
        std::memcpy(challengeBody_, bodyBuffer_, kChallengeBodyBytes);
        lastReceiveUs_ = now.monotonicUs;
        SendHandshake(now);
        return;
      }
      if (state_ != ClientState::kSendingConnectionRequest) return;
      std::memcpy(challengeBody_, bodyBuffer_, kChallengeBodyBytes);
      lastReceiveUs_ = now.monotonicUs;
      SetState(ClientState::kSendingConnectionResponse);
      SendHandshake(now);
      return;
    case kKeepAlive:
      if (state_ == ClientState::kSendingConnectionResponse) {
        if (deciding) {
          // Below where the earlier connection ended: the server started its sequence again. At or past it,
          // it went on, and every sequence below its first keep-alive counts as received: the earlier
          // connection's packets that never arrived (its last redundant disconnects) would otherwise pass
          // for new if replayed. The server sends this connection's payloads after that keep-alive.
          ReplayWindow& window = replay();
          if (packet.sequence < window.ReceivedEnd()) {
            window.Reset();
          } else {
            window.ResetBelow(packet.sequence);
          }
          window.Advance(packet.sequence);
          windowCarried_ = false;
        }
        WireReader reader(bodyBuffer_, packet.bodySize);
        clientIndex_ = reader.U32();
        maxClients_ = reader.U32();
        lastReceiveUs_ = now.monotonicUs;
        windows_[addressIndex_].held = true;
        windows_[addressIndex_].server = token_.serverAddresses[addressIndex_];
        SetState(ClientState::kConnected);
      } else if (state_ == ClientState::kConnected) {
        lastReceiveUs_ = now.monotonicUs;
      }
      return;
    case kPayload:
      if (state_ != ClientState::kConnected) return;  // payloads before connected are discarded
      lastReceiveUs_ = now.monotonicUs;
      {
        ClientEvent& event = events_.emplace_back();
        event.type = ClientEvent::Type::kPayload;
        event.data = bodyBuffer_;  // one payload per call: the next Receive overwrites it
        event.size = packet.bodySize;
      }
      return;
    case kDisconnect:
      // The server ended the connection: disconnected, as STANDARD.md says (the reference code tries the
      // token's next address).
      if (state_ == ClientState::kConnected) SetState(ClientState::kDisconnected);
      return;
    default:
      return;
  }
}

void ClientCore::SendFarewells(const Clock& now) {
  if (farewellsLeft_ > 0 && now.monotonicUs >= nextFarewellUs_) {
    const size_t length = EncryptPacket(kDisconnect, sequence_++, nullptr, 0, protocolId_, farewellKey_, packetBuffer_);
    ++counters_.packetsOut;
    counters_.bytesOut += length;
    out_->Send(farewellAddress_, packetBuffer_, length);
    --farewellsLeft_;
    nextFarewellUs_ = now.monotonicUs + config_.disconnectIntervalUs;
    if (farewellsLeft_ == 0) sodium_memzero(farewellKey_, kKeyBytes);
  }
}

void ClientCore::PauseTimeouts(const Clock& now) { timeoutPause_.Pause(now.monotonicUs); }

void ClientCore::ResumeTimeouts(const Clock& now) {
  lastReceiveUs_ = TimeoutPause::Credit(lastReceiveUs_, timeoutPause_.Resume(now.monotonicUs), now.monotonicUs);
}

void ClientCore::Update(const Clock& now) {
  SendFarewells(now);
  const bool timeoutEnabled = token_.timeoutSeconds > 0 && !timeoutPause_.paused();
  const uint64_t timeoutUs = timeoutEnabled ? uint64_t(token_.timeoutSeconds) * 1000000u : 0;
  if (Connecting(state_)) {
    if (now.monotonicUs - connectStartUs_ >= tokenLifetimeUs_) {
      SetState(ClientState::kConnectTokenExpired);
      return;
    }
    if (timeoutEnabled && now.monotonicUs - lastReceiveUs_ >= timeoutUs) {
      Fail(state_ == ClientState::kSendingConnectionRequest ? ClientState::kConnectionRequestTimedOut
                                                            : ClientState::kConnectionResponseTimedOut,
           now);
      return;
    }
    if (now.monotonicUs - lastSendUs_ >= config_.requestIntervalUs) SendHandshake(now);
  } else if (state_ == ClientState::kConnected) {
    if (timeoutEnabled && now.monotonicUs - lastReceiveUs_ >= timeoutUs) {
      SetState(ClientState::kConnectionTimedOut);
      return;
    }
    if (now.monotonicUs - lastSendUs_ >= config_.keepAliveIntervalUs) {
      uint8_t body[kKeepAliveBodyBytes];
      WireWriter writer(body, sizeof(body));
      writer.U32(clientIndex_);
      writer.U32(maxClients_);
      Send(kKeepAlive, body, sizeof(body), now);
    }
  }
}

uint64_t ClientCore::NextDeadlineUs() const {
  uint64_t next = farewellsLeft_ > 0 ? nextFarewellUs_ : kNoDeadline;
  const auto earliest = [&next](uint64_t due) {
    if (due < next) next = due;
  };
  const bool timeoutEnabled = token_.timeoutSeconds > 0 && !timeoutPause_.paused();
  const uint64_t timeoutUs = timeoutEnabled ? uint64_t(token_.timeoutSeconds) * 1000000u : 0;
  if (Connecting(state_)) {
    earliest(tokenLifetimeUs_ > UINT64_MAX - connectStartUs_ ? kNoDeadline : connectStartUs_ + tokenLifetimeUs_);
    if (timeoutEnabled) earliest(lastReceiveUs_ + timeoutUs);
    earliest(lastSendUs_ + config_.requestIntervalUs);
  } else if (state_ == ClientState::kConnected) {
    if (timeoutEnabled) earliest(lastReceiveUs_ + timeoutUs);
    earliest(lastSendUs_ + config_.keepAliveIntervalUs);
  }
  return next;
}

bool ClientCore::SendPayload(const uint8_t* data, size_t size, const Clock& now) {
  if (state_ != ClientState::kConnected || size < 1 || size > kMaxPayloadBytes) return false;
  Send(kPayload, data, size, now);
  return true;
}

void ClientCore::Disconnect(const Clock& now) {
  // While sending its response too, as the reference does: the server may have given it a slot already
  // (the keep-alive that says so lost), which would otherwise last until it times out.
  const bool mayHaveSlot = state_ == ClientState::kConnected || state_ == ClientState::kSendingConnectionResponse;
  if (mayHaveSlot && config_.disconnectPackets > 0) {
    farewellsLeft_ = config_.disconnectPackets;
    farewellAddress_ = token_.serverAddresses[addressIndex_];
    std::memcpy(farewellKey_, token_.clientToServerKey, kKeyBytes);
    nextFarewellUs_ = now.monotonicUs;
    SendFarewells(now);  // the first goes out at once
  }
  SetState(ClientState::kDisconnected);
}

}  // namespace volley::netcode
