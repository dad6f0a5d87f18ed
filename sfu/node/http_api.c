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
 * Hardening (docs/api.md "Limits"):
 *  - HTTP/1.1 only. h2o 2.2.5 would take HTTP/2 in cleartext (an
 *    "Upgrade: h2c" request, or the "PRI * HTTP/2.0" preface) and its
 *    HTTP/2 lacks the Rapid Reset fix; both paths hang off one switch,
 *    globalconf.http1.upgrade_to_http2, which is off: h2c is ignored (the
 *    request is served as HTTP/1.1) and the preface is a parse error.
 *  - Ambiguous message framing is refused (request smuggling): h2o keeps
 *    the first Content-Length, lets Transfer-Encoding override it, and
 *    shows the handler neither; ambiguous_framing() reads the raw header
 *    block, still at the start of the socket's input when the handler runs.
 *  - Connections are capped, globally (max_connections, lowered to fit
 *    RLIMIT_NOFILE less the rooms' descriptors) and per source address
 *    (max_connections_per_ip; an IPv6 /64 counts as one address); one over
 *    a cap is answered 503 and closed. A request must arrive whole within
 *    http_request_timeout_ms (h2o's http1 request timeout, also the
 *    keep-alive idle time). Accepted sockets get TCP keepalive and a user
 *    timeout, so a peer that vanished without a FIN is noticed. accept(2)
 *    failures are counted and logged at most once per 10 s.
 *  - TLS (tls_cert_file/tls_key_file): h2o does the handshake on the
 *    accepted socket with our SSL_CTX (tls.c: TLS 1.2+, no renegotiation);
 *    a handshake must finish within http_request_timeout_ms (h2o's
 *    handshake timeout), and a connection in its handshake counts against
 *    the same caps, so a flood of slow or garbage handshakes costs one
 *    descriptor each, bounded, and never blocks the loop. No ALPN is
 *    offered: clients speak HTTP/1.1. sfu_http_reload_tls() (SIGHUP)
 *    swaps in a context from the files as they are now; connections
 *    already open keep theirs (each SSL holds a reference to its context).
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
 *   POST /v1/rooms/{id}/capture        pcap of the room's media
 *   DELETE .../participants/{identity}            kick
 *   POST .../participants/{identity}/mute         server mute
 *   POST, DELETE .../participants/{identity}/ban  ban, unban
 *   GET  /v1/fleet                     nodes and rooms in etcd
 *   POST /v1/rooms/{id}/migrate        move the room to another node
 *   /v1/node/migrations[/{id}[/commit|/usage]] a room moving in (migrate.h: the
 *                                      old node asks the new one)
 *   POST /whip/{room}, /whep/{room}    WHIP publisher, WHEP viewer (whip.c,
 *                                      docs/whip.md; also under /v1/),
 *   PATCH, DELETE .../{room}/{session} authenticated by a join token or the
 *                                      session's URL, not the API key
 *
 * In a fleet (fleet.c) some answers wait for etcd or another node: the
 * handler keeps a pending_t and returns; the answer is sent when the reply
 * comes. h2o frees a request whose client went away, so each pending_t is
 * tied to its request's memory pool by a small object whose dispose
 * callback clears pending_t.req: the continuation then answers nobody and
 * undoes what it started (a claim made for a room not spawned).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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
#include "sfu/node/fleet.h"
#include "sfu/node/http_api.h"
#include "sfu/node/httpc.h"
#include "sfu/node/migrate.h"
#include "sfu/node/rrelay.h"
#include "sfu/node/tls.h"
#include "signaling/token.h"
#include "sfu/node/validate.h"
#include "sfu/node/whip.h"

/* One accepted TCP connection; freed when h2o closes its handle. */
typedef struct conn_s conn_t;
struct conn_s {
  uv_tcp_t tcp;                  /* first: the close callback gets its address */
  sfu_http_t *h;                 /* owner */
  struct addr_count_s *addr;     /* its source address's count; NULL: not counted */
};

/* Open connections of one source address (IPv4, or an IPv6 /64). */
typedef struct addr_count_s addr_count_t;
struct addr_count_s {
  addr_count_t *next;            /* hash chain */
  uint8_t key[9];                /* family (4/6), then 4 or 8 address bytes */
  int n;                         /* open connections; the entry goes at 0 */
};

#define ADDR_BUCKETS 1024

struct sfu_http_s {
  uv_loop_t *loop;
  const sfu_config_t *cfg;
  sfu_supervisor_t *sup;
  sfu_ws_t *ws;
  sfu_events_t *events;
  sfu_metrics_t *metrics;
  sfu_fleet_t *fleet;            /* NULL: this node runs alone */
  sfu_migrator_t *migrator;      /* rooms moving between nodes; NULL alone */
  sfu_rrelay_t *rrelay;          /* relays on other nodes; NULL alone */
  sfu_whip_t *whip;              /* WHIP/WHEP sessions; NULL: the routes answer 404 */
  h2o_globalconf_t globalconf;
  h2o_context_t ctx;
  h2o_accept_ctx_t accept_ctx;  /* .ssl_ctx: NULL for plain HTTP */
  uv_tcp_t listener;
  char base_url[256];
  char ws_url[280];
  int64_t started_wall_ms;
  int conns;                     /* open connections */
  int max_conns;                 /* cap in effect: max_connections, or what fits */
  addr_count_t *by_addr[ADDR_BUCKETS]; /* open connections per source address */
  uint64_t accept_fail_logged_ms; /* last accept failure logged */
  uint64_t accept_fails_unlogged; /* failures since */
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
  case 502: return "Bad Gateway";
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

/* Spawns the room and answers 201, or the error; *spawned says which. */
static int spawn_and_answer(sfu_http_t *h, h2o_req_t *req, sfu_room_req_t *rr, int *spawned) {
  sfu_room_rec_t *r;
  int rv = sfu_supervisor_spawn(h->sup, rr, &r);
  *spawned = rv == 0;
  switch (rv) {
  case 0: break;
  case SFU_EDRAINING:
    return fail(h, req, 503, "draining", "this node is draining and accepts no new rooms");
  case SFU_ECAPACITY:
    return fail(h, req, 503, "at_capacity", "this node runs its maximum of %d rooms",
                h->cfg->max_rooms);
  case SFU_EEXIST:
    return fail(h, req, 409, "name_in_use", "a live room is already named '%s'", rr->name);
  default:
    return fail(h, req, 500, "spawn_failed", "cannot start the room process: %s",
                sfu_strerror(rv));
  }
  json_t *j = sfu_room_json(r, 0);
  json_object_set_new(j, "ws_url", json_string(h->ws_url));
  if (h->fleet) json_object_set_new(j, "node_id", json_string(h->cfg->node_id));
  char loc[64];
  int n = snprintf(loc, sizeof(loc), "/v1/rooms/%s", r->id);
  h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_LOCATION, NULL,
                 h2o_strdup(&req->pool, loc, (size_t)n).base, (size_t)n);
  return send_json(h, req, 201, j);
}

/* --- answers that wait (fleet) ------------------------------------------- */

typedef struct pending_s pending_t;
struct pending_s {
  sfu_http_t *h;
  h2o_req_t *req;      /* NULL once h2o has freed the request */
  pending_t **slot;    /* in the request's pool, pointing back here */
  sfu_room_req_t rr;   /* POST /v1/rooms */
  char *path;          /* the request's path and query */
  char *body;          /* and body, copied */
  size_t len;
  char method[8];
  char auth[192];      /* its Authorization header */
  char node_id[64];    /* the node it was passed to */
  char room[72];       /* the room asked about */
  int placed;          /* POST /v1/rooms passed to the node placement chose */
  int whole_room;      /* /v1/rooms/{id} itself, not a route under it */
};

static void on_req_disposed(void *obj) {
  pending_t **slot = obj;
  if (*slot) (*slot)->req = NULL;
}

static pending_t *pending_new(sfu_http_t *h, h2o_req_t *req) {
  pending_t *p = calloc(1, sizeof(*p));
  size_t len;
  const char *body = body_of(req, &len);
  if (!p) return NULL;
  p->h = h;
  p->req = req;
  p->path = strndup(req->path.base, req->path.len);
  p->body = malloc(len + 1);
  if (!p->path || !p->body) {
    free(p->path);
    free(p->body);
    free(p);
    return NULL;
  }
  memcpy(p->body, body, len);
  p->body[len] = '\0';
  p->len = len;
  snprintf(p->method, sizeof(p->method), "%.*s", (int)req->method.len, req->method.base);
  ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
  if (i >= 0)
    snprintf(p->auth, sizeof(p->auth), "%.*s", (int)req->headers.entries[i].value.len,
             req->headers.entries[i].value.base);
  p->slot = h2o_mem_alloc_shared(&req->pool, sizeof(*p->slot), on_req_disposed);
  *p->slot = p;
  return p;
}

static void pending_done(pending_t *p) {
  if (p->req) *p->slot = NULL;
  sfu_room_req_free(&p->rr);
  free(p->path);
  free(p->body);
  free(p);
}

/* Whether another node passed this request on (it is never passed again). */
static int is_proxied(h2o_req_t *req) {
  return h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-sfu-proxied"), -1) >= 0;
}

static int fleet_unavailable(sfu_http_t *h, h2o_req_t *req) {
  return fail(h, req, 503, "fleet_unavailable",
              "etcd cannot be reached: the fleet cannot place or find rooms now");
}

static void on_placed(void *arg, int rv, const sfu_fleet_node_t *node);

static void on_proxied(void *arg, int status, const char *location, const char *body,
                       size_t len, const char *err) {
  pending_t *p = arg;
  sfu_http_t *h = p->h;
  h2o_req_t *req = p->req;
  if (req && err == h2o_socket_error_conn_fail && p->placed == 1) {
    /* the chosen node is gone (its lease not yet expired) and saw nothing:
     * place the room once more, elsewhere */
    p->placed = 2;
    sfu_fleet_place(h->fleet, p->rr.region, NULL, p->node_id, on_placed, p);
    return;
  }
  if (req && err) {
    fail(h, req, 502, "node_unreachable", "node '%s' did not answer: %s", p->node_id, err);
  } else if (req) {
    h->metrics->fleet_proxied++;
    if (location)
      h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_LOCATION, NULL,
                     h2o_strdup(&req->pool, location, SIZE_MAX).base, strlen(location));
    send_body(h, req, status, "application/json", body, len);
  }
  pending_done(p);
}

