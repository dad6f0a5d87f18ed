/*
 * dtls.c -- DTLS 1.2 handshakes for DTLS-SRTP, on OpenSSL 3, with no
 * sockets.
 *
 * Job. Run one DTLS handshake per peer over datagrams that the transport
 * carries. Check that the peer's certificate is the one its SDP names.
 * Export the SRTP master keys. Then stay out of the way: after the
 * handshake this file only answers retransmitted flights and notices
 * close_notify or a fatal alert.
 *
 * BIOs. OpenSSL reads from `rbio` and writes to `wbio`:
 *
 *   sfu_dtls_input(datagram) ─▶ rbio (BIO_s_mem) ─▶ SSL ─▶ wbio (ours) ─▶ cb.send
 *
 * rbio is OpenSSL's memory BIO. It holds exactly one datagram at a time:
 * input() writes the datagram, drives the SSL until it wants more, then
 * resets the BIO, so a datagram boundary is never lost. DTLS reads a whole
 * packet per BIO_read, and every record in it is processed before the next
 * read.
 *
 * wbio cannot be a memory BIO. A memory BIO concatenates what it is given,
 * so a flight (about 1.5 KB with the Certificate) would come out as one
 * oversized blob. Our write BIO instead passes each BIO_write straight to
 * cb.send as one datagram. OpenSSL does the packing: during the handshake
 * it pushes a buffering BIO on top of ours, fills it with records up to the
 * MTU (it reads the fill level through BIO_CTRL_WPENDING on that buffer),
 * and flushes when the next record would not fit or the flight is
 * complete. Each flush reaches us as one write, so each write is one
 * datagram of at most SFU_DTLS_MTU bytes. After the handshake the buffer is
 * gone and each record (an alert, close_notify) is one write. The BIO
 * reports nothing pending and flushes successfully, which is the truth,
 * because it never holds bytes.
 *
 * MTU. SSL_OP_NO_QUERY_MTU with SSL_set_mtu(1200): there is no socket to
 * ask, and 1200 bytes of UDP payload get through every path WebRTC cares
 * about (the same figure libwebrtc uses).
 *
 * Trust. WebRTC certificates are self-signed. The only trust anchor is the
 * fingerprint in the peer's SDP, which arrived over our authenticated
 * signaling (RFC 8827 §6.5). So the context installs a whole-chain verify
 * callback (SSL_CTX_set_cert_verify_callback) in place of OpenSSL's PKIX
 * validation. It hashes the peer's leaf certificate with the algorithm the
 * SDP named and compares that to the SDP value in constant time. Chain,
 * issuer and validity dates are deliberately ignored (browsers send
 * certificates that are already expired or not yet valid). Possession of
 * the key is still proven by the handshake itself (CertificateVerify or the
 * signed ServerKeyExchange). The server side asks for a client certificate
 * and fails without one (SSL_VERIFY_FAIL_IF_NO_PEER_CERT). A mismatch makes
 * OpenSSL send bad_certificate and fail the handshake. The peer gets the
 * alert and fails too, so neither side reports `connected`.
 *
 * Timers. OpenSSL keeps the retransmission deadline itself, read with
 * DTLSv1_get_timeout and fired with DTLSv1_handle_timeout. The owner turns
 * that into one uv timer. A per-SSL timer callback sets the schedule
 * (400 ms, doubling, capped at 3.2 s) in place of OpenSSL's 1 s start and
 * 60 s cap. ICE has already proven the path, so a lost flight is worth
 * resending soon, and no user waits a minute for a call. OpenSSL gives up
 * after 12 retransmissions of one flight; that becomes cb.failed.
 *
 * State. NEW -> HANDSHAKING -> CONNECTED -> CLOSED, or FAILED from any of
 * them. FAILED and CLOSED are final: no callback runs again and input is
 * refused.
 *
 * Release. A connected OpenSSL session holds some 70 KiB: its read and
 * write buffers (DTLS keeps them: SSL_MODE_RELEASE_BUFFERS applies to TLS
 * only), the handshake buffer (kept for retransmissions), the peer's
 * certificate, the session, the record ciphers. All it still does for us
 * is answer a retransmitted final flight, read the peer's close_notify or
 * fatal alert, and write our close_notify at the end. Once the peer is
 * known to be done with the handshake (sfu_dtls_release(): the transport
 * saw its first SRTP packet, or enough time passed), the session goes and
 * what remains does the other two, for the AEAD suites (AES-GCM,
 * ChaCha20-Poly1305: what every WebRTC peer negotiates):
 *   - our close_notify is sealed by OpenSSL at the release (SSL_shutdown,
 *     its datagram captured by the write BIO instead of sent) and sent as
 *     is by sfu_dtls_destroy(). We write no other record after the
 *     handshake, so its sequence number is the one OpenSSL would use then;
 *   - the peer's epoch-1 write key and IV are derived from the session
 *     (RFC 5246 §6.3 key block, TLS1-PRF over the master secret), and an
 *     alert record from the peer is opened with them (RFC 5288 / RFC 7905
 *     nonce and additional data). Every other record is dropped, as before
 *     (retransmitted handshake flights are no longer answered: the peer
 *     has finished).
 * A session on a CBC suite is kept whole. See docs/internals/dtls-srtp.md,
 * "Releasing the session".
 *
 * Errors. Each call into OpenSSL starts with an empty error queue
 * (SSL_get_error reads it). When a handshake or session fails, the first
 * queued OpenSSL reason is logged once with the reason we report, and the
 * queue is cleared.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "sfu/media/dtls.h"
#include "sfu/base/log.h"
#include "sfu/base/sfu.h"

#define CERT_DAYS 30                 /* validity forward from now */
#define CERT_BACKDATE_SECS (24 * 3600) /* tolerate peers with slow clocks */
#define RTO_INITIAL_US 400000u       /* first retransmission after 400 ms */
#define RTO_MAX_US 3200000u          /* then doubling up to 3.2 s */
#define MAX_DATAGRAM 65535           /* anything longer is not from UDP */

