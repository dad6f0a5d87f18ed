/*
 * engine.h -- the call engine: everything a room decides, apart from its
 * sockets and its clock.
 *
 * One sfu_room_t is one call: participants, the tracks they publish, the
 * down-tracks that carry each track to each subscriber, offer/answer,
 * forwarding with sequence/timestamp/picture-id rebasing, simulcast layer
 * choice, RTCP (receiver and sender reports, NACK/RTX, PLI/FIR, REMB),
 * speaking, mute, kick and usage periods.
 *
 * Sans-IO (the shape of str0m's Rtc and quicly): every input is a call
 * that carries the current time --
 *
 *   sfu_room_on_control()    a control message from sfud (a client joined,
 *                            left or sent signaling; a kick; a server mute)
 *   sfu_room_on_rtp/rtcp()   a packet from a participant, decrypted
 *   sfu_room_on_transport()  a participant's transport connected / failed
 *   sfu_room_tick()          time passed (due by sfu_room_next_tick())
 *
 * -- and every output goes through one small I/O interface,
 * sfu_room_io_t: a packet to a participant (to be protected and sent), a
 * message for sfud (to one client, to all, an event or usage record for
 * the control plane), and the few transport operations offer/answer
 * needs. The engine reads no clock, touches no socket, loop or global, and
 * allocates nothing per packet. The room process (sfu/room/shell.c) feeds
 * it from libuv; tests/test_engine.c feeds it on a simulated clock and
 * records what comes out.
 *
 * Files: engine.c (lifecycle, control messages, membership, usage,
 * timers), negotiation.c (SDP offers and answers), forwarder.c (RTP/RTCP
 * in, forwarding, reports, layers, speaking), loudest.c (the loudest
 * speakers each listener gets in a large room), proto.c (client messages ->
 * these calls), migration.c (a call moving to another node's room),
 * relay.c (a call spread over several processes: links, remote
 * participants).
 */
#ifndef SFU_ROOM_ENGINE_H
#define SFU_ROOM_ENGINE_H

#include <jansson.h>

#include "sfu/media/srtp.h"
#include "sfu/room/participant.h"
#include "signaling/token.h"

/* The time an input happens at: monotonic (timers, rates, RTP arithmetic)
 * and wall clock (what leaves the room: NTP in sender reports, record
 * times). A simulated clock sets both. */
typedef struct sfu_time_s {
  uint64_t mono_us;
  int64_t wall_us;
} sfu_time_t;

typedef struct sfu_room_io_s sfu_room_io_t;

/* What the engine asks of the world. Every callback runs inside an engine
 * call, on its thread; none may call back into the engine. */
struct sfu_room_io_s {
  void *data; /* the owner's */
  /* A message for sfud (reference taken): {type: client_msg, session|all,
   * msg}, {type: client_close, session, code, reason}, {type: event,
   * event}, {type: usage, records} (docs/internals/ipc.md). */
  void (*emit)(sfu_room_io_t *io, json_t *msg);
  /* A plain RTP (rtcp = 0) or RTCP packet for p, in `buf` (writable, `cap`
   * >= len + SFU_SRTP_TRAILER): protected in place and sent, or queued.
   * 0, or a negative error (the engine counts a drop). */
  int (*send)(sfu_room_io_t *io, sfu_participant_t *p, int rtcp, uint8_t *buf, size_t len,
              size_t cap);
  /* p's transport (ICE stream, DTLS, SRTP): opened at p's first offer and
   * stored in p->transport, which the engine never looks into. */
  int (*transport_open)(sfu_room_io_t *io, sfu_participant_t *p);
  void (*transport_close)(sfu_room_io_t *io, sfu_participant_t *p);
  /* The peer's transport attributes from its offer's first live m-line;
   * our answer's a=setup comes back in *our_setup. */
  int (*transport_remote)(sfu_room_io_t *io, sfu_participant_t *p, const sfu_sdp_media_t *m,
                          const char **our_setup);
  /* A trickled remote candidate ("candidate:..."): 0 or SFU_EINVAL. */
  int (*transport_candidate)(sfu_room_io_t *io, sfu_participant_t *p, const char *cand);
  /* Our transport attributes on an m-line (credentials, candidates,
   * fingerprint, setup). */
  void (*transport_local)(sfu_room_io_t *io, sfu_participant_t *p, sfu_sdp_media_t *m,
                          const char *setup);
  /* When p's transport last received a datagram (DTLS or media; STUN
   * checks are answered by the ICE agent and do not count), in the
   * engine's monotonic microseconds: media timeouts. */
  uint64_t (*transport_last_rx_us)(sfu_room_io_t *io, sfu_participant_t *p);
  /* The room became empty (1) or not (0): the owner's empty timeout. */
  void (*empty)(sfu_room_io_t *io, int empty);
};

