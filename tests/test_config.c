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
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "sfu/node/config.h"
#include "sfu/node/confcheck.h"

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

/* rtc_addresses and rtc_announced_address are checked when sfud starts:
 * a wrong one stops sfud with a message naming it, instead of failing
 * every room at its first participant. */
static void rtc_addresses_of_both_families_checked_at_finish(void **state) {
  static const struct {
    const char *addresses, *announce; /* announce NULL: none */
    const char *err;                  /* NULL: accepted; else in the message */
  } t[] = {
      {"127.0.0.1", NULL, NULL},
      {"::1", NULL, NULL},
      {"127.0.0.1,::1", NULL, NULL},
      {"192.0.2.10, 2001:db8::10", "203.0.113.5", NULL},
      {"2001:db8::10", "2001:db8:ffff::10", NULL},
      {"10.0.0.1,10.0.0.2,fd00::1,fd00::2", NULL, NULL},
      {"", NULL, "rtc_addresses is empty"},
      {" , ", NULL, "rtc_addresses is empty"},
      {"localhost", NULL, "'localhost' is not an IPv4 or IPv6 address"},
      {"127.0.0.1,::1,bogus", NULL, "'bogus' is not an IPv4 or IPv6 address"},
      {"300.1.2.3", NULL, "not an IPv4 or IPv6 address"},
      {"[::1]", NULL, "without them"},
      {"fe80::1%eth0", NULL, "has a scope"},
      {"fe80::1", NULL, "link-local"},
      {"0.0.0.0", NULL, "unspecified"},
      {"::", NULL, "unspecified"},
      {"224.0.0.1", NULL, "multicast"},
      {"ff02::1", NULL, "multicast"},
      {"::ffff:127.0.0.1", NULL, "IPv4-mapped"},
      {"::1,0:0::1", NULL, "same address as '::1'"},
      {"10.0.0.1,10.0.0.2,10.0.0.3,10.0.0.4,10.0.0.5", NULL, "more than 4 addresses"},
      {"127.0.0.1", "public", "rtc_announced_address: 'public' is not"},
      {"::1", "203.0.113.5", "'203.0.113.5' is IPv4 but no rtc_addresses entry is"},
      {"127.0.0.1", "2001:db8::1", "'2001:db8::1' is IPv6 but no rtc_addresses entry is"},
      {"127.0.0.1", "0.0.0.0", "rtc_announced_address: '0.0.0.0' is unspecified"},
  };
  sfu_config_t c;
  char err[256];
  (void)state;
  for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
    sfu_config_defaults(&c);
    strcpy(c.rtc_addresses, t[i].addresses);
    if (t[i].announce) strcpy(c.rtc_announced_address, t[i].announce);
    err[0] = '\0';
    int rv = sfu_config_finish(&c, err, sizeof(err));
    if (!t[i].err) {
      if (rv != 0) fail_msg("'%s' refused: %s", t[i].addresses, err);
    } else {
      assert_int_equal(rv, -1);
      if (!strstr(err, t[i].err))
        fail_msg("'%s': wanted '%s', got '%s'", t[i].addresses, t[i].err, err);
    }
  }
  /* The same checks from the command line, and the default. */
  const char *info;
  char *argv[] = {"sfud", "--rtc-addresses", "127.0.0.1,[::1]", NULL};
  sfu_config_defaults(&c);
  assert_string_equal(c.rtc_addresses, "127.0.0.1");
  assert_int_equal(sfu_config_parse_args(&c, 3, argv, &info, err, sizeof(err)), 0);
  assert_int_equal(sfu_config_finish(&c, err, sizeof(err)), -1);
  assert_non_null(strstr(err, "rtc_addresses: '[::1]'"));
}

/* sfud binds each address once at startup: one that no interface of the
 * host has is refused with the reason. */
