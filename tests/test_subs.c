/*
 * test_subs.c -- a peer's subscriptions over its media legs
 * (tools/client/subs.h): one per m-line with one leg, as before legs; the
 * same ones across a move to another node, told to the owner when the new
 * leg comes to play.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "tools/client/subs.h"

static sfu_subs_line_t line(const char *mid, const char *owner, const char *track, uint32_t ssrc,
                           int active) {
  sfu_subs_line_t l;
  memset(&l, 0, sizeof(l));
  snprintf(l.mid, sizeof(l.mid), "%s", mid);
  snprintf(l.kind, sizeof(l.kind), "audio");
  snprintf(l.owner_sid, sizeof(l.owner_sid), "%s", owner);
  snprintf(l.track_id, sizeof(l.track_id), "%s", track);
  snprintf(l.codec, sizeof(l.codec), "opus");
  l.ssrc = ssrc;
  l.pt = 111;
  l.clock = 48000;
  l.active = active;
  l.sub = -1;
  return l;
}

static sfu_peer_sub_t *note(sfu_subs_t *s, sfu_subs_leg_t *leg, const char *mid,
                            const char *owner, const char *track, uint32_t ssrc, int active,
                            int plays) {
  sfu_subs_line_t l = line(mid, owner, track, ssrc, active);
  return sfu_subs_note(s, leg, &l, plays);
}

static int index_of(sfu_subs_t *s, const sfu_peer_sub_t *u) { return (int)(u - s->v.items); }

/* What the owner sees through the leg (by SSRC). */
static sfu_peer_sub_t *by_ssrc(sfu_subs_t *s, sfu_subs_leg_t *leg, uint32_t ssrc) {
  const sfu_subs_line_t *l = sfu_subs_line_by_ssrc(leg, ssrc);
  return l ? sfu_subs_get(s, l->sub) : NULL;
}

typedef struct {
  sfu_peer_sub_t *told[8];
  int n;
} told_t;

static int tell(void *arg, sfu_peer_sub_t *sub) {
  told_t *t = arg;
  t->told[t->n++] = sub;
  return 0;
}

static void one_leg_one_subscription_per_mline(void **state) {
  sfu_subs_t s = {0};
  sfu_subs_leg_t leg = {0};
  sfu_peer_sub_t *a = note(&s, &leg, "s0", "PA_a", "TR_a", 100, 1, 1);
  assert_non_null(a);
  assert_true(a->active);
  assert_string_equal(a->mid, "s0");
  a->user = &s;
  sfu_peer_sub_t *b = note(&s, &leg, "s1", "PA_b", "TR_b", 200, 1, 1);
  assert_non_null(b);
  assert_int_equal(s.v.n, 2);
  assert_ptr_equal(by_ssrc(&s, &leg, 100), &s.v.items[0]);
  assert_ptr_equal(by_ssrc(&s, &leg, 200), &s.v.items[1]);
  assert_null(by_ssrc(&s, &leg, 300));
  /* unchanged: nothing to tell */
  assert_null(note(&s, &leg, "s1", "PA_b", "TR_b", 200, 1, 1));
  /* made inactive, then active again: the same subscription */
  a = note(&s, &leg, "s0", "", "", 0, 0, 1);
  assert_non_null(a);
  assert_false(a->active);
  assert_null(by_ssrc(&s, &leg, 100));
  a = note(&s, &leg, "s0", "PA_a", "TR_a", 101, 1, 1);
  assert_int_equal(index_of(&s, a), 0);
  assert_ptr_equal(a->user, &s);
  assert_int_equal(a->ssrc, 101);
  /* another m-line of the same track: its own subscription */
  sfu_peer_sub_t *c = note(&s, &leg, "s2", "PA_a", "TR_a", 102, 1, 1);
  assert_int_equal(index_of(&s, c), 2);
  /* an inactive m-line never seen: nothing */
  assert_null(note(&s, &leg, "s9", "", "", 0, 0, 1));
  sfu_subs_release(&s, &leg);
  sfu_subs_free(&s);
}

/* A move: the new leg maps the tracks the old one plays onto the same
 * subscriptions, says nothing until it plays, then tells the owner only
 * what is new. */
