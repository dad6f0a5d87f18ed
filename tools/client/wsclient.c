/*
 * wsclient.c -- client WebSocket: h2o's http1client for the upgrade, wslay
 * for the frames, on the socket h2o hands over.
 *
 * States:
 *
 *   CONNECTING --101, accept ok--> OPEN --close()--> CLOSING --+
 *        |                          |                          |
 *        +-- failure, close() ------+-- close frame / failure -+--> DONE
 *
 * DONE is entered once, by finish(), which closes the socket and calls
 * `closed`. Nothing is freed there: sfu_ws_client_destroy() only marks the
 * client and defers reap() to the loop (the h1 defer timer), which cancels
 * what is in flight and closes the handles; the memory goes in the last
 * close callback. So no frame of h2o, wslay or ours ever returns into a
 * freed client, and destroy() is safe from any callback. Entry points
 * (h2o client callbacks, socket read/write callbacks, wslay callbacks,
 * timers) check `destroyed` first and do nothing more than stop.
 *
 * Handshake. The request carries a fresh 16-byte random Sec-WebSocket-Key
 * (sfu_random_bytes, base64); the answer must be 101 with "Upgrade:
 * websocket", "Connection: upgrade" and Sec-WebSocket-Accept =
 * base64(SHA-1(key + RFC 6455 GUID)). h2o 2.2.5 ends its client after a
 * 101 (is_eos); inside on_head we steal the socket first, drop the response
 * head (rlen bytes) from its input and feed what follows to wslay.
 *
 * Input. wslay reads from the socket's h2o_buffer through recv_cb (consuming
 * it), so that buffer never grows beyond one read; wslay reassembles a
 * message up to SFU_WS_CLIENT_MAX_MSG and fails the connection with 1009
 * beyond. While wslay_event_recv() runs (in_recv) nothing is written: sends
 * made from a `message` callback are queued and written after it returns.
 *
 * Output. wslay's queue holds messages (bounded by
 * SFU_WS_CLIENT_MAX_QUEUED together with `out`); flush() lets wslay frame
 * and mask up to OUT_CHUNK bytes into `out` and writes that with one
 * h2o_socket_write(); the next chunk goes when the write completes, so at
 * most one write is in flight and `out` is stable during it.
 *
 * Close. Either side's close frame is answered by wslay; once wslay wants
 * neither to read nor to write and `out` is on the wire, settle() reports
 * the code: the one received, else the one we sent. A close we started
 * waits SFU_WS_CLIENT_TIMEOUT_MS for the answer (close_timer, an entry on
 * the h1 h2o_timeout_t).
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/evp.h>
#include <wslay/wslay.h>

#include "sfu/base/log.h"
#include "sfu/base/sfu.h"
#include "tools/client/http.h"
#include "tools/client/wsclient.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define OUT_CHUNK (64u * 1024) /* bytes framed per socket write */
#define REASON_MAX 123         /* close reason bytes (125 - the code) */

typedef enum { WSC_CONNECTING, WSC_OPEN, WSC_CLOSING, WSC_DONE } wsc_state_t;

struct sfu_ws_client_s {
  sfu__h1_t h1;                  /* handshake connection, timers; first member */
  sfu_ws_client_cb_t cb;         /* the user's */
  wsc_state_t state;             /* see above */
  int destroyed;                 /* destroy() called: no callbacks, reap pending */
  int in_recv;                   /* inside wslay_event_recv() */
  char accept[32];               /* expected Sec-WebSocket-Accept (28 chars) */
  char *request;                 /* upgrade request bytes */
  h2o_iovec_t reqbuf;            /* h2o's view of them */
  h2o_socket_t *sock;            /* stolen from h2o after the 101; NULL before/after */
  wslay_event_context_ptr ws;    /* framing, from connect() to the free */
  uint8_t *out;                  /* framed bytes being written (<= OUT_CHUNK) */
  size_t out_len;
  size_t out_cap;
  int writing;                   /* a socket write of `out` is in flight */
  h2o_timeout_entry_t close_timer; /* our close frame awaits the answer */
  int rx_close;                  /* a close frame arrived */
  uint16_t rx_code;              /* its code (1005 when it had none) */
  char rx_reason[REASON_MAX + 1];
  char tx_reason[REASON_MAX + 1]; /* reason of the close we queued */
  char why[200];                 /* reason handed to `closed` for deferred ends */
};

