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
 *
 * The video feedback tests further down (NACK lists and packing across
 * buffers, PLI, multi-entry FIR, REMB saturation, the TWCC cursor and
 * writer) use more aiortc-serialised packets, a real Chrome TWCC packet
 * with Wireshark's decoding, and pion/rtcp's TWCC examples with pion's
 * decoding; each block says where its bytes came from.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sfu/media/rtcp.h"
#include "sfu/base/sfu.h"

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

/* ---- video feedback: kinds, NACK lists, PLI, FIR, REMB, TWCC ------------- */

/*
 * Bytes below marked "aiortc" came from aiortc's RTCP serializer (Debian
 * python3-aiortc 1.4.0, aiortc.rtp: RtcpRtpfbPacket / RtcpPsfbPacket /
 * RtcpRrPacket .__bytes__, pack_remb_fci), sender SSRC 0x0badf00d, and
 * RtcpPacket.parse() reads them back as the lists in the comments. aiortc
 * packs NACK differences without mod 2^16, so it was given 65536 and 65540
 * for 0 and 4. It has no FIR class: its PSFB packet carried the FCI words.
 */

/* aiortc: RtcpRtpfbPacket(fmt=1, media_ssrc=0x62f601ff,
 *                         lost=[65533, 65534, 65535, 65536, 65540]) */
static const char AIORTC_NACK_WRAP[] = "81cd00030badf00d62f601fffffd0047";
/* lost=[10, 30, 1000, 40000]: one FCI each */
static const char AIORTC_NACK_FAR[] =
    "81cd00060badf00d62f601ff000a0000001e000003e800009c400000";
/* lost=[500, 516, 517]: 516 is BLP bit 15, 517 is 17 away */
static const char AIORTC_NACK_GAP16[] =
    "81cd00040badf00d62f601ff01f4800002050000";
/* lost=range(2000, 2040): 17 + 17 + 6 */
static const char AIORTC_NACK_RUN40[] =
    "81cd00050badf00d62f601ff07d0ffff07e1ffff07f2001f";
/* RtcpPsfbPacket(fmt=1, media_ssrc=0x55667788) */
static const char AIORTC_PLI[] = "81ce00020badf00d55667788";
/* RtcpPsfbPacket(fmt=4, media_ssrc=0, fci=pack("!LB3xLB3x",
 *                0x62f601ff, 42, 0x55667788, 255)) */
static const char AIORTC_FIR2[] =
    "84ce00060badf00d0000000062f601ff2a00000055667788ff000000";
/* RtcpPsfbPacket(fmt=15, media_ssrc=0, fci=pack_remb_fci(2500000,
 * [0x62f601ff])); unpack_remb_fci -> 2500000 */
static const char AIORTC_REMB_2M5[] =
    "8fce00050badf00d0000000052454d420112625a62f601ff";
/* pack_remb_fci(2**80, [0x62f601ff, 0x55667788, 1]): exponent 63,
 * mantissa 0x20000; unpack_remb_fci -> 2**80, past uint64_t */
static const char AIORTC_REMB_HUGE[] =
    "8fce00070badf00d0000000052454d4203fe000062f601ff5566778800000001";
/* compound: RtcpRrPacket (2 report blocks), NACK lost=[7, 8, 9, 100],
 * PLI, REMB pack_remb_fci(812345, [0x62f601ff, 0x55667788]) -> 812344 */
static const char AIORTC_COMPOUND[] =
    "82c9000d0badf00d62f601ff0500000c0001ffff0000005a1234567800010000"
    "55667788000000000000109200000003000000000000000081cd00040badf00d"
    "62f601ff000700030064000081ce00020badf00d62f601ff8fce00060badf00d"
    "0000000052454d42020b194e62f601ff55667788";

/*
 * Real TWCC feedback sent by Chrome, from olivermichel/webrtc-analysis
 * test/include/data.h with Wireshark's dissection: sender SSRC 1, media
 * 0xdd586eb6, base 1, 9 statuses, reference time 6197520, fb count 0, one
 * run chunk (0x2009, small delta x 9), deltas 7, 3, 11, 14, 0, 1, 0, 2,
 * 6 ms, one byte of RTCP padding.
 */
static const char CHROME_TWCC[] =
    "afcd000700000001dd586eb6000100095e91100020091c0c2c3800040008"
    "1801";
/*
 * pion/rtcp transport_layer_cc_test.go "example6" and "example4", with
 * pion's decoding: ex6 is a 2-bit vector (1,1,1,1,1,0,2) then a run of 48
 * "not received" of which 2 count, deltas 38750, 42500, 26500, 42500,
 * 30750 us small and 66250 us large; ex4 a run of 7 small, 19000, 9000,
 * 9000, 4000, 3000, 3000, 4000 us. (pion's other examples carry a padding
 * count that disagrees with their bodies; RFC 3550 framing rejects them.)
 */
static const char PION_TWCC_EX6[] =
    "afcd00079b74f61f9371dcbc853c000963f916b3d55200309baa6aaa7b010901";
static const char PION_TWCC_EX4[] =
    "afcd0007fa17fa17193dd8bb0004000710636e0120074c2424100c0c10000003";

