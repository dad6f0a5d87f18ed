/*
 * wsclient.h -- client WebSocket (RFC 6455) for the signaling socket
 * (docs/signaling.md), on a libuv loop: the upgrade handshake over h2o's
 * http1client, framing with wslay on the socket h2o hands over.
 *
 * Built for a load generator: hundreds of clients on one loop and thread,
 * each an opaque object with two uv timers and one TCP socket. Not
 * thread-safe: use a client only from its loop's thread.
 *
 * Lifecycle
 *
 *   sfu_ws_client_connect() -> open() -> message()* -> closed() -> destroy()
 *
 * Every callback comes from the loop, never from inside an API call.
 * `closed` comes exactly once per successful connect (unless the client is
 * destroyed first), and no callback follows it. sfu_ws_client_destroy() may
 * be called at any time, from inside any of the callbacks too; after it
 * returns no callback comes, and the memory is released from the loop
 * shortly after (run the loop until it ends before uv_loop_close()).
 *
 * Callers: the load generator, tests/test_wsclient.c.
 */
#ifndef SFU_TOOLS_CLIENT_WSCLIENT_H
#define SFU_TOOLS_CLIENT_WSCLIENT_H

#include <stddef.h>

#include <uv.h>

#define SFU_WS_CLIENT_MAX_MSG (1u << 20)     /* largest message received (1009 beyond) */
#define SFU_WS_CLIENT_MAX_QUEUED (1u << 20)  /* bytes queued to send (SFU_EAGAIN beyond) */
#define SFU_WS_CLIENT_TIMEOUT_MS 10000       /* handshake, and close handshake */

typedef struct sfu_ws_client_s sfu_ws_client_t;

typedef struct sfu_ws_client_cb_s {
  void *arg;                                                 /* passed to each */
  /* The handshake is done; messages queued before it go out now. */
  void (*open)(void *arg);
  /* One complete text message, `len` bytes (not NUL-terminated); valid
   * during the call. Binary messages are ignored. */
  void (*message)(void *arg, const char *text, size_t len);
  /* The end, exactly once:
   *  - a close frame was received: its code (1005 if it had none) and
   *    reason, e.g. 4001 "invalid token: ..." (after our reply went out);
   *  - we failed the connection with a close frame: its code, 1009
   *    "message too big" or 1002 "protocol error";
   *  - no close frame: 1006 and why, "connect: connection failure",
   *    "resolve host: ...", "handshake: HTTP 404", "handshake: timeout after
   *    10000 ms", "connection lost: socket closed by peer",
   *    "close handshake timed out", "closed before the handshake completed".
   * Then free the client with sfu_ws_client_destroy() (from here is fine). */
  void (*closed)(void *arg, int code, const char *reason);
} sfu_ws_client_cb_t;

/* Starts connecting to `url` ("ws://host[:port]/path?query"; host an IPv4
 * address, an IPv6 one in brackets ("ws://[::1]:7880/v1/rtc") or a name,
 * as for sfu_http_request(); wss:// is not supported). Copies url and *cb.
 * Returns 0 with *out set (callbacks follow), or SFU_EINVAL / SFU_ENOMEM
 * with *out = NULL and no callback. */
int sfu_ws_client_connect(sfu_ws_client_t **out, uv_loop_t *loop, const char *url,
                          const sfu_ws_client_cb_t *cb);

/* Queues one text message (copied; valid UTF-8 is the caller's business).
 * Before `open` it waits for the handshake. Returns 0, SFU_EMSGSIZE (over
 * SFU_WS_CLIENT_MAX_QUEUED alone), SFU_EAGAIN (the queue would exceed
 * SFU_WS_CLIENT_MAX_QUEUED: wait for the peer), SFU_ECANCELED (closing or
 * closed), SFU_ENOMEM. */
int sfu_ws_client_send(sfu_ws_client_t *c, const char *text, size_t len);

/* Graceful close: queued messages go first, then a close frame with `code`
 * (1000..4999) and `reason` (cut to 123 bytes); `closed` follows once the
 * server answered (with the server's code) or after
 * SFU_WS_CLIENT_TIMEOUT_MS. Before the handshake completes it abandons the
 * attempt (closed: 1006 "closed before the handshake completed"). No-op
 * when already closing or closed. */
void sfu_ws_client_close(sfu_ws_client_t *c, int code, const char *reason);

/* Releases the client at any point (NULL is fine); no callback follows. An
 * open connection is dropped without a close frame: close first for a
 * graceful end. */
void sfu_ws_client_destroy(sfu_ws_client_t *c);

/* Bytes queued to send and not yet written to the socket. */
size_t sfu_ws_client_queued(const sfu_ws_client_t *c);

#endif
