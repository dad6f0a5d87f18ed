/*
 * relay.c -- one call spread over several room processes: links between
 * them and the participants each one serves for the others
 * (docs/internals/relay.md).
 *
 * A call may run in several room processes: its origin and relays, each
 * serving its own (local) participants with their own transports. A link
 * joins two processes of the call; sfud makes them a star around the
 * origin, so every pair of processes is joined by exactly one path and
 * nothing loops. The same code runs at both ends of a link.
 *
 * Over a link each side sends what the other cannot see itself:
 *
 *   media      every RTP packet of the tracks it forwards -- its local
 *              publishers', and at the origin those that came in over its
 *              other links -- once per link, as the publisher sent it
 *              (SSRC, sequence numbers, timestamps and header extensions
 *              untouched), protected with the link's own SRTP keys (the
 *              link is a transport of its own: ICE between the two agents,
 *              DTLS, SRTP); the publishers' sender reports likewise;
 *   feedback   upstream, keyframe requests (PLI/FIR) and NACKs for those
 *              streams by their SSRC: answered by the origin of the stream
 *              as for a subscriber, from the publisher's layer cache;
 *   membership `peer` (one participant: sid, identity, name, mute states
 *              and its tracks with what forwarding them needs) and
 *              `peer_gone`, JSON carried by sfud between the two processes
 *              ({type: link_msg, link, msg}).
 *
 * At the receiving end a participant of another process is a *remote*
 * participant (p->via = the link it comes over): listed to local clients,
 * its tracks subscribed like any other, its speaking detected from the
 * level extension; it has no session, transport, usage or events -- its
 * own process reports those -- and the room only ever sends it RTCP, over
 * its link. A remote track's SSRCs are only those its description gives:
 * nothing is learnt from packets (two remote tracks could claim the same
 * first packet), so a publisher's stream reaches a relay once its own
 * process has learnt the SSRC and said so (within a media tick).
 *
 * sfud sets a link up with three control messages to each end:
 * link_open {link, role} (our side: the origin's end is the DTLS client),
 * answered by link_local {link, ufrag, pwd, fp_alg, fp, setup,
 * candidates}; link_remote {link, ...the other end's link_local}; and
 * link_close {link}.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codecs/video.h"
#include "sfu/base/log.h"
#include "sfu/base/sfu.h"
#include "sfu/media/rtcp.h"
#include "sfu/room/engine.h"

/* --- links ---------------------------------------------------------------- */

static sfu_participant_t *link_by_id(sfu_room_t *room, const char *id) {
  for (sfu_participant_t *l = room->links; id && l; l = l->next)
    if (strcmp(l->sid, id) == 0) return l;
  return NULL;
}

static void link_send(sfu_room_t *room, sfu_participant_t *link, json_t *msg) {
  if (room->moved) {
    json_decref(msg);
    return;
  }
  room->io->emit(room->io, json_pack("{s:s, s:s, s:o}", "type", "link_msg", "link", link->sid,
                                     "msg", msg));
}

static int valid_link_id(const char *id) {
  size_t n = id ? strlen(id) : 0;
  if (n == 0 || n >= sizeof(((sfu_participant_t *)0)->sid)) return 0;
  for (size_t i = 0; i < n; i++)
    if (!(id[i] == '_' || id[i] == '-' || (id[i] >= '0' && id[i] <= '9') ||
          (id[i] >= 'a' && id[i] <= 'z') || (id[i] >= 'A' && id[i] <= 'Z')))
      return 0;
  return 1;
}

static void hex_of(const uint8_t *b, size_t n, char *out) {
  static const char d[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = d[b[i] >> 4];
    out[2 * i + 1] = d[b[i] & 15];
  }
  out[2 * n] = '\0';
}

static int unhex(const char *s, uint8_t *out, size_t cap) {
  size_t n = s ? strlen(s) : 0;
  if (n == 0 || n % 2 || n / 2 > cap) return -1;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (v < 0) return -1;
    out[i / 2] = (uint8_t)(i % 2 ? out[i / 2] | v : v << 4);
  }
  return (int)(n / 2);
}

