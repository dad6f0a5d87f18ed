/*
 * test_journal.c -- sfu/node/journal.c: CRC-32C vectors, header encoding,
 * append/reopen round trips, rotation and ack deletion on real files,
 * recovery from torn tails (cut at every offset) and flipped bits, the
 * iterator's after/durability semantics, and write failures (RLIMIT_FSIZE
 * makes write(2) fail with EFBIG, the way ENOSPC would, part-way through a
 * record). Every test works in its own directory under /tmp and removes it.
 */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "sfu/base/log.h"
#include "sfu/base/sfu.h"
#include "sfu/node/journal.h"

/* ---- helpers ------------------------------------------------------------ */

typedef struct {
  char dir[64];
} fx_t;

static int setup(void **state) {
  fx_t *f = calloc(1, sizeof(*f));
  snprintf(f->dir, sizeof(f->dir), "/tmp/sfuj-test-XXXXXX");
  if (!mkdtemp(f->dir)) return -1;
  *state = f;
  return 0;
}

static void empty_dir(const char *dir) {
  DIR *d = opendir(dir);
  struct dirent *de;
  char p[512];
  if (!d) return;
  while ((de = readdir(d)) != NULL) {
    if (de->d_name[0] == '.') continue;
    snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
    unlink(p);
  }
  closedir(d);
}

static int teardown(void **state) {
  fx_t *f = *state;
  empty_dir(f->dir);
  rmdir(f->dir);
  free(f);
  return 0;
}

/* The payload of record i: JSON whose length varies with i. */
static size_t payload(char *out, size_t cap, uint64_t i) {
  int n = snprintf(out, cap, "{\"type\":\"usage\",\"i\":%" PRIu64 ",\"pad\":\"%.*s\"}", i,
                   (int)(i * 7 % 40), "0123456789012345678901234567890123456789");
  return (size_t)n;
}

static int64_t wall_of(uint64_t i) { return 1700000000000 + (int64_t)i * 1000; }

/* Appends records i = from..to with payload(i), asserting seq == i. */
static void append_range(sfu_journal_t *j, uint64_t from, uint64_t to) {
  char p[128];
  for (uint64_t i = from; i <= to; i++) {
    uint64_t seq = 0;
    size_t n = payload(p, sizeof(p), i);
    assert_int_equal(sfu_journal_append(j, p, n, wall_of(i), &seq), 0);
    assert_int_equal(seq, i);
  }
}

/* Appends a record of exactly `len` payload bytes; returns its seq. */
static uint64_t append_fixed(sfu_journal_t *j, size_t len) {
  char p[4096];
  uint64_t seq = 0;
  assert_true(len <= sizeof(p));
  memset(p, 'x', len);
  assert_int_equal(sfu_journal_append(j, p, len, 1, &seq), 0);
  return seq;
}

/* Iterates after `after` and checks the records are exactly `want`
 * (payload(i) for record i). Returns how many came. */
static size_t expect_records(sfu_journal_t *j, uint64_t after, const uint64_t *want, size_t n) {
  sfu_journal_iter_t *it;
  const uint8_t *data;
  uint64_t seq;
  int64_t wall;
  size_t len, got = 0;
  char p[128];
  int rv;
  assert_int_equal(sfu_journal_iter_open(j, after, &it), 0);
  while ((rv = sfu_journal_iter_next(it, &seq, &wall, &data, &len)) == 1) {
    assert_true(got < n);
    assert_int_equal(seq, want[got]);
    assert_int_equal(wall, wall_of(seq));
    assert_int_equal(len, payload(p, sizeof(p), seq));
    assert_memory_equal(data, p, len);
    got++;
  }
  assert_int_equal(rv, 0);
  assert_int_equal(got, n);
  sfu_journal_iter_close(it);
  return got;
}

static void expect_range(sfu_journal_t *j, uint64_t after, uint64_t from, uint64_t to) {
  uint64_t want[512];
  size_t n = 0;
  for (uint64_t i = from; i <= to && from; i++) want[n++] = i;
  expect_records(j, after, want, n);
}

static void seg_path(char *out, size_t cap, const char *dir, uint64_t name) {
  snprintf(out, cap, "%s/%020" PRIu64 ".seg", dir, name);
}

static off_t file_size(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? st.st_size : -1;
}

static off_t seg_size(const char *dir, uint64_t name) {
  char p[256];
  seg_path(p, sizeof(p), dir, name);
  return file_size(p);
}

/* Sorted segment names in dir. */
static size_t list_segs(const char *dir, uint64_t *names, size_t cap) {
  DIR *d = opendir(dir);
  struct dirent *de;
  size_t n = 0;
  assert_non_null(d);
  while ((de = readdir(d)) != NULL) {
    size_t l = strlen(de->d_name);
    if (l == 24 && strcmp(de->d_name + 20, ".seg") == 0 && n < cap)
      names[n++] = strtoull(de->d_name, NULL, 10);
  }
  closedir(d);
  for (size_t a = 1; a < n; a++)
    for (size_t b = a; b > 0 && names[b - 1] > names[b]; b--) {
      uint64_t t = names[b];
      names[b] = names[b - 1];
      names[b - 1] = t;
    }
  return n;
}

static size_t read_file(const char *path, uint8_t *buf, size_t cap) {
  int fd = open(path, O_RDONLY);
  ssize_t n;
  assert_true(fd >= 0);
  n = read(fd, buf, cap);
  close(fd);
  assert_true(n >= 0 && (size_t)n < cap);
  return (size_t)n;
}

static void write_file(const char *path, const uint8_t *buf, size_t n) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, buf, n), (ssize_t)n);
  close(fd);
}

static void flip_bit(const char *path, off_t off, int bit) {
  int fd = open(path, O_RDWR);
  uint8_t b;
  assert_true(fd >= 0);
  assert_int_equal(pread(fd, &b, 1, off), 1);
  b ^= (uint8_t)(1u << bit);
  assert_int_equal(pwrite(fd, &b, 1, off), 1);
  close(fd);
}

