/*
 * test_bwe.c -- transport-wide feedback both ways (twcc.h) and the
 * bandwidth estimator (bwe.h) over a simulated bottleneck.
 *
 * The world: a sender numbers its packets (sfu_twcc_tx_t), a bottleneck of
 * a given rate with a FIFO queue (tail drop past a bound) and optional
 * random loss carries them, the receiver notes arrivals (sfu_twcc_rx_t, on
 * a clock of its own: an offset from the sender's) and writes feedback
 * every 50 ms, which goes back without delay through the real RTCP parser
 * into sfu_twcc_tx_feedback() and the estimator. Time moves in 1 ms steps.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sfu/media/bwe.h"
#include "sfu/media/rtcp.h"
#include "sfu/media/twcc.h"

#define RX_CLOCK_OFFSET_US INT64_C(987654321) /* the receiver's clock is its own */
#define PKT 1200
#define FB_US 50000
#define PROP_US 20000

typedef struct {
  int64_t arr;
  uint16_t seq;
} flight_t;

typedef struct {
  sfu_twcc_tx_t tx;
  sfu_twcc_rx_t rx;
  sfu_bwe_t bwe;
  int64_t now;              /* sender's clock, us */
  double cap_bps;           /* bottleneck */
  int64_t queue_us;         /* its queue bound */
  double loss;
  uint64_t rng;
  int64_t busy_until;
  flight_t fl[8192];
  int fl_head, fl_n;
  int64_t next_fb;
  double credit;            /* bytes the media source may send */
  uint64_t sent, dropped, feedbacks;
} world_t;

static world_t *world(double cap_bps, uint32_t start_bps) {
  world_t *w = calloc(1, sizeof(*w));
  assert_non_null(w);
  sfu_twcc_rx_init(&w->rx);
  sfu_bwe_init(&w->bwe, start_bps, 30000, 20000000);
  w->now = INT64_C(5000000000);
  w->cap_bps = cap_bps;
  w->queue_us = 1000000;
  w->rng = 88172645463325252ULL;
  w->next_fb = w->now + FB_US;
  return w;
}

static double uniform(world_t *w) {
  w->rng ^= w->rng << 13;
  w->rng ^= w->rng >> 7;
  w->rng ^= w->rng << 17;
  return (double)(w->rng >> 11) / (double)(1ULL << 53);
}

static void send_pkt(world_t *w, uint32_t size, int probe) {
  uint16_t seq = sfu_twcc_tx_send(&w->tx, (uint64_t)w->now, size, probe);
  w->sent++;
  if (w->loss > 0 && uniform(w) < w->loss) {
    w->dropped++;
    return;
  }
  int64_t start = w->now > w->busy_until ? w->now : w->busy_until;
  if (start - w->now > w->queue_us) {
    w->dropped++;
    return;
  }
  w->busy_until = start + (int64_t)(size * 8e6 / w->cap_bps);
  assert_true(w->fl_n < 8192);
  w->fl[(w->fl_head + w->fl_n++) % 8192] = (flight_t){w->busy_until + PROP_US, seq};
}

static void on_result(void *arg, const sfu_twcc_result_t *r) {
  sfu_bwe_packet(arg, r->send_us, r->arrival_us, r->size, r->probe);
}

/* Delivers what has arrived by now and, every 50 ms, the feedback. */
static void deliver(world_t *w) {
  while (w->fl_n && w->fl[w->fl_head].arr <= w->now) {
    flight_t *f = &w->fl[w->fl_head];
    sfu_twcc_rx_note(&w->rx, f->seq, (uint64_t)(f->arr + RX_CLOCK_OFFSET_US));
    w->fl_head = (w->fl_head + 1) % 8192;
    w->fl_n--;
  }
  if (w->now < w->next_fb) return;
  w->next_fb += FB_US;
  uint8_t buf[1500];
  int len;
  while ((len = sfu_twcc_rx_feedback(&w->rx, (uint64_t)(w->now + RX_CLOCK_OFFSET_US), 1, 2,
                                     buf, 1200)) > 0) {
    sfu_rtcp_iter_t it;
    sfu_rtcp_hdr_t h;
    sfu_rtcp_iter_init(&it, buf, (size_t)len);
    assert_int_equal(sfu_rtcp_next(&it, &h), 1);
    assert_int_equal(sfu_twcc_tx_feedback(&w->tx, &h, (uint64_t)w->now, on_result, &w->bwe), 0);
    w->feedbacks++;
  }
  sfu_bwe_update(&w->bwe, (uint64_t)w->now);
}

/* `ms` of media at rate_bps (0: at the estimate), paced per ms. */
static void run(world_t *w, int ms, double rate_bps) {
  for (int i = 0; i < ms; i++) {
    w->now += 1000;
    w->credit += (rate_bps > 0 ? rate_bps : sfu_bwe_estimate(&w->bwe)) / 8000.0;
    while (w->credit >= PKT) {
      send_pkt(w, PKT, 0);
      w->credit -= PKT;
    }
    deliver(w);
  }
}

