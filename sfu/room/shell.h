/*
 * shell.h -- the room process around the call engine: one per process, one
 * thread.
 *
 * The shell owns everything that touches the world: the libuv loop's
 * handles, the IPC channel to sfud, the ICE-lite agent and its sockets
 * (sfu/net/icelite.c), each participant's transport (ICE stream, DTLS,
 * SRTP: sfu/net/transport.c) and the DTLS certificate they share, the
 * capture recorder, and the clock. It feeds the engine (sfu/room/engine.h)
 * -- control messages from sfud, decrypted packets, transport states, and
 * one timer armed at sfu_room_next_tick() -- and carries out what the
 * engine emits: messages to sfud, packets protected and queued on the
 * agent's send batch.
 *
 * What stays here rather than in the engine is what is about the process
 * or the network: ping/stats/shutdown/capture from sfud, the parent
 * watchdog, the empty timeout, CPU time, and transport statistics.
 */
#ifndef SFU_ROOM_SHELL_H
#define SFU_ROOM_SHELL_H

#include <uv.h>

#include "sfu/media/dtls.h"
#include "sfu/net/ice.h"
#include "sfu/room/engine.h"
#include "sfu/room/recorder.h"
#include "signaling/ipc.h"

typedef struct sfu_shell_opts_s {
  const char *id;          /* room id given by sfud */
  int max_participants;    /* join limit */
  int empty_timeout_s;     /* end after this long with nobody in */
  int parent_timeout_ms;   /* exit if sfud is silent this long */
  int usage_interval_s;    /* usage checkpoint period */
  int ipc_fd;              /* inherited socketpair end */
  const char *ice_addresses; /* host candidate addresses, IPv4 and/or IPv6,
                                comma-separated (sfu_ice_opts_t.addresses) */
  int port_min, port_max;  /* UDP port range */
  const char *announce;    /* IP announced in the candidates of its family, or NULL */
  int orphan_grace_s;      /* sfud gone: wait this long for a new one (0: end) */
  const char *socket_path; /* where a new sfud connects then, or NULL */
  int max_audio_streams;   /* loudest speakers each listener gets, 0 = all */
  int media_timeout_s;     /* sfu_room_opts_t.media_timeout_s */
  int dynacast_stop_ms;    /* sfu_room_opts_t.dynacast_stop_ms */
} sfu_shell_opts_t;

/* Transport drop counters, summed over participants (the room's stats). */
typedef struct sfu_shell_drops_s {
  uint64_t demux, srtp, ssrc_limit, send, foreign; /* packets */
} sfu_shell_drops_t;

typedef struct sfu_shell_s {
  uv_loop_t *loop;           /* the process's loop */
  sfu_room_t room;           /* the call engine */
  sfu_room_io_t io;          /* its outputs, carried out here */
  sfu_ipc_t ipc;             /* channel to sfud */
  uv_timer_t empty_timer;    /* armed while nobody is in */
  uv_timer_t parent_timer;   /* watchdog on sfud's pings */
  uv_timer_t tick_timer;     /* at sfu_room_next_tick() */
  uv_timer_t linger_timer;   /* closed as "migrated": media goes on a while */
  sfu_ice_t *ice;            /* one agent, a stream per participant; lazy */
  sfu_ice_opts_t ice_opts;   /* for creating it */
  char ice_addresses[256];   /* storage for ice_opts.addresses */
  char ice_announce[64];     /* storage for ice_opts.announce */
  sfu_dtls_cert_t *cert;     /* one certificate per room; lazy */
  int empty_timeout_s;       /* see opts */
  int parent_timeout_ms;     /* see opts */
  uint64_t last_parent_ms;   /* last message from sfud */
  uint64_t started_ms;       /* process start */
  int closing;               /* sfu_shell_close() called */
  int pending_closes;        /* handles still closing */
  int exit_code;             /* process exit status once closed */
  char close_reason[32];     /* why */
  sfu_recorder_t rec;        /* POST /v1/rooms/{id}/capture */
  /* sfud gone (docs/internals/supervisor.md "When sfud crashes"): the call
   * goes on, what the room says is held, and a new sfud may take the room
   * over on its socket within the grace */
  int orphan_grace_s;        /* see opts */
  char socket_path[108];     /* "" = none */
  uv_pipe_t listener;        /* on socket_path */
  uv_timer_t grace_timer;    /* armed while orphaned */
  int orphaned;              /* no sfud now */
  int ipc_closed;            /* the old channel's handle is closed */
  json_t *held;              /* messages for sfud while orphaned or while the
                                channel is full (until it drains), in order */
  uint64_t held_dropped;     /* beyond SFU_SHELL_MAX_HELD */
  uint64_t held_congested;   /* refused by a full channel, sent at the drain */
  sfu_shell_drops_t closed_drops; /* of transports already closed: the stats
                                     add the live ones, so no total goes down
                                     when a participant leaves */
  uint64_t trim_next_us;     /* next heap trim check (shell.c trim_heap) */
  size_t trim_free;          /* the heap's free bytes at the last trim */
} sfu_shell_t;

/* Sets everything up and tells sfud "ready". 0 or a negative error. */
/* Messages a room keeps for the next sfud or the drain (usage, events,
 * client messages); beyond, the oldest client messages go first. */
#define SFU_SHELL_MAX_HELD 20000

int sfu_shell_init(sfu_shell_t *sh, uv_loop_t *loop, const sfu_shell_opts_t *o);
/* Starts closing: everyone leaves, sfud hears "closing", every handle
 * closes. uv_run returns once done; sh->exit_code is the exit status. */
void sfu_shell_close(sfu_shell_t *sh, const char *reason, int exit_code);

#endif
