/*
 * test_icelite.c -- sfu/net/icelite.c, the room's ICE-lite agent, over
 * loopback.
 *
 * Peers are of two kinds:
 *   - a real libnice FULL agent (controlling, or controlled to provoke a
 *     role conflict), its GLib context driven from the test's uv loop by
 *     tools/client/gloop.c exactly as the client stack does;
 *   - raw UDP sockets that send checks built with sfu/media/stun.c, for what a
 *     well-behaved agent never sends (wrong password, ICE-CONTROLLED,
 *     unknown attributes, no FINGERPRINT) and for exact control of sources.
 *
 * The .c is included (docs/style.md: reach statics that way), so tests read
 * the socket layer's counters, its socket's address and its send batches;
 * the ICE decisions are sfu/net/icestate.c's (linked, and tested on its own
 * on a simulated clock by tests/test_icestate.c), reached through its API:
 * its counters, a stream's selected pair, a shorter consent timeout (and
 * the agent's tick_ms, a shorter tick). Every
 * wait runs the loop until a condition holds, bounded by a referenced
 * guard timer; every test closes its loop cleanly.
 */
#include "sfu/net/icelite.c"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <agent.h>
#include <poll.h>
#include <signal.h>

#include "sfu/base/bytes.h"
#include "sfu/media/stun.h"
#include "tools/client/gloop.h"

#define GUARD_MS 5000

/* ---- fixture ------------------------------------------------------------- */

typedef struct {
  uv_loop_t loop;
  sfu_gloop_t g;
  uv_timer_t guard;
  int timed_out;
} fx_t;

static void on_guard(uv_timer_t *t) {
  ((fx_t *)t->data)->timed_out = 1;
  uv_stop(t->loop);
}

static void fx_init(fx_t *f) {
  memset(f, 0, sizeof(*f));
  assert_int_equal(uv_loop_init(&f->loop), 0);
  assert_int_equal(sfu_gloop_init(&f->loop, &f->g), 0);
  uv_timer_init(&f->loop, &f->guard);
  f->guard.data = f;
}

static void fx_done(fx_t *f) {
  sfu_gloop_close(&f->g, NULL);
  uv_close((uv_handle_t *)&f->guard, NULL);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&f->loop), 0);
}

/* Runs the loop until `cond` holds (evaluated once per turn), at most
 * GUARD_MS; fails the test on timeout. */