static sfu_journal_t *open_ok(const char *dir, const sfu_journal_opts_t *o,
                              sfu_journal_stats_t *st) {
  sfu_journal_t *j = NULL;
  assert_int_equal(sfu_journal_open(&j, dir, o, st), 0);
  assert_non_null(j);
  return j;
}

/* Offset of record seq in a segment written with payload(i) for i from `name`. */
static off_t rec_off(uint64_t name, uint64_t seq) {
  char p[128];
  off_t off = 0;
  for (uint64_t i = name; i < seq; i++) off += SFU_JOURNAL_HDR_LEN + (off_t)payload(p, sizeof(p), i);
  return off;
}

static size_t rec_len(uint64_t seq) {
  char p[128];
  return SFU_JOURNAL_HDR_LEN + payload(p, sizeof(p), seq);
}

/* ---- CRC and header ----------------------------------------------------- */

static uint32_t crc_bitwise(uint32_t crc, const uint8_t *p, size_t n) {
  crc = ~crc;
  while (n--) {
    crc ^= *p++;
    for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1)));
  }
  return ~crc;
}

static void crc32c_vectors(void **state) {
  uint8_t b[300];
  (void)state;
  assert_int_equal(sfu_crc32c(0, "123456789", 9), 0xE3069283u);
  /* RFC 3720 B.4 */
  memset(b, 0, 32);
  assert_int_equal(sfu_crc32c(0, b, 32), 0x8A9136AAu);
  memset(b, 0xff, 32);
  assert_int_equal(sfu_crc32c(0, b, 32), 0x62A8AB43u);
  for (int i = 0; i < 32; i++) b[i] = (uint8_t)i;
  assert_int_equal(sfu_crc32c(0, b, 32), 0x46DD794Eu);
  for (int i = 0; i < 32; i++) b[i] = (uint8_t)(31 - i);
  assert_int_equal(sfu_crc32c(0, b, 32), 0x113FDB5Cu);
  assert_int_equal(sfu_crc32c(0, NULL, 0), 0);
  /* slice-by-8 equals the bitwise definition at every length and
   * alignment, and chains */
  for (size_t i = 0; i < sizeof(b); i++) b[i] = (uint8_t)(i * 131 + 7);
  for (size_t off = 0; off < 8; off++)
    for (size_t n = 0; n + off <= 200; n++) {
      uint32_t want = crc_bitwise(0, b + off, n);
      assert_int_equal(sfu_crc32c(0, b + off, n), want);
      assert_int_equal(sfu_crc32c(sfu_crc32c(0, b + off, n / 3), b + off + n / 3, n - n / 3), want);
    }
}

static void header_roundtrip_and_every_bit_flip(void **state) {
  const char *pl = "{\"type\":\"room_started\"}";
  uint8_t h[SFU_JOURNAL_HDR_LEN];
  sfu_journal_hdr_t d;
  (void)state;
  sfu_journal_encode_header(h, 0x0102030405060708ull, -5, pl, (uint32_t)strlen(pl));
  assert_memory_equal(h, "SFUJ", 4);
  assert_int_equal(h[4], 0);
  assert_int_equal(h[7], strlen(pl));
  assert_int_equal(h[8], 1);
  assert_int_equal(h[15], 8);
  assert_int_equal(sfu_journal_decode_header(h, &d), 0);
  assert_int_equal(d.len, strlen(pl));
  assert_int_equal(d.seq, 0x0102030405060708ull);
  assert_int_equal(d.wall_ms, -5);
  assert_int_equal(d.payload_crc, sfu_crc32c(0, pl, strlen(pl)));
  /* any single flipped bit anywhere in the header is caught */
  for (int byte = 0; byte < SFU_JOURNAL_HDR_LEN; byte++)
    for (int bit = 0; bit < 8; bit++) {
      h[byte] ^= (uint8_t)(1u << bit);
      assert_int_equal(sfu_journal_decode_header(h, &d), SFU_EPROTO);
      h[byte] ^= (uint8_t)(1u << bit);
    }
  assert_int_equal(sfu_journal_decode_header(h, &d), 0);
}

/* ---- append, reopen, rotate, ack ------------------------------------------ */

static void append_close_reopen_same_records(void **state) {
  fx_t *f = *state;
  sfu_journal_stats_t st;
  sfu_journal_t *j = open_ok(f->dir, NULL, &st);
  assert_int_equal(st.segments, 0);
  assert_int_equal(st.records, 0);
  assert_int_equal(st.next_seq, 1);
  assert_int_equal(sfu_journal_last_seq(j), 0);
  append_range(j, 1, 100);
  assert_int_equal(sfu_journal_last_seq(j), 100);
  sfu_journal_close(j);

  j = open_ok(f->dir, NULL, &st);
  assert_int_equal(st.segments, 1);
  assert_int_equal(st.records, 100);
  assert_int_equal(st.first_seq, 1);
  assert_int_equal(st.last_seq, 100);
  assert_int_equal(st.durable_seq, 100);
  assert_int_equal(st.next_seq, 101);
  assert_int_equal(st.torn_bytes_truncated, 0);
  assert_int_equal(st.corrupt_skipped, 0);
  assert_int_equal(st.bytes, rec_off(1, 101));
  assert_int_equal(seg_size(f->dir, 1), rec_off(1, 101));
  expect_range(j, 0, 1, 100);
  append_range(j, 101, 101);
  sfu_journal_close(j);
  j = open_ok(f->dir, NULL, &st);
  assert_int_equal(st.records, 101);
  expect_range(j, 0, 1, 101);
  sfu_journal_close(j);
}

