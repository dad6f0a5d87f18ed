/*
 * stun.c -- STUN message views and writer (see stun.h).
 *
 * Wire format (RFC 8489 5 and 14):
 *
 *   0                   1                   2                   3
 *   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *  |0 0|     STUN Message Type     |         Message Length        |
 *  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *  |                  Magic Cookie (0x2112A442)                    |
 *  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *  |                                                               |
 *  |                  Transaction ID (96 bits)                     |
 *  |                                                               |
 *  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *  |         Type                  |            Length             |  } attributes,
 *  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+  } each padded
 *  |                         Value (variable)                ....     } to 4 bytes
 *  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 *  Message type bits:  M11 M10 M9 M8 M7 C1 M6 M5 M4 C0 M3 M2 M1 M0
 *  (method M, class C: 00 request, 01 indication, 10 success, 11 error).
 *  The Message Length counts the attributes, not the header: a multiple of
 *  4. The Length of an attribute counts its value without the padding.
 *
 *  XOR-MAPPED-ADDRESS value: 0x00, family (1 = IPv4, 2 = IPv6), port xor
 *  the cookie's top 16 bits, address xor the cookie (IPv4) or xor the
 *  cookie followed by the transaction id (IPv6).
 *
 *  MESSAGE-INTEGRITY: HMAC-SHA1 (20 bytes) over the message up to the
 *  attribute's header, with the header's length field set as if the
 *  message ended right after MESSAGE-INTEGRITY. FINGERPRINT: CRC-32 of the
 *  message up to its own header, xor 0x5354554e, always the last attribute.
 *
 * The parser is one pass over the attributes with every length checked
 * before its value is read; it reads fields with explicit byte shifts.
 * HMAC uses OpenSSL's EVP_MAC (fetched once); CRC-32 is a byte-wise table.
 */
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>

#include "sfu/base/sfu.h"
#include "sfu/media/stun.h"

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t rd32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static void wr16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}
static void wr32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}
static size_t pad4(size_t n) { return (n + 3) & ~(size_t)3; }

/* ---- CRC-32 ------------------------------------------------------------ */

