/*
 * test_gloop.c -- tools/client/gloop.c: a GLib context driven from a libuv loop.
 *
 * Every test owns a fresh uv_loop_t with a gloop and a referenced guard
 * timer: the guard is the only thing that keeps uv_run() alive by itself
 * (gloop handles are unreferenced), and it stops the loop if the behaviour
 * under test never happens, so a failure costs seconds, not a hang. Each
 * test then asserts on what happened (counts, order, data, times) and closes
 * everything; fx_done() asserts the gloop's close_cb ran once and that
 * uv_loop_close() finds no handle left.
 *
 * "Slept, did not spin" is asserted by counting loop turns with an
 * unreferenced uv_check_t: a correct gloop wakes a handful of times while
 * waiting 100 ms for a GLib timeout; a gloop that polls with timeout 0 turns
 * the loop thousands of times.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib-unix.h>
#include <nice/agent.h>
#include <stun/stunagent.h>
#include <stun/stunmessage.h>

#include "tools/client/gloop.h"

#define GUARD_MS 3000 /* upper bound for any single uv_run() below */

/* ---- fixture ---------------------------------------------------------- */

typedef struct {
  uv_loop_t loop;
  sfu_gloop_t g;
  uv_timer_t guard;   /* referenced: keeps uv_run alive, ends it on expiry */
  uv_check_t counter; /* unreferenced: counts loop turns */
  uint64_t turns;     /* loop turns seen by counter */
  int timed_out;      /* guard fired */
  int closed;         /* gloop close_cb calls */
} fx_t;

static uint64_t
now_us(void)
{
  return uv_hrtime() / 1000;
}

static void
on_guard(uv_timer_t *t)
{
  fx_t *f = t->data;

  f->timed_out = 1;
  uv_stop(t->loop);
}

static void
on_count(uv_check_t *c)
{
  ((fx_t *)c->data)->turns++;
}

static void
on_gloop_closed(sfu_gloop_t *g)
{
  ((fx_t *)g->data)->closed++;
}

static void
fx_init(fx_t *f, uint64_t guard_ms)
{
  memset(f, 0, sizeof(*f));
  assert_int_equal(uv_loop_init(&f->loop), 0);
  assert_int_equal(sfu_gloop_init(&f->loop, &f->g), 0);
  f->g.data = f;
  assert_non_null(f->g.ctx);
  assert_ptr_equal(g_main_context_get_thread_default(), f->g.ctx);
  assert_true(g_main_context_is_owner(f->g.ctx));

  uv_timer_init(&f->loop, &f->guard);
  f->guard.data = f;
  uv_timer_start(&f->guard, on_guard, guard_ms, 0);
  uv_check_init(&f->loop, &f->counter);
  f->counter.data = f;
  uv_check_start(&f->counter, on_count);
  uv_unref((uv_handle_t *)&f->counter);
}

/* Close everything the fixture made; the test closed its own handles. */
static void
fx_done(fx_t *f)
{
  sfu_gloop_close(&f->g, on_gloop_closed);
  assert_null(f->g.ctx); /* popped and unreffed at once outside dispatch */
  assert_null(g_main_context_get_thread_default());
  uv_close((uv_handle_t *)&f->guard, NULL);
  uv_close((uv_handle_t *)&f->counter, NULL);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(f->closed, 1);
  assert_int_equal(uv_loop_close(&f->loop), 0);
}

static void
attach_timeout(GMainContext *ctx, guint ms, GSourceFunc fn, void *data,
               GDestroyNotify destroy)
{
  GSource *s = g_timeout_source_new(ms);

  g_source_set_callback(s, fn, data, destroy);
  g_source_attach(s, ctx);
  g_source_unref(s);
}

static void
attach_idle(GMainContext *ctx, GSourceFunc fn, void *data)
{
  GSource *s = g_idle_source_new();

  g_source_set_callback(s, fn, data, NULL);
  g_source_attach(s, ctx);
  g_source_unref(s);
}

static gboolean never(gpointer p);

/* ---- 1. GLib timeouts fire on time, and the loop sleeps meanwhile ------ */

typedef struct {
  fx_t *f;
  int count;      /* callbacks so far */
  int stop_after; /* uv_stop() and remove on this call */
  uint64_t at_us; /* time of the last call */
} tick_t;

static gboolean
on_tick(gpointer p)
{
  tick_t *t = p;

  t->count++;
  t->at_us = now_us();
  if (t->count < t->stop_after)
    return G_SOURCE_CONTINUE;
  uv_stop(&t->f->loop);
  return G_SOURCE_REMOVE;
}

static void
test_timeout_fires_on_time(void **state)
{
  fx_t f;
  tick_t t;
  uint64_t t0, dt;

  fx_init(&f, GUARD_MS);
  memset(&t, 0, sizeof(t));
  t.f = &f;
  t.stop_after = 1;
  attach_timeout(f.g.ctx, 100, on_tick, &t, NULL);

  t0 = now_us();
  uv_run(&f.loop, UV_RUN_DEFAULT);
  dt = t.at_us - t0;

  assert_false(f.timed_out);
  assert_int_equal(t.count, 1);
  assert_true(dt >= 80000);  /* not early */
  assert_true(dt < 1000000); /* woken by the gloop's timer, not the guard */
  assert_true(f.turns < 30); /* slept in epoll_wait, did not spin */
  fx_done(&f);
}

