/*
 * test_stun.c -- sfu/media/stun.c: RFC 5769 test vectors (parsed, verified, and
 * rebuilt byte for byte with the writer), malformed messages, and round
 * trips of everything the ICE-lite agent writes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <string.h>
#include <sys/socket.h>

#include "sfu/base/sfu.h"
#include "sfu/media/stun.h"

/* ---- RFC 5769 vectors ------------------------------------------------- */

static const char rfc_pwd[] = "VOkJxbRl1RmTxUk/WvJxBt";
static const uint8_t rfc_tid[12] = {0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34,
                                    0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae};

/* 2.1 Sample Request */
static const uint8_t rfc_req[] = {
    0x00, 0x01, 0x00, 0x58, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6,
    0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x10, 0x53, 0x54, 0x55, 0x4e, 0x20, 0x74,
    0x65, 0x73, 0x74, 0x20, 0x63, 0x6c, 0x69, 0x65, 0x6e, 0x74, 0x00, 0x24, 0x00, 0x04, 0x6e,
    0x00, 0x01, 0xff, 0x80, 0x29, 0x00, 0x08, 0x93, 0x2f, 0xf9, 0xb1, 0x51, 0x26, 0x3b, 0x36,
    0x00, 0x06, 0x00, 0x09, 0x65, 0x76, 0x74, 0x6a, 0x3a, 0x68, 0x36, 0x76, 0x59, 0x20, 0x20,
    0x20, 0x00, 0x08, 0x00, 0x14, 0x9a, 0xea, 0xa7, 0x0c, 0xbf, 0xd8, 0xcb, 0x56, 0x78, 0x1e,
    0xf2, 0xb5, 0xb2, 0xd3, 0xf2, 0x49, 0xc1, 0xb5, 0x71, 0xa2, 0x80, 0x28, 0x00, 0x04, 0xe5,
    0x7a, 0x3b, 0xcf};

/* 2.2 Sample IPv4 Response */
static const uint8_t rfc_resp4[] = {
    0x01, 0x01, 0x00, 0x3c, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34,
    0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74,
    0x20, 0x76, 0x65, 0x63, 0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x08, 0x00, 0x01,
    0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43, 0x00, 0x08, 0x00, 0x14, 0x2b, 0x91, 0xf5, 0x99,
    0xfd, 0x9e, 0x90, 0xc3, 0x8c, 0x74, 0x89, 0xf9, 0x2a, 0xf9, 0xba, 0x53, 0xf0, 0x6b,
    0xe7, 0xd7, 0x80, 0x28, 0x00, 0x04, 0xc0, 0x7d, 0x4c, 0x96};

/* 2.3 Sample IPv6 Response */
static const uint8_t rfc_resp6[] = {
    0x01, 0x01, 0x00, 0x48, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6,
    0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76,
    0x65, 0x63, 0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x14, 0x00, 0x02, 0xa1, 0x47, 0x01,
    0x13, 0xa9, 0xfa, 0xa5, 0xd3, 0xf1, 0x79, 0xbc, 0x25, 0xf4, 0xb5, 0xbe, 0xd2, 0xb9, 0xd9,
    0x00, 0x08, 0x00, 0x14, 0xa3, 0x82, 0x95, 0x4e, 0x4b, 0xe6, 0x7b, 0xf1, 0x17, 0x84, 0xc9,
    0x7c, 0x82, 0x92, 0xc2, 0x75, 0xbf, 0xe3, 0xed, 0x41, 0x80, 0x28, 0x00, 0x04, 0xc8, 0xfb,
    0x0b, 0x4c};

