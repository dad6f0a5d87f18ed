/*
 * test_engine.c -- the call engine (sfu/room/engine.h) on a simulated
 * clock: what a room does with signaling, media and feedback, seen from
 * the outside (the messages it emits and the packets it sends).
 *
 * Each test builds a small world with tests/engine_sim.h -- peers that
 * join, offer, answer server offers and send Opus / VP8 (single layer or
 * rid simulcast), links that lose, duplicate, reorder or rate-limit --
 * runs it for some simulated seconds and checks one behaviour: keyframe
 * requests for late subscribers, sequence / timestamp / VP8 picture-id
 * continuity across mute, replacement and layer switches, PLI throttling,
 * the REMB layer rule, NACK/RTX in both directions, usage periods,
 * speaking events (and server mute in them), glare, m-lines of departed
 * tracks, media timeout, a screen share next to a camera, redundant audio
 * (RED in, RED or its primary out), the loudest speakers of a large room,
 * a WHEP viewer's m-lines switched from publisher to publisher.
 * Times and constants in the
 * assertions are the engine's documented ones (docs/internals/media.md,
 * nack.md, docs/signaling.md); where a window is allowed, it is the tick
 * granularity (media 100 ms, feedback 20 ms) plus one video frame (40 ms).
 *
 * Publishers' payloads end in a tag naming the packet, so "the subscriber
 * got every packet" and "which layer is it on" are read from what the
 * subscriber received, not from engine internals. A few counters of
 * sfu_room_counters_t are checked too (they are the room's stats API).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sfu/base/bytes.h"
#include "sfu/base/log.h"
#include "tests/engine_sim.h"

#define MS 1000u /* us */

/* ---- helpers ---------------------------------------------------------------- */

static sim_peer_t *publisher(sim_t *s, const char *id, int audio, int layers) {
  sim_peer_t *pe = sim_peer_new(s, id);
  if (audio) sim_peer_audio(pe);
  if (layers) sim_peer_video(pe, layers);
  sim_enter(pe);
  return pe;
}

static sim_peer_t *listener(sim_t *s, const char *id) {
  sim_peer_t *pe = sim_peer_new(s, id);
  sim_enter(pe);
  return pe;
}

/* A listener whose answers keep transport-cc, behind a downlink of
 * rate_bps (0 = unlimited) with a 200 ms queue. */
static sim_peer_t *twcc_listener(sim_t *s, const char *id, uint32_t rate_bps) {
  sim_peer_t *pe = sim_peer_new(s, id);
  pe->twcc = 1;
  pe->down.rate_bps = rate_bps;
  pe->down.queue_ms = 200;
  sim_enter(pe);
  return pe;
}

static int64_t wall_ms_at(uint64_t t_ms) { return SIM_WALL0_US / 1000 + (int64_t)t_ms; }

