/*
 * fuzz_stun.c -- libFuzzer target for sfu/media/stun.c: sfu_stun_parse() and
 * everything that reads a parsed message, then the writer on what was read.
 *
 * Each input is one datagram. When it parses:
 *
 *   - the view's invariants hold: every recorded offset lies inside the
 *     message, FINGERPRINT is the last attribute, MESSAGE-INTEGRITY before
 *     it, the class/method decode re-encodes to the type;
 *   - integrity (with a key taken from the input's last bytes and with
 *     the USERNAME as key), fingerprint, XOR-MAPPED-ADDRESS and ERROR-CODE
 *     read without faults;
 *   - the success and error responses to its transaction id are written
 *     into exact-size heap buffers (ASan catches a write past them) and
 *     fail with SFU_E2BIG one byte shorter; both re-parse, authenticate
 *     with the key they were written with, carry the same transaction id,
 *     and the success response maps back to the address it was given.
 *
 * Any broken property aborts.
 *
 * Build by hand:
 *   clang -g -fsanitize=fuzzer,address,undefined -I. \
 *     tests/fuzz/fuzz_stun.c sfu/media/stun.c -lcrypto -o /tmp/fstun
 *   /tmp/fstun -max_total_time=60 /tmp/scratch tests/fuzz/corpus/stun
 */
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "sfu/base/sfu.h"
#include "sfu/media/stun.h"
#include "tests/fuzz/check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_written(int (*write)(uint8_t *, size_t, const sfu_stun_msg_t *, const void *, size_t),
                          const sfu_stun_msg_t *m, const void *key, size_t keylen) {
  uint8_t big[256];
  int n = write(big, sizeof(big), m, key, keylen);
  CHECK(n > 0);
  uint8_t *exact = malloc((size_t)n);
  CHECK(exact != NULL);
  CHECK(write(exact, (size_t)n, m, key, keylen) == n);
  CHECK(memcmp(exact, big, (size_t)n) == 0);
  free(exact);
  exact = malloc((size_t)n - 1);
  CHECK(exact != NULL);
  CHECK(write(exact, (size_t)n - 1, m, key, keylen) == SFU_E2BIG);
  free(exact);

  sfu_stun_msg_t r;
  CHECK(sfu_stun_parse(big, (size_t)n, &r, NULL) == n);
  CHECK(memcmp(r.tid, m->tid, SFU_STUN_TID_LEN) == 0);
  CHECK(sfu_stun_check_fingerprint(&r) == 0);
  if (r.integrity_off) CHECK(sfu_stun_check_integrity(&r, key, keylen) == 0);
}

/* The address the success response maps: from the input's own bytes. */
static void addr_from(const sfu_stun_msg_t *m, struct sockaddr_storage *ss) {
  memset(ss, 0, sizeof(*ss));
  if (m->tid[0] & 1) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
    a->sin6_family = AF_INET6;
    memcpy(&a->sin6_addr, m->tid, 12);
    memcpy(&a->sin6_port, m->tid + 2, 2);
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    memcpy(&a->sin_addr, m->tid + 4, 4);
    memcpy(&a->sin_port, m->tid + 8, 2);
  }
}

static int write_success(uint8_t *b, size_t cap, const sfu_stun_msg_t *m, const void *key,
                         size_t keylen) {
  struct sockaddr_storage ss;
  addr_from(m, &ss);
  return sfu_stun_binding_success(b, cap, m->tid, (struct sockaddr *)&ss, key, keylen);
}

static int write_error(uint8_t *b, size_t cap, const sfu_stun_msg_t *m, const void *key,
                       size_t keylen) {
  int code = m->n_unknown ? 420 : m->controlled ? 487 : 401;
  return sfu_stun_binding_error(b, cap, m->tid, code, m->unknown, code == 420 ? m->n_unknown : 0,
                                code == 401 ? NULL : key, keylen);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  sfu_stun_msg_t m;
  const char *err = NULL;
  int n = sfu_stun_parse(data, size, &m, &err);
  if (n < 0) {
    CHECK(n == SFU_EPROTO && err != NULL);
    return 0;
  }
  CHECK(sfu_stun_is_stun(data, size));
  CHECK((size_t)n == m.len && m.len <= size && m.len >= SFU_STUN_HEADER_LEN);
  CHECK(m.data == data && m.tid == data + 8);
  uint16_t t = (uint16_t)((m.method & 0x000f) | ((m.method & 0x0070) << 1) |
                          ((m.method & 0x0f80) << 2) | ((m.cls & 1) << 4) | ((m.cls & 2) << 7));
  CHECK(t == m.type);
  if (m.username_off) CHECK(m.username_off >= 24 && m.username_off + m.username_len <= m.len);
  if (m.xor_addr_off) CHECK(m.xor_addr_off + m.xor_addr_len <= m.len);
  if (m.error_off) CHECK(m.error_off + m.error_len <= m.len);
  if (m.integrity_off) CHECK(m.integrity_off + 24 <= m.len);
  if (m.fingerprint_off) {
    CHECK(m.fingerprint_off + 8 == m.len);
    CHECK(m.fingerprint_off > m.integrity_off);
  }
  CHECK(m.n_unknown >= 0 && m.n_unknown <= SFU_STUN_MAX_UNKNOWN);
  for (int i = 0; i < m.n_unknown; i++) CHECK(m.unknown[i] < 0x8000);

  /* Readers: no fault whatever the key. */
  const uint8_t *key = data + m.len - (m.len > 24 ? 24 : 0);
  size_t keylen = m.len > 24 ? 24 : 0;
  int rv = sfu_stun_check_integrity(&m, key, keylen);
  CHECK(rv == 0 || rv == SFU_EACCES || rv == SFU_ENOENT);
  if (m.username_off) {
    rv = sfu_stun_check_integrity(&m, data + m.username_off, m.username_len);
    CHECK(rv == 0 || rv == SFU_EACCES || rv == SFU_ENOENT);
  }
  rv = sfu_stun_check_fingerprint(&m);
  CHECK(rv == 0 || rv == SFU_EPROTO || rv == SFU_ENOENT);
  struct sockaddr_storage ss;
  CHECK(sfu_stun_xor_addr(&m, &ss) == (m.xor_addr_off ? 0 : SFU_ENOENT));
  int code = sfu_stun_error_code(&m);
  CHECK(m.error_off ? code >= 300 && code <= 699 : code == 0);

  /* Writers on what was read. */
  check_written(write_success, &m, key, keylen);
  check_written(write_error, &m, key, keylen);
  uint8_t b[128];
  int len = write_success(b, sizeof(b), &m, key, keylen);
  sfu_stun_msg_t r;
  CHECK(sfu_stun_parse(b, (size_t)len, &r, NULL) == len);
  struct sockaddr_storage want, got;
  addr_from(&m, &want);
  CHECK(sfu_stun_xor_addr(&r, &got) == 0);
  CHECK(memcmp(&got, &want, want.ss_family == AF_INET ? sizeof(struct sockaddr_in)
                                                       : sizeof(struct sockaddr_in6)) == 0);
  return 0;
}
