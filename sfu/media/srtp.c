/*
 * srtp.c -- libsrtp2 sessions for one peer (see srtp.h for the contract).
 *
 * Design. A peer's media crosses this file twice per packet at most: once
 * on the way in (unprotect with the peer's key) and once per subscriber on
 * the way out (protect with that subscriber's key). The file therefore does
 * little per packet beyond what libsrtp does: one length check, one call,
 * one switch on the status, and on the way in one scan of the SSRC table.
 * Nothing is allocated per packet (the SSRC table below grows for new
 * SSRCs only, at most six times a peer), nothing logged on the receive
 * path.
 *
 * Inbound SSRCs. With ssrc_any_inbound, libsrtp 2.5 clones a stream from
 * the template for every SSRC whose first packet authenticates, keeps it
 * until the session ends, and finds a packet's stream by walking a linked
 * list. A peer holding the key could thus make it hold and walk streams
 * without end (38,000 in 10 s were measured, and a room's core pegged).
 * So the SSRC is read from the clear header (RTP bytes 8..11, RTCP sender
 * SSRC at 4..7, where libsrtp reads it) and looked up in s->ssrcs first:
 *   known            -> libsrtp; on success, its time is refreshed;
 *   unknown, a slot  -> libsrtp; on success the SSRC takes the slot (an
 *                       idle SSRC in it loses its stream first:
 *                       srtp_remove_stream); on failure nothing changes;
 *   unknown, no slot -> SFU_EBUSY, ssrc_limit_drops, libsrtp never sees it.
 * A slot is a free entry (the table grows by doubling, up to
 * SFU_SRTP_MAX_SSRCS, when a new SSRC finds it full: before libsrtp sees
 * the packet, so nothing can fail after), or the entry idle longest if
 * that is at least SFU_SRTP_SSRC_IDLE_MS. A slot is only taken once the packet
 * authenticates, so garbage cannot evict anything. libsrtp 2.5 itself
 * clones only after authentication (srtp_unprotect, srtp_unprotect_aead
 * and both RTCP paths), but that is its code, not its contract: after a
 * failure for an unknown SSRC we remove whatever stream it may have left.
 * So libsrtp holds a stream exactly for the SSRCs in the table.
 *
 * Keys. libsrtp takes a master key as one buffer: the key followed directly
 * by the salt (16+12 bytes for GCM, 16+14 for AES-CM). dtls.c hands them
 * over separately, as RFC 5764 lays them out, so create() joins them in a
 * stack buffer, lets srtp_create() derive the session keys, then wipes the
 * buffer. libsrtp keeps only derived keys.
 *
 * Status mapping (srtp_err_status_t -> SFU_E*), at this edge only:
 *   ok                          0
 *   (new SSRC, table full)      SFU_EBUSY    ssrc_limit_drops++
 *   replay_fail, replay_old     SFU_EEXIST   replay_drops++
 *   anything else on unprotect  SFU_EPROTO   unprotect_failures++
 *   bad_param, parse_err on protect  SFU_EINVAL (our packet is malformed)
 *   anything else on protect    SFU_EPROTO
 * Statuses that point at a bug or a broken library (not forged input) are
 * logged the first time each one occurs in the process.
 *
 * Lengths. libsrtp uses int lengths and trusts the caller with tailroom.
 * We check tailroom against `cap` and bound every length, so no size_t
 * value ever wraps into a negative int.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h> /* OPENSSL_cleanse */

#include "sfu/base/bytes.h"
#include "sfu/base/log.h"
#include "sfu/base/sfu.h"
#include "sfu/media/srtp.h"

#define RTP_HEADER_MIN 12  /* fixed RTP header, RFC 3550 §5.1 */
#define RTCP_HEADER_MIN 8  /* RTCP header + sender SSRC, RFC 3550 §6.4 */
#define MAX_PACKET 65535   /* nothing larger arrives over UDP */
#define REPLAY_WINDOW 1024 /* packets; libsrtp allows 64..32767 */

#if SFU_SRTP_TRAILER < SRTP_MAX_TRAILER_LEN + 4
#error "SFU_SRTP_TRAILER must cover SRTP_MAX_TRAILER_LEN plus the SRTCP index"
#endif

static int library_ready;
static uint32_t logged_status; /* bit n: status n already logged */

