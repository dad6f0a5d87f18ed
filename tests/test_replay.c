/*
 * test_replay.c -- sfu-replay's receive-side checks (tools/replay/verify.h),
 * its WAV reader and its capture sources (tools/replay/source.h).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <opus.h>

#include "sfu/base/bytes.h"
#include "sfu/media/rtp.h"
#include "sfu/base/sfu.h"
#include "tools/replay/source.h"
#include "tools/replay/verify.h"

/* A packet of `len` payload bytes, all `fill`, with seq and ts. */
static sfu_rtp_t pkt(uint8_t *buf, uint16_t seq, uint32_t ts, uint8_t fill, size_t len) {
  sfu_rtp_t r;
  memset(buf, 0, 12);
  buf[0] = 0x80;
  buf[1] = 96;
  sfu_wr16(buf + 2, seq);
  sfu_wr32(buf + 4, ts);
  memset(buf + 12, fill, len);
  assert_int_equal(sfu_rtp_parse(buf, 12 + len, &r), 0);
  return r;
}

typedef struct {
  sfu_sentlog_t log;
  sfu_hist_t lat;
  sfu_rxcheck_t chk;
} fixture_t;

static fixture_t *fixture(void) {
  fixture_t *f = calloc(1, sizeof(*f));
  sfu_rxcheck_init(&f->chk, &f->log, &f->lat, 90000);
  return f;
}

/* Sends packets with seq base+i and payload byte i at time i ms. */
static void send_n(fixture_t *f, uint16_t base, int n) {
  uint8_t b[64];
  for (int i = 0; i < n; i++) {
    sfu_rtp_t r = pkt(b, (uint16_t)(base + i), (uint32_t)i * 3000, (uint8_t)i, 20);
    sfu_sentlog_put(&f->log, &r, (uint64_t)i * 1000);
  }
}

/* The SFU's copy of packet i: seq offset by `off`, payload as sent. */
static void recv_one(fixture_t *f, uint16_t base, int i, int off, uint64_t at_us) {
  uint8_t b[64];
  sfu_rtp_t r = pkt(b, (uint16_t)(base + i + off), (uint32_t)i * 3000, (uint8_t)i, 20);
  sfu_rxcheck_packet(&f->chk, &r, at_us);
}

static void all_arrive_with_an_offset(void **state) {
  fixture_t *f = fixture();
  send_n(f, 65500, 100); /* wraps */
  for (int i = 0; i < 100; i++) recv_one(f, 65500, i, 1234, (uint64_t)i * 1000 + 300);
  assert_int_equal(f->chk.matched, 100);
  assert_int_equal(f->chk.first_n, 0);
  assert_int_equal(sfu_rxcheck_lost(&f->chk), 0);
  assert_int_equal(f->chk.corrupt + f->chk.duplicated + f->chk.reordered + f->chk.resyncs, 0);
  assert_int_equal(f->lat.n, 100);
  assert_true(sfu_hist_quantile(&f->lat, 0.5) >= 300 && sfu_hist_quantile(&f->lat, 0.5) < 310);
  free(f);
}

static void loss_duplicates_reordering_corruption(void **state) {
  uint8_t b[64];
  fixture_t *f = fixture();
  send_n(f, 100, 50);
  for (int i = 0; i < 50; i++) {
    if (i == 10 || i == 11) continue;        /* lost */
    recv_one(f, 100, i, 7, 0);
    if (i == 20) recv_one(f, 100, i, 7, 0);  /* duplicated */
  }
  recv_one(f, 100, 11, 7, 0);                /* late: reordered, no longer lost */
  sfu_rtp_t r = pkt(b, 100 + 60 + 7, 0, 0xEE, 20); /* a payload never sent */
  sfu_rxcheck_packet(&f->chk, &r, 0);
  assert_int_equal(f->chk.matched, 49);
  assert_int_equal(sfu_rxcheck_lost(&f->chk), 1);
  assert_int_equal(f->chk.duplicated, 1);
  assert_int_equal(f->chk.reordered, 1);
  assert_int_equal(f->chk.corrupt, 1);
  free(f);
}

