/*
 * cli.h -- sfuctl's command line: the command table, the parser, help.
 *
 * sfuctl's words are `sfuctl [global options] GROUP [SUBCOMMAND] [ARGS]
 * [options]` (docs/sfuctl.md). Options may come anywhere after the program
 * name, as `--name value` or `--name=value`; the global ones (--url,
 * --key, --json, --help, --version) are understood everywhere, a command's
 * own only once the command is named. `--` ends the options: what follows
 * is positional, except for `load`, whose words after `--` go to
 * sfu-replay unchanged.
 *
 * Nothing here does I/O except the help printers, which write to the FILE
 * they are given: the parser is a pure function of argv and the
 * environment values it is handed, so the unit tests (tests/test_sfuctl.c)
 * drive it directly. The parse result borrows argv's strings.
 */
#ifndef SFU_TOOLS_SFUCTL_CLI_H
#define SFU_TOOLS_SFUCTL_CLI_H

#include <stdint.h>
#include <stdio.h>

/* Exit statuses of sfuctl (docs/sfuctl.md#exit-status). */
enum {
  SFU_CTL_EXIT_OK = 0,
  SFU_CTL_EXIT_USAGE = 1,   /* bad command line: the message and the usage on stderr */
  SFU_CTL_EXIT_CONNECT = 2, /* the node could not be reached (connect, resolve, timeout) */
  SFU_CTL_EXIT_4XX = 3,     /* the API answered 4xx: its error JSON on stderr */
  SFU_CTL_EXIT_5XX = 4,     /* the API answered 5xx: its error JSON on stderr */
  SFU_CTL_EXIT_OTHER = 5,   /* an answer that is not the API's, a load run that failed, ... */
};

/* The commands. */
typedef enum {
  SFU_CTL_ROOMS_CREATE,
  SFU_CTL_ROOMS_LIST,
  SFU_CTL_ROOMS_SHOW,
  SFU_CTL_ROOMS_CLOSE,
  SFU_CTL_TOKEN,
  SFU_CTL_PART_MUTE,
  SFU_CTL_PART_UNMUTE,
  SFU_CTL_PART_KICK,
  SFU_CTL_PART_BAN,
  SFU_CTL_PART_UNBAN,
  SFU_CTL_NODE_STATUS,
  SFU_CTL_NODE_DRAIN,
  SFU_CTL_FLEET,
  SFU_CTL_EVENTS_TAIL,
  SFU_CTL_CAPTURE,
  SFU_CTL_LOAD,
} sfu_ctl_cmd_id;

#define SFU_CTL_MAX_POS 8   /* positional arguments of a command, at most */
#define SFU_CTL_MAX_OPTS 8  /* options of one command, at most (globals apart) */

/* One option of a command: `--name` alone when arg is NULL, else `--name
 * ARG` (arg names the value in the help). */
typedef struct sfu_ctl_opt_s {
  const char *name; /* without the dashes */
  const char *arg;  /* NULL: a flag */
  const char *help; /* one line */
} sfu_ctl_opt_t;

/* One command of the table: static, for the life of the process. */
typedef struct sfu_ctl_cmd_s {
  sfu_ctl_cmd_id id;
  const char *group;   /* first word: "rooms", "token", ... */
  const char *sub;     /* second word, NULL for a command of one word */
  const char *args;    /* the positionals in the usage line: "ROOM IDENTITY" */
  int min_pos, max_pos; /* how many positionals it takes */
  int rest;            /* 1: words after `--` are passed on (load) */
  const char *summary; /* one line, in the command list */
  const char *help;    /* more lines for `--help`, or NULL */
  sfu_ctl_opt_t opts[SFU_CTL_MAX_OPTS]; /* its own options, ended by a NULL name */
} sfu_ctl_cmd_t;

/* What a command line asks. Strings are argv's (or the environment values
 * given to the parser), borrowed. */
typedef struct sfu_ctl_args_s {
  const char *url;             /* --url, else $SFU_URL, else http://127.0.0.1:7880 */
  const char *key;             /* --key, else $SFU_API_KEY, else NULL */
  int json;                    /* --json: the API's JSON, not tables */
  int help;                    /* --help, -h or `sfuctl help ...` */
  int version;                 /* --version */
  const sfu_ctl_cmd_t *cmd;    /* the command, NULL if none was named */
  const char *group;           /* the group named (also when its subcommand is missing) */
  int npos;                    /* positionals after the command's words */
  const char *pos[SFU_CTL_MAX_POS];
  const char *val[SFU_CTL_MAX_OPTS]; /* per cmd->opts[i]: its value, "" for a flag given,
                                        NULL when absent */
  int nrest;                   /* words after `--` (commands with `rest`) */
  char **rest;
  char err[240];               /* why sfu_ctl_parse() failed, "" otherwise */
} sfu_ctl_args_t;

/* The table, ended by an entry whose group is NULL. */
extern const sfu_ctl_cmd_t sfu_ctl_commands[];

/* Parses argv[1..argc-1] into a (overwritten). env_url and env_key are
 * $SFU_URL and $SFU_API_KEY (NULL or "" when unset). Returns 0, or
 * SFU_CTL_EXIT_USAGE with a->err saying what is wrong ("unknown command
 * 'romos'", "--ttl needs a value", "rooms show: missing ROOM", ...). With
 * --help or --version given, the command's arguments are not checked and
 * 0 is returned. */
int sfu_ctl_parse(sfu_ctl_args_t *a, int argc, char **argv, const char *env_url,
                  const char *env_key);

/* The value of cmd's option `name` as parsed ("" for a flag given), or
 * NULL when it was not given (or the command has no such option). */
const char *sfu_ctl_opt(const sfu_ctl_args_t *a, const char *name);

/* A duration: whole seconds, or a number with a unit s, m, h or d ("90",
 * "90s", "15m", "2h", "1d"). 0 and *out_s, or SFU_CTL_EXIT_USAGE for
 * anything else (empty, signs, fractions, overflow past 10 years). */
int sfu_ctl_duration(const char *s, int64_t *out_s);

/* A decimal integer 0..max: 0 and *out, or SFU_CTL_EXIT_USAGE. */
int sfu_ctl_uint(const char *s, int64_t max, int64_t *out);

/* Help: for a->cmd if set, else for the group a->group names, else the
 * whole tool. */
void sfu_ctl_usage(FILE *f, const sfu_ctl_args_t *a);

#endif
