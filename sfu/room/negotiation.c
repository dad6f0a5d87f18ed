/*
 * negotiation.c -- SDP offer/answer for one participant (docs/signaling.md).
 *
 * The client offers once, after `welcome`: its m-lines are answered here
 * (an Opus m-line it sends on becomes its published audio, with RED over
 * Opus answered first when offered, so that browsers send it; a video one
 * its camera or, when the offer's `sources` says so, its screen share;
 * everything else is answered inactive or rejected). A later client offer
 * may publish what it did not yet, and one that stops sending on a
 * published track's m-line (inactive, recvonly, port 0) unpublishes it.
 * Every later change is a server offer: the previous local description
 * plus one `sendonly` m-line per track of the others ("s<N>" mids), with
 * a=msid <publisher sid> <track id> and a=ssrc of the room-unique outbound
 * SSRC. One offer is outstanding at a
 * time; changes made meanwhile set needs_offer and go into the next one.
 * A down-track carries packets only once the client has answered the offer
 * that introduced it.
 *
 * Removed tracks keep their m-line, rejected (port 0: unified plan never
 * deletes m-lines); their down-track is freed when the answer to that
 * offer comes. A rejected m-line of ours is then recycled (RFC 8829
 * 5.2.2) by the next new track of the same kind: same index, a new mid.
 * So a subscriber's description holds its own m-lines plus at most the
 * live tracks and the removals not yet recycled, however long the call
 * and however much the others come and go.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sfu/base/log.h"
#include "sfu/base/sfu.h"
#include "sfu/media/dd.h"
#include "sfu/media/twcc.h"
#include "sfu/room/engine.h"
#include "signaling/token.h"

#define OPUS_FMTP "minptime=10;useinbandfec=1"
#define URI_LEVEL "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
#define URI_MID "urn:ietf:params:rtp-hdrext:sdes:mid"
#define URI_RID "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
#define URI_RRID "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"
#define URI_ABS_SEND_TIME "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
/* Feedback the SFU acts on for video, offered and answered. */
#define VIDEO_FB (SFU_FB_NACK | SFU_FB_PLI | SFU_FB_FIR | SFU_FB_REMB)

/* --- building descriptions ---------------------------------------------- */

/* Our transport attributes on one m-line (the same on all: BUNDLE). */
static void put_transport(sfu_room_t *room, sfu_participant_t *p, sfu_sdp_media_t *m,
                          const char *setup) {
  room->io->transport_local(room->io, p, m, setup);
}

/* One codec on an m-line: the one we receive or send, without feedback
 * (the SFU terminates RTCP and asks for nothing it does not act on). */
static void put_codec(sfu_sdp_media_t *m, const sfu_sdp_codec_t *c) {
  m->codecs[0] = *c;
  m->codecs[0].fb = 0;
  m->codecs[0].rtx_apt = -1;
  m->ncodecs = 1;
}

/* A video codec with the feedback the SFU uses, and its RTX (rtx_pt >= 0). */
static void put_video_codec(sfu_sdp_media_t *m, const sfu_sdp_codec_t *c, int rtx_pt) {
  put_codec(m, c);
  m->codecs[0].fb = VIDEO_FB;
  if (rtx_pt < 0) return;
  sfu_sdp_codec_t *r = &m->codecs[m->ncodecs++];
  memset(r, 0, sizeof(*r));
  r->pt = rtx_pt;
  snprintf(r->name, sizeof(r->name), "rtx");
  r->clock = c->clock;
  r->rtx_apt = c->pt;
}

/* The RTX payload type repairing `pt` in an m-line, or -1. */
static int rtx_for(const sfu_sdp_media_t *m, int pt) {
  for (int i = 0; i < m->ncodecs; i++)
    if (m->codecs[i].rtx_apt == pt && strcasecmp(m->codecs[i].name, "rtx") == 0)
      return m->codecs[i].pt;
  return -1;
}

static void opus_codec(sfu_sdp_codec_t *c, int pt, const char *fmtp) {
  memset(c, 0, sizeof(*c));
  c->pt = pt;
  snprintf(c->name, sizeof(c->name), "opus");
  c->clock = 48000;
  c->channels = 2;
  snprintf(c->fmtp, sizeof(c->fmtp), "%s", fmtp && fmtp[0] ? fmtp : OPUS_FMTP);
  c->rtx_apt = -1;
}

/* RED (RFC 2198) carrying Opus of type `opus_pt`, as browsers write it:
 * red/48000/2 with a=fmtp:<pt> <opus>/<opus>. */
static void red_codec(sfu_sdp_codec_t *c, int pt, int opus_pt) {
  memset(c, 0, sizeof(*c));
  c->pt = pt;
  snprintf(c->name, sizeof(c->name), "red");
  c->clock = 48000;
  c->channels = 2;
  snprintf(c->fmtp, sizeof(c->fmtp), "%d/%d", opus_pt, opus_pt);
  c->rtx_apt = -1;
}

/* The RED payload type of an m-line whose blocks are all Opus of type
 * `opus_pt` (its fmtp lists only that type: "111/111"), or -1. */
static int red_for(const sfu_sdp_media_t *m, int opus_pt) {
  for (int i = 0; i < m->ncodecs; i++) {
    const sfu_sdp_codec_t *c = &m->codecs[i];
    if (strcasecmp(c->name, "red") != 0 || c->clock != 48000) continue;
    const char *f = c->fmtp;
    int n = 0;
    while (*f) {
      char *end;
      long v = strtol(f, &end, 10);
      if (end == f || v != opus_pt || (*end && *end != '/')) break;
      n++;
      f = *end ? end + 1 : end;
    }
    if (n > 0 && !*f) return c->pt;
  }
  return -1;
}

/* An audio m-line's codecs: Opus, and RED over it when red_pt >= 0 --
 * first when `red_first` (a browser sends RED only when the answer lists
 * it before Opus), else after. */
static void put_audio_codecs(sfu_sdp_media_t *m, const sfu_sdp_codec_t *opus, int red_pt,
                             int red_first) {
  put_codec(m, opus);
  if (red_pt < 0) return;
  sfu_sdp_codec_t red;
  red_codec(&red, red_pt, opus->pt);
  if (red_first) {
    m->codecs[1] = m->codecs[0];
    m->codecs[0] = red;
  } else {
    m->codecs[1] = red;
  }
  m->ncodecs = 2;
}

