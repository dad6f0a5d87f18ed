/*
 * speaking.c -- hysteresis over a stream of audio levels.
 *
 * A speaking indicator must come on soon after someone starts talking, not
 * come on for a cough or a door, and not go off between words. Three
 * mechanisms, each a few lines below, share that job:
 *
 *   - an exponential moving average of the level in dB (smooth_ms) takes
 *     the edge off single packets: a click 40 dB above the background
 *     moves the average by about 16 dB at 20 ms spacing;
 *   - two thresholds (on_level < off_level) so a level hovering near one
 *     line cannot toggle the state;
 *   - two durations: on_ms of LOUD observations to start, off_ms without
 *     any non-QUIET observation to stop. Short pauses between words and
 *     phrases (100-300 ms) stay inside off_ms.
 *
 * The exact rule is in sfu/media/speaking.h. Time enters only as differences of
 * the caller's monotonic clock, so tests replay captures at their recorded
 * times and get the same answer every run. The EMA uses exp() so that one
 * step of 2*dt equals two steps of dt: ticks at any rate decay the meter
 * the same way.
 *
 * State is a handful of scalars inside the caller's struct; nothing here
 * allocates or keeps pointers.
 */
#include <math.h>

#include "sfu/media/speaking.h"

#define LEVEL_SILENCE 127

static uint64_t elapsed(uint64_t from, uint64_t to) {
  return to > from ? to - from : 0;
}

void sfu_speaking_init(sfu_speaking_t *s) {
  s->on_level = SFU_SPEAKING_ON_LEVEL;
  s->off_level = SFU_SPEAKING_OFF_LEVEL;
  s->on_ms = SFU_SPEAKING_ON_MS;
  s->off_ms = SFU_SPEAKING_OFF_MS;
  s->smooth_ms = SFU_SPEAKING_SMOOTH_MS;
  s->gap_ms = SFU_SPEAKING_GAP_MS;
  s->smoothed = LEVEL_SILENCE;
  s->last_ms = 0;
  s->smoothed_ms = 0;
  s->run_ms = 0;
  s->hold_ms = 0;
  s->seen = 0;
  s->in_run = 0;
  s->active = 0;
}

/* Move the average towards `level` for the time since it last moved. */
static void smooth(sfu_speaking_t *s, int level, uint64_t now_ms) {
  uint64_t dt = elapsed(s->smoothed_ms, now_ms);
  float a;

  if (s->smooth_ms == 0)
    a = 1.0f;
  else
    a = 1.0f - expf(-(float)dt / (float)s->smooth_ms);
  s->smoothed += ((float)level - s->smoothed) * a;
  s->smoothed_ms = now_ms;
}

int sfu_speaking_update(sfu_speaking_t *s, int level, int voice,
                        uint64_t now_ms) {
  int was = s->active, loud, quiet;

  if (level < 0)
    return sfu_speaking_tick(s, now_ms);
  if (level > LEVEL_SILENCE)
    level = LEVEL_SILENCE;
  if (!s->seen) {
    s->seen = 1;
    s->smoothed = (float)level;
    s->smoothed_ms = now_ms;
    s->last_ms = now_ms;
  }
  if (now_ms < s->last_ms)
    now_ms = s->last_ms;

  /* A gap since the last packet is judged before this packet is, as a
     tick would have: speaking may have ended in it. The average is not
     decayed here: without ticks the packet after a long gap simply
     outweighs the old average (dt >> smooth_ms); with ticks it already
     fell during the gap. */
  if (elapsed(s->last_ms, now_ms) > s->gap_ms) {
    s->in_run = 0;
    if (s->active && elapsed(s->hold_ms, now_ms) >= s->off_ms)
      s->active = 0;
  }
  smooth(s, level, now_ms);

  loud = voice != 0 && s->smoothed <= (float)s->on_level;
  quiet = voice == 0 || s->smoothed > (float)s->off_level;
  if (!s->active) {
    if (!loud) {
      s->in_run = 0;
    } else {
      if (!s->in_run) {
        s->in_run = 1;
        s->run_ms = now_ms;
      }
      if (elapsed(s->run_ms, now_ms) >= s->on_ms) {
        s->active = 1;
        s->in_run = 0;
        s->hold_ms = now_ms;
      }
    }
  } else if (!quiet) {
    s->hold_ms = now_ms;
  } else if (elapsed(s->hold_ms, now_ms) >= s->off_ms) {
    s->active = 0;
  }
  s->last_ms = now_ms;
  return s->active != was;
}

int sfu_speaking_tick(sfu_speaking_t *s, uint64_t now_ms) {
  int was = s->active;

  if (!s->seen)
    return 0;
  if (now_ms < s->last_ms)
    now_ms = s->last_ms;
  if (elapsed(s->last_ms, now_ms) > s->gap_ms) {
    s->in_run = 0;
    smooth(s, LEVEL_SILENCE, now_ms); /* the meter falls during DTX */
  }
  if (s->active && elapsed(s->hold_ms, now_ms) >= s->off_ms)
    s->active = 0;
  return s->active != was;
}

int sfu_speaking_active(const sfu_speaking_t *s) {
  return s->active;
}

float sfu_speaking_level(const sfu_speaking_t *s) {
  if (!s->seen || s->smoothed >= (float)LEVEL_SILENCE)
    return 0.0f;
  return powf(10.0f, -s->smoothed / 20.0f);
}
