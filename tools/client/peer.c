/*
 * peer.c -- one simulated participant (see peer.h).
 *
 * Life of a peer: WebSocket open -> `join` -> `welcome` (its TURN servers,
 * if any, go to the ICE agent) -> our offer (the tracks we publish, or one
 * recvonly audio m-line for a listener) -> `answer` gives the SFU's ICE
 * credentials, candidates and fingerprint -> libnice checks and nominates
 * -> DTLS handshake (we are the client: the SFU answers setup:passive) ->
 * SRTP. Meanwhile every server `offer` is answered at once: recvonly for
 * the others' tracks (each becomes a subscription), our own m-lines as we
 * offered them.
 *
 * Teardown is deferred: sfu_peer_destroy() may run inside any callback of
 * the peer (a libnice receive, a WebSocket message), so it only marks the
 * peer dead and closes a handle; the close callback, which runs outside
 * every other callback, frees the transport, the agent and the memory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sfu/base/bytes.h"
#include "tools/client/nice.h"
#include "sfu/base/log.h"
#include "sfu/base/sfu.h"
#include "sfu/base/vec.h"
#include "signaling/sdp.h"
#include "tools/client/peer.h"
#include "tools/client/wsclient.h"

#define PING_MS 10000
#define SDP_CAP 65536

struct sfu_peer_s {
  uv_loop_t *loop;
  sfu_dtls_cert_t *cert;
  sfu_peer_cb_t cb;
  sfu_peer_opts_t o;          /* strings below are our copies */
  char ws_url[256], room[128], token[2048], address[256];
  sfu_ice_t *ice;             /* our own full agent */
  sfu_ice_opts_t ice_opts;
  sfu_transport_t *tp;
  sfu_ws_client_t *ws;
  uv_timer_t ping_timer;      /* heartbeat; its close frees the peer */
  char sid[72];
  sfu_sdp_t *local;           /* our last description (offer or answer) */
  uint64_t session_id, sdp_version;
  int next_id;                /* request ids */
  SFU_VEC(sfu_peer_sub_t) subs;
  int media_up;
  int ended;                  /* `closed` reported */
  int dead;                   /* destroyed: callbacks ignored */
  sfu_peer_stats_t stats;
};

/* --- signaling out --------------------------------------------------------- */

int sfu_peer_signal(sfu_peer_t *p, json_t *msg) {
  int rv = SFU_EPROTO;
  char *text = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
  if (text && p->ws && !p->dead) rv = sfu_ws_client_send(p->ws, text, strlen(text));
  free(text);
  json_decref(msg);
  return rv;
}

static void end(sfu_peer_t *p, int code, const char *reason) {
  if (p->ended) return;
  p->ended = 1;
  if (p->cb.closed) p->cb.closed(p->cb.arg, code, reason);
}

static void send_sdp(sfu_peer_t *p, sfu_sdp_t *s, const char *type, const char *idkey,
                     json_int_t id) {
  char *text = malloc(SDP_CAP);
  if (!text) return;
  s->session_id = p->session_id;
  s->session_version = ++p->sdp_version;
  snprintf(s->origin_user, sizeof(s->origin_user), "-");
  sfu_sdp_bundle_live(s);
  int n = sfu_sdp_write(s, text, SDP_CAP);
  if (n > 0)
    sfu_peer_signal(p, json_pack("{s:s, s:s%, s:I}", "type", type, "sdp", text, (size_t)n,
                                 idkey, id));
  free(text);
}

/* --- descriptions ------------------------------------------------------------ */

static sfu_sdp_t *sdp_alloc(int n) {
  sfu_sdp_t *s = sfu_sdp_new(n);
  if (s) s->nmedia = n;
  return s;
}

static void put_transport(sfu_peer_t *p, sfu_sdp_media_t *m, const char *setup) {
  sfu_transport_put_sdp(p->tp, m, setup);
  m->rtcp_rsize = 1;
}

