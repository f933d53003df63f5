// The delivery layer of one connection (sans-IO): channels (reliable-ordered, unreliable, sequenced)
// inside netcode payload packets, acknowledgements as ranges, retransmission on loss (RFC 9002's packet
// and time thresholds, probe timeouts), congestion control with pacing (congestion_control.h), fragmentation and
// reassembly within per-connection memory bounds, ping/pong with clock synchronisation, link statistics.
// Fed messages from the application, packets from the peer and the time; polled for the packets to send
// (PollPacket), the messages delivered (PollMessage) and its next deadline. It calls nothing out. See
// wire_format.h for the bytes.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <queue>
#include <vector>

#include "protocol/delivery/clock_sync.h"
#include "protocol/delivery/congestion_control.h"
#include "protocol/delivery/fragment_store.h"
#include "protocol/delivery/reassembly_budget.h"
#include "protocol/delivery/received_packets.h"
#include "protocol/delivery/ring.h"
#include "protocol/delivery/rtt_estimator.h"
#include "protocol/delivery/wire_format.h"

namespace volley::delivery {

enum class ChannelMode : uint8_t { kReliable = 1, kUnreliable = 2, kSequenced = 3 };

// What a queued message costs the send queue beyond its bytes: about what its record takes in memory.
// Without it, empty or 1-byte messages would pass sendQueueBytes by the million.
constexpr uint64_t kQueuedMessageOverheadBytes = 64;

// A connection's reassembly bound when none is set (DeliveryConfig::reassemblyBytes 0): its largest message and this.
constexpr uint64_t kReassemblyHeadroomBytes = 1 << 20;

struct DeliveryConfig {
  std::vector<ChannelMode> channels{ChannelMode::kReliable};
  uint64_t maxMessageBytes = 1 << 20;
  // Bytes the application may queue (reliable: until acknowledged; others: until sent) before Send()
  // refuses: back-pressure. Each message counts kQueuedMessageOverheadBytes more than its size.
  uint64_t sendQueueBytes = 8 << 20;
  // Bytes the receiver holds for messages not yet delivered (out of order, or fragments); 0: the largest
  // message plus kReassemblyHeadroomBytes. A packet whose data does not fit is not acknowledged: the sender sends it again.
  // The message each reliable channel delivers next is taken beyond it (one per channel, each at most
  // maxMessageBytes), so the bound never blocks delivery.
  uint64_t reassemblyBytes = 0;
  // A reliable channel sends no message more than this many sequence numbers past its oldest
  // unacknowledged one: the receiver's reorder window.
  uint32_t reliableWindow = 1024;
  uint64_t fragmentTimeoutUs = 5000000;  // incomplete unreliable or sequenced messages are dropped then
  // A connection with a reliable message started and incomplete that brings no new fragment of any for this
  // long stalls (stalled(); the server ends it); 0: never. Once started, a message's fragments are never
  // refused for memory, so the wait is the peer's: it holds what it made this side keep for it and sends
  // nothing new (copies of fragments held, which its acknowledgements answered, do not count).
  uint64_t reliableStallUs = 0;
  uint64_t maxAckDelayUs = 1000;
  uint64_t pingIntervalUs = 100000;     // 10 Hz (seed 001)
  uint64_t minPongIntervalUs = 50000;   // pongs at most 20 Hz
  // One side of a connection leads the pings (the client) and the other follows (the server): the
  // follower pings with its pongs to the leader's pings, and on its own only after two intervals without
  // them; the leader holds its pongs to those pings for its next ping. An idle connection then sends one
  // packet per interval each way.
  bool followsPings = false;
  uint64_t initialRttUs = 100000;
};

// What the peer's SETTINGS frame said (the first one; wire_format.h).
struct PeerSettings {
  bool known = false;
  uint64_t maxMessageBytes = 0;
  std::vector<ChannelMode> channels;
};

// Why the two sides' delivery layers cannot work together; the connection should end.
enum class Mismatch : uint8_t {
  kNone = 0,
  kChannelModes = 1,     // a channel both have is in one mode here and another there
  kNoDeliveryLayer = 2,  // a payload without the delivery marker, this side's own settings sent back, or a
                         // packet without settings before the peer's are known: the peer has no channels
                         // (an echo server without them sends them back) or an older format
};

enum class SendResult : uint8_t { kQueued = 0, kQueueFull = 1, kTooLarge = 2, kNoChannel = 3 };

// A message Receive() delivered (DeliveryCore::PollMessage).
struct DeliveredMessage {
  uint8_t channel = 0;
  // In the packet given to Receive() (a message that came whole and in order: no copy), or in one of the
  // buffers below, which the caller may move away (a large message reaches JavaScript with no further copy).
  const uint8_t* data = nullptr;
  size_t size = 0;
  std::vector<uint8_t> joined;       // a message reassembled from several blocks, joined
  std::unique_ptr<uint8_t[]> block;  // a message reassembled in one block
};

// A packet to send (DeliveryCore::PollPacket): one netcode payload; empty when nothing is due.
struct PacketView {
  const uint8_t* data = nullptr;
  size_t size = 0;
  explicit operator bool() const { return size > 0; }
};

// Packets one drain of PollPacket takes at most (SendDuePackets): a window's worth and more. The rest
// waits for the next drain; the bound only keeps a fault from looping.
constexpr int kMaxPacketsPerDrain = 4096;

struct DeliveryStats {
  uint64_t packetsIn = 0, packetsOut = 0, bytesIn = 0, bytesOut = 0;
  uint64_t messagesIn = 0, messagesOut = 0, messageBytesIn = 0, messageBytesOut = 0;
  uint64_t ackElicitingOut = 0, packetsAcked = 0, packetsLost = 0;
  uint64_t resends = 0;  // message frames sent again after a loss or a probe timeout
  uint64_t probeTimeouts = 0;
  uint64_t persistentCongestion = 0;  // times the window fell to its minimum (RFC 9002 §7.6)
  uint64_t rttDrains = 0;  // times the window was held low to recheck the path's minimum RTT
  uint64_t spuriousLosses = 0;  // packets declared lost, then acknowledged (reordered, not lost): not in packetsLost
  // Dropped on receive, by cause.
  uint64_t malformed = 0, duplicatePackets = 0, duplicateMessages = 0, staleSequenced = 0, overBudget = 0,
           expiredFragments = 0, unknownChannel = 0;
  uint64_t forgottenPackets = 0;  // older than the record of packets seen: a copy or not, cannot be told
  uint64_t oversized = 0;  // messages over maxMessageBytes (the peer's maximum is larger), not delivered
  uint64_t mismatched = 0;  // messages not delivered once the channels were found not to match
  uint64_t reassemblyMade = 0;  // bytes of reassembly blocks made, in all (each at the first fragment that falls in it)
  // Walks over every channel's incomplete unreliable messages (to evict or expire them): each frees one or
  // waits until one may be due, so a peer cannot make them happen per packet.
  uint64_t partialScans = 0;
  // Channels looked at to give back the slots of drained queues: at most one per queue that drained, so a
  // peer that drains a queue every few frames cannot make each give-back walk every channel.
  uint64_t queueGiveBacks = 0;
};

// Packet numbers skipped now and then (RFC 9000 §21.4), so that a peer that acknowledges packets it has not
// received (an optimistic ACK, to make this side send faster than the path carries) is caught: it cannot
// tell a number never sent from one in flight. Every 256 to 1,279 packets, by a keyed SipHash of the skip's
// count (libsodium's crypto_shorthash) under a key of the connection's own, which the peer never sees.
constexpr size_t kPacketSkipKeyBytes = 16;

class DeliveryCore {
 public:
  // packetSkipKey: kPacketSkipKeyBytes random bytes of this connection's own; nullptr skips no packet number.
  // budget: the reassembly memory shared with the server's other connections (it outlives the core);
  // nullptr: none beyond this connection's own bound.
  // connection: the owner's name for it, which ReassemblyBudget::PollStalled() gives back with it.
  DeliveryCore(const DeliveryConfig& config, const uint8_t* packetSkipKey, ReassemblyBudget* budget = nullptr,
               uint32_t connection = 0);
  ~DeliveryCore();
  DeliveryCore(const DeliveryCore&) = delete;
  DeliveryCore& operator=(const DeliveryCore&) = delete;

