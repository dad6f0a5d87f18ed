/*
 * sfud_main.c -- the node daemon: configuration, the HTTP server, the room
 * supervisor and signal handling on one libuv loop.
 *
 * Shutdown (SIGINT/SIGTERM): stop accepting connections, ask every room to
 * close, SIGKILL those still alive after shutdown_grace_ms, reap them all,
 * then exit 0. A second signal skips the grace period. SIGHUP reloads the
 * TLS certificate and key (open connections keep theirs).
 *
 * --check-config and --print-config read the settings as for a start,
 * then check them (confcheck.h) or write them out (sfu_config_write()),
 * and exit without serving.
 *
 * At start the soft RLIMIT_NOFILE is raised to the hard limit (usually
 * 1024 -> far more): every client connection is a descriptor, and the
 * connection cap (http_api.c) is computed from what is left for rooms.
 */
#include <errno.h>
#include <libgen.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "sfu/node/config.h"
#include "sfu/node/confcheck.h"
#include "sfu/node/events.h"
#include "sfu/node/fleet.h"
#include "sfu/base/log.h"
#include "sfu/node/metrics.h"
#include "sfu/node/migrate.h"
#include "sfu/node/rrelay.h"
#include "sfu/node/recover.h"
#include "sfu/base/sfu.h"
#include "sfu/node/supervisor.h"
#include "sfu/node/upgrade.h"
#include "sfu/node/http_api.h"
#include "sfu/node/webhook.h"
#include "sfu/node/whip.h"
#include "sfu/node/ws.h"

static sfu_config_t cfg;
static sfu_metrics_t metrics;
static sfu_supervisor_t *sup;
static sfu_http_t *http;
static sfu_ws_t *ws;
static sfu_whip_t *whip; /* WHIP/WHEP sessions */
static sfu_events_t *events;
static sfu_webhook_t *webhook;
static sfu_fleet_t *fleet;
static sfu_migrator_t *migrator; /* with a fleet */
static sfu_rrelay_t *rrelay;     /* relays on other nodes, with a fleet */

static void on_durable(void *arg) { sfu_webhook_kick(arg); }

static void hook_room_msg(void *arg, sfu_room_rec_t *r, const char *type, json_t *msg) {
  if (whip && sfu_whip_on_room_msg(whip, r, type, msg)) return;
  sfu_ws_on_room_msg(arg, r, type, msg);
}

static void hook_room_drained(void *arg, sfu_room_rec_t *r) { sfu_ws_on_room_drained(arg, r); }

static void hook_link_out(void *arg, const char *room_id, const char *link, json_t *msg) {
  (void)arg;
  if (rrelay) sfu_rrelay_link_out(rrelay, room_id, link, msg);
}

static void hook_moderate(void *arg, const char *room_id, json_t *msg) {
  (void)arg;
  if (rrelay) sfu_rrelay_moderate(rrelay, room_id, msg);
}

/* Soft descriptor limit up to the hard one; logged either way. */
static void raise_nofile(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  rlim_t was = rl.rlim_cur;
  if (rl.rlim_cur != rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
      sfu_log(SFU_LOG_WARN, "sfud", "cannot raise RLIMIT_NOFILE from %llu to %llu",
              (unsigned long long)was, (unsigned long long)rl.rlim_max);
      return;
    }
  }
  sfu_log(SFU_LOG_INFO, "sfud", "RLIMIT_NOFILE %llu (was %llu, hard limit %llu)",
          (unsigned long long)rl.rlim_cur, (unsigned long long)was, (unsigned long long)rl.rlim_max);
}

static void hook_room_move(void *arg, sfu_room_rec_t *r, const char *type, json_t *msg) {
  (void)arg;
  if (migrator) sfu_migrator_on_room_msg(migrator, r, type, msg);
}

