/*
 * test_usage.c -- usage periods tile time exactly and follow state changes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "sfu/room/usage.h"

static void states_integrate_between_changes(void **state) {
  sfu_usage_t u;
  sfu_usage_period_t p;
  sfu_usage_init(&u, 1000, 5000000);
  assert_int_equal(sfu_usage_set(&u, SFU_USAGE_CONNECTED, 1, 1000), 1);
  assert_int_equal(sfu_usage_set(&u, SFU_USAGE_CONNECTED, 1, 1200), 0); /* no change */
  sfu_usage_set(&u, SFU_USAGE_AUDIO_PUB, 1, 1500);
  sfu_usage_set(&u, SFU_USAGE_AUDIO_RECV, 1, 2000);
  sfu_usage_set(&u, SFU_USAGE_AUDIO_PUB, 0, 4000); /* muted */
  sfu_usage_set(&u, SFU_USAGE_AUDIO_PUB, 1, 6000); /* unmuted */
  sfu_usage_checkpoint(&u, 11000, 0, &p);
  assert_int_equal(p.ms[SFU_USAGE_CONNECTED], 10000);
  assert_int_equal(p.ms[SFU_USAGE_AUDIO_PUB], 2500 + 5000);
  assert_int_equal(p.ms[SFU_USAGE_AUDIO_RECV], 9000);
  assert_int_equal(p.ms[SFU_USAGE_VIDEO_PUB], 0);
  assert_int_equal(p.start_wall_ms, 5000000);
  assert_int_equal(p.end_wall_ms, 5010000);
}

static void periods_tile_time_without_gaps(void **state) {
  sfu_usage_t u;
  sfu_usage_period_t p;
  uint64_t total = 0;
  int64_t expect_start = 42;
  sfu_usage_init(&u, 0, 42);
  sfu_usage_set(&u, SFU_USAGE_CONNECTED, 1, 0);
  for (uint64_t t = 7; t <= 100000; t += 9973) {
    sfu_usage_checkpoint(&u, t, 0, &p);
    assert_int_equal(p.start_wall_ms, expect_start); /* starts where the last ended */
    expect_start = p.end_wall_ms;
    total += p.ms[SFU_USAGE_CONNECTED];
  }
  sfu_usage_set(&u, SFU_USAGE_CONNECTED, 0, 100000);
  sfu_usage_checkpoint(&u, 130000, 0, &p); /* left at 100 s: nothing after */
  total += p.ms[SFU_USAGE_CONNECTED];
  assert_int_equal(total, 100000);
  assert_int_equal(p.end_wall_ms, 42 + 130000);
}

static void clock_going_backwards_counts_nothing(void **state) {
  sfu_usage_t u;
  sfu_usage_period_t p;
  sfu_usage_init(&u, 5000, 0);
  sfu_usage_set(&u, SFU_USAGE_CONNECTED, 1, 5000);
  sfu_usage_set(&u, SFU_USAGE_AUDIO_PUB, 1, 4000); /* earlier than last: ignored time */
  sfu_usage_checkpoint(&u, 6000, 0, &p);
  assert_int_equal(p.ms[SFU_USAGE_CONNECTED], 1000);
  assert_int_equal(p.ms[SFU_USAGE_AUDIO_PUB], 1000);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(states_integrate_between_changes),
      cmocka_unit_test(periods_tile_time_without_gaps),
      cmocka_unit_test(clock_going_backwards_counts_nothing),
  };
  return cmocka_run_group_tests_name("usage", tests, NULL, NULL);
}
