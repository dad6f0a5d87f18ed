/*
 * validate.c -- request bodies of the control-plane API.
 *
 * One walk over the object's keys: each key must be known, each value of
 * the right JSON type and range. Strings are checked for length in bytes
 * (jansson has already refused invalid UTF-8). The first problem wins and
 * names the field, which is what an engineer wiring a control plane needs.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "sfu/node/validate.h"

int sfu_api_error(sfu_api_error_t *err, int status, const char *code,
                  const char *fmt, ...) {
  va_list ap;
  err->status = status;
  err->code = code;
  va_start(ap, fmt);
  vsnprintf(err->message, sizeof(err->message), fmt, ap);
  va_end(ap);
  return status;
}

int sfu_validate_body(const char *body, size_t len, size_t max_len,
                      json_t **out, sfu_api_error_t *err) {
  json_error_t jerr;
  *out = NULL;
  if (len > max_len)
    return sfu_api_error(err, 413, "payload_too_large",
                         "request body is %zu bytes; the limit is %zu", len, max_len);
  if (len == 0) {
    *out = json_object();
    return 0;
  }
  json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
  if (!j)
    return sfu_api_error(err, 400, "invalid_json", "body is not valid JSON: %s (line %d, column %d)",
                         jerr.text, jerr.line, jerr.column);
  if (!json_is_object(j)) {
    json_decref(j);
    return sfu_api_error(err, 400, "invalid_json", "body must be a JSON object");
  }
  *out = j;
  return 0;
}

static int get_int(json_t *v, const char *key, long lo, long hi, int *out,
                   sfu_api_error_t *err) {
  if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
    return sfu_api_error(err, 400, "invalid_field",
                         "'%s' must be an integer from %ld to %ld", key, lo, hi);
  *out = (int)json_integer_value(v);
  return 0;
}

static int get_str(json_t *v, const char *key, size_t max, char *out,
                   sfu_api_error_t *err) {
  if (!json_is_string(v) || json_string_length(v) > max)
    return sfu_api_error(err, 400, "invalid_field",
                         "'%s' must be a string of at most %zu bytes", key, max);
  if (strlen(json_string_value(v)) != json_string_length(v))
    return sfu_api_error(err, 400, "invalid_field", "'%s' must not contain NUL", key);
  memcpy(out, json_string_value(v), json_string_length(v) + 1);
  return 0;
}

static int unknown(const char *key, sfu_api_error_t *err) {
  return sfu_api_error(err, 400, "unknown_field", "unknown field '%.64s'", key);
}

int sfu_validate_room_create(const char *body, size_t len,
                             const sfu_config_t *cfg, sfu_room_req_t *out,
                             sfu_api_error_t *err) {
  json_t *j, *v;
  const char *key;
  int rv;

  memset(out, 0, sizeof(*out));
  out->max_participants = cfg->max_participants;
  out->empty_timeout_s = cfg->empty_timeout_s;
  if ((rv = sfu_validate_body(body, len, (size_t)cfg->max_body_bytes, &j, err)))
    return rv;
  json_object_foreach(j, key, v) {
    if (strcmp(key, "name") == 0) {
      rv = get_str(v, key, SFU_ROOM_MAX_NAME, out->name, err);
      if (!rv && !sfu_token_valid_id(out->name))
        rv = sfu_api_error(err, 400, "invalid_field",
                           "'name' must be 1-64 characters of A-Z a-z 0-9 _ . @ : -");
    } else if (strcmp(key, "region") == 0 || strcmp(key, "node") == 0) {
      char *dst = key[0] == 'r' ? out->region : out->node;
      rv = get_str(v, key, 63, dst, err);
      if (!rv && !sfu_token_valid_id(dst))
        rv = sfu_api_error(err, 400, "invalid_field",
                           "'%s' must be 1-63 characters of A-Z a-z 0-9 _ . @ : -", key);
    } else if (strcmp(key, "max_participants") == 0) {
      rv = get_int(v, key, 1, cfg->max_participants, &out->max_participants, err);
    } else if (strcmp(key, "max_audio_streams") == 0) {
      rv = get_int(v, key, 0, cfg->max_participants, &out->max_audio_streams, err);
    } else if (strcmp(key, "empty_timeout_s") == 0) {
      rv = get_int(v, key, 1, 86400, &out->empty_timeout_s, err);
    } else if (strcmp(key, "metadata") == 0) {
      size_t n = json_dumpb(v, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);
      if (n > SFU_MAX_METADATA)
        rv = sfu_api_error(err, 400, "invalid_field",
                           "'metadata' is %zu bytes serialised; the limit is %d", n,
                           SFU_MAX_METADATA);
      else
        out->metadata = json_incref(v);
    } else {
      rv = unknown(key, err);
    }
    if (rv) break;
  }
  json_decref(j);
  if (rv) sfu_room_req_free(out);
  return rv;
}

void sfu_room_req_free(sfu_room_req_t *r) {
  json_decref(r->metadata);
  r->metadata = NULL;
}

static const struct {
  const char *name;
  unsigned bit;
} grant_names[] = {
    {"publish", SFU_GRANT_PUBLISH},
    {"subscribe", SFU_GRANT_SUBSCRIBE},
    {"publish_data", SFU_GRANT_PUBLISH_DATA},
    {"admin", SFU_GRANT_ADMIN},
};

static int get_grants(json_t *g, unsigned *out, sfu_api_error_t *err) {
  const char *key;
  json_t *v;
  if (!json_is_object(g))
    return sfu_api_error(err, 400, "invalid_field", "'grants' must be an object of booleans");
  json_object_foreach(g, key, v) {
    size_t i;
    for (i = 0; i < sizeof(grant_names) / sizeof(grant_names[0]); i++)
      if (strcmp(key, grant_names[i].name) == 0) break;
    if (i == sizeof(grant_names) / sizeof(grant_names[0]))
      return sfu_api_error(err, 400, "unknown_field", "unknown grant '%.64s'", key);
    if (!json_is_boolean(v))
      return sfu_api_error(err, 400, "invalid_field", "grant '%s' must be true or false", key);
    if (json_is_true(v))
      *out |= grant_names[i].bit;
    else
      *out &= ~grant_names[i].bit;
  }
  return 0;
}

int sfu_validate_token_req(const char *body, size_t len,
                           const sfu_config_t *cfg, sfu_token_req_t *out,
                           sfu_api_error_t *err) {
  json_t *j, *v;
  const char *key;
  int rv;

  memset(out, 0, sizeof(*out));
  out->ttl_s = 3600;
  out->grants = SFU_GRANT_PUBLISH | SFU_GRANT_SUBSCRIBE;
  if ((rv = sfu_validate_body(body, len, (size_t)cfg->max_body_bytes, &j, err)))
    return rv;
  json_object_foreach(j, key, v) {
    if (strcmp(key, "identity") == 0) {
      rv = get_str(v, key, SFU_TOKEN_MAX_ID, out->identity, err);
      if (!rv && !sfu_token_valid_id(out->identity))
        rv = sfu_api_error(err, 400, "invalid_field",
                           "'identity' must be 1-64 characters of A-Z a-z 0-9 _ . @ : -");
    } else if (strcmp(key, "name") == 0) {
      rv = get_str(v, key, SFU_TOKEN_MAX_NAME, out->name, err);
    } else if (strcmp(key, "ttl_s") == 0) {
      rv = get_int(v, key, 1, 86400, &out->ttl_s, err);
    } else if (strcmp(key, "grants") == 0) {
      rv = get_grants(v, &out->grants, err);
    } else {
      rv = unknown(key, err);
    }
    if (rv) break;
  }
  if (!rv && out->identity[0] == '\0')
    rv = sfu_api_error(err, 400, "missing_field", "'identity' is required");
  json_decref(j);
  return rv;
}

/* A body whose only field is the boolean `field`; -1 in *out if absent. */
/* A body of boolean fields: `fields` names them (NULL-terminated), out[i]
 * gets each (-1 when absent). */
