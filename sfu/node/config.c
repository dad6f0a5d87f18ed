/*
 * config.c -- one table describes every setting: its name, where it lives
 * in sfu_config_t, its type and bounds, and a line of help. Files, the
 * environment and flags all go through sfu_config_set(), so there is one
 * parser per type and one place to add a setting.
 *
 * Precedence: defaults < file < environment < flags. --config is found in
 * argv first and loaded before the environment, so that the order holds
 * whatever position the flag has on the command line.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>


#include "sfu/node/config.h"
#include "sfu/base/log.h"
#include "sfu/base/sfu.h"
#include "sfu/node/turn.h"
#include "signaling/token.h"

typedef enum { T_STR, T_INT } opt_type_t;

typedef struct {
  const char *key;   /* setting name; flag is --key with '_' -> '-' */
  opt_type_t type;   /* T_STR: char array; T_INT: int */
  size_t off;        /* offset in sfu_config_t */
  size_t size;       /* T_STR: array size */
  long min, max;     /* T_INT bounds */
  const char *help;  /* one line */
} opt_t;

#define S(k, h) {#k, T_STR, offsetof(sfu_config_t, k), sizeof(((sfu_config_t *)0)->k), 0, 0, h}
#define I(k, lo, hi, h) {#k, T_INT, offsetof(sfu_config_t, k), sizeof(int), lo, hi, h}

