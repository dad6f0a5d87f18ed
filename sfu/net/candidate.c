/*
 * candidate.c -- a peer's candidate line, checked field by field
 * (candidate.h). The grammar is RFC 8839 5.1's, with RFC 6544 4.5's
 * extension for TCP; every field is a space-separated token, read in
 * place.
 *
 * Strictness: numbers are digits only and in range (libnice's parser takes
 * "5x" as 5), the address is an IP literal or a host name (an mDNS name
 * from a browser: a lite agent needs no address from a candidate), the
 * type one of the four of RFC 8445, extensions come in pairs. A TCP
 * candidate must say its tcptype (RFC 6544 4.5); a UDP one must not.
 */
#include <arpa/inet.h>
#include <string.h>
#include <strings.h>

#include "sfu/base/sfu.h"
#include "sfu/net/candidate.h"

/* The line being read: the next token starts at or after `at`. */
typedef struct {
  const char *s;          /* the line */
  size_t len;             /* its length */
  size_t at;              /* read position */
  const char **err_desc;  /* the caller's, for the failure; NULL: not wanted */
} reader_t;

/* A token: offset and length into the line; len 0 at the end. */
typedef struct {
  size_t off, len;
} tok_t;

static tok_t next(reader_t *r) {
  tok_t t = {0, 0};
  while (r->at < r->len && r->s[r->at] == ' ') r->at++;
  t.off = r->at;
  while (r->at < r->len && r->s[r->at] != ' ') r->at++;
  t.len = r->at - t.off;
  return t;
}

static int fail(reader_t *r, const char *why) {
  if (r->err_desc) *r->err_desc = why;
  return SFU_EINVAL;
}

static int is(const reader_t *r, tok_t t, const char *word) {
  return t.len == strlen(word) && memcmp(r->s + t.off, word, t.len) == 0;
}

static int is_nocase(const reader_t *r, tok_t t, const char *word) {
  return t.len == strlen(word) && strncasecmp(r->s + t.off, word, t.len) == 0;
}

/* Every byte of the token is in `set`, and it has min..max of them. */
static int all_of(const reader_t *r, tok_t t, const char *set, size_t min, size_t max) {
  if (t.len < min || t.len > max) return 0;
  for (size_t i = 0; i < t.len; i++)
    if (!r->s[t.off + i] || !strchr(set, r->s[t.off + i])) return 0;
  return 1;
}

/* A decimal number of 1..maxdigits digits within lo..hi. */
static int number(const reader_t *r, tok_t t, size_t maxdigits, uint64_t lo, uint64_t hi,
                  uint64_t *out) {
  if (!all_of(r, t, "0123456789", 1, maxdigits)) return 0;
  uint64_t v = 0;
  for (size_t i = 0; i < t.len; i++) v = v * 10 + (uint64_t)(r->s[t.off + i] - '0');
  *out = v;
  return v >= lo && v <= hi;
}

/* connection-address: an IPv4 or IPv6 literal, or a host name (letters,
 * digits, '.', '-', with a letter or '-' somewhere: "300.0.0.1" is a bad
 * IPv4 address, not a name). */
static int address(const reader_t *r, tok_t t) {
  static const char name_chars[] =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-";
  char ip[INET6_ADDRSTRLEN];
  uint8_t bin[16];
  if (t.len > 0 && t.len < sizeof(ip) && !memchr(r->s + t.off, '\0', t.len)) {
    memcpy(ip, r->s + t.off, t.len);
    ip[t.len] = '\0';
    if (inet_pton(AF_INET, ip, bin) == 1 || inet_pton(AF_INET6, ip, bin) == 1) return 1;
  }
  if (!all_of(r, t, name_chars, 1, 253)) return 0;
  for (size_t i = 0; i < t.len; i++)
    if (!strchr("0123456789.", r->s[t.off + i])) return 1;
  return 0;
}

