/*
 * test_rtp.c -- RTP view parser, header extensions, forward copy and
 * sequence unwrapping.
 *
 * Real packets come from the .bin files in tests/data/rtp, cut out of the
 * captures in tests/data/pcaps (tests/data/rtp/README.md says which
 * packet is which); the expected header values were read off them with an
 * independent Python pcap reader and aiortc's RtpPacket.parse(). Crafted
 * packets cover what the captures lack: audio level, the two-byte
 * extension form, CSRCs and padding.
 *
 * Every packet is also parsed cut at each length, from a heap copy of
 * exactly that size, so ASan catches a read past the end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sfu/media/rtp.h"
#include "sfu/base/sfu.h"

/* ---- fixtures --------------------------------------------------------- */

/* Reads tests/data/rtp/<name>; the directory is found from __FILE__. */
static size_t load(const char *name, uint8_t *buf, size_t cap) {
  char path[1024];
  const char *slash = strrchr(__FILE__, '/');
  int dirlen = slash ? (int)(slash - __FILE__) : 1;
  FILE *f;
  size_t n;

  snprintf(path, sizeof(path), "%.*s/data/rtp/%s", dirlen,
           slash ? __FILE__ : ".", name);
  f = fopen(path, "rb");
  if (f == NULL)
    fail_msg("cannot open fixture %s", path);
  n = fread(buf, 1, cap, f);
  fclose(f);
  assert_true(n > 0 && n < cap);
  return n;
}

static const char *const FIXTURES[] = {
    "opus_tone_stereo.bin", "opus_speech_100.bin", "vp8_membrane.bin",
    "vp8_str0m_ext.bin",    "h264_str0m.bin",      "vp9_str0m.bin",
    "av1_str0m_dd.bin",
};

/* Audio level in a one-byte element, id 1 = 0x80|42, then 2 pad bytes. */
static const uint8_t PKT_LEVEL[] = {
    0x90, 0x6f, 0x00, 0x01, 0x00, 0x00, 0x03, 0xc0, 0x11, 0x22, 0x33, 0x44,
    0xbe, 0xde, 0x00, 0x01, 0x10, 0xaa, 0x00, 0x00,
    0xfc, 0xff, 0xfe, /* Opus payload */
};

/* Two-byte form: id 1 len 0, id 15 len 2, a pad byte, id 32 "abc". */
static const uint8_t PKT_TWO_BYTE[] = {
    0x90, 0x60, 0x00, 0x02, 0x00, 0x00, 0x00, 0x10, 0xca, 0xfe, 0xba, 0xbe,
    0x10, 0x00, 0x00, 0x03, 0x01, 0x00, 0x0f, 0x02, 0xaa, 0xbb, 0x00, 0x20,
    0x03, 'a',  'b',  'c',  0x01, 0x02, 0x03,
};

/* P=1, CC=2: two CSRCs, 5 payload bytes, 3 padding bytes. */
static const uint8_t PKT_PAD_CSRC[] = {
    0xa2, 0x08, 0xff, 0xff, 0x12, 0x34, 0x56, 0x78, 0x00, 0x00, 0x00, 0x07,
    0xaa, 0xaa, 0xaa, 0x01, 0xbb, 0xbb, 0xbb, 0x02, 0xd0, 0xd1, 0xd2, 0xd3,
    0xd4, 0x00, 0x00, 0x03,
};

/* ---- parse: real captures --------------------------------------------- */

static void test_parse_opus(void **state) {
  uint8_t buf[2048];
  size_t n = load("opus_tone_stereo.bin", buf, sizeof(buf));
  sfu_rtp_t p;

  assert_int_equal(n, 264);
  assert_int_equal(sfu_rtp_parse(buf, n, &p), 0);
  assert_int_equal(p.pt, 111);
  assert_int_equal(p.ssrc, 0x55667788);
  assert_int_equal(p.seq, 28075);
  assert_int_equal(p.ts, 3936281288u);
  assert_int_equal(p.marker, 1);
  assert_int_equal(p.has_ext, 0);
  assert_int_equal(p.has_padding, 0);
  assert_int_equal(p.csrc_count, 0);
  assert_int_equal(p.header_len, 12);
  assert_int_equal(p.payload_off, 12);
  assert_int_equal(p.payload_len, 252);
  assert_int_equal(p.pad_len, 0);
  assert_int_equal(p.data[p.payload_off], 0xfc); /* TOC: CELT FB 20 ms, 1 frame */
  assert_ptr_equal(p.data, buf);

  n = load("opus_speech_100.bin", buf, sizeof(buf));
  assert_int_equal(n, 100);
  assert_int_equal(sfu_rtp_parse(buf, n, &p), 0);
  assert_int_equal(p.pt, 111);
  assert_int_equal(p.ssrc, 0x11223344);
  assert_int_equal(p.seq, 3822);
  assert_int_equal(p.ts, 2003467888u);
  assert_int_equal(p.marker, 0);
  assert_int_equal(p.payload_len, 88);
  assert_int_equal(p.data[p.payload_off], 0x78); /* SILK-only WB 20 ms */
}

