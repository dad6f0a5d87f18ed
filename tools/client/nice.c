/*
 * nice.c -- the client stack's ICE agent on libnice, behind the stream
 * interface of sfu/net/ice.h (tools/client/nice.h creates it).
 *
 * With opts.full (what the client stack uses) it is a full, controlling
 * agent that checks the room's candidates and nominates; without, an
 * ICE-lite controlled agent: the room's role, which the room itself plays
 * with sfu/net/icelite.c; no caller in the tree uses this mode. Host
 * candidates on the configured addresses, so gathering completes
 * synchronously and every SDP written with them carries all its candidates
 * (peers such as aiortc need them there; trickle is optional); with TURN
 * servers (below) relayed candidates follow when their allocations
 * succeed, and are not sent: the room is ICE-lite and learns the relayed
 * address from the checks that arrive from it.
 *
 * Receive path. Left to itself, libnice reads each socket from a GSource:
 * every datagram costs a GLib dispatch, which blocks and unblocks the
 * source, which writes GLib's wakeup eventfd twice and costs the loop an
 * extra turn -- about a dozen syscalls per packet. So no receive callback is
 * attached: libuv watches the stream's sockets (uv_poll) and drains them
 * with nice_agent_recv_messages_nonblocking(), up to RECV_BATCH datagrams a
 * call; libnice still answers STUN inside that call. GLib only runs
 * libnice's timers.
 *
 * That drain still runs a GLib iteration on libnice's private context per
 * call, so once a pair is selected the stream takes a fast path: it knows
 * the selected socket and the peer's address, peeks at the first byte of
 * each datagram (MSG_PEEK), reads media itself with one recvfrom, and
 * leaves STUN (consent checks) to libnice. Sends on the selected pair are a
 * plain sendto. Media is accepted from the addresses libnice validated
 * (the peer-reflexive remote candidates of authenticated checks: a browser
 * may start DTLS on one pair and nominate another); from any other address
 * it is dropped and counted.
 *
 * TURN (sfu_nice_add_relay()). libnice allocates on each TURN server of
 * the agent when a stream gathers, and its TURN sockets (the TCP
 * connection of TURN/TCP, the relayed "socket" of any TURN) are not in
 * nice_agent_get_sockets(): libuv cannot watch them. A stream with TURN
 * servers therefore takes libnice's ordinary receive path -- a callback
 * attached on the agent's GMainContext, whose sockets tools/client/gloop.c
 * polls -- and sends with nice_agent_send(), which wraps each datagram for
 * the TURN server when the selected pair is relayed. Slower per packet,
 * and only for peers that were given TURN servers.
 *
 * Consent (full agents). libnice checks the selected pair's consent (RFC
 * 7675: a Binding request every 4-6 s) and declares the component FAILED
 * when no answer came for 10 s: a path that died (the room's address is
 * gone, or ours) is then told to the stream's owner, which may restart ICE
 * (sfu_transport_restart_ice(): a new stream, candidates gathered again).
 * FAILED is reported whether or not the stream was connected before.
 * libnice never reports DISCONNECTED for UDP.
 *
 * ICE-TCP (opts.tcp, sfu-replay's --ice-tcp and --ice-tcp-only). libnice
 * gathers TCP host candidates (tcptype active, and passive) besides, or
 * instead of (ice-udp off), the UDP ones, and checks the room's passive
 * TCP candidates over connections it opens while checking, framing every
 * datagram (RFC 4571). Those connections are not in
 * nice_agent_get_sockets() either, so such a stream too takes libnice's
 * receive path and nice_agent_send(), as a relayed one does: ICE-TCP is
 * off by default, keeping the uv_poll fast path for load runs.
 *
 * A stream may be destroyed from inside its own receive callback (the
 * peer leaves): it is marked dead, the drain stops, and the memory
 * goes when its poll handles have closed (a stream libnice reads, which
 * has none, closes an idle timer for the purpose).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <agent.h>

#include <gio/gio.h>
#include <netdb.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include "tools/client/nice.h"
#include "sfu/base/log.h"
#include "sfu/base/sfu.h"

#define MAX_SOCKETS 4  /* one per local address */
#define MAX_KNOWN 8    /* remote addresses a peer checked from */
#define RECV_BATCH 16
#define RCVBUF (1 << 20) /* SO_RCVBUF asked for: the default (~200 KiB) holds ~100 ms
                            of a 50-person room, less than a load generator sharing
                            its cores may wait for one */