static void test_fb_kind(void **state) {
  static const struct {
    const char *hex;
    sfu_rtcp_fb_kind_t kind;
    const char *name;
  } one_pkt[] = {
      {AIORTC_NACK_FAR, SFU_RTCP_FB_NACK, "nack"},
      {AIORTC_PLI, SFU_RTCP_FB_PLI, "pli"},
      {AIORTC_FIR2, SFU_RTCP_FB_FIR, "fir"},
      {AIORTC_REMB_2M5, SFU_RTCP_FB_REMB, "remb"},
      {CHROME_TWCC, SFU_RTCP_FB_TWCC, "twcc"},
      {NACK_HEX, SFU_RTCP_FB_NACK, "nack"},
  };
  static const sfu_rtcp_fb_kind_t compound[] = {
      SFU_RTCP_FB_NONE, SFU_RTCP_FB_NACK, SFU_RTCP_FB_PLI, SFU_RTCP_FB_REMB};
  uint8_t buf[256];
  sfu_rtcp_iter_t it;
  sfu_rtcp_hdr_t h;
  size_t i, n;

  for (i = 0; i < SFU_ARRAY_SIZE(one_pkt); i++) {
    n = unhex(one_pkt[i].hex, buf, sizeof(buf));
    h = one(buf, n);
    assert_int_equal(sfu_rtcp_fb_kind(&h), one_pkt[i].kind);
    assert_string_equal(sfu_rtcp_fb_kind_name(sfu_rtcp_fb_kind(&h)),
                        one_pkt[i].name);
  }
  n = unhex(AIORTC_COMPOUND, buf, sizeof(buf));
  sfu_rtcp_iter_init(&it, buf, n);
  for (i = 0; i < SFU_ARRAY_SIZE(compound); i++) {
    assert_int_equal(sfu_rtcp_next(&it, &h), 1);
    assert_int_equal(sfu_rtcp_fb_kind(&h), compound[i]);
  }
  assert_int_equal(sfu_rtcp_next(&it, &h), 0);

  /* AFB that is not REMB, and one too short to hold the identifier */
  n = unhex(AIORTC_REMB_2M5, buf, sizeof(buf));
  buf[12] = 'G';
  h = one(buf, n);
  assert_int_equal(sfu_rtcp_fb_kind(&h), SFU_RTCP_FB_OTHER_PSFB);
  memcpy(buf, "\x8f\xce\x00\x02\x00\x00\x00\x01\x00\x00\x00\x00", 12);
  h = one(buf, 12);
  assert_int_equal(sfu_rtcp_fb_kind(&h), SFU_RTCP_FB_OTHER_PSFB);
  assert_string_equal(sfu_rtcp_fb_kind_name(SFU_RTCP_FB_OTHER_PSFB), "psfb");
  /* SLI (PSFB 2), TMMBR (RTPFB 3), an SR, a BYE */
  buf[0] = 0x82;
  h = one(buf, 12);
  assert_int_equal(sfu_rtcp_fb_kind(&h), SFU_RTCP_FB_OTHER_PSFB);
  buf[0] = 0x83;
  buf[1] = SFU_RTCP_RTPFB;
  h = one(buf, 12);
  assert_int_equal(sfu_rtcp_fb_kind(&h), SFU_RTCP_FB_OTHER_RTPFB);
  assert_string_equal(sfu_rtcp_fb_kind_name(SFU_RTCP_FB_OTHER_RTPFB), "rtpfb");
  n = unhex(SR_SDES_HEX, buf, sizeof(buf));
  sfu_rtcp_iter_init(&it, buf, n);
  assert_int_equal(sfu_rtcp_next(&it, &h), 1);
  assert_int_equal(sfu_rtcp_fb_kind(&h), SFU_RTCP_FB_NONE);
  assert_string_equal(sfu_rtcp_fb_kind_name(SFU_RTCP_FB_NONE), "none");
  assert_string_equal(sfu_rtcp_fb_kind_name((sfu_rtcp_fb_kind_t)99), "none");
}

/* Parses a NACK packet in full and checks it names exactly want[0..n). */
static void assert_nack_is(const uint8_t *buf, size_t len, uint32_t media,
                           const uint16_t *want, int n) {
  uint16_t seqs[512];
  uint32_t m;
  sfu_rtcp_hdr_t h = one(buf, len);
  int total = -1, i;

  assert_int_equal(sfu_rtcp_fb_kind(&h), SFU_RTCP_FB_NACK);
  assert_int_equal(sfu_rtcp_parse_nack_total(&h, &m, seqs, 512, &total), n);
  assert_int_equal(total, n);
  assert_int_equal(m, media);
  assert_int_equal(h.ssrc, 0x0badf00d);
  for (i = 0; i < n; i++)
    assert_int_equal(seqs[i], want[i]);
}

static void test_nack_aiortc(void **state) {
  static const uint16_t wrap[] = {65533, 65534, 65535, 0, 4};
  static const uint16_t far[] = {10, 30, 1000, 40000};
  static const uint16_t gap16[] = {500, 516, 517};
  static const struct {
    const char *hex;
    const uint16_t *seqs;
    int n;
  } cases[] = {
      {AIORTC_NACK_WRAP, wrap, 5},
      {AIORTC_NACK_FAR, far, 4},
      {AIORTC_NACK_GAP16, gap16, 3},
  };
  uint8_t want[64], buf[64];
  uint16_t run[40], seqs[64];
  uint32_t media;
  sfu_rtcp_hdr_t h;
  size_t wn, i;
  int n, total, used;

  for (i = 0; i < SFU_ARRAY_SIZE(cases); i++) {
    wn = unhex(cases[i].hex, want, sizeof(want));
    assert_nack_is(want, wn, 0x62F601FF, cases[i].seqs, cases[i].n);
    n = sfu_rtcp_write_nack(buf, sizeof(buf), 0x0badf00d, 0x62F601FF,
                            cases[i].seqs, cases[i].n);
    assert_int_equal(n, wn);
    assert_memory_equal(buf, want, wn);
    n = sfu_rtcp_write_nack_fit(buf, sizeof(buf), 0x0badf00d, 0x62F601FF,
                                cases[i].seqs, cases[i].n, &used);
    assert_int_equal(n, wn);
    assert_int_equal(used, cases[i].n);
    assert_memory_equal(buf, want, wn);
  }
  /* one FCI per number when all are more than 16 apart */
  wn = unhex(AIORTC_NACK_FAR, want, sizeof(want));
  assert_int_equal(wn, 12 + 4 * 4);
  assert_memory_equal(want + 12, "\x00\x0a\x00\x00\x00\x1e\x00\x00", 8);

  /* 40 in a row: PID 2000 BLP ffff, 2017 ffff, 2034 001f */
  for (i = 0; i < 40; i++)
    run[i] = (uint16_t)(2000 + i);
  wn = unhex(AIORTC_NACK_RUN40, want, sizeof(want));
  assert_nack_is(want, wn, 0x62F601FF, run, 40);
  assert_int_equal(sfu_rtcp_write_nack(buf, sizeof(buf), 0x0badf00d,
                                       0x62F601FF, run, 40),
                   wn);
  assert_memory_equal(buf, want, wn);

  /* truncation: the first cap numbers, and the total says how many more */
  h = one(want, wn);
  memset(seqs, 0, sizeof(seqs));
  assert_int_equal(sfu_rtcp_parse_nack_total(&h, &media, seqs, 10, &total),
                   10);
  assert_int_equal(total, 40);
  for (i = 0; i < 10; i++)
    assert_int_equal(seqs[i], 2000 + i);
  assert_int_equal(seqs[10], 0);
  assert_int_equal(sfu_rtcp_parse_nack_total(&h, &media, seqs, 17, &total),
                   17);
  assert_int_equal(seqs[16], 2016);
  assert_int_equal(total, 40);
  assert_int_equal(sfu_rtcp_parse_nack_total(&h, &media, NULL, 0, &total), 0);
  assert_int_equal(total, 40);
  assert_int_equal(sfu_rtcp_parse_nack_total(&h, &media, seqs, 64, NULL), 40);

  /* overlapping pairs name 101 twice; both count */
  memcpy(buf, "\x81\xcd\x00\x04\x0b\xad\xf0\x0d\x00\x00\x00\x02"
              "\x00\x64\x00\x01\x00\x65\x00\x00",
         20);
  h = one(buf, 20);
  assert_int_equal(sfu_rtcp_parse_nack_total(&h, &media, seqs, 64, &total), 3);
  assert_int_equal(total, 3);
  assert_int_equal(seqs[1], 101);
  assert_int_equal(seqs[2], 101);
  /* P=1 with a 2-byte pad count: the body is 1.5 FCI entries */
  buf[0] = 0xa1;
  buf[19] = 2;
  h = one(buf, 20);
  assert_int_equal(sfu_rtcp_parse_nack_total(&h, &media, seqs, 64, &total),
                   SFU_EPROTO);
  /* the same with a 4-byte pad: one whole entry left */
  buf[19] = 4;
  h = one(buf, 20);
  assert_int_equal(sfu_rtcp_parse_nack_total(&h, &media, seqs, 64, &total), 2);
  assert_int_equal(total, 2);
}

