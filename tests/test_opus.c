/*
 * test_opus.c -- Opus packet views and the level meter.
 *
 * Fixtures are the two GStreamer captures in tests/data/pcaps,
 * converted by tests/data/opus/extract_pcap.py into records of
 *
 *   u16 payload length | u16 RTP seq | u32 RTP timestamp |
 *   u32 arrival us since the first packet | u8 marker | u8 PT | u16 0 |
 *   payload
 *
 * (big-endian; see tests/data/opus/README.md). Expected values are checked
 * against libopus's own packet helpers, or computed here from a signal of
 * known amplitude run through the libopus encoder, never copied from what
 * codecs/opus.c happens to return.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include <cmocka.h>
#include <opus.h>

#include "codecs/opus.h"
#include "sfu/base/sfu.h"

/* ------------------------------------------------------------------------ */
/* Fixtures                                                                 */

typedef struct {
  const uint8_t *payload;
  size_t len;
  uint16_t seq;
  uint32_t ts;
  uint32_t arrival_us;
  int marker;
  int pt;
} rec_t;

typedef struct {
  uint8_t *data; /* whole file */
  rec_t *recs;
  size_t n;
} capture_t;

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
         p[3];
}

/* tests/data/opus/<name>, found next to this source file. */
static void load_capture(const char *name, capture_t *c) {
  char path[1024];
  const char *slash = strrchr(__FILE__, '/');
  int dirlen = slash ? (int)(slash - __FILE__) : 1;
  const char *dir = slash ? __FILE__ : ".";
  FILE *f;
  long size;
  size_t off = 0, cap = 64;

  snprintf(path, sizeof(path), "%.*s/data/opus/%s", dirlen, dir, name);
  f = fopen(path, "rb");
  if (f == NULL)
    fail_msg("cannot open %s", path);
  assert_int_equal(fseek(f, 0, SEEK_END), 0);
  size = ftell(f);
  assert_true(size > 0);
  rewind(f);
  c->data = malloc((size_t)size);
  assert_non_null(c->data);
  assert_int_equal(fread(c->data, 1, (size_t)size, f), (size_t)size);
  fclose(f);
  c->recs = malloc(cap * sizeof(rec_t));
  c->n = 0;
  while (off < (size_t)size) {
    const uint8_t *h = c->data + off;
    rec_t *r;
    assert_true(off + 16 <= (size_t)size);
    if (c->n == cap) {
      cap *= 2;
      c->recs = realloc(c->recs, cap * sizeof(rec_t));
    }
    assert_non_null(c->recs);
    r = &c->recs[c->n++];
    r->len = (size_t)h[0] << 8 | h[1];
    r->seq = (uint16_t)(h[2] << 8 | h[3]);
    r->ts = be32(h + 4);
    r->arrival_us = be32(h + 8);
    r->marker = h[12];
    r->pt = h[13];
    r->payload = h + 16;
    off += 16 + r->len;
    assert_true(off <= (size_t)size);
  }
}

static void free_capture(capture_t *c) {
  free(c->recs);
  free(c->data);
}

/* What libopus says about validity and frame count, for comparison. */
static int libopus_frames(const uint8_t *p, size_t len) {
  const unsigned char *frames[48];
  opus_int16 sizes[48];
  unsigned char toc;
  int payload_offset;
  return opus_packet_parse(p, (opus_int32)len, &toc, frames, sizes,
                           &payload_offset);
}

/* ------------------------------------------------------------------------ */
/* TOC on real packets                                                      */

static void check_against_libopus(const uint8_t *p, size_t len,
                                  const sfu_opus_toc_t *t) {
  static const int bw[] = {OPUS_BANDWIDTH_NARROWBAND,
                           OPUS_BANDWIDTH_MEDIUMBAND, OPUS_BANDWIDTH_WIDEBAND,
                           OPUS_BANDWIDTH_SUPERWIDEBAND,
                           OPUS_BANDWIDTH_FULLBAND};
  assert_int_equal(t->frames, opus_packet_get_nb_frames(p, (opus_int32)len));
  assert_int_equal(t->frames, libopus_frames(p, len));
  assert_int_equal(t->stereo + 1, opus_packet_get_nb_channels(p));
  assert_int_equal(bw[t->bandwidth], opus_packet_get_bandwidth(p));
  /* samples per frame at 48 kHz = frame_us * 48 / 1000 */
  assert_int_equal(t->frame_us * 48,
                   opus_packet_get_samples_per_frame(p, 48000) * 1000);
}