/* --- the end ------------------------------------------------------------ */

static void reap_closed(sfu__h1_t *h) {
  sfu_ws_client_t *c = (sfu_ws_client_t *)h;
  if (c->ws) wslay_event_context_free(c->ws);
  free(c->request);
  free(c->out);
  free(c);
}

/* From the loop, outside every callback of this client (h1 defer timer). */
static void reap(sfu__h1_t *h) {
  sfu_ws_client_t *c = (sfu_ws_client_t *)h;
  h2o_timeout_unlink(&c->close_timer);
  if (c->sock) {
    h2o_socket_close(c->sock); /* a write in flight is abandoned, never called back */
    c->sock = NULL;
  }
  sfu__h1_close(&c->h1, reap_closed); /* cancels the h2o client or lookup in flight */
}

/* Enters DONE and tells the user, once. The h2o client, if any, is gone
 * or being freed by h2o (callers clear h1.client). */
static void finish(sfu_ws_client_t *c, int code, const char *reason) {
  if (c->state == WSC_DONE) return;
  c->state = WSC_DONE;
  h2o_timeout_unlink(&c->close_timer);
  sfu__h1_disarm(&c->h1);
  if (c->sock) {
    h2o_socket_close(c->sock);
    c->sock = NULL;
    c->writing = 0;
  }
  if (!c->destroyed && c->cb.closed) c->cb.closed(c->cb.arg, code, reason);
}

static void failf(sfu_ws_client_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void failf(sfu_ws_client_t *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->why, sizeof(c->why), fmt, ap);
  va_end(ap);
  finish(c, 1006, c->why);
}

/* The socket went away (read or write error, EOF). */
static void lost(sfu_ws_client_t *c, const char *err) {
  if (c->rx_close)
    finish(c, c->rx_code, c->rx_reason); /* the peer closed after its close frame */
  else
    failf(c, "connection lost: %s", err);
}

static void on_deferred_end(sfu__h1_t *h) {
  sfu_ws_client_t *c = (sfu_ws_client_t *)h;
  if (c->destroyed) return;
  if (c->h1.client) { /* close() before open: from here h2o is not on the stack */
    h2o_http1client_cancel(c->h1.client);
    c->h1.client = NULL;
  }
  finish(c, 1006, c->why);
}

/* Ends the connection from the loop (for ends found inside API calls). */
static void end_later(sfu_ws_client_t *c, const char *why) {
  if (c->destroyed || c->state == WSC_DONE) return;
  snprintf(c->why, sizeof(c->why), "%s", why);
  sfu__h1_defer(&c->h1, on_deferred_end);
}

static const char *code_text(uint16_t code) {
  switch (code) {
  case WSLAY_CODE_PROTOCOL_ERROR: return "protocol error";
  case WSLAY_CODE_MESSAGE_TOO_BIG: return "message too big";
  case WSLAY_CODE_INVALID_FRAME_PAYLOAD_DATA: return "invalid frame payload data";
  case WSLAY_CODE_ABNORMAL_CLOSURE: return "abnormal closure";
  default: return "closed";
  }
}

/* Both close frames are through and written: report. */
static void settle(sfu_ws_client_t *c) {
  if (c->state == WSC_DONE || c->state == WSC_CONNECTING || !c->sock || c->writing ||
      c->destroyed || wslay_event_want_read(c->ws) || wslay_event_want_write(c->ws))
    return;
  if (c->rx_close) {
    finish(c, c->rx_code, c->rx_reason);
  } else {
    uint16_t code = wslay_event_get_status_code_sent(c->ws);
    finish(c, code, c->tx_reason[0] ? c->tx_reason : code_text(code));
  }
}

/* --- output ------------------------------------------------------------- */

static void on_write(h2o_socket_t *sock, const char *err);

/* Frames what wslay has queued into `out` and writes it. Never calls the
 * user: a failure ends the connection from the loop. */
static void flush(sfu_ws_client_t *c) {
  if (!c->sock || c->writing || c->in_recv || c->destroyed || c->state == WSC_DONE) return;
  int rv = wslay_event_send(c->ws);
  if (c->out_len > 0) {
    c->writing = 1;
    h2o_iovec_t b = h2o_iovec_init(c->out, c->out_len);
    h2o_socket_write(c->sock, &b, 1, on_write);
  }
  if (rv != 0) end_later(c, rv == WSLAY_ERR_NOMEM ? "send: out of memory" : "send: framing failed");
}

