/*
 * icelite.c -- the room's ICE-lite agent, behind the stream interface of
 * sfu/net/ice.h (the client stack's libnice agent is the other side of it):
 * the socket layer around the state machine of sfu/net/icestate.c.
 * docs/internals/icelite.md has the split, the tables and the measurements
 * that motivated the agent.
 *
 * The split (sans-IO, the shape of str0m's ICE agent). Every ICE decision
 * -- credentials, which stream a check or a datagram belongs to, validated
 * addresses, nomination, role conflict, the error-response rate limit,
 * consent freshness, ICE restart -- is made by sfu/net/icestate.c, which
 * never touches a socket, a loop or a clock. This file owns those: it
 * binds the sockets, reads datagrams and hands each one to
 * sfu_icestate_input() with the loop's time, and carries out the answer
 * (deliver to a stream's cb.recv, send a STUN response, nothing); it ticks
 * the machine every second for consent and turns the machine's events
 * into cb.state calls. The ice.h API is this file's; a stream here wraps
 * one stream of the machine.
 *
 * Sockets. One non-blocking UDP socket per local address, IPv4 or IPv6
 * (of the family of its address; IPv6 ones IPV6_V6ONLY), shared by every
 * stream (participant) of the agent (the room), read with recvmmsg from
 * one uv_poll_t each. A peer reaches the sockets of the families it has:
 * the machine keys addresses by family too, so a dual-stack room mixes
 * IPv4 and IPv6 participants, and a participant's checks on both. Per
 * datagram: a sockaddr -> sfu_icestate_addr_t conversion and one call
 * into the machine (one hash lookup for media); no allocation. STUN
 * responses leave at once with sendto (a few per peer every few seconds).
 *
 * Events. After an input that was not media, and after a tick, the
 * machine's events are applied: a stream's selected pair is copied here
 * as a sockaddr (so sfu_ice_send() needs no call into the machine and no
 * conversion), then its cb.state is called if its connected state moved.
 * Pairs and states are applied in the order the machine changed them, so
 * a callback sees the other streams as the machine left them.
 *
 * Sending. sfu_ice_send() copies the datagram into its socket's send batch
 * (up to SEND_BATCH datagrams, with their iovecs, addresses and mmsghdrs,
 * allocated once), so the caller's buffer is free at once. The copies are
 * packed one after another in a buffer of SEND_BATCH x SEND_SLOT bytes
 * rather than one slot each, so a batch touches only the pages its bytes
 * fill: a batch of audio copies (~150 bytes) a page or two, not the
 * whole buffer that a slot apiece spreads them over. A
 * batch is flushed with sendmmsg when it is full, and at the end of each
 * loop turn: from a uv_check handle (right after the poll phase, where the
 * fan-out of received packets queues its copies: lowest latency) and from
 * a uv_prepare handle, which runs just before libuv blocks in epoll_wait,
 * so datagrams queued by timers, idle, pending or closing callbacks never
 * wait for the next wake-up. A turn with nothing queued costs two
 * callbacks that test one flag. EAGAIN/ENOBUFS drops the rest of the batch
 * (never blocks); any other error is one message's (an unreachable
 * destination): that one is dropped and the batch continues after it.
 * Every drop is counted.
 *
 * Checking streams (docs/internals/icelite.md, "Checking streams"). A
 * lite agent never checks, so two of them never connect: a link between
 * two room processes is a stream at each end that also sends checks,
 * turned on by sfu_ice_stream_set_checking(). Its UDP remote candidates
 * are kept (CHECK_CANDS; anything it cannot check is ignored), and each
 * gets the Binding request the machine writes (sfu_icestate_write_check():
 * USE-CANDIDATE, ICE-CONTROLLING, signed with the remote password), built
 * on the stack and sent at once with sendto from the first socket of its
 * family: when the candidate is added (if the remote credentials are
 * known), when the credentials become known, and then every CHECK_MS. The
 * peer's machine validates and nominates the pair from these checks and
 * keeps its consent by them; the answers that come back are the machine's
 * to drop and count. A stream is validated by its peer's checks, never by
 * the answers to its own, so nothing here waits for them or retransmits.
 * The 1 s tick serves the rounds that are due, in due order from a list
 * of the checking streams (a round moves its stream to the tail), at most
 * CHECK_STREAMS_PER_TICK streams per tick. An ICE restart forgets the
 * candidates (the new session's come again, checked with the new
 * credentials); turning checking off, destroying the stream or the agent
 * takes the stream off the list: no check leaves for it afterwards.
 *
 * ICE over TCP (RFC 6544, passive only; docs/internals/icelite.md, "ICE
 * over TCP"). Each address also has a non-blocking TCP listener (a
 * uv_tcp_t), on the UDP socket's port number when it is free, offered as
 * a `tcptype passive` host candidate below the UDP one. An accepted
 * connection carries RFC 4571 frames (sfu/net/tcpframe.c), each handed to
 * the machine like a datagram, from an address that says TCP (the same
 * ip:port over UDP is another address). Its first frame must be a check
 * the machine authenticates for a stream: the connection is bound to that
 * stream, and closed otherwise. A selected pair on TCP names its
 * connection; sfu_ice_send() writes the frame to it (uv_try_write, or
 * queued while the kernel's buffer is full, up to TCP_OUT_MAX, beyond which
 * frames are dropped: media over TCP under congestion drops rather than
 * queues). Bounds, all counted: connections per agent (2 per stream plus
 * TCP_SLACK, at most TCP_MAX_CONNS) and per stream (TCP_PER_STREAM), a
 * first check within tcp_first_ms, a frame at least every tcp_idle_ms
 * (the consent timeout), a framing error closes its connection only. A
 * connection that closes is forgotten by the machine (its address, and
 * the stream's pair if it was the selected one).
 *
 * Lifetimes. Callbacks may destroy their own stream or the agent. A stream
 * destroyed while the agent is dispatching (depth > 0) leaves the machine
 * at once -- its remaining datagrams in the batch find no stream and are
 * dropped, its queued event goes -- and is freed at the end of the turn.
 * The agent, destroyed, stops reading at once and is freed, machine
 * included, when its uv handles have closed. Streams still alive then are
 * orphaned, not freed: their owner destroys them later (sfu_ice_send()
 * answers SFU_EAGAIN meanwhile).
 *
 * Memory: per socket SEND_BATCH x SEND_SLOT (96 KiB) of send buffer, of
 * which only what the largest batch filled is ever resident; per
 * agent RECV_BATCH x RECV_SLOT (64 KiB) of receive slots, also the one
 * read buffer of every TCP connection; the machine's two maps. Per stream
 * ~350 bytes here and ~930 in the machine. Per TCP connection ~2.7 KiB,
 * and its output buffers while the kernel's is full (growing by doubling
 * to at most TCP_OUT_MAX in all). Nothing is allocated per packet.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sfu/net/candidate.h"
#include "sfu/net/ice.h"
#include "sfu/net/icestate.h"
#include "sfu/net/tcpframe.h"
#include "sfu/base/log.h"
#include "sfu/base/sfu.h"

#define MAX_SOCKS 4          /* local addresses */
#define RECV_BATCH 32        /* datagrams per recvmmsg */
#define RECV_ROUNDS 4        /* recvmmsg calls per readable event (fairness) */
#define RECV_SLOT 2048       /* a bigger datagram is truncated and dropped */
#define SEND_BATCH 64        /* datagrams per sendmmsg */
#define SEND_SLOT 1536       /* largest datagram sfu_ice_send() takes; a
                                multiple of 8, the packing of the batch */
#define UFRAG_LEN SFU_ICESTATE_UFRAG_LEN
#define PWD_LEN SFU_ICESTATE_PWD_LEN
#define CONSENT_TICK_MS 1000 /* the state machine's tick */
#define CHECK_CANDS 4        /* remote candidates a checking stream keeps */
/* A checking stream's round of checks, every: 2 s, served by the 1 s tick
 * with half a tick of slack, so 1.5 to 2.5 s apart. The peer keeps a
 * nominated pair while it is checked within SFU_ICESTATE_STALE_MS (6 s):
 * two checks in a row may be lost before another nominated pair may take
 * over, and consent (30 s) survives a dozen. A link whose first check
 * found the peer not ready yet comes up within a round. */
#define CHECK_MS 2000
#define CHECK_STREAMS_PER_TICK 64 /* rounds per tick at most (the rest wait for the
                                     next): 4 checks each */
