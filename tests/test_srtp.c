/*
 * test_srtp.c -- sfu/media/srtp.c's bound on a peer's inbound SSRCs.
 *
 * Two sessions made from the same fixed keys face each other: `tx` plays
 * the peer and protects, `rx` is the SFU's side and unprotects through
 * sfu_srtp_unprotect[_rtcp], the calls the transport's receive path makes.
 * What libsrtp holds is asked of libsrtp itself: srtp_get_stream_roc()
 * answers for an SSRC only if the session has a stream for it. Time is a
 * number the test passes, as the transport passes the datagram's arrival.
 * (Round trips, replay, tampering and known answers are in test_dtls.c.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sfu/base/bytes.h"
#include "sfu/base/sfu.h"
#include "sfu/media/srtp.h"

#define MAX SFU_SRTP_MAX_SSRCS
#define IDLE SFU_SRTP_SSRC_IDLE_MS
#define PKT_LEN 60

/* A sender and a receiver sharing keys: tx writes with what rx reads. */
typedef struct {
  sfu_srtp_t tx, rx;
  uint16_t seq; /* next RTP sequence number, shared by every SSRC */
} pair_t;

static void pair_open(pair_t *p, sfu_srtp_profile_t profile) {
  sfu_srtp_keys_t a, b;
  memset(&a, 0, sizeof(a));
  a.profile = profile;
  a.key_len = 16;
  a.salt_len = profile == SFU_SRTP_AEAD_AES_128_GCM ? 12 : 14;
  for (int i = 0; i < 16; i++) {
    a.local_key[i] = (uint8_t)(0x10 + i);
    a.remote_key[i] = (uint8_t)(0x80 + i);
  }
  for (int i = 0; i < 14; i++) {
    a.local_salt[i] = (uint8_t)(0x40 + i);
    a.remote_salt[i] = (uint8_t)(0xc0 + i);
  }
  b = a; /* the other side: local and remote swapped */
  memcpy(b.local_key, a.remote_key, sizeof(b.local_key));
  memcpy(b.remote_key, a.local_key, sizeof(b.remote_key));
  memcpy(b.local_salt, a.remote_salt, sizeof(b.local_salt));
  memcpy(b.remote_salt, a.local_salt, sizeof(b.remote_salt));
  memset(p, 0, sizeof(*p));
  assert_int_equal(sfu_srtp_create(&p->tx, &a), 0);
  assert_int_equal(sfu_srtp_create(&p->rx, &b), 0);
  p->seq = 1;
}

static void pair_close(pair_t *p) {
  sfu_srtp_destroy(&p->tx);
  sfu_srtp_destroy(&p->rx);
}

/* Does rx's libsrtp session hold a stream for `ssrc`? */
static int has_stream(const pair_t *p, uint32_t ssrc) {
  uint32_t roc;
  return srtp_get_stream_roc(p->rx.in, ssrc, &roc) == srtp_err_status_ok;
}

/* How many of the SSRCs first .. first + n - 1 rx holds a stream for. */
static int streams_in(const pair_t *p, uint32_t first, int n) {
  int count = 0;
  for (int i = 0; i < n; i++) count += has_stream(p, first + (uint32_t)i);
  return count;
}

/* Protects an RTP packet from `ssrc` on tx into buf; returns its length.
 * With `forget`, tx drops its own stream for the SSRC afterwards, so that
 * a test sending from thousands of SSRCs does not slow the sender down. */
static size_t protect_rtp(pair_t *p, uint8_t *buf, size_t cap, uint32_t ssrc,
                          int forget) {
  size_t len = PKT_LEN;
  uint32_t wire;
  memset(buf, 0, PKT_LEN);
  buf[0] = 0x80;
  buf[1] = 111;
  sfu_wr16(buf + 2, p->seq);
  sfu_wr32(buf + 4, (uint32_t)p->seq * 960u);
  sfu_wr32(buf + 8, ssrc);
  for (int i = 12; i < PKT_LEN; i++) buf[i] = (uint8_t)(i ^ ssrc);
  p->seq++;
  assert_int_equal(sfu_srtp_protect(&p->tx, buf, &len, cap), 0);
  if (forget) {
    memcpy(&wire, buf + 8, sizeof(wire)); /* libsrtp's key: wire order */
    assert_int_equal(srtp_remove_stream(p->tx.out, wire), srtp_err_status_ok);
  }
  return len;
}

