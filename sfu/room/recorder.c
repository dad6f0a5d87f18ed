/*
 * recorder.c -- a room's capture of its own traffic (recorder.h).
 */
#include <stdio.h>
#include <string.h>

#include "sfu/base/log.h"
#include "sfu/room/recorder.h"
#include "sfu/base/sfu.h"
#include "sfu/media/capture.h"

int sfu_recorder_start(sfu_recorder_t *r, const char *path, uint64_t max_bytes,
                       int max_seconds, uint64_t now_ms) {
  char err[256];
  sfu_recorder_stop(r, "restarted");
  int rv = sfu_cap_writer_open(&r->w, path, err, sizeof(err));
  if (rv != 0) {
    r->w = NULL;
    sfu_log(SFU_LOG_ERROR, "room", "capture: %s", err);
    snprintf(r->stopped, sizeof(r->stopped), "open_failed");
    return rv;
  }
  snprintf(r->path, sizeof(r->path), "%s", path);
  r->max_bytes = max_bytes;
  r->until_ms = now_ms + (uint64_t)max_seconds * 1000;
  r->packets = r->bytes = 0;
  r->stopped[0] = '\0';
  sfu_log(SFU_LOG_INFO, "room", "capture to %s (at most %llu bytes, %d s)", path,
          (unsigned long long)max_bytes, max_seconds);
  return 0;
}

void sfu_recorder_stop(sfu_recorder_t *r, const char *why) {
  if (!r->w) return;
  r->bytes = sfu_cap_writer_bytes(r->w);
  if (sfu_cap_writer_close(r->w) != 0) why = "write_failed";
  r->w = NULL;
  snprintf(r->stopped, sizeof(r->stopped), "%s", why);
  sfu_log(SFU_LOG_INFO, "room", "capture %s ended (%s): %llu packets, %llu bytes", r->path, why,
          (unsigned long long)r->packets, (unsigned long long)r->bytes);
}

void sfu_recorder_packet(sfu_recorder_t *r, unsigned who, const uint8_t *buf, size_t len) {
  static const uint8_t sfu_ip[4] = {10, 0, 0, 1};
  if (!r->w) return;
  uint8_t src[4] = {10, 1, (uint8_t)(who >> 8), (uint8_t)who};
  uint64_t us = (uint64_t)sfu_wall_ms() * 1000 + sfu_now_us() % 1000;
  if (sfu_cap_writer_put(r->w, us, src, 5000, sfu_ip, 5004, buf, len) != 0) {
    sfu_recorder_stop(r, "write_failed");
    return;
  }
  r->packets++;
  if (sfu_cap_writer_bytes(r->w) >= r->max_bytes) sfu_recorder_stop(r, "max_bytes");
}

void sfu_recorder_tick(sfu_recorder_t *r, uint64_t now_ms) {
  if (r->w && now_ms >= r->until_ms) sfu_recorder_stop(r, "max_seconds");
}

json_t *sfu_recorder_json(const sfu_recorder_t *r) {
  if (!r->path[0]) return json_null();
  return json_pack("{s:b, s:s, s:I, s:I, s:s?}", "active", r->w != NULL, "file", r->path,
                   "packets", (json_int_t)r->packets, "bytes",
                   (json_int_t)(r->w ? sfu_cap_writer_bytes(r->w) : r->bytes), "stopped",
                   r->stopped[0] ? r->stopped : NULL);
}
