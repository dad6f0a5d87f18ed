/*
 * icelite_send.c -- what one forwarded datagram costs the sender on
 * loopback: sendto per datagram (the room's former libnice fast path, now
 * tools/client/nice.c) against sendmmsg batches (sfu/net/icelite.c), and
 * icelite's own path (copy into the batch + sendmmsg). Also the receive
 * side (MSG_PEEK + recv, as nice.c's fast path does, against recvmmsg) and
 * one STUN check's CPU.
 *
 * Model: a 10-person audio room. Each incoming packet is forwarded to 9
 * subscribers, each a different destination (port) on 127.0.0.1; payload
 * 160 bytes (an Opus frame after SRTP). The sender's thread CPU time
 * (CLOCK_THREAD_CPUTIME_ID) is measured around the sends only; the 9
 * receiving sockets are drained between timed chunks. On loopback the
 * receiver's network stack runs inside the sender's syscall, as it does
 * for the room when its peers are on the same machine (the benchmarks'
 * setting); on a NIC that part moves to softirq/other CPUs.
 *
 * Modes (per datagram = per copy):
 *   sendto           one sendto per copy
 *   sendmmsg/9       one sendmmsg per incoming packet (its 9 copies)
 *   sendmmsg/63      one sendmmsg per 7 incoming packets (a busy turn)
 *   icelite/9        sfu_ice_send x 9 + flush (one packet per loop turn)
 *   icelite/64       sfu_ice_send only; flushed when the batch is full
 *
 * `icelite_send loop [seconds]` measures the same in a running uv loop: a
 * child process plays 10 clients each sending 50 packets/s (staggered,
 * like room10) and draining what it gets; the parent relays every packet
 * to the 9 others and reports its own CPU (getrusage) per forwarded copy:
 *   ice.c-like   a socket per participant, uv_poll each, MSG_PEEK + recv
 *                per datagram (+ the EAGAIN peek), sendto per copy from
 *                the subscriber's socket (today's fast path, minus GLib)
 *   icelite      one socket, recvmmsg, sfu_ice_send + sendmmsg per turn
 *   recv only    icelite without the fan-out: the wake-up and read share
 * No SRTP, no RTP parsing: the transport's share only.
 *
 * Build (no CMake target):
 *   cc -O2 -D_GNU_SOURCE -I. $(pkg-config --cflags libuv) \
 *     bench/icelite_send.c sfu/net/icestate.c sfu/net/tcpframe.c sfu/net/candidate.c \
 *     sfu/media/stun.c sfu/base/log.c sfu/base/err.c sfu/base/rand.c \
 *     $(pkg-config --libs libuv) -lcrypto -o /tmp/icelite_send
 *   /tmp/icelite_send [packets=20000] [runs=5]
 *   /tmp/icelite_send loop [seconds=10]
 */
#include "sfu/net/icelite.c"

#include <time.h>

#include "sfu/media/stun.h"

#define SUBS 9
#define PAYLOAD 160
#define CHUNK 100 /* incoming packets per timed chunk */

static int rx_fd[SUBS];
static lite_sa_t rx_addr[SUBS];
static int tx_fd;

static uint64_t cpu_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int drain(int fd) {
  static uint8_t b[32][256];
  struct mmsghdr m[32];
  struct iovec v[32];
  int total = 0, n;
  do {
    for (int i = 0; i < 32; i++) {
      v[i].iov_base = b[i];
      v[i].iov_len = sizeof(b[i]);
      memset(&m[i].msg_hdr, 0, sizeof(m[i].msg_hdr));
      m[i].msg_hdr.msg_iov = &v[i];
      m[i].msg_hdr.msg_iovlen = 1;
    }
    n = recvmmsg(fd, m, 32, MSG_DONTWAIT, NULL);
    if (n > 0) total += n;
  } while (n == 32);
  return total;
}

static int drain_all(void) {
  int n = 0;
  for (int i = 0; i < SUBS; i++) n += drain(rx_fd[i]);
  return n;
}

static int udp_on_loopback(lite_sa_t *out) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  int big = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
  memset(out, 0, sizeof(*out));
  out->in.sin_family = AF_INET;
  out->in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t l = sizeof(out->in);
  if (bind(fd, &out->sa, l) != 0 || getsockname(fd, &out->sa, &l) != 0) abort();
  return fd;
}

/* ---- the modes: each sends `pkts` incoming packets' copies ---------------- */

static uint8_t payload[PAYLOAD];

