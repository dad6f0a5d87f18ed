/*
 * gloop.c -- a GLib GMainContext driven from a libuv loop (see gloop.h).
 *
 * JOB
 *
 * GLib's own loop does, per iteration: prepare (sources say whether they are
 * ready and how long GLib may sleep), query (the fds to poll), poll(2), check
 * (hand the poll results back), dispatch. Those four steps are public API, so
 * any other loop can take the poll(2) step's place. Here libuv does: a
 * uv_prepare_t runs prepare+query just before libuv blocks, a uv_check_t runs
 * check+dispatch just after, a uv_timer_t bounds the sleep by GLib's
 * timeout, and readiness of GLib's fds reaches libuv through one uv_poll_t.
 *
 * WHERE THE GLIB FDS LIVE
 *
 * Not in libuv's watcher table. They sit in a private epoll instance,
 * `epfd`, and libuv polls `epfd` itself, which is readable whenever any
 * registered GLib fd is ready. The textbook alternative, one uv_poll_t per
 * GLib fd, fails on libuv 1.44 in two ways that GLib code triggers in normal
 * operation (both reproduced here):
 *
 *   - uv_poll_start() on an fd that GLib still lists but some source already
 *     closed makes libuv's deferred epoll_ctl(ADD) fail with EBADF, and
 *     uv__io_poll() calls abort().
 *   - if a GLib fd is closed while its uv_poll_t is active (libnice removing a
 *     stream from a signaling callback) and the number is reused by a new uv
 *     handle (an accept() in the same turn), the new handle never gets
 *     loop->watchers[fd]; stopping the poll then clears the slot and the new
 *     handle never sees an event again.
 *
 * With a private set those become epoll_ctl() return values handled here.
 *
 * INVARIANTS
 *
 * 1. After prepare, epfd holds exactly: the wakeup fd (registered once at
 *    init) plus one registration per fd in this turn's GPollFD list that
 *    epoll accepted, with the events GLib asked for. `reg` mirrors that set,
 *    sorted by fd.
 * 2. Registrations persist across turns, so each must be re-proved each
 *    turn: GLib code may close an fd at any moment, and the number may come
 *    back as a different file. Prepare tries EPOLL_CTL_ADD on every listed
 *    fd. epoll keys registrations by (fd number, open file), so EEXIST means
 *    "this very file is still registered", success means the registration
 *    was new or the old file is gone, and EBADF means the fd is closed.
 *    That is one cheap syscall per fd per turn, and no DEL+ADD pair.
 * 3. A registration can outlive its fd when the file is still open
 *    elsewhere (dup, fork): the kernel then keeps the old entry, which can
 *    neither be removed by number nor told apart from a new file on the same
 *    number. Whenever prepare sees that a registered fd was closed (DEL
 *    fails, or ADD succeeds where EEXIST was due), or check sees an event
 *    for an fd it never registered, epfd is rebuilt: a fresh epoll instance
 *    is dup3()ed over the same number and the current set is added again.
 *    Rare (an fd closed while registered), O(fds) when it happens.
 * 4. fds epoll refuses (EBADF: closed; EPERM: regular files; ENOMEM/ENOSPC:
 *    out of watches) are "unwatched": poll(2) with timeout 0 in prepare and
 *    again in check, which is what GLib's poll would report for them (NVAL,
 *    always ready). If none of them is ready, the sleep is capped at
 *    GLOOP_DEGRADED_MS so their readiness is not missed for long.
 * 5. No gloop uv handle is referenced: the gloop never keeps uv_run() alive.
 * 6. GLib calls run only on the owning thread, with `busy` counting them;
 *    sfu_gloop_close() from inside one defers popping/unreffing the context
 *    until the outermost returns (g_main_context_dispatch holds no ref of its
 *    own, so an unref inside it would free the context under it).
 *
 * MEMORY
 *
 * Per gloop: GPollFD fds[cap], int unwatched[cap], sfu_gloop_reg_t
 * reg[cap] + reg_next[cap] (swapped each turn), struct epoll_event
 * evs[cap + 2]. cap starts at GLOOP_INITIAL_FDS and doubles only when GLib
 * lists more fds than ever before. Growth uses g_renew(), which aborts on
 * OOM like every other GLib allocation on this thread; init uses
 * g_try_new() and reports UV_ENOMEM.
 *
 * COST PER TURN (measured numbers in docs/internals/loop.md)
 *
 * prepare: g_main_context_prepare + query (one context lock each, a walk of
 * all sources), one epoll_ctl(ADD) per listed fd other than the wakeup fd,
 * a uv timer restart. check: one epoll_wait(0) only if epfd fired, then
 * g_main_context_check (+ dispatch). An idle context costs no syscall.
 */
