/*
 * source.c -- capture streams and synthetic Opus for sfu-replay (source.h).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <opus.h>

#include "codecs/opus.h"
#include "codecs/video.h"
#include "sfu/base/bytes.h"
#include "sfu/media/rtp.h"
#include "sfu/base/sfu.h"
#include "sfu/media/capture.h"
#include "tools/replay/source.h"

#define TONE_RATE 48000
#define TONE_FRAME 960 /* 20 ms */
#define TONE_AMPLITUDE 0.3f
#define WAV_MAX_BYTES (256 << 20)

int sfu_source_guess_codec(int pt, char name[16], int *clock) {
  static const struct {
    int pt;
    const char *name;
    int clock;
  } known[] = {{111, "opus", 48000}, {109, "opus", 48000}, {96, "VP8", 90000},
               {98, "VP9", 90000},   {100, "VP9", 90000},  {102, "H264", 90000},
               {125, "H264", 90000}, {126, "H264", 90000}, {127, "H264", 90000},
               {45, "AV1", 90000},   {35, "AV1", 90000}};
  for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
    if (known[i].pt == pt) {
      snprintf(name, 16, "%s", known[i].name);
      *clock = known[i].clock;
      return 1;
    }
  return 0;
}

static int matches(const sfu_src_sel_t *sel, const sfu_rtp_t *r, const sfu_cap_pkt_t *p) {
  if (sel->ssrc >= 0 && r->ssrc != (uint32_t)sel->ssrc) return 0;
  if (sel->pt >= 0 && r->pt != sel->pt) return 0;
  if (sel->port >= 0 && p->sport != sel->port && p->dport != sel->port) return 0;
  return 1;
}

static int grow(void **a, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return 0;
  size_t n = *cap ? *cap * 2 : 1024;
  while (n < need) n *= 2;
  void *b = realloc(*a, n * elem);
  if (!b) return SFU_ENOMEM;
  *a = b;
  *cap = n;
  return 0;
}

/* Offsets of one pass from capture times or RTP timestamps; the span one
 * pass advances (sequence numbers, timestamps, time) for looping. */
static void resolve_timing(sfu_source_t *s, const uint64_t *cap_us, sfu_timing_t timing) {
  uint64_t cap_span = cap_us[s->npkts - 1] - cap_us[0];
  uint32_t ts0 = s->pkts[0].ts;
  int64_t rtp_last = 0;
  for (size_t i = 0; i < s->npkts; i++) {
    int64_t d = (int32_t)(s->pkts[i].ts - ts0);
    if (d > rtp_last) rtp_last = d;
  }
  uint64_t rtp_span = (uint64_t)rtp_last * 1000000 / (uint64_t)s->clock;
  if (timing == SFU_TIMING_AUTO) {
    int synthetic = cap_span == 0 || (rtp_span > 0 && (cap_span * 2 < rtp_span ||
                                                       cap_span > rtp_span * 2));
    timing = synthetic ? SFU_TIMING_RTP : SFU_TIMING_CAPTURE;
  }
  s->timing = timing;
  uint64_t last = 0;
  size_t distinct = 1;
  for (size_t i = 0; i < s->npkts; i++) {
    uint64_t at;
    if (timing == SFU_TIMING_CAPTURE) {
      at = cap_us[i] - cap_us[0];
    } else {
      int64_t d = (int32_t)(s->pkts[i].ts - ts0);
      at = d > 0 ? (uint64_t)d * 1000000 / (uint64_t)s->clock : 0;
    }
    if (at < last) at = last; /* keep the capture's order */
    s->pkts[i].at_us = last = at;
    if (i > 0 && s->pkts[i].ts != s->pkts[i - 1].ts) distinct++;
  }
  uint32_t ts_step = distinct > 1 ? (uint32_t)(rtp_last / (int64_t)(distinct - 1)) : 960;
  uint64_t us_step = distinct > 1 ? last / (distinct - 1) : 20000;
  s->ts_span = (uint32_t)rtp_last + (ts_step ? ts_step : 1);
  s->pass_us = last + (us_step ? us_step : 1000);
  s->seq_span = (uint16_t)(s->pkts[s->npkts - 1].seq - s->pkts[0].seq + 1);
}

/* RFC 6464 levels of an Opus stream, decoded once here so that sending
 * costs nothing; 127 (silence) for other codecs or undecodable packets. */
static void measure_levels(sfu_source_t *s) {
  sfu_opus_meter_t *m = NULL;
  int opus = strcasecmp(s->codec, "opus") == 0;
  if (opus && sfu_opus_meter_create(&m) != 0) m = NULL;
  for (size_t i = 0; i < s->npkts; i++) {
    int level = m ? sfu_opus_meter_feed(m, s->bytes + s->pkts[i].off, s->pkts[i].len) : -1;
    s->pkts[i].level = (uint8_t)(level >= 0 && level <= 127 ? level : 127);
  }
  sfu_opus_meter_destroy(m);
}

