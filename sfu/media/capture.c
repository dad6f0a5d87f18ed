/*
 * capture.c -- pcap/pcapng reading down to UDP payloads, a pcap writer for
 * RTP/RTCP, and RTP stream discovery, for sfu-replay.
 *
 * Reading is split in two. libpcap owns the file formats: pcap in both
 * byte orders and time-stamp precisions, pcapng with its blocks, options
 * and per-interface time resolution; we ask it for microseconds and take
 * records one at a time with pcap_next_ex(), whose buffer stays valid until
 * the next call. sfu_cap_parse_frame() owns everything inside a record: it
 * is a pure function over (link type, bytes, captured length, wire length)
 * that checks each header's length once, against the record and against
 * the enclosing header's own length field, and returns a view of the UDP
 * payload inside the record. Being pure, it is what the fuzz target drives
 * directly.
 *
 * Every record is counted once in `frames` and once in exactly one of
 * udp / skipped_*; parse_frame does both, so the invariant holds for any
 * caller. "Truncated" means the capture's snap length cut the frame
 * (caplen < wirelen) before the end of the UDP datagram; a whole frame
 * whose headers contradict each other is "malformed". Neither is fatal.
 *
 * What is fatal is a file libpcap cannot step through: not a capture, a
 * damaged block, a file cut in the middle of a record, or a pcapng whose
 * interfaces differ in link type or snap length (libpcap 1.10 keeps one of
 * each per file and refuses the rest). libpcap's messages for those are
 * written for its own developers ("an interface has a type 113 different
 * from the type of the first interface"); describe() turns the ones a user
 * meets into a sentence naming the file.
 *
 * sfu_cap_open() reads the first record straight away and keeps it
 * pending, so an empty capture and a pcapng whose second interface comes
 * before the first packet both fail at open time, with the message,
 * instead of at the first read.
 *
 * Writing does not go through libpcap: pcap_dump() cannot report a failed
 * write and the format is 24 + 16 bytes of header, so the writer emits it
 * with explicit little-endian stores into stdio.
 */
#include <errno.h>
#include <inttypes.h>
#include <pcap/pcap.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "sfu/base/bytes.h"
#include "sfu/media/capture.h"

#define LINKTYPE_RAW 101 /* what pcap files say; libpcap maps it to DLT_RAW */

#define ETHERTYPE_IPV4 0x0800
#define ETHERTYPE_IPV6 0x86DD
#define ETHERTYPE_VLAN 0x8100  /* 802.1Q */
#define ETHERTYPE_QINQ 0x88A8  /* 802.1ad service tag */
#define ETHERTYPE_QINQ1 0x9100 /* pre-standard double tag */

#define IPPROTO_UDP_ 17
#define IP6_HOPOPTS 0
#define IP6_ROUTING 43
#define IP6_FRAGMENT 44
#define IP6_DSTOPTS 60

#define NAME_MAX_ 512

struct sfu_cap_s {
  pcap_t *pcap;                 /* libpcap's reader; owns the FILE */
  int linktype;                 /* pcap_datalink() */
  int state;                    /* 0 reading, 1 at end, < 0 sticky error */
  int pending;                  /* 1: `pend_*` holds an unparsed record */
  struct pcap_pkthdr pend_hdr;  /* the first record, read by open */
  const u_char *pend_data;      /* in libpcap's buffer until the next read */
  sfu_cap_stats_t st;           /* counters */
  char name[NAME_MAX_];         /* file name, for messages */
  char err[NAME_MAX_ + 256];    /* last message, "" if none */
};

/* ---- messages --------------------------------------------------------- */

static void put_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void put_err(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;

  if (err == NULL || errlen == 0)
    return;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

/* Drops a trailing newline or period libpcap may put on its messages. */
static void chomp(char *s) {
  size_t n = strlen(s);

  while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '.'))
    s[--n] = '\0';
}

/*
 * Turns a libpcap error into a message for a user and a code. `at_open`
 * is set for failures of pcap_fopen_offline (nothing has been read), and
 * `frames` is the number of records read before the failure otherwise.
 */
