/*
 * sfuctl.c -- an operator's command line for a node's control-plane API
 * (docs/sfuctl.md, docs/api.md).
 *
 * Each command is one or a few blocking requests through the client
 * stack's HTTP client (tools/client/http.c) on a private loop, then
 * either the API's JSON as it came (--json) or a table for people. The
 * command line is tools/sfuctl/cli.c's; the exit status tells a script
 * what went wrong (cli.h: usage, unreachable, 4xx, 5xx, other), and an
 * API error's JSON goes to stderr as the node sent it.
 *
 * `load` runs sfu-replay (tools/replay/) as a child rather than linking
 * it: the replay keeps its whole run in one process-wide state and ends
 * the process with its verdict, and the binary next to sfuctl is the one
 * built with it. Its summary comes back through a pipe; its stderr (the
 * progress line on a terminal, its messages) is sfuctl's.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <uv.h>

#include "sfu/base/sfu.h"
#include "tools/client/http.h"
#include "tools/sfuctl/cli.h"

static sfu_ctl_args_t A; /* the command line, for the whole run */

/* --- requests ------------------------------------------------------------- */

/* One finished request, copied out of the client's callback. */
typedef struct {
  int done;
  int status;   /* 0 when there is no answer */
  char *body;   /* malloc'd, NUL-terminated, or NULL */
  char err[256];
} answer_t;

static void on_answer(void *arg, const sfu_http_resp_t *r) {
  answer_t *an = arg;
  an->done = 1;
  an->status = r->status;
  an->body = r->body ? strdup(r->body) : NULL;
  if (r->err) snprintf(an->err, sizeof(an->err), "%s", r->err);
}

/* Appends `s` to buf (at *n of cap) percent-encoded as a path segment:
 * everything but A-Z a-z 0-9 - . _ ~ @ : is %XX. */
static void put_segment(char *buf, size_t cap, size_t *n, const char *s) {
  static const char hex[] = "0123456789ABCDEF";
  for (; *s && *n + 4 < cap; s++) {
    unsigned char c = (unsigned char)*s;
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
        strchr("-._~@:", c)) {
      buf[(*n)++] = (char)c;
    } else {
      buf[(*n)++] = '%';
      buf[(*n)++] = hex[c >> 4];
      buf[(*n)++] = hex[c & 15];
    }
  }
  buf[*n] = '\0';
}

/* The URL of an API path: --url without its trailing slashes, then `fmt`,
 * in which each %s is replaced by the next segment, percent-encoded. */
static void api_url(char *buf, size_t cap, const char *fmt, const char *s1, const char *s2) {
  size_t n = (size_t)snprintf(buf, cap, "%s", A.url);
  if (n >= cap) n = cap - 1;
  while (n > 0 && buf[n - 1] == '/') buf[--n] = '\0';
  const char *segs[2] = {s1, s2};
  int k = 0;
  for (const char *p = fmt; *p && n + 1 < cap; p++) {
    if (p[0] == '%' && p[1] == 's' && k < 2) {
      put_segment(buf, cap, &n, segs[k++]);
      p++;
    } else {
      buf[n++] = *p;
      buf[n] = '\0';
    }
  }
}

/* Prints an API error: the status and the body as the node sent it, on
 * stderr (--json: the body alone, so that a script can parse it). */
static void print_api_error(const char *method, const char *url, int status, const char *body) {
  const char *b = body && *body ? body : "";
  size_t len = strlen(b);
  while (len > 0 && (b[len - 1] == '\n' || b[len - 1] == '\r')) len--;
  if (A.json && len) fprintf(stderr, "%.*s\n", (int)len, b);
  else fprintf(stderr, "sfuctl: %s %s: HTTP %d%s%.*s\n", method, url, status, len ? ": " : "",
               (int)len, b);
}

/* Sends method to the API path and waits. On a 2xx answer returns 0 with
 * *out the parsed JSON body (NULL when empty; reference to release).
 * Otherwise prints why on stderr and returns the exit status: CONNECT (no
 * answer), 4XX, 5XX, OTHER (an answer that is not JSON, a 1xx/3xx). */
static int api(const char *method, const char *url, json_t *body, json_t **out) {
  uv_loop_t loop;
  answer_t an = {0};
  char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
  *out = NULL;
  if (uv_loop_init(&loop) != 0) {
    fprintf(stderr, "sfuctl: cannot start an event loop\n");
    free(text);
    return SFU_CTL_EXIT_OTHER;
  }
  int rc = sfu_http_request(&loop, method, url, A.key, text, on_answer, &an);
  free(text);
  if (rc == 0) uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  if (rc != 0) {
    fprintf(stderr, "sfuctl: %s: %s\n", url,
            rc == SFU_EINVAL ? "not a URL this client can use (http://HOST[:PORT] only)"
                             : sfu_strerror(rc));
    return rc == SFU_EINVAL ? SFU_CTL_EXIT_USAGE : SFU_CTL_EXIT_OTHER;
  }
  int exit_rc = SFU_CTL_EXIT_OK;
  if (!an.done || an.status == 0) {
    fprintf(stderr, "sfuctl: cannot reach %s: %s\n", A.url, an.err[0] ? an.err : "no answer");
    exit_rc = SFU_CTL_EXIT_CONNECT;
  } else if (an.status >= 400) {
    print_api_error(method, url, an.status, an.body);
    exit_rc = an.status >= 500 ? SFU_CTL_EXIT_5XX : SFU_CTL_EXIT_4XX;
  } else if (an.status < 200 || an.status >= 300) {
    print_api_error(method, url, an.status, an.body);
    exit_rc = SFU_CTL_EXIT_OTHER;
  } else if (an.body && *an.body) {
    json_error_t je;
    *out = json_loads(an.body, JSON_DECODE_ANY, &je);
    if (!*out) {
      fprintf(stderr, "sfuctl: %s %s: HTTP %d with a body that is not JSON: %.200s\n", method,
              url, an.status, an.body);
      exit_rc = SFU_CTL_EXIT_OTHER;
    }
  }
  free(an.body);
  return exit_rc;
}

