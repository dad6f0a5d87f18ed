/*
 * proto.c -- client signaling messages inside the room: checked by
 * signaling/message.c, then handed to negotiation.c or engine.c. No media
 * logic here; part of the call engine (engine.h): no I/O, no clock.
 *
 * sfud has already handled join, ping and leave; what reaches the room is
 * offer, answer, candidate and mute. Every malformed message gets an error
 * reply naming what is wrong; none closes the session.
 */
#include <string.h>

#include "sfu/room/engine.h"
#include "sfu/base/sfu.h"
#include "signaling/message.h"
#include "signaling/token.h"

/* A client's mute messages per second: each one is broadcast to the whole
 * room, so a client toggling in a loop would make the room send N
 * messages per toggle. Beyond this, "rate_limited" and no change. */
#define MUTE_MSGS_PER_S 5

static int mute_allowed(sfu_room_t *room, sfu_participant_t *p) {
  uint64_t now = room->now_us / 1000;
  if (now - p->mute_window_ms >= 1000) {
    p->mute_window_ms = now;
    p->mute_msgs = 0;
  }
  return ++p->mute_msgs <= MUTE_MSGS_PER_S;
}

void sfu_proto_client_msg(sfu_room_t *room, sfu_participant_t *p, json_t *msg) {
  sfu_msg_t m;
  const char *code, *why;

  if (sfu_msg_parse(msg, &m, &code, &why) != 0) {
    sfu_room_error(room, p, json_is_object(msg) ? json_object_get(msg, "id") : NULL, code,
                   "%s", why);
    return;
  }
  switch (m.type) {
  case SFU_MSG_OFFER:
    sfu_neg_on_offer(room, p, m.sdp, m.sources, m.id);
    break;
  case SFU_MSG_ANSWER:
    sfu_neg_on_answer(room, p, m.sdp, m.offer_id);
    break;
  case SFU_MSG_CANDIDATE:
    sfu_neg_on_candidate(room, p, m.candidate);
    break;
  case SFU_MSG_MUTE:
    if (!(p->grants & SFU_GRANT_PUBLISH)) {
      sfu_room_error(room, p, m.id, "not_allowed", "this token may not publish");
      break;
    }
    if (!mute_allowed(room, p)) {
      sfu_room_error(room, p, m.id, "rate_limited", "at most %d mute messages a second",
                     MUTE_MSGS_PER_S);
      break;
    }
    sfu_room_set_muted(room, p, m.muted, 0);
    json_t *ack = json_pack("{s:s}", "type", "ack");
    if (m.id) json_object_set(ack, "id", m.id);
    sfu_room_send(room, p, ack);
    break;
  case SFU_MSG_VIDEO_QUALITY: {
    sfu_downtrack_t *d = NULL;
    for (int i = 0; i < p->down.n && !d; i++)
      if (p->down.items[i]->track && p->down.items[i]->kind == SFU_KIND_VIDEO &&
          strcmp(p->down.items[i]->track_id, m.track_id) == 0)
        d = p->down.items[i];
    if (!d) {
      sfu_room_error(room, p, m.id, "not_found", "no video track '%.64s' is sent to you",
                     m.track_id);
      break;
    }
    if (m.quality >= 0) d->max_layer = m.quality;
    if (m.max_height >= 0 && json_object_get(msg, "max_height")) d->max_height = m.max_height;
    if (m.paused >= 0) d->paused = m.paused;
    sfu_fwd_layers_tick(room);
    json_t *ok = json_pack("{s:s}", "type", "ack");
    if (m.id) json_object_set(ok, "id", m.id);
    sfu_room_send(room, p, ok);
    break;
  }
  default: /* join, ping, leave: sfud's */
    sfu_room_error(room, p, m.id, "bad_message", "unexpected message here");
  }
}
