/*
 * room.h -- the room process's top object: one per process, one thread.
 *
 * It owns the libuv loop's handles for the room, the ICE-lite agent and
 * DTLS certificate shared by all participants, the participants
 * themselves, and the IPC channel to sfud.
 *
 * Files: room.c (lifecycle, IPC, membership, events), negotiation.c (SDP
 * offers and answers), forwarder.c (RTP/RTCP in, forwarding, reports,
 * speaking), sfu/room/proto.c (client messages -> these calls).
 */
#ifndef SFU_ROOM_H
#define SFU_ROOM_H

#include <jansson.h>
#include <uv.h>

#include "sfu/media/dtls.h"
#include "sfu/net/ice.h"
#include "sfu/room/participant.h"
#include "sfu/room/recorder.h"
#include "sfu/media/srtp.h"
#include "signaling/ipc.h"

typedef struct sfu_room_opts_s {
  const char *id;          /* room id given by sfud */
  int max_participants;    /* join limit */
  int empty_timeout_s;     /* end after this long with nobody in */
  int parent_timeout_ms;   /* exit if sfud is silent this long */
  int usage_interval_s;    /* usage checkpoint period */
  int ipc_fd;              /* inherited socketpair end */
  const char *ice_addresses; /* host candidate addresses */
  int port_min, port_max;  /* UDP port range */
  const char *announce;    /* IP announced in candidates, or NULL */
} sfu_room_opts_t;

/* Room-wide packet counters (GET /v1/rooms/{id} stats). */
typedef struct sfu_room_counters_s {
  uint64_t rtp_in;           /* RTP packets received (decrypted) */
  uint64_t rtp_out;          /* RTP packets forwarded */
  uint64_t rtcp_in, rtcp_out;
  uint64_t drop_unknown_ssrc;  /* RTP for no known track */
  uint64_t drop_malformed;   /* bad RTP/RTCP after decryption */
  uint64_t drop_muted;       /* server mute */
  uint64_t drop_send;        /* protect/send failures */
  uint64_t drop_rtx_probe;   /* RTX without an original (padding probes) */
  uint64_t rtx_in, rtx_out;  /* retransmissions received, sent */
  uint64_t keyframes_in;     /* keyframes publishers sent */
  uint64_t plis_sent;        /* keyframe requests to publishers */
  uint64_t plis_throttled;   /* requests folded into one already sent */
  uint64_t plis_received;    /* PLI/FIR from subscribers */
  uint64_t nacks_sent;       /* NACK packets to publishers */
  uint64_t nacks_received;   /* NACK packets from subscribers */
  uint64_t layer_switches;   /* simulcast switches of down-tracks */
} sfu_room_counters_t;

#define SFU_PKT_CAP (1500 + SFU_SRTP_TRAILER)

typedef struct sfu_room_s {
  uv_loop_t *loop;           /* the process's loop */
  sfu_ipc_t ipc;             /* channel to sfud */
  uv_timer_t empty_timer;    /* armed while nobody is in */
  uv_timer_t parent_timer;   /* watchdog on sfud's pings */
  uv_timer_t media_timer;    /* 100 ms: speaking, reports, timeouts, layers */
  uv_timer_t fb_timer;       /* 20 ms while there is video: NACKs upstream */
  sfu_ice_t *ice;            /* one agent, a stream per participant; lazy */
  sfu_ice_opts_t ice_opts;   /* for creating it */
  char ice_addresses[256];   /* storage for ice_opts.addresses */
  char ice_announce[64];     /* storage for ice_opts.announce */
  sfu_dtls_cert_t *cert;     /* one certificate per room; lazy */
  char id[64];               /* room id */
  int max_participants;      /* limit */
  int empty_timeout_s;       /* see opts */
  int parent_timeout_ms;     /* see opts */
  int usage_interval_s;      /* see opts */
  uint64_t last_usage_ms;    /* last periodic checkpoint */
  sfu_participant_t *participants; /* list */
  int participants_n;        /* joined now */
  unsigned joins;            /* participants ever joined */
  uint64_t last_parent_ms;   /* last message from sfud */
  uint64_t started_ms;       /* process start */
  uint64_t media_ticks;      /* media_timer runs */
  uint64_t last_speaking_ms; /* last speaking event */
  int speaking_dirty;        /* the speaking set changed */
  int closing;               /* sfu_room_close() called */
  int pending_closes;        /* handles still closing */
  int exit_code;             /* process exit status once closed */
  char close_reason[32];     /* why */
  sfu_room_counters_t c;     /* packet counters */
  sfu_recorder_t rec;        /* POST /v1/rooms/{id}/capture */
  uint8_t scratch[SFU_PKT_CAP]; /* forward and report buffer */
} sfu_room_t;