static void a_moved_offset_is_a_resync_not_corruption(void **state) {
  fixture_t *f = fixture();
  send_n(f, 0, 40);
  for (int i = 0; i < 20; i++) recv_one(f, 0, i, 5, 0);
  for (int i = 30; i < 40; i++) recv_one(f, 0, i, -5, 0); /* e.g. after a server mute */
  assert_int_equal(f->chk.resyncs, 1);
  assert_int_equal(f->chk.corrupt, 0);
  assert_int_equal(f->chk.matched, 30);
  assert_int_equal(sfu_rxcheck_lost(&f->chk), 10);
  free(f);
}

static void late_start_and_close_bound_what_is_expected(void **state) {
  fixture_t *f = fixture();
  send_n(f, 0, 100);
  for (int i = 30; i < 60; i++) recv_one(f, 0, i, 0, 0); /* joined late, left early */
  sfu_rxcheck_close(&f->chk);
  assert_int_equal(f->chk.first_n, 30);
  assert_int_equal(f->chk.last_n, 59);
  assert_int_equal(sfu_rxcheck_lost(&f->chk), 0);
  free(f);
}

/* A room that moved: the new leg's copies of what the old one delivered
 * are played once, under the new node's offset, and count as neither
 * duplicates nor a resync; later duplicates and offset moves still do. */
static void a_leg_switch_plays_duplicates_once(void **state) {
  fixture_t *f = fixture();
  send_n(f, 0, 70);
  for (int i = 0; i < 40; i++) recv_one(f, 0, i, 7, (uint64_t)i * 1000 + 200); /* old leg */
  sfu_rxcheck_switch(&f->chk);
  for (int i = 35; i < 60; i++) recv_one(f, 0, i, 3000, (uint64_t)i * 1000 + 300); /* new leg */
  assert_int_equal(f->chk.switches, 1);
  assert_int_equal(f->chk.leg_duplicated, 5);
  assert_int_equal(f->chk.duplicated, 0);
  assert_int_equal(f->chk.resyncs, 0);
  assert_int_equal(f->chk.reordered, 0);
  assert_int_equal(f->chk.corrupt, 0);
  assert_int_equal(f->chk.matched, 60);
  recv_one(f, 0, 50, 3000, 0); /* a real duplicate, after the switch */
  recv_one(f, 0, 38, 3000, 0); /* and one of before it, played twice already */
  assert_int_equal(f->chk.duplicated, 2);
  assert_int_equal(f->chk.leg_duplicated, 5);
  for (int i = 60; i < 70; i++) recv_one(f, 0, i, 3005, 0); /* the new node's offset moved */
  assert_int_equal(f->chk.resyncs, 1);
  assert_int_equal(sfu_rxcheck_lost(&f->chk), 0);
  free(f);
}

/* Packets of a time window that never arrived: what a switch cost. */
static void missing_in_a_window(void **state) {
  fixture_t *f = fixture();
  send_n(f, 0, 100); /* packet i sent at i ms */
  assert_int_equal(sfu_rxcheck_missing(&f->chk, 0, 100000), 0); /* nothing expected yet */
  for (int i = 10; i < 40; i++) recv_one(f, 0, i, 7, 0);
  sfu_rxcheck_switch(&f->chk);
  for (int i = 45; i < 80; i++) recv_one(f, 0, i, 900, 0);
  assert_int_equal(sfu_rxcheck_missing(&f->chk, 30000, 60000), 5);  /* 40..44 */
  assert_int_equal(sfu_rxcheck_missing(&f->chk, 0, 35000), 0);      /* before the first: not due */
  assert_int_equal(sfu_rxcheck_missing(&f->chk, 70000, 99000), 20); /* 80..99 not yet */
  sfu_rxcheck_close(&f->chk);                                        /* left after 79 */
  assert_int_equal(sfu_rxcheck_missing(&f->chk, 70000, 99000), 0);
  assert_int_equal(sfu_rxcheck_missing(&f->chk, 0, 99000), 5);
  free(f);
}

