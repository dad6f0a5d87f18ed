/*
 * fleet.c -- the node's lease, its record and its rooms' keys in etcd
 * (fleet.h, docs/fleet.md).
 *
 * One timer, every third of the lease's TTL:
 *   no lease      -> grant one; then write the node record and claim every
 *                    live room again (a conflict is logged and counted:
 *                    another node took the name while this one was gone)
 *   a lease       -> keep it alive; an answer without a TTL means etcd
 *                    forgot it (it expired while etcd was out of reach):
 *                    every key under it is gone, so grant a new one at once
 *   then          -> rewrite the node record (fresh load), retry releases
 * At most one lease request is out at a time. The node counts as available
 * while etcd confirmed its lease within the TTL; placement and claims are
 * refused (SFU_EAGAIN) otherwise, and the rooms already running carry on.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sfu/base/log.h"
#include "sfu/base/sfu.h"
#include "sfu/base/vec.h"
#include "sfu/node/etcd.h"
#include "sfu/node/events.h"
#include "sfu/node/fleet.h"
#include "sfu/node/tls.h"

#define REQUEST_TIMEOUT_MS 3000  /* an etcd request */
#define API_TIMEOUT_MS 10000     /* a request to another node */
#define WATCH_IDLE_MS 3600000    /* a watch quiet this long is opened again */
#define WATCH_RETRY_MS 1000      /* after a watch ended */
#define MAX_LOST 10000           /* rooms of lost nodes remembered */
#define MAX_WATCH_LINE (4u << 20)

/* A room whose node died: reported as crashed for crashed_retention_s. */
typedef struct lost_s {
  char room_id[32];
  char name[SFU_ROOM_MAX_NAME + 1];
  char node_id[64];
  int64_t at_ms;
} lost_t;

/* A room's keys to delete, retried until etcd confirms. */
typedef struct release_s release_t;
struct release_s {
  release_t *next;
  char room_id[32];
  char name[SFU_ROOM_MAX_NAME + 1];
  int64_t lease;      /* the lease they were claimed under */
  int in_flight;
};

struct sfu_fleet_s {
  uv_loop_t *loop;
  const sfu_config_t *cfg;
  sfu_supervisor_t *sup;
  sfu_metrics_t *metrics;
  sfu_etcd_t *etcd;
  sfu_events_t *events;   /* the journal, or NULL */
  sfu_httpc_t *api;       /* to other nodes */
  char api_url[256];
  char ws_url[288];
  char node_key[256];     /* <prefix>/nodes/<node_id> */
  uv_timer_t timer;
  int64_t lease;          /* 0 = none */
  uint64_t confirmed_ms;  /* last time etcd confirmed the lease */
  int lease_in_flight;    /* grant or keepalive out */
  int put_in_flight, put_again;
  int leaving;
  void (*left)(void *arg); /* sfu_fleet_leave() finished */
  void *left_arg;
  uint64_t failures;      /* etcd requests failed since the last success */
  release_t *releases;
  /* the watch on <prefix>/: rooms of nodes that died */
  sfu_httpc_t *watch_http;
  sfu_httpc_req_t *watch;
  uv_timer_t watch_timer;
  char *wbuf;             /* an answer line not yet whole */
  size_t wlen;
  int64_t watch_rev;      /* last revision seen */
  SFU_VEC(lost_t) lost;   /* oldest first */
  uint64_t started_ms;
  /* forwarded packets per second, from the rooms' reports */
  uint64_t last_rtp_out, last_rate_ms;
  double pps;
};

/* Counted each time, logged once per streak of failures (etcd_ok() ends it). */
static void etcd_failed(sfu_fleet_t *f, const char *what, const char *err) {
  f->metrics->fleet_etcd_errors++;
  if (f->failures++ == 0) sfu_log(SFU_LOG_WARN, "fleet", "%s: %s", what, err);
}

static void etcd_ok(sfu_fleet_t *f) {
  if (f->failures)
    sfu_log(SFU_LOG_INFO, "fleet", "etcd answers again (%llu requests failed meanwhile)",
            (unsigned long long)f->failures);
  f->failures = 0;
}

static void key(const sfu_fleet_t *f, char *out, size_t n, const char *kind, const char *id) {
  snprintf(out, n, "%s/%s/%s", f->cfg->etcd_prefix, kind, id);
}

int sfu_fleet_available(const sfu_fleet_t *f) {
  return f->lease != 0 && !f->leaving &&
         sfu_now_ms() - f->confirmed_ms < (uint64_t)f->cfg->etcd_lease_ttl_s * 1000;
}


const char *sfu_fleet_node_id(const sfu_fleet_t *f) { return f->cfg->node_id; }

int64_t sfu_fleet_lease(const sfu_fleet_t *f) { return f->lease; }

void sfu_fleet_set_events(sfu_fleet_t *f, sfu_events_t *e) { f->events = e; }

/* <data_dir>/fleet-lease: the lease, for an sfud restarted after this one
 * died, which keeps it on (sfu_fleet_saved_lease) so that the node's keys
 * and its rooms' never lapse. */
static void lease_path(const sfu_config_t *cfg, char *out, size_t cap) {
  snprintf(out, cap, "%s/fleet-lease", cfg->data_dir);
}

