/*
 * opus.c -- Opus packet views (TOC, frame layout, DTX) and the level meter.
 *
 * Views. An Opus packet (one RTP payload, RFC 7587) starts with a TOC byte
 * that names the configuration (mode, bandwidth, frame duration), the
 * channel count and how many frames follow (RFC 6716 §3.1). parse_packet()
 * walks the frame length fields of all four codes once, checking every
 * length against the bytes that are left, and reports the frame count and
 * the longest frame; nothing is copied and nothing is kept. The rules are
 * RFC 6716 §3.4 R1-R7, and the code mirrors libopus's opus_packet_parse()
 * decision for decision, so the SFU never calls a packet valid that a
 * receiver's decoder would drop, or the reverse (tests/test_opus.c and
 * tests/fuzz/fuzz_opus.c compare the two).
 *
 * Meter. A publisher that does not send the RFC 6464 audio level extension
 * still gets speaking indicators: the room decodes its packets and measures
 * them. The decoder runs at 16 kHz mono, the cheapest configuration libopus
 * offers that still covers speech (0..8 kHz); for SILK and hybrid packets
 * the high band is never synthesised at all. The level is the RMS of the
 * decoded samples relative to full scale, as RFC 6465 Appendix A computes
 * it (see codecs/opus.h for the exact scale).
 *
 * Memory: sfu_opus_meter_t is one malloc'd block laid out as
 *
 *   +---------------------------+-----+---------------------------+
 *   | struct sfu_opus_meter_s   | pad | OpusDecoder (18 KB at     |
 *   | counters, pcm[1920] float |     | 16 kHz mono, opaque)      |
 *   +---------------------------+-----+---------------------------+
 *
 * The PCM buffer holds the longest packet Opus allows (120 ms at 16 kHz),
 * so opus_decode_float() never reports OPUS_BUFFER_TOO_SMALL and feeding a
 * packet allocates nothing (libopus keeps its scratch on the stack).
 */
#include <math.h>
#include <stdlib.h>

#include <opus.h>

#include "codecs/opus.h"
#include "sfu/base/sfu.h"

#define METER_RATE 16000
#define METER_MAX_SAMPLES (METER_RATE / 1000 * SFU_OPUS_MAX_PACKET_US / 1000)
#define METER_PLC_DEFAULT (METER_RATE / 50) /* 20 ms, if nothing decoded yet */
#define LEVEL_SILENCE 127

struct sfu_opus_meter_s {
  OpusDecoder *dec;             /* inside this block, after the struct */
  uint64_t packets;             /* decode calls that produced audio */
  uint64_t errors;              /* packets libopus refused */
  float pcm[METER_MAX_SAMPLES]; /* decoded samples of the last packet */
};

/* The decoder starts at the first 16-byte boundary after the struct. */
#define METER_DEC_OFFSET ((sizeof(struct sfu_opus_meter_s) + 15) & ~(size_t)15)

/* ------------------------------------------------------------------------ */
/* TOC                                                                      */

/*
 * The TOC byte (RFC 6716 §3.1):
 *
 *    0 1 2 3 4 5 6 7
 *   +-+-+-+-+-+-+-+-+
 *   | config  |s| c |
 *   +-+-+-+-+-+-+-+-+
 *
 *   config   mode    bandwidths          frame durations
 *    0..11   SILK    NB, MB, WB          10, 20, 40, 60 ms
 *   12..15   hybrid  SWB, FB             10, 20 ms
 *   16..31   CELT    NB, WB, SWB, FB     2.5, 5, 10, 20 ms
 *
 * Each group of 2 (hybrid) or 4 configs shares a bandwidth and steps
 * through the durations in the order listed.
 */
static void toc_decode(uint8_t toc, sfu_opus_toc_t *t) {
  static const int silk_us[4] = {10000, 20000, 40000, 60000};
  static const int celt_bw[4] = {SFU_OPUS_BW_NB, SFU_OPUS_BW_WB,
                                 SFU_OPUS_BW_SWB, SFU_OPUS_BW_FB};
  int config = toc >> 3;

  t->config = config;
  t->stereo = (toc >> 2) & 1;
  t->code = toc & 3;
  if (config < 12) {
    t->mode = SFU_OPUS_MODE_SILK;
    t->bandwidth = config >> 2; /* NB, MB, WB are 0, 1, 2 */
    t->frame_us = silk_us[config & 3];
  } else if (config < 16) {
    t->mode = SFU_OPUS_MODE_HYBRID;
    t->bandwidth = config < 14 ? SFU_OPUS_BW_SWB : SFU_OPUS_BW_FB;
    t->frame_us = (config & 1) ? 20000 : 10000;
  } else {
    t->mode = SFU_OPUS_MODE_CELT;
    t->bandwidth = celt_bw[(config - 16) >> 2];
    t->frame_us = 2500 << (config & 3);
  }
}