typedef struct sfu_room_opts_s {
  const char *id;          /* room id given by sfud */
  int max_participants;    /* join limit */
  int usage_interval_s;    /* usage checkpoint period */
  int max_audio_streams;   /* each listener gets the N loudest speakers
                              (loudest.c); 0 = every speaker */
  int media_timeout_s;     /* media silent (or the transport failed) this
                              long after connecting: the participant is
                              removed; 0 = SFU_ROOM_MEDIA_TIMEOUT_US */
  int dynacast_stop_ms;    /* a layer nobody takes is stopped at its
                              publisher after this; 0 = SFU_ROOM_DYNACAST_STOP_MS */
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
  uint64_t twcc_in;          /* transport-wide feedback from subscribers */
  uint64_t twcc_out;         /* and to publishers */
  uint64_t probes;           /* probe clusters sent to subscribers */
  uint64_t padding_out;      /* their padding packets */
  uint64_t bw_pauses;        /* videos paused for a subscriber's estimate */
  uint64_t dynacast_msgs;    /* subscribed_layers told to publishers */
  uint64_t drop_svc;         /* SVC packets (VP9; AV1 by its Dependency
                                Descriptor) above a subscriber's spatial layer */
  uint64_t drop_temporal;    /* VP8, AV1, H.264 packets above a subscriber's temporal layer */
  uint64_t dd_in;            /* packets with a Dependency Descriptor read */
  uint64_t dd_bad;           /* ... that could not be read (no structure yet,
                                malformed): forwarded whole, without it */
  uint64_t dd_masked;        /* descriptors sent with the active decode
                                targets of their subscriber written in */
  uint64_t relay_in;         /* RTP packets from other processes of the call */
  uint64_t relay_out;        /* RTP packets sent to them (once per link) */
  uint64_t drop_relay_ssrc;  /* RTP over a link for no stream it described */
  uint64_t red_in;           /* audio packets publishers sent as RED (RFC 2198) */
  uint64_t red_out;          /* audio packets forwarded as RED */
  uint64_t drop_not_loudest; /* audio not forwarded to a listener: not among
                                its max_audio_streams loudest (loudest.c) */
} sfu_room_counters_t;

#define SFU_PKT_CAP (1500 + SFU_SRTP_TRAILER)

/* Engine periods. */
#define SFU_ROOM_MEDIA_TICK_US 100000 /* speaking, layers, usage, reports */
#define SFU_ROOM_FB_TICK_US 20000     /* NACKs upstream, while there is video */

/* An identity the control plane server-muted (sfu_room_t.server_muted). */
typedef struct sfu_room_ident_s {
  char id[SFU_TOKEN_MAX_ID + 1]; /* a valid id (sfu_token_valid_id()) */
} sfu_room_ident_t;

/* Server mutes remembered per room, present or not (sfud refuses more with
 * 409 too_many_mutes, so the room only meets this bound if the two
 * disagree: it then mutes a present participant without remembering). */
#define SFU_ROOM_MAX_SERVER_MUTED 1000