/* Passes the request on to `node`, whose answer becomes ours. body/len
 * replace the request's body when body is not NULL. */
static void proxy(pending_t *p, const sfu_fleet_node_t *node, const char *body, size_t len) {
  char url[1024], headers[384];
  snprintf(p->node_id, sizeof(p->node_id), "%s", node->node_id);
  snprintf(url, sizeof(url), "%s%s", node->api_url, p->path);
  snprintf(headers, sizeof(headers),
           "Authorization: %s\r\nContent-Type: application/json\r\nX-SFU-Proxied: %s\r\n",
           p->auth, p->h->cfg->node_id);
  if (!sfu_httpc_request(sfu_fleet_api_client(p->h->fleet), p->method, url, headers,
                         body ? body : p->body, body ? len : p->len, on_proxied, p))
    on_proxied(p, 0, NULL, NULL, 0, "its api_url cannot be used");
}

static void on_claimed(void *arg, int rv) {
  pending_t *p = arg;
  sfu_http_t *h = p->h;
  int spawned = 0;
  if (rv == 0 && p->req) spawn_and_answer(h, p->req, &p->rr, &spawned);
  if (rv == 0 && !spawned) sfu_fleet_release(h->fleet, p->rr.id, p->rr.name);
  if (p->req && rv == SFU_EEXIST)
    fail(h, p->req, 409, "name_in_use", "a live room of the fleet is already named '%s'",
         p->rr.name);
  else if (p->req && rv != 0)
    fleet_unavailable(h, p->req);
  pending_done(p);
}