static const char *str(json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

/* Primary (non-RTX) packets of a subscription, in arrival order. */
static int primaries(const sim_sub_t *u, const sim_rx_t **out, int cap) {
  int n = 0;
  for (int i = 0; i < u->nrx && n < cap; i++)
    if (!u->rx[i].rtx) out[n++] = &u->rx[i];
  return n;
}

/* Sequence numbers +1 each, timestamps forward, for primaries in
 * [from_us, to_us). Video: equal within a frame, +1..max_ts_step between
 * frames. Returns how many packets were checked. */
static int check_continuous(const sim_sub_t *u, uint64_t from_us, uint64_t to_us,
                            uint32_t max_ts_step) {
  const sim_rx_t *prev = NULL;
  int n = 0;
  for (int i = 0; i < u->nrx; i++) {
    const sim_rx_t *r = &u->rx[i];
    if (r->rtx || r->at_us < from_us || r->at_us >= to_us) continue;
    if (prev) {
      if ((uint16_t)(r->seq - prev->seq) != 1)
        fail_msg("seq %u after %u at +%llu ms (mid %s)", r->seq, prev->seq,
                 (unsigned long long)((r->at_us - SIM_MONO0_US) / 1000), u->mid);
      int32_t dts = (int32_t)(r->ts - prev->ts);
      if (u->video && dts == 0) {
        assert_false(prev->marker); /* the same frame goes on */
      } else if (dts <= 0 || (uint32_t)dts > max_ts_step) {
        fail_msg("ts step %d at seq %u (mid %s)", dts, r->seq, u->mid);
      }
    }
    prev = r;
    n++;
  }
  return n;
}

/* Layer segments of a video subscription, from the tags of its primaries. */
typedef struct {
  int layer;
  uint64_t start_us, end_us;
} seg_t;

static int segments(const sim_sub_t *u, seg_t *seg, int cap) {
  int n = 0;
  for (int i = 0; i < u->nrx; i++) {
    const sim_rx_t *r = &u->rx[i];
    if (r->rtx) continue;
    int k = sim_tag_layer(r->tag);
    if (n == 0 || seg[n - 1].layer != k) {
      assert_true(n < cap);
      seg[n].layer = k;
      seg[n].start_us = r->at_us;
      n++;
    }
    seg[n - 1].end_us = r->at_us;
  }
  return n;
}

static int current_layer(const sim_sub_t *u) {
  for (int i = u->nrx - 1; i >= 0; i--)
    if (!u->rx[i].rtx) return sim_tag_layer(u->rx[i].tag);
  return -1;
}

static void video_quality(sim_peer_t *sub, const sim_sub_t *u, const char *quality) {
  sim_t *s = sub->sim;
  int from = s->nmsgs;
  sim_client_msg(sub, json_pack("{s:s, s:i, s:s, s:s}", "type", "video_quality", "id", 77,
                                "track_id", u->track_id, "quality", quality));
  json_t *ack = sim_msg_to(s, sub->session, "ack", from, NULL);
  assert_non_null(ack);
  assert_int_equal(json_integer_value(json_object_get(ack, "id")), 77);
}

/* Times (us) of the NACKs `pe` received for media `ssrc` naming `seq`. */
static int nack_times(const sim_peer_t *pe, uint32_t ssrc, uint16_t seq, uint64_t *t, int cap) {
  int n = 0;
  for (int i = 0; i < pe->nfb && n < cap; i++) {
    const sim_fb_t *f = &pe->fb[i];
    if (f->kind != SIM_FB_NACK || f->media_ssrc != ssrc) continue;
    for (int j = 0; j < f->nseqs; j++)
      if (f->seqs[j] == seq) {
        t[n++] = f->at_us;
        break;
      }
  }
  return n;
}

static uint64_t last_fb_time(const sim_peer_t *pe, int kind, uint32_t ssrc) {
  uint64_t t = 0;
  for (int i = 0; i < pe->nfb; i++)
    if (pe->fb[i].kind == kind && pe->fb[i].media_ssrc == ssrc) t = pe->fb[i].at_us;
  return t;
}

/* ---- 1. keyframes for late subscribers ---------------------------------------- */

static void late_subscriber_gets_pli_to_publisher_and_starts_on_keyframe(void **state) {
  sim_t *s = sim_new(1, 0);
  *state = s;
  sim_peer_t *a = sim_peer_new(s, "alice");
  sim_peer_video(a, 3);
  a->key_delay = 3; /* an encoder takes a few frames to answer a PLI */
  sim_enter(a);
  sim_run(s, 2000);
  for (int k = 0; k < 3; k++) assert_int_equal(a->layers[k].keyframes, 1); /* only the first */
  assert_int_equal(sim_fb_count(a, SIM_FB_PLI, 0, 0, UINT64_MAX), 0);     /* nobody watches */

  uint64_t t_join = sim_us(s);
  sim_peer_t *b = listener(s, "bob");
  sim_sub_t *u = sim_sub_of(b, a, 1);
  assert_non_null(u);
  assert_true(u->active);
  /* the new subscription asks the publisher for a keyframe of the layer it
   * wants (the top one), at once */
  assert_true(sim_fb_count(a, SIM_FB_PLI, a->layers[2].ssrc, t_join, sim_us(s) + 1) >= 1);
  assert_int_equal(u->nrx, 0);

  sim_run(s, 3000);
  const sim_rx_t *p[4096];
  int n = primaries(u, p, 4096);
  assert_true(n > 100);
  assert_true(p[0]->key && p[0]->begins); /* nothing before the keyframe */
  assert_int_equal(sim_tag_layer(p[0]->tag), 2);
  assert_int_equal(p[0]->width, 1280);
  assert_true(p[0]->at_us - t_join < 250 * MS);
  assert_int_equal(a->layers[2].keyframes, 2);
  /* once it is keyed, no more keyframe requests */
  assert_int_equal(sim_fb_count(a, SIM_FB_PLI, 0, p[0]->at_us + 600 * MS, UINT64_MAX), 0);
}

/* ---- 2. continuity ------------------------------------------------------------- */

static void audio_seq_and_ts_continue_across_server_mute(void **state) {
  sim_t *s = sim_new(2, 0);
  *state = s;
  sim_peer_t *a = publisher(s, "alice", 1, 0);
  sim_peer_t *b = listener(s, "bob");
  sim_run(s, 1000);
  sim_sub_t *u = sim_sub_of(b, a, 0);
  assert_non_null(u);
  int before = u->nrx;
  assert_true(before >= 45);

  int from = s->nmsgs;
  uint64_t dropped = s->room.c.drop_muted, t_mute = sim_us(s);
  sim_server_mute(s, "alice", 1);
  json_t *upd = sim_msg_to(s, a->session, "participant_updated", from, NULL);
  assert_non_null(upd);
  assert_true(json_is_true(json_object_get(json_object_get(upd, "participant"), "server_muted")));
  sim_run(s, 1000);
  assert_int_equal(u->nrx, before); /* nothing forwarded while muted */
  assert_true(s->room.c.drop_muted - dropped >= 49);

  uint64_t t_unmute = sim_us(s);
  sim_server_mute(s, "alice", 0);
  sim_run(s, 1000);
  assert_true(u->nrx - before >= 49);
  for (int i = 0; i < u->nrx; i++)
    assert_false(u->rx[i].at_us > t_mute && u->rx[i].at_us < t_unmute);
  assert_int_equal(check_continuous(u, 0, UINT64_MAX, 48000 * 2), u->nrx);
  /* the timestamp carries the muted second; the sequence number does not */
  assert_true((uint32_t)(u->rx[before].ts - u->rx[before - 1].ts) >= 960 * 49);
  assert_int_equal((uint16_t)(u->rx[before].seq - u->rx[before - 1].seq), 1);
}

static void replaced_publisher_streams_start_fresh_and_continuous_on_new_mlines(void **state) {
  sim_t *s = sim_new(3, 0);
  *state = s;
  sim_peer_t *a = publisher(s, "alice", 1, 1);
  sim_peer_t *b = listener(s, "bob");
  sim_run(s, 1000);
  sim_sub_t *ua = sim_sub_of(b, a, 0), *uv = sim_sub_of(b, a, 1);
  assert_non_null(ua);
  assert_non_null(uv);
  assert_true(ua->nrx > 40 && uv->nrx > 40);
  char sid[72];
  snprintf(sid, sizeof(sid), "%s", a->sid);

  int from = s->nmsgs;
  uint64_t t_replace = sim_us(s);
  sim_peer_t *a2 = sim_peer_like(a);
  sim_enter(a2);
  assert_true(a->gone); /* the old session was closed: 4009 */
  assert_string_equal(a2->sid, sid);
  assert_int_equal(sim_count_to(s, b->session, "participant_left", from), 0);
  assert_true(sim_count_to(s, b->session, "participant_updated", from) >= 1);
  sim_run(s, 1500);

  sim_sub_t *ua2 = sim_sub_of(b, a2, 0), *uv2 = sim_sub_of(b, a2, 1);
  assert_non_null(ua2);
  assert_non_null(uv2);
  assert_true(ua2 != ua && uv2 != uv);
  assert_true(ua2->active && uv2->active);
  assert_true(ua2->ssrc != ua->ssrc && uv2->ssrc != uv->ssrc);
  for (int i = 0; i < ua->nrx; i++) assert_true(ua->rx[i].at_us <= t_replace);
  for (int i = 0; i < uv->nrx; i++) assert_true(uv->rx[i].at_us <= t_replace);
  assert_true(ua2->nrx >= 70);
  assert_true(uv2->nrx >= 100);
  assert_int_equal(check_continuous(ua, 0, UINT64_MAX, 48000), ua->nrx);
  assert_int_equal(check_continuous(uv, 0, UINT64_MAX, 90000), uv->nrx);
  assert_int_equal(check_continuous(ua2, 0, UINT64_MAX, 48000), ua2->nrx);
  assert_int_equal(check_continuous(uv2, 0, UINT64_MAX, 90000), uv2->nrx);
  /* what it gets on the new lines is the new session's media */
  assert_int_equal(sim_tag_peer(ua2->rx[0].tag), a2->idx);
  assert_int_equal(sim_tag_peer(uv2->rx[0].tag), a2->idx);
}

/* Everything a departed publisher had ends as an inactive m-line at each
 * subscriber, even when its second track goes while the offer that
 * removes its first is still unanswered (one offer at a time). */
static void tracks_removed_during_an_outstanding_offer_end_inactive(void **state) {
  sim_t *s = sim_new(19, 0);
  *state = s;
  sim_peer_t *a = publisher(s, "alice", 1, 1);
  sim_peer_t *b = listener(s, "bob");
  sim_run(s, 500);
  sim_sub_t *ua = sim_sub_of(b, a, 0), *uv = sim_sub_of(b, a, 1);
  assert_true(ua->active && uv->active && uv->nrx > 0);
  int from = s->nmsgs;
  sim_leave(a); /* audio and video unpublished in one go */
  sim_run(s, 500);
  assert_true(b->offers_answered >= 3);
  assert_null(b->pending_offer_sdp);
  json_t *left = sim_msg_to(s, b->session, "participant_left", from, NULL);
  assert_non_null(left);
  /* the last server offer: no line still sends alice's tracks */
  json_t *offer = sim_msg_to(s, b->session, "offer", 0, NULL);
  sfu_sdp_t sdp;
  const char *text = str(offer, "sdp");
  memset(&sdp, 0, sizeof(sdp));
  assert_int_equal(sfu_sdp_parse(text, strlen(text), &sdp, NULL), 0);
  for (int i = 0; i < sdp.nmedia; i++)
    if (strcmp(sdp.media[i].mid, ua->mid) == 0 || strcmp(sdp.media[i].mid, uv->mid) == 0)
      if (sdp.media[i].dir != SFU_DIR_INACTIVE || sdp.media[i].nssrcs != 0) {
        char mid[32];
        int sending = sdp.media[i].dir == SFU_DIR_SENDONLY, nssrcs = sdp.media[i].nssrcs;
        snprintf(mid, sizeof(mid), "%s", sdp.media[i].mid);
        sfu_sdp_free(&sdp);
        fail_msg("m-line %s of a departed track is still offered (%s, %d a=ssrc)", mid,
                 sending ? "sendonly" : "not inactive", nssrcs);
      }
  sfu_sdp_free(&sdp);
  assert_false(ua->active);
  assert_false(uv->active);
}

/* B watches A's three layers and asks for low, high, medium in turn. */
static void simulcast_switches(void **state, sim_peer_t **pa, sim_peer_t **pb) {
  sim_t *s = sim_new(4, 0);
  *state = s;
  sim_peer_t *a = sim_peer_new(s, "alice");
  sim_peer_video(a, 3);
  a->key_delay = 2; /* switches wait for the keyframe, not the PLI */
  sim_enter(a);
  sim_run(s, 500);
  sim_peer_t *b = listener(s, "bob");
  sim_run(s, 1000);
  sim_sub_t *u = sim_sub_of(b, a, 1);
  assert_non_null(u);
  assert_int_equal(current_layer(u), 2);
  video_quality(b, u, "low");
  sim_run(s, 1000);
  assert_int_equal(current_layer(u), 0);
  video_quality(b, u, "high");
  sim_run(s, 1000);
  assert_int_equal(current_layer(u), 2);
  video_quality(b, u, "medium");
  sim_run(s, 1000);
  assert_int_equal(current_layer(u), 1);
  seg_t seg[16];
  int n = segments(u, seg, 16);
  assert_int_equal(n, 4);
  assert_int_equal(seg[0].layer, 2);
  assert_int_equal(seg[1].layer, 0);
  assert_int_equal(seg[2].layer, 2);
  assert_int_equal(seg[3].layer, 1);
  assert_true(s->room.c.layer_switches >= 3);
  *pa = a;
  *pb = b;
}

static void simulcast_switches_keep_seq_and_ts_continuous(void **state) {
  sim_peer_t *a, *b;
  simulcast_switches(state, &a, &b);
  sim_sub_t *u = sim_sub_of(b, a, 1);
  /* one stream: +1 sequence numbers, timestamps forward by at most the
   * time between two sends (the layers' own timestamps are unrelated) */
  int n = check_continuous(u, 0, UINT64_MAX, 90 * 200);
  assert_true(n > 200);
  /* every layer starts on its keyframe */
  for (int i = 1; i < u->nrx; i++)
    if (sim_tag_layer(u->rx[i].tag) != sim_tag_layer(u->rx[i - 1].tag))
      assert_true(u->rx[i].key && u->rx[i].begins);
}

/* ---- 3. VP8 picture ids ----------------------------------------------------------- */

static void simulcast_switches_keep_vp8_picture_id_and_tl0picidx_continuous(void **state) {
  sim_peer_t *a, *b;
  simulcast_switches(state, &a, &b);
  sim_sub_t *u = sim_sub_of(b, a, 1);
  int frames = 0, switches = 0;
  for (int i = 1; i < u->nrx; i++) {
    const sim_rx_t *r = &u->rx[i], *q = &u->rx[i - 1];
    assert_true(r->pid >= 0 && r->tl0 >= 0);
    switches += sim_tag_layer(r->tag) != sim_tag_layer(q->tag);
    if (r->ts == q->ts) { /* same frame */
      assert_int_equal(r->pid, q->pid);
      assert_int_equal(r->tl0, q->tl0);
      continue;
    }
    frames++;
    if (r->pid != ((q->pid + 1) & 0x7fff) || r->tl0 != ((q->tl0 + 1) & 0xff))
      fail_msg("picture id %d tl0 %d after %d / %d (layer %d -> %d)", r->pid, r->tl0, q->pid,
               q->tl0, sim_tag_layer(q->tag), sim_tag_layer(r->tag));
  }
  assert_int_equal(switches, 3);
  assert_true(frames > 90);
}

/* ---- 4. PLI throttling --------------------------------------------------------------- */

static void subscriber_pli_burst_makes_one_pli_per_500ms_to_publisher(void **state) {
  sim_t *s = sim_new(5, 0);
  *state = s;
  sim_peer_t *a = publisher(s, "alice", 0, 1);
  sim_peer_t *b = listener(s, "bob"), *c = listener(s, "carol");
  sim_run(s, 2000);
  sim_sub_t *ub = sim_sub_of(b, a, 1), *uc = sim_sub_of(c, a, 1);
  assert_true(ub->nrx > 0 && uc->nrx > 0);
  uint32_t ssrc = a->layers[0].ssrc;
  uint64_t last = last_fb_time(a, SIM_FB_PLI, ssrc);
  if (last + 600 * MS > sim_us(s)) sim_run_until_us(s, last + 600 * MS);

  const sfu_room_counters_t c0 = s->room.c;
  uint64_t t0 = sim_us(s);
  for (int i = 0; i < 20; i++) { /* 40 requests in 200 ms, PLI and FIR */
    sim_send_pli(b, ub->ssrc);
    sim_send_fir(c, uc->ssrc, (uint8_t)i);
    sim_run(s, 10);
  }
  assert_int_equal(sim_fb_count(a, SIM_FB_PLI, ssrc, t0, UINT64_MAX), 1);
  assert_int_equal(s->room.c.plis_received - c0.plis_received, 40);
  assert_int_equal(s->room.c.plis_throttled - c0.plis_throttled, 39);
  assert_int_equal(s->room.c.plis_sent - c0.plis_sent, 1);

  sim_run_until_us(s, t0 + 480 * MS); /* still inside the 500 ms */
  sim_send_pli(b, ub->ssrc);
  assert_int_equal(sim_fb_count(a, SIM_FB_PLI, ssrc, t0, UINT64_MAX), 1);
  sim_run_until_us(s, t0 + 520 * MS); /* past it: a new one */
  sim_send_pli(c, uc->ssrc);
  assert_int_equal(sim_fb_count(a, SIM_FB_PLI, ssrc, t0, UINT64_MAX), 2);
  assert_int_equal(sim_fb_count(a, SIM_FB_PLI, ssrc, t0 + 500 * MS, UINT64_MAX), 1);
  assert_int_equal(s->room.c.plis_throttled - c0.plis_throttled, 40);
}

static void pli_throttle_is_per_layer(void **state) {
  sim_t *s = sim_new(6, 0);
  *state = s;
  sim_peer_t *a = publisher(s, "alice", 0, 3);
  sim_peer_t *b = listener(s, "bob"), *c = listener(s, "carol");
  sim_run(s, 1000);
  sim_sub_t *ub = sim_sub_of(b, a, 1), *uc = sim_sub_of(c, a, 1);
  video_quality(c, uc, "low");
  sim_run(s, 1500);
  assert_int_equal(current_layer(ub), 2);
  assert_int_equal(current_layer(uc), 0);
  sim_run(s, 600);
  uint64_t t0 = sim_us(s);
  sim_send_pli(b, ub->ssrc);
  sim_send_pli(c, uc->ssrc);
  sim_send_pli(b, ub->ssrc);
  sim_send_pli(c, uc->ssrc);
  assert_int_equal(sim_fb_count(a, SIM_FB_PLI, a->layers[2].ssrc, t0, UINT64_MAX), 1);
  assert_int_equal(sim_fb_count(a, SIM_FB_PLI, a->layers[0].ssrc, t0, UINT64_MAX), 1);
  assert_int_equal(sim_fb_count(a, SIM_FB_PLI, a->layers[1].ssrc, t0, UINT64_MAX), 0);
}

/* ---- 5. the REMB layer rule -------------------------------------------------------- */

/* Runs until u's current layer is `k` (checking every 20 ms), at most
 * `limit_ms`; returns the arrival time of its first packet. */
static uint64_t wait_layer(sim_t *s, const sim_sub_t *u, int k, uint32_t limit_ms) {
  uint64_t end = sim_us(s) + (uint64_t)limit_ms * MS;
  while (current_layer(u) != k) {
    if (sim_us(s) >= end) fail_msg("layer %d not reached in %u ms (on %d)", k, limit_ms, current_layer(u));
    sim_run(s, 20);
  }
  uint64_t first = 0; /* the earliest packet of the run of layer k at the end */
  for (int i = u->nrx - 1; i >= 0; i--) {
    if (u->rx[i].rtx) continue;
    if (sim_tag_layer(u->rx[i].tag) != k) break;
    first = u->rx[i].at_us;
  }
  return first;
}

/* A REMB that falls under 85 % of the layer's rate is the receiver's
 * estimator seeing the delay grow: down at once, to the highest layer the
 * REMB carries. Held 6 s, then up a layer every 3 s while nothing falls
 * (a REMB that stays low says nothing: the next layer is the probe); a
 * step up undone within 10 s makes the next hold 1.5x longer. */
static void falling_remb_steps_down_at_once_then_up_after_a_growing_hold(void **state) {
  sim_t *s = sim_new(7, 0);
  *state = s;
  sim_peer_t *a = publisher(s, "alice", 0, 3);
  sim_run(s, 500);
  sim_peer_t *b = sim_peer_new(s, "bob");
  b->remb_bps = 5000000;
  b->remb_ms = 100;
  sim_enter(b);
  sim_sub_t *u = sim_sub_of(b, a, 1);
  wait_layer(s, u, 2, 500);
  sim_run(s, 3000);
  assert_int_equal(current_layer(u), 2);

  /* well under every layer but the lowest (60 kb/s): straight down */
  uint64_t t_fall = sim_us(s);
  b->remb_bps = 100000;
  uint64_t t_q = wait_layer(s, u, 0, 1000);
  assert_true(t_q - t_fall <= 600 * MS);
  /* the same REMB on: held 6 s, then the middle layer is tried, ... */
  uint64_t t_h = wait_layer(s, u, 1, 7000);
  assert_true(t_h - t_q >= 5900 * MS);
  assert_true(t_h - t_q <= 6300 * MS);
  /* ... and falls again (a fall counts after a second on the layer): back
   * down, and held 1.5x as long */
  sim_run(s, 1100);
  b->remb_bps = 90000;
  uint64_t t_q2 = wait_layer(s, u, 0, 1000);
  assert_true(t_q2 - t_h <= 1700 * MS);
  uint64_t t_h2 = wait_layer(s, u, 1, 10000);
  assert_true(t_h2 - t_q2 >= 8900 * MS);
  assert_true(t_h2 - t_q2 <= 9300 * MS);
  /* nothing falls now: up to the top 3 s later, and it stays there
   * although its REMB is under every layer but the lowest */
  uint64_t t_f2 = wait_layer(s, u, 2, 4000);
  assert_true(t_f2 - t_h2 >= 2900 * MS);
  assert_true(t_f2 - t_h2 <= 3300 * MS);
  sim_run(s, 10000);
  assert_int_equal(current_layer(u), 2);
  seg_t seg[16];
  assert_int_equal(segments(u, seg, 16), 6);
}

/* Only a fall under 85 % of the layer's rate moves it (to 90 % does not),
 * and a REMB counts only fresh: a 50 kb/s REMB 4 s old with 20 % loss
 * leaves the layer alone; the same loss with a fresh one does not. */
static void remb_counts_only_when_fresh_and_below_85pct(void **state) {
  sim_t *s = sim_new(8, 0);
  *state = s;
  sim_peer_t *a = publisher(s, "alice", 0, 3);
  sim_run(s, 500);
  sim_peer_t *stale = listener(s, "bob"), *fresh = listener(s, "erin");
  stale->auto_nack = fresh->auto_nack = 1;
  sim_peer_t *at90 = sim_peer_new(s, "carol");
  at90->remb_bps = 600000; /* the top layer's rate */
  sim_peer_t *at80 = sim_peer_new(s, "dave");
  at80->remb_bps = 600000;
  sim_enter(at90);
  sim_enter(at80);
  sim_sub_t *us = sim_sub_of(stale, a, 1), *uf = sim_sub_of(fresh, a, 1),
            *u90 = sim_sub_of(at90, a, 1), *u80 = sim_sub_of(at80, a, 1);
  sim_run(s, 2000);
  sim_send_remb(stale, 50000, us->ssrc);
  sim_send_remb(fresh, 50000, uf->ssrc);
  at90->remb_bps = 540000; /* 90 % */
  at80->remb_bps = 480000; /* 80 % */
  sim_run(s, 4000);
  assert_int_equal(current_layer(u90), 2);
  assert_int_equal(current_layer(u80), 1);
  assert_int_equal(current_layer(us), 2); /* no loss yet: a REMB alone never fell */
  assert_int_equal(current_layer(uf), 2);
  sim_send_remb(fresh, 50000, uf->ssrc);
  stale->down.loss = fresh->down.loss = 0.2;
  sim_run(s, 2000);
  assert_int_equal(current_layer(us), 2);
  assert_int_equal(current_layer(uf), 0);
  seg_t seg[8];
  assert_int_equal(segments(us, seg, 8), 1);
  assert_int_equal(segments(u90, seg, 8), 1);
}

/* ---- 6. NACK and RTX ----------------------------------------------------------------- */

static void subscriber_nack_is_answered_as_rtx_from_cache(void **state) {
  sim_t *s = sim_new(9, 0);
  *state = s;
  sim_peer_t *a = publisher(s, "alice", 0, 1);
  sim_peer_t *b = listener(s, "bob");
  sim_run(s, 1000);
  sim_sub_t *u = sim_sub_of(b, a, 1);
  assert_true(u->rtx_pt >= 0 && u->rtx_pt != u->pt);
  assert_true(u->rtx_ssrc != 0 && u->rtx_ssrc != u->ssrc);
  assert_true(u->nrx > 50);
  sim_rx_t orig = u->rx[u->nrx - 10];
  assert_false(orig.rtx);

  const sfu_room_counters_t c0 = s->room.c;
  int n0 = u->nrx;
  sim_send_nack(b, u->ssrc, &orig.seq, 1);
  assert_int_equal(u->nrx, n0 + 1);
  const sim_rx_t *r = &u->rx[n0];
  assert_true(r->rtx);
  assert_int_equal(r->pt, u->rtx_pt);
  assert_int_equal(r->ssrc, u->rtx_ssrc);
  assert_int_equal(r->osn, orig.seq); /* original seq in the first 2 payload bytes */
  assert_int_equal(r->ts, orig.ts);
  assert_int_equal(r->marker, orig.marker);
  assert_int_equal(r->payload_len, orig.payload_len);
  assert_int_equal(r->hash, orig.hash);
  assert_int_equal(r->tag, orig.tag);
  assert_int_equal(s->room.c.nacks_received - c0.nacks_received, 1);
  assert_int_equal(s->room.c.rtx_out - c0.rtx_out, 1);
  uint16_t rtx_seq = r->seq;

  /* asked again at once: not twice within 10 ms; 20 ms later: again, with
   * the next RTX sequence number */
  sim_send_nack(b, u->ssrc, &orig.seq, 1);
  int n1 = u->nrx, rtx1 = 0;
  for (int i = n0 + 1; i < n1; i++) rtx1 += u->rx[i].rtx;
  assert_int_equal(rtx1, 0);
  sim_run(s, 20);
  n1 = u->nrx;
  sim_send_nack(b, u->ssrc, &orig.seq, 1);
  assert_int_equal(u->nrx, n1 + 1);
  assert_true(u->rx[n1].rtx);
  assert_int_equal(u->rx[n1].osn, orig.seq);
  assert_int_equal(u->rx[n1].seq, (uint16_t)(rtx_seq + 1));

  /* a number never sent: nothing */
  uint16_t never = (uint16_t)(orig.seq + 5000);
  n1 = u->nrx;
  sim_send_nack(b, u->ssrc, &never, 1);
  assert_int_equal(u->nrx, n1);
}

static void subscriber_nack_without_rtx_resends_the_packet_itself(void **state) {
  sim_t *s = sim_new(10, 0);
  *state = s;
  sim_peer_t *a = publisher(s, "alice", 0, 1);
  sim_peer_t *b = sim_peer_new(s, "bob");
  b->no_rtx_answer = 1;
  sim_enter(b);
  sim_run(s, 1000);
  sim_sub_t *u = sim_sub_of(b, a, 1);
  assert_int_equal(u->rtx_pt, -1);
  sim_rx_t orig = u->rx[u->nrx - 5];
  int n0 = u->nrx;
  sim_send_nack(b, u->ssrc, &orig.seq, 1);
  assert_int_equal(u->nrx, n0 + 1);
  const sim_rx_t *r = &u->rx[n0];
  assert_false(r->rtx);
  assert_int_equal(r->ssrc, u->ssrc);
  assert_int_equal(r->pt, u->pt);
  assert_int_equal(r->seq, orig.seq);
  assert_int_equal(r->ts, orig.ts);
  assert_int_equal(r->hash, orig.hash);
  /* Byte for byte the first copy (SRTP repeats a plaintext only as is):
   * header, extensions (abs-send-time), rewritten payload. */
  const sim_pkt_t *copies[2];
  int ncopies = 0;
  for (int i = 0; i < s->npkts && ncopies < 2; i++) {
    const sim_pkt_t *p = &s->pkts[i];
    if (p->session != b->session || p->rtcp || p->len < 12) continue;
    if (sfu_rd32(p->data + 8) == u->ssrc && sfu_rd16(p->data + 2) == orig.seq) copies[ncopies++] = p;
  }
  assert_int_equal(ncopies, 2);
  assert_true(u->abs_ext > 0 && (copies[0]->data[0] & 0x10)); /* it has the extension */
  assert_int_equal(copies[0]->len, copies[1]->len);
  assert_memory_equal(copies[0]->data, copies[1]->data, copies[0]->len);
}

static void publisher_gap_is_nacked_next_tick_retried_every_40ms_then_keyframe(void **state) {
  sim_t *s = sim_new(11, 0);
  *state = s;
  sim_peer_t *a = sim_peer_new(s, "alice");
  sim_peer_video(a, 1);
  a->auto_rtx = 0; /* the loss stays a loss */
  sim_enter(a);
  sim_peer_t *b = listener(s, "bob");
  sim_run(s, 2000);
  sim_sub_t *u = sim_sub_of(b, a, 1);
  sim_layer_t *L = &a->layers[0];
  assert_int_equal(sim_fb_count(a, SIM_FB_NACK, 0, 0, UINT64_MAX), 0);

  uint16_t lost = (uint16_t)(L->seq + 4); /* the 2nd packet of the 2nd frame from now */
  uint32_t next_tag = (L->tag_next + 5) & 0x3fffff;
  L->drop_seq = lost;
  const sfu_room_counters_t c0 = s->room.c;
  sim_run(s, 1000);

  uint64_t t_gap = 0; /* when the packet after it arrived */
  for (int i = 0; i < u->nrx && !t_gap; i++)
    if ((u->rx[i].tag & 0x3fffff) == next_tag) t_gap = u->rx[i].at_us;
  assert_true(t_gap > 0);
  uint64_t t[32] = {0};
  int n = nack_times(a, L->ssrc, lost, t, 32);
  assert_int_equal(n, 10); /* 10 tries */
  assert_true(t[0] >= t_gap + 10 * MS);
  assert_true(t[0] <= t_gap + 30 * MS); /* the first feedback tick once due */
  for (int i = 1; i < n; i++) {
    assert_true(t[i] - t[i - 1] >= 40 * MS);
    assert_true(t[i] - t[i - 1] <= 60 * MS);
  }
  assert_true(s->room.c.nacks_sent - c0.nacks_sent >= 10);
  /* given up after ~400 ms: a keyframe request instead */
  int plis = 0;
  uint64_t t_pli = 0;
  for (int i = 0; i < a->nfb; i++)
    if (a->fb[i].kind == SIM_FB_PLI && a->fb[i].at_us > t[0]) {
      if (!plis) t_pli = a->fb[i].at_us;
      plis++;
    }
  assert_int_equal(plis, 1);
  assert_true(t_pli > t[n - 1]);
  assert_true(t_pli - t[0] >= 380 * MS);
  assert_true(t_pli - t[0] <= 440 * MS);
}

/* ---- 7. usage ---------------------------------------------------------------------- */

typedef struct {
  int n;
  int64_t start[64], end[64];
  int64_t ms[64][5];
  int final[64];
} usage_t;

static void usage_of(sim_t *s, const char *identity, usage_t *out) {
  static const char *const kinds[5] = {"connected", "audio_published", "audio_received",
                                       "video_published", "video_received"};
  memset(out, 0, sizeof(*out));
  for (int i = 0; i < s->nmsgs; i++) {
    json_t *m = s->msgs[i].m;
    if (strcmp(str(m, "type"), "usage") != 0) continue;
    size_t j;
    json_t *r;
    json_array_foreach(json_object_get(m, "records"), j, r) {
      if (strcmp(str(r, "identity"), identity) != 0) continue;
      assert_true(out->n < 64);
      out->start[out->n] = json_integer_value(json_object_get(r, "period_start_ms"));
      out->end[out->n] = json_integer_value(json_object_get(r, "period_end_ms"));
      for (int k = 0; k < 5; k++)
        out->ms[out->n][k] =
            json_integer_value(json_object_get(json_object_get(r, "ms"), kinds[k]));
      out->final[out->n] = json_is_true(json_object_get(r, "final"));
      out->n++;
    }
  }
}

static void assert_tiles(const usage_t *u, uint64_t join_ms, uint64_t leave_ms) {
  assert_true(u->n >= 2);
  assert_int_equal(u->start[0], wall_ms_at(join_ms));
  for (int i = 0; i + 1 < u->n; i++) {
    assert_int_equal(u->end[i], u->start[i + 1]); /* no gap, no overlap */
    assert_false(u->final[i]);
  }
  assert_true(u->final[u->n - 1]);
  assert_int_equal(u->end[u->n - 1], wall_ms_at(leave_ms));
}

static int64_t usage_sum(const usage_t *u, int kind) {
  int64_t t = 0;
  for (int i = 0; i < u->n; i++) t += u->ms[i][kind];
  return t;
}

static void usage_periods_tile_time_through_mute_and_leave(void **state) {
  sim_t *s = sim_new(12, 2); /* checkpoints every 2 s */
  *state = s;
  sim_peer_t *a = publisher(s, "alice", 1, 0); /* joins, publishes, connects at 0 */
  assert_int_equal(s->empty, 0);
  sim_run_until(s, 1500);
  sim_peer_t *b = listener(s, "bob"); /* at 1500 */
  sim_run_until(s, 4000);
  sim_server_mute(s, "alice", 1);
  sim_run_until(s, 7300);
  sim_server_mute(s, "alice", 0);
  sim_run_until(s, 9100);
  sim_leave(a);
  sim_run_until(s, 12000);
  sim_leave(b);
  assert_int_equal(s->empty, 1);

  usage_t ua, ub;
  usage_of(s, "alice", &ua);
  usage_of(s, "bob", &ub);
  assert_tiles(&ua, 0, 9100);
  assert_tiles(&ub, 1500, 12000);
  assert_true(ua.n >= 5); /* periodic checkpoints, then the final one */
  assert_int_equal(usage_sum(&ua, 0), 9100);
  assert_int_equal(usage_sum(&ua, 1), 9100 - (7300 - 4000)); /* muted time excluded */
  assert_int_equal(usage_sum(&ua, 2), 0);
  assert_int_equal(usage_sum(&ub, 0), 12000 - 1500);
  assert_int_equal(usage_sum(&ub, 1), 0);
  assert_int_equal(usage_sum(&ub, 2), (4000 - 1500) + (9100 - 7300));
  for (int k = 3; k < 5; k++) {
    assert_int_equal(usage_sum(&ua, k), 0);
    assert_int_equal(usage_sum(&ub, k), 0);
  }
  for (int i = 0; i < ua.n; i++) assert_true(ua.ms[i][0] == ua.end[i] - ua.start[i]);
  for (int i = 0; i < ub.n; i++) assert_true(ub.ms[i][0] == ub.end[i] - ub.start[i]);
}

/* ---- 8. speaking ---------------------------------------------------------------------- */

static void speaking_events_come_at_most_every_200ms(void **state) {
  static const int period[3] = {700, 900, 1100}, offset[3] = {0, 230, 470},
                   loud[3] = {160, 200, 140};
  sim_t *s = sim_new(13, 0);
  *state = s;
  sim_peer_t *sp[3];
  for (int i = 0; i < 3; i++) { /* packets off the tick grid, as in life */
    static const char *const names[3] = {"ann", "ben", "cat"};
    sp[i] = publisher(s, names[i], 1, 0);
    sim_run(s, 7);
  }
  sim_peer_t *l = listener(s, "lou");
  int from = s->nmsgs;
  for (uint64_t t = 0; t < 10000; t += 20) { /* staggered bursts */
    for (int i = 0; i < 3; i++)
      sp[i]->level = (int)((t + (uint64_t)offset[i]) % (uint64_t)period[i]) < loud[i] ? 20 : 127;
    sim_run(s, 20);
  }
  uint64_t until[3] = {0, 0, 0};
  for (uint64_t t = 0; t < 30000; t += 20) { /* then random ones (seeded) */
    for (int i = 0; i < 3; i++) {
      if (t < until[i]) continue;
      sp[i]->level = sp[i]->level == 127 ? 20 : 127;
      until[i] = t + (sp[i]->level == 20 ? 60 + sim_rand(s) % 300 : 300 + sim_rand(s) % 300);
    }
    sim_run(s, 20);
  }
  for (int i = 0; i < 3; i++) sp[i]->level = 127;
  sim_run(s, 1500);

  uint64_t prev = 0, min_gap = UINT64_MAX;
  int n = 0;
  char last[256] = "", cur[256];
  for (int i = from; i < s->nmsgs; i++) {
    json_t *msg = NULL;
    uint64_t at;
    json_t *m = s->msgs[i].m;
    if (strcmp(str(m, "type"), "client_msg") != 0) continue;
    msg = json_object_get(m, "msg");
    if (strcmp(str(msg, "type"), "speaking") != 0) continue;
    assert_non_null(sim_msg_to(s, l->session, "speaking", i, NULL)); /* the listener gets it */
    at = s->msgs[i].at_us;
    if (n && at - prev < min_gap) min_gap = at - prev;
    prev = at;
    n++;
    cur[0] = '\0';
    size_t j;
    json_t *e;
    json_array_foreach(json_object_get(msg, "speakers"), j, e) {
      strncat(cur, str(e, "identity"), sizeof(cur) - strlen(cur) - 2);
      strcat(cur, ",");
    }
    assert_string_not_equal(cur, last); /* sent when the set changes */
    snprintf(last, sizeof(last), "%s", cur);
  }
  assert_true(n >= 80);
  assert_true(min_gap >= 200 * MS);
  assert_true(min_gap < 300 * MS); /* the limit, not the pattern, set the pace */
  assert_string_equal(last, "");   /* and the last word is "nobody" */
}

/* The identities in the last speaking message to `session` from `from`
 * on ("a,b,"), or NULL if none came. */
static const char *last_speakers(sim_t *s, uint32_t session, int from, char *buf, size_t cap) {
  json_t *msg = sim_msg_to(s, session, "speaking", from, NULL), *e;
  size_t j;
  if (!msg) return NULL;
  buf[0] = '\0';
  json_array_foreach(json_object_get(msg, "speakers"), j, e) {
    strncat(buf, str(e, "identity"), cap - strlen(buf) - 2);
    strcat(buf, ",");
  }
  return buf;
}

static void server_mute_takes_a_speaker_out_of_the_speaking_set(void **state) {
  sim_t *s = sim_new(20, 0);
  *state = s;
  sim_peer_t *a = sim_peer_new(s, "alice");
  sim_peer_audio(a);
  a->level = 20; /* talks all along */
  sim_enter(a);
  sim_peer_t *b = listener(s, "bob");
  char buf[128];
  sim_run(s, 1000);
  const char *who = last_speakers(s, b->session, 0, buf, sizeof(buf));
  assert_non_null(who);
  assert_string_equal(who, "alice,");

  int from = s->nmsgs;
  sim_server_mute(s, "alice", 1); /* her audio is no longer forwarded */
  sim_run(s, 500);
  who = last_speakers(s, b->session, from, buf, sizeof(buf));
  if (!who) fail_msg("no speaking event after the server muted the only speaker");
  assert_string_equal(who, "");

  from = s->nmsgs;
  sim_server_mute(s, "alice", 0);
  sim_run(s, 500);
  who = last_speakers(s, b->session, from, buf, sizeof(buf));
  assert_non_null(who);
  assert_string_equal(who, "alice,");
}

/* ---- 8a. TURN servers in the welcome ---------------------------------------------------- */

/* sfud mints TURN credentials per join and sends them with client_join:
 * the welcome carries them exactly as given, to that client only; a join
 * without them (TURN not configured) gets a welcome without the field, and
 * so does one whose list is empty. */
static void welcome_carries_the_ice_servers_of_its_join(void **state) {
  sim_t *s = sim_new(24, 0);
  *state = s;
  json_t *ice = json_pack("[{s:[s, s], s:s, s:s}]", "urls", "turn:192.0.2.7:3478?transport=udp",
                          "turns:turn.example.com:443?transport=tcp", "username",
                          "1700086400:alice", "credential", "ZmFrZSBjcmVkZW50aWFsIDAwMDA=");
  int from = s->nmsgs;
  sim_peer_t *a = sim_peer_new(s, "alice");
  a->ice_servers = json_deep_copy(ice);
  sim_enter(a);
  json_t *w = sim_msg_to(s, a->session, "welcome", from, NULL);
  assert_non_null(w);
  assert_true(json_equal(json_object_get(w, "ice_servers"), ice));

  sim_peer_t *b = sim_peer_new(s, "bob");
  sim_enter(b);
  w = sim_msg_to(s, b->session, "welcome", from, NULL);
  assert_non_null(w);
  assert_null(json_object_get(w, "ice_servers"));
  /* nobody else hears of alice's credentials */
  for (int i = from; i < s->nmsgs; i++) {
    char *text = json_dumps(s->msgs[i].m, JSON_COMPACT);
    json_int_t to = json_integer_value(json_object_get(s->msgs[i].m, "session"));
    if (strstr(text, "1700086400:alice") && to != (json_int_t)a->session)
      fail_msg("alice's TURN credentials went elsewhere: %s", text);
    free(text);
  }

  sim_peer_t *c = sim_peer_new(s, "carol");
  c->ice_servers = json_array();
  sim_enter(c);
  w = sim_msg_to(s, c->session, "welcome", from, NULL);
  assert_non_null(w);
  assert_null(json_object_get(w, "ice_servers"));
  json_decref(ice);
}

/* ---- 8b. server mute that sticks ------------------------------------------------------ */

/* participant.server_muted of a welcome / participant_* message. */
static int server_muted_in(json_t *msg) {
  return json_is_true(json_object_get(json_object_get(msg, "participant"), "server_muted"));
}

/* The control plane's mute belongs to the identity, not to the session:
 * leaving and joining again (a new participant), or replacing the session,
 * does not lift it. */
static void server_mute_survives_leave_and_rejoin(void **state) {
  sim_t *s = sim_new(21, 0);
  *state = s;
  sim_peer_t *a = publisher(s, "alice", 1, 0);
  sim_peer_t *b = listener(s, "bob");
  sim_run(s, 1000);
  sim_server_mute(s, "alice", 1);
  sim_leave(a);
  sim_run(s, 500);

  int from = s->nmsgs;
  uint64_t dropped = s->room.c.drop_muted;
  sim_peer_t *a2 = sim_peer_like(a);
  sim_enter(a2);
  json_t *w = sim_msg_to(s, a2->session, "welcome", from, NULL);
  assert_non_null(w);
  if (!server_muted_in(w)) fail_msg("rejoined after leaving, welcome says not server-muted");
  json_t *joined = sim_msg_to(s, b->session, "participant_joined", from, NULL);
  assert_non_null(joined);
  assert_true(server_muted_in(joined));
  assert_true(sim_part(a2)->server_muted);
  sim_run(s, 1000);
  sim_sub_t *u = sim_sub_of(b, a2, 0);
  assert_non_null(u);
  assert_int_equal(u->nrx, 0); /* nothing of the new session is forwarded */
  assert_true(s->room.c.drop_muted - dropped >= 45);

  /* A session replacing this one starts muted too. */
  from = s->nmsgs;
  sim_peer_t *a3 = sim_peer_like(a2);
  sim_enter(a3);
  assert_true(a2->gone);
  assert_true(server_muted_in(sim_msg_to(s, a3->session, "welcome", from, NULL)));
  json_t *upd = sim_msg_to(s, b->session, "participant_updated", from, NULL);
  assert_non_null(upd);
  assert_true(server_muted_in(upd));

  /* Unmuted, it is heard again. */
  from = s->nmsgs;
  sim_server_mute(s, "alice", 0);
  upd = sim_msg_to(s, b->session, "participant_updated", from, NULL);
  assert_non_null(upd);
  assert_false(server_muted_in(upd));
  sim_run(s, 1000);
  u = sim_sub_of(b, a3, 0);
  assert_non_null(u);
  assert_true(u->nrx >= 45);
}

/* A mute of an identity that is not in the room is remembered, and
 * applies from its first packet when it joins; an unmute before the join
 * forgets it. */
static void server_mute_before_join_applies_at_join(void **state) {
  sim_t *s = sim_new(22, 0);
  *state = s;
  sim_peer_t *b = listener(s, "bob");
  sim_run(s, 200);
  int from = s->nmsgs;
  sim_server_mute(s, "carol", 1);
  sim_server_mute(s, "dave", 1);
  sim_server_mute(s, "dave", 0);
  assert_int_equal(sim_count_to(s, b->session, "participant_updated", from), 0);

  uint64_t dropped = s->room.c.drop_muted;
  sim_peer_t *c = sim_peer_new(s, "carol");
  sim_peer_audio(c);
  sim_enter(c);
  json_t *w = sim_msg_to(s, c->session, "welcome", from, NULL);
  assert_non_null(w);
  if (!server_muted_in(w)) fail_msg("muted before joining, welcome says not server-muted");
  assert_true(server_muted_in(sim_msg_to(s, b->session, "participant_joined", from, NULL)));
  sim_run(s, 1000);
  sim_sub_t *u = sim_sub_of(b, c, 0);
  assert_non_null(u);
  assert_int_equal(u->nrx, 0);
  assert_true(s->room.c.drop_muted - dropped >= 45);

  sim_peer_t *d = publisher(s, "dave", 1, 0); /* unmuted before it came */
  assert_false(server_muted_in(sim_msg_to(s, d->session, "welcome", from, NULL)));
  sim_run(s, 1000);
  assert_true(sim_sub_of(b, d, 0)->nrx >= 45);

  sim_server_mute(s, "carol", 0);
  sim_run(s, 1000);
  assert_true(sim_sub_of(b, c, 0)->nrx >= 45);
}

/* The set of remembered mutes is bounded; a kick does not lift a mute;
 * an unmute while present is forgotten at the next join. */
static void server_mute_set_is_bounded_and_outlives_a_kick(void **state) {
  sim_t *s = sim_new(23, 0);
  *state = s;
  char id[32];
  for (int i = 0; i <= SFU_ROOM_MAX_SERVER_MUTED; i++) {
    snprintf(id, sizeof(id), "u%d", i);
    sim_server_mute(s, id, 1);
  }
  sim_server_mute(s, "u0", 1); /* again: no second entry */
  assert_int_equal(s->room.server_muted.n, SFU_ROOM_MAX_SERVER_MUTED);
  snprintf(id, sizeof(id), "u%d", SFU_ROOM_MAX_SERVER_MUTED);
  sim_peer_t *late = listener(s, id); /* the one past the bound */
  assert_false(sim_part(late)->server_muted);

  sim_peer_t *u0 = listener(s, "u0");
  assert_true(sim_part(u0)->server_muted);
  sim_kick(s, "u0");
  assert_true(u0->gone);
  sim_peer_t *u0b = sim_peer_like(u0);
  sim_enter(u0b);
  assert_true(sim_part(u0b)->server_muted); /* the kick did not lift it */

  sim_server_mute(s, "u0", 0);
  assert_false(sim_part(u0b)->server_muted);
  assert_int_equal(s->room.server_muted.n, SFU_ROOM_MAX_SERVER_MUTED - 1);
  sim_leave(u0b);
  sim_peer_t *u0c = sim_peer_like(u0b);
  sim_enter(u0c);
  assert_false(sim_part(u0c)->server_muted);
}

/* ---- 9. glare -------------------------------------------------------------------------- */

/* Emitted messages of `type` (usage, event, ...) from index `from` on. */
static int emitted(const sim_t *s, const char *type, int from) {
  int n = 0;
  for (int i = from; i < s->nmsgs; i++) n += strcmp(str(s->msgs[i].m, "type"), type) == 0;
  return n;
}

/* ---- 8c. the audience: counted, not listed ------------------------------------------------ */

static sim_peer_t *audience(sim_t *s, const char *id) {
  sim_peer_t *pe = sim_peer_new(s, id);
  pe->grants = SFU_GRANT_SUBSCRIBE;
  sim_enter(pe);
  return pe;
}

/* Messages to `session` since `from` that name `identity` (participant_*
 * or a welcome's list). */
static int naming(sim_t *s, uint32_t session, const char *identity, int from) {
  static const char *types[] = {"participant_joined", "participant_updated", "participant_left",
                                "welcome"};
  int n = 0;
  char needle[80];
  snprintf(needle, sizeof(needle), "\"identity\":\"%s\"", identity);
  for (int i = from; i < s->nmsgs; i++)
    for (int k = 0; k < 4; k++) {
      json_t *m = sim_msg_at(s, i, session);
      if (!m || strcmp(str(m, "type"), types[k]) != 0) continue;
      if (k == 3) m = json_object_get(m, "participants");
      char *text = json_dumps(m, JSON_COMPACT);
      n += strstr(text, needle) != NULL;
      free(text);
    }
  return n;
}

/* Events of type `ev` emitted since `from`. */
static int events_emitted(const sim_t *s, const char *ev, int from) {
  int n = 0;
  for (int i = from; i < s->nmsgs; i++)
    n += strcmp(str(s->msgs[i].m, "type"), "event") == 0 &&
         strcmp(str(json_object_get(s->msgs[i].m, "event"), "type"), ev) == 0;
  return n;
}

/* Tokens without `publish` join as an audience: nobody hears of them one
 * by one (no participant_* messages, not in a welcome's list); everyone
 * hears the count, at most once a second and only when it changed. The
 * control plane still gets every join and leave. A session that comes back
 * with `publish` is listed, and one that loses it is unlisted. */
static void audience_is_counted_not_listed(void **state) {
  sim_t *s = sim_new(31, 0);
  *state = s;
  sim_peer_t *a = publisher(s, "alice", 1, 0);
  int from = s->nmsgs;
  sim_peer_t *d[4];
  char id[16];
  for (int i = 0; i < 4; i++) {
    snprintf(id, sizeof(id), "aud%d", i);
    d[i] = audience(s, id);
  }
  json_t *w = sim_msg_to(s, d[3]->session, "welcome", from, NULL);
  assert_non_null(w);
  assert_int_equal(json_integer_value(json_object_get(w, "audience")), 4); /* itself too */
  assert_int_equal(json_array_size(json_object_get(w, "participants")), 1); /* alice */
  for (int i = 0; i < 4; i++) {
    snprintf(id, sizeof(id), "aud%d", i);
    assert_int_equal(naming(s, a->session, id, from), 0);
    assert_int_equal(naming(s, d[3]->session, id, from), 0);
  }
  assert_int_equal(events_emitted(s, "participant_joined", from), 4); /* for the control plane */
  sim_run(s, 1100);
  json_t *n = sim_msg_to(s, a->session, "audience", from, NULL);
  assert_non_null(n);
  assert_int_equal(json_integer_value(json_object_get(n, "count")), 4);
  assert_int_equal(sim_count_to(s, a->session, "audience", from), 1); /* four joins, one count */
  /* the audience hears the speaker as anyone does */
  assert_true(sim_count_to(s, d[0]->session, "welcome", from) == 1);

  /* two leave: one message with the new count; nothing when nothing changes */
  from = s->nmsgs;
  sim_leave(d[0]);
  sim_leave(d[1]);
  sim_run(s, 3000);
  assert_int_equal(sim_count_to(s, a->session, "audience", from), 1);
  assert_int_equal(json_integer_value(json_object_get(
                       sim_msg_to(s, a->session, "audience", from, NULL), "count")),
                   2);
  assert_int_equal(sim_count_to(s, a->session, "participant_left", from), 0);
  assert_int_equal(events_emitted(s, "participant_left", from), 2);

  /* aud2 comes back (a new session) allowed to publish: listed now */
  from = s->nmsgs;
  sim_peer_t *p = sim_peer_new(s, "aud2");
  sim_enter(p);
  assert_int_equal(naming(s, a->session, "aud2", from), 1); /* participant_joined */
  sim_run(s, 1100);
  assert_int_equal(json_integer_value(json_object_get(
                       sim_msg_to(s, a->session, "audience", from, NULL), "count")),
                   1); /* aud3 */
  /* and alice's new session without publish: the others forget her */
  from = s->nmsgs;
  sim_peer_t *q = sim_peer_new(s, "alice");
  q->grants = SFU_GRANT_SUBSCRIBE;
  sim_enter(q);
  json_t *left = sim_msg_to(s, p->session, "participant_left", from, NULL);
  assert_non_null(left);
  assert_string_equal(str(left, "identity"), "alice");
  assert_string_equal(str(left, "reason"), "audience");
  sim_run(s, 1100);
  assert_int_equal(json_integer_value(json_object_get(
                       sim_msg_to(s, p->session, "audience", from, NULL), "count")),
                   2); /* aud3 and alice */
}

static void mute_toggling_sends_no_usage_records_and_is_bounded_to_5_a_second(void **state) {
  sim_t *s = sim_new(13, 10);
  *state = s;
  sim_peer_t *a = publisher(s, "alice", 1, 0);
  for (int i = 0; i < SIM_MAX_PEERS - 1; i++) {
    char id[16];
    snprintf(id, sizeof(id), "l%d", i);
    listener(s, id);
  }
  sim_run_until(s, 1000); /* everyone in and connected; no checkpoint due before 10 s */
  int from = s->nmsgs, sent = 0;
  for (int t = 1000; t < 3000; t += 10) { /* 100 mute messages a second for 2 s */
    sim_run_until(s, (uint64_t)t);
    sent++;
    sim_client_msg(a, json_pack("{s:s, s:i, s:b}", "type", "mute", "id", sent, "muted", sent % 2));
  }
  sim_run_until(s, 3000);
  assert_int_equal(emitted(s, "usage", from), 0); /* a toggle costs no record */
  int acks = sim_count_to(s, a->session, "ack", from);
  int limited = 0;
  for (int i = from; i < s->nmsgs; i++) {
    json_t *m = json_object_get(s->msgs[i].m, "msg");
    limited += m && strcmp(str(m, "type"), "error") == 0 && str(m, "code") &&
               strcmp(str(m, "code"), "rate_limited") == 0;
  }
  assert_in_range(acks, 10, 11);  /* 5 a second (a window may straddle) */
  assert_int_equal(acks + limited, sent);
  /* Each accepted change is one broadcast, whatever the room's size. */
  assert_in_range(sim_count_to(s, a->session, "participant_updated", from), 1, acks);
  sim_run_until(s, 21000); /* two periodic checkpoints */
  sim_leave(a);
  assert_int_equal(emitted(s, "usage", from), 3); /* 10 s, 20 s, alice's final */
  usage_t ua;
  usage_of(s, "alice", &ua);
  assert_tiles(&ua, 0, 21000);
  assert_int_equal(usage_sum(&ua, 0), 21000);
}

/* m= lines of an SDP text. */
static int mlines(const char *sdp) {
  int n = 0;
  for (const char *q = sdp; (q = strstr(q, "m=")) != NULL; q += 2) n += q == sdp || q[-1] == '\n';
  return n;
}

static void publisher_churn_recycles_the_subscribers_mlines(void **state) {
  sim_t *s = sim_new(14, 0);
  *state = s;
  sim_peer_t *a = publisher(s, "alice", 1, 1);
  sim_peer_t *b = listener(s, "bob");
  sim_run(s, 500);
  json_t *first = sim_msg_to(s, b->session, "offer", 0, NULL);
  assert_non_null(first);
  int base = mlines(str(first, "sdp")); /* bob's own + alice's two */
  for (int i = 0; i < SIM_MAX_PEERS - 2; i++) { /* alice leaves and comes back, again and again */
    sim_leave(a);
    sim_run(s, 200);
    a = sim_peer_like(a);
    sim_enter(a);
    sim_run(s, 300);
  }
  sim_run(s, 1000);
  json_t *last = sim_msg_to(s, b->session, "offer", 0, NULL);
  const char *sdp = str(last, "sdp");
  /* The removed tracks' m-lines were taken over by the new ones: at most
   * the two of the live tracks, and two rejected ones waiting. */
  assert_in_range(mlines(sdp), base, base + 2);
  /* ... and the call goes on on them. */
  sim_sub_t *ua = sim_sub_of(b, a, 0), *uv = sim_sub_of(b, a, 1);
  assert_non_null(ua);
  assert_non_null(uv);
  assert_true(ua->active && uv->active);
  int n0 = ua->nrx, v0 = uv->nrx;
  sim_run(s, 1000);
  assert_true(ua->nrx > n0 + 40 && uv->nrx > v0 + 20);
}

static void client_offer_while_server_offer_outstanding_gets_glare(void **state) {
  sim_t *s = sim_new(14, 0);
  *state = s;
  sim_peer_t *b = listener(s, "bob");
  b->auto_answer = 0;
  sim_peer_t *a = publisher(s, "alice", 1, 0);
  assert_non_null(b->pending_offer_sdp); /* the server offers alice's audio */

  int from = s->nmsgs;
  sim_reoffer(b, 42);
  json_t *e = sim_msg_to(s, b->session, "error", from, NULL);
  assert_non_null(e);
  assert_string_equal(str(e, "code"), "glare");
  assert_int_equal(json_integer_value(json_object_get(e, "id")), 42);
  assert_int_equal(sim_count_to(s, b->session, "answer", from), 0);

  /* the server's offer still stands: answering it works, then B may offer */
  from = s->nmsgs;
  sim_answer_pending(b);
  assert_int_equal(sim_count_to(s, b->session, "error", from), 0);
  sim_reoffer(b, 43);
  json_t *ans = sim_msg_to(s, b->session, "answer", from, NULL);
  assert_non_null(ans);
  assert_int_equal(json_integer_value(json_object_get(ans, "id")), 43);
  assert_int_equal(sim_count_to(s, b->session, "error", from), 0);
  sim_run(s, 500);
  sim_sub_t *u = sim_sub_of(b, a, 0);
  assert_non_null(u);
  assert_true(u->nrx >= 20);
}

/* ---- 10. impaired links ------------------------------------------------------------------ */

static void upstream_loss_is_repaired_by_nack_and_publisher_rtx(void **state) {
  sim_t *s = sim_new(15, 0);
  *state = s;
  sim_peer_t *a = sim_peer_new(s, "alice");
  sim_peer_video(a, 1);
  a->up.loss = 0.05;
  a->up.dup = 0.01;
  a->up.reorder = 0.02;
  a->up.reorder_ms = 15;
  a->up.jitter_ms = 4;
  a->up.delay_ms = 10;
  sim_enter(a);
  sim_peer_t *b = listener(s, "bob");
  sim_run(s, 20000);
  sim_media(a, 0);
  sim_run(s, 1500);

  sim_sub_t *u = sim_sub_of(b, a, 1);
  sim_layer_t *L = &a->layers[0];
  uint32_t first = 0;
  for (int i = 0; i < 20 && i < u->nrx; i++)
    if ((u->rx[i].tag & 0x3fffff) > first) first = u->rx[i].tag & 0x3fffff;
  assert_true(a->up.lost > 50);
  assert_true(L->rtx_sent > 50);
  assert_true(s->room.c.rtx_in > 50);
  assert_true(s->room.c.nacks_sent > 50);
  /* every packet but the last frames (whose loss no later packet reveals) */
  sim_assert_all_tags(u, a, 0, first, L->tag_next - 30);
}

static void downstream_loss_is_repaired_by_subscriber_nacks(void **state) {
  sim_t *s = sim_new(16, 0);
  *state = s;
  sim_peer_t *a = publisher(s, "alice", 0, 1);
  sim_peer_t *b = sim_peer_new(s, "bob");
  b->down.loss = 0.05;
  b->down.jitter_ms = 3;
  b->down.delay_ms = 15;
  b->up.delay_ms = 15;
  b->auto_nack = 1;
  sim_enter(b);
  sim_run(s, 20000);
  sim_media(a, 0);
  sim_run(s, 1500);

  sim_sub_t *u = sim_sub_of(b, a, 1);
  uint32_t first = u->rx[0].tag & 0x3fffff;
  assert_true(b->down.lost > 50);
  assert_true(s->room.c.nacks_received > 50);
  assert_true(s->room.c.rtx_out > 50);
  int rtx = 0;
  for (int i = 0; i < u->nrx; i++) rtx += u->rx[i].rtx;
  assert_true(rtx > 50);
  sim_assert_all_tags(u, a, 0, first, a->layers[0].tag_next - 30);
}

/* A downlink of 400 kb/s under a receiver whose REMB follows its queue
 * (and that NACKs what it loses): the top layer (600 kb/s) is tried again
 * and again, each time for a moment (a second of loss), and held off
 * longer each time (6, 9, 13.5 s); the middle one (240 kb/s) fits and is
 * never left for the lowest. */
static void layer_follows_a_rate_limited_downlink(void **state) {
  sim_t *s = sim_new(17, 0);
  *state = s;
  sim_peer_t *a = publisher(s, "alice", 0, 3);
  sim_run(s, 500);
  sim_peer_t *b = sim_peer_new(s, "bob");
  b->down.rate_bps = 400000;
  b->down.queue_ms = 100;
  b->down.delay_ms = 20;
  b->remb_auto = 1;
  b->auto_nack = 1;
  sim_enter(b);
  sim_run(s, 48000);

  sim_sub_t *u = sim_sub_of(b, a, 1);
  seg_t seg[32];
  int n = segments(u, seg, 32), ups = 0;
  uint64_t on_mid = 0, total = seg[n - 1].end_us - seg[1].start_us, held[8];
  assert_true(b->down.overflow > 0); /* the link did limit */
  assert_int_equal(seg[0].layer, 2);
  for (int i = 0; i < n; i++) {
    uint64_t len = seg[i].end_us - seg[i].start_us;
    printf("# layer %d for %llu ms\n", seg[i].layer, (unsigned long long)len / 1000);
    assert_true(seg[i].layer != 0); /* the middle layer fits: never lower */
    if (seg[i].layer == 1) on_mid += len;
    if (seg[i].layer == 2) assert_true(len <= 2000 * MS); /* tried: a second of loss */
    if (seg[i].layer == 1 && i + 1 < n && ups < 8) held[ups] = len;
    if (i > 0 && seg[i].layer == 2) ups++;
  }
  assert_int_equal(ups, 3);
  assert_true(held[0] >= 5800 * MS && held[0] <= 6500 * MS);
  assert_true(held[1] >= 8800 * MS && held[1] <= 9500 * MS);
  assert_true(held[2] >= 13300 * MS && held[2] <= 14000 * MS);
  assert_true(on_mid * 10 > total * 9);
}

/* A downlink capped under the lowest layer but one: the REMB that falls
 * takes the top layer down at once, to the layer it carries (its first
 * fall still counts part of what came before the cap), and the lowest
 * layer is reached within 2 s. The cap lifted, the top comes back. */
static void falling_remb_drops_at_once_toward_what_fits_and_climbs_back(void **state) {
  sim_t *s = sim_new(19, 0);
  *state = s;
  sim_peer_t *a = publisher(s, "alice", 0, 3);
  sim_run(s, 500);
  sim_peer_t *b = sim_peer_new(s, "bob");
  b->remb_auto = 1;
  b->auto_nack = 1;
  b->down.queue_ms = 100;
  sim_enter(b);
  sim_run(s, 3000);
  sim_sub_t *u = sim_sub_of(b, a, 1);
  assert_int_equal(current_layer(u), 2);
  uint64_t t_cap = sim_us(s);
  b->down.rate_bps = 150000; /* only the lowest layer (60 kb/s) fits */
  sim_run(s, 3000);
  seg_t seg[16];
  int n = segments(u, seg, 16);
  printf("# capped at +%llu ms: ", (unsigned long long)(t_cap - SIM_MONO0_US) / 1000);
  for (int i = 0; i < n; i++)
    printf("layer %d from +%llu ms; ", seg[i].layer,
           (unsigned long long)(seg[i].start_us - SIM_MONO0_US) / 1000);
  printf("\n");
  assert_int_equal(seg[n - 1].layer, 0);
  assert_int_equal(seg[0].layer, 2);
  assert_true(seg[1].start_us - t_cap < 1000 * MS); /* off the top at its first fall */
  assert_true(seg[n - 1].start_us - t_cap < 2000 * MS);

  /* the cap lifted: back on the top within 15 s (held 6 s, then a layer
   * every 3 s), and there to stay while its REMB climbs */
  uint64_t t_lift = sim_us(s);
  b->down.rate_bps = 0;
  uint64_t t_top = wait_layer(s, u, 2, 15000);
  printf("# lifted at +%llu ms, top again %llu ms later\n",
         (unsigned long long)(t_lift - SIM_MONO0_US) / 1000,
         (unsigned long long)(t_top - t_lift) / 1000);
  sim_run(s, 15000);
  assert_int_equal(current_layer(u), 2);
  assert_int_equal(segments(u, seg, 16), n + 2);
}

/* A REMB that lags far below the top layer (it never falls: it is under
 * what arrives, capped or not) and a downlink capped under the top layer
 * with a deep queue (400 ms, so nothing is lost for a while): the round
 * trips the subscriber's reports give back grow with the queue, and that
 * takes it down to the layer its REMB carries: the lowest layer arrives
 * within 1.5 s of the cap (the queue ahead of its keyframe included), and
 * nothing overflowed. Without reports nothing says so: it stays on the
 * top layer. */
static void a_queue_under_a_lagging_remb_steps_down(void **state) {
  sim_t *s = sim_new(29, 0);
  *state = s;
  sim_peer_t *a = publisher(s, "alice", 0, 3);
  sim_run(s, 500);
  sim_peer_t *b = sim_peer_new(s, "bob"), *c = sim_peer_new(s, "carol");
  b->remb_bps = c->remb_bps = 100000; /* carries the lowest layer (60 kb/s) only */
  b->auto_rr = 1;
  b->down.delay_ms = c->down.delay_ms = 10;
  b->down.queue_ms = c->down.queue_ms = 400;
  sim_enter(b);
  sim_enter(c);
  sim_sub_t *ub = sim_sub_of(b, a, 1), *uc = sim_sub_of(c, a, 1);
  sim_run(s, 3000);
  assert_int_equal(current_layer(ub), 2);
  assert_int_equal(current_layer(uc), 2);
  uint64_t t_cap = sim_us(s);
  b->down.rate_bps = c->down.rate_bps = 450000; /* the top layer is 600 kb/s */
  uint64_t t_low = wait_layer(s, ub, 0, 1500);
  printf("# capped: on the lowest layer %llu ms later\n",
         (unsigned long long)(t_low - t_cap) / 1000);
  assert_true(t_low - t_cap < 1500 * MS);
  assert_int_equal(b->down.overflow, 0); /* the queue said it, not a loss */
  assert_int_equal(current_layer(uc), 2);
  seg_t seg[8];
  assert_int_equal(segments(uc, seg, 8), 1);
}

/* A receiver report's loss counts as soon as what it covers began half a
 * second into the layer, before the second a fall waits: reports every
 * 200 ms with 20 % lost, from the start, take a subscriber off the top
 * layer once its first report covering only that layer comes (well
 * within a second); one whose reports say nothing stays. */
static void a_report_of_loss_on_the_layer_counts_at_once(void **state) {
  sim_t *s = sim_new(31, 0);
  *state = s;
  sim_peer_t *a = publisher(s, "alice", 0, 3);
  sim_run(s, 500);
  sim_peer_t *b = sim_peer_new(s, "bob"), *c = sim_peer_new(s, "carol");
  b->remb_bps = c->remb_bps = 100000;
  b->auto_rr = c->auto_rr = 1;
  b->rr_lost = 51; /* 20 % */
  sim_enter(b);
  sim_enter(c);
  sim_sub_t *ub = sim_sub_of(b, a, 1), *uc = sim_sub_of(c, a, 1);
  uint64_t t_top = wait_layer(s, ub, 2, 1000);
  uint64_t t_low = wait_layer(s, ub, 0, 1500);
  printf("# on the top layer for %llu ms\n", (unsigned long long)(t_low - t_top) / 1000);
  assert_true(t_low - t_top < 1000 * MS);
  sim_run(s, 3000);
  assert_int_equal(current_layer(uc), 2);
}

/* A single layer with three temporal layers (600 kb/s: TID 0 and 1 a
 * quarter each, TID 2 half) to a subscriber whose downlink carries 400:
 * rather than pausing the video, the estimate drops TID 2 for it -- whole
 * frames, the numbering continuous. VP8: picture ids continuous,
 * TL0PICIDX untouched; H.264 (its layers in the Dependency Descriptor):
 * every frame start tells the subscriber it gets two decode targets. */
static void tight_budget_drops_temporal_layers(sim_t *s, int h264) {
  sim_peer_t *a = sim_peer_new(s, "alice");
  sim_peer_video(a, 1);
  a->temporal = !h264;
  a->h264_temporal = h264;
  sim_enter(a);
  sim_run(s, 1000);
  sim_peer_t *b = twcc_listener(s, "bob", 400000);
  sim_run(s, 10000);
  sim_sub_t *u = sim_sub_of(b, a, 1);
  uint64_t t = sim_us(s);
  sim_run(s, 2000);
  int n[4] = {0, 0, 0, 0}, frames = 0, masked = 0;
  const sim_rx_t *prev = NULL;
  for (int i = 0; i < u->nrx; i++) {
    const sim_rx_t *r = &u->rx[i];
    int tid = h264 ? sim_tag_layer(r->tag) : r->tid;
    if (r->rtx || r->at_us < t || tid < 0) continue;
    n[tid]++;
    if (h264 && r->dd > 0 && r->dd_start) {
      frames++;
      masked += r->dd_mask == 0x3;
    } else if (!h264 && r->begins) {
      if (prev) { /* picture ids +1 from frame to frame, TL0PICIDX never back */
        assert_int_equal((prev->pid + 1) & 0x7fff, r->pid);
        assert_true(((r->tl0 - prev->tl0) & 0xff) <= 1);
      }
      prev = r;
      frames++;
    }
  }
  printf("# temporal %s: TID 0/1/2 packets %d/%d/%d in 2 s, %d frames; estimate %u; %llu "
         "dropped\n",
         h264 ? "H.264" : "VP8", n[0], n[1], n[2], frames,
         sfu_bwe_estimate(&sim_part(b)->cc->bwe), (unsigned long long)s->room.c.drop_temporal);
  assert_true(n[0] > 20 && n[1] > 20);
  assert_int_equal(n[2], 0);
  assert_int_equal(s->room.c.bw_pauses, 0);
  if (h264) assert_int_equal(masked, frames);
  assert_true(check_continuous(u, t, sim_us(s), 3600 * 4) > 50);
}

static void a_tight_budget_drops_temporal_layers_before_pausing(void **state) {
  sim_t *s = sim_new(59, 0);
  *state = s;
  tight_budget_drops_temporal_layers(s, 0);
}

static void a_tight_budget_drops_h264_temporal_layers_before_pausing(void **state) {
  sim_t *s = sim_new(60, 0);
  *state = s;
  tight_budget_drops_temporal_layers(s, 1);
}

/* ---- VP9 SVC ----------------------------------------------------------------- */

/* Packets of subscription u received in [from_us, to_us): how many of each
 * SID, and whether each picture's last one carried the marker. */
static void svc_counts(const sim_sub_t *u, uint64_t from_us, uint64_t to_us, int n[3],
                       int *marked_last, int *marked_other) {
  n[0] = n[1] = n[2] = 0;
  *marked_last = *marked_other = 0;
  for (int i = 0; i < u->nrx; i++) {
    const sim_rx_t *r = &u->rx[i];
    if (r->rtx || r->at_us < from_us || r->at_us >= to_us || r->sid < 0 || r->sid > 2) continue;
    n[r->sid]++;
    int last = i + 1 == u->nrx || u->rx[i + 1].ts != r->ts; /* of its picture */
    if (r->marker) *(last ? marked_last : marked_other) += 1;
  }
}

/* One VP9 stream of three spatial layers: the subscriber gets every layer,
 * then asks low and gets SID 0 only, each picture ending with the marker
 * and the numbering continuous; asks high and, from a keyframe, gets all
 * three again. */
static void svc_spatial_layers_follow_the_quality_asked(void **state) {
  sim_t *s = sim_new(47, 0);
  *state = s;
  sim_peer_t *a = sim_peer_new(s, "alice");
  sim_peer_video(a, 1);
  a->vp9_svc = 1;
  sim_enter(a);
  sim_peer_t *b = listener(s, "bob");
  sim_run(s, 1000);
  sim_sub_t *u = sim_sub_of(b, a, 1);
  assert_true(u->vp9);
  int n[3], last, other;
  uint64_t t = sim_us(s);
  sim_run(s, 1000);
  svc_counts(u, t, sim_us(s), n, &last, &other);
  assert_true(n[0] >= 20 && n[1] == n[0] && n[2] == n[0]);
  assert_int_equal(other, 0);
  assert_true(last >= n[0] - 1);

  video_quality(b, u, "low");
  sim_run(s, 200);
  t = sim_us(s);
  sim_run(s, 1000);
  svc_counts(u, t, sim_us(s), n, &last, &other);
  assert_true(n[0] >= 20);
  assert_int_equal(n[1] + n[2], 0);
  assert_true(last >= n[0] - 1 && other == 0); /* each picture ends at SID 0 */
  assert_true(s->room.c.drop_svc > 0);

  uint64_t keys = a->layers[0].keyframes;
  video_quality(b, u, "high");
  sim_run(s, 500);
  assert_true(a->layers[0].keyframes > keys); /* going up waits for one */
  t = sim_us(s);
  sim_run(s, 1000);
  svc_counts(u, t, sim_us(s), n, &last, &other);
  assert_true(n[0] >= 20 && n[2] == n[0]);
  assert_int_equal(other, 0);
  /* one stream to the subscriber throughout: numbers +1, timestamps on */
  assert_true(check_continuous(u, SIM_MONO0_US, sim_us(s), 3600 * 2) > 100);
}

/* The same stream (S0 40, S1 80, S2 160 kb/s of payload) to subscribers
 * whose estimates follow capped downlinks: at 250 kb/s the estimate
 * carries S0 and S1 and S2 is dropped for it (its pictures ending at S1),
 * at 80 kb/s S0 only, unlimited all three -- the spatial layers shared
 * out like simulcast layers, the video never paused. */
static void svc_spatial_layers_follow_the_estimate(void **state) {
  sim_t *s = sim_new(48, 0);
  *state = s;
  sim_peer_t *a = sim_peer_new(s, "alice");
  sim_peer_video(a, 1);
  a->vp9_svc = 1;
  sim_enter(a);
  sim_run(s, 1000);
  sim_peer_t *mid = twcc_listener(s, "bob", 250000), *low = twcc_listener(s, "carol", 80000),
             *all = twcc_listener(s, "dave", 0);
  sim_run(s, 15000);
  sim_sub_t *um = sim_sub_of(mid, a, 1), *ul = sim_sub_of(low, a, 1), *ua = sim_sub_of(all, a, 1);
  int nm[3], nl[3], na[3], last, other;
  uint64_t t = sim_us(s);
  sim_run(s, 3000);
  svc_counts(ul, t, sim_us(s), nl, &last, &other);
  svc_counts(ua, t, sim_us(s), na, &last, &other);
  svc_counts(um, t, sim_us(s), nm, &last, &other);
  printf("# estimates %u / %u / %u: S0/S1/S2 %d/%d/%d, %d/%d/%d, %d/%d/%d packets in 3 s\n",
         sfu_bwe_estimate(&sim_part(mid)->cc->bwe), sfu_bwe_estimate(&sim_part(low)->cc->bwe),
         sfu_bwe_estimate(&sim_part(all)->cc->bwe), nm[0], nm[1], nm[2], nl[0], nl[1], nl[2],
         na[0], na[1], na[2]);
  assert_true(nm[0] >= 60 && nm[1] >= nm[0] - 2 && nm[2] == 0);
  assert_int_equal(other, 0);
  assert_true(last >= nm[0] - 2); /* each picture ends at SID 1 */
  svc_counts(ul, t, sim_us(s), nl, &last, &other);
  assert_true(nl[0] >= 60 && nl[1] == 0 && nl[2] == 0);
  svc_counts(ua, t, sim_us(s), na, &last, &other);
  assert_true(na[0] >= 60 && na[1] >= na[0] - 2 && na[2] >= na[0] - 2);
  assert_int_equal(s->room.c.bw_pauses, 0);
}

/* ---- AV1 SVC by the Dependency Descriptor ----------------------------------- */

typedef struct {
  int n[3];                     /* packets by spatial layer (their tags say) */
  int starts;                   /* frame starts (the descriptor's) */
  int masked, other_mask;       /* of which with the mask looked for, another */
  int structures, unreadable;   /* descriptors with a structure, unreadable */
  int marked_last, marked_other; /* markers on a picture's last packet, others */
  int fn_back;                  /* frame numbers that did not go forward */
} av1_counts_t;

/* Packets of subscription u received in [from_us, to_us), the masks
 * looked for being `mask` (-1: none at all). */
static void av1_counts(const sim_sub_t *u, uint64_t from_us, uint64_t to_us, int64_t mask,
                       av1_counts_t *c) {
  const sim_rx_t *prev = NULL;
  memset(c, 0, sizeof(*c));
  for (int i = 0; i < u->nrx; i++) {
    const sim_rx_t *r = &u->rx[i];
    if (r->rtx || r->at_us < from_us || r->at_us >= to_us) continue;
    int sid = sim_tag_layer(r->tag);
    assert_true(sid >= 0 && sid < 3);
    c->n[sid]++;
    c->unreadable += r->dd < 0;
    c->structures += r->dd == 2;
    if (r->dd > 0) assert_int_equal(r->dd_sid, sid);
    if (r->dd > 0 && r->dd_start) {
      c->starts++;
      if (r->dd_mask >= 0) *(r->dd_mask == mask ? &c->masked : &c->other_mask) += 1;
      if (prev) c->fn_back += (int16_t)(r->dd_fn - prev->dd_fn) <= 0;
      prev = r;
    }
    int last = i + 1 == u->nrx || u->rx[i + 1].ts != r->ts; /* of its picture */
    if (r->marker) *(last ? &c->marked_last : &c->marked_other) += 1;
  }
}

static void video_max_height(sim_peer_t *sub, const sim_sub_t *u, int h) {
  sim_t *s = sub->sim;
  int from = s->nmsgs;
  sim_client_msg(sub, json_pack("{s:s, s:i, s:s, s:s, s:i}", "type", "video_quality", "id", 78,
                                "track_id", u->track_id, "quality", "high", "max_height", h));
  assert_non_null(sim_msg_to(s, sub->session, "ack", from, NULL));
}

/* A publisher of a video with the Dependency Descriptor (AV1 L3T3 or
 * H.264 L1T3), two listeners (bob, carol) and one whose answers drop the
 * descriptor (erin), a second into the call. */
typedef struct {
  sim_t *s;
  sim_peer_t *a, *b, *c, *e;
  sim_sub_t *ub, *uc, *ue;
} dd_call_t;

static dd_call_t dd_call(void **state, unsigned seed, int av1) {
  dd_call_t k;
  memset(&k, 0, sizeof(k));
  k.s = sim_new(seed, 0);
  *state = k.s;
  k.a = sim_peer_new(k.s, "alice");
  sim_peer_video(k.a, 1);
  if (av1)
    k.a->av1_svc = 1;
  else
    k.a->h264_temporal = 1;
  sim_enter(k.a);
  k.b = listener(k.s, "bob");
  k.c = listener(k.s, "carol");
  k.e = sim_peer_new(k.s, "erin");
  k.e->no_dd_answer = 1;
  sim_enter(k.e);
  sim_run(k.s, 1000);
  k.ub = sim_sub_of(k.b, k.a, 1);
  k.uc = sim_sub_of(k.c, k.a, 1);
  k.ue = sim_sub_of(k.e, k.a, 1);
  return k;
}

/* AV1 L3T3 with the Dependency Descriptor, one stream: the server reads
 * the layers of every packet from the descriptor (the payload says them
 * only where an OBU starts). A subscriber asking low gets S0 alone, each
 * frame start telling it the three decode targets of S0 are all that is
 * active, the marker on S0's end; one asking high all three, its
 * descriptors as sent; one with max_height 360 S0 and S1 (the sizes from
 * the structure); one whose answer dropped the descriptor everything.
 * Each starts at the keyframe that carries the structure; frame numbers
 * go forward, the numbering stays whole, and back on high the low one
 * gets all three layers from a keyframe. */
static void av1_spatial_layers_by_the_dependency_descriptor(void **state) {
  dd_call_t k = dd_call(state, 61, 1);
  sim_t *s = k.s;
  sim_peer_t *a = k.a, *b = k.b, *c = k.c, *e = k.e;
  sim_sub_t *ub = k.ub, *uc = k.uc, *ue = k.ue;
  assert_true(ub->av1 && ub->dd_ext > 0 && uc->dd_ext > 0 && ue->dd_ext == 0);
  sfu_track_t *t = sim_part(a)->video;
  assert_true(t->dd_ext > 0);
  assert_int_equal(t->svc_layers, 3);
  /* the first packet is a keyframe's first, with the structure */
  assert_true(ub->nrx > 0 && ub->rx[0].dd == 2 && ub->rx[0].dd_start);
  assert_true(uc->nrx > 0 && uc->rx[0].dd == 2);

  video_quality(b, ub, "low");
  video_quality(e, ue, "low");
  video_max_height(c, uc, 360);
  sim_run(s, 200);
  uint64_t t0 = sim_us(s);
  sim_run(s, 1000);
  av1_counts_t cb, cc, ce;
  av1_counts(ub, t0, sim_us(s), 0x007, &cb);
  av1_counts(uc, t0, sim_us(s), 0x03f, &cc);
  av1_counts(ue, t0, sim_us(s), -1, &ce);
  printf("# av1 L3T3: low S0/S1/S2 %d/%d/%d (%d frames, %d told 0x007), max_height 360 "
         "%d/%d/%d (%d told 0x03f), no descriptor %d/%d/%d; drop_svc %llu, dd_masked %llu\n",
         cb.n[0], cb.n[1], cb.n[2], cb.starts, cb.masked, cc.n[0], cc.n[1], cc.n[2], cc.masked,
         ce.n[0], ce.n[1], ce.n[2], (unsigned long long)s->room.c.drop_svc,
         (unsigned long long)s->room.c.dd_masked);
  assert_true(cb.n[0] >= 20);
  assert_int_equal(cb.n[1] + cb.n[2], 0);
  assert_int_equal(cb.masked, cb.starts); /* every frame: S0's targets only */
  assert_int_equal(cb.other_mask + cb.unreadable + cb.fn_back, 0);
  assert_true(cb.marked_last >= cb.n[0] - 1 && cb.marked_other == 0); /* pictures end at S0 */
  assert_true(cc.n[0] >= 20 && cc.n[1] == cc.n[0]);
  assert_int_equal(cc.n[2], 0);
  assert_int_equal(cc.masked, cc.starts);
  assert_int_equal(cc.other_mask + cc.unreadable + cc.fn_back, 0);
  assert_true(ce.n[0] >= 20 && ce.n[1] == ce.n[0] && ce.n[2] == 2 * ce.n[0]);
  assert_true(s->room.c.drop_svc > 0 && s->room.c.dd_in > 0);
  assert_int_equal(s->room.c.dd_bad, 0);
  /* a NACKed frame start comes again with the descriptor it had: its
   * frame number and bob's mask */
  int at = ub->nrx - 1;
  while (at > 0 && !(ub->rx[at].dd_start && ub->rx[at].dd_mask >= 0)) at--;
  sim_rx_t orig = ub->rx[at];
  int n0 = ub->nrx;
  sim_send_nack(b, ub->ssrc, &orig.seq, 1);
  assert_int_equal(ub->nrx, n0 + 1);
  const sim_rx_t *rr = &ub->rx[n0];
  assert_true(rr->rtx && rr->osn == orig.seq && rr->hash == orig.hash && rr->dd == 1);
  assert_int_equal(rr->dd_fn, orig.dd_fn);
  assert_int_equal(rr->dd_mask, 0x007);
  assert_int_equal(rr->marker, orig.marker);

  uint64_t keys = a->layers[0].keyframes;
  video_quality(b, ub, "high");
  video_max_height(c, uc, 0);
  sim_run(s, 500);
  assert_true(a->layers[0].keyframes > keys); /* going up waits for one */
  t0 = sim_us(s);
  sim_run(s, 1000);
  av1_counts(ub, t0, sim_us(s), 0x1ff, &cb);
  av1_counts(uc, t0, sim_us(s), 0x1ff, &cc);
  assert_true(cb.n[0] >= 20 && cb.n[1] == cb.n[0] && cb.n[2] == 2 * cb.n[0]);
  assert_true(cc.n[0] >= 20 && cc.n[2] == 2 * cc.n[0]);
  assert_int_equal(cb.other_mask + cb.unreadable + cb.fn_back, 0);
  assert_true(cb.marked_other == 0 && cb.marked_last >= cb.n[0] - 1);
  /* one stream to each subscriber throughout: numbers +1, timestamps on */
  assert_true(check_continuous(ub, SIM_MONO0_US, sim_us(s), 3600 * 2) > 100);
  assert_true(check_continuous(uc, SIM_MONO0_US, sim_us(s), 3600 * 2) > 100);
  /* nobody ever got a descriptor it could not read */
  av1_counts(ub, SIM_MONO0_US, sim_us(s), -1, &cb);
  av1_counts(ue, SIM_MONO0_US, sim_us(s), -1, &ce);
  assert_int_equal(cb.unreadable, 0);
  assert_true(cb.structures >= 2);
  for (int i = 0; i < ue->nrx; i++) assert_int_equal(ue->rx[i].dd, 0);
}

/* ---- H.264 temporal layers ---------------------------------------------------- */

typedef struct {
  int n[3];                     /* packets by temporal layer (their tags say) */
  int starts;                   /* frame starts (the descriptor's, else the payload's) */
  int masked, other_mask;       /* of which with the mask looked for, another */
  int with_dd, unreadable;      /* packets with a descriptor, unreadable ones */
  int fn_back;                  /* frame numbers that did not go forward */
} tid_counts_t;

/* Packets of H.264 subscription u received in [from_us, to_us), the mask
 * looked for being `mask`. */
static void tid_counts(const sim_sub_t *u, uint64_t from_us, uint64_t to_us, int64_t mask,
                       tid_counts_t *c) {
  const sim_rx_t *prev = NULL;
  memset(c, 0, sizeof(*c));
  for (int i = 0; i < u->nrx; i++) {
    const sim_rx_t *r = &u->rx[i];
    if (r->rtx || r->at_us < from_us || r->at_us >= to_us) continue;
    int tid = sim_tag_layer(r->tag);
    assert_true(tid >= 0 && tid < 3);
    c->n[tid]++;
    c->with_dd += r->dd != 0;
    c->unreadable += r->dd < 0;
    if (r->dd > 0) assert_int_equal(r->dd_tid, tid);
    if (r->dd > 0 ? r->dd_start : r->dd == 0 && r->begins) {
      c->starts++;
      if (r->dd_mask >= 0) *(r->dd_mask == mask ? &c->masked : &c->other_mask) += 1;
      if (prev) c->fn_back += (int16_t)(r->dd_fn - prev->dd_fn) <= 0;
      if (r->dd > 0) prev = r;
    }
  }
}

/* H.264 with three temporal layers in one stream (OpenH264's L1T3), the
 * layers said by the Dependency Descriptor alone (the payload has no
 * temporal id). The server takes the descriptor from an H.264 publisher
 * and passes it on. A subscriber asking low gets the TID 0 frames, each
 * frame start telling it decode target 0 is all it gets; one asking
 * medium TID 0 and 1 (targets 0 and 1); one whose answer dropped the
 * descriptor the TID 0 frames too, without one. Frames go whole, the
 * numbering stays whole, frame numbers go forward, no keyframe is asked
 * for; back on high the low one gets every frame again from a TID 0 frame
 * on, told once that all targets are back. */
static void h264_temporal_layers_by_the_dependency_descriptor(void **state) {
  dd_call_t k = dd_call(state, 62, 0);
  sim_t *s = k.s;
  sim_peer_t *a = k.a, *b = k.b, *c = k.c, *e = k.e;
  sim_sub_t *ub = k.ub, *uc = k.uc, *ue = k.ue;
  assert_true(ub->h264 && ub->dd_ext > 0 && uc->dd_ext > 0 && ue->dd_ext == 0);
  sfu_track_t *t = sim_part(a)->video;
  assert_true(t->dd_ext > 0);
  assert_int_equal(t->tid_layers, 3);
  assert_true(t->svc_layers <= 1);
  /* a subscriber of the descriptor starts at the keyframe with the structure */
  assert_true(ub->nrx > 0 && ub->rx[0].dd == 2 && ub->rx[0].dd_start && ub->rx[0].key);

  uint64_t t0 = sim_us(s);
  sim_run(s, 1000);
  tid_counts_t cb, cc, ce;
  tid_counts(ub, t0, sim_us(s), -1, &cb);
  assert_true(cb.n[0] >= 15 && cb.n[1] >= 15 && cb.n[2] >= 2 * cb.n[0] - 6);
  assert_int_equal(cb.masked + cb.other_mask + cb.unreadable + cb.fn_back, 0);

  uint64_t keys = a->layers[0].keyframes;
  video_quality(b, ub, "low");
  video_quality(c, uc, "medium");
  video_quality(e, ue, "low");
  sim_run(s, 200);
  t0 = sim_us(s);
  sim_run(s, 2000);
  tid_counts(ub, t0, sim_us(s), 0x1, &cb);
  tid_counts(uc, t0, sim_us(s), 0x3, &cc);
  tid_counts(ue, t0, sim_us(s), -1, &ce);
  printf("# h264 L1T3: low TID 0/1/2 %d/%d/%d (%d frames, %d told 0x1), medium %d/%d/%d "
         "(%d told 0x3), no descriptor %d/%d/%d; drop_temporal %llu, dd_masked %llu\n",
         cb.n[0], cb.n[1], cb.n[2], cb.starts, cb.masked, cc.n[0], cc.n[1], cc.n[2], cc.masked,
         ce.n[0], ce.n[1], ce.n[2], (unsigned long long)s->room.c.drop_temporal,
         (unsigned long long)s->room.c.dd_masked);
  assert_true(cb.n[0] >= 30 && cb.starts >= 10);
  assert_int_equal(cb.n[1] + cb.n[2], 0);
  assert_int_equal(cb.masked, cb.starts); /* every frame: target 0 only */
  assert_int_equal(cb.other_mask + cb.unreadable + cb.fn_back, 0);
  assert_true(cc.n[0] >= 30 && cc.n[1] >= cc.n[0] - 6 && cc.n[1] <= cc.n[0] + 6);
  assert_int_equal(cc.n[2], 0);
  assert_int_equal(cc.masked, cc.starts);
  assert_int_equal(cc.other_mask + cc.unreadable + cc.fn_back, 0);
  assert_true(ce.n[0] >= 30 && ce.starts >= 10);
  assert_int_equal(ce.n[1] + ce.n[2] + ce.with_dd, 0);
  assert_true(s->room.c.drop_temporal > 0 && s->room.c.dd_in > 0);
  assert_int_equal(s->room.c.dd_bad, 0);
  assert_int_equal(a->layers[0].keyframes, keys); /* fewer frames need no keyframe */

  /* back to all of them at a TID 0 frame (the base alone until then),
   * told once */
  uint64_t t1 = sim_us(s);
  video_quality(b, ub, "high");
  sim_run(s, 1000);
  tid_counts(ub, t1, sim_us(s), 0x7, &cb);
  assert_true(cb.n[2] >= 10 && cb.n[1] >= 6);
  assert_int_equal(cb.masked, 1);
  assert_int_equal(cb.unreadable + cb.fn_back, 0);
  int all_at = -1, before = 0;
  for (int i = 0; i < ub->nrx; i++) {
    const sim_rx_t *r = &ub->rx[i];
    if (r->rtx || r->at_us < t1 || r->dd <= 0) continue;
    if (all_at < 0) {
      assert_int_equal(r->dd_tid, 0);
      if (r->dd_start && r->dd_mask == 0x7) all_at = i;
      else if (r->dd_start) before += r->dd_mask == 0x1;
    } else if (r->dd_start) {
      assert_int_equal(r->dd_mask, -1); /* nothing more to tell */
    }
  }
  assert_true(all_at >= 0);
  assert_int_equal(cb.other_mask, before);
  assert_int_equal(a->layers[0].keyframes, keys);
  /* one stream to each subscriber throughout: numbers +1, timestamps on */
  assert_true(check_continuous(ub, SIM_MONO0_US, sim_us(s), 3600 * 4) > 100);
  assert_true(check_continuous(uc, SIM_MONO0_US, sim_us(s), 3600 * 2) > 100);
  assert_true(check_continuous(ue, SIM_MONO0_US, sim_us(s), 3600 * 4) > 100);
}

/* ---- dynacast ------------------------------------------------------------- */

/* The rids of the last subscribed_layers `pub` got (from message `from`
 * on) as "q,h,f", "" if none; *at_us when, *active its flag. */
static const char *told_rids(sim_peer_t *pub, int from, uint64_t *at_us, int *active) {
  static char buf[32];
  json_t *m = sim_msg_to(pub->sim, pub->session, "subscribed_layers", from, at_us);
  buf[0] = '\0';
  if (!m) return NULL;
  *active = json_is_true(json_object_get(m, "active"));
  size_t i;
  json_t *r;
  json_array_foreach(json_object_get(m, "rids"), i, r) {
    if (buf[0]) strcat(buf, ",");
    strcat(buf, json_string_value(r));
  }
  return buf;
}

/* A layer nobody takes is stopped 3 s after its last taker went (the
 * lowest stays while anyone watches); asked for again, it is back at the
 * next media tick. Nobody watching at all stops the whole video. */
static void dynacast_tells_the_publisher_which_layers_are_taken(void **state) {
  sim_t *s = sim_new(43, 0);
  *state = s;
  sim_peer_t *a = publisher(s, "alice", 1, 3);
  sim_peer_t *b = listener(s, "bob");
  int from = s->nmsgs, active = 0;
  uint64_t at = 0;
  sim_run(s, 2500);
  assert_string_equal(told_rids(a, from, &at, &active), "q,h,f"); /* at first: all */
  assert_int_equal(sim_count_to(s, a->session, "subscribed_layers", from), 1);
  sim_run(s, 1500);
  assert_string_equal(told_rids(a, from, &at, &active), "q,f"); /* bob takes the top */
  assert_true(active);

  from = s->nmsgs;
  sim_sub_t *u = sim_sub_of(b, a, 1);
  uint64_t t0 = sim_us(s);
  video_quality(b, u, "low");
  sim_run(s, 4000);
  assert_string_equal(told_rids(a, from, &at, &active), "q");
  assert_true(at - t0 >= 3000 * MS && at - t0 <= 3200 * MS);
  assert_int_equal(sim_count_to(s, a->session, "subscribed_layers", from), 1);

  from = s->nmsgs;
  t0 = sim_us(s);
  video_quality(b, u, "high");
  sim_run(s, 300);
  assert_string_equal(told_rids(a, from, &at, &active), "q,f");
  assert_true(at - t0 <= 100 * MS);

  from = s->nmsgs;
  sim_client_msg(b, json_pack("{s:s, s:i, s:s, s:s, s:b}", "type", "video_quality", "id", 78,
                              "track_id", u->track_id, "quality", "high", "paused", 1));
  sim_run(s, 4000);
  assert_string_equal(told_rids(a, from, &at, &active), "");
  assert_false(active);
  assert_true(s->room.c.dynacast_msgs >= 3);
}

/* A publisher that never sends its top layer (Chrome's top rid for a
 * small capture): a subscriber asking high gets the middle one, and the
 * publisher is not told to stop it. */
static void dynacast_keeps_the_layer_taken_while_the_wished_one_is_never_sent(void **state) {
  sim_t *s = sim_new(44, 0);
  *state = s;
  sim_peer_t *a = publisher(s, "alice", 1, 3);
  a->layers[2].paused = 1;
  sim_peer_t *b = listener(s, "bob");
  int from = s->nmsgs, active = 0;
  uint64_t at = 0;
  sim_run(s, 6000);
  sim_sub_t *u = sim_sub_of(b, a, 1);
  assert_string_equal(told_rids(a, from, &at, &active), "q,h,f");
  assert_int_equal(sim_count_to(s, a->session, "subscribed_layers", from), 1);
  assert_int_equal(current_layer(u), 1);
}

/* A step down onto a layer its publisher was told to stop does not wait
 * for that layer: it is not live however lately a packet of it came, so
 * the subscriber gets the lowest at once (and the stopped one once it is
 * sent again). Bob on the top layer, the middle one stopped (nobody
 * takes it; alice stops sending it), then a REMB that carries only the
 * middle one: the lowest arrives within 300 ms, not after the second a
 * layer counts as live without packets. */
static void a_step_down_onto_a_stopped_layer_takes_the_lowest_at_once(void **state) {
  sim_t *s = sim_new(45, 0);
  *state = s;
  sim_peer_t *a = publisher(s, "alice", 1, 3);
  sim_peer_t *b = sim_peer_new(s, "bob");
  b->remb_bps = 5000000;
  sim_enter(b);
  int from = s->nmsgs, active = 0;
  uint64_t at = 0;
  sim_sub_t *u = sim_sub_of(b, a, 1);
  for (const char *r; !(r = told_rids(a, from, &at, &active)) || strcmp(r, "q,f") != 0;) {
    assert_true(sim_us(s) < SIM_MONO0_US + 10000 * MS);
    sim_run(s, 20);
  }
  a->layers[1].paused = 1; /* as told */
  assert_int_equal(current_layer(u), 2);
  sim_run(s, 200); /* its last packet came 200 ms ago */
  uint64_t t_fall = sim_us(s);
  b->remb_bps = 300000; /* the middle layer is 240 kb/s */
  uint64_t t_low = wait_layer(s, u, 0, 1000);
  assert_true(t_low - t_fall <= 300 * MS);
  assert_string_equal(told_rids(a, from, &at, &active), "q,h,f"); /* h wanted again */
  a->layers[1].paused = 0;
  wait_layer(s, u, 1, 1000);
}

/* ---- transport-cc (docs/internals/bwe.md) ---------------------------------- */

static uint64_t received_since(const sim_sub_t *u, uint64_t from_us) {
  uint64_t n = 0;
  for (int i = 0; i < u->nrx; i++) n += !u->rx[i].rtx && u->rx[i].at_us >= from_us;
  return n;
}

/* A publisher whose video packets carry the transport-wide number gets
 * feedback about every one of them, about every 40 ms. */
static void transport_feedback_goes_to_publishers(void **state) {
  sim_t *s = sim_new(31, 0);
  *state = s;
  sim_peer_t *a = sim_peer_new(s, "alice");
  sim_peer_video(a, 3);
  a->twcc_pub = 1;
  sim_enter(a);
  listener(s, "bob");
  uint64_t t0 = sim_us(s);
  sim_run(s, 3000);
  int fbs = 0, received = 0;
  for (int i = 0; i < a->nfb; i++)
    if (a->fb[i].kind == SIM_FB_TWCC && a->fb[i].at_us >= t0) {
      fbs++;
      received += a->fb[i].twcc_received;
    }
  /* every packet sent by 50 ms ago (the last feedback's), each once */
  printf("# %d feedbacks, %d of %u packets reported received\n", fbs, received,
         (unsigned)a->twcc_seq);
  assert_true(fbs >= 3000 / 60 && fbs <= 3000 / 40 + 2);
  assert_true(received <= a->twcc_seq && received >= (int)a->twcc_seq - 40);
  assert_int_equal(s->room.c.twcc_out, (uint64_t)fbs);
}

/* A subscriber answering transport-cc: under a 400 kb/s downlink its
 * estimate takes it off the 600 kb/s top layer within 5 s, never to the
 * lowest; with the cap lifted, probes find the room and it is back on top
 * within 15 s. */
static void estimate_follows_a_capped_downlink_and_probes_back_up(void **state) {
  sim_t *s = sim_new(37, 0);
  *state = s;
  sim_peer_t *a = publisher(s, "alice", 1, 3);
  sim_run(s, 500);
  sim_peer_t *b = sim_peer_new(s, "bob");
  b->twcc = 1;
  b->down.queue_ms = 200;
  b->down.delay_ms = 20;
  sim_enter(b);
  sim_run(s, 4000);
  sim_sub_t *u = sim_sub_of(b, a, 1);
  assert_int_equal(current_layer(u), 2);
  assert_non_null(sim_part(b)->cc);

  uint64_t t_cap = sim_us(s);
  b->down.rate_bps = 400000;
  uint64_t down_at = 0;
  for (int i = 0; i < 100 && !down_at; i++) {
    sim_run(s, 100);
    if (current_layer(u) < 2) down_at = sim_us(s);
  }
  assert_true(down_at);
  sim_run(s, 10000);
  const sfu_bwe_t *bwe = &sim_part(b)->cc->bwe;
  printf("# capped: off the top after %llu ms, on layer %d, estimate %u, %llu delay and %llu"
         " loss cuts\n", (unsigned long long)(down_at - t_cap) / 1000, current_layer(u),
         sfu_bwe_estimate(bwe), (unsigned long long)bwe->delay_cuts,
         (unsigned long long)bwe->loss_cuts);
  assert_true(down_at - t_cap <= 5000 * MS);
  assert_int_equal(current_layer(u), 1);
  assert_true(bwe->delay_cuts + bwe->loss_cuts >= 1);

  uint64_t t_lift = sim_us(s), up_at = 0;
  uint64_t probes = s->room.c.probes, padding = u->padding;
  b->down.rate_bps = 0;
  for (int i = 0; i < 150 && !up_at; i++) {
    sim_run(s, 100);
    if (current_layer(u) == 2) up_at = sim_us(s);
  }
  printf("# lifted: on top after %llu ms, %llu probes, %llu padding packets received\n",
         (unsigned long long)(up_at - t_lift) / 1000,
         (unsigned long long)(s->room.c.probes - probes),
         (unsigned long long)(u->padding - padding));
  assert_true(up_at && up_at - t_lift <= 15000 * MS);
  assert_true(s->room.c.probes > probes);
  assert_true(u->padding > padding);
}


/* Two single-layer videos (600 kb/s each) to a subscriber whose downlink
 * carries one: the speaker's is kept and the other paused; when the other
 * one speaks instead, they swap. Audio of both flows throughout. */
static void estimate_is_shared_by_priority_and_never_pauses_audio(void **state) {
  sim_t *s = sim_new(41, 0);
  *state = s;
  sim_peer_t *a = publisher(s, "alice", 1, 1), *c = publisher(s, "carol", 1, 1);
  a->level = 20; /* alice speaks */
  sim_run(s, 1000);
  sim_peer_t *b = twcc_listener(s, "bob", 1000000);
  sim_run(s, 8000);
  sim_sub_t *va = sim_sub_of(b, a, 1), *vc = sim_sub_of(b, c, 1);
  sim_sub_t *aa = sim_sub_of(b, a, 0), *ac = sim_sub_of(b, c, 0);
  uint64_t t = sim_us(s);
  sim_run(s, 3000);
  printf("# alice speaking: video alice %llu, carol %llu packets in 3 s; estimate %u\n",
         (unsigned long long)received_since(va, t), (unsigned long long)received_since(vc, t),
         sfu_bwe_estimate(&sim_part(b)->cc->bwe));
  assert_true(received_since(va, t) > 150);
  assert_int_equal(received_since(vc, t), 0);
  assert_true(s->room.c.bw_pauses >= 1);
  assert_true(received_since(aa, t) >= 140 && received_since(ac, t) >= 140);

  a->level = 127;
  c->level = 20;
  sim_run(s, 5000);
  t = sim_us(s);
  sim_run(s, 3000);
  printf("# carol speaking: video alice %llu, carol %llu packets in 3 s\n",
         (unsigned long long)received_since(va, t), (unsigned long long)received_since(vc, t));
  assert_true(received_since(vc, t) > 150);
  assert_int_equal(received_since(va, t), 0);
  assert_true(received_since(aa, t) >= 140 && received_since(ac, t) >= 140);
}

/* ---- liveness ------------------------------------------------------------------------------ */

static void silent_transport_is_removed_after_15s(void **state) {
  sim_t *s = sim_new(18, 0);
  *state = s;
  sim_peer_t *a = publisher(s, "alice", 1, 0);
  sim_peer_t *b = listener(s, "bob");
  sim_run(s, 1000);
  b->last_rx_us = sim_us(s); /* nothing from bob's transport from now on */
  int from = s->nmsgs;
  sim_run(s, 14800);
  assert_false(b->gone);
  sim_run(s, 1300);
  assert_true(b->gone);
  assert_null(sim_part(b));
  int closes = 0;
  for (int i = from; i < s->nmsgs; i++) {
    json_t *m = s->msgs[i].m;
    if (strcmp(str(m, "type"), "client_close") != 0) continue;
    assert_int_equal(json_integer_value(json_object_get(m, "session")), b->session);
    assert_int_equal(json_integer_value(json_object_get(m, "code")), 4013);
    closes++;
  }
  assert_int_equal(closes, 1);
  json_t *left = sim_msg_to(s, a->session, "participant_left", from, NULL);
  assert_non_null(left);
  assert_string_equal(str(left, "reason"), "timeout");
  assert_false(a->gone);
}

/* The world goes away whether the test passed or not. */

/* ---- screen share: a second video per participant ----------------------------- */

/* Packets on a subscription by the tag's layer (SIM_SCREEN: the screen
 * share) received in [from_us, to_us). */
static int tags_of_layer(const sim_sub_t *u, int layer, uint64_t from_us, uint64_t to_us) {
  int n = 0;
  for (int i = 0; i < u->nrx; i++)
    n += !u->rx[i].rtx && sim_tag_layer(u->rx[i].tag) == layer && u->rx[i].at_us >= from_us &&
         u->rx[i].at_us < to_us;
  return n;
}

/* The participant object of `sid` in a list of them. */
static json_t *participant_in(json_t *list, const char *sid) {
  size_t i;
  json_t *e;
  json_array_foreach(list, i, e) if (strcmp(str(e, "sid"), sid) == 0) return e;
  return NULL;
}

/* The track `id` of a participant object, or NULL. */
static json_t *track_in(json_t *participant, const char *id) {
  size_t i;
  json_t *t;
  json_array_foreach(json_object_get(participant, "tracks"), i, t) {
    if (strcmp(str(t, "track_id"), id) == 0) return t;
  }
  return NULL;
}

/* Alice shares her screen next to a simulcast camera. */
static sim_peer_t *camera_and_screen(sim_t *s, const char *id) {
  sim_peer_t *a = sim_peer_new(s, id);
  sim_peer_audio(a);
  sim_peer_video(a, 3);
  sim_peer_screen(a);
  a->key_delay = 2;
  sim_enter(a);
  return a;
}

/* A participant publishing a camera and a screen share (each its own
 * track, the screen's m-line marked in the offer's "sources") reaches a
 * subscriber as two video m-lines with distinct track ids, listed with
 * their sources; each carries its own packets only. */
static void camera_and_screen_reach_a_subscriber_as_two_video_mlines(void **state) {
  sim_t *s = sim_new(51, 0);
  *state = s;
  int from = s->nmsgs;
  sim_peer_t *a = camera_and_screen(s, "alice");
  sfu_participant_t *pa = sim_part(a);
  assert_non_null(pa->video);
  assert_non_null(pa->screen);
  assert_int_equal(pa->video->source, SFU_SOURCE_CAMERA);
  assert_int_equal(pa->screen->source, SFU_SOURCE_SCREEN);
  assert_string_not_equal(pa->video->id, pa->screen->id);
  assert_int_equal(events_emitted(s, "track_published", from), 3);
  sim_run(s, 500);
  sim_peer_t *b = listener(s, "bob");
  sim_run(s, 1000);

  json_t *w = sim_msg_to(s, b->session, "welcome", 0, NULL);
  json_t *alice = participant_in(json_object_get(w, "participants"), pa->sid);
  assert_non_null(alice);
  assert_int_equal(json_array_size(json_object_get(alice, "tracks")), 3);
  assert_string_equal(str(track_in(alice, pa->video->id), "source"), "camera");
  assert_string_equal(str(track_in(alice, pa->screen->id), "source"), "screen");
  assert_string_equal(str(track_in(alice, pa->screen->id), "kind"), "video");

  sim_sub_t *cam = sim_sub_by_track(b, pa->video->id), *scr = sim_sub_by_track(b, pa->screen->id);
  assert_non_null(cam);
  assert_non_null(scr);
  assert_true(cam->active && cam->video && scr->active && scr->video);
  assert_true(cam->ssrc != scr->ssrc && strcmp(cam->mid, scr->mid) != 0);
  uint64_t t0 = SIM_MONO0_US, t1 = sim_us(s);
  assert_true(tags_of_layer(scr, SIM_SCREEN, t0, t1) > 20);
  assert_int_equal(tags_of_layer(cam, SIM_SCREEN, t0, t1), 0);
  assert_true(tags_of_layer(cam, 2, t0, t1) > 20);
  assert_int_equal(tags_of_layer(scr, 2, t0, t1), 0);
  /* the new subscriber's keyframe request reached the screen too */
  int key = 0;
  for (int i = 0; i < scr->nrx && !key; i++) key = scr->rx[i].key == 1 && scr->rx[i].width == 1920;
  assert_true(key);
  assert_true(sim_fb_count(a, SIM_FB_PLI, a->screen_layer.ssrc, 0, UINT64_MAX) >= 1);
  assert_true(sim_fb_count(a, SIM_FB_RR, 0, 0, UINT64_MAX) > 0);
  assert_int_equal(s->room.c.drop_unknown_ssrc, 0);
}

/* A camera and a screen share (single layers, 600 kb/s each) from one
 * speaking participant to a subscriber whose downlink carries one of them:
 * the screen share is kept and the camera paused; audio flows. */
static void a_tight_budget_keeps_the_screen_share_and_pauses_the_camera(void **state) {
  sim_t *s = sim_new(53, 0);
  *state = s;
  sim_peer_t *a = sim_peer_new(s, "alice");
  sim_peer_audio(a);
  sim_peer_video(a, 1);
  sim_peer_screen(a);
  a->level = 20;
  sim_enter(a);
  sim_run(s, 1000);
  sim_peer_t *b = twcc_listener(s, "bob", 1000000);
  sim_run(s, 8000);
  sfu_participant_t *pa = sim_part(a);
  sim_sub_t *cam = sim_sub_by_track(b, pa->video->id), *scr = sim_sub_by_track(b, pa->screen->id);
  sim_sub_t *mic = sim_sub_of(b, a, 0);
  uint64_t t = sim_us(s);
  sim_run(s, 3000);
  assert_true(sim_part(a)->speaking);
  printf("# camera %d, screen %d, audio %d packets in 3 s\n", (int)received_since(cam, t),
         (int)received_since(scr, t), (int)received_since(mic, t));
  assert_true(received_since(scr, t) > 150);
  assert_int_equal(received_since(cam, t), 0);
  assert_true(received_since(mic, t) >= 140);
  assert_true(s->room.c.bw_pauses >= 1);
}

/* The publisher does what the subscribed_layers messages about its single
 * layer camera and its screen share say, from message *from on, as a
 * browser does: a video nobody takes stops being sent until asked for. */
static void follow_dynacast(sim_peer_t *pub, int *from) {
  sfu_participant_t *p = sim_part(pub);
  for (; *from < pub->sim->nmsgs; (*from)++) {
    json_t *m = sim_msg_at(pub->sim, *from, pub->session);
    if (!m || strcmp(str(m, "type"), "subscribed_layers") != 0) continue;
    int off = !json_is_true(json_object_get(m, "active"));
    if (p->screen && strcmp(str(m, "mid"), p->screen->mid) == 0) pub->screen_layer.paused = off;
    if (p->video && strcmp(str(m, "mid"), p->video->mid) == 0) pub->layers[0].paused = off;
  }
}

/* The same budget from a downlink capped mid-call, the publisher stopping
 * what nobody takes: the camera paused is stopped at the source, and once
 * the cap is lifted it is asked for and reaches the subscriber again
 * (judged on what it cost before it stopped). */
static void a_camera_paused_for_the_screen_share_comes_back_when_the_cap_lifts(void **state) {
  sim_t *s = sim_new(54, 0);
  *state = s;
  sim_peer_t *a = sim_peer_new(s, "alice");
  sim_peer_audio(a);
  sim_peer_video(a, 1);
  sim_peer_screen(a);
  sim_enter(a);
  sim_run(s, 1000);
  sim_peer_t *b = twcc_listener(s, "bob", 0);
  int from = 0;
  for (int i = 0; i < 30; i++, sim_run(s, 100)) follow_dynacast(a, &from);
  sfu_participant_t *pa = sim_part(a);
  sim_sub_t *cam = sim_sub_by_track(b, pa->video->id), *scr = sim_sub_by_track(b, pa->screen->id);
  assert_true(received_since(cam, sim_us(s) - 1000 * MS) > 50);

  b->down.rate_bps = 1000000;
  uint64_t pauses = s->room.c.bw_pauses;
  for (int i = 0; i < 80; i++, sim_run(s, 100)) follow_dynacast(a, &from);
  uint64_t t = sim_us(s);
  for (int i = 0; i < 30; i++, sim_run(s, 100)) follow_dynacast(a, &from);
  printf("# capped: camera %d, screen %d packets in 3 s; camera stopped at the source: %d\n",
         (int)received_since(cam, t), (int)received_since(scr, t), a->layers[0].paused);
  assert_true(s->room.c.bw_pauses > pauses);
  assert_int_equal(received_since(cam, t), 0);
  assert_true(received_since(scr, t) > 150);
  assert_true(a->layers[0].paused);
  assert_false(a->screen_layer.paused);

  b->down.rate_bps = 0;
  t = sim_us(s);
  uint64_t back = 0;
  for (int i = 0; i < 150 && !back; i++, sim_run(s, 100)) {
    follow_dynacast(a, &from);
    if (received_since(cam, t) > 0) back = sim_us(s);
  }
  printf("# lifted: camera back after %lld ms\n", back ? (long long)(back - t) / 1000 : -1LL);
  assert_true(back && back - t <= 10000 * MS);
  assert_false(a->layers[0].paused);
}

/* Longest time (us) between two primaries of u in [from_us, to_us), the
 * bounds counting as arrivals. */
static uint64_t longest_gap(const sim_sub_t *u, uint64_t from_us, uint64_t to_us) {
  uint64_t last = from_us, gap = 0;
  for (int i = 0; i < u->nrx; i++) {
    const sim_rx_t *r = &u->rx[i];
    if (r->rtx || r->at_us < from_us || r->at_us >= to_us) continue;
    if (r->at_us - last > gap) gap = r->at_us - last;
    last = r->at_us;
  }
  return to_us - last > gap ? to_us - last : gap;
}

/* A camera costing more than the whole capped downlink next to a screen
 * share it carries: the camera is paused at once (its packets would drown
 * the screen's), and the screen share goes on without a gap. */
static void a_camera_costing_more_than_the_estimate_is_paused_at_once(void **state) {
  sim_t *s = sim_new(55, 0);
  *state = s;
  sim_peer_t *a = sim_peer_new(s, "alice");
  sim_peer_video(a, 1);
  sim_peer_screen(a);
  a->layers[0].pkts *= 3; /* 1.8 Mb/s */
  sim_enter(a);
  sim_run(s, 1000);
  sim_peer_t *b = twcc_listener(s, "bob", 0);
  sim_run(s, 6000);
  sfu_participant_t *pa = sim_part(a);
  sim_sub_t *cam = sim_sub_by_track(b, pa->video->id), *scr = sim_sub_by_track(b, pa->screen->id);
  printf("# uncapped: camera %d, screen %d packets in 1 s\n",
         (int)received_since(cam, sim_us(s) - 1000 * MS),
         (int)received_since(scr, sim_us(s) - 1000 * MS));
  assert_true(received_since(cam, sim_us(s) - 1000 * MS) > 150);

  b->down.rate_bps = 1000000;
  uint64_t t = sim_us(s);
  sim_run(s, 6000);
  uint64_t gap = longest_gap(scr, t, sim_us(s)), cam_last = 0;
  for (int i = 0; i < cam->nrx; i++)
    if (!cam->rx[i].rtx) cam_last = cam->rx[i].at_us;
  printf("# capped: camera's last packet %llu ms after, screen's longest gap %llu ms\n",
         (unsigned long long)(cam_last - t) / 1000, (unsigned long long)gap / 1000);
  assert_true(s->room.c.bw_pauses >= 1);
  assert_true(cam_last - t < 1500 * MS);
  assert_true(gap <= 500 * MS);
}

/* video_quality names one track: lowering the camera leaves the screen
 * share as it is, and pausing the screen leaves the camera going. */
static void video_quality_applies_to_the_track_it_names(void **state) {
  sim_t *s = sim_new(52, 0);
  *state = s;
  sim_peer_t *a = camera_and_screen(s, "alice");
  sim_run(s, 500);
  sim_peer_t *b = listener(s, "bob");
  sim_run(s, 1000);
  sfu_participant_t *pa = sim_part(a);
  sim_sub_t *cam = sim_sub_by_track(b, pa->video->id), *scr = sim_sub_by_track(b, pa->screen->id);
  assert_int_equal(current_layer(cam), 2);
  video_quality(b, cam, "low");
  sim_run(s, 1000);
  assert_int_equal(current_layer(cam), 0);
  uint64_t t = sim_us(s);
  sim_run(s, 500);
  assert_true(tags_of_layer(scr, SIM_SCREEN, t, sim_us(s)) >= 10); /* untouched */

  int from = s->nmsgs;
  sim_client_msg(b, json_pack("{s:s, s:i, s:s, s:b}", "type", "video_quality", "id", 78,
                              "track_id", pa->screen->id, "paused", 1));
  assert_non_null(sim_msg_to(s, b->session, "ack", from, NULL));
  sim_run(s, 100);
  t = sim_us(s);
  sim_run(s, 1000);
  assert_int_equal(tags_of_layer(scr, SIM_SCREEN, t, sim_us(s)), 0);
  assert_true(tags_of_layer(cam, 0, t, sim_us(s)) >= 20);
  for (int i = 0; i < pa->video->down.n; i++) assert_false(pa->video->down.items[i]->paused);
}

/* A re-offer with the screen's m-line inactive unpublishes the screen
 * share only: the others get participant_updated without it and its
 * m-line inactive; the camera goes on. */
static void stopping_the_screen_share_removes_only_it(void **state) {
  sim_t *s = sim_new(53, 0);
  *state = s;
  sim_peer_t *a = camera_and_screen(s, "alice");
  sim_run(s, 500);
  sim_peer_t *b = listener(s, "bob");
  sim_run(s, 1000);
  sfu_participant_t *pa = sim_part(a);
  char screen_id[24], camera_id[24];
  snprintf(screen_id, sizeof(screen_id), "%s", pa->screen->id);
  snprintf(camera_id, sizeof(camera_id), "%s", pa->video->id);
  sim_sub_t *cam = sim_sub_by_track(b, camera_id), *scr = sim_sub_by_track(b, screen_id);

  int from = s->nmsgs;
  sim_stop_screen(a, 40);
  json_t *ans = sim_msg_to(s, a->session, "answer", from, NULL);
  assert_non_null(ans);
  assert_null(sim_msg_to(s, a->session, "error", from, NULL));
  sim_run(s, 1000);
  assert_null(pa->screen);
  assert_non_null(pa->video);
  assert_string_equal(pa->video->id, camera_id);
  assert_int_equal(events_emitted(s, "track_unpublished", from), 1);
  json_t *up = sim_msg_to(s, b->session, "participant_updated", from, NULL);
  assert_non_null(up);
  json_t *alice = json_object_get(up, "participant");
  assert_null(track_in(alice, screen_id));
  assert_non_null(track_in(alice, camera_id));
  assert_false(scr->active);
  assert_true(cam->active);
  uint64_t t = sim_us(s);
  sim_run(s, 500);
  assert_true(tags_of_layer(cam, 2, t, sim_us(s)) >= 10);
  assert_int_equal(tags_of_layer(scr, SIM_SCREEN, t, sim_us(s)), 0);
  assert_int_equal(sim_count_to(s, b->session, "error", 0), 0);
}

/* "sources" must name video m-lines of the offer, and a published track
 * keeps its source: otherwise bad_message, and nothing is published. */
static void offer_sources_are_checked(void **state) {
  sim_t *s = sim_new(54, 0);
  *state = s;
  sim_peer_t *a = sim_peer_new(s, "alice");
  sim_peer_audio(a);
  sim_peer_video(a, 1);
  sim_enter(a); /* audio on mid 0, camera on mid 1 */
  assert_non_null(sim_part(a)->video);
  const char *bad[][2] = {{"0", "screen"}, {"7", "screen"}, {"1", "screen"}};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    int from = s->nmsgs;
    sim_reoffer_with(a, 90, json_pack("{s:{s:s}}", "sources", bad[i][0], bad[i][1]));
    json_t *err = sim_msg_to(s, a->session, "error", from, NULL);
    assert_non_null(err);
    assert_string_equal(str(err, "code"), "bad_message");
    assert_null(sim_msg_to(s, a->session, "answer", from, NULL));
    assert_null(sim_part(a)->screen);
    assert_int_equal(sim_part(a)->video->source, SFU_SOURCE_CAMERA);
  }
  int from = s->nmsgs; /* the camera named as what it is: fine */
  sim_reoffer_with(a, 92, json_pack("{s:{s:s}}", "sources", "1", "camera"));
  assert_non_null(sim_msg_to(s, a->session, "answer", from, NULL));
  assert_null(sim_msg_to(s, a->session, "error", from, NULL));
  assert_int_equal(events_emitted(s, "track_unpublished", 0), 0);
}