/* link_open: the link and its transport; answers link_local. */
static int link_open(sfu_room_t *room, const char *id, const char *role) {
  if (!valid_link_id(id) || !role || (strcmp(role, "origin") && strcmp(role, "relay")))
    return SFU_EINVAL;
  if (link_by_id(room, id)) return SFU_EEXIST;
  sfu_participant_t *l = calloc(1, sizeof(*l));
  sfu_sdp_media_t *m = calloc(1, sizeof(*m));
  int rv = l && m ? 0 : SFU_ENOMEM;
  if (rv == 0) {
    snprintf(l->sid, sizeof(l->sid), "%s", id);
    snprintf(l->identity, sizeof(l->identity), "link %s", id);
    l->room = room;
    l->is_link = 1;
    l->link_origin = strcmp(role, "origin") == 0;
    l->rtcp_ssrc = sfu_random_u32();
    rv = room->io->transport_open(room->io, l);
  }
  if (rv != 0) {
    free(l);
    free(m);
    return rv;
  }
  l->next = room->links;
  room->links = l;
  sfu_room_set_empty(room);
  /* the origin's end is the DTLS client: both ends know it from the start */
  const char *setup = l->link_origin ? "active" : "passive";
  room->io->transport_local(room->io, l, m, setup);
  char fp[2 * sizeof(m->fp) + 1];
  hex_of(m->fp, m->fp_len, fp);
  json_t *cands = json_array();
  for (int i = 0; i < m->ncandidates; i++)
    json_array_append_new(cands, json_string(m->candidates[i]));
  if (!room->moved)
    room->io->emit(room->io,
                   json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o}", "type", "link_local",
                             "link", id, "ufrag", m->ice_ufrag, "pwd", m->ice_pwd, "fp_alg",
                             m->fp_alg, "fp", fp, "setup", setup, "candidates", cands));
  else
    json_decref(cands);
  free(m);
  sfu_log(SFU_LOG_INFO, "room", "link %s opened (%s end)", id, role);
  return 0;
}

/* link_remote: the other end's transport attributes. */
static int link_remote(sfu_room_t *room, sfu_participant_t *l, json_t *msg) {
  const char *ufrag = json_string_value(json_object_get(msg, "ufrag"));
  const char *pwd = json_string_value(json_object_get(msg, "pwd"));
  const char *alg = json_string_value(json_object_get(msg, "fp_alg"));
  const char *setup = json_string_value(json_object_get(msg, "setup"));
  json_t *cands = json_object_get(msg, "candidates");
  sfu_sdp_media_t *m = calloc(1, sizeof(*m));
  if (!m) return SFU_ENOMEM;
  int n;
  if (!ufrag || !pwd || !alg || !setup || !json_is_array(cands) ||
      strlen(ufrag) >= sizeof(m->ice_ufrag) || strlen(pwd) >= sizeof(m->ice_pwd) ||
      strlen(alg) >= sizeof(m->fp_alg) ||
      (n = unhex(json_string_value(json_object_get(msg, "fp")), m->fp, sizeof(m->fp))) < 0 ||
      strcmp(setup, l->link_origin ? "passive" : "active") != 0) {
    free(m);
    return SFU_EINVAL;
  }
  snprintf(m->ice_ufrag, sizeof(m->ice_ufrag), "%s", ufrag);
  snprintf(m->ice_pwd, sizeof(m->ice_pwd), "%s", pwd);
  snprintf(m->fp_alg, sizeof(m->fp_alg), "%s", alg);
  snprintf(m->setup, sizeof(m->setup), "%s", setup);
  m->fp_len = (size_t)n;
  const char *ours = NULL;
  int rv = room->io->transport_remote(room->io, l, m, &ours);
  free(m);
  if (rv < 0) return rv;
  size_t i;
  json_t *c;
  json_array_foreach(cands, i, c) {
    if (json_is_string(c) && room->io->transport_candidate(room->io, l, json_string_value(c)) != 0)
      sfu_log(SFU_LOG_WARN, "room", "link %s: candidate refused: %.80s", l->sid,
              json_string_value(c));
  }
  return 0;
}

