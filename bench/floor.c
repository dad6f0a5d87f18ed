/*
 * floor.c -- sfu-floor: the least a forwarded packet can cost on this
 * machine, measured now, so that every benchmark states its figures as a
 * ratio to it (absolute times move x4 between machines of the same kind).
 *
 * Per copy (what a room must do for each subscriber of a packet):
 *   protect  one SRTP protect (AEAD_AES_128_GCM, the profile clients get)
 *            of a typical Opus packet (12-byte header + 3-byte extension
 *            element + 100 bytes), each subscriber its own session
 *   send     its share of one sendmmsg of the packet's copies, one per
 *            subscriber's address on 127.0.0.1 (a room turn with one
 *            packet: `--fanout` copies per call)
 * Per received packet:
 *   recv     its share of one recvmmsg of a batch (`--batch`)
 *   unprotect one SRTP unprotect of it
 *
 * A packet that arrives alone (what a room process pays for each packet
 * when its packets come one at a time, as they do in small calls):
 *   wake     a process blocked in epoll_wait on a UDP socket, woken by one
 *            datagram, reading it with recvmmsg: the woken process's CPU
 *            from the wait's return to the next wait (child processes,
 *            `--wake-procs` of them woken in turn; the parent sends one
 *            datagram every `--wake-gap-us`)
 *
 * floor per forwarded copy = protect + send; per received packet = recv +
 * unprotect; a scenario's floor per forwarded packet = protect + send +
 * (recv + unprotect) x received / forwarded. A process per room cannot
 * batch what arrives one packet at a time: `wake` replaces `recv` for such
 * packets (benchmarks print the ratio both ways).
 *
 * `--wake-only` measures `wake` alone (bench/replay_load.py asks for it
 * with as many processes as a scenario has rooms): no SRTP session, no
 * forwarding part, the JSON with `runs`, `wake_ns` and `wake_procs` only.
 *
 * Thread CPU time (CLOCK_THREAD_CPUTIME_ID) around each part only; the
 * receiving sockets are drained between timed chunks. On loopback the
 * receiver's network stack runs inside the sender's syscall, as it does
 * for a room whose peers are on the same machine (the benchmarks'
 * setting). Each figure is the median of `--runs` runs.
 *
 * Usage: sfu-floor [--packets N] [--runs R] [--fanout F] [--batch B]
 *                  [--wakes W] [--wake-gap-us G] [--wake-procs P] [--wake-only]
 *                  [--json]
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sfu/base/sfu.h"
#include "sfu/media/srtp.h"

#define MAX_FANOUT 64
#define PKT 115 /* RTP header 12 + one-byte extension block 8 + Opus 95 */
#define CHUNK 64

static int fanout = 9, batch = 32, packets = 20000, runs = 5, wakes = 1000, wake_gap_us = 400,
           wake_procs = 1;

static uint64_t cpu_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int udp_socket(struct sockaddr_in *out) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0), big = 8 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
  memset(out, 0, sizeof(*out));
  out->sin_family = AF_INET;
  out->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t l = sizeof(*out);
  if (fd < 0 || bind(fd, (struct sockaddr *)out, l) != 0 ||
      getsockname(fd, (struct sockaddr *)out, &l) != 0) {
    perror("sfu-floor: socket");
    exit(1);
  }
  return fd;
}

/* Up to `max` datagrams from fd into bufs; how many. */
static int recv_batch(int fd, uint8_t (*bufs)[PKT + SFU_SRTP_TRAILER], size_t *lens, int max) {
  struct mmsghdr m[CHUNK];
  struct iovec v[CHUNK];
  for (int i = 0; i < max; i++) {
    v[i].iov_base = bufs[i];
    v[i].iov_len = PKT + SFU_SRTP_TRAILER;
    memset(&m[i].msg_hdr, 0, sizeof(m[i].msg_hdr));
    m[i].msg_hdr.msg_iov = &v[i];
    m[i].msg_hdr.msg_iovlen = 1;
  }
  int n = recvmmsg(fd, m, (unsigned)max, MSG_DONTWAIT, NULL);
  for (int i = 0; i < n; i++) lens[i] = m[i].msg_len;
  return n < 0 ? 0 : n;
}

