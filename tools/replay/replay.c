/*
 * replay.c -- sfu-replay: real captures through real calls (docs/replay.md).
 *
 * One process, one thread, one libuv loop: every simulated participant is
 * an sfu_peer_t (tools/client/peer.h) -- WebSocket signaling, full ICE,
 * DTLS, SRTP -- so what a replay shows holds for real clients. Publishers
 * send their source's packets with its original pacing from a 1 ms timer;
 * every receiver checks each packet against the publisher's send log
 * (verify.h). The run ends after its duration plus a drain, and prints a
 * JSON summary; the exit status says whether the expectations held.
 *
 * A run is a scenario (a JSON file, or one built from the command line):
 * rooms x participants, each publishing up to one audio and one video
 * source (a capture stream or a tone), joining and leaving at given times,
 * muting over intervals. Rooms are created through the control-plane API
 * and tokens minted there, unless a token is given.
 *
 * A room that moves to another node mid-run is followed by every client
 * (tools/client/peer.h). What it cost is measured per receiver at each
 * switch of the played leg (`migrated`): within MOVE_WINDOW_US either side
 * of it, the longest pause between played packets of any one audio
 * publisher, and the packets sent that were never played (audio: frames
 * lost; video apart). The verifier plays a packet that both legs delivered
 * once (verify.h). For each video publisher: when the new leg delivered
 * its first keyframe, and whether a decoder of the new leg could show the
 * first picture played from it or had to wait for a keyframe (and how
 * long: sfu_vresume_t). Measured once the window is over (and the late
 * packets in), or at the summary.
 *
 * A video publisher asked for a keyframe (a PLI or FIR from a room: a new
 * subscriber there, as at a move's new node) answers as an encoder does:
 * at its next picture, with a keyframe -- the capture's next one, skipped
 * ahead to, its numbering and pacing carried on from where it was. A
 * request that comes within KEY_SERVED_US of a keyframe sent crossed it
 * (the room asked before it arrived there): that keyframe serves it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <uv.h>

#include "codecs/opus.h"
#include "codecs/video.h"
#include "sfu/base/bytes.h"
#include "tools/client/gloop.h"
#include "sfu/base/log.h"
#include "sfu/media/rtp.h"
#include "sfu/base/sfu.h"
#include "sfu/base/vec.h"
#include "sfu/media/srtp.h"
#include "tools/client/http.h"
#include "tools/client/peer.h"
#include "sfu/media/capture.h"
#include "tools/replay/source.h"
#include "tools/replay/verify.h"

#define MAX_MUTES 8
#define READY_GRACE_MS 300   /* after everyone is connected: answers land */
#define READY_TIMEOUT_MS 20000
#define DRAIN_MS 1000        /* after the last send: packets in flight land */
#define EXIT_OK 0
#define EXIT_FAILED 1        /* an expectation did not hold */
#define EXIT_USAGE 2         /* bad arguments, capture, or server */
#define MAX_MOVES 8          /* moves measured per participant */
#define MOVE_WINDOW_US 2000000ULL /* either side of a switch */
#define MOVE_LATE_US 500000ULL    /* packets of the window still arriving after it */
#define KEY_SERVED_US 200000ULL   /* a keyframe sent serves the requests this soon after */

typedef struct rp_room_s rp_room_t;
typedef struct rp_part_s rp_part_t;

typedef struct rp_pub_s {   /* a track a participant publishes */
  rp_part_t *part;
  sfu_source_t *src;
  char kind[8];
  uint32_t ssrc;
  uint64_t next;            /* next packet index */
  uint64_t muted_skip;      /* packets not sent while muted */
  uint64_t send_errors;
  uint64_t start_us;        /* first send opportunity: the source's time 0 */
  uint64_t last_send_us;    /* the last packet sent (logged) */
  sfu_sentlog_t log;
  sfu_hist_t lat;           /* added latency at all its receivers */
  SFU_VEC(uint64_t) sec_n;  /* sec_n[k]: packets it had sent when second k
                               of sending began (the summary's "intervals") */
  int done;                 /* source exhausted */
  int key_asked;            /* a keyframe is due at the next picture */
  uint64_t key_sent_us;     /* the last keyframe sent (its first packet); 0: none */
  uint64_t key_requests;    /* keyframe requests (PLI, FIR) received */
  uint64_t key_skips;       /* answered by skipping ahead to a keyframe ... */
  uint64_t key_skipped;     /* ... over this many packets, never sent */
  uint16_t seq_shift;       /* added to the source's sequence numbers ... */
  uint32_t ts_shift;        /* ... and timestamps: carried on over the skips */
} rp_pub_t;

#define MAX_INTERVALS 86400 /* seconds of sending the summary splits: a day */

typedef struct rp_sub_s {   /* a receiver's view of one pub */
  rp_part_t *part;
  rp_pub_t *pub;            /* NULL: nobody of ours (counted unknown) */
  sfu_rxcheck_t chk;
  sfu_opus_meter_t *meter;  /* --decode */
  sfu_playlog_t *plays;     /* audio: when packets were played (a move's gap) */
  sfu_video_parse_fn parse; /* video: its codec's parser (keyframes) */
  sfu_vresume_t vr;         /* video: the current move's new leg */
  double level_sum;
  uint64_t level_n;
  int self;                 /* our own track came back: must never happen */
} rp_sub_t;

typedef struct rp_move_s { /* a switch of a receiver's played leg */
  uint64_t at_us;           /* `migrated` */
  int measured;
  uint64_t gap_us;          /* the longest pause of any audio publisher ... */
  int64_t gap_end_us;       /* ... and when it ended, from the switch */
  uint64_t frames_lost;     /* audio packets sent in the window, never played */
  uint64_t video_lost;      /* video packets the same */
  uint64_t dup_before;      /* leg duplicates at the switch ... */
  uint64_t duplicates;      /* ... and in the window */
  int video;                /* video subscriptions judged (sfu_vresume_t) */
  int video_done;           /* they were (at the window's end, or the next move) */
  int video_nokey;          /* of them: no keyframe from the new leg in the window */
  int64_t video_key_us;     /* the latest first keyframe of the new leg, from the switch */
  int video_noresume;       /* no picture played decodable in the window */
  int64_t video_resume_us;  /* the latest first decodable picture played, from the switch */
  int video_keyed;          /* decodable from the first picture played */
} rp_move_t;

struct rp_part_s {
  rp_room_t *room;
  int index;                /* in the run */
  char identity[64];
  sfu_peer_t *peer;
  char sid[72];
  rp_pub_t pubs[SFU_PEER_MAX_PUBS];
  int npubs;
  double join_s, leave_s;   /* leave_s < 0: stays */
  double migrate_delay_s;   /* waits this long before following a move */
  int audience;             /* its token may not publish (a relay serves it) */
  double mute[MAX_MUTES][2];
  int nmutes, muted;
  int joined, connected, left, closed;
  int ice_restart_asked;    /* --restart-ice-at done */
  int close_code;
  char close_reason[128];
  char *token;              /* minted before the loop runs (see main) */
  SFU_VEC(rp_sub_t *) subs;
  uint64_t unknown_rx;      /* RTP for no subscription of ours */
  uint64_t self_rx;
  uint64_t connect_us;      /* join start -> media up */
  uint64_t started_us;
  rp_move_t moves[MAX_MOVES];
  int nmoves;
};

struct rp_room_s {
  int index;
  char id[64];
  char ws_url[256];
  rp_part_t **parts;
  int nparts;
  int ready;                /* publishing may start */
  int existing;             /* joined, not created: not deleted at the end */
  uint64_t ready_at_us;
};

typedef struct rp_srcspec_s {
  char capture[512];
  double tone;
  char wav[512];
  sfu_src_sel_t sel;
  char codec[16];
  sfu_source_t *loaded;     /* shared by every participant using it */
} rp_srcspec_t;

typedef struct rp_run_s {
  uv_loop_t *loop;
  sfu_gloop_t gloop;
  sfu_dtls_cert_t *cert;
  uv_timer_t tick;
  uv_signal_t sigint;
  /* options */
  char server[256], api_key[256], room_name[64], token[2048], ws_url[256];
  char address[256];        /* --address: local IPs of the host candidates ("" = 127.0.0.1) */
  int relay_only;           /* --relay-only: media through the welcome's TURN servers only */
  int ice_tcp;              /* --ice-tcp(-only): SFU_ICE_UDP_TCP, SFU_ICE_TCP_ONLY; 0 UDP only */
  double duration_s, speed;
  double restart_ice_at;    /* --restart-ice-at: seconds from the start of sending; < 0: never */
  double migrate_delay_s;   /* --migrate-delay: clients slow to follow a move */
  int loops;
  sfu_timing_t timing;
  int decode, progress, expect_intact;
  double max_loss;
  const char *json_out, *record_path;
  /* state */
  rp_room_t *rooms;
  int nrooms;
  rp_part_t *parts;
  int nparts;
  SFU_VEC(rp_srcspec_t) specs;
  uint64_t t0_us;           /* run start */
  uint64_t send_start_us;   /* 0 until every room is ready */
  uint64_t end_sends_us;    /* when sending stops */
  int phase;                /* 0 connecting, 1 sending, 2 draining, 3 leaving */
  uint64_t phase_at_us;
  sfu_cap_writer_t *rec;
  uint64_t rec_dropped;
  struct { int pt; char name[16]; } codecs[8]; /* --codec PT=NAME */
  int ncodecs;
  uint64_t last_progress_us, last_sent, last_recv;
  /* packets received, by their second of sending (the summary's
   * "intervals"; the first MAX_INTERVALS seconds) */
  sfu_rxsec_t arrived;
  int exit_code;
  char fail[1024];          /* first failed expectation */
} rp_run_t;

static rp_run_t R;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("sfu-replay: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(EXIT_USAGE);
}

static void failf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void failf(const char *fmt, ...) {
  va_list ap;
  R.exit_code = EXIT_FAILED;
  if (R.fail[0]) return;
  va_start(ap, fmt);
  vsnprintf(R.fail, sizeof(R.fail), fmt, ap);
  va_end(ap);
}

