/*
 * metrics.h -- sfud's counters and histograms, rendered in the Prometheus
 * text exposition format (version 0.0.4) for GET /metrics.
 *
 * Counters are plain integers owned by the loop thread; nothing here locks.
 */
#ifndef SFU_METRICS_H
#define SFU_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define SFU_HISTO_BUCKETS 12

/* The rooms' packet counters the node sums (a room's stats.packets, as in
 * GET /v1/rooms/{id}): received and forwarded RTP, then every drop, each
 * rendered as one reason of sfu_packets_dropped_total. */
enum {
  SFU_PKT_RTP_IN = 0,      /* packets.rtp_in */
  SFU_PKT_RTP_OUT,         /* packets.rtp_out */
  SFU_PKT_DROP_FIRST,      /* the drops from here on */
  SFU_PKT_N = SFU_PKT_DROP_FIRST + 14
};

/* Where counter i is in a room's stats: "packets" or its "video" or
 * "audio" object (`group`, NULL for "packets" itself), its key there, and
 * the reason label of a drop (NULL for the first two). */
typedef struct sfu_pkt_counter_s {
  const char *group;   /* NULL, "video" or "audio" */
  const char *key;     /* e.g. "drop_srtp" */
  const char *reason;  /* e.g. "srtp"; NULL: not a drop */
} sfu_pkt_counter_t;

extern const sfu_pkt_counter_t sfu_pkt_counters[SFU_PKT_N];

/* Cumulative histogram over fixed upper bounds (seconds). */
typedef struct sfu_histogram_s {
  const double *bounds;              /* SFU_HISTO_BUCKETS upper bounds, ascending */
  uint64_t counts[SFU_HISTO_BUCKETS]; /* observations <= bounds[i] (not cumulative) */
  uint64_t overflow;                 /* observations above the last bound */
  uint64_t count;                    /* all observations */
  double sum;                        /* their sum */
} sfu_histogram_t;

typedef struct sfu_metrics_s {
  uint64_t rooms_created;        /* spawned successfully */
  uint64_t rooms_finished;       /* ended cleanly (deleted, empty, shutdown) */
  uint64_t room_crashes;         /* ended any other way */
  uint64_t spawn_failures;       /* uv_spawn failed */
  uint64_t heartbeat_kills;      /* killed for not answering pings */
  uint64_t ipc_bad_messages;     /* malformed frames from rooms */
  uint64_t http_requests;        /* all API requests */
  uint64_t http_errors_4xx;      /* answered 4xx */
  uint64_t http_errors_5xx;      /* answered 5xx */
  uint64_t tokens_minted;        /* join tokens issued */
  uint64_t usage_records;        /* usage checkpoint records from rooms */
  uint64_t events_journaled;     /* records appended to the journal */
  uint64_t events_lost;          /* records the journal refused past the memory bound */
  uint64_t webhook_batches;      /* batches acknowledged by the control plane */
  uint64_t webhook_failures;     /* attempts to retry */
  uint64_t webhook_parked;       /* batches refused (4xx) and set aside */
  uint64_t accept_failures;      /* accept(2) failed (EMFILE, ENFILE, ...) */
  uint64_t connections_refused;  /* over max_connections or max_connections_per_ip */
  uint64_t ws_close_timeouts;    /* sockets closed: no close answer in time */
  uint64_t ipc_congestions;      /* episodes of a room's IPC above its high watermark */
  uint64_t ws_backlog_closes;    /* sessions closed (1013): held messages over bound */
  uint64_t http_rejected;        /* requests refused as ambiguous (smuggling) */
  uint64_t ws_detached;          /* joined sessions whose socket dropped (resumable) */
  uint64_t ws_resumes;           /* sessions taken over by a resume */
  uint64_t ws_resume_failures;   /* resumes refused (4014): unknown, used or expired token */
  uint64_t ws_resume_expired;    /* detached sessions that ended unresumed */
  uint64_t tls_reloads;          /* certificate reloads that took effect (SIGHUP) */
  uint64_t tls_reload_failures;  /* reloads refused: the previous certificate stayed */
  uint64_t fleet_registrations;  /* leases taken in etcd (the first, and after one was lost) */
  uint64_t fleet_leases_lost;    /* leases etcd no longer knew */
  uint64_t fleet_etcd_errors;    /* etcd requests that failed or timed out */
  uint64_t fleet_claim_conflicts; /* live rooms whose keys another node held on re-registering */
  uint64_t fleet_proxied;        /* API requests answered by another node */
  uint64_t packets[SFU_PKT_N];   /* rooms' packet counters, summed since sfud started
                                    (sfu_metrics_add_packets) */
  int http_connections;          /* gauge: open HTTP/WebSocket connections */
  int http_connections_max;      /* gauge: their cap in effect */
  sfu_histogram_t spawn_seconds; /* spawn -> room "ready" message */
} sfu_metrics_t;

void sfu_metrics_init(sfu_metrics_t *m);
void sfu_histogram_observe(sfu_histogram_t *h, double v);
/* One room process's packet counters as it reports them now (`now`, since
 * it started), after `seen` (what was counted of it so far, updated here):
 * adds what grew to m->packets. A counter below what was seen (a room
 * process that started again under the same record) adds its whole value. */
void sfu_metrics_add_packets(sfu_metrics_t *m, uint64_t seen[SFU_PKT_N],
                             const uint64_t now[SFU_PKT_N]);

/* Gauges sampled at render time. */
typedef struct sfu_gauges_s {
  int rooms;            /* live room processes */
  int rooms_crashed;    /* crashed rooms still listed */
  int participants;     /* across rooms */
  int draining;         /* 0/1 */
  double cpu_seconds;   /* sfud's own CPU time */
  int fleet_registered; /* 0/1; -1: no fleet (not rendered) */
  int64_t journal_backlog; /* records not yet acknowledged by the webhook
                            receiver (journaled or waiting in memory);
                            -1: no journal (not rendered) */
} sfu_gauges_t;

/* Renders everything; returns bytes written (truncated output is cut at a
 * line boundary) or the size needed when buf is too small. */
size_t sfu_metrics_render(const sfu_metrics_t *m, const sfu_gauges_t *g,
                          char *buf, size_t cap);

/* The host's 1-minute load average (/proc/loadavg), 0 if unreadable. */
double sfu_loadavg_1m(void);

#endif