static void drain(int fd) {
  static uint8_t b[CHUNK][PKT + SFU_SRTP_TRAILER];
  size_t lens[CHUNK];
  while (recv_batch(fd, b, lens, CHUNK) > 0) {
  }
}

/* A typical Opus packet: seq, ts, ssrc, the audio-level extension. */
static void make_rtp(uint8_t *p, uint16_t seq, uint32_t ssrc) {
  memset(p, 0, PKT);
  p[0] = 0x90; /* V=2, X=1 */
  p[1] = 111;
  p[2] = (uint8_t)(seq >> 8), p[3] = (uint8_t)seq;
  uint32_t ts = (uint32_t)seq * 960;
  p[4] = (uint8_t)(ts >> 24), p[5] = (uint8_t)(ts >> 16), p[6] = (uint8_t)(ts >> 8), p[7] = (uint8_t)ts;
  p[8] = (uint8_t)(ssrc >> 24), p[9] = (uint8_t)(ssrc >> 16), p[10] = (uint8_t)(ssrc >> 8);
  p[11] = (uint8_t)ssrc;
  p[12] = 0xbe, p[13] = 0xde, p[14] = 0, p[15] = 1; /* RFC 8285 one-byte, 1 word */
  p[16] = 0x10, p[17] = 0x8a;                       /* id 1, level */
  for (int i = 20; i < PKT; i++) p[i] = (uint8_t)(i * 7 + seq);
}

static void session(sfu_srtp_t *s, int swap) {
  sfu_srtp_keys_t k;
  memset(&k, 0, sizeof(k));
  k.profile = SFU_SRTP_AEAD_AES_128_GCM;
  k.key_len = 16;
  k.salt_len = 12;
  for (int i = 0; i < 16; i++) k.local_key[i] = (uint8_t)(swap ? 0x40 + i : 0x10 + i);
  for (int i = 0; i < 16; i++) k.remote_key[i] = (uint8_t)(swap ? 0x10 + i : 0x40 + i);
  for (int i = 0; i < 12; i++) k.local_salt[i] = (uint8_t)(swap ? 0x70 + i : 0x20 + i);
  for (int i = 0; i < 12; i++) k.remote_salt[i] = (uint8_t)(swap ? 0x20 + i : 0x70 + i);
  if (sfu_srtp_create(s, &k) != 0) {
    fprintf(stderr, "sfu-floor: cannot create an SRTP session\n");
    exit(1);
  }
}

/* CPU ns per wake-up of a process that sleeps in epoll_wait until one
 * datagram arrives, then reads it (recvmmsg, as the room does). `procs`
 * child processes wait, each on its own socket, and measure themselves;
 * the parent paces the datagrams, one child after the other (with many,
 * each wakes where the others ran since: the case of many small rooms). */
