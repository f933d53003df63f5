// DeliveryCore, the sending side: queues, packet assembly, acknowledgements, loss detection, probe
// timeouts, congestion control and pacing.
#include <sodium.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "protocol/netcode/wire.h"
#include "protocol/delivery/delivery.h"

namespace volley::delivery {

using netcode::WireWriter;

namespace {

constexpr uint64_t kPacketThreshold = 3;         // RFC 9002: lost when 3 later packets are acknowledged
constexpr uint64_t kMaxPacketThreshold = 256;     // as far as reordering proven by spurious losses raises it
constexpr uint32_t kTimeThresholdEighths = 9;     // RFC 9002: lost 9/8 of an RTT after it was sent...
constexpr uint32_t kMaxTimeThresholdEighths = 16; // ...or up to 2 RTTs once reordering was seen
constexpr size_t kRecentlyLost = 128;             // declared losses remembered, to see one proved wrong...
constexpr uint64_t kLostMemoryRtts = 8;           // ...for 8 smoothed RTTs (past 2, thresholds cannot follow)
constexpr uint64_t kLostMemoryMinUs = 50000;      // ...and at least 50 ms
constexpr size_t kLostRecordsKept = 8;            // room kept once none is remembered (more is given back)
constexpr uint64_t kGranularityUs = 1000;        // the smallest loss delay and RTT variation term
constexpr uint64_t kDrainHoldUs = 200000;         // a drain's round trips of the path alone last this at least...
constexpr uint64_t kMaxDrainUs = 2000000;         // ...and the whole drain this at most
constexpr size_t kAckSpaceWithData = 64;          // an ACK beside data takes at most this much of a packet
// Records of sent packets: an idle connection needs a few; the ring doubles for a flight and, once
// everything in it is settled, goes back to this size from above kKeptSentRecords.
constexpr size_t kInitialSentRecords = 4;
constexpr size_t kKeptSentRecords = 256;
// Each record keeps its list of the reliable fragments it carried, room for about 200 in a packet of small
// messages: kept, up to 256 records held 1.5 MB on an idle connection. Past this much, once everything is
// settled, the ring goes back to its first size with empty lists.
constexpr size_t kKeptChunkBytes = 64 * 1024;
// Every packet this side sends takes a record until it and all before it are settled: ACKs, pings and
// pongs too, behind the oldest packet not yet acknowledged. A peer that never acknowledges, and elicits an
// ACK with each of its packets, made the records grow by one per packet it sent, for as long as the
// connection lasted. Past this many (2.3 MB; 39 MB of full packets in flight) the oldest is declared lost.
constexpr uint64_t kMaxSentRecords = uint64_t{1} << 15;

// Packets are built here and polled at once: one buffer for every connection of the thread
// (the I/O thread's, or JavaScript's for the test binding) rather than 1,200 bytes in each.
thread_local uint8_t packetBuffer[kMaxPacketBytes];
// Its address, looked up once per packet: used directly, GCC redoes the thread-local lookup (a call in a
// shared library) at each use, ten times over in MakePacket.
[[gnu::noinline]] uint8_t* PacketBuffer() { return packetBuffer; }

// Where congestion control's probing cycle starts: from the connection's own random key, so that flows
// sharing a bottleneck do not probe in step (and a run repeats with its keys).
uint32_t CycleSeed(const uint8_t* packetSkipKey) {
  if (packetSkipKey == nullptr) return 0;
  return uint32_t{packetSkipKey[0]} | uint32_t{packetSkipKey[1]} << 8 | uint32_t{packetSkipKey[2]} << 16 | uint32_t{packetSkipKey[3]} << 24;
}

}  // namespace

DeliveryCore::DeliveryCore(const DeliveryConfig& config, const uint8_t* packetSkipKey, ReassemblyBudget* budget,
                           uint32_t connection)
    : config_(config),
      connection_(connection),
      reassemblyLimit_(config.reassemblyBytes != 0 ? config.reassemblyBytes : config.maxMessageBytes + kReassemblyHeadroomBytes),
      congestion_(CycleSeed(packetSkipKey)),
      rtt_(config.initialRttUs),
      bufferCredit_(BufferCreditLimit()),
      budget_(budget) {
  if (config_.reliableWindow == 0) config_.reliableWindow = 1;
  if (packetSkipKey != nullptr) {
    skipping_ = true;
    std::memcpy(skipKey_.data(), packetSkipKey, kPacketSkipKeyBytes);
    packetsUntilSkip_ = SkipGap();
  }
  packetThreshold_ = kPacketThreshold;
  timeThresholdEighths_ = kTimeThresholdEighths;
  // One of each per configured channel.
  sendChannels_ = std::vector<SendChannel>(config_.channels.size());
  receiveChannels_ = std::vector<ReceiveChannel>(config_.channels.size());
  for (size_t i = 0; i < config_.channels.size(); ++i) {
    const ChannelMode mode = config_.channels[i];
    sendChannels_[i].mode = mode;
    receiveChannels_[i].mode = mode;
  }
  sent_.resize(kInitialSentRecords);
  completedChannels_.reserve(config_.channels.size());
  drainedChannels_.reserve(config_.channels.size());
}

DeliveryCore::~DeliveryCore() {
  if (budget_ == nullptr) return;
  if (budgetHeld_ > 0) budget_->Give(*this, budgetHeld_);
  budget_->Forget(*this);  // stalled by an eviction and not yet polled: nothing is left to end
}

size_t DeliveryCore::queueSlots() const {
  size_t slots = 0;
  for (const SendChannel& channel : sendChannels_) slots += channel.messages.capacity();
  for (const ReceiveChannel& channel : receiveChannels_) slots += channel.pending.capacity() + channel.partials.capacity();
  return slots;
}

bool DeliveryCore::CountsAgree() const {
  uint64_t unsent = 0;
  for (const SendChannel& channel : sendChannels_) {
    for (size_t i = 0; i < channel.messages.size(); ++i) unsent += channel.messages[i]->unsent > 0 ? 1 : 0;
    if (channel.completed) return false;  // released at the end of each ACK
  }
  size_t partials = 0, counted = 0, drained = 0;
  uint64_t heldExtra = 0;
  uint64_t budgetHeld = 0, incompleteReliable = 0;
  const auto held = [&heldExtra, &budgetHeld](const InMessage& slot) {
    if (slot.used && !slot.passedOver) heldExtra += slot.fragments + kHeldMessageBytes;
    budgetHeld += BudgetCost(slot);
  };
  for (const ReceiveChannel& channel : receiveChannels_) {
    for (const InMessage& slot : channel.partials) {
      partials += slot.used ? 1 : 0;
      held(slot);
    }
    for (size_t i = 0; i < channel.pending.size(); ++i) {
      const InMessage& slot = channel.pending[i];
      held(slot);
      incompleteReliable += slot.used && !slot.passedOver && slot.received < slot.fragments ? 1 : 0;
    }
    counted += CountedSlots(channel.pending);
    drained += Drained(channel.pending) ? 1 : 0;
    if (Drained(channel.pending) && !channel.listedDrained) return false;
  }
  return unsent == unsentMessages_ && completedChannels_.empty() && partials == partialsUsed_ && counted == countedQueueSlots_ &&
         drained == drainedQueues_ && heldExtra == heldExtraBytes_ && incompleteReliable == incompleteReliable_ &&
         (budget_ == nullptr || budgetHeld + counted * kReceiveSlotBytes == budgetHeld_);
}

SendResult DeliveryCore::Admit(uint8_t channel, size_t size) const {
  if (channel >= sendChannels_.size()) return SendResult::kNoChannel;
  if (size > config_.maxMessageBytes) return SendResult::kTooLarge;
  // A message larger than the whole queue still goes when the queue is empty, else it never could.
  if (queuedMessages_ > 0 && queuedCharge() + size + kQueuedMessageOverheadBytes > config_.sendQueueBytes) return SendResult::kQueueFull;
  return SendResult::kQueued;
}

SendResult DeliveryCore::Send(uint8_t channel, const uint8_t* data, size_t size, uint64_t nowUs) {
  const SendResult admitted = Admit(channel, size);
  if (admitted != SendResult::kQueued) return admitted;
  std::unique_ptr<OutMessage> message = TakeMessage();
  message->data.assign(data, data + size);
  Enqueue(channel, std::move(message), nowUs);
  return SendResult::kQueued;
}

SendResult DeliveryCore::Send(uint8_t channel, std::vector<uint8_t>&& data, uint64_t nowUs) {
  const SendResult admitted = Admit(channel, data.size());
  if (admitted != SendResult::kQueued) return admitted;
  std::unique_ptr<OutMessage> message = TakeMessage();
  message->data = std::move(data);
  Enqueue(channel, std::move(message), nowUs);
  return SendResult::kQueued;
}

void DeliveryCore::Enqueue(uint8_t channel, std::unique_ptr<OutMessage> message, uint64_t nowUs) {
  SendChannel& target = sendChannels_[channel];
  const size_t size = message->data.size();
  message->channel = channel;
  message->sequence = target.nextSequence++;
  message->queuedUs = nowUs;
  message->fragments = size > kFragmentBytes ? static_cast<uint32_t>(FragmentCount(size)) : 1;
  message->acked = 0;
  message->unsent = message->fragments;
  message->lastSent.assign(message->fragments, kNotSent);
  target.messages.push_back(std::move(message));
  ++unsentMessages_;
  queuedBytes_ += size;
  ++queuedMessages_;
  ++stats_.messagesOut;
  stats_.messageBytesOut += size;
}

std::unique_ptr<DeliveryCore::OutMessage> DeliveryCore::TakeMessage() {
  if (spareMessages_.empty()) return std::make_unique<OutMessage>();
  std::unique_ptr<OutMessage> message = std::move(spareMessages_.back());
  spareMessages_.pop_back();
  spareBytes_ -= message->data.capacity();
  return message;
}

void DeliveryCore::RecycleMessage(std::unique_ptr<OutMessage> message) {
  queuedBytes_ -= message->data.size();
  releasedBytes_ += message->data.size() + kQueuedMessageOverheadBytes;
  ++releasedMessages_;
  --queuedMessages_;
  // Kept for reuse (no allocation per message in steady state), up to kSpareBytes of buffers: what a
  // connection keeps once it goes idle.
  if (spareMessages_.size() < kSpareMessages && spareBytes_ + message->data.capacity() <= kSpareBytes) {
    spareBytes_ += message->data.capacity();
    spareMessages_.push_back(std::move(message));
  }
}

uint64_t DeliveryCore::QueueDelayUs(uint64_t nowUs) const {
  if (queuedMessages_ == 0) return 0;  // read after every batch: no walk over the channels when idle
  uint64_t oldest = UINT64_MAX;
  for (const SendChannel& channel : sendChannels_) {
    if (!channel.messages.empty()) oldest = std::min(oldest, channel.messages.front()->queuedUs);
  }
  return oldest == UINT64_MAX || oldest > nowUs ? 0 : nowUs - oldest;
}

DeliveryCore::OutMessage* DeliveryCore::FindReliable(uint8_t channel, uint64_t sequence) {
  SendChannel& target = sendChannels_[channel];
  if (target.messages.empty()) return nullptr;
  const uint64_t first = target.messages.front()->sequence;
  if (sequence < first || sequence - first >= target.messages.size()) return nullptr;
  return target.messages[static_cast<size_t>(sequence - first)].get();
}

void DeliveryCore::ReleaseAcked(SendChannel& channel) {
  while (!channel.messages.empty() && channel.messages.front()->acked == channel.messages.front()->fragments) {
    RecycleMessage(std::move(channel.messages.front()));
    channel.messages.pop_front();
    if (channel.firstUnsent > 0) --channel.firstUnsent;
  }
}

// --- sending ---

bool DeliveryCore::HasMessages() const {
  if (probesToSend_ > 0 || !retransmits_.empty()) return true;
  if (unsentMessages_ == 0) return false;  // the common case, idle or all sent: no walk over the channels
  for (const SendChannel& channel : sendChannels_) {
    if (channel.mode != ChannelMode::kReliable) {
      if (!channel.messages.empty()) return true;
    } else if (channel.firstUnsent < channel.messages.size() &&
               channel.messages[channel.firstUnsent]->sequence < channel.messages.front()->sequence + config_.reliableWindow) {
      return true;
    }
  }
  return false;
}

void DeliveryCore::RefillPacing(uint64_t nowUs) {
  if (nowUs <= pacingUpdatedUs_) return;
  const double rate = congestion_.pacingRateBytesPerUs(rtt_.smoothedUs());
  const double burst = congestion_.pacingBurstBytes(rtt_.smoothedUs());
  pacingCredit_ = std::min(burst, pacingCredit_ + rate * static_cast<double>(nowUs - pacingUpdatedUs_));
  pacingUpdatedUs_ = nowUs;
}

bool DeliveryCore::CanSend(uint64_t) const {
  return bytesInFlight_ + kMaxPacketBytes <= congestion_.window() && pacingCredit_ >= kMaxPacketBytes;
}

void DeliveryCore::PruneRetransmits() {
  while (!retransmits_.empty()) {
    const Chunk& chunk = retransmits_.top();
    const OutMessage* message = FindReliable(chunk.channel, chunk.sequence);
    if (message != nullptr && message->lastSent[chunk.fragment] != kAcked) return;
    retransmits_.pop();  // acknowledged since it was queued again
  }
}

PacketView DeliveryCore::PollPacket(uint64_t nowUs) {
  while (announcementsDue_ > 0) {
    --announcementsDue_;
    announcing_ = true;
    const PacketView packet = MakePacket(nowUs, false);
    announcing_ = false;
    if (packet) return packet;
  }
  RefillPacing(nowUs);
  PruneRetransmits();
  // Messages wait for the congestion window and pacing; pings, pongs and acknowledgements do not.
  const bool ready = MessagesReady();
  const bool messages = ready && (probesToSend_ > 0 || CanSend(nowUs));
  if (!ready && bytesInFlight_ + kMaxPacketBytes <= congestion_.window()) appLimitedUntil_ = std::max<uint64_t>(delivered_ + bytesInFlight_, 1);
  const bool control = (pongPending_ && nowUs >= pongDueUs_) || nowUs >= nextPingUs_;
  const bool ack = ackPending_ && (ackImmediately_ || elicitingSinceAck_ >= 2 || nowUs >= ackDeadlineUs_);
  if (!messages && !control && !ack) return {};
  return MakePacket(nowUs, messages);
}

void DeliveryCore::EnsureSentCapacity(uint64_t nowUs) {
  // Nothing outstanding: no record to keep.
  if (sentBase_ == nextPacket_ && (sent_.size() > kKeptSentRecords || chunkCapacity_ * sizeof(Chunk) > kKeptChunkBytes)) {
    std::vector<SentPacket>(kInitialSentRecords).swap(sent_);
    chunkCapacity_ = 0;
    return;
  }
  // The oldest outstanding packet is not settled (SettleFront): lost, its reliable data goes again.
  while (nextPacket_ - sentBase_ >= kMaxSentRecords) {
    SentPacket& oldest = sent_[sentBase_ & (sent_.size() - 1)];
    if (!oldest.settled) OnPacketLost(oldest, nowUs);
    SettleFront();
  }
  if (nextPacket_ - sentBase_ < sent_.size()) return;
  std::vector<SentPacket> grown(sent_.size() * 2);
  for (uint64_t number = sentBase_; number < nextPacket_; ++number) {
    grown[number & (grown.size() - 1)] = std::move(sent_[number & (sent_.size() - 1)]);
  }
  sent_.swap(grown);
  chunkCapacity_ = 0;  // the records left behind took their lists with them
  for (const SentPacket& record : sent_) chunkCapacity_ += record.chunks.capacity();
}

size_t DeliveryCore::sentRecordsHeld() const {
  size_t held = sent_.capacity() * sizeof(SentPacket);
  for (const SentPacket& record : sent_) held += record.chunks.capacity() * sizeof(Chunk);
  return held;
}

DeliveryCore::SentPacket* DeliveryCore::FindSent(uint64_t number) {
  if (number < sentBase_ || number >= nextPacket_) return nullptr;
  return &sent_[number & (sent_.size() - 1)];
}

bool DeliveryCore::WriteChunk(const OutMessage& message, uint32_t fragment, uint8_t* out, size_t capacity, size_t* size) const {
  WireWriter writer(out + *size, capacity - *size);
  if (message.fragments == 1) {
    writer.U8(kFrameMessage);
    writer.U8(message.channel);
    writer.Varint(message.sequence);
    writer.Varint(message.data.size());
    writer.Bytes(message.data.data(), message.data.size());
  } else {
    const size_t offset = size_t{fragment} * kFragmentBytes;
    const size_t length = std::min(kFragmentBytes, message.data.size() - offset);
    writer.U8(kFrameFragment);
    writer.U8(message.channel);
    writer.Varint(message.sequence);
    writer.Varint(message.data.size());
    writer.Varint(fragment);
    writer.Bytes(message.data.data() + offset, length);
  }
  if (writer.failed()) return false;
  *size += writer.offset();
  return true;
}

bool DeliveryCore::WriteAck(uint8_t* out, size_t capacity, size_t* size, uint64_t nowUs) {
  const std::vector<ReceivedPackets::Range>& ranges = received_.ranges();
  if (ranges.empty()) return false;
  const uint64_t largest = ranges.front().high;
  const uint64_t delay = nowUs > largestReceivedUs_ ? nowUs - largestReceivedUs_ : 0;
  const uint64_t firstRange = ranges.front().high - ranges.front().low;
  size_t needed = 1 + WireWriter::VarintSize(largest) + WireWriter::VarintSize(delay) + WireWriter::VarintSize(firstRange) + 1;
  if (needed > capacity - *size) return false;
  // As many further ranges as fit, newest first.
  size_t count = 0;
  for (size_t i = 1; i < ranges.size() && count < kMaxAckRanges; ++i) {
    const uint64_t gap = ranges[i - 1].low - ranges[i].high - 2;
    const uint64_t length = ranges[i].high - ranges[i].low;
    const size_t more = WireWriter::VarintSize(gap) + WireWriter::VarintSize(length);
    if (needed + more > capacity - *size) break;
    needed += more;
    ++count;
  }
  WireWriter writer(out + *size, capacity - *size);
  writer.U8(kFrameAck);
  writer.Varint(largest);
  writer.Varint(delay);
  writer.Varint(firstRange);
  writer.Varint(count);
  for (size_t i = 1; i <= count; ++i) {
    writer.Varint(ranges[i - 1].low - ranges[i].high - 2);
    writer.Varint(ranges[i].high - ranges[i].low);
  }
  if (writer.failed()) return false;
  *size += writer.offset();
  return true;
}

PacketView DeliveryCore::MakePacket(uint64_t nowUs, bool withMessages) {
  uint8_t* const packet = PacketBuffer();
  EnsureSentCapacity(nowUs);
  if (skipping_ && packetsUntilSkip_ == 0) SkipPacketNumber(nowUs);
  const uint64_t number = nextPacket_;
  SentPacket& record = sent_[number & (sent_.size() - 1)];
  record.chunks.clear();
  const size_t chunksBefore = record.chunks.capacity();
  size_t size = 0;
  {
    WireWriter header(packet, kMaxPacketBytes);
    header.U8(kPacketMarker);
    header.Varint(number);
    size = header.offset();
  }
  bool wroteAck = false;
  const bool ackDue = ackPending_;  // else an ACK beside messages is worth no packet of its own
  if (ackPending_ || (withMessages && !received_.empty())) {
    // Beside messages an ACK gets a small share of the packet; alone it may fill it.
    const size_t capacity = withMessages ? std::min(kMaxPacketBytes, size + kAckSpaceWithData) : kMaxPacketBytes;
    wroteAck = WriteAck(packet, capacity, &size, nowUs);
    if (wroteAck) {
      ackPending_ = false;
      ackImmediately_ = false;
      elicitingSinceAck_ = 0;
    }
  }
  bool eliciting = false, wrotePong = false, wrotePing = false, wroteSettings = false;
  const size_t capacity = kMaxPacketBytes;
  // Settings the peer may not have yet, ahead of any message (they take at most 263 bytes: after an ACK
  // and a PONG they always fit). Unwritten, no ping goes in the packet either: its pong would say the
  // peer has them.
  if (!settingsDelivered_ || announcing_) {
    WireWriter writer(packet + size, capacity - size);
    writer.U8(kFrameSettings);
    writer.U8(config_.followsPings ? 1 : 0);
    writer.Varint(config_.maxMessageBytes);
    writer.Varint(config_.channels.size());
    for (const ChannelMode mode : config_.channels) writer.U8(static_cast<uint8_t>(mode));
    if (!writer.failed()) {
      size += writer.offset();
      wroteSettings = true;
    }
  }
  const bool mayPing = settingsDelivered_ || wroteSettings;
  {
    if (pongPending_) {  // due or not: it rides along
      WireWriter writer(packet + size, capacity - size);
      writer.U8(kFramePong);
      writer.Varint(pongId_);
      writer.Varint(pongEcho_);
      writer.Varint(pongReceivedUs_);
      // 0 for a clock read before the ping came (a caller's): wrapped, the varint's 10 bytes made the whole
      // packet malformed to the peer.
      writer.Varint(nowUs > pongReceivedUs_ ? nowUs - pongReceivedUs_ : 0);
      if (!writer.failed()) {
        size += writer.offset();
        pongPending_ = false;
        wrotePong = true;
      }
    }
    // A ping goes with a pong when half an interval has passed since the last one. The side that follows
    // pings only so, and on its own timer (two intervals) only when the leader's pings stop coming: an
    // idle connection sends one packet per interval each way, the leader's ping with its held pong and
    // the follower's pong with its ping.
    const uint64_t spanUs = PingSpanUs();
    const uint64_t nextSpanUs = settingsDelivered_ ? spanUs : std::min(spanUs, settingsRetryUs_);
    if (mayPing && (nowUs >= nextPingUs_ || (wrotePong && nextPingUs_ - nowUs <= spanUs - config_.pingIntervalUs / 2))) {
      WireWriter writer(packet + size, capacity - size);
      writer.U8(kFramePing);
      writer.Varint(nextPingId_);
      writer.Varint(nowUs);
      // With reliable data unacknowledged it probes too: a link back from an outage is found within a ping
      // interval, not after a backed-off probe timeout.
      if (dataPacketsInFlight_ > 0) writer.U8(kFrameProbe);
      if (!writer.failed()) {
        size += writer.offset();
        pingSentUs_[nextPingId_ % kPingsRemembered] = nowUs;
        ++nextPingId_;
        nextPingUs_ = nowUs + nextSpanUs;
        if (!settingsDelivered_) settingsRetryUs_ = std::min(2 * settingsRetryUs_, kSettingsRetryMostUs);
        wrotePing = true;
        eliciting = eliciting || dataPacketsInFlight_ > 0;
      }
    }
  }
  const size_t beforeMessages = size;
  if (withMessages) {
    bool full = false;
    // Reliable fragments that were lost or are probed (startedOnly: those of messages the receiver has
    // started, which come first in the heap).
    const auto writeRetransmits = [&](bool startedOnly) {
      while (!full && !retransmits_.empty()) {
        const Chunk chunk = retransmits_.top();
        if (startedOnly && !chunk.started) break;
        OutMessage* message = FindReliable(chunk.channel, chunk.sequence);
        // Gone, acknowledged, or queued before its message was started: that entry has a started copy
        // (CreditFragment), which goes ahead.
        if (message == nullptr || message->lastSent[chunk.fragment] == kAcked || (!chunk.started && message->acked > 0)) {
          retransmits_.pop();
          continue;
        }
        if (!WriteChunk(*message, chunk.fragment, packet, capacity, &size)) {
          full = true;
          break;
        }
        message->lastSent[chunk.fragment] = number;
        record.chunks.push_back(chunk);
        ++stats_.resends;
        retransmits_.pop();
        eliciting = true;
      }
    };
    // A probe carries the data it probes before anything else: filled with unreliable messages, it
    // would not bring that data's acknowledgement.
    if (probesToSend_ > 0) writeRetransmits(false);
    const auto writeUnreliable = [&] {
      for (SendChannel& channel : sendChannels_) {
        if (channel.mode == ChannelMode::kReliable) continue;
        while (!full && !channel.messages.empty()) {
          OutMessage& message = *channel.messages.front();
          while (message.unsent > 0) {
            if (!WriteChunk(message, message.fragments - message.unsent, packet, capacity, &size)) {
              full = true;
              break;
            }
            --message.unsent;
            eliciting = true;
          }
          if (message.unsent > 0) break;
          --unsentMessages_;
          RecycleMessage(std::move(channel.messages.front()));
          channel.messages.pop_front();
        }
      }
    };
    // Then reliable fragments: resends of messages the receiver has started, the unsent fragments of those
    // (it always takes them: sent after every resend, they could wait long behind the resends of
    // another channel's message that it refuses), the other resends, then new messages.
    const auto writeNew = [&](SendChannel& channel, bool startedOnly) {
      while (!full && channel.firstUnsent < channel.messages.size()) {
        OutMessage& message = *channel.messages[channel.firstUnsent];
        if (startedOnly && message.acked == 0) break;
        if (message.sequence >= channel.messages.front()->sequence + config_.reliableWindow) break;
        const uint32_t fragment = message.fragments - message.unsent;
        if (!WriteChunk(message, fragment, packet, capacity, &size)) {
          full = true;
          break;
        }
        message.lastSent[fragment] = number;
        record.chunks.push_back(Chunk{message.channel, false, message.sequence, fragment});
        eliciting = true;
        if (--message.unsent == 0) {
          ++channel.firstUnsent;
          --unsentMessages_;
          if (startedOnly) break;  // the next message is not started: it has never been sent
        }
      }
    };
    const auto writeReliable = [&] {
      writeRetransmits(true);
      for (SendChannel& channel : sendChannels_) {
        if (channel.mode == ChannelMode::kReliable) writeNew(channel, true);
      }
      writeRetransmits(false);
      // New messages: the reliable channels take turns to go first, so that a backlog on one (a bulk
      // transfer) does not hold back the others (a chat) until it has all been sent. Only a packet with
      // room for them is a turn: counting those that resends or unreliable messages filled, the turns would
      // keep in step with the packets' alternation of kinds, and one channel would go first in every packet
      // that has room.
      if (full) return;
      const size_t count = sendChannels_.size();
      for (size_t i = 0; i < count; ++i) {
        SendChannel& channel = sendChannels_[(reliableTurn_ + i) % count];
        if (channel.mode == ChannelMode::kReliable) writeNew(channel, false);
      }
      for (size_t i = 1; i <= count; ++i) {
        if (sendChannels_[(reliableTurn_ + i) % count].mode == ChannelMode::kReliable) {
          reliableTurn_ = (reliableTurn_ + i) % count;
          break;
        }
      }
    };
    // Unreliable and sequenced messages go first in every other packet, reliable fragments in the others:
    // neither kind waits more than a packet behind the other, however much of it is queued.
    reliableFirst_ = !reliableFirst_;
    if (reliableFirst_) {
      writeReliable();
      writeUnreliable();
    } else {
      writeUnreliable();
      writeReliable();
    }
    if (probesToSend_ > 0) {
      if (!eliciting) {  // nothing to resend
        WireWriter writer(packet + size, capacity - size);
        writer.U8(kFrameProbe);
        if (!writer.failed()) {
          size += writer.offset();
          eliciting = true;
        }
      }
      --probesToSend_;
    }
  }
  // (A pong or ping took room too: the next packet, without them, may have it.)
  if (withMessages && size == beforeMessages && !settingsDelivered_ && !wrotePong && !wrotePing) messagesWaitForSettings_ = true;
  // Settings alone make a packet only when announced: with every packet carrying them, they would
  // otherwise keep every drain of PollPacket() going.
  if (!eliciting && !(wroteAck && ackDue) && !wrotePong && !wrotePing && !(wroteSettings && announcing_)) return {};
  record.number = number;
  record.sentUs = nowUs;
  record.bytes = static_cast<uint32_t>(size);
  record.ackEliciting = eliciting;
  record.inFlight = eliciting;
  record.settled = !eliciting;  // ACKs, pings and pongs alone are not acknowledged: nothing to wait for
  record.acked = false;
  chunkCapacity_ += record.chunks.capacity() - chunksBefore;  // a list only grows here
  ++nextPacket_;
  if (packetsUntilSkip_ > 0) --packetsUntilSkip_;
  if (eliciting) {
    if (bytesInFlight_ == 0) {  // a new flight: its rate is measured from now, not from the idle time before
      deliveredUs_ = nowUs;
      firstSentUs_ = nowUs;
    }
    record.deliveredAtSend = delivered_;
    record.carriedAtSend = carried_;
    record.appLimited = appLimitedUntil_ != 0;
    record.deliveredUsAtSend = deliveredUs_;
    record.firstSentUsAtSend = firstSentUs_;
    bytesInFlight_ += size;
    ++ackElicitingInFlight_;
    lastAckElicitingSentUs_ = nowUs;
    if (!record.chunks.empty()) {
      ++dataPacketsInFlight_;
      lastDataSentUs_ = nowUs;
    }
    pacingCredit_ -= static_cast<double>(size);
    ++stats_.ackElicitingOut;
  }
  SettleFront();
  ++stats_.packetsOut;
  stats_.bytesOut += size;
  return {packet, size};
}

// --- acknowledgements and loss ---

void DeliveryCore::OnAck(uint64_t largest, uint64_t ackDelayUs, const std::vector<ReceivedPackets::Range>& ranges, uint64_t nowUs) {
  bool newlyAcked = false, newlyAckedEliciting = false;
  SentPacket* largestPacket = FindSent(largest);
  const bool sampleRtt = largestPacket != nullptr && !largestPacket->settled && largestPacket->ackEliciting;
  const uint64_t largestSentUs = largestPacket != nullptr ? largestPacket->sentUs : 0;
  const uint64_t largestBytes = largestPacket != nullptr ? largestPacket->bytes : 0;
  for (const ReceivedPackets::Range& range : ranges) {
    const uint64_t low = std::max(range.low, sentBase_);
    for (uint64_t number = low; number <= range.high && number < nextPacket_; ++number) {
      SentPacket& packet = sent_[number & (sent_.size() - 1)];
      if (packet.settled || packet.number != number) continue;
      newlyAcked = true;
      newlyAckedEliciting = newlyAckedEliciting || packet.ackEliciting;
      OnPacketAcked(packet, nowUs);
    }
  }
  const bool largestRaised = !anyAcked_ || largest > largestAcked_;
  if (largestRaised) largestAcked_ = largest;
  anyAcked_ = true;
  if (!recentlyLost_.empty()) OnSpuriousLosses(ranges, nowUs);
  if (sampleRtt && largestSentUs >= rttSamplesFromUs_ && nowUs - largestSentUs <= kMaxRttSampleUs) {
    const double bandwidth = congestion_.bandwidthBytesPerUs();
    const uint64_t transmitUs = bandwidth > 0 ? static_cast<uint64_t>(std::floor(static_cast<double>(largestBytes) / bandwidth)) : 0;
    rtt_.Sample(nowUs - largestSentUs, std::min(ackDelayUs, config_.maxAckDelayUs), nowUs, transmitUs);
    congestion_.OnRttSample(nowUs - largestSentUs);
  }
  if (newlyAckedEliciting) probeCount_ = 0;
  // An ACK that tells nothing new finds no new loss (RFC 9002 §6.1; the loss timer covers time passing).
  if (newlyAcked || largestRaised) DetectLosses(nowUs);
  UpdateDrain(nowUs);
  // Only the channels where a message was acknowledged whole have any to release.
  for (const uint8_t index : completedChannels_) {
    sendChannels_[index].completed = false;
    ReleaseAcked(sendChannels_[index]);
  }
  completedChannels_.clear();
}

bool DeliveryCore::Settle(SentPacket& packet) {
  packet.settled = true;
  if (!packet.inFlight) return false;
  packet.inFlight = false;
  bytesInFlight_ -= packet.bytes;
  --ackElicitingInFlight_;
  if (!packet.chunks.empty()) --dataPacketsInFlight_;
  return true;
}

void DeliveryCore::OnPacketAcked(SentPacket& packet, uint64_t nowUs) {
  ++stats_.packetsAcked;
  packet.acked = true;
  // Only a window in use (this packet still counted in flight) grows on an acknowledgement (RFC 9002 §7.8);
  // a connection that sends little would grow it for ever.
  const bool windowInUse = WindowInUse();
  if (Settle(packet)) {
    delivered_ += packet.bytes;
    carried_ += packet.bytes;
    deliveredUs_ = nowUs;
    firstSentUs_ = packet.sentUs;
    if (appLimitedUntil_ != 0 && delivered_ > appLimitedUntil_) appLimitedUntil_ = 0;
    AckedPacket acked;
    acked.bytes = packet.bytes;
    acked.deliveredAtSend = packet.deliveredAtSend;
    acked.delivered = delivered_;
    acked.appLimited = packet.appLimited;
    // The rate over the longer of the send and the acknowledgement intervals: a burst sent faster than
    // the path carries it is measured at the path's rate. Random losses count as carried, up to a bound
    // (congestion_control.h).
    const uint64_t interval = std::max(packet.sentUs - packet.firstSentUsAtSend, nowUs - packet.deliveredUsAtSend);
    if (interval > 0) {
      const double delivered = static_cast<double>(delivered_ - packet.deliveredAtSend);
      const double carried = static_cast<double>(carried_ - packet.carriedAtSend);
      acked.rateBytesPerUs = std::min(carried, delivered / (1 - CongestionControl::kMaxCarriedLoss)) / static_cast<double>(interval);
    }
    congestion_.OnAcked(acked, nowUs, rtt_.pathMinUs(), bytesInFlight_, windowInUse);
  }
  for (const Chunk& chunk : packet.chunks) CreditFragment(chunk);
}

void DeliveryCore::CreditFragment(const Chunk& chunk) {
  OutMessage* message = FindReliable(chunk.channel, chunk.sequence);
  if (message == nullptr || message->lastSent[chunk.fragment] == kAcked) return;
  message->lastSent[chunk.fragment] = kAcked;
  const bool first = message->acked++ == 0;
  if (message->acked == message->fragments && !sendChannels_[chunk.channel].completed) {
    sendChannels_[chunk.channel].completed = true;
    completedChannels_.push_back(chunk.channel);  // (reserved for every channel: no allocation)
  }
  if (!first) return;
  // The receiver has started this message, so it takes the rest whatever its bound: its fragments already
  // queued for a resend go again, ahead (ResendLater); the entries queued before are skipped.
  const uint32_t everSent = message->fragments - message->unsent;  // fragments go out in order
  for (uint32_t fragment = 0; fragment < everSent; ++fragment) {
    if (message->lastSent[fragment] == kNotSent) retransmits_.push(Chunk{message->channel, true, message->sequence, fragment});
  }
}

void DeliveryCore::OnPacketLost(SentPacket& packet, uint64_t nowUs) {
  ++stats_.packetsLost;
  uint64_t reduction = 0;
  if (Settle(packet)) {
    const LossVerdict verdict =
        congestion_.OnLost(packet.sentUs, nowUs, rtt_.pathMinUs(), rtt_.samples() > 0 ? rtt_.recentMinUs() : 0);
    if (verdict.random) carried_ += packet.bytes;
    reduction = verdict.reduction;
  }
  if (packet.ackEliciting) {
    if (recentlyLost_.size() == kRecentlyLost) recentlyLost_.erase(recentlyLost_.begin());
    recentlyLost_.push_back(LostRecord{packet.number, packet.sentUs, reduction, packet.chunks});
  }
  for (const Chunk& chunk : packet.chunks) {
    OutMessage* message = FindReliable(chunk.channel, chunk.sequence);
    // Only the latest copy of a fragment counts: an older copy's loss says nothing new.
    if (message == nullptr || message->lastSent[chunk.fragment] != packet.number) continue;
    message->lastSent[chunk.fragment] = kNotSent;
    Chunk resend = chunk;
    resend.started = message->acked > 0;
    retransmits_.push(resend);
  }
}

// Packets this ACK acknowledges that were declared lost: reordered, not lost. Each raises the packet
// threshold past the distance it was reordered by and the time threshold by an eighth of an RTT, is taken
// out of the loss count, and undoes the window reduction it caused (the data it carried is resent anyway;
// the receiver drops the copy). ranges: descending and disjoint, as the ACK frame's parser makes them, so
// each record costs a binary search (a peer's ACK may carry 257 ranges).
void DeliveryCore::OnSpuriousLosses(const std::vector<ReceivedPackets::Range>& ranges, uint64_t nowUs) {
  size_t kept = 0;
  for (LostRecord& lost : recentlyLost_) {
    const auto range = std::partition_point(ranges.begin(), ranges.end(),
                                            [&lost](const ReceivedPackets::Range& r) { return r.low > lost.number; });
    if (range == ranges.end() || lost.number > range->high) {
      if (&recentlyLost_[kept] != &lost) recentlyLost_[kept] = std::move(lost);
      ++kept;
      continue;
    }
    ++stats_.spuriousLosses;
    if (stats_.packetsLost > 0) --stats_.packetsLost;
    // What it carried arrived: no resend is owed for it (and the receiver has started its messages).
    for (const Chunk& chunk : lost.chunks) CreditFragment(chunk);
    // Its record, if the ring still has it (one before the oldest outstanding is never read again).
    SentPacket& packet = sent_[lost.number & (sent_.size() - 1)];
    if (packet.number == lost.number) packet.acked = true;
    packetThreshold_ = std::min(kMaxPacketThreshold, std::max(packetThreshold_, largestAcked_ - lost.number + 1));
    timeThresholdEighths_ = std::min(kMaxTimeThresholdEighths, timeThresholdEighths_ + 1);
    congestion_.OnSpuriousLoss(lost.reduction);
  }
  recentlyLost_.resize(kept);
  ForgetOldLosses(nowUs);
}

void DeliveryCore::ForgetOldLosses(uint64_t nowUs) {
  const uint64_t memoryUs = std::max(kLostMemoryRtts * rtt_.smoothedUs(), kLostMemoryMinUs);
  recentlyLost_.erase(std::remove_if(recentlyLost_.begin(), recentlyLost_.end(),
                                     [&](const LostRecord& lost) { return nowUs - lost.sentUs >= memoryUs; }),
                      recentlyLost_.end());
  if (recentlyLost_.empty() && recentlyLost_.capacity() > kLostRecordsKept) recentlyLost_.shrink_to_fit();
}

void DeliveryCore::DetectLosses(uint64_t nowUs) {
  lossTimeUs_ = 0;
  if (!anyAcked_) return;
  const uint64_t lossDelay = std::max<uint64_t>(std::max(rtt_.latestUs(), rtt_.smoothedUs()) * timeThresholdEighths_ / 8, kGranularityUs);
  const uint64_t end = std::min(largestAcked_, nextPacket_ == 0 ? 0 : nextPacket_ - 1);
  // Persistent congestion (RFC 9002 §7.6): every ack-eliciting packet sent over a span longer than three
  // probe timeouts was lost, nothing acknowledged in between.
  const uint64_t persistentUs = 3 * ProbeTimeoutBaseUs();
  bool lostRun = false, persistent = false;
  uint64_t lostRunStartUs = 0;
  for (uint64_t number = sentBase_; number <= end && number < nextPacket_; ++number) {
    SentPacket& packet = sent_[number & (sent_.size() - 1)];
    if (!packet.ackEliciting || number >= largestAcked_) continue;
    if (packet.settled) {
      if (packet.acked) lostRun = false;
      continue;
    }
    if (largestAcked_ - number >= packetThreshold_ || packet.sentUs + lossDelay <= nowUs) {
      OnPacketLost(packet, nowUs);
      if (!lostRun) {
        lostRun = true;
        lostRunStartUs = packet.sentUs;
      }
      persistent = persistent || (rtt_.samples() > 0 && packet.sentUs - lostRunStartUs > persistentUs);
    } else {
      lostRun = false;
      if (lossTimeUs_ == 0 || packet.sentUs + lossDelay < lossTimeUs_) lossTimeUs_ = packet.sentUs + lossDelay;
    }
  }
  if (persistent) {
    congestion_.OnPersistentCongestion();
    rtt_.ForgetPathMin();
    ++stats_.persistentCongestion;
  }
  SettleFront();
}

// The window held to half the path's bandwidth-delay product at its old minimum: a queue of our own
// empties within the round trip it lengthens and the round trips after it show the path alone, for at
// least kDrainHoldUs. BBR's ProbeRTT drains the same way, to four packets. A sample near the old minimum
// ends it at once. A flow that does not fill its window has no queue of its own to drain: its window is
// left alone (held, it delayed every message by the length of the drain) and the drain only measures.
// The length comes from the latest ACK sample, which a peer cannot make shorter than the path, and is
// bounded: a peer that holds its ACKs back cannot hold the window down for long.
void DeliveryCore::UpdateDrain(uint64_t nowUs) {
  if (drainEndUs_ != 0) {
    if (nowUs < drainEndUs_ && rtt_.draining()) return;
    drainEndUs_ = 0;
    if (rtt_.draining()) rtt_.EndDrain(nowUs);
    congestion_.Release();
    return;
  }
  if (!rtt_.PathMinStale(nowUs)) return;
  ++stats_.rttDrains;
  rtt_.StartDrain();
  if (WindowInUse()) {
    congestion_.Hold(static_cast<uint64_t>(congestion_.bandwidthBytesPerUs() * static_cast<double>(rtt_.pathMinUs()) / 2));
  }
  const uint64_t roundTripUs = rtt_.latestAckSampleUs();
  drainEndUs_ = nowUs + std::min(roundTripUs + std::max(kDrainHoldUs, roundTripUs), kMaxDrainUs);
}

uint64_t DeliveryCore::ProbeTimeoutBaseUs() const {
  return rtt_.smoothedUs() + std::max<uint64_t>(4 * rtt_.variationUs(), kGranularityUs) + config_.maxAckDelayUs;
}

// With reliable data in flight the probe timeout runs from the last packet that carried some: the
// pings' probes are ack-eliciting too, and restarting it at each would postpone it for as long as they
// are lost, with the data never probed. A probe timeout restarts it (its probes go out then), so that
// its backoff holds: counted from the last data alone, it fell behind the clock in a long outage, and
// the timer stayed due, a probe timeout at every turn of the engine.
uint64_t DeliveryCore::ProbeTimeoutStartUs() const {
  return std::max(dataPacketsInFlight_ > 0 ? lastDataSentUs_ : lastAckElicitingSentUs_, lastProbeTimeoutUs_);
}

uint64_t DeliveryCore::ProbeTimeoutUs() const { return ProbeTimeoutBaseUs() << std::min<uint32_t>(probeCount_, 10); }

void DeliveryCore::OnProbeTimeout(uint64_t nowUs) {
  lastProbeTimeoutUs_ = nowUs;
  ++probeCount_;
  ++stats_.probeTimeouts;
  probesToSend_ = 2;
  // Resend the oldest unacknowledged packet's reliable fragments (with any lower ones already queued).
  for (uint64_t number = sentBase_; number < nextPacket_; ++number) {
    const SentPacket& packet = sent_[number & (sent_.size() - 1)];
    if (packet.settled || packet.chunks.empty()) continue;
    for (const Chunk& chunk : packet.chunks) {
      const OutMessage* message = FindReliable(chunk.channel, chunk.sequence);
      if (message == nullptr) continue;  // acknowledged whole since
      Chunk resend = chunk;
      resend.started = message->acked > 0;
      retransmits_.push(resend);
    }
    break;
  }
}

void DeliveryCore::SettleFront() {
  while (sentBase_ < nextPacket_ && sent_[sentBase_ & (sent_.size() - 1)].settled) ++sentBase_;
}

uint64_t DeliveryCore::SkipGap() const {
  uint8_t count[8], hash[crypto_shorthash_BYTES];
  for (int i = 0; i < 8; ++i) count[i] = static_cast<uint8_t>(skipsMade_ >> (8 * i));  // little-endian
  crypto_shorthash(hash, count, sizeof(count), skipKey_.data());
  const uint32_t value = uint32_t{hash[0]} | uint32_t{hash[1]} << 8 | uint32_t{hash[2]} << 16 | uint32_t{hash[3]} << 24;
  return kPacketSkipGapMin + value % kPacketSkipGapSpan;
}

void DeliveryCore::SkipPacketNumber(uint64_t nowUs) {
  const uint64_t number = nextPacket_;
  SentPacket& record = sent_[number & (sent_.size() - 1)];
  record.chunks.clear();
  record.number = number;
  record.sentUs = nowUs;
  record.bytes = 0;
  record.ackEliciting = false;
  record.inFlight = false;
  record.settled = true;
  record.acked = false;
  skippedNumbers_[skipsMade_ % kSkippedRemembered] = number;
  ++skipsMade_;
  ++nextPacket_;
  SettleFront();
  packetsUntilSkip_ = SkipGap();
  EnsureSentCapacity(nowUs);
}

bool DeliveryCore::AcksSkippedNumber(const std::vector<ReceivedPackets::Range>& ranges) const {
  const size_t remembered = static_cast<size_t>(std::min<uint64_t>(skipsMade_, kSkippedRemembered));
  for (size_t i = 0; i < remembered; ++i) {
    const uint64_t skipped = skippedNumbers_[i];
    for (const ReceivedPackets::Range& range : ranges) {
      if (skipped > range.high) break;  // ranges descend
      if (skipped >= range.low) return true;
    }
  }
  return false;
}

// --- timers ---

void DeliveryCore::Update(uint64_t nowUs) {
  if (!recentlyLost_.empty()) ForgetOldLosses(nowUs);  // idle: no ACK comes to do it
  if (lossTimeUs_ != 0 && nowUs >= lossTimeUs_) {
    DetectLosses(nowUs);
  } else if (ackElicitingInFlight_ > 0 && nowUs >= ProbeTimeoutStartUs() + ProbeTimeoutUs()) {
    OnProbeTimeout(nowUs);
  }
  ExpireFragments(nowUs);
  if (config_.reliableStallUs > 0 && incompleteReliable_ > 0 && nowUs >= reliableActivityUs_ + config_.reliableStallUs) Stall();
}

uint64_t DeliveryCore::NextDeadlineUs(uint64_t nowUs) const {
  uint64_t next = nextPingUs_;
  const auto earliest = [&next](uint64_t due) {
    if (due < next) next = due;
  };
  if (lossTimeUs_ != 0) {
    earliest(lossTimeUs_);
  } else if (ackElicitingInFlight_ > 0) {
    earliest(ProbeTimeoutStartUs() + ProbeTimeoutUs());
  }
  if (ackPending_) earliest(ackImmediately_ || elicitingSinceAck_ >= 2 ? nowUs : ackDeadlineUs_);
  if (config_.reliableStallUs > 0 && incompleteReliable_ > 0) earliest(reliableActivityUs_ + config_.reliableStallUs);
  if (pongPending_) earliest(std::max(nowUs, pongDueUs_));
  if (MessagesReady() && bytesInFlight_ + kMaxPacketBytes <= congestion_.window()) {
    // Waiting for pacing credit only.
    const double missing = kMaxPacketBytes - pacingCredit_;
    if (missing <= 0) {
      earliest(nowUs);
    } else {
      earliest(nowUs + static_cast<uint64_t>(missing / congestion_.pacingRateBytesPerUs(rtt_.smoothedUs())) + 1);
    }
  }
  if (partialsUsed_ > 0) earliest(partialsFirstUs_ + config_.fragmentTimeoutUs);  // early at worst: the walk then updates it
  return next;
}

}  // namespace volley::delivery