struct sfu_ice_stream_s {
  sfu_ice_t *ice;          /* owner */
  guint id;                /* libnice stream id */
  uv_poll_t polls[MAX_SOCKETS]; /* the component's sockets */
  int npolls;              /* started */
  int closing;             /* polls still to close before free */
  int dead;                /* destroyed (maybe inside a callback) */
  int fast;                /* selected pair known: fast path on */
  int fast_fd;             /* the selected pair's socket */
  struct sockaddr_storage peer; /* the selected pair's remote address */
  socklen_t peer_len;
  uint64_t drop_foreign;   /* media from an address ICE did not validate */
  struct sockaddr_storage known[MAX_KNOWN]; /* peer addresses seen in valid checks */
  int nknown;
  sfu_ice_cb_t cb;         /* to the transport */
  char ufrag[64], pwd[128];
  char remote_ufrag[64];   /* to detect a peer's ICE restart */
  int connected;           /* last state reported */
  int nice_reads;          /* TURN servers or ICE-TCP: libnice reads (no polls, no
                              fast path) */
  uv_timer_t reaper;       /* nice_reads: never started, closed to free the stream */
};

/* A TURN server of the agent (sfu_nice_add_relay()). */
typedef struct relay_s {
  char ip[INET6_ADDRSTRLEN]; /* the server's address */
  guint port;              /* its port */
  NiceRelayType type;      /* NICE_RELAY_TYPE_TURN_UDP or _TCP */
  char user[160], pass[160]; /* long-term credentials */
} relay_t;

#define MAX_STREAM_IDS 4096 /* libnice ids grow by one per stream */

struct sfu_ice_s {
  NiceAgent *agent;
  uv_loop_t *loop;
  GMainContext *ctx;        /* the agent's context (borrowed) */
  sfu_ice_opts_t opts;
  sfu_ice_stream_t **by_id; /* index: libnice stream id (mod MAX_STREAM_IDS) */
  relay_t relays[SFU_NICE_MAX_RELAYS]; /* TURN servers for new streams */
  int nrelays;
};

static sfu_ice_stream_t *stream_of(sfu_ice_t *ice, guint id) {
  sfu_ice_stream_t *st = ice->by_id[id % MAX_STREAM_IDS];
  return st && st->id == id ? st : NULL;
}

/* Receive buffers shared by every stream: one thread per process. */
static uint8_t rbuf[RECV_BATCH][1536];

