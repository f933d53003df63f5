// The load generator of the datagram benchmarks: sends datagrams of one size to 127.0.0.1:<port> with
// sendmmsg, as fast as the kernel takes them, for a fixed time. Then it prints one JSON line on stdout:
//   {"type":"result","packets":N,"bytes":N,"seconds":S,"cpuUserUs":U,"cpuSystemUs":S,"details":{...}}
//
// With segments > 1 each message is a UDP GSO send (UDP_SEGMENT): the kernel cuts it into `segments`
// datagrams of <size> bytes, so the blaster's core spends far less per datagram and can outrun any
// receiver on the other core. Receivers still get separate datagrams (loopback segments them before
// the receiving socket's queue), only in bursts of `segments`.
//
// usage: blaster <port> <size> <milliseconds> [batch=64] [segments=1]
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tool.h"

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

int main(int argc, char** argv) {
  if (argc < 4 || argc > 6) {
    fprintf(stderr, "usage: blaster <port> <size> <milliseconds> [batch=64] [segments=1]\n");
    return 2;
  }
  const int port = (int)parse_arg("blaster", argv[1], "port", 1, 65535);
  const size_t size = (size_t)parse_arg("blaster", argv[2], "size", 1, 65507);
  const long milliseconds = parse_arg("blaster", argv[3], "milliseconds", 1, 600000);
  const unsigned batch = argc > 4 ? (unsigned)parse_arg("blaster", argv[4], "batch", 1, 1024) : 64;
  const unsigned segments = argc > 5 ? (unsigned)parse_arg("blaster", argv[5], "segments", 1, 128) : 1;
  if (size * segments > 65507) {
    fprintf(stderr, "blaster: %u segments of %zu bytes exceed a datagram (65507 bytes)\n", segments, size);
    return 2;
  }
  alarm((unsigned)(milliseconds / 1000 + 30));  // never outlive a confused parent by much

  const int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) {
    perror("blaster: socket");
    return 1;
  }
  const int sendBuffer = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sendBuffer, sizeof sendBuffer);
  struct sockaddr_in target;
  memset(&target, 0, sizeof target);
  target.sin_family = AF_INET;
  target.sin_port = htons((uint16_t)port);
  target.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (const struct sockaddr*)&target, sizeof target) != 0) {
    perror("blaster: connect");
    return 1;
  }

  if (segments > 1) {
    const int segmentSize = (int)size;
    if (setsockopt(fd, SOL_UDP, UDP_SEGMENT, &segmentSize, sizeof segmentSize) != 0) {
      perror("blaster: setsockopt UDP_SEGMENT (GSO)");
      return 1;
    }
  }
  const size_t messageSize = size * segments;
  uint8_t* payload = malloc(messageSize);
  struct mmsghdr* messages = calloc(batch, sizeof *messages);
  if (payload == NULL || messages == NULL) {
    fprintf(stderr, "blaster: out of memory\n");
    return 1;
  }
  for (size_t i = 0; i < messageSize; ++i) payload[i] = (uint8_t)((i % size) * 31 + 7);
  struct iovec chunk = {payload, messageSize};
  for (unsigned i = 0; i < batch; ++i) {
    messages[i].msg_hdr.msg_iov = &chunk;
    messages[i].msg_hdr.msg_iovlen = 1;
  }

  uint64_t sent = 0;
  uint64_t calls = 0;
  uint64_t errorCount = 0;
  int lastError = 0;
  struct rusage before;
  struct rusage after;
  getrusage(RUSAGE_SELF, &before);
  const double start = monotonic_seconds();
  const double deadline = start + (double)milliseconds / 1000.0;
  double now = start;
  while (now < deadline) {
    const int result = sendmmsg(fd, messages, batch, 0);
    if (result > 0) {
      sent += (uint64_t)result * segments;
      ++calls;
    } else if (result < 0 && errno != EINTR) {
      // ECONNREFUSED (an ICMP error from an earlier datagram), ENOBUFS, EAGAIN: count and go on.
      ++errorCount;
      lastError = errno;
    }
    now = monotonic_seconds();
  }
  getrusage(RUSAGE_SELF, &after);

  printf("{\"type\":\"result\",\"packets\":%llu,\"bytes\":%llu,\"seconds\":%.6f,\"cpuUserUs\":%.0f,\"cpuSystemUs\":%.0f,"
         "\"details\":{\"calls\":%llu,\"errors\":%llu,\"lastError\":\"%s\",\"batch\":%u,\"segments\":%u}}\n",
         (unsigned long long)sent, (unsigned long long)(sent * size), now - start,
         timeval_us(after.ru_utime) - timeval_us(before.ru_utime),
         timeval_us(after.ru_stime) - timeval_us(before.ru_stime), (unsigned long long)calls,
         (unsigned long long)errorCount, lastError == 0 ? "" : strerror(lastError), batch, segments);
  fflush(stdout);
  close(fd);
  free(messages);
  free(payload);
  return 0;
}
