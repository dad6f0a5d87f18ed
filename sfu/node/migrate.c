/*
 * migrate.c -- moving a running room to another node (see migrate.h).
 *
 * The old node keeps one move_t per room it moves, driven by the answers
 * it gets (placement, the room's export, the new node's HTTP answers) and
 * by one timer that polls the new node every 100 ms while clients come
 * over. A move_t lives until its callback has run and no request of it is
 * in flight. The room's record points back with r->moving; a record that
 * goes away (the room ended) is unhooked by sfu_migrator_on_room_gone().
 * After the commit a move_t waits for the room here to end: its usage up
 * to the cut comes in after its state went, and the new node adds what the
 * record gained since the export to the room's totals (POST .../usage),
 * once however often it is sent. A new node that cannot be reached (or
 * answers 5xx) is asked again, TAIL_TRIES times in all, 250 ms apart and
 * twice as long each time (about a minute).
 *
 * The new node keeps no state of its own: the record it spawned is marked
 * SFU_MOVE_IN (no room_started, no crash report: the call goes on where it
 * was) until the commit, and r->move_ready says what the room said.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sfu/base/log.h"
#include "sfu/base/sfu.h"
#include "sfu/node/events.h"
#include "sfu/node/httpc.h"
#include "sfu/node/migrate.h"
#include "sfu/node/validate.h"

#define POLL_MS 100
#define TAIL_TRIES 8
#define TAIL_RETRY_MS 250

typedef enum { PLACING, EXPORTING, CREATING, MOVING, COMMITTING, DONE } phase_t;

typedef struct move_s move_t;
struct move_s {
  sfu_migrator_t *m;
  sfu_room_rec_t *r;             /* NULL once the room is gone */
  char room_id[SFU_ROOM_ID_LEN + 1];
  char name[SFU_ROOM_MAX_NAME + 1];
  sfu_fleet_node_t to;           /* the new node, once placed */
  phase_t phase;
  int created;                   /* the new node has a copy (drop it on abort) */
  int participants;              /* sessions moved */
  json_t *exported;              /* the record's usage totals when it went */
  int tail;                      /* committed: waits for the room here to end */
  json_t *tail_ms;               /* then its last usage, until the new node took it */
  int tail_tries;
  uint64_t tail_at_ms;           /* the next try */
  sfu_httpc_req_t *req;          /* in flight, or NULL */
  uint64_t started_ms, told_ms;
  sfu_migrate_cb cb;             /* NULL once run */
  void *arg;
  move_t *next;
};

struct sfu_migrator_s {
  uv_loop_t *loop;
  const sfu_config_t *cfg;
  sfu_supervisor_t *sup;
  sfu_ws_t *ws;
  sfu_fleet_t *fleet;
  struct sfu_events_s *events;
  char ws_url[288];
  char auth[320];                /* "Authorization: Bearer ...\r\n..." */
  uv_timer_t timer;              /* polls moves in MOVING */
  int timer_on;
  int stopped;                   /* sfu_migrator_stop(): no move goes on */
  move_t *moves;
};

