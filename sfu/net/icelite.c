/*
 * icelite.c -- the room's ICE-lite agent, behind the stream interface of
 * sfu/net/ice.h (the client stack's libnice agent is the other side of it).
 * docs/internals/icelite.md has the measurements that motivated it.
 *
 * Role. The SFU is ICE-lite (RFC 8445 2.5) and always controlled: it never
 * sends a check. It answers the peers' Binding requests, learns each peer's
 * address from them (peer-reflexive), and the peer -- a full, controlling
 * agent -- nominates with USE-CANDIDATE. Host candidates only.
 *
 * Sockets. One non-blocking UDP socket per local address, shared by every
 * stream (participant) of the agent (the room), read with recvmmsg from
 * one uv_poll_t each. Demultiplexing by RFC 7983 first byte:
 *
 *   0..3     STUN: a Binding request is routed by the local half of its
 *            USERNAME ("<our ufrag>:<peer ufrag>") through the ufrag map,
 *            authenticated with that stream's password (MESSAGE-INTEGRITY)
 *            and FINGERPRINT, and answered right away with sendto. The
 *            source address becomes one of the stream's validated
 *            addresses (address map: address -> stream).
 *   anything else (DTLS 20..63, RTP/RTCP 128..191): routed by source
 *            address through the address map to the stream's cb.recv;
 *            from an address no stream validated, dropped and counted
 *            (drop_unknown); from an address the stream retired (ICE
 *            restart, eviction), dropped and counted on the stream
 *            (sfu_ice_drop_foreign, which also reports the agent's
 *            drop_unknown on the oldest stream: the room sums it).
 *
 * Nomination (the lite side of RFC 8445 8.2). The first authenticated
 * check selects its pair and reports connected, so a peer that starts DTLS
 * before nominating is answered; a check with USE-CANDIDATE then selects
 * its pair for good. A later USE-CANDIDATE on another pair wins if its
 * PRIORITY is not lower than the nominated one's (aggressive nomination
 * nominates several pairs: the highest priority one is kept) or if the
 * nominated pair has not been checked for STALE_MS (the peer moved).
 *
 * Role conflict. A lite agent cannot become controlling, so a request
 * carrying ICE-CONTROLLED (the peer believes it is controlled too) is
 * answered 487 Role Conflict, integrity-protected, as the RFC 8445 7.3.1.1
 * rule gives when our tie-breaker is the larger: the peer switches to
 * controlling and checks again (libnice and aioice do).
 *
 * Consent (RFC 7675). A connected stream whose selected pair has had no
 * authenticated check for consent_timeout_ms (30 s) reports
 * cb.state(arg, 0) and stops sending; a later check on a selected pair
 * reports connected again. Checked by a 1 s timer.
 *
 * ICE restart. sfu_ice_set_remote() with another remote ufrag generates
 * new local credentials (the old ones get 401 from then on) and retires
 * the validated addresses except the selected one, which keeps carrying
 * media until the peer's checks under the new credentials select a pair
 * (RFC 8445 9: media continues on the previous pair during a restart).
 *
 * Sending. sfu_ice_send() copies the datagram into its socket's send batch
 * (SEND_BATCH slots of SEND_SLOT bytes, with their iovecs, addresses and
 * mmsghdrs, allocated once), so the caller's buffer is free at once. A
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
 * Lifetimes. Callbacks may destroy their own stream or the agent. A stream
 * destroyed while the agent is dispatching (depth > 0) is unlinked from the
 * maps at once -- its remaining datagrams in the batch find no stream and
 * are dropped -- and freed at the end of the turn. The agent, destroyed,
 * stops reading at once and is freed when its uv handles have closed.
 * Streams still alive then are orphaned, not freed: their owner destroys
 * them later (sfu_ice_send() answers SFU_EAGAIN meanwhile).
 *
 * Memory: per socket SEND_BATCH x SEND_SLOT (96 KiB) of send slots; per
 * agent RECV_BATCH x RECV_SLOT (64 KiB) of receive slots; two
 * open-addressing maps (48-byte slots, load <= 1/2, grown on STUN
 * validation only, never on the media path). Per stream ~600 bytes.
 * Nothing is allocated per packet.
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

#include "sfu/net/ice.h"
#include "sfu/base/log.h"
#include "sfu/base/sfu.h"
#include "sfu/media/stun.h"

#define MAX_SOCKS 4          /* local addresses */
#define RECV_BATCH 32        /* datagrams per recvmmsg */
#define RECV_ROUNDS 4        /* recvmmsg calls per readable event (fairness) */
#define RECV_SLOT 2048       /* a bigger datagram is truncated and dropped */
#define SEND_BATCH 64        /* datagrams per sendmmsg */
#define SEND_SLOT 1536       /* largest datagram sfu_ice_send() takes */
#define MAX_KNOWN 8          /* validated addresses per stream */
#define MAX_STREAMS 4096     /* per agent */
#define MAP_MAX_SLOTS 65536u /* per map: load <= 1/2 of this */
#define UFRAG_LEN 8          /* 48 random bits */
#define PWD_LEN 24           /* 144 random bits */
#define REMOTE_MAX 256       /* RFC 8839: ice-ufrag/ice-pwd up to 256 chars */
#define STALE_MS 6000        /* a nominated pair unchecked this long yields */
#define CONSENT_TICK_MS 1000
#define ERR_PER_S 100        /* STUN error responses per second (reflection) */
#define SOCK_BUF (2 << 20)   /* SO_RCVBUF / SO_SNDBUF asked for */

