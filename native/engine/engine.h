// The engine: one I/O thread that owns many UDP sockets. It reads with recvmmsg into receive slabs,
// writes queued send slabs with sendmmsg, and hands JavaScript a list of events to drain in one call.
//
// Threads: every public method except the constructor's callback runs on the JavaScript thread.
// The I/O thread talks back only through the event list and the wake callback. A small send slab may be
// sent by the JavaScript thread itself while the I/O thread sleeps (SendInline, under ioMutex_).
#pragma once

#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "engine/deadline_timer.h"
#include "engine/event_fd.h"
#include "engine/layout.h"
#include "engine/released_slabs.h"
#include "engine/reply_source.h"
#include "engine/socket_stats.h"
#include "engine/udp_socket.h"
#include "protocol/delivery/ring.h"
#include "sockets/socket_protocol.h"
#include "util/timer_wheel.h"

namespace volley {

struct Event {
  int32_t words[kEventWords];
};

class Engine {
 public:
  static constexpr uint32_t kMaxReceiveSlabs = 256;
  static constexpr uint32_t kMaxSendSlabs = 256;

  // wake() is called on the I/O thread when events become available after the list was empty.
  explicit Engine(std::function<void()> wake);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Before Start: lets the JavaScript thread receive itself between light turns (ReceiveInline), which
  // its owner must then do whenever ReceivingInline() says so. Off by default.
  void EnableInlineReceive(bool on) { inlineReceive_ = on; }
  bool Start(SystemError* error);
  // Closes every socket, stops and joins the I/O thread. Idempotent.
  void Stop();

  // Registers memory owned (and kept alive) by the caller. Returns the slab id, or -1 when full.
  int AddReceiveSlab(uint8_t* data, size_t size);

  // coalesceNs: how long the thread may wait for more datagrams before handing a short batch over, when
  // they arrive densely (interrupt moderation); the wait holds every socket back, so the smallest setting
  // of the open sockets bounds it (0: the engine never waits).
  // protocol (may be null: a raw socket) runs on the I/O thread over the socket's datagrams.
  // id: from the caller's SocketIds (socket_ids.h), which knows the ids JavaScript still holds.
  // replySource: a server's, bound to a wildcard address: the source its datagrams name (reply_source.h).
  void AddSocket(uint32_t id, std::unique_ptr<UdpSocket> socket, uint32_t batchSize, uint32_t coalesceNs,
                 std::shared_ptr<SocketStats> stats, std::unique_ptr<SocketProtocol> protocol = nullptr,
                 const ReplySource& replySource = ReplySource());
  // A control request for a socket's protocol (disconnect a peer, connect with a token, stop, ...).
  void Control(uint32_t socketId, uint32_t op, uint32_t arg, std::vector<uint8_t> data);
  void CloseSocket(uint32_t socketId);
  // Hands a filled send slab to the I/O thread. When it is done with it, the slab goes back through
  // releasedSlabs(), with a SEND_DONE event only when JavaScript waits for one (see released_slabs.h).
  void SubmitSendSlab(uint32_t slabId, uint8_t* data, size_t length);
  // Shared with JavaScript (an Int32Array over it); outlives the engine while JavaScript holds it.
  std::shared_ptr<ReleasedSlabs> releasedSlabs() const { return released_; }

  // Messages too large for a receive slab, waiting for JavaScript to take them.
  LargeMessages& largeMessages() { return *large_; }
  // Small sends JavaScript left to the I/O thread because that thread had woken and waited for its turn.
  uint64_t inlineSendsYielded() const { return inlineSendsYielded_.load(std::memory_order_relaxed); }

  // Inline receive (see ReceiveInline). The descriptor JavaScript's loop watches while it receives: the
  // engine's epoll set, readable when a socket, the timer or a command is.
  int watchFd() const { return epollFd_; }
  // JavaScript thread: whether the I/O thread has left receiving to it (JavaScript then watches watchFd()).
  bool ReceivingInline() const { return receiver_.load(std::memory_order_acquire) == kReceiverJavaScript; }
  // JavaScript thread, when watchFd() is readable: one turn of the loop on this thread (receive, timers,
  // sends), its events left for JavaScript to drain at once. False when the I/O thread has the sockets
  // again (this turn found too much work, or that thread took them back): JavaScript stops watching.
  bool ReceiveInline();
  // JavaScript thread, between turns of ReceiveInline: looks at watchFd() for up to windowNs, without
  // sleeping (busy_poll.h). True when it is readable; false after the window, or once the I/O thread has
  // taken the sockets back.
  bool LookForReadable(uint64_t windowNs) const;
  // Any thread: wakes the I/O thread for commands or work left to it, taking the sockets back from
  // JavaScript if it had them.
  void WakeIoThread();

