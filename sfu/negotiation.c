/*
 * negotiation.c -- SDP offer/answer for one participant (docs/signaling.md).
 *
 * The client offers once, after `welcome`: its m-lines are answered here
 * (an Opus m-line it sends on becomes its published track; everything else
 * is answered inactive or rejected). Every later change is a server offer:
 * the previous local description plus one `sendonly` m-line per track of
 * the others ("s<N>" mids), with a=msid <publisher sid> <track id> and
 * a=ssrc of the room-unique outbound SSRC. One offer is outstanding at a
 * time; changes made meanwhile set needs_offer and go into the next one.
 * A down-track carries packets only once the client has answered the offer
 * that introduced it.
 *
 * Removed tracks keep their m-line, made inactive (unified plan never
 * deletes m-lines); their down-track is freed when the answer comes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "sfu/log.h"
#include "sfu/room.h"
#include "sfu/sfu.h"
#include "signaling/token.h"

#define SDP_CAP 65536
#define OPUS_FMTP "minptime=10;useinbandfec=1"
#define URI_LEVEL "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
#define URI_MID "urn:ietf:params:rtp-hdrext:sdes:mid"

/* --- building descriptions ---------------------------------------------- */

static sfu_sdp_t *sdp_new(int nmedia_cap) {
  sfu_sdp_t *s = calloc(1, sizeof(*s));
  if (!s) return NULL;
  s->media = calloc((size_t)(nmedia_cap > 0 ? nmedia_cap : 1), sizeof(*s->media));
  if (!s->media) {
    free(s);
    return NULL;
  }
  return s;
}

static void sdp_destroy(sfu_sdp_t *s) {
  if (!s) return;
  sfu_sdp_free(s);
  free(s);
}

/* Our transport attributes on one m-line (the same on all: BUNDLE). */
static void put_transport(sfu_room_t *room, sfu_participant_t *p, sfu_sdp_media_t *m,
                          const char *setup) {
  sfu_ice_stream_t *ice = sfu_transport_ice(p->transport);
  snprintf(m->ice_ufrag, sizeof(m->ice_ufrag), "%s", sfu_ice_ufrag(ice));
  snprintf(m->ice_pwd, sizeof(m->ice_pwd), "%s", sfu_ice_pwd(ice));
  snprintf(m->fp_alg, sizeof(m->fp_alg), "sha-256");
  int n = sfu_sdp_fingerprint_parse(sfu_dtls_cert_fingerprint(room->cert), m->fp, sizeof(m->fp));
  m->fp_len = n > 0 ? (size_t)n : 0;
  snprintf(m->setup, sizeof(m->setup), "%s", setup);
  m->rtcp_mux = 1;
  m->ncandidates = sfu_ice_local_candidates(ice, m->candidates, SFU_SDP_MAX_CANDIDATES);
  m->end_of_candidates = 1;
}

static void put_opus(sfu_sdp_media_t *m, int pt, const char *fmtp) {
  sfu_sdp_codec_t *c = &m->codecs[0];
  memset(c, 0, sizeof(*c));
  c->pt = pt;
  snprintf(c->name, sizeof(c->name), "opus");
  c->clock = 48000;
  c->channels = 2;
  snprintf(c->fmtp, sizeof(c->fmtp), "%s", fmtp && fmtp[0] ? fmtp : OPUS_FMTP);
  c->rtx_apt = -1;
  m->ncodecs = 1;
}

static void session_fields(sfu_participant_t *p, sfu_sdp_t *s) {
  if (p->sdp_version == 0) RAND_bytes((unsigned char *)&s->session_id, sizeof(s->session_id));
  s->session_id = (s->session_id ? s->session_id : 1) & 0x3fffffffffffffffULL;
  s->session_version = ++p->sdp_version;
  snprintf(s->origin_user, sizeof(s->origin_user), "sfu");
  s->ice_lite = 1;
}

/* One BUNDLE group of every live m-line. Candidates go on the first one
 * only (the bundle's transport): that keeps an offer to a subscriber of a
 * hundred tracks well under the 1 MiB signaling bound. */
