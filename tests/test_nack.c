/*
 * test_nack.c -- retransmission cache bounds, RTX wrap/unwrap, NACK
 * generator timing, and the three together over a lossy link.
 *
 * Packets are synthetic: a 12-byte header (pt 96, SSRC 0x11223344) and a
 * payload whose bytes are a function of (seq, generation), so a returned
 * packet can be checked to be exactly the one put last under its number.
 * The RTX tests build headers with CSRCs, both extension forms and padding
 * by hand and also round-trip a captured VP8 packet from tests/data/rtp.
 * Times are plain millisecond numbers chosen to land on each boundary.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sfu/base/bytes.h"
#include "sfu/media/nack.h"
#include "sfu/media/rtcp.h"
#include "sfu/media/rtp.h"
#include "sfu/base/sfu.h"

#define SSRC 0x11223344u
#define PT 96

/* ---- helpers ---------------------------------------------------------- */

static uint8_t body_byte(uint16_t seq, uint32_t gen, size_t i) {
  return (uint8_t)(seq * 31u + gen * 17u + i * 7u + 1u);
}

/* A plain RTP packet of `len` (>= 12) bytes for (seq, gen). */
static size_t mkpkt(uint8_t *buf, uint16_t seq, uint32_t gen, size_t len) {
  size_t i;

  buf[0] = 0x80;
  buf[1] = PT;
  sfu_wr16(buf + 2, seq);
  sfu_wr32(buf + 4, 1000u * seq);
  sfu_wr32(buf + 8, SSRC);
  for (i = SFU_RTP_HEADER_LEN; i < len; i++)
    buf[i] = body_byte(seq, gen, i);
  return len;
}

static int is_pkt(const uint8_t *p, size_t len, uint16_t seq, uint32_t gen,
                  size_t want_len) {
  size_t i;

  if (p == NULL || len != want_len || sfu_rd16(p + 2) != seq)
    return 0;
  for (i = SFU_RTP_HEADER_LEN; i < len; i++)
    if (p[i] != body_byte(seq, gen, i))
      return 0;
  return 1;
}

static int put(sfu_rtx_cache_t *c, uint16_t seq, uint32_t gen, size_t len,
               uint64_t now) {
  static uint8_t buf[70000];
  return sfu_rtx_cache_put(c, buf, mkpkt(buf, seq, gen, len), seq, now);
}

/* get() that must hit and return packet (seq, gen) of `len` bytes. */
static void expect_hit(sfu_rtx_cache_t *c, uint16_t seq, uint32_t gen,
                       size_t len, uint64_t now) {
  const uint8_t *p = (const uint8_t *)1;
  int n = sfu_rtx_cache_get(c, seq, now, &p);
  if (!is_pkt(p, (size_t)(n > 0 ? n : 0), seq, gen, len))
    fail_msg("seq %u at %llu: got %d bytes, want %zu of gen %u", seq,
             (unsigned long long)now, n, len, gen);
  assert_true(p >= c->arena && p + n <= c->arena + c->arena_len);
}

static void expect_none(sfu_rtx_cache_t *c, uint16_t seq, uint64_t now) {
  const uint8_t *p = (const uint8_t *)1;
  int n = sfu_rtx_cache_get(c, seq, now, &p);
  if (n != 0)
    fail_msg("seq %u at %llu: got %d bytes, want none", seq,
             (unsigned long long)now, n);
  assert_null(p);
}

/* Deterministic PRNG (xorshift32). */
static uint32_t rnd(uint32_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 17;
  *s ^= *s << 5;
  return *s;
}

/* ======================================================================== */
/* Retransmission cache                                                     */

static void cache_init_args(void **state) {
  sfu_rtx_cache_t c;
  const uint8_t *p = (const uint8_t *)1;

  assert_int_equal(sfu_rtx_cache_init(&c, 0, 0, 0), 0);
  assert_int_equal(c.slots, SFU_RTX_CACHE_SLOTS);
  assert_int_equal(c.max_bytes, 1u << 20);
  assert_int_equal(c.arena_len, 512 * 1500); /* slots * 1500 < 1 MiB */
  assert_int_equal(c.max_age_ms, 1000);
  assert_int_equal(c.max_resends, 3);
  assert_int_equal(c.resend_ms, 10);
  assert_null(c.mem); /* lazy: nothing until the first put */
  assert_int_equal(sfu_rtx_cache_get(&c, 5, 0, &p), 0);
  assert_null(p);
  assert_int_equal(c.misses, 1);
  assert_null(c.mem);
  sfu_rtx_cache_free(&c);

  assert_int_equal(sfu_rtx_cache_init(&c, 3, 0, 0), SFU_EINVAL);
  assert_int_equal(put(&c, 1, 0, 100, 0), SFU_EINVAL); /* unusable */
  sfu_rtx_cache_free(&c);
  assert_int_equal(sfu_rtx_cache_init(&c, 65536, 0, 0), SFU_EINVAL);
  assert_int_equal(sfu_rtx_cache_init(&c, 32768, 0, 0), 0);
  assert_int_equal(c.arena_len, 1u << 20); /* the budget binds */
  assert_int_equal(sfu_rtx_cache_init(&c, 1, 0, 0), 0);
  assert_int_equal(c.arena_len, 1500);
  assert_int_equal(sfu_rtx_cache_init(&c, 16, 11, 0), SFU_EINVAL);
  assert_int_equal(sfu_rtx_cache_init(&c, 16, 12, 0), 0);
  assert_int_equal(sfu_rtx_cache_init(&c, 16, (256u << 20) + 1, 0),
                   SFU_EINVAL);
  assert_int_equal(sfu_rtx_cache_init(&c, 16, 100000, 250), 0);
  assert_int_equal(c.arena_len, 16 * 1500);
  assert_int_equal(c.max_age_ms, 250);
  /* shorter than an RTP header */
  assert_int_equal(put(&c, 1, 0, 11, 0), SFU_EINVAL);
  assert_int_equal(c.stored, 0);
  sfu_rtx_cache_free(&c);
  sfu_rtx_cache_free(&c); /* zeroed: fine */
}

static void cache_put_get(void **state) {
  sfu_rtx_cache_t c;

  assert_int_equal(sfu_rtx_cache_init(&c, 16, 0, 0), 0);
  assert_int_equal(put(&c, 100, 0, 200, 1000), 0);
  assert_non_null(c.mem);
  assert_int_equal(put(&c, 101, 0, 1200, 1001), 0);
  expect_hit(&c, 100, 0, 200, 1005);
  expect_hit(&c, 101, 0, 1200, 1005);
  expect_none(&c, 102, 1005);
  expect_none(&c, 99, 1005);
  expect_none(&c, 100 + 16, 1005); /* same index, other number */
  assert_int_equal(c.stored, 2);
  assert_int_equal(c.hits, 2);
  assert_int_equal(c.misses, 3);
  assert_int_equal(c.count, 2);
  assert_int_equal(c.bytes, 1400);

  /* free, then the cache starts over lazily */
  sfu_rtx_cache_free(&c);
  assert_null(c.mem);
  assert_int_equal(sfu_rtx_cache_init(&c, 16, 0, 0), 0);
  expect_none(&c, 100, 0);
  assert_int_equal(put(&c, 100, 1, 300, 0), 0);
  expect_hit(&c, 100, 1, 300, 0);
  sfu_rtx_cache_free(&c);
}

