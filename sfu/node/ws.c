/*
 * ws.c -- client signaling sessions on h2o's WebSocket (wslay).
 *
 * A session moves AWAIT_JOIN -> JOINING -> JOINED -> (closed). sfud checks
 * the join token itself (signature, expiry, room) and never looks into SDP:
 * once a session is joining, every client message is wrapped as
 *
 *   {"type":"client_msg","session":N,"msg":{...}}
 *   {"type":"client_msg","all":true,"except":N,"msg":{...}}  (N = 0: none)
 *
 * and sent to the room over IPC; the room answers the same way and sfud
 * writes "msg" to the socket. sfud handles only `join`, `ping` and `leave`.
 * A join reaches the room as client_join with what sfud checked in the
 * token and, when TURN is configured, the client's fresh TURN credentials
 * (`ice_servers`, sfu/node/turn.h): sfud holds the TURN secret, the room
 * only copies them into the welcome.
 *
 * Re-entrancy. h2o calls our message callback from inside
 * h2o_websocket_proceed(), and the close callback (arg == NULL) from there
 * too, after which the connection must be freed. So nothing here calls
 * proceed directly: sending queues the frame in wslay and marks the session
 * dirty; a uv_idle handle flushes dirty sessions once per loop turn (which
 * also batches several messages into one write). A session is freed only in
 * the close callback, and is first removed from the dirty list.
 *
 * Bounds: frames <= SFU_WS_MAX_MSG (from the node's max_participants: 360
 * KiB at the default 100, never below 64 KiB; wslay closes with 1009
 * beyond), at most 1 MiB
 * queued to a slow client (then it is closed), sessions per room are
 * bounded by the room's max_participants (the room refuses the join).
 *
 * Every state has a timer (checked by the 1 s tick): AWAIT_JOIN and JOINING
 * end after SFU_WS_JOIN_TIMEOUT_MS, JOINED after SFU_WS_IDLE_TIMEOUT_MS
 * without a message, and CLOSING -- our close frame queued, the client's
 * awaited -- after SFU_WS_CLOSE_TIMEOUT_MS: then the socket is closed
 * whatever the client does. A client that never answers the close, or
 * never reads, holds a descriptor for at most that long.
 *
 * Backpressure towards the room (docs/internals/ipc.md). Join and leave
 * (client_join, client_gone) are control messages and always go out. A
 * client message goes out only while the room's IPC channel is not
 * congested; otherwise it is held in the session's queue (in order, at
 * most SFU_WS_MAX_HELD bytes) and the session is paused: a uv_prepare
 * handle stops reading its socket before every poll (h2o re-arms the read
 * after each callback, so the stop is repeated), and the kernel's TCP
 * window pushes back on the client. When the channel drains to its low
 * watermark the held messages go out, one per session in turn, and the
 * sessions read again. A session whose held queue would exceed its bound
 * is closed with 1013 "signaling backlog": no message is dropped silently.
 *
 * Resume (docs/signaling.md "Reconnecting"). The welcome carries a resume
 * token (16 random bytes, hex) that sfud adds on its way to the client.
 * When a joined session's socket drops (closes without a `leave` and
 * without the client's close frame: a lost network, not a goodbye), the
 * session is DETACHED, not gone: the room is not told, room messages for it are kept
 * in order (at most SFU_WS_MAX_QUEUED bytes), and for resume_grace_s a new
 * socket may take it over with {"type":"resume","room","resume_token"}.
 * The new socket's session and the old one swap connections: the old
 * session (its IPC address, identity, sid, room) lives on with the new
 * socket, gets `resumed` with a fresh token (each token works once), then
 * what was kept; the throwaway session is freed, or, if the old socket was
 * still open (a client that noticed a dead path before the server did),
 * closes that socket with 4009. A grace that ends, a kept queue that
 * overflows, a kick or the room ending turns a detached session into a
 * gone one (client_gone "disconnected" to the room, as before resume
 * existed); the tick frees it. A token that matches nothing, in this room,
 * is answered 4014 and the client joins afresh.
 *
 * Upgrade (docs/internals/upgrade.md). An exec'ing sfud loses every socket
 * at once, so sfu_ws_export() describes each joined or detached session as
 * a detached one would be: IPC address, room, identity, sid, resume token,
 * kept texts as they would be written and held messages as JSON text.
 * sfu_ws_import() lists them again as WS_DETACHED from now, so the resume
 * above and the grace of the tick apply unchanged and the room sees no
 * leave; a session with held messages is paused as before, and they are
 * offered to its room on the next flush, as after a drain (the new IPC
 * channel will never report a drain it has not seen congested). Sessions
 * not yet joined are not carried: their clients join again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <h2o/websocket.h>
#include <openssl/crypto.h>

#include "sfu/base/log.h"
#include "sfu/base/sfu.h"
#include "signaling/message.h"
#include "signaling/token.h"
#include "sfu/node/turn.h"
#include "sfu/node/ws.h"

typedef enum { WS_AWAIT_JOIN, WS_JOINING, WS_JOINED, WS_DETACHED, WS_CLOSING } ws_state_t;

/* A room message kept for a detached session, as the text to send. */
typedef struct kept_s kept_t;
struct kept_s {
  kept_t *next;                  /* arrival order */
  size_t len;
  char text[];
};

/* A client message held while the room's IPC is congested. */
typedef struct held_s held_t;
struct held_s {
  held_t *next;                  /* queue order */
  json_t *msg;                   /* the client's message (owned) */
  size_t bytes;                  /* its size on the wire, for the bound */
};