/* The video codec the SFU takes from an offer: the offerer's first choice
 * among those it forwards. H.264 only in packetization mode 1 (FU-A,
 * STAP-A), which every browser offers. */
static const sfu_sdp_codec_t *pick_video_codec(const sfu_sdp_media_t *m) {
  static const char *const names[] = {"VP8", "VP9", "H264", "AV1"};
  for (int i = 0; i < m->ncodecs; i++) {
    const sfu_sdp_codec_t *c = &m->codecs[i];
    if (c->clock != 90000) continue;
    for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
      if (strcasecmp(c->name, names[k]) != 0) continue;
      if (k == 2 && !strstr(c->fmtp, "packetization-mode=1")) break;
      return c;
    }
  }
  return NULL;
}

static void session_fields(sfu_participant_t *p, sfu_sdp_t *s) {
  if (p->sdp_version == 0) sfu_random_bytes(&s->session_id, sizeof(s->session_id));
  s->session_id = (s->session_id ? s->session_id : 1) & 0x3fffffffffffffffULL;
  s->session_version = ++p->sdp_version;
  snprintf(s->origin_user, sizeof(s->origin_user), "sfu");
  s->ice_lite = 1;
  s->extmap_allow_mixed = p->ext_mixed;
}

/* Candidates go on the first bundled m-line only: that keeps an offer to a
 * subscriber of a hundred tracks well under the 1 MiB signaling bound. */
static int send_sdp(sfu_room_t *room, sfu_participant_t *p, sfu_sdp_t *s, const char *type,
                    const char *idkey, json_t *id) {
  size_t cap = sfu_sdp_max_len(room->max_participants);
  char *text = malloc(cap);
  if (!text) return SFU_ENOMEM;
  sfu_sdp_bundle_live(s);
  int n = sfu_sdp_write(s, text, cap);
  if (n < 0) {
    free(text);
    sfu_room_error(room, p, NULL, "internal", "SDP too large");
    return n;
  }
  json_t *m = json_pack("{s:s, s:s%}", "type", type, "sdp", text, (size_t)n);
  if (id) json_object_set(m, idkey, id);
  sfu_room_send(room, p, m);
  free(p->local_sdp);
  p->local_sdp = realloc(text, (size_t)n + 1); /* kept: the base of the next offer */
  if (!p->local_sdp) free(text);
  return 0;
}

/* --- subscriptions ------------------------------------------------------- */

/* The last description we sent p, parsed again (NULL if none). */
static sfu_sdp_t *last_local(const sfu_participant_t *p) {
  sfu_sdp_t *s;
  if (!p->local_sdp || !(s = calloc(1, sizeof(*s)))) return NULL;
  if (sfu_sdp_parse(p->local_sdp, strlen(p->local_sdp), s, NULL) != 0) {
    free(s);
    return NULL;
  }
  return s;
}

/* The extmap id for `uri` in offers to `sub`: one BUNDLE shares one id
 * space (RFC 8285), so the subscriber's own id for it if it has one, else
 * the first one-byte id no other URI uses there nor is in `avoid` (bit i:
 * id i, chosen for another URI at the same time). 0 if none is free. */
static int choose_ext_id(const sfu_sdp_t *s, const char *uri, unsigned avoid) {
  uint8_t used[15] = {0};
  for (int id = 1; id < 15; id++) used[id] = (avoid >> id) & 1;
  for (int i = 0; s && i < s->nmedia; i++)
    for (int k = 0; k < s->media[i].next; k++) {
      const sfu_sdp_extmap_t *e = &s->media[i].ext[k];
      if (strcmp(e->uri, uri) == 0) return e->id;
      if (e->id > 0 && e->id < 15) used[e->id] = 1;
    }
  for (int id = 1; id < 15; id++)
    if (!used[id]) return id;
  return 0;
}

/* The payload type of codec `c` in offers to `sub`. Every m-line of one
 * BUNDLE shares a payload-type space, so a type may name only one codec
 * there: the subscriber's own type for the codec if it has one, else the
 * usual browser number, else the first free dynamic type. */
static int choose_pt(const sfu_participant_t *sub, const sfu_sdp_t *s,
                     const sfu_sdp_codec_t *c) {
  uint8_t used[128] = {0}; /* 1 = another codec, 2 = this one */
  int usual = strcasecmp(c->name, "opus") == 0 ? 111 : strcasecmp(c->name, "VP8") == 0 ? 96
            : strcasecmp(c->name, "VP9") == 0 ? 98 : strcasecmp(c->name, "H264") == 0 ? 102
            : strcasecmp(c->name, "AV1") == 0 ? 45 : c->pt;
  for (int i = 0; s && i < s->nmedia; i++)
    for (int k = 0; k < s->media[i].ncodecs; k++) {
      const sfu_sdp_codec_t *o = &s->media[i].codecs[k];
      if (o->pt < 0 || o->pt > 127) continue;
      int same = strcasecmp(o->name, c->name) == 0 && o->clock == c->clock &&
                 strcmp(o->fmtp, c->fmtp) == 0 && o->rtx_apt == c->rtx_apt;
      if (same) return o->pt;
      used[o->pt] = 1;
    }
  for (int i = 0; i < sub->down.n; i++) {
    const sfu_downtrack_t *d = sub->down.items[i];
    if (strcasecmp(d->codec.name, c->name) == 0 && d->codec.clock == c->clock &&
        strcmp(d->codec.fmtp, c->fmtp) == 0 && c->rtx_apt < 0)
      return d->pt;
    if (d->kind == SFU_KIND_VIDEO && c->rtx_apt == d->pt && d->rtx_pt >= 0) return d->rtx_pt;
    if (d->red_pt >= 0) {
      sfu_sdp_codec_t red;
      red_codec(&red, d->red_pt, d->pt);
      if (strcasecmp(c->name, "red") == 0 && c->clock == red.clock && strcmp(c->fmtp, red.fmtp) == 0)
        return d->red_pt;
      used[d->red_pt] = 1;
    }
    used[d->pt] = 1;
    if (d->rtx_pt >= 0) used[d->rtx_pt] = 1;
  }
  if (usual >= 0 && usual < 128 && !used[usual]) return usual;
  for (int pt = 96; pt < 128; pt++)
    if (!used[pt]) return pt;
  return usual;
}