static const opt_t opts[] = {
  S(listen_host, "address to bind the HTTP/WebSocket server (default 127.0.0.1)"),
  I(listen_port, 0, 65535, "TCP port of the HTTP/WebSocket server (default 7880; 0 = any)"),
  S(public_url, "base URL clients use to reach this node (default http(s)://<host>:<port>)"),
  S(tls_cert_file, "PEM certificate chain: serve HTTPS and WSS (default: none, plain HTTP); reloaded on SIGHUP"),
  S(tls_key_file, "PEM private key of tls_cert_file (required with it); reloaded on SIGHUP"),
  S(node_id, "name of this node in event ids; must be unique and stable (default: host name)"),
  S(webhook_url, "POST event and usage batches here, http:// or https:// (default: none; pull GET /v1/events)"),
  S(webhook_secret, "HMAC-SHA256 key signing webhook batches (required with webhook_url)"),
  S(webhook_tls_ca_file, "PEM CA certificates verifying an https:// webhook_url (default: the system store)"),
  S(webhook_tls_pin, "sha256//<base64 SHA-256 of the SubjectPublicKeyInfo> the webhook receiver's key must have (default: none)"),
  I(webhook_retry_min_ms, 100, 60000, "first delay before a failed webhook batch is sent again, doubling up to 5 min, with jitter (default 1000)"),
  S(api_key, "bearer key of the control-plane API (default: generated, printed)"),
  S(token_secret, "HS256 secret for join tokens (default: generated, printed)"),
  S(room_binary, "path of the sfu-room executable (default: next to sfud)"),
  S(data_dir, "directory for the journal and state (default ./sfu-data)"),
  S(web_root, "serve the demo page from this directory (default: none)"),
  S(log_level, "debug, info, warn or error (default info)"),
  S(rtc_addresses, "IPv4 and/or IPv6 addresses of the media host candidates, comma-separated, at most 4, IPv6 without brackets (default 127.0.0.1; e.g. 192.0.2.10,2001:db8::10)"),
  S(rtc_announced_address, "IP written into the candidates of its own family instead of the local one, behind 1:1 NAT (default none)"),
  I(rtc_port_min, 0, 65535, "lowest UDP/TCP port for media (default 0 = any)"),
  I(rtc_port_max, 0, 65535, "highest UDP/TCP port for media (default 0 = any)"),
  S(turn_urls, "TURN servers for clients, comma-separated turn:/turns: URLs (default: none; docs/deploying.md)"),
  S(turn_secret, "the TURN server's static-auth-secret, at least 16 bytes: signs short-lived TURN credentials (required with turn_urls)"),
  I(turn_ttl_s, 60, 604800, "TURN credentials given at a join stay valid this long: the longest call through TURN (default 86400)"),
  S(etcd_url, "etcd's v3 JSON gateway, http:// or https://: join the fleet kept there (default: none, the node runs alone; docs/fleet.md)"),
  S(etcd_prefix, "the fleet's keys in etcd live under this prefix (default /sfu)"),
  I(etcd_lease_ttl_s, 2, 300, "this node's lease in etcd: its keys go this long after it stops answering (default 10)"),
  S(region, "this node's region: rooms created for a region go to a node of it (default \"default\")"),
  S(fleet_tls_ca_file, "PEM CA certificates verifying https:// etcd and other nodes' API (default: the system store)"),
  I(max_rooms, 1, 100000, "rooms this node accepts (default 1000)"),
  I(max_participants, 1, 10000, "participants per room, upper bound (default 100)"),
  I(max_relays, 0, 64, "relay processes one room may spread over, each serving a share of its listeners (default 4; docs/internals/relay.md)"),
  I(relay_threshold, 0, 100000, "participants per process of a room: the origin takes publishers while it serves fewer, and a room whose every process serves this many spreads over one more relay (default 0: relays only on request)"),
  I(empty_timeout_s, 1, 86400, "a room with nobody in it ends after this (default 300)"),
  I(heartbeat_ms, 50, 60000, "supervisor pings each room this often (default 1000)"),
  I(heartbeat_timeout_ms, 100, 600000, "a room silent this long is killed (default 5000)"),
  I(crashed_retention_s, 0, 86400, "a crashed room stays listed this long (default 300)"),
  I(max_body_bytes, 256, 16777216, "largest API request body (default 65536)"),
  I(shutdown_grace_ms, 0, 60000, "on shutdown, wait this long for rooms (default 3000)"),
  I(usage_interval_s, 1, 3600, "rooms send a usage checkpoint this often (default 10)"),
  I(dynacast_stop_ms, 100, 60000, "a publisher's video layer nobody takes is stopped (dynacast) after this long (default 3000)"),
  I(media_timeout_s, 1, 3600, "a participant whose media is silent this long after connecting, or whose transport failed this long ago, is removed (default 15)"),
  I(zygote, 0, 1, "1 = fork rooms from a pre-loaded template process; 0 = exec each (default 1)"),
  I(dev, 0, 1, "1 = development routes: POST /dev/join mints tokens without a key (default 0)"),
  I(resume_grace_s, 0, 600, "a client whose WebSocket drops may resume its session within this (default 20; 0 = never)"),
  I(room_orphan_grace_s, 0, 3600, "if sfud dies, its rooms go on this long for a restarted sfud to take them over (default 30; 0 = rooms end with sfud)"),
  I(max_connections, 16, 1000000, "open HTTP/WebSocket connections, all clients; lowered to fit the descriptor limit less max_rooms + 64 (default 10000)"),
  I(max_connections_per_ip, 1, 1000000, "open HTTP/WebSocket connections from one IP address (default 256)"),
  S(adopt_state, "set by sfud itself when it upgrades in place (SIGUSR2): the state file it hands over (docs/internals/upgrade.md)"),
  I(http_request_timeout_ms, 1000, 600000, "a connection must send a complete request (headers and body) within this (default 10000)"),
};

#undef S
#undef I

void sfu_config_defaults(sfu_config_t *c) {
  memset(c, 0, sizeof(*c));
  strcpy(c->listen_host, "127.0.0.1");
  c->listen_port = 7880;
  strcpy(c->data_dir, "./sfu-data");
  strcpy(c->log_level, "info");
  strcpy(c->rtc_addresses, "127.0.0.1");
  c->max_rooms = 1000;
  c->max_participants = 100;
  c->max_relays = 4;
  c->empty_timeout_s = 300;
  c->heartbeat_ms = 1000;
  c->heartbeat_timeout_ms = 5000;
  c->crashed_retention_s = 300;
  c->max_body_bytes = 65536;
  c->shutdown_grace_ms = 3000;
  c->media_timeout_s = 15;
  c->dynacast_stop_ms = 3000;
  c->webhook_retry_min_ms = 1000;
  c->zygote = 1;
  c->usage_interval_s = 10;
  c->resume_grace_s = 20;
  c->room_orphan_grace_s = 30;
  c->max_connections = 10000;
  c->max_connections_per_ip = 256;
  c->http_request_timeout_ms = 10000;
  c->turn_ttl_s = 86400;
  strcpy(c->etcd_prefix, "/sfu");
  c->etcd_lease_ttl_s = 10;
  strcpy(c->region, "default");
}

