/*
 * test_sdp.c -- the SDP parser and writer against real offers and answers
 * (tests/data/sdp/: Chromium 156 and aiortc 1.4, captured on this machine;
 * docs/internals/sdp.md says how), their roundtrip through the writer, the
 * limits, and malformed input.
 *
 * Fixtures are read from $SFU_TEST_DATA/sdp/, by default tests/data/sdp/
 * next to this file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sfu/base/sfu.h"
#include "signaling/sdp.h"

#define OPUS_FMTP "minptime=10;useinbandfec=1"
#define URI_AUDIO_LEVEL "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
#define URI_MID "urn:ietf:params:rtp-hdrext:sdes:mid"
#define URI_RID "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
#define URI_TWCC "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
#define MSID_STREAM "63217512-1b42-47f5-902c-85cce1ca4f9e"
#define MSID_AUDIO "dbb4dde9-096c-4dba-a154-64c96a64dab4"
#define MSID_VIDEO "4f310ac1-1278-4752-a315-a0e5b73b0b8a"

static const char *fixtures[] = {
    "chromium_offer_audio.sdp",         "chromium_offer_av_simulcast.sdp",
    "chromium_offer_av_datachannel.sdp", "chromium_answer_av_datachannel.sdp",
    "chromium_offer_stopped_video.sdp", "aiortc_offer.sdp",
    "aiortc_offer_datachannel.sdp",     "aiortc_offer_ipv6.sdp",
};

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */

static char *load(const char *name, size_t *len) {
  char path[1024];
  const char *env = getenv("SFU_TEST_DATA");
  const char *slash = strrchr(__FILE__, '/');
  FILE *f;
  char *buf;
  long n;
  if (env && *env)
    snprintf(path, sizeof(path), "%s/sdp/%s", env, name);
  else if (slash)
    snprintf(path, sizeof(path), "%.*s/data/sdp/%s", (int)(slash - __FILE__), __FILE__, name);
  else
    snprintf(path, sizeof(path), "data/sdp/%s", name);
  f = fopen(path, "rb");
  if (!f) fail_msg("cannot open fixture %s (set SFU_TEST_DATA)", path);
  assert_int_equal(fseek(f, 0, SEEK_END), 0);
  n = ftell(f);
  assert_true(n > 0);
  rewind(f);
  buf = malloc((size_t)n + 1);
  assert_non_null(buf);
  assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
  buf[n] = '\0';
  fclose(f);
  *len = (size_t)n;
  return buf;
}

static void parse_fixture(const char *name, sfu_sdp_t *out) {
  size_t len;
  char *text = load(name, &len);
  const char *err = "unset";
  int rv = sfu_sdp_parse(text, len, out, &err);
  if (rv) fail_msg("%s: %s (%s)", name, sfu_err_name(rv), err ? err : "?");
  assert_null(err);
  free(text);
}

static int parse_str(const char *text, sfu_sdp_t *out, const char **err) {
  return sfu_sdp_parse(text, strlen(text), out, err);
}

static const uint8_t *fp_bytes(const char *hex, uint8_t *buf) {
  assert_int_equal(sfu_sdp_fingerprint_parse(hex, buf, 64), 32);
  return buf;
}

static void assert_codec(const sfu_sdp_codec_t *c, int pt, const char *name, int clock, int channels,
                         const char *fmtp, unsigned fb, int apt) {
  assert_int_equal(c->pt, pt);
  assert_string_equal(c->name, name);
  assert_int_equal(c->clock, clock);
  assert_int_equal(c->channels, channels);
  assert_string_equal(c->fmtp, fmtp);
  assert_int_equal(c->fb, fb);
  assert_int_equal(c->rtx_apt, apt);
}

/* Chromium's audio m-section: the same eight codecs in every offer. */
static void assert_chromium_audio_codecs(const sfu_sdp_media_t *m) {
  assert_int_equal(m->ncodecs, 8);
  assert_codec(&m->codecs[0], 111, "opus", 48000, 2, OPUS_FMTP, SFU_FB_TWCC, -1);
  assert_codec(&m->codecs[1], 63, "red", 48000, 2, "111/111", 0, -1);
  assert_codec(&m->codecs[2], 9, "G722", 8000, 1, "", 0, -1);
  assert_codec(&m->codecs[3], 0, "PCMU", 8000, 1, "", 0, -1);
  assert_codec(&m->codecs[4], 8, "PCMA", 8000, 1, "", 0, -1);
  assert_codec(&m->codecs[5], 13, "CN", 8000, 1, "", 0, -1);
  assert_codec(&m->codecs[6], 110, "telephone-event", 48000, 1, "", 0, -1);
  assert_codec(&m->codecs[7], 126, "telephone-event", 8000, 1, "", 0, -1);
  assert_int_equal(m->next, 4);
  assert_int_equal(sfu_sdp_find_ext(m, URI_AUDIO_LEVEL), 1);
  assert_int_equal(sfu_sdp_find_ext(m, URI_TWCC), 3);
  assert_int_equal(sfu_sdp_find_ext(m, URI_MID), 4);
}

/* The first 16 of Chromium's 23 video payload types (the rest are dropped). */
static void assert_chromium_video_codecs(const sfu_sdp_media_t *m) {
  static const int pts[16] = {96, 97, 102, 103, 104, 107, 108, 109,
                              114, 115, 116, 117, 39, 40, 45, 46};
  const unsigned all = SFU_FB_NACK | SFU_FB_PLI | SFU_FB_FIR | SFU_FB_REMB | SFU_FB_TWCC;
  assert_int_equal(m->ncodecs, SFU_SDP_MAX_CODECS);
  for (int i = 0; i < 16; i++) {
    assert_int_equal(m->codecs[i].pt, pts[i]);
    if (i % 2) { /* every other one is the RTX of the one before */
      assert_codec(&m->codecs[i], pts[i], "rtx", 90000, 0, "", 0, pts[i - 1]);
    } else {
      assert_int_equal(m->codecs[i].fb, all);
      assert_int_equal(m->codecs[i].rtx_apt, -1);
    }
  }
  assert_codec(&m->codecs[0], 96, "VP8", 90000, 0, "", all, -1);
  assert_codec(&m->codecs[2], 102, "H264", 90000, 0,
               "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f", all, -1);
  assert_codec(&m->codecs[14], 45, "AV1", 90000, 0, "level-idx=5;profile=0;tier=0", all, -1);
  assert_null(sfu_sdp_find_codec(m, "VP9", 90000)); /* pt 98, 17th: dropped */
  assert_ptr_equal(sfu_sdp_find_codec(m, "h264", 0), &m->codecs[2]);
}

/* Every field, so the roundtrip test misses nothing. */
static void assert_media_equal(const sfu_sdp_media_t *a, const sfu_sdp_media_t *b) {
  assert_string_equal(a->kind, b->kind);
  assert_int_equal(a->port, b->port);
  assert_string_equal(a->proto, b->proto);
  assert_string_equal(a->fmt, b->fmt);
  assert_string_equal(a->mid, b->mid);
  assert_int_equal(a->dir, b->dir);
  assert_int_equal(a->rtcp_mux, b->rtcp_mux);
  assert_int_equal(a->rtcp_rsize, b->rtcp_rsize);
  assert_int_equal(a->bundle_only, b->bundle_only);
  assert_string_equal(a->ice_ufrag, b->ice_ufrag);
  assert_string_equal(a->ice_pwd, b->ice_pwd);
  assert_string_equal(a->fp_alg, b->fp_alg);
  assert_int_equal(a->fp_len, b->fp_len);
  assert_memory_equal(a->fp, b->fp, a->fp_len);
  assert_string_equal(a->setup, b->setup);
  assert_int_equal(a->ncodecs, b->ncodecs);
  for (int i = 0; i < a->ncodecs; i++) {
    const sfu_sdp_codec_t *x = &a->codecs[i], *y = &b->codecs[i];
    assert_codec(y, x->pt, x->name, x->clock, x->channels, x->fmtp, x->fb, x->rtx_apt);
  }
  assert_int_equal(a->next, b->next);
  for (int i = 0; i < a->next; i++) {
    assert_int_equal(a->ext[i].id, b->ext[i].id);
    assert_string_equal(a->ext[i].uri, b->ext[i].uri);
  }
  assert_int_equal(a->nssrcs, b->nssrcs);
  assert_memory_equal(a->ssrcs, b->ssrcs, (size_t)a->nssrcs * sizeof(a->ssrcs[0]));
  assert_string_equal(a->cname, b->cname);
  assert_int_equal(a->has_fid, b->has_fid);
  if (a->has_fid) assert_memory_equal(a->fid_ssrc, b->fid_ssrc, sizeof(a->fid_ssrc));
  assert_int_equal(a->nsim, b->nsim);
  assert_memory_equal(a->sim_ssrcs, b->sim_ssrcs, (size_t)a->nsim * sizeof(a->sim_ssrcs[0]));
  assert_string_equal(a->msid_stream, b->msid_stream);
  assert_string_equal(a->msid_track, b->msid_track);
  assert_int_equal(a->nrids, b->nrids);
  for (int i = 0; i < a->nrids; i++) {
    assert_string_equal(a->rids[i].rid, b->rids[i].rid);
    assert_int_equal(a->rids[i].send, b->rids[i].send);
  }
  assert_int_equal(a->has_simulcast, b->has_simulcast);
  assert_int_equal(a->ncandidates, b->ncandidates);
  for (int i = 0; i < a->ncandidates; i++) assert_string_equal(a->candidates[i], b->candidates[i]);
  assert_int_equal(a->end_of_candidates, b->end_of_candidates);
  assert_string_equal(a->sctp_port, b->sctp_port);
  assert_int_equal(a->max_message_size, b->max_message_size);
}

