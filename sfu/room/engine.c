/*
 * engine.c -- the call engine's lifecycle, control messages from sfud,
 * membership (join, replace, leave, timeout, kick, mute), usage periods
 * and timers. Sans-IO: see engine.h.
 *
 * Control messages (docs/internals/ipc.md): client_join / client_msg /
 * client_gone (a client's signaling, relayed by sfud), server_mute, kick.
 * A client_join may carry the client's TURN servers and credentials
 * (`ice_servers`), minted by sfud, which holds the secret: the engine
 * copies them into the welcome as data and never looks into them.
 * sfud authenticates joins and refuses kicked or banned tokens itself, so
 * a kick here only removes; a server mute is the room's to keep: the set
 * of muted identities (room->server_muted) outlives the participant, so a
 * rejoin -- a replacing session or a new one after a leave -- starts
 * server-muted, and a mute sent before the join applies at the join.
 * What the engine emits for sfud: client_msg (to one client, or to all but
 * one), client_close, event (records for the control plane), usage.
 *
 * Timers, all run by sfu_room_tick() at the times sfu_room_next_tick()
 * gives: the media tick (every 100 ms: speaking events, the loudest
 * speakers each listener gets (loudest.c), layer choice, usage
 * checkpoints every usage_interval_s; every 10th tick RTCP reports and the
 * media timeout of participants whose transport went quiet or failed) and,
 * while someone publishes video, the feedback tick (every 20 ms: NACKs
 * upstream).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sfu/base/bytes.h"
#include "sfu/base/log.h"
#include "sfu/base/sfu.h"
#include "sfu/room/engine.h"
#include "signaling/token.h"

#define SPEAKING_EVENT_MIN_US 200000

/* After a hand-over (migrate_out) the call lives on another node: what
 * this room would still say (leaves, closes, usage) is not true. */
static void send_ipc(sfu_room_t *room, json_t *m) {
  if (room->moved)
    json_decref(m);
  else
    room->io->emit(room->io, m);
}

static uint64_t now_ms(const sfu_room_t *room) { return room->now_us / 1000; }
static int64_t wall_ms(const sfu_room_t *room) { return room->wall_us / 1000; }

/* --- messages to clients --------------------------------------------- */

void sfu_room_send(sfu_room_t *room, sfu_participant_t *p, json_t *msg) {
  if (p->via) { /* a remote participant's client is another process's */
    json_decref(msg);
    return;
  }
  send_ipc(room, json_pack("{s:s, s:I, s:o}", "type", "client_msg", "session",
                           (json_int_t)p->session, "msg", msg));
}

/* One IPC message whatever the room's size: sfud fans it out to every
 * session joined to this room (but `except`). A room of N joining at once
 * would otherwise queue N^2 messages towards sfud. */
void sfu_room_broadcast(sfu_room_t *room, sfu_participant_t *except, json_t *msg) {
  if (!room->participants || (room->participants == except && !except->next)) {
    json_decref(msg);
    return;
  }
  send_ipc(room, json_pack("{s:s, s:b, s:I, s:o}", "type", "client_msg", "all", 1, "except",
                           (json_int_t)(except ? except->session : 0), "msg", msg));
}

void sfu_room_error(sfu_room_t *room, sfu_participant_t *p, json_t *id, const char *code,
                    const char *fmt, ...) {
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  json_t *e = json_pack("{s:s, s:s, s:s}", "type", "error", "code", code, "message", msg);
  if (id) json_object_set(e, "id", id);
  sfu_room_send(room, p, e);
}

sfu_participant_t *sfu_room_by_session(sfu_room_t *room, uint32_t session) {
  for (sfu_participant_t *p = room->participants; p; p = p->next)
    if (p->session == session && !p->via) return p;
  return NULL;
}

sfu_participant_t *sfu_room_by_identity(sfu_room_t *room, const char *identity) {
  for (sfu_participant_t *p = room->participants; p; p = p->next)
    if (strcmp(p->identity, identity) == 0 && !p->via) return p;
  return NULL;
}