static void a_move_keeps_the_subscriptions(void **state) {
  sfu_subs_t s = {0};
  sfu_subs_leg_t old = {0}, next = {0};
  told_t t = {0};
  note(&s, &old, "s0", "PA_a", "TR_a", 100, 1, 1)->user = (void *)1;
  note(&s, &old, "s1", "PA_b", "TR_b", 200, 1, 1)->user = (void *)2;
  /* the new node orders them its own way, with its own SSRCs */
  assert_null(note(&s, &next, "s0", "PA_b", "TR_b", 9200, 1, 0));
  assert_null(note(&s, &next, "s1", "PA_a", "TR_a", 9100, 1, 0));
  assert_null(note(&s, &next, "s2", "PA_c", "TR_c", 9300, 1, 0)); /* joined meanwhile */
  assert_int_equal(s.v.n, 3);
  assert_ptr_equal(by_ssrc(&s, &next, 9100)->user, (void *)1);
  assert_ptr_equal(by_ssrc(&s, &next, 9200)->user, (void *)2);
  assert_false(by_ssrc(&s, &next, 9300)->active); /* not told yet */
  /* the old leg's fields until the switch */
  assert_int_equal(s.v.items[0].ssrc, 100);
  assert_string_equal(s.v.items[0].mid, "s0");
  sfu_subs_release(&s, &old);
  sfu_subs_play(&s, &next, tell, &t);
  assert_int_equal(t.n, 1);
  assert_ptr_equal(t.told[0], &s.v.items[2]);
  assert_true(s.v.items[2].active);
  assert_int_equal(s.v.items[0].ssrc, 9100); /* the new leg's fields now */
  assert_string_equal(s.v.items[0].mid, "s1");
  assert_true(s.v.items[0].active && s.v.items[1].active);
  /* the new leg plays: its changes are told */
  sfu_peer_sub_t *u = note(&s, &next, "s0", "", "", 0, 0, 1);
  assert_ptr_equal(u, &s.v.items[1]);
  assert_false(u->active);
  sfu_subs_release(&s, &next);
  sfu_subs_free(&s);
}

/* Break-before-make: the new leg plays before its offer came. The owner's
 * subscriptions stay active and the offer maps onto them, untold. */
static void the_new_leg_brings_its_tracks_after_the_switch(void **state) {
  sfu_subs_t s = {0};
  sfu_subs_leg_t old = {0}, next = {0};
  told_t t = {0};
  note(&s, &old, "s0", "PA_a", "TR_a", 100, 1, 1);
  sfu_subs_release(&s, &old);
  sfu_subs_play(&s, &next, tell, &t);
  assert_int_equal(t.n, 0);
  assert_true(s.v.items[0].active);
  assert_null(note(&s, &next, "s4", "PA_a", "TR_a", 9100, 1, 1)); /* already active */
  assert_int_equal(s.v.n, 1);
  assert_int_equal(s.v.items[0].ssrc, 9100);
  assert_ptr_equal(by_ssrc(&s, &next, 9100), &s.v.items[0]);
  sfu_subs_release(&s, &next);
  sfu_subs_free(&s);
}

/* A track the new node took away during the move goes inactive at the
 * switch; one only the new leg had, dropped with an aborted move, maps
 * nothing afterwards. */
static void removed_during_the_move_and_aborted_moves(void **state) {
  sfu_subs_t s = {0};
  sfu_subs_leg_t old = {0}, next = {0}, again = {0};
  told_t t = {0};
  note(&s, &old, "s0", "PA_a", "TR_a", 100, 1, 1);
  note(&s, &next, "s0", "PA_a", "TR_a", 9100, 1, 0);
  assert_null(note(&s, &next, "s0", "", "", 0, 0, 0));
  assert_true(s.v.items[0].active); /* the old leg still plays it */
  sfu_subs_release(&s, &old);
  sfu_subs_play(&s, &next, tell, &t);
  assert_int_equal(t.n, 1);
  assert_false(t.told[0]->active);
  sfu_subs_release(&s, &next);

  sfu_subs_free(&s);
  memset(&s, 0, sizeof(s));
  memset(&old, 0, sizeof(old));
  memset(&next, 0, sizeof(next));
  note(&s, &old, "s0", "PA_a", "TR_a", 100, 1, 1);
  note(&s, &next, "s5", "PA_c", "TR_c", 9300, 1, 0);
  assert_int_equal(s.refs.items[1], 1);
  sfu_subs_release(&s, &next); /* migrate_abort */
  assert_int_equal(s.refs.items[1], 0);
  assert_int_equal(s.refs.items[0], 1);
  /* a later move: the abandoned one is not taken again, the live one is */
  note(&s, &again, "s0", "PA_c", "TR_c", 9400, 1, 0);
  note(&s, &again, "s1", "PA_a", "TR_a", 9500, 1, 0);
  assert_int_equal(s.v.n, 3);
  assert_int_equal(sfu_subs_line_by_ssrc(&again, 9500)->sub, 0);
  sfu_subs_release(&s, &again);
  sfu_subs_release(&s, &old);
  sfu_subs_free(&s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(one_leg_one_subscription_per_mline),
      cmocka_unit_test(a_move_keeps_the_subscriptions),
      cmocka_unit_test(the_new_leg_brings_its_tracks_after_the_switch),
      cmocka_unit_test(removed_during_the_move_and_aborted_moves),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