#define RUN_UNTIL(f, cond)                                                \
  do {                                                                    \
    int ok_;                                                              \
    (f)->timed_out = 0;                                                   \
    uv_timer_start(&(f)->guard, on_guard, GUARD_MS, 0);                   \
    while (!(ok_ = (cond)) && !(f)->timed_out) uv_run(&(f)->loop, UV_RUN_ONCE); \
    uv_timer_stop(&(f)->guard);                                           \
    if (!ok_) fail_msg("timed out waiting for %s", #cond);                \
  } while (0)

/* Runs the loop for about `ms` whatever happens. */
static void run_for(fx_t *f, uint64_t ms) {
  f->timed_out = 0;
  uv_timer_start(&f->guard, on_guard, ms, 0);
  while (!f->timed_out) uv_run(&f->loop, UV_RUN_ONCE);
}

/* ---- the lite side ------------------------------------------------------- */

/* The ICE counters: the state machine's (ice->stats has the sockets'). */
static const sfu_icestate_stats_t *sm_stats(const sfu_ice_t *ice) {
  return sfu_icestate_stats(ice->sm);
}

/* The stream's selected pair came with USE-CANDIDATE. */
static int nominated(const sfu_ice_stream_t *st) {
  sfu_icestate_pair_t p;
  return sfu_icestate_selected(st->s, &p) && p.nominated;
}

#define MAX_RX 256

typedef struct lite_s {
  sfu_ice_stream_t *st;
  int states;             /* cb.state calls */
  int connected;          /* last value */
  int lost;               /* cb.state(0) calls */
  int nrx;                /* cb.recv calls */
  uint8_t rx[MAX_RX][64]; /* first bytes of each */
  size_t rxlen[MAX_RX];
  int destroy_at;         /* destroy the stream in the nrx-th recv (0: never) */
  sfu_ice_t *destroy_agent; /* destroy this agent in the first recv */
} lite_t;

static void lite_recv(void *arg, uint8_t *buf, size_t len) {
  lite_t *l = arg;
  if (l->nrx < MAX_RX) {
    memcpy(l->rx[l->nrx], buf, len < 64 ? len : 64);
    l->rxlen[l->nrx] = len;
  }
  l->nrx++;
  if (l->destroy_at && l->nrx == l->destroy_at) {
    sfu_ice_stream_destroy(l->st);
    l->st = NULL;
  }
  if (l->destroy_agent) {
    sfu_ice_destroy(l->destroy_agent);
    l->destroy_agent = NULL;
  }
}

static void lite_state(void *arg, int connected) {
  lite_t *l = arg;
  l->states++;
  l->connected = connected;
  if (!connected) l->lost++;
}

static void lite_open(sfu_ice_t *ice, lite_t *l) {
  memset(l, 0, sizeof(*l));
  sfu_ice_cb_t cb = {l, lite_recv, lite_state};
  assert_int_equal(sfu_ice_stream_create(ice, &cb, &l->st), 0);
}

static sfu_ice_t *agent_new(fx_t *f, const char *addrs) {
  sfu_ice_opts_t o = {.addresses = addrs};
  sfu_ice_t *ice = NULL;
  assert_int_equal(sfu_ice_create(&ice, &f->loop, &o), 0);
  return ice;
}

/* The agent's tick (CONSENT_TICK_MS, 1 s in a room), shortened by the
 * tests that wait for ticks (consent, TCP deadlines, rounds of checks).
 * Their durations are written in ticks: they check the same in a quarter
 * of the time. */
#define TICK_MS 250

static void fast_ticks(sfu_ice_t *ice) {
  ice->tick_ms = TICK_MS;
  uv_timer_start(&ice->consent, on_consent, TICK_MS, TICK_MS);
}

/* The agent's first socket as a destination. */
static socklen_t agent_addr(const sfu_ice_t *ice, int i, lite_sa_t *out) {
  const lite_sock_t *s = ice->socks[i];
  memset(out, 0, sizeof(*out));
  if (s->family == AF_INET) {
    out->in.sin_family = AF_INET;
    out->in.sin_port = htons(s->port);
    inet_pton(AF_INET, s->ip, &out->in.sin_addr);
    return sizeof(out->in);
  }
  out->in6.sin6_family = AF_INET6;
  out->in6.sin6_port = htons(s->port);
  inet_pton(AF_INET6, s->ip, &out->in6.sin6_addr);
  return sizeof(out->in6);
}

/* ---- raw peers ------------------------------------------------------------ */

typedef struct {
  int fd;
  lite_sa_t to; /* the agent's socket */
  socklen_t tolen;
  lite_sa_t me; /* our own bound address */
} raw_t;

enum { USE_CAND = 1, CONTROLLED = 2, UNKNOWN_ATTR = 4, NO_FP = 8, BAD_PWD = 16 };

static void raw_open(raw_t *r, const sfu_ice_t *ice, int sock) {
  memset(r, 0, sizeof(*r));
  r->tolen = agent_addr(ice, sock, &r->to);
  r->fd = socket(r->to.sa.sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  assert_true(r->fd >= 0);
  int big = 1 << 20;
  setsockopt(r->fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
  lite_sa_t me = r->to;
  if (me.sa.sa_family == AF_INET)
    me.in.sin_port = 0;
  else
    me.in6.sin6_port = 0;
  assert_int_equal(bind(r->fd, &me.sa, r->tolen), 0);
  socklen_t ml = sizeof(r->me);
  getsockname(r->fd, &r->me.sa, &ml);
}

static void raw_send(raw_t *r, const void *b, size_t n) {
  assert_int_equal(sendto(r->fd, b, n, 0, &r->to.sa, r->tolen), (ssize_t)n);
}

/* A Binding request with these credentials and flags into b (256 bytes):
 * its length. */
static size_t build_check(uint8_t *b, const char *ufrag, const char *pwd, int flags,
                          uint8_t tid[12]) {
  char user[64];
  sfu_stun_writer_t w;
  sfu_random_bytes(tid, 12);
  snprintf(user, sizeof(user), "%s:rawpeer", ufrag);
  sfu_stun_writer_init(&w, b, 256, SFU_STUN_BINDING_REQUEST, tid);
  sfu_stun_put(&w, SFU_STUN_ATTR_USERNAME, user, strlen(user));
  sfu_stun_put_u32(&w, SFU_STUN_ATTR_PRIORITY, 0x6e7f1eff);
  if (flags & CONTROLLED)
    sfu_stun_put_u64(&w, SFU_STUN_ATTR_ICE_CONTROLLED, 42);
  else
    sfu_stun_put_u64(&w, SFU_STUN_ATTR_ICE_CONTROLLING, 42);
  if (flags & USE_CAND) sfu_stun_put(&w, SFU_STUN_ATTR_USE_CANDIDATE, NULL, 0);
  if (flags & UNKNOWN_ATTR) sfu_stun_put(&w, 0x7001, "abc", 3);
  if (flags & BAD_PWD)
    sfu_stun_put_integrity(&w, "wrong-password-wrong-pw", 23);
  else
    sfu_stun_put_integrity(&w, pwd, strlen(pwd));
  if (!(flags & NO_FP)) sfu_stun_put_fingerprint(&w);
  int n = sfu_stun_finish(&w);
  assert_true(n > 0);
  return (size_t)n;
}

/* Sends a Binding request with these credentials. */
static void raw_check_as(raw_t *r, const char *ufrag, const char *pwd, int flags, uint8_t tid[12]) {
  uint8_t b[256];
  raw_send(r, b, build_check(b, ufrag, pwd, flags, tid));
}

static void raw_check(raw_t *r, const sfu_ice_stream_t *st, int flags, uint8_t tid[12]) {
  raw_check_as(r, sfu_ice_ufrag(st), sfu_ice_pwd(st), flags, tid);
}

/* Receives one datagram within ms, or returns -1. */
static int raw_recv(raw_t *r, uint8_t *b, size_t cap, int ms) {
  struct pollfd p = {r->fd, POLLIN, 0};
  if (poll(&p, 1, ms) != 1) return -1;
  return (int)recv(r->fd, b, cap, MSG_DONTWAIT);
}

/* The STUN response to transaction tid, parsed into *m (kept in b). */
static void raw_response(raw_t *r, uint8_t *b, size_t cap, const uint8_t tid[12],
                         sfu_stun_msg_t *m) {
  int n = raw_recv(r, b, cap, 1000);
  assert_true(n > 0);
  assert_int_equal(sfu_stun_parse(b, (size_t)n, m, NULL), n);
  assert_memory_equal(m->tid, tid, 12);
  assert_int_equal(sfu_stun_check_fingerprint(m), 0);
}

/* A lite stream whose pair is selected by a raw peer on socket 0: its
 * check with USE-CANDIDATE, the connection, the success response (signed
 * with the stream's password). `mapped`, unless NULL, gets the response's
 * XOR-MAPPED-ADDRESS. */
static void raw_connect(fx_t *f, sfu_ice_t *ice, lite_t *l, raw_t *r,
                        struct sockaddr_storage *mapped) {
  uint8_t tid[12], b[256];
  sfu_stun_msg_t m;
  lite_open(ice, l);
  raw_open(r, ice, 0);
  raw_check(r, l->st, USE_CAND, tid);
  RUN_UNTIL(f, l->connected);
  raw_response(r, b, sizeof(b), tid, &m);
  assert_int_equal(m.type, SFU_STUN_BINDING_SUCCESS);
  assert_int_equal(sfu_stun_check_integrity(&m, sfu_ice_pwd(l->st), strlen(sfu_ice_pwd(l->st))), 0);
  if (mapped) assert_int_equal(sfu_stun_xor_addr(&m, mapped), 0);
}

static void raw_close(raw_t *r) { close(r->fd); }

/* ---- TCP peers (ICE-TCP, the active side) -------------------------------- */

typedef struct {
  int fd;       /* connected, blocking */
  lite_sa_t me; /* our end: the address the agent sees */
} tcpc_t;

/* Connects to socket `sock`'s TCP listener: the kernel completes the
 * handshake, the agent accepts when its loop runs. rcvbuf > 0: our
 * SO_RCVBUF, set first (a peer that reads slowly). */
static void tcp_open(tcpc_t *t, const sfu_ice_t *ice, int sock, int rcvbuf) {
  lite_sa_t to;
  socklen_t tl = agent_addr(ice, sock, &to);
  assert_true(ice->socks[sock]->tcp_port > 0);
  if (to.sa.sa_family == AF_INET)
    to.in.sin_port = htons(ice->socks[sock]->tcp_port);
  else
    to.in6.sin6_port = htons(ice->socks[sock]->tcp_port);
  memset(t, 0, sizeof(*t));
  t->fd = socket(to.sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(t->fd >= 0);
  if (rcvbuf) setsockopt(t->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  assert_int_equal(connect(t->fd, &to.sa, tl), 0);
  socklen_t ml = sizeof(t->me);
  getsockname(t->fd, &t->me.sa, &ml);
}

static void tcp_write(tcpc_t *t, const void *b, size_t n) {
  assert_int_equal(send(t->fd, b, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* One RFC 4571 frame, in one write. */
static void tcp_frame(tcpc_t *t, const void *b, size_t n) {
  uint8_t f[2 + 2048];
  assert_true(n <= 2048);
  sfu_tcpframe_header(f, n);
  memcpy(f + 2, b, n);
  tcp_write(t, f, n + 2);
}

static void tcp_check_as(tcpc_t *t, const char *ufrag, const char *pwd, int flags,
                         uint8_t tid[12]) {
  uint8_t b[256];
  tcp_frame(t, b, build_check(b, ufrag, pwd, flags, tid));
}

static void tcp_check(tcpc_t *t, const sfu_ice_stream_t *st, int flags, uint8_t tid[12]) {
  tcp_check_as(t, sfu_ice_ufrag(st), sfu_ice_pwd(st), flags, tid);
}

/* Exactly n bytes within ms: 0, -1 on timeout, -2 if the connection
 * ended (EOF or reset). */
static int tcp_read_n(tcpc_t *t, uint8_t *b, size_t n, int ms) {
  size_t got = 0;
  while (got < n) {
    struct pollfd p = {t->fd, POLLIN, 0};
    if (poll(&p, 1, ms) != 1) return -1;
    ssize_t r = recv(t->fd, b + got, n - got, MSG_DONTWAIT);
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) return -2;
    if (r > 0) got += (size_t)r;
  }
  return 0;
}

/* The next frame within ms: its length, -1 (none) or -2 (closed). */
static int tcp_read_frame(tcpc_t *t, uint8_t *b, size_t cap, int ms) {
  uint8_t h[2];
  int rv = tcp_read_n(t, h, 2, ms);
  if (rv < 0) return rv;
  size_t n = sfu_rd16(h);
  assert_true(n <= cap);
  rv = tcp_read_n(t, b, n, ms);
  return rv < 0 ? rv : (int)n;
}

/* The agent closed the connection: EOF (or a reset) within ms, no frame
 * before it. */
static int tcp_closed(tcpc_t *t, int ms) {
  uint8_t b[8];
  return tcp_read_n(t, b, 1, ms) == -2;
}

/* The success response to transaction tid on t, checked: signed with the
 * stream's password, mapping our end of the connection. */
static void tcp_success(tcpc_t *t, const sfu_ice_stream_t *st, const uint8_t tid[12]) {
  uint8_t b[256];
  sfu_stun_msg_t m;
  int n = tcp_read_frame(t, b, sizeof(b), 1000);
  assert_true(n > 0);
  assert_int_equal(sfu_stun_parse(b, (size_t)n, &m, NULL), n);
  assert_int_equal(m.type, SFU_STUN_BINDING_SUCCESS);
  assert_memory_equal(m.tid, tid, 12);
  assert_int_equal(sfu_stun_check_fingerprint(&m), 0);
  assert_int_equal(sfu_stun_check_integrity(&m, sfu_ice_pwd(st), strlen(sfu_ice_pwd(st))), 0);
  struct sockaddr_storage mapped;
  assert_int_equal(sfu_stun_xor_addr(&m, &mapped), 0);
  assert_int_equal(mapped.ss_family, AF_INET);
  assert_memory_equal(&((struct sockaddr_in *)&mapped)->sin_addr, &t->me.in.sin_addr, 4);
  assert_int_equal(((struct sockaddr_in *)&mapped)->sin_port, t->me.in.sin_port);
}

/* A lite stream whose pair is selected on a new TCP connection (receive
 * buffer rcvbuf, 0 = the default): the check, the connection, the answer. */
static void tcp_connect(fx_t *f, sfu_ice_t *ice, lite_t *l, tcpc_t *t, int rcvbuf,
                        uint8_t tid[12]) {
  lite_open(ice, l);
  tcp_open(t, ice, 0, rcvbuf);
  tcp_check(t, l->st, USE_CAND, tid);
  RUN_UNTIL(f, l->connected);
  tcp_success(t, l->st, tid);
}

static void tcp_close(tcpc_t *t) { close(t->fd); }

/* ---- libnice peers ------------------------------------------------------- */

typedef struct {
  NiceAgent *agent;
  int tcp;          /* SFU_ICE_UDP_ONLY, _UDP_TCP or _TCP_ONLY: its transports */
  guint sid;
  guint state;      /* last component state */
  int readies;      /* times it went READY */
  int nrx;
  char rx[MAX_RX][64];
} npeer_t;

static void np_state(NiceAgent *a, guint sid, guint cid, guint state, gpointer data) {
  npeer_t *p = data;
  p->state = state;
  if (state == NICE_COMPONENT_STATE_READY) p->readies++;
}

static void np_recv(NiceAgent *a, guint sid, guint cid, guint len, gchar *buf, gpointer data) {
  npeer_t *p = data;
  if (p->nrx < MAX_RX) snprintf(p->rx[p->nrx], 64, "%.*s", (int)len, buf);
  p->nrx++;
}

/* A libnice full agent on 127.0.0.1 with the transports of `tcp`
 * (SFU_ICE_*: UDP, UDP and TCP, TCP only). */
static void np_open(fx_t *f, npeer_t *p, gboolean controlling, int tcp) {
  NiceAddress a;
  memset(p, 0, sizeof(*p));
  p->tcp = tcp;
  p->agent = nice_agent_new(f->g.ctx, NICE_COMPATIBILITY_RFC5245);
  assert_non_null(p->agent);
  g_object_set(p->agent, "controlling-mode", controlling, "upnp", FALSE, "ice-tcp",
               tcp != SFU_ICE_UDP_ONLY, "ice-udp", tcp != SFU_ICE_TCP_ONLY, NULL);
  nice_address_init(&a);
  assert_true(nice_address_set_from_string(&a, "127.0.0.1"));
  assert_true(nice_agent_add_local_address(p->agent, &a));
  g_signal_connect(p->agent, "component-state-changed", G_CALLBACK(np_state), p);
  p->sid = nice_agent_add_stream(p->agent, 1);
  assert_true(p->sid > 0);
  assert_true(nice_agent_attach_recv(p->agent, p->sid, 1, f->g.ctx, np_recv, p));
  assert_true(nice_agent_gather_candidates(p->agent, p->sid));
}

/* The signaling: our credentials and candidates (those of the peer's
 * transports: libnice takes no others) to the peer, the peer's
 * credentials to us. Returns sfu_ice_set_remote()'s result. */
static int np_exchange(npeer_t *p, sfu_ice_stream_t *st) {
  char c[8][200], sdp[1024];
  gchar *u = NULL, *pw = NULL;
  GSList *list = NULL;
  assert_true(nice_agent_set_remote_credentials(p->agent, p->sid, sfu_ice_ufrag(st), sfu_ice_pwd(st)));
  int n = sfu_ice_local_candidates(st, c, 8), given = 0;
  assert_true(n >= 2);
  for (int i = 0; i < n; i++) {
    int tcp = strstr(c[i], " tcp ") != NULL;
    if (tcp ? p->tcp == SFU_ICE_UDP_ONLY : p->tcp == SFU_ICE_TCP_ONLY) continue;
    snprintf(sdp, sizeof(sdp), "a=%.199s", c[i]);
    NiceCandidate *nc = nice_agent_parse_remote_candidate_sdp(p->agent, p->sid, sdp);
    assert_non_null(nc);
    list = g_slist_append(list, nc);
    given++;
  }
  assert_int_equal(nice_agent_set_remote_candidates(p->agent, p->sid, 1, list), given);
  g_slist_free_full(list, (GDestroyNotify)nice_candidate_free);
  assert_true(nice_agent_get_local_credentials(p->agent, p->sid, &u, &pw));
  int rv = sfu_ice_set_remote(st, u, pw);
  g_free(u);
  g_free(pw);
  return rv;
}

/* A lite stream and a libnice peer (controlling or not, with the
 * transports of `tcp`) through the signaling, both connected. */
static void np_connect(fx_t *f, sfu_ice_t *ice, lite_t *l, npeer_t *p, gboolean controlling,
                       int tcp) {
  lite_open(ice, l);
  np_open(f, p, controlling, tcp);
  assert_int_equal(np_exchange(p, l->st), 0);
  RUN_UNTIL(f, p->state == NICE_COMPONENT_STATE_READY && l->connected);
}

static void np_send(npeer_t *p, const char *s) {
  assert_int_equal(nice_agent_send(p->agent, p->sid, 1, (guint)strlen(s), s), (gint)strlen(s));
}

static void np_close(npeer_t *p) { g_object_unref(p->agent); }

/* Data both ways on a connected pair that has carried none yet: five
 * datagrams from the peer arrive whole and in order at the stream, then
 * five from the stream at the peer. */
static void exchange_five(fx_t *f, lite_t *l, npeer_t *p) {
  char msg[32];
  for (int i = 0; i < 5; i++) {
    snprintf(msg, sizeof(msg), "\200peer-%d", i);
    np_send(p, msg);
  }
  RUN_UNTIL(f, l->nrx == 5);
  for (int i = 0; i < 5; i++) {
    snprintf(msg, sizeof(msg), "\200peer-%d", i);
    assert_int_equal(l->rxlen[i], strlen(msg));
    assert_memory_equal(l->rx[i], msg, strlen(msg));
  }
  for (int i = 0; i < 5; i++) {
    snprintf(msg, sizeof(msg), "\200lite-%d", i);
    assert_int_equal(sfu_ice_send(l->st, (const uint8_t *)msg, strlen(msg)), 0);
  }
  RUN_UNTIL(f, p->nrx == 5);
  for (int i = 0; i < 5; i++) {
    snprintf(msg, sizeof(msg), "\200lite-%d", i);
    assert_string_equal(p->rx[i], msg);
  }
}

/* Closes the agent and runs the loop until its handles are gone. */
static void agent_close(fx_t *f, sfu_ice_t *ice) {
  sfu_ice_destroy(ice);
  run_for(f, 20);
}

/* The fixture with a lite agent on `addrs`. */
static sfu_ice_t *fx_init_agent(fx_t *f, const char *addrs) {
  fx_init(f);
  return agent_new(f, addrs);
}

/* Closes the agent, then the fixture. */
static void fx_done_agent(fx_t *f, sfu_ice_t *ice) {
  agent_close(f, ice);
  fx_done(f);
}

/* ---- tests ---------------------------------------------------------------- */

static int ice_chars_only(const char *s) {
  return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") ==
         strlen(s);
}

static void test_create_and_candidates(void **state) {
  fx_t f;
  sfu_ice_t *ice = NULL;
  fx_init(&f);

  sfu_ice_opts_t o = {.addresses = "127.0.0.1", .full = 1};
  assert_int_equal(sfu_ice_create(&ice, &f.loop, &o), SFU_EINVAL);
  assert_null(ice);
  o = (sfu_ice_opts_t){.addresses = "not-an-ip"};
  assert_int_equal(sfu_ice_create(&ice, &f.loop, &o), SFU_EINVAL);
  o = (sfu_ice_opts_t){.addresses = "0.0.0.0"};
  assert_int_equal(sfu_ice_create(&ice, &f.loop, &o), SFU_EINVAL);
  o = (sfu_ice_opts_t){.addresses = "127.0.0.1", .announce = "nope"};
  assert_int_equal(sfu_ice_create(&ice, &f.loop, &o), SFU_EINVAL);

  /* Two addresses, a port range, an announced address. The range is
   * below Linux's ephemeral ports (32768-60999): no other process's
   * outgoing connection takes the TCP port the UDP socket has. */
  o = (sfu_ice_opts_t){.addresses = "127.0.0.1, ::1", .port_min = 21200, .port_max = 21299};
  assert_int_equal(sfu_ice_create(&ice, &f.loop, &o), 0);
  lite_t a, b;
  lite_open(ice, &a);
  lite_open(ice, &b);
  char c[8][200];
  unsigned udp_port[2] = {0, 0};
  /* UDP host candidates, then TCP passive ones (RFC 6544), lower. */
  assert_int_equal(sfu_ice_local_candidates(a.st, c, 8), 4);
  for (int k = 0; k < 4; k++) {
    int i = k % 2, tcp = k >= 2;
    char ip[64], typ[8], tcptype[16] = "";
    unsigned found, comp, prio, port;
    if (tcp)
      assert_int_equal(sscanf(c[k], "candidate:%u %u tcp %u %63s %u typ %7s tcptype %15s", &found,
                              &comp, &prio, ip, &port, typ, tcptype),
                       7);
    else
      assert_int_equal(sscanf(c[k], "candidate:%u %u udp %u %63s %u typ %7s", &found, &comp,
                              &prio, ip, &port, typ),
                       6);
    assert_int_equal(found, (unsigned)k + 1 + (tcp ? 2 : 0)); /* TCP: MAX_SOCKS + 1... */
    assert_int_equal(comp, 1);
    if (tcp) {
      assert_int_equal(prio, (90u << 24) | ((40959u - i) << 8) | 255);
      assert_true(prio < ((126u << 24) | (65532u << 8))); /* below any UDP host one */
      assert_string_equal(tcptype, "passive");
      assert_int_equal(port, udp_port[i]); /* the UDP socket's port number: it was free */
    } else {
      assert_int_equal(prio, (126u << 24) | ((65535u - i) << 8) | 255);
      udp_port[i] = port;
    }
    assert_string_equal(ip, i == 0 ? "127.0.0.1" : "::1");
    assert_true(port >= 21200 && port <= 21299);
    assert_string_equal(typ, "host");
    /* libnice reads what we write */
    char sdp[1024];
    snprintf(sdp, sizeof(sdp), "a=%.199s", c[k]);
    NiceAgent *na = nice_agent_new(f.g.ctx, NICE_COMPATIBILITY_RFC5245);
    guint sid = nice_agent_add_stream(na, 1);
    NiceCandidate *nc = nice_agent_parse_remote_candidate_sdp(na, sid, sdp);
    assert_non_null(nc);
    nice_candidate_free(nc);
    g_object_unref(na);
  }
  assert_int_equal(sfu_ice_local_candidates(a.st, c, 1), 1); /* max honoured */
  assert_int_equal(sfu_ice_local_candidates(a.st, c, 3), 3);   /* the UDP ones first */
  assert_non_null(strstr(c[2], " tcp "));

  /* Credentials: long enough, ICE characters, distinct per stream. */
  assert_true(strlen(sfu_ice_ufrag(a.st)) >= 4 && strlen(sfu_ice_pwd(a.st)) >= 22);
  assert_true(ice_chars_only(sfu_ice_ufrag(a.st)) && ice_chars_only(sfu_ice_pwd(a.st)));
  assert_string_not_equal(sfu_ice_ufrag(a.st), sfu_ice_ufrag(b.st));
  assert_string_not_equal(sfu_ice_pwd(a.st), sfu_ice_pwd(b.st));
  assert_int_equal(sfu_ice_send(a.st, (const uint8_t *)"x", 1), SFU_EAGAIN); /* no pair */
  assert_int_equal(sfu_ice_set_remote(a.st, "", "x"), SFU_EINVAL);
  sfu_ice_stream_destroy(a.st);
  agent_close(&f, ice); /* b is orphaned, then destroyed by its owner */
  sfu_ice_stream_destroy(b.st);

  o = (sfu_ice_opts_t){.addresses = "127.0.0.1", .announce = "203.0.113.9"};
  assert_int_equal(sfu_ice_create(&ice, &f.loop, &o), 0);
  lite_open(ice, &a);
  assert_int_equal(sfu_ice_local_candidates(a.st, c, 4), 2);
  assert_non_null(strstr(c[0], " 203.0.113.9 ")); /* UDP and TCP alike */
  assert_non_null(strstr(c[1], " 203.0.113.9 "));
  sfu_ice_stream_destroy(a.st);
  agent_close(&f, ice);

  /* Dual stack behind a 1:1 NAT of either family: the announced address
   * replaces the address of its own family only. */
  static const struct {
    const char *announce, *want[2];
  } dual[] = {{"203.0.113.9", {" 203.0.113.9 ", " ::1 "}},
              {"2001:db8::9", {" 127.0.0.1 ", " 2001:db8::9 "}}};
  for (size_t k = 0; k < sizeof(dual) / sizeof(dual[0]); k++) {
    o = (sfu_ice_opts_t){.addresses = "127.0.0.1,::1", .announce = dual[k].announce};
    assert_int_equal(sfu_ice_create(&ice, &f.loop, &o), 0);
    lite_open(ice, &a);
    assert_int_equal(sfu_ice_local_candidates(a.st, c, 4), 4);
    for (int i = 0; i < 4; i++) assert_non_null(strstr(c[i], dual[k].want[i % 2]));
    sfu_ice_stream_destroy(a.st);
    agent_close(&f, ice);
  }
  /* An announced address of a family no socket has would replace nothing. */
  o = (sfu_ice_opts_t){.addresses = "::1", .announce = "203.0.113.9"};
  assert_int_equal(sfu_ice_create(&ice, &f.loop, &o), SFU_EINVAL);
  assert_null(ice);
  o = (sfu_ice_opts_t){.addresses = "[::1]"};
  assert_int_equal(sfu_ice_create(&ice, &f.loop, &o), SFU_EINVAL);
  o = (sfu_ice_opts_t){.addresses = "::"};
  assert_int_equal(sfu_ice_create(&ice, &f.loop, &o), SFU_EINVAL);
  fx_done(&f);
}

static void test_remote_candidates(void **state) {
  static const struct {
    const char *c;
    int ok;
  } t[] = {
      {"candidate:1 1 UDP 2130706431 127.0.0.1 5000 typ host", 1},
      {"a=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host generation 0", 1},
      {"candidate:842163049 1 udp 1677729535 1.2.3.4 5000 typ srflx raddr 0.0.0.0 rport 0 "
       "generation 0 ufrag abcd network-cost 999", 1},
      {"candidate:1 1 udp 2130706431 6b1e1e2c-3c5d-4e55-9a4b-0d1d2e3f4a5b.local 5000 typ host", 1},
      {"candidate:1 2 UDP 2130706431 127.0.0.1 5000 typ host", 1},
      {"candidate:1 1 TCP 2130706431 127.0.0.1 9 typ host tcptype active", 1},
      {"candidate:1 1 UDP 2130706431 ::1 5000 typ host", 1},
      {"candidate:2 1 udp 2122262783 fd00::2 41000 typ host generation 0", 1},
      {"candidate:1 1 UDP 2130706431 [::1] 5000 typ host", 0},
      {"candidate:1 1 UDP 2130706431 127.0.0.1 5000 typ relay raddr 1.2.3.4 rport 9", 1},
      {"candidate:1 1 UDP 2130706431 127.0.0.1 70000 typ host", 0},
      {"candidate:1 1 UDP 99999999999 127.0.0.1 5000 typ host", 0},
      {"candidate:1 1 UDP 2130706431 127.0.0.1 5000 typ bogus", 0},
      {"candidate:1 1 UDP 2130706431 127.0.0.1 5000", 0},
      {"candidate:1 0 UDP 2130706431 127.0.0.1 5000 typ host", 0},
      {"candidate:1 x UDP 2130706431 127.0.0.1 5000 typ host", 0},
      {"candidate:1 1 SCTP 2130706431 127.0.0.1 5000 typ host", 0},
      {"candidate: 1 UDP 2130706431 127.0.0.1 5000 typ host", 0},
      {"candidate:1 1 UDP -5 127.0.0.1 5000 typ host", 0},
      {"candidate:1 1 UDP 2130706431 300.0.0.1 5000 typ host", 0},
      {"candidate:1 1 UDP 2130706431 127.0.0.1 5x typ host", 0},
      {"candidate:f*o 1 UDP 2130706431 127.0.0.1 5000 typ host", 0},
      {"cand:1 1 UDP 2130706431 127.0.0.1 5000 typ host", 0},
      {"", 0},
      /* ICE-TCP (RFC 6544 4.5): what Chromium, Firefox and libnice send */
      {"candidate:1052236233 1 tcp 1518280447 192.168.1.5 9 typ host tcptype active "
       "generation 0 ufrag abcd network-id 1", 1},
      {"candidate:2 1 TCP 2105524479 10.0.0.2 9 typ host tcptype active", 1},
      {"candidate:5 1 TCP 1015023359 127.0.0.1 9 typ host tcptype active", 1},
      {"candidate:6 1 TCP 1010828031 127.0.0.1 44321 typ host tcptype passive", 1},
      {"candidate:7 1 tcp 1010828031 ::1 44321 typ host tcptype so", 1},
      {"candidate:8 1 tcp 1010828031 1.2.3.4 44321 typ srflx raddr 10.0.0.2 rport 9 "
       "tcptype passive", 1},
      {"candidate:1 1 TCP 2130706431 127.0.0.1 9 typ host", 0},          /* no tcptype */
      {"candidate:1 1 TCP 2130706431 127.0.0.1 9 typ host tcptype bogus", 0},
      {"candidate:1 1 TCP 2130706431 127.0.0.1 9 typ host tcptype", 0},  /* no value */
      {"candidate:1 1 TCP 2130706431 127.0.0.1 9 typ host tcptype active tcptype so", 0},
      {"candidate:1 1 UDP 2130706431 127.0.0.1 9 typ host tcptype active", 0},
      {"candidate:1 1 UDP 2130706431 127.0.0.1 5000 typ host generation", 0},
      {"candidate:1 1 UDP 2130706431 127.0.0.1 5000 typ srflx raddr 300.0.0.1 rport 0", 0},
      {"candidate:1 1 UDP 2130706431 127.0.0.1 5000 typ srflx raddr 1.2.3.4 rport 99999", 0},
  };
  fx_t f;
  sfu_ice_t *ice = fx_init_agent(&f, "127.0.0.1");
  lite_t l;
  lite_open(ice, &l);
  for (size_t i = 0; i < SFU_ARRAY_SIZE(t); i++) {
    int rv = sfu_ice_add_remote_candidate(l.st, t[i].c);
    if ((rv == 0) != t[i].ok) fail_msg("'%s': %d", t[i].c, rv);
  }
  char big[1200];
  memset(big, 'a', sizeof(big));
  memcpy(big, "candidate:", 10);
  big[sizeof(big) - 1] = 0;
  assert_int_equal(sfu_ice_add_remote_candidate(l.st, big), SFU_EINVAL);
  sfu_ice_stream_destroy(l.st);
  fx_done_agent(&f, ice);
}

/* A real full agent checks, nominates, and data flows both ways. */
static void test_nice_full_agent_connects(void **state) {
  fx_t f;
  sfu_ice_t *ice = fx_init_agent(&f, "127.0.0.1");
  lite_t l;
  npeer_t p;
  np_connect(&f, ice, &l, &p, TRUE, SFU_ICE_UDP_ONLY);
  assert_int_equal(l.states, 1);
  assert_true(nominated(l.st));
  assert_true(sm_stats(ice)->stun_ok >= 1);
  assert_int_equal(sm_stats(ice)->stun_401_mac + sm_stats(ice)->stun_401_user, 0);

  exchange_five(&f, &l, &p);
  assert_int_equal(sfu_ice_drop_foreign(l.st), 0);
  assert_int_equal(sm_stats(ice)->drop_unknown, 0);

  np_close(&p);
  sfu_ice_stream_destroy(l.st);
  fx_done_agent(&f, ice);
}

/* A full agent that starts controlled gets 487, switches, connects. */
static void test_nice_role_conflict(void **state) {
  fx_t f;
  sfu_ice_t *ice = fx_init_agent(&f, "127.0.0.1");
  lite_t l;
  npeer_t p;
  np_connect(&f, ice, &l, &p, FALSE, SFU_ICE_UDP_ONLY);
  assert_true(sm_stats(ice)->stun_487 >= 1);
  /* It switched: only a controlling agent nominates. (libnice's
   * "controlling-mode" property keeps reporting the configured role.) */
  assert_true(nominated(l.st));
  np_send(&p, "\200hello");
  RUN_UNTIL(&f, l.nrx == 1);
  np_close(&p);
  sfu_ice_stream_destroy(l.st);
  fx_done_agent(&f, ice);
}

/* Wrong password: 401, no success, nothing validated. Unknown ufrag: 401.
 * No FINGERPRINT: silence. ICE-CONTROLLED: 487 (signed). Unknown
 * required attribute: 420 (signed). Then the right password: success
 * with the right mapped address, and the address is validated. */
static void test_stun_answers(void **state) {
  fx_t f;
  sfu_ice_t *ice = fx_init_agent(&f, "127.0.0.1");
  lite_t l;
  raw_t r;
  uint8_t tid[12], b[256];
  sfu_stun_msg_t m;
  lite_open(ice, &l);
  raw_open(&r, ice, 0);

  raw_check(&r, l.st, USE_CAND | BAD_PWD, tid);
  RUN_UNTIL(&f, sm_stats(ice)->stun_401_mac == 1);
  raw_response(&r, b, sizeof(b), tid, &m);
  assert_int_equal(m.type, SFU_STUN_BINDING_ERROR);
  assert_int_equal(sfu_stun_error_code(&m), 401);
  assert_int_equal(m.integrity_off, 0);
  assert_int_equal(l.states, 0);
  assert_int_equal(sm_stats(ice)->stun_ok, 0);

  raw_check_as(&r, "ZZZZZZZZ", "whatever-whatever-whatever", 0, tid);
  RUN_UNTIL(&f, sm_stats(ice)->stun_401_user == 1);
  raw_response(&r, b, sizeof(b), tid, &m);
  assert_int_equal(sfu_stun_error_code(&m), 401);

  raw_check(&r, l.st, NO_FP, tid);
  RUN_UNTIL(&f, sm_stats(ice)->stun_fingerprint == 1);
  assert_int_equal(raw_recv(&r, b, sizeof(b), 50), -1);

  raw_check(&r, l.st, CONTROLLED, tid);
  RUN_UNTIL(&f, sm_stats(ice)->stun_487 == 1);
  raw_response(&r, b, sizeof(b), tid, &m);
  assert_int_equal(sfu_stun_error_code(&m), 487);
  assert_int_equal(sfu_stun_check_integrity(&m, sfu_ice_pwd(l.st), strlen(sfu_ice_pwd(l.st))), 0);

  raw_check(&r, l.st, UNKNOWN_ATTR, tid);
  RUN_UNTIL(&f, sm_stats(ice)->stun_420 == 1);
  raw_response(&r, b, sizeof(b), tid, &m);
  assert_int_equal(sfu_stun_error_code(&m), 420);
  assert_int_equal(sfu_stun_check_integrity(&m, sfu_ice_pwd(l.st), strlen(sfu_ice_pwd(l.st))), 0);

  /* Media from the unvalidated address: dropped and counted. */
  raw_send(&r, "\200media", 6);
  RUN_UNTIL(&f, sm_stats(ice)->drop_unknown == 1);
  assert_int_equal(l.nrx, 0);
  assert_int_equal(l.states, 0);

  raw_check(&r, l.st, 0, tid);
  RUN_UNTIL(&f, sm_stats(ice)->stun_ok == 1);
  raw_response(&r, b, sizeof(b), tid, &m);
  assert_int_equal(m.type, SFU_STUN_BINDING_SUCCESS);
  assert_int_equal(sfu_stun_check_integrity(&m, sfu_ice_pwd(l.st), strlen(sfu_ice_pwd(l.st))), 0);
  struct sockaddr_storage mapped;
  assert_int_equal(sfu_stun_xor_addr(&m, &mapped), 0);
  assert_memory_equal(&mapped, &r.me.in, sizeof(struct sockaddr_in));
  assert_int_equal(l.states, 1); /* the first valid check selects */
  assert_true(l.connected);
  sfu_icestate_pair_t pair;
  assert_true(sfu_icestate_selected(l.st->s, &pair));
  assert_false(pair.nominated);

  raw_send(&r, "\200media", 6);
  RUN_UNTIL(&f, l.nrx == 1);
  assert_int_equal(sm_stats(ice)->drop_unknown, 1);

  /* Indications (keepalives) are ignored, silently. */
  sfu_stun_writer_t w;
  sfu_stun_writer_init(&w, b, sizeof(b), SFU_STUN_BINDING_INDICATION, tid);
  sfu_stun_put_fingerprint(&w);
  raw_send(&r, b, (size_t)sfu_stun_finish(&w));
  RUN_UNTIL(&f, sm_stats(ice)->stun_ignored == 1);
  assert_int_equal(raw_recv(&r, b, sizeof(b), 20), -1);

  raw_close(&r);
  sfu_ice_stream_destroy(l.st);
  fx_done_agent(&f, ice);
}

/* Data from an address nobody validated is dropped and counted. */
static void test_unknown_address_dropped(void **state) {
  fx_t f;
  sfu_ice_t *ice = fx_init_agent(&f, "127.0.0.1");
  lite_t l;
  raw_t good, bad;
  raw_connect(&f, ice, &l, &good, NULL);
  raw_open(&bad, ice, 0);
  for (int i = 0; i < 3; i++) raw_send(&bad, "\200spoof", 6);
  raw_send(&bad, "\x16\xfe\xfd dtls", 8);
  raw_send(&good, "\200real", 5);
  RUN_UNTIL(&f, l.nrx == 1 && sm_stats(ice)->drop_unknown == 4);
  assert_memory_equal(l.rx[0], "\200real", 5);
  /* The agent counts them, not a stream: the room adds this to its
   * streams' own counts, whoever comes and goes. */
  assert_int_equal(sfu_ice_drop_unknown(ice), 4);
  assert_int_equal(sfu_ice_drop_foreign(l.st), 0);
  lite_t newer;
  lite_open(ice, &newer);
  sfu_ice_stream_destroy(l.st);
  l.st = newer.st;
  assert_int_equal(sfu_ice_drop_unknown(ice), 4);
  assert_int_equal(sfu_ice_drop_foreign(l.st), 0);
  raw_close(&good);
  raw_close(&bad);
  sfu_ice_stream_destroy(l.st);
  fx_done_agent(&f, ice);
}

/* Two streams share one socket: checks go by ufrag, media by source;
 * sends reach each stream's own peer. Two real libnice agents, then a
 * raw peer that authenticates to the other stream takes its address. */
static void test_two_streams_one_socket(void **state) {
  fx_t f;
  sfu_ice_t *ice = fx_init_agent(&f, "127.0.0.1");
  lite_t la, lb;
  npeer_t pa, pb;
  np_connect(&f, ice, &la, &pa, TRUE, SFU_ICE_UDP_ONLY);
  np_connect(&f, ice, &lb, &pb, TRUE, SFU_ICE_UDP_ONLY);
  char ca[1][200], cb[1][200];
  sfu_ice_local_candidates(la.st, ca, 1);
  sfu_ice_local_candidates(lb.st, cb, 1);
  assert_string_equal(ca[0], cb[0]); /* one socket */
  assert_int_equal(pa.state, NICE_COMPONENT_STATE_READY);
  assert_true(la.connected);
  np_send(&pa, "\200from-a");
  np_send(&pb, "\200from-b");
  np_send(&pa, "\200from-a2");
  RUN_UNTIL(&f, la.nrx == 2 && lb.nrx == 1);
  assert_memory_equal(la.rx[0], "\200from-a", 7);
  assert_memory_equal(la.rx[1], "\200from-a2", 8);
  assert_memory_equal(lb.rx[0], "\200from-b", 7);
  sfu_ice_send(la.st, (const uint8_t *)"\200to-a", 5);
  sfu_ice_send(lb.st, (const uint8_t *)"\200to-b", 5);
  RUN_UNTIL(&f, pa.nrx == 1 && pb.nrx == 1);
  assert_string_equal(pa.rx[0], "\200to-a");
  assert_string_equal(pb.rx[0], "\200to-b");

  /* A raw peer validated by stream A, then by stream B: its address is
   * B's from then on (the latest authenticated check wins). */
  raw_t r;
  uint8_t tid[12], b[128];
  raw_open(&r, ice, 0);
  raw_check(&r, la.st, 0, tid);
  RUN_UNTIL(&f, raw_recv(&r, b, sizeof(b), 0) > 0);
  raw_send(&r, "\200raw1", 5);
  RUN_UNTIL(&f, la.nrx == 3);
  raw_check(&r, lb.st, 0, tid);
  RUN_UNTIL(&f, raw_recv(&r, b, sizeof(b), 0) > 0);
  raw_send(&r, "\200raw2", 5);
  RUN_UNTIL(&f, lb.nrx == 2);
  assert_int_equal(la.nrx, 3);
  assert_memory_equal(lb.rx[1], "\200raw2", 5);
  raw_close(&r);

  np_close(&pa);
  np_close(&pb);
  sfu_ice_stream_destroy(la.st);
  sfu_ice_stream_destroy(lb.st);
  fx_done_agent(&f, ice);
}

/* ICE restart, in signaling order: the full agent restarts (new ufrag in
 * its re-offer); set_remote() sees the new ufrag and makes new local
 * credentials (the old ones get 401 from then on); a validated address
 * other than the selected one is retired (its media counted as foreign);
 * the selected pair keeps carrying media; the peer gets our new
 * credentials (the answer) and connects again; no disconnect reported. */
static void test_restart(void **state) {
  fx_t f;
  sfu_ice_t *ice = fx_init_agent(&f, "127.0.0.1");
  lite_t l;
  npeer_t p;
  raw_t r;
  uint8_t tid[12], b[128];
  np_connect(&f, ice, &l, &p, TRUE, SFU_ICE_UDP_ONLY);
  raw_open(&r, ice, 0);
  raw_check(&r, l.st, 0, tid); /* validated, not selected */
  RUN_UNTIL(&f, raw_recv(&r, b, sizeof(b), 0) > 0);
  raw_send(&r, "\200raw", 4);
  RUN_UNTIL(&f, l.nrx == 1);

  char old_ufrag[16], old_pwd[32];
  snprintf(old_ufrag, sizeof(old_ufrag), "%s", sfu_ice_ufrag(l.st));
  snprintf(old_pwd, sizeof(old_pwd), "%s", sfu_ice_pwd(l.st));
  gchar *pu = NULL, *pp = NULL;
  nice_agent_get_local_credentials(p.agent, p.sid, &pu, &pp);
  assert_int_equal(sfu_ice_set_remote(l.st, pu, pp), 0); /* same ufrag: no restart */
  g_free(pu);
  g_free(pp);

  assert_true(nice_agent_restart_stream(p.agent, p.sid)); /* the re-offer */
  nice_agent_get_local_credentials(p.agent, p.sid, &pu, &pp);
  assert_int_equal(sfu_ice_set_remote(l.st, pu, pp), 1);
  g_free(pu);
  g_free(pp);
  assert_string_not_equal(sfu_ice_ufrag(l.st), old_ufrag);
  assert_string_not_equal(sfu_ice_pwd(l.st), old_pwd);
  assert_int_equal(sm_stats(ice)->restarts, 1);
  assert_true(l.connected);

  raw_send(&r, "\200raw", 4); /* retired */
  RUN_UNTIL(&f, sfu_ice_drop_foreign(l.st) == 1);
  assert_int_equal(l.nrx, 1);
  raw_check_as(&r, old_ufrag, old_pwd, 0, tid);
  RUN_UNTIL(&f, sm_stats(ice)->stun_401_user == 1);
  assert_int_equal(sfu_ice_send(l.st, (const uint8_t *)"\200during", 7), 0);
  RUN_UNTIL(&f, ice->stats.tx_datagrams == 1); /* the selected pair still sends */

  /* The answer: our new credentials to the peer; it checks again. */
  int readies = p.readies;
  assert_int_equal(np_exchange(&p, l.st), 0);
  RUN_UNTIL(&f, p.readies > readies && p.state == NICE_COMPONENT_STATE_READY);
  assert_int_equal(l.lost, 0);
  assert_true(l.connected);
  np_send(&p, "\200after");
  RUN_UNTIL(&f, l.nrx == 2);
  assert_memory_equal(l.rx[1], "\200after", 6);
  int before = p.nrx;
  assert_int_equal(sfu_ice_send(l.st, (const uint8_t *)"\200out", 4), 0);
  RUN_UNTIL(&f, p.nrx == before + 1);
  raw_close(&r);
  np_close(&p);
  sfu_ice_stream_destroy(l.st);
  fx_done_agent(&f, ice);
}

/* ---- sending ------------------------------------------------------------- */

typedef struct {
  sfu_ice_stream_t *st;
  int count;
} burst_t;

static void on_burst(uv_timer_t *t) {
  burst_t *bu = t->data;
  for (int i = 0; i < bu->count; i++) {
    uint8_t d[100];
    memset(d, 0, sizeof(d));
    d[0] = 0x80;
    d[1] = (uint8_t)(i >> 8);
    d[2] = (uint8_t)i;
    assert_int_equal(sfu_ice_send(bu->st, d, sizeof(d)), 0);
  }
}

static int g_rx_count;
static uint64_t g_rx_at;
static void on_raw_readable(uv_poll_t *h, int status, int events) {
  int fd = *(int *)h->data;
  uint8_t b[256];
  while (recv(fd, b, sizeof(b), MSG_DONTWAIT) > 0) {
    g_rx_count++;
    g_rx_at = uv_now(h->loop);
  }
}

/* Many sends in one loop turn, from a timer (before the poll phase): they
 * go out in order, in ceil(n / SEND_BATCH) sendmmsg calls, and before the
 * loop blocks (the prepare flush): the receiver sees them at once, not
 * after the next unrelated wake-up. */
static void test_batch_flush(void **state) {
  fx_t f;
  sfu_ice_t *ice = fx_init_agent(&f, "127.0.0.1");
  lite_t l;
  raw_t r;
  uint8_t b[256];
  raw_connect(&f, ice, &l, &r, NULL);

  uint64_t sys0 = ice->stats.tx_syscalls;
  uv_timer_t t;
  burst_t bu = {l.st, 200};
  uv_timer_init(&f.loop, &t);
  t.data = &bu;
  uv_timer_start(&t, on_burst, 1, 0);
  RUN_UNTIL(&f, ice->stats.tx_datagrams == 200);
  assert_int_equal(ice->stats.tx_syscalls - sys0, 4); /* 64 + 64 + 64 + 8 */
  assert_int_equal(ice->stats.tx_flush_full, 3);
  for (int i = 0; i < 200; i++) {
    int n = raw_recv(&r, b, sizeof(b), 100);
    assert_int_equal(n, 100);
    assert_int_equal(b[1] << 8 | b[2], i);
  }

  /* One send from a timer, then nothing else happens: the prepare flush
   * sends it before epoll_wait, so it arrives well before the guard. */
  uv_poll_t rp;
  uv_poll_init(&f.loop, &rp, r.fd);
  rp.data = &r.fd;
  uv_poll_start(&rp, UV_READABLE, on_raw_readable);
  g_rx_count = 0;
  bu.count = 1;
  uv_update_time(&f.loop);
  uint64_t t0 = uv_now(&f.loop);
  uv_timer_start(&t, on_burst, 5, 0);
  RUN_UNTIL(&f, g_rx_count == 1);
  assert_true(g_rx_at - t0 < 200);
  uv_close((uv_handle_t *)&rp, NULL);
  uv_close((uv_handle_t *)&t, NULL);

  /* Oversize: refused and counted. */
  static uint8_t huge[SEND_SLOT + 1];
  assert_int_equal(sfu_ice_send(l.st, huge, sizeof(huge)), SFU_EMSGSIZE);
  assert_int_equal(ice->stats.tx_drop_size, 1);
  raw_close(&r);
  sfu_ice_stream_destroy(l.st);
  fx_done_agent(&f, ice);
}

/* The send batch packs its copies: SEND_BATCH small ones take a few KiB
 * of the buffer, not a slot each; and a full batch of mixed sizes, the
 * largest allowed among them, fits and arrives byte for byte. */
static void test_send_batch_packs_its_copies(void **state) {
  fx_t f;
  sfu_ice_t *ice = fx_init_agent(&f, "127.0.0.1");
  lite_t l;
  raw_t r;
  uint8_t b[SEND_SLOT];
  raw_connect(&f, ice, &l, &r, NULL);
  lite_sock_t *s = ice->socks[0];

  memset(b, 0x80, sizeof(b));
  for (int i = 0; i < SEND_BATCH; i++) assert_int_equal(sfu_ice_send(l.st, b, 100), 0);
  assert_int_equal(s->sused, SEND_BATCH * 104); /* 100 rounded to 8 */
  flush_all(ice);
  assert_int_equal(s->sused, 0);
  for (int i = 0; i < SEND_BATCH; i++) assert_int_equal(raw_recv(&r, b, sizeof(b), 100), 100);

  for (int i = 0; i < SEND_BATCH; i++) {
    size_t len = i % 2 ? SEND_SLOT : (size_t)(13 + i);
    b[0] = 0x80;
    memset(b + 1, i, len - 1);
    assert_int_equal(sfu_ice_send(l.st, b, len), 0);
  }
  assert_int_equal(ice->stats.tx_flush_full, 0);
  flush_all(ice);
  for (int i = 0; i < SEND_BATCH; i++) {
    size_t len = i % 2 ? SEND_SLOT : (size_t)(13 + i);
    assert_int_equal(raw_recv(&r, b, sizeof(b), 100), (int)len);
    assert_int_equal(b[1], i);
    assert_int_equal(b[len - 1], i);
  }
  raw_close(&r);
  sfu_ice_stream_destroy(l.st);
  fx_done_agent(&f, ice);
}

/* One bad destination in a batch costs that datagram only. */
static void test_send_error_in_batch(void **state) {
  fx_t f;
  sfu_ice_t *ice = fx_init_agent(&f, "127.0.0.1");
  lite_t good, bad;
  raw_t r;
  uint8_t b[256];
  raw_connect(&f, ice, &good, &r, NULL);
  lite_open(ice, &bad);
  /* A selected pair towards port 0: sendmsg fails with EINVAL. */
  sfu_icestate_pair_t p;
  assert_true(sfu_icestate_selected(good.st->s, &p));
  p.remote.port = 0;
  bad.st->has_sel = 1;
  bad.st->sel_sock = 0;
  bad.st->sel_len = sa_of(&p.remote, &bad.st->sel_sa);
  sfu_ice_send(good.st, (const uint8_t *)"\200one", 4);
  sfu_ice_send(bad.st, (const uint8_t *)"\200bad", 4);
  sfu_ice_send(good.st, (const uint8_t *)"\200two", 4);
  flush_all(ice);
  assert_int_equal(ice->stats.tx_drop_error, 1);
  assert_int_equal(ice->stats.tx_datagrams, 2);
  assert_int_equal(raw_recv(&r, b, sizeof(b), 100), 4);
  assert_memory_equal(b, "\200one", 4);
  assert_int_equal(raw_recv(&r, b, sizeof(b), 100), 4);
  assert_memory_equal(b, "\200two", 4);
  raw_close(&r);
  sfu_ice_stream_destroy(good.st);
  sfu_ice_stream_destroy(bad.st);
  fx_done_agent(&f, ice);
}

/* ---- lifetimes ------------------------------------------------------------ */

/* Destroyed in its own recv callback, in the middle of a batch: the rest
 * of its datagrams are skipped; nothing touches freed memory (ASan). Then
 * the agent destroyed from a recv callback. */
static void test_destroy_in_callback(void **state) {
  fx_t f;
  sfu_ice_t *ice = fx_init_agent(&f, "127.0.0.1");
  lite_t l, m2;
  raw_t r, r2;
  raw_connect(&f, ice, &l, &r, NULL);
  raw_connect(&f, ice, &m2, &r2, NULL);
  assert_true(l.connected);
  l.destroy_at = 3;
  for (int i = 0; i < 10; i++) raw_send(&r, "\200x", 2); /* all in one recvmmsg */
  raw_send(&r2, "\200y", 2);
  uint64_t unknown0 = sm_stats(ice)->drop_unknown;
  RUN_UNTIL(&f, m2.nrx == 1);
  assert_int_equal(l.nrx, 3);
  assert_null(l.st);
  assert_int_equal(sm_stats(ice)->drop_unknown - unknown0, 7);
  run_for(&f, 5); /* reaped at the end of the turn */
  assert_null(ice->dead);

  m2.destroy_agent = ice;
  raw_send(&r2, "\200z", 2);
  raw_send(&r2, "\200z", 2);
  RUN_UNTIL(&f, m2.nrx == 2);
  run_for(&f, 20); /* agent freed when its handles close */
  assert_int_equal(m2.nrx, 2);
  sfu_ice_stream_destroy(m2.st); /* orphan: freed now */
  raw_close(&r);
  raw_close(&r2);
  fx_done(&f);
}

/* No check on the selected pair for the consent timeout (shortened to
 * 1.5 ticks): state(0) at the second tick, sends refused; a new check:
 * connected again. */
static void test_consent_freshness(void **state) {
  fx_t f;
  sfu_ice_t *ice = fx_init_agent(&f, "127.0.0.1");
  fast_ticks(ice);
  sfu__icestate_set_consent_timeout(ice->sm, TICK_MS * 3 / 2);
  lite_t l;
  raw_t r;
  uint8_t tid[12];
  raw_connect(&f, ice, &l, &r, NULL);
  uv_update_time(&f.loop);
  uint64_t t0 = uv_now(&f.loop);
  RUN_UNTIL(&f, l.lost == 1);
  uint64_t waited = uv_now(&f.loop) - t0;
  assert_true(waited >= TICK_MS * 14 / 10 && waited <= TICK_MS * 27 / 10);
  assert_false(l.connected);
  assert_int_equal(sfu_ice_send(l.st, (const uint8_t *)"\200x", 2), SFU_EAGAIN);
  assert_int_equal(sm_stats(ice)->consent_lost, 1);
  raw_check(&r, l.st, USE_CAND, tid);
  RUN_UNTIL(&f, l.connected);
  assert_int_equal(l.states, 3);
  assert_int_equal(sfu_ice_send(l.st, (const uint8_t *)"\200x", 2), 0);
  raw_close(&r);
  sfu_ice_stream_destroy(l.st);
  fx_done_agent(&f, ice);
}

/* IPv6: a socket on ::1, a v6 peer, v6 XOR-MAPPED-ADDRESS, data both ways. */
static void test_ipv6(void **state) {
  fx_t f;
  sfu_ice_t *ice = fx_init_agent(&f, "::1");
  fast_ticks(ice); /* the loop's next wake-up after the send */
  lite_t l;
  raw_t r;
  uint8_t b[256];
  struct sockaddr_storage mapped;
  raw_connect(&f, ice, &l, &r, &mapped);
  assert_int_equal(mapped.ss_family, AF_INET6);
  assert_memory_equal(&((struct sockaddr_in6 *)&mapped)->sin6_addr, &r.me.in6.sin6_addr, 16);
  assert_int_equal(((struct sockaddr_in6 *)&mapped)->sin6_port, r.me.in6.sin6_port);
  raw_send(&r, "\200v6", 3);
  RUN_UNTIL(&f, l.nrx == 1);
  sfu_ice_send(l.st, (const uint8_t *)"\200back", 5);
  RUN_UNTIL(&f, ice->stats.tx_datagrams == 1);
  assert_int_equal(raw_recv(&r, b, sizeof(b), 100), 5);
  raw_close(&r);
  sfu_ice_stream_destroy(l.st);
  fx_done_agent(&f, ice);
}

/* ---- ICE over TCP ------------------------------------------------------------ */

/* A framed check on a TCP connection gets a framed success on the same
 * connection (mapping the connection's far end), binds the connection to
 * the stream and selects it; media frames arrive whole, split or several
 * per read; the same ip:port over UDP is a stranger; sends are framed onto
 * the connection. The stream destroyed from its own recv closes its
 * connection (ASan: nothing touched after). */
static void test_tcp_check_answered_on_its_connection(void **state) {
  fx_t f;
  sfu_ice_t *ice = fx_init_agent(&f, "127.0.0.1");
  const sfu_ice_tcp_stats_t *ts = sfu_ice_tcp_stats(ice);
  lite_t l;
  tcpc_t t;
  uint8_t tid[12], b[256];
  tcp_connect(&f, ice, &l, &t, 0, tid);
  assert_true(nominated(l.st));
  sfu_icestate_pair_t p;
  assert_true(sfu_icestate_selected(l.st->s, &p));
  assert_int_equal(p.remote.transport, SFU_ICESTATE_TCP);
  assert_int_equal(p.remote.port, ntohs(t.me.in.sin_port));
  assert_non_null(l.st->sel_conn);
  assert_ptr_equal(ice->conns->st, l.st);
  assert_int_equal(ts->accepted, 1);
  assert_int_equal(ts->open, 1);
  assert_int_equal(ts->selected, 1);
  assert_int_equal(ts->selections, 1);
  assert_int_equal(ts->rx_frames, 1);
  assert_int_equal(ts->tx_frames, 1);

  /* Two frames in one write; one split over three. */
  tcp_write(&t, "\000\003\200ab\000\002\200c", 9);
  RUN_UNTIL(&f, l.nrx == 2);
  assert_int_equal(l.rxlen[0], 3);
  assert_memory_equal(l.rx[0], "\200ab", 3);
  assert_int_equal(l.rxlen[1], 2);
  assert_memory_equal(l.rx[1], "\200c", 2);
  tcp_write(&t, "\000", 1);
  run_for(&f, 20);
  tcp_write(&t, "\004\200", 2);
  run_for(&f, 20);
  tcp_write(&t, "xyz", 3);
  RUN_UNTIL(&f, l.nrx == 3);
  assert_int_equal(l.rxlen[2], 4);
  assert_memory_equal(l.rx[2], "\200xyz", 4);

  /* UDP from the same ip:port: another address, which nobody validated. */
  raw_t r;
  raw_open(&r, ice, 0);
  close(r.fd);
  r.fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  assert_int_equal(bind(r.fd, &t.me.sa, sizeof(t.me.in)), 0);
  raw_send(&r, "\200u", 2);
  RUN_UNTIL(&f, sm_stats(ice)->drop_unknown == 1);
  assert_int_equal(l.nrx, 3);
  raw_close(&r);

  /* Sends: framed, on the connection, at once. */
  assert_int_equal(sfu_ice_send(l.st, (const uint8_t *)"\200back", 5), 0);
  assert_int_equal(tcp_read_frame(&t, b, sizeof(b), 1000), 5);
  assert_memory_equal(b, "\200back", 5);
  assert_int_equal(ts->tx_frames, 2);
  assert_int_equal(ts->tx_queued, 0);
  assert_int_equal(ice->stats.tx_datagrams, 0); /* nothing over UDP */

  /* Destroyed by its own recv: its connection goes with it. */
  l.destroy_at = 4;
  tcp_frame(&t, "\200z", 2);
  RUN_UNTIL(&f, l.st == NULL);
  assert_true(tcp_closed(&t, 1000));
  RUN_UNTIL(&f, ice->conns == NULL);
  assert_int_equal(ts->close_left, 1);
  assert_int_equal(ts->open, 0);
  assert_int_equal(ts->selected, 0);
  tcp_close(&t);
  fx_done_agent(&f, ice);
}

/* What a connection may not do closes that connection only, counted: a
 * length over SFU_TCPFRAME_MAX, a first frame that is media, empty, a
 * check with an unknown ufrag or a wrong password (no answer: closed), a
 * check for another participant on a bound connection. A good connection
 * of the same agent goes on. */
static void test_tcp_bad_frames_close_only_their_connection(void **state) {
  fx_t f;
  sfu_ice_t *ice = fx_init_agent(&f, "127.0.0.1");
  const sfu_ice_tcp_stats_t *ts = sfu_ice_tcp_stats(ice);
  lite_t l1, l2;
  tcpc_t good, over, junk, empty, stranger, wrongpw, other;
  uint8_t tid[12], b[256];
  tcp_connect(&f, ice, &l1, &good, 0, tid);
  lite_open(ice, &l2);

  tcp_open(&over, ice, 0, 0);
  tcp_write(&over, "\377\377\200abc", 6);
  RUN_UNTIL(&f, ts->close_framing == 1);
  assert_true(tcp_closed(&over, 1000));

  tcp_open(&junk, ice, 0, 0);
  tcp_frame(&junk, "\200media", 6);
  RUN_UNTIL(&f, ts->close_first == 1);
  assert_true(tcp_closed(&junk, 1000));

  tcp_open(&empty, ice, 0, 0);
  tcp_write(&empty, "\000\000", 2);
  RUN_UNTIL(&f, ts->close_first == 2);
  assert_true(tcp_closed(&empty, 1000));

  tcp_open(&stranger, ice, 0, 0);
  tcp_check_as(&stranger, "ZZZZZZZZ", "whatever-whatever-whatev", USE_CAND, tid);
  RUN_UNTIL(&f, ts->close_first == 3);
  assert_true(tcp_closed(&stranger, 1000)); /* and no 401 before the end */
  assert_int_equal(sm_stats(ice)->stun_401_user, 1);

  tcp_open(&wrongpw, ice, 0, 0);
  tcp_check(&wrongpw, l2.st, USE_CAND | BAD_PWD, tid);
  RUN_UNTIL(&f, ts->close_first == 4);
  assert_true(tcp_closed(&wrongpw, 1000));
  assert_false(l2.connected);

  /* Bound to l2 by its first check; then a check for l1 on it. */
  tcp_open(&other, ice, 0, 0);
  tcp_check(&other, l2.st, USE_CAND, tid);
  RUN_UNTIL(&f, l2.connected);
  tcp_success(&other, l2.st, tid);
  tcp_check(&other, l1.st, USE_CAND, tid);
  RUN_UNTIL(&f, ts->close_foreign == 1);
  assert_true(tcp_closed(&other, 1000));
  assert_false(l2.st->has_sel); /* its only path went */
  assert_null(l2.st->sel_conn);
  assert_int_equal(sfu_ice_send(l2.st, (const uint8_t *)"\200x", 2), SFU_EAGAIN);
  assert_int_equal(l2.lost, 0); /* still connected: consent decides */

  /* The good one is untouched. */
  tcp_check(&good, l1.st, 0, tid);
  RUN_UNTIL(&f, ts->rx_frames == 8); /* one each but `over`'s, two on `other` */
  tcp_success(&good, l1.st, tid);
  assert_int_equal(sfu_ice_send(l1.st, (const uint8_t *)"\200ok", 3), 0);
  assert_int_equal(tcp_read_frame(&good, b, sizeof(b), 1000), 3);
  RUN_UNTIL(&f, ts->open == 1);
  assert_int_equal(ts->accepted, 7);
  assert_int_equal(ts->selected, 1);
  assert_int_equal(ts->close_peer + ts->close_timeout + ts->close_idle + ts->close_limit, 0);

  /* The peer resets the good one: the next send finds out (no SIGPIPE
   * kills us: ignored, as in the room), drops and closes it. */
  struct linger lg = {1, 0};
  setsockopt(good.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  tcp_close(&good);
  good.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0); /* closed below */
  usleep(20000);
  int rv = 0;
  for (int i = 0; i < 10 && rv == 0; i++) rv = sfu_ice_send(l1.st, (const uint8_t *)"\200x", 2);
  assert_int_equal(rv, SFU_EPROTO);
  assert_int_equal(ts->close_peer, 1);
  assert_int_equal(ts->tx_drop_error, 1);
  assert_null(l1.st->sel_conn);
  assert_int_equal(sfu_ice_send(l1.st, (const uint8_t *)"\200x", 2), SFU_EAGAIN);
  RUN_UNTIL(&f, ts->open == 0 && ice->conns == NULL);
  assert_int_equal(ts->selected, 0);

  tcpc_t *all[] = {&good, &over, &junk, &empty, &stranger, &wrongpw, &other};
  for (size_t i = 0; i < SFU_ARRAY_SIZE(all); i++) tcp_close(all[i]);
  sfu_ice_stream_destroy(l1.st);
  sfu_ice_stream_destroy(l2.st);
  fx_done_agent(&f, ice);
}

/* A connection with no authenticated check within tcp_first_ms is closed;
 * a bound one that sends nothing for tcp_idle_ms too, and its stream
 * loses the pair (sends refused) but not its connected state. */
static void test_tcp_first_check_and_idle_deadlines(void **state) {
  fx_t f;
  sfu_ice_t *ice = fx_init_agent(&f, "127.0.0.1");
  const sfu_ice_tcp_stats_t *ts = sfu_ice_tcp_stats(ice);
  fast_ticks(ice);
  ice->tcp_first_ms = TICK_MS * 3 / 10; /* closed at the first tick */
  ice->tcp_idle_ms = TICK_MS * 3 / 2;   /* at the second */
  lite_t l;
  tcpc_t silent, bound;
  uint8_t tid[12];
  tcp_open(&silent, ice, 0, 0);
  tcp_connect(&f, ice, &l, &bound, 0, tid);
  RUN_UNTIL(&f, ts->close_timeout == 1);
  assert_true(tcp_closed(&silent, 1000));
  assert_int_equal(ts->close_idle, 0);
  assert_non_null(l.st->sel_conn);
  RUN_UNTIL(&f, ts->close_idle == 1);
  assert_true(tcp_closed(&bound, 1000));
  assert_null(l.st->sel_conn);
  assert_false(l.st->has_sel);
  assert_int_equal(sfu_ice_send(l.st, (const uint8_t *)"\200x", 2), SFU_EAGAIN);
  assert_int_equal(l.lost, 0);
  assert_true(sfu_icestate_connected(l.st->s));
  assert_int_equal(ts->selected, 0);
  tcp_close(&silent);
  tcp_close(&bound);
  sfu_ice_stream_destroy(l.st);
  fx_done_agent(&f, ice);
}

/* The agent takes 2 connections per stream plus TCP_SLACK, and a stream
 * TCP_PER_STREAM: the ones beyond are closed, counted. */
static void test_tcp_connection_limits(void **state) {
  fx_t f;
  sfu_ice_t *ice = fx_init_agent(&f, "127.0.0.1");
  const sfu_ice_tcp_stats_t *ts = sfu_ice_tcp_stats(ice);
  lite_t l;
  enum { LIMIT = 2 + TCP_SLACK, N = LIMIT + 2 };
  tcpc_t t[N];
  uint8_t tid[12];
  lite_open(ice, &l);
  for (int i = 0; i < N; i++) tcp_open(&t[i], ice, 0, 0);
  RUN_UNTIL(&f, ts->accepted + ts->refused == N);
  assert_int_equal(ts->refused, 2);
  RUN_UNTIL(&f, ts->open == LIMIT);
  for (int i = 0; i < N; i++) tcp_close(&t[i]);
  RUN_UNTIL(&f, ts->open == 0);
  assert_int_equal(ts->close_peer, LIMIT);

  for (int i = 0; i <= TCP_PER_STREAM; i++) {
    tcp_open(&t[i], ice, 0, 0);
    tcp_check(&t[i], l.st, 0, tid);
    RUN_UNTIL(&f, ts->rx_frames == (uint64_t)i + 1);
  }
  assert_int_equal(ts->close_limit, 1);
  assert_int_equal(l.st->tcp_conns, TCP_PER_STREAM);
  assert_true(tcp_closed(&t[TCP_PER_STREAM], 1000));
  for (int i = 0; i <= TCP_PER_STREAM; i++) tcp_close(&t[i]);
  RUN_UNTIL(&f, ts->open == 0);
  assert_int_equal(l.st->tcp_conns, 0);
  sfu_ice_stream_destroy(l.st);
  fx_done_agent(&f, ice);
}

/* A peer that reads slowly: frames wait in the connection's buffer up to
 * TCP_OUT_MAX, then are dropped (SFU_EAGAIN, counted), never queued
 * beyond; what was taken arrives whole and in order once the peer reads. */
static void test_tcp_output_bounded_drops_not_queues(void **state) {
  fx_t f;
  sfu_ice_t *ice = fx_init_agent(&f, "127.0.0.1");
  const sfu_ice_tcp_stats_t *ts = sfu_ice_tcp_stats(ice);
  lite_t l;
  tcpc_t t;
  uint8_t tid[12], pkt[1400];
  tcp_connect(&f, ice, &l, &t, 4096, tid);
  lite_conn_t *c = l.st->sel_conn;
  uv_os_fd_t fd;
  int small = 4096;
  assert_int_equal(uv_fileno((uv_handle_t *)&c->tcp, &fd), 0);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));

  enum { SENDS = 2000 };
  int ok = 0, dropped = 0;
  memset(pkt, 0xab, sizeof(pkt));
  pkt[0] = 0x80;
  for (uint32_t i = 0; i < SENDS; i++) {
    sfu_wr32(pkt + 1, i);
    int rv = sfu_ice_send(l.st, pkt, sizeof(pkt));
    assert_true(rv == 0 || rv == SFU_EAGAIN);
    if (rv == 0)
      ok++;
    else
      dropped++;
    assert_true(c->out_len[0] + c->out_len[1] <= TCP_OUT_MAX);
  }
  assert_true(dropped > 0);
  assert_int_equal(ts->tx_drop_full, (uint64_t)dropped);
  assert_int_equal(ts->tx_frames, (uint64_t)ok + 1);
  assert_true(ts->tx_queued > 0);
  assert_true(c->out_cap[0] <= TCP_OUT_HALF && c->out_cap[1] <= TCP_OUT_HALF);

  /* The peer reads: every frame taken arrives, whole, in order. */
  sfu_tcpframe_t *df = malloc(sizeof(*df));
  sfu_tcpframe_init(df);
  int got = 0;
  int64_t last = -1;
  uint8_t rb[8192];
  for (int spins = 0; got < ok && spins < 20000; spins++) {
    uv_run(&f.loop, UV_RUN_NOWAIT);
    struct pollfd pf = {t.fd, POLLIN, 0};
    if (poll(&pf, 1, 1) != 1) continue;
    ssize_t n = recv(t.fd, rb, sizeof(rb), MSG_DONTWAIT);
    assert_true(n > 0);
    const uint8_t *p = rb, *fr;
    size_t left = (size_t)n, flen;
    int r;
    while ((r = sfu_tcpframe_next(df, &p, &left, &fr, &flen)) == 1) {
      assert_int_equal(flen, sizeof(pkt));
      assert_int_equal(fr[0], 0x80);
      assert_int_equal(fr[sizeof(pkt) - 1], 0xab);
      int64_t seq = sfu_rd32(fr + 1);
      assert_true(seq > last);
      last = seq;
      got++;
    }
    assert_int_equal(r, 0);
  }
  free(df);
  assert_int_equal(got, ok);
  assert_int_equal(c->writing, -1); /* drained */
  assert_int_equal(ts->tx_drop_error, 0);
  tcp_close(&t);
  sfu_ice_stream_destroy(l.st);
  fx_done_agent(&f, ice);
}

/* A real full agent over TCP only (libnice, ice-udp off): it connects to
 * the passive candidate, checks, nominates, and data flows both ways. */
static void test_nice_tcp_connects(void **state) {
  fx_t f;
  sfu_ice_t *ice = fx_init_agent(&f, "127.0.0.1");
  lite_t l;
  npeer_t p;
  np_connect(&f, ice, &l, &p, TRUE, SFU_ICE_TCP_ONLY);
  RUN_UNTIL(&f, nominated(l.st));
  assert_non_null(l.st->sel_conn);
  assert_int_equal(sfu_ice_tcp_stats(ice)->selected, 1);
  assert_int_equal(sm_stats(ice)->stun_401_mac + sm_stats(ice)->stun_401_user, 0);
  exchange_five(&f, &l, &p);
  assert_int_equal(ice->stats.tx_datagrams, 0); /* all of it over TCP */
  np_close(&p);
  sfu_ice_stream_destroy(l.st);
  fx_done_agent(&f, ice);
}

/* ---- checking streams (links between room processes) --------------------- */

/* The counters a refused or a malformed check would move: none of them
 * may move for answers to our own checks. */
static uint64_t stun_errors(const sfu_ice_t *ice) {
  const sfu_icestate_stats_t *s = sm_stats(ice);
  return s->stun_malformed + s->stun_fingerprint + s->stun_400 + s->stun_401_user +
         s->stun_401_mac + s->stun_420 + s->stun_487 + s->stun_err_limited;
}

/* A host candidate line for `port` on 127.0.0.1 (udp or tcp passive). */
static void cand_line(char *out, size_t cap, const char *transport, uint32_t prio,
                      uint16_t port) {
  snprintf(out, cap, "candidate:7 1 %s %u 127.0.0.1 %u typ host%s", transport, prio, port,
           strcmp(transport, "tcp") == 0 ? " tcptype passive" : "");
}

/* Gives stream `st` every local candidate of `other` (UDP and TCP). */
static void add_candidates_of(sfu_ice_stream_t *st, sfu_ice_stream_t *other) {
  char c[8][200];
  int n = sfu_ice_local_candidates(other, c, 8);
  assert_true(n >= 2); /* UDP and TCP */
  for (int i = 0; i < n; i++) assert_int_equal(sfu_ice_add_remote_candidate(st, c[i]), 0);
}

/* The other end's socket, as a selected pair's remote address. */
static int pair_is_agent(const sfu_ice_stream_t *st, const sfu_ice_t *other) {
  sfu_icestate_pair_t p;
  if (!sfu_icestate_selected(st->s, &p)) return 0;
  return p.nominated && p.remote.fam == 4 && p.remote.transport == SFU_ICESTATE_UDP &&
         p.remote.port == other->socks[0]->port;
}

/* Two room agents on one loop, one checking stream each, each given the
 * other's credentials and candidates (B the candidates first: its checks
 * wait for the credentials, then leave at once). Each side's checks
 * validate and nominate the other's stream; both connect, and media goes
 * both ways. The TCP candidates are not kept. Answers to the checks come
 * back as stun_responses, never as errors. Over three periods with a
 * consent timeout shorter than two of them, the checks keep consent. */
static void test_checking_streams_connect_each_other(void **state) {
  fx_t f;
  fx_init(&f);
  sfu_ice_t *a = agent_new(&f, "127.0.0.1"), *b = agent_new(&f, "127.0.0.1");
  fast_ticks(a);
  fast_ticks(b);
  a->check_ms = b->check_ms = 2 * TICK_MS; /* CHECK_MS is two ticks */
  lite_t la, lb;
  lite_open(a, &la);
  lite_open(b, &lb);
  assert_int_equal(sfu_ice_stream_set_checking(la.st, 1), 0);
  assert_int_equal(sfu_ice_stream_set_checking(lb.st, 1), 0);
  assert_int_equal(sfu_ice_stream_set_checking(lb.st, 1), 0); /* again: no change */

  assert_int_equal(sfu_ice_set_remote(la.st, sfu_ice_ufrag(lb.st), sfu_ice_pwd(lb.st)), 0);
  add_candidates_of(la.st, lb.st);
  assert_int_equal(la.st->ncand, 1);
  assert_int_equal(a->stats.check_sent, 1); /* at once */
  add_candidates_of(lb.st, la.st);
  assert_int_equal(lb.st->ncand, 1);
  assert_int_equal(b->stats.check_sent, 0); /* no credentials yet */
  assert_int_equal(sfu_ice_set_remote(lb.st, sfu_ice_ufrag(la.st), sfu_ice_pwd(la.st)), 0);
  assert_int_equal(b->stats.check_sent, 1); /* at once, now */

  RUN_UNTIL(&f, la.connected && lb.connected && pair_is_agent(la.st, b) &&
                    pair_is_agent(lb.st, a) && sm_stats(a)->stun_responses >= 1 &&
                    sm_stats(b)->stun_responses >= 1);
  assert_int_equal(la.states, 1);
  assert_int_equal(lb.states, 1);
  assert_int_equal(stun_errors(a) + stun_errors(b), 0);
  assert_int_equal(a->stats.check_send_fail + b->stats.check_send_fail, 0);

  assert_int_equal(sfu_ice_send(la.st, (const uint8_t *)"\200from-a", 7), 0);
  assert_int_equal(sfu_ice_send(lb.st, (const uint8_t *)"\200from-b", 7), 0);
  RUN_UNTIL(&f, la.nrx == 1 && lb.nrx == 1);
  assert_int_equal(lb.rxlen[0], 7);
  assert_memory_equal(lb.rx[0], "\200from-a", 7);
  assert_int_equal(la.rxlen[0], 7);
  assert_memory_equal(la.rx[0], "\200from-b", 7);

  /* Consent: 3 ticks, kept by the checks of every 2 (1.5 to 2.5 apart). */
  sfu__icestate_set_consent_timeout(a->sm, 3 * TICK_MS);
  sfu__icestate_set_consent_timeout(b->sm, 3 * TICK_MS);
  run_for(&f, TICK_MS * 13 / 2);
  assert_int_equal(la.lost + lb.lost, 0);
  assert_true(la.connected && lb.connected);
  assert_true(a->stats.check_sent >= 3 && a->stats.check_sent <= 6);
  assert_true(b->stats.check_sent >= 3 && b->stats.check_sent <= 6);
  assert_int_equal(sm_stats(a)->consent_lost + sm_stats(b)->consent_lost, 0);
  assert_int_equal(stun_errors(a) + stun_errors(b), 0);
  assert_int_equal(sfu_ice_send(la.st, (const uint8_t *)"\200again", 6), 0);
  RUN_UNTIL(&f, lb.nrx == 2);

  sfu_ice_stream_destroy(la.st);
  sfu_ice_stream_destroy(lb.st);
  agent_close(&f, a);
  agent_close(&f, b);
  fx_done(&f);
}

/* One side has a wrong remote password: its checks are refused by the
 * peer (401 for each, counted there as a wrong password), so the peer's
 * stream never connects, while the peer's own, right checks connect this
 * side. The 401s that come back are dropped as responses. */
static void test_checking_wrong_password_refused_by_peer(void **state) {
  fx_t f;
  fx_init(&f);
  sfu_ice_t *a = agent_new(&f, "127.0.0.1"), *b = agent_new(&f, "127.0.0.1");
  fast_ticks(a);
  fast_ticks(b);
  a->check_ms = b->check_ms = TICK_MS / 2; /* a round at every tick */
  lite_t la, lb;
  lite_open(a, &la);
  lite_open(b, &lb);
  assert_int_equal(sfu_ice_stream_set_checking(la.st, 1), 0);
  assert_int_equal(sfu_ice_stream_set_checking(lb.st, 1), 0);
  assert_int_equal(sfu_ice_set_remote(la.st, sfu_ice_ufrag(lb.st), "not-the-password-of-b"), 0);
  assert_int_equal(sfu_ice_set_remote(lb.st, sfu_ice_ufrag(la.st), sfu_ice_pwd(la.st)), 0);
  add_candidates_of(la.st, lb.st);
  add_candidates_of(lb.st, la.st);
  RUN_UNTIL(&f, la.connected && sm_stats(b)->stun_401_mac >= 3 &&
                    sm_stats(a)->stun_responses >= 3);
  assert_false(lb.connected);
  assert_int_equal(lb.states, 0);
  assert_int_equal(sm_stats(b)->stun_ok, 0);
  assert_int_equal(sfu_ice_send(lb.st, (const uint8_t *)"\200x", 2), SFU_EAGAIN);
  sfu_icestate_pair_t p;
  assert_false(sfu_icestate_selected(lb.st->s, &p));
  assert_int_equal(stun_errors(a), 0); /* the 401s it got are answers, not attacks */
  assert_int_equal(sm_stats(b)->stun_401_mac, stun_errors(b));
  /* The right password, now: the next round connects the peer. */
  assert_int_equal(sfu_ice_set_remote(la.st, sfu_ice_ufrag(lb.st), sfu_ice_pwd(lb.st)), 0);
  RUN_UNTIL(&f, lb.connected && pair_is_agent(lb.st, a));
  sfu_ice_stream_destroy(la.st);
  sfu_ice_stream_destroy(lb.st);
  agent_close(&f, a);
  agent_close(&f, b);
  fx_done(&f);
}

/* A datagram waits on `fd`. */
static int readable(int fd) {
  struct pollfd p = {fd, POLLIN, 0};
  return poll(&p, 1, 0) == 1;
}

/* Drops what waits on a raw peer's socket. */
static void raw_drain(raw_t *r) {
  uint8_t b[512];
  while (raw_recv(r, b, sizeof(b), 0) > 0) {}
}

/* The next check a raw peer receives (the loop runs until it comes):
 * parsed, FINGERPRINT and signature (the peer's password) verified, its
 * USERNAME into `user`. */
static void raw_request(fx_t *f, raw_t *r, const char *pwd, sfu_stun_msg_t *m, uint8_t *b,
                        char *user) {
  RUN_UNTIL(f, readable(r->fd));
  int n = raw_recv(r, b, 512, 0);
  assert_true(n > 0);
  assert_int_equal(sfu_stun_parse(b, (size_t)n, m, NULL), n);
  assert_int_equal(m->type, SFU_STUN_BINDING_REQUEST);
  assert_int_equal(sfu_stun_check_fingerprint(m), 0);
  assert_int_equal(sfu_stun_check_integrity(m, pwd, strlen(pwd)), 0);
  assert_true(m->username_len < 300);
  memcpy(user, m->data + m->username_off, m->username_len);
  user[m->username_len] = '\0';
}

/* What a checking stream sends, seen by raw peers: nothing while
 * checking is off (the default). On: the request, field by field, at once
 * and then at every round; PRIORITY ranked among the stream's candidates;
 * candidates it cannot check (TCP, a host name, a duplicate, a fifth) not
 * kept. A restart stops the checks to the old candidates, and the new
 * session's candidate is checked with the new credentials; checking off,
 * and the stream destroyed, stop them. */
static void test_checking_sends_only_when_on_and_stops(void **state) {
  fx_t f;
  fx_init(&f);
  sfu_ice_t *ice = agent_new(&f, "127.0.0.1");
  fast_ticks(ice);
  ice->check_ms = TICK_MS / 2; /* a round at every tick */
  lite_t l;
  raw_t r[5];
  uint8_t b[512];
  char line[200], user[300], want[300];
  sfu_stun_msg_t m;
  lite_open(ice, &l);
  for (int i = 0; i < 5; i++) raw_open(&r[i], ice, 0);
  const char *rpwd = "raw-peer-password-raw-peer";

  /* Off: parsed only, nothing sent, nothing kept. */
  assert_int_equal(sfu_ice_set_remote(l.st, "rawpeer", rpwd), 0);
  cand_line(line, sizeof(line), "udp", 2000, ntohs(r[0].me.in.sin_port));
  assert_int_equal(sfu_ice_add_remote_candidate(l.st, line), 0);
  assert_int_equal(sfu_ice_add_remote_candidate(l.st, "candidate:garbage"), SFU_EINVAL);
  run_for(&f, TICK_MS * 6 / 5); /* more than a tick */
  assert_int_equal(raw_recv(&r[0], b, sizeof(b), 0), -1);
  assert_int_equal(l.st->ncand, 0);
  assert_int_equal(ice->stats.check_sent, 0);

  /* On: kept and checked at once. */
  assert_int_equal(sfu_ice_stream_set_checking(l.st, 1), 0);
  assert_int_equal(sfu_ice_add_remote_candidate(l.st, line), 0);
  raw_request(&f, &r[0], rpwd, &m, b, user);
  snprintf(want, sizeof(want), "rawpeer:%s", sfu_ice_ufrag(l.st));
  assert_string_equal(user, want);
  assert_true(m.has_priority);
  assert_int_equal(m.priority, (110u << 24) | (65535u << 8) | 255u);
  assert_true(m.controlling && !m.controlled && m.use_candidate);
  uint64_t tie = m.tie_breaker; /* the agent's: the same in every check */
  uint8_t tid0[12];
  memcpy(tid0, m.tid, 12);
  /* A success in reply is an answer: dropped and counted. */
  int n = sfu_stun_binding_success(b, sizeof(b), tid0, &r[0].me.sa, rpwd, strlen(rpwd));
  raw_send(&r[0], b, (size_t)n);
  RUN_UNTIL(&f, sm_stats(ice)->stun_responses == 1);
  assert_int_equal(stun_errors(ice), 0);

  /* What cannot be checked is not kept; a better candidate ranks first. */
  const char *skip[] = {
      "candidate:8 1 tcp 1518280447 127.0.0.1 9 typ host tcptype active",
      "candidate:9 1 udp 2122260223 2b7a8d4e-6c1f.local 50000 typ host",
      "candidate:10 1 udp 2122260223 ::1 50000 typ host", /* no IPv6 socket */
      "candidate:11 2 udp 2122260223 127.0.0.1 50001 typ host", /* component 2 */
      "candidate:12 1 udp 2122260223 0.0.0.0 50002 typ host",
      line, /* a duplicate */
  };
  for (size_t i = 0; i < sizeof(skip) / sizeof(skip[0]); i++)
    assert_int_equal(sfu_ice_add_remote_candidate(l.st, skip[i]), 0);
  assert_int_equal(l.st->ncand, 1);
  cand_line(line, sizeof(line), "udp", 3000, ntohs(r[1].me.in.sin_port));
  assert_int_equal(sfu_ice_add_remote_candidate(l.st, line), 0);
  raw_request(&f, &r[1], rpwd, &m, b, user);
  assert_int_equal(m.priority & 0xff, 255); /* the higher priority: first */
  for (int i = 2; i < 5; i++) { /* a third and fourth kept, a fifth not */
    cand_line(line, sizeof(line), "udp", 1000, ntohs(r[i].me.in.sin_port));
    assert_int_equal(sfu_ice_add_remote_candidate(l.st, line), 0);
  }
  assert_int_equal(l.st->ncand, 4);
  raw_request(&f, &r[2], rpwd, &m, b, user);
  raw_request(&f, &r[3], rpwd, &m, b, user);
  assert_int_equal(raw_recv(&r[4], b, sizeof(b), 0), -1);
  for (int i = 0; i < 4; i++) raw_drain(&r[i]); /* rounds of fewer candidates */

  /* Every round: each candidate, its rank in the last byte, a new tid. */
  uint32_t want_low[4] = {254, 255, 253, 252};
  for (int round = 0; round < 2; round++) {
    for (int i = 0; i < 4; i++) {
      raw_request(&f, &r[i], rpwd, &m, b, user);
      assert_int_equal(m.priority & 0xff, want_low[i]);
      assert_int_equal(m.priority >> 8, (110u << 16) | 65535u);
      assert_true(m.tie_breaker == tie && m.controlling && m.use_candidate);
      if (i == 0) assert_memory_not_equal(m.tid, tid0, 12);
    }
  }
  assert_int_equal(raw_recv(&r[4], b, sizeof(b), 0), -1);
  assert_int_equal(ice->stats.check_send_fail, 0);

  /* A restart: no check to the old candidates, new credentials for the
   * new session's. */
  assert_int_equal(sfu_ice_set_remote(l.st, "rawpeer2", "raw-peer-2-password-raw-2"), 1);
  assert_int_equal(l.st->ncand, 0);
  for (int i = 0; i < 4; i++) raw_drain(&r[i]); /* what a round sent before */
  uint64_t sent = ice->stats.check_sent;
  run_for(&f, TICK_MS * 6 / 5); /* more than a tick */
  for (int i = 0; i < 4; i++) assert_int_equal(raw_recv(&r[i], b, sizeof(b), 0), -1);
  assert_int_equal(ice->stats.check_sent, sent);
  cand_line(line, sizeof(line), "udp", 2000, ntohs(r[0].me.in.sin_port));
  assert_int_equal(sfu_ice_add_remote_candidate(l.st, line), 0);
  raw_request(&f, &r[0], "raw-peer-2-password-raw-2", &m, b, user);
  snprintf(want, sizeof(want), "rawpeer2:%s", sfu_ice_ufrag(l.st));
  assert_string_equal(user, want);
  raw_request(&f, &r[0], "raw-peer-2-password-raw-2", &m, b, user); /* the next round */

  /* Off: stops, forgets. */
  assert_int_equal(sfu_ice_stream_set_checking(l.st, 0), 0);
  assert_int_equal(l.st->ncand, 0);
  assert_null(ice->chk_head);
  raw_drain(&r[0]);
  run_for(&f, TICK_MS * 6 / 5); /* more than a tick */
  assert_int_equal(raw_recv(&r[0], b, sizeof(b), 0), -1);

  /* On again, then the stream destroyed: off the list, nothing sent. */
  assert_int_equal(sfu_ice_stream_set_checking(l.st, 1), 0);
  assert_int_equal(sfu_ice_add_remote_candidate(l.st, line), 0);
  raw_request(&f, &r[0], "raw-peer-2-password-raw-2", &m, b, user);
  sfu_ice_stream_destroy(l.st);
  assert_null(ice->chk_head);
  raw_drain(&r[0]);
  run_for(&f, TICK_MS * 6 / 5); /* more than a tick */
  assert_int_equal(raw_recv(&r[0], b, sizeof(b), 0), -1);

  for (int i = 0; i < 5; i++) raw_close(&r[i]);
  agent_close(&f, ice);
  fx_done(&f);
}

/* Checking streams and the lifetimes: one destroyed from its own recv
 * callback (mid-dispatch) leaves the list at once; the agent destroyed
 * with a checking stream alive orphans it (set_checking refuses it then),
 * and the orphan is freed later. Run under ASan, nothing is touched after
 * it is freed. */
static void test_checking_stream_lifetimes(void **state) {
  fx_t f;
  fx_init(&f);
  sfu_ice_t *a = agent_new(&f, "127.0.0.1"), *b = agent_new(&f, "127.0.0.1");
  fast_ticks(a);
  fast_ticks(b);
  a->check_ms = b->check_ms = TICK_MS / 2;
  lite_t la, lb, lc;
  lite_open(a, &la);
  lite_open(b, &lb);
  lite_open(b, &lc); /* a second checking stream of b, never connected */
  assert_int_equal(sfu_ice_stream_set_checking(la.st, 1), 0);
  assert_int_equal(sfu_ice_stream_set_checking(lb.st, 1), 0);
  assert_int_equal(sfu_ice_stream_set_checking(lc.st, 1), 0);
  assert_int_equal(sfu_ice_set_remote(la.st, sfu_ice_ufrag(lb.st), sfu_ice_pwd(lb.st)), 0);
  assert_int_equal(sfu_ice_set_remote(lb.st, sfu_ice_ufrag(la.st), sfu_ice_pwd(la.st)), 0);
  assert_int_equal(sfu_ice_set_remote(lc.st, "nobody", "nobody-password-nobody-pw"), 0);
  add_candidates_of(la.st, lb.st);
  add_candidates_of(lb.st, la.st);
  add_candidates_of(lc.st, la.st); /* checks a refuses: unknown ufrag */
  RUN_UNTIL(&f, la.connected && lb.connected);

  lb.destroy_at = 1; /* b's stream goes in its first recv */
  assert_int_equal(sfu_ice_send(la.st, (const uint8_t *)"\200bye", 4), 0);
  RUN_UNTIL(&f, lb.st == NULL);
  assert_ptr_equal(b->chk_head, lc.st);
  assert_ptr_equal(b->chk_tail, lc.st);
  uint64_t sent = b->stats.check_sent;
  RUN_UNTIL(&f, b->stats.check_sent >= sent + 2); /* lc's rounds go on */
  RUN_UNTIL(&f, sm_stats(a)->stun_401_user >= 2);

  sfu_ice_destroy(b); /* lc orphaned while checking */
  assert_int_equal(sfu_ice_stream_set_checking(lc.st, 0), SFU_EINVAL);
  assert_int_equal(sfu_ice_add_remote_candidate(lc.st, "candidate:1 1 udp 1 127.0.0.1 9 typ host"),
                   0);
  run_for(&f, TICK_MS * 6 / 5); /* more than a tick */
  sfu_ice_stream_destroy(lc.st);
  sfu_ice_stream_destroy(la.st);
  agent_close(&f, a);
  fx_done(&f);
}

int main(void) {
  sfu_log_set_level(SFU_LOG_WARN);
  signal(SIGPIPE, SIG_IGN); /* as the room: writes to TCP connections a peer reset */
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_create_and_candidates),
      cmocka_unit_test(test_remote_candidates),
      cmocka_unit_test(test_nice_full_agent_connects),
      cmocka_unit_test(test_nice_role_conflict),
      cmocka_unit_test(test_stun_answers),
      cmocka_unit_test(test_unknown_address_dropped),
      cmocka_unit_test(test_two_streams_one_socket),
      cmocka_unit_test(test_restart),
      cmocka_unit_test(test_batch_flush),
      cmocka_unit_test(test_send_batch_packs_its_copies),
      cmocka_unit_test(test_send_error_in_batch),
      cmocka_unit_test(test_destroy_in_callback),
      cmocka_unit_test(test_consent_freshness),
      cmocka_unit_test(test_ipv6),
      cmocka_unit_test(test_tcp_check_answered_on_its_connection),
      cmocka_unit_test(test_tcp_bad_frames_close_only_their_connection),
      cmocka_unit_test(test_tcp_first_check_and_idle_deadlines),
      cmocka_unit_test(test_tcp_connection_limits),
      cmocka_unit_test(test_tcp_output_bounded_drops_not_queues),
      cmocka_unit_test(test_nice_tcp_connects),
      cmocka_unit_test(test_checking_streams_connect_each_other),
      cmocka_unit_test(test_checking_wrong_password_refused_by_peer),
      cmocka_unit_test(test_checking_sends_only_when_on_and_stops),
      cmocka_unit_test(test_checking_stream_lifetimes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
