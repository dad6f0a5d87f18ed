/*
 * http_api.c -- the control-plane routes on libh2o.
 *
 * h2o parses HTTP and buffers each request body (bounded by
 * max_request_entity_size) before calling our single handler; the handler
 * routes by method and path segments, authenticates /v1/ routes with the
 * bearer key (constant-time compare), validates bodies with validate.c and
 * answers JSON. Every error has the same shape:
 *
 *   {"error": {"code": "invalid_field", "message": "'ttl_s' must be ..."}}
 *
 * h2o itself answers malformed HTTP (400) and bodies beyond its own limit
 * (413, plain text); that limit is set well above max_body_bytes so that
 * every body an API client plausibly sends gets our JSON 413.
 *
 * Routes (docs/api.md):
 *   GET  /healthz                      liveness, no auth
 *   GET  /metrics                      Prometheus text, no auth
 *   GET  /v1/node                      capacity, load, version, draining
 *   POST /v1/node/drain                {"draining": bool}
 *   POST /v1/rooms                     create (spawns the room process)
 *   GET  /v1/rooms                     list
 *   GET  /v1/rooms/{id}                one room, detailed
 *   DELETE /v1/rooms/{id}              end it
 *   POST /v1/rooms/{id}/tokens         mint a join token
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <h2o.h>
#include <openssl/crypto.h>

#include "sfu/base/log.h"
#include "sfu/base/sfu.h"
#include "sfu/node/events.h"
#include "sfu/node/http_api.h"
#include "signaling/token.h"
#include "sfu/node/validate.h"

struct sfu_http_s {
  uv_loop_t *loop;
  const sfu_config_t *cfg;
  sfu_supervisor_t *sup;
  sfu_ws_t *ws;
  sfu_events_t *events;
  sfu_metrics_t *metrics;
  h2o_globalconf_t globalconf;
  h2o_context_t ctx;
  h2o_accept_ctx_t accept_ctx;
  uv_tcp_t listener;
  char base_url[256];
  char ws_url[280];
  int64_t started_wall_ms;
};

typedef struct {
  h2o_handler_t super;
  sfu_http_t *http;
} api_handler_t;

/* --- responses ---------------------------------------------------------- */

static const char *reason_of(int status) {
  switch (status) {
  case 200: return "OK";
  case 201: return "Created";
  case 202: return "Accepted";
  case 302: return "Found";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 409: return "Conflict";
  case 413: return "Payload Too Large";
  case 500: return "Internal Server Error";
  case 503: return "Service Unavailable";
  default: return "Unknown";
  }
}

static void count_status(sfu_http_t *h, int status) {
  if (status >= 500)
    h->metrics->http_errors_5xx++;
  else if (status >= 400)
    h->metrics->http_errors_4xx++;
}

static int send_body(sfu_http_t *h, h2o_req_t *req, int status,
                     const char *ctype, const char *body, size_t len) {
  count_status(h, status);
  req->res.status = status;
  req->res.reason = reason_of(status);
  req->res.content_length = len;
  h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                 ctype, strlen(ctype));
  h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                 H2O_STRLIT("no-store"));
  h2o_send_inline(req, body, len);
  return 0;
}

#define OOM_BODY "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}"

/* Sends `j` (reference taken) as the response body. */
static int send_json(sfu_http_t *h, h2o_req_t *req, int status, json_t *j) {
  char *s = json_dumps(j, JSON_COMPACT);
  json_decref(j);
  if (!s) return send_body(h, req, 500, "application/json", H2O_STRLIT(OOM_BODY));
  size_t n = strlen(s);
  char *line = realloc(s, n + 2);
  if (!line) {
    free(s);
    return send_body(h, req, 500, "application/json", H2O_STRLIT(OOM_BODY));
  }
  line[n++] = '\n';
  send_body(h, req, status, "application/json", line, n);
  free(line);
  return 0;
}

static int send_error(sfu_http_t *h, h2o_req_t *req, const sfu_api_error_t *e) {
  return send_json(h, req, e->status,
                   json_pack("{s:{s:s, s:s}}", "error", "code", e->code,
                             "message", e->message));
}

static int fail(sfu_http_t *h, h2o_req_t *req, int status, const char *code,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int fail(sfu_http_t *h, h2o_req_t *req, int status, const char *code,
                const char *fmt, ...) {
  sfu_api_error_t e = {status, code, {0}};
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e.message, sizeof(e.message), fmt, ap);
  va_end(ap);
  return send_error(h, req, &e);
}