/* An RTP packet from `ssrc`, tx to rx at `now`: unprotect's result. */
static int rtp(pair_t *p, uint32_t ssrc, uint64_t now) {
  uint8_t buf[PKT_LEN + SFU_SRTP_TRAILER];
  size_t len = protect_rtp(p, buf, sizeof(buf), ssrc, 0);
  int rv = sfu_srtp_unprotect(&p->rx, buf, &len, now);
  if (rv == 0) assert_int_equal(len, PKT_LEN);
  return rv;
}

/* An RTCP receiver report (no blocks) from `ssrc`, tx to rx at `now`. */
static int rtcp(pair_t *p, uint32_t ssrc, uint64_t now) {
  uint8_t buf[8 + SFU_SRTP_TRAILER] = {0x80, 201, 0, 1};
  size_t len = 8;
  sfu_wr32(buf + 4, ssrc);
  assert_int_equal(sfu_srtp_protect_rtcp(&p->tx, buf, &len, sizeof(buf)), 0);
  int rv = sfu_srtp_unprotect_rtcp(&p->rx, buf, &len, now);
  if (rv == 0) assert_int_equal(len, 8);
  return rv;
}

/* One peer sends from 10,000 SSRCs, as the measured attack did. The
 * receiver keeps streams for the first SFU_SRTP_MAX_SSRCS only; every
 * packet beyond is refused before libsrtp and counted; the SSRCs it
 * already had keep working throughout, RTP and RTCP. */
static void ssrcs_beyond_the_bound_are_dropped_and_counted_without_new_state(
    void **state) {
  enum { FIRST = 0x5000, SENT = 10000 };
  const uint32_t audio = 0xa0d10;
  uint8_t buf[PKT_LEN + SFU_SRTP_TRAILER];
  pair_t p;
  uint64_t now = 1000;
  int accepted = 0, refused = 0;
  (void)state;

  pair_open(&p, SFU_SRTP_AEAD_AES_128_GCM);
  assert_int_equal(rtp(&p, audio, now), 0); /* the peer's real stream */
  for (int i = 0; i < SENT; i++, now++) {
    size_t len = protect_rtp(&p, buf, sizeof(buf), FIRST + (uint32_t)i, 1);
    int rv = sfu_srtp_unprotect(&p.rx, buf, &len, now);
    if (rv == 0)
      accepted++;
    else {
      assert_int_equal(rv, SFU_EBUSY);
      refused++;
    }
    if (i % 100 == 0) { /* a known SSRC is never refused */
      assert_int_equal(rtp(&p, audio, now), 0);
      assert_int_equal(rtcp(&p, audio, now), 0);
    }
  }
  assert_int_equal(accepted, MAX - 1); /* the audio SSRC holds one slot */
  assert_int_equal(refused, SENT - (MAX - 1));
  assert_int_equal(p.rx.ssrc_limit_drops, SENT - (MAX - 1));
  assert_int_equal(p.rx.unprotect_failures, 0);
  assert_int_equal(p.rx.ssrc_evictions, 0);
  /* libsrtp holds streams for exactly the bound: the audio SSRC and the
   * first MAX - 1 of the others, none for the rest. */
  assert_true(has_stream(&p, audio));
  assert_int_equal(streams_in(&p, FIRST, MAX - 1), MAX - 1);
  assert_int_equal(streams_in(&p, FIRST + MAX - 1, SENT - (MAX - 1)), 0);
  assert_int_equal(p.rx.ssrcs_n, MAX);

  /* RTCP from a new SSRC is bounded the same way. */
  assert_int_equal(rtcp(&p, 0xbeef, now), SFU_EBUSY);
  assert_false(has_stream(&p, 0xbeef));
  assert_int_equal(p.rx.ssrc_limit_drops, SENT - (MAX - 1) + 1);
  /* And the accepted ones still decrypt. */
  assert_int_equal(rtp(&p, FIRST, now), 0);
  assert_int_equal(rtp(&p, FIRST + MAX - 2, now), 0);
  pair_close(&p);
}

