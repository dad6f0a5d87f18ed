/*
 * test_icestate.c -- sfu/net/icestate.c, the ICE-lite state machine, on a
 * simulated clock: no socket, no loop, no sleeping. Time is a number each
 * test moves (thirty seconds of consent cost nothing), checks are built
 * with the STUN writers of sfu/media/stun.h, and every response the
 * machine asks to transmit is parsed back: its transaction id, its
 * FINGERPRINT, its signature when it has one, and for a success the
 * XOR-MAPPED-ADDRESS, byte for byte what sfu_stun_binding_success() writes
 * for the same sockaddr.
 *
 * The .c is included (docs/style.md: reach statics that way): the map's
 * own test, and consistent(), which holds every test to the machine's
 * invariants (each validated address maps to its stream and nothing
 * else does; a selected pair is a validated address).
 *
 * The real-socket side (recvmmsg, batches, libnice peers) is
 * tests/test_icelite.c's.
 */
#include "sfu/net/icestate.c"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>

/* ---- addresses ----------------------------------------------------------- */

/* 198.51.100.<last>:<port> */
static sfu_icestate_addr_t v4(uint8_t last, uint16_t port) {
  sfu_icestate_addr_t a;
  memset(&a, 0, sizeof(a));
  a.fam = 4;
  a.port = port;
  a.ip[0] = 198;
  a.ip[1] = 51;
  a.ip[2] = 100;
  a.ip[3] = last;
  return a;
}

/* [2001:db8::<last>]:<port> */
static sfu_icestate_addr_t v6(uint8_t last, uint16_t port) {
  sfu_icestate_addr_t a;
  memset(&a, 0, sizeof(a));
  a.fam = 6;
  a.port = port;
  a.ip[0] = 0x20;
  a.ip[1] = 0x01;
  a.ip[2] = 0x0d;
  a.ip[3] = 0xb8;
  a.ip[15] = last;
  return a;
}

/* The sockaddr an address value stands for (what icelite.c would pass). */
static size_t to_sa(const sfu_icestate_addr_t *a, struct sockaddr_storage *ss) {
  memset(ss, 0, sizeof(*ss));
  if (a->fam == 4) {
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    in->sin_family = AF_INET;
    in->sin_port = htons(a->port);
    memcpy(&in->sin_addr, a->ip, 4);
    return sizeof(*in);
  }
  struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
  in6->sin6_family = AF_INET6;
  in6->sin6_port = htons(a->port);
  memcpy(&in6->sin6_addr, a->ip, 16);
  return sizeof(*in6);
}

/* ---- checks -------------------------------------------------------------- */

enum { USE_CAND = 1, CONTROLLED = 2, UNKNOWN_ATTR = 4, NO_FP = 8, BAD_PWD = 16, NO_MI = 32 };

static uint32_t tid_seq;  /* transaction ids: 1, 2, 3, ... */
static int last_signed;   /* the last response carried MESSAGE-INTEGRITY (verified) */
static void *last_user;   /* the last TRANSMIT's out.user: who authenticated it */

/* Feeds a Binding request for (ufrag, pwd) from `from` on socket `sock`
 * at `now`. Returns 0 if it was answered with a success (checked: tid,
 * FINGERPRINT, signature, XOR-MAPPED-ADDRESS, the bytes of
 * sfu_stun_binding_success()), the error code of an error response, or -1
 * if nothing is to be sent. */
static int check_as(sfu_icestate_t *sm, int sock, sfu_icestate_addr_t from, const char *ufrag,
                    const char *pwd, int flags, uint32_t prio, uint64_t now) {
  uint8_t req[256], tid[SFU_STUN_TID_LEN] = {0};
  char user[64];
  sfu_stun_writer_t w;
  sfu_wr32(tid + 8, ++tid_seq);
  snprintf(user, sizeof(user), "%s:peer", ufrag);
  sfu_stun_writer_init(&w, req, sizeof(req), SFU_STUN_BINDING_REQUEST, tid);
  sfu_stun_put(&w, SFU_STUN_ATTR_USERNAME, user, strlen(user));
  sfu_stun_put_u32(&w, SFU_STUN_ATTR_PRIORITY, prio);
  sfu_stun_put_u64(&w, (flags & CONTROLLED) ? SFU_STUN_ATTR_ICE_CONTROLLED
                                            : SFU_STUN_ATTR_ICE_CONTROLLING, 42);
  if (flags & USE_CAND) sfu_stun_put(&w, SFU_STUN_ATTR_USE_CANDIDATE, NULL, 0);
  if (flags & UNKNOWN_ATTR) sfu_stun_put(&w, 0x7001, "abc", 3);
  if (flags & BAD_PWD)
    sfu_stun_put_integrity(&w, "wrong-password-wrong-pw", 23);
  else if (!(flags & NO_MI))
    sfu_stun_put_integrity(&w, pwd, strlen(pwd));
  if (!(flags & NO_FP)) sfu_stun_put_fingerprint(&w);
  int n = sfu_stun_finish(&w);
  assert_true(n > 0);

  sfu_icestate_out_t out;
  sfu_icestate_action_t act = sfu_icestate_input(sm, sock, &from, req, (size_t)n, now, &out);
  if (act == SFU_ICESTATE_NONE) return -1;
  assert_int_equal(act, SFU_ICESTATE_TRANSMIT);
  last_user = out.user;
  assert_int_equal(out.sock, sock);
  assert_memory_equal(&out.to, &from, sizeof(from));
  assert_true(out.len <= SFU_ICESTATE_TX_MAX);
  sfu_stun_msg_t r;
  assert_int_equal(sfu_stun_parse(out.data, out.len, &r, NULL), (int)out.len);
  assert_memory_equal(r.tid, tid, SFU_STUN_TID_LEN);
  assert_int_equal(sfu_stun_check_fingerprint(&r), 0);
  last_signed = r.integrity_off != 0;
  if (last_signed) assert_int_equal(sfu_stun_check_integrity(&r, pwd, strlen(pwd)), 0);
  if (r.type == SFU_STUN_BINDING_SUCCESS) {
    struct sockaddr_storage want, got;
    size_t wl = to_sa(&from, &want);
    assert_true(last_signed);
    assert_int_equal(sfu_stun_xor_addr(&r, &got), 0);
    assert_memory_equal(&got, &want, wl);
    uint8_t exp[SFU_ICESTATE_TX_MAX];
    int en = sfu_stun_binding_success(exp, sizeof(exp), tid, (struct sockaddr *)&want, pwd,
                                      strlen(pwd));
    assert_int_equal(en, (int)out.len);
    assert_memory_equal(exp, out.data, out.len);
    return 0;
  }
  assert_int_equal(r.type, SFU_STUN_BINDING_ERROR);
  return sfu_stun_error_code(&r);
}

/* A check for stream `s` with its current credentials. */
static int check(sfu_icestate_t *sm, int sock, sfu_icestate_addr_t from,
                 const sfu_icestate_stream_t *s, int flags, uint32_t prio, uint64_t now) {
  return check_as(sm, sock, from, sfu_icestate_ufrag(s), sfu_icestate_pwd(s), flags, prio, now);
}