static void test_parse_vp8_membrane(void **state) {
  uint8_t buf[2048];
  size_t n = load("vp8_membrane.bin", buf, sizeof(buf));
  sfu_rtp_t p;

  assert_int_equal(n, 1472);
  assert_int_equal(sfu_rtp_parse(buf, n, &p), 0);
  assert_int_equal(p.ssrc, 0x62F601FF);
  assert_int_equal(p.pt, 96);
  assert_int_equal(p.seq, 1136);
  assert_int_equal(p.ts, 2824112133u);
  assert_int_equal(p.marker, 0);
  assert_int_equal(p.has_ext, 0);
  assert_int_equal(p.payload_len, 1460);
  /* VP8 descriptor X=1 S=1, I=1, picture id 0x00b0 */
  assert_memory_equal(p.data + p.payload_off, "\x90\x80\x00\xb0", 4);
}

/* str0m's VP8: browser-style one-byte extensions, 16 bytes of elements:
 * 22 f5bd4d | 41 0001 | 90 31 | a0 6c | 30 00 | 00 00 00 00 */
static void test_parse_vp8_ext(void **state) {
  static const struct {
    int id;
    size_t len;
    const char *val;
  } want[] = {
      {2, 3, "\xf5\xbd\x4d"}, /* abs-send-time */
      {4, 2, "\x00\x01"},     /* transport-wide seq */
      {9, 1, "1"},            /* mid */
      {10, 1, "l"},           /* rid */
      {3, 1, "\x00"},         /* video orientation */
  };
  uint8_t buf[2048];
  size_t n = load("vp8_str0m_ext.bin", buf, sizeof(buf)), l;
  sfu_rtp_ext_iter_t it;
  const uint8_t *v;
  sfu_rtp_t p;
  char mid[17];
  int id, i;

  assert_int_equal(sfu_rtp_parse(buf, n, &p), 0);
  assert_int_equal(p.ssrc, 0xEEDF3944);
  assert_int_equal(p.pt, 96);
  assert_int_equal(p.seq, 14260);
  assert_int_equal(p.ts, 3190208834u);
  assert_int_equal(p.marker, 1);
  assert_int_equal(p.has_ext, 1);
  assert_int_equal(p.ext_profile, 0xBEDE);
  assert_int_equal(p.ext_off, 16);
  assert_int_equal(p.ext_len, 16);
  assert_int_equal(p.header_len, 32);
  assert_int_equal(p.payload_len, 117);

  sfu_rtp_ext_iter_init(&it, &p);
  for (i = 0; i < (int)SFU_ARRAY_SIZE(want); i++) {
    assert_int_equal(sfu_rtp_ext_next(&it, &id, &v, &l), 1);
    assert_int_equal(id, want[i].id);
    assert_int_equal(l, want[i].len);
    assert_memory_equal(v, want[i].val, l);
  }
  assert_int_equal(sfu_rtp_ext_next(&it, &id, &v, &l), 0);
  assert_int_equal(sfu_rtp_ext_next(&it, &id, &v, &l), 0);

  for (i = 0; i < (int)SFU_ARRAY_SIZE(want); i++) {
    assert_int_equal(sfu_rtp_ext_find(&p, want[i].id, &v, &l), 1);
    assert_int_equal(l, want[i].len);
    assert_memory_equal(v, want[i].val, l);
  }
  assert_int_equal(sfu_rtp_ext_find(&p, 1, &v, &l), 0);
  assert_int_equal(sfu_rtp_ext_find(&p, 14, &v, &l), 0);
  assert_int_equal(sfu_rtp_ext_find(&p, 0, &v, &l), 0);

  assert_int_equal(sfu_rtp_ext_mid(&p, 9, mid, sizeof(mid)), 1);
  assert_string_equal(mid, "1");
  assert_int_equal(sfu_rtp_ext_mid(&p, 10, mid, sizeof(mid)), 1);
  assert_string_equal(mid, "l");
  assert_int_equal(sfu_rtp_ext_mid(&p, 9, mid, 1), 0); /* no room for NUL */
  assert_int_equal(sfu_rtp_ext_mid(&p, 3, mid, sizeof(mid)), 0); /* 0x00 */
  assert_int_equal(sfu_rtp_ext_mid(&p, 5, mid, sizeof(mid)), 0);
}