/* Reflected polynomial 0xEDB88320, one entry per byte value. */
static const uint32_t crc_table[256] = {
    0x00000000u, 0x77073096u, 0xee0e612cu, 0x990951bau, 0x076dc419u, 0x706af48fu,
    0xe963a535u, 0x9e6495a3u, 0x0edb8832u, 0x79dcb8a4u, 0xe0d5e91eu, 0x97d2d988u,
    0x09b64c2bu, 0x7eb17cbdu, 0xe7b82d07u, 0x90bf1d91u, 0x1db71064u, 0x6ab020f2u,
    0xf3b97148u, 0x84be41deu, 0x1adad47du, 0x6ddde4ebu, 0xf4d4b551u, 0x83d385c7u,
    0x136c9856u, 0x646ba8c0u, 0xfd62f97au, 0x8a65c9ecu, 0x14015c4fu, 0x63066cd9u,
    0xfa0f3d63u, 0x8d080df5u, 0x3b6e20c8u, 0x4c69105eu, 0xd56041e4u, 0xa2677172u,
    0x3c03e4d1u, 0x4b04d447u, 0xd20d85fdu, 0xa50ab56bu, 0x35b5a8fau, 0x42b2986cu,
    0xdbbbc9d6u, 0xacbcf940u, 0x32d86ce3u, 0x45df5c75u, 0xdcd60dcfu, 0xabd13d59u,
    0x26d930acu, 0x51de003au, 0xc8d75180u, 0xbfd06116u, 0x21b4f4b5u, 0x56b3c423u,
    0xcfba9599u, 0xb8bda50fu, 0x2802b89eu, 0x5f058808u, 0xc60cd9b2u, 0xb10be924u,
    0x2f6f7c87u, 0x58684c11u, 0xc1611dabu, 0xb6662d3du, 0x76dc4190u, 0x01db7106u,
    0x98d220bcu, 0xefd5102au, 0x71b18589u, 0x06b6b51fu, 0x9fbfe4a5u, 0xe8b8d433u,
    0x7807c9a2u, 0x0f00f934u, 0x9609a88eu, 0xe10e9818u, 0x7f6a0dbbu, 0x086d3d2du,
    0x91646c97u, 0xe6635c01u, 0x6b6b51f4u, 0x1c6c6162u, 0x856530d8u, 0xf262004eu,
    0x6c0695edu, 0x1b01a57bu, 0x8208f4c1u, 0xf50fc457u, 0x65b0d9c6u, 0x12b7e950u,
    0x8bbeb8eau, 0xfcb9887cu, 0x62dd1ddfu, 0x15da2d49u, 0x8cd37cf3u, 0xfbd44c65u,
    0x4db26158u, 0x3ab551ceu, 0xa3bc0074u, 0xd4bb30e2u, 0x4adfa541u, 0x3dd895d7u,
    0xa4d1c46du, 0xd3d6f4fbu, 0x4369e96au, 0x346ed9fcu, 0xad678846u, 0xda60b8d0u,
    0x44042d73u, 0x33031de5u, 0xaa0a4c5fu, 0xdd0d7cc9u, 0x5005713cu, 0x270241aau,
    0xbe0b1010u, 0xc90c2086u, 0x5768b525u, 0x206f85b3u, 0xb966d409u, 0xce61e49fu,
    0x5edef90eu, 0x29d9c998u, 0xb0d09822u, 0xc7d7a8b4u, 0x59b33d17u, 0x2eb40d81u,
    0xb7bd5c3bu, 0xc0ba6cadu, 0xedb88320u, 0x9abfb3b6u, 0x03b6e20cu, 0x74b1d29au,
    0xead54739u, 0x9dd277afu, 0x04db2615u, 0x73dc1683u, 0xe3630b12u, 0x94643b84u,
    0x0d6d6a3eu, 0x7a6a5aa8u, 0xe40ecf0bu, 0x9309ff9du, 0x0a00ae27u, 0x7d079eb1u,
    0xf00f9344u, 0x8708a3d2u, 0x1e01f268u, 0x6906c2feu, 0xf762575du, 0x806567cbu,
    0x196c3671u, 0x6e6b06e7u, 0xfed41b76u, 0x89d32be0u, 0x10da7a5au, 0x67dd4accu,
    0xf9b9df6fu, 0x8ebeeff9u, 0x17b7be43u, 0x60b08ed5u, 0xd6d6a3e8u, 0xa1d1937eu,
    0x38d8c2c4u, 0x4fdff252u, 0xd1bb67f1u, 0xa6bc5767u, 0x3fb506ddu, 0x48b2364bu,
    0xd80d2bdau, 0xaf0a1b4cu, 0x36034af6u, 0x41047a60u, 0xdf60efc3u, 0xa867df55u,
    0x316e8eefu, 0x4669be79u, 0xcb61b38cu, 0xbc66831au, 0x256fd2a0u, 0x5268e236u,
    0xcc0c7795u, 0xbb0b4703u, 0x220216b9u, 0x5505262fu, 0xc5ba3bbeu, 0xb2bd0b28u,
    0x2bb45a92u, 0x5cb36a04u, 0xc2d7ffa7u, 0xb5d0cf31u, 0x2cd99e8bu, 0x5bdeae1du,
    0x9b64c2b0u, 0xec63f226u, 0x756aa39cu, 0x026d930au, 0x9c0906a9u, 0xeb0e363fu,
    0x72076785u, 0x05005713u, 0x95bf4a82u, 0xe2b87a14u, 0x7bb12baeu, 0x0cb61b38u,
    0x92d28e9bu, 0xe5d5be0du, 0x7cdcefb7u, 0x0bdbdf21u, 0x86d3d2d4u, 0xf1d4e242u,
    0x68ddb3f8u, 0x1fda836eu, 0x81be16cdu, 0xf6b9265bu, 0x6fb077e1u, 0x18b74777u,
    0x88085ae6u, 0xff0f6a70u, 0x66063bcau, 0x11010b5cu, 0x8f659effu, 0xf862ae69u,
    0x616bffd3u, 0x166ccf45u, 0xa00ae278u, 0xd70dd2eeu, 0x4e048354u, 0x3903b3c2u,
    0xa7672661u, 0xd06016f7u, 0x4969474du, 0x3e6e77dbu, 0xaed16a4au, 0xd9d65adcu,
    0x40df0b66u, 0x37d83bf0u, 0xa9bcae53u, 0xdebb9ec5u, 0x47b2cf7fu, 0x30b5ffe9u,
    0xbdbdf21cu, 0xcabac28au, 0x53b39330u, 0x24b4a3a6u, 0xbad03605u, 0xcdd70693u,
    0x54de5729u, 0x23d967bfu, 0xb3667a2eu, 0xc4614ab8u, 0x5d681b02u, 0x2a6f2b94u,
    0xb40bbe37u, 0xc30c8ea1u, 0x5a05df1bu, 0x2d02ef8du
};