static uint64_t now_us(void) { return sfu_now_us(); }
static double run_s(void) { return (double)(now_us() - R.t0_us) / 1e6; }

/* --- control plane ------------------------------------------------------------ */

/* One control-plane request; `want` is the expected status. Anything else
 * ends the run, unless it is `also` (0: none), returned as NULL. */
static json_t *api2(const char *method, const char *path, json_t *body, int want, int also) {
  char url[512], *resp = NULL, *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
  snprintf(url, sizeof(url), "%s%s", R.server, path);
  int st = sfu_http_request_sync(method, url, R.api_key, text, &resp, 10000);
  free(text);
  json_decref(body);
  if (st < 0) die("%s %s: %s", method, url, sfu_strerror(st));
  if (st == also && also) {
    free(resp);
    return NULL;
  }
  if (st != want) die("%s %s: HTTP %d %s", method, url, st, resp ? resp : "");
  json_t *j = resp ? json_loads(resp, 0, NULL) : NULL;
  free(resp);
  if (!j) die("%s %s: the answer is not JSON", method, url);
  return j;
}

static json_t *api(const char *method, const char *path, json_t *body, int want) {
  return api2(method, path, body, want, 0);
}

static void create_room(rp_room_t *rm) {
  char name[96];
  if (R.token[0]) { /* joining with a given token: the room is the token's */
    snprintf(rm->id, sizeof(rm->id), "%s", R.room_name);
    snprintf(rm->ws_url, sizeof(rm->ws_url), "%s", R.ws_url);
    return;
  }
  if (R.nrooms > 1)
    snprintf(name, sizeof(name), "%s-%d", R.room_name, rm->index);
  else
    snprintf(name, sizeof(name), "%s", R.room_name);
  json_t *j = api2("POST", "/v1/rooms",
                   json_pack("{s:s, s:i}", "name", name, "max_participants", rm->nparts), 201, 409);
  if (!j) { /* a live room has that name: join it (and leave it running) */
    char path[160];
    snprintf(path, sizeof(path), "/v1/rooms/%s", name);
    j = api("GET", path, NULL, 200);
    rm->existing = 1;
  }
  snprintf(rm->id, sizeof(rm->id), "%s", json_string_value(json_object_get(j, "room_id")));
  snprintf(rm->ws_url, sizeof(rm->ws_url), "%s", json_string_value(json_object_get(j, "ws_url")));
  json_decref(j);
}

static void delete_room(rp_room_t *rm) {
  char path[128], url[512];
  if (R.token[0] || rm->existing) return;
  snprintf(path, sizeof(path), "/v1/rooms/%s", rm->id);
  snprintf(url, sizeof(url), "%s%s", R.server, path);
  sfu_http_request_sync("DELETE", url, R.api_key, NULL, NULL, 5000);
}

/* A join token; an audience member's may subscribe only, so that sfud
 * places it on the room's relays (docs/internals/relay.md). */
static char *mint_token(rp_room_t *rm, const char *identity, int audience) {
  char path[128];
  if (R.token[0]) return strdup(R.token);
  snprintf(path, sizeof(path), "/v1/rooms/%s/tokens", rm->id);
  json_t *body = audience ? json_pack("{s:s, s:{s:b, s:b}}", "identity", identity, "grants",
                                      "publish", 0, "subscribe", 1)
                          : json_pack("{s:s}", "identity", identity);
  json_t *j = api("POST", path, body, 201);
  char *t = strdup(json_string_value(json_object_get(j, "token")));
  json_decref(j);
  return t;
}

/* --- receiving ------------------------------------------------------------------ */

static rp_pub_t *find_pub(rp_room_t *rm, const char *sid, const char *kind) {
  for (int i = 0; i < rm->nparts; i++) {
    rp_part_t *p = rm->parts[i];
    if (strcmp(p->sid, sid) != 0) continue;
    for (int k = 0; k < p->npubs; k++)
      if (strcmp(p->pubs[k].kind, kind) == 0) return &p->pubs[k];
  }
  return NULL;
}

static void on_subscription(void *arg, sfu_peer_sub_t *s) {
  rp_part_t *p = arg;
  if (!s->active && s->user) /* the publisher left: its track ended */
    sfu_rxcheck_close(&((rp_sub_t *)s->user)->chk);
  if (!s->active || s->user) return;
  if (sfu_vec_reserve(&p->subs, p->subs.n + 1) != 0) return;
  rp_sub_t *rs = calloc(1, sizeof(*rs));
  if (!rs) return;
  rs->part = p;
  rs->self = strcmp(s->owner_sid, p->sid) == 0;
  rs->pub = find_pub(p->room, s->owner_sid, s->kind);
  if (rs->pub) {
    sfu_rxcheck_init(&rs->chk, &rs->pub->log, &rs->pub->lat, s->clock);
    sfu_rxcheck_count_by_second(&rs->chk, &R.arrived);
  }
  if (R.decode && strcasecmp(s->codec, "opus") == 0) sfu_opus_meter_create(&rs->meter);
  if (rs->pub && strcmp(s->kind, "audio") == 0) rs->plays = calloc(1, sizeof(*rs->plays));
  if (rs->pub && strcmp(s->kind, "video") == 0) rs->parse = sfu_video_parser(s->codec);
  p->subs.items[p->subs.n++] = rs; /* reserved above */
  s->user = rs;
}

static void record(rp_part_t *p, rp_sub_t *rs, const uint8_t *buf, size_t len) {
  static const uint8_t src_ip[4] = {10, 0, 0, 1}, dst_ip[4] = {10, 0, 0, 2};
  if (sfu_cap_writer_bytes(R.rec) > (uint64_t)1 << 30) { /* 1 GiB bound */
    R.rec_dropped++;
    return;
  }
  uint16_t sport = (uint16_t)(10000 + (rs->pub ? rs->pub->part->index * 2 +
                                                     (int)(rs->pub - rs->pub->part->pubs)
                                               : 0) % 20000);
  uint16_t dport = (uint16_t)(30000 + p->index % 30000);
  uint64_t wall = (uint64_t)sfu_wall_ms() * 1000 + now_us() % 1000;
  sfu_cap_writer_put(R.rec, wall, src_ip, sport, dst_ip, dport, buf, len);
}

/* A video packet of a move's new leg (see sfu_vresume_t). */
static void new_leg_video(rp_sub_t *rs, const sfu_rtp_t *r, int played, uint64_t t) {
  sfu_video_info_t vi;
  int ok = rs->parse(r->data + r->payload_off, r->payload_len, &vi) == 0;
  int begins = ok && vi.begins_frame && vi.sid <= 0;
  sfu_vresume_packet(&rs->vr, r->seq, begins && vi.keyframe, begins, played, t);
}

/* RTP of a move's new leg before it plays: its video's keyframes count. */
static void on_standby_rtp(void *arg, sfu_peer_sub_t *s, const uint8_t *buf, size_t len) {
  rp_sub_t *rs = s->user;
  sfu_rtp_t r;
  (void)arg;
  if (!rs || !rs->parse || rs->vr.switch_us || sfu_rtp_parse(buf, len, &r) != 0) return;
  new_leg_video(rs, &r, 0, now_us());
}

/* A room asks one of our video tracks for a keyframe: served at its next
 * picture (send_due()), unless one just went. Before the first packet it
 * is moot: the capture's first picture goes first whatever it is (every
 * capture of tests/data/pcaps starts with a keyframe). */
static void on_keyframe_request(void *arg, uint32_t ssrc) {
  rp_part_t *p = arg;
  for (int k = 0; k < p->npubs; k++) {
    rp_pub_t *pub = &p->pubs[k];
    if (pub->ssrc != ssrc || strcmp(pub->kind, "video") != 0) continue;
    pub->key_requests++;
    if (pub->log.sent && now_us() - pub->key_sent_us >= KEY_SERVED_US) pub->key_asked = 1;
  }
}

static void on_rtp(void *arg, sfu_peer_sub_t *s, uint8_t *buf, size_t len) {
  rp_part_t *p = arg;
  rp_sub_t *rs = s->user;
  sfu_rtp_t r;
  uint64_t t = now_us();
  if (!rs || sfu_rtp_parse(buf, len, &r) != 0) {
    p->unknown_rx++;
    return;
  }
  if (rs->self) p->self_rx++;
  if (rs->pub) {
    uint64_t before = rs->chk.matched;
    sfu_rxcheck_packet(&rs->chk, &r, t);
    if (rs->plays && rs->chk.matched != before) sfu_playlog_put(rs->plays, t);
    if (rs->parse && rs->vr.switch_us && !rs->vr.resume_us) /* the new leg, played */
      new_leg_video(rs, &r, rs->chk.matched != before, t);
  } else {
    p->unknown_rx++;
  }
  if (rs->meter) {
    int level = sfu_opus_meter_feed(rs->meter, r.data + r.payload_off, r.payload_len);
    if (level >= 0) rs->level_sum += level, rs->level_n++;
  }
  if (R.rec) record(p, rs, buf, len);
}

/* --- participants ---------------------------------------------------------------- */

static void on_joined(void *arg, const char *sid) {
  rp_part_t *p = arg;
  snprintf(p->sid, sizeof(p->sid), "%s", sid);
  p->joined = 1;
}

static void on_connected(void *arg) {
  rp_part_t *p = arg;
  p->connected = 1;
  p->connect_us = now_us() - p->started_us;
}

static void on_message(void *arg, json_t *m) {
  rp_part_t *p = arg;
  const char *type = json_string_value(json_object_get(m, "type"));
  if (type && strcmp(type, "error") == 0) {
    char *s = json_dumps(m, JSON_COMPACT);
    fprintf(stderr, "sfu-replay: %s got %s\n", p->identity, s ? s : "error");
    free(s);
  }
}