/* 2.4 Sample Request with Long-Term Authentication (no FINGERPRINT) */
static const uint8_t rfc_req_lt[] = {
    0x00, 0x01, 0x00, 0x60, 0x21, 0x12, 0xa4, 0x42, 0x78, 0xad, 0x34, 0x33, 0xc6, 0xad, 0x72,
    0xc0, 0x29, 0xda, 0x41, 0x2e, 0x00, 0x06, 0x00, 0x12, 0xe3, 0x83, 0x9e, 0xe3, 0x83, 0x88,
    0xe3, 0x83, 0xaa, 0xe3, 0x83, 0x83, 0xe3, 0x82, 0xaf, 0xe3, 0x82, 0xb9, 0x00, 0x00, 0x00,
    0x15, 0x00, 0x1c, 0x66, 0x2f, 0x2f, 0x34, 0x39, 0x39, 0x6b, 0x39, 0x35, 0x34, 0x64, 0x36,
    0x4f, 0x4c, 0x33, 0x34, 0x6f, 0x4c, 0x39, 0x46, 0x53, 0x54, 0x76, 0x79, 0x36, 0x34, 0x73,
    0x41, 0x00, 0x14, 0x00, 0x0b, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x2e, 0x6f, 0x72,
    0x67, 0x00, 0x00, 0x08, 0x00, 0x14, 0xf6, 0x70, 0x24, 0x65, 0x6d, 0xd6, 0x4a, 0x3e, 0x02,
    0xb8, 0xe0, 0x71, 0x2e, 0x85, 0xc9, 0xa2, 0x8c, 0xa8, 0x96, 0x66};

/* A nominating check captured from headless Chromium (Debian's chromium)
 * against an ICE-lite answer with ufrag "srvUfrag", pwd below: GOOG-
 * NETWORK-INFO (0xC057, optional) before ICE-CONTROLLING and
 * USE-CANDIDATE. Also in tests/fuzz/corpus/stun/. */
static const char chrome_pwd[] = "srvPasswordsrvPassword12";
static const uint8_t chrome_check[] = {
    0x00, 0x01, 0x00, 0x54, 0x21, 0x12, 0xa4, 0x42, 0x45, 0x50, 0x2f, 0x74, 0x75, 0x62, 0x55,
    0x62, 0x41, 0x44, 0x70, 0x6d, 0x00, 0x06, 0x00, 0x0d, 0x73, 0x72, 0x76, 0x55, 0x66, 0x72,
    0x61, 0x67, 0x3a, 0x45, 0x4b, 0x4e, 0x49, 0x00, 0x00, 0x00, 0xc0, 0x57, 0x00, 0x04, 0x00,
    0x00, 0x03, 0xe7, 0x80, 0x2a, 0x00, 0x08, 0xbc, 0xd8, 0x40, 0xbc, 0x8b, 0x8d, 0xd8, 0xd6,
    0x00, 0x25, 0x00, 0x00, 0x00, 0x24, 0x00, 0x04, 0x6e, 0x00, 0x1e, 0xff, 0x00, 0x08, 0x00,
    0x14, 0xe2, 0x7e, 0x85, 0x9b, 0xb8, 0x95, 0x92, 0x35, 0xb3, 0x32, 0xa9, 0x31, 0x6b, 0x8a,
    0x9a, 0x26, 0x5a, 0xc7, 0x8d, 0x90, 0x80, 0x28, 0x00, 0x04, 0x1f, 0x95, 0x92, 0x18};

static struct sockaddr_in v4(const char *ip, int port) {
  struct sockaddr_in a;
  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  assert_int_equal(inet_pton(AF_INET, ip, &a.sin_addr), 1);
  return a;
}

static struct sockaddr_in6 v6(const char *ip, int port) {
  struct sockaddr_in6 a;
  memset(&a, 0, sizeof(a));
  a.sin6_family = AF_INET6;
  a.sin6_port = htons((uint16_t)port);
  assert_int_equal(inet_pton(AF_INET6, ip, &a.sin6_addr), 1);
  return a;
}

static void parse_ok(const uint8_t *b, size_t n, sfu_stun_msg_t *m) {
  const char *err = NULL;
  int rv = sfu_stun_parse(b, n, m, &err);
  if (rv < 0) fail_msg("parse failed: %s", err);
  assert_int_equal(rv, (int)n);
}

