/*
 * test_relay.c -- one call over two room engines joined by a link
 * (sfu/room/relay.c), on the simulated clock of tests/engine_sim.h: the
 * origin's engine and a relay's, each with its own peers, the link's
 * messages carried between them at once and its packets through a sim
 * link that can lose them.
 *
 * What is checked: audio both ways across the link and usage counted by
 * each participant's own process only; a track published after its
 * publisher was described; a screen share next to a camera; video at the layer a relay's
 * subscriber chose, its keyframe requests reaching the publisher on the
 * origin; losses on the link repaired by NACKs to the origin; leaves and
 * a failed link taking remote participants away; link messages that are
 * malformed or conflicting refused with nothing changed; the audience
 * carried as a count, not described.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sfu/base/log.h"
#include "sfu/base/sfu.h"
#include "tests/engine_sim.h"

#define MS 1000u /* us */

typedef struct {
  sim_t *a, *b; /* origin, relay */
} pair_t;

static pair_t *pair(void **state, uint64_t seed) {
  pair_t *w = calloc(1, sizeof(*w));
  assert_non_null(w);
  w->a = sim_new(seed, 2);
  w->b = sim_new(seed + 1000, 2);
  *state = w;
  sim_bridge(w->a, w->b, "LK_test");
  return w;
}

static int teardown(void **state) {
  pair_t *w = *state;
  if (w) {
    sim_free(w->a);
    sim_free(w->b);
    free(w);
  }
  *state = NULL;
  return 0;
}