  // Queues a message; PollPacket() sends it. The bytes are copied.
  SendResult Send(uint8_t channel, const uint8_t* data, size_t size, uint64_t nowUs);
  // The same, taking the bytes over (a large message is not copied again); left as it was when refused.
  SendResult Send(uint8_t channel, std::vector<uint8_t>&& data, uint64_t nowUs);
  // One delivery packet from the peer (the body of a netcode payload packet). The messages it delivers are
  // polled (PollMessage) before the next Receive: some point into `data`.
  void Receive(const uint8_t* data, size_t size, uint64_t nowUs);
  // The next message delivered, in order; nullptr once all are taken (their buffers are freed then).
  DeliveredMessage* PollMessage();
  // The next packet due now: announced settings, then what congestion control and pacing allow of queued
  // messages and resends, acknowledgements, pings, pongs. Its bytes stay valid until the next PollPacket of
  // any core on this thread. Polled until empty after each call that feeds the core (SendDuePackets).
  PacketView PollPacket(uint64_t nowUs);
  // Timers: loss detection, probe timeouts, fragment expiry, the stall timer; what they make due
  // (resends, probes, delayed acknowledgements, pings) is polled after.
  void Update(uint64_t nowUs);
  uint64_t NextDeadlineUs(uint64_t nowUs) const;
  uint32_t connection() const { return connection_; }

