/*
 * rtcp.c -- RTCP compound iterator, message views and writers.
 *
 * Layout of a compound packet (RFC 3550 §6.1): packets back to back, each
 * a 4-byte header whose length field counts the 32-bit words after it, so
 * every packet is a multiple of 4 bytes and the iterator can frame them
 * without knowing their types. The iterator is the only place that checks
 * a packet against the end of the datagram; afterwards a parser only
 * checks its message's body against h->len - h->pad_len, once, and reads
 * at fixed offsets from h->data.
 *
 * RFC 3550 A.2 also wants the first packet to be SR/RR and padding only on
 * the last one. WebRTC endpoints use reduced-size RTCP (RFC 5506), so a
 * compound may start with a lone PLI or NACK; neither rule is enforced.
 *
 * Writers compute the size first, check it against cap, then fill the
 * buffer front to back; they never write past cap. The one exception to
 * "all or SFU_E2BIG" is sfu_rtcp_write_nack_fit(), which stops at the last
 * PID/BLP pair that fits so a long loss list can go out in several
 * packets.
 *
 * Feedback messages (RFC 4585 §6.1) share a 12-byte header; the kind is
 * pt + FMT, except that PSFB FMT 15 (application layer feedback) is only a
 * REMB when its FCI starts with "REMB". List-shaped FCIs are checked
 * against the body length before the first entry is read: a NACK body
 * must be whole 4-byte entries, a FIR body whole 8-byte entries, a REMB
 * must hold its Num SSRC, and a TWCC feedback must hold every chunk and
 * delta its status count implies.
 */
#include <string.h>

#include "sfu/base/bytes.h"
#include "sfu/media/rtcp.h"

/* 24-bit two's complement to int32 without relying on signed shifts. */
static inline int32_t sext24(uint32_t v) {
  return (int32_t)(v ^ 0x800000u) - 0x800000;
}

/* Body length: the packet without its padding. */
static inline size_t body_len(const sfu_rtcp_hdr_t *h) {
  return h->len - h->pad_len;
}

/*
 * Common header (RFC 3550 §6.4.1, RFC 4585 §6.1):
 *
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |V=2|P| RC/FMT  |      PT       |   length (words - 1)          |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                     SSRC (of the sender)                      |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * :                           body ...                            :
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                      ... padding  |   pad count   |  if P
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 */
void sfu_rtcp_iter_init(sfu_rtcp_iter_t *it, const uint8_t *buf, size_t len) {
  it->buf = buf;
  it->len = len;
  it->off = 0;
}

int sfu_rtcp_next(sfu_rtcp_iter_t *it, sfu_rtcp_hdr_t *out) {
  const uint8_t *p;
  size_t rem, plen;
  uint8_t pad = 0;

  if (it->off >= it->len)
    return 0;
  p = it->buf + it->off;
  rem = it->len - it->off;
  if (rem < 4 || (p[0] >> 6) != 2)
    goto bad;
  plen = 4 + 4 * (size_t)sfu_rd16(p + 2);
  if (plen > rem)
    goto bad;
  if (p[0] & 0x20) {
    pad = p[plen - 1];
    if (pad == 0 || pad > plen - 4)
      goto bad;
  }
  out->version_ok = 1;
  out->padding = (p[0] >> 5) & 1;
  out->count = p[0] & 0x1f;
  out->pt = p[1];
  out->length_words = sfu_rd16(p + 2);
  out->data = p;
  out->len = plen;
  out->pad_len = pad;
  out->ssrc = plen - pad >= 8 ? sfu_rd32(p + 4) : 0;
  it->off += plen;
  return 1;

bad:
  it->off = it->len;
  return SFU_EPROTO;
}

/* ---- feedback kind ------------------------------------------------------ */

sfu_rtcp_fb_kind_t sfu_rtcp_fb_kind(const sfu_rtcp_hdr_t *h) {
  if (!h->version_ok)
    return SFU_RTCP_FB_NONE;
  if (h->pt == SFU_RTCP_RTPFB) {
    if (h->count == SFU_RTCP_FMT_NACK)
      return SFU_RTCP_FB_NACK;
    if (h->count == SFU_RTCP_FMT_TWCC)
      return SFU_RTCP_FB_TWCC;
    return SFU_RTCP_FB_OTHER_RTPFB;
  }
  if (h->pt == SFU_RTCP_PSFB) {
    if (h->count == SFU_RTCP_FMT_PLI)
      return SFU_RTCP_FB_PLI;
    if (h->count == SFU_RTCP_FMT_FIR)
      return SFU_RTCP_FB_FIR;
    /* "REMB" sits right after the 12-byte feedback header */
    if (h->count == SFU_RTCP_FMT_AFB && body_len(h) >= 16 &&
        memcmp(h->data + 12, "REMB", 4) == 0)
      return SFU_RTCP_FB_REMB;
    return SFU_RTCP_FB_OTHER_PSFB;
  }
  return SFU_RTCP_FB_NONE;
}