static int describe(char *out, size_t outlen, const char *name,
                    const char *msg_in, int at_open, pcap_t *p,
                    uint64_t frames) {
  char msg[PCAP_ERRBUF_SIZE];
  unsigned a, b;

  snprintf(msg, sizeof(msg), "%s", msg_in);
  chomp(msg);
  if (sscanf(msg, "an interface has a type %u different", &a) == 1) {
    put_err(out, outlen,
            "%s: interfaces with different link types (%d and %u) are not "
            "supported",
            name, p ? pcap_datalink(p) : -1, a);
    return SFU_EPROTO;
  }
  if (sscanf(msg, "an interface has a snapshot length %u different", &a) ==
      1) {
    put_err(out, outlen,
            "%s: interfaces with different snapshot lengths (%d and %u) are "
            "not supported (libpcap refuses them)",
            name, p ? pcap_snapshot(p) : -1, a);
    return SFU_EPROTO;
  }
  if (at_open) {
    if (strcmp(msg, "unknown file format") == 0) {
      put_err(out, outlen, "%s: not a pcap or pcapng file", name);
      return SFU_EPROTO;
    }
    if (sscanf(msg, "truncated dump file; tried to read %u file header "
                    "bytes, only got %u",
               &a, &b) == 2 &&
        a == 4) {
      if (b == 0)
        put_err(out, outlen, "%s: empty file, not a pcap or pcapng file",
                name);
      else
        put_err(out, outlen, "%s: not a pcap or pcapng file (%u bytes)", name,
                b);
      return SFU_EPROTO;
    }
    if (strstr(msg, "has no Interface Description Blocks") != NULL) {
      put_err(out, outlen, "%s: empty capture (no interfaces, no packets)",
              name);
      return SFU_ENOENT;
    }
    if (strstr(msg, "truncated") != NULL) {
      put_err(out, outlen, "%s: file cut short inside its pcap/pcapng header",
              name);
      return SFU_EPROTO;
    }
    put_err(out, outlen, "%s: not a valid pcap or pcapng file (%s)", name,
            msg);
    return SFU_EPROTO;
  }
  if (strstr(msg, "truncated") != NULL) {
    put_err(out, outlen,
            "%s: file ends in the middle of record %" PRIu64
            " (cut short?)",
            name, frames + 1);
    return SFU_EPROTO;
  }
  put_err(out, outlen, "%s: damaged record %" PRIu64 " (%s)", name,
          frames + 1, msg);
  return SFU_EPROTO;
}

static int linktype_supported(int lt) {
  switch (lt) {
  case DLT_EN10MB:
  case DLT_LINUX_SLL:
  case DLT_LINUX_SLL2:
  case DLT_RAW:
  case LINKTYPE_RAW:
  case DLT_IPV4:
  case DLT_IPV6:
  case DLT_NULL:
  case DLT_LOOP:
    return 1;
  default:
    return 0;
  }
}

/* ---- frame parsing ---------------------------------------------------- */

enum { SKIP_NOT_UDP, SKIP_TRUNCATED, SKIP_FRAGMENT, SKIP_LINKTYPE,
       SKIP_MALFORMED };

static int skip(sfu_cap_stats_t *st, int why) {
  if (st == NULL)
    return 0;
  switch (why) {
  case SKIP_NOT_UDP: st->skipped_not_udp++; break;
  case SKIP_TRUNCATED: st->skipped_truncated++; break;
  case SKIP_FRAGMENT: st->skipped_fragment++; break;
  case SKIP_LINKTYPE: st->skipped_linktype++; break;
  default: st->skipped_malformed++; break;
  }
  return 0;
}

/* A frame needed bytes it does not have: cut by the snap length, or
 * (when the whole frame was captured) inconsistent. */
#define SHORT(st, cut) skip((st), (cut) ? SKIP_TRUNCATED : SKIP_MALFORMED)

/*
 * RFC 768:
 *
 *  0      7 8     15 16    23 24    31
 * +--------+--------+--------+--------+
 * |     Source      |   Destination   |
 * |      Port       |      Port       |
 * +--------+--------+--------+--------+
 * |     Length      |    Checksum     |
 * +--------+--------+--------+--------+
 * |          data octets ...
 *
 * `u` holds the IP payload, `n` bytes, all captured (the IP layer checked
 * its own length against the capture). Length covers the header; a
 * datagram shorter than its IP packet leaves trailing bytes we ignore.
 */