static void parse_bad(const uint8_t *b, size_t n) {
  sfu_stun_msg_t m;
  const char *err = NULL;
  assert_int_equal(sfu_stun_parse(b, n, &m, &err), SFU_EPROTO);
  assert_non_null(err);
}

static void test_crc32(void **state) {
  assert_int_equal(sfu_stun_crc32((const uint8_t *)"123456789", 9), 0xcbf43926u);
  assert_int_equal(sfu_stun_crc32(NULL, 0), 0);
}

static void test_rfc5769_request(void **state) {
  sfu_stun_msg_t m;
  parse_ok(rfc_req, sizeof(rfc_req), &m);
  assert_int_equal(m.type, SFU_STUN_BINDING_REQUEST);
  assert_int_equal(m.cls, SFU_STUN_REQUEST);
  assert_int_equal(m.method, SFU_STUN_METHOD_BINDING);
  assert_memory_equal(m.tid, rfc_tid, 12);
  assert_int_equal(m.username_len, 9);
  assert_memory_equal(m.data + m.username_off, "evtj:h6vY", 9);
  assert_true(m.has_priority);
  assert_int_equal(m.priority, 0x6e0001ff);
  assert_true(m.controlled);
  assert_false(m.controlling);
  assert_false(m.use_candidate);
  assert_true(m.tie_breaker == 0x932ff9b151263b36ull);
  assert_int_equal(m.n_unknown, 0); /* SOFTWARE is comprehension-optional */
  assert_int_equal(m.integrity_off, 20 + 20 + 8 + 12 + 16);
  assert_int_equal(m.fingerprint_off, sizeof(rfc_req) - 8);
  assert_int_equal(sfu_stun_check_integrity(&m, rfc_pwd, strlen(rfc_pwd)), 0);
  assert_int_equal(sfu_stun_check_integrity(&m, "VOkJxbRl1RmTxUk/WvJxBT", 22), SFU_EACCES);
  assert_int_equal(sfu_stun_check_fingerprint(&m), 0);
  assert_int_equal(sfu_stun_xor_addr(&m, &(struct sockaddr_storage){0}), SFU_ENOENT);

  /* One flipped bit anywhere before FINGERPRINT breaks it. */
  uint8_t b[sizeof(rfc_req)];
  for (size_t i = 0; i < sizeof(rfc_req) - 4; i++) {
    memcpy(b, rfc_req, sizeof(b));
    b[i] ^= 0x01;
    sfu_stun_msg_t x;
    if (sfu_stun_parse(b, sizeof(b), &x, NULL) < 0) continue; /* header bits */
    assert_int_not_equal(sfu_stun_check_fingerprint(&x), 0);
    if (i < m.integrity_off + 24 && (i < 2 || i >= 4))
      assert_int_not_equal(sfu_stun_check_integrity(&x, rfc_pwd, strlen(rfc_pwd)), 0);
  }
}

static void test_rfc5769_response_v4(void **state) {
  sfu_stun_msg_t m;
  struct sockaddr_storage ss;
  parse_ok(rfc_resp4, sizeof(rfc_resp4), &m);
  assert_int_equal(m.type, SFU_STUN_BINDING_SUCCESS);
  assert_int_equal(m.cls, SFU_STUN_SUCCESS);
  assert_int_equal(sfu_stun_check_integrity(&m, rfc_pwd, strlen(rfc_pwd)), 0);
  assert_int_equal(sfu_stun_check_fingerprint(&m), 0);
  assert_int_equal(sfu_stun_xor_addr(&m, &ss), 0);
  struct sockaddr_in want = v4("192.0.2.1", 32853);
  assert_int_equal(ss.ss_family, AF_INET);
  assert_memory_equal(&((struct sockaddr_in *)&ss)->sin_addr, &want.sin_addr, 4);
  assert_int_equal(((struct sockaddr_in *)&ss)->sin_port, want.sin_port);
}

