// The engine's lifecycle, its thread's loop, and the commands and events it trades with JavaScript. The
// loop's work lives beside it: engine_receive.cc (reading batches into slabs), engine_send.cc (sending what
// JavaScript queued) and engine_protocols.cc (the sockets a protocol drives).
#include "engine/engine.h"

#include <poll.h>
#include <pthread.h>
#include <sodium.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <algorithm>
#include <new>
#include <cstring>
#include <system_error>

#include "util/free_list.h"
#include "util/monotonic_clock.h"
#include "engine/send_records.h"

namespace volley {

namespace {

constexpr uint64_t kWakeToken = 0;  // epoll data of the wake eventfd; sockets use their id (>= 1)
constexpr uint64_t kTimerToken = UINT64_MAX;  // epoll data of the deadline timer (ids are 32-bit)
constexpr int kReadyEvents = 256;
// epoll_wait calls per turn while each fills the array: a turn learns of every ready socket (up to 16,384),
// not of 256 only. With many sockets (a ClientPool) and a turn made long by due timers, a fixed number per
// turn let reading fall behind arrival for good: datagrams waited in the sockets' buffers until their
// connections timed out, half of 10,000 clients in one benchmark run.
constexpr int kMaxReadyCallsPerTurn = 64;
// Datagrams sent per loop turn before the turn moves on to receiving: sending and receiving share the
// thread fairly when one process both floods and reads.
constexpr size_t kSendBudgetPerTurn = 512;
// A slab up to this size is sent by the JavaScript thread itself when the I/O thread sleeps (SendInline): a
// request's reply, a ping, a few messages. Waking the I/O thread for them would cost two context switches
// and 10-20 µs of latency on a VM; a larger slab is worth handing over, so that the JavaScript thread gets
// back to its work and the I/O thread encrypts on the other core.
constexpr size_t kMaxInlineSendBytes = 2048;
// How long a close waits for the datagrams its socket holds while the kernel keeps refusing them (its path
// is down) before it is applied anyway: closing must end. What the socket still holds is then dropped, and
// counted.
constexpr uint64_t kMaxTeardownWaitUs = 1000000;
// Inline receive: a turn with up to this many datagrams (none of them from a socket that had several
// waiting) leaves the next turn to JavaScript; more, and the I/O thread batches again.
constexpr uint32_t kMaxInlineTurnDatagrams = 8;
// The parked I/O thread looks every this often whether JavaScript still takes its turns: when it has not
// taken one while a socket, the timer or a command was ready, that thread is busy, and the I/O thread takes
// the sockets back (their protocols' timers and acknowledgements must not wait for JavaScript).
constexpr int kParkWatchdogMs = 10;
// ...and after this many looks with no turn from JavaScript and nothing ready, it takes them back too, to
// sleep without a watchdog: an idle engine does not wake 100 times a second.
constexpr int kParkIdleLooks = 10;

// A control command's bytes that are a secret (a private key): wiped wherever the command ends, applied or not.
void WipeSecretPayload(uint32_t op, std::vector<uint8_t>* payload) {
  if (op == kControlRotatePrivateKey && payload != nullptr) sodium_memzero(payload->data(), payload->size());
}

// The same, when it leaves a scope by any path.
class SecretPayloadGuard {
 public:
  SecretPayloadGuard(uint32_t op, std::vector<uint8_t>* payload) : op_(op), payload_(payload) {}
  ~SecretPayloadGuard() { WipeSecretPayload(op_, payload_); }
  SecretPayloadGuard(const SecretPayloadGuard&) = delete;
  SecretPayloadGuard& operator=(const SecretPayloadGuard&) = delete;

