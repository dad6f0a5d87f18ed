/*
 * tcpframe.c -- RFC 4571 deframing, in place when it can.
 *
 * States: gathering the 2-byte length (nhdr < 2), then gathering `need`
 * payload bytes (have < need). A frame whose length and payload are both
 * whole in the caller's buffer is returned as a view into it; only frames
 * split across reads are copied into f->buf.
 */
#include <string.h>

#include "sfu/base/bytes.h"
#include "sfu/net/tcpframe.h"

void sfu_tcpframe_init(sfu_tcpframe_t *f) {
  f->nhdr = 0;
  f->need = 0;
  f->have = 0;
}

int sfu_tcpframe_next(sfu_tcpframe_t *f, const uint8_t **data, size_t *n,
                      const uint8_t **frame, size_t *len) {
  const uint8_t *p = *data;
  size_t left = *n;

  if (f->nhdr < 2) {
    if (f->nhdr == 0 && left >= 2) { /* the common case: a whole header here */
      size_t l = sfu_rd16(p);
      if (l > SFU_TCPFRAME_MAX) return -1;
      if (left - 2 >= l) { /* and the whole frame: a view, no copy */
        *frame = p + 2;
        *len = l;
        *data = p + 2 + l;
        *n = left - 2 - l;
        return 1;
      }
      f->hdr[0] = p[0], f->hdr[1] = p[1];
      f->nhdr = 2;
      p += 2, left -= 2;
    } else {
      while (f->nhdr < 2 && left > 0) f->hdr[f->nhdr++] = *p++, left--;
      if (f->nhdr < 2) {
        *data = p, *n = left;
        return 0;
      }
    }
    f->need = sfu_rd16(f->hdr);
    f->have = 0;
    if (f->need > SFU_TCPFRAME_MAX) return -1;
  }
  size_t take = f->need - f->have < left ? f->need - f->have : left;
  if (take) memcpy(f->buf + f->have, p, take);
  f->have += take;
  *data = p + take;
  *n = left - take;
  if (f->have < f->need) return 0;
  f->nhdr = 0; /* next frame */
  *frame = f->buf;
  *len = f->need;
  return 1;
}