static json_t *error_body(const char *code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static json_t *error_body(const char *code, const char *fmt, ...) {
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  return json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", msg);
}

/* --- the old node ----------------------------------------------------------- */

static void free_move(move_t *v) {
  json_decref(v->exported);
  json_decref(v->tail_ms);
  free(v);
}

static void maybe_free(move_t *v) {
  if (v->phase != DONE || v->req || v->tail || v->tail_ms) return;
  for (move_t **pp = &v->m->moves; *pp; pp = &(*pp)->next)
    if (*pp == v) {
      *pp = v->next;
      break;
    }
  free_move(v);
}

/* Answers the caller; the move is over (requests in flight still end). */
static void finish(move_t *v, int status, json_t *body) {
  v->phase = DONE;
  if (v->r && v->r->moving == SFU_MOVE_OUT) v->r->moving = SFU_MOVE_NONE;
  if (v->cb) {
    sfu_migrate_cb cb = v->cb;
    v->cb = NULL;
    cb(v->arg, status, body);
  } else {
    json_decref(body);
  }
  maybe_free(v);
}

/* A request to the new node's internal routes; its answer goes to cb. */
static int ask(move_t *v, const char *method, const char *path, json_t *body, sfu_httpc_cb cb) {
  char url[1024], *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
  json_decref(body);
  snprintf(url, sizeof(url), "%s%s", v->to.api_url, path);
  v->req = sfu_httpc_request(sfu_fleet_api_client(v->m->fleet), method, url, v->m->auth, text,
                             text ? strlen(text) : 0, cb, v);
  free(text);
  return v->req ? 0 : SFU_EINVAL;
}

static void on_dropped(void *arg, int status, const char *location, const char *body, size_t len,
                       const char *err) {
  move_t *v = arg;
  (void)location, (void)body, (void)len;
  v->req = NULL;
  if (err || status >= 300)
    sfu_log(SFU_LOG_WARN, "migrate", "room %s: node %s did not drop its copy: %s", v->room_id,
            v->to.node_id, err ? err : "refused");
  maybe_free(v);
}

/* The move fails before its commit: the room stays here. */
static void abort_move(move_t *v, int status, const char *code, const char *why) {
  sfu_log(SFU_LOG_WARN, "migrate", "room %s: move to %s aborted: %s", v->room_id,
          v->to.node_id[0] ? v->to.node_id : "(none)", why);
  if (v->r) sfu_ws_move_end(v->m->ws, v->r, 0, why);
  if (v->created && v->req) { /* a poll in flight: its answer no longer matters */
    sfu_httpc_cancel(v->req);
    v->req = NULL;
  }
  if (v->created) {
    char path[128];
    snprintf(path, sizeof(path), "/v1/node/migrations/%s", v->room_id);
    ask(v, "DELETE", path, NULL, on_dropped);
  }
  finish(v, status, error_body(code, "room %s was not moved: %s", v->room_id, why));
}

/* The new node's error message, for ours. */
static void answer_error(char *out, size_t cap, int status, const char *body, const char *err) {
  json_t *j = body && !err ? json_loads(body, 0, NULL) : NULL;
  const char *msg = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
  if (err)
    snprintf(out, cap, "node did not answer: %s", err);
  else
    snprintf(out, cap, "node answered %d: %s", status, msg ? msg : "(no message)");
  json_decref(j);
}

/* The start of every answer from the new node but a drop's: 1 if the move
 * is still in `phase` and the answer is `want`; else 0, and the move has
 * been aborted (or had ended: v may be gone). */
static int answered(move_t *v, phase_t phase, int want, int status, const char *body,
                    const char *err) {
  char why[320];
  v->req = NULL;
  if (v->phase != phase) {
    maybe_free(v);
    return 0;
  }
  if (err || status != want) {
    answer_error(why, sizeof(why), status, body, err);
    abort_move(v, 502, "migration_failed", why);
    return 0;
  }
  return 1;
}

static void on_committed(void *arg, int status, const char *location, const char *body,
                         size_t len, const char *err) {
  move_t *v = arg;
  sfu_migrator_t *m = v->m;
  (void)location, (void)len;
  /* Not committed there (or not known to be): the room stays here. */
  if (!answered(v, COMMITTING, 200, status, body, err)) return;
  json_t *cut = json_loads(body, 0, NULL);
  int64_t cut_ms = json_integer_value(json_object_get(cut, "cut_wall_ms"));
  json_decref(cut);
  uint64_t took = sfu_now_ms() - v->started_ms;
  if (v->r) {
    json_t *out = json_pack("{s:s, s:I}", "type", "migrate_out", "cut_wall_ms", (json_int_t)cut_ms);
    sfu_supervisor_send(v->r, out);
    json_decref(out);
    sfu_ws_move_end(m->ws, v->r, 1, NULL);
    v->r->moving = SFU_MOVE_NONE;
    v->tail = 1; /* until sfu_migrator_on_room_gone() (maybe from in here) */
    sfu_supervisor_close_room(m->sup, v->r, "migrated");
  }
  sfu_log(SFU_LOG_INFO, "migrate", "room %s moved to %s in %llu ms (%d participants)", v->room_id,
          v->to.node_id, (unsigned long long)took, v->participants);
  if (m->events)
    sfu_events_emit(m->events, "room_migrated", v->room_id,
                    json_pack("{s:s, s:s, s:s, s:i, s:I}", "name", v->name, "from_node",
                              m->cfg->node_id, "to_node", v->to.node_id, "participants",
                              v->participants, "took_ms", (json_int_t)took));
  finish(v, 200, json_pack("{s:s, s:s, s:s, s:s, s:i, s:I}", "room_id", v->room_id, "from_node",
                           m->cfg->node_id, "to_node", v->to.node_id, "ws_url", v->to.ws_url,
                           "participants", v->participants, "took_ms", (json_int_t)took));
}

static void commit(move_t *v) {
  char path[128];
  v->phase = COMMITTING;
  snprintf(path, sizeof(path), "/v1/node/migrations/%s/commit", v->room_id);
  if (ask(v, "POST", path, json_pack("{s:I}", "cut_wall_ms", (json_int_t)sfu_wall_ms()),
          on_committed) != 0)
    abort_move(v, 502, "migration_failed", "the node's api_url cannot be used");
}

static void on_status(void *arg, int status, const char *location, const char *body, size_t len,
                      const char *err) {
  move_t *v = arg;
  (void)location, (void)len;
  if (!answered(v, MOVING, 200, status, body, err)) return;
  json_t *j = json_loads(body, 0, NULL);
  int ready = json_is_true(json_object_get(j, "ready"));
  json_decref(j);
  if (ready) commit(v);
}

static void post_tail(move_t *v);
static void on_timer(uv_timer_t *t);

static void start_timer(sfu_migrator_t *m) {
  if (m->timer_on) return;
  uv_timer_start(&m->timer, on_timer, POLL_MS, POLL_MS);
  m->timer_on = 1;
}

static void on_timer(uv_timer_t *t) {
  sfu_migrator_t *m = t->data;
  uint64_t now = sfu_now_ms();
  int moving = 0;
  move_t *v, *next;
  char path[128];
  for (v = m->moves; v; v = next) {
    next = v->next; /* commit/abort may free v */
    if (v->tail_ms && !v->req) { /* a last usage to send again */
      moving++;
      if (now >= v->tail_at_ms) {
        post_tail(v);
        maybe_free(v); /* (it could not be sent) */
      }
      continue;
    }
    if (v->phase != MOVING || v->req) {
      moving += v->phase != DONE;
      continue;
    }
    moving++;
    if (now - v->told_ms >= SFU_MOVE_WAIT_MS) {
      sfu_log(SFU_LOG_WARN, "migrate",
              "room %s: not every client reached %s within %d ms; moving without them",
              v->room_id, v->to.node_id, SFU_MOVE_WAIT_MS);
      commit(v);
      continue;
    }
    snprintf(path, sizeof(path), "/v1/node/migrations/%s", v->room_id);
    if (ask(v, "GET", path, NULL, on_status) != 0)
      abort_move(v, 502, "migration_failed", "the node's api_url cannot be used");
  }
  if (!moving) {
    uv_timer_stop(&m->timer);
    m->timer_on = 0;
  }
}

static void on_created(void *arg, int status, const char *location, const char *body, size_t len,
                       const char *err) {
  move_t *v = arg;
  sfu_migrator_t *m = v->m;
  (void)location, (void)len;
  if (!answered(v, CREATING, 201, status, body, err)) return;
  v->created = 1;
  if (!v->r) {
    abort_move(v, 409, "room_not_running", "the room ended during its move");
    return;
  }
  json_t *j = json_loads(body, 0, NULL);
  const char *ws_url = json_string_value(json_object_get(j, "ws_url"));
  if (ws_url) snprintf(v->to.ws_url, sizeof(v->to.ws_url), "%s", ws_url);
  json_decref(j);
  v->phase = MOVING;
  v->told_ms = sfu_now_ms();
  sfu_ws_move_tell(m->ws, v->r, v->to.ws_url);
  sfu_log(SFU_LOG_INFO, "migrate", "room %s: %d clients told to move to %s", v->room_id,
          v->participants, v->to.node_id);
  start_timer(m);
}

/* The room's state came: the new node gets a copy of the room. */
static void on_exported(move_t *v, json_t *state) {
  sfu_migrator_t *m = v->m;
  sfu_room_rec_t *r = v->r;
  json_t *sessions = sfu_ws_move_prepare(m->ws, r), *kept = json_array(), *e;
  size_t i;
  /* Participants move with their sessions (one joining now joins again). */
  json_array_foreach(json_object_get(state, "participants"), i, e) {
    const char *sid = json_string_value(json_object_get(e, "sid"));
    json_t *s;
    size_t k;
    json_array_foreach(sessions, k, s) if (sid && strcmp(sid, json_string_value(json_object_get(s, "sid"))) == 0) {
      json_array_append(kept, e);
      break;
    }
  }
  json_object_set_new(state, "participants", kept);
  v->participants = (int)json_array_size(sessions);
  v->exported = json_deep_copy(r->totals);
  v->phase = CREATING;
  json_t *body = json_pack("{s:s, s:s, s:o, s:o, s:o}", "room_id", r->id, "from_node",
                           m->cfg->node_id, "record", sfu_supervisor_record_json(r), "state",
                           state, "sessions", sessions);
  if (ask(v, "POST", "/v1/node/migrations", body, on_created) != 0)
    abort_move(v, 502, "migration_failed", "the node's api_url cannot be used");
}

static void on_placed(void *arg, int rv, const sfu_fleet_node_t *node) {
  move_t *v = arg;
  if (v->m->stopped) { /* sfud is stopping: answered already */
    v->phase = DONE;
    maybe_free(v);
    return;
  }
  if (!v->r) {
    finish(v, 409, error_body("room_not_running", "room %s ended", v->room_id));
    return;
  }
  switch (rv) {
  case 0: break;
  case SFU_ENOENT:
    finish(v, 404, error_body("node_not_found", "no such node in the fleet"));
    return;
  case SFU_EDRAINING:
    finish(v, 503, error_body("draining", "the node asked for is draining"));
    return;
  case SFU_ECAPACITY:
    finish(v, 503, error_body("no_capacity", "no other node can take room %s", v->room_id));
    return;
  default:
    finish(v, 503, error_body("fleet_unavailable", "etcd cannot be reached: cannot place the room"));
    return;
  }
  if (strcmp(node->node_id, v->m->cfg->node_id) == 0) {
    finish(v, 409, error_body("same_node", "room %s runs on node %s already", v->room_id,
                              node->node_id));
    return;
  }
  v->to = *node;
  v->phase = EXPORTING;
  json_t *msg = json_pack("{s:s}", "type", "export");
  int err = sfu_supervisor_send(v->r, msg);
  json_decref(msg);
  if (err) finish(v, 409, error_body("room_not_running", "room %s cannot be asked", v->room_id));
}

int sfu_migrate_room(sfu_migrator_t *m, sfu_room_rec_t *r, const char *to, sfu_migrate_cb cb,
                     void *arg) {
  if (r->moving) return SFU_EBUSY;
  if (m->stopped) return SFU_EINVAL;
  if (r->state != SFU_ROOM_RUNNING) return SFU_EINVAL;
  move_t *v = calloc(1, sizeof(*v));
  if (!v) return SFU_ENOMEM;
  v->m = m;
  v->r = r;
  snprintf(v->room_id, sizeof(v->room_id), "%s", r->id);
  snprintf(v->name, sizeof(v->name), "%s", r->name);
  v->phase = PLACING;
  v->started_ms = sfu_now_ms();
  v->cb = cb;
  v->arg = arg;
  v->next = m->moves;
  m->moves = v;
  r->moving = SFU_MOVE_OUT;
  r->move_ready = 0;
  sfu_log(SFU_LOG_INFO, "migrate", "room %s: moving to %s", r->id, to && to[0] ? to : "(placed)");
  sfu_fleet_place(m->fleet, m->cfg->region, to && to[0] ? to : NULL, m->cfg->node_id, on_placed, v);
  return 0;
}

static void on_drain_moved(void *arg, int status, json_t *body) {
  (void)arg;
  if (status != 200) {
    const char *msg = json_string_value(json_object_get(json_object_get(body, "error"), "message"));
    sfu_log(SFU_LOG_WARN, "migrate", "drain: %s", msg ? msg : "a room was not moved");
  }
  json_decref(body);
}

int sfu_migrate_all(sfu_migrator_t *m) {
  json_t *rooms = sfu_supervisor_list_json(m->sup), *j;
  size_t i;
  int n = 0;
  json_array_foreach(rooms, i, j) {
    sfu_room_rec_t *r = sfu_supervisor_find(m->sup, json_string_value(json_object_get(j, "room_id")));
    if (r && !r->moving && r->state == SFU_ROOM_RUNNING &&
        sfu_migrate_room(m, r, NULL, on_drain_moved, m) == 0)
      n++;
  }
  json_decref(rooms);
  return n;
}

static move_t *move_of(sfu_migrator_t *m, const sfu_room_rec_t *r) {
  for (move_t *v = m->moves; v; v = v->next)
    if (v->r == r) return v;
  return NULL;
}

void sfu_migrator_on_room_msg(sfu_migrator_t *m, sfu_room_rec_t *r, const char *type,
                              json_t *msg) {
  move_t *v = move_of(m, r);
  if (strcmp(type, "exported") == 0 && v && v->phase == EXPORTING) {
    json_t *state = json_object_get(msg, "state");
    if (json_is_object(state))
      on_exported(v, json_incref(state));
    else
      abort_move(v, 500, "migration_failed", "the room's export is malformed");
  }
  /* migration_ready: r->move_ready is set (the new node's status route) */
}

static void on_tail_sent(void *arg, int status, const char *location, const char *body,
                         size_t len, const char *err) {
  move_t *v = arg;
  (void)location, (void)body, (void)len;
  v->req = NULL;
  int again = (err || status >= 500) && v->tail_tries < TAIL_TRIES && !v->m->stopped;
  if (status == 200 && v->tail_tries > 1)
    sfu_log(SFU_LOG_INFO, "migrate", "room %s: node %s took its last usage at try %d",
            v->room_id, v->to.node_id, v->tail_tries);
  else if (status != 200)
    sfu_log(again ? SFU_LOG_INFO : SFU_LOG_WARN, "migrate",
            "room %s: node %s did not take its last usage (try %d): %s%s", v->room_id,
            v->to.node_id, v->tail_tries, err ? err : "refused", again ? "; trying again" : "");
  if (again) {
    v->tail_at_ms = sfu_now_ms() + ((uint64_t)TAIL_RETRY_MS << (v->tail_tries - 1));
    start_timer(v->m);
    return;
  }
  json_decref(v->tail_ms);
  v->tail_ms = NULL;
  maybe_free(v);
}

static void post_tail(move_t *v) {
  char path[128];
  snprintf(path, sizeof(path), "/v1/node/migrations/%s/usage", v->room_id);
  v->tail_tries++;
  if (ask(v, "POST", path, json_pack("{s:O}", "ms", v->tail_ms), on_tail_sent) != 0) {
    sfu_log(SFU_LOG_WARN, "migrate", "room %s: its last usage cannot be sent to %s", v->room_id,
            v->to.node_id);
    json_decref(v->tail_ms);
    v->tail_ms = NULL;
  }
}

/* The room that moved has ended here: the usage it counted up to the cut,
 * after its state went, goes to the new node's totals. */
static void send_tail(move_t *v, const sfu_room_rec_t *r) {
  json_t *ms = json_object(), *n;
  const char *kind;
  json_object_foreach(r->totals, kind, n) {
    json_int_t d = json_integer_value(n) - json_integer_value(json_object_get(v->exported, kind));
    if (d > 0) json_object_set_new(ms, kind, json_integer(d));
  }
  if (!json_object_size(ms) || v->m->stopped) {
    json_decref(ms);
    return;
  }
  v->tail_ms = ms;
  post_tail(v);
}

void sfu_migrator_on_room_gone(sfu_migrator_t *m, sfu_room_rec_t *r) {
  move_t *v = move_of(m, r);
  if (!v) return;
  v->r = NULL;
  if (v->tail) {
    v->tail = 0;
    send_tail(v, r);
    maybe_free(v);
    return;
  }
  if (v->phase == EXPORTING || v->phase == MOVING)
    abort_move(v, 409, "room_not_running", "the room ended during its move");
  /* PLACING, CREATING, COMMITTING: their answers see v->r gone */
}

int sfu_migrator_idle(const sfu_migrator_t *m) {
  for (const move_t *v = m ? m->moves : NULL; v; v = v->next)
    if (v->tail || v->tail_ms) return 0;
  return 1;
}

/* --- the new node ----------------------------------------------------------- */

json_t *sfu_migrator_accept(sfu_migrator_t *m, const char *body, size_t len, int *status) {
  json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
  json_t *record = json_object_get(j, "record"), *state = json_object_get(j, "state");
  json_t *sessions = json_object_get(j, "sessions"), *out = NULL;
  const char *id = json_string_value(json_object_get(j, "room_id"));
  const char *name = json_string_value(json_object_get(record, "name"));
  json_int_t maxp = json_integer_value(json_object_get(record, "max_participants"));
  json_int_t empty = json_integer_value(json_object_get(record, "empty_timeout_s"));
  sfu_room_rec_t *r;
  sfu_room_req_t rr;
  int rv;

  *status = 400;
  if (!json_is_object(record) || !json_is_object(state) || !json_is_array(sessions) || !id ||
      strlen(id) != SFU_ROOM_ID_LEN || strncmp(id, "rm_", 3) != 0 || (name && strlen(name) > SFU_ROOM_MAX_NAME) ||
      maxp < 1 || maxp > m->cfg->max_participants || empty < 1 || empty > 86400) {
    out = error_body("invalid_body", "not a room to move in");
    goto done;
  }
  r = sfu_supervisor_find(m->sup, id);
  if (r && r->state != SFU_ROOM_CRASHED && strcmp(r->id, id) == 0 &&
      strcmp(r->end_reason, "migrated") != 0) { /* (one that left it may come back) */
    *status = 409;
    out = error_body("room_exists", "room %s runs here already", id);
    goto done;
  }
  memset(&rr, 0, sizeof(rr));
  snprintf(rr.id, sizeof(rr.id), "%s", id);
  snprintf(rr.name, sizeof(rr.name), "%s", name ? name : "");
  rr.max_participants = (int)maxp;
  rr.empty_timeout_s = (int)empty;
  json_int_t audio = json_integer_value(json_object_get(record, "max_audio_streams"));
  rr.max_audio_streams = audio > 0 && audio <= m->cfg->max_participants ? (int)audio : 0;
  rr.moved_in = 1;
  switch ((rv = sfu_supervisor_spawn(m->sup, &rr, &r))) {
  case 0: break;
  case SFU_EDRAINING:
    *status = 503;
    out = error_body("draining", "this node is draining and accepts no rooms");
    goto done;
  case SFU_ECAPACITY:
    *status = 503;
    out = error_body("at_capacity", "this node runs its maximum of %d rooms", m->cfg->max_rooms);
    goto done;
  case SFU_EEXIST:
    *status = 409;
    out = error_body("name_in_use", "a live room is already named '%s'", rr.name);
    goto done;
  default:
    *status = 500;
    out = error_body("spawn_failed", "cannot start the room process: %s", sfu_strerror(rv));
    goto done;
  }
  sfu_room_req_free(&rr);
  sfu_supervisor_record_load(r, record); /* (its file follows at its first usage or join) */

  /* Sessions listed here, and the room's participants renumbered to them. */
  json_t *ids = json_object(), *parts = json_array(), *e;
  size_t i;
  if ((rv = sfu_ws_move_in(m->ws, r, sessions, ids)) != 0) {
    json_decref(ids);
    json_decref(parts);
    sfu_supervisor_close_room(m->sup, r, "migration_failed");
    *status = 400;
    out = error_body("invalid_body", "its sessions cannot be taken: %s", sfu_strerror(rv));
    goto done;
  }
  json_array_foreach(json_object_get(state, "participants"), i, e) {
    json_t *sid = json_object_get(ids, json_string_value(json_object_get(e, "sid")) ?: "");
    if (!sid) continue;
    json_t *c = json_copy(e);
    json_object_set(c, "session", sid);
    json_array_append_new(parts, c);
  }
  json_decref(ids);
  json_object_set_new(state, "participants", parts);
  json_t *msg = json_pack("{s:s, s:O}", "type", "migrate_in", "state", state);
  sfu_supervisor_send(r, msg);
  json_decref(msg);
  sfu_log(SFU_LOG_INFO, "migrate", "room %s: moving in from %s (%zu participants)", id,
          json_string_value(json_object_get(j, "from_node")) ?: "?", json_array_size(parts));
  *status = 201;
  out = json_pack("{s:s, s:s, s:s, s:i}", "room_id", id, "node_id", m->cfg->node_id, "ws_url",
                  m->ws_url, "participants", (int)json_array_size(parts));
done:
  json_decref(j);
  return out;
}

static sfu_room_rec_t *moving_in(sfu_migrator_t *m, const char *room_id, int *status,
                                 json_t **out) {
  sfu_room_rec_t *r = sfu_supervisor_find(m->sup, room_id);
  if (r && strcmp(r->id, room_id) == 0 && r->moving == SFU_MOVE_IN && r->state != SFU_ROOM_CRASHED &&
      !r->exited)
    return r;
  *status = 404;
  *out = error_body("not_moving_in", "room '%.64s' is not moving in here", room_id);
  return NULL;
}

json_t *sfu_migrator_status(sfu_migrator_t *m, const char *room_id, int *status) {
  json_t *out = NULL;
  sfu_room_rec_t *r = moving_in(m, room_id, status, &out);
  if (!r) return out;
  *status = 200;
  return json_pack("{s:s, s:b, s:i}", "room_id", r->id, "ready", r->move_ready, "participants",
                   r->participants);
}

typedef struct {
  sfu_migrate_cb cb;
  void *arg;
  char room_id[SFU_ROOM_ID_LEN + 1];
  json_int_t cut;
} taking_t;

/* The room's keys are this node's now (or etcd could not say so: the room
 * is committed here either way, and its keys follow at the next re-claim). */
static void on_taken(void *arg, int rv) {
  taking_t *t = arg;
  if (rv != 0)
    sfu_log(SFU_LOG_WARN, "migrate", "room %s: its keys could not be taken in etcd", t->room_id);
  t->cb(t->arg, 200, json_pack("{s:s, s:I, s:b}", "room_id", t->room_id, "cut_wall_ms", t->cut,
                               "keys_taken", rv == 0));
  free(t);
}

void sfu_migrator_commit(sfu_migrator_t *m, const char *room_id, const char *body, size_t len,
                         sfu_migrate_cb cb, void *arg) {
  int status;
  json_t *out = NULL, *j;
  sfu_room_rec_t *r = moving_in(m, room_id, &status, &out);
  taking_t *t = NULL;
  if (!r) {
    cb(arg, status, out);
    return;
  }
  j = json_loadb(body, len, 0, NULL);
  json_t *cut = json_object_get(j, "cut_wall_ms");
  if (!json_is_integer(cut) || !(t = calloc(1, sizeof(*t)))) {
    json_decref(j);
    cb(arg, t ? 400 : 500, t ? error_body("invalid_body", "'cut_wall_ms' is required")
                             : error_body("internal", "out of memory"));
    return;
  }
  json_t *msg = json_pack("{s:s, s:O}", "type", "migrate_commit", "cut_wall_ms", cut);
  int rv = sfu_supervisor_send(r, msg);
  json_decref(msg);
  t->cut = json_integer_value(cut);
  json_decref(j);
  if (rv != 0) {
    free(t);
    cb(arg, 409, error_body("room_not_running", "room %s cannot be asked", room_id));
    return;
  }
  r->moving = SFU_MOVE_NONE;
  sfu_log(SFU_LOG_INFO, "migrate", "room %s: moved in (%d participants)", r->id, r->participants);
  t->cb = cb;
  t->arg = arg;
  snprintf(t->room_id, sizeof(t->room_id), "%s", r->id);
  sfu_fleet_take(m->fleet, r->id, r->name, on_taken, t); /* answered when etcd says so */
}

json_t *sfu_migrator_usage(sfu_migrator_t *m, const char *room_id, const char *body, size_t len,
                           int *status) {
  sfu_room_rec_t *r = sfu_supervisor_find(m->sup, room_id);
  json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL), *ms = json_object_get(j, "ms"),
         *n, *out;
  const char *kind;
  int ok = json_is_object(ms);
  json_object_foreach(ms, kind, n) ok = ok && json_is_integer(n) && json_integer_value(n) >= 0 &&
                                       json_integer_value(n) <= INT32_MAX;
  if (!ok) {
    *status = 400;
    out = error_body("invalid_body", "'ms' must map usage kinds to milliseconds");
  } else if (!r || strcmp(r->id, room_id) != 0 || r->moving == SFU_MOVE_IN || r->exited ||
             r->state == SFU_ROOM_CRASHED || strcmp(r->end_reason, "migrated") == 0) {
    *status = 404;
    out = error_body("room_not_found", "room '%.64s' does not run here", room_id);
  } else {
    int added = !r->tail_taken;
    if (added) sfu_supervisor_add_totals(m->sup, r, ms);
    r->tail_taken = 1;
    *status = 200;
    out = json_pack("{s:s, s:b}", "room_id", r->id, "added", added);
  }
  json_decref(j);
  return out;
}

