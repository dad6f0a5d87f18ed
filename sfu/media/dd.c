/*
 * dd.c -- the Dependency Descriptor (AV1 RTP payload specification,
 * appendix A) read with a bounded bit reader, and rewritten with the
 * active decode targets a subscriber gets.
 *
 * The reader follows the specification's syntax (A.2) line by line; the
 * only state it needs, the structure, is the caller's. Limits are those
 * of the fields (64 templates, 32 decode targets) and of the layers real
 * senders use (4 spatial, 8 temporal ids, 16 frame diffs a frame): a
 * descriptor beyond them is refused, never truncated.
 *
 * The rewriter does not re-encode what it does not change: it writes the
 * mandatory fields (the frame number may change), the five flags with the
 * active decode targets flag set, then copies the structure's bits, writes
 * the mask, copies the custom fields' bits and pads with zeros. A
 * forwarded descriptor is thus the publisher's, bit for bit, plus a mask.
 */
#include <string.h>

#include "codecs/video.h"
#include "sfu/base/sfu.h"
#include "sfu/media/dd.h"

/*
 * Appendix A.2:
 *
 *   dependency_descriptor(sz):
 *     mandatory_descriptor_fields()      start_of_frame f(1) end_of_frame f(1)
 *                                        frame_dependency_template_id f(6)
 *                                        frame_number f(16)
 *     if sz > 3: extended_descriptor_fields()
 *       template_dependency_structure_present_flag f(1)
 *       active_decode_targets_present_flag f(1)
 *       custom_dtis_flag f(1) custom_fdiffs_flag f(1) custom_chains_flag f(1)
 *       [template_dependency_structure()]
 *       [active_decode_targets_bitmask f(DtCnt)]
 *     frame_dependency_definition()
 *       [frame_dtis: f(2) x DtCnt]
 *       [frame_fdiffs: (next_fdiff_size f(2), fdiff_minus_one f(4 * size))...
 *        until next_fdiff_size 0]
 *       [frame_chains: f(8) x chain_cnt]
 *     zero_padding
 *
 *   template_dependency_structure():
 *     template_id_offset f(6), dt_cnt_minus_one f(5)
 *     template_layers: next_layer_idc f(2) per template until 3
 *       (0 same layer, 1 next temporal id, 2 next spatial id)
 *     template_dtis: f(2) x DtCnt x TemplateCnt
 *     template_fdiffs: per template (fdiff_follows_flag f(1), f(4))...
 *     template_chains: chain_cnt ns(DtCnt + 1); if > 0:
 *       decode_target_protected_by ns(chain_cnt) x DtCnt,
 *       template_chain_fdiff f(4) x chain_cnt x TemplateCnt
 *     resolutions_present_flag f(1)
 *       [max_render_width_minus_1 f(16), max_render_height_minus_1 f(16)
 *        per spatial id]
 */

/* ns(n) (A.2): a number below n in the fewest bits. */
static uint32_t ns(sfu__bits_t *b, uint32_t n) {
  int w = 0;
  for (uint32_t x = n; x; x >>= 1) w++;
  uint32_t m = (1u << w) - n, v = sfu__bits_get(b, w - 1);
  if (v < m) return v;
  return (v << 1) - m + sfu__bits_get(b, 1);
}