static void test_rfc5769_response_v6(void **state) {
  sfu_stun_msg_t m;
  struct sockaddr_storage ss;
  parse_ok(rfc_resp6, sizeof(rfc_resp6), &m);
  assert_int_equal(sfu_stun_check_integrity(&m, rfc_pwd, strlen(rfc_pwd)), 0);
  assert_int_equal(sfu_stun_check_fingerprint(&m), 0);
  assert_int_equal(sfu_stun_xor_addr(&m, &ss), 0);
  struct sockaddr_in6 want = v6("2001:db8:1234:5678:11:2233:4455:6677", 32853);
  assert_int_equal(ss.ss_family, AF_INET6);
  assert_memory_equal(&((struct sockaddr_in6 *)&ss)->sin6_addr, &want.sin6_addr, 16);
  assert_int_equal(((struct sockaddr_in6 *)&ss)->sin6_port, want.sin6_port);
}

/* The long-term vector: another HMAC key (MD5 of user:realm:pass), no
 * FINGERPRINT, and two comprehension-required attributes (NONCE, REALM)
 * an ICE agent does not understand. */
static void test_rfc5769_long_term(void **state) {
  sfu_stun_msg_t m;
  parse_ok(rfc_req_lt, sizeof(rfc_req_lt), &m);
  assert_int_equal(m.n_unknown, 2);
  assert_int_equal(m.unknown[0], 0x0015);
  assert_int_equal(m.unknown[1], 0x0014);
  assert_int_equal(sfu_stun_check_fingerprint(&m), SFU_ENOENT);
  static const char user[] = "\xe3\x83\x9e\xe3\x83\x88\xe3\x83\xaa\xe3\x83\x83\xe3\x82\xaf"
                             "\xe3\x82\xb9:example.org:TheMatrIX";
  uint8_t key[16];
  unsigned kl = 0;
  assert_int_equal(EVP_Digest(user, strlen(user), key, &kl, EVP_md5(), NULL), 1);
  assert_int_equal(sfu_stun_check_integrity(&m, key, kl), 0);
}

/* The writer reproduces the vectors byte for byte. The RFC pads with
 * spaces, the writer with zeros: the pad bytes are patched before
 * MESSAGE-INTEGRITY is computed over them. */
static void test_rfc5769_rebuilt(void **state) {
  uint8_t b[256];
  sfu_stun_writer_t w;

  sfu_stun_writer_init(&w, b, sizeof(b), SFU_STUN_BINDING_REQUEST, rfc_tid);
  sfu_stun_put(&w, SFU_STUN_ATTR_SOFTWARE, "STUN test client", 16);
  sfu_stun_put_u32(&w, SFU_STUN_ATTR_PRIORITY, 0x6e0001ff);
  sfu_stun_put_u64(&w, SFU_STUN_ATTR_ICE_CONTROLLED, 0x932ff9b151263b36ull);
  sfu_stun_put(&w, SFU_STUN_ATTR_USERNAME, "evtj:h6vY", 9);
  memset(b + w.len - 3, 0x20, 3);
  sfu_stun_put_integrity(&w, rfc_pwd, strlen(rfc_pwd));
  sfu_stun_put_fingerprint(&w);
  assert_int_equal(sfu_stun_finish(&w), sizeof(rfc_req));
  assert_memory_equal(b, rfc_req, sizeof(rfc_req));

  struct sockaddr_in a4 = v4("192.0.2.1", 32853);
  sfu_stun_writer_init(&w, b, sizeof(b), SFU_STUN_BINDING_SUCCESS, rfc_tid);
  sfu_stun_put(&w, SFU_STUN_ATTR_SOFTWARE, "test vector", 11);
  b[w.len - 1] = 0x20;
  sfu_stun_put_xor_addr(&w, SFU_STUN_ATTR_XOR_MAPPED_ADDRESS, (struct sockaddr *)&a4);
  sfu_stun_put_integrity(&w, rfc_pwd, strlen(rfc_pwd));
  sfu_stun_put_fingerprint(&w);
  assert_int_equal(sfu_stun_finish(&w), sizeof(rfc_resp4));
  assert_memory_equal(b, rfc_resp4, sizeof(rfc_resp4));

  struct sockaddr_in6 a6 = v6("2001:db8:1234:5678:11:2233:4455:6677", 32853);
  sfu_stun_writer_init(&w, b, sizeof(b), SFU_STUN_BINDING_SUCCESS, rfc_tid);
  sfu_stun_put(&w, SFU_STUN_ATTR_SOFTWARE, "test vector", 11);
  b[w.len - 1] = 0x20;
  sfu_stun_put_xor_addr(&w, SFU_STUN_ATTR_XOR_MAPPED_ADDRESS, (struct sockaddr *)&a6);
  sfu_stun_put_integrity(&w, rfc_pwd, strlen(rfc_pwd));
  sfu_stun_put_fingerprint(&w);
  assert_int_equal(sfu_stun_finish(&w), sizeof(rfc_resp6));
  assert_memory_equal(b, rfc_resp6, sizeof(rfc_resp6));
}

