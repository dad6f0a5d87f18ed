/*
 * stun.h -- STUN (RFC 5389 / RFC 8489) messages as views over bytes, and a
 * writer for the few messages an ICE-lite agent sends (RFC 8445).
 *
 * Parsing never copies: sfu_stun_parse() checks every length once and
 * fills an sfu_stun_msg_t with offsets into the caller's datagram. The
 * view is valid as long as those bytes are. Only the attributes ICE needs
 * are decoded (USERNAME, MESSAGE-INTEGRITY, FINGERPRINT, XOR-MAPPED-ADDRESS,
 * PRIORITY, USE-CANDIDATE, ICE-CONTROLLING, ICE-CONTROLLED, ERROR-CODE);
 * other comprehension-optional ones are skipped, comprehension-required
 * ones are listed in `unknown` so a server can answer 420.
 *
 * Authentication is the ICE short-term credential: the HMAC-SHA1 key of
 * MESSAGE-INTEGRITY is the password as given (ICE passwords are ASCII, so
 * no SASLprep is needed). Verifying is a separate step
 * (sfu_stun_check_integrity, sfu_stun_check_fingerprint): the parser does
 * not know the key, which depends on the USERNAME it has just found.
 *
 * Writers take (buf, cap) and return the length written or a negative
 * SFU_E* code (SFU_E2BIG when cap is too small); nothing is allocated.
 *
 * Users: sfu/net/icelite.c (the room's ICE-lite agent), tests/test_stun.c,
 * tests/fuzz/fuzz_stun.c.
 */
#ifndef SFU_STUN_H
#define SFU_STUN_H

#include <stddef.h>
#include <stdint.h>

struct sockaddr;
struct sockaddr_storage;

#define SFU_STUN_HEADER_LEN 20
#define SFU_STUN_MAGIC 0x2112a442u
#define SFU_STUN_TID_LEN 12
#define SFU_STUN_FINGERPRINT_XOR 0x5354554eu
#define SFU_STUN_MAX_UNKNOWN 8   /* unknown required attributes remembered */
#define SFU_STUN_MAX_USERNAME 512 /* RFC 8489 14.3: less than 513 bytes */

/* Message classes (the C1 C0 bits, decoded). */
enum {
  SFU_STUN_REQUEST = 0,
  SFU_STUN_INDICATION = 1,
  SFU_STUN_SUCCESS = 2,
  SFU_STUN_ERROR = 3
};

/* The one method ICE uses, and its four message types as on the wire. */
#define SFU_STUN_METHOD_BINDING 0x001
#define SFU_STUN_BINDING_REQUEST 0x0001
#define SFU_STUN_BINDING_INDICATION 0x0011
#define SFU_STUN_BINDING_SUCCESS 0x0101
#define SFU_STUN_BINDING_ERROR 0x0111

/* Attribute types (RFC 8489 18.3, RFC 8445 16.1). */
enum {
  SFU_STUN_ATTR_MAPPED_ADDRESS = 0x0001,
  SFU_STUN_ATTR_USERNAME = 0x0006,
  SFU_STUN_ATTR_MESSAGE_INTEGRITY = 0x0008,
  SFU_STUN_ATTR_ERROR_CODE = 0x0009,
  SFU_STUN_ATTR_UNKNOWN_ATTRIBUTES = 0x000a,
  SFU_STUN_ATTR_MESSAGE_INTEGRITY_SHA256 = 0x001c,
  SFU_STUN_ATTR_XOR_MAPPED_ADDRESS = 0x0020,
  SFU_STUN_ATTR_PRIORITY = 0x0024,
  SFU_STUN_ATTR_USE_CANDIDATE = 0x0025,
  SFU_STUN_ATTR_SOFTWARE = 0x8022,
  SFU_STUN_ATTR_FINGERPRINT = 0x8028,
  SFU_STUN_ATTR_ICE_CONTROLLED = 0x8029,
  SFU_STUN_ATTR_ICE_CONTROLLING = 0x802a
};