static const opt_t *find_opt(const char *key, size_t len) {
  for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
    if (strlen(opts[i].key) == len && strncmp(opts[i].key, key, len) == 0)
      return &opts[i];
  return NULL;
}

static int set_opt(sfu_config_t *c, const opt_t *o, const char *value,
                   char *err, size_t errlen) {
  char *base = (char *)c + o->off;
  if (o->type == T_STR) {
    size_t n = strlen(value);
    if (n >= o->size) {
      snprintf(err, errlen, "%s: value longer than %zu bytes", o->key, o->size - 1);
      return -1;
    }
    memcpy(base, value, n + 1);
    return 0;
  }
  char *end;
  errno = 0;
  long v = strtol(value, &end, 10);
  if (errno || end == value || *end != '\0' || v < o->min || v > o->max) {
    snprintf(err, errlen, "%s: '%s' is not an integer in [%ld, %ld]", o->key,
             value, o->min, o->max);
    return -1;
  }
  *(int *)base = (int)v;
  return 0;
}

int sfu_config_set(sfu_config_t *c, const char *key, const char *value,
                   char *err, size_t errlen) {
  const opt_t *o = find_opt(key, strlen(key));
  if (!o) {
    snprintf(err, errlen, "unknown setting '%s'", key);
    return -1;
  }
  return set_opt(c, o, value, err, errlen);
}

static char *trim(char *s) {
  while (isspace((unsigned char)*s)) s++;
  char *e = s + strlen(s);
  while (e > s && isspace((unsigned char)e[-1])) *--e = '\0';
  return s;
}

int sfu_config_load_file(sfu_config_t *c, const char *path, char *err,
                         size_t errlen) {
  FILE *f = fopen(path, "r");
  char line[1024], sub[256];
  int lineno = 0, rv = 0;

  if (!f) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return -1;
  }
  while (fgets(line, sizeof(line), f)) {
    lineno++;
    if (!strchr(line, '\n') && !feof(f)) {
      snprintf(err, errlen, "%s:%d: line too long", path, lineno);
      rv = -1;
      break;
    }
    char *s = trim(line);
    if (*s == '\0' || *s == '#') continue;
    char *eq = strchr(s, '=');
    if (!eq) {
      snprintf(err, errlen, "%s:%d: expected 'key = value'", path, lineno);
      rv = -1;
      break;
    }
    *eq = '\0';
    char *key = trim(s), *val = trim(eq + 1);
    size_t vl = strlen(val);
    if (vl >= 2 && val[0] == '"' && val[vl - 1] == '"') {
      val[vl - 1] = '\0';
      val++;
    }
    if (sfu_config_set(c, key, val, sub, sizeof(sub)) != 0) {
      snprintf(err, errlen, "%s:%d: %s", path, lineno, sub);
      rv = -1;
      break;
    }
  }
  fclose(f);
  return rv;
}

int sfu_config_load_env(sfu_config_t *c, char *err, size_t errlen) {
  char name[64];
  for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
    size_t n = (size_t)snprintf(name, sizeof(name), "SFU_%s", opts[i].key);
    for (size_t j = 4; j < n; j++) name[j] = (char)toupper((unsigned char)name[j]);
    const char *v = getenv(name);
    if (v && set_opt(c, &opts[i], v, err, errlen) != 0) return -1;
  }
  return 0;
}

/* "--listen-port" -> opt for listen_port. */
static const opt_t *flag_opt(const char *flag, size_t len) {
  char key[64];
  if (len >= sizeof(key)) return NULL;
  for (size_t i = 0; i < len; i++) key[i] = flag[i] == '-' ? '_' : flag[i];
  return find_opt(key, len);
}

