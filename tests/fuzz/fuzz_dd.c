/*
 * fuzz_dd.c -- libFuzzer target for the Dependency Descriptor
 * (sfu/media/dd.c): sfu_dd_parse(), sfu_dd_targets_upto() and
 * sfu_dd_rewrite().
 *
 * An input is a split byte s and then two descriptors: the first
 * min(s, rest) bytes, read with no structure known (a keyframe's, when it
 * carries one), and the others, read with the first one's structure if it
 * gave one. Each is copied into a heap buffer of exactly its size (ASan
 * catches a read past it). For every descriptor that parses:
 *
 *   - its ids lie within the structure (spatial id <= max_sid < 4,
 *     temporal id <= max_tid < 8), at most 16 frame diffs, each 1..4096,
 *     the bit offsets within the descriptor, in order;
 *   - a second parse gives the same result (nothing kept between calls);
 *   - rewritten with a mask and a frame number taken from the input, it
 *     parses again to the same frame (flags, template, layers, DTIs, frame
 *     and chain diffs; a structure identical to the one it carried) with
 *     that mask, cut to the structure's targets, and that frame number;
 *     and a rewrite into a buffer one byte short is refused.
 *
 * Any broken property aborts.
 *
 * Build by hand:
 *   clang -g -fsanitize=fuzzer,address,undefined -I. \
 *     tests/fuzz/fuzz_dd.c sfu/media/dd.c -o /tmp/fdd
 *   /tmp/fdd -max_total_time=60 /tmp/scratch tests/fuzz/corpus/dd
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sfu/base/sfu.h"
#include "sfu/media/dd.h"
#include "tests/fuzz/check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static sfu_dd_structure_t st1, st2, scratch, scratch2;

static void same_frame(const sfu_dd_t *a, const sfu_dd_t *b, int nchains) {
  CHECK(a->start == b->start && a->end == b->end && a->template_id == b->template_id);
  CHECK(a->has_structure == b->has_structure && a->custom_dtis == b->custom_dtis &&
        a->custom_fdiffs == b->custom_fdiffs && a->custom_chains == b->custom_chains);
  CHECK(a->sid == b->sid && a->tid == b->tid && a->dti == b->dti);
  CHECK(a->width == b->width && a->height == b->height);
  CHECK(a->nfdiffs == b->nfdiffs);
  CHECK(memcmp(a->fdiff, b->fdiff, sizeof(a->fdiff[0]) * (size_t)a->nfdiffs) == 0);
  CHECK(memcmp(a->chain_fdiff, b->chain_fdiff, (size_t)nchains) == 0);
}

/* Descriptor d/n read with `known`; a structure it carries goes to
 * `fresh`. Returns the structure it was read with, or NULL. */
static const sfu_dd_structure_t *one(const uint8_t *d, size_t n, const sfu_dd_structure_t *known,
                                     sfu_dd_structure_t *fresh, uint32_t mask, uint16_t fn) {
  uint8_t *p = malloc(n ? n : 1), out[SFU_DD_MAX_LEN + 8];
  sfu_dd_t v, again;
  const sfu_dd_structure_t *st = NULL;
  if (!p) return NULL;
  memcpy(p, d, n);
  int rv = sfu_dd_parse(p, n, known, fresh, &v);
  if (rv != 0) {
    CHECK(rv == SFU_EINVAL || rv == SFU_ENOENT);
    goto out;
  }
  st = v.has_structure ? fresh : known;
  CHECK(st && st->ntemplates >= 1 && st->ntemplates <= SFU_DD_MAX_TEMPLATES);
  CHECK(st->ntargets >= 1 && st->ntargets <= SFU_DD_MAX_TARGETS);
  CHECK(st->nchains >= 0 && st->nchains <= st->ntargets);
  CHECK(st->max_sid < SFU_DD_MAX_SPATIAL && st->max_tid < SFU_DD_MAX_TEMPORAL);
  CHECK(v.sid <= st->max_sid && v.tid <= st->max_tid);
  CHECK(v.nfdiffs >= 0 && v.nfdiffs <= SFU_DD_MAX_FDIFFS);
  for (int i = 0; i < v.nfdiffs; i++) CHECK(v.fdiff[i] >= 1 && v.fdiff[i] <= 4096);
  CHECK(v.len == n && v.custom_at <= v.custom_end && v.custom_end <= n * 8);
  CHECK(v.structure_at <= v.structure_end && v.structure_end <= v.custom_at);
  CHECK(v.extended == (n > 3));
  uint32_t all = sfu_dd_targets_upto(st, SFU_DD_MAX_SPATIAL, SFU_DD_MAX_TEMPORAL);
  CHECK(all == (uint32_t)((1ull << st->ntargets) - 1));
  CHECK((sfu_dd_targets_upto(st, v.sid, v.tid) & ~all) == 0);

  CHECK(sfu_dd_parse(p, n, known, &scratch, &again) == 0);
  same_frame(&v, &again, st->nchains);
  CHECK(again.frame_number == v.frame_number && again.active_mask == v.active_mask);
  if (v.has_structure) CHECK(memcmp(&scratch, fresh, sizeof(scratch)) == 0);

  int m = sfu_dd_rewrite(p, n, &v, st->ntargets, mask, fn, out, sizeof(out));
  if (m == SFU_E2BIG) goto out; /* past the 255 bytes of an element */
  CHECK(m > 3 && (size_t)m <= n + 5);
  CHECK(sfu_dd_rewrite(p, n, &v, st->ntargets, mask, fn, out, (size_t)m - 1) == SFU_E2BIG);
  CHECK(sfu_dd_parse(out, (size_t)m, known, &scratch2, &again) == 0);
  same_frame(&v, &again, st->nchains);
  CHECK(again.has_mask && again.active_mask == (mask & all) && again.frame_number == fn);
  if (v.has_structure) CHECK(memcmp(&scratch2, fresh, sizeof(scratch2)) == 0);
out:
  free(p);
  return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  size_t split = data[0] < size - 1 ? data[0] : size - 1;
  const uint8_t *a = data + 1, *b = data + 1 + split;
  size_t nb = size - 1 - split;
  uint32_t mask = size >= 5 ? (uint32_t)data[size - 1] << 24 | (uint32_t)data[size - 2] << 16 |
                                  (uint32_t)data[size - 3] << 8 | data[size - 4]
                            : 0x5a5a5a5a;
  uint16_t fn = (uint16_t)(mask * 2654435761u >> 16);
  const sfu_dd_structure_t *st = one(a, split, NULL, &st1, mask, fn);
  if (st == &st1) one(b, nb, &st1, &st2, ~mask, (uint16_t)(fn + 1));
  else one(b, nb, NULL, &st2, ~mask, (uint16_t)(fn + 1));
  return 0;
}