/* The FIFO holds `slots` packets: the oldest go first. */
static void cache_slots_wrap(void **state) {
  sfu_rtx_cache_t c;
  uint16_t s;

  assert_int_equal(sfu_rtx_cache_init(&c, 8, 0, 0), 0);
  for (s = 0; s < 20; s++)
    assert_int_equal(put(&c, s, 0, 100 + s, s), 0);
  assert_int_equal(c.count, 8);
  assert_int_equal(c.evicted_slots, 12);
  assert_int_equal(c.evicted_bytes, 0);
  for (s = 0; s < 12; s++)
    expect_none(&c, s, 30);
  for (s = 12; s < 20; s++)
    expect_hit(&c, s, 0, 100 + s, 30);
  sfu_rtx_cache_free(&c);
}

/* A newer packet with the same index supersedes: a duplicate number
   returns the newest bytes, a number `slots` later hides the older. */
static void cache_supersede(void **state) {
  sfu_rtx_cache_t c;

  assert_int_equal(sfu_rtx_cache_init(&c, 8, 0, 0), 0);
  assert_int_equal(put(&c, 0, 0, 100, 0), 0);
  assert_int_equal(put(&c, 8, 0, 100, 0), 0);
  expect_none(&c, 0, 1);
  expect_hit(&c, 8, 0, 100, 1);
  /* same number again, other bytes: the newest is served, and it starts
     with a fresh resend budget */
  assert_int_equal(put(&c, 8, 7, 150, 2), 0);
  expect_hit(&c, 8, 7, 150, 3);
  /* the superseded entries still occupy the FIFO until they are oldest */
  assert_int_equal(c.count, 3);
  assert_int_equal(put(&c, 1, 0, 100, 4), 0);
  assert_int_equal(put(&c, 2, 0, 100, 4), 0);
  assert_int_equal(put(&c, 3, 0, 100, 4), 0);
  assert_int_equal(put(&c, 4, 0, 100, 4), 0);
  assert_int_equal(put(&c, 5, 0, 100, 4), 0);
  assert_int_equal(put(&c, 6, 0, 100, 4), 0); /* drops 0 (superseded) */
  assert_int_equal(c.evicted_slots, 1);
  assert_int_equal(put(&c, 7, 0, 100, 4), 0); /* drops the first 8 */
  assert_int_equal(c.evicted_slots, 2);
  /* dropping the first 8 must not unlink the newer 8 */
  expect_hit(&c, 8, 7, 150, 20);
  sfu_rtx_cache_free(&c);
}

/* The byte budget: the oldest go until a contiguous run is free. */
static void cache_byte_budget(void **state) {
  sfu_rtx_cache_t c;
  uint16_t s;

  assert_int_equal(sfu_rtx_cache_init(&c, 64, 5000, 0), 0);
  assert_int_equal(c.arena_len, 5000);
  for (s = 0; s < 5; s++)
    assert_int_equal(put(&c, s, 0, 1000, 0), 0);
  assert_int_equal(c.bytes, 5000);
  assert_int_equal(c.evicted_bytes, 0);
  /* full: the 6th evicts exactly the oldest */
  assert_int_equal(put(&c, 5, 0, 1000, 1), 0);
  assert_int_equal(c.evicted_bytes, 1);
  expect_none(&c, 0, 2);
  for (s = 1; s <= 5; s++)
    expect_hit(&c, s, 0, 1000, 2);
  /* 5 sits at 0, 1..4 at 1000..4999: 2500 bytes need 1, 2 and 3 gone */
  assert_int_equal(put(&c, 6, 0, 2500, 3), 0);
  assert_int_equal(c.evicted_bytes, 4);
  for (s = 1; s <= 3; s++)
    expect_none(&c, s, 20);
  expect_hit(&c, 4, 0, 1000, 20);
  expect_hit(&c, 5, 0, 1000, 20);
  expect_hit(&c, 6, 0, 2500, 20);
  assert_int_equal(c.bytes, 4500);
  /* 1500 fit exactly at the end once 4 (at 4000) is gone */
  assert_int_equal(put(&c, 7, 0, 1500, 4), 0);
  assert_int_equal(c.evicted_bytes, 5);
  assert_int_equal(c.bytes, 5000);
  expect_none(&c, 4, 40);
  expect_hit(&c, 5, 0, 1000, 40);
  expect_hit(&c, 6, 0, 2500, 40);
  expect_hit(&c, 7, 0, 1500, 40);
  /* no room at the end: go round to 0, evicting 5 there */
  assert_int_equal(put(&c, 8, 0, 600, 5), 0);
  assert_int_equal(c.evicted_bytes, 6);
  expect_none(&c, 5, 60);
  expect_hit(&c, 6, 0, 2500, 60);
  expect_hit(&c, 7, 0, 1500, 60);
  expect_hit(&c, 8, 0, 600, 60);
  assert_int_equal(c.evicted_slots, 0);
  assert_int_equal(c.evicted_age, 0);
  sfu_rtx_cache_free(&c);
}

/* Larger than the arena: refused, nothing else lost. Exactly the arena:
   everything else goes. */
static void cache_too_big(void **state) {
  sfu_rtx_cache_t c;

  assert_int_equal(sfu_rtx_cache_init(&c, 8, 3000, 0), 0);
  assert_int_equal(put(&c, 1, 0, 1000, 0), 0);
  assert_int_equal(put(&c, 2, 0, 1000, 0), 0);
  assert_int_equal(put(&c, 3, 0, 3001, 0), SFU_E2BIG);
  assert_int_equal(c.too_big, 1);
  assert_int_equal(c.stored, 2);
  expect_hit(&c, 1, 0, 1000, 1);
  expect_hit(&c, 2, 0, 1000, 1);
  expect_none(&c, 3, 1);
  /* a too-big resend of 2 makes the stored 2 stale: forgotten */
  assert_int_equal(put(&c, 2, 1, 3001, 50), SFU_E2BIG);
  expect_none(&c, 2, 100);
  expect_hit(&c, 1, 0, 1000, 100);
  assert_int_equal(put(&c, 4, 0, 3000, 100), 0);
  assert_int_equal(c.evicted_bytes, 2);
  assert_int_equal(c.count, 1);
  expect_none(&c, 1, 200);
  expect_hit(&c, 4, 0, 3000, 200);
  sfu_rtx_cache_free(&c);

  /* the arena from slots * 1500 is the limit too */
  assert_int_equal(sfu_rtx_cache_init(&c, 8, 0, 0), 0);
  assert_int_equal(put(&c, 1, 0, 12001, 0), SFU_E2BIG);
  assert_int_equal(put(&c, 1, 0, 12000, 0), 0);
  sfu_rtx_cache_free(&c);
  /* and lengths past 16 bits */
  assert_int_equal(sfu_rtx_cache_init(&c, 64, 0, 0), 0);
  assert_int_equal(put(&c, 1, 0, 65536, 0), SFU_E2BIG);
  assert_int_equal(put(&c, 1, 0, 65535, 0), 0);
  expect_hit(&c, 1, 0, 65535, 0);
  sfu_rtx_cache_free(&c);
}

