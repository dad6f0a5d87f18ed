/*
 * room.c -- the room process: lifecycle, its side of the IPC protocol, and
 * membership (join, replace, leave, timeout, kick, mute).
 *
 * Messages from sfud (docs/internals/ipc.md): ping -> pong, stats -> stats,
 * shutdown -> closing + exit 0, client_join / client_msg / client_gone (a
 * client's signaling, relayed), server_mute, kick. Messages to sfud: ready,
 * pong, stats, closing, client_msg (to one client), client_close.
 *
 * Timers: the empty timer runs whenever nobody is in the room; the parent
 * watchdog ends the room when sfud goes silent; the media timer (100 ms)
 * drives speaking events, RTCP reports (every second) and the media
 * timeout of participants whose transport went quiet.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <openssl/rand.h>

#include "sfu/base/log.h"
#include "sfu/room/room.h"
#include "sfu/base/sfu.h"
#include "signaling/token.h"

#define MEDIA_TICK_MS 100
#define FB_TICK_MS 20 /* NACKs upstream */
#define MEDIA_TIMEOUT_MS 15000   /* transport silent this long: participant gone */
#define CONNECT_TIMEOUT_MS 30000 /* transport never connected */

static void send_ipc(sfu_room_t *room, json_t *m) {
  int rv = sfu_ipc_send(&room->ipc, m);
  if (rv != 0 && rv != SFU_ECANCELED)
    sfu_log(SFU_LOG_WARN, "room", "IPC send failed: %s", sfu_strerror(rv));
  json_decref(m);
}

/* --- messages to clients --------------------------------------------- */

void sfu_room_send(sfu_room_t *room, sfu_participant_t *p, json_t *msg) {
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
    if (p->session == session) return p;
  return NULL;
}

sfu_participant_t *sfu_room_by_identity(sfu_room_t *room, const char *identity) {
  for (sfu_participant_t *p = room->participants; p; p = p->next)
    if (strcmp(p->identity, identity) == 0) return p;
  return NULL;
}

json_t *sfu_participant_json(const sfu_participant_t *p) {
  json_t *tracks = json_array();
  if (p->audio)
    json_array_append_new(tracks, json_pack("{s:s, s:s, s:b}", "track_id", p->audio->id,
                                            "kind", "audio", "muted",
                                            p->muted || p->server_muted));
  if (p->video)
    json_array_append_new(tracks, json_pack("{s:s, s:s, s:s}", "track_id", p->video->id,
                                            "kind", "video", "codec", p->video->codec.name));
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
  return p->video && p->media_connected;
}

static int receives(const sfu_participant_t *p, sfu_kind_t kind) {
  if (!p->media_connected) return 0;
  for (int i = 0; i < p->ndown; i++) {
    const sfu_downtrack_t *d = p->down[i];
    if (!d->negotiated || !d->track || d->kind != kind) continue;
    if (kind == SFU_KIND_AUDIO ? publishes_audio(d->track->owner)
                               : publishes_video(d->track->owner))
      return 1;
  }
  return 0;
}

void sfu_room_usage_refresh(sfu_room_t *room) {
  uint64_t now = sfu_now_ms();
  for (sfu_participant_t *p = room->participants; p; p = p->next) {
    sfu_usage_set(&p->usage, SFU_USAGE_AUDIO_PUB, publishes_audio(p), now);
    sfu_usage_set(&p->usage, SFU_USAGE_AUDIO_RECV, receives(p, SFU_KIND_AUDIO), now);
    sfu_usage_set(&p->usage, SFU_USAGE_VIDEO_PUB, publishes_video(p), now);
    sfu_usage_set(&p->usage, SFU_USAGE_VIDEO_RECV, receives(p, SFU_KIND_VIDEO), now);
  }
}