  const DeliveryStats& stats() const { return stats_; }
  const PeerSettings& peerSettings() const { return peer_; }
  // Set for good by the first packet that shows it; from then on no message is delivered (one on a
  // channel in another mode would come with guarantees its sender did not ask for). The connection ends.
  Mismatch mismatch() const { return mismatch_; }
  // Set for good when a reliable message the peer started stopped coming (config reliableStallUs), or the
  // budget evicted this connection's messages to make room for others' while it sent none of them: what it
  // held is freed, nothing more is received, and the connection should end.
  bool stalled() const { return stalled_; }
  // Makes the next `copies` packets polled this side's settings in packets of their own, whether or not the
  // peer has them: before a connection ends for a mismatch, so that the peer, which may not have found it
  // yet, learns why.
  void AnnounceSettings(int copies) { announcementsDue_ = copies > 0 ? copies : 0; }
  const RttEstimator& rtt() const { return rtt_; }
  const ClockSync& clock() const { return clock_; }
  uint64_t queuedBytes() const { return queuedBytes_; }
  // What the queued messages cost the send queue's budget (sendQueueBytes): their bytes and the
  // per-message charge.
  uint64_t queuedCharge() const { return queuedBytes_ + queuedMessages_ * kQueuedMessageOverheadBytes; }
  // What has left the queue, in all, counted as queuedCharge() counts it (JavaScript's send limit reads it).
  uint64_t releasedBytes() const { return releasedBytes_; }
  uint64_t releasedMessages() const { return releasedMessages_; }
  uint64_t queuedMessages() const { return queuedMessages_; }
  uint64_t bytesInFlight() const { return bytesInFlight_; }
  uint64_t congestionWindow() const { return congestion_.window(); }
  CongestionState congestionState() const { return congestion_.state(); }
  uint64_t congestionCuts() const { return congestion_.cuts(); }
  double pacingRateBytesPerUs() const { return congestion_.pacingRateBytesPerUs(rtt_.smoothedUs()); }
  bool draining() const { return drainEndUs_ != 0; }  // a drain of the path's minimum RTT is under way
  // The engine read nothing for a while (SocketProtocol::ReadingPaused): the acknowledgements and pongs of
  // packets sent before nowUs waited in the kernel, and their round trips measure the pause, not the path
  // (a 2.5 s stall put 2.4 s in the maximum and 576 ms in the smoothed RTT). They give no RTT sample.
  void DiscardRttSamplesBefore(uint64_t nowUs) { rttSamplesFromUs_ = nowUs; }
  double bandwidthBytesPerUs() const { return congestion_.bandwidthBytesPerUs(); }
  // Time the oldest queued message has waited (µs; 0 when none).
  uint64_t QueueDelayUs(uint64_t nowUs) const;
  uint64_t reassemblyUsed() const { return reassemblyUsed_; }
  uint64_t budgetHeld() const { return budgetHeld_; }  // what this connection holds of its budget
  // The bytes the receiving channels' message slots hold allocated: what reassemblyUsed() counts, and
  // whatever a slot kept past its message (nothing: tests and the fuzzer check that).
  size_t reassemblyHeld() const;
  // What the connection keeps allocated for its bookkeeping: records of sent packets, and the slots of
  // its channels' queues (sending, reliable receiving out of order, and incomplete unreliable messages).
  size_t sentRecords() const { return sent_.size(); }
  // Bytes the records of sent packets hold, their lists of fragments included (a scan: for stats and tests).
  size_t sentRecordsHeld() const;
  size_t queueSlots() const;
  static size_t receiveSlotBytes();  // one slot of a reliable receive queue, as the bound counts it
  static size_t heldMessageBytes();  // what a held message costs beyond its bytes and flags, as the bound counts it
  // What the bound counts for a message held: its bytes, its flags (one per fragment, 1 unfragmented), and
  // heldMessageBytes().
  static uint64_t HeldCost(uint64_t length, uint64_t flags) { return length + flags + kHeldMessageBytes; }
  // Whether the running counts that spare the per-packet paths a walk over the channels (unsent messages,
  // incomplete unreliable messages, the queues' counted and drained slots, channels to release, the held
  // messages' flags and overheads) agree with what they count, recomputed by that walk: for the fuzzer and
  // tests.
  bool CountsAgree() const;
  // Room kept for declared losses, to see one proved wrong: none until the first loss, none again once
  // they are settled.
  size_t lostRecords() const { return recentlyLost_.capacity(); }
  size_t spareBytes() const { return spareBytes_; }  // buffers kept for the next messages sent