/* Packets older than max_age_ms are dropped (at exactly max_age_ms they
   are still served); the clock never goes backwards. */
static void cache_age(void **state) {
  sfu_rtx_cache_t c;

  assert_int_equal(sfu_rtx_cache_init(&c, 64, 0, 0), 0);
  assert_int_equal(put(&c, 0, 0, 100, 0), 0);
  assert_int_equal(put(&c, 1, 0, 100, 500), 0);
  assert_int_equal(put(&c, 2, 0, 100, 900), 0);
  expect_hit(&c, 0, 0, 100, 1000);
  assert_int_equal(c.evicted_age, 0);
  expect_hit(&c, 1, 0, 100, 1001);
  assert_int_equal(c.evicted_age, 1);
  expect_none(&c, 0, 1001);
  expect_hit(&c, 2, 0, 100, 1500);
  expect_hit(&c, 1, 0, 100, 1500); /* age exactly 1000 */
  expect_none(&c, 1, 1501);
  assert_int_equal(c.evicted_age, 2);
  /* a put expires too */
  assert_int_equal(put(&c, 3, 0, 100, 2000), 0);
  assert_int_equal(c.evicted_age, 3);
  assert_int_equal(c.count, 1);
  assert_int_equal(c.bytes, 100);
  /* a time in the past is taken as the latest one seen */
  expect_hit(&c, 3, 0, 100, 10);
  assert_int_equal(put(&c, 4, 0, 100, 10), 0);
  expect_hit(&c, 4, 0, 100, 3000); /* put at 2000, not 10 */
  expect_none(&c, 4, 3001);
  sfu_rtx_cache_free(&c);

  assert_int_equal(sfu_rtx_cache_init(&c, 64, 0, 100), 0);
  assert_int_equal(put(&c, 9, 0, 100, 50), 0);
  expect_hit(&c, 9, 0, 100, 150);
  expect_none(&c, 9, 151);
  assert_int_equal(c.evicted_age, 1);
  sfu_rtx_cache_free(&c);
}

/* At most max_resends answers per packet, resend_ms apart. */
static void cache_resend_limit(void **state) {
  sfu_rtx_cache_t c;

  assert_int_equal(sfu_rtx_cache_init(&c, 64, 0, 0), 0);
  assert_int_equal(put(&c, 7, 0, 500, 0), 0);
  expect_hit(&c, 7, 0, 500, 50);
  expect_none(&c, 7, 55); /* 5 ms after the first answer */
  expect_none(&c, 7, 59);
  expect_hit(&c, 7, 0, 500, 60);
  expect_hit(&c, 7, 0, 500, 70);
  expect_none(&c, 7, 500); /* three answers given */
  assert_int_equal(c.hits, 3);
  assert_int_equal(c.resend_limited, 3);
  assert_int_equal(c.misses, 0);

  /* the caller tunes both, e.g. resend_ms to the subscriber's RTT */
  c.resend_ms = 100;
  c.max_resends = 5;
  assert_int_equal(put(&c, 8, 0, 500, 600), 0);
  expect_hit(&c, 8, 0, 500, 600);
  expect_none(&c, 8, 699);
  expect_hit(&c, 8, 0, 500, 700);
  /* the limits are per packet */
  expect_hit(&c, 7, 0, 500, 700);
  expect_hit(&c, 7, 0, 500, 800);
  expect_none(&c, 7, 950);
  c.max_resends = 0;
  expect_none(&c, 8, 1000);
  assert_int_equal(c.resend_limited, 6);
  sfu_rtx_cache_free(&c);
}

/* Sequence numbers wrap from 65535 to 0 without a hiccup. */
static void cache_seq_wrap(void **state) {
  sfu_rtx_cache_t c;
  uint16_t s;
  int i;

  assert_int_equal(sfu_rtx_cache_init(&c, 16, 0, 0), 0);
  for (i = 0, s = 65530; i < 12; i++, s++)
    assert_int_equal(put(&c, s, 0, 200 + (size_t)i, 0), 0);
  for (i = 0, s = 65530; i < 12; i++, s++)
    expect_hit(&c, s, 0, 200 + (size_t)i, 1);
  sfu_rtx_cache_free(&c);

  assert_int_equal(sfu_rtx_cache_init(&c, 8, 0, 0), 0);
  for (i = 0, s = 65530; i < 12; i++, s++)
    assert_int_equal(put(&c, s, 0, 200, 0), 0);
  for (i = 0, s = 65530; i < 4; i++, s++)
    expect_none(&c, s, 1);
  for (; i < 12; i++, s++)
    expect_hit(&c, s, 0, 200, 1);
  sfu_rtx_cache_free(&c);
}

/*
 * Random sizes, duplicates, small reorderings, time steps and pauses
 * against a model of what was put last under each number. Whatever get()
 * returns must be that packet and young enough; and the newest packets
 * must all be there as long as they fit in the arena minus two maximum
 * packets (the ring's unused end plus the free run short of one packet
 * that made the last eviction), are in the FIFO, are young enough and are
 * not hidden by an index collision.
 */
#define MODEL_PUTS 6000
static void cache_model(void **state) {
  static uint32_t gen_of[65536];
  static uint64_t put_at[65536];
  static uint16_t len_of[65536];
  static uint16_t hist_seq[MODEL_PUTS], hist_len[MODEL_PUTS];
  sfu_rtx_cache_t c;
  uint32_t r = 0x12345678, gets = 0, ok_puts = 0;
  uint16_t seq = 65000;
  uint64_t now = 0;
  int i, j;

  assert_int_equal(sfu_rtx_cache_init(&c, 64, 20000, 0), 0);
  c.max_resends = 255;
  c.resend_ms = 0;
  for (i = 0; i < MODEL_PUTS; i++) {
    uint32_t x = rnd(&r) % 100;
    uint16_t s;
    size_t len = 12 + rnd(&r) % 1489;
    size_t total = 0;
    uint8_t seen_idx[64];

    if (x < 80)
      s = ++seq;
    else if (x < 90)
      s = (uint16_t)(seq - rnd(&r) % 4); /* resend of a recent one */
    else
      s = (seq += 2);
    now += rnd(&r) % 4;
    if (rnd(&r) % 100 == 0)
      now += 500 + rnd(&r) % 1000; /* a pause: the older ones expire */
    gen_of[s]++;
    put_at[s] = now;
    len_of[s] = (uint16_t)len;
    hist_seq[i] = s;
    hist_len[i] = (uint16_t)len;
    assert_int_equal(put(&c, s, gen_of[s], len, now), 0);
    ok_puts++;
    assert_true(c.count <= c.slots);
    assert_true(c.bytes <= c.arena_len);

    /* the newest ones are all there */
    memset(seen_idx, 0, sizeof(seen_idx));
    for (j = i; j >= 0 && i - j < 64; j--) {
      uint16_t t = hist_seq[j];
      if (now - put_at[t] > c.max_age_ms)
        break;
      total += hist_len[j];
      if (total > c.arena_len - 2 * 1500)
        break;
      if (seen_idx[t & 63] == 1)
        continue; /* a newer put with this index hides or replaces it */
      seen_idx[t & 63] = 1;
      expect_hit(&c, t, gen_of[t], len_of[t], now);
      gets++;
    }
    /* a random recent number: absent, or exactly the last one put */
    {
      uint16_t t = (uint16_t)(seq - rnd(&r) % 200);
      const uint8_t *p;
      int n = sfu_rtx_cache_get(&c, t, now, &p);
      gets++;
      if (n > 0) {
        assert_true(is_pkt(p, (size_t)n, t, gen_of[t], len_of[t]));
        assert_true(now - put_at[t] <= c.max_age_ms);
      }
    }
  }
  assert_int_equal(c.stored, ok_puts);
  assert_int_equal(c.hits + c.misses + c.resend_limited, gets);
  assert_int_equal(c.resend_limited, 0);
  assert_true(c.evicted_bytes > 0);
  assert_true(c.evicted_age > 0);
  sfu_rtx_cache_free(&c);
}