static int same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b) {
  if (a->ss_family != b->ss_family) return 0;
  if (a->ss_family == AF_INET) {
    const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
    return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
  return x->sin6_port == y->sin6_port && memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0;
}

static void drain_nice(sfu_ice_stream_t *st);

static int is_known(const sfu_ice_stream_t *st, const struct sockaddr_storage *a) {
  for (int i = 0; i < st->nknown; i++)
    if (same_addr(a, &st->known[i])) return 1;
  return 0;
}

/* Fast path: media read directly, STUN handed to libnice. Each datagram
 * is peeked first (its first 8 bytes and its source): real STUN (RFC 7983
 * first byte 0..3 and the RFC 5389 magic cookie) goes to libnice, whoever
 * sent it (a check from a new address is how a peer moves); media from the
 * selected peer is read and handed up; anything else is read and counted. */
static void drain_fast(sfu_ice_stream_t *st, int fd) {
  for (int budget = 64; budget > 0 && !st->dead; budget--) {
    uint8_t head[8];
    struct sockaddr_storage from;
    socklen_t flen = sizeof(from);
    ssize_t n = recvfrom(fd, head, sizeof(head), MSG_PEEK | MSG_DONTWAIT,
                         (struct sockaddr *)&from, &flen);
    if (n < 0) return; /* EAGAIN, or an error libnice will see */
    if (n >= 8 && head[0] < 4 && head[4] == 0x21 && head[5] == 0x12 && head[6] == 0xa4 &&
        head[7] == 0x42) {
      drain_nice(st);
      continue;
    }
    n = recv(fd, rbuf[0], sizeof(rbuf[0]), MSG_DONTWAIT);
    if (n <= 0) return;
    if (!same_addr(&from, &st->peer) && !is_known(st, &from)) {
      st->drop_foreign++;
      continue;
    }
    st->cb.recv(st->cb.arg, rbuf[0], (size_t)n);
  }
}

static void on_readable(uv_poll_t *h, int status, int events) {
  sfu_ice_stream_t *st = h->data;
  int fd = -1;
  if (st->dead) return;
  if (st->fast && uv_fileno((uv_handle_t *)h, &fd) == 0 && fd == st->fast_fd)
    drain_fast(st, fd);
  else
    drain_nice(st);
}

static void drain_nice(sfu_ice_stream_t *st) {
  NiceInputMessage msgs[RECV_BATCH];
  GInputVector vec[RECV_BATCH];
  gint n;

  do {
    for (int i = 0; i < RECV_BATCH; i++) {
      vec[i].buffer = rbuf[i];
      vec[i].size = sizeof(rbuf[i]);
      msgs[i].buffers = &vec[i];
      msgs[i].n_buffers = 1;
      msgs[i].from = NULL;
      msgs[i].length = 0;
    }
    n = nice_agent_recv_messages_nonblocking(st->ice->agent, st->id, 1, msgs, RECV_BATCH,
                                             NULL, NULL);
    for (gint i = 0; i < n && !st->dead; i++)
      if (msgs[i].length) st->cb.recv(st->cb.arg, rbuf[i], msgs[i].length);
  } while (n == RECV_BATCH && !st->dead);
}

/* libnice's receive path, for streams with TURN servers. */
static void on_nice_recv(NiceAgent *agent, guint stream_id, guint component_id, guint len,
                         gchar *buf, gpointer data) {
  sfu_ice_stream_t *st = data;
  if (!st->dead && component_id == 1 && len > 0) st->cb.recv(st->cb.arg, (uint8_t *)buf, len);
}

/* Takes the selected pair's socket and peer address for the fast path. */
static void take_selected(sfu_ice_stream_t *st) {
  NiceCandidate *local = NULL, *remote = NULL;
  st->fast = 0;
  if (st->nice_reads) return; /* libnice reads, and wraps for TURN or frames for TCP */
  if (!nice_agent_get_selected_pair(st->ice->agent, st->id, 1, &local, &remote) || !remote) {
    sfu_log(SFU_LOG_DEBUG, "ice", "stream %u: no selected pair", st->id);
    return;
  }
  GSocket *gs = nice_agent_get_selected_socket(st->ice->agent, st->id, 1);
  if (!gs) return;
  st->fast_fd = g_socket_get_fd(gs);
  g_object_unref(gs);
  memset(&st->peer, 0, sizeof(st->peer));
  nice_address_copy_to_sockaddr(&remote->addr, (struct sockaddr *)&st->peer);
  st->peer_len = st->peer.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                : sizeof(struct sockaddr_in);
  st->fast = 1;
  sfu_log(SFU_LOG_DEBUG, "ice", "stream %u: selected pair, fast path on fd %d", st->id,
          st->fast_fd);
}

/* A remote candidate learnt from an authenticated check (peer-reflexive)
 * or given in the SDP: media from it is accepted on the fast path. */
static void on_remote_candidate(NiceAgent *agent, NiceCandidate *c, gpointer data) {
  sfu_ice_stream_t *st = stream_of(data, c->stream_id);
  if (!st || c->component_id != 1) return;
  struct sockaddr_storage a;
  memset(&a, 0, sizeof(a));
  nice_address_copy_to_sockaddr(&c->addr, (struct sockaddr *)&a);
  if (is_known(st, &a)) return;
  if (st->nknown < MAX_KNOWN)
    st->known[st->nknown++] = a;
  else
    st->known[MAX_KNOWN - 1] = a;
}

static void on_selected(NiceAgent *agent, guint stream_id, guint component_id,
                        NiceCandidate *lc, NiceCandidate *rc, gpointer data) {
  sfu_ice_stream_t *st = stream_of(data, stream_id);
  if (st) take_selected(st);
}

static void on_state(NiceAgent *agent, guint stream_id, guint component_id, guint state,
                     gpointer data) {
  sfu_ice_stream_t *st = stream_of(data, stream_id);
  if (!st) return;
  if (state == NICE_COMPONENT_STATE_CONNECTED || state == NICE_COMPONENT_STATE_READY)
    take_selected(st);
  else if (state == NICE_COMPONENT_STATE_FAILED)
    st->fast = 0;
  int connected = state == NICE_COMPONENT_STATE_CONNECTED || state == NICE_COMPONENT_STATE_READY;
  /* FAILED is told even if never connected: its owner may restart ICE */
  if (state == NICE_COMPONENT_STATE_FAILED || (connected && !st->connected)) {
    st->connected = connected;
    st->cb.state(st->cb.arg, connected);
  }
}

int sfu_nice_create(sfu_ice_t **out, uv_loop_t *loop, GMainContext *ctx,
                    const sfu_ice_opts_t *o) {
  sfu_ice_t *ice = calloc(1, sizeof(*ice));
  *out = NULL;
  if (!ice) return SFU_ENOMEM;
  ice->by_id = calloc(MAX_STREAM_IDS, sizeof(*ice->by_id));
  ice->agent = nice_agent_new_full(ctx, NICE_COMPATIBILITY_RFC5245,
                                   o->full ? NICE_AGENT_OPTION_CONSENT_FRESHNESS
                                           : NICE_AGENT_OPTION_LITE_MODE);
  if (!ice->by_id || !ice->agent) {
    sfu_ice_destroy(ice);
    return SFU_ENOMEM;
  }
  ice->opts = *o;
  ice->loop = loop;
  ice->ctx = ctx;
  g_object_set(ice->agent, "controlling-mode", o->full ? TRUE : FALSE, "upnp", FALSE,
               "ice-tcp", o->tcp != SFU_ICE_UDP_ONLY, "ice-udp", o->tcp != SFU_ICE_TCP_ONLY,
               "keepalive-conncheck", FALSE, NULL);
  char addrs[256];
  snprintf(addrs, sizeof(addrs), "%s", o->addresses && o->addresses[0] ? o->addresses : "127.0.0.1");
  for (char *save = NULL, *a = strtok_r(addrs, ", ", &save); a; a = strtok_r(NULL, ", ", &save)) {
    NiceAddress na;
    nice_address_init(&na);
    if (!nice_address_set_from_string(&na, a)) {
      sfu_log(SFU_LOG_ERROR, "ice", "'%s' is not an IP address", a);
      sfu_ice_destroy(ice);
      return SFU_EINVAL;
    }
    nice_agent_add_local_address(ice->agent, &na);
  }
  g_signal_connect(ice->agent, "component-state-changed", G_CALLBACK(on_state), ice);
  g_signal_connect(ice->agent, "new-selected-pair-full", G_CALLBACK(on_selected), ice);
  g_signal_connect(ice->agent, "new-remote-candidate-full", G_CALLBACK(on_remote_candidate), ice);
  *out = ice;
  return 0;
}

/* turn:HOST[:PORT][?transport=udp|tcp] (RFC 7065), HOST resolved. */
int sfu_nice_add_relay(sfu_ice_t *ice, const char *url, const char *username,
                       const char *password) {
  char host[256], port[8] = "3478";
  const char *h, *e;
  relay_t r;
  memset(&r, 0, sizeof(r));
  if (!url || !username || !password) return SFU_EINVAL;
  if (strncmp(url, "turns:", 6) == 0) return 1;
  if (strncmp(url, "turn:", 5) != 0) return SFU_EINVAL;
  h = url + 5;
  if (*h == '[') { /* IPv6 literal */
    e = strchr(++h, ']');
    if (!e) return SFU_EINVAL;
  } else {
    e = h + strcspn(h, ":?");
  }
  if (e == h || (size_t)(e - h) >= sizeof(host)) return SFU_EINVAL;
  memcpy(host, h, (size_t)(e - h));
  host[e - h] = '\0';
  if (*e == ']') e++;
  if (*e == ':') {
    size_t n = strspn(e + 1, "0123456789");
    if (n == 0 || n >= sizeof(port)) return SFU_EINVAL;
    memcpy(port, e + 1, n);
    port[n] = '\0';
    e += 1 + n;
  }
  if (*e == '\0' || strcmp(e, "?transport=udp") == 0)
    r.type = NICE_RELAY_TYPE_TURN_UDP;
  else if (strcmp(e, "?transport=tcp") == 0)
    r.type = NICE_RELAY_TYPE_TURN_TCP;
  else if (strncmp(e, "?transport=", 11) == 0)
    return 1;
  else
    return SFU_EINVAL;
  r.port = (guint)atoi(port);
  if (r.port == 0 || r.port > 65535 || strlen(username) >= sizeof(r.user) ||
      strlen(password) >= sizeof(r.pass))
    return SFU_EINVAL;
  if (ice->nrelays >= SFU_NICE_MAX_RELAYS) return SFU_E2BIG;
  struct addrinfo hints, *ai = NULL;
  memset(&hints, 0, sizeof(hints));
  hints.ai_socktype = SOCK_DGRAM;
  if (getaddrinfo(host, port, &hints, &ai) != 0 || !ai) return SFU_EINVAL;
  int rv = getnameinfo(ai->ai_addr, ai->ai_addrlen, r.ip, sizeof(r.ip), NULL, 0, NI_NUMERICHOST);
  freeaddrinfo(ai);
  if (rv != 0) return SFU_EINVAL;
  snprintf(r.user, sizeof(r.user), "%s", username);
  snprintf(r.pass, sizeof(r.pass), "%s", password);
  ice->relays[ice->nrelays++] = r;
  return 0;
}

void sfu_nice_relay_only(sfu_ice_t *ice, int on) {
  g_object_set(ice->agent, "force-relay", on ? TRUE : FALSE, NULL);
}

void sfu_ice_destroy(sfu_ice_t *ice) {
  if (!ice) return;
  if (ice->agent) g_object_unref(ice->agent);
  free(ice->by_id);
  free(ice);
}

static void read_credentials(sfu_ice_stream_t *st) {
  gchar *u = NULL, *p = NULL;
  nice_agent_get_local_credentials(st->ice->agent, st->id, &u, &p);
  snprintf(st->ufrag, sizeof(st->ufrag), "%s", u ? u : "");
  snprintf(st->pwd, sizeof(st->pwd), "%s", p ? p : "");
  g_free(u);
  g_free(p);
}

int sfu_ice_stream_create(sfu_ice_t *ice, const sfu_ice_cb_t *cb, sfu_ice_stream_t **out) {
  sfu_ice_stream_t *st = calloc(1, sizeof(*st));
  *out = NULL;
  if (!st) return SFU_ENOMEM;
  st->ice = ice;
  st->cb = *cb;
  st->id = nice_agent_add_stream(ice->agent, 1);
  if (st->id == 0 || ice->by_id[st->id % MAX_STREAM_IDS]) {
    if (st->id) nice_agent_remove_stream(ice->agent, st->id);
    free(st);
    return SFU_EBUSY;
  }
  ice->by_id[st->id % MAX_STREAM_IDS] = st;
  if (ice->opts.port_min > 0)
    nice_agent_set_port_range(ice->agent, st->id, 1, (guint)ice->opts.port_min,
                              (guint)ice->opts.port_max);
  for (int i = 0; i < ice->nrelays; i++) {
    const relay_t *r = &ice->relays[i];
    if (nice_agent_set_relay_info(ice->agent, st->id, 1, r->ip, r->port, r->user, r->pass,
                                  r->type))
      st->nice_reads = 1;
  }
  if (ice->opts.tcp != SFU_ICE_UDP_ONLY) st->nice_reads = 1; /* its TCP sockets come later */
  if (st->nice_reads) nice_agent_attach_recv(ice->agent, st->id, 1, ice->ctx, on_nice_recv, st);
  if (!nice_agent_gather_candidates(ice->agent, st->id)) {
    sfu_ice_stream_destroy(st);
    return SFU_EAGAIN;
  }
  if (st->nice_reads) { /* gathering may go on (allocations); libnice reads */
    read_credentials(st);
    *out = st;
    return 0;
  }
  GPtrArray *socks = nice_agent_get_sockets(ice->agent, st->id, 1);
  for (guint i = 0; socks && i < socks->len && st->npolls < MAX_SOCKETS; i++) {
    uv_poll_t *ph = &st->polls[st->npolls];
    int fd = g_socket_get_fd(g_ptr_array_index(socks, i)), big = RCVBUF;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big)); /* best effort */
    if (uv_poll_init(ice->loop, ph, fd) != 0) continue;
    ph->data = st;
    uv_poll_start(ph, UV_READABLE, on_readable);
    st->npolls++;
  }
  if (socks) g_ptr_array_unref(socks);
  if (st->npolls == 0) {
    sfu_ice_stream_destroy(st);
    return SFU_EAGAIN;
  }
  read_credentials(st);
  *out = st;
  return 0;
}

