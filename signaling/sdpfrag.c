/*
 * sdpfrag.c -- WHIP/WHEP trickle-ice-sdpfrag bodies and ICE credential
 * rewriting (sdpfrag.h).
 *
 * RFC 8840 section 4.4 (and RFC 9725 section 4.3.1) define the fragment:
 *
 *   a=ice-options:trickle ice2
 *   a=group:BUNDLE 0 1
 *   m=audio 9 UDP/TLS/RTP/SAVPF 111
 *   a=mid:0
 *   a=ice-ufrag:EsAw
 *   a=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1
 *   a=candidate:1387637174 1 udp 2122260223 192.0.2.1 61764 typ host
 *   a=end-of-candidates
 *
 * An ICE-lite server needs none of the candidates (it learns the client's
 * addresses from its checks), so only the credentials matter: new ones
 * are an ICE restart (RFC 9725 section 4.3.2). One pass over lines, no
 * allocation.
 */
#include <stdlib.h>
#include <string.h>

#include "sfu/base/sfu.h"
#include "signaling/sdpfrag.h"

/* ice-char = ALPHA / DIGIT / "+" / "/" (RFC 8839 section 5.4). */
static int ice_chars(const char *v, size_t n) {
  if (n == 0) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = v[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '+' ||
          c == '/'))
      return 0;
  }
  return 1;
}

static int starts(const char *l, size_t n, const char *p) {
  size_t k = strlen(p);
  return n >= k && memcmp(l, p, k) == 0;
}

int sfu_sdpfrag_parse(const char *text, size_t len, sfu_sdpfrag_t *out, const char **why) {
  const char *w = NULL;
  int rv = 0;
  memset(out, 0, sizeof(*out));
  if (!text && len) return SFU_EINVAL;
  if (len > SFU_SDPFRAG_MAX_TEXT) {
    w = "fragment too large";
    rv = SFU_E2BIG;
    goto out;
  }
  size_t i = 0;
  while (i < len) {
    const char *l = text + i;
    const char *nl = memchr(l, '\n', len - i);
    size_t n = nl ? (size_t)(nl - l) : len - i;
    i += n + (nl ? 1 : 0);
    if (n && l[n - 1] == '\r') n--;
    if (n == 0) continue;
    if (memchr(l, '\0', n) || memchr(l, '\r', n)) {
      w = "NUL or CR inside a line";
      rv = SFU_EPROTO;
      goto out;
    }
    if (n < 2 || l[1] != '=' || l[0] < 'a' || l[0] > 'z') {
      w = "a line is not <type>=<value>";
      rv = SFU_EPROTO;
      goto out;
    }
    char *dst = NULL;
    size_t skip = 0;
    if (starts(l, n, "a=ice-ufrag:")) dst = out->ufrag, skip = 12;
    else if (starts(l, n, "a=ice-pwd:")) dst = out->pwd, skip = 10;
    else if (starts(l, n, "a=candidate:")) out->candidates++;
    else if (starts(l, n, "a=end-of-candidates")) out->end_of_candidates = 1;
    else if (l[0] == 'm') out->mlines++;
    if (!dst) continue;
    if (n - skip > SFU_SDPFRAG_MAX_CRED) {
      w = "ICE credential too long";
      rv = SFU_E2BIG;
      goto out;
    }
    if (!ice_chars(l + skip, n - skip)) {
      w = "bad ICE credential";
      rv = SFU_EPROTO;
      goto out;
    }
    memcpy(dst, l + skip, n - skip);
    dst[n - skip] = '\0';
  }
  if (!out->ufrag[0] != !out->pwd[0]) {
    w = "ice-ufrag and ice-pwd go together";
    rv = SFU_EPROTO;
  }
out:
  if (rv) memset(out, 0, sizeof(*out));
  if (why) *why = w;
  return rv;
}

char *sfu_sdpfrag_set_ice(const char *text, const char *ufrag, const char *pwd) {
  size_t len = strlen(text), lines = 1;
  for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
  size_t cap = len + lines * (strlen(ufrag) + strlen(pwd)) + 1;
  char *out = malloc(cap), *o = out;
  int seen = 0;
  if (!out) return NULL;
  for (size_t i = 0; i < len;) {
    const char *l = text + i;
    const char *nl = memchr(l, '\n', len - i);
    size_t n = nl ? (size_t)(nl - l) + 1 : len - i; /* with its LF */
    size_t body = n - (nl ? 1 : 0);
    if (body && l[body - 1] == '\r') body--;
    const char *val = NULL, *pre = NULL;
    if (starts(l, body, "a=ice-ufrag:")) pre = "a=ice-ufrag:", val = ufrag, seen = 1;
    else if (starts(l, body, "a=ice-pwd:")) pre = "a=ice-pwd:", val = pwd;
    if (val) {
      size_t pl = strlen(pre), vl = strlen(val);
      memcpy(o, pre, pl);
      memcpy(o + pl, val, vl);
      o += pl + vl;
      memcpy(o, l + body, n - body); /* the line end as it was */
      o += n - body;
    } else {
      memcpy(o, l, n);
      o += n;
    }
    i += n;
  }
  *o = '\0';
  if (!seen) {
    free(out);
    return NULL;
  }
  return out;
}
