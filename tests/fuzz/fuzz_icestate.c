/*
 * fuzz_icestate.c -- libFuzzer target for sfu/net/icestate.c, the ICE-lite
 * state machine: untrusted datagrams, and what peers can make it do with
 * checks it accepts.
 *
 * Each input is a script run against a fresh machine with two streams (up
 * to eight: enough validated addresses to grow the address map), 256 peer
 * addresses (half IPv4, half IPv6; in pairs of the same ip:port over UDP
 * and over TCP) and a simulated clock. One byte picks the operation, the
 * next ones its arguments:
 *
 *   0  a raw datagram: address, socket and repeat count (up to 64 times
 *      in the same millisecond: the error-response limit), length, bytes
 *      (anything: STUN, broken STUN, media, empty)
 *   1  a check built by the harness for a stream: address, socket,
 *      flags (USE-CANDIDATE, ICE-CONTROLLED, wrong password, no
 *      FINGERPRINT, unknown attribute, the credentials before the last
 *      restart, an attribute from the input, no MESSAGE-INTEGRITY),
 *      priority
 *   2  media from an address
 *   3  time passes (up to ~11 minutes), then a tick
 *   4  a restart: set_remote() with one of a few remote ufrags
 *   5  a stream destroyed, or created in a free slot
 *   6  events polled after every operation, or left to pile up; or an
 *      address forgotten (its TCP connection closed) on a socket
 *   7  a tick at next_timeout()
 *
 * After every operation the machine's invariants hold (each validated
 * address maps to its stream and only those are mapped; a selected pair
 * is validated; the ufrag map has each live stream once; the event queue
 * holds live streams once each; no consent deadline is overdue, since
 * time only moves with a tick), and every output is checked: a
 * TRANSMIT is a STUN response to the request's transaction with a good
 * FINGERPRINT, to the request's source and socket, signed with the
 * stream's password when it is a success to a harness check, whose
 * XOR-MAPPED-ADDRESS is that source, naming the stream that authenticated
 * it (every success does) and signed with that stream's password; a
 * forget drops exactly a known address of that socket (and the pair it
 * carried, not the connected state); a DELIVER names a live stream that
 * validated the source and did not retire it; events name live streams
 * and alternate connected / lost. Any broken property aborts.
 *
 * Build by hand:
 *   clang -g -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -I. \
 *     tests/fuzz/fuzz_icestate.c sfu/media/stun.c sfu/base/log.c \
 *     sfu/base/err.c sfu/base/rand.c -lcrypto -o /tmp/ficestate
 *   /tmp/ficestate -max_total_time=60 /tmp/scratch tests/fuzz/corpus/icestate
 */
#include "sfu/net/icestate.c"
#include "tests/fuzz/check.h"

#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SLOTS 8
#define ADDRS 256

/* One stream as the harness sees it. */
typedef struct {
  sfu_icestate_stream_t *s;    /* NULL: free slot */
  int connected;               /* from the events */
  char old_ufrag[UFRAG_LEN + 1]; /* credentials before the last restart */
  char old_pwd[PWD_LEN + 1];
} slot_t;

/* The script being run and the world it acts on. */
typedef struct {
  const uint8_t *p, *end; /* the script's unread bytes */
  sfu_icestate_t *sm;
  slot_t slot[SLOTS];
  sfu_icestate_addr_t addr[ADDRS];
  uint64_t now;           /* simulated milliseconds */
  int poll;               /* poll events after each operation */
  uint32_t tid_seq;
} world_t;

static uint8_t byte(world_t *w) { return w->p < w->end ? *w->p++ : 0; }

static void check_transmit(world_t *w, int sock, const sfu_icestate_addr_t *from,
                           const uint8_t *tid, const sfu_icestate_out_t *out) {
  CHECK(out->sock == sock);
  CHECK(memcmp(&out->to, from, sizeof(*from)) == 0);
  CHECK(out->len >= SFU_STUN_HEADER_LEN && out->len <= SFU_ICESTATE_TX_MAX);
  CHECK(out->data == w->sm->tx);
  sfu_stun_msg_t r;
  CHECK(sfu_stun_parse(out->data, out->len, &r, NULL) == (int)out->len);
  CHECK(r.type == SFU_STUN_BINDING_SUCCESS || r.type == SFU_STUN_BINDING_ERROR);
  CHECK(memcmp(r.tid, tid, SFU_STUN_TID_LEN) == 0);
  CHECK(sfu_stun_check_fingerprint(&r) == 0);
}

