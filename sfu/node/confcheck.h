/*
 * confcheck.h -- `sfud --check-config`: everything sfud would refuse at its
 * start that can be known without serving, checked at once and reported
 * together, with a summary of what the node would run with.
 *
 * Nothing is created or changed: data_dir is checked writable (or
 * creatable in its parent), not made; the TLS files are parsed into a
 * context that is freed; the media addresses are bound on port 0 and
 * closed. The listening port is not bound, so a check can run beside the
 * sfud it is about.
 */
#ifndef SFU_NODE_CONFCHECK_H
#define SFU_NODE_CONFCHECK_H

#include <stdio.h>

#include "sfu/node/config.h"

/* Lines a report holds; problems past it are counted, not kept. */
#define SFU_CONFCHECK_MAX 32

/*
 * The findings of one check: errors stop sfud at its start, warnings do
 * not. Filled by sfu_confcheck_run(), owned by the caller (no allocation).
 */
typedef struct sfu_confcheck_s {
  int errors;   /* problems that stop sfud */
  int warnings; /* what it would start with but an operator should know */
  int n;        /* lines kept in line[] (at most SFU_CONFCHECK_MAX) */
  struct {
    int error;      /* 1 error, 0 warning */
    char text[512]; /* "tls_key_file '/x': ..." */
  } line[SFU_CONFCHECK_MAX];
} sfu_confcheck_t;

/* Empties a report. */
void sfu_confcheck_init(sfu_confcheck_t *r);
/* Adds an error (error = 1) or a warning to a report. */
void sfu_confcheck_add(sfu_confcheck_t *r, int error, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Checks a configuration that went through sfu_config_finish() (the
 * caller adds its error, if any, with sfu_confcheck_add() and calls this
 * anyway) and whose room_binary is resolved: listen_host and public_url,
 * the media addresses bound (sfu_config_check_rtc_bind()), room_binary a
 * regular executable file, data_dir (and its journal/ and rooms/) a
 * writable directory or creatable, web_root a readable directory, the
 * TLS certificate and key loaded and matched, the webhook and etcd URLs
 * parsed with their TLS client settings loaded. Warns about generated
 * keys, development routes and plain HTTP on a public address. Returns
 * r->errors.
 */
int sfu_confcheck_run(const sfu_config_t *c, sfu_confcheck_t *r);

/*
 * Prints the report: the summary of the settings on `out` when there is
 * no error, then every warning and error on `err`, one line each
 * ("sfud: error: ...").
 */
void sfu_confcheck_print(const sfu_config_t *c, const sfu_confcheck_t *r, FILE *out,
                         FILE *err);

#endif
