/*
 * test_capture.c -- pcap/pcapng reading, frame parsing, the pcap writer
 * and RTP stream discovery (sfu/media/capture.c).
 *
 * Real captures: the .pcap files in tests/data/pcaps
 * (licences in that README). The expected values below were read off the
 * files with an independent Python pcap/pcapng reader (struct-based, not
 * libpcap) and agree with the README: one RTP stream per file, its SSRC,
 * PT and packet count, the h264 capture's 3 missing sequence numbers and
 * the vp9 one's 279 (dropped layers), str0m's synthetic capture times.
 * The two gst-* files are pcapng (nanosecond interface) despite their
 * name. Packets cut out of them in tests/data/rtp must come back byte for
 * byte.
 *
 * Bad and unusual captures are not committed: each test builds its file
 * byte by byte (pcap and pcapng writers below) in a temporary directory
 * that the group teardown removes, so what is being tested is visible
 * here. Frames are also fed to sfu_cap_parse_frame() directly, cut at
 * every length from a heap copy of exactly that size, so ASan sees any
 * read past the end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <pcap/pcap.h>

#include "sfu/base/sfu.h"
#include "sfu/media/capture.h"

/* ---- paths ------------------------------------------------------------ */

static char tmpdir[256];

/* tests/data/<sub>/<name>; the directory is found from __FILE__. */
static const char *data_path(const char *sub, const char *name) {
  static char path[1024];
  const char *slash = strrchr(__FILE__, '/');
  int dirlen = slash ? (int)(slash - __FILE__) : 1;

  snprintf(path, sizeof(path), "%.*s/data/%s/%s", dirlen,
           slash ? __FILE__ : ".", sub, name);
  return path;
}

static const char *tmp_path(const char *name) {
  static char path[512];

  snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
  return path;
}

static size_t load(const char *path, uint8_t *buf, size_t cap) {
  FILE *f = fopen(path, "rb");
  size_t n;

  if (f == NULL)
    fail_msg("cannot open %s", path);
  n = fread(buf, 1, cap, f);
  fclose(f);
  assert_true(n > 0 && n < cap);
  return n;
}

