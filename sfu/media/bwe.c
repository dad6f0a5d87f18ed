/*
 * bwe.c -- the send-side bandwidth estimator (bwe.h; the numbers are
 * GCC's, draft-ietf-rmcat-gcc-02, and docs/internals/bwe.md).
 */
#include "sfu/media/bwe.h"

#include <math.h>
#include <string.h>

#define GROUP_US 5000           /* packets sent within 5 ms: one group */
#define SMOOTHING 0.9
#define TREND_GAIN 4.0
#define THR_START_MS 12.5
#define THR_MIN_MS 6.0
#define THR_MAX_MS 600.0
#define K_UP 0.0087             /* threshold adaptation, rising ... */
#define K_DOWN 0.039            /* ... and falling */
#define OVERUSE_MS 10.0         /* over the threshold this long: overuse */
#define BUCKET_US 50000
#define DECREASE 0.85           /* of the acknowledged rate, on overuse */
#define DECREASE_GAP_US 200000  /* one cut per congestion episode */
#define GROW_PER_S 1.08         /* multiplicative increase */
#define ADD_BPS_PER_S 40000     /* additive increase near the last cut */
#define ACK_HEADROOM 1.5
#define LOSS_PACKETS 100        /* loss judged over this many packets, ... */
#define LOSS_MIN_PACKETS 20     /* ... or this many after LOSS_MAX_US */
#define LOSS_MAX_US 1000000
#define LOSS_HIGH 0.10
#define LOSS_LOW 0.02
#define LOSS_CUT_GAP_US 300000
#define PROBE_MIN_RECEIVED 5

void sfu_bwe_init(sfu_bwe_t *b, uint32_t start_bps, uint32_t min_bps, uint32_t max_bps) {
  memset(b, 0, sizeof(*b));
  b->min_bps = min_bps;
  b->max_bps = max_bps > min_bps ? max_bps : min_bps;
  b->estimate_bps = start_bps < b->min_bps ? b->min_bps
                    : start_bps > b->max_bps ? b->max_bps : start_bps;
  b->delay_bps = b->loss_bps = b->estimate_bps;
  b->threshold = THR_START_MS;
  b->overuse_ms = -1;
  b->ack_bucket = -1;
  b->increasing = 1;
}

/* ---- acknowledged rate ---------------------------------------------------- */

static void ack_add(sfu_bwe_t *b, int64_t arrival_us, uint32_t size) {
  int64_t k = arrival_us / BUCKET_US;
  if (b->ack_bucket < 0) {
    b->ack_bucket = k;
    b->ack_first = arrival_us;
  }
  if (k < b->ack_bucket - (SFU_BWE_ACK_BUCKETS - 1)) return; /* very late */
  for (; b->ack_bucket < k; b->ack_bucket++) /* new buckets start empty */
    b->ack_bytes[(b->ack_bucket + 1) % SFU_BWE_ACK_BUCKETS] = 0;
  b->ack_bytes[k % SFU_BWE_ACK_BUCKETS] += size;
  uint64_t sum = 0;
  for (int i = 0; i < SFU_BWE_ACK_BUCKETS; i++) sum += b->ack_bytes[i];
  if (arrival_us > b->ack_last) b->ack_last = arrival_us;
  /* from the window's start (or the first arrival) to the latest one */
  int64_t start = (b->ack_bucket - (SFU_BWE_ACK_BUCKETS - 1)) * BUCKET_US;
  int64_t span = b->ack_last - (start > b->ack_first ? start : b->ack_first);
  b->acked_bps = span >= 4 * BUCKET_US ? (uint32_t)(sum * 8 * 1000000 / (uint64_t)span) : 0;
}

/* ---- delay: trend and detector -------------------------------------------- */

static void detect(sfu_bwe_t *b, double send_delta_ms, double now_ms) {
  double m = b->trend * (b->ndeltas < 60 ? b->ndeltas : 60) * TREND_GAIN;
  if (m > b->threshold) {
    b->overuse_ms = b->overuse_ms < 0 ? send_delta_ms / 2 : b->overuse_ms + send_delta_ms;
    b->overuse_n++;
    if (b->overuse_ms > OVERUSE_MS && b->overuse_n > 1 && m >= b->prev_modified) {
      b->overuse_ms = 0;
      b->overuse_n = 0;
      b->signal = SFU_BWE_OVERUSE;
    }
  } else {
    b->overuse_ms = -1;
    b->overuse_n = 0;
    b->signal = m < -b->threshold ? SFU_BWE_UNDERUSE : SFU_BWE_NORMAL;
  }
  b->prev_modified = m;
  /* The threshold follows |m| (slowly up, faster down), so that a path
   * whose delay varies by nature (or that a TCP flow shares) is not
   * always overused; a spike far above it moves nothing. */
  double am = fabs(m);
  if (b->last_thr_ms == 0) b->last_thr_ms = now_ms;
  if (am <= b->threshold + 15.0) {
    double dt = now_ms - b->last_thr_ms;
    if (dt > 100) dt = 100;
    b->threshold += (am < b->threshold ? K_DOWN : K_UP) * (am - b->threshold) * dt;
    b->threshold = b->threshold < THR_MIN_MS ? THR_MIN_MS
                   : b->threshold > THR_MAX_MS ? THR_MAX_MS : b->threshold;
  }
  b->last_thr_ms = now_ms;
}

