/*
 * dtls.h -- DTLS-SRTP key agreement (RFC 5763/5764) for one peer, with no
 * sockets.
 *
 * The transport owns the UDP path (an ICE stream, sfu/net/ice.h). It hands
 * each DTLS datagram it receives to sfu_dtls_input(). This module hands
 * each datagram it wants to send to the `send` callback. When the
 * handshake finishes and the peer's certificate matches the fingerprint
 * from its SDP, `connected` receives the SRTP keys. The transport passes
 * them to sfu_srtp_create() and never touches DTLS again, except to pass
 * along datagrams (a peer retransmits its last flight when ours got lost,
 * and it may send close_notify) and, once the peer is done with the
 * handshake, to release OpenSSL's session (sfu_dtls_release()).
 *
 *   transport ──datagram 20..63──▶ sfu_dtls_input ──▶ OpenSSL (memory BIO)
 *   transport ◀──cb.send────────── one datagram per write ◀──┘
 *   transport ◀──cb.connected(keys) / cb.failed(why)
 *   uv timer  ──sfu_dtls_on_timeout; re-arm from sfu_dtls_next_timeout_ms
 *
 * One certificate (sfu_dtls_cert_t) serves every peer of a room process. It
 * also carries the OpenSSL context that all sessions are built from. See
 * docs/internals/dtls-srtp.md for the role choice, the timer policy and the
 * key layout.
 *
 * Threading: one thread (the loop of the room, or of the client).
 * Callbacks run synchronously from inside sfu_dtls_start(),
 * sfu_dtls_input(), sfu_dtls_on_timeout() and sfu_dtls_destroy(). A
 * callback must not destroy the session it belongs to. It should mark the
 * session closing and let the owner destroy it at the end of the loop turn
 * (docs/style.md, "Lifecycles").
 */
#ifndef SFU_DTLS_H
#define SFU_DTLS_H

#include <stddef.h>
#include <stdint.h>

/* Largest datagram the handshake produces: UDP payload, as in libwebrtc. */
#define SFU_DTLS_MTU 1200

/* "AB:CD:..." form of a SHA-256 fingerprint: 32 bytes, 95 chars + NUL. */
#define SFU_DTLS_FINGERPRINT_LEN 96

/* ------------------------------------------------------------------------ */
/* Certificate: one per room process                                        */
/* ------------------------------------------------------------------------ */

/*
 * A self-signed ECDSA P-256 certificate (CN "sfu", random 63-bit serial,
 * valid from one day ago to 30 days ahead, signed with SHA-256). It also
 * holds the DTLS 1.2 SSL_CTX that every session uses: cipher list, SRTP
 * profiles and the fingerprint-pinning verify callback. Each session holds
 * a reference on that context. The certificate may therefore be destroyed
 * before its sessions; the context goes when the last of them does.
 */
typedef struct sfu_dtls_cert_s sfu_dtls_cert_t;

/*
 * Generates the key and certificate and builds the context. This takes
 * a couple of milliseconds, so do it once per process. Returns 0, SFU_ENOMEM, or
 * SFU_EPROTO if OpenSSL refuses a step (its error is logged once). On
 * failure *out is NULL.
 */
int sfu_dtls_cert_create(sfu_dtls_cert_t **out);
/*
 * Makes the DTLS context of the process's next certificate ahead of time:
 * the next sfu_dtls_cert_create() takes it instead of making its own. The
 * room zygote calls it before it forks (sfu/room/zygote.c), so that the
 * algorithm fetches of SSL_CTX_new(), which write OpenSSL's shared state,
 * happen once in the zygote rather than in every room. Does nothing when
 * a context is already waiting. Returns 0, or SFU_EPROTO (logged once).
 */
int sfu_dtls_cert_prepare(void);
/* NULL is ignored. */
void sfu_dtls_cert_destroy(sfu_dtls_cert_t *c);
/*
 * SHA-256 fingerprint of the DER certificate for `a=fingerprint:sha-256`:
 * uppercase hex, colon-separated, 95 characters. The string lives as long
 * as the certificate.
 */
const char *sfu_dtls_cert_fingerprint(const sfu_dtls_cert_t *c);
/*
 * DER encoding of the certificate, for tools and tests. Returns its length.
 * The bytes are written only when cap is large enough, so call with
 * cap == 0 to learn the size. Returns SFU_EPROTO on encoder failure.
 */
