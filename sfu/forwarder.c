/*
 * forwarder.c -- the packet path of a room.
 *
 * RTP from a publisher (already decrypted in place by its transport):
 *
 *   parse view -> its track (by SSRC; learnt from the first packet when the
 *   SDP had no a=ssrc) -> receive statistics -> speaking level (RFC 6464
 *   extension, else a libopus decode of the payload) -> unless server-muted,
 *   for each negotiated down-track: copy header (subscriber's pt, seq,
 *   room-unique SSRC; extensions dropped) and payload into the room's
 *   scratch buffer, SRTP-protect in place with the subscriber's keys, send.
 *
 * One scratch buffer serves every copy: each is protected and handed to the
 * socket before the next is built, so nothing is allocated or queued per
 * packet. Sequence numbers pass through with a per-down-track offset that is
 * re-based when forwarding resumes after a server mute, so a subscriber
 * sees no gap.
 *
 * RTCP is terminated: the SFU reads publishers' sender reports (for LSR/DLSR)
 * and subscribers' receiver reports, and sends its own RR to each publisher
 * and SR for each down-track once a second.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "sfu/log.h"
#include "sfu/room.h"
#include "sfu/rtcp.h"
#include "sfu/sfu.h"

#define SPEAKING_EVENT_MIN_MS 200
#define CLOCK 48000 /* Opus RTP clock */

static uint64_t wall_us(void) { return (uint64_t)sfu_wall_ms() * 1000; }

/* --- tracks -------------------------------------------------------------- */

sfu_track_t *sfu_track_create(sfu_participant_t *owner) {
  sfu_track_t *t = calloc(1, sizeof(*t));
  if (!t) return NULL;
  sfu_random_hex(t->id, "TR_", 8);
  t->owner = owner;
  do
    RAND_bytes((unsigned char *)&t->out_ssrc, sizeof(t->out_ssrc));
  while (t->out_ssrc == 0);
  sfu_speaking_init(&t->speaking);
  return t;
}

void sfu_track_destroy(sfu_track_t *t) {
  if (!t) return;
  if (t->meter) sfu_opus_meter_destroy(t->meter);
  free(t->down);
  free(t);
}

int sfu_track_add_down(sfu_track_t *t, sfu_downtrack_t *d) {
  if (t->ndown == t->capdown) {
    int cap = t->capdown ? t->capdown * 2 : 8;
    sfu_downtrack_t **a = realloc(t->down, (size_t)cap * sizeof(*a));
    if (!a) return SFU_ENOMEM;
    t->down = a;
    t->capdown = cap;
  }
  t->down[t->ndown++] = d;
  return 0;
}

/* --- RTP in ------------------------------------------------------------------ */