const char *sfu_rtcp_fb_kind_name(sfu_rtcp_fb_kind_t kind) {
  switch (kind) {
  case SFU_RTCP_FB_NACK: return "nack";
  case SFU_RTCP_FB_TWCC: return "twcc";
  case SFU_RTCP_FB_OTHER_RTPFB: return "rtpfb";
  case SFU_RTCP_FB_PLI: return "pli";
  case SFU_RTCP_FB_FIR: return "fir";
  case SFU_RTCP_FB_REMB: return "remb";
  case SFU_RTCP_FB_OTHER_PSFB: return "psfb";
  case SFU_RTCP_FB_NONE: break;
  }
  return "none";
}

/* ---- SR / RR ---------------------------------------------------------- */

/*
 * SR (RR has no sender info: report blocks follow the SSRC directly):
 *
 * |V=2|P|    RC   |   PT=SR=200   |             length            |
 * |                         SSRC of sender                        |
 * |              NTP timestamp, most significant word             |
 * |             NTP timestamp, least significant word             |
 * |                         RTP timestamp                         |
 * |                     sender's packet count                     |
 * |                      sender's octet count                     |
 * +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
 * |                 SSRC_1 (SSRC of first source)                 |
 * | fraction lost |       cumulative number of packets lost       |
 * |           extended highest sequence number received           |
 * |                      interarrival jitter                      |
 * |                         last SR (LSR)                         |
 * |                   delay since last SR (DLSR)                  |
 * +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
 * :                  ... RC report blocks in all                  :
 */
#define REPORT_LEN 24

static void read_report(const uint8_t *p, sfu_rtcp_report_t *r) {
  r->ssrc = sfu_rd32(p);
  r->fraction_lost = p[4];
  r->cumulative_lost = sext24(sfu_rd24(p + 5));
  r->ext_highest_seq = sfu_rd32(p + 8);
  r->jitter = sfu_rd32(p + 12);
  r->lsr = sfu_rd32(p + 16);
  r->dlsr = sfu_rd32(p + 20);
}

static void write_report(uint8_t *p, const sfu_rtcp_report_t *r) {
  int32_t lost = r->cumulative_lost;

  if (lost > 0x7fffff)
    lost = 0x7fffff;
  if (lost < -0x800000)
    lost = -0x800000;
  sfu_wr32(p, r->ssrc);
  sfu_wr32(p + 4, (uint32_t)r->fraction_lost << 24 | ((uint32_t)lost & 0xffffff));
  sfu_wr32(p + 8, r->ext_highest_seq);
  sfu_wr32(p + 12, r->jitter);
  sfu_wr32(p + 16, r->lsr);
  sfu_wr32(p + 20, r->dlsr);
}

int sfu_rtcp_parse_sr(const sfu_rtcp_hdr_t *h, sfu_rtcp_sr_t *out) {
  const uint8_t *p = h->data;
  size_t off;
  int i;

  if (!h->version_ok || (h->pt != SFU_RTCP_SR && h->pt != SFU_RTCP_RR))
    return SFU_EINVAL;
  off = h->pt == SFU_RTCP_SR ? 28 : 8;
  if (body_len(h) < off + (size_t)h->count * REPORT_LEN)
    return SFU_EPROTO;

  out->ssrc = sfu_rd32(p + 4);
  if (h->pt == SFU_RTCP_SR) {
    out->ntp = (uint64_t)sfu_rd32(p + 8) << 32 | sfu_rd32(p + 12);
    out->rtp_ts = sfu_rd32(p + 16);
    out->packets = sfu_rd32(p + 20);
    out->octets = sfu_rd32(p + 24);
  } else {
    out->ntp = 0;
    out->rtp_ts = out->packets = out->octets = 0;
  }
  out->nreports = h->count;
  for (i = 0; i < h->count; i++, off += REPORT_LEN)
    read_report(p + off, &out->reports[i]);
  return 0;
}