#include "tools/client/gloop.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define GLOOP_INITIAL_FDS 16 /* first capacity of the per-turn arrays */
#define GLOOP_DEGRADED_MS 10 /* max sleep while an fd is unwatched */

static void on_prepare(uv_prepare_t *h);
static void on_check(uv_check_t *h);
static void on_timer(uv_timer_t *h);
static void on_epoll(uv_poll_t *h, int status, int events);

/* ---- event masks ------------------------------------------------------ */

/* GLib's G_IO_* equal poll(2)'s POLL* on Linux and EPOLLIN/OUT/PRI/ERR/HUP
 * share those values too, but say it explicitly: it is the one place a
 * mismatch would hide. G_IO_ERR/HUP/NVAL are never requested (GLib masks
 * them out in query; epoll reports ERR/HUP regardless). */
static uint32_t
g2e(gushort ev)
{
  uint32_t e = 0;

  if (ev & G_IO_IN)
    e |= EPOLLIN;
  if (ev & G_IO_OUT)
    e |= EPOLLOUT;
  if (ev & G_IO_PRI)
    e |= EPOLLPRI;
  return e;
}

static gushort
e2g(uint32_t e)
{
  gushort ev = 0;

  if (e & EPOLLIN)
    ev |= G_IO_IN;
  if (e & EPOLLOUT)
    ev |= G_IO_OUT;
  if (e & EPOLLPRI)
    ev |= G_IO_PRI;
  if (e & EPOLLERR)
    ev |= G_IO_ERR;
  if (e & EPOLLHUP)
    ev |= G_IO_HUP;
  return ev;
}

/* epoll_ctl() returning 0 or -errno. data.fd carries the fd so check can map
 * an event back to its GPollFD. */
static int
ep_ctl(int epfd, int op, int fd, uint32_t events)
{
  struct epoll_event e;

  memset(&e, 0, sizeof(e));
  e.events = events;
  e.data.fd = fd;
  return epoll_ctl(epfd, op, fd, &e) == 0 ? 0 : -errno;
}

/* ---- arrays ----------------------------------------------------------- */

static void
grow(sfu_gloop_t *g, int need)
{
  int cap = g->cap_fds;

  while (cap < need)
    cap *= 2;
  g->fds = g_renew(GPollFD, g->fds, cap);
  g->unwatched = g_renew(int, g->unwatched, cap);
  g->reg = g_renew(sfu_gloop_reg_t, g->reg, cap);
  g->reg_next = g_renew(sfu_gloop_reg_t, g->reg_next, cap);
  g->evs = g_renew(struct epoll_event, g->evs, cap + 2);
  g->cap_fds = cap;
  g->cap_evs = cap + 2;
}

static void
free_arrays(sfu_gloop_t *g)
{
  g_free(g->fds);
  g_free(g->unwatched);
  g_free(g->reg);
  g_free(g->reg_next);
  g_free(g->evs);
  g->fds = NULL;
  g->unwatched = NULL;
  g->reg = g->reg_next = NULL;
  g->evs = NULL;
  g->cap_fds = g->cap_evs = g->n_fds = g->n_reg = 0;
}

