/*
 * shell.c -- the room process around the call engine (see shell.h).
 *
 * Messages from sfud (docs/internals/ipc.md): ping -> pong, stats ->
 * stats, shutdown -> closing + exit 0, capture; client_join / client_msg /
 * client_gone / server_mute / kick go to the engine. Messages to sfud:
 * ready, pong, stats, closing, and whatever the engine emits.
 *
 * Time: every input to the engine carries the clock read here, once per
 * datagram, message or timer. One uv timer runs the engine's ticks at
 * sfu_room_next_tick() and the recorder's; the empty timer runs whenever
 * nobody is in the room; the parent watchdog ends the room when sfud goes
 * silent.
 *
 * Packets: a participant's transport decrypts in place in the ICE agent's
 * receive slot and hands the plain packet here, which records it (when a
 * capture runs) and passes it to the engine. The engine's outgoing packets
 * are protected in its scratch buffer and copied into the agent's send
 * batch (sendmmsg once per loop turn).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <sys/resource.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sfu/base/log.h"
#include "sfu/base/sfu.h"
#include "sfu/net/transport.h"
#include "sfu/room/shell.h"

#define HEAP_TRIM_PERIOD_US 1000000 /* trim_heap(): a check a second at most */
#define HEAP_TRIM_STEP (64 << 10)    /* bytes freed since the last trim */
#define SFU_MOVE_LINGER_MS 500       /* a room that moved forwards this long after */

static sfu_time_t now(void) {
  sfu_time_t t = {sfu_now_us(), sfu_wall_ms() * 1000};
  return t;
}

static sfu_shell_t *shell_of(const sfu_participant_t *p) { return p->room->io->data; }

/* Held for the next sfud, or until the channel to sfud drains: a client
 * message is dropped first when full (its client reconnects and
 * renegotiates), records for the control plane last. */
static void hold(sfu_shell_t *sh, json_t *m) {
  if (json_array_size(sh->held) >= SFU_SHELL_MAX_HELD) {
    size_t i, victim = 0;
    json_t *h;
    json_array_foreach(sh->held, i, h) {
      const char *t = json_string_value(json_object_get(h, "type"));
      if (t && strncmp(t, "client_", 7) == 0) {
        victim = i;
        break;
      }
    }
    json_array_remove(sh->held, victim);
    sh->held_dropped++;
  }
  json_array_append_new(sh->held, m);
}

/* In order: once one message waits, every later one waits behind it. A
 * send refused because sfud is SFU_IPC_DEFAULT_MAX_QUEUED behind is held
 * and sent again at the drain (on_ipc_drain), not lost. */
static void send_ipc(sfu_shell_t *sh, json_t *m) {
  if (sh->orphaned || json_array_size(sh->held) > 0) {
    hold(sh, m);
    return;
  }
  int rv = sfu_ipc_send(&sh->ipc, m);
  if (rv == SFU_EAGAIN) {
    sh->held_congested++;
    hold(sh, m);
    return;
  }
  if (rv != 0 && rv != SFU_ECANCELED)
    sfu_log(SFU_LOG_WARN, "room", "IPC send failed: %s", sfu_strerror(rv));
  json_decref(m);
}

/* Sends what was held, in order, until the channel refuses again. */
static void send_held(sfu_shell_t *sh) {
  json_t *held = sh->held;
  size_t i;
  json_t *m;
  sh->held = json_array();
  json_array_foreach(held, i, m) send_ipc(sh, json_incref(m));
  json_decref(held);
}

static void on_ipc_drain(sfu_ipc_t *ipc) {
  sfu_shell_t *sh = ipc->data;
  if (!sh->orphaned) send_held(sh);
}

static void arm_tick(sfu_shell_t *sh);

/* --- the engine's I/O -------------------------------------------------- */

static void io_emit(sfu_room_io_t *io, json_t *msg) { send_ipc(io->data, msg); }

static int io_send(sfu_room_io_t *io, sfu_participant_t *p, int rtcp, uint8_t *buf, size_t len,
                   size_t cap) {
  if (!p->transport) return SFU_EAGAIN;
  return rtcp ? sfu_transport_send_rtcp(p->transport, buf, len, cap)
              : sfu_transport_send_rtp(p->transport, buf, len, cap);
}

