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
 *   - A receiver whose room moved to another node switches legs
 *     (sfu_rxcheck_switch(), tools/client/peer.h): from then on it plays
 *     what the new node forwards, under that node's sequence numbers, and
 *     the same packets the old node had already delivered may come again.
 *     Those are played once: counted as `leg_duplicated`, not duplicates,
 *     by a second bitmap of what arrived since the switch. The new offset
 *     is found by payload, as a resync is, but not counted as one.
 *   - What a switch cost: the packets sent within a time window that never
 *     arrived (sfu_rxcheck_missing()), and the longest pause between
 *     packets played (sfu_playlog_t: the play times of one stream).
 *   - For video, whether the switch needs a keyframe wait (sfu_vresume_t):
 *     a decoder of the new connection (a browser's, which decodes it from
 *     its first keyframe even before it is shown) can show the video
 *     played from it at once if that connection delivered a keyframe
 *     before the first picture played from it, and nothing since.
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

/* Packets matched, counted by the second of sending they were sent in:
 * counts[k] for send times in [start_us + k s, start_us + (k + 1) s).
 * Shared by every check that points at it; start_us 0: not counting yet. */
typedef struct sfu_rxsec_s {
  uint64_t start_us;        /* monotonic; 0 = nothing counted */
  uint64_t *counts;         /* `cap` of them, owned by whoever made it */
  size_t cap;               /* later seconds are not counted */
} sfu_rxsec_t;

typedef struct sfu_rxcheck_s {
  sfu_sentlog_t *log;       /* the publisher's */
  sfu_hist_t *lat;          /* shared by a track's receivers */
  sfu_rxsec_t *by_sec;      /* NULL, or where matched packets are counted
                               by their second of sending (borrowed) */
  int clock;
  sfu_seq_unwrap_t unwrap;
  int synced;
  int64_t offset;           /* received ext - sent ext */
  uint64_t first_n;         /* ordinal of the first packet matched */
  uint64_t last_n;          /* highest ordinal matched */
  int closed;               /* the receiver left: expect nothing after last_n */
  uint64_t max_ext;
  uint8_t seen[SFU_SENTLOG_SIZE / 8]; /* arrived, for ext in (max_ext - SIZE, max_ext] */
  uint8_t fresh[SFU_SENTLOG_SIZE / 8]; /* ... and since the last leg switch */
  uint64_t received, matched, duplicated, reordered, corrupt;
  uint64_t too_old;         /* arrived more than SIZE packets late */
  uint64_t resyncs;         /* the sequence offset moved (e.g. after a
                               server mute): legitimate, counted */
  uint64_t switches;        /* legs switched (the room moved) */
  uint64_t leg_duplicated;  /* arrived before a switch and again after it,
                               on the new leg: played once, not an error */
  int switching;            /* the next offset found is the new leg's */
  double jitter;            /* RTP clock units */
  int64_t last_transit;
  int have_transit;
} sfu_rxcheck_t;

uint64_t sfu_payload_hash(const uint8_t *p, size_t len);
void sfu_sentlog_put(sfu_sentlog_t *log, const sfu_rtp_t *r, uint64_t now_us);
void sfu_rxcheck_init(sfu_rxcheck_t *c, sfu_sentlog_t *log, sfu_hist_t *lat, int clock);
/* From now on, count matched packets in `by_sec` too (borrowed; it must
 * outlive the check). */
void sfu_rxcheck_count_by_second(sfu_rxcheck_t *c, sfu_rxsec_t *by_sec);
/* One arriving (decrypted) packet. */
void sfu_rxcheck_packet(sfu_rxcheck_t *c, const sfu_rtp_t *r, uint64_t now_us);
/* The receiver leaves (or the subscription ends): packets sent after the
 * last one that arrived are not expected any more. */
void sfu_rxcheck_close(sfu_rxcheck_t *c);
/* Packets sent since the first match (until the close) that did not
 * arrive (>= 0). */
uint64_t sfu_rxcheck_lost(const sfu_rxcheck_t *c);
/* The receiver switched legs (its room moved to another node): packets
 * that arrived before may arrive once more, with another sequence offset. */
void sfu_rxcheck_switch(sfu_rxcheck_t *c);
/* Packets sent at [from_us, to_us] that count (after the first match; up
 * to the last one for a closed check) and have not arrived. Only packets
 * still in the publisher's log (its last SFU_SENTLOG_SIZE) are looked at. */
uint64_t sfu_rxcheck_missing(const sfu_rxcheck_t *c, uint64_t from_us, uint64_t to_us);

#define SFU_PLAYLOG_SIZE 512 /* play times kept: 5 s of 10 ms packets */

/* When one stream's packets were played (arrived new), the last
 * SFU_PLAYLOG_SIZE of them, in order. Zeroed is empty. */
typedef struct sfu_playlog_s {
  uint64_t at_us[SFU_PLAYLOG_SIZE];
  uint64_t n;               /* plays logged in all */
} sfu_playlog_t;

void sfu_playlog_put(sfu_playlog_t *l, uint64_t now_us);
/* The longest interval in µs between consecutive plays that ends within
 * (from_us, to_us] (the first may be before from_us); with `open_end`
 * (the stream was still being sent at to_us) also from the last play to
 * to_us, or the whole window when nothing was played. `*end_us` (if not
 * NULL) is when it ended: the play after it, or to_us. Plays older than
 * the log holds are not seen. */
uint64_t sfu_playlog_gap(const sfu_playlog_t *l, uint64_t from_us, uint64_t to_us, int open_end,
                         uint64_t *end_us);

/* One video subscription across one move of its room, as the new leg
 * (the new node's connection) delivers it: unplayed before the switch,
 * played after it. Its keyframes and its sequence numbers (the new node
 * numbers the stream without gaps) tell when a decoder fed by the new leg
 * alone could show what is played: from the first picture played after
 * the switch if a keyframe came before it with nothing missing since
 * (`keyed`), else from the first picture played after such a keyframe.
 * Owned by the receiver's subscription; zeroed is a move not begun. */
typedef struct sfu_vresume_s {
  uint64_t switch_us;       /* the switch (monotonic); 0: not switched */
  uint64_t key_us;          /* the new leg's first keyframe arrived; 0: none yet */
  sfu_seq_unwrap_t unwrap;  /* the new leg's sequence numbers */
  int chain;                /* a keyframe came: its numbers are followed */
  uint64_t max_ext;         /* highest number since that keyframe */
  uint64_t holes;           /* numbers missing since it (late ones fill) */
  uint64_t first_us;        /* the first picture played after the switch; 0: none */
  int keyed;                /* ... was decodable at once */
  uint64_t resume_us;       /* the first picture played that was decodable; 0: none */
} sfu_vresume_t;

/* The move began (`migrate`): the new leg is not heard yet. */
void sfu_vresume_start(sfu_vresume_t *v);
/* The played leg switched to the new one at now_us. */
void sfu_vresume_switch(sfu_vresume_t *v, uint64_t now_us);
/* A packet of the new leg: its sequence number as it came, whether a
 * decoder can start at it (`keyframe`, its first packet) and whether it
 * starts a picture (`begins`), and `played`: after the switch and not a
 * copy of one the old leg had played. */
void sfu_vresume_packet(sfu_vresume_t *v, uint16_t seq, int keyframe, int begins, int played,
                        uint64_t now_us);

void sfu_hist_add(sfu_hist_t *h, uint64_t us);
/* The q-quantile (0..1) in µs; 0 when empty. */
uint64_t sfu_hist_quantile(const sfu_hist_t *h, double q);

#endif