static void empty_and_oversized_records(void **state) {
  fx_t *f = *state;
  sfu_journal_opts_t o = {.max_record = 100, .sync_every_append = 1};
  sfu_journal_t *j = open_ok(f->dir, &o, NULL);
  char big[101] = {0};
  sfu_journal_iter_t *it;
  const uint8_t *d;
  size_t len = 99;
  uint64_t seq;
  assert_int_equal(sfu_journal_append(j, big, 101, 0, &seq), SFU_EMSGSIZE);
  assert_int_equal(sfu_journal_append(j, NULL, 0, 0, &seq), 0);
  assert_int_equal(seq, 1);
  assert_int_equal(sfu_journal_append(j, big, 100, 0, &seq), 0);
  assert_int_equal(seq, 2);
  sfu_journal_close(j);
  j = open_ok(f->dir, &o, NULL);
  assert_int_equal(sfu_journal_iter_open(j, 0, &it), 0);
  assert_int_equal(sfu_journal_iter_next(it, &seq, NULL, &d, &len), 1);
  assert_int_equal(seq, 1);
  assert_int_equal(len, 0);
  assert_int_equal(sfu_journal_iter_next(it, &seq, NULL, &d, &len), 1);
  assert_int_equal(len, 100);
  assert_int_equal(sfu_journal_iter_next(it, &seq, NULL, &d, &len), 0);
  sfu_journal_iter_close(it);
  sfu_journal_close(j);
}

static void bad_options_and_second_opener(void **state) {
  fx_t *f = *state;
  sfu_journal_t *j = NULL, *j2 = (void *)1;
  sfu_journal_opts_t bad1 = {.max_record = SFU_JOURNAL_MAX_RECORD_LIMIT + 1};
  sfu_journal_opts_t bad2 = {.segment_bytes = 10};
  assert_int_equal(sfu_journal_open(&j2, f->dir, &bad1, NULL), SFU_EINVAL);
  assert_null(j2);
  assert_int_equal(sfu_journal_open(&j2, f->dir, &bad2, NULL), SFU_EINVAL);
  j = open_ok(f->dir, NULL, NULL);
  assert_int_equal(sfu_journal_open(&j2, f->dir, NULL, NULL), SFU_EBUSY);
  assert_null(j2);
  sfu_journal_close(j);
  j = open_ok(f->dir, NULL, NULL);
  sfu_journal_close(j);
}

/* 100-byte payloads make 132-byte records: 7 fit in 1024 bytes (924), the
 * eighth would make 1056. */
static void rotation_at_size_bound(void **state) {
  fx_t *f = *state;
  sfu_journal_opts_t o = {.segment_bytes = 1024};
  sfu_journal_stats_t st;
  sfu_journal_t *j = open_ok(f->dir, &o, NULL);
  uint64_t names[16];
  for (int i = 1; i <= 20; i++) assert_int_equal(append_fixed(j, 100), (uint64_t)i);
  assert_int_equal(list_segs(f->dir, names, 16), 3);
  assert_int_equal(names[0], 1);
  assert_int_equal(names[1], 8);
  assert_int_equal(names[2], 15);
  assert_int_equal(seg_size(f->dir, 1), 7 * 132);
  assert_int_equal(seg_size(f->dir, 8), 7 * 132);
  assert_int_equal(seg_size(f->dir, 15), 6 * 132);
  /* a record larger than a segment gets one of its own */
  assert_int_equal(append_fixed(j, 2000), 21);
  assert_int_equal(append_fixed(j, 100), 22);
  assert_int_equal(list_segs(f->dir, names, 16), 5);
  assert_int_equal(names[3], 21);
  assert_int_equal(names[4], 22);
  assert_int_equal(seg_size(f->dir, 21), 2032);
  sfu_journal_close(j);
  j = open_ok(f->dir, &o, &st);
  assert_int_equal(st.segments, 5);
  assert_int_equal(st.records, 22);
  assert_int_equal(st.next_seq, 23);
  /* appends continue in the last segment after a reopen */
  assert_int_equal(append_fixed(j, 100), 23);
  assert_int_equal(list_segs(f->dir, names, 16), 5);
  assert_int_equal(seg_size(f->dir, 22), 2 * 132);
  sfu_journal_close(j);
}

static void ack_deletes_only_fully_acked_segments(void **state) {
  fx_t *f = *state;
  sfu_journal_opts_t o = {.segment_bytes = 1024};
  sfu_journal_stats_t st;
  sfu_journal_t *j = open_ok(f->dir, &o, NULL);
  uint64_t names[16];
  append_range(j, 1, 40); /* payload() records are 77..116 bytes */
  assert_true(list_segs(f->dir, names, 16) >= 4);
  /* everything must be durable before it may be acked */
  assert_int_equal(sfu_journal_ack(j, 40), SFU_EINVAL);
  assert_int_equal(sfu_journal_sync(j), 0);
  sfu_journal_close(j);

  j = open_ok(f->dir, &o, &st);
  size_t n = list_segs(f->dir, names, 16);
  uint64_t second = names[1], third = names[2];
  assert_int_equal(st.segments, n);
  /* acking up to just before the end of segment 1 deletes nothing */
  assert_int_equal(sfu_journal_ack(j, second - 2), 0);
  assert_int_equal(list_segs(f->dir, names, 16), n);
  /* the last record of segment 1 completes it */
  assert_int_equal(sfu_journal_ack(j, second - 1), 0);
  assert_int_equal(list_segs(f->dir, names, 16), n - 1);
  assert_int_equal(names[0], second);
  assert_int_equal(sfu_journal_first_seq(j), second);
  assert_int_equal(sfu_journal_acked_seq(j), second - 1);
  /* acking backwards is a no-op */
  assert_int_equal(sfu_journal_ack(j, 3), 0);
  assert_int_equal(sfu_journal_acked_seq(j), second - 1);
  /* beyond the last record: refused */
  assert_int_equal(sfu_journal_ack(j, 41), SFU_EINVAL);
  /* records after the ack are still readable, in order */
  expect_range(j, 0, second, 40);
  expect_range(j, third, third + 1, 40);
  /* acking everything deletes all but the active segment */
  assert_int_equal(sfu_journal_ack(j, 40), 0);
  assert_int_equal(list_segs(f->dir, names, 16), 1);
  uint64_t active = names[0];
  sfu_journal_close(j);

  j = open_ok(f->dir, &o, &st);
  assert_int_equal(st.acked_seq, 40);
  assert_int_equal(st.segments, 1);
  assert_int_equal(st.first_seq, active);
  assert_int_equal(st.last_seq, 40);
  assert_int_equal(st.next_seq, 41);
  expect_range(j, 40, 0, 0);
  sfu_journal_close(j);
}