json_t *sfu_participant_json(const sfu_participant_t *p) {
  json_t *tracks = json_array();
  if (p->audio)
    json_array_append_new(tracks, json_pack("{s:s, s:s, s:b}", "track_id", p->audio->id,
                                            "kind", "audio", "muted",
                                            p->muted || p->server_muted));
  for (int v = 0; v < 2; v++) { /* camera, then screen */
    const sfu_track_t *t = v ? p->screen : p->video;
    if (t)
      json_array_append_new(tracks, json_pack("{s:s, s:s, s:s, s:s}", "track_id", t->id, "kind",
                                              "video", "codec", t->codec.name, "source",
                                              sfu_source_name(t->source)));
  }
  return json_pack("{s:s, s:s, s:s, s:b, s:b, s:b, s:o}", "sid", p->sid, "identity",
                   p->identity, "name", p->name, "muted", p->muted, "server_muted",
                   p->server_muted, "speaking", p->speaking, "tracks", tracks);
}

static void client_close(sfu_room_t *room, uint32_t session, int code, const char *reason) {
  send_ipc(room, json_pack("{s:s, s:I, s:i, s:s}", "type", "client_close", "session",
                           (json_int_t)session, "code", code, "reason", reason));
}

/* --- records for the control plane (sfud journals them) ----------------- */

void sfu_room_event(sfu_room_t *room, const char *type, sfu_participant_t *p, json_t *extra) {
  if (p->via) { /* its own process reports it */
    json_decref(extra);
    return;
  }
  json_t *ev = json_pack("{s:s, s:s, s:s}", "type", type, "participant", p->identity, "sid",
                         p->sid);
  if (extra) json_object_update(ev, extra);
  json_decref(extra);
  send_ipc(room, json_pack("{s:s, s:o}", "type", "event", "event", ev));
}

/* --- usage -------------------------------------------------------------- */

static int publishes_audio(const sfu_participant_t *p) {
  return p->audio && p->media_connected && !p->muted && !p->server_muted;
}

static int publishes_video(const sfu_participant_t *p) {
  return (p->video || p->screen) && p->media_connected;
}

static int receives(const sfu_participant_t *p, sfu_kind_t kind) {
  if (!p->media_connected) return 0;
  for (int i = 0; i < p->down.n; i++) {
    const sfu_downtrack_t *d = p->down.items[i];
    if (!d->negotiated || !d->track || d->kind != kind) continue;
    if (kind == SFU_KIND_AUDIO ? publishes_audio(d->track->owner)
                               : publishes_video(d->track->owner))
      return 1;
  }
  return 0;
}

void sfu_room_usage_refresh(sfu_room_t *room) {
  uint64_t now = now_ms(room);
  for (sfu_participant_t *p = room->participants; p; p = p->next) {
    if (p->migrating || p->via) continue; /* counted by the old node until the
                                             commit; a remote one by its own */
    sfu_usage_set(&p->usage, SFU_USAGE_AUDIO_PUB, publishes_audio(p), now);
    sfu_usage_set(&p->usage, SFU_USAGE_AUDIO_RECV, receives(p, SFU_KIND_AUDIO), now);
    sfu_usage_set(&p->usage, SFU_USAGE_VIDEO_PUB, publishes_video(p), now);
    sfu_usage_set(&p->usage, SFU_USAGE_VIDEO_RECV, receives(p, SFU_KIND_VIDEO), now);
  }
}

json_t *sfu_room_usage_record(sfu_participant_t *p, uint64_t now, int64_t wall, int final) {
  sfu_usage_period_t per;
  sfu_usage_checkpoint(&p->usage, now, wall, &per);
  json_t *ms = json_object();
  for (int k = 0; k < SFU_USAGE_KINDS; k++)
    json_object_set_new(ms, sfu_usage_kind_names[k], json_integer((json_int_t)per.ms[k]));
  return json_pack("{s:s, s:s, s:I, s:I, s:o, s:b}", "identity", p->identity, "sid", p->sid,
                   "period_start_ms", (json_int_t)per.start_wall_ms, "period_end_ms",
                   (json_int_t)per.end_wall_ms, "ms", ms, "final", final);
}