static sfu_downtrack_t *subscribe(sfu_participant_t *sub, sfu_track_t *t) {
  if (sfu_vec_reserve(&sub->down, sub->down.n + 1) != 0) return NULL;
  sfu_downtrack_t *d = calloc(1, sizeof(*d));
  if (!d) return NULL;
  if (sfu_track_add_down(t, d) != 0) {
    sfu_downtrack_free(d);
    return NULL;
  }
  d->track = t;
  d->sub = sub;
  d->ssrc = t->out_ssrc;
  d->kind = t->kind;
  if (t->kind == SFU_KIND_AUDIO)
    opus_codec(&d->codec, 111, NULL);
  else
    d->codec = t->codec;
  sfu_sdp_t *local = last_local(sub);
  d->pt = (uint8_t)choose_pt(sub, local, &d->codec);
  d->codec.pt = d->pt;
  d->rtx_pt = -1;
  d->red_pt = -1;
  /* with max_audio_streams, the next media tick says whether it is heard */
  d->unheard = t->kind == SFU_KIND_AUDIO && sub->room->max_audio_streams > 0;
  if (t->kind == SFU_KIND_AUDIO) { /* offer RED over Opus too: a distinct type */
    sfu_sdp_codec_t red;
    red_codec(&red, 63, d->pt);
    int pt = choose_pt(sub, local, &red);
    d->red_pt = pt != d->pt ? pt : -1;
  }
  d->layer = -1;
  d->target = t->nlayers - 1;
  d->svc_target = d->svc_cur = d->svc_bw = SFU_MAX_LAYERS - 1; /* every spatial layer until asked */
  d->tid_target = d->tid_cur = d->tid_quality = SFU_MAX_TIDS - 1;
  d->max_layer = SFU_MAX_LAYERS - 1;
  d->bw_cap = SFU_MAX_LAYERS - 1;
  d->last_pid = d->last_tl0 = -1;
  if (t->kind == SFU_KIND_VIDEO) { /* offer RTX: a distinct type in the bundle */
    sfu_sdp_codec_t rtx;
    memset(&rtx, 0, sizeof(rtx));
    snprintf(rtx.name, sizeof(rtx.name), "rtx");
    rtx.clock = 90000;
    rtx.rtx_apt = d->pt;
    rtx.pt = 127;
    int pt = choose_pt(sub, local, &rtx);
    d->rtx_pt = pt != d->pt ? pt : -1;
    d->abs_ext_offer = choose_ext_id(local, URI_ABS_SEND_TIME, 0);
    d->twcc_ext_offer = choose_ext_id(local, SFU_TWCC_URI, 1u << d->abs_ext_offer);
    /* the publisher's Dependency Descriptor (AV1, H.264), passed on */
    if (t->dd_ext)
      d->dd_ext_offer = choose_ext_id(local, SFU_DD_URI,
                                      1u << d->abs_ext_offer | 1u << d->twcc_ext_offer);
  }
  sfu_sdp_destroy(local);
  snprintf(d->mid, sizeof(d->mid), "s%d", sub->next_mid++);
  snprintf(d->owner_sid, sizeof(d->owner_sid), "%s", t->owner->sid);
  snprintf(d->track_id, sizeof(d->track_id), "%s", t->id);
  if (t->kind == SFU_KIND_VIDEO) sfu_room_apply_pref(sub, d); /* as before a move */
  sub->down.items[sub->down.n++] = d;
  sub->needs_offer = 1;
  return d;
}

void sfu_neg_track_added(sfu_room_t *room, sfu_track_t *t) {
  for (sfu_participant_t *o = room->participants; o; o = o->next) {
    if (o == t->owner || !o->first_answered || !(o->grants & SFU_GRANT_SUBSCRIBE) || o->fixed)
      continue;
    if (subscribe(o, t)) sfu_neg_maybe_offer(room, o);
  }
  sfu_whep_rebind(room);
}

void sfu_neg_track_removed(sfu_room_t *room, sfu_track_t *t) {
  for (int i = 0; i < t->down.n; i++) {
    sfu_downtrack_t *d = t->down.items[i];
    d->track = NULL;
    if (d->fixed) continue; /* a WHEP viewer's: rebound once t is gone (whep.c) */
    d->removed = 1;
    d->negotiated = 0;
    d->sub->needs_offer = 1;
  }
  for (int i = 0; i < t->down.n; i++)
    if (!t->down.items[i]->fixed) sfu_neg_maybe_offer(room, t->down.items[i]->sub);
  t->down.n = 0;
}

/* --- the client's offer --------------------------------------------------- */

static void put_downtrack(sfu_room_t *room, sfu_participant_t *p, sfu_sdp_media_t *m,
                          sfu_downtrack_t *d);

static sfu_downtrack_t *downtrack_by_mid(const sfu_participant_t *p, const char *mid) {
  for (int i = 0; i < p->down.n; i++)
    if (strcmp(p->down.items[i]->mid, mid) == 0) return p->down.items[i];
  return NULL;
}

static int check_offer(const sfu_sdp_t *o, const char **why) {
  int live = 0;
  for (int i = 0; i < o->nmedia; i++) {
    const sfu_sdp_media_t *m = &o->media[i];
    if (m->port == 0) continue;
    live++;
    if (!m->mid[0]) return *why = "every m-line needs a=mid", -1;
    if (!m->rtcp_mux && strcmp(m->kind, "application") != 0)
      return *why = "rtcp-mux is required", -1;
    if (!m->ice_ufrag[0] || !m->ice_pwd[0]) return *why = "missing a=ice-ufrag/ice-pwd", -1;
    if (!m->fp_len) return *why = "missing a=fingerprint", -1;
  }
  if (live == 0) return *why = "no usable m-line", -1;
  if (o->nbundle == 0 && live > 1) return *why = "BUNDLE is required", -1;
  return 0;
}

/* The encodings of a track: simulcast by rid (a=rid ... send with
 * a=simulcast; SSRCs learnt from the rid extension) or by ssrc-group SIM,
 * else one. Layers keep what they learnt when a re-offer repeats them. */
