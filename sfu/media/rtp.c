/*
 * rtp.c -- RTP view parser, header-extension walk, forward copy.
 *
 * An RTP packet arrives in a receive slot and is looked at many times (track
 * stats, codec keyframe checks, one forward copy per subscriber), so the
 * parser does the bounds checking once and records offsets; every later
 * reader trusts those offsets and the invariant
 *
 *   payload_off + payload_len + pad_len == len,  ext_off + ext_len <= len
 *
 * The extension block is only checked as a whole by sfu_rtp_parse(): its
 * elements are checked lazily by the iterator, which stops at the first one
 * that would run past the block. A malformed element therefore hides the
 * elements after it but never makes the packet unusable; this matches what
 * browsers do and keeps the parse cost independent of the extension count.
 *
 * Fields are read with explicit shifts, never through casts to wider types
 * or bitfields, so the code is endian- and alignment-neutral.
 */
#include <string.h>

#include "sfu/base/bytes.h"
#include "sfu/media/rtp.h"

/*
 * RFC 3550 §5.1, with the RFC 8285 extension block:
 *
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |V=2|P|X|  CC   |M|     PT      |       sequence number         |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                           timestamp                           |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |           synchronization source (SSRC) identifier            |
 * +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
 * |            contributing source (CSRC) identifiers             |
 * |                      (CC words)  ....                         |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |  profile (0xBEDE / 0x100x)    |      length (32-bit words)    |  if X
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                   extension elements ....                     |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |          payload ....         |  padding ...  |   pad count   |  if P
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * pad count includes itself, so it is at least 1.
 */
int sfu_rtp_parse(const uint8_t *buf, size_t len, sfu_rtp_t *out) {
  size_t off, words;
  uint8_t b0, pad = 0;

  if (len < SFU_RTP_HEADER_LEN)
    return SFU_EPROTO;
  b0 = buf[0];
  if ((b0 >> 6) != 2)
    return SFU_EPROTO;

  out->data = buf;
  out->len = len;
  out->has_padding = (b0 >> 5) & 1;
  out->has_ext = (b0 >> 4) & 1;
  out->csrc_count = b0 & 0x0f;
  out->marker = buf[1] >> 7;
  out->pt = buf[1] & 0x7f;
  out->seq = sfu_rd16(buf + 2);
  out->ts = sfu_rd32(buf + 4);
  out->ssrc = sfu_rd32(buf + 8);

  off = SFU_RTP_HEADER_LEN + 4 * (size_t)out->csrc_count;
  if (off > len)
    return SFU_EPROTO;

  out->ext_profile = 0;
  out->ext_off = 0;
  out->ext_len = 0;
  if (out->has_ext) {
    if (len - off < 4)
      return SFU_EPROTO;
    out->ext_profile = sfu_rd16(buf + off);
    words = sfu_rd16(buf + off + 2);
    off += 4;
    if (words * 4 > len - off)
      return SFU_EPROTO;
    out->ext_off = off;
    out->ext_len = words * 4;
    off += words * 4;
  }
  out->header_len = off;
  out->payload_off = off;

  if (out->has_padding) {
    pad = buf[len - 1];
    if (pad == 0 || pad > len - off)
      return SFU_EPROTO;
  }
  out->pad_len = pad;
  out->payload_len = len - off - pad;
  return 0;
}

int sfu_is_rtcp(const uint8_t *buf, size_t len) {
  return len >= 2 && buf[1] >= 192 && buf[1] <= 223;
}

/* ---- header extensions (RFC 8285) ------------------------------------ */

/*
 * One-byte form, element = 4-bit id, 4-bit (length - 1), data:
 *
 *  0 1 2 3 4 5 6 7
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |  ID   |  len  | data (len+1)  |     ID 0 + len 0: a padding byte
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+     ID 15: stop
 *
 * Two-byte form, element = 8-bit id, 8-bit length (0..255), data:
 *
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |      ID       |    length     | data (length) |   ID 0: a padding byte
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 */
void sfu_rtp_ext_iter_init(sfu_rtp_ext_iter_t *it, const sfu_rtp_t *p) {
  it->p = p->data + p->ext_off;
  it->len = p->ext_len;
  it->off = 0;
  it->form = 0;
  if (!p->has_ext)
    return;
  if (p->ext_profile == SFU_RTP_EXT_ONE_BYTE)
    it->form = 1;
  else if ((p->ext_profile >> 4) == (SFU_RTP_EXT_TWO_BYTE >> 4))
    it->form = 2;
}

static inline int ext_next(sfu_rtp_ext_iter_t *it, int *id,
                           const uint8_t **val, size_t *vlen) {
  const uint8_t *p = it->p;
  size_t n = it->len, off = it->off, l;
  int i;

  if (it->form == 0)
    goto end;
  while (off < n && p[off] == 0)
    off++;
  if (off >= n)
    goto end;
  if (it->form == 1) {
    i = p[off] >> 4;
    if (i == 15)
      goto end;
    if (i == 0) /* id 0 with a length: neither padding nor an element */
      goto bad;
    l = (size_t)(p[off] & 0x0f) + 1;
    off++;
  } else {
    if (n - off < 2)
      goto bad;
    i = p[off];
    l = p[off + 1];
    off += 2;
  }
  if (l > n - off)
    goto bad;
  *id = i;
  *val = p + off;
  *vlen = l;
  it->off = off + l;
  return 1;

end:
  it->off = n;
  return 0;
bad:
  it->off = n;
  return SFU_EPROTO;
}

int sfu_rtp_ext_next(sfu_rtp_ext_iter_t *it, int *id, const uint8_t **val,
                     size_t *len) {
  return ext_next(it, id, val, len);
}