json_t *sfu_migrator_drop(sfu_migrator_t *m, const char *room_id, int *status) {
  json_t *out = NULL;
  sfu_room_rec_t *r = moving_in(m, room_id, status, &out);
  if (!r) return out;
  sfu_supervisor_close_room(m->sup, r, "migration_aborted"); /* may free r */
  *status = 202;
  return json_pack("{s:s}", "room_id", room_id);
}

/* --- set-up ------------------------------------------------------------------- */

int sfu_migrator_create(sfu_migrator_t **out, uv_loop_t *loop, const sfu_config_t *cfg,
                        sfu_supervisor_t *sup, sfu_ws_t *ws, sfu_fleet_t *fleet,
                        const char *ws_url) {
  sfu_migrator_t *m = calloc(1, sizeof(*m));
  *out = NULL;
  if (!m) return SFU_ENOMEM;
  m->loop = loop;
  m->cfg = cfg;
  m->sup = sup;
  m->ws = ws;
  m->fleet = fleet;
  snprintf(m->ws_url, sizeof(m->ws_url), "%s", ws_url);
  snprintf(m->auth, sizeof(m->auth),
           "Authorization: Bearer %s\r\nContent-Type: application/json\r\nX-SFU-Proxied: %s\r\n",
           cfg->api_key, cfg->node_id);
  uv_timer_init(loop, &m->timer);
  m->timer.data = m;
  uv_unref((uv_handle_t *)&m->timer);
  *out = m;
  return 0;
}