/* A probe cluster of n packets at rate_bps, media going on at media_bps. */
static void probe(world_t *w, int id, int n, double rate_bps, double media_bps) {
  sfu_bwe_probe_begin(&w->bwe, id, n);
  double gap_us = PKT * 8e6 / rate_bps, next = 0;
  for (int sent = 0; sent < n;) {
    if (next <= 0) {
      send_pkt(w, PKT, id);
      sent++;
      next += gap_us;
    }
    next -= 1000;
    run(w, 1, media_bps);
  }
}

/* ---- feedback ------------------------------------------------------------- */

typedef struct {
  sfu_twcc_result_t r[256];
  int n;
} results_t;

static void collect(void *arg, const sfu_twcc_result_t *r) {
  results_t *rs = arg;
  assert_true(rs->n < 256);
  rs->r[rs->n++] = *r;
}

static int feedback_into(sfu_twcc_rx_t *rx, sfu_twcc_tx_t *tx, uint64_t rx_now, uint64_t tx_now,
                         results_t *rs) {
  uint8_t buf[1500];
  int len = sfu_twcc_rx_feedback(rx, rx_now, 7, 9, buf, 1200);
  if (len <= 0) return len;
  sfu_rtcp_iter_t it;
  sfu_rtcp_hdr_t h;
  sfu_rtcp_twcc_t t;
  sfu_rtcp_iter_init(&it, buf, (size_t)len);
  assert_int_equal(sfu_rtcp_next(&it, &h), 1);
  assert_int_equal(sfu_rtcp_fb_kind(&h), SFU_RTCP_FB_TWCC);
  int n = sfu_rtcp_parse_twcc(&h, &t, NULL, NULL, 0);
  assert_int_equal(n, t.status_count);
  assert_int_equal(t.sender_ssrc, 7);
  assert_int_equal(t.media_ssrc, 9);
  assert_int_equal(sfu_twcc_tx_feedback(tx, &h, tx_now, collect, rs), 0);
  return len;
}

/* Numbers, send times, losses and arrival spacing survive the round trip,
 * across a sequence-number wrap; each packet is reported once. */
static void feedback_round_trip(void **state) {
  (void)state;
  static sfu_twcc_tx_t tx;
  static sfu_twcc_rx_t rx;
  results_t rs = {.n = 0};
  memset(&tx, 0, sizeof(tx));
  sfu_twcc_rx_init(&rx);
  tx.next_seq = 65500;
  uint64_t t0 = 7000000, r0 = 123456000;
  for (int i = 0; i < 100; i++) {
    uint16_t seq = sfu_twcc_tx_send(&tx, t0 + (uint64_t)i * 1000, 500 + (size_t)i, i == 3);
    assert_int_equal(seq, (uint16_t)(65500 + i));
    if (i == 10 || i == 11 || i == 50) continue; /* lost */
    /* arrives 30 ms later, with an extra 7 ms on every 10th */
    sfu_twcc_rx_note(&rx, seq, r0 + (uint64_t)i * 1000 + (i % 10 == 0 ? 7000 : 0));
  }
  /* the feedback at the very microsecond of the last arrival (an even
   * one: its stamp is 1 us ahead) */
  uint64_t rnow = r0 + 99000;
  assert_true(feedback_into(&rx, &tx, rnow, t0 + 200000, &rs) > 0);
  assert_int_equal(rs.n, 100);
  int64_t first_arr = -1;
  for (int i = 0; i < 100; i++) {
    const sfu_twcc_result_t *r = &rs.r[i];
    assert_int_equal(r->send_us, (int64_t)(t0 + (uint64_t)i * 1000));
    assert_int_equal(r->size, 500 + i);
    assert_int_equal(r->probe, i == 3);
    if (i == 10 || i == 11 || i == 50) {
      assert_true(r->arrival_us < 0);
      continue;
    }
    int64_t want = (int64_t)i * 1000 + (i % 10 == 0 ? 7000 : 0);
    if (first_arr < 0) first_arr = r->arrival_us;
    int64_t got = r->arrival_us - first_arr + 7000; /* the first came 7 ms late */
    assert_true(got >= want - 250 && got <= want + 250);
  }
  /* nothing new: no feedback; a late packet already reported lost: none */
  sfu_twcc_rx_note(&rx, (uint16_t)(65500 + 50), rnow);
  assert_int_equal(feedback_into(&rx, &tx, rnow + 1000, t0 + 201000, &rs), 0);
  /* the same feedback twice reports nothing twice */
  rs.n = 0;
  for (int i = 100; i < 110; i++)
    sfu_twcc_rx_note(&rx, sfu_twcc_tx_send(&tx, t0 + (uint64_t)i * 1000, 100, 0),
                     rnow + (uint64_t)i * 1000);
  assert_true(feedback_into(&rx, &tx, rnow + 200000, t0 + 300000, &rs) > 0);
  assert_int_equal(rs.n, 10);
}