static void trend_add(sfu_bwe_t *b, double delta_ms, double arr_ms, double send_delta_ms) {
  if (b->ndeltas < 1000) b->ndeltas++;
  b->acc_ms += delta_ms;
  b->smoothed_ms = SMOOTHING * b->smoothed_ms + (1 - SMOOTHING) * b->acc_ms;
  if (b->nwin == 0 && b->ndeltas == 1) b->first_arr_ms = arr_ms;
  b->xs[b->win_pos] = arr_ms - b->first_arr_ms;
  b->ys[b->win_pos] = b->smoothed_ms;
  b->win_pos = (b->win_pos + 1) % SFU_BWE_WINDOW;
  if (b->nwin < SFU_BWE_WINDOW) b->nwin++;
  if (b->nwin == SFU_BWE_WINDOW) { /* least squares over the window */
    double xm = 0, ym = 0, num = 0, den = 0;
    for (int i = 0; i < SFU_BWE_WINDOW; i++) xm += b->xs[i], ym += b->ys[i];
    xm /= SFU_BWE_WINDOW;
    ym /= SFU_BWE_WINDOW;
    for (int i = 0; i < SFU_BWE_WINDOW; i++) {
      num += (b->xs[i] - xm) * (b->ys[i] - ym);
      den += (b->xs[i] - xm) * (b->xs[i] - xm);
    }
    if (den > 0) b->trend = num / den;
  }
  detect(b, send_delta_ms, arr_ms);
}

/* A group is complete: its delay growth over the previous one. */
static void group_done(sfu_bwe_t *b) {
  if (b->have_prev) {
    double send_d = (double)(b->grp_send - b->prev_send) / 1000.0;
    double arr_d = (double)(b->grp_arr - b->prev_arr) / 1000.0;
    if (arr_d >= 0) /* else reordered: skip it */
      trend_add(b, arr_d - send_d, (double)b->grp_arr / 1000.0, send_d);
  }
  b->prev_send = b->grp_send;
  b->prev_arr = b->grp_arr;
  b->have_prev = 1;
}

/* ---- probes --------------------------------------------------------------- */

void sfu_bwe_probe_begin(sfu_bwe_t *b, int id, int packets) {
  sfu_bwe_cluster_t *c = &b->clusters[id % SFU_BWE_CLUSTERS];
  memset(c, 0, sizeof(*c));
  c->id = (uint8_t)id;
  c->expected = packets;
}

static void probe_packet(sfu_bwe_t *b, int id, int64_t send_us, int64_t arr_us, uint32_t size) {
  sfu_bwe_cluster_t *c = &b->clusters[id % SFU_BWE_CLUSTERS];
  if (c->id != id) return;
  if (arr_us < 0) {
    c->lost++;
    return;
  }
  if (c->received == 0 || send_us < c->first_send) c->first_send = send_us;
  if (c->received == 0 || send_us > c->last_send) c->last_send = send_us, c->last_size = size;
  if (c->received == 0 || arr_us < c->first_arr) c->first_arr = arr_us, c->first_size = size;
  if (c->received == 0 || arr_us > c->last_arr) c->last_arr = arr_us;
  c->received++;
  c->bytes += size;
}

/* Clusters reported well enough: the rate the path carried them at. */
static void probe_results(sfu_bwe_t *b) {
  for (int i = 0; i < SFU_BWE_CLUSTERS; i++) {
    sfu_bwe_cluster_t *c = &b->clusters[i];
    if (!c->id || c->received + c->lost < c->expected * 4 / 5) continue;
    int64_t send_span = c->last_send - c->first_send, arr_span = c->last_arr - c->first_arr;
    uint32_t rate = 0;
    if (c->received >= PROBE_MIN_RECEIVED && send_span > 0 && arr_span > 0 &&
        c->lost * 10 <= c->received + c->lost) {
      double send = (double)(c->bytes - c->last_size) * 8e6 / (double)send_span;
      double recv = (double)(c->bytes - c->first_size) * 8e6 / (double)arr_span;
      rate = (uint32_t)(recv < send ? recv : send);
    }
    b->probe_bps = rate;
    if (rate > b->estimate_bps) {
      b->estimate_bps = b->delay_bps = b->loss_bps = rate > b->max_bps ? b->max_bps : rate;
      b->link_bps = 0; /* the path carries more than the last cut said */
      b->probes_ok++;
    } else {
      b->probes_failed++;
    }
    c->id = 0;
  }
}

/* ---- feedback ------------------------------------------------------------- */