static void write_header(uint8_t *p, int count, int pt, size_t len) {
  p[0] = (uint8_t)(0x80 | count);
  p[1] = (uint8_t)pt;
  sfu_wr16(p + 2, (uint16_t)(len / 4 - 1));
}

int sfu_rtcp_write_sr(uint8_t *buf, size_t cap, const sfu_rtcp_sr_t *sr) {
  size_t len;
  int i;

  if (sr->nreports < 0 || sr->nreports > 31)
    return SFU_EINVAL;
  len = 28 + (size_t)sr->nreports * REPORT_LEN;
  if (len > cap)
    return SFU_E2BIG;
  write_header(buf, sr->nreports, SFU_RTCP_SR, len);
  sfu_wr32(buf + 4, sr->ssrc);
  sfu_wr32(buf + 8, (uint32_t)(sr->ntp >> 32));
  sfu_wr32(buf + 12, (uint32_t)sr->ntp);
  sfu_wr32(buf + 16, sr->rtp_ts);
  sfu_wr32(buf + 20, sr->packets);
  sfu_wr32(buf + 24, sr->octets);
  for (i = 0; i < sr->nreports; i++)
    write_report(buf + 28 + (size_t)i * REPORT_LEN, &sr->reports[i]);
  return (int)len;
}

int sfu_rtcp_write_rr(uint8_t *buf, size_t cap, uint32_t sender_ssrc,
                      const sfu_rtcp_report_t *r, int n) {
  size_t len;
  int i;

  if (n < 0 || n > 31 || (n > 0 && r == NULL))
    return SFU_EINVAL;
  len = 8 + (size_t)n * REPORT_LEN;
  if (len > cap)
    return SFU_E2BIG;
  write_header(buf, n, SFU_RTCP_RR, len);
  sfu_wr32(buf + 4, sender_ssrc);
  for (i = 0; i < n; i++)
    write_report(buf + 8 + (size_t)i * REPORT_LEN, &r[i]);
  return (int)len;
}

/* ---- SDES -------------------------------------------------------------- */

/*
 * |V=2|P|    SC   |  PT=SDES=202  |             length            |
 * |                          SSRC/CSRC_1                          |
 * |    CNAME=1    |     length    | user and domain name        ...
 * ...   | END=0 (one or more, to the next 32-bit boundary)        |
 */
int sfu_rtcp_write_sdes_cname(uint8_t *buf, size_t cap, uint32_t ssrc,
                              const char *cname) {
  size_t n, len;

  if (cname == NULL)
    return SFU_EINVAL;
  n = strlen(cname);
  if (n == 0 || n > 255)
    return SFU_EINVAL;
  /* header, SSRC, item type+length+text, at least one END, to a word */
  len = 8 + ((2 + n + 1 + 3) & ~(size_t)3);
  if (len > cap)
    return SFU_E2BIG;
  write_header(buf, 1, SFU_RTCP_SDES, len);
  sfu_wr32(buf + 4, ssrc);
  buf[8] = SFU_RTCP_SDES_CNAME;
  buf[9] = (uint8_t)n;
  memcpy(buf + 10, cname, n);
  memset(buf + 10 + n, 0, len - 10 - n);
  return (int)len;
}

int sfu_rtcp_parse_sdes_cname(const sfu_rtcp_hdr_t *h, uint32_t *ssrc,
                              char *out, size_t cap) {
  const uint8_t *p = h->data;
  size_t off = 4, end = body_len(h), l;
  uint32_t src;
  int c;

  if (!h->version_ok || h->pt != SFU_RTCP_SDES)
    return SFU_EINVAL;
  for (c = 0; c < h->count; c++) {
    if (off + 4 > end)
      return SFU_EPROTO;
    src = sfu_rd32(p + off);
    off += 4;
    for (;;) {
      if (off >= end)
        return SFU_EPROTO;
      if (p[off] == SFU_RTCP_SDES_END) {
        off = (off + 4) & ~(size_t)3; /* END, then to the next word */
        break;
      }
      if (end - off < 2 || (l = p[off + 1]) > end - off - 2)
        return SFU_EPROTO;
      if (p[off] == SFU_RTCP_SDES_CNAME) {
        if (l == 0 || l >= cap)
          return 0;
        memcpy(out, p + off + 2, l);
        out[l] = '\0';
        *ssrc = src;
        return (int)l;
      }
      off += 2 + l;
    }
  }
  return 0;
}

/* ---- feedback (RFC 4585 §6.1) ------------------------------------------ */

