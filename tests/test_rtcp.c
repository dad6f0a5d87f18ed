/*
 * test_rtcp.c -- RTCP compound iterator, message parsers and writers.
 *
 * Every writer is checked by parsing its output back field by field, and
 * at every cap short of its size (a heap buffer of exactly cap bytes, so
 * ASan sees a write past it). The SR+SDES, RR, NACK, PLI, FIR and REMB
 * bytes below were decoded with aiortc's RtcpPacket.parse() (Debian
 * python3-aiortc), an independent implementation, and the SR+SDES, NACK,
 * PLI and REMB ones are byte-identical to what aiortc's own packet classes
 * serialise for the same fields. aiortc has no TWCC decoder; the TWCC
 * packets were built by a separate Python encoder from chunk and delta
 * lists and their expected decodings written down by hand.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sfu/rtcp.h"
#include "sfu/sfu.h"

/* ---- helpers ---------------------------------------------------------- */

static size_t unhex(const char *h, uint8_t *out, size_t cap) {
  size_t n = 0;
  unsigned v;

  while (h[0] && h[1]) {
    assert_true(n < cap);
    assert_int_equal(sscanf(h, "%2x", &v), 1);
    out[n++] = (uint8_t)v;
    h += 2;
  }
  return n;
}

/* The one packet in buf[0..len), framed by the iterator. */
static sfu_rtcp_hdr_t one(const uint8_t *buf, size_t len) {
  sfu_rtcp_iter_t it;
  sfu_rtcp_hdr_t h;

  sfu_rtcp_iter_init(&it, buf, len);
  assert_int_equal(sfu_rtcp_next(&it, &h), 1);
  assert_int_equal(h.len, len);
  assert_int_equal(sfu_rtcp_next(&it, &h), 0);
  return h;
}

/* Runs a writer at every cap below `len` into an exact heap buffer. */
#define CHECK_CAPS(len, call_with_b_cap)                                     \
  do {                                                                       \
    size_t cap;                                                              \
    for (cap = 0; cap < (size_t)(len); cap++) {                              \
      uint8_t *b = malloc(cap ? cap : 1);                                    \
      assert_non_null(b);                                                    \
      assert_int_equal((call_with_b_cap), SFU_E2BIG);                        \
      free(b);                                                               \
    }                                                                        \
  } while (0)

/* ---- cross-checked bytes ------------------------------------------------ */

/* SR (2 report blocks) + SDES CNAME "sfu-test@example.org"; aiortc:
 *   RtcpSrPacket(ssrc=287454020, ntp_timestamp=16788979056960524282,
 *     rtp_timestamp=2596069104, packet_count=1234, octet_count=567890,
 *     reports=[(1432778632, 25, 1000, 107187, 42, 3735928559, 65536),
 *              (3405691582, 0, -3, 100, 7, 0, 0)])
 *   RtcpSdesPacket(chunks=[(287454020, [(1, b'sfu-test@example.org')])]) */
static const char SR_SDES_HEX[] =
    "82c8001211223344e8fe6f801f9acffa9abcdef0000004d20008aa52"
    "55667788190003e80001a2b30000002adeadbeef00010000"
    "cafebabe00fffffd0000006400000007000000000000000081ca0007"
    "1122334401147366752d74657374406578616d706c652e6f72670000";

/* aiortc: RtcpRtpfbPacket(fmt=1, ssrc=195948557, media_ssrc=1660289535,
 *                         lost=[100, 101, 116, 117, 200]) */
static const char NACK_HEX[] =
    "81cd00050badf00d62f601ff006480010075000000c80000";

/* RR, 1 block; then SDES CNAME "abcdefghijklm"; then REMB 1.5 Mb/s for
 * two SSRCs. aiortc decodes all three (unpack_remb_fci: 1500000). */
static const char RR_SDES_REMB_HEX[] =
    "81c900070badf00d62f601ff0c00004d00010470000004d211110000000080"
    "0081ca00050badf00d010d6162636465666768696a6b6c6d008fce00060badf00d"
    "0000000052454d42020edc6c62f601ff55667788";

static sfu_rtcp_sr_t sample_sr(void) {
  sfu_rtcp_sr_t sr;

  memset(&sr, 0, sizeof(sr));
  sr.ssrc = 0x11223344;
  sr.ntp = sfu_ntp_from_us(INT64_C(1700000000123456));
  sr.rtp_ts = 0x9abcdef0;
  sr.packets = 1234;
  sr.octets = 567890;
  sr.nreports = 2;
  sr.reports[0] = (sfu_rtcp_report_t){0x55667788, 25,         1000, 0x0001a2b3,
                                      42,         0xdeadbeef, 65536};
  sr.reports[1] =
      (sfu_rtcp_report_t){0xcafebabe, 0, -3, 100, 7, 0, 0};
  return sr;
}

static void assert_report_equal(const sfu_rtcp_report_t *a,
                                const sfu_rtcp_report_t *b) {
  assert_int_equal(a->ssrc, b->ssrc);
  assert_int_equal(a->fraction_lost, b->fraction_lost);
  assert_int_equal(a->cumulative_lost, b->cumulative_lost);
  assert_int_equal(a->ext_highest_seq, b->ext_highest_seq);
  assert_int_equal(a->jitter, b->jitter);
  assert_int_equal(a->lsr, b->lsr);
  assert_int_equal(a->dlsr, b->dlsr);
}

