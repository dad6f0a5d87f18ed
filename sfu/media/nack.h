/*
 * nack.h -- video loss recovery (RFC 4585 generic NACK, RFC 4588 RTX):
 * the retransmission cache that answers a subscriber's NACKs, RTX
 * wrapping and unwrapping, and the NACK generator for a publisher's
 * stream.
 *
 * Two independent pieces, one per direction:
 *
 *   subscriber side (we send)    sfu_rtx_cache_t, one per published video
 *                                layer. The forwarder puts every packet
 *                                the publisher sent, once, under its
 *                                sequence number; a NACK from a
 *                                subscriber is answered with get(), the
 *                                copy rebuilt as that subscriber got it
 *                                (sfu/room/forwarder.c), then sent again
 *                                as is or wrapped with sfu_rtx_wrap()
 *                                when RTX was negotiated.
 *
 *   publisher side (we receive)  sfu_nack_gen_t, one per inbound video
 *                                stream. The forwarder feeds every sequence
 *                                number that arrives (RTX ones after
 *                                sfu_rtx_unwrap()), and a timer asks
 *                                sfu_nack_gen_due() which numbers to put
 *                                in a NACK (sfu_rtcp_write_nack()).
 *
 * Both are bounded in memory and work, and allocate nothing per packet:
 * the cache allocates one block on its first put, the generator is a
 * fixed-size struct. Time is any monotonic millisecond clock; a time
 * earlier than one already seen is taken as equal to it. One loop thread
 * owns each instance (no locks). docs/internals/nack.md explains the
 * numbers.
 */
#ifndef SFU_NACK_H
#define SFU_NACK_H

#include <stddef.h>
#include <stdint.h>

#include "sfu/media/rtp.h"
#include "sfu/base/sfu.h"

/* ======================================================================== */
/* Retransmission cache                                                     */

/* Defaults (a 0 argument to sfu_rtx_cache_init() picks them). */
#define SFU_RTX_CACHE_SLOTS 512            /* packets */
#define SFU_RTX_CACHE_MAX_BYTES (1u << 20) /* byte budget: 1 MiB */
#define SFU_RTX_CACHE_MAX_AGE_MS 1000      /* older is not resent */
#define SFU_RTX_CACHE_MAX_RESENDS 3        /* per packet */
#define SFU_RTX_CACHE_RESEND_MS 10         /* between resends of one packet */
/* Limits on the arguments. */
#define SFU_RTX_CACHE_MAX_SLOTS 32768
#define SFU_RTX_CACHE_MIN_BYTES SFU_RTP_HEADER_LEN
#define SFU_RTX_CACHE_MAX_BUDGET (256u << 20)
/*
 * The arena is min(max_bytes, slots * SFU_RTX_CACHE_SLOT_BYTES): with
 * packets no larger than the Ethernet MTU the slot bound is reached before
 * more bytes could be used, so memory beyond that would never be touched.
 */
#define SFU_RTX_CACHE_SLOT_BYTES 1500

typedef struct sfu_rtx_entry_s sfu_rtx_entry_t; /* private to nack.c */

/*
 * The cache. Packets live in a byte ring (the arena) in the order they
 * were put; a FIFO of `slots` entries describes them, and an index by
 * seq & (slots - 1) finds the entry for a sequence number. A packet
 * leaves, oldest first, when the FIFO is full, when its bytes are needed
 * for a newer packet, or when it is older than max_age_ms; a newer packet
 * with the same index (a duplicate, or one `slots` numbers later)
 * supersedes it at once.
 *
 * The two configuration fields may be changed by the caller at any time
 * (e.g. resend_ms to the subscriber's RTT once an RR gave one). The rest
 * is state that nack.c owns; the counters are for the caller to read.
 */