/* ---- moving a call to another node's room (migration.c) ---------------------- */


/* The last usage record of `identity` emitted since `from`. */
static json_t *usage_since(const sim_t *s, const char *identity, int from) {
  json_t *found = NULL;
  for (int i = from; i < s->nmsgs; i++) {
    json_t *m = s->msgs[i].m, *r;
    size_t k;
    if (strcmp(json_string_value(json_object_get(m, "type")) ?: "", "usage") != 0) continue;
    json_array_foreach(json_object_get(m, "records"), k, r)
      if (strcmp(json_string_value(json_object_get(r, "identity")), identity) == 0) found = r;
  }
  return found;
}

static void moved_call_keeps_people_tracks_and_choices_and_counts_usage_once(void **state) {
  sim_t *s1 = sim_new(41, 0), *s2 = sim_new(42, 0);
  *state = s1;
  sim_peer_t *a = sim_peer_new(s1, "alice"), *b = sim_peer_new(s1, "bob");
  sim_peer_audio(a);
  sim_peer_audio(b);
  sim_peer_video(b, 2);
  sim_enter(a);
  sim_enter(b);
  sim_server_mute(s1, "carol", 1); /* absent, remembered */
  sim_run(s1, 1000);
  video_quality(a, sim_sub_of(a, b, 1), "low");
  char audio_id[24], video_id[24];
  snprintf(audio_id, sizeof(audio_id), "%s", sim_part(b)->audio->id);
  snprintf(video_id, sizeof(video_id), "%s", sim_part(b)->video->id);
  int low = sim_part(a)->down.items[1]->max_layer;
  assert_int_equal(low, 0);

  /* The new room takes the state, its sessions renumbered. */
  json_t *st = sfu_room_export(&s1->room), *e;
  size_t i;
  sim_peer_t *a2 = sim_peer_new(s2, "alice"), *b2 = sim_peer_new(s2, "bob");
  sim_peer_audio(a2);
  sim_peer_audio(b2);
  sim_peer_video(b2, 2);
  a2->session += 50; /* not the old node's numbers */
  b2->session += 50;
  json_array_foreach(json_object_get(st, "participants"), i, e) {
    const char *id = json_string_value(json_object_get(e, "identity"));
    json_object_set_new(e, "session", json_integer(strcmp(id, "alice") == 0 ? a2->session : b2->session));
  }
  int from2 = s2->nmsgs;
  json_t *in = json_pack("{s:s, s:o}", "type", "migrate_in", "state", st);
  assert_int_equal(sfu_room_on_control(&s2->room, "migrate_in", in, s2->now), 0);
  json_decref(in);
  assert_int_equal(s2->room.participants_n, 2);
  assert_true(sim_part(a2) && sim_part(b2));
  assert_string_equal(sim_part(b2)->sid, sim_part(b)->sid);
  /* (what `resumed` tells each client) */
  snprintf(a2->sid, sizeof(a2->sid), "%s", sim_part(a2)->sid);
  snprintf(b2->sid, sizeof(b2->sid), "%s", sim_part(b2)->sid);

  /* The clients come over: same track ids, the old choices, no events. */
  sim_offer(b2);
  sim_connect(b2);
  b2->next_fb_us = s2->now.mono_us;
  b2->key_delay = 15; /* a keyframe 600 ms after a request */
  sim_media(b2, 1);
  sim_run(s2, 300);
  assert_int_equal(emitted(s2, "migration_ready", from2), 0); /* not before both are in */
  sim_offer(a2);
  sim_connect(a2);
  a2->next_fb_us = s2->now.mono_us;
  sim_media(a2, 1);
  sim_run(s2, 1500);
  assert_int_equal(emitted(s2, "migration_ready", from2), 1);
  assert_int_equal(emitted(s2, "event", from2), 0);
  assert_string_equal(sim_part(b2)->audio->id, audio_id);
  assert_string_equal(sim_part(b2)->video->id, video_id);
  assert_true(sim_part(a2)->server_muted == 0);
  assert_int_equal(s2->room.server_muted.n, 1);
  sim_sub_t *v = sim_sub_of(a2, b2, 1);
  assert_non_null(v);
  assert_string_equal(v->track_id, video_id);
  for (int k = 0; k < sim_part(a2)->down.n; k++)
    if (sim_part(a2)->down.items[k]->kind == SFU_KIND_VIDEO)
      assert_int_equal(sim_part(a2)->down.items[k]->max_layer, low);
  assert_true(sim_sub_of(a2, b2, 0)->nrx > 0); /* bob heard on the new node */
  /* ready only once alice's new connection has bob's video from a keyframe */
  uint64_t ready_us = 0, key_us = 0;
  for (int k = from2; k < s2->nmsgs; k++)
    if (strcmp(str(s2->msgs[k].m, "type"), "migration_ready") == 0) ready_us = s2->msgs[k].at_us;
  for (int k = 0; k < v->nrx && !key_us; k++)
    if (v->rx[k].key == 1) key_us = v->rx[k].at_us;
  assert_true(key_us > 0 && ready_us >= key_us);
  assert_null(usage_since(s2, "alice", from2)); /* the old node counts until the commit */

  /* The commit: usage stops at the cut there and starts at it here. */
  int64_t cut1 = s1->now.wall_us / 1000, cut2 = s2->now.wall_us / 1000;
  int from1 = s1->nmsgs;
  json_t *out = json_pack("{s:s, s:I}", "type", "migrate_out", "cut_wall_ms", (json_int_t)cut1);
  assert_int_equal(sfu_room_on_control(&s1->room, "migrate_out", out, s1->now), 0);
  json_decref(out);
  json_t *old = usage_since(s1, "alice", from1);
  assert_non_null(old);
  assert_int_equal(json_integer_value(json_object_get(old, "period_end_ms")), cut1);
  assert_false(json_is_true(json_object_get(old, "final")));
  sim_run(s1, 500); /* silent from now on: nothing leaves, nothing is counted */
  sfu_room_end(&s1->room, s1->now);
  assert_int_equal(s1->nmsgs, from1 + 1);

  json_t *c = json_pack("{s:s, s:I}", "type", "migrate_commit", "cut_wall_ms", (json_int_t)cut2);
  assert_int_equal(sfu_room_on_control(&s2->room, "migrate_commit", c, s2->now), 0);
  json_decref(c);
  sim_run(s2, 2000);
  int from_leave = s2->nmsgs;
  sim_leave(a2);
  json_t *fin = usage_since(s2, "alice", from_leave);
  assert_non_null(fin);
  assert_true(json_is_true(json_object_get(fin, "final")));
  assert_int_equal(json_integer_value(json_object_get(fin, "period_start_ms")), cut2);
  json_int_t ms = json_integer_value(json_object_get(json_object_get(fin, "ms"), "connected"));
  assert_true(ms >= 1900 && ms <= 2100);
  assert_int_equal(events_emitted(s2, "participant_left", from_leave), 1);
  sim_free(s2);
}