static void test_parse_other_codecs(void **state) {
  uint8_t buf[2048];
  const uint8_t *v;
  size_t n, l;
  sfu_rtp_t p;
  char mid[17];

  n = load("h264_str0m.bin", buf, sizeof(buf));
  assert_int_equal(sfu_rtp_parse(buf, n, &p), 0);
  assert_int_equal(p.pt, 126);
  assert_int_equal(p.ssrc, 0x6A5CC848);
  assert_int_equal(p.seq, 19250);
  assert_int_equal(p.ts, 2854921316u);
  assert_int_equal(p.header_len, 28);
  assert_int_equal(p.payload_len, 48);
  assert_int_equal(p.data[p.payload_off] & 0x1f, 1); /* non-IDR slice */
  assert_int_equal(sfu_rtp_ext_find(&p, 7, &v, &l), 1);
  assert_int_equal(l, 2);
  assert_memory_equal(v, "\x00\x0d", 2);
  assert_int_equal(sfu_rtp_ext_mid(&p, 3, mid, sizeof(mid)), 1);
  assert_string_equal(mid, "1");

  n = load("vp9_str0m.bin", buf, sizeof(buf));
  assert_int_equal(sfu_rtp_parse(buf, n, &p), 0);
  assert_int_equal(p.pt, 98);
  assert_int_equal(p.ssrc, 0x22D80F08);
  assert_int_equal(p.seq, 19357);
  assert_int_equal(p.ts, 3665622181u);
  assert_int_equal(p.payload_len, 213 - 28);

  /* AV1 with a 13-byte dependency descriptor (id 7) */
  n = load("av1_str0m_dd.bin", buf, sizeof(buf));
  assert_int_equal(sfu_rtp_parse(buf, n, &p), 0);
  assert_int_equal(p.pt, 45);
  assert_int_equal(p.ssrc, 0xD465AC89);
  assert_int_equal(p.seq, 7486);
  assert_int_equal(p.ts, 4244970353u);
  assert_int_equal(p.ext_len, 28);
  assert_int_equal(p.header_len, 44);
  assert_int_equal(p.payload_len, 990 - 44);
  assert_int_equal(sfu_rtp_ext_find(&p, 7, &v, &l), 1);
  assert_int_equal(l, 13);
  assert_memory_equal(v, "\x01\x00\x01\x00\x06\x00\x07\x00\x15\x00\x00\x00\x00",
                      13);
  assert_int_equal(sfu_rtp_ext_find(&p, 3, &v, &l), 1);
  assert_int_equal(l, 1);
  assert_int_equal(v[0], 0);
}

/* ---- crafted ------------------------------------------------------------ */

static void test_audio_level(void **state) {
  uint8_t buf[sizeof(PKT_LEVEL)];
  sfu_rtp_t p;
  int voice = -1, level = -1;

  memcpy(buf, PKT_LEVEL, sizeof(buf));
  assert_int_equal(sfu_rtp_parse(buf, sizeof(buf), &p), 0);
  assert_int_equal(p.pt, 111);
  assert_int_equal(p.ts, 960);
  assert_int_equal(p.payload_len, 3);
  assert_int_equal(sfu_rtp_audio_level(&p, 1, &voice, &level), 1);
  assert_int_equal(voice, 1);
  assert_int_equal(level, 42);
  assert_int_equal(sfu_rtp_audio_level(&p, 2, &voice, &level), 0);

  buf[17] = 0x7f; /* no voice, silence */
  assert_int_equal(sfu_rtp_audio_level(&p, 1, &voice, &level), 1);
  assert_int_equal(voice, 0);
  assert_int_equal(level, 127);
}