int sfu_rtp_ext_find(const sfu_rtp_t *p, int id, const uint8_t **val,
                     size_t *len) {
  sfu_rtp_ext_iter_t it;
  const uint8_t *v;
  size_t l;
  int i;

  if (!p->has_ext || id <= 0)
    return 0;
  sfu_rtp_ext_iter_init(&it, p);
  while (ext_next(&it, &i, &v, &l) == 1) {
    if (i == id) {
      *val = v;
      *len = l;
      return 1;
    }
  }
  return 0;
}

/*
 * RFC 6464 §3, one byte of value (a one-byte-form element has len 0):
 *
 *  0 1 2 3 4 5 6 7
 * +-+-+-+-+-+-+-+-+
 * |V|   level     |   V: voice activity; level: 0..127 -dBov
 * +-+-+-+-+-+-+-+-+
 */
int sfu_rtp_audio_level(const sfu_rtp_t *p, int ext_id, int *voice,
                        int *level) {
  const uint8_t *v;
  size_t l;

  if (!sfu_rtp_ext_find(p, ext_id, &v, &l) || l < 1)
    return 0;
  *voice = v[0] >> 7;
  *level = v[0] & 0x7f;
  return 1;
}

int sfu_rtp_ext_mid(const sfu_rtp_t *p, int ext_id, char *out, size_t cap) {
  const uint8_t *v;
  size_t l, i;

  if (!sfu_rtp_ext_find(p, ext_id, &v, &l) || l == 0 || l >= cap)
    return 0;
  for (i = 0; i < l; i++) {
    if (v[i] < 0x21 || v[i] > 0x7e)
      return 0;
    out[i] = (char)v[i];
  }
  out[l] = '\0';
  return (int)l;
}

/* ---- in-place rewrite ------------------------------------------------ */

void sfu_rtp_set_seq(uint8_t *pkt, uint16_t seq) { sfu_wr16(pkt + 2, seq); }

void sfu_rtp_set_ts(uint8_t *pkt, uint32_t ts) { sfu_wr32(pkt + 4, ts); }

void sfu_rtp_set_ssrc(uint8_t *pkt, uint32_t ssrc) { sfu_wr32(pkt + 8, ssrc); }

void sfu_rtp_set_pt(uint8_t *pkt, uint8_t pt) {
  pkt[1] = (uint8_t)((pkt[1] & 0x80) | (pt & 0x7f));
}

/* ---- forward copy ---------------------------------------------------- */

/*
 * Elements are written straight after a provisional 4-byte block header at
 * out[12..16) while the source block is walked. If none is kept, the output
 * is rewound to 12 bytes and the X bit stays clear. A kept element is never
 * longer than it was in the source and source padding is dropped, so the
 * rebuilt block, rounded up to a word, fits in the source block's size.
 */
int sfu_rtp_forward_copy(const sfu_rtp_t *p, uint8_t pt, uint16_t seq,
                         uint32_t ts, uint32_t ssrc, const uint8_t map[15],
                         uint8_t *out, size_t cap) {
  sfu_rtp_ext_iter_t it;
  const uint8_t *v;
  size_t o = SFU_RTP_HEADER_LEN, l, words;
  int id, nid;

  if (cap < SFU_RTP_HEADER_LEN)
    return SFU_E2BIG;
  out[0] = 0x80;
  out[1] = (uint8_t)(p->marker << 7 | (pt & 0x7f));
  sfu_wr16(out + 2, seq);
  sfu_wr32(out + 4, ts);
  sfu_wr32(out + 8, ssrc);

  if (map != NULL && p->has_ext) {
    sfu_rtp_ext_iter_init(&it, p);
    o = SFU_RTP_HEADER_LEN + 4;
    while (ext_next(&it, &id, &v, &l) == 1) {
      if (id > 14 || l == 0 || l > 16)
        continue;
      nid = map[id];
      if (nid == 0 || nid > 14)
        continue;
      if (o + 1 + l > cap)
        return SFU_E2BIG;
      out[o] = (uint8_t)(nid << 4 | (int)(l - 1));
      memcpy(out + o + 1, v, l);
      o += 1 + l;
    }
    if (o == SFU_RTP_HEADER_LEN + 4) {
      o = SFU_RTP_HEADER_LEN;
    } else {
      while (o & 3) {
        if (o >= cap)
          return SFU_E2BIG;
        out[o++] = 0;
      }
      words = (o - SFU_RTP_HEADER_LEN - 4) / 4;
      out[0] |= 0x10;
      sfu_wr16(out + 12, SFU_RTP_EXT_ONE_BYTE);
      sfu_wr16(out + 14, (uint16_t)words);
    }
  }

  if (p->payload_len > cap - o || p->payload_len > (size_t)INT32_MAX - o)
    return SFU_E2BIG;
  memcpy(out + o, p->data + p->payload_off, p->payload_len);
  return (int)(o + p->payload_len);
}

/* ---- sequence numbers ------------------------------------------------ */

uint64_t sfu_seq_unwrap(sfu_seq_unwrap_t *u, uint16_t seq) {
  uint16_t d;

  if (!u->init) {
    u->init = 1;
    u->max_ext = SFU_SEQ_EXT_BASE + seq;
    return u->max_ext;
  }
  d = (uint16_t)(seq - (uint16_t)u->max_ext);
  if (d < 0x8000) {
    u->max_ext += d;
    return u->max_ext;
  }
  /* Behind the highest: max_ext >= SFU_SEQ_EXT_BASE > 0x8000, no wrap. */
  return u->max_ext - (0x10000u - d);
}

uint32_t sfu_seq_rtcp_ext(uint64_t ext) {
  return (uint32_t)(ext - SFU_SEQ_EXT_BASE);
}