static void add_ssrcs(sfu_participant_t *l, sfu_participant_t *p, const sfu_track_t *t) {
  for (int k = 0; t && k < t->nlayers; k++) {
    uint32_t s[2] = {t->layers[k].ssrc, t->layers[k].rtx_ssrc};
    for (int i = 0; i < 2; i++)
      if (s[i] && sfu_vec_push(&l->link_ssrcs, ((sfu_link_ssrc_t){s[i], p})) != 0)
        sfu_log(SFU_LOG_WARN, "room", "link %s: SSRC %u not indexed: out of memory", l->sid, s[i]);
  }
}

/* The link's SSRC index, made again from its remote participants' tracks:
 * after any description or leave, never per packet. */
static void index_ssrcs(sfu_room_t *room, sfu_participant_t *l) {
  l->link_ssrcs.n = 0;
  for (sfu_participant_t *p = room->participants; p; p = p->next)
    if (p->via == l) {
      sfu_track_t *ts[SFU_TRACK_SLOTS];
      sfu_participant_tracks(p, ts);
      for (int k = 0; k < SFU_TRACK_SLOTS; k++) add_ssrcs(l, p, ts[k]);
    }
}

static void remove_remotes(sfu_room_t *room, sfu_participant_t *l, const char *reason) {
  sfu_participant_t *p, *next;
  l->link_ssrcs.n = 0; /* (before: no entry may name a freed participant) */
  for (p = room->participants; p; p = next) {
    next = p->next;
    if (p->via == l) sfu_room_remove(room, p, reason, 0, NULL);
  }
}

static void link_free(sfu_room_t *room, sfu_participant_t *l) {
  for (sfu_participant_t **pp = &room->links; *pp; pp = &(*pp)->next)
    if (*pp == l) {
      *pp = l->next;
      break;
    }
  remove_remotes(room, l, "relay_gone");
  if (l->transport) room->io->transport_close(room->io, l);
  sfu_log(SFU_LOG_INFO, "room", "link %s closed", l->sid);
  sfu_vec_free(&l->link_ssrcs);
  free(l);
}

void sfu_relay_end(sfu_room_t *room) {
  while (room->links) link_free(room, room->links);
}

/* --- what a participant looks like to the other processes ------------------ */

static json_t *track_json(const sfu_track_t *t) {
  json_t *layers = json_array();
  for (int k = 0; k < t->nlayers; k++)
    json_array_append_new(layers, json_pack("{s:s, s:I, s:I}", "rid", t->layers[k].rid, "ssrc",
                                            (json_int_t)t->layers[k].ssrc, "rtx_ssrc",
                                            (json_int_t)t->layers[k].rtx_ssrc));
  return json_pack("{s:s, s:s, s:s, s:I, s:I, s:i, s:i, s:i, s:{s:s, s:i, s:i, s:s}, s:i, s:i, "
                   "s:i, s:i, s:o}",
                   "id", t->id, "kind", t->kind == SFU_KIND_AUDIO ? "audio" : "video",
                   "source", sfu_source_name(t->source),
                   "out_ssrc", (json_int_t)t->out_ssrc, "out_rtx_ssrc",
                   (json_int_t)t->out_rtx_ssrc, "pt", t->pt, "rtx_pt", t->rtx_pt, "red_pt",
                   t->red_pt, "codec",
                   "name", t->codec.name, "clock", t->codec.clock, "channels",
                   t->codec.channels, "fmtp", t->codec.fmtp, "level_ext", t->level_ext,
                   "rid_ext", t->rid_ext, "rrid_ext", t->rrid_ext, "dd_ext", t->dd_ext, "layers",
                   layers);
}

static json_t *peer_json(const sfu_participant_t *p) {
  json_t *tracks = json_array();
  sfu_track_t *ts[SFU_TRACK_SLOTS];
  sfu_participant_tracks(p, ts);
  for (int k = 0; k < SFU_TRACK_SLOTS; k++)
    if (ts[k]) json_array_append_new(tracks, track_json(ts[k]));
  return json_pack("{s:s, s:s, s:s, s:s, s:b, s:b, s:o}", "type", "peer", "sid", p->sid,
                   "identity", p->identity, "name", p->name, "muted", p->muted, "server_muted",
                   p->server_muted, "tracks", tracks);
}