/* Offered SRTP profiles, preferred first (RFC 5764 §4.1.1, RFC 7714 §14.2). */
#define SRTP_PROFILES "SRTP_AEAD_AES_128_GCM:SRTP_AES128_CM_SHA1_80"
/* ECDHE only. ECDSA suites serve our own certificate. RSA suites are there
 * for peers with RSA certificates when we are the client. */
#define CIPHERS                                                          \
  "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"         \
  "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256:"           \
  "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-CHACHA20-POLY1305:"             \
  "ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:"  \
  "ECDHE-RSA-AES256-SHA"
#define GROUPS "X25519:P-256:P-384"
#define EXPORTER_LABEL "EXTRACTOR-dtls_srtp" /* RFC 5764 §4.2 */
#define MASTER_KEY_LEN 16  /* both profiles */
#define MASTER_SALT_MAX 14 /* CM_SHA1_80; GCM uses 12 */

struct sfu_dtls_cert_s {
  SSL_CTX *ctx;          /* DTLS context shared by every session (refcounted) */
  X509 *x509;            /* our certificate, also installed in ctx */
  EVP_PKEY *pkey;        /* its P-256 key, also installed in ctx */
  char fingerprint[SFU_DTLS_FINGERPRINT_LEN]; /* "AB:CD:..." SHA-256 */
};

typedef enum {
  ST_NEW,         /* created; nothing sent or received */
  ST_HANDSHAKING, /* ClientHello sent or received */
  ST_CONNECTED,   /* keys handed out */
  ST_CLOSED,      /* close_notify received; final */
  ST_FAILED,      /* failure reported; final */
} dtls_state_t;

/*
 * One peer's session. `ssl` owns both BIOs. The write BIO points back here
 * through BIO_get_data, and the SSL points here through its app data (for
 * the verify, info and timer callbacks).
 */
struct sfu_dtls_s {
  SSL *ssl;                  /* OpenSSL connection; owns rbio and wbio */
  BIO *rbio;                 /* memory BIO holding the datagram being read */
  sfu_dtls_cb_t cb;          /* owner's callbacks (copied) */
  sfu_dtls_role_t role;      /* client (active) or server (passive) */
  dtls_state_t state;        /* see the state paragraph above */
  const EVP_MD *fp_md;       /* hash the peer's SDP fingerprint uses */
  uint8_t fp[EVP_MAX_MD_SIZE]; /* the SDP fingerprint bytes */
  size_t fp_len;             /* == EVP_MD_get_size(fp_md) */
  int fp_verified;           /* verify callback matched the fingerprint */
  int fp_mismatch;           /* verify callback saw a different cert */
  char alert[64];            /* last alert received, for the reason text */
  /* after sfu_dtls_release() (ssl == NULL): see "Release" above */
  int capture;               /* the write BIO stores into close_notify */
  uint8_t close_notify[64];  /* our close_notify record, sealed at release */
  size_t close_notify_len;   /* 0 = none to send */
  const EVP_CIPHER *rd_cipher; /* the suite's AEAD, to open the peer's alerts */
  uint8_t rd_key[32];        /* the peer's epoch-1 write key */
  uint8_t rd_iv[12];         /* its write IV: 4 bytes (GCM) or 12 (ChaCha20) */
  size_t rd_iv_len;          /* 4 (GCM: 8 explicit nonce bytes per record) or 12 */
};

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */
/* ------------------------------------------------------------------------ */

/* First queued OpenSSL error as text (or "-"); clears the queue. */
static void take_openssl_error(char *buf, size_t cap) {
  unsigned long e = ERR_get_error();
  if (e == 0)
    snprintf(buf, cap, "-");
  else
    ERR_error_string_n(e, buf, cap);
  ERR_clear_error();
}

/* Logs a failed setup step with OpenSSL's reason; returns SFU_EPROTO. */
static int setup_error(const char *step) {
  char err[256];
  take_openssl_error(err, sizeof(err));
  sfu_log(SFU_LOG_WARN, "dtls", "%s failed: %s", step, err);
  return SFU_EPROTO;
}

/* ------------------------------------------------------------------------ */
/* Write BIO: one BIO_write == one datagram to cb.send                      */
/* ------------------------------------------------------------------------ */

static BIO_METHOD *out_method;
static CRYPTO_ONCE out_method_once = CRYPTO_ONCE_STATIC_INIT;

static int out_write(BIO *b, const char *data, int len) {
  sfu_dtls_t *d = BIO_get_data(b);
  BIO_clear_retry_flags(b);
  if (len <= 0) return 0;
  if (d != NULL && d->capture) { /* sfu_dtls_release() sealing close_notify */
    if ((size_t)len <= sizeof(d->close_notify)) {
      memcpy(d->close_notify, data, (size_t)len);
      d->close_notify_len = (size_t)len;
    }
  } else if (d != NULL) {
    d->cb.send(d->cb.arg, (const uint8_t *)data, (size_t)len);
  }
  return len;
}

static long out_ctrl(BIO *b, int cmd, long num, void *ptr) {
  switch (cmd) {
  case BIO_CTRL_FLUSH:
    return 1; /* nothing is ever held back */
  case BIO_CTRL_WPENDING:
  case BIO_CTRL_PENDING:
    return 0;
  case BIO_CTRL_DGRAM_QUERY_MTU:
  case BIO_CTRL_DGRAM_GET_FALLBACK_MTU:
    return SFU_DTLS_MTU; /* only asked if NO_QUERY_MTU were off */
  default:
    return 0; /* timeouts, peer address, SCTP: not a socket, nothing to do */
  }
}

