/*
 * spawner.c -- start the zygote, request rooms, relay exits.
 *
 * Requests are synchronous: sfud sends one and reads until the matching
 * reply, with a one-second bound. Exit notices that arrive meanwhile are
 * kept in a small queue and delivered from the next loop turn, so the
 * supervisor never sees an exit re-enter it while it is spawning.
 * Otherwise the control socket is watched with a uv_poll handle.
 *
 * After an upgrade (docs/internals/upgrade.md) the new sfud adopts the old
 * zygote as *retired*: it only relays its rooms' exits until the last one
 * ended, while a new zygote forks new rooms from the binary now on disk.
 *
 * If the zygote dies, the rooms it forked die too (PR_SET_PDEATHSIG);
 * zygote_died tells the supervisor, and the zygote is started again unless
 * it died within a second of its start (then direct spawning takes over).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sfu/base/log.h"
#include "sfu/base/sfu.h"
#include "sfu/node/spawner.h"
#include "signaling/zygote.h"

#define PENDING_MAX 256

struct sfu_spawner_s {
  uv_loop_t *loop;
  sfu_spawner_cb_t cb;
  char binary[512];
  uv_process_t proc;          /* the zygote */
  uv_poll_t poll;             /* its control socket */
  uv_idle_t flush;            /* delivers queued exits */
  int fd;                     /* our end, -1 when down */
  int closes;                 /* handles still closing */
  int restart;                /* start again once they have closed */
  int closing_fd;             /* our end while its poll handle closes */
  int alive;                  /* zygote running */
  int stopping;
  int retired;                /* adopted from the previous sfud: exits only */
  int pid;                    /* the zygote's */
  uint32_t next_req;
  uint64_t started_ms;
  sfu_zygote_msg_t pending[PENDING_MAX]; /* exits seen during a request */
  int npending;
};

static int start(sfu_spawner_t *sp);

static void deliver(sfu_spawner_t *sp, const sfu_zygote_msg_t *m) {
  if (m->type == SFU_ZYGOTE_EXITED) sp->cb.exited(sp->cb.arg, m->pid, m->status, m->signal);
}

static void on_flush(uv_idle_t *h) {
  sfu_spawner_t *sp = h->data;
  uv_idle_stop(h);
  for (int i = 0; i < sp->npending; i++) deliver(sp, &sp->pending[i]);
  sp->npending = 0;
}

static void maybe_restart(sfu_spawner_t *sp);

static void on_flush_closed(uv_handle_t *h) { free(h->data); }

static void free_retired(sfu_spawner_t *sp) {
  uv_close((uv_handle_t *)&sp->flush, on_flush_closed);
}

static void on_poll_closed(uv_handle_t *h) {
  sfu_spawner_t *sp = h->data;
  close(sp->closing_fd);
  sp->closing_fd = -1;
  sp->closes--;
  if (sp->retired && sp->stopping) {
    free_retired(sp);
    return;
  }
  maybe_restart(sp);
}

static void on_proc_closed(uv_handle_t *h) {
  sfu_spawner_t *sp = h->data;
  sp->closes--;
  maybe_restart(sp);
}

static void down(sfu_spawner_t *sp) {
  if (sp->fd < 0) return;
  sp->closing_fd = sp->fd; /* closed once the poll handle is */
  sp->fd = -1;
  sp->closes++;
  uv_close((uv_handle_t *)&sp->poll, on_poll_closed);
}

