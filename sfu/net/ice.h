/*
 * ice.h -- an ICE agent and its streams, one stream per participant, one
 * component (rtcp-mux and BUNDLE are required, so RTP, RTCP and DTLS share
 * one 5-tuple). The transport (sfu/net/transport.c) speaks to a stream
 * through this interface only.
 *
 * Two implementations, linked into different programs:
 *   sfu/net/icelite.c   the room's ICE-lite agent (controlled, host
 *                       candidates, one UDP socket and one TCP listener
 *                       (ICE-TCP, passive) per local address shared by
 *                       every stream; created with sfu_ice_create()); a
 *                       stream of it may also check its peer (a link
 *                       between two room processes:
 *                       sfu_ice_stream_set_checking());
 *   tools/client/nice.c the client stack's full, controlling agent on
 *                       libnice and GLib (created with sfu_nice_create(),
 *                       tools/client/nice.h): the independent peer of tests
 *                       and sfu-replay.
 * Every callback runs on the owning loop's thread.
 */
#ifndef SFU_ICE_H
#define SFU_ICE_H

#include <uv.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sfu_ice_s sfu_ice_t;
typedef struct sfu_ice_stream_s sfu_ice_stream_t;

/* Per-stream callbacks, all on the room thread. */
typedef struct sfu_ice_cb_s {
  void *arg;
  /* A datagram that is not STUN (DTLS, SRTP, SRTCP). `buf` is writable and
   * valid during the call only. */
  void (*recv)(void *arg, uint8_t *buf, size_t len);
  /* Component state: 1 connected (a pair nominated), 0 failed/lost. */
  void (*state)(void *arg, int connected);
} sfu_ice_cb_t;

typedef struct sfu_ice_opts_s {
  const char *addresses;   /* comma-separated local IPs for host candidates,
                              IPv4 and/or IPv6 (no brackets) */
  int port_min, port_max;  /* UDP range, 0/0 = any */
  const char *announce;    /* IP written into the candidates of its family
                              instead of theirs (1:1 NAT); NULL = none */
  int full;                /* sfu_nice_create() only: a full, controlling
                              agent instead of a lite one */
  int tcp;                 /* sfu_nice_create() only: SFU_ICE_UDP_ONLY (0),
                              SFU_ICE_UDP_TCP (ICE-TCP candidates too) or
                              SFU_ICE_TCP_ONLY. The room's agent always
                              offers both and ignores it */
} sfu_ice_opts_t;

enum { SFU_ICE_UDP_ONLY = 0, SFU_ICE_UDP_TCP = 1, SFU_ICE_TCP_ONLY = 2 }; /* opts.tcp */

/* The room's ICE-lite agent (sfu/net/icelite.c): sockets on `loop`, bound
 * to o->addresses, one UDP socket and one TCP listener per address of
 * either family (an address whose listener cannot be opened serves UDP
 * only, with a warning); o->full is refused. The process must ignore
 * SIGPIPE (writes to TCP connections a peer reset; sfu-room does).
 * 0 or a negative error: SFU_EINVAL for an address that is not an IP
 * literal or is unspecified, or an announce that is not one or has no
 * address of its family; a bind's error (-errno, SFU_EBUSY when the port
 * range is full). */
int sfu_ice_create(sfu_ice_t **out, uv_loop_t *loop, const sfu_ice_opts_t *o);
/* Either kind of agent. Streams still alive are orphaned: their owners
 * destroy them later. */
void sfu_ice_destroy(sfu_ice_t *ice);

/* Adds a stream, gathers host candidates (synchronous for host-only). */
int sfu_ice_stream_create(sfu_ice_t *ice, const sfu_ice_cb_t *cb, sfu_ice_stream_t **out);
void sfu_ice_stream_destroy(sfu_ice_stream_t *st);
/* Local ufrag/pwd (stable until restart). */
const char *sfu_ice_ufrag(const sfu_ice_stream_t *st);
const char *sfu_ice_pwd(const sfu_ice_stream_t *st);
/* Local candidates as SDP attribute values ("candidate:1 1 UDP ..."),
 * written into `out` (up to `max`); returns the count. */
int sfu_ice_local_candidates(sfu_ice_stream_t *st, char out[][200], int max);
/* Remote credentials from the peer's SDP; a change means an ICE restart by
 * the peer: new local credentials are generated (returns 1 then). */
