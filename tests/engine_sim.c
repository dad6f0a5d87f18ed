/*
 * engine_sim.c -- the simulated world of engine_sim.h: recording I/O, the
 * event loop, peers (signaling, media sources, receivers) and links.
 *
 * Order of events at one instant: emitted messages are handled first
 * (welcome, offers answered), then downlink deliveries to peers (a
 * publisher reacts to NACK/PLI here), uplink deliveries to the engine,
 * media sources, peers' feedback timers, and last the engine's tick; this
 * repeats until nothing more is due, then the clock jumps to the next
 * event. Everything is deterministic for a seed (the engine's own random
 * SSRCs and ids do not change what happens).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "sfu/base/bytes.h"
#include "sfu/media/red.h"
#include "sfu/media/rtcp.h"
#include "signaling/token.h"
#include "tests/engine_sim.h"

/* Who owns the message emit() gets: 0 = the engine keeps its reference
 * (we take our own), 1 = the reference is handed to us. */
#ifndef SIM_EMIT_STEALS
#define SIM_EMIT_STEALS 1
#endif

#define SDP_TEXT_CAP 65536
#define URI_LEVEL "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
#define URI_MID "urn:ietf:params:rtp-hdrext:sdes:mid"
#define URI_RID "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
#define URI_RRID "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"
#define URI_ABS "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"

/* --- small things ---------------------------------------------------------- */

static void *grow(void *items, int *cap, int need, size_t elem) {
  if (need <= *cap) return items;
  int c = *cap ? *cap : 16;
  while (c < need) c *= 2;
  void *a = realloc(items, (size_t)c * elem);
  assert_non_null(a);
  *cap = c;
  return a;
}

uint32_t sim_rand(sim_t *s) {
  uint64_t x = s->rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  s->rng = x;
  return (uint32_t)((x * UINT64_C(0x2545F4914F6CDD1D)) >> 32);
}

double sim_uniform(sim_t *s) { return (double)sim_rand(s) / 4294967296.0; }

uint64_t sim_us(const sim_t *s) { return s->now.mono_us; }
uint64_t sim_ms(const sim_t *s) { return (s->now.mono_us - SIM_MONO0_US) / 1000; }

static void set_now(sim_t *s, uint64_t mono_us) {
  assert_true(mono_us >= s->now.mono_us);
  s->now.mono_us = mono_us;
  s->now.wall_us = SIM_WALL0_US + (int64_t)(mono_us - SIM_MONO0_US);
}

static sim_peer_t *peer_by_session(sim_t *s, uint32_t session) {
  for (int i = 0; i < s->npeers; i++)
    if (s->peers[i]->session == session) return s->peers[i];
  return NULL;
}

static sim_t *sim_of(sfu_room_io_t *io) { return io->data; }

/* Engine calls go through here: never from inside a callback. */
static void enter(sim_t *s) {
  assert_false(s->in_engine);
  assert_false(s->ended);
  s->in_engine = 1;
}

static void leave_engine(sim_t *s) { s->in_engine = 0; }

sfu_participant_t *sim_part(sim_peer_t *pe) {
  return sfu_room_by_session(&pe->sim->room, pe->session);
}

/* --- recording I/O ----------------------------------------------------------- */

static void io_emit(sfu_room_io_t *io, json_t *msg) {
  sim_t *s = sim_of(io);
  assert_non_null(msg);
  s->msgs = grow(s->msgs, &s->capmsgs, s->nmsgs + 1, sizeof(*s->msgs));
#if SIM_EMIT_STEALS
  s->msgs[s->nmsgs].m = msg;
#else
  s->msgs[s->nmsgs].m = json_deep_copy(msg);
#endif
  s->msgs[s->nmsgs].at_us = s->now.mono_us;
  s->nmsgs++;
}

static void link_push(sim_t *s, sim_link_t *l, int rtcp, const uint8_t *data, size_t len);

static int io_send(sfu_room_io_t *io, sfu_participant_t *p, int rtcp, uint8_t *buf, size_t len,
                   size_t cap) {
  sim_t *s = sim_of(io);
  assert_true(s->in_engine);
  assert_true(len >= (rtcp ? 8u : 12u));
  assert_true(cap >= len + SFU_SRTP_TRAILER);
  s->pkts = grow(s->pkts, &s->cappkts, s->npkts + 1, sizeof(*s->pkts));
  sim_pkt_t *k = &s->pkts[s->npkts++];
  k->at_us = s->now.mono_us;
  k->session = p->session;
  k->rtcp = rtcp;
  k->len = len;
  k->data = malloc(len);
  assert_non_null(k->data);
  memcpy(k->data, buf, len);
  if (p->is_link) {
    if (s->other) link_push(s, &s->other->relay_in, rtcp, buf, len);
    return 0;
  }
  sim_peer_t *pe = peer_by_session(s, p->session);
  if (pe && !pe->gone) link_push(s, &pe->down, rtcp, buf, len);
  return 0;
}

static int io_transport_open(sfu_room_io_t *io, sfu_participant_t *p) {
  sim_t *s = sim_of(io);
  sim_peer_t *pe = peer_by_session(s, p->session);
  p->transport = pe ? (void *)pe : (void *)s;
  return 0;
}

static void io_transport_close(sfu_room_io_t *io, sfu_participant_t *p) { p->transport = NULL; }

static int io_transport_remote(sfu_room_io_t *io, sfu_participant_t *p, const sfu_sdp_media_t *m,
                               const char **our_setup) {
  assert_true(m->ice_ufrag[0] && m->ice_pwd[0] && m->fp_len == 32);
  *our_setup = p->is_link && strcmp(m->setup, "passive") == 0 ? "active" : "passive";
  return 0;
}

static int io_transport_candidate(sfu_room_io_t *io, sfu_participant_t *p, const char *cand) {
  return strncmp(cand, "candidate:", 10) == 0 ? 0 : SFU_EINVAL;
}

static void io_transport_local(sfu_room_io_t *io, sfu_participant_t *p, sfu_sdp_media_t *m,
                               const char *setup) {
  snprintf(m->ice_ufrag, sizeof(m->ice_ufrag), "sfuU%04x", p->session & 0xffff);
  snprintf(m->ice_pwd, sizeof(m->ice_pwd), "sfupassword0123456789ab%04x", p->session & 0xffff);
  snprintf(m->fp_alg, sizeof(m->fp_alg), "sha-256");
  for (int i = 0; i < 32; i++) m->fp[i] = (uint8_t)(0xA0 + i);
  m->fp_len = 32;
  snprintf(m->setup, sizeof(m->setup), "%s", setup ? setup : "passive");
  m->rtcp_mux = 1;
  snprintf(m->candidates[0], sizeof(m->candidates[0]),
           "candidate:1 1 udp 2130706431 192.0.2.10 40000 typ host");
  m->ncandidates = 1;
  m->end_of_candidates = 1;
}

static uint64_t io_transport_last_rx_us(sfu_room_io_t *io, sfu_participant_t *p) {
  sim_t *s = sim_of(io);
  sim_peer_t *pe = peer_by_session(s, p->session);
  return pe && pe->last_rx_us ? pe->last_rx_us : s->now.mono_us;
}

static void io_empty(sfu_room_io_t *io, int empty) {
  sim_t *s = sim_of(io);
  s->empty = empty;
  s->empty_calls++;
}

/* --- links ----------------------------------------------------------------------- */

static void link_enqueue(sim_link_t *l, uint64_t due, int rtcp, const uint8_t *data, size_t len) {
  l->q = grow(l->q, &l->cap, l->n + 1, sizeof(*l->q));
  sim_qpkt_t *q = &l->q[l->n++];
  q->due_us = due;
  q->order = l->order++;
  q->rtcp = rtcp;
  q->len = len;
  q->data = malloc(len);
  assert_non_null(q->data);
  memcpy(q->data, data, len);
}

static void link_push(sim_t *s, sim_link_t *l, int rtcp, const uint8_t *data, size_t len) {
  uint64_t now = s->now.mono_us, base = now;
  int impair = !(l->rtp_only && rtcp);
  l->sent++;
  if (impair && l->loss > 0 && sim_uniform(s) < l->loss) {
    l->lost++;
    return;
  }
  if (l->rate_bps) {
    uint64_t start = l->busy_until_us > now ? l->busy_until_us : now;
    uint64_t limit = (uint64_t)(l->queue_ms ? l->queue_ms : 100) * 1000;
    if (start - now > limit) {
      l->overflow++;
      return;
    }
    l->busy_until_us = start + (uint64_t)len * 8 * 1000000 / l->rate_bps;
    base = l->busy_until_us;
  }
  uint64_t due = base + (uint64_t)l->delay_ms * 1000;
  if (impair && l->jitter_ms) due += sim_rand(s) % ((uint64_t)l->jitter_ms * 1000 + 1);
  if (impair && l->reorder > 0 && sim_uniform(s) < l->reorder)
    due += (uint64_t)l->reorder_ms * 1000;
  link_enqueue(l, due, rtcp, data, len);
  if (impair && l->dup > 0 && sim_uniform(s) < l->dup) {
    l->duplicated++;
    link_enqueue(l, due + 1000, rtcp, data, len);
  }
}

/* The earliest packet due at or before `now`, taken out of the queue
 * (caller frees data); 0 if none. */
static int link_pop(sim_link_t *l, uint64_t now, sim_qpkt_t *out) {
  int best = -1;
  for (int i = 0; i < l->n; i++) {
    if (l->q[i].due_us > now) continue;
    if (best < 0 || l->q[i].due_us < l->q[best].due_us ||
        (l->q[i].due_us == l->q[best].due_us && l->q[i].order < l->q[best].order))
      best = i;
  }
  if (best < 0) return 0;
  *out = l->q[best];
  l->q[best] = l->q[--l->n];
  l->delivered++;
  return 1;
}

static uint64_t link_next(const sim_link_t *l) {
  uint64_t t = UINT64_MAX;
  for (int i = 0; i < l->n; i++)
    if (l->q[i].due_us < t) t = l->q[i].due_us;
  return t;
}

static void link_free(sim_link_t *l) {
  for (int i = 0; i < l->n; i++) free(l->q[i].data);
  free(l->q);
  l->q = NULL;
  l->n = l->cap = 0;
}

/* --- packets a peer builds ---------------------------------------------------- */

typedef struct {
  int id;
  const uint8_t *v;
  size_t n; /* 1..16 */
} ext_el_t;

/* An RTP header with a one-byte-form extension block of `next` elements. */
static size_t put_rtp(uint8_t *b, uint8_t pt, int marker, uint16_t seq, uint32_t ts,
                      uint32_t ssrc, const ext_el_t *ext, int next) {
  b[0] = (uint8_t)(0x80 | (next ? 0x10 : 0));
  b[1] = (uint8_t)(pt | (marker ? 0x80 : 0));
  sfu_wr16(b + 2, seq);
  sfu_wr32(b + 4, ts);
  sfu_wr32(b + 8, ssrc);
  size_t off = 12;
  if (next == 0) return off;
  size_t start = off;
  int two = 0; /* RFC 8285 two-byte elements when one is longer than 16 */
  for (int i = 0; i < next; i++) two |= ext[i].n > 16;
  b[off++] = two ? 0x10 : 0xBE;
  b[off++] = two ? 0x00 : 0xDE;
  off += 2;
  for (int i = 0; i < next; i++) {
    if (two) {
      b[off++] = (uint8_t)ext[i].id;
      b[off++] = (uint8_t)ext[i].n;
    } else {
      b[off++] = (uint8_t)(ext[i].id << 4 | (int)(ext[i].n - 1));
    }
    memcpy(b + off, ext[i].v, ext[i].n);
    off += ext[i].n;
  }
  while ((off - start - 4) % 4) b[off++] = 0;
  sfu_wr16(b + start + 2, (uint16_t)((off - start - 4) / 4));
  return off;
}

