/*
 * red.h -- redundant audio (RFC 2198) as views over an RTP payload: the
 * "red/48000/2" payload browsers send Opus in (a=fmtp:<red> <opus>/<opus>),
 * each packet carrying the newest Opus frame (the primary, last) and one or
 * more older ones before it.
 *
 * sfu_red_parse() checks every length once and fills an sfu_red_t of
 * offsets into the caller's payload; nothing is copied or allocated, and
 * the view is valid while the payload is. sfu_red_set_pts() rewrites the
 * block headers of a payload in place (the forwarder's copy for a
 * subscriber whose Opus type differs from the publisher's). Called by
 * sfu/room/forwarder.c on the room's thread; no state.
 */
#ifndef SFU_RED_H
#define SFU_RED_H

#include <stddef.h>
#include <stdint.h>

#include "sfu/base/sfu.h"

/* Blocks a payload may carry, the primary included. Browsers send 2 or 3
 * (RFC 2198 sets no limit; more is refused as SFU_E2BIG). */
#define SFU_RED_MAX_BLOCKS 8

/* One block of a RED payload: the primary (the last) or a redundant one. */
typedef struct sfu_red_block_s {
  uint8_t pt;          /* its payload type, 0..127 */
  uint16_t ts_offset;  /* the packet's timestamp minus this block's, 0..16383;
                          0 for the primary */
  size_t off;          /* its data: offset from the start of the payload */
  size_t len;          /* its length (may be 0) */
} sfu_red_block_t;

/* A parsed RED payload: n blocks in the packet's order, the primary last.
 * hdr_len bytes of block headers come first (4 per redundant block, 1 for
 * the primary), then the blocks' data in the same order. */
typedef struct sfu_red_s {
  int n;                                /* 1..SFU_RED_MAX_BLOCKS */
  size_t hdr_len;                       /* bytes of block headers */
  sfu_red_block_t b[SFU_RED_MAX_BLOCKS]; /* b[n - 1] is the primary */
} sfu_red_t;

/*
 * Parses the RED payload of `len` bytes at `p` into `out`. Returns 0, or
 * SFU_EPROTO when the payload is empty, ends inside a block header, or its
 * redundant blocks' lengths run past its end; SFU_E2BIG when it has more
 * than SFU_RED_MAX_BLOCKS blocks. `out` is unspecified after an error.
 */
int sfu_red_parse(const uint8_t *p, size_t len, sfu_red_t *out);

/* Sets the payload type of every block header of the payload `p` that
 * sfu_red_parse() described as `r` to `pt` (F bits and the rest kept). */
void sfu_red_set_pts(uint8_t *p, const sfu_red_t *r, uint8_t pt);

#endif
