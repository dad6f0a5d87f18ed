/*
 * srtp.h -- SRTP/SRTCP protection for one peer: a thin layer over libsrtp2
 * (built with its OpenSSL backend, see docs/architecture.md §3).
 *
 * A peer has two libsrtp sessions. `in` holds the peer's write key and
 * unprotects everything it sends us. `out` holds our write key and protects
 * everything we send it. Both use wildcard SSRC templates
 * (ssrc_any_inbound, ssrc_any_outbound). libsrtp clones a per-SSRC stream
 * from the template the first time an SSRC appears: on the inbound side
 * only after the packet authenticates, so forged SSRCs allocate nothing.
 * That is one allocation per new SSRC, none per packet.
 *
 * Everything works in place. Unprotect shrinks the packet. Protect grows it
 * by the auth tag (and the SRTCP index), so the caller's buffer must have
 * SFU_SRTP_TRAILER bytes of tailroom (the call engine's scratch buffer,
 * SFU_PKT_CAP bytes, is sized for it).
 *
 * Failures on the receive path are counted, never logged per packet: here,
 * and in the transport's rx_drop_srtp, which the room's stats report as
 * drop_srtp.
 */
#ifndef SFU_SRTP_H
#define SFU_SRTP_H

#include <stddef.h>
#include <stdint.h>

#include <srtp2/srtp.h>

#include "sfu/media/dtls.h" /* sfu_srtp_keys_t, sfu_srtp_profile_t */

/*
 * Tailroom protect may write past the packet: SRTP_MAX_TRAILER_LEN (16-byte
 * tag + 128-byte MKI allowance) plus the 4-byte SRTCP index. Our policies
 * use no MKI, so the real growth is at most 20 bytes.
 */
#define SFU_SRTP_TRAILER 148

/*
 * Initializes libsrtp (srtp_init: loads the crypto kernel and runs its
 * self-tests). Call it once per process before the first session.
 * sfu_srtp_create() calls it too. It is idempotent but not thread-safe
 * (one loop thread). Returns 0 or SFU_EPROTO.
 */
int sfu_srtp_library_init(void);

/*
 * Per-peer SRTP state, embedded in the transport. The counters are for
 * the owner to read. A zeroed struct is a valid "not created" state that
 * sfu_srtp_destroy() accepts.
 */
typedef struct sfu_srtp_s {
  srtp_t in;                   /* peer's key: unprotect RTP and RTCP */
  srtp_t out;                  /* our key: protect RTP and RTCP */
  sfu_srtp_profile_t profile;  /* profile the keys came with */
  uint64_t unprotect_failures; /* auth failed, malformed or too short */
  uint64_t replay_drops;       /* duplicate, or older than the window */
} sfu_srtp_t;

/*
 * Creates both sessions from DTLS-exported keys: inbound with
 * remote_key/remote_salt, outbound with local_key/local_salt. Both use
 * AEAD_AES_128_GCM (RFC 7714, for SRTCP too) or AES_CM_128_HMAC_SHA1_80
 * (RTP and RTCP) as the profile says. The replay window is 1024 packets.
 * Outbound allows repeated sequence numbers (allow_repeat_tx), because
 * NACK retransmissions resend the same packet. That is safe only because
 * the bytes are identical, which nack.c guarantees by resending what it
 * stored.
 * Returns 0, SFU_EINVAL (unknown profile, or key/salt lengths not
 * 16/12 or 16/14) or SFU_ENOMEM. The key copies libsrtp does not keep are
 * wiped. On failure `s` is zeroed.
 */
int sfu_srtp_create(sfu_srtp_t *s, const sfu_srtp_keys_t *k);

/*
 * Verifies and decrypts one SRTP packet in place. *len is the datagram
 * length on entry and the RTP length on success.
 * Returns 0, SFU_EEXIST for a replay (counted in replay_drops; drop it
 * quietly, since duplicates happen on real networks), or SFU_EPROTO if
 * authentication failed or the packet is malformed (counted in
 * unprotect_failures). On error the buffer content is unspecified.
 */
int sfu_srtp_unprotect(sfu_srtp_t *s, uint8_t *buf, size_t *len);
/* Same for one SRTCP packet (a compound RTCP packet after decryption). */
int sfu_srtp_unprotect_rtcp(sfu_srtp_t *s, uint8_t *buf, size_t *len);

/*
 * Encrypts and authenticates one RTP packet in place. The buffer holds *len
 * bytes and has room for `cap`. On success *len is the SRTP length.
 * Returns 0, SFU_E2BIG if cap < *len + SFU_SRTP_TRAILER, SFU_EINVAL if the
 * packet is shorter than an RTP header or its header runs past *len, or
 * SFU_EPROTO for any other libsrtp refusal. Each libsrtp status is logged
 * the first time it occurs in the process.
 */
int sfu_srtp_protect(sfu_srtp_t *s, uint8_t *buf, size_t *len, size_t cap);
/* Same for one (compound) RTCP packet; appends the E flag and SRTCP index
 * before the tag. */
int sfu_srtp_protect_rtcp(sfu_srtp_t *s, uint8_t *buf, size_t *len,
                          size_t cap);

/* Frees both sessions and zeroes `s`. A zeroed `s` is fine. */
void sfu_srtp_destroy(sfu_srtp_t *s);

#endif
