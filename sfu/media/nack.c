/*
 * nack.c -- retransmission cache, RTX wrapping, NACK generator.
 *
 * RETRANSMISSION CACHE
 *
 * A NACK names sequence numbers the subscriber did not get; the answer
 * must be the very bytes we sent under those numbers (the outbound SRTP
 * session allows repeated sequence numbers only because the plaintext is
 * identical, see srtp.h). The forwarder's copy is per subscriber (its own
 * SSRC, sequence and timestamp offsets, extension map), so the cache is
 * per outbound stream too and must copy: it cannot hold a reference to
 * the publisher's receive slot.
 *
 * Memory layout: one block, allocated on the first put, holding
 *
 *   ent[slots]     FIFO ring of entries in the order packets were put:
 *                  {put time, last answer time, arena offset, length,
 *                  seq, answers so far}
 *   index[slots]   seq & (slots - 1) -> FIFO position, 0xFFFF = none
 *   arena[n]       the packet bytes, a byte ring in FIFO order,
 *                  n = min(max_bytes, slots * 1500)
 *
 * Why a byte ring and not slots x MTU: video packets are not all full
 * (the last packet of each frame, small frames of a low layer, padding),
 * so a byte ring holds more packets per byte, the byte budget is simply
 * the arena size, and each packet stays contiguous so get() hands out a
 * pointer with no copy. The price is at most one packet's worth of unused
 * bytes at the end of the ring when a packet does not fit there and goes
 * to offset 0 instead. With slots x MTU the budget would have to be
 * accounted separately from the memory, which is always the maximum.
 *
 * Invariants:
 *   - FIFO entries head .. head + count - 1 (mod slots) occupy the arena
 *     in that order, each contiguous; the arena is "wrapped" when the
 *     newest entry ends at or before the oldest begins (tail_off <=
 *     ent[head].off), and then the free run is [tail_off, head's off);
 *     otherwise the free runs are [tail_off, arena_len) and [0, head's
 *     off).
 *   - index[k] is 0xFFFF or the FIFO position of an entry with
 *     seq & mask == k; only the newest packet put for k is reachable. An
 *     entry superseded that way stays in the FIFO (it still holds arena
 *     bytes) until it reaches the head; dropping an entry clears the
 *     index only if the index still points at it.
 *   - put times are non-decreasing along the FIFO (the clock is clamped),
 *     so expiry only ever looks at the head.
 *
 * A put therefore costs one memcpy plus O(1) amortised bookkeeping (each
 * entry is dropped once); a get is O(1) plus the expiry of old heads.
 *
 * RTX
 *
 * RFC 4588 §4: the retransmission payload is the 2-byte original sequence
 * number (OSN) followed by the original payload; the header is the
 * original one with the RTX stream's payload type, SSRC and sequence
 * number. Padding is not retransmitted (its meaning was only the length).
 *
 * NACK GENERATOR
 *
 * The state is a window of SFU_NACK_WINDOW slots indexed by the extended
 * sequence number modulo the window: slot[s & mask] describes s for s in
 * (highest - WINDOW, highest]. When `highest` moves forward by d, each of
 * the d slots it moves over belonged to a number now leaving the window;
 * if that number was still missing it is given up. Numbers are never
 * stored: the slot position and `highest` say which number a slot holds.
 *
 * Timing rule (numbers in docs/internals/nack.md): a gap is NACKed first
 * after reorder_ms or once reorder_pkts newer packets arrived (fast at
 * high packet rates, bounded wait at low ones), then every max(rtt,
 * retry_ms) (no point asking again before the answer could be back), at
 * most max_tries times. A jump of more than the window, or a restart far
 * behind (two consecutive numbers older than the window), starts over
 * with nothing missing: the caller sends a PLI instead of hundreds of
 * NACKs. sfu_nack_gen_due() returns at most SFU_NACK_MAX_PER_CALL numbers,
 * oldest first; the rest wait for the next call.
 */
#include <stdlib.h>
#include <string.h>

#include "sfu/base/bytes.h"
#include "sfu/media/nack.h"

/* ======================================================================== */
/* Retransmission cache                                                     */

#define NO_ENTRY 0xFFFFu

struct sfu_rtx_entry_s {
  uint64_t put_ms;  /* when it was put */
  uint64_t sent_ms; /* last answer (valid when sends > 0) */
  uint32_t off;     /* arena offset */
  uint16_t len;     /* packet length */
  uint16_t seq;     /* RTP sequence number */
  uint8_t sends;    /* answers given */
};

static int is_pow2(size_t v) {
  return v != 0 && (v & (v - 1)) == 0;
}

