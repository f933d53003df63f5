/* The floor of the connections benchmark's payload case (bench/connections.ts, phase 3): the least a
 * receiver built like volley's server can spend per 64 B encrypted payload on this machine. It does only
 * what no such receiver can skip, the way the engine does it, and nothing else:
 *   - an I/O thread reads the socket with recvmmsg batches (64) after an edge-triggered epoll wake-up,
 *     and waits like the engine before the next batch once traffic is dense (the same rule and the same
 *     200 µs ceiling, native/engine/engine_receive.cc CoalesceWait);
 *   - it opens one 64 B ChaCha20-Poly1305 (IETF) message per datagram with libsodium's AEAD call, as the
 *     engine does (native/protocol/netcode/aead.cc), with netcode's 22 bytes of associated data: a copy
 *     sealed at start by libsodium, as the datagrams themselves are plaintext from the C paced sender
 *     that node:dgram also receives;
 *   - it hands each turn's messages to a second thread (the main thread, as JavaScript's is for volley)
 *     with one eventfd wake-up, which that thread takes only while none is pending (as uv_async_send).
 * No protocol (no peer lookup, replay window, timers or keep-alives) and no JavaScript.
 *
 * The runner drives it like the node receivers (bench/lib/connections-child.ts): it prints
 *   {"type":"ready","port":N,"recvBufferSize":N}
 * and answers "mark <label>" on stdin with a mark (a 'result' line: CPU time of the whole process,
 * context switches, page faults, per-thread CPU), and "stop" with a last mark labelled 'stopped'.
 *
 * usage: floor-receiver <max milliseconds> <receive buffer bytes>
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tool.h"

enum {
  kBatch = 64,
  kSlotBytes = 2048,
  kPayloadBytes = 64,
  kAssociatedBytes = 22,      /* netcode: version info (13), protocol id (8), prefix byte (1) */
  kCoalesceNs = 200 * 1000,   /* the engine's default ceiling (coalesceUs) */
};

static int socket_fd = -1;
static int handoff_fd = -1;  /* I/O thread -> main thread */
static atomic_int handoff_pending;
static atomic_ullong handed_packets;
static atomic_ullong handed_bytes;
static atomic_ullong open_failures;
static atomic_int io_tid;

static unsigned char key[crypto_aead_chacha20poly1305_ietf_KEYBYTES];
static unsigned char nonce[crypto_aead_chacha20poly1305_ietf_NPUBBYTES];
static unsigned char associated[kAssociatedBytes];
static unsigned char sealed[kPayloadBytes + crypto_aead_chacha20poly1305_ietf_ABYTES];

static void fail(const char* what) {
  printf("{\"type\":\"error\",\"message\":\"floor-receiver: %s: %s\"}\n", what, strerror(errno));
  fflush(stdout);
  exit(1);
}