static void play_gaps(void **state) {
  sfu_playlog_t *l = calloc(1, sizeof(*l));
  const uint64_t ms = 1000;
  assert_int_equal(sfu_playlog_gap(l, 0, 4000 * ms, 0, NULL), 0);
  assert_int_equal(sfu_playlog_gap(l, 0, 4000 * ms, 1, NULL), 4000 * ms); /* nothing played */
  for (uint64_t t = 0; t <= 1000; t += 20) sfu_playlog_put(l, t * ms);
  for (uint64_t t = 1300; t <= 1500; t += 20) sfu_playlog_put(l, t * ms);
  uint64_t end = 0;
  assert_int_equal(sfu_playlog_gap(l, 500 * ms, 2000 * ms, 0, &end), 300 * ms);
  assert_int_equal(end, 1300 * ms);
  /* stopped at 1.5 s, still being sent */
  assert_int_equal(sfu_playlog_gap(l, 500 * ms, 2000 * ms, 1, NULL), 500 * ms);
  assert_int_equal(sfu_playlog_gap(l, 1100 * ms, 1400 * ms, 0, NULL), 300 * ms); /* began before */
  assert_int_equal(sfu_playlog_gap(l, 0, 900 * ms, 0, NULL), 20 * ms);
  for (uint64_t t = 2000; t < 2000 + 20 * SFU_PLAYLOG_SIZE; t += 20) sfu_playlog_put(l, t * ms);
  /* the pauses above are older than the log holds */
  assert_int_equal(sfu_playlog_gap(l, 0, 20000 * ms, 0, NULL), 20 * ms);
  free(l);
}

static void arrivals_counted_by_second_of_sending(void **state) {
  uint8_t b[64];
  uint64_t counts[2] = {0};
  sfu_rxsec_t by_sec = {5000000, counts, 2}; /* sending began at 5 s; 2 s counted */
  fixture_t *f = fixture();
  sfu_rxcheck_count_by_second(&f->chk, &by_sec);
  for (int i = 0; i < 250; i++) { /* one every 10 ms from 5 s: 2.5 s */
    sfu_rtp_t r = pkt(b, (uint16_t)i, (uint32_t)i * 900, (uint8_t)i, 20);
    sfu_sentlog_put(&f->log, &r, 5000000 + (uint64_t)i * 10000);
  }
  for (int i = 0; i < 250; i++) {
    if (i == 3 || i == 150) continue; /* lost: one in each counted second */
    /* arriving late, in the next second for some: counted where it was sent */
    recv_one(f, 0, i, 0, 5000000 + (uint64_t)i * 10000 + 9000);
  }
  recv_one(f, 0, 7, 0, 9000000); /* a duplicate: not counted again */
  assert_int_equal(counts[0], 99);
  assert_int_equal(counts[1], 99);
  assert_int_equal(f->chk.matched, 248); /* the half second past the 2 counted too */
  free(f);
}

static void histogram_quantiles(void **state) {
  sfu_hist_t *h = calloc(1, sizeof(*h));
  assert_int_equal(sfu_hist_quantile(h, 0.5), 0);
  for (int i = 0; i < 98; i++) sfu_hist_add(h, 200);
  sfu_hist_add(h, 5000);
  sfu_hist_add(h, 50000);
  assert_int_equal(h->n, 100);
  assert_int_equal(sfu_hist_quantile(h, 0.5), 205);
  assert_int_equal(sfu_hist_quantile(h, 0.99), 50500);
  assert_int_equal(h->max_us, 50000);
  sfu_hist_add(h, 20000000); /* beyond 10 s */
  assert_int_equal(h->over, 1);
  free(h);
}

/* --- WAV --------------------------------------------------------------- */