void sfu_room_usage_checkpoint(sfu_room_t *room, sfu_participant_t *leaving) {
  uint64_t now = now_ms(room);
  int64_t wall = wall_ms(room);
  json_t *recs = json_array();
  sfu_room_usage_refresh(room);
  if (leaving) {
    for (int k = 0; k < SFU_USAGE_KINDS; k++) sfu_usage_set(&leaving->usage, k, 0, now);
    json_array_append_new(recs, sfu_room_usage_record(leaving, now, wall, 1));
  } else {
    for (sfu_participant_t *p = room->participants; p; p = p->next)
      if (!p->migrating && !p->via) /* the old node counts it until the commit */
        json_array_append_new(recs, sfu_room_usage_record(p, now, wall, 0));
    room->last_usage_us = room->now_us;
  }
  if (json_array_size(recs) == 0) {
    json_decref(recs);
    return;
  }
  send_ipc(room, json_pack("{s:s, s:o}", "type", "usage", "records", recs));
}

/* --- server mutes ------------------------------------------------------- */

static int muted_index(const sfu_room_t *room, const char *identity) {
  for (int i = 0; i < room->server_muted.n; i++)
    if (strcmp(room->server_muted.items[i].id, identity) == 0) return i;
  return -1;
}

/* Remembers (muted) or forgets the control plane's mute of `identity`,
 * then applies it to the participant if present. The set keeps the order
 * of muting (removal shifts, it is small and changes per API call). */
static void server_mute(sfu_room_t *room, const char *identity, int muted) {
  int i = muted_index(room, identity);
  sfu_participant_t *p = sfu_room_by_identity(room, identity);
  if (muted && i < 0) {
    sfu_room_ident_t id;
    snprintf(id.id, sizeof(id.id), "%s", identity);
    if (room->server_muted.n >= SFU_ROOM_MAX_SERVER_MUTED ||
        sfu_vec_push(&room->server_muted, id) != 0)
      sfu_log(SFU_LOG_WARN, "room", "[%s] server mute not remembered: %d identities muted already",
              identity, room->server_muted.n);
  } else if (!muted && i >= 0) {
    memmove(&room->server_muted.items[i], &room->server_muted.items[i + 1],
            (size_t)(room->server_muted.n - i - 1) * sizeof(room->server_muted.items[0]));
    room->server_muted.n--;
  }
  if (p) sfu_room_set_muted(room, p, muted, 1);
}

/* --- membership ---------------------------------------------------------- */

void sfu_room_unpublish(sfu_room_t *room, sfu_participant_t *p, sfu_track_t **slot) {
  sfu_track_t *t = *slot;
  if (!t) return;
  json_t *ev = json_pack("{s:s, s:s}", "track_id", t->id, "kind",
                         t->kind == SFU_KIND_AUDIO ? "audio" : "video");
  if (t->kind == SFU_KIND_VIDEO)
    json_object_set_new(ev, "source", json_string(sfu_source_name(t->source)));
  sfu_room_event(room, "track_unpublished", p, ev);
  sfu_neg_track_removed(room, t);
  sfu_track_destroy(t);
  *slot = NULL;
  p->link_dirty = 1;
  sfu_whep_rebind(room); /* WHEP viewers that carried it take another */
}