/* A gap longer than a receive delta spans (8 s) splits the feedback, and a
 * small buffer takes what fits and leaves the rest for the next call. */
static void feedback_splits(void **state) {
  (void)state;
  static sfu_twcc_tx_t tx;
  static sfu_twcc_rx_t rx;
  results_t rs = {.n = 0};
  memset(&tx, 0, sizeof(tx));
  sfu_twcc_rx_init(&rx);
  for (int i = 0; i < 4; i++) {
    uint16_t seq = sfu_twcc_tx_send(&tx, (uint64_t)i * 1000, 100, 0);
    sfu_twcc_rx_note(&rx, seq, 1000000 + (uint64_t)i * (i == 3 ? 4000000 : 1000));
  }
  uint64_t rnow = 20000000;
  assert_true(feedback_into(&rx, &tx, rnow, 20000000, &rs) > 0);
  assert_int_equal(rs.n, 3);
  assert_true(feedback_into(&rx, &tx, rnow, 20000000, &rs) > 0);
  assert_int_equal(rs.n, 4);
  assert_int_equal(feedback_into(&rx, &tx, rnow, 20000000, &rs), 0);

  uint8_t small[120];
  for (int i = 0; i < 200; i++)
    sfu_twcc_rx_note(&rx, sfu_twcc_tx_send(&tx, 9000000 + (uint64_t)i * 1000, 100, 0),
                     rnow + (uint64_t)i * 1000);
  int total = 0, len;
  while ((len = sfu_twcc_rx_feedback(&rx, rnow + 300000, 1, 1, small, sizeof(small))) > 0) {
    sfu_rtcp_iter_t it;
    sfu_rtcp_hdr_t h;
    sfu_rtcp_twcc_t t;
    assert_true((size_t)len <= sizeof(small));
    sfu_rtcp_iter_init(&it, small, (size_t)len);
    assert_int_equal(sfu_rtcp_next(&it, &h), 1);
    assert_true(sfu_rtcp_parse_twcc(&h, &t, NULL, NULL, 0) > 0);
    assert_int_equal(t.base_seq, (uint16_t)(4 + total));
    total += t.status_count;
  }
  assert_int_equal(total, 200);
}

/* ---- the estimator ---------------------------------------------------------- */

/* Media at 2 Mb/s into a 1 Mb/s bottleneck with a deep queue (no loss):
 * the delay trend says overuse and the estimate falls below the
 * bottleneck, from the delay alone. */
static void steps_down_on_delay_growth(void **state) {
  (void)state;
  world_t *w = world(1000000, 2000000);
  w->queue_us = 5000000;
  run(w, 3000, 2000000);
  printf("# delay: estimate %u bps, acked %u, cuts %llu (loss cuts %llu), dropped %llu\n",
         sfu_bwe_estimate(&w->bwe), w->bwe.acked_bps, (unsigned long long)w->bwe.delay_cuts,
         (unsigned long long)w->bwe.loss_cuts, (unsigned long long)w->dropped);
  assert_int_equal(w->dropped, 0);
  assert_true(w->bwe.delay_cuts >= 1);
  assert_int_equal(w->bwe.loss_cuts, 0);
  assert_true(sfu_bwe_estimate(&w->bwe) < 1000000);
  assert_true(sfu_bwe_estimate(&w->bwe) > 500000);
  free(w);
}

/* Below the bottleneck nothing is cut, and the estimate grows to 1.5x
 * what is acknowledged, no further. */
static void holds_without_congestion(void **state) {
  (void)state;
  world_t *w = world(5000000, 600000);
  run(w, 15000, 1000000);
  printf("# steady: estimate %u bps, acked %u\n", sfu_bwe_estimate(&w->bwe), w->bwe.acked_bps);
  assert_int_equal(w->bwe.delay_cuts + w->bwe.loss_cuts, 0);
  assert_true(sfu_bwe_estimate(&w->bwe) >= 1400000);
  assert_true(sfu_bwe_estimate(&w->bwe) <= 1560000);
  free(w);
}

/* 20 % random loss on a path with room: the loss-based part cuts; 1 %
 * loss cuts nothing. */