/* An RTP-looking datagram from `from`: the owner it is delivered to, or
 * NULL if dropped. */
static void *media(sfu_icestate_t *sm, sfu_icestate_addr_t from, uint64_t now) {
  static const uint8_t rtp[12] = {0x80, 0x6f, 0, 1};
  sfu_icestate_out_t out;
  if (sfu_icestate_input(sm, 0, &from, rtp, sizeof(rtp), now, &out) != SFU_ICESTATE_DELIVER)
    return NULL;
  return out.user;
}

/* Takes every queued event (at most max). */
static int events(sfu_icestate_t *sm, sfu_icestate_event_t *ev, int max) {
  int n = 0;
  while (n < max && sfu_icestate_poll_event(sm, &ev[n])) n++;
  return n;
}

static int no_event(sfu_icestate_t *sm) {
  sfu_icestate_event_t ev;
  return !sfu_icestate_poll_event(sm, &ev);
}

static int same_addr(const sfu_icestate_addr_t *a, const sfu_icestate_addr_t *b) {
  return memcmp(a, b, sizeof(*a)) == 0;
}

/* The selected pair's remote address is `a`. */
static int selected_is(const sfu_icestate_stream_t *s, sfu_icestate_addr_t a) {
  sfu_icestate_pair_t p;
  return sfu_icestate_selected(s, &p) && same_addr(&p.remote, &a);
}

/* The machine's invariants: every validated address of every stream maps
 * to that stream with its retired tag, nothing else is in the address
 * map, every stream's ufrag maps to it, a selected pair is validated. */
static void consistent(const sfu_icestate_t *sm) {
  uint32_t known = 0;
  int streams = 0;
  for (const sfu_icestate_stream_t *s = sm->streams; s; s = s->next) {
    streams++;
    assert_true(s->nknown >= 0 && s->nknown <= MAX_KNOWN);
    for (int i = 0; i < s->nknown; i++) {
      mslot_t *slot = map_find(&sm->by_addr, sm->seed, &s->known[i].key, sizeof(addr_t));
      assert_non_null(slot);
      assert_ptr_equal(slot->val, s);
      assert_int_equal(slot->tag, s->known[i].retired);
    }
    known += (uint32_t)s->nknown;
    if (s->has_sel) assert_true(known_find(s, &s->sel_key) >= 0);
    mslot_t *u = map_find(&sm->by_ufrag, sm->seed, s->ufrag, UFRAG_LEN);
    assert_non_null(u);
    assert_ptr_equal(u->val, s);
  }
  assert_int_equal(sm->by_addr.used, known);
  assert_int_equal(sm->by_ufrag.used, (uint32_t)streams);
  assert_int_equal(sm->nstreams, streams);
}

static sfu_icestate_t *machine(void) {
  sfu_icestate_t *sm = NULL;
  assert_int_equal(sfu_icestate_create(&sm), 0);
  return sm;
}

static sfu_icestate_stream_t *stream(sfu_icestate_t *sm, void *user) {
  sfu_icestate_stream_t *s = NULL;
  assert_int_equal(sfu_icestate_stream_create(sm, user, &s), 0);
  return s;
}

/* ---- tests ---------------------------------------------------------------- */

/* A valid check gets a signed success whose XOR-MAPPED-ADDRESS is its
 * source (IPv4 and IPv6), the source becomes validated (its media is
 * delivered), and the first one selects the pair: one event, connected. */
static void test_valid_check_answered_and_validates_source(void **state) {
  sfu_icestate_t *sm = machine();
  int u;
  sfu_icestate_stream_t *s = stream(sm, &u);
  assert_int_equal(strlen(sfu_icestate_ufrag(s)), UFRAG_LEN);
  assert_int_equal(strlen(sfu_icestate_pwd(s)), PWD_LEN);
  sfu_icestate_addr_t a = v4(1, 50000), b = v6(2, 40000);
  assert_null(media(sm, a, 0));

  assert_int_equal(check(sm, 0, a, s, USE_CAND, 1000, 10), 0);
  const sfu_icestate_stats_t *st = sfu_icestate_stats(sm);
  assert_int_equal(st->stun_requests, 1);
  assert_int_equal(st->stun_ok, 1);
  sfu_icestate_event_t ev[4];
  assert_int_equal(events(sm, ev, 4), 1);
  assert_ptr_equal(ev[0].stream, s);
  assert_ptr_equal(ev[0].user, &u);
  assert_int_equal(ev[0].state, 1);
  assert_int_equal(ev[0].has_pair, 1);
  assert_true(same_addr(&ev[0].pair.remote, &a));
  assert_int_equal(ev[0].pair.sock, 0);
  assert_int_equal(ev[0].pair.nominated, 1);
  assert_int_equal(ev[0].pair.priority, 1000);
  assert_int_equal(ev[0].pair.checked_ms, 10);
  assert_true(sfu_icestate_connected(s));
  assert_ptr_equal(media(sm, a, 20), &u);

  /* IPv6, on another socket: validated too, the nominated pair stays. */
  assert_int_equal(check(sm, 1, b, s, 0, 900, 30), 0);
  assert_true(no_event(sm));
  assert_ptr_equal(media(sm, b, 40), &u);
  assert_true(selected_is(s, a));
  assert_int_equal(st->stun_ok, 2);
  assert_int_equal(st->drop_unknown, 1);
  consistent(sm);
  sfu_icestate_destroy(sm);
}

/* Media from an address no check validated is dropped and counted,
 * whatever it looks like (RTP, DTLS, empty), and another port of a
 * validated host is another address. */
static void test_media_from_unvalidated_address_dropped(void **state) {
  sfu_icestate_t *sm = machine();
  int u;
  sfu_icestate_stream_t *s = stream(sm, &u);
  sfu_icestate_addr_t a = v4(1, 50000);
  sfu_icestate_out_t out;
  static const uint8_t dtls[13] = {0x16, 0xfe, 0xfd};
  assert_null(media(sm, a, 0));
  assert_int_equal(sfu_icestate_input(sm, 0, &a, dtls, sizeof(dtls), 0, &out), SFU_ICESTATE_NONE);
  assert_int_equal(sfu_icestate_input(sm, 0, &a, dtls, 0, 0, &out), SFU_ICESTATE_NONE);
  assert_int_equal(sfu_icestate_stats(sm)->drop_unknown, 3);

  assert_int_equal(check(sm, 0, a, s, 0, 1, 0), 0);
  assert_ptr_equal(media(sm, a, 0), &u);
  assert_null(media(sm, v4(1, 50001), 0));
  assert_null(media(sm, v4(2, 50000), 0));
  assert_int_equal(sfu_icestate_stats(sm)->drop_unknown, 5);
  assert_int_equal(sfu_icestate_drop_foreign(s), 0);
  consistent(sm);
  sfu_icestate_destroy(sm);
}