/* template_dependency_structure() into st; 0 or SFU_EINVAL. */
static int read_structure(sfu__bits_t *b, sfu_dd_structure_t *st) {
  int sid = 0, tid = 0, idc, n = 0;

  memset(st, 0, sizeof(*st));
  st->id_offset = (int)sfu__bits_get(b, 6);
  st->ntargets = (int)sfu__bits_get(b, 5) + 1;
  do { /* template_layers() */
    if (n == SFU_DD_MAX_TEMPLATES) return SFU_EINVAL;
    st->sid[n] = (uint8_t)sid;
    st->tid[n] = (uint8_t)tid;
    n++;
    idc = (int)sfu__bits_get(b, 2);
    if (idc == 1) {
      tid++;
      if (tid >= SFU_DD_MAX_TEMPORAL) return SFU_EINVAL;
      if (tid > st->max_tid) st->max_tid = tid;
    } else if (idc == 2) {
      tid = 0;
      sid++;
      if (sid >= SFU_DD_MAX_SPATIAL) return SFU_EINVAL;
    }
  } while (idc != 3 && !b->err);
  st->max_sid = sid;
  st->ntemplates = n;
  for (int t = 0; t < n; t++) /* template_dtis() */
    for (int d = 0; d < st->ntargets; d++)
      st->dti[t] |= (uint64_t)sfu__bits_get(b, 2) << (2 * d);
  for (int t = 0; t < n && !b->err; t++) /* template_fdiffs() */
    while (sfu__bits_get(b, 1)) {
      if (st->nfdiffs[t] == SFU_DD_MAX_FDIFFS) return SFU_EINVAL;
      st->fdiff[t][st->nfdiffs[t]++] = (uint8_t)(sfu__bits_get(b, 4) + 1);
    }
  st->nchains = (int)ns(b, (uint32_t)st->ntargets + 1); /* template_chains() */
  if (st->nchains > 0) {
    for (int d = 0; d < st->ntargets; d++)
      st->protected_by[d] = (uint8_t)ns(b, (uint32_t)st->nchains);
    for (int t = 0; t < n; t++)
      for (int c = 0; c < st->nchains; c++) st->chain_fdiff[t][c] = (uint8_t)sfu__bits_get(b, 4);
  }
  for (int d = 0; d < st->ntargets; d++) /* decode_target_layers(): computed */
    for (int t = 0; t < n; t++)
      if ((st->dti[t] >> (2 * d)) & 3) {
        if (st->sid[t] > st->target_sid[d]) st->target_sid[d] = st->sid[t];
        if (st->tid[t] > st->target_tid[d]) st->target_tid[d] = st->tid[t];
      }
  st->has_resolutions = (int)sfu__bits_get(b, 1);
  for (int s = 0; st->has_resolutions && s <= st->max_sid; s++) {
    st->width[s] = (uint16_t)(sfu__bits_get(b, 16) + 1);
    st->height[s] = (uint16_t)(sfu__bits_get(b, 16) + 1);
  }
  return b->err ? SFU_EINVAL : 0;
}

int sfu_dd_parse(const uint8_t *p, size_t len, const sfu_dd_structure_t *known,
                 sfu_dd_structure_t *fresh, sfu_dd_t *out) {
  sfu__bits_t b;
  const sfu_dd_structure_t *st = known && known->ntemplates > 0 ? known : NULL;
  int rv;

  if (!p || !out) return SFU_EINVAL;
  memset(out, 0, sizeof(*out));
  if (len < 3 || len > SFU_DD_MAX_LEN) return SFU_EINVAL;
  sfu__bits_init(&b, p, len);
  out->len = len;
  out->start = (int)sfu__bits_get(&b, 1);
  out->end = (int)sfu__bits_get(&b, 1);
  out->template_id = (int)sfu__bits_get(&b, 6);
  out->frame_number = (uint16_t)sfu__bits_get(&b, 16);
  if (len > 3) {
    out->extended = 1;
    out->has_structure = (int)sfu__bits_get(&b, 1);
    out->has_mask = (int)sfu__bits_get(&b, 1);
    out->custom_dtis = (int)sfu__bits_get(&b, 1);
    out->custom_fdiffs = (int)sfu__bits_get(&b, 1);
    out->custom_chains = (int)sfu__bits_get(&b, 1);
    if (out->has_structure) {
      if (!fresh || fresh == known) return SFU_EINVAL;
      out->structure_at = b.pos;
      if ((rv = read_structure(&b, fresh)) != 0) return rv;
      out->structure_end = b.pos;
      st = fresh;
      out->active_mask = (uint32_t)((1ull << st->ntargets) - 1);
    }
  }
  if (!st) return SFU_ENOENT;
  if (out->has_mask) out->active_mask = sfu__bits_get(&b, st->ntargets);

  /* frame_dependency_definition() */
  int t = (out->template_id + SFU_DD_MAX_TEMPLATES - st->id_offset) % SFU_DD_MAX_TEMPLATES;
  if (t >= st->ntemplates) return SFU_EINVAL;
  out->sid = st->sid[t];
  out->tid = st->tid[t];
  out->custom_at = b.pos;
  if (out->custom_dtis) {
    for (int d = 0; d < st->ntargets; d++)
      out->dti |= (uint64_t)sfu__bits_get(&b, 2) << (2 * d);
  } else {
    out->dti = st->dti[t];
  }
  if (out->custom_fdiffs) {
    int size;
    while ((size = (int)sfu__bits_get(&b, 2)) != 0 && !b.err) {
      if (out->nfdiffs == SFU_DD_MAX_FDIFFS) return SFU_EINVAL;
      out->fdiff[out->nfdiffs++] = (uint16_t)(sfu__bits_get(&b, 4 * size) + 1);
    }
  } else {
    out->nfdiffs = st->nfdiffs[t];
    for (int i = 0; i < out->nfdiffs; i++) out->fdiff[i] = st->fdiff[t][i];
  }
  for (int c = 0; c < st->nchains; c++)
    out->chain_fdiff[c] =
        out->custom_chains ? (uint8_t)sfu__bits_get(&b, 8) : st->chain_fdiff[t][c];
  out->custom_end = b.pos;
  if (st->has_resolutions) {
    out->width = st->width[out->sid];
    out->height = st->height[out->sid];
  }
  return b.err ? SFU_EINVAL : 0;
}