int sfu_config_parse_args(sfu_config_t *c, int argc, char **argv,
                          const char **info, char *err, size_t errlen) {
  *info = NULL;
  /* Pass 1: --help, --version, --config. */
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      *info = "help";
      return 1;
    }
    if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0) {
      *info = "version";
      return 1;
    }
    const char *path = NULL;
    if (strncmp(a, "--config=", 9) == 0) {
      path = a + 9;
    } else if (strcmp(a, "--config") == 0) {
      if (i + 1 >= argc) {
        snprintf(err, errlen, "--config needs a file");
        return -1;
      }
      path = argv[++i];
    }
    if (path) {
      if (sfu_config_load_file(c, path, err, errlen) != 0) return -1;
      snprintf(c->config_file, sizeof(c->config_file), "%s", path);
    }
  }
  if (sfu_config_load_env(c, err, errlen) != 0) return -1;
  /* Pass 2: settings. */
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *val;
    if (strncmp(a, "--", 2) != 0) {
      snprintf(err, errlen, "unexpected argument '%s'", a);
      return -1;
    }
    a += 2;
    const char *eq = strchr(a, '=');
    size_t klen = eq ? (size_t)(eq - a) : strlen(a);
    if (klen == 6 && strncmp(a, "config", 6) == 0) {
      if (!eq) i++;
      continue;
    }
    if (!eq && strcmp(a, "check-config") == 0) {
      c->check_config = 1;
      continue;
    }
    if (!eq && strcmp(a, "print-config") == 0) {
      c->print_config = 1;
      continue;
    }
    const opt_t *o = flag_opt(a, klen);
    if (!o) {
      snprintf(err, errlen, "unknown option '%s' (see --help)", argv[i]);
      return -1;
    }
    if (eq) {
      val = eq + 1;
    } else if (i + 1 < argc) {
      val = argv[++i];
    } else {
      snprintf(err, errlen, "option '%s' needs a value", argv[i]);
      return -1;
    }
    if (set_opt(c, o, val, err, errlen) != 0) return -1;
  }
  return 0;
}

/* ---- media addresses ---------------------------------------------------
 *
 * rtc_addresses goes to every room as is (sfu-room --rtc-addresses), whose
 * ICE agent opens one UDP socket per address, IPv4 or IPv6
 * (sfu/net/icelite.c). sfud checks the list when it starts, so that a
 * wrong address stops sfud with a message naming it instead of failing
 * every room at its first participant. */

/* One address of rtc_addresses or rtc_announced_address. */
typedef struct {
  char text[INET6_ADDRSTRLEN];  /* as written (a longer word is no address) */
  int family;                   /* AF_INET or AF_INET6 */
  unsigned char ip[16];         /* network order; IPv4 in the first 4 bytes */
} rtc_addr_t;

/* Parses one address literal and refuses what cannot be a host candidate.
 * 0, or -1 with err naming `key` and saying what is wrong. */
static int rtc_addr_parse(const char *key, const char *s, rtc_addr_t *a, char *err,
                          size_t errlen) {
  const char *why = NULL;
  memset(a, 0, sizeof(*a));
  snprintf(a->text, sizeof(a->text), "%s", s);
  if (strlen(s) < sizeof(a->text) && inet_pton(AF_INET, s, a->ip) == 1) {
    a->family = AF_INET;
    if (a->ip[0] == 0 && a->ip[1] == 0 && a->ip[2] == 0 && a->ip[3] == 0)
      why = "is unspecified: name the address clients send to";
    else if (a->ip[0] >= 224)
      why = "is a multicast or reserved address";
  } else if (strlen(s) < sizeof(a->text) && inet_pton(AF_INET6, s, a->ip) == 1) {
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const unsigned char zero[16] = {0};
    a->family = AF_INET6;
    if (memcmp(a->ip, zero, 16) == 0)
      why = "is unspecified: name the address clients send to";
    else if (a->ip[0] == 0xff)
      why = "is a multicast address";
    else if (memcmp(a->ip, mapped, 12) == 0)
      why = "is an IPv4-mapped IPv6 address: write the IPv4 address";
    else if (a->ip[0] == 0xfe && (a->ip[1] & 0xc0) == 0x80)
      why = "is link-local: it needs a scope (an interface), which a candidate cannot carry";
  } else if (strchr(s, '%')) {
    why = "has a scope (%interface): link-local addresses are not supported";
  } else if (s[0] == '[') {
    why = "is in brackets: write an IPv6 address without them (::1)";
  } else {
    why = "is not an IPv4 or IPv6 address";
  }
  if (why) {
    snprintf(err, errlen, "%s: '%s' %s", key, s, why);
    return -1;
  }
  return 0;
}