typedef struct session_s session_t;
struct session_s {
  sfu_ws_t *ws;                  /* owner */
  h2o_websocket_conn_t *conn;    /* the socket; NULL once closed */
  uint32_t id;                   /* IPC address of this session */
  ws_state_t state;              /* see above */
  sfu_room_rec_t *room;          /* joined room; NULL when it is gone */
  char identity[SFU_TOKEN_MAX_ID + 1];
  char sid[64];                  /* the room's participant sid, from the welcome */
  char resume_token[SFU_RESUME_TOKEN_LEN + 1]; /* current one; "" = none */
  char move_token[SFU_RESUME_TOKEN_LEN + 1]; /* its room is moving: the token it
                                               resumes with on the new node; "" = none */
  uint64_t detached_ms;          /* WS_DETACHED since */
  kept_t *kept, *kept_tail;      /* room messages while detached */
  size_t kept_bytes;             /* their bytes, <= SFU_WS_MAX_QUEUED */
  uint64_t opened_ms;            /* connected, then sent its join: join timeouts */
  uint64_t last_rx_ms;           /* for the idle timeout */
  uint64_t closing_ms;           /* entered WS_CLOSING; for the close timeout */
  uint16_t close_code;           /* a close frame waiting for the messages queued
                                    before it (send_close()); 0 = none */
  char close_reason[124];
  held_t *held, *held_tail;      /* messages waiting for the room's IPC */
  size_t held_bytes;             /* their bytes, <= SFU_WS_MAX_HELD */
  int paused;                    /* reads stopped until the room drains */
  double tokens;                 /* rate limit: messages that may come now */
  uint64_t limited_ms;           /* last rate_limited error sent */
  int dirty;                     /* on the flush list */
  session_t *next;               /* all sessions */
  session_t *next_dirty;         /* flush list */
};

struct sfu_ws_s {
  uv_loop_t *loop;
  const sfu_config_t *cfg;
  sfu_supervisor_t *sup;
  uv_idle_t flush;               /* runs while sessions are dirty or redrain is set */
  uv_timer_t tick;               /* timeouts, once a second */
  uv_prepare_t hold;             /* keeps paused sessions' reads stopped */
  sfu_metrics_t *metrics;        /* counters, or NULL */
  int paused;                    /* sessions paused */
  uint64_t congestion_logged_ms; /* last "IPC backlog" line */
  uint64_t congestions_unlogged; /* episodes since */
  session_t *sessions;
  session_t *dirty;
  uint32_t next_id;              /* last session id given; new ones are above */
  int count;                     /* sessions listed, in every state */
  int redrain;                   /* imported held messages: offer them to their
                                    rooms on the next flush (sfu_ws_import) */
};

/* --- output ------------------------------------------------------------- */

static void on_flush(uv_idle_t *h);

static void mark_dirty(session_t *s) {
  if (s->dirty || !s->conn) return;
  s->dirty = 1;
  s->next_dirty = s->ws->dirty;
  s->ws->dirty = s;
  uv_idle_start(&s->ws->flush, on_flush);
}

static void close_session(session_t *s, int code, const char *reason);

static void drop_kept(session_t *s) {
  while (s->kept) {
    kept_t *k = s->kept;
    s->kept = k->next;
    free(k);
  }
  s->kept_tail = NULL;
  s->kept_bytes = 0;
}

/* A detached session's room message: kept for the resume, in order. */
/* Appends a text to the kept list: 0, SFU_E2BIG (over its bound) or
 * SFU_ENOMEM. */
static int kept_append(session_t *s, const char *text, size_t len) {
  kept_t *k;
  if (s->kept_bytes + len > SFU_WS_MAX_QUEUED) return SFU_E2BIG;
  if (!(k = malloc(sizeof(*k) + len))) return SFU_ENOMEM;
  k->next = NULL;
  k->len = len;
  memcpy(k->text, text, len);
  if (s->kept_tail)
    s->kept_tail->next = k;
  else
    s->kept = k;
  s->kept_tail = k;
  s->kept_bytes += len;
  return 0;
}

static void keep(session_t *s, const char *text, size_t len) {
  if (!s->room) return; /* being dropped */
  if (kept_append(s, text, len) != 0) {
    sfu_log(SFU_LOG_WARN, "ws", "session %u (%s): too much kept while disconnected; dropping it",
            s->id, s->identity);
    close_session(s, 1008, "send queue overflow");
  }
}

static void send_text(session_t *s, const char *text, size_t len) {
  if (s->state == WS_DETACHED) {
    keep(s, text, len);
    return;
  }
  if (!s->conn || s->state == WS_CLOSING) return;
  if (wslay_event_get_queued_msg_length(s->conn->ws_ctx) + len > SFU_WS_MAX_QUEUED) {
    sfu_log(SFU_LOG_WARN, "ws", "session %u (%s): client too slow, closing", s->id, s->identity);
    close_session(s, 1008, "send queue overflow");
    return;
  }
  struct wslay_event_msg m = {WSLAY_TEXT_FRAME, (const uint8_t *)text, len};
  wslay_event_queue_msg(s->conn->ws_ctx, &m);
  mark_dirty(s);
}

static void send_json(session_t *s, json_t *j) {
  char *text = json_dumps(j, JSON_COMPACT);
  json_decref(j);
  if (text) send_text(s, text, strlen(text));
  free(text);
}

static void send_error(session_t *s, json_t *id, const char *code, const char *msg) {
  json_t *j = json_pack("{s:s, s:s, s:s}", "type", "error", "code", code, "message", msg);
  if (id) json_object_set(j, "id", id);
  send_json(s, j);
}

void sfu_ws_tell_room(sfu_room_rec_t *room, uint32_t session, const char *type, json_t *extra,
                      const char *mod) {
  if (!room) {
    json_decref(extra);
    return;
  }
  json_t *m = json_pack("{s:s, s:I}", "type", type, "session", (json_int_t)session);
  if (extra) json_object_update(m, extra);
  json_decref(extra);
  int rv = sfu_supervisor_send(room, m);
  json_decref(m);
  if (rv != 0 && rv != SFU_ECANCELED)
    sfu_log(SFU_LOG_WARN, mod, "session %u: cannot reach room %s: %s", session, room->id,
            sfu_strerror(rv));
}

static void tell_room(session_t *s, const char *type, json_t *extra) {
  sfu_ws_tell_room(s->room, s->id, type, extra, "ws");
}

static void drop_held(session_t *s) {
  while (s->held) {
    held_t *h = s->held;
    s->held = h->next;
    json_decref(h->msg);
    free(h);
  }
  s->held_tail = NULL;
  s->held_bytes = 0;
  if (s->paused) {
    s->paused = 0;
    s->ws->paused--;
  }
}

/* wslay sends control frames before queued messages, and nothing after a
 * close: a close frame queued behind a message (`migrated`, an error)
 * would overtake it, and the message would be lost. So the close is queued
 * only once what came before it is in h2o's write buffer. Not from inside
 * proceed() (wslay's callbacks): from on_flush and the tick. */
