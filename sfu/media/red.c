/*
 * red.c -- RFC 2198 redundant audio payloads (red.h).
 *
 * Views only: the parser walks the block headers, checks that the
 * redundant blocks' lengths fit what follows them, and gives the primary
 * the rest. A zero-length block is legal (a sender with nothing to repeat).
 */
#include "sfu/media/red.h"

/*
 * RFC 2198 §3: a header per block, the last one (F = 0) one byte long:
 *
 *    0                   1                    2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |F|   block PT  |  timestamp offset         |   block length    |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 *    0 1 2 3 4 5 6 7
 *   +-+-+-+-+-+-+-+-+
 *   |0|   Block PT  |
 *   +-+-+-+-+-+-+-+-+
 *
 * then the blocks' data in the headers' order; the primary's length is
 * what remains.
 */
int sfu_red_parse(const uint8_t *p, size_t len, sfu_red_t *out) {
  size_t h = 0, data = 0;
  int n = 0;

  if (!p || len == 0) return SFU_EPROTO;
  while (p[h] & 0x80) {
    if (n == SFU_RED_MAX_BLOCKS - 1) return SFU_E2BIG;
    if (len - h < 5) return SFU_EPROTO; /* this header and at least the last one */
    sfu_red_block_t *b = &out->b[n++];
    b->pt = p[h] & 0x7f;
    b->ts_offset = (uint16_t)(p[h + 1] << 6 | p[h + 2] >> 2);
    b->len = (size_t)(p[h + 2] & 0x03) << 8 | p[h + 3];
    data += b->len;
    h += 4;
  }
  sfu_red_block_t *prim = &out->b[n++];
  prim->pt = p[h] & 0x7f;
  prim->ts_offset = 0;
  h += 1;
  if (data > len - h) return SFU_EPROTO;
  size_t off = h;
  for (int i = 0; i < n - 1; i++) {
    out->b[i].off = off;
    off += out->b[i].len;
  }
  prim->off = off;
  prim->len = len - off;
  out->n = n;
  out->hdr_len = h;
  return 0;
}

void sfu_red_set_pts(uint8_t *p, const sfu_red_t *r, uint8_t pt) {
  size_t h = 0;
  for (int i = 0; i < r->n; i++) {
    p[h] = (uint8_t)((p[h] & 0x80) | (pt & 0x7f));
    h += i < r->n - 1 ? 4 : 1;
  }
}
