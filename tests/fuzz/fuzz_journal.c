/*
 * fuzz_journal.c -- libFuzzer target for journal recovery (signaling/
 * journal.c): arbitrary bytes as segment files, then open, read, append,
 * reopen.
 *
 * Input: up to four segment files separated by the 8 bytes "#SFUSEG#".
 * Each file is named like the writer would name it, by the seq in its
 * first header (bytes 8..15), raised where needed so names increase; a
 * file too short to hold a seq takes the previous name + 1.
 *
 * Per input, in a fresh directory:
 *   1. sfu_journal_open() must succeed: content is never fatal.
 *   2. Every record the iterator returns must be checksummed: its header,
 *      rebuilt here with a bitwise CRC-32C independent of the library's
 *      slice-by-8 one, followed by its payload, must occur verbatim in one
 *      of the input files. Seqs must increase strictly; count, first and
 *      last must match the recovery stats, and next_seq must exceed them.
 *   3. One record is appended (it must get next_seq, or -EOVERFLOW when
 *      the seqs are exhausted) and synced; the journal is closed and
 *      reopened. The second recovery must find no torn bytes, the same
 *      corrupt byte count, and exactly the old records plus the new one.
 *   4. Everything is acked: only the active segment may remain, the ack
 *      survives a reopen, nothing is left to read after it, and next_seq
 *      stays above the ack.
 *
 * The directory lives in /dev/shm when there is one (fsync is free there).
 *
 * Build by hand:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I. \
 *     tests/fuzz/fuzz_journal.c sfu/node/journal.c sfu/base/log.c sfu/base/err.c \
 *     sfu/base/clock.c -o fuzz_journal
 *   ./fuzz_journal tests/fuzz/corpus/journal
 *
 * Seeds in tests/fuzz/corpus/journal/ were written by the journal itself
 * (segment_bytes 2048): a clean segment, two rotated segments joined with
 * the separator, a segment cut inside its last record, one with a flipped
 * payload bit, one with a damaged header, one with a zeroed run, and a
 * file of records with non-increasing seqs.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sfu/base/log.h"
#include "sfu/base/sfu.h"
#include "sfu/node/journal.h"

#define SEP "#SFUSEG#"
#define SEP_LEN 8
#define MAX_PARTS 4
#define MAX_RECORDS 4096

static char dir[128];

static void clear_dir(void) {
  DIR *d = opendir(dir);
  struct dirent *de;
  char p[256];
  if (!d) return;
  while ((de = readdir(d)) != NULL) {
    if (de->d_name[0] == '.') continue;
    snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
    unlink(p);
  }
  closedir(d);
}

static void remove_dir(void) {
  clear_dir();
  rmdir(dir);
}

static void init_once(void) {
  struct stat st;
  const char *base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp";
  snprintf(dir, sizeof(dir), "%s/sfuj-fuzz-XXXXXX", base);
  if (!mkdtemp(dir)) abort();
  atexit(remove_dir);
  sfu_log_set_level(SFU_LOG_ERROR);
}

/* ---- reference encoding, independent of the library's ---- */

static uint32_t ref_crc32c(const uint8_t *p, size_t n) {
  uint32_t crc = 0xffffffffu;
  while (n--) {
    crc ^= *p++;
    for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1)));
  }
  return ~crc;
}

static void put_be(uint8_t *p, uint64_t v, int n) {
  for (int i = n - 1; i >= 0; i--) {
    p[i] = (uint8_t)v;
    v >>= 8;
  }
}

static uint64_t get_be(const uint8_t *p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; i++) v = v << 8 | p[i];
  return v;
}

static void ref_header(uint8_t h[32], uint64_t seq, int64_t wall, const uint8_t *d, size_t len) {
  memcpy(h, "SFUJ", 4);
  put_be(h + 4, len, 4);
  put_be(h + 8, seq, 8);
  put_be(h + 16, (uint64_t)wall, 8);
  put_be(h + 24, ref_crc32c(d, len), 4);
  put_be(h + 28, ref_crc32c(h + 4, 24), 4);
}

/* Offset of header + payload in p[from..n), or -1. */
static long find_record(const uint8_t *p, size_t n, size_t from, const uint8_t h[32],
                        const uint8_t *d, size_t len) {
  for (size_t i = from; i + 32 + len <= n; i++)
    if (p[i] == 'S' && memcmp(p + i, h, 32) == 0 && memcmp(p + i + 32, d, len) == 0)
      return (long)i;
  return -1;
}

/* ---- the target ---- */

typedef struct {
  const uint8_t *p;
  size_t n;
} part_t;

/* A record as read, to compare two readings. */
typedef struct {
  uint64_t seq;
  int64_t wall_ms;
  size_t len;
  uint32_t crc; /* of the payload */
} seen_t;

static seen_t first_pass[MAX_RECORDS + 1], second_pass[MAX_RECORDS + 2];

static size_t split(const uint8_t *data, size_t size, part_t *parts) {
  size_t np = 0, start = 0;
  for (size_t i = 0; np + 1 < MAX_PARTS && i + SEP_LEN <= size; i++)
    if (memcmp(data + i, SEP, SEP_LEN) == 0) {
      parts[np++] = (part_t){data + start, i - start};
      start = i + SEP_LEN;
      i += SEP_LEN - 1;
    }
  parts[np++] = (part_t){data + start, size - start};
  return np;
}

