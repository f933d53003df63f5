// A stand-in for sendmmsg, loaded with LD_PRELOAD by test/engine/send-held.toolchain.test.ts: a full kernel send
// buffer (EAGAIN) cannot be provoked on loopback, where the kernel frees a datagram as soon as it is sent.
// VOLLEY_EAGAIN="port:count" makes the next `count` calls whose first datagram goes to `port` fail with
// EAGAIN; setting a different value (a third field, say, "port:count:round") starts a new count. At exit
// it writes how many calls it refused to the file VOLLEY_EAGAIN_REFUSED names, so that a test knows the
// refusals it is about happened.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

typedef int (*SendMmsg)(int, struct mmsghdr*, unsigned int, int);

static char seenSetting[64];
static int refusedPort = -1;
static atomic_int refusalsLeft;
static atomic_int refusedCalls;

__attribute__((destructor)) static void WriteRefusedCalls(void) {
  const char* path = getenv("VOLLEY_EAGAIN_REFUSED");
  if (path == NULL) return;
  FILE* file = fopen(path, "w");
  if (file == NULL) return;
  fprintf(file, "%d\n", atomic_load(&refusedCalls));
  fclose(file);
}

static int DestinationPort(const struct msghdr* header) {
  if (header->msg_name == NULL) return -1;
  const struct sockaddr* name = header->msg_name;
  if (name->sa_family == AF_INET) return ntohs(((const struct sockaddr_in*)name)->sin_port);
  if (name->sa_family == AF_INET6) return ntohs(((const struct sockaddr_in6*)name)->sin6_port);
  return -1;
}

int sendmmsg(int fd, struct mmsghdr* messages, unsigned int count, int flags) {
  static SendMmsg real;
  if (real == NULL) real = (SendMmsg)dlsym(RTLD_NEXT, "sendmmsg");
  // Only the engine's I/O thread sends with sendmmsg, so the setting is read by one thread at a time.
  const char* setting = getenv("VOLLEY_EAGAIN");
  if (setting != NULL && strncmp(setting, seenSetting, sizeof seenSetting) != 0) {
    snprintf(seenSetting, sizeof seenSetting, "%s", setting);
    int port = -1, refusals = 0;
    if (sscanf(setting, "%d:%d", &port, &refusals) == 2) {
      refusedPort = port;
      atomic_store(&refusalsLeft, refusals);
    }
  }
  if (count > 0 && DestinationPort(&messages[0].msg_hdr) == refusedPort && atomic_load(&refusalsLeft) > 0) {
    atomic_fetch_sub(&refusalsLeft, 1);
    atomic_fetch_add(&refusedCalls, 1);
    errno = EAGAIN;
    return -1;
  }
  return real(fd, messages, count, flags);
}
