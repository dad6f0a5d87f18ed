/*
 * recover.c -- taking over the rooms of an sfud that died (see recover.h).
 *
 * Runs once at start, before the loop and the listener: each room's hello
 * is read here with a short blocking wait (a room answers at once; one that
 * does not is left alone), so the sessions are listed before any client
 * can try to resume.
 */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "sfu/base/log.h"
#include "sfu/base/sfu.h"
#include "sfu/node/events.h"
#include "sfu/node/recover.h"
#include "signaling/ipc.h"
#include "signaling/message.h"

#define HELLO_WAIT_MS 2000

/* Reads exactly n bytes within the deadline; 0 or -1. */
static int read_full(int fd, char *buf, size_t n, uint64_t deadline_ms) {
  size_t got = 0;
  while (got < n) {
    uint64_t now = sfu_now_ms();
    if (now >= deadline_ms) return -1;
    struct pollfd pf = {fd, POLLIN, 0};
    int rv = poll(&pf, 1, (int)(deadline_ms - now));
    if (rv < 0 && errno == EINTR) continue;
    if (rv <= 0) return -1;
    ssize_t r = read(fd, buf + got, n - got);
    if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (r <= 0) return -1;
    got += (size_t)r;
  }
  return 0;
}

/* The room's first frame, its hello; NULL if it does not come (the room
 * has an sfud, or is not answering). */
static json_t *read_hello(int fd) {
  uint64_t deadline = sfu_now_ms() + HELLO_WAIT_MS;
  unsigned char len[4];
  if (read_full(fd, (char *)len, 4, deadline) != 0) return NULL;
  uint32_t n = (uint32_t)len[0] << 24 | (uint32_t)len[1] << 16 | (uint32_t)len[2] << 8 | len[3];
  if (n == 0 || n > SFU_IPC_DEFAULT_MAX_FRAME) return NULL;
  char *buf = malloc(n);
  json_t *j = NULL;
  if (buf && read_full(fd, buf, n, deadline) == 0) j = json_loadb(buf, n, 0, NULL);
  free(buf);
  if (j && strcmp(json_string_value(json_object_get(j, "type")) ?: "", "hello") != 0) {
    json_decref(j);
    j = NULL;
  }
  return j;
}

