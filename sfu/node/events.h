/*
 * events.h -- the node's event log: every event and usage record is
 * appended to the journal (sfu/node/journal.c) and made durable before
 * the loop next waits, then served to the control plane (GET /v1/events,
 * webhooks: docs/webhooks.md).
 */
#ifndef SFU_EVENTS_H
#define SFU_EVENTS_H

#include <jansson.h>
#include <uv.h>

#include "sfu/node/config.h"
#include "sfu/node/metrics.h"

typedef struct sfu_events_s sfu_events_t;

/* Opens <data_dir>/journal, recovering what is there. */
int sfu_events_open(sfu_events_t **out, uv_loop_t *loop, const sfu_config_t *cfg,
                    sfu_metrics_t *metrics);
/* Records one event of `type` for `room_id` with `fields` (reference
 * taken; may be NULL). Never fails from the caller's view: a record the
 * journal refuses (disk full) waits in memory, bounded, and is retried. */
void sfu_events_emit(sfu_events_t *e, const char *type, const char *room_id, json_t *fields);
/* Up to `limit` durable records with seq > after, as the API shows them;
 * *next is the seq to ask after next time. */
json_t *sfu_events_list(sfu_events_t *e, uint64_t after, int limit, uint64_t *next);
/* Delivery watermark: records up to `seq` reached the control plane. */
int sfu_events_ack(sfu_events_t *e, uint64_t seq);
uint64_t sfu_events_acked(const sfu_events_t *e);
/* Called after records become durable (the webhook sender). */
void sfu_events_on_durable(sfu_events_t *e, void (*cb)(void *arg), void *arg);
/* Health: 0 ok, else the journal's error (records are waiting in memory). */
int sfu_events_error(const sfu_events_t *e);
size_t sfu_events_pending(const sfu_events_t *e);
/* Records the webhook receiver has not acknowledged: journaled after the
 * delivery watermark, and those waiting in memory. */
uint64_t sfu_events_backlog(const sfu_events_t *e);
const char *sfu_events_node_id(const sfu_events_t *e);
void sfu_events_close(sfu_events_t *e);
/* Upgrade: 1 while a sync runs on the thread pool or records wait in
 * memory; once 0, sfu_events_sync_now() makes everything durable on the
 * calling thread (0, or the journal's error). */
int sfu_events_busy(const sfu_events_t *e);
int sfu_events_sync_now(sfu_events_t *e);

#endif
