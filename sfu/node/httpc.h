/*
 * httpc.h -- one-shot HTTP/1.1 requests from sfud's loop (h2o's client).
 *
 * A request is sent on a connection of its own ("Connection: close"), its
 * whole answer is read into memory (at most SFU_HTTPC_MAX_BODY bytes) and
 * the callback runs exactly once: with the status and body, or with an
 * error string (connect failure, timeout, bad answer) and status 0.
 * sfu_httpc_cancel() stops a request; its callback then never runs.
 *
 * Used by the fleet: etcd's JSON gateway and requests proxied to other
 * nodes (fleet.c).
 */
#ifndef SFU_HTTPC_H
#define SFU_HTTPC_H

#include <stddef.h>
#include <uv.h>
#include <openssl/ssl.h>

#define SFU_HTTPC_MAX_BODY (8u << 20)

typedef struct sfu_httpc_s sfu_httpc_t;
typedef struct sfu_httpc_req_s sfu_httpc_req_t;

/* The answer: status 0 and err set on failure. location is the Location
 * header or NULL; body is NUL-terminated. All valid during the call only. */
typedef void (*sfu_httpc_cb)(void *arg, int status, const char *location, const char *body,
                             size_t len, const char *err);

/* ssl_ctx (may be NULL: https:// URLs then fail) verifies https servers;
 * the client keeps its own reference. timeout_ms bounds a whole request. */
int sfu_httpc_create(sfu_httpc_t **out, uv_loop_t *loop, SSL_CTX *ssl_ctx, int timeout_ms);

/* url is absolute (http:// or https://); headers, if not NULL, are extra
 * "Name: value\r\n" lines; body may be NULL for none. Returns the request
 * or NULL when url cannot be parsed (the callback does not run then).
 * The callback never runs before this returns. */
sfu_httpc_req_t *sfu_httpc_request(sfu_httpc_t *c, const char *method, const char *url,
                                   const char *headers, const char *body, size_t len,
                                   sfu_httpc_cb cb, void *arg);
/* A streamed answer: on_data gets the body as it arrives (not kept; it
 * must not cancel the request), then cb runs once at its end with an
 * empty body, or with the error. No deadline: only the client's idle
 * timeout bounds it. */
typedef void (*sfu_httpc_data_cb)(void *arg, const char *data, size_t len);
sfu_httpc_req_t *sfu_httpc_stream(sfu_httpc_t *c, const char *method, const char *url,
                                  const char *headers, const char *body, size_t len,
                                  sfu_httpc_data_cb on_data, sfu_httpc_cb cb, void *arg);
/* Only before the callback has run: the request is gone after it. */
void sfu_httpc_cancel(sfu_httpc_req_t *r);

#endif