static int bool_body(const char *body, size_t len, const sfu_config_t *cfg,
                     const char *const *fields, int *out, sfu_api_error_t *err) {
  json_t *j, *v;
  const char *key;
  int rv, n = 0;
  while (fields[n]) out[n++] = -1;
  if ((rv = sfu_validate_body(body, len, (size_t)cfg->max_body_bytes, &j, err)))
    return rv;
  json_object_foreach(j, key, v) {
    int i = 0;
    while (i < n && strcmp(key, fields[i]) != 0) i++;
    if (i < n && json_is_boolean(v))
      out[i] = json_is_true(v);
    else if (i < n)
      rv = sfu_api_error(err, 400, "invalid_field", "'%s' must be true or false", key);
    else
      rv = unknown(key, err);
    if (rv) break;
  }
  json_decref(j);
  return rv;
}

int sfu_validate_drain(const char *body, size_t len, const sfu_config_t *cfg,
                       int *draining, int *migrate, sfu_api_error_t *err) {
  static const char *const fields[] = {"draining", "migrate", NULL};
  int out[2];
  int rv = bool_body(body, len, cfg, fields, out, err);
  *draining = out[0] < 0 ? 1 : out[0];
  *migrate = out[1] > 0;
  if (!rv && *migrate && !*draining)
    rv = sfu_api_error(err, 400, "invalid_field", "'migrate' needs 'draining': true");
  return rv;
}

