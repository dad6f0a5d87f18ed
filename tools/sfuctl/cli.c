/*
 * cli.c -- sfuctl's command table, its parser and its help.
 *
 * The parser is hand-written rather than getopt_long(): options may follow
 * the command's words (`sfuctl rooms list --json`), which of them take a
 * value depends on the command found so far, and the parser must be
 * callable any number of times from the unit tests (getopt keeps global
 * state). One pass over argv: an option is looked up among the globals,
 * then among the options of the command named so far; a word is the group,
 * then the subcommand (if the group has subcommands), then a positional.
 */
#include "tools/sfuctl/cli.h"

#include <stdarg.h>
#include <string.h>

#define NOOPTS {{NULL, NULL, NULL}}

const sfu_ctl_cmd_t sfu_ctl_commands[] = {
    {SFU_CTL_ROOMS_CREATE, "rooms", "create", "[NAME]", 0, 1, 0, "create a room (a new sfu-room process)",
     "NAME is optional; a live room of that name makes it fail (409 name_in_use).",
     {{"max-participants", "N", "participants at most (node's max_participants)"},
      {"empty-timeout", "DURATION", "end the room after this long with nobody in it (300s)"},
      {"max-audio-streams", "N", "each participant receives only the N loudest (0 = all)"},
      {"metadata", "JSON", "any JSON value, returned as given"},
      {"region", "REGION", "fleet: place the room in this region"},
      {"node", "NODE", "fleet: create it on this node"},
      {NULL, NULL, NULL}}},
    {SFU_CTL_ROOMS_LIST, "rooms", "list", "", 0, 0, 0, "list the rooms of the node", NULL, NOOPTS},
    {SFU_CTL_ROOMS_SHOW, "rooms", "show", "ROOM", 1, 1, 0,
     "one room: its participants, moderation, relays, counters",
     "ROOM is a room_id (rm_...) or a live room's name.", NOOPTS},
    {SFU_CTL_ROOMS_CLOSE, "rooms", "close", "ROOM", 1, 1, 0, "end a room (its process is reaped)",
     "A crashed room's record is removed.", NOOPTS},
    {SFU_CTL_TOKEN, "token", NULL, "ROOM IDENTITY", 2, 2, 0, "mint a join token",
     "Prints the token alone (TOKEN=$(sfuctl token ...)); --json adds ws_url, jti, expiry.",
     {{"ttl", "DURATION", "validity: 90, 90s, 15m, 2h, 1d (1h)"},
      {"name", "NAME", "display name"},
      {"grants", "LIST", "comma-separated: publish, subscribe, publish_data, admin "
                         "(publish,subscribe)"},
      {NULL, NULL, NULL}}},
    {SFU_CTL_PART_MUTE, "participants", "mute", "ROOM IDENTITY", 2, 2, 0,
     "server mute: nobody receives the identity's audio",
     "The mute belongs to the identity for the room's life, present or not.", NOOPTS},
    {SFU_CTL_PART_UNMUTE, "participants", "unmute", "ROOM IDENTITY", 2, 2, 0,
     "lift a server mute", NULL, NOOPTS},
    {SFU_CTL_PART_KICK, "participants", "kick", "ROOM IDENTITY", 2, 2, 0,
     "close its session; refuse its tokens issued so far",
     "Mint a new token at least a second later to let it back.", NOOPTS},
    {SFU_CTL_PART_BAN, "participants", "ban", "ROOM IDENTITY", 2, 2, 0,
     "kick and refuse every join of the identity until unbanned", NULL,
     {{"reason", "TEXT", "kept with the ban (200 bytes at most)"}, {NULL, NULL, NULL}}},
    {SFU_CTL_PART_UNBAN, "participants", "unban", "ROOM IDENTITY", 2, 2, 0, "lift a ban",
     "Tokens issued before the ban stay refused.", NOOPTS},
    {SFU_CTL_NODE_STATUS, "node", "status", "", 0, 0, 0, "the node: version, load, capacity, fleet",
     NULL, NOOPTS},
    {SFU_CTL_NODE_DRAIN, "node", "drain", "", 0, 0, 0,
     "refuse new rooms (running ones go on), or accept them again",
     NULL,
     {{"off", NULL, "stop draining: accept rooms again"},
      {"migrate", NULL, "fleet: also move every room to other nodes"},
      {NULL, NULL, NULL}}},
    {SFU_CTL_FLEET, "fleet", NULL, "", 0, 0, 0, "the fleet's nodes and rooms, from etcd", NULL,
     NOOPTS},
    {SFU_CTL_EVENTS_TAIL, "events", "tail", "", 0, 0, 0, "the node's journal: events and usage",
     "Prints the last records (--last), or every record after --after; --follow\n"
     "then polls for new ones until interrupted. --json prints one record a line.",
     {{"last", "N", "how many of the newest records (20)"},
      {"after", "SEQ", "every record after this sequence number instead"},
      {"follow", NULL, "keep printing new records as they come"},
      {"interval", "DURATION", "--follow's polling period (1s)"},
      {NULL, NULL, NULL}}},
    {SFU_CTL_CAPTURE, "capture", NULL, "ROOM start|stop", 2, 2, 0,
     "capture the room's media, decrypted, to a pcap on the node",
     "The file is <data_dir>/captures/<room_id>-<unix ms>.pcap on the node;\n"
     "`sfuctl rooms show ROOM` shows how far it got.",
     {{"max-mib", "N", "the file stops growing at this size (100)"},
      {"max-seconds", "DURATION", "the capture stops after this long (300s)"},
      {NULL, NULL, NULL}}},
    {SFU_CTL_LOAD, "load", NULL, "[SCENARIO...] [-- REPLAY-OPTIONS]", 0, SFU_CTL_MAX_POS, 1,
     "run sfu-replay scenarios against the node (load, checks)",
     "Runs sfu-replay (found next to sfuctl, or --replay, or $SFU_REPLAY) once per\n"
     "scenario file with this --url and --key, a progress line on a terminal, and\n"
     "prints a line of results per run (--json: sfu-replay's summaries). Words\n"
     "after -- go to sfu-replay: `sfuctl load -- -n 3 --tone 440 --duration 5`.",
     {{"replay", "PATH", "the sfu-replay binary"},
      {"no-progress", NULL, "no progress line, even on a terminal"},
      {NULL, NULL, NULL}}},
    {0, NULL, NULL, NULL, 0, 0, 0, NULL, NULL, NOOPTS},
};