static void tp_rtp(void *arg, uint8_t *buf, size_t len) {
  sfu_participant_t *p = arg;
  sfu_shell_t *sh = shell_of(p);
  if (sh->rec.w) sfu_recorder_packet(&sh->rec, p->number, buf, len);
  sfu_room_on_rtp(&sh->room, p, buf, len, now());
}

static void tp_rtcp(void *arg, uint8_t *buf, size_t len) {
  sfu_participant_t *p = arg;
  sfu_shell_t *sh = shell_of(p);
  if (sh->rec.w) sfu_recorder_packet(&sh->rec, p->number, buf, len);
  sfu_room_on_rtcp(&sh->room, p, buf, len, now());
}

static void tp_connected(void *arg) {
  sfu_participant_t *p = arg;
  sfu_room_on_transport(&shell_of(p)->room, p, SFU_TP_CONNECTED, now());
}

static void tp_failed(void *arg, const char *why) {
  sfu_participant_t *p = arg;
  sfu_log(SFU_LOG_WARN, "room", "[%s] transport failed: %s", p->identity, why);
  sfu_room_on_transport(&shell_of(p)->room, p, SFU_TP_FAILED, now());
}

/* The ICE agent and the DTLS certificate are made for the first
 * participant that offers, not at start: a room must be cheap to spawn. */
static int media_init(sfu_shell_t *sh) {
  int rv;
  if (sh->ice) return 0;
  if ((rv = sfu_srtp_library_init()) != 0) return rv;
  if (!sh->cert && (rv = sfu_dtls_cert_create(&sh->cert)) != 0) return rv;
  return sfu_ice_create(&sh->ice, sh->loop, &sh->ice_opts);
}

static int io_transport_open(sfu_room_io_t *io, sfu_participant_t *p) {
  sfu_shell_t *sh = io->data;
  sfu_transport_t *t;
  int rv = media_init(sh);
  if (rv != 0) return rv;
  sfu_transport_cb_t cb = {p, tp_rtp, tp_rtcp, tp_connected, tp_failed};
  if ((rv = sfu_transport_create(&t, sh->loop, sh->ice, sh->cert, &cb)) != 0) return rv;
  p->transport = t;
  return 0;
}

static void add_drops(sfu_shell_drops_t *d, sfu_transport_t *t) {
  const sfu_transport_stats_t *s = sfu_transport_stats(t);
  d->demux += s->rx_drop_demux;
  d->srtp += s->rx_drop_srtp;
  d->ssrc_limit += s->rx_drop_ssrc_limit;
  d->send += s->tx_drop;
  d->foreign += sfu_ice_drop_foreign(sfu_transport_ice(t));
}

static void io_transport_close(sfu_room_io_t *io, sfu_participant_t *p) {
  if (p->transport) add_drops(&((sfu_shell_t *)io->data)->closed_drops, p->transport);
  sfu_transport_destroy(p->transport);
  p->transport = NULL;
}

static int io_transport_remote(sfu_room_io_t *io, sfu_participant_t *p, const sfu_sdp_media_t *m,
                               const char **our_setup) {
  /* a link to another process of the call: two lite agents, each checks
   * the other (before its candidates are given: they are kept for it) */
  if (p->is_link) sfu_ice_stream_set_checking(sfu_transport_ice(p->transport), 1);
  return sfu_transport_set_remote(p->transport, m->ice_ufrag, m->ice_pwd, m->fp_alg, m->fp,
                                  m->fp_len, m->setup, our_setup);
}

static int io_transport_candidate(sfu_room_io_t *io, sfu_participant_t *p, const char *cand) {
  return sfu_transport_add_candidate(p->transport, cand);
}

static void io_transport_local(sfu_room_io_t *io, sfu_participant_t *p, sfu_sdp_media_t *m,
                               const char *setup) {
  sfu_transport_put_sdp(p->transport, m, setup);
}

static uint64_t io_transport_last_rx_us(sfu_room_io_t *io, sfu_participant_t *p) {
  return sfu_transport_last_rx_ms(p->transport) * 1000;
}

static void on_empty(uv_timer_t *t);

static void io_empty(sfu_room_io_t *io, int empty) {
  sfu_shell_t *sh = io->data;
  if (sh->closing) return;
  if (empty)
    uv_timer_start(&sh->empty_timer, on_empty, (uint64_t)sh->empty_timeout_s * 1000, 0);
  else
    uv_timer_stop(&sh->empty_timer);
}

