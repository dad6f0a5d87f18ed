/*
 * ws.h -- client signaling sessions: WebSocket on h2o, authenticated by a
 * join token, relayed to the room process over IPC (docs/signaling.md).
 */
#ifndef SFU_SIGNALING_WS_H
#define SFU_SIGNALING_WS_H

#include <h2o.h>
#include <jansson.h>
#include <uv.h>

#include "signaling/sdp.h"
#include "sfu/node/config.h"
#include "sfu/node/supervisor.h"

typedef struct sfu_ws_s sfu_ws_t;

/* WebSocket close codes of docs/signaling.md. */
enum {
  SFU_WS_BAD_REQUEST = 4000,
  SFU_WS_INVALID_TOKEN = 4001,
  SFU_WS_TOKEN_EXPIRED = 4002,
  SFU_WS_WRONG_ROOM = 4003,
  SFU_WS_ROOM_NOT_FOUND = 4004,
  SFU_WS_ROOM_FULL = 4005,
  SFU_WS_JOIN_TIMEOUT = 4008,
  SFU_WS_REPLACED = 4009,
  SFU_WS_ROOM_CLOSED = 4010,
  SFU_WS_ROOM_CRASHED = 4011,
  SFU_WS_KICKED = 4012,
  SFU_WS_HEARTBEAT_TIMEOUT = 4013,
  SFU_WS_RESUME_FAILED = 4014,
  SFU_WS_MIGRATED = 4015,
  SFU_WS_RELAY_GONE = 4016,      /* the relay process serving it ended: join again */
  SFU_WS_TRY_AGAIN = 1013,       /* RFC 6455 "try again later": signaling backlog */
};

/* Largest client frame: an answer of a full room (sfu_sdp_max_len() of the
 * node's max_participants) as JSON, whose escaping of the SDP's line ends
 * adds about one byte in twenty; at least 64 KiB. */
#define SFU_WS_MAX_MSG(max_participants) (sfu_sdp_max_len(max_participants) * 9 / 8 + 4096)
#define SFU_WS_MAX_QUEUED (1u << 20)  /* bytes queued to a slow client */
#define SFU_WS_JOIN_TIMEOUT_MS 10000
#define SFU_WS_IDLE_TIMEOUT_MS 30000
/* After our close frame, the client has this long to answer it before the
 * socket is closed anyway. */
#define SFU_WS_CLOSE_TIMEOUT_MS 5000
/* Bytes of client messages a session may have waiting while its room's IPC
 * is congested; beyond, it is closed with 1013. */
#define SFU_WS_MAX_HELD (1u << 20)

int sfu_ws_create(sfu_ws_t **out, uv_loop_t *loop, const sfu_config_t *cfg,
                  sfu_supervisor_t *sup);
/* Handles GET /v1/rtc: upgrades or answers an HTTP error. */
int sfu_ws_handle(sfu_ws_t *ws, h2o_req_t *req);
/* Where the backpressure and timeout counters go (`m` borrowed, may be NULL). */
void sfu_ws_set_metrics(sfu_ws_t *ws, sfu_metrics_t *m);
/* The room's IPC drained after congestion: sends what its paused sessions
 * hold and lets them read again (the supervisor's room_drained hook). */
void sfu_ws_on_room_drained(sfu_ws_t *ws, sfu_room_rec_t *r);
/* Room -> client traffic, from the supervisor's IPC handler. */
void sfu_ws_on_room_msg(sfu_ws_t *ws, sfu_room_rec_t *r, const char *type, json_t *msg);
/* The room ended: close its sessions with `code`. */
void sfu_ws_on_room_gone(sfu_ws_t *ws, sfu_room_rec_t *r, int code, const char *reason);
/* A new session id, for a session that is not a WebSocket (sfu/node/whip.c):
 * the room knows sessions by id only. */
