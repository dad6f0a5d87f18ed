/*
 * journal.c -- append-only, checksummed, segmented record log.
 *
 * The journal is a directory of segment files plus one small ack file. Only
 * the newest segment (the "active" one) is ever written, always at its end
 * through an O_APPEND descriptor, one writev(2) per record. Older segments
 * are immutable until they are deleted whole, oldest first, once every
 * record in them has been acknowledged. The segment table in memory (one
 * seg_t per file, oldest first, the active one last) remembers for each file
 * its name, the valid seq range it holds and how many of its bytes may be
 * parsed; nothing else about records is kept in memory: readers go to disk.
 *
 * Invariants:
 *   - seqs of valid records increase strictly across the whole directory,
 *     and every record's seq is >= its segment's name;
 *   - the active segment ends exactly at the end of its last valid record
 *     (seg.bytes), except after an append whose clean-up truncation failed
 *     (`dirty`), which the next append repairs before writing;
 *   - bytes [0, durable_bytes) of the active segment and every older
 *     segment are fsynced; iterators never read past them, so a record is
 *     only ever handed out once a power cut can no longer take it back;
 *   - next_seq exceeds every valid seq, every seq in a verified header
 *     still on disk (a skipped record keeps its seq), the acked seq and
 *     the active segment's name - 1. Only the seqs of a torn tail, cut off
 *     at open, come back: those records were never durable, so never read
 *     by an iterator, so never delivered.
 *
 * Scanning (scan_t) is shared by recovery and by iterators, so both take
 * the same decision on every byte. A scanner looks at a window of the file
 * (one buffer, grown up to 32 + max_record bytes) and walks records:
 *
 *   header bad (magic, header CRC)   -> search the next "SFUJ" byte by byte
 *   header good, runs past the limit -> end of this segment (a torn tail)
 *   header good, payload CRC bad,
 *   seq not increasing, or too big  -> skip exactly that record
 *   all good                         -> a record
 *
 * The header has its own CRC so that a candidate found by the resync
 * search is rejected in O(1) (the payload is not read), and so that a
 * record whose payload alone is damaged is stepped over by its verified
 * length instead of its payload being searched for false magic. Bytes
 * skipped between two valid records are "corrupt"; bytes after the last
 * valid record of the last segment are the torn tail, cut off at open.
 *
 * Errors: write errors leave no partial record behind and do not poison
 * the journal; a failed fsync does (it is sticky until reopen), because
 * after a failed fsync the kernel may have dropped the dirty pages and a
 * second fsync would report success for data that is gone.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "sfu/base/bytes.h"
#include "sfu/base/log.h"
#include "sfu/base/sfu.h"
#include "sfu/base/vec.h"
#include "sfu/node/journal.h"

#define HDR SFU_JOURNAL_HDR_LEN
#define SEG_NAME_LEN 24 /* 20 digits + ".seg" */
#define ACK_NAME "acked"
#define ACK_TMP "acked.tmp"
#define ACK_MAGIC 0x53465541u /* "SFUA" */
#define ACK_LEN 16
#define SCAN_CHUNK (64u << 10) /* smallest scan window */
#define MIN_SEGMENT_BYTES 256

int sfu__journal_fail_truncate;
int sfu__journal_fail_sync;

static uint64_t rd64(const uint8_t *p) { return (uint64_t)sfu_rd32(p) << 32 | sfu_rd32(p + 4); }

static void wr64(uint8_t *p, uint64_t v) {
  sfu_wr32(p, (uint32_t)(v >> 32));
  sfu_wr32(p + 4, (uint32_t)v);
}

/* ---- CRC-32C, slice-by-8 -------------------------------------------------
 *
 * crc_tab[0] is the classic byte-at-a-time table for the reflected
 * Castagnoli polynomial; crc_tab[k][b] is the CRC of byte b followed by k
 * zero bytes, so eight table lookups advance the CRC by eight bytes.
 */
static uint32_t crc_tab[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void) {
  for (uint32_t n = 0; n < 256; n++) {
    uint32_t c = n;
    for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    crc_tab[0][n] = c;
  }
  for (uint32_t n = 0; n < 256; n++) {
    uint32_t c = crc_tab[0][n];
    for (int t = 1; t < 8; t++) {
      c = crc_tab[0][c & 0xff] ^ (c >> 8);
      crc_tab[t][n] = c;
    }
  }
}

uint32_t sfu_crc32c(uint32_t crc, const void *data, size_t len) {
  const uint8_t *p = data;
  pthread_once(&crc_once, crc_init);
  crc = ~crc;
  while (len >= 8) {
    uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                         (uint32_t)p[3] << 24);
    uint32_t hi = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;
    crc = crc_tab[7][lo & 0xff] ^ crc_tab[6][(lo >> 8) & 0xff] ^ crc_tab[5][(lo >> 16) & 0xff] ^
          crc_tab[4][lo >> 24] ^ crc_tab[3][hi & 0xff] ^ crc_tab[2][(hi >> 8) & 0xff] ^
          crc_tab[1][(hi >> 16) & 0xff] ^ crc_tab[0][hi >> 24];
    p += 8;
    len -= 8;
  }
  while (len--) crc = crc_tab[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
  return ~crc;
}