static void assert_sdp_equal(const sfu_sdp_t *a, const sfu_sdp_t *b) {
  assert_true(a->session_id == b->session_id);
  assert_true(a->session_version == b->session_version);
  assert_string_equal(a->origin_user, b->origin_user);
  assert_int_equal(a->nbundle, b->nbundle);
  for (int i = 0; i < a->nbundle; i++) assert_int_equal(a->bundle[i], b->bundle[i]);
  assert_int_equal(a->ice_lite, b->ice_lite);
  assert_int_equal(a->ice_options_trickle, b->ice_options_trickle);
  assert_int_equal(a->extmap_allow_mixed, b->extmap_allow_mixed);
  assert_int_equal(a->nmedia, b->nmedia);
  for (int i = 0; i < a->nmedia; i++) assert_media_equal(&a->media[i], &b->media[i]);
}

/* Writes `s` into a fresh buffer (caller frees) and returns it. */
static char *write_sdp(const sfu_sdp_t *s, int *len) {
  size_t cap = 1 << 20;
  char *buf = malloc(cap);
  assert_non_null(buf);
  *len = sfu_sdp_write(s, buf, cap);
  assert_true(*len > 0);
  assert_int_equal(strlen(buf), (size_t)*len);
  return buf;
}

/* Appends to a growing test text. */
typedef struct {
  char *p;
  size_t len, cap;
} text_t;