/*
 * |V=2|P|   FMT   |       PT      |          length               |
 * |                  SSRC of packet sender                        |
 * |                  SSRC of media source                         |
 * :            Feedback Control Information (FCI)                 :
 */
#define FB_LEN 12

/*
 * Generic NACK FCI entries (RFC 4585 §6.2.1), one or more:
 *
 * |            PID                |             BLP               |
 *
 * BLP bit i (LSB = 0) set: PID + i + 1 is lost too.
 */
int sfu_rtcp_parse_nack_total(const sfu_rtcp_hdr_t *h, uint32_t *media_ssrc,
                              uint16_t *seqs, int cap, int *total) {
  const uint8_t *p = h->data;
  size_t off, end = body_len(h);
  uint16_t pid, blp, b;
  int n = 0, named = 0, i;

  if (!h->version_ok || h->pt != SFU_RTCP_RTPFB ||
      h->count != SFU_RTCP_FMT_NACK)
    return SFU_EINVAL;
  if (end < FB_LEN + 4 || (end - FB_LEN) % 4 != 0)
    return SFU_EPROTO;
  *media_ssrc = sfu_rd32(p + 8);
  for (off = FB_LEN; off < end; off += 4) {
    pid = sfu_rd16(p + off);
    blp = sfu_rd16(p + off + 2);
    named++;
    for (b = blp; b != 0; b &= (uint16_t)(b - 1))
      named++;
    if (n < cap)
      seqs[n++] = pid;
    for (i = 0; i < 16 && n < cap; i++)
      if (blp >> i & 1)
        seqs[n++] = (uint16_t)(pid + i + 1);
    if (n >= cap && total == NULL)
      break;
  }
  if (total != NULL)
    *total = named;
  return n;
}

int sfu_rtcp_parse_nack(const sfu_rtcp_hdr_t *h, uint32_t *media_ssrc,
                        uint16_t *seqs, int cap) {
  return sfu_rtcp_parse_nack_total(h, media_ssrc, seqs, cap, NULL);
}

/*
 * Packing: the first number is a PID; each following one that is 1..16
 * after the current PID (mod 2^16) sets BLP bit d - 1, a repeat of the PID
 * is dropped, anything else closes the pair and becomes the next PID. A
 * pair is only closed when the one after it still fits, so the last pair
 * written is always the open one.
 */
#define NACK_MAX_LEN (4 * (size_t)65536) /* 16-bit length field: words - 1 */

int sfu_rtcp_write_nack_fit(uint8_t *buf, size_t cap, uint32_t sender_ssrc,
                            uint32_t media_ssrc, const uint16_t *seqs, int n,
                            int *used) {
  size_t off = FB_LEN, max = cap < NACK_MAX_LEN ? cap : NACK_MAX_LEN;
  uint16_t pid, blp = 0, d;
  int i;

  if (n <= 0 || seqs == NULL)
    return SFU_EINVAL;
  if (max < FB_LEN + 4)
    return SFU_E2BIG;
  pid = seqs[0];
  for (i = 1; i < n; i++) {
    d = (uint16_t)(seqs[i] - pid);
    if (d == 0)
      continue;
    if (d <= 16) {
      blp |= (uint16_t)(1u << (d - 1));
      continue;
    }
    if (off + 8 > max)
      break; /* seqs[i] would need a pair that does not fit */
    sfu_wr16(buf + off, pid);
    sfu_wr16(buf + off + 2, blp);
    off += 4;
    pid = seqs[i];
    blp = 0;
  }
  sfu_wr16(buf + off, pid);
  sfu_wr16(buf + off + 2, blp);
  off += 4;
  write_header(buf, SFU_RTCP_FMT_NACK, SFU_RTCP_RTPFB, off);
  sfu_wr32(buf + 4, sender_ssrc);
  sfu_wr32(buf + 8, media_ssrc);
  if (used != NULL)
    *used = i;
  return (int)off;
}

int sfu_rtcp_write_nack(uint8_t *buf, size_t cap, uint32_t sender_ssrc,
                        uint32_t media_ssrc, const uint16_t *seqs, int n) {
  int used, rv;

  rv = sfu_rtcp_write_nack_fit(buf, cap, sender_ssrc, media_ssrc, seqs, n,
                               &used);
  if (rv >= 0 && used < n)
    return SFU_E2BIG;
  return rv;
}