static void toc_speech_capture(void **state) {
  capture_t c;
  size_t i;
  load_capture("speech-dtx.bin", &c);
  assert_int_equal(c.n, 557); /* README: 557 packets */
  for (i = 0; i < c.n; i++) {
    sfu_opus_toc_t t;
    assert_int_equal(c.recs[i].pt, 111);
    assert_int_equal(sfu_opus_parse_toc(c.recs[i].payload, c.recs[i].len, &t),
                     0);
    /* opusenc at 24 kb/s, fullband, 20 ms: hybrid FB 20 ms is config 15 */
    assert_int_equal(t.config, 15);
    assert_int_equal(t.mode, SFU_OPUS_MODE_HYBRID);
    assert_int_equal(t.bandwidth, SFU_OPUS_BW_FB);
    assert_int_equal(t.stereo, 0);
    assert_int_equal(t.code, 0);
    assert_int_equal(t.frames, 1);
    assert_int_equal(t.frame_us, 20000);
    check_against_libopus(c.recs[i].payload, c.recs[i].len, &t);
  }
  free_capture(&c);
}

static void toc_tone_capture(void **state) {
  capture_t c;
  size_t i;
  load_capture("tone-stereo.bin", &c);
  assert_int_equal(c.n, 501);
  for (i = 0; i < c.n; i++) {
    sfu_opus_toc_t t;
    assert_int_equal(sfu_opus_parse_toc(c.recs[i].payload, c.recs[i].len, &t),
                     0);
    /* 64 kb/s stereo music-like signal: CELT FB 20 ms is config 31 */
    assert_int_equal(t.config, 31);
    assert_int_equal(t.mode, SFU_OPUS_MODE_CELT);
    assert_int_equal(t.bandwidth, SFU_OPUS_BW_FB);
    assert_int_equal(t.stereo, 1);
    assert_int_equal(t.code, 0);
    assert_int_equal(t.frames, 1);
    assert_int_equal(t.frame_us, 20000);
    check_against_libopus(c.recs[i].payload, c.recs[i].len, &t);
  }
  free_capture(&c);
}

/* Every TOC value as a code 0 packet with a 3-byte frame. */
static void toc_all_configs(void **state) {
  /* RFC 6716 Table 2, spot checks by hand */
  static const struct {
    int config, mode, bw, us;
  } rfc[] = {
      {0, SFU_OPUS_MODE_SILK, SFU_OPUS_BW_NB, 10000},
      {5, SFU_OPUS_MODE_SILK, SFU_OPUS_BW_MB, 20000},
      {11, SFU_OPUS_MODE_SILK, SFU_OPUS_BW_WB, 60000},
      {12, SFU_OPUS_MODE_HYBRID, SFU_OPUS_BW_SWB, 10000},
      {15, SFU_OPUS_MODE_HYBRID, SFU_OPUS_BW_FB, 20000},
      {16, SFU_OPUS_MODE_CELT, SFU_OPUS_BW_NB, 2500},
      {21, SFU_OPUS_MODE_CELT, SFU_OPUS_BW_WB, 5000},
      {26, SFU_OPUS_MODE_CELT, SFU_OPUS_BW_SWB, 10000},
      {31, SFU_OPUS_MODE_CELT, SFU_OPUS_BW_FB, 20000},
  };
  uint8_t pkt[4] = {0, 1, 2, 3};
  sfu_opus_toc_t t;
  size_t i;
  int toc;

  for (toc = 0; toc < 256; toc += 4) { /* code 0 */
    pkt[0] = (uint8_t)toc;
    assert_int_equal(sfu_opus_parse_toc(pkt, sizeof(pkt), &t), 0);
    assert_int_equal(t.config, toc >> 3);
    assert_int_equal(t.stereo, (toc >> 2) & 1);
    check_against_libopus(pkt, sizeof(pkt), &t);
  }
  for (i = 0; i < SFU_ARRAY_SIZE(rfc); i++) {
    pkt[0] = (uint8_t)(rfc[i].config << 3);
    assert_int_equal(sfu_opus_parse_toc(pkt, sizeof(pkt), &t), 0);
    assert_int_equal(t.mode, rfc[i].mode);
    assert_int_equal(t.bandwidth, rfc[i].bw);
    assert_int_equal(t.frame_us, rfc[i].us);
  }
}