/* The SSRC table costs nothing until the first packet, then 8 entries,
 * doubling as SSRCs come, up to the bound; the SSRCs it had keep their
 * slots and streams across each growth. */
static void the_ssrc_table_grows_with_the_ssrcs(void **state) {
  pair_t p;
  int cap = 0;
  (void)state;
  pair_open(&p, SFU_SRTP_AEAD_AES_128_GCM);
  assert_int_equal(p.rx.ssrcs_cap, 0);
  assert_null(p.rx.ssrcs);
  for (int i = 0; i < MAX; i++) {
    assert_int_equal(rtp(&p, 0x7000 + (uint32_t)i, 1000), 0);
    if (p.rx.ssrcs_cap != cap) {
      /* grown exactly when a new SSRC found it full (or had none) */
      assert_int_equal(i, cap);
      assert_int_equal(p.rx.ssrcs_cap, cap ? 2 * cap : SFU_SRTP_SSRCS_FIRST);
      cap = p.rx.ssrcs_cap;
      for (int k = 0; k <= i; k++)
        assert_int_equal(rtp(&p, 0x7000 + (uint32_t)k, 1000), 0);
    }
    assert_int_equal(p.rx.ssrcs_n, i + 1);
  }
  assert_int_equal(p.rx.ssrcs_cap, MAX);
  assert_int_equal(streams_in(&p, 0x7000, MAX), MAX);
  assert_int_equal(rtp(&p, 0x7000 + MAX, 1000), SFU_EBUSY);
  pair_close(&p);
  assert_null(p.rx.ssrcs);
}

/* A full table makes room for a new SSRC by evicting the one idle longest,
 * once it has been idle SFU_SRTP_SSRC_IDLE_MS, and only for a packet that
 * authenticates; the evicted SSRC's libsrtp stream goes with it. */
static void an_idle_ssrc_is_evicted_for_a_new_one(void **state) {
  const uint32_t first = 0x100, stale = first + 7, fresh = 0x900,
                 other = 0x901;
  uint8_t buf[PKT_LEN + SFU_SRTP_TRAILER];
  size_t len;
  pair_t p;
  (void)state;

  pair_open(&p, SFU_SRTP_AES128_CM_SHA1_80);
  for (uint32_t i = 0; i < MAX; i++) assert_int_equal(rtp(&p, first + i, 0), 0);
  /* At 10 s every SSRC but `stale` is heard again. */
  for (uint32_t i = 0; i < MAX; i++)
    if (first + i != stale) assert_int_equal(rtcp(&p, first + i, 10000), 0);

  /* Not idle long enough yet: refused, nothing evicted. */
  assert_int_equal(rtp(&p, fresh, IDLE - 1), SFU_EBUSY);
  assert_true(has_stream(&p, stale));

  /* Idle long enough, but the packet is forged: refused, nothing
   * evicted, no stream for it. */
  len = protect_rtp(&p, buf, sizeof(buf), fresh, 0);
  buf[len - 1] ^= 1;
  assert_int_equal(sfu_srtp_unprotect(&p.rx, buf, &len, IDLE), SFU_EPROTO);
  assert_true(has_stream(&p, stale));
  assert_false(has_stream(&p, fresh));
  assert_int_equal(p.rx.ssrc_evictions, 0);

  /* A genuine packet takes the idle SSRC's place. */
  assert_int_equal(rtp(&p, fresh, IDLE), 0);
  assert_int_equal(p.rx.ssrc_evictions, 1);
  assert_true(has_stream(&p, fresh));
  assert_false(has_stream(&p, stale));
  assert_int_equal(streams_in(&p, first, MAX), MAX - 1);
  assert_int_equal(p.rx.ssrcs_n, MAX);

  /* Nobody else has been idle 30 s: the next new SSRC, and the evicted
   * one coming back, are refused; the known ones go on. */
  assert_int_equal(rtp(&p, other, IDLE), SFU_EBUSY);
  assert_int_equal(rtp(&p, stale, IDLE + 1), SFU_EBUSY);
  assert_int_equal(rtp(&p, first, IDLE + 1), 0);
  assert_int_equal(rtp(&p, fresh, IDLE + 1), 0);

  /* 30 s after 10 s the others are idle too: the evicted SSRC comes back
   * in the place of the one idle longest (never `first` or `fresh`, heard
   * at 30 s). */
  assert_int_equal(rtp(&p, stale, 10000 + IDLE), 0);
  assert_true(has_stream(&p, stale));
  assert_true(has_stream(&p, first));
  assert_true(has_stream(&p, fresh));
  assert_int_equal(p.rx.ssrc_evictions, 2);
  assert_int_equal(streams_in(&p, first, MAX) + has_stream(&p, fresh), MAX);
  pair_close(&p);
}

