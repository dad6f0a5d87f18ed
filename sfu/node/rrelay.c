/*
 * rrelay.c -- relays of a room on other nodes (see rrelay.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sfu/base/log.h"
#include "sfu/base/sfu.h"
#include "sfu/node/fleet.h"
#include "sfu/node/httpc.h"
#include "sfu/node/rrelay.h"

#define SEND_TRIES 3 /* a link message the other node did not take */

/* One link whose other end runs on another node. */
typedef struct rlink_s {
  char link[SFU_ROOM_ID_LEN + 1];    /* the relay's id */
  char room_id[SFU_ROOM_ID_LEN + 1]; /* its room's */
  char node[64];                     /* the other node */
  char api_url[256];                 /* its API */
  char ws_url[288];                  /* the relay's node's signaling (the room's node: for
                                        the API) */
  json_t *queue;                     /* messages for it, oldest first */
  sfu_httpc_req_t *req;              /* the first of them, in flight; NULL: none */
  int tries;                         /* failed sends of the first */
  int closing;                       /* link_close queued: freed once it went */
  struct sfu_rrelay_s *m;
  struct rlink_s *next;
} rlink_t;

struct sfu_rrelay_s {
  const sfu_config_t *cfg;
  sfu_supervisor_t *sup;
  sfu_fleet_t *fleet;
  char api_url[256], ws_url[288]; /* ours */
  char auth[400];                 /* our requests' headers */
  rlink_t *links;
};

/* A relay being asked for on another node (sfu_rrelay_add). */
typedef struct {
  sfu_rrelay_t *m;
  char room_id[SFU_ROOM_ID_LEN + 1];
  char relay_id[SFU_ROOM_ID_LEN + 1];
  char node[64], api_url[256];
  json_t *body;                   /* what we ask */
  sfu_rrelay_done_cb done;
  void *arg;
} adding_t;

int sfu_rrelay_create(sfu_rrelay_t **out, const sfu_config_t *cfg, sfu_supervisor_t *sup,
                      sfu_fleet_t *fleet, const char *api_url, const char *ws_url) {
  sfu_rrelay_t *m = calloc(1, sizeof(*m));
  *out = NULL;
  if (!m) return SFU_ENOMEM;
  m->cfg = cfg;
  m->sup = sup;
  m->fleet = fleet;
  snprintf(m->api_url, sizeof(m->api_url), "%s", api_url);
  snprintf(m->ws_url, sizeof(m->ws_url), "%s", ws_url);
  snprintf(m->auth, sizeof(m->auth),
           "Authorization: Bearer %s\r\nContent-Type: application/json\r\nX-SFU-Proxied: %s\r\n",
           cfg->api_key, cfg->node_id);
  *out = m;
  return 0;
}

static void link_free(rlink_t *l) {
  sfu_rrelay_t *m = l->m;
  for (rlink_t **pp = &m->links; *pp; pp = &(*pp)->next)
    if (*pp == l) {
      *pp = l->next;
      break;
    }
  if (l->req) sfu_httpc_cancel(l->req);
  json_decref(l->queue);
  free(l);
}

void sfu_rrelay_destroy(sfu_rrelay_t *m) {
  if (!m) return;
  while (m->links) link_free(m->links);
  free(m);
}

static rlink_t *link_of(sfu_rrelay_t *m, const char *link) {
  for (rlink_t *l = m->links; link && l; l = l->next)
    if (strcmp(l->link, link) == 0) return l;
  return NULL;
}

static rlink_t *link_new(sfu_rrelay_t *m, const char *link, const char *room_id, const char *node,
                         const char *api_url, const char *ws_url) {
  rlink_t *l = calloc(1, sizeof(*l));
  if (!l || !(l->queue = json_array())) {
    free(l);
    return NULL;
  }
  snprintf(l->link, sizeof(l->link), "%s", link);
  snprintf(l->room_id, sizeof(l->room_id), "%s", room_id);
  snprintf(l->node, sizeof(l->node), "%s", node);
  snprintf(l->api_url, sizeof(l->api_url), "%s", api_url);
  snprintf(l->ws_url, sizeof(l->ws_url), "%s", ws_url);
  l->m = m;
  l->next = m->links;
  m->links = l;
  return l;
}