#define SOCK_BUF (2 << 20)   /* SO_RCVBUF / SO_SNDBUF asked for */
#define TCP_BACKLOG 64       /* listen(2) backlog of each TCP listener */
#define TCP_PER_STREAM 4     /* connections bound to one stream */
#define TCP_SLACK 8          /* connections per agent: 2 per stream, plus this */
#define TCP_MAX_CONNS 256    /* ... and never more */
#define TCP_FIRST_MS 5000    /* a connection's first authenticated check, within */
#define TCP_OUT_MAX (256 << 10) /* bytes queued per connection: two halves, one being
                                   written while the other fills */
#define TCP_OUT_HALF (TCP_OUT_MAX / 2)
#define TCP_OUT_FIRST 8192   /* an output buffer's first size; doubles to TCP_OUT_HALF */

/* ---- statistics --------------------------------------------------------- */

/* The socket layer's counters, all monotonic but tcp.open and
 * tcp.selected; the ICE ones (STUN answers, drops by address, consent,
 * restarts) are the state machine's (sfu_icestate_stats(),
 * sfu__icelite_state()). Not in ice.h yet, but for the TCP ones
 * (sfu_ice_tcp_stats(), in the room's stats): see icelite.md. */
typedef struct sfu__icelite_stats_s {
  uint64_t rx_datagrams;     /* read from the sockets */
  uint64_t rx_syscalls;      /* recvmmsg calls */
  uint64_t rx_truncated;     /* larger than RECV_SLOT: dropped */
  uint64_t stun_send_fail;   /* a STUN response's sendto failed */
  uint64_t tx_datagrams;     /* sent by sendmmsg */
  uint64_t tx_syscalls;      /* sendmmsg calls */
  uint64_t tx_flush_full;    /* flushes because a batch was full */
  uint64_t tx_partial;       /* sendmmsg sent part of what it was given */
  uint64_t tx_drop_eagain;   /* dropped: EAGAIN/ENOBUFS */
  uint64_t tx_drop_error;    /* dropped: that message's own error */
  uint64_t tx_drop_size;     /* larger than SEND_SLOT: refused */
  uint64_t check_sent;       /* Binding requests of checking streams sent */
  uint64_t check_send_fail;  /* ... whose sendto failed */
  sfu_ice_tcp_stats_t tcp;   /* ICE over TCP: connections, frames, drops */
} sfu__icelite_stats_t;

const sfu__icelite_stats_t *sfu__icelite_stats(const sfu_ice_t *ice);
const sfu_icestate_t *sfu__icelite_state(const sfu_ice_t *ice);

/* ---- addresses ---------------------------------------------------------- */

typedef union {
  struct sockaddr sa;
  struct sockaddr_in in;
  struct sockaddr_in6 in6;
} lite_sa_t;

/* A received source (`transport`: SFU_ICESTATE_UDP or _TCP) as the state
 * machine's address value. */
static void addr_of(const struct sockaddr *sa, int transport, sfu_icestate_addr_t *k) {
  memset(k, 0, sizeof(*k));
  k->transport = (uint8_t)transport;
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
    k->fam = 4;
    k->port = ntohs(a->sin_port);
    memcpy(k->ip, &a->sin_addr, 4);
  } else {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
    k->fam = 6;
    k->port = ntohs(a->sin6_port);
    memcpy(k->ip, &a->sin6_addr, 16);
  }
}

/* An address value as a destination for sendto/sendmmsg. */
/* Binds fd to sa's address: port `first` if not 0, then the ports of
 * pmin..pmax from a random one, or any port (0) without a range. 0, or
 * -errno of the last try (a port taken or forbidden moves on to the next;
 * any other error stops). */
static int bind_port(int fd, lite_sa_t *sa, socklen_t sl, uint16_t first, int pmin, int pmax) {
  uint32_t span = pmin > 0 ? (uint32_t)(pmax - pmin + 1) : 0, start = sfu_random_u32();
  int rv = -EADDRINUSE;
  for (uint32_t i = first ? 0 : 1; i <= (span ? span : 1); i++) {
    uint16_t port = i == 0 ? first : span ? (uint16_t)(pmin + (start + i - 1) % span) : 0;
    if (sa->sa.sa_family == AF_INET)
      sa->in.sin_port = htons(port);
    else
      sa->in6.sin6_port = htons(port);
    if (bind(fd, &sa->sa, sl) == 0) return 0;
    rv = -errno;
    if (errno != EADDRINUSE && errno != EACCES) break;
  }
  return rv;
}

static socklen_t sa_of(const sfu_icestate_addr_t *k, lite_sa_t *out) {
  memset(out, 0, sizeof(*out));
  if (k->fam == 4) {
    out->in.sin_family = AF_INET;
    out->in.sin_port = htons(k->port);
    memcpy(&out->in.sin_addr, k->ip, 4);
    return sizeof(out->in);
  }
  out->in6.sin6_family = AF_INET6;
  out->in6.sin6_port = htons(k->port);
  memcpy(&out->in6.sin6_addr, k->ip, 16);
  return sizeof(out->in6);
}

/* ---- structures --------------------------------------------------------- */

/* One local address: its socket, poll handle and send batch, owned by the
 * agent (ice->socks[idx], the state machine's socket index). The mmsghdrs
 * point at their own iovec and address slot once and for all; a queued
 * datagram only sets iov_len and msg_namelen. */
typedef struct lite_sock_s {
  sfu_ice_t *ice;                   /* owner */
  int idx;                          /* in ice->socks[] */
  int fd;                           /* bound, non-blocking UDP; -1 before */
  uv_poll_t poll;                   /* readable */
  int family;                       /* AF_INET / AF_INET6 */
  char ip[INET6_ADDRSTRLEN];        /* the bound address, for candidates */
  uint16_t port;                    /* the bound port (host order) */
  int nsend;                        /* datagrams queued */
  struct mmsghdr smsg[SEND_BATCH];  /* for sendmmsg */
  struct iovec siov[SEND_BATCH];    /* one per message, into sbuf */
  lite_sa_t sname[SEND_BATCH];      /* destinations, copied */
  uint8_t *sbuf;                    /* SEND_BATCH x SEND_SLOT bytes, one allocation:
                                       the queued copies, packed in order */
  size_t sused;                     /* bytes of sbuf they take */
  int tcp_fd;                       /* the TCP listener before libuv owns it; -1 */
  int listening;                    /* `tcp` is a handle: accepting */
  uint16_t tcp_port;                /* its port (host order); 0: no TCP on this address */
  uv_tcp_t tcp;                     /* the TCP listener (ICE-TCP, passive) */
} lite_sock_t;

/* One accepted TCP connection (ICE-TCP, the passive side): its handle,
 * deframer and output buffers. Allocated at accept, linked in ice->conns,
 * freed when its handle has closed (conn_close() starts that). The output
 * is two buffers: while one is written (uv_write), frames go into the
 * other; both empty when nothing is queued (writing == -1). */
typedef struct lite_conn_s {
  uv_tcp_t tcp;                     /* the connection; data = this */
  sfu_ice_t *ice;                   /* owner */
  struct lite_conn_s *prev, *next;  /* the agent's connections, newest first */
  int sock;                         /* its listener's index: the machine's socket */
  sfu_icestate_addr_t peer;         /* the far end, transport TCP: the machine's key */
  sfu_ice_stream_t *st;             /* bound by its first check; NULL before and
                                       once closing */
  int closing;                      /* uv_close() called: nothing in or out */
  uint64_t opened_ms;               /* accepted, loop time */
  uint64_t rx_ms;                   /* last frame read, loop time; 0 none */
  uv_write_t wreq;                  /* the write in flight */
  int writing;                      /* the out[] being written; -1 none */
  uint8_t *out[2];                  /* output buffers, allocated when first needed */
  size_t out_len[2];                /* bytes in each */
  size_t out_cap[2];                /* bytes allocated */
  uint64_t out_frames[2];           /* frames (or their rests) in each */
  sfu_tcpframe_t rx;                /* the deframer, with its gather buffer */
} lite_conn_t;

/* A remote candidate a checking stream sends its checks to. */
typedef struct lite_cand_s {
  lite_sa_t sa;                     /* its address */
  socklen_t len;                    /* ... and that address's length */
  int sock;                         /* the local socket checks leave from: the
                                       agent's first of its family */
  uint32_t priority;                /* the candidate's own priority (the peer's
                                       preference among its candidates) */
} lite_cand_t;

/* A stream as ice.h sees it: allocated by sfu_ice_stream_create(), freed
 * by sfu_ice_stream_destroy() (at the end of the turn when destroyed
 * inside a callback of the agent). Its ICE state is its state machine
 * stream `s`; here is what the send path and the accessors need without
 * a call into the machine. */