 private:
  uint32_t op_;
  std::vector<uint8_t>* payload_;
};

}  // namespace


Engine::Engine(std::function<void()> wake)
    : wake_(std::move(wake)), receiveSlabs_(new ReceiveSlab[kMaxReceiveSlabs]), sendJobs_(kMaxSendSlabs), sendRing_(kMaxSendSlabs) {
  commands_.reserve(64);
  commandsInFlight_.reserve(64);
  events_.reserve(4096);
  localEvents_.reserve(4096);
}

Engine::~Engine() {
  Stop();
  // Sockets posted but never picked up by the I/O thread.
  for (const Command& command : commands_) {
    delete command.socket;
    if (command.kind == Command::kControl) WipeSecretPayload(command.op, command.payload);
    delete command.payload;
  }
  for (DeferredCommand& deferred : deferred_) WipeSecretPayload(deferred.command.op, deferred.payload.get());
  if (epollFd_ >= 0) close(epollFd_);
}

bool Engine::Start(SystemError* error) {
  if (started_) return true;
  if (!wakeFd_.valid()) {
    error->code = wakeFd_.error();
    error->syscall = "eventfd";
    return false;
  }
  epollFd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epollFd_ < 0) {
    error->code = errno;
    error->syscall = "epoll_create1";
    return false;
  }
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.u64 = kWakeToken;
  if (epoll_ctl(epollFd_, EPOLL_CTL_ADD, wakeFd_.fd(), &event) != 0) {
    error->code = errno;
    error->syscall = "epoll_ctl";
    return false;
  }
  // Without the timer the loop falls back to epoll timeouts (DeadlineTimer::ArmBy refuses).
  event.data.u64 = kTimerToken;
  if (deadlineTimer_.valid() && epoll_ctl(epollFd_, EPOLL_CTL_ADD, deadlineTimer_.fd(), &event) != 0) deadlineTimer_.Close();
  if (!parkFd_.valid()) inlineReceive_ = false;
  EnsureScratch(kDefaultBatchSize);
  try {
    thread_ = std::thread([this] { Run(); });
  } catch (const std::system_error& failure) {  // no exception may cross into N-API
    error->code = failure.code().value();
    error->syscall = "pthread_create";
    return false;
  }
  // Named for top -H, perf and gdb (and the tests that count engine threads) before Start returns.
  pthread_setname_np(thread_.native_handle(), "volley-io");
  started_ = true;
  return true;
}

void Engine::Stop() {
  if (started_) {
    Post(Command{Command::kStop});
    thread_.join();
    started_ = false;
  }
  // A stopped engine (or one that never started: a listen() that failed) may live on until the garbage
  // collector finds it: give back its descriptors and its memory now (a loop of failing listen()s that
  // never yields to a timer held 195 KB for each).
  if (epollFd_ >= 0) close(epollFd_);
  epollFd_ = -1;
  std::vector<Event>().swap(events_);
  std::vector<Event>().swap(localEvents_);
  std::vector<uint64_t>().swap(sendControl_);
  wakeFd_.Close();
  parkFd_.Close();
  deadlineTimer_.Close();
  scratchHeads_.reset();
  scratchTails_.reset();
  scratchCapacity_ = 0;
  receiveHeaders_ = {};
  receiveIov_ = {};
  receiveNames_ = {};
  sendHeaders_ = {};
  sendIov_ = {};
  sendNames_ = {};
}

int Engine::AddReceiveSlab(uint8_t* data, size_t size) {
  const uint32_t id = receiveSlabsAdded_.load(std::memory_order_relaxed);
  if (id >= kMaxReceiveSlabs || size < kSlabSize) return -1;
  receiveSlabs_[id].data = data;
  // Events carry offsets as int32: the engine uses at most the first GiB of a larger buffer.
  receiveSlabs_[id].size = std::min<size_t>(size, size_t{1} << 30);
  receiveSlabsAdded_.store(id + 1, std::memory_order_relaxed);
  Command command{Command::kAddReceiveSlab};
  command.id = id;
  Post(command);
  return static_cast<int>(id);
}

void Engine::AddSocket(uint32_t id, std::unique_ptr<UdpSocket> socket, uint32_t batchSize, uint32_t coalesceNs,
                       std::shared_ptr<SocketStats> stats, std::unique_ptr<SocketProtocol> protocol,
                       const ReplySource& replySource) {
  auto* state = new SocketState();
  if (protocol) {
    protocol->socketIsV6 = socket->isV6();
    // Runs on the I/O thread, within the protocol's own calls, which the engine makes only while the
    // socket is open.
    protocol->output.drain = [this, state] { SendProtocolDatagrams(state); };
  }
  state->protocol = std::move(protocol);
  state->replySource = replySource;
  state->id = id;
  state->batchSize = batchSize;
  state->coalesceNs = coalesceNs;
  state->socket = std::move(socket);
  state->stats = std::move(stats);
  Command command{Command::kAddSocket};
  command.id = state->id;
  command.socket = state;
  Post(command);
}

void Engine::CloseSocket(uint32_t socketId) {
  Command command{Command::kCloseSocket};
  command.id = socketId;
  Post(command);
}

void Engine::Control(uint32_t socketId, uint32_t op, uint32_t arg, std::vector<uint8_t> data) {
  Command command{Command::kControl};
  command.id = socketId;
  command.op = op;
  command.length = arg;
  command.payload = new std::vector<uint8_t>(std::move(data));
  Post(command);
}

