/*
 * test_wsclient.c -- the HTTP and WebSocket client (tools/client/) against
 * a real sfud with real room processes, all on one libuv loop.
 *
 * Each sfud test starts its own sfud (SFUD_PATH, ROOM_PATH from CMake) on a
 * free loopback port with a temporary data dir, its log in that dir, and
 * kills it by PID in the teardown. Two cases sfud cannot produce (a message
 * over the client's 1 MiB bound, a wrong Sec-WebSocket-Accept) use a small
 * fake server on the test loop. Every loop test ends with uv_loop_close()
 * == 0: the clients closed every handle they opened.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <arpa/inet.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <uv.h>

#include "sfu/base/sfu.h"
#include "tools/client/http.h"
#include "tools/client/wsclient.h"

#define API_KEY "test-key"
#define TOKEN_SECRET "test-secret-0123456789abcdef0123456789"
#define MANY 200
/* Connects+joins awaiting their welcome at once in the MANY test. sfud
 * itself drops messages when MANY joins arrive in one burst: the room's
 * O(n^2) participant_joined fan-out overflows its 8 MiB IPC queue to sfud
 * ("IPC send failed: try again") and welcomes are lost. Connecting all
 * first and pacing only the joins is no good either: sfud closes a socket
 * with no join within 10 s (4008), which a slow (ASan) build reaches. */
#define JOIN_WINDOW 50

/* --- sfud --------------------------------------------------------------- */

typedef struct {
  pid_t pid;
  int port;
  char dir[64];      /* temp dir: data/ and sfud.log */
  char base[64];     /* http://127.0.0.1:PORT (http://[::1]:PORT on IPv6) */
  char ws_url[96];   /* ws://127.0.0.1:PORT/v1/rtc (ws://[::1]:PORT/v1/rtc) */
} sfud_t;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  return remove(path);
}

static void sfud_stop(sfud_t *s) {
  if (s->pid > 0) {
    int st;
    kill(s->pid, SIGTERM);
    double end = now_s() + 5;
    while (waitpid(s->pid, &st, WNOHANG) == 0) {
      if (now_s() > end) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, &st, 0);
        break;
      }
      usleep(10000);
    }
    s->pid = 0;
  }
  if (s->dir[0] && getenv("SFU_TEST_KEEP_LOGS"))
    fprintf(stderr, "  sfud's log and data kept in %s\n", s->dir);
  else if (s->dir[0])
    nftw(s->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* sfud listening on `host` ("127.0.0.1", or "::1": IPv6). */
static int sfud_start(void **state, const char *host) {
  sfud_t *s = calloc(1, sizeof(*s));
  char data[96], log[96], url_host[48], listening[96];
  snprintf(url_host, sizeof(url_host), strchr(host, ':') ? "[%s]" : "%s", host);
  snprintf(listening, sizeof(listening), "listening on http://%s:", url_host);
  snprintf(s->dir, sizeof(s->dir), "/tmp/sfu-wsclient-XXXXXX");
  if (!mkdtemp(s->dir)) return -1;
  snprintf(data, sizeof(data), "%s/data", s->dir);
  snprintf(log, sizeof(log), "%s/sfud.log", s->dir);
  s->pid = fork();
  if (s->pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM); /* a test killed by its timeout leaves no sfud */
    FILE *f = freopen(log, "w", stderr);
    (void)f;
    if (!freopen("/dev/null", "w", stdout)) _exit(126);
    execl(SFUD_PATH, SFUD_PATH, "--listen-host", host, "--listen-port", "0", "--api-key",
          API_KEY, "--token-secret", TOKEN_SECRET, "--room-binary", ROOM_PATH, "--data-dir", data,
          "--max-participants", "250", "--shutdown-grace-ms", "2000", (char *)NULL);
    _exit(127);
  }
  /* Wait for "listening on http://127.0.0.1:PORT" (or [::1]) in its log. */
  double end = now_s() + 10;
  while (now_s() < end && s->port == 0) {
    char buf[8192];
    FILE *f = fopen(log, "r");
    size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = '\0';
    const char *p = strstr(buf, listening);
    if (p) s->port = atoi(p + strlen(listening));
    int st;
    if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
      fprintf(stderr, "sfud exited early:\n%s\n", buf);
      s->pid = 0;
      break;
    }
    if (!s->port) usleep(20000);
  }
  if (s->port == 0) {
    sfud_stop(s);
    free(s);
    return -1;
  }
  snprintf(s->base, sizeof(s->base), "http://%s:%d", url_host, s->port);
  snprintf(s->ws_url, sizeof(s->ws_url), "ws://%s:%d/v1/rtc", url_host, s->port);
  *state = s;
  return 0;
}