static void
test_timeout_repeats(void **state)
{
  fx_t f;
  tick_t t;
  uint64_t t0, dt;

  fx_init(&f, GUARD_MS);
  memset(&t, 0, sizeof(t));
  t.f = &f;
  t.stop_after = 5;
  attach_timeout(f.g.ctx, 20, on_tick, &t, NULL);

  t0 = now_us();
  uv_run(&f.loop, UV_RUN_DEFAULT);
  dt = t.at_us - t0;

  assert_false(f.timed_out);
  assert_int_equal(t.count, 5);
  assert_true(dt >= 5 * 20000 * 8 / 10);
  assert_true(dt < 1000000);
  assert_true(f.turns < 60);
  fx_done(&f);
}

/* The gloop's handles are unreferenced: pending GLib work alone does not
 * keep uv_run() going; the owner's handles do. */
static void
test_gloop_alone_does_not_keep_loop_alive(void **state)
{
  fx_t f;
  tick_t t;
  uint64_t t0;

  fx_init(&f, GUARD_MS);
  memset(&t, 0, sizeof(t));
  t.f = &f;
  t.stop_after = 1;
  attach_timeout(f.g.ctx, 50, on_tick, &t, NULL);
  attach_idle(f.g.ctx, never, NULL);
  uv_timer_stop(&f.guard); /* nothing referenced is active now */

  t0 = now_us();
  assert_int_equal(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
  assert_true(now_us() - t0 < 40000);
  assert_int_equal(t.count, 0);

  /* With a referenced handle active again, the same sources run. */
  uv_timer_start(&f.guard, on_guard, GUARD_MS, 0);
  uv_run(&f.loop, UV_RUN_DEFAULT);
  assert_false(f.timed_out);
  assert_int_equal(t.count, 1);
  fx_done(&f);
}

/* ---- 2. idle sources dispatch without the loop blocking --------------- */

static void
test_idle_dispatches(void **state)
{
  fx_t f;
  tick_t t;
  uint64_t t0;

  fx_init(&f, GUARD_MS);
  memset(&t, 0, sizeof(t));
  t.f = &f;
  t.stop_after = 3;
  attach_idle(f.g.ctx, on_tick, &t);

  t0 = now_us();
  uv_run(&f.loop, UV_RUN_DEFAULT);

  assert_false(f.timed_out);
  assert_int_equal(t.count, 3);
  /* GLib's timeout 0 must not turn into an epoll_wait until the guard. */
  assert_true(t.at_us - t0 < 200000);
  fx_done(&f);
}

/* ---- 3. a GSocket source receives a datagram -------------------------- */

typedef struct {
  fx_t *f;
  int count;
  char buf[64];
  gssize len;
  uint64_t at_us;
} rx_t;

typedef struct {
  uint16_t port;    /* where to send, host order */
  const char *data; /* NUL-terminated payload */
  uint64_t sent_us; /* just before sendto() */
  int err;          /* 0 or errno */
} tx_t;

static gboolean
on_gsocket(GSocket *sock, GIOCondition cond, gpointer p)
{
  rx_t *rx = p;

  rx->len = g_socket_receive(sock, rx->buf, sizeof(rx->buf), NULL, NULL);
  rx->count++;
  rx->at_us = now_us();
  uv_stop(&rx->f->loop);
  return G_SOURCE_REMOVE;
}

/* Another thread, so the datagram arrives while the loop thread is asleep
 * in epoll_wait() with no timer due before the guard. */
static gpointer
sender_thread(gpointer p)
{
  tx_t *tx = p;
  struct sockaddr_in to;
  int fd;

  g_usleep(50000);
  fd = socket(AF_INET, SOCK_DGRAM, 0);
  memset(&to, 0, sizeof(to));
  to.sin_family = AF_INET;
  to.sin_port = htons(tx->port);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  tx->sent_us = now_us();
  if (sendto(fd, tx->data, strlen(tx->data), 0, (struct sockaddr *)&to,
             sizeof(to)) < 0)
    tx->err = errno;
  close(fd);
  return NULL;
}

static GSocket *
udp_socket_on_loopback(uint16_t *port)
{
  GInetAddress *lo;
  GSocketAddress *sa, *bound;
  GSocket *s;

  s = g_socket_new(G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM,
                   G_SOCKET_PROTOCOL_UDP, NULL);
  assert_non_null(s);
  lo = g_inet_address_new_loopback(G_SOCKET_FAMILY_IPV4);
  sa = g_inet_socket_address_new(lo, 0);
  assert_true(g_socket_bind(s, sa, TRUE, NULL));
  bound = g_socket_get_local_address(s, NULL);
  assert_non_null(bound);
  *port = g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(bound));
  g_object_unref(bound);
  g_object_unref(sa);
  g_object_unref(lo);
  return s;
}