/* Splits rtc_addresses as the room does (commas and blanks) into out[]
 * and checks each address: a literal of either family that can be a host
 * candidate, at most SFU_CONFIG_MAX_RTC_ADDRESSES, none twice. The count,
 * or -1 with err. */
static int rtc_addr_list(const char *list, rtc_addr_t out[SFU_CONFIG_MAX_RTC_ADDRESSES],
                         char *err, size_t errlen) {
  char buf[sizeof(((sfu_config_t *)0)->rtc_addresses)];
  int n = 0;
  snprintf(buf, sizeof(buf), "%s", list);
  for (char *save = NULL, *a = strtok_r(buf, ", ", &save); a;
       a = strtok_r(NULL, ", ", &save)) {
    rtc_addr_t one;
    if (rtc_addr_parse("rtc_addresses", a, &one, err, errlen) != 0) return -1;
    for (int i = 0; i < n; i++)
      if (out[i].family == one.family && memcmp(out[i].ip, one.ip, 16) == 0) {
        snprintf(err, errlen, "rtc_addresses: '%s' is the same address as '%s'", a,
                 out[i].text);
        return -1;
      }
    if (n == SFU_CONFIG_MAX_RTC_ADDRESSES) {
      snprintf(err, errlen, "rtc_addresses: more than %d addresses ('%s' and after)",
               SFU_CONFIG_MAX_RTC_ADDRESSES, a);
      return -1;
    }
    out[n++] = one;
  }
  if (n == 0) {
    snprintf(err, errlen, "rtc_addresses is empty: give at least one IPv4 or IPv6 address");
    return -1;
  }
  return n;
}

/* rtc_addresses, and rtc_announced_address against them: an address of a
 * family that some rtc_addresses entry has (the room writes it into the
 * candidates of that family only). 0 or -1 with err. */
static int check_rtc(const sfu_config_t *c, char *err, size_t errlen) {
  rtc_addr_t addrs[SFU_CONFIG_MAX_RTC_ADDRESSES], pub;
  int n = rtc_addr_list(c->rtc_addresses, addrs, err, errlen);
  if (n < 0) return -1;
  if (!c->rtc_announced_address[0]) return 0;
  if (rtc_addr_parse("rtc_announced_address", c->rtc_announced_address, &pub, err, errlen) != 0)
    return -1;
  for (int i = 0; i < n; i++)
    if (addrs[i].family == pub.family) return 0;
  snprintf(err, errlen,
           "rtc_announced_address: '%s' is %s but no rtc_addresses entry is (it replaces "
           "the address of the candidates of its own family)",
           pub.text, pub.family == AF_INET ? "IPv4" : "IPv6");
  return -1;
}