static void on_write(h2o_socket_t *sock, const char *err) {
  sfu_ws_client_t *c = sock->data;
  c->writing = 0;
  c->out_len = 0;
  if (c->destroyed) return;
  if (err != NULL) {
    lost(c, err);
    return;
  }
  flush(c);
  settle(c);
}

static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *user_data) {
  sfu_ws_client_t *c = user_data;
  size_t room = OUT_CHUNK - c->out_len;
  if (room == 0) {
    wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    return -1;
  }
  if (len > room) len = room;
  if (c->out_len + len > c->out_cap) {
    size_t cap = c->out_cap ? c->out_cap : 1024;
    while (cap < c->out_len + len) cap *= 2;
    if (cap > OUT_CHUNK) cap = OUT_CHUNK;
    uint8_t *p = realloc(c->out, cap);
    if (!p) {
      wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
      return -1;
    }
    c->out = p;
    c->out_cap = cap;
  }
  memcpy(c->out + c->out_len, data, len);
  c->out_len += len;
  return (ssize_t)len;
}

static int genmask_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *user_data) {
  sfu_random_bytes(buf, len);
  return 0;
}

/* --- input -------------------------------------------------------------- */

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                       void *user_data) {
  sfu_ws_client_t *c = user_data;
  if (!c->sock || c->sock->input->size == 0) {
    wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    return -1;
  }
  size_t n = c->sock->input->size < len ? c->sock->input->size : len;
  memcpy(buf, c->sock->input->bytes, n);
  h2o_buffer_consume(&c->sock->input, n);
  return (ssize_t)n;
}

static void on_msg_recv(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                        void *user_data) {
  sfu_ws_client_t *c = user_data;
  if (arg->opcode == WSLAY_CONNECTION_CLOSE) {
    size_t n = arg->msg_length > 2 ? arg->msg_length - 2 : 0;
    if (n > REASON_MAX) n = REASON_MAX;
    c->rx_close = 1;
    c->rx_code = arg->status_code ? arg->status_code : WSLAY_CODE_NO_STATUS_RCVD;
    if (n) memcpy(c->rx_reason, arg->msg + 2, n);
    c->rx_reason[n] = '\0';
  } else if (arg->opcode == WSLAY_TEXT_FRAME) {
    if (!c->destroyed && c->state != WSC_DONE && c->cb.message)
      c->cb.message(c->cb.arg, (const char *)arg->msg, arg->msg_length);
  } /* binary: not used by the protocol; ping/pong: wslay answers */
}

/* Feeds what is in the socket's input to wslay, then writes its answers. */
static void process_input(sfu_ws_client_t *c) {
  c->in_recv = 1;
  int rv = wslay_event_recv(c->ws);
  c->in_recv = 0;
  if (c->destroyed || c->state == WSC_DONE) return;
  if (rv != 0) { /* wslay gave up on the stream (out of memory) */
    failf(c, "receive: %s", rv == WSLAY_ERR_NOMEM ? "out of memory" : "framing failed");
    return;
  }
  if (!wslay_event_want_read(c->ws) && c->sock) h2o_socket_read_stop(c->sock);
  flush(c);
  settle(c);
}

static void on_read(h2o_socket_t *sock, const char *err) {
  sfu_ws_client_t *c = sock->data;
  if (c->destroyed) {
    h2o_socket_read_stop(sock); /* reap() closes it */
    return;
  }
  if (err != NULL) {
    lost(c, err);
    return;
  }
  process_input(c);
}

static void on_close_timeout(h2o_timeout_entry_t *entry) {
  sfu_ws_client_t *c = H2O_STRUCT_FROM_MEMBER(sfu_ws_client_t, close_timer, entry);
  if (c->destroyed) return;
  if (c->rx_close)
    finish(c, c->rx_code, c->rx_reason);
  else
    failf(c, "close handshake timed out");
}

/* --- handshake ---------------------------------------------------------- */

static int header_is(const h2o_header_t *hd, const char *lcname) {
  return h2o_memis(hd->name->base, hd->name->len, lcname, strlen(lcname));
}

