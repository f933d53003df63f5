// The reference receiver of the datagram benchmarks (no JavaScript at all): binds 127.0.0.1:0 with a
// 4 MiB SO_RCVBUF, waits with poll() and reads with recvmmsg (batch 64, source addresses included)
// until the queue is empty, the way volley's I/O thread does with epoll. It is also the receiving end
// of the send benchmarks.
//
// Protocol (JSON lines on stdout, commands on stdin):
//   out {"type":"ready","port":N,"recvBufferSize":N}
//   in  "stop" (or end of input): finish once no datagram has arrived for 100 ms
//   out {"type":"result","packets":N,"bytes":N,"seconds":S,"cpuUserUs":U,"cpuSystemUs":S,"details":{...}}
// The window runs from the first datagram to the last; CPU time is getrusage(RUSAGE_SELF) over it.
//
// usage: sink [batch=64]
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tool.h"

enum { kSlotSize = 2048, kIdleMs = 100, kMaxLifetimeSeconds = 600 };

int main(int argc, char** argv) {
  unsigned batch = 64;
  if (argc > 1) {
    const long value = strtol(argv[1], NULL, 10);
    if (value < 1 || value > 1024) {
      fprintf(stderr, "usage: sink [batch=64] (1..1024)\n");
      return 2;
    }
    batch = (unsigned)value;
  }
  alarm(kMaxLifetimeSeconds);  // never outlive a confused parent by much

  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    perror("sink: socket");
    return 1;
  }
  const int receiveBuffer = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receiveBuffer, sizeof receiveBuffer);
  struct sockaddr_in local;
  memset(&local, 0, sizeof local);
  local.sin_family = AF_INET;
  local.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t localLength = sizeof local;
  if (bind(fd, (const struct sockaddr*)&local, sizeof local) != 0 ||
      getsockname(fd, (struct sockaddr*)&local, &localLength) != 0) {
    perror("sink: bind");
    return 1;
  }
  int effectiveBuffer = 0;
  socklen_t optionLength = sizeof effectiveBuffer;
  getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &effectiveBuffer, &optionLength);

  uint8_t* slots = malloc((size_t)batch * kSlotSize);
  struct mmsghdr* messages = calloc(batch, sizeof *messages);
  struct iovec* chunks = calloc(batch, sizeof *chunks);
  struct sockaddr_in* sources = calloc(batch, sizeof *sources);
  if (slots == NULL || messages == NULL || chunks == NULL || sources == NULL) {
    fprintf(stderr, "sink: out of memory\n");
    return 1;
  }
  for (unsigned i = 0; i < batch; ++i) {
    chunks[i].iov_base = slots + (size_t)i * kSlotSize;
    chunks[i].iov_len = kSlotSize;
    messages[i].msg_hdr.msg_iov = &chunks[i];
    messages[i].msg_hdr.msg_iovlen = 1;
    messages[i].msg_hdr.msg_name = &sources[i];
  }

  printf("{\"type\":\"ready\",\"port\":%u,\"recvBufferSize\":%d}\n", ntohs(local.sin_port), effectiveBuffer);
  fflush(stdout);

  uint64_t packets = 0;
  uint64_t bytes = 0;
  uint64_t batches = 0;
  uint64_t sourcePortSum = 0;  // touch what a real receiver would look at
  struct rusage first;
  struct rusage last;
  double firstAt = 0;
  double lastAt = 0;
  int stopping = 0;
  double stopAt = 0;
  for (;;) {
    int timeout = -1;
    if (stopping) {
      const double quietSince = lastAt > stopAt ? lastAt : stopAt;
      const double left = quietSince + kIdleMs / 1000.0 - monotonic_seconds();
      if (left <= 0) break;
      timeout = (int)(left * 1000.0) + 1;
    }
    struct pollfd watched[2] = {{fd, POLLIN, 0}, {STDIN_FILENO, POLLIN, 0}};
    const int ready = poll(watched, stopping ? 1 : 2, timeout);
    if (ready < 0) {
      if (errno == EINTR) continue;
      perror("sink: poll");
      return 1;
    }
    if (!stopping && (watched[1].revents & (POLLIN | POLLHUP | POLLERR))) {
      char command[256];
      const ssize_t got = read(STDIN_FILENO, command, sizeof command - 1);
      if (got <= 0 || memmem(command, (size_t)got, "stop", 4) != NULL) {
        stopping = 1;
        stopAt = monotonic_seconds();
      }
    }
    if (!(watched[0].revents & POLLIN)) continue;
    for (;;) {
      for (unsigned i = 0; i < batch; ++i) messages[i].msg_hdr.msg_namelen = sizeof sources[i];
      const int count = recvmmsg(fd, messages, batch, MSG_DONTWAIT, NULL);
      if (count <= 0) break;  // EAGAIN: the queue is empty, wait for poll
      if (packets == 0) {
        getrusage(RUSAGE_SELF, &first);
        firstAt = monotonic_seconds();
      }
      for (int i = 0; i < count; ++i) {
        bytes += messages[i].msg_len;
        sourcePortSum += sources[i].sin_port;
      }
      packets += (uint64_t)count;
      ++batches;
      lastAt = monotonic_seconds();
      if ((unsigned)count < batch) break;
    }
  }
  getrusage(RUSAGE_SELF, &last);
  if (packets == 0) {
    first = last;
    firstAt = lastAt;
  }
  printf("{\"type\":\"result\",\"packets\":%llu,\"bytes\":%llu,\"seconds\":%.6f,\"cpuUserUs\":%.0f,\"cpuSystemUs\":%.0f,"
         "\"details\":{\"batches\":%llu,\"recvBufferSize\":%d,\"batch\":%u,\"sourcePortSum\":%llu,"
         "\"contextSwitches\":{\"voluntary\":%ld,\"involuntary\":%ld}}}\n",
         (unsigned long long)packets, (unsigned long long)bytes, lastAt - firstAt,
         timeval_us(last.ru_utime) - timeval_us(first.ru_utime), timeval_us(last.ru_stime) - timeval_us(first.ru_stime),
         (unsigned long long)batches, effectiveBuffer, batch, (unsigned long long)sourcePortSum,
         last.ru_nvcsw - first.ru_nvcsw, last.ru_nivcsw - first.ru_nivcsw);
  fflush(stdout);
  close(fd);
  return 0;
}