static void test_sr_sdes_bytes(void **state) {
  sfu_rtcp_sr_t sr = sample_sr(), got;
  uint8_t want[256], buf[256];
  size_t wn = unhex(SR_SDES_HEX, want, sizeof(want));
  sfu_rtcp_iter_t it;
  sfu_rtcp_hdr_t h;
  uint32_t ssrc;
  char cname[64];
  int n, m, i;

  n = sfu_rtcp_write_sr(buf, sizeof(buf), &sr);
  assert_int_equal(n, 28 + 2 * 24);
  m = sfu_rtcp_write_sdes_cname(buf + n, sizeof(buf) - (size_t)n, sr.ssrc,
                                "sfu-test@example.org");
  assert_int_equal(m, 32);
  assert_int_equal(n + m, wn);
  assert_memory_equal(buf, want, wn);

  sfu_rtcp_iter_init(&it, want, wn);
  assert_int_equal(sfu_rtcp_next(&it, &h), 1);
  assert_int_equal(h.pt, SFU_RTCP_SR);
  assert_int_equal(h.count, 2);
  assert_int_equal(h.length_words, 18);
  assert_int_equal(h.len, 76);
  assert_int_equal(h.ssrc, 0x11223344);
  assert_int_equal(h.version_ok, 1);
  assert_int_equal(h.padding, 0);
  assert_ptr_equal(h.data, want);
  assert_int_equal(sfu_rtcp_parse_sr(&h, &got), 0);
  assert_int_equal(got.ssrc, sr.ssrc);
  assert_true(got.ntp == UINT64_C(0xe8fe6f801f9acffa));
  assert_int_equal(got.rtp_ts, sr.rtp_ts);
  assert_int_equal(got.packets, 1234);
  assert_int_equal(got.octets, 567890);
  assert_int_equal(got.nreports, 2);
  for (i = 0; i < 2; i++)
    assert_report_equal(&got.reports[i], &sr.reports[i]);
  assert_int_equal(got.reports[1].cumulative_lost, -3);

  assert_int_equal(sfu_rtcp_next(&it, &h), 1);
  assert_int_equal(h.pt, SFU_RTCP_SDES);
  assert_int_equal(h.count, 1);
  assert_int_equal(h.len, 32);
  assert_int_equal(h.ssrc, 0x11223344);
  assert_int_equal(sfu_rtcp_parse_sdes_cname(&h, &ssrc, cname, sizeof(cname)),
                   20);
  assert_string_equal(cname, "sfu-test@example.org");
  assert_int_equal(ssrc, 0x11223344);
  assert_int_equal(sfu_rtcp_parse_sdes_cname(&h, &ssrc, cname, 20), 0);
  assert_int_equal(sfu_rtcp_next(&it, &h), 0);

  CHECK_CAPS(n, sfu_rtcp_write_sr(b, cap, &sr));
  sr.nreports = 32;
  assert_int_equal(sfu_rtcp_write_sr(buf, sizeof(buf), &sr), SFU_EINVAL);
  sr.nreports = -1;
  assert_int_equal(sfu_rtcp_write_sr(buf, sizeof(buf), &sr), SFU_EINVAL);
}

static void test_rr(void **state) {
  sfu_rtcp_report_t r[31];
  sfu_rtcp_sr_t got;
  sfu_rtcp_hdr_t h;
  uint8_t buf[1024];
  int n, i;

  for (i = 0; i < 31; i++) {
    r[i].ssrc = 0x1000u + (uint32_t)i;
    r[i].fraction_lost = (uint8_t)(i * 8);
    r[i].cumulative_lost = i * 1000 - 15000;
    r[i].ext_highest_seq = 0x00020000u + (uint32_t)i;
    r[i].jitter = (uint32_t)i * 3;
    r[i].lsr = 0xabcd0000u | (uint32_t)i;
    r[i].dlsr = (uint32_t)i << 16;
  }
  n = sfu_rtcp_write_rr(buf, sizeof(buf), 0x0badf00d, r, 31);
  assert_int_equal(n, 8 + 31 * 24);
  h = one(buf, (size_t)n);
  assert_int_equal(h.pt, SFU_RTCP_RR);
  assert_int_equal(h.count, 31);
  assert_int_equal(sfu_rtcp_parse_sr(&h, &got), 0);
  assert_int_equal(got.ssrc, 0x0badf00d);
  assert_true(got.ntp == 0);
  assert_int_equal(got.packets, 0);
  assert_int_equal(got.nreports, 31);
  for (i = 0; i < 31; i++)
    assert_report_equal(&got.reports[i], &r[i]);
  CHECK_CAPS(n, sfu_rtcp_write_rr(b, cap, 0x0badf00d, r, 31));

  /* the one-block RR aiortc decoded as packets_lost=77 etc. */
  r[0] = (sfu_rtcp_report_t){0x62F601FF, 12,         77,        0x00010470,
                             1234,       0x11110000, 0x00008000};
  n = sfu_rtcp_write_rr(buf, sizeof(buf), 0x0badf00d, r, 1);
  assert_int_equal(n, 32);
  assert_memory_equal(buf,
                      "\x81\xc9\x00\x07\x0b\xad\xf0\x0d\x62\xf6\x01\xff\x0c"
                      "\x00\x00\x4d\x00\x01\x04\x70\x00\x00\x04\xd2\x11\x11"
                      "\x00\x00\x00\x00\x80\x00",
                      32);

  /* empty RR: 8 bytes, no blocks */
  n = sfu_rtcp_write_rr(buf, sizeof(buf), 0x0badf00d, NULL, 0);
  assert_int_equal(n, 8);
  assert_memory_equal(buf, "\x80\xc9\x00\x01\x0b\xad\xf0\x0d", 8);
  h = one(buf, 8);
  assert_int_equal(sfu_rtcp_parse_sr(&h, &got), 0);
  assert_int_equal(got.nreports, 0);
  assert_int_equal(sfu_rtcp_write_rr(buf, sizeof(buf), 1, NULL, 1), SFU_EINVAL);
  assert_int_equal(sfu_rtcp_write_rr(buf, sizeof(buf), 1, r, 32), SFU_EINVAL);

  /* cumulative loss is 24-bit signed: clamped on write */
  r[0].cumulative_lost = 10000000;
  r[1] = r[0];
  r[1].cumulative_lost = -9000000;
  n = sfu_rtcp_write_rr(buf, sizeof(buf), 1, r, 2);
  h = one(buf, (size_t)n);
  assert_int_equal(sfu_rtcp_parse_sr(&h, &got), 0);
  assert_int_equal(got.reports[0].cumulative_lost, 0x7fffff);
  assert_int_equal(got.reports[1].cumulative_lost, -0x800000);
  assert_memory_equal(buf + 12, "\x0c\x7f\xff\xff", 4);
  assert_memory_equal(buf + 36, "\x0c\x80\x00\x00", 4);

  /* RC claims more blocks than the body holds */
  buf[0] = 0x83;
  h = one(buf, (size_t)n);
  assert_int_equal(sfu_rtcp_parse_sr(&h, &got), SFU_EPROTO);
  /* an SR cut to its RR size */
  buf[0] = 0x80;
  buf[1] = SFU_RTCP_SR;
  buf[3] = 1;
  h = one(buf, 8);
  assert_int_equal(sfu_rtcp_parse_sr(&h, &got), SFU_EPROTO);
}

