/*
 * fuzz_rtcp.c -- libFuzzer target for the RTCP compound iterator and every
 * message parser.
 *
 * Each input is one (decrypted) compound packet. Every packet the iterator
 * yields must lie inside the input and is handed to every parser, whatever
 * its type. Where a parser accepts it, the matching writer must be able to
 * say the same thing again:
 *
 *   - SR/RR: write_sr / write_rr, re-parse, fields equal;
 *   - NACK: write_nack of the expanded list, re-parse, same set of numbers;
 *   - FIR: write_fir of the first entry, re-parse, same SSRC and seq nr;
 *   - REMB: write_remb of the bitrate and SSRCs, re-parse, equal (a
 *     decoded mantissa << exponent always re-encodes exactly);
 *   - SDES: write_sdes_cname of the CNAME, re-parse, equal;
 *   - NACK, again: write_nack_fit into a small buffer (its size taken from
 *     the input) until the list is out; every packet fits, and together
 *     they name the same set; parse_nack_total's total is never below
 *     what it stored;
 *   - PLI: write_pli, re-parse, same SSRCs;
 *   - FIR: write_fir_n of every entry, re-parse, same entries;
 *   - TWCC: the cursor and parse_twcc agree; write_twcc of what the cursor
 *     returned, re-parse, same header and the same received flag and
 *     delta for every packet; matched against a send history that holds
 *     every number (sfu_twcc_tx_feedback), at most status_count packets
 *     come out, each once (the same feedback again yields none), and the
 *     estimator fed with them stays within its bounds.
 *
 * sfu_rtcp_fb_kind() must name a packet exactly when the matching parser
 * does not answer SFU_EINVAL. Any broken property aborts.
 *
 * Build by hand:
 *   clang -g -fsanitize=fuzzer,address,undefined -I. \
 *     tests/fuzz/fuzz_rtcp.c sfu/media/rtcp.c sfu/base/err.c -o /tmp/frtcp
 *   /tmp/frtcp -max_total_time=60 /tmp/scratch tests/fuzz/corpus/rtcp
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sfu/media/bwe.h"
#include "sfu/media/rtcp.h"
#include "sfu/media/twcc.h"
#include "sfu/base/sfu.h"
#include "tests/fuzz/check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_NACK 4096
#define MAX_TWCC 1024
#define MAX_FIR 256

/* The single packet a writer produced. */
static sfu_rtcp_hdr_t reframe(const uint8_t *buf, int n) {
  sfu_rtcp_iter_t it;
  sfu_rtcp_hdr_t h;

  CHECK(n > 0 && n % 4 == 0);
  sfu_rtcp_iter_init(&it, buf, (size_t)n);
  CHECK(sfu_rtcp_next(&it, &h) == 1 && h.len == (size_t)n);
  CHECK(sfu_rtcp_next(&it, &h) == 0);
  return h;
}

static void sr_roundtrip(const sfu_rtcp_hdr_t *h) {
  static uint8_t buf[28 + 31 * 24];
  sfu_rtcp_sr_t a, b;
  sfu_rtcp_hdr_t g;
  int n, i;

  if (sfu_rtcp_parse_sr(h, &a) != 0)
    return;
  CHECK(a.nreports == h->count);
  if (h->pt == SFU_RTCP_SR)
    n = sfu_rtcp_write_sr(buf, sizeof(buf), &a);
  else
    n = sfu_rtcp_write_rr(buf, sizeof(buf), a.ssrc, a.reports, a.nreports);
  g = reframe(buf, n);
  CHECK(sfu_rtcp_parse_sr(&g, &b) == 0);
  CHECK(a.ssrc == b.ssrc && a.ntp == b.ntp && a.rtp_ts == b.rtp_ts &&
        a.packets == b.packets && a.octets == b.octets &&
        a.nreports == b.nreports);
  for (i = 0; i < a.nreports; i++) {
    const sfu_rtcp_report_t *x = &a.reports[i], *y = &b.reports[i];
    CHECK(x->ssrc == y->ssrc && x->fraction_lost == y->fraction_lost &&
          x->cumulative_lost == y->cumulative_lost &&
          x->cumulative_lost >= -0x800000 && x->cumulative_lost <= 0x7fffff &&
          x->ext_highest_seq == y->ext_highest_seq && x->jitter == y->jitter &&
          x->lsr == y->lsr && x->dlsr == y->dlsr);
  }
}