static void seq_continues_after_reopen_and_after_all_segments_deleted(void **state) {
  fx_t *f = *state;
  sfu_journal_stats_t st;
  sfu_journal_t *j = open_ok(f->dir, NULL, NULL);
  char p[256];
  uint64_t names[4];
  append_range(j, 1, 5);
  sfu_journal_close(j);
  j = open_ok(f->dir, NULL, NULL);
  append_range(j, 6, 6);
  assert_int_equal(sfu_journal_sync(j), 0);
  assert_int_equal(sfu_journal_ack(j, 6), 0);
  sfu_journal_close(j);
  /* the operator (or a disk cleanup) removes every segment */
  seg_path(p, sizeof(p), f->dir, 1);
  assert_int_equal(unlink(p), 0);
  j = open_ok(f->dir, NULL, &st);
  assert_int_equal(st.segments, 0);
  assert_int_equal(st.acked_seq, 6);
  assert_int_equal(st.next_seq, 7);
  append_range(j, 7, 8);
  sfu_journal_close(j);
  assert_int_equal(list_segs(f->dir, names, 4), 1);
  assert_int_equal(names[0], 7);
  j = open_ok(f->dir, NULL, &st);
  assert_int_equal(st.first_seq, 7);
  assert_int_equal(st.next_seq, 9);
  expect_range(j, 0, 7, 8);
  sfu_journal_close(j);
}

static void invalid_ack_file_means_resend(void **state) {
  fx_t *f = *state;
  sfu_journal_stats_t st;
  sfu_journal_t *j = open_ok(f->dir, NULL, NULL);
  char p[256];
  append_range(j, 1, 3);
  assert_int_equal(sfu_journal_sync(j), 0);
  assert_int_equal(sfu_journal_ack(j, 2), 0);
  sfu_journal_close(j);
  snprintf(p, sizeof(p), "%s/acked", f->dir);
  assert_int_equal(file_size(p), 16);
  flip_bit(p, 6, 0);
  j = open_ok(f->dir, NULL, &st);
  assert_int_equal(st.acked_seq, 0);
  assert_int_equal(st.next_seq, 4);
  sfu_journal_close(j);
}

static void foreign_files_are_left_alone(void **state) {
  fx_t *f = *state;
  sfu_journal_stats_t st;
  char p[256];
  sfu_journal_t *j;
  snprintf(p, sizeof(p), "%s/README", f->dir);
  write_file(p, (const uint8_t *)"x", 1);
  snprintf(p, sizeof(p), "%s/0001.seg", f->dir);
  write_file(p, (const uint8_t *)"x", 1);
  snprintf(p, sizeof(p), "%s/99999999999999999999.seg", f->dir); /* > 2^64 */
  write_file(p, (const uint8_t *)"x", 1);
  j = open_ok(f->dir, NULL, &st);
  assert_int_equal(st.segments, 0);
  append_range(j, 1, 1);
  sfu_journal_close(j);
  assert_int_equal(file_size(p), 1);
}

/* ---- recovery ---------------------------------------------------------- */

/* Five records, then the last segment cut at every offset inside the last
 * record: the first four survive, the tail is truncated, the next append
 * is readable after another reopen. */
static void torn_tail_at_every_offset(void **state) {
  fx_t *f = *state;
  sfu_journal_stats_t st;
  sfu_journal_t *j = open_ok(f->dir, NULL, NULL);
  static uint8_t pristine[4096];
  char p[256];
  size_t total;
  off_t start = rec_off(1, 5);
  append_range(j, 1, 5);
  sfu_journal_close(j);
  seg_path(p, sizeof(p), f->dir, 1);
  total = read_file(p, pristine, sizeof(pristine));
  assert_int_equal(total, (size_t)start + rec_len(5));

  for (size_t cut = (size_t)start; cut < total; cut++) {
    size_t torn = cut - (size_t)start;
    /* record 5 was never durable: its seq is handed out again */
    uint64_t seq, want_next = 5;
    empty_dir(f->dir);
    write_file(p, pristine, cut);
    j = open_ok(f->dir, NULL, &st);
    assert_int_equal(st.records, 4);
    assert_int_equal(st.last_seq, 4);
    assert_int_equal(st.torn_bytes_truncated, cut - (size_t)start);
    assert_int_equal(st.corrupt_skipped, 0);
    assert_int_equal(st.next_seq, want_next);
    assert_int_equal(file_size(p), start);
    expect_range(j, 0, 1, 4);
    if (torn % 7 == 1) { /* and a restart in between changes nothing */
      sfu_journal_close(j);
      j = open_ok(f->dir, NULL, &st);
      assert_int_equal(st.torn_bytes_truncated, 0);
      assert_int_equal(st.next_seq, want_next);
    }
    assert_int_equal(sfu_journal_append(j, "{\"after\":\"torn\"}", 16, wall_of(want_next), &seq), 0);
    assert_int_equal(seq, want_next);
    sfu_journal_close(j);

    j = open_ok(f->dir, NULL, &st);
    assert_int_equal(st.records, 5);
    assert_int_equal(st.torn_bytes_truncated, 0);
    assert_int_equal(st.corrupt_skipped, 0);
    assert_int_equal(st.last_seq, want_next);
    {
      sfu_journal_iter_t *it;
      const uint8_t *d;
      size_t len;
      uint64_t s, n = 0;
      assert_int_equal(sfu_journal_iter_open(j, 4, &it), 0);
      assert_int_equal(sfu_journal_iter_next(it, &s, NULL, &d, &len), 1);
      assert_int_equal(s, want_next);
      assert_int_equal(len, 16);
      assert_memory_equal(d, "{\"after\":\"torn\"}", 16);
      assert_int_equal(sfu_journal_iter_next(it, &s, NULL, &d, &len), 0);
      sfu_journal_iter_close(it);
      assert_int_equal(sfu_journal_iter_open(j, 0, &it), 0);
      while (sfu_journal_iter_next(it, &s, NULL, NULL, NULL) == 1) n++;
      assert_int_equal(n, 5);
      sfu_journal_iter_close(it);
    }
    sfu_journal_close(j);
  }
}

