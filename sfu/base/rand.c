/*
 * rand.c -- the project's one source of random bytes: OpenSSL's CSPRNG.
 *
 * Ids, SSRCs, ICE credentials, token ids, generated keys and jitter all
 * come from here. RAND_bytes fails only when the CSPRNG cannot be seeded;
 * then nothing the process would make -- a key, a password, a token id --
 * is safe to hand out, so the process says why and aborts (a node
 * restarts its rooms; sfud under a supervisor is restarted). Nothing else
 * calls RAND_bytes.
 */
#include <openssl/err.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sfu/base/sfu.h"

void sfu_random_bytes(void *out, size_t n) {
  unsigned char *p = out;
  while (n > 0) {
    int chunk = n > 1 << 20 ? 1 << 20 : (int)n;
    if (RAND_bytes(p, chunk) != 1) {
      char why[256];
      ERR_error_string_n(ERR_get_error(), why, sizeof(why));
      fprintf(stderr, "fatal: the CSPRNG failed (%s): no key or id would be safe\n", why);
      abort();
    }
    p += chunk;
    n -= (size_t)chunk;
  }
}

uint32_t sfu_random_u32(void) {
  uint32_t v;
  sfu_random_bytes(&v, sizeof(v));
  return v;
}

void sfu_random_hex(char *out, const char *prefix, size_t nbytes) {
  static const char hex[] = "0123456789abcdef";
  unsigned char raw[64];
  size_t n = strlen(prefix);
  if (nbytes > sizeof(raw)) nbytes = sizeof(raw);
  sfu_random_bytes(raw, nbytes);
  memmove(out, prefix, n);
  for (size_t i = 0; i < nbytes; i++) {
    out[n + 2 * i] = hex[raw[i] >> 4];
    out[n + 2 * i + 1] = hex[raw[i] & 15];
  }
  out[n + 2 * nbytes] = '\0';
}