/* Creates the room here, its id and name claimed in etcd first. */
static void create_claimed(pending_t *p) {
  sfu_http_t *h = p->h;
  sfu_room_rec_t *r;
  if (sfu_supervisor_draining(h->sup)) {
    fail(h, p->req, 503, "draining", "this node is draining and accepts no new rooms");
    pending_done(p);
    return;
  }
  if (p->rr.name[0] && (r = sfu_supervisor_find(h->sup, p->rr.name)) != NULL &&
      (r->state == SFU_ROOM_STARTING || r->state == SFU_ROOM_RUNNING)) {
    fail(h, p->req, 409, "name_in_use", "a live room is already named '%s'", p->rr.name);
    pending_done(p);
    return;
  }
  sfu_random_hex(p->rr.id, "rm_", 8);
  sfu_fleet_claim(h->fleet, p->rr.id, p->rr.name, on_claimed, p);
}

static void on_placed(void *arg, int rv, const sfu_fleet_node_t *node) {
  pending_t *p = arg;
  sfu_http_t *h = p->h;
  h2o_req_t *req = p->req;
  if (!req) {
    pending_done(p);
    return;
  }
  if (rv == 0 && strcmp(node->node_id, h->cfg->node_id) == 0) {
    create_claimed(p);
    return;
  }
  if (rv == 0) { /* the chosen node creates it: pinned, so it does not place it again */
    json_t *j = json_loadb(p->body, p->len, 0, NULL);
    if (!json_is_object(j)) {
      json_decref(j);
      j = json_object();
    }
    json_object_set_new(j, "node", json_string(node->node_id));
    char *body = json_dumps(j, JSON_COMPACT);
    if (!p->rr.node[0] && !p->placed) p->placed = 1; /* chosen by load: may be chosen again */
    json_decref(j);
    proxy(p, node, body, strlen(body));
    free(body);
    return;
  }
  if (rv == SFU_ENOENT)
    fail(h, req, 404, "node_not_found", "no node '%s' in the fleet", p->rr.node);
  else if (rv == SFU_EDRAINING)
    fail(h, req, 503, "draining", "node '%s' is draining and accepts no new rooms", p->rr.node);
  else if (rv == SFU_ECAPACITY && p->rr.node[0])
    fail(h, req, 503, "no_capacity", "node '%s' runs its maximum of rooms", p->rr.node);
  else if (rv == SFU_ECAPACITY)
    fail(h, req, 503, "no_capacity", "no node of region '%s' can take another room",
         p->rr.region[0] ? p->rr.region : h->cfg->region);
  else
    fleet_unavailable(h, req);
  pending_done(p);
}

/* POST /v1/rooms: alone, the room is spawned here. In a fleet it goes to
 * the node placement chooses (this one, or another that the request is
 * passed to, pinned), its id and name claimed in etcd before it spawns. */
static int route_create_room(sfu_http_t *h, h2o_req_t *req) {
  sfu_room_req_t rr;
  sfu_api_error_t e;
  size_t len;
  int spawned;
  const char *body = body_of(req, &len);

  if (sfu_validate_room_create(body, len, h->cfg, &rr, &e)) return send_error(h, req, &e);
  if (!h->fleet) {
    if (rr.node[0] && strcmp(rr.node, h->cfg->node_id) != 0) {
      sfu_room_req_free(&rr);
      return fail(h, req, 404, "node_not_found", "no node '%s': this node runs alone", rr.node);
    }
    if (rr.region[0] && strcmp(rr.region, h->cfg->region) != 0) {
      sfu_room_req_free(&rr);
      return fail(h, req, 503, "no_capacity", "no node of region '%s': this node runs alone",
                  rr.region);
    }
    spawn_and_answer(h, req, &rr, &spawned);
    sfu_room_req_free(&rr);
    return 0;
  }
  pending_t *p = pending_new(h, req);
  if (!p) {
    sfu_room_req_free(&rr);
    return send_body(h, req, 500, "application/json", H2O_STRLIT(OOM_BODY));
  }
  p->rr = rr;
  if (is_proxied(req) || strcmp(rr.node, h->cfg->node_id) == 0)
    create_claimed(p);
  else
    sfu_fleet_place(h->fleet, rr.region, rr.node, NULL, on_placed, p);
  return 0;
}

static void on_found(void *arg, int rv, const sfu_fleet_node_t *owner) {
  pending_t *p = arg;
  sfu_http_t *h = p->h;
  if (!p->req) {
    pending_done(p);
  } else if (rv == 0 && strcmp(owner->node_id, h->cfg->node_id) != 0) {
    proxy(p, owner, NULL, 0);
  } else {
    json_t *lost = rv == SFU_ENOENT ? sfu_fleet_lost_json(h->fleet, p->room) : NULL;
    if (rv == SFU_EAGAIN)
      fleet_unavailable(h, p->req);
    else if (!lost)
      fail(h, p->req, 404, "room_not_found", "no room '%.64s' in the fleet", p->room);
    else if (p->whole_room && (method_is(p->req, "GET") || method_is(p->req, "DELETE")))
      send_json(h, p->req, 200, json_incref(lost)); /* /v1/rooms/{id} itself */
    else
      fail(h, p->req, 409, "room_not_running", "room %s crashed with its node %s", p->room,
           json_string_value(json_object_get(lost, "node_id")));
    json_decref(lost);
    pending_done(p);
  }
}

static void on_snapshot(void *arg, int rv, json_t *fleet) {
  pending_t *p = arg;
  if (p->req && rv) fleet_unavailable(p->h, p->req);
  if (p->req && !rv) {
    json_object_set_new(fleet, "node_id", json_string(p->h->cfg->node_id));
    send_json(p->h, p->req, 200, fleet);
  } else {
    json_decref(fleet);
  }
  pending_done(p);
}

