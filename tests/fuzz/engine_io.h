/*
 * engine_io.h -- an I/O for a call engine under a libFuzzer target: every
 * output is taken and dropped (messages freed, packets "sent", transport
 * operations succeed), so that a target checks only what the engine's
 * state says. fuzz_io's `data` is NULL.
 */
#ifndef SFU_TESTS_FUZZ_ENGINE_IO_H
#define SFU_TESTS_FUZZ_ENGINE_IO_H

#include "sfu/room/engine.h"

static void emit(sfu_room_io_t *io, json_t *m) { (void)io, json_decref(m); }
static int send_pkt(sfu_room_io_t *io, sfu_participant_t *p, int rtcp, uint8_t *b, size_t n,
                    size_t cap) {
  (void)io, (void)p, (void)rtcp, (void)b, (void)n, (void)cap;
  return 0;
}
static int tp_open(sfu_room_io_t *io, sfu_participant_t *p) { (void)io, (void)p; return 0; }
static void tp_close(sfu_room_io_t *io, sfu_participant_t *p) { (void)io, (void)p; }
static int tp_remote(sfu_room_io_t *io, sfu_participant_t *p, const sfu_sdp_media_t *m,
                     const char **setup) {
  (void)io, (void)p, (void)m, (void)setup;
  return 0;
}
static int tp_cand(sfu_room_io_t *io, sfu_participant_t *p, const char *c) {
  (void)io, (void)p, (void)c;
  return 0;
}
static void tp_local(sfu_room_io_t *io, sfu_participant_t *p, sfu_sdp_media_t *m, const char *s) {
  (void)io, (void)p, (void)m, (void)s;
}
static uint64_t tp_rx(sfu_room_io_t *io, sfu_participant_t *p) { (void)io, (void)p; return 0; }
static void empty(sfu_room_io_t *io, int e) { (void)io, (void)e; }

static sfu_room_io_t fuzz_io = {NULL,     emit,     send_pkt, tp_open, tp_close,
                                tp_remote, tp_cand, tp_local, tp_rx,   empty};

#endif
