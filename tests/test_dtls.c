/*
 * test_dtls.c -- sfu/media/dtls.c and sfu/media/srtp.c: certificates, in-memory
 * handshakes (sfu against sfu, and sfu against a raw OpenSSL peer), the
 * RFC 5764 key layout, fingerprint pinning, retransmission timers, SRTP
 * round trips and known-answer vectors.
 *
 * No sockets. Each side's `send` callback appends to a queue, and the test
 * moves datagrams from queue to peer, dropping some where a test wants
 * loss. The raw OpenSSL peer is configured here independently of dtls.c
 * (its own certificate, memory BIOs, a chosen SRTP profile list), so what
 * it exports is an independent check on what dtls.c reports.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "sfu/media/dtls.h"
#include "sfu/base/log.h"
#include "sfu/base/sfu.h"
#include "sfu/media/srtp.h"
#include "tests/dgram_queue.h"

/* ------------------------------------------------------------------------ */
/* sfu peers                                                                */
/* ------------------------------------------------------------------------ */

/* One sfu_dtls_t plus what its callbacks saw. */
typedef struct {
  sfu_dtls_t *d;
  queue_t out;         /* datagrams it sent, not yet delivered */
  int drop;            /* drop this many of its next datagrams */
  int dropped;         /* datagrams dropped so far */
  int sent;            /* datagrams sent (including dropped) */
  size_t max_dgram;    /* largest datagram sent */
  int connected, failed;
  sfu_srtp_keys_t keys; /* copy of what `connected` got */
  char why[128];       /* copy of what `failed` got */
} peer_t;

static void on_send(void *arg, const uint8_t *data, size_t len) {
  peer_t *p = arg;
  p->sent++;
  if (len > p->max_dgram) p->max_dgram = len;
  if (p->drop > 0) {
    p->drop--;
    p->dropped++;
    return;
  }
  q_push(&p->out, data, len);
}

static void on_connected(void *arg, const sfu_srtp_keys_t *keys) {
  peer_t *p = arg;
  p->connected++;
  p->keys = *keys;
}

static void on_failed(void *arg, const char *why) {
  peer_t *p = arg;
  p->failed++;
  snprintf(p->why, sizeof(p->why), "%s", why);
}

static sfu_dtls_cb_t callbacks(peer_t *p) {
  sfu_dtls_cb_t cb = {p, on_send, on_connected, on_failed};
  return cb;
}

/* Fingerprint bytes of `cert` as its SDP would carry them (sha-256). */
static size_t sdp_fingerprint(const sfu_dtls_cert_t *cert, uint8_t *fp) {
  int n = sfu_dtls_fingerprint_parse(sfu_dtls_cert_fingerprint(cert), fp, 64);
  assert_int_equal(n, 32);
  return (size_t)n;
}

/* Clears peer p and creates its session on `cert`, pinned to the peer
 * fingerprint `fp` of hash `fp_alg`. */
static void peer_create(peer_t *p, sfu_dtls_cert_t *cert, sfu_dtls_role_t role,
                        const char *fp_alg, const uint8_t *fp, size_t fp_len) {
  sfu_dtls_cb_t cb = callbacks(p);
  memset(p, 0, sizeof(*p));
  assert_int_equal(sfu_dtls_create(&p->d, cert, role, fp_alg, fp, fp_len, &cb), 0);
}

/* Creates peers a (role ra) and b, each pinned to the other's cert. */
static void make_pair(peer_t *a, sfu_dtls_cert_t *ca, sfu_dtls_role_t ra,
                      peer_t *b, sfu_dtls_cert_t *cb_) {
  uint8_t fa[64], fb[64];
  size_t na = sdp_fingerprint(ca, fa), nb = sdp_fingerprint(cb_, fb);
  peer_create(a, ca, ra, "sha-256", fb, nb);
  peer_create(b, cb_,
              ra == SFU_DTLS_ACTIVE ? SFU_DTLS_PASSIVE : SFU_DTLS_ACTIVE,
              "sha-256", fa, na);
}

static void destroy_pair(peer_t *a, peer_t *b) {
  sfu_dtls_destroy(a->d);
  sfu_dtls_destroy(b->d);
}

/* Delivers queued datagrams both ways until both queues are empty. */
static void pump(peer_t *a, peer_t *b) {
  dgram_t g;
  for (int guard = 0; guard < 1000; guard++) {
    int moved = 0;
    if (q_pop(&a->out, &g)) {
      (void)sfu_dtls_input(b->d, g.data, g.len);
      moved = 1;
    }
    if (q_pop(&b->out, &g)) {
      (void)sfu_dtls_input(a->d, g.data, g.len);
      moved = 1;
    }
    if (!moved) return;
  }
  fail_msg("pump did not settle");
}

/* Starts both sides (the passive one does nothing) and delivers until
 * quiet: both connected once, neither failed. */
static void handshake(peer_t *a, peer_t *b) {
  assert_int_equal(sfu_dtls_start(a->d), 0);
  assert_int_equal(sfu_dtls_start(b->d), 0);
  pump(a, b);
  assert_int_equal(a->connected, 1);
  assert_int_equal(b->connected, 1);
  assert_int_equal(a->failed + b->failed, 0);
}

/* make_pair(), then handshake(). */
static void connect_pair(peer_t *a, sfu_dtls_cert_t *ca, sfu_dtls_role_t ra,
                         peer_t *b, sfu_dtls_cert_t *cb_) {
  make_pair(a, ca, ra, b, cb_);
  handshake(a, b);
}

/* Client a and server b, by hand: ClientHello -> server flight -> client
 * flight. The server is connected, the client not yet; the server's final
 * flight (ChangeCipherSpec + Finished) is lost. */
static void lose_server_final_flight(peer_t *a, peer_t *b) {
  dgram_t g;
  sfu_dtls_start(a->d);
  while (q_pop(&a->out, &g)) sfu_dtls_input(b->d, g.data, g.len);
  while (q_pop(&b->out, &g)) sfu_dtls_input(a->d, g.data, g.len);
  while (q_pop(&a->out, &g)) sfu_dtls_input(b->d, g.data, g.len);
  assert_int_equal(b->connected, 1);
  assert_int_equal(a->connected, 0);
  assert_true(b->out.count > 0);
  b->out.count = 0;
}

static int64_t min_timeout(peer_t *a, peer_t *b) {
  int64_t ta = sfu_dtls_next_timeout_ms(a->d);
  int64_t tb = sfu_dtls_next_timeout_ms(b->d);
  if (ta < 0) return tb;
  if (tb < 0) return ta;
  return ta < tb ? ta : tb;
}

/* Pumps and drives timers (sleeping for real, as OpenSSL keeps wall-clock
 * deadlines) until both sides end or `max_ms` passes. Returns elapsed ms. */
static int64_t run(peer_t *a, peer_t *b, int64_t max_ms) {
  uint64_t t0 = sfu_now_ms();
  for (;;) {
    int64_t t;
    pump(a, b);
    if ((a->connected && b->connected) || a->failed || b->failed) break;
    t = min_timeout(a, b);
    if (t < 0) break; /* nothing pending: stuck */
    if ((int64_t)(sfu_now_ms() - t0) + t > max_ms) break;
    usleep((useconds_t)(t * 1000 + 1000));
    sfu_dtls_on_timeout(a->d);
    sfu_dtls_on_timeout(b->d);
  }
  return (int64_t)(sfu_now_ms() - t0);
}

/* ------------------------------------------------------------------------ */
/* A raw OpenSSL peer, configured independently of dtls.c                   */
/* ------------------------------------------------------------------------ */

typedef struct {
  EVP_PKEY *key;
  X509 *cert;
  SSL_CTX *ctx;
  SSL *ssl;
  BIO *rbio, *wbio; /* memory BIOs */
  int client;
  uint8_t fp[32]; /* sha-256 of its certificate */
} raw_t;

static int accept_any(int ok, X509_STORE_CTX *store) { return 1; }

static void raw_init(raw_t *r, int client, const char *profiles) {
  X509_NAME *name;
  unsigned int n = 0;
  memset(r, 0, sizeof(*r));
  r->client = client;
  r->key = EVP_EC_gen("P-256");
  assert_non_null(r->key);
  r->cert = X509_new();
  assert_non_null(r->cert);
  ASN1_INTEGER_set(X509_get_serialNumber(r->cert), 7);
  X509_gmtime_adj(X509_getm_notBefore(r->cert), 0);
  X509_gmtime_adj(X509_getm_notAfter(r->cert), 3600);
  name = X509_get_subject_name(r->cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             (const unsigned char *)"raw", -1, -1, 0);
  X509_set_issuer_name(r->cert, name);
  X509_set_pubkey(r->cert, r->key);
  assert_true(X509_sign(r->cert, r->key, EVP_sha256()) > 0);
  assert_true(X509_digest(r->cert, EVP_sha256(), r->fp, &n) && n == 32);

  r->ctx = SSL_CTX_new(DTLS_method());
  assert_non_null(r->ctx);
  assert_int_equal(SSL_CTX_use_certificate(r->ctx, r->cert), 1);
  assert_int_equal(SSL_CTX_use_PrivateKey(r->ctx, r->key), 1);
  assert_int_equal(SSL_CTX_set_tlsext_use_srtp(r->ctx, profiles), 0);
  SSL_CTX_set_verify(r->ctx, SSL_VERIFY_PEER, accept_any);
  SSL_CTX_set_options(r->ctx, SSL_OP_NO_QUERY_MTU);
  r->ssl = SSL_new(r->ctx);
  assert_non_null(r->ssl);
  r->rbio = BIO_new(BIO_s_mem());
  r->wbio = BIO_new(BIO_s_mem());
  SSL_set_bio(r->ssl, r->rbio, r->wbio);
  SSL_set_mtu(r->ssl, 1200);
  if (client)
    SSL_set_connect_state(r->ssl);
  else
    SSL_set_accept_state(r->ssl);
}

