/*
 * http.c -- one-shot HTTP/1.1 requests over h2o's http1client, and the
 * connection step (sfu__h1_t) the WebSocket client shares.
 *
 * A request is one heap object: the sfu__h1_t (h2o context, timers, name
 * lookup), the serialized request, and the body being collected. It lives
 *
 *   sfu_http_request()  -> defer timer -> [uv_getaddrinfo] -> h2o connect
 *   -> on_connect (hands h2o the request bytes) -> on_head -> on_body...
 *   -> finish(): the user's callback, then sfu__h1_close()
 *   -> on_closed (both uv timers closed, lookup done): free
 *
 * h2o frees its client itself after any callback that ends the exchange,
 * so every such callback clears h1.client before returning; the deadline
 * (an entry on the same h2o_timeout_t, fired from its uv timer, never from
 * inside a client callback) is the only place that cancels a live client.
 *
 * Why per-request contexts: a load generator runs hundreds of these on one
 * loop; one uv timer each is cheap, and nothing needs a per-loop registry
 * or an explicit shutdown. h2o's own getaddrinfo thread is not used (see
 * http.h): h2o always gets a numeric address and connects directly. An
 * IPv4 one goes to h2o_http1client_connect() as a dotted string; that
 * function resolves anything else on its thread, so an IPv6 one goes
 * through a socket pool made for this exchange from the sockaddr
 * (h2o_socketpool_init_by_address(), capacity 1, no idle timer), which
 * connects with no lookup and is disposed of with the exchange.
 *
 * Memory: request bytes once, the body grown by doubling up to
 * SFU_HTTP_MAX_BODY (then the request fails with SFU_E2BIG).
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sfu/base/log.h"
#include "sfu/base/sfu.h"
#include "tools/client/http.h"

/* --- the connection step ------------------------------------------------ */

static void h1_maybe_closed(sfu__h1_t *h) {
  if (!h->closing || h->pending > 0) return;
  if (h->pooled) { /* the client is gone; a stolen socket was detached from it */
    h->pool._interval_cb.loop = NULL; /* no idle timer to close (h1_connect6) */
    h2o_socketpool_dispose(&h->pool);
    h->pooled = 0;
  }
  free(h->urlbuf);
  h->urlbuf = NULL;
  h->on_closed(h);
}

static void h1_on_handle_closed(uv_handle_t *handle) {
  sfu__h1_t *h = handle->data;
  h->pending--;
  h1_maybe_closed(h);
}

static void h1_connect(sfu__h1_t *h) {
  h2o_http1client_connect(&h->client, h->data, &h->ctx, h2o_iovec_init(h->addr, strlen(h->addr)),
                          h2o_url_get_port(&h->url), 0, h->on_connect);
}

/* IPv6: through this exchange's own socket pool, made from the sockaddr
 * (h2o_http1client_connect() would resolve "::1" on h2o's thread). */
static void h1_connect6(sfu__h1_t *h, const struct in6_addr *a6) {
  struct sockaddr_in6 sin6;
  memset(&sin6, 0, sizeof(sin6));
  sin6.sin6_family = AF_INET6;
  sin6.sin6_port = htons(h2o_url_get_port(&h->url));
  sin6.sin6_addr = *a6;
  inet_ntop(AF_INET6, a6, h->addr, sizeof(h->addr));
  h2o_socketpool_init_by_address(&h->pool, (struct sockaddr *)&sin6, sizeof(sin6), 0, 1);
  /* h2o 2.2.5 reads the time from the pool's interval loop when it
   * connects or takes a socket back (to expire idle ones: none here), but
   * sets that loop only with an idle timer (h2o_socketpool_set_timeout()),
   * a uv timer closed without a callback when the pool is disposed of: no
   * way to know when this memory may go. So the loop alone, cleared again
   * before the disposal. */
  h->pool._interval_cb.loop = h->loop;
  h->pooled = 1;
  h2o_http1client_connect_with_pool(&h->client, h->data, &h->ctx, &h->pool, h->on_connect);
}

