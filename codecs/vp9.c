/*
 * vp9.c -- the VP9 payload descriptor (RFC 9628 §4.2), its scalability
 * structure (§4.2.1), and the sizes in a keyframe's uncompressed header
 * (VP9 bitstream specification §6.2), read in place.
 *
 * A VP9 RTP payload is a descriptor of 1 byte plus optional fields, then a
 * piece of one layer frame (or of a superframe). The descriptor is walked
 * once, front to back, each optional field's length checked before it is
 * read. Nothing here depends on state from earlier packets: the SS is read
 * for this packet's layer only and is not remembered (the forwarder may
 * keep the last one it saw, keyed by picture id).
 *
 * Sizes. A keyframe's uncompressed header carries the coded frame size,
 * which is the authority; the SS, which senders put on the first packet of
 * a keyframe picture, is the fallback, and the only source for non-key
 * layer frames. Either source failing only leaves the size at 0.
 */
#include "codecs/vp9.h"
#include "sfu/base/bytes.h"
#include "sfu/base/sfu.h"

/*
 * The descriptor (RFC 9628 §4.2; flexible mode F = 1 has the P_DIFF list,
 * non-flexible mode F = 0 has TL0PICIDX instead):
 *
 *        0 1 2 3 4 5 6 7
 *       +-+-+-+-+-+-+-+-+
 *       |I|P|L|F|B|E|V|Z| (REQUIRED)
 *       +-+-+-+-+-+-+-+-+
 *  I:   |M| PICTURE ID  |
 *       +-+-+-+-+-+-+-+-+
 *  M:   | EXTENDED PID  | (15-bit id when M = 1)
 *       +-+-+-+-+-+-+-+-+
 *  L:   | TID |U| SID |D|
 *       +-+-+-+-+-+-+-+-+
 *       |   TL0PICIDX   | (L = 1 and F = 0 only)
 *       +-+-+-+-+-+-+-+-+                  -\
 *  P,F: | P_DIFF      |N| (F = 1 and P = 1)  - up to 3 times, N = 1: more
 *       +-+-+-+-+-+-+-+-+                  -/
 *  V:   | SS            |
 *       | ..            |
 *       +-+-+-+-+-+-+-+-+
 *
 * The scalability structure:
 *
 *       +-+-+-+-+-+-+-+-+
 *  V:   | N_S |Y|G|-|-|-|   N_S + 1 spatial layers
 *       +-+-+-+-+-+-+-+-+                -\
 *  Y:   |     WIDTH     | (16 bits)       - N_S + 1 times
 *       |     HEIGHT    | (16 bits)       -
 *       +-+-+-+-+-+-+-+-+                -/
 *  G:   |      N_G      |
 *       +-+-+-+-+-+-+-+-+                        -\
 *  N_G: | TID |U| R |-|-|                         - N_G times
 *       |    P_DIFF     | (R times)               -
 *       +-+-+-+-+-+-+-+-+                        -/
 */
#define I_BIT 0x80
#define P_BIT 0x40
#define L_BIT 0x20
#define F_BIT 0x10
#define B_BIT 0x08
#define E_BIT 0x04
#define V_BIT 0x02
#define M_BIT 0x80
#define MAX_P_DIFF 3
#define VP9_SYNC_CODE 0x498342

/*
 * Frame size from an uncompressed header that starts at p (VP9 bitstream
 * §6.2 uncompressed_header(), §6.2.2 color_config(), §6.2.3 frame_size()):
 *
 *   frame_marker(2) = 2, profile_low_bit(1), profile_high_bit(1),
 *   [reserved_zero(1) if profile 3], show_existing_frame(1) = 0,
 *   frame_type(1) = 0 (KEY_FRAME), show_frame(1), error_resilient_mode(1),
 *   frame_sync_code(24) = 0x49 0x83 0x42,
 *   color_config: [ten_or_twelve_bit(1) if profile >= 2], color_space(3),
 *     if color_space != CS_RGB (7): color_range(1), and for profiles 1 and
 *     3 subsampling_x(1) subsampling_y(1) reserved_zero(1);
 *     else for profiles 1 and 3 reserved_zero(1),
 *   frame_width_minus_1(16), frame_height_minus_1(16).
 *
 * Returns 1 and the size for a keyframe header that holds all of this,
 * else 0.
 */