static double wake_ns(int procs) {
  int per_child = wakes / procs > 2 ? wakes / procs : 2, pfd[2], rx[MAX_FANOUT];
  struct sockaddr_in addr[MAX_FANOUT], tx_addr;
  pid_t pid[MAX_FANOUT];
  if (pipe(pfd) != 0) {
    perror("sfu-floor: pipe");
    exit(1);
  }
  for (int c = 0; c < procs; c++) {
    rx[c] = udp_socket(&addr[c]);
    if ((pid[c] = fork()) != 0) continue;
    uint8_t b[1][PKT + SFU_SRTP_TRAILER];
    size_t lens[1];
    struct epoll_event ev = {.events = EPOLLIN}, got;
    int ep = epoll_create1(0);
    epoll_ctl(ep, EPOLL_CTL_ADD, rx[c], &ev);
    (void)!write(pfd[1], "r", 1); /* waiting from now on */
    /* Thread CPU time does not run while the child sleeps: from the first
     * wake-up to the last read, it is per_child - 1 wake-ups and reads. */
    while (epoll_wait(ep, &got, 1, -1) != 1) {
    }
    uint64_t t0 = cpu_ns();
    for (int n = recv_batch(rx[c], b, lens, 1); n < per_child;) {
      if (epoll_wait(ep, &got, 1, -1) == 1) n += recv_batch(rx[c], b, lens, 1);
    }
    double per = (double)(cpu_ns() - t0) / (double)(per_child - 1);
    (void)!write(pfd[1], &per, sizeof(per));
    _exit(0);
  }
  char ch;
  for (int c = 0; c < procs; c++)
    if (pid[c] < 0 || read(pfd[0], &ch, 1) != 1) {
      perror("sfu-floor: wake child");
      exit(1);
    }
  int tx = udp_socket(&tx_addr);
  uint8_t p[PKT];
  make_rtp(p, 1, 0x6a000002u);
  struct timespec gap = {0, (long)wake_gap_us * 1000};
  for (int i = 0; i < per_child; i++)
    for (int c = 0; c < procs; c++) {
      nanosleep(&gap, NULL); /* the child is asleep again by then */
      sendto(tx, p, sizeof(p), 0, (struct sockaddr *)&addr[c], sizeof(addr[c]));
    }
  double sum = 0, per;
  for (int c = 0; c < procs; c++)
    if (read(pfd[0], &per, sizeof(per)) == (ssize_t)sizeof(per)) sum += per;
  for (int c = 0; c < procs; c++) {
    waitpid(pid[c], NULL, 0);
    close(rx[c]);
  }
  close(pfd[0]), close(pfd[1]), close(tx);
  return sum / procs;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof(*v), cmp);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* What the forwarding parts are measured on: a sending socket, a
 * receiving socket and an SRTP session per subscriber (`fanout`), the
 * publisher's two sessions. main() has one, opened unless --wake-only and
 * closed before it returns. */
typedef struct {
  int tx;                                 /* the room's sending socket */
  int rx[MAX_FANOUT];                     /* a subscriber's; rx[0] also receives the publisher's */
  struct sockaddr_in rx_addr[MAX_FANOUT]; /* where rx[s] is bound, on 127.0.0.1 */
  sfu_srtp_t out[MAX_FANOUT];             /* protects subscriber s's copies */
  sfu_srtp_t pub_out, pub_in;             /* the publisher's side, and ours */
  uint16_t seq;                           /* RTP sequence number of the next packet made */
} rig_t;

static void rig_open(rig_t *g) {
  struct sockaddr_in tx_addr;
  g->tx = udp_socket(&tx_addr);
  for (int s = 0; s < fanout; s++) g->rx[s] = udp_socket(&g->rx_addr[s]);
  for (int s = 0; s < fanout; s++) session(&g->out[s], 0);
  session(&g->pub_out, 1);
  session(&g->pub_in, 0);
  g->seq = 0;
}

static void rig_close(rig_t *g) {
  for (int s = 0; s < fanout; s++) {
    sfu_srtp_destroy(&g->out[s]);
    close(g->rx[s]);
  }
  sfu_srtp_destroy(&g->pub_out);
  sfu_srtp_destroy(&g->pub_in);
  close(g->tx);
}

/* One run of the forwarding figures: CPU ns per copy protected and sent
 * (`packets` packets of `fanout` copies), per packet received and
 * unprotected (`packets` packets in batches of `batch`). */
