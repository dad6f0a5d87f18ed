/*
 * test_token.c -- join tokens: mint/verify roundtrips, every refusal path,
 * and interop with tokens built outside libjwt.
 *
 * Hostile tokens are built by forge(), a second HS256 implementation made of
 * OpenSSL HMAC and a base64url encoder written here, so a test can sign any
 * header and payload bytes it likes (alg none, HS512, duplicate keys, claims
 * of the wrong type). One fixed token comes from Python's hmac module (see
 * docs/tokens.md) and pins the wire format against a third implementation.
 * Every test asserts the exact SFU_E* code, and where two refusals share a
 * code, the err_desc string that tells them apart.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "sfu/base/sfu.h"
#include "signaling/token.h"

#define NOW INT64_C(1700000000)
#define FAR INT64_C(4102444800) /* 2100-01-01 */

static const uint8_t SECRET[] = "0123456789abcdef0123456789abcdef-test";
#define SECRET_LEN (sizeof(SECRET) - 1)

/* Made by python3 (hmac, hashlib, base64, json only), see docs/tokens.md. */
static const uint8_t PY_SECRET[] = "independent-python-secret-for-tests-0001";
static const char PY_TOKEN[] =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJpc3MiOiJzZnUiLCJhdWQiOiJzZnUtcm9vbSIsInN1YiI6ImJvYkBleGFtcGxlLmNvbSIs"
    "InJvb20iOiJyb29tLTQyIiwibmFtZSI6IkJvYiBcdWQ4M2NcdWRmODkgXHUwMGRjblx1MDBl"
    "ZmNcdTAwZjhkXHUwMGU5IiwianRpIjoiMDAxMTIyMzM0NDU1NjY3Nzg4OTlhYWJiY2NkZGVl"
    "ZmYiLCJpYXQiOjE3MDAwMDAwMDAsIm5iZiI6MTcwMDAwMDAwMCwiZXhwIjo0MTAyNDQ0ODAw"
    "LCJncmFudHMiOnsicHVibGlzaCI6ZmFsc2UsInN1YnNjcmliZSI6dHJ1ZSwicHVibGlzaF9k"
    "YXRhIjp0cnVlfX0."
    "9WPw3vij7CypgCaI1rAhRcHrO7mA1-zQ6XYmquc1Mbo";