uint32_t sfu_stun_crc32(const uint8_t *p, size_t n) {
  uint32_t c = 0xffffffffu;
  while (n--) c = crc_table[(c ^ *p++) & 0xff] ^ (c >> 8);
  return c ^ 0xffffffffu;
}

/* ---- HMAC-SHA1 --------------------------------------------------------- */

static EVP_MAC *hmac;
static pthread_once_t hmac_once = PTHREAD_ONCE_INIT;
static void hmac_fetch(void) { hmac = EVP_MAC_fetch(NULL, "HMAC", NULL); }

/* HMAC-SHA1 of the two pieces hdr[0..hn) and body[0..bn). */
static int hmac_sha1(const void *key, size_t keylen, const uint8_t *hdr, size_t hn,
                     const uint8_t *body, size_t bn, uint8_t out[20]) {
  char digest[] = "SHA1";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                         OSSL_PARAM_construct_end()};
  size_t outl = 0;
  int rv = SFU_EPROTO;
  pthread_once(&hmac_once, hmac_fetch);
  if (!hmac) return SFU_EPROTO;
  EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(hmac);
  if (!ctx) return SFU_ENOMEM;
  /* An empty key is valid HMAC; OpenSSL wants a non-NULL pointer. */
  static const uint8_t nokey[1];
  if (EVP_MAC_init(ctx, keylen ? key : nokey, keylen, params) == 1 &&
      EVP_MAC_update(ctx, hdr, hn) == 1 && (bn == 0 || EVP_MAC_update(ctx, body, bn) == 1) &&
      EVP_MAC_final(ctx, out, &outl, 20) == 1 && outl == 20)
    rv = 0;
  EVP_MAC_CTX_free(ctx);
  return rv;
}

/* ---- parser ------------------------------------------------------------ */

#define FAIL(msg)                  \
  do {                             \
    if (err_desc) *err_desc = msg; \
    return SFU_EPROTO;             \
  } while (0)