/* ------------------------------------------------------------------------ */
/* Codes 0..3, crafted                                                      */

typedef struct {
  const char *what;
  uint8_t bytes[16];
  size_t len;
  int frames; /* expected count, or 0 for SFU_EPROTO */
} craft_t;

/* TOC 0x78 = hybrid FB 20 ms mono; | 1, 2, 3 selects the code.
   TOC 0x18 = SILK NB 60 ms (120 ms cap reached with 2 frames). */
static const craft_t crafted[] = {
    {"empty", {0}, 0, 0},
    {"code0 toc only", {0x78}, 1, 1},
    {"code0 one byte", {0x78, 0xAA}, 2, 1},
    {"code1 two empty frames", {0x79}, 1, 2},
    {"code1 even", {0x79, 1, 2, 3, 4}, 5, 2},
    {"code1 odd", {0x79, 1, 2, 3}, 4, 0},
    {"code2 no length byte", {0x7A}, 1, 0},
    {"code2 0 + 3", {0x7A, 0, 1, 2, 3}, 5, 2},
    {"code2 2 + 1", {0x7A, 2, 1, 2, 3}, 5, 2},
    {"code2 3 + 0", {0x7A, 3, 1, 2, 3}, 5, 2},
    {"code2 length past end", {0x7A, 4, 1, 2, 3}, 5, 0},
    {"code2 two-byte length cut", {0x7A, 252}, 2, 0},
    {"code2 two-byte length past end", {0x7A, 252, 1, 0}, 4, 0},
    {"code3 no count byte", {0x7B}, 1, 0},
    {"code3 zero frames", {0x7B, 0x00}, 2, 0},
    {"code3 cbr 1 empty frame", {0x7B, 0x01}, 2, 1},
    {"code3 cbr 3 x 2", {0x7B, 0x03, 1, 2, 3, 4, 5, 6}, 8, 3},
    {"code3 cbr 3 not dividing 5", {0x7B, 0x03, 1, 2, 3, 4, 5}, 7, 0},
    {"code3 cbr 6 x 20 ms = 120 ms", {0x7B, 0x06}, 2, 6},
    {"code3 cbr 7 x 20 ms > 120 ms", {0x7B, 0x07}, 2, 0},
    {"code3 silk 60 ms x 2", {0x1B, 0x02}, 2, 2},
    {"code3 silk 60 ms x 3", {0x1B, 0x03}, 2, 0},
    {"code3 celt 2.5 ms x 48", {0x83, 0x30}, 2, 48},
    {"code3 celt 2.5 ms x 49", {0x83, 0x31}, 2, 0},
    {"code3 vbr 2 + 3", {0x7B, 0x82, 2, 1, 2, 3, 4, 5}, 8, 2},
    {"code3 vbr 3 frames, 1 + 1 + 0", {0x7B, 0x83, 1, 1, 9, 9}, 6, 3},
    {"code3 vbr first length past end", {0x7B, 0x82, 6, 1, 2, 3, 4, 5}, 8, 0},
    {"code3 vbr lengths sum past end", {0x7B, 0x83, 3, 3, 1, 2, 3, 4, 5}, 9,
     0},
    {"code3 vbr length bytes missing", {0x7B, 0x83, 0}, 3, 0},
    {"code3 vbr two-byte length cut", {0x7B, 0x82, 253}, 3, 0},
    {"code3 padding 2", {0x7B, 0x41, 2, 7, 0, 0}, 6, 1},
    {"code3 padding byte missing", {0x7B, 0x41}, 2, 0},
    {"code3 padding past end", {0x7B, 0x41, 3, 0, 0}, 5, 0},
    {"code3 padding 255 chain cut", {0x7B, 0x41, 255}, 3, 0},
    {"code3 vbr + padding", {0x7B, 0xC2, 1, 1, 7, 8, 0}, 7, 2},
    {"code3 vbr + padding, length eats padding", {0x7B, 0xC2, 1, 3, 7, 8, 0},
     7, 0},
};

