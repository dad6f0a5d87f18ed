/*
 * test_speaking.c -- the speaking detector on synthetic levels and on a
 * real capture decoded by the Opus meter.
 *
 * Synthetic tests mostly set smooth_ms = 0 so the thresholds and durations
 * can be checked to the millisecond; the smoothing tests compute the
 * expected EMA here, in double precision, from the rule in sfu/media/speaking.h.
 * Packets are 20 ms apart unless a test says otherwise.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include <cmocka.h>

#include "codecs/opus.h"
#include "sfu/base/sfu.h"
#include "sfu/media/speaking.h"

#define LOUD 20  /* -20 dBov: ordinary speech */
#define QUIET 90 /* -90 dBov: a quiet room */

/* Feed `level` every 20 ms for t in [from, to]; return the time of the
   first state change, or UINT64_MAX if none. */
static uint64_t feed(sfu_speaking_t *s, int level, uint64_t from,
                     uint64_t to) {
  uint64_t t, first = UINT64_MAX;
  for (t = from; t <= to; t += 20)
    if (sfu_speaking_update(s, level, -1, t) && first == UINT64_MAX)
      first = t;
  return first;
}

static void sharp(sfu_speaking_t *s) {
  sfu_speaking_init(s);
  s->smooth_ms = 0;
}

static void init_defaults(void **state) {
  sfu_speaking_t s;
  sfu_speaking_init(&s);
  assert_int_equal(s.on_level, 50);
  assert_int_equal(s.off_level, 60);
  assert_int_equal(s.on_ms, 100);
  assert_int_equal(s.off_ms, 400);
  assert_int_equal(sfu_speaking_active(&s), 0);
  assert_true(sfu_speaking_level(&s) == 0.0f);
  assert_int_equal(sfu_speaking_tick(&s, 1000), 0); /* nothing seen yet */
}

/* Loud from 220: the run starts at 220 and lasts on_ms at 320. */
static void starts_after_on_ms(void **state) {
  sfu_speaking_t s;
  sharp(&s);
  assert_int_equal(feed(&s, QUIET, 0, 200), UINT64_MAX);
  assert_int_equal(feed(&s, LOUD, 220, 300), UINT64_MAX);
  assert_int_equal(sfu_speaking_active(&s), 0);
  assert_int_equal(sfu_speaking_update(&s, LOUD, -1, 320), 1);
  assert_int_equal(sfu_speaking_active(&s), 1);
  assert_int_equal(feed(&s, LOUD, 340, 600), UINT64_MAX);
  /* exactly at the threshold counts as loud: level 50 = -50 dBov */
  sharp(&s);
  assert_int_equal(feed(&s, 50, 0, 200), 100);
  sharp(&s);
  assert_int_equal(feed(&s, 51, 0, 200), UINT64_MAX);
}

/* With the default smoothing, the start comes on_ms after the first packet
   that pulls the average to on_level or below. */
static void starts_with_smoothing(void **state) {
  sfu_speaking_t s;
  double ema = QUIET, a = 1.0 - exp(-20.0 / SFU_SPEAKING_SMOOTH_MS);
  uint64_t t, loud_at = 0;

  for (t = 220; loud_at == 0; t += 20) {
    ema += (LOUD - ema) * a;
    if (ema <= SFU_SPEAKING_ON_LEVEL)
      loud_at = t;
  }
  assert_int_equal(loud_at, 240); /* 90 -> 62.5 -> 45.8 */
  sfu_speaking_init(&s);
  assert_int_equal(feed(&s, QUIET, 0, 200), UINT64_MAX);
  assert_int_equal(feed(&s, LOUD, 220, 1000), loud_at + SFU_SPEAKING_ON_MS);
}

/* A click (one loud packet) never starts speaking, nor does a 40 ms burst;
   with smoothing even the loudest click does not reach on_level. */