/* --- IPC from sfud --------------------------------------------------- */

/* The agent's ICE-TCP counters (sfu/net/ice.h); zeros before the agent
 * exists (the first offer makes it, and it lives as long as the room). */
static json_t *ice_tcp_json(const sfu_ice_t *ice) {
  static const sfu_ice_tcp_stats_t none;
  const sfu_ice_tcp_stats_t *t = ice ? sfu_ice_tcp_stats(ice) : &none;
  json_t *j = json_object();
#define PUT(x) json_object_set_new(j, #x, json_integer((json_int_t)t->x))
  PUT(accepted), PUT(refused), PUT(open), PUT(selected), PUT(selections);
  PUT(close_first), PUT(close_timeout), PUT(close_idle), PUT(close_framing);
  PUT(close_foreign), PUT(close_limit), PUT(close_peer), PUT(close_left);
  PUT(rx_frames), PUT(tx_frames), PUT(tx_queued), PUT(tx_drop_full), PUT(tx_drop_error);
#undef PUT
  return j;
}

static json_t *stats_json(sfu_shell_t *sh, const char *type) {
  const sfu_room_t *room = &sh->room;
  struct rusage ru;
  sfu_shell_drops_t tp = sh->closed_drops; /* since the room started: left ones too */
  getrusage(RUSAGE_SELF, &ru);
  json_int_t cpu = (json_int_t)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec +
                   (json_int_t)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec;
  for (sfu_participant_t *p = room->participants; p; p = p->next)
    if (p->transport) add_drops(&tp, p->transport);
  tp.foreign += sfu_ice_drop_unknown(sh->ice);
  json_t *pk = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "rtp_in",
                         (json_int_t)room->c.rtp_in, "rtp_out", (json_int_t)room->c.rtp_out,
                         "rtcp_in", (json_int_t)room->c.rtcp_in, "rtcp_out",
                         (json_int_t)room->c.rtcp_out, "drop_unknown_ssrc",
                         (json_int_t)room->c.drop_unknown_ssrc, "drop_malformed",
                         (json_int_t)room->c.drop_malformed, "drop_muted",
                         (json_int_t)room->c.drop_muted, "drop_send",
                         (json_int_t)room->c.drop_send);
  json_object_set_new(pk, "drop_not_rtp", json_integer((json_int_t)tp.demux));
  json_object_set_new(pk, "drop_srtp", json_integer((json_int_t)tp.srtp));
  json_object_set_new(pk, "drop_ssrc_limit", json_integer((json_int_t)tp.ssrc_limit));
  json_object_set_new(pk, "drop_transport_send", json_integer((json_int_t)tp.send));
  json_object_set_new(pk, "drop_foreign_source", json_integer((json_int_t)tp.foreign));
  json_object_set_new(pk, "drop_rtx_probe", json_integer((json_int_t)room->c.drop_rtx_probe));
  json_object_set_new(pk, "relay_in", json_integer((json_int_t)room->c.relay_in));
  json_object_set_new(pk, "relay_out", json_integer((json_int_t)room->c.relay_out));
  json_object_set_new(pk, "drop_relay_ssrc", json_integer((json_int_t)room->c.drop_relay_ssrc));
  json_t *video = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "keyframes_in",
                            (json_int_t)room->c.keyframes_in, "plis_sent",
                            (json_int_t)room->c.plis_sent, "plis_throttled",
                            (json_int_t)room->c.plis_throttled, "plis_received",
                            (json_int_t)room->c.plis_received, "nacks_sent",
                            (json_int_t)room->c.nacks_sent, "nacks_received",
                            (json_int_t)room->c.nacks_received, "rtx_in",
                            (json_int_t)room->c.rtx_in, "rtx_out", (json_int_t)room->c.rtx_out,
                            "layer_switches", (json_int_t)room->c.layer_switches);
  json_object_set_new(video, "twcc_in", json_integer((json_int_t)room->c.twcc_in));
  json_object_set_new(video, "twcc_out", json_integer((json_int_t)room->c.twcc_out));
  json_object_set_new(video, "probes", json_integer((json_int_t)room->c.probes));
  json_object_set_new(video, "padding_out", json_integer((json_int_t)room->c.padding_out));
  json_object_set_new(video, "bw_pauses", json_integer((json_int_t)room->c.bw_pauses));
  json_object_set_new(video, "dynacast_msgs", json_integer((json_int_t)room->c.dynacast_msgs));
  json_object_set_new(video, "drop_svc", json_integer((json_int_t)room->c.drop_svc));
  json_object_set_new(video, "drop_temporal", json_integer((json_int_t)room->c.drop_temporal));
  json_object_set_new(video, "dd_in", json_integer((json_int_t)room->c.dd_in));
  json_object_set_new(video, "dd_bad", json_integer((json_int_t)room->c.dd_bad));
  json_object_set_new(video, "dd_masked", json_integer((json_int_t)room->c.dd_masked));
  json_object_set_new(pk, "video", video);
  json_object_set_new(pk, "audio", json_pack("{s:I, s:I, s:I}", "red_in",
                                             (json_int_t)room->c.red_in, "red_out",
                                             (json_int_t)room->c.red_out, "drop_not_loudest",
                                             (json_int_t)room->c.drop_not_loudest));
  return json_pack("{s:s, s:i, s:I, s:I, s:o, s:o, s:o, s:o, s:o}", "type", type, "participants",
                   room->participants_n, "uptime_ms",
                   (json_int_t)(sfu_now_ms() - sh->started_ms), "cpu_us", cpu, "packets", pk,
                   "capture", sfu_recorder_json(&sh->rec), "ice_tcp", ice_tcp_json(sh->ice),
                   "links", sfu_relay_json(room), "ipc",
                   json_pack("{s:I, s:I, s:I}", "held", (json_int_t)json_array_size(sh->held),
                             "waited", (json_int_t)sh->held_congested, "dropped",
                             (json_int_t)sh->held_dropped));
}