struct sfu_ice_stream_s {
  sfu_ice_t *ice;                   /* owner; NULL once the agent is gone */
  sfu_icestate_stream_t *s;         /* its state; NULL once destroyed or orphaned */
  sfu_ice_stream_t *dead_next;      /* the agent's streams to free */
  sfu_ice_cb_t cb;                  /* to the transport */
  int dead;                         /* destroyed, waiting to be freed */
  int has_sel;                      /* the machine gave a selected pair: sends go */
  int sel_sock;                     /* ... its local socket */
  lite_sa_t sel_sa;                 /* ... its remote address, for sends */
  socklen_t sel_len;                /* ... and that address's length */
  lite_conn_t *sel_conn;            /* ... or its TCP connection; NULL: UDP */
  int tcp_conns;                    /* TCP connections bound to it */
  char ufrag[UFRAG_LEN + 1];        /* local credentials, copied from `s` */
  char pwd[PWD_LEN + 1];            /* ... (they outlive it: orphans) */
  uint64_t drop_foreign;            /* `s`'s count when `s` went; 0 before */
  int checking;                     /* sfu_ice_stream_set_checking(): sends checks */
  sfu_ice_stream_t *chk_prev, *chk_next; /* the agent's checking streams, in due order */
  uint64_t chk_due_ms;              /* loop time its next round of checks is due */
  int ncand;                        /* candidates kept (checking streams only) */
  lite_cand_t cand[CHECK_CANDS];    /* ... the addresses its checks go to */
};

/* The agent: allocated by sfu_ice_create(), freed when its uv handles
 * have closed after sfu_ice_destroy(). */
struct sfu_ice_s {
  uv_loop_t *loop;                  /* borrowed */
  sfu_icestate_t *sm;               /* the ICE state machine, owned */
  char announce[INET6_ADDRSTRLEN];  /* written into the candidates of its family if set */
  int announce_family;              /* AF_INET / AF_INET6; 0 without announce */
  lite_sock_t *socks[MAX_SOCKS];    /* owned */
  int nsocks;                       /* sockets open */
  uv_prepare_t prepare;             /* flush before the loop blocks */
  uv_check_t check;                 /* flush right after the poll phase */
  uv_timer_t consent;               /* the machine's tick, 1 s */
  int handles;                      /* uv handles initialised and not yet closed */
  int closing;                      /* sfu_ice_destroy() was called */
  int depth;                        /* our callbacks on the stack */
  int dirty;                        /* some socket has queued datagrams */
  int events_due;                   /* the machine may hold events: apply at turn end */
  int nstreams;                     /* streams alive (for the connection limit) */
  lite_conn_t *conns;               /* TCP connections, closing ones too, newest first */
  uint64_t tcp_first_ms;            /* TCP_FIRST_MS (tests shorten it) */
  uint64_t tcp_idle_ms;             /* SFU_ICESTATE_CONSENT_MS (tests shorten it) */
  uint64_t check_ms;                /* CHECK_MS (tests shorten it) */
  uint64_t tick_ms;                 /* CONSENT_TICK_MS (tests shorten it) */
  sfu_ice_stream_t *dead;           /* destroyed during dispatch */
  sfu_ice_stream_t *chk_head;       /* checking streams, the next round due first */
  sfu_ice_stream_t *chk_tail;       /* ... the last due */
  uint64_t warn_ms;                 /* last rate-limited warning, 0 never */
  struct mmsghdr rmsg[RECV_BATCH];  /* recvmmsg, shared by the sockets */
  struct iovec riov[RECV_BATCH];    /* one per message, into rbuf */
  lite_sa_t rname[RECV_BATCH];      /* sources */
  uint8_t (*rbuf)[RECV_SLOT];       /* RECV_BATCH slots, one allocation */
  sfu__icelite_stats_t stats;       /* the socket layer's counters */
};

const sfu__icelite_stats_t *sfu__icelite_stats(const sfu_ice_t *ice) { return &ice->stats; }
const sfu_ice_tcp_stats_t *sfu_ice_tcp_stats(const sfu_ice_t *ice) { return &ice->stats.tcp; }
const sfu_icestate_t *sfu__icelite_state(const sfu_ice_t *ice) { return ice->sm; }

static void warn_limited(sfu_ice_t *ice, const char *fmt, const char *what, int err) {
  uint64_t now = uv_now(ice->loop);
  if (ice->warn_ms && now - ice->warn_ms < 10000) return;
  ice->warn_ms = now;
  sfu_log(SFU_LOG_WARN, "ice", fmt, what, strerror(err));
}

/* ---- the state machine's outputs ---------------------------------------- */

/* The stream's selected pair is now on connection `c` (NULL: not on TCP),
 * with the counters that follow it. */
static void set_sel_conn(sfu_ice_t *ice, sfu_ice_stream_t *st, lite_conn_t *c) {
  if (st->sel_conn == c) return;
  if (!st->sel_conn) ice->stats.tcp.selected++;
  if (!c) ice->stats.tcp.selected--;
  if (c) ice->stats.tcp.selections++;
  st->sel_conn = c;
}

/* The open connection of `st` on listener `sock` whose far end is `a`, or
 * NULL. O(connections): only when a pair moves. */
static lite_conn_t *conn_of(sfu_ice_t *ice, const sfu_ice_stream_t *st, int sock,
                            const sfu_icestate_addr_t *a) {
  for (lite_conn_t *c = ice->conns; c; c = c->next)
    if (!c->closing && c->st == st && c->sock == sock && memcmp(&c->peer, a, sizeof(*a)) == 0)
      return c;
  return NULL;
}

/* Its events: each stream's selected pair copied for the send path (a
 * sockaddr, or a TCP pair's connection), then its cb.state if its
 * connected state moved. A callback may destroy any stream (the machine
 * drops its event) or the agent (the events left are never applied: the
 * streams are orphans). */
static void apply_events(sfu_ice_t *ice) {
  sfu_icestate_event_t ev;
  ice->events_due = 0;
  while (!ice->closing && sfu_icestate_poll_event(ice->sm, &ev)) {
    sfu_ice_stream_t *st = ev.user;
    lite_conn_t *conn = NULL;
    st->has_sel = ev.has_pair;
    if (ev.has_pair) {
      st->sel_sock = ev.pair.sock;
      if (ev.pair.remote.transport == SFU_ICESTATE_TCP) {
        conn = conn_of(ice, st, ev.pair.sock, &ev.pair.remote);
        st->has_sel = conn != NULL; /* never without its connection */
      } else {
        st->sel_len = sa_of(&ev.pair.remote, &st->sel_sa);
      }
    }
    set_sel_conn(ice, st, conn);
    if (ev.state >= 0) st->cb.state(st->cb.arg, ev.state);
  }
}

/* A STUN response, sent at once (not batched: a few per peer every few
 * seconds). */
static void send_now(sfu_ice_t *ice, const sfu_icestate_out_t *out) {
  lite_sa_t to;
  socklen_t tl = sa_of(&out->to, &to);
  if (sendto(ice->socks[out->sock]->fd, out->data, out->len, MSG_DONTWAIT | MSG_NOSIGNAL, &to.sa,
             tl) != (ssize_t)out->len)
    ice->stats.stun_send_fail++;
}

/* ---- receive ------------------------------------------------------------ */

static void on_datagram(sfu_ice_t *ice, lite_sock_t *s, int i, uint64_t now) {
  uint8_t *b = ice->rbuf[i];
  size_t len = ice->rmsg[i].msg_len;
  if (ice->rmsg[i].msg_hdr.msg_flags & MSG_TRUNC) {
    ice->stats.rx_truncated++;
    return;
  }
  sfu_icestate_addr_t from;
  sfu_icestate_out_t out;
  addr_of(&ice->rname[i].sa, SFU_ICESTATE_UDP, &from);
  switch (sfu_icestate_input(ice->sm, s->idx, &from, b, len, now, &out)) {
  case SFU_ICESTATE_DELIVER: {
    sfu_ice_stream_t *st = out.user;
    st->cb.recv(st->cb.arg, b, len);
    return;
  }
  case SFU_ICESTATE_TRANSMIT:
    send_now(ice, &out);
    break;
  case SFU_ICESTATE_NONE:
    break;
  }
  apply_events(ice); /* after the response: the peer hears first */
}

static void on_readable(uv_poll_t *h, int status, int events) {
  lite_sock_t *s = h->data;
  sfu_ice_t *ice = s->ice;
  if (ice->closing) return;
  uint64_t now = uv_now(ice->loop);
  ice->depth++;
  for (int round = 0; round < RECV_ROUNDS && !ice->closing; round++) {
    for (int i = 0; i < RECV_BATCH; i++) ice->rmsg[i].msg_hdr.msg_namelen = sizeof(lite_sa_t);
    int n = recvmmsg(s->fd, ice->rmsg, RECV_BATCH, MSG_DONTWAIT, NULL);
    ice->stats.rx_syscalls++;
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) warn_limited(ice, "%s: %s", "recvmmsg", errno);
      break;
    }
    ice->stats.rx_datagrams += (uint64_t)n;
    for (int i = 0; i < n && !ice->closing; i++) on_datagram(ice, s, i, now);
    if (n < RECV_BATCH) break;
  }
  ice->depth--;
}