static uint64_t clamp_now(uint64_t *last, uint64_t now) {
  if (now < *last)
    return *last;
  *last = now;
  return now;
}

int sfu_rtx_cache_init(sfu_rtx_cache_t *c, size_t slots, size_t max_bytes,
                       uint32_t max_age_ms) {
  memset(c, 0, sizeof(*c));
  if (slots == 0)
    slots = SFU_RTX_CACHE_SLOTS;
  if (max_bytes == 0)
    max_bytes = SFU_RTX_CACHE_MAX_BYTES;
  if (max_age_ms == 0)
    max_age_ms = SFU_RTX_CACHE_MAX_AGE_MS;
  if (!is_pow2(slots) || slots > SFU_RTX_CACHE_MAX_SLOTS ||
      max_bytes < SFU_RTX_CACHE_MIN_BYTES ||
      max_bytes > SFU_RTX_CACHE_MAX_BUDGET)
    return SFU_EINVAL;
  c->max_resends = SFU_RTX_CACHE_MAX_RESENDS;
  c->resend_ms = SFU_RTX_CACHE_RESEND_MS;
  c->slots = (uint32_t)slots;
  c->max_age_ms = max_age_ms;
  c->max_bytes = max_bytes;
  c->arena_len = max_bytes;
  if (c->arena_len > slots * SFU_RTX_CACHE_SLOT_BYTES)
    c->arena_len = slots * SFU_RTX_CACHE_SLOT_BYTES;
  return 0;
}

void sfu_rtx_cache_free(sfu_rtx_cache_t *c) {
  free(c->mem);
  memset(c, 0, sizeof(*c));
}

/* The one allocation: entries, then the index, then the arena. */
static int cache_alloc(sfu_rtx_cache_t *c) {
  size_t ent_sz = c->slots * sizeof(sfu_rtx_entry_t);
  size_t idx_sz = c->slots * sizeof(uint16_t);

  c->mem = malloc(ent_sz + idx_sz + c->arena_len);
  if (c->mem == NULL)
    return SFU_ENOMEM;
  c->ent = (sfu_rtx_entry_t *)(void *)c->mem;
  c->index = (uint16_t *)(void *)(c->mem + ent_sz);
  c->arena = c->mem + ent_sz + idx_sz;
  memset(c->index, 0xFF, idx_sz);
  c->head = 0;
  c->count = 0;
  c->tail_off = 0;
  c->bytes = 0;
  return 0;
}

/* Drop the oldest entry. */
static void drop_head(sfu_rtx_cache_t *c) {
  sfu_rtx_entry_t *e = &c->ent[c->head];
  uint32_t mask = c->slots - 1;

  if (c->index[e->seq & mask] == c->head)
    c->index[e->seq & mask] = NO_ENTRY;
  c->bytes -= e->len;
  c->head = (c->head + 1) & mask;
  if (--c->count == 0)
    c->tail_off = 0;
}

static void expire(sfu_rtx_cache_t *c, uint64_t now) {
  while (c->count > 0 && now - c->ent[c->head].put_ms > c->max_age_ms) {
    drop_head(c);
    c->evicted_age++;
  }
}

/* Arena offset for `len` bytes (len <= arena_len), dropping the oldest
   entries until a contiguous free run that long exists. */
static size_t make_room(sfu_rtx_cache_t *c, size_t len) {
  size_t h;

  for (;;) {
    if (c->count == 0)
      return 0;
    h = c->ent[c->head].off;
    if (c->tail_off > h) { /* data in [h, tail_off) */
      if (c->arena_len - c->tail_off >= len)
        return c->tail_off;
      if (h >= len)
        return 0; /* leave the end unused, go round */
    } else if (h - c->tail_off >= len) { /* wrapped: free [tail_off, h) */
      return c->tail_off;
    }
    drop_head(c);
    c->evicted_bytes++;
  }
}