  // Moves pending events into *out (swapping buffers, so no allocation in steady state).
  void TakeEvents(std::vector<Event>* out);
  // Called after JavaScript has seen the batches: their slab space may be reused.
  void MarkDelivered(const Event* events, size_t count);

 private:
  struct ReceiveSlab {
    uint8_t* data = nullptr;
    size_t size = 0;
    size_t offset = 0;                      // I/O thread: next free byte
    uint64_t published = 0;                 // I/O thread: batches handed to JavaScript
    std::atomic<uint64_t> delivered{0};     // JavaScript thread: batches it is done with
  };

  // From `offset` on in slab `slabId`, a held socket's records wait (the others' are skipped).
  struct HeldSends {
    uint32_t slabId = 0;
    size_t offset = 0;
  };

  struct SocketState {
    uint32_t id = 0;
    uint32_t batchSize = kDefaultBatchSize;
    std::unique_ptr<UdpSocket> socket;
    std::shared_ptr<SocketStats> stats;
    bool readable = false;
    bool listed = false;  // in readable_
    bool gso = true;      // sends runs as UDP GSO messages; off once the kernel refused one
    // The kernel's drop counter (SO_MEMINFO) as last read: read when a receive drains a queue that may
    // have been full, now and then while it never drains, and at close. (Not SO_RXQ_OVFL: a control
    // message with every datagram cost 7 % of a saturated receive, and missed the drops after the last.)
    uint32_t kernelDropsSeen = 0;
    uint32_t fullBatchesSinceDropsRead = 0;
    size_t receiveBufferBytes = 0;  // SO_RCVBUF as the kernel granted it
    uint32_t coalesceNs = 0;
    std::unique_ptr<SocketProtocol> protocol;
    ReplySource replySource;  // protocol sockets
    bool stopping = false;  // a stop control was applied: close once the protocol has finished
    uint32_t timerId = 0;   // protocol sockets: its timer in protocolTimers_
    // Raw sockets whose datagrams the kernel refused for want of buffer space (EAGAIN, ENOBUFS): where
    // their records wait, slab by slab, in order. Empty, it holds no memory (a std::deque would: 10,000
    // client sockets, 6 MB).
    delivery::Ring<HeldSends> held;
  };

  struct Command {
    enum Kind { kAddSocket, kCloseSocket, kSendSlab, kAddReceiveSlab, kControl, kStop } kind;
    uint32_t id = 0;
    uint8_t* data = nullptr;
    size_t length = 0;
    SocketState* socket = nullptr;  // kAddSocket: ownership passes to the I/O thread
    uint32_t op = 0;                 // kControl
    std::vector<uint8_t>* payload = nullptr;  // kControl: owned by the command
  };

  // A submitted send slab, by its id. The slabs are passed over in the order they came; a raw socket the
  // kernel refuses holds its records where they are (HeldSends) and the pass goes on with the other
  // sockets', so one full send buffer never holds up another socket. A slab goes back to JavaScript
  // once the pass is done with it and no socket holds records in it.
  struct SendJob {
    uint8_t* data = nullptr;
    size_t length = 0;
    size_t offset = 0;    // the pass: next record to look at
    uint32_t heldBy = 0;  // sockets holding records of this slab
    bool queued = false;  // submitted and not yet released
    bool passed = false;  // the pass is done with it
    // Where the pass has looked up to: what a holding socket has there is its own to send.
    size_t passedUpTo() const { return passed ? length : offset; }
  };

  // Datagrams read by the last recvmmsg and not yet copied into a slab (kept while starved).
  struct ScratchState {
    SocketState* socket = nullptr;
    uint32_t next = 0;
    uint32_t count = 0;
  };

  // A close (or control) for a socket with held sends: it waits until they have gone out, so it never
  // overtakes them.
  struct DeferredCommand {
    // A close goes anyway after kMaxTeardownWaitUs. A control waits: only raw sockets hold sends, and
    // controls are for protocol sockets, so none is deferred today.
    uint64_t deferredAtUs = 0;
    Command command;
    std::unique_ptr<std::vector<uint8_t>> payload;
  };