static const char *status_name(srtp_err_status_t st) {
  switch (st) {
  case srtp_err_status_ok: return "ok";
  case srtp_err_status_fail: return "fail";
  case srtp_err_status_bad_param: return "bad_param";
  case srtp_err_status_alloc_fail: return "alloc_fail";
  case srtp_err_status_init_fail: return "init_fail";
  case srtp_err_status_auth_fail: return "auth_fail";
  case srtp_err_status_cipher_fail: return "cipher_fail";
  case srtp_err_status_replay_fail: return "replay_fail";
  case srtp_err_status_replay_old: return "replay_old";
  case srtp_err_status_algo_fail: return "algo_fail";
  case srtp_err_status_no_ctx: return "no_ctx";
  case srtp_err_status_key_expired: return "key_expired";
  case srtp_err_status_parse_err: return "parse_err";
  case srtp_err_status_bad_mki: return "bad_mki";
  case srtp_err_status_pkt_idx_old: return "pkt_idx_old";
  case srtp_err_status_pkt_idx_adv: return "pkt_idx_adv";
  default: return "other";
  }
}

/* Logs `st` the first time it is seen in this process. */
static void log_status_once(const char *what, srtp_err_status_t st) {
  uint32_t bit = (unsigned)st < 32 ? 1u << (unsigned)st : 1u << 31;
  if (logged_status & bit) return;
  logged_status |= bit;
  sfu_log(SFU_LOG_WARN, "srtp", "%s: libsrtp status %d (%s)", what, (int)st,
          status_name(st));
}

int sfu_srtp_library_init(void) {
  srtp_err_status_t st;
  if (library_ready) return 0;
  st = srtp_init();
  if (st != srtp_err_status_ok) {
    log_status_once("srtp_init", st);
    return SFU_EPROTO;
  }
  library_ready = 1;
  return 0;
}

/* Fills the crypto policies for `profile`; -1 if it is not one we know. */
static int set_crypto(srtp_policy_t *p, sfu_srtp_profile_t profile) {
  switch (profile) {
  case SFU_SRTP_AEAD_AES_128_GCM:
    srtp_crypto_policy_set_aes_gcm_128_16_auth(&p->rtp);
    srtp_crypto_policy_set_aes_gcm_128_16_auth(&p->rtcp);
    return 0;
  case SFU_SRTP_AES128_CM_SHA1_80:
    srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&p->rtp);
    srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&p->rtcp);
    return 0;
  }
  return -1;
}

/* Key and salt lengths libsrtp expects for `profile`. */
static int lengths_ok(const sfu_srtp_keys_t *k) {
  size_t salt = k->profile == SFU_SRTP_AEAD_AES_128_GCM ? SRTP_AEAD_SALT_LEN
                                                         : SRTP_SALT_LEN;
  return k->key_len == SRTP_AES_128_KEY_LEN && k->salt_len == salt;
}

/* Creates one session from key||salt; wipes the joined copy. */
static int make_session(srtp_t *out, sfu_srtp_profile_t profile,
                        const sfu_srtp_keys_t *k, int inbound) {
  uint8_t master[SRTP_AES_128_KEY_LEN + SRTP_SALT_LEN];
  srtp_policy_t p;
  srtp_err_status_t st;

  memset(&p, 0, sizeof(p));
  if (set_crypto(&p, profile) < 0) return SFU_EINVAL;
  memcpy(master, inbound ? k->remote_key : k->local_key, k->key_len);
  memcpy(master + k->key_len, inbound ? k->remote_salt : k->local_salt,
         k->salt_len);
  p.ssrc.type = inbound ? ssrc_any_inbound : ssrc_any_outbound;
  p.key = master;
  p.window_size = REPLAY_WINDOW;
  p.allow_repeat_tx = inbound ? 0 : 1;

  st = srtp_create(out, &p);
  OPENSSL_cleanse(master, sizeof(master));
  if (st == srtp_err_status_ok) return 0;
  *out = NULL;
  log_status_once("srtp_create", st);
  return st == srtp_err_status_alloc_fail ? SFU_ENOMEM : SFU_EINVAL;
}

int sfu_srtp_create(sfu_srtp_t *s, const sfu_srtp_keys_t *k) {
  int rv;

  if (s == NULL) return SFU_EINVAL;
  memset(s, 0, sizeof(*s));
  if (k == NULL || !lengths_ok(k)) return SFU_EINVAL;
  rv = sfu_srtp_library_init();
  if (rv) return rv;

  rv = make_session(&s->in, k->profile, k, 1);
  if (rv) goto out;
  rv = make_session(&s->out, k->profile, k, 0);
  if (rv) goto out;
  s->profile = k->profile;
out:
  if (rv) sfu_srtp_destroy(s);
  return rv;
}