static void send_close(session_t *s) {
  wslay_event_context_ptr ctx = s->conn->ws_ctx;
  if (wslay_event_get_queued_msg_count(ctx) && s->conn->sock) wslay_event_send(ctx);
  if (wslay_event_get_queued_msg_count(ctx)) return; /* the socket is busy: later */
  wslay_event_queue_close(ctx, s->close_code, (const uint8_t *)s->close_reason,
                          strlen(s->close_reason));
  s->close_code = 0;
}

static void close_session(session_t *s, int code, const char *reason) {
  if (s->state == WS_DETACHED) { /* no socket: gone for good, freed by the tick */
    if (s->room) {
      tell_room(s, "client_gone", json_pack("{s:s}", "reason", "disconnected"));
      if (s->ws->metrics) s->ws->metrics->ws_resume_expired++;
    }
    s->room = NULL;
    drop_held(s);
    drop_kept(s);
    return;
  }
  if (!s->conn || s->state == WS_CLOSING) return;
  if (s->state == WS_JOINING || s->state == WS_JOINED)
    tell_room(s, "client_gone", json_pack("{s:s}", "reason", code == 1000 ? "left" : code == SFU_WS_HEARTBEAT_TIMEOUT ? "timeout" : "closed"));
  drop_held(s); /* the client is leaving: the room has been told */
  s->state = WS_CLOSING;
  s->closing_ms = sfu_now_ms();
  s->room = NULL;
  s->close_code = (uint16_t)code;
  snprintf(s->close_reason, sizeof(s->close_reason), "%s", reason);
  mark_dirty(s);
}

static void on_flush(uv_idle_t *h) {
  sfu_ws_t *ws = h->data;
  if (ws->redrain) { /* after an import: as if each room had just drained */
    ws->redrain = 0;
    for (session_t *s = ws->sessions; s; s = s->next)
      if (s->held && s->room) sfu_ws_on_room_drained(ws, s->room);
  }
  while (ws->dirty) {
    session_t *s = ws->dirty;
    ws->dirty = s->next_dirty;
    s->dirty = 0;
    if (s->conn && s->close_code) send_close(s);
    if (s->conn && s->conn->sock) h2o_websocket_proceed(s->conn); /* may free s */
  }
  uv_idle_stop(h);
}

/* --- input -------------------------------------------------------------- */

static int join_close_code(int err) {
  switch (err) {
  case SFU_EEXPIRED: return SFU_WS_TOKEN_EXPIRED;
  case SFU_EWRONGROOM: return SFU_WS_WRONG_ROOM;
  default: return SFU_WS_INVALID_TOKEN;
  }
}

/* A kicked token (deny-listed, or issued up to a kick of its identity) or
 * a banned identity is refused here, before anything reaches the room:
 * 4012 "kicked" / "banned" (docs/signaling.md). Returns 1 if closed. */
static int refused_by_moderation(session_t *s, sfu_room_rec_t *r, const sfu_token_claims_t *c) {
  sfu_mod_verdict_t v = sfu_supervisor_admit(r, c, sfu_wall_ms() / 1000);
  if (v == SFU_MOD_ADMIT) return 0;
  sfu_log(SFU_LOG_INFO, "ws", "session %u: %s refused by room %s (%s)", s->id, c->identity, r->id,
          v == SFU_MOD_BANNED ? "banned" : "kicked");
  close_session(s, SFU_WS_KICKED, v == SFU_MOD_BANNED ? "banned" : "kicked");
  return 1;
}

static void on_join(session_t *s, const sfu_msg_t *m) {
  sfu_ws_t *ws = s->ws;
  sfu_token_claims_t c;
  const char *why = NULL;
  char reason[120];

  int rv = sfu_token_verify((const uint8_t *)ws->cfg->token_secret, strlen(ws->cfg->token_secret),
                            m->token, NULL, sfu_wall_ms() / 1000, &c, &why);
  if (rv != 0) {
    snprintf(reason, sizeof(reason), "%s: %s", rv == SFU_EEXPIRED ? "token expired" : "invalid token",
             why ? why : sfu_strerror(rv));
    close_session(s, join_close_code(rv), reason);
    return;
  }
  sfu_room_rec_t *r = sfu_supervisor_find(ws->sup, m->room);
  if (!r) /* a room of another node that a relay here serves (docs/internals/relay.md) */
    r = sfu_supervisor_relay_for(ws->sup, m->room);
  if (!r || r->state == SFU_ROOM_CRASHED || r->state == SFU_ROOM_CLOSING) {
    close_session(s, SFU_WS_ROOM_NOT_FOUND, "room not found");
    return;
  }
  if (strcmp(c.room, r->origin_id[0] ? r->origin_id : r->id) != 0) {
    close_session(s, SFU_WS_WRONG_ROOM, "token is for another room");
    return;
  }
  if (refused_by_moderation(s, r, &c)) return;
  s->room = sfu_supervisor_place(ws->sup, r, c.grants); /* the room, or one of its relays */
  s->state = WS_JOINING;
  s->opened_ms = sfu_now_ms(); /* the room has SFU_WS_JOIN_TIMEOUT_MS to welcome it */
  memcpy(s->identity, c.identity, sizeof(s->identity));
  /* Fresh TURN credentials for this join (none without turn_urls): the
   * room puts them in the welcome as they are. */
  json_t *ice = sfu_turn_ice_servers(ws->cfg->turn_urls, ws->cfg->turn_secret,
                                     ws->cfg->turn_ttl_s, c.identity, sfu_wall_ms() / 1000);
  tell_room(s, "client_join",
            json_pack("{s:s, s:s, s:i, s:s, s:O*, s:o*}", "identity", c.identity, "name", c.name,
                      "grants", (int)c.grants, "jti", c.jti, "id", m->id, "ice_servers", ice));
  sfu_log(SFU_LOG_INFO, "ws", "session %u: %s joining room %s%s%s", s->id, c.identity, r->id,
          s->room != r ? " on relay " : "", s->room != r ? s->room->id : "");
}

/* --- backpressure towards the room --------------------------------------- */

static void on_hold(uv_prepare_t *h);

#define CONGESTION_LOG_EVERY_MS 10000

/* Is the room's IPC congested? Counts the start of an episode, and logs it
 * (at most one line per 10 s: under sustained load episodes follow each
 * other as the queue swings between its watermarks). */