static void set_layers(sfu_track_t *t, const sfu_sdp_media_t *m) {
  int n = 0;
  sfu_layer_t old[SFU_MAX_LAYERS];
  memcpy(old, t->layers, sizeof(old));
  int nold = t->nlayers;
  sfu_layer_t fresh[SFU_MAX_LAYERS];
  memset(fresh, 0, sizeof(fresh));
  if (m->has_simulcast && t->kind == SFU_KIND_VIDEO) {
    for (int i = 0; i < m->nrids && n < SFU_MAX_LAYERS; i++)
      if (m->rids[i].send) snprintf(fresh[n++].rid, sizeof(fresh[0].rid), "%s", m->rids[i].rid);
  } else if (m->nsim > 1 && t->kind == SFU_KIND_VIDEO) {
    for (int i = 0; i < m->nsim && n < SFU_MAX_LAYERS; i++) fresh[n++].ssrc = m->sim_ssrcs[i];
  }
  if (n == 0) {
    n = 1;
    fresh[0].ssrc = m->nssrcs > 0 ? m->ssrcs[0] : 0;
    if (m->has_fid && m->fid_ssrc[0] == fresh[0].ssrc) fresh[0].rtx_ssrc = m->fid_ssrc[1];
  }
  for (int i = 0; i < n; i++) /* keep a layer's state if it is the same one */
    for (int k = 0; k < nold; k++)
      if (strcmp(old[k].rid, fresh[i].rid) == 0 && (!fresh[i].ssrc || fresh[i].ssrc == old[k].ssrc)) {
        fresh[i] = old[k];
        old[k].nack = NULL;
        old[k].cache = NULL;
        break;
      }
  for (int k = 0; k < nold; k++) sfu_layer_release(&old[k]);
  memcpy(t->layers, fresh, sizeof(fresh));
  t->nlayers = n;
}

/* p's track of this kind and source, created on first use, set from the
 * offer. */
static sfu_track_t *publish(sfu_participant_t *p, sfu_kind_t kind, int source,
                            const sfu_sdp_media_t *m, const sfu_sdp_codec_t *c) {
  int at = sfu_track_slot(kind, source);
  sfu_track_t **slot = sfu_track_at(p, at);
  sfu_track_t *t = *slot;
  if (!t) {
    t = sfu_track_create(p);
    if (!t) return NULL;
    t->kind = kind;
    t->source = kind == SFU_KIND_VIDEO ? source : SFU_SOURCE_CAMERA;
    if (p->import_track[at][0]) { /* published before a move: same id */
      snprintf(t->id, sizeof(t->id), "%s", p->import_track[at]);
      p->import_track[at][0] = '\0';
      t->imported = 1;
    }
    *slot = t;
  }
  snprintf(t->mid, sizeof(t->mid), "%s", m->mid);
  t->pt = (uint8_t)c->pt;
  t->codec = *c;
  t->codec.fb = 0;
  t->codec.rtx_apt = -1;
  t->rtx_pt = kind == SFU_KIND_VIDEO ? rtx_for(m, c->pt) : -1;
  t->red_pt = kind == SFU_KIND_AUDIO ? red_for(m, c->pt) : -1;
  t->parse = kind == SFU_KIND_VIDEO ? sfu_video_parser(c->name) : NULL;
  if (kind == SFU_KIND_AUDIO) {
    t->level_ext = sfu_sdp_find_ext(m, URI_LEVEL);
    t->muted = p->muted;
  }
  t->rid_ext = sfu_sdp_find_ext(m, URI_RID);
  t->rrid_ext = sfu_sdp_find_ext(m, URI_RRID);
  t->mid_ext = sfu_sdp_find_ext(m, URI_MID);
  /* The layers of AV1 and H.264 travel in the Dependency Descriptor (an
   * H.264 payload says none; VP8 and VP9 say theirs in the payload):
   * taken from an AV1 or H.264 publisher only */
  t->dd_ext = t->parse == sfu_av1_parse || t->parse == sfu_h264_parse
                  ? sfu_sdp_find_ext(m, SFU_DD_URI)
                  : 0;
  if (t->dd_ext > 14) t->dd_ext = 0; /* a one-byte id: the subscribers' offers */
  set_layers(t, m);
  p->link_dirty = 1; /* the other processes of the call hear of it (relay.c) */
  return t;
}

/* A track is new: tell the room and the control plane, subscribe the others. */
static void announce_track(sfu_room_t *room, sfu_participant_t *p, sfu_track_t *t) {
  const char *kind = t->kind == SFU_KIND_AUDIO ? "audio" : "video";
  sfu_log(SFU_LOG_INFO, "room", "[%s] publishes %s %s (%s, mid %s, %s pt %d)", p->identity,
          kind, t->id, t->kind == SFU_KIND_AUDIO ? "microphone" : sfu_source_name(t->source),
          t->mid, t->codec.name, t->pt);
  if (!t->imported) { /* the control plane saw a moved track published already */
    json_t *ev = json_pack("{s:s, s:s, s:s}", "track_id", t->id, "kind", kind, "codec",
                           t->codec.name);
    if (t->kind == SFU_KIND_VIDEO)
      json_object_set_new(ev, "source", json_string(sfu_source_name(t->source)));
    sfu_room_event(room, "track_published", p, ev);
  }
  sfu_neg_track_added(room, t);
}

/* The source `sources` (a checked offer's, may be NULL) gives `mid`. */
static int source_of(json_t *sources, const char *mid) {
  const char *v = json_string_value(json_object_get(sources, mid));
  return v && strcmp(v, "screen") == 0 ? SFU_SOURCE_SCREEN : SFU_SOURCE_CAMERA;
}

/* The source of a video m-line: that of the track p publishes on it, else
 * what the offer's `sources` says (camera when it says nothing). */
static int line_source(const sfu_participant_t *p, json_t *sources, const char *mid) {
  if (p->screen && strcmp(p->screen->mid, mid) == 0) return SFU_SOURCE_SCREEN;
  if (p->video && strcmp(p->video->mid, mid) == 0) return SFU_SOURCE_CAMERA;
  return source_of(sources, mid);
}

/* `sources` against the offer: every mid it names is a video m-line there,
 * and a published track keeps the source it was published with. */
static int check_sources(const sfu_participant_t *p, const sfu_sdp_t *o, json_t *sources,
                         char *why, size_t cap) {
  const char *mid;
  json_t *v;
  json_object_foreach(sources, mid, v) {
    int at = sfu_sdp_find_mid(o, mid);
    if (at < 0 || strcmp(o->media[at].kind, "video") != 0) {
      snprintf(why, cap, "'sources' names '%.32s', not a video m-line of the offer", mid);
      return -1;
    }
    const sfu_track_t *t = p->screen && strcmp(p->screen->mid, mid) == 0 ? p->screen
                         : p->video && strcmp(p->video->mid, mid) == 0  ? p->video
                                                                         : NULL;
    if (t && t->source != source_of(sources, mid)) {
      snprintf(why, cap, "m-line '%.32s' carries a published track: its source cannot change",
               mid);
      return -1;
    }
  }
  return 0;
}