static int setup_dir(void **state) {
  snprintf(tmpdir, sizeof(tmpdir), "/tmp/sfu_test_capture.XXXXXX");
  return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int teardown_dir(void **state) {
  char cmd[300];

  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
  return system(cmd) == 0 ? 0 : -1;
}

/* ---- building frames and files ---------------------------------------- */

typedef struct {
  uint8_t b[1 << 17];
  size_t n;
} buf_t;

static buf_t fbuf;  /* the file being built */
static buf_t frbuf; /* the frame being built */

static void put(buf_t *b, const void *p, size_t n) {
  if (n == 0)
    return;
  assert_true(b->n + n <= sizeof(b->b));
  memcpy(b->b + b->n, p, n);
  b->n += n;
}
static void put8(buf_t *b, unsigned v) {
  uint8_t x = (uint8_t)v;
  put(b, &x, 1);
}
static void put16(buf_t *b, unsigned v) { /* big-endian: wire order */
  put8(b, v >> 8);
  put8(b, v);
}
static void put32(buf_t *b, uint32_t v) {
  put16(b, v >> 16);
  put16(b, v & 0xffff);
}
static void put16le(buf_t *b, unsigned v) {
  put8(b, v);
  put8(b, v >> 8);
}
static void put32le(buf_t *b, uint32_t v) {
  put16le(b, v & 0xffff);
  put16le(b, v >> 16);
}

static const uint8_t IP_A[4] = {10, 0, 0, 1}, IP_B[4] = {10, 0, 0, 2};
static const uint8_t IP6_A[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 1};
static const uint8_t IP6_B[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 2};

/* A minimal RTP packet: PT 111, seq, ts, ssrc, 4 payload bytes. */
static size_t rtp(uint8_t *out, uint8_t b1, uint16_t seq, uint32_t ts,
                  uint32_t ssrc) {
  buf_t *b = malloc(sizeof(*b));
  size_t n;

  b->n = 0;
  put8(b, 0x80);
  put8(b, b1);
  put16(b, seq);
  put32(b, ts);
  put32(b, ssrc);
  put32(b, 0xdeadbeef);
  n = b->n;
  memcpy(out, b->b, n);
  free(b);
  return n;
}

static void eth(buf_t *b, unsigned ethertype) {
  put(b, "\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01", 12);
  put16(b, ethertype);
}

/* IPv4 (IHL 5 + opt_words) + UDP + payload; frag = flags|offset field. */
static void ip4_udp(buf_t *b, unsigned frag, int opt_words, uint16_t sp,
                    uint16_t dp, const uint8_t *pl, size_t n) {
  int i;

  put8(b, 0x45 + opt_words);
  put8(b, 0);
  put16(b, (unsigned)(20 + 4 * opt_words + 8 + n));
  put16(b, 0x1234);
  put16(b, frag);
  put8(b, 64);
  put8(b, 17);
  put16(b, 0);
  put(b, IP_A, 4);
  put(b, IP_B, 4);
  for (i = 0; i < opt_words; i++)
    put32(b, 0x01010101); /* NOPs */
  put16(b, sp);
  put16(b, dp);
  put16(b, (unsigned)(8 + n));
  put16(b, 0);
  put(b, pl, n);
}

/* IPv6 + extension headers `ext` (already chained, first type nh) + UDP. */
static void ip6_udp(buf_t *b, uint8_t nh, const uint8_t *ext, size_t extlen,
                    uint16_t sp, uint16_t dp, const uint8_t *pl, size_t n) {
  put32(b, 0x60000000);
  put16(b, (unsigned)(extlen + 8 + n));
  put8(b, nh);
  put8(b, 64);
  put(b, IP6_A, 16);
  put(b, IP6_B, 16);
  put(b, ext, extlen);
  put16(b, sp);
  put16(b, dp);
  put16(b, (unsigned)(8 + n));
  put16(b, 0);
  put(b, pl, n);
}

static void pcapf_header(buf_t *f, uint32_t linktype) {
  f->n = 0;
  put32le(f, 0xa1b2c3d4);
  put16le(f, 2);
  put16le(f, 4);
  put32le(f, 0);
  put32le(f, 0);
  put32le(f, 65535);
  put32le(f, linktype);
}

static void pcapf_record(buf_t *f, uint32_t sec, uint32_t usec, const buf_t *fr,
                     size_t wirelen) {
  put32le(f, sec);
  put32le(f, usec);
  put32le(f, (uint32_t)fr->n);
  put32le(f, (uint32_t)wirelen);
  put(f, fr->b, fr->n);
}

/* pcapng blocks, little-endian */
static void ng_block(buf_t *f, uint32_t type, const buf_t *body) {
  size_t pad = (4 - body->n % 4) % 4;
  uint32_t len = (uint32_t)(12 + body->n + pad);

  put32le(f, type);
  put32le(f, len);
  put(f, body->b, body->n);
  put(f, "\0\0\0", pad);
  put32le(f, len);
}

static void ng_shb(buf_t *f) {
  buf_t *b = calloc(1, sizeof(*b));

  put32le(b, 0x1a2b3c4d);
  put16le(b, 1);
  put16le(b, 0);
  put32le(b, 0xffffffff); /* section length: unknown */
  put32le(b, 0xffffffff);
  ng_block(f, 0x0a0d0d0a, b);
  free(b);
}

/* Interface Description Block; tsresol < 0 leaves the default (10^-6). */
static void ng_idb(buf_t *f, unsigned linktype, uint32_t snaplen,
                   int tsresol) {
  buf_t *b = calloc(1, sizeof(*b));

  put16le(b, linktype);
  put16le(b, 0);
  put32le(b, snaplen);
  if (tsresol >= 0) {
    put16le(b, 9); /* if_tsresol */
    put16le(b, 1);
    put32le(b, (uint32_t)tsresol); /* the byte, then 3 padding bytes */
    put16le(b, 0);                 /* opt_endofopt */
    put16le(b, 0);
  }
  ng_block(f, 1, b);
  free(b);
}

/* Enhanced Packet Block */
static void ng_epb(buf_t *f, uint32_t ifid, uint64_t ts, const buf_t *fr) {
  buf_t *b = calloc(1, sizeof(*b));

  put32le(b, ifid);
  put32le(b, (uint32_t)(ts >> 32));
  put32le(b, (uint32_t)ts);
  put32le(b, (uint32_t)fr->n);
  put32le(b, (uint32_t)fr->n);
  put(b, fr->b, fr->n);
  ng_block(f, 6, b);
  free(b);
}

static const char *save(const char *name, const void *p, size_t n) {
  const char *path = tmp_path(name);
  FILE *f = fopen(path, "wb");

  assert_non_null(f);
  assert_int_equal(fwrite(p, 1, n, f), n);
  assert_int_equal(fclose(f), 0);
  return path;
}

/* The Ethernet/IPv4/UDP/RTP frame most tests use. */
static void simple_frame(buf_t *fr, uint16_t seq) {
  uint8_t pl[32];
  size_t n = rtp(pl, 111, seq, 1000u * seq, 0xabcdef01);

  fr->n = 0;
  eth(fr, 0x0800);
  ip4_udp(fr, 0x4000, 0, 5000, 6000, pl, n);
}

/* frames == udp + every skipped_* */
static void check_sum(const sfu_cap_stats_t *st) {
  assert_int_equal(st->frames, st->udp + st->skipped_not_udp +
                                   st->skipped_truncated +
                                   st->skipped_fragment +
                                   st->skipped_linktype +
                                   st->skipped_malformed);
}

/* Opens `path`, reads to the end; returns the final sfu_cap_next() code
 * and the stats through *st. */
static int read_all(const char *path, sfu_cap_stats_t *st, int *npkts) {
  sfu_cap_pkt_t p;
  sfu_cap_t *c;
  char err[512];
  int rv, n = 0;

  rv = sfu_cap_open(&c, path, err, sizeof(err));
  if (rv != 0)
    fail_msg("open %s: %d %s", path, rv, err);
  while ((rv = sfu_cap_next(c, &p)) == 1)
    n++;
  *st = *sfu_cap_stats(c);
  check_sum(st);
  sfu_cap_close(c);
  if (npkts != NULL)
    *npkts = n;
  return rv;
}

/* ---- real captures ---------------------------------------------------- */

static const struct real {
  const char *file;
  uint32_t ssrc;
  uint8_t pt;
  uint64_t packets, bytes;
  uint8_t src[4], dst[4];
  uint16_t sport, dport;
  uint64_t first_us, last_us;
  uint32_t first_ts, last_ts;
  uint16_t first_seq, max_seq;
  uint64_t gaps;
} REAL[] = {
    {"gst-opus-speech-dtx.pcap", 0x11223344, 111, 557, 38503, {127, 0, 0, 1},
     {127, 0, 0, 1}, 54853, 5004, 1795693687032090u, 1795693699745675u,
     2003194600u, 2003804848u, 3537, 4093, 0},
    {"gst-opus-tone-stereo.pcap", 0x55667788, 111, 501, 86833, {127, 0, 0, 1},
     {127, 0, 0, 1}, 47446, 5006, 1795693668441360u, 1795693678434867u,
     3936281288u, 3936760976u, 28075, 28575, 0},
    {"membrane-input_vp8.pcap", 0x62F601FF, 96, 410, 343745,
     {192, 168, 0, 248}, {192, 168, 0, 241}, 63257, 5004, 1612888545704783u,
     1612888555640532u, 2824112133u, 2825009133u, 1136, 1545, 0},
    {"str0m-vp8.pcap", 0xEEDF3944, 96, 104, 64655, {10, 2, 2, 2},
     {10, 1, 1, 1}, 62132, 5443, 1693979200908000u, 1693979204202000u,
     3190208834u, 3190504304u, 14260, 14363, 0},
    {"str0m-h264.pcap", 0x6A5CC848, 126, 298, 119395, {10, 1, 1, 1},
     {10, 2, 2, 2}, 1234, 1235, 1703167868000006u, 1703167868000624u,
     2854912226u, 2857314866u, 19249, 19549, 3},
    {"str0m-vp9.pcap", 0x22D80F08, 98, 316, 256293, {10, 1, 1, 1},
     {10, 2, 2, 2}, 1234, 1235, 1703168708000291u, 1703168708000726u,
     3665622181u, 3666450181u, 19357, 19951, 279},
    {"str0m-av1.pcap", 0xD465AC89, 45, 201, 213583, {10, 2, 2, 2},
     {10, 1, 1, 1}, 2000, 1000, 1767351663343000u, 1767351664806000u,
     4244970353u, 4245102473u, 7485, 7685, 0},
};

/* One RTP stream per file, as listed; every record is a UDP datagram. */
static void test_real_streams(void **state) {
  sfu_cap_stream_t s[8];
  sfu_cap_stats_t st;
  uint64_t non_rtp;
  char err[512];
  size_t i;
  int n;

  for (i = 0; i < SFU_ARRAY_SIZE(REAL); i++) {
    const struct real *r = &REAL[i];
    const char *path = data_path("pcaps", r->file);

    n = sfu_cap_scan(path, s, 8, &non_rtp, err, sizeof(err));
    if (n != 1)
      fail_msg("%s: %d streams (%s)", r->file, n, err);
    assert_int_equal(non_rtp, 0);
    assert_int_equal(s[0].ssrc, r->ssrc);
    assert_int_equal(s[0].pt, r->pt);
    assert_int_equal(s[0].packets, r->packets);
    assert_int_equal(s[0].bytes, r->bytes);
    assert_int_equal(s[0].family, AF_INET);
    assert_memory_equal(s[0].src, r->src, 4);
    assert_memory_equal(s[0].dst, r->dst, 4);
    assert_int_equal(s[0].sport, r->sport);
    assert_int_equal(s[0].dport, r->dport);
    assert_int_equal(s[0].first_us, r->first_us);
    assert_int_equal(s[0].last_us, r->last_us);
    assert_int_equal(s[0].first_ts, r->first_ts);
    assert_int_equal(s[0].last_ts, r->last_ts);
    assert_int_equal(s[0].first_seq, r->first_seq);
    assert_int_equal(s[0].max_seq, r->max_seq);
    assert_int_equal(s[0].seq_gaps, r->gaps);
    assert_int_equal(s[0].late, 0);
    assert_int_equal(s[0].pt_changes, 0);
    /* received + missing == the span of sequence numbers */
    assert_int_equal(s[0].packets + s[0].seq_gaps,
                     (uint16_t)(r->max_seq - r->first_seq) + 1u);

    assert_int_equal(read_all(path, &st, NULL), 0);
    assert_int_equal(st.frames, r->packets);
    assert_int_equal(st.udp, r->packets);
  }
}

/* What the README says about durations and timing. */
static void test_real_timing(void **state) {
  sfu_cap_stream_t s[2];
  char err[512];

  /* gst: real capture times; 12.7 s and 10 s */
  assert_int_equal(sfu_cap_scan(data_path("pcaps", REAL[0].file), s, 2, NULL,
                                err, sizeof(err)),
                   1);
  assert_in_range(s[0].last_us - s[0].first_us, 12700000, 12750000);
  assert_int_equal(sfu_cap_scan(data_path("pcaps", REAL[1].file), s, 2, NULL,
                                err, sizeof(err)),
                   1);
  assert_in_range(s[0].last_us - s[0].first_us, 9990000, 10000000);
  /* membrane 9.9 s, str0m vp8 3.3 s */
  assert_int_equal(sfu_cap_scan(data_path("pcaps", REAL[2].file), s, 2, NULL,
                                err, sizeof(err)),
                   1);
  assert_in_range(s[0].last_us - s[0].first_us, 9900000, 9950000);
  assert_int_equal(sfu_cap_scan(data_path("pcaps", REAL[3].file), s, 2, NULL,
                                err, sizeof(err)),
                   1);
  assert_in_range(s[0].last_us - s[0].first_us, 3290000, 3300000);
  /* h264: synthetic capture times (under a millisecond for the whole
   * file) while the 90 kHz RTP timestamps span 26.7 s */
  assert_int_equal(sfu_cap_scan(data_path("pcaps", REAL[4].file), s, 2, NULL,
                                err, sizeof(err)),
                   1);
  assert_true(s[0].last_us - s[0].first_us < 1000);
  assert_in_range((s[0].last_ts - s[0].first_ts) / 9000u, 266, 267);
  /* vp9: synthetic too */
  assert_int_equal(sfu_cap_scan(data_path("pcaps", REAL[5].file), s, 2, NULL,
                                err, sizeof(err)),
                   1);
  assert_true(s[0].last_us - s[0].first_us < 1000);
}

/* DTX: silences show as jumps of capture time and RTP timestamp (4 of
 * them, up to 420 ms) with no sequence gap. */
static void test_real_dtx(void **state) {
  sfu_cap_pkt_t p;
  sfu_cap_t *c;
  char err[512];
  uint64_t prev_us = 0, max_gap = 0;
  uint32_t prev_ts = 0;
  int n = 0, jumps = 0;

  assert_int_equal(
      sfu_cap_open(&c, data_path("pcaps", REAL[0].file), err, sizeof(err)), 0);
  while (sfu_cap_next(c, &p) == 1) {
    uint32_t ts = (uint32_t)p.data[4] << 24 | (uint32_t)p.data[5] << 16 |
                  (uint32_t)p.data[6] << 8 | p.data[7];
    if (n > 0) {
      if (ts - prev_ts > 960)
        jumps++;
      if (p.ts_us - prev_us > max_gap)
        max_gap = p.ts_us - prev_us;
    }
    prev_ts = ts;
    prev_us = p.ts_us;
    n++;
  }
  sfu_cap_close(c);
  assert_int_equal(n, 557);
  assert_int_equal(jumps, 4);
  assert_int_equal(max_gap, 420049);
}

/* The packets of tests/data/rtp were cut out of these captures. */
static void test_real_match_rtp_fixtures(void **state) {
  static const struct {
    const char *bin, *pcap;
    int index;
    uint64_t ts_us;
  } m[] = {
      {"opus_tone_stereo.bin", "gst-opus-tone-stereo.pcap", 0,
       1795693668441360u},
      {"opus_speech_100.bin", "gst-opus-speech-dtx.pcap", 285,
       1795693692725587u},
      {"vp8_membrane.bin", "membrane-input_vp8.pcap", 0, 1612888545704783u},
      {"vp8_str0m_ext.bin", "str0m-vp8.pcap", 0, 1693979200908000u},
      {"h264_str0m.bin", "str0m-h264.pcap", 1, 1703167868000018u},
      {"vp9_str0m.bin", "str0m-vp9.pcap", 0, 1703168708000291u},
      {"av1_str0m_dd.bin", "str0m-av1.pcap", 1, 1767351663354000u},
  };
  static uint8_t want[4096];
  sfu_cap_pkt_t p;
  sfu_cap_t *c;
  char err[512];
  size_t i, n;
  int k;

  for (i = 0; i < SFU_ARRAY_SIZE(m); i++) {
    n = load(data_path("rtp", m[i].bin), want, sizeof(want));
    assert_int_equal(
        sfu_cap_open(&c, data_path("pcaps", m[i].pcap), err, sizeof(err)), 0);
    assert_int_equal(sfu_cap_linktype(c), DLT_EN10MB);
    for (k = 0; k <= m[i].index; k++)
      assert_int_equal(sfu_cap_next(c, &p), 1);
    assert_int_equal(p.frame, (uint64_t)m[i].index + 1);
    assert_int_equal(p.ts_us, m[i].ts_us);
    assert_int_equal(p.len, n);
    assert_memory_equal(p.data, want, n);
    assert_int_equal(sfu_cap_is_rtp(p.data, p.len), 1);
    sfu_cap_close(c);
  }
}

/* sfu_cap_open_fp over bytes in memory, as the fuzz target does. */
static void test_open_fp_memory(void **state) {
  static uint8_t file[400000];
  size_t n = load(data_path("pcaps", "str0m-vp8.pcap"), file, sizeof(file));
  sfu_cap_pkt_t p;
  sfu_cap_t *c;
  char err[512];
  FILE *fp = fmemopen(file, n, "rb");
  int k = 0;

  assert_non_null(fp);
  assert_int_equal(sfu_cap_open_fp(&c, fp, "mem", err, sizeof(err)), 0);
  while (sfu_cap_next(c, &p) == 1)
    k++;
  assert_int_equal(k, 104);
  sfu_cap_close(c);

  /* the reader owns fp on failure too: nothing to close here (ASan's leak
   * check would notice) */
  fp = fmemopen(file + 1, n - 1, "rb");
  assert_int_equal(sfu_cap_open_fp(&c, fp, "mem", err, sizeof(err)),
                   SFU_EPROTO);
  assert_null(c);
  assert_string_equal(err, "mem: not a pcap or pcapng file");
}

/* ---- bad captures ----------------------------------------------------- */

static void expect_open_error(const char *path, int code, const char *msg) {
  sfu_cap_t *c = (sfu_cap_t *)1;
  sfu_cap_stream_t s[2];
  char err[512], want[600];

  snprintf(want, sizeof(want), "%s: %s", path, msg);
  assert_int_equal(sfu_cap_open(&c, path, err, sizeof(err)), code);
  assert_null(c);
  assert_string_equal(err, want);
  err[0] = '\0';
  assert_int_equal(sfu_cap_scan(path, s, 2, NULL, err, sizeof(err)), code);
  assert_string_equal(err, want);
}

static void test_bad_not_a_capture(void **state) {
  uint8_t junk[4096];
  uint32_t x = 12345;
  size_t i;

  for (i = 0; i < sizeof(junk); i++) {
    x = x * 1103515245u + 12345u;
    junk[i] = (uint8_t)(x >> 16);
  }
  junk[0] = 0x42; /* never a magic number */
  expect_open_error(save("random.bin", junk, sizeof(junk)), SFU_EPROTO,
                    "not a pcap or pcapng file");
  expect_open_error(save("zero.pcap", junk, 0), SFU_EPROTO,
                    "empty file, not a pcap or pcapng file");
  expect_open_error(save("three.pcap", "abc", 3), SFU_EPROTO,
                    "not a pcap or pcapng file (3 bytes)");
  /* a pcap file header cut short */
  pcapf_header(&fbuf, 1);
  expect_open_error(save("shorthdr.pcap", fbuf.b, 10), SFU_EPROTO,
                    "file cut short inside its pcap/pcapng header");
  expect_open_error(tmp_path("does-not-exist.pcap"), SFU_ENOENT,
                    "No such file or directory");
  expect_open_error(tmpdir, -EISDIR, "is a directory, not a capture file");
  /* a link type this reader does not parse */
  pcapf_header(&fbuf, 105);
  simple_frame(&frbuf, 1);
  pcapf_record(&fbuf, 1, 0, &frbuf, frbuf.n);
  expect_open_error(save("wifi.pcap", fbuf.b, fbuf.n), SFU_EPROTO,
                    "link type 105 (IEEE802_11) is not supported; this reader "
                    "takes Ethernet, Linux cooked (SLL, SLL2), raw IP and BSD "
                    "loopback captures");
}

static void test_bad_empty(void **state) {
  pcapf_header(&fbuf, 1);
  expect_open_error(save("empty.pcap", fbuf.b, fbuf.n), SFU_ENOENT,
                    "empty capture (no packets)");
  fbuf.n = 0;
  ng_shb(&fbuf);
  ng_idb(&fbuf, 1, 262144, -1);
  expect_open_error(save("empty.pcapng", fbuf.b, fbuf.n), SFU_ENOENT,
                    "empty capture (no packets)");
  fbuf.n = 0;
  ng_shb(&fbuf);
  expect_open_error(save("noif.pcapng", fbuf.b, fbuf.n), SFU_ENOENT,
                    "empty capture (no interfaces, no packets)");
}

/* Cut in the middle of the third record: two packets, then an error that
 * sticks. */
static void test_bad_truncated(void **state) {
  const char *path;
  sfu_cap_stream_t s[2];
  sfu_cap_pkt_t p;
  sfu_cap_t *c;
  char err[512], want[600];
  int i;

  pcapf_header(&fbuf, 1);
  for (i = 0; i < 3; i++) {
    simple_frame(&frbuf, (uint16_t)(i + 1));
    pcapf_record(&fbuf, 100, (uint32_t)i, &frbuf, frbuf.n);
  }
  path = save("cut.pcap", fbuf.b, fbuf.n - 7);
  snprintf(want, sizeof(want),
           "%s: file ends in the middle of record 3 (cut short?)", path);
  assert_int_equal(sfu_cap_open(&c, path, err, sizeof(err)), 0);
  assert_string_equal(sfu_cap_error(c), "");
  assert_int_equal(sfu_cap_next(c, &p), 1);
  assert_int_equal(sfu_cap_next(c, &p), 1);
  assert_int_equal(p.ts_us, 100000001u);
  assert_int_equal(sfu_cap_next(c, &p), SFU_EPROTO);
  assert_string_equal(sfu_cap_error(c), want);
  assert_int_equal(sfu_cap_next(c, &p), SFU_EPROTO);
  assert_int_equal(sfu_cap_stats(c)->frames, 2);
  sfu_cap_close(c);
  assert_int_equal(sfu_cap_scan(path, s, 2, NULL, err, sizeof(err)),
                   SFU_EPROTO);
  assert_string_equal(err, want);

  /* cut inside a record header */
  path = save("cut2.pcap", fbuf.b, fbuf.n - frbuf.n - 8);
  snprintf(want, sizeof(want),
           "%s: file ends in the middle of record 3 (cut short?)", path);
  assert_int_equal(sfu_cap_scan(path, s, 2, NULL, err, sizeof(err)),
                   SFU_EPROTO);
  assert_string_equal(err, want);
}

/* UDP that is not RTP: a DNS query, STUN, RTCP, DTLS. All read, none a
 * stream. */
static void test_bad_not_rtp(void **state) {
  static const uint8_t dns[] = {
      0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
      7,    'e',  'x',  'a',  'm',  'p',  'l',  'e',  3,    'c',  'o',  'm',
      0,    0x00, 0x01, 0x00, 0x01};
  static const uint8_t stun[20] = {0x00, 0x01, 0x00, 0x00, 0x21, 0x12,
                                   0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9,
                                   10, 11, 12};
  static const uint8_t rtcp_rr[8] = {0x80, 201, 0x00, 0x01, 1, 2, 3, 4};
  static const uint8_t dtls[16] = {0x16, 0xfe, 0xfd, 0, 0, 0, 0, 0,
                                   0,    0,    0,    0, 0, 0, 0, 3};
  const struct {
    const uint8_t *p;
    size_t n;
  } pl[] = {{dns, sizeof(dns)},
            {stun, sizeof(stun)},
            {rtcp_rr, sizeof(rtcp_rr)},
            {dtls, sizeof(dtls)}};
  sfu_cap_stream_t s[2];
  sfu_cap_stats_t st;
  uint64_t non_rtp;
  char err[512];
  const char *path;
  size_t i;

  pcapf_header(&fbuf, 1);
  for (i = 0; i < SFU_ARRAY_SIZE(pl); i++) {
    frbuf.n = 0;
    eth(&frbuf, 0x0800);
    ip4_udp(&frbuf, 0, 0, 40000, 53, pl[i].p, pl[i].n);
    pcapf_record(&fbuf, 1, (uint32_t)i, &frbuf, frbuf.n);
  }
  path = save("dns.pcap", fbuf.b, fbuf.n);
  assert_int_equal(sfu_cap_scan(path, s, 2, &non_rtp, err, sizeof(err)), 0);
  assert_int_equal(non_rtp, 4);
  assert_int_equal(read_all(path, &st, NULL), 0);
  assert_int_equal(st.udp, 4);
}

/* pcapng, two Ethernet interfaces with different time resolutions: one
 * stream of records, times converted per interface. */
static void test_pcapng_two_interfaces(void **state) {
  sfu_cap_pkt_t p;
  sfu_cap_t *c;
  char err[512];
  const char *path;

  fbuf.n = 0;
  ng_shb(&fbuf);
  ng_idb(&fbuf, 1, 262144, -1); /* microseconds */
  ng_idb(&fbuf, 1, 262144, 9);  /* nanoseconds */
  simple_frame(&frbuf, 7);
  ng_epb(&fbuf, 0, 1700000000123456u, &frbuf);
  simple_frame(&frbuf, 8);
  ng_epb(&fbuf, 1, 1700000000123457891u, &frbuf);
  simple_frame(&frbuf, 9);
  ng_epb(&fbuf, 0, 1700000000123458u, &frbuf);
  path = save("two.pcapng", fbuf.b, fbuf.n);

  assert_int_equal(sfu_cap_open(&c, path, err, sizeof(err)), 0);
  assert_int_equal(sfu_cap_next(c, &p), 1);
  assert_int_equal(p.ts_us, 1700000000123456u);
  assert_int_equal(p.data[3], 7);
  assert_int_equal(sfu_cap_next(c, &p), 1);
  assert_int_equal(p.ts_us, 1700000000123457u);
  assert_int_equal(p.data[3], 8);
  assert_int_equal(sfu_cap_next(c, &p), 1);
  assert_int_equal(p.ts_us, 1700000000123458u);
  assert_int_equal(p.sport, 5000);
  assert_int_equal(p.dport, 6000);
  assert_int_equal(sfu_cap_next(c, &p), 0);
  assert_int_equal(sfu_cap_next(c, &p), 0);
  assert_int_equal(sfu_cap_stats(c)->udp, 3);
  sfu_cap_close(c);
}

/* Interfaces of different link types: a clear error, at open when the
 * second interface comes first, else at the read that meets it. */
static void test_pcapng_mixed_linktypes(void **state) {
  sfu_cap_pkt_t p;
  sfu_cap_t *c;
  char err[512], want[600];
  const char *path;

  fbuf.n = 0;
  ng_shb(&fbuf);
  ng_idb(&fbuf, 1, 262144, -1);
  ng_idb(&fbuf, 113, 262144, -1);
  simple_frame(&frbuf, 1);
  ng_epb(&fbuf, 0, 1, &frbuf);
  expect_open_error(save("mixed.pcapng", fbuf.b, fbuf.n), SFU_EPROTO,
                    "interfaces with different link types (1 and 113) are "
                    "not supported");

  fbuf.n = 0;
  ng_shb(&fbuf);
  ng_idb(&fbuf, 1, 262144, -1);
  ng_epb(&fbuf, 0, 1, &frbuf);
  ng_idb(&fbuf, 101, 262144, -1);
  path = save("mixed-late.pcapng", fbuf.b, fbuf.n);
  assert_int_equal(sfu_cap_open(&c, path, err, sizeof(err)), 0);
  assert_int_equal(sfu_cap_next(c, &p), 1);
  assert_int_equal(sfu_cap_next(c, &p), SFU_EPROTO);
  snprintf(want, sizeof(want),
           "%s: interfaces with different link types (1 and 101) are not "
           "supported",
           path);
  assert_string_equal(sfu_cap_error(c), want);
  sfu_cap_close(c);

  /* same link type, different snap lengths: libpcap 1.10 refuses those */
  fbuf.n = 0;
  ng_shb(&fbuf);
  ng_idb(&fbuf, 1, 262144, -1);
  ng_idb(&fbuf, 1, 65535, -1);
  ng_epb(&fbuf, 0, 1, &frbuf);
  expect_open_error(save("snaplen.pcapng", fbuf.b, fbuf.n), SFU_EPROTO,
                    "interfaces with different snapshot lengths (262144 and "
                    "65535) are not supported (libpcap refuses them)");
}

/* One capture of the unusual frames, through the whole reader. */
static void test_bad_mixed_frames(void **state) {
  static const uint8_t ext6[] = {
      60, 0, 1, 4, 0, 0, 0, 0, /* hop-by-hop, PadN; next: dest options */
      17, 0, 1, 4, 0, 0, 0, 0, /* dest options, PadN; next: UDP */
  };
  static const uint8_t frag6[] = {17, 0, 0x00, 0x01, 0, 0, 0, 9}; /* M=1 */
  static const uint8_t atomic6[] = {17, 0, 0x00, 0x00, 0, 0, 0, 9};
  uint8_t pl[32];
  size_t n = rtp(pl, 96, 1, 0, 0x01020304);
  sfu_cap_stats_t st;
  sfu_cap_pkt_t p;
  sfu_cap_t *c;
  char err[512];
  const char *path;
  int npk;

  pcapf_header(&fbuf, 1);
  /* 1: IPv6 with hop-by-hop and destination options: UDP */
  frbuf.n = 0;
  eth(&frbuf, 0x86dd);
  ip6_udp(&frbuf, 0, ext6, sizeof(ext6), 7000, 7001, pl, n);
  pcapf_record(&fbuf, 1, 0, &frbuf, frbuf.n);
  /* 2: VLAN-tagged IPv4: UDP */
  frbuf.n = 0;
  eth(&frbuf, 0x8100);
  put16(&frbuf, 0x0064);
  put16(&frbuf, 0x0800);
  ip4_udp(&frbuf, 0, 0, 8000, 8001, pl, n);
  pcapf_record(&fbuf, 1, 1, &frbuf, frbuf.n);
  /* 3: IPv4 first fragment (MF) */
  frbuf.n = 0;
  eth(&frbuf, 0x0800);
  ip4_udp(&frbuf, 0x2000, 0, 8000, 8001, pl, n);
  pcapf_record(&fbuf, 1, 2, &frbuf, frbuf.n);
  /* 4: IPv4 later fragment (offset 185) */
  frbuf.n = 0;
  eth(&frbuf, 0x0800);
  ip4_udp(&frbuf, 185, 0, 8000, 8001, pl, n);
  pcapf_record(&fbuf, 1, 3, &frbuf, frbuf.n);
  /* 5: IPv6 fragment */
  frbuf.n = 0;
  eth(&frbuf, 0x86dd);
  ip6_udp(&frbuf, 44, frag6, sizeof(frag6), 7000, 7001, pl, n);
  pcapf_record(&fbuf, 1, 4, &frbuf, frbuf.n);
  /* 6: ARP */
  frbuf.n = 0;
  eth(&frbuf, 0x0806);
  put(&frbuf, "\x00\x01\x08\x00\x06\x04\x00\x01", 8);
  put(&frbuf, fbuf.b, 20);
  pcapf_record(&fbuf, 1, 5, &frbuf, frbuf.n);
  /* 7: cut by a 60-byte snap length */
  frbuf.n = 0;
  eth(&frbuf, 0x0800);
  ip4_udp(&frbuf, 0, 0, 8000, 8001, pl, n);
  frbuf.n = 40;
  pcapf_record(&fbuf, 1, 6, &frbuf, 58);
  /* 8: UDP length past the IP packet */
  frbuf.n = 0;
  eth(&frbuf, 0x0800);
  ip4_udp(&frbuf, 0, 0, 8000, 8001, pl, n);
  frbuf.b[14 + 20 + 5] += 1;
  pcapf_record(&fbuf, 1, 7, &frbuf, frbuf.n);
  /* 9: IPv6 atomic fragment (offset 0, M 0): a whole datagram */
  frbuf.n = 0;
  eth(&frbuf, 0x86dd);
  ip6_udp(&frbuf, 44, atomic6, sizeof(atomic6), 7002, 7003, pl, n);
  pcapf_record(&fbuf, 1, 8, &frbuf, frbuf.n);
  /* 10: QinQ, two tags, IPv6 */
  frbuf.n = 0;
  eth(&frbuf, 0x88a8);
  put16(&frbuf, 0x0005);
  put16(&frbuf, 0x8100);
  put16(&frbuf, 0x0006);
  put16(&frbuf, 0x86dd);
  ip6_udp(&frbuf, 17, NULL, 0, 7004, 7005, pl, n);
  pcapf_record(&fbuf, 1, 9, &frbuf, frbuf.n);
  path = save("mixed.pcap", fbuf.b, fbuf.n);

  assert_int_equal(read_all(path, &st, &npk), 0);
  assert_int_equal(npk, 4);
  assert_int_equal(st.frames, 10);
  assert_int_equal(st.udp, 4);
  assert_int_equal(st.skipped_fragment, 3);
  assert_int_equal(st.skipped_not_udp, 1);
  assert_int_equal(st.skipped_truncated, 1);
  assert_int_equal(st.skipped_malformed, 1);
  assert_int_equal(st.skipped_linktype, 0);

  assert_int_equal(sfu_cap_open(&c, path, err, sizeof(err)), 0);
  assert_int_equal(sfu_cap_next(c, &p), 1);
  assert_int_equal(p.frame, 1);
  assert_int_equal(p.family, AF_INET6);
  assert_memory_equal(p.src, IP6_A, 16);
  assert_memory_equal(p.dst, IP6_B, 16);
  assert_int_equal(p.sport, 7000);
  assert_int_equal(p.dport, 7001);
  assert_int_equal(p.len, n);
  assert_memory_equal(p.data, pl, n);
  assert_int_equal(p.ts_us, 1000000);
  assert_int_equal(sfu_cap_next(c, &p), 1);
  assert_int_equal(p.frame, 2);
  assert_int_equal(p.family, AF_INET);
  assert_memory_equal(p.src, IP_A, 4);
  assert_memory_equal(p.dst, IP_B, 4);
  assert_memory_equal(p.src + 4, "\0\0\0\0\0\0\0\0\0\0\0\0", 12);
  assert_int_equal(p.sport, 8000);
  assert_memory_equal(p.data, pl, n);
  assert_int_equal(sfu_cap_next(c, &p), 1);
  assert_int_equal(p.frame, 9);
  assert_int_equal(p.sport, 7002);
  assert_int_equal(sfu_cap_next(c, &p), 1);
  assert_int_equal(p.frame, 10);
  assert_int_equal(p.family, AF_INET6);
  assert_int_equal(p.sport, 7004);
  assert_int_equal(sfu_cap_next(c, &p), 0);
  sfu_cap_close(c);
}

/* ---- sfu_cap_parse_frame ---------------------------------------------- */

/* Parses `fr` as a whole, then cut at every shorter length (by the snap
 * length: truncated; as a whole frame: malformed), each time from a heap
 * copy of exactly that many bytes. Returns the whole frame's verdict. */
static int parse_cuts(int linktype, const buf_t *fr, sfu_cap_pkt_t *out) {
  sfu_cap_stats_t st;
  sfu_cap_pkt_t p;
  uint8_t *copy;
  size_t k;
  int rv;

  for (k = 0; k < fr->n; k++) {
    copy = malloc(k ? k : 1);
    memcpy(copy, fr->b, k);
    memset(&st, 0, sizeof(st));
    assert_int_equal(sfu_cap_parse_frame(linktype, copy, k, fr->n, &p, &st),
                     0);
    assert_int_equal(st.skipped_truncated, 1);
    assert_int_equal(sfu_cap_parse_frame(linktype, copy, k, k, &p, &st), 0);
    assert_int_equal(st.skipped_malformed, 1);
    assert_int_equal(st.frames, 2);
    free(copy);
  }
  copy = malloc(fr->n);
  memcpy(copy, fr->b, fr->n);
  memset(&st, 0, sizeof(st));
  rv = sfu_cap_parse_frame(linktype, copy, fr->n, fr->n, &p, &st);
  check_sum(&st);
  assert_int_equal(st.frames, 1);
  assert_int_equal(st.udp, rv == 1);
  if (rv == 1) {
    assert_true(p.data >= copy && p.data + p.len <= copy + fr->n);
    *out = p;
    out->data = fr->b + (p.data - copy); /* outlives the copy */
  }
  free(copy);
  return rv;
}

static void expect_udp4(int linktype, const buf_t *fr, const uint8_t *pl,
                        size_t n) {
  sfu_cap_pkt_t p;

  assert_int_equal(parse_cuts(linktype, fr, &p), 1);
  assert_int_equal(p.family, AF_INET);
  assert_memory_equal(p.src, IP_A, 4);
  assert_memory_equal(p.dst, IP_B, 4);
  assert_int_equal(p.sport, 5000);
  assert_int_equal(p.dport, 6000);
  assert_int_equal(p.len, n);
  assert_memory_equal(p.data, pl, n);
}

static void expect_udp6(int linktype, const buf_t *fr, const uint8_t *pl,
                        size_t n) {
  sfu_cap_pkt_t p;

  assert_int_equal(parse_cuts(linktype, fr, &p), 1);
  assert_int_equal(p.family, AF_INET6);
  assert_memory_equal(p.src, IP6_A, 16);
  assert_memory_equal(p.dst, IP6_B, 16);
  assert_int_equal(p.sport, 5000);
  assert_int_equal(p.dport, 6000);
  assert_int_equal(p.len, n);
  assert_memory_equal(p.data, pl, n);
}

static void test_parse_linktypes(void **state) {
  static const unsigned af6[] = {10, 23, 24, 28, 30};
  uint8_t pl[32];
  size_t n = rtp(pl, 111, 1, 2, 3), i;

  /* Ethernet, IPv4 with options (IHL 7) */
  frbuf.n = 0;
  eth(&frbuf, 0x0800);
  ip4_udp(&frbuf, 0, 2, 5000, 6000, pl, n);
  expect_udp4(DLT_EN10MB, &frbuf, pl, n);

  /* Linux cooked v1: pkttype, hatype, halen, addr(8), protocol */
  frbuf.n = 0;
  put16(&frbuf, 0);
  put16(&frbuf, 1);
  put16(&frbuf, 6);
  put(&frbuf, "\x02\x00\x00\x00\x00\x01\x00\x00", 8);
  put16(&frbuf, 0x0800);
  ip4_udp(&frbuf, 0, 0, 5000, 6000, pl, n);
  expect_udp4(DLT_LINUX_SLL, &frbuf, pl, n);
  frbuf.n = 14;
  put16(&frbuf, 0x86dd);
  ip6_udp(&frbuf, 17, NULL, 0, 5000, 6000, pl, n);
  expect_udp6(DLT_LINUX_SLL, &frbuf, pl, n);

  /* Linux cooked v2: protocol, reserved, ifindex, hatype, pkttype, halen,
   * addr(8) */
  frbuf.n = 0;
  put16(&frbuf, 0x86dd);
  put16(&frbuf, 0);
  put32(&frbuf, 2);
  put16(&frbuf, 1);
  put8(&frbuf, 4);
  put8(&frbuf, 6);
  put(&frbuf, "\x02\x00\x00\x00\x00\x01\x00\x00", 8);
  ip6_udp(&frbuf, 17, NULL, 0, 5000, 6000, pl, n);
  expect_udp6(DLT_LINUX_SLL2, &frbuf, pl, n);
  frbuf.b[0] = 0x81; /* 802.1Q tag after the cooked header */
  frbuf.b[1] = 0x00;
  frbuf.n = 20;
  put16(&frbuf, 7);
  put16(&frbuf, 0x0800);
  ip4_udp(&frbuf, 0, 0, 5000, 6000, pl, n);
  expect_udp4(DLT_LINUX_SLL2, &frbuf, pl, n);

  /* raw IP: DLT_RAW / LINKTYPE_RAW by version nibble, DLT_IPV4, DLT_IPV6 */
  frbuf.n = 0;
  ip4_udp(&frbuf, 0, 0, 5000, 6000, pl, n);
  expect_udp4(DLT_RAW, &frbuf, pl, n);
  expect_udp4(101, &frbuf, pl, n);
  expect_udp4(DLT_IPV4, &frbuf, pl, n);
  frbuf.n = 0;
  ip6_udp(&frbuf, 17, NULL, 0, 5000, 6000, pl, n);
  expect_udp6(DLT_RAW, &frbuf, pl, n);
  expect_udp6(DLT_IPV6, &frbuf, pl, n);

  /* BSD loopback: family in either byte order */
  frbuf.n = 0;
  put32le(&frbuf, 2);
  ip4_udp(&frbuf, 0, 0, 5000, 6000, pl, n);
  expect_udp4(DLT_NULL, &frbuf, pl, n);
  frbuf.n = 0;
  put32(&frbuf, 2);
  ip4_udp(&frbuf, 0, 0, 5000, 6000, pl, n);
  expect_udp4(DLT_LOOP, &frbuf, pl, n);
  for (i = 0; i < SFU_ARRAY_SIZE(af6); i++) {
    frbuf.n = 0;
    if (i & 1)
      put32(&frbuf, af6[i]);
    else
      put32le(&frbuf, af6[i]);
    ip6_udp(&frbuf, 17, NULL, 0, 5000, 6000, pl, n);
    expect_udp6(DLT_NULL, &frbuf, pl, n);
  }
}

static void test_parse_skips(void **state) {
  uint8_t pl[32];
  size_t n = rtp(pl, 111, 1, 2, 3);
  sfu_cap_stats_t st;
  sfu_cap_pkt_t p;

  memset(&st, 0, sizeof(st));
  /* unknown link type */
  frbuf.n = 0;
  eth(&frbuf, 0x0800);
  ip4_udp(&frbuf, 0, 0, 5000, 6000, pl, n);
  assert_int_equal(sfu_cap_parse_frame(147, frbuf.b, frbuf.n, frbuf.n, &p,
                                       &st),
                   0);
  assert_int_equal(st.skipped_linktype, 1);
  /* Ethernet padding after the IP packet is ignored */
  put(&frbuf, "\0\0\0\0\0\0", 6);
  assert_int_equal(sfu_cap_parse_frame(DLT_EN10MB, frbuf.b, frbuf.n, frbuf.n,
                                       &p, &st),
                   1);
  assert_int_equal(p.len, n);
  /* UDP length shorter than the IP payload: the UDP length wins */
  frbuf.b[14 + 20 + 5] -= 2;
  assert_int_equal(sfu_cap_parse_frame(DLT_EN10MB, frbuf.b, frbuf.n, frbuf.n,
                                       &p, &st),
                   1);
  assert_int_equal(p.len, n - 2);
  /* UDP length below 8 */
  frbuf.b[14 + 20 + 4] = 0;
  frbuf.b[14 + 20 + 5] = 7;
  assert_int_equal(sfu_cap_parse_frame(DLT_EN10MB, frbuf.b, frbuf.n, frbuf.n,
                                       &p, &st),
                   0);
  assert_int_equal(st.skipped_malformed, 1);
  /* TCP */
  frbuf.b[14 + 9] = 6;
  assert_int_equal(sfu_cap_parse_frame(DLT_EN10MB, frbuf.b, frbuf.n, frbuf.n,
                                       &p, &st),
                   0);
  assert_int_equal(st.skipped_not_udp, 1);
  /* IHL below 5 */
  frbuf.b[14 + 9] = 17;
  frbuf.b[14] = 0x44;
  assert_int_equal(sfu_cap_parse_frame(DLT_EN10MB, frbuf.b, frbuf.n, frbuf.n,
                                       &p, &st),
                   0);
  /* ethertype IPv4, version 6 */
  frbuf.b[14] = 0x65;
  assert_int_equal(sfu_cap_parse_frame(DLT_EN10MB, frbuf.b, frbuf.n, frbuf.n,
                                       &p, &st),
                   0);
  assert_int_equal(st.skipped_malformed, 3);
  /* raw IP of version 5 */
  frbuf.b[14] = 0x55;
  assert_int_equal(sfu_cap_parse_frame(DLT_RAW, frbuf.b + 14, frbuf.n - 14,
                                       frbuf.n - 14, &p, &st),
                   0);
  assert_int_equal(st.skipped_not_udp, 2);
  /* loopback family 7 */
  frbuf.n = 0;
  put32le(&frbuf, 7);
  ip4_udp(&frbuf, 0, 0, 5000, 6000, pl, n);
  assert_int_equal(sfu_cap_parse_frame(DLT_NULL, frbuf.b, frbuf.n, frbuf.n,
                                       &p, &st),
                   0);
  assert_int_equal(st.skipped_not_udp, 3);
  /* IPv6: an extension header running past the payload, a jumbogram,
   * ICMPv6 */
  frbuf.n = 0;
  ip6_udp(&frbuf, 60, (const uint8_t *)"\x11\x05\0\0\0\0\0\0", 8, 5000, 6000,
          pl, n);
  assert_int_equal(sfu_cap_parse_frame(DLT_IPV6, frbuf.b, frbuf.n, frbuf.n,
                                       &p, &st),
                   0);
  assert_int_equal(st.skipped_malformed, 4);
  frbuf.b[4] = frbuf.b[5] = 0;
  assert_int_equal(sfu_cap_parse_frame(DLT_IPV6, frbuf.b, frbuf.n, frbuf.n,
                                       &p, &st),
                   0);
  assert_int_equal(st.skipped_malformed, 5);
  frbuf.n = 0;
  ip6_udp(&frbuf, 58, NULL, 0, 5000, 6000, pl, n);
  assert_int_equal(sfu_cap_parse_frame(DLT_IPV6, frbuf.b, frbuf.n, frbuf.n,
                                       &p, &st),
                   0);
  assert_int_equal(st.skipped_not_udp, 4);
  /* NULL stats are fine */
  assert_int_equal(sfu_cap_parse_frame(DLT_IPV6, frbuf.b, frbuf.n, frbuf.n,
                                       &p, NULL),
                   0);
  check_sum(&st);
  assert_int_equal(st.frames, 12);
}

/* ---- writer ----------------------------------------------------------- */

static uint16_t csum(const uint8_t *p, size_t n, uint32_t sum) {
  size_t i;

  for (i = 0; i < n; i++)
    sum += (i & 1) ? p[i] : (uint32_t)p[i] << 8;
  while (sum >> 16)
    sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)sum;
}

