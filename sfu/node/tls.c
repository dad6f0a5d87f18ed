/*
 * tls.c -- the SSL_CTXs of sfud's listener and webhook client.
 *
 * Files are opened with stdio first so that a missing or unreadable file
 * is reported with the system's reason and the setting's name, not with
 * OpenSSL's error queue; then OpenSSL reads them. A pin is kept on the
 * client context as its SHA-256 (ex_data) and compared in the verify
 * callback at depth 0, after the chain itself verified.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "sfu/node/tls.h"

#define PIN_PREFIX "sha256//"

/* The readable file at `path`, or -1 with err naming `what`. */
static int check_file(const char *what, const char *path, char *err, size_t errlen) {
  FILE *f = fopen(path, "r");
  if (!f) {
    snprintf(err, errlen, "%s '%s': %s", what, path, strerror(errno));
    return -1;
  }
  int c = fgetc(f);
  int e = ferror(f) ? errno : 0;
  fclose(f);
  if (e) {
    snprintf(err, errlen, "%s '%s': %s", what, path, strerror(e));
    return -1;
  }
  if (c == EOF) {
    snprintf(err, errlen, "%s '%s': empty file", what, path);
    return -1;
  }
  return 0;
}

/* err = "<what> '<path>': <msg>: <OpenSSL's first queued reason>". */
static void ssl_error(const char *what, const char *path, const char *msg, char *err,
                      size_t errlen) {
  unsigned long e = ERR_get_error();
  char reason[200] = "";
  if (e) ERR_error_string_n(e, reason, sizeof(reason));
  ERR_clear_error();
  snprintf(err, errlen, "%s '%s': %s%s%s", what, path, msg, e ? ": " : "", reason);
}

SSL_CTX *sfu_tls_server_ctx(const char *cert_file, const char *key_file, char *err,
                            size_t errlen) {
  if (check_file("tls_cert_file", cert_file, err, errlen) != 0 ||
      check_file("tls_key_file", key_file, err, errlen) != 0)
    return NULL;
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) {
    snprintf(err, errlen, "cannot create a TLS context");
    return NULL;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                               SSL_OP_CIPHER_SERVER_PREFERENCE);
  if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
    ssl_error("tls_cert_file", cert_file, "not a PEM certificate chain", err, errlen);
    goto fail;
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
    ssl_error("tls_key_file", key_file, "not a PEM private key matching the certificate", err,
              errlen);
    goto fail;
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    ssl_error("tls_key_file", key_file, "does not match the certificate", err, errlen);
    goto fail;
  }
  return ctx;

fail:
  SSL_CTX_free(ctx);
  return NULL;
}

/* SHA-256 of the certificate's DER SubjectPublicKeyInfo. */
static int spki_sha256(X509 *cert, unsigned char out[SHA256_DIGEST_LENGTH]) {
  unsigned char *der = NULL;
  int n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
  if (n <= 0) return -1;
  SHA256(der, (size_t)n, out);
  OPENSSL_free(der);
  return 0;
}

static int pin_index = -1;

static int verify_pin(int ok, X509_STORE_CTX *store) {
  if (!ok || X509_STORE_CTX_get_error_depth(store) != 0) return ok;
  SSL *ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
  const unsigned char *pin = ssl ? SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), pin_index) : NULL;
  unsigned char h[SHA256_DIGEST_LENGTH];
  if (!pin) return ok;
  if (spki_sha256(X509_STORE_CTX_get_current_cert(store), h) != 0 ||
      memcmp(h, pin, sizeof(h)) != 0) {
    X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
    return 0;
  }
  return 1;
}

static void free_pin(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp) {
  (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
  free(ptr);
}

SSL_CTX *sfu_tls_client_ctx(const char *ca_file, const char *pin, char *err, size_t errlen) {
  unsigned char *want = NULL;
  if (pin && pin[0]) {
    unsigned char raw[48];
    size_t pl = strlen(PIN_PREFIX), bl = strlen(pin) - (strlen(pin) >= pl ? pl : 0);
    if (strncmp(pin, PIN_PREFIX, pl) != 0 || bl != 44 ||
        EVP_DecodeBlock(raw, (const unsigned char *)pin + pl, (int)bl) != 33) {
      snprintf(err, errlen, "webhook_tls_pin: '%s' is not sha256//<base64 of 32 bytes>", pin);
      return NULL;
    }
    if (!(want = malloc(SHA256_DIGEST_LENGTH))) {
      snprintf(err, errlen, "out of memory");
      return NULL;
    }
    memcpy(want, raw, SHA256_DIGEST_LENGTH); /* 44 base64 chars decode to 33: one pad byte */
  }
  if (ca_file && ca_file[0] && check_file("webhook_tls_ca_file", ca_file, err, errlen) != 0) {
    free(want);
    return NULL;
  }
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) {
    free(want);
    snprintf(err, errlen, "cannot create a TLS context");
    return NULL;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  int loaded = ca_file && ca_file[0] ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
                                     : SSL_CTX_set_default_verify_paths(ctx);
  if (loaded != 1) {
    ssl_error("webhook_tls_ca_file", ca_file && ca_file[0] ? ca_file : "(system store)",
              "no CA certificates", err, errlen);
    SSL_CTX_free(ctx);
    free(want);
    return NULL;
  }
  if (want) {
    if (pin_index < 0) pin_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, free_pin);
    SSL_CTX_set_ex_data(ctx, pin_index, want);
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, verify_pin);
  return ctx;
}

int sfu_tls_file_pin(const char *cert_file, char *out, size_t outlen, char *err, size_t errlen) {
  unsigned char h[SHA256_DIGEST_LENGTH], b64[48];
  if (check_file("certificate", cert_file, err, errlen) != 0) return -1;
  FILE *f = fopen(cert_file, "r");
  X509 *cert = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
  if (f) fclose(f);
  if (!cert || spki_sha256(cert, h) != 0) {
    X509_free(cert);
    ssl_error("certificate", cert_file, "not a PEM certificate", err, errlen);
    return -1;
  }
  X509_free(cert);
  EVP_EncodeBlock(b64, h, sizeof(h));
  snprintf(out, outlen, PIN_PREFIX "%s", (const char *)b64);
  return 0;
}