/* --- output ---------------------------------------------------------------- */

static void print_json(const json_t *j) {
  if (!j) return;
  json_dumpf(j, stdout, JSON_INDENT(2) | JSON_ENCODE_ANY);
  fputc('\n', stdout);
}

/* A command's call: `method` on `path` (its %s filled with a, b), `body`
 * taken (NULL = none); the answer printed as JSON under --json, else
 * shown by show(). The exit status. */
static int call(const char *method, const char *path, const char *a, const char *b, json_t *body,
                void (*show)(const json_t *out)) {
  json_t *out;
  char url[1024];
  api_url(url, sizeof(url), path, a, b);
  int rc = api(method, url, body, &out);
  json_decref(body);
  if (rc) return rc;
  if (A.json) print_json(out);
  else show(out);
  json_decref(out);
  return 0;
}

static const char *str_of(const json_t *o, const char *key, const char *dflt) {
  const char *s = json_string_value(json_object_get(o, key));
  return s ? s : dflt;
}

static json_int_t int_of(const json_t *o, const char *key) {
  const json_t *v = json_object_get(o, key);
  return json_is_integer(v) ? json_integer_value(v) : (json_int_t)json_number_value(v);
}

/* A value as a table cell: strings as they are, null as "-", the rest as
 * compact JSON. */
static char *cell(const json_t *v) {
  if (!v || json_is_null(v)) return strdup("-");
  if (json_is_string(v)) return strdup(json_string_value(v));
  char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
  return s ? s : strdup("?");
}

/* "3h04m", "2m05s", "42s". */
static void fmt_uptime(char *buf, size_t cap, json_int_t s) {
  if (s >= 86400) snprintf(buf, cap, "%lldd%02lldh", (long long)(s / 86400), (long long)(s % 86400 / 3600));
  else if (s >= 3600) snprintf(buf, cap, "%lldh%02lldm", (long long)(s / 3600), (long long)(s % 3600 / 60));
  else if (s >= 60) snprintf(buf, cap, "%lldm%02llds", (long long)(s / 60), (long long)(s % 60));
  else snprintf(buf, cap, "%llds", (long long)s);
}

/* A table: a header row, then rows of cells (malloc'd strings, owned). */
#define MAX_COLS 8
typedef struct {
  int ncols, nrows, cap;
  const char *head[MAX_COLS];
  char **cells; /* nrows * ncols */
} table_t;

static void table_init(table_t *t, int ncols, const char *const *head) {
  memset(t, 0, sizeof(*t));
  t->ncols = ncols;
  for (int i = 0; i < ncols; i++) t->head[i] = head[i];
}

/* Adds a row of ncols cells (taken; NULL counts as "-"). */
static void table_row(table_t *t, char **cells) {
  if (t->nrows == t->cap) {
    int cap = t->cap ? 2 * t->cap : 16;
    char **c = realloc(t->cells, (size_t)cap * (size_t)t->ncols * sizeof(char *));
    if (!c) {
      for (int i = 0; i < t->ncols; i++) free(cells[i]);
      return;
    }
    t->cells = c;
    t->cap = cap;
  }
  for (int i = 0; i < t->ncols; i++)
    t->cells[t->nrows * t->ncols + i] = cells[i] ? cells[i] : strdup("-");
  t->nrows++;
}

/* Prints the table, columns padded to their widest cell, indented by
 * `indent` spaces, and frees it. */
static void table_print(table_t *t, int indent) {
  size_t w[MAX_COLS];
  for (int c = 0; c < t->ncols; c++) {
    w[c] = strlen(t->head[c]);
    for (int r = 0; r < t->nrows; r++) {
      size_t l = strlen(t->cells[r * t->ncols + c]);
      if (l > w[c]) w[c] = l;
    }
  }
  for (int r = -1; r < t->nrows; r++) {
    char line[2048];
    size_t n = (size_t)snprintf(line, sizeof(line), "%*s", indent, "");
    for (int c = 0; c < t->ncols && n < sizeof(line); c++) {
      const char *s = r < 0 ? t->head[c] : t->cells[r * t->ncols + c];
      n += (size_t)snprintf(line + n, sizeof(line) - n, "%-*s  ", (int)w[c], s);
    }
    if (n >= sizeof(line)) n = sizeof(line) - 1;
    while (n > 0 && line[n - 1] == ' ') n--; /* an empty last column leaves no blanks */
    printf("%.*s\n", (int)n, line);
  }
  for (int i = 0; i < t->nrows * t->ncols; i++) free(t->cells[i]);
  free(t->cells);
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...) {
  va_list ap;
  char *s = NULL;
  va_start(ap, f);
  if (vasprintf(&s, f, ap) < 0) s = NULL;
  va_end(ap);
  return s;
}