/* Whether the offer still publishes track t of p: t's m-line is there,
 * live, sending, with t's codec. */
static int still_sent(const sfu_participant_t *p, const sfu_sdp_t *o, const sfu_track_t *t) {
  int at = sfu_sdp_find_mid(o, t->mid);
  if (at < 0 || !(p->grants & SFU_GRANT_PUBLISH)) return 0;
  const sfu_sdp_media_t *m = &o->media[at];
  if (m->port == 0 || (m->dir != SFU_DIR_SENDONLY && m->dir != SFU_DIR_SENDRECV)) return 0;
  return t->kind == SFU_KIND_AUDIO ? sfu_sdp_find_codec(m, "opus", 48000) != NULL
                                   : pick_video_codec(m) != NULL;
}

int sfu_neg_on_offer(sfu_room_t *room, sfu_participant_t *p, const char *text, json_t *sources,
                     json_t *id) {
  const char *why = NULL, *our_setup = "passive";
  char swhy[128];
  sfu_sdp_t offer;
  int rv;

  if (p->neg == NEG_OFFER_SENT) {
    sfu_room_error(room, p, id, "glare", "answer the server's offer %d first", p->offer_id);
    return SFU_EBUSY;
  }
  memset(&offer, 0, sizeof(offer));
  if ((rv = sfu_sdp_parse(text, strlen(text), &offer, &why)) != 0) {
    sfu_room_error(room, p, id, "bad_sdp", "%s", why ? why : sfu_strerror(rv));
    return rv;
  }
  sfu_sdp_bundle_only_live(&offer); /* webrtcbin's max-bundle offers */
  if (check_offer(&offer, &why) != 0) {
    sfu_room_error(room, p, id, "bad_sdp", "%s", why);
    sfu_sdp_free(&offer);
    return SFU_EINVAL;
  }
  p->ext_mixed = offer.extmap_allow_mixed; /* answered, and in our offers */
  if (check_sources(p, &offer, sources, swhy, sizeof(swhy)) != 0) {
    sfu_room_error(room, p, id, "bad_message", "%s", swhy);
    sfu_sdp_free(&offer);
    return SFU_EINVAL;
  }
  if (!p->transport && (rv = room->io->transport_open(room->io, p)) != 0) {
    sfu_room_error(room, p, id, "internal", "cannot open a transport: %s", sfu_strerror(rv));
    sfu_sdp_free(&offer);
    return rv;
  }
  const sfu_sdp_media_t *first = NULL;
  for (int i = 0; i < offer.nmedia && !first; i++)
    if (offer.media[i].port) first = &offer.media[i];
  rv = room->io->transport_remote(room->io, p, first, &our_setup);
  if (rv < 0) {
    sfu_room_error(room, p, id, "bad_sdp", "transport parameters refused: %s", sfu_strerror(rv));
    sfu_sdp_free(&offer);
    return rv;
  }
  for (int i = 0; i < first->ncandidates; i++)
    room->io->transport_candidate(room->io, p, first->candidates[i]);

  sfu_sdp_t *ans = sfu_sdp_new(offer.nmedia);
  sfu_downtrack_t *mine;
  sfu_track_t *added[SFU_TRACK_SLOTS] = {NULL, NULL, NULL};
  int changed = 0;
  if (!ans) {
    sfu_sdp_free(&offer);
    return SFU_ENOMEM;
  }
  /* Tracks whose m-line stopped sending go first: a screen share stopped
   * and another started in one offer is a new track. */
  for (int k = 0; k < SFU_TRACK_SLOTS; k++) {
    sfu_track_t **slot = sfu_track_at(p, k);
    if (!*slot || still_sent(p, &offer, *slot)) continue;
    sfu_log(SFU_LOG_INFO, "room", "[%s] stops publishing %s (mid %s)", p->identity,
            (*slot)->id, (*slot)->mid);
    sfu_room_unpublish(room, p, slot);
    changed = 1;
  }
  session_fields(p, ans);
  ans->nmedia = offer.nmedia;
  for (int i = 0; i < offer.nmedia; i++) {
    const sfu_sdp_media_t *om = &offer.media[i];
    sfu_sdp_media_t *am = &ans->media[i];
    snprintf(am->kind, sizeof(am->kind), "%s", om->kind);
    snprintf(am->proto, sizeof(am->proto), "%s", om->proto);
    snprintf(am->mid, sizeof(am->mid), "%s", om->mid);
    const sfu_sdp_codec_t *opus = sfu_sdp_find_codec(om, "opus", 48000);
    int sends = om->dir == SFU_DIR_SENDONLY || om->dir == SFU_DIR_SENDRECV;
    if (om->port == 0 || strcmp(om->kind, "application") == 0 || om->ncodecs == 0) {
      am->port = 0;
      am->dir = SFU_DIR_INACTIVE;
      if (om->ncodecs) am->codecs[0] = om->codecs[0], am->ncodecs = 1;
      continue;
    }
    if ((mine = downtrack_by_mid(p, om->mid)) != NULL) {
      /* A re-offer from the client (after glare, or an ICE restart) lists
       * our m-lines too: answer them as we offered them. */
      put_downtrack(room, p, am, mine);
      snprintf(am->setup, sizeof(am->setup), "%s", our_setup);
      continue;
    }
    am->port = 9;
    am->rtcp_rsize = om->rtcp_rsize;
    put_transport(room, p, am, our_setup);
    const sfu_sdp_codec_t *vc = strcmp(om->kind, "video") == 0 ? pick_video_codec(om) : NULL;
    int can = sends && (p->grants & SFU_GRANT_PUBLISH);
    sfu_kind_t kind = vc ? SFU_KIND_VIDEO : SFU_KIND_AUDIO;
    const sfu_sdp_codec_t *c = vc ? vc : strcmp(om->kind, "audio") == 0 ? opus : NULL;
    int source = vc ? line_source(p, sources, om->mid) : SFU_SOURCE_CAMERA;
    int at = sfu_track_slot(kind, source);
    sfu_track_t *cur = *sfu_track_at(p, at);
    if (c && can && (!cur || strcmp(cur->mid, om->mid) == 0)) {
      sfu_track_t *t = publish(p, kind, source, om, c);
      if (!t) continue;
      if (!cur) added[at] = t;
      am->dir = SFU_DIR_RECVONLY;
      if (kind == SFU_KIND_AUDIO) {
        sfu_sdp_codec_t oc;
        opus_codec(&oc, c->pt, c->fmtp);
        put_audio_codecs(am, &oc, t->red_pt, 1);
      } else {
        put_video_codec(am, c, t->rtx_pt);
        if ((c->fb & SFU_FB_TWCC) && (p->twcc_in_ext = sfu_sdp_find_ext(om, SFU_TWCC_URI)) > 0)
          am->codecs[0].fb |= SFU_FB_TWCC; /* it numbers its packets: we say what arrived */
        for (int k = 0; k < t->nlayers && t->layers[k].rid[0]; k++) { /* simulcast: recv */
          snprintf(am->rids[k].rid, sizeof(am->rids[k].rid), "%s", t->layers[k].rid);
          am->rids[k].send = 0;
          am->nrids = k + 1;
          am->has_simulcast = 1;
        }
      }
      for (int k = 0; k < om->next; k++)
        if ((kind == SFU_KIND_AUDIO && strcmp(om->ext[k].uri, URI_LEVEL) == 0) ||
            strcmp(om->ext[k].uri, URI_MID) == 0 ||
            (kind == SFU_KIND_VIDEO && (strcmp(om->ext[k].uri, URI_RID) == 0 ||
                                        strcmp(om->ext[k].uri, URI_RRID) == 0 ||
                                        (t->dd_ext && om->ext[k].id == t->dd_ext) ||
                                        (p->twcc_in_ext && om->ext[k].id == p->twcc_in_ext))))
          am->ext[am->next++] = om->ext[k];
    } else if (p->fixed && !sends && om->dir != SFU_DIR_INACTIVE &&
               (strcmp(om->kind, "audio") == 0 || strcmp(om->kind, "video") == 0) &&
               sfu_neg_fixed_line(room, p, om, am, our_setup) == 0) {
      /* a WHEP viewer's m-line: it carries what whep.c binds to it */
    } else {
      /* Not something we receive (a second audio, camera or screen, a
       * codec we do not forward, a recvonly slot, a track stopped): answered
       * inactive. Others' tracks come in server offers. */
      am->dir = SFU_DIR_INACTIVE;
      am->codecs[0] = om->codecs[0];
      am->ncodecs = 1;
    }
  }
  sfu_sdp_free(&offer);
  rv = send_sdp(room, p, ans, "answer", "id", id);
  sfu_sdp_destroy(ans);
  if (rv != 0) return rv;

  if (!p->first_answered) {
    p->first_answered = 1;
    if (p->fixed)
      sfu_whep_rebind(room);
    else if (p->grants & SFU_GRANT_SUBSCRIBE)
      for (sfu_participant_t *o = room->participants; o; o = o->next) {
        if (o == p) continue;
        sfu_track_t *ts[SFU_TRACK_SLOTS];
        sfu_participant_tracks(o, ts);
        for (int k = 0; k < SFU_TRACK_SLOTS; k++)
          if (ts[k]) subscribe(p, ts[k]);
      }
  }
  for (int k = 0; k < SFU_TRACK_SLOTS; k++) changed |= added[k] != NULL;
  if (changed) {
    sfu_room_broadcast(room, p, json_pack("{s:s, s:o}", "type", "participant_updated",
                                          "participant", sfu_participant_json(p)));
    for (int k = 0; k < SFU_TRACK_SLOTS; k++)
      if (added[k]) announce_track(room, p, added[k]);
    sfu_room_usage_refresh(room);
  }
  sfu_neg_maybe_offer(room, p);
  return 0;
}