static int room_congested(sfu_ws_t *ws, sfu_room_rec_t *r) {
  uint64_t before = r->ipc.congestions;
  int c = sfu_ipc_congested(&r->ipc);
  if (r->ipc.congestions != before) {
    uint64_t now = sfu_now_ms();
    if (ws->metrics) ws->metrics->ipc_congestions++;
    ws->congestions_unlogged++;
    if (!ws->congestion_logged_ms || now - ws->congestion_logged_ms >= CONGESTION_LOG_EVERY_MS) {
      sfu_log(SFU_LOG_WARN, "ws",
              "room %s: IPC backlog of %zu bytes: pausing its client sessions "
              "(%llu episodes on this node since the last report)",
              r->id, sfu_ipc_queued(&r->ipc), (unsigned long long)ws->congestions_unlogged);
      ws->congestion_logged_ms = now;
      ws->congestions_unlogged = 0;
    }
  }
  return c;
}

/* Appends `msg` (reference taken on success) to the held list: 0 or
 * SFU_ENOMEM. */
static int held_append(session_t *s, json_t *msg, size_t bytes) {
  held_t *h = malloc(sizeof(*h));
  if (!h) return SFU_ENOMEM;
  h->next = NULL;
  h->msg = msg;
  h->bytes = bytes;
  if (s->held_tail)
    s->held_tail->next = h;
  else
    s->held = h;
  s->held_tail = h;
  s->held_bytes += bytes;
  return 0;
}

/* Holds `msg` (reference taken) until the room drains; closes the session
 * when its own bound would be exceeded. */
static void hold(session_t *s, json_t *msg, size_t bytes) {
  sfu_ws_t *ws = s->ws;
  if (s->held_bytes + bytes > SFU_WS_MAX_HELD) {
    json_decref(msg);
    if (ws->metrics) ws->metrics->ws_backlog_closes++;
    sfu_log(SFU_LOG_WARN, "ws", "session %u (%s): more than %u bytes waiting for room %s, closing",
            s->id, s->identity, SFU_WS_MAX_HELD, s->room->id);
    close_session(s, SFU_WS_TRY_AGAIN, "signaling backlog: room busy, slow down");
    return;
  }
  if (held_append(s, msg, bytes) != 0) {
    json_decref(msg);
    close_session(s, 1011, "out of memory");
    return;
  }
  if (!s->paused) {
    s->paused = 1;
    if (ws->paused++ == 0) uv_prepare_start(&ws->hold, on_hold);
  }
}

/* A client message for the room: sent, or held behind earlier ones. */
static void forward(session_t *s, json_t *msg, size_t bytes) {
  if (!s->room) return;
  if (s->held || room_congested(s->ws, s->room)) {
    hold(s, json_incref(msg), bytes);
    return;
  }
  tell_room(s, "client_msg", json_pack("{s:O}", "msg", msg));
}

/* Before every poll: h2o re-arms a socket's read after each of its
 * callbacks, so a paused session is stopped again here. */
static void on_hold(uv_prepare_t *h) {
  sfu_ws_t *ws = h->data;
  if (ws->paused == 0) {
    uv_prepare_stop(h);
    return;
  }
  for (session_t *s = ws->sessions; s; s = s->next)
    if (s->paused && s->conn && s->conn->sock) h2o_socket_read_stop(s->conn->sock);
}

void sfu_ws_on_room_drained(sfu_ws_t *ws, sfu_room_rec_t *r) {
  int progress = 1, resumed = 0;
  uint64_t now = sfu_now_ms();
  /* One held message per session in turn, while the channel takes them. */
  while (progress && !room_congested(ws, r)) {
    progress = 0;
    for (session_t *s = ws->sessions; s && !room_congested(ws, r); s = s->next) {
      if (s->room != r || !s->held) continue;
      held_t *h = s->held;
      s->held = h->next;
      if (!s->held) s->held_tail = NULL;
      s->held_bytes -= h->bytes;
      tell_room(s, "client_msg", json_pack("{s:O}", "msg", h->msg));
      json_decref(h->msg);
      free(h);
      progress = 1;
    }
  }
  for (session_t *s = ws->sessions; s; s = s->next) {
    if (s->room != r || !s->paused || s->held) continue;
    s->paused = 0;
    ws->paused--;
    s->last_rx_ms = now; /* it could not speak while paused */
    resumed++;
    mark_dirty(s); /* h2o_websocket_proceed re-arms the read */
  }
  if (resumed)
    sfu_log(SFU_LOG_DEBUG, "ws", "room %s: IPC backlog drained; %d client sessions resumed", r->id,
            resumed);
}

#define RATE_PER_S 50.0  /* messages per second, sustained */
#define RATE_BURST 100.0 /* messages at once */

/* Token bucket per session; a message beyond it is answered and dropped. */
static int rate_ok(session_t *s, uint64_t now_ms) {
  s->tokens += (double)(now_ms - s->last_rx_ms) * RATE_PER_S / 1000.0;
  if (s->tokens > RATE_BURST) s->tokens = RATE_BURST;
  if (s->tokens < 1.0) return 0;
  s->tokens -= 1.0;
  return 1;
}

static void on_resume(session_t *s, const sfu_msg_t *m);

static void on_text(session_t *s, const uint8_t *data, size_t len) {
  json_error_t jerr;
  json_t *msg = json_loadb((const char *)data, len, JSON_REJECT_DUPLICATES, &jerr);
  const char *code, *why;
  char reason[120];
  sfu_msg_t m;

  if (sfu_msg_parse(msg, &m, &code, &why) != 0) {
    if (s->state == WS_AWAIT_JOIN) {
      snprintf(reason, sizeof(reason), "bad request: %s", msg ? why : "not JSON");
      close_session(s, SFU_WS_BAD_REQUEST, reason);
    } else {
      send_error(s, json_is_object(msg) ? json_object_get(msg, "id") : NULL, code,
                 msg ? why : jerr.text);
    }
  } else if (m.type == SFU_MSG_PING) {
    json_t *p = json_pack("{s:s}", "type", "pong");
    if (m.id) json_object_set(p, "id", m.id);
    send_json(s, p);
  } else if (s->state == WS_AWAIT_JOIN) {
    if (m.type == SFU_MSG_JOIN)
      on_join(s, &m);
    else if (m.type == SFU_MSG_RESUME)
      on_resume(s, &m); /* may free s */
    else
      close_session(s, SFU_WS_BAD_REQUEST, "bad request: first message must be a join");
  } else if (m.type == SFU_MSG_JOIN || m.type == SFU_MSG_RESUME) {
    send_error(s, m.id, "bad_message", "already joined");
  } else if (m.type == SFU_MSG_LEAVE) {
    close_session(s, 1000, "left");
  } else {
    forward(s, msg, len);
  }
  json_decref(msg);
}

