// DeliveryCore, the receiving side: parsing (every length checked before use), acknowledgement
// bookkeeping, reliable reordering, sequenced and unreliable delivery, reassembly within the memory
// bound, pongs and the clock.
#include <algorithm>
#include <new>

#include "protocol/netcode/wire.h"
#include "protocol/delivery/delivery.h"

namespace volley::delivery {

using netcode::WireReader;

namespace {

constexpr uint64_t kMaxAckRangesAccepted = 256;
// The clocks' rate difference bounds, before and after the clock sync has measured it.
constexpr double kMaxDriftPpm = 200;
constexpr double kResidualDriftPpm = 50;
// A pong held at most this long (or the ACK delay, if longer) was sent at once, not held for a ping: the
// minimum RTT may take it before the drift is known, at its upper bound (at most 1 µs above the truth at
// 200 ppm). At the ACK delay alone (1 ms), the fallback engine's JavaScript turn sometimes took longer, and
// its server's minimum stayed 0 for the 4 s the drift takes.
constexpr uint64_t kPromptPongUs = 5000;

}  // namespace

void DeliveryCore::Receive(const uint8_t* data, size_t size, uint64_t nowUs) {
  ++stats_.packetsIn;
  stats_.bytesIn += size;
  if (stalled_) return;  // the connection is ending: what it held is gone, and nothing more is taken
  WireReader reader(data, size);
  const uint8_t marker = reader.U8();
  const uint64_t number = reader.Varint();
  if (reader.failed() || marker != kPacketMarker) {
    ++stats_.malformed;
    // Every delivery packet starts with the marker: a payload without it comes from a peer that sends raw
    // netcode payloads, one without channels.
    if (size > 0 && marker != kPacketMarker && mismatch_ == Mismatch::kNone) mismatch_ = Mismatch::kNoDeliveryLayer;
    return;
  }
  const size_t headerBytes = size - reader.remaining();
  bool ackEliciting = false, refused = false, withSettings = false;
  // The whole packet is checked before any of it is acted on: a malformed packet changes nothing.
  if (!ProcessFrames(data + headerBytes, size - headerBytes, nowUs, false, &ackEliciting, &refused, &withSettings)) {
    ++stats_.malformed;
    return;
  }
  // A peer that runs this layer puts its settings in every packet, ahead of its messages, until this side
  // has them (a pong tells it so): a packet without them before then comes from one that does not announce
  // its channels, an older format's. Its messages are not delivered (Deliver counts them), so none ever is
  // before the peer's settings are known.
  if (!peer_.known && !withSettings && mismatch_ == Mismatch::kNone) mismatch_ = Mismatch::kNoDeliveryLayer;
  // Older than what either record remembers: a copy or a packet late beyond them, which cannot be told
  // apart. Dropped, for a copy must not deliver its messages twice; its reliable data comes again.
  if (!received_.Remembers(number) || !refusedPackets_.Remembers(number)) {
    ++stats_.forgottenPackets;
    return;
  }
  if (received_.Contains(number) || refusedPackets_.Contains(number)) {
    ++stats_.duplicatePackets;
    return;
  }
  ProcessFrames(data + headerBytes, size - headerBytes, nowUs, true, &ackEliciting, &refused, &withSettings);
  // Data that did not fit in memory: the packet is not acknowledged, so its reliable data comes again (in
  // another packet). What else it carried was delivered: a copy of it must find it seen.
  if (refused) {
    refusedPackets_.Add(number);
    return;
  }
  const bool inOrder = received_.empty() || number == received_.largest() + 1;
  received_.Add(number);
  if (number == received_.largest()) largestReceivedUs_ = nowUs;
  if (ackEliciting) {
    if (!ackPending_) ackDeadlineUs_ = nowUs + config_.maxAckDelayUs;
    ackPending_ = true;
    ++elicitingSinceAck_;
    if (!inOrder) ackImmediately_ = true;  // a gap: the sender should hear of it at once
  }
}

bool DeliveryCore::ProcessFrames(const uint8_t* data, size_t size, uint64_t nowUs, bool apply, bool* ackEliciting, bool* refused,
                                 bool* withSettings) {
  WireReader reader(data, size);
  if (size == 0) return false;
  bool withData = false;  // a MESSAGE or FRAGMENT came before
  // A sender writes at most one ACK, PING, PONG and SETTINGS frame a packet: a second is malformed. Each
  // costs far more than its few bytes (an ACK walks the packets in flight and looks for losses), so a
  // packet full of them would cost the receiver a hundred times a normal one.
  unsigned controlFrames = 0;
  const auto once = [&controlFrames](uint8_t type) {
    const unsigned bit = 1u << type;
    const bool first = (controlFrames & bit) == 0;
    controlFrames |= bit;
    return first;
  };
  while (reader.remaining() > 0) {
    const uint8_t type = reader.U8();
    withData = withData || type == kFrameMessage || type == kFrameFragment;
    if ((type == kFrameAck || type == kFramePing || type == kFramePong || type == kFrameSettings) && !once(type)) return false;
    switch (type) {
      case kFrameAck: {
        const uint64_t largest = reader.Varint();
        const uint64_t delay = reader.Varint();
        const uint64_t firstRange = reader.Varint();
        const uint64_t count = reader.Varint();
        if (reader.failed() || firstRange > largest || count > kMaxAckRangesAccepted || largest >= nextPacket_) return false;
        ackScratch_.clear();
        ackScratch_.push_back(ReceivedPackets::Range{largest - firstRange, largest});
        uint64_t low = largest - firstRange;
        for (uint64_t i = 0; i < count; ++i) {
          const uint64_t gap = reader.Varint();
          const uint64_t length = reader.Varint();
          if (reader.failed() || low < 2 || gap > low - 2) return false;  // (gap + 2 could wrap)
          const uint64_t high = low - gap - 2;
          if (length > high) return false;
          low = high - length;
          ackScratch_.push_back(ReceivedPackets::Range{low, high});
        }
        // A number this side skipped was never sent: an ACK of it acknowledges what the peer did not receive.
        if (AcksSkippedNumber(ackScratch_)) return false;
        if (apply) OnAck(largest, delay, ackScratch_, nowUs);
        break;
      }
      case kFramePing: {
        const uint64_t id = reader.Varint();
        const uint64_t senderClock = reader.Varint();  // echoed in the pong
        if (reader.failed()) return false;
        // Pongs are rate-limited (20 Hz by default): a ping that comes sooner after the last one answered
        // goes unanswered.
        if (apply && (!anyPingAnswered_ || nowUs - pongReceivedUs_ >= config_.minPongIntervalUs)) {
          const bool first = !anyPingAnswered_;
          anyPingAnswered_ = true;
          pongPending_ = true;
          pongId_ = id;
          pongEcho_ = senderClock;
          pongReceivedUs_ = nowUs;
          // The side that leads holds its pong to a following ping (one that came with the pong to its
          // own) for its next ping, at most an interval away: one packet carries both, and the peer
          // subtracts the wait (the pong's processing delay). A ping on its own is the follower's timer:
          // it hears too little from this side, so the pong goes at once; so does the first, which gives
          // the follower an RTT timed on its own clock alone, its minimum, from the start.
          const bool withPong = (controlFrames & (1u << kFramePong)) != 0;  // a PONG came before in this packet
          const bool following = !config_.followsPings && withPong && !first;
          pongDueUs_ = following ? std::max(nowUs, nextPingUs_) : nowUs;
        }
        break;
      }
      case kFrameProbe:
        *ackEliciting = true;
        break;
      case kFrameSettings: {
        const uint8_t role = reader.U8();
        const uint64_t maxMessageBytes = reader.Varint();
        const uint64_t count = reader.Varint();
        if (reader.failed() || role > 1 || maxMessageBytes < 1 || maxMessageBytes > kMaxMessageBytesLimit || count < 1 ||
            count > kMaxChannels || count > reader.remaining()) {
          return false;
        }
        const size_t channels = static_cast<size_t>(count);  // at most kMaxChannels
        const uint8_t* modes = reader.Skip(channels);
        for (size_t i = 0; i < channels; ++i) {
          if (modes[i] < static_cast<uint8_t>(ChannelMode::kReliable) || modes[i] > static_cast<uint8_t>(ChannelMode::kSequenced)) return false;
        }
        // Ahead of the messages, as a sender puts them: messages before them would be delivered first.
        if (!withData) *withSettings = true;
        if (apply) OnSettings(role == 1, maxMessageBytes, modes, channels);
        break;
      }
      case kFramePong: {
        const uint64_t id = reader.Varint();
        const uint64_t echo = reader.Varint();
        const uint64_t remoteReceived = reader.Varint();
        const uint64_t delay = reader.Varint();
        if (reader.failed()) return false;
        // Every ping carried the settings until now: the peer has them.
        if (apply) {
          settingsDelivered_ = true;
          messagesWaitForSettings_ = false;
        }
        // The echo is the time one of this side's last pings left (a forged one is no sample); the peer held
        // the ping for `delay` of it.
        if (apply && AnswersPing(id, echo) && echo <= nowUs && delay <= nowUs - echo && nowUs - echo <= kMaxRttSampleUs) {
          clock_.Sample(echo, remoteReceived, delay, nowUs);
          if (echo >= rttSamplesFromUs_) SamplePongRtt(nowUs - echo, delay);
        }
        break;
      }
      case kFrameMessage:
      case kFrameFragment: {
        const uint8_t channel = reader.U8();
        const uint64_t sequence = reader.Varint();
        const uint64_t length = reader.Varint();
        const bool fragmented = type == kFrameFragment;
        uint64_t fragment = 0;
        uint64_t bytes = length;
        // A message that fits one fragment travels whole and only such a one does (WriteChunk): a slot's
        // layout (one fragment or many) then follows from the length every frame of the message repeats.
        // A whole frame longer than a fragment, for a slot made by fragments or the other way round,
        // indexed past the slot's per-fragment flags.
        if (!fragmented && length > kFragmentBytes) return false;
        if (fragmented) {
          fragment = reader.Varint();
          // A fragmented message is larger than a whole one can be and the index is within it (written so
          // that no length overflows); each fragment's size follows from them.
          if (reader.failed() || length <= kFragmentBytes || fragment > (length - 1) / kFragmentBytes) return false;
          bytes = std::min<uint64_t>(kFragmentBytes, length - fragment * kFragmentBytes);
        }
        if (reader.failed() || bytes > reader.remaining()) return false;
        const size_t payloadSize = static_cast<size_t>(bytes);  // within the packet
        const uint8_t* payload = reader.Skip(payloadSize);
        *ackEliciting = true;
        if (!apply) break;
        if (channel >= receiveChannels_.size()) {
          ++stats_.unknownChannel;
          break;
        }
        OnMessageFrame(channel, sequence, length, fragment, fragmented, payload, payloadSize, nowUs, refused);
        break;
      }
      default:
        return false;
    }
    if (reader.failed()) return false;
  }
  return !reader.failed();
}

void DeliveryCore::OnSettings(bool followsPings, uint64_t maxMessageBytes, const uint8_t* modes, size_t count) {
  // The first counts: settings do not change during a connection (later copies are resends).
  if (peer_.known) return;
  // A client and its server take the two roles: this side's own, coming back, is its own packet echoed by
  // a peer that takes payloads for messages (without channels), whatever settings it carries.
  if (followsPings == config_.followsPings) {
    if (mismatch_ == Mismatch::kNone) mismatch_ = Mismatch::kNoDeliveryLayer;
    return;
  }
  peer_.known = true;
  peer_.maxMessageBytes = maxMessageBytes;
  peer_.channels.resize(count);
  for (size_t i = 0; i < count; ++i) peer_.channels[i] = static_cast<ChannelMode>(modes[i]);
  // Channels only one side has are not a mismatch (the sender refuses them: JavaScript reads the peer's
  // settings); one both have in two modes would be delivered with guarantees its sender did not ask for.
  const size_t shared = std::min(count, config_.channels.size());
  for (size_t i = 0; i < shared; ++i) {
    if (peer_.channels[i] != config_.channels[i] && mismatch_ == Mismatch::kNone) mismatch_ = Mismatch::kChannelModes;
  }
}

bool DeliveryCore::StartInMessage(InMessage& slot, uint64_t sequence, uint64_t length, bool fragmented, uint64_t nowUs,
                                  bool headOfLine) {
  // The message each reliable channel delivers next is taken past the bound if need be (it is at most
  // maxMessageBytes), as the peer's data pays for it: memory stays within the bound + one message per
  // reliable channel (+ the queues' first slots), and buffers are made no faster than twice the data (a
  // packet on each of 16 channels made 16 of maxMessageBytes). Whether a channel can go on never depends on
  // another channel for good: taking only one channel's next message past the bound at a time, another's
  // was refused until that one completed, and a sender that had not learnt which one was taken (its
  // acknowledgement late, or in a packet refused for other data) resent the refused one first, at the
  // minimum window, for good; refused for credit, its resends bring the credit it waits for.
  const uint32_t fragments = fragmented ? static_cast<uint32_t>(FragmentCount(length)) : 1;
  const uint64_t cost = HeldCost(length, fragments);
  const bool onCredit = !FitsBound(cost);
  if (onCredit && (!headOfLine || length > bufferCredit_)) {
    ++stats_.overBudget;
    return false;
  }
  // The server's budget, which every message takes from (the next one of a channel too: shared by every
  // connection, it bounds their sum).
  if (budget_ != nullptr && !budget_->Take(*this, cost, nowUs)) {
    ++stats_.overBudget;
    return false;
  }
  // Only its table of blocks is made now (FragmentStore), and a memory limit may refuse even that: refused
  // as a message over the bound is, and counted so.
  if (!slot.store.Start(length)) {
    if (budget_ != nullptr) budget_->Give(*this, cost);
    ++stats_.overBudget;
    return false;
  }
  if (onCredit) bufferCredit_ -= length;
  slot.used = true;
  slot.sequence = sequence;
  slot.firstUs = nowUs;
  slot.lastAfterUs = 0;
  slot.length = length;
  slot.fragments = fragments;
  slot.received = 0;
  reassemblyUsed_ += length;
  heldExtraBytes_ += fragments + kHeldMessageBytes;
  return true;
}

void DeliveryCore::FreeInMessage(InMessage& slot) {
  if (budget_ != nullptr && BudgetCost(slot) > 0) budget_->Give(*this, BudgetCost(slot));
  if (slot.used && !slot.partial && !slot.passedOver && slot.received < slot.fragments) --incompleteReliable_;
  reassemblyUsed_ -= slot.length;
  if (slot.used && !slot.passedOver) heldExtraBytes_ -= slot.fragments + kHeldMessageBytes;  // started
  slot.length = 0;
  if (slot.partial) --partialsUsed_;
  slot.partial = false;
  slot.used = false;
  slot.passedOver = false;
  // Given back with the message, whatever their size: kept in a slot (a reliable queue's, a partial one),
  // they would be memory outside the bound, which a peer could fill with a few bytes per kept buffer.
  slot.store.Clear();
}

bool DeliveryCore::StoreFragment(InMessage& slot, uint64_t fragment, const uint8_t* data, size_t size, uint64_t nowUs) {
  uint64_t made = 0;
  if (!slot.store.Store(fragment, data, size, &made)) {  // a memory limit refused its block
    ++stats_.overBudget;
    return false;
  }
  stats_.reassemblyMade += made;
  if (budget_ != nullptr) budget_->Progress(*this, nowUs);
  return true;
}

void DeliveryCore::Stall() {
  if (stalled_) return;
  stalled_ = true;
  for (ReceiveChannel& channel : receiveChannels_) {
    for (size_t i = 0; i < channel.pending.size(); ++i) FreeInMessage(channel.pending[i]);
    ChangeQueue(channel, [&channel] { channel.pending.clear(); });
    for (InMessage& slot : channel.partials) FreeInMessage(slot);
    GiveBackPartials(channel);
  }
}

bool DeliveryCore::IdleForBudget(uint64_t nowUs) const {
  return nowUs >= lastFragmentUs_ + std::max<uint64_t>(kBudgetIdleUs, 4 * rtt_.smoothedUs());
}

bool DeliveryCore::EvictForBudget() {
  // A reliable message given up on breaks the channel for good (its fragments were acknowledged): the
  // connection ends. Otherwise incomplete unreliable messages are lost (they have been idle a second), and
  // queue slots that hold nothing are given back.
  for (const ReceiveChannel& channel : receiveChannels_) {
    for (size_t i = 0; i < channel.pending.size(); ++i) {
      if (channel.pending[i].used) {
        Stall();
        return true;
      }
    }
  }
  for (ReceiveChannel& channel : receiveChannels_) {
    for (InMessage& slot : channel.partials) {
      if (!slot.used) continue;
      ++stats_.expiredFragments;
      FreeInMessage(slot);
    }
    GiveBackPartials(channel);
    // Slots that hold no message (drained, or waiting for messages that have not come): made again if they do.
    if (CountedSlots(channel.pending) > 0) ChangeQueue(channel, [&channel] { channel.pending.clear(); });
  }
  return false;
}

void DeliveryCore::SamplePongRtt(uint64_t elapsedUs, uint64_t delayUs) {
  // The delay was timed on the peer's clock: a pong held for a ping interval is off by the clocks' rate
  // difference times that (100 µs at 1,000 ppm over 100 ms, a whole loopback RTT). Corrected by the drift
  // the clock sync measures once it knows it; the minimum, which never rises again, takes a long hold only
  // then, and at an upper bound of the round trip.
  const double heldUs = static_cast<double>(delayUs) * (1.0 - clock_.Drift());
  // Within what a pong may take (elapsedUs is): converted to an integer below, it must fit.
  const double rttUs = std::clamp(static_cast<double>(elapsedUs) - heldUs, 1.0, static_cast<double>(kMaxRttSampleUs));
  uint64_t minCandidateUs = 0;
  if (delayUs <= std::max(config_.maxAckDelayUs, kPromptPongUs) || clock_.DriftKnown()) {
    const double boundPpm = clock_.DriftKnown() ? kResidualDriftPpm : kMaxDriftPpm;
    minCandidateUs = static_cast<uint64_t>(rttUs + static_cast<double>(delayUs) * boundPpm * 1e-6);
  }
  rtt_.SampleNet(static_cast<uint64_t>(rttUs), minCandidateUs);
}

DeliveredMessage* DeliveryCore::Deliver(uint8_t channel, const uint8_t* data, size_t size) {
  if (mismatch_ != Mismatch::kNone) {
    ++stats_.mismatched;
    return nullptr;
  }
  ++stats_.messagesIn;
  stats_.messageBytesIn += size;
  DeliveredMessage& message = deliveredMessages_.emplace_back();
  message.channel = channel;
  message.data = data;
  message.size = size;
  return &message;
}

DeliveredMessage* DeliveryCore::PollMessage() {
  if (nextDelivered_ < deliveredMessages_.size()) return &deliveredMessages_[nextDelivered_++];
  // All taken: their buffers go (a burst's room too, past a few slots).
  deliveredMessages_.clear();
  nextDelivered_ = 0;
  if (deliveredMessages_.capacity() > kKeptDeliveredSlots) deliveredMessages_.shrink_to_fit();
  return nullptr;
}

void DeliveryCore::DeliverWhole(uint8_t channel, InMessage& slot) {
  // The message takes its block, or its blocks joined into one buffer: no copy of a one-block message, and
  // a large one goes to JavaScript with no further copy.
  DeliveredMessage* message = Deliver(channel, nullptr, static_cast<size_t>(slot.length));  // its store took the length
  if (message != nullptr) message->data = slot.store.TakeWhole(&message->joined, &message->block);
  FreeInMessage(slot);
}

void DeliveryCore::DeliverReliable(ReceiveChannel& channel) {
  while (!channel.pending.empty()) {
    InMessage& slot = channel.pending.front();
    if (!slot.used || slot.received < slot.fragments) return;
    if (slot.passedOver) {
      FreeInMessage(slot);
    } else {
      DeliverWhole(static_cast<uint8_t>(&channel - receiveChannels_.data()), slot);
    }
    ChangeQueue(channel, [&channel] { channel.pending.pop_front(); });
    ++channel.nextDeliver;
  }
}

size_t DeliveryCore::reassemblyHeld() const {
  size_t held = 0;
  const auto add = [&held](const InMessage& slot) { held += slot.store.held(); };
  for (const ReceiveChannel& channel : receiveChannels_) {
    for (size_t i = 0; i < channel.pending.size(); ++i) add(channel.pending[i]);  // popped slots are reset
    for (const InMessage& slot : channel.partials) add(slot);
  }
  return held;
}

size_t DeliveryCore::QueueSlotBytes() const { return countedQueueSlots_ * kReceiveSlotBytes; }

size_t DeliveryCore::receiveSlotBytes() { return kReceiveSlotBytes; }

size_t DeliveryCore::heldMessageBytes() { return kHeldMessageBytes; }


template <typename Change>
void DeliveryCore::ChangeQueue(ReceiveChannel& channel, Change change) {
  // Beyond the first slots of each queue, which every channel may always have (the one for its next
  // message among them): counted, they could keep the bound full with nothing to free it. Kept as running
  // counts, so that the bound's check costs the same with 255 channels as with one.
  const size_t before = CountedSlots(channel.pending);
  countedQueueSlots_ -= before;
  drainedQueues_ -= Drained(channel.pending) ? 1 : 0;
  change();
  const size_t after = CountedSlots(channel.pending);
  countedQueueSlots_ += after;
  // Slots given back leave the budget; the growth was taken from it before (MakeRoomInQueue).
  if (budget_ != nullptr && after < before) budget_->Give(*this, (before - after) * kReceiveSlotBytes);
  if (Drained(channel.pending)) {
    ++drainedQueues_;
    if (!channel.listedDrained) {
      channel.listedDrained = true;
      drainedChannels_.push_back(static_cast<uint8_t>(&channel - receiveChannels_.data()));
    }
  }
}

bool DeliveryCore::FitsBound(uint64_t extraBytes, const ReceiveChannel* growing) {
  if (reassemblyUsed_ + heldExtraBytes_ + QueueSlotBytes() + extraBytes <= reassemblyLimit_) return true;
  // A queue keeps the slots a reordering burst grew it to after it drains (Ring gives back only the
  // largest), and they count: left so, a burst on each of a few channels would keep the bound full of
  // empty slots for the rest of the connection. Given back only here, when the bound is reached, so that
  // a link that reorders all the time does not remake them at each episode.
  if (drainedQueues_ == (growing != nullptr && Drained(growing->pending) ? 1u : 0u)) return false;  // nothing to give back
  // The listed channels only: a peer could drain a queue every few frames, and each walk over 255 channels
  // cost it microseconds. Cleared, a queue is not drained and so not listed again here.
  size_t kept = 0;
  stats_.queueGiveBacks += drainedChannels_.size();
  for (const uint8_t index : drainedChannels_) {
    ReceiveChannel& channel = receiveChannels_[index];
    const bool drained = Drained(channel.pending);
    if (&channel == growing && drained) {
      drainedChannels_[kept++] = index;
      continue;
    }
    channel.listedDrained = false;
    if (drained) ChangeQueue(channel, [&channel] { channel.pending.clear(); });
  }
  drainedChannels_.resize(kept);
  return reassemblyUsed_ + heldExtraBytes_ + QueueSlotBytes() + extraBytes <= reassemblyLimit_;
}

bool DeliveryCore::MakeRoomInQueue(ReceiveChannel& channel, uint64_t offset, uint64_t nowUs) {
  if (offset < channel.pending.size()) return true;
  // The queue's slots (each an InMessage, kept until the queue drains) count against the bound with the
  // messages: else a peer that holds back the message a channel delivers next could grow its queue to the
  // window with frames of a few bytes, 80 kB a channel at the default window and megabytes at larger ones,
  // none of it in reassemblyUsed_. A queue's first slots, the next message's among them, are always made.
  const size_t grown = channel.pending.CapacityFor(static_cast<size_t>(offset) + 1);
  const size_t counted = std::max(channel.pending.capacity(), kFreeQueueSlots);
  if (grown > counted) {
    if (!FitsBound((grown - counted) * kReceiveSlotBytes, &channel)) {
      ++stats_.overBudget;
      return false;
    }
    if (budget_ != nullptr && !budget_->Take(*this, (grown - counted) * kReceiveSlotBytes, nowUs)) {
      ++stats_.overBudget;
      return false;
    }
  }
  ChangeQueue(channel, [&channel, offset] { channel.pending.resize(static_cast<size_t>(offset) + 1); });
  return true;
}

void DeliveryCore::PassOver(ReceiveChannel& channel, uint64_t sequence) {
  InMessage& slot = channel.pending[static_cast<size_t>(sequence - channel.nextDeliver)];  // its slot made by MakeRoomInQueue
  if (slot.used && slot.passedOver) {
    ++stats_.duplicateMessages;  // another fragment of it
    return;
  }
  if (slot.used) {
    // Started with another length: the sender is broken, as in OnMessageFrame. Passed over, its buffer
    // (up to maxMessageBytes) was made and freed for two frames of a few bytes, dozens of times a packet.
    ++stats_.malformed;
    return;
  }
  ++stats_.oversized;
  slot.used = true;
  slot.passedOver = true;
  slot.sequence = sequence;
  slot.fragments = 0;
  slot.received = 0;
  DeliverReliable(channel);
}

bool DeliveryCore::OnMessageFrame(uint8_t channelIndex, uint64_t sequence, uint64_t length, uint64_t fragment, bool fragmented,
                                  const uint8_t* data, size_t size, uint64_t nowUs, bool* refused) {
  ReceiveChannel& channel = receiveChannels_[channelIndex];
  // A message over this side's maximum (a peer configured with a larger one) is dropped and counted, and
  // a reliable channel passes over its sequence: refusing its packets would stall the channel for good.
  const bool oversized = length > config_.maxMessageBytes;
  // The peer's data pays for buffers past the bound (StartInMessage), but not a copy of what is already
  // here: copies of one stored fragment, each in a new packet, bought a channel's next message (up to
  // maxMessageBytes) at twice their bytes, and held it for as long as the connection lasted.
  const auto earnCredit = [this, size] { bufferCredit_ = std::min(bufferCredit_ + 2 * uint64_t{size}, BufferCreditLimit()); };
  if (channel.mode == ChannelMode::kReliable) {
    if (sequence < channel.nextDeliver) {
      ++stats_.duplicateMessages;
      return true;
    }
    const uint64_t ahead = sequence - channel.nextDeliver;
    if (ahead < channel.pending.size()) {
      const InMessage& held = channel.pending[static_cast<size_t>(ahead)];
      if (held.used && (held.passedOver || (held.length == length && held.store.Has(fragment)))) {
        ++stats_.duplicateMessages;
        return true;
      }
    }
    earnCredit();
    if (sequence - channel.nextDeliver >= config_.reliableWindow) {
      ++stats_.overBudget;  // beyond the window the sender must keep to
      *refused = true;
      return false;
    }
    if (oversized) {
      if (!MakeRoomInQueue(channel, sequence - channel.nextDeliver, nowUs)) {
        *refused = true;
        return false;
      }
      PassOver(channel, sequence);
      return true;
    }
    if (!fragmented && sequence == channel.nextDeliver) {  // the common case: in order, whole, no copy
      // Its slot is unused, unless a broken sender also sent it in fragments (another length): as below.
      // Delivered whole, that slot's buffer was made and freed for two frames of a few bytes.
      if (!channel.pending.empty() && channel.pending.front().used) {
        ++stats_.malformed;
        return false;
      }
      Deliver(channelIndex, data, size);
      ++channel.nextDeliver;
      if (!channel.pending.empty()) ChangeQueue(channel, [&channel] { channel.pending.pop_front(); });
      DeliverReliable(channel);
      return true;
    }
    const uint64_t offset = sequence - channel.nextDeliver;
    if (!MakeRoomInQueue(channel, offset, nowUs)) {
      *refused = true;
      return false;
    }
    InMessage& slot = channel.pending[static_cast<size_t>(offset)];  // within the window
    if (slot.used && slot.passedOver) {  // passed over (oversized): nothing of it is kept, not even its flags
      ++stats_.duplicateMessages;
      return true;
    }
    if (!slot.used) {
      if (!StartInMessage(slot, sequence, length, fragmented, nowUs, offset == 0)) {
        *refused = true;
        return false;
      }
      ++incompleteReliable_;
      reliableActivityUs_ = nowUs;
    } else if (slot.length != length) {
      ++stats_.malformed;  // the same message with another length: the sender is broken
      return false;
    }
    if (slot.store.Has(fragment)) {
      ++stats_.duplicateMessages;
      return true;
    }
    if (!StoreFragment(slot, fragment, data, size, nowUs)) {
      *refused = true;
      return false;
    }
    reliableActivityUs_ = nowUs;
    if (++slot.received == slot.fragments) --incompleteReliable_;
    DeliverReliable(channel);
    return true;
  }

  // Sequenced and unreliable.
  if (oversized) {
    // Once per message, as the reliable channel counts it (PassOver), not once per fragment: counted at
    // its first fragment (a message whose first fragment is lost goes uncounted, never counted twice).
    if (!fragmented || fragment == 0) ++stats_.oversized;
    return true;
  }
  const bool sequenced = channel.mode == ChannelMode::kSequenced;
  // A stale message is counted once, at its first fragment, as an oversized one is: at most once, never
  // per fragment (one whose first fragment is lost goes uncounted).
  if (sequenced && channel.anyDelivered && sequence <= channel.lastDelivered) {
    if (!fragmented || fragment == 0) ++stats_.staleSequenced;
    return true;
  }
  const auto delivered = [&](uint64_t done) {
    if (!sequenced) return;
    channel.anyDelivered = true;
    channel.lastDelivered = done;
    for (InMessage& slot : channel.partials) {  // older incomplete messages can no longer be delivered
      if (!slot.used || slot.sequence > done) continue;
      if (slot.store.Has(0)) ++stats_.staleSequenced;  // else counted if its first fragment comes, as stale
      FreeInMessage(slot);
    }
    GiveBackPartials(channel);
  };
  if (!fragmented) {
    earnCredit();
    Deliver(channelIndex, data, size);
    delivered(sequence);
    return true;
  }
  // Every way out below: the slots go again if no incomplete message is left in them.
  const auto giveBack = [&channel](bool result) {
    GiveBackPartials(channel);
    return result;
  };
  InMessage* slot = nullptr;
  InMessage* free = nullptr;
  InMessage* oldest = nullptr;
  for (InMessage& candidate : channel.partials) {
    if (!candidate.used) {
      if (free == nullptr) free = &candidate;
    } else if (candidate.sequence == sequence) {
      slot = &candidate;
    } else if (oldest == nullptr || candidate.sequence < oldest->sequence) {
      oldest = &candidate;
    }
  }
  if (slot != nullptr && slot->length == length && slot->store.Has(fragment)) {
    ++stats_.duplicateMessages;
    return giveBack(true);
  }
  earnCredit();
  if (slot == nullptr) {
    // Messages started faster than their data comes (each evicted or passed by the next): dropped, as
    // unreliable data over the bound is.
    if (length > bufferCredit_) {
      ++stats_.overBudget;
      return giveBack(false);
    }
    if (free == nullptr && oldest != nullptr && oldest->sequence > sequence) {
      // Every partial slot holds a newer incomplete message: this older one gives way, not one of them (a
      // straggler evicted a newer message, which then could not complete either). Counted at its first
      // fragment, as a stale one is: once per message.
      if (fragment == 0) ++stats_.expiredFragments;
      return giveBack(false);
    }
    const uint64_t cost = HeldCost(length, FragmentCount(length));
    if (!FitsBound(cost)) {
      // So do the channel's older incomplete messages when it would not fit beside them. A sender sends a
      // channel's messages one after another: one still incomplete when a later one starts has lost a
      // fragment (a sequenced one is passed by it too). Kept until they expire, a few large ones would
      // keep every newer message out, though each arrives whole.
      for (InMessage& older : channel.partials) {
        if (older.used && older.sequence < sequence) {
          ++stats_.expiredFragments;
          FreeInMessage(older);
        }
      }
      // And other channels' that have lost a fragment: else a large unreliable message that lost one kept
      // every fragmented message of the other channels out until it expired.
      EvictIdlePartials(cost, nowUs, channel);
    }
    // Unreliable data that does not fit is dropped, not refused: it would not come again.
    if (!FitsBound(cost)) {
      ++stats_.overBudget;
      return giveBack(false);
    }
    if (free == nullptr && channel.partials.empty()) {  // the channel's first incomplete message: its slots are made now
      channel.partials.resize(kPartialSlots);
      free = channel.partials.data();
    }
    if (free == nullptr) {
      // Every partial slot was taken: one that the bound freed above, else the oldest incomplete message
      // gives way, now that this one is known to fit (evicted first, both were lost when it did not).
      for (InMessage& candidate : channel.partials) {
        if (!candidate.used) {
          free = &candidate;
          break;
        }
      }
      if (free == nullptr) {
        ++stats_.expiredFragments;
        FreeInMessage(*oldest);
        free = oldest;
      }
    }
    if (!StartInMessage(*free, sequence, length, true, nowUs, false)) return giveBack(false);  // it fits: memory refused
    bufferCredit_ -= length;
    slot = free;
    slot->partial = true;
    if (++partialsUsed_ == 1) partialsFirstUs_ = partialsLastUs_ = nowUs;  // else they are earlier already
  } else if (slot->length != length) {
    ++stats_.malformed;
    return false;
  }
  if (slot->store.Has(fragment)) {
    ++stats_.duplicateMessages;
    return true;
  }
  if (!StoreFragment(*slot, fragment, data, size, nowUs)) return giveBack(false);  // dropped, as data over the bound
  slot->FragmentAt(nowUs);
  if (++slot->received == slot->fragments) {
    DeliverWhole(channelIndex, *slot);
    delivered(sequence);
  }
  return giveBack(true);
}

void DeliveryCore::GiveBackPartials(ReceiveChannel& channel) {
  if (channel.partials.empty()) return;
  for (const InMessage& slot : channel.partials) {
    if (slot.used) return;
  }
  std::vector<InMessage>().swap(channel.partials);
}

void DeliveryCore::EvictIdlePartials(uint64_t cost, uint64_t nowUs, const ReceiveChannel& starting) {
  const uint64_t idleUs = std::max<uint64_t>(kIdlePartialUs, 4 * rtt_.smoothedUs());
  // Nothing is walked while none can be idle: a peer that keeps one message going would otherwise make each
  // of its packets walk every channel's slots.
  while (partialsUsed_ > 0 && nowUs - partialsLastUs_ >= idleUs && !FitsBound(cost)) {
    ++stats_.partialScans;
    InMessage* idlest = nullptr;
    ReceiveChannel* of = nullptr;
    for (ReceiveChannel& channel : receiveChannels_) {
      for (InMessage& slot : channel.partials) {
        if (slot.used && (idlest == nullptr || slot.lastUs() < idlest->lastUs())) {
          idlest = &slot;
          of = &channel;
        }
      }
    }
    partialsLastUs_ = idlest->lastUs();
    if (nowUs - partialsLastUs_ < idleUs) return;
    ++stats_.expiredFragments;
    FreeInMessage(*idlest);
    if (of != &starting) GiveBackPartials(*of);  // the starting channel's slots are about to take a message
  }
}

void DeliveryCore::ExpireFragments(uint64_t nowUs) {
  if (partialsUsed_ == 0 || nowUs - partialsFirstUs_ < config_.fragmentTimeoutUs) return;
  ++stats_.partialScans;
  uint64_t firstUs = UINT64_MAX;
  for (ReceiveChannel& channel : receiveChannels_) {
    if (channel.partials.empty()) continue;
    for (InMessage& slot : channel.partials) {
      if (!slot.used) continue;
      if (nowUs - slot.firstUs >= config_.fragmentTimeoutUs) {
        ++stats_.expiredFragments;
        FreeInMessage(slot);
      } else {
        firstUs = std::min(firstUs, slot.firstUs);
      }
    }
    GiveBackPartials(channel);
  }
  partialsFirstUs_ = firstUs;
}

}  // namespace volley::delivery