/* ---- the private epoll set ------------------------------------------- */

/*
 * Replace the epoll instance behind g->epfd with an empty one, keeping the
 * number (libuv's uv_poll_t is bound to it). The old instance, with any
 * registration that outlived its fd, dies with its last reference. Leaves
 * only the wakeup fd registered; the caller re-adds the rest.
 */
static int
rebuild_epfd(sfu_gloop_t *g)
{
  int nfd, err;

  nfd = epoll_create1(EPOLL_CLOEXEC);
  if (nfd < 0) {
    g->epoll_errors++;
    return -errno;
  }
  /* Take epfd out of libuv's epoll before the file behind it changes,
   * then let uv_poll_start() queue a fresh ADD for the new file. */
  uv_poll_stop(&g->epoll_poll);
  if (dup3(nfd, g->epfd, O_CLOEXEC) < 0) {
    err = -errno;
    g->epoll_errors++;
    close(nfd);
    uv_poll_start(&g->epoll_poll, UV_READABLE, on_epoll);
    return err;
  }
  close(nfd);
  g->n_reg = 0;
  if (g->wakeup_fd >= 0 &&
      ep_ctl(g->epfd, EPOLL_CTL_ADD, g->wakeup_fd, EPOLLIN) != 0)
    g->wakeup_fd = -1; /* treat it like any other fd from now on */
  uv_poll_start(&g->epoll_poll, UV_READABLE, on_epoll);
  g->rebuilds++;
  return 0;
}

static int
reg_cmp(const void *a, const void *b)
{
  const sfu_gloop_reg_t *x = a, *y = b;

  return (x->fd > y->fd) - (x->fd < y->fd);
}

/* Events wanted for fds[i]. With sorted fds GLib has already merged
 * duplicates; otherwise OR every entry for this fd and flag the later
 * duplicates so only the first one registers. */
static uint32_t
wanted(const sfu_gloop_t *g, int i, int *dup)
{
  uint32_t want = 0;
  int k;

  *dup = 0;
  if (g->fds_sorted)
    return g2e(g->fds[i].events);
  for (k = 0; k < g->n_fds; k++) {
    if (g->fds[k].fd != g->fds[i].fd)
      continue;
    if (k < i) {
      *dup = 1;
      return 0;
    }
    want |= g2e(g->fds[k].events);
  }
  return want;
}

/*
 * One pass of invariant 1: bring epfd from `reg` (last turn) to this turn's
 * fds, building reg_next. Returns 1 if a registration was seen to outlive
 * its fd (invariant 3) and epfd should be rebuilt.
 */