static int sfud_setup(void **state) { return sfud_start(state, "127.0.0.1"); }

/* On ::1; *state NULL (the test skips) on a host without IPv6. */
static int sfud_setup6(void **state) {
  struct sockaddr_in6 a;
  memset(&a, 0, sizeof(a));
  a.sin6_family = AF_INET6;
  a.sin6_addr = in6addr_loopback;
  int fd = socket(AF_INET6, SOCK_STREAM, 0);
  int ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
  if (fd >= 0) close(fd);
  if (!ok) {
    *state = NULL;
    return 0;
  }
  return sfud_start(state, "::1");
}

static int sfud_teardown(void **state) {
  sfud_t *s = *state;
  if (!s) return 0; /* skipped */
  sfud_stop(s);
  free(s);
  return 0;
}

/* POST JSON with the API key, synchronously; returns the parsed answer. */
static json_t *api_post(sfud_t *s, const char *path, const char *body, int want_status) {
  char url[256], *resp = NULL;
  snprintf(url, sizeof(url), "%s%s", s->base, path);
  int st = sfu_http_request_sync("POST", url, API_KEY, body, &resp, 5000);
  assert_int_equal(st, want_status);
  assert_non_null(resp);
  json_t *j = json_loads(resp, 0, NULL);
  if (!j) fprintf(stderr, "not JSON: %s\n", resp);
  assert_non_null(j);
  free(resp);
  return j;
}

/* Creates a room; returns its id (malloc'd). */
static char *create_room(sfud_t *s, const char *body) {
  json_t *j = api_post(s, "/v1/rooms", body, 201);
  const char *id = json_string_value(json_object_get(j, "room_id"));
  assert_non_null(id);
  assert_string_equal(json_string_value(json_object_get(j, "ws_url")), s->ws_url);
  char *out = strdup(id);
  json_decref(j);
  return out;
}

static char *mint_token(sfud_t *s, const char *room, const char *identity) {
  char path[128], body[128];
  snprintf(path, sizeof(path), "/v1/rooms/%s/tokens", room);
  snprintf(body, sizeof(body), "{\"identity\":\"%s\"}", identity);
  json_t *j = api_post(s, path, body, 201);
  const char *tok = json_string_value(json_object_get(j, "token"));
  assert_non_null(tok);
  char *out = strdup(tok);
  json_decref(j);
  return out;
}

static char *join_msg(const char *room, const char *token) {
  json_t *j = json_pack("{s:s, s:i, s:i, s:s, s:s}", "type", "join", "id", 1, "v", 1, "room",
                        room, "token", token);
  char *s = json_dumps(j, JSON_COMPACT);
  json_decref(j);
  return s;
}

static void run_and_close(uv_loop_t *loop) {
  uv_run(loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(loop), 0); /* every handle of the clients is closed */
}

/* --- a WebSocket peer --------------------------------------------------- */

typedef struct group_s group_t;

typedef struct {
  sfu_ws_client_t *ws;
  group_t *group;          /* NULL when alone */
  char *join;              /* sent on open (or at once when early) */
  int opened, welcomed, messages, closed;
  int close_code;
  char reason[160];
  int close_on_welcome;    /* close(1000) once welcomed */
  int joined;              /* connected and join queued (MANY test) */
  int destroy_on_welcome;  /* destroy (no close) inside the welcome callback */
  char last[256];          /* start of the last message */
} peer_t;

struct group_s {
  peer_t peers[MANY];
  int n, opened, welcomed, closed;
  int inflight;            /* joins sent, not yet welcomed */
  int max_open;            /* most sockets open at once */
  uv_loop_t *loop;
  uv_timer_t ping;         /* keeps the welcomed alive (sfud: 30 s idle) */
  sfud_t *sfud;
  char *room;
  int tokens;              /* tokens received */
  double t0;
};

static void peer_connect(peer_t *p, uv_loop_t *loop, const char *url);

/* Connects peers that have a token, the join queued before the handshake,
 * while fewer than JOIN_WINDOW await a welcome. */