/* Takes s off the flush list, if it is on it. */
static void unmark_dirty(session_t *s) {
  for (session_t **pp = &s->ws->dirty; *pp; pp = &(*pp)->next_dirty)
    if (*pp == s) {
      *pp = s->next_dirty;
      break;
    }
  s->dirty = 0;
}

static void unlink_session(session_t *s) {
  sfu_ws_t *ws = s->ws;
  for (session_t **pp = &ws->sessions; *pp; pp = &(*pp)->next)
    if (*pp == s) {
      *pp = s->next;
      break;
    }
  unmark_dirty(s);
  ws->count--;
}

/* A joined session's socket closed without a leave: it waits for a resume
 * (see the top of this file). */
static void detach(session_t *s) {
  h2o_websocket_close(s->conn);
  s->conn = NULL;
  unmark_dirty(s);
  s->state = WS_DETACHED;
  s->detached_ms = sfu_now_ms();
  if (s->ws->metrics) s->ws->metrics->ws_detached++;
  sfu_log(SFU_LOG_INFO, "ws", "session %u (%s): connection lost; resumable for %d s", s->id,
          s->identity, s->ws->cfg->resume_grace_s);
}

/* Closes the socket (if any) and frees the session; not from inside
 * proceed(). A joined session whose socket dropped (`dropped`: closed
 * without a close frame from the client) and that may resume is detached
 * instead. A client's own close frame (1000, 1001 ...) is a leave. */
static void free_session(session_t *s, int dropped) {
  if (dropped && s->state == WS_JOINED && s->room && s->resume_token[0] && s->conn) {
    detach(s);
    return;
  }
  if (s->state == WS_JOINING || s->state == WS_JOINED || (s->state == WS_DETACHED && s->room))
    tell_room(s, "client_gone", json_pack("{s:s}", "reason", "disconnected"));
  drop_held(s);
  drop_kept(s);
  if (s->conn) h2o_websocket_close(s->conn);
  s->conn = NULL;
  unlink_session(s);
  free(s);
}

/* A fresh resume token for s, single-use: the previous one stops working.
 * Its room keeps a copy: if sfud dies, the next one takes the session over
 * from the room (docs/internals/supervisor.md "When sfud crashes"). */
static json_t *new_resume_token(session_t *s) {
  sfu_random_hex(s->resume_token, "", SFU_RESUME_TOKEN_LEN / 2);
  if (s->room) tell_room(s, "session_token", json_pack("{s:s}", "resume_token", s->resume_token));
  return json_string(s->resume_token);
}

/* `resume` on a new socket (session `s`, not joined): takes over the
 * session whose token it is, if it is in the room named. */
static void on_resume(session_t *s, const sfu_msg_t *m) {
  sfu_ws_t *ws = s->ws;
  session_t *t = NULL;
  for (session_t *x = ws->sessions; x && !t; x = x->next)
    if (x != s && x->room && (x->state == WS_DETACHED || x->state == WS_JOINED) &&
        x->resume_token[0] && CRYPTO_memcmp(x->resume_token, m->token, SFU_RESUME_TOKEN_LEN) == 0)
      t = x;
  sfu_room_rec_t *in = t ? t->room : NULL; /* the room, or a relay of it (of this node's room
                                             or of another node's) */
  if (!in || (strcmp(in->origin_id[0] ? in->origin_id : in->id, m->room) != 0 &&
              (!in->name[0] || strcmp(in->name, m->room) != 0))) {
    if (ws->metrics) ws->metrics->ws_resume_failures++;
    close_session(s, SFU_WS_RESUME_FAILED, "resume failed: no such session (join again)");
    return;
  }
  uint64_t now = sfu_now_ms();
  h2o_websocket_conn_t *fresh = s->conn, *stale = t->conn;
  int was = t->state;
  t->conn = fresh, fresh->data = t;
  s->conn = stale;
  if (stale) stale->data = s;
  t->state = WS_JOINED;
  t->last_rx_ms = now;
  t->tokens = RATE_BURST;
  if (ws->metrics) ws->metrics->ws_resumes++;
  sfu_log(SFU_LOG_INFO, "ws", "session %u (%s): resumed in room %s after %llu ms%s", t->id,
          t->identity, t->room->id,
          (unsigned long long)(was == WS_DETACHED ? now - t->detached_ms : 0),
          was == WS_DETACHED ? "" : " (its old socket still open: replaced)");
  json_t *r = json_pack("{s:s, s:i, s:{s:s, s:s}, s:o, s:i}", "type", "resumed", "v", 1,
                        "participant", "sid", t->sid, "identity", t->identity, "resume_token",
                        new_resume_token(t), "resume_grace_s", ws->cfg->resume_grace_s);
  if (m->id) json_object_set(r, "id", m->id);
  send_json(t, r);
  kept_t *k = t->kept;
  t->kept = t->kept_tail = NULL;
  t->kept_bytes = 0;
  while (k) {
    kept_t *next = k->next;
    send_text(t, k->text, k->len);
    free(k);
    k = next;
  }
  if (stale) { /* s now holds the old socket: close it, the room hears nothing */
    close_session(s, SFU_WS_REPLACED, "replaced by a resumed session");
  } else { /* s had only the new socket, which t took: s goes (h2o no longer knows it) */
    unlink_session(s);
    free(s);
  }
}

static void on_ws(h2o_websocket_conn_t *conn, const struct wslay_event_on_msg_recv_arg *arg) {
  session_t *s = conn->data;
  if (arg == NULL) { /* closed: the socket is gone, with or without a close frame */
    free_session(s, !wslay_event_get_close_received(conn->ws_ctx));
    return;
  }
  uint64_t now = sfu_now_ms();
  int ok = rate_ok(s, now);
  s->last_rx_ms = now;
  if (!ok) { /* dropped; told at most once a second */
    if (now - s->limited_ms >= 1000) {
      s->limited_ms = now;
      send_error(s, NULL, "rate_limited", "too many messages: dropping them");
    }
    return;
  }
  if (arg->opcode == WSLAY_TEXT_FRAME)
    on_text(s, arg->msg, arg->msg_length);
  else if (arg->opcode == WSLAY_BINARY_FRAME)
    send_error(s, NULL, "bad_message", "binary frames are not used");
  /* pings/pongs/close are handled by wslay */
}