/* A flipped bit in a middle record of the last segment costs that record
 * only: the header CRC gives its length, or the resync search finds the
 * next header. */
static void bit_flip_in_last_segment_skips_one_record(void **state) {
  fx_t *f = *state;
  sfu_journal_stats_t st;
  char p[256];
  uint64_t want[10], n = 0;
  seg_path(p, sizeof(p), f->dir, 1);
  for (int where = 0; where < 3; where++) {
    sfu_journal_t *j;
    empty_dir(f->dir);
    j = open_ok(f->dir, NULL, NULL);
    append_range(j, 1, 10);
    sfu_journal_close(j);
    /* record 5: a payload bit, the length field, the magic */
    off_t at = rec_off(1, 5) + (where == 0 ? SFU_JOURNAL_HDR_LEN + 3 : where == 1 ? 6 : 0);
    flip_bit(p, at, 2);
    j = open_ok(f->dir, NULL, &st);
    assert_int_equal(st.records, 9);
    assert_int_equal(st.first_seq, 1);
    assert_int_equal(st.last_seq, 10);
    assert_int_equal(st.corrupt_skipped, rec_len(5));
    assert_int_equal(st.corrupt_regions, 1);
    assert_int_equal(st.torn_bytes_truncated, 0);
    assert_int_equal(st.next_seq, 11);
    n = 0;
    for (uint64_t i = 1; i <= 10; i++)
      if (i != 5) want[n++] = i;
    expect_records(j, 0, want, n);
    append_range(j, 11, 11);
    sfu_journal_close(j);
    j = open_ok(f->dir, NULL, &st);
    assert_int_equal(st.records, 10);
    assert_int_equal(st.corrupt_skipped, rec_len(5));
    want[n++] = 11;
    expect_records(j, 0, want, n);
    sfu_journal_close(j);
  }
}

/* A damaged last record is indistinguishable from a torn write: truncated,
 * and its seq comes back (docs/internals/journal.md, "Sequence numbers"). */
static void bit_flip_in_last_record_is_torn(void **state) {
  fx_t *f = *state;
  sfu_journal_stats_t st;
  char p[256];
  sfu_journal_t *j = open_ok(f->dir, NULL, NULL);
  append_range(j, 1, 10);
  sfu_journal_close(j);
  seg_path(p, sizeof(p), f->dir, 1);
  flip_bit(p, rec_off(1, 10) + SFU_JOURNAL_HDR_LEN, 0);
  j = open_ok(f->dir, NULL, &st);
  assert_int_equal(st.records, 9);
  assert_int_equal(st.torn_bytes_truncated, rec_len(10));
  assert_int_equal(st.next_seq, 10);
  sfu_journal_close(j);
}

static void bit_flip_in_earlier_segment_is_skipped_and_counted(void **state) {
  fx_t *f = *state;
  sfu_journal_opts_t o = {.segment_bytes = 1024};
  sfu_journal_stats_t st;
  uint64_t names[16], want[64], n = 0;
  char p[256];
  sfu_journal_t *j = open_ok(f->dir, &o, NULL);
  append_range(j, 1, 30);
  sfu_journal_close(j);
  assert_true(list_segs(f->dir, names, 16) >= 3);
  /* damage the first record's payload and the third record's header in
   * the second segment */
  uint64_t s2 = names[1];
  seg_path(p, sizeof(p), f->dir, s2);
  flip_bit(p, SFU_JOURNAL_HDR_LEN + 1, 5);
  flip_bit(p, rec_off(s2, s2 + 2) + 12, 0);
  j = open_ok(f->dir, &o, &st);
  assert_int_equal(st.records, 28);
  assert_int_equal(st.corrupt_skipped, rec_len(s2) + rec_len(s2 + 2));
  assert_int_equal(st.corrupt_regions, 2);
  assert_int_equal(st.torn_bytes_truncated, 0);
  assert_int_equal(st.next_seq, 31);
  for (uint64_t i = 1; i <= 30; i++)
    if (i != s2 && i != s2 + 2) want[n++] = i;
  expect_records(j, 0, want, n);
  /* the iterator makes the same decisions starting mid-way */
  expect_records(j, s2 - 1, want + s2 - 1, n - (s2 - 1));
  /* the damaged segment goes once its records are acked */
  assert_int_equal(sfu_journal_ack(j, names[2] - 1), 0);
  assert_int_equal(list_segs(f->dir, names, 16), st.segments - 2);
  sfu_journal_close(j);
}

/* Hand-built segments: records out of order, below the segment's name, or
 * after garbage are judged as documented. */