static json_t *usage_record(sfu_participant_t *p, uint64_t now, int64_t wall, int final) {
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
  uint64_t now = sfu_now_ms();
  int64_t wall = sfu_wall_ms();
  json_t *recs = json_array();
  sfu_room_usage_refresh(room);
  if (leaving) {
    sfu_usage_set(&leaving->usage, SFU_USAGE_CONNECTED, 0, now);
    sfu_usage_set(&leaving->usage, SFU_USAGE_AUDIO_PUB, 0, now);
    sfu_usage_set(&leaving->usage, SFU_USAGE_AUDIO_RECV, 0, now);
    json_array_append_new(recs, usage_record(leaving, now, wall, 1));
  }
  for (sfu_participant_t *p = room->participants; p; p = p->next)
    if (p != leaving) json_array_append_new(recs, usage_record(p, now, wall, 0));
  room->last_usage_ms = now;
  if (json_array_size(recs) == 0) {
    json_decref(recs);
    return;
  }
  send_ipc(room, json_pack("{s:s, s:o}", "type", "usage", "records", recs));
}

/* --- transport callbacks ------------------------------------------------- */

/* The process's one room: transport callbacks carry only the participant. */
static sfu_room_t *the_room;

static void tp_rtp(void *arg, uint8_t *buf, size_t len) {
  sfu_fwd_on_rtp(the_room, arg, buf, len);
}

static void tp_rtcp(void *arg, uint8_t *buf, size_t len) {
  sfu_fwd_on_rtcp(the_room, arg, buf, len);
}

static void tp_connected(void *arg) {
  sfu_participant_t *p = arg;
  p->media_connected = 1;
  p->transport_failed_ms = 0;
  sfu_room_usage_refresh(the_room);
  sfu_log(SFU_LOG_INFO, "room", "[%s] media connected (DTLS-SRTP)", p->identity);
}

static void tp_failed(void *arg, const char *why) {
  sfu_participant_t *p = arg;
  sfu_log(SFU_LOG_WARN, "room", "[%s] transport failed: %s", p->identity, why);
  p->media_connected = 0;
  p->transport_failed_ms = sfu_now_ms(); /* removed unless it recovers (ICE restart) */
  sfu_room_usage_refresh(the_room);
}

/* The ICE agent and the DTLS certificate are made for the first
 * participant that offers, not at start: a room must be cheap to spawn. */
static int media_init(sfu_room_t *room) {
  int rv;
  if (room->ice) return 0;
  if ((rv = sfu_srtp_library_init()) != 0) return rv;
  if (!room->cert && (rv = sfu_dtls_cert_create(&room->cert)) != 0) return rv;
  return sfu_ice_create(&room->ice, room->loop, &room->ice_opts);
}

int sfu__room_transport_create(sfu_room_t *room, sfu_participant_t *p) {
  int rv = media_init(room);
  if (rv != 0) return rv;
  sfu_transport_cb_t cb = {p, tp_rtp, tp_rtcp, tp_connected, tp_failed};
  return sfu_transport_create(&p->transport, room->loop, room->ice, room->cert, &cb);
}

/* --- membership ---------------------------------------------------------- */

static void unpublish(sfu_room_t *room, sfu_participant_t *p, sfu_track_t **slot) {
  sfu_track_t *t = *slot;
  if (!t) return;
  sfu_room_event(room, "track_unpublished", p,
                 json_pack("{s:s, s:s}", "track_id", t->id, "kind",
                           t->kind == SFU_KIND_AUDIO ? "audio" : "video"));
  sfu_neg_track_removed(room, t);
  sfu_track_destroy(t);
  *slot = NULL;
}

static void drop_media(sfu_room_t *room, sfu_participant_t *p) {
  unpublish(room, p, &p->audio);
  unpublish(room, p, &p->video);
  for (int i = 0; i < p->ndown; i++) {
    sfu_downtrack_t *d = p->down[i];
    if (d->track) { /* unhook from the publisher's track */
      sfu_track_t *t = d->track;
      for (int j = 0; j < t->ndown; j++)
        if (t->down[j] == d) {
          t->down[j] = t->down[--t->ndown];
          break;
        }
    }
    sfu_downtrack_free(d);
  }
  p->ndown = 0;
  sfu_transport_destroy(p->transport);
  p->transport = NULL;
  p->media_connected = 0;
  sfu_neg_free(p);
}

static void on_empty(uv_timer_t *t);

static void update_empty_timer(sfu_room_t *room) {
  if (room->closing) return;
  if (room->participants_n == 0)
    uv_timer_start(&room->empty_timer, on_empty, (uint64_t)room->empty_timeout_s * 1000, 0);
  else
    uv_timer_stop(&room->empty_timer);
}