static const char *check_upgrade(const sfu_ws_client_t *c, const h2o_header_t *headers,
                                 size_t n) {
  int upgrade = 0, connection = 0, accept = 0;
  for (size_t i = 0; i < n; i++) {
    h2o_iovec_t v = headers[i].value;
    if (header_is(&headers[i], "upgrade"))
      upgrade = h2o_lcstris(v.base, v.len, H2O_STRLIT("websocket"));
    else if (header_is(&headers[i], "connection"))
      connection = h2o_contains_token(v.base, v.len, H2O_STRLIT("upgrade"), ',');
    else if (header_is(&headers[i], "sec-websocket-accept"))
      accept = h2o_memis(v.base, v.len, c->accept, strlen(c->accept));
  }
  if (!upgrade) return "handshake: no 'Upgrade: websocket'";
  if (!connection) return "handshake: no 'Connection: upgrade'";
  if (!accept) return "handshake: wrong Sec-WebSocket-Accept";
  return NULL;
}

static h2o_http1client_body_cb on_head(h2o_http1client_t *client, const char *err, int minor,
                                       int status, h2o_iovec_t msg, h2o_header_t *headers,
                                       size_t nheaders, int rlen) {
  sfu_ws_client_t *c = client->data;
  c->h1.client = NULL; /* every path below ends h2o's client */
  if (c->destroyed || c->state != WSC_CONNECTING) return NULL;
  if (err != NULL && err != h2o_http1client_error_is_eos) {
    failf(c, "handshake: %s", err);
    return NULL;
  }
  if (status != 101) {
    failf(c, "handshake: HTTP %d", status);
    return NULL;
  }
  const char *bad = check_upgrade(c, headers, nheaders);
  if (bad) {
    failf(c, "%s", bad);
    return NULL;
  }
  c->sock = sfu__h1_steal_socket(&c->h1, client);
  h2o_buffer_consume(&c->sock->input, (size_t)rlen); /* what follows is WebSocket */
  c->sock->data = c;
  int fd = h2o_socket_get_fd(c->sock), one = 1;
  if (fd >= 0) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* small frames */
  sfu__h1_disarm(&c->h1);
  c->state = WSC_OPEN;
  h2o_socket_read_start(c->sock, on_read);
  if (c->cb.open) c->cb.open(c->cb.arg);
  if (c->destroyed || c->state == WSC_DONE) return NULL;
  if (c->sock->input->size > 0)
    process_input(c); /* frames that came with the 101 */
  else
    flush(c); /* what was sent before open, or from the callback */
  return NULL;
}

static h2o_http1client_head_cb on_connect(h2o_http1client_t *client, const char *err,
                                          h2o_iovec_t **reqbufs, size_t *n, int *is_head) {
  sfu_ws_client_t *c = client->data;
  if (c->destroyed || c->state != WSC_CONNECTING || err != NULL) {
    c->h1.client = NULL;
    if (err && !c->destroyed) failf(c, "connect: %s", err);
    return NULL;
  }
  *reqbufs = &c->reqbuf;
  *n = 1;
  *is_head = 0;
  return on_head;
}

/* Resolve failure or the handshake deadline: no h2o client is left. */
static void on_h1_fail(sfu__h1_t *h, const char *err, int code) {
  sfu_ws_client_t *c = (sfu_ws_client_t *)h;
  if (c->destroyed) return;
  if (strncmp(err, "resolve", 7) == 0)
    failf(c, "%s", err);
  else
    failf(c, "handshake: %s", err);
}

/* Random key, base64; and the accept value the server must answer. */
static int make_key(char key[32], char accept[32]) {
  unsigned char raw[16], src[24 + sizeof(WS_GUID) - 1], sha[EVP_MAX_MD_SIZE];
  unsigned int shalen = 0;
  sfu_random_bytes(raw, sizeof(raw));
  EVP_EncodeBlock((unsigned char *)key, raw, sizeof(raw)); /* 24 chars + NUL */
  memcpy(src, key, 24);
  memcpy(src + 24, WS_GUID, sizeof(WS_GUID) - 1);
  if (EVP_Digest(src, sizeof(src), sha, &shalen, EVP_sha1(), NULL) != 1 || shalen != 20)
    return SFU_EPROTO;
  EVP_EncodeBlock((unsigned char *)accept, sha, 20); /* 28 chars + NUL */
  return 0;
}

/* --- API ---------------------------------------------------------------- */

