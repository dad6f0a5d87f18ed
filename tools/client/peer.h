/*
 * peer.h -- one simulated call participant: the C client stack.
 *
 * A peer is what a browser tab is to the SFU: it joins a room over the
 * WebSocket signaling (docs/signaling.md) with a token, offers the tracks it
 * publishes, answers the server's offers for everyone else's tracks, and
 * speaks full ICE (controlling, libnice: tools/client/nice.c), DTLS
 * (client) and SRTP over UDP -- the same sfu/net/transport.c,
 * sfu/media/dtls.c and sfu/media/srtp.c the room uses, with the roles
 * reversed.
 *
 * Hundreds of peers share one thread: they run on one libuv loop and one
 * GLib context (tools/client/gloop.c) and one DTLS certificate. Each peer has its
 * own ICE agent (one per leg, below), so peers are as independent as real
 * clients.
 *
 * A peer outlives a lost network on its own, as web/sfu-client.js does
 * (docs/signaling.md, "Reconnecting"): a signaling socket that drops is
 * reopened with backoff and the session resumed with the welcome's resume
 * token while the server's grace lasts, media untouched; a media path that
 * dies (ICE failed, or sends failing) is restarted: new ICE credentials and
 * candidates in a re-offer, DTLS and SRTP kept.
 *
 * A peer follows its room to another node (docs/signaling.md, "Moving to
 * another node"), make-before-break. Its connection to a node is a leg: a
 * signaling socket and the media negotiated on it (an ICE agent of its
 * own, DTLS, SRTP). On `migrate` a second leg opens to the new node
 * (`resume` with the token of the message), offers the same tracks and
 * carries the same media: every packet goes out on both legs. What the
 * old leg receives is what is played (handed up) until `migrated` comes on
 * the old socket; from then on the new leg is the peer's only leg, played,
 * and resumed on the new node when its socket drops. `migrate_abort` drops
 * the new leg. Subscriptions are the same across a move (tools/client/subs.h):
 * the owner sees a track's packets arrive on one sfu_peer_sub_t before
 * and after, and the `migration` callback says when the played leg changed.
 *
 * What a peer sends and how it checks what arrives is up to its owner
 * (tools/replay/): the peer only moves packets, and tells the owner the
 * keyframe requests (PLI, FIR) that come for a track it sends. Received RTP is handed up
 * decrypted, with the subscription (the server's m-line) it belongs to.
 */
#ifndef SFU_CLIENT_PEER_H
#define SFU_CLIENT_PEER_H

#include <stddef.h>
#include <stdint.h>

#include <glib.h>
#include <jansson.h>
#include <uv.h>

#include "sfu/media/dtls.h"
#include "sfu/net/transport.h"

#define SFU_PEER_MAX_PUBS 2 /* the SFU takes one audio and one video track */
#define SFU_PEER_LEVEL_EXT 1 /* id of the audio level extension a peer offers */
#define SFU_PEER_MAX_PACKET 1500 /* largest packet sent on two legs at once */

/* A track the peer publishes: one sendonly m-line of its offer. */
typedef struct sfu_peer_pub_s {
  char kind[8];      /* "audio" or "video" */
  char codec[16];    /* encoding name: opus, VP8, VP9, H264, AV1 */
  int clock;         /* 48000 / 90000 */
  int channels;      /* audio: 2 for Opus */
  int pt;            /* payload type the peer sends with */
  char fmtp[160];    /* a=fmtp parameters, "" for none */
  uint32_t ssrc;     /* SSRC the peer sends with */
} sfu_peer_pub_t;

/* One of the others' tracks, as the server offered it to this peer. */
typedef struct sfu_peer_sub_s {
  char mid[32];          /* the server's m-line */
  char kind[8];
  char owner_sid[72];    /* a=msid stream: the publisher's participant sid */
  char track_id[72];     /* a=msid track: the track id */
  uint32_t ssrc;         /* room-unique SSRC it arrives with */
  int pt;
  char codec[16];
  int clock;
  int active;            /* 0 once the server made the m-line inactive */
  void *user;            /* free for the owner */
} sfu_peer_sub_t;

typedef struct sfu_peer_s sfu_peer_t;

typedef struct sfu_peer_cb_s {
  void *arg;
  /* `welcome` received; `sid` is this peer's participant sid. */
  void (*joined)(void *arg, const char *sid);
  /* DTLS done, SRTP keys in place: media may flow. */
  void (*connected)(void *arg);
  /* A subscription appeared (active) or went inactive. */
  void (*subscription)(void *arg, sfu_peer_sub_t *sub);
  /* Decrypted RTP of a subscription, from the leg that plays; `buf` is
   * writable, valid during the call. */
  void (*rtp)(void *arg, sfu_peer_sub_t *sub, uint8_t *buf, size_t len);
  /* Any other server message (participant_joined, speaking, error, ...). */
  void (*message)(void *arg, json_t *msg);
  /* The session ended: WebSocket closed (its code and reason) and could
   * not be resumed, or the transport failed (code 0, reason says why).
   * Runs once. */
  void (*closed)(void *arg, int code, const char *reason);
  /* The room moves (may be NULL): SFU_PEER_MIGRATING (`detail`: the new
   * node's ws_url), SFU_PEER_MIGRATED (the new leg plays from now on:
   * every packet handed up after this call came from it; `detail` NULL)
   * or SFU_PEER_MIGRATE_ABORTED (the move failed; `detail` says why). */
  void (*migration)(void *arg, int event, const char *detail);
  /* Decrypted RTP of a subscription arriving on a move's new leg before
   * that leg plays (may be NULL): not played, only shown, for an owner
   * that watches what the new connection already carries (a keyframe). */
  void (*standby_rtp)(void *arg, sfu_peer_sub_t *sub, const uint8_t *buf, size_t len);
  /* A node asked for a keyframe of the track we send with `ssrc` (PLI or
   * FIR, on any leg but a retiring one; may be NULL): a publisher answers
   * with a keyframe soon, as an encoder does. */
  void (*keyframe_request)(void *arg, uint32_t ssrc);
} sfu_peer_cb_t;