static void test_two_byte_ext(void **state) {
  uint8_t buf[sizeof(PKT_TWO_BYTE)];
  const uint8_t *v;
  sfu_rtp_t p;
  char mid[8];
  size_t l;
  int voice, level;

  memcpy(buf, PKT_TWO_BYTE, sizeof(buf));
  assert_int_equal(sfu_rtp_parse(buf, sizeof(buf), &p), 0);
  assert_int_equal(p.ext_profile, 0x1000);
  assert_int_equal(p.ext_len, 12);
  assert_int_equal(p.header_len, 28);
  assert_int_equal(p.payload_len, 3);

  assert_int_equal(sfu_rtp_ext_find(&p, 1, &v, &l), 1);
  assert_int_equal(l, 0);
  assert_int_equal(sfu_rtp_ext_find(&p, 15, &v, &l), 1); /* legal here */
  assert_int_equal(l, 2);
  assert_memory_equal(v, "\xaa\xbb", 2);
  assert_int_equal(sfu_rtp_ext_find(&p, 32, &v, &l), 1);
  assert_int_equal(l, 3);
  assert_int_equal(sfu_rtp_ext_mid(&p, 32, mid, sizeof(mid)), 3);
  assert_string_equal(mid, "abc");
  assert_int_equal(sfu_rtp_ext_mid(&p, 32, mid, 3), 0);
  assert_int_equal(sfu_rtp_ext_mid(&p, 1, mid, sizeof(mid)), 0); /* empty */
  assert_int_equal(sfu_rtp_audio_level(&p, 1, &voice, &level), 0);
  assert_int_equal(sfu_rtp_ext_find(&p, 2, &v, &l), 0);

  /* appbits in the low nibble do not change the form */
  buf[13] = 0x05;
  assert_int_equal(sfu_rtp_parse(buf, sizeof(buf), &p), 0);
  assert_int_equal(p.ext_profile, 0x1005);
  assert_int_equal(sfu_rtp_ext_find(&p, 32, &v, &l), 1);

  /* an element longer than the block: walk stops */
  buf[13] = 0x00;
  buf[24] = 0x04;
  assert_int_equal(sfu_rtp_parse(buf, sizeof(buf), &p), 0);
  assert_int_equal(sfu_rtp_ext_find(&p, 15, &v, &l), 1);
  assert_int_equal(sfu_rtp_ext_find(&p, 32, &v, &l), 0);

  /* unknown profile: the block is skipped, no elements */
  buf[12] = 0x12;
  buf[13] = 0x34;
  assert_int_equal(sfu_rtp_parse(buf, sizeof(buf), &p), 0);
  assert_int_equal(p.ext_profile, 0x1234);
  assert_int_equal(p.payload_len, 3);
  assert_int_equal(sfu_rtp_ext_find(&p, 1, &v, &l), 0);
}

static void test_one_byte_stops(void **state) {
  uint8_t buf[] = {
      0x90, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1,
      0xbe, 0xde, 0x00, 0x03,
      0x00, 0x00,             /* padding */
      0x22, 0xaa, 0xbb, 0xcc, /* id 2, 3 bytes */
      0x00,                   /* padding between elements */
      0x50, 0x55,             /* id 5, 1 byte */
      0xf3,                   /* id 15: stop, length ignored */
      0x30, 0x33,             /* id 3: never seen */
      0xee,                   /* payload */
  };
  sfu_rtp_ext_iter_t it;
  const uint8_t *v;
  sfu_rtp_t p;
  size_t l;
  int id;

  assert_int_equal(sfu_rtp_parse(buf, sizeof(buf), &p), 0);
  assert_int_equal(p.payload_len, 1);
  assert_int_equal(sfu_rtp_ext_find(&p, 2, &v, &l), 1);
  assert_int_equal(l, 3);
  assert_memory_equal(v, "\xaa\xbb\xcc", 3);
  assert_int_equal(sfu_rtp_ext_find(&p, 5, &v, &l), 1);
  assert_int_equal(l, 1);
  assert_int_equal(v[0], 0x55);
  assert_int_equal(sfu_rtp_ext_find(&p, 3, &v, &l), 0);

  /* id 0 with a nonzero length is malformed: the walk reports it */
  buf[22] = 0x02;
  sfu_rtp_ext_iter_init(&it, &p);
  assert_int_equal(sfu_rtp_ext_next(&it, &id, &v, &l), 1);
  assert_int_equal(id, 2);
  assert_int_equal(sfu_rtp_ext_next(&it, &id, &v, &l), SFU_EPROTO);
  assert_int_equal(sfu_rtp_ext_next(&it, &id, &v, &l), 0);
  assert_int_equal(sfu_rtp_ext_find(&p, 5, &v, &l), 0);

  /* element running past the block */
  buf[22] = 0x00;
  buf[23] = 0x5f; /* id 5, 16 bytes */
  assert_int_equal(sfu_rtp_ext_find(&p, 2, &v, &l), 1);
  assert_int_equal(sfu_rtp_ext_find(&p, 5, &v, &l), 0);
}

