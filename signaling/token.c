/*
 * token.c -- minting and verifying join tokens (HS256 JWTs) with libjwt.
 *
 * A join token is the only thing standing between the Internet and a seat
 * in a room, so verification is written to refuse first and parse later.
 * It runs as a pipeline in which every stage only sees input the previous
 * stages accepted:
 *
 *   1. size      the string is at most SFU_TOKEN_MAX_LEN bytes; nothing
 *                longer is even scanned past that bound.
 *   2. shape     exactly three dot-separated parts, each strict unpadded
 *                base64url: alphabet only, no '=', no length of 1 mod 4,
 *                unused low bits zero. Every token therefore has exactly
 *                one spelling, and libjwt's lax decoder (the Debian build
 *                uses libb64, which skips characters it does not know)
 *                never sees anything it could read differently from us.
 *   3. header    decoded here, parsed with duplicate keys refused (so
 *                {"alg":"none","alg":"HS256"} cannot mean two things), and
 *                "alg" must be exactly "HS256". libjwt compares algorithm
 *                names case-insensitively and accepts HS384/HS512 with the
 *                same key; we do neither. "crit" is refused (RFC 7515 4.1.11:
 *                we understand no extensions), "typ" may be absent or "JWT".
 *   4. signature the third part must be 43 characters (32 bytes): an empty
 *                one is the unsigned-HS256 attack. We compute HMAC-SHA256
 *                over "header.payload" ourselves and compare in constant
 *                time with CRYPTO_memcmp.
 *   5. libjwt    jwt_decode() with the key checks the signature a second
 *                time and parses the claims; jwt_get_alg() must say HS256.
 *                Two independent checks cost about a microsecond and mean a
 *                regression in either (one of the Debian patches for
 *                CVE-2024-25189 compared no bytes at all) cannot let a
 *                forged token in on its own.
 *   6. claims    read back as one JSON object (jwt_get_grants_json(NULL);
 *                libjwt's per-grant getters cannot tell "absent" from
 *                "wrong type" without errno games) and checked for type and
 *                range: iss, aud, sub, room, jti, iat, exp required, nbf,
 *                name, grants optional. Unknown claims are ignored.
 *   7. time      exp > now (no leeway: the control plane picks the
 *                lifetime), nbf and iat <= now + 30 s for clock skew.
 *   8. room      equal to the room the client asked for.
 *
 * A failure at any stage maps to one SFU_E* code and one static string.
 * Stages 1-5 are where hostile input lands; the fuzz target re-signs its
 * input so stages 6-8 are reached as well.
 *
 * Minting builds the claims with jansson and hands them to libjwt in one
 * jwt_add_grants_json() call, the only way libjwt 1.10 takes a nested
 * object such as "grants" and 64-bit integers on every platform. All four
 * grant booleans are always written: a reader never has to know the
 * default. The jti is 16 random bytes (sfu_random_hex) in lowercase hex.
 *
 * Times are int64 seconds, limited to 0..TIME_MAX (the year 9999) on both
 * sides, so `now + LEEWAY` style arithmetic is written as `t - LEEWAY` on a
 * bounded claim and never overflows whatever `now` the caller passes.
 * Memory: verify allocates only inside libjwt and jansson (the token copy,
 * the claims JSON) and frees it all before returning; the decoded header
 * lives in a stack buffer bounded by SFU_TOKEN_MAX_LEN.
 */
#include <jansson.h>
#include <jwt.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sfu/base/sfu.h"
#include "signaling/token.h"

#define MIN_SECRET 32                  /* bytes; RFC 7518 3.2 for HS256 */
#define LEEWAY 30                      /* seconds of skew for nbf, iat */
#define TIME_MAX INT64_C(253402300799) /* 9999-12-31T23:59:59Z */
#define SIG_LEN 32                     /* HMAC-SHA256 output */
#define SIG_B64_LEN 43                 /* its unpadded base64url spelling */
#define ISSUER "sfu"
#define AUDIENCE "sfu-room"

/* ---- character classes ------------------------------------------------ */

