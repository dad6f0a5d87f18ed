/*
 * supervisor.h -- sfud's room registry: one OS process per room.
 *
 * The supervisor spawns sfu-room with an IPC socketpair on fd 3, pings each
 * room every heartbeat_ms, kills a room that stays silent past
 * heartbeat_timeout_ms, reaps every child, and tells a clean end (the room
 * said it was closing, then exited 0) from a crash (anything else). Crashed
 * rooms stay listed as "crashed" for crashed_retention_s so the control plane
 * can see what happened; then their record is freed.
 *
 * Owned by the loop thread. Room records are reached by id; the registry is
 * a list (rooms per node are bounded by max_rooms, and lookups happen per API
 * request, never per packet).
 */
#ifndef SFU_SUPERVISOR_H
#define SFU_SUPERVISOR_H

#include <jansson.h>
#include <uv.h>

#include "sfu/node/config.h"
#include "sfu/node/metrics.h"
#include "signaling/ipc.h"
#include "signaling/token.h"
#include "sfu/base/vec.h"
#include "sfu/node/validate.h"

typedef enum {
  SFU_ROOM_STARTING, /* spawned, no "ready" yet */
  SFU_ROOM_RUNNING,  /* answering IPC */
  SFU_ROOM_CLOSING,  /* told to end or ending by itself; exit expected */
  SFU_ROOM_CRASHED,  /* died or was killed; kept listed for a while */
} sfu_room_state_t;

#define SFU_ROOM_ID_LEN 19 /* "rm_" + 16 hex */

typedef struct sfu_supervisor_s sfu_supervisor_t;
typedef struct sfu_room_rec_s sfu_room_rec_t;

/* --- moderation -------------------------------------------------------------
 *
 * What the control plane decided about a room's participants, kept by sfud
 * because sfud authenticates joins (sfu_supervisor_admit(), called by
 * ws.c before a join reaches the room). The room keeps its own copy of
 * the server mutes, which it applies (sfu/room/engine.h). All of it lives
 * as long as the room's record and every collection is bounded:
 *
 *   deny list  one entry per kick: the identity, the kick time and the jti
 *              and expiry of the token the identity last joined with. A
 *              token is refused if its jti is listed, or if it is for a
 *              kicked identity and was issued at or before the kick (iat
 *              <= kicked_s, whole seconds). At SFU_MOD_MAX_DENIED entries,
 *              a kick first drops the entries whose token has expired,
 *              then the one that expires first: kicks are never refused.
 *   bans       identities refused whatever their token, until unbanned.
 *              SFU_MOD_MAX_BANS; one more is refused (409 too_many_bans).
 *   mutes      identities the control plane server-muted, present or not.
 *              SFU_MOD_MAX_MUTED; one more is refused (409 too_many_mutes).
 *   tokens     the last token each identity was admitted with (jti,
 *              expiry), so that a kick can deny-list it. SFU_MOD_MAX_TOKENS;
 *              the oldest admission is forgotten first (the iat rule still
 *              refuses a forgotten token).
 */
#define SFU_MOD_MAX_DENIED 10000 /* deny-list entries (kicks) per room */
#define SFU_MOD_MAX_BANS 1000    /* banned identities per room */
#define SFU_MOD_MAX_MUTED 1000   /* server-muted identities per room (= the room's bound) */
#define SFU_MOD_MAX_TOKENS 1024  /* identities whose last token is remembered */
/* How long a kick is kept for when no token of the identity is known (for
 * the order in which a full deny list drops entries): the longest ttl_s
 * sfud mints. */
#define SFU_MOD_KICK_HOLD_S 86400

/* Why sfu_supervisor_admit() refused a join. */
typedef enum {
  SFU_MOD_ADMIT = 0,  /* let it in */
  SFU_MOD_KICKED = 1, /* the token is deny-listed, or older than a kick */
  SFU_MOD_BANNED = 2, /* the identity is banned */
} sfu_mod_verdict_t;

/* One kick: the iat rule for `identity` and, if known, its token's jti. */
typedef struct sfu_mod_deny_s {
  char identity[SFU_TOKEN_MAX_ID + 1];
  char jti[33];        /* the token it last joined with; "" = none known */
  int64_t kicked_s;    /* wall clock seconds: tokens with iat <= this are refused */
  int64_t exp_s;       /* that token's exp, else kicked_s + SFU_MOD_KICK_HOLD_S */
} sfu_mod_deny_t;

