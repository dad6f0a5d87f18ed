/*
 * webhook.c -- one batch in flight, from the journal, until acknowledged.
 *
 * A batch is the next durable records after the journal's ack watermark
 * (at most BATCH_MAX). It is POSTed with a fresh timestamp and HMAC-SHA256
 * signature on every attempt (docs/webhooks.md), over h2o's HTTP/1 client:
 *
 *   2xx                   -> ack the batch in the journal (its segments go),
 *                            send the next one at once
 *   5xx, 401, 408, 429,   -> retry the same records after a backoff:
 *   no answer, refused       1 s doubling to 5 min, with 50-100 % jitter
 *   other 4xx             -> park: the batch is written to
 *                            <data_dir>/parked/<first>-<last>.json, logged,
 *                            counted, and acked so delivery goes on
 *
 * Records of a room keep their order because they keep the journal's; the
 * receiver de-duplicates by id (a batch may arrive twice if the answer is
 * lost).
 *
 * An https:// URL is spoken over TLS 1.2+ (tls.c): the receiver's chain is
 * verified against webhook_tls_ca_file or the system store, h2o checks its
 * host name, and webhook_tls_pin, when set, must match its key. A failed
 * verification is a failed attempt (retried with backoff, logged).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <h2o.h>
#include <h2o/http1client.h>
#include <openssl/hmac.h>

#include "sfu/base/log.h"
#include "sfu/base/sfu.h"
#include "sfu/node/tls.h"
#include "sfu/node/webhook.h"

#define BATCH_MAX 200
#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 300000
#define IO_TIMEOUT_MS 10000

struct sfu_webhook_s {
  uv_loop_t *loop;
  const sfu_config_t *cfg;
  sfu_events_t *events;
  sfu_metrics_t *metrics;
  h2o_url_t url;                 /* parsed webhook_url */
  h2o_http1client_ctx_t ctx;     /* h2o client context on our loop */
  h2o_timeout_t io_timeout;
  h2o_multithread_receiver_t getaddr_receiver;
  h2o_multithread_queue_t *queue;
  uv_timer_t timer;              /* next attempt */
  int in_flight;                 /* a request is out */
  uint64_t backoff_ms;           /* current retry delay, 0 = none */
  /* the batch being delivered */
  uint64_t first, last;          /* its seqs */
  char *request;                 /* head + body */
  h2o_iovec_t reqbuf;
  char *body;                    /* body alone, for parking */
  int status;                    /* answer status */
};

static void on_timer(uv_timer_t *t);

static void schedule(sfu_webhook_t *w, uint64_t ms) {
  if (!w->in_flight) uv_timer_start(&w->timer, on_timer, ms, 0);
}

static void finish_batch(sfu_webhook_t *w) {
  free(w->request);
  free(w->body);
  w->request = w->body = NULL;
  w->in_flight = 0;
}

static void retry_later(sfu_webhook_t *w, const char *why) {
  w->backoff_ms = w->backoff_ms ? w->backoff_ms * 2 : BACKOFF_MIN_MS;
  if (w->backoff_ms > BACKOFF_MAX_MS) w->backoff_ms = BACKOFF_MAX_MS;
  uint32_t r = sfu_random_u32();
  uint64_t delay = w->backoff_ms / 2 + r % (w->backoff_ms / 2 + 1); /* 50-100 % */
  w->metrics->webhook_failures++;
  sfu_log(SFU_LOG_WARN, "webhook", "batch %llu-%llu not delivered (%s); retry in %llu ms",
          (unsigned long long)w->first, (unsigned long long)w->last, why,
          (unsigned long long)delay);
  finish_batch(w);
  schedule(w, delay);
}

