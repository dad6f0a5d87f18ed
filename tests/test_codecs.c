/*
 * test_codecs.c -- video payload views: codecs/vp8.c, vp9.c, h264.c, av1.c
 * and the lookup in codecs/video.h.
 *
 * Two kinds of test.
 *
 * Hand-built payloads, one or more per branch of each parser: descriptor
 * extensions, 7- and 15-bit picture ids, SS and P_DIFF lists, STAP-A with
 * SPS/PPS/IDR, FU-A start/middle/end, AV1 W/Z/N and OBU extensions, and
 * every malformed-framing case. SPS and AV1/VP9 sequence headers are
 * written here with a bit writer from the syntax tables, so the expected
 * sizes are the ones put in. Every payload is also parsed cut at every
 * length, from a heap copy of exactly that size, so ASan catches a read
 * past the end.
 *
 * Real captures (tests/data/pcaps, read
 * with sfu/media/capture.c). The expected numbers were established
 * without this code, by an independent Python script:
 *
 *   - keyframes and picture sizes: each capture was depacketized in Python
 *     (descriptor stripping for VP8/VP9, STAP-A/FU-A reassembly for H.264,
 *     OBU reassembly into a low-overhead bitstream for AV1) and decoded
 *     with PyAV (libavcodec vp8/vp9/h264, libdav1d). A keyframe is a
 *     decoded frame with key_frame set, counted once per RTP timestamp
 *     (the packet's timestamp passed through as pts); the size is the
 *     decoded frame's. The VP8 counts also match the captures' README
 *     (3 keyframes each, 240x180 and 1080x720). For H.264 the README says
 *     496x384 -> 640x480: 496x384 is the macroblock-aligned size, and the
 *     decoder outputs the SPS-cropped 494x370, which is what a receiver
 *     sees and what the parser reports.
 *   - frame starts: from the RTP headers alone. A packet whose timestamp
 *     differs from the previous packet's, with the sequence number one
 *     higher, is the first packet of a frame; so is each capture's first
 *     packet (each starts on a keyframe, per the decoder). A packet with
 *     the previous packet's timestamp and the next sequence number is
 *     mid-frame. After a gap nothing can be said. H.264 has 3 mid-frame
 *     packets that do begin an access unit's IDR slice: an FU-A IDR start
 *     right after an SPS+PPS STAP-A of the same timestamp (seen by listing
 *     NAL types per packet).
 *   - malformed: str0m-h264's packet seq 19388 is a STAP-A (SPS, PPS, IDR)
 *     whose last unit claims 1021 bytes where 994 are left (the pcap
 *     record is whole: UDP length 1051 = 12 + 20 bytes of RTP header and
 *     extensions + 1019). RFC 6184 framing is broken, so the parser says
 *     SFU_EINVAL and the keyframe in it (the decoder's 5th, the first at
 *     640x480) is not counted: 8 decoded keyframes, 7 found.
 *
 *   capture             pkts  bad  keyframes  sizes               frame
 *                                                                 starts / mid
 *   str0m-vp8.pcap       104   0   3          240x180             101 / 3
 *   membrane-input_vp8   410   0   3          1080x720            300 / 110
 *   str0m-h264.pcap      298   1   7 (of 8)   4x 494x370,         267 / 28
 *                                             then 3x 640x480
 *   str0m-vp9.pcap       316   0   1          494x371              27 / 10
 *   str0m-av1.pcap       201   0   1          640x480              45 / 156
 *
 * (str0m-vp9 has 279 sequence gaps, so most of its packets are neither.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codecs/av1.h"
#include "codecs/h264.h"
#include "codecs/video.h"
#include "codecs/vp8.h"
#include "codecs/vp9.h"
#include "sfu/media/rtp.h"
#include "sfu/base/sfu.h"
#include "sfu/media/capture.h"

/* ---- helpers ---------------------------------------------------------- */

/* Parses a heap copy of exactly len bytes, so ASan sees any overread. */
static int parse(sfu_video_parse_fn fn, const uint8_t *p, size_t len,
                 sfu_video_info_t *out) {
  uint8_t *copy = malloc(len ? len : 1);
  int rv;

  assert_non_null(copy);
  memcpy(copy, p, len);
  rv = fn(copy, len, out);
  free(copy);
  return rv;
}

/*
 * Every prefix of p parses to 0 or SFU_EINVAL without reading past its
 * end, and the whole of p parses to 0 with the same result as `want`.
 */
static void sweep(sfu_video_parse_fn fn, const uint8_t *p, size_t len) {
  sfu_video_info_t v;
  size_t n;
  int rv;

  for (n = 0; n <= len; n++) {
    rv = parse(fn, p, n, &v);
    assert_true(rv == 0 || rv == SFU_EINVAL);
  }
}

#define PARSE_OK(fn, arr, v)                                                 \
  do {                                                                       \
    assert_int_equal(parse(fn, arr, sizeof(arr), v), 0);                     \
    sweep(fn, arr, sizeof(arr));                                             \
  } while (0)

#define PARSE_BAD(fn, arr)                                                   \
  do {                                                                       \
    sfu_video_info_t bad_;                                                   \
    assert_int_equal(parse(fn, arr, sizeof(arr), &bad_), SFU_EINVAL);        \
  } while (0)

static void assert_no_layers(const sfu_video_info_t *v) {
  assert_int_equal(v->tid, -1);
  assert_int_equal(v->sid, -1);
  assert_int_equal(v->picture_id, -1);
  assert_int_equal(v->pid_bits, 0);
  assert_int_equal(v->tl0picidx, -1);
  assert_int_equal(v->switch_up, 0);
}

/* MSB-first bit writer for building headers from the syntax tables. */
typedef struct {
  uint8_t b[512];
  size_t bits;
} bw_t;

static void bw_put(bw_t *w, uint32_t v, int n) {
  int i;
  for (i = n - 1; i >= 0; i--) {
    size_t byte = w->bits >> 3;
    assert_true(byte < sizeof(w->b));
    if ((w->bits & 7) == 0)
      w->b[byte] = 0;
    if ((v >> i) & 1)
      w->b[byte] |= (uint8_t)(0x80 >> (w->bits & 7));
    w->bits++;
  }
}

static void bw_ue(bw_t *w, uint32_t v) {
  uint64_t x = (uint64_t)v + 1;
  int len = 0;
  while ((x >> len) > 1)
    len++;
  bw_put(w, 0, len);
  bw_put(w, 1, 1);
  if (len)
    bw_put(w, (uint32_t)(x & ((1ull << len) - 1)), len);
}

static void bw_se(bw_t *w, int32_t v) {
  bw_ue(w, v > 0 ? (uint32_t)(2 * v - 1) : (uint32_t)(-2 * (int64_t)v));
}

/* Pads with rbsp_trailing_bits (a one, then zeros) and returns the bytes. */
static size_t bw_finish(bw_t *w) {
  bw_put(w, 1, 1);
  while (w->bits & 7)
    bw_put(w, 0, 1);
  return w->bits / 8;
}

/* ---- lookup ----------------------------------------------------------- */

static void lookup_by_name(void **state) {
  assert_ptr_equal(sfu_video_parser("VP8"), sfu_vp8_parse);
  assert_ptr_equal(sfu_video_parser("vp8"), sfu_vp8_parse);
  assert_ptr_equal(sfu_video_parser("Vp9"), sfu_vp9_parse);
  assert_ptr_equal(sfu_video_parser("h264"), sfu_h264_parse);
  assert_ptr_equal(sfu_video_parser("H264"), sfu_h264_parse);
  assert_ptr_equal(sfu_video_parser("AV1"), sfu_av1_parse);
  assert_ptr_equal(sfu_video_parser("av1x"), sfu_av1_parse);
  assert_null(sfu_video_parser("H265"));
  assert_null(sfu_video_parser("opus"));
  assert_null(sfu_video_parser(""));
  assert_null(sfu_video_parser("VP8 "));
  assert_null(sfu_video_parser(NULL));
}

static void null_arguments(void **state) {
  static const uint8_t one[4] = {0x10, 0x00, 0x00, 0x00};
  sfu_video_info_t v;
  assert_int_equal(sfu_vp8_parse(NULL, 4, &v), SFU_EINVAL);
  assert_int_equal(sfu_vp8_parse(one, 4, NULL), SFU_EINVAL);
  assert_int_equal(sfu_vp9_parse(NULL, 4, &v), SFU_EINVAL);
  assert_int_equal(sfu_vp9_parse(one, 4, NULL), SFU_EINVAL);
  assert_int_equal(sfu_h264_parse(NULL, 4, &v), SFU_EINVAL);
  assert_int_equal(sfu_h264_parse(one, 4, NULL), SFU_EINVAL);
  assert_int_equal(sfu_av1_parse(NULL, 4, &v), SFU_EINVAL);
  assert_int_equal(sfu_av1_parse(one, 4, NULL), SFU_EINVAL);
  assert_int_equal(sfu_vp8_rewrite(NULL, 4, 1, 1), SFU_EINVAL);
  assert_int_equal(sfu_vp8_parse(one, 0, &v), SFU_EINVAL);
  assert_int_equal(sfu_vp9_parse(one, 0, &v), SFU_EINVAL);
  assert_int_equal(sfu_h264_parse(one, 0, &v), SFU_EINVAL);
  assert_int_equal(sfu_av1_parse(one, 0, &v), SFU_EINVAL);
}

