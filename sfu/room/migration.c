/*
 * migration.c -- a call moving to another node's room process
 * (docs/internals/migration.md).
 *
 * The old room exports what the call is made of (sfu_room_export): each
 * participant's identity, sid, name, grants, mute states, the ids of the
 * tracks it publishes (audio, video, screen) and the choices it made for the videos it receives;
 * the server mutes. No transport state moves: each client makes a second
 * peer connection to the new room (make-before-break, docs/signaling.md).
 *
 * The new room takes the state in (sfu_room_import) with the sessions
 * renumbered by its sfud. A participant moved in is there before its
 * client is: others see it in the room, and it counts no usage (the old
 * room does) until the commit. When its client's offer comes, it is
 * handled as a first offer; its tracks are published again under their
 * old ids and without events (the control plane saw them published), and
 * its video subscriptions take their old choices as they are made. Once
 * every participant moved in is connected, negotiated and publishing what
 * it published before, the room says migration_ready (once); sfud then
 * commits the move.
 *
 * The commit names one wall-clock instant, the cut: the old room closes
 * every participant's usage period at the cut (sfu_room_migrate_out, not
 * final: the stay goes on) and falls silent; the new room opens them at
 * the cut (sfu_room_migrate_commit). Each room places the cut on its own
 * monotonic clock by how long ago it was on the wall clock, so a message's
 * delay counts on neither side twice: usage tiles time across both nodes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sfu/base/log.h"
#include "sfu/base/sfu.h"
#include "sfu/room/engine.h"
#include "signaling/token.h"

static uint64_t now_ms(const sfu_room_t *room) { return room->now_us / 1000; }

/* --- the old room ----------------------------------------------------------- */

static json_t *subs_json(const sfu_participant_t *p) {
  json_t *subs = json_array();
  for (int i = 0; i < p->down.n; i++) {
    const sfu_downtrack_t *d = p->down.items[i];
    if (!d->track || d->kind != SFU_KIND_VIDEO) continue;
    json_array_append_new(subs, json_pack("{s:s, s:i, s:i, s:b}", "track_id", d->track_id,
                                          "quality", d->max_layer, "max_height", d->max_height,
                                          "paused", d->paused));
  }
  return subs;
}

json_t *sfu_room_export(const sfu_room_t *room) {
  json_t *parts = json_array(), *muted = json_array();
  for (const sfu_participant_t *p = room->participants; p; p = p->next)
    if (!p->via) /* a remote participant moves with its own process */
      json_array_append_new(
        parts, json_pack("{s:I, s:s, s:s, s:s, s:i, s:i, s:b, s:s?, s:s?, s:s?, s:o, s:s}",
                         "session", (json_int_t)p->session, "sid", p->sid, "identity",
                         p->identity, "name", p->name, "grants", (int)p->grants, "number",
                         (int)p->number, "muted", p->muted, "audio",
                         p->audio ? p->audio->id : NULL, "video", p->video ? p->video->id : NULL,
                         "screen", p->screen ? p->screen->id : NULL, "subscriptions",
                         subs_json(p), "resume_token", p->resume_token));
  for (int i = 0; i < room->server_muted.n; i++)
    json_array_append_new(muted, json_string(room->server_muted.items[i].id));
  return json_pack("{s:i, s:o, s:o}", "joins", (int)room->joins, "participants", parts,
                   "server_muted", muted);
}

/* The cut in this room's monotonic time: the wall clock of the input being
 * handled tells how long ago it was (sfud chose it just before asking). */
static uint64_t cut_mono_ms(const sfu_room_t *room, int64_t cut_wall_ms) {
  int64_t wall = room->wall_us / 1000, ago = wall > cut_wall_ms ? wall - cut_wall_ms : 0;
  uint64_t now = now_ms(room);
  return (uint64_t)ago < now ? now - (uint64_t)ago : now;
}