static void codes_crafted(void **state) {
  size_t i;
  for (i = 0; i < SFU_ARRAY_SIZE(crafted); i++) {
    const craft_t *c = &crafted[i];
    sfu_opus_toc_t t;
    int rv;
    memset(&t, 0xEE, sizeof(t));
    rv = sfu_opus_parse_toc(c->bytes, c->len, &t);
    if (c->frames == 0) {
      if (rv != SFU_EPROTO)
        fail_msg("%s: expected EPROTO, got %d", c->what, rv);
      assert_int_equal(t.frames, (int)0xEEEEEEEE); /* untouched */
      assert_true(libopus_frames(c->bytes, c->len) < 0);
    } else {
      if (rv != 0 || t.frames != c->frames)
        fail_msg("%s: rv %d frames %d, expected %d", c->what, rv, t.frames,
                 c->frames);
      assert_int_equal(t.code, c->bytes[0] & 3);
      assert_int_equal(libopus_frames(c->bytes, c->len), c->frames);
    }
  }
}

/* Frames above 1275 bytes (R2), including the implicit last one. */
static void codes_frame_size_limit(void **state) {
  static uint8_t pkt[2 + 2 * 1276 + 16];
  sfu_opus_toc_t t;

  memset(pkt, 0x5A, sizeof(pkt));
  pkt[0] = 0x78; /* code 0 */
  assert_int_equal(sfu_opus_parse_toc(pkt, 1 + 1275, &t), 0);
  assert_int_equal(sfu_opus_parse_toc(pkt, 1 + 1276, &t), SFU_EPROTO);
  pkt[0] = 0x79; /* code 1 */
  assert_int_equal(sfu_opus_parse_toc(pkt, 1 + 2 * 1275, &t), 0);
  assert_int_equal(sfu_opus_parse_toc(pkt, 1 + 2 * 1276, &t), SFU_EPROTO);
  pkt[0] = 0x7A; /* code 2, first frame 1275 = 255 + 4 * 255 */
  pkt[1] = 255;
  pkt[2] = 255;
  assert_int_equal(sfu_opus_parse_toc(pkt, 3 + 1275 + 1275, &t), 0);
  assert_int_equal(sfu_opus_parse_toc(pkt, 3 + 1275 + 1276, &t), SFU_EPROTO);
  pkt[0] = 0x7B; /* code 3 CBR, 2 frames */
  pkt[1] = 0x02;
  assert_int_equal(sfu_opus_parse_toc(pkt, 2 + 2 * 1275, &t), 0);
  assert_int_equal(sfu_opus_parse_toc(pkt, 2 + 2 * 1276, &t), SFU_EPROTO);
  assert_true(libopus_frames(pkt, 2 + 2 * 1276) < 0);
  assert_int_equal(sfu_opus_parse_toc(NULL, 3, &t), SFU_EINVAL);
  assert_int_equal(sfu_opus_parse_toc(pkt, 3, NULL), SFU_EINVAL);
}

/* Deterministic random packets: same verdict and count as libopus. Short
   packets with biased bytes so codes 2/3, padding and VBR come up often. */
static void codes_agree_with_libopus(void **state) {
  uint32_t x = 12345;
  uint8_t pkt[64];
  int i, valid = 0;

  for (i = 0; i < 200000; i++) {
    size_t len, j;
    sfu_opus_toc_t t;
    int ours, theirs;
    x = x * 1664525u + 1013904223u;
    len = (x >> 24) % (sizeof(pkt) + 1);
    for (j = 0; j < len; j++) {
      x = x * 1664525u + 1013904223u;
      pkt[j] = (uint8_t)(x >> 24);
      if (j == 2 && (x & 0x100))
        pkt[j] = (uint8_t)(x >> 9) & 7; /* small first length or pad */
    }
    if (len > 1 && (x & 0x200))
      pkt[1] = (uint8_t)((pkt[1] & 0xC0) | ((x >> 10) & 3)); /* M 0..3 */
    ours = sfu_opus_parse_toc(pkt, len, &t);
    theirs = libopus_frames(pkt, len);
    if ((ours == 0) != (theirs >= 0) || (ours == 0 && t.frames != theirs))
      fail_msg("packet %d len %zu: ours %d/%d libopus %d", i, len, ours,
               ours == 0 ? t.frames : -1, theirs);
    valid += ours == 0;
  }
  assert_true(valid > 20000); /* the generator does reach valid packets */
}

/* ------------------------------------------------------------------------ */
/* DTX                                                                      */