void Engine::SubmitSendSlab(uint32_t slabId, uint8_t* data, size_t length) {
  Command command{Command::kSendSlab};
  command.id = slabId;
  command.data = data;
  command.length = length;
  if (length <= kMaxInlineSendBytes && SendInline(command)) return;
  Post(command);
}

bool Engine::CommandsQueued() {
  std::lock_guard<std::mutex> lock(commandMutex_);
  return !commands_.empty();
}

void Engine::WakeIoThread() {
  wakeFd_.Signal();
  int receiver = kReceiverJavaScript;
  if (receiver_.compare_exchange_strong(receiver, kReceiverIoThread, std::memory_order_acq_rel)) parkFd_.Signal();
}

bool Engine::ReceiveInline() {
  if (receiver_.load(std::memory_order_acquire) != kReceiverJavaScript) return false;
  // The parked I/O thread holds the lock only while it looks at the watchdog, or until it parks after a
  // turn that handed the sockets over: a short wait, if any.
  std::unique_lock<std::mutex> turn(ioMutex_);
  if (receiver_.load(std::memory_order_relaxed) != kReceiverJavaScript) return false;
  inlineTurns_.fetch_add(1, std::memory_order_relaxed);
  epoll_event ready[kReadyEvents];
  bool keep = !TakeAllReadyEvents(ready, epoll_wait(epollFd_, ready, kReadyEvents, 0));
  // Commands are the I/O thread's, and go before this turn's work, as in its own turns (a Post takes the
  // sockets back, but one posted while the I/O thread handed them over may find them JavaScript's still).
  // What the ready events marked (sockets to read, a timer fired) waits for the I/O thread's turn.
  if (keep) {
    RefreshClock();
    clock_.unixSeconds = static_cast<uint64_t>(time(nullptr));
    turningInline_ = true;  // counted in batchesInInline; JavaScript drains when this returns (no wake-up)
    sendingInline_ = true;  // the protocols' replies (acknowledgements, pongs): counted in batchesOutInline
    ServiceSockets();
    sendingInline_ = false;
    // The I/O thread's first turn after a heavy one reads at the rate it saw from here (CoalesceWait).
    if (turnReceived_ > 0) lastDenseTurnNs_ = MonotonicNs();
    keep = LightTurn();
    const uint64_t nextTimerUs = protocolTimers_.NextDueUs();
    if (keep && nextTimerUs != TimerWheel::kNever && !deadlineTimer_.ArmBy(nextTimerUs)) keep = false;
    FlushEvents();
    turningInline_ = false;
  }
  if (!keep) {
    receiver_.store(kReceiverIoThread, std::memory_order_release);
    parkFd_.Signal();
  }
  return keep;
}

bool Engine::LookForReadable(uint64_t windowNs) const {
  const uint64_t startNs = MonotonicNs();
  do {
    pollfd ready{epollFd_, POLLIN, 0};
    if (poll(&ready, 1, 0) > 0) return true;
  } while (receiver_.load(std::memory_order_acquire) == kReceiverJavaScript && MonotonicNs() - startNs < windowNs);
  return false;
}

bool Engine::LightTurn() const {
  return !turnDense_ && turnReceived_ <= kMaxInlineTurnDatagrams && readable_.empty() && sendCount_ == 0 &&
         sendHeld_.empty() && deferred_.empty() && recordsWaiting_.empty() && scratch_.next >= scratch_.count &&
         !starved_.load(std::memory_order_relaxed) && deadlineTimer_.valid();
}