static uint64_t consent_timeout_ms = 30000; /* RFC 7675; tests shorten it */

/* ---- statistics --------------------------------------------------------- */

/* Agent counters, all monotonic. Not in ice.h yet: see icelite.md. */
typedef struct sfu__icelite_stats_s {
  uint64_t rx_datagrams;     /* read from the sockets */
  uint64_t rx_syscalls;      /* recvmmsg calls */
  uint64_t rx_truncated;     /* larger than RECV_SLOT: dropped */
  uint64_t drop_unknown;     /* not STUN, from an address no stream validated */
  uint64_t stun_requests;    /* Binding requests that parsed with a FINGERPRINT */
  uint64_t stun_ok;          /* answered with success */
  uint64_t stun_malformed;   /* first byte 0..3 but not a valid STUN message */
  uint64_t stun_fingerprint; /* no or a wrong FINGERPRINT: dropped silently */
  uint64_t stun_ignored;     /* indications, responses: nothing to do */
  uint64_t stun_400;         /* no USERNAME/MESSAGE-INTEGRITY, not Binding */
  uint64_t stun_401_user;    /* unknown local ufrag */
  uint64_t stun_401_mac;     /* wrong MESSAGE-INTEGRITY */
  uint64_t stun_420;         /* unknown comprehension-required attributes */
  uint64_t stun_487;         /* ICE-CONTROLLED from the peer */
  uint64_t stun_err_limited; /* error responses not sent (ERR_PER_S) */
  uint64_t stun_send_fail;   /* a response's sendto failed */
  uint64_t tx_datagrams;     /* sent by sendmmsg */
  uint64_t tx_syscalls;      /* sendmmsg calls */
  uint64_t tx_flush_full;    /* flushes because a batch was full */
  uint64_t tx_partial;       /* sendmmsg sent part of what it was given */
  uint64_t tx_drop_eagain;   /* dropped: EAGAIN/ENOBUFS */
  uint64_t tx_drop_error;    /* dropped: that message's own error */
  uint64_t tx_drop_size;     /* larger than SEND_SLOT: refused */
  uint64_t addr_map_full;    /* an address could not be validated */
  uint64_t consent_lost;     /* streams that lost consent */
  uint64_t restarts;         /* ICE restarts by peers */
} sfu__icelite_stats_t;

const sfu__icelite_stats_t *sfu__icelite_stats(const sfu_ice_t *ice);

/* ---- addresses and maps ------------------------------------------------- */

typedef union {
  struct sockaddr sa;
  struct sockaddr_in in;
  struct sockaddr_in6 in6;
} lite_sa_t;

/* A remote transport address as a map key: compact, no padding garbage. */
typedef struct {
  uint8_t fam;    /* 4 or 6 */
  uint8_t zero;
  uint16_t port;  /* network order */
  uint8_t ip[16]; /* IPv4 in the first 4 bytes, rest zero */
} addr_key_t;

static void key_of(const struct sockaddr *sa, addr_key_t *k) {
  memset(k, 0, sizeof(*k));
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
    k->fam = 4;
    k->port = a->sin_port;
    memcpy(k->ip, &a->sin_addr, 4);
  } else {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
    k->fam = 6;
    k->port = a->sin6_port;
    memcpy(k->ip, &a->sin6_addr, 16);
  }
}

static socklen_t sa_of(const addr_key_t *k, lite_sa_t *out) {
  memset(out, 0, sizeof(*out));
  if (k->fam == 4) {
    out->in.sin_family = AF_INET;
    out->in.sin_port = k->port;
    memcpy(&out->in.sin_addr, k->ip, 4);
    return sizeof(out->in);
  }
  out->in6.sin6_family = AF_INET6;
  out->in6.sin6_port = k->port;
  memcpy(&out->in6.sin6_addr, k->ip, 16);
  return sizeof(out->in6);
}

/*
 * Open addressing, linear probing, backward-shift deletion (no
 * tombstones). Keys are up to 32 bytes (an addr_key_t or a ufrag); the
 * hash is seeded per agent. A slot with hash 0 is empty. Load is kept
 * <= 1/2; the table doubles on insert up to MAP_MAX_SLOTS and then refuses.
 */
typedef struct {
  uint32_t hash;   /* 0: empty */
  uint8_t klen;
  uint8_t tag;     /* the address map: 1 = retired */
  uint8_t key[32];
  void *val;       /* the stream */
} mslot_t;

typedef struct {
  mslot_t *slots;
  uint32_t mask; /* slots - 1 */
  uint32_t used;
} map_t;

static uint32_t hash_of(uint32_t seed, const uint8_t *p, size_t n) {
  uint32_t h = 2166136261u ^ seed;
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
  h ^= h >> 16; /* fmix32: FNV's low bits are weak for table indexing */
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  h ^= h >> 16;
  return h ? h : 1;
}

static int map_init(map_t *m, uint32_t slots) {
  m->slots = calloc(slots, sizeof(*m->slots));
  m->mask = slots - 1;
  m->used = 0;
  return m->slots ? 0 : SFU_ENOMEM;
}