static int parse_udp(const uint8_t *u, size_t n, sfu_cap_pkt_t *pkt,
                     sfu_cap_stats_t *st) {
  size_t ulen;

  if (n < 8)
    return skip(st, SKIP_MALFORMED);
  ulen = sfu_rd16(u + 4);
  if (ulen < 8 || ulen > n)
    return skip(st, SKIP_MALFORMED);
  pkt->sport = sfu_rd16(u);
  pkt->dport = sfu_rd16(u + 2);
  pkt->data = u + 8;
  pkt->len = ulen - 8;
  if (st != NULL)
    st->udp++;
  return 1;
}

/*
 * RFC 791:
 *
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |Version|  IHL  |Type of Service|          Total Length         |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |         Identification        |Flags|      Fragment Offset    |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |  Time to Live |    Protocol   |         Header Checksum       |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                       Source Address                          |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                    Destination Address                        |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                    Options (IHL > 5)                          |
 *
 * Flags are 0, DF, MF. The protocol is looked at before the lengths, so
 * TCP with the zero total length of a segmentation-offload capture is
 * "not UDP", not "malformed"; fragments of other protocols too.
 */
static int parse_ip4(const uint8_t *p, size_t avail, int cut,
                     sfu_cap_pkt_t *pkt, sfu_cap_stats_t *st) {
  size_t ihl, tot;

  if (avail < 20)
    return SHORT(st, cut);
  if (p[0] >> 4 != 4)
    return skip(st, SKIP_MALFORMED);
  if (p[9] != IPPROTO_UDP_)
    return skip(st, SKIP_NOT_UDP);
  ihl = (size_t)(p[0] & 0x0f) * 4;
  tot = sfu_rd16(p + 2);
  if (ihl < 20 || tot < ihl)
    return skip(st, SKIP_MALFORMED);
  if (sfu_rd16(p + 6) & 0x3fff) /* MF or a fragment offset */
    return skip(st, SKIP_FRAGMENT);
  if (tot > avail)
    return SHORT(st, cut);
  pkt->family = AF_INET;
  memset(pkt->src, 0, sizeof(pkt->src));
  memset(pkt->dst, 0, sizeof(pkt->dst));
  memcpy(pkt->src, p + 12, 4);
  memcpy(pkt->dst, p + 16, 4);
  return parse_udp(p + ihl, tot - ihl, pkt, st);
}

/*
 * RFC 8200 §3 and §4:
 *
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |Version| Traffic Class |           Flow Label                  |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |         Payload Length        |  Next Header  |   Hop Limit   |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |              Source Address (16), Destination Address (16)    |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * followed by a chain of extension headers. Hop-by-hop (0), routing (43)
 * and destination options (60) start with next header and a length in
 * 8-byte units not counting the first 8. The fragment header (44) is 8
 * bytes: next header, reserved, offset << 3 | M, identification. An
 * atomic fragment (offset 0, M 0: RFC 6946) holds a whole datagram and is
 * read through; any other fragment of UDP is skipped_fragment. Payload
 * length 0 means a jumbogram, which no UDP capture carries: malformed.
 */
static int parse_ip6(const uint8_t *p, size_t avail, int cut,
                     sfu_cap_pkt_t *pkt, sfu_cap_stats_t *st) {
  size_t end, off = 40, hl;
  uint8_t nh;

  if (avail < 40)
    return SHORT(st, cut);
  if (p[0] >> 4 != 6)
    return skip(st, SKIP_MALFORMED);
  end = 40 + (size_t)sfu_rd16(p + 4);
  if (end == 40)
    return skip(st, SKIP_MALFORMED);
  if (end > avail)
    return SHORT(st, cut);
  nh = p[6];
  for (;;) {
    switch (nh) {
    case IP6_HOPOPTS:
    case IP6_ROUTING:
    case IP6_DSTOPTS:
      if (end - off < 8)
        return skip(st, SKIP_MALFORMED);
      hl = ((size_t)p[off + 1] + 1) * 8;
      if (end - off < hl)
        return skip(st, SKIP_MALFORMED);
      nh = p[off];
      off += hl;
      continue;
    case IP6_FRAGMENT:
      if (end - off < 8)
        return skip(st, SKIP_MALFORMED);
      if ((sfu_rd16(p + off + 2) & 0xfff9) != 0) /* offset or M set */
        return skip(st, p[off] == IPPROTO_UDP_ ? SKIP_FRAGMENT
                                               : SKIP_NOT_UDP);
      nh = p[off];
      off += 8;
      continue;
    case IPPROTO_UDP_:
      pkt->family = AF_INET6;
      memcpy(pkt->src, p + 8, 16);
      memcpy(pkt->dst, p + 24, 16);
      return parse_udp(p + off, end - off, pkt, st);
    default: /* TCP, ICMPv6, ESP, AH, no next header, ... */
      return skip(st, SKIP_NOT_UDP);
    }
  }
}