/*
 * Sends `in` through write_nack_fit at a fixed buffer size until all is
 * out; every packet fits, is a valid NACK, and together they name exactly
 * the input (a set: the input is ascending and distinct). Returns the
 * number of packets.
 */
static int nack_fit_all(const uint16_t *in, int n, size_t cap,
                        int expect_pairs) {
  uint8_t *b = malloc(cap ? cap : 1);
  uint16_t *got = malloc(sizeof(uint16_t) * (size_t)n);
  uint16_t seqs[17 * 300];
  uint32_t media;
  sfu_rtcp_hdr_t h;
  int done = 0, ngot = 0, pkts = 0, pairs = 0, w, used, m, total, i;

  assert_non_null(b);
  assert_non_null(got);
  while (done < n) {
    w = sfu_rtcp_write_nack_fit(b, cap, 7, 9, in + done, n - done, &used);
    assert_true(w >= 16 && (size_t)w <= cap && w % 4 == 0);
    assert_true(used >= 1 && used <= n - done);
    /* a packet is full unless it holds the rest */
    if (done + used < n)
      assert_true((size_t)w + 4 > cap);
    h = one(b, (size_t)w);
    m = sfu_rtcp_parse_nack_total(&h, &media, seqs, 17 * 300, &total);
    assert_int_equal(m, total);
    assert_int_equal(m, used);
    assert_int_equal(media, 9);
    for (i = 0; i < m; i++)
      got[ngot++] = seqs[i];
    pairs += (w - 12) / 4;
    done += used;
    pkts++;
  }
  assert_int_equal(ngot, n);
  assert_memory_equal(got, in, sizeof(uint16_t) * (size_t)n);
  if (expect_pairs > 0)
    assert_int_equal(pairs, expect_pairs);
  free(b);
  free(got);
  return pkts;
}

static void test_nack_fit(void **state) {
  static const uint16_t far[] = {10, 30, 1000, 40000};
  uint16_t in[600], *big;
  uint8_t buf[64], *huge;
  uint32_t media;
  sfu_rtcp_hdr_t h;
  size_t cap;
  int n, used, i, total;

  /* 20 bytes hold two pairs: [10, 30] then [1000, 40000] */
  n = sfu_rtcp_write_nack_fit(buf, 20, 1, 2, far, 4, &used);
  assert_int_equal(n, 20);
  assert_int_equal(used, 2);
  assert_memory_equal(buf + 12, "\x00\x0a\x00\x00\x00\x1e\x00\x00", 8);
  n = sfu_rtcp_write_nack_fit(buf, 20, 1, 2, far + used, 4 - used, &used);
  assert_int_equal(n, 20);
  assert_int_equal(used, 2);
  assert_memory_equal(buf + 12, "\x03\xe8\x00\x00\x9c\x40\x00\x00", 8);
  /* 19 bytes: one pair; 15: none */
  assert_int_equal(sfu_rtcp_write_nack_fit(buf, 19, 1, 2, far, 4, &used), 16);
  assert_int_equal(used, 1);
  assert_int_equal(sfu_rtcp_write_nack_fit(buf, 15, 1, 2, far, 4, &used),
                   SFU_E2BIG);
  assert_int_equal(sfu_rtcp_write_nack_fit(buf, sizeof(buf), 1, 2, far, 0,
                                           &used),
                   SFU_EINVAL);
  assert_int_equal(sfu_rtcp_write_nack_fit(buf, sizeof(buf), 1, 2, NULL, 1,
                                           &used),
                   SFU_EINVAL);
  /* used may be NULL; whatever BLP bits a pair has, it stays one pair */
  assert_int_equal(sfu_rtcp_write_nack_fit(buf, 16, 1, 2, in, 1, NULL), 16);

  /* 600 numbers across the wrap, 3 apart: 100 pairs of PID + 5 bits */
  for (i = 0; i < 600; i++)
    in[i] = (uint16_t)(65000 + 3 * i);
  for (cap = 16; cap <= 12 + 4 * 100 + 8; cap++)
    nack_fit_all(in, 600, cap, 100);
  assert_int_equal(nack_fit_all(in, 600, 16, 100), 100);
  assert_int_equal(nack_fit_all(in, 600, 52, 100), 10);
  assert_int_equal(nack_fit_all(in, 600, 1200, 100), 1);
  /* 500 numbers 17 apart: one pair each, an MTU-sized buffer holds 297 */
  for (i = 0; i < 500; i++)
    in[i] = (uint16_t)(60000 + 17 * i);
  assert_int_equal(nack_fit_all(in, 500, 1200, 500), 2);
  assert_int_equal(sfu_rtcp_write_nack(buf, 20, 1, 2, in, 500), SFU_E2BIG);

  /* the 16-bit length field: 70000 pairs do not fit one packet even in a
   * huge buffer; 65533 pairs do (12 + 4 * 65533 = 4 * 65536 bytes) */
  big = malloc(sizeof(uint16_t) * 70000);
  huge = malloc(4 * 65536 + 64);
  assert_non_null(big);
  assert_non_null(huge);
  for (i = 0; i < 70000; i++)
    big[i] = (uint16_t)(17 * i);
  n = sfu_rtcp_write_nack_fit(huge, 4 * 65536 + 64, 1, 2, big, 70000, &used);
  assert_int_equal(n, 4 * 65536);
  assert_int_equal(used, 65533);
  assert_memory_equal(huge + 2, "\xff\xff", 2);
  h = one(huge, (size_t)n);
  assert_int_equal(sfu_rtcp_parse_nack_total(&h, &media, NULL, 0, &total), 0);
  assert_int_equal(total, 65533);
  assert_int_equal(sfu_rtcp_write_nack(huge, 4 * 65536 + 64, 1, 2, big, 70000),
                   SFU_E2BIG);
  free(big);
  free(huge);
}

