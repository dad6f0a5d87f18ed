/*
 * metrics.c -- Prometheus text rendering.
 *
 * Buckets for spawn latency are chosen around the 5 ms spawn target: fine
 * steps from 0.5 ms to 25 ms, coarse after. Rendering writes into a caller
 * buffer with snprintf; the output is small (a few KiB) and rendered only on
 * a scrape.
 *
 * Packet counters live in the rooms and restart with each room process;
 * the node keeps its own sums, fed with what each room's counters grew by
 * since its previous report, so sfu_packets_*_total only ever rise while
 * rooms come and go (a PromQL rate() over them is the node's traffic).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "sfu/node/metrics.h"

static const double spawn_bounds[SFU_HISTO_BUCKETS] = {
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075,
    0.01,   0.015, 0.025, 0.05,  0.1,   0.5};

const sfu_pkt_counter_t sfu_pkt_counters[SFU_PKT_N] = {
    {NULL, "rtp_in", NULL},
    {NULL, "rtp_out", NULL},
    {NULL, "drop_unknown_ssrc", "unknown_ssrc"},
    {NULL, "drop_malformed", "malformed"},
    {NULL, "drop_muted", "muted"},
    {NULL, "drop_send", "send"},
    {NULL, "drop_not_rtp", "not_rtp"},
    {NULL, "drop_srtp", "srtp"},
    {NULL, "drop_ssrc_limit", "ssrc_limit"},
    {NULL, "drop_transport_send", "transport_send"},
    {NULL, "drop_foreign_source", "foreign_source"},
    {NULL, "drop_rtx_probe", "rtx_probe"},
    {NULL, "drop_relay_ssrc", "relay_ssrc"},
    {"video", "drop_svc", "svc"},
    {"video", "drop_temporal", "temporal"},
    {"audio", "drop_not_loudest", "not_loudest"},
};

void sfu_metrics_add_packets(sfu_metrics_t *m, uint64_t seen[SFU_PKT_N],
                             const uint64_t now[SFU_PKT_N]) {
  for (size_t i = 0; i < SFU_PKT_N; i++) {
    m->packets[i] += now[i] >= seen[i] ? now[i] - seen[i] : now[i];
    seen[i] = now[i];
  }
}

void sfu_metrics_init(sfu_metrics_t *m) {
  memset(m, 0, sizeof(*m));
  m->spawn_seconds.bounds = spawn_bounds;
}

void sfu_histogram_observe(sfu_histogram_t *h, double v) {
  size_t i;
  for (i = 0; i < SFU_HISTO_BUCKETS; i++)
    if (v <= h->bounds[i]) break;
  if (i < SFU_HISTO_BUCKETS)
    h->counts[i]++;
  else
    h->overflow++;
  h->count++;
  h->sum += v;
}

typedef struct {
  char *buf;
  size_t cap, len;
} out_t;

static void put(out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(out_t *o, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(o->len < o->cap ? o->buf + o->len : NULL,
                    o->len < o->cap ? o->cap - o->len : 0, fmt, ap);
  va_end(ap);
  if (n > 0) o->len += (size_t)n;
}

static void counter(out_t *o, const char *name, const char *help, uint64_t v) {
  put(o, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name,
      (unsigned long long)v);
}

static void gauge(out_t *o, const char *name, const char *help, double v) {
  put(o, "# HELP %s %s\n# TYPE %s gauge\n%s %.6g\n", name, help, name, name, v);
}

static void histogram(out_t *o, const char *name, const char *help,
                      const sfu_histogram_t *h) {
  uint64_t cum = 0;
  put(o, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
  for (size_t i = 0; i < SFU_HISTO_BUCKETS; i++) {
    cum += h->counts[i];
    put(o, "%s_bucket{le=\"%g\"} %llu\n", name, h->bounds[i], (unsigned long long)cum);
  }
  put(o, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.9g\n%s_count %llu\n", name,
      (unsigned long long)h->count, name, h->sum, name,
      (unsigned long long)h->count);
}

size_t sfu_metrics_render(const sfu_metrics_t *m, const sfu_gauges_t *g,
                          char *buf, size_t cap) {
  out_t o = {buf, cap, 0};
  gauge(&o, "sfu_rooms", "Room processes alive.", g->rooms);
  gauge(&o, "sfu_rooms_crashed_listed", "Crashed rooms still listed by the API.", g->rooms_crashed);
  gauge(&o, "sfu_participants", "Participants across all rooms.", g->participants);
  gauge(&o, "sfu_draining", "1 while the node accepts no new rooms.", g->draining);
  counter(&o, "sfu_rooms_created_total", "Room processes spawned.", m->rooms_created);
  counter(&o, "sfu_rooms_finished_total", "Rooms that ended cleanly.", m->rooms_finished);
  counter(&o, "sfu_room_crashes_total", "Rooms that died unexpectedly or were killed.", m->room_crashes);
  counter(&o, "sfu_room_spawn_failures_total", "Room spawns that failed.", m->spawn_failures);
  counter(&o, "sfu_room_heartbeat_kills_total", "Rooms killed for missing heartbeats.", m->heartbeat_kills);
  counter(&o, "sfu_ipc_bad_messages_total", "Malformed IPC messages from rooms.", m->ipc_bad_messages);
  counter(&o, "sfu_http_requests_total", "Control-plane API requests.", m->http_requests);
  counter(&o, "sfu_http_client_errors_total", "API requests answered 4xx.", m->http_errors_4xx);
  counter(&o, "sfu_http_server_errors_total", "API requests answered 5xx.", m->http_errors_5xx);
  counter(&o, "sfu_tokens_minted_total", "Join tokens issued.", m->tokens_minted);
  counter(&o, "sfu_usage_records_total", "Usage checkpoint records received from rooms.",
          m->usage_records);
  counter(&o, "sfu_events_journaled_total", "Event and usage records appended to the journal.",
          m->events_journaled);
  counter(&o, "sfu_events_lost_total", "Records lost: journal failing and memory bound reached.",
          m->events_lost);
  counter(&o, "sfu_webhook_batches_total", "Batches the control plane acknowledged.",
          m->webhook_batches);
  counter(&o, "sfu_webhook_failures_total", "Delivery attempts that will be retried.",
          m->webhook_failures);
  counter(&o, "sfu_webhook_parked_total", "Batches refused with 4xx and parked.",
          m->webhook_parked);
  gauge(&o, "sfu_http_connections", "Open HTTP and WebSocket connections.", m->http_connections);
  gauge(&o, "sfu_http_connections_max", "Cap on open connections in effect.", m->http_connections_max);
  counter(&o, "sfu_http_accept_failures_total", "Connections that accept(2) failed on.",
          m->accept_failures);
  counter(&o, "sfu_http_connections_refused_total",
          "Connections refused: over the global or per-address cap.", m->connections_refused);
  counter(&o, "sfu_http_requests_rejected_total",
          "Requests refused for conflicting Content-Length or Transfer-Encoding.", m->http_rejected);
  counter(&o, "sfu_ws_detached_total",
          "Joined sessions whose WebSocket dropped without a leave (resumable).", m->ws_detached);
  counter(&o, "sfu_ws_resumes_total", "Sessions resumed on a new WebSocket.", m->ws_resumes);
  counter(&o, "sfu_ws_resume_failures_total",
          "Resumes refused: unknown, already used or expired token, or another room.",
          m->ws_resume_failures);
  counter(&o, "sfu_ws_resume_expired_total",
          "Detached sessions that ended without a resume (grace over, overflow, kick, room end).",
          m->ws_resume_expired);
  counter(&o, "sfu_tls_reloads_total", "TLS certificate reloads that took effect.",
          m->tls_reloads);
  counter(&o, "sfu_tls_reload_failures_total",
          "TLS certificate reloads refused (the previous certificate stayed).",
          m->tls_reload_failures);
  if (g->fleet_registered >= 0)
    gauge(&o, "sfu_fleet_registered", "1 while this node holds a lease etcd confirmed.",
          g->fleet_registered);
  counter(&o, "sfu_fleet_registrations_total", "Leases taken in etcd.", m->fleet_registrations);
  counter(&o, "sfu_fleet_leases_lost_total", "Leases etcd no longer knew (keys gone).",
          m->fleet_leases_lost);
  counter(&o, "sfu_fleet_etcd_errors_total", "etcd requests that failed or timed out.",
          m->fleet_etcd_errors);
  counter(&o, "sfu_fleet_claim_conflicts_total",
          "Live rooms whose id or name another node held when this one registered again.",
          m->fleet_claim_conflicts);
  counter(&o, "sfu_fleet_proxied_total", "API requests passed to the node that runs the room.",
          m->fleet_proxied);
  counter(&o, "sfu_ws_close_timeouts_total",
          "WebSockets closed because the client never answered the close.", m->ws_close_timeouts);
  counter(&o, "sfu_ipc_congestions_total",
          "Times a room's IPC queue reached its high watermark (client sessions paused).",
          m->ipc_congestions);
  counter(&o, "sfu_ws_backlog_closes_total",
          "Sessions closed with 1013: more held messages than their bound.", m->ws_backlog_closes);
  counter(&o, "sfu_packets_received_total", "RTP packets the rooms received from publishers.",
          m->packets[SFU_PKT_RTP_IN]);
  counter(&o, "sfu_packets_forwarded_total", "RTP packets the rooms sent to subscribers.",
          m->packets[SFU_PKT_RTP_OUT]);
  put(&o, "# HELP sfu_packets_dropped_total Packets the rooms did not forward, by reason.\n"
          "# TYPE sfu_packets_dropped_total counter\n");
  for (size_t i = SFU_PKT_DROP_FIRST; i < SFU_PKT_N; i++)
    put(&o, "sfu_packets_dropped_total{reason=\"%s\"} %llu\n", sfu_pkt_counters[i].reason,
        (unsigned long long)m->packets[i]);
  if (g->journal_backlog >= 0)
    put(&o, "# HELP sfu_journal_backlog_records Records the webhook receiver has not "
            "acknowledged yet.\n# TYPE sfu_journal_backlog_records gauge\n"
            "sfu_journal_backlog_records %lld\n", (long long)g->journal_backlog);
  histogram(&o, "sfu_room_spawn_seconds", "Time from spawn to the room's ready message.", &m->spawn_seconds);
  gauge(&o, "sfu_process_cpu_seconds", "CPU time used by sfud itself.", g->cpu_seconds);
  if (o.len < cap) buf[o.len] = '\0';
  return o.len;
}

double sfu_loadavg_1m(void) {
  double l = 0;
  FILE *f = fopen("/proc/loadavg", "r");
  if (f) {
    if (fscanf(f, "%lf", &l) != 1) l = 0;
    fclose(f);
  }
  return l;
}