static void on_closed(void *arg, int code, const char *reason) {
  rp_part_t *p = arg;
  p->closed = 1;
  for (int i = 0; i < p->subs.n; i++) sfu_rxcheck_close(&p->subs.items[i]->chk);
  p->close_code = code;
  snprintf(p->close_reason, sizeof(p->close_reason), "%s", reason ? reason : "");
  if (!p->left)
    fprintf(stderr, "sfu-replay: %s: session ended at %.1f s: %d %s\n", p->identity, run_s(),
            code, p->close_reason);
}

static uint64_t leg_duplicates(const rp_part_t *p) {
  uint64_t n = 0;
  for (int i = 0; i < p->subs.n; i++) n += p->subs.items[i]->chk.leg_duplicated;
  return n;
}

/* The video of a move (its switch at m->at_us) up to to_us, over the
 * subscriptions to a video publisher: the latest of each figure. */
static void judge_video(rp_part_t *p, rp_move_t *m, uint64_t to_us) {
  if (m->video_done) return;
  m->video_done = 1;
  m->video_keyed = 1;
  for (int i = 0; i < p->subs.n; i++) {
    const rp_sub_t *s = p->subs.items[i];
    const sfu_vresume_t *v = &s->vr;
    if (!s->parse || s->self || v->switch_us != m->at_us) continue;
    int64_t key = (int64_t)v->key_us - (int64_t)m->at_us;
    int64_t resume = (int64_t)v->resume_us - (int64_t)m->at_us;
    if (!m->video++ || key > m->video_key_us) m->video_key_us = key;
    if (m->video == 1 || resume > m->video_resume_us) m->video_resume_us = resume;
    if (!v->key_us || v->key_us > to_us) m->video_nokey++;
    if (!v->resume_us || v->resume_us > to_us) m->video_noresume++;
    m->video_keyed &= v->keyed && v->resume_us && v->resume_us <= to_us;
  }
}

/* The room moved: SFU_PEER_MIGRATED is the switch of the played leg. */
static void on_migration(void *arg, int event, const char *detail) {
  rp_part_t *p = arg;
  uint64_t t = now_us();
  if (event == SFU_PEER_MIGRATE_ABORTED)
    fprintf(stderr, "sfu-replay: %s: move aborted at %.1f s: %s\n", p->identity, run_s(),
            detail ? detail : "");
  if (event == SFU_PEER_MIGRATING) { /* the last move's video is judged before it is reset */
    if (p->nmoves) judge_video(p, &p->moves[p->nmoves - 1], t);
    for (int i = 0; i < p->subs.n; i++) sfu_vresume_start(&p->subs.items[i]->vr);
  }
  if (event != SFU_PEER_MIGRATED) return;
  for (int i = 0; i < p->subs.n; i++) {
    sfu_rxcheck_switch(&p->subs.items[i]->chk);
    sfu_vresume_switch(&p->subs.items[i]->vr, t);
  }
  if (p->nmoves == MAX_MOVES) return;
  rp_move_t *m = &p->moves[p->nmoves++];
  memset(m, 0, sizeof(*m));
  m->at_us = t;
  m->dup_before = leg_duplicates(p);
}

/* What a move cost this receiver, over [switch - window, to_us]. */
static void measure_move(rp_part_t *p, rp_move_t *m, uint64_t to_us) {
  uint64_t from = m->at_us > MOVE_WINDOW_US ? m->at_us - MOVE_WINDOW_US : 0;
  for (int i = 0; i < p->subs.n; i++) {
    rp_sub_t *s = p->subs.items[i];
    if (!s->pub || s->self) continue;
    uint64_t missing = sfu_rxcheck_missing(&s->chk, from, to_us);
    if (strcmp(s->pub->kind, "audio") != 0) {
      m->video_lost += missing;
      continue;
    }
    m->frames_lost += missing;
    uint64_t end = 0, gap = s->plays ? sfu_playlog_gap(s->plays, from, to_us,
                                                       s->pub->last_send_us >= to_us, &end)
                                     : 0;
    if (gap > m->gap_us) {
      m->gap_us = gap;
      m->gap_end_us = (int64_t)end - (int64_t)m->at_us;
    }
  }
  m->duplicates = leg_duplicates(p) - m->dup_before;
  judge_video(p, m, to_us);
  m->measured = 1;
}

/* Moves whose window is over (late packets in) are measured; `end`: all,
 * the window cut at now. */
static void measure_moves(uint64_t t, int end) {
  for (int i = 0; i < R.nparts; i++) {
    rp_part_t *p = &R.parts[i];
    for (int k = 0; k < p->nmoves; k++) {
      rp_move_t *m = &p->moves[k];
      if (m->measured) continue;
      if (t >= m->at_us + MOVE_WINDOW_US + MOVE_LATE_US)
        measure_move(p, m, m->at_us + MOVE_WINDOW_US);
      else if (end)
        measure_move(p, m, t < m->at_us + MOVE_WINDOW_US ? t : m->at_us + MOVE_WINDOW_US);
    }
  }
}

static void start_part(rp_part_t *p) {
  sfu_peer_opts_t o;
  memset(&o, 0, sizeof(o));
  char *token = p->token ? p->token : mint_token(p->room, p->identity, p->audience);
  p->token = NULL;
  o.ws_url = p->room->ws_url;
  o.room = p->room->id;
  o.token = token;
  o.address = R.address[0] ? R.address : NULL;
  o.relay_only = R.relay_only;
  o.ice_tcp = R.ice_tcp;
  o.move_delay_ms = (unsigned)(p->migrate_delay_s * 1000);
  for (int k = 0; k < p->npubs; k++) {
    rp_pub_t *pub = &p->pubs[k];
    sfu_peer_pub_t *pp = &o.pubs[k];
    snprintf(pp->kind, sizeof(pp->kind), "%s", pub->kind);
    snprintf(pp->codec, sizeof(pp->codec), "%s", pub->src->codec);
    pp->clock = pub->src->clock;
    pp->channels = strcmp(pub->kind, "audio") == 0 ? 2 : 0;
    pp->pt = pub->src->pt;
    if (strcasecmp(pub->src->codec, "H264") == 0)
      snprintf(pp->fmtp, sizeof(pp->fmtp),
               "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f");
    pp->ssrc = pub->ssrc;
  }
  o.npubs = p->npubs;
  sfu_peer_cb_t cb = {p,      on_joined,  on_connected, on_subscription,
                      on_rtp, on_message, on_closed,    on_migration,
                      on_standby_rtp, on_keyframe_request};
  p->started_us = now_us();
  int rv = sfu_peer_create(&p->peer, R.loop, R.gloop.ctx, R.cert, &o, &cb);
  free(token);
  if (rv != 0) die("%s: cannot start: %s", p->identity, sfu_strerror(rv));
}

static int pubs_in_room_before(const rp_room_t *rm, const rp_part_t *except) {
  int n = 0;
  for (int i = 0; i < rm->nparts; i++)
    if (rm->parts[i] != except && rm->parts[i]->join_s <= 0) n += rm->parts[i]->npubs;
  return n;
}

/* A room is ready when everyone who joins at 0 s has media up and a
 * subscription to every track of the others. */
static int room_ready(rp_room_t *rm) {
  for (int i = 0; i < rm->nparts; i++) {
    rp_part_t *p = rm->parts[i];
    if (p->join_s > 0) continue;
    if (!p->connected) return 0;
    int want = pubs_in_room_before(rm, p), have = 0;
    for (int k = 0; k < p->subs.n; k++) have += p->subs.items[k]->pub != NULL;
    if (have < want) return 0;
  }
  return 1;
}

static void send_due(rp_pub_t *pub, uint64_t t) {
  uint8_t buf[1500 + SFU_SRTP_TRAILER];
  rp_part_t *p = pub->part;
  if (!pub->start_us) /* clients are not in step: a random phase of up to 20 ms */
    pub->start_us = t + (uint64_t)(sfu_random_u32() % 20000);
  if (t < pub->start_us) return;
  double elapsed = (double)(t - pub->start_us) * R.speed;
  while (!pub->done) {
    uint64_t at = 0;
    if (sfu_source_at(pub->src, pub->next, R.loops, &at) && (double)at > elapsed) return;
    int n = sfu_source_packet(pub->src, pub->next, R.loops, pub->ssrc,
                              strcmp(pub->kind, "audio") == 0 ? SFU_PEER_LEVEL_EXT : 0, buf,
                              sizeof(buf) - SFU_SRTP_TRAILER, &at);
    if (n <= 0) {
      pub->done = 1;
      return;
    }
    if (pub->key_asked && sfu_source_starts_picture(pub->src, pub->next)) {
      pub->key_asked = 0;
      uint64_t j = sfu_source_next_keyframe(pub->src, pub->next, R.loops), at_j = 0;
      if (j != pub->next && j != UINT64_MAX) { /* skip ahead to it, numbered on */
        uint16_t seq = sfu_rd16(buf + 2);
        uint32_t ts = sfu_rd32(buf + 4);
        n = sfu_source_packet(pub->src, j, R.loops, pub->ssrc, 0, buf,
                              sizeof(buf) - SFU_SRTP_TRAILER, &at_j);
        if (n <= 0) {
          pub->done = 1;
          return;
        }
        pub->seq_shift = (uint16_t)(pub->seq_shift + seq - sfu_rd16(buf + 2));
        pub->ts_shift += ts - sfu_rd32(buf + 4);
        pub->start_us -= (uint64_t)((double)(at_j - at) / R.speed); /* due now */
        elapsed += (double)(at_j - at);
        pub->key_skips++;
        pub->key_skipped += j - pub->next;
        pub->next = j;
      }
    }
    int key = pub->src->npkts && pub->src->pkts[pub->next % pub->src->npkts].key;
    pub->next++;
    if (p->muted) {
      pub->muted_skip++;
      continue;
    }
    if (pub->seq_shift || pub->ts_shift) {
      sfu_wr16(buf + 2, (uint16_t)(sfu_rd16(buf + 2) + pub->seq_shift));
      sfu_wr32(buf + 4, sfu_rd32(buf + 4) + pub->ts_shift);
    }
    sfu_rtp_t r;
    if (sfu_rtp_parse(buf, (size_t)n, &r) != 0) continue;
    pub->last_send_us = now_us();
    if (key) pub->key_sent_us = pub->last_send_us;
    while (R.send_start_us && pub->sec_n.n < MAX_INTERVALS &&
           pub->last_send_us >= R.send_start_us + (uint64_t)pub->sec_n.n * 1000000)
      if (sfu_vec_push(&pub->sec_n, pub->log.sent) != 0) break;
    sfu_sentlog_put(&pub->log, &r, pub->last_send_us);
    if (sfu_peer_send_rtp(p->peer, buf, (size_t)n, sizeof(buf)) != 0) pub->send_errors++;
  }
}