static void nack_roundtrip(const sfu_rtcp_hdr_t *h) {
  static uint16_t seqs[MAX_NACK], again[MAX_NACK * 17];
  static uint8_t seen_a[8192], seen_b[8192];
  static uint8_t buf[12 + 4 * MAX_NACK];
  sfu_rtcp_hdr_t g;
  uint32_t media, media2;
  size_t fci;
  int n, m, w, i;

  n = sfu_rtcp_parse_nack(h, &media, seqs, MAX_NACK);
  if (n <= 0)
    return;
  /* only compare when the whole list fit */
  fci = (h->len - h->pad_len - 12) / 4;
  if (fci * 17 > MAX_NACK)
    return;
  w = sfu_rtcp_write_nack(buf, sizeof(buf), h->ssrc, media, seqs, n);
  g = reframe(buf, w);
  CHECK(g.ssrc == h->ssrc);
  m = sfu_rtcp_parse_nack(&g, &media2, again, (int)SFU_ARRAY_SIZE(again));
  CHECK(m > 0 && m <= n && media2 == media);
  /* no more pairs than the input had */
  CHECK((size_t)(w - 12) / 4 <= fci);
  memset(seen_a, 0, sizeof(seen_a));
  memset(seen_b, 0, sizeof(seen_b));
  for (i = 0; i < n; i++)
    seen_a[seqs[i] >> 3] |= (uint8_t)(1u << (seqs[i] & 7));
  for (i = 0; i < m; i++)
    seen_b[again[i] >> 3] |= (uint8_t)(1u << (again[i] & 7));
  CHECK(memcmp(seen_a, seen_b, sizeof(seen_a)) == 0);
}

/* The same list through write_nack_fit at a buffer of 16..76 bytes. */
static void nack_fit_roundtrip(const sfu_rtcp_hdr_t *h) {
  static uint16_t seqs[MAX_NACK], again[17 * 16];
  static uint8_t seen_a[8192], seen_b[8192];
  uint8_t buf[76];
  size_t cap = 16 + 4 * (size_t)(h->length_words % 16);
  sfu_rtcp_hdr_t g;
  uint32_t media, media2;
  int n, total, done, used, w, m, total2, i;

  n = sfu_rtcp_parse_nack_total(h, &media, seqs, MAX_NACK, &total);
  if (n < 0)
    return;
  CHECK(n > 0 && total >= n && (total == n || n == MAX_NACK));
  if (total != n)
    return;
  memset(seen_a, 0, sizeof(seen_a));
  memset(seen_b, 0, sizeof(seen_b));
  for (i = 0; i < n; i++)
    seen_a[seqs[i] >> 3] |= (uint8_t)(1u << (seqs[i] & 7));
  for (done = 0; done < n; done += used) {
    w = sfu_rtcp_write_nack_fit(buf, cap, h->ssrc, media, seqs + done,
                                n - done, &used);
    CHECK(w >= 16 && (size_t)w <= cap && used >= 1 && used <= n - done);
    CHECK(done + used == n || (size_t)w + 4 > cap);
    g = reframe(buf, w);
    CHECK(sfu_rtcp_fb_kind(&g) == SFU_RTCP_FB_NACK && g.ssrc == h->ssrc);
    m = sfu_rtcp_parse_nack_total(&g, &media2, again,
                                  (int)SFU_ARRAY_SIZE(again), &total2);
    CHECK(m > 0 && m == total2 && media2 == media);
    for (i = 0; i < m; i++)
      seen_b[again[i] >> 3] |= (uint8_t)(1u << (again[i] & 7));
  }
  CHECK(memcmp(seen_a, seen_b, sizeof(seen_a)) == 0);
}

