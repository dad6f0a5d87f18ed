/*
 * upgrade.c -- sfud replacing itself in place (upgrade.h,
 * docs/internals/upgrade.md).
 *
 * SIGUSR2 starts a 10 ms poll (at most 2 s) for the moment nothing is in
 * flight that the new process could not pick up: every room's IPC write
 * queue empty, no room moving between nodes, no journal sync running, no
 * record waiting in memory. Then, in one loop callback: the journal is
 * synced on this thread, the state is written (fsync'd, renamed into
 * place), the descriptors it names lose close-on-exec, and sfud exec's the
 * binary at its path with its own arguments plus --adopt-state. What remains open closes with the exec
 * (client sockets: their clients resume). If anything fails before the
 * exec, or the exec itself, the descriptors get close-on-exec back and sfud
 * goes on as before.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sfu/base/log.h"
#include "sfu/base/sfu.h"
#include "sfu/node/upgrade.h"

#define STATE_VERSION 1
#define POLL_MS 10
#define WAIT_MS 2000

static struct {
  sfu_upgrade_parts_t p;
  uv_timer_t timer;
  int inited;
  int running;
  uint64_t deadline_ms;
} up;

static int write_state(const char *path, json_t *state) {
  char tmp[640];
  snprintf(tmp, sizeof(tmp), "%s.tmp", path);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return -errno;
  char *text = json_dumps(state, JSON_COMPACT);
  size_t len = text ? strlen(text) : 0, off = 0;
  int rv = text ? 0 : SFU_ENOMEM;
  while (!rv && off < len) {
    ssize_t n = write(fd, text + off, len - off);
    if (n < 0 && errno != EINTR) rv = -errno;
    if (n > 0) off += (size_t)n;
  }
  free(text);
  if (!rv && fsync(fd) != 0) rv = -errno;
  close(fd);
  if (!rv && rename(tmp, path) != 0) rv = -errno;
  if (rv) unlink(tmp);
  return rv;
}

static void give_up(const char *why) {
  sfu_log(SFU_LOG_ERROR, "upgrade", "upgrade not done: %s; carrying on", why);
  up.running = 0;
}

static void do_exec(void) {
  const sfu_upgrade_parts_t *p = &up.p;
  char path[600], err[256];
  int rv = sfu_events_sync_now(p->events);
  if (rv) {
    snprintf(err, sizeof(err), "the journal cannot be made durable (%s)", sfu_strerror(rv));
    give_up(err);
    return;
  }
  snprintf(path, sizeof(path), "%s/upgrade-state.json", p->cfg->data_dir);
  int lfd = sfu_http_export_listener(p->http);
  char lease[24];
  snprintf(lease, sizeof(lease), "%lld", (long long)(p->fleet ? sfu_fleet_lease(p->fleet) : 0));
  json_t *node = sfu_supervisor_export(p->sup);
  json_t *state = json_pack("{s:i, s:I, s:i, s:O, s:O, s:o, s:I, s:{s:s}}", "version",
                            STATE_VERSION, "written_at_ms", (json_int_t)sfu_wall_ms(),
                            "listener_fd", lfd, "rooms", json_object_get(node, "rooms"),
                            "zygotes", json_object_get(node, "zygotes"), "sessions",
                            sfu_ws_export(p->ws), "last_session_id",
                            (json_int_t)sfu_ws_last_id(p->ws), "fleet", "lease", lease);
  json_object_set_new(state, "draining", json_boolean(sfu_supervisor_draining(p->sup)));
  json_decref(node);
  size_t nrooms = json_array_size(json_object_get(state, "rooms"));
  size_t nsessions = json_array_size(json_object_get(state, "sessions"));
  if (lfd < 0 || (rv = write_state(path, state)) != 0) {
    json_decref(state);
    if (lfd >= 0) fcntl(lfd, F_SETFD, FD_CLOEXEC);
    sfu_supervisor_export_failed(p->sup);
    snprintf(err, sizeof(err), "%s",
             lfd < 0 ? "the listening socket cannot be handed over" : sfu_strerror(rv));
    give_up(err);
    return;
  }
  json_decref(state);

  /* argv: ours without an earlier --adopt-state, then the new one */
  char **argv = calloc((size_t)p->argc + 3, sizeof(char *));
  int n = 0;
  for (int i = 0; i < p->argc; i++) {
    if (strcmp(p->argv[i], "--adopt-state") == 0) {
      i++;
      continue;
    }
    if (strncmp(p->argv[i], "--adopt-state=", 14) == 0) continue;
    argv[n++] = p->argv[i];
  }
  argv[n++] = "--adopt-state";
  argv[n++] = path;
  argv[n] = NULL;
  sfu_log(SFU_LOG_INFO, "upgrade", "exec'ing %s with %zu rooms and %zu sessions", p->exe, nrooms,
          nsessions);
  execv(p->exe, argv);
  int e = errno;
  free(argv);
  unlink(path);
  fcntl(lfd, F_SETFD, FD_CLOEXEC);
  sfu_supervisor_export_failed(p->sup);
  snprintf(err, sizeof(err), "cannot exec %s: %s", p->exe, strerror(e));
  give_up(err);
}