/* IP at `off` of `frame`, version from the link layer (4 or 6) or, for
 * raw IP with no such field (0), from the first nibble. */
static int parse_ip(int version, const uint8_t *frame, size_t caplen,
                    size_t off, int cut, sfu_cap_pkt_t *pkt,
                    sfu_cap_stats_t *st) {
  if (off >= caplen)
    return SHORT(st, cut);
  if (version == 0) {
    version = frame[off] >> 4;
    if (version != 4 && version != 6)
      return skip(st, SKIP_NOT_UDP);
  }
  if (version == 4)
    return parse_ip4(frame + off, caplen - off, cut, pkt, st);
  return parse_ip6(frame + off, caplen - off, cut, pkt, st);
}

/* `type` was read just before frame[off]: steps over VLAN tags (4 bytes
 * each: TCI, then the next ethertype) and goes on to IP. */
static int parse_ethertype(uint16_t type, const uint8_t *frame, size_t caplen,
                           size_t off, int cut, sfu_cap_pkt_t *pkt,
                           sfu_cap_stats_t *st) {
  while (type == ETHERTYPE_VLAN || type == ETHERTYPE_QINQ ||
         type == ETHERTYPE_QINQ1) {
    if (caplen - off < 4)
      return SHORT(st, cut);
    type = sfu_rd16(frame + off + 2);
    off += 4;
  }
  if (type == ETHERTYPE_IPV4)
    return parse_ip(4, frame, caplen, off, cut, pkt, st);
  if (type == ETHERTYPE_IPV6)
    return parse_ip(6, frame, caplen, off, cut, pkt, st);
  return skip(st, SKIP_NOT_UDP);
}

/*
 * Link-layer headers:
 *
 *   DLT_EN10MB      dst(6) src(6) ethertype(2), ethertype 0x8100/0x88a8/
 *                   0x9100 followed by TCI(2) ethertype(2), repeated
 *   DLT_LINUX_SLL   pkttype(2) hatype(2) halen(2) addr(8) protocol(2)
 *   DLT_LINUX_SLL2  protocol(2) reserved(2) ifindex(4) hatype(2)
 *                   pkttype(1) halen(1) addr(8)
 *   DLT_NULL/LOOP   address family(4): host order of the capturing machine
 *                   for NULL, network order for LOOP; both are accepted in
 *                   either order. AF_INET is 2 everywhere; AF_INET6 is 10
 *                   (Linux), 23 (Windows), 24 (Net/OpenBSD), 28 (FreeBSD)
 *                   or 30 (Darwin)
 *   raw IP          nothing: DLT_RAW (version from the first nibble),
 *                   DLT_IPV4, DLT_IPV6
 */
int sfu_cap_parse_frame(int linktype, const uint8_t *frame, size_t caplen,
                        size_t wirelen, sfu_cap_pkt_t *pkt,
                        sfu_cap_stats_t *st) {
  int cut = caplen < wirelen;
  unsigned af;

  if (st != NULL)
    st->frames++;
  switch (linktype) {
  case DLT_EN10MB:
    if (caplen < 14)
      return SHORT(st, cut);
    return parse_ethertype(sfu_rd16(frame + 12), frame, caplen, 14, cut, pkt,
                           st);
  case DLT_LINUX_SLL:
    if (caplen < 16)
      return SHORT(st, cut);
    return parse_ethertype(sfu_rd16(frame + 14), frame, caplen, 16, cut, pkt,
                           st);
  case DLT_LINUX_SLL2:
    if (caplen < 20)
      return SHORT(st, cut);
    return parse_ethertype(sfu_rd16(frame), frame, caplen, 20, cut, pkt, st);
  case DLT_RAW:
  case LINKTYPE_RAW:
    return parse_ip(0, frame, caplen, 0, cut, pkt, st);
  case DLT_IPV4:
    return parse_ip(4, frame, caplen, 0, cut, pkt, st);
  case DLT_IPV6:
    return parse_ip(6, frame, caplen, 0, cut, pkt, st);
  case DLT_NULL:
  case DLT_LOOP:
    if (caplen < 4)
      return SHORT(st, cut);
    if (frame[0] == 0 && frame[1] == 0 && frame[2] == 0)
      af = frame[3];
    else if (frame[1] == 0 && frame[2] == 0 && frame[3] == 0)
      af = frame[0];
    else
      return skip(st, SKIP_NOT_UDP);
    if (af == 2)
      return parse_ip(4, frame, caplen, 4, cut, pkt, st);
    if (af == 10 || af == 23 || af == 24 || af == 28 || af == 30)
      return parse_ip(6, frame, caplen, 4, cut, pkt, st);
    return skip(st, SKIP_NOT_UDP);
  default:
    return skip(st, SKIP_LINKTYPE);
  }
}