void Engine::Park(std::unique_lock<std::mutex>* turn) {
  // The timers the turn before set (an acknowledgement, a resend) fire through the timerfd, which
  // JavaScript's loop watches: it must be armed for the earliest before this thread stops looking at them.
  const uint64_t nextTimerUs = protocolTimers_.NextDueUs();
  // A command posted during the turn that handed reading over found this thread the receiver: its
  // WakeIoThread signalled no parkFd_. Posted after this look, it finds JavaScript the receiver, and does.
  if ((nextTimerUs != TimerWheel::kNever && !deadlineTimer_.ArmBy(nextTimerUs)) || CommandsQueued()) {
    receiver_.store(kReceiverIoThread, std::memory_order_release);
    return;
  }
  uint64_t turnsSeen = inlineTurns_.load(std::memory_order_relaxed);
  int idleLooks = 0;
  turn->unlock();
  for (;;) {
    pollfd park{parkFd_.fd(), POLLIN, 0};
    if (poll(&park, 1, kParkWatchdogMs) > 0) {
      parkFd_.Clear();
      if (receiver_.load(std::memory_order_acquire) != kReceiverJavaScript) break;
      continue;  // a hand-back from before this park
    }
    if (receiver_.load(std::memory_order_acquire) != kReceiverJavaScript) break;
    const uint64_t turns = inlineTurns_.load(std::memory_order_relaxed);
    if (turns != turnsSeen) {
      turnsSeen = turns;
      idleLooks = 0;
      continue;
    }
    pollfd ready{epollFd_, POLLIN, 0};
    const bool late = poll(&ready, 1, 0) > 0;
    if (late || ++idleLooks >= kParkIdleLooks) {
      // JavaScript late: busy elsewhere. Not offered reading again before it has drained (TakeEvents).
      if (late) javaScriptLate_.store(true, std::memory_order_relaxed);
      int receiver = kReceiverJavaScript;
      receiver_.compare_exchange_strong(receiver, kReceiverIoThread, std::memory_order_acq_rel);
      break;
    }
  }
  TakeTurn(turn);
}

bool Engine::YieldInlineSend() {
  inlineSendsYielded_.fetch_add(1, std::memory_order_relaxed);
  return false;
}

bool Engine::SendInline(const Command& command) {
  // Only while the I/O thread sleeps (it holds ioMutex_ for the whole of each turn, never while it waits):
  // this thread does not wait for a turn here (but for the moment below).
  // A woken I/O thread goes first: JavaScript sending small slabs back to back would otherwise take the lock
  // again each time before that thread is scheduled, and nothing would be received meanwhile.
  if (!started_) return false;
  if (ioWantsTurn_.load(std::memory_order_acquire)) return YieldInlineSend();
  std::unique_lock<std::mutex> turn(ioMutex_, std::try_to_lock);
  if (!turn.owns_lock()) {
    // While JavaScript reads the sockets, the I/O thread holds the lock only from the light turn that left
    // them to it until it parks, a moment: waiting for that beats waking it again to send this.
    if (receiver_.load(std::memory_order_acquire) != kReceiverJavaScript) return false;
    turn.lock();
  }
  if (ioWantsTurn_.load(std::memory_order_relaxed)) return YieldInlineSend();
  // Anything JavaScript asked for before (a close, a control, another slab) goes first, on the I/O thread.
  if (CommandsQueued()) return false;
  // A slab the I/O thread is partway through: the ring would keep the order anyway, but the rest of a large
  // slab is the I/O thread's to send.
  if (sendCount_ > 0) return false;
  const bool wasStarved = starved_.load(std::memory_order_relaxed);
  clock_.unixSeconds = static_cast<uint64_t>(time(nullptr));
  ApplyCommand(command);
  sendingInline_ = true;
  ProcessSends(kSendBudgetPerTurn, false);
  sendingInline_ = false;
  FlushEvents();
  // Work left for the I/O thread: the budget ran out (a protocol's records may be many datagrams each); the
  // kernel refused some datagrams (retried on the thread's own time); or the send found slab space and so
  // cleared the starved flag the thread sleeps on (its sockets have datagrams it stopped reading, and
  // JavaScript's next MarkDelivered would no longer wake it).
  if (sendCount_ > 0 || !sendHeld_.empty() || (wasStarved && !starved_.load(std::memory_order_relaxed))) {
    WakeIoThread();
    return true;
  }
  // The protocols' new deadlines (a resend, an acknowledgement): the sleeping thread's timer must fire by
  // the earliest. Without the timer it waits with a timeout computed before: wake it to compute another.
  const uint64_t nextTimerUs = protocolTimers_.NextDueUs();
  if (nextTimerUs != TimerWheel::kNever && !deadlineTimer_.ArmBy(nextTimerUs)) WakeIoThread();
  return true;
}

void Engine::TakeEvents(std::vector<Event>* out) {
  javaScriptLate_.store(false, std::memory_order_relaxed);
  out->clear();
  std::lock_guard<std::mutex> lock(eventMutex_);
  out->swap(events_);
}

void Engine::MarkDelivered(const Event* events, size_t count) {
  for (size_t i = 0; i < count; ++i) {
    if (events[i].words[0] != kEventBatch) continue;
    const auto slab = static_cast<uint32_t>(events[i].words[2]);
    if (slab < kMaxReceiveSlabs) receiveSlabs_[slab].delivered.fetch_add(1, std::memory_order_seq_cst);
  }
  // Pairs with the I/O thread's store of starved_ followed by its re-check of the slabs.
  if (starved_.exchange(false, std::memory_order_seq_cst)) WakeIoThread();
}