static int
sync_pass(sfu_gloop_t *g)
{
  const sfu_gloop_reg_t *old = g->reg;
  const sfu_gloop_reg_t *old_end = g->reg + g->n_reg;
  const sfu_gloop_reg_t *match;
  sfu_gloop_reg_t *tmp;
  uint32_t want;
  int suspect = 0, n = 0, i, fd, rv, dup;

  g->n_unwatched = 0;
  if (!g->fds_sorted) {
    /* No merge possible; start from an empty set. */
    for (; old < old_end; old++)
      if (ep_ctl(g->epfd, EPOLL_CTL_DEL, old->fd, 0) != 0)
        suspect = 1;
  }

  for (i = 0; i < g->n_fds; i++) {
    fd = g->fds[i].fd;
    if (fd < 0 || fd == g->wakeup_fd)
      continue; /* poll(2) ignores negative fds; wakeup is permanent */
    match = NULL;
    if (g->fds_sorted) {
      /* Registered last turn, not listed now: drop. A failing DEL means
       * the fd was closed while registered. */
      for (; old < old_end && old->fd < fd; old++)
        if (ep_ctl(g->epfd, EPOLL_CTL_DEL, old->fd, 0) != 0)
          suspect = 1;
      if (old < old_end && old->fd == fd)
        match = old++;
    }
    want = wanted(g, i, &dup);
    if (dup)
      continue;

    rv = ep_ctl(g->epfd, EPOLL_CTL_ADD, fd, want);
    /* Registered last turn but no longer as this file (ADD succeeded or
     * the fd is closed): it was closed while registered. */
    if (match != NULL && rv != -EEXIST)
      suspect = 1;
    if (rv == -EEXIST) {
      /* This same open file is registered: still valid. */
      rv = 0;
      if (match == NULL || match->events != want)
        rv = ep_ctl(g->epfd, EPOLL_CTL_MOD, fd, want);
    }
    if (rv == 0) {
      g->reg_next[n].fd = fd;
      g->reg_next[n].events = want;
      n++;
      continue;
    }
    if (rv != -EBADF && rv != -EPERM)
      g->epoll_errors++;
    g->unwatched[g->n_unwatched++] = i;
  }
  for (; old < old_end; old++)
    if (ep_ctl(g->epfd, EPOLL_CTL_DEL, old->fd, 0) != 0)
      suspect = 1;

  tmp = g->reg;
  g->reg = g->reg_next;
  g->reg_next = tmp;
  g->n_reg = n;
  if (!g->fds_sorted) /* keep reg sorted for the next turn's merge */
    qsort(g->reg, (size_t)n, sizeof(*g->reg), reg_cmp);
  return suspect;
}

/* poll(2) the unwatched fds without blocking. Returns 1 if one is ready. */
static int
poll_unwatched(sfu_gloop_t *g)
{
  GPollFD *p;
  int k, ready = 0;

  for (k = 0; k < g->n_unwatched; k++) {
    p = &g->fds[g->unwatched[k]];
    p->revents = 0;
    if (g_poll(p, 1, 0) > 0 && p->revents != 0)
      ready = 1;
  }
  return ready;
}

/* Set revents on the GPollFD(s) of fd. Returns 0 if fd is not listed. */
static int
mark(sfu_gloop_t *g, int fd, gushort rev)
{
  int lo = 0, hi = g->n_fds - 1, mid, found = 0, k;

  if (g->fds_sorted) {
    while (lo <= hi) {
      mid = lo + (hi - lo) / 2;
      if (g->fds[mid].fd == fd) {
        g->fds[mid].revents |= rev;
        return 1;
      }
      if (g->fds[mid].fd < fd)
        lo = mid + 1;
      else
        hi = mid - 1;
    }
    return 0;
  }
  for (k = 0; k < g->n_fds; k++)
    if (g->fds[k].fd == fd) {
      g->fds[k].revents |= rev;
      found = 1;
    }
  return found;
}

/* Copy readiness from epfd into this turn's GPollFDs. */
static void
harvest(sfu_gloop_t *g)
{
  int r, e, fd, stale = 0;

  g->epoll_ready = 0;
  do
    r = epoll_wait(g->epfd, g->evs, g->cap_evs, 0);
  while (r < 0 && errno == EINTR);
  if (r < 0) {
    g->epoll_errors++;
    return;
  }
  for (e = 0; e < r; e++) {
    fd = g->evs[e].data.fd;
    if (!mark(g, fd, e2g(g->evs[e].events)) && fd != g->wakeup_fd)
      stale = 1;
  }
  /* evs has room for every registration plus one: a full answer, or an fd
   * never registered, means a registration outlived its fd. */
  if (stale || r == g->cap_evs)
    rebuild_epfd(g); /* n_reg = 0: next prepare re-adds everything */
}

/* ---- teardown --------------------------------------------------------- */

static void
release_one(sfu_gloop_t *g)
{
  if (--g->pending > 0)
    return;
  if (g->epfd >= 0)
    close(g->epfd);
  g->epfd = -1;
  free_arrays(g);
  if (g->close_cb != NULL)
    g->close_cb(g);
}

