/*
 * transport.c -- ICE + DTLS + SRTP for one participant.
 *
 * DTLS role: the peer's offer says actpass (browsers, aiortc), and the SFU
 * answers `passive`: the peer, a full ICE agent that knows when its checks
 * succeeded, starts the handshake. An offer saying `passive` makes the SFU
 * the client: it sends its ClientHello once ICE is connected. The DTLS
 * retransmission timer is a uv timer re-armed after every DTLS event.
 *
 * The receive path works in place on the ICE agent's buffer (in the room,
 * a recvmmsg slot of the ICE-lite agent; in the client stack, libnice's):
 * one unprotect, then the callback gets the plain packet. Nothing is
 * allocated per packet. Unprotect is given the time the datagram arrived
 * (last_rx_ms): it bounds the peer's inbound SSRCs and evicts idle ones by
 * it (sfu/media/srtp.h); a packet it refuses for that is counted in
 * rx_drop_ssrc_limit, any other refusal in rx_drop_srtp.
 *
 * Lost ICE fails the transport, unless its owner restarts ICE itself (the
 * client stack: sfu_transport_watch_ice()); a restart swaps the ICE stream
 * for a new one of the same agent, under DTLS and SRTP, which go on.
 *
 * Once connected, the DTLS session is released (sfu_dtls_release(): OpenSSL's
 * session freed, some 70 KiB) as soon as the peer shows it has our last
 * flight -- its first SRTP or SRTCP packet authenticates -- or, for a
 * peer that sends nothing, DTLS_RELEASE_MS after `connected`, by the DTLS
 * timer (idle by then). Until then a retransmitted final flight is
 * answered as before.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sfu/base/log.h"
#include "sfu/media/rtp.h"
#include "sfu/base/sfu.h"
#include "sfu/net/transport.h"
#include "signaling/sdp.h"

/* A peer that has not shown it is connected by then has had its final
 * flight retransmissions answered for this long: it resends a lost one
 * after 1 s at most (OpenSSL's and BoringSSL's first timeout; ours is
 * 400 ms), then doubling, so 10 s answer three losses in a row. */
#define DTLS_RELEASE_MS 10000

struct sfu_transport_s {
  sfu_transport_cb_t cb;
  sfu_ice_t *agent;        /* the stream's agent, for a restart (borrowed) */
  sfu_ice_stream_t *ice;
  sfu_transport_ice_cb ice_watch; /* NULL: lost ICE fails the transport */
  sfu_dtls_cert_t *cert;
  sfu_dtls_t *dtls;
  sfu_srtp_t srtp;
  int srtp_ready;
  int dtls_held;           /* connected, OpenSSL's session not released yet */
  int active;              /* we are the DTLS client */
  int ice_connected;
  int failed;
  uv_timer_t dtls_timer;    /* retransmissions; once connected, the release */
  sfu_transport_stats_t stats;
  uint64_t last_rx_ms;
};

static void on_dtls_timer(uv_timer_t *h);

static void arm_dtls_timer(sfu_transport_t *t) {
  int64_t ms = t->dtls && !t->srtp_ready ? sfu_dtls_next_timeout_ms(t->dtls) : -1;
  if (ms < 0)
    uv_timer_stop(&t->dtls_timer);
  else
    uv_timer_start(&t->dtls_timer, on_dtls_timer, (uint64_t)ms, 0);
}

static void on_dtls_timer(uv_timer_t *h) {
  sfu_transport_t *t = h->data;
  if (!t->dtls) return;
  sfu_dtls_on_timeout(t->dtls);
  arm_dtls_timer(t);
}

/* The peer is done with the handshake: DTLS keeps only what it needs. */
static void release_dtls(sfu_transport_t *t) {
  t->dtls_held = 0;
  uv_timer_stop(&t->dtls_timer);
  if (t->dtls) sfu_dtls_release(t->dtls);
}

static void on_release_timer(uv_timer_t *h) { release_dtls(h->data); }

static void fail(sfu_transport_t *t, const char *why) {
  if (t->failed) return;
  t->failed = 1;
  t->cb.failed(t->cb.arg, why);
}

static void dtls_send(void *arg, const uint8_t *data, size_t len) {
  sfu_transport_t *t = arg;
  if (sfu_ice_send(t->ice, data, len) != 0) t->stats.tx_drop++;
}