static void test_sdes(void **state) {
  char name[300], got[300];
  uint8_t buf[400];
  sfu_rtcp_hdr_t h;
  uint32_t ssrc;
  size_t l;
  int n;

  for (l = 1; l <= 255; l++) {
    memset(name, 'a' + (int)(l % 26), l);
    name[l] = '\0';
    n = sfu_rtcp_write_sdes_cname(buf, sizeof(buf), 0x01020304, name);
    assert_int_equal(n, 8 + ((2 + l + 1 + 3) & ~(size_t)3));
    assert_int_equal(n % 4, 0);
    assert_int_equal(buf[n - 1], 0); /* at least one END octet */
    h = one(buf, (size_t)n);
    assert_int_equal(h.count, 1);
    assert_int_equal(sfu_rtcp_parse_sdes_cname(&h, &ssrc, got, sizeof(got)),
                     (int)l);
    assert_int_equal(ssrc, 0x01020304);
    assert_string_equal(got, name);
    if (l == 1 || l == 2 || l == 255)
      CHECK_CAPS(n, sfu_rtcp_write_sdes_cname(b, cap, 1, name));
  }
  assert_int_equal(sfu_rtcp_write_sdes_cname(buf, 12, 1, "a"), 12);
  assert_memory_equal(buf, "\x81\xca\x00\x02\x00\x00\x00\x01\x01\x01\x61\x00",
                      12);
  memset(name, 'x', 256);
  name[256] = '\0';
  assert_int_equal(sfu_rtcp_write_sdes_cname(buf, sizeof(buf), 1, name),
                   SFU_EINVAL);
  assert_int_equal(sfu_rtcp_write_sdes_cname(buf, sizeof(buf), 1, ""),
                   SFU_EINVAL);
  assert_int_equal(sfu_rtcp_write_sdes_cname(buf, sizeof(buf), 1, NULL),
                   SFU_EINVAL);

  /* two chunks, the CNAME in the second; the first has a NOTE item (7) */
  {
    static const uint8_t two[] = {
        0x82, 0xca, 0x00, 0x06, 0x00, 0x00, 0x00, 0x0a, 0x07, 0x03, 'h', 'e',
        'y',  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0b, 0x01, 0x02, 'o', 'k',
        0x00, 0x00, 0x00, 0x00,
    };
    h = one(two, sizeof(two));
    assert_int_equal(sfu_rtcp_parse_sdes_cname(&h, &ssrc, got, sizeof(got)),
                     2);
    assert_int_equal(ssrc, 11);
    assert_string_equal(got, "ok");
    /* the first chunk's item runs past the packet */
    {
      uint8_t bad[sizeof(two)];
      memcpy(bad, two, sizeof(two));
      bad[9] = 40;
      h = one(bad, sizeof(bad));
      assert_int_equal(sfu_rtcp_parse_sdes_cname(&h, &ssrc, got, sizeof(got)),
                       SFU_EPROTO);
      /* SC says 3 chunks, there are 2 with no CNAME in the third */
      memcpy(bad, two, sizeof(two));
      bad[0] = 0x83;
      bad[20] = 0x05; /* EMAIL, not CNAME */
      h = one(bad, sizeof(bad));
      assert_int_equal(sfu_rtcp_parse_sdes_cname(&h, &ssrc, got, sizeof(got)),
                       SFU_EPROTO);
    }
  }
}

/* ---- NACK ------------------------------------------------------------- */