int sfu_stun_parse(const uint8_t *buf, size_t len, sfu_stun_msg_t *m, const char **err_desc) {
  memset(m, 0, sizeof(*m));
  if (len < SFU_STUN_HEADER_LEN) FAIL("shorter than a STUN header");
  if (buf[0] & 0xc0) FAIL("first two bits not zero");
  if (rd32(buf + 4) != SFU_STUN_MAGIC) FAIL("no magic cookie (RFC 3489 message?)");
  size_t mlen = rd16(buf + 2);
  if (mlen & 3) FAIL("length not a multiple of 4");
  if (SFU_STUN_HEADER_LEN + mlen > len) FAIL("truncated message");

  m->data = buf;
  m->len = SFU_STUN_HEADER_LEN + mlen;
  m->type = rd16(buf);
  m->cls = (uint8_t)(((m->type >> 7) & 2) | ((m->type >> 4) & 1));
  m->method = (uint16_t)((m->type & 0x000f) | ((m->type >> 1) & 0x0070) |
                         ((m->type >> 2) & 0x0f80));
  m->tid = buf + 8;

  unsigned seen_user = 0, seen_addr = 0, seen_err = 0;
  size_t p = SFU_STUN_HEADER_LEN, end = m->len;
  while (p < end) {
    if (m->fingerprint_off) FAIL("attribute after FINGERPRINT");
    if (end - p < 4) FAIL("truncated attribute header");
    uint16_t at = rd16(buf + p);
    size_t alen = rd16(buf + p + 2);
    if (pad4(alen) > end - p - 4) FAIL("attribute runs past the message");
    const uint8_t *v = buf + p + 4;

    if (at == SFU_STUN_ATTR_FINGERPRINT) {
      if (alen != 4) FAIL("FINGERPRINT length");
      m->fingerprint_off = (uint32_t)p;
    } else if (m->integrity_off) {
      /* After MESSAGE-INTEGRITY only FINGERPRINT counts (RFC 8489 14.5). */
    } else if (at == SFU_STUN_ATTR_MESSAGE_INTEGRITY) {
      if (alen != 20) FAIL("MESSAGE-INTEGRITY length");
      m->integrity_off = (uint32_t)p;
    } else if (at == SFU_STUN_ATTR_USERNAME) {
      if (alen > SFU_STUN_MAX_USERNAME) FAIL("USERNAME too long");
      if (!seen_user) {
        seen_user = 1;
        m->username_off = (uint32_t)(p + 4);
        m->username_len = (uint32_t)alen;
      }
    } else if (at == SFU_STUN_ATTR_PRIORITY) {
      if (alen != 4) FAIL("PRIORITY length");
      if (!m->has_priority) {
        m->has_priority = 1;
        m->priority = rd32(v);
      }
    } else if (at == SFU_STUN_ATTR_USE_CANDIDATE) {
      if (alen != 0) FAIL("USE-CANDIDATE length");
      m->use_candidate = 1;
    } else if (at == SFU_STUN_ATTR_ICE_CONTROLLED || at == SFU_STUN_ATTR_ICE_CONTROLLING) {
      if (alen != 8) FAIL("ICE-CONTROLLED/CONTROLLING length");
      if (!m->controlled && !m->controlling)
        m->tie_breaker = (uint64_t)rd32(v) << 32 | rd32(v + 4);
      if (at == SFU_STUN_ATTR_ICE_CONTROLLED)
        m->controlled = 1;
      else
        m->controlling = 1;
    } else if (at == SFU_STUN_ATTR_XOR_MAPPED_ADDRESS) {
      if (alen < 4 || !((v[1] == 1 && alen == 8) || (v[1] == 2 && alen == 20)))
        FAIL("XOR-MAPPED-ADDRESS family or length");
      if (!seen_addr) {
        seen_addr = 1;
        m->xor_addr_off = (uint32_t)(p + 4);
        m->xor_addr_len = (uint32_t)alen;
      }
    } else if (at == SFU_STUN_ATTR_ERROR_CODE) {
      if (alen < 4 || alen > 4 + 763) FAIL("ERROR-CODE length");
      if ((v[2] & 7) < 3 || (v[2] & 7) > 6 || v[3] > 99) FAIL("ERROR-CODE value");
      if (!seen_err) {
        seen_err = 1;
        m->error_off = (uint32_t)(p + 4);
        m->error_len = (uint32_t)alen;
      }
    } else if (at < 0x8000) {
      /* Comprehension-required and not understood: MAPPED-ADDRESS and the
       * like are known but unexpected in ICE; a server answers 420 for the
       * rest. Known ones this parser does not decode are listed here. */
      if (at != SFU_STUN_ATTR_MAPPED_ADDRESS && at != SFU_STUN_ATTR_UNKNOWN_ATTRIBUTES &&
          m->n_unknown < SFU_STUN_MAX_UNKNOWN)
        m->unknown[m->n_unknown++] = at;
    }
    p += 4 + pad4(alen);
  }
  return (int)m->len;
}

int sfu_stun_check_integrity(const sfu_stun_msg_t *m, const void *key, size_t keylen) {
  uint8_t hdr[SFU_STUN_HEADER_LEN], mac[20];
  if (!m->integrity_off) return SFU_ENOENT;
  memcpy(hdr, m->data, SFU_STUN_HEADER_LEN);
  wr16(hdr + 2, (uint16_t)(m->integrity_off + 24 - SFU_STUN_HEADER_LEN));
  int rv = hmac_sha1(key, keylen, hdr, sizeof(hdr), m->data + SFU_STUN_HEADER_LEN,
                     m->integrity_off - SFU_STUN_HEADER_LEN, mac);
  if (rv != 0) return rv;
  return CRYPTO_memcmp(mac, m->data + m->integrity_off + 4, 20) == 0 ? 0 : SFU_EACCES;
}