static void dtls_connected(void *arg, const sfu_srtp_keys_t *keys) {
  sfu_transport_t *t = arg;
  int rv = sfu_srtp_create(&t->srtp, keys);
  if (rv != 0) {
    fail(t, "cannot create SRTP sessions");
    return;
  }
  t->srtp_ready = 1;
  t->dtls_held = 1; /* released at the peer's first packet, or then: */
  uv_timer_start(&t->dtls_timer, on_release_timer, DTLS_RELEASE_MS, 0);
  t->cb.connected(t->cb.arg);
}

static void dtls_failed(void *arg, const char *why) { fail(arg, why); }

static void on_ice_recv(void *arg, uint8_t *buf, size_t len) {
  sfu_transport_t *t = arg;
  uint8_t b = len ? buf[0] : 0;
  t->last_rx_ms = sfu_now_ms();
  if (b >= 20 && b <= 63) {
    if (t->dtls) {
      sfu_dtls_input(t->dtls, buf, len);
      if (!t->srtp_ready) arm_dtls_timer(t);
    } else {
      t->stats.rx_drop_demux++;
    }
    return;
  }
  if (b < 128 || b > 191 || len < 12) {
    t->stats.rx_drop_demux++;
    return;
  }
  if (!t->srtp_ready) {
    t->stats.rx_drop_srtp++;
    return;
  }
  size_t n = len;
  int rtcp = sfu_is_rtcp(buf, len);
  int rv = rtcp ? sfu_srtp_unprotect_rtcp(&t->srtp, buf, &n, t->last_rx_ms)
                : sfu_srtp_unprotect(&t->srtp, buf, &n, t->last_rx_ms);
  if (rv != 0) {
    if (rv == SFU_EBUSY)
      t->stats.rx_drop_ssrc_limit++;
    else
      t->stats.rx_drop_srtp++;
    return;
  }
  t->stats.rx_packets++;
  t->stats.rx_bytes += n;
  if (t->dtls_held) release_dtls(t);
  if (rtcp)
    t->cb.rtcp(t->cb.arg, buf, n);
  else
    t->cb.rtp(t->cb.arg, buf, n);
}

static void on_ice_state(void *arg, int connected) {
  sfu_transport_t *t = arg;
  t->ice_connected = connected;
  if (t->ice_watch) t->ice_watch(t->cb.arg, connected);
  if (!connected) {
    if (!t->ice_watch) fail(t, "ICE failed");
    return;
  }
  if (t->active && t->dtls && !t->srtp_ready) {
    sfu_dtls_start(t->dtls);
    arm_dtls_timer(t);
  }
}

int sfu_transport_create(sfu_transport_t **out, uv_loop_t *loop, sfu_ice_t *ice,
                         sfu_dtls_cert_t *cert, const sfu_transport_cb_t *cb) {
  sfu_transport_t *t = calloc(1, sizeof(*t));
  *out = NULL;
  if (!t) return SFU_ENOMEM;
  t->cb = *cb;
  t->cert = cert;
  t->agent = ice;
  sfu_ice_cb_t icb = {t, on_ice_recv, on_ice_state};
  int rv = sfu_ice_stream_create(ice, &icb, &t->ice);
  if (rv != 0) {
    free(t);
    return rv;
  }
  uv_timer_init(loop, &t->dtls_timer);
  t->dtls_timer.data = t;
  t->last_rx_ms = sfu_now_ms();
  *out = t;
  return 0;
}

int sfu_transport_set_remote(sfu_transport_t *t, const char *ufrag, const char *pwd,
                             const char *fp_alg, const uint8_t *fp, size_t fp_len,
                             const char *setup, const char **our_setup) {
  int rv = sfu_ice_set_remote(t->ice, ufrag, pwd);
  if (rv < 0) return rv;
  if (!t->dtls) {
    if (!fp_alg || !fp_alg[0] || fp_len == 0) return SFU_EINVAL;
    t->active = setup && strcmp(setup, "passive") == 0;
    sfu_dtls_cb_t dcb = {t, dtls_send, dtls_connected, dtls_failed};
    rv = sfu_dtls_create(&t->dtls, t->cert, t->active ? SFU_DTLS_ACTIVE : SFU_DTLS_PASSIVE,
                         fp_alg, fp, fp_len, &dcb);
    if (rv != 0) return rv;
    if (t->active && t->ice_connected) { /* the peer's checks came first */
      sfu_dtls_start(t->dtls);
      arm_dtls_timer(t);
    }
  }
  *our_setup = t->active ? "active" : "passive";
  return 0;
}