/* ---- record header ------------------------------------------------------ */

void sfu_journal_encode_header(uint8_t hdr[SFU_JOURNAL_HDR_LEN], uint64_t seq,
                               int64_t wall_ms, const void *payload, uint32_t len) {
  sfu_wr32(hdr, SFU_JOURNAL_MAGIC);
  sfu_wr32(hdr + 4, len);
  wr64(hdr + 8, seq);
  wr64(hdr + 16, (uint64_t)wall_ms);
  sfu_wr32(hdr + 24, sfu_crc32c(0, payload, len));
  sfu_wr32(hdr + 28, sfu_crc32c(0, hdr + 4, 24));
}

int sfu_journal_decode_header(const uint8_t hdr[SFU_JOURNAL_HDR_LEN], sfu_journal_hdr_t *h) {
  if (sfu_rd32(hdr) != SFU_JOURNAL_MAGIC) return SFU_EPROTO;
  if (sfu_rd32(hdr + 28) != sfu_crc32c(0, hdr + 4, 24)) return SFU_EPROTO;
  h->len = sfu_rd32(hdr + 4);
  h->seq = rd64(hdr + 8);
  h->wall_ms = (int64_t)rd64(hdr + 16);
  h->payload_crc = sfu_rd32(hdr + 24);
  return 0;
}

/* ---- scanner -------------------------------------------------------------
 *
 * Reads one segment through a window [base, base + len) of the file held in
 * buf. Offsets are file offsets; nothing at or past `limit` is read.
 */
typedef struct scan_s {
  int fd;             /* segment, read with pread */
  uint64_t name;      /* segment name: records have seq >= name */
  uint64_t floor;     /* records have seq > floor (the last valid seq) */
  uint64_t limit;     /* bytes of the file that may be parsed */
  uint64_t off;       /* where the next record is looked for */
  uint64_t valid_end; /* end of the last valid record, 0 before the first */
  uint64_t hdr_max;   /* highest seq in verified headers up to valid_end */
  uint64_t hdr_tail;  /* the same after valid_end (torn tail, maybe) */
  uint64_t skipped;   /* bytes skipped before valid records */
  uint64_t regions;   /* runs of such bytes */
  uint64_t too_big;   /* records skipped for exceeding max_record */
  size_t max_record;  /* largest payload read */
  uint8_t *buf;       /* the window */
  size_t cap;         /* allocated size of buf */
  uint64_t base;      /* file offset of buf[0] */
  size_t len;         /* bytes in buf */
} scan_t;

/* One record as the scanner hands it out; data points into the window. */
typedef struct rec_s {
  uint64_t seq;
  int64_t wall_ms;
  const uint8_t *data;
  uint32_t len;
} rec_t;

static void scan_reset(scan_t *s, int fd, uint64_t name, uint64_t floor, uint64_t limit) {
  s->fd = fd;
  s->name = name;
  s->floor = floor;
  s->limit = limit;
  s->off = s->valid_end = 0;
  s->skipped = s->regions = s->too_big = 0;
  s->hdr_max = s->hdr_tail = 0;
  s->base = 0;
  s->len = 0;
}

/*
 * Makes [off, off + need) resident and points *p at off; *avail is how
 * many bytes from off are resident (>= need, within limit). Returns 0, 1
 * when the file ended before the limit (the limit is lowered; the caller
 * re-checks), or a negative errno.
 */
static int window(scan_t *s, uint64_t off, size_t need, const uint8_t **p, size_t *avail) {
  if (off > s->limit || need > s->limit - off) return 1;
  if (off < s->base || off + need > s->base + s->len) {
    size_t keep = 0;
    if (need > s->cap) {
      size_t ncap = s->max_record + HDR < SCAN_CHUNK ? s->max_record + HDR : SCAN_CHUNK;
      if (ncap < need) ncap = need;
      uint8_t *nb = realloc(s->buf, ncap);
      if (!nb) return SFU_ENOMEM;
      s->buf = nb;
      s->cap = ncap;
    }
    if (off >= s->base && off < s->base + s->len) {
      keep = (size_t)(s->base + s->len - off);
      memmove(s->buf, s->buf + (off - s->base), keep);
    }
    s->base = off;
    s->len = keep;
    while (s->len < need) {
      uint64_t room = s->limit - (s->base + s->len);
      size_t want = s->cap - s->len;
      if (want > room) want = (size_t)room;
      ssize_t r = pread(s->fd, s->buf + s->len, want, (off_t)(s->base + s->len));
      if (r < 0) {
        if (errno == EINTR) continue;
        return -errno;
      }
      if (r == 0) { /* shorter than we were told: the file ends here */
        s->limit = s->base + s->len;
        return 1;
      }
      s->len += (size_t)r;
    }
  }
  *p = s->buf + (off - s->base);
  *avail = (size_t)(s->base + s->len - off);
  if (*avail > s->limit - off) *avail = (size_t)(s->limit - off);
  return 0;
}