static void test_nack(void **state) {
  static const uint16_t scattered[] = {100, 101, 116, 117, 200};
  uint8_t want[64], buf[4096];
  size_t wn = unhex(NACK_HEX, want, sizeof(want));
  uint16_t seqs[2048], in[1000];
  uint32_t media;
  sfu_rtcp_hdr_t h;
  int n, i;

  n = sfu_rtcp_write_nack(buf, sizeof(buf), 0x0badf00d, 0x62F601FF, scattered,
                          5);
  assert_int_equal(n, 24);
  assert_int_equal(n, wn);
  assert_memory_equal(buf, want, wn);
  /* PID 100 BLP 0x8001 (101, 116); PID 117; PID 200 */
  assert_memory_equal(buf + 12, "\x00\x64\x80\x01\x00\x75\x00\x00\x00\xc8\x00\x00",
                      12);
  h = one(buf, (size_t)n);
  assert_int_equal(h.pt, SFU_RTCP_RTPFB);
  assert_int_equal(h.count, SFU_RTCP_FMT_NACK);
  assert_int_equal(h.ssrc, 0x0badf00d);
  assert_int_equal(sfu_rtcp_parse_nack(&h, &media, seqs, 2048), 5);
  assert_int_equal(media, 0x62F601FF);
  for (i = 0; i < 5; i++)
    assert_int_equal(seqs[i], scattered[i]);
  /* a short output array takes the first ones */
  assert_int_equal(sfu_rtcp_parse_nack(&h, &media, seqs, 2), 2);
  assert_int_equal(seqs[1], 101);
  assert_int_equal(sfu_rtcp_parse_nack(&h, &media, seqs, 3), 3);
  assert_int_equal(seqs[2], 116);
  CHECK_CAPS(n, sfu_rtcp_write_nack(b, cap, 0x0badf00d, 0x62F601FF, scattered,
                                    5));

  /* across the wrap: one pair, PID 65534 BLP 0x8013 */
  {
    static const uint16_t wrap[] = {65534, 65535, 0, 3, 14};
    n = sfu_rtcp_write_nack(buf, sizeof(buf), 1, 2, wrap, 5);
    assert_int_equal(n, 16);
    assert_memory_equal(buf + 12, "\xff\xfe\x80\x13", 4);
    h = one(buf, (size_t)n);
    assert_int_equal(sfu_rtcp_parse_nack(&h, &media, seqs, 64), 5);
    for (i = 0; i < 5; i++)
      assert_int_equal(seqs[i], wrap[i]);
  }

  /* unordered and repeated input still names every number once */
  {
    static const uint16_t mess[] = {200, 100, 100, 101, 99};
    n = sfu_rtcp_write_nack(buf, sizeof(buf), 1, 2, mess, 5);
    assert_int_equal(n, 24);
    h = one(buf, (size_t)n);
    assert_int_equal(sfu_rtcp_parse_nack(&h, &media, seqs, 64), 4);
    assert_int_equal(seqs[0], 200);
    assert_int_equal(seqs[1], 100);
    assert_int_equal(seqs[2], 101);
    assert_int_equal(seqs[3], 99);
  }

  /* 1000 numbers, every third: a PID and 5 BLP bits per pair -> 167 pairs */
  for (i = 0; i < 1000; i++)
    in[i] = (uint16_t)(65000 + 3 * i);
  n = sfu_rtcp_write_nack(buf, sizeof(buf), 1, 2, in, 1000);
  assert_int_equal(n, 12 + 4 * 167);
  h = one(buf, (size_t)n);
  assert_int_equal(sfu_rtcp_parse_nack(&h, &media, seqs, 2048), 1000);
  assert_memory_equal(seqs, in, sizeof(in));
  CHECK_CAPS(n, sfu_rtcp_write_nack(b, cap, 1, 2, in, 1000));

  assert_int_equal(sfu_rtcp_write_nack(buf, sizeof(buf), 1, 2, in, 0),
                   SFU_EINVAL);
  /* a NACK with no FCI */
  memcpy(buf, "\x81\xcd\x00\x02\x00\x00\x00\x01\x00\x00\x00\x02", 12);
  h = one(buf, 12);
  assert_int_equal(sfu_rtcp_parse_nack(&h, &media, seqs, 64), SFU_EPROTO);
  /* TWCC is RTPFB too, but not a generic NACK */
  buf[0] = 0x8f;
  h = one(buf, 12);
  assert_int_equal(sfu_rtcp_parse_nack(&h, &media, seqs, 64), SFU_EINVAL);
}

/* ---- PSFB: PLI, FIR, REMB ---------------------------------------------- */