/* p (local, or remote over another link) to every link that is up but
 * the one p comes over. */
static void announce(sfu_room_t *room, sfu_participant_t *p) {
  json_t *j = NULL;
  for (sfu_participant_t *l = room->links; l; l = l->next) {
    if (l == p->via || !l->tp_ready) continue;
    if (!j) j = peer_json(p);
    link_send(room, l, json_incref(j));
  }
  json_decref(j);
}

void sfu_relay_gone(sfu_room_t *room, sfu_participant_t *p, const char *reason) {
  for (sfu_participant_t *l = room->links; l; l = l->next)
    if (l != p->via && l->tp_ready)
      link_send(room, l, json_pack("{s:s, s:s, s:s}", "type", "peer_gone", "sid", p->sid,
                                   "reason", reason));
}

void sfu_relay_flush(sfu_room_t *room) {
  if (!room->links) return; /* (the flags wait for a link) */
  for (sfu_participant_t *p = room->participants; p; p = p->next)
    if (p->link_dirty) {
      p->link_dirty = 0;
      if (!p->audience) announce(room, p);
    }
}

/* --- the audience: counted, never described -------------------------------- */

int sfu_relay_audience(const sfu_room_t *room) {
  int n = room->audience_n;
  for (const sfu_participant_t *l = room->links; l; l = l->next) n += l->link_audience;
  return n;
}

void sfu_relay_tell_audience(sfu_room_t *room) {
  int all = sfu_relay_audience(room);
  for (sfu_participant_t *l = room->links; l; l = l->next) {
    int ours = all - l->link_audience; /* (what it serves is its own) */
    if (!l->tp_ready || ours == l->link_audience_told) continue;
    l->link_audience_told = ours;
    link_send(room, l, json_pack("{s:s, s:i}", "type", "audience", "count", ours));
  }
}

/* --- participants of the other processes ----------------------------------- */

static sfu_participant_t *by_sid(sfu_room_t *room, const char *sid) {
  for (sfu_participant_t *p = room->participants; p; p = p->next)
    if (strcmp(p->sid, sid) == 0) return p;
  return NULL;
}

static int int_in(json_t *o, const char *key, int lo, int hi, int *out) {
  json_t *v = json_object_get(o, key);
  if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) return -1;
  *out = (int)json_integer_value(v);
  return 0;
}

static int u32_of(json_t *o, const char *key, uint32_t *out) {
  json_t *v = json_object_get(o, key);
  if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 0xffffffffLL)
    return -1;
  *out = (uint32_t)json_integer_value(v);
  return 0;
}

static int str_into(json_t *o, const char *key, char *out, size_t cap) {
  const char *s = json_string_value(json_object_get(o, key));
  if (!s || strlen(s) >= cap) return -1;
  snprintf(out, cap, "%s", s);
  return 0;
}

/* A track description into `t` (a fresh one, or one to compare): 0 or
 * SFU_EINVAL. *slot gets its SFU_SLOT_*. A description without "source"
 * is a camera's. */
