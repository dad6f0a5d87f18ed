/*
 * test_ipc.c -- frame decoder (partial reads, oversized and empty frames)
 * and the JSON channel over a real socketpair on a libuv loop.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "sfu/base/sfu.h"
#include "signaling/ipc.h"

typedef struct {
  int n;
  char frames[16][128];
  size_t lens[16];
  int stop_after;
} sink_t;

static int collect(void *arg, const char *p, size_t len) {
  sink_t *s = arg;
  assert_true(len < sizeof(s->frames[0]));
  memcpy(s->frames[s->n], p, len);
  s->lens[s->n] = len;
  s->n++;
  return s->stop_after && s->n >= s->stop_after ? 7 : 0;
}

/* Builds header+payload frames for each string into `out`. */
static size_t build(char *out, const char **msgs, int n) {
  size_t off = 0;
  for (int i = 0; i < n; i++) {
    size_t l = strlen(msgs[i]);
    sfu_ipc_put_header((uint8_t *)out + off, (uint32_t)l);
    memcpy(out + off + 4, msgs[i], l);
    off += 4 + l;
  }
  return off;
}

static const char *three[] = {"{\"a\":1}", "{\"type\":\"ping\",\"seq\":2}", "x"};

static void whole_buffer_gives_every_frame(void **state) {
  char buf[256];
  sink_t s = {0};
  sfu_ipc_decoder_t d;
  size_t n = build(buf, three, 3);
  sfu_ipc_decoder_init(&d, 1024);
  assert_int_equal(sfu_ipc_decoder_feed(&d, buf, n, collect, &s), 0);
  assert_int_equal(s.n, 3);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(s.lens[i], strlen(three[i]));
    assert_memory_equal(s.frames[i], three[i], s.lens[i]);
  }
  assert_int_equal(d.len, 0);
  sfu_ipc_decoder_free(&d);
}

/* Every way of cutting the stream in two, and byte by byte. */
static void partial_reads_reassemble(void **state) {
  char buf[256];
  size_t n = build(buf, three, 3);
  for (size_t cut = 0; cut <= n; cut++) {
    sink_t s = {0};
    sfu_ipc_decoder_t d;
    sfu_ipc_decoder_init(&d, 1024);
    assert_int_equal(sfu_ipc_decoder_feed(&d, buf, cut, collect, &s), 0);
    assert_int_equal(sfu_ipc_decoder_feed(&d, buf + cut, n - cut, collect, &s), 0);
    assert_int_equal(s.n, 3);
    assert_memory_equal(s.frames[1], three[1], strlen(three[1]));
    sfu_ipc_decoder_free(&d);
  }
  sink_t s = {0};
  sfu_ipc_decoder_t d;
  sfu_ipc_decoder_init(&d, 1024);
  for (size_t i = 0; i < n; i++)
    assert_int_equal(sfu_ipc_decoder_feed(&d, buf + i, 1, collect, &s), 0);
  assert_int_equal(s.n, 3);
  assert_memory_equal(s.frames[2], "x", 1);
  sfu_ipc_decoder_free(&d);
}

static void oversized_frame_is_refused(void **state) {
  char buf[16];
  sink_t s = {0};
  sfu_ipc_decoder_t d;
  sfu_ipc_decoder_init(&d, 100);
  sfu_ipc_put_header((uint8_t *)buf, 101);
  /* Refused from the header alone, before any payload arrives... */
  assert_int_equal(sfu_ipc_decoder_feed(&d, buf, 4, collect, &s), SFU_EMSGSIZE);
  sfu_ipc_decoder_free(&d);
  /* ...also when the header itself arrives in pieces. */
  sfu_ipc_decoder_init(&d, 100);
  sfu_ipc_put_header((uint8_t *)buf, 0xffffffffu);
  assert_int_equal(sfu_ipc_decoder_feed(&d, buf, 3, collect, &s), 0);
  assert_int_equal(sfu_ipc_decoder_feed(&d, buf + 3, 1, collect, &s), SFU_EMSGSIZE);
  assert_int_equal(s.n, 0);
  sfu_ipc_decoder_free(&d);
  /* Exactly max_frame is fine. */
  char big[4 + 100];
  memset(big + 4, 'a', 100);
  sfu_ipc_put_header((uint8_t *)big, 100);
  sink_t s2 = {0};
  sfu_ipc_decoder_init(&d, 100);
  d.max_frame = 100;
  assert_int_equal(sfu_ipc_decoder_feed(&d, big, 50, collect, &s2), 0);
  assert_int_equal(s2.n, 0);
  sfu_ipc_decoder_free(&d);
}

static void empty_frame_is_protocol_error(void **state) {
  char buf[4] = {0, 0, 0, 0};
  sink_t s = {0};
  sfu_ipc_decoder_t d;
  sfu_ipc_decoder_init(&d, 100);
  assert_int_equal(sfu_ipc_decoder_feed(&d, buf, 4, collect, &s), SFU_EPROTO);
  sfu_ipc_decoder_free(&d);
}