static uint32_t make_tag(const sim_peer_t *pe, int layer, uint32_t counter) {
  return (uint32_t)(pe->idx + 1) << 26 | (uint32_t)layer << 22 | (counter & 0x3fffff);
}

int sim_tag_peer(uint32_t tag) { return (int)(tag >> 26) - 1; }
int sim_tag_layer(uint32_t tag) { return (int)(tag >> 22) & 15; }

/* Payload filler: a function of the tag, so copies can be compared. */
static void fill_payload(uint8_t *p, size_t from, size_t len, uint32_t tag) {
  for (size_t i = from; i + 4 < len; i++) p[i] = (uint8_t)(tag * 7u + i * 13u + 5u);
  sfu_wr32(p + len - 4, tag);
}

static void uplink(sim_t *s, sim_peer_t *pe, int rtcp, const uint8_t *b, size_t len) {
  link_push(s, &pe->up, rtcp, b, len);
}

/* An Opus frame, or with pe->red the RED payload (RFC 2198) of it after
 * the previous frame (20 ms older), as Chrome sends it. */
static void send_audio(sim_t *s, sim_peer_t *pe) {
  uint8_t b[256], lv = (uint8_t)((pe->level < 127 ? 0x80 : 0) | (pe->level & 0x7f));
  ext_el_t e = {SIM_EXT_LEVEL, &lv, 1};
  size_t off = put_rtp(b, pe->red ? SIM_PT_RED : SIM_PT_OPUS, 0, pe->aseq++, pe->ats,
                       pe->audio_ssrc, &e, 1);
  pe->ats += 960;
  size_t plen = 40;
  uint8_t frame[40];
  frame[0] = 0xFC; /* Opus TOC: CELT FB 20 ms, one frame */
  fill_payload(frame, 1, plen, make_tag(pe, 3, pe->atag_next++));
  if (pe->red) {
    if (pe->prev_len) {
      b[off++] = 0x80 | SIM_PT_OPUS;
      b[off++] = (uint8_t)(960 >> 6);
      b[off++] = (uint8_t)((960 & 0x3f) << 2 | pe->prev_len >> 8);
      b[off++] = (uint8_t)pe->prev_len;
    }
    b[off++] = SIM_PT_OPUS;
    memcpy(b + off, pe->prev_frame, pe->prev_len);
    off += pe->prev_len;
    memcpy(pe->prev_frame, frame, plen);
    pe->prev_len = plen;
  }
  memcpy(b + off, frame, plen);
  uplink(s, pe, 0, b, off + plen);
}

/* A video packet of layer L: original (rtx 0) or its RFC 4588 copy, with
 * the Dependency Descriptor dd/ddn if ddn > 0. */
static size_t build_video(sim_peer_t *pe, const sim_layer_t *L, int rtx, uint16_t seq,
                          uint32_t ts, int marker, const uint8_t *payload, size_t plen,
                          uint16_t osn, const uint8_t *dd, size_t ddn, uint8_t *b) {
  uint8_t tw[2];
  ext_el_t e[3];
  int ne = 0;
  if (ddn) e[ne++] = (ext_el_t){SIM_EXT_DD, dd, ddn};
  if (L->rid[0]) e[ne++] = (ext_el_t){rtx ? SIM_EXT_RRID : SIM_EXT_RID, (const uint8_t *)L->rid, strlen(L->rid)};
  if (pe->twcc_pub) {
    sfu_wr16(tw, pe->twcc_seq++);
    e[ne++] = (ext_el_t){SIM_EXT_TWCC, tw, 2};
  }
  size_t off = put_rtp(b, rtx ? SIM_PT_RTX : SIM_PT_VP8, marker, seq, ts,
                       rtx ? L->rtx_ssrc : L->ssrc, e, ne);
  if (rtx) {
    sfu_wr16(b + off, osn);
    off += 2;
  }
  memcpy(b + off, payload, plen);
  return off + plen;
}

/* Layer k of a publisher: a camera layer, or SIM_SCREEN. */
static sim_layer_t *layer_at(sim_peer_t *pe, int k) {
  return k == SIM_SCREEN ? &pe->screen_layer : &pe->layers[k];
}

/* A layer's next frame: a keyframe (the first, or the one asked for), and
 * its place in the temporal pattern TID 0, 2, 1, 2 counted from the last
 * keyframe (*at, 0..3). */
static const int tid_pattern[4] = {0, 2, 1, 2};

static int next_frame(sim_layer_t *L, unsigned *at) {
  int key = L->frames == 0 || (L->key_in > 0 && --L->key_in == 0);
  if (key) L->tframe = 0;
  *at = L->tframe++ % 4;
  return key;
}

/* The next packet of layer L (payload pl, descriptor dd if dd_len):
 * numbered, kept for retransmission, sent -- unless it is the one
 * L->drop_seq says is lost on the way. */
static void send_video_packet(sim_t *s, sim_peer_t *pe, sim_layer_t *L, int marker,
                              const uint8_t *pl, size_t plen, const uint8_t *dd, size_t dd_len) {
  uint8_t b[SIM_MAX_PKT + 200]; /* with a descriptor */
  uint16_t seq = L->seq++;
  struct sim_hist_s *h = &L->hist[seq % SIM_HIST];
  h->used = 1;
  h->seq = seq;
  h->ts = L->ts;
  h->marker = (uint8_t)marker;
  h->plen = (uint16_t)plen;
  memcpy(h->payload, pl, plen);
  h->dd_len = (uint8_t)dd_len;
  if (dd_len) memcpy(h->dd, dd, dd_len);
  size_t n = build_video(pe, L, 0, seq, L->ts, marker, pl, plen, 0, dd_len ? h->dd : NULL,
                         dd_len, b);
  if (L->drop_seq >= 0 && (uint16_t)L->drop_seq == seq) {
    L->drop_seq = -1;
    return;
  }
  uplink(s, pe, 0, b, n);
}

/* A VP9 picture in three spatial layers, one packet each (B and E set,
 * non-flexible mode: I with a 15-bit picture id, L with TID 0, SID s and
 * TL0PICIDX), the marker on the last; a keyframe when asked. */
static void send_svc_picture(sim_t *s, sim_peer_t *pe) {
  sim_layer_t *L = &pe->layers[0];
  unsigned at;
  int key = next_frame(L, &at);
  for (int sid = 0; sid < 3; sid++) {
    uint8_t pl[SIM_MAX_PKT];
    size_t plen = (size_t)(200 << sid), off = 0;
    pl[off++] = (uint8_t)(0x80 | 0x20 | 0x08 | 0x04 | (key ? 0 : 0x40)); /* I L B E [P] */
    pl[off++] = (uint8_t)(0x80 | ((L->pid >> 8) & 0x7f));
    pl[off++] = (uint8_t)L->pid;
    pl[off++] = (uint8_t)(sid << 1);
    pl[off++] = (uint8_t)L->tl0;
    fill_payload(pl, off, plen, make_tag(pe, sid, L->tag_next++));
    send_video_packet(s, pe, L, sid == 2, pl, plen, NULL, 0);
  }
  L->frames++;
  if (key) L->keyframes++;
  L->ts += 3600;
  L->pid = (L->pid + 1) & 0x7fff;
  L->tl0 = (L->tl0 + 1) & 0xff;
}

/* --- Dependency Descriptors of the simulated senders --- */

/* A frame template (appendix A.8.1): its layers, decode target
 * indications ('-' not present, 'D' discardable, 'S' switch, 'R'
 * required), its one frame diff (0 = none) and its chain diffs. */
typedef struct {
  int sid, tid;
  const char *dtis;
  int fdiff;
  int chain[3];
} sim_tmpl_t;

/* A sender's template structure: n templates from id `offset` on (mod
 * 64), ntargets decode targets protected by nchains chains
 * (protected_by), and per spatial layer a size when res_w is not 0
 * (res_w x res_h doubled per layer). */
typedef struct {
  const sim_tmpl_t *t;
  int n, offset, ntargets, nchains;
  const uint8_t *protected_by;
  uint32_t res_w, res_h;
} sim_structure_t;

typedef struct {
  uint8_t *b;
  size_t pos;
} simbits_t;

static void sb_put(simbits_t *w, uint32_t v, int n) {
  for (int i = n - 1; i >= 0; i--, w->pos++)
    if ((v >> i) & 1) w->b[w->pos >> 3] |= (uint8_t)(0x80 >> (w->pos & 7));
}

/* ns(n), the spec's non-symmetric unsigned encoding of v < n. */
static void sb_ns(simbits_t *w, uint32_t v, uint32_t n) {
  int bits = 0;
  for (uint32_t x = n; x; x >>= 1) bits++;
  uint32_t m = (1u << bits) - n;
  if (v < m)
    sb_put(w, v, bits - 1);
  else
    sb_put(w, v + m, bits);
}

/* The descriptor of one packet of template t of structure st (appendix
 * A.2), with the structure when `structure`; its length. */
static size_t sim_dd(const sim_structure_t *st, uint8_t *out, int t, int start, int end,
                     uint16_t fn, int structure) {
  simbits_t w = {out, 0};
  memset(out, 0, 128);
  sb_put(&w, (uint32_t)(start << 1 | end), 2);
  sb_put(&w, (uint32_t)((st->offset + t) % 64), 6);
  sb_put(&w, fn, 16);
  if (!structure) return 3;
  sb_put(&w, 0x10, 5); /* a structure; no mask, no custom fields */
  sb_put(&w, (uint32_t)st->offset, 6);
  sb_put(&w, (uint32_t)st->ntargets - 1, 5);
  const sim_tmpl_t *tm = st->t;
  for (int i = 0; i < st->n; i++) /* template_layers */
    sb_put(&w, i == st->n - 1 ? 3 : tm[i + 1].sid > tm[i].sid ? 2
                              : tm[i + 1].tid > tm[i].tid ? 1 : 0, 2);
  for (int i = 0; i < st->n; i++)
    for (int d = 0; d < st->ntargets; d++) {
      char c = tm[i].dtis[d];
      sb_put(&w, c == 'D' ? 1 : c == 'S' ? 2 : c == 'R' ? 3 : 0, 2);
    }
  for (int i = 0; i < st->n; i++) {
    if (tm[i].fdiff) {
      sb_put(&w, 1, 1);
      sb_put(&w, (uint32_t)tm[i].fdiff - 1, 4);
    }
    sb_put(&w, 0, 1);
  }
  sb_ns(&w, (uint32_t)st->nchains, (uint32_t)st->ntargets + 1);
  for (int d = 0; d < st->ntargets && st->nchains; d++)
    sb_ns(&w, st->protected_by[d], (uint32_t)st->nchains);
  for (int i = 0; i < st->n; i++)
    for (int c = 0; c < st->nchains; c++) sb_put(&w, (uint32_t)tm[i].chain[c], 4);
  sb_put(&w, st->res_w ? 1 : 0, 1); /* resolutions */
  for (int sid = 0; st->res_w && sid <= tm[st->n - 1].sid; sid++) {
    sb_put(&w, (st->res_w << sid) - 1, 16);
    sb_put(&w, (st->res_h << sid) - 1, 16);
  }
  return (w.pos + 7) / 8;
}

/* --- AV1 L3T3 with the Dependency Descriptor (av1_svc) --- */

/* Its templates: per spatial layer a keyframe's, then one per temporal
 * layer; decode target 3 * s + t (spatial layer s at temporal layer t), a
 * chain per spatial layer (of its own and the lower layers' frames). */
