/*
 * test_dd.c -- the Dependency Descriptor (sfu/media/dd.c): descriptors
 * written here bit by bit from the syntax of the AV1 RTP specification's
 * appendix A (an independent writer, below), with a structure of three
 * spatial and three temporal layers as a keyframe carries it; the frames
 * after it read through it; active decode targets, custom fields, limits
 * and cut descriptors; and the rewrite the forwarder sends subscribers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sfu/base/sfu.h"
#include "sfu/media/dd.h"

/* --- a writer of our own ---------------------------------------------------- */

typedef struct {
  uint8_t b[256];
  size_t pos;
} w_t;

static void put(w_t *w, uint32_t v, int n) {
  for (int i = n - 1; i >= 0; i--, w->pos++)
    if ((v >> i) & 1) w->b[w->pos >> 3] |= (uint8_t)(0x80 >> (w->pos & 7));
}

/* ns(n) as A.2 reads it: w - 1 bits, one more for the upper values. */
static void put_ns(w_t *w, uint32_t v, uint32_t n) {
  int bits = 0;
  for (uint32_t x = n; x; x >>= 1) bits++;
  uint32_t m = (1u << bits) - n;
  if (v < m) {
    put(w, v, bits - 1);
  } else {
    put(w, (v + m) >> 1, bits - 1);
    put(w, (v + m) & 1, 1);
  }
}

static size_t bytes(const w_t *w) { return (w->pos + 7) / 8; }

/* A template: its layer, the DTI of each target ('-' 0, 'D' 1, 'S' 2,
 * 'R' 3), frame diffs (0-terminated) and chain diffs. */
typedef struct {
  int sid, tid;
  const char *dtis;
  int fdiffs[4];
  int chains[3];
} tmpl_t;

/* L3T3 with keyframes predicting upwards (Chrome's L3T3_KEY shape):
 * decode target 3 * s + t is spatial layer s at temporal layer t; a chain
 * per spatial layer. */
static const tmpl_t l3t3[] = {
    {0, 0, "SSSSSSSSS", {0}, {0, 0, 0}},    /* keyframe, S0 */
    {0, 0, "SSS------", {4, 0}, {4, 0, 0}},
    {0, 1, "-DS------", {2, 0}, {2, 0, 0}},
    {0, 2, "--D------", {1, 0}, {1, 0, 0}},
    {1, 0, "---SSSSSS", {1, 0}, {1, 1, 0}}, /* keyframe, S1 */
    {1, 0, "---SSS---", {4, 0}, {5, 4, 0}},
    {1, 1, "----DS---", {2, 0}, {3, 2, 0}},
    {1, 2, "-----D---", {1, 0}, {2, 1, 0}},
    {2, 0, "------SSS", {1, 0}, {2, 1, 1}}, /* keyframe, S2 */
    {2, 0, "------SSS", {4, 0}, {6, 5, 4}},
    {2, 1, "-------DS", {2, 0}, {4, 3, 2}},
    {2, 2, "--------D", {1, 0}, {3, 2, 1}},
};
#define NT ((int)(sizeof(l3t3) / sizeof(l3t3[0])))
#define OFFSET 60 /* template ids 60..63, 0..7: they wrap */

static int dti_of(char c) { return c == 'D' ? 1 : c == 'S' ? 2 : c == 'R' ? 3 : 0; }

static void put_structure(w_t *w, int resolutions) {
  put(w, OFFSET, 6);
  put(w, 9 - 1, 5);
  for (int t = 0; t < NT; t++) {
    int idc = 3;
    if (t + 1 < NT)
      idc = l3t3[t + 1].sid > l3t3[t].sid ? 2 : l3t3[t + 1].tid > l3t3[t].tid ? 1 : 0;
    put(w, (uint32_t)idc, 2);
  }
  for (int t = 0; t < NT; t++)
    for (int d = 0; d < 9; d++) put(w, (uint32_t)dti_of(l3t3[t].dtis[d]), 2);
  for (int t = 0; t < NT; t++) {
    for (int i = 0; l3t3[t].fdiffs[i]; i++) {
      put(w, 1, 1);
      put(w, (uint32_t)l3t3[t].fdiffs[i] - 1, 4);
    }
    put(w, 0, 1);
  }
  put_ns(w, 3, 10); /* three chains */
  for (int d = 0; d < 9; d++) put_ns(w, (uint32_t)d / 3, 3);
  for (int t = 0; t < NT; t++)
    for (int c = 0; c < 3; c++) put(w, (uint32_t)l3t3[t].chains[c], 4);
  put(w, (uint32_t)resolutions, 1);
  for (int s = 0; resolutions && s < 3; s++) {
    put(w, (320u << s) - 1, 16);
    put(w, (180u << s) - 1, 16);
  }
}