static const char HS256_HDR[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";

/* ---- helpers ---------------------------------------------------------- */

static size_t b64url(const uint8_t *in, size_t len, char *out) {
  static const char abc[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  size_t o = 0, i;

  for (i = 0; i + 2 < len; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    out[o++] = abc[v >> 18];
    out[o++] = abc[(v >> 12) & 63];
    out[o++] = abc[(v >> 6) & 63];
    out[o++] = abc[v & 63];
  }
  if (len - i == 1) {
    uint32_t v = (uint32_t)in[i] << 16;
    out[o++] = abc[v >> 18];
    out[o++] = abc[(v >> 12) & 63];
  } else if (len - i == 2) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
    out[o++] = abc[v >> 18];
    out[o++] = abc[(v >> 12) & 63];
    out[o++] = abc[(v >> 6) & 63];
  }
  out[o] = '\0';
  return o;
}

/*
 * Signs header and payload JSON with HMAC(md) under key; md NULL leaves the
 * signature part empty. Returns a malloc'd token.
 */
static char *forge_with(const EVP_MD *md, const uint8_t *key, size_t key_len,
                        const char *hdr, const char *payload) {
  size_t hl = strlen(hdr), pl = strlen(payload);
  char *t = malloc((hl + pl) * 2 + 200);
  size_t n;

  assert_non_null(t);
  n = b64url((const uint8_t *)hdr, hl, t);
  t[n++] = '.';
  n += b64url((const uint8_t *)payload, pl, t + n);
  t[n] = '\0';
  if (md) {
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned mac_len = 0;
    assert_non_null(HMAC(md, key, (int)key_len, (const uint8_t *)t, n, mac,
                         &mac_len));
    t[n++] = '.';
    b64url(mac, mac_len, t + n);
  } else {
    t[n++] = '.';
    t[n] = '\0';
  }
  return t;
}

static char *forge(const char *payload) {
  return forge_with(EVP_sha256(), SECRET, SECRET_LEN, HS256_HDR, payload);
}

/* A payload with every required claim; extra is spliced in before the
 * closing brace (start it with a comma). */
static char *payload_with(const char *extra) {
  static char buf[8192];
  snprintf(buf, sizeof(buf),
           "{\"iss\":\"sfu\",\"aud\":\"sfu-room\",\"sub\":\"alice\","
           "\"room\":\"r1\",\"jti\":\"0123456789abcdef0123456789abcdef\","
           "\"iat\":%lld,\"exp\":%lld%s}",
           (long long)NOW, (long long)(NOW + 600), extra);
  return buf;
}

static void base_claims(sfu_token_claims_t *c) {
  memset(c, 0, sizeof(*c));
  strcpy(c->room, "r1");
  strcpy(c->identity, "alice");
  c->iat = NOW;
  c->exp = NOW + 600;
  c->grants = SFU_GRANT_PUBLISH | SFU_GRANT_SUBSCRIBE;
}

static char *mint_ok(sfu_token_claims_t *c) {
  char *t = NULL;
  assert_int_equal(sfu_token_mint(SECRET, SECRET_LEN, c, &t), 0);
  assert_non_null(t);
  return t;
}

static int verify(const char *t, const char *room, int64_t now,
                  sfu_token_claims_t *out, const char **why) {
  return sfu_token_verify(SECRET, SECRET_LEN, t, room, now, out, why);
}

/* Verifies a forged token and checks code and reason. */
static void expect_forged(const char *payload, int code, const char *why) {
  char *t = forge(payload);
  const char *desc = NULL;
  assert_int_equal(verify(t, "r1", NOW, NULL, &desc), code);
  if (why) assert_string_equal(desc, why);
  free(t);
}

/* ---- tests ------------------------------------------------------------ */

static void roundtrip_all_claims(void **state) {
  sfu_token_claims_t c, v;
  const char *why = NULL;
  char *t;

  base_claims(&c);
  strcpy(c.room, "Room_1.a@b:c-d");
  strcpy(c.identity, "user-42@example.com");
  strcpy(c.name, "Zo\xc3\xab \xf0\x9f\x8e\x89 \"quoted\"\\");
  c.nbf = NOW - 5;
  c.grants = SFU_GRANT_PUBLISH | SFU_GRANT_SUBSCRIBE | SFU_GRANT_PUBLISH_DATA |
             SFU_GRANT_ADMIN;
  t = mint_ok(&c);
  assert_int_equal(strlen(c.jti), 32);
  assert_int_equal(strspn(c.jti, "0123456789abcdef"), 32);

  assert_int_equal(verify(t, "Room_1.a@b:c-d", NOW, &v, &why), 0);
  assert_null(why);
  assert_string_equal(v.room, c.room);
  assert_string_equal(v.identity, c.identity);
  assert_string_equal(v.name, c.name);
  assert_string_equal(v.jti, c.jti);
  assert_int_equal(v.iat, NOW);
  assert_int_equal(v.nbf, NOW - 5);
  assert_int_equal(v.exp, NOW + 600);
  assert_int_equal(v.grants, c.grants);
  free(t);

  /* Optional claims left out, a caller-chosen jti, no grants at all. */
  base_claims(&c);
  strcpy(c.jti, "ffffffffffffffffffffffffffffffff");
  c.grants = 0;
  t = mint_ok(&c);
  assert_string_equal(c.jti, "ffffffffffffffffffffffffffffffff");
  assert_int_equal(verify(t, NULL, NOW, &v, NULL), 0);
  assert_string_equal(v.name, "");
  assert_int_equal(v.nbf, 0);
  assert_int_equal(v.grants, 0);
  assert_string_equal(v.jti, "ffffffffffffffffffffffffffffffff");
  free(t);

  /* Each grant on its own survives the trip. */
  for (unsigned g = 1; g <= 8; g <<= 1) {
    base_claims(&c);
    c.grants = g;
    t = mint_ok(&c);
    assert_int_equal(verify(t, "r1", NOW, &v, NULL), 0);
    assert_int_equal(v.grants, g);
    free(t);
  }
}

static void jti_is_random(void **state) {
  sfu_token_claims_t a, b;
  char *ta, *tb;

  base_claims(&a);
  base_claims(&b);
  ta = mint_ok(&a);
  tb = mint_ok(&b);
  assert_string_not_equal(a.jti, b.jti);
  assert_string_not_equal(ta, tb);
  free(ta);
  free(tb);
}

static void grants_default_when_absent(void **state) {
  sfu_token_claims_t v;
  char *t = forge(payload_with(""));

  assert_int_equal(verify(t, "r1", NOW, &v, NULL), 0);
  assert_int_equal(v.grants, SFU_GRANT_PUBLISH | SFU_GRANT_SUBSCRIBE);
  free(t);

  /* Present but partial: missing members are false, unknown ones ignored. */
  t = forge(payload_with(",\"grants\":{\"admin\":true,\"future\":1}"));
  assert_int_equal(verify(t, "r1", NOW, &v, NULL), 0);
  assert_int_equal(v.grants, SFU_GRANT_ADMIN);
  free(t);

  expect_forged(payload_with(",\"grants\":{\"publish\":1}"), SFU_ETOKEN,
                "grants must be an object of booleans");
  expect_forged(payload_with(",\"grants\":[\"publish\"]"), SFU_ETOKEN,
                "grants must be an object of booleans");
}

static void expired(void **state) {
  sfu_token_claims_t c, v;
  const char *why = NULL;
  char *t;

  base_claims(&c);
  t = mint_ok(&c);
  /* exp must be strictly after now, with no leeway. */
  assert_int_equal(verify(t, "r1", NOW + 599, NULL, NULL), 0);
  assert_int_equal(verify(t, "r1", NOW + 600, &v, &why), SFU_EEXPIRED);
  assert_string_equal(why, "token expired");
  assert_string_equal(v.room, ""); /* out is zeroed on failure */
  assert_int_equal(verify(t, "r1", NOW + 86400, NULL, NULL), SFU_EEXPIRED);
  /* Expired and for another room: expiry is reported. */
  assert_int_equal(verify(t, "r2", NOW + 600, NULL, NULL), SFU_EEXPIRED);
  free(t);
}

static void not_yet_valid(void **state) {
  sfu_token_claims_t c;
  const char *why = NULL;
  char *t;

  base_claims(&c);
  c.nbf = NOW + 100;
  t = mint_ok(&c);
  assert_int_equal(verify(t, "r1", NOW, NULL, &why), SFU_EEXPIRED);
  assert_string_equal(why, "token not yet valid");
  assert_int_equal(verify(t, "r1", NOW + 69, NULL, NULL), SFU_EEXPIRED);
  assert_int_equal(verify(t, "r1", NOW + 70, NULL, NULL), 0); /* 30 s skew */
  free(t);

  /* iat in the future beyond the leeway, without nbf. */
  base_claims(&c);
  c.iat = NOW + 31;
  t = mint_ok(&c);
  assert_int_equal(verify(t, "r1", NOW, NULL, &why), SFU_EEXPIRED);
  assert_string_equal(why, "token issued in the future");
  assert_int_equal(verify(t, "r1", NOW + 1, NULL, NULL), 0);
  free(t);
}

static void wrong_room(void **state) {
  sfu_token_claims_t c, v;
  const char *why = NULL;
  char *t;

  base_claims(&c);
  t = mint_ok(&c);
  assert_int_equal(verify(t, "r2", NOW, &v, &why), SFU_EWRONGROOM);
  assert_string_equal(why, "token is for another room");
  assert_int_equal(verify(t, "r", NOW, NULL, NULL), SFU_EWRONGROOM);
  assert_int_equal(verify(t, "r10", NOW, NULL, NULL), SFU_EWRONGROOM);
  assert_int_equal(verify(t, "R1", NOW, NULL, NULL), SFU_EWRONGROOM);
  assert_int_equal(verify(t, "", NOW, NULL, NULL), SFU_EWRONGROOM);
  assert_int_equal(verify(t, NULL, NOW, &v, NULL), 0);
  assert_string_equal(v.room, "r1");
  free(t);
}

static void bad_signature(void **state) {
  static const uint8_t other[] = "another-secret-of-at-least-32-bytes!!";
  sfu_token_claims_t c;
  const char *why = NULL;
  char *t, *sig, *p;
  uint8_t raw[32];

  base_claims(&c);
  t = mint_ok(&c);

  /* A different secret. */
  assert_int_equal(sfu_token_verify(other, sizeof(other) - 1, t, "r1", NOW,
                                    NULL, &why),
                   SFU_ETOKEN);
  assert_string_equal(why, "bad signature");

  /* One bit flipped in each byte of the MAC, re-encoded canonically, so the
   * base64url is well-formed and only the HMAC comparison can catch it. */
  sig = strrchr(t, '.') + 1;
  assert_int_equal(strlen(sig), 43);
  {
    unsigned mac_len = 0;
    assert_non_null(HMAC(EVP_sha256(), SECRET, (int)SECRET_LEN,
                         (const uint8_t *)t, (size_t)(sig - 1 - t), raw,
                         &mac_len));
    assert_int_equal(mac_len, 32);
  }
  for (int i = 0; i < 32; i++) {
    char orig[44];
    memcpy(orig, sig, sizeof(orig));
    raw[i] ^= (uint8_t)(1u << (i % 8));
    b64url(raw, 32, sig);
    raw[i] ^= (uint8_t)(1u << (i % 8));
    why = NULL;
    assert_int_equal(verify(t, "r1", NOW, NULL, &why), SFU_ETOKEN);
    assert_string_equal(why, "bad signature");
    memcpy(sig, orig, sizeof(orig));
  }
  assert_int_equal(verify(t, "r1", NOW, NULL, NULL), 0);

  /* A character swapped in the middle of the signature. */
  sig[20] = sig[20] == 'A' ? 'B' : 'A';
  assert_int_equal(verify(t, "r1", NOW, NULL, &why), SFU_ETOKEN);
  assert_string_equal(why, "bad signature");
  sig[20] = sig[20] == 'A' ? 'B' : 'A';

  /* A byte changed in the payload: still base64url, no longer signed. */
  p = strchr(t, '.') + 5;
  *p = *p == 'A' ? 'B' : 'A';
  assert_int_equal(verify(t, "r1", NOW, NULL, &why), SFU_ETOKEN);
  free(t);

  /* The last character differs only in its two spare bits: the same MAC
   * bytes spelled a second way, which libjwt's decoder would accept. */
  t = mint_ok(&c);
  sig = strrchr(t, '.') + 1;
  {
    static const char abc[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    int v = (int)(strchr(abc, sig[42]) - abc);
    assert_int_equal(v & 3, 0);
    sig[42] = abc[v | 1];
  }
  assert_int_equal(verify(t, "r1", NOW, NULL, &why), SFU_ETOKEN);
  assert_string_equal(why, "bad signature encoding");
  free(t);

  /* Truncated and over-long signatures. */
  t = mint_ok(&c);
  t[strlen(t) - 1] = '\0';
  assert_int_equal(verify(t, "r1", NOW, NULL, &why), SFU_ETOKEN);
  assert_string_equal(why, "bad signature encoding");
  free(t);
}

static void alg_none_refused(void **state) {
  const char *why = NULL;
  char *t;

  /* The classic: alg none, empty signature. */
  t = forge_with(NULL, NULL, 0, "{\"alg\":\"none\",\"typ\":\"JWT\"}",
                 payload_with(""));
  assert_int_equal(verify(t, "r1", NOW, NULL, &why), SFU_ETOKEN);
  assert_string_equal(why, "unsigned token (alg none)");
  free(t);

  /* Spelled differently, without typ. */
  t = forge_with(NULL, NULL, 0, "{\"alg\":\"None\"}", payload_with(""));
  assert_int_equal(verify(t, "r1", NOW, NULL, &why), SFU_ETOKEN);
  free(t);

  /* alg none but carrying a genuine HS256 MAC. */
  t = forge_with(EVP_sha256(), SECRET, SECRET_LEN, "{\"alg\":\"none\"}",
                 payload_with(""));
  assert_int_equal(verify(t, "r1", NOW, NULL, &why), SFU_ETOKEN);
  assert_string_equal(why, "unsigned token (alg none)");
  free(t);

  /* Header says HS256, but there is no signature. */
  t = forge_with(NULL, NULL, 0, HS256_HDR, payload_with(""));
  assert_int_equal(verify(t, "r1", NOW, NULL, &why), SFU_ETOKEN);
  assert_string_equal(why, "unsigned token");
  free(t);

  /* Duplicate alg: libjwt would take the last one; we refuse the header. */
  t = forge_with(EVP_sha256(), SECRET, SECRET_LEN,
                 "{\"alg\":\"none\",\"alg\":\"HS256\"}", payload_with(""));
  assert_int_equal(verify(t, "r1", NOW, NULL, &why), SFU_ETOKEN);
  assert_string_equal(why, "malformed header JSON");
  free(t);

  /* No alg at all. */
  t = forge_with(EVP_sha256(), SECRET, SECRET_LEN, "{\"typ\":\"JWT\"}",
                 payload_with(""));
  assert_int_equal(verify(t, "r1", NOW, NULL, &why), SFU_ETOKEN);
  assert_string_equal(why, "header has no alg");
  free(t);
}

static void other_algs_refused(void **state) {
  const struct {
    const char *hdr;
    const EVP_MD *(*md)(void);
  } cases[] = {
      {"{\"alg\":\"HS512\",\"typ\":\"JWT\"}", EVP_sha512},
      {"{\"alg\":\"HS384\",\"typ\":\"JWT\"}", EVP_sha384},
      {"{\"alg\":\"hs256\",\"typ\":\"JWT\"}", EVP_sha256}, /* libjwt: ok */
      {"{\"alg\":\"RS256\",\"typ\":\"JWT\"}", EVP_sha256},
      {"{\"alg\":\"ES256\",\"typ\":\"JWT\"}", EVP_sha256},
      {"{\"alg\":\"HS256 \",\"typ\":\"JWT\"}", EVP_sha256},
      {"{\"alg\":1,\"typ\":\"JWT\"}", EVP_sha256},
  };

  for (size_t i = 0; i < SFU_ARRAY_SIZE(cases); i++) {
    const char *why = NULL;
    char *t = forge_with(cases[i].md(), SECRET, SECRET_LEN, cases[i].hdr,
                         payload_with(""));
    assert_int_equal(verify(t, "r1", NOW, NULL, &why), SFU_ETOKEN);
    assert_non_null(why);
    if (i < 6) assert_string_equal(why, "algorithm not allowed");
    free(t);
  }
}

static void header_rules(void **state) {
  const char *why = NULL;
  char *t;

  /* typ may be absent (jose and others leave it out) or any case of JWT. */
  t = forge_with(EVP_sha256(), SECRET, SECRET_LEN, "{\"alg\":\"HS256\"}",
                 payload_with(""));
  assert_int_equal(verify(t, "r1", NOW, NULL, NULL), 0);
  free(t);
  t = forge_with(EVP_sha256(), SECRET, SECRET_LEN,
                 "{\"typ\":\"jwt\",\"alg\":\"HS256\",\"kid\":\"k1\"}",
                 payload_with(""));
  assert_int_equal(verify(t, "r1", NOW, NULL, NULL), 0);
  free(t);

  t = forge_with(EVP_sha256(), SECRET, SECRET_LEN,
                 "{\"alg\":\"HS256\",\"typ\":\"JOSE\"}", payload_with(""));
  assert_int_equal(verify(t, "r1", NOW, NULL, &why), SFU_ETOKEN);
  assert_string_equal(why, "header typ is not JWT");
  free(t);

  t = forge_with(EVP_sha256(), SECRET, SECRET_LEN,
                 "{\"alg\":\"HS256\",\"crit\":[\"exp\"]}", payload_with(""));
  assert_int_equal(verify(t, "r1", NOW, NULL, &why), SFU_ETOKEN);
  assert_string_equal(why, "header has crit extensions");
  free(t);
}

static void malformed(void **state) {
  sfu_token_claims_t c;
  const char *why;
  char *good, *t;
  size_t n;

  base_claims(&c);
  good = mint_ok(&c);
  n = strlen(good);
  t = malloc(n + 8);

  /* Not three parts. */
  why = NULL;
  assert_int_equal(verify(NULL, "r1", NOW, NULL, &why), SFU_ETOKEN);
  assert_string_equal(why, "no token");
  assert_int_equal(verify("", "r1", NOW, NULL, &why), SFU_ETOKEN);
  assert_string_equal(why, "not three dot-separated parts");
  assert_int_equal(verify("abc", "r1", NOW, NULL, &why), SFU_ETOKEN);
  assert_string_equal(why, "not three dot-separated parts");
  memcpy(t, good, n + 1);
  *strrchr(t, '.') = '\0'; /* header.payload */
  assert_int_equal(verify(t, "r1", NOW, NULL, &why), SFU_ETOKEN);
  assert_string_equal(why, "not three dot-separated parts");
  snprintf(t, n + 8, "%s.x", good); /* four parts */
  assert_int_equal(verify(t, "r1", NOW, NULL, &why), SFU_ETOKEN);
  assert_string_equal(why, "not three dot-separated parts");
  assert_int_equal(verify("..", "r1", NOW, NULL, &why), SFU_ETOKEN);
  assert_string_equal(why, "empty header or payload");

  /* Bad base64url: foreign characters, padding, impossible length. */
  memcpy(t, good, n + 1);
  strchr(t, '.')[3] = '*';
  assert_int_equal(verify(t, "r1", NOW, NULL, &why), SFU_ETOKEN);
  assert_string_equal(why, "payload is not base64url");
  memcpy(t, good, n + 1);
  t[2] = '+';
  assert_int_equal(verify(t, "r1", NOW, NULL, &why), SFU_ETOKEN);
  assert_string_equal(why, "header is not base64url");
  {
    char *dot = strchr(good, '.');
    size_t hl = (size_t)(dot - good);
    memcpy(t, good, hl);
    memcpy(t + hl, "==", 2);
    memcpy(t + hl + 2, dot, strlen(dot) + 1);
  }
  assert_int_equal(verify(t, "r1", NOW, NULL, &why), SFU_ETOKEN);
  assert_string_equal(why, "header is not base64url");
  assert_int_equal(verify("eyJhb.e30.sig", "r1", NOW, NULL, &why), SFU_ETOKEN);
  assert_string_equal(why, "header is not base64url");
  assert_int_equal(verify("e y.e.s", "r1", NOW, NULL, &why), SFU_ETOKEN);
  free(t);
  free(good);

  /* Header that is not JSON, and signed payloads that are not an object. */
  t = forge_with(EVP_sha256(), SECRET, SECRET_LEN, "HS256", payload_with(""));
  assert_int_equal(verify(t, "r1", NOW, NULL, &why), SFU_ETOKEN);
  assert_string_equal(why, "malformed header JSON");
  free(t);
  expect_forged("not json", SFU_ETOKEN, NULL);
  expect_forged("{\"sub\":\"alice\"", SFU_ETOKEN, NULL);
  expect_forged("[1,2,3]", SFU_ETOKEN, "claims are not a JSON object");
  expect_forged("{}", SFU_ETOKEN, "wrong or missing iss");

  /* Each required claim missing in turn. */
  static const char *const fmt =
      "{%s\"iss\":\"sfu\",\"aud\":\"sfu-room\",\"sub\":\"alice\",\"room\":"
      "\"r1\",\"jti\":\"0123456789abcdef0123456789abcdef\",\"iat\":%lld,"
      "\"exp\":%lld}";
  const struct {
    const char *claim;
    const char *why;
  } req[] = {
      {"\"sub\":\"alice\",", "missing or invalid sub"},
      {"\"room\":\"r1\",", "missing or invalid room"},
      {"\"exp\":", "missing or invalid iat/exp/nbf"},
      {"\"iat\":", "missing or invalid iat/exp/nbf"},
      {"\"iss\":\"sfu\",", "wrong or missing iss"},
      {"\"aud\":\"sfu-room\",", "wrong or missing aud"},
      {"\"jti\":\"0123456789abcdef0123456789abcdef\",",
       "missing or invalid jti"},
  };
  for (size_t i = 0; i < SFU_ARRAY_SIZE(req); i++) {
    char full[1024], cut[1024];
    char *at;
    snprintf(full, sizeof(full), fmt, "", (long long)NOW,
             (long long)(NOW + 600));
    at = strstr(full, req[i].claim);
    assert_non_null(at);
    if (at[strlen(req[i].claim) - 1] == ':') {
      /* a number claim: cut "name":123 plus the comma or brace before */
      char *end = at + strlen(req[i].claim);
      while (*end >= '0' && *end <= '9') end++;
      if (*end == ',') end++;
      else if (at[-1] == ',') at--;
      snprintf(cut, sizeof(cut), "%.*s%s", (int)(at - full), full, end);
    } else {
      snprintf(cut, sizeof(cut), "%.*s%s", (int)(at - full), full,
               at + strlen(req[i].claim));
    }
    expect_forged(cut, SFU_ETOKEN, req[i].why);
  }

  /* Present, wrong type or value. */
  expect_forged(payload_with(",\"iss\":\"other\""), SFU_ETOKEN, NULL);
  expect_forged("{\"iss\":\"sfux\"}", SFU_ETOKEN, "wrong or missing iss");
  expect_forged(
      "{\"iss\":\"sfu\",\"aud\":\"other\",\"sub\":\"a\",\"room\":\"r1\"}",
      SFU_ETOKEN, "wrong or missing aud");
  expect_forged(payload_with(",\"nbf\":\"soon\""), SFU_ETOKEN,
                "missing or invalid iat/exp/nbf");
  expect_forged(payload_with(",\"nbf\":-1"), SFU_ETOKEN,
                "missing or invalid iat/exp/nbf");
  expect_forged(payload_with(",\"name\":42"), SFU_ETOKEN, "invalid name");
  expect_forged(payload_with(",\"name\":null"), SFU_ETOKEN, "invalid name");
  {
    char p[1024];
    snprintf(p, sizeof(p),
             "{\"iss\":\"sfu\",\"aud\":\"sfu-room\",\"sub\":\"alice\","
             "\"room\":\"r1\",\"jti\":\"0123456789abcdef0123456789abcdef\","
             "\"iat\":%lld,\"exp\":%lld.5}",
             (long long)NOW, (long long)(NOW + 600));
    expect_forged(p, SFU_ETOKEN, "missing or invalid iat/exp/nbf");
    snprintf(p, sizeof(p),
             "{\"iss\":\"sfu\",\"aud\":\"sfu-room\",\"sub\":\"alice\","
             "\"room\":\"r1\",\"jti\":\"0123456789ABCDEF0123456789ABCDEF\","
             "\"iat\":%lld,\"exp\":%lld}",
             (long long)NOW, (long long)(NOW + 600));
    expect_forged(p, SFU_ETOKEN, "missing or invalid jti");
    snprintf(p, sizeof(p),
             "{\"iss\":\"sfu\",\"aud\":\"sfu-room\",\"sub\":\"alice\","
             "\"room\":\"r1\",\"jti\":\"0123456789abcdef0123456789abcdef\","
             "\"iat\":%lld,\"exp\":%lld}",
             (long long)NOW, (long long)NOW);
    expect_forged(p, SFU_ETOKEN, "exp is not after iat and nbf");
    snprintf(p, sizeof(p),
             "{\"iss\":\"sfu\",\"aud\":\"sfu-room\",\"sub\":\"alice\","
             "\"room\":\"r1\",\"jti\":\"0123456789abcdef0123456789abcdef\","
             "\"iat\":%lld,\"exp\":%lld,\"nbf\":%lld}",
             (long long)NOW, (long long)(NOW + 600), (long long)(NOW + 600));
    expect_forged(p, SFU_ETOKEN, "exp is not after iat and nbf");
    snprintf(p, sizeof(p),
             "{\"iss\":\"sfu\",\"aud\":\"sfu-room\",\"sub\":\"alice\","
             "\"room\":\"r1\",\"jti\":\"0123456789abcdef0123456789abcdef\","
             "\"iat\":0,\"exp\":%lld}",
             (long long)(NOW + 600));
    expect_forged(p, SFU_ETOKEN, "missing or invalid iat/exp/nbf");
    snprintf(p, sizeof(p),
             "{\"iss\":\"sfu\",\"aud\":\"sfu-room\",\"sub\":\"alice\","
             "\"room\":\"r1\",\"jti\":\"0123456789abcdef0123456789abcdef\","
             "\"iat\":%lld,\"exp\":99999999999999}",
             (long long)NOW);
    expect_forged(p, SFU_ETOKEN, "missing or invalid iat/exp/nbf");
  }
  /* A NUL smuggled into a string as \u0000. */
  expect_forged(payload_with(",\"name\":\"a\\u0000b\""), SFU_ETOKEN, NULL);

  /* aud as an array (RFC 7519 allows it) containing ours is fine. */
  {
    char p[1024];
    char *tok;
    snprintf(p, sizeof(p),
             "{\"iss\":\"sfu\",\"aud\":[\"x\",\"sfu-room\"],\"sub\":\"alice\","
             "\"room\":\"r1\",\"jti\":\"0123456789abcdef0123456789abcdef\","
             "\"iat\":%lld,\"exp\":%lld}",
             (long long)NOW, (long long)(NOW + 600));
    tok = forge(p);
    assert_int_equal(verify(tok, "r1", NOW, NULL, NULL), 0);
    free(tok);
  }
}

static void over_long(void **state) {
  char *big = malloc(SFU_TOKEN_MAX_LEN + 2);
  char extra[4096];
  const char *why = NULL;
  char *t;
  size_t pad;
  int near;

  memset(big, 'A', SFU_TOKEN_MAX_LEN + 1);
  big[SFU_TOKEN_MAX_LEN + 1] = '\0';
  assert_int_equal(verify(big, "r1", NOW, NULL, &why), SFU_ETOKEN);
  assert_string_equal(why, "token too long");
  /* At the limit the size check passes and the shape check fails. */
  big[SFU_TOKEN_MAX_LEN] = '\0';
  assert_int_equal(verify(big, "r1", NOW, NULL, &why), SFU_ETOKEN);
  assert_string_equal(why, "not three dot-separated parts");
  free(big);

  /* Genuinely signed tokens on both sides of the limit: pad an unknown
   * claim one byte at a time until the token no longer fits. */
  t = forge(payload_with(""));
  pad = (SFU_TOKEN_MAX_LEN - strlen(t)) * 3 / 4 - 24;
  free(t);
  for (near = 0;; pad++) {
    size_t len;
    int rv;
    snprintf(extra, sizeof(extra), ",\"x\":\"%0*d\"", (int)pad, 0);
    t = forge(payload_with(extra));
    len = strlen(t);
    why = NULL;
    rv = verify(t, "r1", NOW, NULL, &why);
    free(t);
    if (len > SFU_TOKEN_MAX_LEN) {
      assert_int_equal(rv, SFU_ETOKEN);
      assert_string_equal(why, "token too long");
      break;
    }
    assert_int_equal(rv, 0);
    if (len > SFU_TOKEN_MAX_LEN - 4) near++;
  }
  assert_true(near > 0);
}

static void invalid_ids(void **state) {
  sfu_token_claims_t c;
  char *t = (char *)0x1;
  char id64[65], id65[66];

  /* The id rule itself. */
  memset(id64, 'a', 64);
  id64[64] = '\0';
  memset(id65, 'a', 65);
  id65[65] = '\0';
  assert_int_equal(sfu_token_valid_id("a"), 1);
  assert_int_equal(sfu_token_valid_id("A-z_0.9@x:y"), 1);
  assert_int_equal(sfu_token_valid_id(id64), 1);
  assert_int_equal(sfu_token_valid_id(id65), 0);
  assert_int_equal(sfu_token_valid_id(""), 0);
  assert_int_equal(sfu_token_valid_id(NULL), 0);
  assert_int_equal(sfu_token_valid_id("bob smith"), 0);
  assert_int_equal(sfu_token_valid_id("a/b"), 0);
  assert_int_equal(sfu_token_valid_id("a\nb"), 0);
  assert_int_equal(sfu_token_valid_id("caf\xc3\xa9"), 0);
  assert_int_equal(sfu_token_valid_id("a\"b"), 0);
  assert_int_equal(sfu_token_valid_id("a+b"), 0);

  /* Mint refuses them. */
  base_claims(&c);
  strcpy(c.identity, "bob smith");
  assert_int_equal(sfu_token_mint(SECRET, SECRET_LEN, &c, &t), SFU_EINVAL);
  assert_null(t);
  base_claims(&c);
  c.identity[0] = '\0';
  assert_int_equal(sfu_token_mint(SECRET, SECRET_LEN, &c, &t), SFU_EINVAL);
  base_claims(&c);
  strcpy(c.room, "room/../etc");
  assert_int_equal(sfu_token_mint(SECRET, SECRET_LEN, &c, &t), SFU_EINVAL);
  base_claims(&c);
  memset(c.room, 'r', sizeof(c.room)); /* no terminator in the array */
  assert_int_equal(sfu_token_mint(SECRET, SECRET_LEN, &c, &t), SFU_EINVAL);
  base_claims(&c);
  strcpy(c.identity, id64);
  t = mint_ok(&c);
  assert_int_equal(verify(t, "r1", NOW, NULL, NULL), 0);
  free(t);

  /* Verify refuses them in a correctly signed token. */
  expect_forged("{\"iss\":\"sfu\",\"aud\":\"sfu-room\",\"sub\":\"bob smith\"}",
                SFU_ETOKEN, "missing or invalid sub");
  expect_forged("{\"iss\":\"sfu\",\"aud\":\"sfu-room\",\"sub\":\"\"}",
                SFU_ETOKEN, "missing or invalid sub");
  {
    char p[512];
    snprintf(p, sizeof(p),
             "{\"iss\":\"sfu\",\"aud\":\"sfu-room\",\"sub\":\"%s\"}", id65);
    expect_forged(p, SFU_ETOKEN, "missing or invalid sub");
  }
  expect_forged(
      "{\"iss\":\"sfu\",\"aud\":\"sfu-room\",\"sub\":\"a\",\"room\":\"r<1>\"}",
      SFU_ETOKEN, "missing or invalid room");
  expect_forged(
      "{\"iss\":\"sfu\",\"aud\":\"sfu-room\",\"sub\":\"a\\u00e9\",\"room\":"
      "\"r1\"}",
      SFU_ETOKEN, "missing or invalid sub");
}

static void mint_rejects_bad_input(void **state) {
  sfu_token_claims_t c;
  char *t = NULL;

  base_claims(&c);
  assert_int_equal(sfu_token_mint(SECRET, 31, &c, &t), SFU_EINVAL);
  assert_int_equal(sfu_token_mint(NULL, 32, &c, &t), SFU_EINVAL);
  assert_int_equal(sfu_token_mint(SECRET, SECRET_LEN, NULL, &t), SFU_EINVAL);
  assert_int_equal(sfu_token_mint(SECRET, SECRET_LEN, &c, NULL), SFU_EINVAL);
  assert_string_equal(c.jti, ""); /* untouched when refused */

  base_claims(&c);
  c.exp = c.iat;
  assert_int_equal(sfu_token_mint(SECRET, SECRET_LEN, &c, &t), SFU_EINVAL);
  base_claims(&c);
  c.iat = 0;
  assert_int_equal(sfu_token_mint(SECRET, SECRET_LEN, &c, &t), SFU_EINVAL);
  base_claims(&c);
  c.nbf = c.exp;
  assert_int_equal(sfu_token_mint(SECRET, SECRET_LEN, &c, &t), SFU_EINVAL);
  base_claims(&c);
  c.nbf = -1;
  assert_int_equal(sfu_token_mint(SECRET, SECRET_LEN, &c, &t), SFU_EINVAL);
  base_claims(&c);
  c.exp = INT64_MAX;
  assert_int_equal(sfu_token_mint(SECRET, SECRET_LEN, &c, &t), SFU_EINVAL);
  base_claims(&c);
  c.grants = 16;
  assert_int_equal(sfu_token_mint(SECRET, SECRET_LEN, &c, &t), SFU_EINVAL);
  base_claims(&c);
  strcpy(c.jti, "not-hex");
  assert_int_equal(sfu_token_mint(SECRET, SECRET_LEN, &c, &t), SFU_EINVAL);

  /* Names: invalid UTF-8 refused, 128 bytes accepted, no terminator not. */
  const char *bad_utf8[] = {"\xff", "\xc3", "\xc0\xaf", "\xed\xa0\x80",
                            "\xf4\x90\x80\x80", "\xe2\x82"};
  for (size_t i = 0; i < SFU_ARRAY_SIZE(bad_utf8); i++) {
    base_claims(&c);
    strcpy(c.name, bad_utf8[i]);
    assert_int_equal(sfu_token_mint(SECRET, SECRET_LEN, &c, &t), SFU_EINVAL);
  }
  base_claims(&c);
  memset(c.name, 'n', SFU_TOKEN_MAX_NAME);
  c.name[SFU_TOKEN_MAX_NAME] = '\0';
  t = mint_ok(&c);
  {
    sfu_token_claims_t v;
    assert_int_equal(verify(t, "r1", NOW, &v, NULL), 0);
    assert_int_equal(strlen(v.name), SFU_TOKEN_MAX_NAME);
  }
  free(t);
  t = NULL;
  memset(c.name, 'n', sizeof(c.name));
  assert_int_equal(sfu_token_mint(SECRET, SECRET_LEN, &c, &t), SFU_EINVAL);
  assert_null(t);

  /* A 129-byte name in a signed token is refused on the way in too. */
  {
    char p[512], n129[130];
    memset(n129, 'n', 129);
    n129[129] = '\0';
    snprintf(p, sizeof(p), ",\"name\":\"%s\"", n129);
    expect_forged(payload_with(p), SFU_ETOKEN, "invalid name");
  }
}

static void verify_rejects_bad_secret(void **state) {
  sfu_token_claims_t c;
  const char *why = NULL;
  char *t;

  base_claims(&c);
  t = mint_ok(&c);
  assert_int_equal(sfu_token_verify(SECRET, 31, t, "r1", NOW, NULL, &why),
                   SFU_EINVAL);
  assert_string_equal(why, "secret shorter than 32 bytes");
  /* An empty key would make libjwt skip the signature check entirely. */
  assert_int_equal(sfu_token_verify(SECRET, 0, t, "r1", NOW, NULL, NULL),
                   SFU_EINVAL);
  assert_int_equal(sfu_token_verify(NULL, 0, t, "r1", NOW, NULL, NULL),
                   SFU_EINVAL);
  free(t);
}

static void python_token_verifies(void **state) {
  sfu_token_claims_t v;
  const char *why = NULL;

  assert_int_equal(sfu_token_verify(PY_SECRET, sizeof(PY_SECRET) - 1, PY_TOKEN,
                                    "room-42", NOW, &v, &why),
                   0);
  assert_string_equal(v.room, "room-42");
  assert_string_equal(v.identity, "bob@example.com");
  /* Python escaped the emoji as a surrogate pair; jansson joins it. */
  assert_string_equal(v.name, "Bob \xf0\x9f\x8e\x89 \xc3\x9cn\xc3\xaf"
                              "c\xc3\xb8" "d\xc3\xa9");
  assert_string_equal(v.jti, "00112233445566778899aabbccddeeff");
  assert_int_equal(v.iat, 1700000000);
  assert_int_equal(v.nbf, 1700000000);
  assert_int_equal(v.exp, FAR);
  assert_int_equal(v.grants, SFU_GRANT_SUBSCRIBE | SFU_GRANT_PUBLISH_DATA);

  assert_int_equal(sfu_token_verify(PY_SECRET, sizeof(PY_SECRET) - 1, PY_TOKEN,
                                    "room-42", FAR, NULL, NULL),
                   SFU_EEXPIRED);
  assert_int_equal(sfu_token_verify(PY_SECRET, sizeof(PY_SECRET) - 1, PY_TOKEN,
                                    "room-43", NOW, NULL, NULL),
                   SFU_EWRONGROOM);
  assert_int_equal(verify(PY_TOKEN, "room-42", NOW, NULL, &why), SFU_ETOKEN);
  assert_string_equal(why, "bad signature");
}

static void our_token_matches_forged_one(void **state) {
  /* Mint and an independent signer agree byte for byte on the signature
   * when given the same header and payload bytes. */
  sfu_token_claims_t c;
  char *ours, *theirs, *dot;
  uint8_t payload[2048];
  size_t plen = 0;

  base_claims(&c);
  ours = mint_ok(&c);
  dot = strchr(ours, '.');
  {
    /* decode the payload part with OpenSSL's base64 after unurl-ing it */
    char b64[2048];
    size_t n = (size_t)(strrchr(ours, '.') - dot - 1);
    memcpy(b64, dot + 1, n);
    for (size_t i = 0; i < n; i++)
      b64[i] = b64[i] == '-' ? '+' : b64[i] == '_' ? '/' : b64[i];
    while (n % 4) b64[n++] = '=';
    int m = EVP_DecodeBlock(payload, (const uint8_t *)b64, (int)n);
    assert_true(m > 0);
    plen = (size_t)m;
    while (plen && payload[plen - 1] == '\0') plen--; /* drop pad bytes */
    payload[plen] = '\0';
  }
  assert_non_null(strstr((char *)payload, "\"iss\":\"sfu\""));
  assert_non_null(strstr((char *)payload, "\"aud\":\"sfu-room\""));
  theirs = forge_with(EVP_sha256(), SECRET, SECRET_LEN, HS256_HDR,
                      (const char *)payload);
  assert_string_equal(ours, theirs);
  free(ours);
  free(theirs);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(roundtrip_all_claims),
      cmocka_unit_test(jti_is_random),
      cmocka_unit_test(grants_default_when_absent),
      cmocka_unit_test(expired),
      cmocka_unit_test(not_yet_valid),
      cmocka_unit_test(wrong_room),
      cmocka_unit_test(bad_signature),
      cmocka_unit_test(alg_none_refused),
      cmocka_unit_test(other_algs_refused),
      cmocka_unit_test(header_rules),
      cmocka_unit_test(malformed),
      cmocka_unit_test(over_long),
      cmocka_unit_test(invalid_ids),
      cmocka_unit_test(mint_rejects_bad_input),
      cmocka_unit_test(verify_rejects_bad_secret),
      cmocka_unit_test(python_token_verifies),
      cmocka_unit_test(our_token_matches_forged_one),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