/* A success to a harness check: signed with `pwd`, maps the source. */
static void check_success(const sfu_icestate_out_t *out, const char *pwd) {
  sfu_stun_msg_t r;
  struct sockaddr_storage ss;
  CHECK(sfu_stun_parse(out->data, out->len, &r, NULL) == (int)out->len);
  if (r.type != SFU_STUN_BINDING_SUCCESS) return;
  CHECK(sfu_stun_check_integrity(&r, pwd, strlen(pwd)) == 0);
  CHECK(sfu_stun_xor_addr(&r, &ss) == 0);
  if (out->to.fam == 4) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
    CHECK(ss.ss_family == AF_INET && ntohs(in->sin_port) == out->to.port);
    CHECK(memcmp(&in->sin_addr, out->to.ip, 4) == 0);
  } else {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
    CHECK(ss.ss_family == AF_INET6 && ntohs(in6->sin6_port) == out->to.port);
    CHECK(memcmp(&in6->sin6_addr, out->to.ip, 16) == 0);
  }
}

static slot_t *slot_of(world_t *w, void *user) {
  for (int i = 0; i < SLOTS; i++)
    if (user == &w->slot[i]) {
      CHECK(w->slot[i].s != NULL);
      return &w->slot[i];
    }
  abort();
}

/* A DELIVER: a live stream that validated `from` and did not retire it. */
static void check_deliver(world_t *w, const sfu_icestate_addr_t *from, void *user) {
  slot_t *sl = slot_of(w, user);
  int i = known_find(sl->s, from);
  CHECK(i >= 0 && !sl->s->known[i].retired);
}

static void input(world_t *w, int sock, const sfu_icestate_addr_t *from, const uint8_t *buf,
                  size_t len, const char *pwd) {
  const sfu_icestate_stats_t *st = sfu_icestate_stats(w->sm);
  int media = len == 0 || buf[0] >= 4;
  /* Media does not touch the maps: the slot stays valid over the call. */
  const mslot_t *m = media ? map_find(&w->sm->by_addr, w->sm->seed, from, sizeof(*from)) : NULL;
  const sfu_icestate_stream_t *owner = m ? m->val : NULL;
  uint64_t unknown = st->drop_unknown, foreign = owner ? sfu_icestate_drop_foreign(owner) : 0;
  uint64_t stun_ok = st->stun_ok;
  sfu_icestate_out_t out;
  switch (sfu_icestate_input(w->sm, sock, from, buf, len, w->now, &out)) {
  case SFU_ICESTATE_DELIVER:
    CHECK(media && m && !m->tag && out.user == sfu_icestate_user(owner));
    check_deliver(w, from, out.user);
    break;
  case SFU_ICESTATE_TRANSMIT:
    CHECK(!media && len >= SFU_STUN_HEADER_LEN);
    check_transmit(w, sock, from, buf + 8, &out);
    if (pwd) check_success(&out, pwd);
    if (out.user) { /* authenticated: signed with that stream's password */
      sfu_stun_msg_t r;
      const char *spwd = sfu_icestate_pwd(slot_of(w, out.user)->s);
      CHECK(sfu_stun_parse(out.data, out.len, &r, NULL) == (int)out.len);
      CHECK(sfu_stun_check_integrity(&r, spwd, strlen(spwd)) == 0);
    }
    if (st->stun_ok != stun_ok) { /* a success: the source is validated */
      CHECK(out.user != NULL);
      const mslot_t *v = map_find(&w->sm->by_addr, w->sm->seed, from, sizeof(*from));
      CHECK((v != NULL && !v->tag) || st->addr_map_full > 0);
    }
    break;
  case SFU_ICESTATE_NONE:
    if (media)
      CHECK(m ? m->tag && sfu_icestate_drop_foreign(owner) == foreign + 1
              : st->drop_unknown == unknown + 1);
    break;
  default:
    abort();
  }
}

/* The machine's invariants. */
static void consistent(world_t *w) {
  const sfu_icestate_t *sm = w->sm;
  uint32_t known = 0;
  int streams = 0, queued = 0;
  const sfu_icestate_stream_t *last = NULL;
  for (const sfu_icestate_stream_t *s = sfu_icestate_streams(sm); s;
       s = sfu_icestate_stream_next(s)) {
    streams++;
    last = s;
    CHECK(s->nknown >= 0 && s->nknown <= MAX_KNOWN);
    for (int i = 0; i < s->nknown; i++) {
      mslot_t *m = map_find(&sm->by_addr, sm->seed, &s->known[i].key, sizeof(addr_t));
      CHECK(m && m->val == s && m->tag == s->known[i].retired);
      CHECK(s->known[i].seen_ms <= sm->now_ms);
      for (int j = 0; j < i; j++) CHECK(!key_eq(&s->known[i].key, &s->known[j].key));
    }
    known += (uint32_t)s->nknown;
    if (s->has_sel) CHECK(known_find(s, &s->sel_key) >= 0);
    mslot_t *u = map_find(&sm->by_ufrag, sm->seed, s->ufrag, UFRAG_LEN);
    CHECK(u && u->val == s);
    CHECK(slot_of(w, sfu_icestate_user(s))->s == s);
    queued += s->queued;
  }
  CHECK(sfu_icestate_oldest(sm) == last);
  CHECK(sm->by_addr.used == known);
  CHECK(sm->by_ufrag.used == (uint32_t)streams);
  CHECK(sm->nstreams == streams);
  int n = 0;
  for (const sfu_icestate_stream_t *s = sm->ev_head; s; s = s->ev_next) {
    CHECK(s->queued);
    CHECK(s->ev_next || s == sm->ev_tail);
    n++;
  }
  CHECK(n == queued);
  /* Time only moves with a tick: no consent deadline is ever overdue. */
  CHECK(sfu_icestate_next_timeout(sm) > sm->now_ms);
}

