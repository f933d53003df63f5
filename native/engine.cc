#include "engine.h"

#include <linux/sock_diag.h>
#include <netinet/udp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <algorithm>
#include <cstring>
#include <system_error>

#include "free_list.h"
#include "monotonic_clock.h"
#include "network_simulator.h"

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103  // linux/udp.h: older libc headers lack it
#endif

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
// Batches read from one socket before the round moves on, so a flooded socket cannot starve the others.
constexpr int kBatchesPerSocketPerRound = 4;
// Datagrams sent per loop turn before the turn moves on to receiving: sending and receiving share the
// thread fairly when one process both floods and reads.
constexpr size_t kSendBudgetPerTurn = 512;
// A slab up to this size is sent by the JavaScript thread itself when the I/O thread sleeps (SendInline): a
// request's reply, a ping, a few messages. Waking the I/O thread for them would cost two context switches
// and 10-20 µs of latency on a VM; a larger slab is worth handing over, so that the JavaScript thread gets
// back to its work and the I/O thread encrypts on the other core.
constexpr size_t kMaxInlineSendBytes = 2048;
// A turn that read at least this many datagrams (and drained every socket) means traffic is dense: the
// next wake-up waits a little so that it reads a fuller batch. A lone request/response never waits.
constexpr uint32_t kDenseTurn = 2;
// How long a close waits for the datagrams its socket holds while the kernel keeps refusing them (its path
// is down) before it is applied anyway: closing must end. What the socket still holds is then dropped, and
// counted.
constexpr uint64_t kMaxTeardownWaitUs = 1000000;
// Large messages JavaScript has not taken yet: past this, the engine's sockets stop reading until it takes
// some (the kernel's buffer, then the peers' flow control, take the rest). Slab space does not bound them:
// a slab holds only a small record for each.
constexpr uint64_t kMaxParkedLargeBytes = uint64_t{64} << 20;

uint32_t LoadU32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// The records of socket `socketId` in data[from, limit) of a send slab (the pass has checked their lengths).
uint64_t CountRecordsOf(const uint8_t* data, size_t from, size_t limit, uint32_t socketId) {
  uint64_t count = 0;
  for (size_t cursor = from; cursor + kSendHeaderSize <= limit;) {
    const uint32_t length = LoadU32(data + cursor + 4);
    if (length > kMaxDatagramSize) break;
    if (LoadU32(data + cursor) == socketId) ++count;
    cursor += Align8(kSendHeaderSize + length);
  }
  return count;
}

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
    delete command.payload;
  }
  if (epollFd_ >= 0) close(epollFd_);
}