static mslot_t *map_find(const map_t *m, uint32_t seed, const void *key, size_t klen) {
  uint32_t h = hash_of(seed, key, klen);
  for (uint32_t i = h & m->mask;; i = (i + 1) & m->mask) {
    mslot_t *s = &m->slots[i];
    if (s->hash == 0) return NULL;
    if (s->hash == h && s->klen == klen && memcmp(s->key, key, klen) == 0) return s;
  }
}

static void map_place(map_t *m, const mslot_t *e) {
  uint32_t i = e->hash & m->mask;
  while (m->slots[i].hash) i = (i + 1) & m->mask;
  m->slots[i] = *e;
}

static int map_put(map_t *m, uint32_t seed, const void *key, size_t klen, void *val, uint8_t tag) {
  mslot_t *s = map_find(m, seed, key, klen);
  if (s) {
    s->val = val;
    s->tag = tag;
    return 0;
  }
  if ((m->used + 1) * 2 > m->mask + 1) { /* grow */
    uint32_t n = (m->mask + 1) * 2;
    if (n > MAP_MAX_SLOTS) return SFU_E2BIG;
    map_t g;
    if (map_init(&g, n) != 0) return SFU_ENOMEM;
    for (uint32_t i = 0; i <= m->mask; i++)
      if (m->slots[i].hash) map_place(&g, &m->slots[i]);
    g.used = m->used;
    free(m->slots);
    *m = g;
  }
  mslot_t e = {hash_of(seed, key, klen), (uint8_t)klen, tag, {0}, val};
  memcpy(e.key, key, klen);
  map_place(m, &e);
  m->used++;
  return 0;
}

static void map_del(map_t *m, uint32_t seed, const void *key, size_t klen) {
  mslot_t *s = map_find(m, seed, key, klen);
  if (!s) return;
  uint32_t i = (uint32_t)(s - m->slots), j = i;
  for (;;) {
    j = (j + 1) & m->mask;
    if (m->slots[j].hash == 0) break;
    uint32_t home = m->slots[j].hash & m->mask;
    /* Move j back to i unless its home lies cyclically in (i, j]. */
    int stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
    if (!stays) {
      m->slots[i] = m->slots[j];
      i = j;
    }
  }
  memset(&m->slots[i], 0, sizeof(m->slots[i]));
  m->used--;
}

/* ---- structures --------------------------------------------------------- */

/* One local address: its socket, poll handle and send batch. The mmsghdrs
 * point at their own iovec and address slot once and for all; a queued
 * datagram only sets iov_len and msg_namelen. */
typedef struct lite_sock_s {
  sfu_ice_t *ice;                   /* owner */
  int idx;                          /* in ice->socks[] */
  int fd;                           /* bound, non-blocking UDP */
  uv_poll_t poll;                   /* readable */
  int family;                       /* AF_INET / AF_INET6 */
  char ip[INET6_ADDRSTRLEN];        /* the bound address, for candidates */
  uint16_t port;                    /* the bound port (host order) */
  int nsend;                        /* datagrams queued */
  struct mmsghdr smsg[SEND_BATCH];  /* for sendmmsg */
  struct iovec siov[SEND_BATCH];
  lite_sa_t sname[SEND_BATCH];      /* destinations, copied */
  uint8_t (*sbuf)[SEND_SLOT];       /* SEND_BATCH copies, one allocation */
} lite_sock_t;

/* A validated remote address of a stream. */
typedef struct {
  addr_key_t key;   /* also the address map's key */
  uint8_t sock;     /* local socket it was seen on */
  uint8_t retired;  /* restart/eviction: media from it is refused */
  uint64_t seen_ms; /* last authenticated check from it */
} known_t;

struct sfu_ice_stream_s {
  sfu_ice_t *ice;                   /* owner; NULL once the agent is gone */
  sfu_ice_stream_t *prev, *next;    /* the agent's live streams */
  sfu_ice_stream_t *dead_next;      /* the agent's streams to free */
  sfu_ice_cb_t cb;                  /* to the transport */
  char ufrag[UFRAG_LEN + 1];        /* local credentials */
  char pwd[PWD_LEN + 1];
  char remote_ufrag[REMOTE_MAX + 1]; /* to detect a peer's restart */
  int dead;                         /* destroyed, waiting to be freed */
  int connected;                    /* last state reported */
  int nominated;                    /* the selected pair came with USE-CANDIDATE */
  int has_sel;                      /* a selected pair exists */
  addr_key_t sel_key;               /* the selected pair: remote address */
  lite_sa_t sel_sa;                 /* ... as a sockaddr, for sends */
  socklen_t sel_len;
  int sel_sock;                     /* ... and local socket */
  uint32_t sel_prio;                /* PRIORITY of its nominating check */
  uint64_t sel_seen_ms;             /* its last authenticated check (consent) */
  known_t known[MAX_KNOWN];         /* validated addresses, selected one too */
  int nknown;
  uint64_t drop_foreign;            /* media from a retired address */
};