static void
on_handle_closed(uv_handle_t *h)
{
  release_one(h->data);
}

/* Undo init's GLib side: pop (releases push's acquire), release our own
 * acquire, drop our ref. If someone pushed another context on top of ours
 * and never popped it, ours cannot be popped: the stack keeps its own ref
 * and ownership, and only our acquire and ref are dropped. */
static void
finish_glib(sfu_gloop_t *g)
{
  GMainContext *ctx = g->ctx;

  if (ctx == NULL)
    return;
  g->ctx = NULL;
  if (g_main_context_get_thread_default() == ctx)
    g_main_context_pop_thread_default(ctx);
  g_main_context_release(ctx);
  g_main_context_unref(ctx);
  release_one(g);
}

/* ---- the loop hooks --------------------------------------------------- */

static void
on_timer(uv_timer_t *h)
{
  /* Nothing to do: firing ended libuv's sleep, check does the work. */
}

static void
on_epoll(uv_poll_t *h, int status, int events)
{
  sfu_gloop_t *g = h->data;

  /* An error status (libuv maps POLLERR to UV_EBADF and stops the handle)
   * is left to harvest; prepare restarts the handle. */
  g->epoll_ready = 1;
}

static void
on_prepare(uv_prepare_t *h)
{
  sfu_gloop_t *g = h->data;
  int timeout, n, ms, ready, prev, i;

  if (g->closing)
    return;
  if (!uv_is_active((uv_handle_t *)&g->epoll_poll))
    uv_poll_start(&g->epoll_poll, UV_READABLE, on_epoll);

  g->busy++;
  g_main_context_prepare(g->ctx, &g->max_prio);
  while ((n = g_main_context_query(g->ctx, g->max_prio, &timeout, g->fds,
                                   g->cap_fds)) > g->cap_fds)
    grow(g, n);
  g->busy--;
  if (g->closing) { /* a source's prepare() closed us */
    if (g->busy == 0)
      finish_glib(g);
    return;
  }
  g->n_fds = n;

  g->fds_sorted = 1;
  for (i = 0, prev = -1; i < n; i++) {
    if (g->fds[i].fd <= prev)
      g->fds_sorted = 0;
    prev = g->fds[i].fd;
  }
  if (sync_pass(g) && rebuild_epfd(g) == 0)
    sync_pass(g); /* from an empty set: cannot find anything suspect */
  ready = poll_unwatched(g);

  if (ready || timeout == 0)
    ms = 0;
  else if (g->n_unwatched > 0)
    ms = (timeout < 0 || timeout > GLOOP_DEGRADED_MS) ? GLOOP_DEGRADED_MS
                                                      : timeout;
  else
    ms = timeout;

  if (ms < 0) {
    uv_timer_stop(&g->timer);
  } else {
    /* loop->time was read before this turn's timers ran. After a long
     * callback it is stale, the timer would fire early, GLib's check (on
     * its own clock) would find nothing due, and the turn is wasted. */
    if (ms > 0)
      uv_update_time(g->loop);
    uv_timer_start(&g->timer, on_timer, (uint64_t)ms, 0);
  }
  g->prepared = 1;
}

static void
on_check(uv_check_t *h)
{
  sfu_gloop_t *g = h->data;
  int k;

  /* prepared == 0: this turn's prepare did not run (the gloop was started
   * from a callback in the middle of the turn). GLib must see prepare and
   * query before check. */
  if (!g->prepared || g->closing)
    return;
  g->prepared = 0;

  if (g->epoll_ready)
    harvest(g);
  for (k = 0; k < g->n_unwatched; k++) {
    GPollFD *p = &g->fds[g->unwatched[k]];

    p->revents = 0;
    (void)g_poll(p, 1, 0);
  }

  g->busy++;
  if (g_main_context_check(g->ctx, g->max_prio, g->fds, g->n_fds)) {
    g->dispatches++;
    g_main_context_dispatch(g->ctx);
  }
  g->busy--;
  g->turns++;
  if (g->closing && g->busy == 0)
    finish_glib(g);
}

