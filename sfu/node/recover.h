/*
 * recover.h -- taking over the rooms of an sfud that died
 * (docs/internals/supervisor.md "When sfud crashes").
 *
 * A room outlives its sfud for room_orphan_grace_s: the call goes on, and
 * the room listens on <data_dir>/rooms/<id>.sock for the next sfud. That
 * sfud, started on the same data_dir (by systemd, say), finds each room's
 * record in <data_dir>/rooms/<id>.json, connects, reads the room's hello
 * (who is in the room, with their sessions' resume tokens), and adopts it
 * as a room that is not its child (r->foreign: its end is its channel
 * closing). The sessions come back detached, so clients resume on the new
 * sfud as after a dropped socket. A record whose room is gone is reported
 * crashed (end_reason "sfud_died") and removed.
 */
#ifndef SFU_RECOVER_H
#define SFU_RECOVER_H

#include <jansson.h>

#include "sfu/node/config.h"
#include "sfu/node/supervisor.h"

struct sfu_events_s;

/* Adopts what is left; *rooms gets how many. Returns the sessions to list
 * again (sfu_ws_import()'s shape; new reference, maybe empty). */
json_t *sfu_recover_rooms(sfu_supervisor_t *sup, const sfu_config_t *cfg,
                          struct sfu_events_s *events, int *rooms);

#endif