static int out_create(BIO *b) {
  BIO_set_init(b, 1);
  return 1;
}

/* Creates the BIO_METHOD once per process. It is never freed: it stays
 * reachable from `out_method` and costs a few dozen bytes. */
static void out_method_init(void) {
  BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
                               "sfu dtls datagram out");
  if (m == NULL) return;
  if (!BIO_meth_set_write(m, out_write) || !BIO_meth_set_ctrl(m, out_ctrl) ||
      !BIO_meth_set_create(m, out_create)) {
    BIO_meth_free(m);
    return;
  }
  out_method = m;
}

static const BIO_METHOD *get_out_method(void) {
  if (!CRYPTO_THREAD_run_once(&out_method_once, out_method_init)) return NULL;
  return out_method;
}

/* ------------------------------------------------------------------------ */
/* Fingerprints                                                             */
/* ------------------------------------------------------------------------ */

/* The SDP hash names of RFC 8122 §5 that we accept. */
static const EVP_MD *fingerprint_md(const char *alg) {
  if (alg == NULL) return NULL;
  if (strcasecmp(alg, "sha-256") == 0) return EVP_sha256();
  if (strcasecmp(alg, "sha-1") == 0) return EVP_sha1();
  if (strcasecmp(alg, "sha-384") == 0) return EVP_sha384();
  if (strcasecmp(alg, "sha-512") == 0) return EVP_sha512();
  if (strcasecmp(alg, "sha-224") == 0) return EVP_sha224();
  return NULL;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int sfu_dtls_fingerprint_parse(const char *s, uint8_t *out, size_t cap) {
  size_t n = 0;
  if (s == NULL || *s == '\0') return SFU_EINVAL;
  for (;;) {
    int hi = hexval(s[0]), lo = hi < 0 ? -1 : hexval(s[1]);
    if (hi < 0 || lo < 0) return SFU_EINVAL;
    if (n == cap) return SFU_E2BIG;
    if (n == INT_MAX) return SFU_E2BIG;
    out[n++] = (uint8_t)(hi << 4 | lo);
    s += 2;
    if (*s == '\0') return (int)n;
    if (*s != ':') return SFU_EINVAL;
    s++;
  }
}

/* "AB:CD:..." from `len` bytes; `out` holds 3*len bytes. */
static void format_fingerprint(const uint8_t *md, size_t len, char *out) {
  static const char hex[] = "0123456789ABCDEF";
  for (size_t i = 0; i < len; i++) {
    out[3 * i] = hex[md[i] >> 4];
    out[3 * i + 1] = hex[md[i] & 15];
    out[3 * i + 2] = i + 1 < len ? ':' : '\0';
  }
}

/* ------------------------------------------------------------------------ */
/* Context callbacks (shared by all sessions; find theirs via app data)     */
/* ------------------------------------------------------------------------ */

/*
 * Whole-chain verification. OpenSSL calls this once per handshake, with the
 * peer's certificate chain, when the Certificate message arrives. Returns 1
 * to accept. To reject, return 0 with an X509 error set: OpenSSL then sends
 * a fatal alert.
 */
static int verify_peer(X509_STORE_CTX *store, void *arg) {
  SSL *ssl = X509_STORE_CTX_get_ex_data(store,
                                        SSL_get_ex_data_X509_STORE_CTX_idx());
  sfu_dtls_t *d = ssl ? SSL_get_app_data(ssl) : NULL;
  X509 *leaf = X509_STORE_CTX_get0_cert(store);
  uint8_t md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;

  if (d == NULL || leaf == NULL) {
    X509_STORE_CTX_set_error(store, X509_V_ERR_UNSPECIFIED);
    return 0;
  }
  if (!X509_digest(leaf, d->fp_md, md, &n) || n != d->fp_len ||
      CRYPTO_memcmp(md, d->fp, n) != 0) {
    d->fp_mismatch = 1;
    X509_STORE_CTX_set_error(store, X509_V_ERR_CERT_REJECTED);
    return 0;
  }
  d->fp_verified = 1;
  X509_STORE_CTX_set_error(store, X509_V_OK);
  return 1;
}

/* Remembers the last alert the peer sent, for the failure reason. */
static void info_cb(const SSL *ssl, int where, int ret) {
  sfu_dtls_t *d;
  if (!(where & SSL_CB_READ_ALERT)) return;
  d = SSL_get_app_data(ssl);
  if (d == NULL) return;
  snprintf(d->alert, sizeof(d->alert), "%s %s",
           SSL_alert_type_string_long(ret), SSL_alert_desc_string_long(ret));
}

/* Retransmission schedule: prev_us == 0 starts a flight. */
static unsigned int timer_cb(SSL *ssl, unsigned int prev_us) {
  if (prev_us == 0) return RTO_INITIAL_US;
  return prev_us >= RTO_MAX_US / 2 ? RTO_MAX_US : prev_us * 2;
}

/* ------------------------------------------------------------------------ */
/* Certificate and context                                                  */
/* ------------------------------------------------------------------------ */

/* Builds and signs the self-signed certificate for `pkey`. */
static X509 *make_x509(EVP_PKEY *pkey) {
  X509 *x = X509_new();
  X509_NAME *name;
  BIGNUM *bn = NULL;
  uint8_t serial[8];
  int ok = 0;

  if (x == NULL) return NULL;
  /* Positive, non-zero, 63 random bits: top bit clear, next bit set. */
  sfu_random_bytes(serial, sizeof(serial));
  serial[0] = (uint8_t)((serial[0] & 0x7f) | 0x40);
  bn = BN_bin2bn(serial, sizeof(serial), NULL);
  if (bn == NULL || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)))
    goto out;
  if (!X509_set_version(x, X509_VERSION_3)) goto out;
  if (!X509_gmtime_adj(X509_getm_notBefore(x), -CERT_BACKDATE_SECS) ||
      !X509_gmtime_adj(X509_getm_notAfter(x), (long)CERT_DAYS * 24 * 3600))
    goto out;
  name = X509_get_subject_name(x);
  if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                  (const unsigned char *)"sfu", -1, -1, 0))
    goto out;
  if (!X509_set_issuer_name(x, name) || !X509_set_pubkey(x, pkey)) goto out;
  if (X509_sign(x, pkey, EVP_sha256()) <= 0) goto out;
  ok = 1;