/* ---- ICE over TCP ----------------------------------------------------------- */

static void on_conn_closed(uv_handle_t *h);
static void free_agent(sfu_ice_t *ice);

/* Closes `c` (once), counting why in `*why` (NULL: the agent is going). Its
 * frames still queued are lost; its stream forgets it, and the machine its
 * address (and the stream's pair if this was it: the event is applied at
 * the end of the turn, or by the caller). Never calls back; the memory
 * goes when the handle has closed. */
static void conn_close(lite_conn_t *c, uint64_t *why) {
  sfu_ice_t *ice = c->ice;
  if (c->closing) return;
  c->closing = 1;
  if (why) (*why)++;
  ice->stats.tcp.open--;
  ice->stats.tcp.tx_drop_error += c->out_frames[0] + c->out_frames[1];
  c->out_frames[0] = c->out_frames[1] = 0;
  if (c->st) {
    if (c->st->sel_conn == c) {
      set_sel_conn(ice, c->st, NULL);
      c->st->has_sel = 0; /* sends stop now; the machine's event agrees */
    }
    c->st->tcp_conns--;
    c->st = NULL;
  }
  if (!ice->closing && sfu_icestate_forget(ice->sm, c->sock, &c->peer)) ice->events_due = 1;
  uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void on_conn_closed(uv_handle_t *h) {
  lite_conn_t *c = h->data;
  sfu_ice_t *ice = c->ice;
  if (c->prev)
    c->prev->next = c->next;
  else
    ice->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  free(c->out[0]);
  free(c->out[1]);
  free(c);
  if (--ice->handles == 0 && ice->closing) free_agent(ice);
}

static void on_conn_written(uv_write_t *req, int status);

/* Starts writing out[i]. */
static void conn_write(lite_conn_t *c, int i) {
  uv_buf_t b = uv_buf_init((char *)c->out[i], (unsigned)c->out_len[i]);
  c->writing = i;
  if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_conn_written) != 0) {
    c->writing = -1;
    conn_close(c, &c->ice->stats.tcp.close_peer);
  }
}

static void on_conn_written(uv_write_t *req, int status) {
  lite_conn_t *c = req->data;
  int i = c->writing;
  if (c->closing) return; /* cancelled by the close: counted there */
  c->writing = -1;
  if (status < 0) {
    c->out_len[0] = c->out_len[1] = 0;
    conn_close(c, &c->ice->stats.tcp.close_peer);
    return;
  }
  c->out_len[i] = 0;
  c->out_frames[i] = 0;
  if (c->out_len[1 - i]) conn_write(c, 1 - i);
}

/* Room for `need` bytes in out[i]: it doubles from TCP_OUT_FIRST up to
 * TCP_OUT_HALF (only while it is not being written). 0, SFU_E2BIG or
 * SFU_ENOMEM. */
static int conn_reserve(lite_conn_t *c, int i, size_t need) {
  if (need <= c->out_cap[i]) return 0;
  if (need > TCP_OUT_HALF) return SFU_E2BIG;
  size_t cap = c->out_cap[i] ? c->out_cap[i] : TCP_OUT_FIRST;
  while (cap < need) cap *= 2;
  if (cap > TCP_OUT_HALF) cap = TCP_OUT_HALF;
  uint8_t *p = realloc(c->out[i], cap);
  if (!p) return SFU_ENOMEM;
  c->out[i] = p;
  c->out_cap[i] = cap;
  return 0;
}

/* Writes one frame (2-byte length, then `len` bytes) to `c`: straight to
 * the socket when nothing is queued, the rest of it queued if the kernel
 * took part; else queued behind what waits, or dropped if the buffer
 * filling has no room (TCP_OUT_MAX in all). Never blocks. 0 (written or
 * queued), SFU_EAGAIN (dropped, counted) or SFU_EPROTO (the connection
 * failed and is closing). */
static int conn_send(sfu_ice_t *ice, lite_conn_t *c, const uint8_t *buf, size_t len) {
  uint8_t hdr[2];
  size_t total = len + 2, done = 0;
  if (c->closing) return SFU_EAGAIN;
  sfu_tcpframe_header(hdr, len);
  int fill = c->writing < 0 ? 0 : 1 - c->writing;
  if (c->writing < 0) { /* nothing queued: try the socket */
    uv_buf_t b[2] = {uv_buf_init((char *)hdr, 2), uv_buf_init((char *)buf, (unsigned)len)};
    int w = uv_try_write((uv_stream_t *)&c->tcp, b, 2);
    if (w == (int)total) {
      ice->stats.tcp.tx_frames++;
      return 0;
    }
    if (w < 0 && w != UV_EAGAIN) {
      ice->stats.tcp.tx_drop_error++;
      conn_close(c, &ice->stats.tcp.close_peer);
      return SFU_EPROTO;
    }
    done = w > 0 ? (size_t)w : 0;
  }
  /* A frame the kernel took part of must be finished, whatever the
   * bound: the rest of it fits an empty buffer. */
  int rv = conn_reserve(c, fill, c->out_len[fill] + total - done);
  if (rv != 0) {
    if (done > 0) { /* no memory for the rest: the stream cannot go on */
      ice->stats.tcp.tx_drop_error++;
      conn_close(c, &ice->stats.tcp.close_peer);
      return SFU_EPROTO;
    }
    if (rv == SFU_E2BIG)
      ice->stats.tcp.tx_drop_full++;
    else
      ice->stats.tcp.tx_drop_error++;
    return SFU_EAGAIN;
  }
  uint8_t *o = c->out[fill] + c->out_len[fill];
  if (done < 2) {
    memcpy(o, hdr + done, 2 - done);
    memcpy(o + 2 - done, buf, len);
  } else {
    memcpy(o, buf + done - 2, total - done);
  }
  c->out_len[fill] += total - done;
  c->out_frames[fill]++;
  ice->stats.tcp.tx_frames++;
  ice->stats.tcp.tx_queued++;
  if (c->writing < 0) conn_write(c, fill);
  return c->closing ? SFU_EPROTO : 0;
}

/* Binds `c` to the stream its first check authenticated for; closes it
 * instead if the stream has TCP_PER_STREAM already. 0 or -1 (closed). */
static int conn_bind(sfu_ice_t *ice, lite_conn_t *c, sfu_ice_stream_t *st) {
  if (st->tcp_conns >= TCP_PER_STREAM) {
    conn_close(c, &ice->stats.tcp.close_limit);
    return -1;
  }
  c->st = st;
  st->tcp_conns++;
  return 0;
}

/* One frame from `c`, as a datagram from its far end. An unbound
 * connection's first frame must be a check the machine authenticates
 * for a stream (it binds the connection); a check for another stream on
 * a bound one closes it. Media goes to the stream the machine names. */
static void on_frame(sfu_ice_t *ice, lite_conn_t *c, uint8_t *b, size_t len, uint64_t now) {
  sfu_icestate_out_t out;
  ice->stats.tcp.rx_frames++;
  c->rx_ms = now;
  sfu_icestate_action_t a = sfu_icestate_input(ice->sm, c->sock, &c->peer, b, len, now, &out);
  sfu_ice_stream_t *by = a == SFU_ICESTATE_TRANSMIT ? out.user : NULL;
  if (!c->st && !by) {
    conn_close(c, &ice->stats.tcp.close_first);
  } else if (a == SFU_ICESTATE_DELIVER) {
    sfu_ice_stream_t *st = out.user;
    st->cb.recv(st->cb.arg, b, len);
    return;
  } else if (c->st && by && by != c->st) {
    conn_close(c, &ice->stats.tcp.close_foreign);
  } else if ((c->st || conn_bind(ice, c, by) == 0) && a == SFU_ICESTATE_TRANSMIT) {
    if (conn_send(ice, c, out.data, out.len) != 0) ice->stats.stun_send_fail++;
  }
  apply_events(ice); /* after the response: the peer hears first */
}

/* Reads land in the receive slots, one 64 KiB buffer here: a read is
 * deframed and dispatched before the next one, and UDP reads never
 * interleave with it (one thread, one callback at a time). */
static void on_conn_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  lite_conn_t *c = h->data;
  *b = uv_buf_init((char *)c->ice->rbuf[0], (unsigned)(sizeof(*c->ice->rbuf) * RECV_BATCH));
}

