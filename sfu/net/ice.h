/*
 * ice.h -- an ICE agent and its streams, one stream per participant, one
 * component (rtcp-mux and BUNDLE are required, so RTP, RTCP and DTLS share
 * one 5-tuple). The transport (sfu/net/transport.c) speaks to a stream
 * through this interface only.
 *
 * Two implementations, linked into different programs:
 *   sfu/net/icelite.c   the room's ICE-lite agent (controlled, host
 *                       candidates, one UDP socket per local address shared
 *                       by every stream; created with sfu_ice_create());
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
} sfu_ice_opts_t;

/* The room's ICE-lite agent (sfu/net/icelite.c): sockets on `loop`, bound
 * to o->addresses, one per address of either family; o->full is refused.
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
/* A trickled or SDP remote candidate ("candidate:..." or "a=candidate:..."). */
int sfu_ice_add_remote_candidate(sfu_ice_stream_t *st, const char *cand);
/* Sends one datagram on the selected pair. 0 or SFU_EAGAIN (no pair yet) /
 * SFU_EPROTO. */
int sfu_ice_send(sfu_ice_stream_t *st, const uint8_t *buf, size_t len);
/* Media datagrams dropped for coming from an address the peer used before
 * (an ICE restart or eviction retired it). */
uint64_t sfu_ice_drop_foreign(const sfu_ice_stream_t *st);
/* The room's agent (icelite.c): media datagrams from an address no stream
 * validated. The room's drop_foreign_source is this plus every stream's
 * sfu_ice_drop_foreign(), closed ones included. */
uint64_t sfu_ice_drop_unknown(const sfu_ice_t *ice);

#endif
