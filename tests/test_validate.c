/*
 * test_validate.c -- control-plane request bodies: what is accepted, and
 * the status, code and field named for what is not.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sfu/node/validate.h"

static sfu_config_t cfg;

static int setup(void **state) {
  sfu_config_defaults(&cfg);
  cfg.max_participants = 50;
  cfg.max_body_bytes = 1024;
  return 0;
}

#define ROOM(body, rr, e) sfu_validate_room_create(body, strlen(body), &cfg, rr, e)
#define TOKEN(body, tr, e) sfu_validate_token_req(body, strlen(body), &cfg, tr, e)

static void room_create_accepts_full_and_empty(void **state) {
  sfu_room_req_t r;
  sfu_api_error_t e;
  assert_int_equal(ROOM("{\"name\":\"standup\",\"max_participants\":10,"
                        "\"empty_timeout_s\":30,\"metadata\":{\"guild\":42}}", &r, &e), 0);
  assert_string_equal(r.name, "standup");
  assert_int_equal(r.max_participants, 10);
  assert_int_equal(r.empty_timeout_s, 30);
  assert_int_equal(json_integer_value(json_object_get(r.metadata, "guild")), 42);
  sfu_room_req_free(&r);
  /* Empty body and {} take the node's defaults. */
  assert_int_equal(sfu_validate_room_create("", 0, &cfg, &r, &e), 0);
  assert_int_equal(r.max_participants, 50);
  assert_int_equal(r.empty_timeout_s, cfg.empty_timeout_s);
  assert_null(r.metadata);
  assert_int_equal(r.max_audio_streams, 0); /* everyone heard */
  assert_int_equal(ROOM("{}", &r, &e), 0);
  /* the loudest N speakers per listener: 0..the node's max_participants */
  assert_int_equal(ROOM("{\"max_audio_streams\":3}", &r, &e), 0);
  assert_int_equal(r.max_audio_streams, 3);
  assert_int_equal(ROOM("{\"max_audio_streams\":51}", &r, &e), 400);
  assert_non_null(strstr(e.message, "max_audio_streams"));
  assert_int_equal(ROOM("{\"max_audio_streams\":-1}", &r, &e), 400);
}

static void room_create_errors_name_the_field(void **state) {
  sfu_room_req_t r;
  sfu_api_error_t e;
  assert_int_equal(ROOM("{\"name\":", &r, &e), 400);
  assert_string_equal(e.code, "invalid_json");
  assert_int_equal(ROOM("[1,2]", &r, &e), 400);
  assert_string_equal(e.code, "invalid_json");
  assert_int_equal(ROOM("{\"max_participants\":51}", &r, &e), 400);
  assert_string_equal(e.code, "invalid_field");
  assert_non_null(strstr(e.message, "max_participants"));
  assert_int_equal(ROOM("{\"max_participants\":\"5\"}", &r, &e), 400);
  assert_int_equal(ROOM("{\"max_participants\":0}", &r, &e), 400);
  assert_int_equal(ROOM("{\"empty_timeout_s\":1.5}", &r, &e), 400);
  assert_int_equal(ROOM("{\"name\":\"has space\"}", &r, &e), 400);
  assert_non_null(strstr(e.message, "name"));
  assert_int_equal(ROOM("{\"name\":\"\"}", &r, &e), 400);
  assert_int_equal(ROOM("{\"max_participant\":5}", &r, &e), 400);
  assert_string_equal(e.code, "unknown_field");
  assert_non_null(strstr(e.message, "max_participant"));
  assert_int_equal(ROOM("{\"name\":\"a\",\"name\":\"b\"}", &r, &e), 400);
  /* Metadata is bounded even when the body limit is larger. */
  cfg.max_body_bytes = 1 << 20;
  char *big = malloc(40000);
  strcpy(big, "{\"metadata\":\"");
  memset(big + 13, 'm', 20000);
  strcpy(big + 13 + 20000, "\"}");
  assert_int_equal(ROOM(big, &r, &e), 400);
  assert_non_null(strstr(e.message, "metadata"));
  cfg.max_body_bytes = 1024;
  assert_int_equal(ROOM(big, &r, &e), 413);
  assert_string_equal(e.code, "payload_too_large");
  free(big);
}