/* A poll handle, or the reaper, has closed: the last one frees. */
static void on_poll_closed(uv_handle_t *h) {
  sfu_ice_stream_t *st = h->data;
  if (--st->closing == 0) free(st);
}

void sfu_ice_stream_destroy(sfu_ice_stream_t *st) {
  if (!st || st->dead) return;
  sfu_ice_t *ice = st->ice;
  st->dead = 1;
  /* Stop watching the fds before libnice closes them. */
  st->closing = st->npolls;
  for (int i = 0; i < st->npolls; i++) uv_close((uv_handle_t *)&st->polls[i], on_poll_closed);
  nice_agent_remove_stream(ice->agent, st->id);
  ice->by_id[st->id % MAX_STREAM_IDS] = NULL;
  if (st->nice_reads) { /* no polls: freed after the callback we may be in */
    st->closing++;
    uv_timer_init(ice->loop, &st->reaper);
    st->reaper.data = st;
    uv_close((uv_handle_t *)&st->reaper, on_poll_closed);
  } else if (st->npolls == 0) {
    free(st);
  }
}

const char *sfu_ice_ufrag(const sfu_ice_stream_t *st) { return st->ufrag; }
const char *sfu_ice_pwd(const sfu_ice_stream_t *st) { return st->pwd; }