static void pli_roundtrip(const sfu_rtcp_hdr_t *h) {
  uint32_t sender, media, sender2, media2;
  uint8_t buf[12];
  sfu_rtcp_hdr_t g;

  if (sfu_rtcp_parse_pli(h, &sender, &media) != 0)
    return;
  CHECK(sender == h->ssrc);
  g = reframe(buf, sfu_rtcp_write_pli(buf, sizeof(buf), sender, media));
  CHECK(sfu_rtcp_parse_pli(&g, &sender2, &media2) == 0);
  CHECK(sender2 == sender && media2 == media);
}

static void fir_roundtrip(const sfu_rtcp_hdr_t *h) {
  static uint32_t ssrcs[MAX_FIR], ss2[MAX_FIR];
  static uint8_t seqnr[MAX_FIR], nr2[MAX_FIR], buf[12 + 8 * MAX_FIR];
  sfu_rtcp_hdr_t g;
  int n, i;

  n = sfu_rtcp_parse_fir(h, ssrcs, seqnr, MAX_FIR);
  if (n <= 0)
    return;
  CHECK(n == MAX_FIR || (size_t)n == (h->len - h->pad_len - 12) / 8);
  g = reframe(buf, sfu_rtcp_write_fir_n(buf, sizeof(buf), h->ssrc, ssrcs,
                                        seqnr, n));
  CHECK(sfu_rtcp_parse_fir(&g, ss2, nr2, MAX_FIR) == n);
  for (i = 0; i < n; i++)
    CHECK(ss2[i] == ssrcs[i] && nr2[i] == seqnr[i]);
}

/* fb_kind names a packet exactly when its parser takes it up. */
static void kind_checks(const sfu_rtcp_hdr_t *h) {
  static uint16_t seqs[8];
  static uint32_t ss[8];
  static uint8_t nr[8];
  sfu_rtcp_fb_kind_t k = sfu_rtcp_fb_kind(h);
  sfu_rtcp_twcc_iter_t it;
  sfu_rtcp_twcc_t t;
  uint32_t a, b;
  uint64_t bps;

  CHECK(sfu_rtcp_fb_kind_name(k) != NULL);
  CHECK((k == SFU_RTCP_FB_NACK) ==
        (sfu_rtcp_parse_nack_total(h, &a, seqs, 8, NULL) != SFU_EINVAL));
  CHECK((k == SFU_RTCP_FB_TWCC) ==
        (sfu_rtcp_twcc_iter_init(&it, h, &t) != SFU_EINVAL));
  CHECK((k == SFU_RTCP_FB_PLI) ==
        (sfu_rtcp_parse_pli(h, &a, &b) != SFU_EINVAL));
  CHECK((k == SFU_RTCP_FB_FIR) ==
        (sfu_rtcp_parse_fir(h, ss, nr, 8) != SFU_EINVAL));
  CHECK((k == SFU_RTCP_FB_REMB) ==
        (sfu_rtcp_parse_remb(h, &bps, ss, 8) != SFU_EINVAL));
  CHECK((k != SFU_RTCP_FB_NONE) ==
        (h->pt == SFU_RTCP_RTPFB || h->pt == SFU_RTCP_PSFB));
}