static void test_padding_and_csrc(void **state) {
  uint8_t buf[sizeof(PKT_PAD_CSRC)];
  sfu_rtp_t p;

  memcpy(buf, PKT_PAD_CSRC, sizeof(buf));
  assert_int_equal(sfu_rtp_parse(buf, sizeof(buf), &p), 0);
  assert_int_equal(p.csrc_count, 2);
  assert_int_equal(p.has_padding, 1);
  assert_int_equal(p.seq, 0xffff);
  assert_int_equal(p.ts, 0x12345678);
  assert_int_equal(p.ssrc, 7);
  assert_int_equal(p.pt, 8);
  assert_int_equal(p.header_len, 20);
  assert_int_equal(p.payload_off, 20);
  assert_int_equal(p.payload_len, 5);
  assert_int_equal(p.pad_len, 3);
  assert_memory_equal(p.data + p.payload_off, "\xd0\xd1\xd2\xd3\xd4", 5);

  /* padding that takes the whole payload */
  buf[27] = 8;
  assert_int_equal(sfu_rtp_parse(buf, sizeof(buf), &p), 0);
  assert_int_equal(p.payload_len, 0);
  assert_int_equal(p.pad_len, 8);
  buf[27] = 9; /* would eat into the CSRCs */
  assert_int_equal(sfu_rtp_parse(buf, sizeof(buf), &p), SFU_EPROTO);
  buf[27] = 0; /* a count includes itself */
  assert_int_equal(sfu_rtp_parse(buf, sizeof(buf), &p), SFU_EPROTO);
  buf[27] = 255;
  assert_int_equal(sfu_rtp_parse(buf, sizeof(buf), &p), SFU_EPROTO);
  buf[27] = 3;

  /* 15 CSRCs do not fit */
  buf[0] = 0x8f;
  assert_int_equal(sfu_rtp_parse(buf, sizeof(buf), &p), SFU_EPROTO);
  /* 4 CSRCs: exactly the packet, no padding bit */
  buf[0] = 0x84;
  assert_int_equal(sfu_rtp_parse(buf, sizeof(buf), &p), 0);
  assert_int_equal(p.header_len, 28);
  assert_int_equal(p.payload_len, 0);
}

static void test_bad_headers(void **state) {
  uint8_t buf[64];
  sfu_rtp_t p;
  int v;

  memcpy(buf, PKT_LEVEL, sizeof(PKT_LEVEL));
  for (v = 0; v < 4; v++) {
    buf[0] = (uint8_t)((v << 6) | (PKT_LEVEL[0] & 0x3f));
    assert_int_equal(sfu_rtp_parse(buf, sizeof(PKT_LEVEL), &p),
                     v == 2 ? 0 : SFU_EPROTO);
  }
  buf[0] = PKT_LEVEL[0];
  assert_int_equal(sfu_rtp_parse(buf, 0, &p), SFU_EPROTO);
  assert_int_equal(sfu_rtp_parse(buf, 11, &p), SFU_EPROTO);
  buf[15] = 2; /* extension block longer than the packet (20 + 8 > 23) */
  assert_int_equal(sfu_rtp_parse(buf, sizeof(PKT_LEVEL), &p), SFU_EPROTO);
  buf[15] = 0; /* empty block is fine */
  assert_int_equal(sfu_rtp_parse(buf, sizeof(PKT_LEVEL), &p), 0);
  assert_int_equal(p.header_len, 16);
  assert_int_equal(p.ext_len, 0);
  assert_int_equal(p.payload_len, 7);
  /* exactly a header with X set and no room for the block header */
  assert_int_equal(sfu_rtp_parse(buf, 15, &p), SFU_EPROTO);
  assert_int_equal(sfu_rtp_parse(buf, 16, &p), 0);
  /* a bare 12-byte header is a valid, empty packet */
  buf[0] = 0x80;
  assert_int_equal(sfu_rtp_parse(buf, 12, &p), 0);
  assert_int_equal(p.payload_len, 0);
}

/*
 * Cuts `pkt` at every length into a heap buffer of exactly that size. Cuts
 * inside the header (fixed, CSRCs, extension block) must fail; cuts in the
 * payload of an unpadded packet are valid, shorter packets. Everything that
 * parses is walked and forward-copied so ASan sees every read.
 */