/*
 * A frame length field (RFC 6716 §3.2.1): one byte 0..251 is the length;
 * a first byte 252..255 takes a second byte and the length is
 * second * 4 + first (at most 1275).
 *
 * Returns the bytes the field took (1 or 2), or -1 if `avail` is too short.
 */
static int frame_length(const uint8_t *p, size_t avail, size_t *flen) {
  if (avail < 1)
    return -1;
  if (p[0] < 252) {
    *flen = p[0];
    return 1;
  }
  if (avail < 2)
    return -1;
  *flen = (size_t)p[1] * 4 + p[0];
  return 2;
}

/*
 * Frame layouts after the TOC (RFC 6716 §3.2):
 *
 *   code 0  one frame:      | TOC | frame 1 ...                          |
 *   code 1  two, equal:     | TOC | frame 1 (N-1)/2 | frame 2 (N-1)/2    |
 *   code 2  two, different: | TOC | N1 (1-2 B) | frame 1 N1 | frame 2   |
 *   code 3  M frames:       | TOC | count byte | padding length? |
 *                           | N1..N(M-1) if VBR | frames | padding     |
 *
 *   count byte:  0 1 2 3 4 5 6 7
 *               +-+-+-+-+-+-+-+-+
 *               |v|p|     M     |   v: VBR, p: padding follows, M frames
 *               +-+-+-+-+-+-+-+-+
 *
 * Padding length is a run of bytes: each 255 adds 254 and continues, the
 * first byte below 255 adds itself and ends the run. Padding bytes sit at
 * the end of the packet. The last frame's length is whatever is left; in
 * CBR code 3 every frame has the same length.
 *
 * Fills `t` and *max_frame (the longest frame, to spot DTX) and returns 0,
 * or SFU_EPROTO for a malformed packet.
 */
static int parse_packet(const uint8_t *p, size_t len, sfu_opus_toc_t *t,
                        size_t *max_frame) {
  size_t pos, rem, flen, last, longest = 0;
  int n, count, i;

  if (len < 1) /* R1 */
    return SFU_EPROTO;
  toc_decode(p[0], t);
  rem = len - 1;
  switch (t->code) {
  case 0:
    t->frames = 1;
    last = rem;
    break;
  case 1:
    if (rem & 1) /* R3 */
      return SFU_EPROTO;
    t->frames = 2;
    last = rem / 2;
    longest = last;
    break;
  case 2:
    n = frame_length(p + 1, rem, &flen);
    if (n < 0 || flen > rem - (size_t)n) /* R4 */
      return SFU_EPROTO;
    t->frames = 2;
    last = rem - (size_t)n - flen;
    longest = flen;
    break;
  default: /* 3 */
    if (rem < 1) /* R6 */
      return SFU_EPROTO;
    count = p[1] & 0x3F;
    if (count == 0 || count * t->frame_us > SFU_OPUS_MAX_PACKET_US) /* R5 */
      return SFU_EPROTO;
    t->frames = count;
    pos = 2;
    rem -= 1;
    if (p[1] & 0x40) { /* padding */
      uint8_t b;
      do {
        if (rem < 1)
          return SFU_EPROTO;
        b = p[pos++];
        rem -= 1;
        flen = b == 255 ? 254 : b;
        if (flen > rem) /* R6/R7: padding past the end */
          return SFU_EPROTO;
        rem -= flen;
      } while (b == 255);
    }
    if (p[1] & 0x80) { /* VBR: M-1 explicit lengths */
      for (i = 0; i < count - 1; i++) {
        n = frame_length(p + pos, rem, &flen);
        if (n < 0)
          return SFU_EPROTO;
        pos += (size_t)n;
        rem -= (size_t)n;
        if (flen > rem) /* R7 */
          return SFU_EPROTO;
        rem -= flen;
        if (flen > longest)
          longest = flen;
      }
      last = rem;
    } else { /* CBR */
      if (rem % (size_t)count) /* R6 */
        return SFU_EPROTO;
      last = rem / (size_t)count;
    }
    break;
  }
  if (last > SFU_OPUS_MAX_FRAME_BYTES) /* R2 */
    return SFU_EPROTO;
  *max_frame = last > longest ? last : longest;
  return 0;
}