static void hand_built_segments(void **state) {
  fx_t *f = *state;
  sfu_journal_stats_t st;
  uint8_t buf[1024];
  size_t off = 0;
  char p[256];
  const uint64_t seqs[] = {10, 12, 11, 12, 9, 20};
  for (size_t i = 0; i < SFU_ARRAY_SIZE(seqs); i++) {
    if (i == 5) { /* zeros, as a crash leaves them, before the last one */
      memset(buf + off, 0, 100);
      off += 100;
    }
    sfu_journal_encode_header(buf + off, seqs[i], 0, "{}", 2);
    memcpy(buf + off + SFU_JOURNAL_HDR_LEN, "{}", 2);
    off += SFU_JOURNAL_HDR_LEN + 2;
  }
  seg_path(p, sizeof(p), f->dir, 10);
  write_file(p, buf, off);
  sfu_journal_t *j = open_ok(f->dir, NULL, &st);
  /* 10, 12, 20 are valid; 11 and the second 12 are not increasing; 9 is
   * below the name; the zeros are skipped */
  assert_int_equal(st.records, 3);
  assert_int_equal(st.first_seq, 10);
  assert_int_equal(st.last_seq, 20);
  assert_int_equal(st.corrupt_skipped, 3 * 34 + 100);
  assert_int_equal(st.corrupt_regions, 1);
  assert_int_equal(st.next_seq, 21);
  sfu_journal_close(j);

  /* a valid record with the largest seq: nothing can follow it */
  empty_dir(f->dir);
  sfu_journal_encode_header(buf, UINT64_MAX, 0, "{}", 2);
  memcpy(buf + SFU_JOURNAL_HDR_LEN, "{}", 2);
  write_file(p, buf, 34);
  j = open_ok(f->dir, NULL, &st);
  assert_int_equal(st.records, 1);
  assert_int_equal(st.next_seq, 0);
  assert_int_equal(sfu_journal_append(j, "{}", 2, 0, NULL), -EOVERFLOW);
  sfu_journal_close(j);
}

/* ---- iteration -------------------------------------------------------- */

static void iterator_after_and_durability(void **state) {
  fx_t *f = *state;
  sfu_journal_opts_t o = {.segment_bytes = 512};
  sfu_journal_stats_t st;
  sfu_journal_iter_t *it;
  uint64_t seq, last = 0;
  int rv;
  sfu_journal_t *j = open_ok(f->dir, &o, NULL);
  append_range(j, 1, 3);
  /* nothing is visible before it is durable */
  expect_range(j, 0, 0, 0);
  assert_int_equal(sfu_journal_sync(j), 0);
  expect_range(j, 0, 1, 3);
  append_range(j, 4, 10);
  assert_int_equal(sfu_journal_sync(j), 0);
  expect_range(j, 0, 1, 10);
  expect_range(j, 3, 4, 10);
  expect_range(j, 9, 10, 10);
  expect_range(j, 10, 0, 0);
  expect_range(j, 1000, 0, 0);

  /* an iterator follows appends, across rotations, up to what is durable */
  assert_int_equal(sfu_journal_iter_open(j, 8, &it), 0);
  assert_int_equal(sfu_journal_iter_next(it, &seq, NULL, NULL, NULL), 1);
  assert_int_equal(seq, 9);
  assert_int_equal(sfu_journal_iter_next(it, &seq, NULL, NULL, NULL), 1);
  assert_int_equal(seq, 10);
  assert_int_equal(sfu_journal_iter_next(it, &seq, NULL, NULL, NULL), 0);
  append_range(j, 11, 30);
  sfu_journal_get_stats(j, &st);
  assert_true(st.durable_seq > 10 && st.durable_seq < 30); /* rotations synced */
  while ((rv = sfu_journal_iter_next(it, &seq, NULL, NULL, NULL)) == 1) {
    assert_int_equal(seq, last ? last + 1 : 11);
    last = seq;
  }
  assert_int_equal(rv, 0);
  assert_int_equal(last, st.durable_seq);
  assert_int_equal(sfu_journal_sync(j), 0);
  for (uint64_t i = last + 1; i <= 30; i++) {
    assert_int_equal(sfu_journal_iter_next(it, &seq, NULL, NULL, NULL), 1);
    assert_int_equal(seq, i);
  }
  assert_int_equal(sfu_journal_iter_next(it, &seq, NULL, NULL, NULL), 0);
  /* segments deleted under an open iterator do not disturb it */
  assert_int_equal(sfu_journal_ack(j, 25), 0);
  append_range(j, 31, 31);
  assert_int_equal(sfu_journal_sync(j), 0);
  assert_int_equal(sfu_journal_iter_next(it, &seq, NULL, NULL, NULL), 1);
  assert_int_equal(seq, 31);
  sfu_journal_iter_close(it);
  /* after an ack, reading from 0 starts at the oldest retained record */
  assert_true(sfu_journal_first_seq(j) > 1 && sfu_journal_first_seq(j) <= 26);
  expect_range(j, 0, sfu_journal_first_seq(j), 31);
  sfu_journal_close(j);

  /* sync_every_append: visible at once */
  empty_dir(f->dir);
  o.sync_every_append = 1;
  j = open_ok(f->dir, &o, NULL);
  append_range(j, 1, 3);
  expect_range(j, 0, 1, 3);
  sfu_journal_close(j);
}

/* ---- write failures ----------------------------------------------------- */

/* Makes files larger than `limit` bytes fail with EFBIG (SIGXFSZ ignored). */
static void limit_file_size(rlim_t limit, struct rlimit *saved) {
  struct rlimit rl;
  assert_int_equal(getrlimit(RLIMIT_FSIZE, saved), 0);
  rl = *saved;
  rl.rlim_cur = limit;
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &rl), 0);
}

static void restore_file_size(const struct rlimit *saved) {
  assert_int_equal(setrlimit(RLIMIT_FSIZE, saved), 0);
}

static void write_failure_leaves_journal_consistent(void **state) {
  fx_t *f = *state;
  sfu_journal_stats_t st;
  struct rlimit saved;
  char p[256], pl[128];
  uint64_t seq = 0;
  size_t n;
  int rv;
  off_t good;
  sfu_journal_t *j = open_ok(f->dir, NULL, NULL);
  signal(SIGXFSZ, SIG_IGN);
  append_range(j, 1, 3);
  assert_int_equal(sfu_journal_sync(j), 0);
  seg_path(p, sizeof(p), f->dir, 1);
  good = file_size(p);

  /* the disk fills in the middle of record 4: part of it is written */
  n = payload(pl, sizeof(pl), 4);
  limit_file_size((rlim_t)good + 40, &saved);
  rv = sfu_journal_append(j, pl, n, wall_of(4), &seq);
  restore_file_size(&saved);
  assert_int_equal(rv, -EFBIG);
  assert_int_equal(file_size(p), good);
  assert_int_equal(sfu_journal_last_seq(j), 3);
  assert_int_equal(sfu_journal_sync(j), 0);
  expect_range(j, 0, 1, 3);
  /* space is back: the seq was not consumed */
  append_range(j, 4, 5);
  sfu_journal_close(j);
  j = open_ok(f->dir, NULL, &st);
  assert_int_equal(st.records, 5);
  assert_int_equal(st.torn_bytes_truncated, 0);
  assert_int_equal(st.corrupt_skipped, 0);
  expect_range(j, 0, 1, 5);
  sfu_journal_close(j);
  signal(SIGXFSZ, SIG_DFL);
}