/* ---- VP8 -------------------------------------------------------------- */

/* Keyframe 640x480: frame tag (P = 0), start code, LE16 sizes. */
#define VP8_KEY_HDR 0x50, 0x42, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01

static void vp8_minimal_keyframe(void **state) {
  static const uint8_t p[] = {0x10, VP8_KEY_HDR, 0xaa};
  sfu_video_info_t v;
  PARSE_OK(sfu_vp8_parse, p, &v);
  assert_int_equal(v.keyframe, 1);
  assert_int_equal(v.begins_frame, 1);
  assert_int_equal(v.width, 640);
  assert_int_equal(v.height, 480);
  assert_no_layers(&v);
}

static void vp8_frame_positions(void **state) {
  static const uint8_t inter[] = {0x10, 0x51, 0x42, 0x00, 0x12}; /* P = 1 */
  static const uint8_t cont[] = {0x00, VP8_KEY_HDR};             /* S = 0 */
  static const uint8_t part1[] = {0x11, VP8_KEY_HDR};            /* PID 1 */
  static const uint8_t nonref[] = {0x30, VP8_KEY_HDR};           /* N = 1 */
  sfu_video_info_t v;

  PARSE_OK(sfu_vp8_parse, inter, &v);
  assert_int_equal(v.begins_frame, 1);
  assert_int_equal(v.keyframe, 0);
  assert_int_equal(v.width, 0);

  /* A keyframe header in the wrong place is just frame data. */
  PARSE_OK(sfu_vp8_parse, cont, &v);
  assert_int_equal(v.begins_frame, 0);
  assert_int_equal(v.keyframe, 0);
  assert_int_equal(v.width, 0);
  PARSE_OK(sfu_vp8_parse, part1, &v);
  assert_int_equal(v.begins_frame, 0);
  assert_int_equal(v.keyframe, 0);

  PARSE_OK(sfu_vp8_parse, nonref, &v);
  assert_int_equal(v.begins_frame, 1);
  assert_int_equal(v.keyframe, 1);
}

static void vp8_keyframe_header_variants(void **state) {
  /* scaling bits set on both sizes: 0xC000 | 1280, 0x4000 | 720 */
  static const uint8_t scaled[] = {0x10, 0x50, 0x42, 0x00, 0x9d, 0x01,
                                   0x2a, 0x00, 0xc5, 0xd0, 0x42};
  /* wrong start code: keyframe by the P bit, but no size */
  static const uint8_t badsc[] = {0x10, 0x50, 0x42, 0x00, 0x9d, 0x01,
                                  0x2b, 0x80, 0x02, 0xe0, 0x01};
  /* keyframe first packet cut before the sizes */
  static const uint8_t shorthdr[] = {0x10, 0x50, 0x42, 0x00, 0x9d, 0x01,
                                     0x2a, 0x80, 0x02, 0xe0};
  sfu_video_info_t v;

  PARSE_OK(sfu_vp8_parse, scaled, &v);
  assert_int_equal(v.keyframe, 1);
  assert_int_equal(v.width, 1280);
  assert_int_equal(v.height, 720);

  PARSE_OK(sfu_vp8_parse, badsc, &v);
  assert_int_equal(v.keyframe, 1);
  assert_int_equal(v.width, 0);
  assert_int_equal(v.height, 0);

  PARSE_OK(sfu_vp8_parse, shorthdr, &v);
  assert_int_equal(v.keyframe, 1);
  assert_int_equal(v.width, 0);
}

static void vp8_extensions(void **state) {
  /* X, I with a 7-bit id 0x55 */
  static const uint8_t i7[] = {0x90, 0x80, 0x55, VP8_KEY_HDR};
  /* X, I with a 15-bit id 0x1234 */
  static const uint8_t i15[] = {0x90, 0x80, 0x92, 0x34, VP8_KEY_HDR};
  /* X, I (15-bit 0x7fff), L = 0xfe, T: TID 2, Y 1, KEYIDX 5 */
  static const uint8_t ilt[] = {0x90, 0xe0, 0xff, 0xff, 0xfe, 0xa5,
                                VP8_KEY_HDR};
  /* X, L, T: TID 1, Y 0 */
  static const uint8_t lt[] = {0x90, 0x60, 0x07, 0x40, VP8_KEY_HDR};
  /* X, K only: the byte is there but carries no TID */
  static const uint8_t k[] = {0x90, 0x10, 0xe3, VP8_KEY_HDR};
  /* X with no field flagged */
  static const uint8_t x0[] = {0x90, 0x00, VP8_KEY_HDR};
  /* T and K together, non-start packet */
  static const uint8_t tk[] = {0x80, 0x30, 0x7f, 0x00};
  sfu_video_info_t v;

  PARSE_OK(sfu_vp8_parse, i7, &v);
  assert_int_equal(v.picture_id, 0x55);
  assert_int_equal(v.pid_bits, 7);
  assert_int_equal(v.tl0picidx, -1);
  assert_int_equal(v.tid, -1);
  assert_int_equal(v.keyframe, 1);
  assert_int_equal(v.width, 640);

  PARSE_OK(sfu_vp8_parse, i15, &v);
  assert_int_equal(v.picture_id, 0x1234);
  assert_int_equal(v.pid_bits, 15);
  assert_int_equal(v.keyframe, 1);
  assert_int_equal(v.height, 480);

  PARSE_OK(sfu_vp8_parse, ilt, &v);
  assert_int_equal(v.picture_id, 0x7fff);
  assert_int_equal(v.pid_bits, 15);
  assert_int_equal(v.tl0picidx, 0xfe);
  assert_int_equal(v.tid, 2);
  assert_int_equal(v.switch_up, 1);
  assert_int_equal(v.sid, -1);
  assert_int_equal(v.keyframe, 1);
  assert_int_equal(v.width, 640);

  PARSE_OK(sfu_vp8_parse, lt, &v);
  assert_int_equal(v.picture_id, -1);
  assert_int_equal(v.tl0picidx, 7);
  assert_int_equal(v.tid, 1);
  assert_int_equal(v.switch_up, 0);
  assert_int_equal(v.width, 640);

  PARSE_OK(sfu_vp8_parse, k, &v);
  assert_int_equal(v.tid, -1);
  assert_int_equal(v.switch_up, 0);
  assert_int_equal(v.keyframe, 1);
  assert_int_equal(v.width, 640);

  PARSE_OK(sfu_vp8_parse, x0, &v);
  assert_no_layers(&v);
  assert_int_equal(v.width, 640);

  PARSE_OK(sfu_vp8_parse, tk, &v);
  assert_int_equal(v.tid, 1);
  assert_int_equal(v.switch_up, 1);
  assert_int_equal(v.begins_frame, 0);
}

static void vp8_malformed(void **state) {
  static const uint8_t only_x[] = {0x90};
  static const uint8_t no_i[] = {0x90, 0x80};
  static const uint8_t half_i15[] = {0x90, 0x80, 0x92};
  static const uint8_t no_l[] = {0x90, 0xc0, 0x01};
  static const uint8_t no_t[] = {0x90, 0xe0, 0x01, 0x02};
  static const uint8_t no_k[] = {0x90, 0x10};
  static const uint8_t no_payload[] = {0x90, 0xe0, 0x81, 0x02, 0x03, 0x40};
  static const uint8_t bare[] = {0x10};
  PARSE_BAD(sfu_vp8_parse, only_x);
  PARSE_BAD(sfu_vp8_parse, no_i);
  PARSE_BAD(sfu_vp8_parse, half_i15);
  PARSE_BAD(sfu_vp8_parse, no_l);
  PARSE_BAD(sfu_vp8_parse, no_t);
  PARSE_BAD(sfu_vp8_parse, no_k);
  PARSE_BAD(sfu_vp8_parse, no_payload);
  PARSE_BAD(sfu_vp8_parse, bare);
}