void sfu_room_migrate_out(sfu_room_t *room, int64_t cut_wall_ms) {
  if (room->moved) return;
  uint64_t cut = cut_mono_ms(room, cut_wall_ms);
  json_t *recs = json_array();
  /* (no refresh first: the meters would run past the cut; their states are
   * current, set at every change) */
  for (sfu_participant_t *p = room->participants; p; p = p->next) {
    if (p->via) continue; /* its own process counts it */
    for (int k = 0; k < SFU_USAGE_KINDS; k++) sfu_usage_set(&p->usage, k, 0, cut);
    json_array_append_new(recs, sfu_room_usage_record(p, cut, cut_wall_ms, 0));
  }
  if (json_array_size(recs))
    room->io->emit(room->io, json_pack("{s:s, s:o}", "type", "usage", "records", recs));
  else
    json_decref(recs);
  sfu_log(SFU_LOG_INFO, "room", "handed over to another node (%d participants)",
          room->participants_n);
  room->moved = 1;
}

/* --- the new room ----------------------------------------------------------- */

/* s[key]: a string of 1..max-1 bytes, or NULL. */
static const char *str_of(json_t *o, const char *key, size_t max) {
  const char *v = json_string_value(json_object_get(o, key));
  return v && v[0] && strlen(v) < max ? v : NULL;
}

static int check_one(json_t *e) {
  json_t *session = json_object_get(e, "session"), *subs = json_object_get(e, "subscriptions");
  const char *identity = str_of(e, "identity", SFU_TOKEN_MAX_ID + 1);
  if (!json_is_object(e) || !json_is_integer(session) || json_integer_value(session) < 1 ||
      json_integer_value(session) > (json_int_t)UINT32_MAX || !identity ||
      !sfu_token_valid_id(identity) || !str_of(e, "sid", 24) ||
      (subs && !json_is_array(subs)))
    return SFU_EINVAL;
  return 0;
}

static sfu_participant_t *import_one(sfu_room_t *room, json_t *e) {
  sfu_participant_t *p = calloc(1, sizeof(*p));
  const char *name = json_string_value(json_object_get(e, "name")), *v;
  json_t *sub;
  size_t i;
  if (!p) return NULL;
  p->room = room;
  p->session = (uint32_t)json_integer_value(json_object_get(e, "session"));
  snprintf(p->sid, sizeof(p->sid), "%s", str_of(e, "sid", 24));
  snprintf(p->identity, sizeof(p->identity), "%s", str_of(e, "identity", SFU_TOKEN_MAX_ID + 1));
  snprintf(p->name, sizeof(p->name), "%s", name ? name : "");
  p->grants = (unsigned)json_integer_value(json_object_get(e, "grants"));
  p->audience = !(p->grants & SFU_GRANT_PUBLISH);
  p->number = (unsigned)json_integer_value(json_object_get(e, "number"));
  p->muted = json_is_true(json_object_get(e, "muted"));
  p->joined_ms = now_ms(room);
  p->rtcp_ssrc = sfu_random_u32();
  p->migrating = 1;
  static const char *const slots[SFU_TRACK_SLOTS] = {"audio", "video", "screen"};
  for (int k = 0; k < SFU_TRACK_SLOTS; k++)
    if ((v = str_of(e, slots[k], sizeof(p->import_track[0]))))
      snprintf(p->import_track[k], sizeof(p->import_track[0]), "%s", v);
  json_array_foreach(json_object_get(e, "subscriptions"), i, sub) {
    sfu_sub_pref_t pref;
    const char *tid = str_of(sub, "track_id", sizeof(pref.track_id));
    if (!tid) continue;
    memset(&pref, 0, sizeof(pref));
    snprintf(pref.track_id, sizeof(pref.track_id), "%s", tid);
    pref.max_layer = (int)json_integer_value(json_object_get(sub, "quality"));
    pref.max_height = (int)json_integer_value(json_object_get(sub, "max_height"));
    pref.paused = json_is_true(json_object_get(sub, "paused"));
    if (pref.max_layer < 0 || pref.max_layer >= SFU_MAX_LAYERS) pref.max_layer = SFU_MAX_LAYERS - 1;
    if (pref.max_height < 0) pref.max_height = 0;
    sfu_vec_push(&p->prefs, pref);
  }
  sfu_usage_init(&p->usage, now_ms(room), room->wall_us / 1000); /* all off until the commit */
  return p;
}

