/*
 * usage.c -- integrate state durations between changes (see usage.h).
 *
 * Millisecond integers, not floating seconds: sums of periods must equal
 * the whole exactly, or a participant's minutes would drift by rounding.
 */
#include <string.h>

#include "sfu/room/usage.h"

const char *const sfu_usage_kind_names[SFU_USAGE_KINDS] = {
    "connected", "audio_published", "audio_received", "video_published", "video_received"};

static void advance(sfu_usage_t *u, uint64_t now_ms) {
  if (now_ms <= u->last_ms) return; /* monotonic clock: never backwards */
  uint64_t d = now_ms - u->last_ms;
  for (int k = 0; k < SFU_USAGE_KINDS; k++)
    if (u->on[k]) u->ms[k] += d;
  u->last_ms = now_ms;
}

void sfu_usage_init(sfu_usage_t *u, uint64_t now_ms, int64_t now_wall_ms) {
  memset(u, 0, sizeof(*u));
  u->period_start_ms = u->last_ms = now_ms;
  u->period_start_wall_ms = now_wall_ms;
}

int sfu_usage_set(sfu_usage_t *u, sfu_usage_kind_t k, int on, uint64_t now_ms) {
  advance(u, now_ms);
  on = on != 0;
  if (u->on[k] == on) return 0;
  u->on[k] = (uint8_t)on;
  return 1;
}

void sfu_usage_checkpoint(sfu_usage_t *u, uint64_t now_ms, int64_t now_wall_ms,
                          sfu_usage_period_t *out) {
  advance(u, now_ms);
  out->start_wall_ms = u->period_start_wall_ms;
  /* The wall end follows from the monotonic length, so wall clock steps
   * (NTP) cannot make a period longer or shorter than what was counted. */
  out->end_wall_ms = u->period_start_wall_ms + (int64_t)(u->last_ms - u->period_start_ms);
  memcpy(out->ms, u->ms, sizeof(out->ms));
  memset(u->ms, 0, sizeof(u->ms));
  u->period_start_ms = u->last_ms;
  u->period_start_wall_ms = out->end_wall_ms;
  (void)now_wall_ms;
}