struct sfu_ice_s {
  uv_loop_t *loop;
  char announce[INET6_ADDRSTRLEN];  /* written into candidates if set */
  lite_sock_t *socks[MAX_SOCKS];
  int nsocks;
  uv_prepare_t prepare;             /* flush before the loop blocks */
  uv_check_t check;                 /* flush right after the poll phase */
  uv_timer_t consent;               /* consent freshness, 1 s */
  int handles;                      /* uv handles initialised */
  int pending;                      /* close callbacks outstanding */
  int closing;                      /* sfu_ice_destroy() was called */
  int depth;                        /* our callbacks on the stack */
  int dirty;                        /* some socket has queued datagrams */
  uint32_t seed;                    /* map hash seed */
  map_t by_addr;                    /* addr_key_t -> stream (tag: retired) */
  map_t by_ufrag;                   /* local ufrag -> stream */
  sfu_ice_stream_t *streams;        /* live streams, newest first */
  sfu_ice_stream_t *oldest;         /* the list's tail: charged drop_unknown */
  int nstreams;
  sfu_ice_stream_t *dead;           /* destroyed during dispatch */
  uint64_t err_window_ms;           /* start of the error-response second */
  int err_in_window;
  uint64_t warn_ms;                 /* last rate-limited warning */
  struct mmsghdr rmsg[RECV_BATCH];  /* recvmmsg, shared by the sockets */
  struct iovec riov[RECV_BATCH];
  lite_sa_t rname[RECV_BATCH];
  uint8_t (*rbuf)[RECV_SLOT];
  sfu__icelite_stats_t stats;
};

const sfu__icelite_stats_t *sfu__icelite_stats(const sfu_ice_t *ice) { return &ice->stats; }

static void warn_limited(sfu_ice_t *ice, const char *fmt, const char *what, int err) {
  uint64_t now = uv_now(ice->loop);
  if (ice->warn_ms && now - ice->warn_ms < 10000) return;
  ice->warn_ms = now;
  sfu_log(SFU_LOG_WARN, "ice", fmt, what, strerror(err));
}

/* ---- credentials --------------------------------------------------------- */

/* ICE characters (RFC 8445 5.3): 64 of them, so a random byte & 63 is
 * uniform. */
static void random_ice_chars(char *out, size_t n) {
  static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  uint8_t raw[64];
  sfu_random_bytes(raw, n);
  for (size_t i = 0; i < n; i++) out[i] = alpha[raw[i] & 63];
  out[n] = '\0';
}

/* New local credentials, the ufrag unique in the agent, in the map. */
static int new_credentials(sfu_ice_t *ice, sfu_ice_stream_t *st) {
  char u[UFRAG_LEN + 1];
  for (int tries = 0; tries < 16; tries++) {
    random_ice_chars(u, UFRAG_LEN);
    if (map_find(&ice->by_ufrag, ice->seed, u, UFRAG_LEN)) continue;
    int rv = map_put(&ice->by_ufrag, ice->seed, u, UFRAG_LEN, st, 0);
    if (rv != 0) return rv;
    if (st->ufrag[0]) map_del(&ice->by_ufrag, ice->seed, st->ufrag, UFRAG_LEN);
    memcpy(st->ufrag, u, sizeof(u));
    random_ice_chars(st->pwd, PWD_LEN);
    return 0;
  }
  return SFU_EBUSY;
}

/* ---- validated addresses ---------------------------------------------- */

static int key_eq(const addr_key_t *a, const addr_key_t *b) {
  return memcmp(a, b, sizeof(*a)) == 0;
}

static int known_find(const sfu_ice_stream_t *st, const addr_key_t *k) {
  for (int i = 0; i < st->nknown; i++)
    if (key_eq(&st->known[i].key, k)) return i;
  return -1;
}

/* Forgets known[i]: out of the address map (if it still maps here). */
static void known_remove(sfu_ice_stream_t *st, int i) {
  sfu_ice_t *ice = st->ice;
  mslot_t *s = map_find(&ice->by_addr, ice->seed, &st->known[i].key, sizeof(addr_key_t));
  if (s && s->val == st) map_del(&ice->by_addr, ice->seed, &st->known[i].key, sizeof(addr_key_t));
  if (st->has_sel && key_eq(&st->sel_key, &st->known[i].key)) st->has_sel = 0;
  st->known[i] = st->known[--st->nknown];
}

static void forget_all(sfu_ice_stream_t *st) {
  while (st->nknown) known_remove(st, st->nknown - 1);
}

/* Makes `k` (seen on socket `sock`) a validated address of `st`: taken
 * from another stream if it was one of its (an authenticated check is
 * the latest word on who is behind an address), oldest entry evicted if
 * the list is full. Returns its index, or -1 (address map full). */
static int known_add(sfu_ice_stream_t *st, const addr_key_t *k, int sock, uint64_t now) {
  sfu_ice_t *ice = st->ice;
  int i = known_find(st, k);
  if (i < 0) {
    mslot_t *s = map_find(&ice->by_addr, ice->seed, k, sizeof(*k));
    if (s && s->val != st) {
      sfu_ice_stream_t *other = s->val;
      int j = known_find(other, k);
      if (j >= 0) known_remove(other, j);
    }
    if (st->nknown == MAX_KNOWN) { /* evict: retired first, then oldest, never selected */
      int victim = -1;
      for (int j = 0; j < st->nknown; j++) {
        if (st->has_sel && key_eq(&st->known[j].key, &st->sel_key)) continue;
        if (victim < 0 || st->known[j].retired > st->known[victim].retired ||
            (st->known[j].retired == st->known[victim].retired &&
             st->known[j].seen_ms < st->known[victim].seen_ms))
          victim = j;
      }
      known_remove(st, victim);
    }
    if (map_put(&ice->by_addr, ice->seed, k, sizeof(*k), st, 0) != 0) {
      ice->stats.addr_map_full++;
      return -1;
    }
    i = st->nknown++;
    st->known[i].key = *k;
  } else if (st->known[i].retired) {
    mslot_t *s = map_find(&ice->by_addr, ice->seed, k, sizeof(*k));
    if (s) s->tag = 0;
  }
  st->known[i].sock = (uint8_t)sock;
  st->known[i].retired = 0;
  st->known[i].seen_ms = now;
  return i;
}

