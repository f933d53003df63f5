// The plaintext load generator of the connections benchmark (bench/connections.ts): sends datagrams of
// one size to 127.0.0.1:<port> at a fixed total rate, from <sockets> source addresses, for a fixed time.
// It sends as volley's load generator (bench/native/handshake-load.cc) does, so that the receiver sees
// the same traffic: every <tick> microseconds the datagrams that are due by then (rate × elapsed − sent so
// far), one per source address in turn, from one socket with the source chosen per datagram (IP_PKTINFO:
// 127.2.x.y, any address in 127.0.0.0/8 is this host's), 64 per sendmmsg. (It used to send from a
// connected socket per source, one send() each: the same datagrams, spread over a longer stretch of each
// tick than volley's load spreads its own, which cost its receiver more wake-ups.) Then it prints one JSON
// line on stdout (the bench's line protocol, bench/lib/protocol.ts):
//   {"type":"result","packets":N,"bytes":N,"seconds":S,"cpuUserUs":U,"cpuSystemUs":S,"details":{...}}
//
// usage: paced-sender <port> <size> <rate per second> <milliseconds> <sockets> <tick µs>
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tool.h"

int main(int argc, char** argv) {
  if (argc != 7) {
    fprintf(stderr, "usage: paced-sender <port> <size> <rate per second> <milliseconds> <sockets> <tick us>\n");
    return 2;
  }
  const int port = (int)parse_arg("paced-sender", argv[1], "port", 1, 65535);
  const size_t size = (size_t)parse_arg("paced-sender", argv[2], "size", 1, 65507);
  const uint64_t rate = (uint64_t)parse_arg("paced-sender", argv[3], "rate", 1, 100000000);
  const uint64_t milliseconds = (uint64_t)parse_arg("paced-sender", argv[4], "milliseconds", 1, 600000);
  const int sockets = (int)parse_arg("paced-sender", argv[5], "sockets", 1, 60000);
  const uint64_t tickNs = (uint64_t)parse_arg("paced-sender", argv[6], "tick", 100, 1000000) * 1000u;
  alarm((unsigned)(milliseconds / 1000 + 30));  // never outlive a confused parent by much

  enum { kBatch = 64 };
  uint8_t* payload = malloc(size);
  if (payload == NULL) {
    fprintf(stderr, "paced-sender: out of memory\n");
    return 1;
  }
  for (size_t i = 0; i < size; ++i) payload[i] = (uint8_t)(i * 31 + 7);
  struct sockaddr_in target;
  memset(&target, 0, sizeof target);
  target.sin_family = AF_INET;
  target.sin_port = htons((uint16_t)port);
  target.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) {
    perror("paced-sender: socket");
    return 1;
  }
  // The batch's headers, each datagram with the source address it goes from (set per batch below).
  struct mmsghdr messages[kBatch];
  struct iovec vector = {payload, size};
  _Alignas(struct cmsghdr) uint8_t control[kBatch][CMSG_SPACE(sizeof(struct in_pktinfo))];
  memset(messages, 0, sizeof messages);
  memset(control, 0, sizeof control);
  for (int i = 0; i < kBatch; ++i) {
    messages[i].msg_hdr.msg_name = &target;
    messages[i].msg_hdr.msg_namelen = sizeof target;
    messages[i].msg_hdr.msg_iov = &vector;
    messages[i].msg_hdr.msg_iovlen = 1;
    messages[i].msg_hdr.msg_control = control[i];
    messages[i].msg_hdr.msg_controllen = sizeof control[i];
    struct cmsghdr* header = CMSG_FIRSTHDR(&messages[i].msg_hdr);
    header->cmsg_level = IPPROTO_IP;
    header->cmsg_type = IP_PKTINFO;
    header->cmsg_len = CMSG_LEN(sizeof(struct in_pktinfo));
  }
  const uint32_t firstSource = (127u << 24) | (2u << 16);  // 127.2.0.0: clear of 127.0.0.1 and the volley load's 127.1.x.y

  const uint64_t total = rate * milliseconds / 1000u;
  uint64_t attempted = 0;
  uint64_t sent = 0;
  uint64_t errorCount = 0;
  uint64_t ticks = 0;
  int lastError = 0;
  int next = 0;
  struct rusage before;
  struct rusage after;
  getrusage(RUSAGE_SELF, &before);
  const uint64_t start = monotonic_ns();
  uint64_t now = start;
  while (attempted < total) {
    const uint64_t elapsed = now - start;
    uint64_t due = (uint64_t)((double)rate * (double)elapsed / 1e9);
    if (due > total) due = total;
    while (attempted < due) {
      const unsigned count = due - attempted < kBatch ? (unsigned)(due - attempted) : kBatch;
      for (unsigned i = 0; i < count; ++i) {
        struct in_pktinfo info;
        memset(&info, 0, sizeof info);
        info.ipi_spec_dst.s_addr = htonl(firstSource + 1u + (uint32_t)next);
        memcpy(CMSG_DATA(CMSG_FIRSTHDR(&messages[i].msg_hdr)), &info, sizeof info);
        next = next + 1 == sockets ? 0 : next + 1;
      }
      attempted += count;
      // A datagram the kernel refuses (ENOBUFS, EAGAIN) ends the call: it and the rest of the batch are
      // counted, not retried.
      const int result = sendmmsg(fd, messages, count, 0);
      const unsigned went = result > 0 ? (unsigned)result : 0;
      sent += went;
      if (went < count) {
        errorCount += count - went;
        lastError = result < 0 ? errno : EAGAIN;
      }
    }
    ++ticks;
    if (attempted >= total) break;
    // Sleep to the next tick boundary (absolute, so that the schedule does not drift).
    const uint64_t wake = start + (elapsed / tickNs + 1) * tickNs;
    struct timespec until = {(time_t)(wake / 1000000000u), (long)(wake % 1000000000u)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL) == EINTR) {
    }
    now = monotonic_ns();
  }
  const uint64_t end = monotonic_ns();
  getrusage(RUSAGE_SELF, &after);

  printf("{\"type\":\"result\",\"packets\":%llu,\"bytes\":%llu,\"seconds\":%.6f,\"cpuUserUs\":%.0f,\"cpuSystemUs\":%.0f,"
         "\"details\":{\"attempted\":%llu,\"errors\":%llu,\"lastError\":\"%s\",\"ticks\":%llu,\"sockets\":%d}}\n",
         (unsigned long long)sent, (unsigned long long)(sent * size), (double)(end - start) / 1e9,
         timeval_us(after.ru_utime) - timeval_us(before.ru_utime), timeval_us(after.ru_stime) - timeval_us(before.ru_stime),
         (unsigned long long)attempted, (unsigned long long)errorCount, lastError == 0 ? "" : strerror(lastError),
         (unsigned long long)ticks, sockets);
  fflush(stdout);
  close(fd);
  free(payload);
  return 0;
}
