/*
 * forwarder.c -- the packet path of a room (docs/internals/media.md), part
 * of the call engine (engine.h): the time is the input's (room->now_us,
 * room->wall_us), and every packet leaves through room->io->send.
 *
 * RTP from a publisher (decrypted in place by its transport, in the shell):
 *
 *   parse view -> its track and layer (by SSRC; learnt from the rid
 *   extension or the first packet when the SDP named none; RTX packets are
 *   turned back into the original) -> receive statistics ->
 *
 *   audio: a RED payload (RFC 2198) parsed to find its primary Opus block
 *   -> speaking level (RFC 6464 extension, else a libopus decode of the
 *   Opus frame) -> unless server-muted, for each negotiated down-track: copy
 *   header (subscriber's pt, seq, room-unique SSRC; extensions dropped) and
 *   payload (RED whole to a subscriber that negotiated RED, else the Opus
 *   frame alone) into the room's scratch buffer, hand it to io->send (the
 *   shell SRTP-protects it in place with the subscriber's keys and queues it);
 *   in a room with max_audio_streams, only to listeners for whom the track
 *   is among the loudest (loudest.c decides each media tick);
 *
 *   video: NACK generator, payload inspection (keyframe, picture id), the
 *   packet kept once in its layer's retransmission cache -> for each
 *   down-track whose current layer this is (or whose target layer starts
 *   here with a keyframe): the same copy with rewritten sequence number,
 *   timestamp and VP8 picture ids, noted in the down-track's 16-byte
 *   record of what it sent under that number, protected, sent. A
 *   subscriber's NACK is answered by rebuilding that copy from the layer's
 *   cache: the memory of retransmission grows with the publishers' layers,
 *   not with publishers x subscribers.
 *
 * One scratch buffer serves every copy: each is protected and copied into
 * the socket's send batch before the next is built, so nothing is allocated or queued per
 * packet (a layer's cache and a video down-track's record are allocated
 * once, at their first packet). Sequence numbers continue across server mutes and layer
 * switches, so a subscriber sees one stream.
 *
 * RTCP is terminated: the SFU reads publishers' sender reports (for LSR/DLSR
 * and lip sync) and subscribers' feedback (PLI/FIR -> throttled PLI to the
 * publisher; NACK -> retransmission; REMB and receiver reports -> layer
 * choice; transport-cc -> the subscriber's bandwidth estimate), and sends
 * its own RR per layer, a REMB cap and transport-wide feedback to each
 * publisher, an SR per down-track, and NACKs upstream for what publishers'
 * video lost on the way.
 *
 * Each media tick (the end of this file): a subscriber with transport-cc
 * has its estimate shared among its videos by priority, and probes sent
 * when they want more (allocate(), docs/internals/media.md); each video
 * down-track gets its target layer; each publisher hears which of its
 * layers anyone takes (dynacast()).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sfu/base/bytes.h"
#include "sfu/base/log.h"
#include "sfu/base/sfu.h"
#include "sfu/media/red.h"
#include "sfu/media/rtcp.h"
#include "sfu/room/engine.h"

#define PLI_INTERVAL_MS 500    /* keyframe requests per publisher layer */
#define RTX_SLOTS 512          /* retransmission cache per published video layer */
#define RTX_BYTES (256 << 10)   /* ~1.4 s at 1.5 Mb/s */
#define RTX_MAX_AGE_MS 3000   /* a NACK may come only with the next gap (aiortc) */
#define RTX_MAX_RESENDS 3     /* per subscriber and packet */
#define RTX_RESEND_MS 10      /* between two answers to one subscriber */
#define PUBLISH_MAX_BPS 4000000 /* REMB to video publishers */
#define NACK_RETRY_MS 40       /* upstream: 10 tries over 400 ms */
#define REMB_FRESH_MS 3000     /* layer choice: see bandwidth_bound() */
#define REMB_FELL_PCT 95       /* a REMB under 95 % of the last one: overuse */
#define CONGESTED_PCT 85       /* ... that matters under 85 % of the layer's rate */
#define DOWN_HOLD_MS 6000      /* after a step down, no step up for this long, ... */
#define DOWN_HOLD_MAX_MS 24000 /* ... 1.5x after each failed step up, to this */
#define UP_HOLD_MS 3000        /* between two steps up */
#define UP_FAILED_MS 10000     /* a step down this soon after a step up: it failed */
#define SEVERE_LOSS 26         /* 10 % (of 256) lost: in a receiver report, or ... */
#define LOSS_WINDOW_MS 500     /* ... NACKed of what was sent in this long */
#define QUEUE_MS 100           /* a round trip this much over its floor: a queue */
#define RTT_FLOOR_MS 10000     /* the floor: the least of the last 10-20 s */
#define QUEUE_SR_MS 200        /* SRs to REMB-only video subscribers, to measure it */
#define TWCC_FB_MS 40          /* transport-wide feedback to publishers */
#define BWE_START_BPS 1000000  /* a subscriber's estimate before feedback */
#define BWE_MIN_BPS 50000
#define BWE_MAX_BPS 20000000
#define UP_HEADROOM 0.9        /* a higher layer must fit in 90 % of the room */
#define PAUSE_AFTER_MS 2000    /* a video that does not fit that long is paused */
#define PROBE_TICKS 5          /* feedback ticks of padding: 100 ms */
#define PROBE_PAD 255          /* padding bytes per probe packet (the most RTP allows) */
#define PROBE_MAX_PKTS 48      /* per tick: 4.9 Mb/s of padding */
#define PROBE_AGAIN_MS 500     /* after a probe that found more room */
#define PROBE_BACKOFF_MS 1000  /* after one that did not: doubled, ... */
#define PROBE_BACKOFF_MAX_MS 4000 /* ... up to this */
#define PROBE_CALM_US 2000000  /* no probe this soon after a cut ... */
#define FB_STALE_US 1000000    /* ... unless the last feedback is older */

/* The time of the input being handled (the engine reads no clock). */
static uint64_t now_ms(const sfu_room_t *room) { return room->now_us / 1000; }
static uint64_t wall_us(const sfu_room_t *room) { return (uint64_t)room->wall_us; }

/* A packet for p through the room's I/O: protected and sent by the shell
 * (for a remote participant, over its link). */
static int send_pkt(sfu_room_t *room, sfu_participant_t *p, int rtcp, size_t len) {
  return room->io->send(room->io, p->via ? p->via : p, rtcp, room->scratch, len,
                        sizeof(room->scratch));
}

/* --- tracks -------------------------------------------------------------- */

sfu_track_t *sfu_track_create(sfu_participant_t *owner) {
  sfu_track_t *t = calloc(1, sizeof(*t));
  if (!t) return NULL;
  sfu_random_hex(t->id, "TR_", 8);
  t->owner = owner;
  do
    t->out_ssrc = sfu_random_u32();
  while (t->out_ssrc == 0);
  do
    t->out_rtx_ssrc = sfu_random_u32();
  while (t->out_rtx_ssrc == 0 || t->out_rtx_ssrc == t->out_ssrc);
  t->rtx_pt = -1;
  t->red_pt = -1;
  t->wanted_told = (1u << SFU_MAX_LAYERS) - 1;
  sfu_speaking_init(&t->speaking);
  return t;
}

void sfu_track_destroy(sfu_track_t *t) {
  if (!t) return;
  if (t->meter) sfu_opus_meter_destroy(t->meter);
  for (int k = 0; k < t->nlayers; k++) sfu_layer_release(&t->layers[k]);
  sfu_vec_free(&t->down);
  free(t->dd);
  free(t);
}

void sfu_downtrack_free(sfu_downtrack_t *d) {
  if (!d) return;
  free(d->sent);
  free(d);
}

int sfu_track_add_down(sfu_track_t *t, sfu_downtrack_t *d) { return sfu_vec_push(&t->down, d); }

void sfu_layer_release(sfu_layer_t *l) {
  free(l->nack);
  l->nack = NULL;
  if (l->cache) {
    sfu_rtx_cache_free(l->cache);
    free(l->cache);
    l->cache = NULL;
  }
}

/* The layer's cache, made at its first packet: resend limits are per
 * subscriber (sfu_sent_t), so the cache answers every get. */
static sfu_rtx_cache_t *layer_cache(sfu_layer_t *l) {
  if (l->cache) return l->cache;
  if ((l->cache = calloc(1, sizeof(*l->cache))) == NULL) return NULL;
  if (sfu_rtx_cache_init(l->cache, RTX_SLOTS, RTX_BYTES, RTX_MAX_AGE_MS) != 0) {
    free(l->cache);
    return l->cache = NULL;
  }
  l->cache->max_resends = UINT32_MAX;
  l->cache->resend_ms = 0;
  return l->cache;
}

/* --- RTP in ------------------------------------------------------------------ */

static void update_rx(sfu_rx_stats_t *rx, const sfu_rtp_t *r, uint64_t now_us, int clock) {
  uint64_t ext = sfu_seq_unwrap(&rx->unwrap, r->seq);
  int64_t arrival = (int64_t)(now_us * (uint64_t)clock / 1000000);
  int64_t transit = arrival - (int64_t)r->ts;
  if (rx->packets == 0) {
    rx->base_seq = rx->max_seq = ext;
  } else {
    int64_t d = transit - rx->last_transit;
    if (d < 0) d = -d;
    rx->jitter += ((double)d - rx->jitter) / 16.0;
    if (ext > rx->max_seq) rx->max_seq = ext;
  }
  rx->last_transit = transit;
  rx->packets++;
  rx->bytes += r->payload_len;
}

/* The level of a packet whose Opus frame is `opus` (the payload, or the
 * primary block of a RED payload). */
static void update_speaking(sfu_room_t *room, sfu_track_t *t, const sfu_rtp_t *r,
                            const sfu_rtp_t *opus, uint64_t now_ms) {
  int voice = -1, level = -1;
  if (t->level_ext && sfu_rtp_audio_level(r, t->level_ext, &voice, &level) == 1) {
    /* The client measures for us. Its V bit is ignored: it means something
     * only with vad=on, and some senders (aiortc) always set it to 0. */
    voice = -1;
  } else {
    if (!t->meter && sfu_opus_meter_create(&t->meter) != 0) return;
    level = sfu_opus_meter_feed(t->meter, opus->data + opus->payload_off, opus->payload_len);
    if (level < 0) return;
  }
  if (sfu_speaking_update(&t->speaking, level, voice, now_ms)) room->speaking_dirty = 1;
}

static const uint8_t no_ext[15]; /* down-tracks negotiate no extensions */

/* A packet's string-valued extension (rid, repaired rid) equals `rid`. */
static int ext_is(const sfu_rtp_t *r, int id, const char *rid) {
  char v[16];
  return id && sfu_rtp_ext_mid(r, id, v, sizeof(v)) > 0 && strcmp(v, rid) == 0;
}

/* The layer a packet is of, or -1; *rtx says it is a repair (RFC 4588)
 * packet. SSRCs the SDP did not give are learnt: a simulcast layer's from
 * the rid extension, a single layer's from the first packet of its type
 * (the links hear of them) -- but not from a packet whose mid extension
 * names another m-line: a camera and a screen share use the same payload
 * types. A remote track's come from its description only (relay.c). */