int sfu_source_load(sfu_source_t *s, const char *path, const sfu_src_sel_t *sel,
                    sfu_timing_t timing, char *err, size_t errlen) {
  sfu_cap_t *c = NULL;
  sfu_cap_pkt_t p;
  sfu_rtp_t r;
  size_t cap_pkts = 0, cap_bytes = 0, cap_times = 0;
  uint64_t *times = NULL;
  int rv, have = 0;
  uint16_t prev_seq = 0;

  memset(s, 0, sizeof(*s));
  const char *base = strrchr(path, '/');
  snprintf(s->name, sizeof(s->name), "%s", base ? base + 1 : path);
  if ((rv = sfu_cap_open(&c, path, err, errlen)) != 0) return rv;
  while ((rv = sfu_cap_next(c, &p)) == 1) {
    if (!sfu_cap_is_rtp(p.data, p.len) || sfu_rtp_parse(p.data, p.len, &r) != 0 ||
        !matches(sel, &r, &p) || (have && (r.ssrc != s->orig_ssrc || r.pt != s->pt))) {
      s->skipped++;
      continue;
    }
    if (have && r.seq == prev_seq) { /* a duplicate in the capture */
      s->skipped++;
      continue;
    }
    if (!have) {
      have = 1;
      s->orig_ssrc = r.ssrc;
      s->pt = r.pt;
    }
    prev_seq = r.seq;
    if (r.payload_len > 65535 ||
        grow((void **)&s->pkts, &cap_pkts, s->npkts + 1, sizeof(*s->pkts)) ||
        grow((void **)&times, &cap_times, s->npkts + 1, sizeof(*times)) ||
        grow((void **)&s->bytes, &cap_bytes, s->nbytes + r.payload_len, 1)) {
      rv = SFU_ENOMEM;
      break;
    }
    sfu_src_pkt_t *e = &s->pkts[s->npkts];
    e->off = (uint32_t)s->nbytes;
    e->len = (uint16_t)r.payload_len;
    e->seq = r.seq;
    e->ts = r.ts;
    e->marker = r.marker;
    memcpy(s->bytes + s->nbytes, r.data + r.payload_off, r.payload_len);
    s->nbytes += r.payload_len;
    times[s->npkts++] = p.ts_us;
  }
  if (rv < 0) {
    snprintf(err, errlen, "%s: %s", path, rv == SFU_ENOMEM ? "out of memory" : sfu_cap_error(c));
  } else if (s->npkts == 0) {
    snprintf(err, errlen, "%s: no RTP stream matches the selection", path);
    rv = SFU_ENOENT;
  } else {
    if (!sfu_source_guess_codec(s->pt, s->codec, &s->clock)) {
      snprintf(s->codec, sizeof(s->codec), "?");
      s->clock = 90000;
    }
    resolve_timing(s, times, timing);
    measure_levels(s);
    rv = 0;
  }
  sfu_cap_close(c);
  free(times);
  if (rv != 0) sfu_source_free(s);
  return rv;
}

int sfu_source_tone(sfu_source_t *s, double freq, char *err, size_t errlen) {
  int e = 0;
  memset(s, 0, sizeof(*s));
  s->enc = opus_encoder_create(TONE_RATE, 1, OPUS_APPLICATION_AUDIO, &e);
  if (!s->enc) {
    snprintf(err, errlen, "opus encoder: %s", opus_strerror(e));
    return SFU_ENOMEM;
  }
  opus_encoder_ctl(s->enc, OPUS_SET_BITRATE(32000));
  snprintf(s->name, sizeof(s->name), "tone:%g", freq);
  snprintf(s->codec, sizeof(s->codec), "opus");
  s->clock = TONE_RATE;
  s->pt = 111;
  s->freq = freq;
  s->rate = TONE_RATE;
  s->channels = 1;
  s->pass_us = 20000;
  return 0;
}