int sfu_config_check_rtc_bind(const sfu_config_t *c, char *err, size_t errlen) {
  rtc_addr_t addrs[SFU_CONFIG_MAX_RTC_ADDRESSES];
  int n = rtc_addr_list(c->rtc_addresses, addrs, err, errlen);
  if (n < 0) return -1;
  for (int i = 0; i < n; i++) {
    union {
      struct sockaddr sa;
      struct sockaddr_in in;
      struct sockaddr_in6 in6;
    } sa;
    socklen_t sl;
    memset(&sa, 0, sizeof(sa));
    if (addrs[i].family == AF_INET) {
      sa.in.sin_family = AF_INET;
      memcpy(&sa.in.sin_addr, addrs[i].ip, 4);
      sl = sizeof(sa.in);
    } else {
      sa.in6.sin6_family = AF_INET6;
      memcpy(&sa.in6.sin6_addr, addrs[i].ip, 16);
      sl = sizeof(sa.in6);
    }
    int fd = socket(addrs[i].family, SOCK_DGRAM | SOCK_CLOEXEC, 0), one = 1, e = 0;
    if (fd < 0) {
      e = errno;
    } else {
      if (addrs[i].family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)); /* as the room does */
      if (bind(fd, &sa.sa, sl) != 0) e = errno;
      close(fd);
    }
    if (e) {
      snprintf(err, errlen, "rtc_addresses: cannot open a UDP socket on '%s': %s%s",
               addrs[i].text, strerror(e),
               e == EADDRNOTAVAIL ? " (no interface of this host has that address)"
               : e == EAFNOSUPPORT ? " (this host has no IPv6)"
                                   : "");
      return -1;
    }
  }
  return 0;
}

int sfu_config_finish(sfu_config_t *c, char *err, size_t errlen) {
  if (sfu_log_parse_level(c->log_level) < 0) {
    snprintf(err, errlen, "log_level: '%s' is not debug, info, warn or error",
             c->log_level);
    return -1;
  }
  if (c->heartbeat_timeout_ms <= c->heartbeat_ms) {
    snprintf(err, errlen, "heartbeat_timeout_ms must be greater than heartbeat_ms");
    return -1;
  }
  if ((c->rtc_port_min == 0) != (c->rtc_port_max == 0) || c->rtc_port_min > c->rtc_port_max) {
    snprintf(err, errlen, "rtc_port_min/rtc_port_max: give both, min <= max");
    return -1;
  }
  if (c->listen_host[0] == '\0') {
    snprintf(err, errlen, "listen_host is empty");
    return -1;
  }
  if (check_rtc(c, err, errlen) != 0) return -1;
  if (!c->tls_cert_file[0] != !c->tls_key_file[0]) {
    snprintf(err, errlen, "tls_cert_file and tls_key_file go together: give both or neither");
    return -1;
  }
  if (c->webhook_url[0] && strncmp(c->webhook_url, "http://", 7) != 0 &&
      strncmp(c->webhook_url, "https://", 8) != 0) {
    snprintf(err, errlen, "webhook_url: '%s' is not an http:// or https:// URL", c->webhook_url);
    return -1;
  }
  if ((c->webhook_tls_ca_file[0] || c->webhook_tls_pin[0]) &&
      strncmp(c->webhook_url, "https://", 8) != 0) {
    snprintf(err, errlen, "webhook_tls_ca_file and webhook_tls_pin need an https:// webhook_url");
    return -1;
  }
  if (c->webhook_url[0] && strlen(c->webhook_secret) < 16) {
    snprintf(err, errlen, "webhook_secret of at least 16 bytes is required with webhook_url");
    return -1;
  }
  if (c->token_secret[0] && strlen(c->token_secret) < 32) {
    snprintf(err, errlen, "token_secret must be at least 32 bytes (HS256, RFC 7518)");
    return -1;
  }
  if (c->api_key[0] && strlen(c->api_key) < SFU_CONFIG_MIN_API_KEY) {
    snprintf(err, errlen, "api_key must be at least %d characters (or unset: one is generated)",
             SFU_CONFIG_MIN_API_KEY);
    return -1;
  }
  if (c->etcd_url[0] && strncmp(c->etcd_url, "http://", 7) != 0 &&
      strncmp(c->etcd_url, "https://", 8) != 0) {
    snprintf(err, errlen, "etcd_url: '%s' is not an http:// or https:// URL", c->etcd_url);
    return -1;
  }
  if (c->etcd_url[0] && !c->node_id[0]) {
    snprintf(err, errlen, "node_id is required with etcd_url: it names this node in the fleet");
    return -1;
  }
  if (c->etcd_prefix[0] != '/' || c->etcd_prefix[strlen(c->etcd_prefix) - 1] == '/') {
    snprintf(err, errlen, "etcd_prefix: '%s' must start with / and not end with one",
             c->etcd_prefix);
    return -1;
  }
  if (!sfu_token_valid_id(c->region) || (c->etcd_url[0] && !sfu_token_valid_id(c->node_id))) {
    snprintf(err, errlen, "region and node_id must be 1-63 characters of A-Z a-z 0-9 _ . @ : -");
    return -1;
  }
  if (sfu_turn_check(c->turn_urls, c->turn_secret, err, errlen) != 0) return -1;
  if (c->api_key[0] == '\0') {
    sfu_random_hex(c->api_key, "dev-", 16);
    c->api_key_generated = 1;
  }
  if (c->token_secret[0] == '\0') {
    sfu_random_hex(c->token_secret, "", 32);
    c->token_secret_generated = 1;
  }
  return 0;
}