/* A screen share moves with its call: exported as "screen", published
 * again under its id, without an event, when the client's offer on the
 * new node marks its m-line so. */
static void moved_screen_share_keeps_its_track_id(void **state) {
  sim_t *s1 = sim_new(55, 0), *s2 = sim_new(56, 0);
  *state = s1;
  sim_peer_t *a = camera_and_screen(s1, "alice");
  sim_run(s1, 300);
  char screen_id[24];
  snprintf(screen_id, sizeof(screen_id), "%s", sim_part(a)->screen->id);
  json_t *st = sfu_room_export(&s1->room);
  json_t *e = json_array_get(json_object_get(st, "participants"), 0);
  assert_string_equal(str(e, "screen"), screen_id);
  assert_string_equal(str(e, "video"), sim_part(a)->video->id);

  sim_peer_t *a2 = sim_peer_new(s2, "alice");
  sim_peer_audio(a2);
  sim_peer_video(a2, 3);
  sim_peer_screen(a2);
  a2->session += 50;
  json_object_set_new(e, "session", json_integer(a2->session));
  int from2 = s2->nmsgs;
  json_t *in = json_pack("{s:s, s:o}", "type", "migrate_in", "state", st);
  assert_int_equal(sfu_room_on_control(&s2->room, "migrate_in", in, s2->now), 0);
  json_decref(in);
  sim_offer(a2);
  sim_connect(a2);
  sfu_participant_t *p2 = sim_part(a2);
  assert_non_null(p2->screen);
  assert_string_equal(p2->screen->id, screen_id);
  assert_int_equal(p2->screen->source, SFU_SOURCE_SCREEN);
  assert_int_equal(events_emitted(s2, "track_published", from2), 0);
  sim_free(s2);
}