int sfu_rtcp_parse_psfb(const sfu_rtcp_hdr_t *h, int *fmt,
                        uint32_t *media_ssrc) {
  const uint8_t *p = h->data;
  size_t end = body_len(h);

  if (!h->version_ok || h->pt != SFU_RTCP_PSFB)
    return SFU_EINVAL;
  if (end < FB_LEN)
    return SFU_EPROTO;
  *fmt = h->count;
  if (h->count == SFU_RTCP_FMT_FIR) {
    if (end < FB_LEN + 8)
      return SFU_EPROTO;
    *media_ssrc = sfu_rd32(p + FB_LEN);
  } else {
    *media_ssrc = sfu_rd32(p + 8);
  }
  return 0;
}

/*
 * PLI (RFC 4585 §6.3.1): the common feedback header and no FCI; the
 * length field should be 2.
 */
int sfu_rtcp_parse_pli(const sfu_rtcp_hdr_t *h, uint32_t *sender_ssrc,
                       uint32_t *media_ssrc) {
  if (!h->version_ok || h->pt != SFU_RTCP_PSFB ||
      h->count != SFU_RTCP_FMT_PLI)
    return SFU_EINVAL;
  if (body_len(h) < FB_LEN)
    return SFU_EPROTO;
  *sender_ssrc = sfu_rd32(h->data + 4);
  *media_ssrc = sfu_rd32(h->data + 8);
  return 0;
}

int sfu_rtcp_write_pli(uint8_t *buf, size_t cap, uint32_t sender_ssrc,
                       uint32_t media_ssrc) {
  if (cap < FB_LEN)
    return SFU_E2BIG;
  write_header(buf, SFU_RTCP_FMT_PLI, SFU_RTCP_PSFB, FB_LEN);
  sfu_wr32(buf + 4, sender_ssrc);
  sfu_wr32(buf + 8, media_ssrc);
  return FB_LEN;
}

/*
 * FIR FCI entries (RFC 5104 §4.3.1.1); the common header's media SSRC is 0:
 *
 * |                              SSRC                             |
 * | Seq nr.       |    Reserved (0)                               |
 */
int sfu_rtcp_parse_fir(const sfu_rtcp_hdr_t *h, uint32_t *ssrcs,
                       uint8_t *seqnrs, int cap) {
  const uint8_t *p = h->data;
  size_t off, end = body_len(h);
  int n = 0;

  if (!h->version_ok || h->pt != SFU_RTCP_PSFB ||
      h->count != SFU_RTCP_FMT_FIR)
    return SFU_EINVAL;
  if (end < FB_LEN + 8 || (end - FB_LEN) % 8 != 0)
    return SFU_EPROTO;
  for (off = FB_LEN; off < end && n < cap; off += 8, n++) {
    ssrcs[n] = sfu_rd32(p + off);
    seqnrs[n] = p[off + 4];
  }
  return n;
}

#define FIR_MAX 1000 /* entries; far more than any endpoint sends */

int sfu_rtcp_write_fir_n(uint8_t *buf, size_t cap, uint32_t sender_ssrc,
                         const uint32_t *ssrcs, const uint8_t *seqnrs, int n) {
  size_t len, off;
  int i;

  if (n < 1 || n > FIR_MAX || ssrcs == NULL || seqnrs == NULL)
    return SFU_EINVAL;
  len = FB_LEN + 8 * (size_t)n;
  if (len > cap)
    return SFU_E2BIG;
  write_header(buf, SFU_RTCP_FMT_FIR, SFU_RTCP_PSFB, len);
  sfu_wr32(buf + 4, sender_ssrc);
  sfu_wr32(buf + 8, 0);
  for (i = 0, off = FB_LEN; i < n; i++, off += 8) {
    sfu_wr32(buf + off, ssrcs[i]);
    sfu_wr32(buf + off + 4, (uint32_t)seqnrs[i] << 24);
  }
  return (int)len;
}

int sfu_rtcp_write_fir(uint8_t *buf, size_t cap, uint32_t sender_ssrc,
                       uint32_t media_ssrc, uint8_t seqnr) {
  return sfu_rtcp_write_fir_n(buf, cap, sender_ssrc, &media_ssrc, &seqnr, 1);
}

/*
 * REMB, an AFB message (PSFB FMT 15) with media SSRC 0:
 *
 * |  Unique identifier 'R' 'E' 'M' 'B'                            |
 * |  Num SSRC     | BR Exp    |  BR Mantissa                      |
 * |   SSRC feedback                                               |
 * |  ...                                                          |
 *
 * bitrate = mantissa (18 bits) << exp (6 bits), in bits per second.
 */