static void on_lingered(uv_timer_t *t) {
  sfu_shell_t *sh = t->data;
  sfu_shell_close(sh, "migrated", 0);
}

static void on_ipc_msg(sfu_ipc_t *ipc, json_t *msg) {
  sfu_shell_t *sh = ipc->data;
  const char *type = json_string_value(json_object_get(msg, "type"));

  sh->last_parent_ms = sfu_now_ms();
  if (!type) return;
  if (strcmp(type, "ping") == 0) {
    json_t *pong = stats_json(sh, "pong");
    json_object_set(pong, "seq", json_object_get(msg, "seq"));
    send_ipc(sh, pong);
  } else if (strcmp(type, "stats") == 0) {
    send_ipc(sh, stats_json(sh, "stats"));
  } else if (strcmp(type, "shutdown") == 0) {
    const char *why = json_string_value(json_object_get(msg, "reason"));
    if (why && strcmp(why, "migrated") == 0 && sh->room.moved) {
      /* The call runs on another node from the cut, and this room says
       * nothing more; but its clients play it until `migrated` reaches
       * them: media goes on a little, so that none is missed at their
       * switch (docs/internals/migration.md). */
      if (!uv_is_active((uv_handle_t *)&sh->linger_timer) && !sh->closing)
        uv_timer_start(&sh->linger_timer, on_lingered, SFU_MOVE_LINGER_MS, 0);
      return;
    }
    sfu_shell_close(sh, why ? why : "shutdown", 0);
  } else if (strcmp(type, "capture") == 0) {
    const char *action = json_string_value(json_object_get(msg, "action"));
    const char *path = json_string_value(json_object_get(msg, "path"));
    if (action && strcmp(action, "start") == 0 && path)
      sfu_recorder_start(&sh->rec, path,
                         (uint64_t)json_integer_value(json_object_get(msg, "max_bytes")),
                         (int)json_integer_value(json_object_get(msg, "max_seconds")), sfu_now_ms());
    else
      sfu_recorder_stop(&sh->rec, "stopped");
  } else if (sh->closing) {
    if (strcmp(type, "client_join") == 0) /* too late to join */
      send_ipc(sh, json_pack("{s:s, s:I, s:i, s:s}", "type", "client_close", "session",
                             json_integer_value(json_object_get(msg, "session")), "code", 4000,
                             "reason", "bad request"));
  } else if (sfu_room_on_control(&sh->room, type, msg, now()) == SFU_ENOENT) {
    sfu_log(SFU_LOG_WARN, "room", "unknown IPC message type '%.32s'", type);
  } else {
    arm_tick(sh); /* what was done may have moved the next tick */
  }
}