/* ======================================================================== */
/* RTX                                                                      */

#define EXT_NONE 0
#define EXT_ONE 1
#define EXT_TWO 2

/*
 * A packet with `cc` CSRCs, an extension block of the given form, `plen`
 * payload bytes and `pad` bytes of padding (count byte included).
 */
static size_t mkfull(uint8_t *b, int cc, int ext, size_t plen, int pad,
                     int marker) {
  size_t off = 12, i;
  int k;

  b[0] = (uint8_t)(0x80 | (pad ? 0x20 : 0) | (ext ? 0x10 : 0) | cc);
  b[1] = (uint8_t)((marker ? 0x80 : 0) | PT);
  sfu_wr16(b + 2, 0x1234);
  sfu_wr32(b + 4, 0xdeadbeef);
  sfu_wr32(b + 8, SSRC);
  for (k = 0; k < cc; k++, off += 4)
    sfu_wr32(b + off, 0xC0000000u + (uint32_t)k);
  if (ext == EXT_ONE) {
    static const uint8_t e[] = {0xBE, 0xDE, 0x00, 0x02, 0x10, 0xAA,
                                0x32, 0x01, 0x02, 0x03, 0x00, 0x00};
    memcpy(b + off, e, sizeof(e));
    off += sizeof(e);
  } else if (ext == EXT_TWO) {
    static const uint8_t e[] = {0x10, 0x00, 0x00, 0x01, 0x05, 0x02, 0xAB,
                                0xCD};
    memcpy(b + off, e, sizeof(e));
    off += sizeof(e);
  }
  for (i = 0; i < plen; i++)
    b[off++] = (uint8_t)(i * 7 + 3);
  for (k = 0; k < pad; k++)
    b[off++] = k == pad - 1 ? (uint8_t)pad : 0;
  return off;
}

static void rtx_wrap_layout(void **state) {
  uint8_t in[1500], out[1500];
  size_t len = mkfull(in, 2, EXT_ONE, 100, 4, 1);
  size_t hl = 12 + 8 + 4 + 8;
  sfu_rtp_t p;
  int n;

  n = sfu_rtx_wrap(in, len, 97, 0x55667788, 7, out, sizeof(out));
  assert_int_equal(n, (int)(hl + 2 + 100));
  assert_int_equal(out[0], (in[0] & ~0x20) & 0xff); /* P cleared, X/CC kept */
  assert_int_equal(out[1], 0x80 | 97);              /* marker kept */
  assert_int_equal(sfu_rd16(out + 2), 7);
  assert_int_equal(sfu_rd32(out + 4), 0xdeadbeef);
  assert_int_equal(sfu_rd32(out + 8), 0x55667788);
  assert_memory_equal(out + 12, in + 12, hl - 12); /* CSRCs + extensions */
  assert_int_equal(sfu_rd16(out + hl), 0x1234);     /* OSN */
  assert_memory_equal(out + hl + 2, in + hl, 100);
  assert_int_equal(sfu_rtp_parse(out, (size_t)n, &p), 0);
  assert_int_equal(p.pt, 97);
  assert_int_equal(p.csrc_count, 2);
  assert_int_equal(p.has_ext, 1);
  assert_int_equal(p.ext_profile, 0xBEDE);
  assert_int_equal(p.has_padding, 0);
  assert_int_equal(p.payload_len, 102);

  /* the smallest: a bare header, no payload -> header + OSN */
  len = mkfull(in, 0, EXT_NONE, 0, 0, 0);
  n = sfu_rtx_wrap(in, len, 97, 1, 2, out, sizeof(out));
  assert_int_equal(n, 14);
  assert_int_equal(out[1], 97);
  assert_int_equal(sfu_rd16(out + 12), 0x1234);
}

/* Wrap then unwrap gives the original packet minus its padding, for every
   mix of CSRCs, extension form, payload size, padding and marker, both out
   of place and in place. */
static void rtx_roundtrip(void **state) {
  static const int ccs[] = {0, 1, 15};
  static const size_t plens[] = {0, 1, 2, 100, 1180};
  static const int pads[] = {0, 1, 5, 255};
  uint8_t in[1600], out[1600], inplace[1600];
  size_t a, b, c, d, e;
  int n, m, cases = 0;

  for (a = 0; a < SFU_ARRAY_SIZE(ccs); a++)
    for (b = 0; b <= EXT_TWO; b++)
      for (c = 0; c < SFU_ARRAY_SIZE(plens); c++)
        for (d = 0; d < SFU_ARRAY_SIZE(pads); d++)
          for (e = 0; e < 2; e++) {
            size_t len = mkfull(in, ccs[a], (int)b, plens[c], pads[d], (int)e);
            size_t want = len - (size_t)pads[d];
            n = sfu_rtx_wrap(in, len, 97, 0xABCD0001, 40000, out,
                             sizeof(out));
            assert_int_equal(n, (int)(want + 2));
            /* in place gives the same bytes */
            memcpy(inplace, in, len);
            assert_int_equal(sfu_rtx_wrap(inplace, len, 97, 0xABCD0001,
                                          40000, inplace, want + 2),
                             n);
            assert_memory_equal(inplace, out, (size_t)n);
            /* and back */
            m = sfu_rtx_unwrap(out, (size_t)n, PT, SSRC);
            assert_int_equal(m, (int)want);
            assert_int_equal(out[0], in[0] & ~0x20);
            assert_memory_equal(out + 1, in + 1, want - 1);
            cases++;
          }
  assert_int_equal(cases, 3 * 3 * 5 * 4 * 2);
}