static void sweep(const uint8_t *pkt, size_t len) {
  static const uint8_t map[15] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14};
  uint8_t out[2048];
  sfu_rtp_t full, p;
  size_t cut;

  assert_int_equal(sfu_rtp_parse(pkt, len, &full), 0);
  for (cut = 0; cut <= len; cut++) {
    uint8_t *b = malloc(cut ? cut : 1);
    sfu_rtp_ext_iter_t it;
    const uint8_t *v;
    size_t l;
    int rv, id, voice, level, n;
    char mid[20];

    assert_non_null(b);
    memcpy(b, pkt, cut);
    rv = sfu_rtp_parse(b, cut, &p);
    if (cut < full.header_len) {
      assert_int_equal(rv, SFU_EPROTO);
    } else if (!full.has_padding) {
      assert_int_equal(rv, 0);
      assert_int_equal(p.header_len, full.header_len);
      assert_int_equal(p.payload_len, cut - full.header_len);
    } else {
      assert_true(rv == 0 || rv == SFU_EPROTO);
      if (cut == len)
        assert_int_equal(rv, 0);
    }
    if (rv == 0) {
      assert_int_equal(p.payload_off + p.payload_len + p.pad_len, cut);
      sfu_rtp_ext_iter_init(&it, &p);
      while (sfu_rtp_ext_next(&it, &id, &v, &l) == 1)
        assert_true(v >= b && v + l <= b + cut);
      for (id = 1; id < 40; id++) {
        if (sfu_rtp_ext_find(&p, id, &v, &l))
          assert_true(v + l <= b + cut);
        sfu_rtp_audio_level(&p, id, &voice, &level);
        sfu_rtp_ext_mid(&p, id, mid, sizeof(mid));
      }
      n = sfu_rtp_forward_copy(&p, 1, 2, 3, 4, map, out, sizeof(out));
      assert_true(n >= 12 && (size_t)n <= cut);
    }
    free(b);
  }
}

static void test_truncation_sweep(void **state) {
  uint8_t buf[2048];
  size_t i, n;

  for (i = 0; i < SFU_ARRAY_SIZE(FIXTURES); i++) {
    n = load(FIXTURES[i], buf, sizeof(buf));
    sweep(buf, n);
  }
  sweep(PKT_LEVEL, sizeof(PKT_LEVEL));
  sweep(PKT_TWO_BYTE, sizeof(PKT_TWO_BYTE));
  sweep(PKT_PAD_CSRC, sizeof(PKT_PAD_CSRC));
}

static void test_is_rtcp(void **state) {
  uint8_t b[8] = {0x80, 0, 0, 1};
  int v;

  for (v = 0; v < 256; v++) {
    b[1] = (uint8_t)v;
    assert_int_equal(sfu_is_rtcp(b, sizeof(b)), v >= 192 && v <= 223);
  }
  b[1] = 200; /* SR */
  assert_int_equal(sfu_is_rtcp(b, 2), 1);
  assert_int_equal(sfu_is_rtcp(b, 1), 0);
  assert_int_equal(sfu_is_rtcp(b, 0), 0);
  b[1] = 0x80 | 111; /* Opus with marker: 239 */
  assert_int_equal(sfu_is_rtcp(b, sizeof(b)), 0);
}

static void test_setters(void **state) {
  uint8_t buf[2048], orig[2048];
  size_t n = load("opus_tone_stereo.bin", buf, sizeof(buf));
  sfu_rtp_t p;

  memcpy(orig, buf, n);
  sfu_rtp_set_seq(buf, 0xfffe);
  sfu_rtp_set_ts(buf, 0x01020304);
  sfu_rtp_set_ssrc(buf, 0xa1b2c3d4);
  sfu_rtp_set_pt(buf, 0xff); /* only 7 bits land */
  assert_memory_equal(buf, "\x80\xff\xff\xfe\x01\x02\x03\x04\xa1\xb2\xc3\xd4",
                      12);
  sfu_rtp_set_pt(buf, 100);
  assert_int_equal(sfu_rtp_parse(buf, n, &p), 0);
  assert_int_equal(p.marker, 1);
  assert_int_equal(p.pt, 100);
  assert_int_equal(p.seq, 0xfffe);
  assert_int_equal(p.ts, 0x01020304);
  assert_int_equal(p.ssrc, 0xa1b2c3d4);
  assert_memory_equal(buf + 12, orig + 12, n - 12);

  buf[1] = 0x60; /* marker clear stays clear */
  sfu_rtp_set_pt(buf, 111);
  assert_int_equal(buf[1], 111);
}