/* A dual-stack room: the address map keys the family too, so an IPv4
 * participant and an IPv6 one whose address has the same leading bytes and
 * port are two addresses; a participant checking on both sockets keeps
 * the pair it nominated until a USE-CANDIDATE of no lower priority on the
 * other family moves it there (socket and remote address together). */
static void test_ipv4_and_ipv6_sources_kept_apart(void **state) {
  sfu_icestate_t *sm = machine();
  int u1, u2;
  sfu_icestate_stream_t *s1 = stream(sm, &u1), *s2 = stream(sm, &u2);
  sfu_icestate_addr_t a4 = v4(1, 50000), a6 = a4;
  a6.fam = 6; /* [c633:6401::]:50000, the IPv4 bytes leading */

  assert_int_equal(check(sm, 0, a4, s1, USE_CAND, 1000, 0), 0);
  assert_ptr_equal(media(sm, a4, 1), &u1);
  assert_null(media(sm, a6, 1)); /* not s1's: nobody's */
  assert_int_equal(check(sm, 1, a6, s2, USE_CAND, 1000, 2), 0);
  assert_ptr_equal(media(sm, a6, 3), &u2);
  assert_ptr_equal(media(sm, a4, 3), &u1);
  sfu_icestate_pair_t p;
  assert_true(sfu_icestate_selected(s2, &p));
  assert_int_equal(p.sock, 1);
  assert_int_equal(p.remote.fam, 6);

  /* s1 also checks from IPv6 on socket 1: validated, pair unchanged. */
  sfu_icestate_addr_t b6 = v6(7, 40000);
  assert_int_equal(check(sm, 1, b6, s1, 0, 2000, 4), 0);
  assert_true(selected_is(s1, a4));
  assert_ptr_equal(media(sm, b6, 5), &u1);
  /* Its USE-CANDIDATE there, priority not lower: the pair moves. */
  sfu_icestate_event_t ev[4];
  events(sm, ev, 4);
  assert_int_equal(check(sm, 1, b6, s1, USE_CAND, 2000, 6), 0);
  assert_true(selected_is(s1, b6));
  assert_true(sfu_icestate_selected(s1, &p));
  assert_int_equal(p.sock, 1);
  assert_int_equal(events(sm, ev, 4), 1);
  assert_ptr_equal(ev[0].user, &u1);
  assert_int_equal(ev[0].state, -1); /* still connected: only the pair moved */
  assert_int_equal(ev[0].pair.sock, 1);
  assert_true(same_addr(&ev[0].pair.remote, &b6));
  assert_int_equal(sfu_icestate_stats(sm)->drop_unknown, 1);
  consistent(sm);
  sfu_icestate_destroy(sm);
}

/* The transport is part of an address: a check over a TCP connection
 * validates that path only (the same ip:port over UDP stays unknown), and
 * a TRANSMIT names the stream that authenticated it (none for 401).
 * forget() (the connection closed) drops the address; if it carried the
 * selected pair, the stream has no pair but stays connected: a check on
 * another path selects one, consent ends it otherwise. */
static void test_tcp_path_is_its_own_address_and_forgotten(void **state) {
  sfu_icestate_t *sm = machine();
  int u1, u2;
  sfu_icestate_stream_t *s1 = stream(sm, &u1), *s2 = stream(sm, &u2);
  sfu_icestate_addr_t udp = v4(9, 50000), tcp = udp, tcp2 = v6(9, 50001);
  tcp.transport = tcp2.transport = SFU_ICESTATE_TCP;
  const sfu_icestate_stats_t *st = sfu_icestate_stats(sm);
  sfu_icestate_event_t ev[4];

  assert_int_equal(check(sm, 1, tcp, s1, USE_CAND, 1000, 0), 0);
  assert_ptr_equal(last_user, &u1);
  assert_int_equal(events(sm, ev, 4), 1);
  assert_int_equal(ev[0].state, 1);
  assert_int_equal(ev[0].pair.remote.transport, SFU_ICESTATE_TCP);
  assert_int_equal(ev[0].pair.sock, 1);
  assert_ptr_equal(media(sm, tcp, 1), &u1);
  assert_null(media(sm, udp, 1)); /* the same ip:port over UDP: nobody's */
  assert_int_equal(st->drop_unknown, 1);
  assert_int_equal(check_as(sm, 1, tcp, "ZZZZZZZZ", "whatever-whatever-whatev", 0, 1, 2), 401);
  assert_null(last_user);
  assert_int_equal(check(sm, 1, tcp, s1, CONTROLLED, 1, 2), 487);
  assert_ptr_equal(last_user, &u1);
  assert_int_equal(check(sm, 1, tcp2, s2, 0, 1, 2), 0);
  assert_ptr_equal(last_user, &u2);
  events(sm, ev, 4);

  /* s1 validates UDP too; its nominated TCP pair stays. */
  assert_int_equal(check(sm, 0, udp, s1, 0, 900, 3), 0);
  assert_true(selected_is(s1, tcp));
  assert_true(no_event(sm));
  /* Nothing happens for an address unknown, or known on another socket. */
  sfu_icestate_addr_t other = v4(10, 1);
  assert_int_equal(sfu_icestate_forget(sm, 1, &other), 0);
  assert_int_equal(sfu_icestate_forget(sm, 0, &tcp), 0);
  assert_true(no_event(sm));
  assert_ptr_equal(media(sm, tcp, 4), &u1);

  /* The selected pair's connection closes: no pair, still connected. */
  assert_int_equal(sfu_icestate_forget(sm, 1, &tcp), 1);
  assert_int_equal(events(sm, ev, 4), 1);
  assert_ptr_equal(ev[0].user, &u1);
  assert_int_equal(ev[0].state, -1);
  assert_int_equal(ev[0].has_pair, 0);
  assert_true(sfu_icestate_connected(s1));
  assert_null(media(sm, tcp, 5));
  assert_ptr_equal(media(sm, udp, 5), &u1);
  consistent(sm);
  /* A check on the UDP path selects it (no USE-CANDIDATE needed: there
   * was no pair). */
  assert_int_equal(check(sm, 0, udp, s1, 0, 900, 6), 0);
  assert_int_equal(events(sm, ev, 4), 1);
  assert_int_equal(ev[0].state, -1);
  assert_true(ev[0].has_pair && same_addr(&ev[0].pair.remote, &udp));

  /* A path that was not the selected pair: forgotten, no event. */
  sfu_icestate_addr_t tcp3 = v4(11, 50002);
  tcp3.transport = SFU_ICESTATE_TCP;
  assert_int_equal(check(sm, 1, tcp3, s1, 0, 800, 7), 0);
  assert_true(no_event(sm));
  assert_int_equal(sfu_icestate_forget(sm, 1, &tcp3), 1);
  assert_true(no_event(sm));
  assert_null(media(sm, tcp3, 7));
  /* s2's only path, its pair: s2 has none now. */
  assert_int_equal(sfu_icestate_forget(sm, 1, &tcp2), 1);
  assert_int_equal(events(sm, ev, 4), 1);
  assert_ptr_equal(ev[0].user, &u2);
  assert_int_equal(ev[0].has_pair, 0);
  sfu_icestate_stream_destroy(s2);

  /* With no pair left, consent ends the stream at its usual time. */
  assert_int_equal(sfu_icestate_forget(sm, 0, &udp), 1);
  assert_int_equal(events(sm, ev, 4), 1);
  assert_int_equal(ev[0].has_pair, 0);
  sfu_icestate_tick(sm, 6 + SFU_ICESTATE_CONSENT_MS);
  assert_true(no_event(sm));
  sfu_icestate_tick(sm, 7 + SFU_ICESTATE_CONSENT_MS);
  assert_int_equal(events(sm, ev, 4), 1);
  assert_int_equal(ev[0].state, 0);
  assert_int_equal(st->consent_lost, 1);
  consistent(sm);
  sfu_icestate_destroy(sm);
}