static const char *str(json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

static sim_peer_t *peer(sim_t *s, const char *id, int audio, int layers) {
  sim_peer_t *pe = sim_peer_new(s, id);
  if (audio) sim_peer_audio(pe);
  if (layers) sim_peer_video(pe, layers);
  sim_enter(pe);
  return pe;
}

/* Packets of `pub` (by tag) among what the subscription got. */
static int tagged(const sim_sub_t *u, const sim_peer_t *pub) {
  int n = 0;
  for (int i = 0; u && i < u->nrx; i++) n += sim_tag_peer(u->rx[i].tag) == pub->idx;
  return n;
}

/* Identities in the usage records `s` emitted. */
static int usage_mentions(sim_t *s, const char *identity) {
  int n = 0;
  for (int i = 0; i < s->nmsgs; i++) {
    json_t *m = s->msgs[i].m;
    if (strcmp(str(m, "type"), "usage") != 0) continue;
    size_t j;
    json_t *r;
    json_array_foreach(json_object_get(m, "records"), j, r) n += strcmp(str(r, "identity"), identity) == 0;
  }
  return n;
}

static int events_of(sim_t *s, const char *type, const char *identity) {
  int n = 0;
  for (int i = 0; i < s->nmsgs; i++) {
    json_t *m = s->msgs[i].m;
    if (strcmp(str(m, "type"), "event") != 0) continue;
    json_t *e = json_object_get(m, "event");
    n += strcmp(str(e, "type"), type) == 0 && strcmp(str(e, "participant"), identity) == 0;
  }
  return n;
}

static sfu_participant_t *remote(sim_t *s, const char *identity) {
  for (sfu_participant_t *p = s->room.participants; p; p = p->next)
    if (p->via && strcmp(p->identity, identity) == 0) return p;
  return NULL;
}

/* ---- audio -------------------------------------------------------------- */

static void audio_crosses_the_link_both_ways_and_usage_is_counted_once(void **state) {
  pair_t *w = pair(state, 1);
  sim_peer_t *alice = peer(w->a, "alice", 1, 0); /* speaks on the origin */
  alice->level = 20;
  sim_peer_t *bob = peer(w->b, "bob", 1, 0);     /* speaks on the relay */
  sim_peer_t *carol = peer(w->b, "carol", 0, 0); /* listens on the relay */
  sim_run2(w->a, w->b, 3000);

  /* each side lists the other's people, as remote participants */
  assert_non_null(remote(w->b, "alice"));
  assert_non_null(remote(w->a, "bob"));
  assert_non_null(remote(w->a, "carol"));
  assert_null(remote(w->a, "alice"));
  assert_non_null(sim_msg_to(w->b, carol->session, "participant_joined", 0, NULL));

  /* 3 s of 20 ms packets, less the start: everyone hears everyone */
  sim_sub_t *ca = sim_sub_of(carol, alice, 0), *cb = sim_sub_of(carol, bob, 0);
  sim_sub_t *ab = sim_sub_of(alice, bob, 0), *ba = sim_sub_of(bob, alice, 0);
  assert_true(tagged(ca, alice) > 100);
  assert_true(tagged(ba, alice) > 100);
  assert_true(tagged(ab, bob) > 100);
  assert_true(tagged(cb, bob) > 100);
  /* once per link, not once per subscriber */
  assert_true(w->a->room.c.relay_out >= (uint64_t)tagged(ca, alice));
  assert_true(w->a->room.c.relay_out < (uint64_t)tagged(ca, alice) + 20);
  assert_true(w->b->room.c.relay_in >= (uint64_t)tagged(ca, alice));
  /* the relay's listeners see alice speak, from her level extension */
  json_t *sp = sim_msg_to(w->b, carol->session, "speaking", 0, NULL);
  assert_non_null(sp);
  assert_string_equal(str(json_array_get(json_object_get(sp, "speakers"), 0), "identity"), "alice");

  /* usage and events: each participant by its own process only */
  sim_leave(alice);
  sim_leave(bob);
  sim_leave(carol);
  sim_run2(w->a, w->b, 100);
  assert_true(usage_mentions(w->a, "alice") >= 1);
  assert_int_equal(usage_mentions(w->a, "bob") + usage_mentions(w->a, "carol"), 0);
  assert_true(usage_mentions(w->b, "bob") >= 1 && usage_mentions(w->b, "carol") >= 1);
  assert_int_equal(usage_mentions(w->b, "alice"), 0);
  assert_int_equal(events_of(w->b, "participant_joined", "alice"), 0);
  assert_int_equal(events_of(w->a, "participant_joined", "alice"), 1);
  assert_int_equal(events_of(w->a, "participant_left", "bob"), 0);
  /* the origin lives while the relay serves someone, and not after */
  assert_true(w->a->empty);
}

static void a_track_published_after_the_join_reaches_the_relay(void **state) {
  pair_t *w = pair(state, 6);
  sim_peer_t *carol = peer(w->b, "carol", 0, 0);
  sim_peer_t *alice = sim_peer_new(w->a, "alice");
  sim_peer_audio(alice);
  sim_join(alice); /* described to the relay without a track ... */
  sim_run2(w->a, w->b, 500);
  assert_non_null(remote(w->b, "alice"));
  assert_null(remote(w->b, "alice")->audio);
  sim_offer(alice); /* ... then publishing (its SSRC from its SDP) */
  sim_connect(alice);
  sim_media(alice, 1);
  sim_run2(w->a, w->b, 2000);
  assert_non_null(remote(w->b, "alice")->audio);
  assert_true(tagged(sim_sub_of(carol, alice, 0), alice) > 50);
  assert_int_equal(w->b->room.c.drop_relay_ssrc, 0);
}

/* ---- video ---------------------------------------------------------------- */

/* A screen share crosses the link as a track of its own: described with
 * its source, listed so to the relay's clients, its packets on the relay
 * subscriber's second video m-line. */
static void a_screen_share_crosses_the_link_next_to_the_camera(void **state) {
  pair_t *w = pair(state, 8);
  sim_peer_t *alice = sim_peer_new(w->a, "alice");
  sim_peer_video(alice, 2);
  sim_peer_screen(alice);
  sim_enter(alice);
  sim_peer_t *bob = peer(w->b, "bob", 0, 0);
  sim_run2(w->a, w->b, 2000);
  sfu_participant_t *r = remote(w->b, "alice");
  assert_non_null(r);
  assert_non_null(r->video);
  assert_non_null(r->screen);
  assert_int_equal(r->screen->source, SFU_SOURCE_SCREEN);
  assert_int_equal(r->video->source, SFU_SOURCE_CAMERA);
  assert_string_equal(r->screen->id, sim_part(alice)->screen->id);
  json_t *pj = sfu_participant_json(r);
  json_t *t = json_array_get(json_object_get(pj, "tracks"), 1);
  assert_string_equal(str(t, "track_id"), r->screen->id);
  assert_string_equal(str(t, "source"), "screen");
  json_decref(pj);
  sim_sub_t *u = sim_sub_by_track(bob, r->screen->id), *c = sim_sub_by_track(bob, r->video->id);
  assert_non_null(u);
  assert_non_null(c);
  int screen = 0, camera = 0, other = 0;
  for (int i = 0; i < u->nrx; i++) {
    screen += sim_tag_layer(u->rx[i].tag) == SIM_SCREEN;
    other += sim_tag_layer(u->rx[i].tag) != SIM_SCREEN;
  }
  for (int i = 0; i < c->nrx; i++) camera += sim_tag_layer(c->rx[i].tag) == 1;
  assert_true(screen > 50);
  assert_int_equal(other, 0);
  assert_true(camera > 20);

  /* stopped at the origin: gone at the relay, the camera stays */
  sim_stop_screen(alice, 30);
  sim_run2(w->a, w->b, 500);
  assert_null(r->screen);
  assert_non_null(r->video);
  assert_false(u->active);
}

static void video_over_the_link_takes_the_relay_subscribers_layer_and_its_pli(void **state) {
  pair_t *w = pair(state, 2);
  sim_peer_t *alice = peer(w->a, "alice", 0, 3);
  sim_peer_t *bob = peer(w->b, "bob", 0, 0);
  sim_run2(w->a, w->b, 3000);
  sim_sub_t *u = sim_sub_of(bob, alice, 1);
  assert_non_null(u);
  assert_true(u->active);
  int top = 0;
  for (int i = 0; i < u->nrx; i++) top += !u->rx[i].rtx && sim_tag_layer(u->rx[i].tag) == 2;
  assert_true(top > 100);      /* the top layer, all three crossed the link */
  assert_true(u->rx[0].key);   /* and it started on a keyframe */

  /* a keyframe request from the relay's subscriber reaches alice */
  sim_run2(w->a, w->b, 600); /* past the throttles of the first one */
  uint64_t t0 = sim_us(w->a);
  sim_send_pli(bob, u->ssrc);
  sim_run2(w->a, w->b, 50);
  assert_int_equal(sim_fb_count(alice, SIM_FB_PLI, alice->layers[2].ssrc, t0, UINT64_MAX), 1);

  /* bob asks for the low layer: the relay switches him at its keyframe */
  int from = w->b->nmsgs;
  sim_client_msg(bob, json_pack("{s:s, s:i, s:s, s:s}", "type", "video_quality", "id", 5,
                                "track_id", u->track_id, "quality", "low"));
  assert_non_null(sim_msg_to(w->b, bob->session, "ack", from, NULL));
  int n0 = u->nrx;
  sim_run2(w->a, w->b, 2000);
  assert_int_equal(sim_tag_layer(u->rx[u->nrx - 1].tag), 0);
  int low = 0;
  for (int i = n0; i < u->nrx; i++) low += sim_tag_layer(u->rx[i].tag) == 0;
  assert_true(low > 20);
}

static void losses_on_the_link_are_repaired_from_the_origin(void **state) {
  pair_t *w = pair(state, 3);
  w->b->relay_in.loss = 0.05; /* origin -> relay */
  w->b->relay_in.delay_ms = 10;
  w->a->relay_in.delay_ms = 10;
  sim_peer_t *alice = peer(w->a, "alice", 0, 1);
  sim_peer_t *bob = peer(w->b, "bob", 0, 0);
  sim_run2(w->a, w->b, 15000);
  sim_media(alice, 0);
  sim_run2(w->a, w->b, 1500);
  sim_sub_t *u = sim_sub_of(bob, alice, 1);
  assert_non_null(u);
  assert_true(w->b->relay_in.lost > 30);
  assert_true(w->b->room.c.nacks_sent > 30);   /* the relay asked ... */
  assert_true(w->a->room.c.rtx_out > 30);      /* ... the origin resent */
  uint32_t first = 0;
  for (int i = 0; i < 20 && i < u->nrx; i++)
    if ((u->rx[i].tag & 0x3fffff) > first) first = u->rx[i].tag & 0x3fffff;
  sim_assert_all_tags(u, alice, 0, first, alice->layers[0].tag_next - 30);
}

/* ---- membership ------------------------------------------------------------- */

static void leaves_and_a_failed_link_take_remote_participants_away(void **state) {
  pair_t *w = pair(state, 4);
  sim_peer_t *alice = peer(w->a, "alice", 1, 0);
  sim_peer_t *dave = peer(w->a, "dave", 1, 0);
  sim_peer_t *carol = peer(w->b, "carol", 0, 0);
  sim_run2(w->a, w->b, 500);
  assert_non_null(remote(w->b, "alice"));

  int from = w->b->nmsgs;
  sim_leave(alice);
  sim_run2(w->a, w->b, 10);
  assert_null(remote(w->b, "alice"));
  json_t *left = sim_msg_to(w->b, carol->session, "participant_left", from, NULL);
  assert_non_null(left);
  assert_string_equal(str(left, "identity"), "alice");

  /* the link fails: dave leaves the relay's view until it is back */
  from = w->b->nmsgs;
  sfu_room_on_transport(&w->b->room, sim_link_part(w->b), SFU_TP_FAILED,
                        (sfu_time_t){sim_us(w->b), SIM_WALL0_US});
  assert_null(remote(w->b, "dave"));
  assert_non_null(sim_msg_to(w->b, carol->session, "participant_left", from, NULL));
  assert_true(w->b->room.participants != NULL); /* carol herself */
  (void)dave;
}

static json_t *peer_msg(const char *sid, const char *identity) {
  return json_pack("{s:s, s:{s:s, s:s, s:s, s:s, s:b, s:b, s:[]}}", "link", "LK_test", "msg",
                   "type", "peer", "sid", sid, "identity", identity, "name", "", "muted", 0,
                   "server_muted", 0, "tracks");
}

static int ctl(sim_t *s, const char *type, json_t *m) {
  int rv = sfu_room_on_control(&s->room, type, m, (sfu_time_t){sim_us(s), SIM_WALL0_US});
  json_decref(m);
  return rv;
}

static sim_peer_t *audience(sim_t *s, const char *id) {
  sim_peer_t *pe = sim_peer_new(s, id);
  pe->grants = SFU_GRANT_SUBSCRIBE;
  sim_enter(pe);
  return pe;
}

static int count_in(sim_t *s, uint32_t session, int from) {
  json_t *m = sim_msg_to(s, session, "audience", from, NULL);
  return m ? (int)json_integer_value(json_object_get(m, "count")) : -1;
}

/* An audience on both sides: never described over the link (no remote
 * participant for it), counted room-wide on both, each side's clients told
 * the total once it changed. */
static void the_audience_crosses_the_link_as_a_count(void **state) {
  pair_t *w = pair(state, 6);
  sim_peer_t *alice = peer(w->a, "alice", 1, 0);
  audience(w->a, "a1");
  sim_peer_t *b1 = audience(w->b, "b1");
  audience(w->b, "b2");
  sim_peer_t *b3 = audience(w->b, "b3");
  sim_run2(w->a, w->b, 2500); /* a tick to send, one to tell */
  assert_null(remote(w->a, "b1"));
  assert_null(remote(w->b, "a1"));
  assert_non_null(remote(w->b, "alice"));
  assert_int_equal(count_in(w->a, alice->session, 0), 4);
  assert_int_equal(count_in(w->b, b3->session, 0), 4);
  int from_a = w->a->nmsgs, from_b = w->b->nmsgs;
  sim_leave(b3);
  sim_run2(w->a, w->b, 2500);
  assert_int_equal(count_in(w->a, alice->session, from_a), 3);
  assert_int_equal(sim_count_to(w->a, alice->session, "participant_left", from_a), 0);
  assert_int_equal(count_in(w->b, b1->session, from_b), 3);
  /* a count out of bounds is refused and changes nothing */
  assert_int_equal(ctl(w->a, "link_msg", json_pack("{s:s, s:{s:s, s:i}}", "link", "LK_test",
                                                   "msg", "type", "audience", "count", -1)),
                   SFU_EINVAL);
  assert_int_equal(sfu_relay_audience(&w->a->room), 3);
}

static void malformed_or_conflicting_link_messages_change_nothing(void **state) {
  pair_t *w = pair(state, 5);
  sim_peer_t *carol = peer(w->b, "carol", 0, 0);
  sim_run2(w->a, w->b, 200);
  sfu_participant_t *before = w->b->room.participants;

  /* a well-formed one makes a remote participant ... */
  assert_int_equal(ctl(w->b, "link_msg", peer_msg("PA_x1", "xavier")), 0);
  assert_non_null(remote(w->b, "xavier"));
  /* ... these do not */
  assert_int_equal(ctl(w->b, "link_msg", peer_msg("PA_x2", "bad identity!")), SFU_EINVAL);
  assert_null(remote(w->b, "bad identity!"));
  assert_int_equal(ctl(w->b, "link_msg", peer_msg(carol->sid, "mallory")), SFU_EEXIST);
  assert_int_equal(ctl(w->b, "link_msg", peer_msg("", "zed")), SFU_EINVAL);
  assert_null(remote(w->b, "zed"));
  json_t *m = peer_msg("PA_x3", "yves");
  json_array_append_new(json_object_get(json_object_get(m, "msg"), "tracks"),
                        json_pack("{s:s, s:s}", "id", "TR_1", "kind", "audio")); /* half */
  assert_int_equal(ctl(w->b, "link_msg", m), SFU_EINVAL);
  assert_null(remote(w->b, "yves"));
  assert_int_equal(ctl(w->b, "link_msg", json_pack("{s:s, s:s}", "link", "LK_test", "msg", "x")),
                   SFU_EINVAL);
  assert_int_equal(ctl(w->b, "link_msg", json_pack("{s:s, s:{s:s}}", "link", "LK_nope", "msg",
                                                   "type", "peer")),
                   SFU_ENOENT);
  assert_int_equal(ctl(w->b, "link_open", json_pack("{s:s, s:s}", "link", "LK_test", "role",
                                                    "relay")),
                   SFU_EEXIST);
  assert_int_equal(ctl(w->b, "link_open", json_pack("{s:s, s:s}", "link", "LK_2", "role",
                                                    "boss")),
                   SFU_EINVAL);
  assert_int_equal(ctl(w->b, "link_open", json_pack("{s:s, s:s}", "link", "a b", "role",
                                                    "relay")),
                   SFU_EINVAL);
  /* the other end's setup must be the DTLS client's */
  assert_int_equal(ctl(w->b, "link_remote",
                       json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:[]}", "link", "LK_test",
                                 "ufrag", "abcd", "pwd", "0123456789012345678901", "fp_alg",
                                 "sha-256", "fp", "ab", "setup", "passive", "candidates")),
                   SFU_EINVAL);
  int n = 0;
  for (sfu_participant_t *p = w->b->room.participants; p; p = p->next) n++;
  assert_int_equal(n, 2); /* carol and xavier */
  assert_true(before != NULL);
  /* a closed link takes its remote participants */
  assert_int_equal(ctl(w->b, "link_close", json_pack("{s:s}", "link", "LK_test")), 0);
  assert_null(remote(w->b, "xavier"));
  assert_null(w->b->room.links);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(audio_crosses_the_link_both_ways_and_usage_is_counted_once, teardown),
      cmocka_unit_test_teardown(a_track_published_after_the_join_reaches_the_relay, teardown),
      cmocka_unit_test_teardown(a_screen_share_crosses_the_link_next_to_the_camera, teardown),
      cmocka_unit_test_teardown(video_over_the_link_takes_the_relay_subscribers_layer_and_its_pli,
                                teardown),
      cmocka_unit_test_teardown(losses_on_the_link_are_repaired_from_the_origin, teardown),
      cmocka_unit_test_teardown(leaves_and_a_failed_link_take_remote_participants_away, teardown),
      cmocka_unit_test_teardown(malformed_or_conflicting_link_messages_change_nothing, teardown),
      cmocka_unit_test_teardown(the_audience_crosses_the_link_as_a_count, teardown),
  };
  sfu_log_set_level(SFU_LOG_ERROR);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
