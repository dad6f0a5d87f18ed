/*
 * test_metrics.c -- Prometheus rendering: cumulative buckets, counters, the
 * node's sums of the rooms' packet counters.
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
  sfu_gauges_t g = {3, 1, 12, 0, 0.5, -1, -1};
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

static void packet_sums_rise_while_rooms_restart(void **state) {
  sfu_metrics_t m;
  uint64_t a_seen[SFU_PKT_N] = {0}, b_seen[SFU_PKT_N] = {0}, now[SFU_PKT_N] = {0};
  sfu_metrics_init(&m);
  now[SFU_PKT_RTP_OUT] = 100;
  sfu_metrics_add_packets(&m, a_seen, now); /* room a: 100 */
  now[SFU_PKT_RTP_OUT] = 150;
  sfu_metrics_add_packets(&m, a_seen, now); /* room a: 50 more */
  now[SFU_PKT_RTP_OUT] = 30;
  sfu_metrics_add_packets(&m, b_seen, now); /* room b: 30 */
  now[SFU_PKT_RTP_OUT] = 20;
  sfu_metrics_add_packets(&m, a_seen, now); /* room a restarted: 20 from 0 */
  sfu_metrics_add_packets(&m, a_seen, now); /* the same report again: nothing */
  assert_int_equal(m.packets[SFU_PKT_RTP_OUT], 200);
  assert_int_equal(a_seen[SFU_PKT_RTP_OUT], 20);
}

static void drops_render_one_series_per_reason(void **state) {
  sfu_metrics_t m;
  sfu_gauges_t g = {0};
  uint64_t seen[SFU_PKT_N] = {0}, now[SFU_PKT_N] = {0};
  char buf[16384];
  sfu_metrics_init(&m);
  for (size_t i = 0; i < SFU_PKT_N; i++) now[i] = 10 + i;
  sfu_metrics_add_packets(&m, seen, now);
  g.journal_backlog = 7;
  size_t n = sfu_metrics_render(&m, &g, buf, sizeof(buf));
  assert_true(n > 0 && n < sizeof(buf));
  assert_non_null(strstr(buf, "sfu_packets_received_total 10\n"));
  assert_non_null(strstr(buf, "sfu_packets_forwarded_total 11\n"));
  assert_non_null(strstr(buf, "# TYPE sfu_packets_dropped_total counter\n"));
  assert_non_null(strstr(buf, "sfu_packets_dropped_total{reason=\"unknown_ssrc\"} 12\n"));
  assert_non_null(strstr(buf, "sfu_packets_dropped_total{reason=\"not_loudest\"} 25\n"));
  assert_non_null(strstr(buf, "sfu_journal_backlog_records 7\n"));
  /* every reason once, under one TYPE line */
  int reasons = 0;
  for (const char *p = buf; (p = strstr(p, "sfu_packets_dropped_total{")) != NULL; p++) reasons++;
  assert_int_equal(reasons, SFU_PKT_N - SFU_PKT_DROP_FIRST);
  g.journal_backlog = -1; /* no journal: no series */
  sfu_metrics_render(&m, &g, buf, sizeof(buf));
  assert_null(strstr(buf, "sfu_journal_backlog_records"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(histogram_buckets_are_cumulative),
      cmocka_unit_test(small_buffer_reports_needed_size),
      cmocka_unit_test(packet_sums_rise_while_rooms_restart),
      cmocka_unit_test(drops_render_one_series_per_reason),
  };
  return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