out:
  BN_free(bn);
  if (!ok) {
    X509_free(x);
    return NULL;
  }
  return x;
}

/*
 * A DTLS context made ahead of time, with every setting but the
 * certificate (sfu_dtls_cert_prepare()): the next certificate of the
 * process takes it. SSL_CTX_new() fetches the algorithms DTLS may use, and
 * each fetch writes OpenSSL's shared tables (locks, reference counts): in
 * a room forked from the zygote that copied 128 KiB of the zygote's pages.
 * Made in the zygote instead, the fetches are the zygote's, and each room
 * takes a copy of a context nobody has used (the zygote never takes it).
 */
static SSL_CTX *spare_ctx;

/* The DTLS 1.2 context of a certificate, without the certificate: every
 * session of that certificate is made from it. */
static SSL_CTX *make_ctx(void) {
  SSL_CTX *ctx = SSL_CTX_new(DTLS_method());
  if (ctx == NULL) return NULL;
  if (!SSL_CTX_set_min_proto_version(ctx, DTLS1_2_VERSION) ||
      !SSL_CTX_set_max_proto_version(ctx, DTLS1_2_VERSION) ||
      SSL_CTX_set_cipher_list(ctx, CIPHERS) != 1 ||
      SSL_CTX_set1_groups_list(ctx, GROUPS) != 1 ||
      SSL_CTX_set_tlsext_use_srtp(ctx, SRTP_PROFILES) != 0 /* 0 = ok */) {
    SSL_CTX_free(ctx);
    return NULL;
  }
  /* No MTU discovery (no socket), no tickets or resumption (one handshake
   * per peer), no renegotiation (it would change keys under SRTP). */
  SSL_CTX_set_options(ctx, SSL_OP_NO_QUERY_MTU | SSL_OP_NO_TICKET |
                               SSL_OP_NO_RENEGOTIATION |
                               SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                     NULL);
  SSL_CTX_set_cert_verify_callback(ctx, verify_peer, NULL);
  SSL_CTX_set_info_callback(ctx, info_cb);
  return ctx;
}

int sfu_dtls_cert_prepare(void) {
  if (spare_ctx != NULL) return 0;
  ERR_clear_error();
  spare_ctx = make_ctx();
  return spare_ctx != NULL ? 0 : setup_error("DTLS context");
}

int sfu_dtls_cert_create(sfu_dtls_cert_t **out) {
  sfu_dtls_cert_t *c;
  uint8_t md[32];
  unsigned int n = 0;
  int rv = 0;

  if (out == NULL) return SFU_EINVAL;
  *out = NULL;
  c = calloc(1, sizeof(*c));
  if (c == NULL) return SFU_ENOMEM;
  ERR_clear_error();

  c->pkey = EVP_EC_gen("P-256");
  if (c->pkey == NULL) {
    rv = setup_error("P-256 key generation");
    goto out;
  }
  c->x509 = make_x509(c->pkey);
  if (c->x509 == NULL) {
    rv = setup_error("certificate");
    goto out;
  }
  if (!X509_digest(c->x509, EVP_sha256(), md, &n) || n != sizeof(md)) {
    rv = setup_error("certificate digest");
    goto out;
  }
  format_fingerprint(md, n, c->fingerprint);
  c->ctx = spare_ctx != NULL ? spare_ctx : make_ctx();
  spare_ctx = NULL;
  if (c->ctx == NULL || SSL_CTX_use_certificate(c->ctx, c->x509) != 1 ||
      SSL_CTX_use_PrivateKey(c->ctx, c->pkey) != 1 ||
      SSL_CTX_check_private_key(c->ctx) != 1) {
    rv = setup_error("DTLS context");
    goto out;
  }
  sfu_log(SFU_LOG_DEBUG, "dtls", "certificate sha-256 %s", c->fingerprint);
out:
  if (rv) {
    sfu_dtls_cert_destroy(c);
    return rv;
  }
  *out = c;
  return 0;
}

void sfu_dtls_cert_destroy(sfu_dtls_cert_t *c) {
  if (c == NULL) return;
  SSL_CTX_free(c->ctx); /* sessions keep their own reference */
  X509_free(c->x509);
  EVP_PKEY_free(c->pkey);
  free(c);
}

const char *sfu_dtls_cert_fingerprint(const sfu_dtls_cert_t *c) {
  return c->fingerprint;
}

int sfu_dtls_cert_der(const sfu_dtls_cert_t *c, uint8_t *buf, size_t cap) {
  int n = i2d_X509(c->x509, NULL);
  unsigned char *p = buf;
  if (n <= 0) return setup_error("certificate encoding");
  if ((size_t)n <= cap && i2d_X509(c->x509, &p) != n)
    return setup_error("certificate encoding");
  return n;
}

/* ------------------------------------------------------------------------ */
/* Session                                                                  */
/* ------------------------------------------------------------------------ */

/*
 * Enters a final state, logs once and tells the owner. Returns SFU_EPROTO.
 * `notify` sends close_notify first. It is used when OpenSSL itself
 * finished the handshake but we refuse the result (no SRTP profile): the
 * peer believes it is connected, and without the notice it would send
 * media into a void.
 */