static size_t wav_bytes(uint8_t *b, int rate, int ch, int bits, int frames, int extra_chunk) {
  size_t o = 12;
  memcpy(b, "RIFF", 4);
  memcpy(b + 8, "WAVE", 4);
  if (extra_chunk) { /* a LIST chunk of odd length (padded) before fmt */
    memcpy(b + o, "LIST", 4);
    b[o + 4] = 3, b[o + 5] = b[o + 6] = b[o + 7] = 0;
    o += 8 + 4;
  }
  memcpy(b + o, "fmt ", 4);
  b[o + 4] = 16, b[o + 5] = b[o + 6] = b[o + 7] = 0;
  uint8_t *f = b + o + 8;
  memset(f, 0, 16);
  f[0] = 1;
  f[2] = (uint8_t)ch;
  f[4] = (uint8_t)rate, f[5] = (uint8_t)(rate >> 8), f[6] = (uint8_t)(rate >> 16);
  f[14] = (uint8_t)bits;
  o += 8 + 16;
  size_t n = (size_t)frames * (size_t)ch * 2;
  memcpy(b + o, "data", 4);
  b[o + 4] = (uint8_t)n, b[o + 5] = (uint8_t)(n >> 8), b[o + 6] = b[o + 7] = 0;
  for (size_t i = 0; i < n; i++) b[o + 8 + i] = (uint8_t)i;
  return o + 8 + n;
}

static void wav_files(void **state) {
  uint8_t b[4096];
  sfu_wav_t w;
  const char *why = NULL;
  size_t n = wav_bytes(b, 48000, 1, 16, 100, 1);
  assert_int_equal(sfu_wav_parse(b, n, &w, &why), 0);
  assert_int_equal(w.rate, 48000);
  assert_int_equal(w.channels, 1);
  assert_int_equal(w.frames, 100);
  assert_int_equal(w.data[0], 0);
  assert_int_equal(w.data[1], 1);
  n = wav_bytes(b, 16000, 2, 16, 10, 0);
  assert_int_equal(sfu_wav_parse(b, n, &w, &why), 0);
  assert_int_equal(w.frames, 10);
  /* refused, with a reason */
  n = wav_bytes(b, 44100, 1, 16, 10, 0);
  assert_int_equal(sfu_wav_parse(b, n, &w, &why), SFU_EPROTO);
  assert_non_null(strstr(why, "sample rate"));
  n = wav_bytes(b, 48000, 1, 8, 10, 0);
  assert_int_equal(sfu_wav_parse(b, n, &w, &why), SFU_EPROTO);
  assert_non_null(strstr(why, "16-bit"));
  n = wav_bytes(b, 48000, 3, 16, 10, 0);
  assert_int_equal(sfu_wav_parse(b, n, &w, &why), SFU_EPROTO);
  n = wav_bytes(b, 48000, 1, 16, 10, 0);
  assert_int_equal(sfu_wav_parse(b, n - 5, &w, &why), SFU_EPROTO); /* data cut short */
  assert_non_null(strstr(why, "past the end"));
  assert_int_equal(sfu_wav_parse(b, 30, &w, &why), SFU_EPROTO);
  assert_int_equal(sfu_wav_parse((const uint8_t *)"RIFX....WAVE", 12, &w, &why), SFU_EPROTO);
}

/* A WAV source loops its samples into 20 ms Opus frames with levels. */
static void wav_source_packets(void **state) {
  uint8_t b[48000 * 2 / 10 + 64], out[1600];
  char path[] = "/tmp/sfu-test-wav-XXXXXX", err[256];
  size_t n = wav_bytes(b, 48000, 1, 16, 4800, 0); /* 100 ms */
  int16_t *s = (int16_t *)(b + n - 4800 * 2);
  for (int i = 0; i < 4800; i++) s[i] = (int16_t)(10000 * sin(i * 0.05)); /* little-endian host */
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, b, n), (ssize_t)n);
  close(fd);
  sfu_source_t src;
  assert_int_equal(sfu_source_wav(&src, path, err, sizeof(err)), 0);
  unlink(path);
  assert_string_equal(src.codec, "opus");
  for (uint64_t i = 0; i < 12; i++) { /* 240 ms: loops the 100 ms file */
    uint64_t at;
    int len = sfu_source_packet(&src, i, 1, 0x1234, 1, out, sizeof(out), &at);
    sfu_rtp_t r;
    int voice, level;
    assert_true(len > 20);
    assert_int_equal(sfu_rtp_parse(out, (size_t)len, &r), 0);
    assert_int_equal(r.seq, (uint16_t)i);
    assert_int_equal(r.ts, (uint32_t)(i * 960));
    assert_int_equal(at, i * 20000);
    assert_int_equal(sfu_rtp_audio_level(&r, 1, &voice, &level), 1);
    assert_true(level >= 12 && level <= 14); /* amplitude 10000: rms 7071/32768 = -13.3 dBov */
  }
  sfu_source_free(&src);
}

