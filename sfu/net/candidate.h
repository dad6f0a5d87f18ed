/*
 * candidate.h -- a peer's ICE candidate line, parsed and checked: RFC 8839
 * 5.1, with RFC 6544 4.5's tcptype for TCP candidates. The room's ICE-lite
 * agent (sfu/net/icelite.c) learns the peer's addresses from the peer's
 * checks, so a candidate is only parsed, to refuse garbage from the
 * signaling -- but for a checking stream (a link between room processes),
 * which sends checks to the UDP candidates it is given.
 *
 * A view over the caller's bytes (docs/style.md): offsets of the text
 * fields, values of the numbers. Nothing is allocated; the line is not
 * changed and need not be NUL-terminated.
 */
#ifndef SFU_NET_CANDIDATE_H
#define SFU_NET_CANDIDATE_H

#include <stddef.h>
#include <stdint.h>

#define SFU_CANDIDATE_MAX 1023 /* longest line taken (the signaling's bound) */

enum { SFU_CANDIDATE_UDP = 0, SFU_CANDIDATE_TCP = 1 };  /* transport */
enum { SFU_CANDIDATE_HOST = 0, SFU_CANDIDATE_SRFLX, SFU_CANDIDATE_PRFLX,
       SFU_CANDIDATE_RELAY };                           /* type */
enum { SFU_CANDIDATE_TCP_NONE = 0, SFU_CANDIDATE_TCP_ACTIVE, SFU_CANDIDATE_TCP_PASSIVE,
       SFU_CANDIDATE_TCP_SO };                          /* tcptype */

/* One parsed candidate: offsets into the line given to
 * sfu_candidate_parse(), valid as long as it is. */
typedef struct sfu_candidate_s {
  size_t foundation_off, foundation_len; /* 1-32 ICE characters */
  int component;                         /* 1..256 */
  int transport;                         /* SFU_CANDIDATE_UDP / _TCP */
  uint32_t priority;                     /* 1..2^32-1 */
  size_t addr_off, addr_len;             /* connection-address: an IPv4 or IPv6
                                            literal (no brackets) or a host name
                                            (an mDNS "....local" name) */
  uint16_t port;                         /* 0..65535 (0 and 9: an active TCP
                                            candidate's placeholder) */
  int type;                              /* SFU_CANDIDATE_HOST, _SRFLX, _PRFLX, _RELAY */
  int tcptype;                           /* TCP: SFU_CANDIDATE_TCP_ACTIVE, _PASSIVE
                                            or _SO; UDP: SFU_CANDIDATE_TCP_NONE */
} sfu_candidate_t;

/*
 * Parses `line` (`len` bytes): "candidate:..." as in
 * RTCIceCandidate.candidate, or the same after "a=". Fields are separated
 * by spaces; after `typ`, extensions are name-value pairs (raddr, rport,
 * tcptype, generation, ufrag, network-id, ...), the known ones checked:
 * raddr an address as above, rport a port, tcptype one of active, passive,
 * so, on TCP candidates only, where it is required. Unknown extensions are
 * skipped. 0 and *c filled, or SFU_EINVAL with *err_desc (if err_desc is
 * not NULL) pointing at a static string saying what was wrong (NULL on
 * success); *c is then undefined.
 */
int sfu_candidate_parse(const char *line, size_t len, sfu_candidate_t *c, const char **err_desc);

#endif