/* ---- public ----------------------------------------------------------- */

int
sfu_gloop_init(uv_loop_t *loop, sfu_gloop_t *g)
{
  GPollFD probe;
  void *data;
  int rv, n, timeout;

  if (loop == NULL || g == NULL)
    return UV_EINVAL;
  data = g->data;
  memset(g, 0, sizeof(*g));
  g->data = data;
  g->loop = loop;
  g->epfd = -1;
  g->wakeup_fd = -1;

  g->cap_fds = GLOOP_INITIAL_FDS;
  g->cap_evs = GLOOP_INITIAL_FDS + 2;
  g->fds = g_try_new(GPollFD, g->cap_fds);
  g->unwatched = g_try_new(int, g->cap_fds);
  g->reg = g_try_new(sfu_gloop_reg_t, g->cap_fds);
  g->reg_next = g_try_new(sfu_gloop_reg_t, g->cap_fds);
  g->evs = g_try_new(struct epoll_event, g->cap_evs);
  if (g->fds == NULL || g->unwatched == NULL || g->reg == NULL ||
      g->reg_next == NULL || g->evs == NULL) {
    rv = UV_ENOMEM;
    goto fail;
  }

  g->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (g->epfd < 0) {
    rv = -errno;
    goto fail;
  }
  rv = uv_poll_init(loop, &g->epoll_poll, g->epfd);
  if (rv != 0)
    goto fail;

  /* Nothing below fails: these inits only link the handle into the loop
   * (libuv src/unix/loop-watcher.c, timer.c), and GLib aborts on OOM. */
  uv_prepare_init(loop, &g->prepare);
  uv_check_init(loop, &g->check);
  uv_timer_init(loop, &g->timer);
  g->prepare.data = g->check.data = g->timer.data = g->epoll_poll.data = g;

  g->ctx = g_main_context_new();
  (void)g_main_context_acquire(g->ctx); /* fresh context: no owner yet */
  g_main_context_push_thread_default(g->ctx);

  /* A fresh context polls exactly one fd, its own wakeup eventfd. It lives
   * as long as the context, so it is registered once and never probed. */
  n = g_main_context_query(g->ctx, G_MAXINT, &timeout, &probe, 1);
  if (n == 1 && probe.fd >= 0 &&
      ep_ctl(g->epfd, EPOLL_CTL_ADD, probe.fd, EPOLLIN) == 0)
    g->wakeup_fd = probe.fd;

  uv_prepare_start(&g->prepare, on_prepare);
  uv_check_start(&g->check, on_check);
  uv_poll_start(&g->epoll_poll, UV_READABLE, on_epoll);
  uv_unref((uv_handle_t *)&g->prepare);
  uv_unref((uv_handle_t *)&g->check);
  uv_unref((uv_handle_t *)&g->timer);
  uv_unref((uv_handle_t *)&g->epoll_poll);
  return 0;

fail:
  if (g->epfd >= 0)
    close(g->epfd);
  g->epfd = -1;
  free_arrays(g);
  return rv;
}

void
sfu_gloop_close(sfu_gloop_t *g, void (*close_cb)(sfu_gloop_t *g))
{
  if (g->closing)
    return;
  g->closing = 1;
  g->close_cb = close_cb;
  g->prepared = 0;
  g->pending = 5; /* four uv handles + the GLib context */
  uv_close((uv_handle_t *)&g->prepare, on_handle_closed);
  uv_close((uv_handle_t *)&g->check, on_handle_closed);
  uv_close((uv_handle_t *)&g->timer, on_handle_closed);
  uv_close((uv_handle_t *)&g->epoll_poll, on_handle_closed);
  if (g->busy == 0)
    finish_glib(g);
}