static void rtc_addresses_bound_at_startup(void **state) {
  sfu_config_t c;
  char err[256];
  (void)state;
  sfu_config_defaults(&c);
  assert_int_equal(sfu_config_check_rtc_bind(&c, err, sizeof(err)), 0);
  strcpy(c.rtc_addresses, "127.0.0.1,192.0.2.77"); /* TEST-NET-1: on no interface */
  assert_int_equal(sfu_config_check_rtc_bind(&c, err, sizeof(err)), -1);
  assert_non_null(strstr(err, "'192.0.2.77'"));
  assert_non_null(strstr(err, "no interface of this host has that address"));
  strcpy(c.rtc_addresses, "nonsense");
  assert_int_equal(sfu_config_check_rtc_bind(&c, err, sizeof(err)), -1);
  assert_non_null(strstr(err, "not an IPv4 or IPv6 address"));
  /* ::1 where the host has IPv6 (these machines do; a host without it gets
   * the reason instead). */
  strcpy(c.rtc_addresses, "127.0.0.1,::1");
  if (sfu_config_check_rtc_bind(&c, err, sizeof(err)) != 0)
    assert_non_null(strstr(err, "'::1'"));
}

/* --print-config writes a file that reads back to the same settings:
 * values with blanks or quotes kept, an empty value kept empty, defaults
 * commented out. */
static void printed_config_reads_back_the_same(void **state) {
  sfu_config_t c, back;
  char err[256], out[64];
  (void)state;
  sfu_config_defaults(&c);
  strcpy(c.data_dir, "/var/lib/sfu");
  strcpy(c.listen_host, "0.0.0.0");
  c.listen_port = 443;
  strcpy(c.region, " eu west ");
  strcpy(c.node_id, "\"quoted\"");
  strcpy(c.rtc_addresses, "");
  strcpy(c.webhook_secret, "a = b # not a comment");
  c.zygote = 0;
  strcpy(out, "/tmp/sfu-test-printed-XXXXXX");
  int fd = mkstemp(out);
  assert_true(fd >= 0);
  FILE *f = fdopen(fd, "w");
  assert_int_equal(sfu_config_write(&c, f), 0);
  fclose(f);
  sfu_config_defaults(&back);
  assert_int_equal(sfu_config_load_file(&back, out, err, sizeof(err)), 0);
  assert_string_equal(back.data_dir, "/var/lib/sfu");
  assert_string_equal(back.listen_host, "0.0.0.0");
  assert_int_equal(back.listen_port, 443);
  assert_string_equal(back.region, " eu west ");
  assert_string_equal(back.node_id, "\"quoted\"");
  assert_string_equal(back.rtc_addresses, "");
  assert_string_equal(back.webhook_secret, "a = b # not a comment");
  assert_int_equal(back.zygote, 0);
  assert_int_equal(memcmp(&c, &back, sizeof(c)), 0);
  /* defaults are there, commented out, and adopt_state is not */
  char text[32768];
  f = fopen(out, "r");
  size_t n = fread(text, 1, sizeof(text) - 1, f);
  fclose(f);
  unlink(out);
  text[n] = '\0';
  assert_non_null(strstr(text, "\n# max_rooms = 1000\n"));
  assert_non_null(strstr(text, "\ndata_dir = /var/lib/sfu\n"));
  assert_null(strstr(text, "adopt_state"));
}

/* --check-config and --print-config are read with the settings; the file
 * read is remembered for the summary. */
static void check_and_print_flags_parsed(void **state) {
  sfu_config_t c;
  char err[256];
  const char *info;
  (void)state;
  write_file("listen_port = 9000\n");
  char *argv[] = {"sfud", "--check-config", "--config", path, "--print-config", NULL};
  sfu_config_defaults(&c);
  assert_int_equal(sfu_config_parse_args(&c, 5, argv, &info, err, sizeof(err)), 0);
  assert_true(c.check_config);
  assert_true(c.print_config);
  assert_string_equal(c.config_file, path);
  assert_int_equal(c.listen_port, 9000);
  unlink(path);
}