int sfu_ws_client_connect(sfu_ws_client_t **out, uv_loop_t *loop, const char *url,
                          const sfu_ws_client_cb_t *cb) {
  *out = NULL;
  if (!loop || !url || !cb || strncmp(url, "ws://", 5) != 0) return SFU_EINVAL;
  sfu_ws_client_t *c = calloc(1, sizeof(*c));
  if (!c) return SFU_ENOMEM;
  int rv = sfu__h1_init(&c->h1, loop, url, SFU_WS_CLIENT_TIMEOUT_MS, c, on_connect, on_h1_fail);
  if (rv != 0) {
    free(c);
    return rv;
  }
  c->cb = *cb;
  c->state = WSC_CONNECTING;
  c->close_timer.cb = on_close_timeout;
  char key[32];
  struct wslay_event_callbacks wcb = {recv_cb, send_cb, genmask_cb, NULL, NULL, NULL, on_msg_recv};
  if ((rv = make_key(key, c->accept)) != 0) goto fail;
  if (wslay_event_context_client_init(&c->ws, &wcb, c) != 0) {
    rv = SFU_ENOMEM;
    goto fail;
  }
  wslay_event_config_set_max_recv_msg_length(c->ws, SFU_WS_CLIENT_MAX_MSG);
  size_t cap = 256 + c->h1.url.path.len + c->h1.url.authority.len;
  if (!(c->request = malloc(cap))) {
    rv = SFU_ENOMEM;
    goto fail;
  }
  int n = snprintf(c->request, cap,
                   "GET %.*s HTTP/1.1\r\nHost: %.*s\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n",
                   (int)c->h1.url.path.len, c->h1.url.path.base, (int)c->h1.url.authority.len,
                   c->h1.url.authority.base, key);
  c->reqbuf = h2o_iovec_init(c->request, (size_t)n);
  sfu__h1_start(&c->h1);
  *out = c;
  return 0;
fail:
  c->destroyed = 1;
  sfu__h1_close(&c->h1, reap_closed); /* nothing started: just the handles */
  return rv;
}

int sfu_ws_client_send(sfu_ws_client_t *c, const char *text, size_t len) {
  if (!c || (!text && len)) return SFU_EINVAL;
  if (c->destroyed || c->state == WSC_CLOSING || c->state == WSC_DONE || c->rx_close)
    return SFU_ECANCELED;
  if (len > SFU_WS_CLIENT_MAX_QUEUED) return SFU_EMSGSIZE;
  if (sfu_ws_client_queued(c) + len > SFU_WS_CLIENT_MAX_QUEUED) return SFU_EAGAIN;
  struct wslay_event_msg m = {WSLAY_TEXT_FRAME, (const uint8_t *)text, len};
  int rv = wslay_event_queue_msg(c->ws, &m);
  if (rv == WSLAY_ERR_NOMEM) return SFU_ENOMEM;
  if (rv != 0) return SFU_ECANCELED; /* WSLAY_ERR_NO_MORE_MSG: a close is queued */
  flush(c);
  return 0;
}

void sfu_ws_client_close(sfu_ws_client_t *c, int code, const char *reason) {
  if (!c || c->destroyed || c->state == WSC_CLOSING || c->state == WSC_DONE) return;
  if (c->state == WSC_CONNECTING) {
    c->state = WSC_CLOSING; /* refuses sends; on_head/on_connect see it and stop */
    end_later(c, "closed before the handshake completed");
    return;
  }
  if (c->rx_close) return; /* the peer closed first: its close is being answered */
  if (code < 1000 || code > 4999) code = 1000;
  size_t n = reason ? strlen(reason) : 0;
  if (n > REASON_MAX) n = REASON_MAX;
  if (n) memcpy(c->tx_reason, reason, n);
  c->tx_reason[n] = '\0';
  if (wslay_event_queue_close(c->ws, (uint16_t)code, (const uint8_t *)c->tx_reason, n) != 0) {
    end_later(c, "close: cannot queue the close frame");
    return;
  }
  c->state = WSC_CLOSING;
  h2o_timeout_link(c->h1.loop, &c->h1.timeout, &c->close_timer);
  flush(c);
}

void sfu_ws_client_destroy(sfu_ws_client_t *c) {
  if (!c || c->destroyed) return;
  c->destroyed = 1;
  sfu__h1_defer(&c->h1, reap); /* replaces a pending start or deferred end */
}

size_t sfu_ws_client_queued(const sfu_ws_client_t *c) {
  return wslay_event_get_queued_msg_length(c->ws) + c->out_len;
}