static void psfb_checks(const sfu_rtcp_hdr_t *h) {
  static uint32_t ssrcs[256];
  static uint8_t seqnr[256], buf[20 + 4 * 255];
  sfu_rtcp_hdr_t g;
  uint64_t bps, bps2;
  uint32_t media, ss2[256];
  int fmt, n, m, i;

  if (sfu_rtcp_parse_psfb(h, &fmt, &media) == 0)
    CHECK(fmt == h->count && h->pt == SFU_RTCP_PSFB);

  n = sfu_rtcp_parse_fir(h, ssrcs, seqnr, 256);
  if (n > 0) {
    CHECK(sfu_rtcp_parse_psfb(h, &fmt, &media) == 0 && media == ssrcs[0]);
    g = reframe(buf, sfu_rtcp_write_fir(buf, sizeof(buf), h->ssrc, ssrcs[0],
                                        seqnr[0]));
    CHECK(sfu_rtcp_parse_fir(&g, ss2, seqnr + 1, 1) == 1);
    CHECK(ss2[0] == ssrcs[0] && seqnr[1] == seqnr[0]);
  }

  n = sfu_rtcp_parse_remb(h, &bps, ssrcs, 256);
  if (n >= 0 && bps != UINT64_MAX) {
    g = reframe(buf, sfu_rtcp_write_remb(buf, sizeof(buf), h->ssrc, bps,
                                         ssrcs, n));
    m = sfu_rtcp_parse_remb(&g, &bps2, ss2, 256);
    CHECK(m == n && bps2 == bps);
    for (i = 0; i < n; i++)
      CHECK(ss2[i] == ssrcs[i]);
  }
}

static void sdes_roundtrip(const sfu_rtcp_hdr_t *h) {
  static uint8_t buf[8 + 260];
  char cname[256], again[256];
  sfu_rtcp_hdr_t g;
  uint32_t ssrc, ssrc2;
  int n;

  n = sfu_rtcp_parse_sdes_cname(h, &ssrc, cname, sizeof(cname));
  if (n <= 0 || (size_t)n != strlen(cname))
    return; /* a CNAME holding a NUL byte cannot be a C string */
  g = reframe(buf, sfu_rtcp_write_sdes_cname(buf, sizeof(buf), ssrc, cname));
  CHECK(sfu_rtcp_parse_sdes_cname(&g, &ssrc2, again, sizeof(again)) == n);
  CHECK(ssrc2 == ssrc && strcmp(cname, again) == 0);
}

static int twcc_results;

static void twcc_result(void *arg, const sfu_twcc_result_t *r) {
  CHECK(r->arrival_us >= -1);
  sfu_bwe_packet(arg, r->send_us, r->arrival_us, r->size, r->probe);
  twcc_results++;
}

/* The feedback matched against a history in which every number was sent. */
static void twcc_feed(const sfu_rtcp_hdr_t *h, uint16_t base, int n) {
  static sfu_twcc_tx_t tx;
  static sfu_bwe_t bwe;
  for (int k = 0; k < SFU_TWCC_SLOTS; k++) {
    uint16_t seq = (uint16_t)(base + k);
    tx.s[seq % SFU_TWCC_SLOTS] = (sfu_twcc_sent_t){seq, 1200, (uint32_t)k * 1000, (uint8_t)(k % 3), 1};
  }
  sfu_bwe_init(&bwe, 500000, 30000, 5000000);
  sfu_bwe_probe_begin(&bwe, 1, 5);
  twcc_results = 0;
  CHECK(sfu_twcc_tx_feedback(&tx, h, 10000000, twcc_result, &bwe) == 0);
  CHECK(twcc_results <= n);
  sfu_bwe_update(&bwe, 10000000);
  CHECK(sfu_bwe_estimate(&bwe) >= 30000 && sfu_bwe_estimate(&bwe) <= 5000000);
  twcc_results = 0;
  CHECK(sfu_twcc_tx_feedback(&tx, h, 10000000, twcc_result, &bwe) == 0);
  CHECK(twcc_results == 0);
}