/* A tone's packets decode to the tone itself, however often the sender
 * asks when the next is due: sfu_source_at() encodes nothing, and a packet
 * out of order is refused rather than encoded out of step. */
static void tone_source_is_one_clean_tone(void **state) {
  static int16_t pcm[50 * 960];
  uint8_t out[1600];
  char err[256];
  int e = 0;
  sfu_source_t src;
  assert_int_equal(sfu_source_tone(&src, 440, err, sizeof(err)), 0);
  OpusDecoder *dec = opus_decoder_create(48000, 1, &e);
  assert_non_null(dec);
  for (uint64_t i = 0; i < 50; i++) {
    uint64_t at = 0;
    for (int k = 0; k < 3; k++) { /* a sender's looks before it is due */
      assert_int_equal(sfu_source_at(&src, i, 1, &at), 1);
      assert_int_equal(at, i * 20000);
    }
    int len = sfu_source_packet(&src, i, 1, 0x1234, 1, out, sizeof(out), &at);
    sfu_rtp_t r;
    int voice, level;
    assert_true(len > 20);
    assert_int_equal(sfu_rtp_parse(out, (size_t)len, &r), 0);
    assert_int_equal(r.ts, (uint32_t)(i * 960));
    assert_int_equal(sfu_rtp_audio_level(&r, 1, &voice, &level), 1);
    assert_true(level == 13 || level == 14); /* a 0.3 sine: rms 0.212 = -13.5 dBov */
    assert_int_equal(opus_decode(dec, out + r.payload_off, (opus_int32)r.payload_len, pcm + i * 960, 960, 0),
                     960);
  }
  uint64_t at = 0;
  assert_int_equal(sfu_source_packet(&src, 49, 1, 0x1234, 1, out, sizeof(out), &at), SFU_EINVAL);
  assert_int_equal(sfu_source_packet(&src, 51, 1, 0x1234, 1, out, sizeof(out), &at), SFU_EINVAL);
  /* 440 Hz in each 100 ms after the first: amplitude 0.3, and nearly all
   * of the signal's power (a distorted or stuttering tone spreads it) */
  for (int b = 1; b < 10; b++) {
    const int16_t *x = pcm + b * 4800;
    double re = 0, im = 0, wsum = 0, pw = 0;
    for (int k = 0; k < 4800; k++) {
      double w = 0.5 - 0.5 * cos(2 * M_PI * k / 4799), v = x[k] / 32768.0;
      re += v * w * cos(2 * M_PI * 440 * k / 48000.0);
      im -= v * w * sin(2 * M_PI * 440 * k / 48000.0);
      wsum += w;
      pw += v * v;
    }
    double amp = 2 * sqrt(re * re + im * im) / wsum;
    assert_true(fabs(amp - 0.3) < 0.02);
    assert_true(amp * amp / 2 > 0.9 * pw / 4800);
  }
  opus_decoder_destroy(dec);
  sfu_source_free(&src);
}

static const char *pcap_path(const char *name) {
  static char path[1024];
  const char *slash = strrchr(__FILE__, '/');
  snprintf(path, sizeof(path), "%.*s/data/pcaps/%s", slash ? (int)(slash - __FILE__) : 1,
           slash ? __FILE__ : ".", name);
  return path;
}