/* A wrong password gets 401, unsigned, and validates nothing; so does an
 * unknown ufrag. No FINGERPRINT, an indication, a broken message: silence.
 * No MESSAGE-INTEGRITY: 400. An unknown required attribute: 420, signed. */
static void test_wrong_password_401_validates_nothing(void **state) {
  sfu_icestate_t *sm = machine();
  int u;
  sfu_icestate_stream_t *s = stream(sm, &u);
  sfu_icestate_addr_t a = v4(1, 50000);
  const sfu_icestate_stats_t *st = sfu_icestate_stats(sm);

  assert_int_equal(check(sm, 0, a, s, USE_CAND | BAD_PWD, 1, 0), 401);
  assert_false(last_signed);
  assert_int_equal(st->stun_401_mac, 1);
  assert_int_equal(check_as(sm, 0, a, "ZZZZZZZZ", "whatever-whatever-whatev", 0, 1, 0), 401);
  assert_int_equal(check_as(sm, 0, a, "ZZZ", "whatever-whatever-whatev", 0, 1, 0), 401);
  assert_int_equal(st->stun_401_user, 2);
  assert_int_equal(check(sm, 0, a, s, USE_CAND | NO_FP, 1, 0), -1);
  assert_int_equal(st->stun_fingerprint, 1);
  assert_int_equal(check(sm, 0, a, s, USE_CAND | NO_MI, 1, 0), 400);
  assert_false(last_signed);
  assert_int_equal(st->stun_400, 1);
  assert_int_equal(check(sm, 0, a, s, USE_CAND | UNKNOWN_ATTR, 1, 0), 420);
  assert_true(last_signed);
  assert_int_equal(st->stun_420, 1);

  uint8_t b[64], tid[SFU_STUN_TID_LEN] = {7};
  sfu_stun_writer_t w;
  sfu_icestate_out_t out;
  sfu_stun_writer_init(&w, b, sizeof(b), SFU_STUN_BINDING_INDICATION, tid);
  sfu_stun_put_fingerprint(&w);
  int n = sfu_stun_finish(&w);
  assert_int_equal(sfu_icestate_input(sm, 0, &a, b, (size_t)n, 0, &out), SFU_ICESTATE_NONE);
  assert_int_equal(st->stun_ignored, 1);
  b[n] = 0; /* a trailing byte */
  assert_int_equal(sfu_icestate_input(sm, 0, &a, b, (size_t)n + 1, 0, &out), SFU_ICESTATE_NONE);
  assert_int_equal(sfu_icestate_input(sm, 0, &a, (const uint8_t *)"\1garbage", 8, 0, &out),
                   SFU_ICESTATE_NONE);
  assert_int_equal(st->stun_malformed, 2);

  assert_int_equal(st->stun_ok, 0);
  assert_true(no_event(sm));
  assert_false(sfu_icestate_connected(s));
  assert_null(media(sm, a, 0));
  consistent(sm);
  sfu_icestate_destroy(sm);
}

/* At most SFU_ICESTATE_ERR_PER_S error responses in a second, however many
 * bad checks from however many sources; the rest are counted, not sent.
 * Successes are not limited. The next second answers again. */
static void test_error_responses_limited_per_second(void **state) {
  sfu_icestate_t *sm = machine();
  int u;
  sfu_icestate_stream_t *s = stream(sm, &u);
  const sfu_icestate_stats_t *st = sfu_icestate_stats(sm);
  int sent = 0;
  for (int i = 0; i < 150; i++)
    if (check(sm, 0, v4((uint8_t)i, 1000), s, BAD_PWD, 1, 5000) == 401) sent++;
  assert_int_equal(sent, SFU_ICESTATE_ERR_PER_S);
  assert_int_equal(st->stun_err_limited, 150 - SFU_ICESTATE_ERR_PER_S);
  assert_int_equal(st->stun_401_mac, 150);
  assert_int_equal(check(sm, 0, v4(1, 1), s, CONTROLLED, 1, 5999), -1);
  assert_int_equal(check(sm, 0, v4(1, 1), s, 0, 1, 5999), 0);
  assert_int_equal(check(sm, 0, v4(1, 2), s, BAD_PWD, 1, 6000), 401);
  assert_int_equal(st->stun_err_limited, 150 - SFU_ICESTATE_ERR_PER_S + 1);
  consistent(sm);
  sfu_icestate_destroy(sm);
}

/* A peer that thinks it is controlled too gets 487 Role Conflict, signed,
 * and nothing is validated; checked again as controlling, it connects. */
static void test_ice_controlled_gets_487(void **state) {
  sfu_icestate_t *sm = machine();
  int u;
  sfu_icestate_stream_t *s = stream(sm, &u);
  sfu_icestate_addr_t a = v4(1, 50000);
  assert_int_equal(check(sm, 0, a, s, CONTROLLED | USE_CAND, 1, 0), 487);
  assert_true(last_signed);
  assert_int_equal(sfu_icestate_stats(sm)->stun_487, 1);
  assert_true(no_event(sm));
  assert_null(media(sm, a, 0));
  assert_int_equal(check(sm, 0, a, s, USE_CAND, 1, 10), 0);
  sfu_icestate_event_t ev;
  assert_true(sfu_icestate_poll_event(sm, &ev));
  assert_int_equal(ev.state, 1);
  assert_ptr_equal(media(sm, a, 20), &u);
  consistent(sm);
  sfu_icestate_destroy(sm);
}

/* The first check selects its pair without nominating it; USE-CANDIDATE
 * on it nominates it (no event: the pair did not move); before any
 * nomination, USE-CANDIDATE on another pair takes over whatever its
 * priority. */
