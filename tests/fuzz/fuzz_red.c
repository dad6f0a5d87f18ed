/*
 * fuzz_red.c -- libFuzzer target for sfu_red_parse() and sfu_red_set_pts()
 * (sfu/media/red.c), the RFC 2198 payloads publishers send Opus in.
 *
 * Each input is one RED payload, copied into a heap buffer of exactly its
 * size (ASan catches a read past it). When it parses:
 *
 *   - 1..SFU_RED_MAX_BLOCKS blocks, the headers first (4 bytes per
 *     redundant block, 1 for the primary), then the blocks' data one after
 *     the other, the primary ending at the end of the payload;
 *   - the primary's timestamp offset is 0;
 *   - after sfu_red_set_pts() every block has the new type, and nothing
 *     else moved or changed.
 *
 * Any broken property aborts.
 *
 * Build by hand:
 *   clang -g -fsanitize=fuzzer,address,undefined -I. \
 *     tests/fuzz/fuzz_red.c sfu/media/red.c -o /tmp/fred
 *   /tmp/fred -max_total_time=60 /tmp/scratch tests/fuzz/corpus/red
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sfu/media/red.h"
#include "tests/fuzz/check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint8_t *p = malloc(size ? size : 1);
  sfu_red_t r, again;

  if (!p) return 0;
  memcpy(p, data, size);
  if (sfu_red_parse(p, size, &r) != 0) goto out;
  CHECK(r.n >= 1 && r.n <= SFU_RED_MAX_BLOCKS);
  CHECK(r.hdr_len == 4 * (size_t)(r.n - 1) + 1);
  size_t off = r.hdr_len;
  for (int i = 0; i < r.n; i++) {
    CHECK(r.b[i].off == off);
    CHECK(r.b[i].len <= size - off);
    CHECK(r.b[i].pt < 128);
    off += r.b[i].len;
  }
  CHECK(off == size);
  CHECK(r.b[r.n - 1].ts_offset == 0);

  uint8_t pt = (uint8_t)((size ? data[size - 1] : 0) & 0x7f);
  sfu_red_set_pts(p, &r, pt);
  CHECK(sfu_red_parse(p, size, &again) == 0);
  CHECK(again.n == r.n && again.hdr_len == r.hdr_len);
  for (int i = 0; i < r.n; i++) {
    CHECK(again.b[i].pt == pt);
    CHECK(again.b[i].off == r.b[i].off && again.b[i].len == r.b[i].len);
    CHECK(again.b[i].ts_offset == r.b[i].ts_offset);
  }
  CHECK(memcmp(p + r.hdr_len, data + r.hdr_len, size - r.hdr_len) == 0);
out:
  free(p);
  return 0;
}