static void put_pub(sfu_peer_t *p, sfu_sdp_media_t *m, int i) {
  const sfu_peer_pub_t *pub = &p->o.pubs[i];
  sfu_sdp_codec_t *c = &m->codecs[0];
  snprintf(m->kind, sizeof(m->kind), "%s", pub->kind);
  memset(c, 0, sizeof(*c));
  c->pt = pub->pt;
  snprintf(c->name, sizeof(c->name), "%s", pub->codec);
  c->clock = pub->clock;
  c->channels = pub->channels;
  snprintf(c->fmtp, sizeof(c->fmtp), "%s", pub->fmtp);
  c->rtx_apt = -1;
  m->ncodecs = 1;
  if (strcmp(pub->kind, "audio") == 0) { /* as browsers do: RFC 6464 levels */
    m->ext[0].id = SFU_PEER_LEVEL_EXT;
    snprintf(m->ext[0].uri, sizeof(m->ext[0].uri), "urn:ietf:params:rtp-hdrext:ssrc-audio-level");
    m->next = 1;
  }
  m->dir = SFU_DIR_SENDONLY;
  m->ssrcs[0] = pub->ssrc;
  m->nssrcs = 1;
  snprintf(m->cname, sizeof(m->cname), "%.48s", p->sid);
  snprintf(m->msid_stream, sizeof(m->msid_stream), "stream");
  snprintf(m->msid_track, sizeof(m->msid_track), "%s-%d", pub->kind, i);
}

static void put_listener(sfu_sdp_media_t *m) {
  sfu_sdp_codec_t *c = &m->codecs[0];
  snprintf(m->kind, sizeof(m->kind), "audio");
  memset(c, 0, sizeof(*c));
  c->pt = 111;
  snprintf(c->name, sizeof(c->name), "opus");
  c->clock = 48000;
  c->channels = 2;
  c->rtx_apt = -1;
  m->ncodecs = 1;
  m->dir = SFU_DIR_RECVONLY;
}

static void send_offer(sfu_peer_t *p) {
  int n = p->o.npubs > 0 ? p->o.npubs : 1;
  sfu_sdp_t *s = sdp_alloc(n);
  if (!s) return;
  for (int i = 0; i < n; i++) {
    sfu_sdp_media_t *m = &s->media[i];
    snprintf(m->proto, sizeof(m->proto), "UDP/TLS/RTP/SAVPF");
    snprintf(m->mid, sizeof(m->mid), "%d", i);
    m->port = 9;
    put_transport(p, m, "actpass");
    if (p->o.npubs > 0)
      put_pub(p, m, i);
    else
      put_listener(m);
  }
  send_sdp(p, s, "offer", "id", ++p->next_id);
  sfu_sdp_destroy(p->local);
  p->local = s;
}

/* The answer direction: the reverse of the offer's, limited to `want`. */
static sfu_sdp_dir_t answer_dir(sfu_sdp_dir_t offered, sfu_sdp_dir_t want) {
  sfu_sdp_dir_t rev = offered == SFU_DIR_SENDONLY   ? SFU_DIR_RECVONLY
                      : offered == SFU_DIR_RECVONLY ? SFU_DIR_SENDONLY
                      : offered;
  if (rev == SFU_DIR_INACTIVE) return SFU_DIR_INACTIVE;
  if (rev == SFU_DIR_SENDRECV || rev == want) return want;
  return SFU_DIR_INACTIVE;
}

static sfu_peer_sub_t *sub_by_mid(sfu_peer_t *p, const char *mid) {
  for (int i = 0; i < p->subs.n; i++)
    if (strcmp(p->subs.items[i].mid, mid) == 0) return &p->subs.items[i];
  return NULL;
}

/* One of the server's m-lines: a subscription, new or changed. */
static void note_sub(sfu_peer_t *p, const sfu_sdp_media_t *m, sfu_sdp_dir_t dir) {
  sfu_peer_sub_t *s = sub_by_mid(p, m->mid);
  int active = dir == SFU_DIR_RECVONLY && m->nssrcs > 0 && m->ncodecs > 0;
  if (!s) {
    if (!active) return;
    if (sfu_vec_reserve(&p->subs, p->subs.n + 1) != 0) return;
    s = &p->subs.items[p->subs.n++];
    memset(s, 0, sizeof(*s));
    snprintf(s->mid, sizeof(s->mid), "%s", m->mid);
  } else if (s->active == active) {
    return;
  }
  s->active = active;
  if (active) {
    snprintf(s->kind, sizeof(s->kind), "%.7s", m->kind);
    snprintf(s->owner_sid, sizeof(s->owner_sid), "%s", m->msid_stream);
    snprintf(s->track_id, sizeof(s->track_id), "%s", m->msid_track);
    s->ssrc = m->ssrcs[0];
    s->pt = m->codecs[0].pt;
    snprintf(s->codec, sizeof(s->codec), "%s", m->codecs[0].name);
    s->clock = m->codecs[0].clock;
  }
  if (p->cb.subscription) p->cb.subscription(p->cb.arg, s);
}