/* A captured VP8 packet (one-byte extensions) survives the round trip. */
static void rtx_roundtrip_capture(void **state) {
  char path[1024];
  const char *slash = strrchr(__FILE__, '/');
  uint8_t in[2048], out[2048];
  sfu_rtp_t p;
  size_t len;
  FILE *f;
  int n;

  snprintf(path, sizeof(path), "%.*s/data/rtp/vp8_str0m_ext.bin",
           slash ? (int)(slash - __FILE__) : 1, slash ? __FILE__ : ".");
  f = fopen(path, "rb");
  if (f == NULL)
    fail_msg("cannot open %s", path);
  len = fread(in, 1, sizeof(in), f);
  fclose(f);
  assert_int_equal(sfu_rtp_parse(in, len, &p), 0);
  assert_int_equal(p.has_ext, 1);
  n = sfu_rtx_wrap(in, len, 97, 0x01020304, 1, out, sizeof(out));
  assert_int_equal(n, (int)(p.header_len + 2 + p.payload_len));
  assert_int_equal(sfu_rd16(out + p.header_len), p.seq);
  n = sfu_rtx_unwrap(out, (size_t)n, p.pt, p.ssrc);
  assert_int_equal(n, (int)(len - p.pad_len));
  assert_int_equal(out[0], in[0] & ~0x20);
  assert_memory_equal(out + 1, in + 1, (size_t)n - 1);
}

static void rtx_errors(void **state) {
  uint8_t in[1500], out[1500], copy[1500];
  size_t len;
  int n;

  /* not RTP */
  len = mkfull(in, 0, EXT_NONE, 10, 0, 0);
  assert_int_equal(sfu_rtx_wrap(in, 11, 97, 1, 1, out, sizeof(out)),
                   SFU_EPROTO);
  in[0] = 0x40; /* version 1 */
  assert_int_equal(sfu_rtx_wrap(in, len, 97, 1, 1, out, sizeof(out)),
                   SFU_EPROTO);
  assert_int_equal(sfu_rtx_unwrap(in, len, PT, SSRC), SFU_EPROTO);
  /* CSRC list past the end */
  len = mkfull(in, 3, EXT_NONE, 0, 0, 0);
  assert_int_equal(sfu_rtx_wrap(in, len - 1, 97, 1, 1, out, sizeof(out)),
                   SFU_EPROTO);
  /* no room: nothing written */
  len = mkfull(in, 1, EXT_TWO, 50, 3, 0);
  n = (int)(len - 3 + 2);
  memset(out, 0xEE, sizeof(out));
  assert_int_equal(sfu_rtx_wrap(in, len, 97, 1, 1, out, (size_t)n - 1),
                   SFU_E2BIG);
  assert_int_equal(out[0], 0xEE);
  assert_int_equal(sfu_rtx_wrap(in, len, 97, 1, 1, out, (size_t)n), n);

  /* unwrap: padding-only probe on the RTX stream -> 0, not an error */
  len = mkfull(in, 0, EXT_ONE, 0, 200, 0);
  assert_int_equal(sfu_rtx_unwrap(in, len, PT, SSRC), 0);
  /* no payload and no padding, or a 1-byte payload: no OSN, untouched */
  len = mkfull(in, 0, EXT_NONE, 0, 0, 0);
  assert_int_equal(sfu_rtx_unwrap(in, len, PT, SSRC), SFU_EPROTO);
  len = mkfull(in, 0, EXT_NONE, 1, 2, 0);
  memcpy(copy, in, len);
  assert_int_equal(sfu_rtx_unwrap(in, len, PT, SSRC), SFU_EPROTO);
  assert_memory_equal(in, copy, len);
  /* the RTX packet's own padding is removed: OSN 0x0003 (payload bytes
     3, 10 read as 0x030a), then 8 payload bytes */
  len = mkfull(in, 0, EXT_NONE, 10, 6, 1);
  n = sfu_rtx_unwrap(in, len, 100, 0xCAFE);
  assert_int_equal(n, 12 + 8);
  assert_int_equal(in[0], 0x80);
  assert_int_equal(in[1], 0x80 | 100);
  assert_int_equal(sfu_rd16(in + 2), 0x030a);
  assert_int_equal(sfu_rd32(in + 8), 0xCAFE);
  assert_int_equal(in[12], 2 * 7 + 3);
}

/* ======================================================================== */
/* NACK generator                                                           */

static void feed_range(sfu_nack_gen_t *g, uint16_t from, int count,
                       uint64_t now) {
  int i;
  for (i = 0; i < count; i++)
    assert_int_equal(sfu_nack_gen_feed(g, (uint16_t)(from + i), now),
                     SFU_NACK_FED);
}

/* due() and compare with the expected list. */
static void expect_due(sfu_nack_gen_t *g, uint64_t now, uint32_t rtt,
                       const uint16_t *want, int nwant) {
  uint16_t out[256];
  int n = sfu_nack_gen_due(g, now, rtt, out, 256), i;
  /* every missing number is in exactly one state */
  assert_int_equal(g->missing, g->recovered + g->reordered + g->given_up +
                                   g->pending);
  if (n != nwant)
    fail_msg("due at %llu: %d numbers, want %d", (unsigned long long)now, n,
             nwant);
  for (i = 0; i < n; i++)
    if (out[i] != want[i])
      fail_msg("due at %llu: [%d] = %u, want %u", (unsigned long long)now,
               i, out[i], want[i]);
}

#define DUE(g, now, rtt, ...)                                               \
  do {                                                                      \
    static const uint16_t w_[] = {__VA_ARGS__};                             \
    expect_due(g, now, rtt, w_, (int)SFU_ARRAY_SIZE(w_));                   \
  } while (0)
#define NONE_DUE(g, now, rtt) expect_due(g, now, rtt, NULL, 0)

static void gen_init_defaults(void **state) {
  sfu_nack_gen_t g;
  uint16_t out[4];

  sfu_nack_gen_init(&g);
  assert_int_equal(g.reorder_ms, 10);
  assert_int_equal(g.reorder_pkts, 3);
  assert_int_equal(g.retry_ms, 20);
  assert_int_equal(g.max_tries, 10);
  assert_int_equal(sfu_nack_gen_due(&g, 1000, 0, out, 4), 0);
  assert_true(sizeof(g) < 9 * 1024);
}

/* In order (across the wrap too): nothing is ever missing. */
static void gen_in_order(void **state) {
  sfu_nack_gen_t g;
  uint64_t t;
  uint16_t s = 64000;

  sfu_nack_gen_init(&g);
  for (t = 0; t < 3000; t++, s++) {
    assert_int_equal(sfu_nack_gen_feed(&g, s, t), SFU_NACK_FED);
    if (t % 10 == 0)
      NONE_DUE(&g, t, 0);
  }
  assert_int_equal(g.missing, 0);
  assert_int_equal(g.pending, 0);
  assert_int_equal(g.nacked, 0);
  assert_int_equal(g.resets, 0);
}