void sfu_migrator_set_events(sfu_migrator_t *m, struct sfu_events_s *e) { m->events = e; }

void sfu_migrator_stop(sfu_migrator_t *m) {
  if (!m || m->stopped) return;
  m->stopped = 1;
  for (move_t *v = m->moves, *next; v; v = next) {
    next = v->next; /* finish() may free v */
    if (v->req) sfu_httpc_cancel(v->req);
    v->req = NULL;
    if (v->tail_ms)
      sfu_log(SFU_LOG_WARN, "migrate", "room %s: its last usage never reached %s (node stopping)",
              v->room_id, v->to.node_id);
    if (v->phase == DONE) continue;
    if (v->r) v->r->moving = SFU_MOVE_NONE;
    v->r = NULL;
    if (v->phase == PLACING) { /* etcd's answer still comes: it frees v */
      sfu_migrate_cb cb = v->cb;
      v->cb = NULL;
      if (cb) cb(v->arg, 503, error_body("shutting_down", "this node is stopping"));
      continue;
    }
    finish(v, 503, error_body("shutting_down", "this node is stopping"));
  }
  uv_close((uv_handle_t *)&m->timer, NULL);
}

void sfu_migrator_destroy(sfu_migrator_t *m) {
  if (!m) return;
  while (m->moves) {
    move_t *v = m->moves;
    m->moves = v->next;
    free_move(v);
  }
  free(m);
}