static void test_use_candidate_nominates(void **state) {
  sfu_icestate_t *sm = machine();
  int u;
  sfu_icestate_stream_t *s = stream(sm, &u);
  sfu_icestate_addr_t a = v4(1, 50000), b = v4(2, 50000), c = v4(3, 50000);
  sfu_icestate_event_t ev[4];
  sfu_icestate_pair_t p;

  assert_int_equal(check(sm, 0, a, s, 0, 500, 0), 0);
  assert_int_equal(events(sm, ev, 4), 1);
  assert_int_equal(ev[0].state, 1);
  assert_int_equal(ev[0].pair.nominated, 0);
  assert_int_equal(ev[0].pair.priority, 0);
  assert_int_equal(check(sm, 0, a, s, USE_CAND, 500, 10), 0);
  assert_true(no_event(sm));
  assert_true(sfu_icestate_selected(s, &p));
  assert_true(same_addr(&p.remote, &a));
  assert_int_equal(p.nominated, 1);
  assert_int_equal(p.priority, 500);
  assert_int_equal(p.checked_ms, 10);

  /* Another stream: selected by a plain check, taken over by a lower
   * priority nomination, since nothing was nominated yet. */
  int u2;
  sfu_icestate_stream_t *s2 = stream(sm, &u2);
  assert_int_equal(check(sm, 0, b, s2, 0, 900, 20), 0);
  assert_int_equal(events(sm, ev, 4), 1);
  assert_int_equal(check(sm, 1, c, s2, USE_CAND, 100, 30), 0);
  assert_int_equal(events(sm, ev, 4), 1);
  assert_ptr_equal(ev[0].user, &u2);
  assert_int_equal(ev[0].state, -1);
  assert_true(same_addr(&ev[0].pair.remote, &c));
  assert_int_equal(ev[0].pair.sock, 1);
  assert_int_equal(ev[0].pair.nominated, 1);
  assert_true(selected_is(s, a));
  consistent(sm);
  sfu_icestate_destroy(sm);
}

/* A later nomination with a lower priority does not take the nominated
 * pair while that pair is checked; it does once the pair has gone 6 s
 * without a check (the peer moved). Equal or higher priority takes it at
 * once. */
static void test_lower_priority_nomination_waits_for_stale_pair(void **state) {
  sfu_icestate_t *sm = machine();
  int u;
  sfu_icestate_stream_t *s = stream(sm, &u);
  sfu_icestate_addr_t a = v4(1, 50000), b = v4(2, 50000), c = v4(3, 50000);
  sfu_icestate_event_t ev[4];
  assert_int_equal(check(sm, 0, a, s, USE_CAND, 1000, 0), 0);
  assert_int_equal(events(sm, ev, 4), 1);

  assert_int_equal(check(sm, 0, b, s, USE_CAND, 999, 1000), 0);
  assert_true(no_event(sm));
  assert_true(selected_is(s, a));
  assert_ptr_equal(media(sm, b, 1000), &u); /* validated all the same */
  assert_int_equal(check(sm, 0, a, s, 0, 1000, 5000), 0); /* a is alive */
  assert_int_equal(check(sm, 0, b, s, USE_CAND, 999, 5000 + SFU_ICESTATE_STALE_MS), 0);
  assert_true(no_event(sm));
  assert_true(selected_is(s, a));

  assert_int_equal(check(sm, 0, b, s, USE_CAND, 999, 5001 + SFU_ICESTATE_STALE_MS), 0);
  assert_int_equal(events(sm, ev, 4), 1);
  assert_int_equal(ev[0].state, -1);
  assert_true(same_addr(&ev[0].pair.remote, &b));
  assert_int_equal(ev[0].pair.priority, 999);

  assert_int_equal(check(sm, 0, c, s, USE_CAND, 999, 12000), 0); /* equal */
  assert_int_equal(events(sm, ev, 4), 1);
  assert_true(same_addr(&ev[0].pair.remote, &c));
  assert_int_equal(check(sm, 0, a, s, USE_CAND, 2000, 12001), 0); /* higher */
  assert_int_equal(events(sm, ev, 4), 1);
  assert_true(same_addr(&ev[0].pair.remote, &a));
  assert_int_equal(ev[0].pair.priority, 2000);
  assert_true(sfu_icestate_connected(s));
  consistent(sm);
  sfu_icestate_destroy(sm);
}

/* 30 s without an authenticated check on the selected pair: consent is
 * lost at the next tick (state 0, no pair: sending stops); a check on the
 * pair before that moves the deadline; a check after it connects again.
 * Simulated: no waiting. */
static void test_consent_lost_after_30s_and_regained_by_check(void **state) {
  sfu_icestate_t *sm = machine();
  int u;
  sfu_icestate_stream_t *s = stream(sm, &u);
  sfu_icestate_addr_t a = v4(1, 50000);
  sfu_icestate_event_t ev[4];
  const uint64_t T = SFU_ICESTATE_CONSENT_MS;
  assert_int_equal(sfu_icestate_next_timeout(sm), UINT64_MAX);
  assert_int_equal(check(sm, 0, a, s, USE_CAND, 1, 0), 0);
  assert_int_equal(events(sm, ev, 4), 1);
  assert_int_equal(sfu_icestate_next_timeout(sm), T + 1);

  sfu_icestate_tick(sm, T);
  assert_true(no_event(sm));
  assert_int_equal(check(sm, 0, a, s, 0, 1, T), 0); /* consent renewed */
  assert_int_equal(sfu_icestate_next_timeout(sm), 2 * T + 1);
  sfu_icestate_tick(sm, T + 1);
  sfu_icestate_tick(sm, 2 * T);
  assert_true(no_event(sm));
  assert_int_equal(sfu_icestate_stats(sm)->consent_lost, 0);

  sfu_icestate_tick(sm, 2 * T + 1);
  assert_int_equal(events(sm, ev, 4), 1);
  assert_ptr_equal(ev[0].user, &u);
  assert_int_equal(ev[0].state, 0);
  assert_int_equal(ev[0].has_pair, 0);
  sfu_icestate_pair_t p;
  assert_false(sfu_icestate_selected(s, &p));
  assert_false(sfu_icestate_connected(s));
  assert_int_equal(sfu_icestate_stats(sm)->consent_lost, 1);
  assert_int_equal(sfu_icestate_next_timeout(sm), UINT64_MAX);
  sfu_icestate_tick(sm, 4 * T);
  sfu_icestate_tick(sm, 10); /* earlier than seen: taken as 4 * T */
  assert_true(no_event(sm));
  assert_int_equal(sfu_icestate_stats(sm)->consent_lost, 1);

  assert_int_equal(check(sm, 0, a, s, USE_CAND, 1, 5), 0); /* at 4 * T too */
  assert_int_equal(events(sm, ev, 4), 1);
  assert_int_equal(ev[0].state, 1);
  assert_int_equal(ev[0].has_pair, 1);
  assert_true(same_addr(&ev[0].pair.remote, &a));
  assert_int_equal(ev[0].pair.checked_ms, 4 * T);
  assert_true(sfu_icestate_connected(s));
  assert_int_equal(sfu_icestate_next_timeout(sm), 5 * T + 1);
  consistent(sm);
  sfu_icestate_destroy(sm);
}

/* ICE restart (a new remote ufrag): new local credentials, the old ones
 * get 401; media keeps flowing on the selected pair; the other validated
 * addresses are retired (their media counted as foreign) until a check
 * under the new credentials validates them again; nomination is open
 * again; no state change. */
