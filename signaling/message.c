/*
 * message.c -- shape checks of client signaling messages.
 *
 * Only shapes: a string where a string is due, an integer or string id,
 * bounded sizes. Meaning (is the SDP valid, is the token good) is checked
 * where it is used. The result borrows from the JSON value, so the caller
 * keeps the value alive while it uses the result.
 */
#include <string.h>

#include "signaling/message.h"

static const struct {
  const char *name;
  sfu_msg_type_t type;
} types[] = {
    {"join", SFU_MSG_JOIN},           {"offer", SFU_MSG_OFFER}, {"answer", SFU_MSG_ANSWER},
    {"candidate", SFU_MSG_CANDIDATE}, {"mute", SFU_MSG_MUTE},   {"ping", SFU_MSG_PING},
    {"leave", SFU_MSG_LEAVE},         {"video_quality", SFU_MSG_VIDEO_QUALITY},
    {"resume", SFU_MSG_RESUME},
};

#define FAIL(c, w) \
  do {             \
    *code = (c);   \
    *why = (w);    \
    return -1;     \
  } while (0)

int sfu_msg_parse(json_t *msg, sfu_msg_t *out, const char **code, const char **why) {
  memset(out, 0, sizeof(*out));
  if (!json_is_object(msg)) FAIL("bad_message", "a message is a JSON object");
  const char *type = json_string_value(json_object_get(msg, "type"));
  if (!type) FAIL("bad_message", "message needs a string 'type'");
  json_t *id = json_object_get(msg, "id");
  if (id && !json_is_integer(id) && !(json_is_string(id) && json_string_length(id) <= 64))
    FAIL("bad_message", "'id' must be an integer or a string of at most 64 bytes");
  out->id = id;

  size_t i;
  for (i = 0; i < sizeof(types) / sizeof(types[0]); i++)
    if (strcmp(type, types[i].name) == 0) break;
  if (i == sizeof(types) / sizeof(types[0])) FAIL("bad_message", "unknown message type");
  out->type = types[i].type;

  json_t *v;
  switch (out->type) {
  case SFU_MSG_JOIN:
    out->room = json_string_value(json_object_get(msg, "room"));
    out->token = json_string_value(json_object_get(msg, "token"));
    if (!out->room || !out->token) FAIL("bad_message", "join needs string 'room' and 'token'");
    v = json_object_get(msg, "v");
    if (v && (!json_is_integer(v) || json_integer_value(v) != 1))
      FAIL("bad_message", "protocol version 1 only");
    break;
  case SFU_MSG_RESUME:
    out->room = json_string_value(json_object_get(msg, "room"));
    out->token = json_string_value(json_object_get(msg, "resume_token"));
    if (!out->room || !out->token || strlen(out->token) != SFU_RESUME_TOKEN_LEN)
      FAIL("bad_message", "resume needs string 'room' and a 32-character 'resume_token'");
    v = json_object_get(msg, "v");
    if (v && (!json_is_integer(v) || json_integer_value(v) != 1))
      FAIL("bad_message", "protocol version 1 only");
    break;
  case SFU_MSG_OFFER:
  case SFU_MSG_ANSWER:
    v = json_object_get(msg, "sdp");
    if (!json_is_string(v)) FAIL("bad_message", "offer and answer need a string 'sdp'");
    if (json_string_length(v) > SFU_MSG_MAX_SDP) FAIL("too_large", "SDP over 400 KiB");
    out->sdp = json_string_value(v);
    out->sdp_len = json_string_length(v);
    if (strlen(out->sdp) != out->sdp_len) FAIL("bad_message", "SDP contains NUL");
    if (out->type == SFU_MSG_OFFER && (v = json_object_get(msg, "sources")) != NULL) {
      const char *mid;
      json_t *src;
      if (!json_is_object(v) || json_object_size(v) > SFU_MSG_MAX_SOURCES)
        FAIL("bad_message", "'sources' is an object of at most 8 mids");
      json_object_foreach(v, mid, src) {
        const char *name = json_string_value(src);
        if (!mid[0] || strlen(mid) > 31) FAIL("bad_message", "'sources' names a mid of 1..31 bytes");
        if (!name || (strcmp(name, "camera") != 0 && strcmp(name, "screen") != 0))
          FAIL("bad_message", "a source is \"camera\" or \"screen\"");
      }
      out->sources = v;
    }
    if (out->type == SFU_MSG_ANSWER) {
      v = json_object_get(msg, "offer_id");
      if (!json_is_integer(v)) FAIL("bad_message", "answer needs an integer 'offer_id'");
      out->offer_id = json_integer_value(v);
    }
    break;
  case SFU_MSG_CANDIDATE:
    v = json_object_get(msg, "candidate");
    if (json_is_null(v)) break; /* end of candidates */
    if (!json_is_object(v)) FAIL("bad_message", "candidate needs an object or null");
    out->candidate = json_string_value(json_object_get(v, "candidate"));
    if (!out->candidate) FAIL("bad_message", "candidate needs a 'candidate' string");
    if (strlen(out->candidate) > 512) FAIL("bad_message", "candidate longer than 512 bytes");
    break;
  case SFU_MSG_MUTE:
    v = json_object_get(msg, "muted");
    if (!json_is_boolean(v)) FAIL("bad_message", "mute needs a boolean 'muted'");
    out->muted = json_is_true(v);
    break;
  case SFU_MSG_VIDEO_QUALITY:
    out->quality = out->paused = -1;
    out->track_id = json_string_value(json_object_get(msg, "track_id"));
    if (!out->track_id || strlen(out->track_id) > 64)
      FAIL("bad_message", "video_quality needs a string 'track_id'");
    if ((v = json_object_get(msg, "quality")) != NULL) {
      const char *q = json_string_value(v);
      out->quality = !q ? -2 : strcmp(q, "low") == 0 ? 0 : strcmp(q, "medium") == 0 ? 1
                   : strcmp(q, "high") == 0 ? 2 : -2;
      if (out->quality == -2) FAIL("bad_message", "'quality' is low, medium or high");
    }
    if ((v = json_object_get(msg, "max_height")) != NULL) {
      if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 8192)
        FAIL("bad_message", "'max_height' is an integer 0..8192 (0: no bound)");
      out->max_height = (int)json_integer_value(v);
    }
    if ((v = json_object_get(msg, "paused")) != NULL) {
      if (!json_is_boolean(v)) FAIL("bad_message", "'paused' is a boolean");
      out->paused = json_is_true(v);
    }
    break;
  case SFU_MSG_PING:
  case SFU_MSG_LEAVE:
    break;
  }
  return 0;
}
