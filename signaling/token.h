/*
 * token.h -- join tokens: HS256 JWTs that admit one identity to one room.
 *
 * The control plane mints a token with the shared secret and hands it to a
 * client; the client presents it when it opens its WebSocket; sfud verifies
 * it before a participant exists. The claims and the wire format are in
 * docs/tokens.md, which is written so that any JWT library can mint tokens
 * this module accepts.
 *
 * Secrets: HS256 needs a key at least as long as its hash (RFC 7518 3.2), so
 * both functions refuse secrets shorter than 32 bytes with SFU_EINVAL. An
 * empty key would be worse than short: libjwt skips the signature check when
 * it is given no key.
 *
 * Intended callers: the HTTP API (mint, for the control plane's convenience
 * route) and the WebSocket join path (verify). Both functions are pure: no
 * clock is read, no global state is kept, any thread may call them.
 */
#ifndef SFU_SIGNALING_TOKEN_H
#define SFU_SIGNALING_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#define SFU_TOKEN_MAX_ID 64      /* room id / identity: 1..64 bytes of [A-Za-z0-9_.@:-] */
#define SFU_TOKEN_MAX_NAME 128   /* display name, any UTF-8, <= 128 bytes */
#define SFU_TOKEN_MAX_LEN 4096   /* longer tokens are refused before parsing */

/* Bits of sfu_token_claims_t.grants; JSON member names in docs/tokens.md. */
enum {
  SFU_GRANT_PUBLISH = 1,       /* may send audio/video tracks */
  SFU_GRANT_SUBSCRIBE = 2,     /* may receive other participants' tracks */
  SFU_GRANT_PUBLISH_DATA = 4,  /* may send data-channel messages */
  SFU_GRANT_ADMIN = 8          /* may mute/kick others, close the room */
};

/*
 * The claims of one token, decoded. Every string is NUL-terminated inside
 * its array; verify guarantees room and identity pass sfu_token_valid_id()
 * and name is valid UTF-8 without NUL bytes. Times are whole seconds since
 * the Unix epoch, within 0..253402300799 (the year 9999).
 */
typedef struct sfu_token_claims_s {
  char room[SFU_TOKEN_MAX_ID + 1];      /* claim "room" */
  char identity[SFU_TOKEN_MAX_ID + 1];  /* claim "sub" */
  char name[SFU_TOKEN_MAX_NAME + 1];    /* claim "name", optional, "" if absent */
  char jti[33];                         /* claim "jti": 32 hex chars, random per token */
  int64_t iat, nbf, exp;                /* seconds since epoch; nbf optional (0 if absent) */
  unsigned grants;                      /* claim "grants": {"publish":bool,"subscribe":bool,"publish_data":bool,"admin":bool}; absent => publish|subscribe */
} sfu_token_claims_t;

/*
 * Mints an HS256 token ("iss":"sfu", "aud":"sfu-room"). Fills c->jti if
 * empty. *out is malloc'd, caller frees.
 *
 *   secret, secret_len  the shared HMAC key, 32 bytes or more.
 *   c                   the claims. room and identity must be valid ids,
 *                       name valid UTF-8 of at most SFU_TOKEN_MAX_NAME bytes
 *                       ("" leaves the claim out), grants only SFU_GRANT_*
 *                       bits (all four are written explicitly, so 0 means
 *                       "no rights", not the default), 0 < iat < exp,
 *                       nbf 0 (left out) or below exp. A non-empty jti must
 *                       be 32 lowercase hex digits; an empty one is filled
 *                       with 16 random bytes in hex, so c is written to.
 *   out                 receives the token, at most SFU_TOKEN_MAX_LEN bytes,
 *                       NUL-terminated; set to NULL on failure.
 *
 * Returns 0, SFU_EINVAL (bad ids/name/times/grants/secret) or SFU_ENOMEM.
 */
int sfu_token_mint(const uint8_t *secret, size_t secret_len,
                   sfu_token_claims_t *c, char **out);

/*
 * Verifies signature (HS256 only: alg none and every other alg refused,
 * including a header that says HS256 but is unsigned), iss, aud, exp (must
 * be > now, no leeway), nbf (<= now + 30 s leeway), iat (present, <= now +
 * 30 s, < exp), ids well-formed, and when expect_room != NULL that room ==
 * expect_room.
 *
 *   secret, secret_len  the shared HMAC key, 32 bytes or more.
 *   token               the compact JWT as the client sent it (no "Bearer "
 *                       prefix, no whitespace). NULL is treated as malformed.
 *   expect_room         room id the client asks to join, or NULL to accept
 *                       any room (the caller then reads out->room).
 *   now                 wall clock in seconds since the epoch (the caller's
 *                       sfu_wall_ms() / 1000; tests pass fixed values).
 *   out                 receives the claims on success, zeroed on failure;
 *                       may be NULL when only the verdict matters.
 *   err_desc            if not NULL, set on failure to a short static human
 *                       string ("token expired", "bad signature", ...) fit
 *                       for a log line or the close reason sent to the
 *                       client; left untouched on success.
 *
 * Returns 0, SFU_ETOKEN (malformed / bad signature / wrong alg / missing or
 * mistyped claims / wrong iss or aud / invalid ids), SFU_EEXPIRED (outside
 * the validity window: exp passed, or nbf or iat too far in the future),
 * SFU_EWRONGROOM (valid, but for another room), SFU_EINVAL (secret too short
 * or too long) or SFU_ENOMEM. Checks run in that order, so a token that is
 * both expired and for another room reports SFU_EEXPIRED.
 */
int sfu_token_verify(const uint8_t *secret, size_t secret_len,
                     const char *token, const char *expect_room, int64_t now,
                     sfu_token_claims_t *out, const char **err_desc);

/*
 * Claims to a JSON-ish validation helper: returns 1 if s is a valid id per
 * the rule above (1..SFU_TOKEN_MAX_ID bytes, each one of A-Z a-z 0-9 _ . @ :
 * -), else 0. NULL is not valid. Used by verify for "room" and "sub", and by
 * the HTTP routes to check room ids in URLs before any token is involved.
 */
int sfu_token_valid_id(const char *s);

#endif