#define REMB_LEN (FB_LEN + 8)

int sfu_rtcp_parse_remb(const sfu_rtcp_hdr_t *h, uint64_t *bitrate_bps,
                        uint32_t *ssrcs, int cap) {
  const uint8_t *p = h->data;
  size_t end = body_len(h);
  uint64_t mant;
  unsigned exp;
  int n, i;

  if (!h->version_ok || h->pt != SFU_RTCP_PSFB ||
      h->count != SFU_RTCP_FMT_AFB || end < FB_LEN + 4 ||
      memcmp(p + FB_LEN, "REMB", 4) != 0)
    return SFU_EINVAL;
  if (end < REMB_LEN) /* a REMB cut before its bitrate word */
    return SFU_EPROTO;
  n = p[16];
  if (REMB_LEN + 4 * (size_t)n > end)
    return SFU_EPROTO;
  exp = p[17] >> 2;
  mant = (uint64_t)(p[17] & 3) << 16 | (uint64_t)p[18] << 8 | p[19];
  if (exp > 46 && (mant >> (64 - exp)) != 0)
    *bitrate_bps = UINT64_MAX;
  else
    *bitrate_bps = mant << exp;
  if (n > cap)
    n = cap;
  for (i = 0; i < n; i++)
    ssrcs[i] = sfu_rd32(p + REMB_LEN + 4 * (size_t)i);
  return n;
}

int sfu_rtcp_write_remb(uint8_t *buf, size_t cap, uint32_t sender_ssrc,
                        uint64_t bps, const uint32_t *ssrcs, int n) {
  size_t len;
  unsigned exp = 0;
  int i;

  if (n < 0 || n > 255 || (n > 0 && ssrcs == NULL))
    return SFU_EINVAL;
  len = REMB_LEN + 4 * (size_t)n;
  if (len > cap)
    return SFU_E2BIG;
  while (bps > 0x3ffff) {
    bps >>= 1;
    exp++;
  }
  write_header(buf, SFU_RTCP_FMT_AFB, SFU_RTCP_PSFB, len);
  sfu_wr32(buf + 4, sender_ssrc);
  sfu_wr32(buf + 8, 0);
  memcpy(buf + 12, "REMB", 4);
  buf[16] = (uint8_t)n;
  buf[17] = (uint8_t)(exp << 2 | (unsigned)(bps >> 16));
  sfu_wr16(buf + 18, (uint16_t)bps);
  for (i = 0; i < n; i++)
    sfu_wr32(buf + REMB_LEN + 4 * (size_t)i, ssrcs[i]);
  return (int)len;
}

/* ---- transport-wide CC feedback --------------------------------------- */

/*
 * |V=2|P|  FMT=15 |    PT=205     |           length              |
 * |                     SSRC of packet sender                     |
 * |                      SSRC of media source                     |
 * |      base sequence number     |      packet status count      |
 * |                 reference time                | fb pkt. count |
 * |          packet chunk         |         packet chunk          |
 * :                              ...                              :
 * |         packet chunk          |  recv delta   |  recv delta   |
 * :                              ...                              :
 *
 * Chunks until status_count statuses are covered:
 *   0 SS LLLLLLLLLLLLL   run length: symbol S repeated L times
 *   1 0 14 x 1-bit       status vector: not received / small delta
 *   1 1  7 x 2-bit       status vector: any symbol
 * Then one delta per received packet: 1 byte unsigned for symbol 1,
 * 2 bytes signed for symbol 2, in 250 us units. Symbol 3 is reserved.
 */
#define TWCC_LEN (FB_LEN + 8)
#define TWCC_RUN_MAX 0x1fff /* 13-bit run length */

/* Statuses chunk `w` contributes when `left` are still wanted. */
static inline int chunk_len(uint16_t w, int left) {
  int n = !(w & 0x8000) ? (w & TWCC_RUN_MAX) : (w & 0x4000) ? 7 : 14;
  return n < left ? n : left;
}

/* Symbol k of chunk w (k < its length). */
static inline int chunk_sym(uint16_t w, int k) {
  if (!(w & 0x8000))
    return w >> 13 & 3;
  if (w & 0x4000)
    return w >> (12 - 2 * k) & 3;
  return w >> (13 - k) & 1;
}