/* ---- forward copy ------------------------------------------------------ */

static void test_forward_plain(void **state) {
  uint8_t buf[2048], out[2048];
  size_t n = load("opus_tone_stereo.bin", buf, sizeof(buf));
  sfu_rtp_t p, q;
  int w;

  assert_int_equal(sfu_rtp_parse(buf, n, &p), 0);
  w = sfu_rtp_forward_copy(&p, 109, 7, 960, 0xdeadbeef, NULL, out, sizeof(out));
  assert_int_equal(w, 264);
  assert_memory_equal(out, "\x80\xed\x00\x07\x00\x00\x03\xc0\xde\xad\xbe\xef",
                      12);
  assert_memory_equal(out + 12, buf + 12, 252);

  /* CSRCs and padding are not forwarded */
  memcpy(buf, PKT_PAD_CSRC, sizeof(PKT_PAD_CSRC));
  assert_int_equal(sfu_rtp_parse(buf, sizeof(PKT_PAD_CSRC), &p), 0);
  w = sfu_rtp_forward_copy(&p, 8, 1, 2, 3, NULL, out, sizeof(out));
  assert_int_equal(w, 17);
  assert_memory_equal(out,
                      "\x80\x08\x00\x01\x00\x00\x00\x02\x00\x00\x00\x03"
                      "\xd0\xd1\xd2\xd3\xd4",
                      17);
  assert_int_equal(sfu_rtp_parse(out, (size_t)w, &q), 0);
  assert_int_equal(q.csrc_count, 0);
  assert_int_equal(q.has_padding, 0);
}

static void test_forward_map(void **state) {
  static const uint8_t want_hdr[] = {
      0x90, 0xe4, 0x12, 0x34, 0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03, 0x04,
      0xbe, 0xde, 0x00, 0x03,
      0x32, 0xf5, 0xbd, 0x4d, /* abs-send-time 2 -> 3 */
      0x51, 0x00, 0x01,       /* transport-wide seq 4 -> 5 */
      0x10, 0x31,             /* mid 9 -> 1 */
      0x00, 0x00, 0x00,       /* to a word */
  };
  uint8_t map[15] = {0};
  uint8_t buf[2048], out[2048];
  size_t n = load("vp8_str0m_ext.bin", buf, sizeof(buf)), cap, l;
  const uint8_t *v;
  sfu_rtp_t p, q;
  int w;

  assert_int_equal(sfu_rtp_parse(buf, n, &p), 0);
  map[2] = 3;
  map[4] = 5;
  map[9] = 1;
  w = sfu_rtp_forward_copy(&p, 100, 0x1234, 0xdeadbeef, 0x01020304, map, out,
                           sizeof(out));
  assert_int_equal(w, 28 + 117);
  assert_memory_equal(out, want_hdr, sizeof(want_hdr));
  assert_memory_equal(out + 28, buf + 32, 117);
  assert_int_equal(sfu_rtp_parse(out, (size_t)w, &q), 0);
  assert_int_equal(q.marker, 1);
  assert_int_equal(sfu_rtp_ext_find(&q, 5, &v, &l), 1);
  assert_memory_equal(v, "\x00\x01", 2);

  /* every cap short of the size fails without writing past it */
  for (cap = 0; cap < (size_t)w; cap++) {
    uint8_t *o = malloc(cap ? cap : 1);
    assert_int_equal(sfu_rtp_forward_copy(&p, 100, 0x1234, 0xdeadbeef,
                                          0x01020304, map, o, cap),
                     SFU_E2BIG);
    free(o);
  }

  /* nothing mapped: no block, no X bit */
  memset(map, 0, sizeof(map));
  map[1] = 1; /* not present in the packet */
  w = sfu_rtp_forward_copy(&p, 96, 1, 2, 3, map, out, sizeof(out));
  assert_int_equal(w, 12 + 117);
  assert_int_equal(out[0], 0x80);
  assert_memory_equal(out + 12, buf + 32, 117);

  /* the identity map gives back the source block: 13 bytes + 3 padding */
  for (l = 0; l < 15; l++)
    map[l] = (uint8_t)l;
  w = sfu_rtp_forward_copy(&p, 96, 14260, 3190208834u, 0xEEDF3944, map, out,
                           sizeof(out));
  assert_int_equal(w, (int)n);
  assert_memory_equal(out, buf, n);

  /* a two-byte source: kept ids <= 14 with 1..16 bytes, in one-byte form */
  {
    uint8_t tb[] = {
        0x90, 0x60, 0, 9, 0, 0, 0, 9, 0, 0, 0, 9,
        0x10, 0x00, 0x00, 0x08,
        0x02, 0x02, 0xa1, 0xa2, /* id 2, 2 bytes: kept as 7 */
        0x03, 0x00,             /* id 3, empty: not expressible */
        0x04, 0x11, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17,
        0x05, 0x01, 0x55,       /* id 5: dropped by map */
        0x0e, 0x01, 0xee,       /* id 14 -> 14 */
        0x00,
        0x99,                   /* payload */
    };
    memset(map, 0, sizeof(map));
    map[2] = 7;
    map[3] = 3;
    map[4] = 4;
    map[14] = 14;
    assert_int_equal(sfu_rtp_parse(tb, sizeof(tb), &p), 0);
    w = sfu_rtp_forward_copy(&p, 96, 9, 9, 9, map, out, sizeof(out));
    assert_int_equal(w, 12 + 4 + 8 + 1);
    assert_memory_equal(out + 12,
                        "\xbe\xde\x00\x02\x71\xa1\xa2\xe0\xee\x00\x00\x00\x99",
                        13);
  }
}

