/*
 * verify.c -- receive-side checks of sfu-replay (verify.h).
 */
#include <string.h>

#include "tools/replay/verify.h"

#define MASK (SFU_SENTLOG_SIZE - 1)

/* FNV-1a, 64-bit: payloads are compared, not defended against. */
uint64_t sfu_payload_hash(const uint8_t *p, size_t len) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < len; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
  return h ^ len;
}

static const uint8_t *payload(const sfu_rtp_t *r) { return r->data + r->payload_off; }

void sfu_sentlog_put(sfu_sentlog_t *log, const sfu_rtp_t *r, uint64_t now_us) {
  uint64_t ext = sfu_seq_unwrap(&log->unwrap, r->seq);
  sfu_sent_t *e = &log->ring[ext & MASK];
  e->ext = ext + 1;
  e->hash = sfu_payload_hash(payload(r), r->payload_len);
  e->send_us = now_us;
  e->n = log->sent++;
}

void sfu_rxcheck_init(sfu_rxcheck_t *c, sfu_sentlog_t *log, sfu_hist_t *lat, int clock) {
  memset(c, 0, sizeof(*c));
  c->log = log;
  c->lat = lat;
  c->clock = clock > 0 ? clock : 90000;
}

void sfu_rxcheck_count_by_second(sfu_rxcheck_t *c, sfu_rxsec_t *by_sec) { c->by_sec = by_sec; }

/* The newest logged packet with this payload hash, or NULL. */
static const sfu_sent_t *find_hash(const sfu_sentlog_t *log, uint64_t hash) {
  const sfu_sent_t *best = NULL;
  for (size_t i = 0; i < SFU_SENTLOG_SIZE; i++) {
    const sfu_sent_t *e = &log->ring[i];
    if (e->ext && e->hash == hash && (!best || e->n > best->n)) best = e;
  }
  return best;
}

static void mark_seen(sfu_rxcheck_t *c, uint64_t ext) {
  if (!c->matched || ext > c->max_ext) {
    uint64_t from = c->matched ? c->max_ext + 1 : ext;
    if (!c->matched || ext - from >= SFU_SENTLOG_SIZE) {
      memset(c->seen, 0, sizeof(c->seen));
      memset(c->fresh, 0, sizeof(c->fresh));
    } else {
      for (uint64_t x = from; x <= ext; x++) {
        c->seen[(x & MASK) >> 3] &= (uint8_t)~(1u << (x & 7));
        c->fresh[(x & MASK) >> 3] &= (uint8_t)~(1u << (x & 7));
      }
    }
    c->max_ext = ext;
  } else {
    c->reordered++;
  }
}

void sfu_rxcheck_packet(sfu_rxcheck_t *c, const sfu_rtp_t *r, uint64_t now_us) {
  uint64_t hash = sfu_payload_hash(payload(r), r->payload_len);
  uint64_t rext = sfu_seq_unwrap(&c->unwrap, r->seq);
  const sfu_sent_t *e = NULL;
  int switching = c->switching;

  c->received++;
  c->switching = 0;
  if (c->synced) {
    int64_t sext = (int64_t)rext - c->offset;
    const sfu_sent_t *x = sext >= 0 ? &c->log->ring[(uint64_t)sext & MASK] : NULL;
    if (x && x->ext == (uint64_t)sext + 1 && x->hash == hash) e = x;
  }
  if (!e) { /* first packet, or the offset moved: search by payload */
    e = find_hash(c->log, hash);
    if (!e) {
      c->corrupt++;
      return;
    }
    if (c->synced && !switching && (int64_t)rext - (int64_t)(e->ext - 1) != c->offset)
      c->resyncs++;
    c->offset = (int64_t)rext - (int64_t)(e->ext - 1);
    if (!c->synced) c->first_n = e->n;
    c->synced = 1;
  }
  uint64_t sext = e->ext - 1;
  if (c->matched && sext + SFU_SENTLOG_SIZE <= c->max_ext) {
    c->too_old++;
    return;
  }
  uint8_t bit = (uint8_t)(1u << (sext & 7));
  if (c->matched && sext <= c->max_ext && (c->seen[(sext & MASK) >> 3] & bit)) {
    if (c->fresh[(sext & MASK) >> 3] & bit) {
      c->duplicated++;
    } else { /* played before the switch: the new leg's copy of it */
      c->fresh[(sext & MASK) >> 3] |= bit;
      c->leg_duplicated++;
    }
    return;
  }
  if (e->n > c->last_n) c->last_n = e->n;
  mark_seen(c, sext);
  c->seen[(sext & MASK) >> 3] |= bit;
  c->fresh[(sext & MASK) >> 3] |= bit;
  c->matched++;
  sfu_hist_add(c->lat, now_us > e->send_us ? now_us - e->send_us : 0);
  if (c->by_sec && c->by_sec->start_us && e->send_us >= c->by_sec->start_us) {
    uint64_t k = (e->send_us - c->by_sec->start_us) / 1000000;
    if (k < c->by_sec->cap) c->by_sec->counts[k]++;
  }
  /* RFC 3550 A.8 jitter, in the stream's clock */
  int64_t arrival = (int64_t)(now_us * (uint64_t)c->clock / 1000000);
  int64_t transit = arrival - (int64_t)r->ts;
  if (c->have_transit) {
    int64_t d = transit - c->last_transit;
    if (d < 0) d = -d;
    c->jitter += ((double)d - c->jitter) / 16.0;
  }
  c->last_transit = transit;
  c->have_transit = 1;
}