static int id_char(unsigned char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
         (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '@' ||
         ch == ':' || ch == '-';
}

int sfu_token_valid_id(const char *s) {
  size_t i;

  if (!s) return 0;
  for (i = 0; s[i]; i++)
    if (i >= SFU_TOKEN_MAX_ID || !id_char((unsigned char)s[i])) return 0;
  return i > 0;
}

/* 32 lowercase hex digits and the terminator. */
static int valid_jti(const char *s) {
  for (int i = 0; i < 32; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return 0;
  return s[32] == '\0';
}

/*
 * Well-formed UTF-8 per RFC 3629: no overlong forms, no surrogates, nothing
 * above U+10FFFF. jansson refuses anything else when it builds a string, and
 * we want SFU_EINVAL for that, not an allocation failure.
 */
static int valid_utf8(const unsigned char *s, size_t len) {
  size_t i = 0;

  while (i < len) {
    unsigned char b = s[i];
    size_t n;
    uint32_t cp;

    if (b < 0x80) {
      i++;
      continue;
    }
    if (b >= 0xc2 && b <= 0xdf) {
      n = 1;
      cp = b & 0x1f;
    } else if (b >= 0xe0 && b <= 0xef) {
      n = 2;
      cp = b & 0x0f;
    } else if (b >= 0xf0 && b <= 0xf4) {
      n = 3;
      cp = b & 0x07;
    } else {
      return 0;
    }
    if (len - i <= n) return 0;
    for (size_t k = 1; k <= n; k++) {
      if ((s[i + k] & 0xc0) != 0x80) return 0;
      cp = cp << 6 | (s[i + k] & 0x3f);
    }
    if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000)) return 0;
    if ((cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) return 0;
    i += n + 1;
  }
  return 1;
}

/* ---- base64url -------------------------------------------------------- */

static int b64url_val(unsigned char ch) {
  if (ch >= 'A' && ch <= 'Z') return ch - 'A';
  if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
  if (ch >= '0' && ch <= '9') return ch - '0' + 52;
  if (ch == '-') return 62;
  if (ch == '_') return 63;
  return -1;
}

/*
 * Decodes `len` characters of unpadded base64url (RFC 4648 section 5, JWS
 * style) into `out`, which must hold len * 3 / 4 bytes. Returns the number
 * of bytes written, or -1 for a character outside the alphabet, a length of
 * 1 mod 4 (no byte ends there), or spare bits that are not zero (a second
 * spelling of the same bytes).
 */
static long b64url_decode(const char *s, size_t len, uint8_t *out) {
  uint32_t acc = 0;
  int bits = 0;
  long n = 0;

  if (len % 4 == 1) return -1;
  for (size_t i = 0; i < len; i++) {
    int v = b64url_val((unsigned char)s[i]);
    if (v < 0) return -1;
    acc = (acc << 6 | (uint32_t)v) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[n++] = (uint8_t)(acc >> bits);
    }
  }
  if (acc & ((1u << bits) - 1)) return -1;
  return n;
}

/* ---- verify: stages 3 and 4 ------------------------------------------- */

/* Stage 3. `hdr` is the decoded header, not NUL-terminated. */
static int check_header(const uint8_t *hdr, size_t len, const char **why) {
  json_t *h, *alg, *typ;
  int rv = SFU_ETOKEN;

  h = json_loadb((const char *)hdr, len, JSON_REJECT_DUPLICATES, NULL);
  if (!json_is_object(h)) {
    *why = "malformed header JSON";
    goto out;
  }
  alg = json_object_get(h, "alg");
  if (!json_is_string(alg)) {
    *why = "header has no alg";
    goto out;
  }
  if (strcmp(json_string_value(alg), "HS256") != 0) {
    *why = strcasecmp(json_string_value(alg), "none") == 0
               ? "unsigned token (alg none)"
               : "algorithm not allowed";
    goto out;
  }
  typ = json_object_get(h, "typ");
  if (typ && !(json_is_string(typ) &&
               strcasecmp(json_string_value(typ), "JWT") == 0)) {
    *why = "header typ is not JWT";
    goto out;
  }
  if (json_object_get(h, "crit")) {
    *why = "header has crit extensions";
    goto out;
  }
  rv = 0;
out:
  json_decref(h);
  return rv;
}

/* Stage 4. `signed_len` bytes of `token` are "header.payload". */
static int check_signature(const uint8_t *secret, size_t secret_len,
                           const char *token, size_t signed_len,
                           const uint8_t sig[SIG_LEN]) {
  uint8_t mac[EVP_MAX_MD_SIZE];
  unsigned mac_len = 0;

  if (!HMAC(EVP_sha256(), secret, (int)secret_len, (const uint8_t *)token,
            signed_len, mac, &mac_len) ||
      mac_len != SIG_LEN)
    return SFU_ENOMEM;
  return CRYPTO_memcmp(mac, sig, SIG_LEN) == 0 ? 0 : SFU_ETOKEN;
}

