/*
 * clock.c -- the two clocks: monotonic for timers and latency, wall for
 * timestamps that leave the process (logs, tokens, records).
 */
#include <time.h>

#include "sfu/base/sfu.h"

uint64_t sfu_now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t sfu_now_ms(void) { return sfu_now_us() / 1000u; }

int64_t sfu_wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