static int read_msg(sfu_spawner_t *sp, sfu_zygote_msg_t *m) {
  ssize_t n;
  do
    n = recv(sp->fd, m, sizeof(*m), MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  if (n == (ssize_t)sizeof(*m)) return 1;
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
  return -1; /* EOF or garbage: the zygote is gone */
}

static void on_readable(uv_poll_t *h, int status, int events) {
  sfu_spawner_t *sp = h->data;
  sfu_zygote_msg_t m;
  int rv;
  (void)status, (void)events;
  while ((rv = read_msg(sp, &m)) == 1) deliver(sp, &m);
  if (rv < 0) {
    down(sp);
    if (sp->retired && sp->alive && !sp->stopping) { /* no exit callback: this is its death */
      sp->alive = 0;
      sfu_log(SFU_LOG_ERROR, "spawner", "retired zygote %d died; its rooms died with it", sp->pid);
      sp->cb.zygote_died(sp->cb.arg, sp);
    }
  }
}

static void on_zygote_exit(uv_process_t *p, int64_t status, int sig) {
  sfu_spawner_t *sp = p->data;
  sp->alive = 0;
  down(sp);
  on_flush(&sp->flush); /* exits it reported before dying */
  sp->closes++;
  uv_close((uv_handle_t *)p, on_proc_closed);
  if (sp->stopping) return;
  sfu_log(SFU_LOG_ERROR, "spawner", "zygote died (status %lld, signal %d); its rooms died with it",
          (long long)status, sig);
  sp->cb.zygote_died(sp->cb.arg, sp);
  sp->restart = sfu_now_ms() - sp->started_ms > 1000;
  if (!sp->restart)
    sfu_log(SFU_LOG_ERROR, "spawner", "zygote died right after start: rooms are exec'd directly");
  maybe_restart(sp);
}

/* The handles are reused, so a new zygote starts only once both closed. */
static void maybe_restart(sfu_spawner_t *sp) {
  if (sp->closes > 0 || !sp->restart || sp->stopping) return;
  sp->restart = 0;
  if (start(sp) == 0)
    sfu_log(SFU_LOG_INFO, "spawner", "zygote restarted");
  else
    sfu_log(SFU_LOG_ERROR, "spawner", "zygote restart failed: rooms are exec'd directly");
}

static int start(sfu_spawner_t *sp) {
  int sv[2], rv;
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) return -errno;
  char *args[] = {sp->binary, "--zygote", NULL};
  uv_stdio_container_t stdio[4] = {{.flags = UV_IGNORE},
                                   {.flags = UV_INHERIT_FD, .data.fd = 1},
                                   {.flags = UV_INHERIT_FD, .data.fd = 2},
                                   {.flags = UV_INHERIT_FD, .data.fd = sv[1]}};
  uv_process_options_t opt = {.exit_cb = on_zygote_exit, .file = sp->binary, .args = args,
                              .stdio_count = 4, .stdio = stdio};
  sp->proc.data = sp;
  rv = uv_spawn(sp->loop, &sp->proc, &opt);
  close(sv[1]);
  if (rv != 0) {
    close(sv[0]);
    uv_close((uv_handle_t *)&sp->proc, NULL);
    return rv;
  }
  sp->fd = sv[0];
  sp->pid = sp->proc.pid;
  sp->alive = 1;
  sp->started_ms = sfu_now_ms();
  uv_poll_init(sp->loop, &sp->poll, sp->fd);
  sp->poll.data = sp;
  uv_poll_start(&sp->poll, UV_READABLE, on_readable);
  return 0;
}

int sfu_spawner_start(sfu_spawner_t **out, uv_loop_t *loop, const char *binary,
                      const sfu_spawner_cb_t *cb) {
  sfu_spawner_t *sp = calloc(1, sizeof(*sp));
  *out = NULL;
  if (!sp) return SFU_ENOMEM;
  sp->loop = loop;
  sp->cb = *cb;
  sp->fd = sp->closing_fd = -1;
  snprintf(sp->binary, sizeof(sp->binary), "%s", binary);
  uv_idle_init(loop, &sp->flush);
  sp->flush.data = sp;
  int rv = start(sp);
  if (rv != 0) {
    uv_close((uv_handle_t *)&sp->flush, on_flush_closed);
    return rv;
  }
  *out = sp;
  return 0;
}

int sfu_spawner_alive(const sfu_spawner_t *sp) {
  return sp && sp->alive && sp->fd >= 0 && !sp->retired;
}

int sfu_spawner_pid(const sfu_spawner_t *sp) { return sp ? sp->pid : -1; }

int sfu_spawner_export(sfu_spawner_t *sp, int *pid) {
  if (!sp || !sp->alive || sp->fd < 0) return -1;
  *pid = sp->pid;
  int fl = fcntl(sp->fd, F_GETFD);
  if (fl < 0 || fcntl(sp->fd, F_SETFD, fl & ~FD_CLOEXEC) != 0) return -1;
  return sp->fd;
}