 private:
  static constexpr size_t kPartialSlots = 8;  // incomplete unreliable/sequenced messages per channel
  // An incomplete unreliable/sequenced message with no fragment for this long (or 4 smoothed RTTs, if
  // longer) has lost one: a sender sends a message's fragments one after another.
  static constexpr uint64_t kIdlePartialUs = 250000;
  static constexpr uint64_t kNotSent = UINT64_MAX - 1;
  static constexpr uint64_t kAcked = UINT64_MAX;

  struct OutMessage {
    uint8_t channel = 0;
    uint64_t sequence = 0;
    uint64_t queuedUs = 0;
    std::vector<uint8_t> data;
    uint32_t fragments = 1;  // 1: sent whole
    uint32_t acked = 0;      // fragments acknowledged
    uint32_t unsent = 0;     // fragments never sent yet (unreliable/sequenced: sent once)
    std::vector<uint64_t> lastSent;  // per fragment: the packet number it was last sent in, kNotSent, kAcked
  };
  struct Chunk {
    uint8_t channel;
    // Queued for a resend: part of a message the receiver had acknowledged fragments of (so it takes the
    // rest, whatever its reassembly bound), when its loss was found.
    bool started = false;
    uint64_t sequence;
    uint32_t fragment;
  };
  // Orders resends (a min-heap's "less"): first the fragments of messages the receiver has started, which
  // it always takes, then lowest message first. A full reassembly bound makes the receiver refuse
  // fragments of messages it has not started (other than each channel's next one): resent in the order
  // their losses were found, the fragments it needs next could wait behind thousands it refuses, each
  // refusal read as a loss, at the minimum window. The order is for speed; the receiver's taking each
  // channel's next message is what keeps every channel going.
  struct ResendLater {
    bool operator()(const Chunk& a, const Chunk& b) const {
      if (a.started != b.started) return b.started;
      if (a.sequence != b.sequence) return a.sequence > b.sequence;
      if (a.channel != b.channel) return a.channel > b.channel;
      return a.fragment > b.fragment;
    }
  };
  struct SendChannel {
    ChannelMode mode = ChannelMode::kReliable;
    uint64_t nextSequence = 0;
    // Reliable: every message not fully acknowledged, in sequence order; others: messages not fully sent.
    Ring<std::unique_ptr<OutMessage>> messages;
    size_t firstUnsent = 0;  // reliable: index of the first message with fragments never sent
    bool completed = false;  // a message was acknowledged whole since the last release (in completedChannels_)
  };
  struct SentPacket {
    uint64_t number = 0;
    uint64_t sentUs = 0;
    uint32_t bytes = 0;
    bool ackEliciting = false;
    bool inFlight = false;  // counted in bytesInFlight_
    bool settled = true;    // acknowledged or declared lost
    bool acked = false;
    // Delivery-rate sampling (draft-cheng-iccrg-delivery-rate-estimation): the connection's delivered
    // bytes, the time they reached that figure and the send time of the newest packet acknowledged then.
    uint64_t deliveredAtSend = 0, deliveredUsAtSend = 0, firstSentUsAtSend = 0;
    uint64_t carriedAtSend = 0;  // carried_ when it was sent
    bool appLimited = false;     // sent while the application left the window unused
    std::vector<Chunk> chunks;  // reliable fragments it carried
  };
  struct InMessage {
    bool used = false;
    bool passedOver = false;  // reliable, over the maximum: not delivered, its sequence passed over
    bool partial = false;     // unreliable or sequenced (counted in partialsUsed_)
    uint32_t lastAfterUs = 0;  // its latest new fragment, after firstUs (in the bools' padding: 88 B a slot)
    uint64_t sequence = 0;
    uint64_t firstUs = 0;
    uint64_t length = 0;
    FragmentStore store;  // its bytes, made as they come
    uint32_t fragments = 0, received = 0;
    uint64_t lastUs() const { return firstUs + lastAfterUs; }
    void FragmentAt(uint64_t nowUs) { lastAfterUs = static_cast<uint32_t>(std::min<uint64_t>(nowUs - firstUs, UINT32_MAX)); }
  };
  // What the bound counts: a slot at least what it costs (this InMessage), and a held message, beyond its
  // bytes and a flag per fragment, at least what its buffer costs (an allocation's header). Counted as their
  // bytes alone, messages of a few bytes held out of order took 1.5 times the bound.
  static constexpr size_t kReceiveSlotBytes = 128;
  static constexpr size_t kHeldMessageBytes = 256;
  static_assert(sizeof(InMessage) <= kReceiveSlotBytes, "a receive slot costs no more than the bound counts");
  struct ReceiveChannel {
    ChannelMode mode = ChannelMode::kReliable;
    uint64_t nextDeliver = 0;        // reliable: the next sequence to deliver
    bool anyDelivered = false;       // sequenced
    uint64_t lastDelivered = 0;      // sequenced
    // Reliable: messages from nextDeliver on that arrived out of order ([k] is nextDeliver + k), as far as
    // the window allows; it grows with the reordering it sees, not with the window.
    Ring<InMessage> pending;
    std::vector<InMessage> partials;  // unreliable and sequenced: incomplete fragmented messages (made at the first)
    bool listedDrained = false;       // in drainedChannels_
  };