static int end_session(sfu_dtls_t *d, dtls_state_t final, const char *why,
                       int notify) {
  char err[256];
  take_openssl_error(err, sizeof(err));
  if (d->state == ST_FAILED || d->state == ST_CLOSED) return SFU_EPROTO;
  if (notify) {
    (void)SSL_shutdown(d->ssl);
    ERR_clear_error();
  }
  d->state = final;
  sfu_log(final == ST_CLOSED ? SFU_LOG_INFO : SFU_LOG_WARN, "dtls",
          "%s %s: %s (openssl: %s)",
          d->role == SFU_DTLS_ACTIVE ? "client" : "server",
          final == ST_CLOSED ? "closed" : "failed", why, err);
  d->cb.failed(d->cb.arg, why);
  return SFU_EPROTO;
}

/* Failure after SSL_get_error() said `err`: pick the most useful reason. */
static int fail_ssl(sfu_dtls_t *d, int err) {
  char why[128];
  unsigned long e = ERR_peek_error();

  if (d->fp_mismatch)
    snprintf(why, sizeof(why),
             "peer certificate does not match the SDP fingerprint");
  else if (d->alert[0])
    snprintf(why, sizeof(why), "peer sent alert: %s", d->alert);
  else if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
           ERR_GET_REASON(e) == SSL_R_READ_TIMEOUT_EXPIRED)
    snprintf(why, sizeof(why), "handshake timed out");
  else if (e != 0)
    snprintf(why, sizeof(why), "%s",
             ERR_reason_error_string(e) ? ERR_reason_error_string(e)
                                        : "DTLS error");
  else
    snprintf(why, sizeof(why), "DTLS error (SSL_get_error %d)", err);
  return end_session(d, ST_FAILED, why, 0);
}

/*
 * The handshake has just completed: check what was agreed, export and
 * split the keys (RFC 5764 §4.2), and report them.
 *
 *   exporter output: client_key | server_key | client_salt | server_salt
 *   ACTIVE (client): local = client_*, remote = server_*;  PASSIVE: swapped
 */
static int handshake_done(sfu_dtls_t *d) {
  const SRTP_PROTECTION_PROFILE *p = SSL_get_selected_srtp_profile(d->ssl);
  uint8_t km[2 * (MASTER_KEY_LEN + MASTER_SALT_MAX)];
  sfu_srtp_keys_t keys;
  size_t key_len = MASTER_KEY_LEN, salt_len, total;
  const uint8_t *ck, *sk, *cs, *ss;

  if (p == NULL)
    return end_session(d, ST_FAILED, "no SRTP profile agreed", 1);
  if (!d->fp_verified) /* cannot happen with VERIFY_FAIL_IF_NO_PEER_CERT */
    return end_session(d, ST_FAILED, "peer certificate not verified", 1);
  if (p->id == SFU_SRTP_AEAD_AES_128_GCM)
    salt_len = 12;
  else if (p->id == SFU_SRTP_AES128_CM_SHA1_80)
    salt_len = 14;
  else
    return end_session(d, ST_FAILED, "unexpected SRTP profile", 1);
  total = 2 * (key_len + salt_len);
  if (SSL_export_keying_material(d->ssl, km, total, EXPORTER_LABEL,
                                 strlen(EXPORTER_LABEL), NULL, 0, 0) != 1)
    return end_session(d, ST_FAILED, "keying material export failed", 1);

  ck = km;
  sk = km + key_len;
  cs = km + 2 * key_len;
  ss = cs + salt_len;
  memset(&keys, 0, sizeof(keys));
  keys.profile = (sfu_srtp_profile_t)p->id;
  keys.key_len = key_len;
  keys.salt_len = salt_len;
  memcpy(keys.local_key, d->role == SFU_DTLS_ACTIVE ? ck : sk, key_len);
  memcpy(keys.remote_key, d->role == SFU_DTLS_ACTIVE ? sk : ck, key_len);
  memcpy(keys.local_salt, d->role == SFU_DTLS_ACTIVE ? cs : ss, salt_len);
  memcpy(keys.remote_salt, d->role == SFU_DTLS_ACTIVE ? ss : cs, salt_len);
  OPENSSL_cleanse(km, sizeof(km));

  d->state = ST_CONNECTED;
  sfu_log(SFU_LOG_INFO, "dtls", "%s connected: %s, %s",
          d->role == SFU_DTLS_ACTIVE ? "client" : "server", p->name,
          SSL_get_cipher_name(d->ssl));
  d->cb.connected(d->cb.arg, &keys);
  OPENSSL_cleanse(&keys, sizeof(keys));
  return 0;
}

/* Advances the handshake with whatever rbio holds. */
static int drive_handshake(sfu_dtls_t *d) {
  int r, err;
  ERR_clear_error();
  r = SSL_do_handshake(d->ssl);
  if (r == 1) return handshake_done(d);
  err = SSL_get_error(d->ssl, r);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
    ERR_clear_error();
    return 0;
  }
  return fail_ssl(d, err);
}

/*
 * After the handshake: let OpenSSL process what arrived. Application data
 * is discarded. A retransmitted final flight from the peer makes OpenSSL
 * resend ours. close_notify and fatal alerts end the session.
 */
static int drain(sfu_dtls_t *d) {
  uint8_t scratch[2048];
  for (;;) {
    int r, err;
    ERR_clear_error();
    r = SSL_read(d->ssl, scratch, sizeof(scratch));
    if (r > 0) continue; /* application data: not used by WebRTC media */
    err = SSL_get_error(d->ssl, r);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
      ERR_clear_error();
      return 0;
    }
    if (err == SSL_ERROR_ZERO_RETURN) {
      end_session(d, ST_CLOSED, "closed by peer (close_notify)", 0);
      return 0;
    }
    return fail_ssl(d, err);
  }
}