static void vp8_rewrite(void **state) {
  static const uint8_t i7[] = {0x90, 0xc0, 0x55, 0x10, VP8_KEY_HDR};
  static const uint8_t i15[] = {0x90, 0xe0, 0x92, 0x34, 0x10, 0x40, 0xaa};
  static const uint8_t none[] = {0x10, VP8_KEY_HDR};
  static const uint8_t bad[] = {0x90, 0xe0, 0x92};
  uint8_t b[32];
  sfu_video_info_t v;

  /* 7-bit id stays 7 bits; only its byte and TL0PICIDX change */
  memcpy(b, i7, sizeof(i7));
  assert_int_equal(sfu_vp8_rewrite(b, sizeof(i7), 0x1ff, 0x1ab), 0);
  assert_int_equal(b[2], 0x7f);
  assert_int_equal(b[3], 0xab);
  assert_memory_equal(b + 4, i7 + 4, sizeof(i7) - 4);
  assert_int_equal(sfu_vp8_parse(b, sizeof(i7), &v), 0);
  assert_int_equal(v.picture_id, 0x7f);
  assert_int_equal(v.pid_bits, 7);
  assert_int_equal(v.tl0picidx, 0xab);
  assert_int_equal(v.keyframe, 1);
  assert_int_equal(v.width, 640);

  /* 15-bit: M stays set, high bits masked to 15 */
  memcpy(b, i15, sizeof(i15));
  assert_int_equal(sfu_vp8_rewrite(b, sizeof(i15), 0x18001, 3), 0);
  assert_int_equal(b[2], 0x80);
  assert_int_equal(b[3], 0x01);
  assert_int_equal(b[4], 3);
  assert_int_equal(b[5], 0x40); /* T byte untouched */
  assert_int_equal(sfu_vp8_parse(b, sizeof(i15), &v), 0);
  assert_int_equal(v.picture_id, 1);
  assert_int_equal(v.pid_bits, 15);
  assert_int_equal(v.tl0picidx, 3);
  assert_int_equal(v.tid, 1);

  /* negative leaves a field as it is */
  memcpy(b, i15, sizeof(i15));
  assert_int_equal(sfu_vp8_rewrite(b, sizeof(i15), -1, 9), 0);
  assert_int_equal(b[2], 0x92);
  assert_int_equal(b[3], 0x34);
  assert_int_equal(b[4], 9);
  memcpy(b, i15, sizeof(i15));
  assert_int_equal(sfu_vp8_rewrite(b, sizeof(i15), 0x4321, -1), 0);
  assert_int_equal(b[2], 0xc3);
  assert_int_equal(b[3], 0x21);
  assert_int_equal(b[4], 0x10);

  /* no fields: nothing to write, nothing written */
  memcpy(b, none, sizeof(none));
  assert_int_equal(sfu_vp8_rewrite(b, sizeof(none), 5, 5), 0);
  assert_memory_equal(b, none, sizeof(none));

  /* malformed: refused, untouched */
  memcpy(b, bad, sizeof(bad));
  assert_int_equal(sfu_vp8_rewrite(b, sizeof(bad), 5, 5), SFU_EINVAL);
  assert_memory_equal(b, bad, sizeof(bad));
  assert_int_equal(sfu_vp8_rewrite(b, 0, 5, 5), SFU_EINVAL);
}

/* ---- VP9 -------------------------------------------------------------- */

/*
 * A keyframe uncompressed header, profile 0..3, color space cs:
 * frame_marker 2, profile bits, [reserved], show_existing 0, frame_type 0,
 * show_frame 1, error_res 0, sync code, color_config, sizes - 1.
 */
static size_t vp9_key_header(uint8_t *out, int profile, int cs, int w,
                             int h) {
  bw_t b = {.bits = 0};
  bw_put(&b, 2, 2);
  bw_put(&b, (uint32_t)profile & 1, 1);
  bw_put(&b, (uint32_t)profile >> 1, 1);
  if (profile == 3)
    bw_put(&b, 0, 1);
  bw_put(&b, 0, 1); /* show_existing_frame */
  bw_put(&b, 0, 1); /* frame_type KEY */
  bw_put(&b, 1, 1); /* show_frame */
  bw_put(&b, 0, 1); /* error_resilient_mode */
  bw_put(&b, 0x498342, 24);
  if (profile >= 2)
    bw_put(&b, 1, 1); /* ten_or_twelve_bit */
  bw_put(&b, (uint32_t)cs, 3);
  if (cs != 7) {
    bw_put(&b, 0, 1);
    if (profile == 1 || profile == 3)
      bw_put(&b, 0x2, 3); /* subsampling_x 1, subsampling_y 0, reserved */
  } else if (profile == 1 || profile == 3) {
    bw_put(&b, 0, 1);
  }
  bw_put(&b, (uint32_t)w - 1, 16);
  bw_put(&b, (uint32_t)h - 1, 16);
  bw_put(&b, 0x5a, 8); /* refresh_frame_context etc.: whatever follows */
  memcpy(out, b.b, (b.bits + 7) / 8);
  return (b.bits + 7) / 8;
}

static void vp9_descriptor_fields(void **state) {
  /* I (15-bit 0x2345), L: TID 3 U 1 SID 0 D 0, TL0PICIDX 0x77; B, E */
  static const uint8_t nonflex[] = {0xac, 0xa3, 0x45, 0x70, 0x77, 0x00};
  /* I (7-bit 0x11), L: TID 1 U 0 SID 2 D 1, flexible: no TL0PICIDX;
   * P with three P_DIFFs (N 1, 1, 0) */
  static const uint8_t flex[] = {0xf0, 0x11, 0x25, 0x03, 0x05, 0x06, 0x00};
  /* no I, no L: only the B bit */
  static const uint8_t bare[] = {0x08, 0x82, 0x00};
  /* flexible, P, one P_DIFF, no I and no L */
  static const uint8_t onediff[] = {0x50, 0x02, 0x00};
  sfu_video_info_t v;

  PARSE_OK(sfu_vp9_parse, nonflex, &v);
  assert_int_equal(v.picture_id, 0x2345);
  assert_int_equal(v.pid_bits, 15);
  assert_int_equal(v.tid, 3);
  assert_int_equal(v.switch_up, 1);
  assert_int_equal(v.sid, 0);
  assert_int_equal(v.tl0picidx, 0x77);
  assert_int_equal(v.begins_frame, 1);
  assert_int_equal(v.ends_frame, 1); /* E */
  assert_int_equal(v.keyframe, 1); /* P = 0, B = 1, SID 0 */
  assert_int_equal(v.width, 0);    /* no header, no SS */

  PARSE_OK(sfu_vp9_parse, flex, &v);
  assert_int_equal(v.picture_id, 0x11);
  assert_int_equal(v.pid_bits, 7);
  assert_int_equal(v.tid, 1);
  assert_int_equal(v.switch_up, 0);
  assert_int_equal(v.sid, 2);
  assert_int_equal(v.tl0picidx, -1);
  assert_int_equal(v.begins_frame, 0);
  assert_int_equal(v.ends_frame, 0);
  assert_int_equal(v.keyframe, 0);

  PARSE_OK(sfu_vp9_parse, bare, &v);
  assert_no_layers(&v);
  assert_int_equal(v.begins_frame, 1);
  assert_int_equal(v.keyframe, 1); /* P = 0 and no layer info */

  PARSE_OK(sfu_vp9_parse, onediff, &v);
  assert_int_equal(v.keyframe, 0);
  assert_int_equal(v.begins_frame, 0);
}

static void vp9_keyframe_rule(void **state) {
  /* B, P = 1: inter frame */
  static const uint8_t inter[] = {0x48, 0x00};
  /* B, P = 0, L with SID 1: inter-layer predicted, not a start point */
  static const uint8_t upper[] = {0x28, 0x02, 0x00, 0x00};
  /* P = 0, B = 0: middle of an intra frame */
  static const uint8_t middle[] = {0x04, 0x00};
  sfu_video_info_t v;

  PARSE_OK(sfu_vp9_parse, inter, &v);
  assert_int_equal(v.begins_frame, 1);
  assert_int_equal(v.keyframe, 0);
  PARSE_OK(sfu_vp9_parse, upper, &v);
  assert_int_equal(v.sid, 1);
  assert_int_equal(v.begins_frame, 1);
  assert_int_equal(v.keyframe, 0);
  PARSE_OK(sfu_vp9_parse, middle, &v);
  assert_int_equal(v.begins_frame, 0);
  assert_int_equal(v.keyframe, 0);
}

