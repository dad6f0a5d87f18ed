/*
 * srtp_stream_list.c -- the stream list of each libsrtp session: an array
 * of (SSRC, stream) pairs instead of libsrtp 2.5's linked list of streams.
 *
 * libsrtp finds the stream of every packet it protects or unprotects by
 * SSRC. Its own list walks the stream structures themselves, a few hundred
 * bytes apart on the heap, so each step is a cache miss: a subscriber's
 * outbound session holds one stream per SSRC it receives (9 in a room of
 * 10), and the walk was the largest single user-space cost of a forwarded
 * copy (docs/benchmarks.md). Here the SSRCs sit next to each other in one
 * allocation and the walk reads one or two cache lines.
 *
 * Not part of the CMake build: scripts/deps.sh compiles it into libsrtp2.a
 * with -DSRTP_NO_STREAM_LIST (libsrtp's documented way of replacing its
 * list, include/stream_list_priv.h), against libsrtp's private headers.
 */
#include "stream_list_priv.h"

#include <string.h>

#include "alloc.h"

typedef struct {
  uint32_t ssrc; /* network byte order, as libsrtp keeps it */
  srtp_stream_t stream;
} entry_t;

struct srtp_stream_list_ctx_t_ {
  entry_t *e;
  size_t n, cap;
};

srtp_err_status_t srtp_stream_list_alloc(srtp_stream_list_t *list_ptr) {
  srtp_stream_list_t l = srtp_crypto_alloc(sizeof(*l)); /* zeroed */
  if (!l) return srtp_err_status_alloc_fail;
  *list_ptr = l;
  return srtp_err_status_ok;
}

srtp_err_status_t srtp_stream_list_dealloc(srtp_stream_list_t l) {
  if (l->n) return srtp_err_status_fail; /* libsrtp empties it first */
  if (l->e) srtp_crypto_free(l->e);
  srtp_crypto_free(l);
  return srtp_err_status_ok;
}

srtp_err_status_t srtp_stream_list_insert(srtp_stream_list_t l, srtp_stream_t s) {
  if (l->n == l->cap) { /* grows by doubling: a session's SSRCs come and stay */
    size_t cap = l->cap ? l->cap * 2 : 4;
    entry_t *e = srtp_crypto_alloc(cap * sizeof(*e));
    if (!e) return srtp_err_status_alloc_fail;
    if (l->e) {
      memcpy(e, l->e, l->n * sizeof(*e));
      srtp_crypto_free(l->e);
    }
    l->e = e;
    l->cap = cap;
  }
  l->e[l->n].ssrc = s->ssrc;
  l->e[l->n].stream = s;
  l->n++;
  return srtp_err_status_ok;
}

srtp_stream_t srtp_stream_list_get(srtp_stream_list_t l, uint32_t ssrc) {
  for (size_t i = 0; i < l->n; i++)
    if (l->e[i].ssrc == ssrc) return l->e[i].stream;
  return NULL;
}

/* Keeps the order (later entries move down one): for_each walks backwards,
 * so removing the current entry moves only entries it has already seen. */
void srtp_stream_list_remove(srtp_stream_list_t l, srtp_stream_t s) {
  for (size_t i = 0; i < l->n; i++) {
    if (l->e[i].stream != s) continue;
    memmove(&l->e[i], &l->e[i + 1], (l->n - i - 1) * sizeof(*l->e));
    l->n--;
    return;
  }
}

void srtp_stream_list_for_each(srtp_stream_list_t l, int (*cb)(srtp_stream_t, void *),
                               void *data) {
  for (size_t i = l->n; i-- > 0;)
    if (i < l->n && cb(l->e[i].stream, data)) break;
}