/* --- helpers ------------------------------------------------------------ */

static int method_is(h2o_req_t *req, const char *m) {
  return h2o_memis(req->method.base, req->method.len, m, strlen(m));
}

static int method_not_allowed(sfu_http_t *h, h2o_req_t *req, const char *allow) {
  h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, allow,
                 strlen(allow));
  return fail(h, req, 405, "method_not_allowed", "%.*s is not allowed here; use %s",
              (int)req->method.len, req->method.base, allow);
}

static int authorized(sfu_http_t *h, h2o_req_t *req) {
  ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
  if (i < 0) return 0;
  h2o_iovec_t v = req->headers.entries[i].value;
  size_t klen = strlen(h->cfg->api_key);
  if (v.len != 7 + klen || strncasecmp(v.base, "Bearer ", 7) != 0) return 0;
  return CRYPTO_memcmp(v.base + 7, h->cfg->api_key, klen) == 0;
}

/* Splits the path into at most `max` segments; returns the count, or -1 if
 * there are more or one is empty/too long. */
static int split_path(h2o_iovec_t path, char seg[][72], int max) {
  int n = 0;
  size_t i = 0;
  if (path.len == 0 || path.base[0] != '/') return -1;
  while (i < path.len) {
    i++; /* skip '/' */
    size_t start = i;
    while (i < path.len && path.base[i] != '/') i++;
    size_t len = i - start;
    if (len == 0) {
      if (i >= path.len && n > 0) break; /* trailing slash */
      return -1;
    }
    if (n == max || len >= 72) return -1;
    memcpy(seg[n], path.base + start, len);
    seg[n][len] = '\0';
    n++;
  }
  return n;
}

static const char *body_of(h2o_req_t *req, size_t *len) {
  *len = req->entity.base ? req->entity.len : 0;
  return req->entity.base ? req->entity.base : "";
}

/* --- routes ------------------------------------------------------------- */

static int route_create_room(sfu_http_t *h, h2o_req_t *req) {
  sfu_room_req_t rr;
  sfu_api_error_t e;
  sfu_room_rec_t *r;
  size_t len;
  const char *body = body_of(req, &len);

  if (sfu_validate_room_create(body, len, h->cfg, &rr, &e)) return send_error(h, req, &e);
  int rv = sfu_supervisor_spawn(h->sup, &rr, &r);
  sfu_room_req_free(&rr);
  switch (rv) {
  case 0: break;
  case SFU_EDRAINING:
    return fail(h, req, 503, "draining", "this node is draining and accepts no new rooms");
  case SFU_ECAPACITY:
    return fail(h, req, 503, "at_capacity", "this node runs its maximum of %d rooms",
                h->cfg->max_rooms);
  case SFU_EEXIST:
    return fail(h, req, 409, "name_in_use", "a live room is already named '%s'", rr.name);
  default:
    return fail(h, req, 500, "spawn_failed", "cannot start the room process: %s",
                sfu_strerror(rv));
  }
  json_t *j = sfu_room_json(r, 0);
  json_object_set_new(j, "ws_url", json_string(h->ws_url));
  char loc[64];
  int n = snprintf(loc, sizeof(loc), "/v1/rooms/%s", r->id);
  h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_LOCATION, NULL,
                 h2o_strdup(&req->pool, loc, (size_t)n).base, (size_t)n);
  return send_json(h, req, 201, j);
}

static int mint_token(sfu_http_t *h, h2o_req_t *req, sfu_room_rec_t *r,
                      const sfu_token_req_t *tr) {
  if (r->state == SFU_ROOM_CRASHED || r->state == SFU_ROOM_CLOSING)
    return fail(h, req, 409, "room_not_running", "room %s is %s", r->id,
                sfu_room_state_name(r->state));

  sfu_token_claims_t c;
  memset(&c, 0, sizeof(c));
  snprintf(c.room, sizeof(c.room), "%s", r->id);
  memcpy(c.identity, tr->identity, sizeof(c.identity));
  memcpy(c.name, tr->name, sizeof(c.name));
  c.iat = sfu_wall_ms() / 1000;
  c.exp = c.iat + tr->ttl_s;
  c.grants = tr->grants;
  char *tok = NULL;
  int rv = sfu_token_mint((const uint8_t *)h->cfg->token_secret,
                          strlen(h->cfg->token_secret), &c, &tok);
  if (rv) return fail(h, req, 500, "internal", "cannot mint token: %s", sfu_strerror(rv));
  h->metrics->tokens_minted++;
  json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:I, s:s}", "token", tok, "room_id", r->id,
                        "identity", c.identity, "jti", c.jti, "expires_at", (json_int_t)c.exp,
                        "ws_url", h->ws_url);
  free(tok);
  return send_json(h, req, 201, j);
}

