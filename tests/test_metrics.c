/*
 * test_metrics.c -- Prometheus rendering: cumulative buckets, counters.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sfu/node/metrics.h"

static void histogram_buckets_are_cumulative(void **state) {
  sfu_metrics_t m;
  sfu_gauges_t g = {3, 1, 12, 0, 0.5, -1};
  char buf[8192];
  sfu_metrics_init(&m);
  sfu_histogram_observe(&m.spawn_seconds, 0.0004); /* <= 0.5 ms */
  sfu_histogram_observe(&m.spawn_seconds, 0.0021); /* <= 3 ms */
  sfu_histogram_observe(&m.spawn_seconds, 2.0);    /* overflow */
  m.room_crashes = 4;
  size_t n = sfu_metrics_render(&m, &g, buf, sizeof(buf));
  assert_true(n > 0 && n < sizeof(buf));
  assert_non_null(strstr(buf, "sfu_room_spawn_seconds_bucket{le=\"0.0005\"} 1\n"));
  assert_non_null(strstr(buf, "sfu_room_spawn_seconds_bucket{le=\"0.002\"} 1\n"));
  assert_non_null(strstr(buf, "sfu_room_spawn_seconds_bucket{le=\"0.003\"} 2\n"));
  assert_non_null(strstr(buf, "sfu_room_spawn_seconds_bucket{le=\"0.5\"} 2\n"));
  assert_non_null(strstr(buf, "sfu_room_spawn_seconds_bucket{le=\"+Inf\"} 3\n"));
  assert_non_null(strstr(buf, "sfu_room_spawn_seconds_count 3\n"));
  assert_non_null(strstr(buf, "sfu_room_crashes_total 4\n"));
  assert_non_null(strstr(buf, "sfu_rooms 3\n"));
  assert_non_null(strstr(buf, "sfu_participants 12\n"));
  assert_non_null(strstr(buf, "# TYPE sfu_room_crashes_total counter\n"));
}

static void small_buffer_reports_needed_size(void **state) {
  sfu_metrics_t m;
  sfu_gauges_t g = {0};
  char big[8192], small[64];
  sfu_metrics_init(&m);
  size_t need = sfu_metrics_render(&m, &g, big, sizeof(big));
  assert_int_equal(sfu_metrics_render(&m, &g, small, sizeof(small)), need);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(histogram_buckets_are_cumulative),
      cmocka_unit_test(small_buffer_reports_needed_size),
  };
  return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
