/*
 * sdp.c -- offer/answer text as line views.
 *
 * An SDP description (RFC 8866) is a list of "<type>=<value>" lines: a
 * session part, then one part per m= line. WebRTC (JSEP, RFC 8829) puts
 * almost everything in a= attributes:
 *
 *   v=0                                                      session part
 *   o=- 8211450302524718217 2 IN IP4 127.0.0.1
 *   s=-
 *   t=0 0
 *   a=group:BUNDLE 0 1
 *   m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0                  m-section 0
 *   a=ice-ufrag:IgOb            a=ice-pwd:...   a=fingerprint:sha-256 DD:C0:..
 *   a=setup:actpass             a=mid:0         a=extmap:4 urn:...:sdes:mid
 *   a=sendrecv                  a=rtcp-mux      a=rtpmap:111 opus/48000/2
 *   a=rtcp-fb:111 transport-cc  a=fmtp:111 minptime=10;useinbandfec=1
 *   a=ssrc:397512752 cname:6JFLmLfl/3NMvlcb     a=candidate:...
 *   m=video ...                                              m-section 1
 *
 * Parsing is one pass over the text with no copy of it: each line is a
 * view (pointer, length) cut at LF, with a CR before the LF dropped, and its
 * value is split into further views. Only the fields the header declares are
 * copied out, each into its fixed-size slot. Session-level attributes that
 * every m-section inherits go into a template m-section, which each new
 * m-section starts as a copy of. Per-section bookkeeping (which level set the
 * fingerprint, where msid came from) lives in the parser state, not the
 * output.
 *
 * Invariants the writer relies on, and the roundtrip test checks: every
 * stored string came from a line with no NUL or CR and has no leading or
 * trailing blanks where the writer puts a separator; mids are unique and
 * blank-free; BUNDLE entries index m-sections that have a mid; a rejected
 * section holds only what the writer writes for it. So parse(write(x))
 * equals x for any x that parse produced.
 *
 * Errors name the line: "line 12: bad a=rtpmap". The string lives in a
 * thread-local buffer, valid until the next failing parse on that thread.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sfu/base/sfu.h"
#include "sfu/base/vec.h"
#include "signaling/sdp.h"

/* ------------------------------------------------------------------------ */
/* Views                                                                    */

typedef struct {
  const char *p; /* first byte; never dereferenced when n == 0 */
  size_t n;      /* length */
} view_t;

static view_t mkview(const char *p, size_t n) {
  view_t v;
  v.p = p;
  v.n = n;
  return v;
}

static int is_blank(char c) { return c == ' ' || c == '\t'; }

static view_t trim(view_t v) {
  while (v.n && is_blank(v.p[0])) {
    v.p++;
    v.n--;
  }
  while (v.n && is_blank(v.p[v.n - 1])) v.n--;
  return v;
}

/* Cuts the next blank-separated token off the front of *v ("" at the end). */
static view_t token(view_t *v) {
  size_t i = 0;
  view_t t;
  while (v->n && is_blank(v->p[0])) {
    v->p++;
    v->n--;
  }
  while (i < v->n && !is_blank(v->p[i])) i++;
  t = mkview(v->p, i);
  v->p += i;
  v->n -= i;
  return t;
}

/* Cuts *v at the first `c`: returns the part before it and leaves the part
 * after it in *v (or an empty *v, with *found = 0, when there is no `c`). */
static view_t cut(view_t *v, char c, int *found) {
  const char *q = v->n ? memchr(v->p, c, v->n) : NULL;
  view_t head;
  if (!q) {
    head = *v;
    v->p += v->n;
    v->n = 0;
    if (found) *found = 0;
    return head;
  }
  head = mkview(v->p, (size_t)(q - v->p));
  v->n -= head.n + 1;
  v->p = q + 1;
  if (found) *found = 1;
  return head;
}

static int eq(view_t v, const char *s) {
  size_t n = strlen(s);
  return v.n == n && memcmp(v.p, s, n) == 0;
}

static int has_blank(view_t v) {
  for (size_t i = 0; i < v.n; i++)
    if (is_blank(v.p[i])) return 1;
  return 0;
}

/* Copies v into dst as a C string; -1 (dst untouched) if it does not fit. */
static int copy(char *dst, size_t cap, view_t v) {
  if (v.n >= cap) return -1;
  if (v.n) memcpy(dst, v.p, v.n);
  dst[v.n] = '\0';
  return 0;
}

/* Decimal digits only, no sign, at most `max`. */
static int to_u64(view_t v, uint64_t max, uint64_t *out) {
  uint64_t x = 0;
  if (v.n == 0 || v.n > 20) return -1;
  for (size_t i = 0; i < v.n; i++) {
    unsigned d = (unsigned char)v.p[i] - '0';
    if (d > 9) return -1;
    if (x > (UINT64_MAX - d) / 10) return -1;
    x = x * 10 + d;
  }
  if (x > max) return -1;
  *out = x;
  return 0;
}

