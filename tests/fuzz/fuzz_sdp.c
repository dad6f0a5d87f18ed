/*
 * fuzz_sdp.c -- the SDP parser fed arbitrary text, and the roundtrip
 * property: whatever parses, once written by sfu_sdp_write(), parses again
 * to the same struct (every field), and writing that gives the same text.
 *
 * The writer may legitimately produce more than the parser accepts (session
 * attributes are repeated in every m-section), so a rewrite over
 * SFU_SDP_MAX_TEXT must be refused with SFU_E2BIG and is not compared.
 * Then the same for what sfu_sdp_bundle_only_live() makes of it: no
 * bundle-only m-section left with port 0, a second call changes nothing.
 * Seeds: tests/fuzz/corpus/sdp/ (real Chromium, aiortc and GStreamer
 * webrtcbin descriptions).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sfu/base/sfu.h"
#include "signaling/sdp.h"

/* Big enough for the largest rewrite of a 64 KiB input (about 3 MB). */
#define OUT_CAP (4u << 20)

static void check(int ok, const char *what) {
  if (ok) return;
  fprintf(stderr, "roundtrip mismatch: %s\n", what);
  abort();
}

static int str_eq(const char *a, const char *b) { return strcmp(a, b) == 0; }

static void same_media(const sfu_sdp_media_t *a, const sfu_sdp_media_t *b) {
  check(str_eq(a->kind, b->kind) && a->port == b->port && str_eq(a->proto, b->proto) &&
            str_eq(a->fmt, b->fmt),
        "m= line");
  check(str_eq(a->mid, b->mid), "mid");
  check(a->dir == b->dir, "direction");
  check(a->rtcp_mux == b->rtcp_mux && a->rtcp_rsize == b->rtcp_rsize && a->bundle_only == b->bundle_only,
        "flags");
  check(str_eq(a->ice_ufrag, b->ice_ufrag) && str_eq(a->ice_pwd, b->ice_pwd), "ice credentials");
  check(str_eq(a->fp_alg, b->fp_alg) && a->fp_len == b->fp_len && memcmp(a->fp, b->fp, a->fp_len) == 0,
        "fingerprint");
  check(str_eq(a->setup, b->setup), "setup");
  check(a->ncodecs == b->ncodecs, "ncodecs");
  for (int i = 0; i < a->ncodecs; i++) {
    const sfu_sdp_codec_t *x = &a->codecs[i], *y = &b->codecs[i];
    check(x->pt == y->pt && str_eq(x->name, y->name) && x->clock == y->clock &&
              x->channels == y->channels,
          "codec rtpmap");
    check(str_eq(x->fmtp, y->fmtp) && x->rtx_apt == y->rtx_apt, "codec fmtp");
    check(x->fb == y->fb, "codec rtcp-fb");
  }
  check(a->next == b->next, "next");
  for (int i = 0; i < a->next; i++)
    check(a->ext[i].id == b->ext[i].id && str_eq(a->ext[i].uri, b->ext[i].uri), "extmap");
  check(a->nssrcs == b->nssrcs && memcmp(a->ssrcs, b->ssrcs, (size_t)a->nssrcs * 4) == 0, "ssrcs");
  check(str_eq(a->cname, b->cname), "cname");
  check(a->has_fid == b->has_fid && (!a->has_fid || memcmp(a->fid_ssrc, b->fid_ssrc, 8) == 0), "FID");
  check(a->nsim == b->nsim && memcmp(a->sim_ssrcs, b->sim_ssrcs, (size_t)a->nsim * 4) == 0, "SIM");
  check(str_eq(a->msid_stream, b->msid_stream) && str_eq(a->msid_track, b->msid_track), "msid");
  check(a->nrids == b->nrids && a->has_simulcast == b->has_simulcast, "nrids");
  for (int i = 0; i < a->nrids; i++)
    check(str_eq(a->rids[i].rid, b->rids[i].rid) && a->rids[i].send == b->rids[i].send, "rid");
  check(a->ncandidates == b->ncandidates && a->end_of_candidates == b->end_of_candidates, "ncandidates");
  for (int i = 0; i < a->ncandidates; i++) check(str_eq(a->candidates[i], b->candidates[i]), "candidate");
  check(str_eq(a->sctp_port, b->sctp_port) && a->max_message_size == b->max_message_size, "sctp");
}

static void same(const sfu_sdp_t *a, const sfu_sdp_t *b) {
  check(a->session_id == b->session_id && a->session_version == b->session_version &&
            str_eq(a->origin_user, b->origin_user),
        "o= line");
  check(a->ice_lite == b->ice_lite && a->ice_options_trickle == b->ice_options_trickle &&
            a->extmap_allow_mixed == b->extmap_allow_mixed,
        "session flags");
  check(a->nbundle == b->nbundle &&
            memcmp(a->bundle, b->bundle, (size_t)a->nbundle * sizeof(a->bundle[0])) == 0,
        "BUNDLE");
  check(a->nmedia == b->nmedia, "nmedia");
  for (int i = 0; i < a->nmedia; i++) same_media(&a->media[i], &b->media[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static char out1[OUT_CAP], out2[OUT_CAP];
  sfu_sdp_t a, b;
  const char *err;
  int n1, n2, rv;
  if (sfu_sdp_parse((const char *)data, size, &a, &err) != 0) {
    check(err != NULL && a.media == NULL && a.nmedia == 0, "failed parse left state");
    return 0;
  }
  n1 = sfu_sdp_write(&a, out1, sizeof(out1));
  check(n1 > 0 && strlen(out1) == (size_t)n1, "write");
  rv = sfu_sdp_parse(out1, (size_t)n1, &b, &err);
  if ((size_t)n1 > SFU_SDP_MAX_TEXT) {
    check(rv == SFU_E2BIG, "oversized rewrite not refused");
  } else {
    if (rv != 0) fprintf(stderr, "rewrite refused: %s\n%s", err, out1);
    check(rv == 0, "rewrite parses");
    same(&a, &b);
    n2 = sfu_sdp_write(&b, out2, sizeof(out2));
    check(n2 == n1 && memcmp(out1, out2, (size_t)n1) == 0, "second write differs");
    sfu_sdp_free(&b);
    /* the bundle-only m-sections made live: still a description that
     * roundtrips, with none left to make live */
    sfu_sdp_bundle_only_live(&a);
    for (int i = 0; i < a.nmedia; i++)
      check(a.media[i].port != 0 || !a.media[i].bundle_only, "bundle-only left at port 0");
    check(sfu_sdp_bundle_only_live(&a) == 0, "bundle-only live twice");
    n1 = sfu_sdp_write(&a, out1, sizeof(out1));
    check(n1 > 0, "write after bundle-only live");
    if ((size_t)n1 <= SFU_SDP_MAX_TEXT) {
      check(sfu_sdp_parse(out1, (size_t)n1, &b, &err) == 0, "bundle-only live rewrite parses");
      same(&a, &b);
    }
  }
  sfu_sdp_free(&a);
  sfu_sdp_free(&b);
  return 0;
}