static void drop_media(sfu_room_t *room, sfu_participant_t *p) {
  for (int i = 0; i < SFU_TRACK_SLOTS; i++) sfu_room_unpublish(room, p, sfu_track_at(p, i));
  for (int i = 0; i < p->down.n; i++) {
    sfu_downtrack_t *d = p->down.items[i];
    if (d->track) { /* unhook from the publisher's track */
      sfu_track_t *t = d->track;
      for (int j = 0; j < t->down.n; j++)
        if (t->down.items[j] == d) {
          t->down.items[j] = t->down.items[--t->down.n];
          break;
        }
    }
    sfu_downtrack_free(d);
  }
  p->down.n = 0;
  if (p->transport) room->io->transport_close(room->io, p);
  p->transport = NULL;
  p->tp_ready = 0;
  p->media_connected = 0;
  p->transport_failed_ms = 0;
  sfu_fwd_twcc_free(p);
  sfu_neg_free(p);
}

/* Tells the owner when the room turns empty or stops being empty: nobody
 * in, neither ours nor another process's (a relay's origin lives on while
 * relays serve someone) -- but a relay (its link is to the origin) is
 * empty when it serves nobody itself. */
void sfu_room_set_empty(sfu_room_t *room) {
  int relay = room->links && !room->links->link_origin;
  int empty = relay ? room->participants_n == 0 : room->participants == NULL;
  if (room->ended || empty == room->empty) return;
  room->empty = empty;
  room->io->empty(room->io, empty);
}

/* The clients hear that p is no longer listed: it left, or (a replaced
 * session) it is an audience member now. */
static void broadcast_left(sfu_room_t *room, sfu_participant_t *p, const char *reason) {
  sfu_room_broadcast(room, NULL, json_pack("{s:s, s:s, s:s, s:s}", "type", "participant_left",
                                           "sid", p->sid, "identity", p->identity, "reason",
                                           reason));
}

int sfu_room_join(sfu_room_t *room, uint32_t session, const char *identity, const char *name,
                  unsigned grants, json_t *req_id, json_t *ice_servers) {
  sfu_participant_t *p = sfu_room_by_identity(room, identity);
  int replaced = p != NULL;

  if (replaced) {
    client_close(room, p->session, 4009, "replaced by a new session");
    drop_media(room, p);
    sfu_log(SFU_LOG_INFO, "room", "[%s] session %u replaces %u", identity, session, p->session);
  } else {
    if (room->participants_n >= room->max_participants) {
      client_close(room, session, 4005, "room full");
      return SFU_ECAPACITY;
    }
    p = calloc(1, sizeof(*p));
    if (!p) {
      client_close(room, session, 1011, "out of memory");
      return SFU_ENOMEM;
    }
    sfu_random_hex(p->sid, "PA_", 8);
    snprintf(p->identity, sizeof(p->identity), "%s", identity);
    p->room = room;
    sfu_usage_init(&p->usage, now_ms(room), wall_ms(room));
    sfu_usage_set(&p->usage, SFU_USAGE_CONNECTED, 1, now_ms(room));
    snprintf(p->name, sizeof(p->name), "%s", name ? name : "");
    sfu_room_event(room, "participant_joined", p, json_pack("{s:s}", "name", p->name));
    p->next = room->participants;
    p->number = ++room->joins;
    room->participants = p;
    room->participants_n++;
  }
  snprintf(p->name, sizeof(p->name), "%s", name ? name : "");
  int listed_before = replaced && !p->audience;
  room->audience_n += !(grants & SFU_GRANT_PUBLISH) - p->audience;
  p->audience = !(grants & SFU_GRANT_PUBLISH);
  p->session = session;
  p->grants = grants;
  p->fixed = 0; /* a WHEP viewer says so after its join (sfu_room_set_fixed()) */
  p->follow[0] = '\0';
  p->joined_ms = now_ms(room);
  p->muted = 0;
  p->server_muted = muted_index(room, identity) >= 0; /* before anyone hears of p */
  p->rtcp_ssrc = sfu_random_u32();
  sfu_room_set_empty(room);

  json_t *others = json_array();
  for (sfu_participant_t *o = room->participants; o; o = o->next)
    if (o != p && !o->audience) json_array_append_new(others, sfu_participant_json(o));
  json_t *w = json_pack("{s:s, s:i, s:{s:s, s:s, s:s, s:b}, s:{s:s}, s:o, s:i}", "type",
                        "welcome", "v", 1, "participant", "sid", p->sid, "identity", p->identity,
                        "name", p->name, "server_muted", p->server_muted, "room", "room_id",
                        room->id, "participants", others, "audience", sfu_relay_audience(room));
  if (req_id) json_object_set(w, "id", req_id);
  if (json_array_size(ice_servers) > 0) json_object_set(w, "ice_servers", ice_servers);
  sfu_room_send(room, p, w);
  if (!p->audience)
    sfu_room_broadcast(room, p, json_pack("{s:s, s:o}", "type",
                                          listed_before ? "participant_updated"
                                                        : "participant_joined",
                                          "participant", sfu_participant_json(p)));
  else if (listed_before) { /* listed no more: the others forget it */
    sfu_relay_gone(room, p, "audience");
    broadcast_left(room, p, "audience");
  }
  sfu_log(SFU_LOG_INFO, "room", "[%s] joined (session %u, %d in room)", identity, session,
          room->participants_n);
  p->link_dirty = 1;
  sfu_room_usage_refresh(room);
  return 0;
}

