/*
 * recorder.h -- a room's capture of its own traffic, for replay.
 *
 * POST /v1/rooms/{id}/capture starts it (sfud picks the file under
 * <data_dir>/captures/ and relays the request over IPC). While on, every
 * RTP and RTCP packet the room receives from a publisher is written
 * decrypted, as plain RTP/RTCP, to a pcap: one UDP 5-tuple per participant
 * (10.1.x.y:5000 -> 10.0.0.1:5004, x.y from its place in the room, whether
 * the participant reached the room over IPv4 or IPv6: no real address is
 * written), the arrival time as capture time. sfu-replay reads such a file like any
 * other capture. The file is bounded in bytes and in time; either bound,
 * a stop request or the room's end closes it.
 */
#ifndef SFU_RECORDER_H
#define SFU_RECORDER_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

typedef struct sfu_cap_writer_s sfu_cap_writer_t;

typedef struct sfu_recorder_s {
  sfu_cap_writer_t *w;     /* NULL when off */
  char path[700];          /* current or last file */
  uint64_t max_bytes;
  uint64_t until_ms;       /* monotonic */
  uint64_t packets, bytes; /* written to the current or last file */
  char stopped[24];        /* why the last capture ended, "" while on */
} sfu_recorder_t;

/* 0, or a negative error (the file cannot be created). Stops a running
 * capture first. */
int sfu_recorder_start(sfu_recorder_t *r, const char *path, uint64_t max_bytes,
                       int max_seconds, uint64_t now_ms);
void sfu_recorder_stop(sfu_recorder_t *r, const char *why);
/* One plain packet from participant number `who` (its place in the room). */
void sfu_recorder_packet(sfu_recorder_t *r, unsigned who, const uint8_t *buf, size_t len);
/* Ends the capture once its time is up. */
void sfu_recorder_tick(sfu_recorder_t *r, uint64_t now_ms);
json_t *sfu_recorder_json(const sfu_recorder_t *r);

#endif
