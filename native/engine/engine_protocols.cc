// The engine's protocol sockets: feeding received batches to a socket's protocol (netcode, delivery), sending
// its outbox (through the network simulator when one is set), and running its timers.
#include "engine/engine.h"

#include <netinet/udp.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "util/monotonic_clock.h"
#include "sockets/network_simulator.h"

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103  // linux/udp.h: older libc headers lack it
#endif

namespace volley {

namespace {

constexpr uint64_t kReadingPauseNoticeUs = 50000;  // TrackReadingPause: a pause this long reaches the protocols

}  // namespace

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
    netcode::ReceivedDatagram& datagram = received_[i];
    FromSockaddr(&receiveNames_[i], &datagram.from.ip, &datagram.from.port);
    UnmapIpv4(&datagram.from.ip);  // a dual-stack socket sees IPv4 peers as ::ffff:a.b.c.d; tokens list them as IPv4
    datagram.data = static_cast<const uint8_t*>(receiveIov_[size_t{i} * 2].iov_base);
    // No valid protocol packet is larger than a receive head: a larger datagram goes in as malformed.
    datagram.size = message.msg_len <= kReceiveHeadSize ? message.msg_len : 0;
    datagram.wireSize = message.msg_len;
    bytes += message.msg_len;
  }
  state->protocol->ReceiveBatch(received_.data(), count, clock_);
  SocketStats::Add(state->stats->packetsIn, count);
  SocketStats::Add(state->stats->bytesIn, bytes);
  SocketStats::Add(state->stats->batchesIn, 1);
  if (turningInline_) SocketStats::Add(state->stats->batchesInInline, 1);
  state->protocol->EndBatch(clock_);
  FlushProtocol(state);
  ScheduleProtocol(state);
}

size_t Engine::SendOutbox(SocketState* state, size_t first) {
  ProtocolOutput& output = state->protocol->output;
  state->replySource.Refresh(clock_.monotonicUs);
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
    auto* control = reinterpret_cast<uint8_t*>(&sendControl_[messages * kSendControlWords]);
    size_t controlBytes = 0;
    if (run > 1) {
      std::memset(control, 0, CMSG_SPACE(sizeof(uint16_t)));
      auto* segment = reinterpret_cast<cmsghdr*>(control);
      segment->cmsg_level = SOL_UDP;
      segment->cmsg_type = UDP_SEGMENT;
      segment->cmsg_len = CMSG_LEN(sizeof(uint16_t));
      const uint16_t size = head.size;
      std::memcpy(CMSG_DATA(segment), &size, sizeof(size));
      controlBytes = CMSG_SPACE(sizeof(uint16_t));
    }
    controlBytes += state->replySource.Write(head.name, control + controlBytes);
    if (controlBytes > 0) {
      header.msg_control = control;
      header.msg_controllen = controlBytes;
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
  TrackReadingPause();
  protocolTimers_.Advance(clock_.monotonicUs, [this](uint32_t timerId) {
    SocketState* state = timerOwners_[timerId];
    state->protocol->Update(clock_);
    FlushProtocol(state);
    ScheduleProtocol(state);
  });
  CloseFinishedProtocols();
}

void Engine::TrackReadingPause() {
  const bool paused = starved_.load(std::memory_order_relaxed) || !recordsWaiting_.empty() || scratch_.next < scratch_.count;
  if (paused && readingPausedUs_ == 0) readingPausedUs_ = std::max<uint64_t>(clock_.monotonicUs, 1);
  if (!paused) readingPausedUs_ = 0;
  // Short pauses come and go under load and cannot matter to a timeout of whole seconds: the protocols
  // hear of a pause once it has lasted kReadingPauseNoticeUs, dated from its start.
  const bool tell = paused ? !readingPauseTold_ && clock_.monotonicUs - readingPausedUs_ >= kReadingPauseNoticeUs : readingPauseTold_;
  if (!tell) return;
  readingPauseTold_ = paused;
  netcode::Clock at = clock_;
  if (paused) at.monotonicUs = readingPausedUs_;
  for (auto& entry : sockets_) {
    SocketState* state = entry.second.get();
    if (!state->protocol) continue;
    state->protocol->ReadingPaused(paused, at);
    ScheduleProtocol(state);
  }
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

}  // namespace volley