/* --- a WHEP viewer's m-lines (whep.c) ------------------------------------ */

/* The video codec of a WHEP viewer's m-line: that of the video the viewer
 * would carry now if it offers it, else VP8, else its first choice among
 * those the SFU forwards. It is the m-line's codec for good: only a video
 * in it can be switched onto the m-line later. */
static const sfu_sdp_codec_t *fixed_video_codec(sfu_room_t *room, const sfu_sdp_media_t *om) {
  const char *want = NULL;
  for (sfu_participant_t *o = room->participants; o && !want; o = o->next) {
    const sfu_track_t *t = o->video ? o->video : o->screen;
    if (t && !o->fixed && !o->is_link) want = t->codec.name;
  }
  const sfu_sdp_codec_t *vp8 = NULL;
  for (int i = 0; i < om->ncodecs; i++) {
    const sfu_sdp_codec_t *c = &om->codecs[i];
    if (c->clock != 90000) continue;
    if (strcasecmp(c->name, "H264") == 0 && !strstr(c->fmtp, "packetization-mode=1")) continue;
    if (want && strcasecmp(c->name, want) == 0) return c;
    if (!vp8 && strcasecmp(c->name, "VP8") == 0) vp8 = c;
  }
  return vp8 ? vp8 : pick_video_codec(om);
}