int sfu_ice_set_remote(sfu_ice_stream_t *st, const char *ufrag, const char *pwd);
/* A trickled or SDP remote candidate ("candidate:..." or "a=candidate:...").
 * 0 or SFU_EINVAL (not a candidate line). The room's agent only parses it,
 * but for a checking stream (below). */
int sfu_ice_add_remote_candidate(sfu_ice_stream_t *st, const char *cand);
/*
 * The room's agent (icelite.c): whether stream `st` also sends checks
 * (`on` 1) or only answers its peer's (0, the default). Two ICE-lite
 * agents never connect on their own; the two ends of a link between room
 * processes, each a stream of its room's agent, both check.
 *
 * A checking stream keeps the UDP remote candidates given to
 * sfu_ice_add_remote_candidate() from then on, at most 4 (TCP ones, host
 * names, a family the agent has no socket of, duplicates and any beyond
 * the 4th are accepted and not kept), and sends each a Binding request:
 * USERNAME "<remote ufrag>:<local ufrag>", PRIORITY, ICE-CONTROLLING,
 * USE-CANDIDATE, MESSAGE-INTEGRITY with the remote password, FINGERPRINT,
 * from the agent's first UDP socket of the candidate's family. One goes
 * when the candidate is added if the remote credentials are known (else
 * when sfu_ice_set_remote() first gives them), then one every 2 s. The
 * peer validates and nominates the pair from them and keeps its consent
 * (RFC 7675) by them; this stream is validated, connected and kept alive
 * by the peer's checks, as any stream. The answers are dropped and
 * counted. An ICE restart (sfu_ice_set_remote() with a new ufrag) forgets
 * the candidates: the new session's, added again, are checked with the
 * new credentials. Off forgets them and stops; so do destroying the
 * stream and the agent. Turn it on before adding the candidates.
 * 0, or SFU_EINVAL for a destroyed or orphaned stream.
 */
int sfu_ice_stream_set_checking(sfu_ice_stream_t *st, int on);
/* Sends one datagram on the selected pair. 0 or SFU_EAGAIN (no pair yet;
 * in the room, also a TCP pair whose connection's output buffer is full:
 * the datagram is dropped and counted) / SFU_EMSGSIZE / SFU_EPROTO. */
int sfu_ice_send(sfu_ice_stream_t *st, const uint8_t *buf, size_t len);
/* Media datagrams dropped for coming from an address the peer used before
 * (an ICE restart or eviction retired it). */
uint64_t sfu_ice_drop_foreign(const sfu_ice_stream_t *st);
/* The room's agent (icelite.c): media datagrams from an address no stream
 * validated. The room's drop_foreign_source is this plus every stream's
 * sfu_ice_drop_foreign(), closed ones included. */
uint64_t sfu_ice_drop_unknown(const sfu_ice_t *ice);

/* The room's agent's ICE-TCP counters (icelite.c; docs/internals/icelite.md,
 * "ICE over TCP"). All count since the agent started, but `open` and
 * `selected`, which say how things are now. */
typedef struct sfu_ice_tcp_stats_s {
  uint64_t accepted;       /* connections accepted */
  uint64_t refused;        /* closed at once: the agent's connection limit */
  uint64_t open;           /* connections open now */
  uint64_t selected;       /* streams whose selected pair is a TCP connection now */
  uint64_t selections;     /* times a stream's selected pair moved onto a TCP connection */
  uint64_t close_first;    /* first frame not a Binding request authenticated for a stream */
  uint64_t close_timeout;  /* no such request within the first seconds */
  uint64_t close_idle;     /* no frame for the consent timeout */
  uint64_t close_framing;  /* RFC 4571 framing error: a length over SFU_TCPFRAME_MAX */
  uint64_t close_foreign;  /* a check for another stream than the connection's */
  uint64_t close_limit;    /* one connection too many for its stream */
  uint64_t close_peer;     /* closed by the peer, or a socket error */
  uint64_t close_left;     /* its stream was destroyed (the participant left) */
  uint64_t rx_frames;      /* frames read */
  uint64_t tx_frames;      /* frames written or queued */
  uint64_t tx_queued;      /* ... of them queued: the socket's buffer was full */
  uint64_t tx_drop_full;   /* frames dropped: the connection's output buffer was full */
  uint64_t tx_drop_error;  /* frames lost: a write failed (the connection closes) */
} sfu_ice_tcp_stats_t;

/* The room's agent (icelite.c): its ICE-TCP counters; the pointer lives as
 * long as the agent. */
const sfu_ice_tcp_stats_t *sfu_ice_tcp_stats(const sfu_ice_t *ice);

#endif