/* --- link messages, in order, one request at a time ------------------------ */

static void pump(rlink_t *l);

static void on_sent(void *arg, int status, const char *location, const char *body, size_t len,
                    const char *err) {
  rlink_t *l = arg;
  (void)location, (void)body, (void)len;
  l->req = NULL;
  if (status < 200 || status > 299) {
    if (++l->tries < SEND_TRIES) {
      pump(l);
      return;
    }
    sfu_log(SFU_LOG_WARN, "rrelay", "link %s: node %s did not take a message (%s): dropped",
            l->link, l->node, err ? err : "refused");
  }
  l->tries = 0;
  json_array_remove(l->queue, 0);
  if (l->closing && json_array_size(l->queue) == 0) {
    link_free(l);
    return;
  }
  pump(l);
}

static void pump(rlink_t *l) {
  char url[400];
  if (l->req || json_array_size(l->queue) == 0) return;
  char *text = json_dumps(json_array_get(l->queue, 0), JSON_COMPACT);
  snprintf(url, sizeof(url), "%s/v1/node/links/%s", l->api_url, l->link);
  l->req = text ? sfu_httpc_request(sfu_fleet_api_client(l->m->fleet), "POST", url, l->m->auth,
                                    text, strlen(text), on_sent, l)
                : NULL;
  free(text);
  if (!l->req) { /* cannot even be sent: give it up */
    json_array_remove(l->queue, 0);
    sfu_log(SFU_LOG_WARN, "rrelay", "link %s: cannot send to %s", l->link, url);
  }
}

static void enqueue(rlink_t *l, json_t *msg) {
  if (l->closing) return;
  json_t *m = json_deep_copy(msg);
  json_object_set_new(m, "room_id", json_string(l->room_id));
  const char *type = json_string_value(json_object_get(m, "type"));
  if (type && strcmp(type, "link_close") == 0) l->closing = 1;
  json_array_append_new(l->queue, m);
  pump(l);
}

void sfu_rrelay_moderate(void *arg, const char *room_id, json_t *msg) {
  sfu_rrelay_t *m = arg;
  for (rlink_t *l = m->links; l; l = l->next)
    if (l->ws_url[0] && strcmp(l->room_id, room_id) == 0) enqueue(l, msg); /* (ours: the room's end) */
}

void sfu_rrelay_link_out(void *arg, const char *room_id, const char *link, json_t *msg) {
  sfu_rrelay_t *m = arg;
  rlink_t *l = link_of(m, link);
  if (!l || strcmp(l->room_id, room_id) != 0) {
    sfu_log(SFU_LOG_WARN, "rrelay", "link %s of room %s: no other node to send it to", link,
            room_id);
    return;
  }
  enqueue(l, msg);
}

json_t *sfu_rrelay_link_in(sfu_rrelay_t *m, const char *link, const char *body, size_t len,
                           int *status) {
  rlink_t *l = link_of(m, link);
  json_t *msg = json_loadb(body, len, 0, NULL);
  const char *type = json_string_value(json_object_get(msg, "type"));
  const char *room = json_string_value(json_object_get(msg, "room_id"));
  json_t *out;
  if (!msg || !type || !room) {
    *status = 400;
    out = json_pack("{s:{s:s, s:s}}", "error", "code", "invalid_body", "message",
                    "a link message: {type, room_id, ...}");
  } else if (!l || strcmp(l->room_id, room) != 0) {
    *status = 404;
    out = json_pack("{s:{s:s, s:s}}", "error", "code", "link_not_found", "message",
                    "no such link here");
  } else {
    json_object_set_new(msg, "link", json_string(link));
    json_object_del(msg, "room_id");
    int rv = sfu_supervisor_link_in(m->sup, l->room_id, link, msg);
    *status = rv == 0 ? 200 : rv == SFU_EINVAL ? 400 : 404;
    out = rv == 0 ? json_object()
          : rv == SFU_EINVAL
              ? json_pack("{s:{s:s, s:s}}", "error", "code", "invalid_body", "message",
                          "a malformed link message")
              : json_pack("{s:{s:s, s:s}}", "error", "code", "link_not_found", "message",
                          "its end here is gone");
    if (strcmp(type, "link_close") == 0 && !l->req && json_array_size(l->queue) == 0)
      link_free(l); /* the other end is gone: nothing more goes there */
    else if (strcmp(type, "link_close") == 0)
      l->closing = 1;
  }
  json_decref(msg);
  return out;
}