  // Sending.
  SendResult Admit(uint8_t channel, size_t size) const;
  void Enqueue(uint8_t channel, std::unique_ptr<OutMessage> message, uint64_t nowUs);
  bool HasMessages() const;  // messages, resends or probes to send
  // What PollPacket() may send now: probes, and messages unless they wait for this side's settings to be delivered.
  bool MessagesReady() const { return probesToSend_ > 0 || (!messagesWaitForSettings_ && HasMessages()); }
  void PruneRetransmits();
  bool CanSend(uint64_t nowUs) const;
  PacketView MakePacket(uint64_t nowUs, bool withMessages);  // empty when it had nothing to put in a packet
  bool WriteAck(uint8_t* out, size_t capacity, size_t* size, uint64_t nowUs);
  // Writes fragment `fragment` of `message` if it fits; false otherwise.
  bool WriteChunk(const OutMessage& message, uint32_t fragment, uint8_t* out, size_t capacity, size_t* size) const;
  OutMessage* FindReliable(uint8_t channel, uint64_t sequence);
  void ReleaseAcked(SendChannel& channel);
  SentPacket* FindSent(uint64_t number);
  std::unique_ptr<OutMessage> TakeMessage();
  void RecycleMessage(std::unique_ptr<OutMessage> message);

  // Acknowledgements and loss.
  void OnAck(uint64_t largest, uint64_t ackDelayUs, const std::vector<ReceivedPackets::Range>& ranges, uint64_t nowUs);
  // Marks a packet acknowledged or lost; true when it was counted in flight (and no longer is).
  bool Settle(SentPacket& packet);
  void OnPacketAcked(SentPacket& packet, uint64_t nowUs);
  void OnPacketLost(SentPacket& packet, uint64_t nowUs);
  // A reliable fragment the receiver has (acknowledged, or in a packet declared lost and acknowledged after).
  void CreditFragment(const Chunk& chunk);
  void DetectLosses(uint64_t nowUs);
  // Starts a drain when the path's minimum RTT is stale (RttEstimator::pathMinUs) and ends it when its time
  // is up: checked at each ACK, as a drain needs them to measure.
  void UpdateDrain(uint64_t nowUs);
  // At least half the window is in flight: the flow is limited by it, not by what the application sends.
  bool WindowInUse() const { return bytesInFlight_ * 2 >= congestion_.window(); }
  void OnSpuriousLosses(const std::vector<ReceivedPackets::Range>& ranges, uint64_t nowUs);
  // Records of declared losses older than a few RTTs go (a packet that late was lost, or too late for the
  // thresholds to follow), and their room with the last: an idle connection keeps none, however lossy its past.
  void ForgetOldLosses(uint64_t nowUs);
  void OnProbeTimeout(uint64_t nowUs);
  uint64_t ProbeTimeoutBaseUs() const;  // RFC 9002's PTO before backoff
  uint64_t ProbeTimeoutUs() const;
  uint64_t ProbeTimeoutStartUs() const;
  void SettleFront();
  void SkipPacketNumber(uint64_t nowUs);  // takes the next number out of use: a settled record never sent
  uint64_t SkipGap() const;               // packets before the next skipped number
  bool AcksSkippedNumber(const std::vector<ReceivedPackets::Range>& ranges) const;

  void RefillPacing(uint64_t nowUs);
  // From one ping to the next on this side's own timer.
  uint64_t PingSpanUs() const { return config_.followsPings ? 2 * config_.pingIntervalUs : config_.pingIntervalUs; }
  void EnsureSentCapacity(uint64_t nowUs);  // room for one more record (past the bound, the oldest is lost)