/* --- rooms ----------------------------------------------------------------- */

static int room_row(table_t *t, const json_t *r) {
  char up[32];
  fmt_uptime(up, sizeof(up), int_of(r, "uptime_s"));
  char *row[] = {strdup(str_of(r, "room_id", "?")), strdup(str_of(r, "name", "-")),
                 strdup(str_of(r, "state", "?")),
                 fmt("%lld/%lld", (long long)int_of(r, "participants"),
                     (long long)int_of(r, "max_participants")),
                 strdup(up), fmt("%lld", (long long)int_of(r, "pid")),
                 strdup(str_of(r, "end_reason", ""))};
  table_row(t, row);
  return 0;
}

static const char *const ROOM_HEAD[] = {"ROOM_ID", "NAME", "STATE", "PARTICIPANTS", "UPTIME",
                                        "PID", "ENDED"};

static void show_created(const json_t *out) {
  table_t t;
  table_init(&t, 7, ROOM_HEAD);
  room_row(&t, out);
  table_print(&t, 0);
  printf("ws_url: %s\n", str_of(out, "ws_url", "-"));
}

static int cmd_rooms_create(void) {
  json_t *body = json_object();
  const char *v;
  int64_t n;
  if (A.npos > 0) json_object_set_new(body, "name", json_string(A.pos[0]));
  static const struct { const char *opt, *field; int duration; } ints[] = {
      {"max-participants", "max_participants", 0},
      {"empty-timeout", "empty_timeout_s", 1},
      {"max-audio-streams", "max_audio_streams", 0}};
  for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
    if (!(v = sfu_ctl_opt(&A, ints[i].opt))) continue;
    if ((ints[i].duration ? sfu_ctl_duration(v, &n) : sfu_ctl_uint(v, INT_MAX, &n)) != 0) {
      fprintf(stderr, "sfuctl: --%s: '%s' is not %s\n", ints[i].opt, v,
              ints[i].duration ? "a duration (90, 90s, 15m, 2h, 1d)" : "a whole number");
      json_decref(body);
      return SFU_CTL_EXIT_USAGE;
    }
    json_object_set_new(body, ints[i].field, json_integer(n));
  }
  if ((v = sfu_ctl_opt(&A, "metadata"))) {
    json_error_t je;
    json_t *m = json_loads(v, JSON_DECODE_ANY, &je);
    if (!m) {
      fprintf(stderr, "sfuctl: --metadata is not JSON: %s\n", je.text);
      json_decref(body);
      return SFU_CTL_EXIT_USAGE;
    }
    json_object_set_new(body, "metadata", m);
  }
  if ((v = sfu_ctl_opt(&A, "region"))) json_object_set_new(body, "region", json_string(v));
  if ((v = sfu_ctl_opt(&A, "node"))) json_object_set_new(body, "node", json_string(v));
  return call("POST", "/v1/rooms", NULL, NULL, body, show_created);
}

static void show_rooms(const json_t *out) {
  const json_t *rooms = json_object_get(out, "rooms"), *r;
  size_t i;
  if (json_array_size(rooms) == 0) {
    printf("no rooms\n");
    return;
  }
  table_t t;
  table_init(&t, 7, ROOM_HEAD);
  json_array_foreach(rooms, i, r) room_row(&t, r);
  table_print(&t, 0);
}

static int cmd_rooms_list(void) { return call("GET", "/v1/rooms", NULL, NULL, NULL, show_rooms); }

/* The room detail for people: the record, who is in it, moderation,
 * relays, a few counters. */