static void select_pair(sfu_ice_stream_t *st, int i) {
  st->has_sel = 1;
  st->sel_key = st->known[i].key;
  st->sel_sock = st->known[i].sock;
  st->sel_len = sa_of(&st->sel_key, &st->sel_sa);
  st->sel_seen_ms = st->known[i].seen_ms;
}

/* An authenticated check from `from` on socket `sock`: validate, nominate,
 * report. The state callback is the last thing done (it may destroy st). */
static void on_valid_check(sfu_ice_stream_t *st, int sock, const struct sockaddr *from,
                           const sfu_stun_msg_t *m) {
  uint64_t now = uv_now(st->ice->loop);
  addr_key_t k;
  key_of(from, &k);
  int i = known_add(st, &k, sock, now);
  if (i < 0) return;
  int on_sel = st->has_sel && key_eq(&st->sel_key, &k) && st->sel_sock == sock;
  if (on_sel) {
    st->sel_seen_ms = now;
    if (m->use_candidate && !st->nominated) {
      st->nominated = 1;
      st->sel_prio = m->priority;
    }
  } else if (m->use_candidate) {
    if (!st->has_sel || !st->nominated || m->priority >= st->sel_prio ||
        now - st->sel_seen_ms > STALE_MS) {
      select_pair(st, i);
      st->nominated = 1;
      st->sel_prio = m->priority;
      on_sel = 1;
    }
  } else if (!st->has_sel) {
    select_pair(st, i); /* the first valid check, until a nomination */
    on_sel = 1;
  }
  if (on_sel && !st->connected) {
    st->connected = 1;
    sfu_log(SFU_LOG_DEBUG, "ice", "stream %s: connected%s", st->ufrag,
            st->nominated ? " (nominated)" : "");
    st->cb.state(st->cb.arg, 1);
  }
}

/* ---- STUN --------------------------------------------------------------- */

static void send_now(sfu_ice_t *ice, lite_sock_t *s, const uint8_t *b, int n,
                     const struct sockaddr *to) {
  socklen_t tl = to->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
  if (n <= 0 || sendto(s->fd, b, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL, to, tl) != n)
    ice->stats.stun_send_fail++;
}

/* An error response, at most ERR_PER_S a second: a flood of bad checks
 * with spoofed sources must not turn the room into a reflector (our
 * errors are smaller than the checks anyway). */
static void send_error(sfu_ice_t *ice, lite_sock_t *s, const sfu_stun_msg_t *m,
                       const struct sockaddr *to, int code, const sfu_ice_stream_t *st) {
  uint64_t now = uv_now(ice->loop);
  uint8_t b[128];
  if (now - ice->err_window_ms >= 1000) {
    ice->err_window_ms = now;
    ice->err_in_window = 0;
  }
  if (++ice->err_in_window > ERR_PER_S) {
    ice->stats.stun_err_limited++;
    return;
  }
  int n = sfu_stun_binding_error(b, sizeof(b), m->tid, code, m->unknown, code == 420 ? m->n_unknown : 0,
                                 st ? st->pwd : NULL, st ? PWD_LEN : 0);
  send_now(ice, s, b, n, to);
}

static void on_stun(sfu_ice_t *ice, lite_sock_t *s, const struct sockaddr *from,
                    const uint8_t *buf, size_t len) {
  sfu_stun_msg_t m;
  if (sfu_stun_parse(buf, len, &m, NULL) != (int)len) {
    ice->stats.stun_malformed++;
    return;
  }
  /* ICE puts FINGERPRINT in every STUN message (RFC 8445 7.2.2); without
   * it, or wrong, this is not a check of ours: drop without answering. */
  if (sfu_stun_check_fingerprint(&m) != 0) {
    ice->stats.stun_fingerprint++;
    return;
  }
  if (m.cls != SFU_STUN_REQUEST) { /* keepalive indications, stray responses */
    ice->stats.stun_ignored++;
    return;
  }
  ice->stats.stun_requests++;
  const uint8_t *u = m.data + m.username_off;
  const uint8_t *colon = m.username_off ? memchr(u, ':', m.username_len) : NULL;
  if (m.method != SFU_STUN_METHOD_BINDING || !m.integrity_off || !colon) {
    ice->stats.stun_400++;
    send_error(ice, s, &m, from, 400, NULL);
    return;
  }
  size_t ulen = (size_t)(colon - u);
  mslot_t *slot = ulen == UFRAG_LEN ? map_find(&ice->by_ufrag, ice->seed, u, ulen) : NULL;
  sfu_ice_stream_t *st = slot ? slot->val : NULL;
  if (!st) {
    ice->stats.stun_401_user++;
    send_error(ice, s, &m, from, 401, NULL);
    return;
  }
  int rv = sfu_stun_check_integrity(&m, st->pwd, PWD_LEN);
  if (rv != 0) {
    if (rv == SFU_EACCES) {
      ice->stats.stun_401_mac++;
      send_error(ice, s, &m, from, 401, NULL);
    }
    return;
  }
  if (m.n_unknown > 0) {
    ice->stats.stun_420++;
    send_error(ice, s, &m, from, 420, st);
    return;
  }
  if (m.controlled) {
    ice->stats.stun_487++;
    send_error(ice, s, &m, from, 487, st);
    return;
  }
  uint8_t b[128];
  send_now(ice, s, b, sfu_stun_binding_success(b, sizeof(b), m.tid, from, st->pwd, PWD_LEN),
           from);
  ice->stats.stun_ok++;
  on_valid_check(st, s->idx, from, &m);
}

