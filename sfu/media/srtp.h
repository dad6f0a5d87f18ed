/*
 * srtp.h -- SRTP/SRTCP protection for one peer: a thin layer over libsrtp2
 * (built with its OpenSSL backend, see docs/architecture.md §3).
 *
 * A peer has two libsrtp sessions. `in` holds the peer's write key and
 * unprotects everything it sends us. `out` holds our write key and protects
 * everything we send it. Both use wildcard SSRC templates
 * (ssrc_any_inbound, ssrc_any_outbound). libsrtp clones a per-SSRC stream
 * from the template the first time an SSRC appears (three allocations,
 * about 380 bytes) and finds a packet's stream by walking a list of them.
 * On the inbound side the peer picks the SSRCs, so this file bounds them:
 * a table of at most SFU_SRTP_MAX_SSRCS inbound SSRCs, checked on the
 * clear header before libsrtp sees the packet. A packet from an SSRC not
 * in the table, when the table is full and no entry has been idle for
 * SFU_SRTP_SSRC_IDLE_MS, is dropped and counted (ssrc_limit_drops). A new
 * SSRC enters the table only once a packet from it authenticates, and a
 * packet that fails leaves no stream behind. See
 * docs/internals/dtls-srtp.md, "Inbound SSRCs".
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
 * Inbound SSRCs one peer may have streams for at a time, RTP and RTCP
 * together (libsrtp keeps one stream per SSRC for both).
 *
 * A peer's own media is an audio SSRC, up to 3 simulcast layers and their
 * 3 RTX SSRCs, maybe a FlexFEC SSRC: 8, twice that while a republished
 * track's old SSRCs have not gone idle yet. That would fit in 16 or 32.
 * But the RTCP of the peer's receivers counts too, and some clients send
 * it from one SSRC per transceiver: aiortc 1.4 (each receiver sends RR,
 * NACK and PLI from its sender's random SSRC) and Firefox (an a=ssrc in
 * every m-section, recvonly ones included). A subscriber here has an
 * m-line for every track it receives, so such a client in a room of N
 * uses about 2N + 8 SSRCs: 208 at the default room limit of 100. (Chrome
 * sends receive-only RTCP from one fixed SSRC, libwebrtc's
 * kDefaultRtcpReceiverReportSsrc.) 256 covers a full default room with
 * some churn to spare, and bounds what one peer can make libsrtp hold and
 * walk per packet at 256 streams, about 100 KB, where tens of thousands
 * were possible before.
 */
#define SFU_SRTP_MAX_SSRCS 256

/*
 * How long an inbound SSRC must go without an authenticated packet before
 * a new SSRC may take its place in a full table (its libsrtp stream is
 * then removed). 30 s, ICE's consent timeout: a live stream is never that
 * quiet, only a stopped one or a paused simulcast layer, which takes a
 * slot again when it resumes (docs/internals/dtls-srtp.md says what it
 * loses).
 */
#define SFU_SRTP_SSRC_IDLE_MS 30000

/*
 * Entries the SSRC table starts with, at the peer's first packet; it
 * doubles when a new SSRC finds it full, up to SFU_SRTP_MAX_SSRCS. A
 * peer's own media fits in 8 (see above), so most peers never grow it.
 */
#define SFU_SRTP_SSRCS_FIRST 8

/*
 * Per-peer SRTP state, embedded in the transport. The counters are for
 * the owner to read. A zeroed struct is a valid "not created" state that
 * sfu_srtp_destroy() accepts. The SSRC table is one allocation, made at
 * the first packet and grown by doubling (12 bytes an entry: 96 bytes for
 * SFU_SRTP_SSRCS_FIRST, 3 KB at SFU_SRTP_MAX_SSRCS), never per packet. Its
 * SSRCs are an array of their own so that the per-packet lookup reads 4
 * bytes an entry.
 */
typedef struct sfu_srtp_s {
  srtp_t in;                   /* peer's key: unprotect RTP and RTCP */
  srtp_t out;                  /* our key: protect RTP and RTCP */
  sfu_srtp_profile_t profile;  /* profile the keys came with */
  uint64_t unprotect_failures; /* auth failed, malformed or too short */
  uint64_t replay_drops;       /* duplicate, or older than the window */
  uint64_t ssrc_limit_drops;   /* new SSRC refused: table full, none idle */
  uint64_t ssrc_evictions;     /* idle SSRCs whose stream made room */
  int ssrcs_n;                 /* entries in use, 0..ssrcs_cap */
  int ssrcs_cap;               /* entries allocated, 0 (none yet), then
                                  SFU_SRTP_SSRCS_FIRST doubling up to
                                  SFU_SRTP_MAX_SSRCS */
  uint32_t *ssrcs;             /* SSRCs `in` has streams for (owned: the
                                  table's one allocation, with ssrc_last_ms) */
  uint64_t *ssrc_last_ms;      /* ssrcs[i]'s last packet that authenticated,
                                  caller's clock (ms) */
  uint64_t ssrc_full_until_ms; /* table full, nothing evictable before
                                  this (ms); 0 = not known */
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
 * length on entry and the RTP length on success. `now_ms` is the caller's
 * monotonic clock: an SSRC's packet that authenticates marks it live at
 * that time, and an SSRC idle for SFU_SRTP_SSRC_IDLE_MS may be evicted.
 * Returns 0, SFU_EEXIST for a replay (counted in replay_drops; drop it
 * quietly, since duplicates happen on real networks), SFU_EBUSY for a new
 * SSRC when the table is full (or cannot grow for want of memory; counted
 * in ssrc_limit_drops; libsrtp never saw the packet), or SFU_EPROTO if
 * authentication failed or the packet is malformed (counted in
 * unprotect_failures). On SFU_EEXIST or SFU_EPROTO the buffer content is
 * unspecified; on SFU_EBUSY it is untouched.
 */
int sfu_srtp_unprotect(sfu_srtp_t *s, uint8_t *buf, size_t *len,
                       uint64_t now_ms);
/* Same for one SRTCP packet (a compound RTCP packet after decryption); its
 * SSRC is the sender SSRC of the first RTCP packet. */
int sfu_srtp_unprotect_rtcp(sfu_srtp_t *s, uint8_t *buf, size_t *len,
                            uint64_t now_ms);

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
