/*
 * av1.c -- AV1 RTP payloads (AOMedia av1-rtp-spec §4.4-§4.5) read in
 * place, and the maximum frame size from a sequence header OBU (AV1
 * bitstream specification §5.5).
 *
 * A payload is a one-byte aggregation header and one or more OBU elements.
 * Each element is an OBU (header, optional extension, body, usually
 * without its own size field) or a fragment of one: the first element may
 * be the tail of an OBU begun in an earlier packet (Z), the last may be
 * continued in the next (Y). Every element but the last carries a leb128
 * length; the last one does too unless W, the element count, is given.
 * sfu_av1_parse() walks all elements once, checking each length against
 * what is left, and looks at the OBU header of each element that starts
 * an OBU. Nothing is copied.
 *
 * The sequence header is read only for its size; a header split over two
 * packets, or one whose fields do not fit, leaves the size at 0.
 */
#include "codecs/av1.h"
#include "sfu/base/sfu.h"

/*
 * Aggregation header:          OBU header (+ extension if X):
 *
 *    0 1 2 3 4 5 6 7             0 1 2 3 4 5 6 7   0 1 2 3 4 5 6 7
 *   +-+-+-+-+-+-+-+-+           +-+-+-+-+-+-+-+-+ +-+-+-+-+-+-+-+-+
 *   |Z|Y| W |N|-|-|-|           |F| type  |X|S|R| | TID |SID| rsv |
 *   +-+-+-+-+-+-+-+-+           +-+-+-+-+-+-+-+-+ +-+-+-+-+-+-+-+-+
 *
 *   Z: first element continues an OBU    S: obu_size (leb128) follows
 *   Y: last element continues next       the header(s); RTP senders
 *   W: 0, or the element count 1..3      should leave it out
 *   N: first packet of a coded video sequence
 *
 * Payload:  | aggr hdr | len | OBU element | len | OBU element | ... |
 *           (with W = k != 0 the k-th element has no len)
 */
#define Z_BIT 0x80
#define N_BIT 0x08
#define OBU_TYPE(b) (((b) >> 3) & 0x0f)
#define OBU_X_BIT 0x04
#define OBU_S_BIT 0x02
#define LEB128_MAX_BYTES 8

/*
 * leb128 at p (AV1 §4.10.5): 7 bits a byte, low group first, high bit set
 * on all but the last byte. Returns the bytes used (1..8), or 0 if the
 * number does not end within `avail` bytes or the 8-byte limit, or does
 * not fit 32 bits.
 */
static int leb128(const uint8_t *p, size_t avail, uint64_t *v) {
  uint64_t x = 0;
  int i;

  for (i = 0; i < LEB128_MAX_BYTES && (size_t)i < avail; i++) {
    x |= (uint64_t)(p[i] & 0x7f) << (7 * i);
    if (!(p[i] & 0x80)) {
      if (x > UINT32_MAX)
        return 0;
      *v = x;
      return i + 1;
    }
  }
  return 0;
}

/* uvlc() (§4.10.3): like Exp-Golomb, capped at 2^32 - 1. */
static uint32_t uvlc(sfu__bits_t *b) {
  int zeros = 0;

  while (!sfu__bits_get(b, 1)) {
    if (b->err)
      return 0;
    zeros++;
  }
  if (zeros >= 32) {
    sfu__bits_get(b, 32); /* the spec reads and ignores them too */
    return UINT32_MAX;
  }
  return (uint32_t)(sfu__bits_get(b, zeros) + ((1ull << zeros) - 1));
}

/*
 * sequence_header_obu() up to the maximum frame size (§5.5.1):
 *
 *   seq_profile f(3), still_picture f(1), reduced_still_picture_header f(1)
 *   if reduced: seq_level_idx[0] f(5)
 *   else:
 *     timing_info_present_flag f(1)
 *     if set: num_units_in_display_tick f(32), time_scale f(32),
 *             equal_picture_interval f(1) [num_ticks_per_picture uvlc],
 *             decoder_model_info_present_flag f(1)
 *             [buffer_delay_length_minus_1 f(5),
 *              num_units_in_decoding_tick f(32),
 *              buffer_removal_time_length_minus_1 f(5),
 *              frame_presentation_time_length_minus_1 f(5)]
 *     initial_display_delay_present_flag f(1)
 *     operating_points_cnt_minus_1 f(5), per operating point:
 *       operating_point_idc f(12), seq_level_idx f(5),
 *       [seq_tier f(1) if seq_level_idx > 7],
 *       [decoder_model_present_for_this_op f(1), if set
 *        decoder_buffer_delay f(n), encoder_buffer_delay f(n),
 *        low_delay_mode_flag f(1), n = buffer_delay_length_minus_1 + 1],
 *       [initial_display_delay_present_for_this_op f(1), if set f(4)]
 *   frame_width_bits_minus_1 f(4), frame_height_bits_minus_1 f(4)
 *   max_frame_width_minus_1 f(wbits), max_frame_height_minus_1 f(hbits)
 *
 * `obu` is the whole element, starting at the OBU header. Returns 1 and
 * the size, or 0.
 */
