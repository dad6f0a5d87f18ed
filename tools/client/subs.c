/*
 * subs.c -- a peer's subscriptions over its media legs (see subs.h).
 *
 * The sets are small (one entry per track of the others, a few hundred at
 * most) and change only when an offer arrives, so everything is a linear
 * scan: by mid for an offer's m-line, by track to map a new leg onto the
 * subscriptions the owner already has. The per-packet lookup
 * (sfu_subs_line_by_ssrc()) is a scan of the leg's m-lines, as it was
 * before there were legs.
 */
#include <string.h>

#include "tools/client/subs.h"

static sfu_subs_line_t *line_by_mid(sfu_subs_leg_t *leg, const char *mid) {
  for (int i = 0; i < leg->v.n; i++)
    if (strcmp(leg->v.items[i].mid, mid) == 0) return &leg->v.items[i];
  return NULL;
}

/* Whether an active m-line of `leg` maps subscription `i`. */
static int mapped_by(const sfu_subs_leg_t *leg, int i) {
  for (int k = 0; k < leg->v.n; k++)
    if (leg->v.items[k].active && leg->v.items[k].sub == i) return 1;
  return 0;
}

/* The subscription of the same track that `leg` does not map yet and that
 * is in use (another leg maps it, or the owner has it active), or -1. */
static int same_track(const sfu_subs_t *s, const sfu_subs_leg_t *leg, const sfu_subs_line_t *l) {
  if (!l->track_id[0]) return -1;
  for (int i = 0; i < s->v.n; i++) {
    const sfu_peer_sub_t *u = &s->v.items[i];
    if (strcmp(u->owner_sid, l->owner_sid) != 0 || strcmp(u->track_id, l->track_id) != 0)
      continue;
    if ((u->active || s->refs.items[i] > 0) && !mapped_by(leg, i)) return i;
  }
  return -1;
}

/* What the owner reads of a subscription: the m-line's fields. */
static void take_fields(sfu_peer_sub_t *u, const sfu_subs_line_t *l) {
  memcpy(u->mid, l->mid, sizeof(u->mid));
  memcpy(u->kind, l->kind, sizeof(u->kind));
  memcpy(u->owner_sid, l->owner_sid, sizeof(u->owner_sid));
  memcpy(u->track_id, l->track_id, sizeof(u->track_id));
  u->ssrc = l->ssrc;
  u->pt = l->pt;
  memcpy(u->codec, l->codec, sizeof(u->codec));
  u->clock = l->clock;
}

/* A new subscription, inactive, with the m-line's fields: its index or -1. */
static int new_sub(sfu_subs_t *s, const sfu_subs_line_t *l) {
  if (sfu_vec_reserve(&s->v, s->v.n + 1) != 0 || sfu_vec_reserve(&s->refs, s->v.n + 1) != 0)
    return -1;
  sfu_peer_sub_t *u = &s->v.items[s->v.n];
  memset(u, 0, sizeof(*u));
  take_fields(u, l);
  s->refs.items[s->v.n] = 0;
  s->refs.n = s->v.n + 1;
  return s->v.n++;
}

sfu_peer_sub_t *sfu_subs_note(sfu_subs_t *s, sfu_subs_leg_t *leg, const sfu_subs_line_t *line,
                              int plays) {
  sfu_subs_line_t *l = line_by_mid(leg, line->mid);
  if (!l) {
    if (!line->active || sfu_vec_reserve(&leg->v, leg->v.n + 1) != 0) return NULL;
    l = &leg->v.items[leg->v.n++];
    *l = *line;
    l->active = 0;
    l->sub = -1;
  } else if (l->active == line->active) {
    return NULL;
  }
  if (line->active) {
    int sub = l->sub;
    *l = *line;
    l->active = 0; /* not yet: same_track() must not see it */
    l->sub = sub >= 0 ? sub : same_track(s, leg, line);
    if (l->sub < 0) l->sub = new_sub(s, line);
    if (l->sub < 0) return NULL; /* out of memory: left unmapped, inactive */
    l->active = 1;
    s->refs.items[l->sub]++;
  } else {
    l->active = 0;
    if (l->sub >= 0) s->refs.items[l->sub]--;
  }
  if (!plays || l->sub < 0) return NULL;
  sfu_peer_sub_t *u = &s->v.items[l->sub];
  if (l->active) take_fields(u, l);
  if (u->active == l->active) return NULL;
  u->active = l->active;
  return u;
}

const sfu_subs_line_t *sfu_subs_line_by_ssrc(const sfu_subs_leg_t *leg, uint32_t ssrc) {
  for (int i = 0; i < leg->v.n; i++)
    if (leg->v.items[i].ssrc == ssrc && leg->v.items[i].active) return &leg->v.items[i];
  return NULL;
}

sfu_peer_sub_t *sfu_subs_get(sfu_subs_t *s, int i) {
  return i >= 0 && i < s->v.n ? &s->v.items[i] : NULL;
}

void sfu_subs_play(sfu_subs_t *s, const sfu_subs_leg_t *leg,
                   int (*announce)(void *arg, sfu_peer_sub_t *sub), void *arg) {
  for (int k = 0; k < leg->v.n; k++) {
    const sfu_subs_line_t *l = &leg->v.items[k];
    if (l->sub < 0) continue;
    sfu_peer_sub_t *u = &s->v.items[l->sub];
    if (l->active) {
      take_fields(u, l);
      if (u->active) continue;
      u->active = 1;
    } else if (u->active && !mapped_by(leg, l->sub)) {
      u->active = 0; /* the new leg's server took it away meanwhile */
    } else {
      continue;
    }
    if (announce(arg, u)) return;
  }
}

void sfu_subs_release(sfu_subs_t *s, sfu_subs_leg_t *leg) {
  for (int k = 0; k < leg->v.n; k++)
    if (leg->v.items[k].active && leg->v.items[k].sub >= 0) s->refs.items[leg->v.items[k].sub]--;
  sfu_vec_free(&leg->v);
}

void sfu_subs_free(sfu_subs_t *s) {
  sfu_vec_free(&s->v);
  sfu_vec_free(&s->refs);
}
