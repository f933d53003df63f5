/* What the C tools of the benchmarks share: clocks, rusage times, and argument parsing that refuses
 * anything but an integer in range (exit status 2, a message naming the tool and the argument). */
#ifndef VOLLEY_BENCH_TOOL_H
#define VOLLEY_BENCH_TOOL_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

static inline uint64_t monotonic_ns(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

static inline double monotonic_seconds(void) { return (double)monotonic_ns() / 1e9; }

static inline double timeval_us(struct timeval value) { return (double)value.tv_sec * 1e6 + (double)value.tv_usec; }

static inline long parse_arg(const char* tool, const char* text, const char* name, long min, long max) {
  char* end = NULL;
  errno = 0;
  long value = strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || value < min || value > max) {
    fprintf(stderr, "%s: %s must be an integer from %ld to %ld, got '%s'\n", tool, name, min, max, text);
    exit(2);
  }
  return value;
}

#endif