/* ---- receive ------------------------------------------------------------ */

static void on_datagram(sfu_ice_t *ice, lite_sock_t *s, int i) {
  uint8_t *b = ice->rbuf[i];
  size_t len = ice->rmsg[i].msg_len;
  const struct sockaddr *from = &ice->rname[i].sa;
  if (ice->rmsg[i].msg_hdr.msg_flags & MSG_TRUNC) {
    ice->stats.rx_truncated++;
    return;
  }
  if (len > 0 && b[0] < 4) { /* RFC 7983: STUN */
    on_stun(ice, s, from, b, len);
    return;
  }
  addr_key_t k;
  key_of(from, &k);
  mslot_t *slot = map_find(&ice->by_addr, ice->seed, &k, sizeof(k));
  if (!slot) {
    ice->stats.drop_unknown++;
    return;
  }
  sfu_ice_stream_t *st = slot->val;
  if (slot->tag) {
    st->drop_foreign++;
    return;
  }
  st->cb.recv(st->cb.arg, b, len);
}

static void on_readable(uv_poll_t *h, int status, int events) {
  lite_sock_t *s = h->data;
  sfu_ice_t *ice = s->ice;
  if (ice->closing) return;
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
    for (int i = 0; i < n && !ice->closing; i++) on_datagram(ice, s, i);
    if (n < RECV_BATCH) break;
  }
  ice->depth--;
}

/* ---- send --------------------------------------------------------------- */