static void raw_free(raw_t *r) {
  SSL_free(r->ssl);
  SSL_CTX_free(r->ctx);
  X509_free(r->cert);
  EVP_PKEY_free(r->key);
}

static void raw_step(raw_t *r) {
  uint8_t buf[2048];
  ERR_clear_error();
  if (!SSL_is_init_finished(r->ssl))
    (void)SSL_do_handshake(r->ssl);
  else
    while (SSL_read(r->ssl, buf, sizeof(buf)) > 0) {
    }
  ERR_clear_error();
}

/* Moves datagrams between sfu peer `p` and raw peer `r` until quiet. */
static void pump_raw(peer_t *p, raw_t *r) {
  uint8_t buf[16384];
  dgram_t g;
  for (int guard = 0; guard < 200; guard++) {
    int moved = 0, n;
    raw_step(r);
    while ((n = BIO_read(r->wbio, buf, sizeof(buf))) > 0) {
      (void)sfu_dtls_input(p->d, buf, (size_t)n);
      moved = 1;
    }
    while (q_pop(&p->out, &g)) {
      BIO_write(r->rbio, g.data, (int)g.len);
      raw_step(r);
      moved = 1;
    }
    if (!moved) return;
  }
  fail_msg("pump_raw did not settle");
}

/* Handshake sfu(role) <-> raw peer offering `profiles`; p is cleared first. */
static void raw_handshake(peer_t *p, raw_t *r, sfu_dtls_cert_t *cert,
                          sfu_dtls_role_t role, const char *profiles) {
  raw_init(r, role == SFU_DTLS_PASSIVE, profiles);
  peer_create(p, cert, role, "sha-256", r->fp, 32);
  assert_int_equal(sfu_dtls_start(p->d), 0);
  pump_raw(p, r);
}

/* ------------------------------------------------------------------------ */
/* Shared fixtures                                                          */
/* ------------------------------------------------------------------------ */

static sfu_dtls_cert_t *cert_a, *cert_b;

static int setup_certs(void **state) {
  sfu_log_set_level(SFU_LOG_ERROR); /* expected failures stay quiet */
  if (sfu_dtls_cert_create(&cert_a) || sfu_dtls_cert_create(&cert_b))
    return -1;
  return sfu_srtp_library_init();
}

static int teardown_certs(void **state) {
  sfu_dtls_cert_destroy(cert_a);
  sfu_dtls_cert_destroy(cert_b);
  return 0;
}

static void format_hex(const uint8_t *md, size_t n, char *out) {
  for (size_t i = 0; i < n; i++)
    sprintf(out + 3 * i, "%02X%s", md[i], i + 1 < n ? ":" : "");
}

/* ------------------------------------------------------------------------ */
/* (1) Certificate                                                          */
/* ------------------------------------------------------------------------ */

static void cert_fingerprint_matches_der(void **state) {
  const char *fp = sfu_dtls_cert_fingerprint(cert_a);
  uint8_t der[2048], md[32];
  char expect[SFU_DTLS_FINGERPRINT_LEN];
  unsigned int mdlen = 0;
  int n;

  assert_int_equal(strlen(fp), 95);
  for (int i = 0; i < 95; i++) {
    if (i % 3 == 2)
      assert_int_equal(fp[i], ':');
    else
      assert_non_null(strchr("0123456789ABCDEF", fp[i]));
  }

  n = sfu_dtls_cert_der(cert_a, NULL, 0);
  assert_true(n > 100 && n < (int)sizeof(der));
  assert_int_equal(sfu_dtls_cert_der(cert_a, der, sizeof(der)), n);
  assert_true(EVP_Digest(der, (size_t)n, md, &mdlen, EVP_sha256(), NULL));
  assert_int_equal(mdlen, 32);
  format_hex(md, 32, expect);
  assert_string_equal(fp, expect);

  /* Two certificates: different keys, serials and fingerprints. */
  assert_string_not_equal(fp, sfu_dtls_cert_fingerprint(cert_b));
}

static void cert_fields(void **state) {
  uint8_t der[2048];
  const unsigned char *p = der;
  int n = sfu_dtls_cert_der(cert_a, der, sizeof(der)), days = 0, secs = 0;
  X509 *x;
  EVP_PKEY *k;
  char cn[16] = "";
  char group[32] = "";
  BIGNUM *serial;

  assert_true(n > 0);
  x = d2i_X509(NULL, &p, n);
  assert_non_null(x);
  assert_int_equal(X509_get_version(x), X509_VERSION_3);
  X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn,
                            sizeof(cn));
  assert_string_equal(cn, "sfu");
  assert_int_equal(X509_NAME_cmp(X509_get_subject_name(x),
                                 X509_get_issuer_name(x)),
                   0);
  k = X509_get0_pubkey(x);
  assert_int_equal(EVP_PKEY_get_base_id(k), EVP_PKEY_EC);
  assert_true(EVP_PKEY_get_group_name(k, group, sizeof(group), NULL));
  assert_string_equal(group, "prime256v1");
  assert_int_equal(X509_get_signature_nid(x), NID_ecdsa_with_SHA256);
  /* Self-signed: verifies with its own key. */
  assert_int_equal(X509_verify(x, k), 1);
  /* Valid now, until about 30 days from now. */
  assert_true(X509_cmp_current_time(X509_get0_notBefore(x)) < 0);
  assert_true(ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(x)));
  assert_true(days == 29 || days == 30);
  /* Serial: positive, non-zero, 63 bits. */
  serial = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
  assert_non_null(serial);
  assert_false(BN_is_negative(serial));
  assert_int_equal(BN_num_bits(serial), 63);
  BN_free(serial);
  X509_free(x);
}

static void fingerprint_parse(void **state) {
  uint8_t b[64];
  assert_int_equal(sfu_dtls_fingerprint_parse("AB:cd:01", b, sizeof(b)), 3);
  assert_int_equal(b[0], 0xab);
  assert_int_equal(b[1], 0xcd);
  assert_int_equal(b[2], 0x01);
  assert_int_equal(sfu_dtls_fingerprint_parse("", b, 64), SFU_EINVAL);
  assert_int_equal(sfu_dtls_fingerprint_parse("AB:", b, 64), SFU_EINVAL);
  assert_int_equal(sfu_dtls_fingerprint_parse("AB::CD", b, 64), SFU_EINVAL);
  assert_int_equal(sfu_dtls_fingerprint_parse("A:BC", b, 64), SFU_EINVAL);
  assert_int_equal(sfu_dtls_fingerprint_parse("ABC", b, 64), SFU_EINVAL);
  assert_int_equal(sfu_dtls_fingerprint_parse("AG", b, 64), SFU_EINVAL);
  assert_int_equal(sfu_dtls_fingerprint_parse("AB CD", b, 64), SFU_EINVAL);
  assert_int_equal(sfu_dtls_fingerprint_parse("AB:CD", b, 1), SFU_E2BIG);
  assert_int_equal(sfu_dtls_fingerprint_parse(
                       sfu_dtls_cert_fingerprint(cert_a), b, sizeof(b)),
                   32);
}

