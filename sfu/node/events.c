/*
 * events.c -- records into the journal, made durable off the loop.
 *
 * emit() appends at once (one writev) and marks the log dirty; a uv_prepare
 * handle -- it runs just before the loop blocks for I/O -- starts one
 * fdatasync for everything appended so far (group commit) on libuv's
 * thread pool, so that a slow disk never stalls the loop (a 4 s fdatasync
 * under disk contention used to stop sfud's heartbeats and cost every room
 * on the node). While it runs, appends go on; what they add waits for the
 * next sync, started when this one ends. A record is never reported
 * (GET /v1/events, webhooks) before it is durable: readers see only synced
 * records.
 *
 * Disk full or I/O error: the record is kept in a bounded in-memory queue
 * (MAX_PENDING) and retried before every new append and every turn; the
 * error shows in /healthz and /metrics. Records beyond the bound are counted
 * as lost (sfu_events_lost_total) -- loudly, never silently.
 *
 * Stored record: {"type", "ts_ms", "room_id", ...fields}. The id
 * ("<node>-<seq>") and seq are added when records are read, because the
 * journal assigns the seq.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <errno.h>
#include <sys/stat.h>

#include "sfu/node/events.h"
#include "sfu/base/log.h"
#include "sfu/base/sfu.h"
#include "sfu/node/journal.h"

#define MAX_PENDING 100000

typedef struct pending_s {
  char *json;
  size_t len;
  int64_t ts_ms;
  struct pending_s *next;
} pending_t;

struct sfu_events_s {
  sfu_journal_t *j;
  sfu_metrics_t *metrics;
  uv_loop_t *loop;
  uv_prepare_t syncer;
  uv_work_t work;          /* the fdatasync underway, on the thread pool */
  sfu_journal_sync_t sync; /* its half of the journal's state */
  int syncing;             /* work is underway */
  int dirty;               /* appended since the last sync began */
  int error;               /* last journal error, 0 = healthy */
  pending_t *head, *tail;  /* refused by the journal, oldest first */
  size_t npending;
  char node[64];
  void (*durable_cb)(void *arg); /* after a sync */
  void *durable_arg;
};

static int append_one(sfu_events_t *e, const char *json, size_t len, int64_t ts) {
  int rv = sfu_journal_append(e->j, json, len, ts, NULL);
  if (rv == 0) {
    e->dirty = 1;
    e->metrics->events_journaled++;
  } else if (e->error != rv) {
    sfu_log(SFU_LOG_ERROR, "events", "journal append failed: %s; records wait in memory",
            sfu_strerror(rv));
  }
  e->error = rv;
  return rv;
}

static void retry_pending(sfu_events_t *e) {
  while (e->head) {
    pending_t *p = e->head;
    if (append_one(e, p->json, p->len, p->ts_ms) != 0) return;
    e->head = p->next;
    if (!e->head) e->tail = NULL;
    e->npending--;
    free(p->json);
    free(p);
  }
}

static void sync_failed(sfu_events_t *e, int rv) {
  if (e->error != rv) sfu_log(SFU_LOG_ERROR, "events", "journal sync failed: %s", sfu_strerror(rv));
  e->error = rv;
}

static void sync_work(uv_work_t *w) {
  sfu_events_t *e = w->data;
  sfu_journal_sync_run(&e->sync);
}

static void sync_done(uv_work_t *w, int status) {
  sfu_events_t *e = w->data;
  (void)status; /* never cancelled */
  e->syncing = 0;
  int rv = sfu_journal_sync_end(e->j, &e->sync);
  if (rv != 0) {
    sync_failed(e, rv);
    return;
  }
  if (e->durable_cb) e->durable_cb(e->durable_arg);
}

static void on_prepare(uv_prepare_t *h) {
  sfu_events_t *e = h->data;
  if (e->head) retry_pending(e);
  if (!e->dirty || e->syncing) return;
  e->dirty = 0;
  int rv = sfu_journal_sync_begin(e->j, &e->sync);
  if (rv < 0) {
    sync_failed(e, rv);
  } else if (rv == 1) {
    e->syncing = 1;
    uv_queue_work(e->loop, &e->work, sync_work, sync_done);
  }
}