static const sim_tmpl_t av1_tmpl[12] = {
    {0, 0, "SSSSSSSSS", 0, {1, 0, 0}}, {0, 0, "SSS------", 4, {1, 0, 0}},
    {0, 1, "-DS------", 2, {1, 0, 0}}, {0, 2, "--D------", 1, {1, 0, 0}},
    {1, 0, "---SSSSSS", 1, {1, 1, 0}}, {1, 0, "---SSS---", 4, {1, 1, 0}},
    {1, 1, "----DS---", 2, {1, 1, 0}}, {1, 2, "-----D---", 1, {1, 1, 0}},
    {2, 0, "------SSS", 1, {1, 1, 1}}, {2, 0, "------SSS", 4, {1, 1, 1}},
    {2, 1, "-------DS", 2, {1, 1, 1}}, {2, 2, "--------D", 1, {1, 1, 1}},
};
static const uint8_t av1_protected_by[9] = {0, 0, 0, 1, 1, 1, 2, 2, 2};
/* template ids 62, 63, 0, ... 9; 320x180, 640x360, 1280x720 */
static const sim_structure_t av1_structure = {av1_tmpl, 12, 62, 9, 3, av1_protected_by, 320, 180};

/* One AV1 picture of three spatial layers, each a frame of its own under
 * the Dependency Descriptor; a keyframe when asked (the N bit and the
 * structure on S0's first packet, S1 and S2 predicting from below). */
static void send_av1_picture(sim_t *s, sim_peer_t *pe) {
  sim_layer_t *L = &pe->layers[0];
  unsigned at;
  int key = next_frame(L, &at), tid = tid_pattern[at];
  for (int sid = 0; sid < 3; sid++) {
    int npk = sid == 2 ? 2 : 1, t = key ? 4 * sid : 4 * sid + 1 + tid;
    for (int i = 0; i < npk; i++) {
      uint8_t pl[SIM_MAX_PKT], dd[128];
      size_t plen = (size_t)(200 << sid), off = 0;
      int last = i == npk - 1;
      /* aggregation header: Z (continues), Y (continued), W 1, N */
      pl[off++] = (uint8_t)((i ? 0x80 : 0) | (last ? 0 : 0x40) | 0x10 |
                            (key && sid == 0 && i == 0 ? 0x08 : 0));
      if (i == 0) {
        pl[off++] = 0x34; /* OBU_FRAME with an extension header */
        pl[off++] = (uint8_t)(tid << 5 | sid << 3);
      }
      fill_payload(pl, off, plen, make_tag(pe, sid, L->tag_next++));
      size_t dd_len = sim_dd(&av1_structure, dd, t, i == 0, last, (uint16_t)L->pid,
                             key && sid == 0 && i == 0);
      send_video_packet(s, pe, L, sid == 2 && last, pl, plen, dd, dd_len);
    }
    L->pid = (L->pid + 1) & 0xffff; /* the frame number: one per layer frame */
  }
  L->frames++;
  if (key) L->keyframes++;
  L->ts += 3600;
}

/* --- H.264 L1T3 with the Dependency Descriptor (h264_temporal) --- */

/* Its templates, as a sender of one stream with three temporal layers
 * describes them: a keyframe's, then TID 0, TID 1, TID 2 after a TID 0
 * frame and TID 2 after a TID 1 frame; decode target t is TID 0..t, one
 * chain (the TID 0 frames); no resolutions (the SPS says the size). */
static const sim_tmpl_t h264_tmpl[5] = {
    {0, 0, "SSS", 0, {0}}, {0, 0, "SSS", 4, {4}}, {0, 1, "-DS", 2, {2}},
    {0, 2, "--D", 1, {1}}, {0, 2, "--D", 1, {3}},
};
static const uint8_t h264_protected_by[3] = {0, 0, 0};
/* template ids 20..24 */
static const sim_structure_t h264_structure = {h264_tmpl, 5, 20, 3, 1, h264_protected_by, 0, 0};

/* One H.264 frame of a stream with three temporal layers (TID 0, 2, 1, 2
 * from each keyframe), packetized in mode 1: a keyframe is a STAP-A of
 * SPS and PPS then an IDR slice in 3 x pkts FU-A fragments, a delta frame
 * a slice in max(2, pkts) fragments (NRI 0 for TID 2, the frames nothing
 * predicts from). A descriptor on every packet, the structure on a
 * keyframe's first; the packets' tags name the TID. */
static void send_h264_frame(sim_t *s, sim_peer_t *pe) {
  sim_layer_t *L = &pe->layers[0];
  unsigned at;
  int key = next_frame(L, &at);
  int tid = tid_pattern[at], t = key ? 0 : tid == 0 ? 1 : tid == 1 ? 2 : at == 1 ? 3 : 4;
  int frags = key ? 3 * L->pkts : L->pkts < 2 ? 2 : L->pkts, npk = frags + key;
  uint8_t nri = tid == 2 ? 0x00 : 0x60;
  for (int i = 0; i < npk; i++) {
    uint8_t pl[SIM_MAX_PKT], dd[128];
    size_t plen = (size_t)L->pkt_size - 20, off = 0;
    if (key && i == 0) { /* STAP-A: SPS (baseline, 16x16 macroblocks), PPS */
      static const uint8_t sps[] = {0x67, 0x42, 0xc0, 0x1e, 0xda, 0x02, 0x80, 0xbf, 0xe5};
      pl[off++] = 0x78;
      sfu_wr16(pl + off, sizeof(sps));
      memcpy(pl + off + 2, sps, sizeof(sps));
      off += 2 + sizeof(sps);
      plen = off + 40;
      sfu_wr16(pl + off, (uint16_t)(plen - off - 2));
      off += 2;
      pl[off++] = 0x68;
    } else { /* FU-A: indicator, header S E R type */
      int f = i - key;
      pl[off++] = (uint8_t)(nri | 28);
      pl[off++] = (uint8_t)((f == 0 ? 0x80 : 0) | (f == frags - 1 ? 0x40 : 0) | (key ? 5 : 1));
      if (f == 0) pl[off++] = 0x88; /* first_mb_in_slice 0, slice type ... */
    }
    fill_payload(pl, off, plen, make_tag(pe, tid, L->tag_next++));
    int last = i == npk - 1;
    size_t dd_len = sim_dd(&h264_structure, dd, t, i == 0, last, (uint16_t)L->pid, key && i == 0);
    send_video_packet(s, pe, L, last, pl, plen, dd, dd_len);
  }
  L->frames++;
  if (key) L->keyframes++;
  L->ts += 3600;
  L->pid = (L->pid + 1) & 0xffff; /* the frame number */
}

static void send_frame(sim_t *s, sim_peer_t *pe, int k) {
  sim_layer_t *L = layer_at(pe, k);
  if (L->paused) return;
  if (pe->vp9_svc) {
    send_svc_picture(s, pe);
    return;
  }
  if (pe->av1_svc) {
    send_av1_picture(s, pe);
    return;
  }
  if (pe->h264_temporal) {
    send_h264_frame(s, pe);
    return;
  }
  unsigned at;
  int key = next_frame(L, &at);
  int npk = key ? 3 * L->pkts : L->pkts;
  int tid = pe->temporal ? tid_pattern[at] : -1;
  if (pe->temporal && tid == 0 && L->frames) L->tl0 = (L->tl0 + 1) & 0xff;
  for (int i = 0; i < npk; i++) {
    uint8_t pl[SIM_MAX_PKT];
    size_t plen = (size_t)L->pkt_size - 20, off = 0;
    pl[off++] = (uint8_t)(0x80 | (i == 0 ? 0x10 : 0)); /* X, S on the first */
    pl[off++] = tid >= 0 ? 0xE0 : 0xC0;                 /* I, L [, T] */
    pl[off++] = (uint8_t)(0x80 | ((L->pid >> 8) & 0x7f));
    pl[off++] = (uint8_t)L->pid;
    pl[off++] = (uint8_t)L->tl0;
    if (tid >= 0) pl[off++] = (uint8_t)(tid << 6 | (tid > 0) << 5); /* TID, Y */
    if (i == 0) { /* the VP8 payload header: P = 0 on a keyframe */
      pl[off++] = key ? 0x10 : 0x11;
      pl[off++] = 0x20;
      pl[off++] = 0x01;
      if (key) {
        pl[off++] = 0x9d;
        pl[off++] = 0x01;
        pl[off++] = 0x2a;
        pl[off++] = (uint8_t)L->width;
        pl[off++] = (uint8_t)(L->width >> 8);
        pl[off++] = (uint8_t)L->height;
        pl[off++] = (uint8_t)(L->height >> 8);
      }
    }
    fill_payload(pl, off, plen, make_tag(pe, k, L->tag_next++));
    send_video_packet(s, pe, L, i == npk - 1, pl, plen, NULL, 0);
  }
  L->frames++;
  if (key) L->keyframes++;
  L->ts += 3600;
  L->pid = (L->pid + 1) & 0x7fff;
  if (!pe->temporal) L->tl0 = (L->tl0 + 1) & 0xff;
}

static void send_rtx(sim_t *s, sim_peer_t *pe, int k, uint16_t seq) {
  sim_layer_t *L = layer_at(pe, k);
  struct sim_hist_s *h = &L->hist[seq % SIM_HIST];
  if (!pe->rtx || !h->used || h->seq != seq) return;
  uint8_t b[SIM_MAX_PKT + 64];
  size_t n = build_video(pe, L, 1, L->rtx_seq++, h->ts, h->marker, h->payload, h->plen, seq,
                         h->dd, h->dd_len, b);
  L->rtx_sent++;
  uplink(s, pe, 0, b, n);
}

/* --- a peer's RTCP out -------------------------------------------------------------- */

static void rtcp_in_now(sim_peer_t *pe, uint8_t *b, size_t len) {
  sim_t *s = pe->sim;
  sfu_participant_t *p = sim_part(pe);
  assert_non_null(p);
  enter(s);
  sfu_room_on_rtcp(&s->room, p, b, len, s->now);
  leave_engine(s);
  sim_settle(s);
}

void sim_send_pli(sim_peer_t *pe, uint32_t media_ssrc) {
  uint8_t b[SFU_PKT_CAP];
  int n = sfu_rtcp_write_pli(b, sizeof(b), pe->rtcp_ssrc, media_ssrc);
  assert_true(n > 0);
  rtcp_in_now(pe, b, (size_t)n);
}

void sim_send_fir(sim_peer_t *pe, uint32_t media_ssrc, uint8_t seqnr) {
  uint8_t b[SFU_PKT_CAP];
  int n = sfu_rtcp_write_fir(b, sizeof(b), pe->rtcp_ssrc, media_ssrc, seqnr);
  assert_true(n > 0);
  rtcp_in_now(pe, b, (size_t)n);
}

void sim_send_nack(sim_peer_t *pe, uint32_t media_ssrc, const uint16_t *seqs, int nseqs) {
  uint8_t b[SFU_PKT_CAP];
  int n = sfu_rtcp_write_nack(b, sizeof(b), pe->rtcp_ssrc, media_ssrc, seqs, nseqs);
  assert_true(n > 0);
  rtcp_in_now(pe, b, (size_t)n);
}

void sim_send_remb(sim_peer_t *pe, uint64_t bps, uint32_t media_ssrc) {
  uint8_t b[SFU_PKT_CAP];
  int n = sfu_rtcp_write_remb(b, sizeof(b), pe->rtcp_ssrc, bps, &media_ssrc, 1);
  assert_true(n > 0);
  rtcp_in_now(pe, b, (size_t)n);
}

void sim_send_rtp(sim_peer_t *pe, const uint8_t *buf, size_t len) {
  sim_t *s = pe->sim;
  uint8_t b[SFU_PKT_CAP];
  sfu_participant_t *p = sim_part(pe);
  assert_non_null(p);
  assert_true(len <= sizeof(b));
  memcpy(b, buf, len);
  enter(s);
  sfu_room_on_rtp(&s->room, p, b, len, s->now);
  leave_engine(s);
  sim_settle(s);
}