/* ---- reader ----------------------------------------------------------- */

int sfu_cap_open_fp(sfu_cap_t **out, FILE *fp, const char *name, char *err,
                    size_t errlen) {
  char ebuf[PCAP_ERRBUF_SIZE];
  struct pcap_pkthdr *h;
  const u_char *d;
  sfu_cap_t *c;
  int rv, lt;

  *out = NULL;
  if (err != NULL && errlen > 0)
    err[0] = '\0';
  if (name == NULL)
    name = "capture";
  c = calloc(1, sizeof(*c));
  if (c == NULL) {
    fclose(fp);
    put_err(err, errlen, "%s: out of memory", name);
    return SFU_ENOMEM;
  }
  snprintf(c->name, sizeof(c->name), "%s", name);

  ebuf[0] = '\0';
  c->pcap = pcap_fopen_offline_with_tstamp_precision(
      fp, PCAP_TSTAMP_PRECISION_MICRO, ebuf);
  if (c->pcap == NULL) {
    /* libpcap leaves a FILE it did not take to us */
    fclose(fp);
    rv = describe(err, errlen, c->name, ebuf, 1, NULL, 0);
    goto fail;
  }
  lt = pcap_datalink(c->pcap);
  if (!linktype_supported(lt)) {
    const char *ltname = pcap_datalink_val_to_name(lt);
    put_err(err, errlen,
            "%s: link type %d (%s) is not supported; this reader takes "
            "Ethernet, Linux cooked (SLL, SLL2), raw IP and BSD loopback "
            "captures",
            c->name, lt, ltname ? ltname : "unknown");
    rv = SFU_EPROTO;
    goto fail;
  }
  c->linktype = lt;

  rv = pcap_next_ex(c->pcap, &h, &d);
  if (rv == PCAP_ERROR_BREAK) { /* -2: end of file */
    put_err(err, errlen, "%s: empty capture (no packets)", c->name);
    rv = SFU_ENOENT;
    goto fail;
  }
  if (rv != 1) {
    rv = describe(err, errlen, c->name, pcap_geterr(c->pcap), 0, c->pcap, 0);
    goto fail;
  }
  c->pending = 1;
  c->pend_hdr = *h;
  c->pend_data = d;
  *out = c;
  return 0;

fail:
  if (c->pcap != NULL)
    pcap_close(c->pcap);
  free(c);
  return rv;
}

int sfu_cap_open(sfu_cap_t **out, const char *path, char *err,
                 size_t errlen) {
  struct stat sb;
  FILE *fp;
  int rv;

  *out = NULL;
  fp = fopen(path, "rb");
  if (fp == NULL) {
    rv = -errno;
    put_err(err, errlen, "%s: %s", path, strerror(errno));
    return rv;
  }
  if (fstat(fileno(fp), &sb) == 0 && S_ISDIR(sb.st_mode)) {
    fclose(fp);
    put_err(err, errlen, "%s: is a directory, not a capture file", path);
    return -EISDIR;
  }
  return sfu_cap_open_fp(out, fp, path, err, errlen);
}

int sfu_cap_next(sfu_cap_t *c, sfu_cap_pkt_t *pkt) {
  struct pcap_pkthdr hdr, *h;
  const u_char *d;
  int rv;

  while (c->state == 0) {
    if (c->pending) {
      c->pending = 0;
      hdr = c->pend_hdr;
      d = c->pend_data;
    } else {
      rv = pcap_next_ex(c->pcap, &h, &d);
      if (rv == PCAP_ERROR_BREAK) {
        c->state = 1;
        break;
      }
      if (rv != 1) {
        c->state = describe(c->err, sizeof(c->err), c->name,
                            pcap_geterr(c->pcap), 0, c->pcap, c->st.frames);
        break;
      }
      hdr = *h;
    }
    if (sfu_cap_parse_frame(c->linktype, d, hdr.caplen, hdr.len, pkt,
                            &c->st)) {
      /* unsigned arithmetic: a hostile pcapng time stamp may be anything */
      pkt->ts_us = (uint64_t)hdr.ts.tv_sec * 1000000u +
                   (uint64_t)hdr.ts.tv_usec;
      pkt->frame = c->st.frames;
      return 1;
    }
  }
  return c->state < 0 ? c->state : 0;
}

