/*
 * confcheck.c -- the checks of `sfud --check-config`.
 *
 * Each check is the one sfud makes at its start, or the question behind
 * it asked without side effects: sfud creates data_dir, the check asks
 * whether it could; sfud builds its TLS contexts, the check builds them
 * and frees them. Unlike a start, which stops at the first problem, every
 * check runs and every problem is reported, so one run fixes a file.
 *
 * Access is judged by access(2), with the real uid: run the check as the
 * user sfud runs as (the packaged unit's `sfu`) for its answers to hold.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <libgen.h>
#include <stdarg.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <h2o.h>

#include "sfu/node/confcheck.h"
#include "sfu/node/tls.h"

void sfu_confcheck_init(sfu_confcheck_t *r) { memset(r, 0, sizeof(*r)); }

void sfu_confcheck_add(sfu_confcheck_t *r, int error, const char *fmt, ...) {
  va_list ap;
  if (error)
    r->errors++;
  else
    r->warnings++;
  if (r->n == SFU_CONFCHECK_MAX) return;
  r->line[r->n].error = error;
  va_start(ap, fmt);
  vsnprintf(r->line[r->n].text, sizeof(r->line[r->n].text), fmt, ap);
  va_end(ap);
  r->n++;
}

static int is_loopback(const char *host) {
  unsigned char ip[16];
  if (inet_pton(AF_INET, host, ip) == 1) return ip[0] == 127;
  return strcmp(host, "::1") == 0;
}

/* A directory sfud writes into: `what` names the setting. It exists and
 * is a writable directory, or does not exist and its parent is one (sfud
 * makes it with mkdir, one level). 0 or -1 (the error added). */
static int check_writable_dir(sfu_confcheck_t *r, const char *what, const char *dir) {
  struct stat st;
  if (stat(dir, &st) == 0) {
    if (!S_ISDIR(st.st_mode)) {
      sfu_confcheck_add(r, 1, "%s '%s' is not a directory", what, dir);
      return -1;
    }
    if (access(dir, W_OK | X_OK) != 0) {
      sfu_confcheck_add(r, 1, "%s '%s' is not writable by uid %d: %s", what, dir, (int)getuid(),
                        strerror(errno));
      return -1;
    }
    return 0;
  }
  if (errno != ENOENT) {
    sfu_confcheck_add(r, 1, "%s '%s': %s", what, dir, strerror(errno));
    return -1;
  }
  char copy[1024];
  snprintf(copy, sizeof(copy), "%s", dir);
  const char *parent = dirname(copy);
  if (access(parent, W_OK | X_OK) != 0) {
    sfu_confcheck_add(r, 1, "%s '%s' does not exist and cannot be created in '%s': %s", what, dir,
                      parent, strerror(errno));
    return -1;
  }
  return 0;
}

static void check_data_dir(const sfu_config_t *c, sfu_confcheck_t *r) {
  char sub[600];
  struct stat st;
  if (!c->data_dir[0]) {
    sfu_confcheck_add(r, 1, "data_dir is empty");
    return;
  }
  if (check_writable_dir(r, "data_dir", c->data_dir) != 0) return;
  static const char *const subs[] = {"journal", "rooms"};
  for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
    snprintf(sub, sizeof(sub), "%s/%s", c->data_dir, subs[i]);
    if (stat(sub, &st) == 0) check_writable_dir(r, "data_dir", sub);
  }
}

static void check_room_binary(const sfu_config_t *c, sfu_confcheck_t *r) {
  struct stat st;
  if (stat(c->room_binary, &st) != 0) {
    sfu_confcheck_add(r, 1, "room_binary '%s': %s", c->room_binary, strerror(errno));
  } else if (!S_ISREG(st.st_mode)) {
    sfu_confcheck_add(r, 1, "room_binary '%s' is not a regular file", c->room_binary);
  } else if (access(c->room_binary, X_OK) != 0) {
    sfu_confcheck_add(r, 1, "room_binary '%s' is not executable by uid %d", c->room_binary,
                      (int)getuid());
  }
}

static void check_web_root(const sfu_config_t *c, sfu_confcheck_t *r) {
  struct stat st;
  char index[600];
  if (!c->web_root[0]) return;
  if (stat(c->web_root, &st) != 0 || !S_ISDIR(st.st_mode) ||
      access(c->web_root, R_OK | X_OK) != 0) {
    sfu_confcheck_add(r, 1, "web_root '%s' is not a readable directory", c->web_root);
    return;
  }
  snprintf(index, sizeof(index), "%s/index.html", c->web_root);
  if (access(index, R_OK) != 0)
    sfu_confcheck_add(r, 0, "web_root '%s' has no readable index.html", c->web_root);
}

/* An http:// or https:// URL h2o can connect to. 1 if https, 0 if http,
 * -1 (the error added) otherwise. */
static int check_url(sfu_confcheck_t *r, const char *what, const char *url) {
  h2o_url_t u;
  if (h2o_url_parse(url, SIZE_MAX, &u) != 0 ||
      (u.scheme != &H2O_URL_SCHEME_HTTP && u.scheme != &H2O_URL_SCHEME_HTTPS)) {
    sfu_confcheck_add(r, 1, "%s '%s' is not an http:// or https:// URL with a host", what, url);
    return -1;
  }
  return u.scheme == &H2O_URL_SCHEME_HTTPS;
}

static void check_client_tls(sfu_confcheck_t *r, const char *what, const char *ca,
                             const char *pin) {
  char err[512];
  SSL_CTX *ctx = sfu_tls_client_ctx(ca, pin, err, sizeof(err));
  if (!ctx)
    sfu_confcheck_add(r, 1, "%s: %s", what, err);
  else
    SSL_CTX_free(ctx);
}