static void h1_on_gai(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  sfu__h1_t *h = req->data;
  char err[400];
  h->resolving = 0;
  h->pending--;
  if (h->closing || status == UV_ECANCELED || !h2o_timeout_is_linked(&h->deadline)) {
    uv_freeaddrinfo(res); /* given up meanwhile: the owner was told already */
    h1_maybe_closed(h);
    return;
  }
  /* The first IPv4 address, else the first IPv6 one. */
  const struct addrinfo *ai = NULL;
  for (const struct addrinfo *i = status < 0 ? NULL : res; i; i = i->ai_next)
    if ((i->ai_family == AF_INET && (!ai || ai->ai_family != AF_INET)) ||
        (i->ai_family == AF_INET6 && !ai))
      ai = i;
  if (status < 0 || !ai) {
    snprintf(err, sizeof(err), "resolve %.*s: %s", (int)h->url.host.len, h->url.host.base,
             status < 0 ? uv_strerror(status) : "no IPv4 or IPv6 address");
    uv_freeaddrinfo(res);
    sfu__h1_disarm(h);
    h->on_fail(h, err, -EIO);
    return;
  }
  if (ai->ai_family == AF_INET6) {
    struct in6_addr a6 = ((const struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
    uv_freeaddrinfo(res);
    h1_connect6(h, &a6);
    return;
  }
  inet_ntop(AF_INET, &((const struct sockaddr_in *)ai->ai_addr)->sin_addr, h->addr,
            sizeof(h->addr));
  uv_freeaddrinfo(res);
  h1_connect(h);
}

static void h1_start_now(sfu__h1_t *h) {
  char host[256];
  struct in_addr a;
  struct in6_addr a6;
  if (h->url.host.len >= sizeof(host)) {
    h->on_fail(h, "resolve: host name too long", SFU_EINVAL);
    return;
  }
  memcpy(host, h->url.host.base, h->url.host.len);
  host[h->url.host.len] = '\0';
  h2o_timeout_link(h->loop, &h->timeout, &h->deadline);
  if (inet_pton(AF_INET, host, &a) == 1) {
    inet_ntop(AF_INET, &a, h->addr, sizeof(h->addr)); /* canonical dotted form */
    h1_connect(h);
    return;
  }
  if (inet_pton(AF_INET6, host, &a6) == 1) { /* from "[::1]": h2o_url_parse drops the brackets */
    h1_connect6(h, &a6);
    return;
  }
  struct addrinfo hints;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  h->gai.data = h;
  int rv = uv_getaddrinfo(h->loop, &h->gai, h1_on_gai, host, NULL, &hints);
  if (rv != 0) {
    char err[320];
    snprintf(err, sizeof(err), "resolve %s: %s", host, uv_strerror(rv));
    sfu__h1_disarm(h);
    h->on_fail(h, err, -EIO);
    return;
  }
  h->resolving = 1;
  h->pending++;
}

/* The whole exchange took too long: give up on whatever is in flight. Runs
 * from the timeout's own uv timer, never inside a client callback. */
static void h1_on_deadline(h2o_timeout_entry_t *entry) {
  sfu__h1_t *h = H2O_STRUCT_FROM_MEMBER(sfu__h1_t, deadline, entry);
  char err[64];
  if (h->resolving) uv_cancel((uv_req_t *)&h->gai); /* else its result is ignored */
  if (h->client) {
    h2o_http1client_cancel(h->client);
    h->client = NULL;
  }
  snprintf(err, sizeof(err), "timeout after %llu ms", (unsigned long long)h->timeout_ms);
  h->on_fail(h, err, SFU_ETIMEDOUT);
}

static void h1_on_defer(uv_timer_t *t) {
  sfu__h1_t *h = t->data;
  sfu__h1_cb cb = h->on_defer;
  h->on_defer = NULL;
  if (cb) cb(h);
}

int sfu__h1_init(sfu__h1_t *h, uv_loop_t *loop, const char *url, uint64_t timeout_ms,
                 void *data, h2o_http1client_connect_cb on_connect, sfu__h1_fail_cb on_fail) {
  memset(h, 0, sizeof(*h));
  size_t scheme; /* length of the scheme name; "ws://x" is read as "http://x" */
  if (strncmp(url, "ws://", 5) == 0)
    scheme = 2;
  else if (strncmp(url, "http://", 7) == 0)
    scheme = 4;
  else
    return SFU_EINVAL;
  size_t rest = strlen(url) - scheme; /* "://..." */
  if (!(h->urlbuf = malloc(4 + rest + 1))) return SFU_ENOMEM;
  memcpy(h->urlbuf, "http", 4);
  memcpy(h->urlbuf + 4, url + scheme, rest + 1);
  if (h2o_url_parse(h->urlbuf, SIZE_MAX, &h->url) != 0 || h->url.host.len == 0) {
    free(h->urlbuf);
    h->urlbuf = NULL;
    return SFU_EINVAL;
  }
  h->loop = loop;
  h->data = data;
  h->on_connect = on_connect;
  h->on_fail = on_fail;
  h->timeout_ms = timeout_ms;
  h2o_timeout_init(loop, &h->timeout, timeout_ms);
  h->timeout._backend.timer.data = h;
  h->deadline.cb = h1_on_deadline;
  h->ctx.loop = loop;
  h->ctx.io_timeout = &h->timeout;
  /* h2o 2.2.5's http1client answers a 101 either way (only its proxy reads
   * this field); set, it documents that upgrades are expected. */
  h->ctx.websocket_timeout = &h->timeout;
  h->ctx.getaddr_receiver = NULL; /* never used: h2o only ever gets numeric addresses */
  uv_timer_init(loop, &h->defer);
  h->defer.data = h;
  return 0;
}

void sfu__h1_defer(sfu__h1_t *h, sfu__h1_cb cb) {
  if (h->closing) return;
  h->on_defer = cb;
  uv_timer_start(&h->defer, h1_on_defer, 0, 0);
}

void sfu__h1_start(sfu__h1_t *h) { sfu__h1_defer(h, h1_start_now); }

void sfu__h1_disarm(sfu__h1_t *h) { h2o_timeout_unlink(&h->deadline); }

h2o_socket_t *sfu__h1_steal_socket(sfu__h1_t *h, h2o_http1client_t *client) {
  h2o_socket_t *sock = h2o_http1client_steal_socket(client);
  if (h->pooled) { /* else its close would count itself out of the disposed pool */
    sock->on_close.cb = NULL;
    sock->on_close.data = NULL;
  }
  return sock;
}

void sfu__h1_close(sfu__h1_t *h, sfu__h1_cb on_closed) {
  if (h->closing) return;
  h->closing = 1;
  h->on_closed = on_closed;
  h->on_defer = NULL;
  sfu__h1_disarm(h);
  if (h->client) {
    h2o_http1client_cancel(h->client);
    h->client = NULL;
  }
  if (h->resolving) uv_cancel((uv_req_t *)&h->gai); /* h1_on_gai still follows */
  /* Every entry must be off the list before its uv timer goes; the owner's
   * are its business, this is only a guard. */
  while (!h2o_linklist_is_empty(&h->timeout._entries))
    h2o_linklist_unlink(h->timeout._entries.next);
  h->pending += 2;
  uv_close((uv_handle_t *)&h->defer, h1_on_handle_closed);
  uv_close((uv_handle_t *)&h->timeout._backend.timer, h1_on_handle_closed);
}

/* --- one request -------------------------------------------------------- */

typedef struct http_req_s {
  sfu__h1_t h1;          /* connection, timers; first member */
  sfu_http_cb cb;        /* the user's */
  void *arg;
  char *request;         /* head + body, as sent */
  h2o_iovec_t reqbuf;    /* h2o's view of it */
  int status;            /* from the head */
  char *body;            /* collected, NUL-terminated when handed out */
  size_t body_len;
  size_t body_cap;
  int done;              /* the user was called */
} http_req_t;

static void req_free(sfu__h1_t *h) {
  http_req_t *r = (http_req_t *)h;
  free(r->request);
  free(r->body);
  free(r);
}

/* Calls the user once, then closes. The h2o client is gone or about to be
 * freed by h2o (the caller cleared h1.client). */
static void finish(http_req_t *r, const char *err, int code) {
  if (r->done) return;
  r->done = 1;
  sfu__h1_disarm(&r->h1);
  sfu_http_resp_t resp = {0};
  resp.err = err;
  resp.code = err ? (code ? code : -EIO) : 0;
  resp.status = err ? 0 : r->status;
  resp.body = err || !r->body ? "" : r->body;
  resp.body_len = err ? 0 : r->body_len;
  if (r->body) r->body[r->body_len] = '\0';
  r->cb(r->arg, &resp);
  sfu__h1_close(&r->h1, req_free);
}

static void finishf(http_req_t *r, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void finishf(http_req_t *r, int code, const char *fmt, ...) {
  char err[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, sizeof(err), fmt, ap);
  va_end(ap);
  finish(r, err, code);
}

static int timeout_code(const char *err) {
  return strstr(err, "timeout") ? SFU_ETIMEDOUT : -EIO;
}

static void req_on_fail(sfu__h1_t *h, const char *err, int code) {
  finish((http_req_t *)h, err, code);
}

/* Appends what arrived (room for the final NUL kept). */
static int append_body(http_req_t *r, const char *p, size_t n) {
  if (r->body_len + n > SFU_HTTP_MAX_BODY) return SFU_E2BIG;
  if (r->body_len + n + 1 > r->body_cap) {
    size_t cap = r->body_cap ? r->body_cap : 1024;
    while (cap < r->body_len + n + 1) cap *= 2;
    char *b = realloc(r->body, cap);
    if (!b) return SFU_ENOMEM;
    r->body = b;
    r->body_cap = cap;
  }
  memcpy(r->body + r->body_len, p, n);
  r->body_len += n;
  return 0;
}

static int on_body(h2o_http1client_t *c, const char *err) {
  http_req_t *r = c->data;
  if (err != NULL && err != h2o_http1client_error_is_eos) {
    r->h1.client = NULL;
    finishf(r, timeout_code(err), "response body: %s", err);
    return -1;
  }
  int rv = append_body(r, c->sock->input->bytes, c->sock->input->size);
  h2o_buffer_consume(&c->sock->input, c->sock->input->size);
  if (rv != 0) {
    r->h1.client = NULL;
    if (rv == SFU_E2BIG)
      finishf(r, rv, "response body over %u bytes", SFU_HTTP_MAX_BODY);
    else
      finish(r, "out of memory", rv);
    return -1;
  }
  if (err == h2o_http1client_error_is_eos) {
    r->h1.client = NULL;
    finish(r, NULL, 0);
  }
  return 0;
}

static h2o_http1client_body_cb on_head(h2o_http1client_t *c, const char *err, int minor,
                                       int status, h2o_iovec_t msg, h2o_header_t *headers,
                                       size_t nheaders, int rlen) {
  http_req_t *r = c->data;
  if (err != NULL && err != h2o_http1client_error_is_eos) {
    r->h1.client = NULL;
    finishf(r, timeout_code(err), "response: %s", err);
    return NULL;
  }
  r->status = status;
  if (err == h2o_http1client_error_is_eos) { /* no body (204, 304, HEAD) */
    r->h1.client = NULL;
    finish(r, NULL, 0);
    return NULL;
  }
  return on_body;
}

static h2o_http1client_head_cb on_connect(h2o_http1client_t *c, const char *err,
                                          h2o_iovec_t **reqbufs, size_t *n, int *is_head) {
  http_req_t *r = c->data;
  if (err != NULL) {
    r->h1.client = NULL;
    finishf(r, timeout_code(err), "connect: %s", err);
    return NULL;
  }
  *reqbufs = &r->reqbuf;
  *n = 1;
  *is_head = strncmp(r->request, "HEAD ", 5) == 0;
  return on_head;
}

/* A method is an HTTP token; the bearer and body must not smuggle lines. */
static int valid_method(const char *m) {
  if (!m || !*m || strlen(m) > 16) return 0;
  for (; *m; m++)
    if (!((*m >= 'A' && *m <= 'Z') || *m == '-' || *m == '_')) return 0;
  return 1;
}

static int valid_header_value(const char *v) {
  for (; v && *v; v++)
    if (*v == '\r' || *v == '\n') return 0;
  return 1;
}

int sfu_http_request_timeout(uv_loop_t *loop, const char *method, const char *url,
                             const char *bearer, const char *json_body, uint64_t timeout_ms,
                             sfu_http_cb cb, void *arg) {
  if (!loop || !url || !cb || !valid_method(method) || !valid_header_value(bearer) ||
      strncmp(url, "http://", 7) != 0)
    return SFU_EINVAL;
  http_req_t *r = calloc(1, sizeof(*r));
  if (!r) return SFU_ENOMEM;
  int rv = sfu__h1_init(&r->h1, loop, url, timeout_ms ? timeout_ms : SFU_HTTP_TIMEOUT_MS, r,
                        on_connect, req_on_fail);
  if (rv != 0) {
    free(r);
    return rv;
  }
  size_t blen = json_body ? strlen(json_body) : 0;
  size_t cap = 256 + strlen(method) + r->h1.url.path.len + r->h1.url.authority.len +
               (bearer ? strlen(bearer) : 0) + blen;
  if (!(r->request = malloc(cap))) {
    sfu__h1_close(&r->h1, req_free); /* nothing in flight: only handles to close */
    return SFU_ENOMEM;
  }
  int n = snprintf(r->request, cap, "%s %.*s HTTP/1.1\r\nHost: %.*s\r\n", method,
                   (int)r->h1.url.path.len, r->h1.url.path.base,
                   (int)r->h1.url.authority.len, r->h1.url.authority.base);
  if (bearer) n += snprintf(r->request + n, cap - n, "Authorization: Bearer %s\r\n", bearer);
  if (json_body)
    n += snprintf(r->request + n, cap - n,
                  "Content-Type: application/json\r\nContent-Length: %zu\r\n", blen);
  else if (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
           strcmp(method, "PATCH") == 0)
    n += snprintf(r->request + n, cap - n, "Content-Length: 0\r\n");
  n += snprintf(r->request + n, cap - n, "Connection: close\r\n\r\n");
  memcpy(r->request + n, json_body ? json_body : "", blen);
  r->reqbuf = h2o_iovec_init(r->request, (size_t)n + blen);
  r->cb = cb;
  r->arg = arg;
  sfu__h1_start(&r->h1);
  return 0;
}

int sfu_http_request(uv_loop_t *loop, const char *method, const char *url, const char *bearer,
                     const char *json_body, sfu_http_cb cb, void *arg) {
  return sfu_http_request_timeout(loop, method, url, bearer, json_body, SFU_HTTP_TIMEOUT_MS, cb,
                                  arg);
}

/* --- blocking ----------------------------------------------------------- */

typedef struct {
  int result;  /* status or negative code */
  char *body;  /* malloc'd copy */
} sync_result_t;

static void on_sync(void *arg, const sfu_http_resp_t *r) {
  sync_result_t *s = arg;
  if (r->err) {
    s->result = r->code;
    sfu_log(SFU_LOG_DEBUG, "http", "request failed: %s", r->err);
    return;
  }
  s->result = r->status;
  s->body = malloc(r->body_len + 1);
  if (!s->body) {
    s->result = SFU_ENOMEM;
    return;
  }
  memcpy(s->body, r->body, r->body_len + 1);
}

static void close_walk(uv_handle_t *h, void *arg) {
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

int sfu_http_request_sync(const char *method, const char *url, const char *bearer,
                          const char *json_body, char **body, int timeout_ms) {
  uv_loop_t loop;
  sync_result_t s = {SFU_ECANCELED, NULL};
  if (body) *body = NULL;
  int rv = uv_loop_init(&loop);
  if (rv != 0) return rv;
  rv = sfu_http_request_timeout(&loop, method, url, bearer, json_body,
                                timeout_ms > 0 ? (uint64_t)timeout_ms : SFU_HTTP_TIMEOUT_MS,
                                on_sync, &s);
  if (rv == 0) uv_run(&loop, UV_RUN_DEFAULT); /* ends once the request closed everything */
  if (uv_loop_close(&loop) == UV_EBUSY) {    /* not expected; never leave the loop open */
    uv_walk(&loop, close_walk, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
  }
  if (rv != 0) return rv;
  if (s.result >= 0 && body)
    *body = s.body;
  else
    free(s.body);
  return s.result;
}
