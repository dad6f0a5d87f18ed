/*
 * config.h -- sfud settings: embedded defaults, then an optional file, then
 * environment variables, then command-line flags (each layer overrides the
 * previous). Every setting has one name used in all three places:
 *
 *   file:  listen_port = 7880        (key = value, '#' comments)
 *   env:   SFU_LISTEN_PORT=7880
 *   flag:  --listen-port 7880  or  --listen-port=7880
 *
 * The table in config.c is the single source of truth: `sfud --help` and
 * `sfud --print-config` (the packaged /etc/sfu/sfud.conf) are generated
 * from the same descriptions.
 */
#ifndef SFU_CONFIG_H
#define SFU_CONFIG_H

#include <stddef.h>
#include <stdio.h>

typedef struct sfu_config_s {
  char listen_host[64];          /* address the HTTP/WS server binds */
  int listen_port;               /* its TCP port */
  char public_url[256];          /* base URL clients reach sfud at ("" = derived) */
  char tls_cert_file[512];       /* PEM chain: the listener speaks HTTPS/WSS ("" = plain) */
  char tls_key_file[512];        /* its PEM private key */
  char node_id[64];              /* this node's name in record ids ("" = host name) */
  char webhook_url[256];         /* control plane's records endpoint ("" = none) */
  char webhook_secret[128];      /* HMAC key of webhook signatures */
  char webhook_tls_ca_file[512]; /* CAs verifying an https:// webhook ("" = system store) */
  char webhook_tls_pin[64];      /* "sha256//<base64>" the receiver's key must match */
  int webhook_retry_min_ms;      /* first retry delay of a batch, doubling to 5 min */
  char api_key[128];             /* control-plane bearer key ("" = generated) */
  char token_secret[128];        /* HS256 secret for join tokens ("" = generated) */
  char room_binary[512];         /* path of sfu-room ("" = next to sfud) */
  char data_dir[512];            /* journal and state */
  char web_root[512];            /* demo page directory ("" = none) */
  char log_level[16];            /* debug, info, warn, error */
  char rtc_addresses[256];       /* host candidate IPs, IPv4 and/or IPv6, comma-separated */
  int rtc_port_min, rtc_port_max; /* UDP range for media (0/0 = any) */
  char rtc_announced_address[64]; /* public IP put in the candidates of its family (1:1 NAT) */
  char turn_urls[1024];          /* TURN servers handed to clients, comma-separated ("" = none) */
  char turn_secret[128];         /* the TURN server's static-auth-secret: signs their credentials */
  int turn_ttl_s;                /* a join's TURN credentials stay valid this long */
  char etcd_url[256];            /* etcd's JSON gateway: join the fleet ("" = run alone) */
  char etcd_prefix[128];         /* the fleet's keys live under this */
  int etcd_lease_ttl_s;          /* this node's keys outlive its silence this long */
  char region[64];               /* where placement may put rooms of this region */
  char fleet_tls_ca_file[512];   /* CAs verifying https:// etcd and other nodes ("" = system) */
  int max_rooms;                 /* rooms per node */
  int max_participants;          /* participants per room, upper bound */
  int max_relays;                /* relay processes per room */
  int relay_threshold;           /* participants per process before spreading, 0 = never */
  int empty_timeout_s;           /* default for rooms that do not say */
  int heartbeat_ms;              /* supervisor ping interval */
  int heartbeat_timeout_ms;      /* silence after which a room is killed */
  int crashed_retention_s;       /* how long a crashed room stays listed */
  int max_body_bytes;            /* largest accepted API request body */
  int shutdown_grace_ms;         /* wait for rooms on shutdown before SIGKILL */
  int dev;                       /* 1: development routes (POST /dev/join) */
  int zygote;                    /* 1: fork rooms from a template process */
  int usage_interval_s;          /* rooms checkpoint usage this often */
  int media_timeout_s;           /* rooms remove a participant whose media is silent this long */
  int dynacast_stop_ms;          /* rooms stop a layer nobody takes after this long */
  int resume_grace_s;            /* a dropped client's session waits this long to resume */
  int room_orphan_grace_s;       /* rooms outlive a dead sfud this long (supervisor.md) */
  int max_connections;           /* open HTTP/WS connections, all clients (lowered to fit
                                    RLIMIT_NOFILE less the rooms' descriptors) */
  int max_connections_per_ip;    /* open HTTP/WS connections from one address */
  int http_request_timeout_ms;   /* a connection must send a whole request within this */
  char adopt_state[512];         /* upgrade: the state the previous sfud handed over */
  char config_file[512];         /* the --config file read ("" = none) */
  int check_config;              /* --check-config: check, print a summary, exit */
  int print_config;              /* --print-config: write the settings as a file, exit */
  int api_key_generated;         /* set by sfu_config_finish() */
  int token_secret_generated;    /* set by sfu_config_finish() */
} sfu_config_t;