int sfu_neg_fixed_line(sfu_room_t *room, sfu_participant_t *p, const sfu_sdp_media_t *om,
                       sfu_sdp_media_t *am, const char *setup) {
  int audio = strcmp(om->kind, "audio") == 0;
  const sfu_sdp_codec_t *c = audio ? sfu_sdp_find_codec(om, "opus", 48000)
                                   : fixed_video_codec(room, om);
  if (!c || strlen(om->mid) >= sizeof(((sfu_downtrack_t *)0)->mid)) return -1;
  if (sfu_vec_reserve(&p->down, p->down.n + 1) != 0) return -1;
  sfu_downtrack_t *d = calloc(1, sizeof(*d));
  if (!d) return -1;
  d->sub = p;
  d->fixed = 1;
  d->kind = audio ? SFU_KIND_AUDIO : SFU_KIND_VIDEO;
  d->codec = *c;
  d->codec.fb = 0;
  d->codec.rtx_apt = -1;
  d->pt = (uint8_t)c->pt;
  d->rtx_pt = -1; /* a switch would change the RTX SSRC: losses are resent plain */
  d->red_pt = -1; /* RED from a publisher goes as its primary, plain Opus */
  do
    d->ssrc = sfu_random_u32();
  while (d->ssrc == 0);
  d->layer = -1;
  d->svc_target = d->svc_cur = d->svc_bw = SFU_MAX_LAYERS - 1;
  d->tid_target = d->tid_cur = d->tid_quality = SFU_MAX_TIDS - 1;
  d->max_layer = SFU_MAX_LAYERS - 1;
  d->bw_cap = SFU_MAX_LAYERS - 1;
  d->last_pid = d->last_tl0 = -1;
  if (!audio) { /* our send times, for the viewer's REMB */
    d->abs_ext_offer = sfu_sdp_find_ext(om, URI_ABS_SEND_TIME);
    if (d->abs_ext_offer > 14) d->abs_ext_offer = 0;
    d->abs_ext = d->abs_ext_offer;
  }
  snprintf(d->mid, sizeof(d->mid), "%s", om->mid);
  snprintf(d->owner_sid, sizeof(d->owner_sid), "%s", p->sid);
  snprintf(d->track_id, sizeof(d->track_id), "%s", audio ? "whep-audio" : "whep-video");
  d->negotiated = 1; /* our answer is the last word: packets may flow */
  p->down.items[p->down.n++] = d;
  put_downtrack(room, p, am, d);
  snprintf(am->setup, sizeof(am->setup), "%s", setup);
  am->rtcp_rsize = om->rtcp_rsize;
  return 0;
}

/* --- server offers ----------------------------------------------------------- */

static void put_downtrack(sfu_room_t *room, sfu_participant_t *p, sfu_sdp_media_t *m,
                          sfu_downtrack_t *d) {
  memset(m, 0, sizeof(*m));
  snprintf(m->kind, sizeof(m->kind), "%s", d->kind == SFU_KIND_AUDIO ? "audio" : "video");
  snprintf(m->proto, sizeof(m->proto), "UDP/TLS/RTP/SAVPF");
  snprintf(m->mid, sizeof(m->mid), "%s", d->mid);
  m->port = 9;
  m->rtcp_rsize = 1;
  put_transport(room, p, m, "actpass");
  if (d->kind == SFU_KIND_VIDEO) {
    put_video_codec(m, &d->codec, d->rtx_pt);
    m->codecs[0].pt = d->pt;
  } else {
    sfu_sdp_codec_t c = d->codec;
    c.pt = d->pt;
    put_audio_codecs(m, &c, d->red_pt, 0);
  }
  if (d->removed) { /* rejected: recyclable once the answer comes */
    m->port = 0;
    m->ncandidates = 0;
    m->dir = SFU_DIR_INACTIVE;
    return;
  }
  m->dir = SFU_DIR_SENDONLY;
  m->ssrcs[0] = d->ssrc;
  m->nssrcs = 1;
  if (d->kind == SFU_KIND_VIDEO) {
    /* our send times, for its bandwidth estimate (REMB), and the
     * transport-wide number, for ours (transport-cc) */
    if (d->abs_ext_offer) {
      m->ext[m->next].id = d->abs_ext_offer;
      snprintf(m->ext[m->next++].uri, sizeof(m->ext[0].uri), "%s", URI_ABS_SEND_TIME);
    }
    if (d->twcc_ext_offer) {
      m->ext[m->next].id = d->twcc_ext_offer;
      snprintf(m->ext[m->next++].uri, sizeof(m->ext[0].uri), "%s", SFU_TWCC_URI);
      m->codecs[0].fb |= SFU_FB_TWCC;
    }
    if (d->dd_ext_offer) {
      m->ext[m->next].id = d->dd_ext_offer;
      snprintf(m->ext[m->next++].uri, sizeof(m->ext[0].uri), "%s", SFU_DD_URI);
    }
  }
  if (d->kind == SFU_KIND_VIDEO && d->rtx_pt >= 0 && d->track) {
    m->ssrcs[1] = d->track->out_rtx_ssrc;
    m->nssrcs = 2;
    m->fid_ssrc[0] = d->ssrc;
    m->fid_ssrc[1] = d->track->out_rtx_ssrc;
    m->has_fid = 1;
  }
  snprintf(m->cname, sizeof(m->cname), "%s", d->owner_sid);
  snprintf(m->msid_stream, sizeof(m->msid_stream), "%s", d->owner_sid);
  snprintf(m->msid_track, sizeof(m->msid_track), "%s", d->track_id);
}

/* A rejected m-line (port 0) as our offers repeat it: the parser keeps only
 * its kind, proto, formats and mid, and JSEP needs no more, but some
 * stacks (aiortc) check ICE credentials, DTLS setup, rtcp-mux and a codec
 * they know on every m-line of an offer. */
static void put_rejected(sfu_room_t *room, sfu_participant_t *p, sfu_sdp_media_t *m) {
  sfu_sdp_codec_t c;
  put_transport(room, p, m, "actpass");
  m->ncandidates = 0;
  m->rtcp_mux = 1;
  m->dir = SFU_DIR_INACTIVE;
  if (strcmp(m->kind, "audio") == 0) {
    opus_codec(&c, 111, NULL);
    put_codec(m, &c);
  } else if (strcmp(m->kind, "video") == 0) {
    memset(&c, 0, sizeof(c));
    c.pt = 96;
    snprintf(c.name, sizeof(c.name), "VP8");
    c.clock = 90000;
    c.rtx_apt = -1;
    put_codec(m, &c);
  }
}

/* An m-line of `o` that a new down-track of `kind` may take over: one of
 * ours ("s<N>"), rejected in the description already answered (no
 * down-track is left on it). -1 if none. */
static int recyclable(const sfu_participant_t *p, const sfu_sdp_t *o, sfu_kind_t kind) {
  for (int i = 0; i < o->nmedia; i++) {
    const sfu_sdp_media_t *m = &o->media[i];
    char *end;
    if (m->port != 0 || m->mid[0] != 's' || !m->mid[1]) continue;
    long n = strtol(m->mid + 1, &end, 10);
    if (*end || n < 0 || n >= p->next_mid) continue;
    if (strcmp(m->kind, kind == SFU_KIND_AUDIO ? "audio" : "video") != 0) continue;
    if (!downtrack_by_mid(p, m->mid)) return i;
  }
  return -1;
}

