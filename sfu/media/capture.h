/*
 * capture.h -- reading UDP datagrams out of pcap and pcapng files, writing
 * RTP/RTCP packets into pcap files, and listing the RTP streams of a
 * capture. Used by sfu-replay (tools/replay/) and by the tests that feed
 * recorded media into a room.
 *
 * Reading. libpcap opens the file (pcap or pcapng, microsecond time
 * stamps) and hands over one link-layer record at a time;
 * sfu_cap_parse_frame() peels the link layer, IPv4/IPv6 and UDP off it and
 * leaves a view of the UDP payload inside libpcap's record buffer. Nothing
 * is copied and nothing is allocated per packet. Anything that is not a
 * whole, unfragmented UDP datagram is skipped and counted in
 * sfu_cap_stats_t, never fatal: a capture of a real network holds ARP, TCP,
 * ICMP, fragments and frames cut by the snap length.
 *
 * Link types: Ethernet (DLT_EN10MB, any number of 802.1Q / 802.1ad tags),
 * Linux cooked v1 and v2 (DLT_LINUX_SLL, DLT_LINUX_SLL2), raw IP (DLT_RAW,
 * LINKTYPE_RAW, DLT_IPV4, DLT_IPV6) and BSD loopback (DLT_NULL, DLT_LOOP).
 * A file of any other link type is refused by sfu_cap_open().
 *
 * Writing. sfu_cap_writer_put() wraps a datagram in synthesized Ethernet,
 * IPv4 and UDP headers (both checksums filled in) and appends a classic
 * pcap record: LINKTYPE_ETHERNET, microsecond time stamps, little-endian,
 * so tcpdump, Wireshark, tcpreplay and sfu_cap_open() all read it.
 *
 * Streams. sfu_cap_scan() reads a whole capture and groups the datagrams
 * that look like RTP (sfu_cap_is_rtp()) by SSRC and 5-tuple.
 *
 * Errors are negative SFU_E* codes (sfu/base/sfu.h); every failure of a
 * function that reads a file also leaves a one-line message that names
 * the file and says what is wrong, fit to show a user as is.
 */
#ifndef SFU_TOOLS_CAPTURE_H
#define SFU_TOOLS_CAPTURE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sfu/base/sfu.h"

/* An open capture being read: see sfu_cap_open(). Opaque. */
typedef struct sfu_cap_s sfu_cap_t;

/*
 * One UDP datagram out of a capture. Addresses are in network byte order
 * as on the wire: an IPv4 address fills src[0..3] and the other 12 bytes
 * are zero. `data` points into the reader's record buffer (or into the
 * frame given to sfu_cap_parse_frame()) and is valid until the next call.
 */
typedef struct sfu_cap_pkt_s {
  uint64_t ts_us;           /* capture time, microseconds since the epoch */
  int family;               /* AF_INET or AF_INET6 */
  uint8_t src[16], dst[16]; /* addresses (IPv4 in the first 4 bytes) */
  uint16_t sport, dport;    /* UDP ports, host order */
  const uint8_t *data;      /* UDP payload, valid until the next call */
  size_t len;               /* its length: the UDP length field minus 8 */
  uint64_t frame;           /* 1-based record number in the file (as
                               Wireshark numbers them); set by
                               sfu_cap_next(), untouched by parse_frame */
} sfu_cap_pkt_t;

/*
 * What a reader has seen so far. Every record read counts once in
 * `frames` and once in exactly one of the other fields, so
 * frames == udp + the five skipped_* counters at all times.
 */
typedef struct sfu_cap_stats_s {
  uint64_t frames;            /* records read */
  uint64_t udp;               /* UDP datagrams returned */
  uint64_t skipped_not_udp;   /* ARP, TCP, ICMP, non-IP, ... */
  uint64_t skipped_truncated; /* cut by the snap length before the end of
                                 the UDP datagram */
  uint64_t skipped_fragment;  /* UDP in an IPv4 fragment (MF or offset) or
                                 behind an IPv6 fragment header */
  uint64_t skipped_linktype;  /* link type sfu_cap_parse_frame() lacks */
  uint64_t skipped_malformed; /* whole frame, inconsistent headers */
} sfu_cap_stats_t;