static void save_lease(sfu_fleet_t *f) {
  char path[600];
  FILE *fp;
  lease_path(f->cfg, path, sizeof(path));
  if (!f->lease) {
    unlink(path);
  } else if ((fp = fopen(path, "w")) != NULL) {
    fprintf(fp, "%lld\n", (long long)f->lease);
    fclose(fp);
  }
}

int64_t sfu_fleet_saved_lease(const sfu_config_t *cfg) {
  char path[600];
  long long lease = 0;
  lease_path(cfg, path, sizeof(path));
  FILE *fp = fopen(path, "r");
  if (!fp) return 0;
  if (fscanf(fp, "%lld", &lease) != 1) lease = 0;
  fclose(fp);
  return lease;
}

void sfu_fleet_keep_lease(sfu_fleet_t *f, int64_t lease) {
  f->lease = lease;
  f->confirmed_ms = sfu_now_ms(); /* the previous process confirmed it just now */
}

sfu_httpc_t *sfu_fleet_api_client(sfu_fleet_t *f) { return f->api; }

json_t *sfu_fleet_status_json(const sfu_fleet_t *f) {
  char lease[24];
  snprintf(lease, sizeof(lease), "%lld", (long long)f->lease);
  return json_pack("{s:s, s:s, s:b, s:s, s:s}", "node_id", f->cfg->node_id, "region",
                   f->cfg->region, "registered", sfu_fleet_available(f), "lease_id", lease,
                   "etcd_url", sfu_etcd_url(f->etcd));
}

/* --- the node record --------------------------------------------------------------- */

static json_t *node_record(sfu_fleet_t *f) {
  int live, crashed, parts;
  uint64_t rtp_out = 0, now = sfu_now_ms();
  sfu_supervisor_counts(f->sup, &live, &crashed, &parts);
  sfu_supervisor_packets(f->sup, &rtp_out);
  if (f->last_rate_ms && now > f->last_rate_ms)
    f->pps = rtp_out >= f->last_rtp_out
                 ? (double)(rtp_out - f->last_rtp_out) * 1000.0 / (double)(now - f->last_rate_ms)
                 : 0; /* a room ended: its packets left the sum */
  f->last_rtp_out = rtp_out;
  f->last_rate_ms = now;
  return json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:i, s:i, s:i, s:i, s:f, s:i, s:f, s:I, s:I}",
                   "node_id", f->cfg->node_id, "api_url", f->api_url, "ws_url", f->ws_url,
                   "region", f->cfg->region, "version", sfu_version(), "draining",
                   sfu_supervisor_draining(f->sup), "max_rooms", f->cfg->max_rooms,
                   "max_participants_per_room", f->cfg->max_participants, "rooms", live,
                   "participants", parts, "loadavg_1m", sfu_loadavg_1m(), "cores",
                   (int)sysconf(_SC_NPROCESSORS_ONLN), "forwarded_pps", f->pps,
                   "started_at_ms", (json_int_t)f->started_ms, "updated_at_ms",
                   (json_int_t)sfu_wall_ms());
}

static json_t *put_op(const char *k, json_t *value, int64_t lease) {
  char *v = json_dumps(value, JSON_COMPACT);
  json_decref(value);
  char l[24];
  snprintf(l, sizeof(l), "%lld", (long long)lease);
  json_t *op = json_pack("{s:o, s:o, s:s}", "key", sfu_etcd_str(k), "value", sfu_etcd_str(v),
                         "lease", l);
  free(v);
  return op;
}

static void put_node(sfu_fleet_t *f);

static void on_node_put(void *arg, json_t *res, const char *err) {
  sfu_fleet_t *f = arg;
  f->put_in_flight = 0;
  if (err) etcd_failed(f, "writing the node record", err);
  (void)res;
  if (f->put_again) put_node(f);
}

static void put_node(sfu_fleet_t *f) {
  f->put_again = 0;
  if (!f->lease || f->leaving) return;
  if (f->put_in_flight) {
    f->put_again = 1;
    return;
  }
  f->put_in_flight = 1;
  if (!sfu_etcd_call(f->etcd, "/v3/kv/put", put_op(f->node_key, node_record(f), f->lease),
                     on_node_put, f))
    f->put_in_flight = 0;
}

void sfu_fleet_node_changed(sfu_fleet_t *f) { put_node(f); }

/* --- claims and releases ----------------------------------------------------------- */

static json_t *room_value(sfu_fleet_t *f, const char *room_id, const char *name) {
  return json_pack("{s:s, s:s, s:s, s:s, s:s, s:I}", "room_id", room_id, "name", name,
                   "node_id", f->cfg->node_id, "api_url", f->api_url, "ws_url", f->ws_url,
                   "created_at_ms", (json_int_t)sfu_wall_ms());
}

static json_t *compare(const char *k, const char *target, const char *field, int64_t v) {
  char s[24];
  snprintf(s, sizeof(s), "%lld", (long long)v);
  return json_pack("{s:o, s:s, s:s, s:s}", "key", sfu_etcd_str(k), "result", "EQUAL", "target",
                   target, field, s);
}

typedef struct {
  sfu_fleet_t *f;
  sfu_fleet_done_cb cb;
  void *arg;
} claim_t;