static void apply_schedule(rp_part_t *p, double t) {
  if (!p->peer && !p->left && t >= p->join_s) start_part(p);
  if (!p->peer) return;
  if (p->leave_s >= 0 && t >= p->leave_s && !p->left) {
    p->left = 1;
    for (int i = 0; i < p->subs.n; i++) sfu_rxcheck_close(&p->subs.items[i]->chk);
    sfu_peer_leave(p->peer);
    return;
  }
  if (R.phase == 1 && R.restart_ice_at >= 0 && t >= R.restart_ice_at && !p->ice_restart_asked &&
      p->connected) {
    p->ice_restart_asked = 1;
    sfu_peer_restart_ice(p->peer);
  }
  int muted = 0;
  for (int i = 0; i < p->nmutes; i++)
    if (t >= p->mute[i][0] && t < p->mute[i][1]) muted = 1;
  if (muted != p->muted && p->connected) {
    p->muted = muted;
    sfu_peer_signal(p->peer, json_pack("{s:s, s:i, s:b}", "type", "mute", "id", 1000 + p->index,
                                       "muted", muted));
  }
}

/* --- progress and summary ----------------------------------------------------- */

static void totals(uint64_t *sent, uint64_t *recv, uint64_t *lost, int *connected) {
  *sent = *recv = *lost = 0;
  *connected = 0;
  for (int i = 0; i < R.nparts; i++) {
    rp_part_t *p = &R.parts[i];
    *connected += p->connected && !p->closed;
    for (int k = 0; k < p->npubs; k++) *sent += p->pubs[k].log.sent;
    for (int k = 0; k < p->subs.n; k++) {
      *recv += p->subs.items[k]->chk.matched;
      *lost += sfu_rxcheck_lost(&p->subs.items[k]->chk);
    }
  }
}

/* Packets of `pub` sent before second k of sending began; `last`: the
 * seconds counted (the last one ends with the last packet). */
static uint64_t sent_before(const rp_pub_t *pub, int k, int last) {
  return k < last && k < pub->sec_n.n ? pub->sec_n.items[k] : pub->log.sent;
}

/* Per second of sending: packets sent in it, and over every receiver those
 * it was due (sent within its check's window: after its first match, up to
 * its last for one that left), those that arrived and those that did not
 * (so the seconds add up to the summary's sent, received and lost). */
static json_t *intervals_json(void) {
  json_t *a = json_array();
  if (!R.send_start_us || R.end_sends_us <= R.send_start_us) return a;
  double span = (double)(R.end_sends_us - R.send_start_us) / 1e6;
  int n = (int)ceil(span);
  if (n > MAX_INTERVALS) n = MAX_INTERVALS;
  for (int k = 0; k < n; k++) {
    uint64_t sent = 0, due = 0, recv = R.arrived.counts ? R.arrived.counts[k] : 0;
    for (int i = 0; i < R.nparts; i++) {
      rp_part_t *p = &R.parts[i];
      for (int j = 0; j < p->npubs; j++)
        sent += sent_before(&p->pubs[j], k + 1, n) - sent_before(&p->pubs[j], k, n);
      for (int j = 0; j < p->subs.n; j++) {
        const rp_sub_t *rs = p->subs.items[j];
        const sfu_rxcheck_t *c = &rs->chk;
        if (!rs->pub || !c->synced) continue;
        uint64_t lo = sent_before(rs->pub, k, n), hi = sent_before(rs->pub, k + 1, n);
        uint64_t from = c->first_n > lo ? c->first_n : lo;
        uint64_t to = c->closed && c->last_n + 1 < hi ? c->last_n + 1 : hi;
        due += to > from ? to - from : 0;
      }
    }
    uint64_t lost = due > recv ? due - recv : 0;
    double dt = k == n - 1 ? span - k : 1.0;
    json_array_append_new(
        a, json_pack("{s:f, s:f, s:I, s:I, s:I, s:f}", "t_s", k + dt, "dt_s", dt, "sent",
                     (json_int_t)sent, "received", (json_int_t)recv, "lost", (json_int_t)lost,
                     "loss", recv + lost ? (double)lost / (double)(recv + lost) : 0.0));
  }
  return a;
}

/* The added latency of every received packet as its non-empty buckets,
 * [from_us, to_us, packets] (10 µs wide to 10 ms, 1 ms wide to 10 s), and
 * how many took longer. */
static json_t *latency_histogram_json(const sfu_hist_t *h) {
  json_t *b = json_array();
  for (int i = 0; i < SFU_HIST_FINE; i++)
    if (h->fine[i])
      json_array_append_new(b, json_pack("[i, i, I]", i * 10, i * 10 + 10, (json_int_t)h->fine[i]));
  for (int i = 0; i < SFU_HIST_COARSE; i++)
    if (h->coarse[i])
      json_array_append_new(b, json_pack("[i, i, I]", 10000 + i * 1000, 11000 + i * 1000,
                                         (json_int_t)h->coarse[i]));
  return json_pack("{s:o, s:I}", "buckets_us", b, "over", (json_int_t)h->over);
}

static void progress(uint64_t t) {
  uint64_t sent, recv, lost;
  int conn;
  if (!R.progress || t - R.last_progress_us < 1000000) return;
  double dt = (double)(t - R.last_progress_us) / 1e6;
  totals(&sent, &recv, &lost, &conn);
  fprintf(stderr, "\r[%6.1fs] clients %d/%d  out %.0f pkt/s  in %.0f pkt/s  loss %.3f%%   ",
          run_s(), conn, R.nparts, (double)(sent - R.last_sent) / dt,
          (double)(recv - R.last_recv) / dt, recv + lost ? 100.0 * (double)lost / (double)(recv + lost) : 0);
  R.last_progress_us = t;
  R.last_sent = sent;
  R.last_recv = recv;
}

static json_t *hist_json(const sfu_hist_t *h) {
  return json_pack("{s:I, s:I, s:I, s:I, s:I}", "n", (json_int_t)h->n, "p50",
                   (json_int_t)sfu_hist_quantile(h, 0.5), "p95",
                   (json_int_t)sfu_hist_quantile(h, 0.95), "p99",
                   (json_int_t)sfu_hist_quantile(h, 0.99), "max", (json_int_t)h->max_us);
}

static void hist_merge(sfu_hist_t *into, const sfu_hist_t *h) {
  for (int i = 0; i < SFU_HIST_FINE; i++) into->fine[i] += h->fine[i];
  for (int i = 0; i < SFU_HIST_COARSE; i++) into->coarse[i] += h->coarse[i];
  into->over += h->over;
  into->n += h->n;
  if (h->max_us > into->max_us) into->max_us = h->max_us;
}

/* Per published track: what its receivers got, and the checks on it. */
static json_t *pub_json(rp_pub_t *pub, uint64_t *t_recv, uint64_t *t_lost, uint64_t *t_bad) {
  uint64_t recv = 0, lost = 0, dup = 0, reord = 0, corrupt = 0, missed = 0, resync = 0, old = 0;
  uint64_t legdup = 0;
  double jitter_max = 0;
  int receivers = 0;
  json_t *heard = json_array();
  for (int i = 0; i < R.nparts; i++) {
    rp_part_t *p = &R.parts[i];
    for (int k = 0; k < p->subs.n; k++) {
      rp_sub_t *s = p->subs.items[k];
      if (s->pub != pub) continue;
      receivers++;
      recv += s->chk.matched;
      lost += sfu_rxcheck_lost(&s->chk);
      dup += s->chk.duplicated;
      reord += s->chk.reordered;
      corrupt += s->chk.corrupt;
      missed += s->chk.synced ? s->chk.first_n : pub->log.sent;
      resync += s->chk.resyncs;
      old += s->chk.too_old;
      legdup += s->chk.leg_duplicated;
      double j = s->chk.jitter * 1000.0 / s->chk.clock;
      if (j > jitter_max) jitter_max = j;
      if (s->meter && s->level_n)
        json_array_append_new(heard, json_pack("{s:s, s:f}", "receiver", p->identity, "level",
                                               s->level_sum / (double)s->level_n));
    }
  }
  *t_recv += recv;
  *t_lost += lost;
  *t_bad += corrupt + dup;
  json_t *j = json_pack(
      "{s:s, s:s, s:s, s:s, s:I, s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:f}",
      "participant", pub->part->identity, "kind", pub->kind, "codec", pub->src->codec, "source",
      pub->src->name, "sent", (json_int_t)pub->log.sent, "receivers", receivers, "received",
      (json_int_t)recv, "lost", (json_int_t)lost, "missed_at_start", (json_int_t)missed,
      "duplicated", (json_int_t)dup, "reordered", (json_int_t)reord, "corrupt",
      (json_int_t)corrupt, "resyncs", (json_int_t)resync, "too_old", (json_int_t)old,
      "send_errors", (json_int_t)pub->send_errors, "latency_us", hist_json(&pub->lat),
      "jitter_ms_max", jitter_max);
  json_object_set_new(j, "leg_duplicates", json_integer((json_int_t)legdup));
  if (strcmp(pub->kind, "video") == 0) {
    json_object_set_new(j, "keyframe_requests", json_integer((json_int_t)pub->key_requests));
    json_object_set_new(j, "keyframe_skips", json_integer((json_int_t)pub->key_skips));
    json_object_set_new(j, "keyframe_skipped", json_integer((json_int_t)pub->key_skipped));
  }
  if (json_array_size(heard))
    json_object_set_new(j, "levels", heard);
  else
    json_decref(heard);
  return j;
}

