/*
 * httpc.c -- one-shot HTTP/1.1 requests over h2o's client (httpc.h).
 *
 * Each request owns a libuv timer bounding it as a whole and the h2o
 * client while one is open. It ends in finish(): the callback runs (unless
 * cancelled), the h2o client is cancelled if it is still open, and the
 * request is freed once its timer handle has closed. h2o frees its client
 * itself after any callback that reports an error or the end of the body,
 * and after a callback that refuses to go on; those paths clear r->client
 * first.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <h2o.h>
#include <h2o/http1client.h>

#include "sfu/node/httpc.h"

struct sfu_httpc_s {
  h2o_http1client_ctx_t ctx;
  h2o_timeout_t io_timeout;
  h2o_multithread_receiver_t getaddr_receiver;
  h2o_multithread_queue_t *queue;
  int timeout_ms;
};

struct sfu_httpc_req_s {
  sfu_httpc_t *c;
  h2o_http1client_t *client;   /* open h2o client, or NULL */
  uv_timer_t timer;            /* the whole request's deadline */
  sfu_httpc_cb cb;             /* NULL once finished or cancelled */
  sfu_httpc_data_cb on_data;   /* streamed: the body goes here */
  void *arg;
  h2o_url_t url;
  char *urlbuf;                /* what url's views point into */
  char *request;               /* head + body */
  h2o_iovec_t reqbuf;
  int status;
  char *location;              /* the answer's Location, or NULL */
  char *body;                  /* the answer's body so far, NUL-terminated */
  size_t len;
};

static void on_timer_closed(uv_handle_t *h) {
  sfu_httpc_req_t *r = h->data;
  free(r->urlbuf);
  free(r->request);
  free(r->location);
  free(r->body);
  free(r);
}

/* Ends the request: the callback (if still wanted), then the resources. */
static void finish(sfu_httpc_req_t *r, const char *err) {
  sfu_httpc_cb cb = r->cb;
  r->cb = NULL;
  if (r->client) {
    h2o_http1client_cancel(r->client);
    r->client = NULL;
  }
  if (uv_is_closing((uv_handle_t *)&r->timer)) return;
  uv_timer_stop(&r->timer);
  if (cb) {
    if (err)
      cb(r->arg, 0, NULL, NULL, 0, err);
    else
      cb(r->arg, r->status, r->location, r->body ? r->body : "", r->len, NULL);
  }
  uv_close((uv_handle_t *)&r->timer, on_timer_closed);
}

static void on_deadline(uv_timer_t *t) { finish(t->data, "timed out"); }

static int on_body(h2o_http1client_t *client, const char *err) {
  sfu_httpc_req_t *r = client->data;
  h2o_buffer_t *in = client->sock->input;
  if (err != NULL && err != h2o_http1client_error_is_eos) {
    r->client = NULL;
    finish(r, err);
    return -1;
  }
  if (r->on_data && in->size) {
    r->on_data(r->arg, in->bytes, in->size);
    h2o_buffer_consume(&client->sock->input, in->size);
    in = client->sock->input; /* consume may have swapped the buffer */
  }
  if (r->len + in->size > SFU_HTTPC_MAX_BODY) {
    r->client = NULL;
    finish(r, "answer too large");
    return -1;
  }
  if (in->size) {
    char *b = realloc(r->body, r->len + in->size + 1);
    if (!b) {
      r->client = NULL;
      finish(r, "out of memory");
      return -1;
    }
    memcpy(b + r->len, in->bytes, in->size);
    r->body = b;
    r->len += in->size;
    r->body[r->len] = '\0';
    h2o_buffer_consume(&client->sock->input, in->size);
  }
  if (err == h2o_http1client_error_is_eos) {
    r->client = NULL;
    finish(r, NULL);
  }
  return 0;
}

static h2o_http1client_body_cb on_head(h2o_http1client_t *client, const char *err, int minor,
                                       int status, h2o_iovec_t msg, h2o_header_t *headers,
                                       size_t nheaders, int rlen) {
  sfu_httpc_req_t *r = client->data;
  (void)minor, (void)msg, (void)rlen;
  if (err != NULL && err != h2o_http1client_error_is_eos) {
    r->client = NULL;
    finish(r, err);
    return NULL;
  }
  r->status = status;
  for (size_t i = 0; i < nheaders; i++) {
    if (h2o_lcstris(headers[i].name->base, headers[i].name->len, H2O_STRLIT("location"))) {
      free(r->location);
      r->location = strndup(headers[i].value.base, headers[i].value.len);
    }
  }
  if (err == h2o_http1client_error_is_eos) {
    r->client = NULL;
    finish(r, NULL);
    return NULL;
  }
  return on_body;
}