static void test_pli_parse(void **state) {
  uint8_t want[16], buf[32];
  size_t wn = unhex(AIORTC_PLI, want, sizeof(want));
  uint32_t sender, media;
  sfu_rtcp_hdr_t h = one(want, wn);

  assert_int_equal(sfu_rtcp_parse_pli(&h, &sender, &media), 0);
  assert_int_equal(sender, 0x0badf00d);
  assert_int_equal(media, 0x55667788);
  assert_int_equal(sfu_rtcp_write_pli(buf, sizeof(buf), 0x0badf00d,
                                      0x55667788),
                   12);
  assert_memory_equal(buf, want, 12);
  /* a PLI with an extra word is still a PLI */
  memcpy(buf, want, 12);
  buf[3] = 3;
  memcpy(buf + 12, "\xde\xad\xbe\xef", 4);
  h = one(buf, 16);
  assert_int_equal(sfu_rtcp_parse_pli(&h, &sender, &media), 0);
  assert_int_equal(media, 0x55667788);
  /* only the sender SSRC */
  buf[3] = 1;
  h = one(buf, 8);
  assert_int_equal(sfu_rtcp_parse_pli(&h, &sender, &media), SFU_EPROTO);
  /* FIR, RTPFB FMT 1: not a PLI */
  wn = unhex(AIORTC_FIR2, buf, sizeof(buf));
  h = one(buf, wn);
  assert_int_equal(sfu_rtcp_parse_pli(&h, &sender, &media), SFU_EINVAL);
  wn = unhex(AIORTC_NACK_GAP16, buf, sizeof(buf));
  h = one(buf, wn);
  assert_int_equal(sfu_rtcp_parse_pli(&h, &sender, &media), SFU_EINVAL);
}

static void test_fir_n(void **state) {
  static const uint32_t ssrcs[] = {0x62F601FF, 0x55667788};
  static const uint8_t seqnrs[] = {42, 255};
  uint8_t want[64], buf[64], got_nr[4];
  size_t wn = unhex(AIORTC_FIR2, want, sizeof(want));
  uint32_t got[4], media;
  sfu_rtcp_hdr_t h;
  int n, fmt;

  n = sfu_rtcp_write_fir_n(buf, sizeof(buf), 0x0badf00d, ssrcs, seqnrs, 2);
  assert_int_equal(n, 28);
  assert_int_equal(n, wn);
  assert_memory_equal(buf, want, wn);
  h = one(want, wn);
  assert_int_equal(sfu_rtcp_parse_fir(&h, got, got_nr, 4), 2);
  assert_int_equal(got[0], 0x62F601FF);
  assert_int_equal(got_nr[0], 42);
  assert_int_equal(got[1], 0x55667788);
  assert_int_equal(got_nr[1], 255);
  assert_int_equal(sfu_rtcp_parse_fir(&h, got, got_nr, 1), 1);
  assert_int_equal(sfu_rtcp_parse_psfb(&h, &fmt, &media), 0);
  assert_int_equal(media, 0x62F601FF);
  CHECK_CAPS(n, sfu_rtcp_write_fir_n(b, cap, 1, ssrcs, seqnrs, 2));
  assert_int_equal(sfu_rtcp_write_fir_n(buf, sizeof(buf), 1, ssrcs, seqnrs, 0),
                   SFU_EINVAL);
  assert_int_equal(
      sfu_rtcp_write_fir_n(buf, sizeof(buf), 1, ssrcs, seqnrs, 1001),
      SFU_EINVAL);
  assert_int_equal(sfu_rtcp_write_fir_n(buf, sizeof(buf), 1, NULL, seqnrs, 1),
                   SFU_EINVAL);
  /* the one-entry writer is the n = 1 case */
  assert_int_equal(sfu_rtcp_write_fir(buf, sizeof(buf), 0x0badf00d,
                                      0x62F601FF, 42),
                   20);
  assert_memory_equal(buf, "\x84\xce\x00\x04", 4); /* length 4, not 6 */
  assert_memory_equal(buf + 4, want + 4, 16);

  /* length 5: an entry and a half */
  memcpy(buf, want, wn);
  buf[3] = 5;
  h = one(buf, 24);
  assert_int_equal(sfu_rtcp_parse_fir(&h, got, got_nr, 4), SFU_EPROTO);
  /* the half entry hidden by 4 bytes of padding: one whole entry */
  buf[0] = 0xa4;
  buf[23] = 4;
  h = one(buf, 24);
  assert_int_equal(sfu_rtcp_parse_fir(&h, got, got_nr, 4), 1);
}