static int route_mint_token(sfu_http_t *h, h2o_req_t *req, sfu_room_rec_t *r) {
  sfu_token_req_t tr;
  sfu_api_error_t e;
  size_t len;
  const char *body = body_of(req, &len);
  if (sfu_validate_token_req(body, len, h->cfg, &tr, &e)) return send_error(h, req, &e);
  return mint_token(h, req, r, &tr);
}

/* POST /v1/rooms/{id}/participants/{identity}/mute {"muted": bool} and
 * DELETE /v1/rooms/{id}/participants/{identity} (kick): forwarded to the
 * room, which applies them and tells the clients. */
static int route_participant(sfu_http_t *h, h2o_req_t *req, sfu_room_rec_t *r,
                             const char *identity, const char *action) {
  sfu_api_error_t e;
  json_t *m;
  size_t len;
  const char *body = body_of(req, &len);
  int muted;

  if (!sfu_token_valid_id(identity))
    return fail(h, req, 400, "invalid_field", "'%.64s' is not a valid identity", identity);
  if (r->state == SFU_ROOM_CRASHED || r->state == SFU_ROOM_CLOSING)
    return fail(h, req, 409, "room_not_running", "room %s is %s", r->id,
                sfu_room_state_name(r->state));
  if (action == NULL) {
    if (!method_is(req, "DELETE")) return method_not_allowed(h, req, "DELETE");
    m = json_pack("{s:s, s:s}", "type", "kick", "identity", identity);
  } else if (strcmp(action, "mute") == 0) {
    if (!method_is(req, "POST")) return method_not_allowed(h, req, "POST");
    if (sfu_validate_mute(body, len, h->cfg, &muted, &e)) return send_error(h, req, &e);
    m = json_pack("{s:s, s:s, s:b}", "type", "server_mute", "identity", identity, "muted", muted);
  } else {
    return fail(h, req, 404, "not_found", "no route .../participants/{identity}/%.32s", action);
  }
  int rv = sfu_supervisor_send(r, m);
  json_decref(m);
  if (rv) return fail(h, req, 503, "room_unreachable", "room %s: %s", r->id, sfu_strerror(rv));
  return send_json(h, req, 202, json_pack("{s:s, s:s, s:s}", "room_id", r->id, "identity",
                                          identity, "action", action ? action : "kick"));
}

/* POST /dev/join {"room","identity","name"}: development only (dev = 1).
 * Finds or creates the room by name and mints a token, so the demo page
 * works without a control plane. Never enable it on a reachable node. */
static int route_dev_join(sfu_http_t *h, h2o_req_t *req) {
  sfu_api_error_t e;
  sfu_token_req_t tr;
  size_t len;
  const char *body = body_of(req, &len);
  json_t *j;
  if (sfu_validate_body(body, len, (size_t)h->cfg->max_body_bytes, &j, &e))
    return send_error(h, req, &e);
  const char *room = json_string_value(json_object_get(j, "room"));
  json_t *tj = json_pack("{s:O*, s:O*}", "identity", json_object_get(j, "identity"), "name",
                         json_object_get(j, "name"));
  char *tbody = json_dumps(tj, JSON_COMPACT);
  json_decref(tj);
  int bad = sfu_validate_token_req(tbody, strlen(tbody), h->cfg, &tr, &e);
  free(tbody);
  if (bad || !room || !sfu_token_valid_id(room)) {
    json_decref(j);
    if (!bad) sfu_api_error(&e, 400, "invalid_field", "'room' must be a valid room name");
    return send_error(h, req, &e);
  }
  sfu_room_rec_t *r = sfu_supervisor_find(h->sup, room);
  if (!r || r->state == SFU_ROOM_CRASHED || r->state == SFU_ROOM_CLOSING) {
    sfu_room_req_t rr = {0};
    snprintf(rr.name, sizeof(rr.name), "%s", room);
    rr.max_participants = h->cfg->max_participants;
    rr.empty_timeout_s = h->cfg->empty_timeout_s;
    int rv = sfu_supervisor_spawn(h->sup, &rr, &r);
    if (rv) {
      json_decref(j);
      return fail(h, req, 503, "spawn_failed", "cannot create room: %s", sfu_strerror(rv));
    }
  }
  json_decref(j);
  return mint_token(h, req, r, &tr);
}