/* Sets up everything and tells sfud "ready". 0 or a negative error. */
int sfu_room_init(sfu_room_t *room, uv_loop_t *loop, const sfu_room_opts_t *o);
/* Starts closing: announces it to sfud, closes every handle. uv_run
 * returns once done; room->exit_code is the exit status. */
void sfu_room_close(sfu_room_t *room, const char *reason, int exit_code);

/* --- used by proto.c, negotiation.c, forwarder.c --------------------- */

/* Sends `msg` (reference taken) to one client / to all but `except`. */
void sfu_room_send(sfu_room_t *room, sfu_participant_t *p, json_t *msg);
void sfu_room_broadcast(sfu_room_t *room, sfu_participant_t *except, json_t *msg);
void sfu_room_error(sfu_room_t *room, sfu_participant_t *p, json_t *id,
                    const char *code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
sfu_participant_t *sfu_room_by_session(sfu_room_t *room, uint32_t session);
sfu_participant_t *sfu_room_by_identity(sfu_room_t *room, const char *identity);
json_t *sfu_participant_json(const sfu_participant_t *p);
/* Membership. */
int sfu_room_join(sfu_room_t *room, uint32_t session, const char *identity,
                  const char *name, unsigned grants, json_t *req_id);
void sfu_room_remove(sfu_room_t *room, sfu_participant_t *p, const char *reason,
                     int close_code, const char *close_reason);
void sfu_room_set_muted(sfu_room_t *room, sfu_participant_t *p, int muted, int by_server);
/* Sends sfud a record for the control plane: {type, participant, sid} +
 * `extra` (reference taken). */
void sfu_room_event(sfu_room_t *room, const char *type, sfu_participant_t *p, json_t *extra);
/* Re-derives every participant's usage states from the media state; call
 * after anything that may change who publishes or receives. */
void sfu_room_usage_refresh(sfu_room_t *room);
/* Sends a usage checkpoint of every participant (and `leaving`, if any). */
void sfu_room_usage_checkpoint(sfu_room_t *room, sfu_participant_t *leaving);

/* negotiation.c */
int sfu_neg_on_offer(sfu_room_t *room, sfu_participant_t *p, const char *sdp, json_t *id);
int sfu_neg_on_answer(sfu_room_t *room, sfu_participant_t *p, const char *sdp, long long offer_id);
/* `cand` is a "candidate:..." string, or NULL for end of candidates. */
int sfu_neg_on_candidate(sfu_room_t *room, sfu_participant_t *p, const char *cand);
/* Subscribes p to every other participant's track, and every other
 * participant to p's; sends offers where something changed. */
void sfu_neg_track_added(sfu_room_t *room, sfu_track_t *t);
void sfu_neg_track_removed(sfu_room_t *room, sfu_track_t *t);
void sfu_neg_maybe_offer(sfu_room_t *room, sfu_participant_t *p);
void sfu_neg_free(sfu_participant_t *p);

/* forwarder.c */
void sfu_fwd_on_rtp(sfu_room_t *room, sfu_participant_t *p, uint8_t *buf, size_t len);
void sfu_fwd_on_rtcp(sfu_room_t *room, sfu_participant_t *p, uint8_t *buf, size_t len);
void sfu_fwd_send_reports(sfu_room_t *room);
void sfu_fwd_speaking_tick(sfu_room_t *room, uint64_t now_ms);
sfu_track_t *sfu_track_create(sfu_participant_t *owner);
void sfu_track_destroy(sfu_track_t *t);
void sfu_downtrack_free(sfu_downtrack_t *d);
/* A keyframe of layer k from the publisher (PLI), throttled per layer. */
void sfu_fwd_request_keyframe(sfu_room_t *room, sfu_track_t *t, int k);
/* NACKs upstream (every FB_INTERVAL_MS). */
void sfu_fwd_feedback_tick(sfu_room_t *room, uint64_t now_ms);
/* Simulcast layer choice per video down-track (every media tick). */
void sfu_fwd_layers_tick(sfu_room_t *room, uint64_t now_ms);
int sfu_track_add_down(sfu_track_t *t, sfu_downtrack_t *d);

/* Opens p's transport (ICE stream, DTLS, SRTP) with the room's callbacks. */
int sfu__room_transport_create(sfu_room_t *room, sfu_participant_t *p);

/* proto.c: one client message (from sfud over IPC). */
void sfu_proto_client_msg(sfu_room_t *room, sfu_participant_t *p, json_t *msg);

#endif