int sfu_confcheck_run(const sfu_config_t *c, sfu_confcheck_t *r) {
  char err[512];
  unsigned char ip[16];

  if (inet_pton(AF_INET, c->listen_host, ip) != 1 && inet_pton(AF_INET6, c->listen_host, ip) != 1)
    sfu_confcheck_add(r, 1, "listen_host '%s' is not an IP address", c->listen_host);
  if (c->public_url[0]) check_url(r, "public_url", c->public_url);
  if (sfu_config_check_rtc_bind(c, err, sizeof(err)) != 0) sfu_confcheck_add(r, 1, "%s", err);
  check_room_binary(c, r);
  check_data_dir(c, r);
  check_web_root(c, r);
  if (c->tls_cert_file[0] && c->tls_key_file[0]) {
    SSL_CTX *ctx = sfu_tls_server_ctx(c->tls_cert_file, c->tls_key_file, err, sizeof(err));
    if (!ctx)
      sfu_confcheck_add(r, 1, "%s", err);
    else
      SSL_CTX_free(ctx);
  }
  if (c->webhook_url[0] && check_url(r, "webhook_url", c->webhook_url) == 1)
    check_client_tls(r, "webhook", c->webhook_tls_ca_file, c->webhook_tls_pin);
  if (c->etcd_url[0]) {
    int https = check_url(r, "etcd_url", c->etcd_url);
    if (https == 1 || (https == 0 && c->fleet_tls_ca_file[0]))
      check_client_tls(r, "fleet", c->fleet_tls_ca_file, "");
  }

  if (c->api_key_generated || c->token_secret_generated)
    sfu_confcheck_add(r, 0,
                      "api_key or token_secret unset: new ones are generated at each start "
                      "(the control plane's key and tokens stop working after a restart)");
  if (c->dev)
    sfu_confcheck_add(r, 0, "dev = 1: POST /dev/join mints tokens for anyone who can reach sfud");
  if (!c->tls_cert_file[0] && !is_loopback(c->listen_host))
    sfu_confcheck_add(r, 0,
                      "plain HTTP on %s: the API key and tokens cross the network in clear "
                      "unless a TLS proxy is in front (tls_cert_file, docs/deploying.md#tls)",
                      c->listen_host);
  if (!is_loopback(c->listen_host) && is_loopback(c->rtc_addresses))
    sfu_confcheck_add(r, 0,
                      "rtc_addresses is %s: only clients on this host reach the media "
                      "(docs/deploying.md#public-address)",
                      c->rtc_addresses);
  return r->errors;
}

void sfu_confcheck_print(const sfu_config_t *c, const sfu_confcheck_t *r, FILE *out,
                         FILE *err) {
  if (r->errors == 0) {
    struct rlimit rl;
    int v6 = strchr(c->listen_host, ':') != NULL;
    fprintf(out, "configuration OK%s%s\n", c->config_file[0] ? ": " : " (no file)",
            c->config_file);
    fprintf(out, "  listen         %s://%s%s%s:%d\n", c->tls_cert_file[0] ? "https" : "http",
            v6 ? "[" : "", c->listen_host, v6 ? "]" : "", c->listen_port);
    if (c->public_url[0]) fprintf(out, "  public_url     %s\n", c->public_url);
    fprintf(out, "  media          %s, ports %s", c->rtc_addresses,
            c->rtc_port_min ? "" : "any");
    if (c->rtc_port_min) fprintf(out, "%d-%d", c->rtc_port_min, c->rtc_port_max);
    if (c->rtc_announced_address[0]) fprintf(out, ", announced %s", c->rtc_announced_address);
    fputc('\n', out);
    fprintf(out, "  data_dir       %s\n", c->data_dir);
    fprintf(out, "  room_binary    %s%s\n", c->room_binary, c->zygote ? " (zygote)" : "");
    fprintf(out, "  web_root       %s\n", c->web_root[0] ? c->web_root : "none");
    fprintf(out, "  tls            %s\n", c->tls_cert_file[0] ? c->tls_cert_file : "off");
    fprintf(out, "  keys           api_key %s, token_secret %s\n",
            c->api_key_generated ? "generated" : "set",
            c->token_secret_generated ? "generated" : "set");
    fprintf(out, "  webhook        %s\n", c->webhook_url[0] ? c->webhook_url : "none (GET /v1/events)");
    fprintf(out, "  fleet          %s\n", c->etcd_url[0] ? c->etcd_url : "none");
    fprintf(out, "  turn           %s\n", c->turn_urls[0] ? c->turn_urls : "none");
    fprintf(out, "  limits         %d rooms, %d participants a room, %d connections\n",
            c->max_rooms, c->max_participants, c->max_connections);
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
      fprintf(out, "  descriptors    %llu (the hard RLIMIT_NOFILE sfud raises its limit to)\n",
              (unsigned long long)rl.rlim_max);
    fprintf(out, "  log_level      %s\n", c->log_level);
  }
  for (int i = 0; i < r->n; i++)
    if (!r->line[i].error) fprintf(err, "sfud: warning: %s\n", r->line[i].text);
  for (int i = 0; i < r->n; i++)
    if (r->line[i].error) fprintf(err, "sfud: error: %s\n", r->line[i].text);
  if (r->errors + r->warnings > r->n)
    fprintf(err, "sfud: (%d more not shown)\n", r->errors + r->warnings - r->n);
  if (r->errors)
    fprintf(err, "sfud: configuration%s%s has %d error%s\n", c->config_file[0] ? " " : "",
            c->config_file, r->errors, r->errors == 1 ? "" : "s");
}
