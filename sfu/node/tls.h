/*
 * tls.h -- OpenSSL contexts for sfud: the server side of its HTTPS/WSS
 * listener and the client side of its webhook deliveries. h2o does the TLS
 * on its sockets; this file only builds and checks the SSL_CTXs.
 */
#ifndef SFU_NODE_TLS_H
#define SFU_NODE_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

/*
 * A server context from a PEM certificate chain (leaf first) and its PEM
 * private key: TLS 1.2 and later, no renegotiation, no compression, the
 * server's cipher order. NULL with `err` set ("tls_key_file
 * '/x/key.pem': does not match the certificate in ...") when a file is
 * missing, unreadable or not PEM, or the key does not match.
 */
SSL_CTX *sfu_tls_server_ctx(const char *cert_file, const char *key_file, char *err,
                            size_t errlen);

/*
 * A client context that verifies the peer: against `ca_file` (PEM, one or
 * more certificates) when given, else the system's CA store; and when
 * `pin` is given ("sha256//<base64 of the SHA-256 of the leaf's
 * SubjectPublicKeyInfo>", the form curl's --pinnedpubkey takes), the
 * leaf's key must also match it. The host name is checked by h2o against
 * the server name it connects to. NULL with `err` set.
 */
SSL_CTX *sfu_tls_client_ctx(const char *ca_file, const char *pin, char *err, size_t errlen);

/* "sha256//..." of the leaf certificate in a PEM file, for logs and for
 * operators who pin it. 0 or -1 with err. */
int sfu_tls_file_pin(const char *cert_file, char *out, size_t outlen, char *err, size_t errlen);

#endif