static void flush_sock(sfu_ice_t *ice, lite_sock_t *s) {
  int n = s->nsend, off = 0;
  s->nsend = 0;
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

static void free_stream(sfu_ice_stream_t *st) { free(st); }

static void reap(sfu_ice_t *ice) {
  while (ice->dead) {
    sfu_ice_stream_t *st = ice->dead;
    ice->dead = st->dead_next;
    free_stream(st);
  }
}

static void turn_end(sfu_ice_t *ice) {
  if (ice->closing) return;
  if (ice->dirty) flush_all(ice);
  if (ice->depth == 0) reap(ice);
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
  lite_sock_t *s = ice->socks[st->sel_sock];
  if (s->nsend == SEND_BATCH) {
    ice->stats.tx_flush_full++;
    flush_sock(ice, s);
  }
  int i = s->nsend++;
  memcpy(s->sbuf[i], buf, len);
  s->siov[i].iov_len = len;
  s->sname[i] = st->sel_sa;
  s->smsg[i].msg_hdr.msg_namelen = st->sel_len;
  ice->dirty = 1;
  return 0;
}

/* ---- consent ------------------------------------------------------------ */

static void on_consent(uv_timer_t *h) {
  sfu_ice_t *ice = h->data;
  uint64_t now = uv_now(ice->loop);
  ice->depth++;
  /* A callback may destroy streams: they stay allocated (depth > 0) with
   * their `next` intact, so the walk goes on through them. */
  for (sfu_ice_stream_t *st = ice->streams, *next; st && !ice->closing; st = next) {
    next = st->next;
    if (st->dead || !st->connected || now - st->sel_seen_ms <= consent_timeout_ms) continue;
    sfu_log(SFU_LOG_INFO, "ice", "stream %s: consent lost (no check for %llu ms)", st->ufrag,
            (unsigned long long)(now - st->sel_seen_ms));
    ice->stats.consent_lost++;
    st->connected = 0;
    st->has_sel = 0; /* RFC 7675: stop sending */
    st->nominated = 0;
    st->cb.state(st->cb.arg, 0);
  }
  ice->depth--;
  if (ice->depth == 0 && !ice->closing) reap(ice);
}

/* ---- agent -------------------------------------------------------------- */

static void free_agent(sfu_ice_t *ice) {
  for (int i = 0; i < ice->nsocks; i++) {
    if (ice->socks[i]->fd >= 0) close(ice->socks[i]->fd);
    free(ice->socks[i]->sbuf);
    free(ice->socks[i]);
  }
  reap(ice);
  free(ice->by_addr.slots);
  free(ice->by_ufrag.slots);
  free(ice->rbuf);
  free(ice);
}

static void on_handle_closed(uv_handle_t *h) {
  sfu_ice_t *ice = h->data;
  if (--ice->pending == 0) free_agent(ice);
}

/* Binds a UDP socket on `ip` within the port range (from a random start),
 * or on an ephemeral port with no range. */
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
  s->ice = ice;
  s->family = sa.sa.sa_family;
  s->sbuf = malloc(sizeof(*s->sbuf) * SEND_BATCH);
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
  int rv = SFU_EBUSY;
  if (pmin > 0) {
    uint32_t span = (uint32_t)(pmax - pmin + 1), start;
    start = sfu_random_u32();
    for (uint32_t i = 0; i < span; i++) {
      uint16_t port = (uint16_t)(pmin + (start + i) % span);
      if (s->family == AF_INET)
        sa.in.sin_port = htons(port);
      else
        sa.in6.sin6_port = htons(port);
      if (bind(fd, &sa.sa, sl) == 0) {
        rv = 0;
        break;
      }
      if (errno != EADDRINUSE && errno != EACCES) {
        rv = -errno;
        break;
      }
    }
  } else {
    rv = bind(fd, &sa.sa, sl) == 0 ? 0 : -errno;
  }
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
    s->siov[i].iov_base = s->sbuf[i];
    s->smsg[i].msg_hdr.msg_iov = &s->siov[i];
    s->smsg[i].msg_hdr.msg_iovlen = 1;
    s->smsg[i].msg_hdr.msg_name = &s->sname[i];
  }
  *out = s;
  return 0;
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
  ice->rbuf = malloc(sizeof(*ice->rbuf) * RECV_BATCH);
  ice->seed = sfu_random_u32();
  if (!ice->rbuf || map_init(&ice->by_addr, 64) != 0 || map_init(&ice->by_ufrag, 64) != 0) {
    rv = SFU_ENOMEM;
    goto fail;
  }
  if (o->announce && o->announce[0]) {
    struct in6_addr tmp;
    if (strlen(o->announce) >= sizeof(ice->announce) ||
        (inet_pton(AF_INET, o->announce, &tmp) != 1 && inet_pton(AF_INET6, o->announce, &tmp) != 1)) {
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
    ice->nsocks++;
  }
  if (ice->nsocks == 0) {
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
  uv_timer_start(&ice->consent, on_consent, CONSENT_TICK_MS, CONSENT_TICK_MS);
  uv_unref((uv_handle_t *)&ice->prepare);
  uv_unref((uv_handle_t *)&ice->check);
  uv_unref((uv_handle_t *)&ice->consent);
  *out = ice;
  return 0;

fail:
  if (ice->handles) { /* uv_poll_init failed after others: close them */
    ice->closing = 1;
    ice->pending = ice->handles;
    for (int i = 0; i < ice->handles; i++) {
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
  for (sfu_ice_stream_t *st = ice->streams, *next; st; st = next) {
    next = st->next;
    st->ice = NULL; /* orphan: the owner destroys it later */
    st->prev = st->next = NULL;
  }
  ice->streams = ice->oldest = NULL;
  ice->pending = ice->handles;
  for (int i = 0; i < ice->nsocks; i++) {
    ice->socks[i]->poll.data = ice;
    uv_close((uv_handle_t *)&ice->socks[i]->poll, on_handle_closed);
  }
  uv_close((uv_handle_t *)&ice->prepare, on_handle_closed);
  uv_close((uv_handle_t *)&ice->check, on_handle_closed);
  uv_close((uv_handle_t *)&ice->consent, on_handle_closed);
}

/* ---- streams ------------------------------------------------------------ */

int sfu_ice_stream_create(sfu_ice_t *ice, const sfu_ice_cb_t *cb, sfu_ice_stream_t **out) {
  *out = NULL;
  if (!ice || ice->closing || !cb || !cb->recv || !cb->state) return SFU_EINVAL;
  if (ice->nstreams >= MAX_STREAMS) return SFU_EBUSY;
  sfu_ice_stream_t *st = calloc(1, sizeof(*st));
  if (!st) return SFU_ENOMEM;
  st->ice = ice;
  st->cb = *cb;
  int rv = new_credentials(ice, st);
  if (rv != 0) {
    free(st);
    return rv;
  }
  st->next = ice->streams;
  if (st->next)
    st->next->prev = st;
  else
    ice->oldest = st;
  ice->streams = st;
  ice->nstreams++;
  *out = st;
  return 0;
}

void sfu_ice_stream_destroy(sfu_ice_stream_t *st) {
  if (!st || st->dead) return;
  sfu_ice_t *ice = st->ice;
  st->dead = 1;
  if (!ice) { /* orphaned by sfu_ice_destroy() */
    free_stream(st);
    return;
  }
  forget_all(st);
  map_del(&ice->by_ufrag, ice->seed, st->ufrag, UFRAG_LEN);
  if (st->prev)
    st->prev->next = st->next;
  else
    ice->streams = st->next;
  if (st->next) st->next->prev = st->prev;
  if (ice->oldest == st) ice->oldest = st->prev;
  ice->nstreams--;
  /* `next` stays: a walk that is on this stream goes on from it. */
  if (ice->depth > 0) {
    st->dead_next = ice->dead;
    ice->dead = st;
  } else {
    free_stream(st);
  }
}

const char *sfu_ice_ufrag(const sfu_ice_stream_t *st) { return st->ufrag; }
const char *sfu_ice_pwd(const sfu_ice_stream_t *st) { return st->pwd; }

/* RFC 8445 5.1.2.1 with type preference 126 (host), local preference
 * 65535 - the address's index, component 1. */
int sfu_ice_local_candidates(sfu_ice_stream_t *st, char out[][200], int max) {
  sfu_ice_t *ice = st->ice;
  int n = 0;
  if (!ice) return 0;
  for (int i = 0; i < ice->nsocks && n < max; i++) {
    const lite_sock_t *s = ice->socks[i];
    uint32_t prio = (126u << 24) | ((uint32_t)(65535 - i) << 8) | (256 - 1);
    snprintf(out[n++], 200, "candidate:%d 1 udp %u %s %u typ host", i + 1, prio,
             ice->announce[0] ? ice->announce : s->ip, s->port);
  }
  return n;
}

int sfu_ice_set_remote(sfu_ice_stream_t *st, const char *ufrag, const char *pwd) {
  int restart = 0;
  if (!ufrag || !pwd || !ufrag[0] || !pwd[0]) return SFU_EINVAL;
  if (strlen(ufrag) > REMOTE_MAX || strlen(pwd) > REMOTE_MAX) return SFU_EINVAL;
  sfu_ice_t *ice = st->ice;
  if (!ice || st->dead) return SFU_EINVAL;
  if (st->remote_ufrag[0] && strcmp(st->remote_ufrag, ufrag) != 0) {
    int rv = new_credentials(ice, st);
    if (rv != 0) return rv;
    /* Only the selected pair stays usable until the new checks select. */
    for (int i = 0; i < st->nknown; i++) {
      if (st->has_sel && key_eq(&st->known[i].key, &st->sel_key)) continue;
      st->known[i].retired = 1;
      mslot_t *s = map_find(&ice->by_addr, ice->seed, &st->known[i].key, sizeof(addr_key_t));
      if (s) s->tag = 1;
    }
    st->nominated = 0;
    st->sel_prio = 0;
    ice->stats.restarts++;
    restart = 1;
    sfu_log(SFU_LOG_DEBUG, "ice", "stream %s: ICE restart by the peer", st->ufrag);
  }
  snprintf(st->remote_ufrag, sizeof(st->remote_ufrag), "%s", ufrag);
  return restart;
}

/* ---- remote candidates -------------------------------------------------- */

static int all_of(const char *s, const char *set, size_t min, size_t max) {
  size_t n = strlen(s);
  return n >= min && n <= max && strspn(s, set) == n;
}

static int number(const char *s, size_t maxdigits, unsigned long lo, unsigned long hi) {
  if (!all_of(s, "0123456789", 1, maxdigits)) return 0;
  unsigned long v = strtoul(s, NULL, 10);
  return v >= lo && v <= hi;
}

/*
 * RFC 8839 5.1:
 *   candidate:<foundation> <component-id> <transport> <priority>
 *             <connection-address> <port> typ <cand-type>
 *             [raddr <addr>] [rport <port>] *(<ext-name> <ext-value>)
 *
 * An ICE-lite agent never checks: it learns the peer's addresses from the
 * peer's checks. A candidate is only parsed, to refuse garbage. The
 * address may be an IP literal or a hostname (an mDNS ".local" name from a
 * browser: libnice refused those, with no benefit for a lite agent).
 */
int sfu_ice_add_remote_candidate(sfu_ice_stream_t *st, const char *cand) {
  static const char ice_chars[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  char buf[1024], *save = NULL, *f[8];
  if (!cand) return SFU_EINVAL;
  if (strncmp(cand, "a=", 2) == 0) cand += 2;
  if (strncmp(cand, "candidate:", 10) != 0 || strlen(cand) >= sizeof(buf)) return SFU_EINVAL;
  snprintf(buf, sizeof(buf), "%s", cand + 10);
  for (int i = 0; i < 8; i++) {
    f[i] = strtok_r(i ? NULL : buf, " ", &save);
    if (!f[i]) return SFU_EINVAL;
  }
  struct in6_addr ip;
  if (!all_of(f[0], ice_chars, 1, 32)) return SFU_EINVAL;
  if (!number(f[1], 3, 1, 256)) return SFU_EINVAL;
  if (strcasecmp(f[2], "udp") != 0 && strcasecmp(f[2], "tcp") != 0) return SFU_EINVAL;
  if (!number(f[3], 10, 1, 0xffffffffUL)) return SFU_EINVAL;
  if (inet_pton(AF_INET, f[4], &ip) != 1 && inet_pton(AF_INET6, f[4], &ip) != 1 &&
      !(all_of(f[4], "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-", 1, 253) &&
        strpbrk(f[4], "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-")))
    return SFU_EINVAL;
  if (!number(f[5], 5, 0, 65535)) return SFU_EINVAL;
  if (strcmp(f[6], "typ") != 0) return SFU_EINVAL;
  if (strcmp(f[7], "host") != 0 && strcmp(f[7], "srflx") != 0 && strcmp(f[7], "prflx") != 0 &&
      strcmp(f[7], "relay") != 0)
    return SFU_EINVAL;
  return 0;
}

/* ice.h: "media datagrams dropped for coming from another address than the
 * peer". With one socket per room, media from an address no stream
 * validated cannot be charged to a stream: the agent counts it
 * (drop_unknown) and the oldest live stream reports that count on top of
 * its own (media from its retired addresses), so the room's sum over its
 * participants -- its drop_foreign_source stat -- counts every foreign
 * datagram exactly once, whoever leaves. */
uint64_t sfu_ice_drop_foreign(const sfu_ice_stream_t *st) {
  const sfu_ice_t *ice = st->ice;
  uint64_t n = st->drop_foreign;
  if (ice && !st->dead && ice->oldest == st) n += ice->stats.drop_unknown;
  return n;
}