static void set_bundle(sfu_sdp_t *s) {
  s->nbundle = 0;
  for (int i = 0; i < s->nmedia; i++) {
    if (s->media[i].port == 0) continue;
    if (s->nbundle > 0) s->media[i].ncandidates = 0;
    s->bundle[s->nbundle++] = (uint16_t)i;
  }
}

static int send_sdp(sfu_room_t *room, sfu_participant_t *p, sfu_sdp_t *s, const char *type,
                    const char *idkey, json_t *id) {
  char *text = malloc(SDP_CAP);
  if (!text) return SFU_ENOMEM;
  set_bundle(s);
  int n = sfu_sdp_write(s, text, SDP_CAP);
  if (n < 0) {
    free(text);
    sfu_room_error(room, p, NULL, "internal", "SDP too large");
    return n;
  }
  json_t *m = json_pack("{s:s, s:s%}", "type", type, "sdp", text, (size_t)n);
  if (id) json_object_set(m, idkey, id);
  sfu_room_send(room, p, m);
  free(text);
  return 0;
}

/* --- subscriptions ------------------------------------------------------- */

static sfu_downtrack_t *subscribe(sfu_participant_t *sub, sfu_track_t *t) {
  if (sub->ndown == sub->capdown) {
    int cap = sub->capdown ? sub->capdown * 2 : 8;
    sfu_downtrack_t **d = realloc(sub->down, (size_t)cap * sizeof(*d));
    if (!d) return NULL;
    sub->down = d;
    sub->capdown = cap;
  }
  sfu_downtrack_t *d = calloc(1, sizeof(*d));
  if (!d) return NULL;
  if (sfu_track_add_down(t, d) != 0) {
    free(d);
    return NULL;
  }
  d->track = t;
  d->sub = sub;
  d->ssrc = t->out_ssrc;
  d->pt = 111;
  snprintf(d->mid, sizeof(d->mid), "s%d", sub->next_mid++);
  snprintf(d->owner_sid, sizeof(d->owner_sid), "%s", t->owner->sid);
  snprintf(d->track_id, sizeof(d->track_id), "%s", t->id);
  sub->down[sub->ndown++] = d;
  sub->needs_offer = 1;
  return d;
}

void sfu_neg_track_added(sfu_room_t *room, sfu_track_t *t) {
  for (sfu_participant_t *o = room->participants; o; o = o->next) {
    if (o == t->owner || !o->first_answered || !(o->grants & SFU_GRANT_SUBSCRIBE)) continue;
    if (subscribe(o, t)) sfu_neg_maybe_offer(room, o);
  }
}

void sfu_neg_track_removed(sfu_room_t *room, sfu_track_t *t) {
  for (int i = 0; i < t->ndown; i++) {
    sfu_downtrack_t *d = t->down[i];
    d->track = NULL;
    d->removed = 1;
    d->negotiated = 0;
    d->sub->needs_offer = 1;
  }
  for (int i = 0; i < t->ndown; i++) sfu_neg_maybe_offer(room, t->down[i]->sub);
  t->ndown = 0;
}

/* --- the client's offer --------------------------------------------------- */

static void put_downtrack(sfu_room_t *room, sfu_participant_t *p, sfu_sdp_media_t *m,
                          sfu_downtrack_t *d);