static void callback_can_stop_decoding(void **state) {
  char buf[256];
  sink_t s = {0};
  s.stop_after = 2;
  sfu_ipc_decoder_t d;
  size_t n = build(buf, three, 3);
  sfu_ipc_decoder_init(&d, 1024);
  assert_int_equal(sfu_ipc_decoder_feed(&d, buf, n, collect, &s), 7);
  assert_int_equal(s.n, 2);
  sfu_ipc_decoder_free(&d);
}

/* --- channel over a socketpair ----------------------------------------- */

typedef struct {
  int got;
  json_int_t last_seq;
  int errors;
  int last_err;
  int closed;
} chan_state_t;

static void on_msg(sfu_ipc_t *ipc, json_t *msg) {
  chan_state_t *cs = ipc->data;
  cs->got++;
  cs->last_seq = json_integer_value(json_object_get(msg, "seq"));
}

static void on_err(sfu_ipc_t *ipc, int err) {
  chan_state_t *cs = ipc->data;
  cs->errors++;
  cs->last_err = err;
}

static void on_close(sfu_ipc_t *ipc) { ((chan_state_t *)ipc->data)->closed++; }

static void channel_delivers_json_and_skips_garbage(void **state) {
  uv_loop_t loop;
  int fds[2];
  sfu_ipc_t a, b;
  chan_state_t sa = {0}, sb = {0};

  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  a.data = &sa;
  b.data = &sb;
  assert_int_equal(sfu_ipc_init(&loop, &a, fds[0], on_msg, on_err), 0);
  assert_int_equal(sfu_ipc_init(&loop, &b, fds[1], on_msg, on_err), 0);
  a.data = &sa;
  b.data = &sb;

  for (int i = 1; i <= 100; i++) {
    json_t *m = json_pack("{s:s, s:i}", "type", "ping", "seq", i);
    assert_int_equal(sfu_ipc_send(&a, m), 0);
    json_decref(m);
  }
  /* A well-framed payload that is not a JSON object is skipped and counted;
   * the channel keeps working. Written on the raw fd before the next send. */
  uv_run(&loop, UV_RUN_NOWAIT);
  char raw[4 + 5];
  sfu_ipc_put_header((uint8_t *)raw, 5);
  memcpy(raw + 4, "[1,2]", 5);
  assert_int_equal(write(fds[0], raw, sizeof(raw)), (ssize_t)sizeof(raw));
  json_t *m = json_pack("{s:s, s:i}", "type", "ping", "seq", 101);
  assert_int_equal(sfu_ipc_send(&a, m), 0);
  json_decref(m);

  for (int i = 0; i < 1000 && sb.got < 101; i++) uv_run(&loop, UV_RUN_ONCE);
  assert_int_equal(sb.got, 101);
  assert_int_equal(sb.last_seq, 101);
  assert_int_equal(b.bad_msgs, 1);
  assert_int_equal(sb.errors, 0);

  /* Closing one end: the other sees EOF (err 0) once. */
  sfu_ipc_close(&a, on_close);
  for (int i = 0; i < 100 && sb.errors == 0; i++) uv_run(&loop, UV_RUN_ONCE);
  assert_int_equal(sb.errors, 1);
  assert_int_equal(sb.last_err, 0);
  sfu_ipc_close(&b, on_close);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(sa.closed + sb.closed, 2);
  assert_int_equal(uv_loop_close(&loop), 0);
}

static void channel_refuses_oversized_send(void **state) {
  uv_loop_t loop;
  int fds[2];
  sfu_ipc_t a;
  chan_state_t sa = {0};
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  a.data = &sa;
  assert_int_equal(sfu_ipc_init(&loop, &a, fds[0], on_msg, on_err), 0);
  a.dec.max_frame = 64;
  json_t *m = json_pack("{s:s}", "big", "0123456789012345678901234567890123456789012345678901234567890123456789");
  assert_int_equal(sfu_ipc_send(&a, m), SFU_EMSGSIZE);
  /* A peer that never reads: sends fail with EAGAIN at the queue bound
   * instead of growing memory without limit. */
  a.dec.max_frame = SFU_IPC_DEFAULT_MAX_FRAME;
  a.max_queued = 256 * 1024;
  json_t *chunk = json_pack("{s:s%}", "pad", "", (size_t)0);
  char pad[8192];
  memset(pad, 'p', sizeof(pad) - 1);
  pad[sizeof(pad) - 1] = '\0';
  json_object_set_new(chunk, "pad", json_string(pad));
  int rv = 0, sent = 0;
  for (int i = 0; i < 10000 && rv == 0; i++) {
    rv = sfu_ipc_send(&a, chunk);
    sent += rv == 0;
  }
  assert_int_equal(rv, SFU_EAGAIN);
  assert_true(sent > 10); /* the kernel buffer took some first */
  json_decref(chunk);
  json_decref(m);
  sfu_ipc_close(&a, NULL);
  uv_run(&loop, UV_RUN_NOWAIT);
  close(fds[1]);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
}

static int drains;
static void on_drain(sfu_ipc_t *ipc) {
  (void)ipc;
  drains++;
}