static void mode_sendto(int pkts) {
  for (int p = 0; p < pkts; p++) {
    payload[2] = (uint8_t)p;
    for (int s = 0; s < SUBS; s++)
      if (sendto(tx_fd, payload, PAYLOAD, MSG_DONTWAIT, &rx_addr[s].sa, sizeof(rx_addr[s].in)) !=
          PAYLOAD)
        abort();
  }
}

static void mode_sendmmsg(int pkts, int per_call) {
  struct mmsghdr m[64];
  struct iovec v[64];
  uint8_t copies[64][PAYLOAD];
  int n = 0;
  for (int p = 0; p < pkts; p++) {
    payload[2] = (uint8_t)p;
    for (int s = 0; s < SUBS; s++) {
      memcpy(copies[n], payload, PAYLOAD); /* each copy is its own (SRTP) */
      v[n].iov_base = copies[n];
      v[n].iov_len = PAYLOAD;
      memset(&m[n].msg_hdr, 0, sizeof(m[n].msg_hdr));
      m[n].msg_hdr.msg_name = &rx_addr[s];
      m[n].msg_hdr.msg_namelen = sizeof(rx_addr[s].in);
      m[n].msg_hdr.msg_iov = &v[n];
      m[n].msg_hdr.msg_iovlen = 1;
      n++;
    }
    if (n + SUBS > per_call || p == pkts - 1) {
      if (sendmmsg(tx_fd, m, (unsigned)n, MSG_DONTWAIT) != n) abort();
      n = 0;
    }
  }
}

static sfu_ice_t *ice;
static sfu_ice_stream_t *st[SUBS];

static void mode_icelite(int pkts, int flush_each) {
  for (int p = 0; p < pkts; p++) {
    payload[2] = (uint8_t)p;
    for (int s = 0; s < SUBS; s++)
      if (sfu_ice_send(st[s], payload, PAYLOAD) != 0) abort();
    if (flush_each) flush_all(ice);
  }
  flush_all(ice);
}

static void nop_recv(void *a, uint8_t *b, size_t n) {}
static void nop_state(void *a, int c) {}

typedef struct {
  const char *name;
  int kind; /* 0 sendto, 1 sendmmsg/9, 2 sendmmsg/63, 3 icelite/9, 4 icelite/64 */
  double ns[16];
} mode_t_;

static double run_mode(int kind, int pkts) {
  uint64_t total = 0;
  int expected = 0, got = 0;
  drain_all();
  for (int done = 0; done < pkts; done += CHUNK) {
    int n = pkts - done < CHUNK ? pkts - done : CHUNK;
    uint64_t t0 = cpu_ns();
    switch (kind) {
    case 0: mode_sendto(n); break;
    case 1: mode_sendmmsg(n, SUBS); break;
    case 2: mode_sendmmsg(n, 63); break;
    case 3: mode_icelite(n, 1); break;
    case 4: mode_icelite(n, 0); break;
    }
    total += cpu_ns() - t0;
    expected += n * SUBS;
    got += drain_all();
  }
  if (got != expected) fprintf(stderr, "mode %d: %d of %d datagrams arrived\n", kind, got, expected);
  return (double)total / expected;
}

/* ---- receive side ----------------------------------------------------------- */

static double run_recv(int batched, int count) {
  lite_sa_t a;
  int fd = udp_on_loopback(&a);
  uint64_t total = 0;
  int done = 0;
  uint8_t b[2048];
  while (done < count) {
    for (int i = 0; i < 200; i++)
      sendto(tx_fd, payload, PAYLOAD, 0, &a.sa, sizeof(a.in));
    uint64_t t0 = cpu_ns();
    if (batched) {
      done += drain(fd);
    } else {
      for (;;) { /* ice.c's fast path: peek 8 bytes + source, then read */
        uint8_t head[8];
        struct sockaddr_storage from;
        socklen_t fl = sizeof(from);
        if (recvfrom(fd, head, sizeof(head), MSG_PEEK | MSG_DONTWAIT, (struct sockaddr *)&from,
                     &fl) < 0)
          break;
        if (recv(fd, b, sizeof(b), MSG_DONTWAIT) <= 0) break;
        done++;
      }
    }
    total += cpu_ns() - t0;
  }
  close(fd);
  return (double)total / done;
}

/* ---- STUN: one check, no syscall ------------------------------------------- */