/* Writes the parts as segment files; returns how many were written. */
static size_t write_parts(const part_t *parts, size_t np) {
  uint64_t prev = 0;
  for (size_t k = 0; k < np; k++) {
    uint64_t name = parts[k].n >= 16 ? get_be(parts[k].p + 8, 8) : prev + 1;
    char path[256];
    int fd;
    if (k > 0 && name <= prev) {
      if (prev == UINT64_MAX) return k;
      name = prev + 1;
    }
    prev = name;
    snprintf(path, sizeof(path), "%s/%020" PRIu64 ".seg", dir, name);
    if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600)) < 0) abort();
    if (parts[k].n && write(fd, parts[k].p, parts[k].n) != (ssize_t)parts[k].n) abort();
    close(fd);
  }
  return np;
}

/*
 * Reads every record into out[] and returns the count. Seqs must increase.
 * With parts, each record must occur in them, after the previous one (the
 * iterator walks files in order, and each file front to back).
 */
static size_t read_all(sfu_journal_t *j, const part_t *parts, size_t np, seen_t *out) {
  sfu_journal_iter_t *it;
  const uint8_t *d;
  uint64_t seq, prev = 0;
  int64_t wall;
  size_t len, n = 0, k = 0, at = 0;
  int rv;
  if (sfu_journal_iter_open(j, 0, &it) != 0) abort();
  while ((rv = sfu_journal_iter_next(it, &seq, &wall, &d, &len)) == 1) {
    if (seq <= prev || n >= MAX_RECORDS) abort();
    prev = seq;
    if (parts) {
      uint8_t h[32];
      long off = -1;
      ref_header(h, seq, wall, d, len);
      for (; k < np; k++, at = 0)
        if ((off = find_record(parts[k].p, parts[k].n, at, h, d, len)) >= 0) break;
      if (off < 0) abort();
      at = (size_t)off + 32 + len;
    }
    out[n++] = (seen_t){seq, wall, len, ref_crc32c(d, len)};
  }
  if (rv != 0) abort();
  sfu_journal_iter_close(it);
  return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int inited;
  sfu_journal_opts_t o = {.segment_bytes = 2048, .max_record = 1024};
  sfu_journal_stats_t st1, st2;
  sfu_journal_t *j;
  part_t parts[MAX_PARTS];
  size_t np, n1, n2;
  uint64_t seq = 0;
  int rv;

  if (!inited) {
    init_once();
    inited = 1;
  }
  if (size > 64 * 1024) return 0;
  clear_dir();
  np = write_parts(parts, split(data, size, parts));

  /* 1, 2: recovery */
  if (sfu_journal_open(&j, dir, &o, &st1) != 0) abort();
  n1 = read_all(j, parts, np, first_pass);
  if (n1 != st1.records) abort();
  if (n1 && (first_pass[0].seq != st1.first_seq || first_pass[n1 - 1].seq != st1.last_seq))
    abort();
  if (!n1 && (st1.first_seq || st1.last_seq)) abort();
  if (st1.next_seq && st1.next_seq <= st1.last_seq) abort();
  if (st1.durable_seq != st1.last_seq) abort();

  /* 3: append, reopen */
  rv = sfu_journal_append(j, "{\"type\":\"fuzz\"}", 15, 42, &seq);
  if (st1.next_seq == 0) {
    if (rv != -EOVERFLOW) abort();
  } else if (rv != 0 || seq != st1.next_seq || sfu_journal_sync(j) != 0) {
    abort();
  }
  sfu_journal_close(j);
  if (sfu_journal_open(&j, dir, &o, &st2) != 0) abort();
  n2 = read_all(j, NULL, 0, second_pass);
  if (st2.torn_bytes_truncated != 0) abort();
  if (st2.corrupt_skipped != st1.corrupt_skipped) abort();
  if (n2 != n1 + (rv == 0) || n2 != st2.records) abort();
  for (size_t i = 0; i < n1; i++) {
    const seen_t *a = &first_pass[i], *b = &second_pass[i];
    if (a->seq != b->seq || a->wall_ms != b->wall_ms || a->len != b->len || a->crc != b->crc)
      abort();
  }
  if (rv == 0) {
    if (second_pass[n1].seq != seq || second_pass[n1].len != 15 || second_pass[n1].wall_ms != 42)
      abort();
    if (st2.next_seq != (seq == UINT64_MAX ? 0 : seq + 1)) abort();
  } else if (st2.next_seq != st1.next_seq) {
    abort();
  }

  /* 4: ack everything, reopen */
  if (st2.last_seq) {
    sfu_journal_iter_t *it;
    if (sfu_journal_ack(j, st2.last_seq) != 0) abort();
    sfu_journal_get_stats(j, &st1);
    if (st1.segments != 1 || st1.acked_seq != st2.last_seq) abort();
    sfu_journal_close(j);
    if (sfu_journal_open(&j, dir, &o, &st1) != 0) abort();
    if (st1.segments != 1 || st1.acked_seq != st2.last_seq || st1.torn_bytes_truncated) abort();
    if (st1.last_seq && st1.last_seq != st2.last_seq) abort();
    if (st2.next_seq && (st1.next_seq <= st2.last_seq || st1.next_seq > st2.next_seq)) abort();
    if (sfu_journal_iter_open(j, st1.acked_seq, &it) != 0) abort();
    if (sfu_journal_iter_next(it, NULL, NULL, NULL, NULL) != 0) abort();
    sfu_journal_iter_close(it);
  }
  sfu_journal_close(j);
  return 0;
}