int sfu_rtcp_twcc_iter_init(sfu_rtcp_twcc_iter_t *it, const sfu_rtcp_hdr_t *h,
                            sfu_rtcp_twcc_t *out) {
  const uint8_t *p = h->data;
  size_t off = TWCC_LEN, end = body_len(h), deltas = 0;
  int left, n, k, s;
  uint16_t w;

  if (!h->version_ok || h->pt != SFU_RTCP_RTPFB ||
      h->count != SFU_RTCP_FMT_TWCC)
    return SFU_EINVAL;
  if (end < TWCC_LEN)
    return SFU_EPROTO;
  out->sender_ssrc = sfu_rd32(p + 4);
  out->media_ssrc = sfu_rd32(p + 8);
  out->base_seq = sfu_rd16(p + 12);
  out->status_count = sfu_rd16(p + 14);
  out->ref_time = sext24(sfu_rd24(p + 16));
  out->fb_count = p[19];

  /* Every chunk inside the body, no reserved symbol, and the deltas the
   * symbols imply (1 byte per small, 2 per large) after the last chunk. A
   * run chunk of length 0 is legal and covers nothing. */
  for (left = out->status_count; left > 0; left -= n) {
    if (end - off < 2)
      return SFU_EPROTO;
    w = sfu_rd16(p + off);
    off += 2;
    n = chunk_len(w, left);
    if (!(w & 0x8000)) { /* a run: one symbol n times */
      s = chunk_sym(w, 0);
      if (s == 3 && n > 0)
        return SFU_EPROTO;
      deltas += (size_t)s * (size_t)n;
      continue;
    }
    for (k = 0; k < n; k++) {
      if ((s = chunk_sym(w, k)) == 3)
        return SFU_EPROTO;
      deltas += (size_t)s;
    }
  }
  if (deltas > end - off)
    return SFU_EPROTO;

  it->p = p;
  it->chunk = TWCC_LEN;
  it->delta = off;
  it->seq = out->base_seq;
  it->left = out->status_count;
  it->word = 0;
  it->in_chunk = 0;
  it->k = 0;
  return 0;
}

int sfu_rtcp_twcc_next(sfu_rtcp_twcc_iter_t *it, sfu_rtcp_twcc_pkt_t *pkt) {
  int s;

  if (it->left == 0)
    return 0;
  /* init proved enough chunks follow to cover `left`, zero runs included */
  while (it->in_chunk == 0) {
    it->word = sfu_rd16(it->p + it->chunk);
    it->chunk += 2;
    it->in_chunk = (uint16_t)chunk_len(it->word, it->left);
    it->k = 0;
  }
  s = chunk_sym(it->word, it->k);
  pkt->seq = it->seq;
  pkt->status = (uint8_t)s;
  pkt->received = s != SFU_TWCC_NOT_RECEIVED;
  if (s == SFU_TWCC_SMALL_DELTA) {
    pkt->delta = it->p[it->delta];
    it->delta += 1;
  } else if (s == SFU_TWCC_LARGE_DELTA) {
    pkt->delta = ((int32_t)sfu_rd16(it->p + it->delta) ^ 0x8000) - 0x8000;
    it->delta += 2;
  } else {
    pkt->delta = 0;
  }
  it->k++;
  it->in_chunk--;
  it->left--;
  it->seq++;
  return 1;
}

int sfu_rtcp_parse_twcc(const sfu_rtcp_hdr_t *h, sfu_rtcp_twcc_t *out,
                        uint8_t *status, int32_t *delta_us, int cap) {
  sfu_rtcp_twcc_iter_t it;
  sfu_rtcp_twcc_pkt_t pkt;
  int rv, i;

  rv = sfu_rtcp_twcc_iter_init(&it, h, out);
  if (rv < 0)
    return rv;
  if (status != NULL)
    for (i = 0; i < cap && sfu_rtcp_twcc_next(&it, &pkt) == 1; i++) {
      status[i] = pkt.status;
      if (delta_us != NULL)
        delta_us[i] = pkt.delta * 250;
    }
  return out->status_count;
}

/* Wire symbol for one packet; -1 if its delta cannot be sent. */
static inline int twcc_sym(const sfu_rtcp_twcc_pkt_t *k) {
  if (!k->received)
    return SFU_TWCC_NOT_RECEIVED;
  if (k->delta >= 0 && k->delta <= 255)
    return SFU_TWCC_SMALL_DELTA;
  if (k->delta >= -32768 && k->delta <= 32767)
    return SFU_TWCC_LARGE_DELTA;
  return -1;
}