static void add(text_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(text_t *t, const char *fmt, ...) {
  va_list ap;
  int n;
  va_start(ap, fmt);
  n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  assert_true(n >= 0);
  if (t->len + (size_t)n + 1 > t->cap) {
    t->cap = (t->len + (size_t)n + 1) * 2;
    t->p = realloc(t->p, t->cap);
    assert_non_null(t->p);
  }
  va_start(ap, fmt);
  vsnprintf(t->p + t->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  t->len += (size_t)n;
}

#define HEAD "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
#define FP_SHA256                                                                              \
  "DD:C0:3E:61:C5:57:BD:CF:9F:E8:E6:BB:EF:3F:E2:F4:4B:F2:D9:4B:3A:F7:B1:DC:CD:5D:0B:03:B8:13:" \
  "56:66"
#define AUDIO_M "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=rtpmap:111 opus/48000/2\r\n"

/* ------------------------------------------------------------------------ */
/* Real descriptions                                                        */

static void chromium_audio_offer(void **state) {
  sfu_sdp_t s;
  uint8_t fp[64];
  parse_fixture("chromium_offer_audio.sdp", &s);
  assert_true(s.session_id == 8153782243835640292ull);
  assert_true(s.session_version == 2);
  assert_string_equal(s.origin_user, "-");
  assert_int_equal(s.nmedia, 1);
  assert_int_equal(s.nbundle, 1);
  assert_int_equal(s.bundle[0], 0);
  assert_int_equal(s.ice_lite, 0);
  assert_int_equal(s.ice_options_trickle, 1);
  assert_int_equal(s.extmap_allow_mixed, 1);

  sfu_sdp_media_t *m = &s.media[0];
  assert_string_equal(m->kind, "audio");
  assert_int_equal(m->port, 56045);
  assert_string_equal(m->proto, "UDP/TLS/RTP/SAVPF");
  assert_string_equal(m->mid, "0");
  assert_int_equal(m->dir, SFU_DIR_SENDRECV);
  assert_int_equal(m->rtcp_mux, 1);
  assert_int_equal(m->rtcp_rsize, 1);
  assert_string_equal(m->ice_ufrag, "3YJ7");
  assert_string_equal(m->ice_pwd, "JIfOD/K/FdTNcUI9AlTGx8l4");
  assert_string_equal(m->fp_alg, "sha-256");
  assert_int_equal(m->fp_len, 32);
  assert_memory_equal(m->fp,
                      fp_bytes("D8:E3:13:89:9F:46:74:9F:01:6A:0D:22:71:51:5B:24:9D:84:F4:AD:A3:11:42:"
                               "BF:1A:81:B0:03:43:AF:BD:B5",
                               fp),
                      32);
  assert_int_equal(m->fp[0], 0xD8);
  assert_int_equal(m->fp[31], 0xB5);
  assert_string_equal(m->setup, "actpass");
  assert_chromium_audio_codecs(m);
  assert_ptr_equal(sfu_sdp_find_codec(m, "opus", 48000), &m->codecs[0]);
  assert_ptr_equal(sfu_sdp_find_codec(m, "telephone-event", 8000), &m->codecs[7]);
  assert_null(sfu_sdp_find_codec(m, "opus", 8000));
  assert_int_equal(sfu_sdp_find_ext(m, URI_RID), 0);
  assert_int_equal(m->nssrcs, 1);
  assert_int_equal(m->ssrcs[0], 2851923199u);
  assert_string_equal(m->cname, "/uGFuZA4JF94l5ll");
  assert_int_equal(m->has_fid, 0);
  assert_int_equal(m->nsim, 0);
  assert_string_equal(m->msid_stream, MSID_STREAM);
  assert_string_equal(m->msid_track, MSID_AUDIO);
  assert_int_equal(m->nrids, 0);
  assert_int_equal(m->has_simulcast, 0);
  /* udp + tcp, each on 127.0.0.1, 192.0.2.2, ::1, fd00::2 */
  assert_int_equal(m->ncandidates, 8);
  assert_true(strncmp(m->candidates[0], "candidate:", 10) == 0);
  assert_non_null(strstr(m->candidates[0], " 1 udp 2122194687 127.0.0.1 56045 typ host"));
  assert_non_null(strstr(m->candidates[7], " tcp "));
  assert_non_null(strstr(m->candidates[7], "tcptype active"));
  assert_int_equal(m->end_of_candidates, 0);
  assert_int_equal(sfu_sdp_find_mid(&s, "0"), 0);
  assert_int_equal(sfu_sdp_find_mid(&s, "1"), -1);
  sfu_sdp_free(&s);
}

static void chromium_simulcast_offer(void **state) {
  sfu_sdp_t s;
  parse_fixture("chromium_offer_av_simulcast.sdp", &s);
  assert_int_equal(s.nmedia, 2);
  assert_int_equal(s.nbundle, 2);
  assert_int_equal(s.bundle[0], 0);
  assert_int_equal(s.bundle[1], 1);
  assert_chromium_audio_codecs(&s.media[0]);
  assert_int_equal(s.media[0].nssrcs, 1);
  assert_int_equal(s.media[0].ssrcs[0], 3411661056u);

  sfu_sdp_media_t *v = &s.media[1];
  assert_string_equal(v->kind, "video");
  assert_string_equal(v->mid, "1");
  assert_int_equal(v->port, 33177);
  assert_int_equal(v->dir, SFU_DIR_SENDONLY);
  assert_string_equal(v->ice_ufrag, "FbuS");
  assert_string_equal(v->ice_ufrag, s.media[0].ice_ufrag); /* one transport */
  assert_memory_equal(v->fp, s.media[0].fp, 32);
  assert_chromium_video_codecs(v);
  assert_int_equal(v->next, 13);
  assert_int_equal(sfu_sdp_find_ext(v, URI_MID), 4);
  assert_int_equal(sfu_sdp_find_ext(v, URI_RID), 10);
  assert_int_equal(sfu_sdp_find_ext(v, "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"), 11);
  assert_int_equal(sfu_sdp_find_ext(v, "urn:ietf:params:rtp-hdrext:toffset"), 14);
  assert_int_equal(sfu_sdp_find_ext(v, URI_AUDIO_LEVEL), 0);
  /* RID simulcast: no a=ssrc at all in the video section */
  assert_int_equal(v->nssrcs, 0);
  assert_string_equal(v->cname, "");
  assert_int_equal(v->nrids, 3);
  assert_string_equal(v->rids[0].rid, "q");
  assert_string_equal(v->rids[1].rid, "h");
  assert_string_equal(v->rids[2].rid, "f");
  for (int i = 0; i < 3; i++) assert_int_equal(v->rids[i].send, 1);
  assert_int_equal(v->has_simulcast, 1);
  assert_string_equal(v->msid_stream, MSID_STREAM);
  assert_string_equal(v->msid_track, MSID_VIDEO);
  assert_int_equal(v->ncandidates, 8);
  sfu_sdp_free(&s);
}

static void chromium_av_datachannel_offer(void **state) {
  sfu_sdp_t s;
  parse_fixture("chromium_offer_av_datachannel.sdp", &s);
  assert_int_equal(s.nmedia, 4);
  assert_int_equal(s.nbundle, 4);
  for (int i = 0; i < 4; i++) {
    char mid[2] = {(char)('0' + i), 0};
    assert_string_equal(s.media[i].mid, mid);
    assert_int_equal(s.bundle[i], i);
    assert_string_equal(s.media[i].ice_ufrag, "gaYn");
    assert_string_equal(s.media[i].ice_pwd, "+C84gNLEcWQsRfBdyRy5fCiK");
    assert_string_equal(s.media[i].setup, "actpass");
    assert_int_equal(s.media[i].fp_len, 32);
  }
  assert_int_equal(s.media[0].ssrcs[0], 3582579638u);

  sfu_sdp_media_t *v = &s.media[1];
  assert_chromium_video_codecs(v);
  assert_int_equal(v->dir, SFU_DIR_SENDRECV);
  assert_int_equal(v->has_fid, 1);
  assert_int_equal(v->fid_ssrc[0], 3177131562u);
  assert_int_equal(v->fid_ssrc[1], 898014949u);
  assert_int_equal(v->nssrcs, 2);
  assert_int_equal(v->ssrcs[0], 3177131562u);
  assert_int_equal(v->ssrcs[1], 898014949u);
  assert_string_equal(v->cname, "kQGEYrB5zRqLi4Aj");
  assert_string_equal(v->msid_track, MSID_VIDEO);
  assert_int_equal(v->nrids, 0);

  sfu_sdp_media_t *a2 = &s.media[2]; /* addTransceiver('audio', recvonly) */
  assert_string_equal(a2->kind, "audio");
  assert_int_equal(a2->dir, SFU_DIR_RECVONLY);
  assert_int_equal(a2->nssrcs, 0);
  assert_string_equal(a2->msid_stream, "");
  assert_chromium_audio_codecs(a2);

  sfu_sdp_media_t *d = &s.media[3];
  assert_string_equal(d->kind, "application");
  assert_string_equal(d->proto, "UDP/DTLS/SCTP");
  assert_string_equal(d->fmt, "webrtc-datachannel");
  assert_int_equal(d->ncodecs, 0);
  assert_string_equal(d->sctp_port, "5000");
  assert_int_equal(d->max_message_size, 262144);
  assert_int_equal(d->rtcp_mux, 0);
  assert_int_equal(d->ncandidates, 8);
  int len;
  char *out = write_sdp(&s, &len);
  assert_non_null(strstr(out, "m=application 41006 UDP/DTLS/SCTP webrtc-datachannel\r\n"));
  assert_non_null(strstr(out, "a=sctp-port:5000\r\na=max-message-size:262144\r\n"));
  free(out);
  sfu_sdp_free(&s);
}

static void chromium_answer(void **state) {
  sfu_sdp_t s;
  uint8_t fp[64];
  parse_fixture("chromium_answer_av_datachannel.sdp", &s);
  assert_true(s.session_id == 40352166113710528ull);
  assert_int_equal(s.nmedia, 4);
  assert_int_equal(s.nbundle, 4);
  fp_bytes("72:B7:23:A4:20:A5:F1:02:3F:92:49:6D:64:BA:B1:C8:31:4A:13:FB:CF:F2:92:7F:71:DE:CB:B0:41:"
           "FE:19:3E",
           fp);
  for (int i = 0; i < 4; i++) {
    assert_string_equal(s.media[i].setup, "active");
    assert_string_equal(s.media[i].ice_ufrag, "/uqE");
    assert_memory_equal(s.media[i].fp, fp, 32);
    assert_int_equal(s.media[i].nssrcs, 0); /* answerer sends nothing */
  }
  /* Only the BUNDLE-tagged section carries the port and candidates. */
  assert_int_equal(s.media[0].port, 42863);
  assert_int_equal(s.media[0].ncandidates, 4);
  assert_int_equal(s.media[1].port, 9);
  assert_int_equal(s.media[1].ncandidates, 0);
  assert_int_equal(s.media[0].dir, SFU_DIR_RECVONLY);
  assert_int_equal(s.media[1].dir, SFU_DIR_RECVONLY);
  assert_int_equal(s.media[2].dir, SFU_DIR_INACTIVE); /* recvonly offered */
  assert_chromium_audio_codecs(&s.media[0]);
  assert_chromium_video_codecs(&s.media[1]);
  assert_int_equal(s.media[1].next, 11);
  assert_string_equal(s.media[3].sctp_port, "5000");
  sfu_sdp_free(&s);
}

static void chromium_stopped_transceiver(void **state) {
  sfu_sdp_t s;
  parse_fixture("chromium_offer_stopped_video.sdp", &s);
  assert_int_equal(s.nmedia, 2);
  assert_true(s.session_version == 3); /* second offer of the session */
  assert_int_equal(s.nbundle, 1);      /* the stopped section left BUNDLE */
  assert_int_equal(s.bundle[0], 0);
  assert_chromium_audio_codecs(&s.media[0]);

  /* Chromium writes the full section with port 0; it is kept rejected,
   * without its codecs (what a rejected section lists means nothing). */
  sfu_sdp_media_t *v = &s.media[1];
  assert_string_equal(v->kind, "video");
  assert_int_equal(v->port, 0);
  assert_string_equal(v->mid, "1");
  assert_int_equal(v->dir, SFU_DIR_INACTIVE);
  assert_int_equal(v->ncodecs, 0);
  assert_string_equal(v->ice_ufrag, "");
  assert_int_equal(v->fp_len, 0);
  assert_int_equal(v->next, 0);
  assert_int_equal(v->ncandidates, 0);
  assert_int_equal(v->nssrcs, 0);
  sfu_sdp_free(&s);
}

static void aiortc_offer(void **state) {
  sfu_sdp_t s;
  uint8_t fp[64];
  parse_fixture("aiortc_offer.sdp", &s);
  assert_true(s.session_id == 4004686480ull);
  assert_true(s.session_version == 4004686480ull);
  assert_int_equal(s.nmedia, 2);
  assert_int_equal(s.nbundle, 2);
  assert_int_equal(s.ice_options_trickle, 0);
  assert_int_equal(s.extmap_allow_mixed, 0);
  fp_bytes("E7:6A:17:BF:99:E8:86:28:3D:69:85:A2:D2:2F:08:3B:3C:81:67:58:D8:73:CE:A1:76:90:13:8D:EF:F6:"
           "5A:9D",
           fp);

  sfu_sdp_media_t *a = &s.media[0];
  assert_string_equal(a->mid, "0");
  assert_int_equal(a->port, 34830);
  assert_int_equal(a->dir, SFU_DIR_SENDRECV);
  /* aiortc gathers per transceiver: each section its own ICE credentials */
  assert_string_equal(a->ice_ufrag, "viGE");
  assert_string_equal(a->ice_pwd, "IhvaLkBtMcosbII4vb4RP5");
  assert_string_equal(s.media[1].ice_ufrag, "QGvG");
  assert_string_equal(s.media[1].ice_pwd, "Ub2jKw47HWhk9Se6EcY45N");
  assert_memory_equal(a->fp, fp, 32);
  assert_memory_equal(s.media[1].fp, fp, 32);
  assert_string_equal(a->setup, "actpass");
  assert_int_equal(a->rtcp_mux, 1);
  assert_int_equal(a->rtcp_rsize, 0);
  assert_int_equal(a->ncodecs, 3);
  assert_codec(&a->codecs[0], 96, "opus", 48000, 2, "", 0, -1);
  assert_codec(&a->codecs[1], 0, "PCMU", 8000, 1, "", 0, -1);
  assert_codec(&a->codecs[2], 8, "PCMA", 8000, 1, "", 0, -1);
  assert_int_equal(a->next, 2);
  assert_int_equal(sfu_sdp_find_ext(a, URI_MID), 1);
  assert_int_equal(sfu_sdp_find_ext(a, URI_AUDIO_LEVEL), 2);
  assert_int_equal(a->nssrcs, 1);
  assert_int_equal(a->ssrcs[0], 1132227791u);
  assert_string_equal(a->cname, "316d9c61-525e-45dc-b6ac-9e407e7f8d26");
  assert_string_equal(a->msid_stream, "7518b1d7-c9f5-4a6a-a203-6307ddadc10a");
  assert_string_equal(a->msid_track, "96b3e3b2-9c07-4b45-a923-dc88565a12b7");
  assert_int_equal(a->ncandidates, 1);
  assert_string_equal(a->candidates[0],
                      "candidate:16572de626da4e5384a0ce2d0d93678a 1 udp 2130706431 127.0.0.1 34830 typ host");
  assert_int_equal(a->end_of_candidates, 1);

  sfu_sdp_media_t *v = &s.media[1];
  const unsigned fb = SFU_FB_NACK | SFU_FB_PLI | SFU_FB_REMB;
  assert_int_equal(v->ncodecs, 6);
  assert_codec(&v->codecs[0], 97, "VP8", 90000, 0, "", fb, -1);
  assert_codec(&v->codecs[1], 98, "rtx", 90000, 0, "", 0, 97);
  assert_codec(&v->codecs[2], 99, "H264", 90000, 0,
               "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f", fb, -1);
  assert_codec(&v->codecs[3], 100, "rtx", 90000, 0, "", 0, 99);
  assert_codec(&v->codecs[4], 101, "H264", 90000, 0,
               "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f", fb, -1);
  assert_codec(&v->codecs[5], 102, "rtx", 90000, 0, "", 0, 101);
  assert_int_equal(sfu_sdp_find_ext(v, "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"), 2);
  assert_int_equal(v->has_fid, 1);
  assert_int_equal(v->fid_ssrc[0], 2351173548u);
  assert_int_equal(v->fid_ssrc[1], 2124626440u);
  assert_int_equal(v->nssrcs, 2);
  assert_int_equal(v->ssrcs[0], 2351173548u);
  assert_int_equal(v->ssrcs[1], 2124626440u);
  assert_int_equal(v->ncandidates, 1);
  assert_int_equal(v->end_of_candidates, 1);
  sfu_sdp_free(&s);
}

static void aiortc_datachannel_offer(void **state) {
  sfu_sdp_t s;
  parse_fixture("aiortc_offer_datachannel.sdp", &s);
  assert_int_equal(s.nmedia, 3);
  assert_int_equal(s.nbundle, 3);
  sfu_sdp_media_t *d = &s.media[2];
  assert_string_equal(d->kind, "application");
  assert_string_equal(d->proto, "DTLS/SCTP"); /* the pre-RFC 8841 form */
  assert_string_equal(d->fmt, "5000");
  assert_string_equal(d->sctp_port, "5000"); /* from a=sctpmap */
  assert_int_equal(d->max_message_size, 65536);
  assert_string_equal(d->mid, "2");
  assert_string_equal(d->ice_ufrag, "MWpU");
  assert_int_equal(d->ncandidates, 1);
  assert_int_equal(d->end_of_candidates, 1);
  assert_int_equal(s.media[1].fid_ssrc[0], 500493342u);
  /* Chromium refuses a=sctp-port next to a port-number format: the old
   * style is written back in the old style. */
  int len;
  char *out = write_sdp(&s, &len);
  assert_non_null(strstr(out, "m=application 45983 DTLS/SCTP 5000\r\n"));
  assert_non_null(strstr(out, "a=sctpmap:5000 webrtc-datachannel 65535\r\n"));
  assert_null(strstr(out, "a=sctp-port"));
  free(out);
  sfu_sdp_free(&s);
}

/* aiortc gathering on ::1 only: c=IN IP6 ::1 (ignored, as every c=) and
 * one IPv6 host candidate, kept as written; the writer puts it back with
 * no brackets, and its c= lines stay the IN IP4 0.0.0.0 placeholder of an
 * ICE description of either family (RFC 8839 5.1, JSEP 5.2.1). */
static void aiortc_ipv6_offer(void **state) {
  sfu_sdp_t s;
  parse_fixture("aiortc_offer_ipv6.sdp", &s);
  assert_int_equal(s.nmedia, 1);
  sfu_sdp_media_t *m = &s.media[0];
  assert_int_equal(m->port, 36094);
  assert_int_equal(m->ncandidates, 1);
  assert_string_equal(m->candidates[0],
                      "candidate:365cbcb59afe9901aaa0f5cc9c9b5eea 1 udp 2130706431 ::1 36094 typ host");
  assert_int_equal(m->end_of_candidates, 1);
  int len;
  char *out = write_sdp(&s, &len);
  assert_non_null(strstr(out, "\r\na=candidate:365cbcb59afe9901aaa0f5cc9c9b5eea 1 udp 2130706431 "
                              "::1 36094 typ host\r\n"));
  assert_null(strstr(out, "["));
  assert_non_null(strstr(out, "\r\nc=IN IP4 0.0.0.0\r\n"));
  assert_null(strstr(out, "IP6"));
  free(out);
  sfu_sdp_free(&s);
}

/* parse -> write -> parse gives every field back; writing again is stable. */
static void roundtrip_fixtures(void **state) {
  for (size_t f = 0; f < SFU_ARRAY_SIZE(fixtures); f++) {
    sfu_sdp_t a, b, c;
    int len1, len2;
    const char *err;
    parse_fixture(fixtures[f], &a);
    char *text = write_sdp(&a, &len1);
    int rv = sfu_sdp_parse(text, (size_t)len1, &b, &err);
    if (rv) fail_msg("%s rewritten: %s\n%s", fixtures[f], err, text);
    assert_sdp_equal(&a, &b);
    char *again = write_sdp(&b, &len2);
    assert_int_equal(len1, len2);
    assert_string_equal(text, again);
    /* and the LF-only form of the original parses the same */
    size_t olen;
    char *orig = load(fixtures[f], &olen), *lf = malloc(olen + 1);
    size_t n = 0;
    for (size_t i = 0; i < olen; i++)
      if (orig[i] != '\r') lf[n++] = orig[i];
    assert_int_equal(sfu_sdp_parse(lf, n, &c, NULL), 0);
    assert_sdp_equal(&a, &c);
    free(orig);
    free(lf);
    free(text);
    free(again);
    sfu_sdp_free(&a);
    sfu_sdp_free(&b);
    sfu_sdp_free(&c);
  }
}

/* ------------------------------------------------------------------------ */
/* Parser rules                                                             */

static void session_level_values_are_inherited(void **state) {
  sfu_sdp_t s;
  const char *text = HEAD "a=ice-ufrag:sess\r\na=ice-pwd:sessionpasswordsessionpw\r\n"
                          "a=fingerprint:sha-256 " FP_SHA256 "\r\n"
                          "a=setup:passive\r\na=recvonly\r\na=extmap:3 " URI_MID "\r\n"
                          "a=ice-options:trickle renomination\r\na=end-of-candidates\r\n"
                          "a=ice-lite\r\n"
                          "a=group:BUNDLE b a\r\n"
                          "m=audio 9 RTP/SAVPF 0\r\na=mid:a\r\n"
                          "m=audio 9 RTP/SAVPF 8\r\na=mid:b\r\na=ice-ufrag:own\r\na=setup:active\r\n"
                          "a=sendonly\r\na=extmap:3 " URI_AUDIO_LEVEL "\r\na=extmap:5 " URI_RID "\r\n"
                          "a=fingerprint:sha-1 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33\r\n"
                          "a=fingerprint:sha-256 " FP_SHA256 "\r\n";
  assert_int_equal(parse_str(text, &s, NULL), 0);
  assert_int_equal(s.ice_lite, 1);
  assert_int_equal(s.ice_options_trickle, 1);
  assert_int_equal(s.nbundle, 2);
  assert_int_equal(s.bundle[0], 1); /* group order kept: "b" first */
  assert_int_equal(s.bundle[1], 0);
  sfu_sdp_media_t *a = &s.media[0], *b = &s.media[1];
  assert_string_equal(a->ice_ufrag, "sess");
  assert_string_equal(a->ice_pwd, "sessionpasswordsessionpw");
  assert_string_equal(a->setup, "passive");
  assert_int_equal(a->dir, SFU_DIR_RECVONLY);
  assert_int_equal(a->fp_len, 32);
  assert_int_equal(a->fp[0], 0xDD);
  assert_int_equal(a->end_of_candidates, 1);
  assert_int_equal(sfu_sdp_find_ext(a, URI_MID), 3);
  /* static payload types without a=rtpmap get their RFC 3551 names */
  assert_codec(&a->codecs[0], 0, "PCMU", 8000, 1, "", 0, -1);
  assert_codec(&b->codecs[0], 8, "PCMA", 8000, 1, "", 0, -1);
  assert_string_equal(b->ice_ufrag, "own");
  assert_string_equal(b->ice_pwd, "sessionpasswordsessionpw");
  assert_string_equal(b->setup, "active");
  assert_int_equal(b->dir, SFU_DIR_SENDONLY);
  assert_int_equal(b->next, 2); /* id 3 re-mapped, 5 added */
  assert_int_equal(sfu_sdp_find_ext(b, URI_AUDIO_LEVEL), 3);
  assert_int_equal(sfu_sdp_find_ext(b, URI_MID), 0);
  assert_int_equal(sfu_sdp_find_ext(b, URI_RID), 5);
  /* the first media-level fingerprint replaces the session's and wins */
  assert_string_equal(b->fp_alg, "sha-1");
  assert_int_equal(b->fp_len, 20);
  assert_int_equal(b->fp[10], 0xAA);
  sfu_sdp_free(&s);
}

static void fmtp_apt_is_split_out(void **state) {
  sfu_sdp_t s, t;
  int len;
  const char *text = HEAD "m=video 9 UDP/TLS/RTP/SAVPF 96 97 98\r\na=mid:v\r\n"
                          "a=rtpmap:96 VP8/90000\r\na=rtpmap:97 rtx/90000\r\n"
                          "a=fmtp:97 rtx-time=3000; apt=96\r\n"
                          "a=fmtp:98 apt=200;x=1\r\n" /* 200 is no payload type */
                          "a=rtcp-fb:* nack\r\na=rtcp-fb:96 nack pli\r\na=rtcp-fb:96 ccm fir\r\n"
                          "a=rtcp-fb:96 trr-int 100\r\na=rtcp-fb:99 goog-remb\r\n";
  assert_int_equal(parse_str(text, &s, NULL), 0);
  sfu_sdp_media_t *m = &s.media[0];
  assert_codec(&m->codecs[0], 96, "VP8", 90000, 0, "", SFU_FB_NACK | SFU_FB_PLI | SFU_FB_FIR, -1);
  assert_codec(&m->codecs[1], 97, "rtx", 90000, 0, "rtx-time=3000", SFU_FB_NACK, 96);
  assert_codec(&m->codecs[2], 98, "", 0, 0, "apt=200;x=1", SFU_FB_NACK, -1);
  char *out = write_sdp(&s, &len);
  assert_non_null(strstr(out, "a=fmtp:97 apt=96;rtx-time=3000\r\n"));
  assert_non_null(strstr(out, "a=fmtp:98 apt=200;x=1\r\n"));
  assert_null(strstr(out, "a=rtpmap:98"));
  assert_int_equal(sfu_sdp_parse(out, (size_t)len, &t, NULL), 0);
  assert_sdp_equal(&s, &t);
  free(out);
  sfu_sdp_free(&s);
  sfu_sdp_free(&t);
}

/* Entries beyond the arrays, or too long for their field, are dropped. */
static void extra_entries_are_dropped(void **state) {
  text_t t = {0};
  sfu_sdp_t s;
  const char *err;
  add(&t, HEAD "m=video 9 UDP/TLS/RTP/SAVPF");
  for (int pt = 96; pt < 116; pt++) add(&t, " %d", pt);
  add(&t, "\r\na=mid:0\r\n");
  for (int pt = 96; pt < 116; pt++) add(&t, "a=rtpmap:%d VP8/90000\r\n", pt);
  add(&t, "a=rtpmap:97 a-very-long-codec-name/90000\r\n");
  add(&t, "a=fmtp:98 %0200d\r\n", 0);
  for (int id = 1; id <= 17; id++) add(&t, "a=extmap:%d urn:x:%d\r\n", id, id);
  add(&t, "a=extmap:1 urn:%0100d\r\n", 0); /* URI too long: id 1 keeps urn:x:1 */
  for (int i = 0; i < 9; i++) add(&t, "a=candidate:%d 1 udp 1 192.0.2.1 %d typ host\r\n", i, 1000 + i);
  add(&t, "a=candidate:%0200d\r\n", 0);
  for (uint32_t i = 1; i <= 5; i++) add(&t, "a=ssrc:%u cname:c%u\r\n", i, i);
  for (int i = 0; i < 5; i++) add(&t, "a=rid:r%d send\r\n", i);
  add(&t, "a=simulcast:send r0;r1;r2;r3;r4\r\n");
  assert_int_equal(sfu_sdp_parse(t.p, t.len, &s, &err), 0);
  sfu_sdp_media_t *m = &s.media[0];
  assert_int_equal(m->ncodecs, 14); /* 16 kept, then 97 and 98 dropped */
  assert_int_equal(m->codecs[0].pt, 96);
  assert_int_equal(m->codecs[1].pt, 99);
  assert_int_equal(m->codecs[13].pt, 111);
  assert_int_equal(m->next, SFU_SDP_MAX_EXTMAP);
  assert_string_equal(m->ext[0].uri, "urn:x:1");
  assert_int_equal(sfu_sdp_find_ext(m, "urn:x:17"), 0);
  assert_int_equal(m->ncandidates, SFU_SDP_MAX_CANDIDATES);
  assert_string_equal(m->candidates[7], "candidate:7 1 udp 1 192.0.2.1 1007 typ host");
  assert_int_equal(m->nssrcs, SFU_SDP_MAX_SSRCS);
  assert_int_equal(m->ssrcs[3], 4);
  assert_string_equal(m->cname, "c1");
  assert_int_equal(m->nrids, SFU_SDP_MAX_RIDS);
  assert_int_equal(m->has_simulcast, 1);
  sfu_sdp_free(&s);
  free(t.p);
}

static void limits_are_inclusive(void **state) {
  text_t t = {0};
  sfu_sdp_t s;
  const char *err;
  /* 256 m-sections, one of them with a 4096-byte line */
  add(&t, HEAD);
  for (int i = 0; i < SFU_SDP_MAX_MEDIA; i++) add(&t, "m=audio 9 RTP/AVP 0\r\na=mid:%d\r\n", i);
  add(&t, "a=x:");
  for (int i = 4; i < SFU_SDP_MAX_LINE; i++) add(&t, "y");
  add(&t, "\r\n");
  /* pad to exactly 64 KiB with blank-free unknown lines */
  while (t.len < SFU_SDP_MAX_TEXT - 8) add(&t, "a=z\r\n");
  while (t.len < SFU_SDP_MAX_TEXT) add(&t, "\n");
  assert_int_equal(t.len, SFU_SDP_MAX_TEXT);
  assert_int_equal(sfu_sdp_parse(t.p, t.len, &s, &err), 0);
  assert_int_equal(s.nmedia, SFU_SDP_MAX_MEDIA);
  assert_string_equal(s.media[255].mid, "255");
  assert_int_equal(sfu_sdp_find_mid(&s, "200"), 200);
  sfu_sdp_free(&s);
  free(t.p);
}

/* One malformed input and what parsing it must say. */
typedef struct {
  const char *what;
  const char *text; /* NULL: built by the test */
  int code;
  const char *desc; /* expected *err_desc */
} bad_t;

static const bad_t bad[] = {
    {"empty", "", SFU_EPROTO, "no v= line"},
    {"no v= line", "o=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n", SFU_EPROTO, "line 1: first line is not v=0"},
    {"v=1", "v=1\r\no=- 1 1 IN IP4 0.0.0.0\r\n", SFU_EPROTO, "line 1: first line is not v=0"},
    {"no o= line", "v=0\r\ns=-\r\nt=0 0\r\n", SFU_EPROTO, "line 3: no o= line"},
    {"bad o= line", "v=0\r\no=- x 1 IN IP4 0.0.0.0\r\n", SFU_EPROTO, "line 2: bad o= line"},
    {"not type=value", HEAD "hello\r\n", SFU_EPROTO, "line 5: not a <type>=<value> line"},
    {"m-line port not a number", HEAD "m=audio abc UDP/TLS/RTP/SAVPF 111\r\n", SFU_EPROTO,
     "line 5: bad m= line"},
    {"m-line port over 65535", HEAD "m=audio 65536 UDP/TLS/RTP/SAVPF 111\r\n", SFU_EPROTO,
     "line 5: bad m= line"},
    {"m-line without formats", HEAD "m=audio 9 UDP/TLS/RTP/SAVPF\r\n", SFU_EPROTO, "line 5: bad m= line"},
    {"m-line payload type 128", HEAD "m=audio 9 UDP/TLS/RTP/SAVPF 111 128\r\n", SFU_EPROTO,
     "line 5: bad m= payload type"},
    {"rtpmap before any m=", HEAD "a=rtpmap:111 opus/48000/2\r\nm=audio 9 RTP/AVP 111\r\n", SFU_EPROTO,
     "line 5: media attribute before the first m= line"},
    {"rtpmap without clock", HEAD "m=audio 9 RTP/AVP 111\r\na=rtpmap:111 opus\r\n", SFU_EPROTO,
     "line 6: bad a=rtpmap"},
    {"rtpmap bad channels", HEAD "m=audio 9 RTP/AVP 111\r\na=rtpmap:111 opus/48000/two\r\n", SFU_EPROTO,
     "line 6: bad a=rtpmap channels"},
    {"fmtp without pt", HEAD AUDIO_M "a=fmtp:opus minptime=10\r\n", SFU_EPROTO, "line 8: bad a=fmtp"},
    {"rtcp-fb bad pt", HEAD AUDIO_M "a=rtcp-fb:x nack\r\n", SFU_EPROTO, "line 8: bad a=rtcp-fb"},
    {"extmap id 0", HEAD AUDIO_M "a=extmap:0 " URI_MID "\r\n", SFU_EPROTO, "line 8: bad a=extmap"},
    {"ssrc not a number", HEAD AUDIO_M "a=ssrc:-1 cname:x\r\n", SFU_EPROTO, "line 8: bad a=ssrc"},
    {"ssrc over 32 bits", HEAD AUDIO_M "a=ssrc:4294967296 cname:x\r\n", SFU_EPROTO, "line 8: bad a=ssrc"},
    {"FID with one ssrc", HEAD AUDIO_M "a=ssrc-group:FID 1\r\n", SFU_EPROTO,
     "line 8: a=ssrc-group:FID needs two ssrcs"},
    {"bad fingerprint hex", HEAD AUDIO_M "a=fingerprint:sha-256 ZZ:C0:3E\r\n", SFU_EPROTO,
     "line 8: bad a=fingerprint hex"},
    {"fingerprint trailing colon", HEAD AUDIO_M "a=fingerprint:sha-256 " FP_SHA256 ":\r\n", SFU_EPROTO,
     "line 8: bad a=fingerprint hex"},
    {"fingerprint too short for sha-256", HEAD AUDIO_M "a=fingerprint:sha-256 DD:C0:3E\r\n", SFU_EPROTO,
     "line 8: a=fingerprint length does not match its hash"},
    {"fingerprint without hex", HEAD "a=fingerprint:sha-256\r\n", SFU_EPROTO, "line 5: bad a=fingerprint hex"},
    {"bad setup", HEAD AUDIO_M "a=setup:both\r\n", SFU_EPROTO, "line 8: bad a=setup"},
    {"empty ufrag", HEAD "a=ice-ufrag:\r\n", SFU_EPROTO, "line 5: empty a=ice-ufrag"},
    {"ufrag too long", HEAD "a=ice-ufrag:0123456789012345678901234567890123456789012345678901234567890123\r\n",
     SFU_E2BIG, "line 5: a=ice-ufrag too long"},
    {"mid with a blank", HEAD "m=audio 9 RTP/AVP 0\r\na=mid:a b\r\n", SFU_EPROTO, "line 6: bad a=mid"},
    {"mid too long", HEAD "m=audio 9 RTP/AVP 0\r\na=mid:0123456789abcdef0123456789abcdef\r\n", SFU_E2BIG,
     "line 6: a=mid too long"},
    {"duplicate mid", HEAD AUDIO_M "m=audio 9 RTP/AVP 0\r\na=mid:0\r\n", SFU_EPROTO,
     "line 9: duplicate a=mid"},
    {"BUNDLE names an unknown mid", HEAD "a=group:BUNDLE 0 1\r\n" AUDIO_M, SFU_EPROTO,
     "line 5: a=group:BUNDLE names an unknown mid"},
    {"BUNDLE repeats a mid", HEAD "a=group:BUNDLE 0 0\r\n" AUDIO_M, SFU_EPROTO,
     "line 5: a=group:BUNDLE repeats a mid"},
    {"bad rid direction", HEAD AUDIO_M "a=rid:q sendrecv\r\n", SFU_EPROTO, "line 8: bad a=rid"},
    {"bad rid id", HEAD AUDIO_M "a=rid:q.1 send\r\n", SFU_EPROTO, "line 8: bad a=rid id"},
    {"rid too long", HEAD AUDIO_M "a=rid:abcdefghijklmnop send\r\n", SFU_E2BIG, "line 8: a=rid id too long"},
    {"bad simulcast", HEAD AUDIO_M "a=simulcast:both q\r\n", SFU_EPROTO, "line 8: bad a=simulcast"},
    {"msid too long", HEAD AUDIO_M "a=msid:s 0123456789012345678901234567890123456789012345678901234567890123"
                                   "4\r\n",
     SFU_E2BIG, "line 8: msid too long"},
    {"CR inside a line", HEAD "a=mid:0\rx\r\n", SFU_EPROTO, "line 5: CR inside a line"},
};

static void malformed_inputs(void **state) {
  for (size_t i = 0; i < SFU_ARRAY_SIZE(bad); i++) {
    sfu_sdp_t s;
    const char *err = NULL;
    int rv = parse_str(bad[i].text, &s, &err);
    if (rv != bad[i].code || !err || strcmp(err, bad[i].desc) != 0)
      fail_msg("%s: got %s \"%s\", want %s \"%s\"", bad[i].what, sfu_err_name(rv), err ? err : "(null)",
               sfu_err_name(bad[i].code), bad[i].desc);
    assert_null(s.media);
    assert_int_equal(s.nmedia, 0);
    sfu_sdp_free(&s);
    assert_int_equal(parse_str(bad[i].text, &s, NULL), bad[i].code); /* err_desc optional */
  }
}

static void nul_byte(void **state) {
  static const char text[] = HEAD "a=mid:0\0x\r\n";
  sfu_sdp_t s;
  const char *err;
  assert_int_equal(sfu_sdp_parse(text, sizeof(text) - 1, &s, &err), SFU_EPROTO);
  assert_string_equal(err, "line 5: NUL byte");
}

static void oversize_text(void **state) {
  size_t len = SFU_SDP_MAX_TEXT + 1;
  char *text = malloc(len);
  sfu_sdp_t s;
  const char *err;
  memset(text, '\n', len);
  memcpy(text, HEAD, strlen(HEAD));
  assert_int_equal(sfu_sdp_parse(text, len, &s, &err), SFU_E2BIG);
  assert_string_equal(err, "description over 64 KiB");
  free(text);
}

static void line_too_long(void **state) {
  text_t t = {0};
  sfu_sdp_t s;
  const char *err;
  add(&t, HEAD "a=x:");
  for (int i = 4; i < SFU_SDP_MAX_LINE + 1; i++) add(&t, "y");
  add(&t, "\r\n");
  assert_int_equal(sfu_sdp_parse(t.p, t.len, &s, &err), SFU_E2BIG);
  assert_string_equal(err, "line 5: line over 4 KiB");
  free(t.p);
}

static void too_many_media(void **state) {
  text_t t = {0};
  sfu_sdp_t s;
  const char *err;
  add(&t, HEAD);
  for (int i = 0; i < 300; i++) add(&t, "m=audio 9 RTP/AVP 0\r\n");
  assert_int_equal(sfu_sdp_parse(t.p, t.len, &s, &err), SFU_E2BIG);
  assert_string_equal(err, "line 261: more than 256 m= lines");
  assert_null(s.media);
  free(t.p);
}

/* ------------------------------------------------------------------------ */
/* Writer                                                                   */

/* The shape of an answer the room writes: ice-lite, sendonly audio, a
 * rejected video section, candidates. */
static void write_answer(void **state) {
  sfu_sdp_t s, back;
  int len;
  memset(&s, 0, sizeof(s));
  s.media = calloc(2, sizeof(*s.media));
  assert_non_null(s.media);
  s.nmedia = 2;
  s.session_id = 42;
  s.session_version = 7;
  s.ice_lite = 1;
  s.bundle[0] = 0;
  s.nbundle = 1;
  sfu_sdp_media_t *a = &s.media[0], *v = &s.media[1];
  strcpy(a->kind, "audio");
  a->port = 50000;
  strcpy(a->proto, "UDP/TLS/RTP/SAVPF");
  strcpy(a->mid, "0");
  a->dir = SFU_DIR_SENDONLY;
  a->rtcp_mux = a->rtcp_rsize = 1;
  strcpy(a->ice_ufrag, "sfuU");
  strcpy(a->ice_pwd, "sfupasswordsfupassword");
  strcpy(a->fp_alg, "sha-256");
  a->fp_len = (size_t)sfu_sdp_fingerprint_parse(FP_SHA256, a->fp, sizeof(a->fp));
  strcpy(a->setup, "passive");
  a->codecs[0] = (sfu_sdp_codec_t){111, "opus", 48000, 2, OPUS_FMTP, SFU_FB_TWCC, -1};
  a->ncodecs = 1;
  a->ext[0] = (sfu_sdp_extmap_t){1, URI_AUDIO_LEVEL};
  a->ext[1] = (sfu_sdp_extmap_t){4, URI_MID};
  a->next = 2;
  a->ssrcs[0] = 1234;
  a->nssrcs = 1;
  strcpy(a->cname, "sfu");
  strcpy(a->msid_stream, "PA_1");
  strcpy(a->msid_track, "TR_1");
  strcpy(a->candidates[0], "candidate:1 1 UDP 2130706431 192.0.2.1 50000 typ host");
  a->ncandidates = 1;
  a->end_of_candidates = 1;
  strcpy(v->kind, "video");
  strcpy(v->proto, "UDP/TLS/RTP/SAVPF");
  strcpy(v->mid, "1");
  v->codecs[0] = (sfu_sdp_codec_t){96, "VP8", 90000, 0, "", 0, -1};
  v->ncodecs = 1;

  char *out = write_sdp(&s, &len);
  assert_string_equal(out, "v=0\r\n"
                           "o=- 42 7 IN IP4 0.0.0.0\r\n"
                           "s=-\r\n"
                           "t=0 0\r\n"
                           "a=group:BUNDLE 0\r\n"
                           "a=ice-lite\r\n"
                           "a=msid-semantic: WMS *\r\n"
                           "m=audio 50000 UDP/TLS/RTP/SAVPF 111\r\n"
                           "c=IN IP4 0.0.0.0\r\n"
                           "a=rtcp:9 IN IP4 0.0.0.0\r\n"
                           "a=ice-ufrag:sfuU\r\n"
                           "a=ice-pwd:sfupasswordsfupassword\r\n"
                           "a=fingerprint:sha-256 " FP_SHA256 "\r\n"
                           "a=setup:passive\r\n"
                           "a=mid:0\r\n"
                           "a=extmap:1 " URI_AUDIO_LEVEL "\r\n"
                           "a=extmap:4 " URI_MID "\r\n"
                           "a=sendonly\r\n"
                           "a=rtcp-mux\r\n"
                           "a=rtcp-rsize\r\n"
                           "a=rtpmap:111 opus/48000/2\r\n"
                           "a=rtcp-fb:111 transport-cc\r\n"
                           "a=fmtp:111 " OPUS_FMTP "\r\n"
                           "a=ssrc:1234 cname:sfu\r\n"
                           "a=ssrc:1234 msid:PA_1 TR_1\r\n"
                           "a=msid:PA_1 TR_1\r\n"
                           "a=candidate:1 1 UDP 2130706431 192.0.2.1 50000 typ host\r\n"
                           "a=end-of-candidates\r\n"
                           "m=video 0 UDP/TLS/RTP/SAVPF 96\r\n"
                           "c=IN IP4 0.0.0.0\r\n"
                           "a=mid:1\r\n"
                           "a=inactive\r\n");
  /* Back through the parser: the rejected section comes back reduced. */
  assert_int_equal(sfu_sdp_parse(out, (size_t)len, &back, NULL), 0);
  v->dir = SFU_DIR_INACTIVE;
  int had = v->ncodecs;
  v->ncodecs = 0;
  strcpy(s.origin_user, "-"); /* an empty user is written as "-" */
  assert_sdp_equal(&s, &back);
  v->ncodecs = had;

  /* Every buffer too small is refused without overrunning it. */
  for (size_t cap = 0; cap <= (size_t)len; cap++) {
    char *small = malloc(cap ? cap : 1);
    assert_int_equal(sfu_sdp_write(&s, cap ? small : NULL, cap), SFU_E2BIG);
    if (cap) {
      assert_true(strlen(small) < cap);
      assert_memory_equal(small, out, strlen(small));
    }
    free(small);
  }
  char *exact = malloc((size_t)len + 1);
  assert_int_equal(sfu_sdp_write(&s, exact, (size_t)len + 1), len);
  assert_string_equal(exact, out);

  /* A BUNDLE entry must name a section that has a mid. */
  s.bundle[1] = 2;
  s.nbundle = 2;
  assert_int_equal(sfu_sdp_write(&s, exact, (size_t)len + 1), SFU_EINVAL);
  free(exact);
  free(out);
  sfu_sdp_free(&back);
  sfu_sdp_free(&s);
  sfu_sdp_free(&s); /* twice is fine */
}

static void write_simulcast_and_groups(void **state) {
  sfu_sdp_t s, back;
  int len;
  const char *text = HEAD "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:v\r\na=rtpmap:96 VP8/90000\r\n"
                          "a=rid:lo send\r\na=rid:hi send\r\na=rid:in recv\r\n"
                          "a=simulcast:send lo;hi recv in\r\n"
                          "a=ssrc-group:SIM 1 2 3\r\na=ssrc-group:FID 1 4\r\n"
                          "a=ssrc:1 cname:x\r\na=msid:- trk\r\n"
                          "m=audio 0 RTP/AVP 0\r\na=bundle-only\r\na=mid:b\r\n";
  assert_int_equal(parse_str(text, &s, NULL), 0);
  assert_int_equal(s.media[0].nsim, 3);
  assert_int_equal(s.media[0].sim_ssrcs[2], 3);
  assert_string_equal(s.media[0].msid_stream, "-");
  assert_int_equal(s.media[1].bundle_only, 1);
  assert_int_equal(s.media[1].dir, SFU_DIR_SENDRECV); /* port 0 but not rejected */
  assert_string_equal(s.media[1].codecs[0].name, "PCMU");
  char *out = write_sdp(&s, &len);
  assert_non_null(strstr(out, "a=simulcast:send lo;hi recv in\r\n"));
  assert_non_null(strstr(out, "a=ssrc-group:SIM 1 2 3\r\na=ssrc-group:FID 1 4\r\n"));
  assert_non_null(strstr(out, "m=audio 0 RTP/AVP 0\r\n"));
  assert_non_null(strstr(out, "a=bundle-only\r\n"));
  assert_int_equal(sfu_sdp_parse(out, (size_t)len, &back, NULL), 0);
  assert_sdp_equal(&s, &back);
  free(out);
  sfu_sdp_free(&s);
  sfu_sdp_free(&back);
}

/* GStreamer webrtcbin's max-bundle offer: every m-section after the first
 * is port 0 with a=bundle-only; those the BUNDLE group holds become live
 * with the group's transport, another one is rejected. */
static void bundle_only_sections_made_live(void **state) {
  static const char offer[] =
      "v=0\r\no=- 1 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
      "a=group:BUNDLE video0 audio1\r\n"
      "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=setup:actpass\r\n"
      "a=ice-ufrag:UFRAG0\r\na=ice-pwd:PWD0PWD0PWD0PWD0PWD0PWD0\r\na=rtcp-mux\r\n"
      "a=sendonly\r\na=rtpmap:96 VP8/90000\r\na=mid:video0\r\n"
      "a=fingerprint:sha-256 AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:"
      "AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB\r\n"
      "a=candidate:1 1 UDP 2015363327 192.0.2.2 47607 typ host\r\n"
      "m=audio 0 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=bundle-only\r\n"
      "a=sendonly\r\na=rtpmap:111 OPUS/48000/2\r\na=mid:audio1\r\n"
      "m=audio 0 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=bundle-only\r\n"
      "a=ice-ufrag:OTHER\r\na=ice-pwd:OTHEROTHEROTHEROTHEROTHER\r\n"
      "a=sendonly\r\na=rtpmap:111 opus/48000/2\r\na=mid:stray\r\n";
  sfu_sdp_t s;
  (void)state;
  assert_int_equal(sfu_sdp_parse(offer, sizeof(offer) - 1, &s, NULL), 0);
  assert_int_equal(s.media[1].port, 0);
  assert_int_equal(s.media[1].bundle_only, 1);
  assert_int_equal(sfu_sdp_bundle_only_live(&s), 1);
  const sfu_sdp_media_t *a = &s.media[1];
  assert_int_equal(a->port, 9);
  assert_string_equal(a->ice_ufrag, "UFRAG0");
  assert_string_equal(a->ice_pwd, "PWD0PWD0PWD0PWD0PWD0PWD0");
  assert_int_equal(a->fp_len, 32);
  assert_int_equal(a->fp[0], 0xAB);
  assert_string_equal(a->setup, "actpass");
  assert_int_equal(a->rtcp_mux, 1);
  assert_int_equal(a->dir, SFU_DIR_SENDONLY);
  assert_non_null(sfu_sdp_find_codec(a, "opus", 48000));
  /* outside the group: rejected, as a port 0 line is parsed */
  const sfu_sdp_media_t *r = &s.media[2];
  assert_int_equal(r->port, 0);
  assert_int_equal(r->bundle_only, 0);
  assert_int_equal(r->ncodecs, 0);
  assert_int_equal(r->dir, SFU_DIR_INACTIVE);
  assert_string_equal(r->mid, "stray");
  assert_string_equal(r->ice_ufrag, "");
  assert_int_equal(sfu_sdp_bundle_only_live(&s), 0); /* nothing left to do */
  sfu_sdp_free(&s);

  /* a group whose tagged section is itself bundle-only: rejected */
  static const char untagged[] =
      "v=0\r\no=- 1 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE a\r\n"
      "m=audio 0 UDP/TLS/RTP/SAVPF 111\r\na=bundle-only\r\na=rtpmap:111 opus/48000/2\r\n"
      "a=mid:a\r\n";
  assert_int_equal(sfu_sdp_parse(untagged, sizeof(untagged) - 1, &s, NULL), 0);
  assert_int_equal(sfu_sdp_bundle_only_live(&s), 0);
  assert_int_equal(s.media[0].port, 0);
  assert_int_equal(s.media[0].bundle_only, 0);
  assert_int_equal(s.media[0].ncodecs, 0);
  sfu_sdp_free(&s);
}

static void fingerprint_parse(void **state) {
  uint8_t b[4];
  assert_int_equal(sfu_sdp_fingerprint_parse("AB:cd:0F", b, sizeof(b)), 3);
  assert_int_equal(b[0], 0xAB);
  assert_int_equal(b[1], 0xCD);
  assert_int_equal(b[2], 0x0F);
  assert_int_equal(sfu_sdp_fingerprint_parse("00", b, sizeof(b)), 1);
  assert_int_equal(sfu_sdp_fingerprint_parse("", b, sizeof(b)), SFU_EPROTO);
  assert_int_equal(sfu_sdp_fingerprint_parse("A:BC", b, sizeof(b)), SFU_EPROTO);
  assert_int_equal(sfu_sdp_fingerprint_parse("ABCD", b, sizeof(b)), SFU_EPROTO);
  assert_int_equal(sfu_sdp_fingerprint_parse("AB:", b, sizeof(b)), SFU_EPROTO);
  assert_int_equal(sfu_sdp_fingerprint_parse(":AB", b, sizeof(b)), SFU_EPROTO);
  assert_int_equal(sfu_sdp_fingerprint_parse("AB::CD", b, sizeof(b)), SFU_EPROTO);
  assert_int_equal(sfu_sdp_fingerprint_parse("AG", b, sizeof(b)), SFU_EPROTO);
  assert_int_equal(sfu_sdp_fingerprint_parse("AB CD", b, sizeof(b)), SFU_EPROTO);
  assert_int_equal(sfu_sdp_fingerprint_parse("01:02:03:04:05", b, sizeof(b)), SFU_E2BIG);
  assert_int_equal(sfu_sdp_fingerprint_parse(NULL, b, sizeof(b)), SFU_EINVAL);
}

/* A section whose only codec cannot be kept (a name over 15 bytes) is rejected, and a rejected
 * section written back parses to the same thing (found by fuzz_sdp: its
 * placeholder payload type 0 came back as PCMU). */
static void unreadable_codecs_reject_the_section(void **state) {
  static const char offer[] = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
                              "m=audio 9 UDP/TLS/RTP/SAVPF 126\r\nc=IN IP4 0.0.0.0\r\n"
                              "a=mid:0\r\na=rtpmap:126 telephone-event-xyz/8000\r\n";
  sfu_sdp_t a, b;
  char out[2048];
  (void)state;
  assert_int_equal(sfu_sdp_parse(offer, sizeof(offer) - 1, &a, NULL), 0);
  assert_int_equal(a.nmedia, 1);
  assert_int_equal(a.media[0].port, 0);
  assert_int_equal(a.media[0].ncodecs, 0);
  assert_int_equal(a.media[0].dir, SFU_DIR_INACTIVE);
  int n = sfu_sdp_write(&a, out, sizeof(out));
  assert_true(n > 0);
  assert_int_equal(sfu_sdp_parse(out, (size_t)n, &b, NULL), 0);
  assert_int_equal(b.media[0].ncodecs, 0);
  assert_int_equal(b.media[0].port, 0);
  sfu_sdp_free(&a);
  sfu_sdp_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(unreadable_codecs_reject_the_section),
      cmocka_unit_test(chromium_audio_offer),
      cmocka_unit_test(chromium_simulcast_offer),
      cmocka_unit_test(chromium_av_datachannel_offer),
      cmocka_unit_test(chromium_answer),
      cmocka_unit_test(chromium_stopped_transceiver),
      cmocka_unit_test(aiortc_offer),
      cmocka_unit_test(aiortc_datachannel_offer),
      cmocka_unit_test(aiortc_ipv6_offer),
      cmocka_unit_test(roundtrip_fixtures),
      cmocka_unit_test(session_level_values_are_inherited),
      cmocka_unit_test(fmtp_apt_is_split_out),
      cmocka_unit_test(extra_entries_are_dropped),
      cmocka_unit_test(limits_are_inclusive),
      cmocka_unit_test(malformed_inputs),
      cmocka_unit_test(nul_byte),
      cmocka_unit_test(oversize_text),
      cmocka_unit_test(line_too_long),
      cmocka_unit_test(too_many_media),
      cmocka_unit_test(write_answer),
      cmocka_unit_test(write_simulcast_and_groups),
      cmocka_unit_test(fingerprint_parse),
      cmocka_unit_test(bundle_only_sections_made_live),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