  // Receiving.
  bool ProcessFrames(const uint8_t* data, size_t size, uint64_t nowUs, bool apply, bool* ackEliciting, bool* refused,
                     bool* withSettings);
  bool OnMessageFrame(uint8_t channel, uint64_t sequence, uint64_t length, uint64_t fragment, bool fragmented,
                      const uint8_t* data, size_t size, uint64_t nowUs, bool* refused);
  void DeliverReliable(ReceiveChannel& channel);
  void PassOver(ReceiveChannel& channel, uint64_t sequence);  // an oversized reliable message
  // Slots in a reliable channel's queue up to [offset]: false, counted, when growing it would take the
  // memory held past the reassembly bound.
  bool MakeRoomInQueue(ReceiveChannel& channel, uint64_t offset, uint64_t nowUs);
  size_t QueueSlotBytes() const;  // what the reliable channels' queues hold against the bound
  // Every change to a reliable channel's queue goes through here: it keeps the counts below.
  template <typename Change>
  void ChangeQueue(ReceiveChannel& channel, Change change);
  // Whether `extraBytes` more stay within the reassembly bound, once the queues that have drained (but one,
  // `growing`) have given their slots back if need be.
  bool FitsBound(uint64_t extraBytes, const ReceiveChannel* growing = nullptr);
  static constexpr size_t kFreeQueueSlots = Ring<InMessage>::kFirstCapacity;  // a queue's first slots: not counted
  // A queue's slots counted against the bound (those beyond its first ones), and whether it holds such
  // slots empty: what FitsBound() gives back.
  static size_t CountedSlots(const Ring<InMessage>& queue) { return queue.capacity() > kFreeQueueSlots ? queue.capacity() - kFreeQueueSlots : 0; }
  static bool Drained(const Ring<InMessage>& queue) { return queue.empty() && CountedSlots(queue) > 0; }
  void SamplePongRtt(uint64_t elapsedUs, uint64_t delayUs);  // elapsed: ping sent to pong received
  void OnSettings(bool followsPings, uint64_t maxMessageBytes, const uint8_t* modes, size_t count);
  // Queues a message for PollMessage; nullptr (counted) when none may be delivered.
  DeliveredMessage* Deliver(uint8_t channel, const uint8_t* data, size_t size);
  void DeliverWhole(uint8_t channel, InMessage& slot);  // a reassembled message, its buffer taken; its slot is freed after
  bool StartInMessage(InMessage& slot, uint64_t sequence, uint64_t length, bool fragmented, uint64_t nowUs, bool headOfLine);
  void FreeInMessage(InMessage& slot);
  // Stores a fragment of a started message (its block made if need be); false, counted, when the memory
  // for it was refused.
  bool StoreFragment(InMessage& slot, uint64_t fragment, const uint8_t* data, size_t size, uint64_t nowUs);
  // Frees every message and queue slot held and sets stalled_.
  void Stall();
  // Frees idle incomplete messages of any channel (kIdlePartialUs), the longest idle first, until
  // `cost` more (HeldCost) fit in the bound or none is left, for a message `starting` will take.
  void EvictIdlePartials(uint64_t cost, uint64_t nowUs, const ReceiveChannel& starting);
  void ExpireFragments(uint64_t nowUs);
  // A channel's slots for incomplete messages go when it has none left (else a peer could leave them on every
  // channel with a frame each, outside the bound).
  static void GiveBackPartials(ReceiveChannel& channel);

  DeliveryConfig config_;
  uint32_t connection_;
  DeliveryStats stats_;
  // Messages delivered and not yet polled, from nextDelivered_ on; a burst's room is kept up to a few slots.
  std::vector<DeliveredMessage> deliveredMessages_;
  size_t nextDelivered_ = 0;
  static constexpr size_t kKeptDeliveredSlots = 64;
  int announcementsDue_ = 0;  // packets of settings alone still to poll (AnnounceSettings)
  uint64_t reassemblyLimit_;

  std::vector<SendChannel> sendChannels_;
  std::vector<ReceiveChannel> receiveChannels_;
  // Reliable fragments lost or probed, sent before new data, lowest message first.
  std::priority_queue<Chunk, std::vector<Chunk>, ResendLater> retransmits_;
  std::vector<std::unique_ptr<OutMessage>> spareMessages_;
  static constexpr size_t kSpareMessages = 256;
  static constexpr size_t kSpareBytes = 256 * 1024;
  size_t spareBytes_ = 0;  // the capacity of the spare messages' buffers
  uint64_t queuedBytes_ = 0;
  uint64_t queuedMessages_ = 0;
  // Counts and lists that spare the per-packet paths a walk over every channel (up to 255): messages with
  // fragments never sent, channels with a message acknowledged whole, incomplete unreliable messages.
  uint64_t unsentMessages_ = 0;
  std::vector<uint8_t> completedChannels_;
  size_t partialsUsed_ = 0;
  // While partialsUsed_ > 0: at most the earliest start, and the earliest latest fragment, of the incomplete
  // messages (exact after each walk over them): until one may have expired or gone idle, nothing is walked.
  uint64_t partialsFirstUs_ = 0, partialsLastUs_ = 0;
  size_t countedQueueSlots_ = 0;  // slots of the reliable channels' queues counted against the bound
  size_t drainedQueues_ = 0;      // queues empty with counted slots: what FitsBound() can give back
  // The channels whose queue drained since FitsBound() last gave slots back (some may have refilled since):
  // it walks these, not every channel. Each entry was made by a frame that drained a queue.
  std::vector<uint8_t> drainedChannels_;
  uint64_t releasedBytes_ = 0;
  uint64_t releasedMessages_ = 0;

