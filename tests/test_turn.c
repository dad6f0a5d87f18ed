/*
 * test_turn.c -- TURN REST API credentials and the TURN settings' checks.
 *
 * The expected credentials were computed independently of this code, with
 * Python's standard library:
 *
 *   import base64, hashlib, hmac
 *   base64.b64encode(hmac.new(b"north-wind-turn-secret", b"1700086400:alice",
 *                             hashlib.sha1).digest())
 *   -> b'jj3Da71S/DXBVrUDd8AShS6RIu4='
 *   base64.b64encode(hmac.new(b"0123456789abcdef", b"1700000060:PA_x:y@z.example",
 *                             hashlib.sha1).digest())
 *   -> b'dc3Z2oKanGZfl5jWvMf9BHb/9ZQ='
 *
 * coturn (use-auth-secret) computes the same; tests/integration/test_turn.py
 * checks that against a running coturn.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "sfu/base/sfu.h"
#include "sfu/node/config.h"
#include "sfu/node/turn.h"

static void credential_matches_an_independent_hmac_sha1(void **state) {
  char user[128], cred[SFU_TURN_CREDENTIAL_LEN + 1];
  assert_int_equal(sfu_turn_username(user, sizeof(user), 1700086400, "alice"), 16);
  assert_string_equal(user, "1700086400:alice");
  assert_int_equal(sfu_turn_credential("north-wind-turn-secret", user, cred, sizeof(cred)),
                   SFU_TURN_CREDENTIAL_LEN);
  assert_string_equal(cred, "jj3Da71S/DXBVrUDd8AShS6RIu4=");
  /* an identity may hold ':' (the expiry ends at the first one) */
  assert_true(sfu_turn_username(user, sizeof(user), 1700000060, "PA_x:y@z.example") > 0);
  assert_int_equal(sfu_turn_credential("0123456789abcdef", user, cred, sizeof(cred)),
                   SFU_TURN_CREDENTIAL_LEN);
  assert_string_equal(cred, "dc3Z2oKanGZfl5jWvMf9BHb/9ZQ=");
}

static void short_buffers_are_refused(void **state) {
  char user[12], cred[SFU_TURN_CREDENTIAL_LEN];
  assert_int_equal(sfu_turn_username(user, sizeof(user), 1700086400, "alice"), SFU_E2BIG);
  assert_int_equal(sfu_turn_credential("north-wind-turn-secret", "1:a", cred, sizeof(cred)),
                   SFU_E2BIG);
  assert_int_equal(sfu_turn_credential(NULL, "1:a", cred, sizeof(cred)), SFU_EINVAL);
}

/* The welcome's ice_servers: every URL, a username that expires ttl
 * seconds from now, and its credential. */
static void ice_servers_list_every_url_with_fresh_credentials(void **state) {
  json_t *j = sfu_turn_ice_servers(" turn:192.0.2.7:3478?transport=udp , ,"
                                   "turn:192.0.2.7:3478?transport=tcp,turns:turn.example.com",
                                   "north-wind-turn-secret", 86400, "alice", 1700000000);
  assert_non_null(j);
  assert_int_equal(json_array_size(j), 1);
  json_t *s = json_array_get(j, 0);
  json_t *urls = json_object_get(s, "urls");
  assert_int_equal(json_array_size(urls), 3);
  assert_string_equal(json_string_value(json_array_get(urls, 0)),
                      "turn:192.0.2.7:3478?transport=udp");
  assert_string_equal(json_string_value(json_array_get(urls, 2)), "turns:turn.example.com");
  assert_string_equal(json_string_value(json_object_get(s, "username")), "1700086400:alice");
  assert_string_equal(json_string_value(json_object_get(s, "credential")),
                      "jj3Da71S/DXBVrUDd8AShS6RIu4=");
  json_decref(j);
  /* TURN not configured: nothing */
  assert_null(sfu_turn_ice_servers("", "north-wind-turn-secret", 86400, "alice", 1700000000));
  assert_null(sfu_turn_ice_servers(" , ", "north-wind-turn-secret", 86400, "alice", 1700000000));
}