/* ------------------------------------------------------------------------ */
/* Release: the session without OpenSSL's                                   */
/* ------------------------------------------------------------------------ */

#define RECORD_HEADER 13    /* DTLS 1.2 record: type, version, epoch+seq, len */
#define RT_ALERT 21         /* record content type */
#define AEAD_TAG 16         /* GCM and Poly1305 tags */
#define GCM_EXPLICIT 8      /* GCM nonce bytes carried in each record */
#define KEY_BLOCK_LABEL "key expansion" /* RFC 5246 §6.3 */

/*
 * Derives the peer's epoch-1 write key and IV for an AEAD suite (RFC 5246
 * §6.3: key_block = PRF(master_secret, "key expansion", server_random +
 * client_random), split client_write_key | server_write_key |
 * client_write_IV | server_write_IV, no MAC keys for AEAD). Returns 1, or
 * 0 for a suite this file does not open (CBC) or a KDF failure.
 */
static int derive_read_keys(sfu_dtls_t *d) {
  const SSL_CIPHER *c = SSL_get_current_cipher(d->ssl);
  const EVP_MD *prf = c ? SSL_CIPHER_get_handshake_digest(c) : NULL;
  const EVP_CIPHER *cipher;
  uint8_t master[SSL_MAX_MASTER_KEY_LENGTH], kb[2 * (32 + 12)];
  uint8_t seed[sizeof(KEY_BLOCK_LABEL) - 1 + 2 * SSL3_RANDOM_SIZE];
  size_t mlen, klen, ivlen, lab = sizeof(KEY_BLOCK_LABEL) - 1;
  EVP_KDF *kdf = NULL;
  EVP_KDF_CTX *kctx = NULL;
  OSSL_PARAM params[4];
  int ok = 0, client = d->role == SFU_DTLS_PASSIVE; /* the peer writes as client */

  if (c == NULL || prf == NULL || !SSL_CIPHER_is_aead(c)) return 0;
  switch (SSL_CIPHER_get_cipher_nid(c)) {
  case NID_aes_128_gcm: cipher = EVP_aes_128_gcm(); ivlen = 4; break;
  case NID_aes_256_gcm: cipher = EVP_aes_256_gcm(); ivlen = 4; break;
  case NID_chacha20_poly1305: cipher = EVP_chacha20_poly1305(); ivlen = 12; break;
  default: return 0;
  }
  klen = (size_t)EVP_CIPHER_get_key_length(cipher);
  mlen = SSL_SESSION_get_master_key(SSL_get_session(d->ssl), master, sizeof(master));
  if (klen > sizeof(d->rd_key) || mlen == 0) return 0;
  memcpy(seed, KEY_BLOCK_LABEL, lab);
  if (SSL_get_server_random(d->ssl, seed + lab, SSL3_RANDOM_SIZE) != SSL3_RANDOM_SIZE ||
      SSL_get_client_random(d->ssl, seed + lab + SSL3_RANDOM_SIZE, SSL3_RANDOM_SIZE) !=
          SSL3_RANDOM_SIZE)
    goto out;
  kdf = EVP_KDF_fetch(NULL, OSSL_KDF_NAME_TLS1_PRF, NULL);
  kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
  if (kctx == NULL) goto out;
  params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
                                               (char *)EVP_MD_get0_name(prf), 0);
  params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SECRET, master, mlen);
  params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SEED, seed, sizeof(seed));
  params[3] = OSSL_PARAM_construct_end();
  if (EVP_KDF_derive(kctx, kb, 2 * (klen + ivlen), params) != 1) goto out;
  memcpy(d->rd_key, kb + (client ? 0 : klen), klen);
  memcpy(d->rd_iv, kb + 2 * klen + (client ? 0 : ivlen), ivlen);
  d->rd_iv_len = ivlen;
  d->rd_cipher = cipher;
  ok = 1;
out:
  EVP_KDF_CTX_free(kctx);
  EVP_KDF_free(kdf);
  OPENSSL_cleanse(master, sizeof(master));
  OPENSSL_cleanse(kb, sizeof(kb));
  ERR_clear_error();
  return ok;
}

/*
 * Opens one epoch-1 alert record of the peer (`rec`: header and fragment,
 * `len` bytes) into `alert` (level, description). AES-GCM (RFC 5288): the
 * fragment is an 8-byte explicit nonce, the ciphertext and the tag, the
 * nonce is IV || explicit nonce. ChaCha20-Poly1305 (RFC 7905): ciphertext
 * and tag, the nonce is IV XOR the 64-bit epoch and sequence number. The
 * additional data is epoch+seq || type || version || plaintext length
 * (RFC 6347 §4.1.2.1). Returns 1 if it authenticates and holds 2 bytes.
 */