/* --- a peer receives ------------------------------------------------------------------ */

static void push_fb(sim_peer_t *pe, const sim_fb_t *f) {
  pe->fb = grow(pe->fb, &pe->capfb, pe->nfb + 1, sizeof(*pe->fb));
  pe->fb[pe->nfb++] = *f;
}

int sim_layer_of(const sim_peer_t *pub, uint32_t ssrc) {
  for (int k = 0; pub->video && k < pub->nlayers; k++)
    if (pub->layers[k].ssrc == ssrc) return k;
  if (pub->screen && pub->screen_layer.ssrc == ssrc) return SIM_SCREEN;
  return -1;
}

static sim_sub_t *sub_by_ssrc(sim_peer_t *pe, uint32_t ssrc, int *rtx) {
  for (int i = pe->nsubs - 1; i >= 0; i--) {
    sim_sub_t *u = &pe->subs[i];
    if (u->ssrc == ssrc) return *rtx = 0, u;
    if (u->rtx_ssrc && u->rtx_ssrc == ssrc) return *rtx = 1, u;
  }
  return NULL;
}

static void peer_rtcp(sim_t *s, sim_peer_t *pe, const uint8_t *b, size_t len) {
  sfu_rtcp_iter_t it;
  sfu_rtcp_hdr_t h;
  sfu_rtcp_iter_init(&it, b, len);
  int rv;
  while ((rv = sfu_rtcp_next(&it, &h)) == 1) {
    sim_fb_t f;
    uint32_t ssrcs[8], sender;
    uint8_t seqnrs[8];
    uint16_t seqs[512];
    int n = 0;
    memset(&f, 0, sizeof(f));
    f.at_us = s->now.mono_us;
    f.sender_ssrc = h.ssrc;
    if (h.pt == SFU_RTCP_SR) {
      sfu_rtcp_sr_t sr;
      sim_sub_t *u;
      int rtx;
      f.kind = SIM_FB_SR;
      f.media_ssrc = h.ssrc;
      if (sfu_rtcp_parse_sr(&h, &sr) == 0 && (u = sub_by_ssrc(pe, h.ssrc, &rtx)) != NULL && !rtx)
        u->sr_mid = sfu_ntp_mid32(sr.ntp), u->sr_at_us = s->now.mono_us;
    } else if (h.pt == SFU_RTCP_RR) {
      f.kind = SIM_FB_RR;
    } else {
      switch (sfu_rtcp_fb_kind(&h)) {
      case SFU_RTCP_FB_PLI:
        assert_int_equal(sfu_rtcp_parse_pli(&h, &sender, &f.media_ssrc), 0);
        f.kind = SIM_FB_PLI;
        break;
      case SFU_RTCP_FB_FIR:
        assert_true(sfu_rtcp_parse_fir(&h, ssrcs, seqnrs, 8) > 0);
        f.kind = SIM_FB_FIR;
        f.media_ssrc = ssrcs[0];
        break;
      case SFU_RTCP_FB_NACK:
        n = sfu_rtcp_parse_nack(&h, &f.media_ssrc, seqs, 512);
        assert_true(n > 0);
        f.kind = SIM_FB_NACK;
        f.nseqs = n < 64 ? n : 64;
        memcpy(f.seqs, seqs, (size_t)f.nseqs * sizeof(seqs[0]));
        break;
      case SFU_RTCP_FB_REMB:
        assert_true(sfu_rtcp_parse_remb(&h, &f.bps, ssrcs, 8) >= 0);
        f.kind = SIM_FB_REMB;
        f.media_ssrc = ssrcs[0];
        break;
      case SFU_RTCP_FB_TWCC: {
        static uint8_t st[4096];
        sfu_rtcp_twcc_t t;
        n = sfu_rtcp_parse_twcc(&h, &t, st, NULL, 4096);
        assert_true(n > 0);
        f.kind = SIM_FB_TWCC;
        f.twcc_count = n;
        for (int i = 0; i < n && i < 4096; i++) f.twcc_received += st[i] != SFU_TWCC_NOT_RECEIVED;
        break;
      }
      default:
        continue;
      }
    }
    push_fb(pe, &f);
    int k = sim_layer_of(pe, f.media_ssrc);
    if (k < 0) continue;
    if ((f.kind == SIM_FB_PLI || f.kind == SIM_FB_FIR) && pe->pli_keyframe)
      if (layer_at(pe, k)->key_in == 0) layer_at(pe, k)->key_in = 1 + pe->key_delay;
    if (f.kind == SIM_FB_NACK && pe->auto_rtx)
      for (int i = 0; i < n; i++) send_rtx(s, pe, k, seqs[i]);
  }
  assert_int_equal(rv, 0); /* the engine's compounds are well formed */
}

/* Our own reading of a VP8 payload descriptor (RFC 7741 4.2, 4.3). */
static void read_vp8(const uint8_t *p, size_t len, sim_rx_t *r) {
  size_t off = 1;
  r->begins = r->key = 0;
  r->pid = r->tl0 = -1;
  r->width = r->height = 0;
  if (len < 2) return;
  if (p[0] & 0x80) {
    uint8_t x = p[1];
    off = 2;
    if ((x & 0x80) && off < len) {
      if (p[off] & 0x80) {
        if (off + 1 >= len) return;
        r->pid = (p[off] & 0x7f) << 8 | p[off + 1];
        off += 2;
      } else {
        r->pid = p[off++] & 0x7f;
      }
    }
    if ((x & 0x40) && off < len) r->tl0 = p[off++];
    if ((x & 0x20) && off < len) r->tid = p[off] >> 6;
    if (x & 0x30) off++;
  }
  if (off >= len) return;
  r->begins = (p[0] & 0x10) && (p[0] & 0x07) == 0;
  r->key = r->begins && !(p[off] & 1);
  if (r->key && len >= off + 10 && p[off + 3] == 0x9d && p[off + 4] == 0x01 && p[off + 5] == 0x2a) {
    r->width = (p[off + 6] | p[off + 7] << 8) & 0x3fff;
    r->height = (p[off + 8] | p[off + 9] << 8) & 0x3fff;
  }
}

/* Our own reading of a VP9 payload descriptor (RFC 9628 4.2): B, P and
 * the SID of the layer byte. */
static void read_vp9(const uint8_t *p, size_t len, sim_rx_t *r) {
  size_t off = 1;
  if (len < 2) return;
  if (p[0] & 0x80) off += (p[1] & 0x80) ? 2 : 1;
  if ((p[0] & 0x20) && off < len) r->sid = (p[off] >> 1) & 7;
  r->begins = (p[0] & 0x08) != 0;
  r->key = r->begins && !(p[0] & 0x40) && r->sid <= 0;
}

/* Our own reading of an H.264 payload (RFC 6184 5.6-5.8): a STAP-A opens
 * a keyframe (it carries the SPS), an FU-A's start fragment a frame (an
 * IDR slice: a keyframe). */
static void read_h264(const uint8_t *p, size_t len, sim_rx_t *r) {
  if (len < 2) return;
  int type = p[0] & 0x1f;
  r->begins = type == 24 || (type == 28 && (p[1] & 0x80));
  r->key = type == 24 || (type == 28 && (p[1] & 0x80) && (p[1] & 0x1f) == 5);
}

static void note_twcc(sim_t *s, sim_peer_t *pe, const uint8_t *v) {
  if (!pe->twcc_rx) {
    pe->twcc_rx = malloc(sizeof(*pe->twcc_rx));
    assert_non_null(pe->twcc_rx);
    sfu_twcc_rx_init(pe->twcc_rx);
  }
  sfu_twcc_rx_note(pe->twcc_rx, sfu_rd16(v), s->now.mono_us);
}

/* A Dependency Descriptor received on u, read as a receiver does: through
 * the structure last received, which one it carries replaces. */
static void read_dd(sim_sub_t *u, const uint8_t *v, size_t n, sim_rx_t *r) {
  sfu_dd_t dd;
  if (!u->dd_spare) {
    u->dd_spare = calloc(1, sizeof(*u->dd_spare));
    assert_non_null(u->dd_spare);
  }
  int rv = sfu_dd_parse(v, n, u->dd_st, u->dd_spare, &dd);
  r->dd_fn = dd.frame_number;
  if (rv != 0) {
    assert_int_equal(rv, SFU_ENOENT);
    r->dd = -1;
    return;
  }
  if (dd.has_structure) {
    sfu_dd_structure_t *x = u->dd_st;
    u->dd_st = u->dd_spare;
    u->dd_spare = x;
  }
  r->dd = dd.has_structure ? 2 : 1;
  r->dd_start = dd.start;
  r->dd_end = dd.end;
  r->dd_sid = dd.sid;
  r->dd_tid = dd.tid;
  r->dd_mask = dd.has_mask ? (int64_t)dd.active_mask : -1;
}

static void peer_rtp(sim_t *s, sim_peer_t *pe, const uint8_t *b, size_t len) {
  int rtx = 0;
  sim_sub_t *u = len >= 12 ? sub_by_ssrc(pe, sfu_rd32(b + 8), &rtx) : NULL;
  if (!u) {
    pe->rtp_unknown++;
    return;
  }
  sim_rx_t r;
  memset(&r, 0, sizeof(r));
  r.at_us = s->now.mono_us;
  r.ssrc = sfu_rd32(b + 8);
  r.pt = b[1] & 0x7f;
  r.marker = b[1] >> 7;
  r.seq = sfu_rd16(b + 2);
  r.ts = sfu_rd32(b + 4);
  r.rtx = rtx;
  r.level = -1;
  r.len = len;
  size_t off = 12 + 4 * (size_t)(b[0] & 0x0f), end = len;
  assert_true((b[0] & 0xC0) == 0x80);
  r.dd_mask = -1;
  if (b[0] & 0x10) {
    assert_true(off + 4 <= len);
    size_t words = sfu_rd16(b + off + 2), e = off + 4, eend = off + 4 + 4 * words;
    assert_true(eend <= len);
    if (sfu_rd16(b + off) == 0x1000) /* two-byte elements: only ours carry them */
      while (e < eend) {
        if (b[e] == 0) {
          e++;
          continue;
        }
        assert_true(e + 2 <= eend && e + 2 + b[e + 1] <= eend);
        if (u->dd_ext && b[e] == u->dd_ext) read_dd(u, b + e + 2, b[e + 1], &r);
        if (pe->twcc_ext && b[e] == pe->twcc_ext && b[e + 1] == 2) note_twcc(s, pe, b + e + 2);
        e += 2 + (size_t)b[e + 1];
      }
    if (sfu_rd16(b + off) == 0xBEDE)
      while (e < eend) {
        int id = b[e] >> 4, l = (b[e] & 15) + 1;
        if (b[e] == 0) {
          e++;
          continue;
        }
        if (id == 15) break;
        if (id == SIM_EXT_LEVEL && !u->video) r.level = b[e + 1] & 0x7f;
        if (pe->twcc_ext && id == pe->twcc_ext && l == 2) note_twcc(s, pe, b + e + 1);
        if (u->dd_ext && id == u->dd_ext) read_dd(u, b + e + 1, (size_t)l, &r);
        e += 1 + (size_t)l;
      }
    off = eend;
  }
  if (b[0] & 0x20) end -= b[len - 1];
  assert_true(end >= off);
  const uint8_t *pl = b + off;
  size_t plen = end - off;
  if (rtx && plen == 0) { /* padding: a probe */
    u->padding++;
    return;
  }
  if (rtx) {
    assert_true(plen >= 2);
    r.osn = sfu_rd16(pl);
    pl += 2;
    plen -= 2;
  }
  r.payload_off = (size_t)(pl - b);
  r.payload_len = plen;
  r.tag = plen >= 4 ? sfu_rd32(pl + plen - 4) : 0; /* RED: the primary's, last */
  if (!u->video && u->red_pt >= 0 && r.pt == u->red_pt) {
    sfu_red_t red;
    assert_int_equal(sfu_red_parse(pl, plen, &red), 0);
    r.red_blocks = red.n;
    r.block_pt = red.b[red.n - 1].pt;
  }
  r.hash = 2166136261u;
  for (size_t i = 0; i < plen; i++) r.hash = (r.hash ^ pl[i]) * 16777619u;
  r.begins = r.key = 0;
  r.pid = r.tl0 = r.sid = r.tid = -1;
  if (u->video && u->vp9)
    read_vp9(pl, plen, &r);
  else if (u->video && u->h264)
    read_h264(pl, plen, &r);
  else if (u->video && !u->av1)
    read_vp8(pl, plen, &r);
  u->rx = grow(u->rx, &u->caprx, u->nrx + 1, sizeof(*u->rx));
  u->rx[u->nrx++] = r;
  if (u->video && pe->auto_nack) {
    if (!u->nack) {
      u->nack = calloc(1, sizeof(*u->nack));
      assert_non_null(u->nack);
      sfu_nack_gen_init(u->nack);
    }
    sfu_nack_gen_feed(u->nack, rtx ? r.osn : r.seq, s->now.mono_us / 1000);
  }
}