static uint32_t le32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int sfu_wav_parse(const uint8_t *buf, size_t len, sfu_wav_t *out, const char **why) {
  int have_fmt = 0;
  memset(out, 0, sizeof(*out));
  if (len < 12 || memcmp(buf, "RIFF", 4) != 0 || memcmp(buf + 8, "WAVE", 4) != 0)
    return *why = "not a RIFF/WAVE file", SFU_EPROTO;
  for (size_t o = 12; o + 8 <= len;) {
    uint32_t n = le32(buf + o + 4);
    const uint8_t *body = buf + o + 8;
    if (n > len - o - 8) return *why = "a chunk runs past the end of the file", SFU_EPROTO;
    if (memcmp(buf + o, "fmt ", 4) == 0) {
      if (n < 16) return *why = "short fmt chunk", SFU_EPROTO;
      unsigned fmt = body[0] | body[1] << 8, bits = body[14] | body[15] << 8;
      if (fmt == 0xFFFE && n >= 40) fmt = body[24] | body[25] << 8; /* extensible: sub-format */
      out->channels = body[2] | body[3] << 8;
      out->rate = (int)le32(body + 4);
      if (fmt != 1 || bits != 16) return *why = "only 16-bit PCM is supported", SFU_EPROTO;
      if (out->channels < 1 || out->channels > 2) return *why = "mono or stereo only", SFU_EPROTO;
      if (out->rate != 8000 && out->rate != 12000 && out->rate != 16000 && out->rate != 24000 &&
          out->rate != 48000)
        return *why = "sample rate must be 8, 12, 16, 24 or 48 kHz (Opus)", SFU_EPROTO;
      have_fmt = 1;
    } else if (memcmp(buf + o, "data", 4) == 0) {
      if (!have_fmt) return *why = "data before fmt", SFU_EPROTO;
      out->data = body;
      out->frames = n / (2 * (size_t)out->channels);
      if (out->frames == 0) return *why = "no samples", SFU_EPROTO;
      return 0;
    }
    o += 8 + (size_t)n + (n & 1); /* chunks are padded to even sizes */
  }
  return *why = "no data chunk", SFU_EPROTO;
}

int sfu_source_wav(sfu_source_t *s, const char *path, char *err, size_t errlen) {
  FILE *f = fopen(path, "rb");
  uint8_t *buf = NULL;
  const char *why = NULL;
  sfu_wav_t w;
  int e = 0, rv = SFU_EPROTO;
  long n = -1;

  memset(s, 0, sizeof(*s));
  if (!f) {
    rv = -errno;
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return rv;
  }
  if (fseek(f, 0, SEEK_END) == 0) n = ftell(f);
  if (n < 0 || n > WAV_MAX_BYTES) {
    snprintf(err, errlen, "%s: not a readable file of at most %d MiB", path, WAV_MAX_BYTES >> 20);
    fclose(f);
    return SFU_E2BIG;
  }
  rewind(f);
  buf = malloc((size_t)n + 1);
  if (buf && fread(buf, 1, (size_t)n, f) == (size_t)n &&
      sfu_wav_parse(buf, (size_t)n, &w, &why) == 0) {
    s->pcm = malloc(w.frames * (size_t)w.channels * sizeof(int16_t));
    if (s->pcm) {
      for (size_t i = 0; i < w.frames * (size_t)w.channels; i++)
        s->pcm[i] = (int16_t)(w.data[2 * i] | w.data[2 * i + 1] << 8);
      s->pcm_frames = w.frames;
      s->rate = w.rate;
      s->channels = w.channels;
      s->enc = opus_encoder_create(w.rate, w.channels, OPUS_APPLICATION_AUDIO, &e);
      rv = s->enc ? 0 : SFU_ENOMEM;
    } else {
      rv = SFU_ENOMEM;
    }
  }
  if (rv != 0) snprintf(err, errlen, "%s: %s", path, why ? why : "cannot read it");
  free(buf);
  fclose(f);
  if (rv != 0) {
    sfu_source_free(s);
    return rv;
  }
  const char *base = strrchr(path, '/');
  snprintf(s->name, sizeof(s->name), "%s", base ? base + 1 : path);
  snprintf(s->codec, sizeof(s->codec), "opus");
  s->clock = TONE_RATE;
  s->pt = 111;
  s->pass_us = 20000;
  return 0;
}

/* The fixed header, and the audio level extension when ext_id > 0:
 * returns the header length (12 or 20). */
static size_t rtp_header(uint8_t *out, int marker, int pt, uint16_t seq, uint32_t ts,
                         uint32_t ssrc, int ext_id, int level) {
  out[0] = ext_id > 0 ? 0x90 : 0x80;
  out[1] = (uint8_t)((marker ? 0x80 : 0) | (pt & 0x7f));
  sfu_wr16(out + 2, seq);
  sfu_wr32(out + 4, ts);
  sfu_wr32(out + 8, ssrc);
  if (ext_id <= 0) return 12;
  sfu_wr16(out + 12, 0xBEDE); /* RFC 8285 one-byte form, one word */
  sfu_wr16(out + 14, 1);
  out[16] = (uint8_t)(ext_id << 4); /* length - 1 = 0 */
  out[17] = (uint8_t)(level & 0x7f);
  out[18] = out[19] = 0;
  return 20;
}