static void admit(group_t *g) {
  for (int i = 0; i < g->n && g->inflight < JOIN_WINDOW; i++) {
    peer_t *p = &g->peers[i];
    if (p->join && !p->joined) {
      p->joined = 1;
      g->inflight++;
      peer_connect(p, g->loop, g->sfud->ws_url);
      assert_int_equal(sfu_ws_client_send(p->ws, p->join, strlen(p->join)), 0);
    }
  }
}

static void peer_open(void *arg) {
  peer_t *p = arg;
  p->opened++;
  if (p->group) {
    group_t *g = p->group;
    if (++g->opened - g->closed > g->max_open) g->max_open = g->opened - g->closed;
  }
}

static void peer_message(void *arg, const char *text, size_t len) {
  peer_t *p = arg;
  p->messages++;
  snprintf(p->last, sizeof(p->last), "%.*s", (int)len, text);
  json_t *j = json_loadb(text, len, 0, NULL); /* the fake server's "hi" is not JSON */
  const char *type = json_string_value(json_object_get(j, "type"));
  if (type && strcmp(type, "welcome") == 0) {
    assert_int_equal(json_integer_value(json_object_get(j, "id")), 1);
    assert_non_null(json_object_get(j, "participant"));
    p->welcomed++;
    if (p->close_on_welcome) sfu_ws_client_close(p->ws, 1000, "bye");
    if (p->destroy_on_welcome) {
      sfu_ws_client_destroy(p->ws); /* inside wslay's receive: deferred */
      p->ws = NULL;
    }
    group_t *g = p->group;
    if (g) {
      g->inflight--;
      admit(g);
    }
    if (g && ++g->welcomed == g->n) { /* everyone is in: leave together */
      fprintf(stderr, "  %d clients welcomed after %.2f s\n", g->n, now_s() - g->t0);
      uv_close((uv_handle_t *)&g->ping, NULL);
      for (int i = 0; i < g->n; i++) sfu_ws_client_close(g->peers[i].ws, 1000, "done");
    }
  }
  json_decref(j);
}

static void peer_closed(void *arg, int code, const char *reason) {
  peer_t *p = arg;
  p->closed++;
  p->close_code = code;
  snprintf(p->reason, sizeof(p->reason), "%s", reason ? reason : "");
  if (p->group) p->group->closed++;
  sfu_ws_client_destroy(p->ws); /* from inside the callback, as documented */
  p->ws = NULL;
}

static void peer_connect(peer_t *p, uv_loop_t *loop, const char *url) {
  sfu_ws_client_cb_t cb = {p, peer_open, peer_message, peer_closed};
  assert_int_equal(sfu_ws_client_connect(&p->ws, loop, url, &cb), 0);
  assert_non_null(p->ws);
}

/* --- tests against sfud ------------------------------------------------- */

/* sfud's ws_url names `host` (as a URL writes it: "127.0.0.1", "[::1]");
 * a WebSocket to it joins, is welcomed and closes cleanly; the API answers
 * over HTTP on `host`. */
static void join_on_host_gets_welcome(sfud_t *s, const char *host) {
  char want[64], url[96], *body = NULL;
  snprintf(want, sizeof(want), "ws://%s:", host);
  assert_non_null(strstr(s->ws_url, want));
  char *room = create_room(s, "{\"name\":\"one\",\"max_participants\":4}");
  char *tok = mint_token(s, room, "alice");
  uv_loop_t loop;
  uv_loop_init(&loop);
  peer_t p = {0};
  p.join = join_msg(room, tok);
  p.close_on_welcome = 1;
  peer_connect(&p, &loop, s->ws_url);
  /* queued before the handshake, sent once it is done */
  assert_int_equal(sfu_ws_client_send(p.ws, p.join, strlen(p.join)), 0);
  run_and_close(&loop);
  assert_int_equal(p.opened, 1);
  assert_int_equal(p.welcomed, 1);
  assert_int_equal(p.closed, 1);
  assert_int_equal(p.close_code, 1000); /* the server echoes our close */
  snprintf(url, sizeof(url), "http://%s:%d/v1/rooms", host, s->port);
  assert_int_equal(sfu_http_request_sync("GET", url, API_KEY, NULL, &body, 2000), 200);
  free(body);
  free(p.join);
  free(tok);
  free(room);
}

static void join_gets_welcome(void **state) { join_on_host_gets_welcome(*state, "127.0.0.1"); }

/* sfud listening on ::1 only: the API over HTTP to [::1] (its ws_url
 * says ws://[::1]:PORT/v1/rtc, checked by create_room), then a WebSocket
 * to that URL joins. */