static void test_restart_keeps_selected_pair_retires_others(void **state) {
  sfu_icestate_t *sm = machine();
  int u;
  sfu_icestate_stream_t *s = stream(sm, &u);
  sfu_icestate_addr_t a = v4(1, 50000), b = v4(2, 50000);
  sfu_icestate_event_t ev[4];
  assert_int_equal(sfu_icestate_set_remote(s, "peerA", "pwA-pwA-pwA-pwA-pwA-pwA"), 0);
  assert_int_equal(sfu_icestate_set_remote(s, "peerA", "pwA-pwA-pwA-pwA-pwA-pwA"), 0);
  assert_int_equal(check(sm, 0, a, s, USE_CAND, 1000, 0), 0);
  assert_int_equal(check(sm, 0, b, s, 0, 1000, 100), 0);
  assert_int_equal(events(sm, ev, 4), 1);
  assert_ptr_equal(media(sm, b, 100), &u);

  char old_ufrag[UFRAG_LEN + 1], old_pwd[PWD_LEN + 1];
  memcpy(old_ufrag, sfu_icestate_ufrag(s), sizeof(old_ufrag));
  memcpy(old_pwd, sfu_icestate_pwd(s), sizeof(old_pwd));
  assert_int_equal(sfu_icestate_set_remote(s, "peerB", "pwB-pwB-pwB-pwB-pwB-pwB"), 1);
  assert_int_equal(sfu_icestate_stats(sm)->restarts, 1);
  assert_string_not_equal(sfu_icestate_ufrag(s), old_ufrag);
  assert_string_not_equal(sfu_icestate_pwd(s), old_pwd);
  assert_true(no_event(sm));
  assert_true(sfu_icestate_connected(s));
  assert_true(selected_is(s, a));

  assert_ptr_equal(media(sm, a, 200), &u);
  assert_null(media(sm, b, 200));
  assert_int_equal(sfu_icestate_drop_foreign(s), 1);
  assert_int_equal(sfu_icestate_stats(sm)->drop_unknown, 0);
  consistent(sm);
  assert_int_equal(check_as(sm, 0, a, old_ufrag, old_pwd, USE_CAND, 1000, 300), 401);

  /* The peer checks under the new credentials: a lower priority
   * nomination takes the pair, as nomination starts over. */
  assert_int_equal(check(sm, 0, b, s, USE_CAND, 10, 400), 0);
  assert_int_equal(events(sm, ev, 4), 1);
  assert_int_equal(ev[0].state, -1);
  assert_true(same_addr(&ev[0].pair.remote, &b));
  assert_ptr_equal(media(sm, b, 500), &u);
  assert_ptr_equal(media(sm, a, 500), &u); /* never retired */
  assert_int_equal(sfu_icestate_drop_foreign(s), 1);

  char longer[SFU_ICESTATE_REMOTE_MAX + 2];
  memset(longer, 'x', sizeof(longer) - 1);
  longer[sizeof(longer) - 1] = 0;
  assert_int_equal(sfu_icestate_set_remote(s, "", "x"), SFU_EINVAL);
  assert_int_equal(sfu_icestate_set_remote(s, longer, "x"), SFU_EINVAL);
  assert_int_equal(sfu_icestate_set_remote(s, "x", longer), SFU_EINVAL);
  consistent(sm);
  sfu_icestate_destroy(sm);
}

/* A stream keeps SFU_ICESTATE_MAX_KNOWN validated addresses. A new one
 * evicts a retired address first (the oldest of them), even when a live
 * one is older; then the oldest live one; never the selected pair, even
 * when it is the oldest. An evicted address is unknown: its media is
 * dropped as such. */
static void test_full_address_list_evicts_retired_then_oldest(void **state) {
  sfu_icestate_t *sm = machine();
  int u;
  sfu_icestate_stream_t *s = stream(sm, &u);
  sfu_icestate_addr_t ad[16];
  for (int i = 0; i < 16; i++) ad[i] = v4((uint8_t)(10 + i), 7000);
  assert_int_equal(sfu_icestate_set_remote(s, "r1", "p1"), 0);
  assert_int_equal(check(sm, 0, ad[0], s, USE_CAND, 100, 0), 0); /* selected */
  for (int i = 2; i <= 7; i++) assert_int_equal(check(sm, 0, ad[i], s, 0, 100, (uint64_t)i - 1), 0);
  assert_int_equal(sfu_icestate_set_remote(s, "r2", "p2"), 1); /* ad[2..7] retired */
  assert_int_equal(check(sm, 0, ad[1], s, USE_CAND, 100, 11), 0); /* selected now */
  assert_true(selected_is(s, ad[1]));
  /* Now: ad[0] live (seen 0, the oldest), ad[1] selected, ad[2..7]
   * retired (seen 1..6): eight. */
  assert_int_equal(s->nknown, MAX_KNOWN);
  uint64_t unknown = sfu_icestate_stats(sm)->drop_unknown;

  assert_int_equal(check(sm, 0, ad[8], s, 0, 100, 12), 0);
  assert_null(media(sm, ad[2], 12)); /* evicted: unknown, not foreign */
  assert_int_equal(sfu_icestate_stats(sm)->drop_unknown, unknown + 1);
  assert_int_equal(sfu_icestate_drop_foreign(s), 0);
  assert_ptr_equal(media(sm, ad[0], 12), &u);
  for (int i = 9; i <= 13; i++)
    assert_int_equal(check(sm, 0, ad[i], s, 0, 100, (uint64_t)i + 4), 0);
  for (int i = 3; i <= 7; i++) assert_null(media(sm, ad[i], 20));
  assert_int_equal(sfu_icestate_stats(sm)->drop_unknown, unknown + 6);
  assert_int_equal(sfu_icestate_drop_foreign(s), 0);
  assert_ptr_equal(media(sm, ad[0], 20), &u);
  consistent(sm);

  /* No retired address left: the oldest live one goes. */
  assert_int_equal(check(sm, 0, ad[14], s, 0, 100, 21), 0);
  assert_null(media(sm, ad[0], 21));
  /* The selected pair (seen 11) is the oldest now: ad[8] (12) goes. */
  assert_int_equal(check(sm, 0, ad[15], s, 0, 100, 22), 0);
  assert_null(media(sm, ad[8], 22));
  assert_ptr_equal(media(sm, ad[1], 22), &u);
  assert_true(selected_is(s, ad[1]));
  for (int i = 9; i <= 15; i++) assert_ptr_equal(media(sm, ad[i], 22), &u);
  assert_int_equal(s->nknown, MAX_KNOWN);
  consistent(sm);
  sfu_icestate_destroy(sm);
}

/* Two streams share the machine: checks are routed by ufrag. An address
 * authenticated by another stream moves to it (the same client
 * rejoining): the first stream loses its pair -- an event with no pair,
 * queued before the new owner's -- and the media goes to the new owner. */