uint32_t sfu_dd_targets_upto(const sfu_dd_structure_t *st, int max_sid, int max_tid) {
  uint32_t m = 0;
  for (int d = 0; st && d < st->ntargets; d++)
    if (st->target_sid[d] <= max_sid && st->target_tid[d] <= max_tid) m |= 1u << d;
  return m;
}

/* --- writing ----------------------------------------------------------------- */

/* An MSB-first bit writer into a zeroed buffer whose size was checked. */
typedef struct {
  uint8_t *p;
  size_t pos; /* next bit */
} bitw_t;

static void put_bits(bitw_t *w, uint32_t v, int n) {
  for (int i = n - 1; i >= 0; i--, w->pos++)
    if ((v >> i) & 1) w->p[w->pos >> 3] |= (uint8_t)(0x80 >> (w->pos & 7));
}

/* Bits [from, to) of p, which the parse has shown lie within it. */
static void copy_bits(bitw_t *w, const uint8_t *p, size_t from, size_t to) {
  for (size_t i = from; i < to; i++) put_bits(w, (p[i >> 3] >> (7 - (i & 7))) & 1, 1);
}

int sfu_dd_rewrite(const uint8_t *p, size_t len, const sfu_dd_t *v, int ntargets, uint32_t mask,
                   uint16_t frame_number, uint8_t *out, size_t cap) {
  if (!p || !v || !out || ntargets < 1 || ntargets > SFU_DD_MAX_TARGETS) return SFU_EINVAL;
  if (v->structure_end > len * 8 || v->custom_end > len * 8 || v->structure_at > v->structure_end ||
      v->custom_at > v->custom_end)
    return SFU_EINVAL;
  size_t bits = 24 + 5 + (v->structure_end - v->structure_at) + (size_t)ntargets +
                (v->custom_end - v->custom_at);
  size_t n = (bits + 7) / 8;
  if (n > cap || n > SFU_DD_MAX_LEN) return SFU_E2BIG;
  bitw_t w = {out, 0};
  memset(out, 0, n);
  put_bits(&w, (uint32_t)(v->start << 1 | v->end), 2);
  put_bits(&w, (uint32_t)v->template_id, 6);
  put_bits(&w, frame_number, 16);
  put_bits(&w, (uint32_t)v->has_structure, 1);
  put_bits(&w, 1, 1); /* active_decode_targets_present_flag */
  put_bits(&w, (uint32_t)(v->custom_dtis << 2 | v->custom_fdiffs << 1 | v->custom_chains), 3);
  copy_bits(&w, p, v->structure_at, v->structure_end);
  put_bits(&w, ntargets == 32 ? mask : mask & ((1u << ntargets) - 1), ntargets);
  copy_bits(&w, p, v->custom_at, v->custom_end);
  return (int)n;
}

void sfu_dd_set_frame_number(uint8_t *p, uint16_t frame_number) {
  p[1] = (uint8_t)(frame_number >> 8);
  p[2] = (uint8_t)frame_number;
}