  void Post(const Command& command);
  void Run();
  void RunCommands();
  bool ApplyCommand(const Command& command);  // false on kStop
  // kControl and kCloseSocket, once every send queued before them is done.
  void ApplySocketCommand(const Command& command, std::unique_ptr<std::vector<uint8_t>> payload);
  // The commands deferred for a socket whose held sends have all gone out, in the order they came.
  void ApplyDeferred(uint32_t socketId);
  // Closes and stops that have waited too long behind held sends: applied now (see kMaxTeardownWaitUs).
  void ApplyOverdueTeardowns();
  void CloseSocketNow(SocketState* state);
  void EnsureScratch(uint32_t batchSize);  // may throw std::bad_alloc, leaving the scratch as it was
  uint32_t FitScratch(uint32_t batchSize);  // EnsureScratch, halving the batch while memory refuses; the batch it fits

  // Receiving.
  void ReceiveRound();
  // After a turn that read datagrams densely: true, and how long to wait (for commands only) so that the
  // next batch is fuller.
  bool CoalesceWait(timespec* timeout);
  // JavaScript thread: sends a small slab at once, on this thread, when the I/O thread sleeps and nothing
  // is queued before it; false (nothing done) otherwise.
  bool SendInline(const Command& command);
  bool YieldInlineSend();  // counts a send SendInline leaves to the woken I/O thread; false
  // The I/O thread, while JavaScript receives: sleeps until it is handed the sockets back, or takes them
  // back when JavaScript leaves ready sockets unread (busy with other work) for a watchdog period.
  void Park(std::unique_lock<std::mutex>* turn);
  bool CommandsQueued();  // JavaScript's commands not yet taken by the I/O thread
  // After a turn (either thread's) that read datagrams: whether it was light enough for JavaScript to do
  // the next one itself.
  bool LightTurn() const;
  // The turn's work after the ready events are known, shared by Run and ReceiveInline.
  void ServiceSockets();
  // The I/O thread, after a sleep: takes ioMutex_ back, ahead of any SendInline.
  void TakeTurn(std::unique_lock<std::mutex>* turn);
  // Marks the sockets epoll reported readable (listed in readable_); true when the wake eventfd was among them.
  bool TakeReadyEvents(const epoll_event* ready, int count);
  // TakeReadyEvents over the count events of a first epoll_wait into ready (kReadyEvents of room), then over
  // more while each call fills the array: a turn learns of every ready socket.
  bool TakeAllReadyEvents(epoll_event* ready, int count);
  bool ReceiveBatch(SocketState* state);  // false when the socket has nothing more or we are starved
  bool CopyScratchToSlabs();              // false when starved
  bool AcquireSlabSpace(size_t bytes);
  bool SlabIsFree(const ReceiveSlab& slab) const;
  // Adds what the kernel dropped at the socket since the last read to its stats.
  void ReadKernelDrops(SocketState* state);
  // At a receive that emptied the queue (its last batch: the first count receiveHeaders_): ReadKernelDrops
  // if the queue may have been full since the last read.
  void SettleKernelDropsAtDrain(SocketState* state, uint32_t count);
  static constexpr uint32_t kFullBatchesPerDropsRead = 16;
  static constexpr size_t kLeastDatagramOverhead = 256;  // of a queued datagram's truesize, beyond its bytes
  void PublishBatch(SocketState* state, size_t start, uint32_t count, uint64_t bytes, bool datagrams = true);

  // Protocol sockets.
  void ReceiveProtocolBatch(SocketState* state, uint32_t count);
  // Sends the protocol's queued datagrams and hands its records to JavaScript (as far as slabs allow).
  void FlushProtocol(SocketState* state);
  // The first half of that: the outbox, through the network simulator if there is one, to sendmmsg.
  void SendProtocolDatagrams(SocketState* state);
  // One sendmmsg over the outbox from `first` (UDP GSO for runs to one address); returns the datagrams it
  // took (0 only when it has just turned GSO off: call again).
  size_t SendOutbox(SocketState* state, size_t first);
  // Sets the socket's timer to its protocol's next deadline when that is earlier than the timer.
  void ScheduleProtocol(SocketState* state);
  // Runs the protocols whose deadline has come, and hands over records that waited for slab space.
  void UpdateProtocols();
  // Tells the protocol sockets when reading has been paused for kReadingPauseNoticeUs (every slab full, or
  // records waiting for one) and when it goes on, so that no peer times out on what waits in the kernel.
  void TrackReadingPause();
  void CloseFinishedProtocols();

