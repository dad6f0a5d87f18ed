/*
 * log.h -- structured log lines, one per event, in logfmt:
 *
 *   ts=2026-11-26T12:00:00.123Z level=info mod=supervisor room=rm_x pid=42 msg="room ready"
 *
 * Callers put context as key=value pairs in front of the message with
 * sfu_log_kv(); sfu_log() is the plain form. Lines go to stderr, written with
 * one write(2) so lines of several processes sharing stderr do not interleave.
 * When stderr is journald's stream, each line starts with "<N>", its syslog
 * priority, for journald to keep as the entry's PRIORITY.
 */
#ifndef SFU_LOG_H
#define SFU_LOG_H

#include <stdarg.h>

typedef enum {
  SFU_LOG_DEBUG = 0,
  SFU_LOG_INFO,
  SFU_LOG_WARN,
  SFU_LOG_ERROR,
} sfu_log_level_t;

/* Minimum level printed; default INFO. */
void sfu_log_set_level(sfu_log_level_t level);
/* 1 if a line at `level` would be printed (to skip building it). */
int sfu_log_enabled(sfu_log_level_t level);
/* Parse "debug", "info", "warn", "error"; returns -1 if unknown. */
int sfu_log_parse_level(const char *s);
/* Fixed fields appended to every line of this process, e.g. "room=rm_x". */
void sfu_log_set_context(const char *kv);

/* 1 if stderr is journald's stream (JOURNAL_STREAM names its device and
 * inode): lines then start with their syslog priority, "<6>" for info. */
int sfu__log_stderr_is_journal(void);

/* `kv` is preformatted "key=value key2=value2" context (may be NULL). */
void sfu_log_kv(sfu_log_level_t level, const char *mod, const char *kv,
                const char *fmt, ...) __attribute__((format(printf, 4, 5)));
#define sfu_log(level, mod, ...) sfu_log_kv(level, mod, NULL, __VA_ARGS__)

#endif
