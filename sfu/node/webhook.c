/*
 * webhook.c -- one batch in flight, from the journal, until acknowledged.
 *
 * A batch is the next durable records after the journal's ack watermark
 * (at most BATCH_MAX). It is POSTed with a fresh timestamp and HMAC-SHA256
 * signature on every attempt (docs/webhooks.md), over httpc (h2o's HTTP/1
 * client, one connection per attempt, 10 s at most):
 *
 *   2xx                   -> ack the batch in the journal (its segments go),
 *                            send the next one at once
 *   5xx, 401, 408, 429,   -> retry the same records after a backoff:
 *   no answer, refused       webhook_retry_min_ms (1 s) doubling to 5 min,
 *                            with 50-100 % jitter
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
#include <openssl/hmac.h>

#include "sfu/base/log.h"
#include "sfu/base/sfu.h"
#include "sfu/node/httpc.h"
#include "sfu/node/tls.h"
#include "sfu/node/webhook.h"

#define BATCH_MAX 200
#define BACKOFF_MIN_MS 1000  /* webhook_retry_min_ms, when not set */
#define BACKOFF_MAX_MS 300000
#define IO_TIMEOUT_MS 10000

struct sfu_webhook_s {
  uv_loop_t *loop;
  const sfu_config_t *cfg;
  sfu_events_t *events;
  sfu_metrics_t *metrics;
  sfu_httpc_t *http;             /* on our loop; verifies https:// receivers */
  uv_timer_t timer;              /* next attempt */
  int in_flight;                 /* a request is out */
  uint64_t backoff_ms;           /* current retry delay, 0 = none */
  /* the batch being delivered */
  uint64_t first, last;          /* its seqs */
  char *body;                    /* its body, for parking */
  int status;                    /* answer status */
};

static void on_timer(uv_timer_t *t);

static void schedule(sfu_webhook_t *w, uint64_t ms) {
  if (!w->in_flight) uv_timer_start(&w->timer, on_timer, ms, 0);
}

static void finish_batch(sfu_webhook_t *w) {
  free(w->body);
  w->body = NULL;
  w->in_flight = 0;
}

static void retry_later(sfu_webhook_t *w, const char *why) {
  uint64_t min = w->cfg->webhook_retry_min_ms > 0 ? (uint64_t)w->cfg->webhook_retry_min_ms
                                                  : BACKOFF_MIN_MS;
  w->backoff_ms = w->backoff_ms ? w->backoff_ms * 2 : min;
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

static void on_answer(void *arg, int status, const char *location, const char *body,
                      size_t len, const char *err) {
  sfu_webhook_t *w = arg;
  (void)location, (void)body, (void)len;
  if (err) {
    retry_later(w, err);
    return;
  }
  w->status = status;
  done(w);
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
  char headers[512];
  snprintf(headers, sizeof(headers),
           "Content-Type: application/json\r\nX-SFU-Timestamp: %s\r\nX-SFU-Signature: %s\r\n"
           "X-SFU-Batch: %llu-%llu\r\n",
           ts, sig, (unsigned long long)w->first, (unsigned long long)w->last);
  w->in_flight = 1;
  w->status = 0;
  if (!sfu_httpc_request(w->http, "POST", w->cfg->webhook_url, headers, w->body, blen, on_answer,
                         w))
    retry_later(w, "cannot send the request");
}

void sfu_webhook_kick(sfu_webhook_t *w) {
  if (w && !w->in_flight && w->backoff_ms == 0 && !uv_is_active((uv_handle_t *)&w->timer))
    schedule(w, 50); /* a short delay gathers a few records into one batch */
}

int sfu_webhook_start(sfu_webhook_t **out, uv_loop_t *loop, const sfu_config_t *cfg,
                      sfu_events_t *events, sfu_metrics_t *metrics) {
  char err[512];
  *out = NULL;
  h2o_url_t url;
  SSL_CTX *ssl = NULL;
  if (h2o_url_parse(cfg->webhook_url, SIZE_MAX, &url) != 0 ||
      (url.scheme != &H2O_URL_SCHEME_HTTP && url.scheme != &H2O_URL_SCHEME_HTTPS)) {
    sfu_log(SFU_LOG_ERROR, "webhook", "webhook_url '%s' is not an http:// or https:// URL",
            cfg->webhook_url);
    return SFU_EINVAL;
  }
  if (url.scheme == &H2O_URL_SCHEME_HTTPS &&
      !(ssl = sfu_tls_client_ctx(cfg->webhook_tls_ca_file, cfg->webhook_tls_pin, err,
                                 sizeof(err)))) {
    sfu_log(SFU_LOG_ERROR, "webhook", "%s", err);
    return SFU_EINVAL;
  }
  sfu_webhook_t *w = calloc(1, sizeof(*w));
  if (!w || sfu_httpc_create(&w->http, loop, ssl, IO_TIMEOUT_MS) != 0) {
    free(w);
    if (ssl) SSL_CTX_free(ssl);
    return SFU_ENOMEM;
  }
  if (ssl) SSL_CTX_free(ssl); /* the client keeps its own reference */
  w->loop = loop;
  w->cfg = cfg;
  w->events = events;
  w->metrics = metrics;
  uv_timer_init(loop, &w->timer);
  w->timer.data = w;
  uv_unref((uv_handle_t *)&w->timer);
  sfu_log(SFU_LOG_INFO, "webhook", "delivering records to %s", cfg->webhook_url);
  schedule(w, 0); /* what an earlier run left undelivered */
  *out = w;
  return 0;
}