static int usage_err(sfu_ctl_args_t *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int usage_err(sfu_ctl_args_t *a, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(a->err, sizeof(a->err), fmt, ap);
  va_end(ap);
  return SFU_CTL_EXIT_USAGE;
}

static int group_known(const char *g) {
  for (const sfu_ctl_cmd_t *c = sfu_ctl_commands; c->group; c++)
    if (strcmp(c->group, g) == 0) return 1;
  return 0;
}

/* The command of group g and word sub (NULL: g's one-word command). */
static const sfu_ctl_cmd_t *find_cmd(const char *g, const char *sub) {
  for (const sfu_ctl_cmd_t *c = sfu_ctl_commands; c->group; c++)
    if (strcmp(c->group, g) == 0 &&
        (sub ? c->sub && strcmp(c->sub, sub) == 0 : c->sub == NULL))
      return c;
  return NULL;
}

/* "rooms create" or "token": the command's words. */
static const char *cmd_name(const sfu_ctl_cmd_t *c, char *buf, size_t cap) {
  snprintf(buf, cap, "%s%s%s", c->group, c->sub ? " " : "", c->sub ? c->sub : "");
  return buf;
}

/* A subcommand list for a group: "create, list, show, close". */
static void subs_of(const char *g, char *buf, size_t cap) {
  size_t n = 0;
  buf[0] = '\0';
  for (const sfu_ctl_cmd_t *c = sfu_ctl_commands; c->group; c++)
    if (strcmp(c->group, g) == 0 && c->sub && n < cap)
      n += (size_t)snprintf(buf + n, cap - n, "%s%s", n ? ", " : "", c->sub);
}

/* Index of option `name` (len bytes) among c's, or -1. */
static int opt_index(const sfu_ctl_cmd_t *c, const char *name, size_t len) {
  for (int i = 0; c && i < SFU_CTL_MAX_OPTS && c->opts[i].name; i++)
    if (strlen(c->opts[i].name) == len && strncmp(c->opts[i].name, name, len) == 0) return i;
  return -1;
}

/* A word that is not an option: the group, the subcommand or a positional. */
static int take_word(sfu_ctl_args_t *a, const char *w) {
  char name[64];
  if (a->cmd) {
    if (a->npos == a->cmd->max_pos || a->npos == SFU_CTL_MAX_POS)
      return usage_err(a, "%s: unexpected argument '%s'", cmd_name(a->cmd, name, sizeof(name)), w);
    a->pos[a->npos++] = w;
    return 0;
  }
  if (!a->group) {
    if (strcmp(w, "help") == 0 && !a->help) {
      a->help = 1; /* `sfuctl help rooms create` is `sfuctl rooms create --help` */
      return 0;
    }
    if (!group_known(w)) return usage_err(a, "unknown command '%s'", w);
    a->group = w;
    a->cmd = find_cmd(w, NULL);
    return 0;
  }
  a->cmd = find_cmd(a->group, w);
  if (!a->cmd) {
    char subs[128];
    subs_of(a->group, subs, sizeof(subs));
    return usage_err(a, "unknown command '%s %s' (%s %s)", a->group, w, a->group, subs);
  }
  return 0;
}

int sfu_ctl_parse(sfu_ctl_args_t *a, int argc, char **argv, const char *env_url,
                  const char *env_key) {
  memset(a, 0, sizeof(*a));
  a->url = env_url && *env_url ? env_url : "http://127.0.0.1:7880";
  a->key = env_key && *env_key ? env_key : NULL;
  int rc, dashdash = 0;
  for (int i = 1; i < argc; i++) {
    const char *w = argv[i];
    if (dashdash || w[0] != '-' || w[1] == '\0') {
      if ((rc = take_word(a, w)) != 0) return rc;
      continue;
    }
    if (strcmp(w, "--") == 0) {
      if (a->cmd && a->cmd->rest) {
        a->rest = argv + i + 1;
        a->nrest = argc - i - 1;
        break;
      }
      dashdash = 1;
      continue;
    }
    if (strcmp(w, "-h") == 0) {
      a->help = 1;
      continue;
    }
    if (w[1] != '-') return usage_err(a, "unknown option '%s' (options are long: --name)", w);
    const char *name = w + 2, *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    const char *value = eq ? eq + 1 : NULL;
    /* the globals */
    static const char *const gflags[] = {"json", "help", "version"};
    int done = 0;
    for (int g = 0; g < 3 && !done; g++)
      if (strlen(gflags[g]) == len && strncmp(gflags[g], name, len) == 0) {
        if (value) return usage_err(a, "--%s takes no value", gflags[g]);
        *(g == 0 ? &a->json : g == 1 ? &a->help : &a->version) = 1;
        done = 1;
      }
    if (done) continue;
    int is_url = len == 3 && strncmp(name, "url", 3) == 0;
    int is_key = len == 3 && strncmp(name, "key", 3) == 0;
    int k = is_url || is_key ? -1 : opt_index(a->cmd, name, len);
    if (!is_url && !is_key && k < 0) {
      char cn[64];
      if (a->cmd)
        return usage_err(a, "%s: unknown option '--%.*s'", cmd_name(a->cmd, cn, sizeof(cn)),
                         (int)len, name);
      return usage_err(a, "unknown option '--%.*s'", (int)len, name);
    }
    if (k >= 0 && !a->cmd->opts[k].arg) { /* a flag of the command */
      if (value) return usage_err(a, "--%s takes no value", a->cmd->opts[k].name);
      a->val[k] = "";
      continue;
    }
    if (!value) {
      if (i + 1 >= argc) return usage_err(a, "--%.*s needs a value", (int)len, name);
      value = argv[++i];
    }
    if (is_url) a->url = value;
    else if (is_key) a->key = value;
    else a->val[k] = value;
  }
  if (a->help || a->version) return 0;
  if (!a->group) return usage_err(a, "no command given");
  if (!a->cmd) {
    char subs[128];
    subs_of(a->group, subs, sizeof(subs));
    return usage_err(a, "%s: which one? %s", a->group, subs);
  }
  if (a->npos < a->cmd->min_pos) {
    char cn[64];
    return usage_err(a, "%s: missing arguments (%s)", cmd_name(a->cmd, cn, sizeof(cn)),
                     a->cmd->args);
  }
  if (!*a->url) return usage_err(a, "--url is empty");
  return 0;
}

const char *sfu_ctl_opt(const sfu_ctl_args_t *a, const char *name) {
  int k = opt_index(a->cmd, name, strlen(name));
  return k < 0 ? NULL : a->val[k];
}

int sfu_ctl_uint(const char *s, int64_t max, int64_t *out) {
  int64_t v = 0;
  if (!s || !*s) return SFU_CTL_EXIT_USAGE;
  for (; *s; s++) {
    if (*s < '0' || *s > '9') return SFU_CTL_EXIT_USAGE;
    v = v * 10 + (*s - '0');
    if (v > max) return SFU_CTL_EXIT_USAGE;
  }
  *out = v;
  return 0;
}

int sfu_ctl_duration(const char *s, int64_t *out_s) {
  static const int64_t ten_years = 10LL * 366 * 86400;
  char digits[24];
  size_t n = s ? strlen(s) : 0;
  int64_t mult = 1, v;
  if (n == 0 || n >= sizeof(digits)) return SFU_CTL_EXIT_USAGE;
  memcpy(digits, s, n + 1);
  switch (digits[n - 1]) {
  case 's': mult = 1; break;
  case 'm': mult = 60; break;
  case 'h': mult = 3600; break;
  case 'd': mult = 86400; break;
  default: mult = 0; break;
  }
  if (mult) digits[--n] = '\0';
  else mult = 1;
  if (sfu_ctl_uint(digits, ten_years, &v) != 0 || v > ten_years / mult) return SFU_CTL_EXIT_USAGE;
  *out_s = v * mult;
  return 0;
}

static void cmd_usage(FILE *f, const sfu_ctl_cmd_t *c) {
  char cn[64];
  fprintf(f, "usage: sfuctl %s%s%s [options]\n%s.\n", cmd_name(c, cn, sizeof(cn)),
          c->args[0] ? " " : "", c->args, c->summary);
  if (c->help) fprintf(f, "%s\n", c->help);
  if (c->opts[0].name) fputs("\noptions:\n", f);
  for (int i = 0; i < SFU_CTL_MAX_OPTS && c->opts[i].name; i++) {
    char left[48];
    snprintf(left, sizeof(left), "--%s%s%s", c->opts[i].name, c->opts[i].arg ? " " : "",
             c->opts[i].arg ? c->opts[i].arg : "");
    fprintf(f, "  %-24s %s\n", left, c->opts[i].help);
  }
  fputs("\nglobal options: --url URL, --key KEY, --json, --help (sfuctl --help)\n", f);
}

void sfu_ctl_usage(FILE *f, const sfu_ctl_args_t *a) {
  if (a && a->cmd) {
    cmd_usage(f, a->cmd);
    return;
  }
  if (a && a->group) {
    fprintf(f, "usage: sfuctl %s COMMAND ...\n\n", a->group);
    for (const sfu_ctl_cmd_t *c = sfu_ctl_commands; c->group; c++)
      if (strcmp(c->group, a->group) == 0) {
        char left[64];
        snprintf(left, sizeof(left), "%s %s", c->sub ? c->sub : "", c->args);
        fprintf(f, "  %-28s %s\n", left, c->summary);
      }
    fprintf(f, "\nsfuctl %s COMMAND --help: more on one\n", a->group);
    return;
  }
  fputs("usage: sfuctl [--url URL] [--key KEY] [--json] COMMAND [ARGS] [options]\n"
        "Drives an sfud node through its control-plane API (docs/sfuctl.md, docs/api.md).\n\n"
        "commands:\n",
        f);
  for (const sfu_ctl_cmd_t *c = sfu_ctl_commands; c->group; c++) {
    char left[64], cn[40];
    snprintf(left, sizeof(left), "%s %s", cmd_name(c, cn, sizeof(cn)), c->args);
    if (strlen(left) > 36) fprintf(f, "  %s\n  %-36s %s\n", left, "", c->summary);
    else fprintf(f, "  %-36s %s\n", left, c->summary);
  }
  fputs("\nglobal options (anywhere on the line):\n"
        "  --url URL       the node's API (http://127.0.0.1:7880; $SFU_URL)\n"
        "  --key KEY       its API key ($SFU_API_KEY)\n"
        "  --json          print the API's JSON instead of tables (errors: JSON on stderr)\n"
        "  --help, -h      this help; `sfuctl COMMAND --help` or `sfuctl help COMMAND`\n"
        "  --version       sfuctl's version\n\n"
        "exit status: 0 ok, 1 usage, 2 node unreachable, 3 API error 4xx, 4 API error 5xx,\n"
        "5 other failure (an answer that is not the API's, a failed load run)\n",
        f);
}