static void
test_gsocket_receives(void **state)
{
  fx_t f;
  rx_t rx;
  tx_t tx;
  GSocket *s;
  GSource *src;
  GThread *th;

  fx_init(&f, GUARD_MS);
  memset(&rx, 0, sizeof(rx));
  memset(&tx, 0, sizeof(tx));
  rx.f = &f;
  s = udp_socket_on_loopback(&tx.port);
  tx.data = "datagram through epfd";

  src = g_socket_create_source(s, G_IO_IN, NULL);
  g_source_set_callback(src, G_SOURCE_FUNC(on_gsocket), &rx, NULL);
  g_source_attach(src, f.g.ctx);
  g_source_unref(src);

  th = g_thread_new("sender", sender_thread, &tx);
  uv_run(&f.loop, UV_RUN_DEFAULT);
  g_thread_join(th);

  assert_int_equal(tx.err, 0);
  assert_false(f.timed_out);
  assert_int_equal(rx.count, 1);
  assert_int_equal(rx.len, (gssize)strlen(tx.data));
  assert_memory_equal(rx.buf, tx.data, strlen(tx.data));
  assert_true(rx.at_us >= tx.sent_us);
  assert_true(rx.at_us - tx.sent_us < 500000);
  assert_true(f.turns < 30); /* woken by the fd, not by spinning */
  g_object_unref(s);
  fx_done(&f);
}

/* ---- 4. libnice gathers through a STUN server on the same loop -------- */

/*
 * A STUN Binding server on a uv_udp_t of the loop under test. It answers
 * with a made-up XOR-MAPPED-ADDRESS (TEST-NET-1), so the agent's
 * server-reflexive candidate proves the answer went through: libnice sends
 * from a GLib timer, the answer wakes its socket's fd in epfd, GLib
 * dispatches libnice's reader. Host-only gathering would prove nothing:
 * libnice emits candidate-gathering-done before nice_agent_gather_candidates
 * returns.
 */
#define MAPPED_IP "192.0.2.7"
#define MAPPED_PORT 40000

typedef struct {
  uv_udp_t udp;
  StunAgent agent;
  int requests;                   /* Binding requests answered */
  uint8_t in[2048];               /* receive buffer */
  uint8_t out[STUN_MAX_MESSAGE_SIZE_IPV4]; /* response buffer */
} stunsrv_t;

static void
stun_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
  stunsrv_t *srv = h->data;

  *buf = uv_buf_init((char *)srv->in, sizeof(srv->in));
}

static void
stun_recv(uv_udp_t *u, ssize_t n, const uv_buf_t *buf,
          const struct sockaddr *from, unsigned flags)
{
  stunsrv_t *srv = u->data;
  struct sockaddr_storage mapped;
  struct sockaddr_in *sin = (struct sockaddr_in *)&mapped;
  StunMessage req, resp;
  uv_buf_t out;
  size_t len;

  if (n <= 0 || from == NULL)
    return;
  if (stun_agent_validate(&srv->agent, &req, (const uint8_t *)buf->base,
                          (size_t)n, NULL, NULL) != STUN_VALIDATION_SUCCESS)
    return;
  if (stun_message_get_class(&req) != STUN_REQUEST ||
      stun_message_get_method(&req) != STUN_BINDING)
    return;
  if (!stun_agent_init_response(&srv->agent, &resp, srv->out,
                                sizeof(srv->out), &req))
    return;
  memset(&mapped, 0, sizeof(mapped));
  sin->sin_family = AF_INET;
  sin->sin_port = htons(MAPPED_PORT);
  inet_pton(AF_INET, MAPPED_IP, &sin->sin_addr);
  /* libnice's discovery speaks RFC 3489 (no magic cookie): answer in kind */
  if (stun_message_has_cookie(&req))
    stun_message_append_xor_addr(&resp, STUN_ATTRIBUTE_XOR_MAPPED_ADDRESS,
                                 &mapped, sizeof(*sin));
  else
    stun_message_append_addr(&resp, STUN_ATTRIBUTE_MAPPED_ADDRESS,
                             (struct sockaddr *)sin, sizeof(*sin));
  len = stun_agent_finish_message(&srv->agent, &resp, NULL, 0);
  out = uv_buf_init((char *)srv->out, (unsigned)len);
  if (uv_udp_try_send(u, &out, 1, from) == (int)len)
    srv->requests++;
}

static uint16_t
stunsrv_start(uv_loop_t *loop, stunsrv_t *srv)
{
  struct sockaddr_in a;
  struct sockaddr_storage bound;
  int len = sizeof(bound);

  memset(srv, 0, sizeof(*srv));
  stun_agent_init(&srv->agent, STUN_ALL_KNOWN_ATTRIBUTES,
                  STUN_COMPATIBILITY_RFC3489,
                  STUN_AGENT_USAGE_IGNORE_CREDENTIALS);
  assert_int_equal(uv_udp_init(loop, &srv->udp), 0);
  srv->udp.data = srv;
  assert_int_equal(uv_ip4_addr("127.0.0.1", 0, &a), 0);
  assert_int_equal(uv_udp_bind(&srv->udp, (struct sockaddr *)&a, 0), 0);
  assert_int_equal(uv_udp_recv_start(&srv->udp, stun_alloc, stun_recv), 0);
  assert_int_equal(
      uv_udp_getsockname(&srv->udp, (struct sockaddr *)&bound, &len), 0);
  return ntohs(((struct sockaddr_in *)&bound)->sin_port);
}

