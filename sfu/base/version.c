/*
 * version.c -- what this build is, including which crypto backend libsrtp
 * really uses. The backend is read from the linked library itself (the
 * description of its AES-ICM cipher names OpenSSL, NSS or the built-in
 * implementation), so a build that silently fell back is visible.
 */
#include <stdio.h>
#include <string.h>

#include <srtp2/cipher.h>
#include <srtp2/srtp.h>

#include "sfu/base/sfu.h"

#ifndef SFU_SRTP_BACKEND
#define SFU_SRTP_BACKEND "unknown"
#endif

extern const srtp_cipher_type_t srtp_aes_icm_128;

const char *sfu_version(void) { return SFU_VERSION; }

const char *sfu_srtp_description(void) {
  static char buf[160];
  const char *d = srtp_aes_icm_128.description;
  const char *backend = strstr(d, "openssl") || strstr(d, "OpenSSL") ? "OpenSSL"
                        : strstr(d, "NSS") || strstr(d, "nss")       ? "NSS"
                                                                     : "built-in";
  snprintf(buf, sizeof(buf), "%s, crypto backend %s (\"%s\")",
           srtp_get_version_string(), backend, d);
  return buf;
}
