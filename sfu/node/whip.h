/*
 * whip.h -- WHIP (RFC 9725) and WHEP ingest and egress over HTTP
 * (docs/whip.md).
 *
 * A WHIP publisher or a WHEP viewer is a participant of its room like a
 * WebSocket client, with its HTTP session resource standing in for the
 * socket: POST joins with the join token and hands the room its offer,
 * the room's answer comes back as the 201 response; PATCH (trickle ICE,
 * ICE restart) and DELETE (leave) act on the resource. Sessions share the
 * WebSocket sessions' id space (sfu_ws_new_id()), so the room cannot tell
 * them apart. Owns its sessions; one thread (sfud's loop).
 */
#ifndef SFU_NODE_WHIP_H
#define SFU_NODE_WHIP_H

#include <h2o.h>
#include <jansson.h>
#include <uv.h>

#include "sfu/node/config.h"
#include "sfu/node/supervisor.h"
#include "sfu/node/ws.h"

typedef struct sfu_whip_s sfu_whip_t;

/* Sessions of one node: the WebSocket sessions' ids come from `ws`
 * (borrowed). 0 or SFU_ENOMEM. */
int sfu_whip_create(sfu_whip_t **out, uv_loop_t *loop, const sfu_config_t *cfg,
                    sfu_supervisor_t *sup, sfu_ws_t *ws);
/* A request under /whip/ or /whep/ (also /v1/whip/, /v1/whep/): `seg`
 * are the path segments from "whip"/"whep" on, n of them (2: the room's
 * endpoint, 3: a session resource). Always answers, now or when the room
 * does. */
int sfu_whip_handle(sfu_whip_t *w, h2o_req_t *req, char seg[][72], int n);
/* A room's message for a session (client_msg, client_close): 1 if it was
 * one of ours (handled), 0 if not. */
int sfu_whip_on_room_msg(sfu_whip_t *w, sfu_room_rec_t *r, const char *type, json_t *msg);
/* The room ended: its sessions end (a pending POST gets 404). */
void sfu_whip_on_room_gone(sfu_whip_t *w, sfu_room_rec_t *r);
/* Sessions now. */
int sfu_whip_session_count(const sfu_whip_t *w);

#endif