int sfu_ice_local_candidates(sfu_ice_stream_t *st, char out[][200], int max) {
  GSList *list = nice_agent_get_local_candidates(st->ice->agent, st->id, 1);
  int n = 0;
  for (GSList *i = list; i && n < max; i = i->next) {
    NiceCandidate *c = i->data;
    if (st->ice->opts.announce) { /* behind 1:1 NAT: the public address */
      NiceAddress pub;
      nice_address_init(&pub);
      if (nice_address_set_from_string(&pub, st->ice->opts.announce)) {
        nice_address_set_port(&pub, nice_address_get_port(&c->addr));
        c->addr = pub;
      }
    }
    gchar *s = nice_agent_generate_local_candidate_sdp(st->ice->agent, c);
    const char *v = s && strncmp(s, "a=", 2) == 0 ? s + 2 : s;
    if (v) snprintf(out[n++], 200, "%s", v);
    g_free(s);
  }
  g_slist_free_full(list, (GDestroyNotify)nice_candidate_free);
  return n;
}

int sfu_ice_set_remote(sfu_ice_stream_t *st, const char *ufrag, const char *pwd) {
  int restart = 0;
  if (!ufrag || !pwd || !ufrag[0] || !pwd[0]) return SFU_EINVAL;
  if (st->remote_ufrag[0] && strcmp(st->remote_ufrag, ufrag) != 0) {
    /* The peer restarted ICE: new local credentials, fresh checks. */
    nice_agent_restart_stream(st->ice->agent, st->id);
    read_credentials(st);
    st->connected = 0;
    st->fast = 0;
    st->nknown = 0;
    restart = 1;
  }
  snprintf(st->remote_ufrag, sizeof(st->remote_ufrag), "%s", ufrag);
  if (!nice_agent_set_remote_credentials(st->ice->agent, st->id, ufrag, pwd)) return SFU_EINVAL;
  return restart;
}

