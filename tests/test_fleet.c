/*
 * test_fleet.c -- the pure pieces of the fleet: etcd's wire encoding
 * (etcd.c) and the reading of a watch answer (sfu_fleet_read_watch). The
 * fleet against a real etcd is tests/integration/test_fleet.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sfu/node/etcd.h"
#include "sfu/node/fleet.h"

static char *decoded(const json_t *s) {
  char *out;
  size_t len;
  assert_int_equal(sfu_etcd_decode(s, &out, &len), 0);
  assert_int_equal(strlen(out), len);
  return out;
}

static void bytes_are_base64_strings_and_decode_back(void **state) {
  (void)state;
  const char *samples[] = {"", "a", "ab", "abc", "/sfu/rooms/rm_0123", "{\"x\":1}"};
  for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
    json_t *s = sfu_etcd_str(samples[i]);
    char *back = decoded(s);
    assert_string_equal(back, samples[i]);
    free(back);
    json_decref(s);
  }
  json_t *s = sfu_etcd_str("/sfu/nodes/a");
  assert_string_equal(json_string_value(s), "L3NmdS9ub2Rlcy9h"); /* as etcd writes it */
  json_decref(s);
}

static void decode_refuses_what_is_not_base64(void **state) {
  (void)state;
  char *out;
  size_t len;
  const char *bad[] = {"abc", "a!==", "####", "/sfu\n\n\n\n", "ab=c", "a===", " abc"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    json_t *s = json_string(bad[i]);
    assert_int_equal(sfu_etcd_decode(s, &out, &len), -1);
    json_decref(s);
  }
  json_t *n = json_integer(5);
  assert_int_equal(sfu_etcd_decode(n, &out, &len), -1);
  assert_int_equal(sfu_etcd_decode(NULL, &out, &len), -1);
  json_decref(n);
}

static void prefix_end_is_the_next_key_after_every_key_of_the_prefix(void **state) {
  (void)state;
  json_t *e = sfu_etcd_prefix_end("/sfu/rooms/");
  char *end = decoded(e);
  assert_string_equal(end, "/sfu/rooms0"); /* '/' + 1 */
  free(end);
  json_decref(e);
  e = sfu_etcd_prefix_end("a\xff\xff"); /* 0xff cannot grow: the byte before does */
  end = decoded(e);
  assert_string_equal(end, "b");
  free(end);
  json_decref(e);
}

static void values_parse_as_json_and_integers_come_as_strings(void **state) {
  (void)state;
  json_t *kv = json_pack("{s:o, s:o}", "key", sfu_etcd_str("k"), "value",
                         sfu_etcd_str("{\"node_id\":\"a\"}"));
  json_t *v = sfu_etcd_kv_json(kv);
  assert_string_equal(json_string_value(json_object_get(v, "node_id")), "a");
  json_decref(v);
  json_object_del(kv, "value"); /* an empty value is left out */
  assert_null(sfu_etcd_kv_json(kv));
  json_decref(kv);
  json_t *i = json_string("7587899401447719685");
  assert_true(sfu_etcd_int(i) == INT64_C(7587899401447719685));
  json_decref(i);
  i = json_integer(42);
  assert_int_equal(sfu_etcd_int(i), 42);
  json_decref(i);
  assert_int_equal(sfu_etcd_int(NULL), 0);
}

/* --- watch answers ------------------------------------------------------------------ */

typedef struct {
  char lost[8][64];
  int nlost;
  char back[8][32];
  int nback;
} seen_t;

static void on_lost(void *arg, const char *room_id, const char *name, const char *node) {
  seen_t *s = arg;
  snprintf(s->lost[s->nlost++], 64, "%s/%s/%s", room_id, name, node);
}

static void on_back(void *arg, const char *room_id) {
  seen_t *s = arg;
  snprintf(s->back[s->nback++], 32, "%s", room_id);
}

static const sfu_fleet_watch_cbs_t cbs = {on_lost, on_back};

static json_t *event(const char *type, const char *key, json_t *prev) {
  json_t *ev = json_pack("{s:{s:o}}", "kv", "key", sfu_etcd_str(key));
  if (type) json_object_set_new(ev, "type", json_string(type));
  if (prev) {
    char *v = json_dumps(prev, JSON_COMPACT);
    json_object_set_new(ev, "prev_kv", json_pack("{s:o, s:o}", "key", sfu_etcd_str(key),
                                                 "value", sfu_etcd_str(v)));
    free(v);
    json_decref(prev);
  }
  return ev;
}