static void* io_thread(void* unused) {
  (void)unused;
  atomic_store(&io_tid, (int)gettid());
  static unsigned char slots[kBatch][kSlotBytes];
  struct mmsghdr headers[kBatch];
  struct iovec iov[kBatch];
  struct sockaddr_in names[kBatch];
  unsigned char opened[kPayloadBytes];
  memset(headers, 0, sizeof headers);
  for (int i = 0; i < kBatch; ++i) {
    iov[i].iov_base = slots[i];
    iov[i].iov_len = kSlotBytes;
    headers[i].msg_hdr.msg_iov = &iov[i];
    headers[i].msg_hdr.msg_iovlen = 1;
    headers[i].msg_hdr.msg_name = &names[i];
  }
  int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event event = {.events = EPOLLIN | EPOLLET, .data.u64 = 1};
  if (epoll_fd < 0 || epoll_ctl(epoll_fd, EPOLL_CTL_ADD, socket_fd, &event) != 0) fail("epoll");
  uint64_t last_dense_ns = monotonic_ns();
  for (;;) {
    struct epoll_event ready;
    if (epoll_wait(epoll_fd, &ready, 1, -1) < 0 && errno != EINTR) fail("epoll_wait");
    unsigned turn_packets = 0;
    unsigned long long turn_bytes = 0;
    for (;;) {
      for (int i = 0; i < kBatch; ++i) headers[i].msg_hdr.msg_namelen = sizeof names[i];
      const int count = recvmmsg(socket_fd, headers, kBatch, MSG_DONTWAIT, NULL);
      if (count <= 0) break;
      for (int i = 0; i < count; ++i) {
        if (crypto_aead_chacha20poly1305_ietf_decrypt(opened, NULL, NULL, sealed, sizeof sealed, associated, sizeof associated,
                                                      nonce, key) != 0) {
          atomic_fetch_add(&open_failures, 1);
        }
        turn_bytes += headers[i].msg_len;
      }
      turn_packets += (unsigned)count;
      if (count < kBatch) break;
    }
    if (turn_packets == 0) continue;
    atomic_fetch_add(&handed_packets, turn_packets);
    atomic_fetch_add(&handed_bytes, turn_bytes);
    if (atomic_exchange(&handoff_pending, 1) == 0) {
      const uint64_t one = 1;
      if (write(handoff_fd, &one, sizeof one) < 0) fail("eventfd write");
    }
    /* The engine's coalescing rule: after a dense turn, wait about as long as a full batch takes to
     * arrive at the last turn's rate, at most the ceiling. */
    const uint64_t now = monotonic_ns();
    const uint64_t since = now - last_dense_ns;
    last_dense_ns = now;
    if (turn_packets >= 2) {
      uint64_t wait = kCoalesceNs;
      const uint64_t fill = since * kBatch / turn_packets;
      if (fill < wait) wait = fill;
      const struct timespec timeout = {0, (long)wait};
      ppoll(NULL, 0, &timeout, NULL);
    }
  }
  return NULL;
}

static double thread_us(int tid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/self/task/%d/schedstat", tid);
  FILE* file = fopen(path, "r");
  if (file == NULL) return 0;
  unsigned long long ns = 0;
  if (fscanf(file, "%llu", &ns) != 1) ns = 0;
  fclose(file);
  return (double)ns / 1000.0;
}

