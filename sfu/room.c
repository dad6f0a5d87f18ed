/*
 * room.c -- the room process's lifecycle and its side of the IPC protocol.
 *
 * Messages from sfud (docs/internals/ipc.md): ping -> pong, stats -> stats,
 * shutdown -> closing + exit 0. Messages to sfud: ready (once, at start),
 * pong, stats, closing (before every deliberate exit).
 *
 * The empty timer runs whenever participants == 0; the parent watchdog is
 * pushed forward by every message from sfud. Both end the room with a
 * reason; EOF on the channel means sfud is gone and ends it at once.
 */
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "sfu/log.h"
#include "sfu/room.h"
#include "sfu/sfu.h"

static void send_msg(sfu_room_t *room, json_t *m) {
  int rv = sfu_ipc_send(&room->ipc, m);
  if (rv != 0 && rv != SFU_ECANCELED)
    sfu_log(SFU_LOG_WARN, "room", "IPC send failed: %s", sfu_strerror(rv));
  json_decref(m);
}

static json_int_t cpu_us(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (json_int_t)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec +
         (json_int_t)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec;
}

static json_t *stats_json(sfu_room_t *room, const char *type) {
  return json_pack("{s:s, s:i, s:I, s:I}", "type", type, "participants",
                   room->participants, "uptime_ms",
                   (json_int_t)(sfu_now_ms() - room->started_ms), "cpu_us", cpu_us());
}

static void on_ipc_msg(sfu_ipc_t *ipc, json_t *msg) {
  sfu_room_t *room = ipc->data;
  const char *type = json_string_value(json_object_get(msg, "type"));

  room->last_parent_ms = sfu_now_ms();
  if (!type) return;
  if (strcmp(type, "ping") == 0) {
    json_t *p = json_pack("{s:s, s:O, s:i}", "type", "pong", "seq",
                          json_object_get(msg, "seq"), "participants", room->participants);
    send_msg(room, p);
  } else if (strcmp(type, "stats") == 0) {
    send_msg(room, stats_json(room, "stats"));
  } else if (strcmp(type, "shutdown") == 0) {
    const char *why = json_string_value(json_object_get(msg, "reason"));
    sfu_room_close(room, why ? why : "shutdown", 0);
  } else {
    sfu_log(SFU_LOG_WARN, "room", "unknown IPC message type '%.32s'", type);
  }
}

static void on_ipc_error(sfu_ipc_t *ipc, int err) {
  sfu_room_t *room = ipc->data;
  if (err == 0)
    sfu_log(SFU_LOG_WARN, "room", "sfud closed the channel; ending room");
  else
    sfu_log(SFU_LOG_ERROR, "room", "IPC failed: %s; ending room", sfu_strerror(err));
  sfu_room_close(room, "parent_gone", 1);
}

static void on_empty(uv_timer_t *t) {
  sfu_room_t *room = t->data;
  sfu_log(SFU_LOG_INFO, "room", "empty for %d s; ending room", room->empty_timeout_s);
  sfu_room_close(room, "empty_timeout", 0);
}

static void on_parent_check(uv_timer_t *t) {
  sfu_room_t *room = t->data;
  if (sfu_now_ms() - room->last_parent_ms > (uint64_t)room->parent_timeout_ms) {
    sfu_log(SFU_LOG_ERROR, "room", "no word from sfud for %d ms; ending room",
            room->parent_timeout_ms);
    sfu_room_close(room, "parent_gone", 1);
  }
}

int sfu_room_init(sfu_room_t *room, uv_loop_t *loop, const sfu_room_opts_t *o) {
  int rv;
  memset(room, 0, sizeof(*room));
  room->loop = loop;
  snprintf(room->id, sizeof(room->id), "%s", o->id);
  room->max_participants = o->max_participants;
  room->empty_timeout_s = o->empty_timeout_s;
  room->parent_timeout_ms = o->parent_timeout_ms;
  room->started_ms = room->last_parent_ms = sfu_now_ms();

  if ((rv = sfu_gloop_init(loop, &room->gloop)) != 0) return rv;
  room->gloop.data = room;
  room->ipc.data = room;
  if ((rv = sfu_ipc_init(loop, &room->ipc, o->ipc_fd, on_ipc_msg, on_ipc_error)) != 0)
    return rv;
  uv_timer_init(loop, &room->empty_timer);
  uv_timer_init(loop, &room->parent_timer);
  room->empty_timer.data = room->parent_timer.data = room;
  uv_timer_start(&room->empty_timer, on_empty, (uint64_t)room->empty_timeout_s * 1000, 0);
  uint64_t check = (uint64_t)room->parent_timeout_ms / 4 + 1;
  uv_timer_start(&room->parent_timer, on_parent_check, check, check);

  send_msg(room, json_pack("{s:s, s:i}", "type", "ready", "pid", (int)uv_os_getpid()));
  return 0;
}

static void on_closed(uv_handle_t *h) {
  sfu_room_t *room = h->loop->data;
  room->pending_closes--;
}
static void on_ipc_closed(sfu_ipc_t *ipc) { ((sfu_room_t *)ipc->data)->pending_closes--; }
static void on_gloop_closed(sfu_gloop_t *g) { ((sfu_room_t *)g->data)->pending_closes--; }

void sfu_room_close(sfu_room_t *room, const char *reason, int exit_code) {
  if (room->closing) return;
  room->closing = 1;
  room->exit_code = exit_code;
  snprintf(room->close_reason, sizeof(room->close_reason), "%s", reason);
  if (!room->ipc.failed)
    send_msg(room, json_pack("{s:s, s:s, s:i}", "type", "closing", "reason", reason,
                             "participants", room->participants));
  room->loop->data = room;
  room->pending_closes = 4;
  uv_close((uv_handle_t *)&room->empty_timer, on_closed);
  uv_close((uv_handle_t *)&room->parent_timer, on_closed);
  sfu_ipc_close(&room->ipc, on_ipc_closed);
  sfu_gloop_close(&room->gloop, on_gloop_closed);
}