static void show_room(const json_t *r) {
  char up[32];
  fmt_uptime(up, sizeof(up), int_of(r, "uptime_s"));
  printf("room_id:       %s\n", str_of(r, "room_id", "?"));
  printf("name:          %s\n", str_of(r, "name", "-"));
  printf("state:         %s%s%s\n", str_of(r, "state", "?"),
         json_object_get(r, "end_reason") ? " " : "", str_of(r, "end_reason", ""));
  printf("pid:           %lld\n", (long long)int_of(r, "pid"));
  printf("uptime:        %s\n", up);
  printf("participants:  %lld of %lld\n", (long long)int_of(r, "participants"),
         (long long)int_of(r, "max_participants"));
  printf("empty_timeout: %llds\n", (long long)int_of(r, "empty_timeout_s"));
  if (json_object_get(r, "max_audio_streams"))
    printf("audio streams: %lld loudest\n", (long long)int_of(r, "max_audio_streams"));
  if (json_object_get(r, "metadata")) {
    char *m = cell(json_object_get(r, "metadata"));
    printf("metadata:      %s\n", m);
    free(m);
  }
  if (json_object_get(r, "migration")) {
    char *m = cell(json_object_get(r, "migration"));
    printf("migration:     %s\n", m);
    free(m);
  }
  printf("ws_url:        %s\n", str_of(r, "ws_url", "-"));

  const json_t *mod = json_object_get(r, "moderation");
  const json_t *muted = json_object_get(mod, "server_muted");
  const json_t *people = json_object_get(r, "people"), *p, *m;
  size_t i, k;
  printf("\npeople (%zu):\n", json_array_size(people));
  if (json_array_size(people)) {
    static const char *const head[] = {"IDENTITY", "SID", "SERVER_MUTED"};
    table_t t;
    table_init(&t, 3, head);
    json_array_foreach(people, i, p) {
      const char *id = str_of(p, "identity", "?");
      int is_muted = 0;
      json_array_foreach(muted, k, m) is_muted |= json_string_value(m) &&
                                                  strcmp(json_string_value(m), id) == 0;
      char *row[] = {strdup(id), strdup(str_of(p, "sid", "-")), strdup(is_muted ? "yes" : "no")};
      table_row(&t, row);
    }
    table_print(&t, 2);
  }
  if (mod) {
    printf("\nmoderation:\n  server muted: ");
    if (json_array_size(muted) == 0) printf("-");
    json_array_foreach(muted, k, m) printf("%s%s", k ? ", " : "", json_string_value(m));
    printf("\n  kicks: %lld, deny list: %lld, joins refused: %lld\n",
           (long long)int_of(mod, "kicks"), (long long)int_of(mod, "deny_list"),
           (long long)int_of(mod, "joins_refused"));
    const json_t *bans = json_object_get(mod, "bans"), *b;
    if (json_array_size(bans)) {
      static const char *const head[] = {"BANNED", "REASON"};
      table_t t;
      table_init(&t, 2, head);
      json_array_foreach(bans, i, b) {
        char *row[] = {strdup(str_of(b, "identity", "?")), strdup(str_of(b, "reason", "-"))};
        table_row(&t, row);
      }
      table_print(&t, 2);
    }
  }
  const json_t *relays = json_object_get(r, "relays"), *x;
  if (json_array_size(relays)) {
    static const char *const head[] = {"RELAY_ID", "STATE", "PID", "PARTICIPANTS"};
    table_t t;
    printf("\nrelays:\n");
    table_init(&t, 4, head);
    json_array_foreach(relays, i, x) {
      char *row[] = {strdup(str_of(x, "relay_id", "?")), strdup(str_of(x, "state", "?")),
                     fmt("%lld", (long long)int_of(x, "pid")),
                     fmt("%lld", (long long)int_of(x, "participants"))};
      table_row(&t, row);
    }
    table_print(&t, 2);
  }
  const json_t *stats = json_object_get(r, "stats");
  if (stats) {
    const json_t *pk = json_object_get(stats, "packets");
    printf("\npackets: rtp in %lld, out %lld; rtcp in %lld, out %lld; cpu %.2f s\n",
           (long long)int_of(pk, "rtp_in"), (long long)int_of(pk, "rtp_out"),
           (long long)int_of(pk, "rtcp_in"), (long long)int_of(pk, "rtcp_out"),
           (double)int_of(stats, "cpu_us") / 1e6);
    const json_t *cap = json_object_get(stats, "capture");
    if (json_is_object(cap))
      printf("capture: %s %s, %lld packets, %lld bytes%s%s\n",
             json_is_true(json_object_get(cap, "active")) ? "active" : "ended",
             str_of(cap, "file", "-"), (long long)int_of(cap, "packets"),
             (long long)int_of(cap, "bytes"), json_object_get(cap, "stopped") ? ", stopped: " : "",
             str_of(cap, "stopped", ""));
  }
}

static int cmd_rooms_show(void) {
  return call("GET", "/v1/rooms/%s", A.pos[0], NULL, NULL, show_room);
}

static void show_closed(const json_t *out) {
  printf("room %s: %s\n", str_of(out, "room_id", A.pos[0]), str_of(out, "state", "closed"));
}

static int cmd_rooms_close(void) {
  return call("DELETE", "/v1/rooms/%s", A.pos[0], NULL, NULL, show_closed);
}

/* --- tokens and participants ------------------------------------------------ */

static void show_token(const json_t *out) { printf("%s\n", str_of(out, "token", "")); }

static int cmd_token(void) {
  json_t *body = json_pack("{s:s}", "identity", A.pos[1]);
  const char *v;
  int64_t ttl;
  if ((v = sfu_ctl_opt(&A, "ttl"))) {
    if (sfu_ctl_duration(v, &ttl) != 0) {
      fprintf(stderr, "sfuctl: --ttl: '%s' is not a duration (90, 90s, 15m, 2h, 1d)\n", v);
      json_decref(body);
      return SFU_CTL_EXIT_USAGE;
    }
    json_object_set_new(body, "ttl_s", json_integer(ttl));
  }
  if ((v = sfu_ctl_opt(&A, "name"))) json_object_set_new(body, "name", json_string(v));
  if ((v = sfu_ctl_opt(&A, "grants"))) {
    static const char *const known[] = {"publish", "subscribe", "publish_data", "admin"};
    json_t *g = json_object();
    for (int i = 0; i < 4; i++) json_object_set_new(g, known[i], json_false());
    char buf[256], *save = NULL;
    snprintf(buf, sizeof(buf), "%s", v);
    for (char *w = strtok_r(buf, ", ", &save); w; w = strtok_r(NULL, ", ", &save)) {
      int ok = 0;
      for (int i = 0; i < 4; i++) ok |= strcmp(w, known[i]) == 0;
      if (!ok) {
        fprintf(stderr, "sfuctl: --grants: unknown grant '%s' (publish, subscribe, "
                        "publish_data, admin)\n", w);
        json_decref(g);
        json_decref(body);
        return SFU_CTL_EXIT_USAGE;
      }
      json_object_set_new(g, w, json_true());
    }
    json_object_set_new(body, "grants", g);
  }
  return call("POST", "/v1/rooms/%s/tokens", A.pos[0], NULL, body, show_token);
}