void sfu_config_usage(char *buf, size_t len) {
  size_t n = (size_t)snprintf(buf, len,
      "Usage: sfud [--config FILE] [--<setting> VALUE]...\n\n"
      "Each setting may also come from a file line 'setting = value' or from\n"
      "the environment as SFU_<SETTING>. Flags override the environment,\n"
      "which overrides the file.\n\n"
      "  --help, -h      this text\n"
      "  --version, -V   version and the SRTP library in use\n"
      "  --config FILE   read settings from FILE\n"
      "  --check-config  read the settings as for a start, check them and the files\n"
      "                  they name, print a summary or the errors; exit 0 or 1\n"
      "  --print-config  write the settings read as a commented configuration file\n");
  for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]) && n < len; i++) {
    char flag[64];
    size_t k = 0;
    for (const char *p = opts[i].key; *p && k + 1 < sizeof(flag); p++)
      flag[k++] = *p == '_' ? '-' : *p;
    flag[k] = '\0';
    n += (size_t)snprintf(buf + n, len - n, "  --%-22s %s\n", flag, opts[i].help);
  }
}

/* Writes `text` as comment lines of at most ~76 columns. */
static void write_wrapped(FILE *f, const char *text) {
  const char *p = text;
  while (*p) {
    size_t n = strlen(p), cut = n;
    if (n > 74) {
      cut = 74;
      while (cut > 0 && p[cut] != ' ') cut--;
      if (cut == 0) cut = strcspn(p, " ");
    }
    fprintf(f, "# %.*s\n", (int)cut, p);
    p += cut;
    while (*p == ' ') p++;
  }
}

int sfu_config_write(const sfu_config_t *c, FILE *f) {
  sfu_config_t d;
  sfu_config_defaults(&d);
  fprintf(f,
          "# sfud configuration: one 'key = value' per line, '#' starts a comment.\n"
          "# A commented-out setting shows its embedded default. The environment\n"
          "# (SFU_<KEY>) overrides this file and flags (--key value) override both.\n"
          "# 'sfud --config FILE --check-config' checks a file before a start.\n");
  for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
    const opt_t *o = &opts[i];
    if (strcmp(o->key, "adopt_state") == 0) continue; /* sfud's own, at an upgrade */
    const char *base = (const char *)c + o->off, *dbase = (const char *)&d + o->off;
    fputc('\n', f);
    write_wrapped(f, o->help);
    if (o->type == T_INT) {
      int v = *(const int *)base;
      fprintf(f, "%s%s = %d\n", v == *(const int *)dbase ? "# " : "", o->key, v);
      continue;
    }
    int same = strcmp(base, dbase) == 0;
    size_t n = strlen(base);
    /* quoted when the loader's trimming or quote stripping would change it */
    int quote = n > 0 && (isspace((unsigned char)base[0]) || isspace((unsigned char)base[n - 1]) ||
                          (base[0] == '"' && base[n - 1] == '"'));
    if (n == 0)
      fprintf(f, "%s%s =\n", same ? "# " : "", o->key);
    else
      fprintf(f, "%s%s = %s%s%s\n", same ? "# " : "", o->key, quote ? "\"" : "", base,
              quote ? "\"" : "");
  }
  return ferror(f) ? -1 : 0;
}
