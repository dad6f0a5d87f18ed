/*
 * fuzz_token.c -- libFuzzer target for sfu_token_verify() and, through the
 * roundtrip, sfu_token_mint().
 *
 * Each input is tried twice against a fixed secret and a fixed clock:
 *
 *   1. as it is. This reaches the size, shape, header and signature stages;
 *      only the seed tokens (minted with FUZZ_SECRET, see
 *      tests/fuzz/corpus/token/) get past the HMAC.
 *   2. re-signed: everything before the last '.' is taken as the signing
 *      input and a correct HS256 MAC is appended, so mutated headers and
 *      payloads reach libjwt's parser and our claim checks as well.
 *
 * Whenever a token verifies, its claims are minted again with the same
 * secret and the new token must verify to the same claims: anything verify
 * accepts, mint must be able to produce.
 *
 * Build by hand:
 *   clang -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -I. \
 *     tests/fuzz/fuzz_token.c signaling/token.c sfu/base/err.c \
 *     $(pkg-config --cflags --libs libjwt jansson) -lcrypto
 *   ./a.out -max_len=6000 tests/fuzz/corpus/token
 */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sfu/base/sfu.h"
#include "signaling/token.h"

#define FUZZ_NOW INT64_C(1700000000)

/* The corpus seeds were minted with this secret. */
static const uint8_t FUZZ_SECRET[] =
    "sfu-fuzz-secret-0123456789abcdef-0123456789";
#define FUZZ_SECRET_LEN (sizeof(FUZZ_SECRET) - 1)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_same(const sfu_token_claims_t *a,
                       const sfu_token_claims_t *b) {
  if (strcmp(a->room, b->room) || strcmp(a->identity, b->identity) ||
      strcmp(a->name, b->name) || strcmp(a->jti, b->jti) ||
      a->iat != b->iat || a->nbf != b->nbf || a->exp != b->exp ||
      a->grants != b->grants)
    abort();
}

/* Verifies `tok`; on success checks room matching and the mint roundtrip. */
static void exercise(const char *tok) {
  sfu_token_claims_t c, again;
  const char *why = NULL;
  char *minted = NULL;
  int rv;

  rv = sfu_token_verify(FUZZ_SECRET, FUZZ_SECRET_LEN, tok, NULL, FUZZ_NOW, &c,
                        &why);
  if (rv != 0) {
    /* Every refusal is one of the documented codes, with a reason. */
    if (rv != SFU_ETOKEN && rv != SFU_EEXPIRED && rv != SFU_ENOMEM) abort();
    if (!why || c.room[0] || c.identity[0]) abort();
    return;
  }
  if (!sfu_token_valid_id(c.room) || !sfu_token_valid_id(c.identity)) abort();
  if (sfu_token_verify(FUZZ_SECRET, FUZZ_SECRET_LEN, tok, c.room, FUZZ_NOW,
                       NULL, NULL) != 0)
    abort();
  if (strcmp(c.room, "x") != 0 &&
      sfu_token_verify(FUZZ_SECRET, FUZZ_SECRET_LEN, tok, "x", FUZZ_NOW, NULL,
                       NULL) != SFU_EWRONGROOM)
    abort();

  rv = sfu_token_mint(FUZZ_SECRET, FUZZ_SECRET_LEN, &c, &minted);
  if (rv == SFU_ENOMEM) return;
  if (rv != 0 || !minted) abort();
  if (sfu_token_verify(FUZZ_SECRET, FUZZ_SECRET_LEN, minted, c.room, FUZZ_NOW,
                       &again, NULL) != 0)
    abort();
  check_same(&c, &again);
  free(minted);
}

static size_t b64url(const uint8_t *in, size_t len, char *out) {
  static const char abc[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  size_t o = 0;

  for (size_t i = 0; i < len; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16;
    if (i + 1 < len) v |= (uint32_t)in[i + 1] << 8;
    if (i + 2 < len) v |= in[i + 2];
    out[o++] = abc[v >> 18];
    out[o++] = abc[(v >> 12) & 63];
    if (i + 1 < len) out[o++] = abc[(v >> 6) & 63];
    if (i + 2 < len) out[o++] = abc[v & 63];
  }
  out[o] = '\0';
  return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint8_t mac[EVP_MAX_MD_SIZE];
  unsigned mac_len = 0;
  char *tok, *resigned, *dot;
  size_t signed_len;

  if (size > 2 * SFU_TOKEN_MAX_LEN) return 0;
  tok = malloc(size + 1);
  if (!tok) return 0;
  memcpy(tok, data, size);
  tok[size] = '\0';

  (void)sfu_token_valid_id(tok);
  exercise(tok);

  dot = strrchr(tok, '.');
  if (dot) {
    signed_len = (size_t)(dot - tok);
    resigned = malloc(signed_len + 1 + 44);
    if (resigned &&
        HMAC(EVP_sha256(), FUZZ_SECRET, (int)FUZZ_SECRET_LEN,
             (const uint8_t *)tok, signed_len, mac, &mac_len)) {
      memcpy(resigned, tok, signed_len);
      resigned[signed_len] = '.';
      b64url(mac, mac_len, resigned + signed_len + 1);
      exercise(resigned);
    }
    free(resigned);
  }
  free(tok);
  return 0;
}