/* The participant commands: method, path, what the answer says was done. */
static const struct {
  int id;
  const char *method, *path, *done;
} PART[] = {{SFU_CTL_PART_MUTE, "POST", "/v1/rooms/%s/participants/%s/mute", "server-muted"},
            {SFU_CTL_PART_UNMUTE, "POST", "/v1/rooms/%s/participants/%s/mute", "unmuted"},
            {SFU_CTL_PART_KICK, "DELETE", "/v1/rooms/%s/participants/%s", "kicked"},
            {SFU_CTL_PART_BAN, "POST", "/v1/rooms/%s/participants/%s/ban", "banned"},
            {SFU_CTL_PART_UNBAN, "DELETE", "/v1/rooms/%s/participants/%s/ban", "unbanned"}};

static int part_of(int id) {
  int k = 0;
  while (k + 1 < (int)(sizeof(PART) / sizeof(PART[0])) && PART[k].id != id) k++;
  return k;
}

static void show_participant(const json_t *out) {
  printf("%s %s in room %s\n", str_of(out, "identity", A.pos[1]), PART[part_of(A.cmd->id)].done,
         str_of(out, "room_id", A.pos[0]));
}

static int cmd_participant(void) {
  int id = A.cmd->id, k = part_of(id);
  const char *reason = sfu_ctl_opt(&A, "reason");
  json_t *body = id == SFU_CTL_PART_MUTE     ? json_pack("{s:b}", "muted", 1)
                 : id == SFU_CTL_PART_UNMUTE ? json_pack("{s:b}", "muted", 0)
                 : id == SFU_CTL_PART_BAN    ? (reason ? json_pack("{s:s}", "reason", reason)
                                                       : json_object())
                                             : NULL;
  return call(PART[k].method, PART[k].path, A.pos[0], A.pos[1], body, show_participant);
}

/* --- node and fleet ---------------------------------------------------------- */

static void show_node(const json_t *n) {
  char up[32];
  const json_t *cap = json_object_get(n, "capacity"), *load = json_object_get(n, "load");
  const json_t *cpu = json_object_get(load, "cpu"), *fleet = json_object_get(n, "fleet");
  fmt_uptime(up, sizeof(up), int_of(n, "uptime_s"));
  const char *id = str_of(n, "node_id", ""), *host = str_of(n, "hostname", "?");
  printf("node:          %s%s%s%s, region %s\n", *id ? id : host, *id ? " (" : "", *id ? host : "",
         *id ? ")" : "", str_of(n, "region", "?"));
  printf("version:       %s\n", str_of(n, "version", "?"));
  printf("srtp:          %s\n", str_of(n, "srtp", "?"));
  printf("uptime:        %s\n", up);
  printf("draining:      %s\n", json_is_true(json_object_get(n, "draining")) ? "yes" : "no");
  printf("rooms:         %lld of %lld (%lld crashed, listed)\n", (long long)int_of(load, "rooms"),
         (long long)int_of(cap, "max_rooms"), (long long)int_of(load, "rooms_crashed"));
  printf("participants:  %lld (at most %lld a room)\n", (long long)int_of(load, "participants"),
         (long long)int_of(cap, "max_participants_per_room"));
  printf("cpu:           load %.2f on %lld cores; sfud %.1f s, reaped rooms %.1f s\n",
         json_number_value(json_object_get(cpu, "loadavg_1m")), (long long)int_of(cpu, "cores"),
         json_number_value(json_object_get(cpu, "sfud_seconds")),
         json_number_value(json_object_get(cpu, "reaped_rooms_seconds")));
  if (json_is_object(fleet))
    printf("fleet:         %s, lease %s, etcd %s\n",
           json_is_true(json_object_get(fleet, "registered")) ? "registered" : "NOT registered",
           str_of(fleet, "lease_id", "-"), str_of(fleet, "etcd_url", "-"));
  else
    printf("fleet:         none (alone)\n");
  if (json_object_get(n, "rooms_moving"))
    printf("rooms moving:  %lld\n", (long long)int_of(n, "rooms_moving"));
}

static int cmd_node_status(void) { return call("GET", "/v1/node", NULL, NULL, NULL, show_node); }

static void show_drained(const json_t *out) {
  printf(sfu_ctl_opt(&A, "off") ? "accepting rooms again\n\n"
                                : "draining: new rooms are refused, running rooms go on%s\n\n",
         sfu_ctl_opt(&A, "migrate") ? " or move to other nodes" : "");
  show_node(out);
}

static int cmd_node_drain(void) {
  int off = sfu_ctl_opt(&A, "off") != NULL, migrate = sfu_ctl_opt(&A, "migrate") != NULL;
  json_t *body = json_pack("{s:b}", "draining", !off);
  if (migrate) json_object_set_new(body, "migrate", json_true());
  return call("POST", "/v1/node/drain", NULL, NULL, body, show_drained);
}

