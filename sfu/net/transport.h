/*
 * transport.h -- one participant's network path: ICE stream + DTLS + SRTP,
 * with the RFC 7983 first-byte demultiplexer in front.
 *
 *   datagram from the ICE stream (sfu/net/ice.h), STUN already answered by
 *   the agent: in the room, a receive slot of the ICE-lite agent
 *   (sfu/net/icelite.c, recvmmsg); in the client stack, libnice
 *   (tools/client/nice.c)
 *     first byte 20..63   -> DTLS (handshake, alerts)
 *     first byte 128..191 -> RTP or RTCP (RFC 5761: second byte 192..223
 *                            is RTCP) -> SRTP unprotect -> callback
 *     anything else       -> counted drop
 */
#ifndef SFU_TRANSPORT_H
#define SFU_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "sfu/media/dtls.h"
#include "sfu/net/ice.h"
#include "sfu/media/srtp.h"

typedef struct sfu_transport_cb_s {
  void *arg;
  void (*rtp)(void *arg, uint8_t *buf, size_t len);  /* decrypted, writable */
  void (*rtcp)(void *arg, uint8_t *buf, size_t len); /* decrypted compound */
  void (*connected)(void *arg);                      /* SRTP keys in place */
  void (*failed)(void *arg, const char *why);        /* ICE or DTLS gave up */
} sfu_transport_cb_t;

typedef struct sfu_transport_stats_s {
  uint64_t rx_packets, rx_bytes;      /* SRTP/SRTCP in, decrypted */
  uint64_t rx_drop_demux;             /* not DTLS/RTP/RTCP */
  uint64_t rx_drop_srtp;              /* auth/replay failures, or before keys */
  uint64_t rx_drop_ssrc_limit;        /* new SSRC refused, the peer's table of
                                         inbound SSRCs full (srtp.h) */
  uint64_t tx_packets, tx_bytes;      /* sent */
  uint64_t tx_drop;                   /* protect or send failures */
} sfu_transport_stats_t;

typedef struct sfu_transport_s sfu_transport_t;

/* The ICE stream's state, for an owner that restarts ICE itself: 1
 * connected, 0 lost or failed (sfu_transport_watch_ice()). */
typedef void (*sfu_transport_ice_cb)(void *arg, int connected);

int sfu_transport_create(sfu_transport_t **out, uv_loop_t *loop, sfu_ice_t *ice,
                         sfu_dtls_cert_t *cert, const sfu_transport_cb_t *cb);
/* Applies the peer's SDP transport attributes. `setup` is the peer's
 * a=setup (actpass/active/passive); returns our answer's setup value in
 * `*our_setup`. May be called again on renegotiation: a changed ufrag is an
 * ICE restart; DTLS is kept. */
int sfu_transport_set_remote(sfu_transport_t *t, const char *ufrag, const char *pwd,
                             const char *fp_alg, const uint8_t *fp, size_t fp_len,
                             const char *setup, const char **our_setup);
int sfu_transport_add_candidate(sfu_transport_t *t, const char *cand);
/* For a client that restarts ICE on its own (tools/client/peer.c): from
 * now on every state of the ICE stream goes to `cb` (with the callbacks'
 * `arg`), and ICE that is lost or fails is no longer a failure of the
 * transport: the owner restarts ICE (sfu_transport_restart_ice(), not from
 * inside `cb`) or gives up. Without it (the room) lost ICE is `failed`. */
void sfu_transport_watch_ice(sfu_transport_t *t, sfu_transport_ice_cb cb);
/* Replaces the ICE stream with a new one of the same agent: new local
 * credentials, candidates gathered again (on the addresses that exist
 * now: a client that moved to another network), no remote credentials or
 * candidates until sfu_transport_set_remote() and _add_candidate() give
 * the peer's answer. DTLS and SRTP are kept. 0, or the error of creating
 * the stream (the old one is then kept). */
int sfu_transport_restart_ice(sfu_transport_t *t);
sfu_ice_stream_t *sfu_transport_ice(sfu_transport_t *t);
/* Protects `buf` in place (cap >= len + SFU_SRTP_TRAILER) and sends it. */
int sfu_transport_send_rtp(sfu_transport_t *t, uint8_t *buf, size_t len, size_t cap);
int sfu_transport_send_rtcp(sfu_transport_t *t, uint8_t *buf, size_t len, size_t cap);
int sfu_transport_ready(const sfu_transport_t *t);
const sfu_transport_stats_t *sfu_transport_stats(const sfu_transport_t *t);
uint64_t sfu_transport_last_rx_ms(const sfu_transport_t *t);
/* 1 once the DTLS session's OpenSSL state is released (sfu_dtls_release():
 * at the peer's first authenticated SRTP or SRTCP packet, or by the timer
 * after `connected`), else 0 (also before sfu_transport_set_remote()).
 * For tests (tests/test_transport.c). */
int sfu__transport_dtls_released(const sfu_transport_t *t);
struct sfu_sdp_media_s;
/* Our side of the transport on an m-line: ICE credentials and candidates,
 * certificate fingerprint, `setup`, rtcp-mux (the same on every bundled
 * m-line). */
void sfu_transport_put_sdp(sfu_transport_t *t, struct sfu_sdp_media_s *m, const char *setup);
/* Frees everything; the memory goes once the DTLS timer has closed. */
void sfu_transport_destroy(sfu_transport_t *t);

#endif