int sfu_transport_add_candidate(sfu_transport_t *t, const char *cand) {
  return sfu_ice_add_remote_candidate(t->ice, cand);
}

void sfu_transport_watch_ice(sfu_transport_t *t, sfu_transport_ice_cb cb) { t->ice_watch = cb; }

int sfu_transport_restart_ice(sfu_transport_t *t) {
  sfu_ice_stream_t *fresh = NULL;
  sfu_ice_cb_t icb = {t, on_ice_recv, on_ice_state};
  int rv = sfu_ice_stream_create(t->agent, &icb, &fresh);
  if (rv != 0) return rv;
  sfu_ice_stream_destroy(t->ice);
  t->ice = fresh;
  t->ice_connected = 0;
  return 0;
}

sfu_ice_stream_t *sfu_transport_ice(sfu_transport_t *t) { return t->ice; }

static int send_protected(sfu_transport_t *t, uint8_t *buf, size_t len, size_t cap, int rtcp) {
  if (!t->srtp_ready) {
    t->stats.tx_drop++;
    return SFU_EAGAIN;
  }
  int rv = rtcp ? sfu_srtp_protect_rtcp(&t->srtp, buf, &len, cap)
                : sfu_srtp_protect(&t->srtp, buf, &len, cap);
  if (rv == 0) rv = sfu_ice_send(t->ice, buf, len);
  if (rv != 0) {
    t->stats.tx_drop++;
    return rv;
  }
  t->stats.tx_packets++;
  t->stats.tx_bytes += len;
  return 0;
}

int sfu_transport_send_rtp(sfu_transport_t *t, uint8_t *buf, size_t len, size_t cap) {
  return send_protected(t, buf, len, cap, 0);
}

int sfu_transport_send_rtcp(sfu_transport_t *t, uint8_t *buf, size_t len, size_t cap) {
  return send_protected(t, buf, len, cap, 1);
}

int sfu_transport_ready(const sfu_transport_t *t) { return t->srtp_ready; }
const sfu_transport_stats_t *sfu_transport_stats(const sfu_transport_t *t) { return &t->stats; }
uint64_t sfu_transport_last_rx_ms(const sfu_transport_t *t) { return t->last_rx_ms; }
int sfu__transport_dtls_released(const sfu_transport_t *t) {
  return t->dtls && sfu__dtls_released(t->dtls);
}

static void on_timer_closed(uv_handle_t *h) { free(h->data); }

void sfu_transport_destroy(sfu_transport_t *t) {
  if (!t) return;
  if (t->dtls) sfu_dtls_destroy(t->dtls);
  if (t->srtp_ready) sfu_srtp_destroy(&t->srtp);
  sfu_ice_stream_destroy(t->ice);
  uv_close((uv_handle_t *)&t->dtls_timer, on_timer_closed);
}

void sfu_transport_put_sdp(sfu_transport_t *t, sfu_sdp_media_t *m, const char *setup) {
  snprintf(m->ice_ufrag, sizeof(m->ice_ufrag), "%s", sfu_ice_ufrag(t->ice));
  snprintf(m->ice_pwd, sizeof(m->ice_pwd), "%s", sfu_ice_pwd(t->ice));
  snprintf(m->fp_alg, sizeof(m->fp_alg), "sha-256");
  int n = sfu_sdp_fingerprint_parse(sfu_dtls_cert_fingerprint(t->cert), m->fp, sizeof(m->fp));
  m->fp_len = n > 0 ? (size_t)n : 0;
  snprintf(m->setup, sizeof(m->setup), "%s", setup);
  m->rtcp_mux = 1;
  m->ncandidates = sfu_ice_local_candidates(t->ice, m->candidates, SFU_SDP_MAX_CANDIDATES);
  m->end_of_candidates = 1;
}
