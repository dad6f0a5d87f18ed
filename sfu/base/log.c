/*
 * log.c -- logfmt lines on stderr.
 *
 * Each line is built in a stack buffer and written with a single write(2):
 * sfud and all its room processes share one stderr, and single writes under
 * PIPE_BUF keep their lines whole. The message is quoted, with quotes and
 * control characters escaped, so a line always parses.
 *
 * Under systemd, stderr is a stream to journald, which says so in
 * JOURNAL_STREAM ("<device>:<inode>" of that stream). When stderr is that
 * stream, each line starts with its syslog priority ("<6>ts=..."), which
 * journald strips and keeps as the entry's PRIORITY (SyslogLevelPrefix=,
 * on by default): `journalctl -p warning` then shows warnings and errors.
 * Rooms inherit both stderr and the variable, so their lines carry it too.
 */
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "sfu/base/log.h"

static sfu_log_level_t min_level = SFU_LOG_INFO;
static char context[128];

static const char *level_names[] = {"debug", "info", "warn", "error"};
/* syslog(3) priorities of the levels: LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR */
static const char level_prio[] = {'7', '6', '4', '3'};
static int journal = -1; /* 1: stderr is journald's stream; -1: not looked at yet */

int sfu__log_stderr_is_journal(void) {
  const char *js = getenv("JOURNAL_STREAM");
  unsigned long long dev, ino;
  struct stat st;
  if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) != 0)
    return 0;
  return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void sfu_log_set_level(sfu_log_level_t level) { min_level = level; }

int sfu_log_enabled(sfu_log_level_t level) { return level >= min_level; }

int sfu_log_parse_level(const char *s) {
  for (int i = 0; i < 4; i++)
    if (strcmp(s, level_names[i]) == 0) return i;
  return -1;
}

void sfu_log_set_context(const char *kv) {
  snprintf(context, sizeof(context), "%s", kv ? kv : "");
}

void sfu_log_kv(sfu_log_level_t level, const char *mod, const char *kv,
                const char *fmt, ...) {
  char line[1024], msg[768];
  struct timeval tv;
  struct tm tm;
  va_list ap;
  size_t n;

  if (level < min_level) return;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);

  if (journal < 0) journal = sfu__log_stderr_is_journal();
  gettimeofday(&tv, NULL);
  gmtime_r(&tv.tv_sec, &tm);
  n = 0;
  if (journal) {
    line[n++] = '<';
    line[n++] = level_prio[level];
    line[n++] = '>';
  }
  n += (size_t)snprintf(line + n, sizeof(line) - n,
                       "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03dZ level=%s mod=%s",
                       tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                       tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000),
                       level_names[level], mod);
  if (context[0] && n < sizeof(line))
    n += (size_t)snprintf(line + n, sizeof(line) - n, " %s", context);
  if (kv && kv[0] && n < sizeof(line))
    n += (size_t)snprintf(line + n, sizeof(line) - n, " %s", kv);
  if (n + 8 < sizeof(line)) {
    memcpy(line + n, " msg=\"", 6);
    n += 6;
    for (const char *p = msg; *p && n + 3 < sizeof(line); p++) {
      unsigned char c = (unsigned char)*p;
      if (c == '"' || c == '\\') {
        line[n++] = '\\';
        line[n++] = (char)c;
      } else if (c < 0x20) {
        line[n++] = ' ';
      } else {
        line[n++] = (char)c;
      }
    }
    line[n++] = '"';
  }
  if (n >= sizeof(line)) n = sizeof(line) - 1;
  line[n++] = '\n';
  ssize_t rc = write(STDERR_FILENO, line, n);
  (void)rc;
}