static void on_claimed(void *arg, json_t *res, const char *err) {
  claim_t *c = arg;
  if (err) etcd_failed(c->f, "claiming a room", err);
  int ok = res && json_is_true(json_object_get(res, "succeeded"));
  c->cb(c->arg, err ? SFU_EAGAIN : ok ? 0 : SFU_EEXIST);
  free(c);
}

/* Puts the room's keys under our lease: if both are absent (claim), or
 * whoever holds them (take: a room that moved here). */
static void claim_keys(sfu_fleet_t *f, const char *room_id, const char *name, int take,
                       sfu_fleet_done_cb cb, void *arg) {
  char k[512];
  if (!sfu_fleet_available(f)) {
    cb(arg, SFU_EAGAIN);
    return;
  }
  json_t *cmp = json_array(), *ops = json_array();
  key(f, k, sizeof(k), "rooms", room_id);
  if (!take) json_array_append_new(cmp, compare(k, "CREATE", "create_revision", 0));
  json_array_append_new(ops, json_pack("{s:o}", "request_put",
                                       put_op(k, room_value(f, room_id, name), f->lease)));
  if (name[0]) {
    key(f, k, sizeof(k), "names", name);
    if (!take) json_array_append_new(cmp, compare(k, "CREATE", "create_revision", 0));
    json_array_append_new(ops, json_pack("{s:o}", "request_put",
                                         put_op(k, room_value(f, room_id, name), f->lease)));
  }
  claim_t *c = malloc(sizeof(*c));
  c->f = f;
  c->cb = cb;
  c->arg = arg;
  if (!sfu_etcd_call(f->etcd, "/v3/kv/txn",
                     json_pack("{s:o, s:o, s:[]}", "compare", cmp, "success", ops, "failure"),
                     on_claimed, c)) {
    free(c);
    cb(arg, SFU_EAGAIN);
  }
}

void sfu_fleet_claim(sfu_fleet_t *f, const char *room_id, const char *name,
                     sfu_fleet_done_cb cb, void *arg) {
  claim_keys(f, room_id, name, 0, cb, arg);
}

void sfu_fleet_take(sfu_fleet_t *f, const char *room_id, const char *name,
                    sfu_fleet_done_cb cb, void *arg) {
  claim_keys(f, room_id, name, 1, cb, arg);
}

/* Whether the keys were deleted or were not ours (never claimed, or the
 * lease already gone), there is nothing left to do; an error is retried at
 * the next tick. */
static void on_released(void *arg, json_t *res, const char *err) {
  release_t *r = arg;
  (void)res;
  r->in_flight = 0;
  if (!err) r->lease = 0; /* done: swept at the next tick */
}

static void send_release(sfu_fleet_t *f, release_t *r) {
  char k[512];
  json_t *cmp = json_array(), *ops = json_array();
  key(f, k, sizeof(k), "rooms", r->room_id);
  json_array_append_new(cmp, compare(k, "LEASE", "lease", r->lease));
  json_array_append_new(ops, json_pack("{s:{s:o}}", "request_delete_range", "key", sfu_etcd_str(k)));
  if (r->name[0]) {
    key(f, k, sizeof(k), "names", r->name);
    json_array_append_new(cmp, compare(k, "LEASE", "lease", r->lease));
    json_array_append_new(ops,
                          json_pack("{s:{s:o}}", "request_delete_range", "key", sfu_etcd_str(k)));
  }
  r->in_flight = 1;
  if (!sfu_etcd_call(f->etcd, "/v3/kv/txn",
                     json_pack("{s:o, s:o, s:[]}", "compare", cmp, "success", ops, "failure"),
                     on_released, r))
    r->in_flight = 0;
}

/* Sends what is pending; frees what is done or no longer ours to free. */
static void sweep_releases(sfu_fleet_t *f) {
  for (release_t **pp = &f->releases, *r; (r = *pp) != NULL;) {
    if (!r->in_flight && (r->lease == 0 || r->lease != f->lease)) {
      *pp = r->next; /* done, or its lease is gone and its keys with it */
      free(r);
      continue;
    }
    if (!r->in_flight && sfu_fleet_available(f)) send_release(f, r);
    pp = &r->next;
  }
}

void sfu_fleet_release(sfu_fleet_t *f, const char *room_id, const char *name) {
  if (!f->lease || f->leaving) return; /* no key of ours exists, or all go with the lease */
  release_t *r = calloc(1, sizeof(*r));
  if (!r) return;
  snprintf(r->room_id, sizeof(r->room_id), "%s", room_id);
  snprintf(r->name, sizeof(r->name), "%s", name);
  r->lease = f->lease;
  r->next = f->releases;
  f->releases = r;
  if (sfu_fleet_available(f)) send_release(f, r);
}

/* --- the lease ---------------------------------------------------------------------- */

typedef struct {
  sfu_fleet_t *f;
  char room_id[32];
} reclaim_t;

static void on_reclaimed(void *arg, int rv) {
  reclaim_t *rc = arg;
  if (rv == SFU_EEXIST) {
    rc->f->metrics->fleet_claim_conflicts++;
    sfu_log(SFU_LOG_ERROR, "fleet",
            "room %s runs here but another node holds its id or name in etcd", rc->room_id);
  }
  free(rc);
}

