/*
 * bwe.h -- a send-side bandwidth estimator for one subscriber's downlink,
 * in the manner of Google Congestion Control (draft-ietf-rmcat-gcc-02):
 * fed with each packet's send time, arrival time (or loss) and size from
 * transport-wide feedback (twcc.h), it keeps an estimate of what the path
 * to the subscriber carries. docs/internals/bwe.md explains the numbers.
 *
 *   delay     packets sent within 5 ms form a group; the growth of each
 *             group's one-way delay over the previous one, accumulated and
 *             smoothed, goes through a least-squares trend over the last
 *             20 groups. A trend above an adaptive threshold is overuse
 *             (a queue builds up): the estimate drops to 85 % of what was
 *             acknowledged as received in the last 500 ms. Below minus the
 *             threshold (a queue drains) it holds; otherwise it grows, by
 *             8 % a second far from the last drop, additively near it --
 *             never beyond 1.5 x what is acknowledged (the path has shown
 *             no more).
 *   loss      over every 20 or more packets reported: more than 10 % lost
 *             cuts the estimate by half the loss fraction (at most every
 *             300 ms, and judging only packets sent after the last cut
 *             of either kind, so one burst of loss is not answered twice); 2 % to
 *             10 % stops it growing.
 *   probes    packets sent as one probe cluster (the caller sends padding
 *             at a chosen rate, sfu_bwe_probe_begin()) measure the path
 *             above what media uses: the lower of the cluster's send and
 *             receive rate, once enough of it is reported, raises the
 *             estimate if it is higher.
 *
 * Sans-IO: no clock (times are the caller's microseconds; arrival times
 * are the receiver's clock, of which only differences are used), no
 * allocation, one owner.
 */
#ifndef SFU_BWE_H
#define SFU_BWE_H

#include <stdint.h>

#define SFU_BWE_WINDOW 20       /* groups in the trend */
#define SFU_BWE_CLUSTERS 4      /* probe clusters followed at once */
#define SFU_BWE_ACK_BUCKETS 10  /* 50 ms each: the acknowledged rate's 500 ms */

typedef enum { SFU_BWE_NORMAL, SFU_BWE_OVERUSE, SFU_BWE_UNDERUSE } sfu_bwe_signal_t;

typedef struct sfu_bwe_cluster_s {
  uint8_t id;                   /* 0 = free */
  int expected;                 /* packets sent in it */
  int received, lost;
  int64_t first_send, last_send, first_arr, last_arr;
  uint32_t bytes, first_size, last_size;
} sfu_bwe_cluster_t;

typedef struct sfu_bwe_s {
  uint32_t min_bps, max_bps;
  uint32_t estimate_bps;        /* the estimate: the lower of ... */
  uint32_t delay_bps;           /* ... the delay-based one (grows while the
                                   delay does not, whatever the loss) ... */
  uint32_t loss_bps;            /* ... and the loss-based one (cut over 10 %,
                                   held at 2-10 %, grows under 2 %) */
  /* groups of packets sent within 5 ms */
  int grp_open, have_prev;
  int64_t grp_first_send, grp_send, grp_arr; /* first send, last send, last arrival */
  int64_t prev_send, prev_arr;  /* the previous complete group's */
  /* trend of the accumulated, smoothed delay growth */
  double acc_ms, smoothed_ms, first_arr_ms;
  double xs[SFU_BWE_WINDOW], ys[SFU_BWE_WINDOW];
  int nwin, win_pos, ndeltas;
  double trend, prev_modified, threshold, last_thr_ms;
  double overuse_ms;            /* time spent over the threshold, -1 = not */
  int overuse_n;
  sfu_bwe_signal_t signal;      /* the detector's */
  /* acknowledged rate: bytes by 50 ms of arrival time */
  uint32_t ack_bytes[SFU_BWE_ACK_BUCKETS];
  int64_t ack_bucket;           /* the newest bucket's number, -1 = none */
  int64_t ack_first, ack_last;  /* first and latest arrival */
  uint32_t acked_bps;           /* over the last 500 ms, 0 = unknown */
  /* rate control */
  int increasing;               /* else holding */
  uint64_t last_update_us, last_decrease_us, last_loss_cut_us;
  uint32_t link_bps;            /* acknowledged rate at the last decrease, 0 = none */
  /* loss */
  int loss_n, loss_lost;        /* reported since the last judgement ... */
  uint64_t loss_since_us;       /* ... which was then */
  int64_t loss_epoch_us;        /* the last cut: packets sent before it
                                   are not judged for loss */
  int loss_hold;                /* 2-10 % lost: loss_bps holds */
  double loss;                  /* the last judged fraction */
  /* probes */
  sfu_bwe_cluster_t clusters[SFU_BWE_CLUSTERS];
  uint32_t probe_bps;           /* the last probe's result, 0 = none */
  /* counters */
  uint64_t delay_cuts, loss_cuts, probes_ok, probes_failed;
} sfu_bwe_t;

void sfu_bwe_init(sfu_bwe_t *b, uint32_t start_bps, uint32_t min_bps, uint32_t max_bps);
/* One packet of a feedback: sent at send_us, arrived at arrival_us (the
 * receiver's clock; < 0 = lost), `size` bytes, of probe cluster `probe`
 * (0 = none). In sequence order. */
void sfu_bwe_packet(sfu_bwe_t *b, int64_t send_us, int64_t arrival_us, uint32_t size, int probe);
/* The end of a feedback (now_us, our clock): the estimate moves. */
void sfu_bwe_update(sfu_bwe_t *b, uint64_t now_us);
/* A probe cluster `id` (1..255) of `packets` packets is being sent: its
 * result is judged once 80 % of them are reported. */
void sfu_bwe_probe_begin(sfu_bwe_t *b, int id, int packets);
static inline uint32_t sfu_bwe_estimate(const sfu_bwe_t *b) { return b->estimate_bps; }

#endif