void sfu_room_remove(sfu_room_t *room, sfu_participant_t *p, const char *reason, int close_code,
                     const char *close_reason) {
  if (!p->via) sfu_room_usage_checkpoint(room, p); /* p's final period */
  /* (the participant_left record follows drop_media's track_unpublished) */
  for (sfu_participant_t **pp = &room->participants; *pp; pp = &(*pp)->next)
    if (*pp == p) {
      *pp = p->next;
      break;
    }
  if (!p->via) room->participants_n--;
  room->audience_n -= p->audience;
  if (close_code && !p->via) client_close(room, p->session, close_code, close_reason);
  if (!p->audience) sfu_relay_gone(room, p, reason);
  drop_media(room, p);
  sfu_room_event(room, "participant_left", p, json_pack("{s:s}", "reason", reason));
  if (!p->audience) broadcast_left(room, p, reason);
  sfu_log(SFU_LOG_INFO, "room", "[%s] left (%s, %d in room)", p->identity, reason,
          room->participants_n);
  if (p->speaking) room->speaking_dirty = 1;
  sfu_vec_free(&p->prefs);
  free(p);
  sfu_room_usage_refresh(room);
  sfu_room_set_empty(room);
}

void sfu_room_set_muted(sfu_room_t *room, sfu_participant_t *p, int muted, int by_server) {
  if (by_server) {
    if (p->server_muted == muted) return;
    p->server_muted = muted;
    room->speaking_dirty = 1; /* the speaking set leaves out the server-muted */
    if (p->audio) /* resume with continuous sequence numbers */
      for (int i = 0; i < p->audio->down.n; i++) p->audio->down.items[i]->resync = 1;
  } else {
    if (p->muted == muted) return;
    p->muted = muted;
    if (p->audio) p->audio->muted = muted;
  }
  p->link_dirty = 1;
  if (!p->audience)
    sfu_room_broadcast(room, NULL, json_pack("{s:s, s:o}", "type", "participant_updated",
                                             "participant", sfu_participant_json(p)));
  sfu_room_usage_refresh(room);
}


/* --- inputs ---------------------------------------------------------------- */

/* Every input starts here: the engine's notion of now. */
static void set_time(sfu_room_t *room, sfu_time_t now) {
  room->now_us = now.mono_us;
  room->wall_us = now.wall_us;
}