static int our_index(const sfu_peer_t *p, const char *mid) {
  for (int i = 0; p->local && i < p->local->nmedia; i++)
    if (strcmp(p->local->media[i].mid, mid) == 0 && strlen(mid) < 3 && mid[0] >= '0' &&
        mid[0] <= '9')
      return i;
  return -1;
}

static int apply_remote(sfu_peer_t *p, const sfu_sdp_t *s) {
  const sfu_sdp_media_t *first = NULL;
  const char *our_setup = NULL;
  for (int i = 0; i < s->nmedia && !first; i++)
    if (s->media[i].port) first = &s->media[i];
  if (!first) return SFU_EPROTO;
  int rv = sfu_transport_set_remote(p->tp, first->ice_ufrag, first->ice_pwd, first->fp_alg,
                                    first->fp, first->fp_len, first->setup, &our_setup);
  if (rv < 0) return rv;
  for (int i = 0; i < first->ncandidates; i++) sfu_transport_add_candidate(p->tp, first->candidates[i]);
  return 0;
}

static void on_server_offer(sfu_peer_t *p, const char *text, json_int_t offer_id) {
  sfu_sdp_t off;
  const char *why = NULL;
  memset(&off, 0, sizeof(off));
  if (sfu_sdp_parse(text, strlen(text), &off, &why) != 0 || !p->local) {
    sfu_log(SFU_LOG_WARN, "peer", "%s: server offer refused: %s", p->sid, why ? why : "early");
    sfu_sdp_free(&off);
    return;
  }
  sfu_sdp_t *ans = sdp_alloc(off.nmedia);
  if (!ans) {
    sfu_sdp_free(&off);
    return;
  }
  apply_remote(p, &off);
  for (int i = 0; i < off.nmedia; i++) {
    const sfu_sdp_media_t *om = &off.media[i];
    sfu_sdp_media_t *am = &ans->media[i];
    int ours = our_index(p, om->mid);
    if (ours >= 0) {
      *am = p->local->media[ours];
      sfu_sdp_dir_t want = p->o.npubs > 0 ? SFU_DIR_SENDONLY : SFU_DIR_RECVONLY;
      am->dir = answer_dir(om->dir, want);
    } else {
      snprintf(am->kind, sizeof(am->kind), "%s", om->kind);
      snprintf(am->proto, sizeof(am->proto), "%s", om->proto);
      snprintf(am->mid, sizeof(am->mid), "%s", om->mid);
      if (om->ncodecs > 0) {
        am->codecs[0] = om->codecs[0];
        am->ncodecs = 1;
      }
      am->dir = answer_dir(om->dir, SFU_DIR_RECVONLY);
      note_sub(p, om, am->dir);
    }
    am->port = om->port ? 9 : 0;
    if (am->port) put_transport(p, am, "active");
  }
  sfu_sdp_free(&off);
  p->stats.offers++;
  send_sdp(p, ans, "answer", "offer_id", offer_id);
  sfu_sdp_destroy(p->local);
  p->local = ans;
}

static void on_answer(sfu_peer_t *p, const char *text) {
  sfu_sdp_t ans;
  const char *why = NULL;
  memset(&ans, 0, sizeof(ans));
  int rv = sfu_sdp_parse(text, strlen(text), &ans, &why);
  if (rv == 0) rv = apply_remote(p, &ans);
  sfu_sdp_free(&ans);
  if (rv != 0) {
    sfu_log(SFU_LOG_WARN, "peer", "%s: answer refused: %s", p->sid, why ? why : sfu_strerror(rv));
    end(p, 0, "the server's answer was refused");
    return;
  }
  p->stats.answers++;
}

/* --- transport --------------------------------------------------------------- */

static sfu_peer_sub_t *sub_by_ssrc(sfu_peer_t *p, uint32_t ssrc) {
  for (int i = 0; i < p->subs.n; i++)
    if (p->subs.items[i].ssrc == ssrc && p->subs.items[i].active) return &p->subs.items[i];
  return NULL;
}

