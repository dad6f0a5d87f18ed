/*
 * http.h -- one-shot HTTP/1.1 requests on a libuv loop, over h2o's
 * http1client (no hand-written HTTP).
 *
 * Used by the load generator and tools to drive the control-plane API
 * (docs/api.md): many requests may be in flight on one loop at once; each
 * owns its connection ("Connection: close"), its timers and its buffers, so
 * there is no per-loop state to set up or tear down.
 *
 * Callers: tools/client/wsclient.c (the WebSocket handshake shares the
 * connection helper below), the load generator, tests/test_wsclient.c.
 */
#ifndef SFU_TOOLS_CLIENT_HTTP_H
#define SFU_TOOLS_CLIENT_HTTP_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

#include <h2o.h>
#include <h2o/http1client.h>
#include <uv.h>

#define SFU_HTTP_TIMEOUT_MS 10000     /* default: whole request, and each I/O step */
#define SFU_HTTP_MAX_BODY (4u << 20)  /* larger response bodies fail the request */

/* The answer, or why there is none. Valid only during the callback. */
typedef struct sfu_http_resp_s {
  int status;          /* HTTP status; 0 on failure */
  const char *body;    /* response body, NUL-terminated ("" when empty) */
  size_t body_len;     /* its length without the NUL */
  const char *err;     /* NULL, or why the request failed: "connect: connection failure",
                          "resolve example: ...", "timeout after 10000 ms", ... */
  int code;            /* 0, or with err a negative SFU_E* code: SFU_ETIMEDOUT,
                          SFU_E2BIG (body over SFU_HTTP_MAX_BODY), SFU_ENOMEM,
                          -EIO (connect, resolve, I/O or parse failure) */
} sfu_http_resp_t;

/* Called exactly once per request that sfu_http_request() accepted, never
 * from inside sfu_http_request() itself. */
typedef void (*sfu_http_cb)(void *arg, const sfu_http_resp_t *r);

/* Sends `method` (a token: "GET", "POST", "DELETE", ...) to `url`
 * ("http://host[:port]/path?query"; host an IPv4 address, an IPv6 address
 * in brackets ("http://[::1]:7880/"), or a name: its first IPv4 address,
 * else its first IPv6 one) with "Authorization: Bearer <bearer>" when
 * bearer is non-NULL and `json_body` as an application/json body when
 * non-NULL.
 * Copies everything it needs before returning. The request must finish
 * (cb) and then closes its handles; run the loop until then.
 *
 * Returns 0 (cb will be called), SFU_EINVAL for a bad method/URL (https://
 * is not supported) or SFU_ENOMEM; cb is not called then. */
int sfu_http_request(uv_loop_t *loop, const char *method, const char *url, const char *bearer,
                     const char *json_body, sfu_http_cb cb, void *arg);

/* As sfu_http_request() with `timeout_ms` for the whole request (and for
 * each I/O step) instead of SFU_HTTP_TIMEOUT_MS. */
int sfu_http_request_timeout(uv_loop_t *loop, const char *method, const char *url,
                             const char *bearer, const char *json_body, uint64_t timeout_ms,
                             sfu_http_cb cb, void *arg);

/* Blocking convenience for tools: runs its own temporary loop (so it may be
 * called from any thread that runs no loop of its own at the time).
 * Returns the HTTP status, or a negative SFU_E* code (as in
 * sfu_http_resp_t.code; SFU_EINVAL for bad arguments). When `body` is
 * non-NULL it receives the malloc'd, NUL-terminated response body on
 * success (free it), NULL on failure. timeout_ms <= 0 means
 * SFU_HTTP_TIMEOUT_MS. */
int sfu_http_request_sync(const char *method, const char *url, const char *bearer,
                          const char *json_body, char **body, int timeout_ms);