static void create_rejects_bad_arguments(void **state) {
  peer_t p;
  sfu_dtls_cb_t cb = callbacks(&p), nocb = cb;
  uint8_t fp[64] = {0};
  sfu_dtls_t *d = (sfu_dtls_t *)&p;

  memset(&p, 0, sizeof(p));
  nocb.failed = NULL;
  assert_int_equal(sfu_dtls_create(&d, cert_a, SFU_DTLS_ACTIVE, "md5", fp, 16,
                                   &cb),
                   SFU_EINVAL);
  assert_null(d);
  assert_int_equal(sfu_dtls_create(&d, cert_a, SFU_DTLS_ACTIVE, "sha-256", fp,
                                   20, &cb),
                   SFU_EINVAL);
  assert_int_equal(sfu_dtls_create(&d, cert_a, SFU_DTLS_ACTIVE, "sha-256", fp,
                                   32, &nocb),
                   SFU_EINVAL);
  assert_int_equal(sfu_dtls_create(&d, cert_a, (sfu_dtls_role_t)7, "sha-256",
                                   fp, 32, &cb),
                   SFU_EINVAL);
  /* Hash names are case-insensitive; each has its own length. */
  assert_int_equal(sfu_dtls_create(&d, cert_a, SFU_DTLS_ACTIVE, "SHA-1", fp,
                                   20, &cb),
                   0);
  sfu_dtls_destroy(d);
  assert_int_equal(sfu_dtls_create(&d, cert_a, SFU_DTLS_PASSIVE, "sha-512", fp,
                                   64, &cb),
                   0);
  /* Passive start sends nothing; non-DTLS bytes are refused. */
  assert_int_equal(sfu_dtls_start(d), 0);
  assert_int_equal(p.sent, 0);
  assert_int_equal(sfu_dtls_next_timeout_ms(d), -1);
  assert_int_equal(sfu_dtls_input(d, (const uint8_t *)"\x80\x00", 2),
                   SFU_EINVAL);
  assert_int_equal(sfu_dtls_input(d, (const uint8_t *)"\x13", 1), SFU_EINVAL);
  assert_int_equal(sfu_dtls_input(d, (const uint8_t *)"\x40", 1), SFU_EINVAL);
  assert_int_equal(sfu_dtls_input(d, fp, 0), SFU_EINVAL);
  sfu_dtls_destroy(d);
  sfu_dtls_destroy(NULL);
}

/* ------------------------------------------------------------------------ */
/* (2) sfu <-> sfu handshake                                                */
/* ------------------------------------------------------------------------ */

static void handshake_sfu_pair_gcm(void **state) {
  peer_t a, b;
  make_pair(&a, cert_a, SFU_DTLS_ACTIVE, &b, cert_b);

  assert_int_equal(sfu_dtls_start(b.d), 0); /* passive: no-op */
  assert_int_equal(b.sent, 0);
  assert_int_equal(sfu_dtls_start(a.d), 0);
  assert_int_equal(a.sent, 1); /* ClientHello */
  {
    int64_t t = sfu_dtls_next_timeout_ms(a.d); /* our 400 ms, not 1 s */
    assert_true(t > 0 && t <= 400);
  }
  assert_int_equal(sfu_dtls_start(a.d), 0); /* again: nothing new */
  assert_int_equal(a.sent, 1);
  pump(&a, &b);

  assert_int_equal(a.connected, 1);
  assert_int_equal(b.connected, 1);
  assert_int_equal(a.failed + b.failed, 0);
  assert_true(sfu_dtls_is_connected(a.d) && sfu_dtls_is_connected(b.d));
  assert_int_equal(a.keys.profile, SFU_SRTP_AEAD_AES_128_GCM);
  assert_int_equal(b.keys.profile, SFU_SRTP_AEAD_AES_128_GCM);
  assert_int_equal(a.keys.key_len, 16);
  assert_int_equal(a.keys.salt_len, 12);
  assert_memory_equal(a.keys.local_key, b.keys.remote_key, 16);
  assert_memory_equal(a.keys.remote_key, b.keys.local_key, 16);
  assert_memory_equal(a.keys.local_salt, b.keys.remote_salt, 12);
  assert_memory_equal(a.keys.remote_salt, b.keys.local_salt, 12);
  assert_memory_not_equal(a.keys.local_key, a.keys.remote_key, 16);
  /* Every datagram fit the MTU; flights were packed, not one per record. */
  assert_true(a.max_dgram <= SFU_DTLS_MTU && b.max_dgram <= SFU_DTLS_MTU);
  assert_true(a.sent <= 3 && b.sent <= 3);
  /* The client's timer stops once the server's Finished arrives. */
  assert_int_equal(sfu_dtls_next_timeout_ms(a.d), -1);

  /* Application data after the handshake is ignored. */
  {
    dgram_t g = {{23, 0xfe, 0xfd, 0, 1}, 40};
    assert_int_equal(sfu_dtls_input(b.d, g.data, g.len), 0);
    assert_true(sfu_dtls_is_connected(b.d));
  }

  /* Destroying a connected side sends close_notify; the peer reports it. */
  sfu_dtls_destroy(a.d);
  assert_int_equal(a.out.count, 1);
  pump(&a, &b);
  assert_int_equal(b.failed, 1);
  assert_non_null(strstr(b.why, "close_notify"));
  assert_false(sfu_dtls_is_connected(b.d));
  assert_int_equal(sfu_dtls_next_timeout_ms(b.d), -1);
  /* Final: input refused, no more callbacks, destroy sends nothing. */
  {
    dgram_t g = {{22, 0xfe, 0xfd}, 13};
    assert_int_equal(sfu_dtls_input(b.d, g.data, g.len), SFU_EPROTO);
  }
  sfu_dtls_destroy(b.d);
  assert_int_equal(b.out.count, 0);
  assert_int_equal(b.failed, 1);
}

static void handshake_sfu_pair_reversed_roles(void **state) {
  peer_t a, b;
  connect_pair(&a, cert_a, SFU_DTLS_PASSIVE, &b, cert_b);
  assert_memory_equal(a.keys.local_key, b.keys.remote_key, 16);
  assert_memory_equal(b.keys.local_salt, a.keys.remote_salt, 12);
  destroy_pair(&a, &b);
}

/* The peer's SDP may name sha-1, sha-384 or sha-512. */
static void handshake_other_fingerprint_hashes(void **state) {
  static const struct {
    const char *name;
    const char *ossl;
  } algs[] = {{"sha-1", "SHA1"}, {"sha-384", "SHA384"}, {"SHA-512", "SHA512"}};
  uint8_t der_a[2048], der_b[2048];
  int na = sfu_dtls_cert_der(cert_a, der_a, sizeof(der_a));
  int nb = sfu_dtls_cert_der(cert_b, der_b, sizeof(der_b));

  for (size_t i = 0; i < SFU_ARRAY_SIZE(algs); i++) {
    peer_t a, b;
    uint8_t fa[64], fb[64];
    unsigned int la = 0, lb = 0;
    const EVP_MD *md = EVP_get_digestbyname(algs[i].ossl);

    assert_non_null(md);
    assert_true(EVP_Digest(der_a, (size_t)na, fa, &la, md, NULL));
    assert_true(EVP_Digest(der_b, (size_t)nb, fb, &lb, md, NULL));
    peer_create(&a, cert_a, SFU_DTLS_ACTIVE, algs[i].name, fb, lb);
    peer_create(&b, cert_b, SFU_DTLS_PASSIVE, algs[i].name, fa, la);
    handshake(&a, &b);
    destroy_pair(&a, &b);
  }
}

/* ------------------------------------------------------------------------ */
/* (3) + (5) raw OpenSSL peer: profile choice and RFC 5764 key layout       */
/* ------------------------------------------------------------------------ */

/*
 * Exports keying material from the raw peer and checks that the sfu side's
 * keys follow client_key | server_key | client_salt | server_salt.
 */
static void check_layout(const peer_t *p, raw_t *r, sfu_dtls_role_t role,
                         size_t salt_len) {
  uint8_t km[60];
  size_t total = 2 * (16 + salt_len);
  const uint8_t *ck = km, *sk = km + 16, *cs = km + 32, *ss = km + 32 + salt_len;
  uint8_t zero[14] = {0};

  assert_int_equal(SSL_export_keying_material(r->ssl, km, total,
                                              "EXTRACTOR-dtls_srtp", 19, NULL,
                                              0, 0),
                   1);
  assert_int_equal(p->keys.key_len, 16);
  assert_int_equal(p->keys.salt_len, salt_len);
  if (role == SFU_DTLS_ACTIVE) { /* sfu is the client */
    assert_memory_equal(p->keys.local_key, ck, 16);
    assert_memory_equal(p->keys.remote_key, sk, 16);
    assert_memory_equal(p->keys.local_salt, cs, salt_len);
    assert_memory_equal(p->keys.remote_salt, ss, salt_len);
  } else {
    assert_memory_equal(p->keys.local_key, sk, 16);
    assert_memory_equal(p->keys.remote_key, ck, 16);
    assert_memory_equal(p->keys.local_salt, ss, salt_len);
    assert_memory_equal(p->keys.remote_salt, cs, salt_len);
  }
  /* Bytes past the lengths are zero. */
  assert_memory_equal(p->keys.local_key + 16, zero, 14);
  if (salt_len < 14)
    assert_memory_equal(p->keys.local_salt + salt_len, zero, 14 - salt_len);
}