static void tp_rtp(void *arg, uint8_t *buf, size_t len) {
  sfu_peer_t *p = arg;
  if (p->dead || len < 12) return;
  sfu_peer_sub_t *s = sub_by_ssrc(p, sfu_rd32(buf + 8));
  if (!s) {
    p->stats.rtp_unknown++;
    return;
  }
  p->stats.rtp_received++;
  if (p->cb.rtp) p->cb.rtp(p->cb.arg, s, buf, len);
}

static void tp_rtcp(void *arg, uint8_t *buf, size_t len) { (void)arg, (void)buf, (void)len; }

static void tp_connected(void *arg) {
  sfu_peer_t *p = arg;
  if (p->dead) return;
  p->media_up = 1;
  if (p->cb.connected) p->cb.connected(p->cb.arg);
}

static void tp_failed(void *arg, const char *why) {
  sfu_peer_t *p = arg;
  if (p->dead) return;
  p->media_up = 0;
  end(p, 0, why);
}

/* --- WebSocket ----------------------------------------------------------------- */

static void ws_open(void *arg) {
  sfu_peer_t *p = arg;
  if (p->dead) return;
  sfu_peer_signal(p, json_pack("{s:s, s:i, s:i, s:s, s:s}", "type", "join", "id", ++p->next_id,
                               "v", 1, "room", p->room, "token", p->token));
}

/* The welcome's TURN servers (docs/signaling.md), for the ICE stream the
 * transport opens next. URLs the agent cannot use (turns:) are skipped. */
static void add_relays(sfu_peer_t *p, json_t *servers) {
  size_t i, j;
  json_t *srv, *u;
  json_array_foreach(servers, i, srv) {
    const char *user = json_string_value(json_object_get(srv, "username"));
    const char *cred = json_string_value(json_object_get(srv, "credential"));
    json_t *urls = json_object_get(srv, "urls");
    if (!user || !cred) continue;
    json_t *one = json_is_string(urls) ? json_pack("[O]", urls) : json_incref(urls);
    json_array_foreach(one, j, u) {
      const char *url = json_string_value(u);
      int rv = url ? sfu_nice_add_relay(p->ice, url, user, cred) : SFU_EINVAL;
      if (rv != 0)
        sfu_log(SFU_LOG_DEBUG, "peer", "TURN server %s %s", url ? url : "(not a string)",
                rv == 1 ? "skipped: not supported by libnice" : sfu_strerror(rv));
    }
    json_decref(one);
  }
}

static void on_welcome(sfu_peer_t *p, json_t *m) {
  const char *sid = json_string_value(json_object_get(json_object_get(m, "participant"), "sid"));
  snprintf(p->sid, sizeof(p->sid), "%s", sid ? sid : "?");
  if (p->cb.joined) p->cb.joined(p->cb.arg, p->sid);
  if (p->dead) return;
  add_relays(p, json_object_get(m, "ice_servers"));
  sfu_transport_cb_t tcb = {p, tp_rtp, tp_rtcp, tp_connected, tp_failed};
  int rv = sfu_transport_create(&p->tp, p->loop, p->ice, p->cert, &tcb);
  if (rv != 0) {
    end(p, 0, "cannot open a transport");
    return;
  }
  send_offer(p);
}

static void ws_message(void *arg, const char *text, size_t len) {
  sfu_peer_t *p = arg;
  if (p->dead) return;
  json_t *m = json_loadb(text, len, 0, NULL);
  const char *type = json_string_value(json_object_get(m, "type"));
  const char *sdp = json_string_value(json_object_get(m, "sdp"));
  if (!type) {
    json_decref(m);
    return;
  }
  if (strcmp(type, "welcome") == 0) {
    on_welcome(p, m);
  } else if (strcmp(type, "offer") == 0 && sdp && p->tp) {
    on_server_offer(p, sdp, json_integer_value(json_object_get(m, "offer_id")));
  } else if (strcmp(type, "answer") == 0 && sdp && p->tp) {
    on_answer(p, sdp);
  } else if (strcmp(type, "candidate") == 0) {
    const char *c = json_string_value(json_object_get(json_object_get(m, "candidate"), "candidate"));
    if (c && c[0] && p->tp) sfu_transport_add_candidate(p->tp, c);
  } else {
    if (strcmp(type, "error") == 0) p->stats.errors++;
    if (p->cb.message) p->cb.message(p->cb.arg, m);
  }
  json_decref(m);
}

static void ws_closed(void *arg, int code, const char *reason) {
  sfu_peer_t *p = arg;
  if (p->dead) return;
  end(p, code, reason);
}

