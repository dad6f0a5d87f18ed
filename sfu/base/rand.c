/*
 * rand.c -- random identifiers (room, participant and track ids, generated
 * keys) from OpenSSL's CSPRNG, as lowercase hex.
 */
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

#include "sfu/base/sfu.h"

void sfu_random_hex(char *out, const char *prefix, size_t nbytes) {
  static const char hex[] = "0123456789abcdef";
  unsigned char raw[64];
  size_t n = strlen(prefix);
  if (nbytes > sizeof(raw)) nbytes = sizeof(raw);
  RAND_bytes(raw, (int)nbytes);
  memmove(out, prefix, n);
  for (size_t i = 0; i < nbytes; i++) {
    out[n + 2 * i] = hex[raw[i] >> 4];
    out[n + 2 * i + 1] = hex[raw[i] & 15];
  }
  out[n + 2 * nbytes] = '\0';
}
