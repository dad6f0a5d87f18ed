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
 * buffer front to back; they never write past cap.
 */
#include <string.h>

#include "sfu/bytes.h"
#include "sfu/rtcp.h"

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
int sfu_rtcp_parse_nack(const sfu_rtcp_hdr_t *h, uint32_t *media_ssrc,
                        uint16_t *seqs, int cap) {
  const uint8_t *p = h->data;
  size_t off, end = body_len(h);
  uint16_t pid, blp;
  int n = 0, i;

  if (!h->version_ok || h->pt != SFU_RTCP_RTPFB ||
      h->count != SFU_RTCP_FMT_NACK)
    return SFU_EINVAL;
  if (end < FB_LEN + 4)
    return SFU_EPROTO;
  *media_ssrc = sfu_rd32(p + 8);
  for (off = FB_LEN; off + 4 <= end && n < cap; off += 4) {
    pid = sfu_rd16(p + off);
    blp = sfu_rd16(p + off + 2);
    seqs[n++] = pid;
    for (i = 0; i < 16 && n < cap; i++)
      if (blp >> i & 1)
        seqs[n++] = (uint16_t)(pid + i + 1);
  }
  return n;
}

int sfu_rtcp_write_nack(uint8_t *buf, size_t cap, uint32_t sender_ssrc,
                        uint32_t media_ssrc, const uint16_t *seqs, int n) {
  size_t off = FB_LEN;
  uint16_t pid = 0, blp = 0, d;
  int i;

  if (n <= 0 || seqs == NULL)
    return SFU_EINVAL;
  if (cap < FB_LEN + 4)
    return SFU_E2BIG;
  for (i = 0; i < n; i++) {
    d = (uint16_t)(seqs[i] - pid);
    if (i > 0 && d == 0)
      continue; /* repeat of the PID */
    if (i > 0 && d <= 16) {
      blp |= (uint16_t)(1u << (d - 1));
      continue;
    }
    if (i > 0) {
      sfu_wr16(buf + off, pid);
      sfu_wr16(buf + off + 2, blp);
      off += 4;
      /* the length field is 16 bits */
      if (off + 4 > cap || off / 4 > 0xffff)
        return SFU_E2BIG;
    }
    pid = seqs[i];
    blp = 0;
  }
  sfu_wr16(buf + off, pid);
  sfu_wr16(buf + off + 2, blp);
  off += 4;
  write_header(buf, SFU_RTCP_FMT_NACK, SFU_RTCP_RTPFB, off);
  sfu_wr32(buf + 4, sender_ssrc);
  sfu_wr32(buf + 8, media_ssrc);
  return (int)off;
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
  if (end < FB_LEN + 8)
    return SFU_EPROTO;
  for (off = FB_LEN; off + 8 <= end && n < cap; off += 8, n++) {
    ssrcs[n] = sfu_rd32(p + off);
    seqnrs[n] = p[off + 4];
  }
  return n;
}

int sfu_rtcp_write_fir(uint8_t *buf, size_t cap, uint32_t sender_ssrc,
                       uint32_t media_ssrc, uint8_t seqnr) {
  if (cap < FB_LEN + 8)
    return SFU_E2BIG;
  write_header(buf, SFU_RTCP_FMT_FIR, SFU_RTCP_PSFB, FB_LEN + 8);
  sfu_wr32(buf + 4, sender_ssrc);
  sfu_wr32(buf + 8, 0);
  sfu_wr32(buf + 12, media_ssrc);
  sfu_wr32(buf + 16, (uint32_t)seqnr << 24);
  return FB_LEN + 8;
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
      h->count != SFU_RTCP_FMT_AFB || end < REMB_LEN ||
      memcmp(p + FB_LEN, "REMB", 4) != 0)
    return SFU_EINVAL;
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

/*
 * Walks the chunks from `off`. With status NULL it only measures: returns
 * the offset after the last chunk and sets *delta_bytes. Otherwise it also
 * stores symbols and reads deltas from `d`. Negative on malformed input.
 */
static long twcc_walk(const uint8_t *p, size_t off, size_t end, int count,
                      uint8_t *status, int32_t *delta_us, int cap, size_t d,
                      size_t *delta_bytes) {
  size_t need = 0;
  int covered = 0, k, run, sym, nsym;
  uint16_t ch;

  while (covered < count) {
    if (end - off < 2)
      return SFU_EPROTO;
    ch = sfu_rd16(p + off);
    off += 2;
    if (!(ch & 0x8000)) {
      sym = ch >> 13 & 3;
      run = ch & 0x1fff;
      nsym = run < count - covered ? run : count - covered;
    } else {
      sym = -1;
      nsym = ch & 0x4000 ? 7 : 14;
      if (nsym > count - covered)
        nsym = count - covered;
    }
    for (k = 0; k < nsym; k++, covered++) {
      int s = sym;
      if (s < 0)
        s = ch & 0x4000 ? ch >> (12 - 2 * k) & 3 : ch >> (13 - k) & 1;
      if (s == 3)
        return SFU_EPROTO;
      if (status == NULL) {
        need += (size_t)s;
        continue;
      }
      if (covered < cap) {
        status[covered] = (uint8_t)s;
        if (delta_us != NULL) {
          if (s == SFU_TWCC_SMALL_DELTA)
            delta_us[covered] = (int32_t)p[d] * 250;
          else if (s == SFU_TWCC_LARGE_DELTA)
            delta_us[covered] = (((int32_t)sfu_rd16(p + d) ^ 0x8000) - 0x8000) * 250;
          else
            delta_us[covered] = 0;
        }
      }
      d += (size_t)s;
    }
  }
  if (delta_bytes != NULL)
    *delta_bytes = need;
  return (long)off;
}

int sfu_rtcp_parse_twcc(const sfu_rtcp_hdr_t *h, sfu_rtcp_twcc_t *out,
                        uint8_t *status, int32_t *delta_us, int cap) {
  const uint8_t *p = h->data;
  size_t end = body_len(h), deltas;
  long chunks_end;

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

  chunks_end = twcc_walk(p, TWCC_LEN, end, out->status_count, NULL, NULL, 0,
                         0, &deltas);
  if (chunks_end < 0)
    return (int)chunks_end;
  if (deltas > end - (size_t)chunks_end)
    return SFU_EPROTO;
  if (status != NULL)
    twcc_walk(p, TWCC_LEN, end, out->status_count, status, delta_us, cap,
              (size_t)chunks_end, NULL);
  return out->status_count;
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