static void update_rx(sfu_rx_stats_t *rx, const sfu_rtp_t *r, uint64_t now_us) {
  uint64_t ext = sfu_seq_unwrap(&rx->unwrap, r->seq);
  int64_t arrival = (int64_t)(now_us * CLOCK / 1000000);
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

static void update_speaking(sfu_room_t *room, sfu_track_t *t, const sfu_rtp_t *r,
                            uint64_t now_ms) {
  int voice = -1, level = -1;
  if (t->level_ext && sfu_rtp_audio_level(r, t->level_ext, &voice, &level) == 1) {
    /* The client measures for us. Its V bit is ignored: it means something
     * only with vad=on, and some senders (aiortc) always set it to 0. */
    voice = -1;
  } else {
    if (!t->meter && sfu_opus_meter_create(&t->meter) != 0) return;
    level = sfu_opus_meter_feed(t->meter, r->data + r->payload_off, r->payload_len);
    if (level < 0) return;
  }
  if (sfu_speaking_update(&t->speaking, level, voice, now_ms)) room->speaking_dirty = 1;
}

static const uint8_t no_ext[15]; /* down-tracks negotiate no extensions */

void sfu_fwd_on_rtp(sfu_room_t *room, sfu_participant_t *p, uint8_t *buf, size_t len) {
  sfu_rtp_t r;
  sfu_track_t *t = p->audio;

  if (sfu_rtp_parse(buf, len, &r) != 0) {
    room->c.drop_malformed++;
    return;
  }
  room->c.rtp_in++;
  if (!t || r.pt != t->pt || (t->ssrc && r.ssrc != t->ssrc)) {
    room->c.drop_unknown_ssrc++;
    return;
  }
  if (!t->ssrc) t->ssrc = r.ssrc; /* no a=ssrc in the offer: learn it */
  uint64_t now_us = sfu_now_us();
  update_rx(&t->rx, &r, now_us);
  update_speaking(room, t, &r, now_us / 1000);
  if (p->server_muted) {
    room->c.drop_muted++;
    t->dropped_muted++;
    return;
  }
  uint64_t wall = 0;
  for (int i = 0; i < t->ndown; i++) {
    sfu_downtrack_t *d = t->down[i];
    sfu_transport_t *tp = d->sub->transport;
    if (!d->negotiated || !tp || !sfu_transport_ready(tp)) continue;
    if (!d->started || d->resync) {
      d->seq_offset = d->started ? (uint16_t)(d->last_seq + 1 - r.seq) : 0;
      d->started = 1;
      d->resync = 0;
    }
    uint16_t seq = (uint16_t)(r.seq + d->seq_offset);
    int n = sfu_rtp_forward_copy(&r, d->pt, seq, r.ts, d->ssrc, no_ext, room->scratch,
                                 sizeof(room->scratch) - SFU_SRTP_TRAILER);
    if (n < 0 || sfu_transport_send_rtp(tp, room->scratch, (size_t)n, sizeof(room->scratch))) {
      room->c.drop_send++;
      continue;
    }
    room->c.rtp_out++;
    if ((int16_t)(seq - d->last_seq) > 0 || d->packets == 0) {
      d->last_seq = seq;
      d->last_ts = r.ts;
      d->last_send_us = wall ? wall : (wall = wall_us());
    }
    d->packets++;
    d->octets += r.payload_len;
  }
}

/* --- RTCP in ------------------------------------------------------------ */

void sfu_fwd_on_rtcp(sfu_room_t *room, sfu_participant_t *p, uint8_t *buf, size_t len) {
  sfu_rtcp_iter_t it;
  sfu_rtcp_hdr_t h;
  int rv;

  room->c.rtcp_in++;
  sfu_rtcp_iter_init(&it, buf, len);
  while ((rv = sfu_rtcp_next(&it, &h)) == 1) {
    if (h.pt == 200 && p->audio && h.ssrc == p->audio->ssrc) {
      sfu_rtcp_sr_t sr;
      if (sfu_rtcp_parse_sr(&h, &sr) == 0) {
        p->audio->rx.sr_ntp_mid = sfu_ntp_mid32(sr.ntp);
        p->audio->rx.sr_arrival_us = sfu_now_us();
      }
    }
    /* RR, SDES, BYE, feedback: read by later versions (NACK, PLI for video) */
  }
  if (rv < 0) room->c.drop_malformed++;
}

/* --- RTCP out ------------------------------------------------------------ */

static void send_rtcp(sfu_room_t *room, sfu_participant_t *p, int n) {
  if (n <= 0) return;
  if (sfu_transport_send_rtcp(p->transport, room->scratch, (size_t)n, sizeof(room->scratch)))
    room->c.drop_send++;
  else
    room->c.rtcp_out++;
}

static void receiver_report(sfu_room_t *room, sfu_participant_t *p) {
  sfu_track_t *t = p->audio;
  sfu_rx_stats_t *rx = &t->rx;
  sfu_rtcp_report_t rb;
  uint64_t expected = rx->max_seq - rx->base_seq + 1;
  uint64_t exp_int = expected - rx->expected_prior, rec_int = rx->packets - rx->received_prior;
  int64_t lost_int = (int64_t)exp_int - (int64_t)rec_int;
  int64_t lost = (int64_t)expected - (int64_t)rx->packets;

  memset(&rb, 0, sizeof(rb));
  rb.ssrc = t->ssrc;
  rb.fraction_lost = exp_int && lost_int > 0 ? (uint8_t)((lost_int << 8) / (int64_t)exp_int) : 0;
  rb.cumulative_lost = (int32_t)(lost > 0x7fffff ? 0x7fffff : lost < -0x800000 ? -0x800000 : lost);
  rb.ext_highest_seq = sfu_seq_rtcp_ext(rx->max_seq);
  rb.jitter = (uint32_t)rx->jitter;
  if (rx->sr_arrival_us) {
    rb.lsr = rx->sr_ntp_mid;
    rb.dlsr = (uint32_t)((sfu_now_us() - rx->sr_arrival_us) * 65536 / 1000000);
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
  sr.ntp = sfu_ntp_from_us((int64_t)now_wall_us);
  sr.rtp_ts = d->last_ts + (uint32_t)((now_wall_us - d->last_send_us) * CLOCK / 1000000);
  sr.packets = (uint32_t)d->packets;
  sr.octets = (uint32_t)d->octets;
  size_t cap = sizeof(room->scratch) - SFU_SRTP_TRAILER;
  int n = sfu_rtcp_write_sr(room->scratch, cap, &sr);
  if (n > 0) {
    int m = sfu_rtcp_write_sdes_cname(room->scratch + n, cap - (size_t)n, d->ssrc, d->owner_sid);
    send_rtcp(room, p, m > 0 ? n + m : n);
  }
}

void sfu_fwd_send_reports(sfu_room_t *room) {
  uint64_t now = wall_us();
  for (sfu_participant_t *p = room->participants; p; p = p->next) {
    if (!p->transport || !sfu_transport_ready(p->transport)) continue;
    if (p->audio && p->audio->rx.packets) receiver_report(room, p);
    for (int i = 0; i < p->ndown; i++)
      if (p->down[i]->negotiated && p->down[i]->packets) sender_report(room, p, p->down[i], now);
  }
}

/* --- speaking ------------------------------------------------------------ */

void sfu_fwd_speaking_tick(sfu_room_t *room, uint64_t now_ms) {
  for (sfu_participant_t *p = room->participants; p; p = p->next)
    if (p->audio && sfu_speaking_tick(&p->audio->speaking, now_ms)) room->speaking_dirty = 1;
  if (!room->speaking_dirty || now_ms - room->last_speaking_ms < SPEAKING_EVENT_MIN_MS) return;
  int changed = 0;
  json_t *speakers = json_array();
  for (sfu_participant_t *p = room->participants; p; p = p->next) {
    int on = p->audio && !p->server_muted && sfu_speaking_active(&p->audio->speaking);
    changed |= on != p->speaking;
    p->speaking = on;
    if (on)
      json_array_append_new(speakers, json_pack("{s:s, s:s, s:f}", "sid", p->sid, "identity",
                                                p->identity,
                                                "level", (double)sfu_speaking_level(&p->audio->speaking)));
  }
  room->speaking_dirty = 0;
  if (!changed) {
    json_decref(speakers);
    return;
  }
  room->last_speaking_ms = now_ms;
  sfu_room_broadcast(room, NULL, json_pack("{s:s, s:o}", "type", "speaking", "speakers", speakers));
}