static void vp9_scalability_structure(void **state) {
  /*
   * I 7-bit, L (TID 0, SID s, D 0), TL0PICIDX, V; SS: N_S = 2 (three
   * layers), Y, G; sizes 320x180, 640x360, 1280x720; N_G = 2: (TID 0,
   * U 0, R 1, diff 4), (TID 1, U 1, R 2, diffs 1, 2); then frame data
   * that is not a keyframe header.
   */
  uint8_t p[] = {0xaa, 0x05, 0x00, 0x00, 0x58, 0x01, 0x40, 0x00, 0xb4,
                 0x02, 0x80, 0x01, 0x68, 0x05, 0x00, 0x02, 0xd0, 0x02,
                 0x04, 0x04, 0x38, 0x01, 0x02, 0x00};
  sfu_video_info_t v;
  int sid;

  for (sid = 0; sid < 4; sid++) {
    static const int w[] = {320, 640, 1280, 0}, h[] = {180, 360, 720, 0};
    p[2] = (uint8_t)(sid << 1);
    assert_int_equal(parse(sfu_vp9_parse, p, sizeof(p), &v), 0);
    assert_int_equal(v.sid, sid);
    assert_int_equal(v.picture_id, 5);
    assert_int_equal(v.width, w[sid]); /* SID 3: no entry in a 3-layer SS */
    assert_int_equal(v.height, h[sid]);
    assert_int_equal(v.keyframe, sid == 0);
  }
  sweep(sfu_vp9_parse, p, sizeof(p));

  /* SS without sizes (Y = 0) and without picture groups (G = 0) */
  {
    static const uint8_t noy[] = {0x0a, 0x40, 0xaa};
    PARSE_OK(sfu_vp9_parse, noy, &v);
    assert_int_equal(v.width, 0);
    assert_int_equal(v.keyframe, 1);
  }
  /* No L: the SS entry of layer 0 */
  {
    static const uint8_t nol[] = {0x4a, 0x10, 0x01, 0x00, 0x00, 0xc8,
                                  0x00, 0xaa};
    PARSE_OK(sfu_vp9_parse, nol, &v);
    assert_int_equal(v.sid, -1);
    assert_int_equal(v.width, 256);
    assert_int_equal(v.height, 200);
    assert_int_equal(v.keyframe, 0);
  }
}

static void vp9_uncompressed_header(void **state) {
  static const struct {
    int profile, cs, w, h;
  } cases[] = {
      {0, 1, 1280, 720}, {1, 2, 640, 480},  {2, 1, 1920, 1080},
      {3, 5, 320, 240},  {0, 7, 176, 144},  {1, 7, 4096, 2160},
      {3, 7, 65536, 1},
  };
  uint8_t p[64];
  sfu_video_info_t v;
  size_t i, n;

  for (i = 0; i < SFU_ARRAY_SIZE(cases); i++) {
    /* B, E, V: SS with one layer of 100x100, which the header overrides */
    static const uint8_t desc[] = {0x0e, 0x10, 0x00, 0x64, 0x00, 0x64};
    memcpy(p, desc, sizeof(desc));
    n = sizeof(desc) + vp9_key_header(p + sizeof(desc), cases[i].profile,
                                      cases[i].cs, cases[i].w, cases[i].h);
    assert_int_equal(parse(sfu_vp9_parse, p, n, &v), 0);
    assert_int_equal(v.keyframe, 1);
    assert_int_equal(v.width, cases[i].w);
    assert_int_equal(v.height, cases[i].h);
    sweep(sfu_vp9_parse, p, n);
    /* cut inside the header: the SS size remains */
    assert_int_equal(parse(sfu_vp9_parse, p, sizeof(desc) + 6, &v), 0);
    assert_int_equal(v.width, 100);
    assert_int_equal(v.height, 100);
  }

  /* Not a keyframe header (frame_type 1), or bad sync code: no size */
  n = vp9_key_header(p + 1, 0, 1, 640, 360);
  p[0] = 0x08;
  p[1] |= 0x04; /* frame_type bit */
  assert_int_equal(parse(sfu_vp9_parse, p, n + 1, &v), 0);
  assert_int_equal(v.keyframe, 1);
  assert_int_equal(v.width, 0);
  n = vp9_key_header(p + 1, 0, 1, 640, 360);
  p[2] ^= 0x10;
  assert_int_equal(parse(sfu_vp9_parse, p, n + 1, &v), 0);
  assert_int_equal(v.width, 0);
  /* show_existing_frame */
  n = vp9_key_header(p + 1, 0, 1, 640, 360);
  p[1] |= 0x08;
  assert_int_equal(parse(sfu_vp9_parse, p, n + 1, &v), 0);
  assert_int_equal(v.width, 0);
  /* frame marker wrong */
  n = vp9_key_header(p + 1, 0, 1, 640, 360);
  p[1] ^= 0x40;
  assert_int_equal(parse(sfu_vp9_parse, p, n + 1, &v), 0);
  assert_int_equal(v.width, 0);
  /* a keyframe header on a P = 1 packet is not looked at */
  n = vp9_key_header(p + 1, 0, 1, 640, 360);
  p[0] = 0x48;
  assert_int_equal(parse(sfu_vp9_parse, p, n + 1, &v), 0);
  assert_int_equal(v.width, 0);
}

static void vp9_malformed(void **state) {
  static const uint8_t no_pid[] = {0x80};
  static const uint8_t half_pid[] = {0x80, 0x81};
  static const uint8_t no_l[] = {0xa0, 0x01};
  static const uint8_t no_tl0[] = {0x20, 0x00};
  static const uint8_t four_diffs[] = {0x50, 0x03, 0x03, 0x03, 0x03, 0x00};
  static const uint8_t diffs_cut[] = {0x50, 0x03, 0x03};
  static const uint8_t no_ss[] = {0x02};
  static const uint8_t ss_sizes_cut[] = {0x02, 0x30, 0x01, 0x00, 0x00, 0x10,
                                         0x00, 0x10};
  static const uint8_t ss_no_ng[] = {0x02, 0x08};
  static const uint8_t ss_groups_cut[] = {0x02, 0x08, 0x02, 0x04, 0x01};
  static const uint8_t ss_diffs_cut[] = {0x02, 0x08, 0x01, 0x0c, 0x01};
  static const uint8_t no_payload[] = {0xa0, 0x01, 0x00, 0x00};
  PARSE_BAD(sfu_vp9_parse, no_pid);
  PARSE_BAD(sfu_vp9_parse, half_pid);
  PARSE_BAD(sfu_vp9_parse, no_l);
  PARSE_BAD(sfu_vp9_parse, no_tl0);
  PARSE_BAD(sfu_vp9_parse, four_diffs);
  PARSE_BAD(sfu_vp9_parse, diffs_cut);
  PARSE_BAD(sfu_vp9_parse, no_ss);
  PARSE_BAD(sfu_vp9_parse, ss_sizes_cut);
  PARSE_BAD(sfu_vp9_parse, ss_no_ng);
  PARSE_BAD(sfu_vp9_parse, ss_groups_cut);
  PARSE_BAD(sfu_vp9_parse, ss_diffs_cut);
  PARSE_BAD(sfu_vp9_parse, no_payload);
}

/* ---- H.264 ------------------------------------------------------------ */

typedef struct {
  int profile;      /* profile_idc */
  int chroma;       /* chroma_format_idc (high profiles) */
  int separate;     /* separate_colour_plane_flag (chroma 3) */
  int scaling;      /* write scaling lists */
  int poc_type;     /* 0, 1 or 2 */
  uint32_t refs;    /* max_num_ref_frames */
  int mbs_w, map_h; /* pic_width_in_mbs, pic_height_in_map_units */
  int frame_mbs_only;
  int crop[4]; /* left, right, top, bottom; all 0: no cropping */
} sps_t;

/* RBSP -> NAL unit body with emulation prevention; returns bytes out. */
static size_t escape(const uint8_t *in, size_t n, uint8_t *out) {
  size_t i, o = 0;
  int zeros = 0;
  for (i = 0; i < n; i++) {
    if (zeros >= 2 && in[i] <= 3) {
      out[o++] = 3;
      zeros = 0;
    }
    out[o++] = in[i];
    zeros = in[i] == 0 ? zeros + 1 : 0;
  }
  return o;
}