int sfu_room_init(sfu_room_t *room, const sfu_room_opts_t *o, sfu_room_io_t *io, sfu_time_t now) {
  memset(room, 0, sizeof(*room));
  if (!o || !o->id || !io || !io->emit || !io->send || !io->transport_open ||
      !io->transport_close || !io->transport_remote || !io->transport_candidate ||
      !io->transport_local || !io->transport_last_rx_us || !io->empty)
    return SFU_EINVAL;
  set_time(room, now);
  room->io = io;
  snprintf(room->id, sizeof(room->id), "%s", o->id);
  room->max_participants = o->max_participants > 0 ? o->max_participants : 1;
  room->usage_interval_s = o->usage_interval_s > 0 ? o->usage_interval_s : 10;
  room->max_audio_streams = o->max_audio_streams > 0 ? o->max_audio_streams : 0;
  room->media_timeout_us = o->media_timeout_s > 0 ? (uint64_t)o->media_timeout_s * 1000000
                                                  : SFU_ROOM_MEDIA_TIMEOUT_US;
  room->dynacast_stop_ms = o->dynacast_stop_ms > 0 ? (uint64_t)o->dynacast_stop_ms
                                                   : SFU_ROOM_DYNACAST_STOP_MS;
  room->last_usage_us = room->now_us;
  room->next_media_us = room->now_us + SFU_ROOM_MEDIA_TICK_US;
  room->empty = 1;
  return 0;
}

void sfu_room_end(sfu_room_t *room, sfu_time_t now) {
  if (room->ended) return;
  set_time(room, now);
  room->ended = 1; /* (no empty notification while everyone leaves) */
  while (room->participants)
    if (room->relay_ending) /* the room goes on elsewhere: its clients join again */
      sfu_room_remove(room, room->participants, "relay_closed", 4016, "relay gone: join again");
    else
      sfu_room_remove(room, room->participants, "room_closed", 4010, "room closed");
  sfu_relay_end(room);
  sfu_vec_free(&room->server_muted);
  sfu_loudest_free(room);
}

int sfu_room_on_control(sfu_room_t *room, const char *type, json_t *msg, sfu_time_t now) {
  if (room->ended || !type || !json_is_object(msg)) return SFU_EINVAL;
  set_time(room, now);
  if (strcmp(type, "server_mute") == 0) {
    const char *identity = json_string_value(json_object_get(msg, "identity"));
    if (!identity || !sfu_token_valid_id(identity)) return SFU_EINVAL;
    server_mute(room, identity, json_is_true(json_object_get(msg, "muted")));
    return 0;
  }
  if (strcmp(type, "kick") == 0) {
    const char *identity = json_string_value(json_object_get(msg, "identity"));
    sfu_participant_t *p = identity ? sfu_room_by_identity(room, identity) : NULL;
    if (p) sfu_room_remove(room, p, "kicked", 4012, "kicked"); /* else: gone already */
    return 0;
  }
  if (strcmp(type, "export") == 0) {
    send_ipc(room, json_pack("{s:s, s:o}", "type", "exported", "state", sfu_room_export(room)));
    return 0;
  }
  if (strcmp(type, "migrate_in") == 0) return sfu_room_import(room, json_object_get(msg, "state"));
  if (strcmp(type, "migrate_commit") == 0 || strcmp(type, "migrate_out") == 0) {
    json_t *cut = json_object_get(msg, "cut_wall_ms");
    if (!json_is_integer(cut)) return SFU_EINVAL;
    if (strcmp(type, "migrate_commit") == 0)
      sfu_room_migrate_commit(room, json_integer_value(cut));
    else
      sfu_room_migrate_out(room, json_integer_value(cut));
    return 0;
  }
  int rv = sfu_relay_on_control(room, type, msg);
  if (rv != SFU_ENOENT || strncmp(type, "link_", 5) == 0) return rv;
  uint32_t session = (uint32_t)json_integer_value(json_object_get(msg, "session"));
  sfu_participant_t *p = sfu_room_by_session(room, session);
  if (strcmp(type, "session_token") == 0) { /* kept for a new sfud (shell.h) */
    const char *t = json_string_value(json_object_get(msg, "resume_token"));
    if (p && t && strlen(t) < sizeof(p->resume_token))
      snprintf(p->resume_token, sizeof(p->resume_token), "%s", t);
    return 0;
  }
  if (strncmp(type, "client_", 7) != 0) return SFU_ENOENT;
  if (strcmp(type, "client_join") == 0) {
    const char *identity = json_string_value(json_object_get(msg, "identity"));
    if (!identity || !sfu_token_valid_id(identity)) {
      client_close(room, session, 4000, "bad request");
      return SFU_EINVAL;
    }
    int jrv = sfu_room_join(room, session, identity,
                           json_string_value(json_object_get(msg, "name")),
                           (unsigned)json_integer_value(json_object_get(msg, "grants")),
                           json_object_get(msg, "id"), json_object_get(msg, "ice_servers"));
    if (jrv == 0 && json_is_true(json_object_get(msg, "whep"))) /* a WHEP viewer (whep.c) */
      sfu_room_set_fixed(room, session, json_string_value(json_object_get(msg, "follow")));
    return jrv;
  }
  if (strcmp(type, "client_gone") == 0) {
    const char *why = json_string_value(json_object_get(msg, "reason"));
    if (p) sfu_room_remove(room, p, why && strcmp(why, "timeout") == 0 ? "timeout" : "left", 0, NULL);
    return 0;
  }
  if (strcmp(type, "client_msg") == 0) {
    if (p) sfu_proto_client_msg(room, p, json_object_get(msg, "msg"));
    sfu_relay_flush(room); /* a track published: described before its packets come */
    return 0;
  }
  return SFU_ENOENT;
}