typedef struct sfu_mod_ban_s {
  char identity[SFU_TOKEN_MAX_ID + 1];
  char reason[SFU_BAN_MAX_REASON + 1]; /* "" = none given */
  int64_t at_ms;       /* wall clock ms of the ban */
} sfu_mod_ban_t;

typedef struct sfu_mod_token_s {
  char identity[SFU_TOKEN_MAX_ID + 1];
  char jti[33];        /* 32 hex digits */
  int64_t exp_s;       /* the token's exp */
} sfu_mod_token_t;

typedef struct sfu_mod_id_s {
  char identity[SFU_TOKEN_MAX_ID + 1];
} sfu_mod_id_t;

/* A room's moderation state, embedded in its record; freed with it. Each
 * array keeps its items oldest first. */
typedef struct sfu_moderation_s {
  SFU_VEC(sfu_mod_deny_t) denied;  /* <= SFU_MOD_MAX_DENIED */
  SFU_VEC(sfu_mod_ban_t) bans;     /* <= SFU_MOD_MAX_BANS */
  SFU_VEC(sfu_mod_id_t) muted;     /* <= SFU_MOD_MAX_MUTED */
  SFU_VEC(sfu_mod_token_t) tokens; /* <= SFU_MOD_MAX_TOKENS */
  uint64_t kicks;                  /* kicks and bans recorded */
  uint64_t denied_evicted;         /* deny entries dropped to make room */
  uint64_t joins_refused;          /* joins refused as kicked or banned */
} sfu_moderation_t;

/*
 * One room as sfud sees it. Its process and IPC handles are embedded; the
 * record is freed only after both are closed (handles_open == 0) and it is
 * no longer listed.
 */
struct sfu_room_rec_s {
  char id[SFU_ROOM_ID_LEN + 1];      /* "rm_..." */
  char name[SFU_ROOM_MAX_NAME + 1];  /* control plane's name, "" = none */
  int max_participants;              /* limit enforced by the room */
  int empty_timeout_s;               /* room ends after this long empty */
  int max_audio_streams;             /* loudest speakers each listener gets, 0 = all */
  json_t *metadata;                  /* opaque JSON from create, or NULL */
  sfu_room_state_t state;            /* see above */
  char end_reason[32];               /* why it is closing / crashed */
  uv_process_t proc;                 /* the room process */
  sfu_ipc_t ipc;                     /* its channel */
  int pid;                           /* process id */
  int via_zygote;                    /* forked by a zygote (zyg): no proc handle */
  struct sfu_spawner_s *zyg;         /* that zygote */
  int adopted;                       /* exec'd, taken over by an upgrade: no proc
                                        handle, reaped on SIGCHLD by pid */
  int handles_open;                  /* proc + ipc not yet closed */
  int exited;                        /* exit_cb has run */
  int64_t exit_status;               /* from exit_cb */
  int term_signal;                   /* from exit_cb */
  int64_t created_wall_ms;           /* for the API */
  int64_t ended_wall_ms;             /* when it crashed */
  uint64_t spawned_us;               /* monotonic, for spawn latency */
  uint64_t ready_us;                 /* 0 until "ready" */
  uint64_t last_heard_ms;            /* last message from the room */
  uint64_t close_deadline_ms;        /* SIGKILL after this when closing */
  uint64_t ping_seq;                 /* last ping sent */
  int participants;                  /* from the room's last report */
  json_t *stats;                     /* last stats message, or NULL */
  uint64_t pkt_seen[SFU_PKT_N];      /* its packet counters as last added to the
                                        node's (sfu_metrics_add_packets) */
  json_t *people;                    /* sid -> identity of joined participants */
  json_t *totals;                    /* usage ms by kind over the room's life */
  int sessions;                      /* participant sessions that joined */
  sfu_moderation_t mod;              /* kicks, bans, server mutes (above) */
  int foreign;                       /* taken over from an sfud that died
                                        (recover.c): not our child; its end
                                        is its channel closing */
  int save_failed;                   /* its record file could not be written */
  int record_dirty;                  /* changed since its file was written */
  /* a call spread over several room processes (docs/internals/relay.md):
   * a relay is a record of its own, not listed by the API, its id "rl_..."
   * also the id of its link to the origin */
  char origin_id[SFU_ROOM_ID_LEN + 1]; /* a relay: its room's id; "" for a room */
  json_t *link_local[2];             /* a relay: link_local of the origin's end (0)
                                        and its own (1), until both came */
  unsigned relay_next;               /* a room: where the next listener goes */
  int origin_remote;                 /* a relay whose room runs on another node:
                                        its link messages go through the hook
                                        link_out (sfu/node/rrelay.c) */
  int folds;                         /* a relay started by relay_threshold: it ends
                                        again when the room shrinks (fold_back) */
  int moving;                        /* SFU_MOVE_* (sfu/node/migrate.c) */
  int tail_taken;                    /* moved in: the old node's last usage
                                        was added (once, however often sent) */
  int move_ready;                    /* moving in: the room said migration_ready */
  sfu_supervisor_t *sup;             /* owner */
  sfu_room_rec_t *next;              /* registry list */
};