static int classify(sfu_track_t *t, const sfu_rtp_t *r, int *rtx) {
  if (!t) return -1;
  int media = r->pt == t->pt || (t->red_pt >= 0 && r->pt == t->red_pt); /* Opus or RED */
  for (int k = 0; k < t->nlayers; k++) {
    sfu_layer_t *l = &t->layers[k];
    if (l->ssrc == r->ssrc && media) return *rtx = 0, k;
    if (l->rtx_ssrc == r->ssrc && r->pt == t->rtx_pt && t->rtx_pt >= 0) return *rtx = 1, k;
  }
  int is_rtx = t->rtx_pt >= 0 && r->pt == t->rtx_pt;
  if ((!media && !is_rtx) || t->owner->via) return -1;
  char mid[sizeof(t->mid)];
  if (t->mid_ext && sfu_rtp_ext_mid(r, t->mid_ext, mid, sizeof(mid)) > 0 &&
      strcmp(mid, t->mid) != 0)
    return -1;
  for (int k = 0; k < t->nlayers; k++) {
    sfu_layer_t *l = &t->layers[k];
    uint32_t *slot = is_rtx ? &l->rtx_ssrc : &l->ssrc;
    if (*slot) continue;
    if (l->rid[0] ? ext_is(r, is_rtx ? t->rrid_ext : t->rid_ext, l->rid) : t->nlayers == 1) {
      *slot = r->ssrc;
      t->owner->link_dirty = 1;
      return *rtx = is_rtx, k;
    }
  }
  return -1;
}

/* Asks the publisher for a keyframe of layer k (PLI), at most every
 * PLI_INTERVAL_MS per layer; later asks within that time are counted and
 * dropped (the keyframe underway serves them too). */
void sfu_fwd_request_keyframe(sfu_room_t *room, sfu_track_t *t, int k) {
  if (!t || k < 0 || k >= t->nlayers) return;
  sfu_layer_t *l = &t->layers[k];
  sfu_participant_t *p = t->owner;
  uint64_t now = now_ms(room);
  if (!l->ssrc || !p->tp_ready) return;
  if (l->last_pli_ms && now - l->last_pli_ms < PLI_INTERVAL_MS) {
    room->c.plis_throttled++;
    return;
  }
  l->last_pli_ms = now;
  int n = sfu_rtcp_write_pli(room->scratch, sizeof(room->scratch) - SFU_SRTP_TRAILER,
                             p->rtcp_ssrc, l->ssrc);
  if (n > 0 && send_pkt(room, p, 1, (size_t)n) == 0) {
    room->c.plis_sent++;
    room->c.rtcp_out++;
  }
}

/* An audio packet to its down-tracks. `red` describes its payload when it
 * came as RED (RFC 2198), and `opus` is then the view of its primary block
 * alone (else the packet itself): a subscriber that kept RED gets the
 * whole payload under its RED type, the blocks' types set to its Opus
 * type; any other gets the primary as plain Opus, under the same sequence
 * number (each packet has one primary). */
static void forward_audio(sfu_room_t *room, sfu_track_t *t, const sfu_rtp_t *r,
                          const sfu_red_t *red, const sfu_rtp_t *opus) {
  uint64_t wall = wall_us(room);
  for (int i = 0; i < t->down.n; i++) {
    sfu_downtrack_t *d = t->down.items[i];
    if (!d->negotiated || !d->sub->tp_ready) continue;
    if (d->unheard) { /* not among this listener's loudest (loudest.c) */
      room->c.drop_not_loudest++;
      continue;
    }
    if (!d->started || d->resync) {
      d->seq_offset = d->started ? (uint16_t)(d->last_seq + 1 - r->seq) : 0;
      d->started = 1;
      d->resync = 0;
    }
    uint16_t seq = (uint16_t)(r->seq + d->seq_offset);
    int as_red = red && d->red_pt >= 0;
    const sfu_rtp_t *src = red && !as_red ? opus : r;
    int n = sfu_rtp_forward_copy(src, (uint8_t)(as_red ? d->red_pt : d->pt), seq, r->ts, d->ssrc,
                                 no_ext, room->scratch, sizeof(room->scratch) - SFU_SRTP_TRAILER);
    if (n >= 0 && as_red && d->pt != t->pt)
      sfu_red_set_pts(room->scratch + n - src->payload_len, red, d->pt);
    if (n < 0 || send_pkt(room, d->sub, 0, (size_t)n)) {
      room->c.drop_send++;
      continue;
    }
    room->c.rtp_out++;
    room->c.red_out += as_red;
    if ((int16_t)(seq - d->last_seq) > 0 || d->packets == 0) {
      d->last_seq = seq;
      d->last_ts = r->ts;
      d->last_send_us = wall;
    }
    d->packets++;
    d->octets += src->payload_len;
  }
}

/* d starts on layer k at this packet, or switches to it: sequence numbers,
 * timestamps, VP8 picture ids and Dependency Descriptor frame numbers (dd:
 * the packet's, or NULL) continue from what d last sent. */
static void rebase(sfu_room_t *room, sfu_downtrack_t *d, int k, const sfu_rtp_t *r,
                   const sfu_video_info_t *vi, const sfu_dd_t *dd, uint64_t now_wall_us) {
  if (dd) d->dd_fn_offset = d->started ? (uint16_t)(d->dd_last_fn + 1 - dd->frame_number) : 0;
  if (d->started) {
    d->seq_offset = (uint16_t)(d->last_seq + 1 - r->seq);
    uint64_t gap = (now_wall_us - d->last_send_us) * (uint64_t)d->codec.clock / 1000000;
    d->ts_offset = d->last_ts + (uint32_t)(gap ? gap : 1) - r->ts;
    d->pid_offset = d->last_pid >= 0 && vi->picture_id >= 0 ? d->last_pid + 1 - vi->picture_id : 0;
    d->tl0_offset = d->last_tl0 >= 0 && vi->tl0picidx >= 0 ? d->last_tl0 + 1 - vi->tl0picidx : 0;
    d->switches++;
    room->c.layer_switches++;
  }
  d->started = 1;
  d->layer = k;
  d->layer_ms = now_ms(room);
}

/* Our send time as abs-send-time: 6.18 fixed-point seconds, 24 bits. */
static uint32_t abs_send_time(uint64_t now_us) {
  return (uint32_t)(((now_us << 18) / 1000000) & 0xffffff);
}

/* One header extension element at e, in the one-byte or (two) the
 * two-byte form (RFC 8285 4.2, 4.3); the bytes it took. */
static size_t put_ext(uint8_t *e, int two, int id, const uint8_t *v, size_t len) {
  size_t h = two ? 2 : 1;
  if (two)
    e[0] = (uint8_t)id, e[1] = (uint8_t)len;
  else
    e[0] = (uint8_t)(id << 4 | (len - 1));
  memcpy(e + h, v, len);
  return h + len;
}

/* Adds our header extensions to a forward copy that has none (RFC 8285):
 * abs-send-time (id a, 24-bit value v) and the transport-wide sequence
 * number (id t, value tseq), each when its id is not 0, and the `dl`
 * bytes of a Dependency Descriptor `dv` under id `di` when di is not 0.
 * The one-byte form, or the two-byte form when the descriptor is longer
 * than 16 bytes (what a=extmap-allow-mixed allows: the caller checked).
 * 4 bytes and the elements more, padded to a word. */
static int add_exts(uint8_t *pkt, int n, size_t cap, int a, uint32_t v, int t, uint16_t tseq,
                    int di, const uint8_t *dv, size_t dl) {
  int two = di && dl > 16;
  size_t h = two ? 2 : 1, body = (a ? h + 3 : 0) + (t ? h + 2 : 0) + (di ? h + dl : 0);
  size_t add = 4 + ((body + 3) & ~(size_t)3);
  if (!body || (size_t)n + add > cap || (pkt[0] & 0x10)) return n;
  size_t hl = 12 + 4 * (size_t)(pkt[0] & 0x0f);
  memmove(pkt + hl + add, pkt + hl, (size_t)n - hl);
  uint8_t *e = pkt + hl, x[3];
  memset(e, 0, add);
  e[0] = two ? 0x10 : 0xBE, e[1] = two ? 0x00 : 0xDE;
  sfu_wr16(e + 2, (uint16_t)((add - 4) / 4));
  e += 4;
  if (a) {
    x[0] = (uint8_t)(v >> 16), x[1] = (uint8_t)(v >> 8), x[2] = (uint8_t)v;
    e += put_ext(e, two, a, x, 3);
  }
  if (t) {
    x[0] = (uint8_t)(tseq >> 8), x[1] = (uint8_t)tseq;
    e += put_ext(e, two, t, x, 2);
  }
  if (di) put_ext(e, two, di, dv, dl);
  pkt[0] |= 0x10;
  return n + (int)add;
}

/* The transport-wide number the next packet to `sub` carries, -1 if it
 * negotiated none; twcc_sent() notes the packet once sent. */
static int twcc_next(const sfu_participant_t *sub) {
  return sub->cc && sub->twcc_out_ext ? sub->cc->tx.next_seq : -1;
}

static void twcc_sent(sfu_room_t *room, sfu_participant_t *sub, int tseq, int len, int probe) {
  if (tseq >= 0) sfu_twcc_tx_send(&sub->cc->tx, room->now_us, (size_t)len, probe);
}

/* d's copy of `r` into `out`: d's payload type, `seq`, `ts` and SSRC,
 * abs-send-time `abs` if negotiated, the transport-wide number tseq if
 * >= 0, the Dependency Descriptor dv/dl if dl > 0, the marker bit set if
 * `marker` (the end of a picture cut down to fewer spatial layers), the
 * VP8 picture id / TL0PICIDX rewritten when pid >= 0. The length, or -1. */
static int video_copy(const sfu_downtrack_t *d, const sfu_rtp_t *r, uint16_t seq, uint32_t ts,
                      int pid, int tl0, uint32_t abs, int tseq, int marker, const uint8_t *dv,
                      size_t dl, uint8_t *out, size_t cap) {
  int n = sfu_rtp_forward_copy(r, d->pt, seq, ts, d->ssrc, no_ext, out, cap);
  if (n < 0) return -1;
  if (marker) out[1] |= 0x80;
  n = add_exts(out, n, cap, d->abs_ext, abs, tseq >= 0 ? d->sub->twcc_out_ext : 0,
               (uint16_t)tseq, dl ? d->dd_ext : 0, dv, dl);
  if (pid >= 0) sfu_vp8_rewrite(out + n - r->payload_len, r->payload_len, pid, tl0);
  return n;
}

/* The structure t's descriptors are read with now (one was seen). */
static const sfu_dd_structure_t *dd_structure(const sfu_track_t *t) {
  return &t->dd->st[t->dd->cur];
}

/* The Dependency Descriptor d gets with a packet whose own is dv/dl (read
 * as dd), into out (SFU_DD_MAX_LEN bytes): the publisher's, its frame
 * number moved by d's offset, and the active decode targets `mask` written
 * in where the subscriber must hear of them -- each frame's first packet
 * while it gets fewer than all of them, and once more when it gets all
 * again (a structure says all). The record `e` notes how. Returns the
 * length, 0 for none (longer than 16 bytes to a subscriber without
 * two-byte header elements). */