static void twcc_checks(const sfu_rtcp_hdr_t *h) {
  static uint8_t st[MAX_TWCC];
  static int32_t d[MAX_TWCC];
  static sfu_rtcp_twcc_pkt_t pk[65535], pk2[65535];
  static uint8_t buf[20 + 4 * 65535 + 4];
  sfu_rtcp_twcc_iter_t it;
  sfu_rtcp_twcc_t t, t2, t3;
  sfu_rtcp_hdr_t g;
  int n, n2, m, w, i;

  n = sfu_rtcp_parse_twcc(h, &t, st, d, MAX_TWCC);
  n2 = sfu_rtcp_parse_twcc(h, &t2, NULL, NULL, 0);
  CHECK(n == n2);
  CHECK((n >= 0) == (sfu_rtcp_twcc_iter_init(&it, h, &t3) == 0));
  if (n < 0)
    return;
  /* the cursor gives the same statuses, in seq order, then stops */
  CHECK(t3.base_seq == t.base_seq && t3.status_count == t.status_count);
  for (m = 0; m < n; m++) {
    CHECK(sfu_rtcp_twcc_next(&it, &pk[m]) == 1);
    CHECK(pk[m].seq == (uint16_t)(t.base_seq + m));
    CHECK(pk[m].received == (pk[m].status != SFU_TWCC_NOT_RECEIVED));
    if (m < MAX_TWCC)
      CHECK(pk[m].status == st[m] && pk[m].delta * 250 == d[m]);
  }
  CHECK(sfu_rtcp_twcc_next(&it, &pk[0]) == 0);
  twcc_feed(h, t.base_seq, n);
  /* written again, it says the same */
  if (n > 0) {
    w = sfu_rtcp_write_twcc(buf, sizeof(buf), &t, pk, n);
    g = reframe(buf, w);
    CHECK(sfu_rtcp_twcc_iter_init(&it, &g, &t2) == 0);
    CHECK(t2.sender_ssrc == t.sender_ssrc && t2.media_ssrc == t.media_ssrc &&
          t2.base_seq == t.base_seq && t2.status_count == t.status_count &&
          t2.ref_time == t.ref_time && t2.fb_count == t.fb_count);
    for (i = 0; i < n; i++) {
      CHECK(sfu_rtcp_twcc_next(&it, &pk2[i]) == 1);
      CHECK(pk2[i].seq == pk[i].seq && pk2[i].received == pk[i].received &&
            pk2[i].delta == pk[i].delta);
    }
    CHECK(sfu_rtcp_twcc_next(&it, &pk2[0]) == 0);
  }
  CHECK(n == t.status_count && t.ref_time >= -0x800000 &&
        t.ref_time <= 0x7fffff);
  for (i = 0; i < n && i < MAX_TWCC; i++) {
    CHECK(st[i] <= SFU_TWCC_LARGE_DELTA);
    if (st[i] == SFU_TWCC_NOT_RECEIVED)
      CHECK(d[i] == 0);
    else if (st[i] == SFU_TWCC_SMALL_DELTA)
      CHECK(d[i] >= 0 && d[i] <= 255 * 250);
    else
      CHECK(d[i] >= -32768 * 250 && d[i] <= 32767 * 250);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  sfu_rtcp_iter_t it;
  sfu_rtcp_hdr_t h;
  size_t total = 0;
  int rv;

  sfu_rtcp_iter_init(&it, data, size);
  while ((rv = sfu_rtcp_next(&it, &h)) == 1) {
    CHECK(h.data == data + total && h.len == 4 + 4 * (size_t)h.length_words);
    CHECK(h.len <= size - total && h.pad_len <= h.len - 4);
    CHECK(h.version_ok == 1 && h.count < 32);
    total += h.len;
    kind_checks(&h);
    sr_roundtrip(&h);
    nack_roundtrip(&h);
    nack_fit_roundtrip(&h);
    pli_roundtrip(&h);
    fir_roundtrip(&h);
    psfb_checks(&h);
    sdes_roundtrip(&h);
    twcc_checks(&h);
  }
  CHECK(rv == 0 ? total == size : rv == SFU_EPROTO);
  CHECK(sfu_rtcp_next(&it, &h) == 0);
  return 0;
}