/* The keyframe's first packet: S0's template, the structure attached. */
static size_t keyframe_dd(uint8_t *out, uint16_t fn) {
  w_t w = {{0}, 0};
  put(&w, 1, 1); /* start */
  put(&w, 0, 1);
  put(&w, OFFSET, 6);
  put(&w, fn, 16);
  put(&w, 1, 1); /* structure */
  put(&w, 0, 4);
  put_structure(&w, 1);
  memcpy(out, w.b, bytes(&w));
  return bytes(&w);
}

/* A frame's 3-byte descriptor: template index t. */
static size_t plain_dd(uint8_t *out, int t, int start, int end, uint16_t fn) {
  w_t w = {{0}, 0};
  put(&w, (uint32_t)start, 1);
  put(&w, (uint32_t)end, 1);
  put(&w, (uint32_t)((OFFSET + t) % 64), 6);
  put(&w, fn, 16);
  memcpy(out, w.b, 3);
  return 3;
}

static void known_structure(sfu_dd_structure_t *st) {
  uint8_t b[256];
  sfu_dd_structure_t none;
  sfu_dd_t v;
  memset(&none, 0, sizeof(none));
  size_t n = keyframe_dd(b, 1000);
  assert_int_equal(sfu_dd_parse(b, n, &none, st, &v), 0);
}

/* --- reading ----------------------------------------------------------------- */

static void a_keyframe_carries_the_structure_of_three_spatial_layers(void **state) {
  (void)state;
  uint8_t b[256];
  sfu_dd_structure_t st;
  sfu_dd_t v;
  size_t n = keyframe_dd(b, 1000);
  assert_true(n > 16); /* a two-byte header element */
  assert_int_equal(sfu_dd_parse(b, n, NULL, &st, &v), 0);
  assert_true(v.start && !v.end && v.extended && v.has_structure && !v.has_mask);
  assert_int_equal(v.frame_number, 1000);
  assert_int_equal(v.template_id, OFFSET);
  assert_int_equal(v.sid, 0);
  assert_int_equal(v.tid, 0);
  assert_int_equal(v.active_mask, 0x1ff); /* a structure activates every target */
  assert_int_equal(v.width, 320);
  assert_int_equal(v.height, 180);
  assert_int_equal(v.nfdiffs, 0);
  assert_int_equal(st.ntemplates, NT);
  assert_int_equal(st.ntargets, 9);
  assert_int_equal(st.nchains, 3);
  assert_int_equal(st.id_offset, OFFSET);
  assert_int_equal(st.max_sid, 2);
  assert_int_equal(st.max_tid, 2);
  for (int t = 0; t < NT; t++) {
    assert_int_equal(st.sid[t], l3t3[t].sid);
    assert_int_equal(st.tid[t], l3t3[t].tid);
    for (int d = 0; d < 9; d++)
      assert_int_equal((st.dti[t] >> (2 * d)) & 3, dti_of(l3t3[t].dtis[d]));
    int nf = 0;
    while (l3t3[t].fdiffs[nf]) nf++;
    assert_int_equal(st.nfdiffs[t], nf);
    for (int i = 0; i < nf; i++) assert_int_equal(st.fdiff[t][i], l3t3[t].fdiffs[i]);
    for (int c = 0; c < 3; c++) assert_int_equal(st.chain_fdiff[t][c], l3t3[t].chains[c]);
  }
  for (int d = 0; d < 9; d++) {
    assert_int_equal(st.protected_by[d], d / 3);
    assert_int_equal(st.target_sid[d], d / 3);
    assert_int_equal(st.target_tid[d], d % 3);
  }
  assert_true(st.has_resolutions);
  assert_int_equal(st.width[2], 1280);
  assert_int_equal(st.height[2], 720);
  assert_int_equal(v.structure_at, 29);
}