typedef struct sfu_rtx_cache_s {
  uint32_t max_resends;   /* answers per packet; more NACKs are refused */
  uint32_t resend_ms;     /* min time between two answers for one packet */
  /* ---------------------------------------------------------------------- */
  uint32_t slots;         /* FIFO and index size, a power of two */
  uint32_t max_age_ms;    /* entries older than this are dropped */
  size_t max_bytes;       /* byte budget given to init */
  size_t arena_len;       /* bytes in the arena (see SLOT_BYTES above) */
  uint8_t *mem;           /* the one allocation, NULL until the first put */
  sfu_rtx_entry_t *ent;   /* FIFO ring of `slots` entries, in mem */
  uint16_t *index;        /* seq & mask -> FIFO position or 0xFFFF, in mem */
  uint8_t *arena;         /* packet bytes, in mem */
  uint32_t head;          /* FIFO position of the oldest entry */
  uint32_t count;         /* entries in the FIFO (superseded ones too) */
  size_t tail_off;        /* arena offset just past the newest packet */
  size_t bytes;           /* packet bytes held by the FIFO's entries */
  uint64_t last_ms;       /* latest time seen (clock clamp) */
  /* counters ------------------------------------------------------------- */
  uint64_t stored;         /* packets put */
  uint64_t evicted_slots;  /* entries dropped because the FIFO was full */
  uint64_t evicted_bytes;  /* entries dropped to make room in the arena */
  uint64_t evicted_age;    /* entries dropped for being older than max_age */
  uint64_t too_big;        /* puts refused: packet larger than the arena */
  uint64_t alloc_failures; /* puts refused: the arena could not be allocated */
  uint64_t hits;           /* gets answered */
  uint64_t misses;         /* gets for a number not (or no longer) held */
  uint64_t resend_limited; /* gets refused by max_resends or resend_ms */
} sfu_rtx_cache_t;

/*
 * Sets up an empty cache; allocates nothing (the arena comes with the
 * first put, so a subscription that never carries video costs only this
 * struct).
 *
 *   slots       packets held at most: a power of two, 1..32768; 0 = 512.
 *   max_bytes   byte budget for packet bytes, 12 .. 256 MiB; 0 = 1 MiB.
 *               The arena is min(max_bytes, slots * 1500).
 *   max_age_ms  packets older than this are not resent; 0 = 1000.
 *
 * max_resends and resend_ms get their defaults (3, 10 ms).
 * Returns 0 or SFU_EINVAL (the cache is then unusable, but
 * sfu_rtx_cache_free() accepts it).
 */
int sfu_rtx_cache_init(sfu_rtx_cache_t *c, size_t slots, size_t max_bytes,
                       uint32_t max_age_ms);

/* Frees the arena and zeroes the struct. A zeroed struct is fine. */
void sfu_rtx_cache_free(sfu_rtx_cache_t *c);

/*
 * Stores a copy of the `len` bytes sent with sequence number `seq` at
 * `now_ms`, after dropping whatever the bounds require (expired entries
 * first, then the oldest until the FIFO has a free entry and the arena a
 * free run of `len` bytes). A previous packet with the same index is
 * superseded. Called by the forwarder for each packet it sends, before
 * SRTP protection.
 *
 * Returns 0, SFU_E2BIG (len > arena_len: counted in too_big, nothing is
 * dropped, and an earlier packet with this seq is forgotten), SFU_ENOMEM
 * (first put, the arena could not be allocated: counted, the next put
 * tries again) or SFU_EINVAL (len < 12, or the cache was not initialised).
 */
int sfu_rtx_cache_put(sfu_rtx_cache_t *c, const uint8_t *pkt, size_t len,
                      uint16_t seq, uint64_t now_ms);

/*
 * Answers a NACK for `seq` at `now_ms`: returns the packet's length and
 * points *pkt at the stored bytes, or returns 0 (and sets *pkt to NULL)
 * if the packet was never put, was dropped, is older than max_age_ms
 * (dropped now), was answered max_resends times already, or was answered
 * less than resend_ms ago. Each non-zero return counts as one answer.
 *
 * *pkt points into the arena: valid until the next put or free. Copy it
 * (into a send buffer) before protecting: SRTP encrypts in place.
 */