/* The failure hits the first record of a new segment: the segment stays,
 * empty, and takes the record when space is back. */
static void write_failure_at_rotation(void **state) {
  fx_t *f = *state;
  sfu_journal_opts_t o = {.segment_bytes = 256};
  sfu_journal_stats_t st;
  struct rlimit saved;
  char buf[100];
  uint64_t names[4], seq;
  int rv;
  sfu_journal_t *j = open_ok(f->dir, &o, NULL);
  signal(SIGXFSZ, SIG_IGN);
  memset(buf, 'y', sizeof(buf));
  assert_int_equal(append_fixed(j, 100), 1);
  limit_file_size(40, &saved);
  rv = sfu_journal_append(j, buf, 100, 1, &seq);
  restore_file_size(&saved);
  assert_int_equal(rv, -EFBIG);
  assert_int_equal(list_segs(f->dir, names, 4), 2);
  assert_int_equal(names[1], 2);
  assert_int_equal(seg_size(f->dir, 2), 0);
  assert_int_equal(append_fixed(j, 100), 2);
  assert_int_equal(seg_size(f->dir, 2), 132);
  sfu_journal_close(j);

  /* an empty last segment left behind is reused after a reopen */
  j = open_ok(f->dir, &o, NULL);
  limit_file_size(40, &saved);
  rv = sfu_journal_append(j, buf, 100, 1, &seq);
  restore_file_size(&saved);
  assert_int_equal(rv, -EFBIG);
  sfu_journal_close(j);
  j = open_ok(f->dir, &o, &st);
  assert_int_equal(st.segments, 3);
  assert_int_equal(st.next_seq, 3);
  assert_int_equal(st.torn_bytes_truncated, 0);
  assert_int_equal(append_fixed(j, 100), 3);
  assert_int_equal(seg_size(f->dir, 3), 132);
  sfu_journal_close(j);
  signal(SIGXFSZ, SIG_DFL);
}

/* The clean-up truncation fails too: the next append removes the partial
 * record first; a journal closed in that state is repaired by recovery. */
static void failed_cleanup_is_repaired(void **state) {
  fx_t *f = *state;
  sfu_journal_stats_t st;
  struct rlimit saved;
  char p[256], pl[128];
  size_t n = payload(pl, sizeof(pl), 4);
  off_t good;
  int rv;
  sfu_journal_t *j = open_ok(f->dir, NULL, NULL);
  signal(SIGXFSZ, SIG_IGN);
  append_range(j, 1, 3);
  assert_int_equal(sfu_journal_sync(j), 0);
  seg_path(p, sizeof(p), f->dir, 1);
  good = file_size(p);

  limit_file_size((rlim_t)good + 40, &saved);
  sfu__journal_fail_truncate = 1;
  rv = sfu_journal_append(j, pl, n, wall_of(4), NULL);
  restore_file_size(&saved);
  assert_int_equal(rv, -EFBIG);
  assert_int_equal(file_size(p), good + 40); /* the partial record is there */
  expect_range(j, 0, 1, 3);                  /* and invisible */
  /* the repair itself fails once: the append reports it */
  sfu__journal_fail_truncate = 1;
  assert_int_equal(sfu_journal_append(j, pl, n, wall_of(4), NULL), -EIO);
  append_range(j, 4, 4);
  assert_int_equal(file_size(p), good + (off_t)rec_len(4));

  /* fail again and close: reopen truncates the junk as a torn tail */
  n = payload(pl, sizeof(pl), 5);
  limit_file_size((rlim_t)file_size(p) + 10, &saved);
  sfu__journal_fail_truncate = 1;
  rv = sfu_journal_append(j, pl, n, wall_of(5), NULL);
  restore_file_size(&saved);
  assert_int_equal(rv, -EFBIG);
  sfu_journal_close(j);
  j = open_ok(f->dir, NULL, &st);
  assert_int_equal(st.records, 4);
  assert_int_equal(st.torn_bytes_truncated, 10);
  assert_int_equal(st.next_seq, 5);
  append_range(j, 5, 5);
  expect_range(j, 0, 1, 4); /* 5 is not synced yet */
  sfu_journal_close(j);
  j = open_ok(f->dir, NULL, &st);
  assert_int_equal(st.torn_bytes_truncated, 0);
  expect_range(j, 0, 1, 5);
  sfu_journal_close(j);
  signal(SIGXFSZ, SIG_DFL);
}

/* Disk full while acking: the ack file cannot be written, but the acked
 * segments go anyway (they are what frees the disk). */
