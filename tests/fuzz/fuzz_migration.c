/*
 * fuzz_migration.c -- libFuzzer target for the state a room takes in when
 * a call moves to it from another node (sfu_room_import(), migrate_in:
 * sfu/room/migration.c), as sent by the old node through the internal
 * route POST /v1/node/migrations.
 *
 * Checks, beyond memory safety: a state taken in leaves the room within
 * its limit, every participant with a valid identity and a sid, moving
 * (no usage before the commit); a refused one leaves the room empty; what
 * the room exports after taking it in is taken in again, whole, by another
 * room; the commit and the hand-over then run, and the room ends.
 *
 * Corpus: tests/fuzz/corpus/migration/ (states exported by rooms of the
 * engine's tests: speakers, a video subscriber's choices, server mutes).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sfu/room/engine.h"
#include "signaling/token.h"
#include "tests/fuzz/engine_io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const sfu_room_t *room) {
  int n = 0;
  if (room->participants_n > room->max_participants) abort();
  for (const sfu_participant_t *p = room->participants; p; p = p->next, n++)
    if (!sfu_token_valid_id(p->identity) || !p->sid[0] || !p->migrating || p->session == 0)
      abort();
  if (n != room->participants_n) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  sfu_room_opts_t o = {"rm_fuzz", 8, 10, 0, 0, 0};
  sfu_time_t t = {1000000000, 1700000000000000};
  static sfu_room_t a, b;
  json_t *state = json_loadb((const char *)data, size, 0, NULL);
  if (!state) return 0;
  if (sfu_room_init(&a, &o, &fuzz_io, t) != 0) abort();
  if (sfu_room_import(&a, state) == 0) {
    check(&a);
    json_t *again = sfu_room_export(&a);
    if (sfu_room_init(&b, &o, &fuzz_io, t) != 0) abort();
    if (sfu_room_import(&b, again) != 0 || b.participants_n != a.participants_n) abort();
    check(&b);
    json_decref(again);
    sfu_room_migrate_commit(&b, 1700000000000);
    sfu_room_migrate_out(&b, 1700000000000);
    sfu_room_end(&b, t);
  } else if (a.participants_n != 0) {
    abort();
  }
  sfu_room_end(&a, t);
  json_decref(state);
  return 0;
}