static void park(sfu_webhook_t *w) {
  char path[700];
  snprintf(path, sizeof(path), "%s/parked", w->cfg->data_dir);
  mkdir(path, 0700);
  snprintf(path, sizeof(path), "%s/parked/%llu-%llu.json", w->cfg->data_dir,
           (unsigned long long)w->first, (unsigned long long)w->last);
  FILE *f = fopen(path, "w");
  int ok = f && fputs(w->body, f) >= 0;
  if (f && fclose(f) != 0) ok = 0;
  if (!ok) { /* cannot keep it aside: keep it in the journal and retry */
    retry_later(w, "refused, and cannot park it");
    return;
  }
  w->metrics->webhook_parked++;
  sfu_log(SFU_LOG_ERROR, "webhook", "control plane refused batch %llu-%llu with %d: parked in %s",
          (unsigned long long)w->first, (unsigned long long)w->last, w->status, path);
  sfu_events_ack(w->events, w->last);
  finish_batch(w);
  schedule(w, 0);
}

static void done(sfu_webhook_t *w) {
  int st = w->status;
  if (st >= 200 && st < 300) {
    w->metrics->webhook_batches++;
    w->backoff_ms = 0;
    sfu_events_ack(w->events, w->last);
    finish_batch(w);
    schedule(w, 0);
  } else if (st >= 500 || st == 401 || st == 408 || st == 429) {
    char why[32];
    snprintf(why, sizeof(why), "status %d", st);
    retry_later(w, why);
  } else {
    park(w);
  }
}

static int on_body(h2o_http1client_t *c, const char *err) {
  sfu_webhook_t *w = c->data;
  if (err != NULL && err != h2o_http1client_error_is_eos) {
    retry_later(w, err);
    return -1;
  }
  h2o_buffer_consume(&c->sock->input, c->sock->input->size);
  if (err == h2o_http1client_error_is_eos) done(w);
  return 0;
}

static h2o_http1client_body_cb on_head(h2o_http1client_t *c, const char *err, int minor,
                                       int status, h2o_iovec_t msg, h2o_header_t *headers,
                                       size_t nheaders, int rlen) {
  sfu_webhook_t *w = c->data;
  if (err != NULL && err != h2o_http1client_error_is_eos) {
    retry_later(w, err);
    return NULL;
  }
  w->status = status;
  if (err == h2o_http1client_error_is_eos) {
    done(w);
    return NULL;
  }
  return on_body;
}

static h2o_http1client_head_cb on_connect(h2o_http1client_t *c, const char *err,
                                          h2o_iovec_t **reqbufs, size_t *n, int *is_head) {
  sfu_webhook_t *w = c->data;
  if (err != NULL) {
    retry_later(w, err);
    return NULL;
  }
  *reqbufs = &w->reqbuf;
  *n = 1;
  *is_head = 0;
  return on_head;
}

/* "v1=" + hex HMAC-SHA256 of "<ts>.<body>" with the webhook secret. */
static void sign(const char *secret, const char *ts, const char *body, size_t len, char out[72]) {
  unsigned char mac[32];
  unsigned int maclen = 0;
  size_t tl = strlen(ts);
  char *msg = malloc(tl + 1 + len);
  memcpy(msg, ts, tl);
  msg[tl] = '.';
  memcpy(msg + tl + 1, body, len);
  HMAC(EVP_sha256(), secret, (int)strlen(secret), (unsigned char *)msg, tl + 1 + len, mac, &maclen);
  free(msg);
  static const char hex[] = "0123456789abcdef";
  memcpy(out, "v1=", 3);
  for (unsigned i = 0; i < 32; i++) {
    out[3 + 2 * i] = hex[mac[i] >> 4];
    out[4 + 2 * i] = hex[mac[i] & 15];
  }
  out[67] = '\0';
}