static void check_expectations(json_t *streams) {
  size_t i;
  json_t *s;
  for (int k = 0; k < R.nparts; k++) {
    rp_part_t *p = &R.parts[k];
    if (!p->connected) failf("%s never had media", p->identity);
    if (p->self_rx) failf("%s received %llu packets of its own", p->identity,
                          (unsigned long long)p->self_rx);
    if (p->unknown_rx) failf("%s received %llu packets of no known track", p->identity,
                             (unsigned long long)p->unknown_rx);
  }
  json_array_foreach(streams, i, s) {
    const char *who = json_string_value(json_object_get(s, "participant"));
    json_int_t sent = json_integer_value(json_object_get(s, "sent"));
    json_int_t recv = json_integer_value(json_object_get(s, "received"));
    json_int_t lost = json_integer_value(json_object_get(s, "lost"));
    json_int_t nrecv = json_integer_value(json_object_get(s, "receivers"));
    const char *kind = json_string_value(json_object_get(s, "kind"));
    if (json_integer_value(json_object_get(s, "corrupt")))
      failf("%s %s: payloads arrived altered", who, kind);
    if (json_integer_value(json_object_get(s, "duplicated")))
      failf("%s %s: duplicates arrived", who, kind);
    if (sent == 0) failf("%s %s: nothing was sent", who, kind);
    if (nrecv == 0) failf("%s %s: nobody received it", who, kind);
    if (recv + lost > 0 && (double)lost / (double)(recv + lost) > R.max_loss)
      failf("%s %s: %lld of %lld lost", who, kind, (long long)lost, (long long)(recv + lost));
    if (R.expect_intact && (recv != sent * nrecv || json_integer_value(json_object_get(s, "missed_at_start"))))
      failf("%s %s: %lld sent to %lld receivers, %lld arrived", who, kind, (long long)sent,
            (long long)nrecv, (long long)recv);
  }
}

/* Per receiver and move: what it cost (printed, and in the summary). */
static json_t *moves_json(uint64_t *moves, uint64_t *aborted, uint64_t *gap_max,
                          uint64_t *frames_lost) {
  json_t *list = json_array();
  for (int i = 0; i < R.nparts; i++) {
    rp_part_t *p = &R.parts[i];
    if (p->peer) {
      *moves += sfu_peer_stats(p->peer)->migrations;
      *aborted += sfu_peer_stats(p->peer)->migrations_aborted;
    }
    for (int k = 0; k < p->nmoves; k++) {
      const rp_move_t *m = &p->moves[k];
      double at_s = (double)((int64_t)m->at_us - (int64_t)R.t0_us) / 1e6; /* < 0: before sending */
      if (m->gap_us / 1000 > *gap_max) *gap_max = m->gap_us / 1000;
      *frames_lost += m->frames_lost;
      char video[160] = "";
      if (m->video) {
        char key[32] = "none", resume[48] = "never";
        if (!m->video_nokey)
          snprintf(key, sizeof(key), "%+.0f ms", (double)m->video_key_us / 1000.0);
        if (!m->video_noresume)
          snprintf(resume, sizeof(resume), "%+.0f ms (%s)", (double)m->video_resume_us / 1000.0,
                   m->video_keyed ? "at once" : "at a keyframe");
        snprintf(video, sizeof(video), "; video: new leg's first keyframe %s from the switch, "
                 "decodable from %s", key, resume);
      }
      fprintf(stderr, "sfu-replay: %s: migrated at %.2f s: audio gap %.1f ms (ending %+.0f ms "
              "from the switch), %llu frames lost, %llu video packets lost, %llu played on both "
              "legs%s\n", p->identity, at_s, (double)m->gap_us / 1000.0,
              (double)m->gap_end_us / 1000.0, (unsigned long long)m->frames_lost,
              (unsigned long long)m->video_lost, (unsigned long long)m->duplicates, video);
      json_t *e = json_pack("{s:s, s:f, s:f, s:f, s:I, s:I, s:I}", "receiver", p->identity, "at_s",
                            at_s, "gap_ms", (double)m->gap_us / 1000.0, "gap_end_ms",
                            (double)m->gap_end_us / 1000.0, "frames_lost",
                            (json_int_t)m->frames_lost, "video_packets_lost",
                            (json_int_t)m->video_lost, "leg_duplicates", (json_int_t)m->duplicates);
      json_object_set_new(e, "video_tracks", json_integer(m->video));
      json_object_set_new(e, "video_keyframe_ms", m->video && !m->video_nokey
                                                      ? json_real((double)m->video_key_us / 1000.0)
                                                      : json_null());
      json_object_set_new(e, "video_resume_ms",
                          m->video && !m->video_noresume
                              ? json_real((double)m->video_resume_us / 1000.0) : json_null());
      json_object_set_new(e, "video_keyed", m->video ? json_boolean(m->video_keyed) : json_null());
      json_array_append_new(list, e);
    }
  }
  return list;
}

