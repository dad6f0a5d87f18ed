/*
 * migrate.h -- moving a running room to another node of the fleet
 * (docs/fleet.md "Moving rooms", docs/internals/migration.md).
 *
 * The old node drives a move; the new node answers four internal routes
 * (/v1/node/migrations, with the fleet's API key):
 *
 *   old node                                new node
 *   place the target (or the one asked)
 *   room: export -> exported {state}
 *   POST /v1/node/migrations ------------>  spawn the room (moving in), the
 *     {room, record, state, sessions}       sessions listed detached with
 *                                           their move tokens, room:
 *                                           migrate_in {state}   <- 201
 *   clients: migrate {ws_url, token}        clients resume there, offer a
 *                                           second connection
 *   GET /v1/node/migrations/{id} -------->  {ready}: the room said
 *     every 100 ms, up to 8 s               migration_ready
 *   POST .../{id}/commit {cut_wall_ms} -->  room: migrate_commit; the
 *                                           room's keys taken in etcd <- 200
 *   room: migrate_out {cut_wall_ms},
 *   shutdown "migrated"; clients:
 *   migrated + close 4015; room_migrated
 *
 * Any failure before the commit answers (no target, the target refuses,
 * loses the room or stops answering) aborts: clients told get
 * migrate_abort, the new node is asked to drop its copy (DELETE), the room
 * stays. Waiting for ready is bounded: after 8 s the move commits with
 * whoever has come over; the others follow break-before-make.
 */
#ifndef SFU_MIGRATE_H
#define SFU_MIGRATE_H

#include <jansson.h>
#include <uv.h>

#include "sfu/node/config.h"
#include "sfu/node/fleet.h"
#include "sfu/node/supervisor.h"
#include "sfu/node/ws.h"

/* How long a move waits for every client to connect to the new node. */
#define SFU_MOVE_WAIT_MS 8000

typedef struct sfu_migrator_s sfu_migrator_t;
struct sfu_events_s;

/* ws_url: where this node's clients connect (the new node's answer). */
int sfu_migrator_create(sfu_migrator_t **out, uv_loop_t *loop, const sfu_config_t *cfg,
                        sfu_supervisor_t *sup, sfu_ws_t *ws, sfu_fleet_t *fleet,
                        const char *ws_url);
void sfu_migrator_set_events(sfu_migrator_t *m, struct sfu_events_s *e);
/* sfud stops: moves in flight end (their callbacks run with 503; their
 * rooms stay and end with the node) and no request of theirs goes on.
 * _destroy() frees what is left, after the loop has run. */
void sfu_migrator_stop(sfu_migrator_t *m);
void sfu_migrator_destroy(sfu_migrator_t *m);

/*
 * The old node. Moves r to node `to` (NULL or "": the fleet chooses). The
 * callback runs once, with an HTTP status and the answer's body (new
 * reference): 200 and {"room_id", "from_node", "to_node", "participants",
 * "ready", "took_ms"}, or an API error body. Returns 0, or at once
 * SFU_EBUSY (r is moving already) or SFU_EINVAL (r is not running); the
 * callback does not run then.
 */
typedef void (*sfu_migrate_cb)(void *arg, int status, json_t *body);
int sfu_migrate_room(sfu_migrator_t *m, sfu_room_rec_t *r, const char *to, sfu_migrate_cb cb,
                     void *arg);
/* Moves every live room that is not moving yet (a drain); the number. */
int sfu_migrate_all(sfu_migrator_t *m);
/* Supervisor hooks: exported / migration_ready; a room gone. */
void sfu_migrator_on_room_msg(sfu_migrator_t *m, sfu_room_rec_t *r, const char *type,
                              json_t *msg);
void sfu_migrator_on_room_gone(sfu_migrator_t *m, sfu_room_rec_t *r);
/* No room that moved away still lingers here or owes its new node its
 * last usage (an upgrade waits for that); 1 for NULL. */
int sfu_migrator_idle(const sfu_migrator_t *m);

/*
 * The new node: the internal routes. Each sets *status and returns the
 * answer's body (new reference); commit answers through its callback, once
 * the room's keys in etcd are this node's.
 *   accept   POST   /v1/node/migrations          201
 *   status   GET    /v1/node/migrations/{id}     200 {"room_id", "ready", "participants"}
 *   commit   POST   /v1/node/migrations/{id}/commit {"cut_wall_ms"}
 *                                                200 {"room_id", "cut_wall_ms", "keys_taken"}
 *   drop     DELETE /v1/node/migrations/{id}     202
 */
json_t *sfu_migrator_accept(sfu_migrator_t *m, const char *body, size_t len, int *status);
json_t *sfu_migrator_status(sfu_migrator_t *m, const char *room_id, int *status);
void sfu_migrator_commit(sfu_migrator_t *m, const char *room_id, const char *body, size_t len,
                         sfu_migrate_cb cb, void *arg);
json_t *sfu_migrator_drop(sfu_migrator_t *m, const char *room_id, int *status);
/* POST /v1/node/migrations/{id}/usage {"ms": {...}}: usage the old node
 * counted up to the cut after the room's state left it, added to the
 * room's totals here, once: 200 {"room_id", "added": true}, and "added":
 * false for the same again (an answer the old node did not get). */
json_t *sfu_migrator_usage(sfu_migrator_t *m, const char *room_id, const char *body, size_t len,
                           int *status);

#endif