static void on_ipc_gone(sfu_ipc_t *ipc) { ((sfu_shell_t *)ipc->data)->ipc_closed = 1; }

static void on_grace_over(uv_timer_t *t) {
  sfu_shell_t *sh = t->data;
  sfu_log(SFU_LOG_ERROR, "room", "no sfud took the room over in %d s; ending room",
          sh->orphan_grace_s);
  sfu_shell_close(sh, "parent_gone", 1);
}

/* sfud is gone (its channel closed or failed, or it went silent). With a
 * socket and a grace, the call goes on without it: what the room says is
 * held until a new sfud connects (on_adopter). Otherwise the room ends. */
static void parent_gone(sfu_shell_t *sh, const char *why) {
  if (sh->closing || sh->orphaned) return;
  if (!sh->socket_path[0] || sh->orphan_grace_s <= 0) {
    sfu_log(SFU_LOG_WARN, "room", "%s; ending room", why);
    sfu_shell_close(sh, "parent_gone", 1);
    return;
  }
  sfu_log(SFU_LOG_WARN, "room", "%s; the call goes on, waiting %d s for a new sfud on %s", why,
          sh->orphan_grace_s, sh->socket_path);
  sh->orphaned = 1;
  sh->ipc_closed = 0;
  sfu_ipc_close(&sh->ipc, on_ipc_gone);
  uv_timer_start(&sh->grace_timer, on_grace_over, (uint64_t)sh->orphan_grace_s * 1000, 0);
}

static void on_ipc_error(sfu_ipc_t *ipc, int err) {
  sfu_shell_t *sh = ipc->data;
  char why[96];
  if (err == 0)
    snprintf(why, sizeof(why), "sfud closed the channel");
  else
    snprintf(why, sizeof(why), "IPC failed: %s", sfu_strerror(err));
  parent_gone(sh, why);
}

/* A new sfud connected: it takes the room over (hello: who is here, with
 * their sessions), then gets what was held, in order. One that connects
 * while the room has an sfud is refused. */
static void free_handle(uv_handle_t *h) { free(h); }

static void on_adopter(uv_stream_t *l, int status) {
  sfu_shell_t *sh = l->data;
  uv_pipe_t *conn = malloc(sizeof(*conn));
  uv_os_fd_t cfd;
  int fd = -1;
  if (!conn) return;
  uv_pipe_init(sh->loop, conn, 0);
  /* libuv accepted it already; the channel gets a descriptor of its own */
  if (status == 0 && uv_accept(l, (uv_stream_t *)conn) == 0 &&
      uv_fileno((uv_handle_t *)conn, &cfd) == 0)
    fd = fcntl(cfd, F_DUPFD_CLOEXEC, 3);
  uv_close((uv_handle_t *)conn, free_handle);
  if (fd < 0) return;
  if (!sh->orphaned || !sh->ipc_closed || sh->closing) {
    close(fd);
    return;
  }
  sh->ipc.data = sh;
  if (sfu_ipc_init(sh->loop, &sh->ipc, fd, on_ipc_msg, on_ipc_error) != 0) {
    close(fd);
    return;
  }
  sh->ipc.on_drain = on_ipc_drain;
  sh->orphaned = 0;
  sh->last_parent_ms = sfu_now_ms();
  uv_timer_stop(&sh->grace_timer);
  size_t n = json_array_size(sh->held);
  json_array_insert_new(sh->held, 0, json_pack("{s:s, s:s, s:i, s:o, s:I, s:I}", "type", "hello",
                                               "room_id", sh->room.id, "pid",
                                               (int)uv_os_getpid(), "state",
                                               sfu_room_export(&sh->room), "held", (json_int_t)n,
                                               "held_dropped", (json_int_t)sh->held_dropped));
  sfu_log(SFU_LOG_INFO, "room", "taken over by a new sfud (%zu messages held, %llu dropped)", n,
          (unsigned long long)sh->held_dropped);
  send_held(sh);
  sh->held_dropped = 0;
}

/* --- timers ---------------------------------------------------------- */

static void on_empty(uv_timer_t *t) {
  sfu_shell_t *sh = t->data;
  sfu_log(SFU_LOG_INFO, "room", "empty for %d s; ending room", sh->empty_timeout_s);
  sfu_shell_close(sh, "empty_timeout", 0);
}

