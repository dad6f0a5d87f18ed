/*
 * fleet.h -- this node as a member of a fleet kept in etcd (docs/fleet.md).
 *
 * With etcd_url set, sfud holds a lease (etcd_lease_ttl_s) and keeps under
 * it:
 *
 *   <prefix>/nodes/<node_id>   this node: URLs, region, capacity, load,
 *                              draining (rewritten every keepalive, ~TTL/3)
 *   <prefix>/rooms/<room_id>   each live room of this node: its id, name,
 *                              node and the node's URLs
 *   <prefix>/names/<name>      the same, for a named room: claimed with
 *                              rooms/<room_id> in one transaction that
 *                              requires both to be absent, so a name is
 *                              never live on two nodes
 *
 * A room's keys go when it ends (a transaction that deletes them only if
 * they still hold this node's lease), and all of them when the lease ends:
 * sfud stops, or dies and its lease expires. When the lease is found gone
 * (etcd forgot it) the node takes a new one and claims its live rooms
 * again.
 *
 * Placement and lookups read etcd in one transaction (every node and every
 * room key), so they see one revision. Every callback may run before the
 * call returns (when etcd cannot be asked at all).
 */
#ifndef SFU_FLEET_H
#define SFU_FLEET_H

#include <jansson.h>
#include <uv.h>

#include "sfu/node/config.h"
#include "sfu/node/metrics.h"
#include "sfu/node/supervisor.h"

typedef struct sfu_fleet_s sfu_fleet_t;

/* A node as the fleet sees it. */
typedef struct sfu_fleet_node_s {
  char node_id[64];
  char api_url[256];
  char ws_url[288];
  char region[64];
  int draining;
  int max_rooms;
  int rooms;        /* its room keys in etcd */
  int participants; /* from its own record */
} sfu_fleet_node_t;

/* api_url and ws_url: where other nodes and clients reach this one. */
int sfu_fleet_start(sfu_fleet_t **out, uv_loop_t *loop, const sfu_config_t *cfg,
                    sfu_supervisor_t *sup, sfu_metrics_t *metrics, const char *api_url,
                    const char *ws_url);
const char *sfu_fleet_node_id(const sfu_fleet_t *f);
/* Where a room lost with its node is reported (room_crashed, node_lost),
 * by the one node that claims <prefix>/lost/<room_id> first. */
struct sfu_events_s;
void sfu_fleet_set_events(sfu_fleet_t *f, struct sfu_events_s *e);
/* Upgrade: the lease (0 = none), and the new process keeping it on (its
 * first keepalive checks it; if etcd forgot it, the node registers anew). */
int64_t sfu_fleet_lease(const sfu_fleet_t *f);
void sfu_fleet_keep_lease(sfu_fleet_t *f, int64_t lease);
/* The lease a previous sfud of this data_dir held (it died): 0 if none. */
int64_t sfu_fleet_saved_lease(const sfu_config_t *cfg);
/* 1 while this node holds a lease that etcd confirmed within its TTL. */
int sfu_fleet_available(const sfu_fleet_t *f);
/* Something in this node's record changed (draining): rewrite it now. */
void sfu_fleet_node_changed(sfu_fleet_t *f);
/* Stopping: the node record is marked as leaving, then the lease revoked,
 * freeing every key at once; done(arg) runs when etcd answered (or not). */
void sfu_fleet_leave(sfu_fleet_t *f, void (*done)(void *arg), void *arg);
/* The client other nodes' API is asked through (10 s per request). */
struct sfu_httpc_s *sfu_fleet_api_client(sfu_fleet_t *f);
/* {"node_id", "region", "registered", "lease_id", "etcd_url"} for GET /v1/node. */
json_t *sfu_fleet_status_json(const sfu_fleet_t *f);

/*
 * Chooses a node for a new room: the pinned node if `pin` is set, else the
 * non-draining node of `region` with room to spare that has the smallest
 * share of its max_rooms in use (then fewer participants, then node_id),
 * other than `exclude` (may be NULL: a node that just failed to answer).
 * rv: 0 and the node; SFU_ENOENT (the pinned node is not in the fleet);
 * SFU_EDRAINING (it is draining); SFU_ECAPACITY (no node can take it);
 * SFU_EAGAIN (etcd cannot be asked).
 */
typedef void (*sfu_fleet_node_cb)(void *arg, int rv, const sfu_fleet_node_t *node);
void sfu_fleet_place(sfu_fleet_t *f, const char *region, const char *pin,
                     const char *exclude, sfu_fleet_node_cb cb, void *arg);
/* The node that runs room `id` (a room_id or a live room's name): rv 0,
 * SFU_ENOENT, SFU_EAGAIN. Only node_id, api_url and ws_url are set. */
void sfu_fleet_lookup(sfu_fleet_t *f, const char *id, sfu_fleet_node_cb cb, void *arg);

/* Claims a room's keys for this node before it is spawned: rv 0, SFU_EEXIST
 * (the id or name is live elsewhere), SFU_EAGAIN. */
typedef void (*sfu_fleet_done_cb)(void *arg, int rv);
void sfu_fleet_claim(sfu_fleet_t *f, const char *room_id, const char *name,
                     sfu_fleet_done_cb cb, void *arg);
/* Puts them under this node's lease whoever holds them: a room that moved
 * here from another node (migrate.c). rv 0 or SFU_EAGAIN. */
void sfu_fleet_take(sfu_fleet_t *f, const char *room_id, const char *name,
                    sfu_fleet_done_cb cb, void *arg);
/* Frees them (retried every keepalive until done or the lease is gone). */
void sfu_fleet_release(sfu_fleet_t *f, const char *room_id, const char *name);

/* A room whose node died (its lease expired with it), as GET
 * /v1/rooms/{id} shows it: state "crashed", end_reason "node_lost"; NULL
 * if `id` is no such room. Kept crashed_retention_s. */
json_t *sfu_fleet_lost_json(sfu_fleet_t *f, const char *id);

/* Every node (with its room count), room and lost room in etcd:
 * {"nodes": [...], "rooms": [...], "lost_rooms": [...]}, or NULL with rv
 * SFU_EAGAIN. */
typedef void (*sfu_fleet_json_cb)(void *arg, int rv, json_t *fleet);
void sfu_fleet_snapshot(sfu_fleet_t *f, sfu_fleet_json_cb cb, void *arg);

/*
 * One answer of the watch on "<prefix>/" (pure; fleet.c's watch and the
 * tests feed it). Deleting a lease deletes all its keys at one revision,
 * in one answer: a node key deleted without the "leaving" mark a node
 * writes before a clean exit is a node that died, and the room keys
 * deleted with it were its rooms: lost() for each. A room key written is
 * back(). Returns the answer's revision; *compacted is set (> 0) when etcd
 * cancelled the watch because that history is gone.
 */
typedef struct sfu_fleet_watch_cbs_s {
  void (*lost)(void *arg, const char *room_id, const char *name, const char *node_id);
  void (*back)(void *arg, const char *room_id);
} sfu_fleet_watch_cbs_t;
int64_t sfu_fleet_read_watch(const char *prefix, json_t *msg, const sfu_fleet_watch_cbs_t *cbs,
                             void *arg, int64_t *compacted);

#endif