/* Where a keyframe request skips to: the capture's keyframes (3 in this
 * one, README.md), the next one at or after a packet, across loops. */
static void capture_keyframes(void **state) {
  sfu_source_t src;
  sfu_src_sel_t sel = {-1, -1, -1};
  char err[256];
  assert_int_equal(sfu_source_load(&src, pcap_path("membrane-input_vp8.pcap"), &sel,
                                   SFU_TIMING_AUTO, err, sizeof(err)), 0);
  assert_int_equal(src.npkts, 410);
  assert_int_equal(sfu_source_mark_keyframes(&src), 3);
  assert_true(src.pkts[0].key);
  assert_true(sfu_source_starts_picture(&src, 0));
  uint64_t k1 = sfu_source_next_keyframe(&src, 1, 1);
  assert_true(k1 > 1 && k1 < 410);
  assert_true(src.pkts[k1].key && sfu_source_starts_picture(&src, k1));
  for (uint64_t i = 1; i < k1; i++) assert_false(src.pkts[i].key);
  assert_int_equal(sfu_source_next_keyframe(&src, k1, 1), k1); /* at one: itself */
  uint64_t k2 = sfu_source_next_keyframe(&src, k1 + 1, 1);
  assert_true(k2 > k1 && k2 < 410);
  assert_int_equal(sfu_source_next_keyframe(&src, k2 + 1, 1), UINT64_MAX); /* no more */
  assert_int_equal(sfu_source_next_keyframe(&src, k2 + 1, 2), 410);       /* the next pass's */
  assert_int_equal(sfu_source_next_keyframe(&src, 410 + 1, 2), 410 + k1);
  assert_true(sfu_source_starts_picture(&src, 410)); /* a pass starts a picture */
  /* a picture's later packets do not start one */
  int later = 0;
  for (uint64_t i = 1; i < 410; i++) later += !sfu_source_starts_picture(&src, i);
  assert_int_equal(later, 410 - 300); /* 300 pictures */
  sfu_source_free(&src);
  /* no keyframes in audio */
  assert_int_equal(sfu_source_load(&src, pcap_path("gst-opus-tone-stereo.pcap"), &sel,
                                   SFU_TIMING_AUTO, err, sizeof(err)), 0);
  assert_int_equal(sfu_source_mark_keyframes(&src), 0);
  assert_int_equal(sfu_source_next_keyframe(&src, 0, 1), UINT64_MAX);
  sfu_source_free(&src);
}

/* Every video capture starts with a keyframe: a replay from its first
 * packet is decodable, and a keyframe request before it is moot. */
static void video_captures_start_with_a_keyframe(void **state) {
  static const char *const files[] = {"membrane-input_vp8.pcap", "str0m-vp8.pcap",
                                      "str0m-vp9.pcap", "str0m-h264.pcap", "str0m-av1.pcap"};
  sfu_src_sel_t sel = {-1, -1, -1};
  char err[256];
  for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
    sfu_source_t src;
    assert_int_equal(sfu_source_load(&src, pcap_path(files[i]), &sel, SFU_TIMING_AUTO, err,
                                     sizeof(err)), 0);
    int n = sfu_source_mark_keyframes(&src);
    if (n < 1 || !src.pkts[0].key) fail_msg("%s: %d keyframes, first packet %s", files[i], n,
                                            src.pkts[0].key ? "one" : "not one");
    sfu_source_free(&src);
  }
}

/* A move's new leg judged for a decoder of its own: a keyframe before
 * the first picture played, nothing missing since: decodable at once. */