int sfu_room_join(sfu_room_t *room, uint32_t session, const char *identity, const char *name,
                  unsigned grants, json_t *req_id) {
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
    sfu_usage_init(&p->usage, sfu_now_ms(), sfu_wall_ms());
    sfu_usage_set(&p->usage, SFU_USAGE_CONNECTED, 1, sfu_now_ms());
    snprintf(p->name, sizeof(p->name), "%s", name ? name : "");
    sfu_room_event(room, "participant_joined", p, json_pack("{s:s}", "name", p->name));
    p->next = room->participants;
    p->number = ++room->joins;
    room->participants = p;
    room->participants_n++;
  }
  snprintf(p->name, sizeof(p->name), "%s", name ? name : "");
  p->session = session;
  p->grants = grants;
  p->joined_ms = sfu_now_ms();
  p->muted = 0;
  RAND_bytes((unsigned char *)&p->rtcp_ssrc, sizeof(p->rtcp_ssrc));
  update_empty_timer(room);

  json_t *others = json_array();
  for (sfu_participant_t *o = room->participants; o; o = o->next)
    if (o != p) json_array_append_new(others, sfu_participant_json(o));
  json_t *w = json_pack("{s:s, s:i, s:{s:s, s:s, s:s}, s:{s:s}, s:o}", "type", "welcome", "v", 1,
                        "participant", "sid", p->sid, "identity", p->identity, "name", p->name,
                        "room", "room_id", room->id, "participants", others);
  if (req_id) json_object_set(w, "id", req_id);
  sfu_room_send(room, p, w);
  sfu_room_broadcast(room, p, json_pack("{s:s, s:o}", "type",
                                        replaced ? "participant_updated" : "participant_joined",
                                        "participant", sfu_participant_json(p)));
  sfu_log(SFU_LOG_INFO, "room", "[%s] joined (session %u, %d in room)", identity, session,
          room->participants_n);
  sfu_room_usage_checkpoint(room, NULL);
  return 0;
}

void sfu_room_remove(sfu_room_t *room, sfu_participant_t *p, const char *reason, int close_code,
                     const char *close_reason) {
  sfu_room_usage_checkpoint(room, p); /* p's final period, the others' too */
  /* (the participant_left record follows drop_media's track_unpublished) */
  for (sfu_participant_t **pp = &room->participants; *pp; pp = &(*pp)->next)
    if (*pp == p) {
      *pp = p->next;
      break;
    }
  room->participants_n--;
  if (close_code) client_close(room, p->session, close_code, close_reason);
  drop_media(room, p);
  sfu_room_event(room, "participant_left", p, json_pack("{s:s}", "reason", reason));
  sfu_room_broadcast(room, NULL, json_pack("{s:s, s:s, s:s, s:s}", "type", "participant_left",
                                           "sid", p->sid, "identity", p->identity, "reason",
                                           reason));
  sfu_log(SFU_LOG_INFO, "room", "[%s] left (%s, %d in room)", p->identity, reason,
          room->participants_n);
  if (p->speaking) room->speaking_dirty = 1;
  free(p);
  sfu_room_usage_refresh(room);
  update_empty_timer(room);
}

void sfu_room_set_muted(sfu_room_t *room, sfu_participant_t *p, int muted, int by_server) {
  if (by_server) {
    if (p->server_muted == muted) return;
    p->server_muted = muted;
    if (p->audio) /* resume with continuous sequence numbers */
      for (int i = 0; i < p->audio->ndown; i++) p->audio->down[i]->resync = 1;
  } else {
    if (p->muted == muted) return;
    p->muted = muted;
    if (p->audio) p->audio->muted = muted;
  }
  sfu_room_broadcast(room, NULL, json_pack("{s:s, s:o}", "type", "participant_updated",
                                           "participant", sfu_participant_json(p)));
  sfu_room_usage_checkpoint(room, NULL);
}

/* --- IPC from sfud ------------------------------------------------------- */

