/*
 * usage.h -- per-participant usage accounting in the room (docs/events.md).
 *
 * A meter integrates time over a few boolean states -- connected, publishing
 * audio, receiving audio (video comes with video) -- between state changes.
 * The room changes the states at real media events and closes a period at
 * every checkpoint: the period's seconds go into a usage record and the
 * meter starts a new period from the same instant, so consecutive periods
 * tile time with no gap and no overlap.
 *
 * Times are the room's monotonic milliseconds; the record also carries wall
 * times for the control plane. Pure arithmetic: unit-tested without a room.
 */
#ifndef SFU_USAGE_H
#define SFU_USAGE_H

#include <stdint.h>

typedef enum {
  SFU_USAGE_CONNECTED = 0,   /* in the room (joined, not yet left) */
  SFU_USAGE_AUDIO_PUB,       /* publishing audio: track up, not muted */
  SFU_USAGE_AUDIO_RECV,      /* receiving someone's unmuted audio */
  SFU_USAGE_VIDEO_PUB,       /* publishing video */
  SFU_USAGE_VIDEO_RECV,      /* receiving video */
  SFU_USAGE_KINDS
} sfu_usage_kind_t;

extern const char *const sfu_usage_kind_names[SFU_USAGE_KINDS];

typedef struct sfu_usage_s {
  uint64_t period_start_ms;         /* monotonic start of the open period */
  int64_t period_start_wall_ms;     /* the same instant, wall clock */
  uint64_t last_ms;                 /* time integrated up to */
  uint64_t ms[SFU_USAGE_KINDS];     /* accumulated in the open period */
  uint8_t on[SFU_USAGE_KINDS];      /* current states */
} sfu_usage_t;

/* A closed period. */
typedef struct sfu_usage_period_s {
  int64_t start_wall_ms, end_wall_ms;
  uint64_t ms[SFU_USAGE_KINDS];
} sfu_usage_period_t;

void sfu_usage_init(sfu_usage_t *u, uint64_t now_ms, int64_t now_wall_ms);
/* Sets one state at `now`; returns 1 if it changed. */
int sfu_usage_set(sfu_usage_t *u, sfu_usage_kind_t k, int on, uint64_t now_ms);
/* Closes the open period at `now` into *out and opens the next. */
void sfu_usage_checkpoint(sfu_usage_t *u, uint64_t now_ms, int64_t now_wall_ms,
                          sfu_usage_period_t *out);

#endif
