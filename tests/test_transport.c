/*
 * test_transport.c -- sfu/net/transport.c: the DTLS session from the
 * handshake to the release of OpenSSL's session, SRTP both ways around
 * it, and the end of the session after it.
 *
 * The transport runs over a fake ICE stream defined here (the functions of
 * sfu/net/ice.h that transport.c calls; the test links the media objects
 * without an ICE agent): what the transport sends is queued, and the test
 * hands it what the peer sends through the stream's recv callback. The
 * peer is an sfu_dtls_t of its own certificate, as a browser is (the DTLS
 * client when it offers actpass, the server when it offers passive), with
 * an SRTP session made from the keys it gets.
 *
 * The clock is simulated. The transport's DTLS timer is a uv timer, and
 * libuv, like sfu_now_ms(), reads CLOCK_MONOTONIC (or CLOCK_MONOTONIC_COARSE)
 * through clock_gettime(). This file defines clock_gettime(): those clocks
 * read the test's time, `sim_ms`, and any other clock is the kernel's. The
 * loop only runs with UV_RUN_NOWAIT, which never waits: a test sets the
 * time, runs one turn of the loop, and sees what the timers did. Nothing
 * sleeps; OpenSSL's own retransmission timer (wall-clock) never fires,
 * since no handshake datagram is lost.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "sfu/base/bytes.h"
#include "sfu/base/log.h"
#include "sfu/base/sfu.h"
#include "sfu/media/dtls.h"
#include "sfu/media/rtp.h"
#include "sfu/media/srtp.h"
#include "sfu/net/ice.h"
#include "sfu/net/transport.h"
#include "tests/dgram_queue.h"

/* transport.c's DTLS_RELEASE_MS, pinned: how long after `connected` the
 * session is released when the peer sends no media. */
#define RELEASE_MS 10000
#define PKT_LEN 100

/* ------------------------------------------------------------------------ */
/* The simulated clock                                                      */
/* ------------------------------------------------------------------------ */

static uint64_t sim_ms = 1000000; /* the monotonic clocks, in ms */

/* Replaces libc's for the whole process: libuv's timers and sfu_now_ms()
 * read the monotonic clocks here. */
int clock_gettime(clockid_t id, struct timespec *ts) {
  if (id != CLOCK_MONOTONIC && id != CLOCK_MONOTONIC_COARSE)
    return (int)syscall(SYS_clock_gettime, id, ts);
  ts->tv_sec = (time_t)(sim_ms / 1000);
  ts->tv_nsec = (long)(sim_ms % 1000) * 1000000;
  return 0;
}

/* ------------------------------------------------------------------------ */
/* The fake ICE agent: one stream, a queue of what it sent                  */
/* ------------------------------------------------------------------------ */

/* The agent: the fixture's, for the life of one test. */
struct sfu_ice_s {
  queue_t out;  /* datagrams the transport sent, not yet delivered; kept
                   here so that what it sends while it is destroyed stays */
  int streams;  /* streams alive */
};

/* The transport's stream, made and freed by the transport. */
struct sfu_ice_stream_s {
  sfu_ice_t *ice;  /* its agent */
  sfu_ice_cb_t cb; /* the transport's callbacks */
  int connected;   /* the test said so: sends go out, else SFU_EAGAIN */
};

int sfu_ice_stream_create(sfu_ice_t *ice, const sfu_ice_cb_t *cb, sfu_ice_stream_t **out) {
  sfu_ice_stream_t *st = calloc(1, sizeof(*st));
  if (!st) return SFU_ENOMEM;
  st->ice = ice;
  st->cb = *cb;
  ice->streams++;
  *out = st;
  return 0;
}

void sfu_ice_stream_destroy(sfu_ice_stream_t *st) {
  if (!st) return;
  st->ice->streams--;
  free(st);
}

const char *sfu_ice_ufrag(const sfu_ice_stream_t *st) { return "ufrag"; }
const char *sfu_ice_pwd(const sfu_ice_stream_t *st) { return "password-password-pass"; }
int sfu_ice_local_candidates(sfu_ice_stream_t *st, char out[][200], int max) { return 0; }
int sfu_ice_set_remote(sfu_ice_stream_t *st, const char *ufrag, const char *pwd) { return 0; }
int sfu_ice_add_remote_candidate(sfu_ice_stream_t *st, const char *cand) { return 0; }

