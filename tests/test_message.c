/*
 * test_message.c -- shape checks of client signaling messages.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "signaling/message.h"

static int check(const char *text, sfu_msg_t *m, const char **code, const char **why) {
  json_t *j = json_loads(text, 0, NULL);
  int rv = sfu_msg_parse(j, m, code, why);
  json_decref(j); /* pointers in m are not used after this */
  return rv;
}

static void good_messages(void **state) {
  sfu_msg_t m;
  const char *code, *why;
  json_t *j = json_loads("{\"type\":\"join\",\"id\":1,\"v\":1,\"room\":\"r\",\"token\":\"t\"}", 0, NULL);
  assert_int_equal(sfu_msg_parse(j, &m, &code, &why), 0);
  assert_int_equal(m.type, SFU_MSG_JOIN);
  assert_string_equal(m.room, "r");
  assert_string_equal(m.token, "t");
  assert_int_equal(json_integer_value(m.id), 1);
  json_decref(j);
  j = json_loads("{\"type\":\"answer\",\"offer_id\":7,\"sdp\":\"v=0\"}", 0, NULL);
  assert_int_equal(sfu_msg_parse(j, &m, &code, &why), 0);
  assert_int_equal(m.type, SFU_MSG_ANSWER);
  assert_int_equal(m.offer_id, 7);
  assert_int_equal(m.sdp_len, 3);
  json_decref(j);
  j = json_loads("{\"type\":\"candidate\",\"candidate\":null}", 0, NULL);
  assert_int_equal(sfu_msg_parse(j, &m, &code, &why), 0);
  assert_null(m.candidate);
  json_decref(j);
  j = json_loads("{\"type\":\"mute\",\"id\":\"x\",\"muted\":true}", 0, NULL);
  assert_int_equal(sfu_msg_parse(j, &m, &code, &why), 0);
  assert_int_equal(m.muted, 1);
  assert_string_equal(json_string_value(m.id), "x");
  json_decref(j);
  j = json_loads("{\"type\":\"resume\",\"id\":1,\"v\":1,\"room\":\"r\","
                 "\"resume_token\":\"0123456789abcdef0123456789abcdef\"}", 0, NULL);
  assert_int_equal(sfu_msg_parse(j, &m, &code, &why), 0);
  assert_int_equal(m.type, SFU_MSG_RESUME);
  assert_string_equal(m.room, "r");
  assert_string_equal(m.token, "0123456789abcdef0123456789abcdef");
  json_decref(j);
  j = json_loads("{\"type\":\"offer\",\"sdp\":\"v=0\",\"sources\":{\"1\":\"camera\",\"2\":\"screen\"}}",
                 0, NULL);
  assert_int_equal(sfu_msg_parse(j, &m, &code, &why), 0);
  assert_true(json_is_object(m.sources));
  assert_string_equal(json_string_value(json_object_get(m.sources, "2")), "screen");
  json_decref(j);
  j = json_loads("{\"type\":\"offer\",\"sdp\":\"v=0\"}", 0, NULL);
  assert_int_equal(sfu_msg_parse(j, &m, &code, &why), 0);
  assert_null(m.sources);
  json_decref(j);
}

static void bad_messages_name_the_problem(void **state) {
  sfu_msg_t m;
  const char *code, *why;
  static const struct {
    const char *text, *code, *why_part;
  } cases[] = {
      {"[1]", "bad_message", "object"},
      {"{\"id\":1}", "bad_message", "type"},
      {"{\"type\":\"dance\"}", "bad_message", "unknown"},
      {"{\"type\":\"join\",\"room\":\"r\"}", "bad_message", "token"},
      {"{\"type\":\"join\",\"room\":\"r\",\"token\":\"t\",\"v\":2}", "bad_message", "version"},
      {"{\"type\":\"offer\",\"sdp\":5}", "bad_message", "sdp"},
      {"{\"type\":\"answer\",\"sdp\":\"v=0\"}", "bad_message", "offer_id"},
      {"{\"type\":\"candidate\",\"candidate\":\"c\"}", "bad_message", "object"},
      {"{\"type\":\"candidate\",\"candidate\":{}}", "bad_message", "candidate"},
      {"{\"type\":\"mute\",\"muted\":1}", "bad_message", "boolean"},
      {"{\"type\":\"ping\",\"id\":[1]}", "bad_message", "id"},
      {"{\"type\":\"resume\",\"room\":\"r\"}", "bad_message", "resume_token"},
      {"{\"type\":\"resume\",\"room\":\"r\",\"resume_token\":\"short\"}", "bad_message",
       "32-character"},
      {"{\"type\":\"offer\",\"sdp\":\"v=0\",\"sources\":[\"screen\"]}", "bad_message", "sources"},
      {"{\"type\":\"offer\",\"sdp\":\"v=0\",\"sources\":{\"1\":\"window\"}}", "bad_message",
       "\"screen\""},
      {"{\"type\":\"offer\",\"sdp\":\"v=0\",\"sources\":{\"1\":true}}", "bad_message", "source"},
      {"{\"type\":\"offer\",\"sdp\":\"v=0\",\"sources\":{\"\":\"screen\"}}", "bad_message", "mid"},
      {"{\"type\":\"offer\",\"sdp\":\"v=0\",\"sources\":{\"0123456789abcdef0123456789abcdef\":"
       "\"screen\"}}", "bad_message", "mid"},
      {"{\"type\":\"offer\",\"sdp\":\"v=0\",\"sources\":{\"1\":\"screen\",\"2\":\"screen\","
       "\"3\":\"screen\",\"4\":\"screen\",\"5\":\"screen\",\"6\":\"screen\",\"7\":\"screen\","
       "\"8\":\"screen\",\"9\":\"screen\"}}", "bad_message", "at most 8"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    assert_int_equal(check(cases[i].text, &m, &code, &why), -1);
    assert_string_equal(code, cases[i].code);
    assert_non_null(strstr(why, cases[i].why_part));
  }
  assert_int_equal(sfu_msg_parse(NULL, &m, &code, &why), -1); /* not JSON at all */
  /* jansson refuses \u0000 when parsing; a NUL can only come from code. */
  json_t *j = json_pack("{s:s, s:s#}", "type", "offer", "sdp", "a\0b", (size_t)3);
  assert_int_equal(sfu_msg_parse(j, &m, &code, &why), -1);
  assert_non_null(strstr(why, "NUL"));
  json_decref(j);
}

static void oversized_sdp_is_too_large(void **state) {
  sfu_msg_t m;
  const char *code, *why;
  static char big[SFU_MSG_MAX_SDP + 2];
  memset(big, 'a', SFU_MSG_MAX_SDP + 1);
  json_t *j = json_pack("{s:s, s:s}", "type", "offer", "sdp", big);
  assert_int_equal(sfu_msg_parse(j, &m, &code, &why), -1);
  assert_string_equal(code, "too_large");
  json_decref(j);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(good_messages),
      cmocka_unit_test(bad_messages_name_the_problem),
      cmocka_unit_test(oversized_sdp_is_too_large),
  };
  return cmocka_run_group_tests_name("message", tests, NULL, NULL);
}