static size_t dd_for(sfu_room_t *room, sfu_downtrack_t *d, const sfu_track_t *t,
                     const uint8_t *dv, size_t dl, const sfu_dd_t *dd, uint32_t mask,
                     sfu_sent_t *e, uint8_t *out) {
  const sfu_dd_structure_t *st = dd_structure(t);
  uint32_t all = (uint32_t)((1ull << st->ntargets) - 1);
  uint16_t fn = (uint16_t)(dd->frame_number + d->dd_fn_offset);
  int n = 0;
  if (dd->has_structure) d->dd_told = all;
  if (dd->has_mask || (dd->start && (mask != all || d->dd_told != all)))
    n = sfu_dd_rewrite(dv, dl, dd, st->ntargets, mask, fn, out, SFU_DD_MAX_LEN);
  if (n > 0) {
    d->dd_told = mask;
    room->c.dd_masked++;
    e->dd = 2;
    e->dd_mask = mask;
  } else {
    memcpy(out, dv, dl);
    sfu_dd_set_frame_number(out, fn);
    n = (int)dl;
    e->dd = 1;
    e->dd_mask = 0;
  }
  e->dd_fn = fn;
  if ((int16_t)(fn - d->dd_last_fn) > 0 || !d->packets) d->dd_last_fn = fn;
  if (n > 16 && !d->sub->ext_mixed) return e->dd = 0;
  return (size_t)n;
}

/* A video packet to the down-tracks of t that take it. dd is its
 * Dependency Descriptor read through t's structure (dv/dl its bytes), or
 * NULL; vi then holds the layers it gives. */
static void forward_video(sfu_room_t *room, sfu_track_t *t, int k, const sfu_rtp_t *r,
                          const sfu_video_info_t *vi, int have_vi, const sfu_dd_t *dd,
                          const uint8_t *dv, size_t dl) {
  int key = have_vi && vi->keyframe && vi->begins_frame;
  int vp8 = have_vi && vi->picture_id >= 0 && t->parse == sfu_vp8_parse;
  /* SVC: one stream whose packets say their spatial layer -- VP9's payload
   * descriptor, or a Dependency Descriptor (an AV1 packet that continues
   * an OBU does not say) */
  int svc = have_vi && vi->sid >= 0 && t->nlayers == 1 && (t->parse == sfu_vp9_parse || dd);
  if (svc && vi->sid >= t->svc_layers) t->svc_layers = vi->sid + 1;
  /* temporal layers that can be dropped: VP8's (picture ids rewritten),
   * those of a Dependency Descriptor (AV1, H.264), and without one AV1's
   * of a stream without spatial layers (from the OBU extension: a
   * receiver without the descriptor orders AV1 frames by sequence number) */
  int temporal = have_vi && (vp8 || dd || (t->parse == sfu_av1_parse && vi->sid <= 0 &&
                                           t->svc_layers <= 1));
  if (temporal && vi->tid >= t->tid_layers) t->tid_layers = vi->tid + 1;
  temporal = temporal && t->tid_layers > 1;
  uint64_t wall = wall_us(room);
  uint32_t abs = abs_send_time(room->now_us);
  uint8_t ddo[SFU_DD_MAX_LEN];
  sfu_rtx_cache_t *cache = t->down.n || room->links ? layer_cache(&t->layers[k]) : NULL;
  if (cache) sfu_rtx_cache_put(cache, r->data, r->len, r->seq, now_ms(room));
  for (int i = 0; i < t->down.n; i++) {
    sfu_downtrack_t *d = t->down.items[i];
    if (!d->negotiated || d->paused || d->bw_paused || !d->sub->tp_ready) continue;
    if (d->layer == k && d->shed && k != d->target) continue; /* see allocate() */
    /* A subscriber of the descriptor reads a stream from a structure on:
     * a keyframe's. One without it gets AV1's spatial layers whole. */
    int with_dd = t->dd_ext && d->dd_ext;
    int d_svc = svc && (!dd || with_dd);
    int d_temporal = temporal && (!dd || with_dd || t->svc_layers <= 1);
    if (with_dd && !dd && t->dd && t->dd->cur >= 0) { /* its descriptor unreadable (dd_bad) */
      if (d->layer == k) d->seq_offset--; /* the next one sent takes its number */
      continue;
    }
    if (d->layer != k) {
      /* One layer per subscriber; another only from its keyframe on. A
       * single-layer stream starts at once (the subscriber's decoder asks
       * for a keyframe itself if it needs one); one that goes on from
       * what d already sent -- resumed after a pause, another publisher on
       * a WHEP viewer's m-line (whep.c) -- waits for a keyframe: numbered
       * on, a delta frame would be decoded against the wrong pictures. */
      if (k != d->target ||
          (!key && (t->nlayers > 1 || d->layer >= 0 || d->started || with_dd)))
        continue;
      rebase(room, d, k, r, vi, with_dd ? dd : NULL, wall);
      d->keyed = 0;
      d->shed = 0;
    }
    if (key) d->keyed = 1;
    if (d_svc) { /* its spatial layers up to svc_cur: down at a picture start, up at a keyframe */
      if (vi->begins_frame && vi->sid == 0 &&
          (d->svc_target < d->svc_cur || (d->svc_target > d->svc_cur && key)))
        d->svc_cur = d->svc_target;
      if (vi->sid > d->svc_cur) {
        d->seq_offset--; /* the next one sent takes its number */
        room->c.drop_svc++;
        continue;
      }
    }
    if (d_temporal) { /* temporal layers up to tid_cur */
      int want = d->tid_target < d->tid_quality ? d->tid_target : d->tid_quality;
      if (vi->begins_frame && (want < d->tid_cur || (want > d->tid_cur && vi->tid == 0)))
        d->tid_cur = want;
      /* a packet that does not say (an AV1 fragment's continuation) goes
       * the way of its frame's first */
      if (vi->tid >= 0) d->tid_dropping = vi->tid > d->tid_cur;
      if (d->tid_dropping) { /* the next ones sent take its numbers */
        d->seq_offset--;
        if (vi->begins_frame) d->pid_offset--;
        room->c.drop_temporal++;
        continue;
      }
    }
    uint16_t seq = (uint16_t)(r->seq + d->seq_offset);
    uint32_t ts = r->ts + d->ts_offset;
    int pid = -1, tl0 = -1;
    if (vp8 && (t->nlayers > 1 || d->pid_offset)) { /* simulcast, or frames dropped */
      pid = (vi->picture_id + d->pid_offset) & 0x7fff;
      tl0 = vi->tl0picidx >= 0 ? (vi->tl0picidx + d->tl0_offset) & 0xff : -1;
      d->last_pid = pid;
      if (tl0 >= 0) d->last_tl0 = tl0;
    } else if (have_vi) {
      d->last_pid = vi->picture_id;
      d->last_tl0 = vi->tl0picidx;
    }
    int tseq = twcc_next(d->sub);
    int marker = d_svc && vi->sid == d->svc_cur && vi->ends_frame;
    sfu_sent_t rec = {seq, r->seq, (int8_t)k, 0, 0, ts, (int16_t)pid, (int16_t)tl0, abs,
                      (uint16_t)tseq, tseq >= 0, (uint8_t)marker, 0, 0, 0};
    size_t ddn = 0;
    if (dd && with_dd) { /* what it gets, as targets of the structure */
      uint32_t mask = t->dd->active &
                      sfu_dd_targets_upto(dd_structure(t), d_svc ? d->svc_cur : SFU_DD_MAX_SPATIAL,
                                          d_temporal ? d->tid_cur : SFU_DD_MAX_TEMPORAL);
      ddn = dd_for(room, d, t, dv, dl, dd, mask, &rec, ddo);
    }
    int n = video_copy(d, r, seq, ts, pid, tl0, abs, tseq, marker, ddo, ddn, room->scratch,
                       sizeof(room->scratch) - SFU_SRTP_TRAILER);
    if (n < 0) {
      room->c.drop_send++;
      continue;
    }
    if (!d->sent && (d->sent = malloc(SFU_SENT_SLOTS * sizeof(*d->sent))) != NULL)
      for (int j = 0; j < SFU_SENT_SLOTS; j++) d->sent[j].layer = -1;
    if (d->sent) d->sent[seq & (SFU_SENT_SLOTS - 1)] = rec;
    if (send_pkt(room, d->sub, 0, (size_t)n)) {
      room->c.drop_send++;
      continue;
    }
    twcc_sent(room, d->sub, tseq, n, 0);
    room->c.rtp_out++;
    if ((int16_t)(seq - d->last_seq) > 0 || d->packets == 0) {
      d->last_seq = seq;
      d->last_ts = ts;
      d->last_send_us = wall;
    }
    d->packets++;
    d->octets += r->payload_len;
  }
}

static void note_layer(sfu_room_t *room, sfu_layer_t *l, const sfu_rtp_t *r,
                       const sfu_video_info_t *vi, int have_vi, sfu_track_t *t, uint64_t now_ms) {
  l->last_ms = now_ms;
  if (have_vi && vi->keyframe && vi->begins_frame) {
    l->last_keyframe_ms = now_ms;
    t->keyframes++;
    room->c.keyframes_in++;
    if (vi->width > 0) {
      l->width = vi->width;
      l->height = vi->height;
    }
  }
  if (now_ms - l->win_start_ms >= 1000) {
    uint64_t span = now_ms - l->win_start_ms;
    l->bitrate_bps = l->win_start_ms ? (uint32_t)(l->win_bytes * 8000 / span) : 0;
    for (int i = 0; i < SFU_MAX_TIDS; i++) {
      l->tid_bps[i] = l->win_start_ms ? (uint32_t)(l->tid_win[i] * 8000 / span) : 0;
      l->tid_win[i] = 0;
    }
    for (int i = 0; i < SFU_MAX_LAYERS; i++) {
      l->sid_bps[i] = l->win_start_ms ? (uint32_t)(l->sid_win[i] * 8000 / span) : 0;
      l->sid_win[i] = 0;
    }
    l->win_start_ms = now_ms;
    l->win_bytes = 0;
  }
  l->win_bytes += r->len;
  if (have_vi && vi->tid >= 0 && vi->tid < SFU_MAX_TIDS) l->tid_win[vi->tid] += r->len;
  if (have_vi && vi->sid >= 0 && vi->sid < SFU_MAX_LAYERS) l->sid_win[vi->sid] += r->len;
}

/* t's Dependency Descriptor in packet r, if it has one: read through the
 * structure last attached (t->dd, made at the first descriptor), a
 * structure it carries taking its place, the active decode targets it
 * carries kept. 1 and *dd, its bytes in *dv, *dl; 0 if there is none or it
 * cannot be read (counted: dd_bad). */
static int read_dd(sfu_room_t *room, sfu_track_t *t, const sfu_rtp_t *r, sfu_dd_t *dd,
                   const uint8_t **dv, size_t *dl) {
  if (sfu_rtp_ext_find(r, t->dd_ext, dv, dl) != 1) return 0;
  if (!t->dd) {
    if ((t->dd = calloc(1, sizeof(*t->dd))) == NULL) return 0;
    t->dd->cur = -1;
  }
  int spare = t->dd->cur == 0 ? 1 : 0;
  if (sfu_dd_parse(*dv, *dl, t->dd->cur >= 0 ? dd_structure(t) : NULL, &t->dd->st[spare], dd)) {
    room->c.dd_bad++;
    return 0;
  }
  room->c.dd_in++;
  if (dd->has_structure) {
    t->dd->cur = spare;
    if (t->nlayers == 1) t->svc_layers = t->dd->st[spare].max_sid + 1;
  }
  if (dd->has_structure || dd->has_mask) t->dd->active = dd->active_mask;
  return 1;
}