static void on_timer(uv_timer_t *t) {
  sfu_webhook_t *w = t->data;
  uint64_t next;
  if (w->in_flight) return;
  json_t *recs = sfu_events_list(w->events, sfu_events_acked(w->events), BATCH_MAX, &next);
  if (json_array_size(recs) == 0) {
    json_decref(recs);
    return; /* nothing new; kick() wakes us */
  }
  w->first = (uint64_t)json_integer_value(json_object_get(json_array_get(recs, 0), "seq"));
  w->last = next;
  json_t *batch = json_pack("{s:s, s:o}", "node", sfu_events_node_id(w->events), "records", recs);
  w->body = json_dumps(batch, JSON_COMPACT);
  json_decref(batch);
  size_t blen = strlen(w->body);
  char ts[24], sig[72];
  snprintf(ts, sizeof(ts), "%lld", (long long)(sfu_wall_ms() / 1000));
  sign(w->cfg->webhook_secret, ts, w->body, blen, sig);
  size_t cap = blen + 1024 + w->url.path.len + w->url.authority.len;
  w->request = malloc(cap);
  int n = snprintf(w->request, cap,
                   "POST %.*s HTTP/1.1\r\nHost: %.*s\r\nContent-Type: application/json\r\n"
                   "Content-Length: %zu\r\nX-SFU-Timestamp: %s\r\nX-SFU-Signature: %s\r\n"
                   "X-SFU-Batch: %llu-%llu\r\nConnection: close\r\n\r\n",
                   (int)w->url.path.len, w->url.path.base, (int)w->url.authority.len,
                   w->url.authority.base, blen, ts, sig, (unsigned long long)w->first,
                   (unsigned long long)w->last);
  memcpy(w->request + n, w->body, blen);
  w->reqbuf = h2o_iovec_init(w->request, (size_t)n + blen);
  w->in_flight = 1;
  w->status = 0;
  h2o_http1client_connect(NULL, w, &w->ctx, w->url.host, h2o_url_get_port(&w->url),
                          w->ctx.ssl_ctx != NULL, on_connect);
}

void sfu_webhook_kick(sfu_webhook_t *w) {
  if (w && !w->in_flight && w->backoff_ms == 0 && !uv_is_active((uv_handle_t *)&w->timer))
    schedule(w, 50); /* a short delay gathers a few records into one batch */
}

int sfu_webhook_start(sfu_webhook_t **out, uv_loop_t *loop, const sfu_config_t *cfg,
                      sfu_events_t *events, sfu_metrics_t *metrics) {
  char err[512];
  *out = NULL;
  sfu_webhook_t *w = calloc(1, sizeof(*w));
  if (!w) return SFU_ENOMEM;
  if (h2o_url_parse(cfg->webhook_url, SIZE_MAX, &w->url) != 0 ||
      (w->url.scheme != &H2O_URL_SCHEME_HTTP && w->url.scheme != &H2O_URL_SCHEME_HTTPS)) {
    sfu_log(SFU_LOG_ERROR, "webhook", "webhook_url '%s' is not an http:// or https:// URL",
            cfg->webhook_url);
    free(w);
    return SFU_EINVAL;
  }
  if (w->url.scheme == &H2O_URL_SCHEME_HTTPS &&
      !(w->ctx.ssl_ctx = sfu_tls_client_ctx(cfg->webhook_tls_ca_file, cfg->webhook_tls_pin, err,
                                            sizeof(err)))) {
    sfu_log(SFU_LOG_ERROR, "webhook", "%s", err);
    free(w);
    return SFU_EINVAL;
  }
  w->loop = loop;
  w->cfg = cfg;
  w->events = events;
  w->metrics = metrics;
  w->queue = h2o_multithread_create_queue(loop);
  h2o_multithread_register_receiver(w->queue, &w->getaddr_receiver, h2o_hostinfo_getaddr_receiver);
  h2o_timeout_init(loop, &w->io_timeout, IO_TIMEOUT_MS);
  w->ctx.loop = loop;
  w->ctx.getaddr_receiver = &w->getaddr_receiver;
  w->ctx.io_timeout = &w->io_timeout;
  uv_timer_init(loop, &w->timer);
  w->timer.data = w;
  uv_unref((uv_handle_t *)&w->timer);
  sfu_log(SFU_LOG_INFO, "webhook", "delivering records to %s", cfg->webhook_url);
  schedule(w, 0); /* what an earlier run left undelivered */
  *out = w;
  return 0;
}