static void test_pli_fir(void **state) {
  uint8_t buf[64], seqnr[4];
  uint32_t media, ssrcs[4];
  sfu_rtcp_hdr_t h;
  int n, fmt;

  n = sfu_rtcp_write_pli(buf, sizeof(buf), 0x0badf00d, 0x62F601FF);
  assert_int_equal(n, 12);
  assert_memory_equal(buf, "\x81\xce\x00\x02\x0b\xad\xf0\x0d\x62\xf6\x01\xff",
                      12);
  h = one(buf, 12);
  assert_int_equal(sfu_rtcp_parse_psfb(&h, &fmt, &media), 0);
  assert_int_equal(fmt, SFU_RTCP_FMT_PLI);
  assert_int_equal(media, 0x62F601FF);
  assert_int_equal(h.ssrc, 0x0badf00d);
  assert_int_equal(sfu_rtcp_parse_fir(&h, ssrcs, seqnr, 4), SFU_EINVAL);
  CHECK_CAPS(n, sfu_rtcp_write_pli(b, cap, 1, 2));

  /* aiortc: RtcpPsfbPacket(fmt=4, ssrc=195948557, media_ssrc=0,
   *                        fci=b'b\xf6\x01\xff\x07\x00\x00\x00') */
  n = sfu_rtcp_write_fir(buf, sizeof(buf), 0x0badf00d, 0x62F601FF, 7);
  assert_int_equal(n, 20);
  assert_memory_equal(buf,
                      "\x84\xce\x00\x04\x0b\xad\xf0\x0d\x00\x00\x00\x00\x62"
                      "\xf6\x01\xff\x07\x00\x00\x00",
                      20);
  h = one(buf, 20);
  assert_int_equal(sfu_rtcp_parse_psfb(&h, &fmt, &media), 0);
  assert_int_equal(fmt, SFU_RTCP_FMT_FIR);
  assert_int_equal(media, 0x62F601FF); /* from the FCI, not the header's 0 */
  assert_int_equal(sfu_rtcp_parse_fir(&h, ssrcs, seqnr, 4), 1);
  assert_int_equal(ssrcs[0], 0x62F601FF);
  assert_int_equal(seqnr[0], 7);
  CHECK_CAPS(n, sfu_rtcp_write_fir(b, cap, 1, 2, 3));

  /* a FIR without its entry */
  buf[3] = 2;
  h = one(buf, 12);
  assert_int_equal(sfu_rtcp_parse_psfb(&h, &fmt, &media), SFU_EPROTO);
  assert_int_equal(sfu_rtcp_parse_fir(&h, ssrcs, seqnr, 4), SFU_EPROTO);
  /* a PSFB with only the sender SSRC */
  buf[0] = 0x81;
  buf[3] = 1;
  h = one(buf, 8);
  assert_int_equal(sfu_rtcp_parse_psfb(&h, &fmt, &media), SFU_EPROTO);
  /* not PSFB */
  buf[1] = SFU_RTCP_RTPFB;
  h = one(buf, 8);
  assert_int_equal(sfu_rtcp_parse_psfb(&h, &fmt, &media), SFU_EINVAL);
}

static void test_remb(void **state) {
  static const struct {
    uint64_t bps, got;
    uint8_t b17, b18, b19;
  } cases[] = {
      {1500000, 1500000, 0x0e, 0xdc, 0x6c},      /* 187500 << 3 */
      {100000000, 99999744, 0x26, 0xfa, 0xf0},   /* 195312 << 9 */
      {30000, 30000, 0x00, 0x75, 0x30},          /* fits the mantissa */
      {0, 0, 0x00, 0x00, 0x00},
      {0x3ffff, 0x3ffff, 0x03, 0xff, 0xff},
      {0x40000, 0x40000, 0x06, 0x00, 0x00},      /* 0x20000 << 1 */
      {UINT64_MAX, UINT64_C(0x3ffff) << 46, 0xbb, 0xff, 0xff},
  };
  static const uint32_t ss[] = {0x62F601FF, 0x55667788};
  uint8_t want[128], buf[2048];
  uint32_t got_ss[300], many[255];
  uint64_t bps;
  sfu_rtcp_iter_t it;
  sfu_rtcp_hdr_t h;
  size_t wn;
  int n, i;

  for (i = 0; i < (int)SFU_ARRAY_SIZE(cases); i++) {
    n = sfu_rtcp_write_remb(buf, sizeof(buf), 0x0badf00d, cases[i].bps, ss, 2);
    assert_int_equal(n, 28);
    assert_memory_equal(buf, "\x8f\xce\x00\x06\x0b\xad\xf0\x0d\x00\x00\x00\x00"
                             "REMB\x02",
                        17);
    assert_int_equal(buf[17], cases[i].b17);
    assert_int_equal(buf[18], cases[i].b18);
    assert_int_equal(buf[19], cases[i].b19);
    h = one(buf, 28);
    assert_int_equal(sfu_rtcp_parse_remb(&h, &bps, got_ss, 8), 2);
    assert_true(bps == cases[i].got);
    assert_int_equal(got_ss[0], 0x62F601FF);
    assert_int_equal(got_ss[1], 0x55667788);
  }
  CHECK_CAPS(28, sfu_rtcp_write_remb(b, cap, 1, 1500000, ss, 2));

  /* the compound from aiortc's side: REMB is its third packet */
  wn = unhex(RR_SDES_REMB_HEX, want, sizeof(want));
  sfu_rtcp_iter_init(&it, want, wn);
  for (i = 0; i < 3; i++)
    assert_int_equal(sfu_rtcp_next(&it, &h), 1);
  assert_int_equal(sfu_rtcp_parse_remb(&h, &bps, got_ss, 8), 2);
  assert_true(bps == 1500000);
  assert_int_equal(sfu_rtcp_parse_remb(&h, &bps, got_ss, 1), 1);

  /* the largest exponent: 0x3ffff << 63 saturates; 1 << 63 does not */
  memcpy(buf, "\x8f\xce\x00\x04\x00\x00\x00\x01\x00\x00\x00\x00REMB"
              "\x00\xff\xff\xff",
         20);
  h = one(buf, 20);
  assert_int_equal(sfu_rtcp_parse_remb(&h, &bps, got_ss, 8), 0);
  assert_true(bps == UINT64_MAX);
  buf[17] = 0xfc;
  buf[18] = 0;
  buf[19] = 1;
  assert_int_equal(sfu_rtcp_parse_remb(&h, &bps, got_ss, 8), 0);
  assert_true(bps == UINT64_C(1) << 63);
  /* Num SSRC past the end */
  buf[16] = 1;
  assert_int_equal(sfu_rtcp_parse_remb(&h, &bps, got_ss, 8), SFU_EPROTO);
  /* not "REMB" */
  buf[16] = 0;
  buf[15] = 'X';
  assert_int_equal(sfu_rtcp_parse_remb(&h, &bps, got_ss, 8), SFU_EINVAL);
  /* a PLI is not a REMB */
  n = sfu_rtcp_write_pli(buf, sizeof(buf), 1, 2);
  h = one(buf, (size_t)n);
  assert_true(sfu_rtcp_parse_remb(&h, &bps, got_ss, 8) < 0);

  /* 255 SSRCs, the most the count byte holds */
  for (i = 0; i < 255; i++)
    many[i] = 0xa0000000u + (uint32_t)i;
  n = sfu_rtcp_write_remb(buf, sizeof(buf), 1, 5000, many, 255);
  assert_int_equal(n, 20 + 4 * 255);
  h = one(buf, (size_t)n);
  assert_int_equal(sfu_rtcp_parse_remb(&h, &bps, got_ss, 300), 255);
  assert_memory_equal(got_ss, many, sizeof(many));
  assert_int_equal(sfu_rtcp_write_remb(buf, sizeof(buf), 1, 5000, many, 256),
                   SFU_EINVAL);
}