static void test_remb_aiortc(void **state) {
  static const uint32_t huge_ss[] = {0x62F601FF, 0x55667788, 1};
  uint8_t want[160], buf[160];
  uint32_t ss[8];
  uint64_t bps;
  sfu_rtcp_iter_t it;
  sfu_rtcp_hdr_t h;
  sfu_rtcp_sr_t rr;
  uint16_t seqs[16];
  uint32_t media, sender;
  size_t wn;
  int n;

  wn = unhex(AIORTC_REMB_2M5, want, sizeof(want));
  h = one(want, wn);
  assert_int_equal(sfu_rtcp_parse_remb(&h, &bps, ss, 8), 1);
  assert_true(bps == 2500000);
  assert_int_equal(ss[0], 0x62F601FF);
  n = sfu_rtcp_write_remb(buf, sizeof(buf), 0x0badf00d, 2500000, ss, 1);
  assert_int_equal(n, wn);
  assert_memory_equal(buf, want, wn);

  /* aiortc says 2^80: saturated; the SSRC list is still read */
  wn = unhex(AIORTC_REMB_HUGE, want, sizeof(want));
  h = one(want, wn);
  assert_int_equal(sfu_rtcp_parse_remb(&h, &bps, ss, 8), 3);
  assert_true(bps == UINT64_MAX);
  assert_memory_equal(ss, huge_ss, sizeof(huge_ss));

  /* saturation edges: exp 46/47 with 18/17/18-bit mantissas */
  memcpy(buf, want, 20);
  buf[16] = 0;
  buf[3] = 4;
  h = one(buf, 20);
  buf[17] = 46 << 2 | 3; /* 0x3ffff << 46 */
  buf[18] = 0xff;
  buf[19] = 0xff;
  assert_int_equal(sfu_rtcp_parse_remb(&h, &bps, ss, 8), 0);
  assert_true(bps == UINT64_C(0x3ffff) << 46);
  buf[17] = 47 << 2 | 1; /* 0x1ffff << 47: the largest that fits */
  assert_int_equal(sfu_rtcp_parse_remb(&h, &bps, ss, 8), 0);
  assert_true(bps == UINT64_C(0x1ffff) << 47);
  buf[17] = 47 << 2 | 2; /* 0x20000 << 47 = 2^64 */
  buf[18] = 0;
  buf[19] = 0;
  assert_int_equal(sfu_rtcp_parse_remb(&h, &bps, ss, 8), 0);
  assert_true(bps == UINT64_MAX);
  buf[17] = 63 << 2; /* 0 << 63 */
  assert_int_equal(sfu_rtcp_parse_remb(&h, &bps, ss, 8), 0);
  assert_true(bps == 0);

  /* the compound: RR with 2 blocks, NACK, PLI, REMB 812345 rounded down */
  wn = unhex(AIORTC_COMPOUND, want, sizeof(want));
  assert_int_equal(wn, 56 + 20 + 12 + 28);
  sfu_rtcp_iter_init(&it, want, wn);
  assert_int_equal(sfu_rtcp_next(&it, &h), 1);
  assert_int_equal(sfu_rtcp_parse_sr(&h, &rr), 0);
  assert_int_equal(rr.nreports, 2);
  assert_int_equal(rr.reports[0].ssrc, 0x62F601FF);
  assert_int_equal(rr.reports[0].fraction_lost, 5);
  assert_int_equal(rr.reports[0].cumulative_lost, 12);
  assert_int_equal(rr.reports[0].ext_highest_seq, 0x0001ffff);
  assert_int_equal(rr.reports[0].jitter, 90);
  assert_int_equal(rr.reports[0].lsr, 0x12345678);
  assert_int_equal(rr.reports[0].dlsr, 0x10000);
  assert_int_equal(rr.reports[1].ext_highest_seq, 4242);
  n = sfu_rtcp_write_rr(buf, sizeof(buf), 0x0badf00d, rr.reports, 2);
  assert_int_equal(n, 56);
  assert_memory_equal(buf, want, 56);
  assert_int_equal(sfu_rtcp_next(&it, &h), 1);
  assert_int_equal(sfu_rtcp_parse_nack(&h, &media, seqs, 16), 4);
  assert_int_equal(seqs[0], 7);
  assert_int_equal(seqs[2], 9);
  assert_int_equal(seqs[3], 100);
  n = sfu_rtcp_write_nack(buf + 56, sizeof(buf) - 56, 0x0badf00d, media, seqs,
                          4);
  assert_int_equal(n, 20);
  assert_int_equal(sfu_rtcp_next(&it, &h), 1);
  assert_int_equal(sfu_rtcp_parse_pli(&h, &sender, &media), 0);
  assert_int_equal(media, 0x62F601FF);
  n = sfu_rtcp_write_pli(buf + 76, sizeof(buf) - 76, sender, media);
  assert_int_equal(n, 12);
  assert_int_equal(sfu_rtcp_next(&it, &h), 1);
  assert_int_equal(sfu_rtcp_parse_remb(&h, &bps, ss, 8), 2);
  assert_true(bps == 812344); /* 203086 << 2 */
  assert_int_equal(ss[0], 0x62F601FF);
  assert_int_equal(ss[1], 0x55667788);
  n = sfu_rtcp_write_remb(buf + 88, sizeof(buf) - 88, 0x0badf00d, 812345, ss,
                          2);
  assert_int_equal(n, 28);
  assert_int_equal(sfu_rtcp_next(&it, &h), 0);
  /* our writers, back to back, give aiortc's compound byte for byte */
  assert_memory_equal(buf, want, wn);
}

/* Every status of a TWCC packet through the cursor. */
static int twcc_all(const uint8_t *buf, size_t len, sfu_rtcp_twcc_t *t,
                    sfu_rtcp_twcc_pkt_t *out, int cap) {
  sfu_rtcp_twcc_iter_t it;
  sfu_rtcp_hdr_t h = one(buf, len);
  int n = 0, rv;

  rv = sfu_rtcp_twcc_iter_init(&it, &h, t);
  if (rv < 0)
    return rv;
  while (n < cap && sfu_rtcp_twcc_next(&it, &out[n]) == 1)
    n++;
  assert_int_equal(n, t->status_count);
  assert_int_equal(sfu_rtcp_twcc_next(&it, &out[0]), 0);
  return n;
}