int sfu_stun_check_fingerprint(const sfu_stun_msg_t *m) {
  if (!m->fingerprint_off) return SFU_ENOENT;
  /* FINGERPRINT is last, so the header's length already covers it. */
  uint32_t want = sfu_stun_crc32(m->data, m->fingerprint_off) ^ SFU_STUN_FINGERPRINT_XOR;
  return rd32(m->data + m->fingerprint_off + 4) == want ? 0 : SFU_EPROTO;
}

int sfu_stun_xor_addr(const sfu_stun_msg_t *m, struct sockaddr_storage *out) {
  const uint8_t *v = m->data + m->xor_addr_off;
  if (!m->xor_addr_off) return SFU_ENOENT;
  memset(out, 0, sizeof(*out));
  uint16_t port = (uint16_t)(rd16(v + 2) ^ (SFU_STUN_MAGIC >> 16));
  if (v[1] == 1) {
    struct sockaddr_in *a = (struct sockaddr_in *)out;
    uint32_t ip = rd32(v + 4) ^ SFU_STUN_MAGIC;
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    a->sin_addr.s_addr = htonl(ip);
  } else {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)out;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    for (int i = 0; i < 16; i++)
      a->sin6_addr.s6_addr[i] = (uint8_t)(v[4 + i] ^ m->data[4 + i]); /* cookie + tid */
  }
  return 0;
}

int sfu_stun_error_code(const sfu_stun_msg_t *m) {
  if (!m->error_off) return 0;
  const uint8_t *v = m->data + m->error_off;
  return (v[2] & 7) * 100 + v[3];
}

/* ---- writer ------------------------------------------------------------ */

void sfu_stun_writer_init(sfu_stun_writer_t *w, uint8_t *buf, size_t cap, uint16_t type,
                          const uint8_t tid[SFU_STUN_TID_LEN]) {
  w->buf = buf;
  w->cap = cap;
  w->len = 0;
  w->err = 0;
  if (cap < SFU_STUN_HEADER_LEN) {
    w->err = SFU_E2BIG;
    return;
  }
  wr16(buf, type & 0x3fff);
  wr16(buf + 2, 0);
  wr32(buf + 4, SFU_STUN_MAGIC);
  memcpy(buf + 8, tid, SFU_STUN_TID_LEN);
  w->len = SFU_STUN_HEADER_LEN;
}

/* Reserves an attribute of n value bytes (padded with zeros) and returns a
 * pointer to its value, or NULL (writer failed). */
static uint8_t *reserve(sfu_stun_writer_t *w, uint16_t type, size_t n) {
  if (w->err) return NULL;
  if (n > 0xffff || w->cap - w->len < 4 + pad4(n) ||
      w->len - SFU_STUN_HEADER_LEN + 4 + pad4(n) > 0xffff) {
    w->err = SFU_E2BIG;
    return NULL;
  }
  uint8_t *a = w->buf + w->len;
  wr16(a, type);
  wr16(a + 2, (uint16_t)n);
  memset(a + 4 + n, 0, pad4(n) - n);
  w->len += 4 + pad4(n);
  wr16(w->buf + 2, (uint16_t)(w->len - SFU_STUN_HEADER_LEN));
  return a + 4;
}

void sfu_stun_put(sfu_stun_writer_t *w, uint16_t type, const void *val, size_t n) {
  uint8_t *v = reserve(w, type, n);
  if (v && n) memcpy(v, val, n);
}

void sfu_stun_put_u32(sfu_stun_writer_t *w, uint16_t type, uint32_t x) {
  uint8_t *v = reserve(w, type, 4);
  if (v) wr32(v, x);
}

void sfu_stun_put_u64(sfu_stun_writer_t *w, uint16_t type, uint64_t x) {
  uint8_t *v = reserve(w, type, 8);
  if (!v) return;
  wr32(v, (uint32_t)(x >> 32));
  wr32(v + 4, (uint32_t)x);
}

void sfu_stun_put_xor_addr(sfu_stun_writer_t *w, uint16_t type, const struct sockaddr *sa) {
  if (w->err) return;
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
    uint8_t *v = reserve(w, type, 8);
    if (!v) return;
    v[0] = 0;
    v[1] = 1;
    wr16(v + 2, (uint16_t)(ntohs(a->sin_port) ^ (SFU_STUN_MAGIC >> 16)));
    wr32(v + 4, ntohl(a->sin_addr.s_addr) ^ SFU_STUN_MAGIC);
  } else if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
    uint8_t *v = reserve(w, type, 20);
    if (!v) return;
    v[0] = 0;
    v[1] = 2;
    wr16(v + 2, (uint16_t)(ntohs(a->sin6_port) ^ (SFU_STUN_MAGIC >> 16)));
    for (int i = 0; i < 16; i++) v[4 + i] = (uint8_t)(a->sin6_addr.s6_addr[i] ^ w->buf[4 + i]);
  } else {
    w->err = SFU_EINVAL;
  }
}