static void on_conn_read(uv_stream_t *h, ssize_t n, const uv_buf_t *buf) {
  lite_conn_t *c = h->data;
  sfu_ice_t *ice = c->ice;
  if (n == 0 || c->closing || ice->closing) return;
  ice->depth++;
  if (n < 0) { /* EOF or an error */
    conn_close(c, &ice->stats.tcp.close_peer);
    apply_events(ice);
    ice->depth--;
    return;
  }
  const uint8_t *p = (const uint8_t *)buf->base, *frame;
  size_t left = (size_t)n, flen;
  uint64_t now = uv_now(ice->loop);
  /* Each pass takes a frame (2 bytes at least) or ends the read. */
  while (!c->closing && !ice->closing) {
    int r = sfu_tcpframe_next(&c->rx, &p, &left, &frame, &flen);
    if (r == 0) break;
    if (r < 0) {
      conn_close(c, &ice->stats.tcp.close_framing);
      apply_events(ice);
      break;
    }
    /* the frame is in the receive buffer or the deframer's: ours, writable */
    on_frame(ice, c, (uint8_t *)frame, flen, now);
  }
  ice->depth--;
}

/* The connections the agent takes: 2 per stream plus TCP_SLACK (a peer
 * checks from one or two addresses, and reconnects), at most
 * TCP_MAX_CONNS. */
static uint64_t conn_limit(const sfu_ice_t *ice) {
  uint64_t n = 2 * (uint64_t)ice->nstreams + TCP_SLACK;
  return n < TCP_MAX_CONNS ? n : TCP_MAX_CONNS;
}

static void on_connection(uv_stream_t *server, int status) {
  lite_sock_t *s = server->data;
  sfu_ice_t *ice = s->ice;
  if (ice->closing) return;
  if (status < 0) {
    warn_limited(ice, "%s: %s", "accept", -status);
    return;
  }
  lite_conn_t *c = calloc(1, sizeof(*c));
  if (!c) { /* libuv stops accepting on this listener until one is taken */
    warn_limited(ice, "%s: %s", "accept", ENOMEM);
    return;
  }
  c->ice = ice;
  c->sock = s->idx;
  c->writing = -1;
  sfu_tcpframe_init(&c->rx);
  uv_tcp_init(ice->loop, &c->tcp);
  c->tcp.data = c;
  c->wreq.data = c;
  ice->handles++;
  c->next = ice->conns;
  if (c->next) c->next->prev = c;
  ice->conns = c;
  ice->stats.tcp.open++;
  lite_sa_t peer;
  int plen = sizeof(peer);
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 ||
      uv_tcp_getpeername(&c->tcp, &peer.sa, &plen) != 0) {
    conn_close(c, &ice->stats.tcp.close_peer);
    return;
  }
  if (ice->stats.tcp.open > conn_limit(ice)) {
    conn_close(c, &ice->stats.tcp.refused);
    return;
  }
  addr_of(&peer.sa, SFU_ICESTATE_TCP, &c->peer);
  c->opened_ms = uv_now(ice->loop);
  uv_tcp_nodelay(&c->tcp, 1);
  if (uv_read_start((uv_stream_t *)&c->tcp, on_conn_alloc, on_conn_read) != 0) {
    conn_close(c, &ice->stats.tcp.close_peer);
    return;
  }
  ice->stats.tcp.accepted++;
}

/* Every tick: connections with no authenticated check after tcp_first_ms,
 * and bound ones with no frame for tcp_idle_ms, are closed. */
static void conn_expire(sfu_ice_t *ice, uint64_t now) {
  for (lite_conn_t *c = ice->conns; c; c = c->next) { /* closing unlinks later */
    if (c->closing) continue;
    if (!c->st && now - c->opened_ms >= ice->tcp_first_ms)
      conn_close(c, &ice->stats.tcp.close_timeout);
    else if (c->st && now - c->rx_ms >= ice->tcp_idle_ms)
      conn_close(c, &ice->stats.tcp.close_idle);
  }
}

/* ---- send --------------------------------------------------------------- */

static void flush_sock(sfu_ice_t *ice, lite_sock_t *s) {
  int n = s->nsend, off = 0;
  s->nsend = 0;
  s->sused = 0;
  while (off < n) {
    int r = sendmmsg(s->fd, s->smsg + off, (unsigned)(n - off), MSG_DONTWAIT | MSG_NOSIGNAL);
    ice->stats.tx_syscalls++;
    if (r > 0) {
      off += r;
      ice->stats.tx_datagrams += (uint64_t)r;
      if (off < n) ice->stats.tx_partial++; /* the next call tells why */
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)) {
      ice->stats.tx_drop_eagain += (uint64_t)(n - off);
      warn_limited(ice, "%s: %s (datagrams dropped)", "sendmmsg", errno);
      break;
    }
    /* The first message's own failure (unreachable, bad address): drop
     * it, go on with the rest. Each call moves past at least one. */
    ice->stats.tx_drop_error++;
    warn_limited(ice, "%s: %s (one datagram dropped)", "sendmmsg", r < 0 ? errno : EIO);
    off++;
  }
}

static void flush_all(sfu_ice_t *ice) {
  ice->dirty = 0;
  for (int i = 0; i < ice->nsocks; i++)
    if (ice->socks[i]->nsend) flush_sock(ice, ice->socks[i]);
}

static void reap(sfu_ice_t *ice) {
  while (ice->dead) {
    sfu_ice_stream_t *st = ice->dead;
    ice->dead = st->dead_next;
    free(st);
  }
}

/* A connection that closed from the send path left the machine an event
 * (its pair gone): applied here, where no caller is on the stack. */
static void turn_end(sfu_ice_t *ice) {
  if (ice->closing) return;
  if (ice->dirty) flush_all(ice);
  if (ice->events_due && ice->depth == 0) {
    ice->depth++;
    apply_events(ice);
    ice->depth--;
  }
  if (ice->depth == 0 && !ice->closing) reap(ice);
}

static void on_prepare(uv_prepare_t *h) { turn_end(h->data); }
static void on_check(uv_check_t *h) { turn_end(h->data); }

int sfu_ice_send(sfu_ice_stream_t *st, const uint8_t *buf, size_t len) {
  sfu_ice_t *ice = st->ice;
  if (!ice || st->dead || !st->has_sel || ice->closing) return SFU_EAGAIN;
  if (len > SEND_SLOT) {
    ice->stats.tx_drop_size++;
    return SFU_EMSGSIZE;
  }
  if (st->sel_conn) return conn_send(ice, st->sel_conn, buf, len);
  lite_sock_t *s = ice->socks[st->sel_sock];
  if (s->nsend == SEND_BATCH) {
    ice->stats.tx_flush_full++;
    flush_sock(ice, s);
  }
  /* Packed: below SEND_BATCH copies of at most SEND_SLOT bytes (rounded
   * to 8, as SEND_SLOT is) the buffer cannot be full. */
  int i = s->nsend++;
  uint8_t *dst = s->sbuf + s->sused;
  memcpy(dst, buf, len);
  s->sused += (len + 7) & ~(size_t)7;
  s->siov[i].iov_base = dst;
  s->siov[i].iov_len = len;
  s->sname[i] = st->sel_sa;
  s->smsg[i].msg_hdr.msg_namelen = st->sel_len;
  ice->dirty = 1;
  return 0;
}

/* ---- checking streams --------------------------------------------------- */

static void chk_unlink(sfu_ice_t *ice, sfu_ice_stream_t *st) {
  if (st->chk_prev)
    st->chk_prev->chk_next = st->chk_next;
  else
    ice->chk_head = st->chk_next;
  if (st->chk_next)
    st->chk_next->chk_prev = st->chk_prev;
  else
    ice->chk_tail = st->chk_prev;
  st->chk_prev = st->chk_next = NULL;
}

/* To the tail, due at `due`: every caller gives a loop time plus
 * check_ms, so the list stays in due order. */
static void chk_append(sfu_ice_t *ice, sfu_ice_stream_t *st, uint64_t due) {
  st->chk_due_ms = due;
  st->chk_next = NULL;
  st->chk_prev = ice->chk_tail;
  if (ice->chk_tail)
    ice->chk_tail->chk_next = st;
  else
    ice->chk_head = st;
  ice->chk_tail = st;
}

/* PRIORITY of the checks to cand[k]: the peer-reflexive candidate its
 * socket would be (RFC 8445 7.1.1: type preference 110, the socket's
 * local preference, component 1), lowered in its last byte by the
 * candidate's rank among this stream's candidates of the same socket (by
 * their own priority, then the order they came in). Every check of a
 * stream thus carries its own PRIORITY, and the peer -- which keeps the
 * highest nominated PRIORITY that is still being checked (icestate.c) --
 * settles on the best pair that works instead of moving between two
 * equal ones at every round. */