/* What a Dependency Descriptor says of its packet, over what the payload
 * said (or could not: encrypted end to end): the frame's layers, its
 * bounds, a keyframe where a structure comes (the first packet of one),
 * the top layer's size. */
static void dd_info(const sfu_track_t *t, const sfu_dd_t *dd, sfu_video_info_t *vi) {
  const sfu_dd_structure_t *st = dd_structure(t);
  vi->sid = dd->sid;
  vi->tid = dd->tid;
  vi->begins_frame = dd->start;
  vi->ends_frame = dd->end;
  vi->keyframe = dd->has_structure;
  if (dd->has_structure && !vi->width && st->has_resolutions) {
    vi->width = st->width[st->max_sid];
    vi->height = st->height[st->max_sid];
  }
}

/* A publisher's packet carrying a transport-wide number: its arrival,
 * for the feedback of sfu_fwd_feedback_tick(). Padding and unknown
 * streams count too: the publisher's estimator sent them. */
static void note_arrival(sfu_room_t *room, sfu_participant_t *p, const sfu_rtp_t *r) {
  const uint8_t *v;
  size_t n;
  if (sfu_rtp_ext_find(r, p->twcc_in_ext, &v, &n) != 1 || n < 2) return;
  if (!p->twcc_rx) {
    if ((p->twcc_rx = malloc(sizeof(*p->twcc_rx))) == NULL) return;
    sfu_twcc_rx_init(p->twcc_rx);
  }
  sfu_twcc_rx_note(p->twcc_rx, (uint16_t)(v[0] << 8 | v[1]), room->now_us);
}

void sfu_fwd_on_rtp(sfu_room_t *room, sfu_participant_t *p, uint8_t *buf, size_t len) {
  sfu_rtp_t r;
  sfu_track_t *t = NULL;
  int k = -1, rtx = 0;

  if (sfu_rtp_parse(buf, len, &r) != 0) {
    room->c.drop_malformed++;
    return;
  }
  room->c.rtp_in++;
  if (p->twcc_in_ext) note_arrival(room, p, &r);
  sfu_track_t *ts[SFU_TRACK_SLOTS];
  sfu_participant_tracks(p, ts);
  for (int i = 0; i < SFU_TRACK_SLOTS && !t; i++)
    if ((k = classify(ts[i], &r, &rtx)) >= 0) t = ts[i];
  if (!t) { /* FEC, padding probes on unknown streams, strangers */
    room->c.drop_unknown_ssrc++;
    return;
  }
  sfu_layer_t *l = &t->layers[k];
  if (rtx) { /* a retransmission we asked for: back to the original */
    int n = sfu_rtx_unwrap(buf, len, t->pt, l->ssrc);
    if (n <= 0 || sfu_rtp_parse(buf, (size_t)n, &r) != 0) {
      if (n == 0) /* a padding-only probe: nothing to restore */
        room->c.drop_rtx_probe++;
      else
        room->c.drop_malformed++;
      return;
    }
    room->c.rtx_in++;
  }
  uint64_t now_us = room->now_us;
  if (t->kind == SFU_KIND_AUDIO) {
    sfu_red_t red, *is_red = NULL;
    sfu_rtp_t opus = r;
    if (t->red_pt >= 0 && r.pt == t->red_pt) {
      if (sfu_red_parse(r.data + r.payload_off, r.payload_len, &red) != 0) {
        room->c.drop_malformed++;
        return;
      }
      is_red = &red;
      room->c.red_in++;
      opus.payload_off += red.b[red.n - 1].off;
      opus.payload_len = red.b[red.n - 1].len;
    }
    update_rx(&l->rx, &r, now_us, t->codec.clock);
    update_speaking(room, t, &r, &opus, now_us / 1000);
    if (p->server_muted) {
      room->c.drop_muted++;
      t->dropped_muted++;
      return;
    }
    if (room->links) sfu_relay_forward(room, p, r.data, r.len, 0);
    forward_audio(room, t, &r, is_red, &opus);
    return;
  }
  if (!rtx) update_rx(&l->rx, &r, now_us, t->codec.clock);
  if (!l->nack && (l->nack = calloc(1, sizeof(*l->nack))) != NULL) {
    sfu_nack_gen_init(l->nack);
    l->nack->retry_ms = NACK_RETRY_MS;
  }
  if (l->nack && sfu_nack_gen_feed(l->nack, r.seq, now_us / 1000) == SFU_NACK_RESET)
    sfu_fwd_request_keyframe(room, t, k); /* a jump too big to repair */
  sfu_video_info_t vi;
  int have_vi = t->parse && t->parse(r.data + r.payload_off, r.payload_len, &vi) == 0;
  sfu_dd_t dd;
  const uint8_t *dv = NULL;
  size_t dl = 0;
  int have_dd = t->dd_ext && read_dd(room, t, &r, &dd, &dv, &dl);
  if (have_dd) {
    if (!have_vi) sfu__video_info_reset(&vi); /* a payload we cannot read (end-to-end encrypted) */
    have_vi = 1;
    dd_info(t, &dd, &vi);
  }
  note_layer(room, l, &r, &vi, have_vi, t, now_us / 1000);
  if (room->links) sfu_relay_forward(room, p, r.data, r.len, 0);
  forward_video(room, t, k, &r, &vi, have_vi, have_dd ? &dd : NULL, dv, dl);
}

/* --- RTCP in ------------------------------------------------------------ */

static sfu_layer_t *layer_of_ssrc(sfu_participant_t *p, uint32_t ssrc) {
  sfu_track_t *ts[SFU_TRACK_SLOTS];
  sfu_participant_tracks(p, ts);
  for (int i = 0; i < SFU_TRACK_SLOTS; i++)
    for (int k = 0; ts[i] && k < ts[i]->nlayers; k++)
      if (ts[i]->layers[k].ssrc == ssrc && ssrc) return &ts[i]->layers[k];
  return NULL;
}

/* A publisher's sender report: kept for LSR/DLSR in our receiver reports
 * and to translate into the sender reports subscribers get (lip sync). */
static void on_sender_report(sfu_participant_t *p, const sfu_rtcp_hdr_t *h) {
  sfu_rtcp_sr_t sr;
  sfu_layer_t *l = layer_of_ssrc(p, h->ssrc);
  if (!l || sfu_rtcp_parse_sr(h, &sr) != 0) return;
  l->rx.sr_ntp_mid = sfu_ntp_mid32(sr.ntp);
  l->rx.sr_arrival_us = p->room->now_us;
  l->sr_ntp = sr.ntp;
  l->sr_rtp = sr.rtp_ts;
}

static sfu_downtrack_t *down_of_ssrc(sfu_participant_t *p, uint32_t ssrc) {
  for (int i = 0; i < p->down.n; i++)
    if (p->down.items[i]->ssrc == ssrc && p->down.items[i]->track) return p->down.items[i];
  return NULL;
}

/* The round trip through one of our last two SRs that a report block
 * answers (RFC 3550 6.4.1: now - LSR - DLSR, our clock for the SR's), and
 * its floor over windows of RTT_FLOOR_MS. */
static void round_trip(sfu_room_t *room, sfu_downtrack_t *d, const sfu_rtcp_report_t *rb) {
  for (int j = 0; j < 2; j++) {
    if (!rb->lsr || rb->lsr != d->sr_mid[j] || !d->sr_us[j]) continue;
    uint64_t el = room->now_us - d->sr_us[j], dlsr = (uint64_t)rb->dlsr * 1000000 / 65536;
    uint64_t rtt = el > dlsr ? el - dlsr : 1;
    d->rtt_us = rtt > UINT32_MAX ? UINT32_MAX : (uint32_t)rtt;
    d->rtt_sr_ms = d->sr_us[j] / 1000;
    if (now_ms(room) - d->rtt_floor_ms >= RTT_FLOOR_MS) {
      d->rtt_floor_us[1] = d->rtt_floor_us[0];
      d->rtt_floor_us[0] = 0;
      d->rtt_floor_ms = now_ms(room);
    }
    if (!d->rtt_floor_us[0] || d->rtt_us < d->rtt_floor_us[0]) d->rtt_floor_us[0] = d->rtt_us;
    return;
  }
}

/* The least round trip of the last RTT_FLOOR_MS or more, 0 = none. */
static uint32_t rtt_floor(const sfu_downtrack_t *d) {
  uint32_t a = d->rtt_floor_us[0], b = d->rtt_floor_us[1];
  return !a || (b && b < a) ? b : a;
}

/* A subscriber's report blocks about our video: the loss it saw and the
 * round trip, for the REMB bound (bandwidth_bound()). */
static void on_report_blocks(sfu_room_t *room, sfu_participant_t *p, const sfu_rtcp_hdr_t *h) {
  sfu_rtcp_sr_t sr;
  sfu_downtrack_t *d;
  if (sfu_rtcp_parse_sr(h, &sr) != 0) return;
  for (int i = 0; i < sr.nreports; i++)
    if ((d = down_of_ssrc(p, sr.reports[i].ssrc)) != NULL && d->kind == SFU_KIND_VIDEO) {
      d->rr_lost = sr.reports[i].fraction_lost;
      d->rr_from_ms = d->rr_ms;
      d->rr_ms = now_ms(room);
      round_trip(room, d, &sr.reports[i]);
    }
}

/* The Dependency Descriptor d sent with packet r, as its record e says,
 * into out (SFU_DD_MAX_LEN bytes): read again through the track's
 * structure (the spare one takes a structure the packet carries). Its
 * length, 0 if it cannot be rebuilt (a structure since that does not read
 * it). */
static size_t dd_again(sfu_downtrack_t *d, const sfu_rtp_t *r, const sfu_sent_t *e,
                       uint8_t *out) {
  sfu_track_t *t = d->track;
  const uint8_t *dv;
  size_t dl;
  sfu_dd_t dd;
  if (!t->dd || t->dd->cur < 0 || sfu_rtp_ext_find(r, t->dd_ext, &dv, &dl) != 1) return 0;
  const sfu_dd_structure_t *known = dd_structure(t);
  sfu_dd_structure_t *spare = &t->dd->st[t->dd->cur == 0 ? 1 : 0];
  if (sfu_dd_parse(dv, dl, known, spare, &dd) != 0) return 0;
  int n = (int)dl;
  if (e->dd == 2) {
    n = sfu_dd_rewrite(dv, dl, &dd, dd.has_structure ? spare->ntargets : known->ntargets,
                       e->dd_mask, e->dd_fn, out, SFU_DD_MAX_LEN);
  } else {
    memcpy(out, dv, dl);
    sfu_dd_set_frame_number(out, e->dd_fn);
  }
  return n > 0 && (n <= 16 || d->sub->ext_mixed) ? (size_t)n : 0;
}

/* NACKed packets d sent and its layer's cache still has: rebuilt as d
 * first sent them and resent, as RTX when negotiated; at most
 * RTX_MAX_RESENDS times each, RTX_RESEND_MS apart. */