static void malformed_import_takes_nothing(void **state) {
  sim_t *s = sim_new(43, 0);
  *state = s;
  const char *bad[] = {
      "{\"participants\": 1}",
      "{\"participants\": [{\"session\": 0, \"sid\": \"PA_1\", \"identity\": \"a\"}]}",
      "{\"participants\": [{\"session\": 5, \"identity\": \"a\"}]}",
      "{\"participants\": [{\"session\": 5, \"sid\": \"PA_1\", \"identity\": \"a b\"}]}",
      "{\"participants\": [{\"session\": 5, \"sid\": \"PA_1\", \"identity\": \"a\"}, 7]}",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    json_t *st = json_loads(bad[i], 0, NULL);
    assert_non_null(st);
    assert_int_equal(sfu_room_import(&s->room, st), SFU_EINVAL);
    assert_int_equal(s->room.participants_n, 0);
    json_decref(st);
  }
}

/* ---- 11. redundant audio (RFC 2198) ------------------------------------------------- */

/* A publisher offering RED over Opus, as Chrome does, entered. */
static sim_peer_t *red_publisher(sim_t *s, const char *id) {
  sim_peer_t *pe = sim_peer_new(s, id);
  sim_peer_audio(pe);
  pe->red = 1;
  sim_enter(pe);
  return pe;
}