int sfu_rtx_cache_get(sfu_rtx_cache_t *c, uint16_t seq, uint64_t now_ms,
                      const uint8_t **pkt);

/* ======================================================================== */
/* RTX (RFC 4588 §4)                                                        */

/*
 * Builds the retransmission packet for the RTP packet `pkt` (len bytes):
 *
 *   - the original header, CSRCs and header extension block as they are,
 *     except: P bit cleared, payload type rtx_pt (marker kept), sequence
 *     number rtx_seq, SSRC rtx_ssrc;
 *   - the original sequence number (OSN), 2 bytes big-endian;
 *   - the original payload, without its padding.
 *
 * `out` may be `pkt` itself (in place; then cap must cover the 2 extra
 * bytes) or must not overlap it. Extensions are copied unchanged: a
 * caller that numbers packets with transport-wide CC must write the new
 * transport sequence number into the copy.
 * Returns the length written (header_len + 2 + payload_len), SFU_EPROTO
 * (pkt does not parse as RTP) or SFU_E2BIG (cap too small; out untouched).
 */
int sfu_rtx_wrap(const uint8_t *pkt, size_t len, uint8_t rtx_pt,
                 uint32_t rtx_ssrc, uint16_t rtx_seq, uint8_t *out,
                 size_t cap);

/*
 * The inverse, in place, for a packet that arrived on a publisher's RTX
 * stream: restores sequence number (from the OSN), payload type `pt`
 * (marker kept) and SSRC `ssrc` of the primary stream, removes the OSN
 * and any padding (P bit cleared). Extensions and CSRCs are kept.
 * Returns the new length (>= 12), 0 for an RTX packet with no OSN and
 * only padding (a bandwidth probe: drop it, it is no error), or
 * SFU_EPROTO (does not parse, or a payload of 1 byte or of 0 bytes
 * without padding: a counted drop). On SFU_EPROTO the buffer is unchanged.
 */
int sfu_rtx_unwrap(uint8_t *pkt, size_t len, uint8_t pt, uint32_t ssrc);

/* ======================================================================== */
/* NACK generator                                                           */

#define SFU_NACK_WINDOW 512       /* sequence numbers tracked (power of 2) */
#define SFU_NACK_MAX_PER_CALL 64  /* numbers one sfu_nack_gen_due() returns */
/* Defaults set by sfu_nack_gen_init(). */
#define SFU_NACK_REORDER_MS 10    /* first NACK this long after the gap... */
#define SFU_NACK_REORDER_PKTS 3   /* ...or once this many newer packets came */
#define SFU_NACK_RETRY_MS 20      /* retries every max(rtt, this) */
#define SFU_NACK_MAX_TRIES 10     /* NACKs per number before giving up */

/* sfu_nack_gen_feed() results. */
#define SFU_NACK_FED 0       /* in order, reordered, duplicate or too old */
#define SFU_NACK_RECOVERED 1 /* filled a gap that had been NACKed */
#define SFU_NACK_RESET 2     /* jump or restart: tracking began anew */

/* One tracked sequence number (its position is ext seq & window mask). */
typedef struct {
  uint64_t t_ms;   /* when found missing, then when last NACKed */
  uint32_t adv;    /* gen->advances when found missing */
  uint8_t tries;   /* NACKs sent for it */
  uint8_t missing; /* 1 while missing and not given up */
} sfu_nack_slot_t;

/*
 * Generator state, embedded in the inbound track; no allocation at all
 * (about 8 KB). The window is the SFU_NACK_WINDOW sequence numbers up to
 * and including the highest one received; numbers missing in it are
 * tracked until they arrive, are given up after max_tries NACKs, or leave
 * the window.
 *
 * The first block is configuration the caller may change after init; the
 * rest is state owned by nack.c, and counters for the caller to read.
 */
