/*
 * nice.h -- the client stack's ICE agent: libnice on a GLib context
 * (tools/client/gloop.c drives it from the libuv loop). Its streams are the
 * ones of sfu/net/ice.h, so the media transport (sfu/net/transport.c) runs
 * unchanged on top of it. Only tools/ and tests link it: the room has no
 * GLib.
 */
#ifndef SFU_CLIENT_NICE_H
#define SFU_CLIENT_NICE_H

#include <glib.h>

#include "sfu/net/ice.h"

/* The agent's timers run on `ctx`; its sockets are read from `loop`.
 * o->full: a full, controlling agent (else ICE-lite, controlled). */
int sfu_nice_create(sfu_ice_t **out, uv_loop_t *loop, GMainContext *ctx,
                    const sfu_ice_opts_t *o);

#endif