static int open_alert(const sfu_dtls_t *d, const uint8_t *rec, size_t len,
                      uint8_t alert[2]) {
  size_t explicit_len = d->rd_iv_len == 4 ? GCM_EXPLICIT : 0;
  const uint8_t *ct = rec + RECORD_HEADER + explicit_len;
  uint8_t nonce[12], aad[13], fin[EVP_MAX_BLOCK_LENGTH];
  EVP_CIPHER_CTX *ctx;
  int n, ok = 0;

  if (len != RECORD_HEADER + explicit_len + 2 + AEAD_TAG) return 0;
  if (explicit_len) {
    memcpy(nonce, d->rd_iv, 4);
    memcpy(nonce + 4, rec + RECORD_HEADER, GCM_EXPLICIT);
  } else {
    memcpy(nonce, d->rd_iv, 12);
    for (int i = 0; i < 8; i++) nonce[4 + i] ^= rec[3 + i];
  }
  memcpy(aad, rec + 3, 8);   /* epoch and sequence number */
  memcpy(aad + 8, rec, 3);   /* type and version */
  aad[11] = 0;
  aad[12] = 2;               /* plaintext length */
  ctx = EVP_CIPHER_CTX_new();
  if (ctx != NULL &&
      EVP_DecryptInit_ex(ctx, d->rd_cipher, NULL, d->rd_key, nonce) == 1 &&
      EVP_DecryptUpdate(ctx, NULL, &n, aad, sizeof(aad)) == 1 &&
      EVP_DecryptUpdate(ctx, alert, &n, ct, 2) == 1 && n == 2 &&
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, AEAD_TAG, (void *)(ct + 2)) == 1 &&
      EVP_DecryptFinal_ex(ctx, fin, &n) == 1)
    ok = 1;
  EVP_CIPHER_CTX_free(ctx);
  ERR_clear_error();
  return ok;
}

/*
 * Input after the release: every record of the datagram is skipped but an
 * epoch-1 alert that opens. close_notify closes the session, a fatal alert
 * fails it (the reasons OpenSSL's path gives), a warning is ignored.
 */
static int input_released(sfu_dtls_t *d, const uint8_t *data, size_t len) {
  while (len >= RECORD_HEADER) {
    size_t rec_len = RECORD_HEADER + ((size_t)data[11] << 8 | data[12]);
    uint8_t alert[2];
    if (rec_len > len) break; /* malformed: the rest is dropped */
    if (data[0] == RT_ALERT && data[3] == 0 && data[4] == 1 &&
        open_alert(d, data, rec_len, alert)) {
      if (alert[1] == SSL_AD_CLOSE_NOTIFY) {
        end_session(d, ST_CLOSED, "closed by peer (close_notify)", 0);
        return 0;
      }
      if (alert[0] == SSL3_AL_FATAL) {
        char why[128];
        int v = alert[0] << 8 | alert[1];
        snprintf(why, sizeof(why), "peer sent alert: %s %s",
                 SSL_alert_type_string_long(v), SSL_alert_desc_string_long(v));
        return end_session(d, ST_FAILED, why, 0);
      }
    }
    data += rec_len;
    len -= rec_len;
  }
  return 0;
}

int sfu_dtls_release(sfu_dtls_t *d) {
  if (d->ssl == NULL) return 1;
  if (d->state != ST_CONNECTED || !derive_read_keys(d)) return 0;
  d->capture = 1;
  ERR_clear_error();
  (void)SSL_shutdown(d->ssl); /* close_notify, into d->close_notify */
  ERR_clear_error();
  d->capture = 0;
  SSL_free(d->ssl);
  d->ssl = NULL;
  d->rbio = NULL;
  return 1;
}

int sfu__dtls_released(const sfu_dtls_t *d) { return d->ssl == NULL; }

/* ------------------------------------------------------------------------ */
/* Warm-up                                                                  */
/* ------------------------------------------------------------------------ */

/* The two ends of sfu_dtls_warm_up(): what each sent, not yet delivered. */
typedef struct {
  uint8_t data[4][SFU_DTLS_MTU];
  size_t len[4];
  int n;                     /* datagrams queued, at most 4 (a flight is 2) */
  int connected;
  sfu_srtp_keys_t *keys;     /* where `connected` copies its keys, or NULL */
} warm_end_t;

static void warm_send(void *arg, const uint8_t *data, size_t len) {
  warm_end_t *e = arg;
  if (e->n < 4 && len <= SFU_DTLS_MTU) {
    memcpy(e->data[e->n], data, len);
    e->len[e->n++] = len;
  }
}

static void warm_connected(void *arg, const sfu_srtp_keys_t *keys) {
  warm_end_t *e = arg;
  e->connected = 1;
  if (e->keys) *e->keys = *keys;
}

static void warm_failed(void *arg, const char *why) { (void)arg, (void)why; }

int sfu_dtls_warm_up(sfu_srtp_keys_t *keys) {
  sfu_dtls_cert_t *cert = NULL;
  sfu_dtls_t *d[2] = {NULL, NULL};
  warm_end_t end[2];
  uint8_t fp[32];
  int rv;

  memset(end, 0, sizeof(end));
  end[0].keys = keys;
  if ((rv = sfu_dtls_cert_create(&cert)) != 0) return rv;
  rv = sfu_dtls_fingerprint_parse(cert->fingerprint, fp, sizeof(fp));
  for (int i = 0; i < 2 && rv > 0; i++) {
    sfu_dtls_cb_t cb = {&end[i], warm_send, warm_connected, warm_failed};
    if (sfu_dtls_create(&d[i], cert, i ? SFU_DTLS_PASSIVE : SFU_DTLS_ACTIVE, "sha-256",
                        fp, sizeof(fp), &cb) != 0)
      rv = SFU_EPROTO;
  }
  if (rv > 0) rv = sfu_dtls_start(d[0]);
  /* A handshake without loss: 4 flights, each end's delivered in turn. */
  for (int turn = 0; rv == 0 && turn < 8 && !(end[0].connected && end[1].connected);
       turn++) {
    warm_end_t *from = &end[turn & 1];
    int n = from->n;
    from->n = 0;
    for (int k = 0; k < n && rv == 0; k++)
      rv = sfu_dtls_input(d[!(turn & 1)], from->data[k], from->len[k]);
  }
  if (rv == 0 && !(end[0].connected && end[1].connected)) rv = SFU_EPROTO;
  for (int i = 0; i < 2; i++) {
    if (rv == 0 && !sfu_dtls_release(d[i])) rv = SFU_EPROTO;
    sfu_dtls_destroy(d[i]);
  }
  sfu_dtls_cert_destroy(cert);
  if (rv != 0 && keys) OPENSSL_cleanse(keys, sizeof(*keys));
  return rv == 0 ? 0 : SFU_EPROTO;
}

