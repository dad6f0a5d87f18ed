/*
 * proto.c -- client signaling messages (docs/signaling.md) inside the room:
 * check the shape of each message and call the room. No media logic here.
 *
 * sfud has already handled join, ping and leave; what reaches the room is
 * offer, answer, candidate and mute. Every malformed message gets an error
 * reply naming what is wrong; none closes the session.
 */
#include <string.h>

#include "sfu/room.h"
#include "sfu/sfu.h"
#include "signaling/sdp.h"
#include "signaling/token.h"

void sfu_proto_client_msg(sfu_room_t *room, sfu_participant_t *p, json_t *msg) {
  const char *type = json_string_value(json_object_get(msg, "type"));
  json_t *id = json_object_get(msg, "id");

  if (!type) {
    sfu_room_error(room, p, id, "bad_message", "message needs a string 'type'");
  } else if (strcmp(type, "offer") == 0 || strcmp(type, "answer") == 0) {
    json_t *sdp = json_object_get(msg, "sdp");
    if (!json_is_string(sdp)) {
      sfu_room_error(room, p, id, "bad_message", "%s needs a string 'sdp'", type);
    } else if (json_string_length(sdp) > SFU_SDP_MAX_TEXT) {
      sfu_room_error(room, p, id, "too_large", "SDP over %d bytes", SFU_SDP_MAX_TEXT);
    } else if (type[0] == 'o') {
      sfu_neg_on_offer(room, p, json_string_value(sdp), id);
    } else {
      sfu_neg_on_answer(room, p, json_string_value(sdp), json_object_get(msg, "offer_id"));
    }
  } else if (strcmp(type, "candidate") == 0) {
    json_t *c = json_object_get(msg, "candidate");
    if (!c || (!json_is_null(c) && !json_is_object(c)))
      sfu_room_error(room, p, id, "bad_message", "candidate needs an object or null");
    else
      sfu_neg_on_candidate(room, p, c);
  } else if (strcmp(type, "mute") == 0) {
    json_t *m = json_object_get(msg, "muted");
    if (!json_is_boolean(m)) {
      sfu_room_error(room, p, id, "bad_message", "mute needs a boolean 'muted'");
      return;
    }
    if (!(p->grants & SFU_GRANT_PUBLISH)) {
      sfu_room_error(room, p, id, "not_allowed", "this token may not publish");
      return;
    }
    sfu_room_set_muted(room, p, json_is_true(m), 0);
    json_t *ack = json_pack("{s:s}", "type", "ack");
    if (id) json_object_set(ack, "id", id);
    sfu_room_send(room, p, ack);
  } else {
    sfu_room_error(room, p, id, "bad_message", "unknown message type '%.32s'", type);
  }
}
