/*
 * test_sfuctl.c -- sfuctl's command line (tools/sfuctl/cli.c): commands,
 * options anywhere, values, help forms, the words passed to sfu-replay,
 * durations.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tools/sfuctl/cli.h"

/* Parses a NULL-terminated word list (after the program name). */
static int parse_env(sfu_ctl_args_t *a, const char *env_url, const char *env_key, ...) {
  static char *argv[32];
  int argc = 0;
  va_list ap;
  argv[argc++] = "sfuctl";
  va_start(ap, env_key);
  for (char *w; (w = va_arg(ap, char *)) != NULL && argc < 31;) argv[argc++] = w;
  va_end(ap);
  argv[argc] = NULL;
  return sfu_ctl_parse(a, argc, argv, env_url, env_key);
}
#define parse(a, ...) parse_env(a, NULL, NULL, __VA_ARGS__, (char *)NULL)

static void test_command_with_positionals_and_defaults(void **state) {
  sfu_ctl_args_t a;
  assert_int_equal(parse(&a, "participants", "mute", "standup", "alice"), 0);
  assert_int_equal(a.cmd->id, SFU_CTL_PART_MUTE);
  assert_int_equal(a.npos, 2);
  assert_string_equal(a.pos[0], "standup");
  assert_string_equal(a.pos[1], "alice");
  assert_string_equal(a.url, "http://127.0.0.1:7880");
  assert_null(a.key);
  assert_int_equal(a.json, 0);
}

static void test_environment_gives_url_and_key_and_flags_override_it(void **state) {
  sfu_ctl_args_t a;
  assert_int_equal(parse_env(&a, "http://node:1", "env-key", "rooms", "list", (char *)NULL), 0);
  assert_string_equal(a.url, "http://node:1");
  assert_string_equal(a.key, "env-key");
  assert_int_equal(parse_env(&a, "http://node:1", "env-key", "--url", "http://other:2", "rooms",
                             "list", "--key=flag-key", (char *)NULL), 0);
  assert_string_equal(a.url, "http://other:2");
  assert_string_equal(a.key, "flag-key");
  /* an empty variable counts as unset */
  assert_int_equal(parse_env(&a, "", "", "rooms", "list", (char *)NULL), 0);
  assert_string_equal(a.url, "http://127.0.0.1:7880");
  assert_null(a.key);
}

static void test_global_options_anywhere(void **state) {
  sfu_ctl_args_t a;
  assert_int_equal(parse(&a, "--json", "rooms", "list"), 0);
  assert_int_equal(a.json, 1);
  assert_int_equal(parse(&a, "rooms", "--json", "list"), 0);
  assert_int_equal(a.json, 1);
  assert_int_equal(a.cmd->id, SFU_CTL_ROOMS_LIST);
  assert_int_equal(parse(&a, "rooms", "show", "x", "--json"), 0);
  assert_int_equal(a.json, 1);
  assert_string_equal(a.pos[0], "x");
}

static void test_command_options_both_spellings_and_flags(void **state) {
  sfu_ctl_args_t a;
  assert_int_equal(parse(&a, "token", "r", "alice", "--ttl", "15m", "--name=Alice A."), 0);
  assert_string_equal(sfu_ctl_opt(&a, "ttl"), "15m");
  assert_string_equal(sfu_ctl_opt(&a, "name"), "Alice A.");
  assert_null(sfu_ctl_opt(&a, "grants"));
  assert_null(sfu_ctl_opt(&a, "no-such-option"));
  /* an option may come before the positionals, once the command is named */
  assert_int_equal(parse(&a, "token", "--ttl", "90", "r", "alice"), 0);
  assert_string_equal(sfu_ctl_opt(&a, "ttl"), "90");
  assert_int_equal(a.npos, 2);
  assert_int_equal(parse(&a, "node", "drain", "--off"), 0);
  assert_string_equal(sfu_ctl_opt(&a, "off"), "");
  assert_null(sfu_ctl_opt(&a, "migrate"));
}