int sfu_source_at(const sfu_source_t *s, uint64_t i, int loops, uint64_t *at_us) {
  if (s->enc) { /* tone or WAV: endless, one frame every 20 ms */
    *at_us = i * 20000;
    return 1;
  }
  if (s->npkts == 0 || i >= (uint64_t)s->npkts * (uint64_t)(loops > 0 ? loops : 1)) return 0;
  *at_us = i / s->npkts * s->pass_us + s->pkts[i % s->npkts].at_us;
  return 1;
}

int sfu_source_packet(sfu_source_t *s, uint64_t i, int loops, uint32_t ssrc, int level_ext,
                      uint8_t *out, size_t cap, uint64_t *at_us) {
  if (s->enc) { /* tone or WAV: 20 ms i encoded now, with its level measured on it */
    int16_t pcm[2 * TONE_FRAME];
    size_t fr = (size_t)s->rate / 50, ch = (size_t)s->channels;
    uint64_t at = i * fr; /* the sample it starts at */
    double sum = 0;
    if (i != s->enc_next) return SFU_EINVAL; /* the encoder's state is that of i - 1 */
    for (size_t k = 0; k < fr; k++)
      for (size_t c = 0; c < ch; c++) {
        int16_t v = s->pcm ? s->pcm[((at + k) % s->pcm_frames) * ch + c]
                           : (int16_t)lrint(TONE_AMPLITUDE * 32767 *
                                            sin(2 * M_PI * s->freq * (double)(at + k) / s->rate));
        pcm[k * ch + c] = v;
        sum += (double)v * v;
      }
    double rms = sqrt(sum / (double)(fr * ch)) / 32768.0;
    int level = rms > 0 ? (int)lround(-20 * log10(rms)) : 127;
    if (cap < 20 + 1275) return SFU_E2BIG;
    size_t h = rtp_header(out, i == 0, s->pt, (uint16_t)i, (uint32_t)(i * TONE_FRAME), ssrc,
                          level_ext, level > 127 ? 127 : level);
    int n = opus_encode(s->enc, pcm, (int)fr, out + h, (opus_int32)(cap - h));
    if (n < 0) return SFU_EPROTO;
    s->enc_next++;
    sfu_source_at(s, i, loops, at_us);
    return (int)h + n;
  }
  if (!sfu_source_at(s, i, loops, at_us)) return 0;
  uint64_t pass = i / s->npkts;
  const sfu_src_pkt_t *e = &s->pkts[i % s->npkts];
  if (20 + (size_t)e->len > cap) return SFU_E2BIG;
  size_t h = rtp_header(out, e->marker, s->pt, (uint16_t)(e->seq + pass * s->seq_span),
                        (uint32_t)(e->ts + pass * s->ts_span), ssrc,
                        strcasecmp(s->codec, "opus") == 0 ? level_ext : 0, e->level);
  memcpy(out + h, s->bytes + e->off, e->len);
  return (int)(h + e->len);
}

int sfu_source_mark_keyframes(sfu_source_t *s) {
  sfu_video_parse_fn parse = s->pcm || s->enc ? NULL : sfu_video_parser(s->codec);
  sfu_video_info_t vi;
  int n = 0;
  for (size_t k = 0; k < s->npkts; k++) {
    sfu_src_pkt_t *e = &s->pkts[k];
    e->key = parse && sfu_source_starts_picture(s, k) &&
             parse(s->bytes + e->off, e->len, &vi) == 0 && vi.keyframe && vi.begins_frame;
    n += e->key;
  }
  return n;
}

int sfu_source_starts_picture(const sfu_source_t *s, uint64_t i) {
  if (s->pcm || s->enc || s->npkts == 0) return 0;
  size_t k = (size_t)(i % s->npkts);
  return k == 0 || s->pkts[k].ts != s->pkts[k - 1].ts;
}

uint64_t sfu_source_next_keyframe(const sfu_source_t *s, uint64_t i, int loops) {
  uint64_t end = (uint64_t)s->npkts * (uint64_t)(loops > 0 ? loops : 1);
  if (s->pcm || s->enc || s->npkts == 0) return UINT64_MAX;
  /* at most one pass from i: every packet of the capture is looked at once */
  for (uint64_t x = i; x < end && x < i + s->npkts; x++)
    if (s->pkts[x % s->npkts].key) return x;
  return UINT64_MAX;
}

void sfu_source_free(sfu_source_t *s) {
  free(s->pcm);
  free(s->pkts);
  free(s->bytes);
  if (s->enc) opus_encoder_destroy(s->enc);
  memset(s, 0, sizeof(*s));
}