/* N packets of lengths 0..~1500 (odd and even), varied ports and times:
 * read back identical, with valid checksums in the file. */
static void test_writer_roundtrip(void **state) {
  enum { N = 300 };
  static uint8_t payload[2048], file[1 << 20];
  const uint8_t mcast[4] = {239, 129, 2, 3};
  const char *path = tmp_path("written.pcap");
  sfu_cap_writer_t *w;
  sfu_cap_pkt_t p;
  sfu_cap_t *c;
  uint64_t expect_bytes = 24;
  size_t i, off, flen;
  char err[512];

  for (i = 0; i < sizeof(payload); i++)
    payload[i] = (uint8_t)(i * 7 + 3);
  assert_int_equal(sfu_cap_writer_open(&w, path, err, sizeof(err)), 0);
  assert_int_equal(sfu_cap_writer_bytes(w), 24);
  for (i = 0; i < N; i++) {
    size_t len = (i * 37) % 1501;
    assert_int_equal(sfu_cap_writer_put(w, 1700000000000000u + i * 20001u,
                                        IP_A, (uint16_t)(5000 + i),
                                        i % 3 ? IP_B : mcast,
                                        (uint16_t)(6000 + 2 * i),
                                        payload + i, len),
                     0);
    expect_bytes += 16 + 42 + len;
    assert_int_equal(sfu_cap_writer_bytes(w), expect_bytes);
  }
  assert_int_equal(sfu_cap_writer_put(w, 1, IP_A, 1, IP_B, 2, payload,
                                      SFU_CAP_WRITER_MAX_PAYLOAD + 1),
                   SFU_EMSGSIZE);
  assert_int_equal(sfu_cap_writer_put(w, (UINT64_C(1) << 32) * 1000000u,
                                      IP_A, 1, IP_B, 2, payload, 4),
                   SFU_EINVAL);
  assert_int_equal(sfu_cap_writer_bytes(w), expect_bytes);
  assert_int_equal(sfu_cap_writer_close(w), 0);

  assert_int_equal(sfu_cap_open(&c, path, err, sizeof(err)), 0);
  assert_int_equal(sfu_cap_linktype(c), DLT_EN10MB);
  for (i = 0; i < N; i++) {
    size_t len = (i * 37) % 1501;
    assert_int_equal(sfu_cap_next(c, &p), 1);
    assert_int_equal(p.ts_us, 1700000000000000u + i * 20001u);
    assert_int_equal(p.family, AF_INET);
    assert_memory_equal(p.src, IP_A, 4);
    assert_memory_equal(p.dst, i % 3 ? IP_B : mcast, 4);
    assert_int_equal(p.sport, 5000 + i);
    assert_int_equal(p.dport, 6000 + 2 * i);
    assert_int_equal(p.len, len);
    assert_memory_equal(p.data, payload + i, len);
  }
  assert_int_equal(sfu_cap_next(c, &p), 0);
  assert_int_equal(sfu_cap_stats(c)->frames, N);
  sfu_cap_close(c);

  /* the bytes: file size, checksums, multicast MAC */
  flen = load(path, file, sizeof(file));
  assert_int_equal(flen, expect_bytes);
  for (i = 0, off = 24; i < N; i++) {
    const uint8_t *f = file + off + 16, *ip = f + 14, *udp = ip + 20;
    size_t len = (i * 37) % 1501;
    uint32_t pseudo = 17 + (uint32_t)(8 + len);

    if (i % 3 == 0)
      assert_memory_equal(f, "\x01\x00\x5e\x01\x02\x03", 6);
    assert_int_equal(csum(ip, 20, 0), 0xffff);
    pseudo += csum(ip + 12, 8, 0);
    assert_int_equal(csum(udp, 8 + len, pseudo), 0xffff);
    off += 16 + 42 + len;
  }

  /* the largest datagram */
  assert_int_equal(sfu_cap_writer_open(&w, path, err, sizeof(err)), 0);
  {
    uint8_t *big = calloc(1, SFU_CAP_WRITER_MAX_PAYLOAD);
    big[SFU_CAP_WRITER_MAX_PAYLOAD - 1] = 0x5a;
    assert_int_equal(sfu_cap_writer_put(w, 5, IP_A, 1, IP_B, 2, big,
                                        SFU_CAP_WRITER_MAX_PAYLOAD),
                     0);
    assert_int_equal(sfu_cap_writer_close(w), 0);
    assert_int_equal(sfu_cap_open(&c, path, err, sizeof(err)), 0);
    assert_int_equal(sfu_cap_next(c, &p), 1);
    assert_int_equal(p.len, SFU_CAP_WRITER_MAX_PAYLOAD);
    assert_memory_equal(p.data, big, SFU_CAP_WRITER_MAX_PAYLOAD);
    assert_int_equal(p.ts_us, 5);
    sfu_cap_close(c);
    free(big);
  }
}