/*
 * A parsed message: offsets into `data`, 0 meaning "absent" (no attribute
 * can start before byte 20). Only attributes before MESSAGE-INTEGRITY are
 * recorded (RFC 8489 14.5: anything after it but FINGERPRINT is ignored, so
 * an attacker cannot append USE-CANDIDATE to a signed check). When an
 * attribute appears twice, the first one counts.
 */
typedef struct sfu_stun_msg_s {
  const uint8_t *data;      /* the message (header first) */
  size_t len;               /* 20 + the header's length field */
  uint16_t type;            /* message type as on the wire */
  uint16_t method;          /* SFU_STUN_METHOD_* */
  uint8_t cls;              /* SFU_STUN_REQUEST .. SFU_STUN_ERROR */
  const uint8_t *tid;       /* the 12-byte transaction id, data + 8 */
  uint32_t username_off;    /* USERNAME value */
  uint32_t username_len;
  uint32_t integrity_off;   /* MESSAGE-INTEGRITY attribute header */
  uint32_t fingerprint_off; /* FINGERPRINT attribute header (always last) */
  uint32_t xor_addr_off;    /* XOR-MAPPED-ADDRESS value (8 or 20 bytes) */
  uint32_t xor_addr_len;
  uint32_t error_off;       /* ERROR-CODE value */
  uint32_t error_len;
  uint32_t priority;        /* PRIORITY, if has_priority */
  uint64_t tie_breaker;     /* ICE-CONTROLLING or ICE-CONTROLLED value */
  unsigned has_priority : 1;
  unsigned use_candidate : 1; /* USE-CANDIDATE present */
  unsigned controlling : 1;   /* ICE-CONTROLLING present */
  unsigned controlled : 1;    /* ICE-CONTROLLED present */
  int n_unknown;              /* comprehension-required types not understood */
  uint16_t unknown[SFU_STUN_MAX_UNKNOWN]; /* the first SFU_STUN_MAX_UNKNOWN */
} sfu_stun_msg_t;

/*
 * Cheap demultiplexing test (RFC 7983 first byte 0..3, RFC 5389 magic
 * cookie, a length that fits): 1 if `buf` looks like STUN. Not a validation.
 */
static inline int sfu_stun_is_stun(const uint8_t *buf, size_t len) {
  return len >= SFU_STUN_HEADER_LEN && (buf[0] & 0xc0) == 0 && buf[4] == 0x21 &&
         buf[5] == 0x12 && buf[6] == 0xa4 && buf[7] == 0x42 && (buf[3] & 3) == 0 &&
         SFU_STUN_HEADER_LEN + ((size_t)buf[2] << 8 | buf[3]) <= len;
}

/*
 * Parses the message at the start of `buf` (len bytes available) into *m.
 * Returns the bytes the message covers (20 + its length field; a datagram
 * should be exactly that) or SFU_EPROTO with *err_desc set (if err_desc is
 * not NULL): not STUN, an RFC 3489 message without the magic cookie, a
 * truncated or unpadded attribute, a known attribute with a bad length or
 * value, an attribute after FINGERPRINT.
 */
int sfu_stun_parse(const uint8_t *buf, size_t len, sfu_stun_msg_t *m, const char **err_desc);

/*
 * Verifies MESSAGE-INTEGRITY: HMAC-SHA1 keyed with `key` over the message
 * up to the attribute, with the header's length field covering it (RFC 8489
 * 14.5). Returns 0 if it matches, SFU_ENOENT if there is none, SFU_EACCES
 * if it does not match, SFU_ENOMEM/SFU_EPROTO if OpenSSL failed.
 */
int sfu_stun_check_integrity(const sfu_stun_msg_t *m, const void *key, size_t keylen);

