/*
 * fuzz_dtls.c -- libFuzzer target for what sfu/media/dtls.c reads itself:
 * the peer's datagrams after the session is released (sfu_dtls_release()),
 * when OpenSSL is gone and dtls.c walks the records for an epoch-1 alert
 * that opens with the peer's read key (input_released, open_alert).
 *
 * Once, and again whenever the session under test has ended: two sessions
 * shake hands in memory, `b` (the session under test) is released, and
 * `a` is destroyed, which seals its close_notify: a genuine alert record
 * of the peer. Each input is a datagram for `b`; if its first byte is odd
 * the genuine close_notify is appended after it (the walk must reach it
 * through whatever records came first). Checks: `b` fails or closes at
 * most once; it never fails on bytes that hold no genuine record (an
 * attacker cannot end a session it has no key for); with the genuine
 * close_notify reachable (a datagram dtls.c takes -- first byte a DTLS
 * content type, 20..63, at most 65535 bytes -- whose records before it are
 * all whole), it closes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sfu/media/dtls.h"
#include "tests/fuzz/check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define QCAP 32
#define MAXD 2048

typedef struct {
  sfu_dtls_t *d;
  uint8_t q[QCAP][MAXD];
  size_t qlen[QCAP];
  int qn, connected, ended;
} peer_t;

static sfu_dtls_cert_t *cert_a, *cert_b;
static peer_t a, b;
static uint8_t close_notify[MAXD];
static size_t close_notify_len;
static int ready;

static void on_send(void *arg, const uint8_t *p, size_t len) {
  peer_t *x = arg;
  if (x->qn < QCAP && len <= MAXD) {
    memcpy(x->q[x->qn], p, len);
    x->qlen[x->qn++] = len;
  }
}

static void on_connected(void *arg, const sfu_srtp_keys_t *keys) {
  (void)keys;
  ((peer_t *)arg)->connected++;
}

static void on_failed(void *arg, const char *why) {
  (void)why;
  ((peer_t *)arg)->ended++;
}

/* Delivers what x queued to y. */
static int deliver(peer_t *x, peer_t *y) {
  int n = x->qn;
  for (int i = 0; i < n; i++) (void)sfu_dtls_input(y->d, x->q[i], x->qlen[i]);
  memmove(x->q, x->q + n, (size_t)(x->qn - n) * sizeof(x->q[0]));
  memmove(x->qlen, x->qlen + n, (size_t)(x->qn - n) * sizeof(x->qlen[0]));
  x->qn -= n;
  return n;
}

static void make(peer_t *x, sfu_dtls_cert_t *own, sfu_dtls_cert_t *other, sfu_dtls_role_t role) {
  uint8_t fp[64];
  int n = sfu_dtls_fingerprint_parse(sfu_dtls_cert_fingerprint(other), fp, sizeof(fp));
  sfu_dtls_cb_t cb = {x, on_send, on_connected, on_failed};
  memset(x, 0, sizeof(*x));
  CHECK(n == 32 && sfu_dtls_create(&x->d, own, role, "sha-256", fp, (size_t)n, &cb) == 0);
}

/* A fresh released `b` and the close_notify of its peer. */
static void setup(void) {
  if (!cert_a) CHECK(sfu_dtls_cert_create(&cert_a) == 0 && sfu_dtls_cert_create(&cert_b) == 0);
  make(&a, cert_a, cert_b, SFU_DTLS_ACTIVE);
  make(&b, cert_b, cert_a, SFU_DTLS_PASSIVE);
  CHECK(sfu_dtls_start(a.d) == 0);
  for (int guard = 0; guard < 100 && (deliver(&a, &b) | deliver(&b, &a)); guard++) {
  }
  CHECK(a.connected == 1 && b.connected == 1);
  CHECK(sfu_dtls_release(b.d) == 1 && sfu_dtls_release(a.d) == 1);
  a.qn = 0;
  sfu_dtls_destroy(a.d); /* sends its close_notify */
  CHECK(a.qn == 1);
  memcpy(close_notify, a.q[0], a.qlen[0]);
  close_notify_len = a.qlen[0];
  ready = 1;
}

/* 1 if `p` is a run of whole DTLS records (13-byte headers), so that a
 * record appended after it is reached by the walk. */
static int whole_records(const uint8_t *p, size_t len) {
  while (len >= 13) {
    size_t r = 13 + ((size_t)p[11] << 8 | p[12]);
    if (r > len) return 0;
    p += r, len -= r;
  }
  return len == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static uint8_t buf[65536 + MAXD];
  if (size < 1 || size - 1 > 65536) return 0;
  if (!ready) setup();
  int with_close = data[0] & 1;
  size_t n = size - 1;
  memcpy(buf, data + 1, n);
  if (with_close) {
    memcpy(buf + n, close_notify, close_notify_len);
    n += close_notify_len;
  }
  (void)sfu_dtls_input(b.d, buf, n);
  CHECK(b.ended <= 1);
  if (!with_close) CHECK(b.ended == 0);
  else if (n <= 65535 && buf[0] >= 20 && buf[0] <= 63 && whole_records(data + 1, size - 1))
    CHECK(b.ended == 1);
  if (b.ended) {
    sfu_dtls_destroy(b.d);
    ready = 0;
  }
  return 0;
}