static void test_bad_options_are_usage_errors(void **state) {
  sfu_ctl_args_t a;
  assert_int_equal(parse(&a, "rooms", "list", "--ttl", "5"), SFU_CTL_EXIT_USAGE);
  assert_string_equal(a.err, "rooms list: unknown option '--ttl'");
  /* a command's option before the command is not known yet */
  assert_int_equal(parse(&a, "--ttl", "5", "token", "r", "a"), SFU_CTL_EXIT_USAGE);
  assert_string_equal(a.err, "unknown option '--ttl'");
  assert_int_equal(parse(&a, "token", "r", "a", "--ttl"), SFU_CTL_EXIT_USAGE);
  assert_string_equal(a.err, "--ttl needs a value");
  assert_int_equal(parse(&a, "node", "drain", "--off=yes"), SFU_CTL_EXIT_USAGE);
  assert_string_equal(a.err, "--off takes no value");
  assert_int_equal(parse(&a, "--json=1", "fleet"), SFU_CTL_EXIT_USAGE);
  assert_int_equal(parse(&a, "rooms", "list", "-j"), SFU_CTL_EXIT_USAGE);
  assert_non_null(strstr(a.err, "'-j'"));
  assert_int_equal(parse(&a, "--url", "", "fleet"), SFU_CTL_EXIT_USAGE);
}

static void test_bad_commands_say_what_is_wrong(void **state) {
  sfu_ctl_args_t a;
  assert_int_equal(parse(&a, "romos", "list"), SFU_CTL_EXIT_USAGE);
  assert_string_equal(a.err, "unknown command 'romos'");
  assert_int_equal(parse(&a, "rooms", "delete", "x"), SFU_CTL_EXIT_USAGE);
  assert_string_equal(a.err, "unknown command 'rooms delete' (rooms create, list, show, close)");
  assert_int_equal(parse(&a, "rooms"), SFU_CTL_EXIT_USAGE);
  assert_string_equal(a.err, "rooms: which one? create, list, show, close");
  assert_ptr_equal(a.cmd, NULL);
  assert_string_equal(a.group, "rooms");
  assert_int_equal(parse(&a, "--json"), SFU_CTL_EXIT_USAGE);
  assert_string_equal(a.err, "no command given");
  assert_int_equal(parse(&a, "participants", "kick", "room"), SFU_CTL_EXIT_USAGE);
  assert_string_equal(a.err, "participants kick: missing arguments (ROOM IDENTITY)");
  assert_int_equal(parse(&a, "rooms", "show", "a", "b"), SFU_CTL_EXIT_USAGE);
  assert_string_equal(a.err, "rooms show: unexpected argument 'b'");
}

static void test_help_forms(void **state) {
  sfu_ctl_args_t a;
  assert_int_equal(parse(&a, "--help"), 0);
  assert_int_equal(a.help, 1);
  assert_null(a.cmd);
  assert_null(a.group);
  assert_int_equal(parse(&a, "help", "rooms", "create"), 0);
  assert_int_equal(a.help, 1);
  assert_int_equal(a.cmd->id, SFU_CTL_ROOMS_CREATE);
  /* help needs no arguments: they are not checked */
  assert_int_equal(parse(&a, "participants", "ban", "-h"), 0);
  assert_int_equal(a.help, 1);
  assert_int_equal(a.cmd->id, SFU_CTL_PART_BAN);
  assert_int_equal(parse(&a, "rooms", "--help"), 0);
  assert_null(a.cmd);
  assert_string_equal(a.group, "rooms");
  assert_int_equal(parse(&a, "--version"), 0);
  assert_int_equal(a.version, 1);
}

