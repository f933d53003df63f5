// What the first write to a fresh page of memory costs on this machine: maps anonymous memory, writes one
// byte per 4 KiB page, reports µs per page, unmaps; several rounds, with a pause before the first. A fresh
// server's handshakes touch new memory (its heaps grow), so this price is part of what they cost. On a VM
// that hands freed memory back to its host (free page reporting), a page that went back costs far more the
// first time it is touched again than one the guest kernel still holds.
// Build and run: cc -O2 -o /tmp/first-touch bench/native/first-touch.c && /tmp/first-touch [MiB] [rounds] [pause s]
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static double now_seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char** argv) {
  const size_t mebibytes = argc > 1 ? strtoul(argv[1], NULL, 10) : 256;
  const int rounds = argc > 2 ? atoi(argv[2]) : 3;
  const unsigned pause = argc > 3 ? (unsigned)atoi(argv[3]) : 5;
  const size_t page = 4096, bytes = mebibytes << 20;
  if (mebibytes == 0 || rounds <= 0) {
    fprintf(stderr, "usage: first-touch [MiB > 0] [rounds > 0] [pause seconds]\n");
    return 2;
  }
  sleep(pause);  // time for memory freed before the start to go back to the host
  for (int round = 0; round < rounds; ++round) {
    volatile char* memory = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) {
      perror("mmap");
      return 1;
    }
    const double start = now_seconds();
    for (size_t at = 0; at < bytes; at += page) memory[at] = 1;
    const double seconds = now_seconds() - start;
    printf("round %d: %zu MiB, %.2f µs per 4 KiB page on first write\n", round + 1, mebibytes, seconds / (double)(bytes / page) * 1e6);
    munmap((void*)memory, bytes);
  }
  return 0;
}