static json_t *stats_json(sfu_room_t *room, const char *type) {
  struct rusage ru;
  sfu_transport_stats_t tp = {0};
  uint64_t foreign = 0;
  getrusage(RUSAGE_SELF, &ru);
  json_int_t cpu = (json_int_t)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec +
                   (json_int_t)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec;
  for (sfu_participant_t *p = room->participants; p; p = p->next) {
    if (!p->transport) continue;
    const sfu_transport_stats_t *s = sfu_transport_stats(p->transport);
    tp.rx_drop_demux += s->rx_drop_demux;
    tp.rx_drop_srtp += s->rx_drop_srtp;
    tp.tx_drop += s->tx_drop;
    foreign += sfu_ice_drop_foreign(sfu_transport_ice(p->transport));
  }
  json_t *pk = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "rtp_in",
                         (json_int_t)room->c.rtp_in, "rtp_out", (json_int_t)room->c.rtp_out,
                         "rtcp_in", (json_int_t)room->c.rtcp_in, "rtcp_out",
                         (json_int_t)room->c.rtcp_out, "drop_unknown_ssrc",
                         (json_int_t)room->c.drop_unknown_ssrc, "drop_malformed",
                         (json_int_t)room->c.drop_malformed, "drop_muted",
                         (json_int_t)room->c.drop_muted, "drop_send",
                         (json_int_t)room->c.drop_send);
  json_object_set_new(pk, "drop_not_rtp", json_integer((json_int_t)tp.rx_drop_demux));
  json_object_set_new(pk, "drop_srtp", json_integer((json_int_t)tp.rx_drop_srtp));
  json_object_set_new(pk, "drop_transport_send", json_integer((json_int_t)tp.tx_drop));
  json_object_set_new(pk, "drop_foreign_source", json_integer((json_int_t)foreign));
  json_object_set_new(pk, "drop_rtx_probe", json_integer((json_int_t)room->c.drop_rtx_probe));
  json_t *video = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "keyframes_in",
                            (json_int_t)room->c.keyframes_in, "plis_sent",
                            (json_int_t)room->c.plis_sent, "plis_throttled",
                            (json_int_t)room->c.plis_throttled, "plis_received",
                            (json_int_t)room->c.plis_received, "nacks_sent",
                            (json_int_t)room->c.nacks_sent, "nacks_received",
                            (json_int_t)room->c.nacks_received, "rtx_in",
                            (json_int_t)room->c.rtx_in, "rtx_out", (json_int_t)room->c.rtx_out,
                            "layer_switches", (json_int_t)room->c.layer_switches);
  json_object_set_new(pk, "video", video);
  return json_pack("{s:s, s:i, s:I, s:I, s:o, s:o}", "type", type, "participants",
                   room->participants_n, "uptime_ms",
                   (json_int_t)(sfu_now_ms() - room->started_ms), "cpu_us", cpu, "packets", pk,
                   "capture", sfu_recorder_json(&room->rec));
}

static void on_client_ipc(sfu_room_t *room, const char *type, json_t *msg) {
  uint32_t session = (uint32_t)json_integer_value(json_object_get(msg, "session"));
  sfu_participant_t *p = sfu_room_by_session(room, session);

  if (strcmp(type, "client_join") == 0) {
    const char *identity = json_string_value(json_object_get(msg, "identity"));
    if (!identity || !sfu_token_valid_id(identity) || room->closing) {
      client_close(room, session, 4000, "bad request");
      return;
    }
    sfu_room_join(room, session, identity, json_string_value(json_object_get(msg, "name")),
                  (unsigned)json_integer_value(json_object_get(msg, "grants")),
                  json_object_get(msg, "id"));
  } else if (strcmp(type, "client_gone") == 0) {
    const char *why = json_string_value(json_object_get(msg, "reason"));
    if (p) sfu_room_remove(room, p, why && strcmp(why, "timeout") == 0 ? "timeout" : "left", 0, NULL);
  } else if (strcmp(type, "client_msg") == 0) {
    if (p) sfu_proto_client_msg(room, p, json_object_get(msg, "msg"));
  }
}