static void join_over_ipv6_gets_welcome(void **state) {
  if (!*state) skip(); /* no IPv6 on this host */
  join_on_host_gets_welcome(*state, "[::1]");
}

static void wrong_token_closes_4001(void **state) {
  sfud_t *s = *state;
  char *room = create_room(s, "{}");
  uv_loop_t loop;
  uv_loop_init(&loop);
  peer_t bad = {0}, nowhere = {0};
  bad.join = join_msg(room, "not-a-token");
  peer_connect(&bad, &loop, s->ws_url);
  assert_int_equal(sfu_ws_client_send(bad.ws, bad.join, strlen(bad.join)), 0);
  char url[128];
  snprintf(url, sizeof(url), "ws://127.0.0.1:%d/no-such-path", s->port);
  peer_connect(&nowhere, &loop, url);
  run_and_close(&loop);
  assert_int_equal(bad.opened, 1);
  assert_int_equal(bad.welcomed, 0);
  assert_int_equal(bad.closed, 1);
  assert_int_equal(bad.close_code, 4001);
  assert_true(strncmp(bad.reason, "invalid token", 13) == 0);
  assert_int_equal(nowhere.opened, 0);
  assert_int_equal(nowhere.closed, 1);
  assert_int_equal(nowhere.close_code, 1006);
  assert_string_equal(nowhere.reason, "handshake: HTTP 404");
  free(bad.join);
  free(room);
}

typedef struct {
  int calls, status, code;
  char body[512];
  char err[160];
} http_got_t;

static void on_http(void *arg, const sfu_http_resp_t *r) {
  http_got_t *g = arg;
  g->calls++;
  g->status = r->status;
  g->code = r->code;
  snprintf(g->body, sizeof(g->body), "%.*s", (int)r->body_len, r->body);
  snprintf(g->err, sizeof(g->err), "%s", r->err ? r->err : "");
  assert_int_equal(strlen(r->body), r->body_len); /* NUL-terminated */
}

static void http_errors_come_back(void **state) {
  sfud_t *s = *state;
  char url[160];
  uv_loop_t loop;
  uv_loop_init(&loop);
  http_got_t missing = {0}, nokey = {0}, badjson = {0}, del = {0};
  snprintf(url, sizeof(url), "%s/v1/rooms/rm_00000000deadbeef", s->base);
  assert_int_equal(sfu_http_request(&loop, "GET", url, API_KEY, NULL, on_http, &missing), 0);
  assert_int_equal(sfu_http_request(&loop, "DELETE", url, API_KEY, NULL, on_http, &del), 0);
  snprintf(url, sizeof(url), "%s/v1/rooms", s->base);
  assert_int_equal(sfu_http_request(&loop, "GET", url, NULL, NULL, on_http, &nokey), 0);
  assert_int_equal(sfu_http_request(&loop, "POST", url, API_KEY, "{nope", on_http, &badjson), 0);
  assert_int_equal(missing.calls, 0); /* never from inside the call */
  run_and_close(&loop);
  assert_int_equal(missing.calls, 1);
  assert_int_equal(missing.status, 404);
  assert_string_equal(missing.err, "");
  json_t *j = json_loads(missing.body, 0, NULL);
  assert_non_null(j);
  assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "code")),
                      "room_not_found");
  json_decref(j);
  assert_int_equal(del.status, 404);
  assert_int_equal(nokey.status, 401);
  assert_non_null(strstr(nokey.body, "unauthorized"));
  assert_int_equal(badjson.status, 400);
  assert_non_null(strstr(badjson.body, "invalid_json"));
  /* and the blocking form */
  char *body = NULL;
  snprintf(url, sizeof(url), "%s/v1/rooms/rm_00000000deadbeef", s->base);
  assert_int_equal(sfu_http_request_sync("GET", url, API_KEY, NULL, &body, 5000), 404);
  assert_non_null(strstr(body, "room_not_found"));
  free(body);
}

/* MANY tokens minted concurrently over the async client; each answer opens
 * a WebSocket at once. All MANY sockets stay open until every peer has its
 * welcome; joins go out through a window of JOIN_WINDOW (see above). */
