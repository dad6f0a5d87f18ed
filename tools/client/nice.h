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
 * o->full: a full, controlling agent (else ICE-lite, controlled). o->tcp:
 * ICE-TCP candidates too, or only (SFU_ICE_UDP_TCP, SFU_ICE_TCP_ONLY); its
 * streams are then read by libnice, off the uv_poll fast path. */
int sfu_nice_create(sfu_ice_t **out, uv_loop_t *loop, GMainContext *ctx,
                    const sfu_ice_opts_t *o);

#define SFU_NICE_MAX_RELAYS 8 /* TURN servers an agent knows */

/*
 * Adds a TURN server that the streams created from now on allocate on (a
 * welcome's `ice_servers`, docs/signaling.md): `url` is
 * turn:HOST[:PORT][?transport=udp|tcp] (port 3478 if absent); a HOST that
 * is not an IP address is resolved here, blocking. Strings are copied.
 * 0 when added; 1 when skipped: turns: URLs (libnice 0.1.21 speaks TLS to
 * TURN servers only in its Google and Microsoft compatibility modes, not
 * in the RFC 5245 mode used here) and other transports; SFU_EINVAL for a
 * URL it cannot read or a host that does not resolve; SFU_E2BIG past
 * SFU_NICE_MAX_RELAYS.
 *
 * A stream with TURN servers is read by libnice itself (its receive
 * callback on `ctx`), not by the uv_poll fast path: its TURN sockets are
 * libnice's own and not in nice_agent_get_sockets().
 */
int sfu_nice_add_relay(sfu_ice_t *ice, const char *url, const char *username,
                       const char *password);
/* on = 1: streams created from now on use relayed candidates only
 * (libnice's force-relay), as a browser with iceTransportPolicy "relay". */
void sfu_nice_relay_only(sfu_ice_t *ice, int on);

#endif