static void test_writer_errors(void **state) {
  sfu_cap_writer_t *w = (sfu_cap_writer_t *)1;
  char err[512], want[600];

  assert_int_equal(sfu_cap_writer_open(&w, tmp_path("no/such/dir.pcap"), err,
                                       sizeof(err)),
                   SFU_ENOENT);
  assert_null(w);
  snprintf(want, sizeof(want), "%s: cannot create: No such file or directory",
           tmp_path("no/such/dir.pcap"));
  assert_string_equal(err, want);
  if (access("/dev/full", W_OK) == 0) {
    assert_int_equal(sfu_cap_writer_open(&w, "/dev/full", err, sizeof(err)),
                     -ENOSPC);
    assert_string_equal(err, "/dev/full: cannot write: No space left on device");
  }
  assert_int_equal(sfu_cap_writer_close(NULL), 0);
  sfu_cap_close(NULL);
}

/* ---- RTP detection and streams ---------------------------------------- */

static void test_is_rtp(void **state) {
  uint8_t b[64];

  memset(b, 0, sizeof(b));
  b[0] = 0x80;
  b[1] = 111;
  assert_int_equal(sfu_cap_is_rtp(b, 12), 1);
  assert_int_equal(sfu_cap_is_rtp(b, 11), 0);
  b[1] = 0x80 | 96; /* marker + 96 */
  assert_int_equal(sfu_cap_is_rtp(b, 12), 1);
  b[1] = 0; /* PCMU */
  assert_int_equal(sfu_cap_is_rtp(b, 12), 1);
  for (int t = 192; t <= 223; t++) { /* RTCP SR, RR, SDES, BYE, ... */
    b[1] = (uint8_t)t;
    assert_int_equal(sfu_cap_is_rtp(b, 12), 0);
  }
  b[1] = 111;
  b[0] = 0x00; /* STUN */
  assert_int_equal(sfu_cap_is_rtp(b, 20), 0);
  b[0] = 0x16; /* DTLS handshake */
  assert_int_equal(sfu_cap_is_rtp(b, 20), 0);
  b[0] = 0x40; /* version 1 */
  assert_int_equal(sfu_cap_is_rtp(b, 20), 0);
  b[0] = 0x82; /* two CSRCs: 20 bytes */
  assert_int_equal(sfu_cap_is_rtp(b, 19), 0);
  assert_int_equal(sfu_cap_is_rtp(b, 20), 1);
  b[0] = 0x90; /* extension of 1 word: 20 bytes */
  b[14] = 0;
  b[15] = 1;
  assert_int_equal(sfu_cap_is_rtp(b, 15), 0);
  assert_int_equal(sfu_cap_is_rtp(b, 19), 0);
  assert_int_equal(sfu_cap_is_rtp(b, 20), 1);
  b[0] = 0xa0; /* padding: count byte must be 1..len - 12 */
  b[15] = 0;
  assert_int_equal(sfu_cap_is_rtp(b, 16), 0);
  b[15] = 4;
  assert_int_equal(sfu_cap_is_rtp(b, 16), 1);
  b[15] = 5;
  assert_int_equal(sfu_cap_is_rtp(b, 16), 0);
}