static void on_token(void *arg, const sfu_http_resp_t *r) {
  peer_t *p = arg;
  group_t *g = p->group;
  assert_null(r->err);
  assert_int_equal(r->status, 201);
  json_t *j = json_loads(r->body, 0, NULL);
  assert_non_null(j);
  p->join = join_msg(g->room, json_string_value(json_object_get(j, "token")));
  json_decref(j);
  g->tokens++;
  admit(g);
}

static void on_ping(uv_timer_t *t) {
  group_t *g = t->data;
  static const char ping[] = "{\"type\":\"ping\"}";
  for (int i = 0; i < g->n; i++)
    if (g->peers[i].welcomed) sfu_ws_client_send(g->peers[i].ws, ping, sizeof(ping) - 1);
}

static void many_clients_on_one_loop(void **state) {
  sfud_t *s = *state;
  char body[64], url[160];
  snprintf(body, sizeof(body), "{\"name\":\"many\",\"max_participants\":%d}", MANY);
  group_t *g = calloc(1, sizeof(*g));
  uv_loop_t loop;
  uv_loop_init(&loop);
  g->n = MANY;
  g->loop = &loop;
  g->sfud = s;
  g->room = create_room(s, body);
  g->t0 = now_s();
  uv_timer_init(&loop, &g->ping);
  g->ping.data = g;
  uv_timer_start(&g->ping, on_ping, 5000, 5000);
  snprintf(url, sizeof(url), "%s/v1/rooms/%s/tokens", s->base, g->room);
  for (int i = 0; i < MANY; i++) {
    char id[64];
    snprintf(id, sizeof(id), "{\"identity\":\"user-%d\"}", i);
    g->peers[i].group = g;
    assert_int_equal(sfu_http_request(&loop, "POST", url, API_KEY, id, on_token, &g->peers[i]), 0);
  }
  run_and_close(&loop);
  fprintf(stderr, "  %d joined and closed in %.2f s\n", MANY, now_s() - g->t0);
  for (int i = 0; i < MANY; i++)
    if (g->peers[i].close_code != 1000 || g->peers[i].welcomed != 1)
      fprintf(stderr, "  peer %d: welcomed %d, closed %d %s (last: %s)\n", i,
              g->peers[i].welcomed, g->peers[i].close_code, g->peers[i].reason, g->peers[i].last);
  assert_int_equal(g->tokens, MANY);
  assert_int_equal(g->opened, MANY);
  assert_int_equal(g->welcomed, MANY);
  assert_int_equal(g->closed, MANY);
  assert_int_equal(g->max_open, MANY); /* all connected at the same time */
  for (int i = 0; i < MANY; i++) {
    assert_int_equal(g->peers[i].close_code, 1000);
    assert_int_equal(g->peers[i].welcomed, 1);
    free(g->peers[i].join);
  }
  free(g->room);
  free(g);
}

/* --- without sfud ------------------------------------------------------- */

static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof(a);
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
  close(fd);
  return ntohs(a.sin_port);
}

static void closed_port_reports_1006(void **state) {
  int port = free_port();
  char url[128];
  uv_loop_t loop;
  uv_loop_init(&loop);
  peer_t byaddr = {0}, byname = {0}, early = {0};
  snprintf(url, sizeof(url), "ws://127.0.0.1:%d/v1/rtc", port);
  peer_connect(&byaddr, &loop, url);
  peer_connect(&early, &loop, url);
  sfu_ws_client_close(early.ws, 1000, "changed my mind");
  assert_int_equal(sfu_ws_client_send(early.ws, "x", 1), SFU_ECANCELED);
  snprintf(url, sizeof(url), "ws://localhost:%d/v1/rtc", port);
  peer_connect(&byname, &loop, url);
  http_got_t h = {0};
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/rooms", port);
  assert_int_equal(sfu_http_request(&loop, "GET", url, NULL, NULL, on_http, &h), 0);
  /* bad arguments are refused at once, with no callback */
  sfu_ws_client_t *none = (sfu_ws_client_t *)&loop;
  sfu_ws_client_cb_t cb = {0};
  assert_int_equal(sfu_ws_client_connect(&none, &loop, "wss://127.0.0.1/", &cb), SFU_EINVAL);
  assert_null(none);
  assert_int_equal(sfu_ws_client_connect(&none, &loop, "ws://[::1/", &cb), SFU_EINVAL);
  assert_int_equal(sfu_http_request(&loop, "GET", "https://127.0.0.1/", NULL, NULL, on_http, &h),
                   SFU_EINVAL);
  assert_int_equal(sfu_http_request(&loop, "GET\r\n", url, NULL, NULL, on_http, &h), SFU_EINVAL);
  run_and_close(&loop);
  assert_int_equal(byaddr.opened, 0);
  assert_int_equal(byaddr.closed, 1);
  assert_int_equal(byaddr.close_code, 1006);
  assert_true(strncmp(byaddr.reason, "connect: ", 9) == 0);
  assert_int_equal(byname.closed, 1);
  assert_int_equal(byname.close_code, 1006);
  assert_true(strncmp(byname.reason, "connect: ", 9) == 0);
  assert_int_equal(early.closed, 1);
  assert_int_equal(early.close_code, 1006);
  assert_string_equal(early.reason, "closed before the handshake completed");
  assert_int_equal(h.calls, 1);
  assert_int_equal(h.status, 0);
  assert_true(strncmp(h.err, "connect: ", 9) == 0);
  assert_int_equal(h.code, -EIO);
  assert_true(sfu_http_request_sync("GET", url, NULL, NULL, NULL, 2000) < 0);
  fprintf(stderr, "  closed port: ws \"%s\", http \"%s\"\n", byaddr.reason, h.err);
}