static void test_address_moves_to_stream_that_authenticated_it_last(void **state) {
  sfu_icestate_t *sm = machine();
  int u1, u2;
  sfu_icestate_stream_t *s1 = stream(sm, &u1), *s2 = stream(sm, &u2);
  assert_string_not_equal(sfu_icestate_ufrag(s1), sfu_icestate_ufrag(s2));
  sfu_icestate_addr_t a = v4(1, 50000), b = v4(2, 50000);
  sfu_icestate_event_t ev[4];
  assert_int_equal(check(sm, 0, a, s1, USE_CAND, 1, 0), 0);
  assert_int_equal(check(sm, 0, b, s2, USE_CAND, 1, 0), 0);
  assert_int_equal(events(sm, ev, 4), 2);
  assert_ptr_equal(media(sm, a, 0), &u1);
  assert_ptr_equal(media(sm, b, 0), &u2);

  assert_int_equal(check(sm, 0, a, s2, 0, 1, 10), 0);
  assert_int_equal(events(sm, ev, 4), 1);
  assert_ptr_equal(ev[0].user, &u1);
  assert_int_equal(ev[0].state, -1);
  assert_int_equal(ev[0].has_pair, 0);
  assert_ptr_equal(media(sm, a, 10), &u2);
  assert_true(selected_is(s2, b)); /* nominated, kept */

  /* s1 gets an address back: a pair again, still connected. */
  assert_int_equal(check(sm, 0, v4(3, 1), s1, 0, 1, 20), 0);
  assert_int_equal(events(sm, ev, 4), 1);
  assert_ptr_equal(ev[0].user, &u1);
  assert_int_equal(ev[0].state, -1);
  assert_int_equal(ev[0].has_pair, 1);
  consistent(sm);
  sfu_icestate_destroy(sm);
}

/* Events come one per changed stream, in the order the streams first
 * changed, folded (state as it is now); a destroyed stream's event goes
 * with it, and so do its addresses and its ufrag. The stream list is
 * newest first, its tail the oldest. */
static void test_events_folded_and_dropped_with_their_stream(void **state) {
  sfu_icestate_t *sm = machine();
  int u[3];
  sfu_icestate_stream_t *s[3];
  for (int i = 0; i < 3; i++) s[i] = stream(sm, &u[i]);
  assert_ptr_equal(sfu_icestate_streams(sm), s[2]);
  assert_ptr_equal(sfu_icestate_stream_next(s[2]), s[1]);
  assert_ptr_equal(sfu_icestate_oldest(sm), s[0]);
  assert_ptr_equal(sfu_icestate_user(s[1]), &u[1]);
  for (int i = 0; i < 3; i++)
    assert_int_equal(check(sm, 0, v4((uint8_t)i, 9), s[i], 0, 1, i ? 20000 : 0), 0);
  /* s[0]: connected and lost before anyone polled: folded to "no change". */
  sfu_icestate_tick(sm, SFU_ICESTATE_CONSENT_MS + 1);
  char ufrag1[UFRAG_LEN + 1];
  memcpy(ufrag1, sfu_icestate_ufrag(s[1]), sizeof(ufrag1));
  sfu_icestate_stream_destroy(s[1]);
  sfu_icestate_event_t ev[4];
  assert_int_equal(events(sm, ev, 4), 2);
  assert_ptr_equal(ev[0].user, &u[0]);
  assert_int_equal(ev[0].state, -1);
  assert_int_equal(ev[0].has_pair, 0);
  assert_ptr_equal(ev[1].user, &u[2]);
  assert_int_equal(ev[1].state, 1);
  assert_int_equal(ev[1].has_pair, 1);
  assert_null(media(sm, v4(1, 9), 0));
  assert_int_equal(check_as(sm, 0, v4(1, 9), ufrag1, "whatever", 0, 1, SFU_ICESTATE_CONSENT_MS + 1),
                   401);
  assert_ptr_equal(sfu_icestate_stream_next(s[2]), s[0]);
  sfu_icestate_stream_destroy(s[0]);
  assert_ptr_equal(sfu_icestate_oldest(sm), s[2]);
  consistent(sm);
  sfu_icestate_destroy(sm); /* frees s[2] */
}

/* The username of a parsed check, NUL-terminated into `out` (cap 300). */
static const char *username_of(const sfu_stun_msg_t *m, char *out) {
  assert_true(m->username_off && m->username_len < 300);
  memcpy(out, m->data + m->username_off, m->username_len);
  out[m->username_len] = '\0';
  return out;
}

/* A checking stream's request (a link between two lite agents): nothing
 * before the remote credentials; then USERNAME "<remote>:<local>",
 * PRIORITY, ICE-CONTROLLING with the machine's tie-breaker, USE-CANDIDATE,
 * signed with the remote password, a fresh transaction id each. Fed to
 * the peer's machine it validates and nominates its source; the peer's
 * success, and a 401 for a wrong password, come back as responses:
 * dropped, counted, no error of any kind. A restart signs with the new
 * credentials. The longest check fits SFU_ICESTATE_CHECK_MAX exactly. */