static void later_frames_are_read_through_the_structure(void **state) {
  (void)state;
  uint8_t b[8];
  sfu_dd_structure_t st, spare;
  sfu_dd_t v;
  known_structure(&st);
  for (int t = 0; t < NT; t++) {
    size_t n = plain_dd(b, t, t & 1, !(t & 1), (uint16_t)(65530 + t));
    assert_int_equal(sfu_dd_parse(b, n, &st, &spare, &v), 0);
    assert_false(v.extended || v.has_structure || v.has_mask);
    assert_int_equal(v.start, t & 1);
    assert_int_equal(v.end, !(t & 1));
    assert_int_equal(v.frame_number, (uint16_t)(65530 + t));
    assert_int_equal(v.sid, l3t3[t].sid);
    assert_int_equal(v.tid, l3t3[t].tid);
    assert_int_equal(v.width, 320 << l3t3[t].sid);
    assert_int_equal(v.height, 180 << l3t3[t].sid);
    assert_int_equal(v.fdiff[0], l3t3[t].fdiffs[0]);
    assert_int_equal(v.chain_fdiff[2], l3t3[t].chains[2]);
  }
}

static void a_descriptor_without_a_structure_known_says_so(void **state) {
  (void)state;
  uint8_t b[8];
  sfu_dd_structure_t empty, spare;
  sfu_dd_t v;
  memset(&empty, 0, sizeof(empty));
  size_t n = plain_dd(b, 3, 1, 1, 77);
  assert_int_equal(sfu_dd_parse(b, n, NULL, &spare, &v), SFU_ENOENT);
  assert_int_equal(sfu_dd_parse(b, n, &empty, &spare, &v), SFU_ENOENT);
  assert_int_equal(v.frame_number, 77); /* the mandatory fields are there */
  assert_true(v.start && v.end);
}

static void a_template_id_outside_the_structure_is_refused(void **state) {
  (void)state;
  uint8_t b[8];
  sfu_dd_structure_t st, spare;
  sfu_dd_t v;
  known_structure(&st);
  plain_dd(b, NT, 1, 1, 5); /* one past the last template */
  assert_int_equal(sfu_dd_parse(b, 3, &st, &spare, &v), SFU_EINVAL);
  plain_dd(b, -1 + 64, 1, 1, 5); /* the id before the offset */
  assert_int_equal(sfu_dd_parse(b, 3, &st, &spare, &v), SFU_EINVAL);
}

static void active_targets_and_custom_fields_are_read(void **state) {
  (void)state;
  sfu_dd_structure_t st, spare;
  sfu_dd_t v;
  known_structure(&st);
  w_t w = {{0}, 0};
  put(&w, 1, 1);
  put(&w, 1, 1);
  put(&w, (OFFSET + 5) % 64, 6); /* S1T0 */
  put(&w, 4242, 16);
  put(&w, 0, 1);         /* no structure */
  put(&w, 1, 1);         /* active decode targets */
  put(&w, 7, 3);         /* custom dtis, fdiffs, chains */
  put(&w, 0x03f, 9);     /* targets 0-5: S0 and S1 */
  for (int d = 0; d < 9; d++) put(&w, d == 4 ? 3 : 0, 2);
  put(&w, 1, 2);         /* fdiff 3 in 4 bits */
  put(&w, 2, 4);
  put(&w, 3, 2);         /* fdiff 4000 in 12 bits */
  put(&w, 3999, 12);
  put(&w, 0, 2);
  put(&w, 9, 8);         /* chains */
  put(&w, 8, 8);
  put(&w, 255, 8);
  size_t n = bytes(&w);
  assert_int_equal(sfu_dd_parse(w.b, n, &st, &spare, &v), 0);
  assert_true(v.has_mask && v.custom_dtis && v.custom_fdiffs && v.custom_chains);
  assert_int_equal(v.active_mask, 0x3f);
  assert_int_equal(v.sid, 1);
  assert_int_equal(v.tid, 0);
  assert_int_equal(v.dti, 3ull << 8);
  assert_int_equal(v.nfdiffs, 2);
  assert_int_equal(v.fdiff[0], 3);
  assert_int_equal(v.fdiff[1], 4000);
  assert_int_equal(v.chain_fdiff[0], 9);
  assert_int_equal(v.chain_fdiff[2], 255);
  assert_int_equal(v.custom_end, w.pos);
}