static void token_request(void **state) {
  sfu_token_req_t t;
  sfu_api_error_t e;
  assert_int_equal(TOKEN("{\"identity\":\"alice\"}", &t, &e), 0);
  assert_string_equal(t.identity, "alice");
  assert_int_equal(t.ttl_s, 3600);
  assert_int_equal(t.grants, SFU_GRANT_PUBLISH | SFU_GRANT_SUBSCRIBE);
  assert_int_equal(TOKEN("{\"identity\":\"bob\",\"name\":\"Bob \\u00e9\",\"ttl_s\":60,"
                         "\"grants\":{\"publish\":false,\"admin\":true}}", &t, &e), 0);
  assert_string_equal(t.name, "Bob \xc3\xa9");
  assert_int_equal(t.ttl_s, 60);
  assert_int_equal(t.grants, SFU_GRANT_SUBSCRIBE | SFU_GRANT_ADMIN);

  assert_int_equal(TOKEN("{}", &t, &e), 400);
  assert_string_equal(e.code, "missing_field");
  assert_int_equal(TOKEN("{\"identity\":\"a/b\"}", &t, &e), 400);
  assert_int_equal(TOKEN("{\"identity\":\"a\",\"ttl_s\":0}", &t, &e), 400);
  assert_int_equal(TOKEN("{\"identity\":\"a\",\"ttl_s\":86401}", &t, &e), 400);
  assert_int_equal(TOKEN("{\"identity\":\"a\",\"grants\":{\"fly\":true}}", &t, &e), 400);
  assert_string_equal(e.code, "unknown_field");
  assert_int_equal(TOKEN("{\"identity\":\"a\",\"grants\":{\"publish\":1}}", &t, &e), 400);
  assert_int_equal(TOKEN("{\"identity\":\"a\",\"grants\":[]}", &t, &e), 400);
  assert_int_equal(TOKEN("{\"identity\":\"a\\u0000b\"}", &t, &e), 400);
  char name[200];
  snprintf(name, sizeof(name), "{\"identity\":\"a\",\"name\":\"%0150d\"}", 0);
  assert_int_equal(TOKEN(name, &t, &e), 400);
}

static void drain_body(void **state) {
  sfu_api_error_t e;
  int d = -1, m = -1;
  char node[64];
  assert_int_equal(sfu_validate_drain("", 0, &cfg, &d, &m, &e), 0);
  assert_int_equal(d, 1);
  assert_int_equal(m, 0);
  assert_int_equal(sfu_validate_drain("{\"draining\":false}", 18, &cfg, &d, &m, &e), 0);
  assert_int_equal(d, 0);
  assert_int_equal(sfu_validate_drain("{\"draining\":\"no\"}", 17, &cfg, &d, &m, &e), 400);
  assert_int_equal(sfu_validate_drain("{\"migrate\":true}", 16, &cfg, &d, &m, &e), 0);
  assert_int_equal(d, 1);
  assert_int_equal(m, 1);
  assert_int_equal(sfu_validate_drain("{\"draining\":false,\"migrate\":true}", 33, &cfg, &d, &m, &e), 400);
  assert_int_equal(sfu_validate_migrate("", 0, &cfg, node, &e), 0);
  assert_string_equal(node, "");
  assert_int_equal(sfu_validate_migrate("{\"node\":\"b\"}", 12, &cfg, node, &e), 0);
  assert_string_equal(node, "b");
  assert_int_equal(sfu_validate_migrate("{\"node\":1}", 10, &cfg, node, &e), 400);
  assert_int_equal(sfu_validate_migrate("{\"to\":\"b\"}", 10, &cfg, node, &e), 400);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(room_create_accepts_full_and_empty, setup),
      cmocka_unit_test_setup(room_create_errors_name_the_field, setup),
      cmocka_unit_test_setup(token_request, setup),
      cmocka_unit_test_setup(drain_body, setup),
  };
  return cmocka_run_group_tests_name("validate", tests, NULL, NULL);
}