  // Sent packets from sentBase_ to nextPacket_ − 1, in a ring.
  std::vector<SentPacket> sent_;
  size_t chunkCapacity_ = 0;  // Chunk entries the records' lists have room for, in all
  uint64_t sentBase_ = 0;
  uint64_t nextPacket_ = 0;
  uint64_t largestAcked_ = 0;
  bool anyAcked_ = false;
  uint64_t bytesInFlight_ = 0;
  uint64_t lastAckElicitingSentUs_ = 0;
  uint32_t ackElicitingInFlight_ = 0;
  uint64_t lastDataSentUs_ = 0;         // the last packet with reliable fragments
  uint32_t dataPacketsInFlight_ = 0;    // packets with reliable fragments, in flight
  uint64_t lossTimeUs_ = 0;  // 0: none
  uint32_t probeCount_ = 0;
  uint64_t drainEndUs_ = 0;  // 0: no drain under way
  uint64_t rttSamplesFromUs_ = 0;  // packets sent before this give no RTT sample (DiscardRttSamplesBefore)
  // Reordering (RFC 9002 §6.1 lets both thresholds adapt): packets declared lost lately, so that an
  // acknowledgement of one proves the loss wrong, and the thresholds it raised. Without this, jitter
  // that reorders packets read as loss and congestion, and a path with ±3 ms of jitter carried 2 Mbit/s.
  struct LostRecord {
    uint64_t number;
    uint64_t sentUs;
    uint64_t reduction;  // the window reduction its loss belongs to (CongestionControl::OnLost), 0: none
    // The reliable fragments it carried, credited if it proves only late: kept here, not read from its record
    // of sent packets, which the ring may have started over since (EnsureSentCapacity).
    std::vector<Chunk> chunks;
  };
  std::vector<LostRecord> recentlyLost_;  // oldest first, at most kRecentlyLost
  uint64_t packetThreshold_ = 0;
  uint32_t timeThresholdEighths_ = 0;
  uint64_t lastProbeTimeoutUs_ = 0;
  uint32_t probesToSend_ = 0;
  bool reliableFirst_ = false;  // which kind of message the next packet takes first (they alternate)
  size_t reliableTurn_ = 0;     // the reliable channel whose new messages the next packet takes first (they take turns)

  // Congestion control, delivery-rate samples and pacing.
  CongestionControl congestion_;
  uint64_t delivered_ = 0;          // bytes of in-flight packets acknowledged, in all
  // delivered_ and the bytes of packets lost at random (CongestionControl::OnLost), which took the
  // bottleneck's time all the same: the delivery-rate samples count them.
  uint64_t carried_ = 0;
  // While the application leaves the window unused: delivered_ once the packets in flight then are
  // acknowledged (their rate samples show the application's rate, not the path's); 0 when not.
  uint64_t appLimitedUntil_ = 0;
  uint64_t deliveredUs_ = 0;        // when delivered_ last grew
  uint64_t firstSentUs_ = 0;        // the send time of the packet acknowledged then
  double pacingCredit_ = CongestionControl::kInitialWindow;  // bytes that may go out now
  uint64_t pacingUpdatedUs_ = 0;

  RttEstimator rtt_;
  ClockSync clock_;

  // Receiving.
  ReceivedPackets received_;
  ReceivedPackets refusedPackets_;  // seen but not acknowledged: some of their reliable data did not fit
  bool ackPending_ = false;
  bool ackImmediately_ = false;
  uint32_t elicitingSinceAck_ = 0;
  uint64_t ackDeadlineUs_ = 0;
  uint64_t largestReceivedUs_ = 0;  // when the largest packet number arrived (for the ACK's delay)
  uint64_t reassemblyUsed_ = 0;
  uint64_t heldExtraBytes_ = 0;  // the held messages' fragment flags and kHeldMessageBytes each: counted with their bytes
  // What messages may still be taken ahead of their data (bytes): each unreliable or sequenced message
  // started takes its length, and so does the next message of a reliable channel taken past the reassembly
  // bound; each byte of data received gives two back, up to the bound. A message takes its whole length at
  // its first fragment (its memory is made as its fragments come): without the credit a peer whose messages
  // are never completed (each evicted or passed by the next) could take one of up to maxMessageBytes for
  // every fragment frame of a few bytes it sent, and with a packet a reliable channel one on each.
  uint64_t bufferCredit_;
  // Where the credit stops growing: the bound, and never below the largest message, which must be able to
  // start (a bound set below it is for tests).
  uint64_t BufferCreditLimit() const { return std::max<uint64_t>(reassemblyLimit_, config_.maxMessageBytes); }
  std::vector<ReceivedPackets::Range> ackScratch_;