static int track_of(json_t *j, sfu_track_t *t, int *slot) {
  char kname[8], sname[8] = "camera";
  sfu_kind_t kind;
  json_t *codec = json_object_get(j, "codec"), *layers = json_object_get(j, "layers");
  if (str_into(j, "id", t->id, sizeof(t->id)) || str_into(j, "kind", kname, sizeof(kname)) ||
      u32_of(j, "out_ssrc", &t->out_ssrc) || u32_of(j, "out_rtx_ssrc", &t->out_rtx_ssrc) ||
      !json_is_object(codec) || !json_is_array(layers) || json_array_size(layers) < 1 ||
      json_array_size(layers) > SFU_MAX_LAYERS)
    return SFU_EINVAL;
  int pt, rtx_pt;
  if (strcmp(kname, "audio") == 0)
    kind = SFU_KIND_AUDIO;
  else if (strcmp(kname, "video") == 0)
    kind = SFU_KIND_VIDEO;
  else
    return SFU_EINVAL;
  if (json_object_get(j, "source") && str_into(j, "source", sname, sizeof(sname)))
    return SFU_EINVAL;
  if (strcmp(sname, "camera") == 0)
    t->source = SFU_SOURCE_CAMERA;
  else if (strcmp(sname, "screen") == 0 && kind == SFU_KIND_VIDEO)
    t->source = SFU_SOURCE_SCREEN;
  else
    return SFU_EINVAL;
  *slot = sfu_track_slot(kind, t->source);
  if (int_in(j, "pt", 0, 127, &pt) || int_in(j, "rtx_pt", -1, 127, &rtx_pt) ||
      int_in(j, "level_ext", 0, 255, &t->level_ext) || int_in(j, "rid_ext", 0, 255, &t->rid_ext) ||
      int_in(j, "rrid_ext", 0, 255, &t->rrid_ext) ||
      str_into(codec, "name", t->codec.name, sizeof(t->codec.name)) ||
      int_in(codec, "clock", 1, 1000000, &t->codec.clock) ||
      int_in(codec, "channels", 0, 8, &t->codec.channels) ||
      str_into(codec, "fmtp", t->codec.fmtp, sizeof(t->codec.fmtp)))
    return SFU_EINVAL;
  t->dd_ext = 0; /* optional too: absent from a process that knows no descriptor */
  if (json_object_get(j, "dd_ext") && int_in(j, "dd_ext", 0, 14, &t->dd_ext)) return SFU_EINVAL;
  t->red_pt = -1; /* optional: absent from a process that knows no RED */
  if (json_object_get(j, "red_pt") && int_in(j, "red_pt", -1, 127, &t->red_pt))
    return SFU_EINVAL;
  t->kind = kind;
  t->pt = (uint8_t)pt;
  t->rtx_pt = rtx_pt;
  t->codec.pt = pt;
  t->codec.rtx_apt = -1;
  t->nlayers = (int)json_array_size(layers);
  for (int k = 0; k < t->nlayers; k++) {
    json_t *l = json_array_get(layers, (size_t)k);
    if (str_into(l, "rid", t->layers[k].rid, sizeof(t->layers[k].rid)) ||
        u32_of(l, "ssrc", &t->layers[k].ssrc) || u32_of(l, "rtx_ssrc", &t->layers[k].rtx_ssrc))
      return SFU_EINVAL;
  }
  return 0;
}

static void drop_remote_track(sfu_room_t *room, sfu_track_t **slot) {
  if (!*slot) return;
  sfu_neg_track_removed(room, *slot);
  sfu_track_destroy(*slot);
  *slot = NULL;
}

/* The remote's tracks as described (by SFU_SLOT_*): new ones subscribed by
 * the local participants, gone ones removed, known ones given the SSRCs
 * learnt since. */