/* ---- verify: stage 6 -------------------------------------------------- */

/*
 * Copies string claim `key` into dst[cap]. Absent: "" if optional, else an
 * error. The value must fit with its terminator and hold no NUL byte (JSON
 * can spell one as \u0000).
 */
static int get_str(json_t *root, const char *key, int required, char *dst,
                   size_t cap) {
  json_t *v = json_object_get(root, key);
  size_t len;

  dst[0] = '\0';
  if (!v) return required ? -1 : 0;
  if (!json_is_string(v)) return -1;
  len = json_string_length(v);
  if (len >= cap || strlen(json_string_value(v)) != len) return -1;
  memcpy(dst, json_string_value(v), len + 1);
  return 0;
}

/* Integer NumericDate claim in min..TIME_MAX; absent is 0 if optional. */
static int get_time(json_t *root, const char *key, int required, int64_t min,
                    int64_t *dst) {
  json_t *v = json_object_get(root, key);
  json_int_t t;

  *dst = 0;
  if (!v) return required ? -1 : 0;
  if (!json_is_integer(v)) return -1;
  t = json_integer_value(v);
  if (t < min || t > TIME_MAX) return -1;
  *dst = (int64_t)t;
  return 0;
}

/* "aud" is a string or an array of strings (RFC 7519 4.1.3). */
static int aud_ok(json_t *aud) {
  size_t i;
  json_t *v;

  if (json_is_string(aud)) return strcmp(json_string_value(aud), AUDIENCE) == 0;
  if (!json_is_array(aud)) return 0;
  json_array_foreach(aud, i, v) {
    if (json_is_string(v) && strcmp(json_string_value(v), AUDIENCE) == 0)
      return 1;
  }
  return 0;
}

static int get_grants(json_t *root, unsigned *dst) {
  static const struct {
    const char *key;
    unsigned bit;
  } names[] = {
      {"publish", SFU_GRANT_PUBLISH},
      {"subscribe", SFU_GRANT_SUBSCRIBE},
      {"publish_data", SFU_GRANT_PUBLISH_DATA},
      {"admin", SFU_GRANT_ADMIN},
  };
  json_t *g = json_object_get(root, "grants");

  *dst = 0;
  if (!g) {
    *dst = SFU_GRANT_PUBLISH | SFU_GRANT_SUBSCRIBE;
    return 0;
  }
  if (!json_is_object(g)) return -1;
  for (size_t i = 0; i < SFU_ARRAY_SIZE(names); i++) {
    json_t *v = json_object_get(g, names[i].key);
    if (!v) continue;
    if (!json_is_boolean(v)) return -1;
    if (json_is_true(v)) *dst |= names[i].bit;
  }
  return 0;
}

/* Stage 6: types, presence, iss/aud, id syntax. Times are checked later. */
static int read_claims(json_t *root, sfu_token_claims_t *c, const char **why) {
  char iss[sizeof(ISSUER)];
  json_t *aud;

  if (!json_is_object(root)) {
    *why = "claims are not a JSON object";
    return SFU_ETOKEN;
  }
  if (get_str(root, "iss", 1, iss, sizeof(iss)) || strcmp(iss, ISSUER)) {
    *why = "wrong or missing iss";
    return SFU_ETOKEN;
  }
  aud = json_object_get(root, "aud");
  if (!aud || !aud_ok(aud)) {
    *why = "wrong or missing aud";
    return SFU_ETOKEN;
  }
  if (get_str(root, "sub", 1, c->identity, sizeof(c->identity)) ||
      !sfu_token_valid_id(c->identity)) {
    *why = "missing or invalid sub";
    return SFU_ETOKEN;
  }
  if (get_str(root, "room", 1, c->room, sizeof(c->room)) ||
      !sfu_token_valid_id(c->room)) {
    *why = "missing or invalid room";
    return SFU_ETOKEN;
  }
  if (get_str(root, "name", 0, c->name, sizeof(c->name))) {
    *why = "invalid name";
    return SFU_ETOKEN;
  }
  if (get_str(root, "jti", 1, c->jti, sizeof(c->jti)) || !valid_jti(c->jti)) {
    *why = "missing or invalid jti";
    return SFU_ETOKEN;
  }
  if (get_time(root, "iat", 1, 1, &c->iat) ||
      get_time(root, "exp", 1, 1, &c->exp) ||
      get_time(root, "nbf", 0, 0, &c->nbf)) {
    *why = "missing or invalid iat/exp/nbf";
    return SFU_ETOKEN;
  }
  /* The same rules mint applies, so every token that verifies can be
   * minted again from its claims (the fuzz target checks this). */
  if (c->exp <= c->iat || (c->nbf && c->nbf >= c->exp)) {
    *why = "exp is not after iat and nbf";
    return SFU_ETOKEN;
  }
  if (get_grants(root, &c->grants)) {
    *why = "grants must be an object of booleans";
    return SFU_ETOKEN;
  }
  return 0;
}