static void ignores_click(void **state) {
  sfu_speaking_t s;
  sharp(&s);
  feed(&s, QUIET, 0, 480);
  assert_int_equal(sfu_speaking_update(&s, 0, -1, 500), 0);
  assert_int_equal(feed(&s, QUIET, 520, 1000), UINT64_MAX);
  assert_int_equal(feed(&s, 0, 1020, 1040), UINT64_MAX);
  assert_int_equal(feed(&s, QUIET, 1060, 2000), UINT64_MAX);
  assert_int_equal(sfu_speaking_active(&s), 0);

  sfu_speaking_init(&s);
  feed(&s, QUIET, 0, 480);
  assert_int_equal(sfu_speaking_update(&s, 0, 1, 500), 0);
  assert_true(s.smoothed > SFU_SPEAKING_ON_LEVEL); /* 90 * exp(-0.5) = 54.6 */
  assert_int_equal(feed(&s, QUIET, 520, 2000), UINT64_MAX);
}

/* Pauses shorter than off_ms, and levels between the two thresholds, keep
   speaking on. */
static void holds_through_short_pauses(void **state) {
  sfu_speaking_t s;
  sharp(&s);
  assert_int_equal(feed(&s, LOUD, 0, 1000), 100);
  /* last loud packet at 1000; quiet until 1380 is 380 ms < 400 */
  assert_int_equal(feed(&s, QUIET, 1020, 1380), UINT64_MAX);
  assert_int_equal(feed(&s, LOUD, 1400, 1600), UINT64_MAX);
  /* -55 dBov: not loud enough to start, not quiet enough to stop */
  assert_int_equal(feed(&s, 55, 1620, 5000), UINT64_MAX);
  assert_int_equal(sfu_speaking_active(&s), 1);
  sharp(&s);
  assert_int_equal(feed(&s, 55, 0, 2000), UINT64_MAX);
  assert_int_equal(sfu_speaking_active(&s), 0);
}

/* Quiet packets for off_ms after the last loud one end speaking, at the
   first packet at which the silence reached off_ms. */
static void stops_after_off_ms(void **state) {
  sfu_speaking_t s;
  sharp(&s);
  assert_int_equal(feed(&s, LOUD, 0, 1000), 100);
  assert_int_equal(feed(&s, QUIET, 1020, 1380), UINT64_MAX);
  assert_int_equal(sfu_speaking_update(&s, QUIET, -1, 1400), 1);
  assert_int_equal(sfu_speaking_active(&s), 0);
  /* and it can start again, on_ms after the next loud run begins */
  assert_int_equal(feed(&s, LOUD, 2000, 3000), 2100);
}

/* DTX: the packets stop. Ticks end speaking off_ms after the last one, and
   the display level falls. */
static void stops_on_tick(void **state) {
  sfu_speaking_t s;
  uint64_t t;
  float before;

  sfu_speaking_init(&s);
  assert_int_not_equal(feed(&s, LOUD, 0, 1000), UINT64_MAX);
  before = sfu_speaking_level(&s);
  assert_true(before > 0.09f && before < 0.11f); /* -20 dBov = 0.1 */
  for (t = 1020; t < 1400; t += 20)
    assert_int_equal(sfu_speaking_tick(&s, t), 0);
  assert_true(sfu_speaking_level(&s) < before / 100.0f);
  assert_int_equal(sfu_speaking_active(&s), 1);
  assert_int_equal(sfu_speaking_tick(&s, 1400), 1);
  assert_int_equal(sfu_speaking_active(&s), 0);
  assert_int_equal(sfu_speaking_tick(&s, 1420), 0);
  /* ticks at another rate end it at the same time */
  sfu_speaking_init(&s);
  feed(&s, LOUD, 0, 1000);
  assert_int_equal(sfu_speaking_tick(&s, 1399), 0);
  assert_int_equal(sfu_speaking_tick(&s, 1450), 1);
}

/* Without any tick, the first packet after a long silence ends the old
   segment; it then takes a fresh on_ms to start again. */