void sfu_stun_put_error(sfu_stun_writer_t *w, int code, const char *reason) {
  size_t rn = reason ? strlen(reason) : 0;
  if (code < 300 || code > 699 || rn > 763) {
    if (!w->err) w->err = SFU_EINVAL;
    return;
  }
  uint8_t *v = reserve(w, SFU_STUN_ATTR_ERROR_CODE, 4 + rn);
  if (!v) return;
  v[0] = v[1] = 0;
  v[2] = (uint8_t)(code / 100);
  v[3] = (uint8_t)(code % 100);
  memcpy(v + 4, reason, rn);
}

void sfu_stun_put_unknown(sfu_stun_writer_t *w, const uint16_t *types, int n) {
  if (n < 0) n = 0;
  uint8_t *v = reserve(w, SFU_STUN_ATTR_UNKNOWN_ATTRIBUTES, 2 * (size_t)n);
  if (!v) return;
  for (int i = 0; i < n; i++) wr16(v + 2 * i, types[i]);
}

void sfu_stun_put_integrity(sfu_stun_writer_t *w, const void *key, size_t keylen) {
  uint8_t *v = reserve(w, SFU_STUN_ATTR_MESSAGE_INTEGRITY, 20);
  if (!v) return;
  /* The length field already covers this attribute: reserve() set it. */
  int rv = hmac_sha1(key, keylen, w->buf, SFU_STUN_HEADER_LEN, w->buf + SFU_STUN_HEADER_LEN,
                     (size_t)(v - 4 - w->buf) - SFU_STUN_HEADER_LEN, v);
  if (rv != 0) w->err = rv;
}

void sfu_stun_put_fingerprint(sfu_stun_writer_t *w) {
  uint8_t *v = reserve(w, SFU_STUN_ATTR_FINGERPRINT, 4);
  if (!v) return;
  wr32(v, sfu_stun_crc32(w->buf, (size_t)(v - 4 - w->buf)) ^ SFU_STUN_FINGERPRINT_XOR);
}

int sfu_stun_finish(const sfu_stun_writer_t *w) { return w->err ? w->err : (int)w->len; }

int sfu_stun_binding_success(uint8_t *buf, size_t cap, const uint8_t tid[SFU_STUN_TID_LEN],
                             const struct sockaddr *mapped, const void *key, size_t keylen) {
  sfu_stun_writer_t w;
  sfu_stun_writer_init(&w, buf, cap, SFU_STUN_BINDING_SUCCESS, tid);
  sfu_stun_put_xor_addr(&w, SFU_STUN_ATTR_XOR_MAPPED_ADDRESS, mapped);
  sfu_stun_put_integrity(&w, key, keylen);
  sfu_stun_put_fingerprint(&w);
  return sfu_stun_finish(&w);
}

static const char *reason_of(int code) {
  switch (code) {
  case 300: return "Try Alternate";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 420: return "Unknown Attribute";
  case 438: return "Stale Nonce";
  case 487: return "Role Conflict";
  case 500: return "Server Error";
  default: return NULL;
  }
}

int sfu_stun_binding_error(uint8_t *buf, size_t cap, const uint8_t tid[SFU_STUN_TID_LEN],
                           int code, const uint16_t *unknown, int n_unknown, const void *key,
                           size_t keylen) {
  sfu_stun_writer_t w;
  sfu_stun_writer_init(&w, buf, cap, SFU_STUN_BINDING_ERROR, tid);
  sfu_stun_put_error(&w, code, reason_of(code));
  if (n_unknown > 0) sfu_stun_put_unknown(&w, unknown, n_unknown);
  if (key) sfu_stun_put_integrity(&w, key, keylen);
  sfu_stun_put_fingerprint(&w);
  return sfu_stun_finish(&w);
}
