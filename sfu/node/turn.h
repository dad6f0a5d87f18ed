/*
 * turn.h -- TURN credentials for clients, in the TURN REST API scheme that
 * coturn checks with `use-auth-secret` and `static-auth-secret`:
 *
 *   username   = "<expiry, Unix seconds>:<identity>"
 *   credential = base64(HMAC-SHA1(secret, username))
 *
 * sfud holds the secret and mints a fresh pair for every join; the TURN
 * server recomputes the credential from the username and refuses it once
 * the expiry has passed. Nothing is stored and nothing is shared with the
 * TURN server but the secret. Pure functions of their arguments: any
 * thread, no I/O.
 */
#ifndef SFU_TURN_H
#define SFU_TURN_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define SFU_TURN_MAX_URLS 8        /* URLs in turn_urls */
#define SFU_TURN_MAX_URL 255       /* bytes of one URL */
#define SFU_TURN_MIN_SECRET 16     /* bytes of turn_secret */
#define SFU_TURN_CREDENTIAL_LEN 28 /* base64 of the 20 bytes of an HMAC-SHA1 */

/*
 * Checks turn_urls (comma-separated, spaces around commas allowed) and
 * turn_secret together: every URL is turn:HOST[:PORT][?transport=udp|tcp]
 * or turns:HOST[:PORT][?transport=tcp] (RFC 7065), at most
 * SFU_TURN_MAX_URLS of them, and with any URL the secret has at least
 * SFU_TURN_MIN_SECRET bytes. No URL (an empty list) means no TURN and is
 * valid. 0, or -1 with a reason naming the setting in `err`.
 */
int sfu_turn_check(const char *urls, const char *secret, char *err, size_t errlen);

/* Writes "<expiry_s>:<identity>" into buf. Its length, or SFU_E2BIG. */
int sfu_turn_username(char *buf, size_t cap, int64_t expiry_s, const char *identity);

/* Writes base64(HMAC-SHA1(secret, username)) and a NUL into out (cap >
 * SFU_TURN_CREDENTIAL_LEN). Its length (SFU_TURN_CREDENTIAL_LEN), or
 * SFU_E2BIG, or SFU_EINVAL for a NULL argument. */
int sfu_turn_credential(const char *secret, const char *username, char *out, size_t cap);

/*
 * The `ice_servers` of a welcome (docs/signaling.md): one entry
 * {"urls": [...], "username", "credential"} whose credentials let
 * `identity` allocate until now_s + ttl_s. NULL when `urls` lists no URL
 * (TURN is not configured) or memory ran out. A new reference. Assumes
 * sfu_turn_check() accepted urls and secret.
 */
json_t *sfu_turn_ice_servers(const char *urls, const char *secret, int ttl_s,
                             const char *identity, int64_t now_s);

#endif