static void steps_down_on_loss(void **state) {
  (void)state;
  world_t *w = world(10000000, 1500000);
  w->loss = 0.2;
  run(w, 5000, 1000000);
  printf("# 20%% loss: estimate %u bps, loss %.2f, cuts %llu\n", sfu_bwe_estimate(&w->bwe),
         w->bwe.loss, (unsigned long long)w->bwe.loss_cuts);
  assert_true(w->bwe.loss_cuts >= 1);
  assert_true(sfu_bwe_estimate(&w->bwe) < 1000000);
  free(w);

  w = world(10000000, 1500000);
  w->loss = 0.01;
  run(w, 3000, 1000000);
  assert_int_equal(w->bwe.loss_cuts, 0);
  assert_true(sfu_bwe_estimate(&w->bwe) >= 1400000);
  free(w);
}

/* 5 % random loss holds the loss-based estimate but not the delay-based
 * one: after a second of a 600 kb/s bottleneck (delay cuts) on a path with
 * that loss, the estimate climbs again once the bottleneck goes. */
static void moderate_loss_does_not_keep_a_delay_cut(void **state) {
  (void)state;
  world_t *w = world(10000000, 1500000);
  w->loss = 0.05;
  run(w, 3000, 1000000);
  uint32_t before = sfu_bwe_estimate(&w->bwe);
  w->cap_bps = 600000;
  run(w, 1000, 1000000);
  uint32_t cut = sfu_bwe_estimate(&w->bwe);
  w->cap_bps = 10000000;
  run(w, 8000, 1000000);
  printf("# 5%% loss: estimate %u bps, %u after a bottleneck, %u 8 s later; loss cuts %llu\n",
         before, cut, sfu_bwe_estimate(&w->bwe), (unsigned long long)w->bwe.loss_cuts);
  assert_true(w->bwe.delay_cuts >= 1);
  assert_true(cut < before * 0.8);
  assert_int_equal(w->bwe.loss_cuts, 0);
  assert_true(sfu_bwe_estimate(&w->bwe) >= 800000);
  free(w);
}

/* Low media on a wide path: the estimate cannot pass 1.5x the media; a
 * probe cluster at 2 Mb/s lifts it to about 2 Mb/s at once. On a 700 kb/s
 * path the same probe measures the path, not the probe. */
static void probes_up(void **state) {
  (void)state;
  world_t *w = world(5000000, 400000);
  run(w, 2000, 300000);
  assert_true(sfu_bwe_estimate(&w->bwe) <= 470000);
  probe(w, 1, 30, 2000000, 300000);
  run(w, 200, 300000);
  printf("# probe: %u bps -> estimate %u\n", w->bwe.probe_bps, sfu_bwe_estimate(&w->bwe));
  assert_int_equal(w->bwe.probes_ok, 1);
  assert_true(w->bwe.probe_bps >= 1700000 && w->bwe.probe_bps <= 2300000);
  assert_true(sfu_bwe_estimate(&w->bwe) >= 1700000);
  free(w);

  w = world(700000, 400000);
  run(w, 2000, 300000);
  probe(w, 2, 30, 2000000, 300000);
  run(w, 500, 300000);
  printf("# probe on 700 kb/s: %u bps -> estimate %u\n", w->bwe.probe_bps,
         sfu_bwe_estimate(&w->bwe));
  assert_true(w->bwe.probe_bps >= 500000 && w->bwe.probe_bps <= 800000);
  assert_true(sfu_bwe_estimate(&w->bwe) <= 800000);
  free(w);
}

/* A sender that sends what the estimate allows, from well below a 1 Mb/s
 * bottleneck: it grows to the bottleneck and stays around it, without a
 * queue growing without bound (nothing dropped at a 1 s queue). */
static void closed_loop_settles(void **state) {
  (void)state;
  world_t *w = world(1000000, 300000);
  double sum = 0;
  uint32_t lo = UINT32_MAX, hi = 0;
  for (int s = 0; s < 40; s++) {
    run(w, 1000, 0);
    if (s >= 25) {
      uint32_t e = sfu_bwe_estimate(&w->bwe);
      sum += e;
      lo = e < lo ? e : lo;
      hi = e > hi ? e : hi;
    }
  }
  printf("# closed loop on 1 Mb/s: last 15 s mean %.0f bps (%u..%u), cuts %llu, dropped %llu\n",
         sum / 15, lo, hi, (unsigned long long)w->bwe.delay_cuts,
         (unsigned long long)w->dropped);
  assert_true(sum / 15 > 600000 && sum / 15 < 1150000);
  assert_true(w->bwe.delay_cuts >= 1);
  assert_int_equal(w->dropped, 0);
  free(w);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(feedback_round_trip),
      cmocka_unit_test(feedback_splits),
      cmocka_unit_test(steps_down_on_delay_growth),
      cmocka_unit_test(holds_without_congestion),
      cmocka_unit_test(steps_down_on_loss),
      cmocka_unit_test(moderate_loss_does_not_keep_a_delay_cut),
      cmocka_unit_test(probes_up),
      cmocka_unit_test(closed_loop_settles),
  };
  return cmocka_run_group_tests_name("bwe", tests, NULL, NULL);
}