void sfu_rrelay_room_gone(sfu_rrelay_t *m, const sfu_room_rec_t *r) {
  json_t *close = json_pack("{s:s}", "type", "link_close");
  rlink_t *l, *next;
  for (l = m->links; l; l = next) {
    next = l->next; /* enqueue may free nothing now, but sends go on */
    if (strcmp(l->room_id, r->origin_id[0] ? r->origin_id : r->id) == 0 &&
        (!r->origin_id[0] || strcmp(l->link, r->id) == 0)) {
      json_object_set_new(close, "link", json_string(l->link));
      enqueue(l, close);
    }
  }
  json_decref(close);
}

json_t *sfu_rrelay_json(const sfu_rrelay_t *m, const char *room_id) {
  json_t *a = json_array();
  for (const rlink_t *l = m->links; l; l = l->next)
    if (strcmp(l->room_id, room_id) == 0 && l->ws_url[0])
      json_array_append_new(a, json_pack("{s:s, s:s, s:s}", "relay_id", l->link, "node",
                                         l->node, "ws_url", l->ws_url));
  return a;
}

/* --- asking another node for a relay ------------------------------------- */

static void adding_done(adding_t *a, int status, json_t *body) {
  a->done(a->arg, status, body);
  json_decref(a->body);
  free(a);
}

static json_t *error_json(const char *code, const char *fmt, const char *arg) {
  char msg[600];
  snprintf(msg, sizeof(msg), fmt, arg);
  return json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", msg);
}

static void on_accepted(void *arg, int status, const char *location, const char *body,
                        size_t len, const char *err) {
  adding_t *a = arg;
  (void)location;
  json_t *j = status ? json_loadb(body, len, 0, NULL) : NULL;
  const char *ws = json_string_value(json_object_get(j, "ws_url"));
  if (status != 201 || !ws) {
    sfu_log(SFU_LOG_WARN, "rrelay", "node %s did not start a relay of room %s: %s", a->node,
            a->room_id, err ? err : body);
    adding_done(a, 502, error_json("relay_failed", "the other node refused or failed: %s",
                                   err ? err : (body ? body : "")));
    json_decref(j);
    return;
  }
  rlink_t *l = link_new(a->m, a->relay_id, a->room_id, a->node, a->api_url, ws);
  if (!l) {
    adding_done(a, 500, error_json("out_of_memory", "%s", "out of memory"));
    json_decref(j);
    return;
  }
  sfu_log(SFU_LOG_INFO, "rrelay", "room %s: relay %s on node %s", a->room_id, a->relay_id,
          a->node);
  sfu_room_rec_t *r = sfu_supervisor_find(a->m->sup, a->room_id);
  json_t *mods = r ? sfu_supervisor_moderation_msgs(r) : NULL, *mod;
  size_t i;
  json_array_foreach(mods, i, mod) enqueue(l, mod); /* the room's moderation so far */
  json_decref(mods);
  adding_done(a, 201, json_pack("{s:s, s:s, s:s, s:s}", "relay_id", a->relay_id, "node",
                                a->node, "ws_url", ws, "state", "starting"));
  json_decref(j);
}

static void on_placed(void *arg, int rv, const sfu_fleet_node_t *node) {
  adding_t *a = arg;
  char url[300];
  if (rv != 0) {
    adding_done(a, rv == SFU_ENOENT ? 404 : 503,
                error_json(rv == SFU_ENOENT ? "node_not_found" : "fleet_unavailable",
                           "node %s cannot take a relay", a->node));
    return;
  }
  snprintf(a->api_url, sizeof(a->api_url), "%s", node->api_url);
  char *text = json_dumps(a->body, JSON_COMPACT);
  snprintf(url, sizeof(url), "%s/v1/node/relays", node->api_url);
  if (!text || !sfu_httpc_request(sfu_fleet_api_client(a->m->fleet), "POST", url, a->m->auth,
                                  text, strlen(text), on_accepted, a))
    adding_done(a, 502, error_json("relay_failed", "cannot reach %s", url));
  free(text);
}