static void forward_run(rig_t *g, double *protect, double *send, double *recv, double *unprotect) {
  static uint8_t copies[MAX_FANOUT][PKT + SFU_SRTP_TRAILER];
  static uint8_t rxb[CHUNK][PKT + SFU_SRTP_TRAILER];
  size_t lens[MAX_FANOUT], rxlens[CHUNK];
  struct mmsghdr m[MAX_FANOUT];
  struct iovec iov[MAX_FANOUT];
  uint64_t t_protect = 0, t_send = 0, t_recv = 0, t_unprotect = 0, copies_n = 0, rx_n = 0;
  for (int p = 0; p < packets; p++, g->seq++) {
    /* protect: each subscriber's copy in its own session */
    uint64_t t0 = cpu_ns();
    for (int s = 0; s < fanout; s++) {
      make_rtp(copies[s], g->seq, 0x5f000000u + (uint32_t)s);
      lens[s] = PKT;
      if (sfu_srtp_protect(&g->out[s], copies[s], &lens[s], sizeof(copies[s])) != 0) abort();
    }
    uint64_t t1 = cpu_ns();
    for (int s = 0; s < fanout; s++) {
      iov[s].iov_base = copies[s];
      iov[s].iov_len = lens[s];
      memset(&m[s].msg_hdr, 0, sizeof(m[s].msg_hdr));
      m[s].msg_hdr.msg_name = &g->rx_addr[s];
      m[s].msg_hdr.msg_namelen = sizeof(g->rx_addr[s]);
      m[s].msg_hdr.msg_iov = &iov[s];
      m[s].msg_hdr.msg_iovlen = 1;
    }
    uint64_t t2 = cpu_ns();
    if (sendmmsg(g->tx, m, (unsigned)fanout, MSG_DONTWAIT) != fanout) abort();
    uint64_t t3 = cpu_ns();
    t_protect += t1 - t0;
    t_send += t3 - t2;
    copies_n += (uint64_t)fanout;
    if (p % CHUNK == CHUNK - 1)
      for (int s = 0; s < fanout; s++) drain(g->rx[s]);
  }
  for (int s = 0; s < fanout; s++) drain(g->rx[s]);
  /* the receive side: the publisher's packets, protected beforehand */
  for (int done = 0; done < packets; done += batch) {
    int n = packets - done < batch ? packets - done : batch;
    for (int i = 0; i < n; i++, g->seq++) {
      make_rtp(copies[0], g->seq, 0x6a000001u);
      lens[0] = PKT;
      if (sfu_srtp_protect(&g->pub_out, copies[0], &lens[0], sizeof(copies[0])) != 0) abort();
      if (sendto(g->tx, copies[0], lens[0], MSG_DONTWAIT, (struct sockaddr *)&g->rx_addr[0],
                 sizeof(g->rx_addr[0])) != (ssize_t)lens[0])
        abort();
    }
    uint64_t t0 = cpu_ns();
    int got = recv_batch(g->rx[0], rxb, rxlens, n);
    uint64_t t1 = cpu_ns();
    for (int i = 0; i < got; i++)
      if (sfu_srtp_unprotect(&g->pub_in, rxb[i], &rxlens[i], 0) != 0) abort();
    uint64_t t2 = cpu_ns();
    t_recv += t1 - t0;
    t_unprotect += t2 - t1;
    rx_n += (uint64_t)got;
  }
  *protect = (double)t_protect / (double)copies_n;
  *send = (double)t_send / (double)copies_n;
  *recv = (double)t_recv / (double)(rx_n ? rx_n : 1);
  *unprotect = (double)t_unprotect / (double)(rx_n ? rx_n : 1);
}

