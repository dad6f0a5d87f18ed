/*
 * test_config.c -- defaults, file, environment and flags, and precedence.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "sfu/node/config.h"

static char path[64];

static void write_file(const char *text) {
  strcpy(path, "/tmp/sfu-test-config-XXXXXX");
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);
}

static void defaults_serve_a_newcomer(void **state) {
  sfu_config_t c;
  char err[256];
  sfu_config_defaults(&c);
  assert_string_equal(c.listen_host, "127.0.0.1");
  assert_int_equal(c.listen_port, 7880);
  assert_int_equal(c.api_key[0], '\0');
  assert_int_equal(sfu_config_finish(&c, err, sizeof(err)), 0);
  /* Keys are generated, random, and flagged so sfud prints them. */
  assert_true(c.api_key_generated);
  assert_true(c.token_secret_generated);
  assert_int_equal(strncmp(c.api_key, "dev-", 4), 0);
  assert_int_equal(strlen(c.token_secret), 64);
  sfu_config_t d;
  sfu_config_defaults(&d);
  assert_int_equal(sfu_config_finish(&d, err, sizeof(err)), 0);
  assert_string_not_equal(c.api_key, d.api_key);
}

static void file_env_flags_precedence(void **state) {
  sfu_config_t c;
  char err[256];
  const char *info;
  write_file("# node settings\n"
             "listen_port = 9000\n"
             "max_rooms=7\n"
             "  api_key = \"from-file\"  \n"
             "log_level = warn\n");
  setenv("SFU_MAX_ROOMS", "8", 1);
  setenv("SFU_API_KEY", "from-env", 1);
  char *argv[] = {"sfud", "--api-key", "from-flag", "--config", path, NULL};
  sfu_config_defaults(&c);
  assert_int_equal(sfu_config_parse_args(&c, 5, argv, &info, err, sizeof(err)), 0);
  assert_int_equal(c.listen_port, 9000);      /* file only */
  assert_int_equal(c.max_rooms, 8);           /* env over file */
  assert_string_equal(c.api_key, "from-flag"); /* flag over env, whatever the order */
  assert_string_equal(c.log_level, "warn");
  assert_int_equal(sfu_config_finish(&c, err, sizeof(err)), 0);
  assert_false(c.api_key_generated);
  unsetenv("SFU_MAX_ROOMS");
  unsetenv("SFU_API_KEY");
  unlink(path);
}

static void flag_forms(void **state) {
  sfu_config_t c;
  char err[256];
  const char *info;
  char *argv[] = {"sfud", "--listen-port=0", "--heartbeat-ms", "200", NULL};
  sfu_config_defaults(&c);
  assert_int_equal(sfu_config_parse_args(&c, 4, argv, &info, err, sizeof(err)), 0);
  assert_int_equal(c.listen_port, 0);
  assert_int_equal(c.heartbeat_ms, 200);
  char *help[] = {"sfud", "--bogus", "--help", NULL};
  assert_int_equal(sfu_config_parse_args(&c, 3, help, &info, err, sizeof(err)), 1);
  assert_string_equal(info, "help");
  char *ver[] = {"sfud", "--version", NULL};
  assert_int_equal(sfu_config_parse_args(&c, 2, ver, &info, err, sizeof(err)), 1);
  assert_string_equal(info, "version");
}

static void bad_values_are_explained(void **state) {
  sfu_config_t c;
  char err[256];
  const char *info;
  sfu_config_defaults(&c);
  char *a1[] = {"sfud", "--listen-port", "70000", NULL};
  assert_int_equal(sfu_config_parse_args(&c, 3, a1, &info, err, sizeof(err)), -1);
  assert_non_null(strstr(err, "listen_port"));
  char *a2[] = {"sfud", "--max-rooms", "12x", NULL};
  assert_int_equal(sfu_config_parse_args(&c, 3, a2, &info, err, sizeof(err)), -1);
  assert_non_null(strstr(err, "max_rooms"));
  char *a3[] = {"sfud", "--no-such-thing", "1", NULL};
  assert_int_equal(sfu_config_parse_args(&c, 3, a3, &info, err, sizeof(err)), -1);
  assert_non_null(strstr(err, "unknown option"));
  char *a4[] = {"sfud", "--api-key", NULL};
  assert_int_equal(sfu_config_parse_args(&c, 2, a4, &info, err, sizeof(err)), -1);
  assert_non_null(strstr(err, "needs a value"));
  char *a5[] = {"sfud", "stray", NULL};
  assert_int_equal(sfu_config_parse_args(&c, 2, a5, &info, err, sizeof(err)), -1);
  char long_key[300];
  memset(long_key, 'k', sizeof(long_key) - 1);
  long_key[sizeof(long_key) - 1] = '\0';
  assert_int_equal(sfu_config_set(&c, "api_key", long_key, err, sizeof(err)), -1);
  assert_non_null(strstr(err, "longer than"));

  write_file("listen_port = 1\nthis line has no equals\n");
  assert_int_equal(sfu_config_load_file(&c, path, err, sizeof(err)), -1);
  assert_non_null(strstr(err, ":2:"));
  unlink(path);
  assert_int_equal(sfu_config_load_file(&c, "/nonexistent/sfu.conf", err, sizeof(err)), -1);

  setenv("SFU_LISTEN_PORT", "-5", 1);
  assert_int_equal(sfu_config_load_env(&c, err, sizeof(err)), -1);
  unsetenv("SFU_LISTEN_PORT");

  sfu_config_defaults(&c);
  strcpy(c.log_level, "loud");
  assert_int_equal(sfu_config_finish(&c, err, sizeof(err)), -1);
  sfu_config_defaults(&c);
  strcpy(c.token_secret, "too-short");
  assert_int_equal(sfu_config_finish(&c, err, sizeof(err)), -1);
  assert_non_null(strstr(err, "token_secret"));
  sfu_config_defaults(&c);
  c.heartbeat_timeout_ms = c.heartbeat_ms;
  assert_int_equal(sfu_config_finish(&c, err, sizeof(err)), -1);
}