/* Interleaved streams, with loss, reordering, a duplicate and a wrap; RTCP
 * and STUN in between; a stream per 5-tuple even for one SSRC. */
static void test_scan_streams(void **state) {
  static const uint16_t seqs_a[] = {65530, 65531, 65533, 65535, 0,
                                    65534, 3,     2,     2,     65000};
  const char *path = tmp_path("streams.pcap");
  static const uint8_t rtcp_sr[28] = {0x80, 200, 0, 6, 0, 0, 0, 1};
  static const uint8_t stun[20] = {0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42};
  sfu_cap_stream_t s[4];
  sfu_cap_writer_t *w;
  uint8_t pl[32];
  uint64_t non_rtp, t = 1000000;
  char err[512];
  size_t i, n;

  assert_int_equal(sfu_cap_writer_open(&w, path, err, sizeof(err)), 0);
  for (i = 0; i < SFU_ARRAY_SIZE(seqs_a); i++) {
    n = rtp(pl, 111, seqs_a[i], 960u * (uint32_t)i, 0xa);
    assert_int_equal(sfu_cap_writer_put(w, t++, IP_A, 1000, IP_B, 2000, pl, n),
                     0);
    if (i == 1) { /* stream B starts second */
      n = rtp(pl, 0x80 | 96, 7, 90000, 0xb);
      assert_int_equal(
          sfu_cap_writer_put(w, t++, IP_B, 3000, IP_A, 4000, pl, n), 0);
    }
    if (i == 3) {
      assert_int_equal(sfu_cap_writer_put(w, t++, IP_A, 1001, IP_B, 2001,
                                          rtcp_sr, sizeof(rtcp_sr)),
                       0);
      assert_int_equal(sfu_cap_writer_put(w, t++, IP_A, 1000, IP_B, 2000,
                                          stun, sizeof(stun)),
                       0);
      /* stream C: A's SSRC to another port */
      n = rtp(pl, 111, 100, 0, 0xa);
      assert_int_equal(
          sfu_cap_writer_put(w, t++, IP_A, 1000, IP_B, 2002, pl, n), 0);
    }
    if (i == 5) { /* B again, PT 97 */
      n = rtp(pl, 97, 8, 93000, 0xb);
      assert_int_equal(
          sfu_cap_writer_put(w, t++, IP_B, 3000, IP_A, 4000, pl, n), 0);
    }
  }
  assert_int_equal(sfu_cap_writer_close(w), 0);

  assert_int_equal(sfu_cap_scan(path, s, 4, &non_rtp, err, sizeof(err)), 3);
  assert_int_equal(non_rtp, 2);
  /* A */
  assert_int_equal(s[0].ssrc, 0xa);
  assert_int_equal(s[0].pt, 111);
  assert_int_equal(s[0].dport, 2000);
  assert_int_equal(s[0].packets, 10);
  assert_int_equal(s[0].bytes, 160);
  assert_int_equal(s[0].first_seq, 65530);
  assert_int_equal(s[0].max_seq, 3);
  assert_int_equal(s[0].seq_gaps, 2); /* 65532 and 1 never came */
  assert_int_equal(s[0].late, 4);     /* 65534, 2, 2 again, 65000 */
  assert_int_equal(s[0].first_us, 1000000);
  assert_int_equal(s[0].first_ts, 0);
  assert_int_equal(s[0].last_ts, 960u * 9);
  /* B */
  assert_int_equal(s[1].ssrc, 0xb);
  assert_int_equal(s[1].pt, 96);
  assert_int_equal(s[1].pt_changes, 1);
  assert_int_equal(s[1].packets, 2);
  assert_int_equal(s[1].seq_gaps, 0);
  assert_memory_equal(s[1].src, IP_B, 4);
  assert_int_equal(s[1].sport, 3000);
  assert_int_equal(s[1].first_us, 1000002);
  assert_int_equal(s[1].last_ts, 93000);
  /* C */
  assert_int_equal(s[2].ssrc, 0xa);
  assert_int_equal(s[2].dport, 2002);
  assert_int_equal(s[2].packets, 1);
  assert_int_equal(s[2].first_us, s[2].last_us);

  /* room for two: C is left out */
  assert_int_equal(sfu_cap_scan(path, s, 2, &non_rtp, err, sizeof(err)), 2);
  assert_int_equal(s[0].packets, 10);
  assert_int_equal(s[1].packets, 2);
  assert_int_equal(sfu_cap_scan(path, s, 0, &non_rtp, err, sizeof(err)), 0);
  assert_int_equal(non_rtp, 2);
}

