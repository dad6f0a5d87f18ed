/*
 * rtcp.h -- RTCP compound packets (RFC 3550 §6) and the feedback messages
 * an SFU needs (RFC 4585 NACK/PLI, RFC 5104 FIR, REMB, transport-wide CC):
 * an iterator over a compound packet, views over each message, and
 * writers.
 *
 * Reading: sfu_rtcp_iter_init() + sfu_rtcp_next() frame a (decrypted)
 * compound packet into sfu_rtcp_hdr_t views, each checked to lie inside the
 * buffer and to have a sane padding count. The parse functions take such a
 * view, check the body length for their message once, and read fields with
 * explicit shifts. Nothing is copied or allocated; views live as long as
 * the buffer. A parse function given a message of another type returns
 * SFU_EINVAL (callers normally dispatch on pt/count first); a message of
 * the right type that is too short returns SFU_EPROTO.
 *
 * Writing: every writer takes (buf, cap), writes one RTCP packet with V=2
 * and no padding, and returns its length (a multiple of 4) or SFU_E2BIG
 * when cap is too small (nothing useful is written then). Compound packets
 * are built by calling writers one after another into the same buffer.
 *
 * Callers: transport.c (SRTCP in, then the iterator), track.c (SR for
 * lip sync and RTT, RR generation), nack.c, forwarder.c (PLI/FIR towards
 * publishers), and the bandwidth estimator (REMB, TWCC).
 */
#ifndef SFU_RTCP_H
#define SFU_RTCP_H

#include <stddef.h>
#include <stdint.h>

#include "sfu/sfu.h"

/* Packet types (RFC 3550, RFC 4585, RFC 3611) */
#define SFU_RTCP_SR 200
#define SFU_RTCP_RR 201
#define SFU_RTCP_SDES 202
#define SFU_RTCP_BYE 203
#define SFU_RTCP_APP 204
#define SFU_RTCP_RTPFB 205
#define SFU_RTCP_PSFB 206
#define SFU_RTCP_XR 207

/* FMT values: RTPFB */
#define SFU_RTCP_FMT_NACK 1
#define SFU_RTCP_FMT_TWCC 15
/* FMT values: PSFB */
#define SFU_RTCP_FMT_PLI 1
#define SFU_RTCP_FMT_FIR 4
#define SFU_RTCP_FMT_AFB 15 /* application layer feedback: REMB */

/* SDES item types */
#define SFU_RTCP_SDES_END 0
#define SFU_RTCP_SDES_CNAME 1

/*
 * One packet of a compound, as framed by sfu_rtcp_next(). `data`/`len`
 * cover the whole packet from its first header byte, padding included; the
 * body a parser looks at is [0, len - pad_len). `ssrc` is the 32-bit word
 * after the header (the sender SSRC for SR/RR/feedback, the first chunk or
 * source for SDES/BYE), 0 if the body is shorter.
 */
typedef struct sfu_rtcp_hdr_s {
  uint8_t version_ok;     /* version == 2 (always 1 from sfu_rtcp_next) */
  uint8_t padding;        /* P bit */
  uint8_t count;          /* RC / SC / FMT: low 5 bits of byte 0 */
  uint8_t pt;             /* packet type, 200..207 for the known ones */
  uint16_t length_words;  /* length field: 32-bit words minus one */
  const uint8_t *data;    /* first byte of this packet */
  size_t len;             /* this packet incl. header: 4 * (length + 1) */
  uint32_t ssrc;          /* first word of the body, see above */
  uint8_t pad_len;        /* padding at the end incl. the count byte */
} sfu_rtcp_hdr_t;

/* Cursor over a compound packet; zero-copy, the buffer must outlive it. */
typedef struct sfu_rtcp_iter_s {
  const uint8_t *buf;  /* compound packet */
  size_t len;          /* its length */
  size_t off;          /* start of the next packet */
} sfu_rtcp_iter_t;

void sfu_rtcp_iter_init(sfu_rtcp_iter_t *it, const uint8_t *buf, size_t len);
/*
 * Frames the next packet into `out`. Returns 1, 0 at the end, or
 * SFU_EPROTO when the rest is not a packet (under 4 bytes, version != 2,
 * length past the end, padding count 0 or larger than the body); the
 * iterator then stays at its end. Packets before the bad one have already
 * been returned: RFC 3550 A.2 drops the whole compound, which a caller can
 * do by iterating twice. Unknown packet types are returned like any other.
 */