/* A whole SPS NAL unit (header 0x67) from the fields; see H.264 7.3.2.1.1 */
static size_t build_sps(const sps_t *s, uint8_t *out) {
  bw_t b = {.bits = 0};
  int i, j;
  size_t n;

  bw_put(&b, (uint32_t)s->profile, 8);
  bw_put(&b, 0, 8);  /* constraint flags */
  bw_put(&b, 31, 8); /* level 3.1 */
  bw_ue(&b, 0);      /* seq_parameter_set_id */
  if (s->profile == 100 || s->profile == 244) {
    bw_ue(&b, (uint32_t)s->chroma);
    if (s->chroma == 3)
      bw_put(&b, (uint32_t)s->separate, 1);
    bw_ue(&b, 0);
    bw_ue(&b, 0);
    bw_put(&b, 0, 1);
    bw_put(&b, (uint32_t)s->scaling, 1);
    if (s->scaling) {
      for (i = 0; i < (s->chroma != 3 ? 8 : 12); i++) {
        bw_put(&b, i % 2 == 0, 1); /* every other list present */
        if (i % 2 == 0)
          for (j = 0; j < (i < 6 ? 16 : 64); j++)
            bw_se(&b, j == 5 ? -8 : 1); /* nextScale never 0 */
      }
    }
  }
  bw_ue(&b, 4); /* log2_max_frame_num_minus4 */
  bw_ue(&b, (uint32_t)s->poc_type);
  if (s->poc_type == 0) {
    bw_ue(&b, 2);
  } else if (s->poc_type == 1) {
    bw_put(&b, 0, 1);
    bw_se(&b, -3);
    bw_se(&b, 7);
    bw_ue(&b, 3);
    bw_se(&b, 1);
    bw_se(&b, -1);
    bw_se(&b, 100);
  }
  bw_ue(&b, s->refs);
  bw_put(&b, 0, 1);
  bw_ue(&b, (uint32_t)s->mbs_w - 1);
  bw_ue(&b, (uint32_t)s->map_h - 1);
  bw_put(&b, (uint32_t)s->frame_mbs_only, 1);
  if (!s->frame_mbs_only)
    bw_put(&b, 1, 1);
  bw_put(&b, 1, 1); /* direct_8x8_inference */
  if (s->crop[0] || s->crop[1] || s->crop[2] || s->crop[3]) {
    bw_put(&b, 1, 1);
    for (i = 0; i < 4; i++)
      bw_ue(&b, (uint32_t)s->crop[i]);
  } else {
    bw_put(&b, 0, 1);
  }
  bw_put(&b, 0, 1); /* vui_parameters_present_flag */
  n = bw_finish(&b);
  out[0] = 0x67;
  return 1 + escape(b.b, n, out + 1);
}

static void h264_sps_sizes(void **state) {
  static const struct {
    sps_t s;
    int w, h;
  } cases[] = {
      /* baseline 1280x720, no cropping */
      {{66, 1, 0, 0, 2, 1, 80, 45, 1, {0, 0, 0, 0}}, 1280, 720},
      /* high 4:2:0 1920x1080: 1088 cropped by 4 chroma rows */
      {{100, 1, 0, 0, 0, 4, 120, 68, 1, {0, 0, 0, 4}}, 1920, 1080},
      /* high with scaling lists, 494x370 as in str0m-h264 */
      {{100, 1, 0, 1, 0, 1, 31, 24, 1, {0, 1, 0, 7}}, 494, 370},
      /* interlaced (field pairs): map units are 32 rows, crop unit 4 */
      {{100, 1, 0, 0, 1, 2, 45, 18, 0, {0, 0, 0, 2}}, 720, 568},
      /* 4:2:2: crop unit 2 across, 1 down */
      {{244, 2, 0, 0, 0, 1, 40, 30, 1, {1, 1, 1, 1}}, 636, 478},
      /* 4:4:4: crop unit 1 */
      {{244, 3, 0, 1, 0, 1, 40, 30, 1, {1, 2, 3, 4}}, 637, 473},
      /* 4:4:4 as separate planes: like monochrome */
      {{244, 3, 1, 0, 0, 1, 40, 30, 1, {1, 0, 1, 0}}, 639, 479},
      /* monochrome */
      {{100, 0, 0, 0, 2, 1, 10, 10, 0, {1, 1, 1, 1}}, 158, 316},
      /* max_num_ref_frames with 30 leading zeros: forces 00 00 03 */
      {{66, 1, 0, 0, 2, (1u << 30) - 1, 20, 15, 1, {0, 0, 0, 0}}, 320, 240},
  };
  uint8_t nal[600];
  sfu_video_info_t v;
  size_t i, n;

  for (i = 0; i < SFU_ARRAY_SIZE(cases); i++) {
    n = build_sps(&cases[i].s, nal);
    assert_int_equal(parse(sfu_h264_parse, nal, n, &v), 0);
    assert_int_equal(v.keyframe, 1);
    assert_int_equal(v.begins_frame, 1);
    assert_no_layers(&v);
    assert_int_equal(v.width, cases[i].w);
    assert_int_equal(v.height, cases[i].h);
    sweep(sfu_h264_parse, nal, n);
  }
  /* the last case did need escaping */
  assert_non_null(memmem(nal, n, "\x00\x00\x03", 3));
}

static void h264_sps_nonsense(void **state) {
  sps_t s = {66, 1, 0, 0, 2, 1, 20, 15, 1, {0, 0, 0, 0}};
  uint8_t nal[600];
  sfu_video_info_t v;
  size_t n;

  /* cropping all of the picture */
  s.crop[0] = 100;
  s.crop[1] = 100;
  n = build_sps(&s, nal);
  assert_int_equal(parse(sfu_h264_parse, nal, n, &v), 0);
  assert_int_equal(v.keyframe, 1);
  assert_int_equal(v.width, 0);
  assert_int_equal(v.height, 0);
  /* absurd width */
  s.crop[0] = s.crop[1] = 0;
  s.mbs_w = 5000;
  n = build_sps(&s, nal);
  assert_int_equal(parse(sfu_h264_parse, nal, n, &v), 0);
  assert_int_equal(v.width, 0);
  /* poc type 3 does not exist */
  s.mbs_w = 20;
  s.poc_type = 3;
  n = build_sps(&s, nal);
  assert_int_equal(parse(sfu_h264_parse, nal, n, &v), 0);
  assert_int_equal(v.width, 0);
  /* chroma_format_idc 4 does not exist */
  {
    sps_t h = {100, 4, 0, 0, 0, 1, 20, 15, 1, {0, 0, 0, 0}};
    n = build_sps(&h, nal);
    assert_int_equal(parse(sfu_h264_parse, nal, n, &v), 0);
    assert_int_equal(v.keyframe, 1);
    assert_int_equal(v.width, 0);
  }
  /* cut: keyframe still, no size */
  s.poc_type = 0;
  n = build_sps(&s, nal);
  assert_int_equal(parse(sfu_h264_parse, nal, 5, &v), 0);
  assert_int_equal(v.keyframe, 1);
  assert_int_equal(v.width, 0);
}

static void h264_single_nal(void **state) {
  static const uint8_t idr[] = {0x65, 0x88, 0x84, 0x00};  /* first_mb 0 */
  static const uint8_t idr2[] = {0x65, 0x41, 0x9a, 0x00}; /* first_mb > 0 */
  static const uint8_t p1[] = {0x41, 0x9a, 0x02, 0x00};   /* first_mb 0 */
  static const uint8_t p2[] = {0x41, 0x5a, 0x02, 0x00};   /* first_mb > 0 */
  static const uint8_t dpa[] = {0x22, 0x80, 0x00};        /* partition A */
  static const uint8_t dpb[] = {0x23, 0x80, 0x00};        /* partition B */
  static const uint8_t pps[] = {0x68, 0xce, 0x3c, 0x80};
  static const uint8_t sei[] = {0x06, 0x05, 0x01, 0x00};
  static const uint8_t aud[] = {0x09, 0xf0};
  static const uint8_t prefix[] = {0x0e, 0x80, 0x00, 0x00};
  static const uint8_t filler[] = {0x0c, 0xff, 0xff};
  static const uint8_t hdr_only[] = {0x65};
  static const struct {
    const uint8_t *p;
    size_t len;
    int key, begins;
  } cases[] = {
      {idr, sizeof(idr), 1, 1},       {idr2, sizeof(idr2), 0, 0},
      {p1, sizeof(p1), 0, 1},         {p2, sizeof(p2), 0, 0},
      {dpa, sizeof(dpa), 0, 1},       {dpb, sizeof(dpb), 0, 0},
      {pps, sizeof(pps), 0, 1},       {sei, sizeof(sei), 0, 1},
      {aud, sizeof(aud), 0, 1},       {prefix, sizeof(prefix), 0, 1},
      {filler, sizeof(filler), 0, 0}, {hdr_only, sizeof(hdr_only), 0, 0},
  };
  sfu_video_info_t v;
  size_t i;

  for (i = 0; i < SFU_ARRAY_SIZE(cases); i++) {
    assert_int_equal(parse(sfu_h264_parse, cases[i].p, cases[i].len, &v), 0);
    assert_int_equal(v.keyframe, cases[i].key);
    assert_int_equal(v.begins_frame, cases[i].begins);
    assert_int_equal(v.width, 0);
    assert_no_layers(&v);
    sweep(sfu_h264_parse, cases[i].p, cases[i].len);
  }
}