static int keyframe_size(const uint8_t *p, size_t len, int *w, int *h) {
  sfu__bits_t b;
  uint32_t profile, fw, fh;

  sfu__bits_init(&b, p, len);
  if (sfu__bits_get(&b, 2) != 2)
    return 0;
  profile = sfu__bits_get(&b, 1);
  profile |= sfu__bits_get(&b, 1) << 1;
  if (profile == 3)
    sfu__bits_get(&b, 1);
  if (sfu__bits_get(&b, 1)) /* show_existing_frame: no header follows */
    return 0;
  if (sfu__bits_get(&b, 1) != 0) /* frame_type: non-key */
    return 0;
  sfu__bits_get(&b, 2); /* show_frame, error_resilient_mode */
  if (sfu__bits_get(&b, 24) != VP9_SYNC_CODE)
    return 0;
  if (profile >= 2)
    sfu__bits_get(&b, 1);
  if (sfu__bits_get(&b, 3) != 7) {
    sfu__bits_get(&b, 1);
    if (profile == 1 || profile == 3)
      sfu__bits_get(&b, 3);
  } else if (profile == 1 || profile == 3) {
    sfu__bits_get(&b, 1);
  }
  fw = sfu__bits_get(&b, 16) + 1;
  fh = sfu__bits_get(&b, 16) + 1;
  if (b.err)
    return 0;
  *w = (int)fw;
  *h = (int)fh;
  return 1;
}

int sfu_vp9_parse(const uint8_t *p, size_t len, sfu_video_info_t *out) {
  size_t off = 1;
  uint8_t b0;
  int layer, n, i;
  int ss_w = 0, ss_h = 0;

  if (p == NULL || out == NULL || len < 1)
    return SFU_EINVAL;
  sfu__video_info_reset(out);
  b0 = p[0];

  if (b0 & I_BIT) {
    if (off >= len)
      return SFU_EINVAL;
    if (p[off] & M_BIT) {
      if (len - off < 2)
        return SFU_EINVAL;
      out->picture_id = (p[off] & 0x7f) << 8 | p[off + 1];
      out->pid_bits = 15;
      off += 2;
    } else {
      out->picture_id = p[off] & 0x7f;
      out->pid_bits = 7;
      off += 1;
    }
  }

  if (b0 & L_BIT) {
    if (off >= len)
      return SFU_EINVAL;
    out->tid = p[off] >> 5;
    out->switch_up = (p[off] >> 4) & 1;
    out->sid = (p[off] >> 1) & 7;
    off++;
    if (!(b0 & F_BIT)) {
      if (off >= len)
        return SFU_EINVAL;
      out->tl0picidx = p[off++];
    }
  }

  if ((b0 & F_BIT) && (b0 & P_BIT)) {
    for (i = 0;; i++) {
      if (i == MAX_P_DIFF || off >= len)
        return SFU_EINVAL;
      if (!(p[off++] & 1)) /* N = 0: last reference */
        break;
    }
  }

  if (b0 & V_BIT) {
    int ns, y, g;
    if (off >= len)
      return SFU_EINVAL;
    ns = (p[off] >> 5) + 1;
    y = (p[off] >> 4) & 1;
    g = (p[off] >> 3) & 1;
    off++;
    layer = out->sid >= 0 ? out->sid : 0;
    if (y) {
      if (len - off < (size_t)ns * 4)
        return SFU_EINVAL;
      if (layer < ns) {
        ss_w = sfu_rd16(p + off + (size_t)layer * 4);
        ss_h = sfu_rd16(p + off + (size_t)layer * 4 + 2);
      }
      off += (size_t)ns * 4;
    }
    if (g) {
      if (off >= len)
        return SFU_EINVAL;
      n = p[off++];
      for (i = 0; i < n; i++) {
        size_t r;
        if (off >= len)
          return SFU_EINVAL;
        r = (p[off] >> 2) & 3;
        off++;
        if (len - off < r)
          return SFU_EINVAL;
        off += r;
      }
    }
  }

  if (off >= len) /* a descriptor with no frame data after it */
    return SFU_EINVAL;

  out->begins_frame = (b0 & B_BIT) != 0;
  out->ends_frame = (b0 & E_BIT) != 0;
  out->keyframe = out->begins_frame && !(b0 & P_BIT) && out->sid <= 0;
  if (!(out->keyframe &&
        keyframe_size(p + off, len - off, &out->width, &out->height))) {
    out->width = ss_w;
    out->height = ss_h;
  }
  return 0;
}