typedef struct {
  fx_t *f;
  int done;       /* candidate-gathering-done emissions */
  int in_run;     /* set while uv_run() is on the stack */
  int done_in_run; /* emissions that happened inside uv_run() */
} gather_t;

static void
on_gathering_done(NiceAgent *agent, guint stream_id, gpointer p)
{
  gather_t *gs = p;

  gs->done++;
  gs->done_in_run += gs->in_run;
  uv_stop(&gs->f->loop);
}

static void
nice_recv_ignore(NiceAgent *agent, guint stream_id, guint component_id,
                 guint len, gchar *buf, gpointer p)
{
}

static void
add_loopback(NiceAgent *agent)
{
  NiceAddress a;

  nice_address_init(&a);
  assert_true(nice_address_set_from_string(&a, "127.0.0.1"));
  assert_true(nice_agent_add_local_address(agent, &a));
}

static void
test_nice_gathering(void **state)
{
  fx_t f;
  stunsrv_t srv;
  gather_t gs;
  NiceAgent *agent;
  GSList *cands, *it;
  guint sid;
  uint16_t port;
  int srflx = 0;

  fx_init(&f, GUARD_MS);
  memset(&gs, 0, sizeof(gs));
  gs.f = &f;
  port = stunsrv_start(&f.loop, &srv);

  agent = nice_agent_new(f.g.ctx, NICE_COMPATIBILITY_RFC5245);
  assert_non_null(agent);
  g_object_set(agent, "stun-server", "127.0.0.1", "stun-server-port",
               (guint)port, "ice-tcp", FALSE, "upnp", FALSE, NULL);
  add_loopback(agent);
  sid = nice_agent_add_stream(agent, 1);
  assert_true(sid > 0);
  /* Without attach_recv the component's sockets poll on a private context
   * of libnice's, which nothing iterates: the STUN answer would never be
   * read. */
  assert_true(nice_agent_attach_recv(agent, sid, 1, f.g.ctx, nice_recv_ignore,
                                     NULL));
  g_signal_connect(agent, "candidate-gathering-done",
                   G_CALLBACK(on_gathering_done), &gs);

  assert_true(nice_agent_gather_candidates(agent, sid));
  assert_int_equal(gs.done, 0); /* waits for the STUN answer */

  gs.in_run = 1;
  uv_run(&f.loop, UV_RUN_DEFAULT);
  gs.in_run = 0;

  assert_false(f.timed_out);
  assert_int_equal(gs.done, 1);
  assert_int_equal(gs.done_in_run, 1);
  assert_true(srv.requests >= 1);

  cands = nice_agent_get_local_candidates(agent, sid, 1);
  for (it = cands; it != NULL; it = it->next) {
    NiceCandidate *c = it->data;
    char ip[NICE_ADDRESS_STRING_LEN];

    if (c->type != NICE_CANDIDATE_TYPE_SERVER_REFLEXIVE)
      continue;
    nice_address_to_string(&c->addr, ip);
    if (strcmp(ip, MAPPED_IP) == 0 &&
        nice_address_get_port(&c->addr) == MAPPED_PORT)
      srflx++;
  }
  g_slist_free_full(cands, (GDestroyNotify)nice_candidate_free);
  assert_int_equal(srflx, 1);

  g_object_unref(agent);
  uv_close((uv_handle_t *)&srv.udp, NULL);
  fx_done(&f);
}

/* ---- 4b. two libnice agents connect and carry data -------------------- */

typedef struct {
  fx_t *f;
  NiceAgent *l, *r; /* controlling, controlled */
  guint lsid, rsid;
  int l_ready, r_ready; /* component reached READY */
  int sent;             /* nice_agent_send() result */
  char got[64];
  int got_len;
} pair_t;

#define PAIR_MSG "media over ice, driven by uv"

static void
pair_maybe_send(pair_t *p)
{
  if (p->l_ready && p->r_ready && p->sent == 0)
    p->sent = nice_agent_send(p->l, p->lsid, 1, sizeof(PAIR_MSG) - 1,
                              PAIR_MSG);
}

static void
on_state(NiceAgent *agent, guint sid, guint cid, guint st, gpointer data)
{
  pair_t *p = data;

  if (st != NICE_COMPONENT_STATE_READY)
    return;
  if (agent == p->l)
    p->l_ready = 1;
  else
    p->r_ready = 1;
  pair_maybe_send(p);
}