/* An ICE-lite agent never checks: it answers the peer's checks and learns
 * the peer's address from them (peer-reflexive). So a remote candidate is
 * only parsed, to refuse garbage (a full agent gets it), and not given to libnice, which would
 * otherwise start connectivity checks of its own even in lite mode -- and
 * a check from the lite side confuses full agents (aioice) in nomination. */
int sfu_ice_add_remote_candidate(sfu_ice_stream_t *st, const char *cand) {
  char buf[300];
  if (strncmp(cand, "a=", 2) == 0) cand += 2;
  snprintf(buf, sizeof(buf), "a=%s", cand);
  NiceCandidate *c = nice_agent_parse_remote_candidate_sdp(st->ice->agent, st->id, buf);
  if (!c) return SFU_EINVAL;
  int rv = 0;
  if (st->ice->opts.full && c->component_id == 1) { /* a full agent checks it */
    GSList one = {c, NULL};
    rv = nice_agent_set_remote_candidates(st->ice->agent, st->id, 1, &one) == 1 ? 0 : SFU_EINVAL;
  }
  nice_candidate_free(c);
  return rv;
}

int sfu_ice_send(sfu_ice_stream_t *st, const uint8_t *buf, size_t len) {
  if (st->fast) {
    ssize_t w = sendto(st->fast_fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL,
                       (const struct sockaddr *)&st->peer, st->peer_len);
    return w == (ssize_t)len ? 0 : w < 0 && errno == EAGAIN ? SFU_EAGAIN : SFU_EPROTO;
  }
  gint n = nice_agent_send(st->ice->agent, st->id, 1, (guint)len, (const gchar *)buf);
  if (n == (gint)len) return 0;
  return st->connected ? SFU_EPROTO : SFU_EAGAIN;
}

uint64_t sfu_ice_drop_foreign(const sfu_ice_stream_t *st) { return st->drop_foreign; }