static int to_int(view_t v, int max, int *out) {
  uint64_t x;
  if (to_u64(v, (uint64_t)max, &x)) return -1;
  *out = (int)x;
  return 0;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/*
 * "AB:CD:EF" -> 3 bytes. Exactly two hex digits per byte, one colon between
 * bytes, none at either end (RFC 8122 fingerprint).
 */
static int fingerprint_view(view_t v, uint8_t *out, size_t cap) {
  size_t n = 0, i = 0;
  if (v.n == 0) return SFU_EPROTO;
  for (;;) {
    int hi, lo;
    if (i + 2 > v.n) return SFU_EPROTO;
    hi = hexval(v.p[i]);
    lo = hexval(v.p[i + 1]);
    if (hi < 0 || lo < 0) return SFU_EPROTO;
    if (n == cap) return SFU_E2BIG;
    out[n++] = (uint8_t)(hi << 4 | lo);
    i += 2;
    if (i == v.n) return (int)n;
    if (v.p[i] != ':') return SFU_EPROTO;
    i++;
  }
}

int sfu_sdp_fingerprint_parse(const char *hex_colon, uint8_t *out, size_t cap) {
  if (!hex_colon) return SFU_EINVAL;
  return fingerprint_view(mkview(hex_colon, strlen(hex_colon)), out, cap);
}

/* Digest sizes of the RFC 8122 hash names; 0 for a name not listed. */
static size_t fingerprint_size(const char *alg) {
  static const struct {
    const char *name;
    size_t len;
  } algs[] = {{"sha-1", 20},   {"sha-224", 28}, {"sha-256", 32}, {"sha-384", 48},
              {"sha-512", 64}, {"md5", 16},     {"md2", 16}};
  for (size_t i = 0; i < SFU_ARRAY_SIZE(algs); i++)
    if (strcasecmp(alg, algs[i].name) == 0) return algs[i].len;
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Parser state                                                             */

typedef struct {
  sfu_sdp_t *sdp;
  int lineno;             /* 1-based number of the line being parsed */
  const char *why;        /* what was wrong with it */
  int cap;                /* media slots allocated */
  sfu_sdp_media_t *m;     /* current m-section; NULL in the session part */
  sfu_sdp_media_t *tmpl;  /* session-level values every m-section inherits */
  int tmpl_fp_set;        /* session part had an a=fingerprint */
  int fp_set;             /* current m-section had its own a=fingerprint */
  int msid_src;           /* 0 none, 1 from a=ssrc msid:, 2 from a=msid */
  int audio;              /* current m-section is m=audio */
  int trickle;            /* current m-section had ice-options trickle */
  int seen_o;             /* an o= line was parsed */
  view_t bundle;          /* mids of the first a=group:BUNDLE */
  int bundle_line;        /* its line number, 0 if none */
} parser_t;

static int fail(parser_t *p, int code, const char *why) {
  p->why = why;
  return code;
}

/* The current m-section, or the template while in the session part. */
static sfu_sdp_media_t *target(parser_t *p) { return p->m ? p->m : p->tmpl; }

static sfu_sdp_codec_t *codec_by_pt(sfu_sdp_media_t *m, int pt) {
  for (int i = 0; i < m->ncodecs; i++)
    if (m->codecs[i].pt == pt) return &m->codecs[i];
  return NULL;
}

/* A codec that cannot be kept (name or fmtp too long) is marked here and
 * removed when its section ends; later lines for its pt find nothing. */
static void drop_codec(sfu_sdp_codec_t *c) { c->pt = -1; }

/* Reads "<pt>" at the start of an rtpmap/fmtp/rtcp-fb value. */
static int pt_token(view_t *v, int *pt) {
  view_t t = token(v);
  return to_int(t, 127, pt);
}

/* ------------------------------------------------------------------------ */
/* Attributes                                                               */

/*
 * Where an attribute may appear. MEDIA attributes are ignored in the
 * session part; STRICT ones there are an error (they describe one
 * m-section's RTP and cannot apply to all); SESSION ones are ignored inside
 * an m-section; ANY ones set the template in the session part.
 */
enum { AT_SESSION, AT_ANY, AT_MEDIA, AT_STRICT };

typedef int (*attr_fn)(parser_t *p, view_t attr, view_t val, int arg);

static int a_group(parser_t *p, view_t attr, view_t val, int arg) {
  view_t sem = token(&val);
  if (!eq(sem, "BUNDLE") || p->bundle_line) return 0; /* first BUNDLE only */
  p->bundle = trim(val);
  p->bundle_line = p->lineno;
  return 0;
}

static int a_ice_lite(parser_t *p, view_t attr, view_t val, int arg) {
  p->sdp->ice_lite = 1;
  return 0;
}

static int a_allow_mixed(parser_t *p, view_t attr, view_t val, int arg) {
  p->sdp->extmap_allow_mixed = 1;
  return 0;
}

static int a_ice_ufrag(parser_t *p, view_t attr, view_t val, int arg) {
  val = trim(val);
  if (!val.n) return fail(p, SFU_EPROTO, "empty a=ice-ufrag");
  if (copy(target(p)->ice_ufrag, sizeof(target(p)->ice_ufrag), val))
    return fail(p, SFU_E2BIG, "a=ice-ufrag too long");
  return 0;
}

static int a_ice_pwd(parser_t *p, view_t attr, view_t val, int arg) {
  val = trim(val);
  if (!val.n) return fail(p, SFU_EPROTO, "empty a=ice-pwd");
  if (copy(target(p)->ice_pwd, sizeof(target(p)->ice_pwd), val))
    return fail(p, SFU_E2BIG, "a=ice-pwd too long");
  return 0;
}

static int a_ice_options(parser_t *p, view_t attr, view_t val, int arg) {
  for (view_t t = token(&val); t.n; t = token(&val)) {
    if (!eq(t, "trickle")) continue;
    if (p->m)
      p->trickle = 1; /* counts only if the section is not rejected */
    else
      p->sdp->ice_options_trickle = 1;
  }
  return 0;
}

static int a_fingerprint(parser_t *p, view_t attr, view_t val, int arg) {
  sfu_sdp_media_t *t = target(p);
  int *set = p->m ? &p->fp_set : &p->tmpl_fp_set;
  view_t alg = token(&val), hex = trim(val);
  char name[sizeof(t->fp_alg)];
  uint8_t fp[sizeof(t->fp)];
  size_t want;
  int n;
  if (!alg.n || copy(name, sizeof(name), alg)) return fail(p, SFU_EPROTO, "bad a=fingerprint");
  n = fingerprint_view(hex, fp, sizeof(fp));
  if (n < 0) return fail(p, SFU_EPROTO, "bad a=fingerprint hex");
  want = fingerprint_size(name);
  if (want && (size_t)n != want) return fail(p, SFU_EPROTO, "a=fingerprint length does not match its hash");
  if (*set) return 0; /* several at one level: the first is kept */
  *set = 1;
  memcpy(t->fp_alg, name, sizeof(name));
  memcpy(t->fp, fp, (size_t)n);
  t->fp_len = (size_t)n;
  return 0;
}

static int a_setup(parser_t *p, view_t attr, view_t val, int arg) {
  val = trim(val);
  if (!eq(val, "actpass") && !eq(val, "active") && !eq(val, "passive") && !eq(val, "holdconn"))
    return fail(p, SFU_EPROTO, "bad a=setup");
  copy(target(p)->setup, sizeof(target(p)->setup), val);
  return 0;
}

static int a_direction(parser_t *p, view_t attr, view_t val, int arg) {
  target(p)->dir = (sfu_sdp_dir_t)arg;
  return 0;
}

static int a_end_of_candidates(parser_t *p, view_t attr, view_t val, int arg) {
  target(p)->end_of_candidates = 1;
  return 0;
}

/* a=extmap:<id>[/<direction>] <uri> [<extension attributes>] */
static int a_extmap(parser_t *p, view_t attr, view_t val, int arg) {
  sfu_sdp_media_t *t = target(p);
  view_t idv = token(&val), uri = token(&val);
  int id, i;
  idv = cut(&idv, '/', NULL);
  if (to_int(idv, 255, &id) || id < 1 || !uri.n) return fail(p, SFU_EPROTO, "bad a=extmap");
  if (uri.n >= sizeof(t->ext[0].uri)) return 0; /* dropped: URI too long */
  for (i = 0; i < t->next && t->ext[i].id != id; i++) {
  }
  if (i == t->next) {
    if (t->next == SFU_SDP_MAX_EXTMAP) return 0; /* dropped: table full */
    t->next++;
  }
  t->ext[i].id = id; /* a media-level line replaces a session-level one */
  copy(t->ext[i].uri, sizeof(t->ext[i].uri), uri);
  return 0;
}

static int a_mid(parser_t *p, view_t attr, view_t val, int arg) {
  sfu_sdp_t *s = p->sdp;
  val = trim(val);
  if (!val.n || has_blank(val)) return fail(p, SFU_EPROTO, "bad a=mid");
  if (val.n >= sizeof(p->m->mid)) return fail(p, SFU_E2BIG, "a=mid too long");
  for (int i = 0; i < s->nmedia - 1; i++)
    if (eq(val, s->media[i].mid)) return fail(p, SFU_EPROTO, "duplicate a=mid");
  copy(p->m->mid, sizeof(p->m->mid), val);
  return 0;
}

static int a_flag(parser_t *p, view_t attr, view_t val, int arg) {
  sfu_sdp_media_t *m = p->m;
  if (arg == 0) m->rtcp_mux = 1;
  if (arg == 1) m->rtcp_rsize = 1;
  if (arg == 2) m->bundle_only = 1;
  return 0;
}

/* a=rtpmap:<pt> <name>/<clock>[/<channels>] */
static int a_rtpmap(parser_t *p, view_t attr, view_t val, int arg) {
  view_t enc, name, clock;
  int pt, hz, ch, more;
  sfu_sdp_codec_t *c;
  if (pt_token(&val, &pt)) return fail(p, SFU_EPROTO, "bad a=rtpmap");
  enc = token(&val);
  name = cut(&enc, '/', NULL);
  clock = cut(&enc, '/', &more);
  if (!name.n || to_int(clock, INT32_MAX, &hz)) return fail(p, SFU_EPROTO, "bad a=rtpmap");
  ch = p->audio ? 1 : 0;
  if (more && to_int(enc, 255, &ch)) return fail(p, SFU_EPROTO, "bad a=rtpmap channels");
  c = codec_by_pt(p->m, pt);
  if (!c) return 0; /* not in the m= line, or dropped */
  if (copy(c->name, sizeof(c->name), name)) {
    drop_codec(c);
    return 0;
  }
  c->clock = hz;
  c->channels = ch;
  return 0;
}

/* "apt=<pt>" (RFC 4588), blanks around it already trimmed. */
static int apt_param(view_t kv, int *apt) {
  return kv.n > 4 && memcmp(kv.p, "apt=", 4) == 0 ? to_int(mkview(kv.p + 4, kv.n - 4), 127, apt) : -1;
}

/*
 * a=fmtp:<pt> <params>. Each line replaces what an earlier one for the same
 * pt said. "apt=" parameters go to rtx_apt (the first one wins); when there
 * was one, the other non-empty parameters are re-joined with ';', else the
 * text is kept verbatim. Too long for the field: the codec is dropped.
 */
static int a_fmtp(parser_t *p, view_t attr, view_t val, int arg) {
  sfu_sdp_codec_t *c;
  view_t params, rest;
  int pt, apt = -1, v;
  size_t len = 0;
  if (pt_token(&val, &pt)) return fail(p, SFU_EPROTO, "bad a=fmtp");
  params = trim(val);
  c = codec_by_pt(p->m, pt);
  if (!c) return 0;
  for (rest = params; rest.n && apt < 0;)
    if (apt_param(trim(cut(&rest, ';', NULL)), &v) == 0) apt = v;
  c->rtx_apt = apt;
  c->fmtp[0] = '\0';
  if (apt < 0) {
    if (copy(c->fmtp, sizeof(c->fmtp), params)) drop_codec(c);
    return 0;
  }
  for (rest = params; rest.n;) {
    view_t kv = trim(cut(&rest, ';', NULL));
    if (!kv.n || apt_param(kv, &v) == 0) continue;
    if (len + (len ? 1 : 0) + kv.n >= sizeof(c->fmtp)) {
      drop_codec(c);
      return 0;
    }
    if (len) c->fmtp[len++] = ';';
    memcpy(c->fmtp + len, kv.p, kv.n);
    len += kv.n;
    c->fmtp[len] = '\0';
  }
  return 0;
}

/* a=rtcp-fb:<pt|*> <type> [<param>] */
static int a_rtcp_fb(parser_t *p, view_t attr, view_t val, int arg) {
  view_t ptv = token(&val), type = token(&val), param = token(&val);
  unsigned bit = 0;
  int pt = -1;
  sfu_sdp_media_t *m = p->m;
  if (!eq(ptv, "*") && to_int(ptv, 127, &pt)) return fail(p, SFU_EPROTO, "bad a=rtcp-fb");
  if (eq(type, "nack") && !param.n) bit = SFU_FB_NACK;
  if (eq(type, "nack") && eq(param, "pli")) bit = SFU_FB_PLI;
  if (eq(type, "ccm") && eq(param, "fir")) bit = SFU_FB_FIR;
  if (eq(type, "goog-remb")) bit = SFU_FB_REMB;
  if (eq(type, "transport-cc")) bit = SFU_FB_TWCC;
  for (int i = 0; bit && i < m->ncodecs; i++)
    if (m->codecs[i].pt >= 0 && (pt < 0 || m->codecs[i].pt == pt)) m->codecs[i].fb |= bit;
  return 0;
}

static int ssrc_value(view_t v, uint32_t *out) {
  uint64_t x;
  if (to_u64(v, UINT32_MAX, &x)) return -1;
  *out = (uint32_t)x;
  return 0;
}

/* "<stream> [<track>]", as in a=msid and a=ssrc:<n> msid: */
static int set_msid(parser_t *p, view_t val) {
  sfu_sdp_media_t *m = p->m;
  view_t stream = token(&val), track = token(&val);
  if (!stream.n) return fail(p, SFU_EPROTO, "bad msid");
  if (copy(m->msid_stream, sizeof(m->msid_stream), stream) ||
      copy(m->msid_track, sizeof(m->msid_track), track))
    return fail(p, SFU_E2BIG, "msid too long");
  return 0;
}

/* a=ssrc:<ssrc> <attribute>[:<value>] (RFC 5576) */
static int a_ssrc(parser_t *p, view_t attr, view_t val, int arg) {
  sfu_sdp_media_t *m = p->m;
  view_t num = token(&val), rest = trim(val), name;
  uint32_t ssrc;
  int i;
  if (ssrc_value(num, &ssrc)) return fail(p, SFU_EPROTO, "bad a=ssrc");
  for (i = 0; i < m->nssrcs && m->ssrcs[i] != ssrc; i++) {
  }
  if (i == m->nssrcs && m->nssrcs < SFU_SDP_MAX_SSRCS) m->ssrcs[m->nssrcs++] = ssrc;
  name = cut(&rest, ':', NULL);
  rest = trim(rest);
  if (eq(name, "cname") && rest.n && !m->cname[0]) {
    if (copy(m->cname, sizeof(m->cname), rest)) return fail(p, SFU_E2BIG, "a=ssrc cname too long");
  } else if (eq(name, "msid") && rest.n && p->msid_src == 0) {
    p->msid_src = 1;
    return set_msid(p, rest);
  }
  return 0;
}

/* a=ssrc-group:FID <primary> <rtx> | SIM <low> <mid> <high> */
static int a_ssrc_group(parser_t *p, view_t attr, view_t val, int arg) {
  sfu_sdp_media_t *m = p->m;
  view_t sem = token(&val);
  uint32_t ids[3];
  int n = 0;
  for (view_t t = token(&val); t.n; t = token(&val)) {
    uint32_t x;
    if (ssrc_value(t, &x)) return fail(p, SFU_EPROTO, "bad a=ssrc-group");
    if (n < 3) ids[n++] = x;
  }
  if (eq(sem, "FID")) {
    if (n < 2) return fail(p, SFU_EPROTO, "a=ssrc-group:FID needs two ssrcs");
    if (!m->has_fid) {
      m->fid_ssrc[0] = ids[0];
      m->fid_ssrc[1] = ids[1];
      m->has_fid = 1;
    }
  } else if (eq(sem, "SIM")) {
    if (n < 1) return fail(p, SFU_EPROTO, "empty a=ssrc-group:SIM");
    if (!m->nsim) {
      memcpy(m->sim_ssrcs, ids, (size_t)n * sizeof(ids[0]));
      m->nsim = n;
    }
  }
  return 0;
}

static int a_msid(parser_t *p, view_t attr, view_t val, int arg) {
  if (p->msid_src == 2) return 0; /* the first a=msid is kept */
  p->msid_src = 2;
  return set_msid(p, val);
}

/* a=rid:<id> send|recv [<restrictions>] (RFC 8851) */
static int a_rid(parser_t *p, view_t attr, view_t val, int arg) {
  sfu_sdp_media_t *m = p->m;
  view_t id = token(&val), dir = token(&val);
  int send = eq(dir, "send");
  if (!id.n || (!send && !eq(dir, "recv"))) return fail(p, SFU_EPROTO, "bad a=rid");
  for (size_t i = 0; i < id.n; i++) {
    char c = id.p[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
          c == '_'))
      return fail(p, SFU_EPROTO, "bad a=rid id");
  }
  if (id.n >= sizeof(m->rids[0].rid)) return fail(p, SFU_E2BIG, "a=rid id too long");
  for (int i = 0; i < m->nrids; i++)
    if (eq(id, m->rids[i].rid)) return 0;
  if (m->nrids == SFU_SDP_MAX_RIDS) return 0;
  copy(m->rids[m->nrids].rid, sizeof(m->rids[0].rid), id);
  m->rids[m->nrids++].send = send;
  return 0;
}

/* a=simulcast:send q;h;f [recv ...]; the rid list itself comes from a=rid. */
static int a_simulcast(parser_t *p, view_t attr, view_t val, int arg) {
  view_t dir = token(&val);
  if (!eq(dir, "send") && !eq(dir, "recv")) return fail(p, SFU_EPROTO, "bad a=simulcast");
  p->m->has_simulcast = 1;
  return 0;
}

static int a_candidate(parser_t *p, view_t attr, view_t val, int arg) {
  sfu_sdp_media_t *m = p->m;
  if (!trim(val).n || m->ncandidates == SFU_SDP_MAX_CANDIDATES) return 0;
  if (copy(m->candidates[m->ncandidates], sizeof(m->candidates[0]), attr) == 0) m->ncandidates++;
  return 0;
}

static int set_sctp_port(sfu_sdp_media_t *m, view_t v) {
  int port;
  if (to_int(v, 65535, &port)) return 0; /* not ours to police */
  snprintf(m->sctp_port, sizeof(m->sctp_port), "%d", port);
  return 0;
}

static int a_sctp_port(parser_t *p, view_t attr, view_t val, int arg) {
  return set_sctp_port(p->m, trim(val));
}

/* Pre-RFC 8841 form, "a=sctpmap:5000 webrtc-datachannel 65535" (aiortc). */
static int a_sctpmap(parser_t *p, view_t attr, view_t val, int arg) {
  if (p->m->sctp_port[0]) return 0;
  return set_sctp_port(p->m, token(&val));
}

static int a_max_message_size(parser_t *p, view_t attr, view_t val, int arg) {
  uint64_t x;
  if (to_u64(trim(val), UINT32_MAX, &x) == 0) p->m->max_message_size = (uint32_t)x;
  return 0;
}

static const struct {
  const char *name;
  attr_fn fn;
  int where;
  int arg;
} attrs[] = {
    {"group", a_group, AT_SESSION, 0},
    {"ice-lite", a_ice_lite, AT_SESSION, 0},
    {"extmap-allow-mixed", a_allow_mixed, AT_ANY, 0},
    {"ice-ufrag", a_ice_ufrag, AT_ANY, 0},
    {"ice-pwd", a_ice_pwd, AT_ANY, 0},
    {"ice-options", a_ice_options, AT_ANY, 0},
    {"fingerprint", a_fingerprint, AT_ANY, 0},
    {"setup", a_setup, AT_ANY, 0},
    {"sendrecv", a_direction, AT_ANY, SFU_DIR_SENDRECV},
    {"sendonly", a_direction, AT_ANY, SFU_DIR_SENDONLY},
    {"recvonly", a_direction, AT_ANY, SFU_DIR_RECVONLY},
    {"inactive", a_direction, AT_ANY, SFU_DIR_INACTIVE},
    {"extmap", a_extmap, AT_ANY, 0},
    {"end-of-candidates", a_end_of_candidates, AT_ANY, 0},
    {"mid", a_mid, AT_STRICT, 0},
    {"rtcp-mux", a_flag, AT_MEDIA, 0},
    {"rtcp-rsize", a_flag, AT_MEDIA, 1},
    {"bundle-only", a_flag, AT_MEDIA, 2},
    {"rtpmap", a_rtpmap, AT_STRICT, 0},
    {"fmtp", a_fmtp, AT_STRICT, 0},
    {"rtcp-fb", a_rtcp_fb, AT_STRICT, 0},
    {"ssrc", a_ssrc, AT_STRICT, 0},
    {"ssrc-group", a_ssrc_group, AT_STRICT, 0},
    {"msid", a_msid, AT_MEDIA, 0},
    {"rid", a_rid, AT_STRICT, 0},
    {"simulcast", a_simulcast, AT_STRICT, 0},
    {"candidate", a_candidate, AT_STRICT, 0},
    {"sctp-port", a_sctp_port, AT_MEDIA, 0},
    {"sctpmap", a_sctpmap, AT_MEDIA, 0},
    {"max-message-size", a_max_message_size, AT_MEDIA, 0},
};

/* a=<name>[:<value>] */
static int attribute(parser_t *p, view_t attr) {
  view_t val = attr, name = cut(&val, ':', NULL);
  for (size_t i = 0; i < SFU_ARRAY_SIZE(attrs); i++) {
    if (!eq(name, attrs[i].name)) continue;
    if (!p->m && attrs[i].where == AT_STRICT)
      return fail(p, SFU_EPROTO, "media attribute before the first m= line");
    if ((!p->m && attrs[i].where == AT_MEDIA) || (p->m && attrs[i].where == AT_SESSION)) return 0;
    return attrs[i].fn(p, attr, val, attrs[i].arg);
  }
  return 0; /* unknown attribute */
}

/* ------------------------------------------------------------------------ */
/* Lines                                                                    */

/* o=<username> <sess-id> <sess-version> <nettype> <addrtype> <address> */
static int origin_line(parser_t *p, view_t v) {
  sfu_sdp_t *s = p->sdp;
  view_t user = token(&v), id = token(&v), ver = token(&v);
  view_t net = token(&v), af = token(&v), addr = token(&v);
  if (p->seen_o) return 0;
  if (!addr.n || !net.n || !af.n || to_u64(id, UINT64_MAX, &s->session_id) ||
      to_u64(ver, UINT64_MAX, &s->session_version))
    return fail(p, SFU_EPROTO, "bad o= line");
  if (copy(s->origin_user, sizeof(s->origin_user), user)) return fail(p, SFU_E2BIG, "o= username too long");
  p->seen_o = 1;
  return 0;
}

/* RFC 3551 static payload types, for an m= line that lists one without an
 * a=rtpmap. */
static void static_codec(sfu_sdp_codec_t *c) {
  static const struct {
    int pt;
    const char *name;
    int clock, channels;
  } st[] = {{0, "PCMU", 8000, 1}, {3, "GSM", 8000, 1},   {4, "G723", 8000, 1},
            {8, "PCMA", 8000, 1}, {9, "G722", 8000, 1},  {13, "CN", 8000, 1},
            {18, "G729", 8000, 1}, {26, "JPEG", 90000, 0}, {34, "H263", 90000, 0}};
  for (size_t i = 0; i < SFU_ARRAY_SIZE(st); i++) {
    if (st[i].pt != c->pt) continue;
    snprintf(c->name, sizeof(c->name), "%s", st[i].name);
    c->clock = st[i].clock;
    c->channels = st[i].channels;
  }
}

/*
 * Closes the current m-section: removes dropped codecs, fills static payload
 * types, and cuts a rejected section down to what the writer writes for it:
 * kind, proto, fmt (non-RTP) and mid, inactive, no codecs (what a rejected
 * section listed means nothing, RFC 3264 section 6). An RTP section left
 * with no codec we can read is rejected: nothing could be sent on it, and
 * its answer rejects it anyway.
 */
static void finish_media(parser_t *p) {
  sfu_sdp_media_t *m = p->m;
  int n = 0;
  if (!m) return;
  for (int i = 0; i < m->ncodecs; i++)
    if (m->codecs[i].pt >= 0) m->codecs[n++] = m->codecs[i];
  m->ncodecs = n;
  if (m->nrids == 0) m->has_simulcast = 0;
  if (n == 0 && strstr(m->proto, "RTP/") != NULL) m->port = 0, m->bundle_only = 0;
  if (m->port == 0 && !m->bundle_only) {
    char kind[sizeof(m->kind)], proto[sizeof(m->proto)], fmt[sizeof(m->fmt)], mid[sizeof(m->mid)];
    memcpy(kind, m->kind, sizeof(kind));
    memcpy(proto, m->proto, sizeof(proto));
    memcpy(fmt, m->fmt, sizeof(fmt));
    memcpy(mid, m->mid, sizeof(mid));
    memset(m, 0, sizeof(*m));
    memcpy(m->kind, kind, sizeof(kind));
    memcpy(m->proto, proto, sizeof(proto));
    memcpy(m->fmt, fmt, sizeof(fmt));
    memcpy(m->mid, mid, sizeof(mid));
    m->dir = SFU_DIR_INACTIVE;
  } else {
    for (int i = 0; i < n; i++)
      if (!m->codecs[i].name[0]) static_codec(&m->codecs[i]);
    if (p->trickle) p->sdp->ice_options_trickle = 1;
  }
  p->m = NULL;
}

static void start_media(parser_t *p, sfu_sdp_media_t *m) {
  const sfu_sdp_media_t *t = p->tmpl;
  memset(m, 0, sizeof(*m));
  memcpy(m->ice_ufrag, t->ice_ufrag, sizeof(m->ice_ufrag));
  memcpy(m->ice_pwd, t->ice_pwd, sizeof(m->ice_pwd));
  memcpy(m->fp_alg, t->fp_alg, sizeof(m->fp_alg));
  memcpy(m->fp, t->fp, sizeof(m->fp));
  m->fp_len = t->fp_len;
  memcpy(m->setup, t->setup, sizeof(m->setup));
  m->dir = t->dir;
  memcpy(m->ext, t->ext, sizeof(m->ext));
  m->next = t->next;
  m->end_of_candidates = t->end_of_candidates;
  p->m = m;
  p->fp_set = 0;
  p->msid_src = 0;
  p->trickle = 0;
}

/* m=<media> <port> <proto> <fmt> ... */
static int media_line(parser_t *p, view_t v) {
  sfu_sdp_t *s = p->sdp;
  sfu_sdp_media_t *m;
  view_t kind, port, proto, fmts;
  finish_media(p);
  if (s->nmedia == SFU_SDP_MAX_MEDIA) return fail(p, SFU_E2BIG, "more than 256 m= lines");
  /* sfu_sdp_t keeps media/nmedia (its users index them); the capacity
   * lives here. Doubling from 8 stays within SFU_SDP_MAX_MEDIA (256). */
  if (sfu__vec_reserve(&s->media, &p->cap, s->nmedia + 1, sizeof(*s->media)) != 0)
    return fail(p, SFU_ENOMEM, "out of memory");
  m = &s->media[s->nmedia++];
  start_media(p, m);
  kind = token(&v);
  port = token(&v);
  proto = token(&v);
  fmts = trim(v);
  if (!proto.n || !fmts.n || to_int(port, 65535, &m->port)) return fail(p, SFU_EPROTO, "bad m= line");
  if (copy(m->kind, sizeof(m->kind), kind) || copy(m->proto, sizeof(m->proto), proto))
    return fail(p, SFU_E2BIG, "m= media or proto too long");
  p->audio = eq(kind, "audio");
  if (!strstr(m->proto, "RTP/")) {
    if (copy(m->fmt, sizeof(m->fmt), fmts)) return fail(p, SFU_E2BIG, "m= format list too long");
    return 0;
  }
  for (view_t t = token(&fmts); t.n; t = token(&fmts)) {
    int pt;
    if (to_int(t, 127, &pt)) return fail(p, SFU_EPROTO, "bad m= payload type");
    if (m->ncodecs == SFU_SDP_MAX_CODECS || codec_by_pt(m, pt)) continue;
    m->codecs[m->ncodecs].pt = pt;
    m->codecs[m->ncodecs].rtx_apt = -1;
    m->ncodecs++;
  }
  return 0;
}

/* Turns the BUNDLE mids into media indexes once every mid is known. */
static int resolve_bundle(parser_t *p) {
  sfu_sdp_t *s = p->sdp;
  view_t v = p->bundle;
  p->lineno = p->bundle_line;
  for (view_t t = token(&v); t.n; t = token(&v)) {
    int i;
    for (i = 0; i < s->nmedia && !eq(t, s->media[i].mid); i++) {
    }
    if (i == s->nmedia) return fail(p, SFU_EPROTO, "a=group:BUNDLE names an unknown mid");
    for (int j = 0; j < s->nbundle; j++)
      if (s->bundle[j] == i) return fail(p, SFU_EPROTO, "a=group:BUNDLE repeats a mid");
    s->bundle[s->nbundle++] = (uint16_t)i;
  }
  return 0;
}

static _Thread_local char err_buf[96];

static int parse(parser_t *p, const char *text, size_t len) {
  size_t pos = 0;
  int rv, seen_v = 0;
  if (len > SFU_SDP_MAX_TEXT) return fail(p, SFU_E2BIG, "description over 64 KiB");
  while (pos < len) {
    const char *nl = memchr(text + pos, '\n', len - pos);
    size_t end = nl ? (size_t)(nl - text) : len;
    view_t line = mkview(text + pos, end - pos);
    pos = end + 1;
    p->lineno++;
    if (line.n && line.p[line.n - 1] == '\r') line.n--;
    if (line.n > SFU_SDP_MAX_LINE) return fail(p, SFU_E2BIG, "line over 4 KiB");
    if (line.n && memchr(line.p, '\0', line.n)) return fail(p, SFU_EPROTO, "NUL byte");
    if (line.n && memchr(line.p, '\r', line.n)) return fail(p, SFU_EPROTO, "CR inside a line");
    while (line.n && is_blank(line.p[line.n - 1])) line.n--;
    if (!line.n) continue;
    if (line.n < 2 || line.p[1] != '=' || line.p[0] < 'a' || line.p[0] > 'z')
      return fail(p, SFU_EPROTO, "not a <type>=<value> line");
    if (!seen_v) {
      if (!eq(line, "v=0")) return fail(p, SFU_EPROTO, "first line is not v=0");
      seen_v = 1;
      continue;
    }
    view_t val = mkview(line.p + 2, line.n - 2);
    switch (line.p[0]) {
    case 'o':
      rv = origin_line(p, val);
      break;
    case 'm':
      rv = media_line(p, val);
      break;
    case 'a':
      rv = attribute(p, val);
      break;
    default: /* s= t= c= b= i= ...: nothing an SFU needs */
      rv = 0;
    }
    if (rv) return rv;
  }
  if (!seen_v) return fail(p, SFU_EPROTO, "no v= line");
  if (!p->seen_o) return fail(p, SFU_EPROTO, "no o= line");
  finish_media(p);
  return p->bundle_line ? resolve_bundle(p) : 0;
}

int sfu_sdp_parse(const char *text, size_t len, sfu_sdp_t *out, const char **err_desc) {
  parser_t p;
  int rv;
  memset(out, 0, sizeof(*out));
  memset(&p, 0, sizeof(p));
  if (err_desc) *err_desc = NULL;
  p.sdp = out;
  if (!text && len) {
    rv = fail(&p, SFU_EINVAL, "no text");
    goto out;
  }
  p.tmpl = calloc(1, sizeof(*p.tmpl));
  if (!p.tmpl) {
    rv = fail(&p, SFU_ENOMEM, "out of memory");
    goto out;
  }
  rv = parse(&p, text, len);
out:
  free(p.tmpl);
  if (rv) {
    sfu_sdp_free(out);
    if (err_desc) {
      if (p.lineno)
        snprintf(err_buf, sizeof(err_buf), "line %d: %s", p.lineno, p.why);
      else
        snprintf(err_buf, sizeof(err_buf), "%s", p.why);
      *err_desc = err_buf;
    }
  }
  return rv;
}

void sfu_sdp_free(sfu_sdp_t *sdp) {
  if (!sdp) return;
  free(sdp->media);
  memset(sdp, 0, sizeof(*sdp));
}

/* ------------------------------------------------------------------------ */
/* Writer                                                                   */

typedef struct {
  char *buf;
  size_t cap;
  size_t len;
  int full; /* something did not fit; nothing more is written */
} out_t;

static void put(out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(out_t *o, const char *fmt, ...) {
  va_list ap;
  int n;
  if (o->full) return;
  va_start(ap, fmt);
  n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= o->cap - o->len)
    o->full = 1;
  else
    o->len += (size_t)n;
}

static const char *dir_name(sfu_sdp_dir_t d) {
  switch (d) {
  case SFU_DIR_SENDONLY:
    return "sendonly";
  case SFU_DIR_RECVONLY:
    return "recvonly";
  case SFU_DIR_INACTIVE:
    return "inactive";
  default:
    return "sendrecv";
  }
}

static int is_rejected(const sfu_sdp_media_t *m) { return m->port == 0 && !m->bundle_only; }

static void write_fmt_list(out_t *o, const sfu_sdp_media_t *m, int rtp) {
  if (!rtp) {
    put(o, " %s", m->fmt[0] ? m->fmt : "0");
    return;
  }
  for (int i = 0; i < m->ncodecs; i++) put(o, " %d", m->codecs[i].pt);
  if (m->ncodecs == 0) put(o, " 0");
}

static void write_codec(out_t *o, const sfu_sdp_codec_t *c, int audio) {
  static const struct {
    unsigned bit;
    const char *text;
  } fbs[] = {{SFU_FB_REMB, "goog-remb"},
             {SFU_FB_TWCC, "transport-cc"},
             {SFU_FB_FIR, "ccm fir"},
             {SFU_FB_NACK, "nack"},
             {SFU_FB_PLI, "nack pli"}};
  if (c->name[0]) {
    put(o, "a=rtpmap:%d %s/%d", c->pt, c->name, c->clock);
    if (c->channels != (audio ? 1 : 0)) put(o, "/%d", c->channels);
    put(o, "\r\n");
  }
  for (size_t i = 0; i < SFU_ARRAY_SIZE(fbs); i++)
    if (c->fb & fbs[i].bit) put(o, "a=rtcp-fb:%d %s\r\n", c->pt, fbs[i].text);
  if (c->rtx_apt >= 0)
    put(o, "a=fmtp:%d apt=%d%s%s\r\n", c->pt, c->rtx_apt, c->fmtp[0] ? ";" : "", c->fmtp);
  else if (c->fmtp[0])
    put(o, "a=fmtp:%d %s\r\n", c->pt, c->fmtp);
}

static void write_msid(out_t *o, const sfu_sdp_media_t *m) {
  put(o, "%s%s%s\r\n", m->msid_stream, m->msid_track[0] ? " " : "", m->msid_track);
}

/* a=simulcast:send q;h;f recv x -- from the rids, send ones first. */
static void write_simulcast(out_t *o, const sfu_sdp_media_t *m) {
  const char *sep = "";
  put(o, "a=simulcast:");
  for (int send = 1; send >= 0; send--) {
    int n = 0;
    for (int i = 0; i < m->nrids; i++) {
      if (m->rids[i].send != send) continue;
      if (n++ == 0) {
        put(o, "%s%s ", sep, send ? "send" : "recv");
        sep = " ";
      } else {
        put(o, ";");
      }
      put(o, "%s", m->rids[i].rid);
    }
  }
  put(o, "\r\n");
}

/* ICE credentials and options, DTLS parameters, when the m-line has them. */
static void write_transport(out_t *o, const sfu_sdp_t *sdp, const sfu_sdp_media_t *m) {
  if (m->ice_ufrag[0]) put(o, "a=ice-ufrag:%s\r\n", m->ice_ufrag);
  if (m->ice_pwd[0]) put(o, "a=ice-pwd:%s\r\n", m->ice_pwd);
  if (sdp->ice_options_trickle) put(o, "a=ice-options:trickle\r\n");
  if (m->fp_len && m->fp_alg[0]) {
    put(o, "a=fingerprint:%s ", m->fp_alg);
    for (size_t i = 0; i < m->fp_len && i < sizeof(m->fp); i++)
      put(o, "%s%02X", i ? ":" : "", m->fp[i]);
    put(o, "\r\n");
  }
  if (m->setup[0]) put(o, "a=setup:%s\r\n", m->setup);
}

static void write_media(out_t *o, const sfu_sdp_t *sdp, const sfu_sdp_media_t *m) {
  int rtp = strstr(m->proto, "RTP/") != NULL;
  int audio = strcmp(m->kind, "audio") == 0;
  put(o, "m=%s %d %s", m->kind, m->port, m->proto);
  write_fmt_list(o, m, rtp);
  put(o, "\r\nc=IN IP4 0.0.0.0\r\n");
  /* A rejected m-line needs only its mid. One that still carries its
   * transport (a track removed in a server offer) is written whole, port 0
   * and inactive: some stacks (aiortc) check ICE, DTLS, rtcp-mux and codecs
   * on every m-line of an offer. */
  if (is_rejected(m) && !m->ice_ufrag[0]) {
    if (m->mid[0]) put(o, "a=mid:%s\r\n", m->mid);
    put(o, "a=inactive\r\n");
    return;
  }
  if (rtp) put(o, "a=rtcp:9 IN IP4 0.0.0.0\r\n");
  write_transport(o, sdp, m);
  if (m->mid[0]) put(o, "a=mid:%s\r\n", m->mid);
  if (m->bundle_only) put(o, "a=bundle-only\r\n");
  for (int i = 0; i < m->next; i++) put(o, "a=extmap:%d %s\r\n", m->ext[i].id, m->ext[i].uri);
  if (rtp || m->dir != SFU_DIR_SENDRECV) put(o, "a=%s\r\n", dir_name(m->dir));
  if (m->rtcp_mux) put(o, "a=rtcp-mux\r\n");
  if (m->rtcp_rsize) put(o, "a=rtcp-rsize\r\n");
  for (int i = 0; i < m->ncodecs; i++) write_codec(o, &m->codecs[i], audio);
  if (m->nsim) {
    put(o, "a=ssrc-group:SIM");
    for (int i = 0; i < m->nsim && i < 3; i++) put(o, " %u", (unsigned)m->sim_ssrcs[i]);
    put(o, "\r\n");
  }
  if (m->has_fid)
    put(o, "a=ssrc-group:FID %u %u\r\n", (unsigned)m->fid_ssrc[0], (unsigned)m->fid_ssrc[1]);
  for (int i = 0; i < m->nssrcs; i++) {
    put(o, "a=ssrc:%u cname:%s\r\n", (unsigned)m->ssrcs[i], m->cname);
    if (m->msid_stream[0]) {
      put(o, "a=ssrc:%u msid:", (unsigned)m->ssrcs[i]);
      write_msid(o, m);
    }
  }
  if (m->msid_stream[0]) {
    put(o, "a=msid:");
    write_msid(o, m);
  }
  for (int i = 0; i < m->nrids; i++)
    put(o, "a=rid:%s %s\r\n", m->rids[i].rid, m->rids[i].send ? "send" : "recv");
  if (m->has_simulcast && m->nrids) write_simulcast(o, m);
  if (m->sctp_port[0] && m->fmt[0] >= '0' && m->fmt[0] <= '9') /* "DTLS/SCTP 5000" */
    put(o, "a=sctpmap:%s webrtc-datachannel 65535\r\n", m->sctp_port);
  else if (m->sctp_port[0])
    put(o, "a=sctp-port:%s\r\n", m->sctp_port);
  if (m->max_message_size) put(o, "a=max-message-size:%u\r\n", (unsigned)m->max_message_size);
  for (int i = 0; i < m->ncandidates; i++) put(o, "a=%s\r\n", m->candidates[i]);
  if (m->end_of_candidates) put(o, "a=end-of-candidates\r\n");
}

int sfu_sdp_write(const sfu_sdp_t *sdp, char *buf, size_t cap) {
  out_t o = {buf, cap, 0, cap == 0};
  int active = 0;
  for (int i = 0; i < sdp->nbundle; i++)
    if (sdp->bundle[i] >= sdp->nmedia || !sdp->media[sdp->bundle[i]].mid[0]) return SFU_EINVAL;
  for (int i = 0; i < sdp->nmedia; i++) active += !is_rejected(&sdp->media[i]);
  put(&o, "v=0\r\no=%s %llu %llu IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n",
      sdp->origin_user[0] ? sdp->origin_user : "-", (unsigned long long)sdp->session_id,
      (unsigned long long)sdp->session_version);
  if (sdp->nbundle) {
    put(&o, "a=group:BUNDLE");
    for (int i = 0; i < sdp->nbundle; i++) put(&o, " %s", sdp->media[sdp->bundle[i]].mid);
    put(&o, "\r\n");
  }
  if (sdp->extmap_allow_mixed) put(&o, "a=extmap-allow-mixed\r\n");
  if (sdp->ice_lite) put(&o, "a=ice-lite\r\n");
  if (sdp->ice_options_trickle && !active) put(&o, "a=ice-options:trickle\r\n");
  put(&o, "a=msid-semantic: WMS *\r\n");
  for (int i = 0; i < sdp->nmedia; i++) write_media(&o, sdp, &sdp->media[i]);
  if (o.full || o.len > INT32_MAX) return SFU_E2BIG;
  return (int)o.len;
}

/* ------------------------------------------------------------------------ */
/* Look-ups                                                                 */

const sfu_sdp_codec_t *sfu_sdp_find_codec(const sfu_sdp_media_t *m, const char *name, int clock) {
  for (int i = 0; i < m->ncodecs; i++) {
    const sfu_sdp_codec_t *c = &m->codecs[i];
    if (strcasecmp(c->name, name) == 0 && (clock <= 0 || c->clock == clock)) return c;
  }
  return NULL;
}

int sfu_sdp_find_ext(const sfu_sdp_media_t *m, const char *uri) {
  for (int i = 0; i < m->next; i++)
    if (strcmp(m->ext[i].uri, uri) == 0) return m->ext[i].id;
  return 0;
}

int sfu_sdp_find_mid(const sfu_sdp_t *sdp, const char *mid) {
  if (!mid[0]) return -1;
  for (int i = 0; i < sdp->nmedia; i++)
    if (strcmp(sdp->media[i].mid, mid) == 0) return i;
  return -1;
}

void sfu_sdp_bundle_live(sfu_sdp_t *s) {
  s->nbundle = 0;
  for (int i = 0; i < s->nmedia; i++) {
    if (s->media[i].port == 0) continue;
    if (s->nbundle > 0) s->media[i].ncandidates = 0;
    s->bundle[s->nbundle++] = (uint16_t)i;
  }
}

static int in_bundle(const sfu_sdp_t *s, int i) {
  for (int j = 0; j < s->nbundle; j++)
    if (s->bundle[j] == i) return 1;
  return 0;
}

int sfu_sdp_bundle_only_live(sfu_sdp_t *s) {
  const sfu_sdp_media_t *tag = s->nbundle ? &s->media[s->bundle[0]] : NULL;
  int n = 0;
  for (int i = 0; i < s->nmedia; i++) {
    sfu_sdp_media_t *m = &s->media[i];
    if (m->port != 0 || !m->bundle_only) continue;
    if (!tag || tag->port == 0 || !in_bundle(s, i)) {
      /* rejected: what the parser keeps of a port 0 line */
      sfu_sdp_media_t r;
      memset(&r, 0, sizeof(r));
      memcpy(r.kind, m->kind, sizeof(r.kind));
      memcpy(r.proto, m->proto, sizeof(r.proto));
      memcpy(r.fmt, m->fmt, sizeof(r.fmt));
      memcpy(r.mid, m->mid, sizeof(r.mid));
      r.dir = SFU_DIR_INACTIVE;
      *m = r;
      continue;
    }
    m->port = 9;
    if (!m->ice_ufrag[0] || !m->ice_pwd[0]) {
      memcpy(m->ice_ufrag, tag->ice_ufrag, sizeof(m->ice_ufrag));
      memcpy(m->ice_pwd, tag->ice_pwd, sizeof(m->ice_pwd));
    }
    if (!m->fp_len) {
      memcpy(m->fp_alg, tag->fp_alg, sizeof(m->fp_alg));
      memcpy(m->fp, tag->fp, sizeof(m->fp));
      m->fp_len = tag->fp_len;
    }
    if (!m->setup[0]) memcpy(m->setup, tag->setup, sizeof(m->setup));
    m->rtcp_mux |= tag->rtcp_mux;
    n++;
  }
  return n;
}

sfu_sdp_t *sfu_sdp_new(int nmedia_cap) {
  sfu_sdp_t *s = calloc(1, sizeof(*s));
  if (!s) return NULL;
  s->media = calloc((size_t)(nmedia_cap > 0 ? nmedia_cap : 1), sizeof(*s->media));
  if (!s->media) {
    free(s);
    return NULL;
  }
  return s;
}

void sfu_sdp_destroy(sfu_sdp_t *s) {
  if (!s) return;
  sfu_sdp_free(s);
  free(s);
}