static sim_peer_t *listener_no_red(sim_t *s, const char *id) {
  sim_peer_t *pe = sim_peer_new(s, id);
  pe->no_red_answer = 1;
  sim_enter(pe);
  return pe;
}

/* Its tags arrive once each, in order, from the publisher's first on. */
static void assert_tags_in_order(const sim_sub_t *u) {
  for (int i = 1; i < u->nrx; i++)
    assert_int_equal(u->rx[i].tag & 0x3fffff, (u->rx[i - 1].tag & 0x3fffff) + 1);
}

static void red_publisher_answer_lists_red_first(void **state) {
  sim_t *s = sim_new(60, 0);
  *state = s;
  sim_peer_t *a = red_publisher(s, "alice");
  json_t *ans = sim_msg_to(s, a->session, "answer", 0, NULL);
  assert_non_null(ans);
  const char *sdp = str(ans, "sdp");
  /* a browser sends RED only when the answer lists it before Opus */
  assert_non_null(strstr(sdp, "m=audio 9 UDP/TLS/RTP/SAVPF 63 111\r\n"));
  assert_non_null(strstr(sdp, "a=rtpmap:63 red/48000/2\r\n"));
  assert_non_null(strstr(sdp, "a=fmtp:63 111/111\r\n"));
  /* a plain Opus publisher is answered with Opus alone */
  sim_peer_t *b = publisher(s, "bob", 1, 0);
  ans = sim_msg_to(s, b->session, "answer", 0, NULL);
  assert_non_null(ans);
  assert_null(strstr(str(ans, "sdp"), "red/48000"));
}