static void answer_nack(sfu_room_t *room, sfu_downtrack_t *d, const uint16_t *seqs, int n) {
  uint64_t now = now_ms(room);
  size_t cap = sizeof(room->scratch) - SFU_SRTP_TRAILER;
  if (d->bw_paused) return; /* its resends would only fill the queue that lost them */
  for (int i = 0; i < n && d->sent && d->track; i++) {
    sfu_sent_t *e = &d->sent[seqs[i] & (SFU_SENT_SLOTS - 1)];
    /* (a packet of a layer d has left precedes the keyframe d switched
     * at: no use to its decoder, and more load on a path that may be
     * why it switched) */
    if (e->layer < 0 || e->seq != seqs[i] || e->layer != d->layer) continue;
    /* a loss of the layer sent now, counted once (a receiver NACKs again
     * until the packet comes): the REMB bound's loss (bandwidth_bound()) */
    if (!e->resends) d->win_nacked++;
    if (e->resends >= RTX_MAX_RESENDS ||
        (e->resends && (uint16_t)(now - e->resend_ms) < RTX_RESEND_MS))
      continue;
    sfu_layer_t *l = &d->track->layers[e->layer];
    const uint8_t *pkt;
    sfu_rtp_t r;
    int len = l->cache ? sfu_rtx_cache_get(l->cache, e->orig_seq, now, &pkt) : 0;
    if (len <= 0 || sfu_rtp_parse(pkt, (size_t)len, &r) != 0) continue;
    /* A plain resend repeats the first copy exactly (SRTP); RTX, a new
     * packet of its own stream, carries the time it is sent. */
    int rtx = d->rtx_pt >= 0;
    uint8_t ddo[SFU_DD_MAX_LEN];
    size_t ddn = 0;
    if (e->dd && (ddn = dd_again(d, &r, e, ddo)) == 0) continue; /* not the same packet */
    int tseq = rtx ? twcc_next(d->sub) : e->has_tseq ? e->tseq : -1;
    int m = video_copy(d, &r, e->seq, e->ts, e->pid, e->tl0,
                       rtx ? abs_send_time(room->now_us) : e->abs, tseq, e->marker, ddo, ddn,
                       rtx ? room->scratch2 : room->scratch, cap);
    if (m > 0 && rtx) {
      m = sfu_rtx_wrap(room->scratch2, (size_t)m, (uint8_t)d->rtx_pt, d->track->out_rtx_ssrc,
                       d->rtx_seq, room->scratch, cap);
      if (m > 0) d->rtx_seq++;
    }
    if (m > 0) {
      e->resends++;
      e->resend_ms = (uint16_t)now;
    }
    if (m > 0 && send_pkt(room, d->sub, 0, (size_t)m) == 0) {
      d->retransmitted++;
      room->c.rtx_out++;
      if (rtx) twcc_sent(room, d->sub, tseq, m, 0);
    }
  }
}

void sfu_fwd_resend_raw(sfu_room_t *room, sfu_participant_t *to, sfu_layer_t *l,
                        const uint16_t *seqs, int n) {
  const uint8_t *pkt;
  for (int i = 0; i < n && l->cache; i++) {
    int len = sfu_rtx_cache_get(l->cache, seqs[i], now_ms(room), &pkt);
    if (len <= 0 || (size_t)len > sizeof(room->scratch) - SFU_SRTP_TRAILER) continue;
    memcpy(room->scratch, pkt, (size_t)len);
    if (send_pkt(room, to, 0, (size_t)len) == 0) room->c.rtx_out++;
  }
}

static void on_twcc_result(void *arg, const sfu_twcc_result_t *r) {
  sfu_bwe_packet(arg, r->send_us, r->arrival_us, r->size, r->probe);
}

/* Feedback from a subscriber about one of its down-tracks: keyframe
 * requests go to the publisher (throttled), NACKs are answered from the
 * down-track's cache, REMB bounds the layer it gets; transport-wide
 * feedback (about all of them) goes to its estimator. */
static void on_feedback(sfu_room_t *room, sfu_participant_t *p, const sfu_rtcp_hdr_t *h) {
  uint32_t ssrcs[8], media = 0, sender;
  uint8_t seqnrs[8];
  uint16_t seqs[256];
  uint64_t bps;
  sfu_downtrack_t *d;
  int n;

  switch (sfu_rtcp_fb_kind(h)) {
  case SFU_RTCP_FB_REMB:
    if ((n = sfu_rtcp_parse_remb(h, &bps, ssrcs, 8)) < 0) break;
    if (bps > UINT32_MAX) bps = UINT32_MAX;
    for (int i = 0; i < n; i++)
      if ((d = down_of_ssrc(p, ssrcs[i])) != NULL) {
        if (bps * 100 < (uint64_t)d->remb_bps * REMB_FELL_PCT) d->remb_fell = 1;
        d->remb_bps = (uint32_t)bps, d->remb_ms = now_ms(room);
      }
    return;
  case SFU_RTCP_FB_PLI:
  case SFU_RTCP_FB_FIR:
    if (sfu_rtcp_fb_kind(h) == SFU_RTCP_FB_PLI) {
      if (sfu_rtcp_parse_pli(h, &sender, &media) != 0) break;
    } else {
      if (sfu_rtcp_parse_fir(h, ssrcs, seqnrs, 8) <= 0) break;
      media = ssrcs[0];
    }
    d = down_of_ssrc(p, media);
    if (!d || d->kind != SFU_KIND_VIDEO) return;
    d->plis_received++;
    room->c.plis_received++;
    sfu_fwd_request_keyframe(room, d->track, d->layer >= 0 ? d->layer : d->target);
    return;
  case SFU_RTCP_FB_NACK:
    if ((n = sfu_rtcp_parse_nack(h, &media, seqs, 256)) <= 0) break;
    if ((d = down_of_ssrc(p, media)) == NULL) return;
    d->nacks_received++;
    room->c.nacks_received++;
    answer_nack(room, d, seqs, n);
    return;
  case SFU_RTCP_FB_TWCC:
    if (!p->cc) return;
    if (sfu_twcc_tx_feedback(&p->cc->tx, h, room->now_us, on_twcc_result, &p->cc->bwe) != 0)
      break;
    sfu_bwe_update(&p->cc->bwe, room->now_us);
    room->c.twcc_in++;
    return;
  default: /* TMMBR, SLI, RPSI, ... */
    return;
  }
  room->c.drop_malformed++;
}

/* Transport-wide feedback to a publisher: what arrived since the last. */
static void twcc_feedback(sfu_room_t *room, sfu_participant_t *p, uint64_t ms) {
  if (ms - p->twcc_fb_ms < TWCC_FB_MS) return;
  p->twcc_fb_ms = ms;
  uint32_t media = p->video ? p->video->layers[0].ssrc : 0;
  for (int i = 0, n; i < 4; i++) { /* a long gap or a big burst: several */
    n = sfu_twcc_rx_feedback(p->twcc_rx, room->now_us, p->rtcp_ssrc, media, room->scratch,
                             sizeof(room->scratch) - SFU_SRTP_TRAILER);
    if (n <= 0) break;
    if (send_pkt(room, p, 1, (size_t)n) == 0) {
      room->c.twcc_out++;
      room->c.rtcp_out++;
    }
  }
}

/* A padding-only packet on d's RTX stream (the most padding RTP allows,
 * our extensions), of probe cluster `probe`. The receiver drops it after
 * noting its arrival. */
static void send_padding(sfu_room_t *room, sfu_downtrack_t *d, int probe) {
  uint8_t *b = room->scratch;
  int tseq = twcc_next(d->sub);
  b[0] = 0x80 | 0x20; /* P */
  b[1] = (uint8_t)d->rtx_pt;
  sfu_wr16(b + 2, d->rtx_seq++);
  sfu_wr32(b + 4, d->last_ts);
  sfu_wr32(b + 8, d->track->out_rtx_ssrc);
  int n = add_exts(b, 12, sizeof(room->scratch), d->abs_ext, abs_send_time(room->now_us),
                   d->sub->twcc_out_ext, (uint16_t)tseq, 0, NULL, 0);
  memset(b + n, 0, PROBE_PAD - 1);
  b[n + PROBE_PAD - 1] = PROBE_PAD;
  n += PROBE_PAD;
  if (send_pkt(room, d->sub, 0, (size_t)n) != 0) {
    room->c.drop_send++;
    return;
  }
  twcc_sent(room, d->sub, tseq, n, probe);
  room->c.padding_out++;
}

/* The video down-track of p that probes carry: one with RTX that has sent. */
static sfu_downtrack_t *probe_carrier(sfu_participant_t *p) {
  for (int i = 0; i < p->down.n; i++) {
    sfu_downtrack_t *d = p->down.items[i];
    if (d->kind == SFU_KIND_VIDEO && d->track && d->negotiated && d->rtx_pt >= 0 && d->started)
      return d;
  }
  return NULL;
}

/* One tick's padding of a running probe. */
static void probe_tick(sfu_room_t *room, sfu_participant_t *p) {
  sfu_cc_t *cc = p->cc;
  sfu_downtrack_t *d = probe_carrier(p);
  if (!d) {
    cc->probe_ticks = 0;
    return;
  }
  cc->probe_ticks--;
  for (uint32_t sent = 0, i = 0; sent < cc->probe_pad && i < PROBE_MAX_PKTS; i++) {
    send_padding(room, d, cc->probe_id);
    sent += PROBE_PAD;
  }
}

/* The due NACKs of one of p's video tracks, to p. */
static void nack_upstream(sfu_room_t *room, sfu_participant_t *p, sfu_track_t *t, uint64_t ms) {
  uint16_t seqs[64];
  for (int k = 0; k < t->nlayers; k++) {
    sfu_layer_t *l = &t->layers[k];
    if (!l->nack || !l->ssrc) continue;
    uint64_t given_up = l->nack->given_up;
    int n = sfu_nack_gen_due(l->nack, ms, 0, seqs, 64);
    /* A packet that will not come: subscribers stall on the frame until
     * the next keyframe, so ask for it now. */
    if (l->nack->given_up > given_up) sfu_fwd_request_keyframe(room, t, k);
    if (n <= 0) continue;
    int m = sfu_rtcp_write_nack(room->scratch, sizeof(room->scratch) - SFU_SRTP_TRAILER,
                                p->rtcp_ssrc, l->ssrc, seqs, n);
    if (m > 0 && send_pkt(room, p, 1, (size_t)m) == 0) {
      t->nacks_sent++;
      room->c.nacks_sent++;
      room->c.rtcp_out++;
    }
  }
}

/* Every FB_INTERVAL_MS: NACKs to publishers for what their video (camera
 * and screen) lost on the way to us (sfu/media/nack.c decides what is
 * due, with retry limits), transport-wide feedback to publishers, the
 * padding of running probes. */
void sfu_fwd_feedback_tick(sfu_room_t *room) {
  uint64_t ms = now_ms(room);
  for (sfu_participant_t *p = room->participants; p; p = p->next) {
    if (!p->tp_ready) continue;
    if (p->twcc_rx) twcc_feedback(room, p, ms);
    if (p->cc && p->cc->probe_ticks > 0) probe_tick(room, p);
    if (p->video) nack_upstream(room, p, p->video, ms);
    if (p->screen) nack_upstream(room, p, p->screen, ms);
  }
}