enum { SFU_PEER_MIGRATING = 1, SFU_PEER_MIGRATED, SFU_PEER_MIGRATE_ABORTED };

typedef struct sfu_peer_opts_s {
  const char *ws_url;      /* ws://host:port/v1/rtc */
  const char *room;        /* room id or name */
  const char *token;       /* join token */
  sfu_peer_pub_t pubs[SFU_PEER_MAX_PUBS];
  int npubs;               /* 0: a listener (one recvonly audio m-line) */
  const char *address;     /* local IPs for host candidates, IPv4 and/or IPv6,
                              comma-separated; NULL = "127.0.0.1" */
  int relay_only;          /* 1: media only through the welcome's TURN servers
                              (turn: URLs over UDP or TCP; libnice has no turns:) */
  int ice_tcp;             /* SFU_ICE_UDP_ONLY (0), SFU_ICE_UDP_TCP or
                              SFU_ICE_TCP_ONLY: ICE-TCP candidates (sfu/net/ice.h) */
  unsigned move_delay_ms;  /* a slow client: waits this long after `migrate`
                              before connecting to the new node (0: at once) */
} sfu_peer_opts_t;

typedef struct sfu_peer_stats_s {
  uint64_t rtp_sent, rtp_received, rtp_unknown; /* unknown: no subscription */
  uint64_t send_errors;
  uint64_t offers, answers;  /* server offers answered, our offers answered */
  uint64_t errors;           /* `error` messages from the server (not glare
                                on our own offers, which the peer handles) */
  uint64_t resumes;          /* signaling sessions resumed after a drop */
  uint64_t resume_attempts;  /* sockets opened to resume, resumed or not */
  uint64_t resume_gap_ms;    /* the last resume: drop to `resumed`; 0 = none */
  uint64_t ice_restarts;     /* ICE restarts begun (path lost, or asked) */
  uint64_t ice_gap_ms;       /* the last one: path lost (or restart asked)
                                to ICE connected again; 0 = none done */
  uint64_t migrations;       /* moves followed to the end: the new node's leg plays */
  uint64_t migrations_aborted; /* moves given up: `migrate_abort`, or the new
                                leg failed before `migrated` */
  uint64_t migrate_ms;       /* the last move: `migrate` to `migrated` */
  uint64_t migration_gap_ms; /* the last move: the last packet played from the
                                old leg to the first from the new one; 0 =
                                none played yet */
  uint64_t rtp_standby;      /* RTP that arrived on a move's new leg before it
                                played (not handed up) */
  uint64_t keyframe_requests; /* PLIs and FIRs for a track we send, any leg */
  uint64_t rejoins;          /* joins again after 4016 (the relay serving it ended) */
} sfu_peer_stats_t;

/* Connects the WebSocket and starts joining. `cert` and `ctx` are shared by
 * every peer of the process and must outlive it. 0 or a negative error. */
int sfu_peer_create(sfu_peer_t **out, uv_loop_t *loop, GMainContext *ctx,
                    sfu_dtls_cert_t *cert, const sfu_peer_opts_t *o, const sfu_peer_cb_t *cb);
/* Protects `buf` (a plain RTP packet, cap >= len + SFU_SRTP_TRAILER) in
 * place and sends it; while the room moves, on both legs (a copy, at most
 * SFU_PEER_MAX_PACKET bytes, for the second). 0 when a leg took it;
 * SFU_EAGAIN when no leg has media up; else the error of the leg that
 * plays (of the new one when only it has media up). */
int sfu_peer_send_rtp(sfu_peer_t *p, uint8_t *buf, size_t len, size_t cap);
int sfu_peer_send_rtcp(sfu_peer_t *p, uint8_t *buf, size_t len, size_t cap);
/* Sends a signaling message (reference taken), e.g. {"type":"mute",...};
 * while the room moves, `mute`, `video_quality` and `leave` go on both
 * sockets. */
int sfu_peer_signal(sfu_peer_t *p, json_t *msg);
/* Says `leave` and closes the WebSocket (both, while the room moves: the
 * new one is dropped); `closed` follows (while the socket is being
 * resumed: at once, from the loop). */
void sfu_peer_leave(sfu_peer_t *p);
/* Restarts ICE now, as a lost path would but on the socket it has (new
 * credentials and candidates, a re-offer); after the resume if the socket
 * is down, after the answer if an offer of ours is out. Nothing before
 * the transport exists. The leg that plays only. */
void sfu_peer_restart_ice(sfu_peer_t *p);
const sfu_peer_stats_t *sfu_peer_stats(const sfu_peer_t *p);
const char *sfu_peer_sid(const sfu_peer_t *p);
/* Media up on the leg that plays. */
int sfu_peer_media_up(const sfu_peer_t *p);
/* Frees the peer; safe inside its own callbacks (freed once unwound). */
void sfu_peer_destroy(sfu_peer_t *p);

#endif