int sfu_dtls_cert_der(const sfu_dtls_cert_t *c, uint8_t *buf, size_t cap);

/*
 * Parses an SDP fingerprint value ("AB:CD:...", either case) into bytes.
 * Each byte must be exactly two hex digits, separated by single colons.
 * Returns the number of bytes, SFU_EINVAL if malformed, or SFU_E2BIG if
 * more than `cap`.
 */
int sfu_dtls_fingerprint_parse(const char *s, uint8_t *out, size_t cap);

/* ------------------------------------------------------------------------ */
/* Negotiated SRTP keys (consumed by sfu/media/srtp.h)                            */
/* ------------------------------------------------------------------------ */

/* DTLS-SRTP protection profiles; the values are the IANA ids. */
typedef enum {
  SFU_SRTP_AES128_CM_SHA1_80 = 1, /* RFC 5764: AES-CM + HMAC-SHA1, 80-bit tag */
  SFU_SRTP_AEAD_AES_128_GCM = 7,  /* RFC 7714: AES-128-GCM, 16-byte tag */
} sfu_srtp_profile_t;

/*
 * Master keys for one peer, split from the exporter output per RFC 5764
 * §4.2 and oriented for this side. "local" protects what we send and
 * "remote" unprotects what we receive. The key is 16 bytes for both
 * profiles. The salt is 12 bytes for GCM and 14 for CM_SHA1_80. Bytes past
 * key_len/salt_len are zero.
 */
typedef struct {
  sfu_srtp_profile_t profile; /* negotiated profile */
  uint8_t local_key[32];      /* our write master key (key_len bytes) */
  uint8_t local_salt[14];     /* our write master salt (salt_len bytes) */
  uint8_t remote_key[32];     /* peer's write master key */
  uint8_t remote_salt[14];    /* peer's write master salt */
  size_t key_len;             /* 16 */
  size_t salt_len;            /* 12 (GCM) or 14 (CM_SHA1_80) */
} sfu_srtp_keys_t;

/* ------------------------------------------------------------------------ */
/* Session: one per peer                                                    */
/* ------------------------------------------------------------------------ */

/*
 * DTLS role, from the SDP `a=setup` exchange (RFC 5763 §5): `active` is the
 * DTLS client and `passive` the server. When the SFU answers an offer with
 * `actpass` it answers `active` (see docs/internals/dtls-srtp.md). When it
 * offers `actpass` itself, the client's answer decides.
 */
typedef enum {
  SFU_DTLS_ACTIVE,  /* DTLS client: sends ClientHello from sfu_dtls_start() */
  SFU_DTLS_PASSIVE, /* DTLS server: waits for the peer's ClientHello */
} sfu_dtls_role_t;

typedef struct sfu_dtls_s sfu_dtls_t;

/*
 * What a session reports to its owner (the transport). All three
 * callbacks are required. After `failed`, no callback runs again, and
 * sfu_dtls_destroy() sends nothing.
 */
typedef struct {
  void *arg; /* passed back to each callback */
  /* One datagram for the peer, at most SFU_DTLS_MTU bytes during the
   * handshake. The bytes are valid only during the call. */
  void (*send)(void *arg, const uint8_t *data, size_t len);
  /* Handshake done, peer fingerprint verified, profile agreed. `keys` is
   * valid only during the call and is wiped afterwards. Runs once. */
  void (*connected)(void *arg, const sfu_srtp_keys_t *keys);
  /* The handshake or the fingerprint check failed, the peer sent a fatal
   * alert or close_notify, or retransmissions ran out. `why` is a short
   * human reason, valid only during the call. Runs once. */
  void (*failed)(void *arg, const char *why);
} sfu_dtls_cb_t;

/*
 * Creates a session for one peer.
 *   cert    context and certificate (sfu_dtls_cert_create); a reference to
 *           its SSL_CTX is taken, so `cert` need not outlive the session
 *   role    from SDP negotiation
 *   fp_alg  hash named in the peer's a=fingerprint: "sha-256" (what every
 *           browser sends), "sha-1", "sha-224", "sha-384" or "sha-512",
 *           any case
 *   fp      the fingerprint bytes (sfu_dtls_fingerprint_parse), fp_len must
 *           be that hash's size
 *   cb      copied; all three callbacks must be set
 * Returns 0, SFU_EINVAL (unknown hash, wrong length, missing callback) or
 * SFU_ENOMEM. Nothing is sent until sfu_dtls_start() or sfu_dtls_input().
 */