static void set_remote_tracks(sfu_room_t *room, sfu_participant_t *p,
                              sfu_track_t *desc[SFU_TRACK_SLOTS]) {
  for (int at = 0; at < SFU_TRACK_SLOTS; at++) {
    sfu_track_t **slot = sfu_track_at(p, at);
    sfu_track_t *d = desc[at];
    if (*slot && (!d || strcmp((*slot)->id, d->id) != 0)) drop_remote_track(room, slot);
    if (!d) continue;
    if (*slot) {
      for (int k = 0; k < d->nlayers && k < (*slot)->nlayers; k++) {
        (*slot)->layers[k].ssrc = d->layers[k].ssrc;
        (*slot)->layers[k].rtx_ssrc = d->layers[k].rtx_ssrc;
      }
      continue;
    }
    sfu_track_t *t = sfu_track_create(p);
    if (!t) continue;
    snprintf(t->id, sizeof(t->id), "%s", d->id);
    t->kind = d->kind;
    t->source = d->source;
    t->out_ssrc = d->out_ssrc;
    t->out_rtx_ssrc = d->out_rtx_ssrc;
    t->pt = d->pt;
    t->rtx_pt = d->rtx_pt;
    t->red_pt = d->red_pt;
    t->codec = d->codec;
    t->level_ext = d->level_ext;
    t->rid_ext = d->rid_ext;
    t->rrid_ext = d->rrid_ext;
    t->dd_ext = d->dd_ext;
    t->nlayers = d->nlayers;
    for (int k = 0; k < d->nlayers; k++) {
      memcpy(t->layers[k].rid, d->layers[k].rid, sizeof(t->layers[k].rid));
      t->layers[k].ssrc = d->layers[k].ssrc;
      t->layers[k].rtx_ssrc = d->layers[k].rtx_ssrc;
    }
    t->parse = t->kind == SFU_KIND_VIDEO ? sfu_video_parser(t->codec.name) : NULL;
    t->muted = p->muted;
    *slot = t;
    sfu_log(SFU_LOG_INFO, "room", "[%s] publishes %s %s over link %s", p->identity,
            t->kind == SFU_KIND_AUDIO ? "audio" : sfu_source_name(t->source), t->id, p->via->sid);
    sfu_neg_track_added(room, t);
  }
}

/* peer: a participant of the process at the other end of `l` (or behind
 * it), new or changed. */
static int on_peer(sfu_room_t *room, sfu_participant_t *l, json_t *msg) {
  char sid[24], identity[65], name[129];
  json_t *tracks = json_object_get(msg, "tracks");
  sfu_track_t desc[SFU_TRACK_SLOTS];
  sfu_track_t *have[SFU_TRACK_SLOTS] = {NULL, NULL, NULL};
  if (str_into(msg, "sid", sid, sizeof(sid)) ||
      str_into(msg, "identity", identity, sizeof(identity)) ||
      str_into(msg, "name", name, sizeof(name)) || !sfu_token_valid_id(identity) ||
      !sfu_token_valid_id(sid) ||
      !json_is_array(tracks) ||
      json_array_size(tracks) > SFU_TRACK_SLOTS)
    return SFU_EINVAL;
  memset(desc, 0, sizeof(desc));
  for (size_t i = 0; i < json_array_size(tracks); i++) {
    sfu_track_t t;
    int at;
    memset(&t, 0, sizeof(t));
    if (track_of(json_array_get(tracks, i), &t, &at) != 0 || have[at]) return SFU_EINVAL;
    desc[at] = t;
    have[at] = &desc[at];
  }
  sfu_participant_t *p = by_sid(room, sid);
  if (p && p->via != l) return SFU_EEXIST; /* ours, or another link's: never from here */
  int muted = json_is_true(json_object_get(msg, "muted"));
  int server_muted = json_is_true(json_object_get(msg, "server_muted"));
  if (!p) {
    if ((p = calloc(1, sizeof(*p))) == NULL) return SFU_ENOMEM;
    snprintf(p->sid, sizeof(p->sid), "%s", sid);
    snprintf(p->identity, sizeof(p->identity), "%s", identity);
    snprintf(p->name, sizeof(p->name), "%s", name);
    p->room = room;
    p->via = l;
    p->tp_ready = 1;        /* RTCP to it goes over its link */
    p->media_connected = 1; /* its own process says when it is not */
    p->muted = muted;
    p->server_muted = server_muted;
    p->rtcp_ssrc = sfu_random_u32();
    p->number = ++room->joins;
    p->joined_ms = room->now_us / 1000;
    p->next = room->participants;
    room->participants = p;
    sfu_room_broadcast(room, NULL, json_pack("{s:s, s:o}", "type", "participant_joined",
                                             "participant", sfu_participant_json(p)));
    sfu_log(SFU_LOG_INFO, "room", "[%s] joined over link %s", p->identity, l->sid);
    sfu_room_set_empty(room);
  } else {
    sfu_room_set_muted(room, p, muted, 0);
    sfu_room_set_muted(room, p, server_muted, 1);
  }
  set_remote_tracks(room, p, have);
  index_ssrcs(room, l);
  p->link_dirty = 1; /* onward, to the other links (at the origin) */
  sfu_room_usage_refresh(room);
  return 0;
}

