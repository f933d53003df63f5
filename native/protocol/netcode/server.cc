#include "protocol/netcode/server.h"

#include <sodium.h>

#include <algorithm>
#include <cstring>

#include "util/free_list.h"
#include "protocol/netcode/challenge_token.h"
#include "protocol/netcode/packet.h"
#include "protocol/netcode/wire.h"

namespace volley::netcode {

namespace {

// Types a server takes: requests (plaintext, handled apart), responses, keep-alives, payloads, disconnects.
constexpr uint32_t kServerAccepts = (1u << kConnectionResponse) | (1u << kKeepAlive) | (1u << kPayload) | (1u << kDisconnect);

// Single writer: a relaxed load and store, no locked add.
void Count(std::atomic<double>& counter, uint64_t amount) {
  counter.store(counter.load(std::memory_order_relaxed) + static_cast<double>(amount), std::memory_order_relaxed);
}

}  // namespace

ServerCore::ServerCore(const ServerConfig& config, const uint8_t challengeKey[kKeyBytes], DatagramOut* out)
    : config_(config),
      privateKeys_(config.privateKey),
      out_(out),
      slots_(config.maxClients),
      addressHashKey_(TableHashKey::Random()),
      slotByAddress_(config.maxClients, addressHashKey_),
      clientIdHashKey_(TableHashKey::Random()),
      slotByClientId_(config.maxClients, clientIdHashKey_),
      mappingByAddress_(1024, addressHashKey_),
      mappingByClientId_(1024, clientIdHashKey_),
      maxMappings_(std::max<size_t>(size_t{config.maxClients} * 4, kMinPendingHandshakes)),
      tokenHistory_(1024),
      maxTokenHistory_(std::max<size_t>(size_t{config.maxClients} * 8, kMinTokenHistory)),
      recentlyReleased_(1024, addressHashKey_),
      peerCounters_(std::make_shared<PeerCounterTable>(config.maxClients)) {
  std::memcpy(challengeKey_, challengeKey, kKeyBytes);
  // The previous keys' grace is on the clock the server will be fed: Expire() drops any that ended by the first call.
  for (uint32_t i = 0; i < config.previousKeyCount && i < kMaxPrivateKeys - 1; ++i) {
    privateKeys_.AddPrevious(config.previousKeys[i].key, config.previousKeys[i].untilUs, 0);
  }
  sodium_memzero(config_.privateKey, kKeyBytes);  // privateKeys_ holds them now: no second copy
  sodium_memzero(config_.previousKeys, sizeof(config_.previousKeys));
  forgottenSequenceFloor_ = config.sequenceBase;
  globalSequence_ = config.globalSequenceStart | (uint64_t{1} << 63);  // never among the per-client ones
  challengeSequence_ = config.challengeSequenceStart;
  freeSlots_.reserve(config.maxClients);
  for (uint32_t i = config.maxClients; i > 0; --i) freeSlots_.push_back(i - 1);
}

ServerCore::~ServerCore() {
  sodium_memzero(challengeKey_, kKeyBytes);
  for (Slot& slot : slots_) {
    if (!slot.connected) continue;  // a release wipes a slot's keys
    sodium_memzero(slot.sendKey, kKeyBytes);
    sodium_memzero(slot.receiveKey, kKeyBytes);
  }
  for (const uint32_t index : liveMappings_) {
    sodium_memzero(mappings_[index].sendKey, kKeyBytes);
    sodium_memzero(mappings_[index].receiveKey, kKeyBytes);
  }
  for (size_t i = 0; i < farewells_.size(); ++i) sodium_memzero(farewells_[i].sendKey, kKeyBytes);
}

void ServerCore::Emit(const ServerAddress& to, const uint8_t* data, size_t size) {
  ++counters_.packetsOut;
  counters_.bytesOut += size;
  out_->Send(to, data, size);
}

uint8_t* ServerCore::EventBytes(size_t size) {
  // Grown, never shrunk: a batch's payloads (64 of up to 1,200 bytes by default) are written here in place.
  if (eventBytes_.size() < eventBytesUsed_ + size) eventBytes_.resize(std::max(eventBytesUsed_ + size, eventBytes_.size() * 2));
  return eventBytes_.data() + eventBytesUsed_;
}

ServerEvent& ServerCore::QueueEvent(ServerEvent::Type type, uint32_t client, size_t bytes) {
  QueuedEvent& queued = events_.emplace_back();
  queued.event.type = type;
  queued.event.client = client;
  queued.event.size = bytes;
  queued.offset = eventBytesUsed_;
  eventBytesUsed_ += bytes;  // written by the caller at EventBytes(), before this
  return queued.event;
}

bool ServerCore::PollEvent(ServerEvent* event) {
  if (nextEvent_ < events_.size()) {
    const QueuedEvent& queued = events_[nextEvent_++];
    *event = queued.event;
    if (queued.event.size > 0) event->data = eventBytes_.data() + queued.offset;
    return true;
  }
  events_.clear();
  nextEvent_ = 0;
  eventBytesUsed_ = 0;
  return false;
}

void ServerCore::CountDrop(DropReason reason) {
  switch (reason) {
    case DropReason::kReplayed: ++counters_.replayed; break;
    case DropReason::kTooOld: ++counters_.tooOld; break;
    case DropReason::kDecryptionFailed: ++counters_.decryptionFailed; break;
    case DropReason::kWrongProtocol: ++counters_.wrongProtocol; break;
    case DropReason::kExpired: ++counters_.tokenExpired; break;
    case DropReason::kTokenRefused: ++counters_.tokenRefused; break;
    default: ++counters_.malformed; break;
  }
}

void ServerCore::CountPeerDrop(uint32_t index, DropReason reason) {
  CountDrop(reason);
  PeerCounters& counters = peerCounters_->entries[index];
  switch (reason) {
    case DropReason::kReplayed: Count(counters.replayed, 1); break;
    case DropReason::kTooOld: Count(counters.tooOld, 1); break;
    case DropReason::kDecryptionFailed: Count(counters.decryptionFailed, 1); break;
    default: Count(counters.malformed, 1); break;
  }
}

bool ServerCore::TimedOut(int32_t timeoutSeconds, uint64_t sinceUs, const Clock& now) const {
  return timeoutSeconds > 0 && now.monotonicUs - sinceUs >= uint64_t(timeoutSeconds) * 1000000u;
}

void ServerCore::Receive(const ServerAddress& from, const uint8_t* data, size_t size, const Clock& now) {
  Sender sender;
  sender.key = AddressKey::Of(from);
  sender.hash = slotByAddress_.Hash(sender.key);
  Receive(from, sender, data, size, size, now);
}

void ServerCore::ReceiveBatch(const ReceivedDatagram* datagrams, size_t count, const Clock& now) {
  for (size_t first = 0; first < count; first += kLookahead) {
    const size_t n = std::min(kLookahead, count - first);
    const ReceivedDatagram* part = datagrams + first;
    for (size_t i = 0; i < n; ++i) {
      lookahead_[i].key = AddressKey::Of(part[i].from);
      lookahead_[i].hash = slotByAddress_.Hash(lookahead_[i].key);
      slotByAddress_.Prefetch(lookahead_[i].hash);
      // A request looks its sender up among the handshakes before anything else (the throttle).
      if (part[i].size > 0 && part[i].data[0] == kConnectionRequest) mappingByAddress_.Prefetch(lookahead_[i].hash);
    }
    for (size_t i = 0; i < n; ++i) Receive(part[i].from, lookahead_[i], part[i].data, part[i].size, part[i].wireSize, now);
  }
}

void ServerCore::Receive(const ServerAddress& from, const Sender& sender, const uint8_t* data, size_t size,
                         size_t wireSize, const Clock& now) {
  ++counters_.packetsIn;
  counters_.bytesIn += wireSize;
  if (stopping_) return;  // clients' own redundant disconnects and late keep-alives: expected, not drops
  // Port 0: nothing can be sent back there (the kernel refuses it), so nothing from it is answered.
  if (size == 0 || from.port == 0) {
    ++counters_.malformed;
    return;
  }
  if (data[0] == kConnectionRequest) {
    ProcessRequest(from, sender, data, size, now);
    return;
  }
  // A response's sender is in the handshakes' table: both lookups' cache misses at once.
  if ((data[0] & 0x0f) == kConnectionResponse) mappingByAddress_.Prefetch(sender.hash);
  const uint32_t connected = slotByAddress_.Find(sender.key, sender.hash);
  if (connected != AddressTable::kNone) {
    ProcessConnected(connected, data, size, now);
  } else {
    ProcessResponse(from, sender, data, size, now);
  }
}

void ServerCore::ProcessRequest(const ServerAddress& from, const Sender& sender, const uint8_t* data, size_t size,
                                 const Clock& now) {
  // An address with a handshake that was sent a challenge less than kChallengeIntervalUs ago gets no other
  // before then: ignored before its token is opened (which costs more than anything else here). Only a
  // challenge sent resets the interval, so that requests forged from the address cannot hold it off.
  EncryptionMapping* mapping = FindMapping(sender);  // (nothing below adds or removes one before it is used)
  if (mapping != nullptr && now.monotonicUs - mapping->lastChallengeUs < kChallengeIntervalUs) {
    ++counters_.requestsThrottled;
    return;
  }
  // The lines the lookups below will read, asked for now, so that the token's decryption covers the wait for
  // them (in tables of 10k+ clients a lookup misses the cache). The sealed token ends the request, and its
  // MAC ends the token.
  static_assert(kConnectionRequestBytes == 1 + kVersionInfoBytes + 8 + 8 + kConnectTokenNonceBytes + kPrivateConnectTokenBytes,
                "a request ends with its sealed token");
  TokenMac mac;
  uint64_t macHash = 0;
  if (size == kConnectionRequestBytes) {
    std::memcpy(mac.bytes, data + size - kMacBytes, kMacBytes);
    macHash = tokenHistory_.Hash(mac);
    tokenHistory_.Prefetch(macHash);
    slotByAddress_.Prefetch(sender.hash);
    mappingByAddress_.Prefetch(sender.hash);
  }
  // Size, version, protocol id, expiry, decryption, parse: no state is touched before these pass.
  ConnectionRequest request;
  privateKeys_.Expire(now.monotonicUs);  // a key whose grace has ended opens nothing more
  const DropReason reason = ReadConnectionRequest(data, size, config_.protocolId, privateKeys_, now.unixSeconds, &request);
  if (reason != DropReason::kNone) {
    CountDrop(reason);
    return;
  }
  if (request.keyIndex != 0) ++counters_.previousKeyRequests;
  bool listed = false;
  for (uint32_t i = 0; i < request.token.serverAddressCount; ++i) {
    if (SameServerAddress(request.token.serverAddresses[i], config_.publicAddress)) listed = true;
  }
  if (!listed) {
    ++counters_.tokenRefused;
    return;
  }
  const AddressKey& key = sender.key;
  const uint64_t clientId = request.token.clientId;
  const uint64_t clientIdHash = slotByClientId_.Hash(clientId);  // for both tables by client id
  mappingByClientId_.Prefetch(clientIdHash);  // its miss beside slotByClientId_'s, not after it
  if (slotByAddress_.Find(key, sender.hash) != AddressTable::kNone || slotByClientId_.Find(clientId, clientIdHash) != AddressTable::kNone) {
    ++counters_.tokenRefused;  // already connected: from this address, or as this client id
    return;
  }
  // A token may be used from one address only (else a captured request could be replayed from elsewhere).
  const uint32_t used = tokenHistory_.Find(mac, macHash);
  if (used != FlatTable<TokenMac>::kNone) {
    if (!(tokenUses_[used].address == key)) {
      ++counters_.tokenRefused;
      return;
    }
  } else {
    RememberToken(mac, macHash, key);
  }
  // Its client is back: the disconnect packets still owed to this address stop (see Farewell).
  if (!releaseOrder_.empty()) recentlyReleased_.Erase(key, sender.hash);
  if (freeSlots_.empty()) {
    ++counters_.denied;
    SendWithGlobalSequence(from, request.token.serverToClientKey, kConnectionDenied, nullptr, 0);
    return;
  }
  // The same client id's handshake from another address gives way (mappingByClientId_ says why).
  const uint32_t sameClient = mappingByClientId_.Find(clientId, clientIdHash);
  if (sameClient != FlatTable<uint64_t>::kNone && &mappings_[sameClient] != mapping) {
    ++counters_.handshakesReplaced;
    RemoveMapping(mappings_[sameClient], clientIdHash);  // (mappings_ keeps its entries in place: `mapping` stays valid)
  }
  const bool newHandshake = mapping == nullptr || !(mapping->token == mac);
  EncryptionMapping& entry = mapping != nullptr ? *mapping : AddMapping(sender);
  if (newHandshake) entry.firstChallenge = challengeSequence_;
  if (mapping == nullptr || entry.clientId != clientId) {
    if (mapping != nullptr) mappingByClientId_.Erase(entry.clientId);  // a token of another client from this address
    mappingByClientId_.Set(clientId, clientIdHash, static_cast<uint32_t>(&entry - mappings_.data()));
  }
  entry.token = mac;
  entry.clientId = clientId;
  std::memcpy(entry.sendKey, request.token.serverToClientKey, kKeyBytes);
  std::memcpy(entry.receiveKey, request.token.clientToServerKey, kKeyBytes);
  entry.timeoutSeconds = request.token.timeoutSeconds;
  entry.expireUnixSeconds = request.expireTimestamp;
  entry.requestedUs = now.monotonicUs;

  ChallengeToken challenge;
  challenge.clientId = request.token.clientId;
  std::memcpy(challenge.userData, request.token.userData, kUserDataBytes);
  uint8_t body[kChallengeBodyBytes];
  WireWriter writer(body, sizeof(body));
  writer.U64(challengeSequence_);
  SealChallengeToken(challenge, challengeSequence_, challengeKey_, body + 8);
  ++challengeSequence_;
  entry.lastChallengeUs = now.monotonicUs;
  SendWithGlobalSequence(from, entry.sendKey, kConnectionChallenge, body, sizeof(body));
}

void ServerCore::ProcessResponse(const ServerAddress& from, const Sender& sender, const uint8_t* data, size_t size,
                                 const Clock& now) {
  const AddressKey& key = sender.key;
  EncryptionMapping* const mapping = FindMapping(sender);
  if (mapping == nullptr) {
    // From a client that just left, what it may still send (its redundant disconnects, a late keep-alive
    // or payload) is expected; anything else from there is counted.
    constexpr uint32_t kLate = (1u << kDisconnect) | (1u << kKeepAlive) | (1u << kPayload);
    if (recentlyReleased_.Find(key, sender.hash) == AddressTable::kNone) {
      ++counters_.unknownAddress;
    } else if (!EncryptedPacketShaped(data, size, kLate)) {
      ++counters_.malformed;
    }
    return;
  }
  // Housekeeping removes expired mappings only once a second: one past its timeout (or, with none, its
  // token's expiry) must not be used in between.
  if (MappingExpired(*mapping, now)) {
    RemoveMapping(*mapping);
    ++counters_.unknownAddress;
    return;
  }
  // A client that gives up while its response is on its way sends its redundant disconnects (this server
  // may have given it a slot already): expected, not counted as malformed.
  if (EncryptedPacketShaped(data, size, 1u << kDisconnect)) return;
  // As in ProcessRequest: the lookups of a completed handshake, asked for while the response is opened.
  const uint64_t clientIdHash = slotByClientId_.Hash(mapping->clientId);
  const uint64_t tokenHash = tokenHistory_.Hash(mapping->token);
  slotByClientId_.Prefetch(clientIdHash);
  mappingByClientId_.Prefetch(clientIdHash);
  tokenHistory_.Prefetch(tokenHash);
  Packet packet;
  const DropReason reason =
      ReadEncryptedPacket(data, size, config_.protocolId, mapping->receiveKey,
                          1u << kConnectionResponse, nullptr, &packet, bodyBuffer_);
  if (reason != DropReason::kNone) {
    CountDrop(reason);
    return;
  }
  WireReader reader(bodyBuffer_, packet.bodySize);
  const uint64_t challengeSequence = reader.U64();
  const uint8_t* sealed = reader.Skip(kChallengeTokenBytes);
  ChallengeToken challenge;
  // The challenge token must be one this address was sent for its connect token in this handshake: one sent
  // for another token (to another address, or earlier to this one) would connect this token's keys as
  // another client, which the checks on the client id and the token history then cannot tell from a new
  // one (a second connection of the same token while the first lives: the same keys and sequence numbers,
  // twice); and an earlier handshake's response, captured and replayed, would pass for a client that
  // started its sequence again (below), with a replay window that takes the earlier connection's packets.
  if (reader.failed() || challengeSequence < mapping->firstChallenge ||
      !OpenChallengeToken(sealed, challengeSequence, challengeKey_, &challenge) || challenge.clientId != mapping->clientId) {
    ++counters_.tokenRefused;
    return;
  }
  // (The challenge token's client id is the mapping's, checked above.)
  if (slotByClientId_.Find(challenge.clientId, clientIdHash) != AddressTable::kNone) {
    ++counters_.tokenRefused;
    return;
  }
  if (freeSlots_.empty()) {
    ++counters_.denied;
    SendWithGlobalSequence(from, mapping->sendKey, kConnectionDenied, nullptr, 0);
    return;
  }
  const uint32_t index = freeSlots_.back();
  freeSlots_.pop_back();
  Slot& slot = slots_[index];
  slot = Slot{};
  slot.token = mapping->token;
  const Resumption resumed = Resume(slot.token, tokenHash);
  slot.sequence = resumed.nextSequence;
  slot.connected = true;
  slot.address = from;
  slot.clientId = challenge.clientId;
  slot.timeoutSeconds = mapping->timeoutSeconds;
  slot.lastReceiveUs = now.monotonicUs;
  // The response is the connection's first packet from the client, made for this handshake's challenge:
  // at or past where an earlier connection with this token ended, the client went on with its sequence;
  // below, it started again. Going on, every sequence below this response counts as received, not only
  // those the server took: what the earlier connection sent and never delivered (its last redundant
  // disconnects, a tail lost before a timeout), captured and replayed, would pass for new. This
  // connection's own packets all come after its responses.
  if (packet.sequence >= resumed.receivedEnd) slot.replay.ResetBelow(packet.sequence);
  std::memcpy(slot.sendKey, mapping->sendKey, kKeyBytes);
  std::memcpy(slot.receiveKey, mapping->receiveKey, kKeyBytes);
  RemoveMapping(*mapping, clientIdHash);
  slotByAddress_.Insert(key, sender.hash, index);
  slotByClientId_.Insert(challenge.clientId, clientIdHash, index);
  ++connected_;
  PeerCounters& counters = peerCounters_->entries[index];
  counters.clients.store(counters.clients.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  counters.packetsIn.store(1, std::memory_order_relaxed);
  counters.bytesIn.store(static_cast<double>(size), std::memory_order_relaxed);
  counters.packetsOut.store(0, std::memory_order_relaxed);
  counters.bytesOut.store(0, std::memory_order_relaxed);
  for (std::atomic<double>* drops : {&counters.malformed, &counters.replayed, &counters.tooOld, &counters.decryptionFailed}) {
    drops->store(0, std::memory_order_relaxed);
  }
  std::memcpy(EventBytes(kUserDataBytes), challenge.userData, kUserDataBytes);
  ServerEvent& connected = QueueEvent(ServerEvent::Type::kConnected, index, kUserDataBytes);
  connected.clientId = challenge.clientId;
  connected.from = from;
  SendKeepAlive(index, now);
  ScheduleSlot(index);
}

void ServerCore::ProcessConnected(uint32_t index, const uint8_t* data, size_t size, const Clock& now) {
  Slot& slot = slots_[index];
  Packet packet;
  // Decrypted where a payload's event keeps it: no copy on the way to the layer above.
  uint8_t* body = EventBytes(kMaxPayloadBytes);
  const DropReason reason =
      ReadEncryptedPacket(data, size, config_.protocolId, slot.receiveKey, kServerAccepts, &slot.replay, &packet, body);
  if (reason != DropReason::kNone) {
    CountPeerDrop(index, reason);
    return;
  }
  Count(peerCounters_->entries[index].packetsIn, 1);
  Count(peerCounters_->entries[index].bytesIn, size);
  switch (packet.type) {
    case kKeepAlive:
      slot.lastReceiveUs = now.monotonicUs;
      slot.confirmed = true;
      break;
    case kPayload:
      slot.lastReceiveUs = now.monotonicUs;
      slot.confirmed = true;
      QueueEvent(ServerEvent::Type::kPayload, index, packet.bodySize);
      break;
    case kDisconnect:
      Release(index, DisconnectReason::kDisconnected, false, now);
      break;
    default:  // a response from a connected address: ignored (STANDARD.md, as the reference); the 10 Hz
      break;  // keep-alives reach a client whose first one was lost
  }
}

void ServerCore::SendWithGlobalSequence(const ServerAddress& to, const uint8_t sendKey[kKeyBytes], PacketType type,
                                        const uint8_t* body, size_t size) {
  const size_t length = EncryptPacket(type, globalSequence_++, body, size, config_.protocolId, sendKey, packetBuffer_);
  Emit(to, packetBuffer_, length);
}

void ServerCore::SendToSlot(uint32_t index, PacketType type, const uint8_t* body, size_t size, const Clock& now) {
  Slot& slot = slots_[index];
  const size_t length = EncryptPacket(type, slot.sequence++, body, size, config_.protocolId, slot.sendKey, packetBuffer_);
  slot.lastSendUs = now.monotonicUs;
  Count(peerCounters_->entries[index].packetsOut, 1);
  Count(peerCounters_->entries[index].bytesOut, length);
  Emit(slot.address, packetBuffer_, length);
}

void ServerCore::SendKeepAlive(uint32_t index, const Clock& now) {
  uint8_t body[kKeepAliveBodyBytes];
  WireWriter writer(body, sizeof(body));
  writer.U32(index);
  writer.U32(config_.maxClients);
  SendToSlot(index, kKeepAlive, body, sizeof(body), now);
}

bool ServerCore::SendPayload(uint32_t clientIndex, const uint8_t* data, size_t size, const Clock& now) {
  if (clientIndex >= slots_.size() || !slots_[clientIndex].connected || size < 1 || size > kMaxPayloadBytes) return false;
  // Until the client confirms, each payload is preceded by a keep-alive: it carries the client index the
  // client needs to count itself connected.
  if (!slots_[clientIndex].confirmed) SendKeepAlive(clientIndex, now);
  SendToSlot(clientIndex, kPayload, data, size, now);
  return true;
}

void ServerCore::Disconnect(uint32_t clientIndex, const Clock& now) {
  if (clientIndex < slots_.size() && slots_[clientIndex].connected) {
    Release(clientIndex, DisconnectReason::kServerDisconnect, true, now);
  }
}

void ServerCore::Release(uint32_t index, DisconnectReason reason, bool farewell, const Clock& now) {
  Slot& slot = slots_[index];
  const AddressKey key = AddressKey::Of(slot.address);
  const bool sendFarewell = farewell && config_.disconnectPackets > 0;
  // A later connection with the same token starts past every packet of this one, its disconnects included,
  // and takes none this one received.
  CarryForward(slot.token, slot.sequence + (sendFarewell ? config_.disconnectPackets : 0), slot.replay.ReceivedEnd());
  slotByAddress_.Erase(key);
  uint32_t serial = 0;
  if (reason != DisconnectReason::kTimeout || sendFarewell) {
    // Long enough for a busy client's redundant disconnects to trickle in.
    const uint64_t until = now.monotonicUs + (uint64_t{config_.disconnectPackets} + 1) * config_.disconnectIntervalUs + 10000000u;
    serial = releaseSerial_;
    releaseSerial_ = releaseSerial_ + 1 == AddressTable::kNone ? 0 : releaseSerial_ + 1;
    recentlyReleased_.Set(key, serial);
    releaseOrder_.push_back(Released{until, key, serial});
  }
  Farewell entry;
  if (sendFarewell) {
    entry.address = slot.address;
    std::memcpy(entry.sendKey, slot.sendKey, kKeyBytes);
    entry.sequence = slot.sequence;
    entry.remaining = config_.disconnectPackets;
    entry.releaseSerial = serial;
  }
  slotByClientId_.Erase(slot.clientId);
  sodium_memzero(slot.sendKey, kKeyBytes);
  sodium_memzero(slot.receiveKey, kKeyBytes);
  slot.connected = false;
  slot.confirmed = false;
  slotTimers_.Cancel(index);
  if (slot.awaitingAbove) Answered(slot);
  slot.aboveDueUs = kNoDeadline;
  freeSlots_.push_back(index);
  --connected_;
  ServerEvent& disconnected = QueueEvent(ServerEvent::Type::kDisconnected, index, 0);
  disconnected.reason = reason;
  const PeerCounters& counters = peerCounters_->entries[index];
  const std::atomic<double>* finals[kFinalCounters] = {&counters.packetsIn, &counters.bytesIn,   &counters.packetsOut, &counters.bytesOut,
                                                       &counters.malformed, &counters.replayed,  &counters.tooOld,     &counters.decryptionFailed};
  for (size_t i = 0; i < kFinalCounters; ++i) disconnected.finalCounters[i] = finals[i]->load(std::memory_order_relaxed);
  if (sendFarewell) SendFarewell(entry, now);  // the first disconnect packet goes out at once
}

void ServerCore::Stop(const Clock& now) {
  stopping_ = true;
  for (uint32_t index = 0; index < slots_.size() && connected_ > 0; ++index) {
    if (slots_[index].connected) Release(index, DisconnectReason::kServerClosed, true, now);
  }
  for (EncryptionMapping& entry : mappings_) {
    if (entry.used) RemoveMapping(entry);
  }
}

void ServerCore::PauseTimeouts(const Clock& now) { timeoutPause_.Pause(now.monotonicUs); }

void ServerCore::RotatePrivateKey(const uint8_t key[kKeyBytes], uint64_t graceUs, const Clock& now) {
  // Saturated short of kNever, which marks the current key.
  const uint64_t untilUs = graceUs < PrivateKeys::kNever - 1 - now.monotonicUs ? now.monotonicUs + graceUs : PrivateKeys::kNever - 1;
  privateKeys_.Rotate(key, untilUs, now.monotonicUs);
}

void ServerCore::ResumeTimeouts(const Clock& now) {
  const uint64_t pausedUs = timeoutPause_.Resume(now.monotonicUs);
  if (pausedUs == 0) return;
  // Slots whose timeout came due meanwhile were scheduled for their keep-alives alone: each SlotTimer
  // schedules its timeout again.
  uint32_t seen = 0;
  for (uint32_t index = 0; index < slots_.size() && seen < connected_; ++index) {
    Slot& slot = slots_[index];
    if (!slot.connected) continue;
    ++seen;
    slot.lastReceiveUs = TimeoutPause::Credit(slot.lastReceiveUs, pausedUs, now.monotonicUs);
  }
}

void ServerCore::Update(const Clock& now) {
  FinishAwaiting(now);
  privateKeys_.Expire(now.monotonicUs);
  slotTimers_.Advance(now.monotonicUs, [&](uint32_t index) { SlotTimer(index, now); });
  SendFarewells(now);
  if (now.monotonicUs >= nextHousekeepingUs_) Housekeeping(now);
}

uint64_t ServerCore::NextDeadlineUs() const {
  if (awaitingCount_ > 0) return 0;  // a kPeerTimer event went unanswered: Update() finishes it
  uint64_t next = slotTimers_.NextDueUs();
  if (!farewells_.empty() && farewells_.front().nextUs < next) next = farewells_.front().nextUs;
  if ((!liveMappings_.empty() || !releaseOrder_.empty()) && nextHousekeepingUs_ < next) next = nextHousekeepingUs_;
  // A key whose grace ends is wiped then, not at the next request, however late that comes.
  if (privateKeys_.nextExpiryUs() < next) next = privateKeys_.nextExpiryUs();
  return next;
}

void ServerCore::ScheduleSlot(uint32_t index) {
  // Sends and receives move lastSendUs and lastReceiveUs without touching the wheel: the timer fires at the
  // time the last schedule computed, and SlotTimer works out what is really due then.
  const Slot& slot = slots_[index];
  uint64_t due = slot.lastSendUs + config_.keepAliveIntervalUs;
  if (slot.timeoutSeconds > 0 && !timeoutPause_.paused()) {
    const uint64_t timeoutAt = slot.lastReceiveUs + uint64_t(slot.timeoutSeconds) * 1000000u;
    if (timeoutAt < due) due = timeoutAt;
  }
  if (slot.aboveDueUs < due) due = slot.aboveDueUs;
  slotTimers_.Schedule(index, due);
}

void ServerCore::SetPeerDeadline(uint32_t clientIndex, uint64_t dueUs, const Clock& now) {
  if (clientIndex >= slots_.size() || !slots_[clientIndex].connected) return;
  Slot& slot = slots_[clientIndex];
  slot.aboveDueUs = dueUs;
  if (slot.awaitingAbove) {
    FinishSlotTimer(clientIndex, now);
  } else if (dueUs < slotTimers_.DueUs(clientIndex)) {
    slotTimers_.Schedule(clientIndex, dueUs);
  }
}

void ServerCore::Answered(Slot& slot) {
  slot.awaitingAbove = false;
  if (--awaitingCount_ == 0) awaiting_.clear();
}

void ServerCore::FinishAwaiting(const Clock& now) {
  if (awaitingCount_ == 0) return;
  const std::vector<uint32_t> awaiting = std::move(awaiting_);
  for (const uint32_t index : awaiting) {
    if (slots_[index].awaitingAbove) FinishSlotTimer(index, now);
  }
}

void ServerCore::SlotTimer(uint32_t index, const Clock& now) {
  Slot& slot = slots_[index];
  if (!timeoutPause_.paused() && TimedOut(slot.timeoutSeconds, slot.lastReceiveUs, now)) {
    Release(index, DisconnectReason::kTimeout, false, now);
    return;
  }
  if (slot.aboveDueUs != kNoDeadline) {
    // The layer above runs its timer first (it may send, which makes a keep-alive needless); the keep-alive
    // is decided when it answers with its next deadline.
    slot.awaitingAbove = true;
    ++awaitingCount_;
    awaiting_.push_back(index);
    QueueEvent(ServerEvent::Type::kPeerTimer, index, 0);
    return;
  }
  FinishSlotTimer(index, now);
}

void ServerCore::FinishSlotTimer(uint32_t index, const Clock& now) {
  Slot& slot = slots_[index];
  if (slot.awaitingAbove) Answered(slot);
  if (!slot.connected) return;
  // The wheel fires up to a tick early: a keep-alive due within that tick goes now, unless the layer above
  // is due within it too. Its pings run at the keep-alive's 10 Hz and would follow the keep-alive by less
  // than a tick: one packet too many, about 3 a second per idle peer with channels.
  const uint64_t idleUs = now.monotonicUs - slot.lastSendUs;
  const uint64_t tickUs = slotTimers_.tickUs();
  if (idleUs >= config_.keepAliveIntervalUs ||
      (idleUs + tickUs > config_.keepAliveIntervalUs && slot.aboveDueUs > now.monotonicUs + tickUs)) {
    SendKeepAlive(index, now);
  }
  ScheduleSlot(index);
}

void ServerCore::Housekeeping(const Clock& now) {
  // Once a second: mappings live for seconds (the token's timeout), released addresses for 10 s or more.
  nextHousekeepingUs_ = now.monotonicUs + 1000000u;
  while (!releaseOrder_.empty() && releaseOrder_.front().untilUs <= now.monotonicUs) {
    const Released& oldest = releaseOrder_.front();
    // Released again since: a later entry in the queue holds its new time.
    if (recentlyReleased_.Find(oldest.address) == oldest.serial) recentlyReleased_.Erase(oldest.address);
    releaseOrder_.pop_front();
  }
  // Backwards: a removal moves the last live mapping, one already visited, into the place it leaves.
  for (size_t i = liveMappings_.size(); i-- > 0;) {
    EncryptionMapping& entry = mappings_[liveMappings_[i]];
    if (MappingExpired(entry, now)) RemoveMapping(entry);
  }
}

bool ServerCore::MappingExpired(const EncryptionMapping& entry, const Clock& now) const {
  // The token's expiry was checked on the request: as in the reference, it does not end a handshake that has a
  // timeout. Only one with none (0 or negative) is bounded by it, so that it cannot hold a place for ever.
  if (entry.timeoutSeconds > 0) return TimedOut(entry.timeoutSeconds, entry.requestedUs, now);
  return entry.expireUnixSeconds <= now.unixSeconds;
}

ServerCore::EncryptionMapping* ServerCore::FindMapping(const Sender& sender) {
  const uint32_t index = mappingByAddress_.Find(sender.key, sender.hash);
  return index == FlatTable<AddressKey>::kNone ? nullptr : &mappings_[index];
}

ServerCore::EncryptionMapping& ServerCore::AddMapping(const Sender& sender) {
  // Full: the oldest handshake goes. An honest one completes within a round trip or so of its request, so
  // the oldest is most likely one that never will (a peer that only sends requests); 4 × maxClients at
  // least 1,024 of them are made before an honest one is reached.
  if (liveMappings_.size() >= maxMappings_) {
    ++counters_.handshakesEvicted;
    RemoveMapping(mappings_[oldestMapping_]);
  }
  const uint32_t index = TakeFreeIndex(freeMappings_, mappings_);
  EncryptionMapping& entry = mappings_[index];
  entry.used = true;
  entry.address = sender.key;
  entry.clientId = 0;
  entry.lastChallengeUs = 0;
  entry.livePosition = static_cast<uint32_t>(liveMappings_.size());
  liveMappings_.push_back(index);
  mappingByAddress_.Insert(sender.key, sender.hash, index);
  entry.older = newestMapping_;
  entry.newer = kNoMapping;
  (newestMapping_ != kNoMapping ? mappings_[newestMapping_].newer : oldestMapping_) = index;
  newestMapping_ = index;
  return entry;
}

void ServerCore::RemoveMapping(EncryptionMapping& entry) { RemoveMapping(entry, mappingByClientId_.Hash(entry.clientId)); }

void ServerCore::RemoveMapping(EncryptionMapping& entry, uint64_t clientIdHash) {
  const uint32_t index = static_cast<uint32_t>(&entry - mappings_.data());
  if (mappingByClientId_.Find(entry.clientId, clientIdHash) == index) mappingByClientId_.Erase(entry.clientId, clientIdHash);
  (entry.older != kNoMapping ? mappings_[entry.older].newer : oldestMapping_) = entry.newer;
  (entry.newer != kNoMapping ? mappings_[entry.newer].older : newestMapping_) = entry.older;
  entry.older = entry.newer = kNoMapping;
  mappingByAddress_.Erase(entry.address);
  sodium_memzero(entry.sendKey, kKeyBytes);
  sodium_memzero(entry.receiveKey, kKeyBytes);
  entry.used = false;
  freeMappings_.push_back(index);
  const uint32_t moved = liveMappings_.back();
  liveMappings_[entry.livePosition] = moved;
  mappings_[moved].livePosition = entry.livePosition;
  liveMappings_.pop_back();
}

void ServerCore::RememberToken(const TokenMac& mac, uint64_t macHash, const AddressKey& address) {
  size_t index;
  if (tokenUses_.size() < maxTokenHistory_) {
    index = tokenUses_.size();
    tokenUses_.push_back(TokenUse{mac, address, forgottenSequenceFloor_, 0});
  } else {  // full: the oldest makes room
    index = oldestTokenUse_;
    oldestTokenUse_ = (oldestTokenUse_ + 1) % maxTokenHistory_;
    tokenHistory_.Erase(tokenUses_[index].mac);
    forgottenSequenceFloor_ = std::max(forgottenSequenceFloor_, tokenUses_[index].nextSequence);
    tokenUses_[index] = TokenUse{mac, address, forgottenSequenceFloor_, 0};
  }
  tokenHistory_.Insert(mac, macHash, static_cast<uint32_t>(index));
}

ServerCore::Resumption ServerCore::Resume(const TokenMac& mac, uint64_t macHash) const {
  const uint32_t use = tokenHistory_.Find(mac, macHash);
  if (use == FlatTable<TokenMac>::kNone) return Resumption{forgottenSequenceFloor_, 0};
  return Resumption{tokenUses_[use].nextSequence, tokenUses_[use].receivedEnd};
}

void ServerCore::CarryForward(const TokenMac& mac, uint64_t nextSequence, uint64_t receivedEnd) {
  const uint32_t use = tokenHistory_.Find(mac);
  uint64_t& carried = use != FlatTable<TokenMac>::kNone ? tokenUses_[use].nextSequence : forgottenSequenceFloor_;
  carried = std::max(carried, nextSequence);
  if (use != FlatTable<TokenMac>::kNone) tokenUses_[use].receivedEnd = std::max(tokenUses_[use].receivedEnd, receivedEnd);
}

void ServerCore::SendFarewells(const Clock& now) {
  while (!farewells_.empty() && farewells_.front().nextUs <= now.monotonicUs) {
    Farewell entry = farewells_.front();
    sodium_memzero(farewells_.front().sendKey, kKeyBytes);
    farewells_.pop_front();
    if (recentlyReleased_.Find(AddressKey::Of(entry.address)) == entry.releaseSerial) {
      SendFarewell(entry, now);
    } else {
      sodium_memzero(entry.sendKey, kKeyBytes);  // its client is back (or the address was released again)
    }
  }
}

void ServerCore::SendFarewell(Farewell& entry, const Clock& now) {
  const size_t length =
      EncryptPacket(kDisconnect, entry.sequence++, nullptr, 0, config_.protocolId, entry.sendKey, packetBuffer_);
  Emit(entry.address, packetBuffer_, length);
  if (--entry.remaining > 0) {
    // Every entry waits the same interval after its last packet, so the queue stays in the order of nextUs.
    entry.nextUs = now.monotonicUs + config_.disconnectIntervalUs;
    farewells_.push_back(Farewell(entry));
  }
  sodium_memzero(entry.sendKey, kKeyBytes);
}

bool ServerCore::clientAddress(uint32_t clientIndex, ServerAddress* out) const {
  if (clientIndex >= slots_.size() || !slots_[clientIndex].connected) return false;
  *out = slots_[clientIndex].address;
  return true;
}

}  // namespace volley::netcode