void Engine::Post(const Command& command) {
  bool wasEmpty;
  {
    std::lock_guard<std::mutex> lock(commandMutex_);
    wasEmpty = commands_.empty();
    commands_.push_back(command);
  }
  if (wasEmpty) WakeIoThread();
}

// ---------------------------------------------------------------------------------------------
// I/O thread

void Engine::Run() {
  // Short waits (CoalesceWait's) should last what they ask for, not the default 50 µs timer slack.
  prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
  epoll_event ready[kReadyEvents];
  std::unique_lock<std::mutex> turn(ioMutex_);
  for (;;) {
    if (receiver_.load(std::memory_order_acquire) == kReceiverJavaScript) Park(&turn);
    int timeout = -1;
    if ((!readable_.empty() && !starved_.load(std::memory_order_relaxed)) || sendCount_ > 0) {
      timeout = 0;
    } else if (!sendHeld_.empty()) {
      timeout = 1;  // the kernel was out of send buffer space; try again shortly
    }
    const uint64_t nextTimerUs = protocolTimers_.NextDueUs();
    if (nextTimerUs != TimerWheel::kNever && timeout != 0) {
      const uint64_t nowUs = MonotonicNs() / 1000;
      if (nextTimerUs <= nowUs) {
        timeout = 0;
      } else if (!deadlineTimer_.ArmBy(nextTimerUs)) {
        const uint64_t waitMs = std::min<uint64_t>((nextTimerUs - nowUs + 999) / 1000, 60000);
        if (timeout < 0 || static_cast<int>(waitMs) < timeout) timeout = static_cast<int>(waitMs);
      }
    }
    turn.unlock();  // while it sleeps, JavaScript may send itself (SendInline)
    const int count = epoll_wait(epollFd_, ready, kReadyEvents, timeout);
    TakeTurn(&turn);
    const bool woken = TakeAllReadyEvents(ready, count);
    RefreshClock();
    clock_.unixSeconds = static_cast<uint64_t>(time(nullptr));
    if (woken) {
      wakeFd_.Clear();
      bool running = true;
      {
        std::lock_guard<std::mutex> lock(commandMutex_);
        commandsInFlight_.swap(commands_);
      }
      for (const Command& command : commandsInFlight_) {
        if (!ApplyCommand(command)) running = false;
      }
      commandsInFlight_.clear();
      if (!running) break;
    }
    ServiceSockets();
    // A light turn that has something for JavaScript (a reply, a request): JavaScript, woken for it
    // anyway, reads the next datagrams itself, until a turn finds more than a few.
    FlushEvents(inlineReceive_ && turnReceived_ > 0 && LightTurn());
    timespec coalesce;
    if (CoalesceWait(&coalesce)) {
      // Commands end the wait, and so does a deadline a send from JavaScript armed meanwhile.
      pollfd wake[2] = {{wakeFd_.fd(), POLLIN, 0}, {deadlineTimer_.fd(), POLLIN, 0}};
      turn.unlock();
      ppoll(wake, deadlineTimer_.valid() ? 2 : 1, &coalesce, nullptr);
      TakeTurn(&turn);
    }
  }
  while (!sockets_.empty()) CloseSocketNow(sockets_.begin()->second.get());
  FlushEvents();
}

void Engine::ServiceSockets() {
  ProcessSends(kSendBudgetPerTurn);
  if (!deferred_.empty()) ApplyOverdueTeardowns();
  if (protocolSockets_ > 0) {
    UpdateProtocols();
  } else {
    readingPausedUs_ = 0;  // a pause with no protocol to tell: the next one is dated afresh
    readingPauseTold_ = false;
  }
  turnReceived_ = 0;
  turnDense_ = false;
  turnBatchSize_ = 0;
  ReceiveRound();
}

void Engine::TakeTurn(std::unique_lock<std::mutex>* turn) {
  ioWantsTurn_.store(true, std::memory_order_release);
  turn->lock();
  ioWantsTurn_.store(false, std::memory_order_relaxed);
}

bool Engine::TakeAllReadyEvents(epoll_event* ready, int count) {
  bool woken = false;
  for (int call = 1;; ++call) {
    if (TakeReadyEvents(ready, count)) woken = true;
    if (count < kReadyEvents || call == kMaxReadyCallsPerTurn) return woken;
    count = epoll_wait(epollFd_, ready, kReadyEvents, 0);
  }
}