static const uint8_t *find_magic_in(const uint8_t *p, size_t n) {
  const uint8_t *end = p + n;
  while ((size_t)(end - p) >= 4) {
    const uint8_t *q = memchr(p, 'S', (size_t)(end - p) - 3);
    if (!q) return NULL;
    if (q[1] == 'F' && q[2] == 'U' && q[3] == 'J') return q;
    p = q + 1;
  }
  return NULL;
}

/* Sets *at to the offset of the next "SFUJ" at or after `from` that leaves
 * room for a header, or to the limit. */
static int find_magic(scan_t *s, uint64_t from, uint64_t *at) {
  for (;;) {
    const uint8_t *p, *m;
    size_t avail, need;
    int rv;
    if (from > s->limit || s->limit - from < HDR) {
      *at = s->limit;
      return 0;
    }
    need = s->limit - from < s->cap ? (size_t)(s->limit - from) : s->cap;
    if (need < HDR) need = HDR;
    if ((rv = window(s, from, need, &p, &avail)) != 0) {
      if (rv < 0) return rv;
      continue;
    }
    if ((m = find_magic_in(p, avail)) != NULL) {
      *at = from + (uint64_t)(m - p);
      return 0;
    }
    from += avail - 3; /* a magic may straddle the window's end */
  }
}

/*
 * Finds the next valid record at or after s->off. Returns 1 (and *r), 0 at
 * the end of the parseable bytes, or a negative errno. Bytes from
 * valid_end to limit at the end are the caller's to judge (torn tail).
 */
static int scan_next(scan_t *s, rec_t *r) {
  for (;;) {
    const uint8_t *p;
    size_t avail;
    sfu_journal_hdr_t h;
    uint64_t o = s->off, end;
    int rv;

    if (o > s->limit || s->limit - o < HDR) return 0;
    if ((rv = window(s, o, HDR, &p, &avail)) != 0) {
      if (rv < 0) return rv;
      continue;
    }
    if (sfu_journal_decode_header(p, &h) != 0) {
      if ((rv = find_magic(s, o + 1, &s->off)) < 0) return rv;
      continue;
    }
    if (h.seq > s->hdr_tail) s->hdr_tail = h.seq;
    if (h.len > s->limit - o - HDR) return 0; /* runs past the end: torn */
    end = o + HDR + h.len;
    if (h.len > s->max_record) {
      s->too_big++;
      s->off = end;
      continue;
    }
    if ((rv = window(s, o, HDR + (size_t)h.len, &p, &avail)) != 0) {
      if (rv < 0) return rv;
      continue;
    }
    if (sfu_crc32c(0, p + HDR, h.len) != h.payload_crc || h.seq <= s->floor || h.seq < s->name) {
      s->off = end;
      continue;
    }
    if (o > s->valid_end) {
      s->skipped += o - s->valid_end;
      s->regions++;
    }
    if (s->hdr_tail > s->hdr_max) s->hdr_max = s->hdr_tail;
    s->hdr_tail = 0;
    s->valid_end = s->off = end;
    s->floor = h.seq;
    r->seq = h.seq;
    r->wall_ms = h.wall_ms;
    r->data = p + HDR;
    r->len = h.len;
    return 1;
  }
}

/* ---- the journal -------------------------------------------------------- */

/* One segment file. The table is sorted by name; the last entry is active. */
typedef struct seg_s {
  uint64_t name;    /* seq in the file name; its records are >= name */
  uint64_t floor;   /* highest valid seq in the segments before it */
  uint64_t first;   /* first valid seq in it, 0: none */
  uint64_t last;    /* last valid seq in it, 0: none */
  uint64_t records; /* valid records in it */
  uint64_t bytes;   /* bytes that may be parsed (active: end of last record) */
} seg_t;

struct sfu_journal_s {
  char *dir;               /* path, for log lines */
  int dfd;                 /* the directory, flocked while open */
  int fd;                  /* active segment, O_RDWR | O_APPEND; -1: none yet */
  size_t segment_bytes;    /* rotation bound */
  size_t max_record;       /* payload bound */
  int sync_every_append;   /* fdatasync in every append */
  SFU_VEC(seg_t) segs;     /* segment table, oldest first */
  uint64_t next_seq;       /* seq of the next append; 0: exhausted */
  uint64_t last_seq;       /* newest valid record */
  uint64_t durable_seq;    /* newest synced record */
  uint64_t durable_bytes;  /* synced prefix of the active segment */
  uint64_t acked;          /* highest acknowledged seq */
  int failed;              /* sticky fsync error, or 0 */
  int dirty;               /* junk past the active segment's end */
  uint64_t torn, corrupt;  /* recovery: bytes truncated / skipped */
  uint64_t corrupt_regions; /* recovery: runs of skipped bytes */
};