/* A channel `a` on fds[0] of a new socketpair, with on_drain counted. */
static void drain_channel_open(uv_loop_t *loop, int fds[2], sfu_ipc_t *a, chan_state_t *sa) {
  assert_int_equal(uv_loop_init(loop), 0);
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  a->data = sa;
  assert_int_equal(sfu_ipc_init(loop, a, fds[0], on_msg, on_err), 0);
  a->on_drain = on_drain;
  drains = 0;
}

/* An 8 KiB message. */
static json_t *pad_msg(void) {
  char pad[8192];
  memset(pad, 'p', sizeof(pad) - 1);
  pad[sizeof(pad) - 1] = '\0';
  return json_pack("{s:s}", "pad", pad);
}

/* The peer (fds[1]) reads everything `a` queued. */
static void read_all(uv_loop_t *loop, int fds[2], sfu_ipc_t *a) {
  char buf[65536];
  fcntl(fds[1], F_SETFL, O_NONBLOCK);
  for (int i = 0; i < 10000 && sfu_ipc_queued(a) > 0; i++) {
    while (read(fds[1], buf, sizeof(buf)) > 0) {
    }
    uv_run(loop, UV_RUN_NOWAIT);
  }
}

static void drain_channel_close(uv_loop_t *loop, int fds[2], sfu_ipc_t *a) {
  sfu_ipc_close(a, NULL);
  uv_run(loop, UV_RUN_NOWAIT);
  close(fds[1]);
  uv_run(loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(loop), 0);
}

static void congestion_has_hysteresis_and_control_messages_pass(void **state) {
  uv_loop_t loop;
  int fds[2];
  sfu_ipc_t a;
  chan_state_t sa = {0};
  (void)state;
  drain_channel_open(&loop, fds, &a, &sa);
  a.high_water = 128 * 1024;
  a.low_water = 32 * 1024;
  a.max_queued = 256 * 1024;
  json_t *chunk = pad_msg();
  /* The peer does not read: the queue grows to the high watermark. */
  int n = 0;
  while (!sfu_ipc_congested(&a) && n++ < 10000) assert_int_equal(sfu_ipc_send(&a, chunk), 0);
  assert_true(sfu_ipc_queued(&a) >= a.high_water);
  assert_int_equal(a.congestions, 1);
  /* Bulk sends stop at the bound; control messages still go. */
  while (sfu_ipc_send(&a, chunk) == 0) n++;
  json_t *join = json_pack("{s:s}", "type", "client_join");
  assert_int_equal(sfu_ipc_send(&a, chunk), SFU_EAGAIN);
  assert_int_equal(sfu_ipc_send_control(&a, chunk), 0);
  assert_int_equal(sfu_ipc_send_control(&a, join), 0);
  assert_true(sfu_ipc_queued(&a) > a.max_queued);
  /* Reading a little stays congested (above low water): no drain yet. */
  char buf[65536];
  assert_true(read(fds[1], buf, 4096) > 0);
  uv_run(&loop, UV_RUN_NOWAIT);
  assert_int_equal(drains, 0);
  assert_true(sfu_ipc_congested(&a));
  /* Reading everything drains it: on_drain once, congestion over. */
  read_all(&loop, fds, &a);
  assert_int_equal(drains, 1);
  assert_false(sfu_ipc_congested(&a));
  assert_int_equal(a.congestions, 1);
  json_decref(join);
  json_decref(chunk);
  drain_channel_close(&loop, fds, &a);
}

/* A send refused at the bound turns congestion on even below high water
 * (a large message at a small queue), so its sender hears of the drain. */
static void refused_send_is_told_of_the_drain(void **state) {
  uv_loop_t loop;
  int fds[2];
  sfu_ipc_t a;
  chan_state_t sa = {0};
  (void)state;
  drain_channel_open(&loop, fds, &a, &sa);
  a.max_queued = 256 * 1024;
  a.high_water = 1u << 30; /* never reached by queueing alone */
  a.low_water = 0;
  json_t *chunk = pad_msg();
  int n = 0;
  while (sfu_ipc_send(&a, chunk) == 0 && n++ < 10000) assert_false(a.congested);
  assert_true(a.congested);
  assert_int_equal(a.congestions, 1);
  read_all(&loop, fds, &a);
  assert_int_equal(drains, 1);
  assert_false(a.congested);
  assert_int_equal(sfu_ipc_send(&a, chunk), 0); /* room again */
  json_decref(chunk);
  drain_channel_close(&loop, fds, &a);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN); /* the peer-gone test writes to a closed pipe */
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(whole_buffer_gives_every_frame),
      cmocka_unit_test(partial_reads_reassemble),
      cmocka_unit_test(oversized_frame_is_refused),
      cmocka_unit_test(empty_frame_is_protocol_error),
      cmocka_unit_test(callback_can_stop_decoding),
      cmocka_unit_test(channel_delivers_json_and_skips_garbage),
      cmocka_unit_test(channel_refuses_oversized_send),
      cmocka_unit_test(congestion_has_hysteresis_and_control_messages_pass),
      cmocka_unit_test(refused_send_is_told_of_the_drain),
  };
  return cmocka_run_group_tests_name("ipc", tests, NULL, NULL);
}