static uint32_t check_priority(const sfu_ice_stream_t *st, int k) {
  const lite_cand_t *c = &st->cand[k];
  uint32_t rank = 0;
  for (int j = 0; j < st->ncand; j++) {
    const lite_cand_t *o = &st->cand[j];
    if (j != k && o->sock == c->sock &&
        (o->priority > c->priority || (o->priority == c->priority && j < k)))
      rank++;
  }
  return (110u << 24) | ((uint32_t)(65535 - c->sock) << 8) | (255 - rank);
}

/* One check to cand[k], now: written on the stack, sent with sendto from
 * its socket (a few every CHECK_MS: no batch). 0, or SFU_EAGAIN while the
 * remote credentials are unknown (nothing sent). */
static int check_one(sfu_ice_t *ice, sfu_ice_stream_t *st, int k) {
  uint8_t b[SFU_ICESTATE_CHECK_MAX];
  int n = sfu_icestate_write_check(st->s, b, sizeof(b), check_priority(st, k));
  if (n < 0) return n;
  const lite_cand_t *c = &st->cand[k];
  if (sendto(ice->socks[c->sock]->fd, b, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL, &c->sa.sa,
             c->len) == n)
    ice->stats.check_sent++;
  else
    ice->stats.check_send_fail++;
  return 0;
}

/* A round: every kept candidate checked; the next one due check_ms
 * (CHECK_MS) from `now`. */
static void check_round(sfu_ice_t *ice, sfu_ice_stream_t *st, uint64_t now) {
  for (int k = 0; k < st->ncand; k++)
    if (check_one(ice, st, k) != 0) break;
  chk_unlink(ice, st);
  chk_append(ice, st, now + ice->check_ms);
}

/* At the tick: the rounds due by the middle of the next tick interval
 * (so a round check_ms after one the tick sent is never a tick late), at
 * most CHECK_STREAMS_PER_TICK; those left over are first at the next
 * tick. Each round moves its stream behind every other, so this ends. */
static void run_checks(sfu_ice_t *ice, uint64_t now) {
  for (int i = 0; i < CHECK_STREAMS_PER_TICK && ice->chk_head &&
                  ice->chk_head->chk_due_ms <= now + ice->tick_ms / 2;
       i++)
    check_round(ice, ice->chk_head, now);
}

/* ---- consent ------------------------------------------------------------ */

/* Every tick_ms (CONSENT_TICK_MS): the machine decides which streams lost
 * consent; their owners hear it here. TCP connections past their deadlines
 * close first. */
static void on_consent(uv_timer_t *h) {
  sfu_ice_t *ice = h->data;
  uint64_t now = uv_now(ice->loop);
  ice->depth++;
  conn_expire(ice, now);
  run_checks(ice, now);
  sfu_icestate_tick(ice->sm, now);
  apply_events(ice);
  ice->depth--;
  if (ice->depth == 0 && !ice->closing) reap(ice);
}

/* ---- agent -------------------------------------------------------------- */

static void free_agent(sfu_ice_t *ice) {
  for (int i = 0; i < ice->nsocks; i++) {
    if (ice->socks[i]->fd >= 0) close(ice->socks[i]->fd);
    if (ice->socks[i]->tcp_fd >= 0) close(ice->socks[i]->tcp_fd); /* never given to libuv */
    free(ice->socks[i]->sbuf);
    free(ice->socks[i]);
  }
  reap(ice);
  sfu_icestate_destroy(ice->sm);
  free(ice->rbuf);
  free(ice);
}

static void on_handle_closed(uv_handle_t *h) {
  sfu_ice_t *ice = h->data;
  if (--ice->handles == 0 && ice->closing) free_agent(ice);
}

/* Binds a UDP socket on `ip`, an IPv4 or IPv6 literal (not unspecified),
 * within the port range (from a random start), or on an ephemeral port
 * with no range. An IPv6 socket is IPV6_V6ONLY: it never sees IPv4-mapped
 * sources, and an IPv4 socket of the same agent, or of another room, may
 * hold the same port number. */
static int open_socket(sfu_ice_t *ice, const char *ip, int pmin, int pmax, lite_sock_t **out) {
  lite_sa_t sa;
  memset(&sa, 0, sizeof(sa));
  socklen_t sl;
  if (inet_pton(AF_INET, ip, &sa.in.sin_addr) == 1) {
    sa.in.sin_family = AF_INET;
    sl = sizeof(sa.in);
    if (sa.in.sin_addr.s_addr == htonl(INADDR_ANY)) return SFU_EINVAL;
  } else if (inet_pton(AF_INET6, ip, &sa.in6.sin6_addr) == 1) {
    sa.in6.sin6_family = AF_INET6;
    sl = sizeof(sa.in6);
    if (IN6_IS_ADDR_UNSPECIFIED(&sa.in6.sin6_addr)) return SFU_EINVAL;
  } else {
    return SFU_EINVAL;
  }
  lite_sock_t *s = calloc(1, sizeof(*s));
  if (!s) return SFU_ENOMEM;
  s->fd = -1;
  s->tcp_fd = -1;
  s->ice = ice;
  s->family = sa.sa.sa_family;
  s->sbuf = malloc((size_t)SEND_BATCH * SEND_SLOT);
  int fd = socket(s->family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (!s->sbuf || fd < 0) {
    int rv = fd < 0 ? -errno : SFU_ENOMEM;
    free(s->sbuf);
    free(s);
    return rv;
  }
  s->fd = fd;
  int one = 1, bufsz = SOCK_BUF;
  if (s->family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufsz, sizeof(bufsz)); /* best effort */
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof(bufsz));
  int rv = bind_port(fd, &sa, sl, 0, pmin, pmax);
  lite_sa_t bound;
  socklen_t bl = sizeof(bound);
  if (rv == 0 && getsockname(fd, &bound.sa, &bl) != 0) rv = -errno;
  if (rv != 0) {
    close(fd);
    free(s->sbuf);
    free(s);
    return rv;
  }
  s->port = ntohs(s->family == AF_INET ? bound.in.sin_port : bound.in6.sin6_port);
  inet_ntop(s->family, s->family == AF_INET ? (void *)&sa.in.sin_addr : (void *)&sa.in6.sin6_addr,
            s->ip, sizeof(s->ip));
  for (int i = 0; i < SEND_BATCH; i++) {
    s->smsg[i].msg_hdr.msg_iov = &s->siov[i];
    s->smsg[i].msg_hdr.msg_iovlen = 1;
    s->smsg[i].msg_hdr.msg_name = &s->sname[i];
  }
  *out = s;
  return 0;
}

/* The TCP listener of socket `s` (ICE-TCP, passive): on the UDP socket's
 * port number if it is free, else within the port range (from a random
 * start), else on an ephemeral port with no range; an IPv6 one
 * IPV6_V6ONLY. Non-blocking, listening; libuv takes it over once every
 * socket is open. 0 (s->tcp_fd, s->tcp_port set) or -errno. */
static int open_listener(lite_sock_t *s, int pmin, int pmax) {
  lite_sa_t sa;
  memset(&sa, 0, sizeof(sa));
  socklen_t sl = s->family == AF_INET ? sizeof(sa.in) : sizeof(sa.in6);
  sa.sa.sa_family = (sa_family_t)s->family;
  if (s->family == AF_INET)
    inet_pton(AF_INET, s->ip, &sa.in.sin_addr);
  else
    inet_pton(AF_INET6, s->ip, &sa.in6.sin6_addr);
  int fd = socket(s->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)); /* past TIME_WAITs */
  if (s->family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
  int rv = bind_port(fd, &sa, sl, s->port, pmin, pmax); /* the UDP port first */
  lite_sa_t bound;
  socklen_t bl = sizeof(bound);
  if (rv == 0 && listen(fd, TCP_BACKLOG) != 0) rv = -errno;
  if (rv == 0 && getsockname(fd, &bound.sa, &bl) != 0) rv = -errno;
  if (rv != 0) {
    close(fd);
    return rv;
  }
  s->tcp_fd = fd;
  s->tcp_port = ntohs(s->family == AF_INET ? bound.in.sin_port : bound.in6.sin6_port);
  return 0;
}

/* Hands the listener of `s` to libuv and starts accepting. On failure the
 * address has no TCP (a warning; its UDP works). */
static void start_listener(sfu_ice_t *ice, lite_sock_t *s) {
  uv_tcp_init(ice->loop, &s->tcp);
  ice->handles++;
  int rv = uv_tcp_open(&s->tcp, s->tcp_fd);
  if (rv != 0) close(s->tcp_fd);
  s->tcp_fd = -1; /* libuv's now, or closed */
  s->tcp.data = s;
  if (rv == 0) rv = uv_listen((uv_stream_t *)&s->tcp, TCP_BACKLOG, on_connection);
  if (rv == 0) {
    s->listening = 1;
    return;
  }
  sfu_log(SFU_LOG_WARN, "ice", "no ICE-TCP on '%s': %s", s->ip, sfu_strerror(rv));
  s->tcp_port = 0;
  s->tcp.data = ice;
  uv_close((uv_handle_t *)&s->tcp, on_handle_closed);
}