  // Sending.
  // One sendmmsg over sendHeaders_[first, first + count), counted in the socket's stats. Returns how many
  // went out, or -errno.
  int SendPrepared(SocketState* state, size_t first, size_t count);
  // Sends up to *budget datagrams (decremented) so that receiving gets its turn on a busy thread: first
  // the held sends of the sockets the kernel refused before (unless !retryHeld), then the slabs in order.
  void ProcessSends(size_t budget, bool retryHeld = true);
  // The pass over one slab, from job->offset, as far as the budget goes.
  void SendJobRecords(uint32_t slabId, SendJob* job, size_t* budget);
  // A raw socket's record at `record` into sendHeaders_[index] and its address and iovec.
  void PrepareRawSend(const SocketState* state, const uint8_t* record, uint32_t length, uint32_t index);
  // sendmmsg over the count prepared datagrams, past refusals of single datagrams (counted and reported).
  // Returns how many were dealt with: fewer than count when the kernel is out of buffer space.
  uint32_t SendRawRun(SocketState* state, uint32_t count);
  // Holds the socket's records of slab `slabId` from `offset` on (and lists the socket as held).
  void HoldSends(SocketState* state, uint32_t slabId, size_t offset);
  // Sends what a held socket holds, in order; true once nothing is held any more.
  bool SendHeld(SocketState* state, size_t* budget);
  // One held slab done with for this socket: it goes back to JavaScript when nothing else needs it.
  void DropHeldSlab(uint32_t slabId);
  // Counts a closing socket's held records as dropped and lets go of their slabs.
  void DropHeldSends(SocketState* state);

  void Emit(int32_t type, int32_t a = 0, int32_t b = 0, int32_t c = 0, int32_t d = 0, int32_t e = 0);
  // offerReceiving: the turn was light (Run): JavaScript, woken for these events, may do the next one.
  void FlushEvents(bool offerReceiving = false);

  std::function<void()> wake_;
  std::thread thread_;
  bool started_ = false;
  int epollFd_ = -1;
  EventFd wakeFd_;
  DeadlineTimer deadlineTimer_;

  // The I/O thread's state below (sockets, send jobs, protocols, timers, the deadline timer) belongs to
  // whichever thread holds this: the I/O thread for each whole turn, releasing it only while it sleeps
  // (epoll_wait, the coalescing wait), and the JavaScript thread for a small send while it sleeps
  // (SendInline). Taken before commandMutex_ and eventMutex_, never after.
  std::mutex ioMutex_;
  std::atomic<bool> ioWantsTurn_{false};  // the I/O thread woke and waits for ioMutex_: SendInline stands back
  bool sendingInline_ = false;            // SendInline is sending (counted in batchesOutInline)
  std::atomic<uint64_t> inlineSendsYielded_{0};
  // Who reads the sockets: the I/O thread, or (between request/response traffic's light turns) the
  // JavaScript thread itself, woken by its own loop, which saves a wake-up of the I/O thread and a
  // hand-over per datagram. The I/O thread parks on parkFd_ meanwhile.
  static constexpr int kReceiverIoThread = 0;
  static constexpr int kReceiverJavaScript = 1;
  std::atomic<int> receiver_{kReceiverIoThread};
  std::atomic<uint64_t> inlineTurns_{0};  // JavaScript's turns: the parked thread's watchdog reads them
  std::atomic<bool> javaScriptLate_{false};  // the watchdog took reading back; cleared when JavaScript drains
  EventFd parkFd_;
  bool inlineReceive_ = false;  // EnableInlineReceive
  bool turningInline_ = false;  // in ReceiveInline's turn (FlushEvents does not wake JavaScript: it drains next)

  // JavaScript thread -> I/O thread.
  std::mutex commandMutex_;
  std::vector<Command> commands_;
  std::vector<Command> commandsInFlight_;  // I/O thread

  // I/O thread -> JavaScript thread.
  std::mutex eventMutex_;
  std::vector<Event> events_;
  std::vector<Event> localEvents_;  // I/O thread, flushed once per loop turn