int sfu_dtls_create(sfu_dtls_t **out, sfu_dtls_cert_t *cert,
                    sfu_dtls_role_t role, const char *fp_alg,
                    const uint8_t *fp, size_t fp_len, const sfu_dtls_cb_t *cb);

/*
 * Starts the handshake once ICE is connected. ACTIVE: sends the ClientHello
 * (through cb.send) and arms the retransmission timer. PASSIVE: does
 * nothing. Calling it again is harmless. Returns 0, or SFU_EPROTO after
 * cb.failed.
 */
int sfu_dtls_start(sfu_dtls_t *d);

/*
 * Feeds one received datagram whose first byte is 20..63 (RFC 7983 demux).
 * It may send datagrams, call `connected` or `failed`, and change the
 * timer. Records that do not authenticate are dropped silently, as DTLS
 * requires. Application data after the handshake is read and discarded.
 * Returns 0 when the datagram was taken, SFU_EINVAL if it is not DTLS
 * (empty, first byte outside 20..63, over 64 KiB; count and drop it), and
 * SFU_EPROTO if the session failed now (after cb.failed) or had already
 * ended.
 */
int sfu_dtls_input(sfu_dtls_t *d, const uint8_t *data, size_t len);

/*
 * Milliseconds until sfu_dtls_on_timeout() should run, 0 if it is due now,
 * or -1 if no timer is running. Re-read this after every call into the
 * session (start, input, on_timeout) and re-arm one uv timer from it.
 */
int64_t sfu_dtls_next_timeout_ms(sfu_dtls_t *d);

/*
 * Runs the DTLS retransmission timer: resends the last flight when it is
 * due, and does nothing when it is early. Retransmission intervals start
 * at 400 ms, double, and stop at 3.2 s. After 12 retransmissions of the
 * same flight the handshake fails (cb.failed "handshake timed out"), about
 * 35 s after that flight was first sent.
 */
void sfu_dtls_on_timeout(sfu_dtls_t *d);

/* 1 between `connected` and the end of the session, else 0. */
int sfu_dtls_is_connected(const sfu_dtls_t *d);

/*
 * The peer is done with the handshake: frees OpenSSL's session (some
 * 70 KiB), keeping what the rest of the session needs -- our close_notify,
 * sealed now and sent by sfu_dtls_destroy(), and the peer's read key, to
 * open its close_notify or fatal alert (sfu_dtls_input() reports them as
 * before). From then on a retransmitted final flight of the peer is no
 * longer answered, so call it once the peer has shown that it has our
 * last flight: its first SRTP or SRTCP packet authenticated (it only
 * sends those once connected), or long after `connected` (the transport:
 * sfu/net/transport.c). Works for the AEAD suites (AES-GCM,
 * ChaCha20-Poly1305); a session on another suite is kept whole. Returns 1
 * if the session is released (now or before), 0 if it is kept (not
 * connected, or not an AEAD suite). Not from inside a callback.
 */
int sfu_dtls_release(sfu_dtls_t *d);

/* 1 once sfu_dtls_release() has freed OpenSSL's session, else 0. For tests
 * (the transport's release: tests/test_transport.c). */
int sfu__dtls_released(const sfu_dtls_t *d);

/*
 * Frees the session. If it is connected, it first sends close_notify
 * through cb.send, so the transport must still be able to send. NULL is
 * ignored. Never call this from inside one of the session's callbacks.
 */
void sfu_dtls_destroy(sfu_dtls_t *d);

/*
 * One handshake in memory between two sessions of a throwaway
 * certificate, both released and everything freed, so that what OpenSSL
 * builds lazily at a process's first certificate, handshake and release
 * (its random generator, the algorithms and the KDF they fetch) and the
 * code they run are in place. The room zygote calls it: every room it
 * forks then shares that instead of building its own (sfu/room/zygote.c).
 * `keys`, if not NULL, gets the SRTP keys the active end exported (the
 * caller wipes them). Returns 0, or SFU_EPROTO (keys wiped).
 */
int sfu_dtls_warm_up(sfu_srtp_keys_t *keys);

#endif
