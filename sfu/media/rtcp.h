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
 * (padding only where TWCC deltas end off a word), and returns its length
 * (a multiple of 4) or SFU_E2BIG when cap is too small (nothing useful is
 * written then; sfu_rtcp_write_nack_fit() instead writes what fits).
 * Compound packets are built by calling writers one after another into
 * the same buffer.
 *
 * Feedback dispatch: sfu_rtcp_fb_kind() names the message from pt + FMT,
 * then the matching parser reads it. Lists (NACK numbers, FIR entries,
 * REMB SSRCs, TWCC statuses) go into caller arrays bounded by `cap`, or
 * come one at a time from the TWCC cursor; nothing allocates.
 *
 * Caller: sfu/room/forwarder.c, on what the transport decrypted (the
 * iterator; SR for lip sync and RTT, RR and SR generation, NACK, PLI/FIR
 * towards publishers, REMB both ways).
 */
#ifndef SFU_RTCP_H
#define SFU_RTCP_H

#include <stddef.h>
#include <stdint.h>

#include "sfu/base/sfu.h"

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
 * What a feedback packet is, from its pt and FMT alone (plus the "REMB"
 * identifier for PSFB FMT 15). It does not check the body: the matching
 * parser still may return SFU_EPROTO. The OTHER kinds are feedback the SFU
 * does not act on (TMMBR, SLI, RPSI, other AFB): count and drop.
 */
typedef enum {
  SFU_RTCP_FB_NONE = 0,     /* not pt 205/206 */
  SFU_RTCP_FB_NACK,         /* RTPFB FMT 1: sfu_rtcp_parse_nack_total */
  SFU_RTCP_FB_TWCC,         /* RTPFB FMT 15: sfu_rtcp_twcc_iter_init */
  SFU_RTCP_FB_OTHER_RTPFB,  /* any other RTPFB FMT */
  SFU_RTCP_FB_PLI,          /* PSFB FMT 1: sfu_rtcp_parse_pli */
  SFU_RTCP_FB_FIR,          /* PSFB FMT 4: sfu_rtcp_parse_fir */
  SFU_RTCP_FB_REMB,         /* PSFB FMT 15 "REMB": sfu_rtcp_parse_remb */
  SFU_RTCP_FB_OTHER_PSFB,   /* any other PSFB FMT, or AFB that is not REMB */
} sfu_rtcp_fb_kind_t;

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

/*
 * Feedback kind of a framed packet (see sfu_rtcp_fb_kind_t); never fails.
 * sfu_rtcp_fb_kind_name() gives a short lowercase name for logs and
 * metrics ("nack", "pli", ...; "none" for SFU_RTCP_FB_NONE or junk).
 */
sfu_rtcp_fb_kind_t sfu_rtcp_fb_kind(const sfu_rtcp_hdr_t *h);
const char *sfu_rtcp_fb_kind_name(sfu_rtcp_fb_kind_t kind);

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
 * Generic NACK (RTPFB, FMT 1, RFC 4585 §6.2.1): media SSRC and the lost
 * sequence numbers, each PID followed by the ones its BLP bits name, in
 * wire order, at most `cap` of them (seqs may be NULL when cap is 0).
 * *total (if not NULL) gets how many numbers the packet names in all, so
 * *total > return value means the list was cut at cap; numbers named twice
 * by overlapping pairs count twice. Returns how many were stored,
 * SFU_EPROTO (no FCI, or a body that is not a whole number of 4-byte FCI
 * entries), SFU_EINVAL (not a generic NACK). The sender SSRC is h->ssrc.
 */
int sfu_rtcp_parse_nack_total(const sfu_rtcp_hdr_t *h, uint32_t *media_ssrc,
                              uint16_t *seqs, int cap, int *total);
/* sfu_rtcp_parse_nack_total() without the total. */
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
 * PLI (PSFB FMT 1, RFC 4585 §6.3.1): the sender and media SSRCs. A PLI has
 * no FCI; extra body words are ignored. 0, SFU_EPROTO (under 12 bytes),
 * SFU_EINVAL (not a PLI).
 */
int sfu_rtcp_parse_pli(const sfu_rtcp_hdr_t *h, uint32_t *sender_ssrc,
                       uint32_t *media_ssrc);

/*
 * FIR entries (RFC 5104 §4.3.1): up to `cap` target SSRCs and their command
 * sequence numbers, in wire order; the packet holds
 * (h->len - h->pad_len - 12) / 8 of them. Returns the count stored,
 * SFU_EPROTO (no entry, or a body that is not a whole number of 8-byte
 * entries), or SFU_EINVAL (not a FIR).
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

/* One packet of a TWCC feedback, as sfu_rtcp_twcc_next() returns it. */
typedef struct sfu_rtcp_twcc_pkt_s {
  uint16_t seq;      /* transport-wide sequence number, base_seq + index */
  uint8_t status;    /* SFU_TWCC_*: the symbol on the wire */
  uint8_t received;  /* status != SFU_TWCC_NOT_RECEIVED */
  int32_t delta;     /* receive delta in 250 us units, 0 if not received:
                        0..255 (small) or -32768..32767 (large); the first
                        is from ref_time, the others from the previous
                        received packet */
} sfu_rtcp_twcc_pkt_t;