static void test_chromium_check(void **state) {
  sfu_stun_msg_t m;
  parse_ok(chrome_check, sizeof(chrome_check), &m);
  assert_int_equal(m.type, SFU_STUN_BINDING_REQUEST);
  assert_int_equal(m.username_len, 13);
  assert_memory_equal(m.data + m.username_off, "srvUfrag:", 9);
  assert_true(m.controlling && !m.controlled && m.use_candidate && m.has_priority);
  assert_int_equal(m.n_unknown, 0);
  assert_int_equal(sfu_stun_check_integrity(&m, chrome_pwd, strlen(chrome_pwd)), 0);
  assert_int_equal(sfu_stun_check_fingerprint(&m), 0);
}

/* ---- malformed -------------------------------------------------------- */

/* A request with one extra attribute (type, value) spliced in before
 * USERNAME; no integrity. */
static size_t with_attr(uint8_t *b, size_t cap, uint16_t type, const void *v, size_t n) {
  sfu_stun_writer_t w;
  sfu_stun_writer_init(&w, b, cap, SFU_STUN_BINDING_REQUEST, rfc_tid);
  sfu_stun_put(&w, type, v, n);
  sfu_stun_put(&w, SFU_STUN_ATTR_USERNAME, "a:b", 3);
  int len = sfu_stun_finish(&w);
  assert_true(len > 0);
  return (size_t)len;
}