void sfu_neg_maybe_offer(sfu_room_t *room, sfu_participant_t *p) {
  if (!p->first_answered || !p->local_sdp || p->neg != NEG_IDLE || !p->needs_offer) return;
  sfu_sdp_t *prev = last_local(p);
  if (!prev) return;
  int cap = prev->nmedia + p->down.n;
  if (cap > SFU_SDP_MAX_MEDIA) cap = SFU_SDP_MAX_MEDIA;
  sfu_sdp_t *o = sfu_sdp_new(cap);
  if (!o) {
    sfu_sdp_destroy(prev);
    return;
  }
  o->session_id = prev->session_id;
  session_fields(p, o);
  memcpy(o->media, prev->media, (size_t)prev->nmedia * sizeof(*o->media));
  o->nmedia = prev->nmedia;
  sfu_sdp_destroy(prev);
  for (int i = 0; i < o->nmedia; i++)
    if (o->media[i].port == 0 && !o->media[i].bundle_only) put_rejected(room, p, &o->media[i]);
  for (int i = 0; i < p->down.n; i++) {
    sfu_downtrack_t *d = p->down.items[i];
    int at = sfu_sdp_find_mid(o, d->mid);
    if (at < 0 && !d->removed) at = recyclable(p, o, d->kind);
    sfu_sdp_media_t *m = at >= 0 ? &o->media[at] : NULL;
    if (!m) {
      if (o->nmedia == cap) {
        sfu_log(SFU_LOG_WARN, "room", "[%s] %d m-lines: no room for more tracks", p->identity, cap);
        break;
      }
      m = &o->media[o->nmedia++];
    }
    put_downtrack(room, p, m, d);
    if (d->removed) d->removal_offered = 1;
  }
  /* Our earlier m-lines keep their direction; setup is actpass in offers. */
  for (int i = 0; i < o->nmedia; i++)
    if (o->media[i].port) snprintf(o->media[i].setup, sizeof(o->media[i].setup), "actpass");
  p->offer_id++;
  p->needs_offer = 0;
  p->neg = NEG_OFFER_SENT;
  json_t *oid = json_integer(p->offer_id);
  if (send_sdp(room, p, o, "offer", "offer_id", oid) != 0) p->neg = NEG_IDLE;
  json_decref(oid);
  sfu_sdp_destroy(o);
}

int sfu_neg_on_answer(sfu_room_t *room, sfu_participant_t *p, const char *text, long long oid) {
  const char *why = NULL;
  sfu_sdp_t ans;
  int rv;

  if (p->neg != NEG_OFFER_SENT) {
    sfu_room_error(room, p, NULL, "bad_message", "no offer is outstanding");
    return SFU_EINVAL;
  }
  if (oid != p->offer_id) {
    sfu_room_error(room, p, NULL, "bad_message", "answer to offer %d expected", p->offer_id);
    return SFU_EINVAL;
  }
  memset(&ans, 0, sizeof(ans));
  if ((rv = sfu_sdp_parse(text, strlen(text), &ans, &why)) != 0) {
    sfu_room_error(room, p, NULL, "bad_sdp", "%s", why ? why : sfu_strerror(rv));
    return rv; /* the offer stays outstanding: the client may answer again */
  }
  p->neg = NEG_IDLE;
  p->ext_mixed = p->ext_mixed && ans.extmap_allow_mixed;
  int kept = 0;
  for (int i = 0; i < p->down.n; i++) {
    sfu_downtrack_t *d = p->down.items[i];
    int at = sfu_sdp_find_mid(&ans, d->mid);
    sfu_sdp_media_t *m = at >= 0 ? &ans.media[at] : NULL;
    if (d->removed) {
      /* Gone for good once the answered offer carried it inactive (its
       * m-line stays so in p->local_sdp); a track removed while this
       * offer was out waits for the next one. */
      if (d->removal_offered)
        sfu_downtrack_free(d);
      else
        p->down.items[kept++] = d;
      continue;
    }
    const sfu_sdp_codec_t *c = m ? sfu_sdp_find_codec(m, d->codec.name, d->codec.clock) : NULL;
    if (m && m->port && c && (m->dir == SFU_DIR_RECVONLY || m->dir == SFU_DIR_SENDRECV)) {
      d->pt = (uint8_t)c->pt;
      if (d->kind == SFU_KIND_AUDIO) /* RED only if the answer kept it */
        d->red_pt = d->red_pt >= 0 ? red_for(m, c->pt) : -1;
      if (d->kind == SFU_KIND_VIDEO) {
        d->rtx_pt = rtx_for(m, c->pt);
        d->abs_ext = sfu_sdp_find_ext(m, URI_ABS_SEND_TIME);
        if (d->abs_ext > 14) d->abs_ext = 0; /* one-byte form only */
        sfu_fwd_twcc_out(p, sfu_sdp_find_ext(m, SFU_TWCC_URI));
        d->dd_ext = d->dd_ext_offer ? sfu_sdp_find_ext(m, SFU_DD_URI) : 0;
        if (d->dd_ext > 14) d->dd_ext = 0;
      }
      if (d->kind == SFU_KIND_VIDEO && !d->negotiated) /* a new subscriber: a keyframe */
        sfu_fwd_request_keyframe(room, d->track, d->target); /* (again each tick until one) */
      d->negotiated = 1;
    }
    p->down.items[kept++] = d;
  }
  p->down.n = kept;
  sfu_sdp_free(&ans);
  sfu_room_usage_refresh(room); /* new down-tracks may start receiving */
  sfu_neg_maybe_offer(room, p); /* changes that waited */
  return 0;
}

int sfu_neg_on_candidate(sfu_room_t *room, sfu_participant_t *p, const char *c) {
  if (!c) return 0; /* end of candidates: nothing to do for ICE-lite */
  if (!p->transport) {
    sfu_room_error(room, p, NULL, "bad_message", "candidate before offer");
    return SFU_EINVAL;
  }
  if (c[0] == '\0') return 0; /* browsers' end-of-candidates form */
  if (room->io->transport_candidate(room->io, p, c) != 0) {
    sfu_room_error(room, p, NULL, "bad_message", "unparsable candidate");
    return SFU_EINVAL;
  }
  return 0;
}

void sfu_neg_free(sfu_participant_t *p) {
  free(p->local_sdp);
  p->local_sdp = NULL;
  sfu_vec_free(&p->down);
  p->neg = NEG_IDLE;
  p->needs_offer = 0;
  p->first_answered = 0;
  p->sdp_version = 0;
}
