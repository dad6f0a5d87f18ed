/*
 * supervisor.c -- spawn, watch and reap room processes.
 *
 * Life of a record:
 *
 *   spawn ──▶ STARTING ──"ready"──▶ RUNNING ──DELETE / "closing"──▶ CLOSING
 *                │                     │                              │
 *                └──── exit, kill, ────┴── silence > timeout          exit
 *                      IPC failure         (SIGKILL)                   │
 *                           │                                          ▼
 *                           ▼                                   unlisted, freed
 *                        CRASHED ── retention or DELETE ──▶ unlisted, freed
 *
 * A record is freed when it is unlisted *and* its two handles (process and
 * IPC pipe) have closed; whichever happens last frees it. The exit callback
 * is the only place that decides between a clean end and a crash: a room is
 * clean when it was CLOSING (asked to, or announced it) — a room that exits
 * by itself without announcing it, or is killed, crashed.
 *
 * One repeating timer (heartbeat_ms) does all periodic work: pings, the
 * silence check, the SIGKILL deadline of closing rooms and the expiry of
 * crashed records. Per room, that is one small JSON message per interval.
 *
 * An upgrade (docs/internals/upgrade.md) exports every record with its
 * IPC descriptor and the zygote's; the new process adopts them: rooms
 * forked by the old zygote keep it, retired, as the source of their exit
 * notices; exec'd rooms (no uv_process in the new process) are reaped by
 * pid from a SIGCHLD handler.
 *
 * Moderation (kicks, bans, server mutes; supervisor.h) is state of the
 * record, so it lives exactly as long as the room. Its arrays are kept in
 * the order things happened and searched linearly: they are consulted
 * once per join and changed once per API call, never per packet, and the
 * largest (10,000 kicks) is ~1 MiB and a few tens of microseconds to scan.
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


#include "sfu/base/log.h"
#include "sfu/base/sfu.h"
#include "sfu/base/vec.h"
#include "sfu/node/etcd.h"
#include "sfu/node/events.h"
#include "sfu/node/spawner.h"
#include "sfu/node/supervisor.h"

struct sfu_supervisor_s {
  uv_loop_t *loop;
  const sfu_config_t *cfg;
  sfu_metrics_t *metrics;
  uv_timer_t tick;           /* heartbeat and housekeeping */
  sfu_room_rec_t *rooms;     /* listed records */
  unsigned remote_next;      /* joins offered to relays of other nodes' rooms */
  int draining;              /* refuse new rooms */
  int shutting_down;         /* shutdown() called */
  void (*done)(sfu_supervisor_t *s, void *arg);
  void *done_arg;
  int tick_closed;
  int records_alive;         /* allocated records, listed or not */
  sfu_supervisor_hooks_t hooks; /* clients of rooms */
  sfu_spawner_t *spawner;    /* the zygote, or NULL: exec rooms directly */
  sfu_events_t *events;      /* the journal, or NULL */
  /* taken over by an upgrade (docs/internals/upgrade.md) */
  SFU_VEC(sfu_spawner_t *) retired; /* old zygotes, until their rooms end */
  SFU_VEC(int) reap;         /* pids to reap on SIGCHLD: retired zygotes */
  uv_signal_t sigchld;       /* started by an adoption */
  int sigchld_on;
};

void sfu_supervisor_set_events(sfu_supervisor_t *s, sfu_events_t *e) { s->events = e; }

/* Records of a relay are its room's. */
static void emit(sfu_room_rec_t *r, const char *type, json_t *fields) {
  if (r->sup->events)
    sfu_events_emit(r->sup->events, type, r->origin_id[0] ? r->origin_id : r->id, fields);
  else
    json_decref(fields);
}

void sfu_supervisor_set_hooks(sfu_supervisor_t *s, const sfu_supervisor_hooks_t *h) {
  s->hooks = *h;
}

static void notify_gone(sfu_room_rec_t *r, int crashed) {
  if (r->sup->hooks.room_gone) r->sup->hooks.room_gone(r->sup->hooks.arg, r, crashed);
}

const char *sfu_room_state_name(sfu_room_state_t st) {
  switch (st) {
  case SFU_ROOM_STARTING: return "starting";
  case SFU_ROOM_RUNNING: return "running";
  case SFU_ROOM_CLOSING: return "closing";
  case SFU_ROOM_CRASHED: return "crashed";
  }
  return "unknown";
}

static int is_live(const sfu_room_rec_t *r) { return r->state != SFU_ROOM_CRASHED; }
static int is_relay(const sfu_room_rec_t *r) { return r->origin_id[0] != '\0'; }

/* A room that moved to another node and is ending here: its name and id
 * belong to the room there, which may even come back here. */
static int moved_away(const sfu_room_rec_t *r) {
  return r->state == SFU_ROOM_CLOSING && strcmp(r->end_reason, "migrated") == 0;
}