static void on_parent_check(uv_timer_t *t) {
  sfu_shell_t *sh = t->data;
  if (!sh->orphaned && sfu_now_ms() - sh->last_parent_ms > (uint64_t)sh->parent_timeout_ms) {
    char why[64];
    snprintf(why, sizeof(why), "no word from sfud for %d ms", sh->parent_timeout_ms);
    parent_gone(sh, why);
  }
}

/*
 * Gives free heap pages back to the kernel. What a participant frees --
 * its DTLS session, released once the handshake is behind it (some
 * 70 KiB: sfu/net/transport.c), or all of it when it leaves -- lies
 * between chunks still in use, and glibc returns only the top of the heap
 * by itself (M_TRIM_THRESHOLD). malloc_trim() also releases the whole
 * pages inside free chunks (madvise). Checked at most every
 * HEAP_TRIM_PERIOD_US, done when the heap's free bytes grew by
 * HEAP_TRIM_STEP since the last trim: after joins, handshakes and leaves,
 * never for packets (nothing allocates per packet).
 */
static void trim_heap(sfu_shell_t *sh, uint64_t now_us) {
#if defined(__GLIBC__)
  if (now_us < sh->trim_next_us) return;
  sh->trim_next_us = now_us + HEAP_TRIM_PERIOD_US;
  size_t free_now = mallinfo2().fordblks;
  if (free_now < sh->trim_free + HEAP_TRIM_STEP) {
    if (free_now < sh->trim_free) sh->trim_free = free_now; /* reused since */
    return;
  }
  malloc_trim(0);
  sh->trim_free = free_now;
#else
  (void)sh, (void)now_us;
#endif
}

static void on_tick(uv_timer_t *t) {
  sfu_shell_t *sh = t->data;
  sfu_time_t n = now();
  sfu_recorder_tick(&sh->rec, n.mono_us / 1000);
  sfu_room_tick(&sh->room, n);
  trim_heap(sh, n.mono_us);
  arm_tick(sh);
}

static void arm_tick(sfu_shell_t *sh) {
  if (sh->closing) return;
  uint64_t next = sfu_room_next_tick(&sh->room), t = sfu_now_us();
  uint64_t ms = next > t ? (next - t + 999) / 1000 : 0;
  uv_timer_start(&sh->tick_timer, on_tick, ms, 0);
}

/* --- lifecycle ----------------------------------------------------------- */