static void on_ipc_msg(sfu_ipc_t *ipc, json_t *msg) {
  sfu_room_t *room = ipc->data;
  const char *type = json_string_value(json_object_get(msg, "type"));

  room->last_parent_ms = sfu_now_ms();
  if (!type) return;
  if (strcmp(type, "ping") == 0) {
    json_t *pong = stats_json(room, "pong");
    json_object_set(pong, "seq", json_object_get(msg, "seq"));
    send_ipc(room, pong);
  } else if (strcmp(type, "stats") == 0) {
    send_ipc(room, stats_json(room, "stats"));
  } else if (strcmp(type, "shutdown") == 0) {
    const char *why = json_string_value(json_object_get(msg, "reason"));
    sfu_room_close(room, why ? why : "shutdown", 0);
  } else if (strncmp(type, "client_", 7) == 0) {
    on_client_ipc(room, type, msg);
  } else if (strcmp(type, "capture") == 0) {
    const char *action = json_string_value(json_object_get(msg, "action"));
    const char *path = json_string_value(json_object_get(msg, "path"));
    if (action && strcmp(action, "start") == 0 && path)
      sfu_recorder_start(&room->rec, path,
                         (uint64_t)json_integer_value(json_object_get(msg, "max_bytes")),
                         (int)json_integer_value(json_object_get(msg, "max_seconds")), sfu_now_ms());
    else
      sfu_recorder_stop(&room->rec, "stopped");
  } else if (strcmp(type, "server_mute") == 0 || strcmp(type, "kick") == 0) {
    const char *identity = json_string_value(json_object_get(msg, "identity"));
    sfu_participant_t *p = identity ? sfu_room_by_identity(room, identity) : NULL;
    if (!p) return;
    if (type[0] == 'k')
      sfu_room_remove(room, p, "kicked", 4012, "kicked");
    else
      sfu_room_set_muted(room, p, json_is_true(json_object_get(msg, "muted")), 1);
  } else {
    sfu_log(SFU_LOG_WARN, "room", "unknown IPC message type '%.32s'", type);
  }
}

static void on_ipc_error(sfu_ipc_t *ipc, int err) {
  sfu_room_t *room = ipc->data;
  if (err == 0)
    sfu_log(SFU_LOG_WARN, "room", "sfud closed the channel; ending room");
  else
    sfu_log(SFU_LOG_ERROR, "room", "IPC failed: %s; ending room", sfu_strerror(err));
  sfu_room_close(room, "parent_gone", 1);
}

/* --- timers ---------------------------------------------------------- */

static void on_empty(uv_timer_t *t) {
  sfu_room_t *room = t->data;
  sfu_log(SFU_LOG_INFO, "room", "empty for %d s; ending room", room->empty_timeout_s);
  sfu_room_close(room, "empty_timeout", 0);
}

static void on_parent_check(uv_timer_t *t) {
  sfu_room_t *room = t->data;
  if (sfu_now_ms() - room->last_parent_ms > (uint64_t)room->parent_timeout_ms) {
    sfu_log(SFU_LOG_ERROR, "room", "no word from sfud for %d ms; ending room",
            room->parent_timeout_ms);
    sfu_room_close(room, "parent_gone", 1);
  }
}

static void on_fb_tick(uv_timer_t *t) {
  sfu_room_t *room = t->data;
  sfu_fwd_feedback_tick(room, sfu_now_ms());
}

static void on_media_tick(uv_timer_t *t) {
  sfu_room_t *room = t->data;
  uint64_t now = sfu_now_ms();
  room->media_ticks++;
  sfu_recorder_tick(&room->rec, now);
  sfu_fwd_speaking_tick(room, now);
  sfu_fwd_layers_tick(room, now);
  int video = 0; /* the feedback timer runs while there is video */
  for (sfu_participant_t *p = room->participants; p && !video; p = p->next) video = p->video != NULL;
  if (video && !uv_is_active((uv_handle_t *)&room->fb_timer))
    uv_timer_start(&room->fb_timer, on_fb_tick, FB_TICK_MS, FB_TICK_MS);
  else if (!video)
    uv_timer_stop(&room->fb_timer);
  if (now - room->last_usage_ms >= (uint64_t)room->usage_interval_s * 1000)
    sfu_room_usage_checkpoint(room, NULL);
  if (room->media_ticks % (1000 / MEDIA_TICK_MS) == 0) {
    sfu_fwd_send_reports(room);
    sfu_participant_t *p, *next;
    for (p = room->participants; p; p = next) {
      next = p->next;
      if (!p->transport) continue;
      uint64_t quiet = now - sfu_transport_last_rx_ms(p->transport);
      if ((p->media_connected && quiet > MEDIA_TIMEOUT_MS) ||
          (!p->media_connected && quiet > CONNECT_TIMEOUT_MS) ||
          (p->transport_failed_ms && now - p->transport_failed_ms > MEDIA_TIMEOUT_MS))
        sfu_room_remove(room, p, "timeout", 4013, "media timeout");
    }
  }
}