/* A late packet before a jump of 64 or more finds nothing to fill. */
static void test_scan_big_jump(void **state) {
  static const uint16_t seqs[] = {10, 200, 150, 199, 11};
  const char *path = tmp_path("jump.pcap");
  sfu_cap_stream_t s[1];
  sfu_cap_writer_t *w;
  uint8_t pl[32];
  char err[512];
  size_t i, n;

  assert_int_equal(sfu_cap_writer_open(&w, path, err, sizeof(err)), 0);
  for (i = 0; i < SFU_ARRAY_SIZE(seqs); i++) {
    n = rtp(pl, 8, seqs[i], 0, 0x77);
    assert_int_equal(sfu_cap_writer_put(w, i, IP_A, 1, IP_B, 2, pl, n), 0);
  }
  assert_int_equal(sfu_cap_writer_close(w), 0);
  assert_int_equal(sfu_cap_scan(path, s, 1, NULL, err, sizeof(err)), 1);
  /* 189 jumped over; 150 is 50 behind and fills one; 199 fills one; 11 is
   * 189 behind: late, out of the window */
  assert_int_equal(s[0].seq_gaps, 187);
  assert_int_equal(s[0].late, 3);
  assert_int_equal(s[0].max_seq, 200);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_real_streams),
      cmocka_unit_test(test_real_timing),
      cmocka_unit_test(test_real_dtx),
      cmocka_unit_test(test_real_match_rtp_fixtures),
      cmocka_unit_test(test_open_fp_memory),
      cmocka_unit_test(test_bad_not_a_capture),
      cmocka_unit_test(test_bad_empty),
      cmocka_unit_test(test_bad_truncated),
      cmocka_unit_test(test_bad_not_rtp),
      cmocka_unit_test(test_pcapng_two_interfaces),
      cmocka_unit_test(test_pcapng_mixed_linktypes),
      cmocka_unit_test(test_bad_mixed_frames),
      cmocka_unit_test(test_parse_linktypes),
      cmocka_unit_test(test_parse_skips),
      cmocka_unit_test(test_writer_roundtrip),
      cmocka_unit_test(test_writer_errors),
      cmocka_unit_test(test_is_rtp),
      cmocka_unit_test(test_scan_streams),
      cmocka_unit_test(test_scan_big_jump),
  };

  return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