static void gap_without_tick(void **state) {
  sfu_speaking_t s;
  sharp(&s);
  feed(&s, LOUD, 0, 1000);
  assert_int_equal(sfu_speaking_update(&s, LOUD, -1, 2000), 1);
  assert_int_equal(sfu_speaking_active(&s), 0);
  assert_int_equal(feed(&s, LOUD, 2020, 3000), 2100);
  /* a gap over gap_ms breaks a loud run: 0, 20, then 200 starts anew */
  sharp(&s);
  assert_int_equal(feed(&s, LOUD, 0, 20), UINT64_MAX);
  assert_int_equal(feed(&s, LOUD, 200, 1000), 300);
  /* a gap up to gap_ms (lost packets) does not */
  sharp(&s);
  assert_int_equal(feed(&s, LOUD, 0, 20), UINT64_MAX);
  assert_int_equal(feed(&s, LOUD, 120, 1000), 120);
}

static void voice_flag(void **state) {
  sfu_speaking_t s;
  uint64_t t;

  sharp(&s); /* the sender's VAD says no voice: loud noise never starts */
  for (t = 0; t <= 1000; t += 20)
    assert_int_equal(sfu_speaking_update(&s, LOUD, 0, t), 0);
  sharp(&s);
  for (t = 0; t < 100; t += 20)
    assert_int_equal(sfu_speaking_update(&s, LOUD, 1, t), 0);
  assert_int_equal(sfu_speaking_update(&s, LOUD, 1, 100), 1);
  /* speaking: V=0 counts as quiet whatever the level */
  for (t = 120; t < 500; t += 20)
    assert_int_equal(sfu_speaking_update(&s, LOUD, 0, t), 0);
  assert_int_equal(sfu_speaking_update(&s, LOUD, 0, 500), 1);
}

static void odd_inputs(void **state) {
  sfu_speaking_t s;
  sharp(&s);
  feed(&s, LOUD, 0, 1000);
  /* a meter error is no observation: acts as tick */
  assert_int_equal(sfu_speaking_update(&s, SFU_EPROTO, -1, 1200), 0);
  assert_int_equal(sfu_speaking_update(&s, SFU_EPROTO, -1, 1400), 1);
  /* out-of-range levels clamp; time going backwards is taken as "now" */
  assert_int_equal(sfu_speaking_update(&s, 1000, -1, 1500), 0);
  assert_true(sfu_speaking_level(&s) == 0.0f);
  assert_int_equal(sfu_speaking_update(&s, LOUD, -1, 10), 0);
  assert_int_equal(s.last_ms, 1500);
}

/* ------------------------------------------------------------------------ */
/* Real capture                                                             */

typedef struct {
  uint64_t on[16], off[16];
  int n;
} segs_t;

/*
 * Decode tests/data/opus/speech-dtx.bin (format in test_opus.c) with the
 * meter and run the detector at the packets' arrival times, with a tick
 * every 20 ms while no packet comes, as a room timer would.
 */