bool Engine::TakeReadyEvents(const epoll_event* ready, int count) {
  bool woken = false;
  for (int i = 0; i < count; ++i) {
    if (ready[i].data.u64 == kWakeToken) {
      woken = true;
      continue;
    }
    if (ready[i].data.u64 == kTimerToken) {
      deadlineTimer_.Fired();  // the due timers run in UpdateProtocols
      continue;
    }
    const auto found = sockets_.find(static_cast<uint32_t>(ready[i].data.u64));
    if (found == sockets_.end()) continue;
    SocketState* state = found->second.get();
    if (ready[i].events & (EPOLLIN | EPOLLERR)) {
      state->readable = true;
      if (!state->listed) {
        state->listed = true;
        readable_.push_back(state);
      }
    }
  }
  return woken;
}

bool Engine::ApplyCommand(const Command& command) {
  switch (command.kind) {
    case Command::kAddSocket: {
      std::unique_ptr<SocketState> state(command.socket);
      // Scratch for its batch (64 KiB a datagram): where memory is short, a smaller batch, and an error
      // that says so, not a std::bad_alloc that ends the process from this thread.
      const uint32_t batchSize = FitScratch(state->batchSize);
      if (batchSize < state->batchSize) {
        Emit(kEventError, static_cast<int32_t>(state->id), -ENOMEM, 1, kOpReceive);
        state->batchSize = batchSize;
      }
      epoll_event event{};
      event.events = EPOLLIN | EPOLLET;
      event.data.u64 = state->id;
      if (epoll_ctl(epollFd_, EPOLL_CTL_ADD, state->socket->fd(), &event) != 0) {
        Emit(kEventError, static_cast<int32_t>(state->id), -errno, 1, kOpReceive);
      }
      int receiveBuffer = 0;
      socklen_t optionLength = sizeof(receiveBuffer);
      if (getsockopt(state->socket->fd(), SOL_SOCKET, SO_RCVBUF, &receiveBuffer, &optionLength) == 0 && receiveBuffer > 0) {
        state->receiveBufferBytes = static_cast<size_t>(receiveBuffer);
      }
      // Datagrams may have arrived between bind and registration: read once without waiting for an edge.
      state->readable = true;
      state->listed = true;
      readable_.push_back(state.get());
      ++coalesceSettings_[state->coalesceNs];
      if (state->protocol) {
        ++protocolSockets_;
        state->protocol->output.large = large_;
        state->timerId = TakeFreeIndex(freeTimerIds_, timerOwners_);
        timerOwners_[state->timerId] = state.get();
        if (readingPauseTold_) {  // it is not read either (TrackReadingPause)
          netcode::Clock since = clock_;
          since.monotonicUs = readingPausedUs_;
          state->protocol->ReadingPaused(true, since);
        }
        ScheduleProtocol(state.get());
      }
      sockets_.emplace(state->id, std::move(state));
      return true;
    }
    case Command::kControl:
    case Command::kCloseSocket: {
      std::unique_ptr<std::vector<uint8_t>> payload(command.payload);
      // After everything queued before it: a channel keeps its order, a watch sees the queue as it is, what
      // was sent before close() goes out. Sends the socket holds (its kernel buffer full) hold it back; they
      // are retried on the loop's own time, not at every command.
      ProcessSends(SIZE_MAX, false);
      const auto found = sockets_.find(command.id);  // looked up after: a deferred close may have gone
      if (found == sockets_.end()) {
        WipeSecretPayload(command.op, payload.get());
        return true;
      }
      if (!found->second->held.empty()) {
        Command deferred = command;
        deferred.payload = nullptr;  // owned by the deferred entry from here
        deferred_.push_back(DeferredCommand{MonotonicNs() / 1000, deferred, std::move(payload)});
      } else {
        ApplySocketCommand(command, std::move(payload));
      }
      return true;
    }
    case Command::kSendSlab: {
      // A slab the I/O thread still has cannot come again (JavaScript gets it back only once released).
      if (command.id >= kMaxSendSlabs || sendJobs_[command.id].queued) return true;
      sendJobs_[command.id] = SendJob{command.data, command.length, 0, 0, true, false};
      sendRing_[(sendHead_ + sendCount_) % kMaxSendSlabs] = command.id;
      ++sendCount_;
      return true;
    }
    case Command::kAddReceiveSlab:
      if (command.id + 1 > receiveSlabCount_) receiveSlabCount_ = command.id + 1;
      return true;
    case Command::kStop:
      return false;
  }
  return true;
}