static void video_resumes_at_once_after_an_earlier_keyframe(void **state) {
  sfu_vresume_t v;
  sfu_vresume_start(&v);
  sfu_vresume_packet(&v, 100, 0, 1, 0, 1000); /* a delta picture first: nothing yet */
  sfu_vresume_packet(&v, 101, 1, 1, 0, 2000); /* the keyframe, two packets */
  sfu_vresume_packet(&v, 102, 0, 0, 0, 2100);
  sfu_vresume_packet(&v, 103, 0, 1, 0, 3000);
  assert_int_equal(v.key_us, 2000);
  assert_int_equal(v.resume_us, 0); /* nothing played yet */
  sfu_vresume_switch(&v, 5000);
  sfu_vresume_packet(&v, 104, 0, 1, 0, 5100); /* played from the old leg already */
  sfu_vresume_packet(&v, 105, 0, 0, 1, 5200); /* played, but within a picture */
  sfu_vresume_packet(&v, 106, 0, 1, 1, 5300);
  assert_int_equal(v.first_us, 5300);
  assert_true(v.keyed);
  assert_int_equal(v.resume_us, 5300);
  /* a late packet of the chain fills its hole */
  sfu_vresume_start(&v);
  sfu_vresume_packet(&v, 7, 1, 1, 0, 1000);
  sfu_vresume_packet(&v, 9, 0, 1, 0, 1100);
  sfu_vresume_packet(&v, 8, 0, 0, 0, 1150);
  sfu_vresume_switch(&v, 2000);
  sfu_vresume_packet(&v, 10, 0, 1, 1, 2050);
  assert_true(v.keyed);
  assert_int_equal(v.resume_us, 2050);
}

/* A keyframe that comes after the switch, or a chain broken by a packet
 * that never came: the played video waits for the next keyframe. */
static void video_waits_for_a_keyframe_after_the_switch(void **state) {
  sfu_vresume_t v;
  sfu_vresume_start(&v);
  sfu_vresume_packet(&v, 65534, 0, 1, 0, 1000); /* numbers wrap below */
  sfu_vresume_switch(&v, 2000);
  sfu_vresume_packet(&v, 65535, 0, 1, 1, 2100);
  assert_int_equal(v.first_us, 2100);
  assert_false(v.keyed);
  assert_int_equal(v.resume_us, 0);
  sfu_vresume_packet(&v, 0, 1, 1, 1, 2300);
  assert_int_equal(v.key_us, 2300);
  assert_int_equal(v.resume_us, 2300);
  assert_false(v.keyed);
  /* a keyframe before the switch, then a packet lost: not whole */
  sfu_vresume_start(&v);
  sfu_vresume_packet(&v, 10, 1, 1, 0, 1000);
  sfu_vresume_packet(&v, 12, 0, 1, 0, 1100); /* 11 never comes */
  sfu_vresume_switch(&v, 2000);
  sfu_vresume_packet(&v, 13, 0, 1, 1, 2100);
  assert_false(v.keyed);
  assert_int_equal(v.resume_us, 0);
  sfu_vresume_packet(&v, 14, 1, 1, 0, 2200); /* a keyframe the old leg played: whole again */
  sfu_vresume_packet(&v, 15, 0, 1, 1, 2300);
  assert_int_equal(v.key_us, 1000);
  assert_int_equal(v.resume_us, 2300);
  assert_false(v.keyed);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(all_arrive_with_an_offset),
      cmocka_unit_test(loss_duplicates_reordering_corruption),
      cmocka_unit_test(a_moved_offset_is_a_resync_not_corruption),
      cmocka_unit_test(late_start_and_close_bound_what_is_expected),
      cmocka_unit_test(a_leg_switch_plays_duplicates_once),
      cmocka_unit_test(missing_in_a_window),
      cmocka_unit_test(play_gaps),
      cmocka_unit_test(arrivals_counted_by_second_of_sending),
      cmocka_unit_test(histogram_quantiles),
      cmocka_unit_test(wav_files),
      cmocka_unit_test(wav_source_packets),
      cmocka_unit_test(tone_source_is_one_clean_tone),
      cmocka_unit_test(capture_keyframes),
      cmocka_unit_test(video_captures_start_with_a_keyframe),
      cmocka_unit_test(video_resumes_at_once_after_an_earlier_keyframe),
      cmocka_unit_test(video_waits_for_a_keyframe_after_the_switch),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