static sfu_downtrack_t *downtrack_by_mid(sfu_participant_t *p, const char *mid) {
  for (int i = 0; i < p->ndown; i++)
    if (strcmp(p->down[i]->mid, mid) == 0) return p->down[i];
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

static sfu_track_t *publish_audio(sfu_room_t *room, sfu_participant_t *p,
                                  const sfu_sdp_media_t *m, const sfu_sdp_codec_t *opus) {
  sfu_track_t *t = p->audio;
  if (!t) {
    t = sfu_track_create(p);
    if (!t) return NULL;
    p->audio = t;
  }
  snprintf(t->mid, sizeof(t->mid), "%s", m->mid);
  t->pt = (uint8_t)opus->pt;
  t->level_ext = sfu_sdp_find_ext(m, URI_LEVEL);
  if (m->nssrcs > 0) t->ssrc = m->ssrcs[0];
  t->muted = p->muted;
  return t;
}

int sfu_neg_on_offer(sfu_room_t *room, sfu_participant_t *p, const char *text, json_t *id) {
  const char *why = NULL, *our_setup = "passive";
  sfu_sdp_t offer;
  int new_track = 0, rv;

  if (p->neg == NEG_OFFER_SENT) {
    sfu_room_error(room, p, id, "glare", "answer the server's offer %d first", p->offer_id);
    return SFU_EBUSY;
  }
  memset(&offer, 0, sizeof(offer));
  if ((rv = sfu_sdp_parse(text, strlen(text), &offer, &why)) != 0) {
    sfu_room_error(room, p, id, "bad_sdp", "%s", why ? why : sfu_strerror(rv));
    return rv;
  }
  if (check_offer(&offer, &why) != 0) {
    sfu_room_error(room, p, id, "bad_sdp", "%s", why);
    sfu_sdp_free(&offer);
    return SFU_EINVAL;
  }
  if (!p->transport && (rv = sfu__room_transport_create(room, p)) != 0) {
    sfu_room_error(room, p, id, "internal", "cannot open a transport: %s", sfu_strerror(rv));
    sfu_sdp_free(&offer);
    return rv;
  }
  const sfu_sdp_media_t *first = NULL;
  for (int i = 0; i < offer.nmedia && !first; i++)
    if (offer.media[i].port) first = &offer.media[i];
  rv = sfu_transport_set_remote(p->transport, first->ice_ufrag, first->ice_pwd, first->fp_alg,
                                first->fp, first->fp_len, first->setup, &our_setup);
  if (rv < 0) {
    sfu_room_error(room, p, id, "bad_sdp", "transport parameters refused: %s", sfu_strerror(rv));
    sfu_sdp_free(&offer);
    return rv;
  }
  for (int i = 0; i < first->ncandidates; i++)
    sfu_transport_add_candidate(p->transport, first->candidates[i]);

  sfu_sdp_t *ans = sdp_new(offer.nmedia);
  sfu_downtrack_t *mine;
  if (!ans) {
    sfu_sdp_free(&offer);
    return SFU_ENOMEM;
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
    if (strcmp(om->kind, "audio") == 0 && opus && sends && (p->grants & SFU_GRANT_PUBLISH) &&
        (!p->audio || strcmp(p->audio->mid, om->mid) == 0)) {
      new_track |= p->audio == NULL;
      if (!publish_audio(room, p, om, opus)) continue;
      am->dir = SFU_DIR_RECVONLY;
      put_opus(am, opus->pt, opus->fmtp);
      for (int k = 0; k < om->next; k++)
        if (strcmp(om->ext[k].uri, URI_LEVEL) == 0 || strcmp(om->ext[k].uri, URI_MID) == 0)
          am->ext[am->next++] = om->ext[k];
    } else {
      /* Not something we receive (video, a second audio, a recvonly slot):
       * answered inactive. Others' tracks come in server offers. */
      am->dir = SFU_DIR_INACTIVE;
      am->codecs[0] = om->codecs[0];
      am->ncodecs = 1;
    }
  }
  sfu_sdp_free(&offer);
  rv = send_sdp(room, p, ans, "answer", "id", id);
  sdp_destroy(p->local);
  p->local = ans;
  if (rv != 0) return rv;

  if (!p->first_answered) {
    p->first_answered = 1;
    if (p->grants & SFU_GRANT_SUBSCRIBE)
      for (sfu_participant_t *o = room->participants; o; o = o->next)
        if (o != p && o->audio) subscribe(p, o->audio);
  }
  if (new_track) {
    sfu_log(SFU_LOG_INFO, "room", "[%s] publishes audio %s (mid %s, pt %d, level ext %d)",
            p->identity, p->audio->id, p->audio->mid, p->audio->pt, p->audio->level_ext);
    sfu_room_broadcast(room, p, json_pack("{s:s, s:o}", "type", "participant_updated",
                                          "participant", sfu_participant_json(p)));
    sfu_room_event(room, "track_published", p,
                   json_pack("{s:s, s:s}", "track_id", p->audio->id, "kind", "audio"));
    sfu_neg_track_added(room, p->audio);
    sfu_room_usage_refresh(room);
  }
  sfu_neg_maybe_offer(room, p);
  return 0;
}

/* --- server offers ----------------------------------------------------------- */

static void put_downtrack(sfu_room_t *room, sfu_participant_t *p, sfu_sdp_media_t *m,
                          sfu_downtrack_t *d) {
  memset(m, 0, sizeof(*m));
  snprintf(m->kind, sizeof(m->kind), "audio");
  snprintf(m->proto, sizeof(m->proto), "UDP/TLS/RTP/SAVPF");
  snprintf(m->mid, sizeof(m->mid), "%s", d->mid);
  m->port = 9;
  m->rtcp_rsize = 1;
  put_transport(room, p, m, "actpass");
  put_opus(m, d->pt, NULL);
  if (d->removed) {
    m->dir = SFU_DIR_INACTIVE;
    return;
  }
  m->dir = SFU_DIR_SENDONLY;
  m->ssrcs[0] = d->ssrc;
  m->nssrcs = 1;
  snprintf(m->cname, sizeof(m->cname), "%s", d->owner_sid);
  snprintf(m->msid_stream, sizeof(m->msid_stream), "%s", d->owner_sid);
  snprintf(m->msid_track, sizeof(m->msid_track), "%s", d->track_id);
}

void sfu_neg_maybe_offer(sfu_room_t *room, sfu_participant_t *p) {
  if (!p->first_answered || !p->local || p->neg != NEG_IDLE || !p->needs_offer) return;
  sfu_sdp_t *prev = p->local;
  int cap = prev->nmedia + p->ndown;
  if (cap > SFU_SDP_MAX_MEDIA) cap = SFU_SDP_MAX_MEDIA;
  sfu_sdp_t *o = sdp_new(cap);
  if (!o) return;
  o->session_id = prev->session_id;
  session_fields(p, o);
  memcpy(o->media, prev->media, (size_t)prev->nmedia * sizeof(*o->media));
  o->nmedia = prev->nmedia;
  for (int i = 0; i < p->ndown; i++) {
    sfu_downtrack_t *d = p->down[i];
    int at = sfu_sdp_find_mid(o, d->mid);
    sfu_sdp_media_t *m = at >= 0 ? &o->media[at] : NULL;
    if (!m) {
      if (o->nmedia == cap) {
        sfu_log(SFU_LOG_WARN, "room", "[%s] %d m-lines: no room for more tracks", p->identity, cap);
        break;
      }
      m = &o->media[o->nmedia++];
    }
    put_downtrack(room, p, m, d);
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
  sdp_destroy(p->local);
  p->local = o;
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
  int kept = 0;
  for (int i = 0; i < p->ndown; i++) {
    sfu_downtrack_t *d = p->down[i];
    int at = sfu_sdp_find_mid(&ans, d->mid);
    sfu_sdp_media_t *m = at >= 0 ? &ans.media[at] : NULL;
    if (d->removed) {
      free(d); /* its m-line stays inactive in p->local */
      continue;
    }
    const sfu_sdp_codec_t *opus = m ? sfu_sdp_find_codec(m, "opus", 48000) : NULL;
    if (m && m->port && opus && (m->dir == SFU_DIR_RECVONLY || m->dir == SFU_DIR_SENDRECV)) {
      d->pt = (uint8_t)opus->pt;
      d->negotiated = 1;
    }
    p->down[kept++] = d;
  }
  p->ndown = kept;
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
  if (sfu_transport_add_candidate(p->transport, c) != 0) {
    sfu_room_error(room, p, NULL, "bad_message", "unparsable candidate");
    return SFU_EINVAL;
  }
  return 0;
}

void sfu_neg_free(sfu_participant_t *p) {
  sdp_destroy(p->local);
  p->local = NULL;
  free(p->down);
  p->down = NULL;
  p->ndown = p->capdown = 0;
  p->neg = NEG_IDLE;
  p->needs_offer = 0;
  p->first_answered = 0;
  p->sdp_version = 0;
}
