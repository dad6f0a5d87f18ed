/*
 * sfu.h -- umbrella header: error codes and the pieces every module shares.
 *
 * Functions return int: 0 on success or a negative SFU_E* code. Where a
 * POSIX errno fits, the code is its negative value (as libuv does), so
 * sfu_strerror() also explains codes coming back from libuv calls.
 */
#ifndef SFU_SFU_H
#define SFU_SFU_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#define SFU_ERR_MAP(XX)                                                      \
  XX(EINVAL, -EINVAL, "invalid argument")                                    \
  XX(ENOMEM, -ENOMEM, "out of memory")                                       \
  XX(ENOENT, -ENOENT, "no such entry")                                       \
  XX(EEXIST, -EEXIST, "already exists")                                      \
  XX(EAGAIN, -EAGAIN, "try again")                                           \
  XX(E2BIG, -E2BIG, "too large")                                             \
  XX(EPROTO, -EPROTO, "protocol error")                                      \
  XX(EBUSY, -EBUSY, "busy")                                                  \
  XX(ECANCELED, -ECANCELED, "cancelled")                                     \
  XX(ETIMEDOUT, -ETIMEDOUT, "timed out")                                     \
  XX(EACCES, -EACCES, "permission denied")                                   \
  XX(EMSGSIZE, -EMSGSIZE, "message too long")                                \
  XX(ETOKEN, -4001, "invalid token")                                         \
  XX(EEXPIRED, -4002, "token expired")                                       \
  XX(EWRONGROOM, -4003, "token is for another room")                         \
  XX(EDRAINING, -4004, "node is draining")                                   \
  XX(ECAPACITY, -4005, "node at capacity")

typedef enum {
#define XX(name, val, msg) SFU_##name = (val),
  SFU_ERR_MAP(XX)
#undef XX
} sfu_errno_t;

/* Human text for an SFU_E* code or a negative errno (from libuv too). */
const char *sfu_strerror(int err);
/* Short symbolic name: "EINVAL", "ETOKEN", ... */
const char *sfu_err_name(int err);

/* Monotonic clock in milliseconds / microseconds, and wall clock in ms. */
uint64_t sfu_now_ms(void);
uint64_t sfu_now_us(void);
int64_t sfu_wall_ms(void);

/* n random bytes from the CSPRNG (sfu/base/rand.c); aborts the process if
 * it fails: nothing random is safe then. The only caller of RAND_bytes. */
void sfu_random_bytes(void *out, size_t n);
/* A random 32-bit value (SSRCs, seeds). */
uint32_t sfu_random_u32(void);
/* Writes `prefix` then 2 * nbytes random lowercase hex digits and a NUL
 * (out must hold strlen(prefix) + 2 * nbytes + 1; nbytes <= 64). */
void sfu_random_hex(char *out, const char *prefix, size_t nbytes);

/* Version and the SRTP library it links, as "libsrtp2 2.5.0 (openssl)". */
const char *sfu_version(void);
const char *sfu_srtp_description(void);

#define SFU_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
