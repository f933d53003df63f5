// The engine's receive path: reading each ready socket's batches with recvmmsg, copying them into the slabs
// JavaScript reads (or handing them to the socket's protocol), and the kernel's drop count.
#include "engine/engine.h"

#include <linux/sock_diag.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <ctime>

#include "util/monotonic_clock.h"

namespace volley {

namespace {

// Batches read from one socket before the round moves on, so a flooded socket cannot starve the others.
constexpr int kBatchesPerSocketPerRound = 4;

// A socket that had at least this many datagrams waiting in a turn (and every socket drained) means
// traffic is dense: the next wake-up waits a little so that it reads a fuller batch. A lone
// request/response never waits, nor do lone datagrams that came to different sockets at once.
constexpr uint32_t kDenseTurn = 2;

// Large messages JavaScript has not taken yet: past this, the engine's sockets stop reading until it takes
// some (the kernel's buffer, then the peers' flow control, take the rest). Slab space does not bound them:
// a slab holds only a small record for each.
constexpr uint64_t kMaxParkedLargeBytes = uint64_t{64} << 20;

}  // namespace

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
    const uint32_t receivedBefore = turnReceived_;
    for (int batch = 0; batch < kBatchesPerSocketPerRound; ++batch) {
      if (!ReceiveBatch(state)) break;
    }
    if (turnReceived_ - receivedBefore >= kDenseTurn) turnDense_ = true;
    if (scratch_.next < scratch_.count || starved_.load(std::memory_order_relaxed)) {
      // Starved: the next round begins after this socket, so that one socket whose queue outlasts the slabs
      // cannot keep the ones listed after it unread.
      std::rotate(readable_.begin(), readable_.begin() + static_cast<std::ptrdiff_t>(i) + 1, readable_.end());
      return;
    }
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
  if (!turnDense_ || coalesceSettings_.empty() || coalesceSettings_.begin()->first == 0) return false;
  if (!readable_.empty() || sendCount_ > 0) return false;  // there is work already
  // Each hand-over costs two thread wake-ups (this one and JavaScript's); while datagrams stream in, a
  // short wait buys a batch many times fuller. Wait about as long as a full batch takes to arrive at the
  // rate of the last turn, and never longer than the most impatient socket allows: no socket is read
  // during the wait. Commands from JavaScript end the wait at once.
  uint64_t wait = coalesceSettings_.begin()->first;
  // Below 2^53 ns (104 days idle, or since boot on the first turn) the product with a batch of at most
  // 1,024 stays below 2^64.
  if (sinceLast > 0 && sinceLast < (uint64_t{1} << 53)) {
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
    if (turningInline_) SocketStats::Add(state->stats->batchesInInline, 1);
  }
  Emit(kEventBatch, static_cast<int32_t>(state->id), static_cast<int32_t>(currentSlab_), static_cast<int32_t>(start),
       static_cast<int32_t>(count), static_cast<int32_t>(slab.offset));
}

}  // namespace volley