/* After a new lease: this node's record, and every live room's keys. */
static void register_all(sfu_fleet_t *f) {
  put_node(f);
  json_t *rooms = sfu_supervisor_list_json(f->sup);
  size_t i;
  json_t *r;
  json_array_foreach(rooms, i, r) {
    const char *st = json_string_value(json_object_get(r, "state"));
    if (strcmp(st, "starting") != 0 && strcmp(st, "running") != 0) continue;
    const char *id = json_string_value(json_object_get(r, "room_id"));
    const char *name = json_string_value(json_object_get(r, "name"));
    reclaim_t *rc = calloc(1, sizeof(*rc));
    if (!rc) continue;
    rc->f = f;
    snprintf(rc->room_id, sizeof(rc->room_id), "%s", id);
    sfu_fleet_claim(f, id, name ? name : "", on_reclaimed, rc);
  }
  json_decref(rooms);
}

static void tick(sfu_fleet_t *f);

static void on_lease(void *arg, json_t *res, const char *err) {
  sfu_fleet_t *f = arg;
  int granting = f->lease == 0;
  f->lease_in_flight = 0;
  if (f->leaving) return;
  if (err) {
    etcd_failed(f, granting ? "taking a lease" : "keeping the lease alive", err);
    return;
  }
  int64_t ttl = sfu_etcd_int(json_object_get(res, "TTL"));
  if (ttl <= 0) { /* etcd forgot the lease: every key under it is gone */
    f->metrics->fleet_leases_lost++;
    sfu_log(SFU_LOG_WARN, "fleet", "lease %lld expired in etcd; registering again",
            (long long)f->lease);
    f->lease = 0;
    sweep_releases(f);
    tick(f);
    return;
  }
  f->confirmed_ms = sfu_now_ms();
  etcd_ok(f);
  if (granting) {
    f->lease = sfu_etcd_int(json_object_get(res, "ID"));
    f->metrics->fleet_registrations++;
    sfu_log(SFU_LOG_INFO, "fleet", "registered as %s in %s (lease %lld, ttl %lld s)",
            f->cfg->node_id, sfu_etcd_url(f->etcd), (long long)f->lease, (long long)ttl);
    save_lease(f);
    register_all(f);
    return;
  }
  put_node(f);
  sweep_releases(f);
}

static void tick(sfu_fleet_t *f) {
  char id[24];
  if (f->lease_in_flight || f->leaving) return;
  f->lease_in_flight = 1;
  json_t *req;
  const char *path;
  if (f->lease == 0) {
    path = "/v3/lease/grant";
    req = json_pack("{s:i}", "TTL", f->cfg->etcd_lease_ttl_s);
  } else {
    path = "/v3/lease/keepalive";
    snprintf(id, sizeof(id), "%lld", (long long)f->lease);
    req = json_pack("{s:s}", "ID", id);
  }
  if (!sfu_etcd_call(f->etcd, path, req, on_lease, f)) f->lease_in_flight = 0;
}

static void on_timer(uv_timer_t *t) { tick(t->data); }

static void on_revoked(void *arg, json_t *res, const char *err) {
  sfu_fleet_t *f = arg;
  (void)res;
  if (err) sfu_log(SFU_LOG_WARN, "fleet", "revoking the lease: %s (it expires by itself)", err);
  if (f->left) f->left(f->left_arg);
}

static void on_marked_leaving(void *arg, json_t *res, const char *err) {
  sfu_fleet_t *f = arg;
  char id[24];
  (void)res, (void)err;
  snprintf(id, sizeof(id), "%lld", (long long)f->lease);
  if (!sfu_etcd_call(f->etcd, "/v3/lease/revoke", json_pack("{s:s}", "ID", id), on_revoked, f))
    on_revoked(f, NULL, "cannot send the request");
}

void sfu_fleet_leave(sfu_fleet_t *f, void (*done)(void *arg), void *arg) {
  if (f->leaving) return;
  int reachable = sfu_fleet_available(f);
  char path[600];
  lease_path(f->cfg, path, sizeof(path));
  unlink(path); /* a clean stop: nothing to keep on */
  f->leaving = 1;
  f->left = done;
  f->left_arg = arg;
  uv_timer_stop(&f->timer);
  uv_timer_stop(&f->watch_timer);
  if (f->watch) sfu_httpc_cancel(f->watch);
  f->watch = NULL;
  if (!reachable) { /* no lease, or etcd out of reach: the lease expires by itself */
    if (done) done(arg);
    return;
  }
  sfu_log(SFU_LOG_INFO, "fleet", "leaving the fleet: revoking lease %lld", (long long)f->lease);
  /* first the record marked as leaving, so that watchers do not take its
   * rooms for crashed when the lease goes, then the lease */
  json_t *rec = node_record(f);
  json_object_set_new(rec, "leaving", json_true());
  if (!sfu_etcd_call(f->etcd, "/v3/kv/put", put_op(f->node_key, rec, f->lease),
                     on_marked_leaving, f))
    on_marked_leaving(f, NULL, "cannot send the request");
}

/* --- reading the fleet --------------------------------------------------------------- */

typedef struct {
  sfu_fleet_t *f;
  char region[64], pin[64], exclude[64];
  sfu_fleet_node_cb node_cb;
  sfu_fleet_json_cb json_cb;
  void *arg;
} read_t;