/* First NACK reorder_ms after the gap was seen, when packets are few. */
static void gen_reorder_time(void **state) {
  sfu_nack_gen_t g;

  sfu_nack_gen_init(&g);
  g.reorder_pkts = 0;
  feed_range(&g, 10, 2, 100);
  assert_int_equal(sfu_nack_gen_feed(&g, 13, 100), SFU_NACK_FED);
  assert_int_equal(g.missing, 1);
  assert_int_equal(g.pending, 1);
  NONE_DUE(&g, 100, 0);
  NONE_DUE(&g, 109, 0);
  DUE(&g, 110, 0, 12);
  assert_int_equal(g.nacked, 1);
  assert_int_equal(g.pending, 1);
  /* with the default reorder_pkts, 2 packets are not enough */
  sfu_nack_gen_init(&g);
  feed_range(&g, 10, 2, 100);
  feed_range(&g, 13, 1, 100);
  feed_range(&g, 14, 1, 105);
  NONE_DUE(&g, 109, 0);
  DUE(&g, 110, 0, 12);
  /* reorder_ms 0: at once */
  sfu_nack_gen_init(&g);
  g.reorder_ms = 0;
  feed_range(&g, 10, 2, 100);
  feed_range(&g, 13, 1, 100);
  DUE(&g, 100, 0, 12);
}

/* ...or as soon as reorder_pkts newer packets arrived, when they are many. */
static void gen_reorder_packets(void **state) {
  sfu_nack_gen_t g;

  sfu_nack_gen_init(&g);
  g.reorder_ms = 1000;
  feed_range(&g, 10, 2, 100);
  feed_range(&g, 13, 1, 100); /* 1 newer */
  NONE_DUE(&g, 100, 0);
  feed_range(&g, 14, 1, 101); /* 2 */
  NONE_DUE(&g, 101, 0);
  feed_range(&g, 15, 1, 101); /* 3 */
  DUE(&g, 101, 0, 12);
  /* a burst loss counts from the packet after it */
  feed_range(&g, 20, 1, 102); /* 16..19 lost */
  NONE_DUE(&g, 102, 0);
  feed_range(&g, 21, 2, 102);
  DUE(&g, 102, 0, 16, 17, 18, 19);
  /* late packets do not count as newer ones */
  feed_range(&g, 25, 1, 103); /* 23, 24 lost */
  assert_int_equal(sfu_nack_gen_feed(&g, 12, 103), SFU_NACK_RECOVERED);
  assert_int_equal(sfu_nack_gen_feed(&g, 16, 103), SFU_NACK_RECOVERED);
  NONE_DUE(&g, 103, 0);
  assert_int_equal(g.missing, 7);
}

/* A packet that arrives late but before any NACK is reordering, not
   recovery, and is never NACKed. */
static void gen_reordered(void **state) {
  sfu_nack_gen_t g;

  sfu_nack_gen_init(&g);
  feed_range(&g, 10, 2, 0);
  feed_range(&g, 13, 1, 0);
  assert_int_equal(sfu_nack_gen_feed(&g, 12, 3), SFU_NACK_FED);
  assert_int_equal(g.reordered, 1);
  assert_int_equal(g.recovered, 0);
  assert_int_equal(g.pending, 0);
  NONE_DUE(&g, 50, 0);
  assert_int_equal(g.nacked, 0);
  /* and a duplicate of it changes nothing */
  assert_int_equal(sfu_nack_gen_feed(&g, 12, 60), SFU_NACK_FED);
  assert_int_equal(sfu_nack_gen_feed(&g, 13, 60), SFU_NACK_FED);
  assert_int_equal(g.reordered, 1);
  assert_int_equal(g.missing, 1);
}

/* Retries every max(rtt, retry_ms). */
static void gen_retry_interval(void **state) {
  sfu_nack_gen_t g;

  sfu_nack_gen_init(&g);
  g.reorder_pkts = 0;
  feed_range(&g, 1, 1, 0);
  feed_range(&g, 3, 1, 0);
  DUE(&g, 10, 0, 2);
  NONE_DUE(&g, 29, 0); /* rtt 0: the 20 ms floor */
  DUE(&g, 30, 0, 2);
  NONE_DUE(&g, 45, 5);
  DUE(&g, 50, 5, 2);
  NONE_DUE(&g, 99, 50); /* rtt 50 */
  DUE(&g, 100, 50, 2);
  NONE_DUE(&g, 399, 300);
  DUE(&g, 400, 300, 2);
  assert_int_equal(g.nacked, 5);
  assert_int_equal(g.slot[2].tries, 5);
  /* the floor is configurable */
  g.retry_ms = 100;
  NONE_DUE(&g, 499, 0);
  DUE(&g, 500, 0, 2);
}

/* After max_tries NACKs the next due one gives up; a late arrival then is
   ignored. */
static void gen_give_up(void **state) {
  sfu_nack_gen_t g;
  uint64_t t = 10;
  int i;

  sfu_nack_gen_init(&g);
  feed_range(&g, 1, 1, 0);
  feed_range(&g, 3, 1, 0);
  for (i = 0; i < 10; i++, t += 20) {
    DUE(&g, t, 0, 2);
    NONE_DUE(&g, t + 19, 0);
  }
  assert_int_equal(g.nacked, 10);
  assert_int_equal(g.given_up, 0);
  assert_int_equal(g.pending, 1);
  NONE_DUE(&g, t, 0);
  assert_int_equal(g.given_up, 1);
  assert_int_equal(g.pending, 0);
  NONE_DUE(&g, t + 1000, 0);
  assert_int_equal(sfu_nack_gen_feed(&g, 2, t + 1), SFU_NACK_FED);
  assert_int_equal(g.recovered, 0);
  assert_int_equal(g.nacked, 10);

  /* max_tries 2 */
  sfu_nack_gen_init(&g);
  g.max_tries = 2;
  feed_range(&g, 1, 1, 0);
  feed_range(&g, 3, 1, 0);
  DUE(&g, 10, 0, 2);
  DUE(&g, 30, 0, 2);
  NONE_DUE(&g, 50, 0);
  assert_int_equal(g.given_up, 1);
}

/* A NACKed packet that arrives (late, or by RTX) is recovered and never
   NACKed again. */
static void gen_recovered(void **state) {
  sfu_nack_gen_t g;

  sfu_nack_gen_init(&g);
  feed_range(&g, 1, 1, 0);
  feed_range(&g, 4, 1, 0);
  DUE(&g, 10, 0, 2, 3);
  assert_int_equal(sfu_nack_gen_feed(&g, 2, 15), SFU_NACK_RECOVERED);
  assert_int_equal(g.recovered, 1);
  assert_int_equal(g.pending, 1);
  DUE(&g, 30, 0, 3);
  assert_int_equal(sfu_nack_gen_feed(&g, 3, 31), SFU_NACK_RECOVERED);
  assert_int_equal(sfu_nack_gen_feed(&g, 3, 32), SFU_NACK_FED); /* dup */
  NONE_DUE(&g, 100, 0);
  assert_int_equal(g.recovered, 2);
  assert_int_equal(g.missing, 2);
  assert_int_equal(g.nacked, 3);
}