int sfu_rtx_cache_put(sfu_rtx_cache_t *c, const uint8_t *pkt, size_t len,
                      uint16_t seq, uint64_t now_ms) {
  sfu_rtx_entry_t *e;
  uint32_t mask, pos, k;
  size_t off;

  if (c->slots == 0 || len < SFU_RTP_HEADER_LEN)
    return SFU_EINVAL;
  if (c->mem == NULL && cache_alloc(c) != 0) {
    c->alloc_failures++;
    return SFU_ENOMEM;
  }
  now_ms = clamp_now(&c->last_ms, now_ms);
  mask = c->slots - 1;
  k = seq & mask;
  expire(c, now_ms);
  if (len > c->arena_len || len > UINT16_MAX) {
    /* Forget an older copy under the same number: it is not what was
       sent last. */
    if (c->index[k] != NO_ENTRY && c->ent[c->index[k]].seq == seq)
      c->index[k] = NO_ENTRY;
    c->too_big++;
    return SFU_E2BIG;
  }
  if (c->count == c->slots) {
    drop_head(c);
    c->evicted_slots++;
  }
  off = make_room(c, len);
  pos = (c->head + c->count) & mask;
  e = &c->ent[pos];
  e->put_ms = now_ms;
  e->sent_ms = 0;
  e->off = (uint32_t)off;
  e->len = (uint16_t)len;
  e->seq = seq;
  e->sends = 0;
  memcpy(c->arena + off, pkt, len);
  c->count++;
  c->tail_off = off + len;
  c->bytes += len;
  c->index[k] = (uint16_t)pos;
  c->stored++;
  return 0;
}

int sfu_rtx_cache_get(sfu_rtx_cache_t *c, uint16_t seq, uint64_t now_ms,
                      const uint8_t **pkt) {
  sfu_rtx_entry_t *e;
  uint32_t pos;

  *pkt = NULL;
  if (c->mem == NULL) {
    c->misses++;
    return 0;
  }
  now_ms = clamp_now(&c->last_ms, now_ms);
  expire(c, now_ms);
  pos = c->index[seq & (c->slots - 1)];
  if (pos == NO_ENTRY || c->ent[pos].seq != seq) {
    c->misses++;
    return 0;
  }
  e = &c->ent[pos];
  if (e->sends >= c->max_resends ||
      (e->sends > 0 && now_ms - e->sent_ms < c->resend_ms)) {
    c->resend_limited++;
    return 0;
  }
  e->sends++;
  e->sent_ms = now_ms;
  c->hits++;
  *pkt = c->arena + e->off;
  return e->len;
}

/* ======================================================================== */
/* RTX                                                                      */

/*
 * RFC 4588 §4, the retransmission packet:
 *
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                         RTP Header                            |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |            OSN                |                               |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               |
 * |                  Original RTP Packet Payload                  |
 * |                                                               |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * "RTP Header" is the whole header: CSRCs and extension block included.
 */
int sfu_rtx_wrap(const uint8_t *pkt, size_t len, uint8_t rtx_pt,
                 uint32_t rtx_ssrc, uint16_t rtx_seq, uint8_t *out,
                 size_t cap) {
  sfu_rtp_t p;
  size_t hl, n;

  if (sfu_rtp_parse(pkt, len, &p) != 0)
    return SFU_EPROTO;
  hl = p.header_len;
  n = hl + 2 + p.payload_len;
  if (n > cap)
    return SFU_E2BIG;
  /* Payload first: in place it moves 2 bytes right over nothing that is
     still needed. */
  memmove(out + hl + 2, pkt + hl, p.payload_len);
  if (out != pkt)
    memcpy(out, pkt, hl);
  sfu_wr16(out + hl, p.seq);
  out[0] &= (uint8_t)~0x20; /* no padding */
  sfu_rtp_set_pt(out, rtx_pt);
  sfu_rtp_set_seq(out, rtx_seq);
  sfu_rtp_set_ssrc(out, rtx_ssrc);
  return (int)n;
}

int sfu_rtx_unwrap(uint8_t *pkt, size_t len, uint8_t pt, uint32_t ssrc) {
  sfu_rtp_t p;
  uint16_t osn;

  if (sfu_rtp_parse(pkt, len, &p) != 0)
    return SFU_EPROTO;
  if (p.payload_len == 0 && p.has_padding)
    return 0; /* padding-only probe */
  if (p.payload_len < 2)
    return SFU_EPROTO;
  osn = sfu_rd16(pkt + p.payload_off);
  memmove(pkt + p.payload_off, pkt + p.payload_off + 2, p.payload_len - 2);
  pkt[0] &= (uint8_t)~0x20;
  sfu_rtp_set_pt(pkt, pt);
  sfu_rtp_set_seq(pkt, osn);
  sfu_rtp_set_ssrc(pkt, ssrc);
  return (int)(p.payload_off + p.payload_len - 2);
}

/* ======================================================================== */
/* NACK generator                                                           */

#define WMASK (SFU_NACK_WINDOW - 1)

void sfu_nack_gen_init(sfu_nack_gen_t *g) {
  memset(g, 0, sizeof(*g));
  g->reorder_ms = SFU_NACK_REORDER_MS;
  g->reorder_pkts = SFU_NACK_REORDER_PKTS;
  g->retry_ms = SFU_NACK_RETRY_MS;
  g->max_tries = SFU_NACK_MAX_TRIES;
}

