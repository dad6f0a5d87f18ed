/*
 * icestate.c -- the room's ICE-lite state machine (icestate.h), without
 * sockets, loop or clock: sfu/net/icelite.c feeds it datagrams and ticks
 * and carries out what it answers. docs/internals/icelite.md has the
 * reasons and the tables.
 *
 * Role. The SFU is ICE-lite (RFC 8445 2.5) and controlled: it answers the
 * peers' Binding requests, learns each peer's address from them
 * (peer-reflexive), and the peer -- a full, controlling agent -- nominates
 * with USE-CANDIDATE. Two lite agents never connect on their own, so a
 * link between two room processes also checks: write_check() writes the
 * request a stream sends to its peer (the peer's machine, answering it,
 * validates and nominates the sender's address, exactly as for a client's
 * check), and the responses that come back are dropped and counted
 * (stun_responses): a stream is validated by its peer's checks, never by
 * the answers to its own. Sending them, and when, is the socket layer's.
 *
 * Demultiplexing by RFC 7983 first byte:
 *
 *   0..3     STUN: a Binding request is routed by the local half of its
 *            USERNAME ("<our ufrag>:<peer ufrag>") through the ufrag map,
 *            authenticated with that stream's password (MESSAGE-INTEGRITY)
 *            and FINGERPRINT, and answered (TRANSMIT). The source address
 *            becomes one of the stream's validated addresses (address map:
 *            address -> stream).
 *   anything else (DTLS 20..63, RTP/RTCP 128..191): routed by source
 *            address through the address map (one lookup) to DELIVER;
 *            from an address no stream validated, dropped and counted
 *            (drop_unknown); from an address the stream retired (ICE
 *            restart), dropped and counted on the stream (drop_foreign).
 *
 * Transports. An address value carries its transport: the source of a
 * UDP datagram, or the far end of a TCP connection whose RFC 4571 frames
 * the socket layer hands in one by one (ICE-TCP, RFC 6544). Both are
 * validated, selected and kept by consent alike; the machine never sees a
 * connection, only its address, and the socket layer tells it when one is
 * gone (forget()): the address is dropped, and with it the stream's pair
 * if it was the selected one. A TRANSMIT names the stream that
 * authenticated the request, so the socket layer can bind a connection
 * to its participant by its first check.
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
 * Error responses are rate limited (ERR_PER_S a second for the machine): a
 * flood of bad checks with spoofed sources must not make the room a
 * reflector.
 *
 * Consent (RFC 7675). A connected stream whose selected pair has had no
 * authenticated check for consent_ms (30 s) loses consent at the next
 * tick: its pair is dropped, so its owner stops sending; a later check
 * selects a pair and reports connected again.
 *
 * ICE restart. set_remote() with another remote ufrag generates new local
 * credentials (the old ones get 401 from then on) and retires the
 * validated addresses except the selected one, which keeps carrying media
 * until the peer's checks under the new credentials select a pair (RFC
 * 8445 9: media continues on the previous pair during a restart).
 *
 * Outputs. input() returns what to do with one datagram, with no callback:
 * on the media path the only cost over the lookup is that return. What
 * changes a stream's state (connected, selected pair) marks the stream on
 * a FIFO of changed streams (intrusive: a stream is on it at most once, so
 * it is bounded and allocation-free); poll_event() takes them off and says
 * where each stream stands, folding changes in between. Since nothing is
 * called back, a stream may be destroyed at any time but inside a call of
 * this file: destroy just unlinks it, and its event with it.
 *
 * Time. Every input carries now_ms; the machine keeps the latest and takes
 * an earlier one as equal to it, so its differences never wrap.
 *
 * Memory: two open-addressing maps (48-byte slots, load <= 1/2, grown on
 * STUN validation only, never on the media path, at most MAP_MAX_SLOTS
 * slots). Per stream ~930 bytes. Nothing is allocated per datagram.
 */
#include <stdlib.h>
#include <string.h>

#include "sfu/net/icestate.h"
#include "sfu/base/bytes.h"
#include "sfu/base/log.h"
#include "sfu/base/sfu.h"
#include "sfu/media/stun.h"

