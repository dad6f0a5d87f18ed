/*
 * test_red.c -- RFC 2198 redundant audio payloads (sfu/media/red.c): block
 * headers as browsers write them around Opus, the primary taken from what
 * remains, malformed and oversized payloads refused, and the in-place
 * payload type rewrite.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sfu/media/red.h"

/* One redundant Opus frame (pt 111, 960 ticks = 20 ms older, 3 bytes) and
 * the primary (4 bytes): the shape Chrome sends with one level of
 * redundancy. */
static const uint8_t two_blocks[] = {
    0xEF, 0x0F, 0x00, 0x03, /* F=1, pt 111, ts offset 960, length 3 */
    0x6F,                   /* F=0, pt 111 */
    0xAA, 0xBB, 0xCC,       /* redundant */
    0x11, 0x22, 0x33, 0x44, /* primary */
};

static void two_blocks_give_the_primary_last(void **state) {
  (void)state;
  sfu_red_t r;
  assert_int_equal(sfu_red_parse(two_blocks, sizeof(two_blocks), &r), 0);
  assert_int_equal(r.n, 2);
  assert_int_equal(r.hdr_len, 5);
  assert_int_equal(r.b[0].pt, 111);
  assert_int_equal(r.b[0].ts_offset, 960);
  assert_int_equal(r.b[0].off, 5);
  assert_int_equal(r.b[0].len, 3);
  assert_int_equal(r.b[1].pt, 111);
  assert_int_equal(r.b[1].ts_offset, 0);
  assert_int_equal(r.b[1].off, 8);
  assert_int_equal(r.b[1].len, 4);
  assert_memory_equal(two_blocks + r.b[1].off, "\x11\x22\x33\x44", 4);
}

static void primary_only_is_the_payload_after_one_byte(void **state) {
  (void)state;
  const uint8_t p[] = {0x6F, 1, 2, 3, 4, 5};
  sfu_red_t r;
  assert_int_equal(sfu_red_parse(p, sizeof(p), &r), 0);
  assert_int_equal(r.n, 1);
  assert_int_equal(r.b[0].off, 1);
  assert_int_equal(r.b[0].len, 5);
  /* a header alone: an empty primary (DTX) is legal */
  assert_int_equal(sfu_red_parse(p, 1, &r), 0);
  assert_int_equal(r.b[0].len, 0);
}

static void largest_offset_and_length_are_read_whole(void **state) {
  (void)state;
  /* ts offset 16383 (all 14 bits), length 1023 (all 10 bits) */
  static uint8_t p[4 + 1 + 1023 + 2];
  p[0] = 0x80 | 96;
  p[1] = 0xFF;
  p[2] = 0xFF;
  p[3] = 0xFF;
  p[4] = 96;
  sfu_red_t r;
  assert_int_equal(sfu_red_parse(p, sizeof(p), &r), 0);
  assert_int_equal(r.n, 2);
  assert_int_equal(r.b[0].ts_offset, 16383);
  assert_int_equal(r.b[0].len, 1023);
  assert_int_equal(r.b[1].off, 5 + 1023);
  assert_int_equal(r.b[1].len, 2);
}

static void three_blocks_keep_their_order(void **state) {
  (void)state;
  const uint8_t p[] = {
      0xEF, 0x1E, 0x00, 0x02, /* 1920 ticks older, 2 bytes */
      0xEF, 0x0F, 0x00, 0x01, /* 960 ticks older, 1 byte */
      0x6F, 0xA1, 0xA2, 0xB1, 0xC1, 0xC2, 0xC3,
  };
  sfu_red_t r;
  assert_int_equal(sfu_red_parse(p, sizeof(p), &r), 0);
  assert_int_equal(r.n, 3);
  assert_int_equal(r.b[0].ts_offset, 1920);
  assert_int_equal(r.b[1].ts_offset, 960);
  assert_int_equal(p[r.b[0].off], 0xA1);
  assert_int_equal(p[r.b[1].off], 0xB1);
  assert_int_equal(p[r.b[2].off], 0xC1);
  assert_int_equal(r.b[2].len, 3);
}

static void malformed_payloads_are_refused(void **state) {
  (void)state;
  sfu_red_t r;
  assert_int_equal(sfu_red_parse(two_blocks, 0, &r), SFU_EPROTO);
  assert_int_equal(sfu_red_parse(NULL, 4, &r), SFU_EPROTO);
  /* every cut inside the headers, and inside the redundant data */
  for (size_t n = 1; n < 8; n++) assert_int_equal(sfu_red_parse(two_blocks, n, &r), SFU_EPROTO);
  /* a cut in the primary only shortens it */
  assert_int_equal(sfu_red_parse(two_blocks, 9, &r), 0);
  assert_int_equal(r.b[1].len, 1);
  /* a redundant length past the end */
  const uint8_t past[] = {0xEF, 0x0F, 0x03, 0xFF, 0x6F, 1, 2, 3};
  assert_int_equal(sfu_red_parse(past, sizeof(past), &r), SFU_EPROTO);
  /* headers that never end */
  const uint8_t open[] = {0xEF, 0, 0, 0, 0xEF, 0, 0, 0, 0xEF};
  assert_int_equal(sfu_red_parse(open, sizeof(open), &r), SFU_EPROTO);
}

static void more_than_max_blocks_is_too_big(void **state) {
  (void)state;
  uint8_t p[4 * SFU_RED_MAX_BLOCKS + 1];
  sfu_red_t r;
  for (int i = 0; i < SFU_RED_MAX_BLOCKS; i++) {
    p[4 * i] = 0xEF;
    p[4 * i + 1] = p[4 * i + 2] = p[4 * i + 3] = 0;
  }
  p[4 * SFU_RED_MAX_BLOCKS] = 0x6F;
  assert_int_equal(sfu_red_parse(p, sizeof(p), &r), SFU_E2BIG);
  /* one block fewer is the most that fits */
  p[4 * (SFU_RED_MAX_BLOCKS - 1)] = 0x6F;
  assert_int_equal(sfu_red_parse(p, 4 * (SFU_RED_MAX_BLOCKS - 1) + 1, &r), 0);
  assert_int_equal(r.n, SFU_RED_MAX_BLOCKS);
}

static void set_pts_rewrites_every_header_only(void **state) {
  (void)state;
  uint8_t p[sizeof(two_blocks)];
  memcpy(p, two_blocks, sizeof(p));
  sfu_red_t r, again;
  assert_int_equal(sfu_red_parse(p, sizeof(p), &r), 0);
  sfu_red_set_pts(p, &r, 109);
  assert_int_equal(p[0], 0x80 | 109);
  assert_int_equal(p[4], 109);
  assert_memory_equal(p + 1, two_blocks + 1, 3);
  assert_memory_equal(p + 5, two_blocks + 5, sizeof(p) - 5);
  assert_int_equal(sfu_red_parse(p, sizeof(p), &again), 0);
  assert_int_equal(again.b[0].pt, 109);
  assert_int_equal(again.b[1].pt, 109);
  assert_int_equal(again.b[1].off, r.b[1].off);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(two_blocks_give_the_primary_last),
      cmocka_unit_test(primary_only_is_the_payload_after_one_byte),
      cmocka_unit_test(largest_offset_and_length_are_read_whole),
      cmocka_unit_test(three_blocks_keep_their_order),
      cmocka_unit_test(malformed_payloads_are_refused),
      cmocka_unit_test(more_than_max_blocks_is_too_big),
      cmocka_unit_test(set_pts_rewrites_every_header_only),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