int sfu_opus_parse_toc(const uint8_t *p, size_t len, sfu_opus_toc_t *out) {
  sfu_opus_toc_t t;
  size_t max_frame;
  int rv;

  if (p == NULL || out == NULL)
    return SFU_EINVAL;
  rv = parse_packet(p, len, &t, &max_frame);
  if (rv == 0)
    *out = t;
  return rv;
}

int sfu_opus_is_dtx(const uint8_t *p, size_t len) {
  sfu_opus_toc_t t;
  size_t max_frame;

  if (len <= 2)
    return 1;
  if (p == NULL || parse_packet(p, len, &t, &max_frame) != 0)
    return 0;
  /* libopus's opus_decode_frame() treats a frame of len <= 1 as lost. */
  return max_frame <= 1;
}

/* ------------------------------------------------------------------------ */
/* Meter                                                                    */

int sfu_opus_meter_create(sfu_opus_meter_t **out) {
  sfu_opus_meter_t *m;
  int dec_size;

  if (out == NULL)
    return SFU_EINVAL;
  *out = NULL;
  dec_size = opus_decoder_get_size(1);
  if (dec_size <= 0)
    return SFU_ENOMEM;
  m = malloc(METER_DEC_OFFSET + (size_t)dec_size);
  if (m == NULL)
    return SFU_ENOMEM;
  m->dec = (OpusDecoder *)(void *)((char *)m + METER_DEC_OFFSET);
  m->packets = 0;
  m->errors = 0;
  if (opus_decoder_init(m->dec, METER_RATE, 1) != OPUS_OK) {
    free(m);
    return SFU_ENOMEM;
  }
  *out = m;
  return 0;
}

void sfu_opus_meter_destroy(sfu_opus_meter_t *m) {
  free(m); /* the decoder lives in the same block */
}

void sfu_opus_meter_reset(sfu_opus_meter_t *m) {
  if (m != NULL)
    opus_decoder_ctl(m->dec, OPUS_RESET_STATE);
}

uint64_t sfu_opus_meter_errors(const sfu_opus_meter_t *m) {
  return m != NULL ? m->errors : 0;
}

uint64_t sfu_opus_meter_packets(const sfu_opus_meter_t *m) {
  return m != NULL ? m->packets : 0;
}

/*
 * -dBov of n samples, rounded to the nearest integer: 0 dBov is RMS 1.0
 * (a full-scale square wave). Samples louder than that (a float decoder
 * can overshoot) clamp to 0; all-zero or tiny signals clamp to 127.
 */
static int level_of(const float *x, int n) {
  double sum = 0.0, db, v;
  int i;

  for (i = 0; i < n; i++) {
    v = (double)x[i];
    sum += v * v;
  }
  if (n <= 0 || sum <= 0.0)
    return LEVEL_SILENCE;
  db = -10.0 * log10(sum / n);
  if (db <= 0.0)
    return 0;
  if (db >= LEVEL_SILENCE)
    return LEVEL_SILENCE;
  return (int)(db + 0.5);
}

int sfu_opus_meter_feed(sfu_opus_meter_t *m, const uint8_t *p, size_t len) {
  int n;

  if (m == NULL)
    return SFU_EINVAL;
  if (p == NULL || len == 0) {
    /* Conceal one packet of the last duration, in whole 2.5 ms steps. */
    opus_int32 dur = 0;
    if (opus_decoder_ctl(m->dec, OPUS_GET_LAST_PACKET_DURATION(&dur)) !=
            OPUS_OK ||
        dur <= 0 || dur > METER_MAX_SAMPLES)
      dur = METER_PLC_DEFAULT;
    n = opus_decode_float(m->dec, NULL, 0, m->pcm, (int)dur, 0);
  } else if (len > (size_t)INT32_MAX) {
    n = OPUS_INVALID_PACKET; /* opus_int32 length; padding may be huge */
  } else {
    n = opus_decode_float(m->dec, p, (opus_int32)len, m->pcm,
                          METER_MAX_SAMPLES, 0);
  }
  if (n < 0) {
    m->errors++;
    return SFU_EPROTO;
  }
  m->packets++;
  return level_of(m->pcm, n);
}