static void show_fleet(const json_t *out) {
  static const char *const head[] = {"NODE", "REGION", "ROOMS", "PARTICIPANTS", "LOAD",
                                     "DRAINING", "VERSION", "API_URL"};
  const json_t *nodes = json_object_get(out, "nodes"), *n;
  size_t i;
  table_t t;
  table_init(&t, 8, head);
  json_array_foreach(nodes, i, n) {
    char *row[] = {fmt("%s%s", str_of(n, "node_id", "?"),
                       strcmp(str_of(n, "node_id", ""), str_of(out, "node_id", "")) == 0 ? " *"
                                                                                          : ""),
                   strdup(str_of(n, "region", "-")),
                   fmt("%lld/%lld", (long long)int_of(n, "rooms"), (long long)int_of(n, "max_rooms")),
                   fmt("%lld", (long long)int_of(n, "participants")),
                   fmt("%.2f", json_number_value(json_object_get(n, "loadavg_1m"))),
                   strdup(json_is_true(json_object_get(n, "draining")) ? "yes" : "no"),
                   strdup(str_of(n, "version", "-")), strdup(str_of(n, "api_url", "-"))};
    table_row(&t, row);
  }
  table_print(&t, 0);
  printf("\n%zu rooms in the fleet; %zu lost with their node\n",
         json_array_size(json_object_get(out, "rooms")),
         json_array_size(json_object_get(out, "lost_rooms")));
  const json_t *lost = json_object_get(out, "lost_rooms"), *l;
  json_array_foreach(lost, i, l) {
    char *c = cell(l);
    printf("  lost: %s\n", c);
    free(c);
  }
}

static int cmd_fleet(void) { return call("GET", "/v1/fleet", NULL, NULL, NULL, show_fleet); }

/* --- events ------------------------------------------------------------------ */

/* One journal record: a JSON line, or "seq time type room key=value...". */
static void print_record(const json_t *rec) {
  if (A.json) {
    json_dumpf(rec, stdout, JSON_COMPACT);
    fputc('\n', stdout);
    return;
  }
  json_int_t ts = int_of(rec, "ts_ms");
  time_t secs = (time_t)(ts / 1000);
  struct tm tm;
  char when[32] = "-";
  if (gmtime_r(&secs, &tm)) {
    size_t n = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + n, sizeof(when) - n, ".%03dZ", (int)(ts % 1000));
  }
  printf("%-6lld %s  %-20s %s", (long long)int_of(rec, "seq"), when, str_of(rec, "type", "?"),
         str_of(rec, "room_id", "-"));
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)rec, k, v) {
    if (!strcmp(k, "seq") || !strcmp(k, "ts_ms") || !strcmp(k, "type") || !strcmp(k, "room_id") ||
        !strcmp(k, "id"))
      continue;
    char *c = cell(v);
    printf(" %s=%s", k, c);
    free(c);
  }
  fputc('\n', stdout);
}

/* GET /v1/events?after=... once: *page (reference) and the cursor moved. */
static int events_page(json_int_t *after, int limit, json_t **page) {
  char url[1100], path[96];
  snprintf(path, sizeof(path), "/v1/events?after=%lld&limit=%d", (long long)*after, limit);
  api_url(url, sizeof(url), path, NULL, NULL);
  int rc = api("GET", url, NULL, page);
  if (rc) return rc;
  if (!json_is_array(json_object_get(*page, "records"))) {
    fprintf(stderr, "sfuctl: %s: no 'records' in the answer\n", url);
    json_decref(*page);
    *page = NULL;
    return SFU_CTL_EXIT_OTHER;
  }
  json_int_t next = int_of(*page, "next_after");
  if (next > *after) *after = next;
  return 0;
}