void Engine::ApplySocketCommand(const Command& command, std::unique_ptr<std::vector<uint8_t>> payload) {
  const SecretPayloadGuard wipe(command.kind == Command::kControl ? command.op : 0, payload.get());
  const auto found = sockets_.find(command.id);
  if (found == sockets_.end()) return;  // closed in the meantime
  SocketState* state = found->second.get();
  if (command.kind == Command::kCloseSocket) {
    CloseSocketNow(state);
    return;
  }
  if (!state->protocol) return;
  if (command.op == kControlSendLarge) {
    if (!payload->empty()) {
      const uint8_t channel = payload->back();
      payload->pop_back();  // the message stays where JavaScript's bytes were copied to
      state->protocol->SendOwned(static_cast<uint32_t>(command.length), channel, std::move(*payload), clock_);
      state->protocol->EndBatch(clock_);
    }
  } else {
    state->protocol->Control(command.op, static_cast<uint32_t>(command.length), *payload, clock_);
  }
  if (command.op == kControlStop && !state->stopping) {
    state->stopping = true;
    stopping_.push_back(state);
  }
  FlushProtocol(state);
  ScheduleProtocol(state);
  CloseFinishedProtocols();
}

void Engine::ApplyDeferred(uint32_t socketId) {
  for (size_t i = 0; i < deferred_.size();) {
    if (deferred_[i].command.id != socketId) {
      ++i;
      continue;
    }
    DeferredCommand due = std::move(deferred_[i]);
    deferred_.erase(deferred_.begin() + static_cast<std::ptrdiff_t>(i));
    ApplySocketCommand(due.command, std::move(due.payload));
  }
}

void Engine::ApplyOverdueTeardowns() {
  const uint64_t nowUs = MonotonicNs() / 1000;
  // Closing a socket takes its other deferred commands with it: look again from the start after each.
  for (bool closed = true; closed;) {
    closed = false;
    for (const DeferredCommand& entry : deferred_) {
      if (entry.command.kind != Command::kCloseSocket || nowUs - entry.deferredAtUs < kMaxTeardownWaitUs) continue;
      CloseSocketNow(sockets_.find(entry.command.id)->second.get());  // deferred only while it is open
      closed = true;
      break;
    }
  }
}

void Engine::CloseSocketNow(SocketState* state) {
  // Datagrams of this socket not sent yet are dropped, and counted: those it holds, and those the pass
  // over the slabs has not reached (it skips them once the socket is gone).
  DropHeldSends(state);
  for (size_t i = 0; i < sendCount_; ++i) {
    const SendJob& job = sendJobs_[sendRing_[(sendHead_ + i) % kMaxSendSlabs]];
    SocketStats::Add(state->stats->sendDropped, CountRecordsOf(job.data, job.offset, job.length, state->id));
  }
  for (size_t i = 0; i < readable_.size(); ++i) {
    if (readable_[i] == state) {
      readable_[i] = readable_.back();
      readable_.pop_back();
      break;
    }
  }
  if (scratch_.socket == state) scratch_ = ScratchState{};
  const auto setting = coalesceSettings_.find(state->coalesceNs);
  if (setting != coalesceSettings_.end() && --setting->second == 0) coalesceSettings_.erase(setting);
  ReadKernelDrops(state);  // what it dropped since the last read
  epoll_ctl(epollFd_, EPOLL_CTL_DEL, state->socket->fd(), nullptr);
  state->socket->Close();
  if (state->protocol) {
    --protocolSockets_;
    protocolTimers_.Cancel(state->timerId);
    timerOwners_[state->timerId] = nullptr;
    freeTimerIds_.push_back(state->timerId);
  }
  if (state->stopping) stopping_.erase(std::find(stopping_.begin(), stopping_.end(), state));
  // Its deferred commands can do nothing now (its id is not reused before JavaScript forgets it): they go.
  for (size_t i = deferred_.size(); i-- > 0;) {
    if (deferred_[i].command.id == state->id) deferred_.erase(deferred_.begin() + static_cast<std::ptrdiff_t>(i));
  }
  for (size_t i = 0; i < recordsWaiting_.size(); ++i) {
    if (recordsWaiting_[i] == state) {
      recordsWaiting_[i] = recordsWaiting_.back();
      recordsWaiting_.pop_back();
      break;
    }
  }
  Emit(kEventClosed, static_cast<int32_t>(state->id));
  sockets_.erase(state->id);
}

