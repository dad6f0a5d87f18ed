/*
 * message.h -- client signaling messages (docs/signaling.md): one checker
 * used by sfud (join, ping, leave) and by the room (the rest), so both
 * accept and refuse exactly the same messages.
 */
#ifndef SFU_SIGNALING_MESSAGE_H
#define SFU_SIGNALING_MESSAGE_H

#include <jansson.h>
#include <stddef.h>

#include "signaling/sdp.h"

typedef enum {
  SFU_MSG_JOIN,
  SFU_MSG_OFFER,
  SFU_MSG_ANSWER,
  SFU_MSG_CANDIDATE,
  SFU_MSG_MUTE,
  SFU_MSG_PING,
  SFU_MSG_LEAVE,
  SFU_MSG_VIDEO_QUALITY,
  SFU_MSG_RESUME,
} sfu_msg_type_t;

/* A resume token: hex of 16 random bytes. */
#define SFU_RESUME_TOKEN_LEN 32

/* Bytes of SDP in one offer/answer: the largest description any room may
 * need (sfu_sdp_max_len() at SFU_SDP_MAX_MEDIA m-lines); sfud's frame
 * bound, from the node's max_participants, is usually the tighter one. */
#define SFU_MSG_MAX_SDP (16384 + SFU_SDP_MAX_MEDIA * 1536)

/* Entries of an offer's "sources": one per m-line it publishes video on. */
#define SFU_MSG_MAX_SOURCES 8

/* A checked message: pointers borrow from the json_t it came from. */
typedef struct sfu_msg_s {
  sfu_msg_type_t type;
  json_t *id;              /* request id (integer or string), or NULL */
  const char *room;        /* join, resume */
  const char *token;       /* join; resume: its resume_token */
  const char *sdp;         /* offer, answer */
  size_t sdp_len;
  json_t *sources;         /* offer: {mid: "camera"|"screen"}, each mid 1..31
                              bytes, at most SFU_MSG_MAX_SOURCES; NULL if absent */
  long long offer_id;      /* answer: the server offer it answers */
  const char *candidate;   /* candidate; NULL = end of candidates */
  int muted;               /* mute */
  const char *track_id;    /* video_quality: one of the others' tracks */
  int quality;             /* video_quality: 0 low, 1 medium, 2 high; -1 absent */
  int max_height;          /* video_quality: 0 = no bound */
  int paused;              /* video_quality: -1 absent */
} sfu_msg_t;

/*
 * Checks `msg` (any JSON value). Returns 0, or -1 with *code set to the
 * error code to send ("bad_message", "too_large") and *why to a short
 * static explanation.
 */
int sfu_msg_parse(json_t *msg, sfu_msg_t *out, const char **code, const char **why);

#endif