int sfu_events_open(sfu_events_t **out, uv_loop_t *loop, const sfu_config_t *cfg,
                    sfu_metrics_t *metrics) {
  char dir[600];
  sfu_journal_stats_t st;
  sfu_events_t *e = calloc(1, sizeof(*e));
  *out = NULL;
  if (!e) return SFU_ENOMEM;
  e->metrics = metrics;
  e->loop = loop;
  e->work.data = e;
  if (cfg->node_id[0])
    snprintf(e->node, sizeof(e->node), "%s", cfg->node_id);
  else if (gethostname(e->node, sizeof(e->node) - 1) != 0)
    snprintf(e->node, sizeof(e->node), "node");
  if (mkdir(cfg->data_dir, 0700) != 0 && errno != EEXIST) { /* the journal makes its own dir */
    sfu_log(SFU_LOG_ERROR, "events", "cannot create %s: %s", cfg->data_dir, strerror(errno));
    free(e);
    return -errno;
  }
  snprintf(dir, sizeof(dir), "%s/journal", cfg->data_dir);
  int rv = sfu_journal_open(&e->j, dir, NULL, &st);
  if (rv != 0) {
    sfu_log(SFU_LOG_ERROR, "events", "cannot open the journal in %s: %s", dir, sfu_strerror(rv));
    free(e);
    return rv;
  }
  sfu_log(SFU_LOG_INFO, "events",
          "journal %s: %llu records in %llu segments, seq %llu..%llu, acked %llu, "
          "torn tail %llu bytes, corrupt %llu bytes",
          dir, (unsigned long long)st.records, (unsigned long long)st.segments,
          (unsigned long long)st.first_seq, (unsigned long long)st.last_seq,
          (unsigned long long)st.acked_seq, (unsigned long long)st.torn_bytes_truncated,
          (unsigned long long)st.corrupt_skipped);
  uv_prepare_init(loop, &e->syncer);
  e->syncer.data = e;
  uv_prepare_start(&e->syncer, on_prepare);
  uv_unref((uv_handle_t *)&e->syncer);
  *out = e;
  return 0;
}

void sfu_events_emit(sfu_events_t *e, const char *type, const char *room_id, json_t *fields) {
  json_t *rec = json_pack("{s:s, s:I}", "type", type, "ts_ms", (json_int_t)sfu_wall_ms());
  if (room_id) json_object_set_new(rec, "room_id", json_string(room_id));
  if (fields) json_object_update(rec, fields);
  json_decref(fields);
  char *text = json_dumps(rec, JSON_COMPACT);
  int64_t ts = json_integer_value(json_object_get(rec, "ts_ms"));
  json_decref(rec);
  if (!text) return;
  size_t len = strlen(text);
  if (e->head) retry_pending(e); /* keep the order */
  if (!e->head && append_one(e, text, len, ts) == 0) {
    free(text);
    return;
  }
  if (e->npending >= MAX_PENDING) {
    e->metrics->events_lost++;
    sfu_log(SFU_LOG_ERROR, "events", "record lost, %zu waiting already: %.200s", e->npending,
            text);
    free(text);
    return;
  }
  pending_t *p = malloc(sizeof(*p));
  if (!p) {
    e->metrics->events_lost++;
    free(text);
    return;
  }
  *p = (pending_t){text, len, ts, NULL};
  if (e->tail)
    e->tail->next = p;
  else
    e->head = p;
  e->tail = p;
  e->npending++;
}

json_t *sfu_events_list(sfu_events_t *e, uint64_t after, int limit, uint64_t *next) {
  json_t *out = json_array();
  sfu_journal_iter_t *it;
  *next = after;
  if (sfu_journal_iter_open(e->j, after, &it) != 0) return out;
  uint64_t seq;
  const uint8_t *data;
  size_t len;
  char id[96];
  while (limit-- > 0 && sfu_journal_iter_next(it, &seq, NULL, &data, &len) == 1) {
    json_t *r = json_loadb((const char *)data, len, 0, NULL);
    if (!json_is_object(r)) { /* cannot happen: we wrote it; keep the seq moving */
      json_decref(r);
      r = json_pack("{s:s}", "type", "unreadable");
    }
    snprintf(id, sizeof(id), "%s-%llu", e->node, (unsigned long long)seq);
    json_object_set_new(r, "id", json_string(id));
    json_object_set_new(r, "seq", json_integer((json_int_t)seq));
    json_array_append_new(out, r);
    *next = seq;
  }
  sfu_journal_iter_close(it);
  return out;
}

int sfu_events_ack(sfu_events_t *e, uint64_t seq) { return sfu_journal_ack(e->j, seq); }
uint64_t sfu_events_acked(const sfu_events_t *e) { return sfu_journal_acked_seq(e->j); }

void sfu_events_on_durable(sfu_events_t *e, void (*cb)(void *arg), void *arg) {
  e->durable_cb = cb;
  e->durable_arg = arg;
}

int sfu_events_error(const sfu_events_t *e) { return e->error; }
size_t sfu_events_pending(const sfu_events_t *e) { return e->npending; }
const char *sfu_events_node_id(const sfu_events_t *e) { return e->node; }

uint64_t sfu_events_backlog(const sfu_events_t *e) {
  uint64_t last = sfu_journal_last_seq(e->j), acked = sfu_journal_acked_seq(e->j);
  return (last > acked ? last - acked : 0) + e->npending;
}

int sfu_events_busy(const sfu_events_t *e) { return e->syncing || sfu_events_pending(e) > 0; }

int sfu_events_sync_now(sfu_events_t *e) {
  retry_pending(e);
  return sfu_events_pending(e) ? sfu_events_error(e) ? sfu_events_error(e) : SFU_EAGAIN
                               : sfu_journal_sync(e->j);
}

void sfu_events_close(sfu_events_t *e) {
  if (!e) return;
  while (e->syncing) uv_run(e->loop, UV_RUN_ONCE); /* the sync underway ends */
  retry_pending(e);
  sfu_journal_sync(e->j); /* what came after it: at once, the loop is done */
  uv_close((uv_handle_t *)&e->syncer, NULL);
  sfu_journal_close(e->j);
  e->j = NULL;
}