/* Start tracking at `seq` with nothing missing; pending gaps are given
   up. */
static void restart(sfu_nack_gen_t *g, uint16_t seq) {
  g->given_up += g->pending;
  g->pending = 0;
  memset(g->slot, 0, sizeof(g->slot));
  g->unwrap.init = 0;
  g->highest = sfu_seq_unwrap(&g->unwrap, seq);
  g->restart_armed = 0;
}

/* `highest` moves forward to ext (ext - highest <= WINDOW): the numbers
   in between become missing, those leaving the window are given up. */
static void advance(sfu_nack_gen_t *g, uint64_t ext, uint64_t now) {
  sfu_nack_slot_t *sl;
  uint64_t s;

  g->advances++;
  for (s = g->highest + 1; s <= ext; s++) {
    sl = &g->slot[s & WMASK];
    if (sl->missing) { /* s - WINDOW leaves the window */
      g->given_up++;
      g->pending--;
    }
    if (s == ext) {
      sl->missing = 0;
      continue;
    }
    sl->missing = 1;
    sl->tries = 0;
    sl->t_ms = now;
    sl->adv = g->advances;
    g->pending++;
    g->missing++;
  }
  g->highest = ext;
}

int sfu_nack_gen_feed(sfu_nack_gen_t *g, uint16_t seq, uint64_t now_ms) {
  sfu_nack_slot_t *sl;
  uint64_t ext;

  now_ms = clamp_now(&g->last_ms, now_ms);
  if (!g->unwrap.init) {
    restart(g, seq);
    g->advances++;
    return SFU_NACK_FED;
  }
  ext = sfu_seq_unwrap(&g->unwrap, seq);
  if (ext > g->highest) {
    if (ext - g->highest > SFU_NACK_WINDOW) {
      restart(g, seq);
      g->advances++;
      g->resets++;
      return SFU_NACK_RESET;
    }
    advance(g, ext, now_ms);
    return SFU_NACK_FED;
  }
  if (g->highest - ext >= SFU_NACK_WINDOW) {
    /* Older than the window: a stray, or the sender restarted lower. */
    if (g->restart_armed && seq == (uint16_t)g->restart_seq) {
      restart(g, seq);
      g->advances++;
      g->resets++;
      return SFU_NACK_RESET;
    }
    g->restart_seq = (uint16_t)(seq + 1);
    g->restart_armed = 1;
    return SFU_NACK_FED;
  }
  sl = &g->slot[ext & WMASK];
  if (!sl->missing)
    return SFU_NACK_FED; /* duplicate, or given up already */
  sl->missing = 0;
  g->pending--;
  if (sl->tries > 0) {
    g->recovered++;
    return SFU_NACK_RECOVERED;
  }
  g->reordered++;
  return SFU_NACK_FED;
}

int sfu_nack_gen_due(sfu_nack_gen_t *g, uint64_t now_ms, uint32_t rtt_ms,
                     uint16_t *out_seqs, int max) {
  sfu_nack_slot_t *sl;
  uint64_t s, interval;
  uint32_t seen = 0, todo;
  int n = 0, ready;

  if (max > SFU_NACK_MAX_PER_CALL)
    max = SFU_NACK_MAX_PER_CALL;
  if (max <= 0 || g->pending == 0)
    return 0;
  now_ms = clamp_now(&g->last_ms, now_ms);
  interval = rtt_ms > g->retry_ms ? rtt_ms : g->retry_ms;
  todo = g->pending;
  /* The window is (highest - WINDOW, highest]; highest is never missing. */
  for (s = g->highest - (SFU_NACK_WINDOW - 1); s < g->highest && seen < todo;
       s++) {
    sl = &g->slot[s & WMASK];
    if (!sl->missing)
      continue;
    if (n == max)
      break;
    seen++;
    if (sl->tries == 0)
      ready = now_ms - sl->t_ms >= g->reorder_ms ||
              (g->reorder_pkts > 0 &&
               g->advances - sl->adv + 1 >= g->reorder_pkts);
    else
      ready = now_ms - sl->t_ms >= interval;
    if (!ready)
      continue;
    if (sl->tries >= g->max_tries) {
      sl->missing = 0;
      g->pending--;
      g->given_up++;
      continue;
    }
    sl->tries++;
    sl->t_ms = now_ms;
    out_seqs[n++] = (uint16_t)s;
    g->nacked++;
  }
  return n;
}