static void raw_peer_profiles_and_layout(void **state) {
  static const struct {
    sfu_dtls_role_t role;
    const char *offer;
    sfu_srtp_profile_t expect;
  } cases[] = {
      /* aiortc offers only AES_CM_128_HMAC_SHA1_80. */
      {SFU_DTLS_PASSIVE, "SRTP_AES128_CM_SHA1_80", SFU_SRTP_AES128_CM_SHA1_80},
      {SFU_DTLS_ACTIVE, "SRTP_AES128_CM_SHA1_80", SFU_SRTP_AES128_CM_SHA1_80},
      /* A peer preferring CM still gets GCM from us as server
       * (server preference)... */
      {SFU_DTLS_PASSIVE, "SRTP_AES128_CM_SHA1_80:SRTP_AEAD_AES_128_GCM",
       SFU_SRTP_AEAD_AES_128_GCM},
      {SFU_DTLS_PASSIVE, "SRTP_AEAD_AES_128_GCM:SRTP_AES128_CM_SHA1_80",
       SFU_SRTP_AEAD_AES_128_GCM},
      /* ...and as client we get what the raw server picks from our list. */
      {SFU_DTLS_ACTIVE, "SRTP_AEAD_AES_128_GCM:SRTP_AES128_CM_SHA1_80",
       SFU_SRTP_AEAD_AES_128_GCM},
  };
  for (size_t i = 0; i < SFU_ARRAY_SIZE(cases); i++) {
    peer_t p;
    raw_t r;
    uint8_t md[32];
    unsigned int n = 0;
    const SRTP_PROTECTION_PROFILE *rp;

    raw_handshake(&p, &r, cert_a, cases[i].role, cases[i].offer);
    assert_int_equal(p.connected, 1);
    assert_int_equal(p.failed, 0);
    assert_true(SSL_is_init_finished(r.ssl));
    assert_int_equal(p.keys.profile, cases[i].expect);
    rp = SSL_get_selected_srtp_profile(r.ssl);
    assert_non_null(rp);
    assert_int_equal(rp->id, (unsigned long)cases[i].expect);
    check_layout(&p, &r, cases[i].role,
                 cases[i].expect == SFU_SRTP_AEAD_AES_128_GCM ? 12 : 14);
    /* What the raw peer saw is the certificate we advertise. */
    assert_true(X509_digest(SSL_get0_peer_certificate(r.ssl), EVP_sha256(),
                            md, &n));
    {
      char hex[SFU_DTLS_FINGERPRINT_LEN];
      format_hex(md, 32, hex);
      assert_string_equal(hex, sfu_dtls_cert_fingerprint(cert_a));
    }
    sfu_dtls_destroy(p.d);
    raw_free(&r);
  }
}

/* A peer with no SRTP profile in common fails the handshake. */
static void raw_peer_without_srtp_fails(void **state) {
  peer_t p;
  raw_t r;
  raw_handshake(&p, &r, cert_a, SFU_DTLS_PASSIVE, "SRTP_AES128_CM_SHA1_32");
  assert_int_equal(p.connected, 0);
  assert_int_equal(p.failed, 1);
  sfu_dtls_destroy(p.d);
  raw_free(&r);
}

/* ------------------------------------------------------------------------ */
/* (4) Fingerprint mismatch                                                 */
/* ------------------------------------------------------------------------ */

static void wrong_fingerprint_fails(void **state) {
  /* Round 0: the client (A) holds a wrong fingerprint for B.
   * Round 1: the server (B) holds a wrong fingerprint for A. */
  for (int round = 0; round < 2; round++) {
    peer_t a, b;
    uint8_t fa[64], fb[64];
    peer_t *verifier = round == 0 ? &a : &b, *other = round == 0 ? &b : &a;

    sdp_fingerprint(cert_a, fa);
    sdp_fingerprint(cert_b, fb);
    if (round == 0)
      fb[31] ^= 1;
    else
      fa[0] ^= 0x80;
    peer_create(&a, cert_a, SFU_DTLS_ACTIVE, "sha-256", fb, 32);
    peer_create(&b, cert_b, SFU_DTLS_PASSIVE, "sha-256", fa, 32);
    sfu_dtls_start(a.d);
    pump(&a, &b);

    assert_int_equal(a.connected + b.connected, 0);
    assert_int_equal(verifier->failed, 1);
    assert_non_null(strstr(verifier->why, "fingerprint"));
    /* The other side got the alert and failed as well. */
    assert_int_equal(other->failed, 1);
    assert_non_null(strstr(other->why, "alert"));
    assert_int_equal(sfu_dtls_next_timeout_ms(a.d), -1);
    assert_int_equal(sfu_dtls_next_timeout_ms(b.d), -1);
    destroy_pair(&a, &b);
    assert_int_equal(a.out.count + b.out.count, 0); /* no close_notify */
  }
}

/* The pinned certificate really is the SDP one: a raw peer with another
 * certificate is refused even though it completes its side correctly. */
static void raw_peer_with_other_cert_refused(void **state) {
  peer_t p;
  raw_t r;
  uint8_t fp[64];

  raw_init(&r, 1, "SRTP_AES128_CM_SHA1_80");
  sdp_fingerprint(cert_b, fp); /* expects cert_b, gets the raw cert */
  peer_create(&p, cert_a, SFU_DTLS_PASSIVE, "sha-256", fp, 32);
  pump_raw(&p, &r);
  assert_int_equal(p.connected, 0);
  assert_int_equal(p.failed, 1);
  assert_false(SSL_is_init_finished(r.ssl));
  sfu_dtls_destroy(p.d);
  raw_free(&r);
}

/* ------------------------------------------------------------------------ */
/* (6) Loss and retransmission                                              */
/* ------------------------------------------------------------------------ */

static void lost_first_flights_recovered(void **state) {
  peer_t a, b;
  int64_t ms;
  make_pair(&a, cert_a, SFU_DTLS_ACTIVE, &b, cert_b);
  a.drop = 1; /* the ClientHello */
  sfu_dtls_start(a.d);
  assert_int_equal(a.dropped, 1);
  /* Early timer calls change nothing. */
  sfu_dtls_on_timeout(a.d);
  assert_int_equal(a.sent, 1);
  pump(&a, &b);
  assert_int_equal(b.sent, 0);
  /* The server's whole first flight is lost too, once. */
  b.drop = 8;
  {
    uint64_t t0 = sfu_now_ms();
    while (b.sent == 0 && sfu_now_ms() - t0 < 3000) {
      int64_t t = sfu_dtls_next_timeout_ms(a.d);
      assert_true(t >= 0);
      usleep((useconds_t)(t * 1000 + 1000));
      sfu_dtls_on_timeout(a.d);
      pump(&a, &b);
    }
  }
  assert_int_equal(a.sent, 2); /* one ClientHello retransmission */
  b.drop = 0;
  ms = run(&a, &b, 10000);
  assert_int_equal(a.connected + b.connected, 2);
  assert_memory_equal(a.keys.local_key, b.keys.remote_key, 16);
  assert_true(b.dropped >= 1);
  /* 400 ms for the ClientHello, then 400-800 ms for the server's flight. */
  assert_true(ms < 3000);
  destroy_pair(&a, &b);
}

/* The server's final flight (ChangeCipherSpec + Finished) is lost: the
 * server has already connected; the client retransmits its last flight and
 * the already-connected server answers it again. */
static void lost_final_flight_recovered(void **state) {
  peer_t a, b;
  make_pair(&a, cert_a, SFU_DTLS_ACTIVE, &b, cert_b);
  lose_server_final_flight(&a, &b);
  run(&a, &b, 5000);
  assert_int_equal(a.connected, 1);
  assert_int_equal(b.connected, 1); /* once */
  assert_memory_equal(a.keys.local_key, b.keys.remote_key, 16);
  destroy_pair(&a, &b);
}

/* Junk that looks like DTLS (right first byte) is dropped by DTLS itself
 * and does not derail the handshake. (A well-formed but bogus epoch-0
 * handshake record is fatal, as in every DTLS stack: epoch 0 is not
 * authenticated. Only the ICE-verified peer address reaches us.) */
static void junk_records_ignored(void **state) {
  peer_t a, b;
  uint8_t junk[200];
  make_pair(&a, cert_a, SFU_DTLS_ACTIVE, &b, cert_b);
  assert_int_equal(RAND_bytes(junk, sizeof(junk)), 1);
  junk[0] = 23; /* application data record, wrong epoch */
  assert_int_equal(sfu_dtls_input(b.d, junk, sizeof(junk)), 0);
  junk[1] = 0xfe;
  junk[2] = 0xfd;
  junk[3] = 0x00;
  junk[4] = 0x07; /* epoch 7: not one we are in */
  assert_int_equal(sfu_dtls_input(b.d, junk, sizeof(junk)), 0);
  junk[0] = 22;
  junk[11] = 0xff; /* length beyond the datagram */
  junk[12] = 0xff;
  assert_int_equal(sfu_dtls_input(b.d, junk, 40), 0);
  assert_int_equal(b.failed, 0);
  handshake(&a, &b);
  destroy_pair(&a, &b);
}

/* ------------------------------------------------------------------------ */
/* (6b) Release: the session after OpenSSL's is freed                       */
/* ------------------------------------------------------------------------ */