static int has_line(const sfu_confcheck_t *r, int error, const char *text) {
  for (int i = 0; i < r->n; i++)
    if (r->line[i].error == error && strstr(r->line[i].text, text)) return 1;
  return 0;
}

/* A configuration whose files are all wrong gets one error for each, not
 * only the first; nothing is created. */
static void check_reports_every_problem(void **state) {
  sfu_config_t c;
  sfu_confcheck_t r;
  char err[256];
  (void)state;
  write_file("not a certificate\n");
  sfu_config_defaults(&c);
  strcpy(c.room_binary, path); /* not executable */
  strcpy(c.data_dir, "/nonexistent-sfu-dir/data");
  strcpy(c.web_root, "/nonexistent-sfu-web");
  strcpy(c.tls_cert_file, path);
  strcpy(c.tls_key_file, path);
  strcpy(c.webhook_url, "https://");
  strcpy(c.webhook_secret, "0123456789abcdef");
  strcpy(c.listen_host, "localhost");
  assert_int_equal(sfu_config_finish(&c, err, sizeof(err)), 0);
  sfu_confcheck_init(&r);
  assert_int_equal(sfu_confcheck_run(&c, &r), 6);
  assert_true(has_line(&r, 1, "listen_host 'localhost' is not an IP address"));
  assert_true(has_line(&r, 1, "is not executable"));
  assert_true(has_line(&r, 1, "data_dir '/nonexistent-sfu-dir/data' does not exist and cannot be created"));
  assert_true(has_line(&r, 1, "web_root '/nonexistent-sfu-web' is not a readable directory"));
  assert_true(has_line(&r, 1, "not a PEM certificate"));
  assert_true(has_line(&r, 1, "webhook_url 'https://' is not an http:// or https:// URL"));
  assert_true(has_line(&r, 0, "generated at each start"));
  struct stat st;
  assert_int_equal(stat("/nonexistent-sfu-dir", &st), -1);
  unlink(path);
}

/* A sound configuration passes: data_dir not there yet but creatable,
 * the room binary executable; only warnings remain. */
static void check_passes_a_sound_configuration(void **state) {
  sfu_config_t c;
  sfu_confcheck_t r;
  char err[256], dir[64];
  (void)state;
  strcpy(dir, "/tmp/sfu-test-check-XXXXXX");
  assert_non_null(mkdtemp(dir));
  sfu_config_defaults(&c);
  strcpy(c.room_binary, "/bin/true");
  snprintf(c.data_dir, sizeof(c.data_dir), "%s/data", dir);
  strcpy(c.api_key, "a-key-long-enough");
  strcpy(c.token_secret, "0123456789abcdef0123456789abcdef");
  strcpy(c.webhook_url, "http://127.0.0.1:9/hook");
  strcpy(c.webhook_secret, "0123456789abcdef");
  assert_int_equal(sfu_config_finish(&c, err, sizeof(err)), 0);
  sfu_confcheck_init(&r);
  assert_int_equal(sfu_confcheck_run(&c, &r), 0);
  assert_int_equal(r.warnings, 0);
  /* a data_dir that is a file is refused */
  int fd = open(c.data_dir, O_CREAT | O_WRONLY, 0600);
  assert_true(fd >= 0);
  close(fd);
  sfu_confcheck_init(&r);
  assert_int_equal(sfu_confcheck_run(&c, &r), 1);
  assert_true(has_line(&r, 1, "is not a directory"));
  unlink(c.data_dir);
  rmdir(dir);
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
      cmocka_unit_test(rtc_addresses_of_both_families_checked_at_finish),
      cmocka_unit_test(rtc_addresses_bound_at_startup),
      cmocka_unit_test(printed_config_reads_back_the_same),
      cmocka_unit_test(check_and_print_flags_parsed),
      cmocka_unit_test(check_reports_every_problem),
      cmocka_unit_test(check_passes_a_sound_configuration),
  };
  return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