static void run_capture(uint32_t off_ms, segs_t *out) {
  char path[1024];
  const char *slash = strrchr(__FILE__, '/');
  uint8_t *data;
  size_t size, off = 0;
  FILE *f;
  sfu_opus_meter_t *m;
  sfu_speaking_t s;
  uint64_t last = 0, t;
  int first = 1;

  snprintf(path, sizeof(path), "%.*s/data/opus/speech-dtx.bin",
           slash ? (int)(slash - __FILE__) : 1, slash ? __FILE__ : ".");
  f = fopen(path, "rb");
  if (f == NULL)
    fail_msg("cannot open %s", path);
  data = malloc(1 << 20);
  assert_non_null(data);
  size = fread(data, 1, 1 << 20, f);
  fclose(f);
  assert_int_equal(sfu_opus_meter_create(&m), 0);
  sfu_speaking_init(&s);
  s.off_ms = off_ms;
  memset(out, 0, sizeof(*out));

  while (off + 16 <= size) {
    size_t len = (size_t)data[off] << 8 | data[off + 1];
    uint64_t now = ((uint64_t)data[off + 8] << 24 | data[off + 9] << 16 |
                    data[off + 10] << 8 | data[off + 11]) / 1000;
    int lv;
    for (t = last + 20; !first && t < now; t += 20)
      if (sfu_speaking_tick(&s, t)) {
        assert_int_equal(sfu_speaking_active(&s), 0);
        out->off[out->n - 1] = t;
      }
    lv = sfu_opus_meter_feed(m, data + off + 16, len);
    assert_in_range(lv, 0, 127);
    if (sfu_speaking_update(&s, lv, -1, now)) {
      if (sfu_speaking_active(&s)) {
        assert_true(out->n < 16);
        out->on[out->n++] = now;
      } else {
        out->off[out->n - 1] = now;
      }
    }
    last = now;
    first = 0;
    off += 16 + len;
  }
  for (t = last + 20; t < last + 2000; t += 20)
    if (sfu_speaking_tick(&s, t))
      out->off[out->n - 1] = t;
  assert_int_equal(sfu_speaking_active(&s), 0);
  sfu_opus_meter_destroy(m);
  free(data);
}

/*
 * What the capture holds (levels from the meter, times are arrival):
 * 0.49 s of lead-in at -93..-99 dBov, then espeak sentences up to 11.0 s
 * with words at -11..-45 dBov; between phrases the encoder keeps sending
 * low-level frames (-83..-101 dBov), never DTX; the longest such pauses
 * are 15 packets, 2613-2893 ms and 7973-8253 ms; the rest are 7-10
 * packets. Only after 11.0 s does DTX start (a packet every 420 ms).
 *
 * Defaults (off_ms 400): every pause is shorter than off_ms, so the whole
 * speech is exactly 1 segment. It starts at 653 ms (the level crosses -50
 * dBov at 553 ms, + on_ms) and ends by tick in the DTX tail, 400 ms after
 * the last non-quiet packet at 10713 ms, before the next DTX refresh packet
 * at 11453 ms: the brief's "2 segments separated by DTX gaps" cannot
 * happen in this capture with off_ms 400, because its only DTX is at the
 * end.
 *
 * off_ms 250: the two 300 ms pauses now end speaking, the shorter ones
 * still do not: exactly 3 segments, split inside those two pauses.
 */
static void speech_capture_segments(void **state) {
  segs_t g;

  run_capture(400, &g);
  assert_int_equal(g.n, 1);
  assert_int_equal(g.on[0], 653);
  /* after the last 20 ms packet (11033) and before the next packet: the
     stop came from a tick */
  assert_true(g.off[0] >= 10713 + 400);
  assert_true(g.off[0] > 11033 && g.off[0] < 11453);

  run_capture(250, &g);
  assert_int_equal(g.n, 3);
  assert_int_equal(g.on[0], 653);
  assert_true(g.off[0] > 2613 && g.off[0] <= 2893);
  assert_true(g.on[1] > 2893 && g.on[1] < 3300);
  assert_true(g.off[1] > 7973 && g.off[1] <= 8253);
  assert_true(g.on[2] > 8253 && g.on[2] < 8700);
  assert_true(g.off[2] >= 10713 + 250 && g.off[2] < 11453);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(init_defaults),
      cmocka_unit_test(starts_after_on_ms),
      cmocka_unit_test(starts_with_smoothing),
      cmocka_unit_test(ignores_click),
      cmocka_unit_test(holds_through_short_pauses),
      cmocka_unit_test(stops_after_off_ms),
      cmocka_unit_test(stops_on_tick),
      cmocka_unit_test(gap_without_tick),
      cmocka_unit_test(voice_flag),
      cmocka_unit_test(odd_inputs),
      cmocka_unit_test(speech_capture_segments),
  };
  return cmocka_run_group_tests_name("speaking", tests, NULL, NULL);
}