static json_t *range_op(const char *k, int prefix) {
  json_t *r = json_pack("{s:o}", "key", sfu_etcd_str(k));
  if (prefix) json_object_set_new(r, "range_end", sfu_etcd_prefix_end(k));
  return json_pack("{s:o}", "request_range", r);
}

/* The values of the i-th range answer of a transaction, parsed. */
static json_t *range_values(json_t *res, size_t i) {
  json_t *out = json_array(), *kv;
  json_t *kvs = json_object_get(
      json_object_get(json_array_get(json_object_get(res, "responses"), i), "response_range"),
      "kvs");
  size_t j;
  json_array_foreach(kvs, j, kv) {
    json_t *v = sfu_etcd_kv_json(kv);
    if (json_is_object(v))
      json_array_append_new(out, v);
    else
      json_decref(v);
  }
  return out;
}

/* The error a read gets when etcd is not asked (no confirmed lease). */
static const char not_asked[] = "this node is not registered in etcd";

static void read_txn(sfu_fleet_t *f, json_t *ops, sfu_etcd_cb cb, read_t *rd) {
  if (!sfu_fleet_available(f)) {
    json_decref(ops);
    cb(rd, NULL, not_asked);
  } else if (!sfu_etcd_call(f->etcd, "/v3/kv/txn", json_pack("{s:o}", "success", ops), cb, rd)) {
    cb(rd, NULL, "cannot send the request");
  }
}

static void read_failed(read_t *rd, const char *what, const char *err) {
  if (err != not_asked) etcd_failed(rd->f, what, err);
}

static void node_of(const json_t *v, sfu_fleet_node_t *n) {
  memset(n, 0, sizeof(*n));
  snprintf(n->node_id, sizeof(n->node_id), "%s", json_string_value(json_object_get(v, "node_id")) ?: "");
  snprintf(n->api_url, sizeof(n->api_url), "%s", json_string_value(json_object_get(v, "api_url")) ?: "");
  snprintf(n->ws_url, sizeof(n->ws_url), "%s", json_string_value(json_object_get(v, "ws_url")) ?: "");
  snprintf(n->region, sizeof(n->region), "%s", json_string_value(json_object_get(v, "region")) ?: "");
  n->draining = json_is_true(json_object_get(v, "draining"));
  n->max_rooms = (int)json_integer_value(json_object_get(v, "max_rooms"));
  n->participants = (int)json_integer_value(json_object_get(v, "participants"));
}

/* nodes (each with "rooms_claimed") and rooms of a snapshot answer. */
static json_t *snapshot_of(json_t *res) {
  json_t *nodes = range_values(res, 0), *rooms = range_values(res, 1), *n, *r;
  size_t i, j;
  json_array_foreach(nodes, i, n) {
    int count = 0;
    const char *id = json_string_value(json_object_get(n, "node_id"));
    json_array_foreach(rooms, j, r) {
      const char *owner = json_string_value(json_object_get(r, "node_id"));
      count += id && owner && strcmp(id, owner) == 0;
    }
    json_object_set_new(n, "rooms_claimed", json_integer(count));
  }
  return json_pack("{s:o, s:o}", "nodes", nodes, "rooms", rooms);
}

static void snapshot_ops(sfu_fleet_t *f, json_t **ops) {
  char k[512];
  *ops = json_array();
  snprintf(k, sizeof(k), "%s/nodes/", f->cfg->etcd_prefix);
  json_array_append_new(*ops, range_op(k, 1));
  snprintf(k, sizeof(k), "%s/rooms/", f->cfg->etcd_prefix);
  json_array_append_new(*ops, range_op(k, 1));
}

static void on_placement_read(void *arg, json_t *res, const char *err) {
  read_t *rd = arg;
  sfu_fleet_node_t best, cand;
  int found = 0, rv = SFU_ECAPACITY;
  double best_share = 0;
  if (err) {
    read_failed(rd, "placing a room", err);
    rd->node_cb(rd->arg, SFU_EAGAIN, NULL);
    free(rd);
    return;
  }
  json_t *snap = snapshot_of(res), *n;
  size_t i;
  if (rd->pin[0]) rv = SFU_ENOENT;
  json_array_foreach(json_object_get(snap, "nodes"), i, n) {
    node_of(n, &cand);
    cand.rooms = (int)json_integer_value(json_object_get(n, "rooms_claimed"));
    if (rd->pin[0]) {
      if (strcmp(cand.node_id, rd->pin) != 0) continue;
      rv = cand.draining ? SFU_EDRAINING : cand.rooms >= cand.max_rooms ? SFU_ECAPACITY : 0;
      if (rv == 0) best = cand, found = 1;
      break;
    }
    if (strcmp(cand.region, rd->region) != 0 || cand.draining || cand.max_rooms <= 0 ||
        cand.rooms >= cand.max_rooms || strcmp(cand.node_id, rd->exclude) == 0)
      continue;
    double share = (double)cand.rooms / cand.max_rooms;
    if (!found || share < best_share ||
        (share == best_share && (cand.participants < best.participants ||
                                 (cand.participants == best.participants &&
                                  strcmp(cand.node_id, best.node_id) < 0)))) {
      best = cand;
      best_share = share;
      found = 1;
    }
  }
  json_decref(snap);
  rd->node_cb(rd->arg, found ? 0 : rv, found ? &best : NULL);
  free(rd);
}

