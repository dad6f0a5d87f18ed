/*
 * room_main.c -- entry point of sfu-room, the process that runs one call.
 *
 * sfud forks it from the zygote (or spawns it directly) with the IPC
 * socketpair on fd 3 and the room's settings as flags. It is not meant to be
 * started by hand (it exits when fd 3 is not a channel to sfud).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "sfu/base/log.h"
#include "sfu/room/shell.h"
#include "sfu/base/sfu.h"
#include "sfu/room/zygote.h"

static int int_arg(const char *v, int lo, int hi, const char *name) {
  char *end;
  long n = strtol(v, &end, 10);
  if (*v == '\0' || *end != '\0' || n < lo || n > hi) {
    fprintf(stderr, "sfu-room: %s must be an integer in [%d, %d]\n", name, lo, hi);
    exit(2);
  }
  return (int)n;
}

static int room_main(int argc, char **argv) {
  sfu_shell_opts_t o = {"", 100, 300, 5000, 10, 3, "127.0.0.1", 0, 0, NULL, 0, NULL, 0, 0, 0};
  static sfu_shell_t room;
  char ctx[96];

  signal(SIGPIPE, SIG_IGN);
  for (int i = 1; i < argc; i += 2) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--version") == 0) {
      printf("sfu-room %s\nsrtp: %s\n", sfu_version(), sfu_srtp_description());
      return 0;
    }
    if (!v) {
      fprintf(stderr, "sfu-room: '%s' needs a value (sfu-room is started by sfud)\n", a);
      return 2;
    }
    if (strcmp(a, "--room-id") == 0)
      o.id = v;
    else if (strcmp(a, "--max-participants") == 0)
      o.max_participants = int_arg(v, 1, 100000, a);
    else if (strcmp(a, "--max-audio-streams") == 0)
      o.max_audio_streams = int_arg(v, 0, 100000, a);
    else if (strcmp(a, "--empty-timeout-s") == 0)
      o.empty_timeout_s = int_arg(v, 1, 86400, a);
    else if (strcmp(a, "--parent-timeout-ms") == 0)
      o.parent_timeout_ms = int_arg(v, 100, 600000, a);
    else if (strcmp(a, "--usage-interval-s") == 0)
      o.usage_interval_s = int_arg(v, 1, 3600, a);
    else if (strcmp(a, "--media-timeout-s") == 0)
      o.media_timeout_s = int_arg(v, 1, 3600, a);
    else if (strcmp(a, "--dynacast-stop-ms") == 0)
      o.dynacast_stop_ms = int_arg(v, 100, 60000, a);
    else if (strcmp(a, "--rtc-addresses") == 0)
      o.ice_addresses = v;
    else if (strcmp(a, "--rtc-announce") == 0)
      o.announce = strcmp(v, "-") == 0 ? NULL : v;
    else if (strcmp(a, "--rtc-port-min") == 0)
      o.port_min = int_arg(v, 0, 65535, a);
    else if (strcmp(a, "--rtc-port-max") == 0)
      o.port_max = int_arg(v, 0, 65535, a);
    else if (strcmp(a, "--orphan-grace-s") == 0)
      o.orphan_grace_s = int_arg(v, 0, 3600, a);
    else if (strcmp(a, "--socket") == 0)
      o.socket_path = v;
    else if (strcmp(a, "--log-level") == 0 && sfu_log_parse_level(v) >= 0)
      sfu_log_set_level((sfu_log_level_t)sfu_log_parse_level(v));
    else {
      fprintf(stderr, "sfu-room: unknown option '%s'\n", a);
      return 2;
    }
  }
  if (o.id[0] == '\0') {
    fprintf(stderr, "sfu-room: --room-id is required (sfu-room is started by sfud)\n");
    return 2;
  }
  /* Without a grace, a room ends with sfud: if sfud dies without closing
   * our channel (it cannot, but belt and braces), the kernel ends us too.
   * With one, the room outlives sfud for the grace (shell.h). A room forked
   * by the zygote dies with the zygote either way (zygote.c). */
  if (o.orphan_grace_s == 0) prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() == 1) return 1; /* sfud already gone */
  snprintf(ctx, sizeof(ctx), "room=%s pid=%d", o.id, (int)getpid());
  sfu_log_set_context(ctx);

  uv_loop_t *loop = uv_default_loop();
  int rv = sfu_shell_init(&room, loop, &o);
  if (rv != 0) {
    sfu_log(SFU_LOG_ERROR, "room", "cannot start: %s", sfu_strerror(rv));
    return 1;
  }
  uv_run(loop, UV_RUN_DEFAULT);
  rv = uv_loop_close(loop);
  if (rv != 0) sfu_log(SFU_LOG_WARN, "room", "loop closed with handles open");
  return room.exit_code;
}

/* `sfu-room --zygote`: fork rooms on request (sfu/room/zygote.h); otherwise run
 * one room from the command line. */
int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "--zygote") == 0) {
    signal(SIGPIPE, SIG_IGN);
    return sfu_zygote_run(3, room_main);
  }
  return room_main(argc, argv);
}