static void seg_name(char out[SEG_NAME_LEN + 1], uint64_t name) {
  snprintf(out, SEG_NAME_LEN + 1, "%020" PRIu64 ".seg", name);
}

static int parse_seg_name(const char *s, uint64_t *name) {
  uint64_t v = 0;
  if (strlen(s) != SEG_NAME_LEN || strcmp(s + 20, ".seg") != 0) return -1;
  for (int i = 0; i < 20; i++) {
    unsigned d = (unsigned)(s[i] - '0');
    if (d > 9 || v > (UINT64_MAX - d) / 10) return -1;
    v = v * 10 + d;
  }
  *name = v;
  return 0;
}

static seg_t *active(sfu_journal_t *j) {
  return j->segs.n ? &j->segs.items[j->segs.n - 1] : NULL;
}

static int do_fdatasync(int fd) {
  if (sfu__journal_fail_sync > 0) {
    sfu__journal_fail_sync--;
    return -EIO;
  }
  return fdatasync(fd) == 0 ? 0 : -errno;
}

static int do_ftruncate(int fd, uint64_t size) {
  if (sfu__journal_fail_truncate > 0) {
    sfu__journal_fail_truncate--;
    return -EIO;
  }
  return ftruncate(fd, (off_t)size) == 0 ? 0 : -errno;
}

static int sync_dir(sfu_journal_t *j) { return fsync(j->dfd) == 0 ? 0 : -errno; }

/* ---- ack file ------------------------------------------------------------
 *
 *   +------------+------------------+-----------------------+
 *   | "SFUA" u32 | acked seq u64    | CRC-32C of bytes 0..11 |   16 bytes
 *   +------------+------------------+-----------------------+
 */
static void read_ack(sfu_journal_t *j) {
  uint8_t b[ACK_LEN + 1];
  ssize_t n;
  int fd = openat(j->dfd, ACK_NAME, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno != ENOENT)
      sfu_log(SFU_LOG_WARN, "journal", "[%s] ack file unreadable (%s): acked seq taken as 0",
              j->dir, strerror(errno));
    return;
  }
  do n = read(fd, b, sizeof(b));
  while (n < 0 && errno == EINTR);
  close(fd);
  if (n != ACK_LEN || sfu_rd32(b) != ACK_MAGIC || sfu_rd32(b + 12) != sfu_crc32c(0, b, 12)) {
    sfu_log(SFU_LOG_WARN, "journal", "[%s] ack file invalid: acked seq taken as 0, "
            "unacknowledged records will be sent again", j->dir);
    return;
  }
  j->acked = rd64(b + 4);
}