/*
 * Opens the pcap or pcapng file at `path` and reads its first record, so
 * that a file with nothing in it fails here rather than at the first
 * sfu_cap_next(). On success *out is the reader and 0 is returned. On
 * failure *out is NULL, a message naming the file goes to err (errlen
 * bytes, always NUL-terminated; err may be NULL) and the return is
 *
 *   -errno        the file cannot be opened (SFU_ENOENT, SFU_EACCES, ...)
 *   SFU_EPROTO    not a pcap or pcapng file, a damaged header, a link type
 *                 this reader does not parse, or a pcapng whose interfaces
 *                 differ in link type or snap length (libpcap 1.10
 *                 refuses those)
 *   SFU_ENOENT    also: a valid capture holding no packet ("empty capture")
 *   SFU_ENOMEM    out of memory
 *
 * A pcapng with several interfaces of the same link type and snap length
 * reads as one stream of records.
 */
int sfu_cap_open(sfu_cap_t **out, const char *path, char *err, size_t errlen);

/*
 * Same, from a stdio stream opened for reading (a file, or fmemopen() over
 * bytes in memory: the fuzz target). The reader owns `fp` from this call
 * on, whatever the outcome: it is closed on failure or by sfu_cap_close().
 * `name` only labels messages.
 */
int sfu_cap_open_fp(sfu_cap_t **out, FILE *fp, const char *name, char *err,
                    size_t errlen);

/*
 * Next UDP datagram of the capture: 1 and *pkt filled (its `data` valid
 * until the next call on `c`), 0 at the end of the file, or a negative
 * SFU_E* code with a message from sfu_cap_error(): SFU_EPROTO when the
 * file ends in the middle of a record or a record is damaged beyond what
 * libpcap can step over (a pcapng interface of another link type counts
 * here too when it appears after the first packet). Skipped records only
 * bump counters. Once 0 or an error has been returned, later calls return
 * the same.
 */
int sfu_cap_next(sfu_cap_t *c, sfu_cap_pkt_t *pkt);

/* Counters so far; the pointer is valid until sfu_cap_close(). */
const sfu_cap_stats_t *sfu_cap_stats(const sfu_cap_t *c);

/* The last error message, or "" if there was none. */
const char *sfu_cap_error(const sfu_cap_t *c);

/* The file's link type (a DLT_* value, as pcap_datalink() says). */
int sfu_cap_linktype(const sfu_cap_t *c);

/* Closes the file and frees the reader. NULL is a no-op. */
void sfu_cap_close(sfu_cap_t *c);

/*
 * Parses one link-layer frame: `caplen` bytes at `frame` were captured of
 * a frame `wirelen` bytes long on the wire (wirelen > caplen when the snap
 * length cut it). Returns 1 and fills every field of *pkt but ts_us and
 * frame for a whole UDP datagram (pkt->data points into `frame`), or 0 if
 * the frame is skipped. Counts the frame in *st (if not NULL): frames, and
 * one of udp / skipped_*; a frame that needed bytes past caplen is
 * skipped_truncated when wirelen > caplen and skipped_malformed otherwise.
 * `linktype` is a DLT_* value (LINKTYPE_RAW, 101, is taken as DLT_RAW).
 * Reads only [frame, frame + caplen); checksums are not verified (captures
 * of outgoing traffic carry offloaded, unfilled ones).
 *
 * Callers: sfu_cap_next(), tests/fuzz/fuzz_capture.c.
 */
int sfu_cap_parse_frame(int linktype, const uint8_t *frame, size_t caplen,
                        size_t wirelen, sfu_cap_pkt_t *pkt,
                        sfu_cap_stats_t *st);

/* ---- writer ----------------------------------------------------------- */

/*
 * A pcap file being written. Each packet becomes one record of
 *
 *   Ethernet (02:00:00:00:00:01 -> 02:00:00:00:00:02, or the RFC 1112
 *   multicast MAC for a 224.0.0.0/4 destination), IPv4 (DF, TTL 64, an
 *   identification that counts up from 1, header checksum), UDP (checksum
 *   over the pseudo-header), payload
 *
 * with the given time stamp (microseconds since the epoch). Packets go
 * through a stdio buffer: no allocation per packet.
 */
typedef struct sfu_cap_writer_s sfu_cap_writer_t;

/* Maximum payload for sfu_cap_writer_put(): 65535 - 20 (IPv4) - 8 (UDP). */
#define SFU_CAP_WRITER_MAX_PAYLOAD 65507