void sfu_fleet_place(sfu_fleet_t *f, const char *region, const char *pin,
                     const char *exclude, sfu_fleet_node_cb cb, void *arg) {
  read_t *rd = calloc(1, sizeof(*rd));
  json_t *ops;
  rd->f = f;
  snprintf(rd->region, sizeof(rd->region), "%s", region && region[0] ? region : f->cfg->region);
  snprintf(rd->pin, sizeof(rd->pin), "%s", pin ? pin : "");
  snprintf(rd->exclude, sizeof(rd->exclude), "%s", exclude ? exclude : "");
  rd->node_cb = cb;
  rd->arg = arg;
  snapshot_ops(f, &ops);
  read_txn(f, ops, on_placement_read, rd);
}

static void on_lookup_read(void *arg, json_t *res, const char *err) {
  read_t *rd = arg;
  sfu_fleet_node_t owner;
  if (err) {
    read_failed(rd, "finding a room", err);
    rd->node_cb(rd->arg, SFU_EAGAIN, NULL);
    free(rd);
    return;
  }
  json_t *by_id = range_values(res, 0), *by_name = range_values(res, 1);
  json_t *v = json_array_size(by_id) ? json_array_get(by_id, 0) : json_array_get(by_name, 0);
  if (v) node_of(v, &owner);
  rd->node_cb(rd->arg, v ? 0 : SFU_ENOENT, v ? &owner : NULL);
  json_decref(by_id);
  json_decref(by_name);
  free(rd);
}

void sfu_fleet_lookup(sfu_fleet_t *f, const char *id, sfu_fleet_node_cb cb, void *arg) {
  char k[512];
  read_t *rd = calloc(1, sizeof(*rd));
  rd->f = f;
  rd->node_cb = cb;
  rd->arg = arg;
  json_t *ops = json_array();
  key(f, k, sizeof(k), "rooms", id);
  json_array_append_new(ops, range_op(k, 0));
  key(f, k, sizeof(k), "names", id);
  json_array_append_new(ops, range_op(k, 0));
  read_txn(f, ops, on_lookup_read, rd);
}

static json_t *lost_json(const lost_t *l);
static void prune_lost(sfu_fleet_t *f);

static void on_snapshot_read(void *arg, json_t *res, const char *err) {
  read_t *rd = arg;
  if (err) {
    read_failed(rd, "reading the fleet", err);
    rd->json_cb(rd->arg, SFU_EAGAIN, NULL);
  } else {
    json_t *snap = snapshot_of(res), *lost = json_array();
    prune_lost(rd->f);
    for (int i = 0; i < rd->f->lost.n; i++)
      json_array_append_new(lost, lost_json(&rd->f->lost.items[i]));
    json_object_set_new(snap, "lost_rooms", lost);
    rd->json_cb(rd->arg, 0, snap);
  }
  free(rd);
}

void sfu_fleet_snapshot(sfu_fleet_t *f, sfu_fleet_json_cb cb, void *arg) {
  read_t *rd = calloc(1, sizeof(*rd));
  json_t *ops;
  rd->f = f;
  rd->json_cb = cb;
  rd->arg = arg;
  snapshot_ops(f, &ops);
  read_txn(f, ops, on_snapshot_read, rd);
}


/* --- the watch: rooms of nodes that died --------------------------------------------- */

static void forget_lost(sfu_fleet_t *f, const char *room_id) {
  for (int i = 0; i < f->lost.n; i++) {
    if (strcmp(f->lost.items[i].room_id, room_id) == 0) {
      memmove(&f->lost.items[i], &f->lost.items[i + 1],
              (size_t)(f->lost.n - i - 1) * sizeof(lost_t));
      f->lost.n--;
      return;
    }
  }
}

static void prune_lost(sfu_fleet_t *f) {
  int64_t cutoff = sfu_wall_ms() - (int64_t)f->cfg->crashed_retention_s * 1000;
  int drop = 0;
  while (drop < f->lost.n && (f->lost.items[drop].at_ms <= cutoff || f->lost.n - drop > MAX_LOST))
    drop++;
  if (drop) {
    memmove(f->lost.items, f->lost.items + drop, (size_t)(f->lost.n - drop) * sizeof(lost_t));
    f->lost.n -= drop;
  }
}

/* The key of an event, without "<prefix>/": "nodes/x", "rooms/rm_..". */
static int event_key(const char *prefix, json_t *ev, char *out, size_t n) {
  char *k;
  size_t len, plen = strlen(prefix) + 1;
  if (sfu_etcd_decode(json_object_get(json_object_get(ev, "kv"), "key"), &k, &len) != 0)
    return -1;
  int ok = len > plen && strncmp(k, prefix, plen - 1) == 0 && k[plen - 1] == '/' &&
           strlen(k) == len; /* no NUL inside */
  if (ok) snprintf(out, n, "%s", k + plen);
  free(k);
  return ok ? 0 : -1;
}

