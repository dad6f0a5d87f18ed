/*
 * whep.c -- what a WHEP viewer's m-lines carry (docs/whip.md).
 *
 * A WHEP viewer offers once -- one recvonly audio and one recvonly video
 * m-line, as a rule -- and there is no server offer in WHEP: the viewer's
 * m-lines are all it will ever have. So the SFU does not give it one
 * m-line per track as it does a WebSocket subscriber; it binds each of
 * the viewer's m-lines (a fixed down-track, negotiation.c) to one track
 * at a time and switches it when the room changes:
 *
 *  - The viewer follows one publisher: the identity its request named
 *    (`?participant=`), else the room's first publisher -- the one that
 *    joined earliest among those publishing video, or, if nobody does,
 *    among those publishing audio. Viewers and audience members are never
 *    followed.
 *  - Its audio m-line carries that publisher's audio; its video m-line
 *    the publisher's camera, or its screen share when it has no camera,
 *    if that video is in the codec the viewer's answer fixed (a viewer's
 *    SDP cannot change codec later). An m-line with nothing to carry
 *    stays negotiated and silent.
 *  - A switch keeps the m-line's SSRC and continues its sequence numbers
 *    and (video) timestamps and picture ids (the forwarder re-bases a
 *    down-track whose layer is unset, as after a simulcast switch), and
 *    asks the new publisher for a keyframe. Audio timestamps jump: the
 *    receiver's jitter buffer takes the new ones as a new talk spurt.
 *
 * sfu_whep_rebind() runs after every change of who publishes what; it
 * walks the participants once per viewer (a room of viewers is small
 * work next to the packets).
 */
#include <string.h>
#include <strings.h>

#include "sfu/base/log.h"
#include "sfu/room/engine.h"

/* Whether p may be followed: a person of this room who publishes. */
static int followable(const sfu_participant_t *p) {
  return !p->fixed && !p->audience && !p->is_link && (p->audio || p->video || p->screen);
}

/* The publisher viewer v follows now, or NULL. */
static sfu_participant_t *followed(sfu_room_t *room, const sfu_participant_t *v) {
  sfu_participant_t *best = NULL;
  for (sfu_participant_t *o = room->participants; o; o = o->next) {
    if (o == v || !followable(o)) continue;
    if (v->follow[0]) {
      if (strcmp(o->identity, v->follow) == 0) return o;
      continue;
    }
    int vid = o->video || o->screen, best_vid = best && (best->video || best->screen);
    if (!best || vid > best_vid || (vid == best_vid && o->number < best->number)) best = o;
  }
  return best;
}

/* The track of `o` that fixed down-track d should carry, or NULL. */
static sfu_track_t *track_for(const sfu_downtrack_t *d, sfu_participant_t *o) {
  if (!o) return NULL;
  if (d->kind == SFU_KIND_AUDIO) return o->audio;
  sfu_track_t *t = o->video ? o->video : o->screen;
  if (t && strcasecmp(t->codec.name, d->codec.name) != 0) return NULL;
  return t;
}

/* d carries t from now on (NULL: nothing). */
static void bind(sfu_room_t *room, sfu_downtrack_t *d, sfu_track_t *t) {
  sfu_track_t *old = d->track;
  if (old == t) return;
  if (old)
    for (int j = 0; j < old->down.n; j++)
      if (old->down.items[j] == d) {
        old->down.items[j] = old->down.items[--old->down.n];
        break;
      }
  d->track = NULL;
  if (t && sfu_track_add_down(t, d) != 0) t = NULL;
  d->track = t;
  /* the next packet re-bases numbering; a resend never mixes publishers */
  d->resync = 1;
  d->layer = -1;
  d->keyed = 0;
  d->shed = 0;
  d->tid_dropping = 0;
  free(d->sent);
  d->sent = NULL;
  if (!t) return;
  snprintf(d->track_id, sizeof(d->track_id), "%s", t->id);
  d->target = t->nlayers - 1;
  d->max_layer = SFU_MAX_LAYERS - 1;
  sfu_log(SFU_LOG_INFO, "room", "[%s] WHEP m-line %s now carries %s of %s", d->sub->identity,
          d->mid, t->id, t->owner->identity);
  if (t->kind == SFU_KIND_VIDEO && d->negotiated) sfu_fwd_request_keyframe(room, t, d->target);
}

void sfu_whep_rebind(sfu_room_t *room) {
  for (sfu_participant_t *v = room->participants; v; v = v->next) {
    if (!v->fixed || !v->first_answered) continue;
    sfu_participant_t *o = followed(room, v);
    for (int i = 0; i < v->down.n; i++) {
      sfu_downtrack_t *d = v->down.items[i];
      if (d->fixed) bind(room, d, track_for(d, o));
    }
  }
}

void sfu_room_set_fixed(sfu_room_t *room, uint32_t session, const char *follow) {
  sfu_participant_t *p = sfu_room_by_session(room, session);
  if (!p) return;
  p->fixed = 1;
  snprintf(p->follow, sizeof(p->follow), "%s", follow ? follow : "");
}
