/*
 * journal.h -- sfud's append-only journal of events and usage records.
 *
 * Every record sfud must deliver to the control plane is appended here
 * before anyone is told about it, read back from disk by the webhook sender
 * and by GET /v1/events, and deleted once the control plane acknowledged it.
 * Format, fsync policy, rotation, recovery and disk-full behaviour are in
 * docs/internals/journal.md; the short version:
 *
 *   <dir>/00000000000000000001.seg   segment files, named by the seq of
 *   <dir>/00000000000000004711.seg   their first record (20 digits)
 *   <dir>/acked                      highest acknowledged seq (atomic file)
 *
 * Each record is a 32-byte header and its payload (one JSON object):
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +---------------------------------------------------------------+
 *   |                 magic 'S' 'F' 'U' 'J' (0x5346554a)            |  0
 *   +---------------------------------------------------------------+
 *   |                 payload length N (bytes)                      |  4
 *   +---------------------------------------------------------------+
 *   |                 seq (64 bits, per node, strictly increasing)  |  8
 *   |                                                               |
 *   +---------------------------------------------------------------+
 *   |                 wall clock at append, ms since 1970 (signed)  | 16
 *   |                                                               |
 *   +---------------------------------------------------------------+
 *   |                 CRC-32C of the N payload bytes                | 24
 *   +---------------------------------------------------------------+
 *   |                 CRC-32C of header bytes 4..27                 | 28
 *   +---------------------------------------------------------------+
 *   |                 N payload bytes                              ...
 *
 * All integers big endian. A record is valid when the magic matches, both
 * CRCs verify, N <= max_record, and its seq exceeds every valid seq before
 * it (in this and earlier segments) and is >= the segment's name.
 *
 * Seqs: per node, from 1, strictly increasing; a seq that was ever durable
 * is never handed out again (a torn tail's seqs were not, and come back).
 *
 * Durability contract: a record is durable once sfu_journal_sync() returned
 * 0 after its append (or at once with sync_every_append). Readers
 * (iterators) see only durable records, so nothing is delivered that a
 * power cut could take back. sfud (sfu/node/events.c) syncs once per loop turn,
 * just before the loop blocks: one fdatasync per batch.
 *
 * One thread: the journal and its iterators belong to sfud's loop thread.
 * One process: open takes an exclusive flock on the directory (SFU_EBUSY).
 */
#ifndef SFU_SIGNALING_JOURNAL_H
#define SFU_SIGNALING_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#define SFU_JOURNAL_HDR_LEN 32
#define SFU_JOURNAL_MAGIC 0x5346554au /* "SFUJ" */
#define SFU_JOURNAL_DEFAULT_SEGMENT_BYTES (4u << 20)
#define SFU_JOURNAL_DEFAULT_MAX_RECORD (1u << 20)
/* Largest payload the format allows; opts.max_record may not exceed it. */
#define SFU_JOURNAL_MAX_RECORD_LIMIT (16u << 20)

/* Options for sfu_journal_open(); zero fields take the defaults. */
typedef struct sfu_journal_opts_s {
  size_t segment_bytes;  /* rotate before a record would pass this (4 MiB) */
  size_t max_record;     /* largest payload accepted and read (1 MiB) */
  int sync_every_append; /* fdatasync inside every append */
} sfu_journal_opts_t;

/*
 * What recovery found at open, and (sfu_journal_get_stats) the state now.
 * Byte counts are of segment files; seqs are 0 when there is none.
 */
typedef struct sfu_journal_stats_s {
  uint64_t segments;             /* segment files */
  uint64_t records;              /* valid records in them */
  uint64_t bytes;                /* size of all segments */
  uint64_t first_seq;            /* oldest retained valid record */
  uint64_t last_seq;             /* newest valid record */
  uint64_t durable_seq;          /* newest record that is synced */
  uint64_t acked_seq;            /* from the ack file */
  uint64_t next_seq;             /* seq of the next append; 0: exhausted */
  uint64_t torn_bytes_truncated; /* tail of the last segment cut off */
  uint64_t corrupt_skipped;      /* bytes skipped inside or between records */
  uint64_t corrupt_regions;      /* runs of skipped bytes */
  int failed;                    /* sticky error (negative) or 0 */
} sfu_journal_stats_t;

/* The layout of one header, decoded. */
typedef struct sfu_journal_hdr_s {
  uint32_t len;         /* payload bytes */
  uint64_t seq;         /* record sequence number */
  int64_t wall_ms;      /* wall clock at append */
  uint32_t payload_crc; /* CRC-32C of the payload */
} sfu_journal_hdr_t;

typedef struct sfu_journal_s sfu_journal_t;
typedef struct sfu_journal_iter_s sfu_journal_iter_t;

/*
 * CRC-32C (Castagnoli, reflected polynomial 0x82F63B78, as in iSCSI and
 * ext4), slice-by-8. Start with crc = 0; chain calls by passing the result.
 * crc32c("123456789") = 0xE3069283.
 */
uint32_t sfu_crc32c(uint32_t crc, const void *data, size_t len);

/* Writes the 32-byte header for a payload (computes both CRCs). */
void sfu_journal_encode_header(uint8_t hdr[SFU_JOURNAL_HDR_LEN], uint64_t seq,
                               int64_t wall_ms, const void *payload, uint32_t len);
/*
 * Checks magic and header CRC and fills `h`. Returns 0 or SFU_EPROTO. The
 * payload is checked separately: sfu_crc32c(0, payload, h->len) ==
 * h->payload_crc.
 */