int sfu_ice_send(sfu_ice_stream_t *st, const uint8_t *buf, size_t len) {
  if (!st->connected) return SFU_EAGAIN;
  q_push(&st->ice->out, buf, len);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* The peer, the transport's owner, the fixture                             */
/* ------------------------------------------------------------------------ */

/* The browser: a DTLS session, then SRTP from its keys. */
typedef struct {
  sfu_dtls_t *d;
  queue_t out;        /* DTLS datagrams it sent, not yet delivered */
  int connected, failed;
  char why[128];      /* what `failed` got */
  sfu_srtp_t srtp;    /* made at `connected` */
  int media;          /* SRTP and SRTCP packets it unprotected */
  uint8_t last[256];  /* the last of them, plain */
  size_t last_len;
} peer_t;

/* What the transport's callbacks saw. */
typedef struct {
  int connected, failed;
  char why[128];      /* what `failed` got */
  int rtp, rtcp;      /* packets delivered */
  uint8_t last[256];  /* the last of them, plain */
  size_t last_len;
} owner_t;

/* One test's world, from fx_connect() to fx_free(). */
typedef struct {
  uv_loop_t loop;     /* the transport's loop, run with UV_RUN_NOWAIT */
  sfu_ice_t ice;      /* the fake agent */
  sfu_transport_t *t; /* the transport under test; NULL once destroyed */
  owner_t own;        /* what its callbacks saw */
  peer_t peer;        /* the other end */
  uint64_t t0;        /* sim_ms when the transport connected */
} fx_t;

static sfu_dtls_cert_t *cert_sfu, *cert_peer; /* the room's, the browser's */

static void peer_send(void *arg, const uint8_t *data, size_t len) {
  q_push(&((peer_t *)arg)->out, data, len);
}

static void peer_connected(void *arg, const sfu_srtp_keys_t *keys) {
  peer_t *p = arg;
  p->connected++;
  assert_int_equal(sfu_srtp_create(&p->srtp, keys), 0);
}

static void peer_failed(void *arg, const char *why) {
  peer_t *p = arg;
  p->failed++;
  snprintf(p->why, sizeof(p->why), "%s", why);
}

/* Copies a delivered packet into dst (256 bytes). */
static void keep(uint8_t *dst, size_t *dst_len, const uint8_t *buf, size_t len) {
  assert_true(len <= 256);
  memcpy(dst, buf, len);
  *dst_len = len;
}

static void own_rtp(void *arg, uint8_t *buf, size_t len) {
  owner_t *o = arg;
  o->rtp++;
  keep(o->last, &o->last_len, buf, len);
}

static void own_rtcp(void *arg, uint8_t *buf, size_t len) {
  owner_t *o = arg;
  o->rtcp++;
  keep(o->last, &o->last_len, buf, len);
}

static void own_connected(void *arg) { ((owner_t *)arg)->connected++; }

static void own_failed(void *arg, const char *why) {
  owner_t *o = arg;
  o->failed++;
  snprintf(o->why, sizeof(o->why), "%s", why);
}

/* One datagram of the transport's at the peer: DTLS to its session, media
 * unprotected (it must authenticate) and kept. */
static void peer_recv(peer_t *p, dgram_t *g) {
  size_t n = g->len;
  int rv;
  if (g->data[0] >= 20 && g->data[0] <= 63) {
    (void)sfu_dtls_input(p->d, g->data, g->len);
    return;
  }
  assert_int_equal(p->connected, 1);
  if (sfu_is_rtcp(g->data, g->len))
    rv = sfu_srtp_unprotect_rtcp(&p->srtp, g->data, &n, sim_ms);
  else
    rv = sfu_srtp_unprotect(&p->srtp, g->data, &n, sim_ms);
  assert_int_equal(rv, 0);
  p->media++;
  keep(p->last, &p->last_len, g->data, n);
}

/* One datagram of the peer's at the transport, as the ICE agent hands it. */
static void transport_recv(fx_t *f, dgram_t *g) {
  sfu_ice_stream_t *st = sfu_transport_ice(f->t);
  st->cb.recv(st->cb.arg, g->data, g->len);
}

/* Delivers both ways until both queues are empty. */
static void pump(fx_t *f) {
  dgram_t g;
  for (int guard = 0; guard < 100; guard++) {
    int moved = 0;
    if (q_pop(&f->ice.out, &g)) {
      peer_recv(&f->peer, &g);
      moved = 1;
    }
    if (q_pop(&f->peer.out, &g)) {
      transport_recv(f, &g);
      moved = 1;
    }
    if (!moved) return;
  }
  fail_msg("pump did not settle");
}

/* `ms` after the transport connected: the clock moves there, and the loop
 * runs one turn (its timers that are due fire). */
static void run_at(fx_t *f, uint64_t ms) {
  assert_true(f->t0 + ms >= sim_ms);
  sim_ms = f->t0 + ms;
  uv_run(&f->loop, UV_RUN_NOWAIT);
}

/*
 * A transport whose peer offered a=setup:`setup` ("actpass": we answer
 * passive and the peer starts the handshake; "passive": we are active),
 * through ICE and DTLS to connected on both sides, with SRTP keys that
 * agree. f->t0 is the time of `connected`.
 */
/* A transport connected to the peer; `setup` is the peer's. With
 * `ice_first`, ICE connects before the peer's attributes are known (the
 * peer's checks came first, as on a link between two rooms). */
static fx_t *fx_connect_ordered(const char *setup, int ice_first) {
  fx_t *f = calloc(1, sizeof(*f));
  sfu_transport_cb_t cb = {NULL, own_rtp, own_rtcp, own_connected, own_failed};
  sfu_dtls_cb_t pcb = {NULL, peer_send, peer_connected, peer_failed};
  int active = strcmp(setup, "passive") == 0;
  const char *our_setup = NULL;
  uint8_t fp_sfu[64], fp_peer[64];
  sfu_ice_stream_t *st;

  assert_non_null(f);
  cb.arg = &f->own;
  pcb.arg = &f->peer;
  assert_int_equal(uv_loop_init(&f->loop), 0);
  sim_ms += 60000; /* a fresh start, after the last test's times */
  uv_update_time(&f->loop);
  assert_int_equal(sfu_transport_create(&f->t, &f->loop, &f->ice, cert_sfu, &cb), 0);
  assert_int_equal(f->ice.streams, 1);
  assert_false(sfu__transport_dtls_released(f->t)); /* no session yet */

  assert_int_equal(sfu_dtls_fingerprint_parse(sfu_dtls_cert_fingerprint(cert_sfu), fp_sfu, 64), 32);
  assert_int_equal(sfu_dtls_fingerprint_parse(sfu_dtls_cert_fingerprint(cert_peer), fp_peer, 64),
                   32);
  st = sfu_transport_ice(f->t);
  if (ice_first) {
    st->connected = 1;
    st->cb.state(st->cb.arg, 1); /* nothing to start yet: no DTLS session */
  }
  assert_int_equal(sfu_transport_set_remote(f->t, "peer", "peer-password-peer-pass", "sha-256",
                                            fp_peer, 32, setup, &our_setup),
                   0);
  assert_string_equal(our_setup, active ? "active" : "passive");
  assert_int_equal(sfu_dtls_create(&f->peer.d, cert_peer,
                                   active ? SFU_DTLS_PASSIVE : SFU_DTLS_ACTIVE, "sha-256",
                                   fp_sfu, 32, &pcb),
                   0);

  if (!ice_first) {
    st->connected = 1;
    st->cb.state(st->cb.arg, 1); /* ICE connected: an active transport starts */
  }
  assert_int_equal(sfu_dtls_start(f->peer.d), 0);
  pump(f);

  assert_int_equal(f->own.connected, 1);
  assert_int_equal(f->own.failed, 0);
  assert_true(sfu_transport_ready(f->t));
  assert_int_equal(f->peer.connected, 1);
  assert_int_equal(f->peer.failed, 0);
  f->t0 = sim_ms;
  return f;
}

static fx_t *fx_connect(const char *setup) { return fx_connect_ordered(setup, 0); }

/* Destroys the transport and runs the loop for its timer's close. What it
 * sent on its way out stays in f->ice.out. */
static void transport_destroy(fx_t *f) {
  sfu_transport_destroy(f->t);
  f->t = NULL;
  uv_run(&f->loop, UV_RUN_NOWAIT);
  assert_int_equal(f->ice.streams, 0);
}

/* Ends the transport if it is still there and the peer's session if it
 * is, closes the loop, frees the fixture. */
static void fx_free(fx_t *f) {
  if (f->t) transport_destroy(f);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  sfu_dtls_destroy(f->peer.d);
  if (f->peer.connected) sfu_srtp_destroy(&f->peer.srtp);
  free(f);
}

/* ------------------------------------------------------------------------ */
/* Media                                                                    */
/* ------------------------------------------------------------------------ */

/* A PKT_LEN-byte RTP packet (PT 111, SSRC `ssrc`, sequence number `seq`),
 * or a 28-byte RTCP sender report of `ssrc` when `rtcp`; its length. */
static size_t make_media(uint8_t *p, int rtcp, uint32_t ssrc, uint16_t seq) {
  size_t len = rtcp ? 28 : PKT_LEN;
  memset(p, 0, len);
  p[0] = 0x80;
  p[1] = rtcp ? 200 : 111;
  if (rtcp) {
    sfu_wr16(p + 2, 6); /* 7 words */
    sfu_wr32(p + 4, ssrc);
  } else {
    sfu_wr16(p + 2, seq);
    sfu_wr32(p + 8, ssrc);
  }
  for (size_t i = rtcp ? 8 : 12; i < len; i++) p[i] = (uint8_t)(i * 7 + seq);
  return len;
}

/* The transport sends one packet; the peer gets it, authentic and whole. */
static void media_to_peer(fx_t *f, int rtcp, uint16_t seq) {
  uint8_t pkt[PKT_LEN + SFU_SRTP_TRAILER], plain[PKT_LEN];
  size_t len = make_media(pkt, rtcp, 0x5f0a0001, seq);
  int media = f->peer.media;
  memcpy(plain, pkt, len);
  if (rtcp)
    assert_int_equal(sfu_transport_send_rtcp(f->t, pkt, len, sizeof(pkt)), 0);
  else
    assert_int_equal(sfu_transport_send_rtp(f->t, pkt, len, sizeof(pkt)), 0);
  pump(f);
  assert_int_equal(f->peer.media, media + 1);
  assert_int_equal(f->peer.last_len, len);
  assert_memory_equal(f->peer.last, plain, len);
}

/* The peer sends one packet, protected (`forged`: then one bit of its tag
 * flipped); the transport delivers it whole to its owner, or, forged,
 * drops and counts it. */
static void media_to_transport(fx_t *f, int rtcp, uint16_t seq, int forged) {
  uint8_t pkt[PKT_LEN + SFU_SRTP_TRAILER], plain[PKT_LEN];
  size_t len = make_media(pkt, rtcp, 0x7e0b0002, seq), plain_len = len;
  int rtp0 = f->own.rtp, rtcp0 = f->own.rtcp;
  uint64_t drops = sfu_transport_stats(f->t)->rx_drop_srtp;
  dgram_t g;
  memcpy(plain, pkt, len);
  if (rtcp)
    assert_int_equal(sfu_srtp_protect_rtcp(&f->peer.srtp, pkt, &len, sizeof(pkt)), 0);
  else
    assert_int_equal(sfu_srtp_protect(&f->peer.srtp, pkt, &len, sizeof(pkt)), 0);
  if (forged) pkt[len - 1] ^= 1;
  memcpy(g.data, pkt, len);
  g.len = len;
  transport_recv(f, &g);
  if (forged) {
    assert_int_equal(f->own.rtp, rtp0);
    assert_int_equal(f->own.rtcp, rtcp0);
    assert_int_equal(sfu_transport_stats(f->t)->rx_drop_srtp, drops + 1);
    return;
  }
  assert_int_equal(f->own.rtp, rtp0 + !rtcp);
  assert_int_equal(f->own.rtcp, rtcp0 + rtcp);
  assert_int_equal(f->own.last_len, plain_len);
  assert_memory_equal(f->own.last, plain, plain_len);
}

/* ------------------------------------------------------------------------ */
/* Tests                                                                    */
/* ------------------------------------------------------------------------ */

/*
 * A peer that sends no media: OpenSSL's session is held (it still answers
 * a retransmitted final flight) for RELEASE_MS after `connected`, whatever
 * the transport sends meanwhile, and the timer releases it then, sending
 * nothing. Media flows both ways after the release, and the peer's
 * close_notify, opened by what the release kept, still ends the session.
 * Both DTLS roles.
 */
static void test_release_timer_releases_at_its_deadline(void **state) {
  static const char *const setups[] = {"actpass", "passive"};
  for (size_t i = 0; i < SFU_ARRAY_SIZE(setups); i++) {
    fx_t *f = fx_connect(setups[i]);

    run_at(f, 0);
    assert_false(sfu__transport_dtls_released(f->t));
    media_to_peer(f, 0, 1); /* what we send does not release */
    media_to_peer(f, 1, 0);
    run_at(f, RELEASE_MS / 2);
    assert_false(sfu__transport_dtls_released(f->t));
    run_at(f, RELEASE_MS - 1);
    assert_false(sfu__transport_dtls_released(f->t));
    assert_int_equal(f->ice.out.count, 0);

    run_at(f, RELEASE_MS);
    assert_true(sfu__transport_dtls_released(f->t));
    assert_int_equal(f->ice.out.count, 0); /* close_notify sealed, not sent */
    assert_int_equal(f->own.failed, 0);

    media_to_peer(f, 0, 2);
    media_to_transport(f, 0, 1, 0);
    media_to_transport(f, 1, 0, 0);
    media_to_peer(f, 1, 0);
    assert_int_equal(f->own.rtp, 1);
    assert_int_equal(f->own.rtcp, 1);
    assert_int_equal(sfu_transport_stats(f->t)->rx_packets, 2);
    assert_int_equal(sfu_transport_stats(f->t)->tx_packets, 4);
    run_at(f, 3 * RELEASE_MS); /* nothing more to fire */
    assert_true(sfu__transport_dtls_released(f->t));
    assert_int_equal(f->own.failed, 0);

    sfu_dtls_destroy(f->peer.d); /* the peer leaves: its close_notify */
    f->peer.d = NULL;
    assert_int_equal(f->peer.out.count, 1);
    pump(f);
    assert_int_equal(f->own.failed, 1);
    assert_string_equal(f->own.why, "closed by peer (close_notify)");
    transport_destroy(f);
    assert_int_equal(f->ice.out.count, 0); /* closed: nothing to say */
    fx_free(f);
  }
}

/*
 * The peer's first SRTP packet that authenticates releases the session at
 * once, long before the deadline; a forged one releases nothing. The
 * timer, when it comes, changes nothing, and the close_notify the release
 * sealed is what destroying the transport sends: it closes the peer.
 */
static void test_first_authentic_packet_releases_before_the_timer(void **state) {
  fx_t *f = fx_connect("actpass");
  dgram_t g;

  run_at(f, 1000);
  media_to_transport(f, 0, 1, 1);
  assert_false(sfu__transport_dtls_released(f->t));
  media_to_transport(f, 0, 2, 0);
  assert_true(sfu__transport_dtls_released(f->t));
  assert_int_equal(f->ice.out.count, 0);

  run_at(f, RELEASE_MS);
  assert_true(sfu__transport_dtls_released(f->t));
  assert_int_equal(f->ice.out.count, 0);
  media_to_peer(f, 0, 1);
  media_to_transport(f, 0, 3, 0);
  assert_int_equal(f->own.failed, 0);

  transport_destroy(f);
  assert_true(q_pop(&f->ice.out, &g));
  assert_int_equal(f->ice.out.count, 0);
  peer_recv(&f->peer, &g);
  assert_int_equal(f->peer.failed, 1);
  assert_string_equal(f->peer.why, "closed by peer (close_notify)");
  fx_free(f);
}

/* The active end whose ICE connected before the peer's attributes came
 * starts the handshake when they come (fx_connect_ordered() asserts both
 * ends connected). */
static void test_active_end_starts_when_its_ice_connected_first(void **state) {
  (void)state;
  fx_t *f = fx_connect_ordered("passive", 1);
  fx_free(f);
  f = fx_connect_ordered("active", 1); /* the passive end waits for the peer */
  fx_free(f);
}

static int setup(void **state) {
  sfu_log_set_level(SFU_LOG_ERROR);
  if (sfu_dtls_cert_create(&cert_sfu) || sfu_dtls_cert_create(&cert_peer)) return -1;
  return sfu_srtp_library_init();
}

static int teardown(void **state) {
  sfu_dtls_cert_destroy(cert_sfu);
  sfu_dtls_cert_destroy(cert_peer);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_release_timer_releases_at_its_deadline),
      cmocka_unit_test(test_first_authentic_packet_releases_before_the_timer),
      cmocka_unit_test(test_active_end_starts_when_its_ice_connected_first),
  };
  return cmocka_run_group_tests_name("transport", tests, setup, teardown);
}