/* ---- TWCC --------------------------------------------------------------- */

static void test_twcc(void **state) {
  /* base 1000, 20 statuses, ref time -2 (x64 ms), fb count 7; chunks:
   * run of 5 small | 2-bit vector 2,0,1,1,0,0,1 | 1-bit vector 1,1,0,1,0,0,0,1
   * deltas 4,8,0,255,20 | -100 | 12,16,40 | 1,2,3,4 (x250 us) */
  static const char TWCC_HEX[] =
      "8fcd00090badf00d62f601ff03e80014fffffe072005e141b440040800ff14ff9c0c10"
      "2801020304";
  static const uint8_t want_st[20] = {1, 1, 1, 1, 1, 2, 0, 1, 1, 0,
                                      0, 1, 1, 1, 0, 1, 0, 0, 0, 1};
  static const int32_t want_d[20] = {1000,  2000, 0,    63750, 5000,
                                     -25000, 0,   3000, 4000,  0,
                                     0,     10000, 250, 500,   0,
                                     750,   0,    0,    0,     1000};
  /* P=1 (one byte); base 65530, 302 statuses: run of 300 not received,
   * then a 2-bit vector 2,1; deltas 32767, 1 */
  static const char TWCC_PAD_HEX[] =
      "afcd00060000000100000002fffa012e123456ff012ce4007fff0101";
  uint8_t buf[128], st[400];
  int32_t d[400];
  sfu_rtcp_twcc_t t;
  sfu_rtcp_hdr_t h;
  size_t n = unhex(TWCC_HEX, buf, sizeof(buf));
  int i;

  h = one(buf, n);
  assert_int_equal(sfu_rtcp_parse_twcc(&h, &t, st, d, 400), 20);
  assert_int_equal(t.sender_ssrc, 0x0badf00d);
  assert_int_equal(t.media_ssrc, 0x62F601FF);
  assert_int_equal(t.base_seq, 1000);
  assert_int_equal(t.status_count, 20);
  assert_int_equal(t.ref_time, -2);
  assert_int_equal(t.fb_count, 7);
  assert_memory_equal(st, want_st, 20);
  for (i = 0; i < 20; i++)
    assert_int_equal(d[i], want_d[i]);
  /* header only; a short output */
  assert_int_equal(sfu_rtcp_parse_twcc(&h, &t, NULL, NULL, 0), 20);
  memset(st, 9, sizeof(st));
  assert_int_equal(sfu_rtcp_parse_twcc(&h, &t, st, NULL, 6), 20);
  assert_memory_equal(st, want_st, 6);
  assert_int_equal(st[6], 9);
  /* not a generic NACK */
  {
    uint32_t media;
    uint16_t seqs[8];
    assert_int_equal(sfu_rtcp_parse_nack(&h, &media, seqs, 8), SFU_EINVAL);
  }
  /* one delta byte short: RTCP length counts one word less */
  buf[3] = 8;
  h = one(buf, 36);
  assert_int_equal(sfu_rtcp_parse_twcc(&h, &t, st, d, 400), SFU_EPROTO);
  /* 60 statuses: a 4th "chunk" is read from the deltas, and the deltas
   * then run past the end */
  buf[3] = 9;
  buf[15] = 60;
  h = one(buf, n);
  assert_int_equal(sfu_rtcp_parse_twcc(&h, &t, st, d, 400), SFU_EPROTO);
  /* reserved symbol 3 in the 2-bit vector */
  buf[15] = 20;
  buf[22] = 0xf1;
  h = one(buf, n);
  assert_int_equal(sfu_rtcp_parse_twcc(&h, &t, st, d, 400), SFU_EPROTO);

  n = unhex(TWCC_PAD_HEX, buf, sizeof(buf));
  h = one(buf, n);
  assert_int_equal(h.padding, 1);
  assert_int_equal(h.pad_len, 1);
  assert_int_equal(sfu_rtcp_parse_twcc(&h, &t, st, d, 400), 302);
  assert_int_equal(t.base_seq, 65530);
  assert_int_equal(t.ref_time, 0x123456);
  assert_int_equal(t.fb_count, 255);
  for (i = 0; i < 300; i++)
    assert_int_equal(st[i], SFU_TWCC_NOT_RECEIVED);
  assert_int_equal(st[300], SFU_TWCC_LARGE_DELTA);
  assert_int_equal(d[300], 32767 * 250);
  assert_int_equal(st[301], SFU_TWCC_SMALL_DELTA);
  assert_int_equal(d[301], 250);
}

/* ---- compound framing ---------------------------------------------------- */