typedef struct sfu_room_s {
  sfu_room_io_t *io;         /* outputs */
  uint64_t now_us;           /* monotonic time of the input being handled */
  int64_t wall_us;           /* wall time of it */
  char id[64];               /* room id */
  int max_participants;      /* limit */
  int usage_interval_s;      /* see opts */
  int max_audio_streams;     /* see opts; 0 = no selection */
  uint64_t media_timeout_us; /* see opts */
  uint64_t dynacast_stop_ms; /* see opts (the default resolved) */
  SFU_VEC(sfu_track_t *) ranked; /* loudest.c's scratch: the audio tracks,
                                loudest first, during a media tick (grows to
                                the most tracks seen, freed at the end) */
  uint64_t last_usage_us;    /* last periodic checkpoint */
  sfu_participant_t *participants; /* list: ours, and remote ones (p->via) */
  sfu_participant_t *links;  /* links to the call's other processes (relay.c) */
  int participants_n;        /* joined now */
  int audience_n;            /* of them, audience members (p->audience) */
  int audience_told;         /* the room-wide audience clients last heard */
  unsigned joins;            /* participants ever joined */
  uint64_t next_media_us;    /* next media tick */
  uint64_t next_fb_us;       /* next feedback tick, 0 = none (no video) */
  uint64_t media_ticks;      /* media ticks run */
  uint64_t last_speaking_us; /* last speaking event */
  int speaking_dirty;        /* the speaking set changed */
  int empty;                 /* nobody is in (as last told to io->empty) */
  int ended;                 /* sfu_room_end() called */
  int relay_ending;          /* a relay ends while its room goes on: its
                                clients are closed with 4016 (relay.c) */
  int moved;                 /* handed over to another node (migrate_out):
                                nothing more goes to sfud */
  int migration_wait;        /* participants moved in: report migration_ready
                                once all are connected again */
  /* Identities the control plane muted (server_mute), whether present or
   * not: a participant joining -- first time, after leaving, or replacing
   * its session -- starts server-muted if its identity is here. Lives as
   * long as the room (freed by sfu_room_end()); at most
   * SFU_ROOM_MAX_SERVER_MUTED, in the order they were muted. */
  SFU_VEC(sfu_room_ident_t) server_muted;
  sfu_room_counters_t c;     /* packet counters */
  uint8_t scratch[SFU_PKT_CAP]; /* forward and report buffer */
  uint8_t scratch2[SFU_PKT_CAP]; /* a resent copy before its RTX wrapping */
} sfu_room_t;

/* --- the engine's inputs -------------------------------------------- */

/* Sets up an empty room at `now` (nothing is emitted). 0 or SFU_EINVAL. */
int sfu_room_init(sfu_room_t *room, const sfu_room_opts_t *o, sfu_room_io_t *io, sfu_time_t now);
/* Removes everyone (4010 "room closed"; 4016 "relay gone: join again" for
 * a relay whose room goes on: room->relay_ending) and frees what the room
 * holds; no input is taken after it. */
void sfu_room_end(sfu_room_t *room, sfu_time_t now);
/* A message from sfud: client_join, client_gone, client_msg, session_token
 * (its session's resume token, kept for a new sfud: sfu/room/shell.h), server_mute,
 * kick, the moves of migration.c: export, migrate_in, migrate_commit,
 * migrate_out, and the links of relay.c: link_open, link_remote, link_msg,
 * link_close (docs/internals/ipc.md). 0 once handled (a kick of someone who
 * already left is nothing to do; a server mute is remembered for the
 * identity whether or not it is present, and applies when it joins),
 * SFU_EINVAL for a malformed join (answered with client_close 4000) or a
 * server_mute without a valid identity, SFU_ENOENT for another type. */
int sfu_room_on_control(sfu_room_t *room, const char *type, json_t *msg, sfu_time_t now);
/* A decrypted RTP packet / RTCP compound from p; `buf` is writable and
 * valid during the call only. */