static void usage_lists_every_setting(void **state) {
  char buf[8192];
  sfu_config_usage(buf, sizeof(buf));
  assert_non_null(strstr(buf, "--listen-port"));
  assert_non_null(strstr(buf, "--token-secret"));
  assert_non_null(strstr(buf, "--shutdown-grace-ms"));
  assert_non_null(strstr(buf, "SFU_<SETTING>"));
}

static void short_api_key_is_refused_at_finish(void **state) {
  sfu_config_t c;
  char err[256];
  (void)state;
  sfu_config_defaults(&c);
  strcpy(c.api_key, "k");
  assert_int_equal(sfu_config_finish(&c, err, sizeof(err)), -1);
  assert_non_null(strstr(err, "api_key must be at least"));
  sfu_config_defaults(&c);
  memset(c.api_key, 'k', SFU_CONFIG_MIN_API_KEY - 1);
  c.api_key[SFU_CONFIG_MIN_API_KEY - 1] = '\0';
  assert_int_equal(sfu_config_finish(&c, err, sizeof(err)), -1);
  sfu_config_defaults(&c);
  strcpy(c.api_key, "test-key"); /* what the test harness passes */
  assert_int_equal(sfu_config_finish(&c, err, sizeof(err)), 0);
  assert_false(c.api_key_generated);
  sfu_config_defaults(&c); /* unset: generated, and long enough */
  assert_int_equal(sfu_config_finish(&c, err, sizeof(err)), 0);
  assert_true(strlen(c.api_key) >= SFU_CONFIG_MIN_API_KEY);
}

/* TLS settings go in pairs and with the scheme they serve. */
static void tls_settings_checked_at_finish(void **state) {
  sfu_config_t c;
  char err[256];
  (void)state;
  sfu_config_defaults(&c);
  strcpy(c.tls_cert_file, "/x/cert.pem");
  assert_int_equal(sfu_config_finish(&c, err, sizeof(err)), -1);
  assert_non_null(strstr(err, "tls_cert_file and tls_key_file go together"));
  sfu_config_defaults(&c);
  strcpy(c.tls_key_file, "/x/key.pem");
  assert_int_equal(sfu_config_finish(&c, err, sizeof(err)), -1);
  strcpy(c.tls_cert_file, "/x/cert.pem");
  assert_int_equal(sfu_config_finish(&c, err, sizeof(err)), 0); /* files are read later */

  sfu_config_defaults(&c);
  strcpy(c.webhook_url, "ftp://example.com/hook");
  strcpy(c.webhook_secret, "0123456789abcdef");
  assert_int_equal(sfu_config_finish(&c, err, sizeof(err)), -1);
  assert_non_null(strstr(err, "not an http:// or https:// URL"));
  strcpy(c.webhook_url, "http://example.com/hook");
  strcpy(c.webhook_tls_ca_file, "/x/ca.pem");
  assert_int_equal(sfu_config_finish(&c, err, sizeof(err)), -1);
  assert_non_null(strstr(err, "need an https:// webhook_url"));
  strcpy(c.webhook_url, "https://example.com/hook");
  assert_int_equal(sfu_config_finish(&c, err, sizeof(err)), 0);
  sfu_config_defaults(&c);
  strcpy(c.webhook_tls_pin, "sha256//AAAA");
  assert_int_equal(sfu_config_finish(&c, err, sizeof(err)), -1); /* no webhook at all */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(defaults_serve_a_newcomer),
      cmocka_unit_test(file_env_flags_precedence),
      cmocka_unit_test(flag_forms),
      cmocka_unit_test(bad_values_are_explained),
      cmocka_unit_test(usage_lists_every_setting),
      cmocka_unit_test(short_api_key_is_refused_at_finish),
      cmocka_unit_test(tls_settings_checked_at_finish),
  };
  return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