/* --- room side ---------------------------------------------------------- */

static session_t *find_session(sfu_ws_t *ws, json_t *msg) {
  json_t *v = json_object_get(msg, "session");
  if (!json_is_integer(v)) return NULL;
  for (session_t *s = ws->sessions; s; s = s->next)
    if (s->id == (uint32_t)json_integer_value(v)) return s;
  return NULL;
}

void sfu_ws_on_room_msg(sfu_ws_t *ws, sfu_room_rec_t *r, const char *type, json_t *msg) {
  if (strcmp(type, "client_msg") == 0 && json_is_true(json_object_get(msg, "all"))) {
    /* to everyone in the room but "except" (0: nobody) */
    json_t *m = json_object_get(msg, "msg");
    json_int_t except = json_integer_value(json_object_get(msg, "except"));
    if (!json_is_object(m)) return;
    for (session_t *s = ws->sessions; s; s = s->next)
      if (s->room == r && (s->state == WS_JOINED || s->state == WS_DETACHED) &&
          s->id != (uint32_t)except)
        send_json(s, json_incref(m));
    return;
  }
  session_t *s = find_session(ws, msg);
  if (!s || s->room != r) return; /* the client left meanwhile */
  if (strcmp(type, "client_msg") == 0) {
    json_t *m = json_object_get(msg, "msg");
    if (!json_is_object(m)) return;
    const char *t = json_string_value(json_object_get(m, "type"));
    if (t && strcmp(t, "welcome") == 0 && s->state == WS_JOINING) {
      s->state = WS_JOINED;
      const char *sid = json_string_value(json_object_get(json_object_get(m, "participant"), "sid"));
      snprintf(s->sid, sizeof(s->sid), "%s", sid ? sid : "");
      if (r->origin_id[0]) /* a relay's process: the client is in its room */
        json_object_set_new(json_object_get(m, "room"), "room_id", json_string(r->origin_id));
      if (s->ws->cfg->resume_grace_s > 0) { /* sfud's part of the welcome */
        json_object_set_new(m, "resume_token", new_resume_token(s));
        json_object_set_new(m, "resume_grace_s", json_integer(s->ws->cfg->resume_grace_s));
      }
    }
    send_json(s, json_incref(m));
  } else if (strcmp(type, "client_close") == 0) {
    json_int_t code = json_integer_value(json_object_get(msg, "code"));
    const char *reason = json_string_value(json_object_get(msg, "reason"));
    s->room = NULL; /* the room already dropped it: no client_gone */
    close_session(s, code >= 1000 && code < 5000 ? (int)code : 1011, reason ? reason : "");
  }
}

void sfu_ws_on_room_gone(sfu_ws_t *ws, sfu_room_rec_t *r, int code, const char *reason) {
  for (session_t *s = ws->sessions; s; s = s->next) {
    if (s->room != r) continue;
    s->room = NULL; /* nothing to tell the room */
    if (s->state != WS_DETACHED) s->state = WS_AWAIT_JOIN;
    close_session(s, code, reason);
  }
}

void sfu_ws_close_all(sfu_ws_t *ws, int code, const char *reason) {
  for (session_t *s = ws->sessions; s; s = s->next) close_session(s, code, reason);
}

int sfu_ws_session_count(const sfu_ws_t *ws) { return ws->count; }

uint32_t sfu_ws_new_id(sfu_ws_t *ws) { return ++ws->next_id; }

/* --- a room moving to another node (sfu/node/migrate.c) -------------------- */

static int moves_with(const session_t *s, const sfu_room_rec_t *r) {
  return s->room == r && (s->state == WS_JOINED || s->state == WS_DETACHED) && s->sid[0];
}

json_t *sfu_ws_move_prepare(sfu_ws_t *ws, sfu_room_rec_t *r) {
  json_t *out = json_array();
  for (session_t *s = ws->sessions; s && out; s = s->next) {
    if (!moves_with(s, r)) continue;
    sfu_random_hex(s->move_token, "", SFU_RESUME_TOKEN_LEN / 2);
    json_array_append_new(out, json_pack("{s:s, s:s, s:s}", "sid", s->sid, "identity",
                                         s->identity, "resume_token", s->move_token));
  }
  return out;
}

void sfu_ws_move_tell(sfu_ws_t *ws, sfu_room_rec_t *r, const char *ws_url) {
  for (session_t *s = ws->sessions; s; s = s->next)
    if (s->room == r && s->move_token[0])
      send_json(s, json_pack("{s:s, s:i, s:s, s:s, s:s}", "type", "migrate", "v", 1, "room",
                             r->id, "ws_url", ws_url, "resume_token", s->move_token));
}

void sfu_ws_move_end(sfu_ws_t *ws, sfu_room_rec_t *r, int moved, const char *reason) {
  for (session_t *s = ws->sessions; s; s = s->next) {
    if (s->room != r) continue;
    if (!moved) {
      if (s->move_token[0])
        send_json(s, json_pack("{s:s, s:i, s:s}", "type", "migrate_abort", "v", 1, "reason",
                               reason));
      s->move_token[0] = '\0';
      continue;
    }
    /* Its session lives on the new node: the room here hears nothing. One
     * that joined during the move gets the close alone and joins again. */
    if (s->move_token[0]) send_json(s, json_pack("{s:s, s:i}", "type", "migrated", "v", 1));
    s->room = NULL;
    if (s->state != WS_DETACHED) s->state = WS_AWAIT_JOIN;
    close_session(s, SFU_WS_MIGRATED, "room migrated");
  }
}

int sfu_ws_move_in(sfu_ws_t *ws, sfu_room_rec_t *r, json_t *sessions, json_t *ids) {
  json_t *list = json_array(), *e;
  size_t i;
  json_array_foreach(sessions, i, e) {
    json_int_t id = (json_int_t)ws->next_id + 1 + (json_int_t)i;
    json_array_append_new(list, json_pack("{s:I, s:s, s:O?, s:O?, s:O?}", "id", id, "room_id",
                                          r->id, "identity", json_object_get(e, "identity"),
                                          "sid", json_object_get(e, "sid"), "resume_token",
                                          json_object_get(e, "resume_token")));
    json_object_set_new(ids, json_string_value(json_object_get(e, "sid")) ?: "",
                        json_integer(id));
  }
  int rv = sfu_ws_import(ws, list);
  json_decref(list);
  return rv < 0 ? rv : 0;
}