void sfu_room_on_rtp(sfu_room_t *room, sfu_participant_t *p, uint8_t *buf, size_t len,
                     sfu_time_t now) {
  set_time(room, now);
  if (p->is_link) { /* a stream of another process of the call */
    p = len >= 12 ? sfu_relay_owner(room, p, sfu_rd32(buf + 8)) : NULL;
    if (!p) {
      room->c.drop_relay_ssrc++;
      return;
    }
    room->c.relay_in++;
  }
  sfu_fwd_on_rtp(room, p, buf, len);
}

void sfu_room_on_rtcp(sfu_room_t *room, sfu_participant_t *p, uint8_t *buf, size_t len,
                      sfu_time_t now) {
  set_time(room, now);
  if (p->is_link)
    sfu_relay_on_rtcp(room, p, buf, len);
  else
    sfu_fwd_on_rtcp(room, p, buf, len);
}

void sfu_room_on_transport(sfu_room_t *room, sfu_participant_t *p, int state, sfu_time_t now) {
  set_time(room, now);
  if (p->is_link) {
    sfu_relay_on_transport(room, p, state);
    return;
  }
  if (state == SFU_TP_CONNECTED) {
    p->tp_ready = 1;
    p->media_connected = 1;
    p->transport_failed_ms = 0;
    sfu_log(SFU_LOG_INFO, "room", "[%s] media connected (DTLS-SRTP)", p->identity);
  } else {
    p->media_connected = 0;
    p->transport_failed_ms = now_ms(room); /* removed unless it recovers (ICE restart) */
    if (!p->transport_failed_ms) p->transport_failed_ms = 1;
  }
  sfu_room_usage_refresh(room);
}

/* Once a second: participants whose transport went quiet, never connected,
 * or failed and did not recover are removed. */
static void media_timeouts(sfu_room_t *room) {
  uint64_t now = now_ms(room);
  sfu_participant_t *p, *next;
  for (p = room->participants; p; p = next) {
    next = p->next;
    if (!p->transport) continue;
    uint64_t last = room->io->transport_last_rx_us(room->io, p);
    uint64_t quiet = room->now_us > last ? room->now_us - last : 0;
    if ((p->media_connected && quiet > room->media_timeout_us) ||
        (!p->media_connected && quiet > SFU_ROOM_CONNECT_TIMEOUT_US) ||
        (p->transport_failed_ms && now - p->transport_failed_ms > room->media_timeout_us / 1000))
      sfu_room_remove(room, p, "timeout", 4013, "media timeout");
  }
}