int sfu_journal_decode_header(const uint8_t hdr[SFU_JOURNAL_HDR_LEN], sfu_journal_hdr_t *h);

/*
 * Opens (creating `dir` if missing, one level) and recovers the journal:
 * every segment is scanned and validated, the last one's torn tail is
 * truncated, invalid bytes elsewhere are skipped and counted, and the
 * last segment and the directory are fsynced so every recovered record is
 * durable. Content never makes open fail.
 *
 * `o` may be NULL (defaults). `recovered` (may be NULL) receives the stats.
 * Returns 0; SFU_EINVAL (bad options), SFU_EBUSY (another process has it
 * open), SFU_ENOMEM, or a negative errno from the file system (EACCES, EIO,
 * ENOSPC while truncating ...). On error *out is NULL.
 */
int sfu_journal_open(sfu_journal_t **out, const char *dir, const sfu_journal_opts_t *o,
                     sfu_journal_stats_t *recovered);

/*
 * Appends one record with the next seq (stored in *seq_out, may be NULL).
 * One writev(2) on an O_APPEND descriptor; rotates first if the record
 * would take the active segment past segment_bytes. Not durable until
 * sfu_journal_sync() (unless sync_every_append).
 *
 * Returns 0; SFU_EMSGSIZE (len > max_record); -EOVERFLOW (seqs exhausted);
 * or the write error (-ENOSPC, -EDQUOT, -EFBIG, -EIO): then nothing of the
 * record remains in the file (a partial write is truncated away), the seq is
 * not consumed, and the next append may succeed once space is back. If even
 * the truncation failed it is retried before the next append. After a
 * failed fsync every call returns that error until the journal is reopened.
 */
int sfu_journal_append(sfu_journal_t *j, const void *data, size_t len, int64_t wall_ms,
                       uint64_t *seq_out);

/* fdatasyncs the active segment; appended records become durable and
 * visible to iterators. Returns 0 or the (sticky) error. */
int sfu_journal_sync(sfu_journal_t *j);

/*
 * The same sync in two halves, so that the fdatasync can run on another
 * thread while the owner keeps appending (sfud's loop must not wait on a
 * slow disk). begin() notes what is appended so far and takes its own
 * descriptor of the active segment; run() fdatasyncs it (the only half
 * that may run on another thread; it touches nothing but `s`); end(), back
 * on the owner's thread, makes those records durable (or fails the journal
 * as sfu_journal_sync() would) and closes the descriptor. begin() returns
 * 1 when there is something to sync, 0 when not (then no run or end), or
 * an error. Appends and rotations between begin and end are fine: a
 * rotation syncs the old segment itself.
 */
typedef struct sfu_journal_sync_s {
  int fd;                        /* dup of the active segment's descriptor */
  uint64_t seg;                  /* that segment's name */
  uint64_t bytes, seq;           /* what the sync covers */
  int rv;                        /* run()'s result */
} sfu_journal_sync_t;
int sfu_journal_sync_begin(sfu_journal_t *j, sfu_journal_sync_t *s);
void sfu_journal_sync_run(sfu_journal_sync_t *s);
int sfu_journal_sync_end(sfu_journal_t *j, sfu_journal_sync_t *s);

/*
 * Records up to and including `upto_seq` were delivered. Persists it in the
 * ack file (write temp, fsync, rename, fsync dir) and deletes the oldest
 * segments whose records are all <= upto_seq, never the active one.
 * Acking at or below the current ack is a no-op. Returns 0; SFU_EINVAL
 * (upto_seq beyond the last durable record); or the error writing the ack
 * file (-ENOSPC ...): the ack then holds in memory and the segments are
 * deleted all the same (freeing the disk), only its persistence failed;
 * the next ack writes the file again. Lost, it costs re-delivery only.
 */
int sfu_journal_ack(sfu_journal_t *j, uint64_t upto_seq);

uint64_t sfu_journal_last_seq(const sfu_journal_t *j);  /* newest record, 0 none */
uint64_t sfu_journal_acked_seq(const sfu_journal_t *j); /* from ack */
uint64_t sfu_journal_first_seq(const sfu_journal_t *j); /* oldest retained, 0 none */
void sfu_journal_get_stats(const sfu_journal_t *j, sfu_journal_stats_t *st);

/* Syncs (errors are logged, not returned), closes the files and frees `j`.
 * Open iterators must be closed first. NULL is a no-op. */
void sfu_journal_close(sfu_journal_t *j);

/*
 * Iterator over durable records with seq > after_seq, in seq order, read
 * from disk (GET /v1/events?after=, the webhook sender). Records already
 * deleted by ack are simply not there: compare with sfu_journal_first_seq().
 * Memory: one buffer growing to at most 32 + max_record bytes.
 * Returns 0, SFU_ENOMEM.
 */
int sfu_journal_iter_open(sfu_journal_t *j, uint64_t after_seq, sfu_journal_iter_t **it);
/*
 * Next record: returns 1 and fills the outputs (any may be NULL; `data` is
 * valid until the next call), 0 at the end of the durable records (call
 * again later: the iterator follows appends), or a negative errno on a read
 * error. Corrupt bytes found on the way are skipped, as in recovery.
 */
int sfu_journal_iter_next(sfu_journal_iter_t *it, uint64_t *seq, int64_t *wall_ms,
                          const uint8_t **data, size_t *len);
void sfu_journal_iter_close(sfu_journal_iter_t *it);

/* Test hooks: the next N ftruncate / fdatasync calls fail with EIO. */
extern int sfu__journal_fail_truncate;
extern int sfu__journal_fail_sync;

#endif