static void
on_pair_recv(NiceAgent *agent, guint sid, guint cid, guint len, gchar *buf,
             gpointer data)
{
  pair_t *p = data;

  if (len > sizeof(p->got))
    len = sizeof(p->got);
  memcpy(p->got, buf, len);
  p->got_len = (int)len;
  uv_stop(&p->f->loop);
}

static void
exchange(NiceAgent *from, guint fsid, NiceAgent *to, guint tsid)
{
  gchar *ufrag = NULL, *pwd = NULL;
  GSList *cands;

  assert_true(nice_agent_get_local_credentials(from, fsid, &ufrag, &pwd));
  assert_true(nice_agent_set_remote_credentials(to, tsid, ufrag, pwd));
  cands = nice_agent_get_local_candidates(from, fsid, 1);
  assert_non_null(cands);
  assert_true(nice_agent_set_remote_candidates(to, tsid, 1, cands) > 0);
  g_slist_free_full(cands, (GDestroyNotify)nice_candidate_free);
  g_free(ufrag);
  g_free(pwd);
}

static NiceAgent *
pair_agent(fx_t *f, gboolean controlling, guint *sid, pair_t *p)
{
  NiceAgent *a = nice_agent_new(f->g.ctx, NICE_COMPATIBILITY_RFC5245);

  assert_non_null(a);
  g_object_set(a, "controlling-mode", controlling, "ice-tcp", FALSE, "upnp",
               FALSE, NULL);
  add_loopback(a);
  *sid = nice_agent_add_stream(a, 1);
  assert_true(*sid > 0);
  assert_true(
      nice_agent_attach_recv(a, *sid, 1, f->g.ctx, on_pair_recv, p));
  g_signal_connect(a, "component-state-changed", G_CALLBACK(on_state), p);
  assert_true(nice_agent_gather_candidates(a, *sid));
  return a;
}

static void
test_nice_agents_connect(void **state)
{
  fx_t f;
  pair_t p;

  fx_init(&f, GUARD_MS);
  memset(&p, 0, sizeof(p));
  p.f = &f;
  p.l = pair_agent(&f, TRUE, &p.lsid, &p);
  p.r = pair_agent(&f, FALSE, &p.rsid, &p);
  exchange(p.l, p.lsid, p.r, p.rsid);
  exchange(p.r, p.rsid, p.l, p.lsid);

  uv_run(&f.loop, UV_RUN_DEFAULT);

  assert_false(f.timed_out);
  assert_true(p.l_ready && p.r_ready);
  assert_int_equal(p.sent, (int)sizeof(PAIR_MSG) - 1);
  assert_int_equal(p.got_len, (int)sizeof(PAIR_MSG) - 1);
  assert_memory_equal(p.got, PAIR_MSG, sizeof(PAIR_MSG) - 1);

  g_object_unref(p.l);
  g_object_unref(p.r);
  fx_done(&f);
}

/* ---- 5. uv timers and GLib timeouts interleave in one run ------------- */

typedef struct {
  fx_t *f;
  char log[32]; /* one letter per event, in order */
  int n;
  uv_timer_t ut[3]; /* uv timers at 20, 60, 100 ms */
  uv_timer_t now;   /* uv timer started from a GLib callback */
} mix_t;

static void
mix_log(mix_t *m, char c)
{
  if (m->n < (int)sizeof(m->log) - 1)
    m->log[m->n++] = c;
}

static gboolean
on_mix_idle(gpointer p)
{
  mix_log(p, 'i');
  return G_SOURCE_REMOVE;
}

static void
on_mix_now(uv_timer_t *t)
{
  mix_t *m = t->data;

  mix_log(m, 'U');
  uv_stop(t->loop);
}

static void
on_mix_uv(uv_timer_t *t)
{
  mix_t *m = t->data;

  mix_log(m, 'u');
  if (t == &m->ut[2]) /* uv -> GLib: must run without waiting */
    attach_idle(m->f->g.ctx, on_mix_idle, m);
}

static gboolean
on_mix_glib(gpointer p)
{
  mix_t *m = p;

  mix_log(m, 'g');
  if (m->n == 7) /* the last GLib timeout: GLib -> uv */
    uv_timer_start(&m->now, on_mix_now, 0, 0);
  return G_SOURCE_REMOVE;
}

static void
test_interleave(void **state)
{
  fx_t f;
  mix_t m;
  int i;
  uint64_t t0;

  fx_init(&f, GUARD_MS);
  memset(&m, 0, sizeof(m));
  m.f = &f;
  for (i = 0; i < 3; i++) {
    uv_timer_init(&f.loop, &m.ut[i]);
    m.ut[i].data = &m;
    uv_timer_start(&m.ut[i], on_mix_uv, 20 + 40 * (uint64_t)i, 0);
    attach_timeout(f.g.ctx, 40 + 40 * (guint)i, on_mix_glib, &m, NULL);
  }
  uv_timer_init(&f.loop, &m.now);
  m.now.data = &m;

  t0 = now_us();
  uv_run(&f.loop, UV_RUN_DEFAULT);

  assert_false(f.timed_out);
  assert_string_equal(m.log, "uguguigU");
  assert_true(now_us() - t0 < 1000000);
  for (i = 0; i < 3; i++)
    uv_close((uv_handle_t *)&m.ut[i], NULL);
  uv_close((uv_handle_t *)&m.now, NULL);
  fx_done(&f);
}