/* A destroy right after connect, one in the middle of the handshake, and
 * one from inside the `message` callback (no close frame: sfud sees the
 * socket go). */
static void destroy_at_any_time(void **state) {
  sfud_t *s = *state;
  char *room = create_room(s, "{}");
  char *tok = mint_token(s, room, "bob");
  uv_loop_t loop;
  uv_loop_init(&loop);
  peer_t p = {0};
  p.join = join_msg(room, tok);
  p.destroy_on_welcome = 1;
  peer_connect(&p, &loop, s->ws_url);
  assert_int_equal(sfu_ws_client_send(p.ws, p.join, strlen(p.join)), 0);
  sfu_ws_client_t *a, *b;
  sfu_ws_client_cb_t cb = {0}; /* no callback may come */
  assert_int_equal(sfu_ws_client_connect(&a, &loop, s->ws_url, &cb), 0);
  sfu_ws_client_destroy(a);
  assert_int_equal(sfu_ws_client_connect(&b, &loop, s->ws_url, &cb), 0);
  assert_int_equal(sfu_ws_client_send(b, "{\"type\":\"ping\"}", 15), 0);
  uv_run(&loop, UV_RUN_NOWAIT); /* connect under way */
  sfu_ws_client_destroy(b);
  run_and_close(&loop);
  assert_int_equal(p.welcomed, 1);
  assert_int_equal(p.closed, 0); /* destroyed: no callback after */
  free(p.join);
  free(tok);
  free(room);
}

/* --- a fake server, for what sfud never sends --------------------------- */

typedef enum { FAKE_HUGE_MESSAGE, FAKE_BAD_ACCEPT } fake_mode_t;

typedef struct {
  uv_tcp_t server, conn;
  fake_mode_t mode;
  char in[4096];
  size_t in_len;
  int answered, conn_open;
  char out[1024];
  uv_write_t wreq;
} fake_t;

static void fake_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  fake_t *f = h->data;
  static char sink[65536];
  if (f->answered) { /* what the client sends after the handshake: ignored */
    *b = uv_buf_init(sink, sizeof(sink));
    return;
  }
  *b = uv_buf_init(f->in + f->in_len, (unsigned)(sizeof(f->in) - 1 - f->in_len));
}

static void fake_closed(uv_handle_t *h) {}

static void fake_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
  fake_t *f = st->data;
  if (n < 0) {
    uv_close((uv_handle_t *)&f->conn, fake_closed);
    uv_close((uv_handle_t *)&f->server, fake_closed);
    return;
  }
  if (f->answered) return;
  f->in_len += (size_t)n;
  f->in[f->in_len] = '\0';
  if (!strstr(f->in, "\r\n\r\n")) return;
  const char *k = strstr(f->in, "Sec-WebSocket-Key: ");
  assert_non_null(k);
  unsigned char src[24 + 36], sha[EVP_MAX_MD_SIZE];
  unsigned int shalen;
  char accept[32];
  memcpy(src, k + 19, 24);
  memcpy(src + 24, "258EAFA5-E914-47DA-95CA-C5AB0DC85B11", 36);
  EVP_Digest(src, sizeof(src), sha, &shalen, EVP_sha1(), NULL);
  EVP_EncodeBlock((unsigned char *)accept, sha, 20);
  if (f->mode == FAKE_BAD_ACCEPT) accept[3] ^= 1;
  int len = snprintf(f->out, sizeof(f->out),
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                     accept);
  /* In the same write: a text frame "hi", then the start of a 2 MiB one
   * (wslay checks the length once payload bytes are there). */
  const unsigned char frames[] = {0x81, 2, 'h', 'i', 0x81, 127, 0, 0, 0, 0, 0, 0x20, 0, 0};
  memcpy(f->out + len, frames, sizeof(frames));
  memset(f->out + len + sizeof(frames), 'x', 64);
  uv_buf_t b2 = uv_buf_init(f->out, (unsigned)len + sizeof(frames) + 64);
  uv_write(&f->wreq, (uv_stream_t *)&f->conn, &b2, 1, NULL);
  f->answered = 1;
}

