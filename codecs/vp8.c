/*
 * vp8.c -- the VP8 payload descriptor (RFC 7741 §4.2) and the start of the
 * VP8 payload header (§4.3), read in place.
 *
 * A VP8 RTP payload is a descriptor of 1 to 6 bytes followed by a piece of
 * one VP8 frame. walk() finds where each optional descriptor field sits
 * and where the frame bytes start; both the parser and the rewriter use
 * it, so they can never disagree about the layout. Fields are read with
 * byte shifts and every offset is checked against `len` before the byte at
 * it is touched.
 *
 * Only the packet that begins a frame (S = 1, PID = 0) has the VP8 payload
 * header, the frame tag of RFC 6386 §9.1. Its lowest bit says inter (1) or
 * key (0) frame. A keyframe's tag is followed by the start code 9d 01 2a
 * and two little-endian 16-bit words whose low 14 bits are the width and
 * height (the top two bits are the scaling mode, which the SFU ignores).
 *
 * The rewrite keeps every byte in place: the forwarder gives each
 * subscriber a continuous picture id / TL0PICIDX sequence when it switches
 * between simulcast encodings, whose own counters are unrelated.
 */
#include "codecs/vp8.h"
#include "sfu/base/sfu.h"

/*
 * The descriptor (RFC 7741 §4.2):
 *
 *        0 1 2 3 4 5 6 7
 *       +-+-+-+-+-+-+-+-+
 *       |X|R|N|S|R| PID | (REQUIRED)
 *       +-+-+-+-+-+-+-+-+
 *  X:   |I|L|T|K| RSV   | (OPTIONAL)
 *       +-+-+-+-+-+-+-+-+
 *  I:   |M| PictureID   | (OPTIONAL)
 *       +-+-+-+-+-+-+-+-+
 *  M:   |   PictureID   | (15-bit id when M = 1)
 *       +-+-+-+-+-+-+-+-+
 *  L:   |   TL0PICIDX   | (OPTIONAL)
 *       +-+-+-+-+-+-+-+-+
 *  T/K: |TID|Y| KEYIDX  | (OPTIONAL: present if T or K is set)
 *       +-+-+-+-+-+-+-+-+
 *
 * The VP8 payload header (first bytes of a frame, S = 1 and PID = 0):
 *
 *       +-+-+-+-+-+-+-+-+
 *       |Size0|H| VER |P|   P = 0: key frame
 *       +-+-+-+-+-+-+-+-+
 *       |     Size1     |
 *       +-+-+-+-+-+-+-+-+
 *       |     Size2     |
 *       +-+-+-+-+-+-+-+-+
 *       | 9d  | 01 | 2a |   keyframes only: start code,
 *       | width  (LE16) |   14 bits of size + 2 bits of scaling each
 *       | height (LE16) |
 */
#define X_BIT 0x80
#define S_BIT 0x10
#define PID_MASK 0x07
#define I_BIT 0x80
#define L_BIT 0x40
#define T_BIT 0x20
#define K_BIT 0x10
#define M_BIT 0x80
#define KEYFRAME_HEADER_LEN 10

/* Where the descriptor's fields are; 0 means absent (byte 0 is never one). */
typedef struct {
  size_t pid_off;  /* first picture id byte */
  int pid_bits;    /* 7 or 15 */
  size_t tl0_off;  /* TL0PICIDX byte */
  size_t tk_off;   /* TID/Y/KEYIDX byte */
  size_t hdr_off;  /* first byte of the VP8 frame data */
} layout_t;

static int walk(const uint8_t *p, size_t len, layout_t *l) {
  size_t off = 1;
  uint8_t x;

  l->pid_off = l->tl0_off = l->tk_off = 0;
  l->pid_bits = 0;
  if (p == NULL || len < 1)
    return SFU_EINVAL;
  if (p[0] & X_BIT) {
    if (len < 2)
      return SFU_EINVAL;
    x = p[1];
    off = 2;
    if (x & I_BIT) {
      if (off >= len)
        return SFU_EINVAL;
      l->pid_off = off;
      l->pid_bits = (p[off] & M_BIT) ? 15 : 7;
      off += l->pid_bits == 15 ? 2 : 1;
    }
    if (x & L_BIT) {
      if (off >= len)
        return SFU_EINVAL;
      l->tl0_off = off++;
    }
    if (x & (T_BIT | K_BIT)) {
      if (off >= len)
        return SFU_EINVAL;
      if (x & T_BIT)
        l->tk_off = off;
      off++;
    }
  }
  if (off >= len) /* a descriptor with no frame data after it */
    return SFU_EINVAL;
  l->hdr_off = off;
  return 0;
}

int sfu_vp8_parse(const uint8_t *p, size_t len, sfu_video_info_t *out) {
  layout_t l;
  const uint8_t *h;
  size_t hlen;
  int rv;

  if (out == NULL)
    return SFU_EINVAL;
  rv = walk(p, len, &l);
  if (rv != 0)
    return rv;
  sfu__video_info_reset(out);
  if (l.pid_bits == 15) {
    out->picture_id = (p[l.pid_off] & 0x7f) << 8 | p[l.pid_off + 1];
    out->pid_bits = 15;
  } else if (l.pid_bits == 7) {
    out->picture_id = p[l.pid_off] & 0x7f;
    out->pid_bits = 7;
  }
  if (l.tl0_off)
    out->tl0picidx = p[l.tl0_off];
  if (l.tk_off) {
    out->tid = p[l.tk_off] >> 6;
    out->switch_up = (p[l.tk_off] >> 5) & 1;
  }

  out->begins_frame = (p[0] & S_BIT) && (p[0] & PID_MASK) == 0;
  if (!out->begins_frame)
    return 0;
  h = p + l.hdr_off;
  hlen = len - l.hdr_off;
  if (h[0] & 1) /* P = 1: inter frame */
    return 0;
  out->keyframe = 1;
  if (hlen >= KEYFRAME_HEADER_LEN && h[3] == 0x9d && h[4] == 0x01 &&
      h[5] == 0x2a) {
    out->width = (h[6] | h[7] << 8) & 0x3fff;
    out->height = (h[8] | h[9] << 8) & 0x3fff;
  }
  return 0;
}

int sfu_vp8_rewrite(uint8_t *p, size_t len, int picture_id, int tl0picidx) {
  layout_t l;
  int rv;

  rv = walk(p, len, &l);
  if (rv != 0)
    return rv;
  if (picture_id >= 0 && l.pid_bits == 15) {
    p[l.pid_off] = (uint8_t)(M_BIT | ((picture_id >> 8) & 0x7f));
    p[l.pid_off + 1] = (uint8_t)picture_id;
  } else if (picture_id >= 0 && l.pid_bits == 7) {
    p[l.pid_off] = (uint8_t)(picture_id & 0x7f);
  }
  if (tl0picidx >= 0 && l.tl0_off)
    p[l.tl0_off] = (uint8_t)tl0picidx;
  return 0;
}