static void h264_stap_a(void **state) {
  sps_t s = {66, 1, 0, 0, 2, 1, 40, 30, 1, {0, 0, 0, 0}};
  uint8_t sps[64], p[128];
  size_t nsps, n = 0;
  sfu_video_info_t v;

  /* STAP-A: SPS, PPS, IDR */
  nsps = build_sps(&s, sps);
  p[n++] = 0x78;
  p[n++] = 0;
  p[n++] = (uint8_t)nsps;
  memcpy(p + n, sps, nsps);
  n += nsps;
  memcpy(p + n, "\x00\x04\x68\xce\x3c\x80\x00\x04\x65\x88\x84\x00", 12);
  n += 12;
  assert_int_equal(parse(sfu_h264_parse, p, n, &v), 0);
  assert_int_equal(v.keyframe, 1);
  assert_int_equal(v.begins_frame, 1);
  assert_int_equal(v.width, 640);
  assert_int_equal(v.height, 480);
  sweep(sfu_h264_parse, p, n);

  /* STAP-A: SPS, PPS only (the IDR follows as FU-A) */
  assert_int_equal(parse(sfu_h264_parse, p, n - 6, &v), 0);
  assert_int_equal(v.keyframe, 1);
  assert_int_equal(v.width, 640);

  {
    /* STAP-A: PPS then IDR: the PPS opens the access unit */
    static const uint8_t pps_idr[] = {0x78, 0x00, 0x02, 0x68, 0xce,
                                      0x00, 0x02, 0x65, 0x88};
    /* STAP-A: SEI then non-IDR slice */
    static const uint8_t sei_p[] = {0x18, 0x00, 0x02, 0x06, 0x05,
                                    0x00, 0x02, 0x41, 0x9a};
    /* STAP-A: two later slices of a picture */
    static const uint8_t slices[] = {0x78, 0x00, 0x02, 0x41, 0x5a,
                                     0x00, 0x02, 0x41, 0x3a};
    /* STAP-A: a later IDR slice first, then a first one (odd, but the
     * keyframe flag looks at every unit) */
    static const uint8_t idrs[] = {0x78, 0x00, 0x02, 0x65, 0x41,
                                   0x00, 0x02, 0x65, 0x88};
    /* STAP-A: one unit */
    static const uint8_t one[] = {0x78, 0x00, 0x01, 0x09};
    PARSE_OK(sfu_h264_parse, pps_idr, &v);
    assert_int_equal(v.keyframe, 1);
    assert_int_equal(v.begins_frame, 1);
    assert_int_equal(v.width, 0);
    PARSE_OK(sfu_h264_parse, sei_p, &v);
    assert_int_equal(v.keyframe, 0);
    assert_int_equal(v.begins_frame, 1);
    PARSE_OK(sfu_h264_parse, slices, &v);
    assert_int_equal(v.keyframe, 0);
    assert_int_equal(v.begins_frame, 0);
    PARSE_OK(sfu_h264_parse, idrs, &v);
    assert_int_equal(v.keyframe, 1);
    assert_int_equal(v.begins_frame, 0);
    PARSE_OK(sfu_h264_parse, one, &v);
    assert_int_equal(v.begins_frame, 1);
  }
}

static void h264_fu_a(void **state) {
  static const uint8_t start_idr[] = {0x7c, 0x85, 0x88, 0x84, 0x21};
  static const uint8_t start_idr2[] = {0x7c, 0x85, 0x41, 0x84, 0x21};
  static const uint8_t mid_idr[] = {0x7c, 0x05, 0x88, 0x84, 0x21};
  static const uint8_t end_idr[] = {0x7c, 0x45, 0x88, 0x84, 0x21};
  static const uint8_t start_p[] = {0x5c, 0x81, 0x9a, 0x02};
  static const uint8_t start_p2[] = {0x5c, 0x81, 0x5a, 0x02};
  static const uint8_t start_sps[] = {0x7c, 0x87, 0x42, 0xc0, 0x1e};
  static const uint8_t start_only[] = {0x7c, 0x85}; /* no fragment bytes */
  sfu_video_info_t v;

  PARSE_OK(sfu_h264_parse, start_idr, &v);
  assert_int_equal(v.keyframe, 1);
  assert_int_equal(v.begins_frame, 1);
  PARSE_OK(sfu_h264_parse, start_idr2, &v);
  assert_int_equal(v.keyframe, 0);
  assert_int_equal(v.begins_frame, 0);
  PARSE_OK(sfu_h264_parse, mid_idr, &v);
  assert_int_equal(v.keyframe, 0);
  assert_int_equal(v.begins_frame, 0);
  PARSE_OK(sfu_h264_parse, end_idr, &v);
  assert_int_equal(v.keyframe, 0);
  assert_int_equal(v.begins_frame, 0);
  PARSE_OK(sfu_h264_parse, start_p, &v);
  assert_int_equal(v.keyframe, 0);
  assert_int_equal(v.begins_frame, 1);
  PARSE_OK(sfu_h264_parse, start_p2, &v);
  assert_int_equal(v.begins_frame, 0);
  /* a fragmented SPS: keyframe, but no size from a piece */
  PARSE_OK(sfu_h264_parse, start_sps, &v);
  assert_int_equal(v.keyframe, 1);
  assert_int_equal(v.begins_frame, 1);
  assert_int_equal(v.width, 0);
  PARSE_OK(sfu_h264_parse, start_only, &v);
  assert_int_equal(v.keyframe, 0);
  assert_int_equal(v.begins_frame, 0);
}

static void h264_other_types(void **state) {
  static const uint8_t t0[] = {0x00, 0x88};
  static const uint8_t stap_b[] = {0x19, 0x00, 0x01, 0x00, 0x02, 0x65, 0x88};
  static const uint8_t mtap16[] = {0x1a, 0x00, 0x00};
  static const uint8_t fu_b[] = {0x1d, 0x85, 0x00, 0x00, 0x88};
  static const uint8_t t30[] = {0x1e, 0x00};
  static const uint8_t t31[] = {0x1f};
  sfu_video_info_t v;
  PARSE_OK(sfu_h264_parse, t0, &v);
  assert_int_equal(v.keyframe, 0);
  assert_int_equal(v.begins_frame, 0);
  PARSE_OK(sfu_h264_parse, stap_b, &v);
  assert_int_equal(v.keyframe, 0);
  PARSE_OK(sfu_h264_parse, mtap16, &v);
  PARSE_OK(sfu_h264_parse, fu_b, &v);
  assert_int_equal(v.keyframe, 0);
  PARSE_OK(sfu_h264_parse, t30, &v);
  PARSE_OK(sfu_h264_parse, t31, &v);
  assert_no_layers(&v);
}

static void h264_malformed(void **state) {
  static const uint8_t stap_empty[] = {0x78};
  static const uint8_t stap_odd[] = {0x78, 0x00};
  static const uint8_t stap_zero[] = {0x78, 0x00, 0x00, 0x65};
  static const uint8_t stap_long[] = {0x78, 0x00, 0x03, 0x65, 0x88};
  static const uint8_t stap_trail[] = {0x78, 0x00, 0x01, 0x09, 0x00};
  static const uint8_t fu_short[] = {0x7c};
  static const uint8_t fu_se[] = {0x7c, 0xc5, 0x88};
  PARSE_BAD(sfu_h264_parse, stap_empty);
  PARSE_BAD(sfu_h264_parse, stap_odd);
  PARSE_BAD(sfu_h264_parse, stap_zero);
  PARSE_BAD(sfu_h264_parse, stap_long);
  PARSE_BAD(sfu_h264_parse, stap_trail);
  PARSE_BAD(sfu_h264_parse, fu_short);
  PARSE_BAD(sfu_h264_parse, fu_se);
}

/* ---- AV1 -------------------------------------------------------------- */

/*
 * A sequence header OBU body (AV1 5.5.1) for a w x h maximum frame:
 * mode 0 plain, 1 with timing info and a decoder model, 2 reduced still
 * picture header, 3 with initial display delay and 2 operating points.
 */