int sfu_dtls_create(sfu_dtls_t **out, sfu_dtls_cert_t *cert,
                    sfu_dtls_role_t role, const char *fp_alg,
                    const uint8_t *fp, size_t fp_len, const sfu_dtls_cb_t *cb) {
  const BIO_METHOD *m = get_out_method();
  const EVP_MD *md = fingerprint_md(fp_alg);
  sfu_dtls_t *d;
  BIO *wbio;

  if (out == NULL) return SFU_EINVAL;
  *out = NULL;
  if (cert == NULL || fp == NULL || cb == NULL || cb->send == NULL ||
      cb->connected == NULL || cb->failed == NULL || md == NULL ||
      (role != SFU_DTLS_ACTIVE && role != SFU_DTLS_PASSIVE) ||
      fp_len != (size_t)EVP_MD_get_size(md))
    return SFU_EINVAL;
  if (m == NULL) return SFU_ENOMEM;

  d = calloc(1, sizeof(*d));
  if (d == NULL) return SFU_ENOMEM;
  d->cb = *cb;
  d->role = role;
  d->fp_md = md;
  memcpy(d->fp, fp, fp_len);
  d->fp_len = fp_len;
  d->state = ST_NEW;

  ERR_clear_error();
  d->ssl = SSL_new(cert->ctx);
  if (d->ssl == NULL) goto nomem;
  SSL_set_app_data(d->ssl, d);
  d->rbio = BIO_new(BIO_s_mem());
  if (d->rbio == NULL) goto nomem;
  BIO_set_mem_eof_return(d->rbio, -1); /* empty means "retry", not EOF */
  wbio = BIO_new(m);
  if (wbio == NULL) {
    BIO_free(d->rbio);
    goto nomem;
  }
  BIO_set_data(wbio, d);
  SSL_set_bio(d->ssl, d->rbio, wbio); /* the SSL owns both from here */
  if (SSL_set_mtu(d->ssl, SFU_DTLS_MTU) <= 0) {
    int rv = setup_error("SSL_set_mtu");
    sfu_dtls_destroy(d);
    return rv;
  }
  DTLS_set_timer_cb(d->ssl, timer_cb);
  if (role == SFU_DTLS_ACTIVE)
    SSL_set_connect_state(d->ssl);
  else
    SSL_set_accept_state(d->ssl);
  *out = d;
  return 0;

nomem:
  ERR_clear_error();
  sfu_dtls_destroy(d);
  return SFU_ENOMEM;
}

int sfu_dtls_start(sfu_dtls_t *d) {
  if (d->state == ST_FAILED || d->state == ST_CLOSED) return SFU_EPROTO;
  if (d->role != SFU_DTLS_ACTIVE || d->state != ST_NEW) return 0;
  d->state = ST_HANDSHAKING;
  return drive_handshake(d);
}

int sfu_dtls_input(sfu_dtls_t *d, const uint8_t *data, size_t len) {
  int rv;
  if (data == NULL || len == 0 || len > MAX_DATAGRAM || data[0] < 20 ||
      data[0] > 63)
    return SFU_EINVAL;
  if (d->state == ST_FAILED || d->state == ST_CLOSED) return SFU_EPROTO;
  if (d->ssl == NULL) return input_released(d, data, len);
  if (BIO_write(d->rbio, data, (int)len) != (int)len) {
    ERR_clear_error();
    (void)BIO_reset(d->rbio);
    return SFU_ENOMEM;
  }
  if (d->state == ST_NEW || d->state == ST_HANDSHAKING) {
    d->state = ST_HANDSHAKING;
    rv = drive_handshake(d);
    /* Records after the final Finished in this datagram (or a close right
     * behind it) are read now, not left for the next datagram. */
    if (rv == 0 && d->state == ST_CONNECTED) rv = drain(d);
  } else {
    rv = drain(d);
  }
  (void)BIO_reset(d->rbio); /* never carry bytes into the next datagram */
  return rv;
}

int64_t sfu_dtls_next_timeout_ms(sfu_dtls_t *d) {
  struct timeval tv;
  if (d->state == ST_FAILED || d->state == ST_CLOSED || d->ssl == NULL) return -1;
  if (DTLSv1_get_timeout(d->ssl, &tv) != 1) return -1;
  /* Round up: firing early would find nothing due and spin. */
  return (int64_t)tv.tv_sec * 1000 + (tv.tv_usec + 999) / 1000;
}

void sfu_dtls_on_timeout(sfu_dtls_t *d) {
  if (d->state == ST_FAILED || d->state == ST_CLOSED || d->state == ST_NEW ||
      d->ssl == NULL)
    return;
  ERR_clear_error();
  if (DTLSv1_handle_timeout(d->ssl) < 0)
    fail_ssl(d, SSL_ERROR_SSL);
  else
    ERR_clear_error();
}

int sfu_dtls_is_connected(const sfu_dtls_t *d) {
  return d != NULL && d->state == ST_CONNECTED;
}

void sfu_dtls_destroy(sfu_dtls_t *d) {
  if (d == NULL) return;
  if (d->ssl != NULL) {
    if (d->state == ST_CONNECTED) {
      ERR_clear_error();
      (void)SSL_shutdown(d->ssl); /* close_notify through cb.send */
    }
    ERR_clear_error();
    SSL_free(d->ssl);
  } else if (d->state == ST_CONNECTED && d->close_notify_len > 0) {
    d->cb.send(d->cb.arg, d->close_notify, d->close_notify_len);
  }
  OPENSSL_cleanse(d->rd_key, sizeof(d->rd_key));
  free(d);
}