/*
 * Cursor over the statuses of one TWCC feedback. sfu_rtcp_twcc_iter_init()
 * walks every chunk and sizes every delta once, so sfu_rtcp_twcc_next()
 * reads without further checks. Points into the packet; no copy.
 */
typedef struct sfu_rtcp_twcc_iter_s {
  const uint8_t *p;   /* the packet (h->data) */
  size_t chunk;       /* offset of the next packet status chunk */
  size_t delta;       /* offset of the next receive delta */
  uint16_t seq;       /* sequence number of the next status */
  uint16_t left;      /* statuses not yet returned */
  uint16_t word;      /* the chunk being read */
  uint16_t in_chunk;  /* statuses of `word` not yet returned */
  uint16_t k;         /* index of the next symbol in `word` */
} sfu_rtcp_twcc_iter_t;

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

/*
 * Checks a whole TWCC feedback (header, chunks until status_count statuses
 * are covered, one delta per received status, all inside the body; symbol
 * 3 is reserved and rejected, as libwebrtc does), fills `out` and sets the
 * cursor before the first status. Chunk symbols past status_count are
 * ignored; bytes after the last delta (zero padding) too. 0, SFU_EPROTO,
 * SFU_EINVAL (not TWCC). On error `it` must not be used.
 */
int sfu_rtcp_twcc_iter_init(sfu_rtcp_twcc_iter_t *it, const sfu_rtcp_hdr_t *h,
                            sfu_rtcp_twcc_t *out);
/* Next packet in transport-seq order: 1, or 0 after status_count of them. */
int sfu_rtcp_twcc_next(sfu_rtcp_twcc_iter_t *it, sfu_rtcp_twcc_pkt_t *pkt);

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
/* FIR with n (1..1000) entries ssrcs[i] / seqnrs[i]: 12 + 8 * n bytes. */
int sfu_rtcp_write_fir_n(uint8_t *buf, size_t cap, uint32_t sender_ssrc,
                         const uint32_t *ssrcs, const uint8_t *seqnrs, int n);
/*
 * Generic NACK for n >= 1 sequence numbers, packed into PID/BLP pairs: a
 * number up to 16 after the current PID (modulo 2^16) sets a BLP bit,
 * anything else starts a new pair, so ascending input (wraps included)
 * gives the fewest pairs and any order still names every number.
 */
int sfu_rtcp_write_nack(uint8_t *buf, size_t cap, uint32_t sender_ssrc,
                        uint32_t media_ssrc, const uint16_t *seqs, int n);
/*
 * The same packing, but as many PID/BLP pairs as fit in cap (and in the
 * 16-bit length field): *used (if not NULL) gets how many of seqs[0..n)
 * went in, always a prefix and at least 1, so a caller sends the packet
 * and calls again with seqs + *used until everything is out. SFU_E2BIG
 * only when cap < 16 (not even one pair), SFU_EINVAL for n <= 0.
 */
int sfu_rtcp_write_nack_fit(uint8_t *buf, size_t cap, uint32_t sender_ssrc,
                            uint32_t media_ssrc, const uint16_t *seqs, int n,
                            int *used);
/*
 * REMB for bps (rounded down to an 18-bit mantissa and a 6-bit exponent)
 * naming n (0..255) SSRCs.
 */
int sfu_rtcp_write_remb(uint8_t *buf, size_t cap, uint32_t sender_ssrc,
                        uint64_t bps, const uint32_t *ssrcs, int n);
/*
 * TWCC feedback for n (1..65535) packets from t->base_seq on, with
 * t->sender_ssrc, t->media_ssrc, t->fb_count and the low 24 bits of
 * t->ref_time (t->status_count is ignored: n is written). Only
 * pkts[i].received and pkts[i].delta are read; the symbol is chosen from
 * the delta (small for 0..255, large otherwise), so a delta outside
 * -32768..32767 for a received packet is SFU_EINVAL. Chunks: a run-length
 * chunk for 14 or more equal symbols (or the equal rest), else a 1-bit
 * vector if the next 14 have no large delta, else a run of 7 or more, else
 * a 2-bit vector. Padded to a word with the P bit, as libwebrtc does.
 */
int sfu_rtcp_write_twcc(uint8_t *buf, size_t cap, const sfu_rtcp_twcc_t *t,
                        const sfu_rtcp_twcc_pkt_t *pkts, int n);

/*
 * NTP time: unix_us microseconds since 1970 (sfu_wall_ms() * 1000, or
 * finer) to 64-bit NTP (seconds since 1900 << 32 | fraction), rounded to
 * the nearest fraction unit; the seconds wrap in 2036 like NTP era 0.
 * sfu_ntp_mid32() is the middle 32 bits used for LSR.
 */
uint64_t sfu_ntp_from_us(int64_t unix_us);
uint32_t sfu_ntp_mid32(uint64_t ntp);

#endif