static int on_link_msg(sfu_room_t *room, sfu_participant_t *l, json_t *msg) {
  const char *type = json_string_value(json_object_get(msg, "type"));
  if (!type) return SFU_EINVAL;
  if (strcmp(type, "peer") == 0) return on_peer(room, l, msg);
  if (strcmp(type, "audience") == 0) {
    int n;
    if (int_in(msg, "count", 0, SFU_RELAY_MAX_AUDIENCE, &n)) return SFU_EINVAL;
    l->link_audience = n;
    return 0;
  }
  if (strcmp(type, "peer_gone") == 0) {
    const char *sid = json_string_value(json_object_get(msg, "sid"));
    const char *why = json_string_value(json_object_get(msg, "reason"));
    sfu_participant_t *p = sid ? by_sid(room, sid) : NULL;
    if (!p || p->via != l) return 0; /* gone already */
    sfu_room_remove(room, p, why && sfu_token_valid_id(why) ? why : "left", 0, NULL);
    index_ssrcs(room, l);
    return 0;
  }
  return SFU_ENOENT;
}

int sfu_relay_on_control(sfu_room_t *room, const char *type, json_t *msg) {
  if (strncmp(type, "link_", 5) != 0) return SFU_ENOENT;
  const char *id = json_string_value(json_object_get(msg, "link"));
  int rv;
  if (strcmp(type, "link_open") == 0) {
    if ((rv = link_open(room, id, json_string_value(json_object_get(msg, "role")))) != 0)
      sfu_log(SFU_LOG_WARN, "room", "link %.32s: cannot open: %s", id ? id : "?",
              sfu_strerror(rv));
    return rv;
  }
  sfu_participant_t *l = link_by_id(room, id);
  if (!l) return strcmp(type, "link_close") == 0 ? 0 : SFU_ENOENT;
  if (strcmp(type, "link_remote") == 0) {
    if ((rv = link_remote(room, l, msg)) != 0)
      sfu_log(SFU_LOG_WARN, "room", "link %s: the other end refused: %s", l->sid,
              sfu_strerror(rv));
    return rv;
  }
  if (strcmp(type, "link_close") == 0) {
    link_free(room, l);
    sfu_room_set_empty(room);
    return 0;
  }
  if (strcmp(type, "link_msg") == 0) {
    json_t *m = json_object_get(msg, "msg");
    rv = json_is_object(m) ? on_link_msg(room, l, m) : SFU_EINVAL;
    if (rv < 0 && rv != SFU_ENOENT)
      sfu_log(SFU_LOG_WARN, "room", "link %s: message refused: %s", l->sid, sfu_strerror(rv));
    return rv;
  }
  return SFU_ENOENT;
}

void sfu_relay_on_transport(sfu_room_t *room, sfu_participant_t *l, int state) {
  if (state == SFU_TP_CONNECTED) {
    int first = !l->tp_ready;
    l->tp_ready = 1;
    l->media_connected = 1;
    if (!first) return;
    sfu_log(SFU_LOG_INFO, "room", "link %s up", l->sid);
    for (sfu_participant_t *p = room->participants; p; p = p->next)
      if (p->via != l && !p->audience) link_send(room, l, peer_json(p)); /* what it does not know */
    return;
  }
  sfu_log(SFU_LOG_WARN, "room", "link %s down", l->sid);
  l->tp_ready = 0;
  l->media_connected = 0;
  remove_remotes(room, l, "relay_gone"); /* sent again if it comes back */
}

/* --- packets -------------------------------------------------------------- */

void sfu_relay_forward(sfu_room_t *room, const sfu_participant_t *from, const uint8_t *pkt,
                       size_t len, int rtcp) {
  if (len > sizeof(room->scratch) - SFU_SRTP_TRAILER) return;
  for (sfu_participant_t *l = room->links; l; l = l->next) {
    if (l == from->via || !l->tp_ready) continue;
    memcpy(room->scratch, pkt, len);
    if (room->io->send(room->io, l, rtcp, room->scratch, len, sizeof(room->scratch)) != 0)
      room->c.drop_send++;
    else if (rtcp)
      room->c.rtcp_out++;
    else
      room->c.relay_out++;
  }
}