static void poll_events(world_t *w) {
  sfu_icestate_event_t ev;
  while (sfu_icestate_poll_event(w->sm, &ev)) {
    slot_t *sl = slot_of(w, ev.user);
    CHECK(ev.stream == sl->s);
    CHECK(ev.state == -1 || ev.state == !sl->connected);
    if (ev.state >= 0) sl->connected = ev.state;
    CHECK(sl->connected == sfu_icestate_connected(sl->s));
    sfu_icestate_pair_t p;
    CHECK(ev.has_pair == sfu_icestate_selected(sl->s, &p));
    CHECK(memcmp(&p, &ev.pair, sizeof(p)) == 0);
  }
}

static void op_raw(world_t *w) {
  const sfu_icestate_addr_t *from = &w->addr[byte(w) % ADDRS];
  uint8_t b = byte(w);
  int sock = b & 3, reps = 1 + (b >> 2);
  size_t len = byte(w);
  if (len > (size_t)(w->end - w->p)) len = (size_t)(w->end - w->p);
  uint8_t buf[256];
  for (int i = 0; i < reps; i++) {
    memcpy(buf, w->p, len); /* the machine may keep nothing of it */
    input(w, sock, from, buf, len, NULL);
  }
  w->p += len;
}

static void op_check(world_t *w) {
  slot_t *sl = &w->slot[byte(w) % SLOTS];
  const sfu_icestate_addr_t *from = &w->addr[byte(w) % ADDRS];
  int sock = byte(w) & 3;
  uint8_t flags = byte(w);
  uint32_t prio = (uint32_t)byte(w) << 8 | byte(w);
  if (!sl->s) return;
  const char *ufrag = sfu_icestate_ufrag(sl->s), *pwd = sfu_icestate_pwd(sl->s);
  if ((flags & 32) && sl->old_ufrag[0]) {
    ufrag = sl->old_ufrag;
    pwd = sl->old_pwd;
  }
  uint8_t req[512], tid[SFU_STUN_TID_LEN] = {0};
  char user[64];
  sfu_stun_writer_t sw;
  sfu_wr32(tid, ++w->tid_seq);
  snprintf(user, sizeof(user), "%s:fuzz", ufrag);
  sfu_stun_writer_init(&sw, req, sizeof(req), SFU_STUN_BINDING_REQUEST, tid);
  sfu_stun_put(&sw, SFU_STUN_ATTR_USERNAME, user, strlen(user));
  sfu_stun_put_u32(&sw, SFU_STUN_ATTR_PRIORITY, prio);
  sfu_stun_put_u64(&sw, (flags & 2) ? SFU_STUN_ATTR_ICE_CONTROLLED : SFU_STUN_ATTR_ICE_CONTROLLING,
                   7);
  if (flags & 1) sfu_stun_put(&sw, SFU_STUN_ATTR_USE_CANDIDATE, NULL, 0);
  if (flags & 16) sfu_stun_put(&sw, 0x7001, "abc", 3);
  if (flags & 64) { /* an attribute of the input's choosing, signed */
    uint16_t type = (uint16_t)(byte(w) << 8 | byte(w));
    size_t n = byte(w) & 63;
    if (n > (size_t)(w->end - w->p)) n = (size_t)(w->end - w->p);
    sfu_stun_put(&sw, type, w->p, n);
    w->p += n;
  }
  if (!(flags & 128))
    sfu_stun_put_integrity(&sw, (flags & 4) ? "not-the-password" : pwd,
                           (flags & 4) ? 16 : strlen(pwd));
  if (!(flags & 8)) sfu_stun_put_fingerprint(&sw);
  int n = sfu_stun_finish(&sw);
  if (n <= 0) return;
  input(w, sock, from, req, (size_t)n, (flags & 4) ? NULL : pwd);
}