const sfu_cap_stats_t *sfu_cap_stats(const sfu_cap_t *c) { return &c->st; }

const char *sfu_cap_error(const sfu_cap_t *c) { return c->err; }

int sfu_cap_linktype(const sfu_cap_t *c) { return c->linktype; }

void sfu_cap_close(sfu_cap_t *c) {
  if (c == NULL)
    return;
  pcap_close(c->pcap);
  free(c);
}

/* ---- writer ----------------------------------------------------------- */

/*
 * A classic pcap file (https://www.ietf.org/archive/id/
 * draft-ietf-opsawg-pcap-03.html), little-endian:
 *
 *   file header (24):  magic a1b2c3d4 (microseconds), version 2.4,
 *                      reserved 0, 0, snaplen, link type
 *   record header (16): seconds, microseconds, captured length, length
 *
 * Each record here is Ethernet (14) + IPv4 (20) + UDP (8) + payload.
 */
#define PCAP_FILE_HDR 24
#define PCAP_REC_HDR 16
#define FRAME_HDR (14 + 20 + 8)
#define WRITER_SNAPLEN 262144 /* libpcap's maximum; a frame is < 65550 */

struct sfu_cap_writer_s {
  FILE *fp;        /* the file, with a 64 KiB stdio buffer */
  uint64_t bytes;  /* written so far (handed to stdio) */
  uint16_t ip_id;  /* IPv4 identification of the last packet */
  int err;         /* first write error (-errno), sticky */
  char buf[65536]; /* stdio buffer */
};

static void wr32le(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

static void wr16le(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}

/* RFC 1071 one's-complement sum of n bytes, folded later. */
static uint32_t csum_add(uint32_t sum, const uint8_t *p, size_t n) {
  size_t i;

  for (i = 0; i + 1 < n; i += 2)
    sum += (uint32_t)p[i] << 8 | p[i + 1];
  if (n & 1)
    sum += (uint32_t)p[n - 1] << 8;
  return sum;
}

static uint16_t csum_fold(uint32_t sum) {
  while (sum >> 16)
    sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)~sum;
}

static int write_bytes(sfu_cap_writer_t *w, const void *p, size_t n) {
  if (n > 0 && fwrite(p, 1, n, w->fp) != n) {
    w->err = errno ? -errno : -EIO;
    return w->err;
  }
  w->bytes += n;
  return 0;
}

int sfu_cap_writer_open(sfu_cap_writer_t **out, const char *path, char *err,
                        size_t errlen) {
  uint8_t hdr[PCAP_FILE_HDR];
  sfu_cap_writer_t *w;
  int rv;

  *out = NULL;
  w = calloc(1, sizeof(*w));
  if (w == NULL) {
    put_err(err, errlen, "%s: out of memory", path);
    return SFU_ENOMEM;
  }
  w->fp = fopen(path, "wb");
  if (w->fp == NULL) {
    rv = -errno;
    put_err(err, errlen, "%s: cannot create: %s", path, strerror(errno));
    free(w);
    return rv;
  }
  setvbuf(w->fp, w->buf, _IOFBF, sizeof(w->buf));
  wr32le(hdr, 0xa1b2c3d4);
  wr16le(hdr + 4, 2);
  wr16le(hdr + 6, 4);
  wr32le(hdr + 8, 0);  /* thiszone */
  wr32le(hdr + 12, 0); /* sigfigs */
  wr32le(hdr + 16, WRITER_SNAPLEN);
  wr32le(hdr + 20, DLT_EN10MB); /* LINKTYPE_ETHERNET == DLT_EN10MB == 1 */
  rv = write_bytes(w, hdr, sizeof(hdr));
  if (rv == 0)
    rv = fflush(w->fp) == 0 ? 0 : (errno ? -errno : -EIO);
  if (rv != 0) {
    put_err(err, errlen, "%s: cannot write: %s", path, strerror(-rv));
    fclose(w->fp);
    free(w);
    return rv;
  }
  *out = w;
  return 0;
}

