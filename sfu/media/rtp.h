/*
 * rtp.h -- RTP packets (RFC 3550) as views over the received bytes, header
 * extensions (RFC 8285), and the SFU's per-subscriber forward copy.
 *
 * sfu_rtp_parse() checks every length once and fills an sfu_rtp_t of
 * offsets into the caller's buffer; nothing is copied and nothing is
 * allocated. The view is valid while the buffer is. Everything else here
 * (extension lookup, audio level, mid/rid, forward copy) works from a parsed
 * view and never looks outside [data, data + len).
 *
 * Callers: sfu/net/transport.c demuxes with sfu_is_rtcp();
 * sfu/room/forwarder.c parses, unwraps sequence numbers and rewrites with
 * the setters or sfu_rtp_forward_copy(). See docs/internals/rtp.md.
 */
#ifndef SFU_RTP_H
#define SFU_RTP_H

#include <stddef.h>
#include <stdint.h>

#include "sfu/base/sfu.h"

#define SFU_RTP_HEADER_LEN 12
#define SFU_RTP_EXT_ONE_BYTE 0xBEDE  /* RFC 8285 §4.2 profile */
#define SFU_RTP_EXT_TWO_BYTE 0x1000  /* RFC 8285 §4.3, low 4 bits appbits */

/*
 * A parsed RTP packet. Offsets count from `data`; the areas are laid out
 *
 *   [0, 12) fixed header | CSRCs | ext header (4) | [ext_off, +ext_len)
 *   | [payload_off, +payload_len) | pad_len bytes of padding
 *
 * so header_len == payload_off and payload_off + payload_len + pad_len ==
 * len. ext_off/ext_len/ext_profile are 0 when has_ext is 0.
 */
typedef struct sfu_rtp_s {
  const uint8_t *data;       /* whole packet view */
  size_t len;                /* bytes in the packet */
  uint8_t marker;            /* M bit, 0/1 */
  uint8_t pt;                /* payload type, 0..127 */
  uint8_t csrc_count;        /* CC, 0..15 */
  uint8_t has_ext;           /* X bit, 0/1 */
  uint8_t has_padding;       /* P bit, 0/1 */
  uint16_t seq;              /* sequence number */
  uint32_t ts;               /* RTP timestamp */
  uint32_t ssrc;             /* synchronization source */
  size_t header_len;         /* fixed + CSRCs + extension block */
  uint16_t ext_profile;      /* 0xBEDE one-byte, 0x100x two-byte (RFC 8285) */
  size_t ext_off;            /* extension elements area: offset */
  size_t ext_len;            /* its length, a multiple of 4 */
  size_t payload_off;        /* payload: offset (== header_len) */
  size_t payload_len;        /* its length, padding excluded (may be 0) */
  uint8_t pad_len;           /* trailing padding incl. the count byte */
} sfu_rtp_t;

/*
 * Parses `len` bytes at `buf` into `out`. Returns 0, or SFU_EPROTO when the
 * version is not 2, the packet is shorter than its fixed header, CSRC list
 * or extension block, or the padding count is 0 or larger than what follows
 * the header. `out` is unspecified after an error. RTCP is not recognised
 * here: demux with sfu_is_rtcp() first.
 */
int sfu_rtp_parse(const uint8_t *buf, size_t len, sfu_rtp_t *out);

/*
 * RFC 5761 §4 demux: 1 if the second byte is 192..223 (RTCP packet types
 * 200-207 with the marker-bit overlap), else 0. Needs len >= 2.
 */
int sfu_is_rtcp(const uint8_t *buf, size_t len);

/*
 * Walks the extension elements of a parsed packet. One-byte form (profile
 * 0xBEDE): ids 1..14, zero bytes are padding, id 15 stops the walk. Two-byte
 * form (profile 0x100x): ids 1..255, zero id bytes are padding, lengths
 * 0..255. Any other profile has no elements we understand.
 */
typedef struct sfu_rtp_ext_iter_s {
  const uint8_t *p;  /* first byte of the elements area */
  size_t len;        /* its length */
  size_t off;        /* next byte to read */
  int form;          /* 1 one-byte, 2 two-byte, 0 none */
} sfu_rtp_ext_iter_t;