void sfu_room_on_rtp(sfu_room_t *room, sfu_participant_t *p, uint8_t *buf, size_t len,
                     sfu_time_t now);
void sfu_room_on_rtcp(sfu_room_t *room, sfu_participant_t *p, uint8_t *buf, size_t len,
                      sfu_time_t now);
/* p's transport: SRTP keys in place (SFU_TP_CONNECTED) or ICE/DTLS gave up
 * (SFU_TP_FAILED: p is removed unless it recovers within the media
 * timeout). */
enum { SFU_TP_CONNECTED = 1, SFU_TP_FAILED = 2 };
void sfu_room_on_transport(sfu_room_t *room, sfu_participant_t *p, int state, sfu_time_t now);
/* Runs what is due at `now`; sfu_room_next_tick() says when to call next
 * (monotonic microseconds). */
void sfu_room_tick(sfu_room_t *room, sfu_time_t now);
uint64_t sfu_room_next_tick(const sfu_room_t *room);

/* Engine timeouts. */
#define SFU_ROOM_MEDIA_TIMEOUT_US 15000000   /* transport silent: participant gone */
#define SFU_ROOM_DYNACAST_STOP_MS 3000       /* dynacast: a layer without a taker
                                                this long is stopped (forwarder.c) */
#define SFU_ROOM_CONNECT_TIMEOUT_US 30000000 /* transport never connected */

/* --- inside the engine: engine.c, proto.c, negotiation.c, forwarder.c -- */