/* A subscriber's receive rate over the last second, bits/s. */
static uint64_t rx_rate(const sim_sub_t *u, uint64_t now) {
  uint64_t bytes = 0;
  for (int i = u->nrx - 1; i >= 0 && u->rx[i].at_us + 1000000 > now; i--) bytes += u->rx[i].len;
  return bytes * 8;
}

static void peer_fb_tick(sim_t *s, sim_peer_t *pe) {
  uint64_t now = s->now.mono_us;
  uint8_t b[SFU_PKT_CAP];
  for (int i = 0; i < pe->nsubs && pe->auto_nack; i++) {
    sim_sub_t *u = &pe->subs[i];
    uint16_t seqs[64];
    if (!u->video || !u->active || !u->nack) continue;
    int n = sfu_nack_gen_due(u->nack, now / 1000, 0, seqs, 64);
    if (n <= 0) continue;
    int m = sfu_rtcp_write_nack(b, sizeof(b), pe->rtcp_ssrc, u->ssrc, seqs, n);
    assert_true(m > 0);
    u->nacks_sent++;
    uplink(s, pe, 1, b, (size_t)m);
  }
  if ((pe->remb_bps || pe->remb_auto) && now >= pe->next_remb_us) {
    for (int i = 0; i < pe->nsubs; i++) {
      sim_sub_t *u = &pe->subs[i];
      if (!u->video || !u->active) continue;
      uint64_t bps = pe->remb_bps;
      if (pe->remb_auto) {
        uint64_t rx = rx_rate(u, now), q = pe->down.busy_until_us > now ? pe->down.busy_until_us - now : 0;
        if (!u->remb_est) {
          u->remb_est = rx * 3 / 2;
        } else if (q > 30000) {
          if (now - u->remb_cut_us >= 300000) u->remb_est = rx * 85 / 100, u->remb_cut_us = now;
        } else {
          uint64_t up = u->remb_est + u->remb_est * 8 * (now - u->remb_at_us) / 100000000;
          uint64_t limit = rx * 3 / 2 + 10000;
          if (up > limit) up = u->remb_est > limit ? u->remb_est : limit;
          u->remb_est = up;
        }
        u->remb_at_us = now;
        bps = u->remb_est;
      }
      int m = sfu_rtcp_write_remb(b, sizeof(b), pe->rtcp_ssrc, bps, &u->ssrc, 1);
      assert_true(m > 0);
      uplink(s, pe, 1, b, (size_t)m);
    }
    pe->next_remb_us = now + (uint64_t)(pe->remb_ms ? pe->remb_ms : 250) * 1000;
  }
  if (pe->auto_rr && now >= pe->next_rr_us) {
    for (int i = 0; i < pe->nsubs; i++) {
      sim_sub_t *u = &pe->subs[i];
      if (!u->video || !u->active || !u->sr_at_us) continue;
      sfu_rtcp_report_t rb;
      memset(&rb, 0, sizeof(rb));
      rb.ssrc = u->ssrc;
      rb.fraction_lost = pe->rr_lost;
      rb.lsr = u->sr_mid;
      rb.dlsr = (uint32_t)((now - u->sr_at_us) * 65536 / 1000000);
      int m = sfu_rtcp_write_rr(b, sizeof(b), pe->rtcp_ssrc, &rb, 1);
      assert_true(m > 0);
      uplink(s, pe, 1, b, (size_t)m);
    }
    pe->next_rr_us = now + 200000;
  }
  if (pe->twcc_rx && now >= pe->next_twcc_us) {
    int m;
    while ((m = sfu_twcc_rx_feedback(pe->twcc_rx, now, pe->rtcp_ssrc, 0, b, 1200)) > 0) {
      uplink(s, pe, 1, b, (size_t)m);
      pe->twcc_fbs++;
    }
    pe->next_twcc_us = now + 50000;
  }
  pe->next_fb_us = now + 20000;
}

static int fb_timer_on(const sim_peer_t *pe) {
  return !pe->gone && (pe->auto_nack || pe->remb_bps || pe->remb_auto || pe->twcc || pe->auto_rr);
}

/* --- SDP ------------------------------------------------------------------------------ */

static void fill_transport(const sim_peer_t *pe, sfu_sdp_media_t *m, const char *setup) {
  snprintf(m->ice_ufrag, sizeof(m->ice_ufrag), "peer%02d", pe->idx);
  snprintf(m->ice_pwd, sizeof(m->ice_pwd), "simulatedpeerpassword%02d", pe->idx);
  snprintf(m->fp_alg, sizeof(m->fp_alg), "sha-256");
  for (int i = 0; i < 32; i++) m->fp[i] = (uint8_t)(0x10 + i + pe->idx);
  m->fp_len = 32;
  snprintf(m->setup, sizeof(m->setup), "%s", setup);
  m->rtcp_mux = 1;
  m->rtcp_rsize = 1;
}

static void set_codec(sfu_sdp_codec_t *c, int pt, const char *name, int clock, int channels,
                      const char *fmtp, unsigned fb, int apt) {
  memset(c, 0, sizeof(*c));
  c->pt = pt;
  snprintf(c->name, sizeof(c->name), "%s", name);
  c->clock = clock;
  c->channels = channels;
  snprintf(c->fmtp, sizeof(c->fmtp), "%s", fmtp);
  c->fb = fb;
  c->rtx_apt = apt;
}

static void add_ext(sfu_sdp_media_t *m, int id, const char *uri) {
  m->ext[m->next].id = id;
  snprintf(m->ext[m->next].uri, sizeof(m->ext[0].uri), "%s", uri);
  m->next++;
}

static sfu_sdp_t *sdp_clone(const sfu_sdp_t *s) {
  sfu_sdp_t *c = sfu_sdp_new(s->nmedia);
  assert_non_null(c);
  sfu_sdp_media_t *media = c->media;
  *c = *s;
  c->media = media;
  memcpy(c->media, s->media, (size_t)s->nmedia * sizeof(*s->media));
  return c;
}

static char *sdp_text(sim_peer_t *pe, sfu_sdp_t *s) {
  char *text = malloc(SDP_TEXT_CAP);
  assert_non_null(text);
  s->session_id = 0x1000 + (uint64_t)pe->idx;
  s->session_version = (uint64_t)++pe->next_req_id;
  snprintf(s->origin_user, sizeof(s->origin_user), "-");
  sfu_sdp_bundle_live(s);
  int n = sfu_sdp_write(s, text, SDP_TEXT_CAP);
  assert_true(n > 0);
  return text;
}

static sfu_sdp_t *build_offer(sim_peer_t *pe) {
  int n = pe->audio + pe->video + pe->screen, i = 0;
  sfu_sdp_t *s = sfu_sdp_new(pe->whep ? 2 : n ? n : 1);
  assert_non_null(s);
  s->nmedia = pe->whep ? 2 : n ? n : 1;
  s->extmap_allow_mixed = 1; /* as browsers offer */
  for (int k = 0; k < s->nmedia; k++) {
    sfu_sdp_media_t *m = &s->media[k];
    snprintf(m->proto, sizeof(m->proto), "UDP/TLS/RTP/SAVPF");
    snprintf(m->mid, sizeof(m->mid), "%d", k);
    m->port = 9;
    fill_transport(pe, m, "actpass");
    snprintf(m->cname, sizeof(m->cname), "peer%d", pe->idx);
    snprintf(m->msid_stream, sizeof(m->msid_stream), "stream%d", pe->idx);
  }
  if (pe->whep) { /* a WHEP viewer: recvonly audio and video, as Chromium's */
    sfu_sdp_media_t *m = &s->media[0];
    snprintf(m->kind, sizeof(m->kind), "audio");
    set_codec(&m->codecs[0], SIM_PT_OPUS, "opus", 48000, 2, "minptime=10;useinbandfec=1", 0, -1);
    m->ncodecs = 1;
    m->dir = SFU_DIR_RECVONLY;
    m = &s->media[1];
    snprintf(m->kind, sizeof(m->kind), "video");
    set_codec(&m->codecs[0], SIM_PT_VP8, "VP8", 90000, 0, "",
              SFU_FB_NACK | SFU_FB_PLI | SFU_FB_FIR | SFU_FB_REMB, -1);
    set_codec(&m->codecs[1], SIM_PT_RTX, "rtx", 90000, 0, "", 0, SIM_PT_VP8);
    m->ncodecs = 2;
    add_ext(m, SIM_EXT_MID, URI_MID);
    m->dir = SFU_DIR_RECVONLY;
    return s;
  }
  if (n == 0) { /* a listener: one recvonly audio m-line */
    sfu_sdp_media_t *m = &s->media[0];
    snprintf(m->kind, sizeof(m->kind), "audio");
    set_codec(&m->codecs[0], pe->opus_pt ? pe->opus_pt : SIM_PT_OPUS, "opus", 48000, 2,
              "minptime=10;useinbandfec=1", 0, -1);
    m->ncodecs = 1;
    m->dir = SFU_DIR_RECVONLY;
    return s;
  }
  if (pe->audio) {
    sfu_sdp_media_t *m = &s->media[i++];
    snprintf(m->kind, sizeof(m->kind), "audio");
    set_codec(&m->codecs[0], SIM_PT_OPUS, "opus", 48000, 2, "minptime=10;useinbandfec=1", 0, -1);
    m->ncodecs = 1;
    if (pe->red) set_codec(&m->codecs[m->ncodecs++], SIM_PT_RED, "red", 48000, 2, "111/111", 0, -1);
    add_ext(m, SIM_EXT_LEVEL, URI_LEVEL);
    add_ext(m, SIM_EXT_MID, URI_MID);
    m->dir = SFU_DIR_SENDONLY;
    m->ssrcs[0] = pe->audio_ssrc;
    m->nssrcs = 1;
    snprintf(m->msid_track, sizeof(m->msid_track), "audio%d", pe->idx);
  }
  if (pe->video) {
    sfu_sdp_media_t *m = &s->media[i++];
    snprintf(m->kind, sizeof(m->kind), "video");
    set_codec(&m->codecs[0], SIM_PT_VP8,
              pe->vp9_svc ? "VP9" : pe->av1_svc ? "AV1" : pe->h264_temporal ? "H264" : "VP8",
              90000, 0,
              pe->h264_temporal ? "level-asymmetry-allowed=1;packetization-mode=1;"
                                  "profile-level-id=42e01f"
                                : "",
              SFU_FB_NACK | SFU_FB_PLI | SFU_FB_FIR | SFU_FB_REMB, -1);
    m->ncodecs = 1;
    if (pe->rtx) set_codec(&m->codecs[m->ncodecs++], SIM_PT_RTX, "rtx", 90000, 0, "", 0, SIM_PT_VP8);
    add_ext(m, SIM_EXT_MID, URI_MID);
    if (pe->av1_svc || pe->h264_temporal) add_ext(m, SIM_EXT_DD, SFU_DD_URI);
    if (pe->twcc_pub) {
      add_ext(m, SIM_EXT_TWCC, SFU_TWCC_URI);
      m->codecs[0].fb |= SFU_FB_TWCC;
    }
    m->dir = SFU_DIR_SENDONLY;
    snprintf(m->msid_track, sizeof(m->msid_track), "video%d", pe->idx);
    if (pe->nlayers == 1) {
      m->ssrcs[m->nssrcs++] = pe->layers[0].ssrc;
      if (pe->rtx) {
        m->ssrcs[m->nssrcs++] = pe->layers[0].rtx_ssrc;
        m->has_fid = 1;
        m->fid_ssrc[0] = pe->layers[0].ssrc;
        m->fid_ssrc[1] = pe->layers[0].rtx_ssrc;
      }
    } else {
      add_ext(m, SIM_EXT_RID, URI_RID);
      add_ext(m, SIM_EXT_RRID, URI_RRID);
      for (int k = 0; k < pe->nlayers; k++) {
        snprintf(m->rids[k].rid, sizeof(m->rids[k].rid), "%s", pe->layers[k].rid);
        m->rids[k].send = 1;
      }
      m->nrids = pe->nlayers;
      m->has_simulcast = 1;
    }
  }
  if (pe->screen) {
    sfu_sdp_media_t *m = &s->media[i++];
    const sim_layer_t *L = &pe->screen_layer;
    snprintf(m->kind, sizeof(m->kind), "video");
    set_codec(&m->codecs[0], SIM_PT_VP8, "VP8", 90000, 0, "",
              SFU_FB_NACK | SFU_FB_PLI | SFU_FB_FIR | SFU_FB_REMB, -1);
    set_codec(&m->codecs[1], SIM_PT_RTX, "rtx", 90000, 0, "", 0, SIM_PT_VP8);
    m->ncodecs = 2;
    add_ext(m, SIM_EXT_MID, URI_MID);
    m->dir = SFU_DIR_SENDONLY;
    snprintf(m->msid_track, sizeof(m->msid_track), "screen%d", pe->idx);
    m->ssrcs[0] = L->ssrc;
    m->ssrcs[1] = L->rtx_ssrc;
    m->nssrcs = 2;
    m->has_fid = 1;
    m->fid_ssrc[0] = L->ssrc;
    m->fid_ssrc[1] = L->rtx_ssrc;
    snprintf(pe->screen_mid, sizeof(pe->screen_mid), "%s", m->mid);
  }
  return s;
}