uint32_t sfu_ws_new_id(sfu_ws_t *ws);
/* A client_* message `type` of session `session` to its room, `extra`'s
 * members added (taken; NULL = none); a room that cannot be reached is
 * logged under `mod`. Nothing when room is NULL. */
void sfu_ws_tell_room(sfu_room_rec_t *room, uint32_t session, const char *type, json_t *extra,
                      const char *mod);
/* Counts for /metrics and /v1/node. */
int sfu_ws_session_count(const sfu_ws_t *ws);
void sfu_ws_close_all(sfu_ws_t *ws, int code, const char *reason);

/*
 * A room moving to another node (docs/signaling.md "Moving to another
 * node", sfu/node/migrate.c).
 *
 * The old node: _move_prepare() gives every joined or detached session of
 * r a token to resume with on the new node, and lists them: [{"sid",
 * "identity", "resume_token"}] (new reference). _move_tell() sends each of
 * them `migrate` with the new node's ws_url. _move_end() ends the move:
 * moved, each gets `migrated` and every session of r is closed 4015
 * without a word to the room (a session that joined during the move gets
 * the close alone); not moved, each told gets `migrate_abort` {reason}.
 *
 * The new node: _move_in() lists such sessions (`sessions` borrowed) as
 * detached sessions of r, resumable with their tokens for resume_grace_s,
 * and sets ids[sid] = the session id each has here. 0 or an error of
 * sfu_ws_import().
 */
json_t *sfu_ws_move_prepare(sfu_ws_t *ws, sfu_room_rec_t *r);
void sfu_ws_move_tell(sfu_ws_t *ws, sfu_room_rec_t *r, const char *ws_url);
void sfu_ws_move_end(sfu_ws_t *ws, sfu_room_rec_t *r, int moved, const char *reason);
int sfu_ws_move_in(sfu_ws_t *ws, sfu_room_rec_t *r, json_t *sessions, json_t *ids);

/*
 * Upgrade (docs/internals/upgrade.md): client sessions carried across the
 * exec, as if every client's network had dropped.
 *
 * sfu_ws_export: every joined or detached session still bound to a room,
 * as a JSON array (new reference; NULL if out of memory):
 *   [{"id", "room_id", "identity", "sid", "resume_token",
 *     "kept": [text...], "held": [text...]}]
 * "kept" are the room messages a detached session has not sent yet, each
 * the exact text that goes to the socket; "held" the client messages
 * waiting for the room's IPC, each the message's compact JSON text. Both
 * are in order. Sessions in other states (not yet joined, closing) are
 * left out: their clients reconnect and join again. Changes nothing.
 *
 * sfu_ws_import: re-creates such sessions (`sessions` borrowed) as
 * detached now, so each has a full resume_grace_s to resume
 * (docs/signaling.md "Reconnecting") before the room hears client_gone.
 * Each is bound by room_id to a room the supervisor has adopted (call it
 * after sfu_supervisor_adopt() and before the listener accepts); one
 * whose room is not there, or has crashed, is skipped and logged. Held
 * messages go to their room on the next loop turn, as far as its IPC
 * takes them, then on its drains; their sessions stay paused until then.
 * New session ids continue above the highest imported. Counts no metric.
 * Returns the number of sessions restored (skipped ones not counted), or
 * SFU_EINVAL (malformed entry), SFU_E2BIG (kept or held beyond
 * SFU_WS_MAX_QUEUED / SFU_WS_MAX_HELD), SFU_EEXIST (an id twice or
 * already in use) or SFU_ENOMEM, and then nothing is restored.
 */
json_t *sfu_ws_export(sfu_ws_t *ws);
/* The last session id given (rooms may know ids of sessions that were not
 * exported, still joining): the new process continues above it. */
uint32_t sfu_ws_last_id(const sfu_ws_t *ws);
void sfu_ws_skip_ids(sfu_ws_t *ws, uint32_t last);
int sfu_ws_import(sfu_ws_t *ws, json_t *sessions);

#endif