/* Gaps across 65535 -> 0 come out in sequence order, and pack into one
   RTCP NACK pair. */
static void gen_wrap(void **state) {
  sfu_nack_gen_t g;
  uint16_t out[64], seqs[64];
  uint8_t buf[64];
  sfu_rtcp_iter_t it;
  sfu_rtcp_hdr_t h;
  uint32_t media;
  int n;

  sfu_nack_gen_init(&g);
  feed_range(&g, 65532, 2, 0);
  feed_range(&g, 1, 1, 0); /* 65534, 65535, 0 lost */
  feed_range(&g, 3, 1, 0); /* 2 lost */
  assert_int_equal(g.missing, 4);
  n = sfu_nack_gen_due(&g, 10, 0, out, 64);
  assert_int_equal(n, 4);
  assert_int_equal(out[0], 65534);
  assert_int_equal(out[1], 65535);
  assert_int_equal(out[2], 0);
  assert_int_equal(out[3], 2);
  n = sfu_rtcp_write_nack(buf, sizeof(buf), 1, SSRC, out, n);
  assert_int_equal(n, 16); /* one PID/BLP pair */
  sfu_rtcp_iter_init(&it, buf, (size_t)n);
  assert_int_equal(sfu_rtcp_next(&it, &h), 1);
  assert_int_equal(sfu_rtcp_parse_nack(&h, &media, seqs, 64), 4);
  assert_memory_equal(seqs, out, 4 * sizeof(uint16_t));
  assert_int_equal(sfu_nack_gen_feed(&g, 0, 11), SFU_NACK_RECOVERED);
  DUE(&g, 30, 0, 65534, 65535, 2);
}

/* A jump of more than the window resets: no NACK storm, pending gaps
   given up. A jump of exactly the window is still a gap. */
static void gen_big_jump(void **state) {
  sfu_nack_gen_t g;
  uint16_t out[64];

  sfu_nack_gen_init(&g);
  feed_range(&g, 100, 11, 0);
  feed_range(&g, 112, 1, 0); /* 111 missing */
  assert_int_equal(sfu_nack_gen_feed(&g, 112 + 513, 1), SFU_NACK_RESET);
  assert_int_equal(g.resets, 1);
  assert_int_equal(g.given_up, 1);
  assert_int_equal(g.pending, 0);
  assert_int_equal(g.missing, 1);
  NONE_DUE(&g, 1000, 0);
  feed_range(&g, 112 + 514, 100, 1001);
  NONE_DUE(&g, 2000, 0);
  /* the old numbers are now far behind: ignored */
  assert_int_equal(sfu_nack_gen_feed(&g, 111, 2001), SFU_NACK_FED);
  assert_int_equal(g.recovered + g.reordered, 0);
  /* new gaps are tracked as usual after the reset */
  feed_range(&g, 112 + 615, 1, 2002);
  DUE(&g, 2012, 0, 112 + 614);

  /* exactly the window: 511 missing, NACKed 64 at a time */
  sfu_nack_gen_init(&g);
  feed_range(&g, 1000, 1, 0);
  feed_range(&g, 1512, 1, 0);
  assert_int_equal(g.resets, 0);
  assert_int_equal(g.pending, 511);
  assert_int_equal(sfu_nack_gen_due(&g, 10, 0, out, 64), 64);
  assert_int_equal(out[0], 1001);
  assert_int_equal(out[63], 1064);

  /* 32768 or more ahead reads as far behind: one is ignored, the next in
     sequence confirms the restart */
  sfu_nack_gen_init(&g);
  feed_range(&g, 100, 5, 0);
  assert_int_equal(sfu_nack_gen_feed(&g, 40000, 1), SFU_NACK_FED);
  assert_int_equal(sfu_nack_gen_feed(&g, 40001, 1), SFU_NACK_RESET);
  feed_range(&g, 40002, 3, 2);
  NONE_DUE(&g, 100, 0);
  assert_int_equal(g.missing, 0);
}

/* The sender restarts lower (new encoder, same SSRC): after two packets in
   sequence the generator follows, with no storm; lone strays do nothing. */
static void gen_restart_lower(void **state) {
  sfu_nack_gen_t g;

  sfu_nack_gen_init(&g);
  feed_range(&g, 30000, 11, 0);
  assert_int_equal(sfu_nack_gen_feed(&g, 1000, 1), SFU_NACK_FED); /* stray */
  feed_range(&g, 30011, 1, 2);
  assert_int_equal(sfu_nack_gen_feed(&g, 2000, 3), SFU_NACK_FED); /* stray */
  feed_range(&g, 30012, 1, 4);
  assert_int_equal(g.resets, 0);
  NONE_DUE(&g, 50, 0);

  assert_int_equal(sfu_nack_gen_feed(&g, 5000, 60), SFU_NACK_FED);
  assert_int_equal(sfu_nack_gen_feed(&g, 5001, 61), SFU_NACK_RESET);
  assert_int_equal(g.resets, 1);
  feed_range(&g, 5002, 1, 62);
  feed_range(&g, 5004, 1, 62);
  NONE_DUE(&g, 70, 0);
  DUE(&g, 72, 0, 5003);
  assert_int_equal(g.missing, 1);
}

/* At most SFU_NACK_MAX_PER_CALL (and at most `max`) per call, oldest
   first; the rest wait for the next call. */
static void gen_max_per_call(void **state) {
  sfu_nack_gen_t g;
  uint16_t out[256];
  int n, i;

  sfu_nack_gen_init(&g);
  feed_range(&g, 0, 1, 0);
  feed_range(&g, 201, 1, 0); /* 1..200 lost */
  assert_int_equal(g.pending, 200);
  assert_int_equal(sfu_nack_gen_due(&g, 10, 0, out, 5), 5);
  assert_int_equal(out[0], 1);
  assert_int_equal(out[4], 5);
  for (i = 0; i < 3; i++) {
    n = sfu_nack_gen_due(&g, 10, 0, out, 256);
    assert_int_equal(n, 64);
    assert_int_equal(out[0], 6 + 64 * i);
    assert_int_equal(out[63], 6 + 64 * i + 63);
  }
  n = sfu_nack_gen_due(&g, 10, 0, out, 256);
  assert_int_equal(n, 3);
  assert_int_equal(out[2], 200);
  NONE_DUE(&g, 10, 0);
  assert_int_equal(g.nacked, 200);
  assert_int_equal(sfu_nack_gen_due(&g, 30, 0, out, 0), 0);
  assert_int_equal(sfu_nack_gen_due(&g, 30, 0, out, -1), 0);
  n = sfu_nack_gen_due(&g, 30, 0, out, 256); /* retries, oldest first */
  assert_int_equal(n, 64);
  assert_int_equal(out[0], 1);
}