/* Released on both sides, in both role assignments: input other than an
 * alert is ignored, a tampered close_notify too, and the real one, sealed
 * at the release and sent by destroy, closes the other side. */
static void released_sessions_close_both_ways(void **state) {
  for (int round = 0; round < 2; round++) {
    peer_t a, b;
    dgram_t g;
    peer_t *closer, *other;
    make_pair(&a, cert_a, SFU_DTLS_ACTIVE, &b, cert_b);
    /* Before the handshake there is nothing to release. */
    assert_int_equal(sfu_dtls_release(a.d), 0);
    handshake(&a, &b);
    assert_int_equal(sfu_dtls_release(a.d), 1);
    assert_int_equal(sfu_dtls_release(b.d), 1);
    assert_int_equal(sfu_dtls_release(b.d), 1); /* again: nothing to do */
    assert_int_equal(a.out.count + b.out.count, 0); /* nothing sent */
    assert_int_equal(sfu_dtls_next_timeout_ms(a.d), -1);
    sfu_dtls_on_timeout(a.d);
    assert_true(sfu_dtls_is_connected(a.d) && sfu_dtls_is_connected(b.d));

    closer = round == 0 ? &a : &b; /* the client closes, then the server */
    other = round == 0 ? &b : &a;
    /* Application data, a handshake record, junk: ignored, nothing sent. */
    {
      dgram_t junk = {{23, 0xfe, 0xfd, 0, 1}, 40};
      assert_int_equal(sfu_dtls_input(other->d, junk.data, junk.len), 0);
      junk.data[0] = 22;
      assert_int_equal(sfu_dtls_input(other->d, junk.data, junk.len), 0);
      junk.data[0] = 21; /* an alert that does not open */
      junk.data[12] = 26;
      assert_int_equal(sfu_dtls_input(other->d, junk.data, 39), 0);
      junk.data[11] = 0xff; /* longer than the datagram */
      assert_int_equal(sfu_dtls_input(other->d, junk.data, 39), 0);
      assert_int_equal(other->failed + other->out.count, 0);
    }
    sfu_dtls_destroy(closer->d);
    assert_int_equal(closer->out.count, 1);
    assert_true(q_pop(&closer->out, &g));
    /* One flipped bit in the tag: not authentic, ignored. */
    g.data[g.len - 1] ^= 1;
    assert_int_equal(sfu_dtls_input(other->d, g.data, g.len), 0);
    assert_int_equal(other->failed, 0);
    g.data[g.len - 1] ^= 1;
    assert_int_equal(sfu_dtls_input(other->d, g.data, g.len), 0);
    assert_int_equal(other->failed, 1);
    assert_string_equal(other->why, "closed by peer (close_notify)");
    assert_false(sfu_dtls_is_connected(other->d));
    assert_int_equal(sfu_dtls_input(other->d, g.data, g.len), SFU_EPROTO);
    sfu_dtls_destroy(other->d);
    assert_int_equal(other->out.count, 0); /* closed: nothing to say */
  }
}

/* Against a raw OpenSSL peer, each AEAD suite and both roles: our sealed
 * close_notify reaches it, and its close_notify reaches us (the read key
 * derived here, the record sealed by OpenSSL). A CBC suite keeps the
 * session whole, and its close_notify still works. */
static void released_session_against_raw_peer(void **state) {
  static const struct {
    const char *suite;
    int releases;
  } suites[] = {
      {"ECDHE-ECDSA-AES128-GCM-SHA256", 1},
      {"ECDHE-ECDSA-AES256-GCM-SHA384", 1},
      {"ECDHE-ECDSA-CHACHA20-POLY1305", 1},
      {"ECDHE-ECDSA-AES128-SHA", 0},
  };
  for (size_t i = 0; i < SFU_ARRAY_SIZE(suites); i++) {
    for (int round = 0; round < 4; round++) {
      sfu_dtls_role_t role = round & 1 ? SFU_DTLS_ACTIVE : SFU_DTLS_PASSIVE;
      int we_close = round >= 2;
      peer_t p;
      raw_t r;
      uint8_t buf[2048];
      int n;

      raw_init(&r, role == SFU_DTLS_PASSIVE, "SRTP_AEAD_AES_128_GCM");
      assert_int_equal(SSL_set_cipher_list(r.ssl, suites[i].suite), 1);
      peer_create(&p, cert_a, role, "sha-256", r.fp, 32);
      assert_int_equal(sfu_dtls_start(p.d), 0);
      pump_raw(&p, &r);
      assert_int_equal(p.connected, 1);
      assert_string_equal(SSL_get_cipher_name(r.ssl), suites[i].suite);
      assert_int_equal(sfu_dtls_release(p.d), suites[i].releases);
      assert_int_equal(p.out.count, 0);
      if (we_close) {
        sfu_dtls_destroy(p.d);
        assert_int_equal(p.out.count, 1);
        pump_raw(&p, &r);
        ERR_clear_error();
        n = SSL_read(r.ssl, buf, sizeof(buf));
        assert_int_equal(SSL_get_error(r.ssl, n), SSL_ERROR_ZERO_RETURN);
        assert_true(SSL_get_shutdown(r.ssl) & SSL_RECEIVED_SHUTDOWN);
      } else {
        ERR_clear_error();
        assert_true(SSL_shutdown(r.ssl) >= 0);
        while ((n = BIO_read(r.wbio, buf, sizeof(buf))) > 0)
          (void)sfu_dtls_input(p.d, buf, (size_t)n);
        assert_int_equal(p.failed, 1);
        assert_string_equal(p.why, "closed by peer (close_notify)");
        sfu_dtls_destroy(p.d);
        assert_int_equal(p.out.count, 0);
      }
      ERR_clear_error();
      raw_free(&r);
    }
  }
}

/* The price of releasing early: once released, a retransmitted final
 * flight of the peer is no longer answered (the transport releases only
 * once the peer has shown it is connected, or after DTLS_RELEASE_MS). */
static void released_session_ignores_retransmitted_flight(void **state) {
  peer_t a, b;
  dgram_t g;
  make_pair(&a, cert_a, SFU_DTLS_ACTIVE, &b, cert_b);
  lose_server_final_flight(&a, &b);
  assert_int_equal(sfu_dtls_release(b.d), 1);
  {
    int64_t t = sfu_dtls_next_timeout_ms(a.d);
    assert_true(t >= 0);
    usleep((useconds_t)(t * 1000 + 1000));
  }
  sfu_dtls_on_timeout(a.d); /* the client resends its flight */
  assert_true(a.out.count > 0);
  while (q_pop(&a.out, &g)) assert_int_equal(sfu_dtls_input(b.d, g.data, g.len), 0);
  assert_int_equal(b.out.count, 0);
  assert_int_equal(b.failed, 0);
  assert_int_equal(a.connected, 0);
  destroy_pair(&a, &b);
}

/* ------------------------------------------------------------------------ */
/* (6c) The zygote's warm-up and its prepared context                       */
/* ------------------------------------------------------------------------ */

/* The warm-up's in-memory handshake connects and hands out working keys;
 * a certificate made after sfu_dtls_cert_prepare() (which takes the
 * prepared context) and one made without both handshake as any other. */
static void warm_up_and_prepared_context(void **state) {
  sfu_srtp_keys_t k;
  sfu_dtls_cert_t *prepared = NULL, *plain = NULL;
  peer_t a, b;

  memset(&k, 0, sizeof(k));
  assert_int_equal(sfu_dtls_warm_up(&k), 0);
  assert_int_equal(k.profile, SFU_SRTP_AEAD_AES_128_GCM);
  assert_int_equal(k.key_len, 16);
  assert_memory_not_equal(k.local_key, k.remote_key, 16);
  assert_int_equal(sfu_dtls_warm_up(NULL), 0);

  assert_int_equal(sfu_dtls_cert_prepare(), 0);
  assert_int_equal(sfu_dtls_cert_prepare(), 0); /* one is waiting: no-op */
  assert_int_equal(sfu_dtls_cert_create(&prepared), 0);
  assert_int_equal(sfu_dtls_cert_create(&plain), 0);
  assert_string_not_equal(sfu_dtls_cert_fingerprint(prepared),
                          sfu_dtls_cert_fingerprint(plain));
  for (int round = 0; round < 2; round++) {
    connect_pair(&a, round ? plain : prepared, SFU_DTLS_ACTIVE, &b,
                 round ? prepared : plain);
    assert_memory_equal(a.keys.local_key, b.keys.remote_key, 16);
    destroy_pair(&a, &b);
  }
  sfu_dtls_cert_destroy(prepared);
  sfu_dtls_cert_destroy(plain);
}

/* ------------------------------------------------------------------------ */
/* (7) SRTP with handshake keys                                             */
/* ------------------------------------------------------------------------ */