int sfu_rtcp_next(sfu_rtcp_iter_t *it, sfu_rtcp_hdr_t *out);

/* A report block (RFC 3550 §6.4.1), shared by SR and RR. */
typedef struct sfu_rtcp_report_s {
  uint32_t ssrc;             /* source this block reports on */
  uint8_t fraction_lost;     /* since the last report, in 1/256 */
  int32_t cumulative_lost;   /* 24-bit signed on the wire, clamped when written */
  uint32_t ext_highest_seq;  /* cycles << 16 | highest seq */
  uint32_t jitter;           /* interarrival jitter, RTP timestamp units */
  uint32_t lsr;              /* middle 32 bits of the last SR's NTP time */
  uint32_t dlsr;             /* delay since that SR, 1/65536 s */
} sfu_rtcp_report_t;

/* Sender report; as an RR, the sender-info fields are 0. */
typedef struct sfu_rtcp_sr_s {
  uint32_t ssrc;                   /* sender */
  uint64_t ntp;                    /* NTP timestamp, 32.32 fixed point */
  uint32_t rtp_ts;                 /* RTP time of the same instant */
  uint32_t packets;                /* sender's packet count */
  uint32_t octets;                 /* sender's payload octet count */
  sfu_rtcp_report_t reports[31];   /* report blocks */
  int nreports;                    /* 0..31 */
} sfu_rtcp_sr_t;

/*
 * SR (pt 200) or RR (pt 201) into `out`, all RC report blocks included.
 * Bytes after the blocks (profile extensions) are ignored. 0, SFU_EPROTO
 * (body shorter than RC blocks need), SFU_EINVAL (other pt).
 */
int sfu_rtcp_parse_sr(const sfu_rtcp_hdr_t *h, sfu_rtcp_sr_t *out);

/*
 * SDES (pt 202): the CNAME of the first chunk that has one, copied to `out`
 * NUL-terminated, with the chunk's SSRC in *ssrc. Returns its length, 0 if
 * there is none (or it is empty or does not fit in cap - 1), SFU_EPROTO if
 * a chunk runs past the body before that, SFU_EINVAL (not SDES).
 */
int sfu_rtcp_parse_sdes_cname(const sfu_rtcp_hdr_t *h, uint32_t *ssrc,
                              char *out, size_t cap);

/*
 * Generic NACK (RTPFB, FMT 1): media SSRC and the lost sequence numbers,
 * each PID followed by the ones its BLP bits name, in wire order, at most
 * `cap` of them. Returns how many were stored, SFU_EPROTO (no FCI),
 * SFU_EINVAL (not a generic NACK).
 */
int sfu_rtcp_parse_nack(const sfu_rtcp_hdr_t *h, uint32_t *media_ssrc,
                        uint16_t *seqs, int cap);

/*
 * Any payload-specific feedback (pt 206): *fmt gets FMT (PLI=1, FIR=4,
 * AFB=15, ...), *media_ssrc the media source: from the common header,
 * except for FIR where that field is 0 and the first FCI entry names it.
 * 0, SFU_EPROTO (too short; a FIR without an entry), SFU_EINVAL (not PSFB).
 */
int sfu_rtcp_parse_psfb(const sfu_rtcp_hdr_t *h, int *fmt,
                        uint32_t *media_ssrc);

/*
 * FIR entries (RFC 5104 §4.3.1): up to `cap` target SSRCs and their command
 * sequence numbers. Returns the count stored, SFU_EPROTO, or SFU_EINVAL.
 */
int sfu_rtcp_parse_fir(const sfu_rtcp_hdr_t *h, uint32_t *ssrcs,
                       uint8_t *seqnrs, int cap);

/*
 * REMB (draft-alvestrand-rmcat-remb, PSFB FMT 15 with "REMB"): the bitrate
 * (mantissa << exponent, saturating at UINT64_MAX) and up to `cap` SSRCs.
 * Returns the count stored, SFU_EPROTO (SSRC list past the end), or
 * SFU_EINVAL (not a REMB).
 */
