/*
 * verify.h -- what sfu-replay checks on the receiving side.
 *
 * The sender logs every packet it sends on a track: its extended sequence
 * number, a 64-bit hash of its payload and its send time, in a ring indexed
 * by sequence number (sfu_sentlog_t). Senders and receivers live in one
 * process, so a receiver looks each arriving packet up in the publisher's
 * log directly:
 *
 *   - The SFU rewrites SSRC, payload type and sequence numbers (a constant
 *     offset per subscriber while a stream flows), never the payload. The
 *     first arriving packet is matched by payload hash against the log (the
 *     newest entry with that hash) and fixes the offset; every later one
 *     must then find its own payload at `seq - offset`; else the payload
 *     is searched again: found, the offset moved (a resync, as after a
 *     server mute); not found, the packet is corrupt.
 *   - Duplicates are found with a bitmap over the same ring, reordering by
 *     arrival below the highest sequence number seen, loss at the end as the
 *     packets sent since the first match (up to the last that arrived, for
 *     a receiver that left) minus those that arrived.
 *   - Added latency is arrival minus send time of the matched packet (one
 *     clock, one process); jitter is RFC 3550's, in the stream's clock.
 *
 * Latency goes into a histogram of 10 µs buckets up to 10 ms and 1 ms
 * buckets up to 10 s, so percentiles cost no per-packet memory.
 */
#ifndef SFU_REPLAY_VERIFY_H
#define SFU_REPLAY_VERIFY_H

#include <stddef.h>
#include <stdint.h>

#include "sfu/media/rtp.h"

#define SFU_SENTLOG_SIZE 4096 /* packets remembered per track (power of 2) */

typedef struct sfu_sent_s {
  uint64_t ext;      /* extended sequence number, +1 (0 = empty slot) */
  uint64_t hash;     /* payload hash */
  uint64_t send_us;  /* monotonic send time */
  uint64_t n;        /* ordinal: packets sent before this one */
} sfu_sent_t;

typedef struct sfu_sentlog_s {
  sfu_sent_t ring[SFU_SENTLOG_SIZE];
  sfu_seq_unwrap_t unwrap;
  uint64_t sent;
} sfu_sentlog_t;

#define SFU_HIST_FINE 1000   /* 10 µs buckets: 0 .. 10 ms */
#define SFU_HIST_COARSE 9990 /* 1 ms buckets: 10 ms .. 10 s */

typedef struct sfu_hist_s {
  uint32_t fine[SFU_HIST_FINE];
  uint32_t coarse[SFU_HIST_COARSE];
  uint64_t over;     /* beyond 10 s */
  uint64_t n;
  uint64_t max_us;
} sfu_hist_t;

typedef struct sfu_rxcheck_s {
  sfu_sentlog_t *log;       /* the publisher's */
  sfu_hist_t *lat;          /* shared by a track's receivers */
  int clock;
  sfu_seq_unwrap_t unwrap;
  int synced;
  int64_t offset;           /* received ext - sent ext */
  uint64_t first_n;         /* ordinal of the first packet matched */
  uint64_t last_n;          /* highest ordinal matched */
  int closed;               /* the receiver left: expect nothing after last_n */
  uint64_t max_ext;
  uint8_t seen[SFU_SENTLOG_SIZE / 8]; /* arrived, for ext in (max_ext - SIZE, max_ext] */
  uint64_t received, matched, duplicated, reordered, corrupt;
  uint64_t too_old;         /* arrived more than SIZE packets late */
  uint64_t resyncs;         /* the sequence offset moved (e.g. after a
                               server mute): legitimate, counted */
  double jitter;            /* RTP clock units */
  int64_t last_transit;
  int have_transit;
} sfu_rxcheck_t;

uint64_t sfu_payload_hash(const uint8_t *p, size_t len);
void sfu_sentlog_put(sfu_sentlog_t *log, const sfu_rtp_t *r, uint64_t now_us);
void sfu_rxcheck_init(sfu_rxcheck_t *c, sfu_sentlog_t *log, sfu_hist_t *lat, int clock);
/* One arriving (decrypted) packet. */
void sfu_rxcheck_packet(sfu_rxcheck_t *c, const sfu_rtp_t *r, uint64_t now_us);
/* The receiver leaves (or the subscription ends): packets sent after the
 * last one that arrived are not expected any more. */
void sfu_rxcheck_close(sfu_rxcheck_t *c);
/* Packets sent since the first match (until the close) that did not
 * arrive (>= 0). */
uint64_t sfu_rxcheck_lost(const sfu_rxcheck_t *c);

void sfu_hist_add(sfu_hist_t *h, uint64_t us);
/* The q-quantile (0..1) in µs; 0 when empty. */
uint64_t sfu_hist_quantile(const sfu_hist_t *h, double q);

#endif