static void red_reaches_red_subscribers_whole_and_others_as_its_primary(void **state) {
  sim_t *s = sim_new(61, 0);
  *state = s;
  sim_peer_t *a = red_publisher(s, "alice");
  sim_peer_t *b = listener(s, "bob");
  sim_peer_t *c = listener_no_red(s, "carol");
  sim_run(s, 1000);
  sim_sub_t *ub = sim_sub_of(b, a, 0), *uc = sim_sub_of(c, a, 0);
  assert_non_null(ub);
  assert_non_null(uc);
  assert_int_equal(ub->red_pt, SIM_PT_RED); /* offered, and kept */
  assert_int_equal(uc->red_pt, -1);
  assert_true(ub->nrx >= 45);
  assert_int_equal(ub->nrx, uc->nrx);
  for (int i = 0; i < ub->nrx; i++) {
    const sim_rx_t *x = &ub->rx[i], *y = &uc->rx[i];
    assert_int_equal(x->pt, SIM_PT_RED);
    assert_true(x->red_blocks == 2 || (i == 0 && x->red_blocks == 1)); /* 1: her first */
    assert_int_equal(x->block_pt, ub->pt);
    /* the other gets the primary alone: the Opus frame as it was sent */
    assert_int_equal(y->pt, uc->pt);
    assert_int_equal(y->red_blocks, 0);
    assert_int_equal(y->payload_len, 40);
    assert_int_equal(y->tag, x->tag);
    assert_int_equal(y->seq - uc->rx[0].seq, x->seq - ub->rx[0].seq);
  }
  assert_tags_in_order(ub);
  assert_tags_in_order(uc);
  assert_int_equal(check_continuous(ub, 0, UINT64_MAX, 960), ub->nrx);
  assert_int_equal(check_continuous(uc, 0, UINT64_MAX, 960), uc->nrx);

  /* server mute and back: both continue without a gap in numbering */
  sim_server_mute(s, "alice", 1);
  sim_run(s, 500);
  sim_server_mute(s, "alice", 0);
  sim_run(s, 500);
  assert_int_equal(check_continuous(ub, 0, UINT64_MAX, 48000), ub->nrx);
  assert_int_equal(check_continuous(uc, 0, UINT64_MAX, 48000), uc->nrx);
  assert_int_equal(s->room.c.drop_malformed, 0);
}

static void red_blocks_take_the_subscribers_opus_type(void **state) {
  sim_t *s = sim_new(62, 0);
  *state = s;
  sim_peer_t *a = red_publisher(s, "alice");
  sim_peer_t *b = sim_peer_new(s, "bob");
  b->opus_pt = 109; /* its own Opus type: the server's offers use it */
  sim_enter(b);
  sim_run(s, 500);
  sim_sub_t *u = sim_sub_of(b, a, 0);
  assert_non_null(u);
  assert_int_equal(u->pt, 109);
  assert_true(u->red_pt >= 0 && u->red_pt != 109);
  assert_true(u->nrx >= 20);
  for (int i = 0; i < u->nrx; i++) {
    assert_int_equal(u->rx[i].pt, u->red_pt);
    assert_int_equal(u->rx[i].block_pt, 109);
  }
}

static void plain_opus_goes_plain_to_red_subscribers(void **state) {
  sim_t *s = sim_new(63, 0);
  *state = s;
  sim_peer_t *a = publisher(s, "alice", 1, 0);
  sim_peer_t *b = listener(s, "bob");
  sim_run(s, 500);
  sim_sub_t *u = sim_sub_of(b, a, 0);
  assert_non_null(u);
  assert_int_equal(u->red_pt, SIM_PT_RED);
  assert_true(u->nrx >= 20);
  for (int i = 0; i < u->nrx; i++) {
    assert_int_equal(u->rx[i].pt, u->pt);
    assert_int_equal(u->rx[i].payload_len, 40);
  }
  assert_int_equal(check_continuous(u, 0, UINT64_MAX, 960), u->nrx);
}

static void malformed_red_is_dropped_and_counted(void **state) {
  sim_t *s = sim_new(64, 0);
  *state = s;
  sim_peer_t *a = red_publisher(s, "alice");
  sim_peer_t *b = listener(s, "bob");
  sim_run(s, 200);
  sim_sub_t *u = sim_sub_of(b, a, 0);
  assert_non_null(u);
  int before = u->nrx;
  /* a redundant block longer than the payload */
  uint8_t p[] = {0x80, SIM_PT_RED, 0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0,
                 0x80 | SIM_PT_OPUS, 0x0F, 0x03, 0xFF, SIM_PT_OPUS, 1, 2, 3};
  sfu_wr32(p + 8, a->audio_ssrc);
  uint64_t bad = s->room.c.drop_malformed;
  sim_send_rtp(a, p, sizeof(p));
  sim_settle(s);
  assert_int_equal(s->room.c.drop_malformed, bad + 1);
  assert_int_equal(u->nrx, before);
}

static void red_publisher_is_heard_speaking(void **state) {
  sim_t *s = sim_new(65, 0);
  *state = s;
  sim_peer_t *a = sim_peer_new(s, "alice");
  sim_peer_audio(a);
  a->red = 1;
  a->level = 20;
  sim_enter(a);
  sim_peer_t *b = listener(s, "bob");
  int from = s->nmsgs;
  sim_run(s, 1000);
  char buf[64];
  const char *who = last_speakers(s, b->session, from, buf, sizeof(buf));
  assert_non_null(who);
  assert_string_equal(who, "alice,");
}

/* ---- 12. the loudest speakers (max_audio_streams) ------------------------------------ */