/* --- internal: the connection step shared with wsclient.c --------------
 *
 * sfu__h1_t is an embedded object owning what one h2o_http1client exchange
 * needs on a loop: a private h2o_http1client_ctx_t, its h2o_timeout_t (a
 * uv_timer) which serves both as h2o's I/O timeout and as the deadline of
 * the whole exchange, a uv_getaddrinfo request for host names, and a
 * 0 ms uv_timer that runs the owner's deferred work (so nothing is ever
 * called back from inside the caller's own API call).
 *
 * Names are resolved with uv_getaddrinfo (IPv4 preferred, IPv6 taken when
 * there is no IPv4 address) and h2o is handed the numeric address, so h2o
 * never starts its own getaddrinfo thread: a lookup cancelled there still
 * posts to its receiver later, which would need a receiver outliving
 * every request. An IPv4 address goes to h2o as a dotted string; an IPv6
 * one through `pool`, a socket pool of this exchange made from the
 * sockaddr (h2o connects a dotted IPv4 string itself but would resolve
 * "::1" on its thread). A socket taken for a WebSocket
 * (sfu__h1_steal_socket()) leaves the pool first.
 *
 * h2o frees its client by itself after a callback that ends the exchange
 * (any error, a complete response, a NULL head/connect return, a non-zero
 * body return, or after the socket was stolen). The owner sets
 * h->client = NULL in those callbacks; sfu__h1_close() cancels a client
 * that is still set, so it must not run inside one of that client's
 * callbacks while h->client is non-NULL.
 */
typedef struct sfu__h1_s sfu__h1_t;
typedef void (*sfu__h1_cb)(sfu__h1_t *h);
typedef void (*sfu__h1_fail_cb)(sfu__h1_t *h, const char *err, int code);

struct sfu__h1_s {
  uv_loop_t *loop;
  void *data;                        /* the owner; also h2o's client->data */
  h2o_http1client_connect_cb on_connect; /* owner's h2o connect callback */
  sfu__h1_fail_cb on_fail;           /* resolve failure or deadline; no client is left */
  sfu__h1_cb on_closed;              /* after sfu__h1_close(): all released */
  sfu__h1_cb on_defer;               /* owner's deferred work (sfu__h1_defer) */
  h2o_http1client_ctx_t ctx;         /* h2o's context, private to this exchange */
  h2o_timeout_t timeout;             /* I/O steps, the deadline, owner entries */
  h2o_timeout_entry_t deadline;      /* whole exchange; linked by start, unlinked by disarm */
  uv_timer_t defer;                  /* 0 ms: start, owner's deferred work */
  uv_getaddrinfo_t gai;              /* host name lookup */
  h2o_http1client_t *client;         /* live h2o client, NULL once h2o frees it */
  char *urlbuf;                      /* copy of the URL; `url` points into it */
  h2o_url_t url;                     /* authority, host, path (with query) */
  char addr[INET6_ADDRSTRLEN];       /* the numeric address connected to */
  h2o_socketpool_t pool;             /* IPv6: connects to the sockaddr; valid if pooled */
  int pooled;                        /* pool initialised: disposed of at close */
  uint64_t timeout_ms;               /* the deadline and the I/O timeout */
  int resolving;                     /* gai is in flight */
  int pending;                       /* handles and requests not yet called back */
  int closing;                       /* sfu__h1_close() was called */
};

/* Parses `url` ("http://..." or "ws://...", the latter read as http) into
 * h and initialises the handles. Returns 0, SFU_EINVAL or SFU_ENOMEM (h
 * then holds nothing to close). */
int sfu__h1_init(sfu__h1_t *h, uv_loop_t *loop, const char *url, uint64_t timeout_ms,
                 void *data, h2o_http1client_connect_cb on_connect, sfu__h1_fail_cb on_fail);
/* From the next loop turn: resolves the host if needed, then starts h2o's
 * client (h->on_connect next, or h->on_fail). Arms the deadline. */
void sfu__h1_start(sfu__h1_t *h);
/* The deadline no longer applies (the exchange ended or was upgraded). */
void sfu__h1_disarm(sfu__h1_t *h);
/* Runs cb(h) from the loop in the current or next turn, replacing what was
 * deferred before (a pending start too). */
void sfu__h1_defer(sfu__h1_t *h, sfu__h1_cb cb);
/* Cancels what is in flight and closes the handles; on_closed(h) follows
 * from the loop, after which the owner may free h. */
void sfu__h1_close(sfu__h1_t *h, sfu__h1_cb on_closed);
/* h2o_http1client_steal_socket() for an upgrade (inside the client's head
 * callback): the socket is the caller's from then on, detached from the
 * IPv6 pool (whose close comes first) if it came from it. */
h2o_socket_t *sfu__h1_steal_socket(sfu__h1_t *h, h2o_http1client_t *client);
/* Host header value ("host:port" as in the URL; "[::1]:port" for IPv6). */
static inline h2o_iovec_t sfu__h1_authority(const sfu__h1_t *h) { return h->url.authority; }

#endif