int sfu_ice_create(sfu_ice_t **out, uv_loop_t *loop, const sfu_ice_opts_t *o) {
  int rv = 0;
  *out = NULL;
  if (!loop || !o) return SFU_EINVAL;
  if (o->full) {
    sfu_log(SFU_LOG_ERROR, "ice", "icelite: a full agent is not supported");
    return SFU_EINVAL;
  }
  int pmin = o->port_min, pmax = o->port_max;
  if (pmin < 0 || pmin > 65535 || pmax < 0 || pmax > 65535) return SFU_EINVAL;
  if (pmin > 0 && pmax < pmin) pmax = pmin;
  sfu_ice_t *ice = calloc(1, sizeof(*ice));
  if (!ice) return SFU_ENOMEM;
  ice->loop = loop;
  ice->tcp_first_ms = TCP_FIRST_MS;
  ice->tcp_idle_ms = SFU_ICESTATE_CONSENT_MS;
  ice->check_ms = CHECK_MS;
  ice->tick_ms = CONSENT_TICK_MS;
  ice->rbuf = malloc(sizeof(*ice->rbuf) * RECV_BATCH);
  if (!ice->rbuf || sfu_icestate_create(&ice->sm) != 0) {
    rv = SFU_ENOMEM;
    goto fail;
  }
  if (o->announce && o->announce[0]) {
    struct in6_addr tmp;
    if (strlen(o->announce) < sizeof(ice->announce) && inet_pton(AF_INET, o->announce, &tmp) == 1)
      ice->announce_family = AF_INET;
    else if (strlen(o->announce) < sizeof(ice->announce) &&
             inet_pton(AF_INET6, o->announce, &tmp) == 1)
      ice->announce_family = AF_INET6;
    else {
      sfu_log(SFU_LOG_ERROR, "ice", "announce '%s' is not an IP address", o->announce);
      rv = SFU_EINVAL;
      goto fail;
    }
    snprintf(ice->announce, sizeof(ice->announce), "%s", o->announce);
  }
  char addrs[256];
  snprintf(addrs, sizeof(addrs), "%s", o->addresses && o->addresses[0] ? o->addresses : "127.0.0.1");
  for (char *save = NULL, *a = strtok_r(addrs, ", ", &save); a; a = strtok_r(NULL, ", ", &save)) {
    if (ice->nsocks == MAX_SOCKS) {
      sfu_log(SFU_LOG_WARN, "ice", "more than %d local addresses: '%s' ignored", MAX_SOCKS, a);
      continue;
    }
    rv = open_socket(ice, a, pmin, pmax, &ice->socks[ice->nsocks]);
    if (rv != 0) {
      sfu_log(SFU_LOG_ERROR, "ice", "cannot open a UDP socket on '%s': %s", a, sfu_strerror(rv));
      goto fail;
    }
    ice->socks[ice->nsocks]->idx = ice->nsocks;
    rv = open_listener(ice->socks[ice->nsocks], pmin, pmax);
    if (rv != 0) /* UDP alone still serves this address */
      sfu_log(SFU_LOG_WARN, "ice", "cannot open a TCP listener on '%s': %s", a, sfu_strerror(rv));
    rv = 0;
    ice->nsocks++;
  }
  if (ice->nsocks == 0) {
    rv = SFU_EINVAL;
    goto fail;
  }
  int announced = 0;
  for (int i = 0; i < ice->nsocks; i++) announced |= ice->socks[i]->family == ice->announce_family;
  if (ice->announce_family && !announced) { /* it would replace nothing */
    sfu_log(SFU_LOG_ERROR, "ice", "announce '%s': no local address of its family", ice->announce);
    rv = SFU_EINVAL;
    goto fail;
  }
  for (int i = 0; i < RECV_BATCH; i++) {
    ice->riov[i].iov_base = ice->rbuf[i];
    ice->riov[i].iov_len = RECV_SLOT;
    ice->rmsg[i].msg_hdr.msg_iov = &ice->riov[i];
    ice->rmsg[i].msg_hdr.msg_iovlen = 1;
    ice->rmsg[i].msg_hdr.msg_name = &ice->rname[i];
  }
  /* From here on nothing fails: only uv handles, which need the loop to
   * close. */
  for (int i = 0; i < ice->nsocks; i++) {
    lite_sock_t *s = ice->socks[i];
    if ((rv = uv_poll_init(loop, &s->poll, s->fd)) != 0) goto fail; /* before any handle */
    s->poll.data = s;
    uv_poll_start(&s->poll, UV_READABLE, on_readable);
    ice->handles++;
  }
  uv_prepare_init(loop, &ice->prepare);
  uv_check_init(loop, &ice->check);
  uv_timer_init(loop, &ice->consent);
  ice->handles += 3;
  ice->prepare.data = ice->check.data = ice->consent.data = ice;
  uv_prepare_start(&ice->prepare, on_prepare);
  uv_check_start(&ice->check, on_check);
  uv_timer_start(&ice->consent, on_consent, ice->tick_ms, ice->tick_ms);
  uv_unref((uv_handle_t *)&ice->prepare);
  uv_unref((uv_handle_t *)&ice->check);
  uv_unref((uv_handle_t *)&ice->consent);
  for (int i = 0; i < ice->nsocks; i++)
    if (ice->socks[i]->tcp_fd >= 0) start_listener(ice, ice->socks[i]);
  *out = ice;
  return 0;

fail:
  if (ice->handles) { /* uv_poll_init failed after others: close them */
    int polls = ice->handles;
    ice->closing = 1;
    for (int i = 0; i < polls; i++) {
      ice->socks[i]->poll.data = ice;
      uv_close((uv_handle_t *)&ice->socks[i]->poll, on_handle_closed);
    }
    return rv;
  }
  free_agent(ice);
  return rv;
}

void sfu_ice_destroy(sfu_ice_t *ice) {
  if (!ice || ice->closing) return;
  if (ice->dirty) flush_all(ice); /* the last DTLS alerts */
  ice->closing = 1;
  /* Orphans: the owners destroy them later. Their machine streams go
   * with the machine, when the handles have closed. */
  for (sfu_icestate_stream_t *s = sfu_icestate_streams(ice->sm); s;
       s = sfu_icestate_stream_next(s)) {
    sfu_ice_stream_t *st = sfu_icestate_user(s);
    st->drop_foreign = sfu_icestate_drop_foreign(s);
    st->ice = NULL;
    st->s = NULL;
    st->checking = 0; /* no check leaves for it any more: the timer is closing */
    st->chk_prev = st->chk_next = NULL;
  }
  ice->chk_head = ice->chk_tail = NULL;
  for (lite_conn_t *c = ice->conns; c; c = c->next) conn_close(c, NULL); /* unbinds them */
  for (int i = 0; i < ice->nsocks; i++) {
    ice->socks[i]->poll.data = ice;
    uv_close((uv_handle_t *)&ice->socks[i]->poll, on_handle_closed);
    if (ice->socks[i]->listening) {
      ice->socks[i]->tcp.data = ice;
      uv_close((uv_handle_t *)&ice->socks[i]->tcp, on_handle_closed);
    }
  }
  uv_close((uv_handle_t *)&ice->prepare, on_handle_closed);
  uv_close((uv_handle_t *)&ice->check, on_handle_closed);
  uv_close((uv_handle_t *)&ice->consent, on_handle_closed);
}

/* ---- streams ------------------------------------------------------------ */

static void copy_credentials(sfu_ice_stream_t *st) {
  memcpy(st->ufrag, sfu_icestate_ufrag(st->s), sizeof(st->ufrag));
  memcpy(st->pwd, sfu_icestate_pwd(st->s), sizeof(st->pwd));
}

int sfu_ice_stream_create(sfu_ice_t *ice, const sfu_ice_cb_t *cb, sfu_ice_stream_t **out) {
  *out = NULL;
  if (!ice || ice->closing || !cb || !cb->recv || !cb->state) return SFU_EINVAL;
  sfu_ice_stream_t *st = calloc(1, sizeof(*st));
  if (!st) return SFU_ENOMEM;
  int rv = sfu_icestate_stream_create(ice->sm, st, &st->s);
  if (rv != 0) {
    free(st);
    return rv;
  }
  st->ice = ice;
  st->cb = *cb;
  copy_credentials(st);
  ice->nstreams++;
  *out = st;
  return 0;
}

