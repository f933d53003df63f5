// The engine's send path: the records JavaScript queued in send slabs, sent with sendmmsg within a budget per
// turn, and held (in order) while the kernel refuses them.
#include "engine/engine.h"

#include <cerrno>
#include <cstring>

#include "engine/send_records.h"

namespace volley {

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
    // The kernel refused this datagram (too large for the path, unreachable, ...): count it, go on. Each
    // run of one error is reported with its own code (the last code for all of them misnamed the others).
    SocketStats::Add(state->stats->sendErrors, 1);
    if (refused > 0 && error != refusedError) {
      Emit(kEventError, static_cast<int32_t>(state->id), -refusedError, refused, kOpSend);
      refused = 0;
    }
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

}  // namespace volley