/* Verifies FINGERPRINT: 0, SFU_ENOENT (absent) or SFU_EPROTO (mismatch). */
int sfu_stun_check_fingerprint(const sfu_stun_msg_t *m);

/* Decodes XOR-MAPPED-ADDRESS into a sockaddr_in/in6: 0 or SFU_ENOENT. */
int sfu_stun_xor_addr(const sfu_stun_msg_t *m, struct sockaddr_storage *out);

/* ERROR-CODE as a number (class * 100 + number), or 0 if absent. */
int sfu_stun_error_code(const sfu_stun_msg_t *m);

/* CRC-32 (ISO-HDLC, the zlib/Ethernet one) of n bytes; FINGERPRINT is this
 * xor SFU_STUN_FINGERPRINT_XOR. */
uint32_t sfu_stun_crc32(const uint8_t *p, size_t n);

/*
 * Writer: builds one message in (buf, cap). Every put appends one attribute
 * (zero padded to 4 bytes) and updates the header's length; an attribute
 * that does not fit makes the writer fail (sticky): sfu_stun_finish() then
 * returns SFU_E2BIG. MESSAGE-INTEGRITY and FINGERPRINT must come last, in
 * that order.
 */
typedef struct sfu_stun_writer_s {
  uint8_t *buf; /* the message being written */
  size_t cap;   /* bytes available at buf */
  size_t len;   /* bytes written so far */
  int err;      /* first error, 0 if none */
} sfu_stun_writer_t;

void sfu_stun_writer_init(sfu_stun_writer_t *w, uint8_t *buf, size_t cap, uint16_t type,
                          const uint8_t tid[SFU_STUN_TID_LEN]);
void sfu_stun_put(sfu_stun_writer_t *w, uint16_t type, const void *val, size_t n);
void sfu_stun_put_u32(sfu_stun_writer_t *w, uint16_t type, uint32_t v);
void sfu_stun_put_u64(sfu_stun_writer_t *w, uint16_t type, uint64_t v);
/* XOR-MAPPED-ADDRESS (type) of an AF_INET or AF_INET6 address; another
 * family fails the writer with SFU_EINVAL. */
void sfu_stun_put_xor_addr(sfu_stun_writer_t *w, uint16_t type, const struct sockaddr *sa);
/* ERROR-CODE: code 300..699 and a reason phrase (may be NULL). */
void sfu_stun_put_error(sfu_stun_writer_t *w, int code, const char *reason);
void sfu_stun_put_unknown(sfu_stun_writer_t *w, const uint16_t *types, int n);
void sfu_stun_put_integrity(sfu_stun_writer_t *w, const void *key, size_t keylen);
void sfu_stun_put_fingerprint(sfu_stun_writer_t *w);
/* The message's length, or the writer's first error. */
int sfu_stun_finish(const sfu_stun_writer_t *w);

/*
 * The Binding success response to request `tid` seen from `mapped`:
 * XOR-MAPPED-ADDRESS, MESSAGE-INTEGRITY keyed with `key` (the local ICE
 * password), FINGERPRINT. 64 bytes for IPv4, 76 for IPv6. Returns the
 * length or SFU_E2BIG / SFU_EINVAL.
 */
int sfu_stun_binding_success(uint8_t *buf, size_t cap, const uint8_t tid[SFU_STUN_TID_LEN],
                             const struct sockaddr *mapped, const void *key, size_t keylen);

/*
 * A Binding error response: ERROR-CODE `code` with its standard reason
 * phrase, UNKNOWN-ATTRIBUTES if n_unknown > 0 (420), MESSAGE-INTEGRITY if
 * key is not NULL (only once the request was authenticated: never for 400
 * or 401), FINGERPRINT. Returns the length or a negative code.
 */
int sfu_stun_binding_error(uint8_t *buf, size_t cap, const uint8_t tid[SFU_STUN_TID_LEN],
                           int code, const uint16_t *unknown, int n_unknown, const void *key,
                           size_t keylen);

#endif