void sfu_ice_stream_destroy(sfu_ice_stream_t *st) {
  if (!st || st->dead) return;
  sfu_ice_t *ice = st->ice;
  st->dead = 1;
  if (!ice) { /* orphaned by sfu_ice_destroy() */
    free(st);
    return;
  }
  for (lite_conn_t *c = ice->conns; c && st->tcp_conns > 0; c = c->next)
    if (c->st == st) conn_close(c, &ice->stats.tcp.close_left); /* its pair goes too */
  if (st->checking) chk_unlink(ice, st);
  st->checking = 0;
  ice->nstreams--;
  st->drop_foreign = sfu_icestate_drop_foreign(st->s);
  sfu_icestate_stream_destroy(st->s); /* out of the maps, its event dropped */
  st->s = NULL;
  if (ice->depth > 0) {
    st->dead_next = ice->dead;
    ice->dead = st;
  } else {
    free(st);
  }
}

const char *sfu_ice_ufrag(const sfu_ice_stream_t *st) { return st->ufrag; }
const char *sfu_ice_pwd(const sfu_ice_stream_t *st) { return st->pwd; }

/* UDP: RFC 8445 5.1.2.1 with type preference 126 (host), local
 * preference 65535 - the address's index (the first address of the list is
 * preferred, whatever its family), component 1.
 *
 * TCP (RFC 6544 4.2, `tcptype passive`, after every UDP one): type
 * preference 90 (what Chromium gives its own TCP host candidates), below
 * any UDP host candidate whatever the local preference, so a peer that
 * reaches both prefers UDP (RFC 6544 4.2); local preference
 * (direction-pref << 13) + other-pref, with
 * direction-pref 4 (passive host, RFC 6544 4.2) and other-pref 8191 - the
 * address's index. Priority = (90 << 24) + (((4 << 13) + 8191 - i) << 8)
 * + 255: 0x5a9fffff for the first address.
 *
 * Foundations differ by type, address and transport (RFC 8445 5.1.1.3):
 * UDP 1..MAX_SOCKS, TCP MAX_SOCKS + 1... The port is the socket's, or its
 * listener's. The announced address replaces the address of the sockets
 * of its own family only, for both transports: behind a 1:1 IPv4 NAT, an
 * IPv6 socket keeps its own, global address. An IPv6 address is written
 * as inet_ntop() gives it, without brackets (RFC 8839 5.1:
 * connection-address). */
int sfu_ice_local_candidates(sfu_ice_stream_t *st, char out[][200], int max) {
  sfu_ice_t *ice = st->ice;
  int n = 0;
  if (!ice) return 0;
  for (int i = 0; i < ice->nsocks && n < max; i++) {
    const lite_sock_t *s = ice->socks[i];
    uint32_t prio = (126u << 24) | ((uint32_t)(65535 - i) << 8) | (256 - 1);
    snprintf(out[n++], 200, "candidate:%d 1 udp %u %s %u typ host", i + 1, prio,
             s->family == ice->announce_family ? ice->announce : s->ip, s->port);
  }
  for (int i = 0; i < ice->nsocks && n < max; i++) {
    const lite_sock_t *s = ice->socks[i];
    if (!s->tcp_port) continue; /* no listener on this address */
    uint32_t prio = (90u << 24) | ((uint32_t)((4 << 13) + 8191 - i) << 8) | (256 - 1);
    snprintf(out[n++], 200, "candidate:%d 1 tcp %u %s %u typ host tcptype passive",
             MAX_SOCKS + i + 1, prio, s->family == ice->announce_family ? ice->announce : s->ip,
             s->tcp_port);
  }
  return n;
}

/* The machine decides whether this is a restart (icestate.h); here the
 * new credentials are copied. A checking stream forgets its candidates at
 * a restart (the new session's come again, and are checked with the new
 * credentials), and checks the ones it has at once when the remote
 * credentials arrive after them. */
int sfu_ice_set_remote(sfu_ice_stream_t *st, const char *ufrag, const char *pwd) {
  if (!st->s) return SFU_EINVAL; /* destroyed or orphaned */
  int known = sfu_icestate_remote_ufrag(st->s)[0] != '\0';
  int rv = sfu_icestate_set_remote(st->s, ufrag, pwd);
  if (rv == 1) {
    copy_credentials(st);
    st->ncand = 0;
  } else if (rv == 0 && !known && st->checking && st->ncand > 0) {
    check_round(st->ice, st, uv_now(st->ice->loop));
  }
  return rv;
}

int sfu_ice_stream_set_checking(sfu_ice_stream_t *st, int on) {
  sfu_ice_t *ice = st->ice;
  if (!st->s) return SFU_EINVAL; /* destroyed or orphaned */
  on = on != 0;
  if (on == st->checking) return 0;
  st->checking = on;
  st->ncand = 0;
  if (on)
    chk_append(ice, st, uv_now(ice->loop) + ice->check_ms);
  else
    chk_unlink(ice, st);
  return 0;
}

/* ---- remote candidates -------------------------------------------------- */

/* Keeps candidate `c` (parsed from `line`) of a checking stream if a
 * check can go to it: UDP, component 1, an IP literal that names a host
 * (not an mDNS name, not unspecified, not IPv4-mapped), a port, a family
 * the agent has a socket of, not kept already, room left. Its index, or
 * -1. */
static int keep_candidate(sfu_ice_stream_t *st, const char *line, const sfu_candidate_t *c) {
  sfu_ice_t *ice = st->ice;
  char ip[INET6_ADDRSTRLEN];
  lite_sa_t sa;
  socklen_t sl;
  if (c->transport != SFU_CANDIDATE_UDP || c->component != 1 || c->port == 0 ||
      st->ncand == CHECK_CANDS || c->addr_len >= sizeof(ip))
    return -1;
  memcpy(ip, line + c->addr_off, c->addr_len);
  ip[c->addr_len] = '\0';
  memset(&sa, 0, sizeof(sa));
  if (inet_pton(AF_INET, ip, &sa.in.sin_addr) == 1 &&
      sa.in.sin_addr.s_addr != htonl(INADDR_ANY)) {
    sa.in.sin_family = AF_INET;
    sa.in.sin_port = htons(c->port);
    sl = sizeof(sa.in);
  } else if (inet_pton(AF_INET6, ip, &sa.in6.sin6_addr) == 1 &&
             !IN6_IS_ADDR_UNSPECIFIED(&sa.in6.sin6_addr) &&
             !IN6_IS_ADDR_V4MAPPED(&sa.in6.sin6_addr)) {
    sa.in6.sin6_family = AF_INET6;
    sa.in6.sin6_port = htons(c->port);
    sl = sizeof(sa.in6);
  } else {
    return -1;
  }
  int sock = -1;
  for (int i = 0; i < ice->nsocks && sock < 0; i++)
    if (ice->socks[i]->family == sa.sa.sa_family) sock = i;
  if (sock < 0) return -1;
  for (int k = 0; k < st->ncand; k++)
    if (st->cand[k].len == sl && memcmp(&st->cand[k].sa, &sa, sl) == 0) return -1;
  lite_cand_t *kept = &st->cand[st->ncand];
  kept->sa = sa;
  kept->len = sl;
  kept->sock = sock;
  kept->priority = c->priority;
  return st->ncand++;
}

/* An ICE-lite agent does not check: it learns the peer's addresses from
 * the peer's checks (over UDP, or a TCP connection the peer opened to a
 * passive candidate: an active TCP candidate of the peer, port 9, needs
 * nothing from this side). A candidate is parsed, to refuse garbage
 * (sfu/net/candidate.c), and only a checking stream keeps it, and checks
 * it at once if the remote credentials are known. */
int sfu_ice_add_remote_candidate(sfu_ice_stream_t *st, const char *cand) {
  sfu_candidate_t c;
  if (!cand) return SFU_EINVAL;
  int rv = sfu_candidate_parse(cand, strnlen(cand, SFU_CANDIDATE_MAX + 1), &c, NULL);
  if (rv != 0 || !st->checking || !st->s) return rv;
  int k = keep_candidate(st, cand, &c);
  if (k >= 0) check_one(st->ice, st, k);
  return 0;
}

/* ice.h: media from an address the stream retired (ICE restart,
 * eviction). Media from an address no stream validated cannot be charged
 * to a stream: the agent counts it (sfu_ice_drop_unknown). */
uint64_t sfu_ice_drop_foreign(const sfu_ice_stream_t *st) {
  if (!st->s) return st->drop_foreign; /* orphaned (or destroyed) */
  return sfu_icestate_drop_foreign(st->s);
}

uint64_t sfu_ice_drop_unknown(const sfu_ice_t *ice) {
  return ice ? sfu_icestate_stats(ice->sm)->drop_unknown : 0;
}