static void on_poll(uv_timer_t *t) {
  if (sfu_supervisor_ready_to_export(up.p.sup) && !sfu_events_busy(up.p.events) &&
      sfu_migrator_idle(up.p.migrator)) {
    uv_timer_stop(t);
    do_exec();
  } else if (sfu_now_ms() >= up.deadline_ms) {
    uv_timer_stop(t);
    give_up(sfu_events_busy(up.p.events)          ? "the journal stayed busy for 2 s"
            : !sfu_migrator_idle(up.p.migrator) ? "a room that moved away did not end, or its "
                                                  "new node take its last usage, within 2 s"
                                                : "a room's IPC queue stayed non-empty, or a "
                                                  "room kept moving to or from another node, for 2 s");
  }
}

void sfu_upgrade_begin(uv_loop_t *loop, const sfu_upgrade_parts_t *p) {
  if (up.running) {
    sfu_log(SFU_LOG_WARN, "upgrade", "an upgrade is already under way");
    return;
  }
  if (access(p->exe, X_OK) != 0) {
    char err[600];
    snprintf(err, sizeof(err), "%s is not executable (%s)", p->exe, strerror(errno));
    give_up(err);
    return;
  }
  up.p = *p;
  up.running = 1;
  up.deadline_ms = sfu_now_ms() + WAIT_MS;
  if (!up.inited) {
    uv_timer_init(loop, &up.timer);
    uv_unref((uv_handle_t *)&up.timer);
    up.inited = 1;
  }
  sfu_log(SFU_LOG_INFO, "upgrade", "upgrading to %s", p->exe);
  uv_timer_start(&up.timer, on_poll, 0, POLL_MS);
}

json_t *sfu_upgrade_load(const char *path, char *err, size_t errlen) {
  json_error_t je;
  json_t *state = json_load_file(path, 0, &je);
  unlink(path);
  if (!state) {
    snprintf(err, errlen, "adopt_state: cannot read %s: %s", path, je.text);
    return NULL;
  }
  if (json_integer_value(json_object_get(state, "version")) != STATE_VERSION) {
    snprintf(err, errlen, "adopt_state: %s is not a version %d state", path, STATE_VERSION);
    json_decref(state);
    return NULL;
  }
  /* close-on-exec again at once: nothing started from now on (the new
   * zygote, its rooms) may inherit what was handed over */
  json_t *v;
  size_t i;
  fcntl((int)json_integer_value(json_object_get(state, "listener_fd")), F_SETFD, FD_CLOEXEC);
  json_array_foreach(json_object_get(state, "zygotes"), i, v)
    fcntl((int)json_integer_value(json_object_get(v, "fd")), F_SETFD, FD_CLOEXEC);
  json_array_foreach(json_object_get(state, "rooms"), i, v)
    if (json_integer_value(json_object_get(v, "ipc_fd")) >= 0)
      fcntl((int)json_integer_value(json_object_get(v, "ipc_fd")), F_SETFD, FD_CLOEXEC);
  return state;
}