static void test_malformed(void **state) {
  uint8_t b[256];
  size_t n;

  parse_bad(rfc_req, 19);                  /* short */
  parse_bad(rfc_req, sizeof(rfc_req) - 1); /* truncated */
  memcpy(b, rfc_req, sizeof(rfc_req));
  b[0] |= 0x80; /* RTP-like first byte */
  parse_bad(b, sizeof(rfc_req));
  memcpy(b, rfc_req, sizeof(rfc_req));
  b[5] = 0; /* cookie */
  parse_bad(b, sizeof(rfc_req));
  memcpy(b, rfc_req, sizeof(rfc_req));
  b[3] = 0x57; /* length % 4 */
  parse_bad(b, sizeof(rfc_req));
  memcpy(b, rfc_req, sizeof(rfc_req));
  b[3] = 0x5c; /* claims more than there is */
  parse_bad(b, sizeof(rfc_req));
  memcpy(b, rfc_req, sizeof(rfc_req));
  b[23] = 0x11; /* SOFTWARE runs past the end */
  b[22] = 0x01;
  parse_bad(b, sizeof(rfc_req));

  /* An attribute after FINGERPRINT. */
  memcpy(b, rfc_req, sizeof(rfc_req));
  memcpy(b + sizeof(rfc_req), "\x00\x25\x00\x00", 4);
  b[3] += 4;
  parse_bad(b, sizeof(rfc_req) + 4);

  /* Known attributes with impossible lengths or values. */
  static const uint8_t z[24];
  n = with_attr(b, sizeof(b), SFU_STUN_ATTR_PRIORITY, z, 3);
  parse_bad(b, n);
  n = with_attr(b, sizeof(b), SFU_STUN_ATTR_USE_CANDIDATE, z, 4);
  parse_bad(b, n);
  n = with_attr(b, sizeof(b), SFU_STUN_ATTR_ICE_CONTROLLING, z, 4);
  parse_bad(b, n);
  n = with_attr(b, sizeof(b), SFU_STUN_ATTR_MESSAGE_INTEGRITY, z, 16);
  parse_bad(b, n);
  n = with_attr(b, sizeof(b), SFU_STUN_ATTR_FINGERPRINT, z, 8);
  parse_bad(b, n);
  n = with_attr(b, sizeof(b), SFU_STUN_ATTR_XOR_MAPPED_ADDRESS, "\x00\x03\x00\x00\x00\x00\x00\x00", 8);
  parse_bad(b, n);
  n = with_attr(b, sizeof(b), SFU_STUN_ATTR_XOR_MAPPED_ADDRESS, "\x00\x01\x00\x00\x00\x00\x00\x00", 7);
  parse_bad(b, n);
  n = with_attr(b, sizeof(b), SFU_STUN_ATTR_ERROR_CODE, "\x00\x00\x07\x00", 4);
  parse_bad(b, n);
  n = with_attr(b, sizeof(b), SFU_STUN_ATTR_ERROR_CODE, "\x00\x00\x04\x64", 4);
  parse_bad(b, n);
  uint8_t big[600], name[513];
  memset(name, 'u', sizeof(name));
  n = with_attr(big, sizeof(big), SFU_STUN_ATTR_USERNAME, name, sizeof(name));
  parse_bad(big, n);

  /* Not STUN by the demultiplexer's test either. */
  static const uint8_t rtp[24] = {0x80, 0x6f};
  static const uint8_t dtls[24] = {0x16, 0xfe, 0xfd};
  assert_false(sfu_stun_is_stun(rtp, sizeof(rtp)));
  assert_false(sfu_stun_is_stun(dtls, sizeof(dtls)));
  assert_true(sfu_stun_is_stun(rfc_req, sizeof(rfc_req)));
  assert_false(sfu_stun_is_stun(rfc_req, sizeof(rfc_req) - 4));
}

/* Attributes after MESSAGE-INTEGRITY are not believed; duplicates: the
 * first counts; unknown optional ones are skipped, required ones listed. */
static void test_attribute_rules(void **state) {
  uint8_t b[256];
  sfu_stun_writer_t w;
  sfu_stun_msg_t m;

  sfu_stun_writer_init(&w, b, sizeof(b), SFU_STUN_BINDING_REQUEST, rfc_tid);
  sfu_stun_put(&w, SFU_STUN_ATTR_USERNAME, "first:x", 7);
  sfu_stun_put(&w, SFU_STUN_ATTR_USERNAME, "second:x", 8);
  sfu_stun_put_u32(&w, SFU_STUN_ATTR_PRIORITY, 1);
  sfu_stun_put_u32(&w, SFU_STUN_ATTR_PRIORITY, 2);
  sfu_stun_put(&w, 0xc057, "\x00\x01\x00\x0a", 4); /* Chrome's GOOG-NETWORK-INFO */
  sfu_stun_put(&w, 0x7777, "x", 1);                 /* required, unknown */
  sfu_stun_put_integrity(&w, "pw", 2);
  sfu_stun_put(&w, SFU_STUN_ATTR_USE_CANDIDATE, NULL, 0); /* after MI: ignored */
  sfu_stun_put(&w, 0x7778, NULL, 0);                      /* idem */
  sfu_stun_put_fingerprint(&w);
  int n = sfu_stun_finish(&w);
  assert_true(n > 0);
  parse_ok(b, (size_t)n, &m);
  assert_memory_equal(m.data + m.username_off, "first:x", 7);
  assert_int_equal(m.priority, 1);
  assert_false(m.use_candidate);
  assert_int_equal(m.n_unknown, 1);
  assert_int_equal(m.unknown[0], 0x7777);
  assert_int_equal(sfu_stun_check_integrity(&m, "pw", 2), 0);
  assert_int_equal(sfu_stun_check_fingerprint(&m), 0);
  assert_int_equal(sfu_stun_check_integrity(&m, "", 0), SFU_EACCES);

  /* No MESSAGE-INTEGRITY at all. */
  sfu_stun_writer_init(&w, b, sizeof(b), SFU_STUN_BINDING_INDICATION, rfc_tid);
  sfu_stun_put_fingerprint(&w);
  n = sfu_stun_finish(&w);
  parse_ok(b, (size_t)n, &m);
  assert_int_equal(m.cls, SFU_STUN_INDICATION);
  assert_int_equal(sfu_stun_check_integrity(&m, "pw", 2), SFU_ENOENT);
  assert_int_equal(sfu_stun_check_fingerprint(&m), 0);
}