static void test_compound(void **state) {
  uint8_t buf[256];
  size_t n = unhex(RR_SDES_REMB_HEX, buf, sizeof(buf));
  sfu_rtcp_iter_t it;
  sfu_rtcp_hdr_t h;
  sfu_rtcp_sr_t sr;
  uint32_t ssrc;
  char cname[32];

  assert_int_equal(n, 32 + 24 + 28);
  sfu_rtcp_iter_init(&it, buf, n);
  assert_int_equal(sfu_rtcp_next(&it, &h), 1);
  assert_int_equal(h.pt, SFU_RTCP_RR);
  assert_int_equal(h.len, 32);
  assert_int_equal(sfu_rtcp_parse_sr(&h, &sr), 0);
  assert_int_equal(sr.reports[0].ssrc, 0x62F601FF);
  assert_int_equal(sr.reports[0].cumulative_lost, 77);
  assert_int_equal(sfu_rtcp_next(&it, &h), 1);
  assert_int_equal(h.pt, SFU_RTCP_SDES);
  assert_ptr_equal(h.data, buf + 32);
  assert_int_equal(sfu_rtcp_parse_sdes_cname(&h, &ssrc, cname, sizeof(cname)),
                   13);
  assert_string_equal(cname, "abcdefghijklm");
  assert_int_equal(sfu_rtcp_parse_sr(&h, &sr), SFU_EINVAL);
  assert_int_equal(sfu_rtcp_next(&it, &h), 1);
  assert_int_equal(h.pt, SFU_RTCP_PSFB);
  assert_int_equal(h.count, SFU_RTCP_FMT_AFB);
  assert_int_equal(h.len, 28);
  assert_int_equal(sfu_rtcp_next(&it, &h), 0);
  assert_int_equal(sfu_rtcp_next(&it, &h), 0);

  /* 2nd packet's length runs past the end: 1st ok, then EPROTO, then end */
  buf[32 + 3] = 0x40;
  sfu_rtcp_iter_init(&it, buf, n);
  assert_int_equal(sfu_rtcp_next(&it, &h), 1);
  assert_int_equal(h.pt, SFU_RTCP_RR);
  assert_int_equal(sfu_rtcp_next(&it, &h), SFU_EPROTO);
  assert_int_equal(sfu_rtcp_next(&it, &h), 0);
  /* 2nd packet one word short: the 3rd would start inside the CNAME ('k',
   * V=1) */
  buf[32 + 3] = 0x04;
  sfu_rtcp_iter_init(&it, buf, n);
  assert_int_equal(sfu_rtcp_next(&it, &h), 1);
  assert_int_equal(sfu_rtcp_next(&it, &h), 1);
  assert_int_equal(h.len, 20);
  assert_int_equal(sfu_rtcp_next(&it, &h), SFU_EPROTO);
  buf[32 + 3] = 0x05;

  /* version 1 on the 3rd */
  buf[56] = 0x4f;
  sfu_rtcp_iter_init(&it, buf, n);
  assert_int_equal(sfu_rtcp_next(&it, &h), 1);
  assert_int_equal(sfu_rtcp_next(&it, &h), 1);
  assert_int_equal(sfu_rtcp_next(&it, &h), SFU_EPROTO);
  buf[56] = 0x8f;

  /* trailing bytes that are not a header */
  buf[n] = 0x80;
  buf[n + 1] = 0xc9;
  sfu_rtcp_iter_init(&it, buf, n + 2);
  assert_int_equal(sfu_rtcp_next(&it, &h), 1);
  assert_int_equal(sfu_rtcp_next(&it, &h), 1);
  assert_int_equal(sfu_rtcp_next(&it, &h), 1);
  assert_int_equal(sfu_rtcp_next(&it, &h), SFU_EPROTO);

  /* empty input; a header-only packet (BYE with no sources) */
  sfu_rtcp_iter_init(&it, buf, 0);
  assert_int_equal(sfu_rtcp_next(&it, &h), 0);
  memcpy(buf, "\x80\xcb\x00\x00", 4);
  h = one(buf, 4);
  assert_int_equal(h.pt, SFU_RTCP_BYE);
  assert_int_equal(h.ssrc, 0);
  assert_int_equal(sfu_rtcp_parse_sr(&h, &sr), SFU_EINVAL);
}

static void test_padding(void **state) {
  /* PLI, then an empty RR with P=1 and 4 bytes of padding */
  static const uint8_t pkt[] = {
      0x81, 0xce, 0x00, 0x02, 0x0b, 0xad, 0xf0, 0x0d, 0x62, 0xf6, 0x01, 0xff,
      0xa0, 0xc9, 0x00, 0x02, 0x0b, 0xad, 0xf0, 0x0d, 0x00, 0x00, 0x00, 0x04,
  };
  uint8_t buf[sizeof(pkt)];
  sfu_rtcp_iter_t it;
  sfu_rtcp_hdr_t h;
  sfu_rtcp_sr_t sr;

  memcpy(buf, pkt, sizeof(buf));
  sfu_rtcp_iter_init(&it, buf, sizeof(buf));
  assert_int_equal(sfu_rtcp_next(&it, &h), 1);
  assert_int_equal(sfu_rtcp_next(&it, &h), 1);
  assert_int_equal(h.padding, 1);
  assert_int_equal(h.pad_len, 4);
  assert_int_equal(h.len, 12);
  assert_int_equal(h.ssrc, 0x0badf00d);
  assert_int_equal(sfu_rtcp_parse_sr(&h, &sr), 0);
  assert_int_equal(sr.nreports, 0);
  /* RC=1 would need a block where the padding is */
  buf[12] = 0xa1;
  sfu_rtcp_iter_init(&it, buf, sizeof(buf));
  assert_int_equal(sfu_rtcp_next(&it, &h), 1);
  assert_int_equal(sfu_rtcp_next(&it, &h), 1);
  assert_int_equal(sfu_rtcp_parse_sr(&h, &sr), SFU_EPROTO);
  buf[12] = 0xa0;
  /* pad count 0, and one that eats into the header */
  buf[23] = 0;
  sfu_rtcp_iter_init(&it, buf, sizeof(buf));
  assert_int_equal(sfu_rtcp_next(&it, &h), 1);
  assert_int_equal(sfu_rtcp_next(&it, &h), SFU_EPROTO);
  buf[23] = 9;
  sfu_rtcp_iter_init(&it, buf, sizeof(buf));
  assert_int_equal(sfu_rtcp_next(&it, &h), 1);
  assert_int_equal(sfu_rtcp_next(&it, &h), SFU_EPROTO);
  /* all of the body is padding: ssrc unknown, parsers refuse */
  buf[23] = 8;
  sfu_rtcp_iter_init(&it, buf, sizeof(buf));
  assert_int_equal(sfu_rtcp_next(&it, &h), 1);
  assert_int_equal(sfu_rtcp_next(&it, &h), 1);
  assert_int_equal(h.ssrc, 0);
  assert_int_equal(sfu_rtcp_parse_sr(&h, &sr), SFU_EPROTO);
  /* P=1 with length 0: the pad count would be in the header */
  memcpy(buf, "\xa0\xcb\x00\x00", 4);
  sfu_rtcp_iter_init(&it, buf, 4);
  assert_int_equal(sfu_rtcp_next(&it, &h), SFU_EPROTO);
}