/* A room moving to another node (sfu/node/migrate.c). */
enum { SFU_MOVE_NONE = 0, SFU_MOVE_OUT = 1, SFU_MOVE_IN = 2 };

/* Where room messages meant for clients go (sfu/node/ws.c). */
typedef struct sfu_supervisor_hooks_s {
  void *arg;
  /* client_msg / client_close from a room */
  void (*room_msg)(void *arg, sfu_room_rec_t *r, const char *type, json_t *msg);
  /* the room ended (closing or crashed): its clients must go */
  void (*room_gone)(void *arg, sfu_room_rec_t *r, int crashed);
  /* the room's IPC write queue drained after congestion: paused client
   * sessions may send again (may be NULL) */
  void (*room_drained)(void *arg, sfu_room_rec_t *r);
  /* exported / migration_ready from a room (sfu/node/migrate.c; may be NULL) */
  void (*room_move)(void *arg, sfu_room_rec_t *r, const char *type, json_t *msg);
  /* a link message ({type, link, ...}, borrowed) for the end of link `link`
   * of room `room_id` that runs on another node (sfu/node/rrelay.c; may be
   * NULL: such links then never open) */
  void (*link_out)(void *arg, const char *room_id, const char *link, json_t *msg);
  /* a moderation change of room `room_id` ({type: moderate, action, ...},
   * borrowed) for its relays on other nodes (sfu/node/rrelay.c; may be NULL) */
  void (*moderate)(void *arg, const char *room_id, json_t *msg);
} sfu_supervisor_hooks_t;

void sfu_supervisor_set_hooks(sfu_supervisor_t *s, const sfu_supervisor_hooks_t *h);
/* Where room lifecycle, participant and usage records go (may be NULL). */
struct sfu_events_s;
void sfu_supervisor_set_events(sfu_supervisor_t *s, struct sfu_events_s *e);

/* Created/destroyed with sfud; `metrics` is owned by the caller. */
int sfu_supervisor_create(sfu_supervisor_t **out, uv_loop_t *loop,
                          const sfu_config_t *cfg, sfu_metrics_t *metrics);
/* Spawns a room. Returns 0, SFU_EDRAINING, SFU_ECAPACITY, SFU_EEXIST (name
 * in use by a live room) or the spawn error. `req->metadata` is taken. */
int sfu_supervisor_spawn(sfu_supervisor_t *s, sfu_room_req_t *req,
                         sfu_room_rec_t **out);
/*
 * Relays (docs/internals/relay.md). spawn_relay starts one more process
 * for room `r` (starting or running, not a relay itself), linked to it once both are
 * ready: 0, SFU_EINVAL (r is a relay or not running), SFU_ECAPACITY
 * (cfg->max_relays already) or the spawn error. place: the process a
 * joining client of `r` goes to -- `r` itself for a client that may
 * publish while `r` serves fewer than cfg->relay_threshold (or always,
 * without a threshold), else its running relays in turn (`r` when it has
 * none); when every process of the room serves relay_threshold or more,
 * it also starts one more relay (for the joins after this one).
 * origin: the room a record serves (itself, or a relay's room; NULL if
 * that room is gone). relays_json: a room's relays for the API.
 */