/* Maps an unprotect status, counting the failure. */
static int unprotect_result(sfu_srtp_t *s, srtp_err_status_t st, int n,
                            size_t *len) {
  switch (st) {
  case srtp_err_status_ok:
    *len = (size_t)n;
    return 0;
  case srtp_err_status_replay_fail:
  case srtp_err_status_replay_old:
    s->replay_drops++;
    return SFU_EEXIST;
  case srtp_err_status_auth_fail:
  case srtp_err_status_bad_param:
  case srtp_err_status_parse_err:
  case srtp_err_status_bad_mki:
  case srtp_err_status_cipher_fail:
    s->unprotect_failures++; /* forged, corrupt or garbage: expected */
    return SFU_EPROTO;
  default:
    s->unprotect_failures++;
    log_status_once("srtp_unprotect", st); /* not explained by bad input */
    return SFU_EPROTO;
  }
}

/* The SSRC as libsrtp keys its streams: the header's bytes as they lie. */
static uint32_t wire_order(uint32_t ssrc) {
  uint8_t b[4];
  uint32_t v;
  sfu_wr32(b, ssrc);
  memcpy(&v, b, sizeof(v));
  return v;
}

/* Index of `ssrc` in the table, or -1. */
static int ssrc_find(const sfu_srtp_t *s, uint32_t ssrc) {
  for (int i = 0; i < s->ssrcs_n; i++)
    if (s->ssrcs[i] == ssrc) return i;
  return -1;
}

/* Grows the table to twice its entries (SFU_SRTP_SSRCS_FIRST the first
 * time), at most SFU_SRTP_MAX_SSRCS: one allocation, the times first (for
 * their alignment), then the SSRCs. 0, or SFU_ENOMEM (the table as it
 * was). */
static int ssrc_grow(sfu_srtp_t *s) {
  int cap = s->ssrcs_cap ? 2 * s->ssrcs_cap : SFU_SRTP_SSRCS_FIRST;
  uint64_t *last;
  if (cap > SFU_SRTP_MAX_SSRCS) cap = SFU_SRTP_MAX_SSRCS;
  last = malloc((size_t)cap * (sizeof(uint64_t) + sizeof(uint32_t)));
  if (last == NULL) return SFU_ENOMEM;
  if (s->ssrcs_n > 0) {
    memcpy(last, s->ssrc_last_ms, (size_t)s->ssrcs_n * sizeof(uint64_t));
    memcpy(last + cap, s->ssrcs, (size_t)s->ssrcs_n * sizeof(uint32_t));
  }
  free(s->ssrc_last_ms);
  s->ssrc_last_ms = last;
  s->ssrcs = (uint32_t *)(last + cap);
  s->ssrcs_cap = cap;
  return 0;
}

/* The slot a new SSRC may take: the first free entry (the table grown for
 * it if need be), else the entry idle longest if it has been idle
 * SFU_SRTP_SSRC_IDLE_MS; -1 if none, or if the table could not grow. A
 * full table with nothing idle enough notes when its oldest entry will
 * be: the oldest time only grows (entries are refreshed, or replaced by
 * newer ones), so until then a refused packet costs no scan. */
static int ssrc_slot(sfu_srtp_t *s, uint64_t now_ms) {
  int oldest = 0;
  if (s->ssrcs_n < SFU_SRTP_MAX_SSRCS) {
    if (s->ssrcs_n == s->ssrcs_cap && ssrc_grow(s) != 0) return -1;
    return s->ssrcs_n;
  }
  if (now_ms < s->ssrc_full_until_ms) return -1;
  for (int i = 1; i < s->ssrcs_n; i++)
    if (s->ssrc_last_ms[i] < s->ssrc_last_ms[oldest]) oldest = i;
  if (now_ms < s->ssrc_last_ms[oldest] ||
      now_ms - s->ssrc_last_ms[oldest] < SFU_SRTP_SSRC_IDLE_MS) {
    s->ssrc_full_until_ms = s->ssrc_last_ms[oldest] + SFU_SRTP_SSRC_IDLE_MS;
    return -1;
  }
  return oldest;
}