void sfu_rrelay_add(sfu_rrelay_t *m, sfu_room_rec_t *r, const char *node, sfu_rrelay_done_cb done,
                    void *arg) {
  adding_t *a = calloc(1, sizeof(*a));
  if (!a) {
    done(arg, 500, error_json("out_of_memory", "%s", "out of memory"));
    return;
  }
  a->m = m;
  a->done = done;
  a->arg = arg;
  snprintf(a->room_id, sizeof(a->room_id), "%s", r->id);
  snprintf(a->node, sizeof(a->node), "%s", node);
  sfu_random_hex(a->relay_id, "rl_", 8);
  a->body = json_pack("{s:s, s:s, s:s, s:i, s:i, s:i, s:s, s:s}", "room_id", r->id, "relay_id",
                      a->relay_id, "name", r->name, "max_participants", r->max_participants,
                      "empty_timeout_s", r->empty_timeout_s, "max_audio_streams",
                      r->max_audio_streams, "origin_node", m->cfg->node_id,
                      "origin_api", m->api_url);
  sfu_fleet_place(m->fleet, m->cfg->region, node, NULL, on_placed, a);
}

json_t *sfu_rrelay_accept(sfu_rrelay_t *m, const char *body, size_t len, int *status) {
  json_t *j = json_loadb(body, len, 0, NULL);
  const char *room = json_string_value(json_object_get(j, "room_id"));
  const char *relay = json_string_value(json_object_get(j, "relay_id"));
  const char *name = json_string_value(json_object_get(j, "name"));
  const char *node = json_string_value(json_object_get(j, "origin_node"));
  const char *api = json_string_value(json_object_get(j, "origin_api"));
  json_t *maxp = json_object_get(j, "max_participants");
  json_t *empty = json_object_get(j, "empty_timeout_s");
  sfu_room_req_t req;
  sfu_room_rec_t *x;
  json_t *out;
  memset(&req, 0, sizeof(req));
  if (!room || !relay || !name || !node || !api || !json_is_integer(maxp) ||
      !json_is_integer(empty) || strlen(room) != SFU_ROOM_ID_LEN ||
      strlen(relay) != SFU_ROOM_ID_LEN || strncmp(relay, "rl_", 3) != 0 ||
      strlen(name) >= sizeof(req.name) || strlen(api) >= 256 ||
      json_integer_value(maxp) < 1 || json_integer_value(maxp) > m->cfg->max_participants ||
      json_integer_value(empty) < 1 || json_integer_value(empty) > 86400) {
    *status = 400;
    json_decref(j);
    return error_json("invalid_body", "%s",
                      "{room_id, relay_id, name, max_participants, empty_timeout_s, "
                      "origin_node, origin_api}");
  }
  snprintf(req.name, sizeof(req.name), "%s", name);
  req.max_participants = (int)json_integer_value(maxp);
  req.empty_timeout_s = (int)json_integer_value(empty);
  json_int_t audio = json_integer_value(json_object_get(j, "max_audio_streams"));
  req.max_audio_streams = audio > 0 && audio <= m->cfg->max_participants ? (int)audio : 0;
  int rv = sfu_supervisor_spawn_remote_relay(m->sup, room, relay, &req, &x);
  if (rv == 0 && !link_new(m, relay, room, node, api, "")) rv = SFU_ENOMEM;
  if (rv == 0) {
    *status = 201;
    out = json_pack("{s:s, s:s, s:s, s:i}", "relay_id", relay, "node", m->cfg->node_id,
                    "ws_url", m->ws_url, "pid", x->pid);
  } else {
    *status = rv == SFU_EEXIST ? 409 : rv == SFU_EDRAINING || rv == SFU_ECAPACITY ? 503 : 500;
    out = error_json(rv == SFU_EEXIST ? "relay_exists" : rv == SFU_EDRAINING ? "draining"
                     : rv == SFU_ECAPACITY ? "at_capacity" : "spawn_failed",
                     "cannot start the relay: %s", sfu_strerror(rv));
  }
  json_decref(j);
  return out;
}