sfu_participant_t *sfu_relay_owner(sfu_room_t *room, const sfu_participant_t *l, uint32_t ssrc) {
  (void)room;
  for (int i = 0; ssrc && i < l->link_ssrcs.n; i++)
    if (l->link_ssrcs.items[i].ssrc == ssrc) return l->link_ssrcs.items[i].p;
  return NULL;
}

/* The track and layer we forward over `l` with this SSRC. */
static sfu_track_t *sent_track(sfu_room_t *room, const sfu_participant_t *l, uint32_t ssrc,
                               int *k) {
  for (sfu_participant_t *p = room->participants; p && ssrc; p = p->next) {
    if (p->via == l) continue;
    sfu_track_t *ts[SFU_TRACK_SLOTS];
    sfu_participant_tracks(p, ts);
    for (int i = 0; i < SFU_TRACK_SLOTS; i++)
      for (int j = 0; ts[i] && j < ts[i]->nlayers; j++)
        if (ts[i]->layers[j].ssrc == ssrc) return *k = j, ts[i];
  }
  return NULL;
}

void sfu_relay_on_rtcp(sfu_room_t *room, sfu_participant_t *l, uint8_t *buf, size_t len) {
  sfu_rtcp_iter_t it;
  sfu_rtcp_hdr_t h;
  uint32_t sender, media, ssrcs[8];
  uint8_t seqnrs[8];
  uint16_t seqs[256];
  int rv, n, k;

  room->c.rtcp_in++;
  sfu_rtcp_iter_init(&it, buf, len);
  while ((rv = sfu_rtcp_next(&it, &h)) == 1) {
    if (h.pt == 200) { /* a sender report of a stream it forwards to us */
      sfu_participant_t *p = sfu_relay_owner(room, l, h.ssrc);
      if (p) sfu_fwd_on_rtcp(room, p, (uint8_t *)h.data, h.len);
      continue;
    }
    sfu_track_t *t;
    switch (sfu_rtcp_fb_kind(&h)) {
    case SFU_RTCP_FB_PLI:
      if (sfu_rtcp_parse_pli(&h, &sender, &media) != 0) break;
      if ((t = sent_track(room, l, media, &k)) != NULL) {
        room->c.plis_received++;
        sfu_fwd_request_keyframe(room, t, k);
      }
      continue;
    case SFU_RTCP_FB_FIR:
      if (sfu_rtcp_parse_fir(&h, ssrcs, seqnrs, 8) <= 0) break;
      if ((t = sent_track(room, l, ssrcs[0], &k)) != NULL) {
        room->c.plis_received++;
        sfu_fwd_request_keyframe(room, t, k);
      }
      continue;
    case SFU_RTCP_FB_NACK:
      if ((n = sfu_rtcp_parse_nack(&h, &media, seqs, 256)) <= 0) break;
      room->c.nacks_received++;
      if ((t = sent_track(room, l, media, &k)) != NULL)
        sfu_fwd_resend_raw(room, l, &t->layers[k], seqs, n);
      continue;
    default: /* receiver reports, REMB: each process estimates its own */
      continue;
    }
    room->c.drop_malformed++;
  }
  if (rv < 0) room->c.drop_malformed++;
}

json_t *sfu_relay_json(const sfu_room_t *room) {
  json_t *a = json_array();
  for (const sfu_participant_t *l = room->links; l; l = l->next) {
    int remotes = 0;
    for (const sfu_participant_t *p = room->participants; p; p = p->next) remotes += p->via == l;
    json_array_append_new(a, json_pack("{s:s, s:s, s:b, s:i}", "link", l->sid, "end",
                                       l->link_origin ? "origin" : "relay", "up", l->tp_ready,
                                       "remote_participants", remotes));
  }
  return a;
}