/* --- upgrade (docs/internals/upgrade.md) ---------------------------------- */

json_t *sfu_ws_export(sfu_ws_t *ws) {
  json_t *out = json_array();
  if (!out) return NULL;
  for (session_t *s = ws->sessions; s; s = s->next) {
    if ((s->state != WS_JOINED && s->state != WS_DETACHED) || !s->room) continue;
    json_t *kept = json_array(), *held = json_array();
    json_t *o = json_pack("{s:I, s:s, s:s, s:s, s:s}", "id", (json_int_t)s->id, "room_id",
                          s->room->id, "identity", s->identity, "sid", s->sid, "resume_token",
                          s->resume_token);
    int rv = kept && held && o ? 0 : -1;
    for (kept_t *k = s->kept; k && rv == 0; k = k->next)
      rv = json_array_append_new(kept, json_stringn(k->text, k->len));
    for (held_t *h = s->held; h && rv == 0; h = h->next) {
      char *text = json_dumps(h->msg, JSON_COMPACT);
      rv = text ? json_array_append_new(held, json_string(text)) : -1;
      free(text);
    }
    if (rv == 0) rv = json_object_set(o, "kept", kept);
    if (rv == 0) rv = json_object_set(o, "held", held);
    if (rv == 0) rv = json_array_append(out, o);
    json_decref(kept);
    json_decref(held);
    json_decref(o);
    if (rv != 0) {
      json_decref(out);
      return NULL;
    }
  }
  return out;
}

static int id_listed(const session_t *list, uint32_t id) {
  for (; list; list = list->next)
    if (list->id == id) return 1;
  return 0;
}

/* The string e[key], of 1..max bytes (0..max if `empty_ok`), or NULL. */
static const char *import_str(json_t *e, const char *key, size_t max, int empty_ok) {
  json_t *v = json_object_get(e, key);
  if (!json_is_string(v)) return NULL;
  size_t len = json_string_length(v);
  if ((len == 0 && !empty_ok) || len > max || strlen(json_string_value(v)) != len) return NULL;
  return json_string_value(v);
}

/* One exported session, checked, as an unlisted WS_DETACHED session bound
 * to its room (*out; NULL when the room is not there: skipped). Returns 0
 * or SFU_EINVAL / SFU_E2BIG / SFU_EEXIST with *why; SFU_ENOMEM. */
static int import_one(sfu_ws_t *ws, json_t *e, const session_t *imported, uint64_t now,
                      session_t **out, const char **why) {
  *out = NULL;
#define BAD(code, text) \
  do {                  \
    *why = (text);      \
    rv = (code);        \
    goto fail;          \
  } while (0)
  session_t *s = NULL;
  int rv = 0;
  json_t *id = json_object_get(e, "id");
  json_t *kept = json_object_get(e, "kept"), *held = json_object_get(e, "held");
  const char *room_id = import_str(e, "room_id", SFU_TOKEN_MAX_ID, 0);
  const char *identity = import_str(e, "identity", SFU_TOKEN_MAX_ID, 0);
  const char *sid = import_str(e, "sid", sizeof(s->sid) - 1, 1);
  const char *token = import_str(e, "resume_token", SFU_RESUME_TOKEN_LEN, 1);
  if (!json_is_object(e)) BAD(SFU_EINVAL, "not an object");
  if (!json_is_integer(id) || json_integer_value(id) < 1 ||
      json_integer_value(id) > (json_int_t)UINT32_MAX)
    BAD(SFU_EINVAL, "'id' must be an integer in 1..2^32-1");
  if (!room_id || !identity || !sid || !token)
    BAD(SFU_EINVAL, "'room_id', 'identity', 'sid' and 'resume_token' must be strings that fit");
  if (token[0] && strlen(token) != SFU_RESUME_TOKEN_LEN)
    BAD(SFU_EINVAL, "'resume_token' must be empty or 32 characters");
  if ((kept && !json_is_array(kept)) || (held && !json_is_array(held)))
    BAD(SFU_EINVAL, "'kept' and 'held' must be arrays");
  if (id_listed(ws->sessions, (uint32_t)json_integer_value(id)) ||
      id_listed(imported, (uint32_t)json_integer_value(id)))
    BAD(SFU_EEXIST, "id already in use");

  sfu_room_rec_t *r = sfu_supervisor_find(ws->sup, room_id);
  if (!r || strcmp(r->id, room_id) != 0 || r->exited || r->state == SFU_ROOM_CRASHED)
    return 0; /* the room did not come along: its clients will join afresh */
  if (!(s = calloc(1, sizeof(*s)))) BAD(SFU_ENOMEM, "out of memory");
  s->ws = ws;
  s->id = (uint32_t)json_integer_value(id);
  s->state = WS_DETACHED;
  s->room = r;
  memcpy(s->identity, identity, strlen(identity) + 1);
  memcpy(s->sid, sid, strlen(sid) + 1);
  memcpy(s->resume_token, token, strlen(token) + 1);
  s->detached_ms = s->opened_ms = s->last_rx_ms = now; /* a full resume_grace_s */
  s->tokens = RATE_BURST;

  size_t i;
  json_t *v;
  json_array_foreach(kept, i, v) { /* the text to send, as it was */
    int got;
    if (!json_is_string(v)) BAD(SFU_EINVAL, "'kept' holds a non-string");
    if ((got = kept_append(s, json_string_value(v), json_string_length(v))) != 0)
      BAD(got, got == SFU_E2BIG ? "'kept' beyond its bound" : "out of memory");
  }
  json_array_foreach(held, i, v) { /* the client's messages, parsed again */
    size_t len = json_string_length(v);
    json_t *msg;
    if (!json_is_string(v)) BAD(SFU_EINVAL, "'held' holds a non-string");
    if (s->held_bytes + len > SFU_WS_MAX_HELD) BAD(SFU_E2BIG, "'held' beyond its bound");
    msg = json_loadb(json_string_value(v), len, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(msg)) {
      json_decref(msg);
      BAD(SFU_EINVAL, "'held' holds a text that is not a JSON object");
    }
    if (held_append(s, msg, len) != 0) {
      json_decref(msg);
      BAD(SFU_ENOMEM, "out of memory");
    }
  }
  *out = s;
  return 0;
#undef BAD
fail:
  if (s) {
    drop_kept(s);
    drop_held(s); /* not paused yet: ws untouched */
    free(s);
  }
  return rv;
}

