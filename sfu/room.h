/*
 * room.h -- the room process's top object: one per process, one thread.
 *
 * It owns the libuv loop's handles for the room, the GLib context that the
 * media engine (libnice) runs on, and the IPC channel to sfud. It answers
 * sfud's pings, ends itself when nobody has been in it for empty_timeout_s,
 * and exits when sfud goes away (IPC EOF, or silence past parent_timeout_ms)
 * so that no room outlives its node daemon.
 */
#ifndef SFU_ROOM_H
#define SFU_ROOM_H

#include <uv.h>

#include "sfu/gloop.h"
#include "signaling/ipc.h"

typedef struct sfu_room_opts_s {
  const char *id;          /* room id given by sfud */
  int max_participants;    /* join limit */
  int empty_timeout_s;     /* end after this long with nobody in */
  int parent_timeout_ms;   /* exit if sfud is silent this long */
  int ipc_fd;              /* inherited socketpair end */
} sfu_room_opts_t;

typedef struct sfu_room_s {
  uv_loop_t *loop;           /* the process's loop */
  sfu_gloop_t gloop;         /* GLib context driven from loop */
  sfu_ipc_t ipc;             /* channel to sfud */
  uv_timer_t empty_timer;    /* armed while participants == 0 */
  uv_timer_t parent_timer;   /* watchdog on sfud's pings */
  char id[64];               /* room id */
  int max_participants;      /* limit */
  int empty_timeout_s;       /* see opts */
  int parent_timeout_ms;     /* see opts */
  int participants;          /* joined now */
  uint64_t last_parent_ms;   /* last message from sfud */
  uint64_t started_ms;       /* process start */
  int closing;               /* sfu_room_close() called */
  int pending_closes;        /* handles still closing */
  int exit_code;             /* process exit status once closed */
  char close_reason[32];     /* why */
} sfu_room_t;

/* Sets up everything and tells sfud "ready". 0 or a negative error. */
int sfu_room_init(sfu_room_t *room, uv_loop_t *loop, const sfu_room_opts_t *o);
/* Starts closing: announces it to sfud (unless sfud is gone), closes every
 * handle. uv_run returns once done; room->exit_code is the exit status. */
void sfu_room_close(sfu_room_t *room, const char *reason, int exit_code);

#endif