static void a_structure_beyond_the_limits_is_refused(void **state) {
  (void)state;
  sfu_dd_structure_t st;
  sfu_dd_t v;
  /* five spatial layers */
  w_t w = {{0}, 0};
  put(&w, 0x80 | 0, 8);
  put(&w, 1, 16);
  put(&w, 0x10, 5);
  put(&w, 0, 6);
  put(&w, 0, 5); /* one target */
  for (int i = 0; i < 4; i++) put(&w, 2, 2);
  put(&w, 3, 2);
  w.pos += 64;
  assert_int_equal(sfu_dd_parse(w.b, bytes(&w), NULL, &st, &v), SFU_EINVAL);
  /* seventeen frame diffs on the one template */
  memset(&w, 0, sizeof(w));
  put(&w, 0x80, 8);
  put(&w, 1, 16);
  put(&w, 0x10, 5);
  put(&w, 0, 6);
  put(&w, 0, 5);
  put(&w, 3, 2);
  put(&w, 2, 2);
  for (int i = 0; i < 17; i++) put(&w, 0x10 | 1, 5);
  put(&w, 0, 1);
  w.pos += 16;
  assert_int_equal(sfu_dd_parse(w.b, bytes(&w), NULL, &st, &v), SFU_EINVAL);
  /* a structure needs somewhere to go */
  uint8_t b[256];
  size_t n = keyframe_dd(b, 1);
  assert_int_equal(sfu_dd_parse(b, n, NULL, NULL, &v), SFU_EINVAL);
  /* too short, too long */
  assert_int_equal(sfu_dd_parse(b, 2, NULL, &st, &v), SFU_EINVAL);
  uint8_t big[300] = {0};
  assert_int_equal(sfu_dd_parse(big, sizeof(big), NULL, &st, &v), SFU_EINVAL);
}

/* Every descriptor above cut at every length, from an exact-size heap
 * copy (ASan): an error or a parse, never a read past the end. */
static void cut_descriptors_never_read_past_their_end(void **state) {
  (void)state;
  uint8_t b[256];
  sfu_dd_structure_t st, spare;
  sfu_dd_t v;
  known_structure(&st);
  size_t n = keyframe_dd(b, 9);
  for (size_t len = 0; len <= n; len++) {
    uint8_t *p = malloc(len ? len : 1);
    assert_non_null(p);
    memcpy(p, b, len);
    int rv = sfu_dd_parse(p, len, &st, &spare, &v);
    if (len == n) assert_int_equal(rv, 0);
    if (len < 3) assert_int_equal(rv, SFU_EINVAL);
    free(p);
  }
}

/* --- writing ----------------------------------------------------------------- */

static void targets_upto_a_layer(void **state) {
  (void)state;
  sfu_dd_structure_t st;
  known_structure(&st);
  assert_int_equal(sfu_dd_targets_upto(&st, 0, 2), 0x007);
  assert_int_equal(sfu_dd_targets_upto(&st, 1, 2), 0x03f);
  assert_int_equal(sfu_dd_targets_upto(&st, 2, 2), 0x1ff);
  assert_int_equal(sfu_dd_targets_upto(&st, 2, 0), 0x049);
  assert_int_equal(sfu_dd_targets_upto(NULL, 2, 2), 0);
}

static void a_three_byte_descriptor_gets_the_mask_and_a_frame_number(void **state) {
  (void)state;
  uint8_t b[8], out[16];
  sfu_dd_structure_t st, spare;
  sfu_dd_t v, again;
  known_structure(&st);
  size_t n = plain_dd(b, 6, 1, 0, 300);
  assert_int_equal(sfu_dd_parse(b, n, &st, &spare, &v), 0);
  int m = sfu_dd_rewrite(b, n, &v, st.ntargets, 0x007, 301, out, sizeof(out));
  assert_int_equal(m, 5); /* 24 + 5 + 9 bits */
  assert_int_equal(sfu_dd_parse(out, (size_t)m, &st, &spare, &again), 0);
  assert_true(again.start && !again.end && again.has_mask && !again.has_structure);
  assert_int_equal(again.active_mask, 0x007);
  assert_int_equal(again.frame_number, 301);
  assert_int_equal(again.template_id, v.template_id);
  assert_int_equal(again.sid, 1);
  assert_int_equal(again.tid, 1);
  assert_int_equal(sfu_dd_rewrite(b, n, &v, st.ntargets, 0x7, 1, out, 4), SFU_E2BIG);
  assert_int_equal(sfu_dd_rewrite(b, n, &v, 0, 0x7, 1, out, sizeof(out)), SFU_EINVAL);
}