static void fake_accept(uv_stream_t *server, int status) {
  fake_t *f = server->data;
  assert_int_equal(status, 0);
  uv_tcp_init(server->loop, &f->conn);
  f->conn.data = f;
  assert_int_equal(uv_accept(server, (uv_stream_t *)&f->conn), 0);
  uv_read_start((uv_stream_t *)&f->conn, fake_alloc, fake_read);
}

static int fake_listen(fake_t *f, uv_loop_t *loop, fake_mode_t mode) {
  struct sockaddr_in a;
  int len = sizeof(a);
  memset(f, 0, sizeof(*f));
  f->mode = mode;
  uv_tcp_init(loop, &f->server);
  f->server.data = f;
  uv_ip4_addr("127.0.0.1", 0, &a);
  assert_int_equal(uv_tcp_bind(&f->server, (struct sockaddr *)&a, 0), 0);
  assert_int_equal(uv_listen((uv_stream_t *)&f->server, 8, fake_accept), 0);
  uv_tcp_getsockname(&f->server, (struct sockaddr *)&a, &len);
  return ntohs(a.sin_port);
}

static void message_over_1mib_closes_1009(void **state) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  fake_t f;
  char url[64];
  snprintf(url, sizeof(url), "ws://127.0.0.1:%d/", fake_listen(&f, &loop, FAKE_HUGE_MESSAGE));
  peer_t p = {0};
  peer_connect(&p, &loop, url);
  /* the send queue is bounded: 1 MiB pending at most */
  static char big[600 * 1024];
  memset(big, 'a', sizeof(big));
  assert_int_equal(sfu_ws_client_send(p.ws, big, sizeof(big)), 0);
  assert_int_equal(sfu_ws_client_send(p.ws, big, sizeof(big)), SFU_EAGAIN);
  assert_int_equal(sfu_ws_client_send(p.ws, big, (2u << 20)), SFU_EMSGSIZE);
  run_and_close(&loop);
  assert_int_equal(p.opened, 1);
  assert_int_equal(p.messages, 1);
  assert_string_equal(p.last, "hi");
  assert_int_equal(p.closed, 1);
  assert_int_equal(p.close_code, 1009);
  assert_string_equal(p.reason, "message too big");
}

static void wrong_accept_key_fails(void **state) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  fake_t f;
  char url[64];
  snprintf(url, sizeof(url), "ws://127.0.0.1:%d/", fake_listen(&f, &loop, FAKE_BAD_ACCEPT));
  peer_t p = {0};
  peer_connect(&p, &loop, url);
  run_and_close(&loop);
  assert_int_equal(p.opened, 0);
  assert_int_equal(p.closed, 1);
  assert_int_equal(p.close_code, 1006);
  assert_string_equal(p.reason, "handshake: wrong Sec-WebSocket-Accept");
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(closed_port_reports_1006),
      cmocka_unit_test(message_over_1mib_closes_1009),
      cmocka_unit_test(wrong_accept_key_fails),
      cmocka_unit_test_setup_teardown(join_gets_welcome, sfud_setup, sfud_teardown),
      cmocka_unit_test_setup_teardown(join_over_ipv6_gets_welcome, sfud_setup6, sfud_teardown),
      cmocka_unit_test_setup_teardown(wrong_token_closes_4001, sfud_setup, sfud_teardown),
      cmocka_unit_test_setup_teardown(http_errors_come_back, sfud_setup, sfud_teardown),
      cmocka_unit_test_setup_teardown(destroy_at_any_time, sfud_setup, sfud_teardown),
      cmocka_unit_test_setup_teardown(many_clients_on_one_loop, sfud_setup, sfud_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