void sfu_fwd_on_rtcp(sfu_room_t *room, sfu_participant_t *p, uint8_t *buf, size_t len) {
  sfu_rtcp_iter_t it;
  sfu_rtcp_hdr_t h;
  int rv;

  room->c.rtcp_in++;
  sfu_rtcp_iter_init(&it, buf, len);
  while ((rv = sfu_rtcp_next(&it, &h)) == 1) {
    if (h.pt == 200) {
      on_sender_report(p, &h);
      if (room->links && layer_of_ssrc(p, h.ssrc)) sfu_relay_forward(room, p, h.data, h.len, 1);
    }
    if (h.pt == 200 || h.pt == 201) {
      on_report_blocks(room, p, &h);
    } else if (h.pt == 205 || h.pt == 206) {
      on_feedback(room, p, &h);
    }
    /* SDES, BYE, XR: nothing to do */
  }
  if (rv < 0) room->c.drop_malformed++;
}

/* --- simulcast layer choice ---------------------------------------------- */

/* Layers from lowest to highest resolution: by the sizes seen in their
 * keyframes once all are known, else in the order the publisher listed
 * them (the demo client lists them low to high, as Chromium's own does). */
static int layer_order(const sfu_track_t *t, int order[SFU_MAX_LAYERS]) {
  int n = t->nlayers, known = 1;
  for (int k = 0; k < n; k++) {
    order[k] = k;
    known &= t->layers[k].height > 0;
  }
  for (int i = 1; known && i < n; i++)
    for (int j = i; j > 0 && t->layers[order[j]].height < t->layers[order[j - 1]].height; j--) {
      int x = order[j];
      order[j] = order[j - 1];
      order[j - 1] = x;
    }
  return n;
}

/* The bandwidth bound on d's layer (bw_cap, a rank) from its REMB.
 * A receiver's estimator (Chrome's) cuts its REMB to 0.85x what arrives
 * when it sees the delay grow, and otherwise raises it slowly, never far
 * above what it receives (1.5x) -- so a REMB under the current layer's
 * rate says little (it may still be climbing after a step up, or creep
 * while a lower layer flows); a REMB that *fell* says overuse. So:
 *
 * - down, at once: a fresh REMB under 85 % of the layer's rate that fell
 *   since the last one, or with 10 % or more lost (the subscriber's last
 *   receiver report, or NACKed -- each packet of the current layer once --
 *   of what it was sent in the last 500 ms); a fall and NACKs judged only
 *   after a second on the layer, a report once what it covers began half
 *   a second into it, none while a layer is shed. Down to the highest
 *   layer the REMB carries, one at least (after a step up, back to the
 *   layer it left), the current one shed
 *   until the target's keyframe: its packets would only keep the queue
 *   full, and the keyframe would queue behind them or be dropped.
 *   A REMB that lags far below the layer does not fall when more is sent
 *   than arrives: a queue on the downlink says the same -- a round trip
 *   QUEUE_MS over its floor, through an SR (sent every QUEUE_SR_MS to
 *   these subscribers) that met it, judged as a fall is.
 * - up, one layer, DOWN_HOLD_MS after a step down and then every
 *   UP_HOLD_MS while nothing says overuse: the next layer is the probe (a
 *   REMB rises fast only once more than it has seen arrives). A step down
 *   within UP_FAILED_MS of a step up makes the next hold 1.5x longer (6,
 *   9, 13.5, 20.25 s, at most 24 s): a cap still there is tried less
 *   often, one lifted is found again within 10 s or so.
 *
 * A REMB older than REMB_FRESH_MS counts for nothing. */
static void bandwidth_bound(sfu_downtrack_t *d, const sfu_track_t *t, const int *order, int n,
                            uint64_t now_ms) {
  int rank = 0;
  for (int i = 0; i < n; i++)
    if (order[i] == d->layer) rank = i;
  uint32_t cur = d->layer >= 0 ? t->layers[d->layer].bitrate_bps : 0;
  int fresh = d->remb_bps && now_ms - d->remb_ms < REMB_FRESH_MS;
  if (now_ms - d->win_ms >= LOSS_WINDOW_MS) { /* what it NACKed of what it got */
    uint64_t sent = d->packets - d->win_packets;
    d->nack_lost = sent ? (uint8_t)(d->win_nacked * 256 / sent > 255 ? 255 : d->win_nacked * 256 / sent) : 0;
    d->win_nacked = 0;
    d->win_packets = d->packets;
    d->win_ms = now_ms;
  }
  /* a fall, and losses, of this layer only: a second on it (while a step
   * down sheds the layer it leaves, and just after, the receiver's
   * estimator sees what arrives drop and the queue still full: it falls
   * again, for what the step itself did) */
  int settled = !d->shed && now_ms - d->layer_ms >= 2 * LOSS_WINDOW_MS;
  int fell = d->remb_fell && settled;
  d->remb_fell = 0;
  if (d->layer < 0) return; /* paused or not started: nothing to judge */
  /* losses: NACKs once it is settled; a receiver report as soon as what
   * it covers (since the report before it) began LOSS_WINDOW_MS into the
   * layer (the queue a step down left has drained by then) */
  int losing = (settled && d->nack_lost >= SEVERE_LOSS) ||
               (!d->shed && d->rr_from_ms >= d->layer_ms + LOSS_WINDOW_MS &&
                now_ms - d->rr_ms < REMB_FRESH_MS && d->rr_lost >= SEVERE_LOSS);
  /* a queue on its downlink: a round trip through an SR sent on the
   * layer, QUEUE_MS over the floor (what a REMB that lags far below the
   * layer cannot show: it does not fall when more is sent than arrives) */
  uint32_t floor = rtt_floor(d);
  int queueing = settled && floor && d->rtt_sr_ms >= d->layer_ms &&
                 now_ms - d->rtt_sr_ms < REMB_FRESH_MS &&
                 d->rtt_us > floor + (uint32_t)QUEUE_MS * 1000;
  if (fresh && cur && rank > 0 && (uint64_t)d->remb_bps * 100 < (uint64_t)cur * CONGESTED_PCT &&
      (fell || losing || queueing)) {
    int r = rank - 1, failed = d->bw_up_ms && now_ms - d->bw_up_ms < UP_FAILED_MS;
    /* (a step up that failed goes back where it came from: a receiver
     * cuts to 0.85x what came lately, which is mostly the layer below) */
    while (!failed && r > 0 && t->layers[order[r]].bitrate_bps > d->remb_bps) r--;
    if (!failed)
      d->bw_backoff = 0;
    else if (d->bw_backoff < 4) /* (6 s x 1.5^4 > DOWN_HOLD_MAX_MS) */
      d->bw_backoff++;
    uint64_t hold = DOWN_HOLD_MS;
    for (int i = 0; i < d->bw_backoff; i++) hold = hold * 3 / 2;
    sfu_log(SFU_LOG_DEBUG, "room",
            "[%s] %s: down to rank %d of %d after %d ms on rank %d: REMB %u kbit/s%s; "
            "lost %u/256 reported, %u/256 NACKed; round trip %.1f ms (floor %.1f ms)",
            d->sub->identity, t->id, r, n, (int)(now_ms - d->layer_ms), rank,
            (unsigned)(d->remb_bps / 1000), fell ? " (fell)" : "", d->rr_lost, d->nack_lost,
            d->rtt_us / 1000.0, floor / 1000.0);
    d->bw_cap = r;
    d->bw_hold_ms = now_ms + (hold < DOWN_HOLD_MAX_MS ? hold : DOWN_HOLD_MAX_MS);
    d->bw_up_ms = 0;
    d->shed = 1;
    d->nack_lost = 0;
    return;
  }
  if (fell || losing || queueing) { /* overuse without a step: no step up either */
    if (d->bw_hold_ms < now_ms + UP_HOLD_MS) d->bw_hold_ms = now_ms + UP_HOLD_MS;
    return;
  }
  if (d->bw_cap < n - 1 && now_ms >= d->bw_hold_ms) {
    d->bw_cap++;
    d->bw_hold_ms = now_ms + UP_HOLD_MS;
    d->bw_up_ms = now_ms;
  }
}

/* The highest rank of t's layers (order: layer_order()) that d may get
 * under `cap` (a rank): live (a packet in the last second, and its
 * publisher not told to stop it; with now_ms 0, any the publisher offered:
 * one it stopped because nobody took it, or one it has not started yet,
 * counts) and within the subscriber's request
 * (quality, max height), but the lowest such one in any case. -1 if there
 * is none. */
static int top_rank(const sfu_track_t *t, const sfu_downtrack_t *d, const int *order, int n,
                    int cap, uint64_t now_ms) {
  int best = -1;
  for (int i = 0; i < n; i++) {
    const sfu_layer_t *l = &t->layers[order[i]];
    int live = !now_ms || (l->ssrc && l->last_ms && now_ms - l->last_ms < 1000 &&
                           t->wanted_told & 1u << order[i]); /* (not stopped by dynacast) */
    if (!live) continue;
    if (best >= 0 && (i > d->max_layer || i > cap || (d->max_height && l->height > d->max_height)))
      break;
    best = i;
  }
  return best;
}

/* The layer d should get: the highest that the subscriber asked for, that
 * its bandwidth allows (bw_cap: from its estimate, allocate(), or else
 * from its REMB, bandwidth_bound()), and that the publisher sends now. */
static int want_layer(sfu_track_t *t, sfu_downtrack_t *d, uint64_t now_ms) {
  int order[SFU_MAX_LAYERS], n = layer_order(t, order);
  if (!d->sub->cc) bandwidth_bound(d, t, order, n, now_ms);
  int r = top_rank(t, d, order, n, d->bw_cap, now_ms);
  return r >= 0 ? order[r] : d->target;
}

/* --- a subscriber's estimate shared out ------------------------------------ */

/* The highest spatial layer of t (one stream of them: SVC) that d asks
 * for: the quality's, and with the layers' sizes (a Dependency
 * Descriptor's structure may give them; VP9's are not kept) the highest
 * within max_height. */
static int svc_top(const sfu_track_t *t, const sfu_downtrack_t *d) {
  int top = d->max_layer < t->svc_layers - 1 ? d->max_layer : t->svc_layers - 1;
  const sfu_dd_structure_t *st = t->dd && t->dd->cur >= 0 ? dd_structure(t) : NULL;
  while (top > 0 && d->max_height && st && st->has_resolutions && top <= st->max_sid &&
         st->height[top] > d->max_height)
    top--;
  return top;
}

/* What spatial layers 0..sid of l cost, bits/s: their rates over the last
 * second (0 before any was measured). */
static uint32_t svc_cost(const sfu_layer_t *l, int sid) {
  uint32_t c = 0;
  for (int i = 0; i <= sid && i < SFU_MAX_LAYERS; i++) c += l->sid_bps[i];
  return c;
}

/* What layer k (of rank `rank`) of t costs, bits/s: its rate over the last
 * second; before one was measured a guess that grows with its rank; and
 * nothing for a layer never sent (the publisher has not started it, or
 * stopped it before it was measured): counted as free it is wanted, and
 * once sent, measured. */
static uint32_t layer_cost(const sfu_track_t *t, int k, int rank) {
  const sfu_layer_t *l = &t->layers[k];
  return l->bitrate_bps ? l->bitrate_bps : l->last_ms ? 150000u << (2 * rank) : 0;
}

/* What layer l's frames of temporal layers 0..tid cost, bits/s (VP8, or
 * AV1 and H.264 with the Dependency Descriptor, with temporal layers). */