  // The reassembly budget shared with other connections (reassembly_budget.h), which keeps them in an
  // intrusive list in the order of their last new fragment.
  friend class ReassemblyBudget;
  ReassemblyBudget* budget_ = nullptr;
  DeliveryCore* budgetPrev_ = nullptr;
  DeliveryCore* budgetNext_ = nullptr;
  bool budgetListed_ = false;
  uint64_t budgetHeld_ = 0;
  uint64_t lastFragmentUs_ = 0;  // the last new fragment stored, of any message (kept by the budget's Progress)
  // Whether the budget may evict this connection: no new fragment for kBudgetIdleUs (or 4 smoothed RTTs).
  bool IdleForBudget(uint64_t nowUs) const;
  // Makes room for others: frees what this connection holds, stalling it if a reliable message was among it.
  // True when it stalled it.
  bool EvictForBudget();
  static constexpr uint64_t kBudgetIdleUs = 1000000;
  // A slot's share of the budget: its message's cost, or nothing.
  static uint64_t BudgetCost(const InMessage& slot) { return slot.used && !slot.passedOver ? HeldCost(slot.length, slot.fragments) : 0; }
  // Reliable messages started and not complete, and when the peer last sent a new fragment of one (the stall timer).
  uint64_t incompleteReliable_ = 0;
  uint64_t reliableActivityUs_ = 0;
  bool stalled_ = false;

  // Settings: the peer's, and whether it has shown (by a PONG) that it has this side's.
  PeerSettings peer_;
  Mismatch mismatch_ = Mismatch::kNone;
  // Until a pong shows the peer has them, every packet carries this side's settings, ahead of its
  // messages: the peer knows them before it delivers any message of this side's.
  bool settingsDelivered_ = false;
  bool announcing_ = false;  // while an announced packet is made: a packet of settings alone is worth sending
  // The next message frame did not fit beside the settings (many channels, a long ACK): each packet would
  // carry the settings and no message, and PollPacket() give them as fast as it is polled. Messages wait for the pong
  // that ends the settings' ride, a round trip or so.
  bool messagesWaitForSettings_ = false;

  // Skipped packet numbers (kPacketSkipKeyBytes above).
  static constexpr uint64_t kPacketSkipGapMin = 256;
  static constexpr uint64_t kPacketSkipGapSpan = 1024;
  static constexpr size_t kSkippedRemembered = 8;  // skipped numbers an ACK is checked against
  bool skipping_ = false;
  std::array<uint8_t, kPacketSkipKeyBytes> skipKey_{};
  uint64_t skipsMade_ = 0;
  uint64_t packetsUntilSkip_ = 0;  // while skipping_
  // The last kSkippedRemembered numbers skipped (the first skipsMade_ of them): an ACK of one is forged.
  std::array<uint64_t, kSkippedRemembered> skippedNumbers_{};

  // Ping/pong.
  uint64_t nextPingUs_ = 0;
  // Until a pong shows the peer has this side's settings, the pings that carry them go again after 200 ms,
  // then 400, 800, then every second (never later than the ping span): a lost first ping would otherwise
  // hold them back a whole interval (a minute, at pingIntervalMs 60,000), and the peer's connect() with
  // them. A peer that never answers is the connection's timeout's to end.
  static constexpr uint64_t kSettingsRetryFirstUs = 200'000;
  static constexpr uint64_t kSettingsRetryMostUs = 1'000'000;
  uint64_t settingsRetryUs_ = kSettingsRetryFirstUs;
  uint64_t nextPingId_ = 0;
  // When the last kPingsRemembered pings left, by id: a pong's echo must be one of them (AnswersPing), or
  // the peer could choose the round trip it makes this side measure.
  static constexpr uint64_t kPingsRemembered = 16;
  std::array<uint64_t, kPingsRemembered> pingSentUs_{};
  bool AnswersPing(uint64_t id, uint64_t echo) const {
    return id < nextPingId_ && nextPingId_ - id <= kPingsRemembered && pingSentUs_[id % kPingsRemembered] == echo;
  }
  bool anyPingAnswered_ = false;
  bool pongPending_ = false;
  uint64_t pongId_ = 0, pongEcho_ = 0, pongReceivedUs_ = 0;  // the last ping answered
  uint64_t pongDueUs_ = 0;  // a pending pong goes out by then, or earlier with any other packet
};

}  // namespace volley::delivery

namespace volley::delivery {

// Polls `core` for the packets due now and hands each to send(data, size), at most kMaxPacketsPerDrain.
template <typename SendFn>
void SendDuePackets(DeliveryCore& core, uint64_t nowUs, SendFn&& send) {
  for (int i = 0; i < kMaxPacketsPerDrain; ++i) {
    const PacketView packet = core.PollPacket(nowUs);
    if (!packet) return;
    send(packet.data, packet.size);
  }
}

}  // namespace volley::delivery