/* ---- 6. close releases everything ------------------------------------- */

static void
on_destroyed(gpointer p)
{
  (*(int *)p)++;
}

static gboolean
never(gpointer p)
{
  return G_SOURCE_CONTINUE;
}

static void
test_close_releases_all(void **state)
{
  fx_t f;
  tick_t t;
  GSocket *s;
  GSource *src;
  uint16_t port;
  int destroyed = 0;

  fx_init(&f, GUARD_MS);
  memset(&t, 0, sizeof(t));
  t.f = &f;
  t.stop_after = 3;
  /* An fd registered in epfd, a pending timeout, and some turns run. */
  s = udp_socket_on_loopback(&port);
  src = g_socket_create_source(s, G_IO_IN, NULL);
  g_source_set_callback(src, never, NULL, NULL);
  g_source_attach(src, f.g.ctx);
  g_source_unref(src);
  attach_timeout(f.g.ctx, 60000, never, NULL, NULL);
  attach_timeout(f.g.ctx, 1, on_tick, &t, NULL);
  attach_timeout(f.g.ctx, 60000, never, &destroyed, on_destroyed);
  uv_run(&f.loop, UV_RUN_DEFAULT);
  assert_int_equal(t.count, 3);
  assert_true(f.g.n_reg >= 1);

  fx_done(&f); /* asserts close_cb once and uv_loop_close() == 0 */
  /* The context died with our ref: its sources were destroyed. */
  assert_int_equal(destroyed, 1);
  g_object_unref(s);
}

static void
test_close_without_running(void **state)
{
  fx_t f;

  fx_init(&f, GUARD_MS);
  fx_done(&f);
}

typedef struct {
  fx_t *f;
  int calls;
  GMainContext *ctx_during; /* g->ctx seen right after close returned */
} selfclose_t;

static gboolean
on_selfclose(gpointer p)
{
  selfclose_t *sc = p;

  sc->calls++;
  sfu_gloop_close(&sc->f->g, on_gloop_closed);
  sc->ctx_during = sc->f->g.ctx; /* still alive: we are inside dispatch */
  uv_close((uv_handle_t *)&sc->f->guard, NULL);
  uv_close((uv_handle_t *)&sc->f->counter, NULL);
  return G_SOURCE_REMOVE;
}

static void
test_close_from_dispatch(void **state)
{
  fx_t f;
  selfclose_t sc;

  fx_init(&f, GUARD_MS);
  memset(&sc, 0, sizeof(sc));
  sc.f = &f;
  attach_timeout(f.g.ctx, 5, on_selfclose, &sc, NULL);
  attach_idle(f.g.ctx, never, NULL); /* more work pending in the context */

  uv_run(&f.loop, UV_RUN_DEFAULT); /* ends when the closes complete */

  assert_int_equal(sc.calls, 1);
  assert_non_null(sc.ctx_during);
  assert_null(f.g.ctx);
  assert_null(g_main_context_get_thread_default());
  assert_int_equal(f.closed, 1);
  assert_false(f.timed_out);
  assert_int_equal(uv_loop_close(&f.loop), 0);
}

/* ---- 7. a source attached from another thread wakes the loop ---------- */

typedef struct {
  fx_t *f;
  GThread *loop_thread;
  int count;
  int on_loop_thread;
  uint64_t attached_us, at_us;
} xthread_t;

static gboolean
on_xthread_idle(gpointer p)
{
  xthread_t *x = p;

  x->count++;
  x->on_loop_thread = g_thread_self() == x->loop_thread;
  x->at_us = now_us();
  uv_stop(&x->f->loop);
  return G_SOURCE_REMOVE;
}

static gpointer
attacher_thread(gpointer p)
{
  xthread_t *x = p;

  g_usleep(50000);
  x->attached_us = now_us();
  attach_idle(x->f->g.ctx, on_xthread_idle, x); /* signals GLib's wakeup */
  return NULL;
}

static void
test_cross_thread_wakeup(void **state)
{
  fx_t f;
  xthread_t x;
  GThread *th;

  fx_init(&f, GUARD_MS);
  memset(&x, 0, sizeof(x));
  x.f = &f;
  x.loop_thread = g_thread_self();
  th = g_thread_new("attacher", attacher_thread, &x);
  uv_run(&f.loop, UV_RUN_DEFAULT);
  g_thread_join(th);

  assert_false(f.timed_out);
  assert_int_equal(x.count, 1);
  assert_true(x.on_loop_thread);
  assert_true(x.at_us >= x.attached_us);
  assert_true(x.at_us - x.attached_us < 500000);
  assert_true(f.turns < 30);
  fx_done(&f);
}

/* ---- 8. a closed fd GLib still lists reports G_IO_NVAL, no abort ------ */

typedef struct {
  fx_t *f;
  int calls;
  GIOCondition cond;
} fdcb_t;

