/*
 * validate.h -- control-plane request bodies: parse and check, no I/O.
 *
 * Every function takes the raw body bytes, returns 0 with a filled request
 * struct, or an HTTP status (400, 413) with an API error describing the
 * first problem found: which field, and what was expected. Unknown fields
 * are refused, so a typo ("max_participant") is an error and not a silent
 * default.
 */
#ifndef SFU_SIGNALING_VALIDATE_H
#define SFU_SIGNALING_VALIDATE_H

#include <jansson.h>
#include <stddef.h>

#include "sfu/node/config.h"
#include "signaling/token.h"

/* The JSON error body: {"error":{"code":..., "message":...}}. */
typedef struct sfu_api_error_s {
  int status;        /* HTTP status */
  const char *code;  /* stable machine code: "invalid_field", ... */
  char message[256]; /* for humans */
} sfu_api_error_t;

/* Fills err and returns err->status. */
int sfu_api_error(sfu_api_error_t *err, int status, const char *code,
                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#define SFU_ROOM_MAX_NAME 64
#define SFU_MAX_METADATA 16384 /* serialised bytes */

typedef struct sfu_room_req_s {
  char name[SFU_ROOM_MAX_NAME + 1]; /* "" = none */
  int max_participants;             /* 1..cfg->max_participants */
  int empty_timeout_s;              /* 1..86400 */
  int max_audio_streams;            /* 0..max_participants: each listener gets
                                       the N loudest speakers; 0 = everyone */
  json_t *metadata;                 /* owned; NULL = none; any JSON value */
  char region[64];                  /* fleet: place in this region ("" = the node's) */
  char node[64];                    /* fleet: pin to this node ("" = placed by load) */
  char id[20];                      /* set by sfud before spawning ("" = spawn picks; 19 chars) */
  int moved_in;                     /* set by sfud: the room moves in from another
                                       node (migrate.c): no room_started */
} sfu_room_req_t;

typedef struct sfu_token_req_s {
  char identity[SFU_TOKEN_MAX_ID + 1];
  char name[SFU_TOKEN_MAX_NAME + 1];
  int ttl_s;                        /* 1..86400, default 3600 */
  unsigned grants;                  /* SFU_GRANT_* */
} sfu_token_req_t;

/* Parses a body as a JSON object (an empty body counts as {}). */
int sfu_validate_body(const char *body, size_t len, size_t max_len,
                      json_t **out, sfu_api_error_t *err);
int sfu_validate_room_create(const char *body, size_t len,
                             const sfu_config_t *cfg, sfu_room_req_t *out,
                             sfu_api_error_t *err);
void sfu_room_req_free(sfu_room_req_t *r);
int sfu_validate_token_req(const char *body, size_t len,
                           const sfu_config_t *cfg, sfu_token_req_t *out,
                           sfu_api_error_t *err);
/* {"muted": bool}, required. */
int sfu_validate_mute(const char *body, size_t len, const sfu_config_t *cfg,
                      int *muted, sfu_api_error_t *err);
/* POST .../participants/{identity}/ban: {} or {"reason": string of at most
 * SFU_BAN_MAX_REASON bytes}; an empty body is {}. `reason` gets "" when
 * absent. */
#define SFU_BAN_MAX_REASON 200
int sfu_validate_ban(const char *body, size_t len, const sfu_config_t *cfg,
                     char reason[SFU_BAN_MAX_REASON + 1], sfu_api_error_t *err);
/* {"draining": bool, "migrate": bool}, empty body = draining; "migrate"
 * (default false) moves the node's rooms to other nodes. */
int sfu_validate_drain(const char *body, size_t len, const sfu_config_t *cfg,
                       int *draining, int *migrate, sfu_api_error_t *err);
/* POST /v1/rooms/{id}/migrate {"node": "..."} (optional; empty body = the
 * fleet chooses). */
int sfu_validate_migrate(const char *body, size_t len, const sfu_config_t *cfg,
                         char node[64], sfu_api_error_t *err);

/* POST /v1/rooms/{id}/capture {"action": "start"|"stop", "max_mib": 1..4096
 * (100), "max_seconds": 1..86400 (300)}. */
typedef struct sfu_capture_req_s {
  int action;      /* 1 start, 0 stop */
  int max_mib;     /* the file stops growing at this size */
  int max_seconds; /* and the capture stops after this long */
} sfu_capture_req_t;
int sfu_validate_capture(const char *body, size_t len, const sfu_config_t *cfg,
                         sfu_capture_req_t *out, sfu_api_error_t *err);

#endif