static void summary(void) {
  json_t *streams = json_array(), *parts = json_array();
  uint64_t recv = 0, lost = 0, bad = 0, sent = 0;
  uint64_t moves = 0, moves_aborted = 0, move_gap_max = 0, move_frames_lost = 0;
  measure_moves(now_us(), 1);
  sfu_hist_t *all = calloc(1, sizeof(*all));
  for (int i = 0; i < R.nparts; i++) {
    rp_part_t *p = &R.parts[i];
    for (int k = 0; k < p->npubs; k++) {
      json_array_append_new(streams, pub_json(&p->pubs[k], &recv, &lost, &bad));
      sent += p->pubs[k].log.sent;
      if (all) hist_merge(all, &p->pubs[k].lat);
    }
    json_t *c = json_pack("{s:s, s:s, s:i, s:b, s:f, s:i, s:i, s:I, s:I}", "identity",
                          p->identity, "sid", p->sid, "room", p->room->index, "connected",
                          p->connected, "connect_ms", (double)p->connect_us / 1000.0,
                          "subscriptions", p->subs.n, "close_code", p->close_code,
                          "self_received", (json_int_t)p->self_rx, "unknown_received",
                          (json_int_t)p->unknown_rx);
    if (p->peer) { /* what it went through: resumed signaling, restarted ICE */
      const sfu_peer_stats_t *ps = sfu_peer_stats(p->peer);
      json_object_set_new(c, "resumes", json_integer((json_int_t)ps->resumes));
      json_object_set_new(c, "resume_attempts", json_integer((json_int_t)ps->resume_attempts));
      json_object_set_new(c, "resume_gap_ms", json_integer((json_int_t)ps->resume_gap_ms));
      json_object_set_new(c, "ice_restarts", json_integer((json_int_t)ps->ice_restarts));
      json_object_set_new(c, "ice_gap_ms", json_integer((json_int_t)ps->ice_gap_ms));
      json_object_set_new(c, "migrations", json_integer((json_int_t)ps->migrations));
      json_object_set_new(c, "migrations_aborted",
                          json_integer((json_int_t)ps->migrations_aborted));
      json_object_set_new(c, "migrate_ms", json_integer((json_int_t)ps->migrate_ms));
      json_object_set_new(c, "migration_play_gap_ms",
                          json_integer((json_int_t)ps->migration_gap_ms));
      json_object_set_new(c, "rtp_standby", json_integer((json_int_t)ps->rtp_standby));
      json_object_set_new(c, "rejoins", json_integer((json_int_t)ps->rejoins));
    }
    json_array_append_new(parts, c);
  }
  if (R.expect_intact || R.max_loss < 1) check_expectations(streams);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
               (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  double send_s = R.end_sends_us > R.send_start_us && R.send_start_us
                      ? (double)(R.end_sends_us - R.send_start_us) / 1e6 : 0;
  json_t *sum = json_pack(
      "{s:i, s:i, s:f, s:f, s:I, s:I, s:I, s:f, s:f, s:f, s:o, s:f, s:b, s:s?}",
      "rooms", R.nrooms, "participants", R.nparts, "duration_s", run_s(), "sending_s", send_s,
      "sent", (json_int_t)sent, "received", (json_int_t)recv, "lost", (json_int_t)lost,
      "loss", recv + lost ? (double)lost / (double)(recv + lost) : 0.0, "received_per_s",
      send_s > 0 ? (double)recv / send_s : 0.0, "sent_per_s", send_s > 0 ? (double)sent / send_s : 0.0,
      "latency_us", all ? hist_json(all) : json_null(), "cpu_s", cpu, "ok",
      R.exit_code == EXIT_OK, "failure", R.fail[0] ? R.fail : NULL);
  json_t *move_list = moves_json(&moves, &moves_aborted, &move_gap_max, &move_frames_lost);
  json_object_set_new(sum, "migrations", json_integer((json_int_t)moves));
  json_object_set_new(sum, "migrations_aborted", json_integer((json_int_t)moves_aborted));
  json_object_set_new(sum, "migration_gap_ms_max", json_integer((json_int_t)move_gap_max));
  json_object_set_new(sum, "migration_frames_lost", json_integer((json_int_t)move_frames_lost));
  json_object_set_new(sum, "migration", move_list);
  json_object_set_new(sum, "latency_histogram", all ? latency_histogram_json(all) : json_null());
  json_object_set_new(sum, "intervals", intervals_json());
  json_object_set_new(sum, "streams", streams);
  json_object_set_new(sum, "clients", parts);
  if (R.rec) json_object_set_new(sum, "record_dropped", json_integer((json_int_t)R.rec_dropped));
  free(all);
  FILE *f = !R.json_out || strcmp(R.json_out, "-") == 0 ? stdout : fopen(R.json_out, "w");
  if (!f) die("%s: %s", R.json_out, strerror(errno));
  json_dumpf(sum, f, JSON_INDENT(1));
  fputc('\n', f);
  if (f != stdout) fclose(f);
  json_decref(sum);
  if (R.fail[0]) fprintf(stderr, "sfu-replay: FAILED: %s\n", R.fail);
}

/* --- the clock ------------------------------------------------------------------- */

static int all_closed(void) {
  for (int i = 0; i < R.nparts; i++)
    if (R.parts[i].peer && !R.parts[i].closed) return 0;
  return 1;
}

static void finish(void) {
  uv_timer_stop(&R.tick);
  if (R.progress) fputc('\n', stderr);
  for (int i = 0; i < R.nparts; i++)
    if (R.parts[i].peer) sfu_peer_destroy(R.parts[i].peer);
  for (int i = 0; i < R.nrooms; i++) delete_room(&R.rooms[i]);
  uv_close((uv_handle_t *)&R.tick, NULL);
  uv_close((uv_handle_t *)&R.sigint, NULL);
  sfu_gloop_close(&R.gloop, NULL);
}

static void on_tick(uv_timer_t *h) {
  uint64_t t = now_us();
  double ts = run_s();
  if (R.phase == 0) {
    int ready = 1;
    for (int i = 0; i < R.nrooms; i++) {
      rp_room_t *rm = &R.rooms[i];
      if (!rm->ready_at_us && room_ready(rm)) rm->ready_at_us = t;
      ready &= rm->ready_at_us && t - rm->ready_at_us >= READY_GRACE_MS * 1000;
    }
    for (int i = 0; i < R.nparts; i++)
      if (R.parts[i].join_s <= 0) apply_schedule(&R.parts[i], 0);
    if (ready || t - R.t0_us > READY_TIMEOUT_MS * 1000ULL) {
      if (!ready) fprintf(stderr, "sfu-replay: not every client connected in %d s; sending anyway\n",
                          READY_TIMEOUT_MS / 1000);
      R.phase = 1;
      R.send_start_us = t;
      R.arrived.counts = calloc(MAX_INTERVALS, sizeof(*R.arrived.counts));
      R.arrived.cap = R.arrived.counts ? MAX_INTERVALS : 0;
      R.arrived.start_us = t;
      R.t0_us = t; /* scenario times count from here */
      R.end_sends_us = t + (uint64_t)(R.duration_s * 1e6);
    }
  } else if (R.phase == 1) {
    int active = 0;
    for (int i = 0; i < R.nparts; i++) {
      rp_part_t *p = &R.parts[i];
      apply_schedule(p, ts);
      for (int k = 0; k < p->npubs; k++) {
        if (p->peer && p->connected && !p->left && !p->closed) send_due(&p->pubs[k], t);
        active |= !p->pubs[k].done && !p->left;
      }
    }
    if (t >= R.end_sends_us || (!active && R.loops > 0)) {
      R.end_sends_us = t;
      R.phase = 2;
      R.phase_at_us = t;
    }
  } else if (R.phase == 2 && t - R.phase_at_us >= DRAIN_MS * 1000) {
    summary();
    for (int i = 0; i < R.nparts; i++)
      if (R.parts[i].peer && !R.parts[i].left) {
        R.parts[i].left = 1;
        sfu_peer_leave(R.parts[i].peer);
      }
    R.phase = 3;
    R.phase_at_us = t;
  } else if (R.phase == 3 && (all_closed() || t - R.phase_at_us > 3000000)) {
    finish();
    return;
  }
  measure_moves(t, 0);
  progress(t);
}

static void on_sigint(uv_signal_t *h, int sig) {
  if (R.phase < 2) {
    fprintf(stderr, "\nsfu-replay: interrupted: summarising\n");
    R.end_sends_us = now_us();
    R.phase = 2;
    R.phase_at_us = now_us();
  } else {
    exit(R.exit_code ? R.exit_code : EXIT_FAILED);
  }
}

/* --- scenario -------------------------------------------------------------------- */

static sfu_source_t *load_spec(rp_srcspec_t *sp) {
  char err[512];
  if (sp->loaded) return sp->loaded;
  sp->loaded = calloc(1, sizeof(*sp->loaded));
  if (!sp->loaded) die("out of memory");
  int rv = sp->tone > 0  ? sfu_source_tone(sp->loaded, sp->tone, err, sizeof(err))
           : sp->wav[0] ? sfu_source_wav(sp->loaded, sp->wav, err, sizeof(err))
                        : sfu_source_load(sp->loaded, sp->capture, &sp->sel, R.timing, err,
                                          sizeof(err));
  if (rv != 0) die("%s", err);
  for (int k = 0; k < R.ncodecs && !sp->codec[0]; k++)
    if (R.codecs[k].pt == sp->loaded->pt) snprintf(sp->codec, sizeof(sp->codec), "%s", R.codecs[k].name);
  if (sp->codec[0]) {
    snprintf(sp->loaded->codec, sizeof(sp->loaded->codec), "%s", sp->codec);
    sp->loaded->clock = strcasecmp(sp->codec, "opus") == 0 ? 48000 : 90000;
  } else if (strcmp(sp->loaded->codec, "?") == 0) {
    die("%s: payload type %d: unknown codec; say which with --codec %d=NAME", sp->capture,
        sp->loaded->pt, sp->loaded->pt);
  }
  sfu_source_mark_keyframes(sp->loaded); /* where a keyframe request skips to */
  return sp->loaded;
}

/* A tone or WAV source is per participant (its encoder has state); a
 * capture is loaded once and shared. */
static sfu_source_t *source_for(rp_srcspec_t *sp) {
  if (sp->tone <= 0 && !sp->wav[0]) return load_spec(sp);
  rp_srcspec_t one = *sp;
  one.loaded = NULL;
  return load_spec(&one);
}

static rp_srcspec_t *add_spec(void) {
  if (sfu_vec_reserve(&R.specs, R.specs.n + 1) != 0) die("out of memory");
  rp_srcspec_t *a = &R.specs.items[R.specs.n++];
  memset(a, 0, sizeof(*a));
  a->sel.ssrc = -1;
  a->sel.pt = -1;
  a->sel.port = -1;
  return a;
}

typedef struct rp_tmpl_s {    /* a participant of the scenario, per room */
  char name[48];
  int count;
  int pubspec[SFU_PEER_MAX_PUBS];
  int npubs;
  double join_s, leave_s;
  double migrate_delay_s;   /* < 0: --migrate-delay */
  int audience;             /* "audience": tokens that may not publish */
  double mute[MAX_MUTES][2];
  int nmutes;
} rp_tmpl_t;

static void parse_participants(json_t *arr, const char *dir, rp_tmpl_t **out, int *n) {
  size_t i, k;
  json_t *jp, *jpub;
  *n = 0;
  *out = calloc(json_array_size(arr) + 1, sizeof(**out));
  json_array_foreach(arr, i, jp) {
    rp_tmpl_t *t = &(*out)[(*n)++];
    const char *name = json_string_value(json_object_get(jp, "name"));
    snprintf(t->name, sizeof(t->name), "%s", name ? name : "p");
    t->count = json_object_get(jp, "count") ? (int)json_integer_value(json_object_get(jp, "count")) : 1;
    if (t->count < 1 || t->count > 10000) die("participant %s: count must be 1..10000", t->name);
    t->join_s = json_number_value(json_object_get(jp, "join_s"));
    t->leave_s = json_object_get(jp, "leave_s") ? json_number_value(json_object_get(jp, "leave_s")) : -1;
    t->migrate_delay_s = json_object_get(jp, "migrate_delay_s")
                             ? json_number_value(json_object_get(jp, "migrate_delay_s")) : -1;
    if (t->migrate_delay_s > 60) die("participant %s: migrate_delay_s must be 0..60", t->name);
    t->audience = json_is_true(json_object_get(jp, "audience"));
    json_t *mutes = json_object_get(jp, "mute");
    json_t *mi;
    json_array_foreach(mutes, k, mi) {
      if (t->nmutes == MAX_MUTES) die("participant %s: at most %d mutes", t->name, MAX_MUTES);
      t->mute[t->nmutes][0] = json_number_value(json_array_get(mi, 0));
      t->mute[t->nmutes][1] = json_number_value(json_array_get(mi, 1));
      t->nmutes++;
    }
    json_array_foreach(json_object_get(jp, "publish"), k, jpub) {
      if (t->npubs == SFU_PEER_MAX_PUBS) die("participant %s: at most one audio and one video", t->name);
      rp_srcspec_t *sp = add_spec();
      const char *cap = json_string_value(json_object_get(jpub, "capture"));
      const char *wav = json_string_value(json_object_get(jpub, "wav"));
      if (wav && wav[0] != '/' && dir)
        snprintf(sp->wav, sizeof(sp->wav), "%.255s/%.255s", dir, wav);
      else if (wav)
        snprintf(sp->wav, sizeof(sp->wav), "%s", wav);
      const char *codec = json_string_value(json_object_get(jpub, "codec"));
      sp->tone = json_number_value(json_object_get(jpub, "tone"));
      if (cap && cap[0] != '/' && dir)
        snprintf(sp->capture, sizeof(sp->capture), "%.255s/%.255s", dir, cap);
      else if (cap)
        snprintf(sp->capture, sizeof(sp->capture), "%s", cap);
      else if (sp->tone <= 0 && !sp->wav[0])
        die("participant %s: a publish entry needs \"capture\", \"tone\" or \"wav\"", t->name);
      if (json_object_get(jpub, "ssrc")) sp->sel.ssrc = json_integer_value(json_object_get(jpub, "ssrc"));
      if (json_object_get(jpub, "pt")) sp->sel.pt = (int)json_integer_value(json_object_get(jpub, "pt"));
      if (json_object_get(jpub, "port")) sp->sel.port = (int)json_integer_value(json_object_get(jpub, "port"));
      if (codec) snprintf(sp->codec, sizeof(sp->codec), "%s", codec);
      t->pubspec[t->npubs++] = R.specs.n - 1;
    }
  }
}

static void build_run(rp_tmpl_t *tm, int ntm) {
  int per_room = 0;
  for (int i = 0; i < ntm; i++) per_room += tm[i].count;
  if (per_room == 0) die("a scenario needs participants");
  R.rooms = calloc((size_t)R.nrooms, sizeof(*R.rooms));
  R.nparts = per_room * R.nrooms;
  R.parts = calloc((size_t)R.nparts, sizeof(*R.parts));
  if (!R.rooms || !R.parts) die("out of memory");
  int pi = 0;
  for (int r = 0; r < R.nrooms; r++) {
    rp_room_t *rm = &R.rooms[r];
    rm->index = r;
    rm->parts = calloc((size_t)per_room, sizeof(*rm->parts));
    for (int i = 0; i < ntm; i++)
      for (int c = 0; c < tm[i].count; c++) {
        rp_part_t *p = &R.parts[pi];
        p->index = pi++;
        p->room = rm;
        rm->parts[rm->nparts++] = p;
        if (tm[i].count > 1)
          snprintf(p->identity, sizeof(p->identity), "%s-%d", tm[i].name, c);
        else
          snprintf(p->identity, sizeof(p->identity), "%s", tm[i].name);
        if (R.nrooms > 1) {
          size_t l = strlen(p->identity);
          snprintf(p->identity + l, sizeof(p->identity) - l, ".r%d", r);
        }
        p->join_s = tm[i].join_s;
        p->leave_s = tm[i].leave_s;
        p->migrate_delay_s = tm[i].migrate_delay_s >= 0 ? tm[i].migrate_delay_s : R.migrate_delay_s;
        p->audience = tm[i].audience;
        if (p->audience && tm[i].npubs) die("participant %s: an audience publishes nothing", tm[i].name);
        memcpy(p->mute, tm[i].mute, sizeof(p->mute));
        p->nmutes = tm[i].nmutes;
        for (int k = 0; k < tm[i].npubs; k++) {
          rp_pub_t *pub = &p->pubs[p->npubs++];
          pub->part = p;
          pub->src = source_for(&R.specs.items[tm[i].pubspec[k]]);
          snprintf(pub->kind, sizeof(pub->kind), "%s",
                   strcasecmp(pub->src->codec, "opus") == 0 ? "audio" : "video");
          if (k == 1 && strcmp(pub->kind, p->pubs[0].kind) == 0)
            die("%s: publishes two %s tracks; the SFU takes one of each kind", p->identity,
                pub->kind);
          do
            pub->ssrc = sfu_random_u32();
          while (pub->ssrc == 0);
        }
      }
  }
}

static void load_scenario(const char *path, rp_tmpl_t **tm, int *ntm) {
  json_error_t e;
  json_t *j = json_load_file(path, 0, &e);
  if (!j) die("%s:%d: %s", path, e.line, e.text);
  char dir[512];
  snprintf(dir, sizeof(dir), "%s", path);
  char *slash = strrchr(dir, '/');
  if (slash)
    *slash = '\0';
  else
    snprintf(dir, sizeof(dir), ".");
  if (json_object_get(j, "rooms")) R.nrooms = (int)json_integer_value(json_object_get(j, "rooms"));
  if (json_object_get(j, "duration_s")) R.duration_s = json_number_value(json_object_get(j, "duration_s"));
  if (json_object_get(j, "loops")) R.loops = (int)json_integer_value(json_object_get(j, "loops"));
  if (json_object_get(j, "speed")) R.speed = json_number_value(json_object_get(j, "speed"));
  const char *name = json_string_value(json_object_get(j, "room"));
  if (name) snprintf(R.room_name, sizeof(R.room_name), "%s", name);
  json_t *ex = json_object_get(j, "expect");
  if (json_is_true(json_object_get(ex, "intact"))) R.expect_intact = 1;
  if (json_object_get(ex, "max_loss")) R.max_loss = json_number_value(json_object_get(ex, "max_loss"));
  json_t *parts = json_object_get(j, "participants");
  if (!json_is_array(parts)) die("%s: \"participants\" must be an array", path);
  parse_participants(parts, dir, tm, ntm);
  json_decref(j);
}

/* --- command line ---------------------------------------------------------------- */

static void list_streams(int argc, char **argv) {
  for (int i = 0; i < argc; i++) {
    sfu_cap_stream_t st[64];
    uint64_t non_rtp = 0;
    char err[512];
    int n = sfu_cap_scan(argv[i], st, 64, &non_rtp, err, sizeof(err));
    if (n < 0) die("%s", err);
    printf("%s: %d RTP stream%s, %llu other UDP datagrams\n", argv[i], n, n == 1 ? "" : "s",
           (unsigned long long)non_rtp);
    for (int k = 0; k < n; k++) {
      char codec[16] = "?";
      int clock = 0;
      sfu_source_guess_codec(st[k].pt, codec, &clock);
      printf("  ssrc 0x%08x pt %3u (%s) port %u->%u: %llu packets, %.1f s, %llu seq gaps\n",
             st[k].ssrc, st[k].pt, codec, st[k].sport, st[k].dport,
             (unsigned long long)st[k].packets,
             (double)(st[k].last_us - st[k].first_us) / 1e6, (unsigned long long)st[k].seq_gaps);
    }
  }
}

/* One participant of a command-line run, publishing one new source. */
static rp_srcspec_t *cli_publisher(rp_tmpl_t *t, const char *prefix, int i) {
  rp_srcspec_t *sp = add_spec();
  snprintf(t->name, sizeof(t->name), "%s%d", prefix, i);
  t->count = 1;
  t->leave_s = -1;
  t->migrate_delay_s = -1;
  t->pubspec[t->npubs++] = R.specs.n - 1;
  return sp;
}

static void usage(FILE *f) {
  fputs(
      "usage: sfu-replay [options] [CAPTURE...]\n"
      "Replays RTP streams of pcap/pcapng captures through a room of a running sfud,\n"
      "as real clients (WebSocket signaling, ICE, DTLS, SRTP), and checks what the\n"
      "others receive. See docs/replay.md.\n\n"
      "  -s, --server URL       sfud's HTTP address (http://127.0.0.1:7880; $SFU_SERVER)\n"
      "  -k, --api-key KEY      control-plane key ($SFU_API_KEY)\n"
      "  -r, --room NAME        room to create (replay-<pid>)\n"
      "      --token JWT        join an existing room with this token (needs --ws-url)\n"
      "      --ws-url URL       signaling URL with --token\n"
      "      --address LIST     local IPs of the clients' ICE host candidates, IPv4 and/or\n"
      "                         IPv6, comma-separated (127.0.0.1; ::1 for a room on ::1)\n"
      "      --relay-only       media only through the TURN servers sfud hands out (turn:\n"
      "                         URLs over UDP or TCP; docs/deploying.md)\n"
      "      --ice-tcp          ICE-TCP candidates too: the room over TCP where UDP fails\n"
      "      --ice-tcp-only     ICE over TCP only (RFC 6544; docs/replay.md)\n"
      "      --restart-ice-at S every client restarts ICE once, S seconds after sending starts\n"
      "      --migrate-delay S  clients wait S seconds before following a room to another node\n"
      "  -f, --scenario FILE    scenario file (JSON; docs/replay.md)\n"
      "  -n, --participants N   participants per room: one per capture, the rest listen (3)\n"
      "      --rooms N          run the same room N times (1)\n"
      "      --tone HZ          one more participant publishing an Opus tone (repeatable)\n"
      "      --wav FILE         one more participant publishing a WAV file as Opus (repeatable)\n"
      "      --ssrc X --pt N --port N   select the stream of each capture\n"
      "      --codec PT=NAME    codec of a payload type (opus, VP8, VP9, H264, AV1)\n"
      "      --timing auto|capture|rtp  pace by capture time or RTP timestamp (auto)\n"
      "      --speed X          play X times faster (1)\n"
      "      --loop N           play each capture N times, then stop (1; 0 = until --duration)\n"
      "  -d, --duration S       stop sending after S seconds (default: end of the captures)\n"
      "      --decode           decode received Opus and report its level\n"
      "      --record FILE      write every received packet (plain RTP) to a pcap\n"
      "      --json FILE        write the summary there (- = stdout, the default)\n"
      "      --expect-intact    exit 1 unless every packet reached every receiver intact\n"
      "      --max-loss R       exit 1 if a stream lost more than R (0..1)\n"
      "      --progress         a live progress line on stderr\n"
      "      --list             list the RTP streams of the captures and exit\n"
      "  -h, --help\n"
      "Exit status: 0 ok, 1 an expectation failed, 2 bad arguments or setup.\n",
      f);
}

int main(int argc, char **argv) {
  enum { O_TOKEN = 256, O_WSURL, O_WAV, O_ROOMS, O_TONE, O_SSRC, O_PT, O_PORT, O_CODEC, O_TIMING,
         O_SPEED, O_LOOP, O_DECODE, O_RECORD, O_JSON, O_INTACT, O_MAXLOSS, O_PROGRESS, O_LIST,
         O_ADDRESS, O_RELAY_ONLY, O_RESTART_ICE_AT, O_MIGRATE_DELAY };
  enum { O_ICE_TCP = 512, O_ICE_TCP_ONLY }; /* ICE over TCP */
  static const struct option opts[] = {
      {"server", 1, 0, 's'},      {"api-key", 1, 0, 'k'},        {"room", 1, 0, 'r'},
      {"token", 1, 0, O_TOKEN},   {"ws-url", 1, 0, O_WSURL},     {"scenario", 1, 0, 'f'},
      {"participants", 1, 0, 'n'}, {"rooms", 1, 0, O_ROOMS},     {"tone", 1, 0, O_TONE}, {"wav", 1, 0, O_WAV},
      {"ssrc", 1, 0, O_SSRC},     {"pt", 1, 0, O_PT},            {"port", 1, 0, O_PORT},
      {"codec", 1, 0, O_CODEC},   {"timing", 1, 0, O_TIMING},    {"speed", 1, 0, O_SPEED},
      {"loop", 1, 0, O_LOOP},     {"duration", 1, 0, 'd'},       {"decode", 0, 0, O_DECODE},
      {"record", 1, 0, O_RECORD}, {"json", 1, 0, O_JSON},        {"expect-intact", 0, 0, O_INTACT},
      {"max-loss", 1, 0, O_MAXLOSS}, {"progress", 0, 0, O_PROGRESS}, {"list", 0, 0, O_LIST},
      {"address", 1, 0, O_ADDRESS},
      {"ice-tcp", 0, 0, O_ICE_TCP}, {"ice-tcp-only", 0, 0, O_ICE_TCP_ONLY},
      {"relay-only", 0, 0, O_RELAY_ONLY}, {"restart-ice-at", 1, 0, O_RESTART_ICE_AT},
      {"migrate-delay", 1, 0, O_MIGRATE_DELAY},
      {"help", 0, 0, 'h'},        {0, 0, 0, 0}};
  const char *scenario = NULL, *env;
  int participants = 3, list = 0, c;
  double tones[8];
  int ntones = 0;
  const char *wavs[8];
  int nwavs = 0;
  sfu_src_sel_t sel = {-1, -1, -1};

  snprintf(R.server, sizeof(R.server), "%s", (env = getenv("SFU_SERVER")) ? env : "http://127.0.0.1:7880");
  snprintf(R.api_key, sizeof(R.api_key), "%s", (env = getenv("SFU_API_KEY")) ? env : "");
  snprintf(R.room_name, sizeof(R.room_name), "replay-%d", (int)getpid());
  R.nrooms = 1;
  R.speed = 1;
  R.loops = 1;
  R.duration_s = -1;
  R.restart_ice_at = -1;
  R.max_loss = 1;
  R.progress = 0;
  while ((c = getopt_long(argc, argv, "s:k:r:f:n:d:h", opts, NULL)) != -1) {
    switch (c) {
    case 's': snprintf(R.server, sizeof(R.server), "%s", optarg); break;
    case 'k': snprintf(R.api_key, sizeof(R.api_key), "%s", optarg); break;
    case 'r': snprintf(R.room_name, sizeof(R.room_name), "%s", optarg); break;
    case O_TOKEN: snprintf(R.token, sizeof(R.token), "%s", optarg); break;
    case O_WSURL: snprintf(R.ws_url, sizeof(R.ws_url), "%s", optarg); break;
    case O_ADDRESS: snprintf(R.address, sizeof(R.address), "%s", optarg); break;
    case O_RELAY_ONLY: R.relay_only = 1; break;
    case O_ICE_TCP: R.ice_tcp = SFU_ICE_UDP_TCP; break;
    case O_ICE_TCP_ONLY: R.ice_tcp = SFU_ICE_TCP_ONLY; break;
    case O_RESTART_ICE_AT:
      R.restart_ice_at = atof(optarg);
      if (R.restart_ice_at < 0) die("--restart-ice-at wants seconds >= 0");
      break;
    case O_MIGRATE_DELAY:
      R.migrate_delay_s = atof(optarg);
      if (R.migrate_delay_s < 0 || R.migrate_delay_s > 60) die("--migrate-delay wants 0..60 s");
      break;
    case 'f': scenario = optarg; break;
    case 'n': participants = atoi(optarg); break;
    case O_ROOMS: R.nrooms = atoi(optarg); break;
    case O_TONE:
      if (ntones == 8) die("at most 8 --tone");
      tones[ntones++] = atof(optarg);
      break;
    case O_WAV:
      if (nwavs == 8) die("at most 8 --wav");
      wavs[nwavs++] = optarg;
      break;
    case O_SSRC: sel.ssrc = strtoll(optarg, NULL, 0); break;
    case O_PT: sel.pt = atoi(optarg); break;
    case O_PORT: sel.port = atoi(optarg); break;
    case O_CODEC: {
      char *eq = strchr(optarg, '=');
      if (!eq || R.ncodecs == 8) die("--codec wants PT=NAME");
      R.codecs[R.ncodecs].pt = atoi(optarg);
      snprintf(R.codecs[R.ncodecs].name, sizeof(R.codecs[R.ncodecs].name), "%s", eq + 1);
      R.ncodecs++;
      break;
    }
    case O_TIMING:
      R.timing = strcmp(optarg, "capture") == 0 ? SFU_TIMING_CAPTURE
                 : strcmp(optarg, "rtp") == 0   ? SFU_TIMING_RTP
                 : strcmp(optarg, "auto") == 0  ? SFU_TIMING_AUTO
                                                : (die("--timing: auto, capture or rtp"), 0);
      break;
    case O_SPEED: R.speed = atof(optarg); break;
    case O_LOOP: R.loops = atoi(optarg); break;
    case 'd': R.duration_s = atof(optarg); break;
    case O_DECODE: R.decode = 1; break;
    case O_RECORD: R.record_path = optarg; break;
    case O_JSON: R.json_out = optarg; break;
    case O_INTACT: R.expect_intact = 1; break;
    case O_MAXLOSS: R.max_loss = atof(optarg); break;
    case O_PROGRESS: R.progress = 1; break;
    case O_LIST: list = 1; break;
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return EXIT_USAGE;
    }
  }
  if (list) {
    list_streams(argc - optind, argv + optind);
    return 0;
  }
  if (R.speed <= 0 || R.speed > 100) die("--speed must be in (0, 100]");
  if (R.nrooms < 1 || R.nrooms > 1000) die("--rooms must be 1..1000");
  if (R.token[0] && !R.ws_url[0]) die("--token needs --ws-url (and --room: the room id)");
  if (R.address[0]) { /* as the client's ICE agent splits it (tools/client/nice.c) */
    char buf[sizeof(R.address)], *save = NULL;
    unsigned char ip[16];
    int n = 0;
    snprintf(buf, sizeof(buf), "%s", R.address);
    for (char *a = strtok_r(buf, ", ", &save); a; a = strtok_r(NULL, ", ", &save), n++)
      if (inet_pton(AF_INET, a, ip) != 1 && inet_pton(AF_INET6, a, ip) != 1)
        die("--address: '%s' is not an IPv4 or IPv6 address (IPv6 without brackets)", a);
    if (n == 0) die("--address: no address given");
  }

  rp_tmpl_t *tm = NULL;
  int ntm = 0;
  if (scenario) {
    load_scenario(scenario, &tm, &ntm);
  } else {
    int ncap = argc - optind;
    if (ncap + ntones + nwavs == 0)
      die("nothing to replay: give captures, --tone, --wav or --scenario");
    tm = calloc((size_t)(ncap + ntones + nwavs + 1), sizeof(*tm));
    for (int i = 0; i < ncap; i++) {
      rp_srcspec_t *sp = cli_publisher(&tm[ntm++], "pub", i);
      snprintf(sp->capture, sizeof(sp->capture), "%s", argv[optind + i]);
      sp->sel = sel;
    }
    for (int i = 0; i < ntones; i++) cli_publisher(&tm[ntm++], "tone", i)->tone = tones[i];
    for (int i = 0; i < nwavs; i++) {
      rp_srcspec_t *sp = cli_publisher(&tm[ntm++], "wav", i);
      snprintf(sp->wav, sizeof(sp->wav), "%s", wavs[i]);
    }
    int listeners = participants - ntm;
    if (listeners > 0) {
      snprintf(tm[ntm].name, sizeof(tm[ntm].name), "listener");
      tm[ntm].count = listeners;
      tm[ntm].leave_s = -1;
      tm[ntm].migrate_delay_s = -1;
      ntm++;
    }
  }
  if (R.token[0] && !scenario) /* a token is one identity: one participant */
    for (int i = 0; i < ntm; i++)
      if (tm[i].npubs == 0) tm[i].count = 0, ntm = i;
  build_run(tm, ntm);
  if (R.token[0] && R.nparts != 1)
    die("--token joins as one participant: give one capture or source (%d asked)", R.nparts);
  free(tm);
  if (R.duration_s < 0) { /* until the longest capture ends, or 10 s of tones */
    double longest = 0;
    for (int i = 0; i < R.nparts; i++)
      for (int k = 0; k < R.parts[i].npubs; k++) {
        const sfu_source_t *s = R.parts[i].pubs[k].src;
        double loops = R.loops > 0 ? R.loops : 1;
        double d = s->pcm ? (double)s->pcm_frames / s->rate * loops / R.speed
                   : s->enc ? 10 : (double)s->pass_us * loops / 1e6 / R.speed;
        if (d > longest) longest = d;
      }
    R.duration_s = longest + 0.5;
  }
  if (R.loops == 0) R.loops = 1 << 30;

  signal(SIGPIPE, SIG_IGN);
  sfu_log_set_level(SFU_LOG_WARN);
  sfu_srtp_library_init();
  R.loop = uv_default_loop();
  if (sfu_gloop_init(R.loop, &R.gloop) != 0) die("cannot start the GLib loop");
  if (sfu_dtls_cert_create(&R.cert) != 0) die("cannot create a DTLS certificate");
  if (R.record_path) {
    char err[512];
    if (sfu_cap_writer_open(&R.rec, R.record_path, err, sizeof(err)) != 0) die("%s", err);
  }
  for (int i = 0; i < R.nrooms; i++) create_room(&R.rooms[i]);
  /* Tokens are minted here, with blocking requests, rather than as each
   * client starts: minting hundreds from inside the loop held it so long that
   * the first clients' WebSocket handshakes timed out (10 s) meanwhile. */
  for (int i = 0; i < R.nparts; i++)
    if (R.parts[i].join_s <= 0) R.parts[i].token = mint_token(R.parts[i].room, R.parts[i].identity,
                                                             R.parts[i].audience);
  R.t0_us = now_us();
  uv_timer_init(R.loop, &R.tick);
  uv_timer_start(&R.tick, on_tick, 1, 1);
  uv_signal_init(R.loop, &R.sigint);
  uv_signal_start(&R.sigint, on_sigint, SIGINT);
  uv_run(R.loop, UV_RUN_DEFAULT);
  if (R.rec) sfu_cap_writer_close(R.rec);
  sfu_dtls_cert_destroy(R.cert);
  return R.exit_code;
}
