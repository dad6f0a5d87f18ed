/*
 * webhook.h -- delivery of the journal to the control plane as signed HTTP
 * POST batches (contract: docs/webhooks.md).
 */
#ifndef SFU_SIGNALING_WEBHOOK_H
#define SFU_SIGNALING_WEBHOOK_H

#include <uv.h>

#include "sfu/node/config.h"
#include "sfu/node/events.h"
#include "sfu/node/metrics.h"

typedef struct sfu_webhook_s sfu_webhook_t;

/* Starts delivering (cfg->webhook_url must be set). Returns 0 or an error
 * (bad URL: only http:// is supported). */
int sfu_webhook_start(sfu_webhook_t **out, uv_loop_t *loop, const sfu_config_t *cfg,
                      sfu_events_t *events, sfu_metrics_t *metrics);
/* Something new was journaled: deliver soon. */
void sfu_webhook_kick(sfu_webhook_t *w);

#endif