static void emit_mark(const char* label, unsigned long long packets, unsigned long long bytes) {
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  const double seconds = monotonic_seconds();
  printf("{\"type\":\"result\",\"packets\":%llu,\"bytes\":%llu,\"seconds\":%.6f,\"cpuUserUs\":%.0f,\"cpuSystemUs\":%.0f,"
         "\"details\":{\"label\":\"%s\",\"contextSwitches\":{\"voluntary\":%ld,\"involuntary\":%ld},"
         "\"pageFaults\":{\"minor\":%ld,\"major\":%ld},\"threads\":{\"mainUs\":%.0f,\"otherUs\":%.0f},\"openFailures\":%llu}}\n",
         packets, bytes, seconds, timeval_us(usage.ru_utime), timeval_us(usage.ru_stime), label, usage.ru_nvcsw,
         usage.ru_nivcsw, usage.ru_minflt, usage.ru_majflt, thread_us((int)getpid()), thread_us(atomic_load(&io_tid)),
         (unsigned long long)atomic_load(&open_failures));
  fflush(stdout);
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: floor-receiver <max milliseconds> <receive buffer bytes>\n");
    return 2;
  }
  const long max_ms = parse_arg("floor-receiver", argv[1], "max milliseconds", 1000, 3600000);
  const int buffer_bytes = (int)parse_arg("floor-receiver", argv[2], "receive buffer bytes", 4096, 1 << 30);
  alarm((unsigned)(max_ms / 1000 + 1));
  if (sodium_init() < 0) fail("sodium_init");
  randombytes_buf(key, sizeof key);
  randombytes_buf(associated, sizeof associated);
  unsigned char plain[kPayloadBytes] = {0};
  crypto_aead_chacha20poly1305_ietf_encrypt(sealed, NULL, plain, sizeof plain, associated, sizeof associated, NULL, nonce,
                                            key);

  socket_fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (socket_fd < 0) fail("socket");
  if (setsockopt(socket_fd, SOL_SOCKET, SO_RCVBUF, &buffer_bytes, sizeof buffer_bytes) != 0) fail("SO_RCVBUF");
  struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = 0};
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(socket_fd, (struct sockaddr*)&address, sizeof address) != 0) fail("bind");
  socklen_t length = sizeof address;
  getsockname(socket_fd, (struct sockaddr*)&address, &length);
  int granted = 0;
  socklen_t granted_length = sizeof granted;
  getsockopt(socket_fd, SOL_SOCKET, SO_RCVBUF, &granted, &granted_length);

  handoff_fd = eventfd(0, EFD_CLOEXEC);
  if (handoff_fd < 0) fail("eventfd");
  pthread_t thread;
  if (pthread_create(&thread, NULL, io_thread, NULL) != 0) fail("pthread_create");
  while (atomic_load(&io_tid) == 0) usleep(100);
  printf("{\"type\":\"ready\",\"port\":%d,\"recvBufferSize\":%d}\n", ntohs(address.sin_port), granted);
  fflush(stdout);

  /* The main thread: takes the hand-offs and the runner's commands. */
  int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event on_handoff = {.events = EPOLLIN, .data.u64 = 1};
  struct epoll_event on_stdin = {.events = EPOLLIN, .data.u64 = 2};
  if (epoll_fd < 0 || epoll_ctl(epoll_fd, EPOLL_CTL_ADD, handoff_fd, &on_handoff) != 0 ||
      epoll_ctl(epoll_fd, EPOLL_CTL_ADD, STDIN_FILENO, &on_stdin) != 0) {
    fail("epoll");
  }
  unsigned long long packets = 0;
  unsigned long long bytes = 0;
  char line[256];
  size_t filled = 0;
  for (;;) {
    struct epoll_event ready[2];
    const int count = epoll_wait(epoll_fd, ready, 2, -1);
    for (int i = 0; i < count; ++i) {
      if (ready[i].data.u64 == 1) {
        uint64_t value;
        if (read(handoff_fd, &value, sizeof value) < 0) fail("eventfd read");
        atomic_store(&handoff_pending, 0);
        packets = atomic_load(&handed_packets);
        bytes = atomic_load(&handed_bytes);
        continue;
      }
      const ssize_t got = read(STDIN_FILENO, line + filled, sizeof line - 1 - filled);
      if (got <= 0) {  /* the runner is gone */
        emit_mark("stopped", packets, bytes);
        return 0;
      }
      filled += (size_t)got;
      line[filled] = '\0';
      char* end;
      while ((end = strchr(line, '\n')) != NULL) {
        *end = '\0';
        char label[128] = "mark";
        if (strncmp(line, "mark", 4) == 0) {
          sscanf(line + 4, "%127s", label);
          packets = atomic_load(&handed_packets);
          bytes = atomic_load(&handed_bytes);
          emit_mark(label, packets, bytes);
        } else if (strncmp(line, "stop", 4) == 0) {
          emit_mark("stopped", atomic_load(&handed_packets), atomic_load(&handed_bytes));
          return 0;
        } else if (line[0] != '\0') {
          printf("{\"type\":\"error\",\"message\":\"floor-receiver: unknown command '%s'\"}\n", line);
          fflush(stdout);
          return 1;
        }
        const size_t used = (size_t)(end - line) + 1;
        memmove(line, end + 1, filled - used + 1);
        filled -= used;
      }
      if (filled == sizeof line - 1) filled = 0;  /* a line longer than any command: drop it */
    }
  }
}