/* A packet from a new SSRC that fails authentication changes nothing: no
 * libsrtp stream, no table entry, RTP and RTCP, both profiles. The
 * genuine packet afterwards is accepted. */
static void failed_auth_from_new_ssrc_leaves_no_stream(void **state) {
  static const sfu_srtp_profile_t profiles[] = {SFU_SRTP_AEAD_AES_128_GCM,
                                                SFU_SRTP_AES128_CM_SHA1_80};
  (void)state;
  for (size_t k = 0; k < 2; k++) {
    uint8_t buf[PKT_LEN + SFU_SRTP_TRAILER], wire[PKT_LEN + SFU_SRTP_TRAILER];
    uint8_t r[8 + SFU_SRTP_TRAILER], rwire[8 + SFU_SRTP_TRAILER];
    size_t len, wire_len, rlen, rwire_len;
    pair_t p;

    /* A failed unprotect may leave the buffer half decrypted (GCM), so
     * each attempt starts from a copy of the packet as sent. */
    pair_open(&p, profiles[k]);
    /* RTP: a tag bit flipped, then a payload bit, then the real one. */
    wire_len = protect_rtp(&p, wire, sizeof(wire), 0x1234, 0);
    memcpy(buf, wire, wire_len);
    len = wire_len;
    buf[len - 1] ^= 0x40;
    assert_int_equal(sfu_srtp_unprotect(&p.rx, buf, &len, 5), SFU_EPROTO);
    assert_false(has_stream(&p, 0x1234));
    memcpy(buf, wire, wire_len);
    len = wire_len;
    buf[20] ^= 0x01;
    assert_int_equal(sfu_srtp_unprotect(&p.rx, buf, &len, 5), SFU_EPROTO);
    assert_false(has_stream(&p, 0x1234));
    assert_int_equal(p.rx.ssrcs_n, 0);
    memcpy(buf, wire, wire_len);
    len = wire_len;
    assert_int_equal(sfu_srtp_unprotect(&p.rx, buf, &len, 5), 0);
    assert_true(has_stream(&p, 0x1234));
    assert_int_equal(p.rx.ssrcs_n, 1);

    /* RTCP the same way. */
    memset(rwire, 0, sizeof(rwire));
    rwire[0] = 0x80;
    rwire[1] = 201;
    rwire[3] = 1;
    sfu_wr32(rwire + 4, 0x5678);
    rwire_len = 8;
    assert_int_equal(
        sfu_srtp_protect_rtcp(&p.tx, rwire, &rwire_len, sizeof(rwire)), 0);
    memcpy(r, rwire, rwire_len);
    rlen = rwire_len;
    r[rlen - 1] ^= 0x40;
    assert_int_equal(sfu_srtp_unprotect_rtcp(&p.rx, r, &rlen, 5), SFU_EPROTO);
    assert_false(has_stream(&p, 0x5678));
    assert_int_equal(p.rx.ssrcs_n, 1);
    memcpy(r, rwire, rwire_len);
    rlen = rwire_len;
    assert_int_equal(sfu_srtp_unprotect_rtcp(&p.rx, r, &rlen, 5), 0);
    assert_true(has_stream(&p, 0x5678));

    /* Forged packets from a thousand new SSRCs: nothing stays. */
    for (uint32_t i = 0; i < 1000; i++) {
      len = protect_rtp(&p, buf, sizeof(buf), 0x70000 + i, 1);
      buf[len - 2] ^= 0x08;
      assert_int_equal(sfu_srtp_unprotect(&p.rx, buf, &len, 6), SFU_EPROTO);
    }
    assert_int_equal(streams_in(&p, 0x70000, 1000), 0);
    assert_int_equal(p.rx.ssrcs_n, 2);
    assert_int_equal(p.rx.unprotect_failures, 1003);
    assert_int_equal(p.rx.ssrc_limit_drops, 0);
    pair_close(&p);
  }
}

