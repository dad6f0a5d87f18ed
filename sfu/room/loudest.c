/*
 * loudest.c -- the audio each listener gets in a large room: the room's
 * max_audio_streams loudest speakers (docs/internals/media.md, "Loudest
 * speakers"). Part of the call engine (engine.h): the time is the
 * input's, and nothing here does I/O.
 *
 * Every media tick (100 ms; never per packet) the room's audio tracks are
 * ranked by their speaking detector's smoothed level (sfu/media/speaking.h),
 * loudest first; a server-muted publisher's track, whose packets go
 * nowhere, ranks last, and equal levels rank by order of joining. A
 * listener's down-track of a track is forwarded while the track is among
 * the N loudest of the tracks it receives (its own is not one of them),
 * and after that for HANGOVER_MS from the last tick it was, as long as the
 * track still counts as speaking: a speaker pushed out of the N mid-word
 * finishes the word, one who stopped talking goes at once.
 *
 * A track that enters the N starts at its next packet: an Opus decoder
 * needs nothing to start from. The down-track's sequence numbers continue
 * from the last packet it sent (d->resync, as after a server mute), so the
 * listener's jitter buffer sees no loss to conceal, only a timestamp jump
 * as after DTX. What is not forwarded is counted (drop_not_loudest).
 *
 * Cost: one sort of the audio tracks and one pass over the down-tracks
 * per tick; on the packet path one flag per down-track (forwarder.c). The
 * ranking array is the room's, grown to the most tracks seen.
 */
#include <stdlib.h>
#include <string.h>

#include "sfu/room/engine.h"

#define HANGOVER_MS 1000 /* forwarded this long after leaving the N loudest */

/* How loud a track is for the ranking: its smoothed level as amplitude
 * (0 before its first packet), -1 when its publisher is server-muted. */
static float loudness(const sfu_track_t *t) {
  if (t->owner->server_muted) return -1.0f;
  return t->speaking.seen ? sfu_speaking_level(&t->speaking) : 0.0f;
}

static int louder_first(const void *a, const void *b) {
  const sfu_track_t *x = *(sfu_track_t *const *)a, *y = *(sfu_track_t *const *)b;
  float lx = loudness(x), ly = loudness(y);
  if (lx != ly) return lx > ly ? -1 : 1;
  if (x->owner->number != y->owner->number) return x->owner->number < y->owner->number ? -1 : 1;
  return strcmp(x->id, y->id);
}

void sfu_loudest_tick(sfu_room_t *room) {
  int n = room->max_audio_streams;
  if (n <= 0) return;
  uint64_t now = room->now_us / 1000;
  room->ranked.n = 0;
  for (sfu_participant_t *p = room->participants; p; p = p->next)
    if (p->audio && sfu_vec_push(&room->ranked, p->audio) != 0)
      return; /* out of memory: everyone keeps what they get */
  qsort(room->ranked.items, (size_t)room->ranked.n, sizeof(room->ranked.items[0]),
        louder_first);
  for (int i = 0; i < room->ranked.n; i++) room->ranked.items[i]->loud_rank = i;
  for (sfu_participant_t *p = room->participants; p; p = p->next) {
    const sfu_track_t *own = p->audio;
    for (int i = 0; i < p->down.n; i++) {
      sfu_downtrack_t *d = p->down.items[i];
      const sfu_track_t *t = d->track;
      if (!t || t->kind != SFU_KIND_AUDIO) continue;
      /* its rank among the tracks this listener receives */
      int rank = t->loud_rank - (own && own->loud_rank < t->loud_rank);
      int heard = rank < n;
      if (heard)
        d->loud_ms = now;
      else
        heard = d->loud_ms && now - d->loud_ms < HANGOVER_MS &&
                sfu_speaking_active(&t->speaking);
      if (!heard && !d->unheard) d->resync = 1; /* numbering continues at its return */
      d->unheard = !heard;
    }
  }
}

void sfu_loudest_free(sfu_room_t *room) { sfu_vec_free(&room->ranked); }
