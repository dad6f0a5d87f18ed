/*
 * http_api.h -- sfud's HTTP server: the control-plane API (docs/api.md),
 * health and metrics, on libh2o over the process's libuv loop.
 */
#ifndef SFU_SIGNALING_HTTP_API_H
#define SFU_SIGNALING_HTTP_API_H

#include <uv.h>

#include "sfu/node/config.h"
#include "sfu/node/metrics.h"
#include "sfu/node/supervisor.h"
#include "sfu/node/ws.h"

typedef struct sfu_http_s sfu_http_t;

/* Binds cfg->listen_host:listen_port and starts serving. Returns 0 or a
 * negative error (the reason is logged). */
/* listen_fd >= 0: accept on that listening socket (handed over by an
 * upgrade) instead of binding listen_host:listen_port. */
int sfu_http_start(sfu_http_t **out, uv_loop_t *loop, const sfu_config_t *cfg,
                   sfu_supervisor_t *sup, sfu_ws_t *ws, sfu_metrics_t *metrics, int listen_fd);
/* Upgrade: the listening socket with close-on-exec cleared, or -1. */
int sfu_http_export_listener(sfu_http_t *h);
/* Reloads tls_cert_file/tls_key_file for new connections (SIGHUP); open
 * ones keep the certificate they started with. 0, or a negative error
 * (logged; the previous certificate stays). No-op without TLS. */
int sfu_http_reload_tls(sfu_http_t *h);
/* Base URL clients use ("http://127.0.0.1:7880" or "https://..."), with
 * the bound port. */
const char *sfu_http_base_url(const sfu_http_t *h);
/* Serves GET /v1/events from this log. */
struct sfu_events_s;
void sfu_http_set_events(sfu_http_t *h, struct sfu_events_s *e);
/* With a fleet, rooms are placed across it and requests for rooms that run
 * on another node are passed to that node (docs/fleet.md). */
struct sfu_fleet_s;
void sfu_http_set_fleet(sfu_http_t *h, struct sfu_fleet_s *f);
/* With a fleet: rooms move between nodes (POST /v1/rooms/{id}/migrate, a
 * drain with "migrate", and the new node's side: sfu/node/migrate.h). */
struct sfu_migrator_s;
void sfu_http_set_migrator(sfu_http_t *h, struct sfu_migrator_s *m);
/* Relays of rooms on other nodes (sfu/node/rrelay.c): POST
 * /v1/rooms/{id}/relays with a node, /v1/node/relays, /v1/node/links.
 * NULL (alone, or shutting down): those answer 404 no_fleet. */
struct sfu_rrelay_s;
void sfu_http_set_rrelay(sfu_http_t *h, struct sfu_rrelay_s *m);
struct sfu_whip_s;
/* Where /whip/ and /whep/ go (sfu/node/whip.h; `w` borrowed). */
void sfu_http_set_whip(sfu_http_t *h, struct sfu_whip_s *w);
/* This node's client signaling URL (ws:// or wss://). */
const char *sfu_http_ws_url(const sfu_http_t *h);
/* Stops accepting connections (shutdown). Open connections finish. */
void sfu_http_stop_listening(sfu_http_t *h);

#endif