/* A 100-byte RTP packet: V=2, PT 111, given seq, timestamp and SSRC. */
static void make_rtp(uint8_t *p, size_t len, uint16_t seq, uint32_t ssrc) {
  uint32_t ts = (uint32_t)seq * 960;
  p[0] = 0x80;
  p[1] = 111;
  p[2] = (uint8_t)(seq >> 8);
  p[3] = (uint8_t)seq;
  p[4] = (uint8_t)(ts >> 24);
  p[5] = (uint8_t)(ts >> 16);
  p[6] = (uint8_t)(ts >> 8);
  p[7] = (uint8_t)ts;
  p[8] = (uint8_t)(ssrc >> 24);
  p[9] = (uint8_t)(ssrc >> 16);
  p[10] = (uint8_t)(ssrc >> 8);
  p[11] = (uint8_t)ssrc;
  for (size_t i = 12; i < len; i++) p[i] = (uint8_t)(i * 7 + seq);
}

/* A 28-byte RTCP sender report. */
static void make_rtcp(uint8_t *p, uint32_t ssrc) {
  memset(p, 0, 28);
  p[0] = 0x80;
  p[1] = 200;
  p[3] = 6; /* 7 words */
  p[4] = (uint8_t)(ssrc >> 24);
  p[5] = (uint8_t)(ssrc >> 16);
  p[6] = (uint8_t)(ssrc >> 8);
  p[7] = (uint8_t)ssrc;
  for (int i = 8; i < 28; i++) p[i] = (uint8_t)(i * 13);
}

/* Everything (7) asks for, from tx to rx, with keys of `tag_len` tags. */
static void srtp_exchange(sfu_srtp_t *tx, sfu_srtp_t *rx, size_t tag_len) {
  uint8_t pkt[100 + SFU_SRTP_TRAILER], orig[100], wire[200], again[200];
  size_t len, wire_len;

  /* Round trip. */
  make_rtp(pkt, 100, 1000, 0x11223344);
  memcpy(orig, pkt, 100);
  len = 100;
  assert_int_equal(sfu_srtp_protect(tx, pkt, &len, sizeof(pkt)), 0);
  assert_int_equal(len, 100 + tag_len);
  assert_memory_equal(pkt, orig, 12);            /* header in clear */
  assert_memory_not_equal(pkt + 12, orig + 12, 88); /* payload not */
  memcpy(wire, pkt, len);
  wire_len = len;
  assert_int_equal(sfu_srtp_unprotect(rx, pkt, &len, 0), 0);
  assert_int_equal(len, 100);
  assert_memory_equal(pkt, orig, 100);

  /* Replay: refused, counted apart from auth failures. */
  memcpy(pkt, wire, wire_len);
  len = wire_len;
  assert_int_equal(sfu_srtp_unprotect(rx, pkt, &len, 0), SFU_EEXIST);
  assert_int_equal(rx->replay_drops, 1);
  assert_int_equal(rx->unprotect_failures, 0);

  /* Retransmission of the same packet is allowed on the way out and
   * yields the same bytes. */
  memcpy(pkt, orig, 100);
  len = 100;
  assert_int_equal(sfu_srtp_protect(tx, pkt, &len, sizeof(pkt)), 0);
  memcpy(again, pkt, len);
  assert_memory_equal(again, wire, wire_len);

  /* A flipped byte fails authentication; the untouched packet still
   * passes afterwards (a failure does not advance the replay window). */
  make_rtp(pkt, 100, 1001, 0x11223344);
  len = 100;
  assert_int_equal(sfu_srtp_protect(tx, pkt, &len, sizeof(pkt)), 0);
  memcpy(wire, pkt, len);
  wire_len = len;
  pkt[50] ^= 0x01;
  assert_int_equal(sfu_srtp_unprotect(rx, pkt, &len, 0), SFU_EPROTO);
  assert_int_equal(rx->unprotect_failures, 1);
  wire[wire_len - 1] ^= 0x80; /* tag */
  memcpy(pkt, wire, wire_len);
  len = wire_len;
  assert_int_equal(sfu_srtp_unprotect(rx, pkt, &len, 0), SFU_EPROTO);
  assert_int_equal(rx->unprotect_failures, 2);
  wire[wire_len - 1] ^= 0x80;
  memcpy(pkt, wire, wire_len);
  len = wire_len;
  assert_int_equal(sfu_srtp_unprotect(rx, pkt, &len, 0), 0);
  assert_int_equal(len, 100);

  /* Too short to be RTP: counted, not crashed. */
  len = 5;
  assert_int_equal(sfu_srtp_unprotect(rx, pkt, &len, 0), SFU_EPROTO);
  assert_int_equal(rx->unprotect_failures, 3);

  /* No tailroom. */
  make_rtp(pkt, 100, 1002, 0x11223344);
  len = 100;
  assert_int_equal(sfu_srtp_protect(tx, pkt, &len, 100 + SFU_SRTP_TRAILER - 1),
                   SFU_E2BIG);
  assert_int_equal(len, 100);
  assert_int_equal(sfu_srtp_protect(tx, pkt, &len, 50), SFU_E2BIG);
  len = 8;
  assert_int_equal(sfu_srtp_protect(tx, pkt, &len, sizeof(pkt)), SFU_EINVAL);

  /* RTCP round trip, replay, tamper. */
  {
    uint8_t r[28 + SFU_SRTP_TRAILER], rorig[28], rwire[64];
    size_t rlen = 28, rwire_len;
    make_rtcp(r, 0x11223344);
    memcpy(rorig, r, 28);
    assert_int_equal(sfu_srtp_protect_rtcp(tx, r, &rlen, sizeof(r)), 0);
    assert_int_equal(rlen, 28 + 4 + tag_len); /* E|index + tag */
    memcpy(rwire, r, rlen);
    rwire_len = rlen;
    assert_int_equal(sfu_srtp_unprotect_rtcp(rx, r, &rlen, 0), 0);
    assert_int_equal(rlen, 28);
    assert_memory_equal(r, rorig, 28);
    memcpy(r, rwire, rwire_len);
    rlen = rwire_len;
    assert_int_equal(sfu_srtp_unprotect_rtcp(rx, r, &rlen, 0), SFU_EEXIST);
    assert_int_equal(rx->replay_drops, 2);
    memcpy(r, rorig, 28);
    rlen = 28;
    assert_int_equal(sfu_srtp_protect_rtcp(tx, r, &rlen, sizeof(r)), 0);
    r[10] ^= 4;
    assert_int_equal(sfu_srtp_unprotect_rtcp(rx, r, &rlen, 0), SFU_EPROTO);
    assert_int_equal(rx->unprotect_failures, 4);
    rlen = 28;
    assert_int_equal(sfu_srtp_protect_rtcp(tx, r, &rlen, 28 + 20), SFU_E2BIG);
  }
}

static void srtp_with_handshake_keys_gcm(void **state) {
  peer_t a, b;
  sfu_srtp_t sa, sb;
  connect_pair(&a, cert_a, SFU_DTLS_ACTIVE, &b, cert_b);
  assert_int_equal(sfu_srtp_create(&sa, &a.keys), 0);
  assert_int_equal(sfu_srtp_create(&sb, &b.keys), 0);
  assert_int_equal(sa.profile, SFU_SRTP_AEAD_AES_128_GCM);
  srtp_exchange(&sa, &sb, 16); /* A -> B */
  srtp_exchange(&sb, &sa, 16); /* B -> A */
  sfu_srtp_destroy(&sa);
  sfu_srtp_destroy(&sb);
  sfu_srtp_destroy(&sa); /* zeroed: harmless */
  destroy_pair(&a, &b);
}

/* CM keys: the raw peer's side is built from its own exporter output. */
static void srtp_with_handshake_keys_cm(void **state) {
  peer_t p;
  raw_t r;
  sfu_srtp_t ss, sr;
  sfu_srtp_keys_t rk;
  uint8_t km[60];

  raw_handshake(&p, &r, cert_a, SFU_DTLS_PASSIVE, "SRTP_AES128_CM_SHA1_80");
  assert_int_equal(p.connected, 1);
  assert_int_equal(p.keys.profile, SFU_SRTP_AES128_CM_SHA1_80);
  assert_int_equal(SSL_export_keying_material(r.ssl, km, 60,
                                              "EXTRACTOR-dtls_srtp", 19, NULL,
                                              0, 0),
                   1);
  memset(&rk, 0, sizeof(rk)); /* raw is the client */
  rk.profile = SFU_SRTP_AES128_CM_SHA1_80;
  rk.key_len = 16;
  rk.salt_len = 14;
  memcpy(rk.local_key, km, 16);
  memcpy(rk.remote_key, km + 16, 16);
  memcpy(rk.local_salt, km + 32, 14);
  memcpy(rk.remote_salt, km + 46, 14);
  assert_int_equal(sfu_srtp_create(&ss, &p.keys), 0);
  assert_int_equal(sfu_srtp_create(&sr, &rk), 0);
  srtp_exchange(&ss, &sr, 10);
  srtp_exchange(&sr, &ss, 10);
  sfu_srtp_destroy(&ss);
  sfu_srtp_destroy(&sr);
  sfu_dtls_destroy(p.d);
  raw_free(&r);
}