/* POST /v1/rooms/{id}/capture: the room writes its decrypted RTP/RTCP to
 * <data_dir>/captures/<room>-<ms>.pcap until stopped or a bound is hit. */
static int route_capture(sfu_http_t *h, h2o_req_t *req, sfu_room_rec_t *r) {
  sfu_api_error_t e;
  sfu_capture_req_t c;
  size_t len;
  const char *body = body_of(req, &len);
  char path[700];

  if (!method_is(req, "POST")) return method_not_allowed(h, req, "POST");
  if (sfu_validate_capture(body, len, h->cfg, &c, &e)) return send_error(h, req, &e);
  if (r->state == SFU_ROOM_CRASHED || r->state == SFU_ROOM_CLOSING)
    return fail(h, req, 409, "room_not_running", "room %s is %s", r->id,
                sfu_room_state_name(r->state));
  json_t *m;
  if (c.action) {
    snprintf(path, sizeof(path), "%s/captures", h->cfg->data_dir);
    if (mkdir(path, 0750) != 0 && errno != EEXIST)
      return fail(h, req, 500, "capture_failed", "cannot create %s: %s", path, strerror(errno));
    snprintf(path, sizeof(path), "%s/captures/%s-%lld.pcap", h->cfg->data_dir, r->id,
             (long long)sfu_wall_ms());
    m = json_pack("{s:s, s:s, s:s, s:I, s:i}", "type", "capture", "action", "start", "path", path,
                  "max_bytes", (json_int_t)c.max_mib << 20, "max_seconds", c.max_seconds);
  } else {
    m = json_pack("{s:s, s:s}", "type", "capture", "action", "stop");
  }
  int rv = sfu_supervisor_send(r, m);
  json_decref(m);
  if (rv) return fail(h, req, 503, "room_unreachable", "room %s: %s", r->id, sfu_strerror(rv));
  json_t *j = json_pack("{s:s, s:s}", "room_id", r->id, "action", c.action ? "start" : "stop");
  if (c.action) {
    json_object_set_new(j, "file", json_string(path));
    json_object_set_new(j, "max_mib", json_integer(c.max_mib));
    json_object_set_new(j, "max_seconds", json_integer(c.max_seconds));
  }
  return send_json(h, req, 202, j);
}

static int route_room(sfu_http_t *h, h2o_req_t *req, char seg[][72], int n) {
  const char *id = seg[2], *sub = n >= 4 ? seg[3] : NULL;
  sfu_room_rec_t *r = sfu_supervisor_find(h->sup, id);
  if (!r) return fail(h, req, 404, "room_not_found", "no room '%.64s' on this node", id);
  if (sub && strcmp(sub, "participants") == 0 && n >= 5)
    return route_participant(h, req, r, seg[4], n == 6 ? seg[5] : NULL);
  if (sub && n > 4) return fail(h, req, 404, "not_found", "no such route");
  if (sub && strcmp(sub, "capture") == 0) return route_capture(h, req, r);
  if (sub) {
    if (strcmp(sub, "tokens") != 0)
      return fail(h, req, 404, "not_found", "no route /v1/rooms/{id}/%.32s", sub);
    if (!method_is(req, "POST")) return method_not_allowed(h, req, "POST");
    return route_mint_token(h, req, r);
  }
  if (method_is(req, "GET")) {
    json_t *j = sfu_room_json(r, 1);
    json_object_set_new(j, "ws_url", json_string(h->ws_url));
    return send_json(h, req, 200, j);
  }
  if (method_is(req, "DELETE")) {
    int was_crashed = r->state == SFU_ROOM_CRASHED;
    json_t *j = sfu_room_json(r, 0);
    sfu_supervisor_close_room(h->sup, r, "deleted"); /* may free r */
    if (!was_crashed) json_object_set_new(j, "state", json_string("closing"));
    return send_json(h, req, was_crashed ? 200 : 202, j);
  }
  return method_not_allowed(h, req, "GET, DELETE");
}

static double loadavg_1m(void) {
  double l = 0;
  FILE *f = fopen("/proc/loadavg", "r");
  if (f) {
    if (fscanf(f, "%lf", &l) != 1) l = 0;
    fclose(f);
  }
  return l;
}