static int cmd_events_tail(void) {
  const char *v;
  int64_t last = 20, after = -1, interval = 1;
  if ((v = sfu_ctl_opt(&A, "last")) && sfu_ctl_uint(v, 1000000, &last) != 0) {
    fprintf(stderr, "sfuctl: --last: '%s' is not a whole number up to 1000000\n", v);
    return SFU_CTL_EXIT_USAGE;
  }
  if ((v = sfu_ctl_opt(&A, "after")) && sfu_ctl_uint(v, INT64_MAX / 10, &after) != 0) {
    fprintf(stderr, "sfuctl: --after: '%s' is not a sequence number\n", v);
    return SFU_CTL_EXIT_USAGE;
  }
  if ((v = sfu_ctl_opt(&A, "interval")) && (sfu_ctl_duration(v, &interval) != 0 || interval == 0)) {
    fprintf(stderr, "sfuctl: --interval: '%s' is not a duration of 1 s or more\n", v);
    return SFU_CTL_EXIT_USAGE;
  }
  int follow = sfu_ctl_opt(&A, "follow") != NULL;
  json_int_t cursor = after >= 0 ? after : 0;
  json_t *page, *rec;
  size_t i;
  int rc;
  if (after < 0) { /* the newest `last`: read to the end, keep a ring of them */
    json_t **ring = calloc((size_t)(last ? last : 1), sizeof(json_t *));
    size_t n = 0;
    if (!ring) return SFU_CTL_EXIT_OTHER;
    for (;;) {
      json_int_t before = cursor;
      if ((rc = events_page(&cursor, 1000, &page)) != 0) break;
      json_t *recs = json_object_get(page, "records");
      json_array_foreach(recs, i, rec) {
        if (!last) continue;
        json_decref(ring[n % (size_t)last]);
        ring[n++ % (size_t)last] = json_incref(rec);
      }
      size_t got = json_array_size(recs);
      json_decref(page);
      if (got == 0 || cursor == before) break;
    }
    size_t first = n > (size_t)last ? n - (size_t)last : 0;
    for (size_t k = first; k < n && last; k++) print_record(ring[k % (size_t)last]);
    for (size_t k = 0; k < (size_t)last; k++) json_decref(ring[k]);
    free(ring);
    if (rc) return rc;
  } else {
    for (;;) {
      if ((rc = events_page(&cursor, 1000, &page)) != 0) return rc;
      json_t *recs = json_object_get(page, "records");
      json_array_foreach(recs, i, rec) print_record(rec);
      size_t got = json_array_size(recs);
      json_decref(page);
      if (got == 0) break;
    }
  }
  fflush(stdout);
  while (follow) {
    sleep((unsigned)interval);
    if ((rc = events_page(&cursor, 1000, &page)) != 0) return rc;
    json_array_foreach(json_object_get(page, "records"), i, rec) print_record(rec);
    json_decref(page);
    fflush(stdout);
  }
  return 0;
}

/* --- capture ----------------------------------------------------------------- */

static void show_capture(const json_t *out) {
  if (strcmp(A.pos[1], "start") == 0)
    printf("capturing room %s to %s on the node (at most %lld MiB, %lld s)\n",
           str_of(out, "room_id", A.pos[0]), str_of(out, "file", "?"),
           (long long)int_of(out, "max_mib"), (long long)int_of(out, "max_seconds"));
  else
    printf("capture of room %s stopped\n", str_of(out, "room_id", A.pos[0]));
}

static int cmd_capture(void) {
  const char *action = A.pos[1], *v;
  int64_t n;
  if (strcmp(action, "start") != 0 && strcmp(action, "stop") != 0) {
    fprintf(stderr, "sfuctl: capture: '%s' is neither start nor stop\n", action);
    return SFU_CTL_EXIT_USAGE;
  }
  json_t *body = json_pack("{s:s}", "action", action);
  if ((v = sfu_ctl_opt(&A, "max-mib"))) {
    if (sfu_ctl_uint(v, INT_MAX, &n) != 0) {
      fprintf(stderr, "sfuctl: --max-mib: '%s' is not a whole number\n", v);
      json_decref(body);
      return SFU_CTL_EXIT_USAGE;
    }
    json_object_set_new(body, "max_mib", json_integer(n));
  }
  if ((v = sfu_ctl_opt(&A, "max-seconds"))) {
    if (sfu_ctl_duration(v, &n) != 0) {
      fprintf(stderr, "sfuctl: --max-seconds: '%s' is not a duration\n", v);
      json_decref(body);
      return SFU_CTL_EXIT_USAGE;
    }
    json_object_set_new(body, "max_seconds", json_integer(n));
  }
  return call("POST", "/v1/rooms/%s/capture", A.pos[0], NULL, body, show_capture);
}

/* --- load ---------------------------------------------------------------------- */

/* The sfu-replay to run: --replay, $SFU_REPLAY, the one next to this
 * binary, else "sfu-replay" from PATH. */
static void replay_path(char *buf, size_t cap) {
  const char *v = sfu_ctl_opt(&A, "replay");
  if (!v || !*v) v = getenv("SFU_REPLAY");
  if (v && *v) {
    snprintf(buf, cap, "%s", v);
    return;
  }
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n > 0) {
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (slash) {
      snprintf(slash + 1, sizeof(self) - (size_t)(slash + 1 - self), "sfu-replay");
      if (access(self, X_OK) == 0) {
        snprintf(buf, cap, "%s", self);
        return;
      }
    }
  }
  snprintf(buf, cap, "sfu-replay");
}

/* One sfu-replay run (scenario may be NULL: the words after `--` say what
 * to replay). *summary: its JSON summary (reference) or NULL. Returns its
 * exit status, or -1 when it could not run or died of a signal. */