int sfu_shell_init(sfu_shell_t *sh, uv_loop_t *loop, const sfu_shell_opts_t *o) {
  int rv;
  memset(sh, 0, sizeof(*sh));
  sh->loop = loop;
  sh->empty_timeout_s = o->empty_timeout_s;
  sh->parent_timeout_ms = o->parent_timeout_ms;
  sh->started_ms = sh->last_parent_ms = sfu_now_ms();
  sh->io = (sfu_room_io_t){sh,
                           io_emit,
                           io_send,
                           io_transport_open,
                           io_transport_close,
                           io_transport_remote,
                           io_transport_candidate,
                           io_transport_local,
                           io_transport_last_rx_us,
                           io_empty};
  sfu_room_opts_t ro = {o->id, o->max_participants, o->usage_interval_s, o->max_audio_streams,
                        o->media_timeout_s, o->dynacast_stop_ms};
  if ((rv = sfu_room_init(&sh->room, &ro, &sh->io, now())) != 0) return rv;

  snprintf(sh->ice_addresses, sizeof(sh->ice_addresses), "%s",
           o->ice_addresses ? o->ice_addresses : "127.0.0.1");
  sh->ice_opts.addresses = sh->ice_addresses;
  if (o->announce) {
    snprintf(sh->ice_announce, sizeof(sh->ice_announce), "%s", o->announce);
    sh->ice_opts.announce = sh->ice_announce;
  }
  sh->ice_opts.port_min = o->port_min;
  sh->ice_opts.port_max = o->port_max;
  sh->ipc.data = sh;
  if ((rv = sfu_ipc_init(loop, &sh->ipc, o->ipc_fd, on_ipc_msg, on_ipc_error)) != 0) return rv;
  sh->ipc.on_drain = on_ipc_drain;
  sh->held = json_array();
#if defined(__GLIBC__)
  sh->trim_free = mallinfo2().fordblks; /* the zygote's free chunks: not ours */
#endif
  sh->orphan_grace_s = o->orphan_grace_s;
  uv_timer_init(loop, &sh->grace_timer);
  sh->grace_timer.data = sh;
  uv_pipe_init(loop, &sh->listener, 0);
  sh->listener.data = sh;
  if (o->socket_path && o->orphan_grace_s > 0 && strlen(o->socket_path) < sizeof(sh->socket_path)) {
    snprintf(sh->socket_path, sizeof(sh->socket_path), "%s", o->socket_path);
    unlink(sh->socket_path); /* a room of this id that did not clean up */
    mode_t old = umask(0077);
    rv = uv_pipe_bind(&sh->listener, sh->socket_path);
    umask(old);
    if (rv == 0) rv = uv_listen((uv_stream_t *)&sh->listener, 4, on_adopter);
    if (rv != 0) {
      sfu_log(SFU_LOG_WARN, "room", "cannot listen on %s (%s): the room ends with sfud",
              sh->socket_path, uv_strerror(rv));
      sh->socket_path[0] = '\0';
    }
  }
  uv_timer_init(loop, &sh->empty_timer);
  uv_timer_init(loop, &sh->parent_timer);
  uv_timer_init(loop, &sh->tick_timer);
  uv_timer_init(loop, &sh->linger_timer);
  sh->empty_timer.data = sh->parent_timer.data = sh->tick_timer.data = sh;
  sh->linger_timer.data = sh;
  uv_timer_start(&sh->empty_timer, on_empty, (uint64_t)sh->empty_timeout_s * 1000, 0);
  uint64_t check = (uint64_t)sh->parent_timeout_ms / 4 + 1;
  uv_timer_start(&sh->parent_timer, on_parent_check, check, check);
  arm_tick(sh);

  send_ipc(sh, json_pack("{s:s, s:i}", "type", "ready", "pid", (int)uv_os_getpid()));
  return 0;
}

static void on_closed(uv_handle_t *h) {
  sfu_shell_t *sh = h->data;
  sh->pending_closes--;
}
static void on_ipc_closed(sfu_ipc_t *ipc) { ((sfu_shell_t *)ipc->data)->pending_closes--; }

void sfu_shell_close(sfu_shell_t *sh, const char *reason, int exit_code) {
  if (sh->closing) return;
  sh->closing = 1;
  sh->exit_code = exit_code;
  snprintf(sh->close_reason, sizeof(sh->close_reason), "%s", reason);
  /* a relay that ends while its room goes on: its clients join again */
  if (strcmp(reason, "relay_closed") == 0)
    sh->room.relay_ending = sh->room.links && !sh->room.links->link_origin;
  sfu_room_end(&sh->room, now());
  sfu_recorder_stop(&sh->rec, "room_closed");
  if (!sh->ipc.failed)
    send_ipc(sh, json_pack("{s:s, s:s, s:i}", "type", "closing", "reason", reason,
                           "participants", sh->room.participants_n));
  sfu_ice_destroy(sh->ice);
  sh->ice = NULL;
  sfu_dtls_cert_destroy(sh->cert);
  sh->cert = NULL;
  sh->pending_closes = 6 + !sh->orphaned;
  uv_close((uv_handle_t *)&sh->linger_timer, on_closed);
  uv_close((uv_handle_t *)&sh->empty_timer, on_closed);
  uv_close((uv_handle_t *)&sh->parent_timer, on_closed);
  uv_close((uv_handle_t *)&sh->tick_timer, on_closed);
  uv_close((uv_handle_t *)&sh->grace_timer, on_closed);
  uv_close((uv_handle_t *)&sh->listener, on_closed);
  if (sh->socket_path[0]) unlink(sh->socket_path);
  if (!sh->orphaned) { /* (an orphan's is closed) */
    /* what waits for a drain goes now, past the bound: the room's last
     * words (final usage, closing) must reach sfud before it exits */
    size_t i;
    json_t *m;
    json_array_foreach(sh->held, i, m) sfu_ipc_send_control(&sh->ipc, m);
    sfu_ipc_close(&sh->ipc, on_ipc_closed);
  }
  json_decref(sh->held);
  sh->held = NULL;
}
