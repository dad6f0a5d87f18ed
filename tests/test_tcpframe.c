/*
 * test_tcpframe.c -- sfu/net/tcpframe.c: RFC 4571 frames whole, split at
 * every byte, several per read, empty, at and over the bound; views into
 * the caller's bytes when a frame arrives whole.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "sfu/net/tcpframe.h"

/* Appends a frame of `len` bytes of value `v` to out at *at. */
static void put(uint8_t *out, size_t *at, size_t len, uint8_t v) {
  sfu_tcpframe_header(out + *at, len);
  memset(out + *at + 2, v, len);
  *at += 2 + len;
}

/* Feeds `stream` in reads of `chunk` bytes; records frame lengths and
 * first bytes. Returns the number of frames, or -1 on a framing error. */
static int feed(const uint8_t *stream, size_t total, size_t chunk, size_t *lens, uint8_t *firsts,
                int max) {
  sfu_tcpframe_t *f = malloc(sizeof(*f));
  int nf = 0;
  sfu_tcpframe_init(f);
  for (size_t off = 0; off < total; off += chunk) {
    const uint8_t *p = stream + off;
    size_t n = total - off < chunk ? total - off : chunk;
    const uint8_t *fr;
    size_t len;
    int r;
    while ((r = sfu_tcpframe_next(f, &p, &n, &fr, &len)) == 1) {
      assert_true(nf < max);
      lens[nf] = len;
      firsts[nf] = len ? fr[0] : 0;
      for (size_t i = 0; i < len; i++) assert_int_equal(fr[i], fr[0]);
      nf++;
    }
    if (r < 0) {
      free(f);
      return -1;
    }
    assert_int_equal(n, 0); /* 0 means: all consumed */
  }
  free(f);
  return nf;
}

static void frames_survive_every_split(void **state) {
  static uint8_t stream[8192];
  size_t at = 0, want[] = {20, 0, 1, 1200, 100, SFU_TCPFRAME_MAX, 3};
  size_t lens[16];
  uint8_t firsts[16];
  (void)state;
  for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) put(stream, &at, want[i], (uint8_t)(i + 1));
  for (size_t chunk = 1; chunk <= at; chunk += (chunk < 40 ? 1 : 97)) {
    memset(lens, 0xff, sizeof(lens));
    assert_int_equal(feed(stream, at, chunk, lens, firsts, 16), 7);
    for (int i = 0; i < 7; i++) {
      assert_int_equal(lens[i], want[i]);
      if (want[i]) assert_int_equal(firsts[i], i + 1);
    }
  }
}

static void whole_frames_are_views(void **state) {
  uint8_t stream[64];
  size_t at = 0;
  sfu_tcpframe_t f;
  const uint8_t *p = stream, *fr;
  size_t n, len;
  (void)state;
  put(stream, &at, 10, 0xaa);
  put(stream, &at, 5, 0xbb);
  n = at;
  sfu_tcpframe_init(&f);
  assert_int_equal(sfu_tcpframe_next(&f, &p, &n, &fr, &len), 1);
  assert_ptr_equal(fr, stream + 2);
  assert_int_equal(len, 10);
  assert_int_equal(sfu_tcpframe_next(&f, &p, &n, &fr, &len), 1);
  assert_ptr_equal(fr, stream + 14);
  assert_int_equal(len, 5);
  assert_int_equal(sfu_tcpframe_next(&f, &p, &n, &fr, &len), 0);
  assert_int_equal(n, 0);
  /* a frame split across reads is gathered in f.buf */
  p = stream, n = 7;
  assert_int_equal(sfu_tcpframe_next(&f, &p, &n, &fr, &len), 0);
  p = stream + 7, n = at - 7;
  assert_int_equal(sfu_tcpframe_next(&f, &p, &n, &fr, &len), 1);
  assert_ptr_equal(fr, f.buf);
  assert_int_equal(len, 10);
  assert_int_equal(fr[9], 0xaa);
}

static void oversize_is_a_framing_error(void **state) {
  uint8_t stream[8];
  size_t lens[4];
  uint8_t firsts[4];
  (void)state;
  sfu_tcpframe_header(stream, SFU_TCPFRAME_MAX + 1);
  assert_int_equal(feed(stream, 2, 2, lens, firsts, 4), -1); /* whole header */
  assert_int_equal(feed(stream, 2, 1, lens, firsts, 4), -1); /* split header */
  sfu_tcpframe_header(stream, 0xffff);
  assert_int_equal(feed(stream, 2, 2, lens, firsts, 4), -1);
  /* a good frame, then a bad length: the good one comes out first */
  size_t at = 0;
  uint8_t s2[16];
  put(s2, &at, 3, 7);
  sfu_tcpframe_header(s2 + at, 60000);
  at += 2;
  sfu_tcpframe_t f;
  const uint8_t *p = s2, *fr;
  size_t n = at, len;
  sfu_tcpframe_init(&f);
  assert_int_equal(sfu_tcpframe_next(&f, &p, &n, &fr, &len), 1);
  assert_int_equal(len, 3);
  assert_int_equal(sfu_tcpframe_next(&f, &p, &n, &fr, &len), -1);
}

static void empty_reads_and_frames(void **state) {
  sfu_tcpframe_t f;
  const uint8_t *p = NULL, *fr;
  size_t n = 0, len;
  uint8_t zero[2] = {0, 0};
  (void)state;
  sfu_tcpframe_init(&f);
  assert_int_equal(sfu_tcpframe_next(&f, &p, &n, &fr, &len), 0);
  p = zero, n = 1;
  assert_int_equal(sfu_tcpframe_next(&f, &p, &n, &fr, &len), 0);
  p = zero + 1, n = 1;
  assert_int_equal(sfu_tcpframe_next(&f, &p, &n, &fr, &len), 1);
  assert_int_equal(len, 0);
  assert_int_equal(n, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(frames_survive_every_split),
      cmocka_unit_test(whole_frames_are_views),
      cmocka_unit_test(oversize_is_a_framing_error),
      cmocka_unit_test(empty_reads_and_frames),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