static json_t *answer(int64_t rev, json_t *events) {
  char r[24];
  snprintf(r, sizeof(r), "%lld", (long long)rev);
  return json_pack("{s:{s:{s:s}, s:o}}", "result", "header", "revision", r, "events", events);
}

static json_t *room(const char *id, const char *name, const char *node) {
  return json_pack("{s:s, s:s, s:s}", "room_id", id, "name", name, "node_id", node);
}

static void a_dead_nodes_rooms_are_lost_with_it(void **state) {
  (void)state;
  seen_t s = {0};
  int64_t compacted;
  json_t *msg = answer(157, json_pack("[o, o, o, o]",
      event("DELETE", "/sfu/nodes/b", json_pack("{s:s}", "node_id", "b")),
      event("DELETE", "/sfu/rooms/rm_1", room("rm_1", "standup", "b")),
      event("DELETE", "/sfu/names/standup", room("rm_1", "standup", "b")),
      event("DELETE", "/sfu/rooms/rm_2", room("rm_2", "", "c")))); /* c's, ended alone */
  assert_int_equal(sfu_fleet_read_watch("/sfu", msg, &cbs, &s, &compacted), 157);
  assert_int_equal(compacted, 0);
  assert_int_equal(s.nlost, 1);
  assert_string_equal(s.lost[0], "rm_1/standup/b");
  json_decref(msg);
}

static void a_node_that_left_cleanly_loses_nothing(void **state) {
  (void)state;
  seen_t s = {0};
  int64_t compacted;
  json_t *msg = answer(9, json_pack("[o, o]",
      event("DELETE", "/sfu/nodes/b", json_pack("{s:s, s:b}", "node_id", "b", "leaving", 1)),
      event("DELETE", "/sfu/rooms/rm_1", room("rm_1", "", "b"))));
  sfu_fleet_read_watch("/sfu", msg, &cbs, &s, &compacted);
  assert_int_equal(s.nlost, 0);
  json_decref(msg);
}

static void a_room_ended_by_its_live_node_is_not_lost(void **state) {
  (void)state;
  seen_t s = {0};
  int64_t compacted;
  json_t *msg = answer(9, json_pack("[o]", event("DELETE", "/sfu/rooms/rm_1", room("rm_1", "", "b"))));
  sfu_fleet_read_watch("/sfu", msg, &cbs, &s, &compacted);
  assert_int_equal(s.nlost, 0);
  json_decref(msg);
}

static void a_room_written_again_is_back_and_other_prefixes_are_ignored(void **state) {
  (void)state;
  seen_t s = {0};
  int64_t compacted;
  json_t *msg = answer(10, json_pack("[o, o, o, o]", event(NULL, "/sfu/rooms/rm_1", NULL),
                                     event(NULL, "/sfu/names/x", NULL),
                                     event(NULL, "/sfu2/rooms/rm_9", NULL),
                                     event("DELETE", "/other/nodes/b",
                                           json_pack("{s:s}", "node_id", "b"))));
  sfu_fleet_read_watch("/sfu", msg, &cbs, &s, &compacted);
  assert_int_equal(s.nback, 1);
  assert_string_equal(s.back[0], "rm_1");
  assert_int_equal(s.nlost, 0);
  json_decref(msg);
}

static void a_compacted_watch_says_from_where(void **state) {
  (void)state;
  seen_t s = {0};
  int64_t compacted;
  json_t *msg = json_pack("{s:{s:{s:s}, s:b, s:s}}", "result", "header", "revision", "200",
                          "canceled", 1, "compact_revision", "140");
  assert_int_equal(sfu_fleet_read_watch("/sfu", msg, &cbs, &s, &compacted), 200);
  assert_int_equal(compacted, 140);
  json_decref(msg);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(bytes_are_base64_strings_and_decode_back),
      cmocka_unit_test(decode_refuses_what_is_not_base64),
      cmocka_unit_test(prefix_end_is_the_next_key_after_every_key_of_the_prefix),
      cmocka_unit_test(values_parse_as_json_and_integers_come_as_strings),
      cmocka_unit_test(a_dead_nodes_rooms_are_lost_with_it),
      cmocka_unit_test(a_node_that_left_cleanly_loses_nothing),
      cmocka_unit_test(a_room_ended_by_its_live_node_is_not_lost),
      cmocka_unit_test(a_room_written_again_is_back_and_other_prefixes_are_ignored),
      cmocka_unit_test(a_compacted_watch_says_from_where),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