  // Receive slabs: the table never moves, so both threads can hold pointers into it.
  std::unique_ptr<ReceiveSlab[]> receiveSlabs_;
  std::atomic<uint32_t> receiveSlabsAdded_{0};  // JavaScript thread
  uint32_t receiveSlabCount_ = 0;                // I/O thread's view
  uint32_t currentSlab_ = 0;
  std::atomic<bool> starved_{false};
  bool starvedReported_ = false;

  // I/O thread state.
  std::unordered_map<uint32_t, std::unique_ptr<SocketState>> sockets_;
  std::vector<SocketState*> readable_;
  ScratchState scratch_;
  netcode::Clock clock_;           // read once per loop turn
  uint32_t protocolSockets_ = 0;
  // Protocol timers: one per protocol socket, at the deadline its protocol gave last (a timer that fires
  // early finds nothing to do and is set again), so 10,000 client sockets cost nothing while idle.
  TimerWheel protocolTimers_;
  std::vector<SocketState*> timerOwners_;  // by timer id
  std::vector<uint32_t> freeTimerIds_;
  std::vector<SocketState*> stopping_;     // protocol sockets told to stop, not closed yet
  std::shared_ptr<LargeMessages> large_ = std::make_shared<LargeMessages>();
  std::shared_ptr<ReleasedSlabs> released_ = std::make_shared<ReleasedSlabs>();
  void ReleaseSendSlab(uint32_t slabId);
  void RefreshClock();  // clock_.monotonicUs from CLOCK_MONOTONIC
  std::vector<SocketState*> recordsWaiting_;  // protocol sockets whose records did not all fit in the slabs
  std::vector<SocketState*> recordsResuming_;  // those being handed over (UpdateProtocols)
  uint64_t readingPausedUs_ = 0;   // when reading was last seen paused, from then on (0: reading)
  bool readingPauseTold_ = false;  // the protocols were told of this pause
  uint32_t turnReceived_ = 0;      // datagrams read in this loop turn
  bool turnDense_ = false;         // one socket had more than one waiting: its datagrams stream in
  uint32_t turnBatchSize_ = 0;     // the largest batch size among the sockets read this turn
  // coalesceNs → how many open sockets have it. A wait holds back every socket's datagrams, not only those
  // of the sockets that streamed: it is bounded by the smallest setting of all.
  std::map<uint32_t, uint32_t> coalesceSettings_;
  uint64_t lastDenseTurnNs_ = 0;   // when the previous turn that read datagrams ended
  uint32_t scratchCapacity_ = 0;
  std::unique_ptr<uint8_t[]> scratchHeads_;  // kReceiveHeadSize per slot, contiguous
  std::unique_ptr<uint8_t[]> scratchTails_;  // kReceiveSlotSize - kReceiveHeadSize per slot
  std::vector<mmsghdr> receiveHeaders_;
  std::vector<iovec> receiveIov_;  // two per slot: head, tail
  std::vector<sockaddr_in6> receiveNames_;
  std::vector<netcode::ReceivedDatagram> received_;  // a protocol socket's batch, as its protocol takes it

  std::vector<SendJob> sendJobs_;     // by slab id
  std::vector<uint32_t> sendRing_;    // slab ids in the order they came, not yet passed over
  size_t sendHead_ = 0;
  size_t sendCount_ = 0;
  std::vector<SocketState*> sendHeld_;    // sockets with held sends: retried every turn (about 1 ms apart)
  std::vector<uint32_t> heldReleased_;    // ProcessSends: the sockets whose held sends all went, this pass
  std::deque<DeferredCommand> deferred_;  // in the order they came
  std::vector<mmsghdr> sendHeaders_;
  std::vector<iovec> sendIov_;
  std::vector<sockaddr_in6> sendNames_;
  // UDP GSO for protocol sockets (SocketState::gso): runs of up to kMaxGsoSegments datagrams, kMaxGsoBytes in all.
  static constexpr size_t kMaxGsoSegments = 64;
  static constexpr size_t kMaxGsoBytes = 65000;
  // Each message's control data: a GSO segment size, then the source a wildcard-bound server names
  // (reply_source.h), in 8-byte words.
  static constexpr size_t kSendControlWords = (CMSG_SPACE(sizeof(uint16_t)) + ReplySource::kControlBytes + 7) / 8;
  std::vector<uint64_t> sendControl_ = std::vector<uint64_t>(kMaxBatchSize * kSendControlWords);
  std::vector<uint32_t> sendRuns_ = std::vector<uint32_t>(kMaxBatchSize);
};

}  // namespace volley