int main(int argc, char **argv) {
  int json = 0, wake_only = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--json") == 0) {
      json = 1;
    } else if (strcmp(a, "--wake-only") == 0) {
      wake_only = 1;
    } else if (v && strcmp(a, "--packets") == 0) {
      packets = atoi(v), i++;
    } else if (v && strcmp(a, "--runs") == 0) {
      runs = atoi(v), i++;
    } else if (v && strcmp(a, "--fanout") == 0) {
      fanout = atoi(v), i++;
    } else if (v && strcmp(a, "--batch") == 0) {
      batch = atoi(v), i++;
    } else if (v && strcmp(a, "--wakes") == 0) {
      wakes = atoi(v), i++;
    } else if (v && strcmp(a, "--wake-gap-us") == 0) {
      wake_gap_us = atoi(v), i++;
    } else if (v && strcmp(a, "--wake-procs") == 0) {
      wake_procs = atoi(v), i++;
    } else {
      fprintf(stderr, "usage: sfu-floor [--packets N] [--runs R] [--fanout F] [--batch B] "
                      "[--wakes W] [--wake-gap-us G] [--wake-procs P] [--wake-only] "
                      "[--json]\n");
      return 2;
    }
  }
  if (packets < CHUNK || runs < 1 || runs > 99 || fanout < 1 || fanout > MAX_FANOUT ||
      batch < 1 || batch > CHUNK || wakes < 2 || wake_gap_us < 1 || wake_gap_us > 999999 ||
      wake_procs < 1 || wake_procs > MAX_FANOUT) {
    fprintf(stderr, "sfu-floor: --packets >= %d, --runs 1..99, --fanout 1..%d, --batch 1..%d, "
                    "--wakes >= 2, --wake-gap-us 1..999999, --wake-procs 1..%d\n", CHUNK,
            MAX_FANOUT, CHUNK, MAX_FANOUT);
    return 2;
  }
  static rig_t rig;
  if (!wake_only) {
    if (sfu_srtp_library_init() != 0) return 1;
    rig_open(&rig);
  }
  double protect[99], send[99], recv[99], unprotect[99], wake[99];
  for (int r = 0; r < runs; r++) {
    if (!wake_only) forward_run(&rig, &protect[r], &send[r], &recv[r], &unprotect[r]);
    wake[r] = wake_ns(wake_procs);
  }
  double wk = median(wake, runs);
  if (wake_only) {
    if (json)
      printf("{\"runs\": %d, \"wake_ns\": %.1f, \"wake_procs\": %d}\n", runs, wk, wake_procs);
    else
      printf("wake-up on this machine (median of %d runs):\n"
             "  per packet arriving alone: wake + recv %6.0f ns (epoll_wait, recvmmsg of 1; "
             "%d process%s in turn)\n", runs, wk, wake_procs, wake_procs > 1 ? "es" : "");
    return 0;
  }
  double pr = median(protect, runs), se = median(send, runs), re = median(recv, runs),
         un = median(unprotect, runs);
  if (json) {
    printf("{\"protect_ns\": %.1f, \"send_ns\": %.1f, \"recv_ns\": %.1f, \"unprotect_ns\": "
           "%.1f, \"per_copy_ns\": %.1f, \"per_received_ns\": %.1f, \"fanout\": %d, "
           "\"batch\": %d, \"packet_bytes\": %d, \"runs\": %d, \"wake_ns\": %.1f, "
           "\"wake_procs\": %d, \"per_received_alone_ns\": %.1f}\n",
           pr, se, re, un, pr + se, re + un, fanout, batch, PKT, runs, wk, wake_procs, wk + un);
  } else {
    printf("floor on this machine (median of %d runs, %d-byte Opus packets, AES-128-GCM):\n",
           runs, PKT);
    printf("  per forwarded copy:  protect %6.0f ns + send %6.0f ns (sendmmsg of %d) = %6.0f ns\n",
           pr, se, fanout, pr + se);
    printf("  per received packet: recv %6.0f ns (recvmmsg of %d) + unprotect %6.0f ns = %6.0f ns\n",
           re, batch, un, re + un);
    printf("  per packet arriving alone: wake + recv %6.0f ns (epoll_wait, recvmmsg of 1; "
           "%d process%s in turn) + unprotect = %6.0f ns\n", wk, wake_procs,
           wake_procs > 1 ? "es" : "", wk + un);
  }
  rig_close(&rig);
  return 0;
}