static void test_twcc_real(void **state) {
  static const int32_t chrome_d[] = {28, 12, 44, 56, 0, 4, 0, 8, 24};
  static const uint8_t ex6_st[] = {1, 1, 1, 1, 1, 0, 2, 0, 0};
  static const int32_t ex6_us[] = {38750, 42500, 26500, 42500, 30750,
                                   0,     66250, 0,     0};
  static const int32_t ex4_us[] = {19000, 9000, 9000, 4000, 3000, 3000, 4000};
  sfu_rtcp_twcc_pkt_t p[16];
  sfu_rtcp_twcc_t t;
  uint8_t want[64], buf[64];
  size_t wn;
  int i, n;

  wn = unhex(CHROME_TWCC, want, sizeof(want));
  assert_int_equal(twcc_all(want, wn, &t, p, 16), 9);
  assert_int_equal(t.sender_ssrc, 1);
  assert_int_equal(t.media_ssrc, 0xdd586eb6);
  assert_int_equal(t.base_seq, 1);
  assert_int_equal(t.ref_time, 6197520);
  assert_int_equal(t.fb_count, 0);
  for (i = 0; i < 9; i++) {
    assert_int_equal(p[i].seq, 1 + i);
    assert_int_equal(p[i].status, SFU_TWCC_SMALL_DELTA);
    assert_int_equal(p[i].received, 1);
    assert_int_equal(p[i].delta, chrome_d[i]);
  }
  /* our writer makes Chrome's packet again, padding included */
  n = sfu_rtcp_write_twcc(buf, sizeof(buf), &t, p, 9);
  assert_int_equal(n, wn);
  assert_memory_equal(buf, want, wn);

  wn = unhex(PION_TWCC_EX6, want, sizeof(want));
  assert_int_equal(twcc_all(want, wn, &t, p, 16), 9);
  assert_int_equal(t.sender_ssrc, 2608133663u);
  assert_int_equal(t.media_ssrc, 2473712828u);
  assert_int_equal(t.base_seq, 34108);
  assert_int_equal(t.ref_time, 6551830);
  assert_int_equal(t.fb_count, 179);
  for (i = 0; i < 9; i++) {
    assert_int_equal(p[i].seq, 34108 + i);
    assert_int_equal(p[i].status, ex6_st[i]);
    assert_int_equal(p[i].received, ex6_st[i] != 0);
    assert_int_equal(p[i].delta * 250, ex6_us[i]);
  }
  /* re-encoded: the same 2-bit vector, then a run of exactly 2 */
  n = sfu_rtcp_write_twcc(buf, sizeof(buf), &t, p, 9);
  assert_int_equal(n, wn);
  assert_memory_equal(buf, want, 22);
  assert_memory_equal(buf + 22, "\x00\x02", 2);
  assert_memory_equal(buf + 24, want + 24, wn - 24);

  wn = unhex(PION_TWCC_EX4, want, sizeof(want));
  assert_int_equal(twcc_all(want, wn, &t, p, 16), 7);
  assert_int_equal(t.base_seq, 4);
  assert_int_equal(t.ref_time, 1074030);
  assert_int_equal(t.fb_count, 1);
  for (i = 0; i < 7; i++)
    assert_int_equal(p[i].delta * 250, ex4_us[i]);
  n = sfu_rtcp_write_twcc(buf, sizeof(buf), &t, p, 7);
  assert_int_equal(n, wn);
  assert_memory_equal(buf, want, wn);
}