static int write_ack(sfu_journal_t *j, uint64_t upto) {
  uint8_t b[ACK_LEN];
  size_t off = 0;
  int fd, rv = 0;
  sfu_wr32(b, ACK_MAGIC);
  wr64(b + 4, upto);
  sfu_wr32(b + 12, sfu_crc32c(0, b, 12));
  fd = openat(j->dfd, ACK_TMP, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return -errno;
  while (off < ACK_LEN) {
    ssize_t w = write(fd, b + off, ACK_LEN - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      rv = w < 0 ? -errno : -EIO;
      break;
    }
    off += (size_t)w;
  }
  if (rv == 0) rv = do_fdatasync(fd);
  close(fd);
  if (rv == 0 && renameat(j->dfd, ACK_TMP, j->dfd, ACK_NAME) != 0) rv = -errno;
  if (rv == 0) rv = sync_dir(j);
  if (rv != 0) unlinkat(j->dfd, ACK_TMP, 0);
  return rv;
}

/* ---- recovery ------------------------------------------------------------ */

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

typedef SFU_VEC(uint64_t) names_t;

/* Names of the segment files, sorted, into the empty *v. Other files are
 * left alone. */
static int list_segments(sfu_journal_t *j, names_t *v) {
  uint64_t name;
  struct dirent *de;
  int dfd2 = openat(j->dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *d;
  if (dfd2 < 0) return -errno;
  if (!(d = fdopendir(dfd2))) {
    int rv = -errno;
    close(dfd2);
    return rv;
  }
  while ((de = readdir(d)) != NULL) {
    if (parse_seg_name(de->d_name, &name) != 0) continue;
    if (sfu_vec_push(v, name) != 0) {
      sfu_vec_free(v);
      closedir(d);
      return SFU_ENOMEM;
    }
  }
  closedir(d);
  if (v->n > 1) qsort(v->items, (size_t)v->n, sizeof(*v->items), cmp_u64);
  return 0;
}

static uint64_t max_u64(uint64_t a, uint64_t b) { return a > b ? a : b; }

/*
 * Scans every segment, oldest first, and fills the segment table. The last
 * segment stays open as the active one, its tail after the last valid
 * record truncated; in older segments invalid bytes are only counted.
 */
static int recover(sfu_journal_t *j) {
  uint64_t floor = 0, hdr_max = 0;
  names_t names = {0};
  scan_t s = {.fd = -1, .max_record = j->max_record};
  int rv = list_segments(j, &names);
  if (rv != 0) return rv;
  if ((rv = sfu_vec_reserve(&j->segs, names.n)) != 0) goto out;

  for (int k = 0; k < names.n; k++) {
    int last = k + 1 == names.n;
    char fname[SEG_NAME_LEN + 1];
    struct stat st;
    seg_t g = {.name = names.items[k], .floor = floor};
    rec_t r;
    int fd;

    seg_name(fname, names.items[k]);
    fd = openat(j->dfd, fname, (last ? O_RDWR | O_APPEND : O_RDONLY) | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0) {
      rv = -errno;
      if (fd >= 0) close(fd);
      sfu_log(SFU_LOG_ERROR, "journal", "[%s] %s: %s", j->dir, fname, strerror(-rv));
      goto out;
    }
    scan_reset(&s, fd, g.name, floor, (uint64_t)st.st_size);
    while ((rv = scan_next(&s, &r)) == 1) {
      if (!g.first) g.first = r.seq;
      g.last = r.seq;
      g.records++;
    }
    if (rv < 0) {
      close(fd);
      sfu_log(SFU_LOG_ERROR, "journal", "[%s] %s: read: %s", j->dir, fname, strerror(-rv));
      goto out;
    }
    rv = 0;
    if (s.hdr_max > hdr_max) hdr_max = s.hdr_max;
    if (!last && s.hdr_tail > hdr_max) hdr_max = s.hdr_tail; /* stays on disk */
    floor = s.floor;
    j->corrupt += s.skipped;
    j->corrupt_regions += s.regions;
    g.bytes = (uint64_t)st.st_size;
    if (s.skipped || s.too_big)
      sfu_log(SFU_LOG_WARN, "journal",
              "[%s] %s: %" PRIu64 " corrupt bytes in %" PRIu64 " runs skipped (%" PRIu64
              " records over max_record)", j->dir, fname, s.skipped, s.regions, s.too_big);
    if (s.valid_end < g.bytes) {
      uint64_t tail = g.bytes - s.valid_end;
      if (last) {
        if ((rv = do_ftruncate(fd, s.valid_end)) != 0) {
          close(fd);
          sfu_log(SFU_LOG_ERROR, "journal", "[%s] %s: truncating torn tail: %s", j->dir, fname,
                  strerror(-rv));
          goto out;
        }
        sfu_log(SFU_LOG_WARN, "journal",
                "[%s] %s: torn tail of %" PRIu64 " bytes after offset %" PRIu64 " truncated",
                j->dir, fname, tail, s.valid_end);
        j->torn += tail;
        g.bytes = s.valid_end;
      } else {
        sfu_log(SFU_LOG_WARN, "journal",
                "[%s] %s: %" PRIu64 " invalid bytes at the end skipped", j->dir, fname, tail);
        j->corrupt += tail;
        j->corrupt_regions++;
      }
    }
    if (last)
      j->fd = fd;
    else
      close(fd);
    j->segs.items[j->segs.n++] = g; /* reserved above */
  }

  j->last_seq = j->durable_seq = floor;
  if (j->segs.n) {
    /* A crashed process leaves its records in the page cache only: make
     * everything recovered durable before it can be delivered. */
    if ((rv = do_fdatasync(j->fd)) != 0 || (rv = sync_dir(j)) != 0) {
      sfu_log(SFU_LOG_ERROR, "journal", "[%s] sync at open: %s", j->dir, strerror(-rv));
      goto out;
    }
    j->durable_bytes = active(j)->bytes;
  }
  {
    uint64_t top = max_u64(hdr_max, j->acked);
    j->next_seq = top == UINT64_MAX ? 0 : top + 1;
    if (j->next_seq && j->segs.n && active(j)->name > j->next_seq) j->next_seq = active(j)->name;
    if (!j->next_seq) sfu_log(SFU_LOG_ERROR, "journal", "[%s] sequence numbers exhausted", j->dir);
  }
out:
  free(s.buf);
  sfu_vec_free(&names);
  return rv;
}

static void journal_free(sfu_journal_t *j) {
  if (!j) return;
  if (j->fd >= 0) close(j->fd);
  if (j->dfd >= 0) close(j->dfd); /* releases the flock */
  sfu_vec_free(&j->segs);
  free(j->dir);
  free(j);
}

int sfu_journal_open(sfu_journal_t **out, const char *dir, const sfu_journal_opts_t *o,
                     sfu_journal_stats_t *recovered) {
  sfu_journal_opts_t def = {0};
  sfu_journal_t *j;
  int rv = 0;

  *out = NULL;
  if (!o) o = &def;
  if (!dir || !*dir || o->max_record > SFU_JOURNAL_MAX_RECORD_LIMIT ||
      (o->segment_bytes && o->segment_bytes < MIN_SEGMENT_BYTES))
    return SFU_EINVAL;
  if (!(j = calloc(1, sizeof(*j)))) return SFU_ENOMEM;
  j->dfd = j->fd = -1;
  j->segment_bytes = o->segment_bytes ? o->segment_bytes : SFU_JOURNAL_DEFAULT_SEGMENT_BYTES;
  j->max_record = o->max_record ? o->max_record : SFU_JOURNAL_DEFAULT_MAX_RECORD;
  j->sync_every_append = o->sync_every_append;
  if (!(j->dir = strdup(dir))) {
    rv = SFU_ENOMEM;
    goto out;
  }
  if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
    rv = -errno;
    goto out;
  }
  if ((j->dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
    rv = -errno;
    goto out;
  }
  if (flock(j->dfd, LOCK_EX | LOCK_NB) != 0) {
    rv = errno == EWOULDBLOCK ? SFU_EBUSY : -errno;
    goto out;
  }
  read_ack(j);
  unlinkat(j->dfd, ACK_TMP, 0); /* left by a crash inside write_ack */
  if ((rv = recover(j)) != 0) goto out;
  sfu_log(SFU_LOG_INFO, "journal",
          "[%s] opened: %d segments, seqs %" PRIu64 "..%" PRIu64 ", acked %" PRIu64
          ", next %" PRIu64, dir, j->segs.n, sfu_journal_first_seq(j), j->last_seq, j->acked,
          j->next_seq);
out:
  if (rv != 0) {
    journal_free(j);
    return rv;
  }
  *out = j;
  if (recovered) sfu_journal_get_stats(j, recovered);
  return 0;
}

void sfu_journal_close(sfu_journal_t *j) {
  if (j && j->segs.n) sfu_journal_sync(j); /* a clean shutdown loses nothing */
  journal_free(j);
}

/* ---- appending ----------------------------------------------------------- */

int sfu_journal_sync(sfu_journal_t *j) {
  int rv;
  if (j->failed) return j->failed;
  if (!j->segs.n || j->durable_bytes == active(j)->bytes) return 0;
  if ((rv = do_fdatasync(j->fd)) != 0) {
    j->failed = rv;
    sfu_log(SFU_LOG_ERROR, "journal", "[%s] fdatasync: %s; journal failed until reopened",
            j->dir, strerror(-rv));
    return rv;
  }
  j->durable_bytes = active(j)->bytes;
  j->durable_seq = j->last_seq;
  return 0;
}

int sfu_journal_sync_begin(sfu_journal_t *j, sfu_journal_sync_t *s) {
  if (j->failed) return j->failed;
  if (!j->segs.n || j->durable_bytes == active(j)->bytes) return 0;
  if ((s->fd = fcntl(j->fd, F_DUPFD_CLOEXEC, 0)) < 0) return -errno;
  s->seg = active(j)->name;
  s->bytes = active(j)->bytes;
  s->seq = j->last_seq;
  s->rv = 0;
  return 1;
}

void sfu_journal_sync_run(sfu_journal_sync_t *s) { s->rv = do_fdatasync(s->fd); }

int sfu_journal_sync_end(sfu_journal_t *j, sfu_journal_sync_t *s) {
  close(s->fd);
  s->fd = -1;
  if (s->rv != 0) {
    if (!j->failed) {
      j->failed = s->rv;
      sfu_log(SFU_LOG_ERROR, "journal", "[%s] fdatasync: %s; journal failed until reopened",
              j->dir, strerror(-s->rv));
    }
    return j->failed;
  }
  if (j->segs.n && active(j)->name == s->seg && s->bytes > j->durable_bytes)
    j->durable_bytes = s->bytes;
  if (s->seq > j->durable_seq) j->durable_seq = s->seq; /* a rotation may have gone further */
  return j->failed;
}

/*
 * Starts a segment named next_seq. The old one is synced first, so no
 * segment but the newest can ever have an unsynced (torn) tail.
 */
static int rotate(sfu_journal_t *j) {
  char fname[SEG_NAME_LEN + 1];
  int fd, rv;
  if ((rv = sfu_vec_reserve(&j->segs, j->segs.n + 1)) != 0) return rv;
  if ((rv = sfu_journal_sync(j)) != 0) return rv;
  seg_name(fname, j->next_seq);
  fd = openat(j->dfd, fname, O_RDWR | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) {
    rv = -errno;
    sfu_log(SFU_LOG_WARN, "journal", "[%s] creating %s: %s", j->dir, fname, strerror(-rv));
    return rv;
  }
  if (j->fd >= 0) close(j->fd);
  j->fd = fd;
  j->segs.items[j->segs.n++] = (seg_t){.name = j->next_seq, .floor = j->last_seq};
  j->durable_bytes = 0;
  if ((rv = sync_dir(j)) != 0) {
    j->failed = rv;
    sfu_log(SFU_LOG_ERROR, "journal", "[%s] fsync of directory: %s; journal failed", j->dir,
            strerror(-rv));
  }
  return rv;
}

/* Writes header and payload with writev, finishing short writes. */
static int write_record(int fd, uint8_t *hdr, const void *data, size_t len) {
  struct iovec iov[2] = {{hdr, HDR}, {(void *)data, len}};
  int i = 0, n = len ? 2 : 1;
  while (i < n) {
    ssize_t w = writev(fd, iov + i, n - i);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (w == 0) return -EIO;
    while (w > 0) {
      if ((size_t)w >= iov[i].iov_len) {
        w -= (ssize_t)iov[i].iov_len;
        i++;
      } else {
        iov[i].iov_base = (char *)iov[i].iov_base + w;
        iov[i].iov_len -= (size_t)w;
        w = 0;
      }
    }
  }
  return 0;
}

int sfu_journal_append(sfu_journal_t *j, const void *data, size_t len, int64_t wall_ms,
                       uint64_t *seq_out) {
  uint8_t hdr[HDR];
  seg_t *g = active(j);
  uint64_t seq = j->next_seq;
  int rv;

  if (j->failed) return j->failed;
  if (len > j->max_record) return SFU_EMSGSIZE;
  if (seq == 0) return -EOVERFLOW;
  if (j->dirty) {
    if ((rv = do_ftruncate(j->fd, g->bytes)) != 0) return rv;
    j->dirty = 0;
    sfu_log(SFU_LOG_INFO, "journal", "[%s] partial record from a failed append removed", j->dir);
  }
  if (!g || (g->bytes > 0 && g->bytes + HDR + len > j->segment_bytes)) {
    if ((rv = rotate(j)) != 0) return rv;
    g = active(j);
  }
  sfu_journal_encode_header(hdr, seq, wall_ms, data, (uint32_t)len);
  if ((rv = write_record(j->fd, hdr, data, len)) != 0) {
    int trv = do_ftruncate(j->fd, g->bytes);
    if (trv != 0) j->dirty = 1;
    sfu_log(SFU_LOG_WARN, "journal", "[%s] append of seq %" PRIu64 ": %s%s", j->dir, seq,
            strerror(-rv), trv ? "; partial record left, removed before the next append" : "");
    return rv;
  }
  g->bytes += HDR + len;
  if (!g->first) g->first = seq;
  g->last = seq;
  g->records++;
  j->last_seq = seq;
  j->next_seq = seq == UINT64_MAX ? 0 : seq + 1;
  if (seq_out) *seq_out = seq;
  return j->sync_every_append ? sfu_journal_sync(j) : 0;
}

/* ---- acknowledgement ------------------------------------------------------ */

/* Deletes the oldest segments whose records are all <= upto, never the
 * active one. Returns how many went. Unlinks are not fsynced: a segment
 * that comes back after a crash holds only delivered records and goes at
 * the next ack. */
static int delete_acked(sfu_journal_t *j, uint64_t upto) {
  seg_t *g = j->segs.items;
  int k = 0;
  while (k + 1 < j->segs.n && (!g[k].records || g[k].last <= upto)) {
    char fname[SEG_NAME_LEN + 1];
    seg_name(fname, g[k].name);
    if (unlinkat(j->dfd, fname, 0) != 0 && errno != ENOENT) {
      sfu_log(SFU_LOG_WARN, "journal", "[%s] deleting %s: %s", j->dir, fname, strerror(errno));
      break;
    }
    k++;
  }
  if (k) {
    memmove(g, g + k, (size_t)(j->segs.n - k) * sizeof(*g));
    j->segs.n -= k;
  }
  return k;
}

/*
 * The ack file only saves re-sending; deleting delivered records is safe
 * without it. So when the disk is full and the ack file cannot be written,
 * the segments go anyway (that is what frees the disk) and the write is
 * tried once more.
 */
int sfu_journal_ack(sfu_journal_t *j, uint64_t upto_seq) {
  int rv;
  if (upto_seq <= j->acked) return 0;
  if (upto_seq > j->durable_seq) return SFU_EINVAL;
  rv = write_ack(j, upto_seq);
  j->acked = upto_seq;
  if (delete_acked(j, upto_seq) && rv != 0) rv = write_ack(j, upto_seq);
  if (rv != 0)
    sfu_log(SFU_LOG_WARN, "journal", "[%s] writing ack %" PRIu64 ": %s (held in memory)",
            j->dir, upto_seq, strerror(-rv));
  return rv;
}

uint64_t sfu_journal_last_seq(const sfu_journal_t *j) { return j->last_seq; }

uint64_t sfu_journal_acked_seq(const sfu_journal_t *j) { return j->acked; }

uint64_t sfu_journal_first_seq(const sfu_journal_t *j) {
  for (int k = 0; k < j->segs.n; k++)
    if (j->segs.items[k].records) return j->segs.items[k].first;
  return 0;
}

void sfu_journal_get_stats(const sfu_journal_t *j, sfu_journal_stats_t *st) {
  memset(st, 0, sizeof(*st));
  st->segments = (uint64_t)j->segs.n;
  for (int k = 0; k < j->segs.n; k++) {
    st->records += j->segs.items[k].records;
    st->bytes += j->segs.items[k].bytes;
  }
  st->first_seq = sfu_journal_first_seq(j);
  st->last_seq = j->last_seq;
  st->durable_seq = j->durable_seq;
  st->acked_seq = j->acked;
  st->next_seq = j->next_seq;
  st->torn_bytes_truncated = j->torn;
  st->corrupt_skipped = j->corrupt;
  st->corrupt_regions = j->corrupt_regions;
  st->failed = j->failed;
}

/* ---- iteration ------------------------------------------------------------
 *
 * The iterator owns a scanner on one segment at a time. Each call sets the
 * scanner's limit from the table: the durable prefix for the active
 * segment, the whole file for older ones (unchanged once deleted: the open
 * descriptor still reads it). At the end of an older segment it moves to
 * the next one holding a record > after; at the end of the active one it
 * stops and picks up there at the next call.
 */
struct sfu_journal_iter_s {
  sfu_journal_t *j; /* the journal read */
  uint64_t after;   /* highest seq returned (or the starting bound) */
  uint64_t name;    /* segment open in s, when s.fd >= 0 */
  int started;      /* a segment has been opened */
  scan_t s;         /* scanner on that segment */
};

static seg_t *find_seg(sfu_journal_t *j, uint64_t name) {
  seg_t *g = j->segs.items;
  int lo = 0, hi = j->segs.n;
  while (lo < hi) {
    int mid = lo + (hi - lo) / 2;
    if (g[mid].name == name) return &g[mid];
    if (g[mid].name < name)
      lo = mid + 1;
    else
      hi = mid;
  }
  return NULL;
}

int sfu_journal_iter_open(sfu_journal_t *j, uint64_t after_seq, sfu_journal_iter_t **out) {
  sfu_journal_iter_t *it = calloc(1, sizeof(*it));
  *out = NULL;
  if (!it) return SFU_ENOMEM;
  it->j = j;
  it->after = after_seq;
  it->s.fd = -1;
  it->s.max_record = j->max_record;
  *out = it;
  return 0;
}

static int iter_open_seg(sfu_journal_iter_t *it) {
  sfu_journal_t *j = it->j;
  char fname[SEG_NAME_LEN + 1];
  seg_t *g = NULL;
  int fd;
  for (int k = 0; k < j->segs.n; k++) {
    seg_t *c = &j->segs.items[k];
    if (c->records && c->last > it->after && (!it->started || c->name > it->name)) {
      g = c;
      break;
    }
  }
  if (!g) return 0;
  seg_name(fname, g->name);
  if ((fd = openat(j->dfd, fname, O_RDONLY | O_CLOEXEC)) < 0) return -errno;
  scan_reset(&it->s, fd, g->name, g->floor, 0);
  it->name = g->name;
  it->started = 1;
  return 1;
}

int sfu_journal_iter_next(sfu_journal_iter_t *it, uint64_t *seq, int64_t *wall_ms,
                          const uint8_t **data, size_t *len) {
  sfu_journal_t *j = it->j;
  for (;;) {
    seg_t *g;
    rec_t r;
    int rv;
    if (it->s.fd < 0 && (rv = iter_open_seg(it)) <= 0) return rv;
    g = find_seg(j, it->name);
    if (g) it->s.limit = g == active(j) ? j->durable_bytes : g->bytes;
    if ((rv = scan_next(&it->s, &r)) < 0) return rv;
    if (rv == 1) {
      if (r.seq <= it->after) continue;
      it->after = r.seq;
      if (seq) *seq = r.seq;
      if (wall_ms) *wall_ms = r.wall_ms;
      if (data) *data = r.data;
      if (len) *len = r.len;
      return 1;
    }
    if (g && g == active(j)) return 0; /* follow the active segment */
    close(it->s.fd);
    it->s.fd = -1;
  }
}

void sfu_journal_iter_close(sfu_journal_iter_t *it) {
  if (!it) return;
  if (it->s.fd >= 0) close(it->s.fd);
  free(it->s.buf);
  free(it);
}