/*
 * RFC 8839 5.1 (with RFC 6544 4.5's tcp-type-ext among the extensions):
 *
 *   candidate-attribute = "candidate" ":" foundation SP component-id SP
 *                         transport SP priority SP connection-address SP
 *                         port SP cand-type [SP rel-addr] [SP rel-port]
 *                         *(SP cand-extension)
 *   foundation          = 1*32ice-char
 *   component-id        = 1*3DIGIT
 *   transport           = "UDP" / transport-extension
 *   priority            = 1*10DIGIT
 *   cand-type           = "typ" SP candidate-types
 *   candidate-types     = "host" / "srflx" / "prflx" / "relay" / token
 *   rel-addr            = "raddr" SP connection-address
 *   rel-port            = "rport" SP port
 *   cand-extension      = extension-att-name SP extension-att-value
 *   tcp-type-ext        = "tcptype" SP tcp-type
 *   tcp-type            = "active" / "passive" / "so"
 */
int sfu_candidate_parse(const char *line, size_t len, sfu_candidate_t *c, const char **err_desc) {
  static const char ice_chars[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  static const char *const types[] = {"host", "srflx", "prflx", "relay"};
  static const char *const tcptypes[] = {"active", "passive", "so"};
  reader_t r = {line, len, 0, err_desc};
  uint64_t v;
  memset(c, 0, sizeof(*c));
  if (err_desc) *err_desc = NULL;
  if (!line || len > SFU_CANDIDATE_MAX) return fail(&r, "no line, or too long");
  if (len >= 2 && memcmp(line, "a=", 2) == 0) r.at = 2;
  if (len - r.at < 10 || memcmp(line + r.at, "candidate:", 10) != 0)
    return fail(&r, "not a candidate: line");
  r.at += 10;
  if (r.at < len && line[r.at] == ' ') return fail(&r, "bad foundation");
  tok_t t = next(&r);
  if (!all_of(&r, t, ice_chars, 1, 32)) return fail(&r, "bad foundation");
  c->foundation_off = t.off;
  c->foundation_len = t.len;
  if (!number(&r, next(&r), 3, 1, 256, &v)) return fail(&r, "bad component");
  c->component = (int)v;
  t = next(&r);
  if (is_nocase(&r, t, "udp"))
    c->transport = SFU_CANDIDATE_UDP;
  else if (is_nocase(&r, t, "tcp"))
    c->transport = SFU_CANDIDATE_TCP;
  else
    return fail(&r, "transport neither UDP nor TCP");
  if (!number(&r, next(&r), 10, 1, 0xffffffffu, &v)) return fail(&r, "bad priority");
  c->priority = (uint32_t)v;
  t = next(&r);
  if (!address(&r, t)) return fail(&r, "bad address");
  c->addr_off = t.off;
  c->addr_len = t.len;
  if (!number(&r, next(&r), 5, 0, 65535, &v)) return fail(&r, "bad port");
  c->port = (uint16_t)v;
  if (!is(&r, next(&r), "typ")) return fail(&r, "no typ");
  t = next(&r);
  c->type = -1;
  for (int i = 0; i < 4; i++)
    if (is(&r, t, types[i])) c->type = SFU_CANDIDATE_HOST + i;
  if (c->type < 0) return fail(&r, "bad candidate type");
  /* Extensions, in pairs: each pass reads two tokens or ends the line. */
  for (;;) {
    tok_t name = next(&r), val = next(&r);
    if (name.len == 0) break;
    if (val.len == 0) return fail(&r, "extension without a value");
    if (is(&r, name, "raddr") && !address(&r, val)) return fail(&r, "bad raddr");
    if (is(&r, name, "rport") && !number(&r, val, 5, 0, 65535, &v)) return fail(&r, "bad rport");
    if (is(&r, name, "tcptype")) {
      if (c->transport != SFU_CANDIDATE_TCP || c->tcptype != SFU_CANDIDATE_TCP_NONE)
        return fail(&r, "tcptype on a UDP candidate, or twice");
      for (int i = 0; i < 3; i++)
        if (is(&r, val, tcptypes[i])) c->tcptype = SFU_CANDIDATE_TCP_ACTIVE + i;
      if (c->tcptype == SFU_CANDIDATE_TCP_NONE) return fail(&r, "bad tcptype");
    }
  }
  if (c->transport == SFU_CANDIDATE_TCP && c->tcptype == SFU_CANDIDATE_TCP_NONE)
    return fail(&r, "TCP candidate without tcptype");
  return 0;
}