static uint32_t tid_cost(const sfu_layer_t *l, int tid) {
  uint32_t c = 0;
  for (int i = 0; i <= tid && i < SFU_MAX_TIDS; i++) c += l->tid_bps[i];
  return c;
}

/* The most temporal layers of l that fit in `left` (below all of them),
 * -1 if l has none measured or not even its base fits. */
static int fit_tid(const sfu_layer_t *l, double left) {
  int top = -1;
  for (int i = 0; i < SFU_MAX_TIDS; i++)
    if (l->tid_bps[i]) top = i;
  for (int i = top - 1; i >= 0; i--)
    if (tid_cost(l, i) <= left) return i;
  return -1;
}

/* Which videos a subscriber keeps first: 0 before 1 before 2. Screen
 * shares, the cameras of those speaking, the others. */
#define PRIORITIES 3
static int video_priority(const sfu_downtrack_t *d) {
  return d->track->source == SFU_SOURCE_SCREEN ? 0 : d->track->owner->speaking ? 1 : 2;
}

/* Probing: once the last probe's result is in (or it is overdue), another
 * if the allocation left one of p's videos short (below the layer it
 * would take, or paused): a cluster of padding at twice the estimate (no
 * more than the videos want with headroom, a quarter over), sent over
 * PROBE_TICKS feedback ticks. A probe that found room is followed by the
 * next soon; one that did not waits longer each time. */
static void maybe_probe(sfu_room_t *room, sfu_participant_t *p, uint64_t now) {
  sfu_cc_t *cc = p->cc;
  if (cc->probe_ticks > 0) return;
  if (cc->bwe.probes_ok > cc->probes_ok) {
    cc->probe_fails = 0;
    cc->next_probe_ms = now + PROBE_AGAIN_MS;
  } else if (cc->bwe.probes_failed > cc->probes_failed) {
    int shift = cc->probe_fails < 4 ? cc->probe_fails : 4;
    uint64_t wait = (uint64_t)PROBE_BACKOFF_MS << shift;
    cc->next_probe_ms = now + (wait < PROBE_BACKOFF_MAX_MS ? wait : PROBE_BACKOFF_MAX_MS);
    cc->probe_fails++;
  }
  cc->probes_ok = cc->bwe.probes_ok;
  cc->probes_failed = cc->bwe.probes_failed;
  uint64_t est = sfu_bwe_estimate(&cc->bwe),
           want = (uint64_t)(cc->desired_bps / UP_HEADROOM) * 5 / 4;
  if (!cc->short_of || now < cc->next_probe_ms || !probe_carrier(p)) return;
  /* not into a queue that just overflowed: after a cut or under loss --
   * unless no feedback came for a while (its videos paused, say), and the
   * state it left says nothing about the path now */
  int fresh = room->now_us - cc->bwe.last_update_us < FB_STALE_US;
  if (fresh && (cc->bwe.loss >= 0.02 || cc->bwe.signal == SFU_BWE_OVERUSE ||
                room->now_us - cc->bwe.last_decrease_us < PROBE_CALM_US ||
                room->now_us - cc->bwe.last_loss_cut_us < PROBE_CALM_US))
    return;
  uint64_t target = est * 2 < want ? est * 2 : want;
  uint64_t per_tick = target * (SFU_ROOM_FB_TICK_US / 1000) / 8000; /* bytes */
  uint64_t pkts = (per_tick + PROBE_PAD - 1) / PROBE_PAD;
  if (pkts > PROBE_MAX_PKTS) pkts = PROBE_MAX_PKTS;
  cc->probe_pad = (uint32_t)pkts * PROBE_PAD;
  cc->probe_id = (uint8_t)(cc->probe_id % 255 + 1);
  cc->probe_ticks = PROBE_TICKS;
  sfu_bwe_probe_begin(&cc->bwe, cc->probe_id, (int)pkts * PROBE_TICKS);
  cc->next_probe_ms = now + 1000; /* its result is in by then */
  room->c.probes++;
}

/* Shares subscriber p's estimate among the videos it receives, by
 * priority: first the lowest layer of each in turn (those that have not
 * fitted for PAUSE_AFTER_MS are paused), then, in the same order, as high
 * a layer as what is left allows (simulcast layers; or the spatial layers
 * of one SVC stream, svc_bw). A video resumed or a layer taken higher must fit in 90 %
 * of what is left, so that an estimate close to a layer's cost does not
 * make it flap. Audio is neither counted nor paused. A video paused is
 * not resent (NACKs for it are not answered). */
static void allocate(sfu_room_t *room, sfu_participant_t *p, uint64_t now) {
  sfu_cc_t *cc = p->cc;
  double left = sfu_bwe_estimate(&cc->bwe);
  uint64_t desired = 0, given = 0;
  int short_of = 0;
  for (int pass = 0; pass < 2; pass++)
    for (int prio = 0; prio < PRIORITIES; prio++)
      for (int i = 0; i < p->down.n; i++) {
        sfu_downtrack_t *d = p->down.items[i];
        sfu_track_t *t = d->track;
        if (!t || t->kind != SFU_KIND_VIDEO || !d->negotiated || d->paused ||
            video_priority(d) != prio)
          continue;
        int order[SFU_MAX_LAYERS], n = layer_order(t, order), cur = -1;
        /* what is sent now at the least; what would be wanted at the
         * most, even a layer stopped for want of takers (dynacast) */
        int lo = top_rank(t, d, order, n, -1, now), hi = top_rank(t, d, order, n, n, 0);
        /* paused, and so stopped by its publisher once nobody else took
         * it (dynacast): judged on what its lowest layer cost when sent */
        if (lo < 0 && d->bw_paused) lo = top_rank(t, d, order, n, -1, 0);
        if (lo < 0) continue; /* nothing sent: nothing to share */
        for (int k = 0; k < n; k++)
          if (order[k] == d->layer) cur = k;
        /* one stream of spatial layers (SVC), measured: its ranks are
         * those, each costing the ones below it too */
        const sfu_layer_t *sl = &t->layers[order[lo]];
        int svc = t->svc_layers > 1 && svc_cost(sl, 0) > 0, shi = svc ? svc_top(t, d) : 0;
        uint32_t base = svc ? svc_cost(sl, 0) : layer_cost(t, order[lo], lo);
        if (pass == 0) {
          desired += svc ? svc_cost(sl, shi) : layer_cost(t, order[hi], hi);
          int tid = svc ? -1 : fit_tid(sl, left);
          d->tid_target = SFU_MAX_TIDS - 1;
          if (!svc) d->svc_bw = SFU_MAX_LAYERS - 1;
          if (base > left && tid >= 0) { /* fewer frames of the lowest layer */
            d->tid_target = tid;
            base = tid_cost(&t->layers[order[lo]], tid);
          }
          if ((d->bw_paused ? base / UP_HEADROOM : base) > left) {
            /* paused once it has not fitted for a while: an estimate
             * just cut deep by a burst of loss comes back up; at once if
             * videos before it are kept and it costs more than the whole
             * estimate just cut: its packets would only fill the queue
             * that loses theirs (and cut the estimate below them) */
            if (!d->bw_short_ms) d->bw_short_ms = now;
            if (d->bw_paused || now - d->bw_short_ms >= PAUSE_AFTER_MS ||
                (given && base > sfu_bwe_estimate(&cc->bwe) &&
                 room->now_us - cc->bwe.last_decrease_us < PROBE_CALM_US)) {
              if (!d->bw_paused) room->c.bw_pauses++;
              d->bw_paused = 1;
              short_of = 1;
              continue;
            }
          } else {
            d->bw_short_ms = 0;
          }
          d->bw_paused = 0;
          d->bw_cap = lo;
          left -= base;
          given += base;
          continue;
        }
        if (d->bw_paused) continue;
        if (svc) { /* as many spatial layers as fit */
          d->svc_bw = 0;
          for (int sid = shi; sid > 0; sid--) {
            double more = (double)svc_cost(sl, sid) - base;
            if ((sid > d->svc_cur ? more / UP_HEADROOM : more) <= left) {
              d->svc_bw = sid;
              left -= more;
              given += (uint64_t)more;
              break;
            }
          }
          short_of |= d->svc_bw < shi;
          continue;
        }
        for (int cap = hi; cap > lo; cap--) {
          int r = top_rank(t, d, order, n, cap, 0);
          if (r <= lo) break;
          double more = (double)layer_cost(t, order[r], r) - base;
          if ((r > cur ? more / UP_HEADROOM : more) <= left) {
            d->bw_cap = r;
            left -= more;
            given += (uint64_t)more;
            break;
          }
          cap = r;
        }
        short_of |= d->bw_cap < hi;
        /* Going down because the current layer costs more than the whole
         * estimate: its packets only fill the queue that loses them (and
         * the target's keyframe behind them), so none is sent until that
         * keyframe; the picture would freeze either way. */
        d->shed = cur > d->bw_cap &&
                  layer_cost(t, order[cur], cur) > sfu_bwe_estimate(&cc->bwe);
      }
  cc->desired_bps = desired > UINT32_MAX ? UINT32_MAX : (uint32_t)desired;
  cc->allocated_bps = given > UINT32_MAX ? UINT32_MAX : (uint32_t)given;
  cc->short_of = short_of;
  maybe_probe(room, p, now);
}

/* --- dynacast: publishers send only the layers someone takes -------------- */

/* The layer d would take were every layer sent (its request and its
 * bandwidth bound, not what is live), -1 for none: a paused video. */
static int wish(const sfu_track_t *t, const sfu_downtrack_t *d) {
  int order[SFU_MAX_LAYERS], n = layer_order(t, order), r = 0;
  if (!d->negotiated || d->paused || d->bw_paused) return -1;
  for (int i = 1; i < n; i++) {
    const sfu_layer_t *l = &t->layers[order[i]];
    if (i > d->max_layer || i > d->bw_cap || (d->max_height && l->height > d->max_height))
      break;
    r = i;
  }
  return order[r];
}

/* Tells t's publisher which of its layers someone takes, when that
 * changes: a layer gains a taker at once, loses its last one after
 * room->dynacast_stop_ms (a subscriber that comes back within seconds
 * finds it still sent). The lowest layer is taken whenever anyone takes
 * the video: a subscriber whose bandwidth drops falls back on it without
 * waiting for an encoder to start. With links to other processes of the
 * call, every layer is taken (their subscribers are not known here). */