void sfu_rxcheck_close(sfu_rxcheck_t *c) { c->closed = 1; }

uint64_t sfu_rxcheck_lost(const sfu_rxcheck_t *c) {
  if (!c->synced) return 0;
  uint64_t expected = (c->closed ? c->last_n + 1 : c->log->sent) - c->first_n;
  return expected > c->matched ? expected - c->matched : 0;
}

void sfu_rxcheck_switch(sfu_rxcheck_t *c) {
  memset(c->fresh, 0, sizeof(c->fresh));
  memset(&c->unwrap, 0, sizeof(c->unwrap)); /* the new node's sequence numbers */
  c->have_transit = 0;                      /* ... and timestamps */
  c->switching = c->synced;
  c->switches++;
}

uint64_t sfu_rxcheck_missing(const sfu_rxcheck_t *c, uint64_t from_us, uint64_t to_us) {
  uint64_t missing = 0;
  if (!c->synced) return 0; /* nothing expected before the first match */
  for (size_t i = 0; i < SFU_SENTLOG_SIZE; i++) {
    const sfu_sent_t *e = &c->log->ring[i];
    if (!e->ext || e->send_us < from_us || e->send_us > to_us) continue;
    if (e->n < c->first_n || (c->closed && e->n > c->last_n)) continue;
    uint64_t ext = e->ext - 1;
    int arrived = c->matched && ext <= c->max_ext && ext + SFU_SENTLOG_SIZE > c->max_ext &&
                  ((c->seen[(ext & MASK) >> 3] >> (ext & 7)) & 1);
    missing += !arrived;
  }
  return missing;
}

void sfu_playlog_put(sfu_playlog_t *l, uint64_t now_us) {
  l->at_us[l->n++ % SFU_PLAYLOG_SIZE] = now_us;
}

uint64_t sfu_playlog_gap(const sfu_playlog_t *l, uint64_t from_us, uint64_t to_us, int open_end,
                         uint64_t *end_us) {
  uint64_t gap = 0, end = 0, prev = 0, k = l->n > SFU_PLAYLOG_SIZE ? l->n - SFU_PLAYLOG_SIZE : 0;
  int have = 0, inside = 0;
  for (; k < l->n; k++) {
    uint64_t t = l->at_us[k % SFU_PLAYLOG_SIZE];
    if (t > to_us) break;
    if (t > from_us) {
      if (have && t - prev > gap) gap = t - prev, end = t;
      inside = 1;
    }
    prev = t;
    have = 1;
  }
  if (open_end && to_us > from_us) {
    if (inside && to_us - prev > gap) gap = to_us - prev, end = to_us;
    if (!inside) gap = to_us - from_us, end = to_us;
  }
  if (end_us) *end_us = end;
  return gap;
}

void sfu_vresume_start(sfu_vresume_t *v) { memset(v, 0, sizeof(*v)); }

void sfu_vresume_switch(sfu_vresume_t *v, uint64_t now_us) { v->switch_us = now_us; }

void sfu_vresume_packet(sfu_vresume_t *v, uint16_t seq, int keyframe, int begins, int played,
                        uint64_t now_us) {
  uint64_t ext = sfu_seq_unwrap(&v->unwrap, seq);
  if (keyframe) { /* a decoder starts again here, whatever came before */
    if (!v->key_us) v->key_us = now_us;
    v->chain = 1;
    v->max_ext = ext;
    v->holes = 0;
  } else if (v->chain && ext > v->max_ext) {
    v->holes += ext - v->max_ext - 1;
    v->max_ext = ext;
  } else if (v->chain && v->holes) { /* a late one */
    v->holes--;
  }
  if (!v->switch_us || !played || !begins) return;
  int whole = v->chain && v->holes == 0;
  if (!v->first_us) {
    v->first_us = now_us;
    v->keyed = whole;
  }
  if (!v->resume_us && whole) v->resume_us = now_us;
}

void sfu_hist_add(sfu_hist_t *h, uint64_t us) {
  if (us < 10 * SFU_HIST_FINE)
    h->fine[us / 10]++;
  else if (us < 10000 + 1000 * (uint64_t)SFU_HIST_COARSE)
    h->coarse[(us - 10000) / 1000]++;
  else
    h->over++;
  h->n++;
  if (us > h->max_us) h->max_us = us;
}

uint64_t sfu_hist_quantile(const sfu_hist_t *h, double q) {
  if (h->n == 0) return 0;
  uint64_t want = (uint64_t)(q * (double)h->n), seen = 0;
  if (want >= h->n) want = h->n - 1;
  for (int i = 0; i < SFU_HIST_FINE; i++)
    if ((seen += h->fine[i]) > want) return (uint64_t)i * 10 + 5;
  for (int i = 0; i < SFU_HIST_COARSE; i++)
    if ((seen += h->coarse[i]) > want) return 10000 + (uint64_t)i * 1000 + 500;
  return h->max_us;
}