/*
 * Every message above, cut at every length into an exact heap buffer and
 * fed to the iterator and every parser: results may be anything but
 * nothing may read past the cut (ASan).
 */
static void test_truncation_sweep(void **state) {
  static const char *const HEX[] = {
      SR_SDES_HEX,
      NACK_HEX,
      RR_SDES_REMB_HEX,
      "8fcd00090badf00d62f601ff03e80014fffffe072005e141b440040800ff14ff9c0c10"
      "2801020304",
      "afcd00060000000100000002fffa012e123456ff012ce4007fff0101",
      "84ce00040badf00d0000000062f601ff07000000",
  };
  uint8_t full[256];
  size_t i, n, cut;

  for (i = 0; i < SFU_ARRAY_SIZE(HEX); i++) {
    n = unhex(HEX[i], full, sizeof(full));
    for (cut = 0; cut <= n; cut++) {
      uint8_t *b = malloc(cut ? cut : 1), st[64], seqnr[8];
      sfu_rtcp_iter_t it;
      sfu_rtcp_hdr_t h;
      sfu_rtcp_sr_t sr;
      sfu_rtcp_twcc_t t;
      uint32_t media, ss[8];
      uint16_t seqs[64];
      int32_t d[64];
      uint64_t bps;
      char cname[64];
      int fmt, rv, pkts = 0;

      assert_non_null(b);
      memcpy(b, full, cut);
      sfu_rtcp_iter_init(&it, b, cut);
      while ((rv = sfu_rtcp_next(&it, &h)) == 1) {
        pkts++;
        assert_true(h.data >= b && h.data + h.len <= b + cut);
        sfu_rtcp_parse_sr(&h, &sr);
        sfu_rtcp_parse_sdes_cname(&h, &media, cname, sizeof(cname));
        sfu_rtcp_parse_nack(&h, &media, seqs, 64);
        sfu_rtcp_parse_psfb(&h, &fmt, &media);
        sfu_rtcp_parse_fir(&h, ss, seqnr, 8);
        sfu_rtcp_parse_remb(&h, &bps, ss, 8);
        sfu_rtcp_parse_twcc(&h, &t, st, d, 64);
      }
      /* only whole packets come out; a cut that is not at a packet
       * boundary ends in EPROTO */
      if (cut == n)
        assert_int_equal(rv, 0);
      else if (cut == 0)
        assert_int_equal(rv, 0);
      free(b);
    }
  }
}

/* ---- NTP ------------------------------------------------------------------ */

static void test_ntp(void **state) {
  uint64_t t;

  assert_true(sfu_ntp_from_us(0) == UINT64_C(2208988800) << 32);
  t = sfu_ntp_from_us(INT64_C(1700000000123456));
  assert_true(t == UINT64_C(0xe8fe6f801f9acffa));
  assert_int_equal(sfu_ntp_mid32(t), 0x6f801f9a);
  assert_true(sfu_ntp_from_us(500000) ==
              (UINT64_C(2208988800) << 32 | UINT64_C(0x80000000)));
  assert_true(sfu_ntp_from_us(1) == (UINT64_C(2208988800) << 32 | 4295));
  /* before 1970: floor to the second, fraction from there */
  assert_true(sfu_ntp_from_us(-250000) ==
              (UINT64_C(2208988799) << 32 | UINT64_C(0xc0000000)));
  /* a DLSR of 1.5 s in 1/65536 s is the mid32 difference */
  assert_int_equal(sfu_ntp_mid32(sfu_ntp_from_us(INT64_C(1700000001623456))) -
                       sfu_ntp_mid32(t),
                   98304);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sr_sdes_bytes), cmocka_unit_test(test_rr),
      cmocka_unit_test(test_sdes),          cmocka_unit_test(test_nack),
      cmocka_unit_test(test_pli_fir),       cmocka_unit_test(test_remb),
      cmocka_unit_test(test_twcc),          cmocka_unit_test(test_compound),
      cmocka_unit_test(test_padding),       cmocka_unit_test(test_truncation_sweep),
      cmocka_unit_test(test_ntp),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