static void dtx_crafted(void **state) {
  static const uint8_t toc_only[] = {0x78};
  static const uint8_t one_byte[] = {0x78, 0x00};
  static const uint8_t code1_1_1[] = {0x79, 0x10, 0x20};
  static const uint8_t code3_3x1[] = {0x7B, 0x03, 1, 2, 3};
  static const uint8_t code3_pad[] = {0x7B, 0x41, 5, 0, 0, 0, 0, 0};
  static const uint8_t code0_3[] = {0x78, 1, 2};
  static const uint8_t code2_0_2[] = {0x7A, 0, 1, 2};
  static const uint8_t bad[] = {0x79, 1, 2, 3};

  assert_int_equal(sfu_opus_is_dtx(NULL, 0), 1); /* no payload at all */
  assert_int_equal(sfu_opus_is_dtx(toc_only, sizeof(toc_only)), 1);
  assert_int_equal(sfu_opus_is_dtx(one_byte, sizeof(one_byte)), 1);
  assert_int_equal(sfu_opus_is_dtx(code1_1_1, sizeof(code1_1_1)), 1);
  assert_int_equal(sfu_opus_is_dtx(code3_3x1, sizeof(code3_3x1)), 1);
  assert_int_equal(sfu_opus_is_dtx(code3_pad, sizeof(code3_pad)), 1);
  assert_int_equal(sfu_opus_is_dtx(code0_3, sizeof(code0_3)), 0);
  assert_int_equal(sfu_opus_is_dtx(code2_0_2, sizeof(code2_0_2)), 0);
  assert_int_equal(sfu_opus_is_dtx(bad, sizeof(bad)), 0);
}

/*
 * The speech capture has no DTX packets in it: counted independently with
 * python over the pcap (payload length <= 2: 0 of 557; smallest payload 24
 * bytes). GStreamer's rtpopuspay dtx=true drops the 1-byte packets opusenc
 * produces in DTX instead of sending them, so DTX shows as RTP timestamp
 * jumps: 4 of them, each 20160 ticks (21 frames of 960 = one frame sent
 * per 420 ms, libopus's DTX refresh), each with the marker bit set on the
 * packet after it. All 4 are in the trailing silence after 11.0 s.
 */
static void dtx_speech_capture(void **state) {
  capture_t c;
  size_t i;
  int dtx = 0, gaps = 0, markers = 0;

  load_capture("speech-dtx.bin", &c);
  for (i = 0; i < c.n; i++) {
    dtx += sfu_opus_is_dtx(c.recs[i].payload, c.recs[i].len);
    markers += c.recs[i].marker;
    if (i > 0 && c.recs[i].ts - c.recs[i - 1].ts > 960) {
      assert_int_equal(c.recs[i].ts - c.recs[i - 1].ts, 21 * 960);
      assert_int_equal(c.recs[i].marker, 1);
      assert_true(c.recs[i].arrival_us > 11000000);
      gaps++;
    }
  }
  assert_int_equal(dtx, 0);
  assert_int_equal(gaps, 4);
  assert_int_equal(markers, 5); /* the first packet has it too */
  free_capture(&c);
}

/*
 * Real DTX packets from libopus: 0.6 s of tone then 1.4 s of digital
 * silence through a VoIP encoder with DTX on. Whatever the encoder emits
 * at <= 2 bytes must be flagged, and nothing else.
 */
static void dtx_libopus_encoder(void **state) {
  OpusEncoder *enc;
  float pcm[320];
  unsigned char pkt[400];
  int err, f, i, small = 0, flagged = 0;

  enc = opus_encoder_create(16000, 1, OPUS_APPLICATION_VOIP, &err);
  assert_int_equal(err, OPUS_OK);
  opus_encoder_ctl(enc, OPUS_SET_BITRATE(24000));
  opus_encoder_ctl(enc, OPUS_SET_DTX(1));
  for (f = 0; f < 100; f++) {
    int n, d;
    for (i = 0; i < 320; i++)
      pcm[i] = f < 30 ? 0.1f * sinf(2.0f * (float)M_PI * 440.0f *
                                    (float)(f * 320 + i) / 16000.0f)
                      : 0.0f;
    n = opus_encode_float(enc, pcm, 320, pkt, sizeof(pkt));
    assert_true(n > 0);
    d = sfu_opus_is_dtx(pkt, (size_t)n);
    assert_int_equal(d, n <= 2);
    small += n <= 2;
    flagged += d;
  }
  opus_encoder_destroy(enc);
  assert_true(small > 40); /* DTX did kick in (58 with libopus 1.3.1) */
  assert_int_equal(flagged, small);
}