/* ---- verify ----------------------------------------------------------- */

int sfu_token_verify(const uint8_t *secret, size_t secret_len,
                     const char *token, const char *expect_room, int64_t now,
                     sfu_token_claims_t *out, const char **err_desc) {
  uint8_t buf[SFU_TOKEN_MAX_LEN];
  uint8_t sig[SIG_LEN];
  sfu_token_claims_t c;
  const char *why = "invalid token";
  const char *dot1, *dot2, *payload, *sigpart;
  char *json = NULL;
  json_t *root = NULL;
  jwt_t *jwt = NULL;
  size_t len;
  long n;
  int rv = SFU_ETOKEN;

  memset(&c, 0, sizeof(c));
  if (!secret || secret_len < MIN_SECRET || secret_len > INT_MAX) {
    why = "secret shorter than 32 bytes";
    rv = SFU_EINVAL;
    goto out;
  }

  /* 1. size */
  if (!token) {
    why = "no token";
    goto out;
  }
  len = strnlen(token, SFU_TOKEN_MAX_LEN + 1);
  if (len > SFU_TOKEN_MAX_LEN) {
    why = "token too long";
    goto out;
  }

  /* 2. shape: header.payload.signature, strict base64url each */
  dot1 = memchr(token, '.', len);
  dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
  if (!dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token))) {
    why = "not three dot-separated parts";
    goto out;
  }
  payload = dot1 + 1;
  sigpart = dot2 + 1;
  if (dot1 == token || dot2 == payload) {
    why = "empty header or payload";
    goto out;
  }
  if (b64url_decode(payload, (size_t)(dot2 - payload), buf) < 0) {
    why = "payload is not base64url";
    goto out;
  }
  n = b64url_decode(token, (size_t)(dot1 - token), buf);
  if (n < 0) {
    why = "header is not base64url";
    goto out;
  }

  /* 3. header */
  rv = check_header(buf, (size_t)n, &why);
  if (rv) goto out;
  rv = SFU_ETOKEN;

  /* 4. signature */
  if (*sigpart == '\0') {
    why = "unsigned token";
    goto out;
  }
  if (strlen(sigpart) != SIG_B64_LEN || b64url_decode(sigpart, SIG_B64_LEN,
                                                      sig) != SIG_LEN) {
    why = "bad signature encoding";
    goto out;
  }
  rv = check_signature(secret, secret_len, token, (size_t)(dot2 - token), sig);
  if (rv) {
    why = rv == SFU_ENOMEM ? "HMAC failed" : "bad signature";
    goto out;
  }

  /* 5. libjwt: second signature check and claim parsing. Its header rules
   * are a subset of ours and the MAC already matched, so a refusal here
   * means the payload is not JSON. */
  rv = jwt_decode(&jwt, token, secret, (int)secret_len);
  if (rv) {
    why = rv == ENOMEM ? "out of memory" : "claims are not valid JSON";
    rv = rv == ENOMEM ? SFU_ENOMEM : SFU_ETOKEN;
    goto out;
  }
  rv = SFU_ETOKEN;
  if (jwt_get_alg(jwt) != JWT_ALG_HS256) {
    why = "algorithm not allowed";
    goto out;
  }

  /* 6. claims */
  json = jwt_get_grants_json(jwt, NULL);
  root = json ? json_loads(json, 0, NULL) : NULL;
  rv = read_claims(root, &c, &why);
  if (rv) goto out;

  /* 7. time; claims are <= TIME_MAX so the subtractions cannot overflow */
  rv = SFU_EEXPIRED;
  if (c.exp <= now) {
    why = "token expired";
    goto out;
  }
  if (c.nbf - LEEWAY > now) {
    why = "token not yet valid";
    goto out;
  }
  if (c.iat - LEEWAY > now) {
    why = "token issued in the future";
    goto out;
  }

  /* 8. room */
  if (expect_room && strcmp(c.room, expect_room) != 0) {
    why = "token is for another room";
    rv = SFU_EWRONGROOM;
    goto out;
  }
  rv = 0;