/*
 * The chunk that starts at pkts[0] of n (n >= 1, symbols valid): the word
 * in *w, the statuses it covers returned. Vector chunks that cover fewer
 * than their 7 or 14 slots (at the end) leave the rest 0 ("not received"),
 * which the reader ignores past status_count.
 */
static int twcc_chunk(const sfu_rtcp_twcc_pkt_t *pkts, int n, uint16_t *w) {
  int s = twcc_sym(&pkts[0]), run = 1, k, m, small = 1;

  while (run < n && run < TWCC_RUN_MAX && twcc_sym(&pkts[run]) == s)
    run++;
  if (run >= 14 || run == n) {
    *w = (uint16_t)(s << 13 | run);
    return run;
  }
  m = n < 14 ? n : 14;
  for (k = 0; k < m && small; k++)
    small = twcc_sym(&pkts[k]) <= SFU_TWCC_SMALL_DELTA;
  if (small) {
    *w = 0x8000;
    for (k = 0; k < m; k++)
      *w |= (uint16_t)(twcc_sym(&pkts[k]) << (13 - k));
    return m;
  }
  if (run >= 7) {
    *w = (uint16_t)(s << 13 | run);
    return run;
  }
  m = n < 7 ? n : 7;
  *w = 0xc000;
  for (k = 0; k < m; k++)
    *w |= (uint16_t)(twcc_sym(&pkts[k]) << (12 - 2 * k));
  return m;
}

int sfu_rtcp_write_twcc(uint8_t *buf, size_t cap, const sfu_rtcp_twcc_t *t,
                        const sfu_rtcp_twcc_pkt_t *pkts, int n) {
  size_t nchunks = 0, ndeltas = 0, len, pad, off;
  uint16_t w;
  int i, s;

  if (n < 1 || n > 0xffff || pkts == NULL)
    return SFU_EINVAL;
  for (i = 0; i < n; i++) {
    if ((s = twcc_sym(&pkts[i])) < 0)
      return SFU_EINVAL;
    ndeltas += (size_t)s;
  }
  for (i = 0; i < n; nchunks++)
    i += twcc_chunk(pkts + i, n - i, &w);
  /* at most 20 + 2 * 65535 + 2 * 65535 bytes: the length field holds it */
  len = TWCC_LEN + 2 * nchunks + ndeltas;
  pad = (4 - len % 4) % 4;
  if (len + pad > cap)
    return SFU_E2BIG;

  write_header(buf, SFU_RTCP_FMT_TWCC, SFU_RTCP_RTPFB, len + pad);
  if (pad)
    buf[0] |= 0x20;
  sfu_wr32(buf + 4, t->sender_ssrc);
  sfu_wr32(buf + 8, t->media_ssrc);
  sfu_wr16(buf + 12, t->base_seq);
  sfu_wr16(buf + 14, (uint16_t)n);
  sfu_wr32(buf + 16, ((uint32_t)t->ref_time & 0xffffff) << 8 | t->fb_count);
  for (i = 0, off = TWCC_LEN; i < n; off += 2) {
    i += twcc_chunk(pkts + i, n - i, &w);
    sfu_wr16(buf + off, w);
  }
  for (i = 0; i < n; i++) {
    s = twcc_sym(&pkts[i]);
    if (s == SFU_TWCC_SMALL_DELTA) {
      buf[off++] = (uint8_t)pkts[i].delta;
    } else if (s == SFU_TWCC_LARGE_DELTA) {
      sfu_wr16(buf + off, (uint16_t)pkts[i].delta);
      off += 2;
    }
  }
  if (pad) {
    memset(buf + off, 0, pad - 1);
    buf[off + pad - 1] = (uint8_t)pad; /* RFC 3550: the count ends it */
  }
  return (int)(len + pad);
}

/* ---- NTP time ---------------------------------------------------------- */

#define NTP_UNIX_OFFSET INT64_C(2208988800) /* 1900-01-01 to 1970-01-01, s */

uint64_t sfu_ntp_from_us(int64_t unix_us) {
  int64_t s = unix_us / 1000000, us = unix_us % 1000000;
  uint64_t frac;

  if (us < 0) {
    us += 1000000;
    s--;
  }
  frac = ((uint64_t)us * (UINT64_C(1) << 32) + 500000) / 1000000;
  return (uint64_t)(s + NTP_UNIX_OFFSET) << 32 | frac;
}

uint32_t sfu_ntp_mid32(uint64_t ntp) { return (uint32_t)(ntp >> 16); }
