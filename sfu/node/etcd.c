/*
 * etcd.c -- etcd's v3 JSON gateway over httpc (etcd.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "sfu/node/etcd.h"

struct sfu_etcd_s {
  sfu_httpc_t *http;
  char url[256]; /* base, no trailing slash */
};

typedef struct {
  sfu_etcd_cb cb;
  void *arg;
} call_t;

int sfu_etcd_create(sfu_etcd_t **out, uv_loop_t *loop, const char *url, SSL_CTX *ssl_ctx,
                    int timeout_ms) {
  sfu_etcd_t *e = calloc(1, sizeof(*e));
  if (!e || sfu_httpc_create(&e->http, loop, ssl_ctx, timeout_ms) != 0) {
    free(e);
    return -1;
  }
  snprintf(e->url, sizeof(e->url), "%s", url);
  size_t n = strlen(e->url);
  while (n && e->url[n - 1] == '/') e->url[--n] = '\0';
  *out = e;
  return 0;
}

const char *sfu_etcd_url(const sfu_etcd_t *e) { return e->url; }

static void on_answer(void *arg, int status, const char *location, const char *body,
                      size_t len, const char *err) {
  call_t *c = arg;
  char why[256];
  json_t *j = NULL, *res;
  (void)location;
  if (err) {
    c->cb(c->arg, NULL, err);
    free(c);
    return;
  }
  /* a stream's answers are JSON objects one after another: the first is
   * the one asked for */
  j = json_loadb(body, len, JSON_DISABLE_EOF_CHECK, NULL);
  res = j && json_is_object(json_object_get(j, "result")) ? json_object_get(j, "result") : j;
  json_t *e = json_object_get(j, "error");
  if (json_is_object(e)) e = json_object_get(e, "message");
  if (!json_is_object(res) || e || status != 200) {
    snprintf(why, sizeof(why), "etcd answered %d: %s", status,
             json_is_string(e) ? json_string_value(e) : "not the expected JSON");
    c->cb(c->arg, NULL, why);
  } else {
    c->cb(c->arg, res, NULL);
  }
  json_decref(j);
  free(c);
}

sfu_httpc_req_t *sfu_etcd_call(sfu_etcd_t *e, const char *path, json_t *req, sfu_etcd_cb cb,
                               void *arg) {
  char url[320];
  char *body = json_dumps(req, JSON_COMPACT);
  json_decref(req);
  call_t *c = malloc(sizeof(*c));
  if (!body || !c) {
    free(body);
    free(c);
    return NULL;
  }
  c->cb = cb;
  c->arg = arg;
  snprintf(url, sizeof(url), "%s%s", e->url, path);
  sfu_httpc_req_t *r = sfu_httpc_request(e->http, "POST", url,
                                         "Content-Type: application/json\r\n", body,
                                         strlen(body), on_answer, c);
  free(body);
  if (!r) free(c);
  return r;
}

/* --- wire pieces --------------------------------------------------------- */

json_t *sfu_etcd_bytes(const void *p, size_t len) {
  char *out = malloc(4 * ((len + 2) / 3) + 1);
  if (!out) return NULL;
  EVP_EncodeBlock((unsigned char *)out, p, (int)len);
  json_t *j = json_string(out);
  free(out);
  return j;
}

json_t *sfu_etcd_str(const char *s) { return sfu_etcd_bytes(s, strlen(s)); }

json_t *sfu_etcd_prefix_end(const char *prefix) {
  size_t n = strlen(prefix);
  unsigned char *end = malloc(n + 1);
  if (!end) return NULL;
  memcpy(end, prefix, n);
  while (n > 0 && end[n - 1] == 0xff) n--; /* 0xff cannot grow: carry */
  json_t *j;
  if (n == 0) {
    j = sfu_etcd_bytes("\0", 1); /* every key from the prefix on */
  } else {
    end[n - 1]++;
    j = sfu_etcd_bytes(end, n);
  }
  free(end);
  return j;
}

int sfu_etcd_decode(const json_t *b64, char **out, size_t *len) {
  const char *s = json_string_value(b64);
  size_t n = s ? json_string_length(b64) : 0;
  *out = NULL;
  if (!s || n % 4) return -1;
  for (size_t i = 0; i < n; i++) { /* canonical only: EVP_DecodeBlock skips blanks */
    char c = s[i];
    int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
             c == '+' || c == '/' || (c == '=' && i >= n - 2 && (i == n - 1 || s[n - 1] == '='));
    if (!ok) return -1;
  }
  char *buf = malloc(n / 4 * 3 + 1);
  if (!buf) return -1;
  int m = n ? EVP_DecodeBlock((unsigned char *)buf, (const unsigned char *)s, (int)n) : 0;
  if (m < 0) {
    free(buf);
    return -1;
  }
  if (n && s[n - 1] == '=') m--; /* EVP_DecodeBlock counts padding as bytes */
  if (n > 1 && s[n - 2] == '=') m--;
  buf[m] = '\0';
  *out = buf;
  *len = (size_t)m;
  return 0;
}

json_t *sfu_etcd_kv_json(const json_t *kv) {
  char *v;
  size_t len;
  json_t *value = json_object_get(kv, "value");
  if (!value) return NULL; /* an empty value is left out */
  if (sfu_etcd_decode(value, &v, &len) != 0) return NULL;
  json_t *j = json_loadb(v, len, 0, NULL);
  free(v);
  return j;
}

int64_t sfu_etcd_int(const json_t *v) {
  if (json_is_integer(v)) return json_integer_value(v);
  if (json_is_string(v)) return strtoll(json_string_value(v), NULL, 10);
  return 0;
}