bool Engine::Start(SystemError* error) {
  if (started_) return true;
  if (!wakeFd_.valid()) {
    error->code = errno;
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
  if (!started_) return;
  Post(Command{Command::kStop});
  thread_.join();
  started_ = false;
  // A stopped engine may live on until the garbage collector finds it: give back its descriptors and
  // its scratch memory now.
  close(epollFd_);
  epollFd_ = -1;
  wakeFd_.Close();
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

uint32_t Engine::AddSocket(std::unique_ptr<UdpSocket> socket, uint32_t batchSize, uint32_t coalesceNs,
                           std::shared_ptr<SocketStats> stats, std::unique_ptr<SocketProtocol> protocol) {
  auto* state = new SocketState();
  if (protocol) {
    protocol->socketIsV6 = socket->isV6();
    // Runs on the I/O thread, within the protocol's own calls, which the engine makes only while the
    // socket is open.
    protocol->output.drain = [this, state] { SendProtocolDatagrams(state); };
  }
  state->protocol = std::move(protocol);
  state->id = nextSocketId_++;
  if (nextSocketId_ == kWakeToken) nextSocketId_ = 1;  // after 2^32 sockets: 0 is the wake-up's
  state->batchSize = batchSize;
  state->coalesceNs = coalesceNs;
  state->socket = std::move(socket);
  state->stats = std::move(stats);
  Command command{Command::kAddSocket};
  command.id = state->id;
  command.socket = state;
  Post(command);
  return state->id;
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

bool Engine::YieldInlineSend() {
  inlineSendsYielded_.fetch_add(1, std::memory_order_relaxed);
  return false;
}

bool Engine::SendInline(const Command& command) {
  // Only while the I/O thread sleeps (it holds ioMutex_ for the whole of each turn, never while it waits):
  // this thread never blocks here.
  // A woken I/O thread goes first: JavaScript sending small slabs back to back would otherwise take the lock
  // again each time before that thread is scheduled, and nothing would be received meanwhile.
  if (!started_) return false;
  if (ioWantsTurn_.load(std::memory_order_acquire)) return YieldInlineSend();
  std::unique_lock<std::mutex> turn(ioMutex_, std::try_to_lock);
  if (!turn.owns_lock()) return false;
  if (ioWantsTurn_.load(std::memory_order_relaxed)) return YieldInlineSend();
  {
    // Anything JavaScript asked for before (a close, a control, another slab) goes first, on the I/O thread.
    std::lock_guard<std::mutex> lock(commandMutex_);
    if (!commands_.empty()) return false;
  }
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
    wakeFd_.Signal();
    return true;
  }
  // The protocols' new deadlines (a resend, an acknowledgement): the sleeping thread's timer must fire by
  // the earliest. Without the timer it waits with a timeout computed before: wake it to compute another.
  const uint64_t nextTimerUs = protocolTimers_.NextDueUs();
  if (nextTimerUs != TimerWheel::kNever && !deadlineTimer_.ArmBy(nextTimerUs)) wakeFd_.Signal();
  return true;
}

void Engine::TakeEvents(std::vector<Event>* out) {
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
  if (starved_.exchange(false, std::memory_order_seq_cst)) wakeFd_.Signal();
}

void Engine::Post(const Command& command) {
  bool wasEmpty;
  {
    std::lock_guard<std::mutex> lock(commandMutex_);
    wasEmpty = commands_.empty();
    commands_.push_back(command);
  }
  if (wasEmpty) wakeFd_.Signal();
}

// ---------------------------------------------------------------------------------------------
// I/O thread

void Engine::Run() {
  // Short waits (CoalesceWait's) should last what they ask for, not the default 50 µs timer slack.
  prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
  epoll_event ready[kReadyEvents];
  std::unique_lock<std::mutex> turn(ioMutex_);
  for (;;) {
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
    bool woken = false;
    turn.unlock();  // while it sleeps, JavaScript may send itself (SendInline)
    int count = epoll_wait(epollFd_, ready, kReadyEvents, timeout);
    TakeTurn(&turn);
    for (int call = 1;; ++call) {
      if (TakeReadyEvents(ready, count)) woken = true;
      if (count < kReadyEvents || call == kMaxReadyCallsPerTurn) break;
      count = epoll_wait(epollFd_, ready, kReadyEvents, 0);
    }
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
    ProcessSends(kSendBudgetPerTurn);
    if (!deferred_.empty()) ApplyOverdueTeardowns();
    if (protocolSockets_ > 0) UpdateProtocols();
    turnReceived_ = 0;
    turnCoalesceNs_ = UINT32_MAX;
    turnBatchSize_ = 0;
    ReceiveRound();
    FlushEvents();
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

void Engine::TakeTurn(std::unique_lock<std::mutex>* turn) {
  ioWantsTurn_.store(true, std::memory_order_release);
  turn->lock();
  ioWantsTurn_.store(false, std::memory_order_relaxed);
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
      EnsureScratch(state->batchSize);
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
      if (state->protocol) {
        ++protocolSockets_;
        state->protocol->output.large = large_;
        state->timerId = TakeFreeIndex(freeTimerIds_, timerOwners_);
        timerOwners_[state->timerId] = state.get();
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
      if (found == sockets_.end()) return true;
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
  // Its deferred commands can do nothing now (ids are never reused): they go.
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

void Engine::EnsureScratch(uint32_t batchSize) {
  if (batchSize <= scratchCapacity_) return;
  // Keeps datagrams already read (while starved) and re-points every header at the new buffers.
  constexpr size_t kTail = kReceiveSlotSize - kReceiveHeadSize;
  std::unique_ptr<uint8_t[]> heads(new uint8_t[size_t{batchSize} * kReceiveHeadSize]);
  std::unique_ptr<uint8_t[]> tails(new uint8_t[size_t{batchSize} * kTail]);
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

// --- receiving ---

void Engine::ReceiveRound() {
  if (scratch_.next < scratch_.count && !CopyScratchToSlabs()) return;
  // Protocol records still wait for slab space (UpdateProtocols hands them over first once JavaScript frees
  // a slab): reading on would pile more of them up in memory for as long as JavaScript is busy, where a raw
  // socket's datagrams wait in the kernel's buffer, which bounds them.
  if (!recordsWaiting_.empty()) return;
  if (large_->bytes() > kMaxParkedLargeBytes) {
    // Waits as when starved for slabs: JavaScript's next MarkDelivered, after it took messages, wakes this
    // thread. Publish the flag, then look again, in case it took them before it could see the flag.
    starved_.store(true, std::memory_order_seq_cst);
    if (large_->bytes() > kMaxParkedLargeBytes) return;
    starved_.store(false, std::memory_order_relaxed);
  }
  size_t i = 0;
  while (i < readable_.size()) {
    SocketState* state = readable_[i];
    for (int batch = 0; batch < kBatchesPerSocketPerRound; ++batch) {
      if (!ReceiveBatch(state)) break;
    }
    if (scratch_.next < scratch_.count || starved_.load(std::memory_order_relaxed)) return;  // starved: keep the list
    if (!state->readable) {
      state->listed = false;
      readable_[i] = readable_.back();
      readable_.pop_back();
    } else {
      ++i;
    }
  }
}

bool Engine::CoalesceWait(timespec* timeout) {
  if (turnReceived_ == 0) return false;
  const uint64_t now = MonotonicNs();
  const uint64_t sinceLast = now - lastDenseTurnNs_;
  lastDenseTurnNs_ = now;
  if (turnReceived_ < kDenseTurn || turnCoalesceNs_ == 0 || turnCoalesceNs_ == UINT32_MAX) return false;
  if (!readable_.empty() || sendCount_ > 0) return false;  // there is work already
  // Each hand-over costs two thread wake-ups (this one and JavaScript's); while datagrams stream in, a
  // short wait buys a batch many times fuller. Wait about as long as a full batch takes to arrive at the
  // rate of the last turn, and never longer than the sockets allow. Commands from JavaScript end the
  // wait at once.
  uint64_t wait = turnCoalesceNs_;
  if (sinceLast > 0) {
    const uint64_t fill = sinceLast * turnBatchSize_ / turnReceived_;
    if (fill < wait) wait = fill;
  }
  // tv_nsec must stay below a second: at coalesceUs = 1,000,000 ppoll refused {0, 1e9} and did not wait.
  *timeout = timespec{static_cast<time_t>(wait / 1000000000u), static_cast<long>(wait % 1000000000u)};
  return true;
}

bool Engine::ReceiveBatch(SocketState* state) {
  const uint32_t vlen = state->batchSize;
  for (uint32_t i = 0; i < vlen; ++i) {
    msghdr& header = receiveHeaders_[i].msg_hdr;
    header.msg_namelen = sizeof(sockaddr_in6);
    header.msg_flags = 0;
  }
  const int received = recvmmsg(state->socket->fd(), receiveHeaders_.data(), vlen, MSG_DONTWAIT, nullptr);
  if (received <= 0) {
    const int error = received < 0 ? errno : EAGAIN;
    if (error == EINTR) return true;
    state->readable = false;
    if (error == EAGAIN || error == EWOULDBLOCK) SettleKernelDropsAtDrain(state, 0);
    if (error != EAGAIN && error != EWOULDBLOCK) {
      SocketStats::Add(state->stats->receiveErrors, 1);
      Emit(kEventError, static_cast<int32_t>(state->id), -error, 1, kOpReceive);
    }
    return false;
  }
  const auto count = static_cast<uint32_t>(received);
  turnReceived_ += count;
  if (state->coalesceNs < turnCoalesceNs_) turnCoalesceNs_ = state->coalesceNs;
  if (state->batchSize > turnBatchSize_) turnBatchSize_ = state->batchSize;
  // A short batch means the queue was empty when the kernel stopped; any later arrival raises a new edge.
  if (count < vlen) {
    state->readable = false;
    SettleKernelDropsAtDrain(state, count);
  } else if (++state->fullBatchesSinceDropsRead >= kFullBatchesPerDropsRead) {
    ReadKernelDrops(state);  // a queue that never empties (saturated): now and then
  }
  if (state->protocol) {
    ReceiveProtocolBatch(state, count);
    return state->readable && !starved_.load(std::memory_order_relaxed);
  }
  scratch_ = ScratchState{state, 0, count};
  return CopyScratchToSlabs() && state->readable;
}

void Engine::ReadKernelDrops(SocketState* state) {
  uint32_t memory[SK_MEMINFO_VARS] = {};
  socklen_t length = sizeof(memory);
  if (getsockopt(state->socket->fd(), SOL_SOCKET, SO_MEMINFO, memory, &length) == 0 &&
      length > SK_MEMINFO_DROPS * sizeof(uint32_t)) {
    SocketStats::Add(state->stats->kernelDrops, memory[SK_MEMINFO_DROPS] - state->kernelDropsSeen);
    state->kernelDropsSeen = memory[SK_MEMINFO_DROPS];
  }
  state->fullBatchesSinceDropsRead = 0;
}

void Engine::SettleKernelDropsAtDrain(SocketState* state, uint32_t count) {
  // The queue overflowed only if it was full since the last read: then a batch came back full, or, from a
  // buffer too small to hold a batch's worth, carried a good part of the buffer (each datagram takes its
  // bytes and at least kLeastDatagramOverhead of it). A quiet socket costs no system call here.
  if (state->fullBatchesSinceDropsRead > 0) {
    ReadKernelDrops(state);
    return;
  }
  size_t taken = 0;
  for (uint32_t i = 0; i < count; ++i) taken += receiveHeaders_[i].msg_len + kLeastDatagramOverhead;
  if (taken >= state->receiveBufferBytes / 4) ReadKernelDrops(state);
}

bool Engine::SlabIsFree(const ReceiveSlab& slab) const {
  return slab.delivered.load(std::memory_order_seq_cst) == slab.published;
}

bool Engine::AcquireSlabSpace(size_t bytes) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    for (uint32_t k = 0; k < receiveSlabCount_; ++k) {
      const uint32_t index = (currentSlab_ + k) % receiveSlabCount_;
      ReceiveSlab& slab = receiveSlabs_[index];
      if (SlabIsFree(slab) && slab.size >= bytes) {
        slab.offset = 0;
        currentSlab_ = index;
        starved_.store(false, std::memory_order_relaxed);
        starvedReported_ = false;
        return true;
      }
    }
    // Publish the flag, then look again: a delivery that raced with the scan is seen either here
    // or by MarkDelivered, which then wakes this thread.
    if (attempt == 0) starved_.store(true, std::memory_order_seq_cst);
  }
  if (!starvedReported_) {
    starvedReported_ = true;
    Emit(kEventStarved);
  }
  return false;
}

bool Engine::CopyScratchToSlabs() {
  SocketState* state = scratch_.socket;
  if (receiveSlabCount_ == 0 && !AcquireSlabSpace(kSlabSize)) return false;
  ReceiveSlab* slab = &receiveSlabs_[currentSlab_];
  // Everything written so far has been seen by JavaScript: start over at the front, while it is warm.
  if (slab->offset != 0 && SlabIsFree(*slab)) slab->offset = 0;
  size_t batchStart = slab->offset;
  uint32_t batchCount = 0;
  uint64_t batchBytes = 0;
  while (scratch_.next < scratch_.count) {
    const mmsghdr& message = receiveHeaders_[scratch_.next];
    const size_t length = message.msg_len <= kReceiveSlotSize ? message.msg_len : kReceiveSlotSize;
    const size_t need = Align8(kRecvHeaderSize + length);
    if (slab->offset + need > slab->size) {
      PublishBatch(state, batchStart, batchCount, batchBytes);
      batchCount = 0;
      batchBytes = 0;
      if (!AcquireSlabSpace(need)) return false;  // scratch_.next stays: resumed once a slab frees up
      slab = &receiveSlabs_[currentSlab_];
      batchStart = slab->offset;
    }
    uint8_t* record = slab->data + slab->offset;
    IpAddress address;
    uint16_t port = 0;
    FromSockaddr(&receiveNames_[scratch_.next], &address, &port);
    const auto length32 = static_cast<uint32_t>(length);
    const uint8_t truncated = (message.msg_hdr.msg_flags & MSG_TRUNC) ? kRecvFlagTruncated : 0;
    std::memcpy(record, &length32, 4);
    std::memcpy(record + 4, &port, 2);
    record[6] = address.family;
    record[7] = truncated;
    std::memcpy(record + 8, address.bytes, 16);
    std::memcpy(record + 24, &address.scopeId, 4);
    std::memset(record + 28, 0, 4);
    const iovec* slot = &receiveIov_[size_t{scratch_.next} * 2];
    const size_t inHead = length < kReceiveHeadSize ? length : kReceiveHeadSize;
    std::memcpy(record + kRecvHeaderSize, slot[0].iov_base, inHead);
    if (length > inHead) std::memcpy(record + kRecvHeaderSize + inHead, slot[1].iov_base, length - inHead);
    slab->offset += need;
    ++batchCount;
    batchBytes += length;
    if (truncated) SocketStats::Add(state->stats->truncated, 1);
    ++scratch_.next;
  }
  PublishBatch(state, batchStart, batchCount, batchBytes);
  scratch_ = ScratchState{};
  return true;
}

void Engine::PublishBatch(SocketState* state, size_t start, uint32_t count, uint64_t bytes, bool datagrams) {
  if (count == 0) return;
  ReceiveSlab& slab = receiveSlabs_[currentSlab_];
  ++slab.published;
  if (datagrams) {  // a protocol's records are counted as datagrams when they are read
    SocketStats::Add(state->stats->packetsIn, count);
    SocketStats::Add(state->stats->bytesIn, bytes);
    SocketStats::Add(state->stats->batchesIn, 1);
  }
  Emit(kEventBatch, static_cast<int32_t>(state->id), static_cast<int32_t>(currentSlab_), static_cast<int32_t>(start),
       static_cast<int32_t>(count), static_cast<int32_t>(slab.offset));
}

// --- sending ---

int Engine::SendPrepared(SocketState* state, size_t first, size_t count) {
  const int result = sendmmsg(state->socket->fd(), &sendHeaders_[first], static_cast<unsigned>(count), 0);
  if (result < 0) return -errno;
  uint64_t bytes = 0;
  for (size_t i = first; i < first + static_cast<size_t>(result); ++i) bytes += sendIov_[i].iov_len;
  SocketStats::Add(state->stats->packetsOut, static_cast<uint64_t>(result));
  SocketStats::Add(state->stats->bytesOut, bytes);
  SocketStats::Add(state->stats->batchesOut, 1);
  if (sendingInline_) SocketStats::Add(state->stats->batchesOutInline, 1);
  return result;
}

void Engine::ProcessSends(size_t budget, bool retryHeld) {
  if (sendCount_ == 0 && (sendHeld_.empty() || !retryHeld)) return;
  RefreshClock();
  // What the kernel refused before goes first, in its order, before those sockets' later records. Their
  // deferred commands (a close) wait until the list has been walked.
  heldReleased_.clear();
  for (size_t i = 0; retryHeld && i < sendHeld_.size() && budget > 0;) {
    SocketState* state = sendHeld_[i];
    if (!SendHeld(state, &budget)) {
      ++i;
      continue;
    }
    sendHeld_[i] = sendHeld_.back();
    sendHeld_.pop_back();
    heldReleased_.push_back(state->id);
  }
  for (const uint32_t socketId : heldReleased_) ApplyDeferred(socketId);
  while (sendCount_ > 0 && budget > 0) {
    const uint32_t slabId = sendRing_[sendHead_];
    SendJob& job = sendJobs_[slabId];
    SendJobRecords(slabId, &job, &budget);
    if (job.offset + kSendHeaderSize <= job.length) break;  // budget spent mid-slab
    sendHead_ = (sendHead_ + 1) % kMaxSendSlabs;
    --sendCount_;
    job.passed = true;
    if (job.heldBy == 0) {
      job.queued = false;
      ReleaseSendSlab(slabId);
    }
  }
}

void Engine::PrepareRawSend(const SocketState* state, const uint8_t* record, uint32_t length, uint32_t index) {
  IpAddress address;
  address.family = record[10];
  std::memcpy(&address.scopeId, record + 12, 4);
  std::memcpy(address.bytes, record + 16, 16);
  uint16_t port;
  std::memcpy(&port, record + 8, 2);
  msghdr& header = sendHeaders_[index].msg_hdr;
  header = msghdr{};
  header.msg_name = &sendNames_[index];
  header.msg_namelen = ToSockaddr(address, port, state->socket->isV6(), &sendNames_[index]);
  sendIov_[index].iov_base = const_cast<uint8_t*>(record + kSendHeaderSize);
  sendIov_[index].iov_len = length;
  header.msg_iov = &sendIov_[index];
  header.msg_iovlen = 1;
}

uint32_t Engine::SendRawRun(SocketState* state, uint32_t count) {
  uint32_t sent = 0;
  uint32_t refused = 0;
  int refusedError = 0;
  while (sent < count) {
    const int result = SendPrepared(state, sent, count - sent);
    if (result > 0) {
      sent += static_cast<uint32_t>(result);
      continue;
    }
    const int error = -result;
    if (error == EINTR) continue;
    if (error == EAGAIN || error == EWOULDBLOCK || error == ENOBUFS) break;
    // The kernel refused this datagram (too large for the path, unreachable, ...): count it, go on.
    SocketStats::Add(state->stats->sendErrors, 1);
    ++refused;
    refusedError = error;
    ++sent;
  }
  if (refused > 0) Emit(kEventError, static_cast<int32_t>(state->id), -refusedError, refused, kOpSend);
  return sent;
}

void Engine::HoldSends(SocketState* state, uint32_t slabId, size_t offset) {
  if (state->held.empty()) sendHeld_.push_back(state);
  if (state->held.empty() || state->held.back().slabId != slabId) {
    state->held.push_back(HeldSends{slabId, offset});
    ++sendJobs_[slabId].heldBy;
  }
}

void Engine::DropHeldSlab(uint32_t slabId) {
  SendJob& job = sendJobs_[slabId];
  if (--job.heldBy == 0 && job.passed) {
    job.queued = false;
    ReleaseSendSlab(slabId);
  }
}

bool Engine::SendHeld(SocketState* state, size_t* budget) {
  size_t recordStarts[kMaxBatchSize];
  // One datagram first: while the kernel still refuses, a retry costs one small call, not a full batch.
  bool probing = true;
  while (!state->held.empty()) {
    if (*budget == 0) return false;
    HeldSends& held = state->held.front();
    const SendJob& job = sendJobs_[held.slabId];
    // The pass has not looked past job.offset yet: this socket's records beyond it are the pass's to send.
    const size_t limit = job.passedUpTo();
    const size_t most = probing ? 1 : *budget < kMaxBatchSize ? *budget : kMaxBatchSize;
    uint32_t count = 0;
    size_t cursor = held.offset;
    while (cursor + kSendHeaderSize <= limit && count < most) {
      const uint8_t* record = job.data + cursor;
      const uint32_t length = LoadU32(record + 4);
      const size_t end = cursor + Align8(kSendHeaderSize + length);
      if (length > kMaxDatagramSize || end > limit) {  // as the pass found it: malformed, the slab ends here
        cursor = limit;
        break;
      }
      if (LoadU32(record) == state->id) {
        PrepareRawSend(state, record, length, count);
        recordStarts[count++] = cursor;
      }
      cursor = end;
    }
    if (count == 0) {  // nothing more of it in this slab
      const uint32_t slabId = held.slabId;
      state->held.pop_front();
      DropHeldSlab(slabId);
      continue;
    }
    const uint32_t sent = SendRawRun(state, count);
    *budget -= sent;  // sent <= most <= *budget
    if (sent < count) {  // the kernel is still out of buffer space: later
      held.offset = recordStarts[sent];
      return false;
    }
    held.offset = cursor;
    probing = false;
  }
  return true;
}

void Engine::DropHeldSends(SocketState* state) {
  if (state->held.empty()) return;
  sendHeld_.erase(std::find(sendHeld_.begin(), sendHeld_.end(), state));
  for (size_t i = 0; i < state->held.size(); ++i) {
    const HeldSends& held = state->held[i];
    const SendJob& job = sendJobs_[held.slabId];
    SocketStats::Add(state->stats->sendDropped, CountRecordsOf(job.data, held.offset, job.passedUpTo(), state->id));
    DropHeldSlab(held.slabId);
  }
  state->held.clear();
}

void Engine::SendJobRecords(uint32_t slabId, SendJob* job, size_t* budget) {
  size_t recordEnds[kMaxBatchSize];
  while (job->offset + kSendHeaderSize <= job->length && *budget > 0) {
    const size_t runLimit = *budget < kMaxBatchSize ? *budget : kMaxBatchSize;
    // Gather a run of consecutive records for one socket: one sendmmsg call.
    uint32_t runSocket = 0;
    uint32_t count = 0;
    size_t cursor = job->offset;
    SocketState* state = nullptr;
    bool holding = false;  // the socket holds earlier records: these wait behind them
    while (cursor + kSendHeaderSize <= job->length && count < runLimit) {
      const uint8_t* record = job->data + cursor;
      const uint32_t socketId = LoadU32(record);
      const uint32_t length = LoadU32(record + 4);
      const size_t end = cursor + Align8(kSendHeaderSize + length);
      if (length > kMaxDatagramSize || end > job->length) {
        job->offset = job->length;  // malformed slab: JavaScript wrote it, so this is a bug; stop here
        return;
      }
      if (count == 0) {
        runSocket = socketId;
        const auto found = sockets_.find(socketId);
        state = found == sockets_.end() ? nullptr : found->second.get();
        holding = state != nullptr && !state->held.empty();
      } else if (socketId != runSocket) {
        break;
      }
      if (state != nullptr && state->protocol) {
        uint32_t peer;
        std::memcpy(&peer, record + 12, 4);
        state->protocol->Send(peer, record[11], record + kSendHeaderSize, length, clock_);
      } else if (state != nullptr && !holding) {
        PrepareRawSend(state, record, length, count);
      }
      recordEnds[count] = end;
      cursor = end;
      ++count;
    }
    if (state == nullptr) {  // the socket closed after these were queued; its counters were settled then
      job->offset = cursor;
      continue;
    }
    if (holding) {
      HoldSends(state, slabId, job->offset);
      job->offset = cursor;
      continue;
    }
    *budget -= count;
    if (state->protocol) {  // payloads went through the protocol, which encrypted them into its outbox
      state->protocol->EndBatch(clock_);
      FlushProtocol(state);
      ScheduleProtocol(state);
      job->offset = cursor;
      continue;
    }
    const uint32_t sent = SendRawRun(state, count);
    // Out of buffer space: the socket holds the rest, and the pass goes on with the other sockets.
    if (sent < count) HoldSends(state, slabId, sent == 0 ? job->offset : recordEnds[sent - 1]);
    job->offset = cursor;
  }
}

// --- protocol sockets ---

void Engine::RefreshClock() {
  // Read again for every receive batch and send pass, not once per loop turn: a busy turn lasts
  // milliseconds, and an acknowledgement read in the same turn as the packet it acknowledges left would
  // measure an RTT of zero (and congestion control would believe the path has no queue at all).
  clock_.monotonicUs = MonotonicNs() / 1000;
}

void Engine::ReceiveProtocolBatch(SocketState* state, uint32_t count) {
  RefreshClock();
  uint64_t bytes = 0;
  for (uint32_t i = 0; i < count; ++i) {
    const mmsghdr& message = receiveHeaders_[i];
    netcode::ServerAddress from;
    FromSockaddr(&receiveNames_[i], &from.ip, &from.port);
    UnmapIpv4(&from.ip);  // a dual-stack socket sees IPv4 peers as ::ffff:a.b.c.d; tokens list them as IPv4
    // No valid protocol packet is larger than a receive head: a larger datagram goes in as malformed.
    const size_t size = message.msg_len <= kReceiveHeadSize ? message.msg_len : 0;
    state->protocol->Receive(from, static_cast<const uint8_t*>(receiveIov_[size_t{i} * 2].iov_base), size, clock_);
    bytes += message.msg_len;
  }
  SocketStats::Add(state->stats->packetsIn, count);
  SocketStats::Add(state->stats->bytesIn, bytes);
  SocketStats::Add(state->stats->batchesIn, 1);
  state->protocol->EndBatch(clock_);
  FlushProtocol(state);
  ScheduleProtocol(state);
}

size_t Engine::SendOutbox(SocketState* state, size_t first) {
  ProtocolOutput& output = state->protocol->output;
  // Consecutive datagrams to one address, all of one size but the last, go as one UDP GSO message (the
  // kernel cuts it up): a bulk transfer costs one pass through the stack per run, not per datagram.
  size_t messages = 0, datagrams = 0;
  while (first + datagrams < output.outboxCount && messages < kMaxBatchSize && datagrams < kMaxBatchSize) {
    const size_t start = first + datagrams;
    const ProtocolOutput::Datagram& head = output.outbox[start];
    size_t run = 1;
    size_t bytes = head.size;
    while (state->gso && start + run < output.outboxCount && run < kMaxGsoSegments && datagrams + run < kMaxBatchSize) {
      const ProtocolOutput::Datagram& next = output.outbox[start + run];
      if (next.size > head.size || bytes + next.size > kMaxGsoBytes || next.nameLength != head.nameLength ||
          std::memcmp(&next.name, &head.name, head.nameLength) != 0 || output.outbox[start + run - 1].size != head.size) {
        break;
      }
      bytes += next.size;
      ++run;
    }
    msghdr& header = sendHeaders_[messages].msg_hdr;
    header = msghdr{};
    header.msg_name = const_cast<sockaddr_in6*>(&head.name);
    header.msg_namelen = head.nameLength;
    for (size_t i = 0; i < run; ++i) {
      sendIov_[datagrams + i].iov_base = output.outbox[start + i].data;
      sendIov_[datagrams + i].iov_len = output.outbox[start + i].size;
    }
    header.msg_iov = &sendIov_[datagrams];
    header.msg_iovlen = run;
    if (run > 1) {
      uint64_t* control = &gsoControl_[messages * kGsoControlWords];
      std::memset(control, 0, kGsoControlWords * 8);
      header.msg_control = control;
      header.msg_controllen = CMSG_SPACE(sizeof(uint16_t));
      cmsghdr* segment = CMSG_FIRSTHDR(&header);
      segment->cmsg_level = SOL_UDP;
      segment->cmsg_type = UDP_SEGMENT;
      segment->cmsg_len = CMSG_LEN(sizeof(uint16_t));
      const uint16_t size = head.size;
      std::memcpy(CMSG_DATA(segment), &size, sizeof(size));
    }
    sendRuns_[messages] = static_cast<uint32_t>(run);
    ++messages;
    datagrams += run;
  }
  size_t done = 0;
  while (done < messages) {
    const int result = sendmmsg(state->socket->fd(), &sendHeaders_[done], static_cast<unsigned>(messages - done), 0);
    if (result > 0) {
      uint64_t count = 0, bytes = 0;
      for (size_t i = done; i < done + static_cast<size_t>(result); ++i) {
        count += sendRuns_[i];
        bytes += sendHeaders_[i].msg_len;
      }
      SocketStats::Add(state->stats->packetsOut, count);
      SocketStats::Add(state->stats->bytesOut, bytes);
      SocketStats::Add(state->stats->batchesOut, 1);
      if (sendingInline_) SocketStats::Add(state->stats->batchesOutInline, 1);
      done += static_cast<size_t>(result);
      continue;
    }
    const int error = errno;
    if (error == EINTR) continue;
    if (sendRuns_[done] > 1 && (error == EIO || error == EINVAL || error == ENOPROTOOPT)) {
      // No UDP GSO here (an old kernel, a device without it, or this socket's path: an MTU too small for
      // the run): this socket sends datagram by datagram from now on; the engine's other sockets go on as
      // before. The caller starts again at the run that failed: the messages before it went out (else they
      // went twice).
      state->gso = false;
      size_t sent = 0;
      for (size_t i = 0; i < done; ++i) sent += sendRuns_[i];
      return sent;
    }
    size_t lost = 0;
    for (size_t i = done; i < messages; ++i) lost += sendRuns_[i];
    if (error == EAGAIN || error == EWOULDBLOCK || error == ENOBUFS) {
      output.sendDropped += lost;
      break;
    }
    SocketStats::Add(state->stats->sendErrors, sendRuns_[done]);
    ++done;
  }
  return datagrams;
}

void Engine::SendProtocolDatagrams(SocketState* state) {
  ProtocolOutput& output = state->protocol->output;
  NetworkSimulator* simulator = state->protocol->simulator.get();
  if (simulator != nullptr) {
    // The simulated network takes what the protocol sends and gives back what is due on the wire now, an
    // outbox at a time: after a latency step thousands may be due at once, and the outbox is kept.
    for (size_t i = 0; i < output.outboxCount; ++i) simulator->Submit(output.outbox[i], clock_.monotonicUs);
    output.outboxCount = simulator->Release(clock_.monotonicUs, &output.outbox, kOutboxDrainAt);
  }
  while (output.outboxCount > 0) {
    // sendmmsg over the outbox. What the kernel will not take at once is dropped and counted, as a lost
    // datagram would be; the protocol's timers resend what matters.
    for (size_t first = 0; first < output.outboxCount;) first += SendOutbox(state, first);
    output.outboxCount = simulator != nullptr ? simulator->Release(clock_.monotonicUs, &output.outbox, kOutboxDrainAt) : 0;
  }
}

void Engine::FlushProtocol(SocketState* state) {
  ProtocolOutput& output = state->protocol->output;
  SendProtocolDatagrams(state);
  double counters[SocketStats::kProtocolFieldCount];
  const size_t counterCount = state->protocol->CopyCounters(counters, SocketStats::kProtocolFieldCount);
  for (size_t i = 0; i < counterCount; ++i) state->stats->protocol[i].store(counters[i], std::memory_order_relaxed);
  if (const NetworkSimulator* simulator = state->protocol->simulator.get()) {
    const NetworkSimulatorCounters& simulated = simulator->counters();
    const uint64_t fields[SocketStats::kSimulatorFieldCount] = {simulated.lost, simulated.duplicated, simulated.reordered, simulated.overflowed};
    for (int i = 0; i < SocketStats::kSimulatorFieldCount; ++i) {
      state->stats->simulator[i].store(static_cast<double>(fields[i]), std::memory_order_relaxed);
    }
  }

  // Records: copied into receive slabs as batches, as far as there is room; the rest waits.
  if (output.recordsStart == output.records.size()) return;
  ReceiveSlab* slab = &receiveSlabs_[currentSlab_];
  if (receiveSlabCount_ == 0 && !AcquireSlabSpace(kSlabSize)) return;
  slab = &receiveSlabs_[currentSlab_];
  if (slab->offset != 0 && SlabIsFree(*slab)) slab->offset = 0;
  size_t batchStart = slab->offset;
  uint32_t batchCount = 0;
  while (output.recordsStart < output.records.size()) {
    const uint8_t* record = output.records.data() + output.recordsStart;
    uint32_t length;
    std::memcpy(&length, record, 4);
    const size_t size = Align8(kPeerRecordHeaderSize + length);
    if (slab->offset + size > slab->size) {
      PublishBatch(state, batchStart, batchCount, 0, false);
      batchCount = 0;
      if (!AcquireSlabSpace(size)) {  // the rest goes out once JavaScript frees a slab
        if (std::find(recordsWaiting_.begin(), recordsWaiting_.end(), state) == recordsWaiting_.end()) {
          recordsWaiting_.push_back(state);
        }
        return;
      }
      slab = &receiveSlabs_[currentSlab_];
      batchStart = slab->offset;
    }
    std::memcpy(slab->data + slab->offset, record, size);
    slab->offset += size;
    output.recordsStart += size;
    ++batchCount;
  }
  PublishBatch(state, batchStart, batchCount, 0, false);
  output.records.clear();  // keeps its capacity
  output.recordsStart = 0;
  output.recordCount = 0;
}

void Engine::UpdateProtocols() {
  RefreshClock();
  if (!recordsWaiting_.empty() && !starved_.load(std::memory_order_relaxed)) {
    // Records that were waiting for slab space: hand them over now (FlushProtocol lists them again if
    // they still do not fit).
    recordsResuming_.swap(recordsWaiting_);  // both keep their capacity: nothing allocated per episode
    for (SocketState* state : recordsResuming_) FlushProtocol(state);
    recordsResuming_.clear();
  }
  protocolTimers_.Advance(clock_.monotonicUs, [this](uint32_t timerId) {
    SocketState* state = timerOwners_[timerId];
    state->protocol->Update(clock_);
    FlushProtocol(state);
    ScheduleProtocol(state);
  });
  CloseFinishedProtocols();
}

void Engine::ScheduleProtocol(SocketState* state) {
  uint64_t deadline = state->protocol->NextDeadlineUs();
  if (state->protocol->simulator) deadline = std::min(deadline, state->protocol->simulator->NextReleaseUs());
  if (deadline == TimerWheel::kNever) {
    protocolTimers_.Cancel(state->timerId);
    return;
  }
  // The wheel fires at the start of a tick: round up so that the protocol is never called early. A
  // deadline that moved later (an acknowledgement that went out with a reply) moves its timer too, or it
  // would wake the thread for nothing.
  const uint64_t tick = protocolTimers_.tickUs();
  if (deadline > TimerWheel::kNever - tick) {  // rounded up it would wrap to 0 and fire every tick; it is never
    protocolTimers_.Cancel(state->timerId);
    return;
  }
  const uint64_t due = (deadline + tick - 1) / tick * tick;
  if (due != protocolTimers_.DueUs(state->timerId)) protocolTimers_.Schedule(state->timerId, due);
}

void Engine::CloseFinishedProtocols() {
  for (size_t i = 0; i < stopping_.size();) {
    SocketState* state = stopping_[i];
    // Finished once its protocol is, JavaScript has its last records, and the simulated network (if any)
    // has delivered what it carries: closing must not lose the last disconnect packets on their way.
    const NetworkSimulator* simulator = state->protocol->simulator.get();
    if (state->protocol->Finished() && state->protocol->output.recordsStart == state->protocol->output.records.size() &&
        (simulator == nullptr || simulator->NextReleaseUs() == UINT64_MAX)) {
      CloseSocketNow(state);  // takes it out of stopping_
    } else {
      ++i;
    }
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

void Engine::FlushEvents() {
  if (localEvents_.empty()) return;
  bool wasEmpty;
  {
    std::lock_guard<std::mutex> lock(eventMutex_);
    wasEmpty = events_.empty();
    events_.insert(events_.end(), localEvents_.begin(), localEvents_.end());
  }
  localEvents_.clear();
  if (wasEmpty) wake_();
}

}  // namespace volley