static void test_twcc_write(void **state) {
  /* base 65534 (wraps), ref time -1, fb count 9; 37 statuses:
   *   20 not received                          run      0x0014
   *   10,0,-,255,-,-,1,2,-,-,-,-,-,3 (small)   1-bit    0xb4c1
   *   -4, 1000 (large), 7 (small)              2-bit    0xe900
   * deltas 0a 00 ff 01 02 03 | fffc 03e8 | 07; 37 bytes + 3 of padding */
  static const char WANT[] =
      "afcd00090badf00d62f601fffffe0025ffffff090014b4c1e9000a00"
      "ff010203fffc03e807000003";
  static const int32_t mid[14] = {10, 0, -1, 255, -1, -1, 1,
                                  2,  -1, -1, -1, -1, -1, 3};
  sfu_rtcp_twcc_pkt_t in[37], got[40];
  sfu_rtcp_twcc_t t = {0x0badf00d, 0x62F601FF, 65534, 0, -1, 9}, t2;
  uint8_t want[64], buf[64], st[40];
  int32_t dus[40];
  size_t wn = unhex(WANT, want, sizeof(want));
  int n, i;

  memset(in, 0, sizeof(in));
  for (i = 0; i < 14; i++) {
    in[20 + i].received = mid[i] >= 0;
    in[20 + i].delta = mid[i] >= 0 ? mid[i] : 12345; /* ignored if lost */
  }
  in[34] = (sfu_rtcp_twcc_pkt_t){0, 0, 1, -4};
  in[35] = (sfu_rtcp_twcc_pkt_t){0, 0, 1, 1000};
  in[36] = (sfu_rtcp_twcc_pkt_t){0, 0, 1, 7};
  n = sfu_rtcp_write_twcc(buf, sizeof(buf), &t, in, 37);
  assert_int_equal(n, 40);
  assert_int_equal(n, wn);
  assert_memory_equal(buf, want, wn);
  CHECK_CAPS(n, sfu_rtcp_write_twcc(b, cap, &t, in, 37));

  assert_int_equal(twcc_all(buf, (size_t)n, &t2, got, 40), 37);
  assert_int_equal(t2.base_seq, 65534);
  assert_int_equal(t2.status_count, 37);
  assert_int_equal(t2.ref_time, -1);
  assert_int_equal(t2.fb_count, 9);
  for (i = 0; i < 37; i++) {
    assert_int_equal(got[i].seq, (uint16_t)(65534 + i));
    assert_int_equal(got[i].received, in[i].received);
    assert_int_equal(got[i].delta, in[i].received ? in[i].delta : 0);
  }
  assert_int_equal(got[2].seq, 0);
  assert_int_equal(got[34].status, SFU_TWCC_LARGE_DELTA);
  assert_int_equal(got[36].status, SFU_TWCC_SMALL_DELTA);
  /* the array form agrees, in microseconds */
  {
    sfu_rtcp_hdr_t h = one(buf, (size_t)n);
    assert_int_equal(sfu_rtcp_parse_twcc(&h, &t2, st, dus, 40), 37);
    for (i = 0; i < 37; i++) {
      assert_int_equal(st[i], got[i].status);
      assert_int_equal(dus[i], got[i].delta * 250);
    }
  }

  /* ref_time keeps its low 24 bits; extreme deltas */
  t.ref_time = 0x7abcdef;
  in[0] = (sfu_rtcp_twcc_pkt_t){0, 0, 1, -32768};
  in[1] = (sfu_rtcp_twcc_pkt_t){0, 0, 1, 32767};
  in[2] = (sfu_rtcp_twcc_pkt_t){0, 0, 1, 256};
  n = sfu_rtcp_write_twcc(buf, sizeof(buf), &t, in, 3);
  assert_int_equal(n, 20 + 2 + 6);
  assert_int_equal(buf[0], 0x8f); /* no padding needed */
  /* three large deltas: a run chunk 0x4003 */
  assert_memory_equal(buf + 16,
                      "\xab\xcd\xef\x09\x40\x03\x80\x00\x7f\xff\x01\x00", 12);
  assert_int_equal(twcc_all(buf, (size_t)n, &t2, got, 40), 3);
  assert_int_equal(t2.ref_time, -0x543211); /* 0xabcdef as 24-bit signed */
  assert_int_equal(got[0].delta, -32768);
  assert_int_equal(got[1].delta, 32767);
  assert_int_equal(got[2].delta, 256);

  /* a run of 9 large then a small: run chunk (0x4009), then run 1 */
  for (i = 0; i < 9; i++)
    in[i] = (sfu_rtcp_twcc_pkt_t){0, 0, 1, -1};
  in[9] = (sfu_rtcp_twcc_pkt_t){0, 0, 1, 1};
  n = sfu_rtcp_write_twcc(buf, sizeof(buf), &t, in, 10);
  assert_int_equal(n, 20 + 4 + 18 + 1 + 1);
  assert_memory_equal(buf + 20, "\x40\x09\x20\x01", 4);

  /* 7 large are a run too (0x4007), not a 2-bit vector */
  n = sfu_rtcp_write_twcc(buf, sizeof(buf), &t, in + 2, 8);
  assert_memory_equal(buf + 20, "\x40\x07\x20\x01", 4);
  /* 6 large and a small fit one 2-bit vector: 2,2,2,2,2,2,1 */
  n = sfu_rtcp_write_twcc(buf, sizeof(buf), &t, in + 3, 7);
  assert_memory_equal(buf + 20, "\xea\xa9", 2);

  /* 13 equal symbols are not worth a run: 13 small + 1 lost fill a 1-bit
   * vector (0xbffe), the last small is a run of 1 */
  for (i = 0; i < 15; i++)
    in[i] = (sfu_rtcp_twcc_pkt_t){0, 0, i != 13, 5};
  n = sfu_rtcp_write_twcc(buf, sizeof(buf), &t, in, 15);
  assert_int_equal(n, 20 + 4 + 14 + 2);
  assert_memory_equal(buf + 20, "\xbf\xfe\x20\x01", 4);
  /* 14 are: a run of 14 small (0x200e), then a run of 1 lost */
  in[13].received = 1;
  in[14].received = 0;
  n = sfu_rtcp_write_twcc(buf, sizeof(buf), &t, in, 15);
  assert_memory_equal(buf + 20, "\x20\x0e\x00\x01", 4);

  /* bad input */
  in[0].delta = 32768;
  assert_int_equal(sfu_rtcp_write_twcc(buf, sizeof(buf), &t, in, 1),
                   SFU_EINVAL);
  in[0].delta = -32769;
  assert_int_equal(sfu_rtcp_write_twcc(buf, sizeof(buf), &t, in, 1),
                   SFU_EINVAL);
  in[0].received = 0; /* a lost packet's delta is not looked at */
  assert_int_equal(sfu_rtcp_write_twcc(buf, sizeof(buf), &t, in, 1), 24);
  assert_int_equal(sfu_rtcp_write_twcc(buf, sizeof(buf), &t, in, 0),
                   SFU_EINVAL);
  assert_int_equal(sfu_rtcp_write_twcc(buf, sizeof(buf), &t, NULL, 1),
                   SFU_EINVAL);
  assert_int_equal(sfu_rtcp_write_twcc(buf, sizeof(buf), &t, in, 65536),
                   SFU_EINVAL);
}

/* xorshift32: deterministic pseudo-random test input */
static uint32_t rnd(uint32_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 17;
  *s ^= *s << 5;
  return *s;
}