void sfu_rtp_ext_iter_init(sfu_rtp_ext_iter_t *it, const sfu_rtp_t *p);
/* 1 and the next element (val points into the packet), 0 at the end or at
 * id 15, SFU_EPROTO if an element runs past the block (the walk stops). */
int sfu_rtp_ext_next(sfu_rtp_ext_iter_t *it, int *id, const uint8_t **val,
                     size_t *len);

/* Finds the first element with `id`: 1 and its value, 0 if absent. */
int sfu_rtp_ext_find(const sfu_rtp_t *p, int id, const uint8_t **val,
                     size_t *len);

/*
 * RFC 6464 client-to-mixer audio level in element `ext_id`: *voice gets the
 * V flag (0/1), *level 0..127 (-dBov, 127 = silence). 1 found, 0 not.
 */
int sfu_rtp_audio_level(const sfu_rtp_t *p, int ext_id, int *voice,
                        int *level);

/*
 * Copies the RFC 8843 mid (or RFC 8852 rid / repaired-rid: same shape) in
 * element `ext_id` into `out` as a NUL-terminated string. Returns its
 * length, or 0 if the element is absent, empty, holds bytes outside
 * printable ASCII, or does not fit in cap - 1.
 */
int sfu_rtp_ext_mid(const sfu_rtp_t *p, int ext_id, char *out, size_t cap);

/*
 * In-place rewrites of a writable packet of at least 12 bytes (the caller
 * parsed it already). set_pt keeps the marker bit.
 */
void sfu_rtp_set_seq(uint8_t *pkt, uint16_t seq);
void sfu_rtp_set_ts(uint8_t *pkt, uint32_t ts);
void sfu_rtp_set_ssrc(uint8_t *pkt, uint32_t ssrc);
void sfu_rtp_set_pt(uint8_t *pkt, uint8_t pt);

/*
 * The forwarder's per-subscriber copy. Writes to `out`:
 *
 *   - a 12-byte header: V=2, no padding, no CSRCs, marker from `p`,
 *     pt/seq/ts/ssrc as given;
 *   - if `map` is not NULL, a one-byte-form (0xBEDE) extension block
 *     holding, in their original order, the elements of `p` whose id
 *     maps to a new id: map[id] in 1..14 keeps the element under that id,
 *     0 (or anything above 14) drops it. map[0] is ignored. Elements of a
 *     two-byte block are kept only if their id is <= 14 and their length
 *     1..16. With no element left the block and the X bit are left out;
 *   - the payload, without padding.
 *
 * One pass, no allocation; the output is never longer than p->len and
 * must not overlap the source packet.
 * Returns the bytes written, or SFU_E2BIG if they do not fit in `cap`
 * (out is then partly written).
 */
int sfu_rtp_forward_copy(const sfu_rtp_t *p, uint8_t pt, uint16_t seq,
                         uint32_t ts, uint32_t ssrc, const uint8_t map[15],
                         uint8_t *out, size_t cap);

/*
 * 16-bit sequence numbers to 64-bit extended ones. A number up to 32767
 * ahead of the highest seen (modulo 2^16) moves the highest forward, across
 * a wrap if need be; anything else is taken as late (reordered, duplicate)
 * and placed behind it. RFC 3550 A.1 counts cycles the same way; its
 * dropout/restart probation is the caller's business.
 *
 * The first number s maps to SFU_SEQ_EXT_BASE + s, so a packet that was
 * sent before the first one we saw still gets a positive value. RFC 3550's
 * "extended highest sequence number" for an RR is max_ext - SFU_SEQ_EXT_BASE.
 * Zero-initialise the struct to start.
 */
#define SFU_SEQ_EXT_BASE UINT64_C(65536)

typedef struct {
  uint64_t max_ext;  /* highest extended number seen */
  int init;          /* 0 until the first number */
} sfu_seq_unwrap_t;

uint64_t sfu_seq_unwrap(sfu_seq_unwrap_t *u, uint16_t seq);

/*
 * The RFC 3550 32-bit "extended highest sequence number" (cycles << 16 |
 * seq, cycles counted from 0) for an extended number from sfu_seq_unwrap():
 * what an RR report block carries.
 */
uint32_t sfu_seq_rtcp_ext(uint64_t ext);

#endif