/* ---- round trips ------------------------------------------------------ */

static void test_request_round_trip(void **state) {
  uint8_t b[256];
  sfu_stun_writer_t w;
  sfu_stun_msg_t m;
  const char *pwd = "abcdefghijklmnopqrstuvwx";

  sfu_stun_writer_init(&w, b, sizeof(b), SFU_STUN_BINDING_REQUEST, rfc_tid);
  sfu_stun_put(&w, SFU_STUN_ATTR_USERNAME, "lfrg:rfrag", 10);
  sfu_stun_put_u32(&w, SFU_STUN_ATTR_PRIORITY, 1853824767);
  sfu_stun_put_u64(&w, SFU_STUN_ATTR_ICE_CONTROLLING, 0x0102030405060708ull);
  sfu_stun_put(&w, SFU_STUN_ATTR_USE_CANDIDATE, NULL, 0);
  sfu_stun_put_integrity(&w, pwd, strlen(pwd));
  sfu_stun_put_fingerprint(&w);
  int n = sfu_stun_finish(&w);
  assert_int_equal(n, 20 + 16 + 8 + 12 + 4 + 24 + 8);
  parse_ok(b, (size_t)n, &m);
  assert_int_equal(m.username_len, 10);
  assert_memory_equal(m.data + m.username_off, "lfrg:rfrag", 10);
  assert_int_equal(m.priority, 1853824767);
  assert_true(m.controlling && !m.controlled && m.use_candidate);
  assert_true(m.tie_breaker == 0x0102030405060708ull);
  assert_int_equal(sfu_stun_check_integrity(&m, pwd, strlen(pwd)), 0);
  assert_int_equal(sfu_stun_check_fingerprint(&m), 0);
}

static void check_success(const struct sockaddr *sa, size_t want_len) {
  uint8_t b[128];
  sfu_stun_msg_t m;
  struct sockaddr_storage got;
  int n = sfu_stun_binding_success(b, sizeof(b), rfc_tid, sa, "key", 3);
  assert_int_equal(n, (int)want_len);
  parse_ok(b, (size_t)n, &m);
  assert_int_equal(m.type, SFU_STUN_BINDING_SUCCESS);
  assert_memory_equal(m.tid, rfc_tid, 12);
  assert_int_equal(sfu_stun_check_integrity(&m, "key", 3), 0);
  assert_int_equal(sfu_stun_check_fingerprint(&m), 0);
  assert_int_equal(sfu_stun_xor_addr(&m, &got), 0);
  if (sa->sa_family == AF_INET)
    assert_memory_equal(&got, sa, sizeof(struct sockaddr_in));
  else
    assert_memory_equal(&got, sa, sizeof(struct sockaddr_in6));

  /* Every smaller buffer: SFU_E2BIG, and nothing written past cap. */
  for (size_t cap = 0; cap < want_len; cap++) {
    uint8_t c[128];
    memset(c, 0xa5, sizeof(c));
    assert_int_equal(sfu_stun_binding_success(c, cap, rfc_tid, sa, "key", 3), SFU_E2BIG);
    for (size_t i = cap; i < sizeof(c); i++) assert_int_equal(c[i], 0xa5);
  }
}