/* GET /v1/fleet */
static int route_fleet(sfu_http_t *h, h2o_req_t *req) {
  if (!method_is(req, "GET")) return method_not_allowed(h, req, "GET");
  if (!h->fleet)
    return fail(h, req, 404, "no_fleet", "this node runs alone (etcd_url is not set)");
  pending_t *p = pending_new(h, req);
  if (!p) return send_body(h, req, 500, "application/json", H2O_STRLIT(OOM_BODY));
  sfu_fleet_snapshot(h->fleet, on_snapshot, p);
  return 0;
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

/* The participant routes: POST .../participants/{identity}/mute {"muted":
 * bool}, DELETE .../participants/{identity} (kick), POST .../{identity}/ban
 * {"reason"?} and DELETE .../{identity}/ban. Each is recorded in the room's
 * moderation state (supervisor.h), which refuses the joins it forbids, and
 * what the room must act on (kick, server_mute) is forwarded to it, which
 * applies it and tells the clients. */
static int route_participant(sfu_http_t *h, h2o_req_t *req, sfu_room_rec_t *r,
                             const char *identity, const char *action) {
  sfu_api_error_t e;
  size_t len;
  const char *body = body_of(req, &len);
  char reason[SFU_BAN_MAX_REASON + 1];
  int muted, rv;
  int64_t now_s = sfu_wall_ms() / 1000;

  if (!sfu_token_valid_id(identity))
    return fail(h, req, 400, "invalid_field", "'%.64s' is not a valid identity", identity);
  if (r->state == SFU_ROOM_CRASHED || r->state == SFU_ROOM_CLOSING)
    return fail(h, req, 409, "room_not_running", "room %s is %s", r->id,
                sfu_room_state_name(r->state));
  if (action == NULL) {
    if (!method_is(req, "DELETE")) return method_not_allowed(h, req, "DELETE");
    rv = sfu_supervisor_kick(r, identity, now_s);
  } else if (strcmp(action, "mute") == 0) {
    if (!method_is(req, "POST")) return method_not_allowed(h, req, "POST");
    if (sfu_validate_mute(body, len, h->cfg, &muted, &e)) return send_error(h, req, &e);
    rv = sfu_supervisor_server_mute(r, identity, muted);
    if (rv == SFU_E2BIG)
      return fail(h, req, 409, "too_many_mutes",
                  "room %s already has %d server-muted identities; unmute one first", r->id,
                  SFU_MOD_MAX_MUTED);
  } else if (strcmp(action, "ban") == 0 && method_is(req, "POST")) {
    if (sfu_validate_ban(body, len, h->cfg, reason, &e)) return send_error(h, req, &e);
    rv = sfu_supervisor_ban(r, identity, reason, now_s);
    if (rv == SFU_E2BIG)
      return fail(h, req, 409, "too_many_bans",
                  "room %s already has %d banned identities; unban one first", r->id,
                  SFU_MOD_MAX_BANS);
  } else if (strcmp(action, "ban") == 0 && method_is(req, "DELETE")) {
    if (sfu_supervisor_unban(r, identity) != 0)
      return fail(h, req, 404, "not_banned", "'%s' is not banned from room %s", identity, r->id);
    return send_json(h, req, 200, json_pack("{s:s, s:s, s:s}", "room_id", r->id, "identity",
                                            identity, "action", "unban"));
  } else if (strcmp(action, "ban") == 0) {
    return method_not_allowed(h, req, "POST, DELETE");
  } else {
    return fail(h, req, 404, "not_found", "no route .../participants/{identity}/%.32s", action);
  }
  if (rv == SFU_ENOMEM) return fail(h, req, 500, "internal", "out of memory");
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

static void on_moved(void *arg, int status, json_t *body) {
  pending_t *p = arg;
  if (p->req)
    send_json(p->h, p->req, status, body);
  else
    json_decref(body);
  pending_done(p);
}

/* POST /v1/rooms/{id}/migrate: answered when the room has moved, or not. */
static int route_migrate(sfu_http_t *h, h2o_req_t *req, sfu_room_rec_t *r) {
  sfu_api_error_t e;
  char node[64];
  size_t len;
  const char *body = body_of(req, &len);
  if (!method_is(req, "POST")) return method_not_allowed(h, req, "POST");
  if (!h->migrator)
    return fail(h, req, 404, "no_fleet", "this node runs alone (etcd_url is not set)");
  if (sfu_validate_migrate(body, len, h->cfg, node, &e)) return send_error(h, req, &e);
  if (strcmp(node, h->cfg->node_id) == 0)
    return fail(h, req, 409, "same_node", "room %s runs on node %s already", r->id, node);
  if (sfu_supervisor_relay_count(h->sup, r) > 0)
    return fail(h, req, 409, "room_has_relays", "room %s runs over relays: they cannot move",
                r->id);
  pending_t *p = pending_new(h, req);
  if (!p) return send_body(h, req, 500, "application/json", H2O_STRLIT(OOM_BODY));
  int rv = sfu_migrate_room(h->migrator, r, node, on_moved, p);
  if (rv == 0) return 0;
  pending_done(p);
  if (rv == SFU_EBUSY)
    return fail(h, req, 409, "migration_in_progress", "room %s is moving already", r->id);
  return fail(h, req, 409, "room_not_running", "room %s is %s", r->id,
              sfu_room_state_name(r->state));
}

/* /v1/node/migrations[/{id}[/commit|/usage]]: the new node's side of a move. */
static int route_migrations(sfu_http_t *h, h2o_req_t *req, char seg[][72], int n) {
  size_t len;
  int status = 500;
  json_t *out;
  const char *body = body_of(req, &len);
  if (!h->migrator)
    return fail(h, req, 404, "no_fleet", "this node runs alone (etcd_url is not set)");
  if (n == 3) {
    if (!method_is(req, "POST")) return method_not_allowed(h, req, "POST");
    out = sfu_migrator_accept(h->migrator, body, len, &status);
  } else if (n == 4 && method_is(req, "GET")) {
    out = sfu_migrator_status(h->migrator, seg[3], &status);
  } else if (n == 4 && method_is(req, "DELETE")) {
    out = sfu_migrator_drop(h->migrator, seg[3], &status);
  } else if (n == 4) {
    return method_not_allowed(h, req, "GET, DELETE");
  } else if (n == 5 && strcmp(seg[4], "usage") == 0) {
    if (!method_is(req, "POST")) return method_not_allowed(h, req, "POST");
    out = sfu_migrator_usage(h->migrator, seg[3], body, len, &status);
  } else if (n == 5 && strcmp(seg[4], "commit") == 0) {
    if (!method_is(req, "POST")) return method_not_allowed(h, req, "POST");
    pending_t *p = pending_new(h, req); /* answered once etcd names this node */
    if (!p) return send_body(h, req, 500, "application/json", H2O_STRLIT(OOM_BODY));
    sfu_migrator_commit(h->migrator, seg[3], body, len, on_moved, p);
    return 0;
  } else {
    return fail(h, req, 404, "not_found", "no such route");
  }
  return send_json(h, req, status, out);
}

static void on_moved(void *arg, int status, json_t *body);

/* The room's relays, here and on other nodes. */
static json_t *relays_json(sfu_http_t *h, const sfu_room_rec_t *r) {
  json_t *a = sfu_supervisor_relays_json(h->sup, r);
  if (h->rrelay) {
    json_t *far = sfu_rrelay_json(h->rrelay, r->id);
    json_array_extend(a, far);
    json_decref(far);
  }
  return a;
}

/* /v1/rooms/{id}/relays[/{relay_id}]: GET lists, POST adds one (here, or
 * {"node": ...} on another node of the fleet), DELETE ends one here (its
 * clients join again: docs/internals/relay.md). */
static int route_relays(sfu_http_t *h, h2o_req_t *req, sfu_room_rec_t *r, const char *relay_id) {
  if (relay_id) {
    if (!method_is(req, "DELETE")) return method_not_allowed(h, req, "DELETE");
    json_t *gone = sfu_supervisor_close_relay(h->sup, r, relay_id);
    if (!gone)
      return fail(h, req, 404, "relay_not_found", "room %s has no relay '%.32s'", r->id, relay_id);
    return send_json(h, req, 202, gone);
  }
  if (method_is(req, "GET")) return send_json(h, req, 200, relays_json(h, r));
  if (!method_is(req, "POST")) return method_not_allowed(h, req, "GET, POST");
  size_t len;
  const char *body = body_of(req, &len);
  json_t *j = len ? json_loadb(body, len, 0, NULL) : json_object();
  const char *node = json_string_value(json_object_get(j, "node"));
  if (!json_is_object(j) || (json_object_get(j, "node") && !node) ||
      json_object_size(j) > (node ? 1u : 0u)) {
    json_decref(j);
    return fail(h, req, 400, "invalid_body", "{} or {\"node\": \"<node_id>\"}");
  }
  if (node && strcmp(node, h->cfg->node_id) != 0) { /* on another node */
    if (!h->rrelay) {
      json_decref(j);
      return fail(h, req, 404, "no_fleet", "this node runs alone (etcd_url is not set)");
    }
    if (r->state != SFU_ROOM_RUNNING && r->state != SFU_ROOM_STARTING) {
      json_decref(j);
      return fail(h, req, 409, "room_not_running", "room %s is %s", r->id,
                  sfu_room_state_name(r->state));
    }
    pending_t *p = pending_new(h, req);
    if (!p) {
      json_decref(j);
      return send_body(h, req, 500, "application/json", H2O_STRLIT(OOM_BODY));
    }
    sfu_rrelay_add(h->rrelay, r, node, on_moved, p);
    json_decref(j);
    return 0;
  }
  json_decref(j);
  sfu_room_rec_t *x;
  int rv = sfu_supervisor_spawn_relay(h->sup, r, &x);
  if (rv == SFU_EINVAL)
    return fail(h, req, 409, "room_not_running", "room %s is %s", r->id,
                r->moving ? "moving" : sfu_room_state_name(r->state));
  if (rv == SFU_ECAPACITY)
    return fail(h, req, 409, "too_many_relays", "room %s has max_relays (%d) relays already",
                r->id, h->cfg->max_relays);
  if (rv == SFU_EDRAINING) return fail(h, req, 503, "draining", "node is draining");
  if (rv != 0)
    return fail(h, req, 500, "spawn_failed", "cannot start a relay: %s", sfu_strerror(rv));
  return send_json(h, req, 201, json_pack("{s:s, s:s, s:i}", "relay_id", x->id, "state",
                                          sfu_room_state_name(x->state), "pid", x->pid));
}

static int route_room(sfu_http_t *h, h2o_req_t *req, char seg[][72], int n) {
  const char *id = seg[2], *sub = n >= 4 ? seg[3] : NULL;
  sfu_room_rec_t *r = sfu_supervisor_find(h->sup, id);
  if (r && r->state == SFU_ROOM_CLOSING && strcmp(r->end_reason, "migrated") == 0)
    r = NULL; /* what is left here of a room that moved: it runs elsewhere */
  if (!r && h->fleet && !is_proxied(req)) { /* perhaps on another node */
    pending_t *p = pending_new(h, req);
    if (!p) return send_body(h, req, 500, "application/json", H2O_STRLIT(OOM_BODY));
    snprintf(p->room, sizeof(p->room), "%s", id);
    p->whole_room = sub == NULL;
    sfu_fleet_lookup(h->fleet, id, on_found, p);
    return 0;
  }
  if (!r) return fail(h, req, 404, "room_not_found", "no room '%.64s' on this node", id);
  if (sub && strcmp(sub, "participants") == 0 && n >= 5)
    return route_participant(h, req, r, seg[4], n == 6 ? seg[5] : NULL);
  if (sub && strcmp(sub, "relays") == 0 && n <= 5)
    return route_relays(h, req, r, n == 5 ? seg[4] : NULL);
  if (sub && n > 4) return fail(h, req, 404, "not_found", "no such route");
  if (sub && strcmp(sub, "capture") == 0) return route_capture(h, req, r);
  if (sub && strcmp(sub, "migrate") == 0) return route_migrate(h, req, r);
  if (sub) {
    if (strcmp(sub, "tokens") != 0)
      return fail(h, req, 404, "not_found", "no route /v1/rooms/{id}/%.32s", sub);
    if (!method_is(req, "POST")) return method_not_allowed(h, req, "POST");
    return route_mint_token(h, req, r);
  }
  if (method_is(req, "GET")) {
    json_t *j = sfu_room_json(r, 1);
    json_object_set_new(j, "ws_url", json_string(h->ws_url));
    json_object_set_new(j, "relays", relays_json(h, r)); /* those on other nodes too */
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

static json_t *node_json(sfu_http_t *h) {
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
      "participants", parts, "cpu", "loadavg_1m", sfu_loadavg_1m(), "sfud_seconds",
      self_cpu_seconds(), "reaped_rooms_seconds", children_cpu_seconds(), "cores",
      (int)sysconf(_SC_NPROCESSORS_ONLN));
  json_object_set_new(j, "node_id", json_string(h->cfg->node_id));
  json_object_set_new(j, "region", json_string(h->cfg->region));
  json_object_set_new(j, "fleet", h->fleet ? sfu_fleet_status_json(h->fleet) : json_null());
  return j;
}

static int route_node(sfu_http_t *h, h2o_req_t *req) { return send_json(h, req, 200, node_json(h)); }

static int route_drain(sfu_http_t *h, h2o_req_t *req) {
  sfu_api_error_t e;
  size_t len;
  int draining, migrate, moving = 0;
  const char *body = body_of(req, &len);
  if (sfu_validate_drain(body, len, h->cfg, &draining, &migrate, &e)) return send_error(h, req, &e);
  if (migrate && !h->migrator)
    return fail(h, req, 409, "no_fleet", "'migrate' needs a fleet: this node runs alone");
  sfu_supervisor_set_draining(h->sup, draining);
  if (h->fleet) sfu_fleet_node_changed(h->fleet);
  if (!migrate) return route_node(h, req);
  moving = sfu_migrate_all(h->migrator); /* each answered in the log and the journal */
  sfu_log(SFU_LOG_INFO, "http", "drain: moving %d rooms to other nodes", moving);
  json_t *j = node_json(h);
  json_object_set_new(j, "rooms_moving", json_integer(moving));
  return send_json(h, req, 202, j);
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
  static char buf[16384];
  sfu_supervisor_counts(h->sup, &g.rooms, &g.rooms_crashed, &g.participants);
  g.draining = sfu_supervisor_draining(h->sup);
  g.fleet_registered = h->fleet ? sfu_fleet_available(h->fleet) : -1;
  g.cpu_seconds = self_cpu_seconds();
  g.journal_backlog = h->events ? (int64_t)sfu_events_backlog(h->events) : -1;
  size_t n = sfu_metrics_render(h->metrics, &g, buf, sizeof(buf));
  if (n >= sizeof(buf)) n = sizeof(buf) - 1;
  return send_body(h, req, 200, "text/plain; version=0.0.4", buf, n);
}

/* Compares a header name, case-insensitively. */
static int name_is(const char *p, size_t len, const char *name) {
  return len == strlen(name) && strncasecmp(p, name, len) == 0;
}

/*
 * RFC 9112 section 6.3: a request with both Transfer-Encoding and
 * Content-Length, or with Content-Length values that differ, has no single
 * length; a front proxy and sfud could each take a different one and see
 * different requests in the same bytes. Returns why the request is
 * ambiguous, or NULL. h2o has parsed the header block already (it is
 * complete and under H2O_MAX_REQLEN); lines end in "\n", "\r" before it is
 * not part of a value.
 */
static const char *ambiguous_framing(h2o_req_t *req) {
  h2o_socket_t *sock = req->conn->callbacks->get_socket ? req->conn->callbacks->get_socket(req->conn)
                                                        : NULL;
  if (req->version >= 0x200 || !sock || !sock->input) return NULL;
  const char *p = sock->input->bytes, *end = p + sock->input->size;
  const char *cl = NULL;
  size_t cl_len = 0;
  int te = 0, first = 1;

  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl) break;
    const char *line = p, *le = nl;
    p = nl + 1;
    if (le > line && le[-1] == '\r') le--;
    if (first) { /* the request line */
      first = 0;
      continue;
    }
    if (le == line) break; /* the end of the header block */
    const char *colon = memchr(line, ':', (size_t)(le - line));
    if (!colon) continue;
    const char *v = colon + 1;
    while (v < le && (*v == ' ' || *v == '\t')) v++;
    while (le > v && (le[-1] == ' ' || le[-1] == '\t')) le--;
    if (name_is(line, (size_t)(colon - line), "transfer-encoding")) {
      te++;
    } else if (name_is(line, (size_t)(colon - line), "content-length")) {
      if (cl && ((size_t)(le - v) != cl_len || memcmp(v, cl, cl_len) != 0))
        return "conflicting Content-Length headers";
      cl = v;
      cl_len = (size_t)(le - v);
    }
  }
  if (te && cl) return "both Content-Length and Transfer-Encoding";
  if (te > 1) return "more than one Transfer-Encoding header";
  return NULL;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req) {
  sfu_http_t *h = ((api_handler_t *)self)->http;
  char seg[6][72];
  int n;
  const char *why;

  h->metrics->http_requests++;
  if ((why = ambiguous_framing(req)) != NULL) {
    h->metrics->http_rejected++;
    req->http1_is_persistent = 0; /* what follows on this connection cannot be trusted */
    return fail(h, req, 400, "ambiguous_request", "request refused: %s", why);
  }
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
  { /* WHIP/WHEP (whip.c): the join token or the session's URL authorises */
    int v1 = n >= 1 && strcmp(seg[0], "v1") == 0;
    const char *kind = n > v1 ? seg[v1] : "";
    if ((strcmp(kind, "whip") == 0 || strcmp(kind, "whep") == 0) && (n - v1 == 2 || n - v1 == 3)) {
      if (!h->whip) return fail(h, req, 404, "not_found", "no such route");
      return sfu_whip_handle(h->whip, req, seg + v1, n - v1);
    }
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
    if (n >= 3 && n <= 5 && strcmp(seg[2], "migrations") == 0) return route_migrations(h, req, seg, n);
    if ((n == 3 && strcmp(seg[2], "relays") == 0) || (n == 4 && strcmp(seg[2], "links") == 0)) {
      if (!method_is(req, "POST")) return method_not_allowed(h, req, "POST");
      if (!h->rrelay) return fail(h, req, 404, "no_fleet", "this node runs alone (etcd_url is not set)");
      size_t len;
      int status = 500;
      const char *body = body_of(req, &len);
      json_t *out = n == 3 ? sfu_rrelay_accept(h->rrelay, body, len, &status)
                           : sfu_rrelay_link_in(h->rrelay, seg[3], body, len, &status);
      return send_json(h, req, status, out);
    }
  } else if (strcmp(seg[1], "fleet") == 0 && n == 2) {
    return route_fleet(h, req);
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

#define KEEPALIVE_IDLE_S 30     /* TCP keepalive: first probe after this idle time */
#define KEEPALIVE_INTERVAL_S 10 /* then one every this */
#define KEEPALIVE_PROBES 3      /* unanswered probes before the peer is dead */
#define USER_TIMEOUT_MS 60000   /* unacknowledged data this old: the peer is dead */
#define ACCEPT_LOG_EVERY_MS 10000

static const char refused_body[] =
    "{\"error\":{\"code\":\"too_many_connections\",\"message\":"
    "\"too many open connections; retry later\"}}\n";

/* Source address as a counting key: IPv4, or the /64 of an IPv6 address. */
static size_t addr_key(const struct sockaddr_storage *ss, uint8_t key[9]) {
  if (ss->ss_family == AF_INET) {
    key[0] = 4;
    memcpy(key + 1, &((const struct sockaddr_in *)ss)->sin_addr, 4);
    return 5;
  }
  const uint8_t *a = ((const struct sockaddr_in6 *)ss)->sin6_addr.s6_addr;
  static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (memcmp(a, v4mapped, 12) == 0) {
    key[0] = 4;
    memcpy(key + 1, a + 12, 4);
    return 5;
  }
  key[0] = 6;
  memcpy(key + 1, a, 8);
  return 9;
}

static addr_count_t **addr_slot(sfu_http_t *h, const uint8_t *key, size_t len) {
  uint32_t x = 2166136261u; /* FNV-1a */
  for (size_t i = 0; i < len; i++) x = (x ^ key[i]) * 16777619u;
  addr_count_t **pp = &h->by_addr[x % ADDR_BUCKETS];
  while (*pp && memcmp((*pp)->key, key, len) != 0) pp = &(*pp)->next;
  return pp;
}

static void on_conn_closed(uv_handle_t *handle) {
  conn_t *c = (conn_t *)handle;
  sfu_http_t *h = c->h;
  if (c->addr) {
    h->metrics->http_connections = --h->conns;
    if (--c->addr->n == 0) {
      addr_count_t **pp = addr_slot(h, c->addr->key, c->addr->key[0] == 4 ? 5 : 9);
      *pp = c->addr->next;
      free(c->addr);
    }
  }
  free(c);
}

static void accept_failed(sfu_http_t *h, int err) {
  uint64_t now = sfu_now_ms();
  h->metrics->accept_failures++;
  h->accept_fails_unlogged++;
  if (h->accept_fail_logged_ms && now - h->accept_fail_logged_ms < ACCEPT_LOG_EVERY_MS) return;
  sfu_log(SFU_LOG_WARN, "http", "accept failed: %s (%llu failures since the last report; %d open)",
          uv_strerror(err), (unsigned long long)h->accept_fails_unlogged, h->conns);
  h->accept_fail_logged_ms = now;
  h->accept_fails_unlogged = 0;
}

/* Keepalive and a user timeout: a peer gone without a FIN is found within
 * about a minute whether the socket is idle or has data unacknowledged. */
static void set_keepalive(uv_tcp_t *t) {
  uv_os_fd_t fd;
  uv_tcp_keepalive(t, 1, KEEPALIVE_IDLE_S);
  if (uv_fileno((uv_handle_t *)t, &fd) != 0) return;
  int intvl = KEEPALIVE_INTERVAL_S, cnt = KEEPALIVE_PROBES;
  unsigned ut = USER_TIMEOUT_MS;
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
  setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ut, sizeof(ut));
}

static void on_accept(uv_stream_t *listener, int status) {
  sfu_http_t *h = listener->data;
  struct sockaddr_storage ss;
  int sl = sizeof(ss);
  uint8_t key[9];

  if (status != 0) {
    accept_failed(h, status);
    return;
  }
  conn_t *c = calloc(1, sizeof(*c));
  if (!c) {
    accept_failed(h, UV_ENOMEM);
    return;
  }
  c->h = h;
  uv_tcp_init(listener->loop, &c->tcp);
  int rv = uv_accept(listener, (uv_stream_t *)&c->tcp);
  if (rv == 0) rv = uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl);
  if (rv != 0) {
    accept_failed(h, rv);
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    return;
  }
  size_t kl = addr_key(&ss, key);
  addr_count_t **slot = addr_slot(h, key, kl);
  if (h->conns >= h->max_conns || (*slot && (*slot)->n >= h->cfg->max_connections_per_ip)) {
    char head[160];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                     "Connection: close\r\nRetry-After: 5\r\nContent-Length: %zu\r\n\r\n",
                     sizeof(refused_body) - 1);
    uv_buf_t b[2] = {uv_buf_init(head, (unsigned)n),
                     uv_buf_init((char *)refused_body, sizeof(refused_body) - 1)};
    h->metrics->connections_refused++;
    uv_try_write((uv_stream_t *)&c->tcp, b, 2); /* best effort: a fresh socket has room */
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    return;
  }
  if (!*slot) {
    if (!(*slot = calloc(1, sizeof(**slot)))) {
      accept_failed(h, UV_ENOMEM);
      uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
      return;
    }
    memcpy((*slot)->key, key, kl);
  }
  c->addr = *slot;
  c->addr->n++;
  h->metrics->http_connections = ++h->conns;
  uv_tcp_nodelay(&c->tcp, 1);
  set_keepalive(&c->tcp);
  h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)&c->tcp, on_conn_closed);
  h2o_accept(&h->accept_ctx, sock);
}