static sim_sub_t *sub_by_mid(sim_peer_t *pe, const char *mid) {
  for (int i = 0; i < pe->nsubs; i++)
    if (strcmp(pe->subs[i].mid, mid) == 0) return &pe->subs[i];
  return NULL;
}

/* One of the server's m-lines in its offer, and what we answered. */
static void note_sub(sim_peer_t *pe, const sfu_sdp_media_t *om, sfu_sdp_dir_t dir) {
  sim_sub_t *u = sub_by_mid(pe, om->mid);
  int active = dir == SFU_DIR_RECVONLY && om->nssrcs > 0 && om->ncodecs > 0;
  if (!u) {
    if (!active) return;
    assert_true(pe->nsubs < SIM_MAX_SUBS);
    u = &pe->subs[pe->nsubs++];
    memset(u, 0, sizeof(*u));
    snprintf(u->mid, sizeof(u->mid), "%s", om->mid);
  }
  u->active = active;
  if (!active) return;
  u->video = strcmp(om->kind, "video") == 0;
  u->vp9 = strcasecmp(om->codecs[0].name, "VP9") == 0;
  u->av1 = strcasecmp(om->codecs[0].name, "AV1") == 0;
  u->h264 = strcasecmp(om->codecs[0].name, "H264") == 0;
  u->ssrc = om->ssrcs[0];
  u->rtx_ssrc = om->has_fid ? om->fid_ssrc[1] : 0;
  u->pt = om->codecs[0].pt;
  u->rtx_pt = u->red_pt = -1;
  for (int k = 0; k < om->ncodecs && !pe->no_rtx_answer; k++)
    if (om->codecs[k].rtx_apt == u->pt) u->rtx_pt = om->codecs[k].pt;
  for (int k = 0; k < om->ncodecs && !pe->no_red_answer && !u->video; k++)
    if (strcmp(om->codecs[k].name, "red") == 0) u->red_pt = om->codecs[k].pt;
  u->abs_ext = sfu_sdp_find_ext(om, URI_ABS);
  u->dd_ext = pe->no_dd_answer ? 0 : sfu_sdp_find_ext(om, SFU_DD_URI);
  snprintf(u->track_id, sizeof(u->track_id), "%s", om->msid_track);
  snprintf(u->owner_sid, sizeof(u->owner_sid), "%s", om->msid_stream);
}

static const sfu_sdp_media_t *own_line(const sim_peer_t *pe, const char *mid) {
  int at = pe->own ? sfu_sdp_find_mid(pe->own, mid) : -1;
  return at >= 0 ? &pe->own->media[at] : NULL;
}

static void send_client(sim_peer_t *pe, json_t *msg) {
  sim_t *s = pe->sim;
  json_t *m = json_pack("{s:s, s:I, s:o}", "type", "client_msg", "session",
                        (json_int_t)pe->session, "msg", msg);
  assert_non_null(m);
  enter(s);
  sfu_room_on_control(&s->room, "client_msg", m, s->now);
  leave_engine(s);
  json_decref(m);
}

static void answer_offer(sim_peer_t *pe, const char *text, long long offer_id) {
  sfu_sdp_t off;
  const char *why = NULL;
  memset(&off, 0, sizeof(off));
  int rv = sfu_sdp_parse(text, strlen(text), &off, &why);
  if (rv != 0) fail_msg("server offer does not parse: %s", why ? why : "?");
  sfu_sdp_t *ans = sfu_sdp_new(off.nmedia);
  assert_non_null(ans);
  ans->nmedia = off.nmedia;
  ans->extmap_allow_mixed = off.extmap_allow_mixed;
  for (int i = 0; i < off.nmedia; i++) {
    const sfu_sdp_media_t *om = &off.media[i];
    sfu_sdp_media_t *am = &ans->media[i];
    const sfu_sdp_media_t *own = own_line(pe, om->mid);
    if (own) {
      *am = *own;
      am->dir = om->dir == SFU_DIR_RECVONLY   ? SFU_DIR_SENDONLY
                : om->dir == SFU_DIR_SENDONLY ? SFU_DIR_RECVONLY
                : om->dir == SFU_DIR_SENDRECV ? own->dir
                                              : SFU_DIR_INACTIVE;
    } else {
      snprintf(am->kind, sizeof(am->kind), "%s", om->kind);
      snprintf(am->proto, sizeof(am->proto), "%s", om->proto);
      snprintf(am->mid, sizeof(am->mid), "%s", om->mid);
      for (int k = 0; k < om->ncodecs; k++) {
        if (pe->no_rtx_answer && om->codecs[k].rtx_apt >= 0) continue;
        if (pe->no_red_answer && strcmp(om->codecs[k].name, "red") == 0) continue;
        am->codecs[am->ncodecs++] = om->codecs[k];
      }
      for (int k = 0; k < om->next; k++)
        if (strcmp(om->ext[k].uri, URI_ABS) == 0 ||
            (!pe->no_dd_answer && strcmp(om->ext[k].uri, SFU_DD_URI) == 0) ||
            (pe->twcc && strcmp(om->ext[k].uri, SFU_TWCC_URI) == 0)) {
          am->ext[am->next++] = om->ext[k];
          if (strcmp(om->ext[k].uri, SFU_TWCC_URI) == 0) pe->twcc_ext = om->ext[k].id;
        }
      am->dir = om->dir == SFU_DIR_SENDONLY || om->dir == SFU_DIR_SENDRECV ? SFU_DIR_RECVONLY
                                                                           : SFU_DIR_INACTIVE;
      note_sub(pe, om, om->port ? am->dir : SFU_DIR_INACTIVE);
    }
    am->port = om->port ? 9 : 0;
    am->candidates[0][0] = '\0';
    am->ncandidates = 0;
    if (am->port) fill_transport(pe, am, "active");
  }
  sfu_sdp_free(&off);
  char *t = sdp_text(pe, ans);
  sfu_sdp_destroy(pe->local);
  pe->local = ans;
  pe->offers_answered++;
  send_client(pe, json_pack("{s:s, s:s, s:I}", "type", "answer", "sdp", t, "offer_id",
                            (json_int_t)offer_id));
  free(t);
}

/* --- signaling in ------------------------------------------------------------------------ */

static int pump_link(sim_t *s, const char *type, json_t *m);

static int pump(sim_t *s) {
  int did = 0;
  while (s->pumped < s->nmsgs) {
    json_t *m = s->msgs[s->pumped++].m;
    const char *type = json_string_value(json_object_get(m, "type"));
    did = 1;
    assert_non_null(type);
    if (pump_link(s, type, m)) continue;
    if (strcmp(type, "client_close") == 0) {
      sim_peer_t *pe = peer_by_session(s, (uint32_t)json_integer_value(json_object_get(m, "session")));
      if (pe) {
        pe->gone = 1;
        pe->media_on = 0;
      }
      continue;
    }
    if (strcmp(type, "client_msg") != 0 || json_is_true(json_object_get(m, "all"))) continue;
    sim_peer_t *pe = peer_by_session(s, (uint32_t)json_integer_value(json_object_get(m, "session")));
    json_t *msg = json_object_get(m, "msg");
    const char *mt = json_string_value(json_object_get(msg, "type"));
    assert_non_null(mt);
    if (!pe || pe->gone) continue;
    if (strcmp(mt, "welcome") == 0) {
      const char *sid = json_string_value(json_object_get(json_object_get(msg, "participant"), "sid"));
      assert_non_null(sid);
      snprintf(pe->sid, sizeof(pe->sid), "%s", sid);
      pe->joined = 1;
    } else if (strcmp(mt, "answer") == 0 && pe->whep) { /* its m-lines, for good */
      const char *sdp = json_string_value(json_object_get(msg, "sdp"));
      sfu_sdp_t ans;
      memset(&ans, 0, sizeof(ans));
      assert_non_null(sdp);
      assert_int_equal(sfu_sdp_parse(sdp, strlen(sdp), &ans, NULL), 0);
      for (int i = 0; i < ans.nmedia; i++)
        if (ans.media[i].port && ans.media[i].dir == SFU_DIR_SENDONLY)
          note_sub(pe, &ans.media[i], SFU_DIR_RECVONLY);
      sfu_sdp_free(&ans);
    } else if (strcmp(mt, "offer") == 0) {
      const char *sdp = json_string_value(json_object_get(msg, "sdp"));
      long long oid = json_integer_value(json_object_get(msg, "offer_id"));
      assert_non_null(sdp);
      if (pe->auto_answer) {
        answer_offer(pe, sdp, oid);
      } else {
        free(pe->pending_offer_sdp);
        pe->pending_offer_sdp = strdup(sdp);
        pe->pending_offer_id = oid;
      }
    }
  }
  return did;
}