/* -1: nothing listens there (the room is gone); else the socket. */
static int connect_room(const char *path) {
  struct sockaddr_un sa;
  if (strlen(path) >= sizeof(sa.sun_path)) return -1;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  memset(&sa, 0, sizeof(sa));
  sa.sun_family = AF_UNIX;
  memcpy(sa.sun_path, path, strlen(path) + 1);
  if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* A room that ended while no sfud was there: its end was not seen, so it
 * is reported as a crash, its participants as gone with it. */
static void report_gone(struct sfu_events_s *events, const char *id, json_t *rec) {
  const char *sid;
  json_t *who;
  sfu_log(SFU_LOG_WARN, "recover", "room %s ended while sfud was down", id);
  if (!events) return;
  json_object_foreach(json_object_get(rec, "people"), sid, who)
    sfu_events_emit(events, "participant_left", id,
                    json_pack("{s:O, s:s, s:s}", "participant", who, "sid", sid, "reason",
                              "room_crashed"));
  sfu_events_emit(events, "room_crashed", id,
                  json_pack("{s:s, s:O?, s:O?}", "end_reason", "sfud_died", "participants",
                            json_object_get(rec, "sessions"), "ms",
                            json_object_get(rec, "totals")));
}

/* The record as the room says it is now: its people, and its sessions to
 * list again (appended to `sessions`). */
static void take_hello(json_t *rec, json_t *hello, int fd, json_t *sessions) {
  json_t *people = json_object(), *e;
  size_t i;
  const char *id = json_string_value(json_object_get(rec, "room_id"));
  json_array_foreach(json_object_get(json_object_get(hello, "state"), "participants"), i, e) {
    const char *sid = json_string_value(json_object_get(e, "sid"));
    const char *identity = json_string_value(json_object_get(e, "identity"));
    const char *token = json_string_value(json_object_get(e, "resume_token"));
    if (!sid || !identity) continue;
    json_object_set_new(people, sid, json_string(identity));
    if (token && strlen(token) == SFU_RESUME_TOKEN_LEN)
      json_array_append_new(sessions, json_pack("{s:O, s:s, s:s, s:s, s:s, s:[], s:[]}", "id",
                                                json_object_get(e, "session"), "room_id", id,
                                                "identity", identity, "sid", sid,
                                                "resume_token", token, "kept", "held"));
  }
  json_object_set_new(rec, "people", people);
  json_object_set_new(rec, "participants", json_integer((json_int_t)json_object_size(people)));
  json_object_set(rec, "pid", json_object_get(hello, "pid"));
  json_object_set_new(rec, "state", json_string("running"));
  json_object_set_new(rec, "ipc_fd", json_integer(fd));
  json_object_set_new(rec, "foreign", json_true());
  json_object_del(rec, "zygote_pid");
}

json_t *sfu_recover_rooms(sfu_supervisor_t *sup, const sfu_config_t *cfg,
                          struct sfu_events_s *events, int *rooms) {
  char dir[560], path[600];
  json_t *sessions = json_array(), *list = json_array();
  struct dirent *d;
  DIR *dp;
  *rooms = 0;
  snprintf(dir, sizeof(dir), "%s/rooms", cfg->data_dir);
  if (!(dp = opendir(dir))) return sessions;
  while ((d = readdir(dp)) != NULL) {
    char id[SFU_ROOM_ID_LEN + 1];
    size_t len = strlen(d->d_name);
    if (len != SFU_ROOM_ID_LEN + 5 || strcmp(d->d_name + SFU_ROOM_ID_LEN, ".json") != 0 ||
        strncmp(d->d_name, "rm_", 3) != 0)
      continue;
    memcpy(id, d->d_name, SFU_ROOM_ID_LEN);
    id[SFU_ROOM_ID_LEN] = '\0';
    snprintf(path, sizeof(path), "%s/%s", dir, d->d_name);
    json_t *rec = json_load_file(path, 0, NULL);
    if (!json_is_object(rec) ||
        strcmp(json_string_value(json_object_get(rec, "room_id")) ?: "", id) != 0) {
      sfu_log(SFU_LOG_WARN, "recover", "%s is not a room record: removed", path);
      unlink(path);
      json_decref(rec);
      continue;
    }
    char sock[600];
    int fd = sfu_supervisor_room_path(cfg, id, "sock", sock, sizeof(sock)) == 0
                 ? connect_room(sock) : -1;
    if (fd < 0) { /* nothing listens: the room is gone */
      report_gone(events, id, rec);
      unlink(path);
      unlink(sock);
      json_decref(rec);
      continue;
    }
    json_t *hello = read_hello(fd);
    if (!hello) { /* it refused us: another sfud has it (or it is stuck) */
      sfu_log(SFU_LOG_WARN, "recover", "room %s did not let this sfud take it over; left alone",
              id);
      close(fd);
      json_decref(rec);
      continue;
    }
    take_hello(rec, hello, fd, sessions);
    sfu_log(SFU_LOG_INFO, "recover", "room %s (pid %d, %d participants) taken over", id,
            (int)json_integer_value(json_object_get(hello, "pid")),
            (int)json_integer_value(json_object_get(rec, "participants")));
    json_array_append_new(list, rec);
    json_decref(hello);
  }
  closedir(dp);
  if (json_array_size(list) > 0) {
    json_t *state = json_pack("{s:o, s:[]}", "rooms", list, "zygotes");
    int n = sfu_supervisor_adopt(sup, state);
    *rooms = n > 0 ? n : 0;
    json_decref(state);
  } else {
    json_decref(list);
  }
  return sessions;
}