/*
 * Creates (truncates) `path` and writes the pcap file header. 0 and *out,
 * or -errno with a message in err (may be NULL) and *out = NULL.
 */
int sfu_cap_writer_open(sfu_cap_writer_t **out, const char *path, char *err,
                        size_t errlen);

/*
 * Appends one datagram. 0, SFU_EMSGSIZE if len > SFU_CAP_WRITER_MAX_PAYLOAD,
 * SFU_EINVAL if ts_us is past what pcap's 32-bit seconds hold (2106), or
 * -errno if the write failed (the writer is then unusable: later puts
 * return the same error and close returns it too).
 */
int sfu_cap_writer_put(sfu_cap_writer_t *w, uint64_t ts_us,
                       const uint8_t src_ip4[4], uint16_t sport,
                       const uint8_t dst_ip4[4], uint16_t dport,
                       const uint8_t *data, size_t len);

/* Bytes of the file so far (header and records, buffered ones included),
 * for callers that bound the file size. */
uint64_t sfu_cap_writer_bytes(const sfu_cap_writer_t *w);

/* Flushes, closes and frees (NULL is a no-op). 0 if every byte reached the
 * file, else the first -errno seen. */
int sfu_cap_writer_close(sfu_cap_writer_t *w);

/* ---- RTP streams ------------------------------------------------------ */

/*
 * One RTP stream of a capture: the packets with one SSRC between one pair
 * of addresses and ports. Sequence numbers are followed as RFC 3550 A.1
 * does, across wraps: a packet ahead of the highest seen advances it and
 * adds the numbers it jumped over to seq_gaps; a late packet (behind the
 * highest) that fills one of the last 64 numbers takes it back out, so
 * reordering alone leaves seq_gaps at 0 and duplicates are not counted.
 */
typedef struct sfu_cap_stream_s {
  uint32_t ssrc;             /* synchronization source */
  uint8_t pt;                /* payload type of the first packet */
  int family;                /* AF_INET or AF_INET6 */
  uint8_t src[16], dst[16];  /* as in sfu_cap_pkt_t */
  uint16_t sport, dport;     /* host order */
  uint64_t packets, bytes;   /* datagrams, UDP payload bytes */
  uint64_t first_us, last_us;/* capture times of the first/last packet */
  uint32_t first_ts, last_ts;/* RTP timestamps of the first/last packet
                                (file order) */
  uint16_t first_seq;        /* sequence number of the first packet */
  uint64_t seq_gaps;         /* missing sequence numbers seen */
  uint16_t max_seq;          /* highest sequence number (RFC 3550 order) */
  uint64_t late;             /* packets behind the highest: reordered or
                                duplicated */
  uint64_t pt_changes;       /* packets whose PT differs from `pt` */
  uint64_t seen_mask;        /* scan state: bit i set when max_seq - i
                                was received (numbers before first_seq
                                count as received) */
} sfu_cap_stream_t;

/*
 * 1 if the UDP payload looks like RTP: at least 12 bytes, version 2, a
 * payload type outside 64..95 (RFC 5761 §4: with the marker bit masked,
 * the RTCP packet types 192..223 land there), and the CSRC list,
 * extension block and padding count all fitting in `len`. RTCP, STUN
 * (first byte 0..3) and DTLS (20..63) all fail the version test or the
 * payload-type test. Else 0.
 */
int sfu_cap_is_rtp(const uint8_t *d, size_t len);

/*
 * Reads the capture at `path` to the end and lists its RTP streams in the
 * order of their first packet. At most `max` are listed: packets of
 * streams that start after `max` are already listed are left out of every
 * count. Returns the number listed (0..max), or a negative code with a
 * message in err as for sfu_cap_open() / sfu_cap_next(). *non_rtp (if not
 * NULL) gets the number of UDP datagrams that are not RTP.
 */
int sfu_cap_scan(const char *path, sfu_cap_stream_t *out, int max,
                 uint64_t *non_rtp, char *err, size_t errlen);

/*
 * Same over an open reader, from its current position to the end; the
 * message of a read error is in sfu_cap_error(c). The caller still closes
 * `c`. No allocation: the per-stream state lives in `out`.
 */
int sfu_cap_scan_cap(sfu_cap_t *c, sfu_cap_stream_t *out, int max,
                     uint64_t *non_rtp);

#endif