int sfu_validate_migrate(const char *body, size_t len, const sfu_config_t *cfg,
                         char node[64], sfu_api_error_t *err) {
  json_t *j, *v;
  const char *key;
  int rv;
  node[0] = '\0';
  if ((rv = sfu_validate_body(body, len, (size_t)cfg->max_body_bytes, &j, err))) return rv;
  json_object_foreach(j, key, v) {
    if (strcmp(key, "node") == 0)
      rv = get_str(v, key, 63, node, err);
    else
      rv = unknown(key, err);
    if (rv) break;
  }
  if (rv) node[0] = '\0';
  json_decref(j);
  return rv;
}

int sfu_validate_mute(const char *body, size_t len, const sfu_config_t *cfg,
                      int *muted, sfu_api_error_t *err) {
  static const char *const fields[] = {"muted", NULL};
  int rv = bool_body(body, len, cfg, fields, muted, err);
  if (!rv && *muted < 0) rv = sfu_api_error(err, 400, "missing_field", "'muted' is required");
  return rv;
}

int sfu_validate_ban(const char *body, size_t len, const sfu_config_t *cfg,
                     char reason[SFU_BAN_MAX_REASON + 1], sfu_api_error_t *err) {
  json_t *j, *v;
  const char *key;
  int rv;
  reason[0] = '\0';
  if ((rv = sfu_validate_body(body, len, (size_t)cfg->max_body_bytes, &j, err))) return rv;
  json_object_foreach(j, key, v) {
    if (strcmp(key, "reason") == 0)
      rv = get_str(v, key, SFU_BAN_MAX_REASON, reason, err);
    else
      rv = unknown(key, err);
    if (rv) break;
  }
  if (rv) reason[0] = '\0';
  json_decref(j);
  return rv;
}

int sfu_validate_capture(const char *body, size_t len, const sfu_config_t *cfg,
                         sfu_capture_req_t *out, sfu_api_error_t *err) {
  json_t *j, *v;
  const char *key;
  int rv;

  memset(out, 0, sizeof(*out));
  out->action = -1;
  out->max_mib = 100;
  out->max_seconds = 300;
  if ((rv = sfu_validate_body(body, len, (size_t)cfg->max_body_bytes, &j, err))) return rv;
  json_object_foreach(j, key, v) {
    if (strcmp(key, "action") == 0) {
      const char *a = json_string_value(v);
      out->action = a && strcmp(a, "start") == 0 ? 1 : a && strcmp(a, "stop") == 0 ? 0 : -2;
      if (out->action == -2)
        rv = sfu_api_error(err, 400, "invalid_field", "'action' must be \"start\" or \"stop\"");
    } else if (strcmp(key, "max_mib") == 0) {
      rv = get_int(v, key, 1, 4096, &out->max_mib, err);
    } else if (strcmp(key, "max_seconds") == 0) {
      rv = get_int(v, key, 1, 86400, &out->max_seconds, err);
    } else {
      rv = unknown(key, err);
    }
    if (rv) break;
  }
  if (!rv && out->action < 0) rv = sfu_api_error(err, 400, "missing_field", "'action' is required");
  json_decref(j);
  return rv;
}