/* Should libsrtp ever keep a stream for a packet that failed (2.5 does
 * not), unprotect removes it: planted here with srtp_add_stream under
 * another key, a stream for an SSRC outside the table does not survive a
 * packet from that SSRC failing. */
static void a_stream_left_by_a_failed_packet_is_removed(void **state) {
  uint8_t buf[PKT_LEN + SFU_SRTP_TRAILER], key[30];
  srtp_policy_t pol;
  size_t len;
  pair_t p;
  (void)state;

  pair_open(&p, SFU_SRTP_AES128_CM_SHA1_80);
  memset(&pol, 0, sizeof(pol));
  memset(key, 0x5a, sizeof(key));
  srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&pol.rtp);
  srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&pol.rtcp);
  pol.ssrc.type = ssrc_specific;
  pol.ssrc.value = 0x4242;
  pol.key = key;
  pol.window_size = 1024;
  assert_int_equal(srtp_add_stream(p.rx.in, &pol), srtp_err_status_ok);
  assert_true(has_stream(&p, 0x4242));

  len = protect_rtp(&p, buf, sizeof(buf), 0x4242, 0);
  assert_int_equal(sfu_srtp_unprotect(&p.rx, buf, &len, 1), SFU_EPROTO);
  assert_false(has_stream(&p, 0x4242));
  assert_int_equal(p.rx.ssrcs_n, 0);
  /* The peer's next packet from it clones a stream with the right key. */
  assert_int_equal(rtp(&p, 0x4242, 2), 0);
  assert_true(has_stream(&p, 0x4242));
  pair_close(&p);
}

/* The bound's reason (srtp.h): an aiortc or Firefox subscriber in a full
 * default room (100) sends RTCP from one SSRC per received track, 2 per
 * other participant, besides its own media. All of it gets through. */
static void a_full_rooms_subscriber_keeps_all_its_ssrcs(void **state) {
  enum { OTHERS = 99, OWN = 8 };
  pair_t p;
  (void)state;

  pair_open(&p, SFU_SRTP_AEAD_AES_128_GCM);
  for (int round = 0; round < 3; round++) {
    uint64_t now = (uint64_t)round * 1000;
    for (uint32_t i = 0; i < OWN; i++) {
      assert_int_equal(rtp(&p, 0x10 + i, now), 0);
      assert_int_equal(rtcp(&p, 0x10 + i, now), 0);
    }
    for (uint32_t i = 0; i < 2 * OTHERS; i++)
      assert_int_equal(rtcp(&p, 0x1000 + i, now), 0);
  }
  assert_int_equal(p.rx.ssrcs_n, OWN + 2 * OTHERS);
  assert_int_equal(p.rx.ssrc_limit_drops, 0);
  pair_close(&p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(
          ssrcs_beyond_the_bound_are_dropped_and_counted_without_new_state),
      cmocka_unit_test(the_ssrc_table_grows_with_the_ssrcs),
      cmocka_unit_test(an_idle_ssrc_is_evicted_for_a_new_one),
      cmocka_unit_test(failed_auth_from_new_ssrc_leaves_no_stream),
      cmocka_unit_test(a_stream_left_by_a_failed_packet_is_removed),
      cmocka_unit_test(a_full_rooms_subscriber_keeps_all_its_ssrcs),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