int sfu_room_import(sfu_room_t *room, json_t *state) {
  json_t *parts = json_object_get(state, "participants"), *e;
  size_t i;
  if (!json_is_array(parts) || json_array_size(parts) > (size_t)room->max_participants ||
      room->participants)
    return SFU_EINVAL;
  json_array_foreach(parts, i, e) if (check_one(e) != 0) return SFU_EINVAL;
  json_array_foreach(json_object_get(state, "server_muted"), i, e) {
    sfu_room_ident_t id;
    const char *v = json_string_value(e);
    if (!v || !sfu_token_valid_id(v) || room->server_muted.n >= SFU_ROOM_MAX_SERVER_MUTED) continue;
    snprintf(id.id, sizeof(id.id), "%s", v);
    sfu_vec_push(&room->server_muted, id);
  }
  json_array_foreach(parts, i, e) {
    sfu_participant_t *p = import_one(room, e);
    if (!p) return SFU_ENOMEM;
    for (int k = 0; k < room->server_muted.n && !p->server_muted; k++)
      p->server_muted = strcmp(room->server_muted.items[k].id, p->identity) == 0;
    p->next = room->participants;
    room->participants = p;
    room->participants_n++;
    room->audience_n += p->audience;
    if (p->number > room->joins) room->joins = p->number;
  }
  json_int_t joins = json_integer_value(json_object_get(state, "joins"));
  if (joins > (json_int_t)room->joins && joins < (json_int_t)UINT32_MAX) room->joins = (unsigned)joins;
  room->empty = room->participants_n == 0;
  room->io->empty(room->io, room->empty);
  sfu_log(SFU_LOG_INFO, "room", "moved in: %d participants; waiting for their clients",
          room->participants_n);
  room->migration_wait = 1;
  sfu_room_migration_check(room); /* nobody to wait for: ready now */
  return 0;
}

void sfu_room_apply_pref(sfu_participant_t *p, sfu_downtrack_t *d) {
  for (int i = 0; i < p->prefs.n; i++) {
    const sfu_sub_pref_t *pref = &p->prefs.items[i];
    if (strcmp(pref->track_id, d->track_id) != 0) continue;
    d->max_layer = pref->max_layer;
    d->max_height = pref->max_height;
    d->paused = pref->paused;
    sfu_vec_remove_swap(&p->prefs, i);
    return;
  }
}

/* A video p receives whose publisher sends (a packet within the last
 * second) and of which no keyframe has been forwarded here yet (a
 * single-layer stream starts on any picture: forwarder.c; the room asks
 * the publisher for a keyframe meanwhile). */
static int video_waiting(const sfu_participant_t *p) {
  uint64_t now = now_ms(p->room);
  for (int i = 0; i < p->down.n; i++) {
    const sfu_downtrack_t *d = p->down.items[i];
    if (d->kind != SFU_KIND_VIDEO || !d->track || d->paused || (d->started && d->keyed)) continue;
    for (int k = 0; k < d->track->nlayers; k++)
      if (d->track->layers[k].last_ms && now - d->track->layers[k].last_ms < 1000) return 1;
  }
  return 0;
}

/* Connected, nothing left to negotiate, what it published before is
 * published again, and every video it receives has started here with a
 * keyframe: when its client switches to this room, the video goes on at
 * once. */
static int settled(const sfu_participant_t *p) {
  for (int k = 0; k < SFU_TRACK_SLOTS; k++)
    if (p->import_track[k][0]) return 0;
  return p->media_connected && p->first_answered && p->neg == NEG_IDLE && !p->needs_offer &&
         !video_waiting(p);
}

void sfu_room_migration_check(sfu_room_t *room) {
  int n = 0;
  if (!room->migration_wait) return;
  for (const sfu_participant_t *p = room->participants; p; p = p->next) {
    if (p->migrating && !settled(p)) return;
    n += p->migrating;
  }
  room->migration_wait = 0;
  sfu_log(SFU_LOG_INFO, "room", "moved in: %d participants connected again", n);
  room->io->emit(room->io, json_pack("{s:s, s:i}", "type", "migration_ready", "participants", n));
}

void sfu_room_migrate_commit(sfu_room_t *room, int64_t cut_wall_ms) {
  uint64_t cut = cut_mono_ms(room, cut_wall_ms); /* from the cut, not from now */
  for (sfu_participant_t *p = room->participants; p; p = p->next) {
    if (!p->migrating) continue;
    p->migrating = 0;
    sfu_usage_init(&p->usage, cut, cut_wall_ms);
    sfu_usage_set(&p->usage, SFU_USAGE_CONNECTED, 1, cut);
  }
  room->migration_wait = 0;
  sfu_room_usage_refresh(room);
}