uint32_t sfu_ws_last_id(const sfu_ws_t *ws) { return ws->next_id; }

void sfu_ws_skip_ids(sfu_ws_t *ws, uint32_t last) {
  if (last > ws->next_id) ws->next_id = last;
}

int sfu_ws_import(sfu_ws_t *ws, json_t *sessions) {
  session_t *head = NULL, **tail = &head;
  uint32_t top = ws->next_id;
  uint64_t now = sfu_now_ms();
  int restored = 0, skipped = 0, rv = 0, held = 0;
  const char *why = NULL;
  size_t i;
  json_t *e;

  if (!json_is_array(sessions)) {
    sfu_log(SFU_LOG_ERROR, "ws", "upgrade state: 'sessions' is not an array");
    return SFU_EINVAL;
  }
  json_array_foreach(sessions, i, e) {
    session_t *s;
    if ((rv = import_one(ws, e, head, now, &s, &why)) != 0) goto fail;
    uint32_t id = (uint32_t)json_integer_value(json_object_get(e, "id"));
    if (id > top) top = id; /* skipped ones too: never reuse an id */
    if (!s) {
      skipped++;
      sfu_log(SFU_LOG_INFO, "ws", "session %u (%s): room %s not adopted; not restored", id,
              json_string_value(json_object_get(e, "identity")),
              json_string_value(json_object_get(e, "room_id")));
      continue;
    }
    *tail = s;
    tail = &s->next;
  }
  /* Listed in the exported order, ahead of any session already here. */
  session_t *before = ws->sessions;
  *tail = before;
  ws->sessions = head;
  for (session_t *s = head; s != before; s = s->next) {
    ws->count++;
    restored++;
    if (s->held) { /* paused, as when they were held; sent on the next flush */
      s->paused = 1;
      ws->paused++;
      held++;
    }
  }
  ws->next_id = top;
  if (held) {
    uv_prepare_start(&ws->hold, on_hold);
    ws->redrain = 1;
    uv_idle_start(&ws->flush, on_flush);
  }
  sfu_log(SFU_LOG_INFO, "ws",
          "restored %d client sessions, detached and resumable for %d s (%d skipped, %d with held "
          "messages)",
          restored, ws->cfg->resume_grace_s, skipped, held);
  return restored;

fail:
  sfu_log(SFU_LOG_ERROR, "ws", "upgrade state: session %zu: %s", i, why);
  while (head) {
    session_t *s = head;
    head = s->next;
    drop_kept(s);
    drop_held(s);
    free(s);
  }
  return rv;
}

/* --- set-up ------------------------------------------------------------- */

static void on_tick(uv_timer_t *t) {
  sfu_ws_t *ws = t->data;
  uint64_t now = sfu_now_ms();
  session_t *next;
  for (session_t *s = ws->sessions; s; s = next) {
    next = s->next; /* free_session() unlinks s */
    if (s->state == WS_DETACHED) {
      /* gone (room told) or out of time: the room hears client_gone now */
      if (!s->room || now - s->detached_ms >= (uint64_t)ws->cfg->resume_grace_s * 1000) {
        close_session(s, 1001, "not resumed");
        free_session(s, 0);
      }
    } else if (s->state == WS_CLOSING) {
      if (s->conn && s->close_code) { /* still behind messages on a busy socket */
        send_close(s);
        mark_dirty(s);
      }
      /* The client never answered our close frame (or never read it):
       * close the socket. Not before h2o has handed it over (sock set). */
      if (now - s->closing_ms >= SFU_WS_CLOSE_TIMEOUT_MS && s->conn && s->conn->sock) {
        if (ws->metrics) ws->metrics->ws_close_timeouts++;
        sfu_log(SFU_LOG_DEBUG, "ws", "session %u: no close from the client in %d ms; closing the socket",
                s->id, SFU_WS_CLOSE_TIMEOUT_MS);
        free_session(s, 0);
      }
    } else if ((s->state == WS_AWAIT_JOIN || s->state == WS_JOINING) &&
               now - s->opened_ms > SFU_WS_JOIN_TIMEOUT_MS) {
      close_session(s, SFU_WS_JOIN_TIMEOUT, "join timeout");
    } else if (!s->paused && now - s->last_rx_ms > SFU_WS_IDLE_TIMEOUT_MS) {
      close_session(s, SFU_WS_HEARTBEAT_TIMEOUT, "heartbeat timeout");
    }
  }
}

int sfu_ws_create(sfu_ws_t **out, uv_loop_t *loop, const sfu_config_t *cfg,
                  sfu_supervisor_t *sup) {
  sfu_ws_t *ws = calloc(1, sizeof(*ws));
  *out = NULL;
  if (!ws) return SFU_ENOMEM;
  ws->loop = loop;
  ws->cfg = cfg;
  ws->sup = sup;
  uv_idle_init(loop, &ws->flush);
  ws->flush.data = ws;
  uv_timer_init(loop, &ws->tick);
  ws->tick.data = ws;
  uv_timer_start(&ws->tick, on_tick, 1000, 1000);
  uv_unref((uv_handle_t *)&ws->tick);
  uv_prepare_init(loop, &ws->hold);
  ws->hold.data = ws;
  uv_unref((uv_handle_t *)&ws->hold);
  *out = ws;
  return 0;
}

void sfu_ws_set_metrics(sfu_ws_t *ws, sfu_metrics_t *m) { ws->metrics = m; }

int sfu_ws_handle(sfu_ws_t *ws, h2o_req_t *req) {
  const char *key;
  if (h2o_is_websocket_handshake(req, &key) != 0 || key == NULL) return -1;
  session_t *s = calloc(1, sizeof(*s));
  if (!s) return -1;
  s->ws = ws;
  s->id = ++ws->next_id;
  s->state = WS_AWAIT_JOIN;
  s->opened_ms = s->last_rx_ms = sfu_now_ms();
  s->tokens = RATE_BURST;
  s->next = ws->sessions;
  ws->sessions = s;
  ws->count++;
  s->conn = h2o_upgrade_to_websocket(req, key, s, on_ws);
  wslay_event_config_set_max_recv_msg_length(s->conn->ws_ctx,
                                             SFU_WS_MAX_MSG(ws->cfg->max_participants));
  return 0;
}