/* ------------------------------------------------------------------------ */
/* Meter                                                                    */

/* RFC 6464 level of a sine with the given peak: RMS = peak / sqrt(2). */
static int sine_level(double peak) {
  return (int)floor(-20.0 * log10(peak / sqrt(2.0)) + 0.5);
}

/*
 * Encode `frames` 20 ms frames of a 440 Hz sine (peak `peak`, same on all
 * channels) at 48 kHz and return the meter level of the last packet, after
 * checking every packet from the 4th on is within 1 of the 4th (steady;
 * at low bitrates the coded level wobbles by a fraction of a dB).
 */
static int encoded_sine_level(double peak, int channels, int bitrate,
                              int frames) {
  OpusEncoder *enc;
  sfu_opus_meter_t *m;
  float pcm[960 * 2];
  unsigned char pkt[1500];
  int err, f, i, c, lv = -1, steady = -1;

  enc = opus_encoder_create(48000, channels, OPUS_APPLICATION_AUDIO, &err);
  assert_int_equal(err, OPUS_OK);
  opus_encoder_ctl(enc, OPUS_SET_BITRATE(bitrate));
  assert_int_equal(sfu_opus_meter_create(&m), 0);
  for (f = 0; f < frames; f++) {
    int n;
    for (i = 0; i < 960; i++) {
      double t = (double)(f * 960 + i) / 48000.0;
      for (c = 0; c < channels; c++)
        pcm[i * channels + c] = (float)(peak * sin(2.0 * M_PI * 440.0 * t));
    }
    n = opus_encode_float(enc, pcm, 960, pkt, sizeof(pkt));
    assert_true(n > 0);
    lv = sfu_opus_meter_feed(m, pkt, (size_t)n);
    assert_true(lv >= 0 && lv <= 127);
    if (f == 3)
      steady = lv;
    else if (f > 3)
      assert_in_range(lv, steady - 1, steady + 1);
  }
  assert_int_equal(sfu_opus_meter_errors(m), 0);
  assert_int_equal(sfu_opus_meter_packets(m), (uint64_t)frames);
  sfu_opus_meter_destroy(m);
  opus_encoder_destroy(enc);
  return lv;
}

static void meter_known_sines(void **state) {
  /* RMS -20 dBov: peak 0.1 * sqrt(2) -> level 20 */
  assert_int_equal(sine_level(0.1 * sqrt(2.0)), 20);
  assert_in_range(encoded_sine_level(0.1 * sqrt(2.0), 1, 64000, 50), 19, 21);
  /* peak -20 dBFS: RMS -23.01 dBov -> level 23 */
  assert_int_equal(sine_level(0.1), 23);
  assert_in_range(encoded_sine_level(0.1, 1, 64000, 50), 22, 24);
  /* peak -40 dBFS -> level 43, through a low bitrate */
  assert_int_equal(sine_level(0.01), 43);
  assert_in_range(encoded_sine_level(0.01, 1, 16000, 50), 42, 44);
  /* digital silence decodes to silence */
  assert_true(encoded_sine_level(0.0, 1, 64000, 20) >= 100);
  assert_true(encoded_sine_level(0.0, 2, 64000, 20) >= 100);
}

/*
 * The tone capture is GStreamer's audiotestsrc at its default volume 0.8,
 * i.e. a 440 Hz sine peaking at 0.8 (-1.94 dBFS), RMS -4.95 dBov, level 5.
 * Reference: the same sine encoded here the way the capture was (stereo,
 * 64 kb/s). Every packet after the first two (encoder start-up) must be
 * within 1 of that, except the last: 10 s are 500 frames, and packet 501 is
 * opusenc flushing its 6.5 ms lookahead at end of stream, padded with
 * zeros. Its RMS is that of 6.5 ms of tone spread over 20 ms, lower by
 * 10 * log10(20 / 6.5) = 4.9 dB.
 */
