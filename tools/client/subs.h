/*
 * subs.h -- a peer's subscriptions as its owner sees them, over the media
 * legs that carry them.
 *
 * A peer (tools/client/peer.h) has one media leg -- a peer connection and
 * the signaling socket it is negotiated on -- to the node that runs its
 * room, and two while the room moves to another node (docs/signaling.md,
 * "Moving to another node"). Each leg has m-lines of its own: that node's
 * mids, SSRCs and payload types. A track is the same track on both: the
 * same publisher sid and track id (a=msid). The owner sees one
 * subscription (sfu_peer_sub_t) per track, the same one before and after a
 * move (its `user` kept), with the fields of the leg that plays it.
 *
 *   - A leg's m-line becoming active is mapped to a subscription once: the
 *     subscription of the same track (publisher sid and track id) that no
 *     m-line of this leg maps yet and that another leg maps or the owner
 *     has active; failing that, a new one. An m-line made active again
 *     keeps its subscription. With one leg this is one subscription per
 *     m-line, as the server offered them.
 *   - Only the leg that plays changes what the owner sees: `active` and the
 *     m-line's fields. What another leg maps is told to the owner when that
 *     leg comes to play (sfu_subs_play()).
 *   - A leg that goes releases its m-lines (sfu_subs_release()); the
 *     subscriptions stay as the owner saw them. One the owner has active
 *     and the playing leg does not carry (yet) stays active: its track
 *     comes on the playing leg's next offer, or never.
 *   - Subscriptions are never removed. Their pointers are valid until the
 *     next call that adds one (sfu_subs_note()); indices are stable.
 *
 * Pure data, no I/O: memory is allocated for a new m-line or subscription,
 * never per packet. Single-threaded, like the peer.
 */
#ifndef SFU_CLIENT_SUBS_H
#define SFU_CLIENT_SUBS_H

#include <stdint.h>

#include "sfu/base/vec.h"
#include "tools/client/peer.h"

/* One of the server's m-lines on one leg, as its last offer had it. */
typedef struct sfu_subs_line_s {
  char mid[32];
  char kind[8];
  char owner_sid[72];  /* a=msid stream */
  char track_id[72];   /* a=msid track */
  uint32_t ssrc;
  int pt;
  char codec[16];
  int clock;
  int active;          /* recvonly, with an SSRC and a codec */
  int sub;             /* the subscription it maps to; -1: none yet */
} sfu_subs_line_t;

/* A leg's m-lines; zeroed is empty. */
typedef struct sfu_subs_leg_s {
  SFU_VEC(sfu_subs_line_t) v;
} sfu_subs_leg_t;

/* The owner's subscriptions; zeroed is empty. */
typedef struct sfu_subs_s {
  SFU_VEC(sfu_peer_sub_t) v;
  SFU_VEC(int) refs;   /* active m-lines of any leg mapping each one */
} sfu_subs_t;

/*
 * The server offered `line` on leg `leg` (all fields but `sub` set;
 * `active` 0 for an m-line made inactive). `plays`: this leg's media is
 * the one played. Returns the subscription whose state the owner must be
 * told (it appeared, changed or went inactive), or NULL: nothing the owner
 * sees changed, or memory ran out (the m-line is then not mapped).
 */
sfu_peer_sub_t *sfu_subs_note(sfu_subs_t *s, sfu_subs_leg_t *leg, const sfu_subs_line_t *line,
                              int plays);

/* The active m-line of `leg` that arrives with `ssrc`, or NULL. */
const sfu_subs_line_t *sfu_subs_line_by_ssrc(const sfu_subs_leg_t *leg, uint32_t ssrc);

/* The subscription a line maps to (line->sub >= 0). */
sfu_peer_sub_t *sfu_subs_get(sfu_subs_t *s, int i);

/*
 * `leg` plays from now on: every subscription it maps takes its m-line's
 * fields; `announce` is called (with `arg`) for each the owner did not
 * have active, now active. Stops early when `announce` returns nonzero
 * (the peer was destroyed).
 */
void sfu_subs_play(sfu_subs_t *s, const sfu_subs_leg_t *leg,
                   int (*announce)(void *arg, sfu_peer_sub_t *sub), void *arg);

/* `leg` goes: its m-lines no longer map anything; frees them. */
void sfu_subs_release(sfu_subs_t *s, sfu_subs_leg_t *leg);

void sfu_subs_free(sfu_subs_t *s);

#endif