/* Sends `msg` (reference taken) to one client / to all but `except`. */
void sfu_room_send(sfu_room_t *room, sfu_participant_t *p, json_t *msg);
void sfu_room_broadcast(sfu_room_t *room, sfu_participant_t *except, json_t *msg);
void sfu_room_error(sfu_room_t *room, sfu_participant_t *p, json_t *id,
                    const char *code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
sfu_participant_t *sfu_room_by_session(sfu_room_t *room, uint32_t session);
sfu_participant_t *sfu_room_by_identity(sfu_room_t *room, const char *identity);
json_t *sfu_participant_json(const sfu_participant_t *p);
/* Membership. A join is welcomed with `req_id` echoed and, when it is a
 * non-empty array, `ice_servers` (the client's TURN servers and
 * credentials, from sfud: docs/signaling.md); both borrowed, may be NULL. */
int sfu_room_join(sfu_room_t *room, uint32_t session, const char *identity,
                  const char *name, unsigned grants, json_t *req_id, json_t *ice_servers);
/* The participant just joined with `session` is a WHEP viewer following
 * `follow` ("" or NULL: the first publisher): whep.c. */
void sfu_room_set_fixed(sfu_room_t *room, uint32_t session, const char *follow);
void sfu_room_remove(sfu_room_t *room, sfu_participant_t *p, const char *reason,
                     int close_code, const char *close_reason);
void sfu_room_set_muted(sfu_room_t *room, sfu_participant_t *p, int muted, int by_server);
/* Sends sfud a record for the control plane: {type, participant, sid} +
 * `extra` (reference taken). */
void sfu_room_event(sfu_room_t *room, const char *type, sfu_participant_t *p, json_t *extra);
/* p's track in *slot (may be NULL: nothing happens) goes: the
 * track_unpublished record, its down-tracks removed (inactive in each
 * subscriber's next offer), the track freed, *slot cleared, the links told. */
void sfu_room_unpublish(sfu_room_t *room, sfu_participant_t *p, sfu_track_t **slot);
/* Re-derives every participant's usage states from the media state; call
 * after anything that may change who publishes or receives (the meters
 * integrate each state from the instant it changes: no record is needed
 * then). */
void sfu_room_usage_refresh(sfu_room_t *room);
/* Sends usage records: `leaving`'s final one, or (NULL) the periodic
 * checkpoint of every participant, every usage_interval_s. Joins and mute
 * changes send none: a participant toggling its mute costs no record. */
void sfu_room_usage_checkpoint(sfu_room_t *room, sfu_participant_t *leaving);

/* negotiation.c */
/* A client's offer; `sources` (borrowed, may be NULL) is its checked
 * "sources" object, {mid: "camera"|"screen"} (signaling/message.h). */
int sfu_neg_on_offer(sfu_room_t *room, sfu_participant_t *p, const char *sdp, json_t *sources,
                     json_t *id);
int sfu_neg_on_answer(sfu_room_t *room, sfu_participant_t *p, const char *sdp, long long offer_id);
/* `cand` is a "candidate:..." string, or NULL for end of candidates. */
int sfu_neg_on_candidate(sfu_room_t *room, sfu_participant_t *p, const char *cand);
/* Subscribes p to every other participant's track, and every other
 * participant to p's; sends offers where something changed. */
void sfu_neg_track_added(sfu_room_t *room, sfu_track_t *t);
void sfu_neg_track_removed(sfu_room_t *room, sfu_track_t *t);
void sfu_neg_maybe_offer(sfu_room_t *room, sfu_participant_t *p);
void sfu_neg_free(sfu_participant_t *p);
/* A WHEP viewer's recvonly m-line `om` of its offer: a fixed down-track
 * answered sendonly in `am` (transport attributes already there); 0, or
 * -1 when it cannot be (no codec the SFU forwards): the caller answers it
 * inactive. */
int sfu_neg_fixed_line(sfu_room_t *room, sfu_participant_t *p, const sfu_sdp_media_t *om,
                       sfu_sdp_media_t *am, const char *setup);

/* whep.c: what a WHEP viewer's fixed m-lines carry. Binds every viewer's
 * m-lines to the tracks of the publisher it follows now; call after any
 * change of who publishes what (a track published or gone, a join). */
void sfu_whep_rebind(sfu_room_t *room);

/* forwarder.c */
void sfu_fwd_on_rtp(sfu_room_t *room, sfu_participant_t *p, uint8_t *buf, size_t len);
void sfu_fwd_on_rtcp(sfu_room_t *room, sfu_participant_t *p, uint8_t *buf, size_t len);
void sfu_fwd_send_reports(sfu_room_t *room);
/* SRs due to REMB-only video subscribers (every media tick). */
void sfu_fwd_send_queue_srs(sfu_room_t *room);
sfu_track_t *sfu_track_create(sfu_participant_t *owner);
void sfu_track_destroy(sfu_track_t *t);
void sfu_downtrack_free(sfu_downtrack_t *d);
/* Frees what a layer holds (its NACK generator and retransmission cache). */
void sfu_layer_release(sfu_layer_t *l);
/* A keyframe of layer k from the publisher (PLI), throttled per layer. */
void sfu_fwd_request_keyframe(sfu_room_t *room, sfu_track_t *t, int k);
/* NACKs and transport-wide feedback upstream, probe padding down (every
 * SFU_ROOM_FB_TICK_US). */
void sfu_fwd_feedback_tick(sfu_room_t *room);
/* Subscribers' estimates shared out, simulcast layer choice per video
 * down-track (every media tick). */
void sfu_fwd_layers_tick(sfu_room_t *room);
/* p's answer kept the transport-wide number in our packets under id `ext`
 * (0: it did not): its downlink's estimator starts (docs/internals/bwe.md). */
void sfu_fwd_twcc_out(sfu_participant_t *p, int ext);
/* Frees p's transport-wide state (its transport is gone). */
void sfu_fwd_twcc_free(sfu_participant_t *p);

/* loudest.c: with max_audio_streams, which audio down-tracks forward (every
 * media tick; d->unheard). Frees its ranking at sfu_room_end(). */
void sfu_loudest_tick(sfu_room_t *room);
void sfu_loudest_free(sfu_room_t *room);
int sfu_track_add_down(sfu_track_t *t, sfu_downtrack_t *d);

/* migration.c (docs/internals/migration.md). The room's state as another
 * node's room takes it over: participants and identities, mute states, the
 * ids of their tracks, their video subscriptions' choices, the server
 * mutes (new reference). */
json_t *sfu_room_export(const sfu_room_t *room);
/* migrate_in: that state, its sessions renumbered by the new node: 0, or
 * SFU_EINVAL (nothing is taken then). */
int sfu_room_import(sfu_room_t *room, json_t *state);
/* migrate_commit: the moved participants count usage from cut_wall_ms on. */
void sfu_room_migrate_commit(sfu_room_t *room, int64_t cut_wall_ms);
/* migrate_out: every participant's usage closed at cut_wall_ms, then the
 * room falls silent (room->moved) until sfu_room_end(). */
void sfu_room_migrate_out(sfu_room_t *room, int64_t cut_wall_ms);
/* Every media tick: migration_ready once the moved-in participants are
 * connected, negotiated and publishing again. */
void sfu_room_migration_check(sfu_room_t *room);
/* p's choices for the video `d` carries, as it had them before its move. */
void sfu_room_apply_pref(sfu_participant_t *p, sfu_downtrack_t *d);
/* A usage record of p's period up to (now_ms, wall_ms) (new reference). */
json_t *sfu_room_usage_record(sfu_participant_t *p, uint64_t now_ms, int64_t wall_ms, int final);

/* relay.c (docs/internals/relay.md): link_open, link_remote, link_close,
 * link_msg: 0 once handled, SFU_EINVAL / SFU_EEXIST for a malformed or
 * conflicting one, SFU_ENOENT for another type (or an unknown link). */
int sfu_relay_on_control(sfu_room_t *room, const char *type, json_t *msg);
/* A link's transport connected (the other end learns who is here) or
 * failed (its remote participants leave until it comes back). */
void sfu_relay_on_transport(sfu_room_t *room, sfu_participant_t *link, int state);
/* The remote participant whose stream over `link` has this SSRC, or NULL. */
sfu_participant_t *sfu_relay_owner(sfu_room_t *room, const sfu_participant_t *link,
                                   uint32_t ssrc);
void sfu_relay_on_rtcp(sfu_room_t *room, sfu_participant_t *link, uint8_t *buf, size_t len);
/* A packet of `from`'s tracks, as it came, to every link that is up but
 * `from`'s own. */
void sfu_relay_forward(sfu_room_t *room, const sfu_participant_t *from, const uint8_t *pkt,
                       size_t len, int rtcp);
/* Participants whose description changed (link_dirty) to the links: after
 * a client message (an offer publishes) and every media tick. */
void sfu_relay_flush(sfu_room_t *room);
/* p left: the links hear of it. */
void sfu_relay_gone(sfu_room_t *room, sfu_participant_t *p, const char *reason);
/* Closes every link (sfu_room_end()). */
void sfu_relay_end(sfu_room_t *room);
/* A link's audience count beyond this is refused (a malformed message). */
#define SFU_RELAY_MAX_AUDIENCE 10000000
/* The audience of the whole call: ours and what every link says it serves. */
int sfu_relay_audience(const sfu_room_t *room);
/* Each link that is up is told the audience on our side of it, if that
 * changed: ours and the other links'. */
void sfu_relay_tell_audience(sfu_room_t *room);
/* The links, for the room's stats (new reference). */
json_t *sfu_relay_json(const sfu_room_t *room);
/* forwarder.c: NACKed packets of layer `l` resent to `to` as they came. */
void sfu_fwd_resend_raw(sfu_room_t *room, sfu_participant_t *to, sfu_layer_t *l,
                        const uint16_t *seqs, int n);
/* engine.c: tells the owner whether nobody, ours or remote, is in. */
void sfu_room_set_empty(sfu_room_t *room);

/* proto.c: one client message (from sfud over IPC). */
void sfu_proto_client_msg(sfu_room_t *room, sfu_participant_t *p, json_t *msg);

#endif
