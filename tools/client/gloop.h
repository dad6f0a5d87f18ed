/*
 * gloop.h -- run a GLib GMainContext inside a libuv loop on one thread.
 *
 * libnice (ICE) only knows GLib: its timers and socket readers are GSources
 * on a GMainContext. Everything else in a client process of tools/
 * (sfu-replay, the tests' peers) runs on a uv_loop_t; the room process has
 * neither GLib nor libnice. sfu_gloop_t makes the uv loop the master and
 * drives the GLib context from it, so one thread serves both with no locks
 * and no second poller:
 *
 *   uv turn:  timers -> idle -> PREPARE -> poll -> CHECK -> closing
 *                                  |                  |
 *            g_main_context_prepare/query    g_main_context_check/dispatch
 *            sync GLib fds into epfd         read readiness from epfd
 *            arm timer for GLib's timeout
 *
 * The GLib fds are kept in a private epoll instance (`epfd`) and libuv polls
 * that one descriptor; libuv's own table never holds a GLib fd. See
 * docs/internals/loop.md for why (short version: a uv_poll_t per GLib fd can
 * abort() the process or silently deafen an unrelated uv handle when GLib code
 * closes an fd and the number is reused), the per-turn costs, and what
 * breaks if someone iterates the context elsewhere.
 *
 * Lifecycle is the libuv one (docs/style.md, "Lifecycles": an embedded
 * handle): the caller owns the memory, calls sfu_gloop_init(), later
 * sfu_gloop_close(), and may free the memory in close_cb. Linux only
 * (epoll).
 *
 * Liveness: none of the gloop's uv handles is referenced, so they never keep
 * uv_run() alive. The owner keeps the loop alive with its own handles (a
 * daemon always has some: signal watchers, listening sockets). Pending GLib
 * sources alone do not keep uv_run() going; they run while something else
 * does.
 */
#ifndef SFU_GLOOP_H
#define SFU_GLOOP_H

#include <stdint.h>

#include <glib.h>
#include <uv.h>

struct epoll_event; /* <sys/epoll.h>; only pointed to here */

typedef struct sfu_gloop_s sfu_gloop_t;   /* embedded handle, caller allocates */

/*
 * One GLib fd that sits in `epfd` from one turn to the next: the fd number
 * and the epoll event mask it was registered with. The array of these is
 * sorted by fd, like the GPollFD array GLib hands out, so prepare can merge
 * the two in one pass.
 */
typedef struct {
  int fd;          /* descriptor number, as GLib listed it */
  uint32_t events; /* EPOLLIN/EPOLLOUT/EPOLLPRI registered for it */
} sfu_gloop_reg_t;

/*
 * The embedded handle. Fields above the line are the public surface; the
 * rest is state that gloop.c owns and callers only read (counters).
 *
 * Arrays: `fds`, `unwatched`, `reg`, `reg_next` hold `cap_fds` entries,
 * `evs` holds `cap_fds + 2` (every registration plus the wakeup fd plus one
 * spare, so a full epoll_wait() answer means stale registrations). They grow
 * only when GLib lists more fds than ever before; a steady-state turn does
 * not allocate.
 */
struct sfu_gloop_s {
  void *data;        /* free for the owner; kept across sfu_gloop_init() */
  uv_loop_t *loop;   /* the master loop this gloop runs on */
  GMainContext *ctx; /* owned ref from g_main_context_new(); acquired and
                        pushed as this thread's default in init; NULL once
                        close has popped, released and unreffed it */
  uv_prepare_t prepare; /* prepare + query GLib, sync fds, arm timer */
  uv_check_t check;     /* collect readiness, check + dispatch GLib */
  uv_timer_t timer;     /* wakes uv for GLib's next timeout (0 = now) */
  uv_poll_t epoll_poll; /* readable when any GLib fd in epfd is ready */
  /* ---------------------------------------------------------------------- */
  int epfd;      /* private epoll instance holding GLib's fds */
  int wakeup_fd; /* GLib's own wakeup eventfd, registered once at init and
                    never probed again; -1 if it could not be identified */

  GPollFD *fds;   /* this turn's GLib poll set, from g_main_context_query */
  int n_fds;      /* entries valid in fds this turn */
  int cap_fds;    /* allocated entries in fds (and in the arrays below) */
  int max_prio;   /* priority from g_main_context_prepare, for check */
  int *unwatched; /* indexes into fds epoll refused (EBADF, EPERM, ENOMEM):
                     polled with poll(2) in prepare and again in check */
  int n_unwatched; /* entries valid in unwatched */

  sfu_gloop_reg_t *reg;      /* registrations now in epfd, sorted by fd */
  sfu_gloop_reg_t *reg_next; /* scratch for the next turn's set; swapped */
  int n_reg;                 /* entries valid in reg */
  struct epoll_event *evs;   /* epoll_wait() output buffer */
  int cap_evs;               /* entries in evs: cap_fds + 2 */

  unsigned prepared : 1;    /* prepare ran this turn; check may consult GLib */
  unsigned epoll_ready : 1; /* epoll_poll fired since the last check */
  unsigned fds_sorted : 1;  /* this turn's fds ascend strictly (GLib >= 2.60
                               guarantees it; checked, never assumed) */
  int busy;                 /* GLib calls on the stack; close defers the
                               context teardown until it drops to 0 */
  int pending;              /* close: uv handles + GLib teardown outstanding */

  uint64_t turns;     /* completed prepare+check turns */
  uint64_t dispatches; /* turns in which GLib had something to dispatch */
  uint64_t rebuilds;  /* epfd rebuilt after a stale registration was seen */
  uint64_t epoll_errors; /* epoll_ctl failures other than EEXIST/EBADF */

  int closing;                  /* sfu_gloop_close() was called */
  void (*close_cb)(sfu_gloop_t *g); /* from sfu_gloop_close(); may be NULL */
};

/*
 * Create a GMainContext, make this thread its owner and its thread default,
 * and hook it into `loop`. Call on the loop's thread, before uv_run() or
 * from any callback of it. Initialise the gloop early (right after
 * uv_loop_init): libuv runs prepare handles newest first, and a prepare
 * callback that runs after the gloop's and attaches GLib sources is only seen
 * one turn later.
 *
 * g->ctx is ready for g_source_attach(), nice_agent_new(g->ctx, ...) and
 * nice_agent_attach_recv(..., g->ctx, ...). GLib calls that take no context
 * (g_idle_add, g_timeout_add, attach_recv with NULL) use the *global*
 * default context, which nothing iterates here.
 *
 * Returns 0, UV_EINVAL for NULL arguments, UV_ENOMEM, or a negative errno
 * from epoll_create1()/uv_poll_init(). On error nothing needs closing.
 */
int sfu_gloop_init(uv_loop_t *loop, sfu_gloop_t *g);

/*
 * Stop driving GLib and release everything: closes the four uv handles, pops
 * the context off this thread's default stack, releases and unrefs it (GLib
 * then destroys the sources still attached, unless someone else, e.g. a
 * NiceAgent, holds a ref), and closes epfd. close_cb runs from the uv loop
 * once no uv handle of the gloop is in use; free the memory there, not
 * before. Call on the loop thread, in LIFO order with other pushes of a
 * thread-default context. Safe to call from inside a GLib callback the gloop
 * is dispatching: the context teardown then waits until dispatch returns.
 * A second call is ignored.
 */
void sfu_gloop_close(sfu_gloop_t *g, void (*close_cb)(sfu_gloop_t *g));

#endif
