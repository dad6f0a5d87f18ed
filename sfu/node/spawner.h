/*
 * spawner.h -- sfud's side of the zygote (sfu/room/zygote.h): start it, ask it
 * for rooms, hear about their exits.
 */
#ifndef SFU_SPAWNER_H
#define SFU_SPAWNER_H

#include <stdint.h>
#include <uv.h>

typedef struct sfu_spawner_s sfu_spawner_t;

typedef struct sfu_spawner_cb_s {
  void *arg;
  /* A room forked by the zygote ended. */
  void (*exited)(void *arg, int pid, int64_t status, int term_signal);
  /* The zygote itself died: every room it forked died with it. */
  void (*zygote_died)(void *arg, sfu_spawner_t *sp);
} sfu_spawner_cb_t;

/* Starts `binary --zygote`. Returns 0 or an error (rooms are then spawned
 * directly by the caller). */
int sfu_spawner_start(sfu_spawner_t **out, uv_loop_t *loop, const char *binary,
                      const sfu_spawner_cb_t *cb);
int sfu_spawner_alive(const sfu_spawner_t *sp);
/* Forks a room with `argv`, handing it `ipc_fd` as its fd 3 (the caller
 * keeps and later closes its own copy). Waits for the zygote's reply (a
 * fork: well under a millisecond); *pid on success. */
int sfu_spawner_spawn(sfu_spawner_t *sp, char *const *argv, int ipc_fd, int *pid);
/* Closes the channel (the zygote exits). */
void sfu_spawner_stop(sfu_spawner_t *sp);
/* Frees a stopped spawner once the loop has stopped running (NULL: no-op). */
void sfu_spawner_free(sfu_spawner_t *sp);

/* Upgrade (docs/internals/upgrade.md): the zygote's pid and our end of its
 * control socket, close-on-exec cleared; -1 when there is none. */
int sfu_spawner_export(sfu_spawner_t *sp, int *pid);
/* A zygote handed over by the previous sfud, retired: it spawns nothing,
 * reports its rooms' exits, and its death (EOF on fd) is zygote_died. It is
 * not our child's uv_process: the caller reaps `pid`. */
int sfu_spawner_adopt(sfu_spawner_t **out, uv_loop_t *loop, int pid, int fd,
                      const sfu_spawner_cb_t *cb);
int sfu_spawner_pid(const sfu_spawner_t *sp);

#endif