static void ack_on_full_disk_still_frees_segments(void **state) {
  fx_t *f = *state;
  sfu_journal_opts_t o = {.segment_bytes = 1024};
  sfu_journal_stats_t st;
  struct rlimit saved;
  uint64_t names[16];
  size_t n;
  int rv;
  sfu_journal_t *j = open_ok(f->dir, &o, NULL);
  signal(SIGXFSZ, SIG_IGN);
  append_range(j, 1, 40);
  assert_int_equal(sfu_journal_sync(j), 0);
  n = list_segs(f->dir, names, 16);
  assert_true(n >= 4);
  limit_file_size(8, &saved);
  rv = sfu_journal_ack(j, names[2] - 1);
  restore_file_size(&saved);
  assert_int_equal(rv, -EFBIG);
  assert_int_equal(sfu_journal_acked_seq(j), names[2] - 1);
  assert_int_equal(list_segs(f->dir, names + 8, 8), n - 2);
  expect_range(j, names[2] - 1, names[2], 40);
  sfu_journal_close(j);
  /* the ack was not persisted: what is left on disk is delivered again */
  j = open_ok(f->dir, &o, &st);
  assert_int_equal(st.acked_seq, 0);
  assert_int_equal(st.first_seq, names[2]);
  assert_int_equal(sfu_journal_ack(j, names[2]), 0);
  sfu_journal_close(j);
  j = open_ok(f->dir, &o, &st);
  assert_int_equal(st.acked_seq, names[2]);
  sfu_journal_close(j);
  signal(SIGXFSZ, SIG_DFL);
}

static void failed_sync_is_sticky_until_reopen(void **state) {
  fx_t *f = *state;
  sfu_journal_stats_t st;
  sfu_journal_t *j = open_ok(f->dir, NULL, NULL);
  append_range(j, 1, 3);
  sfu__journal_fail_sync = 1;
  assert_int_equal(sfu_journal_sync(j), -EIO);
  assert_int_equal(sfu_journal_append(j, "{}", 2, 0, NULL), -EIO);
  assert_int_equal(sfu_journal_sync(j), -EIO);
  sfu_journal_get_stats(j, &st);
  assert_int_equal(st.failed, -EIO);
  assert_int_equal(st.durable_seq, 0);
  expect_range(j, 0, 0, 0);
  sfu_journal_close(j);
  j = open_ok(f->dir, NULL, &st);
  assert_int_equal(st.failed, 0);
  assert_int_equal(st.records, 3);
  append_range(j, 4, 4);
  sfu_journal_close(j);
}

/* A sync in halves (the fdatasync on another thread in sfud): it covers
 * what was appended when it began, appends and a rotation may come between
 * begin and end, and a failed run fails the journal like a failed sync. */
static void sync_in_halves(void **state) {
  fx_t *f = *state;
  sfu_journal_opts_t o = {.segment_bytes = 512};
  sfu_journal_sync_t s;
  sfu_journal_stats_t st;
  sfu_journal_t *j = open_ok(f->dir, &o, NULL);
  assert_int_equal(sfu_journal_sync_begin(j, &s), 0); /* nothing yet */
  append_range(j, 1, 3);
  assert_int_equal(sfu_journal_sync_begin(j, &s), 1);
  append_range(j, 4, 5); /* after begin: not covered */
  sfu_journal_sync_run(&s);
  assert_int_equal(sfu_journal_sync_end(j, &s), 0);
  expect_range(j, 0, 1, 3);
  assert_int_equal(sfu_journal_sync(j), 0);
  expect_range(j, 0, 1, 5);
  /* a rotation between begin and end syncs further than the sync did */
  append_range(j, 6, 6);
  assert_int_equal(sfu_journal_sync_begin(j, &s), 1);
  append_range(j, 7, 30);
  sfu_journal_sync_run(&s);
  assert_int_equal(sfu_journal_sync_end(j, &s), 0);
  sfu_journal_get_stats(j, &st);
  assert_true(st.segments > 1);
  assert_true(st.durable_seq >= 6 && st.durable_seq < 30);
  /* a failed run */
  assert_int_equal(sfu_journal_sync_begin(j, &s), 1);
  sfu__journal_fail_sync = 1;
  sfu_journal_sync_run(&s);
  assert_int_equal(sfu_journal_sync_end(j, &s), -EIO);
  assert_int_equal(sfu_journal_sync_begin(j, &s), -EIO);
  assert_int_equal(sfu_journal_append(j, "{}", 2, 0, NULL), -EIO);
  sfu_journal_close(j);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(crc32c_vectors),
      cmocka_unit_test_setup_teardown(sync_in_halves, setup, teardown),
      cmocka_unit_test(header_roundtrip_and_every_bit_flip),
      cmocka_unit_test_setup_teardown(append_close_reopen_same_records, setup, teardown),
      cmocka_unit_test_setup_teardown(empty_and_oversized_records, setup, teardown),
      cmocka_unit_test_setup_teardown(bad_options_and_second_opener, setup, teardown),
      cmocka_unit_test_setup_teardown(rotation_at_size_bound, setup, teardown),
      cmocka_unit_test_setup_teardown(ack_deletes_only_fully_acked_segments, setup, teardown),
      cmocka_unit_test_setup_teardown(seq_continues_after_reopen_and_after_all_segments_deleted,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(invalid_ack_file_means_resend, setup, teardown),
      cmocka_unit_test_setup_teardown(foreign_files_are_left_alone, setup, teardown),
      cmocka_unit_test_setup_teardown(torn_tail_at_every_offset, setup, teardown),
      cmocka_unit_test_setup_teardown(bit_flip_in_last_segment_skips_one_record, setup, teardown),
      cmocka_unit_test_setup_teardown(bit_flip_in_last_record_is_torn, setup, teardown),
      cmocka_unit_test_setup_teardown(bit_flip_in_earlier_segment_is_skipped_and_counted, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(hand_built_segments, setup, teardown),
      cmocka_unit_test_setup_teardown(iterator_after_and_durability, setup, teardown),
      cmocka_unit_test_setup_teardown(write_failure_leaves_journal_consistent, setup, teardown),
      cmocka_unit_test_setup_teardown(write_failure_at_rotation, setup, teardown),
      cmocka_unit_test_setup_teardown(failed_cleanup_is_repaired, setup, teardown),
      cmocka_unit_test_setup_teardown(ack_on_full_disk_still_frees_segments, setup, teardown),
      cmocka_unit_test_setup_teardown(failed_sync_is_sticky_until_reopen, setup, teardown),
  };
  sfu_log_set_level(SFU_LOG_ERROR);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