/* Speaking events: the set of speakers, broadcast when it changed, at most
 * every SPEAKING_EVENT_MIN_US (the detectors are fed by the forwarder). */
static void speaking_tick(sfu_room_t *room) {
  for (sfu_participant_t *p = room->participants; p; p = p->next)
    if (p->audio && sfu_speaking_tick(&p->audio->speaking, now_ms(room))) room->speaking_dirty = 1;
  if (!room->speaking_dirty || room->now_us - room->last_speaking_us < SPEAKING_EVENT_MIN_US)
    return;
  int changed = 0;
  json_t *speakers = json_array();
  for (sfu_participant_t *p = room->participants; p; p = p->next) {
    int on = p->audio && !p->server_muted && sfu_speaking_active(&p->audio->speaking);
    changed |= on != p->speaking;
    p->speaking = on;
    if (on)
      json_array_append_new(speakers, json_pack("{s:s, s:s, s:f}", "sid", p->sid, "identity",
                                                p->identity,
                                                "level", (double)sfu_speaking_level(&p->audio->speaking)));
  }
  room->speaking_dirty = 0;
  if (!changed) {
    json_decref(speakers);
    return;
  }
  room->last_speaking_us = room->now_us;
  sfu_room_broadcast(room, NULL, json_pack("{s:s, s:o}", "type", "speaking", "speakers", speakers));
}

/* The audience count, once a second when it changed: to the clients (one
 * message, however many joined or left) and to the links. */
static void audience_tick(sfu_room_t *room) {
  int n = sfu_relay_audience(room);
  if (n != room->audience_told) {
    room->audience_told = n;
    sfu_room_broadcast(room, NULL, json_pack("{s:s, s:i}", "type", "audience", "count", n));
  }
  sfu_relay_tell_audience(room);
}

static void media_tick(sfu_room_t *room) {
  room->media_ticks++;
  speaking_tick(room);
  sfu_loudest_tick(room);
  sfu_fwd_layers_tick(room);
  sfu_fwd_send_queue_srs(room);
  sfu_room_migration_check(room);
  sfu_relay_flush(room);
  if (room->now_us - room->last_usage_us >= (uint64_t)room->usage_interval_s * 1000000)
    sfu_room_usage_checkpoint(room, NULL);
  if (room->media_ticks % (1000000 / SFU_ROOM_MEDIA_TICK_US) == 0) {
    sfu_fwd_send_reports(room);
    media_timeouts(room);
    audience_tick(room);
  }
  /* The feedback tick runs while someone publishes video. */
  int video = 0;
  for (sfu_participant_t *p = room->participants; p && !video; p = p->next)
    video = p->video || p->screen;
  if (!video)
    room->next_fb_us = 0;
  else if (!room->next_fb_us)
    room->next_fb_us = room->now_us + SFU_ROOM_FB_TICK_US;
}

void sfu_room_tick(sfu_room_t *room, sfu_time_t now) {
  if (room->ended) return;
  set_time(room, now);
  /* Catch up without bursts: a late call runs each tick once and
   * schedules the next one period from now. */
  if (room->next_fb_us && room->now_us >= room->next_fb_us) {
    sfu_fwd_feedback_tick(room);
    room->next_fb_us = room->now_us + SFU_ROOM_FB_TICK_US;
  }
  if (room->now_us >= room->next_media_us) {
    media_tick(room);
    room->next_media_us += SFU_ROOM_MEDIA_TICK_US;
    if (room->next_media_us <= room->now_us) room->next_media_us = room->now_us + SFU_ROOM_MEDIA_TICK_US;
  }
}

uint64_t sfu_room_next_tick(const sfu_room_t *room) {
  uint64_t t = room->next_media_us;
  if (room->next_fb_us && room->next_fb_us < t) t = room->next_fb_us;
  return t;
}