int sfu_spawner_adopt(sfu_spawner_t **out, uv_loop_t *loop, int pid, int fd,
                      const sfu_spawner_cb_t *cb) {
  sfu_spawner_t *sp = calloc(1, sizeof(*sp));
  *out = NULL;
  if (!sp) return SFU_ENOMEM;
  sp->loop = loop;
  sp->cb = *cb;
  sp->retired = 1;
  sp->pid = pid;
  sp->fd = fd;
  sp->closing_fd = -1;
  sp->alive = 1;
  uv_idle_init(loop, &sp->flush);
  sp->flush.data = sp;
  uv_poll_init(loop, &sp->poll, fd);
  sp->poll.data = sp;
  uv_poll_start(&sp->poll, UV_READABLE, on_readable);
  *out = sp;
  return 0;
}

int sfu_spawner_spawn(sfu_spawner_t *sp, char *const *argv, int ipc_fd, int *pid) {
  char buf[sizeof(sfu_zygote_req_t) + SFU_ZYGOTE_MAX_ARGBYTES];
  sfu_zygote_req_t req = {SFU_ZYGOTE_MAGIC, ++sp->next_req, 0, 0};
  size_t off = sizeof(req);

  if (!sfu_spawner_alive(sp)) return SFU_ECANCELED;
  for (; argv[req.argc]; req.argc++) {
    size_t l = strlen(argv[req.argc]) + 1;
    if (req.argc + 1 >= SFU_ZYGOTE_MAX_ARGS || off + l > sizeof(buf)) return SFU_E2BIG;
    memcpy(buf + off, argv[req.argc], l);
    off += l;
  }
  req.args_len = (uint32_t)(off - sizeof(req));
  memcpy(buf, &req, sizeof(req));

  char cbuf[CMSG_SPACE(sizeof(int))];
  memset(cbuf, 0, sizeof(cbuf));
  struct iovec iov = {buf, off};
  struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                      .msg_controllen = sizeof(cbuf)};
  struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &ipc_fd, sizeof(int));
  ssize_t n;
  do
    n = sendmsg(sp->fd, &mh, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n != (ssize_t)off) return n < 0 ? -errno : SFU_EPROTO;

  uint64_t deadline = sfu_now_ms() + 1000;
  for (;;) {
    sfu_zygote_msg_t m;
    int rv = read_msg(sp, &m);
    if (rv < 0) {
      down(sp);
      return SFU_ECANCELED;
    }
    if (rv == 0) {
      uint64_t now = sfu_now_ms();
      if (now >= deadline) return SFU_ETIMEDOUT;
      struct pollfd pf = {sp->fd, POLLIN, 0};
      poll(&pf, 1, (int)(deadline - now));
      continue;
    }
    if (m.type == SFU_ZYGOTE_EXITED) {
      if (sp->npending < PENDING_MAX)
        sp->pending[sp->npending++] = m;
      else
        sfu_log(SFU_LOG_ERROR, "spawner", "exit of pid %d lost: queue full", m.pid);
      uv_idle_start(&sp->flush, on_flush);
      continue;
    }
    if (m.req_id != req.req_id) continue; /* a reply to a request that timed out */
    if (m.type == SFU_ZYGOTE_FAILED) return m.err ? m.err : SFU_EPROTO;
    *pid = m.pid;
    return 0;
  }
}

void sfu_spawner_free(sfu_spawner_t *sp) { free(sp); }

void sfu_spawner_stop(sfu_spawner_t *sp) {
  if (!sp) return;
  sp->stopping = 1;
  if (sp->retired) { /* no proc handle: freed once its handles have closed */
    if (sp->fd >= 0)
      down(sp); /* on_poll_closed frees it */
    else if (sp->closes == 0)
      free_retired(sp);
    return; /* else on_poll_closed (still running) frees it */
  }
  down(sp); /* EOF: the zygote exits; its exit callback closes proc */
  uv_close((uv_handle_t *)&sp->flush, NULL);
}