static void hook_room_gone(void *arg, sfu_room_rec_t *r, int crashed) {
  if (migrator) sfu_migrator_on_room_gone(migrator, r); /* a move of it fails */
  if (rrelay) sfu_rrelay_room_gone(rrelay, r); /* its links to other nodes close */
  if (whip) sfu_whip_on_room_gone(whip, r);
  if (r->origin_id[0]) { /* a relay: its room goes on, its clients join it again */
    sfu_ws_on_room_gone(arg, r, SFU_WS_RELAY_GONE, "relay gone: join again");
    return;
  }
  if (fleet && strcmp(r->end_reason, "migrated") != 0) /* a room that moved: not ours */
    sfu_fleet_release(fleet, r->id, r->name);
  sfu_ws_on_room_gone(arg, r, crashed ? SFU_WS_ROOM_CRASHED : SFU_WS_ROOM_CLOSED,
                      crashed ? "room crashed" : "room closed");
}
static uv_signal_t sig_int, sig_term, sig_hup, sig_usr2;
static char exe_path[1024];
static int main_argc;
static char **main_argv;
static int signals_seen;

/* Shutting down waits for the rooms to close and for the fleet to be left. */
static int shutdown_waits;

static void shutdown_part_done(uv_loop_t *loop) {
  if (--shutdown_waits == 0) {
    sfu_log(SFU_LOG_INFO, "sfud", "all rooms closed; exiting");
    uv_stop(loop);
  }
}

static void on_supervisor_done(sfu_supervisor_t *s, void *arg) {
  (void)s;
  shutdown_part_done(arg);
}

static void on_fleet_left(void *arg) { shutdown_part_done(arg); }

static void on_signal(uv_signal_t *h, int signum) {
  if (signals_seen++ == 0) {
    sfu_log(SFU_LOG_INFO, "sfud", "signal %d: shutting down", signum);
    sfu_http_stop_listening(http);
    sfu_migrator_stop(migrator); /* moves in flight fail: their rooms stay and end here */
    sfu_http_set_migrator(http, NULL);
    sfu_http_set_rrelay(http, NULL);
    shutdown_waits = fleet ? 2 : 1;
    if (fleet) sfu_fleet_leave(fleet, on_fleet_left, h->loop);
    sfu_supervisor_shutdown(sup, on_supervisor_done, h->loop);
  } else {
    sfu_log(SFU_LOG_WARN, "sfud", "signal %d again: killing rooms now", signum);
    cfg.shutdown_grace_ms = 0; /* the next tick kills whatever is left */
  }
}

static void on_hup(uv_signal_t *h, int signum) {
  (void)h;
  sfu_log(SFU_LOG_INFO, "sfud", "signal %d: reloading the TLS certificate", signum);
  sfu_http_reload_tls(http);
}

static void on_usr2(uv_signal_t *h, int signum) {
  (void)signum;
  if (signals_seen) return; /* shutting down */
  sfu_upgrade_parts_t p = {&cfg, sup, http, ws, events, fleet, migrator, exe_path, main_argc, main_argv};
  sfu_upgrade_begin(h->loop, &p);
}

static void default_room_binary(void) {
  char exe[1024];
  size_t n = sizeof(exe);
  if (cfg.room_binary[0] || uv_exepath(exe, &n) != 0) return;
  snprintf(cfg.room_binary, sizeof(cfg.room_binary), "%s/sfu-room", dirname(exe));
}