static gboolean
on_unix_fd(gint fd, GIOCondition cond, gpointer p)
{
  fdcb_t *c = p;

  c->calls++;
  c->cond = cond;
  uv_stop(&c->f->loop);
  return G_SOURCE_REMOVE;
}

static void
test_closed_fd_is_nval(void **state)
{
  fx_t f;
  fdcb_t c;
  GSource *src;
  int sv[2];

  fx_init(&f, GUARD_MS);
  memset(&c, 0, sizeof(c));
  c.f = &f;
  assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv), 0);
  src = g_unix_fd_source_new(sv[0], G_IO_IN);
  g_source_set_callback(src, G_SOURCE_FUNC(on_unix_fd), &c, NULL);
  g_source_attach(src, f.g.ctx);
  g_source_unref(src);

  uv_run(&f.loop, UV_RUN_NOWAIT); /* sv[0] is now registered in epfd */
  assert_int_equal(c.calls, 0);
  assert_true(f.g.n_reg >= 1);
  close(sv[0]); /* the source still lists it */

  uv_run(&f.loop, UV_RUN_DEFAULT);

  assert_false(f.timed_out);
  assert_int_equal(c.calls, 1);
  assert_true(c.cond & G_IO_NVAL); /* what poll(2) would have said */
  close(sv[1]);
  fx_done(&f);
}

/* ---- 9. a uv handle reusing a closed GLib fd number keeps working ----- */

typedef struct {
  fx_t *f;
  GSource *src;
  int glib_fd, peer_fd; /* socketpair given to GLib */
  int new_peer;         /* writing end for the uv pipe */
  uv_pipe_t pipe;       /* opened on glib_fd's number after the close */
  uv_timer_t swap;
  char buf[16];
  ssize_t got;
  int pipe_open;
} reuse_t;

static void
reuse_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
  reuse_t *r = h->data;

  *buf = uv_buf_init(r->buf, sizeof(r->buf));
}

static void
reuse_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
  reuse_t *r = s->data;

  if (n > 0) {
    r->got = n;
    uv_stop(s->loop);
  }
}

/* Inside uv_run, between turns in which the gloop had the fd registered:
 * GLib side drops its source and closes the fd, then a uv stream takes the
 * very same number. */
static void
on_swap(uv_timer_t *t)
{
  reuse_t *r = t->data;
  int nv[2];

  g_source_destroy(r->src);
  close(r->glib_fd);
  close(r->peer_fd);
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, nv), 0);
  if (nv[0] != r->glib_fd) { /* usually equal already: lowest free fd */
    assert_int_equal(dup2(nv[0], r->glib_fd), r->glib_fd);
    close(nv[0]);
  }
  r->new_peer = nv[1];
  assert_int_equal(uv_pipe_init(t->loop, &r->pipe, 0), 0);
  r->pipe.data = r;
  assert_int_equal(uv_pipe_open(&r->pipe, r->glib_fd), 0);
  r->pipe_open = 1;
  assert_int_equal(uv_read_start((uv_stream_t *)&r->pipe, reuse_alloc,
                                 reuse_read), 0);
  assert_int_equal(write(r->new_peer, "ping", 4), 4);
}

static void
test_fd_reuse_by_uv_handle(void **state)
{
  fx_t f;
  reuse_t r;
  fdcb_t c;
  int sv[2];

  fx_init(&f, GUARD_MS);
  memset(&r, 0, sizeof(r));
  memset(&c, 0, sizeof(c));
  r.f = c.f = &f;
  assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv), 0);
  r.glib_fd = sv[0];
  r.peer_fd = sv[1];
  r.src = g_unix_fd_source_new(sv[0], G_IO_IN);
  g_source_set_callback(r.src, G_SOURCE_FUNC(on_unix_fd), &c, NULL);
  g_source_attach(r.src, f.g.ctx);
  uv_timer_init(&f.loop, &r.swap);
  r.swap.data = &r;
  uv_timer_start(&r.swap, on_swap, 20, 0);

  uv_run(&f.loop, UV_RUN_DEFAULT);

  assert_false(f.timed_out);
  assert_int_equal(c.calls, 0);
  assert_int_equal(r.got, 4);
  assert_memory_equal(r.buf, "ping", 4);
  g_source_unref(r.src);
  uv_close((uv_handle_t *)&r.swap, NULL);
  if (r.pipe_open)
    uv_close((uv_handle_t *)&r.pipe, NULL); /* closes glib_fd's number */
  close(r.new_peer);
  fx_done(&f);
}

/* ---- 10. a registration that outlives its fd does not make us spin ---- */