static void dynacast(sfu_room_t *room, sfu_track_t *t, uint64_t now) {
  unsigned all = (1u << t->nlayers) - 1, want = room->links ? all : 0, told = t->wanted_told & all;
  int order[SFU_MAX_LAYERS];
  layer_order(t, order);
  for (int i = 0; i < t->down.n && want != all; i++) {
    const sfu_downtrack_t *d = t->down.items[i];
    int k = wish(t, d);
    if (k < 0) continue;
    /* and the lowest, to fall back on; and the one it gets now while the
     * wished one is not sent (a layer the publisher never sends, as
     * Chrome's top rid for a small capture, would leave it nothing) */
    want |= 1u << k | 1u << order[0];
    if (d->target >= 0 && d->target < t->nlayers) want |= 1u << d->target;
  }
  unsigned next = told;
  for (int k = 0; k < t->nlayers; k++) {
    if (want & 1u << k) {
      t->unwanted_ms[k] = 0;
      next |= 1u << k;
      continue;
    }
    if (!t->unwanted_ms[k]) t->unwanted_ms[k] = now;
    if (now - t->unwanted_ms[k] >= room->dynacast_stop_ms) next &= ~(1u << k);
  }
  /* the first time in any case: a publisher that moved here may have
   * stopped layers the room it left did not want */
  if (next == told && t->wanted_sent) return;
  t->wanted_told = next;
  t->wanted_sent = 1;
  json_t *rids = json_array();
  for (int k = 0; k < t->nlayers; k++)
    if (next & 1u << k && t->layers[k].rid[0])
      json_array_append_new(rids, json_string(t->layers[k].rid));
  sfu_room_send(room, t->owner,
                json_pack("{s:s, s:s, s:s, s:b, s:o}", "type", "subscribed_layers", "track_id",
                          t->id, "mid", t->mid, "active", next != 0, "rids", rids));
  room->c.dynacast_msgs++;
}

void sfu_fwd_layers_tick(sfu_room_t *room) {
  uint64_t ms = now_ms(room);
  for (sfu_participant_t *p = room->participants; p; p = p->next) {
    if (p->cc && !p->via) allocate(room, p, ms);
    for (int i = 0; i < p->down.n; i++) {
      sfu_downtrack_t *d = p->down.items[i];
      sfu_track_t *t = d->track;
      if (!t || t->kind != SFU_KIND_VIDEO || !d->negotiated) continue;
      if (d->paused || d->bw_paused) {
        d->layer = -1; /* resumes at a keyframe, numbering continued */
        continue;
      }
      if (t->nlayers > 1) d->target = want_layer(t, d, ms);
      if (d->target == d->layer) d->shed = 0;
      /* SVC: the spatial layer of the quality asked for (svc_top()),
       * no higher than its estimate allows */
      if (t->svc_layers > 1) {
        int top = svc_top(t, d);
        d->svc_target = top < d->svc_bw ? top : d->svc_bw;
      }
      /* one stream of temporal layers only (AV1 or H.264 L1T3, VP8
       * without simulcast): the quality picks how many (low: the base) */
      d->tid_quality = SFU_MAX_TIDS - 1;
      if (t->nlayers == 1 && t->svc_layers <= 1 && t->tid_layers > 1 &&
          d->max_layer < SFU_MAX_LAYERS - 1)
        d->tid_quality = d->max_layer;
      /* A switch waits for a keyframe of the target (an SVC one up too); a
       * subscriber that started mid-stream cannot decode before one. */
      if (d->target != d->layer || !d->keyed ||
          (t->svc_layers > 1 && d->svc_target > d->svc_cur))
        sfu_fwd_request_keyframe(room, t, d->target);
    }
  }
  /* after the layer choices: what they want of each publisher */
  for (sfu_participant_t *p = room->participants; p; p = p->next) {
    if (p->via || !p->tp_ready) continue; /* a remote publisher's process tells it */
    if (p->video) dynacast(room, p->video, ms);
    if (p->screen) dynacast(room, p->screen, ms);
  }
}

/* A subscriber's answer kept the transport-wide number (extension id
 * `ext`, 0 = not): its estimator starts. */
void sfu_fwd_twcc_out(sfu_participant_t *p, int ext) {
  p->twcc_out_ext = ext > 0 && ext < 15 ? ext : 0;
  if (!p->twcc_out_ext || p->cc) return;
  if ((p->cc = calloc(1, sizeof(*p->cc))) == NULL) {
    p->twcc_out_ext = 0;
    return;
  }
  sfu_bwe_init(&p->cc->bwe, BWE_START_BPS, BWE_MIN_BPS, BWE_MAX_BPS);
}

void sfu_fwd_twcc_free(sfu_participant_t *p) {
  free(p->cc);
  p->cc = NULL;
  free(p->twcc_rx);
  p->twcc_rx = NULL;
  p->twcc_out_ext = p->twcc_in_ext = 0;
}

/* --- RTCP out ------------------------------------------------------------ */

static void send_rtcp(sfu_room_t *room, sfu_participant_t *p, int n) {
  if (n <= 0) return;
  if (send_pkt(room, p, 1, (size_t)n))
    room->c.drop_send++;
  else
    room->c.rtcp_out++;
}

static void receiver_report(sfu_room_t *room, sfu_participant_t *p, sfu_layer_t *l) {
  sfu_rx_stats_t *rx = &l->rx;
  sfu_rtcp_report_t rb;
  uint64_t expected = rx->max_seq - rx->base_seq + 1;
  uint64_t exp_int = expected - rx->expected_prior, rec_int = rx->packets - rx->received_prior;
  int64_t lost_int = (int64_t)exp_int - (int64_t)rec_int;
  int64_t lost = (int64_t)expected - (int64_t)rx->packets;

  memset(&rb, 0, sizeof(rb));
  rb.ssrc = l->ssrc;
  rb.fraction_lost = exp_int && lost_int > 0 ? (uint8_t)((lost_int << 8) / (int64_t)exp_int) : 0;
  rb.cumulative_lost = (int32_t)(lost > 0x7fffff ? 0x7fffff : lost < -0x800000 ? -0x800000 : lost);
  rb.ext_highest_seq = sfu_seq_rtcp_ext(rx->max_seq);
  rb.jitter = (uint32_t)rx->jitter;
  if (rx->sr_arrival_us) {
    rb.lsr = rx->sr_ntp_mid;
    rb.dlsr = (uint32_t)((room->now_us - rx->sr_arrival_us) * 65536 / 1000000);
  }
  rx->expected_prior = expected;
  rx->received_prior = rx->packets;
  int n = sfu_rtcp_write_rr(room->scratch, sizeof(room->scratch) - SFU_SRTP_TRAILER,
                            p->rtcp_ssrc, &rb, 1);
  if (n > 0) {
    int m = sfu_rtcp_write_sdes_cname(room->scratch + n,
                                      sizeof(room->scratch) - SFU_SRTP_TRAILER - (size_t)n,
                                      p->rtcp_ssrc, "sfu");
    send_rtcp(room, p, m > 0 ? n + m : n);
  }
}

static void sender_report(sfu_room_t *room, sfu_participant_t *p, sfu_downtrack_t *d,
                          uint64_t now_wall_us) {
  sfu_rtcp_sr_t sr;
  memset(&sr, 0, sizeof(sr));
  sr.ssrc = d->ssrc;
  const sfu_layer_t *l = d->track && d->track->nlayers
                             ? &d->track->layers[d->layer >= 0 ? d->layer : 0] : NULL;
  if (l && l->rx.sr_arrival_us) {
    /* The publisher's clock mapping, carried over: the subscriber aligns
     * this track with the publisher's others (lip sync) as if direct. */
    uint64_t el = room->now_us - l->rx.sr_arrival_us;
    sr.ntp = l->sr_ntp + (el << 32) / 1000000;
    sr.rtp_ts = l->sr_rtp + (uint32_t)(el * (uint64_t)d->codec.clock / 1000000) +
                (d->kind == SFU_KIND_VIDEO ? d->ts_offset : 0);
  } else {
    sr.ntp = sfu_ntp_from_us((int64_t)now_wall_us);
    sr.rtp_ts = d->last_ts +
                (uint32_t)((now_wall_us - d->last_send_us) * (uint64_t)d->codec.clock / 1000000);
  }
  sr.packets = (uint32_t)d->packets;
  sr.octets = (uint32_t)d->octets;
  size_t cap = sizeof(room->scratch) - SFU_SRTP_TRAILER;
  int n = sfu_rtcp_write_sr(room->scratch, cap, &sr);
  if (n > 0) {
    int m = sfu_rtcp_write_sdes_cname(room->scratch + n, cap - (size_t)n, d->ssrc, d->owner_sid);
    send_rtcp(room, p, m > 0 ? n + m : n);
    d->sr_mid[1] = d->sr_mid[0], d->sr_us[1] = d->sr_us[0];
    d->sr_mid[0] = sfu_ntp_mid32(sr.ntp), d->sr_us[0] = room->now_us;
  }
}

/* A REMB-only subscriber's video gets an SR every QUEUE_SR_MS, not every
 * second: each round trip its reports give back measures the queue on its
 * downlink as that SR met it (bandwidth_bound()). */
static int queue_sr(const sfu_participant_t *p, const sfu_downtrack_t *d) {
  return !p->cc && d->kind == SFU_KIND_VIDEO;
}

/* REMB to a video publisher: the most the room takes from it, for its
 * camera and screen share together (one estimate covers every SSRC it
 * lists). It bounds the publisher's own estimate (which still backs off
 * on loss), so that a browser does not wait for its slow loss-based
 * ramp-up before it sends its top simulcast layer. */
static void publisher_remb(sfu_room_t *room, sfu_participant_t *p) {
  uint32_t ssrcs[2 * SFU_MAX_LAYERS];
  int n = 0;
  for (int v = 0; v < 2; v++) {
    const sfu_track_t *t = v ? p->screen : p->video;
    for (int k = 0; t && k < t->nlayers; k++)
      if (t->layers[k].ssrc) ssrcs[n++] = t->layers[k].ssrc;
  }
  if (n == 0) return;
  send_rtcp(room, p, sfu_rtcp_write_remb(room->scratch, sizeof(room->scratch) - SFU_SRTP_TRAILER,
                                         p->rtcp_ssrc, PUBLISH_MAX_BPS, ssrcs, n));
}

void sfu_fwd_send_reports(sfu_room_t *room) {
  uint64_t now = wall_us(room);
  for (sfu_participant_t *p = room->participants; p; p = p->next) {
    if (!p->tp_ready || p->via) continue; /* a remote publisher's process reports */
    if (p->video || p->screen) publisher_remb(room, p);
    sfu_track_t *ts[SFU_TRACK_SLOTS];
    sfu_participant_tracks(p, ts);
    for (int i = 0; i < SFU_TRACK_SLOTS; i++)
      for (int k = 0; ts[i] && k < ts[i]->nlayers; k++)
        if (ts[i]->layers[k].rx.packets) receiver_report(room, p, &ts[i]->layers[k]);
    for (int i = 0; i < p->down.n; i++)
      if (p->down.items[i]->negotiated && p->down.items[i]->packets && !queue_sr(p, p->down.items[i]))
        sender_report(room, p, p->down.items[i], now);
  }
}

/* (through the videos' down-tracks: an audio-only room costs nothing) */
void sfu_fwd_send_queue_srs(sfu_room_t *room) {
  uint64_t now = now_ms(room);
  for (sfu_participant_t *p = room->participants; p; p = p->next) {
    sfu_track_t *ts[SFU_TRACK_SLOTS];
    sfu_participant_tracks(p, ts);
    for (int i = 0; i < SFU_TRACK_SLOTS; i++)
      for (int k = 0; ts[i] && ts[i]->kind == SFU_KIND_VIDEO && k < ts[i]->down.n; k++) {
        sfu_downtrack_t *d = ts[i]->down.items[k];
        sfu_participant_t *sub = d->sub;
        if (!sub->tp_ready || sub->via || !d->negotiated || !d->packets || !queue_sr(sub, d) ||
            now < d->next_sr_ms)
          continue;
        sender_report(room, sub, d, wall_us(room));
        d->next_sr_ms = now + QUEUE_SR_MS;
      }
  }
}