static h2o_http1client_head_cb on_connect(h2o_http1client_t *client, const char *err,
                                          h2o_iovec_t **reqbufs, size_t *n, int *is_head) {
  sfu_httpc_req_t *r = client->data;
  if (err != NULL) {
    r->client = NULL;
    finish(r, err);
    return NULL;
  }
  *reqbufs = &r->reqbuf;
  *n = 1;
  *is_head = 0;
  return on_head;
}

int sfu_httpc_create(sfu_httpc_t **out, uv_loop_t *loop, SSL_CTX *ssl_ctx, int timeout_ms) {
  sfu_httpc_t *c = calloc(1, sizeof(*c));
  if (!c) return -1;
  c->timeout_ms = timeout_ms;
  c->queue = h2o_multithread_create_queue(loop);
  h2o_multithread_register_receiver(c->queue, &c->getaddr_receiver,
                                    h2o_hostinfo_getaddr_receiver);
  h2o_timeout_init(loop, &c->io_timeout, (uint64_t)timeout_ms);
  c->ctx.loop = loop;
  c->ctx.getaddr_receiver = &c->getaddr_receiver;
  c->ctx.io_timeout = &c->io_timeout;
  if (ssl_ctx) {
    SSL_CTX_up_ref(ssl_ctx);
    c->ctx.ssl_ctx = ssl_ctx;
  }
  *out = c;
  return 0;
}

static sfu_httpc_req_t *start(sfu_httpc_t *c, const char *method, const char *url,
                              const char *headers, const char *body, size_t len,
                              sfu_httpc_data_cb on_data, sfu_httpc_cb cb, void *arg) {
  sfu_httpc_req_t *r = calloc(1, sizeof(*r));
  if (!r) return NULL;
  r->urlbuf = strdup(url);
  if (!r->urlbuf || h2o_url_parse(r->urlbuf, SIZE_MAX, &r->url) != 0 ||
      (r->url.scheme != &H2O_URL_SCHEME_HTTP && r->url.scheme != &H2O_URL_SCHEME_HTTPS) ||
      (r->url.scheme == &H2O_URL_SCHEME_HTTPS && !c->ctx.ssl_ctx)) {
    free(r->urlbuf);
    free(r);
    return NULL;
  }
  if (!headers) headers = "";
  size_t cap = strlen(method) + r->url.path.len + r->url.authority.len + strlen(headers) + len + 128;
  r->request = malloc(cap);
  if (!r->request) {
    free(r->urlbuf);
    free(r);
    return NULL;
  }
  int n = snprintf(r->request, cap,
                   "%s %.*s HTTP/1.1\r\nHost: %.*s\r\nConnection: close\r\n"
                   "Content-Length: %zu\r\n%s\r\n",
                   method, (int)r->url.path.len, r->url.path.base, (int)r->url.authority.len,
                   r->url.authority.base, len, headers);
  if (len) memcpy(r->request + n, body, len);
  r->reqbuf = h2o_iovec_init(r->request, (size_t)n + len);
  r->c = c;
  r->cb = cb;
  r->on_data = on_data;
  r->arg = arg;
  uv_timer_init(c->ctx.loop, &r->timer);
  r->timer.data = r;
  if (!on_data) uv_timer_start(&r->timer, on_deadline, (uint64_t)c->timeout_ms, 0);
  h2o_http1client_connect(&r->client, r, &c->ctx, r->url.host, h2o_url_get_port(&r->url),
                          r->url.scheme == &H2O_URL_SCHEME_HTTPS, on_connect);
  return r;
}

sfu_httpc_req_t *sfu_httpc_request(sfu_httpc_t *c, const char *method, const char *url,
                                   const char *headers, const char *body, size_t len,
                                   sfu_httpc_cb cb, void *arg) {
  return start(c, method, url, headers, body, len, NULL, cb, arg);
}

sfu_httpc_req_t *sfu_httpc_stream(sfu_httpc_t *c, const char *method, const char *url,
                                  const char *headers, const char *body, size_t len,
                                  sfu_httpc_data_cb on_data, sfu_httpc_cb cb, void *arg) {
  return start(c, method, url, headers, body, len, on_data, cb, arg);
}

void sfu_httpc_cancel(sfu_httpc_req_t *r) {
  r->cb = NULL;
  finish(r, NULL);
}