/* Records that `ssrc` authenticated at `now_ms`; `i` is its index or -1,
 * `slot` the slot it may take. */
static void ssrc_seen(sfu_srtp_t *s, int i, int slot, uint32_t ssrc,
                      uint64_t now_ms) {
  if (i < 0) {
    i = slot;
    if (i < s->ssrcs_n) { /* an idle SSRC gives way */
      srtp_remove_stream(s->in, wire_order(s->ssrcs[i]));
      s->ssrc_evictions++;
    } else {
      s->ssrcs_n++;
    }
    s->ssrcs[i] = ssrc;
  }
  s->ssrc_last_ms[i] = now_ms;
}

/* Unprotects one SRTP (rtcp = 0) or SRTCP packet, within the SSRC bound. */
static int unprotect(sfu_srtp_t *s, uint8_t *buf, size_t *len,
                     uint64_t now_ms, int rtcp) {
  size_t min = rtcp ? RTCP_HEADER_MIN : RTP_HEADER_MIN;
  srtp_err_status_t st;
  uint32_t ssrc;
  int i, slot, n;

  if (*len < min || *len > MAX_PACKET || s->in == NULL) {
    s->unprotect_failures++;
    return SFU_EPROTO;
  }
  ssrc = sfu_rd32(buf + (rtcp ? 4 : 8));
  i = ssrc_find(s, ssrc);
  slot = i < 0 ? ssrc_slot(s, now_ms) : i;
  if (slot < 0) {
    s->ssrc_limit_drops++;
    return SFU_EBUSY;
  }
  n = (int)*len;
  st = rtcp ? srtp_unprotect_rtcp(s->in, buf, &n)
            : srtp_unprotect(s->in, buf, &n);
  if (st == srtp_err_status_ok)
    ssrc_seen(s, i, slot, ssrc, now_ms);
  else if (i < 0) /* no stream may outlive a failure (see the top) */
    srtp_remove_stream(s->in, wire_order(ssrc));
  return unprotect_result(s, st, n, len);
}

int sfu_srtp_unprotect(sfu_srtp_t *s, uint8_t *buf, size_t *len,
                       uint64_t now_ms) {
  return unprotect(s, buf, len, now_ms, 0);
}

int sfu_srtp_unprotect_rtcp(sfu_srtp_t *s, uint8_t *buf, size_t *len,
                            uint64_t now_ms) {
  return unprotect(s, buf, len, now_ms, 1);
}

/* Maps a protect status. */
static int protect_result(srtp_err_status_t st, int n, size_t *len) {
  if (st == srtp_err_status_ok) {
    *len = (size_t)n;
    return 0;
  }
  if (st == srtp_err_status_bad_param || st == srtp_err_status_parse_err)
    return SFU_EINVAL;
  log_status_once("srtp_protect", st);
  return SFU_EPROTO;
}

/* Tailroom and size checks shared by both protect calls. */
static int protect_check(const sfu_srtp_t *s, size_t len, size_t cap,
                         size_t min) {
  if (s->out == NULL || len < min) return SFU_EINVAL;
  if (len > MAX_PACKET) return SFU_E2BIG;
  if (cap < len || cap - len < SFU_SRTP_TRAILER) return SFU_E2BIG;
  return 0;
}

int sfu_srtp_protect(sfu_srtp_t *s, uint8_t *buf, size_t *len, size_t cap) {
  srtp_err_status_t st;
  int n, rv = protect_check(s, *len, cap, RTP_HEADER_MIN);
  if (rv) return rv;
  n = (int)*len;
  st = srtp_protect(s->out, buf, &n);
  return protect_result(st, n, len);
}

int sfu_srtp_protect_rtcp(sfu_srtp_t *s, uint8_t *buf, size_t *len,
                          size_t cap) {
  srtp_err_status_t st;
  int n, rv = protect_check(s, *len, cap, RTCP_HEADER_MIN);
  if (rv) return rv;
  n = (int)*len;
  st = srtp_protect_rtcp(s->out, buf, &n);
  return protect_result(st, n, len);
}

void sfu_srtp_destroy(sfu_srtp_t *s) {
  if (s == NULL) return;
  if (s->in) srtp_dealloc(s->in);
  if (s->out) srtp_dealloc(s->out);
  free(s->ssrc_last_ms); /* the SSRC table: ssrcs lives in the same block */
  memset(s, 0, sizeof(*s));
}