typedef struct sfu_nack_gen_s {
  uint32_t reorder_ms;    /* first NACK once missing this long; 0 = at once */
  uint32_t reorder_pkts;  /* ...or once this many newer packets arrived
                             (the one that showed the gap included); 0 =
                             rule off */
  uint32_t retry_ms;      /* floor of the retry interval max(rtt, retry_ms) */
  uint32_t max_tries;     /* NACKs per number; the next due one gives up */
  /* ---------------------------------------------------------------------- */
  sfu_seq_unwrap_t unwrap; /* 16-bit seq -> extended */
  uint64_t highest;        /* highest extended number received */
  uint64_t last_ms;        /* latest time seen (clock clamp) */
  uint32_t advances;       /* packets that moved `highest` forward */
  uint32_t pending;        /* numbers missing now */
  uint32_t restart_seq;    /* next number expected after an out-of-window
                              old one (restart probation) */
  uint8_t restart_armed;   /* 1 while restart_seq is meaningful */
  /* counters ------------------------------------------------------------- */
  uint64_t missing;        /* numbers found missing (each gap seq once) */
  uint64_t nacked;         /* numbers returned by due(), retries included */
  uint64_t recovered;      /* NACKed numbers that arrived afterwards */
  uint64_t reordered;      /* missing numbers that arrived before a NACK */
  uint64_t given_up;       /* dropped missing: max_tries, left the window,
                              or reset */
  uint64_t resets;         /* jumps / restarts that began tracking anew */
  sfu_nack_slot_t slot[SFU_NACK_WINDOW];
} sfu_nack_gen_t;

/* Defaults above, nothing received yet. Also use it to start over. */
void sfu_nack_gen_init(sfu_nack_gen_t *g);

/*
 * One packet arrived with sequence number `seq` (a plain one, or the OSN
 * of an unwrapped RTX packet) at `now_ms`.
 *
 *   - newer than the highest by d <= SFU_NACK_WINDOW: the d - 1 numbers
 *     in between become missing (each counted once in `missing`);
 *     numbers that fall out of the window while missing are given up;
 *   - newer by more (as sfu_seq_unwrap() sees it: up to 32767 ahead):
 *     everything missing is given up and tracking starts at `seq` with
 *     nothing missing, so a big loss or a sequence restart causes no NACK
 *     storm. Returns SFU_NACK_RESET: the caller should ask for a keyframe;
 *   - older, inside the window: fills its gap if it was missing (counted
 *     recovered, SFU_NACK_RECOVERED, if it had been NACKed, else
 *     reordered); a duplicate or a given-up number is ignored;
 *   - older than the window: ignored, unless it is the number after the
 *     previous such packet: two in a row mean the sender restarted lower,
 *     and tracking is reset as above (SFU_NACK_RESET).
 *
 * Returns SFU_NACK_FED, SFU_NACK_RECOVERED or SFU_NACK_RESET.
 */
int sfu_nack_gen_feed(sfu_nack_gen_t *g, uint16_t seq, uint64_t now_ms);

/*
 * The numbers to NACK now, oldest first, at most min(max,
 * SFU_NACK_MAX_PER_CALL) of them, written to out_seqs (ready for
 * sfu_rtcp_write_nack()). A missing number is due
 *
 *   - the first time once reorder_ms passed since it was found missing,
 *     or reorder_pkts packets newer than the highest at that time (the
 *     one that revealed the gap included) arrived, whichever comes first;
 *   - again once max(rtt_ms, retry_ms) passed since its last NACK;
 *
 * and each return counts as a NACK. A number due after max_tries NACKs
 * is given up instead. Numbers due but beyond the per-call limit stay
 * due for the next call (the oldest go first). Call from a timer every
 * 10-20 ms while `pending` is not 0; cost O(SFU_NACK_WINDOW) then, O(1)
 * otherwise.
 * Returns how many numbers were written (0..max).
 */
int sfu_nack_gen_due(sfu_nack_gen_t *g, uint64_t now_ms, uint32_t rtt_ms,
                     uint16_t *out_seqs, int max);

#endif