out:
  json_decref(root);
  free(json);
  jwt_free(jwt);
  if (out) {
    if (rv == 0)
      *out = c;
    else
      memset(out, 0, sizeof(*out));
  }
  if (rv && err_desc) *err_desc = why;
  return rv;
}

/* ---- mint ------------------------------------------------------------- */

/* Everything mint refuses with SFU_EINVAL, before any side effect. */
static int mint_args_ok(const sfu_token_claims_t *c) {
  const char *nul = memchr(c->name, '\0', sizeof(c->name));

  if (!memchr(c->room, '\0', sizeof(c->room)) ||
      !memchr(c->identity, '\0', sizeof(c->identity)) || !nul ||
      !memchr(c->jti, '\0', sizeof(c->jti)))
    return 0;
  if (!sfu_token_valid_id(c->room) || !sfu_token_valid_id(c->identity))
    return 0;
  if (!valid_utf8((const unsigned char *)c->name, (size_t)(nul - c->name)))
    return 0;
  if (c->jti[0] && !valid_jti(c->jti)) return 0;
  if (c->iat <= 0 || c->exp <= c->iat || c->exp > TIME_MAX) return 0;
  if (c->nbf < 0 || (c->nbf && c->nbf >= c->exp)) return 0;
  if (c->grants & ~(unsigned)(SFU_GRANT_PUBLISH | SFU_GRANT_SUBSCRIBE |
                              SFU_GRANT_PUBLISH_DATA | SFU_GRANT_ADMIN))
    return 0;
  return 1;
}

int sfu_token_mint(const uint8_t *secret, size_t secret_len,
                   sfu_token_claims_t *c, char **out) {
  json_t *claims = NULL;
  char *payload = NULL;
  char *tok = NULL;
  jwt_t *jwt = NULL;
  unsigned g;
  int rv;

  if (!out) return SFU_EINVAL;
  *out = NULL;
  if (!secret || secret_len < MIN_SECRET || secret_len > INT_MAX || !c ||
      !mint_args_ok(c))
    return SFU_EINVAL;
  if (!c->jti[0]) sfu_random_hex(c->jti, "", 16); /* 32 digits + NUL */

  rv = SFU_ENOMEM;
  g = c->grants;
  claims = json_pack(
      "{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:{s:b, s:b, s:b, s:b}}",
      "iss", ISSUER, "aud", AUDIENCE, "sub", c->identity, "room", c->room,
      "jti", c->jti, "iat", (json_int_t)c->iat, "exp", (json_int_t)c->exp,
      "grants", "publish", !!(g & SFU_GRANT_PUBLISH), "subscribe",
      !!(g & SFU_GRANT_SUBSCRIBE), "publish_data",
      !!(g & SFU_GRANT_PUBLISH_DATA), "admin", !!(g & SFU_GRANT_ADMIN));
  if (!claims) goto out;
  if (c->name[0] &&
      json_object_set_new(claims, "name", json_string(c->name)) != 0)
    goto out;
  if (c->nbf &&
      json_object_set_new(claims, "nbf", json_integer((json_int_t)c->nbf)))
    goto out;
  payload = json_dumps(claims, JSON_COMPACT | JSON_SORT_KEYS);
  if (!payload) goto out;

  if (jwt_new(&jwt) || jwt_set_alg(jwt, JWT_ALG_HS256, secret,
                                   (int)secret_len) ||
      jwt_add_grants_json(jwt, payload))
    goto out;
  /* libjwt 1.10 allocates with plain malloc: the caller's free() fits. */
  tok = jwt_encode_str(jwt);
  if (!tok) goto out;
  if (strlen(tok) > SFU_TOKEN_MAX_LEN) { /* cannot happen with the limits */
    free(tok);
    rv = SFU_EINVAL;
    goto out;
  }
  *out = tok;
  rv = 0;
out:
  jwt_free(jwt);
  free(payload);
  json_decref(claims);
  return rv;
}