static void
test_stale_registration_purged(void **state)
{
  fx_t f;
  fdcb_t c;
  GSource *src;
  int sv[2], keep;

  fx_init(&f, 150);
  memset(&c, 0, sizeof(c));
  c.f = &f;
  assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv), 0);
  keep = dup(sv[0]); /* the open file outlives sv[0] */
  assert_true(keep >= 0);
  src = g_unix_fd_source_new(sv[0], G_IO_IN);
  g_source_set_callback(src, G_SOURCE_FUNC(on_unix_fd), &c, NULL);
  g_source_attach(src, f.g.ctx);
  uv_run(&f.loop, UV_RUN_NOWAIT); /* registered */
  assert_true(f.g.n_reg >= 1);

  /* Remove the source and close sv[0]: the kernel keeps epfd's entry since
   * `keep` holds the file. Make it readable and never drain it. */
  g_source_destroy(src);
  g_source_unref(src);
  close(sv[0]);
  assert_int_equal(write(sv[1], "x", 1), 1);

  uv_run(&f.loop, UV_RUN_DEFAULT); /* ends by the 150 ms guard */

  assert_true(f.timed_out);
  assert_int_equal(c.calls, 0);
  assert_true(f.g.rebuilds >= 1);
  assert_true(f.turns < 30); /* the stale entry would wake epoll forever */
  close(keep);
  close(sv[1]);
  fx_done(&f);
}

/* Same, but a new GLib source takes the old number before the next turn:
 * the stale entry (old file, same number) would now report readiness for the
 * new source, every turn, and nothing at check time could tell it apart. */
typedef struct {
  int fd;
  int calls;    /* dispatches of the new source */
  int spurious; /* ... that found nothing to read */
} spur_t;

static gboolean
on_maybe_spurious(gint fd, GIOCondition cond, gpointer p)
{
  spur_t *sp = p;
  char b[8];

  sp->calls++;
  if (recv(fd, b, sizeof(b), MSG_DONTWAIT) < 0)
    sp->spurious++;
  return G_SOURCE_CONTINUE;
}

static void
test_stale_registration_reused_number(void **state)
{
  fx_t f;
  fdcb_t c;
  spur_t sp;
  GSource *src;
  int sv[2], nv[2], keep;

  fx_init(&f, 150);
  memset(&c, 0, sizeof(c));
  memset(&sp, 0, sizeof(sp));
  c.f = &f;
  assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv), 0);
  keep = dup(sv[0]);
  assert_true(keep >= 0);
  src = g_unix_fd_source_new(sv[0], G_IO_IN);
  g_source_set_callback(src, G_SOURCE_FUNC(on_unix_fd), &c, NULL);
  g_source_attach(src, f.g.ctx);
  uv_run(&f.loop, UV_RUN_NOWAIT);
  assert_true(f.g.n_reg >= 1);

  g_source_destroy(src);
  g_source_unref(src);
  close(sv[0]);
  assert_int_equal(write(sv[1], "x", 1), 1); /* old file: readable forever */
  assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM, 0, nv), 0);
  if (nv[0] != sv[0]) {
    assert_int_equal(dup2(nv[0], sv[0]), sv[0]);
    close(nv[0]);
  }
  sp.fd = sv[0]; /* new file, old number, nothing to read */
  src = g_unix_fd_source_new(sp.fd, G_IO_IN);
  g_source_set_callback(src, G_SOURCE_FUNC(on_maybe_spurious), &sp, NULL);
  g_source_attach(src, f.g.ctx);

  uv_run(&f.loop, UV_RUN_DEFAULT); /* ends by the 150 ms guard */

  assert_true(f.timed_out);
  assert_int_equal(c.calls, 0);
  assert_int_equal(sp.spurious, 0);
  assert_true(f.g.rebuilds >= 1);
  assert_true(f.turns < 30);
  g_source_destroy(src);
  g_source_unref(src);
  close(sp.fd);
  close(nv[1]);
  close(keep);
  close(sv[1]);
  fx_done(&f);
}

/* After a failed assertion cmocka longjmps out of the test: its loop and
 * gloop are leaked on purpose (their handles live in the dead stack frame),
 * but the context it pushed would poison the next test's fx_init(). */
static int
drop_leftover_contexts(void **state)
{
  GMainContext *c;

  alarm(0);
  while ((c = g_main_context_get_thread_default()) != NULL)
    g_main_context_pop_thread_default(c);
  return 0;
}

/* The guard timer bounds uv_run(); it cannot bound a hang inside GLib (a
 * context freed under its own dispatch blocks on its dead mutex), so every
 * test also runs under a SIGALRM that kills the process. */
static int
arm_watchdog(void **state)
{
  alarm(20);
  return 0;
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, arm_watchdog, \
                                              drop_leftover_contexts)

int
main(void)
{
  const struct CMUnitTest tests[] = {
      T(test_timeout_fires_on_time),
      T(test_timeout_repeats),
      T(test_gloop_alone_does_not_keep_loop_alive),
      T(test_idle_dispatches),
      T(test_gsocket_receives),
      T(test_nice_gathering),
      T(test_nice_agents_connect),
      T(test_interleave),
      T(test_close_releases_all),
      T(test_close_without_running),
      T(test_close_from_dispatch),
      T(test_cross_thread_wakeup),
      T(test_closed_fd_is_nval),
      T(test_fd_reuse_by_uv_handle),
      T(test_stale_registration_purged),
      T(test_stale_registration_reused_number),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