static int sequence_size(const uint8_t *obu, size_t len, int *w, int *h) {
  sfu__bits_t b;
  size_t off = (obu[0] & OBU_X_BIT) ? 2 : 1;
  uint64_t size;
  uint32_t decoder_model = 0, delay_len = 0, ops, i, wbits, hbits, fw, fh;
  int display_delay, n;

  if (off > len)
    return 0;
  if (obu[0] & OBU_S_BIT) {
    n = leb128(obu + off, len - off, &size);
    if (n == 0)
      return 0;
    off += (size_t)n;
    if (size < len - off)
      len = off + (size_t)size;
  }
  sfu__bits_init(&b, obu + off, len - off);

  sfu__bits_get(&b, 4); /* seq_profile, still_picture */
  if (sfu__bits_get(&b, 1)) {
    sfu__bits_get(&b, 5); /* seq_level_idx[0] */
  } else {
    if (sfu__bits_get(&b, 1)) { /* timing_info_present_flag */
      sfu__bits_get(&b, 32);
      sfu__bits_get(&b, 32);
      if (sfu__bits_get(&b, 1))
        uvlc(&b);
      decoder_model = sfu__bits_get(&b, 1);
      if (decoder_model) {
        delay_len = sfu__bits_get(&b, 5) + 1;
        sfu__bits_get(&b, 32);
        sfu__bits_get(&b, 10);
      }
    }
    display_delay = (int)sfu__bits_get(&b, 1);
    ops = sfu__bits_get(&b, 5) + 1;
    for (i = 0; i < ops && !b.err; i++) {
      sfu__bits_get(&b, 12); /* operating_point_idc */
      if (sfu__bits_get(&b, 5) > 7)
        sfu__bits_get(&b, 1); /* seq_tier */
      if (decoder_model && sfu__bits_get(&b, 1)) {
        sfu__bits_get(&b, (int)delay_len);
        sfu__bits_get(&b, (int)delay_len);
        sfu__bits_get(&b, 1);
      }
      if (display_delay && sfu__bits_get(&b, 1))
        sfu__bits_get(&b, 4);
    }
  }
  wbits = sfu__bits_get(&b, 4) + 1;
  hbits = sfu__bits_get(&b, 4) + 1;
  fw = sfu__bits_get(&b, (int)wbits) + 1;
  fh = sfu__bits_get(&b, (int)hbits) + 1;
  if (b.err)
    return 0;
  *w = (int)fw;
  *h = (int)fh;
  return 1;
}

/* An OBU that can be the first of a frame in a packet; see av1.h. */
static int opens_frame(int type) {
  return type == SFU_AV1_OBU_SEQUENCE_HEADER ||
         type == SFU_AV1_OBU_TEMPORAL_DELIMITER ||
         type == SFU_AV1_OBU_FRAME_HEADER || type == SFU_AV1_OBU_METADATA ||
         type == SFU_AV1_OBU_FRAME;
}

int sfu_av1_parse(const uint8_t *p, size_t len, sfu_video_info_t *out) {
  size_t off = 1, elen;
  uint64_t v;
  int w, count = 0, n;
  uint8_t hdr;

  if (p == NULL || out == NULL || len < 2)
    return SFU_EINVAL;
  sfu__video_info_reset(out);
  w = (p[0] >> 4) & 3;
  out->keyframe = (p[0] & N_BIT) != 0;

  while (off < len) {
    if (w != 0 && count == w - 1) { /* the last element, no length */
      elen = len - off;
    } else {
      n = leb128(p + off, len - off, &v);
      if (n == 0)
        return SFU_EINVAL;
      off += (size_t)n;
      if (v > len - off)
        return SFU_EINVAL;
      elen = (size_t)v;
    }
    if (elen == 0)
      return SFU_EINVAL;

    if (count > 0 || !(p[0] & Z_BIT)) { /* this element starts an OBU */
      hdr = p[off];
      if (count == 0)
        out->begins_frame = opens_frame(OBU_TYPE(hdr));
      if (out->tid < 0 && (hdr & OBU_X_BIT) && elen >= 2) {
        out->tid = p[off + 1] >> 5;
        out->sid = (p[off + 1] >> 3) & 3;
      }
      if (OBU_TYPE(hdr) == SFU_AV1_OBU_SEQUENCE_HEADER && out->width == 0)
        sequence_size(p + off, elen, &out->width, &out->height);
    }
    off += elen;
    count++;
  }
  if (w != 0 && count != w)
    return SFU_EINVAL;
  return 0;
}