static void op_restart(world_t *w) {
  slot_t *sl = &w->slot[byte(w) % SLOTS];
  char ufrag[16];
  snprintf(ufrag, sizeof(ufrag), "remote%u", byte(w) & 3);
  if (!sl->s) return;
  char u[UFRAG_LEN + 1], p[PWD_LEN + 1];
  memcpy(u, sfu_icestate_ufrag(sl->s), sizeof(u));
  memcpy(p, sfu_icestate_pwd(sl->s), sizeof(p));
  int rv = sfu_icestate_set_remote(sl->s, ufrag, "remote-password-remote-pw");
  CHECK(rv == 0 || rv == 1);
  if (rv == 1) {
    CHECK(strcmp(u, sfu_icestate_ufrag(sl->s)) != 0);
    memcpy(sl->old_ufrag, u, sizeof(u));
    memcpy(sl->old_pwd, p, sizeof(p));
  }
}

/* Toggles polling, or forgets an address on a socket (a TCP connection
 * closed): exactly a known address of that socket goes, with its pair. */
static void op_forget(world_t *w) {
  uint8_t b = byte(w);
  if (b & 1) {
    w->poll = !w->poll;
    return;
  }
  const sfu_icestate_addr_t *a = &w->addr[byte(w) % ADDRS];
  int sock = (b >> 1) & 3;
  const mslot_t *m = map_find(&w->sm->by_addr, w->sm->seed, a, sizeof(*a));
  sfu_icestate_stream_t *owner = m ? m->val : NULL;
  int i = owner ? known_find(owner, a) : -1;
  int known = i >= 0 && owner->known[i].sock == sock;
  int was_sel = known && owner->has_sel && key_eq(&owner->sel_key, a);
  int connected = owner ? owner->connected : 0;
  CHECK(sfu_icestate_forget(w->sm, sock, a) == known);
  if (!known) return;
  CHECK(!map_find(&w->sm->by_addr, w->sm->seed, a, sizeof(*a)));
  CHECK(known_find(owner, a) < 0);
  CHECK(owner->connected == connected);
  if (was_sel) CHECK(!owner->has_sel && !owner->nominated && owner->queued);
}

static void op_stream(world_t *w) {
  slot_t *sl = &w->slot[byte(w) % SLOTS];
  if (sl->s) {
    sfu_icestate_stream_destroy(sl->s);
    memset(sl, 0, sizeof(*sl));
  } else {
    CHECK(sfu_icestate_stream_create(w->sm, sl, &sl->s) == 0);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static world_t w;
  memset(&w, 0, sizeof(w));
  sfu_log_set_level(SFU_LOG_ERROR);
  w.p = data;
  w.end = data + size;
  w.poll = 1;
  w.now = 1000;
  for (int i = 0; i < ADDRS; i++) { /* 2k over UDP, 2k + 1 the same ip:port over TCP */
    int j = i / 2;
    w.addr[i].fam = i < ADDRS / 2 ? 4 : 6;
    w.addr[i].transport = (uint8_t)(i & 1 ? SFU_ICESTATE_TCP : SFU_ICESTATE_UDP);
    w.addr[i].port = (uint16_t)(40000 + j % 3);
    w.addr[i].ip[0] = i < ADDRS / 2 ? 10 : 0xfd;
    w.addr[i].ip[3] = (uint8_t)(j / 3);
  }
  CHECK(sfu_icestate_create(&w.sm) == 0);
  for (int i = 0; i < 2; i++)
    CHECK(sfu_icestate_stream_create(w.sm, &w.slot[i], &w.slot[i].s) == 0);
  while (w.p < w.end) {
    switch (byte(&w) & 7) {
    case 0: op_raw(&w); break;
    case 1: op_check(&w); break;
    case 2: {
      static const uint8_t rtp[12] = {0x80, 0x60};
      input(&w, 0, &w.addr[byte(&w) % ADDRS], rtp, sizeof(rtp), NULL);
      break;
    }
    case 3: {
      uint32_t ms = (uint32_t)byte(&w) << 8 | byte(&w);
      w.now += (uint64_t)ms * 10;
      sfu_icestate_tick(w.sm, w.now);
      break;
    }
    case 4: op_restart(&w); break;
    case 5: op_stream(&w); break;
    case 6: op_forget(&w); break;
    case 7: {
      uint64_t t = sfu_icestate_next_timeout(w.sm);
      if (t != UINT64_MAX && t > w.now) w.now = t;
      sfu_icestate_tick(w.sm, w.now);
      break;
    }
    }
    if (w.poll) poll_events(&w);
    consistent(&w);
  }
  poll_events(&w);
  for (int i = 0; i < SLOTS; i++)
    if (w.slot[i].s) CHECK(w.slot[i].connected == sfu_icestate_connected(w.slot[i].s));
  sfu_icestate_destroy(w.sm);
  return 0;
}
