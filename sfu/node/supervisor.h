/*
 * supervisor.h -- sfud's room registry: one OS process per room.
 *
 * The supervisor spawns sfu-room with an IPC socketpair on fd 3, pings each
 * room every heartbeat_ms, kills a room that stays silent past
 * heartbeat_timeout_ms, reaps every child, and tells a clean end (the room
 * said it was closing, then exited 0) from a crash (anything else). Crashed
 * rooms stay listed as "crashed" for crashed_retention_s so the control plane
 * can see what happened; then their record is freed.
 *
 * Owned by the loop thread. Room records are reached by id; the registry is
 * a list (rooms per node are bounded by max_rooms, and lookups happen per API
 * request, never per packet).
 */
#ifndef SFU_SUPERVISOR_H
#define SFU_SUPERVISOR_H

#include <jansson.h>
#include <uv.h>

#include "sfu/node/config.h"
#include "sfu/node/metrics.h"
#include "signaling/ipc.h"
#include "sfu/node/validate.h"

typedef enum {
  SFU_ROOM_STARTING, /* spawned, no "ready" yet */
  SFU_ROOM_RUNNING,  /* answering IPC */
  SFU_ROOM_CLOSING,  /* told to end or ending by itself; exit expected */
  SFU_ROOM_CRASHED,  /* died or was killed; kept listed for a while */
} sfu_room_state_t;

#define SFU_ROOM_ID_LEN 19 /* "rm_" + 16 hex */

typedef struct sfu_supervisor_s sfu_supervisor_t;
typedef struct sfu_room_rec_s sfu_room_rec_t;

/*
 * One room as sfud sees it. Its process and IPC handles are embedded; the
 * record is freed only after both are closed (handles_open == 0) and it is
 * no longer listed.
 */
struct sfu_room_rec_s {
  char id[SFU_ROOM_ID_LEN + 1];      /* "rm_..." */
  char name[SFU_ROOM_MAX_NAME + 1];  /* control plane's name, "" = none */
  int max_participants;              /* limit enforced by the room */
  int empty_timeout_s;               /* room ends after this long empty */
  json_t *metadata;                  /* opaque JSON from create, or NULL */
  sfu_room_state_t state;            /* see above */
  char end_reason[32];               /* why it is closing / crashed */
  uv_process_t proc;                 /* the room process */
  sfu_ipc_t ipc;                     /* its channel */
  int pid;                           /* process id */
  int via_zygote;                    /* forked by the zygote: no proc handle */
  int handles_open;                  /* proc + ipc not yet closed */
  int exited;                        /* exit_cb has run */
  int64_t exit_status;               /* from exit_cb */
  int term_signal;                   /* from exit_cb */
  int64_t created_wall_ms;           /* for the API */
  int64_t ended_wall_ms;             /* when it crashed */
  uint64_t spawned_us;               /* monotonic, for spawn latency */
  uint64_t ready_us;                 /* 0 until "ready" */
  uint64_t last_heard_ms;            /* last message from the room */
  uint64_t close_deadline_ms;        /* SIGKILL after this when closing */
  uint64_t ping_seq;                 /* last ping sent */
  int participants;                  /* from the room's last report */
  json_t *stats;                     /* last stats message, or NULL */
  json_t *people;                    /* sid -> identity of joined participants */
  json_t *totals;                    /* usage ms by kind over the room's life */
  int sessions;                      /* participant sessions that joined */
  sfu_supervisor_t *sup;             /* owner */
  sfu_room_rec_t *next;              /* registry list */
};

/* Where room messages meant for clients go (sfu/node/ws.c). */
typedef struct sfu_supervisor_hooks_s {
  void *arg;
  /* client_msg / client_close from a room */
  void (*room_msg)(void *arg, sfu_room_rec_t *r, const char *type, json_t *msg);
  /* the room ended (closing or crashed): its clients must go */
  void (*room_gone)(void *arg, sfu_room_rec_t *r, int crashed);
} sfu_supervisor_hooks_t;

void sfu_supervisor_set_hooks(sfu_supervisor_t *s, const sfu_supervisor_hooks_t *h);
/* Where room lifecycle, participant and usage records go (may be NULL). */
struct sfu_events_s;
void sfu_supervisor_set_events(sfu_supervisor_t *s, struct sfu_events_s *e);

/* Created/destroyed with sfud; `metrics` is owned by the caller. */
int sfu_supervisor_create(sfu_supervisor_t **out, uv_loop_t *loop,
                          const sfu_config_t *cfg, sfu_metrics_t *metrics);
/* Spawns a room. Returns 0, SFU_EDRAINING, SFU_ECAPACITY, SFU_EEXIST (name
 * in use by a live room) or the spawn error. `req->metadata` is taken. */
int sfu_supervisor_spawn(sfu_supervisor_t *s, sfu_room_req_t *req,
                         sfu_room_rec_t **out);
/* By id or, failing that, by name among live rooms. NULL if unknown. */
sfu_room_rec_t *sfu_supervisor_find(sfu_supervisor_t *s, const char *id);
/* DELETE: asks a live room to end (SIGKILL after shutdown_grace_ms), or
 * forgets a crashed one. Returns 0. */
int sfu_supervisor_close_room(sfu_supervisor_t *s, sfu_room_rec_t *r,
                              const char *reason);
/* Sends a message to a live room (stats request, later signaling). */
int sfu_supervisor_send(sfu_room_rec_t *r, json_t *msg);
/* JSON view for the API; `detail` adds stats and process details. */
json_t *sfu_room_json(const sfu_room_rec_t *r, int detail);
json_t *sfu_supervisor_list_json(sfu_supervisor_t *s);
const char *sfu_room_state_name(sfu_room_state_t st);

void sfu_supervisor_set_draining(sfu_supervisor_t *s, int draining);
int sfu_supervisor_draining(const sfu_supervisor_t *s);
/* Live rooms, crashed rooms listed, participants over live rooms. */
void sfu_supervisor_counts(const sfu_supervisor_t *s, int *live, int *crashed,
                           int *participants);

/* Ends every room (shutdown, then SIGKILL after the grace period) and closes
 * all handles; `done` runs once nothing is left. */
void sfu_supervisor_shutdown(sfu_supervisor_t *s,
                             void (*done)(sfu_supervisor_t *s, void *arg),
                             void *arg);
void sfu_supervisor_destroy(sfu_supervisor_t *s);

#endif