static size_t av1_seq_body(uint8_t *out, int mode, int w, int h) {
  bw_t b = {.bits = 0};
  bw_put(&b, 0, 3); /* seq_profile */
  bw_put(&b, mode == 2, 1);
  bw_put(&b, mode == 2, 1);
  if (mode == 2) {
    bw_put(&b, 5, 5);
  } else {
    bw_put(&b, mode == 1, 1); /* timing_info_present_flag */
    if (mode == 1) {
      bw_put(&b, 1001, 32);
      bw_put(&b, 30000, 32);
      bw_put(&b, 1, 1); /* equal_picture_interval */
      bw_put(&b, 0, 4); /* uvlc: 4 zeros, 1, 4 bits = 15 + 2 */
      bw_put(&b, 1, 1);
      bw_put(&b, 2, 4);
      bw_put(&b, 1, 1);  /* decoder_model_info_present_flag */
      bw_put(&b, 9, 5);  /* buffer_delay_length_minus_1: 10 bits */
      bw_put(&b, 1, 32); /* num_units_in_decoding_tick */
      bw_put(&b, 4, 5);
      bw_put(&b, 4, 5);
    }
    bw_put(&b, mode == 3, 1); /* initial_display_delay_present_flag */
    bw_put(&b, mode == 3 ? 1 : 0, 5);
    bw_put(&b, 0x101, 12);
    bw_put(&b, 9, 5); /* seq_level_idx > 7: tier */
    bw_put(&b, 1, 1);
    if (mode == 1) {
      bw_put(&b, 1, 1); /* decoder_model_present_for_this_op */
      bw_put(&b, 0x155, 10);
      bw_put(&b, 0x2aa, 10);
      bw_put(&b, 0, 1);
    }
    if (mode == 3) {
      bw_put(&b, 1, 1);
      bw_put(&b, 3, 4);
      bw_put(&b, 0x303, 12); /* second operating point */
      bw_put(&b, 4, 5);      /* level <= 7: no tier */
      bw_put(&b, 0, 1);      /* no display delay for it */
    }
  }
  bw_put(&b, 15, 4); /* frame_width_bits_minus_1: 16 bits */
  bw_put(&b, 10, 4); /* frame_height_bits_minus_1: 11 bits */
  bw_put(&b, (uint32_t)w - 1, 16);
  bw_put(&b, (uint32_t)h - 1, 11);
  bw_put(&b, 0x2a, 7); /* whatever follows */
  memcpy(out, b.b, (b.bits + 7) / 8);
  return (b.bits + 7) / 8;
}

static void av1_keyframe_with_sequence_header(void **state) {
  static const int modes[] = {0, 1, 2, 3};
  uint8_t p[128], body[64];
  sfu_video_info_t v;
  size_t i, nb, n;

  for (i = 0; i < SFU_ARRAY_SIZE(modes); i++) {
    nb = av1_seq_body(body, modes[i], 1920, 1080);
    /* N, W = 2: [len] seq header OBU, frame OBU (no length) */
    n = 0;
    p[n++] = 0x28;
    p[n++] = (uint8_t)(nb + 1);
    p[n++] = 0x08; /* OBU_SEQUENCE_HEADER, no extension, no size */
    memcpy(p + n, body, nb);
    n += nb;
    p[n++] = 0x30; /* OBU_FRAME */
    p[n++] = 0x10;
    p[n++] = 0x20;
    assert_int_equal(parse(sfu_av1_parse, p, n, &v), 0);
    assert_int_equal(v.keyframe, 1);
    assert_int_equal(v.begins_frame, 1);
    assert_int_equal(v.width, 1920);
    assert_int_equal(v.height, 1080);
    assert_no_layers(&v);
    sweep(sfu_av1_parse, p, n);

    /* the same with obu_has_size_field set in the sequence header */
    n = 0;
    p[n++] = 0x18; /* N, W = 1 */
    p[n++] = 0x0a; /* OBU_SEQUENCE_HEADER with S */
    p[n++] = (uint8_t)nb;
    memcpy(p + n, body, nb);
    n += nb;
    assert_int_equal(parse(sfu_av1_parse, p, n, &v), 0);
    assert_int_equal(v.width, 1920);
    assert_int_equal(v.height, 1080);
    sweep(sfu_av1_parse, p, n);

    /* a sequence header split by Y: no size from the first piece */
    n = 0;
    p[n++] = 0x58; /* Y, W = 1, N */
    p[n++] = 0x08;
    memcpy(p + n, body, 3);
    n += 3;
    assert_int_equal(parse(sfu_av1_parse, p, n, &v), 0);
    assert_int_equal(v.keyframe, 1);
    assert_int_equal(v.width, 0);
  }
}

static void av1_elements(void **state) {
  /* W = 0: every element has a length; TD, then a frame header */
  static const uint8_t w0[] = {0x00, 0x01, 0x10, 0x02, 0x18, 0x00};
  /* W = 3: tile group first (mid-frame), frame header, last without len */
  static const uint8_t w3[] = {0x30, 0x02, 0x20, 0xaa, 0x01,
                               0x18, 0x30, 0xbb, 0xcc};
  /* Z: the first element continues an OBU; the second is a frame OBU
   * with an extension (TID 2, SID 1) */
  static const uint8_t z[] = {0xa0, 0x03, 0x00, 0x00, 0x00, 0x34, 0x48, 0x11};
  /* Z only: a middle fragment, nothing starts here */
  static const uint8_t zy[] = {0xd0, 0x34, 0x48, 0x11};
  /* metadata OBU first */
  static const uint8_t meta[] = {0x10, 0x28, 0x01, 0x02};
  /* padding OBU first */
  static const uint8_t pad[] = {0x10, 0x78, 0x00};
  /* extension flag on the frame OBU but the element is 1 byte long */
  static const uint8_t ext_cut[] = {0x20, 0x01, 0x34, 0x30, 0x00};
  /* two-byte leb128 length 130 */
  uint8_t big[1 + 2 + 130 + 1];
  sfu_video_info_t v;

  PARSE_OK(sfu_av1_parse, w0, &v);
  assert_int_equal(v.begins_frame, 1);
  assert_int_equal(v.keyframe, 0);
  assert_int_equal(v.tid, -1);

  PARSE_OK(sfu_av1_parse, w3, &v);
  assert_int_equal(v.begins_frame, 0);
  assert_int_equal(v.keyframe, 0);

  PARSE_OK(sfu_av1_parse, z, &v);
  assert_int_equal(v.begins_frame, 0);
  assert_int_equal(v.tid, 2);
  assert_int_equal(v.sid, 1);

  PARSE_OK(sfu_av1_parse, zy, &v);
  assert_int_equal(v.begins_frame, 0);
  assert_int_equal(v.tid, -1); /* the bytes are not an OBU header */

  PARSE_OK(sfu_av1_parse, meta, &v);
  assert_int_equal(v.begins_frame, 1);
  PARSE_OK(sfu_av1_parse, pad, &v);
  assert_int_equal(v.begins_frame, 0);
  PARSE_OK(sfu_av1_parse, ext_cut, &v);
  assert_int_equal(v.tid, -1);
  assert_int_equal(v.begins_frame, 1);

  memset(big, 0x55, sizeof(big));
  big[0] = 0x20; /* W = 2 */
  big[1] = 0x82; /* 130 = 0x02 | 1 << 7 */
  big[2] = 0x01;
  big[3] = 0x34; /* OBU_FRAME with extension: TID 0, SID 2 */
  big[4] = 0x10;
  assert_int_equal(parse(sfu_av1_parse, big, sizeof(big), &v), 0);
  assert_int_equal(v.begins_frame, 1);
  assert_int_equal(v.tid, 0);
  assert_int_equal(v.sid, 2);
  sweep(sfu_av1_parse, big, sizeof(big));
}

static void av1_malformed(void **state) {
  static const uint8_t only_hdr[] = {0x08};
  static const uint8_t len_past[] = {0x00, 0x05, 0x30, 0x00};
  static const uint8_t len_zero[] = {0x00, 0x00, 0x01, 0x30};
  static const uint8_t last_zero[] = {0x20, 0x01, 0x30};
  static const uint8_t leb_open[] = {0x00, 0x80};
  static const uint8_t leb_long[] = {0x00, 0x80, 0x80, 0x80, 0x80, 0x80,
                                     0x80, 0x80, 0x80, 0x01, 0x30};
  static const uint8_t leb_big[] = {0x00, 0xff, 0xff, 0xff, 0xff, 0x7f, 0x30};
  static const uint8_t w_short[] = {0x30, 0x01, 0x30, 0x01, 0x30};
  PARSE_BAD(sfu_av1_parse, only_hdr);
  PARSE_BAD(sfu_av1_parse, len_past);
  PARSE_BAD(sfu_av1_parse, len_zero);
  PARSE_BAD(sfu_av1_parse, last_zero);
  PARSE_BAD(sfu_av1_parse, leb_open);
  PARSE_BAD(sfu_av1_parse, leb_long);
  PARSE_BAD(sfu_av1_parse, leb_big);
  PARSE_BAD(sfu_av1_parse, w_short);
}

/* ---- captures --------------------------------------------------------- */

typedef struct {
  int w, h;
} size2_t;

typedef struct {
  const char *file;
  int pt;
  sfu_video_parse_fn fn;
  size_t packets;
  int malformed;        /* packets the parser must refuse */
  int keyframes;
  const size2_t *sizes; /* one per keyframe */
  int first_frames;     /* frame starts by the RTP headers */
  int mid;              /* mid-frame packets by the RTP headers */
  int mid_begins;       /* of those, ones that begin a frame anyway */
} capture_expect_t;

/* tests/data/pcaps/<name>; the directory is found from __FILE__. */
static sfu_cap_t *open_capture(const char *name) {
  char path[1024], err[256];
  const char *slash = strrchr(__FILE__, '/');
  int dirlen = slash ? (int)(slash - __FILE__) : 1;
  sfu_cap_t *c = NULL;

  snprintf(path, sizeof(path), "%.*s/data/pcaps/%s", dirlen,
           slash ? __FILE__ : ".", name);
  if (sfu_cap_open(&c, path, err, sizeof(err)) != 0)
    fail_msg("%s", err);
  return c;
}