#define UFRAG_LEN SFU_ICESTATE_UFRAG_LEN
#define PWD_LEN SFU_ICESTATE_PWD_LEN
#define REMOTE_MAX SFU_ICESTATE_REMOTE_MAX
#define MAX_KNOWN SFU_ICESTATE_MAX_KNOWN
#define MAX_STREAMS SFU_ICESTATE_MAX_STREAMS
#define STALE_MS SFU_ICESTATE_STALE_MS
#define ERR_PER_S SFU_ICESTATE_ERR_PER_S
#define MAP_MAX_SLOTS 65536u /* per map: load <= 1/2 of this */

typedef sfu_icestate_addr_t addr_t;

_Static_assert(sizeof(addr_t) == 20, "sfu_icestate_addr_t is hashed as 20 bytes");

/* ---- maps ------------------------------------------------------------------- */

/*
 * Open addressing, linear probing, backward-shift deletion (no
 * tombstones). Keys are up to 32 bytes (an address or a ufrag); the hash
 * is seeded per machine. A slot with hash 0 is empty. Load is kept
 * <= 1/2; the table doubles on insert up to MAP_MAX_SLOTS and then refuses.
 */
typedef struct {
  uint32_t hash;   /* 0: empty */
  uint8_t klen;    /* key length in bytes */
  uint8_t tag;     /* the address map: 1 = retired */
  uint8_t key[32]; /* the key, klen bytes, the rest 0 */
  void *val;       /* the stream */
} mslot_t;

