/*
 * etcd.h -- etcd's v3 API through its JSON gateway (etcd 3.4: POST
 * /v3/lease/grant, /v3/lease/keepalive, /v3/lease/revoke, /v3/kv/range,
 * /v3/kv/put, /v3/kv/txn, /v3/kv/deleterange), over httpc.
 *
 * The gateway speaks protobuf's JSON mapping: keys and values are base64
 * strings, 64-bit integers are decimal strings, fields at their default
 * value (0, false, empty) are left out. A streaming call (keepalive)
 * answers {"result": ...}; sfu_etcd_call() hands the inner object over.
 * Errors come as {"error": "...", "code": N} with an HTTP error status, or
 * inside a stream as {"error": {...}}: the callback gets their message.
 */
#ifndef SFU_ETCD_H
#define SFU_ETCD_H

#include <stdint.h>
#include <jansson.h>

#include "sfu/node/httpc.h"

typedef struct sfu_etcd_s sfu_etcd_t;

/* res is the answer (borrowed, valid during the call) or NULL with err. */
typedef void (*sfu_etcd_cb)(void *arg, json_t *res, const char *err);

/* url: the gateway's base, "http://127.0.0.1:2379" (a trailing / is fine). */
int sfu_etcd_create(sfu_etcd_t **out, uv_loop_t *loop, const char *url, SSL_CTX *ssl_ctx,
                    int timeout_ms);
const char *sfu_etcd_url(const sfu_etcd_t *e);
/* POSTs req (stolen) to path ("/v3/kv/txn"). Returns the request (to cancel
 * it before its callback runs) or NULL if it could not be sent; the
 * callback then does not run. */
sfu_httpc_req_t *sfu_etcd_call(sfu_etcd_t *e, const char *path, json_t *req, sfu_etcd_cb cb,
                               void *arg);

/* The wire's pieces, pure (unit-tested). */
/* A base64 JSON string of the bytes. */
json_t *sfu_etcd_bytes(const void *p, size_t len);
json_t *sfu_etcd_str(const char *s);
/* The range_end that makes a range cover every key starting with prefix
 * (the prefix with its last byte incremented, carried), as base64. */
json_t *sfu_etcd_prefix_end(const char *prefix);
/* Decodes a base64 JSON string; *out is malloc'd and NUL-terminated.
 * Returns 0, or -1 if it is not a string of canonical base64 (the
 * alphabet, padding only at the end, no blanks). */
int sfu_etcd_decode(const json_t *b64, char **out, size_t *len);
/* The value of a key-value ({"key","value",...}) parsed as JSON, or NULL. */
json_t *sfu_etcd_kv_json(const json_t *kv);
/* A 64-bit field: a decimal string or a number; 0 when absent. */
int64_t sfu_etcd_int(const json_t *v);

#endif