int64_t sfu_fleet_read_watch(const char *prefix, json_t *msg, const sfu_fleet_watch_cbs_t *cbs,
                             void *arg, int64_t *compacted) {
  json_t *res = json_object_get(msg, "result"), *events, *ev, *gone_nodes = json_object();
  char k[512];
  size_t i;
  *compacted = 0;
  if (json_is_true(json_object_get(res, "canceled")))
    *compacted = sfu_etcd_int(json_object_get(res, "compact_revision"));
  events = json_object_get(res, "events");
  json_array_foreach(events, i, ev) {
    const char *type = json_string_value(json_object_get(ev, "type"));
    if (!type || strcmp(type, "DELETE") != 0 || event_key(prefix, ev, k, sizeof(k)) != 0 ||
        strncmp(k, "nodes/", 6) != 0)
      continue;
    json_t *prev = sfu_etcd_kv_json(json_object_get(ev, "prev_kv"));
    if (json_is_object(prev) && !json_is_true(json_object_get(prev, "leaving")))
      json_object_set_new(gone_nodes, k + 6, json_true());
    json_decref(prev);
  }
  json_array_foreach(events, i, ev) {
    const char *type = json_string_value(json_object_get(ev, "type"));
    if (event_key(prefix, ev, k, sizeof(k)) != 0 || strncmp(k, "rooms/", 6) != 0 || !k[6] ||
        strchr(k + 6, '/'))
      continue; /* not a room key of this fleet */
    if (!type || strcmp(type, "DELETE") != 0) { /* a PUT */
      cbs->back(arg, k + 6);
      continue;
    }
    json_t *prev = sfu_etcd_kv_json(json_object_get(ev, "prev_kv"));
    const char *node = json_string_value(json_object_get(prev, "node_id"));
    const char *name = json_string_value(json_object_get(prev, "name"));
    if (node && json_object_get(gone_nodes, node)) cbs->lost(arg, k + 6, name ? name : "", node);
    json_decref(prev);
  }
  json_decref(gone_nodes);
  return sfu_etcd_int(json_object_get(json_object_get(res, "header"), "revision"));
}

static void report_lost(sfu_fleet_t *f, const lost_t *l);

static void watch_lost(void *arg, const char *room_id, const char *name, const char *node) {
  sfu_fleet_t *f = arg;
  lost_t l;
  memset(&l, 0, sizeof(l));
  snprintf(l.room_id, sizeof(l.room_id), "%.31s", room_id);
  snprintf(l.name, sizeof(l.name), "%.64s", name);
  snprintf(l.node_id, sizeof(l.node_id), "%.63s", node);
  l.at_ms = sfu_wall_ms();
  forget_lost(f, l.room_id);
  if (sfu_vec_push(&f->lost, l) == 0)
    sfu_log(SFU_LOG_WARN, "fleet", "room %s crashed with its node %s (lease expired)", l.room_id,
            l.node_id);
  report_lost(f, &l);
}

typedef struct {
  sfu_fleet_t *f;
  lost_t room;
} report_t;

static void on_report_claimed(void *arg, json_t *res, const char *err) {
  report_t *rp = arg;
  if (err) etcd_failed(rp->f, "claiming the report of a lost room", err);
  if (res && json_is_true(json_object_get(res, "succeeded")) && rp->f->events)
    sfu_events_emit(rp->f->events, "room_crashed", rp->room.room_id,
                    json_pack("{s:s, s:s, s:s}", "end_reason", "node_lost", "node_id",
                              rp->room.node_id, "name", rp->room.name));
  free(rp);
}

/* Every node sees the loss; the one that creates lost/<room_id> first
 * journals it. */
static void report_lost(sfu_fleet_t *f, const lost_t *l) {
  char k[512];
  if (!sfu_fleet_available(f)) return;
  report_t *rp = malloc(sizeof(*rp));
  if (!rp) return;
  rp->f = f;
  rp->room = *l;
  key(f, k, sizeof(k), "lost", l->room_id);
  json_t *value = json_pack("{s:s, s:s, s:s}", "room_id", l->room_id, "node_id", l->node_id,
                            "reported_by", f->cfg->node_id);
  json_t *txn = json_pack("{s:[o], s:[{s:o}], s:[]}", "compare",
                          compare(k, "CREATE", "create_revision", 0), "success", "request_put",
                          put_op(k, value, f->lease), "failure");
  if (!sfu_etcd_call(f->etcd, "/v3/kv/txn", txn, on_report_claimed, rp)) free(rp);
}

static void watch_back(void *arg, const char *room_id) { forget_lost(arg, room_id); }

static void on_watch_message(sfu_fleet_t *f, json_t *msg) {
  static const sfu_fleet_watch_cbs_t cbs = {watch_lost, watch_back};
  int64_t compacted, rev = sfu_fleet_read_watch(f->cfg->etcd_prefix, msg, &cbs, f, &compacted);
  if (rev > f->watch_rev) f->watch_rev = rev;
  if (compacted > 0) f->watch_rev = compacted - 1; /* history gone: go on from there */
  prune_lost(f);
}

static void on_watch_data(void *arg, const char *data, size_t len) {
  sfu_fleet_t *f = arg;
  if (f->wlen + len > MAX_WATCH_LINE) f->wlen = 0; /* not etcd: drop it */
  char *b = realloc(f->wbuf, f->wlen + len);
  if (!b) return;
  f->wbuf = b;
  memcpy(f->wbuf + f->wlen, data, len);
  f->wlen += len;
  size_t start = 0;
  for (size_t i = 0; i < f->wlen; i++) {
    if (f->wbuf[i] != '\n') continue;
    json_t *msg = json_loadb(f->wbuf + start, i - start, 0, NULL);
    if (msg) on_watch_message(f, msg);
    json_decref(msg);
    start = i + 1;
  }
  memmove(f->wbuf, f->wbuf + start, f->wlen - start);
  f->wlen -= start;
}