/* A gap that leaves the window while missing is given up. */
static void gen_window_slide(void **state) {
  sfu_nack_gen_t g;
  int i;

  sfu_nack_gen_init(&g);
  feed_range(&g, 0, 1, 0);
  feed_range(&g, 2, 1, 0); /* 1 lost */
  for (i = 3; i <= 512; i++)
    sfu_nack_gen_feed(&g, (uint16_t)i, (uint64_t)i);
  assert_int_equal(g.pending, 1);
  assert_int_equal(g.given_up, 0);
  sfu_nack_gen_feed(&g, 513, 513); /* window (1, 513] */
  assert_int_equal(g.pending, 0);
  assert_int_equal(g.given_up, 1);
  NONE_DUE(&g, 1000, 0);
  /* in steps: a 300 jump, then another, pushes the first gaps out */
  sfu_nack_gen_init(&g);
  feed_range(&g, 0, 1, 0);
  feed_range(&g, 300, 1, 0);
  assert_int_equal(g.pending, 299);
  feed_range(&g, 600, 1, 0); /* window (88, 600] */
  assert_int_equal(g.given_up, 88);
  assert_int_equal(g.pending, 299 + 299 - 88);
  assert_int_equal(g.resets, 0);
}

static void gen_clock_backwards(void **state) {
  sfu_nack_gen_t g;

  sfu_nack_gen_init(&g);
  g.reorder_pkts = 0;
  feed_range(&g, 1, 1, 100);
  feed_range(&g, 3, 1, 100);
  NONE_DUE(&g, 50, 0); /* taken as 100 */
  DUE(&g, 110, 0, 2);
  NONE_DUE(&g, 0, 0);
  feed_range(&g, 5, 1, 0); /* 4 missing since 110 */
  NONE_DUE(&g, 119, 0);
  DUE(&g, 120, 0, 4);
}

/* ======================================================================== */
/* End to end                                                               */

/*
 * A publisher sends a packet every 5 ms for 10 s; 10 % of them are lost on
 * the way to the SFU, and so are 10 % of the NACKs and 10 % of the RTX
 * packets; NACK plus RTX take 40 ms. The publisher keeps what it sent in
 * an RTX cache; the SFU runs the generator every 10 ms, the publisher
 * answers each NACK that reaches it with an RTX packet, and the SFU
 * unwraps it, checks it is the original and feeds its OSN.
 */
#define E2E_INFLIGHT 512
static void end_to_end(void **state) {
  typedef struct {
    uint64_t at;
    size_t len;
    uint8_t b[300];
  } flight_t;
  static flight_t fl[E2E_INFLIGHT];
  sfu_rtx_cache_t cache;
  sfu_nack_gen_t g;
  uint32_t r = 7, lost = 0, nack_lost = 0, rtx_lost = 0, rtx_sent = 0;
  uint16_t seq = 65000, rtx_seq = 1, due[64], s;
  uint64_t t;
  int i, n, k, nf = 0;

  assert_int_equal(sfu_rtx_cache_init(&cache, 512, 256 * 1024, 1000), 0);
  cache.max_resends = 10;
  sfu_nack_gen_init(&g);
  for (t = 0; t < 10500; t++) {
    if (t < 10000 && t % 5 == 0) {
      uint8_t b[300];
      size_t len = mkpkt(b, seq, 0, 100 + seq % 150);
      assert_int_equal(sfu_rtx_cache_put(&cache, b, len, seq, t), 0);
      if (rnd(&r) % 10 == 0 && t < 9990) /* the last ones always arrive */
        lost++;
      else
        assert_int_equal(sfu_nack_gen_feed(&g, seq, t), SFU_NACK_FED);
      seq++;
    }
    for (i = 0; i < nf;) { /* RTX packets reaching the SFU now */
      if (fl[i].at != t) {
        i++;
        continue;
      }
      n = sfu_rtx_unwrap(fl[i].b, fl[i].len, PT, SSRC);
      s = sfu_rd16(fl[i].b + 2);
      assert_true(is_pkt(fl[i].b, (size_t)n, s, 0, 100 + s % 150));
      assert_int_equal(sfu_nack_gen_feed(&g, s, t), SFU_NACK_RECOVERED);
      fl[i] = fl[--nf];
    }
    if (t % 10 != 0)
      continue;
    n = sfu_nack_gen_due(&g, t, 40, due, 64);
    for (k = 0; k < n; k++) {
      const uint8_t *p;
      int len;
      if (rnd(&r) % 10 == 0) {
        nack_lost++;
        continue;
      }
      len = sfu_rtx_cache_get(&cache, due[k], t, &p);
      assert_true(len > 0);
      if (rnd(&r) % 10 == 0) {
        rtx_lost++;
        continue;
      }
      assert_true(nf < E2E_INFLIGHT);
      fl[nf].at = t + 40;
      fl[nf].len = (size_t)sfu_rtx_wrap(p, (size_t)len, 97, 0xABCD,
                                        rtx_seq++, fl[nf].b,
                                        sizeof(fl[nf].b));
      nf++;
      rtx_sent++;
    }
  }
  assert_int_equal(nf, 0);
  assert_int_equal(g.pending, 0);
  assert_true(lost > 150);
  /* every loss seen and recovered: 10 failed rounds in a row at 19 % per
     round would be needed to give up */
  assert_int_equal(g.missing, lost);
  assert_int_equal(g.recovered, lost);
  assert_int_equal(g.given_up, 0);
  assert_int_equal(g.reordered, 0);
  assert_int_equal(cache.hits, g.nacked - nack_lost);
  assert_int_equal(cache.hits, rtx_sent + rtx_lost);
  assert_int_equal(cache.misses + cache.resend_limited, 0);
  assert_true(g.nacked < lost * 3 / 2); /* retries only for the losses */
  sfu_rtx_cache_free(&cache);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(cache_init_args),
      cmocka_unit_test(cache_put_get),
      cmocka_unit_test(cache_slots_wrap),
      cmocka_unit_test(cache_supersede),
      cmocka_unit_test(cache_byte_budget),
      cmocka_unit_test(cache_too_big),
      cmocka_unit_test(cache_age),
      cmocka_unit_test(cache_resend_limit),
      cmocka_unit_test(cache_seq_wrap),
      cmocka_unit_test(cache_model),
      cmocka_unit_test(rtx_wrap_layout),
      cmocka_unit_test(rtx_roundtrip),
      cmocka_unit_test(rtx_roundtrip_capture),
      cmocka_unit_test(rtx_errors),
      cmocka_unit_test(gen_init_defaults),
      cmocka_unit_test(gen_in_order),
      cmocka_unit_test(gen_reorder_time),
      cmocka_unit_test(gen_reorder_packets),
      cmocka_unit_test(gen_reordered),
      cmocka_unit_test(gen_retry_interval),
      cmocka_unit_test(gen_give_up),
      cmocka_unit_test(gen_recovered),
      cmocka_unit_test(gen_wrap),
      cmocka_unit_test(gen_big_jump),
      cmocka_unit_test(gen_restart_lower),
      cmocka_unit_test(gen_max_per_call),
      cmocka_unit_test(gen_window_slide),
      cmocka_unit_test(gen_clock_backwards),
      cmocka_unit_test(end_to_end),
  };
  return cmocka_run_group_tests_name("nack", tests, NULL, NULL);
}
