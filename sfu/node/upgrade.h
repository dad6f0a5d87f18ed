/*
 * upgrade.h -- sfud replacing itself with the binary now at its path while
 * every call goes on (SIGUSR2; docs/internals/upgrade.md).
 */
#ifndef SFU_UPGRADE_H
#define SFU_UPGRADE_H

#include <jansson.h>
#include <uv.h>

#include "sfu/node/config.h"
#include "sfu/node/events.h"
#include "sfu/node/fleet.h"
#include "sfu/node/http_api.h"
#include "sfu/node/migrate.h"
#include "sfu/node/supervisor.h"
#include "sfu/node/ws.h"

typedef struct sfu_upgrade_parts_s {
  const sfu_config_t *cfg;
  sfu_supervisor_t *sup;
  sfu_http_t *http;
  sfu_ws_t *ws;
  sfu_events_t *events;
  sfu_fleet_t *fleet;  /* may be NULL */
  sfu_migrator_t *migrator; /* may be NULL */
  const char *exe;     /* the path sfud was started from */
  int argc;
  char **argv;         /* its arguments */
} sfu_upgrade_parts_t;

/* Starts an upgrade: once every room's IPC queue and the journal are
 * flushed, and every room that moved away has ended and its last usage
 * reached its new node (at most 2 s), the state is written and sfud
 * exec's `exe`. On
 * any failure it logs why and carries on. */
void sfu_upgrade_begin(uv_loop_t *loop, const sfu_upgrade_parts_t *p);

/* The state file an upgrade handed over (cfg->adopt_state), read and
 * removed, every descriptor it names close-on-exec again (the one place
 * that does it, before anything is spawned): NULL with err if it cannot
 * be used. */
json_t *sfu_upgrade_load(const char *path, char *err, size_t errlen);

#endif