int main(int argc, char **argv) {
  char err[512];
  const char *info;
  uv_loop_t *loop = uv_default_loop();

  size_t exe_len = sizeof(exe_path);
  if (uv_exepath(exe_path, &exe_len) != 0) exe_path[0] = '\0';
  main_argc = argc;
  main_argv = argv;
  signal(SIGPIPE, SIG_IGN);
  signal(SIGXFSZ, SIG_IGN); /* a file-size limit is an EFBIG the journal handles */
  sfu_config_defaults(&cfg);
  int rv = sfu_config_parse_args(&cfg, argc, argv, &info, err, sizeof(err));
  if (rv < 0) {
    int checking = 0; /* --check-config answers 1 for any configuration it refuses */
    for (int i = 1; i < argc; i++) checking |= strcmp(argv[i], "--check-config") == 0;
    fprintf(stderr, "sfud: %s%s\n", checking ? "error: " : "", err);
    return checking ? 1 : 2;
  }
  if (rv == 1 && strcmp(info, "help") == 0) {
    static char usage[8192];
    sfu_config_usage(usage, sizeof(usage));
    fputs(usage, stdout);
    return 0;
  }
  if (rv == 1) {
    printf("sfud %s\nsrtp: %s\nlibuv %s\n", sfu_version(), sfu_srtp_description(),
           uv_version_string());
    return 0;
  }
  if (rv == 0 && cfg.print_config) return sfu_config_write(&cfg, stdout) == 0 ? 0 : 1;
  if (rv == 0 && cfg.check_config) {
    static sfu_confcheck_t report;
    sfu_confcheck_init(&report);
    if (sfu_config_finish(&cfg, err, sizeof(err)) != 0) sfu_confcheck_add(&report, 1, "%s", err);
    default_room_binary();
    sfu_confcheck_run(&cfg, &report);
    sfu_confcheck_print(&cfg, &report, stdout, stderr);
    return report.errors ? 1 : 0;
  }
  if (sfu_config_finish(&cfg, err, sizeof(err)) != 0 ||
      sfu_config_check_rtc_bind(&cfg, err, sizeof(err)) != 0) { /* rooms bind them later */
    fprintf(stderr, "sfud: %s\n", err);
    return 2;
  }
  default_room_binary();
  if (access(cfg.room_binary, X_OK) != 0) {
    fprintf(stderr, "sfud: room binary '%s' is not executable (set --room-binary)\n",
            cfg.room_binary);
    return 2;
  }
  sfu_log_set_level((sfu_log_level_t)sfu_log_parse_level(cfg.log_level));
  sfu_metrics_init(&metrics);
  raise_nofile();

  json_t *adopted = NULL; /* what an upgrade handed over */
  if (cfg.adopt_state[0] && !(adopted = sfu_upgrade_load(cfg.adopt_state, err, sizeof(err)))) {
    fprintf(stderr, "sfud: %s\n", err);
    return 2;
  }
  if (sfu_events_open(&events, loop, &cfg, &metrics) != 0) return 1;
  if (sfu_supervisor_create(&sup, loop, &cfg, &metrics) != 0) return 1;
  sfu_supervisor_set_events(sup, events);
  if (sfu_ws_create(&ws, loop, &cfg, sup) != 0) return 1;
  sfu_ws_set_metrics(ws, &metrics);
  if (sfu_whip_create(&whip, loop, &cfg, sup, ws) != 0) return 1;
  sfu_supervisor_hooks_t hooks = {ws, hook_room_msg, hook_room_gone, hook_room_drained,
                                  hook_room_move, hook_link_out, hook_moderate};
  sfu_supervisor_set_hooks(sup, &hooks);
  char rooms_dir[560];
  snprintf(rooms_dir, sizeof(rooms_dir), "%s/rooms", cfg.data_dir);
  if (mkdir(rooms_dir, 0700) != 0 && errno != EEXIST)
    sfu_log(SFU_LOG_WARN, "sfud", "cannot create %s: %s (rooms end with sfud)", rooms_dir,
            strerror(errno));
  if (!adopted) { /* rooms left running by an sfud that died (recover.h) */
    int rooms = 0;
    json_t *left = sfu_recover_rooms(sup, &cfg, events, &rooms);
    if (rooms > 0) {
      int sessions = sfu_ws_import(ws, left);
      sfu_log(SFU_LOG_WARN, "sfud", "took over %d rooms and %d sessions of an sfud that died",
              rooms, sessions);
    }
    json_decref(left);
  }
  /* the webhook first: a bad webhook setting stops sfud before it listens */
  if (cfg.webhook_url[0]) {
    if (sfu_webhook_start(&webhook, loop, &cfg, events, &metrics) != 0) return 2;
    sfu_events_on_durable(events, on_durable, webhook);
  }
  if (sfu_http_start(&http, loop, &cfg, sup, ws, &metrics,
                     adopted ? (int)json_integer_value(json_object_get(adopted, "listener_fd"))
                             : -1) != 0)
    return 1;
  if (adopted) {
    sfu_supervisor_set_draining(sup, json_is_true(json_object_get(adopted, "draining")));
    int rooms = sfu_supervisor_adopt(sup, adopted);
    int sessions = sfu_ws_import(ws, json_object_get(adopted, "sessions"));
    sfu_ws_skip_ids(ws, (uint32_t)json_integer_value(json_object_get(adopted, "last_session_id")));
    sfu_log(SFU_LOG_INFO, "upgrade", "upgrade: adopted %d rooms, %d sessions", rooms, sessions);
  }
  sfu_http_set_events(http, events);
  sfu_http_set_whip(http, whip);
  if (cfg.etcd_url[0]) {
    if (sfu_fleet_start(&fleet, loop, &cfg, sup, &metrics, sfu_http_base_url(http),
                        sfu_http_ws_url(http)) != 0)
      return 2;
    const char *lease = json_string_value(
        json_object_get(json_object_get(adopted, "fleet"), "lease"));
    if (lease && strtoll(lease, NULL, 10) != 0)
      sfu_fleet_keep_lease(fleet, strtoll(lease, NULL, 10));
    else if (!adopted && sfu_fleet_saved_lease(&cfg)) /* the lease of an sfud that died */
      sfu_fleet_keep_lease(fleet, sfu_fleet_saved_lease(&cfg));
    sfu_http_set_fleet(http, fleet);
    sfu_fleet_set_events(fleet, events);
    if (sfu_migrator_create(&migrator, loop, &cfg, sup, ws, fleet, sfu_http_ws_url(http)) != 0)
      return 1;
    sfu_migrator_set_events(migrator, events);
    sfu_http_set_migrator(http, migrator);
    if (sfu_rrelay_create(&rrelay, &cfg, sup, fleet, sfu_http_base_url(http),
                          sfu_http_ws_url(http)) != 0)
      return 1;
    sfu_http_set_rrelay(http, rrelay);
  }

  uv_signal_init(loop, &sig_int);
  uv_signal_init(loop, &sig_term);
  uv_signal_start(&sig_int, on_signal, SIGINT);
  uv_signal_start(&sig_term, on_signal, SIGTERM);
  uv_signal_init(loop, &sig_hup);
  uv_signal_start(&sig_hup, on_hup, SIGHUP);
  uv_signal_init(loop, &sig_usr2);
  uv_signal_start(&sig_usr2, on_usr2, SIGUSR2);
  json_decref(adopted);

  sfu_log(SFU_LOG_INFO, "sfud", "sfud %s up: %s; srtp %s", sfu_version(),
          sfu_http_base_url(http), sfu_srtp_description());
  if (cfg.api_key_generated || cfg.token_secret_generated) {
    fprintf(stderr,
            "\n  Development keys (set --api-key / --token-secret to choose your own):\n"
            "    API key:      %s\n    token secret: %s\n\n"
            "  Try:  curl -s -H 'Authorization: Bearer %s' -d '{}' %s/v1/rooms\n\n",
            cfg.api_key, cfg.token_secret, cfg.api_key, sfu_http_base_url(http));
  }
  if (cfg.web_root[0])
    fprintf(stderr, "  Demo page: %s/%s\n\n", sfu_http_base_url(http),
            cfg.dev ? "" : "web/  (start with --dev 1 so it can mint tokens)");

  uv_run(loop, UV_RUN_DEFAULT);
  sfu_events_close(events); /* syncs what the last rooms reported */
  sfu_supervisor_destroy(sup);
  sfu_migrator_destroy(migrator);
  return 0;
}