static void srtp_create_rejects_bad_keys(void **state) {
  sfu_srtp_t s;
  sfu_srtp_keys_t k;
  uint8_t pkt[64 + SFU_SRTP_TRAILER] = {0x80};
  size_t len = 64;
  memset(&k, 0, sizeof(k));
  k.profile = SFU_SRTP_AEAD_AES_128_GCM;
  k.key_len = 16;
  k.salt_len = 14; /* GCM wants 12 */
  assert_int_equal(sfu_srtp_create(&s, &k), SFU_EINVAL);
  assert_null(s.in);
  k.profile = SFU_SRTP_AES128_CM_SHA1_80;
  k.salt_len = 12; /* CM wants 14 */
  assert_int_equal(sfu_srtp_create(&s, &k), SFU_EINVAL);
  k.profile = (sfu_srtp_profile_t)2;
  assert_int_equal(sfu_srtp_create(&s, &k), SFU_EINVAL);
  assert_int_equal(sfu_srtp_create(&s, NULL), SFU_EINVAL);
  /* A zeroed (failed) session refuses politely. */
  assert_int_equal(sfu_srtp_protect(&s, pkt, &len, sizeof(pkt)), SFU_EINVAL);
  assert_int_equal(sfu_srtp_unprotect(&s, pkt, &len, 0), SFU_EPROTO);
  sfu_srtp_destroy(&s);
}

/* Garbage with an RTP-looking first byte never crashes unprotect (run this
 * under ASan). Malformed headers come back as EPROTO and are counted. */
static void srtp_garbage_is_counted(void **state) {
  sfu_srtp_t s;
  sfu_srtp_keys_t k;
  uint8_t pkt[256];
  uint64_t fails = 0;
  memset(&k, 0, sizeof(k));
  for (int prof = 0; prof < 2; prof++) {
    k.profile = prof ? SFU_SRTP_AEAD_AES_128_GCM : SFU_SRTP_AES128_CM_SHA1_80;
    k.key_len = 16;
    k.salt_len = prof ? 12 : 14;
    assert_int_equal(sfu_srtp_create(&s, &k), 0);
    for (int i = 0; i < 2000; i++) {
      size_t len = (size_t)(i % 120) + 1;
      assert_int_equal(RAND_bytes(pkt, (int)len), 1);
      pkt[0] = (uint8_t)(0x80 | (pkt[0] & 0x3f)); /* V=2, any P/X/CC */
      if (i & 1)
        assert_int_equal(sfu_srtp_unprotect_rtcp(&s, pkt, &len, 0), SFU_EPROTO);
      else
        assert_int_equal(sfu_srtp_unprotect(&s, pkt, &len, 0), SFU_EPROTO);
    }
    fails += s.unprotect_failures;
    sfu_srtp_destroy(&s);
  }
  assert_int_equal(fails, 4000);
}

/* ------------------------------------------------------------------------ */
/* (8) Known answers                                                        */
/* ------------------------------------------------------------------------ */

/* libsrtp srtp_driver.c srtp_validate(): RFC 3711 B.3 master key and salt,
 * default policy (AES_CM_128_HMAC_SHA1_80), SSRC 0xcafebabe, seq 0x1234. */
static const uint8_t kat_cm_key[30] = {
    0xe1, 0xf9, 0x7a, 0x0d, 0x3e, 0x01, 0x8b, 0xe0, 0xd6, 0x4f,
    0xa3, 0x2c, 0x06, 0xde, 0x41, 0x39, /* key */
    0x0e, 0xc6, 0x75, 0xad, 0x49, 0x8a, 0xfe, 0xeb, 0xb6, 0x96,
    0x0b, 0x3a, 0xab, 0xe6, /* salt */
};
static const uint8_t kat_rtp_plain[28] = {
    0x80, 0x0f, 0x12, 0x34, 0xde, 0xca, 0xfb, 0xad, 0xca, 0xfe,
    0xba, 0xbe, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab,
    0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab,
};
static const uint8_t kat_cm_srtp[38] = {
    0x80, 0x0f, 0x12, 0x34, 0xde, 0xca, 0xfb, 0xad, 0xca, 0xfe,
    0xba, 0xbe, 0x4e, 0x55, 0xdc, 0x4c, 0xe7, 0x99, 0x78, 0xd8,
    0x8c, 0xa4, 0xd2, 0x15, 0x94, 0x9d, 0x24, 0x02, 0xb7, 0x8d,
    0x6a, 0xcc, 0x99, 0xea, 0x17, 0x9b, 0x8d, 0xbb,
};
static const uint8_t kat_rtcp_plain[24] = {
    0x81, 0xc8, 0x00, 0x0b, 0xca, 0xfe, 0xba, 0xbe, 0xab, 0xab, 0xab, 0xab,
    0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab,
};
static const uint8_t kat_cm_srtcp[38] = {
    0x81, 0xc8, 0x00, 0x0b, 0xca, 0xfe, 0xba, 0xbe, 0x71, 0x28,
    0x03, 0x5b, 0xe4, 0x87, 0xb9, 0xbd, 0xbe, 0xf8, 0x90, 0x41,
    0xf9, 0x77, 0xa5, 0xa8, 0x80, 0x00, 0x00, 0x01, 0x99, 0x3e,
    0x08, 0xcd, 0x54, 0xd6, 0xc1, 0x23, 0x07, 0x98,
};
/* libsrtp srtp_driver.c srtp_validate_gcm(): AEAD_AES_128_GCM. */
static const uint8_t kat_gcm_key[28] = {
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09,
    0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, /* key */
    0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9,
    0xaa, 0xab, /* salt */
};
static const uint8_t kat_gcm_srtp[44] = {
    0x80, 0x0f, 0x12, 0x34, 0xde, 0xca, 0xfb, 0xad, 0xca, 0xfe, 0xba,
    0xbe, 0xc5, 0x00, 0x2e, 0xde, 0x04, 0xcf, 0xdd, 0x2e, 0xb9, 0x11,
    0x59, 0xe0, 0x88, 0x0a, 0xa0, 0x6e, 0xd2, 0x97, 0x68, 0x26, 0xf7,
    0x96, 0xb2, 0x01, 0xdf, 0x31, 0x31, 0xa1, 0x27, 0xe8, 0xa3, 0x92,
};
static const uint8_t kat_gcm_srtcp[44] = {
    0x81, 0xc8, 0x00, 0x0b, 0xca, 0xfe, 0xba, 0xbe, 0xc9, 0x8b, 0x8b,
    0x5d, 0xf0, 0x39, 0x2a, 0x55, 0x85, 0x2b, 0x6c, 0x21, 0xac, 0x8e,
    0x70, 0x25, 0xc5, 0x2c, 0x6f, 0xbe, 0xa2, 0xb3, 0xb4, 0x46, 0xea,
    0x31, 0x12, 0x3b, 0xa8, 0x8c, 0xe6, 0x1e, 0x80, 0x00, 0x00, 0x01,
};

/* Keys with the same master key in both directions. */
static sfu_srtp_keys_t symmetric_keys(sfu_srtp_profile_t prof,
                                      const uint8_t *key_salt,
                                      size_t salt_len) {
  sfu_srtp_keys_t k;
  memset(&k, 0, sizeof(k));
  k.profile = prof;
  k.key_len = 16;
  k.salt_len = salt_len;
  memcpy(k.local_key, key_salt, 16);
  memcpy(k.remote_key, key_salt, 16);
  memcpy(k.local_salt, key_salt + 16, salt_len);
  memcpy(k.remote_salt, key_salt + 16, salt_len);
  return k;
}

static void kat_one(sfu_srtp_profile_t prof, const uint8_t *key,
                    size_t salt_len, const uint8_t *srtp, size_t srtp_len,
                    const uint8_t *srtcp, size_t srtcp_len) {
  sfu_srtp_keys_t k = symmetric_keys(prof, key, salt_len);
  sfu_srtp_t tx, rx;
  uint8_t buf[64 + SFU_SRTP_TRAILER];
  size_t len;

  assert_int_equal(sfu_srtp_create(&tx, &k), 0);
  assert_int_equal(sfu_srtp_create(&rx, &k), 0);

  memcpy(buf, kat_rtp_plain, 28);
  len = 28;
  assert_int_equal(sfu_srtp_protect(&tx, buf, &len, sizeof(buf)), 0);
  assert_int_equal(len, srtp_len);
  assert_memory_equal(buf, srtp, srtp_len);
  assert_int_equal(sfu_srtp_unprotect(&rx, buf, &len, 0), 0);
  assert_int_equal(len, 28);
  assert_memory_equal(buf, kat_rtp_plain, 28);

  memcpy(buf, kat_rtcp_plain, 24);
  len = 24;
  assert_int_equal(sfu_srtp_protect_rtcp(&tx, buf, &len, sizeof(buf)), 0);
  assert_int_equal(len, srtcp_len);
  assert_memory_equal(buf, srtcp, srtcp_len);
  assert_int_equal(sfu_srtp_unprotect_rtcp(&rx, buf, &len, 0), 0);
  assert_int_equal(len, 24);
  assert_memory_equal(buf, kat_rtcp_plain, 24);

  sfu_srtp_destroy(&tx);
  sfu_srtp_destroy(&rx);
}