void sim_answer_pending(sim_peer_t *pe) {
  assert_non_null(pe->pending_offer_sdp);
  char *sdp = pe->pending_offer_sdp;
  pe->pending_offer_sdp = NULL;
  answer_offer(pe, sdp, pe->pending_offer_id);
  pe->pending_offer_id = 0;
  free(sdp);
  sim_settle(pe->sim);
}

/* Every tag of layer k of `pub` in [first, end) reached the subscriber
 * (original or retransmission). */
void sim_assert_all_tags(const sim_sub_t *u, const sim_peer_t *pub, int k, uint32_t first,
                            uint32_t end) {
  assert_true(end > first);
  uint8_t *seen = calloc(end - first, 1);
  assert_non_null(seen);
  for (int i = 0; i < u->nrx; i++) {
    uint32_t tag = u->rx[i].tag;
    if (sim_tag_peer(tag) != pub->idx || sim_tag_layer(tag) != k) continue;
    uint32_t c = tag & 0x3fffff;
    if (c >= first && c < end) seen[c - first] = 1;
  }
  for (uint32_t c = first; c < end; c++)
    if (!seen[c - first]) {
      free(seen);
      fail_msg("packet %u of layer %d (of %u..%u) never reached the subscriber", c, k, first,
               end - 1);
    }
  free(seen);
}

/* --- two engines, one call ----------------------------------------------------------------- */

sfu_participant_t *sim_link_part(sim_t *s) {
  for (sfu_participant_t *l = s->room.links; l; l = l->next)
    if (strcmp(l->sid, s->link_id) == 0) return l;
  return NULL;
}

static void to_other(sim_t *s, const char *type, json_t *msg) {
  sim_t *o = s->other;
  if (!o || o->ended) return;
  enter(o);
  int rv = sfu_room_on_control(&o->room, type, msg, o->now);
  leave_engine(o);
  assert_int_equal(rv, 0);
  if (strcmp(type, "link_remote") == 0) o->link_remote = 1;
  /* both ends know each other: ICE and DTLS as done */
  for (sim_t *x = s; x && s->link_remote && o->link_remote; x = x == s ? o : NULL)
    if (!x->link_connected) {
      x->link_connected = 1;
      enter(x);
      sfu_room_on_transport(&x->room, sim_link_part(x), SFU_TP_CONNECTED, x->now);
      leave_engine(x);
    }
}

/* Our engine's link_local / link_msg: the other engine's link_remote /
 * link_msg. 1 if it was one. */
static int pump_link(sim_t *s, const char *type, json_t *m) {
  if (strcmp(type, "link_local") == 0) {
    json_t *r = json_deep_copy(m);
    json_object_set_new(r, "type", json_string("link_remote"));
    to_other(s, "link_remote", r);
    json_decref(r);
    return 1;
  }
  if (strcmp(type, "link_msg") == 0) {
    to_other(s, "link_msg", m);
    return 1;
  }
  return 0;
}

void sim_bridge(sim_t *a, sim_t *b, const char *id) {
  a->other = b;
  b->other = a;
  for (sim_t *x = a; x; x = x == a ? b : NULL) {
    snprintf(x->link_id, sizeof(x->link_id), "%s", id);
    json_t *m = json_pack("{s:s, s:s}", "link", id, "role", x == a ? "origin" : "relay");
    enter(x);
    int rv = sfu_room_on_control(&x->room, "link_open", m, x->now);
    leave_engine(x);
    json_decref(m);
    assert_int_equal(rv, 0);
  }
  sim_settle(a);
  sim_settle(b);
  assert_true(a->link_connected && b->link_connected);
}

void sim_run2(sim_t *a, sim_t *b, uint32_t ms) {
  for (uint32_t i = 0; i < ms; i++) {
    sim_run(a, 1);
    sim_run(b, 1);
  }
}

static void deliver_link(sim_t *s, sim_qpkt_t *q) {
  uint8_t b[SFU_PKT_CAP];
  sfu_participant_t *l = sim_link_part(s);
  if (l && q->len <= sizeof(b) - SFU_SRTP_TRAILER) {
    memcpy(b, q->data, q->len);
    enter(s);
    if (q->rtcp)
      sfu_room_on_rtcp(&s->room, l, b, q->len, s->now);
    else
      sfu_room_on_rtp(&s->room, l, b, q->len, s->now);
    leave_engine(s);
  }
  free(q->data);
}

/* --- the event loop ------------------------------------------------------------------------ */

static void deliver_up(sim_t *s, sim_peer_t *pe, sim_qpkt_t *q) {
  uint8_t b[SFU_PKT_CAP];
  sfu_participant_t *p = sim_part(pe);
  if (p && q->len <= sizeof(b) - SFU_SRTP_TRAILER) {
    memcpy(b, q->data, q->len);
    enter(s);
    if (q->rtcp)
      sfu_room_on_rtcp(&s->room, p, b, q->len, s->now);
    else
      sfu_room_on_rtp(&s->room, p, b, q->len, s->now);
    leave_engine(s);
  }
  free(q->data);
}

static int process_due(sim_t *s) {
  uint64_t now = s->now.mono_us;
  int did = pump(s);
  sim_qpkt_t q;
  for (int i = 0; i < s->npeers; i++) {
    sim_peer_t *pe = s->peers[i];
    while (link_pop(&pe->down, now, &q)) {
      if (q.rtcp)
        peer_rtcp(s, pe, q.data, q.len);
      else
        peer_rtp(s, pe, q.data, q.len);
      free(q.data);
      did = 1;
    }
  }
  for (int i = 0; i < s->npeers; i++)
    while (!s->ended && link_pop(&s->peers[i]->up, now, &q)) {
      deliver_up(s, s->peers[i], &q);
      did = 1;
    }
  while (!s->ended && link_pop(&s->relay_in, now, &q)) {
    deliver_link(s, &q);
    did = 1;
  }
  for (int i = 0; i < s->npeers; i++) {
    sim_peer_t *pe = s->peers[i];
    if (pe->media_on && pe->audio && pe->next_audio_us <= now) {
      send_audio(s, pe);
      pe->next_audio_us += 20000;
      did = 1;
    }
    if (pe->media_on && (pe->video || pe->screen) && pe->next_video_us <= now) {
      for (int k = 0; pe->video && k < pe->nlayers; k++) send_frame(s, pe, k);
      if (pe->screen) send_frame(s, pe, SIM_SCREEN);
      pe->next_video_us += 40000;
      did = 1;
    }
    if (fb_timer_on(pe) && pe->next_fb_us <= now) {
      peer_fb_tick(s, pe);
      did = 1;
    }
  }
  if (!s->ended && sfu_room_next_tick(&s->room) <= now) {
    enter(s);
    sfu_room_tick(&s->room, s->now);
    leave_engine(s);
    s->ticks++;
    if (sfu_room_next_tick(&s->room) <= now)
      fail_msg("sfu_room_next_tick() is still %llu after a tick at %llu",
               (unsigned long long)sfu_room_next_tick(&s->room), (unsigned long long)now);
    did = 1;
  }
  return did;
}

void sim_settle(sim_t *s) {
  int guard = 0;
  while (process_due(s)) assert_true(++guard < 1000000);
}

static uint64_t next_event(sim_t *s) {
  uint64_t t = s->ended ? UINT64_MAX : sfu_room_next_tick(&s->room);
  if (link_next(&s->relay_in) < t) t = link_next(&s->relay_in);
  for (int i = 0; i < s->npeers; i++) {
    sim_peer_t *pe = s->peers[i];
    uint64_t u = link_next(&pe->up), d = link_next(&pe->down);
    if (u < t) t = u;
    if (d < t) t = d;
    if (pe->media_on && pe->audio && pe->next_audio_us < t) t = pe->next_audio_us;
    if (pe->media_on && (pe->video || pe->screen) && pe->next_video_us < t) t = pe->next_video_us;
    if (fb_timer_on(pe) && pe->next_fb_us < t) t = pe->next_fb_us;
  }
  return t;
}

void sim_run_until_us(sim_t *s, uint64_t target) {
  sim_settle(s);
  for (;;) {
    uint64_t t = next_event(s);
    if (t > target) break;
    if (t > s->now.mono_us) set_now(s, t);
    sim_settle(s);
  }
  if (target > s->now.mono_us) {
    set_now(s, target);
    sim_settle(s);
  }
}

void sim_run_until(sim_t *s, uint64_t t_ms) { sim_run_until_us(s, SIM_MONO0_US + t_ms * 1000); }

void sim_run(sim_t *s, uint32_t ms) { sim_run_until_us(s, s->now.mono_us + (uint64_t)ms * 1000); }

/* --- the world ------------------------------------------------------------------------------ */

sim_t *sim_new(uint64_t seed, int usage_interval_s) {
  sim_t *s = calloc(1, sizeof(*s));
  assert_non_null(s);
  s->rng = seed ? seed : 0x9E3779B97F4A7C15ULL;
  s->now.mono_us = SIM_MONO0_US;
  s->now.wall_us = SIM_WALL0_US;
  s->io.data = s;
  s->io.emit = io_emit;
  s->io.send = io_send;
  s->io.transport_open = io_transport_open;
  s->io.transport_close = io_transport_close;
  s->io.transport_remote = io_transport_remote;
  s->io.transport_candidate = io_transport_candidate;
  s->io.transport_local = io_transport_local;
  s->io.transport_last_rx_us = io_transport_last_rx_us;
  s->io.empty = io_empty;
  sfu_room_opts_t o = {"rm_enginetest", 16, usage_interval_s > 0 ? usage_interval_s : 10, 0, 0, 0};
  enter(s);
  int rv = sfu_room_init(&s->room, &o, &s->io, s->now);
  leave_engine(s);
  assert_int_equal(rv, 0);
  return s;
}

static void peer_free(sim_peer_t *pe) {
  for (int i = 0; i < pe->nsubs; i++) {
    free(pe->subs[i].rx);
    free(pe->subs[i].nack);
    free(pe->subs[i].dd_st);
    free(pe->subs[i].dd_spare);
  }
  for (int k = 0; k < SIM_LAYERS; k++) free(pe->layers[k].hist);
  free(pe->screen_layer.hist);
  free(pe->fb);
  free(pe->twcc_rx);
  free(pe->pending_offer_sdp);
  json_decref(pe->ice_servers);
  sfu_sdp_destroy(pe->own);
  sfu_sdp_destroy(pe->local);
  link_free(&pe->up);
  link_free(&pe->down);
  free(pe);
}

void sim_free(sim_t *s) {
  if (!s) return;
  if (!s->ended) {
    enter(s);
    sfu_room_end(&s->room, s->now);
    leave_engine(s);
    s->ended = 1;
  }
  for (int i = 0; i < s->nmsgs; i++) json_decref(s->msgs[i].m);
  free(s->msgs);
  for (int i = 0; i < s->npkts; i++) free(s->pkts[i].data);
  free(s->pkts);
  for (int i = 0; i < s->npeers; i++) peer_free(s->peers[i]);
  link_free(&s->relay_in);
  if (s->other) s->other->other = NULL;
  free(s);
}

/* --- peers ---------------------------------------------------------------------------------- */

sim_peer_t *sim_peer_new(sim_t *s, const char *identity) {
  assert_true(s->npeers < SIM_MAX_PEERS);
  assert_true(sfu_token_valid_id(identity));
  sim_peer_t *pe = calloc(1, sizeof(*pe));
  assert_non_null(pe);
  pe->sim = s;
  pe->idx = s->npeers;
  pe->session = 100 + (uint32_t)pe->idx;
  snprintf(pe->identity, sizeof(pe->identity), "%s", identity);
  pe->grants = SFU_GRANT_PUBLISH | SFU_GRANT_SUBSCRIBE;
  pe->rtcp_ssrc = 0x5EED0000u + (uint32_t)pe->idx;
  pe->auto_answer = 1;
  pe->auto_rtx = 1;
  pe->pli_keyframe = 1;
  pe->level = 127;
  s->peers[s->npeers++] = pe;
  return pe;
}