int sfu_rtcp_parse_remb(const sfu_rtcp_hdr_t *h, uint64_t *bitrate_bps,
                        uint32_t *ssrcs, int cap);

/*
 * Transport-wide congestion control feedback
 * (draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1, RTPFB FMT 15).
 */
typedef struct sfu_rtcp_twcc_s {
  uint32_t sender_ssrc;   /* feedback sender */
  uint32_t media_ssrc;    /* media source (unused by senders, often 0/1) */
  uint16_t base_seq;      /* transport-wide seq of the first status */
  uint16_t status_count;  /* packets covered from base_seq on */
  int32_t ref_time;       /* 24-bit signed, units of 64 ms */
  uint8_t fb_count;       /* feedback packet count, for loss of feedback */
} sfu_rtcp_twcc_t;

#define SFU_TWCC_NOT_RECEIVED 0
#define SFU_TWCC_SMALL_DELTA 1
#define SFU_TWCC_LARGE_DELTA 2

/*
 * Decodes the header into `out` and, if `status` is not NULL, the packet
 * status chunks and receive deltas: status[i] for base_seq + i is one of
 * SFU_TWCC_*, delta_us[i] (if delta_us is not NULL) the receive delta in
 * microseconds for a received packet (0 otherwise); only i < cap is
 * stored, but the whole packet is checked. Returns status_count,
 * SFU_EPROTO (chunks or deltas missing, reserved symbol), or SFU_EINVAL.
 */
int sfu_rtcp_parse_twcc(const sfu_rtcp_hdr_t *h, sfu_rtcp_twcc_t *out,
                        uint8_t *status, int32_t *delta_us, int cap);

/* ---- writers: bytes written, SFU_E2BIG, or SFU_EINVAL for bad counts ---- */

/* SR with sr->nreports (0..31) blocks. */
int sfu_rtcp_write_sr(uint8_t *buf, size_t cap, const sfu_rtcp_sr_t *sr);
/* RR with n (0..31) blocks; r may be NULL when n is 0. */
int sfu_rtcp_write_rr(uint8_t *buf, size_t cap, uint32_t sender_ssrc,
                      const sfu_rtcp_report_t *r, int n);
/* SDES with one chunk holding one CNAME item (1..255 bytes). */
int sfu_rtcp_write_sdes_cname(uint8_t *buf, size_t cap, uint32_t ssrc,
                              const char *cname);
/* PLI: 12 bytes. */
int sfu_rtcp_write_pli(uint8_t *buf, size_t cap, uint32_t sender_ssrc,
                       uint32_t media_ssrc);
/* FIR with one entry for media_ssrc; the header's media SSRC is 0: 20 bytes. */
int sfu_rtcp_write_fir(uint8_t *buf, size_t cap, uint32_t sender_ssrc,
                       uint32_t media_ssrc, uint8_t seqnr);
/*
 * Generic NACK for n >= 1 sequence numbers, packed into PID/BLP pairs: a
 * number up to 16 after the current PID (modulo 2^16) sets a BLP bit,
 * anything else starts a new pair, so ascending input (wraps included)
 * gives the fewest pairs and any order still names every number.
 */
int sfu_rtcp_write_nack(uint8_t *buf, size_t cap, uint32_t sender_ssrc,
                        uint32_t media_ssrc, const uint16_t *seqs, int n);
/*
 * REMB for bps (rounded down to an 18-bit mantissa and a 6-bit exponent)
 * naming n (0..255) SSRCs.
 */
int sfu_rtcp_write_remb(uint8_t *buf, size_t cap, uint32_t sender_ssrc,
                        uint64_t bps, const uint32_t *ssrcs, int n);

/*
 * NTP time: unix_us microseconds since 1970 (sfu_wall_ms() * 1000, or
 * finer) to 64-bit NTP (seconds since 1900 << 32 | fraction), rounded to
 * the nearest fraction unit; the seconds wrap in 2036 like NTP era 0.
 * sfu_ntp_mid32() is the middle 32 bits used for LSR.
 */
uint64_t sfu_ntp_from_us(int64_t unix_us);
uint32_t sfu_ntp_mid32(uint64_t ntp);

#endif