static void check_capture(const capture_expect_t *e) {
  sfu_cap_t *c = open_capture(e->file);
  sfu_cap_pkt_t pkt;
  sfu_rtp_t rtp, prev;
  sfu_video_info_t v;
  size_t packets = 0;
  int keyframes = 0, first_frames = 0, mid = 0, mid_begins = 0;
  int malformed = 0;
  int have_prev = 0, rv, last_pid = -1;
  uint32_t last_key_ts = 0;
  uint8_t prev_buf[2048];

  while ((rv = sfu_cap_next(c, &pkt)) == 1) {
    const uint8_t *pl;
    int first, middle;

    assert_int_equal(sfu_rtp_parse(pkt.data, pkt.len, &rtp), 0);
    assert_int_equal(rtp.pt, e->pt);
    packets++;
    pl = pkt.data + rtp.payload_off;
    rv = parse(e->fn, pl, rtp.payload_len, &v);
    assert_true(rv == 0 || rv == SFU_EINVAL);

    if (!have_prev) {
      first = 1;
      middle = 0;
    } else {
      int next = (uint16_t)(prev.seq + 1) == rtp.seq;
      first = rtp.ts != prev.ts && next;
      middle = rtp.ts == prev.ts && next;
    }
    first_frames += first;
    mid += middle;
    if (rv != 0) {
      malformed++;
      goto advance;
    }
    if (first)
      assert_int_equal(v.begins_frame, 1);
    if (middle)
      mid_begins += v.begins_frame;

    if (v.keyframe && (keyframes == 0 || rtp.ts != last_key_ts)) {
      assert_true(keyframes < e->keyframes);
      assert_int_equal(v.width, e->sizes[keyframes].w);
      assert_int_equal(v.height, e->sizes[keyframes].h);
      keyframes++;
      last_key_ts = rtp.ts;
    }

    /* VP8: picture ids run on by one from frame to frame */
    if (e->fn == sfu_vp8_parse && v.begins_frame) {
      assert_true(v.pid_bits == 7 || v.pid_bits == 15);
      if (last_pid >= 0)
        assert_int_equal(v.picture_id,
                         (last_pid + 1) & ((1 << v.pid_bits) - 1));
      last_pid = v.picture_id;
    }

  advance:
    assert_true(pkt.len <= sizeof(prev_buf));
    memcpy(prev_buf, pkt.data, pkt.len);
    assert_int_equal(sfu_rtp_parse(prev_buf, pkt.len, &prev), 0);
    have_prev = 1;
  }
  assert_int_equal(rv, 0);
  sfu_cap_close(c);

  assert_int_equal(packets, e->packets);
  assert_int_equal(malformed, e->malformed);
  assert_int_equal(keyframes, e->keyframes);
  assert_int_equal(first_frames, e->first_frames);
  assert_int_equal(mid, e->mid);
  assert_int_equal(mid_begins, e->mid_begins);
}

static void capture_str0m_vp8(void **state) {
  static const size2_t sizes[] = {{240, 180}, {240, 180}, {240, 180}};
  static const capture_expect_t e = {"str0m-vp8.pcap", 96, sfu_vp8_parse,
                                     104, 0, 3, sizes, 101, 3, 0};
  check_capture(&e);
}

static void capture_membrane_vp8(void **state) {
  static const size2_t sizes[] = {{1080, 720}, {1080, 720}, {1080, 720}};
  static const capture_expect_t e = {"membrane-input_vp8.pcap", 96,
                                     sfu_vp8_parse, 410, 0, 3, sizes, 300, 110,
                                     0};
  check_capture(&e);
}

static void capture_str0m_h264(void **state) {
  static const size2_t sizes[] = {{494, 370}, {494, 370}, {494, 370},
                                  {494, 370}, {640, 480}, {640, 480},
                                  {640, 480}};
  static const capture_expect_t e = {"str0m-h264.pcap", 126, sfu_h264_parse,
                                     298, 1, 7, sizes, 267, 28, 3};
  check_capture(&e);
}

static void capture_str0m_vp9(void **state) {
  static const size2_t sizes[] = {{494, 371}};
  static const capture_expect_t e = {"str0m-vp9.pcap", 98, sfu_vp9_parse,
                                     316, 0, 1, sizes, 27, 10, 0};
  check_capture(&e);
}

static void capture_str0m_av1(void **state) {
  static const size2_t sizes[] = {{640, 480}};
  static const capture_expect_t e = {"str0m-av1.pcap", 45, sfu_av1_parse,
                                     201, 0, 1, sizes, 45, 156, 0};
  check_capture(&e);
}

/*
 * Rewriting every VP8 packet of both captures changes only the id and
 * TL0PICIDX bytes, and the rewritten packet parses to the same thing but
 * for those two fields.
 */
static void capture_vp8_rewrite(void **state) {
  static const char *const files[] = {"str0m-vp8.pcap",
                                      "membrane-input_vp8.pcap"};
  size_t f;

  for (f = 0; f < SFU_ARRAY_SIZE(files); f++) {
    sfu_cap_t *c = open_capture(files[f]);
    sfu_cap_pkt_t pkt;
    sfu_rtp_t rtp;
    uint8_t buf[2048];
    int n = 0;

    while (sfu_cap_next(c, &pkt) == 1) {
      sfu_video_info_t a, b;
      const uint8_t *pl;
      size_t len, i, diff = 0;
      int pid, tl0;

      assert_int_equal(sfu_rtp_parse(pkt.data, pkt.len, &rtp), 0);
      pl = pkt.data + rtp.payload_off;
      len = rtp.payload_len;
      assert_true(len <= sizeof(buf));
      assert_int_equal(sfu_vp8_parse(pl, len, &a), 0);
      pid = a.picture_id + 1000 + n;
      tl0 = a.tl0picidx + 77;
      memcpy(buf, pl, len);
      assert_int_equal(sfu_vp8_rewrite(buf, len, pid, tl0), 0);
      assert_int_equal(sfu_vp8_parse(buf, len, &b), 0);
      assert_int_equal(b.picture_id, pid & ((1 << a.pid_bits) - 1));
      assert_int_equal(b.pid_bits, a.pid_bits);
      if (a.tl0picidx >= 0)
        assert_int_equal(b.tl0picidx, tl0 & 0xff);
      else
        assert_int_equal(b.tl0picidx, -1);
      assert_int_equal(b.keyframe, a.keyframe);
      assert_int_equal(b.begins_frame, a.begins_frame);
      assert_int_equal(b.tid, a.tid);
      assert_int_equal(b.switch_up, a.switch_up);
      assert_int_equal(b.width, a.width);
      assert_int_equal(b.height, a.height);
      for (i = 0; i < len; i++)
        diff += buf[i] != pl[i];
      assert_true(diff <= 3);
      assert_memory_equal(buf + 5, pl + 5, len - 5);
      n++;
    }
    sfu_cap_close(c);
    assert_true(n > 100);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(lookup_by_name),
      cmocka_unit_test(null_arguments),
      cmocka_unit_test(vp8_minimal_keyframe),
      cmocka_unit_test(vp8_frame_positions),
      cmocka_unit_test(vp8_keyframe_header_variants),
      cmocka_unit_test(vp8_extensions),
      cmocka_unit_test(vp8_malformed),
      cmocka_unit_test(vp8_rewrite),
      cmocka_unit_test(vp9_descriptor_fields),
      cmocka_unit_test(vp9_keyframe_rule),
      cmocka_unit_test(vp9_scalability_structure),
      cmocka_unit_test(vp9_uncompressed_header),
      cmocka_unit_test(vp9_malformed),
      cmocka_unit_test(h264_sps_sizes),
      cmocka_unit_test(h264_sps_nonsense),
      cmocka_unit_test(h264_single_nal),
      cmocka_unit_test(h264_stap_a),
      cmocka_unit_test(h264_fu_a),
      cmocka_unit_test(h264_other_types),
      cmocka_unit_test(h264_malformed),
      cmocka_unit_test(av1_keyframe_with_sequence_header),
      cmocka_unit_test(av1_elements),
      cmocka_unit_test(av1_malformed),
      cmocka_unit_test(capture_str0m_vp8),
      cmocka_unit_test(capture_membrane_vp8),
      cmocka_unit_test(capture_str0m_h264),
      cmocka_unit_test(capture_str0m_vp9),
      cmocka_unit_test(capture_str0m_av1),
      cmocka_unit_test(capture_vp8_rewrite),
  };
  return cmocka_run_group_tests_name("codecs", tests, NULL, NULL);
}