static void test_twcc_roundtrip(void **state) {
  sfu_rtcp_twcc_pkt_t *in = calloc(65535, sizeof(*in));
  sfu_rtcp_twcc_pkt_t *got = calloc(65535, sizeof(*got));
  uint8_t *buf = malloc(300000);
  sfu_rtcp_twcc_t t = {1, 2, 0, 0, 0, 0}, t2;
  uint32_t s = 0x12345678u, r;
  int iter, n, w, i, mode;

  assert_non_null(in);
  assert_non_null(got);
  assert_non_null(buf);
  for (iter = 0; iter < 400; iter++) {
    n = 1 + (int)(rnd(&s) % (iter < 390 ? 300 : 65535));
    mode = (int)(rnd(&s) % 4); /* mostly lost / small / mixed / bursty */
    t.base_seq = (uint16_t)rnd(&s);
    t.ref_time = (int32_t)(rnd(&s) & 0xffffff) - 0x800000;
    t.fb_count = (uint8_t)rnd(&s);
    for (i = 0; i < n; i++) {
      r = rnd(&s);
      if (mode == 0)
        in[i].received = r % 8 == 0;
      else if (mode == 1)
        in[i].received = r % 8 != 0;
      else if (mode == 2)
        in[i].received = r % 2 == 0;
      else
        in[i].received = (i / 20) % 2 == 0;
      if (mode == 2 && r % 16 == 1)
        in[i].delta = (int32_t)(r >> 16) - 32768;
      else
        in[i].delta = (int32_t)(r >> 8) % 256;
    }
    w = sfu_rtcp_write_twcc(buf, 300000, &t, in, n);
    assert_true(w > 0 && w % 4 == 0);
    assert_int_equal(twcc_all(buf, (size_t)w, &t2, got, n), n);
    assert_int_equal(t2.base_seq, t.base_seq);
    assert_int_equal(t2.ref_time, t.ref_time);
    assert_int_equal(t2.fb_count, t.fb_count);
    for (i = 0; i < n; i++) {
      assert_int_equal(got[i].seq, (uint16_t)(t.base_seq + i));
      assert_int_equal(got[i].received, in[i].received);
      if (in[i].received)
        assert_int_equal(got[i].delta, in[i].delta);
    }
  }
  free(in);
  free(got);
  free(buf);
}

static void test_twcc_malformed(void **state) {
  sfu_rtcp_twcc_iter_t it;
  sfu_rtcp_twcc_pkt_t p;
  sfu_rtcp_twcc_t t;
  sfu_rtcp_hdr_t h;
  uint8_t buf[64];
  size_t n = unhex(CHROME_TWCC, buf, sizeof(buf));

  /* zero-length runs before the real chunk are skipped */
  memcpy(buf, "\x8f\xcd\x00\x06\x00\x00\x00\x01\x00\x00\x00\x02"
              "\x00\x05\x00\x02\x00\x00\x00\x00"
              "\x00\x00\x60\x00\x20\x02\x11\x22",
         28);
  h = one(buf, 28);
  assert_int_equal(sfu_rtcp_twcc_iter_init(&it, &h, &t), 0);
  assert_int_equal(sfu_rtcp_twcc_next(&it, &p), 1);
  assert_int_equal(p.seq, 5);
  assert_int_equal(p.status, SFU_TWCC_SMALL_DELTA);
  assert_int_equal(p.delta, 0x11);
  assert_int_equal(sfu_rtcp_twcc_next(&it, &p), 1);
  assert_int_equal(p.delta, 0x22);
  assert_int_equal(sfu_rtcp_twcc_next(&it, &p), 0);
  /* a run of the reserved symbol: rejected unless it covers nothing */
  buf[23] = 0x01; /* the 0x6000 above was symbol 3 of length 0 */
  assert_int_equal(sfu_rtcp_twcc_iter_init(&it, &h, &t), SFU_EPROTO);
  /* a 1-bit vector has no reserved symbol; 14 statuses of 0 */
  memcpy(buf + 12, "\x00\x05\x00\x0e", 4);
  memcpy(buf + 20, "\x80\x00", 2);
  assert_int_equal(sfu_rtcp_twcc_iter_init(&it, &h, &t), 0);
  /* status count 0: nothing to read */
  memcpy(buf + 12, "\x00\x05\x00\x00", 4);
  assert_int_equal(sfu_rtcp_twcc_iter_init(&it, &h, &t), 0);
  assert_int_equal(sfu_rtcp_twcc_next(&it, &p), 0);
  /* header cut: 16 bytes */
  buf[3] = 3;
  h = one(buf, 16);
  assert_int_equal(sfu_rtcp_twcc_iter_init(&it, &h, &t), SFU_EPROTO);
  /* chunks run out before the status count */
  n = unhex(CHROME_TWCC, buf, sizeof(buf));
  buf[15] = 10;
  h = one(buf, n);
  assert_int_equal(sfu_rtcp_twcc_iter_init(&it, &h, &t), SFU_EPROTO);
  /* the last delta lies in the padding */
  buf[15] = 9;
  buf[31] = 2;
  h = one(buf, n);
  assert_int_equal(sfu_rtcp_twcc_iter_init(&it, &h, &t), SFU_EPROTO);
  /* not TWCC */
  n = unhex(AIORTC_NACK_FAR, buf, sizeof(buf));
  h = one(buf, n);
  assert_int_equal(sfu_rtcp_twcc_iter_init(&it, &h, &t), SFU_EINVAL);
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
      AIORTC_COMPOUND,
      AIORTC_NACK_RUN40,
      AIORTC_FIR2,
      AIORTC_REMB_HUGE,
      CHROME_TWCC,
      PION_TWCC_EX6,
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
      sfu_rtcp_twcc_iter_t ti;
      sfu_rtcp_twcc_pkt_t tp;
      uint32_t media, sender, ss[8];
      uint16_t seqs[64];
      int32_t d[64];
      uint64_t bps;
      char cname[64];
      int fmt, rv, total, pkts = 0;

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
        sfu_rtcp_fb_kind(&h);
        sfu_rtcp_parse_nack_total(&h, &media, seqs, 64, &total);
        sfu_rtcp_parse_pli(&h, &sender, &media);
        if (sfu_rtcp_twcc_iter_init(&ti, &h, &t) == 0)
          while (sfu_rtcp_twcc_next(&ti, &tp) == 1)
            ;
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
      cmocka_unit_test(test_twcc),          cmocka_unit_test(test_fb_kind),
      cmocka_unit_test(test_nack_aiortc),   cmocka_unit_test(test_nack_fit),
      cmocka_unit_test(test_pli_parse),     cmocka_unit_test(test_fir_n),
      cmocka_unit_test(test_remb_aiortc),   cmocka_unit_test(test_twcc_real),
      cmocka_unit_test(test_twcc_write),    cmocka_unit_test(test_twcc_roundtrip),
      cmocka_unit_test(test_twcc_malformed), cmocka_unit_test(test_compound),
      cmocka_unit_test(test_padding),       cmocka_unit_test(test_truncation_sweep),
      cmocka_unit_test(test_ntp),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