static void on_ping(uv_timer_t *h) {
  sfu_peer_t *p = h->data;
  if (!p->dead && p->sid[0])
    sfu_peer_signal(p, json_pack("{s:s, s:i}", "type", "ping", "id", ++p->next_id));
}

/* --- lifecycle ----------------------------------------------------------------- */

int sfu_peer_create(sfu_peer_t **out, uv_loop_t *loop, GMainContext *ctx,
                    sfu_dtls_cert_t *cert, const sfu_peer_opts_t *o, const sfu_peer_cb_t *cb) {
  sfu_peer_t *p = calloc(1, sizeof(*p));
  *out = NULL;
  if (!p) return SFU_ENOMEM;
  if (o->npubs < 0 || o->npubs > SFU_PEER_MAX_PUBS || !o->ws_url || !o->room || !o->token) {
    free(p);
    return SFU_EINVAL;
  }
  p->loop = loop;
  p->cert = cert;
  p->cb = *cb;
  p->o = *o;
  snprintf(p->ws_url, sizeof(p->ws_url), "%s", o->ws_url);
  snprintf(p->room, sizeof(p->room), "%s", o->room);
  snprintf(p->token, sizeof(p->token), "%s", o->token);
  snprintf(p->address, sizeof(p->address), "%s", o->address ? o->address : "127.0.0.1");
  p->o.ws_url = p->ws_url;
  p->o.room = p->room;
  p->o.token = p->token;
  p->o.address = p->address;
  sfu_random_bytes(&p->session_id, sizeof(p->session_id));
  p->session_id = (p->session_id & 0x3fffffffffffffffULL) | 1;
  p->ice_opts.addresses = p->address;
  p->ice_opts.full = 1;
  int rv = sfu_nice_create(&p->ice, loop, ctx, &p->ice_opts);
  if (rv != 0) {
    free(p);
    return rv;
  }
  if (o->relay_only) sfu_nice_relay_only(p->ice, 1);
  uv_timer_init(loop, &p->ping_timer);
  p->ping_timer.data = p;
  uv_timer_start(&p->ping_timer, on_ping, PING_MS, PING_MS);
  sfu_ws_client_cb_t wcb = {p, ws_open, ws_message, ws_closed};
  rv = sfu_ws_client_connect(&p->ws, loop, p->ws_url, &wcb);
  if (rv != 0) {
    p->ws = NULL;
    sfu_peer_destroy(p);
    return rv;
  }
  *out = p;
  return 0;
}

int sfu_peer_send_rtp(sfu_peer_t *p, uint8_t *buf, size_t len, size_t cap) {
  if (!p->media_up || p->dead) return SFU_EAGAIN;
  int rv = sfu_transport_send_rtp(p->tp, buf, len, cap);
  if (rv == 0)
    p->stats.rtp_sent++;
  else
    p->stats.send_errors++;
  return rv;
}

int sfu_peer_send_rtcp(sfu_peer_t *p, uint8_t *buf, size_t len, size_t cap) {
  if (!p->media_up || p->dead) return SFU_EAGAIN;
  return sfu_transport_send_rtcp(p->tp, buf, len, cap);
}

void sfu_peer_leave(sfu_peer_t *p) {
  if (p->dead || !p->ws) return;
  sfu_peer_signal(p, json_pack("{s:s}", "type", "leave"));
  sfu_ws_client_close(p->ws, 1000, "leave");
}

const sfu_peer_stats_t *sfu_peer_stats(const sfu_peer_t *p) { return &p->stats; }
const char *sfu_peer_sid(const sfu_peer_t *p) { return p->sid; }
int sfu_peer_media_up(const sfu_peer_t *p) { return p->media_up && !p->dead; }

static void on_peer_closed(uv_handle_t *h) {
  sfu_peer_t *p = h->data;
  sfu_transport_destroy(p->tp);
  sfu_ice_destroy(p->ice);
  sfu_sdp_destroy(p->local);
  sfu_vec_free(&p->subs);
  free(p);
}

void sfu_peer_destroy(sfu_peer_t *p) {
  if (!p || p->dead) return;
  p->dead = 1;
  if (p->ws) sfu_ws_client_destroy(p->ws);
  p->ws = NULL;
  uv_close((uv_handle_t *)&p->ping_timer, on_peer_closed);
}