int sfu_cap_writer_put(sfu_cap_writer_t *w, uint64_t ts_us,
                       const uint8_t src_ip4[4], uint16_t sport,
                       const uint8_t dst_ip4[4], uint16_t dport,
                       const uint8_t *data, size_t len) {
  uint8_t h[PCAP_REC_HDR + FRAME_HDR], *eth, *ip, *udp;
  uint32_t sum;
  uint16_t c;
  int rv;

  if (w->err)
    return w->err;
  if (len > SFU_CAP_WRITER_MAX_PAYLOAD)
    return SFU_EMSGSIZE;
  if (ts_us / 1000000u > UINT32_MAX)
    return SFU_EINVAL;

  wr32le(h, (uint32_t)(ts_us / 1000000u));
  wr32le(h + 4, (uint32_t)(ts_us % 1000000u));
  wr32le(h + 8, (uint32_t)(FRAME_HDR + len));
  wr32le(h + 12, (uint32_t)(FRAME_HDR + len));

  /* Ethernet: locally administered unicast MACs, or the IPv4 multicast
   * MAC (RFC 1112 §6.4: 01:00:5e + low 23 bits of the group) */
  eth = h + PCAP_REC_HDR;
  if ((dst_ip4[0] & 0xf0) == 0xe0) {
    memcpy(eth, "\x01\x00\x5e", 3);
    eth[3] = dst_ip4[1] & 0x7f;
    eth[4] = dst_ip4[2];
    eth[5] = dst_ip4[3];
  } else {
    memcpy(eth, "\x02\x00\x00\x00\x00\x02", 6);
  }
  memcpy(eth + 6, "\x02\x00\x00\x00\x00\x01", 6);
  sfu_wr16(eth + 12, ETHERTYPE_IPV4);

  ip = eth + 14;
  w->ip_id++;
  ip[0] = 0x45;
  ip[1] = 0;
  sfu_wr16(ip + 2, (uint16_t)(20 + 8 + len));
  sfu_wr16(ip + 4, w->ip_id);
  sfu_wr16(ip + 6, 0x4000); /* DF */
  ip[8] = 64;
  ip[9] = IPPROTO_UDP_;
  sfu_wr16(ip + 10, 0);
  memcpy(ip + 12, src_ip4, 4);
  memcpy(ip + 16, dst_ip4, 4);
  sfu_wr16(ip + 10, csum_fold(csum_add(0, ip, 20)));

  udp = ip + 20;
  sfu_wr16(udp, sport);
  sfu_wr16(udp + 2, dport);
  sfu_wr16(udp + 4, (uint16_t)(8 + len));
  sfu_wr16(udp + 6, 0);
  /* pseudo-header: src, dst, zero, protocol, UDP length */
  sum = csum_add(0, ip + 12, 8);
  sum += IPPROTO_UDP_ + (uint32_t)(8 + len);
  sum = csum_add(sum, udp, 8);
  /* the payload starts at an even offset from the UDP header */
  sum = csum_add(sum, data, len);
  c = csum_fold(sum);
  sfu_wr16(udp + 6, c == 0 ? 0xffff : c); /* 0 would mean "no checksum" */

  rv = write_bytes(w, h, sizeof(h));
  if (rv == 0)
    rv = write_bytes(w, data, len);
  return rv;
}

uint64_t sfu_cap_writer_bytes(const sfu_cap_writer_t *w) { return w->bytes; }

int sfu_cap_writer_close(sfu_cap_writer_t *w) {
  int rv;

  if (w == NULL)
    return 0;
  rv = w->err;
  if (fflush(w->fp) != 0 && rv == 0)
    rv = errno ? -errno : -EIO;
  if (fclose(w->fp) != 0 && rv == 0)
    rv = errno ? -errno : -EIO;
  free(w);
  return rv;
}

/* ---- RTP streams ------------------------------------------------------ */

int sfu_cap_is_rtp(const uint8_t *d, size_t len) {
  size_t off;
  uint8_t pt;

  if (len < 12 || d[0] >> 6 != 2)
    return 0;
  pt = d[1] & 0x7f;
  if (pt >= 64 && pt <= 95)
    return 0;
  off = 12 + 4 * (size_t)(d[0] & 0x0f);
  if (off > len)
    return 0;
  if (d[0] & 0x10) { /* X: profile(2) length(2) then length words */
    if (len - off < 4)
      return 0;
    off += 4 + 4 * (size_t)sfu_rd16(d + off + 2);
    if (off > len)
      return 0;
  }
  if (d[0] & 0x20) { /* P: the last byte counts the padding, itself too */
    if (d[len - 1] == 0 || d[len - 1] > len - off)
      return 0;
  }
  return 1;
}