void sfu_bwe_packet(sfu_bwe_t *b, int64_t send_us, int64_t arrival_us, uint32_t size,
                    int probe) {
  /* loss counts for packets sent after the last cut for loss: those
   * before it were sent at the rate it already answered */
  int judged = send_us >= b->loss_epoch_us;
  b->loss_n += judged;
  if (probe) probe_packet(b, probe, send_us, arrival_us, size);
  if (arrival_us < 0) {
    b->loss_lost += judged;
    return;
  }
  ack_add(b, arrival_us, size);
  if (!b->grp_open) {
    b->grp_open = 1;
    b->grp_first_send = b->grp_send = send_us;
    b->grp_arr = arrival_us;
    return;
  }
  if (send_us < b->grp_first_send) return; /* sent before the group: reordered */
  if (send_us - b->grp_first_send > GROUP_US) {
    group_done(b);
    b->grp_first_send = b->grp_send = send_us;
    b->grp_arr = arrival_us;
    return;
  }
  if (send_us > b->grp_send) b->grp_send = send_us;
  if (arrival_us > b->grp_arr) b->grp_arr = arrival_us;
}

static uint32_t clamp_rate(const sfu_bwe_t *b, double bps) {
  return bps < b->min_bps ? b->min_bps : bps > b->max_bps ? b->max_bps : (uint32_t)bps;
}

/* The delay-based estimate moves with the detector's signal: cut to
 * 0.85x the acknowledged rate on overuse (once per episode), held on
 * underuse, grown otherwise (8 %/s, or 40 kb/s per second near where the
 * queue last built), never far beyond what the path carried. */
static void delay_update(sfu_bwe_t *b, uint64_t now_us, double dt) {
  switch (b->signal) {
  case SFU_BWE_OVERUSE:
    if (now_us - b->last_decrease_us >= DECREASE_GAP_US || !b->last_decrease_us) {
      double base = b->acked_bps ? b->acked_bps : b->delay_bps;
      if (base * DECREASE < b->delay_bps) b->delay_bps = clamp_rate(b, base * DECREASE);
      b->link_bps = b->acked_bps;
      b->last_decrease_us = now_us;
      b->loss_epoch_us = (int64_t)now_us;
      b->delay_cuts++;
    }
    b->increasing = 0;
    return;
  case SFU_BWE_UNDERUSE:
    b->increasing = 0;
    return;
  case SFU_BWE_NORMAL:
    break;
  }
  if (!b->increasing) { /* from hold: grow from the next update on */
    b->increasing = 1;
    return;
  }
  if (dt <= 0) return;
  double est = b->delay_bps;
  if (b->link_bps && b->acked_bps > b->link_bps * 3 / 2) b->link_bps = 0; /* stale */
  if (b->link_bps && est > b->link_bps * 0.9)
    est += ADD_BPS_PER_S * dt; /* near where the queue built: carefully */
  else
    est *= pow(GROW_PER_S, dt);
  /* never beyond what the path has been seen to carry, with headroom */
  if (b->acked_bps) {
    double limit = b->acked_bps * ACK_HEADROOM + 10000;
    if (est > limit) est = limit > b->delay_bps ? limit : b->delay_bps;
  }
  b->delay_bps = clamp_rate(b, est);
}

/* The loss-based estimate, judged over 100 packets (or 20 once a second
 * has passed: a 5 % random loss is over 10 % in 7.5 % of 20-packet samples,
 * 1 % of 100-packet ones): cut by half the loss over 10 % (from the
 * estimate in force), held at 2-10 %, grown like the delay-based one
 * under 2 % (it bounds only while loss says so). */
static void loss_update(sfu_bwe_t *b, uint64_t now_us, double dt) {
  if (!b->loss_since_us) b->loss_since_us = now_us;
  if (b->loss_n >= LOSS_PACKETS ||
      (b->loss_n >= LOSS_MIN_PACKETS && now_us - b->loss_since_us >= LOSS_MAX_US)) {
    b->loss_since_us = now_us;
    b->loss = (double)b->loss_lost / b->loss_n;
    b->loss_hold = b->loss >= LOSS_LOW;
    if (b->loss > LOSS_HIGH && now_us - b->last_loss_cut_us >= LOSS_CUT_GAP_US) {
      b->loss_bps = clamp_rate(b, b->estimate_bps * (1 - 0.5 * b->loss));
      b->last_loss_cut_us = now_us;
      b->loss_epoch_us = (int64_t)now_us;
      b->loss_cuts++;
    }
    b->loss_n = b->loss_lost = 0;
  }
  if (!b->loss_hold && dt > 0 && b->loss_bps < b->max_bps)
    b->loss_bps = clamp_rate(b, b->loss_bps * pow(GROW_PER_S, dt));
}

void sfu_bwe_update(sfu_bwe_t *b, uint64_t now_us) {
  double dt = b->last_update_us ? (double)(now_us - b->last_update_us) / 1e6 : 0;
  if (dt > 1) dt = 1;
  b->last_update_us = now_us;
  probe_results(b);
  loss_update(b, now_us, dt);
  delay_update(b, now_us, dt);
  b->estimate_bps = b->delay_bps < b->loss_bps ? b->delay_bps : b->loss_bps;
}
