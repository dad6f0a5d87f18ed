/*
 * zygote.c -- the template process that forks rooms (see zygote.h).
 *
 * Deliberately plain: one poll(2) loop over the control socket and a
 * signalfd, no libuv, no GLib main loop, no threads when it forks --
 * fork(2) is only safe in a process that has none (the warm-up's thread,
 * below, has ended before the first fork). Warm-up runs the libraries'
 * one-time initialisation (OpenSSL, libsrtp) so children inherit it
 * instead of repeating it.
 *
 * That includes what OpenSSL builds lazily at a process's first
 * certificate and handshake (its random generator, the algorithms a
 * handshake fetches: some 230 KiB each room would build for itself), so the
 * warm-up runs one handshake in memory (sfu_dtls_warm_up()), and makes
 * the DTLS context of the next certificate (sfu_dtls_cert_prepare()),
 * which each room then takes as its own. It all runs on a thread of its
 * own, joined before the first fork: glibc gives a thread its own malloc
 * arena, so what the libraries keep lies there, apart from the main heap
 * where rooms allocate, and the handshake's freed buffers leave no holes
 * in the main heap for a room's first allocations to fall into, each one
 * copying a page of the zygote (measured: an idle room with 116 KiB of
 * heap instead of 32). A room's random generator reseeds at its first use
 * after the fork (OpenSSL 3 compares the process id), so rooms share no
 * random state.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "sfu/base/log.h"
#include "sfu/base/sfu.h"
#include "sfu/media/dtls.h"
#include "sfu/media/srtp.h"
#include "sfu/room/zygote.h"

/* The warm-up proper, on its thread; *rv: 0 or the first error. */
static void *warm_up_thread(void *rv) {
  OPENSSL_init_ssl(OPENSSL_INIT_LOAD_SSL_STRINGS | OPENSSL_INIT_LOAD_CRYPTO_STRINGS, NULL);
  sfu_srtp_library_init();
  *(int *)rv = sfu_dtls_warm_up(NULL);
  if (*(int *)rv == 0) *(int *)rv = sfu_dtls_cert_prepare();
  return NULL;
}

static void warm_up(void) {
  pthread_t th;
  int rv = SFU_EPROTO;
  /* Its handshake is no news: its "connected" lines show at debug only. */
  int quiet = sfu_log_enabled(SFU_LOG_INFO) && !sfu_log_enabled(SFU_LOG_DEBUG);
  if (quiet) sfu_log_set_level(SFU_LOG_WARN);
  if (pthread_create(&th, NULL, warm_up_thread, &rv) == 0) pthread_join(th, NULL);
  if (quiet) sfu_log_set_level(SFU_LOG_INFO);
  if (rv != 0)
    sfu_log(SFU_LOG_WARN, "zygote", "warm-up failed: rooms set up OpenSSL themselves");
}

static void reply(int ctl, uint32_t type, uint32_t req_id, int pid, int status, int sig, int err) {
  sfu_zygote_msg_t m = {type, req_id, pid, status, sig, err};
  ssize_t n;
  do
    n = send(ctl, &m, sizeof(m), MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
}

static void reap(int ctl) {
  int st;
  pid_t pid;
  while ((pid = waitpid(-1, &st, WNOHANG)) > 0)
    reply(ctl, SFU_ZYGOTE_EXITED, 0, pid, WIFEXITED(st) ? WEXITSTATUS(st) : 0,
          WIFSIGNALED(st) ? WTERMSIG(st) : 0, 0);
}

/* Reads one request; returns 1 and fills argv/fd, 0 on EOF, -1 if bad. */
static int read_request(int ctl, sfu_zygote_req_t *req, char *args, char **argv, int *fd) {
  char buf[sizeof(*req) + SFU_ZYGOTE_MAX_ARGBYTES];
  char cbuf[CMSG_SPACE(sizeof(int))];
  struct iovec iov = {buf, sizeof(buf)};
  struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                      .msg_controllen = sizeof(cbuf)};
  ssize_t n;
  do
    n = recvmsg(ctl, &mh, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n <= 0) return 0;
  *fd = -1;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
        c->cmsg_len == CMSG_LEN(sizeof(int)))
      memcpy(fd, CMSG_DATA(c), sizeof(int));
  if ((size_t)n < sizeof(*req)) return -1;
  memcpy(req, buf, sizeof(*req));
  if (req->magic != SFU_ZYGOTE_MAGIC || req->argc == 0 || req->argc >= SFU_ZYGOTE_MAX_ARGS ||
      req->args_len > SFU_ZYGOTE_MAX_ARGBYTES || (size_t)n != sizeof(*req) + req->args_len ||
      *fd < 0)
    return -1;
  memcpy(args, buf + sizeof(*req), req->args_len);
  if (req->args_len == 0 || args[req->args_len - 1] != '\0') return -1;
  char *p = args, *end = args + req->args_len;
  for (uint32_t i = 0; i < req->argc; i++) {
    if (p >= end) return -1;
    argv[i] = p;
    p += strlen(p) + 1;
  }
  argv[req->argc] = NULL;
  return 1;
}

/* sfud is gone (it closed our channel, or died): the rooms forked here may
 * outlive it (their orphan grace, shell.h) and die with this process, so
 * it stays, reaping them, until the last has ended. */
static int wait_rooms(void) {
  while (waitpid(-1, NULL, 0) > 0 || errno == EINTR) {
  }
  return 0;
}

int sfu_zygote_run(int ctl, int (*room_main)(int argc, char **argv)) {
  static char args[SFU_ZYGOTE_MAX_ARGBYTES];
  char *argv[SFU_ZYGOTE_MAX_ARGS + 1];
  sigset_t chld, old;
  pid_t self = getpid();

  warm_up();
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, &old);
  int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) return 1;
  sfu_log_set_context("zygote=1");
  sfu_log(SFU_LOG_DEBUG, "zygote", "ready (pid %d)", (int)self);

  for (;;) {
    struct pollfd pf[2] = {{ctl, POLLIN, 0}, {sfd, POLLIN, 0}};
    if (poll(pf, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return 1;
    }
    if (pf[1].revents) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
      }
      reap(ctl);
    }
    if (!(pf[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;
    sfu_zygote_req_t req;
    int fd = -1, rv = read_request(ctl, &req, args, argv, &fd);
    if (rv == 0) return wait_rooms(); /* sfud closed the channel */
    if (rv < 0) {
      if (fd >= 0) close(fd);
      reply(ctl, SFU_ZYGOTE_FAILED, req.req_id, 0, 0, 0, -EINVAL);
      continue;
    }
    pid_t pid = fork();
    if (pid == 0) {
      close(ctl);
      close(sfd);
      sigprocmask(SIG_SETMASK, &old, NULL);
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != self) _exit(1);
      if (fd != 3) {
        dup2(fd, 3); /* dup2 clears close-on-exec: fd 3 is the channel */
        close(fd);
      }
      exit(room_main((int)req.argc, argv));
    }
    close(fd);
    if (pid < 0)
      reply(ctl, SFU_ZYGOTE_FAILED, req.req_id, 0, 0, 0, -errno);
    else
      reply(ctl, SFU_ZYGOTE_SPAWNED, req.req_id, pid, 0, 0, 0);
  }
}