static int same_flow(const sfu_cap_stream_t *s, uint32_t ssrc,
                     const sfu_cap_pkt_t *p) {
  return s->ssrc == ssrc && s->sport == p->sport && s->dport == p->dport &&
         s->family == p->family && memcmp(s->src, p->src, 16) == 0 &&
         memcmp(s->dst, p->dst, 16) == 0;
}

/* One more packet of stream `s` (see sfu_cap_stream_t for the counting). */
static void stream_add(sfu_cap_stream_t *s, const sfu_cap_pkt_t *p) {
  uint16_t seq = sfu_rd16(p->data + 2), d;
  uint8_t pt = p->data[1] & 0x7f;

  s->packets++;
  s->bytes += p->len;
  s->last_us = p->ts_us;
  s->last_ts = sfu_rd32(p->data + 4);
  if (pt != s->pt)
    s->pt_changes++;
  d = (uint16_t)(seq - s->max_seq);
  if (d != 0 && d < 0x8000) {
    s->seq_gaps += d - 1u;
    s->seen_mask = d >= 64 ? 1 : s->seen_mask << d | 1;
    s->max_seq = seq;
  } else {
    d = (uint16_t)(s->max_seq - seq);
    s->late++;
    if (d < 64 && !(s->seen_mask >> d & 1)) {
      s->seen_mask |= (uint64_t)1 << d;
      if (s->seq_gaps > 0)
        s->seq_gaps--;
    }
  }
}

int sfu_cap_scan_cap(sfu_cap_t *c, sfu_cap_stream_t *out, int max,
                     uint64_t *non_rtp) {
  sfu_cap_pkt_t p;
  sfu_cap_stream_t *s;
  uint64_t other = 0;
  uint32_t ssrc;
  int n = 0, i, last = -1, rv;

  if (max < 0)
    return SFU_EINVAL;
  while ((rv = sfu_cap_next(c, &p)) == 1) {
    if (!sfu_cap_is_rtp(p.data, p.len)) {
      other++;
      continue;
    }
    ssrc = sfu_rd32(p.data + 8);
    s = NULL;
    if (last >= 0 && same_flow(&out[last], ssrc, &p)) {
      s = &out[last];
    } else {
      for (i = 0; i < n; i++) {
        if (same_flow(&out[i], ssrc, &p)) {
          s = &out[i];
          last = i;
          break;
        }
      }
    }
    if (s == NULL) {
      if (n == max)
        continue;
      s = &out[n];
      last = n++;
      memset(s, 0, sizeof(*s));
      s->ssrc = ssrc;
      s->pt = p.data[1] & 0x7f;
      s->family = p.family;
      memcpy(s->src, p.src, 16);
      memcpy(s->dst, p.dst, 16);
      s->sport = p.sport;
      s->dport = p.dport;
      s->first_us = p.ts_us;
      s->first_ts = sfu_rd32(p.data + 4);
      s->first_seq = sfu_rd16(p.data + 2);
      s->max_seq = s->first_seq;
      s->seen_mask = ~(uint64_t)0; /* numbers before the first: "seen" */
      s->packets = 1;
      s->bytes = p.len;
      s->last_us = p.ts_us;
      s->last_ts = s->first_ts;
      continue;
    }
    stream_add(s, &p);
  }
  if (non_rtp != NULL)
    *non_rtp = other;
  return rv < 0 ? rv : n;
}

int sfu_cap_scan(const char *path, sfu_cap_stream_t *out, int max,
                 uint64_t *non_rtp, char *err, size_t errlen) {
  sfu_cap_t *c;
  int rv;

  if (non_rtp != NULL)
    *non_rtp = 0;
  rv = sfu_cap_open(&c, path, err, errlen);
  if (rv < 0)
    return rv;
  rv = sfu_cap_scan_cap(c, out, max, non_rtp);
  if (rv < 0)
    put_err(err, errlen, "%s", sfu_cap_error(c));
  sfu_cap_close(c);
  return rv;
}