/* --- lifecycle ----------------------------------------------------------- */

int sfu_room_init(sfu_room_t *room, uv_loop_t *loop, const sfu_room_opts_t *o) {
  int rv;
  memset(room, 0, sizeof(*room));
  the_room = room;
  room->loop = loop;
  snprintf(room->id, sizeof(room->id), "%s", o->id);
  room->max_participants = o->max_participants;
  room->empty_timeout_s = o->empty_timeout_s;
  room->parent_timeout_ms = o->parent_timeout_ms;
  room->usage_interval_s = o->usage_interval_s > 0 ? o->usage_interval_s : 10;
  room->started_ms = room->last_parent_ms = room->last_usage_ms = sfu_now_ms();

  snprintf(room->ice_addresses, sizeof(room->ice_addresses), "%s",
           o->ice_addresses ? o->ice_addresses : "127.0.0.1");
  room->ice_opts.addresses = room->ice_addresses;
  if (o->announce) {
    snprintf(room->ice_announce, sizeof(room->ice_announce), "%s", o->announce);
    room->ice_opts.announce = room->ice_announce;
  }
  room->ice_opts.port_min = o->port_min;
  room->ice_opts.port_max = o->port_max;
  room->ipc.data = room;
  if ((rv = sfu_ipc_init(loop, &room->ipc, o->ipc_fd, on_ipc_msg, on_ipc_error)) != 0)
    return rv;
  uv_timer_init(loop, &room->empty_timer);
  uv_timer_init(loop, &room->parent_timer);
  uv_timer_init(loop, &room->media_timer);
  uv_timer_init(loop, &room->fb_timer);
  room->empty_timer.data = room->parent_timer.data = room->media_timer.data = room;
  room->fb_timer.data = room;
  uv_timer_start(&room->empty_timer, on_empty, (uint64_t)room->empty_timeout_s * 1000, 0);
  uint64_t check = (uint64_t)room->parent_timeout_ms / 4 + 1;
  uv_timer_start(&room->parent_timer, on_parent_check, check, check);
  uv_timer_start(&room->media_timer, on_media_tick, MEDIA_TICK_MS, MEDIA_TICK_MS);

  send_ipc(room, json_pack("{s:s, s:i}", "type", "ready", "pid", (int)uv_os_getpid()));
  return 0;
}

static void on_closed(uv_handle_t *h) {
  sfu_room_t *room = h->loop->data;
  room->pending_closes--;
}
static void on_ipc_closed(sfu_ipc_t *ipc) { ((sfu_room_t *)ipc->data)->pending_closes--; }

void sfu_room_close(sfu_room_t *room, const char *reason, int exit_code) {
  if (room->closing) return;
  room->closing = 1;
  room->exit_code = exit_code;
  snprintf(room->close_reason, sizeof(room->close_reason), "%s", reason);
  while (room->participants) {
    sfu_participant_t *p = room->participants;
    sfu_room_remove(room, p, "room_closed", 4010, "room closed");
  }
  sfu_recorder_stop(&room->rec, "room_closed");
  if (!room->ipc.failed)
    send_ipc(room, json_pack("{s:s, s:s, s:i}", "type", "closing", "reason", reason,
                             "participants", room->participants_n));
  sfu_ice_destroy(room->ice);
  room->ice = NULL;
  sfu_dtls_cert_destroy(room->cert);
  room->cert = NULL;
  room->loop->data = room;
  room->pending_closes = 5;
  uv_close((uv_handle_t *)&room->empty_timer, on_closed);
  uv_close((uv_handle_t *)&room->parent_timer, on_closed);
  uv_close((uv_handle_t *)&room->media_timer, on_closed);
  uv_close((uv_handle_t *)&room->fb_timer, on_closed);
  sfu_ipc_close(&room->ipc, on_ipc_closed);
}
