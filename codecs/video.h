/*
 * video.h -- what the SFU reads out of a video RTP payload, whatever the
 * codec: the shared result type, the codec-by-name lookup, and a small bit
 * reader the codec parsers share.
 *
 * The forwarder never decodes video. Per packet it needs to know whether a
 * decoder could start here (keyframe), whether a new frame starts here
 * (begins_frame), which temporal and spatial layer the packet is in, and
 * for VP8/VP9 the picture id and TL0PICIDX it must keep continuous across
 * a simulcast switch. Each codec's parser (codecs/vp8.c, vp9.c, h264.c,
 * av1.c) fills the same sfu_video_info_t from a view over the payload: it
 * checks every length once against `len`, copies nothing, allocates
 * nothing and keeps nothing past the call.
 *
 * Error rule, the same for every codec: SFU_EINVAL means the RTP payload
 * format's own framing is broken (a descriptor or aggregation header that
 * runs past the end, lengths that do not add up, no payload at all). What
 * the codec bitstream says after that framing (a VP8 frame header, a VP9
 * uncompressed header, an H.264 SPS, an AV1 sequence header) is read only
 * for the picture size; if it is cut short or makes no sense the size stays
 * 0 and the parse still succeeds, because the packet is still forwardable.
 *
 * See docs/internals/codecs.md for the keyframe rules of each codec.
 */
#ifndef SFU_CODECS_VIDEO_H
#define SFU_CODECS_VIDEO_H

#include <stddef.h>
#include <stdint.h>
#include <strings.h>

/*
 * What one video RTP payload says about itself. Every parser sets every
 * field: the ids are -1 and the flags and sizes 0 when the payload does not
 * carry them.
 */
typedef struct sfu_video_info_s {
  int keyframe;     /* a decoder can start at this packet (per-codec rule) */
  int begins_frame; /* first packet of a frame (of a layer frame in SVC) */
  int ends_frame;   /* VP9 E bit: last packet of a layer frame, else 0 */
  int tid;          /* temporal layer id, -1 when absent */
  int sid;          /* spatial layer id, -1 when absent */
  int switch_up;    /* VP8 Y / VP9 U bit: temporal up-switch point, else 0 */
  int picture_id;   /* VP8/VP9 picture id, -1 when absent */
  int pid_bits;     /* 7 or 15 when picture_id is present, else 0 */
  int tl0picidx;    /* VP8/VP9 TL0PICIDX 0..255, -1 when absent */
  int width;        /* picture size from a keyframe's headers, else 0 */
  int height;       /* (see each codec's header for where it comes from) */
} sfu_video_info_t;

/*
 * The parser signature every codec shares. p/len is one RTP payload (after
 * the RTP header and extensions, padding removed); it is only read. On
 * success returns 0 and fills *out completely; on SFU_EINVAL (malformed
 * framing, len 0, p or out NULL) *out is unspecified.
 */
typedef int (*sfu_video_parse_fn)(const uint8_t *p, size_t len,
                                  sfu_video_info_t *out);

int sfu_vp8_parse(const uint8_t *p, size_t len, sfu_video_info_t *out);
int sfu_vp9_parse(const uint8_t *p, size_t len, sfu_video_info_t *out);
int sfu_h264_parse(const uint8_t *p, size_t len, sfu_video_info_t *out);
int sfu_av1_parse(const uint8_t *p, size_t len, sfu_video_info_t *out);

/*
 * The parser for an SDP encoding name (the rtpmap's "VP8/90000" without
 * the clock rate): "VP8", "VP9", "H264" or "AV1", any case ("AV1X", the
 * pre-standard name some browsers used, too). NULL for anything else,
 * including NULL.
 */
static inline sfu_video_parse_fn sfu_video_parser(const char *encoding_name) {
  if (encoding_name == NULL)
    return NULL;
  if (strcasecmp(encoding_name, "VP8") == 0)
    return sfu_vp8_parse;
  if (strcasecmp(encoding_name, "VP9") == 0)
    return sfu_vp9_parse;
  if (strcasecmp(encoding_name, "H264") == 0)
    return sfu_h264_parse;
  if (strcasecmp(encoding_name, "AV1") == 0 ||
      strcasecmp(encoding_name, "AV1X") == 0)
    return sfu_av1_parse;
  return NULL;
}

/* Every field "absent": what each parser starts from. */
static inline void sfu__video_info_reset(sfu_video_info_t *v) {
  v->keyframe = 0;
  v->begins_frame = 0;
  v->ends_frame = 0;
  v->tid = -1;
  v->sid = -1;
  v->switch_up = 0;
  v->picture_id = -1;
  v->pid_bits = 0;
  v->tl0picidx = -1;
  v->width = 0;
  v->height = 0;
}

/*
 * MSB-first bit reader over [p, p + len), for the codec headers read for
 * the picture size. Reading past the end returns 0 bits and sets `err`,
 * which stays set: callers read a whole header and check err once.
 */
typedef struct sfu__bits_s {
  const uint8_t *p; /* bytes */
  size_t len;       /* their count */
  size_t pos;       /* next bit, counted from the MSB of p[0] */
  int err;          /* set once a read ran past the end */
} sfu__bits_t;

static inline void sfu__bits_init(sfu__bits_t *b, const uint8_t *p,
                                  size_t len) {
  b->p = p;
  b->len = len;
  b->pos = 0;
  b->err = 0;
}

/* n bits (0..32) as an unsigned number. */
static inline uint32_t sfu__bits_get(sfu__bits_t *b, int n) {
  uint32_t v = 0;
  int i;

  for (i = 0; i < n; i++) {
    size_t byte = b->pos >> 3;
    if (b->err || byte >= b->len) {
      b->err = 1;
      return 0;
    }
    v = v << 1 | ((b->p[byte] >> (7 - (b->pos & 7))) & 1u);
    b->pos++;
  }
  return v;
}

/*
 * H.264 ue(v) Exp-Golomb (ITU-T H.264 §9.1): n leading zeros, a one, n
 * more bits. More than 31 leading zeros cannot be a valid 32-bit value and
 * sets err.
 */
static inline uint32_t sfu__bits_ue(sfu__bits_t *b) {
  int zeros = 0;

  while (sfu__bits_get(b, 1) == 0) {
    if (b->err || ++zeros > 31) {
      b->err = 1;
      return 0;
    }
  }
  if (zeros == 0)
    return 0;
  return (uint32_t)(((uint64_t)1 << zeros) - 1 + sfu__bits_get(b, zeros));
}

/* H.264 se(v): ue k maps to 0, 1, -1, 2, -2, ... */
static inline int32_t sfu__bits_se(sfu__bits_t *b) {
  uint32_t k = sfu__bits_ue(b);
  return (k & 1) ? (int32_t)((k + 1) / 2) : -(int32_t)(k / 2);
}

#endif