static double run_stun(int count) {
  static const char pwd[] = "abcdefghijklmnopqrstuvwx";
  uint8_t req[256], resp[128], tid[12] = {1, 2, 3};
  sfu_stun_writer_t w;
  sfu_stun_writer_init(&w, req, sizeof(req), SFU_STUN_BINDING_REQUEST, tid);
  sfu_stun_put(&w, SFU_STUN_ATTR_USERNAME, "abcdefgh:remoteuf", 17);
  sfu_stun_put_u32(&w, SFU_STUN_ATTR_PRIORITY, 1853824767);
  sfu_stun_put_u64(&w, SFU_STUN_ATTR_ICE_CONTROLLING, 42);
  sfu_stun_put(&w, 0xc057, "\x00\x01\x00\x0a", 4);
  sfu_stun_put_integrity(&w, pwd, 24);
  sfu_stun_put_fingerprint(&w);
  int n = sfu_stun_finish(&w);
  struct sockaddr_in from = {.sin_family = AF_INET, .sin_port = htons(5000)};
  uint64_t t0 = cpu_ns();
  for (int i = 0; i < count; i++) {
    sfu_stun_msg_t m;
    if (sfu_stun_parse(req, (size_t)n, &m, NULL) != n || sfu_stun_check_fingerprint(&m) != 0 ||
        sfu_stun_check_integrity(&m, pwd, 24) != 0 ||
        sfu_stun_binding_success(resp, sizeof(resp), m.tid, (struct sockaddr *)&from, pwd, 24) <= 0)
      abort();
  }
  return (double)(cpu_ns() - t0) / count;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* ---- in-loop relay ---------------------------------------------------------- */

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>

#define PEERS 10
#define PPS 50

static int cli_fd[PEERS];
static lite_sa_t cli_addr[PEERS];
static int srv_fd[PEERS];                /* ice.c-like: one per participant */
static lite_sa_t srv_addr[PEERS];
static uv_poll_t srv_poll[PEERS];
static uint64_t copies, pkts_in;

static uint64_t rusage_us(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (uint64_t)ru.ru_utime.tv_sec * 1000000 + (uint64_t)ru.ru_utime.tv_usec +
         (uint64_t)ru.ru_stime.tv_sec * 1000000 + (uint64_t)ru.ru_stime.tv_usec;
}

/* The clients: PEERS sockets, one packet every 1000/(PEERS*PPS) ms in turn,
 * to dst[i]; drain everything they receive. Runs `secs` seconds. */
static void clients(const lite_sa_t *dst, int secs) {
  uint8_t b[2048];
  struct timespec next;
  clock_gettime(CLOCK_MONOTONIC, &next);
  long step_ns = 1000000000L / (PEERS * PPS);
  for (long k = 0; k < (long)secs * PEERS * PPS; k++) {
    int i = (int)(k % PEERS);
    sendto(cli_fd[i], payload, PAYLOAD, 0, &dst[i].sa, sizeof(dst[i].in));
    for (int j = 0; j < PEERS; j++)
      while (recv(cli_fd[j], b, sizeof(b), MSG_DONTWAIT) > 0) {
      }
    next.tv_nsec += step_ns;
    if (next.tv_nsec >= 1000000000L) {
      next.tv_nsec -= 1000000000L;
      next.tv_sec++;
    }
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
  }
}

static sfu_ice_stream_t *peer_st[PEERS];
static int no_fanout; /* receive only: the wake-up + read share */

static void relay_recv(void *arg, uint8_t *buf, size_t len) {
  int from = (int)(intptr_t)arg;
  pkts_in++;
  for (int j = 0; j < PEERS && !no_fanout; j++)
    if (j != from && sfu_ice_send(peer_st[j], buf, len) == 0) copies++;
}

static void on_srv_readable(uv_poll_t *h, int status, int events) {
  int from = (int)(intptr_t)h->data;
  static uint8_t b[1536];
  for (;;) { /* ice.c drain_fast: peek, then read */
    uint8_t head[8];
    struct sockaddr_storage src;
    socklen_t sl = sizeof(src);
    if (recvfrom(srv_fd[from], head, sizeof(head), MSG_PEEK | MSG_DONTWAIT,
                 (struct sockaddr *)&src, &sl) < 0)
      return;
    ssize_t n = recv(srv_fd[from], b, sizeof(b), MSG_DONTWAIT);
    if (n <= 0) return;
    pkts_in++;
    for (int j = 0; j < PEERS; j++)
      if (j != from && sendto(srv_fd[j], b, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL,
                              &cli_addr[j].sa, sizeof(cli_addr[j].in)) == n)
        copies++;
  }
}

static void on_stop(uv_timer_t *t) { uv_stop(t->loop); }

/* Validates and selects `from` for stream `stream` as a peer's first check
 * would: a signed Binding request with USE-CANDIDATE through the state
 * machine (its response is not sent), the resulting event applied. The
 * clients check only once: a run longer than the 30 s consent timeout
 * would lose its pairs. */
static void check_from(sfu_ice_t *agent, sfu_ice_stream_t *stream, const lite_sa_t *from) {
  uint8_t req[256], tid[12] = {1, 2, 3};
  char user[64];
  sfu_stun_writer_t w;
  snprintf(user, sizeof(user), "%s:bench", sfu_ice_ufrag(stream));
  sfu_stun_writer_init(&w, req, sizeof(req), SFU_STUN_BINDING_REQUEST, tid);
  sfu_stun_put(&w, SFU_STUN_ATTR_USERNAME, user, strlen(user));
  sfu_stun_put_u32(&w, SFU_STUN_ATTR_PRIORITY, 1853824767);
  sfu_stun_put_u64(&w, SFU_STUN_ATTR_ICE_CONTROLLING, 42);
  sfu_stun_put(&w, SFU_STUN_ATTR_USE_CANDIDATE, NULL, 0);
  sfu_stun_put_integrity(&w, sfu_ice_pwd(stream), strlen(sfu_ice_pwd(stream)));
  sfu_stun_put_fingerprint(&w);
  int n = sfu_stun_finish(&w);
  sfu_icestate_addr_t a;
  sfu_icestate_out_t out;
  addr_of(&from->sa, SFU_ICESTATE_UDP, &a);
  if (n <= 0 ||
      sfu_icestate_input(agent->sm, 0, &a, req, (size_t)n, uv_now(agent->loop), &out) !=
          SFU_ICESTATE_TRANSMIT)
    abort();
  apply_events(agent);
}

static double run_loop(int lite, int secs) {
  uv_loop_t loop;
  uv_timer_t stop;
  lite_sa_t dst[PEERS];
  uv_loop_init(&loop);
  for (int i = 0; i < PEERS; i++) cli_fd[i] = udp_on_loopback(&cli_addr[i]);
  sfu_ice_t *agent = NULL;
  if (lite) {
    sfu_ice_opts_t o = {.addresses = "127.0.0.1"};
    if (sfu_ice_create(&agent, &loop, &o) != 0) abort();
    for (int i = 0; i < PEERS; i++) {
      sfu_ice_cb_t cb = {(void *)(intptr_t)i, relay_recv, nop_state};
      if (sfu_ice_stream_create(agent, &cb, &peer_st[i]) != 0) abort();
      check_from(agent, peer_st[i], &cli_addr[i]);
      dst[i].in.sin_family = AF_INET;
      dst[i].in.sin_port = htons(agent->socks[0]->port);
      dst[i].in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    }
  } else {
    for (int i = 0; i < PEERS; i++) {
      srv_fd[i] = udp_on_loopback(&srv_addr[i]);
      dst[i] = srv_addr[i];
      uv_poll_init(&loop, &srv_poll[i], srv_fd[i]);
      srv_poll[i].data = (void *)(intptr_t)i;
      uv_poll_start(&srv_poll[i], UV_READABLE, on_srv_readable);
    }
  }
  pid_t child = fork();
  if (child == 0) {
    clients(dst, secs);
    _exit(0);
  }
  uv_timer_init(&loop, &stop);
  uv_timer_start(&stop, on_stop, (uint64_t)secs * 1000 + 300, 0);
  copies = pkts_in = 0;
  uint64_t t0 = rusage_us();
  uv_run(&loop, UV_RUN_DEFAULT);
  uint64_t used = rusage_us() - t0;
  waitpid(child, NULL, 0);
  printf("%-12s %6llu packets in, %6llu copies out, %5.2f %% of a core, %6.2f us per copy, "
         "%6.1f us per packet in\n",
         !lite ? "ice.c-like" : no_fanout ? "recv only" : "icelite", (unsigned long long)pkts_in,
         (unsigned long long)copies, 100.0 * used / ((double)secs * 1e6 + 3e5),
         (double)used / (double)(copies ? copies : 1), (double)used / (double)(pkts_in ? pkts_in : 1));
  if (lite) {
    for (int i = 0; i < PEERS; i++) sfu_ice_stream_destroy(peer_st[i]);
    printf("             %llu recvmmsg, %llu sendmmsg calls\n",
           (unsigned long long)agent->stats.rx_syscalls, (unsigned long long)agent->stats.tx_syscalls);
    sfu_ice_destroy(agent);
  } else {
    for (int i = 0; i < PEERS; i++) uv_close((uv_handle_t *)&srv_poll[i], NULL);
  }
  uv_close((uv_handle_t *)&stop, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  for (int i = 0; i < PEERS; i++) {
    close(cli_fd[i]);
    if (!lite) close(srv_fd[i]);
  }
  return (double)used / (double)(copies ? copies : 1);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "loop") == 0) {
    int secs = argc > 2 ? atoi(argv[2]) : 10;
    sfu_log_set_level(SFU_LOG_WARN);
    memset(payload, 0xab, sizeof(payload));
    payload[0] = 0x80;
    printf("relay loop: %d peers x %d packets/s, each to the %d others, %d s per run\n", PEERS,
           PPS, PEERS - 1, secs);
    for (int r = 0; r < 3; r++) {
      run_loop(0, secs);
      run_loop(1, secs);
      no_fanout = 1;
      run_loop(1, secs);
      no_fanout = 0;
    }
    return 0;
  }
  int pkts = argc > 1 ? atoi(argv[1]) : 20000;
  int runs = argc > 2 ? atoi(argv[2]) : 5;
  if (runs < 1 || runs > 16 || pkts < 1) return 2;
  sfu_log_set_level(SFU_LOG_WARN);
  memset(payload, 0xab, sizeof(payload));
  payload[0] = 0x80;
  lite_sa_t txa;
  tx_fd = udp_on_loopback(&txa);
  for (int i = 0; i < SUBS; i++) rx_fd[i] = udp_on_loopback(&rx_addr[i]);

  /* icelite: an agent on 127.0.0.1, 9 streams whose selected pairs are
   * the 9 receivers (set directly: no checks needed to measure sends). */
  uv_loop_t loop;
  uv_loop_init(&loop);
  sfu_ice_opts_t o = {.addresses = "127.0.0.1"};
  if (sfu_ice_create(&ice, &loop, &o) != 0) return 1;
  int big = 4 << 20;
  setsockopt(ice->socks[0]->fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
  for (int i = 0; i < SUBS; i++) {
    sfu_ice_cb_t cb = {NULL, nop_recv, nop_state};
    if (sfu_ice_stream_create(ice, &cb, &st[i]) != 0) return 1;
    st[i]->sel_sa = rx_addr[i];
    st[i]->sel_len = sizeof(rx_addr[i].in);
    st[i]->sel_sock = 0;
    st[i]->has_sel = 1;
  }

  mode_t_ modes[] = {{"sendto (1 syscall per copy)", 0, {0}},
                     {"sendmmsg, 9 per call", 1, {0}},
                     {"sendmmsg, 63 per call", 2, {0}},
                     {"icelite: sfu_ice_send + flush per packet (9)", 3, {0}},
                     {"icelite: sfu_ice_send, flush when full (64)", 4, {0}}};
  int nm = (int)SFU_ARRAY_SIZE(modes);
  for (int i = 0; i < nm; i++) run_mode(modes[i].kind, 2000); /* warm-up */
  for (int r = 0; r < runs; r++) /* interleaved: drift hits every mode alike */
    for (int i = 0; i < nm; i++) modes[i].ns[r] = run_mode(modes[i].kind, pkts);

  printf("send, %d subscribers x %d packets of %d B on loopback, %d runs\n", SUBS, pkts, PAYLOAD,
         runs);
  printf("%-48s %12s %12s\n", "mode", "median ns", "min ns");
  printf("%-48s %12s %12s\n", "", "per datagram", "per datagram");
  for (int i = 0; i < nm; i++) {
    qsort(modes[i].ns, (size_t)runs, sizeof(double), cmp_double);
    printf("%-48s %12.0f %12.0f\n", modes[i].name, modes[i].ns[runs / 2], modes[i].ns[0]);
  }
  printf("icelite counters: %llu datagrams in %llu sendmmsg calls, %llu dropped\n",
         (unsigned long long)ice->stats.tx_datagrams, (unsigned long long)ice->stats.tx_syscalls,
         (unsigned long long)(ice->stats.tx_drop_eagain + ice->stats.tx_drop_error));

  double rp[16], rb[16];
  for (int r = 0; r < runs; r++) {
    rp[r] = run_recv(0, pkts);
    rb[r] = run_recv(1, pkts);
  }
  qsort(rp, (size_t)runs, sizeof(double), cmp_double);
  qsort(rb, (size_t)runs, sizeof(double), cmp_double);
  printf("\nreceive, %d datagrams queued per drain\n", 200);
  printf("%-48s %12.0f %12.0f\n", "MSG_PEEK + recv (ice.c fast path)", rp[runs / 2], rp[0]);
  printf("%-48s %12.0f %12.0f\n", "recvmmsg, 32 per call (icelite)", rb[runs / 2], rb[0]);

  printf("\nSTUN check (parse, FINGERPRINT, HMAC verify, signed response): %.0f ns\n",
         run_stun(20000));

  for (int i = 0; i < SUBS; i++) sfu_ice_stream_destroy(st[i]);
  sfu_ice_destroy(ice);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  return 0;
}