static void test_success_round_trip(void **state) {
  struct sockaddr_in a4 = v4("203.0.113.7", 61000);
  struct sockaddr_in6 a6 = v6("2001:db8::42", 1);
  check_success((struct sockaddr *)&a4, 64);
  check_success((struct sockaddr *)&a6, 76);
  struct sockaddr_storage un = {.ss_family = AF_UNIX};
  uint8_t b[128];
  assert_int_equal(sfu_stun_binding_success(b, sizeof(b), rfc_tid, (struct sockaddr *)&un, "k", 1),
                   SFU_EINVAL);
}

static void test_error_round_trip(void **state) {
  uint8_t b[128];
  sfu_stun_msg_t m;
  static const uint16_t unk[] = {0x7777, 0x0015, 0x0014};

  int n = sfu_stun_binding_error(b, sizeof(b), rfc_tid, 401, NULL, 0, NULL, 0);
  assert_true(n > 0);
  parse_ok(b, (size_t)n, &m);
  assert_int_equal(m.type, SFU_STUN_BINDING_ERROR);
  assert_int_equal(m.cls, SFU_STUN_ERROR);
  assert_int_equal(sfu_stun_error_code(&m), 401);
  assert_memory_equal(m.data + m.error_off + 4, "Unauthorized", 12);
  assert_int_equal(m.integrity_off, 0);
  assert_int_equal(sfu_stun_check_fingerprint(&m), 0);

  n = sfu_stun_binding_error(b, sizeof(b), rfc_tid, 487, NULL, 0, "pw", 2);
  parse_ok(b, (size_t)n, &m);
  assert_int_equal(sfu_stun_error_code(&m), 487);
  assert_int_equal(sfu_stun_check_integrity(&m, "pw", 2), 0);
  assert_int_equal(sfu_stun_check_fingerprint(&m), 0);

  n = sfu_stun_binding_error(b, sizeof(b), rfc_tid, 420, unk, 3, "pw", 2);
  parse_ok(b, (size_t)n, &m);
  assert_int_equal(sfu_stun_error_code(&m), 420);
  /* UNKNOWN-ATTRIBUTES follows ERROR-CODE ("Unknown Attribute": 17 + 3 pad) */
  const uint8_t *u = m.data + 20 + 4 + 4 + 20;
  assert_memory_equal(u, "\x00\x0a\x00\x06\x77\x77\x00\x15\x00\x14\x00\x00", 12);
  assert_int_equal(sfu_stun_check_integrity(&m, "pw", 2), 0);

  n = sfu_stun_binding_error(b, sizeof(b), rfc_tid, 400, NULL, 0, NULL, 0);
  parse_ok(b, (size_t)n, &m);
  assert_int_equal(sfu_stun_error_code(&m), 400);
  assert_int_equal(sfu_stun_binding_error(b, sizeof(b), rfc_tid, 200, NULL, 0, NULL, 0),
                   SFU_EINVAL);
  assert_int_equal(sfu_stun_binding_error(b, 30, rfc_tid, 400, NULL, 0, NULL, 0), SFU_E2BIG);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_crc32),
      cmocka_unit_test(test_rfc5769_request),
      cmocka_unit_test(test_rfc5769_response_v4),
      cmocka_unit_test(test_rfc5769_response_v6),
      cmocka_unit_test(test_rfc5769_long_term),
      cmocka_unit_test(test_rfc5769_rebuilt),
      cmocka_unit_test(test_chromium_check),
      cmocka_unit_test(test_malformed),
      cmocka_unit_test(test_attribute_rules),
      cmocka_unit_test(test_request_round_trip),
      cmocka_unit_test(test_success_round_trip),
      cmocka_unit_test(test_error_round_trip),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