static void settings_are_checked_with_clear_reasons(void **state) {
  char err[256];
  const char *secret = "0123456789abcdef";
  assert_int_equal(sfu_turn_check("", "", err, sizeof(err)), 0);
  assert_int_equal(sfu_turn_check("turn:turn.example.com:3478?transport=udp,"
                                  "turn:turn.example.com:3478?transport=tcp,"
                                  "turns:turn.example.com:443?transport=tcp",
                                  secret, err, sizeof(err)),
                   0);
  assert_int_equal(sfu_turn_check("turn:192.0.2.1, turns:[2001:db8::1]:5349", secret, err,
                                  sizeof(err)),
                   0);

  static const struct {
    const char *urls, *secret, *why;
  } bad[] = {
      {"stun:stun.example.com:3478", "0123456789abcdef", "must start with turn: or turns:"},
      {"https://turn.example.com", "0123456789abcdef", "must start with turn: or turns:"},
      {"turn::3478", "0123456789abcdef", "no host"},
      {"turn:turn.example.com:0", "0123456789abcdef", "port must be 1..65535"},
      {"turn:turn.example.com:65536", "0123456789abcdef", "port must be 1..65535"},
      {"turn:turn.example.com:3478?transport=sctp", "0123456789abcdef", "only ?transport="},
      {"turns:turn.example.com:443?transport=udp", "0123456789abcdef", "runs over TCP"},
      {"turn:[2001:db8::1:3478", "0123456789abcdef", "bad IPv6 address"},
      {"turn:turn.example.com", "", "turn_secret of at least 16 bytes"},
      {"turn:turn.example.com", "too-short", "turn_secret of at least 16 bytes"},
      {"turn:a,turn:b,turn:c,turn:d,turn:e,turn:f,turn:g,turn:h,turn:i", "0123456789abcdef",
       "more than 8 URLs"},
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    err[0] = '\0';
    if (sfu_turn_check(bad[i].urls, bad[i].secret, err, sizeof(err)) != -1)
      fail_msg("accepted turn_urls '%s'", bad[i].urls);
    if (!strstr(err, bad[i].why))
      fail_msg("'%s': reason '%s', want '%s'", bad[i].urls, err, bad[i].why);
  }
}

/* sfud's settings: off by default, a day of validity, and the checks run
 * by sfu_config_finish(). */
static void sfud_settings_default_to_no_turn_and_refuse_a_short_secret(void **state) {
  sfu_config_t c;
  char err[256];
  sfu_config_defaults(&c);
  assert_string_equal(c.turn_urls, "");
  assert_int_equal(c.turn_ttl_s, 86400);
  assert_int_equal(sfu_config_finish(&c, err, sizeof(err)), 0);

  sfu_config_defaults(&c);
  assert_int_equal(sfu_config_set(&c, "turn_urls", "turn:192.0.2.7:3478", err, sizeof(err)), 0);
  assert_int_equal(sfu_config_finish(&c, err, sizeof(err)), -1);
  assert_non_null(strstr(err, "turn_secret"));
  assert_int_equal(sfu_config_set(&c, "turn_secret", "0123456789abcdef", err, sizeof(err)), 0);
  assert_int_equal(sfu_config_finish(&c, err, sizeof(err)), 0);
  assert_int_equal(sfu_config_set(&c, "turn_ttl_s", "59", err, sizeof(err)), -1);
  assert_int_equal(sfu_config_set(&c, "turn_ttl_s", "3600", err, sizeof(err)), 0);
  assert_int_equal(c.turn_ttl_s, 3600);
  assert_int_equal(sfu_config_set(&c, "turn_urls", "stun:192.0.2.7", err, sizeof(err)), 0);
  assert_int_equal(sfu_config_finish(&c, err, sizeof(err)), -1);
  assert_non_null(strstr(err, "must start with turn: or turns:"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(credential_matches_an_independent_hmac_sha1),
      cmocka_unit_test(short_buffers_are_refused),
      cmocka_unit_test(ice_servers_list_every_url_with_fresh_credentials),
      cmocka_unit_test(settings_are_checked_with_clear_reasons),
      cmocka_unit_test(sfud_settings_default_to_no_turn_and_refuse_a_short_secret),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