/* Shortest api_key accepted (the generated one has 36 characters). */
#define SFU_CONFIG_MIN_API_KEY 8
/* Most rtc_addresses a room binds (sfu/net/icelite.c: one socket each). */
#define SFU_CONFIG_MAX_RTC_ADDRESSES 4

void sfu_config_defaults(sfu_config_t *c);
/* Sets one setting by its name ("listen_port"); returns 0 or -1 with err. */
int sfu_config_set(sfu_config_t *c, const char *key, const char *value,
                   char *err, size_t errlen);
/* Reads "key = value" lines. Returns 0 or -1 with err naming file:line. */
int sfu_config_load_file(sfu_config_t *c, const char *path, char *err,
                         size_t errlen);
/* Applies every SFU_<KEY> variable present in the environment. */
int sfu_config_load_env(sfu_config_t *c, char *err, size_t errlen);
/*
 * Parses argv. Returns 0 to run, 1 when --help/--version was handled (the
 * text is in *info: "help" or "version"), -1 on error. --config FILE is
 * read first wherever it appears, so flags always override it, and its
 * path is kept in c->config_file. --check-config and --print-config set
 * c->check_config and c->print_config; the settings are read as for a run.
 */
int sfu_config_parse_args(sfu_config_t *c, int argc, char **argv,
                          const char **info, char *err, size_t errlen);
/* Fills generated secrets and derived values, checks ranges and the
 * secrets' lengths (api_key >= SFU_CONFIG_MIN_API_KEY, token_secret >= 32,
 * webhook_secret >= 16 with webhook_url), the TURN settings
 * (sfu_turn_check(): turn_urls' form, turn_secret >= 16 with them), and
 * the media addresses: rtc_addresses 1 to SFU_CONFIG_MAX_RTC_ADDRESSES
 * IPv4 or IPv6 literals (no brackets, no scope), none unspecified,
 * multicast, IPv4-mapped, link-local or given twice; rtc_announced_address
 * a literal of a family rtc_addresses has. 0 or -1 with err. */
int sfu_config_finish(sfu_config_t *c, char *err, size_t errlen);
/* Binds a UDP socket (port 0, IPV6_V6ONLY as the rooms do) on each of
 * c->rtc_addresses and closes it: does every address belong to this host
 * (and IPv6 exist here)? sfud calls it once at startup, after
 * sfu_config_finish(). 0, or -1 with err naming the address and why. */
int sfu_config_check_rtc_bind(const sfu_config_t *c, char *err, size_t errlen);
/* Writes the option reference (for --help) to a buffer. */
void sfu_config_usage(char *buf, size_t len);
/*
 * Writes the settings as a configuration file that sfu_config_load_file()
 * reads back to the same values: every setting of the table (adopt_state
 * aside) under its help, wrapped as comments; a setting whose value is the
 * embedded default is commented out ("# data_dir = ./sfu-data"), the others
 * are written as they are, secrets included. `sfud --print-config` and the
 * packaged /etc/sfu/sfud.conf (scripts/package.sh) come from it. Returns 0,
 * or -1 when `f` fails.
 */
int sfu_config_write(const sfu_config_t *c, FILE *f);

#endif