static void start_watch(sfu_fleet_t *f);

static void on_watch_timer(uv_timer_t *t) { start_watch(t->data); }

static void on_watch_end(void *arg, int status, const char *location, const char *body,
                         size_t len, const char *err) {
  sfu_fleet_t *f = arg;
  (void)status, (void)location, (void)body, (void)len, (void)err;
  f->watch = NULL;
  f->wlen = 0;
  if (!f->leaving) uv_timer_start(&f->watch_timer, on_watch_timer, WATCH_RETRY_MS, 0);
}

static void start_watch(sfu_fleet_t *f) {
  char k[512], url[320], rev[24];
  if (f->watch || f->leaving) return;
  snprintf(k, sizeof(k), "%s/", f->cfg->etcd_prefix);
  json_t *create = json_pack("{s:o, s:o, s:b}", "key", sfu_etcd_str(k), "range_end",
                             sfu_etcd_prefix_end(k), "prev_kv", 1);
  if (f->watch_rev) {
    snprintf(rev, sizeof(rev), "%lld", (long long)(f->watch_rev + 1));
    json_object_set_new(create, "start_revision", json_string(rev));
  }
  json_t *req = json_pack("{s:o}", "create_request", create);
  char *body = json_dumps(req, JSON_COMPACT);
  json_decref(req);
  snprintf(url, sizeof(url), "%s/v3/watch", sfu_etcd_url(f->etcd));
  f->watch = sfu_httpc_stream(f->watch_http, "POST", url, "Content-Type: application/json\r\n",
                              body, strlen(body), on_watch_data, on_watch_end, f);
  free(body);
  if (!f->watch) uv_timer_start(&f->watch_timer, on_watch_timer, WATCH_RETRY_MS, 0);
}

static json_t *lost_json(const lost_t *l) {
  return json_pack("{s:s, s:s, s:s, s:s, s:s, s:I}", "room_id", l->room_id, "name", l->name,
                   "state", "crashed", "end_reason", "node_lost", "node_id", l->node_id,
                   "ended_at_ms", (json_int_t)l->at_ms);
}

json_t *sfu_fleet_lost_json(sfu_fleet_t *f, const char *id) {
  prune_lost(f);
  for (int i = f->lost.n; i-- > 0;) {
    const lost_t *l = &f->lost.items[i];
    if (strcmp(l->room_id, id) == 0 || (l->name[0] && strcmp(l->name, id) == 0))
      return lost_json(l);
  }
  return NULL;
}

/* --- start --------------------------------------------------------------------------- */

int sfu_fleet_start(sfu_fleet_t **out, uv_loop_t *loop, const sfu_config_t *cfg,
                    sfu_supervisor_t *sup, sfu_metrics_t *metrics, const char *api_url,
                    const char *ws_url) {
  char err[512];
  SSL_CTX *ssl = NULL;
  *out = NULL;
  if (strncmp(cfg->etcd_url, "https://", 8) == 0 || strncmp(api_url, "https://", 8) == 0 ||
      cfg->fleet_tls_ca_file[0]) {
    ssl = sfu_tls_client_ctx(cfg->fleet_tls_ca_file, "", err, sizeof(err));
    if (!ssl) {
      sfu_log(SFU_LOG_ERROR, "fleet", "%s", err);
      return SFU_EINVAL;
    }
  }
  sfu_fleet_t *f = calloc(1, sizeof(*f));
  if (!f) {
    if (ssl) SSL_CTX_free(ssl);
    return SFU_ENOMEM;
  }
  if (sfu_etcd_create(&f->etcd, loop, cfg->etcd_url, ssl, REQUEST_TIMEOUT_MS) != 0 ||
      sfu_httpc_create(&f->api, loop, ssl, API_TIMEOUT_MS) != 0 ||
      sfu_httpc_create(&f->watch_http, loop, ssl, WATCH_IDLE_MS) != 0) {
    free(f); /* start-up failure: sfud exits */
    if (ssl) SSL_CTX_free(ssl);
    return SFU_ENOMEM;
  }
  if (ssl) SSL_CTX_free(ssl); /* the client keeps its own reference */
  f->loop = loop;
  f->cfg = cfg;
  f->sup = sup;
  f->metrics = metrics;
  f->started_ms = (uint64_t)sfu_wall_ms();
  snprintf(f->api_url, sizeof(f->api_url), "%s", api_url);
  snprintf(f->ws_url, sizeof(f->ws_url), "%s", ws_url);
  key(f, f->node_key, sizeof(f->node_key), "nodes", cfg->node_id);
  uv_timer_init(loop, &f->timer);
  f->timer.data = f;
  uint64_t every = (uint64_t)cfg->etcd_lease_ttl_s * 1000 / 3;
  uv_timer_start(&f->timer, on_timer, 0, every < 500 ? 500 : every);
  uv_unref((uv_handle_t *)&f->timer);
  uv_timer_init(loop, &f->watch_timer);
  f->watch_timer.data = f;
  uv_unref((uv_handle_t *)&f->watch_timer);
  start_watch(f);
  *out = f;
  return 0;
}