int sfu_supervisor_spawn_relay(sfu_supervisor_t *s, sfu_room_rec_t *r, sfu_room_rec_t **out);
int sfu_supervisor_relay_count(sfu_supervisor_t *s, const sfu_room_rec_t *r); /* live ones */
/* A relay of room `room_id` (its name, limits) that runs on another node,
 * started here with the id the room's node chose (sfu/node/rrelay.c):
 * 0, SFU_EEXIST (that id runs here), SFU_EDRAINING, SFU_ECAPACITY
 * (max_rooms) or the spawn error. */
int sfu_supervisor_spawn_remote_relay(sfu_supervisor_t *s, const char *room_id,
                                      const char *relay_id, const sfu_room_req_t *req,
                                      sfu_room_rec_t **out);
/* The live relay here of room `room_id` (a room of another node) that a
 * client joining it goes to, in turn; NULL if none runs. */
sfu_room_rec_t *sfu_supervisor_relay_for(sfu_supervisor_t *s, const char *room_id);
/* A link message from the other node ({type, link, ...}, borrowed) for
 * the end here: the relay `link` (link_local of the room's end, link_msg,
 * link_close), or the room `room_id` (link_open, link_remote, link_msg,
 * link_close). 0, or SFU_ENOENT when neither is here. */
int sfu_supervisor_link_in(sfu_supervisor_t *s, const char *room_id, const char *link,
                           json_t *msg);
sfu_room_rec_t *sfu_supervisor_place(sfu_supervisor_t *s, sfu_room_rec_t *r, unsigned grants);
sfu_room_rec_t *sfu_supervisor_origin(sfu_supervisor_t *s, sfu_room_rec_t *r);
json_t *sfu_supervisor_relays_json(sfu_supervisor_t *s, const sfu_room_rec_t *r);
/* Ends live relay `relay_id` of room r: what it was (new reference), or
 * NULL if r has no such relay. */
json_t *sfu_supervisor_close_relay(sfu_supervisor_t *s, sfu_room_rec_t *r, const char *relay_id);

/* By id or, failing that, by name among live rooms (relays are not
 * rooms: never found). NULL if unknown. */
sfu_room_rec_t *sfu_supervisor_find(sfu_supervisor_t *s, const char *id);
/* Adds usage ms by kind ({"connected": 1234, ...}) to the room's totals
 * (those of its origin for a relay) and saves its record. */
void sfu_supervisor_add_totals(sfu_supervisor_t *s, sfu_room_rec_t *r, json_t *ms);
/* DELETE: asks a live room to end (SIGKILL after shutdown_grace_ms), or
 * forgets a crashed one. Returns 0. */
int sfu_supervisor_close_room(sfu_supervisor_t *s, sfu_room_rec_t *r,
                              const char *reason);
/* Sends a message to a live room (pings, control requests, client
 * messages). Never refused for the IPC queue's size (control messages must
 * not be lost): bulk senders check sfu_ipc_congested(&r->ipc) first and
 * wait for the room_drained hook. Returns 0, SFU_ECANCELED (room gone) or
 * an error of sfu_ipc_send_control(). */
int sfu_supervisor_send(sfu_room_rec_t *r, json_t *msg);
/*
 * Moderation (see above). `now_s` is the wall clock in seconds, as tokens
 * count it. Each changes r->mod and, where the room must act, sends it the
 * message (kick, server_mute); a send error is returned after the state
 * was recorded.
 *
 * admit: the verdict on a verified token for r (c->room == r->id); on
 *   SFU_MOD_ADMIT the token is remembered as c->identity's last.
 * kick: deny-lists the identity's last token and every token for it issued
 *   up to now_s, then tells the room to remove it (whether present or not).
 *   0 or the send error.
 * ban: bans `identity` (`reason` may be NULL or "") and kicks it. A second
 *   ban of the same identity updates the reason. 0, SFU_E2BIG (already
 *   SFU_MOD_MAX_BANS others) or the send error.
 * unban: 0, or SFU_ENOENT if it was not banned. Tokens issued up to the
 *   ban stay refused (the ban kicked).
 * server_mute: remembers or forgets the mute and tells the room. 0,
 *   SFU_E2BIG (a new identity beyond SFU_MOD_MAX_MUTED) or the send error.
 */