/* Packets of u that arrived in [from_us, to_us). */
static int received_in(const sim_sub_t *u, uint64_t from_us, uint64_t to_us) {
  int n = 0;
  for (int i = 0; i < u->nrx; i++) n += u->rx[i].at_us >= from_us && u->rx[i].at_us < to_us;
  return n;
}

/* Arrival of the first / last packet of u in [from_us, to_us), 0 if none. */
static uint64_t first_in(const sim_sub_t *u, uint64_t from_us, uint64_t to_us) {
  for (int i = 0; i < u->nrx; i++)
    if (u->rx[i].at_us >= from_us && u->rx[i].at_us < to_us) return u->rx[i].at_us;
  return 0;
}

static uint64_t last_in(const sim_sub_t *u, uint64_t from_us, uint64_t to_us) {
  uint64_t t = 0;
  for (int i = 0; i < u->nrx; i++)
    if (u->rx[i].at_us >= from_us && u->rx[i].at_us < to_us) t = u->rx[i].at_us;
  return t;
}

/* Five speakers at levels 10..45 dBov and a listener, in a room of N = 2. */
static void five_speakers(sim_t *s, sim_peer_t *sp[5], sim_peer_t **l) {
  static const char *const names[5] = {"ann", "ben", "cat", "dan", "eve"};
  static const int level[5] = {10, 20, 30, 40, 45};
  s->room.max_audio_streams = 2;
  for (int i = 0; i < 5; i++) {
    sp[i] = sim_peer_new(s, names[i]);
    sim_peer_audio(sp[i]);
    sp[i]->level = level[i];
    sim_enter(sp[i]);
    sim_run(s, 7); /* packets off the tick grid */
  }
  *l = listener(s, "lou");
}

static void listener_gets_exactly_the_two_loudest_of_five(void **state) {
  sim_t *s = sim_new(70, 0);
  *state = s;
  sim_peer_t *sp[5], *l;
  five_speakers(s, sp, &l);
  sim_run(s, 2000);
  uint64_t t0 = sim_us(s) - 1000 * MS, t1 = sim_us(s);
  for (int i = 0; i < 5; i++) {
    sim_sub_t *u = sim_sub_of(l, sp[i], 0);
    assert_non_null(u);
    int n = received_in(u, t0, t1);
    if (i < 2)
      assert_true(n >= 49 && n <= 51);
    else
      assert_int_equal(n, 0);
  }
  /* a speaker's own track is not one of the N: ann gets ben and cat */
  assert_true(received_in(sim_sub_of(sp[0], sp[1], 0), t0, t1) >= 49);
  assert_true(received_in(sim_sub_of(sp[0], sp[2], 0), t0, t1) >= 49);
  assert_int_equal(received_in(sim_sub_of(sp[0], sp[3], 0), t0, t1), 0);
  assert_true(s->room.c.drop_not_loudest > 0);
  /* the quiet ones' packets are counted, not forwarded: 3 x 50 to lou alone */
  uint64_t before = s->room.c.drop_not_loudest;
  sim_run(s, 1000);
  assert_true(s->room.c.drop_not_loudest - before >= 5 * 2 * 49);
}

static void a_new_loudest_switches_in_and_the_third_after_the_hangover(void **state) {
  sim_t *s = sim_new(71, 0);
  *state = s;
  sim_peer_t *sp[5], *l;
  five_speakers(s, sp, &l);
  sim_run(s, 2000);
  sim_sub_t *ub = sim_sub_of(l, sp[1], 0), *ue = sim_sub_of(l, sp[4], 0);
  assert_non_null(ub);
  assert_non_null(ue);
  assert_int_equal(ue->nrx, 0);

  uint64_t t_switch = sim_us(s);
  sp[4]->level = 5; /* eve: now the loudest; ben is third */
  sim_run(s, 3000);
  uint64_t end = sim_us(s);
  /* eve starts within a tick or two (smoothing 40 ms, ticks 100 ms) */
  uint64_t e_first = first_in(ue, t_switch, end);
  assert_true(e_first > t_switch && e_first - t_switch <= 250 * MS);
  /* ben, still speaking, goes on for the hangover (1 s), then stops */
  uint64_t b_last = last_in(ub, t_switch, end);
  assert_true(b_last - t_switch >= 900 * MS && b_last - t_switch <= 1300 * MS);
  for (int i = 0; i < 5; i++) {
    int n = received_in(sim_sub_of(l, sp[i], 0), t_switch + 1500 * MS, end);
    if (i == 0 || i == 4)
      assert_true(n >= 70);
    else
      assert_int_equal(n, 0);
  }
  /* numbering starts and continues without a gap */
  assert_int_equal(check_continuous(ue, 0, UINT64_MAX, 960), ue->nrx);
  assert_int_equal(check_continuous(ub, 0, UINT64_MAX, 960), ub->nrx);

  /* ann falls silent: she goes once she stops speaking (no hangover for
   * silence), and ben comes back with the next number after his last */
  int b_before = ub->nrx;
  uint64_t t_quiet = sim_us(s);
  sp[0]->level = 127;
  sim_run(s, 2000);
  uint64_t a_last = last_in(sim_sub_of(l, sp[0], 0), t_quiet, sim_us(s));
  assert_true(a_last - t_quiet <= 700 * MS); /* off_ms 400 + a tick + smoothing */
  assert_true(ub->nrx - b_before >= 60);
  assert_int_equal((uint16_t)(ub->rx[b_before].seq - ub->rx[b_before - 1].seq), 1);
  assert_int_equal(check_continuous(ub, 0, UINT64_MAX, 48000 * 5), ub->nrx);
}

static void a_server_muted_speaker_takes_no_place(void **state) {
  sim_t *s = sim_new(72, 0);
  *state = s;
  sim_peer_t *sp[5], *l;
  five_speakers(s, sp, &l);
  sim_server_mute(s, "ann", 1);
  sim_run(s, 2000);
  uint64_t t0 = sim_us(s) - 1000 * MS, t1 = sim_us(s);
  assert_int_equal(received_in(sim_sub_of(l, sp[0], 0), t0, t1), 0);
  assert_true(received_in(sim_sub_of(l, sp[1], 0), t0, t1) >= 49);
  assert_true(received_in(sim_sub_of(l, sp[2], 0), t0, t1) >= 49);
  assert_int_equal(received_in(sim_sub_of(l, sp[3], 0), t0, t1), 0);
}

/* ---- WHEP viewers (sfu/room/whep.c) ------------------------------------------------ */

static sim_peer_t *whep_viewer(sim_t *s, const char *id, const char *follow) {
  sim_peer_t *pe = sim_peer_new(s, id);
  pe->whep = 1;
  pe->grants = SFU_GRANT_SUBSCRIBE;
  snprintf(pe->follow, sizeof(pe->follow), "%s", follow ? follow : "");
  sim_enter(pe);
  assert_int_equal(pe->nsubs, 2); /* its own two m-lines, from the answer */
  assert_false(pe->subs[0].video);
  assert_true(pe->subs[1].video);
  assert_int_equal(pe->subs[1].rtx_pt, -1); /* no RTX on them */
  return pe;
}

/* Packets of u received from index `from` on whose tag is of peer `idx`. */
static int rx_of(const sim_sub_t *u, int from, int idx) {
  int n = 0;
  for (int i = from; i < u->nrx; i++) n += sim_tag_peer(u->rx[i].tag) == idx;
  return n;
}

/* A WHEP viewer follows the room's first video publisher; when that one
 * leaves, its m-lines carry the next on the same SSRCs as one stream:
 * sequence numbers +1, video timestamps and VP8 picture ids going on,
 * from a keyframe the new publisher was asked for at once. With nobody
 * left the m-lines are silent; a new publisher is taken. */
static void whep_viewer_switches_to_the_next_publisher_when_the_followed_one_leaves(void **state) {
  sim_t *s = sim_new(41, 0);
  *state = s;
  sim_peer_t *a = publisher(s, "alice", 1, 1);
  sim_run(s, 100);
  sim_peer_t *b = sim_peer_new(s, "bob");
  sim_peer_audio(b);
  sim_peer_video(b, 1);
  b->key_delay = 3; /* an encoder takes a few frames to answer a PLI */
  sim_enter(b);
  sim_peer_t *v = whep_viewer(s, "viewer", NULL);
  sim_sub_t *ua = &v->subs[0], *uv = &v->subs[1];
  uint32_t assrc = ua->ssrc, vssrc = uv->ssrc;
  sim_run(s, 1500);
  assert_true(ua->nrx > 60 && uv->nrx > 30);
  assert_int_equal(rx_of(ua, 0, a->idx), ua->nrx);
  assert_int_equal(rx_of(uv, 0, a->idx), uv->nrx);
  assert_true(uv->rx[0].key && uv->rx[0].begins);
  int na = ua->nrx, nv = uv->nrx;

  uint64_t t_leave = sim_us(s);
  sim_leave(a);
  sim_run(s, 1500);
  /* bob is asked for a keyframe as the switch happens */
  assert_true(sim_fb_count(b, SIM_FB_PLI, b->layers[0].ssrc, t_leave, t_leave + 150 * MS) +
                  sim_fb_count(b, SIM_FB_FIR, b->layers[0].ssrc, t_leave, t_leave + 150 * MS) >=
              1);
  assert_true(ua->nrx - na > 60 && uv->nrx - nv > 30);
  assert_int_equal(rx_of(ua, na, b->idx), ua->nrx - na);
  assert_int_equal(rx_of(uv, nv, b->idx), uv->nrx - nv);
  assert_int_equal(ua->ssrc, assrc); /* the same m-lines, the same SSRCs */
  assert_int_equal(uv->ssrc, vssrc);
  assert_int_equal(v->rtp_unknown, 0);
  /* video: one stream to the decoder, bob's starting on a keyframe */
  const sim_rx_t *last = &uv->rx[nv - 1], *first = &uv->rx[nv];
  assert_true(first->key && first->begins);
  assert_int_equal(check_continuous(uv, 0, UINT64_MAX, 90000), uv->nrx);
  assert_int_equal(first->pid, (last->pid + 1) & 0x7fff);
  for (int i = nv + 1; i < uv->nrx; i++)
    assert_true(uv->rx[i].pid == uv->rx[i - 1].pid ||
                uv->rx[i].pid == ((uv->rx[i - 1].pid + 1) & 0x7fff));
  /* audio: sequence numbers go on; the timestamps are bob's (a new talk
   * spurt), continuous from there */
  assert_int_equal((uint16_t)(ua->rx[na].seq - ua->rx[na - 1].seq), 1);
  assert_int_equal(check_continuous(ua, 0, ua->rx[na].at_us, 48000 * 2), na);
  assert_int_equal(check_continuous(ua, ua->rx[na].at_us, UINT64_MAX, 48000 * 2), ua->nrx - na);

  /* bob leaves too: nothing to carry */
  sim_leave(b);
  sim_run(s, 200); /* what was on the way */
  na = ua->nrx, nv = uv->nrx;
  sim_run(s, 1000);
  assert_int_equal(ua->nrx, na);
  assert_int_equal(uv->nrx, nv);
  /* carol publishes: taken */
  sim_peer_t *c = publisher(s, "carol", 1, 1);
  sim_run(s, 1500);
  assert_true(ua->nrx - na > 60 && uv->nrx - nv > 30);
  assert_int_equal(rx_of(ua, na, c->idx), ua->nrx - na);
  assert_int_equal(rx_of(uv, nv, c->idx), uv->nrx - nv);
  assert_true(uv->rx[nv].key);
  assert_int_equal((uint16_t)(uv->rx[nv].seq - uv->rx[nv - 1].seq), 1);
  assert_int_equal(uv->rx[nv].pid, (uv->rx[nv - 1].pid + 1) & 0x7fff);
  assert_int_equal(v->rtp_unknown, 0);
}

/* A viewer that names its publisher (?participant=) follows only that
 * one: silent while it is away, though others publish, and back on it
 * when it rejoins. */
static void whep_viewer_following_an_identity_waits_for_it(void **state) {
  sim_t *s = sim_new(42, 0);
  *state = s;
  sim_peer_t *a = publisher(s, "alice", 1, 1);
  sim_peer_t *b = publisher(s, "bob", 1, 1);
  sim_peer_t *v = whep_viewer(s, "viewer", "bob");
  sim_sub_t *ua = &v->subs[0], *uv = &v->subs[1];
  sim_run(s, 1500);
  assert_true(ua->nrx > 60 && uv->nrx > 30);
  assert_int_equal(rx_of(ua, 0, b->idx), ua->nrx);
  assert_int_equal(rx_of(uv, 0, b->idx), uv->nrx);

  sim_leave(b);
  sim_run(s, 200);
  int na = ua->nrx, nv = uv->nrx;
  sim_run(s, 1500);
  assert_int_equal(ua->nrx, na); /* alice publishes; the viewer waits for bob */
  assert_int_equal(uv->nrx, nv);

  sim_peer_t *b2 = sim_peer_like(b);
  sim_enter(b2);
  sim_run(s, 1500);
  assert_true(ua->nrx - na > 60 && uv->nrx - nv > 30);
  assert_int_equal(rx_of(ua, na, b2->idx), ua->nrx - na);
  assert_int_equal(rx_of(uv, nv, b2->idx), uv->nrx - nv);
  assert_true(uv->rx[nv].key);
  assert_int_equal(check_continuous(uv, 0, UINT64_MAX, 90000 * 3), uv->nrx);
  assert_int_equal(rx_of(uv, 0, a->idx), 0);
  assert_int_equal(v->rtp_unknown, 0);
}

static int teardown(void **state) {
  sim_free(*state);
  *state = NULL;
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(late_subscriber_gets_pli_to_publisher_and_starts_on_keyframe, teardown),
      cmocka_unit_test_teardown(audio_seq_and_ts_continue_across_server_mute, teardown),
      cmocka_unit_test_teardown(replaced_publisher_streams_start_fresh_and_continuous_on_new_mlines, teardown),
      cmocka_unit_test_teardown(tracks_removed_during_an_outstanding_offer_end_inactive, teardown),
      cmocka_unit_test_teardown(simulcast_switches_keep_seq_and_ts_continuous, teardown),
      cmocka_unit_test_teardown(simulcast_switches_keep_vp8_picture_id_and_tl0picidx_continuous, teardown),
      cmocka_unit_test_teardown(subscriber_pli_burst_makes_one_pli_per_500ms_to_publisher, teardown),
      cmocka_unit_test_teardown(pli_throttle_is_per_layer, teardown),
      cmocka_unit_test_teardown(falling_remb_steps_down_at_once_then_up_after_a_growing_hold, teardown),
      cmocka_unit_test_teardown(remb_counts_only_when_fresh_and_below_85pct, teardown),
      cmocka_unit_test_teardown(subscriber_nack_is_answered_as_rtx_from_cache, teardown),
      cmocka_unit_test_teardown(subscriber_nack_without_rtx_resends_the_packet_itself, teardown),
      cmocka_unit_test_teardown(publisher_gap_is_nacked_next_tick_retried_every_40ms_then_keyframe, teardown),
      cmocka_unit_test_teardown(usage_periods_tile_time_through_mute_and_leave, teardown),
      cmocka_unit_test_teardown(speaking_events_come_at_most_every_200ms, teardown),
      cmocka_unit_test_teardown(server_mute_takes_a_speaker_out_of_the_speaking_set, teardown),
      cmocka_unit_test_teardown(client_offer_while_server_offer_outstanding_gets_glare, teardown),
      cmocka_unit_test_teardown(upstream_loss_is_repaired_by_nack_and_publisher_rtx, teardown),
      cmocka_unit_test_teardown(downstream_loss_is_repaired_by_subscriber_nacks, teardown),
      cmocka_unit_test_teardown(layer_follows_a_rate_limited_downlink, teardown),
      cmocka_unit_test_teardown(falling_remb_drops_at_once_toward_what_fits_and_climbs_back, teardown),
      cmocka_unit_test_teardown(a_queue_under_a_lagging_remb_steps_down, teardown),
      cmocka_unit_test_teardown(a_report_of_loss_on_the_layer_counts_at_once, teardown),
      cmocka_unit_test_teardown(dynacast_tells_the_publisher_which_layers_are_taken, teardown),
      cmocka_unit_test_teardown(dynacast_keeps_the_layer_taken_while_the_wished_one_is_never_sent, teardown),
      cmocka_unit_test_teardown(a_step_down_onto_a_stopped_layer_takes_the_lowest_at_once, teardown),
      cmocka_unit_test_teardown(svc_spatial_layers_follow_the_quality_asked, teardown),
      cmocka_unit_test_teardown(svc_spatial_layers_follow_the_estimate, teardown),
      cmocka_unit_test_teardown(av1_spatial_layers_by_the_dependency_descriptor, teardown),
      cmocka_unit_test_teardown(a_tight_budget_drops_temporal_layers_before_pausing, teardown),
      cmocka_unit_test_teardown(a_tight_budget_drops_h264_temporal_layers_before_pausing,
                                teardown),
      cmocka_unit_test_teardown(h264_temporal_layers_by_the_dependency_descriptor, teardown),
      cmocka_unit_test_teardown(transport_feedback_goes_to_publishers, teardown),
      cmocka_unit_test_teardown(estimate_follows_a_capped_downlink_and_probes_back_up, teardown),
      cmocka_unit_test_teardown(estimate_is_shared_by_priority_and_never_pauses_audio, teardown),
      cmocka_unit_test_teardown(a_tight_budget_keeps_the_screen_share_and_pauses_the_camera, teardown),
      cmocka_unit_test_teardown(a_camera_paused_for_the_screen_share_comes_back_when_the_cap_lifts,
                                teardown),
      cmocka_unit_test_teardown(a_camera_costing_more_than_the_estimate_is_paused_at_once,
                                teardown),
      cmocka_unit_test_teardown(silent_transport_is_removed_after_15s, teardown),
      cmocka_unit_test_teardown(mute_toggling_sends_no_usage_records_and_is_bounded_to_5_a_second,
                                teardown),
      cmocka_unit_test_teardown(publisher_churn_recycles_the_subscribers_mlines, teardown),
      cmocka_unit_test_teardown(welcome_carries_the_ice_servers_of_its_join, teardown),
      cmocka_unit_test_teardown(server_mute_survives_leave_and_rejoin, teardown),
      cmocka_unit_test_teardown(server_mute_before_join_applies_at_join, teardown),
      cmocka_unit_test_teardown(server_mute_set_is_bounded_and_outlives_a_kick, teardown),
      cmocka_unit_test_teardown(moved_call_keeps_people_tracks_and_choices_and_counts_usage_once, teardown),
      cmocka_unit_test_teardown(malformed_import_takes_nothing, teardown),
      cmocka_unit_test_teardown(moved_screen_share_keeps_its_track_id, teardown),
      cmocka_unit_test_teardown(camera_and_screen_reach_a_subscriber_as_two_video_mlines, teardown),
      cmocka_unit_test_teardown(video_quality_applies_to_the_track_it_names, teardown),
      cmocka_unit_test_teardown(stopping_the_screen_share_removes_only_it, teardown),
      cmocka_unit_test_teardown(offer_sources_are_checked, teardown),
      cmocka_unit_test_teardown(audience_is_counted_not_listed, teardown),
      cmocka_unit_test_teardown(red_publisher_answer_lists_red_first, teardown),
      cmocka_unit_test_teardown(red_reaches_red_subscribers_whole_and_others_as_its_primary,
                                teardown),
      cmocka_unit_test_teardown(red_blocks_take_the_subscribers_opus_type, teardown),
      cmocka_unit_test_teardown(plain_opus_goes_plain_to_red_subscribers, teardown),
      cmocka_unit_test_teardown(malformed_red_is_dropped_and_counted, teardown),
      cmocka_unit_test_teardown(red_publisher_is_heard_speaking, teardown),
      cmocka_unit_test_teardown(listener_gets_exactly_the_two_loudest_of_five, teardown),
      cmocka_unit_test_teardown(a_new_loudest_switches_in_and_the_third_after_the_hangover,
                                teardown),
      cmocka_unit_test_teardown(a_server_muted_speaker_takes_no_place, teardown),
      cmocka_unit_test_teardown(
          whep_viewer_switches_to_the_next_publisher_when_the_followed_one_leaves, teardown),
      cmocka_unit_test_teardown(whep_viewer_following_an_identity_waits_for_it, teardown),
  };
  sfu_log_set_level(SFU_LOG_WARN); /* joins and leaves are not news here */
  return cmocka_run_group_tests(tests, NULL, NULL);
}