static void test_load_passes_words_after_dashdash_to_replay(void **state) {
  sfu_ctl_args_t a;
  assert_int_equal(parse(&a, "load", "a.json", "b.json", "--no-progress", "--", "-n", "3",
                         "--json", "x"), 0);
  assert_int_equal(a.cmd->id, SFU_CTL_LOAD);
  assert_int_equal(a.npos, 2);
  assert_string_equal(a.pos[1], "b.json");
  assert_string_equal(sfu_ctl_opt(&a, "no-progress"), "");
  assert_int_equal(a.json, 0); /* sfu-replay's --json, not sfuctl's */
  assert_int_equal(a.nrest, 4);
  assert_string_equal(a.rest[0], "-n");
  assert_string_equal(a.rest[3], "x");
  /* elsewhere `--` only ends the options */
  assert_int_equal(parse(&a, "token", "r", "--", "-odd-identity"), 0);
  assert_string_equal(a.pos[1], "-odd-identity");
  assert_int_equal(a.nrest, 0);
}

static void test_every_command_is_reachable_by_its_words(void **state) {
  for (const sfu_ctl_cmd_t *c = sfu_ctl_commands; c->group; c++) {
    sfu_ctl_args_t a;
    const char *words[2 + SFU_CTL_MAX_POS + 1] = {"sfuctl", c->group};
    int n = 2;
    if (c->sub) words[n++] = c->sub;
    for (int i = 0; i < c->min_pos; i++) words[n++] = "x";
    assert_int_equal(sfu_ctl_parse(&a, n, (char **)words, NULL, NULL), 0);
    assert_ptr_equal(a.cmd, c);
  }
}

static void test_durations(void **state) {
  int64_t s;
  assert_int_equal(sfu_ctl_duration("90", &s), 0);
  assert_int_equal(s, 90);
  assert_int_equal(sfu_ctl_duration("90s", &s), 0);
  assert_int_equal(s, 90);
  assert_int_equal(sfu_ctl_duration("15m", &s), 0);
  assert_int_equal(s, 900);
  assert_int_equal(sfu_ctl_duration("2h", &s), 0);
  assert_int_equal(s, 7200);
  assert_int_equal(sfu_ctl_duration("1d", &s), 0);
  assert_int_equal(s, 86400);
  assert_int_equal(sfu_ctl_duration("0", &s), 0);
  assert_int_equal(s, 0);
  static const char *const bad[] = {"", "s", "1.5h", "-1", "+5", "5 m", "5w", "1h30m",
                                    "99999999999999999999", "4000d", NULL};
  for (int i = 0; bad[i]; i++) assert_int_equal(sfu_ctl_duration(bad[i], &s), SFU_CTL_EXIT_USAGE);
  assert_int_equal(sfu_ctl_duration(NULL, &s), SFU_CTL_EXIT_USAGE);
}

static void test_whole_numbers(void **state) {
  int64_t v;
  assert_int_equal(sfu_ctl_uint("0", 10, &v), 0);
  assert_int_equal(v, 0);
  assert_int_equal(sfu_ctl_uint("10", 10, &v), 0);
  assert_int_equal(v, 10);
  assert_int_equal(sfu_ctl_uint("11", 10, &v), SFU_CTL_EXIT_USAGE);
  assert_int_equal(sfu_ctl_uint("1e3", 10000, &v), SFU_CTL_EXIT_USAGE);
  assert_int_equal(sfu_ctl_uint("", 10, &v), SFU_CTL_EXIT_USAGE);
  assert_int_equal(sfu_ctl_uint("-1", 10, &v), SFU_CTL_EXIT_USAGE);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_command_with_positionals_and_defaults),
      cmocka_unit_test(test_environment_gives_url_and_key_and_flags_override_it),
      cmocka_unit_test(test_global_options_anywhere),
      cmocka_unit_test(test_command_options_both_spellings_and_flags),
      cmocka_unit_test(test_bad_options_are_usage_errors),
      cmocka_unit_test(test_bad_commands_say_what_is_wrong),
      cmocka_unit_test(test_help_forms),
      cmocka_unit_test(test_load_passes_words_after_dashdash_to_replay),
      cmocka_unit_test(test_every_command_is_reachable_by_its_words),
      cmocka_unit_test(test_durations),
      cmocka_unit_test(test_whole_numbers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
