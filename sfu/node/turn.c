/*
 * turn.c -- TURN REST API credentials (see turn.h).
 *
 * The credential is HMAC-SHA1 because that is what coturn computes for
 * `use-auth-secret` (its default; it can be told SHA-256 only by a setting
 * that browsers' TURN clients do not follow). The username carries the
 * identity after the expiry so that a TURN server's logs and quotas name
 * the participant; coturn reads the expiry up to the first ':' and an
 * identity may hold more of them.
 *
 * URLs are checked once, when the settings are read, and copied into each
 * welcome as they were written (spaces around the commas dropped): the
 * clients parse them, sfud only makes sure they are TURN URLs a browser
 * accepts (RFC 7065), so that a typo fails at start-up and not in every
 * call.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "sfu/base/sfu.h"
#include "sfu/node/turn.h"

/* Copies the next URL of the list at *p into out and moves *p past it.
 * Its length; 0 at the end of the list; -1 when longer than
 * SFU_TURN_MAX_URL. Empty items (",,") are skipped. */
static int next_url(const char **p, char out[SFU_TURN_MAX_URL + 1]) {
  const char *s = *p;
  for (;;) {
    while (*s == ' ' || *s == '\t') s++;
    if (*s != ',') break;
    s++;
  }
  const char *e = s;
  while (*e && *e != ',') e++;
  *p = e;
  while (e > s && (e[-1] == ' ' || e[-1] == '\t')) e--;
  size_t n = (size_t)(e - s);
  if (n > SFU_TURN_MAX_URL) return -1;
  memcpy(out, s, n);
  out[n] = '\0';
  return (int)n;
}

static int host_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '.' || c == '-' || c == '_';
}

/* One URL (RFC 7065 section 3):
 *
 *   turnURI   = scheme ":" host [ ":" port ] [ "?transport=" transport ]
 *   scheme    = "turn" / "turns"
 *   transport = "udp" / "tcp" / transport-ext
 *   host      = IP-literal / IPv4address / reg-name
 *
 * Returns NULL when good, else why not. */
static const char *check_url(const char *u) {
  int tls;
  if (strncmp(u, "turn:", 5) == 0) {
    tls = 0;
    u += 5;
  } else if (strncmp(u, "turns:", 6) == 0) {
    tls = 1;
    u += 6;
  } else {
    return "must start with turn: or turns:";
  }
  const char *h = u;
  if (*u == '[') { /* IPv6 literal */
    u++;
    while ((*u >= '0' && *u <= '9') || (*u >= 'a' && *u <= 'f') || (*u >= 'A' && *u <= 'F') ||
           *u == ':' || *u == '.')
      u++;
    if (*u != ']' || u == h + 1) return "bad IPv6 address (turn:[2001:db8::1]:3478)";
    u++;
  } else {
    while (host_char(*u)) u++;
    if (u == h) return "no host after the scheme (turn:HOST:PORT)";
  }
  if (*u == ':') {
    long port = 0;
    int digits = 0;
    for (u++; *u >= '0' && *u <= '9' && digits < 6; u++, digits++) port = port * 10 + (*u - '0');
    if (digits == 0 || port < 1 || port > 65535) return "port must be 1..65535";
  }
  if (*u == '\0') return NULL;
  if (strcmp(u, "?transport=tcp") == 0) return NULL;
  if (strcmp(u, "?transport=udp") == 0)
    return tls ? "turns: runs over TCP: use ?transport=tcp or no transport" : NULL;
  return "only ?transport=udp or ?transport=tcp may follow the host and port";
}

int sfu_turn_check(const char *urls, const char *secret, char *err, size_t errlen) {
  char u[SFU_TURN_MAX_URL + 1];
  const char *p = urls ? urls : "";
  int n = 0, len;
  while ((len = next_url(&p, u)) != 0) {
    if (len < 0) {
      snprintf(err, errlen, "turn_urls: a URL is longer than %d bytes", SFU_TURN_MAX_URL);
      return -1;
    }
    const char *why = check_url(u);
    if (why) {
      snprintf(err, errlen, "turn_urls: '%s': %s", u, why);
      return -1;
    }
    if (++n > SFU_TURN_MAX_URLS) {
      snprintf(err, errlen, "turn_urls: more than %d URLs", SFU_TURN_MAX_URLS);
      return -1;
    }
  }
  if (n > 0 && (!secret || strlen(secret) < SFU_TURN_MIN_SECRET)) {
    snprintf(err, errlen,
             "turn_secret of at least %d bytes is required with turn_urls (the TURN server's "
             "static-auth-secret)",
             SFU_TURN_MIN_SECRET);
    return -1;
  }
  return 0;
}

int sfu_turn_username(char *buf, size_t cap, int64_t expiry_s, const char *identity) {
  int n = snprintf(buf, cap, "%lld:%s", (long long)expiry_s, identity ? identity : "");
  return n < 0 || (size_t)n >= cap ? SFU_E2BIG : n;
}

int sfu_turn_credential(const char *secret, const char *username, char *out, size_t cap) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int maclen = 0;
  if (!secret || !username || !out) return SFU_EINVAL;
  if (cap <= SFU_TURN_CREDENTIAL_LEN) return SFU_E2BIG;
  if (!HMAC(EVP_sha1(), secret, (int)strlen(secret), (const unsigned char *)username,
            strlen(username), mac, &maclen) ||
      maclen != 20)
    return SFU_EINVAL;
  /* 20 bytes: 7 groups of 3 -> 28 characters with one '=' */
  return EVP_EncodeBlock((unsigned char *)out, mac, (int)maclen);
}

json_t *sfu_turn_ice_servers(const char *urls, const char *secret, int ttl_s,
                             const char *identity, int64_t now_s) {
  char u[SFU_TURN_MAX_URL + 1], user[32 + 65], cred[SFU_TURN_CREDENTIAL_LEN + 1];
  const char *p = urls ? urls : "";
  json_t *list = json_array();
  int len;
  if (!list) return NULL;
  while ((len = next_url(&p, u)) != 0 && json_array_size(list) < SFU_TURN_MAX_URLS)
    if (len > 0) json_array_append_new(list, json_string(u));
  if (json_array_size(list) == 0 ||
      sfu_turn_username(user, sizeof(user), now_s + ttl_s, identity) < 0 ||
      sfu_turn_credential(secret, user, cred, sizeof(cred)) != SFU_TURN_CREDENTIAL_LEN) {
    json_decref(list);
    return NULL;
  }
  return json_pack("[{s:o, s:s, s:s}]", "urls", list, "username", user, "credential", cred);
}