static void srtp_known_answer_cm(void **state) {
  kat_one(SFU_SRTP_AES128_CM_SHA1_80, kat_cm_key, 14, kat_cm_srtp, 38,
          kat_cm_srtcp, 38);
}

static void srtp_known_answer_gcm(void **state) {
  kat_one(SFU_SRTP_AEAD_AES_128_GCM, kat_gcm_key, 12, kat_gcm_srtp, 44,
          kat_gcm_srtcp, 44);
}

/*
 * An independent SRTP sender, written from RFC 3711 (§4.1.1 AES-CM, §4.2
 * HMAC-SHA1, §4.3 key derivation) and RFC 7714 (§8 AEAD, §11 KDF) with
 * plain OpenSSL EVP calls. It reproduces the vectors above, then checks
 * sfu_srtp_protect() on packets the vectors do not cover (100 bytes,
 * random keys).
 */

/* AES-CM keystream: AES-128-CTR from a 16-byte IV over zeros. */
static void aes_ctr(const uint8_t key[16], const uint8_t iv[16],
                    const uint8_t *in, uint8_t *out, size_t len) {
  EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
  int n = 0;
  assert_non_null(c);
  assert_int_equal(EVP_EncryptInit_ex(c, EVP_aes_128_ctr(), NULL, key, iv), 1);
  assert_int_equal(EVP_EncryptUpdate(c, out, &n, in, (int)len), 1);
  EVP_CIPHER_CTX_free(c);
}

/* RFC 3711 §4.3.1 with kdr = 0: x = label·2^48 XOR master_salt (112 bits,
 * right-aligned); session key = AES-CM(master_key, x·2^16). A 96-bit
 * GCM salt is the top of the 112 bits, zero-padded (RFC 7714 §11). */
static void ref_kdf(const uint8_t mkey[16], const uint8_t *msalt,
                    size_t msalt_len, uint8_t label, uint8_t *out,
                    size_t len) {
  uint8_t iv[16] = {0}, zeros[32] = {0};
  memcpy(iv, msalt, msalt_len);
  iv[7] ^= label;
  aes_ctr(mkey, iv, zeros, out, len);
}

static void ref_protect_cm(const uint8_t mkey[16], const uint8_t msalt[14],
                           const uint8_t *pkt, size_t len, uint8_t *out) {
  uint8_t ke[16], ka[20], ks[14], iv[16] = {0}, mac[20], roc[4] = {0};
  uint8_t authed[256];
  unsigned int maclen = 0;
  assert_true(len + 4 <= sizeof(authed));
  ref_kdf(mkey, msalt, 14, 0x00, ke, 16);
  ref_kdf(mkey, msalt, 14, 0x01, ka, 20);
  ref_kdf(mkey, msalt, 14, 0x02, ks, 14);
  /* IV = (k_s·2^16) XOR (SSRC·2^64) XOR (i·2^16), i = ROC·2^16 + SEQ. */
  memcpy(iv, ks, 14);
  for (int j = 0; j < 4; j++) iv[4 + j] ^= pkt[8 + j];
  iv[12] ^= pkt[2];
  iv[13] ^= pkt[3];
  memcpy(out, pkt, 12);
  aes_ctr(ke, iv, pkt + 12, out + 12, len - 12);
  /* Tag = HMAC-SHA1(k_a, packet || ROC), first 80 bits. */
  memcpy(authed, out, len);
  memcpy(authed + len, roc, 4);
  assert_non_null(HMAC(EVP_sha1(), ka, 20, authed, len + 4, mac, &maclen));
  memcpy(out + len, mac, 10);
}

static void ref_protect_gcm(const uint8_t mkey[16], const uint8_t msalt[12],
                            const uint8_t *pkt, size_t len, uint8_t *out) {
  uint8_t ke[16], ks[12], iv[12] = {0};
  EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
  int n = 0;
  ref_kdf(mkey, msalt, 12, 0x00, ke, 16);
  ref_kdf(mkey, msalt, 12, 0x02, ks, 12);
  /* IV = (00 00 || SSRC || ROC || SEQ) XOR salt (RFC 7714 §8.1). */
  memcpy(iv + 2, pkt + 8, 4);
  iv[10] = pkt[2];
  iv[11] = pkt[3];
  for (int j = 0; j < 12; j++) iv[j] ^= ks[j];
  assert_non_null(c);
  assert_int_equal(EVP_EncryptInit_ex(c, EVP_aes_128_gcm(), NULL, NULL, NULL),
                   1);
  assert_int_equal(EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, 12, NULL), 1);
  assert_int_equal(EVP_EncryptInit_ex(c, NULL, NULL, ke, iv), 1);
  assert_int_equal(EVP_EncryptUpdate(c, NULL, &n, pkt, 12), 1); /* AAD */
  memcpy(out, pkt, 12);
  assert_int_equal(EVP_EncryptUpdate(c, out + 12, &n, pkt + 12, (int)len - 12),
                   1);
  assert_int_equal(EVP_EncryptFinal_ex(c, out + 12 + n, &n), 1);
  assert_int_equal(
      EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, out + len), 1);
  EVP_CIPHER_CTX_free(c);
}

static void srtp_matches_independent_reference(void **state) {
  uint8_t ref[200], pkt[100 + SFU_SRTP_TRAILER], master[30];
  size_t len;

  /* The reference reproduces the published vectors... */
  ref_protect_cm(kat_cm_key, kat_cm_key + 16, kat_rtp_plain, 28, ref);
  assert_memory_equal(ref, kat_cm_srtp, 38);
  ref_protect_gcm(kat_gcm_key, kat_gcm_key + 16, kat_rtp_plain, 28, ref);
  assert_memory_equal(ref, kat_gcm_srtp, 44);

  /* ...and agrees with sfu_srtp_protect on random keys, 100-byte packets. */
  for (int prof = 0; prof < 2; prof++) {
    size_t salt_len = prof ? 12 : 14, tag = prof ? 16 : 10;
    sfu_srtp_keys_t k;
    sfu_srtp_t s;
    assert_int_equal(RAND_bytes(master, sizeof(master)), 1);
    k = symmetric_keys(prof ? SFU_SRTP_AEAD_AES_128_GCM
                            : SFU_SRTP_AES128_CM_SHA1_80,
                       master, salt_len);
    assert_int_equal(sfu_srtp_create(&s, &k), 0);
    for (uint16_t seq = 40000; seq < 40010; seq++) {
      make_rtp(pkt, 100, seq, 0xdeadbeef);
      if (prof)
        ref_protect_gcm(master, master + 16, pkt, 100, ref);
      else
        ref_protect_cm(master, master + 16, pkt, 100, ref);
      len = 100;
      assert_int_equal(sfu_srtp_protect(&s, pkt, &len, sizeof(pkt)), 0);
      assert_int_equal(len, 100 + tag);
      assert_memory_equal(pkt, ref, len);
    }
    sfu_srtp_destroy(&s);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(cert_fingerprint_matches_der),
      cmocka_unit_test(cert_fields),
      cmocka_unit_test(fingerprint_parse),
      cmocka_unit_test(create_rejects_bad_arguments),
      cmocka_unit_test(handshake_sfu_pair_gcm),
      cmocka_unit_test(handshake_sfu_pair_reversed_roles),
      cmocka_unit_test(handshake_other_fingerprint_hashes),
      cmocka_unit_test(raw_peer_profiles_and_layout),
      cmocka_unit_test(raw_peer_without_srtp_fails),
      cmocka_unit_test(wrong_fingerprint_fails),
      cmocka_unit_test(raw_peer_with_other_cert_refused),
      cmocka_unit_test(lost_first_flights_recovered),
      cmocka_unit_test(lost_final_flight_recovered),
      cmocka_unit_test(junk_records_ignored),
      cmocka_unit_test(released_sessions_close_both_ways),
      cmocka_unit_test(released_session_against_raw_peer),
      cmocka_unit_test(released_session_ignores_retransmitted_flight),
      cmocka_unit_test(warm_up_and_prepared_context),
      cmocka_unit_test(srtp_with_handshake_keys_gcm),
      cmocka_unit_test(srtp_with_handshake_keys_cm),
      cmocka_unit_test(srtp_create_rejects_bad_keys),
      cmocka_unit_test(srtp_garbage_is_counted),
      cmocka_unit_test(srtp_known_answer_cm),
      cmocka_unit_test(srtp_known_answer_gcm),
      cmocka_unit_test(srtp_matches_independent_reference),
  };
  return cmocka_run_group_tests_name("dtls", tests, setup_certs,
                                     teardown_certs);
}