uint32_t Engine::FitScratch(uint32_t batchSize) {
  for (uint32_t size = batchSize; size > scratchCapacity_; size /= 2) {
    try {
      EnsureScratch(size);
      return size;
    } catch (const std::bad_alloc&) {
    }
  }
  return std::min(batchSize, scratchCapacity_);
}

void Engine::EnsureScratch(uint32_t batchSize) {
  if (batchSize <= scratchCapacity_) return;
  // Keeps datagrams already read (while starved) and re-points every header at the new buffers.
  constexpr size_t kTail = kReceiveSlotSize - kReceiveHeadSize;
  // Everything that may fail to allocate comes first: a std::bad_alloc then leaves the scratch as it was.
  std::unique_ptr<uint8_t[]> heads(new uint8_t[size_t{batchSize} * kReceiveHeadSize]);
  std::unique_ptr<uint8_t[]> tails(new uint8_t[size_t{batchSize} * kTail]);
  receiveHeaders_.reserve(batchSize);
  receiveIov_.reserve(size_t{batchSize} * 2);
  receiveNames_.reserve(batchSize);
  sendHeaders_.reserve(kMaxBatchSize);
  sendIov_.reserve(kMaxBatchSize);
  sendNames_.reserve(kMaxBatchSize);
  if (scratchHeads_) {
    std::memcpy(heads.get(), scratchHeads_.get(), size_t{scratchCapacity_} * kReceiveHeadSize);
    // Only the tails of datagrams still waiting (read while starved) hold anything worth keeping.
    for (uint32_t i = scratch_.next; i < scratch_.count; ++i) {
      const size_t length = receiveHeaders_[i].msg_len;
      if (length > kReceiveHeadSize) {
        std::memcpy(tails.get() + size_t{i} * kTail, scratchTails_.get() + size_t{i} * kTail,
                    std::min(length, kReceiveSlotSize) - kReceiveHeadSize);
      }
    }
  }
  scratchHeads_ = std::move(heads);
  scratchTails_ = std::move(tails);
  receiveHeaders_.resize(batchSize);
  receiveIov_.resize(size_t{batchSize} * 2);
  receiveNames_.resize(batchSize);
  received_.resize(batchSize);
  for (uint32_t i = 0; i < batchSize; ++i) {
    iovec* slot = &receiveIov_[size_t{i} * 2];
    slot[0].iov_base = scratchHeads_.get() + size_t{i} * kReceiveHeadSize;
    slot[0].iov_len = kReceiveHeadSize;
    slot[1].iov_base = scratchTails_.get() + size_t{i} * kTail;
    slot[1].iov_len = kTail;
    msghdr& header = receiveHeaders_[i].msg_hdr;
    header.msg_name = &receiveNames_[i];
    header.msg_iov = slot;
    header.msg_iovlen = 2;
  }
  scratchCapacity_ = batchSize;
  if (sendHeaders_.size() < kMaxBatchSize) {
    sendHeaders_.resize(kMaxBatchSize);
    sendIov_.resize(kMaxBatchSize);
    sendNames_.resize(kMaxBatchSize);
  }
}

// --- events ---

void Engine::ReleaseSendSlab(uint32_t slabId) {
  static_assert(ReleasedSlabs::kCapacity >= kMaxSendSlabs, "every slab fits in the ring at once");
  if (released_->Release(static_cast<int32_t>(slabId))) Emit(kEventSendDone, static_cast<int32_t>(slabId));
}

void Engine::Emit(int32_t type, int32_t a, int32_t b, int32_t c, int32_t d, int32_t e) {
  localEvents_.push_back(Event{{type, a, b, c, d, e}});
}

void Engine::FlushEvents(bool offerReceiving) {
  if (localEvents_.empty()) return;
  bool wasEmpty;
  {
    std::lock_guard<std::mutex> lock(eventMutex_);
    wasEmpty = events_.empty();
    events_.insert(events_.end(), localEvents_.begin(), localEvents_.end());
  }
  // Only to a JavaScript thread that has taken every event before these, and has not been late since: one
  // busy elsewhere (the parked thread took the sockets back from it) would leave the next datagrams waiting
  // for the watchdog again.
  if (offerReceiving && wasEmpty && !javaScriptLate_.load(std::memory_order_relaxed)) {
    receiver_.store(kReceiverJavaScript, std::memory_order_release);
  }
  localEvents_.clear();
  if (wasEmpty && !turningInline_) wake_();
}

}  // namespace volley