static double self_cpu_seconds(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static double children_cpu_seconds(void) {
  struct rusage ru;
  getrusage(RUSAGE_CHILDREN, &ru); /* reaped rooms only */
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static int route_node(sfu_http_t *h, h2o_req_t *req) {
  int live, crashed, parts;
  char host[128] = "";
  sfu_supervisor_counts(h->sup, &live, &crashed, &parts);
  gethostname(host, sizeof(host) - 1);
  json_t *j = json_pack(
      "{s:s, s:s, s:s, s:b, s:I, s:{s:i, s:i}, s:{s:i, s:i, s:i, s:{s:f, s:f, s:f, s:i}}}",
      "hostname", host, "version", sfu_version(), "srtp", sfu_srtp_description(),
      "draining", sfu_supervisor_draining(h->sup), "uptime_s",
      (json_int_t)((sfu_wall_ms() - h->started_wall_ms) / 1000), "capacity",
      "max_rooms", h->cfg->max_rooms, "max_participants_per_room",
      h->cfg->max_participants, "load", "rooms", live, "rooms_crashed", crashed,
      "participants", parts, "cpu", "loadavg_1m", loadavg_1m(), "sfud_seconds",
      self_cpu_seconds(), "reaped_rooms_seconds", children_cpu_seconds(), "cores",
      (int)sysconf(_SC_NPROCESSORS_ONLN));
  return send_json(h, req, 200, j);
}

static int route_drain(sfu_http_t *h, h2o_req_t *req) {
  sfu_api_error_t e;
  size_t len;
  int draining;
  const char *body = body_of(req, &len);
  if (sfu_validate_drain(body, len, h->cfg, &draining, &e)) return send_error(h, req, &e);
  sfu_supervisor_set_draining(h->sup, draining);
  return route_node(h, req);
}

/* Reads a non-negative integer query parameter; returns 0 if absent, 1 if
 * set, -1 if malformed. */
static int query_u64(h2o_req_t *req, const char *name, uint64_t *out) {
  if (req->query_at == SIZE_MAX) return 0;
  const char *q = req->path.base + req->query_at + 1, *end = req->path.base + req->path.len;
  size_t nl = strlen(name);
  while (q < end) {
    const char *amp = memchr(q, '&', (size_t)(end - q));
    const char *stop = amp ? amp : end;
    if ((size_t)(stop - q) > nl && strncmp(q, name, nl) == 0 && q[nl] == '=') {
      uint64_t v = 0;
      const char *p = q + nl + 1;
      if (p == stop || stop - p > 19) return -1;
      for (; p < stop; p++) {
        if (*p < '0' || *p > '9') return -1;
        v = v * 10 + (uint64_t)(*p - '0');
      }
      *out = v;
      return 1;
    }
    q = stop + 1;
  }
  return 0;
}

/* GET /v1/events?after=<seq>&limit=<n>: durable records, oldest first. */
static int route_events(sfu_http_t *h, h2o_req_t *req) {
  uint64_t after = 0, limit = 100, next;
  if (!h->events) return fail(h, req, 503, "no_journal", "this node keeps no journal");
  if (query_u64(req, "after", &after) < 0 || query_u64(req, "limit", &limit) < 0 ||
      limit == 0 || limit > 1000)
    return fail(h, req, 400, "invalid_field",
                "'after' must be a sequence number and 'limit' 1 to 1000");
  json_t *recs = sfu_events_list(h->events, after, (int)limit, &next);
  return send_json(h, req, 200, json_pack("{s:s, s:o, s:I}", "node",
                                          sfu_events_node_id(h->events), "records", recs,
                                          "next_after", (json_int_t)next));
}

static int route_metrics(sfu_http_t *h, h2o_req_t *req) {
  sfu_gauges_t g;
  char buf[8192];
  sfu_supervisor_counts(h->sup, &g.rooms, &g.rooms_crashed, &g.participants);
  g.draining = sfu_supervisor_draining(h->sup);
  g.cpu_seconds = self_cpu_seconds();
  size_t n = sfu_metrics_render(h->metrics, &g, buf, sizeof(buf));
  if (n >= sizeof(buf)) n = sizeof(buf) - 1;
  return send_body(h, req, 200, "text/plain; version=0.0.4", buf, n);
}

static int on_req(h2o_handler_t *self, h2o_req_t *req) {
  sfu_http_t *h = ((api_handler_t *)self)->http;
  char seg[6][72];
  int n;

  h->metrics->http_requests++;
  if (h->cfg->web_root[0] && req->path_normalized.len == 1) { /* "/" -> the demo page */
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_LOCATION, NULL, H2O_STRLIT("/web/"));
    return send_body(h, req, 302, "text/plain", H2O_STRLIT("/web/\n"));
  }
  n = split_path(req->path_normalized, seg, 6);
  if (n < 0) return fail(h, req, 404, "not_found", "no such route");

  if (n == 1 && strcmp(seg[0], "healthz") == 0) {
    if (!method_is(req, "GET") && !method_is(req, "HEAD")) return method_not_allowed(h, req, "GET");
    json_t *hz = json_pack("{s:s, s:b}", "status", "ok", "draining",
                           sfu_supervisor_draining(h->sup));
    if (h->events && sfu_events_error(h->events)) { /* still serving: say what is wrong */
      json_object_set_new(hz, "status", json_string("degraded"));
      json_object_set_new(hz, "journal", json_string(sfu_strerror(sfu_events_error(h->events))));
      json_object_set_new(hz, "records_in_memory",
                          json_integer((json_int_t)sfu_events_pending(h->events)));
    }
    return send_json(h, req, 200, hz);
  }
  if (n == 1 && strcmp(seg[0], "metrics") == 0) {
    if (!method_is(req, "GET")) return method_not_allowed(h, req, "GET");
    return route_metrics(h, req);
  }
  if (n == 2 && strcmp(seg[0], "v1") == 0 && strcmp(seg[1], "rtc") == 0) {
    if (sfu_ws_handle(h->ws, req) == 0) return 0;
    return fail(h, req, 400, "websocket_required",
                "GET /v1/rtc is a WebSocket endpoint (Upgrade: websocket)");
  }
  if (n == 2 && h->cfg->dev && strcmp(seg[0], "dev") == 0 && strcmp(seg[1], "join") == 0) {
    if (!method_is(req, "POST")) return method_not_allowed(h, req, "POST");
    return route_dev_join(h, req);
  }
  if (n < 2 || strcmp(seg[0], "v1") != 0) return fail(h, req, 404, "not_found", "no such route");

  if (!authorized(h, req)) {
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_WWW_AUTHENTICATE, NULL,
                   H2O_STRLIT("Bearer realm=\"sfu\""));
    return fail(h, req, 401, "unauthorized", "missing or wrong 'Authorization: Bearer <api key>'");
  }
  if (strcmp(seg[1], "node") == 0) {
    if (n == 2) {
      if (!method_is(req, "GET")) return method_not_allowed(h, req, "GET");
      return route_node(h, req);
    }
    if (n == 3 && strcmp(seg[2], "drain") == 0) {
      if (!method_is(req, "POST")) return method_not_allowed(h, req, "POST");
      return route_drain(h, req);
    }
  } else if (strcmp(seg[1], "events") == 0 && n == 2) {
    if (!method_is(req, "GET")) return method_not_allowed(h, req, "GET");
    return route_events(h, req);
  } else if (strcmp(seg[1], "rooms") == 0) {
    if (n == 2) {
      if (method_is(req, "POST")) return route_create_room(h, req);
      if (method_is(req, "GET"))
        return send_json(h, req, 200, json_pack("{s:o}", "rooms", sfu_supervisor_list_json(h->sup)));
      return method_not_allowed(h, req, "GET, POST");
    }
    return route_room(h, req, seg, n);
  }
  return fail(h, req, 404, "not_found", "no such route");
}

