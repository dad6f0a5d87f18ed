/*
 * rrelay.h -- relays of a room on other nodes of the fleet
 * (docs/internals/relay.md, "Relays on other nodes").
 *
 * A relay on another node is a relay process there like any other; what
 * crosses between the two sfuds is what sfud carries between the two ends
 * of a link on one node (link_open, link_local, link_remote, link_msg,
 * link_close: docs/internals/ipc.md), as HTTP requests to the other
 * node's API with the fleet's key:
 *
 *   POST /v1/node/relays          the room's node asks another to start a
 *                                 relay of it (the relay's id chosen by the
 *                                 room's node)
 *   POST /v1/node/links/{link}    one link message for the end there
 *
 * Each link keeps the messages for the other node in order and sends one
 * at a time (each request on a connection of its own could overtake the
 * one before), retrying a failed one a few times. Media never goes through
 * sfud: the two room processes' agents check each other's addresses and
 * run DTLS and SRTP between them, as on one node.
 *
 * Owned by the loop thread; needs the fleet (its API client and node list).
 */
#ifndef SFU_RRELAY_H
#define SFU_RRELAY_H

#include <jansson.h>

#include "sfu/node/config.h"
#include "sfu/node/supervisor.h"

struct sfu_fleet_s;
typedef struct sfu_rrelay_s sfu_rrelay_t;

/* api_url, ws_url: this node's, as the fleet knows them. */
int sfu_rrelay_create(sfu_rrelay_t **out, const sfu_config_t *cfg, sfu_supervisor_t *sup,
                      struct sfu_fleet_s *fleet, const char *api_url, const char *ws_url);
void sfu_rrelay_destroy(sfu_rrelay_t *m);

/* The room's node: a relay of room r on node `node` of the fleet. `done`
 * runs once with an HTTP status and a JSON body (reference given): 201
 * {relay_id, node, ws_url, state}, or an error body. */
typedef void (*sfu_rrelay_done_cb)(void *arg, int status, json_t *body);
void sfu_rrelay_add(sfu_rrelay_t *m, sfu_room_rec_t *r, const char *node, sfu_rrelay_done_cb done,
                    void *arg);
/* The other node: POST /v1/node/relays. The answer's body (new reference)
 * and its status in *status. */
json_t *sfu_rrelay_accept(sfu_rrelay_t *m, const char *body, size_t len, int *status);
/* Either node: POST /v1/node/links/{link}. */
json_t *sfu_rrelay_link_in(sfu_rrelay_t *m, const char *link, const char *body, size_t len,
                           int *status);
/* The supervisor's hook link_out (its arg is m). */
void sfu_rrelay_link_out(void *m, const char *room_id, const char *link, json_t *msg);
/* The room's node: a moderation change (hooks.moderate) to every relay of
 * room `room_id` on another node, in order with its link messages. */
void sfu_rrelay_moderate(void *m, const char *room_id, json_t *msg);
/* A room here ended: its relays on other nodes are told (link_close). */
void sfu_rrelay_room_gone(sfu_rrelay_t *m, const sfu_room_rec_t *r);
/* Room `room_id`'s relays on other nodes, for the API (new reference). */
json_t *sfu_rrelay_json(const sfu_rrelay_t *m, const char *room_id);

#endif
