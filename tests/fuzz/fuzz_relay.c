/*
 * fuzz_relay.c -- libFuzzer target for what a room takes in over a link
 * from another process of its call (sfu/room/relay.c): the other end's
 * link_remote and its link messages (peer, peer_gone, audience), as sfud carries
 * them -- from another node, through POST /v1/node/links.
 *
 * The input is a JSON array: each object is a link message, or, with a
 * "remote" member, the other end's transport attributes; the string
 * "close" closes the link. Then one RTP packet comes over the link on
 * every SSRC the remote tracks were given.
 *
 * Checks, beyond memory safety: remote participants are the link's, with
 * a valid identity and a sid, never counted among the room's own (one
 * joined before); the audience the link claims stays within bounds; after
 * the link closes none is left, and the room ends.
 *
 * Corpus: tests/fuzz/corpus/relay/ (descriptions as rooms send them: a
 * speaker, a simulcast camera, a camera and a screen share, a peer that
 * leaves, audience counts, malformed ones).
 */
#include <stdint.h>
#include <string.h>

#include "sfu/base/bytes.h"
#include "sfu/room/engine.h"
#include "signaling/token.h"
#include "tests/fuzz/check.h"
#include "tests/fuzz/engine_io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const sfu_room_t *room, const sfu_participant_t *link) {
  int own = 0;
  for (const sfu_participant_t *p = room->participants; p; p = p->next) {
    if (!p->via) {
      own++;
      continue;
    }
    CHECK(p->via == link && sfu_token_valid_id(p->identity) && p->sid[0]);
  }
  CHECK(own == room->participants_n && own == 1);
  CHECK(link->link_audience >= 0 && link->link_audience <= SFU_RELAY_MAX_AUDIENCE);
}

static void rtp_over(sfu_room_t *room, sfu_participant_t *link, const sfu_track_t *t,
                     sfu_time_t now) {
  uint8_t pkt[64 + SFU_SRTP_TRAILER];
  for (int k = 0; t && k < t->nlayers; k++) {
    memset(pkt, 0, sizeof(pkt));
    pkt[0] = 0x80;
    pkt[1] = t->pt;
    sfu_wr32(pkt + 8, t->layers[k].ssrc);
    sfu_room_on_rtp(room, link, pkt, 64, now);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  sfu_room_opts_t o = {"rm_fuzz", 8, 10, 0, 0, 0};
  sfu_time_t t = {1000000000, 1700000000000000};
  static sfu_room_t room;
  json_t *in = json_loadb((const char *)data, size, 0, NULL), *m;
  size_t i;
  if (!json_is_array(in)) {
    json_decref(in);
    return 0;
  }
  CHECK(sfu_room_init(&room, &o, &fuzz_io, t) == 0);
  json_t *join = json_pack("{s:i, s:s, s:s, s:i}", "session", 1, "identity", "own", "name", "",
                           "grants", 3);
  CHECK(sfu_room_on_control(&room, "client_join", join, t) == 0);
  json_t *open = json_pack("{s:s, s:s}", "link", "rl_fuzz", "role", "origin");
  CHECK(sfu_room_on_control(&room, "link_open", open, t) == 0);
  sfu_participant_t *link = room.links;
  CHECK(link && !link->next);
  sfu_room_on_transport(&room, link, SFU_TP_CONNECTED, t);
  int closed = 0;
  json_array_foreach(in, i, m) {
    t.mono_us += 20000;
    if (json_is_string(m) && strcmp(json_string_value(m), "close") == 0) {
      json_t *c = json_pack("{s:s}", "link", "rl_fuzz");
      sfu_room_on_control(&room, "link_close", c, t);
      json_decref(c);
      closed = 1;
      break;
    }
    json_t *r = json_object_get(m, "remote");
    json_t *msg = r ? json_deep_copy(r) : json_pack("{s:O}", "msg", m);
    if (!json_is_object(msg)) {
      json_decref(msg);
      continue;
    }
    json_object_set_new(msg, "link", json_string("rl_fuzz"));
    sfu_room_on_control(&room, r ? "link_remote" : "link_msg", msg, t);
    json_decref(msg);
    check(&room, link);
    sfu_room_tick(&room, t);
  }
  if (!closed) {
    for (sfu_participant_t *p = room.participants; p; p = p->next)
      if (p->via) {
        rtp_over(&room, link, p->audio, t);
        rtp_over(&room, link, p->video, t);
      }
    check(&room, link);
    json_t *c = json_pack("{s:s}", "link", "rl_fuzz");
    CHECK(sfu_room_on_control(&room, "link_close", c, t) == 0);
    json_decref(c);
  }
  for (sfu_participant_t *p = room.participants; p; p = p->next) CHECK(!p->via);
  CHECK(room.links == NULL);
  sfu_room_end(&room, t);
  json_decref(join);
  json_decref(open);
  json_decref(in);
  return 0;
}