static void meter_tone_capture(void **state) {
  capture_t c;
  sfu_opus_meter_t *m;
  size_t i;
  int ref = encoded_sine_level(0.8, 2, 64000, 25);

  assert_int_equal(sine_level(0.8), 5);
  assert_in_range(ref, 4, 6);
  load_capture("tone-stereo.bin", &c);
  assert_int_equal(sfu_opus_meter_create(&m), 0);
  for (i = 0; i < c.n; i++) {
    int lv = sfu_opus_meter_feed(m, c.recs[i].payload, c.recs[i].len);
    int want = ref;
    if (i == c.n - 1)
      want = ref + (int)floor(10.0 * log10(20.0 / 6.5) + 0.5);
    if (i >= 2 && (lv < want - 1 || lv > want + 1))
      fail_msg("packet %zu level %d, expected %d", i, lv, want);
  }
  assert_int_equal(sfu_opus_meter_errors(m), 0);
  sfu_opus_meter_destroy(m);
  free_capture(&c);
}

/* Speech: loud words, quiet pauses, never a decode error. */
static void meter_speech_capture(void **state) {
  capture_t c;
  sfu_opus_meter_t *m;
  size_t i;
  int loud = 0, quiet = 0;

  load_capture("speech-dtx.bin", &c);
  assert_int_equal(sfu_opus_meter_create(&m), 0);
  for (i = 0; i < c.n; i++) {
    int lv = sfu_opus_meter_feed(m, c.recs[i].payload, c.recs[i].len);
    assert_in_range(lv, 0, 127);
    loud += lv <= 30;
    quiet += lv >= 90;
  }
  assert_true(loud > 150);  /* espeak at full level: words at -10..-30 dBov */
  assert_true(quiet > 100); /* lead-in, pauses and the DTX tail */
  assert_int_equal(sfu_opus_meter_errors(m), 0);
  assert_int_equal(sfu_opus_meter_packets(m), c.n);
  sfu_opus_meter_destroy(m);
  free_capture(&c);
}

static void meter_errors_and_loss(void **state) {
  static const uint8_t odd_code1[] = {0x79, 1, 2, 3};
  static const uint8_t no_count[] = {0x7B};
  capture_t c;
  sfu_opus_meter_t *m;
  int lv, i;

  assert_int_equal(sfu_opus_meter_create(NULL), SFU_EINVAL);
  assert_int_equal(sfu_opus_meter_feed(NULL, odd_code1, 4), SFU_EINVAL);
  sfu_opus_meter_destroy(NULL);

  load_capture("tone-stereo.bin", &c);
  assert_int_equal(sfu_opus_meter_create(&m), 0);
  /* PLC before anything was decoded: 20 ms of silence */
  assert_int_equal(sfu_opus_meter_feed(m, NULL, 0), 127);
  for (i = 0; i < 10; i++)
    assert_in_range(sfu_opus_meter_feed(m, c.recs[i].payload, c.recs[i].len),
                     0, 10);
  assert_int_equal(sfu_opus_meter_feed(m, odd_code1, sizeof(odd_code1)),
                   SFU_EPROTO);
  assert_int_equal(sfu_opus_meter_feed(m, no_count, sizeof(no_count)),
                   SFU_EPROTO);
  assert_int_equal(sfu_opus_meter_errors(m), 2);
  /* loss: concealment continues the tone, fading */
  lv = sfu_opus_meter_feed(m, NULL, 0);
  assert_in_range(lv, 0, 127);
  lv = sfu_opus_meter_feed(m, c.recs[10].payload, 0);
  assert_in_range(lv, 0, 127);
  /* the decoder still works after errors and a reset */
  sfu_opus_meter_reset(m);
  for (i = 11; i < 20; i++)
    lv = sfu_opus_meter_feed(m, c.recs[i].payload, c.recs[i].len);
  assert_in_range(lv, 4, 6);
  assert_int_equal(sfu_opus_meter_errors(m), 2);
  assert_int_equal(sfu_opus_meter_packets(m), 1 + 10 + 2 + 9);
  sfu_opus_meter_destroy(m);
  free_capture(&c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(toc_speech_capture),
      cmocka_unit_test(toc_tone_capture),
      cmocka_unit_test(toc_all_configs),
      cmocka_unit_test(codes_crafted),
      cmocka_unit_test(codes_frame_size_limit),
      cmocka_unit_test(codes_agree_with_libopus),
      cmocka_unit_test(dtx_crafted),
      cmocka_unit_test(dtx_speech_capture),
      cmocka_unit_test(dtx_libopus_encoder),
      cmocka_unit_test(meter_known_sines),
      cmocka_unit_test(meter_tone_capture),
      cmocka_unit_test(meter_speech_capture),
      cmocka_unit_test(meter_errors_and_loss),
  };
  return cmocka_run_group_tests_name("opus", tests, NULL, NULL);
}
