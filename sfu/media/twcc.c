/*
 * twcc.c -- transport-wide sequence numbers: arrivals into feedback (we
 * receive), feedback into each packet's fate (we send). See twcc.h.
 */
#include "sfu/media/twcc.h"

#include <string.h>

#include "sfu/base/sfu.h"

#define MASK (SFU_TWCC_SLOTS - 1)
#define TICK_US 250        /* receive deltas are in 250 us units */
#define REF_US 64000       /* the reference time is in 64 ms units */

/* The full time of a stamp that holds the low 32 bits of a time within
 * 35 minutes of now (an arrival stamp may be 1 us ahead: see rx_note). */
static int64_t widen(uint64_t now_us, uint32_t low) {
  return (int64_t)now_us - (int64_t)(int32_t)((uint32_t)now_us - low);
}

/* ---- receive side ------------------------------------------------------- */

void sfu_twcc_rx_init(sfu_twcc_rx_t *rx) {
  memset(rx, 0, sizeof(*rx));
  rx->next = -1;
}

void sfu_twcc_rx_note(sfu_twcc_rx_t *rx, uint16_t seq, uint64_t now_us) {
  int64_t ext = (int64_t)sfu_seq_unwrap(&rx->unwrap, seq);
  if (rx->next < 0) rx->next = rx->max = ext;
  if (ext < rx->next) return; /* reported already (as lost): too late */
  if (ext - rx->next >= SFU_TWCC_SLOTS) rx->next = ext - SFU_TWCC_SLOTS + 1;
  rx->tag[ext & MASK] = seq;
  rx->at[ext & MASK] = (uint32_t)now_us | 1; /* never 0: 0 is "nothing" */
  if (ext > rx->max) rx->max = ext;
}

int sfu_twcc_rx_feedback(sfu_twcc_rx_t *rx, uint64_t now_us, uint32_t sender_ssrc,
                         uint32_t media_ssrc, uint8_t *buf, size_t cap) {
  sfu_rtcp_twcc_pkt_t pk[SFU_TWCC_SLOTS];
  sfu_rtcp_twcc_t t;
  /* The feedback's size is at most 20 bytes of header, 2 per 7 statuses and
   * 2 per delta, plus padding: take no more statuses than surely fit. */
  int64_t most = cap < 64 ? 0 : (int64_t)(cap - 40) * 7 / 16, tick = 0;
  int n = 0, have_ref = 0;

  if (rx->next < 0 || rx->next > rx->max || most == 0) return 0;
  memset(&t, 0, sizeof(t));
  for (int64_t s = rx->next; s <= rx->max && n < most && n < SFU_TWCC_SLOTS; s++, n++) {
    size_t i = (size_t)s & MASK;
    pk[n].received = 0;
    pk[n].delta = 0;
    if (!rx->at[i] || rx->tag[i] != (uint16_t)s) continue;
    int64_t at = widen(now_us, rx->at[i]) / TICK_US;
    if (!have_ref) {
      int64_t ref = at * TICK_US / REF_US;
      t.ref_time = (int32_t)(ref & 0xffffff);
      tick = ref * (REF_US / TICK_US);
      have_ref = 1;
    }
    if (at - tick < -32768 || at - tick > 32767) break; /* the next feedback starts here */
    pk[n].received = 1;
    pk[n].delta = (int32_t)(at - tick);
    tick = at;
    rx->at[i] = 0;
  }
  if (n == 0) return 0;
  if (!have_ref) t.ref_time = (int32_t)((now_us / REF_US) & 0xffffff);
  t.sender_ssrc = sender_ssrc;
  t.media_ssrc = media_ssrc;
  t.base_seq = (uint16_t)rx->next;
  t.fb_count = rx->fb_count;
  int len = sfu_rtcp_write_twcc(buf, cap, &t, pk, n);
  if (len <= 0) return 0;
  rx->fb_count++;
  rx->next += n;
  return len;
}

/* ---- send side ---------------------------------------------------------- */

uint16_t sfu_twcc_tx_send(sfu_twcc_tx_t *tx, uint64_t now_us, size_t size, int probe) {
  uint16_t seq = tx->next_seq++;
  tx->s[seq & MASK] = (sfu_twcc_sent_t){seq, (uint16_t)(size > 0xffff ? 0xffff : size),
                                        (uint32_t)now_us, (uint8_t)probe, 1};
  return seq;
}

int sfu_twcc_tx_feedback(sfu_twcc_tx_t *tx, const sfu_rtcp_hdr_t *h, uint64_t now_us,
                         void (*fn)(void *arg, const sfu_twcc_result_t *r), void *arg) {
  sfu_rtcp_twcc_iter_t it;
  sfu_rtcp_twcc_t t;
  sfu_rtcp_twcc_pkt_t pkt;
  int rv = sfu_rtcp_twcc_iter_init(&it, h, &t);
  if (rv != 0) return rv;
  /* The reference time as unsigned, raised by 2^32 ticks: no sum of
   * 65,535 deltas can then take an arrival below 0 (which means lost). */
  int64_t tick = (int64_t)((uint32_t)t.ref_time & 0xffffff) * (REF_US / TICK_US) +
                 (INT64_C(1) << 32);
  while (sfu_rtcp_twcc_next(&it, &pkt) == 1) {
    if (pkt.received) tick += pkt.delta;
    sfu_twcc_sent_t *e = &tx->s[pkt.seq & MASK];
    if (e->state != 1 || e->seq != pkt.seq) continue; /* not ours, or told already */
    e->state = 2;
    sfu_twcc_result_t r = {widen(now_us, e->send_us), pkt.received ? tick * TICK_US : -1,
                           e->size, e->probe};
    fn(arg, &r);
  }
  return 0;
}
