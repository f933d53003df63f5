#include "sockets/netcode_sockets.h"

#include <sodium.h>

#include <algorithm>
#include <cstring>

#include "protocol/delivery/link_stats.h"

namespace volley {

std::array<uint8_t, delivery::kPacketSkipKeyBytes> DeliveryLink::RandomPacketSkipKey() {
  std::array<uint8_t, delivery::kPacketSkipKeyBytes> key;
  randombytes_buf(key.data(), key.size());
  return key;
}

namespace {

size_t CopyFields(const uint64_t* fields, size_t count, double* out, size_t capacity) {
  const size_t n = count < capacity ? count : capacity;
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<double>(fields[i]);
  return n;
}

// The counters both protocols have, at their places (ProtocolCounter).
template <typename Counters>
void CommonCounters(const Counters& c, uint64_t* fields) {
  fields[kCounterPacketsIn] = c.packetsIn;
  fields[kCounterBytesIn] = c.bytesIn;
  fields[kCounterPacketsOut] = c.packetsOut;
  fields[kCounterBytesOut] = c.bytesOut;
  fields[kCounterMalformed] = c.malformed;
  fields[kCounterReplayed] = c.replayed;
  fields[kCounterDecryptionFailed] = c.decryptionFailed;
  fields[kCounterUnknownAddress] = c.unknownAddress;
  fields[kCounterTooOld] = c.tooOld;
}

void AddLinkTable(netcode::PeerCounterTable* table) {
  table->linkFields = delivery::kLinkFieldCount;
  table->link.reset(new std::atomic<double>[size_t{table->size} * delivery::kLinkFieldCount]);
  for (size_t i = 0; i < size_t{table->size} * delivery::kLinkFieldCount; ++i) table->link[i].store(0, std::memory_order_relaxed);
}

// A disconnect record carries the peer's last counters (packets and bytes in and out, drops) and, with
// channels, its link row: a next client may take the slot, and reset both, before JavaScript reads the record.
size_t FinalReadingsBytes(const netcode::PeerCounterTable& table) {
  return (kFinalReadingsCounters + (table.link ? table.linkFields : 0)) * sizeof(double);
}

// finalCounters: the netcode core's (ServerEvent::finalCounters), as the slot was left.
void WriteFinalReadings(const netcode::PeerCounterTable& table, uint32_t peer, const double* finalCounters, uint8_t* out) {
  static_assert(kFinalReadingsCounters == netcode::kFinalCounters, "the record carries the core's final counters");
  std::memcpy(out, finalCounters, kFinalReadingsCounters * sizeof(double));
  out += kFinalReadingsCounters * sizeof(double);
  if (!table.link) return;
  for (uint32_t i = 0; i < table.linkFields; ++i, out += sizeof(double)) {
    const double value = table.link[size_t{peer} * table.linkFields + i].load(std::memory_order_relaxed);
    std::memcpy(out, &value, sizeof(double));
  }
}

void ClearLinkRow(netcode::PeerCounterTable* table, uint32_t peer) {
  if (!table->link) return;
  for (uint32_t i = 0; i < table->linkFields; ++i) table->link[size_t{peer} * table->linkFields + i].store(0, std::memory_order_relaxed);
}

// With channels the server's pings answer its clients' (delivery.h: followsPings), one ping interval
// apart: at the same period, a keep-alive due one interval after the last packet would race each of them.
// It waits half a period more.
netcode::ServerConfig WithDelivery(netcode::ServerConfig config, const DeliveryOptions& delivery) {
  if (delivery.enabled) config.keepAliveIntervalUs += std::min(config.keepAliveIntervalUs, delivery.config.pingIntervalUs) / 2;
  return config;
}

// Packets of settings alone sent before a connection ends for a mismatch of channels.
constexpr int kMismatchAnnouncements = 2;

// How long each side waits for the peer's settings once connected: a few pings' worth, at least 2 s (a
// peer with channels sends them with its first packet, and again with each until it has a pong).
uint64_t SettingsWaitUs(const delivery::DeliveryConfig& config) { return std::max<uint64_t>(2000000, 4 * config.pingIntervalUs); }

}  // namespace

// --- a connection's delivery link ---

void DeliveryLink::WatchRoom(const std::vector<uint8_t>& data) {
  watched = true;
  uint32_t charge = 0;
  if (data.size() == sizeof(charge)) std::memcpy(&charge, data.data(), sizeof(charge));  // little-endian hosts
  watchedCharge = std::max<uint64_t>(watchedCharge, charge);
}

void DeliveryLink::ReportQueue(ProtocolOutput& output, uint64_t queueLimitBytes) {
  // At half the limit (not at every message acknowledged), or lower where the refused message would not fit
  // then (a drain it cannot use would have JavaScript try again, and again, until the queue emptied); one
  // larger than the limit waits for an empty queue, which takes any message.
  const uint64_t room = watchedCharge < queueLimitBytes ? queueLimitBytes - watchedCharge : 0;
  if (watched && core.queuedCharge() <= std::min(queueLimitBytes / 2, room)) {
    watched = false;
    watchedCharge = 0;
    output.Record(kPeerDrain, 0, peer_, nullptr, 0);
  }
  if (flushWatched && core.queuedCharge() == 0) {
    flushWatched = false;
    output.Record(kPeerFlushed, 0, peer_, nullptr, 0);
  }
}

void DeliveryLink::ReportMessages(ProtocolOutput& output) {
  if (!settingsReported) ReportSettings(output);
  while (delivery::DeliveredMessage* message = core.PollMessage()) {
    output.Payload(message->channel, peer_, message->data, message->size, message->joined.empty() ? nullptr : &message->joined);
  }
}

bool DeliveryLink::ReportSettings(ProtocolOutput& output) {
  const delivery::PeerSettings& settings = core.peerSettings();
  if (!settingsReported && settings.known) {
    settingsReported = true;
    // The peer's largest message (u32: at most 2^30), then its channels' modes.
    const uint8_t refused = core.mismatch() != delivery::Mismatch::kNone ? 1 : 0;
    uint8_t* data = output.Record(kPeerSettings, refused, peer_, nullptr, 4 + settings.channels.size());
    const uint32_t maxMessageBytes = static_cast<uint32_t>(settings.maxMessageBytes);
    std::memcpy(data, &maxMessageBytes, 4);
    for (size_t i = 0; i < settings.channels.size(); ++i) data[4 + i] = static_cast<uint8_t>(settings.channels[i]);
  }
  return core.mismatch() != delivery::Mismatch::kNone;
}

// --- server ---

NetcodeServerProtocol::NetcodeServerProtocol(const netcode::ServerConfig& config,
                                             const uint8_t challengeKey[netcode::kKeyBytes], const DeliveryOptions& delivery)
    : core_(WithDelivery(config, delivery), challengeKey, &outbox_), delivery_(delivery) {
  if (delivery_.enabled) {
    delivery_.config.followsPings = true;  // the clients lead
    if (delivery_.reassemblyBudgetBytes > 0) budget_ = std::make_unique<delivery::ReassemblyBudget>(delivery_.reassemblyBudgetBytes);
    links_.resize(config.maxClients);
    AddLinkTable(&core_.peerCounters());
  }
}

void NetcodeServerProtocol::Receive(const netcode::ServerAddress& from, const uint8_t* data, size_t size,
                                    const netcode::Clock& now) {
  now_ = now;
  core_.Receive(from, data, size, now);
  HandleEvents();
}

void NetcodeServerProtocol::ReceiveBatch(const netcode::ReceivedDatagram* datagrams, size_t count, const netcode::Clock& now) {
  now_ = now;
  core_.ReceiveBatch(datagrams, count, now);
  HandleEvents();
}

void NetcodeServerProtocol::Update(const netcode::Clock& now) {
  now_ = now;
  core_.Update(now);
  HandleEvents();
  EndMismatched(now);
}

void NetcodeServerProtocol::HandleEvents() {
  netcode::ServerEvent event;
  while (core_.PollEvent(&event)) {
    switch (event.type) {
      case netcode::ServerEvent::Type::kConnected: Connected(event); break;
      case netcode::ServerEvent::Type::kPayload: Payload(event.client, event.data, event.size); break;
      case netcode::ServerEvent::Type::kDisconnected: Disconnected(event); break;
      case netcode::ServerEvent::Type::kPeerTimer: PeerTimer(event.client); break;
    }
  }
}

bool NetcodeServerProtocol::Current(uint32_t peer, uint32_t* slot) const {
  // The slot's clients before the one JavaScript names, against those before the slot's latest: between a
  // client's leaving and the next one's coming they match, which is harmless (an empty slot takes nothing).
  *slot = peer & ((1u << kPeerSlotBits) - 1);
  const netcode::PeerCounterTable& table = core_.peerCounters();
  if (*slot >= table.size) return false;
  // A double in memory JavaScript can write: converted only when it is a count (out of range, UB); through
  // 64 bits, so that it wraps past 2^32 clients as JavaScript's 32-bit tags do.
  const double clients = table.entries[*slot].clients.load(std::memory_order_relaxed);
  if (!(clients >= 0 && clients < 9007199254740992.0)) return false;
  return (peer >> kPeerSlotBits) == (static_cast<uint32_t>(static_cast<uint64_t>(clients) - 1) & ((1u << (32 - kPeerSlotBits)) - 1));
}

void NetcodeServerProtocol::Send(uint32_t tagged, uint8_t channel, const uint8_t* data, size_t size, const netcode::Clock& now) {
  now_ = now;
  uint32_t peer;
  if (!Current(tagged, &peer)) return;  // for a client that has left, whoever has its slot now
  if (!delivery_.enabled) {
    core_.SendPayload(peer, data, size, now);  // a peer that left meanwhile: nothing to send to
    return;
  }
  if (peer >= links_.size() || !links_[peer]) return;  // left meanwhile
  links_[peer]->core.Send(channel, data, size, LocalUs(now));  // JavaScript checked channel, size and queue room
  MarkDirty(peer);
}

void NetcodeServerProtocol::SendOwned(uint32_t tagged, uint8_t channel, std::vector<uint8_t>&& data, const netcode::Clock& now) {
  if (!delivery_.enabled) return Send(tagged, channel, data.data(), data.size(), now);
  now_ = now;
  uint32_t peer;
  if (!Current(tagged, &peer)) return;  // for a client that has left
  if (peer >= links_.size() || !links_[peer]) return;  // left meanwhile
  links_[peer]->core.Send(channel, std::move(data), LocalUs(now));
  MarkDirty(peer);
}

void NetcodeServerProtocol::MarkDirty(uint32_t peer) {
  DeliveryLink& link = *links_[peer];
  if (!link.dirty) {
    link.dirty = true;
    dirty_.push_back(peer);
  }
}

void NetcodeServerProtocol::EndBatch(const netcode::Clock& now) {
  now_ = now;
  // Several messages queued or packets received in one batch: one flush (shared packets, the ACKs that are
  // due) and one link-statistics update per peer per batch.
  for (uint32_t peer : dirty_) {
    if (!links_[peer]) continue;
    links_[peer]->dirty = false;
    SendDue(peer);
    AfterDelivery(peer);
  }
  dirty_.clear();
  EndMismatched(now);
}

void NetcodeServerProtocol::EndMismatched(const netcode::Clock& now) {
  for (uint32_t peer : mismatched_) {
    // Not a client that took the slot since (its link is another).
    if (peer >= links_.size() || !links_[peer] || links_[peer]->ending == 0) continue;
    // The client may not have found the mismatch yet (the packets with this side's settings lost): it
    // learns why from these, not only that it was disconnected.
    if (links_[peer]->ending != kDisconnectReassemblyStalled) {
      links_[peer]->core.AnnounceSettings(kMismatchAnnouncements);
      SendDue(peer);
    }
    core_.Disconnect(peer, now);  // Disconnected() names the reason
  }
  mismatched_.clear();
  HandleEvents();
}

void NetcodeServerProtocol::Control(uint32_t op, uint32_t arg, const std::vector<uint8_t>& data, const netcode::Clock& now) {
  now_ = now;
  uint32_t peer = 0;
  const bool watch = op == kControlWatchPeer || op == kControlWatchFlush;
  const bool current = (op == kControlDisconnectPeer || watch) && Current(arg, &peer);  // else: a client that left
  if (op == kControlDisconnectPeer && current) core_.Disconnect(peer, now);
  if (op == kControlStop) core_.Stop(now);
  if (op == kControlRotatePrivateKey && data.size() == netcode::kKeyBytes + sizeof(uint64_t)) {
    uint64_t untilUs = 0;
    std::memcpy(&untilUs, data.data() + netcode::kKeyBytes, sizeof(untilUs));  // little-endian hosts
    const uint64_t graceUs = untilUs > now.monotonicUs ? untilUs - now.monotonicUs : 0;
    core_.RotatePrivateKey(data.data(), graceUs, now);  // the engine wipes `data` after this call
  }
  if (watch && current && peer < links_.size() && links_[peer]) {
    if (op == kControlWatchPeer) links_[peer]->WatchRoom(data);
    else links_[peer]->flushWatched = true;
    AfterDelivery(peer);
  }
  EndMismatched(now);
}

size_t NetcodeServerProtocol::CopyCounters(double* out, size_t capacity) const {
  const netcode::ServerCounters& c = core_.counters();
  uint64_t fields[kServerCounterCount] = {};
  CommonCounters(c, fields);
  fields[kServerTokenRefused] = c.tokenRefused;
  fields[kServerDenied] = c.denied;
  fields[kServerConnectedClients] = core_.connectedClients();
  fields[kServerSendDropped] = output.sendDropped;
  fields[kServerRequestsThrottled] = c.requestsThrottled;
  fields[kServerWrongProtocol] = c.wrongProtocol;
  fields[kServerTokenExpired] = c.tokenExpired;
  fields[kServerPendingHandshakes] = core_.pendingHandshakes();
  fields[kServerHandshakesReplaced] = c.handshakesReplaced;
  fields[kServerHandshakesEvicted] = c.handshakesEvicted;
  if (budget_) {
    fields[kServerReassemblyBudget] = budget_->limit();
    fields[kServerReassemblyUsed] = budget_->used();
    fields[kServerReassemblyEvictions] = budget_->evictions();
    fields[kServerReassemblyRefusals] = budget_->refusals();
  }
  fields[kServerPreviousKeyRequests] = c.previousKeyRequests;
  return CopyFields(fields, kServerCounterCount, out, capacity);
}

void NetcodeServerProtocol::ReadingPaused(bool paused, const netcode::Clock& now) {
  paused ? core_.PauseTimeouts(now) : core_.ResumeTimeouts(now);
  for (const std::unique_ptr<DeliveryLink>& link : links_) {
    if (link) link->ReadingPaused(paused, LocalUs(now));
  }
}

void NetcodeServerProtocol::Connected(const netcode::ServerEvent& event) {
  const uint32_t index = event.client;
  uint8_t* data = output.Record(kPeerConnect, 0, index, &event.from, 8 + netcode::kUserDataBytes);
  std::memcpy(data, &event.clientId, 8);
  std::memcpy(data + 8, event.data, netcode::kUserDataBytes);
  if (delivery_.enabled) {
    links_[index] = std::make_unique<DeliveryLink>(index, delivery_.config, budget_.get());
    DeliveryLink& link = *links_[index];
    link.settingsDeadlineUs = LocalUs(now_) + SettingsWaitUs(delivery_.config);
    ClearLinkRow(&core_.peerCounters(), index);
    core_.SetPeerDeadline(index, delivery_.clock.Real(link.NextDeadlineUs(LocalUs(now_))), now_);
  }
}

void NetcodeServerProtocol::Disconnected(const netcode::ServerEvent& event) {
  const uint32_t index = event.client;
  const DeliveryLink* link = delivery_.enabled ? links_[index].get() : nullptr;
  const uint8_t code = link == nullptr || link->ending == 0 ? static_cast<uint8_t>(event.reason) : link->ending;
  uint8_t* data = output.Record(kPeerDisconnect, code, index, nullptr, FinalReadingsBytes(core_.peerCounters()));
  WriteFinalReadings(core_.peerCounters(), index, event.finalCounters, data);
  if (delivery_.enabled) links_[index].reset();  // a dirty_ entry for it is skipped
}

void NetcodeServerProtocol::Payload(uint32_t index, const uint8_t* data, size_t size) {
  if (!delivery_.enabled) {
    output.Payload(0, index, data, size);
    return;
  }
  DeliveryLink& link = *links_[index];
  link.core.Receive(data, size, LocalUs(now_));
  link.ReportMessages(output);
  // Marked at once, so that whatever ends the connection (a disconnect later in the same batch) names the
  // mismatch; EndMismatched disconnects it, outside the netcode core's callbacks.
  if (link.ReportSettings(output) && link.BeginEnding(kDisconnectChannelsMismatch)) mismatched_.push_back(index);
  if (budget_) {
    while (const delivery::DeliveryCore* evicted = budget_->PollStalled()) EndStalled(evicted->connection());
  }
  MarkDirty(index);  // its packets go once the whole receive batch is in (EndBatch)
}

void NetcodeServerProtocol::PeerTimer(uint32_t index) {
  if (!delivery_.enabled || !links_[index]) {
    core_.SetPeerDeadline(index, netcode::ServerCore::kNoDeadline, now_);  // nothing above it any more
    return;
  }
  DeliveryLink& link = *links_[index];
  link.core.Update(LocalUs(now_));
  if (link.core.stalled()) EndStalled(index);
  SendDue(index);
  // EndMismatched disconnects it, after the core's timers.
  if (link.SettingsLate(LocalUs(now_)) && link.BeginEnding(kDisconnectSettingsLate)) mismatched_.push_back(index);
  AfterDelivery(index);  // answers the timer with the link's next deadline
}

void NetcodeServerProtocol::SendDue(uint32_t peer) {
  delivery::SendDuePackets(links_[peer]->core, LocalUs(now_),
                           [this, peer](const uint8_t* data, size_t size) { core_.SendPayload(peer, data, size, now_); });
}

void NetcodeServerProtocol::EndStalled(uint32_t peer) {
  if (peer < links_.size() && links_[peer] && links_[peer]->BeginEnding(kDisconnectReassemblyStalled)) mismatched_.push_back(peer);
}

void NetcodeServerProtocol::AfterDelivery(uint32_t peer) {
  DeliveryLink& link = *links_[peer];
  netcode::PeerCounterTable& table = core_.peerCounters();
  delivery::WriteLinkStats(link.core, delivery_.clock, now_.monotonicUs, &table.link[size_t{peer} * table.linkFields]);
  link.ReportQueue(output, delivery_.queueLimitBytes);
  core_.SetPeerDeadline(peer, delivery_.clock.Real(link.NextDeadlineUs(LocalUs(now_))), now_);
}

// --- client ---

NetcodeClientProtocol::NetcodeClientProtocol(const netcode::ClientConfig& config, const DeliveryOptions& delivery)
    : core_(config, &outbox_), delivery_(delivery), table_(std::make_shared<netcode::PeerCounterTable>(1)) {
  if (delivery_.enabled) AddLinkTable(table_.get());
}

void NetcodeClientProtocol::Receive(const netcode::ServerAddress& from, const uint8_t* data, size_t size,
                                    const netcode::Clock& now) {
  now_ = now;
  core_.Receive(from, data, size, now);
  HandleEvents();
}

void NetcodeClientProtocol::HandleEvents() {
  netcode::ClientEvent event;
  while (core_.PollEvent(&event)) {
    switch (event.type) {
      case netcode::ClientEvent::Type::kStateChanged: StateChanged(event); break;
      case netcode::ClientEvent::Type::kPayload: Payload(event.data, event.size); break;
    }
  }
}

void NetcodeClientProtocol::Update(const netcode::Clock& now) {
  now_ = now;
  // The delivery layer first: a ping due with the keep-alive goes instead of it.
  if (link_) {
    link_->core.Update(LocalUs(now));
    SendDue();
    if (link_->SettingsLate(LocalUs(now))) link_->BeginEnding(kDisconnectSettingsLate);
    AfterDelivery();
  }
  core_.Update(now);
  HandleEvents();
}

uint64_t NetcodeClientProtocol::NextDeadlineUs() const {
  const uint64_t netcode = core_.NextDeadlineUs();
  if (!link_) return netcode;
  const uint64_t delivery = delivery_.clock.Real(link_->NextDeadlineUs(LocalUs(now_)));
  return delivery < netcode ? delivery : netcode;
}

void NetcodeClientProtocol::Send(uint32_t, uint8_t channel, const uint8_t* data, size_t size, const netcode::Clock& now) {
  now_ = now;
  if (!delivery_.enabled) {
    core_.SendPayload(data, size, now);
    return;
  }
  if (!link_) return;  // not connected (any more)
  link_->core.Send(channel, data, size, LocalUs(now));
  link_->dirty = true;
}

void NetcodeClientProtocol::SendOwned(uint32_t peer, uint8_t channel, std::vector<uint8_t>&& data, const netcode::Clock& now) {
  if (!delivery_.enabled) return Send(peer, channel, data.data(), data.size(), now);
  now_ = now;
  if (!link_) return;  // not connected (any more)
  link_->core.Send(channel, std::move(data), LocalUs(now));
  link_->dirty = true;
}

void NetcodeClientProtocol::EndBatch(const netcode::Clock& now) {
  now_ = now;
  if (!link_ || !link_->dirty) return;
  link_->dirty = false;
  SendDue();
  AfterDelivery();
}

void NetcodeClientProtocol::Control(uint32_t op, uint32_t arg, const std::vector<uint8_t>& data, const netcode::Clock& now) {
  now_ = now;
  if (op == kControlConnect) {
    attempt_ = arg;
    core_.Connect(data.data(), data.size(), now);
  }
  if (op == kControlDisconnect || op == kControlStop) {
    core_.Disconnect(now);
    if (op == kControlStop) stopping_ = true;
  }
  HandleEvents();
  if ((op == kControlWatchPeer || op == kControlWatchFlush) && link_) {
    if (op == kControlWatchPeer) link_->WatchRoom(data);
    else link_->flushWatched = true;
    AfterDelivery();
  }
}

size_t NetcodeClientProtocol::CopyCounters(double* out, size_t capacity) const {
  uint64_t fields[kClientCounterCount] = {};  // those between its own and kCounterTooOld stay 0
  CommonCounters(core_.counters(), fields);
  fields[kClientIndex] = core_.clientIndex();
  fields[kClientMaxClients] = core_.maxClients();
  fields[kClientSendDropped] = output.sendDropped;
  return CopyFields(fields, kClientCounterCount, out, capacity);
}

void NetcodeClientProtocol::ReadingPaused(bool paused, const netcode::Clock& now) {
  paused ? core_.PauseTimeouts(now) : core_.ResumeTimeouts(now);
  if (link_) link_->ReadingPaused(paused, LocalUs(now));
}

void NetcodeClientProtocol::StateChanged(const netcode::ClientEvent& event) {
  const netcode::ClientState state = event.state;
  // The server it tries or is connected to rides along (none once the attempt or connection has ended).
  // A connection that ends for its channels still has its link here (it goes below).
  const bool mismatch = state == netcode::ClientState::kDisconnected && link_ && link_->ending != 0;
  const bool late = mismatch && link_->ending == kDisconnectSettingsLate;
  const int8_t code = mismatch ? kClientStateChannelsMismatch : static_cast<int8_t>(state);
  uint8_t* data = output.Record(kClientState, static_cast<uint8_t>(code), attempt_, event.hasServer ? &event.server : nullptr, late ? 4 : 0);
  if (late) {
    const uint32_t waitMs = static_cast<uint32_t>(SettingsWaitUs(delivery_.config) / 1000);
    std::memcpy(data, &waitMs, 4);
  }
  if (!delivery_.enabled) return;
  if (state == netcode::ClientState::kConnected) {
    link_ = std::make_unique<DeliveryLink>(0, delivery_.config);
    link_->settingsDeadlineUs = LocalUs(now_) + SettingsWaitUs(delivery_.config);
    ClearLinkRow(table_.get(), 0);
    SendDue();  // the first ping
  } else {
    link_.reset();
  }
}

void NetcodeClientProtocol::Payload(const uint8_t* data, size_t size) {
  if (!delivery_.enabled) {
    output.Payload(0, 0, data, size);
    return;
  }
  if (!link_) return;
  link_->core.Receive(data, size, LocalUs(now_));
  link_->ReportMessages(output);
  if (link_->ReportSettings(output)) link_->BeginEnding(kDisconnectChannelsMismatch);  // marked at once, as the server's (AfterDelivery ends it)
  link_->dirty = true;  // flushed once the whole receive batch is in (EndBatch)
}

void NetcodeClientProtocol::SendDue() {
  delivery::SendDuePackets(link_->core, LocalUs(now_), [this](const uint8_t* data, size_t size) { core_.SendPayload(data, size, now_); });
}

void NetcodeClientProtocol::AfterDelivery() {
  delivery::WriteLinkStats(link_->core, delivery_.clock, now_.monotonicUs, &table_->link[0]);
  link_->ReportQueue(output, delivery_.queueLimitBytes);
  if (link_->ending == 0) return;
  link_->core.AnnounceSettings(kMismatchAnnouncements);  // as the server does
  SendDue();
  core_.Disconnect(now_);  // the redundant disconnects go out
  HandleEvents();          // link_ goes with the state change
}

}  // namespace volley