static void room_log(sfu_log_level_t lvl, const sfu_room_rec_t *r,
                     const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void room_log(sfu_log_level_t lvl, const sfu_room_rec_t *r,
                     const char *fmt, ...) {
  char kv[96], msg[512];
  va_list ap;
  snprintf(kv, sizeof(kv), "room=%s pid=%d", r->id, r->pid);
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  sfu_log_kv(lvl, "supervisor", kv, "%s", msg);
}

int sfu_supervisor_room_path(const sfu_config_t *cfg, const char *id, const char *ext, char *out,
                             size_t cap) {
  int n = snprintf(out, cap, "%s/rooms/%s.%s", cfg->data_dir, id, ext);
  return n > 0 && (size_t)n < cap ? 0 : SFU_E2BIG;
}

/* <data_dir>/rooms/<id>.json: what sfud knows of a live room, for the sfud
 * that takes it over if this one dies (recover.c). A change marks the
 * record (save_record); the heartbeat tick writes what is marked
 * (write_record), whole (a rename: never half written), so a burst of
 * API calls costs one write per tick, and a crash loses at most a tick's
 * changes. No fsync: a dead sfud's page cache survives it, a dead machine
 * takes the rooms with it. */
static void save_record(sfu_room_rec_t *r) { r->record_dirty = 1; }

static void write_record(sfu_room_rec_t *r) {
  char path[600], tmp[608];
  r->record_dirty = 0;
  if (!r->sup->cfg->room_orphan_grace_s || r->state == SFU_ROOM_CRASHED || is_relay(r) ||
      sfu_supervisor_room_path(r->sup->cfg, r->id, "json", path, sizeof(path)) != 0)
    return;
  snprintf(tmp, sizeof(tmp), "%s.tmp", path);
  json_t *j = sfu_supervisor_record_json(r);
  json_object_set_new(j, "via_zygote", json_boolean(r->via_zygote));
  if (json_dump_file(j, tmp, JSON_COMPACT) != 0 || rename(tmp, path) != 0) {
    if (!r->save_failed)
      room_log(SFU_LOG_WARN, r, "cannot write %s: %s (a restarted sfud will not take it over)",
               path, strerror(errno));
    r->save_failed = 1;
  }
  json_decref(j);
}

static void forget_record(sfu_room_rec_t *r) {
  char path[600];
  if (sfu_supervisor_room_path(r->sup->cfg, r->id, "json", path, sizeof(path)) == 0) unlink(path);
}

static void maybe_done(sfu_supervisor_t *s);
static void relay_ready(sfu_room_rec_t *relay);
static void on_link(sfu_room_rec_t *r, const char *type, json_t *msg);
static void relay_or_origin_ended(sfu_room_rec_t *r);
static void to_relays(sfu_room_rec_t *r, json_t *m);

static void record_free(sfu_room_rec_t *r) {
  sfu_supervisor_t *s = r->sup;
  json_decref(r->metadata);
  json_decref(r->stats);
  json_decref(r->people);
  json_decref(r->totals);
  json_decref(r->link_local[0]);
  json_decref(r->link_local[1]);
  sfu_vec_free(&r->mod.denied);
  sfu_vec_free(&r->mod.bans);
  sfu_vec_free(&r->mod.muted);
  sfu_vec_free(&r->mod.tokens);
  free(r);
  s->records_alive--;
  maybe_done(s);
}

static int is_listed(sfu_supervisor_t *s, sfu_room_rec_t *r) {
  for (sfu_room_rec_t *p = s->rooms; p; p = p->next)
    if (p == r) return 1;
  return 0;
}

static void unlist(sfu_room_rec_t *r) {
  sfu_supervisor_t *s = r->sup;
  if (sfu_supervisor_find(s, r->id) == r) forget_record(r); /* (not one moved back in) */
  for (sfu_room_rec_t **pp = &s->rooms; *pp; pp = &(*pp)->next) {
    if (*pp == r) {
      *pp = r->next;
      r->next = NULL;
      break;
    }
  }
  if (r->handles_open == 0) record_free(r);
}

static void handle_closed(sfu_room_rec_t *r) {
  if (--r->handles_open == 0 && !is_listed(r->sup, r)) record_free(r);
}

static void on_proc_closed(uv_handle_t *h) { handle_closed(h->data); }
static void on_ipc_closed(sfu_ipc_t *ipc) { handle_closed(ipc->data); }
/* The pipe of a spawn that failed: never became a channel. */
static void on_raw_pipe_closed(uv_handle_t *h) {
  handle_closed(((sfu_ipc_t *)h->data)->data);
}

static void close_handles(sfu_room_rec_t *r) {
  if (!r->via_zygote && !r->adopted && !r->foreign && !uv_is_closing((uv_handle_t *)&r->proc))
    uv_close((uv_handle_t *)&r->proc, on_proc_closed);
  sfu_ipc_close(&r->ipc, on_ipc_closed);
}

static void kill_room(sfu_room_rec_t *r, const char *reason) {
  if (r->exited) return;
  if (reason && r->end_reason[0] == '\0')
    snprintf(r->end_reason, sizeof(r->end_reason), "%s", reason);
  room_log(SFU_LOG_WARN, r, "killing room (%s)", reason ? reason : r->end_reason);
  if (r->via_zygote || r->adopted || r->foreign)
    kill(r->pid, SIGKILL);
  else
    uv_process_kill(&r->proc, SIGKILL);
}

/* The one place that decides between a clean end and a crash. */
static void room_exited(sfu_room_rec_t *r, int64_t status, int term_signal) {
  sfu_supervisor_t *s = r->sup;

  r->exited = 1;
  r->exit_status = status;
  r->term_signal = term_signal;
  relay_or_origin_ended(r);
  if (r->state == SFU_ROOM_CLOSING) {
    s->metrics->rooms_finished++;
    room_log(status == 0 && term_signal == 0 ? SFU_LOG_INFO : SFU_LOG_WARN, r,
             "room ended (%s), exit status %lld signal %d", r->end_reason,
             (long long)status, term_signal);
    notify_gone(r, 0);
    /* moved on (room_migrated), or a move in that did not happen: not finished */
    if (strcmp(r->end_reason, "migrated") != 0 && r->moving != SFU_MOVE_IN && !is_relay(r))
      emit(r, "room_finished", json_pack("{s:s, s:i, s:O, s:I}", "reason", r->end_reason,
                                         "participants", r->sessions, "ms", r->totals,
                                         "duration_ms",
                                         (json_int_t)(sfu_wall_ms() - r->created_wall_ms)));
    close_handles(r);
    unlist(r);
    return;
  }
  if (r->end_reason[0] == '\0') {
    if (term_signal)
      snprintf(r->end_reason, sizeof(r->end_reason), "signal %d", term_signal);
    else
      snprintf(r->end_reason, sizeof(r->end_reason), "exit status %lld", (long long)status);
  }
  r->state = SFU_ROOM_CRASHED;
  r->ended_wall_ms = sfu_wall_ms();
  s->metrics->room_crashes++;
  room_log(SFU_LOG_ERROR, r, "room crashed: %s (participants %d)", r->end_reason,
           r->participants);
  notify_gone(r, 1);
  if (r->moving == SFU_MOVE_IN) { /* the call goes on where it was: no record */
    json_object_clear(r->people);
    close_handles(r);
    if (s->shutting_down || s->cfg->crashed_retention_s == 0) unlist(r);
    return;
  }
  /* Their usage ends at the room's last checkpoint: nothing more to count,
   * but every open session is closed, then the room. */
  const char *sid;
  json_t *who;
  json_object_foreach(r->people, sid, who)
    emit(r, "participant_left", json_pack("{s:O, s:s, s:s}", "participant", who, "sid", sid,
                                          "reason", "room_crashed"));
  json_object_clear(r->people);
  if (!is_relay(r)) /* a relay's room goes on */
    emit(r, "room_crashed", json_pack("{s:s, s:I, s:i, s:i, s:O, s:I}", "end_reason",
                                    r->end_reason, "exit_status", (json_int_t)status, "signal",
                                    term_signal, "participants", r->sessions, "ms", r->totals,
                                    "duration_ms",
                                    (json_int_t)(sfu_wall_ms() - r->created_wall_ms)));
  close_handles(r);
  if (s->shutting_down || s->cfg->crashed_retention_s == 0) unlist(r);
}

static void on_exit_cb(uv_process_t *proc, int64_t status, int term_signal) {
  room_exited(proc->data, status, term_signal);
}

static void on_zygote_exit(void *arg, int pid, int64_t status, int term_signal) {
  sfu_supervisor_t *s = arg;
  for (sfu_room_rec_t *r = s->rooms; r; r = r->next)
    if (r->via_zygote && r->pid == pid && !r->exited) {
      room_exited(r, status, term_signal);
      return;
    }
}

static void on_zygote_died(void *arg, sfu_spawner_t *sp) {
  sfu_supervisor_t *s = arg;
  sfu_room_rec_t *r, *next;
  for (r = s->rooms; r; r = next) {
    next = r->next; /* room_exited may unlist */
    if (!r->via_zygote || r->zyg != sp || r->exited) continue;
    /* Its rooms die with the zygote (PDEATHSIG), and their IPC may break
     * before sfud hears of the zygote: the zygote's death is the cause. */
    if (r->end_reason[0] == '\0' || strcmp(r->end_reason, "ipc_error") == 0)
      snprintf(r->end_reason, sizeof(r->end_reason), "zygote_died");
    room_exited(r, 0, SIGKILL);
  }
}

static void start_closing(sfu_room_rec_t *r, const char *reason) {
  r->state = SFU_ROOM_CLOSING;
  if (r->end_reason[0] == '\0')
    snprintf(r->end_reason, sizeof(r->end_reason), "%s", reason);
  r->close_deadline_ms = sfu_now_ms() + (uint64_t)r->sup->cfg->shutdown_grace_ms;
}

/* A room's packet counters (sfu_pkt_counters) from its stats (borrowed;
 * NULL: all 0). */
static void packet_counters(const json_t *stats, uint64_t out[SFU_PKT_N]) {
  json_t *pk = json_object_get(stats, "packets");
  for (size_t i = 0; i < SFU_PKT_N; i++) {
    const sfu_pkt_counter_t *c = &sfu_pkt_counters[i];
    json_int_t v = json_integer_value(
        json_object_get(c->group ? json_object_get(pk, c->group) : pk, c->key));
    out[i] = v > 0 ? (uint64_t)v : 0;
  }
}

static void on_ipc_msg(sfu_ipc_t *ipc, json_t *msg) {
  sfu_room_rec_t *r = ipc->data;
  sfu_supervisor_t *s = r->sup;
  const char *type = json_string_value(json_object_get(msg, "type"));
  json_t *p;

  r->last_heard_ms = sfu_now_ms();
  if (!type) {
    s->metrics->ipc_bad_messages++;
    return;
  }
  if ((p = json_object_get(msg, "participants")) && json_is_integer(p))
    r->participants = (int)json_integer_value(p);
  if (strcmp(type, "ready") == 0) {
    if (r->state == SFU_ROOM_STARTING) {
      r->state = SFU_ROOM_RUNNING;
      r->ready_us = sfu_now_us();
      double secs = (double)(r->ready_us - r->spawned_us) / 1e6;
      sfu_histogram_observe(&s->metrics->spawn_seconds, secs);
      room_log(SFU_LOG_INFO, r, "room ready in %.2f ms", secs * 1e3);
      if (is_relay(r)) relay_ready(r);
    }
  } else if (strcmp(type, "link_local") == 0 || strcmp(type, "link_msg") == 0) {
    on_link(r, type, msg);
  } else if (strcmp(type, "pong") == 0 || strcmp(type, "stats") == 0) {
    json_decref(r->stats);
    r->stats = json_incref(msg);
    json_object_del(r->stats, "type");
    json_object_del(r->stats, "seq");
    uint64_t now[SFU_PKT_N];
    packet_counters(r->stats, now);
    sfu_metrics_add_packets(s->metrics, r->pkt_seen, now);
  } else if (strcmp(type, "usage") == 0) {
    /* Usage checkpoints: counted here; the journal (docs/events.md) is
     * where they are going. */
    json_t *recs = json_object_get(msg, "records"), *rec;
    size_t i;
    s->metrics->usage_records += json_is_array(recs) ? json_array_size(recs) : 0;
    json_array_foreach(recs, i, rec) {
      sfu_supervisor_add_totals(s, r, json_object_get(rec, "ms"));
      emit(r, "usage", json_pack("{s:O*, s:O*, s:O*, s:O*, s:O*, s:O*}", "participant",
                                 json_object_get(rec, "identity"), "sid", json_object_get(rec, "sid"),
                                 "period_start_ms", json_object_get(rec, "period_start_ms"),
                                 "period_end_ms", json_object_get(rec, "period_end_ms"), "ms",
                                 json_object_get(rec, "ms"), "final", json_object_get(rec, "final")));
    }
    if (sfu_log_enabled(SFU_LOG_DEBUG)) {
      char *text = json_dumps(recs, JSON_COMPACT);
      room_log(SFU_LOG_DEBUG, r, "usage %s", text ? text : "");
      free(text);
    }
  } else if (strcmp(type, "event") == 0) {
    json_t *ev = json_object_get(msg, "event");
    const char *et = json_string_value(json_object_get(ev, "type"));
    const char *sid = json_string_value(json_object_get(ev, "sid"));
    if (!et || !sid) {
      s->metrics->ipc_bad_messages++;
      return;
    }
    if (strcmp(et, "participant_joined") == 0) {
      sfu_room_rec_t *o = sfu_supervisor_origin(s, r);
      json_object_set(r->people, sid, json_object_get(ev, "participant"));
      r->sessions++;
      if (o && o != r) o->sessions++; /* the room's count, all its processes */
    }
    else if (strcmp(et, "participant_left") == 0)
      json_object_del(r->people, sid);
    json_t *fields = json_deep_copy(ev);
    json_object_del(fields, "type");
    emit(r, et, fields);
    if (strcmp(et, "participant_joined") == 0 || strcmp(et, "participant_left") == 0)
      save_record(r); /* its people */
  } else if (strncmp(type, "client_", 7) == 0) {
    if (s->hooks.room_msg) s->hooks.room_msg(s->hooks.arg, r, type, msg);
  } else if (strcmp(type, "exported") == 0 || strcmp(type, "migration_ready") == 0) {
    if (type[0] == 'm') r->move_ready = 1;
    if (s->hooks.room_move) s->hooks.room_move(s->hooks.arg, r, type, msg);
  } else if (strcmp(type, "closing") == 0) {
    const char *why = json_string_value(json_object_get(msg, "reason"));
    if (r->state != SFU_ROOM_CLOSING) {
      start_closing(r, why ? why : "room_closed");
      room_log(SFU_LOG_INFO, r, "room is closing (%s)", r->end_reason);
    }
  } else {
    s->metrics->ipc_bad_messages++;
    room_log(SFU_LOG_WARN, r, "unknown IPC message type '%.32s'", type);
  }
}

static void on_ipc_error(sfu_ipc_t *ipc, int err) {
  sfu_room_rec_t *r = ipc->data;
  if (r->foreign && !r->exited) { /* not our child: its channel is all we see of it */
    if (r->state != SFU_ROOM_CLOSING && r->end_reason[0] == '\0')
      snprintf(r->end_reason, sizeof(r->end_reason), "%s", err ? "ipc_error" : "channel_closed");
    if (err) kill(r->pid, SIGKILL);
    room_exited(r, 0, 0);
    return;
  }
  /* EOF, or a reset when the room died with sfud's bytes unread: its exit
   * callback follows and names the cause. */
  if (err == 0 || err == UV_ECONNRESET || r->exited) return;
  r->sup->metrics->ipc_bad_messages++;
  room_log(SFU_LOG_ERROR, r, "IPC channel failed: %s", sfu_strerror(err));
  if (r->state != SFU_ROOM_CLOSING) kill_room(r, "ipc_error");
}

/* The room's IPC backlog drained: its paused client sessions resume. */
static void on_ipc_drain(sfu_ipc_t *ipc) {
  sfu_room_rec_t *r = ipc->data;
  if (r->sup->hooks.room_drained) r->sup->hooks.room_drained(r->sup->hooks.arg, r);
}

static int name_in_use(sfu_supervisor_t *s, const char *name) {
  for (sfu_room_rec_t *r = s->rooms; r; r = r->next)
    if (is_live(r) && !moved_away(r) && !is_relay(r) && r->name[0] && strcmp(r->name, name) == 0)
      return 1;
  return 0;
}

/* Forks the room from the zygote; its IPC is a fresh socketpair. */
static int spawn_forked(sfu_supervisor_t *s, sfu_room_rec_t *r, char **args) {
  int sv[2], pid = 0, rv;
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return -errno;
  rv = sfu_spawner_spawn(s->spawner, args, sv[1], &pid);
  close(sv[1]);
  if (rv == 0) rv = sfu_ipc_init(s->loop, &r->ipc, sv[0], on_ipc_msg, on_ipc_error);
  if (rv != 0) {
    if (pid > 0) kill(pid, SIGKILL); /* its exit is ignored: no record has it */
    close(sv[0]);
    sfu_log(SFU_LOG_WARN, "supervisor", "zygote spawn failed (%s); exec'ing the room",
            sfu_strerror(rv));
    return rv;
  }
  r->via_zygote = 1;
  r->zyg = s->spawner;
  r->pid = pid;
  r->handles_open = 1; /* the IPC pipe only */
  return 0;
}

static int spawn(sfu_supervisor_t *s, sfu_room_req_t *req, sfu_room_rec_t *origin,
                 sfu_room_rec_t **out);

int sfu_supervisor_spawn(sfu_supervisor_t *s, sfu_room_req_t *req,
                         sfu_room_rec_t **out) {
  int live = 0;
  *out = NULL;
  if (s->draining || s->shutting_down) return SFU_EDRAINING;
  for (sfu_room_rec_t *r = s->rooms; r; r = r->next) live += is_live(r) && !is_relay(r);
  if (live >= s->cfg->max_rooms) return SFU_ECAPACITY;
  if (req->name[0] && name_in_use(s, req->name)) return SFU_EEXIST;
  return spawn(s, req, NULL, out);
}

/* A room's process, or (origin set) one of its relays. */
static int spawn(sfu_supervisor_t *s, sfu_room_req_t *req, sfu_room_rec_t *origin,
                 sfu_room_rec_t **out) {
  const sfu_config_t *cfg = s->cfg;
  int rv;

  sfu_room_rec_t *r = calloc(1, sizeof(*r));
  if (!r) return SFU_ENOMEM;
  s->records_alive++;
  r->sup = s;
  if (req->id[0])
    snprintf(r->id, sizeof(r->id), "%s", req->id);
  else
    sfu_random_hex(r->id, origin ? "rl_" : "rm_", 8);
  if (origin) snprintf(r->origin_id, sizeof(r->origin_id), "%s", origin->id);
  memcpy(r->name, req->name, sizeof(r->name));
  r->max_participants = req->max_participants;
  r->empty_timeout_s = req->empty_timeout_s;
  r->max_audio_streams = req->max_audio_streams;
  r->metadata = req->metadata;
  req->metadata = NULL;
  r->state = SFU_ROOM_STARTING;
  r->created_wall_ms = sfu_wall_ms();
  r->people = json_object();
  r->totals = json_object();
  r->moving = req->moved_in ? SFU_MOVE_IN : SFU_MOVE_NONE;

  char a_max[16], a_empty[16], a_hb[16], a_pmin[8], a_pmax[8], a_usage[8];
  snprintf(a_usage, sizeof(a_usage), "%d", cfg->usage_interval_s);
  snprintf(a_pmin, sizeof(a_pmin), "%d", cfg->rtc_port_min);
  snprintf(a_pmax, sizeof(a_pmax), "%d", cfg->rtc_port_max);
  snprintf(a_max, sizeof(a_max), "%d", r->max_participants);
  snprintf(a_empty, sizeof(a_empty), "%d", r->empty_timeout_s);
  snprintf(a_hb, sizeof(a_hb), "%d", cfg->heartbeat_timeout_ms);
  char a_grace[16], a_sock[600], a_audio[16], a_media[16], a_dyn[16];
  snprintf(a_audio, sizeof(a_audio), "%d", r->max_audio_streams);
  snprintf(a_media, sizeof(a_media), "%d", cfg->media_timeout_s);
  snprintf(a_dyn, sizeof(a_dyn), "%d", cfg->dynacast_stop_ms);
  snprintf(a_grace, sizeof(a_grace), "%d", cfg->room_orphan_grace_s);
  if (sfu_supervisor_room_path(cfg, r->id, "sock", a_sock, sizeof(a_sock)) != 0 ||
      strlen(a_sock) >= 108) /* sun_path */
    snprintf(a_grace, sizeof(a_grace), "0");
  char *args[] = {(char *)cfg->room_binary, "--room-id", r->id,
                  "--max-participants", a_max, "--empty-timeout-s", a_empty,
                  "--parent-timeout-ms", a_hb, "--usage-interval-s", a_usage, "--log-level",
                  (char *)cfg->log_level, "--rtc-addresses", (char *)cfg->rtc_addresses,
                  "--rtc-port-min", a_pmin, "--rtc-port-max", a_pmax, "--rtc-announce",
                  (char *)(cfg->rtc_announced_address[0] ? cfg->rtc_announced_address : "-"),
                  "--orphan-grace-s", a_grace, "--socket", a_sock, "--max-audio-streams",
                  a_audio, "--media-timeout-s", a_media, "--dynacast-stop-ms", a_dyn, NULL};
  uv_stdio_container_t stdio[4];
  stdio[0].flags = UV_IGNORE;
  stdio[1].flags = UV_INHERIT_FD;
  stdio[1].data.fd = 1;
  stdio[2].flags = UV_INHERIT_FD;
  stdio[2].data.fd = 2;
  stdio[3].flags = UV_CREATE_PIPE | UV_READABLE_PIPE | UV_WRITABLE_PIPE;
  stdio[3].data.stream = (uv_stream_t *)&r->ipc.pipe;
  uv_process_options_t opt = {
      .exit_cb = on_exit_cb,
      .file = cfg->room_binary,
      .args = args,
      .stdio_count = 4,
      .stdio = stdio,
  };

  r->ipc.data = r;
  r->proc.data = r;
  r->spawned_us = sfu_now_us();
  if (sfu_spawner_alive(s->spawner) && spawn_forked(s, r, args) == 0) {
    rv = 0;
  } else {
    uv_pipe_init(s->loop, &r->ipc.pipe, 0);
    r->ipc.pipe.data = &r->ipc;
    r->handles_open = 2;
    rv = uv_spawn(s->loop, &r->proc, &opt);
    if (rv != 0) {
      s->metrics->spawn_failures++;
      sfu_log(SFU_LOG_ERROR, "supervisor", "cannot spawn %s: %s", cfg->room_binary,
              uv_strerror(rv));
      uv_close((uv_handle_t *)&r->proc, on_proc_closed);
      uv_close((uv_handle_t *)&r->ipc.pipe, on_raw_pipe_closed);
      return rv;
    }
    r->pid = r->proc.pid;
    rv = sfu_ipc_init(s->loop, &r->ipc, -1, on_ipc_msg, on_ipc_error);
  }
  r->ipc.on_drain = on_ipc_drain;
  r->last_heard_ms = sfu_now_ms();
  r->next = s->rooms;
  s->rooms = r;
  s->metrics->rooms_created++;
  if (rv != 0) {
    room_log(SFU_LOG_ERROR, r, "cannot read IPC: %s", uv_strerror(rv));
    kill_room(r, "ipc_error");
  } else {
    room_log(SFU_LOG_INFO, r, "%s spawned (name '%s', max_participants %d)%s",
             origin ? "relay" : "room", r->name, r->max_participants,
             req->moved_in ? ", moving in" : "");
    if (!req->moved_in && !origin) /* a room moving in started on another node */
      emit(r, "room_started", json_pack("{s:s, s:i}", "name", r->name, "max_participants",
                                        r->max_participants));
    write_record(r); /* at once: the room may outlive this sfud from now on */
  }
  *out = r;
  return 0;
}

void sfu_supervisor_add_totals(sfu_supervisor_t *s, sfu_room_rec_t *r, json_t *ms) {
  sfu_room_rec_t *o = sfu_supervisor_origin(s, r); /* a relay's count in its room's */
  const char *kind;
  json_t *v;
  if (!o) o = r;
  json_object_foreach(ms, kind, v) {
    json_int_t sum = json_integer_value(json_object_get(o->totals, kind)) + json_integer_value(v);
    json_object_set_new(o->totals, kind, json_integer(sum));
  }
  save_record(o);
}

sfu_room_rec_t *sfu_supervisor_find(sfu_supervisor_t *s, const char *id) {
  sfu_room_rec_t *by_name = NULL;
  for (sfu_room_rec_t *r = s->rooms; r; r = r->next) {
    if (is_relay(r)) continue;
    if (strcmp(r->id, id) == 0) return r; /* the newest first: one moving back in */
    if (!by_name && is_live(r) && !moved_away(r) && r->name[0] && strcmp(r->name, id) == 0)
      by_name = r;
  }
  return by_name;
}

int sfu_supervisor_send(sfu_room_rec_t *r, json_t *msg) {
  if (r->exited || r->state == SFU_ROOM_CRASHED) return SFU_ECANCELED;
  /* Control messages: never refused for the queue's size. Client traffic
   * (ws.c) checks sfu_ipc_congested() first and waits for the drain. */
  return sfu_ipc_send_control(&r->ipc, msg);
}

int sfu_supervisor_close_room(sfu_supervisor_t *s, sfu_room_rec_t *r,
                              const char *reason) {
  if (r->state == SFU_ROOM_CRASHED) {
    unlist(r);
    return 0;
  }
  if (r->state == SFU_ROOM_CLOSING) return 0;
  start_closing(r, reason);
  json_t *m = json_pack("{s:s, s:s}", "type", "shutdown", "reason", reason);
  int rv = sfu_supervisor_send(r, m);
  json_decref(m);
  room_log(SFU_LOG_INFO, r, "asking room to close (%s)", reason);
  if (rv != 0 || s->cfg->shutdown_grace_ms == 0) kill_room(r, NULL);
  return 0;
}

/* A retired zygote whose rooms have all ended is closed (it exits). */
static void drop_retired(sfu_supervisor_t *s) {
  for (int i = 0; i < s->retired.n;) {
    sfu_spawner_t *sp = s->retired.items[i];
    int rooms = 0;
    for (sfu_room_rec_t *r = s->rooms; r; r = r->next) rooms += r->zyg == sp && !r->exited;
    if (rooms) {
      i++;
      continue;
    }
    sfu_log(SFU_LOG_INFO, "supervisor", "retired zygote %d has no rooms left: closing it",
            sfu_spawner_pid(sp));
    for (sfu_room_rec_t *r = s->rooms; r; r = r->next)
      if (r->zyg == sp) r->zyg = NULL;
    sfu_spawner_stop(sp);
    sfu_vec_remove_swap(&s->retired, i);
  }
}

static int load_of(const sfu_room_rec_t *x);

/* A room spread by relay_threshold folds back as it shrinks: once all its
 * processes here serve at most half of what one fewer could hold, the
 * least busy relay it started by itself ends as "relay_closed" -- its
 * clients are told to join again (4016) and are placed on the others.
 * (Spreading needs every process at the threshold: the two never chase
 * each other.) Relays asked for through the API stay. */
static void fold_back(sfu_room_rec_t *r) {
  sfu_supervisor_t *s = r->sup;
  int thr = s->cfg->relay_threshold, n = 1, total = load_of(r);
  sfu_room_rec_t *least = NULL;
  if (thr <= 0 || is_relay(r) || r->state != SFU_ROOM_RUNNING || s->draining) return;
  for (sfu_room_rec_t *x = s->rooms; x; x = x->next) {
    if (!is_relay(x) || strcmp(x->origin_id, r->id) != 0 || x->exited) continue;
    if (x->state != SFU_ROOM_RUNNING) return; /* one on its way or going: later */
    n++;
    total += load_of(x);
    if (x->folds && (!least || load_of(x) < load_of(least))) least = x;
  }
  if (!least || total * 2 > thr * (n - 1)) return;
  room_log(SFU_LOG_INFO, r, "%d participants in %d processes: folding relay %s back", total, n,
           least->id);
  sfu_supervisor_close_room(s, least, "relay_closed");
}

static void on_tick(uv_timer_t *t) {
  sfu_supervisor_t *s = t->data;
  uint64_t now = sfu_now_ms();
  int64_t wall = sfu_wall_ms();
  sfu_room_rec_t *r, *next;

  if (s->retired.n) drop_retired(s);

  for (r = s->rooms; r; r = next) {
    next = r->next; /* unlist() may free r */
    if (r->record_dirty) write_record(r);
    switch (r->state) {
    case SFU_ROOM_CRASHED:
      if (wall - r->ended_wall_ms >= (int64_t)s->cfg->crashed_retention_s * 1000)
        unlist(r);
      break;
    case SFU_ROOM_CLOSING:
      if (now >= r->close_deadline_ms) kill_room(r, NULL);
      break;
    default:
      if (now - r->last_heard_ms > (uint64_t)s->cfg->heartbeat_timeout_ms) {
        s->metrics->heartbeat_kills++;
        kill_room(r, "unresponsive");
      } else {
        json_t *m = json_pack("{s:s, s:I}", "type", "ping", "seq", (json_int_t)++r->ping_seq);
        sfu_supervisor_send(r, m);
        json_decref(m);
        fold_back(r);
      }
    }
  }
}

int sfu_supervisor_create(sfu_supervisor_t **out, uv_loop_t *loop,
                          const sfu_config_t *cfg, sfu_metrics_t *metrics) {
  sfu_supervisor_t *s = calloc(1, sizeof(*s));
  *out = NULL;
  if (!s) return SFU_ENOMEM;
  s->loop = loop;
  s->cfg = cfg;
  s->metrics = metrics;
  uv_timer_init(loop, &s->tick);
  s->tick.data = s;
  uv_timer_start(&s->tick, on_tick, (uint64_t)cfg->heartbeat_ms, (uint64_t)cfg->heartbeat_ms);
  if (cfg->zygote) {
    sfu_spawner_cb_t cb = {s, on_zygote_exit, on_zygote_died};
    int rv = sfu_spawner_start(&s->spawner, loop, cfg->room_binary, &cb);
    if (rv != 0)
      sfu_log(SFU_LOG_WARN, "supervisor", "no zygote (%s): rooms are exec'd directly",
              sfu_strerror(rv));
  }
  *out = s;
  return 0;
}

void sfu_supervisor_set_draining(sfu_supervisor_t *s, int draining) {
  if (s->draining != draining)
    sfu_log(SFU_LOG_INFO, "supervisor", draining ? "node draining: no new rooms"
                                                 : "node accepting rooms again");
  s->draining = draining;
}

int sfu_supervisor_draining(const sfu_supervisor_t *s) { return s->draining; }

void sfu_supervisor_counts(const sfu_supervisor_t *s, int *live, int *crashed,
                           int *participants) {
  *live = *crashed = *participants = 0;
  for (const sfu_room_rec_t *r = s->rooms; r; r = r->next) {
    if (is_live(r)) {
      *live += !is_relay(r);
      *participants += r->participants;
    } else {
      (*crashed)++;
    }
  }
}

void sfu_supervisor_packets(const sfu_supervisor_t *s, uint64_t *rtp_out) {
  *rtp_out = 0;
  for (const sfu_room_rec_t *r = s->rooms; r; r = r->next)
    if (is_live(r))
      *rtp_out += (uint64_t)json_integer_value(
          json_object_get(json_object_get(r->stats, "packets"), "rtp_out"));
}

/* --- moderation ----------------------------------------------------------- */

/* Every sfu_mod_*_t starts with its identity: index of `identity` in an
 * array of `n` items of `size` bytes, or -1. */
static int mod_find(const void *items, int n, size_t size, const char *identity) {
  for (int i = 0; i < n; i++)
    if (strcmp((const char *)items + (size_t)i * size, identity) == 0) return i;
  return -1;
}

/* Removes item i of an array of `*n` items of `size` bytes, keeping the
 * order of the others. */
static void mod_remove(void *items, int *n, size_t size, int i) {
  memmove((char *)items + (size_t)i * size, (char *)items + (size_t)(i + 1) * size,
          (size_t)(*n - i - 1) * size);
  (*n)--;
}

#define MOD_FIND(v, id) mod_find((v)->items, (v)->n, sizeof(*(v)->items), (id))
#define MOD_REMOVE(v, i) mod_remove((v)->items, &(v)->n, sizeof(*(v)->items), (i))

/* A moderation message to the room, once r->mod has changed. */
static int send_control(sfu_room_rec_t *r, json_t *m) {
  int rv = sfu_supervisor_send(r, m);
  json_decref(m);
  save_record(r);
  return rv;
}

/* The identity's last admitted token, newest last; the oldest admission
 * goes first when full (expired ones before it). */
static void remember_token(sfu_room_rec_t *r, const sfu_token_claims_t *c, int64_t now_s) {
  sfu_moderation_t *m = &r->mod;
  sfu_mod_token_t t;
  int i = MOD_FIND(&m->tokens, c->identity);
  if (i >= 0) MOD_REMOVE(&m->tokens, i);
  for (i = 0; m->tokens.n >= SFU_MOD_MAX_TOKENS && i < m->tokens.n;)
    if (m->tokens.items[i].exp_s <= now_s)
      MOD_REMOVE(&m->tokens, i);
    else
      i++;
  if (m->tokens.n >= SFU_MOD_MAX_TOKENS) MOD_REMOVE(&m->tokens, 0);
  memset(&t, 0, sizeof(t));
  memcpy(t.identity, c->identity, sizeof(t.identity));
  memcpy(t.jti, c->jti, sizeof(t.jti));
  t.exp_s = c->exp;
  if (sfu_vec_push(&m->tokens, t) != 0)
    room_log(SFU_LOG_WARN, r, "cannot remember the token of %s: out of memory", c->identity);
}

sfu_mod_verdict_t sfu_supervisor_admit(sfu_room_rec_t *r, const sfu_token_claims_t *c,
                                       int64_t now_s) {
  sfu_moderation_t *m = &r->mod;
  if (MOD_FIND(&m->bans, c->identity) >= 0) {
    m->joins_refused++;
    return SFU_MOD_BANNED;
  }
  for (int i = 0; i < m->denied.n; i++) {
    const sfu_mod_deny_t *d = &m->denied.items[i];
    if ((d->jti[0] && strcmp(d->jti, c->jti) == 0) ||
        (c->iat <= d->kicked_s && strcmp(d->identity, c->identity) == 0)) {
      m->joins_refused++;
      return SFU_MOD_KICKED;
    }
  }
  remember_token(r, c, now_s);
  return SFU_MOD_ADMIT;
}

/* Makes room for one deny entry: entries whose token expired go first
 * (all of them), then the one that expires first. */
static void deny_make_room(sfu_room_rec_t *r, int64_t now_s) {
  sfu_moderation_t *m = &r->mod;
  int kept = 0, lo = 0;
  for (int i = 0; i < m->denied.n; i++)
    if (m->denied.items[i].exp_s > now_s) m->denied.items[kept++] = m->denied.items[i];
  m->denied_evicted += (uint64_t)(m->denied.n - kept);
  m->denied.n = kept;
  if (m->denied.n < SFU_MOD_MAX_DENIED) return;
  for (int i = 1; i < m->denied.n; i++)
    if (m->denied.items[i].exp_s < m->denied.items[lo].exp_s) lo = i;
  room_log(SFU_LOG_WARN, r, "deny list full (%d kicks): forgetting the kick of %s",
           SFU_MOD_MAX_DENIED, m->denied.items[lo].identity);
  MOD_REMOVE(&m->denied, lo);
  m->denied_evicted++;
}

/* Deny-lists the identity's last token and its tokens issued up to now_s. */
static void record_kick(sfu_room_rec_t *r, const char *identity, int64_t now_s) {
  sfu_moderation_t *m = &r->mod;
  sfu_mod_deny_t d;
  int t = MOD_FIND(&m->tokens, identity);

  memset(&d, 0, sizeof(d));
  snprintf(d.identity, sizeof(d.identity), "%s", identity);
  d.kicked_s = now_s;
  d.exp_s = now_s + SFU_MOD_KICK_HOLD_S;
  if (t >= 0) {
    if (m->tokens.items[t].exp_s > now_s) {
      memcpy(d.jti, m->tokens.items[t].jti, sizeof(d.jti));
      d.exp_s = m->tokens.items[t].exp_s;
    }
    MOD_REMOVE(&m->tokens, t);
  }
  m->kicks++;
  /* Kicked again with no newer token: one entry, moved to the end. */
  for (int i = 0; i < m->denied.n; i++) {
    sfu_mod_deny_t *o = &m->denied.items[i];
    if (strcmp(o->identity, d.identity) == 0 && strcmp(o->jti, d.jti) == 0) {
      if (o->exp_s > d.exp_s) d.exp_s = o->exp_s;
      MOD_REMOVE(&m->denied, i);
      break;
    }
  }
  if (m->denied.n >= SFU_MOD_MAX_DENIED) deny_make_room(r, now_s);
  if (sfu_vec_push(&m->denied, d) != 0)
    room_log(SFU_LOG_ERROR, r, "cannot deny-list the tokens of %s: out of memory", identity);
}

/* {type: moderate, action, identity[, key: value]} (value stolen; key
 * NULL: none), as relays on other nodes are told (sfu_supervisor_moderate). */
static json_t *moderate_msg(const char *action, const char *identity, const char *key,
                            json_t *value) {
  json_t *m = json_pack("{s:s, s:s, s:s}", "type", "moderate", "action", action, "identity",
                        identity);
  if (key) json_object_set_new(m, key, value);
  return m;
}

/* A room's moderation change to its relays on other nodes (a relay's own
 * record keeps it for the joins there). */
static void moderate_out(sfu_room_rec_t *r, const char *action, const char *identity,
                         const char *key, json_t *value) {
  sfu_supervisor_t *s = r->sup;
  json_t *m = moderate_msg(action, identity, key, value);
  if (!is_relay(r) && s->hooks.moderate) s->hooks.moderate(s->hooks.arg, r->id, m);
  json_decref(m);
}

int sfu_supervisor_kick(sfu_room_rec_t *r, const char *identity, int64_t now_s) {
  record_kick(r, identity, now_s);
  room_log(SFU_LOG_INFO, r, "kick %s: its tokens up to %lld are refused", identity,
           (long long)now_s);
  moderate_out(r, "kick", identity, "kicked_s", json_integer((json_int_t)now_s));
  json_t *m = json_pack("{s:s, s:s}", "type", "kick", "identity", identity);
  to_relays(r, m); /* whichever process serves it */
  return send_control(r, m);
}

int sfu_supervisor_ban(sfu_room_rec_t *r, const char *identity, const char *reason,
                       int64_t now_s) {
  sfu_moderation_t *m = &r->mod;
  sfu_mod_ban_t b;
  int i = MOD_FIND(&m->bans, identity);
  if (i < 0) {
    if (m->bans.n >= SFU_MOD_MAX_BANS) return SFU_E2BIG;
    memset(&b, 0, sizeof(b));
    snprintf(b.identity, sizeof(b.identity), "%s", identity);
    b.at_ms = sfu_wall_ms();
    if (sfu_vec_push(&m->bans, b) != 0) return SFU_ENOMEM;
    i = m->bans.n - 1;
  }
  snprintf(m->bans.items[i].reason, sizeof(m->bans.items[i].reason), "%s", reason ? reason : "");
  room_log(SFU_LOG_INFO, r, "ban %s", identity);
  moderate_out(r, "ban", identity, "reason", json_string(m->bans.items[i].reason));
  return sfu_supervisor_kick(r, identity, now_s);
}

int sfu_supervisor_unban(sfu_room_rec_t *r, const char *identity) {
  int i = MOD_FIND(&r->mod.bans, identity);
  if (i < 0) return SFU_ENOENT;
  MOD_REMOVE(&r->mod.bans, i);
  room_log(SFU_LOG_INFO, r, "unban %s", identity);
  moderate_out(r, "unban", identity, NULL, NULL);
  save_record(r);
  return 0;
}

int sfu_supervisor_server_mute(sfu_room_rec_t *r, const char *identity, int muted) {
  sfu_moderation_t *m = &r->mod;
  int i = MOD_FIND(&m->muted, identity);
  if (muted && i < 0) {
    sfu_mod_id_t id;
    if (m->muted.n >= SFU_MOD_MAX_MUTED) return SFU_E2BIG;
    snprintf(id.identity, sizeof(id.identity), "%s", identity);
    if (sfu_vec_push(&m->muted, id) != 0) return SFU_ENOMEM;
  } else if (!muted && i >= 0) {
    MOD_REMOVE(&m->muted, i);
  }
  moderate_out(r, "server_mute", identity, "muted", json_boolean(muted));
  json_t *msg = json_pack("{s:s, s:s, s:b}", "type", "server_mute", "identity", identity,
                          "muted", muted);
  to_relays(r, msg); /* every process keeps the room's mutes */
  return send_control(r, msg);
}

json_t *sfu_supervisor_moderation_msgs(const sfu_room_rec_t *r) {
  const sfu_moderation_t *m = &r->mod;
  json_t *a = json_array();
  for (int i = 0; i < m->bans.n; i++)
    json_array_append_new(a, moderate_msg("ban", m->bans.items[i].identity, "reason",
                                          json_string(m->bans.items[i].reason)));
  for (int i = 0; i < m->denied.n; i++)
    json_array_append_new(a, moderate_msg("kick", m->denied.items[i].identity, "kicked_s",
                                          json_integer((json_int_t)m->denied.items[i].kicked_s)));
  for (int i = 0; i < m->muted.n; i++)
    json_array_append_new(a, moderate_msg("server_mute", m->muted.items[i].identity, "muted",
                                          json_true()));
  return a;
}

int sfu_supervisor_moderate(sfu_room_rec_t *relay, json_t *msg) {
  const char *action = json_string_value(json_object_get(msg, "action"));
  const char *identity = json_string_value(json_object_get(msg, "identity"));
  const char *reason = json_string_value(json_object_get(msg, "reason"));
  json_t *at = json_object_get(msg, "kicked_s");
  if (!is_relay(relay) || !action || !identity || !sfu_token_valid_id(identity))
    return SFU_EINVAL;
  if (strcmp(action, "kick") == 0 && json_is_integer(at) && json_integer_value(at) >= 0)
    return sfu_supervisor_kick(relay, identity, json_integer_value(at));
  if (strcmp(action, "ban") == 0)
    return sfu_supervisor_ban(relay, identity, reason, sfu_wall_ms() / 1000);
  if (strcmp(action, "unban") == 0) {
    sfu_supervisor_unban(relay, identity); /* (not banned here: nothing to do) */
    return 0;
  }
  if (strcmp(action, "server_mute") == 0 && json_is_boolean(json_object_get(msg, "muted")))
    return sfu_supervisor_server_mute(relay, identity, json_is_true(json_object_get(msg, "muted")));
  return SFU_EINVAL;
}

json_t *sfu_moderation_json(const sfu_room_rec_t *r) {
  const sfu_moderation_t *m = &r->mod;
  json_t *bans = json_array(), *muted = json_array();
  for (int i = 0; i < m->bans.n; i++)
    json_array_append_new(bans, json_pack("{s:s, s:s, s:I}", "identity", m->bans.items[i].identity,
                                          "reason", m->bans.items[i].reason, "banned_at_ms",
                                          (json_int_t)m->bans.items[i].at_ms));
  for (int i = 0; i < m->muted.n; i++)
    json_array_append_new(muted, json_string(m->muted.items[i].identity));
  return json_pack("{s:o, s:o, s:I, s:i, s:I, s:I}", "bans", bans, "server_muted", muted, "kicks",
                   (json_int_t)m->kicks, "deny_list", m->denied.n, "deny_list_evicted",
                   (json_int_t)m->denied_evicted, "joins_refused", (json_int_t)m->joins_refused);
}

/* [{"identity", "sid"}] of everyone joined to room r: its own process's
 * people, then those of its live relays (new reference). */
static json_t *people_json(const sfu_room_rec_t *r) {
  json_t *a = json_array(), *who;
  const char *sid;
  json_object_foreach(r->people, sid, who)
    json_array_append_new(a, json_pack("{s:O*, s:s}", "identity", who, "sid", sid));
  for (const sfu_room_rec_t *x = r->sup->rooms; x && !is_relay(r); x = x->next)
    if (is_relay(x) && strcmp(x->origin_id, r->id) == 0 && is_live(x))
      json_object_foreach(x->people, sid, who)
        json_array_append_new(a, json_pack("{s:O*, s:s}", "identity", who, "sid", sid));
  return a;
}

json_t *sfu_room_json(const sfu_room_rec_t *r, int detail) {
  int64_t now = sfu_wall_ms();
  int participants = r->participants; /* its own, and its relays' */
  for (const sfu_room_rec_t *x = r->sup->rooms; x && !is_relay(r); x = x->next)
    if (is_relay(x) && strcmp(x->origin_id, r->id) == 0 && is_live(x)) participants += x->participants;
  json_t *j = json_pack("{s:s, s:s, s:i, s:I, s:I, s:i, s:i, s:i}",
                        "room_id", r->id, "state", sfu_room_state_name(r->state),
                        "pid", r->pid, "created_at_ms", (json_int_t)r->created_wall_ms,
                        "uptime_s", (json_int_t)((now - r->created_wall_ms) / 1000),
                        "participants", participants, "max_participants",
                        r->max_participants, "empty_timeout_s", r->empty_timeout_s);
  if (r->name[0]) json_object_set_new(j, "name", json_string(r->name));
  if (r->max_audio_streams)
    json_object_set_new(j, "max_audio_streams", json_integer(r->max_audio_streams));
  if (r->metadata) json_object_set(j, "metadata", r->metadata);
  if (r->end_reason[0]) json_object_set_new(j, "end_reason", json_string(r->end_reason));
  if (r->moving) /* moving to or from another node (migrate.c) */
    json_object_set_new(j, "migration", json_pack("{s:s, s:b}", "direction",
                                                  r->moving == SFU_MOVE_OUT ? "out" : "in",
                                                  "ready", r->move_ready));
  if (r->state == SFU_ROOM_CRASHED)
    json_object_set_new(j, "exit", json_pack("{s:I, s:i, s:I}", "status",
                                             (json_int_t)r->exit_status, "signal",
                                             r->term_signal, "at_ms",
                                             (json_int_t)r->ended_wall_ms));
  if (detail) {
    if (r->ready_us)
      json_object_set_new(j, "spawn_ms", json_real((double)(r->ready_us - r->spawned_us) / 1e3));
    json_object_set_new(j, "ipc", json_pack("{s:I, s:I, s:I}", "messages_in",
                                            (json_int_t)r->ipc.msgs_in, "messages_out",
                                            (json_int_t)r->ipc.msgs_out, "bad_messages",
                                            (json_int_t)r->ipc.bad_msgs));
    if (r->stats) json_object_set(j, "stats", r->stats);
    json_object_set_new(j, "moderation", sfu_moderation_json(r));
    json_object_set_new(j, "relays", sfu_supervisor_relays_json(r->sup, r));
    json_object_set_new(j, "people", people_json(r));
  }
  return j;
}

/* --- relays ---------------------------------------------------------------- */

sfu_room_rec_t *sfu_supervisor_origin(sfu_supervisor_t *s, sfu_room_rec_t *r) {
  if (!is_relay(r)) return r;
  for (sfu_room_rec_t *o = s->rooms; o; o = o->next)
    if (!is_relay(o) && strcmp(o->id, r->origin_id) == 0 && !o->exited) return o;
  return NULL;
}

static sfu_room_rec_t *relay_of(sfu_room_rec_t *origin, const char *id) {
  for (sfu_room_rec_t *x = origin->sup->rooms; id && x; x = x->next)
    if (is_relay(x) && strcmp(x->id, id) == 0 && strcmp(x->origin_id, origin->id) == 0 &&
        !x->exited)
      return x;
  return NULL;
}

/* A control message (borrowed) to every live relay of room r. */
static void to_relays(sfu_room_rec_t *r, json_t *m) {
  for (sfu_room_rec_t *x = r->sup->rooms; x; x = x->next)
    if (is_relay(x) && strcmp(x->origin_id, r->id) == 0 && is_live(x) && !x->exited)
      sfu_supervisor_send(x, m);
}

static void send_link(sfu_room_rec_t *to, const char *type, const char *link, json_t *rest) {
  json_t *m = rest ? json_deep_copy(rest) : json_object();
  json_object_set_new(m, "type", json_string(type));
  json_object_set_new(m, "link", json_string(link));
  sfu_supervisor_send(to, m);
  json_decref(m);
}

/* A link message for the end of `relay`'s link that is not here: the
 * room's, on another node. */
static void link_out(sfu_room_rec_t *relay, const char *type, json_t *rest) {
  sfu_supervisor_t *s = relay->sup;
  json_t *m = rest ? json_deep_copy(rest) : json_object();
  json_object_set_new(m, "type", json_string(type));
  json_object_set_new(m, "link", json_string(relay->id));
  if (s->hooks.link_out)
    s->hooks.link_out(s->hooks.arg, relay->origin_id, relay->id, m);
  json_decref(m);
}

/* Both processes run: the link between them opens (the relay's id names it). */
static void relay_ready(sfu_room_rec_t *relay) {
  sfu_room_rec_t *o = relay->origin_remote ? NULL : sfu_supervisor_origin(relay->sup, relay);
  if (!o && !relay->origin_remote) {
    sfu_supervisor_close_room(relay->sup, relay, "room_ended");
    return;
  }
  json_t *role = json_pack("{s:s}", "role", "origin");
  if (o)
    send_link(o, "link_open", relay->id, role);
  else
    link_out(relay, "link_open", role);
  for (int i = 0; o && i < o->mod.muted.n; i++) { /* the room's mutes so far (those of another
                                                     node's room come from it: rrelay.c) */
    json_t *m = json_pack("{s:s, s:s, s:b}", "type", "server_mute", "identity",
                          o->mod.muted.items[i].identity, "muted", 1);
    sfu_supervisor_send(relay, m);
    json_decref(m);
  }
  json_object_set_new(role, "role", json_string("relay"));
  send_link(relay, "link_open", relay->id, role);
  json_decref(role);
}

/* One end's link_local (end 0 the room's, 1 the relay's), kept until the
 * other's came: each then gets the other's as link_remote. */
static void link_local(sfu_room_rec_t *relay, int end, json_t *body) {
  json_decref(relay->link_local[end]);
  relay->link_local[end] = json_incref(body);
  if (!relay->link_local[!end]) return;
  sfu_room_rec_t *o = relay->origin_remote ? NULL : sfu_supervisor_origin(relay->sup, relay);
  if (o)
    send_link(o, "link_remote", relay->id, relay->link_local[1]);
  else
    link_out(relay, "link_remote", relay->link_local[1]);
  send_link(relay, "link_remote", relay->id, relay->link_local[0]);
  room_log(SFU_LOG_INFO, relay, "link to room %s set up%s", relay->origin_id,
           o ? "" : " (on another node)");
}

/* link_local / link_msg from a process here: to the other end, here or on
 * the room's node. A room's message for a link no relay here has is for
 * one on another node. */
static void on_link(sfu_room_rec_t *r, const char *type, json_t *msg) {
  sfu_supervisor_t *s = r->sup;
  const char *link = json_string_value(json_object_get(msg, "link"));
  sfu_room_rec_t *relay = is_relay(r) ? r : relay_of(r, link);
  if (!link || (relay && strcmp(link, relay->id) != 0)) {
    s->metrics->ipc_bad_messages++;
    room_log(SFU_LOG_WARN, r, "%s for no link of ours: dropped", type);
    return;
  }
  json_t *body = json_deep_copy(msg);
  json_object_del(body, "type");
  json_object_del(body, "link");
  if (!relay) { /* the room's end of a link to another node */
    json_object_set_new(body, "type", json_string(type));
    json_object_set_new(body, "link", json_string(link));
    if (s->hooks.link_out) s->hooks.link_out(s->hooks.arg, r->id, link, body);
  } else if (strcmp(type, "link_msg") == 0) {
    sfu_room_rec_t *o = relay->origin_remote ? NULL : sfu_supervisor_origin(s, relay);
    if (r != relay)
      send_link(relay, "link_msg", link, body);
    else if (o)
      send_link(o, "link_msg", link, body);
    else if (relay->origin_remote)
      link_out(relay, "link_msg", body);
  } else {
    link_local(relay, r == relay, body);
  }
  json_decref(body);
}

/* A relay ended: its room closes the link (its people leave the others'
 * view). A room ended: its relays here end too (those on other nodes hear
 * of it from sfu/node/rrelay.c). */
static void relay_or_origin_ended(sfu_room_rec_t *r) {
  if (is_relay(r)) {
    sfu_room_rec_t *o = r->origin_remote ? NULL : sfu_supervisor_origin(r->sup, r);
    if (o)
      send_link(o, "link_close", r->id, NULL);
    else if (r->origin_remote)
      link_out(r, "link_close", NULL);
    return;
  }
  for (sfu_room_rec_t *x = r->sup->rooms; x; x = x->next)
    if (is_relay(x) && strcmp(x->origin_id, r->id) == 0 && is_live(x) && !x->origin_remote)
      sfu_supervisor_close_room(r->sup, x, "room_ended");
}

int sfu_supervisor_link_in(sfu_supervisor_t *s, const char *room_id, const char *link,
                           json_t *msg) {
  const char *type = json_string_value(json_object_get(msg, "type"));
  if (!type || !link) return SFU_EINVAL;
  for (sfu_room_rec_t *x = s->rooms; x; x = x->next) {
    if (!is_relay(x) || !x->origin_remote || strcmp(x->id, link) != 0 || x->exited ||
        strcmp(x->origin_id, room_id) != 0)
      continue;
    json_t *body = json_deep_copy(msg); /* the room's end says */
    json_object_del(body, "type");
    json_object_del(body, "link");
    if (strcmp(type, "link_local") == 0)
      link_local(x, 0, body);
    else if (strcmp(type, "link_msg") == 0)
      send_link(x, "link_msg", link, body);
    else if (strcmp(type, "link_close") == 0 && is_live(x))
      sfu_supervisor_close_room(s, x, "room_ended");
    else if (strcmp(type, "moderate") == 0 && sfu_supervisor_moderate(x, msg) == SFU_EINVAL) {
      json_decref(body);
      return SFU_EINVAL;
    }
    json_decref(body);
    return 0;
  }
  for (sfu_room_rec_t *o = s->rooms; o; o = o->next) /* the room's end, here */
    if (!is_relay(o) && strcmp(o->id, room_id) == 0 && !o->exited) {
      sfu_supervisor_send(o, msg);
      return 0;
    }
  return SFU_ENOENT;
}

int sfu_supervisor_relay_count(sfu_supervisor_t *s, const sfu_room_rec_t *r) {
  int n = 0;
  for (sfu_room_rec_t *x = s->rooms; x; x = x->next)
    n += is_relay(x) && strcmp(x->origin_id, r->id) == 0 && is_live(x) && !x->exited;
  return n;
}

int sfu_supervisor_spawn_remote_relay(sfu_supervisor_t *s, const char *room_id,
                                      const char *relay_id, const sfu_room_req_t *req,
                                      sfu_room_rec_t **out) {
  int live = 0;
  *out = NULL;
  if (s->draining || s->shutting_down) return SFU_EDRAINING;
  for (sfu_room_rec_t *x = s->rooms; x; x = x->next) {
    live += is_live(x) && !is_relay(x);
    if (strcmp(x->id, relay_id) == 0 && !x->exited) return SFU_EEXIST;
  }
  if (live >= s->cfg->max_rooms) return SFU_ECAPACITY;
  sfu_room_req_t q = *req;
  sfu_room_rec_t origin; /* what spawn() reads of a room: its id */
  memset(&origin, 0, sizeof(origin));
  snprintf(origin.id, sizeof(origin.id), "%s", room_id);
  snprintf(q.id, sizeof(q.id), "%s", relay_id);
  q.metadata = NULL;
  int rv = spawn(s, &q, &origin, out);
  if (rv == 0) (*out)->origin_remote = 1;
  return rv;
}

sfu_room_rec_t *sfu_supervisor_relay_for(sfu_supervisor_t *s, const char *room_id) {
  sfu_room_rec_t *run[64];
  int n = 0;
  for (sfu_room_rec_t *x = s->rooms; x && n < 64; x = x->next)
    if (is_relay(x) && x->origin_remote && x->state == SFU_ROOM_RUNNING &&
        strcmp(x->origin_id, room_id) == 0)
      run[n++] = x;
  return n ? run[s->remote_next++ % (unsigned)n] : NULL;
}

int sfu_supervisor_spawn_relay(sfu_supervisor_t *s, sfu_room_rec_t *r, sfu_room_rec_t **out) {
  *out = NULL;
  if (is_relay(r) || (r->state != SFU_ROOM_RUNNING && r->state != SFU_ROOM_STARTING) ||
      r->moving)
    return SFU_EINVAL; /* (a starting room reads link_open once it runs) */
  if (s->draining || s->shutting_down) return SFU_EDRAINING;
  if (sfu_supervisor_relay_count(s, r) >= s->cfg->max_relays) return SFU_ECAPACITY;
  sfu_room_req_t req;
  memset(&req, 0, sizeof(req));
  memcpy(req.name, r->name, sizeof(req.name));
  req.max_participants = r->max_participants;
  req.empty_timeout_s = r->empty_timeout_s;
  req.max_audio_streams = r->max_audio_streams;
  return spawn(s, &req, r, out);
}

/* Participants a process serves: those it said joined (quicker than its
 * next report). */
static int load_of(const sfu_room_rec_t *x) { return (int)json_object_size(x->people); }

sfu_room_rec_t *sfu_supervisor_place(sfu_supervisor_t *s, sfu_room_rec_t *r, unsigned grants) {
  sfu_room_rec_t *run[64];
  int n = 0, full = 1, thr = s->cfg->relay_threshold;
  if (is_relay(r)) return r; /* (a relay here of another node's room) */
  for (sfu_room_rec_t *x = s->rooms; x; x = x->next) {
    if (!is_relay(x) || strcmp(x->origin_id, r->id) != 0 || !is_live(x) || x->exited) continue;
    if (x->state == SFU_ROOM_STARTING) full = 0; /* one is on its way already */
    if (x->state != SFU_ROOM_RUNNING) continue;
    if (n < 64) run[n++] = x;
    full &= load_of(x) >= thr;
  }
  full &= thr > 0 && load_of(r) >= thr;
  if (full && sfu_supervisor_relay_count(s, r) < s->cfg->max_relays) { /* all busy: one more */
    sfu_room_rec_t *x;
    int rv = sfu_supervisor_spawn_relay(s, r, &x);
    if (rv == 0) x->folds = 1;
    room_log(rv ? SFU_LOG_WARN : SFU_LOG_INFO, r, "%d participants per process: %s%s", thr,
             rv ? "cannot add a relay: " : "adding relay ", rv ? sfu_strerror(rv) : x->id);
  }
  if (n == 0 || ((grants & SFU_GRANT_PUBLISH) && (thr == 0 || load_of(r) < thr)))
    return r; /* publishers go to the origin while it has room for them */
  return run[r->relay_next++ % (unsigned)n];
}

static json_t *relay_json(const sfu_room_rec_t *x) {
  json_t *j = json_pack("{s:s, s:s, s:i, s:i}", "relay_id", x->id, "state",
                        sfu_room_state_name(x->state), "pid", x->pid, "participants",
                        x->participants);
  if (x->stats) {
    json_object_set(j, "packets", json_object_get(x->stats, "packets"));
    json_object_set(j, "cpu_us", json_object_get(x->stats, "cpu_us"));
  }
  if (x->end_reason[0]) json_object_set_new(j, "end_reason", json_string(x->end_reason));
  return j;
}

json_t *sfu_supervisor_close_relay(sfu_supervisor_t *s, sfu_room_rec_t *r, const char *relay_id) {
  sfu_room_rec_t *x = relay_of(r, relay_id);
  if (!x || !is_live(x)) return NULL;
  sfu_supervisor_close_room(s, x, "relay_closed");
  return relay_json(x);
}

json_t *sfu_supervisor_relays_json(sfu_supervisor_t *s, const sfu_room_rec_t *r) {
  json_t *a = json_array();
  for (sfu_room_rec_t *x = s->rooms; x; x = x->next) {
    if (is_relay(x) && strcmp(x->origin_id, r->id) == 0) json_array_append_new(a, relay_json(x));
  }
  return a;
}

json_t *sfu_supervisor_list_json(sfu_supervisor_t *s) {
  json_t *a = json_array();
  for (sfu_room_rec_t *r = s->rooms; r; r = r->next)
    if (!is_relay(r)) json_array_append_new(a, sfu_room_json(r, 0));
  return a;
}

static void on_tick_closed(uv_handle_t *h) {
  sfu_supervisor_t *s = h->data;
  sfu_spawner_stop(s->spawner); /* freed by sfu_supervisor_destroy() */
  for (int i = 0; i < s->retired.n; i++) sfu_spawner_stop(s->retired.items[i]);
  s->retired.n = 0;
  if (s->sigchld_on) uv_close((uv_handle_t *)&s->sigchld, NULL);
  s->sigchld_on = 0;
  s->tick_closed = 1;
  if (s->done) s->done(s, s->done_arg);
}

static void maybe_done(sfu_supervisor_t *s) {
  if (!s->shutting_down || s->records_alive > 0 || uv_is_closing((uv_handle_t *)&s->tick))
    return;
  uv_close((uv_handle_t *)&s->tick, on_tick_closed);
}

void sfu_supervisor_shutdown(sfu_supervisor_t *s,
                             void (*done)(sfu_supervisor_t *s, void *arg),
                             void *arg) {
  sfu_room_rec_t *r, *next;
  s->shutting_down = 1;
  s->done = done;
  s->done_arg = arg;
  for (r = s->rooms; r; r = next) {
    next = r->next;
    if (r->state == SFU_ROOM_CRASHED)
      unlist(r);
    else
      sfu_supervisor_close_room(s, r, "node_shutdown");
  }
  /* Closing rooms get their grace period from the tick; check at once in
   * case nothing was left. */
  maybe_done(s);
}

void sfu_supervisor_destroy(sfu_supervisor_t *s) {
  sfu_spawner_free(s->spawner);
  sfu_vec_free(&s->retired);
  sfu_vec_free(&s->reap);
  free(s);
}

/* --- upgrade ------------------------------------------------------------- */

int sfu_supervisor_ready_to_export(const sfu_supervisor_t *s) {
  for (const sfu_room_rec_t *r = s->rooms; r; r = r->next)
    if (!r->exited && r->state != SFU_ROOM_CRASHED &&
        (sfu_ipc_queued(&r->ipc) > 0 || r->moving)) /* (a move is not carried over) */
      return 0;
  return 1;
}

static int set_cloexec(int fd, int on) {
  int fl = fcntl(fd, F_GETFD);
  return fl < 0 ? -1 : fcntl(fd, F_SETFD, on ? fl | FD_CLOEXEC : fl & ~FD_CLOEXEC);
}

static int ipc_fd(sfu_room_rec_t *r) {
  uv_os_fd_t fd;
  if (r->exited || r->state == SFU_ROOM_CRASHED || r->ipc.failed || r->ipc.closing ||
      uv_fileno((uv_handle_t *)&r->ipc.pipe, &fd) != 0)
    return -1;
  return fd;
}

static json_t *mod_json(const sfu_moderation_t *m) {
  json_t *denied = json_array(), *bans = json_array(), *muted = json_array(),
         *tokens = json_array();
  for (int i = 0; i < m->denied.n; i++) {
    const sfu_mod_deny_t *d = &m->denied.items[i];
    json_array_append_new(denied, json_pack("{s:s, s:s, s:I, s:I}", "identity", d->identity,
                                            "jti", d->jti, "kicked_s", (json_int_t)d->kicked_s,
                                            "exp_s", (json_int_t)d->exp_s));
  }
  for (int i = 0; i < m->bans.n; i++)
    json_array_append_new(bans, json_pack("{s:s, s:s, s:I}", "identity", m->bans.items[i].identity,
                                          "reason", m->bans.items[i].reason, "at_ms",
                                          (json_int_t)m->bans.items[i].at_ms));
  for (int i = 0; i < m->muted.n; i++)
    json_array_append_new(muted, json_string(m->muted.items[i].identity));
  for (int i = 0; i < m->tokens.n; i++)
    json_array_append_new(tokens, json_pack("{s:s, s:s, s:I}", "identity",
                                            m->tokens.items[i].identity, "jti",
                                            m->tokens.items[i].jti, "exp_s",
                                            (json_int_t)m->tokens.items[i].exp_s));
  return json_pack("{s:o, s:o, s:o, s:o, s:I, s:I, s:I}", "denied", denied, "bans", bans, "muted",
                   muted, "tokens", tokens, "kicks", (json_int_t)m->kicks, "denied_evicted",
                   (json_int_t)m->denied_evicted, "joins_refused", (json_int_t)m->joins_refused);
}

json_t *sfu_supervisor_record_json(const sfu_room_rec_t *r) {
  json_t *j = json_pack(
      "{s:s, s:s, s:i, s:i, s:O?, s:s, s:s, s:i, s:i, s:I, s:i, s:I, s:I, s:i, s:O?,"
      " s:O, s:O, s:i, s:o, s:I}",
      "room_id", r->id, "name", r->name, "max_participants", r->max_participants,
      "empty_timeout_s", r->empty_timeout_s, "metadata", r->metadata, "state",
      sfu_room_state_name(r->state), "end_reason", r->end_reason, "pid", r->pid, "exited",
      r->exited, "exit_status", (json_int_t)r->exit_status, "term_signal", r->term_signal,
      "created_wall_ms", (json_int_t)r->created_wall_ms, "ended_wall_ms",
      (json_int_t)r->ended_wall_ms, "participants", r->participants, "stats", r->stats,
      "people", r->people, "totals", r->totals, "sessions", r->sessions, "moderation",
      mod_json(&r->mod), "ping_seq", (json_int_t)r->ping_seq);
  if (r->max_audio_streams)
    json_object_set_new(j, "max_audio_streams", json_integer(r->max_audio_streams));
  if (is_relay(r)) /* an upgrade keeps a relay a relay */
    json_object_update_new(j, json_pack("{s:s, s:b}", "origin_id", r->origin_id,
                                        "origin_remote", r->origin_remote));
  return j;
}

json_t *sfu_supervisor_export(sfu_supervisor_t *s) {
  json_t *rooms = json_array(), *zygotes = json_array();
  int pid, fd;
  if ((fd = sfu_spawner_export(s->spawner, &pid)) >= 0)
    json_array_append_new(zygotes, json_pack("{s:i, s:i}", "pid", pid, "fd", fd));
  for (int i = 0; i < s->retired.n; i++)
    if ((fd = sfu_spawner_export(s->retired.items[i], &pid)) >= 0)
      json_array_append_new(zygotes, json_pack("{s:i, s:i}", "pid", pid, "fd", fd));
  for (sfu_room_rec_t *r = s->rooms; r; r = r->next) {
    int rfd = ipc_fd(r);
    if (rfd < 0 && r->state != SFU_ROOM_CRASHED) continue; /* ending: its exit is not ours to see */
    if (rfd >= 0 && set_cloexec(rfd, 0) != 0) continue;
    json_t *j = sfu_supervisor_record_json(r);
    json_object_set_new(j, "ipc_fd", json_integer(rfd));
    if (r->via_zygote) json_object_set_new(j, "zygote_pid", json_integer(sfu_spawner_pid(r->zyg)));
    if (r->ipc.dec.len)
      json_object_set_new(j, "ipc_partial", sfu_etcd_bytes(r->ipc.dec.buf, r->ipc.dec.len));
    json_array_append_new(rooms, j);
  }
  return json_pack("{s:o, s:o}", "rooms", rooms, "zygotes", zygotes);
}

void sfu_supervisor_export_failed(sfu_supervisor_t *s) {
  int pid, fd;
  if ((fd = sfu_spawner_export(s->spawner, &pid)) >= 0) set_cloexec(fd, 1);
  for (int i = 0; i < s->retired.n; i++)
    if ((fd = sfu_spawner_export(s->retired.items[i], &pid)) >= 0) set_cloexec(fd, 1);
  for (sfu_room_rec_t *r = s->rooms; r; r = r->next)
    if ((fd = ipc_fd(r)) >= 0) set_cloexec(fd, 1);
}

/* Reaps adopted children: exec'd rooms and retired zygotes. */
static void on_sigchld(uv_signal_t *h, int signum) {
  sfu_supervisor_t *s = h->data;
  sfu_room_rec_t *r, *next;
  int st;
  (void)signum;
  for (r = s->rooms; r; r = next) {
    next = r->next; /* room_exited may unlist */
    if (!r->adopted || r->exited || waitpid(r->pid, &st, WNOHANG) != r->pid) continue;
    room_exited(r, WIFEXITED(st) ? WEXITSTATUS(st) : 0, WIFSIGNALED(st) ? WTERMSIG(st) : 0);
  }
  for (int i = 0; i < s->reap.n;)
    if (waitpid(s->reap.items[i], &st, WNOHANG) == s->reap.items[i])
      sfu_vec_remove_swap(&s->reap, i);
    else
      i++;
}

static void mod_adopt(sfu_moderation_t *m, json_t *j) {
  json_t *v;
  size_t i;
  json_array_foreach(json_object_get(j, "denied"), i, v) {
    sfu_mod_deny_t d;
    memset(&d, 0, sizeof(d));
    snprintf(d.identity, sizeof(d.identity), "%s", json_string_value(json_object_get(v, "identity")) ?: "");
    snprintf(d.jti, sizeof(d.jti), "%s", json_string_value(json_object_get(v, "jti")) ?: "");
    d.kicked_s = json_integer_value(json_object_get(v, "kicked_s"));
    d.exp_s = json_integer_value(json_object_get(v, "exp_s"));
    sfu_vec_push(&m->denied, d);
  }
  json_array_foreach(json_object_get(j, "bans"), i, v) {
    sfu_mod_ban_t b;
    memset(&b, 0, sizeof(b));
    snprintf(b.identity, sizeof(b.identity), "%s", json_string_value(json_object_get(v, "identity")) ?: "");
    snprintf(b.reason, sizeof(b.reason), "%s", json_string_value(json_object_get(v, "reason")) ?: "");
    b.at_ms = json_integer_value(json_object_get(v, "at_ms"));
    sfu_vec_push(&m->bans, b);
  }
  json_array_foreach(json_object_get(j, "muted"), i, v) {
    sfu_mod_id_t id;
    snprintf(id.identity, sizeof(id.identity), "%s", json_string_value(v) ?: "");
    sfu_vec_push(&m->muted, id);
  }
  json_array_foreach(json_object_get(j, "tokens"), i, v) {
    sfu_mod_token_t t;
    memset(&t, 0, sizeof(t));
    snprintf(t.identity, sizeof(t.identity), "%s", json_string_value(json_object_get(v, "identity")) ?: "");
    snprintf(t.jti, sizeof(t.jti), "%s", json_string_value(json_object_get(v, "jti")) ?: "");
    t.exp_s = json_integer_value(json_object_get(v, "exp_s"));
    sfu_vec_push(&m->tokens, t);
  }
  m->kicks = (uint64_t)json_integer_value(json_object_get(j, "kicks"));
  m->denied_evicted = (uint64_t)json_integer_value(json_object_get(j, "denied_evicted"));
  m->joins_refused = (uint64_t)json_integer_value(json_object_get(j, "joins_refused"));
}

void sfu_supervisor_record_load(sfu_room_rec_t *r, json_t *j) {
  json_t *md = json_object_get(j, "metadata");
  json_t *people = json_object_get(j, "people"), *totals = json_object_get(j, "totals");
  json_decref(r->metadata);
  r->metadata = md && !json_is_null(md) ? json_incref(md) : NULL;
  r->created_wall_ms = json_integer_value(json_object_get(j, "created_wall_ms"));
  json_decref(r->people);
  json_decref(r->totals);
  r->people = json_is_object(people) ? json_deep_copy(people) : json_object();
  r->totals = json_is_object(totals) ? json_deep_copy(totals) : json_object();
  r->sessions = (int)json_integer_value(json_object_get(j, "sessions"));
  mod_adopt(&r->mod, json_object_get(j, "moderation"));
  const char *origin = json_string_value(json_object_get(j, "origin_id"));
  if (origin && strlen(origin) == SFU_ROOM_ID_LEN) {
    snprintf(r->origin_id, sizeof(r->origin_id), "%s", origin);
    r->origin_remote = json_is_true(json_object_get(j, "origin_remote"));
  }
}

static sfu_room_state_t state_of(const char *name) {
  if (name && strcmp(name, "starting") == 0) return SFU_ROOM_STARTING;
  if (name && strcmp(name, "closing") == 0) return SFU_ROOM_CLOSING;
  if (name && strcmp(name, "crashed") == 0) return SFU_ROOM_CRASHED;
  return SFU_ROOM_RUNNING;
}

int sfu_supervisor_adopt(sfu_supervisor_t *s, json_t *state) {
  json_t *z, *j;
  size_t i;
  int n = 0;
  uv_signal_init(s->loop, &s->sigchld);
  s->sigchld.data = s;
  uv_signal_start(&s->sigchld, on_sigchld, SIGCHLD);
  uv_unref((uv_handle_t *)&s->sigchld);
  s->sigchld_on = 1;
  json_array_foreach(json_object_get(state, "zygotes"), i, z) {
    sfu_spawner_cb_t cb = {s, on_zygote_exit, on_zygote_died};
    sfu_spawner_t *sp;
    int pid = (int)json_integer_value(json_object_get(z, "pid"));
    int fd = (int)json_integer_value(json_object_get(z, "fd"));
    if (sfu_spawner_adopt(&sp, s->loop, pid, fd, &cb) == 0 && sfu_vec_push(&s->retired, sp) == 0)
      sfu_vec_push(&s->reap, pid);
  }
  json_array_foreach(json_object_get(state, "rooms"), i, j) {
    sfu_room_rec_t *r = calloc(1, sizeof(*r));
    if (!r) return SFU_ENOMEM;
    s->records_alive++;
    r->sup = s;
    snprintf(r->id, sizeof(r->id), "%s", json_string_value(json_object_get(j, "room_id")) ?: "");
    snprintf(r->name, sizeof(r->name), "%s", json_string_value(json_object_get(j, "name")) ?: "");
    r->max_participants = (int)json_integer_value(json_object_get(j, "max_participants"));
    r->empty_timeout_s = (int)json_integer_value(json_object_get(j, "empty_timeout_s"));
    r->max_audio_streams = (int)json_integer_value(json_object_get(j, "max_audio_streams"));
    json_t *st = json_object_get(j, "stats");
    sfu_supervisor_record_load(r, j);
    r->state = state_of(json_string_value(json_object_get(j, "state")));
    snprintf(r->end_reason, sizeof(r->end_reason), "%s",
             json_string_value(json_object_get(j, "end_reason")) ?: "");
    r->pid = (int)json_integer_value(json_object_get(j, "pid"));
    r->exited = (int)json_integer_value(json_object_get(j, "exited"));
    r->exit_status = json_integer_value(json_object_get(j, "exit_status"));
    r->term_signal = (int)json_integer_value(json_object_get(j, "term_signal"));
    r->ended_wall_ms = json_integer_value(json_object_get(j, "ended_wall_ms"));
    r->participants = (int)json_integer_value(json_object_get(j, "participants"));
    r->stats = json_is_null(st) ? NULL : json_incref(st);
    packet_counters(r->stats, r->pkt_seen); /* counted by the sfud before */
    r->ping_seq = (uint64_t)json_integer_value(json_object_get(j, "ping_seq"));
    r->spawned_us = r->ready_us = sfu_now_us();
    r->last_heard_ms = sfu_now_ms();
    if (r->state == SFU_ROOM_CLOSING)
      r->close_deadline_ms = sfu_now_ms() + (uint64_t)s->cfg->shutdown_grace_ms;
    json_t *zp = json_object_get(j, "zygote_pid");
    r->foreign = json_is_true(json_object_get(j, "foreign"));
    if (r->foreign) {
      /* taken over after sfud died (recover.c): not our child */
    } else if (zp) {
      r->via_zygote = 1;
      for (int k = 0; k < s->retired.n; k++)
        if (sfu_spawner_pid(s->retired.items[k]) == json_integer_value(zp))
          r->zyg = s->retired.items[k];
    } else {
      r->adopted = r->state != SFU_ROOM_CRASHED;
    }
    int fd = (int)json_integer_value(json_object_get(j, "ipc_fd"));
    if (r->state != SFU_ROOM_CRASHED && fd >= 0) {
      r->ipc.data = r;
      if (sfu_ipc_init(s->loop, &r->ipc, fd, on_ipc_msg, on_ipc_error) == 0) {
        r->handles_open = 1;
        r->ipc.on_drain = on_ipc_drain;
        char *partial;
        size_t len;
        json_t *p = json_object_get(j, "ipc_partial");
        if (p && sfu_etcd_decode(p, &partial, &len) == 0) {
          sfu_ipc_preload(&r->ipc, partial, len);
          free(partial);
        }
      } else {
        room_log(SFU_LOG_ERROR, r, "cannot take over its IPC (fd %d)", fd);
        kill(r->pid, SIGKILL);
        r->state = SFU_ROOM_CRASHED;
        snprintf(r->end_reason, sizeof(r->end_reason), "ipc_error");
        r->ended_wall_ms = sfu_wall_ms();
      }
    }
    r->next = s->rooms;
    s->rooms = r;
    n += r->state != SFU_ROOM_CRASHED;
  }
  on_sigchld(&s->sigchld, SIGCHLD); /* what exited before the handler was there */
  return n;
}