static void a_keyframe_keeps_its_structure_bit_for_bit(void **state) {
  (void)state;
  uint8_t b[256], out[256];
  sfu_dd_structure_t st, st2;
  sfu_dd_t v, again;
  size_t n = keyframe_dd(b, 17);
  assert_int_equal(sfu_dd_parse(b, n, NULL, &st, &v), 0);
  int m = sfu_dd_rewrite(b, n, &v, st.ntargets, 0x049, 17, out, sizeof(out));
  assert_true(m > 0 && (size_t)m <= n + 2);
  assert_int_equal(sfu_dd_parse(out, (size_t)m, NULL, &st2, &again), 0);
  assert_true(again.has_structure && again.has_mask);
  assert_int_equal(again.active_mask, 0x049);
  assert_memory_equal(&st, &st2, sizeof(st));
  assert_int_equal(again.frame_number, 17);
  assert_int_equal(again.sid, 0);
}

static void custom_fields_survive_the_rewrite(void **state) {
  (void)state;
  sfu_dd_structure_t st, spare;
  sfu_dd_t v, again;
  uint8_t out[32];
  known_structure(&st);
  w_t w = {{0}, 0};
  put(&w, 1, 2); /* the end of a frame */
  put(&w, (OFFSET + 9) % 64, 6);
  put(&w, 65535, 16);
  put(&w, 0x07, 5); /* custom everything, no mask */
  for (int d = 0; d < 9; d++) put(&w, (uint32_t)d & 3, 2);
  put(&w, 2, 2);
  put(&w, 0x77, 8);
  put(&w, 0, 2);
  put(&w, 1, 8);
  put(&w, 2, 8);
  put(&w, 3, 8);
  assert_int_equal(sfu_dd_parse(w.b, bytes(&w), &st, &spare, &v), 0);
  int m = sfu_dd_rewrite(w.b, bytes(&w), &v, st.ntargets, 0x1ff, 3, out, sizeof(out));
  assert_true(m > 0);
  assert_int_equal(sfu_dd_parse(out, (size_t)m, &st, &spare, &again), 0);
  assert_int_equal(again.active_mask, 0x1ff);
  assert_int_equal(again.frame_number, 3);
  assert_true(again.end && !again.start);
  assert_int_equal(again.dti, v.dti);
  assert_int_equal(again.nfdiffs, 1);
  assert_int_equal(again.fdiff[0], 0x78);
  assert_memory_equal(again.chain_fdiff, v.chain_fdiff, 3);
  sfu_dd_set_frame_number(out, 0xBEEF);
  assert_int_equal(sfu_dd_parse(out, (size_t)m, &st, &spare, &again), 0);
  assert_int_equal(again.frame_number, 0xBEEF);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(a_keyframe_carries_the_structure_of_three_spatial_layers),
      cmocka_unit_test(later_frames_are_read_through_the_structure),
      cmocka_unit_test(a_descriptor_without_a_structure_known_says_so),
      cmocka_unit_test(a_template_id_outside_the_structure_is_refused),
      cmocka_unit_test(active_targets_and_custom_fields_are_read),
      cmocka_unit_test(a_structure_beyond_the_limits_is_refused),
      cmocka_unit_test(cut_descriptors_never_read_past_their_end),
      cmocka_unit_test(targets_upto_a_layer),
      cmocka_unit_test(a_three_byte_descriptor_gets_the_mask_and_a_frame_number),
      cmocka_unit_test(a_keyframe_keeps_its_structure_bit_for_bit),
      cmocka_unit_test(custom_fields_survive_the_rewrite),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