void sim_peer_audio(sim_peer_t *pe) {
  sim_t *s = pe->sim;
  pe->audio = 1;
  pe->audio_ssrc = 0xA0000000u | (uint32_t)pe->idx << 8;
  pe->aseq = (uint16_t)sim_rand(s);
  pe->ats = sim_rand(s);
  pe->atag_first = pe->atag_next = 1;
}

void sim_peer_video(sim_peer_t *pe, int nlayers) {
  static const char *const rids[SIM_LAYERS] = {"q", "h", "f"};
  static const int w[SIM_LAYERS] = {320, 640, 1280}, h[SIM_LAYERS] = {180, 360, 720};
  static const int pkts[SIM_LAYERS] = {1, 2, 3}, size[SIM_LAYERS] = {300, 600, 1000};
  sim_t *s = pe->sim;
  assert_true(nlayers >= 1 && nlayers <= SIM_LAYERS);
  pe->video = 1;
  pe->nlayers = nlayers;
  pe->rtx = 1;
  for (int k = 0; k < nlayers; k++) {
    sim_layer_t *L = &pe->layers[k];
    /* a single layer is the top one of the table */
    int row = nlayers == 1 ? SIM_LAYERS - 1 : k + SIM_LAYERS - nlayers;
    snprintf(L->rid, sizeof(L->rid), "%s", nlayers == 1 ? "" : rids[row]);
    L->ssrc = 0xB0000000u | (uint32_t)pe->idx << 8 | (uint32_t)k;
    L->rtx_ssrc = 0xC0000000u | (uint32_t)pe->idx << 8 | (uint32_t)k;
    L->seq = (uint16_t)sim_rand(s);
    L->rtx_seq = (uint16_t)sim_rand(s);
    L->ts = sim_rand(s);
    L->pid = (int)(sim_rand(s) & 0x7fff);
    L->tl0 = (int)(sim_rand(s) & 0xff);
    L->width = w[row];
    L->height = h[row];
    L->pkts = pkts[row];
    L->pkt_size = size[row];
    L->tag_first = L->tag_next = 1;
    L->drop_seq = -1;
    if (!L->hist) L->hist = calloc(SIM_HIST, sizeof(*L->hist));
    assert_non_null(L->hist);
  }
}

void sim_peer_screen(sim_peer_t *pe) {
  sim_t *s = pe->sim;
  sim_layer_t *L = &pe->screen_layer;
  pe->screen = 1;
  L->rid[0] = '\0';
  L->ssrc = 0xD0000000u | (uint32_t)pe->idx << 8;
  L->rtx_ssrc = 0xE0000000u | (uint32_t)pe->idx << 8;
  L->seq = (uint16_t)sim_rand(s);
  L->rtx_seq = (uint16_t)sim_rand(s);
  L->ts = sim_rand(s);
  L->pid = (int)(sim_rand(s) & 0x7fff);
  L->tl0 = (int)(sim_rand(s) & 0xff);
  L->width = 1920;
  L->height = 1080;
  L->pkts = 3;
  L->pkt_size = 1000;
  L->tag_first = L->tag_next = 1;
  L->drop_seq = -1;
  if (!L->hist) L->hist = calloc(SIM_HIST, sizeof(*L->hist));
  assert_non_null(L->hist);
}

void sim_stop_screen(sim_peer_t *pe, int id) {
  assert_true(pe->screen && pe->local && pe->own);
  pe->screen = 0;
  sfu_sdp_t *d[2] = {pe->own, pe->local};
  for (int i = 0; i < 2; i++) {
    int at = sfu_sdp_find_mid(d[i], pe->screen_mid);
    assert_true(at >= 0);
    d[i]->media[at].dir = SFU_DIR_INACTIVE;
  }
  sim_reoffer(pe, id);
}

void sim_join(sim_peer_t *pe) {
  sim_t *s = pe->sim;
  json_t *m = json_pack("{s:s, s:I, s:s, s:s, s:I, s:i}", "type", "client_join", "session",
                        (json_int_t)pe->session, "identity", pe->identity, "name", pe->identity,
                        "grants", (json_int_t)pe->grants, "id", 1);
  assert_non_null(m);
  if (pe->ice_servers) json_object_set(m, "ice_servers", pe->ice_servers);
  if (pe->whep) {
    json_object_set_new(m, "whep", json_true());
    if (pe->follow[0]) json_object_set_new(m, "follow", json_string(pe->follow));
  }
  enter(s);
  sfu_room_on_control(&s->room, "client_join", m, s->now);
  leave_engine(s);
  json_decref(m);
  sim_settle(s);
}

void sim_offer(sim_peer_t *pe) {
  sfu_sdp_t *o = build_offer(pe);
  char *t = sdp_text(pe, o);
  sfu_sdp_destroy(pe->own);
  pe->own = sdp_clone(o);
  sfu_sdp_destroy(pe->local);
  pe->local = o;
  json_t *m = json_pack("{s:s, s:i, s:s}", "type", "offer", "id", ++pe->next_req_id, "sdp", t);
  if (pe->screen)
    json_object_set_new(m, "sources", json_pack("{s:s}", pe->screen_mid, "screen"));
  send_client(pe, m);
  free(t);
  sim_settle(pe->sim);
}

void sim_reoffer_with(sim_peer_t *pe, int id, json_t *extra) {
  assert_non_null(pe->local);
  sfu_sdp_t *o = sdp_clone(pe->local);
  for (int i = 0; i < o->nmedia; i++)
    if (o->media[i].port) fill_transport(pe, &o->media[i], "actpass");
  char *t = sdp_text(pe, o);
  sfu_sdp_destroy(o);
  json_t *m = json_pack("{s:s, s:i, s:s}", "type", "offer", "id", id, "sdp", t);
  if (extra) json_object_update(m, extra);
  json_decref(extra);
  send_client(pe, m);
  free(t);
  sim_settle(pe->sim);
}

void sim_reoffer(sim_peer_t *pe, int id) { sim_reoffer_with(pe, id, NULL); }

void sim_connect(sim_peer_t *pe) {
  sim_t *s = pe->sim;
  sfu_participant_t *p = sim_part(pe);
  assert_non_null(p);
  enter(s);
  sfu_room_on_transport(&s->room, p, SFU_TP_CONNECTED, s->now);
  leave_engine(s);
  sim_settle(s);
}

void sim_media(sim_peer_t *pe, int on) {
  pe->media_on = on;
  pe->next_audio_us = pe->next_video_us = pe->sim->now.mono_us;
  pe->next_fb_us = pe->next_remb_us = pe->sim->now.mono_us;
  sim_settle(pe->sim);
}

void sim_enter(sim_peer_t *pe) {
  sim_join(pe);
  assert_true(pe->joined);
  sim_offer(pe);
  sim_connect(pe);
  pe->next_fb_us = pe->next_remb_us = pe->sim->now.mono_us;
  if (pe->audio || pe->video || pe->screen) sim_media(pe, 1);
}

void sim_leave(sim_peer_t *pe) {
  sim_t *s = pe->sim;
  json_t *m = json_pack("{s:s, s:I, s:s}", "type", "client_gone", "session",
                        (json_int_t)pe->session, "reason", "left");
  pe->media_on = 0;
  pe->gone = 1;
  enter(s);
  sfu_room_on_control(&s->room, "client_gone", m, s->now);
  leave_engine(s);
  json_decref(m);
  sim_settle(s);
}

sim_peer_t *sim_peer_like(sim_peer_t *pe) {
  sim_peer_t *n = sim_peer_new(pe->sim, pe->identity);
  n->grants = pe->grants;
  if (pe->audio) sim_peer_audio(n);
  if (pe->video) sim_peer_video(n, pe->nlayers);
  if (pe->screen) sim_peer_screen(n);
  n->level = pe->level;
  return n;
}

static void control(sim_t *s, const char *type, json_t *m) {
  enter(s);
  sfu_room_on_control(&s->room, type, m, s->now);
  leave_engine(s);
  json_decref(m);
  sim_settle(s);
}

void sim_server_mute(sim_t *s, const char *identity, int muted) {
  control(s, "server_mute", json_pack("{s:s, s:s, s:b}", "type", "server_mute", "identity",
                                      identity, "muted", muted));
}

void sim_kick(sim_t *s, const char *identity) {
  control(s, "kick", json_pack("{s:s, s:s}", "type", "kick", "identity", identity));
}

void sim_client_msg(sim_peer_t *pe, json_t *msg) {
  send_client(pe, msg);
  sim_settle(pe->sim);
}

sim_sub_t *sim_sub_by_track(sim_peer_t *sub, const char *track_id) {
  for (int i = sub->nsubs - 1; i >= 0; i--)
    if (strcmp(sub->subs[i].track_id, track_id) == 0) return &sub->subs[i];
  return NULL;
}

sim_sub_t *sim_sub_of(sim_peer_t *sub, const sim_peer_t *pub, int video) {
  for (int i = sub->nsubs - 1; i >= 0; i--)
    if (sub->subs[i].video == video && strcmp(sub->subs[i].owner_sid, pub->sid) == 0)
      return &sub->subs[i];
  return NULL;
}

/* --- looking ------------------------------------------------------------------------------------ */

static json_t *match_to(const sim_msg_t *sm, uint32_t session, const char *type) {
  json_t *m = sm->m;
  const char *t = json_string_value(json_object_get(m, "type"));
  if (!t || strcmp(t, "client_msg") != 0) return NULL;
  if (json_is_true(json_object_get(m, "all"))) {
    if ((uint32_t)json_integer_value(json_object_get(m, "except")) == session) return NULL;
  } else if ((uint32_t)json_integer_value(json_object_get(m, "session")) != session) {
    return NULL;
  }
  json_t *msg = json_object_get(m, "msg");
  const char *mt = json_string_value(json_object_get(msg, "type"));
  return mt && strcmp(mt, type) == 0 ? msg : NULL;
}

json_t *sim_msg_at(sim_t *s, int i, uint32_t session) {
  if (i < 0 || i >= s->nmsgs) return NULL;
  json_t *msg = json_object_get(s->msgs[i].m, "msg");
  const char *t = json_string_value(json_object_get(msg, "type"));
  return t ? match_to(&s->msgs[i], session, t) : NULL;
}

json_t *sim_msg_to(sim_t *s, uint32_t session, const char *type, int from, uint64_t *at_us) {
  for (int i = s->nmsgs - 1; i >= from && i >= 0; i--) {
    json_t *msg = match_to(&s->msgs[i], session, type);
    if (!msg) continue;
    if (at_us) *at_us = s->msgs[i].at_us;
    return msg;
  }
  return NULL;
}

int sim_count_to(sim_t *s, uint32_t session, const char *type, int from) {
  int n = 0;
  for (int i = from < 0 ? 0 : from; i < s->nmsgs; i++) n += match_to(&s->msgs[i], session, type) != NULL;
  return n;
}

int sim_fb_count(const sim_peer_t *pe, int kind, uint32_t media_ssrc, uint64_t from_us,
                 uint64_t to_us) {
  int n = 0;
  for (int i = 0; i < pe->nfb; i++) {
    const sim_fb_t *f = &pe->fb[i];
    if (f->kind == kind && (!media_ssrc || f->media_ssrc == media_ssrc) && f->at_us >= from_us &&
        f->at_us < to_us)
      n++;
  }
  return n;
}