/* ---- sequence unwrap ---------------------------------------------------- */

static void test_seq_unwrap(void **state) {
  sfu_seq_unwrap_t u = {0};
  const uint64_t B = SFU_SEQ_EXT_BASE;

  assert_int_equal(sfu_seq_unwrap(&u, 65530), B + 65530);
  assert_int_equal(sfu_seq_unwrap(&u, 65535), B + 65535);
  assert_int_equal(sfu_seq_unwrap(&u, 0), B + 65536);
  assert_int_equal(sfu_seq_unwrap(&u, 2), B + 65538);
  assert_int_equal(sfu_seq_unwrap(&u, 65534), B + 65534); /* late, pre-wrap */
  assert_int_equal(sfu_seq_unwrap(&u, 1), B + 65537);     /* late */
  assert_int_equal(sfu_seq_unwrap(&u, 2), B + 65538);     /* duplicate */
  assert_int_equal(u.max_ext, B + 65538);
  assert_int_equal(sfu_seq_unwrap(&u, 3), B + 65539);
  /* 32767 ahead still moves forward; 32768 ahead counts as behind */
  assert_int_equal(sfu_seq_unwrap(&u, 3 + 32767), B + 65539 + 32767);
  assert_int_equal(sfu_seq_unwrap(&u, 2) /* 3 + 32767 + 32768 */,
                   B + 65539 + 32767 - 32768);
  /* RR's extended highest sequence number counts cycles from 0 */
  assert_int_equal(sfu_seq_rtcp_ext(u.max_ext), 65539 + 32767);
  assert_int_equal(sfu_seq_rtcp_ext(B + 65530), 65530);
  /* many wraps */
  {
    sfu_seq_unwrap_t w = {0};
    uint64_t i, e = 0;
    for (i = 0; i < 5 * 65536 + 10; i += 1000)
      e = sfu_seq_unwrap(&w, (uint16_t)i);
    assert_int_equal(e, B + i - 1000);
  }
  /* a packet from before the first one stays positive and ordered */
  {
    sfu_seq_unwrap_t w = {0};
    assert_int_equal(sfu_seq_unwrap(&w, 3), B + 3);
    assert_int_equal(sfu_seq_unwrap(&w, 65533), B - 3);
    assert_int_equal(sfu_seq_unwrap(&w, 4), B + 4);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_opus),
      cmocka_unit_test(test_parse_vp8_membrane),
      cmocka_unit_test(test_parse_vp8_ext),
      cmocka_unit_test(test_parse_other_codecs),
      cmocka_unit_test(test_audio_level),
      cmocka_unit_test(test_two_byte_ext),
      cmocka_unit_test(test_one_byte_stops),
      cmocka_unit_test(test_padding_and_csrc),
      cmocka_unit_test(test_bad_headers),
      cmocka_unit_test(test_truncation_sweep),
      cmocka_unit_test(test_is_rtcp),
      cmocka_unit_test(test_setters),
      cmocka_unit_test(test_forward_plain),
      cmocka_unit_test(test_forward_map),
      cmocka_unit_test(test_seq_unwrap),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
