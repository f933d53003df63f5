// The plaintext load generator of the connections benchmark (bench/connections.ts): sends datagrams of
// one size to 127.0.0.1:<port> at a fixed total rate, from <sockets> sockets of its own, for a fixed
// time. It follows the same schedule as volley's load generator (bench/connections/load.ts): every
// <tick> microseconds it sends the datagrams that are due by then (rate × elapsed − sent so far), one
// per socket in turn, so that the receiver sees the same bursts from the same number of source
// addresses. Then it prints one JSON line on stdout (the bench's line protocol, bench/lib/protocol.ts):
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

  int* fds = calloc((size_t)sockets, sizeof *fds);
  uint8_t* payload = malloc(size);
  if (fds == NULL || payload == NULL) {
    fprintf(stderr, "paced-sender: out of memory\n");
    return 1;
  }
  for (size_t i = 0; i < size; ++i) payload[i] = (uint8_t)(i * 31 + 7);
  struct sockaddr_in target;
  memset(&target, 0, sizeof target);
  target.sin_family = AF_INET;
  target.sin_port = htons((uint16_t)port);
  target.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int i = 0; i < sockets; ++i) {
    fds[i] = socket(AF_INET, SOCK_DGRAM, 0);
    if (fds[i] < 0 || connect(fds[i], (const struct sockaddr*)&target, sizeof target) != 0) {
      perror("paced-sender: socket/connect");
      return 1;
    }
  }

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
      const ssize_t result = send(fds[next], payload, size, 0);
      next = next + 1 == sockets ? 0 : next + 1;
      ++attempted;
      if (result == (ssize_t)size) {
        ++sent;
      } else if (result < 0) {
        // ENOBUFS, EAGAIN, ECONNREFUSED (an ICMP error from an earlier datagram): counted, not retried.
        ++errorCount;
        lastError = errno;
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
  for (int i = 0; i < sockets; ++i) close(fds[i]);
  free(fds);
  free(payload);
  return 0;
}