static int run_replay(const char *replay, const char *scenario, json_t **summary) {
  char *argv[64 + 16];
  int n = 0, fds[2];
  *summary = NULL;
  argv[n++] = (char *)replay;
  argv[n++] = "--server";
  argv[n++] = (char *)A.url;
  if (A.key) {
    argv[n++] = "--api-key";
    argv[n++] = (char *)A.key;
  }
  argv[n++] = "--json";
  argv[n++] = "-";
  if (isatty(STDERR_FILENO) && !sfu_ctl_opt(&A, "no-progress")) argv[n++] = "--progress";
  if (scenario) {
    argv[n++] = "--scenario";
    argv[n++] = (char *)scenario;
  }
  for (int i = 0; i < A.nrest && n < 64 + 14; i++) argv[n++] = A.rest[i];
  argv[n] = NULL;
  if (pipe(fds) != 0) {
    fprintf(stderr, "sfuctl: pipe: %s\n", strerror(errno));
    return -1;
  }
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    fprintf(stderr, "sfuctl: fork: %s\n", strerror(errno));
    close(fds[0]);
    close(fds[1]);
    return -1;
  }
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    close(fds[0]);
    close(fds[1]);
    execvp(replay, argv);
    fprintf(stderr, "sfuctl: cannot run %s: %s (--replay PATH or $SFU_REPLAY)\n", replay,
            strerror(errno));
    _exit(127);
  }
  close(fds[1]);
  /* Ctrl-C reaches sfu-replay too, which ends its run and prints its
   * summary: wait for it rather than die first. */
  struct sigaction ign = {.sa_handler = SIG_IGN}, old_int;
  sigaction(SIGINT, &ign, &old_int);
  size_t len = 0, cap = 0;
  char *out = NULL;
  for (;;) {
    if (len + 4096 > cap) {
      char *o = realloc(out, cap = cap ? 2 * cap : 65536);
      if (!o) break;
      out = o;
    }
    ssize_t r = read(fds[0], out + len, cap - len - 1);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    len += (size_t)r;
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  sigaction(SIGINT, &old_int, NULL);
  if (out) {
    out[len] = '\0';
    json_error_t je;
    *summary = json_loads(out, 0, &je);
  }
  free(out);
  if (WIFEXITED(status)) return WEXITSTATUS(status) == 127 ? -1 : WEXITSTATUS(status);
  fprintf(stderr, "sfuctl: %s died of signal %d\n", replay, WTERMSIG(status));
  return -1;
}

static int cmd_load(void) {
  char replay[PATH_MAX];
  int failed = 0;
  if (A.npos == 0 && A.nrest == 0) {
    fprintf(stderr, "sfuctl: load: give scenario files, or sfu-replay's options after --\n");
    return SFU_CTL_EXIT_USAGE;
  }
  replay_path(replay, sizeof(replay));
  for (int i = 0; i < (A.npos ? A.npos : 1); i++) {
    const char *scenario = A.npos ? A.pos[i] : NULL, *what = scenario ? scenario : "sfu-replay";
    json_t *sum;
    int st = run_replay(replay, scenario, &sum);
    if (A.json && sum) {
      json_dumpf(sum, stdout, JSON_COMPACT);
      fputc('\n', stdout);
    } else if (sum) {
      const json_t *lat = json_object_get(sum, "latency_us");
      printf("%s: %s: %lld participants in %lld rooms, %.1f s; %lld packets sent, %lld received, "
             "%lld lost; latency p50 %.2f ms, p99 %.2f ms%s%s\n",
             what, st == 0 ? "ok" : "FAILED", (long long)int_of(sum, "participants"),
             (long long)int_of(sum, "rooms"), json_number_value(json_object_get(sum, "duration_s")),
             (long long)int_of(sum, "sent"), (long long)int_of(sum, "received"),
             (long long)int_of(sum, "lost"), (double)int_of(lat, "p50") / 1e3,
             (double)int_of(lat, "p99") / 1e3, json_is_string(json_object_get(sum, "failure")) ? ": " : "",
             str_of(sum, "failure", ""));
    }
    if (st != 0) {
      if (!sum) fprintf(stderr, "sfuctl: %s: sfu-replay ended with status %d\n", what, st);
      failed = 1;
    }
    fflush(stdout);
    json_decref(sum);
  }
  return failed ? SFU_CTL_EXIT_OTHER : 0;
}

/* --- main ---------------------------------------------------------------------- */

int main(int argc, char **argv) {
  int rc = sfu_ctl_parse(&A, argc, argv, getenv("SFU_URL"), getenv("SFU_API_KEY"));
  if (rc) {
    fprintf(stderr, "sfuctl: %s\n\n", A.err);
    sfu_ctl_usage(stderr, &A);
    return rc;
  }
  if (A.help) {
    sfu_ctl_usage(stdout, &A);
    return 0;
  }
  if (A.version) {
    printf("sfuctl %s\n", SFU_VERSION);
    return 0;
  }
  signal(SIGPIPE, SIG_IGN);
  switch (A.cmd->id) {
  case SFU_CTL_ROOMS_CREATE: return cmd_rooms_create();
  case SFU_CTL_ROOMS_LIST: return cmd_rooms_list();
  case SFU_CTL_ROOMS_SHOW: return cmd_rooms_show();
  case SFU_CTL_ROOMS_CLOSE: return cmd_rooms_close();
  case SFU_CTL_TOKEN: return cmd_token();
  case SFU_CTL_PART_MUTE:
  case SFU_CTL_PART_UNMUTE:
  case SFU_CTL_PART_KICK:
  case SFU_CTL_PART_BAN:
  case SFU_CTL_PART_UNBAN: return cmd_participant();
  case SFU_CTL_NODE_STATUS: return cmd_node_status();
  case SFU_CTL_NODE_DRAIN: return cmd_node_drain();
  case SFU_CTL_FLEET: return cmd_fleet();
  case SFU_CTL_EVENTS_TAIL: return cmd_events_tail();
  case SFU_CTL_CAPTURE: return cmd_capture();
  case SFU_CTL_LOAD: return cmd_load();
  }
  return SFU_CTL_EXIT_USAGE;
}