/* A map: its slot array, owned. */
typedef struct {
  mslot_t *slots; /* mask + 1 of them */
  uint32_t mask;  /* slots - 1 (a power of two minus one) */
  uint32_t used;  /* slots in use */
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

/* ---- structures ------------------------------------------------------------- */

/* A validated remote address of a stream, in the stream's known[]. */
typedef struct {
  addr_t key;       /* also the address map's key */
  uint8_t sock;     /* local socket it was seen on */
  uint8_t retired;  /* restart: media from it is refused */
  uint64_t seen_ms; /* last authenticated check from it */
} known_t;

/* One stream (a participant's one component): allocated by
 * sfu_icestate_stream_create(), owned by the machine, freed by
 * sfu_icestate_stream_destroy() or with the machine. */
struct sfu_icestate_stream_s {
  sfu_icestate_t *sm;                    /* owner */
  void *user;                            /* the owner's pointer, given back */
  sfu_icestate_stream_t *prev, *next;    /* the machine's streams, newest first */
  sfu_icestate_stream_t *ev_prev, *ev_next; /* the queue of changed streams */
  int queued;                            /* on that queue */
  char ufrag[UFRAG_LEN + 1];             /* local credentials: ufrag */
  char pwd[PWD_LEN + 1];                 /* ... and password */
  char remote_ufrag[REMOTE_MAX + 1];     /* to detect a peer's restart; "" before */
  char remote_pwd[REMOTE_MAX + 1];       /* the peer's password, keys write_check(); "" before */
  int connected;                         /* a pair was selected, consent holds */
  int reported;                          /* `connected` as the last event gave it */
  int nominated;                         /* the selected pair came with USE-CANDIDATE */
  int has_sel;                           /* a selected pair exists */
  addr_t sel_key;                        /* the selected pair: remote address */
  int sel_sock;                          /* ... and local socket */
  uint32_t sel_prio;                     /* PRIORITY of its nominating check, 0 before */
  uint64_t sel_seen_ms;                  /* its last authenticated check (consent) */
  known_t known[MAX_KNOWN];              /* validated addresses, the selected one too */
  int nknown;                            /* entries used in known[] */
  uint64_t drop_foreign;                 /* media from a retired address */
};

/* The machine: allocated by sfu_icestate_create(), owned by its caller
 * (icelite.c's agent), freed by sfu_icestate_destroy(). */
struct sfu_icestate_s {
  uint32_t seed;                         /* map hash seed, random */
  uint64_t tie_breaker;                  /* ICE-CONTROLLING of write_check(), random */
  map_t by_addr;                         /* addr_t -> stream (tag: retired) */
  map_t by_ufrag;                        /* local ufrag -> stream */
  sfu_icestate_stream_t *streams;        /* newest first */
  sfu_icestate_stream_t *oldest;         /* the list's tail */
  int nstreams;                          /* streams alive */
  sfu_icestate_stream_t *ev_head;        /* changed streams, oldest change first */
  sfu_icestate_stream_t *ev_tail;        /* ... the latest change */
  uint64_t now_ms;                       /* latest time given, 0 before */
  uint64_t consent_ms;                   /* consent timeout */
  uint64_t err_window_ms;                /* start of the error-response second */
  int err_in_window;                     /* error responses in it so far */
  uint8_t tx[SFU_ICESTATE_TX_MAX];       /* the response of the last TRANSMIT */
  sfu_icestate_stats_t stats;            /* counters */
};

/* Time as an input: never earlier than a time already seen. */
static uint64_t clock_in(sfu_icestate_t *sm, uint64_t now) {
  if (now < sm->now_ms) return sm->now_ms;
  sm->now_ms = now;
  return now;
}

static int key_eq(const addr_t *a, const addr_t *b) {
  return memcmp(a, b, sizeof(*a)) == 0;
}

/* ---- events ----------------------------------------------------------------- */

/* The stream's connected state or selected pair changed: queue it once. */
static void mark(sfu_icestate_stream_t *s) {
  sfu_icestate_t *sm = s->sm;
  if (s->queued) return;
  s->queued = 1;
  s->ev_next = NULL;
  s->ev_prev = sm->ev_tail;
  if (sm->ev_tail)
    sm->ev_tail->ev_next = s;
  else
    sm->ev_head = s;
  sm->ev_tail = s;
}

static void unqueue(sfu_icestate_stream_t *s) {
  sfu_icestate_t *sm = s->sm;
  if (!s->queued) return;
  if (s->ev_prev)
    s->ev_prev->ev_next = s->ev_next;
  else
    sm->ev_head = s->ev_next;
  if (s->ev_next)
    s->ev_next->ev_prev = s->ev_prev;
  else
    sm->ev_tail = s->ev_prev;
  s->ev_prev = s->ev_next = NULL;
  s->queued = 0;
}

static void pair_of(const sfu_icestate_stream_t *s, sfu_icestate_pair_t *out) {
  memset(out, 0, sizeof(*out));
  if (!s->has_sel) return;
  out->remote = s->sel_key;
  out->sock = s->sel_sock;
  out->nominated = s->nominated;
  out->priority = s->sel_prio;
  out->checked_ms = s->sel_seen_ms;
}

int sfu_icestate_poll_event(sfu_icestate_t *sm, sfu_icestate_event_t *ev) {
  sfu_icestate_stream_t *s = sm->ev_head;
  if (!s) return 0;
  unqueue(s);
  ev->stream = s;
  ev->user = s->user;
  ev->state = s->connected != s->reported ? s->connected : -1;
  s->reported = s->connected;
  ev->has_pair = s->has_sel;
  pair_of(s, &ev->pair);
  return 1;
}

/* ---- credentials ------------------------------------------------------------ */

/* ICE characters (RFC 8445 5.3): 64 of them, so a random byte & 63 is
 * uniform. */
static void random_ice_chars(char *out, size_t n) {
  static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  uint8_t raw[64];
  sfu_random_bytes(raw, n);
  for (size_t i = 0; i < n; i++) out[i] = alpha[raw[i] & 63];
  out[n] = '\0';
}

/* New local credentials, the ufrag unique in the machine, in the map. */
static int new_credentials(sfu_icestate_t *sm, sfu_icestate_stream_t *s) {
  char u[UFRAG_LEN + 1];
  for (int tries = 0; tries < 16; tries++) {
    random_ice_chars(u, UFRAG_LEN);
    if (map_find(&sm->by_ufrag, sm->seed, u, UFRAG_LEN)) continue;
    int rv = map_put(&sm->by_ufrag, sm->seed, u, UFRAG_LEN, s, 0);
    if (rv != 0) return rv;
    if (s->ufrag[0]) map_del(&sm->by_ufrag, sm->seed, s->ufrag, UFRAG_LEN);
    memcpy(s->ufrag, u, sizeof(u));
    random_ice_chars(s->pwd, PWD_LEN);
    return 0;
  }
  return SFU_EBUSY;
}

/* ---- validated addresses ---------------------------------------------------- */

static int known_find(const sfu_icestate_stream_t *s, const addr_t *k) {
  for (int i = 0; i < s->nknown; i++)
    if (key_eq(&s->known[i].key, k)) return i;
  return -1;
}

/* Forgets known[i]: out of the address map (if it still maps here); if it
 * was the selected pair, the stream has none now. */
static void known_remove(sfu_icestate_stream_t *s, int i) {
  sfu_icestate_t *sm = s->sm;
  mslot_t *slot = map_find(&sm->by_addr, sm->seed, &s->known[i].key, sizeof(addr_t));
  if (slot && slot->val == s) map_del(&sm->by_addr, sm->seed, &s->known[i].key, sizeof(addr_t));
  if (s->has_sel && key_eq(&s->sel_key, &s->known[i].key)) {
    s->has_sel = 0;
    mark(s);
  }
  s->known[i] = s->known[--s->nknown];
}

/* Makes `k` (seen on socket `sock`) a validated address of `s`: taken
 * from another stream if it was one of its (an authenticated check is the
 * latest word on who is behind an address), an entry evicted if the list
 * is full (retired first, then the oldest, never the selected one).
 * Returns its index, or -1 (address map full). */
static int known_add(sfu_icestate_stream_t *s, const addr_t *k, int sock, uint64_t now) {
  sfu_icestate_t *sm = s->sm;
  int i = known_find(s, k);
  if (i < 0) {
    mslot_t *slot = map_find(&sm->by_addr, sm->seed, k, sizeof(*k));
    if (slot && slot->val != s) {
      sfu_icestate_stream_t *other = slot->val;
      int j = known_find(other, k);
      if (j >= 0) known_remove(other, j);
    }
    if (s->nknown == MAX_KNOWN) {
      int victim = -1;
      for (int j = 0; j < s->nknown; j++) {
        if (s->has_sel && key_eq(&s->known[j].key, &s->sel_key)) continue;
        if (victim < 0 || s->known[j].retired > s->known[victim].retired ||
            (s->known[j].retired == s->known[victim].retired &&
             s->known[j].seen_ms < s->known[victim].seen_ms))
          victim = j;
      }
      known_remove(s, victim);
    }
    if (map_put(&sm->by_addr, sm->seed, k, sizeof(*k), s, 0) != 0) {
      sm->stats.addr_map_full++;
      return -1;
    }
    i = s->nknown++;
    s->known[i].key = *k;
  } else if (s->known[i].retired) {
    mslot_t *slot = map_find(&sm->by_addr, sm->seed, k, sizeof(*k));
    if (slot) slot->tag = 0;
  }
  s->known[i].sock = (uint8_t)sock;
  s->known[i].retired = 0;
  s->known[i].seen_ms = now;
  return i;
}

static void select_pair(sfu_icestate_stream_t *s, int i) {
  s->has_sel = 1;
  s->sel_key = s->known[i].key;
  s->sel_sock = s->known[i].sock;
  s->sel_seen_ms = s->known[i].seen_ms;
  mark(s);
}

/* An authenticated check from `k` on socket `sock`: validate, nominate,
 * queue what changed. */
static void on_valid_check(sfu_icestate_stream_t *s, int sock, const addr_t *k,
                           const sfu_stun_msg_t *m, uint64_t now) {
  int i = known_add(s, k, sock, now);
  if (i < 0) return;
  int on_sel = s->has_sel && key_eq(&s->sel_key, k) && s->sel_sock == sock;
  if (on_sel) {
    s->sel_seen_ms = now;
    if (m->use_candidate && !s->nominated) {
      s->nominated = 1;
      s->sel_prio = m->priority;
    }
  } else if (m->use_candidate) {
    if (!s->has_sel || !s->nominated || m->priority >= s->sel_prio ||
        now - s->sel_seen_ms > STALE_MS) {
      select_pair(s, i);
      s->nominated = 1;
      s->sel_prio = m->priority;
      on_sel = 1;
    }
  } else if (!s->has_sel) {
    select_pair(s, i); /* the first valid check, until a nomination */
    on_sel = 1;
  }
  if (on_sel && !s->connected) {
    s->connected = 1;
    mark(s);
    sfu_log(SFU_LOG_DEBUG, "ice", "stream %s: connected%s", s->ufrag,
            s->nominated ? " (nominated)" : "");
  }
}

/* ---- STUN ------------------------------------------------------------------- */

/* A response in sm->tx (n bytes, or a writer's error) to send; `s` is the
 * stream whose password authenticated the request, NULL if none did. */
static sfu_icestate_action_t transmit(sfu_icestate_t *sm, int sock, const addr_t *to, int n,
                                      const sfu_icestate_stream_t *s, sfu_icestate_out_t *out) {
  if (n <= 0) {
    sm->stats.stun_write_fail++;
    return SFU_ICESTATE_NONE;
  }
  out->user = s ? s->user : NULL;
  out->sock = sock;
  out->to = *to;
  out->data = sm->tx;
  out->len = (size_t)n;
  return SFU_ICESTATE_TRANSMIT;
}

/*
 * The Binding success response, written from the address value (the STUN
 * writer takes a sockaddr, which this file does not use). RFC 8489 14.2:
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |0 0 0 0 0 0 0 0|    Family     |         X-Port                |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                X-Address (Variable)
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * Family 0x01 (IPv4) or 0x02 (IPv6); X-Port is the port xor the cookie's
 * top 16 bits; X-Address the address xor the magic cookie (IPv4) or xor
 * the cookie followed by the transaction id (IPv6). The same bytes as
 * sfu_stun_binding_success() (tests/test_icestate.c compares them).
 */
static int write_success(uint8_t *buf, size_t cap, const uint8_t *tid, const addr_t *a,
                         const char *pwd) {
  uint8_t mask[16], v[20];
  size_t alen = a->fam == 4 ? 4 : 16;
  sfu_wr32(mask, SFU_STUN_MAGIC);
  memcpy(mask + 4, tid, SFU_STUN_TID_LEN);
  v[0] = 0;
  v[1] = a->fam == 4 ? 1 : 2;
  sfu_wr16(v + 2, (uint16_t)(a->port ^ (SFU_STUN_MAGIC >> 16)));
  for (size_t i = 0; i < alen; i++) v[4 + i] = a->ip[i] ^ mask[i];
  sfu_stun_writer_t w;
  sfu_stun_writer_init(&w, buf, cap, SFU_STUN_BINDING_SUCCESS, tid);
  sfu_stun_put(&w, SFU_STUN_ATTR_XOR_MAPPED_ADDRESS, v, 4 + alen);
  sfu_stun_put_integrity(&w, pwd, PWD_LEN);
  sfu_stun_put_fingerprint(&w);
  return sfu_stun_finish(&w);
}

/* An error response, at most ERR_PER_S a second: a flood of bad checks
 * with spoofed sources must not turn the room into a reflector (our
 * errors are smaller than the checks anyway). Signed only once the
 * request was authenticated (`s` given). */
static sfu_icestate_action_t error_response(sfu_icestate_t *sm, int sock, const addr_t *to,
                                            const sfu_stun_msg_t *m, int code,
                                            const sfu_icestate_stream_t *s, uint64_t now,
                                            sfu_icestate_out_t *out) {
  if (now - sm->err_window_ms >= 1000) {
    sm->err_window_ms = now;
    sm->err_in_window = 0;
  }
  if (sm->err_in_window >= ERR_PER_S) {
    sm->stats.stun_err_limited++;
    return SFU_ICESTATE_NONE;
  }
  sm->err_in_window++;
  int n = sfu_stun_binding_error(sm->tx, sizeof(sm->tx), m->tid, code, m->unknown,
                                 code == 420 ? m->n_unknown : 0, s ? s->pwd : NULL,
                                 s ? PWD_LEN : 0);
  return transmit(sm, sock, to, n, s, out);
}

/* Kept out of sfu_icestate_input() (noinline): inlined, its stack frame
 * and saved registers would be paid by every media datagram. */
__attribute__((noinline)) static sfu_icestate_action_t on_stun(sfu_icestate_t *sm, int sock,
                                                               const addr_t *from,
                                                               const uint8_t *buf, size_t len,
                                                               uint64_t now,
                                                               sfu_icestate_out_t *out) {
  sfu_stun_msg_t m;
  int n = sfu_stun_parse(buf, len, &m, NULL);
  if (n < 0 || (size_t)n != len) {
    sm->stats.stun_malformed++;
    return SFU_ICESTATE_NONE;
  }
  /* ICE puts FINGERPRINT in every STUN message (RFC 8445 7.2.2); without
   * it, or wrong, this is not a check of ours: drop without answering. */
  if (sfu_stun_check_fingerprint(&m) != 0) {
    sm->stats.stun_fingerprint++;
    return SFU_ICESTATE_NONE;
  }
  if (m.cls == SFU_STUN_INDICATION) { /* keepalives */
    sm->stats.stun_ignored++;
    return SFU_ICESTATE_NONE;
  }
  /* Answers to the checks of write_check(): the peer's own checks are what
   * validate a stream, so they are dropped (no request of ours is matched
   * to them); not an error of the peer's, and never answered. */
  if (m.cls != SFU_STUN_REQUEST) {
    sm->stats.stun_responses++;
    return SFU_ICESTATE_NONE;
  }
  sm->stats.stun_requests++;
  const uint8_t *u = m.data + m.username_off;
  const uint8_t *colon = m.username_off ? memchr(u, ':', m.username_len) : NULL;
  if (m.method != SFU_STUN_METHOD_BINDING || !m.integrity_off || !colon) {
    sm->stats.stun_400++;
    return error_response(sm, sock, from, &m, 400, NULL, now, out);
  }
  size_t ulen = (size_t)(colon - u);
  mslot_t *slot = ulen == UFRAG_LEN ? map_find(&sm->by_ufrag, sm->seed, u, ulen) : NULL;
  sfu_icestate_stream_t *s = slot ? slot->val : NULL;
  if (!s) {
    sm->stats.stun_401_user++;
    return error_response(sm, sock, from, &m, 401, NULL, now, out);
  }
  int rv = sfu_stun_check_integrity(&m, s->pwd, PWD_LEN);
  if (rv != 0) {
    if (rv != SFU_EACCES) return SFU_ICESTATE_NONE; /* OpenSSL failed: no verdict */
    sm->stats.stun_401_mac++;
    return error_response(sm, sock, from, &m, 401, NULL, now, out);
  }
  if (m.n_unknown > 0) {
    sm->stats.stun_420++;
    return error_response(sm, sock, from, &m, 420, s, now, out);
  }
  if (m.controlled) {
    sm->stats.stun_487++;
    return error_response(sm, sock, from, &m, 487, s, now, out);
  }
  n = write_success(sm->tx, sizeof(sm->tx), m.tid, from, s->pwd);
  sm->stats.stun_ok++;
  on_valid_check(s, sock, from, &m, now);
  return transmit(sm, sock, from, n, s, out);
}

/* ---- inputs ----------------------------------------------------------------- */

sfu_icestate_action_t sfu_icestate_input(sfu_icestate_t *sm, int sock,
                                         const sfu_icestate_addr_t *from, const uint8_t *buf,
                                         size_t len, uint64_t now_ms, sfu_icestate_out_t *out) {
  if (len > 0 && buf[0] < 4) /* RFC 7983: STUN */
    return on_stun(sm, sock, from, buf, len, clock_in(sm, now_ms), out);
  mslot_t *slot = map_find(&sm->by_addr, sm->seed, from, sizeof(*from));
  if (!slot) {
    sm->stats.drop_unknown++;
    return SFU_ICESTATE_NONE;
  }
  sfu_icestate_stream_t *s = slot->val;
  if (slot->tag) {
    s->drop_foreign++;
    return SFU_ICESTATE_NONE;
  }
  out->user = s->user;
  return SFU_ICESTATE_DELIVER;
}

int sfu_icestate_forget(sfu_icestate_t *sm, int sock, const sfu_icestate_addr_t *addr) {
  mslot_t *slot = map_find(&sm->by_addr, sm->seed, addr, sizeof(*addr));
  if (!slot) return 0;
  sfu_icestate_stream_t *s = slot->val;
  int i = known_find(s, addr);
  if (i < 0 || s->known[i].sock != sock) return 0; /* the address is another path's */
  if (s->has_sel && key_eq(&s->sel_key, addr)) { /* its pair goes: no nomination stands */
    s->nominated = 0;
    s->sel_prio = 0;
  }
  known_remove(s, i); /* drops the pair (queues the stream) if it was the selected one */
  return 1;
}

void sfu_icestate_tick(sfu_icestate_t *sm, uint64_t now_ms) {
  uint64_t now = clock_in(sm, now_ms);
  for (sfu_icestate_stream_t *s = sm->streams; s; s = s->next) {
    if (!s->connected || now - s->sel_seen_ms <= sm->consent_ms) continue;
    sfu_log(SFU_LOG_INFO, "ice", "stream %s: consent lost (no check for %llu ms)", s->ufrag,
            (unsigned long long)(now - s->sel_seen_ms));
    sm->stats.consent_lost++;
    s->connected = 0;
    s->has_sel = 0; /* RFC 7675: stop sending */
    s->nominated = 0;
    mark(s);
  }
}

uint64_t sfu_icestate_next_timeout(const sfu_icestate_t *sm) {
  uint64_t t = UINT64_MAX;
  for (const sfu_icestate_stream_t *s = sm->streams; s; s = s->next)
    if (s->connected && s->sel_seen_ms + sm->consent_ms + 1 < t)
      t = s->sel_seen_ms + sm->consent_ms + 1;
  return t;
}

const sfu_icestate_stats_t *sfu_icestate_stats(const sfu_icestate_t *sm) { return &sm->stats; }

void sfu__icestate_set_consent_timeout(sfu_icestate_t *sm, uint64_t ms) { sm->consent_ms = ms; }

/* ---- the machine ------------------------------------------------------------ */

int sfu_icestate_create(sfu_icestate_t **out) {
  *out = NULL;
  sfu_icestate_t *sm = calloc(1, sizeof(*sm));
  if (!sm) return SFU_ENOMEM;
  sm->seed = sfu_random_u32();
  sfu_random_bytes(&sm->tie_breaker, sizeof(sm->tie_breaker));
  sm->consent_ms = SFU_ICESTATE_CONSENT_MS;
  if (map_init(&sm->by_addr, 64) != 0 || map_init(&sm->by_ufrag, 64) != 0) {
    free(sm->by_addr.slots);
    free(sm);
    return SFU_ENOMEM;
  }
  *out = sm;
  return 0;
}

void sfu_icestate_destroy(sfu_icestate_t *sm) {
  if (!sm) return;
  while (sm->streams) {
    sfu_icestate_stream_t *s = sm->streams;
    sm->streams = s->next;
    free(s);
  }
  free(sm->by_addr.slots);
  free(sm->by_ufrag.slots);
  free(sm);
}

/* ---- streams ---------------------------------------------------------------- */

int sfu_icestate_stream_create(sfu_icestate_t *sm, void *user, sfu_icestate_stream_t **out) {
  *out = NULL;
  if (sm->nstreams >= MAX_STREAMS) return SFU_EBUSY;
  sfu_icestate_stream_t *s = calloc(1, sizeof(*s));
  if (!s) return SFU_ENOMEM;
  s->sm = sm;
  s->user = user;
  int rv = new_credentials(sm, s);
  if (rv != 0) {
    free(s);
    return rv;
  }
  s->next = sm->streams;
  if (s->next)
    s->next->prev = s;
  else
    sm->oldest = s;
  sm->streams = s;
  sm->nstreams++;
  *out = s;
  return 0;
}

void sfu_icestate_stream_destroy(sfu_icestate_stream_t *s) {
  if (!s) return;
  sfu_icestate_t *sm = s->sm;
  while (s->nknown) known_remove(s, s->nknown - 1);
  unqueue(s); /* after known_remove, which may have queued it */
  map_del(&sm->by_ufrag, sm->seed, s->ufrag, UFRAG_LEN);
  if (s->prev)
    s->prev->next = s->next;
  else
    sm->streams = s->next;
  if (s->next)
    s->next->prev = s->prev;
  if (sm->oldest == s) sm->oldest = s->prev;
  sm->nstreams--;
  free(s);
}

const char *sfu_icestate_ufrag(const sfu_icestate_stream_t *s) { return s->ufrag; }
const char *sfu_icestate_pwd(const sfu_icestate_stream_t *s) { return s->pwd; }

int sfu_icestate_set_remote(sfu_icestate_stream_t *s, const char *ufrag, const char *pwd) {
  int restart = 0;
  if (!ufrag || !pwd || !ufrag[0] || !pwd[0]) return SFU_EINVAL;
  if (strlen(ufrag) > REMOTE_MAX || strlen(pwd) > REMOTE_MAX) return SFU_EINVAL;
  sfu_icestate_t *sm = s->sm;
  if (s->remote_ufrag[0] && strcmp(s->remote_ufrag, ufrag) != 0) {
    int rv = new_credentials(sm, s);
    if (rv != 0) return rv;
    /* Only the selected pair stays usable until the new checks select. */
    for (int i = 0; i < s->nknown; i++) {
      if (s->has_sel && key_eq(&s->known[i].key, &s->sel_key)) continue;
      s->known[i].retired = 1;
      mslot_t *slot = map_find(&sm->by_addr, sm->seed, &s->known[i].key, sizeof(addr_t));
      if (slot) slot->tag = 1;
    }
    s->nominated = 0;
    s->sel_prio = 0;
    sm->stats.restarts++;
    restart = 1;
    sfu_log(SFU_LOG_DEBUG, "ice", "stream %s: ICE restart by the peer", s->ufrag);
  }
  memcpy(s->remote_ufrag, ufrag, strlen(ufrag) + 1);
  memcpy(s->remote_pwd, pwd, strlen(pwd) + 1);
  return restart;
}

const char *sfu_icestate_remote_ufrag(const sfu_icestate_stream_t *s) { return s->remote_ufrag; }

/*
 * A Binding request (RFC 8445 7.1.1 and 7.2.2; RFC 8489 14):
 *
 *   USERNAME          "<remote ufrag>:<local ufrag>"
 *   PRIORITY          the caller's
 *   ICE-CONTROLLING   the machine's tie-breaker: the peer, lite too, only
 *                     refuses ICE-CONTROLLED (487), so both ends of a link
 *                     send ICE-CONTROLLING and each nominates its own pair
 *   USE-CANDIDATE     every check nominates (aggressive nomination): the
 *                     peer keeps the highest PRIORITY that keeps coming
 *   MESSAGE-INTEGRITY HMAC-SHA1 keyed with the remote password
 *   FINGERPRINT
 */
int sfu_icestate_write_check(const sfu_icestate_stream_t *s, uint8_t *buf, size_t cap,
                             uint32_t priority) {
  uint8_t tid[SFU_STUN_TID_LEN];
  char user[REMOTE_MAX + 1 + UFRAG_LEN + 1];
  if (!s->remote_ufrag[0] || !s->remote_pwd[0]) return SFU_EAGAIN;
  size_t rlen = strlen(s->remote_ufrag);
  memcpy(user, s->remote_ufrag, rlen);
  user[rlen] = ':';
  memcpy(user + rlen + 1, s->ufrag, UFRAG_LEN);
  sfu_random_bytes(tid, sizeof(tid));
  sfu_stun_writer_t w;
  sfu_stun_writer_init(&w, buf, cap, SFU_STUN_BINDING_REQUEST, tid);
  sfu_stun_put(&w, SFU_STUN_ATTR_USERNAME, user, rlen + 1 + UFRAG_LEN);
  sfu_stun_put_u32(&w, SFU_STUN_ATTR_PRIORITY, priority);
  sfu_stun_put_u64(&w, SFU_STUN_ATTR_ICE_CONTROLLING, s->sm->tie_breaker);
  sfu_stun_put(&w, SFU_STUN_ATTR_USE_CANDIDATE, NULL, 0);
  sfu_stun_put_integrity(&w, s->remote_pwd, strlen(s->remote_pwd));
  sfu_stun_put_fingerprint(&w);
  return sfu_stun_finish(&w);
}

int sfu_icestate_selected(const sfu_icestate_stream_t *s, sfu_icestate_pair_t *out) {
  pair_of(s, out);
  return s->has_sel;
}

int sfu_icestate_connected(const sfu_icestate_stream_t *s) { return s->connected; }
uint64_t sfu_icestate_drop_foreign(const sfu_icestate_stream_t *s) { return s->drop_foreign; }
void *sfu_icestate_user(const sfu_icestate_stream_t *s) { return s->user; }

sfu_icestate_stream_t *sfu_icestate_streams(const sfu_icestate_t *sm) { return sm->streams; }
sfu_icestate_stream_t *sfu_icestate_stream_next(const sfu_icestate_stream_t *s) { return s->next; }
sfu_icestate_stream_t *sfu_icestate_oldest(const sfu_icestate_t *sm) { return sm->oldest; }