/* --- server ------------------------------------------------------------- */

static void on_conn_closed(uv_handle_t *h) { free(h); }

static void on_accept(uv_stream_t *listener, int status) {
  sfu_http_t *h = listener->data;
  if (status != 0) return;
  uv_tcp_t *conn = malloc(sizeof(*conn));
  if (!conn) return;
  uv_tcp_init(listener->loop, conn);
  if (uv_accept(listener, (uv_stream_t *)conn) != 0) {
    uv_close((uv_handle_t *)conn, on_conn_closed);
    return;
  }
  uv_tcp_nodelay(conn, 1);
  h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)conn, on_conn_closed);
  h2o_accept(&h->accept_ctx, sock);
}

int sfu_http_start(sfu_http_t **out, uv_loop_t *loop, const sfu_config_t *cfg,
                   sfu_supervisor_t *sup, sfu_ws_t *ws, sfu_metrics_t *metrics) {
  struct sockaddr_storage ss;
  int rv;

  *out = NULL;
  sfu_http_t *h = calloc(1, sizeof(*h));
  if (!h) return SFU_ENOMEM;
  h->loop = loop;
  h->cfg = cfg;
  h->sup = sup;
  h->ws = ws;
  h->metrics = metrics;
  h->started_wall_ms = sfu_wall_ms();

  h2o_config_init(&h->globalconf);
  h->globalconf.max_request_entity_size = (size_t)cfg->max_body_bytes + (1u << 20);
  h->globalconf.server_name = h2o_iovec_init(H2O_STRLIT("sfud"));
  h2o_hostconf_t *host = h2o_config_register_host(&h->globalconf,
                                                  h2o_iovec_init(H2O_STRLIT("default")), 65535);
  if (cfg->web_root[0]) {
    h2o_pathconf_t *pc = h2o_config_register_path(host, "/web", 0);
    h2o_file_register(pc, cfg->web_root, NULL, NULL, 0);
  }
  h2o_pathconf_t *pc = h2o_config_register_path(host, "/", 0);
  api_handler_t *ah = (api_handler_t *)h2o_create_handler(pc, sizeof(*ah));
  ah->super.on_req = on_req;
  ah->http = h;
  h2o_context_init(&h->ctx, loop, &h->globalconf);
  h->accept_ctx.ctx = &h->ctx;
  h->accept_ctx.hosts = h->globalconf.hosts;

  if ((rv = uv_ip4_addr(cfg->listen_host, cfg->listen_port, (struct sockaddr_in *)&ss)) != 0 &&
      (rv = uv_ip6_addr(cfg->listen_host, cfg->listen_port, (struct sockaddr_in6 *)&ss)) != 0) {
    sfu_log(SFU_LOG_ERROR, "http", "listen_host '%s' is not an IP address", cfg->listen_host);
    goto fail;
  }
  uv_tcp_init(loop, &h->listener);
  h->listener.data = h;
  if ((rv = uv_tcp_bind(&h->listener, (struct sockaddr *)&ss, 0)) != 0 ||
      (rv = uv_listen((uv_stream_t *)&h->listener, 511, on_accept)) != 0) {
    sfu_log(SFU_LOG_ERROR, "http", "cannot listen on %s:%d: %s", cfg->listen_host,
            cfg->listen_port, uv_strerror(rv));
    uv_close((uv_handle_t *)&h->listener, NULL);
    goto fail;
  }
  int sl = sizeof(ss), port = cfg->listen_port;
  if (uv_tcp_getsockname(&h->listener, (struct sockaddr *)&ss, &sl) == 0)
    port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                         : ((struct sockaddr_in6 *)&ss)->sin6_port);
  if (cfg->public_url[0]) {
    snprintf(h->base_url, sizeof(h->base_url), "%s", cfg->public_url);
  } else {
    int v6 = strchr(cfg->listen_host, ':') != NULL;
    snprintf(h->base_url, sizeof(h->base_url), "http://%s%s%s:%d", v6 ? "[" : "",
             cfg->listen_host, v6 ? "]" : "", port);
  }
  size_t bl = strlen(h->base_url);
  while (bl > 0 && h->base_url[bl - 1] == '/') h->base_url[--bl] = '\0';
  const char *rest = h->base_url;
  const char *scheme = "ws";
  if (strncmp(rest, "https://", 8) == 0) {
    scheme = "wss";
    rest += 8;
  } else if (strncmp(rest, "http://", 7) == 0) {
    rest += 7;
  }
  snprintf(h->ws_url, sizeof(h->ws_url), "%s://%s/v1/rtc", scheme, rest);
  sfu_log(SFU_LOG_INFO, "http", "listening on %s", h->base_url);
  *out = h;
  return 0;

fail:
  /* h2o's context stays allocated: sfud exits on this error. */
  return rv ? rv : SFU_EINVAL;
}

const char *sfu_http_base_url(const sfu_http_t *h) { return h->base_url; }

void sfu_http_set_events(sfu_http_t *h, sfu_events_t *e) { h->events = e; }

void sfu_http_stop_listening(sfu_http_t *h) {
  if (!uv_is_closing((uv_handle_t *)&h->listener))
    uv_close((uv_handle_t *)&h->listener, NULL);
}