sfu_mod_verdict_t sfu_supervisor_admit(sfu_room_rec_t *r, const sfu_token_claims_t *c,
                                       int64_t now_s);
int sfu_supervisor_kick(sfu_room_rec_t *r, const char *identity, int64_t now_s);
int sfu_supervisor_ban(sfu_room_rec_t *r, const char *identity, const char *reason,
                       int64_t now_s);
int sfu_supervisor_unban(sfu_room_rec_t *r, const char *identity);
int sfu_supervisor_server_mute(sfu_room_rec_t *r, const char *identity, int muted);
/* Moderation across nodes (docs/internals/relay.md "Relays on other
 * nodes"): a room's kicks, bans, unbans and server mutes also go, through
 * hooks.moderate, to its relays on other nodes as {type: moderate, action:
 * kick|ban|unban|server_mute, identity, kicked_s | reason | muted}.
 * moderation_msgs: the room's state as such messages (a new relay's first
 * ones; new reference). moderate: one of them at a relay here of another
 * node's room, applied as the room's node applied it: 0, SFU_EINVAL. */
json_t *sfu_supervisor_moderation_msgs(const sfu_room_rec_t *r);
int sfu_supervisor_moderate(sfu_room_rec_t *relay, json_t *msg);
/* {"bans": [{"identity", "reason", "banned_at_ms"}], "server_muted":
 * [identity], "kicks", "deny_list", "deny_list_evicted", "joins_refused"}
 * (new reference). */
json_t *sfu_moderation_json(const sfu_room_rec_t *r);

/* JSON view for the API; `detail` adds stats and process details. */
json_t *sfu_room_json(const sfu_room_rec_t *r, int detail);
json_t *sfu_supervisor_list_json(sfu_supervisor_t *s);
const char *sfu_room_state_name(sfu_room_state_t st);

/* RTP packets the live rooms sent, from their last reports. */
void sfu_supervisor_packets(const sfu_supervisor_t *s, uint64_t *rtp_out);
void sfu_supervisor_set_draining(sfu_supervisor_t *s, int draining);
int sfu_supervisor_draining(const sfu_supervisor_t *s);
/* Live rooms, crashed rooms listed, participants over live rooms. */
void sfu_supervisor_counts(const sfu_supervisor_t *s, int *live, int *crashed,
                           int *participants);

/* Ends every room (shutdown, then SIGKILL after the grace period) and closes
 * all handles; `done` runs once nothing is left. */
void sfu_supervisor_shutdown(sfu_supervisor_t *s,
                             void (*done)(sfu_supervisor_t *s, void *arg),
                             void *arg);
void sfu_supervisor_destroy(sfu_supervisor_t *s);

/*
 * Upgrade (docs/internals/upgrade.md). _ready_to_export() is 1 when every
 * room's IPC write queue is empty and no room is moving to or from another
 * node. _export() describes every record and
 * the zygote, with their descriptors' close-on-exec cleared (nothing
 * changes otherwise: if the exec fails, sfud goes on); _export_failed()
 * sets close-on-exec again. _adopt() takes such a description over in the
 * new process: the rooms' channels, the zygote as retired, exec'd rooms
 * reaped by pid. Returns the number of rooms adopted, or an error.
 */
/* "<data_dir>/rooms/<id>.<ext>": a live room's record ("json") and the
 * socket it listens on for a new sfud ("sock"). 0, or SFU_E2BIG. */
int sfu_supervisor_room_path(const sfu_config_t *cfg, const char *id, const char *ext, char *out,
                             size_t cap);
int sfu_supervisor_ready_to_export(const sfu_supervisor_t *s);
/* One record as _export() describes it, without its descriptors (a room
 * moving to another node: migrate.c), and such a description loaded into
 * a record (what the control plane and the journal know of the room: its
 * people, usage totals, moderation, metadata, creation time). */
json_t *sfu_supervisor_record_json(const sfu_room_rec_t *r);
void sfu_supervisor_record_load(sfu_room_rec_t *r, json_t *j);
json_t *sfu_supervisor_export(sfu_supervisor_t *s);
void sfu_supervisor_export_failed(sfu_supervisor_t *s);
int sfu_supervisor_adopt(sfu_supervisor_t *s, json_t *state);

#endif