/* The certificate served now, by its key's pin (what clients would pin). */
static void log_certificate(const char *file) {
  char pin[64], err[768];
  if (sfu_tls_file_pin(file, pin, sizeof(pin), err, sizeof(err)) == 0)
    sfu_log(SFU_LOG_INFO, "http", "TLS certificate %s, key %s", file, pin);
}

/* max_connections, lowered to fit the descriptor limit: every room holds
 * one descriptor in sfud (its IPC), and 64 are kept for the journal, the
 * webhook, the zygote and the listener. */
static int connection_cap(const sfu_config_t *cfg) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return cfg->max_connections;
  long reserve = (long)cfg->max_rooms + 64, fit = (long)rl.rlim_cur - reserve;
  if (fit >= cfg->max_connections) return cfg->max_connections;
  if (fit < (long)rl.rlim_cur / 2) {
    fit = (long)rl.rlim_cur / 2;
    sfu_log(SFU_LOG_WARN, "http",
            "descriptor limit %ld leaves too few for max_rooms %d: connections capped at %ld "
            "(raise the hard RLIMIT_NOFILE)", (long)rl.rlim_cur, cfg->max_rooms, fit);
  }
  return (int)fit;
}

int sfu_http_start(sfu_http_t **out, uv_loop_t *loop, const sfu_config_t *cfg,
                   sfu_supervisor_t *sup, sfu_ws_t *ws, sfu_metrics_t *metrics, int listen_fd) {
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
  h->globalconf.http1.upgrade_to_http2 = 0; /* no h2c, no prior knowledge: HTTP/1.1 only */
  h->globalconf.http1.req_timeout = (uint64_t)cfg->http_request_timeout_ms;
  h->globalconf.handshake_timeout = (uint64_t)cfg->http_request_timeout_ms;
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
  h->max_conns = connection_cap(cfg);
  metrics->http_connections_max = h->max_conns;
  if (cfg->tls_cert_file[0]) {
    char err[768];
    if (!(h->accept_ctx.ssl_ctx = sfu_tls_server_ctx(cfg->tls_cert_file, cfg->tls_key_file, err,
                                                     sizeof(err)))) {
      sfu_log(SFU_LOG_ERROR, "http", "%s", err);
      rv = SFU_EINVAL;
      goto fail;
    }
  }

  if ((rv = uv_ip4_addr(cfg->listen_host, cfg->listen_port, (struct sockaddr_in *)&ss)) != 0 &&
      (rv = uv_ip6_addr(cfg->listen_host, cfg->listen_port, (struct sockaddr_in6 *)&ss)) != 0) {
    sfu_log(SFU_LOG_ERROR, "http", "listen_host '%s' is not an IP address", cfg->listen_host);
    goto fail;
  }
  uv_tcp_init(loop, &h->listener);
  h->listener.data = h;
  if ((rv = listen_fd >= 0 ? uv_tcp_open(&h->listener, listen_fd)
                           : uv_tcp_bind(&h->listener, (struct sockaddr *)&ss, 0)) != 0 ||
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
    snprintf(h->base_url, sizeof(h->base_url), "%s://%s%s%s:%d",
             h->accept_ctx.ssl_ctx ? "https" : "http", v6 ? "[" : "", cfg->listen_host,
             v6 ? "]" : "", port);
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
  if (h->accept_ctx.ssl_ctx) log_certificate(cfg->tls_cert_file);
  sfu_log(SFU_LOG_INFO, "http", "connections: at most %d, %d per address; requests within %d ms",
          h->max_conns, cfg->max_connections_per_ip, cfg->http_request_timeout_ms);
  *out = h;
  return 0;

fail:
  /* h2o's context stays allocated: sfud exits on this error. */
  return rv ? rv : SFU_EINVAL;
}

const char *sfu_http_base_url(const sfu_http_t *h) { return h->base_url; }

int sfu_http_reload_tls(sfu_http_t *h) {
  char err[768];
  if (!h->accept_ctx.ssl_ctx) return 0;
  SSL_CTX *fresh = sfu_tls_server_ctx(h->cfg->tls_cert_file, h->cfg->tls_key_file, err,
                                      sizeof(err));
  if (!fresh) {
    h->metrics->tls_reload_failures++;
    sfu_log(SFU_LOG_ERROR, "http", "TLS reload failed, the previous certificate stays: %s", err);
    return SFU_EINVAL;
  }
  SSL_CTX *old = h->accept_ctx.ssl_ctx;
  h->accept_ctx.ssl_ctx = fresh;
  SSL_CTX_free(old); /* open connections hold their own references */
  h->metrics->tls_reloads++;
  log_certificate(h->cfg->tls_cert_file);
  return 0;
}

void sfu_http_set_events(sfu_http_t *h, sfu_events_t *e) { h->events = e; }

void sfu_http_set_fleet(sfu_http_t *h, sfu_fleet_t *f) { h->fleet = f; }

void sfu_http_set_rrelay(sfu_http_t *h, sfu_rrelay_t *m) { h->rrelay = m; }

void sfu_http_set_whip(sfu_http_t *h, struct sfu_whip_s *w) { h->whip = w; }

void sfu_http_set_migrator(sfu_http_t *h, sfu_migrator_t *m) { h->migrator = m; }

int sfu_http_export_listener(sfu_http_t *h) {
  uv_os_fd_t fd;
  if (uv_fileno((uv_handle_t *)&h->listener, &fd) != 0) return -1;
  int fl = fcntl(fd, F_GETFD);
  if (fl < 0 || fcntl(fd, F_SETFD, fl & ~FD_CLOEXEC) != 0) return -1;
  return fd;
}

const char *sfu_http_ws_url(const sfu_http_t *h) { return h->ws_url; }

void sfu_http_stop_listening(sfu_http_t *h) {
  if (!uv_is_closing((uv_handle_t *)&h->listener))
    uv_close((uv_handle_t *)&h->listener, NULL);
}