static void test_written_check_validates_and_nominates_at_the_peer(void **state) {
  sfu_icestate_t *sm = machine(), *peer = machine();
  int u, pu;
  sfu_icestate_stream_t *s = stream(sm, &u), *p = stream(peer, &pu);
  uint8_t b[SFU_ICESTATE_CHECK_MAX], b2[SFU_ICESTATE_CHECK_MAX];
  char user[300], want[300];
  sfu_stun_msg_t m, m2;
  sfu_icestate_out_t out;
  sfu_icestate_event_t ev[2];
  sfu_icestate_addr_t from = v4(1, 50000), from2 = v4(2, 50000), back = v4(9, 3478);
  const sfu_icestate_stats_t *st = sfu_icestate_stats(sm), *pst = sfu_icestate_stats(peer);

  assert_string_equal(sfu_icestate_remote_ufrag(s), "");
  assert_int_equal(sfu_icestate_write_check(s, b, sizeof(b), 1000), SFU_EAGAIN);
  assert_int_equal(sfu_icestate_set_remote(s, sfu_icestate_ufrag(p), sfu_icestate_pwd(p)), 0);
  assert_string_equal(sfu_icestate_remote_ufrag(s), sfu_icestate_ufrag(p));

  int n = sfu_icestate_write_check(s, b, sizeof(b), 0x6e7fff00);
  assert_true(n > 0 && n <= SFU_ICESTATE_CHECK_MAX);
  assert_int_equal(sfu_stun_parse(b, (size_t)n, &m, NULL), n);
  assert_int_equal(m.type, SFU_STUN_BINDING_REQUEST);
  snprintf(want, sizeof(want), "%s:%s", sfu_icestate_ufrag(p), sfu_icestate_ufrag(s));
  assert_string_equal(username_of(&m, user), want);
  assert_true(m.has_priority);
  assert_int_equal(m.priority, 0x6e7fff00);
  assert_true(m.controlling);
  assert_false(m.controlled);
  assert_true(m.tie_breaker == sm->tie_breaker);
  assert_true(m.use_candidate);
  assert_int_equal(m.n_unknown, 0);
  assert_int_equal(sfu_stun_check_integrity(&m, sfu_icestate_pwd(p), PWD_LEN), 0);
  assert_int_equal(sfu_stun_check_fingerprint(&m), 0);
  int n2 = sfu_icestate_write_check(s, b2, sizeof(b2), 0x6e7fff00);
  assert_int_equal(n2, n);
  assert_int_equal(sfu_stun_parse(b2, (size_t)n2, &m2, NULL), n2);
  assert_memory_not_equal(m.tid, m2.tid, SFU_STUN_TID_LEN);

  /* At the peer: a valid check, its source validated and nominated. */
  assert_int_equal(sfu_icestate_input(peer, 0, &from, b, (size_t)n, 100, &out),
                   SFU_ICESTATE_TRANSMIT);
  assert_ptr_equal(out.user, &pu);
  assert_int_equal(pst->stun_ok, 1);
  assert_int_equal(events(peer, ev, 2), 1);
  assert_int_equal(ev[0].state, 1);
  assert_true(same_addr(&ev[0].pair.remote, &from));
  assert_int_equal(ev[0].pair.nominated, 1);
  assert_int_equal(ev[0].pair.priority, 0x6e7fff00);
  /* Its success, back here: dropped and counted as a response. */
  uint8_t resp[SFU_ICESTATE_TX_MAX];
  size_t rlen = out.len;
  memcpy(resp, out.data, rlen);
  assert_int_equal(sfu_icestate_input(sm, 0, &back, resp, rlen, 110, &out), SFU_ICESTATE_NONE);
  assert_int_equal(st->stun_responses, 1);
  assert_int_equal(st->stun_requests + st->stun_ignored + st->stun_malformed +
                       st->stun_fingerprint + st->stun_400 + st->stun_401_user +
                       st->stun_401_mac + st->stun_err_limited,
                   0);
  assert_true(no_event(sm));

  /* A wrong remote password: the peer refuses (401), validates nothing. */
  assert_int_equal(sfu_icestate_set_remote(s, sfu_icestate_ufrag(p), "not-the-password"), 0);
  n = sfu_icestate_write_check(s, b, sizeof(b), 0x6e7fff00);
  assert_true(n > 0);
  assert_int_equal(sfu_icestate_input(peer, 0, &from2, b, (size_t)n, 200, &out),
                   SFU_ICESTATE_TRANSMIT);
  assert_null(out.user);
  assert_int_equal(pst->stun_401_mac, 1);
  assert_null(media(peer, from2, 210));
  rlen = out.len;
  memcpy(resp, out.data, rlen);
  assert_int_equal(sfu_icestate_input(sm, 0, &back, resp, rlen, 220, &out), SFU_ICESTATE_NONE);
  assert_int_equal(st->stun_responses, 2);
  assert_int_equal(st->stun_401_mac + st->stun_err_limited + st->stun_requests, 0);

  /* A restart: the new local ufrag, the new remote credentials. */
  char old[UFRAG_LEN + 1];
  memcpy(old, sfu_icestate_ufrag(s), sizeof(old));
  assert_int_equal(sfu_icestate_set_remote(s, "peer2", "peer2-password-peer2-pw"), 1);
  assert_string_not_equal(sfu_icestate_ufrag(s), old);
  n = sfu_icestate_write_check(s, b, sizeof(b), 7);
  assert_int_equal(sfu_stun_parse(b, (size_t)n, &m, NULL), n);
  snprintf(want, sizeof(want), "peer2:%s", sfu_icestate_ufrag(s));
  assert_string_equal(username_of(&m, user), want);
  assert_int_equal(sfu_stun_check_integrity(&m, "peer2-password-peer2-pw", 23), 0);

  /* The longest remote credentials: SFU_ICESTATE_CHECK_MAX exactly. */
  char longest[REMOTE_MAX + 1];
  memset(longest, 'x', REMOTE_MAX);
  longest[REMOTE_MAX] = '\0';
  assert_int_equal(sfu_icestate_set_remote(s, longest, longest), 1);
  assert_int_equal(sfu_icestate_write_check(s, b, sizeof(b), 7), SFU_ICESTATE_CHECK_MAX);
  assert_int_equal(sfu_stun_parse(b, SFU_ICESTATE_CHECK_MAX, &m, NULL), SFU_ICESTATE_CHECK_MAX);
  assert_int_equal(sfu_stun_check_integrity(&m, longest, REMOTE_MAX), 0);
  assert_int_equal(sfu_icestate_write_check(s, b, sizeof(b) - 1, 7), SFU_E2BIG);

  consistent(sm);
  consistent(peer);
  sfu_icestate_destroy(sm);
  sfu_icestate_destroy(peer);
}

/* The address map under churn: many inserts and deletes keep every live
 * key findable (backward-shift deletion), across growth. */
static void test_map(void **state) {
  map_t m;
  uint32_t seed = 1234;
  assert_int_equal(map_init(&m, 4), 0);
  static uint8_t live[4000];
  for (uint32_t round = 0; round < 20000; round++) {
    uint32_t k = (round * 2654435761u) % 4000;
    if (live[k]) {
      map_del(&m, seed, &k, sizeof(k));
      live[k] = 0;
    } else {
      assert_int_equal(map_put(&m, seed, &k, sizeof(k), (void *)(uintptr_t)(k + 1), 0), 0);
      live[k] = 1;
    }
    if (round % 997 == 0) {
      for (uint32_t j = 0; j < 4000; j++) {
        mslot_t *s = map_find(&m, seed, &j, sizeof(j));
        if (live[j])
          assert_true(s && s->val == (void *)(uintptr_t)(j + 1));
        else
          assert_null(s);
      }
    }
  }
  free(m.slots);
}

int main(void) {
  sfu_log_set_level(SFU_LOG_WARN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_map),
      cmocka_unit_test(test_valid_check_answered_and_validates_source),
      cmocka_unit_test(test_media_from_unvalidated_address_dropped),
      cmocka_unit_test(test_ipv4_and_ipv6_sources_kept_apart),
      cmocka_unit_test(test_tcp_path_is_its_own_address_and_forgotten),
      cmocka_unit_test(test_wrong_password_401_validates_nothing),
      cmocka_unit_test(test_error_responses_limited_per_second),
      cmocka_unit_test(test_ice_controlled_gets_487),
      cmocka_unit_test(test_use_candidate_nominates),
      cmocka_unit_test(test_lower_priority_nomination_waits_for_stale_pair),
      cmocka_unit_test(test_consent_lost_after_30s_and_regained_by_check),
      cmocka_unit_test(test_restart_keeps_selected_pair_retires_others),
      cmocka_unit_test(test_full_address_list_evicts_retired_then_oldest),
      cmocka_unit_test(test_address_moves_to_stream_that_authenticated_it_last),
      cmocka_unit_test(test_events_folded_and_dropped_with_their_stream),
      cmocka_unit_test(test_written_check_validates_and_nominates_at_the_peer),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
