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
 * Resume (docs/signaling.md, "Reconnecting"). The welcome's resume token
 * and grace are kept. A joined socket that drops (closed without a close
 * frame: 1006; or the server's 1001, 1011, 1012), or that leaves a ping
 * unanswered (LIVE_PING_MS: a dead TCP connection closes nothing), is let
 * go and another one opened: the first attempt at once, then after 250 ms
 * doubling to 4 s, each delay between half and all of it, until the grace
 * is over. Each socket's first message is `resume` (an attempt that gets
 * no answer in LIVE_RESUME_MS is let go too); `resumed` brings the next
 * token, then what the server kept, handled as usual. What the owner says
 * meanwhile waits in a bounded outbox; an offer of ours that got no
 * answer is sent again. 4014, any other final close code (4000-4013, 1008,
 * 1013) or the end of the grace ends the peer as a drop did before:
 * `closed` with that code, or with the drop's. Media is left alone
 * throughout. `leave` is never resumed.
 *
 * ICE restart (docs/signaling.md, Negotiation section 3). The transport
 * tells the peer when ICE connects, is lost or fails instead of failing
 * (sfu_transport_watch_ice()). The path is taken for lost when libnice
 * reports FAILED (consent checks unanswered for 10 s: tools/client/nice.c),
 * or sooner when our sends have failed for SEND_FAIL_MS (the local address
 * is gone: ENETUNREACH), or, once media flowed, nothing at all arrived for
 * STALL_MS (on_watch()). A path that broke may have taken the signaling
 * socket with it without a word, as a changed address does: the session is
 * first taken over on a fresh socket (a resume; the server replaces the
 * old socket, 4009), as web/sfu-client.js does; a restart that fails again
 * in the same outage pings the socket instead (LIVE_PROBE_MS). Then the
 * peer replaces its ICE stream (new credentials, candidates gathered again
 * on the addresses that exist now) and re-offers every m-line of the
 * session as it stands, with the new credentials; the answer's credentials
 * and candidates go to the new stream, DTLS and SRTP go on over the new
 * pair. Not while the socket is being resumed, nor while an offer of ours
 * is out: after. At most ICE_TRIES restarts in a row without ICE
 * connecting, then the peer ends ("ICE failed"), as a failed path did
 * before. A server offer that crosses our re-offer (glare) is answered,
 * without taking its old ICE credentials, and we offer again (GLARE_MAX
 * times in a row at most).
 *
 * Teardown is deferred: sfu_peer_destroy() may run inside any callback of
 * the peer (a libnice receive, a WebSocket message), so it only marks the
 * peer dead and closes its timers; the last close callback, which runs
 * outside every other callback, frees the transport, the agent and the
 * memory.
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
#define RESUME_FIRST_MS 250     /* backoff between resume attempts ... */
#define RESUME_MAX_MS 4000      /* ... doubling up to this, with jitter */
#define LIVE_PING_MS 5000       /* a ping unanswered this long: socket dead */
#define LIVE_PROBE_MS 1000      /* the same, after a lost path not taken over */
#define LIVE_RESUME_MS 5000     /* connect + `resumed`, per attempt */
#define OUTBOX_MAX 64           /* messages kept while the socket is down */
#define OUTBOX_BYTES (256u * 1024)
#define SEND_FAIL_MS 500        /* sends failing this long: the path is lost */
#define ICE_TRIES 5             /* restarts in a row without connecting */
#define ICE_RETRY_MS 1000       /* after a restart that could not gather */
#define GLARE_MAX 5             /* re-offers in a row refused for glare */
#define WATCH_MS 250            /* how often received bytes are looked at */
#define STALL_MS 1250           /* nothing received this long: the path is lost ... */
#define FLOWING_BPS 2000        /* ... if media was flowing (bytes/s in a tick) */
#define FLOW_RECENT_MS 1000     /* ... until at most this long before */

typedef enum {
  SIG_JOINING,  /* socket opening, `join` sent, no welcome yet */
  SIG_JOINED,   /* welcome or resumed on the current socket */
  SIG_RESUMING, /* the socket dropped: reconnecting, `resume` not answered */
  SIG_LEAVING,  /* `leave` said, or asked for while resuming */
  SIG_ENDED     /* `closed` reported */
} sig_state_t;

struct sfu_peer_s {
  uv_loop_t *loop;
  sfu_dtls_cert_t *cert;
  sfu_peer_cb_t cb;
  sfu_peer_opts_t o;          /* strings below are our copies */
  char ws_url[256], room[128], token[2048], address[256];
  sfu_ice_t *ice;             /* our own full agent */
  sfu_ice_opts_t ice_opts;
  sfu_transport_t *tp;
  sfu_ws_client_t *ws;        /* the current socket; NULL between attempts */
  uv_timer_t ping_timer;      /* heartbeat */
  uv_timer_t live_timer;      /* an answer the server owes (ping, resume) */
  uv_timer_t resume_timer;    /* next resume attempt */
  uv_timer_t ice_timer;       /* an ICE restart, out of the callbacks */
  uv_timer_t watch_timer;     /* received bytes: a stalled path */
  int closing;                /* timers still to close before the free */
  char sid[72];
  sfu_sdp_t *local;           /* our last description (offer or answer) */
  uint64_t session_id, sdp_version;
  int next_id;                /* request ids */
  SFU_VEC(sfu_peer_sub_t) subs;
  int media_up;
  sig_state_t sig;
  int dead;                   /* destroyed: callbacks ignored */
  /* resume */
  char room_id[128];          /* what `resume` names: the welcome's room id */
  char resume_token[72];      /* single-use; "" = the node does not resume */
  uint64_t grace_ms;          /* the server's grace after a drop */
  uint64_t dropped_ms;        /* when the socket dropped */
  int drop_code;              /* and how: reported if the resume fails */
  char drop_reason[128];
  unsigned backoff_ms;        /* the next delay between attempts */
  int attempts;               /* attempts since the drop */
  SFU_VEC(char *) outbox;     /* said while the socket was down */
  size_t outbox_bytes;
  /* offers and ICE restarts */
  int offer_out;              /* our offer sent, not answered yet */
  json_int_t offer_id;        /* its id */
  int reoffer;                /* offer again once the server's offer is answered */
  int glares;                 /* our offers refused for glare in a row */
  int ice_wanted;             /* restart ICE when signaling allows it */
  int ice_restarting;         /* a restart's re-offer or checks under way */
  int ice_tries;              /* restarts since ICE was last connected */
  uint64_t ice_lost_ms;       /* path lost (or restart asked); 0 = fine */
  uint64_t send_fail_ms;      /* first of the sends failing in a row; 0 = none */
  uint64_t watch_tick_ms;     /* the watch's last tick */
  uint64_t watch_bytes;       /* the transport's rx_bytes at the last tick */
  uint64_t watch_change_ms;   /* the last tick they had grown; 0 = not yet */
  uint64_t watch_flow_ms;     /* the last tick media flowed; 0 = not since a stall */
  sfu_peer_stats_t stats;
};

static void send_reoffer(sfu_peer_t *p);
static void schedule_ice(sfu_peer_t *p, uint64_t ms);

/* --- signaling out --------------------------------------------------------- */

static int send_now(sfu_peer_t *p, const char *text) {
  return p->ws ? sfu_ws_client_send(p->ws, text, strlen(text)) : SFU_ECANCELED;
}

/* While the socket is being resumed, what we say waits for `resumed`. */
static int say(sfu_peer_t *p, const char *text) {
  if (p->sig != SIG_RESUMING) return send_now(p, text);
  size_t n = strlen(text);
  if (p->outbox.n >= OUTBOX_MAX || p->outbox_bytes + n > OUTBOX_BYTES) return SFU_EAGAIN;
  char *copy = strdup(text);
  if (!copy || sfu_vec_push(&p->outbox, copy) != 0) {
    free(copy);
    return SFU_ENOMEM;
  }
  p->outbox_bytes += n;
  return 0;
}

static void outbox_clear(sfu_peer_t *p, int send) {
  for (int i = 0; i < p->outbox.n; i++) {
    if (send) send_now(p, p->outbox.items[i]);
    free(p->outbox.items[i]);
  }
  p->outbox.n = 0;
  p->outbox_bytes = 0;
}

int sfu_peer_signal(sfu_peer_t *p, json_t *msg) {
  int rv = SFU_EPROTO;
  char *text = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
  if (text && !p->dead && p->sig != SIG_ENDED) rv = say(p, text);
  free(text);
  json_decref(msg);
  return rv;
}

/* join or resume: the first message of a socket, never kept. */
static void send_first(sfu_peer_t *p, json_t *msg) {
  char *text = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
  if (text) send_now(p, text);
  free(text);
  json_decref(msg);
}

static void end(sfu_peer_t *p, int code, const char *reason) {
  if (p->sig == SIG_ENDED) return;
  p->sig = SIG_ENDED;
  uv_timer_stop(&p->live_timer);
  uv_timer_stop(&p->resume_timer);
  uv_timer_stop(&p->ice_timer);
  outbox_clear(p, 0);
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
  p->offer_id = ++p->next_id;
  send_sdp(p, s, "offer", "id", p->offer_id);
  p->offer_out = 1;
  sfu_sdp_destroy(p->local);
  p->local = s;
}

/* A later offer (ICE restart, glare, resume): every m-line of the session
 * as our last description has it -- ours as offered, the server's as we
 * answered them, rejected ones rejected -- with the transport as it is
 * now (new ICE credentials after a restart) and setup:actpass. */
static void send_reoffer(sfu_peer_t *p) {
  sfu_sdp_t *s = p->local ? sdp_alloc(p->local->nmedia) : NULL;
  if (!s) return;
  for (int i = 0; i < s->nmedia; i++) {
    s->media[i] = p->local->media[i];
    if (s->media[i].port) put_transport(p, &s->media[i], "actpass");
  }
  p->offer_id = ++p->next_id;
  send_sdp(p, s, "offer", "id", p->offer_id);
  p->offer_out = 1;
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

/* Our offer was refused for glare, or is about to be: offer again once
 * the server's offer is answered. Bounded: GLARE_MAX in a row end the peer. */
static void glare(sfu_peer_t *p) {
  p->offer_out = 0;
  p->reoffer = 1;
  if (++p->glares > GLARE_MAX) {
    p->reoffer = 0;
    end(p, 0, "our offer kept meeting glare");
  }
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
  if (p->offer_out) glare(p); /* the server refuses ours: offer again after this */
  if (p->sig == SIG_ENDED) {
    sfu_sdp_free(&off);
    sfu_sdp_destroy(ans);
    return;
  }
  /* Mid-restart, its ICE credentials are the old ones: the answer to our
   * re-offer brings the new. */
  if (!p->ice_restarting) apply_remote(p, &off);
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
  if (p->reoffer && !p->dead && p->sig != SIG_ENDED) {
    p->reoffer = 0;
    send_reoffer(p);
  }
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
  p->offer_out = 0;
  p->glares = 0;
  p->stats.answers++;
  if (p->ice_wanted) schedule_ice(p, 0); /* asked for while this offer was out */
}

/* An `error` about our outstanding offer (its id): glare is ours to
 * handle, as is any error about an offer we have replaced. Returns 1 when
 * the error was handled here. */
static int on_offer_error(sfu_peer_t *p, json_t *m) {
  const char *code = json_string_value(json_object_get(m, "code"));
  json_t *id = json_object_get(m, "id");
  if (!code || strcmp(code, "glare") != 0 || !json_is_integer(id)) return 0;
  if (p->offer_out && json_integer_value(id) == p->offer_id) glare(p);
  return 1; /* about an older offer: already offered again */
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

/* --- ICE restart ------------------------------------------------------------- */

static void on_live_timeout(uv_timer_t *h);

/* Sends a ping that must be answered within `ms` (live_timer; a shorter
 * deadline replaces a running one); any message from the server counts. */
static void ping(sfu_peer_t *p, uint64_t ms) {
  if (p->sig != SIG_JOINED) return;
  sfu_peer_signal(p, json_pack("{s:s, s:i}", "type", "ping", "id", ++p->next_id));
  if (!uv_is_active((uv_handle_t *)&p->live_timer) || ms < LIVE_PING_MS)
    uv_timer_start(&p->live_timer, on_live_timeout, ms, 0);
}

static void socket_gone(sfu_peer_t *p, int code, const char *reason);

/* ICE is to restart (from the loop): the path is lost (`path`), or a
 * restart was asked for. A lost path may have taken the signaling socket
 * with it, silently (a changed address): the session is first taken over
 * on a fresh socket -- the server replaces the old one -- and ICE restarts
 * once it is `resumed`. A restart that failed again within the same outage,
 * or a node without resume, gets a ping instead, which a dead socket
 * leaves unanswered (LIVE_PROBE_MS): then the socket is let go as a drop. */
static void ice_lost(sfu_peer_t *p, const char *why, int path) {
  if (p->dead || p->sig == SIG_ENDED || !p->tp) return;
  int first = !p->ice_lost_ms;
  if (first) {
    p->ice_lost_ms = sfu_now_ms();
    sfu_log(SFU_LOG_WARN, "peer", "%s: restarting ICE: %s", p->sid, why);
  }
  p->ice_wanted = 1;
  if (path && first && p->sig == SIG_JOINED && p->resume_token[0] && p->grace_ms) {
    socket_gone(p, 1006, "taken over on a fresh socket: the media path broke");
    return;
  }
  if (path) ping(p, LIVE_PROBE_MS);
  schedule_ice(p, 0);
}

static void on_ice_timer(uv_timer_t *h) {
  sfu_peer_t *p = h->data;
  if (p->dead || p->sig == SIG_ENDED || !p->ice_wanted || !p->tp) return;
  if (p->sig != SIG_JOINED || p->offer_out) return; /* after `resumed`, or the answer */
  if (p->ice_tries >= ICE_TRIES) {
    end(p, 0, "ICE failed: no path after restarts");
    return;
  }
  p->ice_tries++;
  int rv = sfu_transport_restart_ice(p->tp);
  if (rv != 0) { /* no address to gather on (yet): try again shortly */
    sfu_log(SFU_LOG_WARN, "peer", "%s: ICE restart %d: %s", p->sid, p->ice_tries,
            sfu_strerror(rv));
    schedule_ice(p, ICE_RETRY_MS);
    return;
  }
  p->ice_wanted = 0;
  p->ice_restarting = 1;
  p->send_fail_ms = 0;
  p->stats.ice_restarts++;
  sfu_log(SFU_LOG_INFO, "peer", "%s: ICE restart %d: re-offering with new credentials", p->sid,
          p->ice_tries);
  send_reoffer(p);
}

static void schedule_ice(sfu_peer_t *p, uint64_t ms) {
  if (!p->dead && p->sig != SIG_ENDED) uv_timer_start(&p->ice_timer, on_ice_timer, ms, 0);
}

/* The transport's ICE stream changed state (sfu_transport_watch_ice()). */
static void tp_ice(void *arg, int connected) {
  sfu_peer_t *p = arg;
  if (p->dead || p->sig == SIG_ENDED) return;
  if (!connected) {
    ice_lost(p, "ICE failed (no consent)", 1);
    return;
  }
  if (p->ice_lost_ms) {
    p->stats.ice_gap_ms = sfu_now_ms() - p->ice_lost_ms;
    sfu_log(SFU_LOG_WARN, "peer", "%s: ICE connected again after %llu ms (%d restarts)", p->sid,
            (unsigned long long)p->stats.ice_gap_ms, p->ice_tries);
  }
  p->ice_lost_ms = 0;
  p->ice_restarting = 0;
  p->ice_tries = 0;
  p->send_fail_ms = 0;
}

/* A send failed for something else than a full buffer: once they have
 * failed for SEND_FAIL_MS in a row, the path is lost (the local address
 * went away: ENETUNREACH), which libnice's consent would tell only 10 s
 * later. */
static void send_failed(sfu_peer_t *p, int rv) {
  uint64_t now = sfu_now_ms();
  if (rv != SFU_EPROTO || p->ice_lost_ms) return;
  if (!p->send_fail_ms)
    p->send_fail_ms = now;
  else if (now - p->send_fail_ms >= SEND_FAIL_MS)
    ice_lost(p, "sends failing", 1);
}

/* Every WATCH_MS: what the transport received. Once media flowed (a
 * tick of at least FLOWING_BPS within FLOW_RECENT_MS of the last byte),
 * STALL_MS with nothing at all -- the room sends RTCP reports every second
 * besides the media -- is a lost path: a receiver notices it so, long
 * before consent does. A late tick (our own loop was busy) starts the
 * watch again rather than blaming the path. */
static void on_watch(uv_timer_t *h) {
  sfu_peer_t *p = h->data;
  uint64_t now = sfu_now_ms(), dt = now - p->watch_tick_ms;
  int late = p->watch_tick_ms && dt > 2 * WATCH_MS;
  p->watch_tick_ms = now;
  if (p->dead || p->sig == SIG_ENDED || !p->tp || !p->media_up) return;
  uint64_t bytes = sfu_transport_stats(p->tp)->rx_bytes;
  if (late || !p->watch_change_ms || bytes != p->watch_bytes) {
    if (!late && p->watch_change_ms && dt && (bytes - p->watch_bytes) * 1000 / dt >= FLOWING_BPS)
      p->watch_flow_ms = now;
    p->watch_bytes = bytes;
    p->watch_change_ms = now;
    return;
  }
  if (p->watch_flow_ms && p->watch_change_ms - p->watch_flow_ms <= FLOW_RECENT_MS &&
      now - p->watch_change_ms >= STALL_MS && !p->ice_lost_ms) {
    p->watch_flow_ms = 0; /* once per stall */
    ice_lost(p, "nothing received", 1);
  }
}

void sfu_peer_restart_ice(sfu_peer_t *p) { ice_lost(p, "asked for", 0); }

/* --- WebSocket ----------------------------------------------------------------- */

static void ws_open(void *arg) {
  sfu_peer_t *p = arg;
  if (p->dead) return;
  if (p->sig == SIG_RESUMING)
    send_first(p, json_pack("{s:s, s:i, s:i, s:s, s:s}", "type", "resume", "id", ++p->next_id,
                            "v", 1, "room", p->room_id[0] ? p->room_id : p->room,
                            "resume_token", p->resume_token));
  else
    send_first(p, json_pack("{s:s, s:i, s:i, s:s, s:s}", "type", "join", "id", ++p->next_id,
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

/* welcome and resumed: the next resume token and the grace. */
static void take_resume(sfu_peer_t *p, json_t *m) {
  const char *tok = json_string_value(json_object_get(m, "resume_token"));
  json_int_t grace = json_integer_value(json_object_get(m, "resume_grace_s"));
  snprintf(p->resume_token, sizeof(p->resume_token), "%s", tok ? tok : "");
  p->grace_ms = tok && grace > 0 ? (uint64_t)grace * 1000 : 0;
}

static void on_welcome(sfu_peer_t *p, json_t *m) {
  const char *sid = json_string_value(json_object_get(json_object_get(m, "participant"), "sid"));
  const char *rid = json_string_value(json_object_get(json_object_get(m, "room"), "room_id"));
  snprintf(p->sid, sizeof(p->sid), "%s", sid ? sid : "?");
  snprintf(p->room_id, sizeof(p->room_id), "%s", rid ? rid : "");
  take_resume(p, m);
  p->sig = SIG_JOINED;
  if (p->cb.joined) p->cb.joined(p->cb.arg, p->sid);
  if (p->dead || p->sig == SIG_ENDED) return;
  add_relays(p, json_object_get(m, "ice_servers"));
  sfu_transport_cb_t tcb = {p, tp_rtp, tp_rtcp, tp_connected, tp_failed};
  int rv = sfu_transport_create(&p->tp, p->loop, p->ice, p->cert, &tcb);
  if (rv != 0) {
    end(p, 0, "cannot open a transport");
    return;
  }
  sfu_transport_watch_ice(p->tp, tp_ice);
  send_offer(p);
}

/* The session is back on a new socket: what waited goes out, an offer
 * that was out goes again, a restart that waited for the socket starts. */
static void on_resumed(sfu_peer_t *p, json_t *m) {
  take_resume(p, m);
  p->sig = SIG_JOINED;
  p->stats.resumes++;
  p->stats.resume_gap_ms = sfu_now_ms() - p->dropped_ms;
  sfu_log(SFU_LOG_WARN, "peer", "%s: signaling resumed after %llu ms (%d attempts)", p->sid,
          (unsigned long long)p->stats.resume_gap_ms, p->attempts);
  outbox_clear(p, 1);
  if (p->offer_out && p->local) { /* its answer, if any, was lost with the socket */
    p->offer_id = ++p->next_id;
    send_sdp(p, p->local, "offer", "id", p->offer_id);
  }
  if (p->ice_wanted) schedule_ice(p, 0);
}

static void ws_message(void *arg, const char *text, size_t len) {
  sfu_peer_t *p = arg;
  if (p->dead || p->sig == SIG_ENDED) return;
  uv_timer_stop(&p->live_timer); /* the server answers */
  json_t *m = json_loadb(text, len, 0, NULL);
  const char *type = json_string_value(json_object_get(m, "type"));
  const char *sdp = json_string_value(json_object_get(m, "sdp"));
  if (!type) {
    json_decref(m);
    return;
  }
  if (strcmp(type, "welcome") == 0 && p->sig == SIG_JOINING) {
    on_welcome(p, m);
  } else if (strcmp(type, "resumed") == 0 && p->sig == SIG_RESUMING) {
    on_resumed(p, m);
  } else if (strcmp(type, "offer") == 0 && sdp && p->tp) {
    on_server_offer(p, sdp, json_integer_value(json_object_get(m, "offer_id")));
  } else if (strcmp(type, "answer") == 0 && sdp && p->tp) {
    on_answer(p, sdp);
  } else if (strcmp(type, "candidate") == 0) {
    const char *c = json_string_value(json_object_get(json_object_get(m, "candidate"), "candidate"));
    if (c && c[0] && p->tp) sfu_transport_add_candidate(p->tp, c);
  } else if (strcmp(type, "error") == 0 && on_offer_error(p, m)) {
    /* glare on our offer: handled */
  } else {
    if (strcmp(type, "error") == 0) p->stats.errors++;
    if (p->cb.message) p->cb.message(p->cb.arg, m);
  }
  json_decref(m);
}

/* --- resume ------------------------------------------------------------------ */

static void ws_closed(void *arg, int code, const char *reason);

/* A new socket to the signaling URL; `join` or `resume` goes when it opens. */
static int open_socket(sfu_peer_t *p) {
  sfu_ws_client_cb_t wcb = {p, ws_open, ws_message, ws_closed};
  int rv = sfu_ws_client_connect(&p->ws, p->loop, p->ws_url, &wcb);
  if (rv != 0) p->ws = NULL;
  return rv;
}

/* Close codes after which the session may still be there: no close frame
 * (1006), or the server going away or restarting (1001, 1011, 1012).
 * Every other code, 4000-4014, 1008 and 1013 among them, is final. */
static int resumable(int code) {
  return code == 1006 || code == 1001 || code == 1011 || code == 1012;
}

/* The session is not coming back: `closed` with the server's final code
 * (4014: no such session), or, when no server refused it (the grace is
 * over), with the drop's code and why it was not resumed. */
static void give_up(sfu_peer_t *p, int code, const char *why) {
  char reason[200];
  if (code)
    sfu_log(SFU_LOG_WARN, "peer", "%s: resume refused (%d %s) after %d attempts", p->sid, code,
            why, p->attempts);
  else
    sfu_log(SFU_LOG_WARN, "peer", "%s: could not resume after %d attempts: %s", p->sid,
            p->attempts, why);
  if (code) {
    end(p, code, why);
  } else {
    snprintf(reason, sizeof(reason), "%s (not resumed: %s)", p->drop_reason, why);
    end(p, p->drop_code, reason);
  }
}

static void on_resume_timer(uv_timer_t *h) {
  sfu_peer_t *p = h->data;
  if (p->dead || p->sig == SIG_ENDED) return;
  if (p->sig == SIG_LEAVING) { /* left while the socket was down */
    end(p, 1000, "left");
    return;
  }
  if (p->sig != SIG_RESUMING || p->ws) return;
  if (sfu_now_ms() - p->dropped_ms >= p->grace_ms) {
    give_up(p, 0, "the grace is over");
    return;
  }
  p->attempts++;
  p->stats.resume_attempts++;
  sfu_log(SFU_LOG_INFO, "peer", "%s: resume attempt %d", p->sid, p->attempts);
  int rv = open_socket(p);
  if (rv != 0) {
    give_up(p, 0, sfu_strerror(rv));
    return;
  }
  uv_timer_start(&p->live_timer, on_live_timeout, LIVE_RESUME_MS, 0);
}

/* The next attempt, after the backoff: between half and all of it. */
static void retry_later(sfu_peer_t *p) {
  unsigned half = p->backoff_ms / 2;
  uint64_t delay = half + sfu_random_u32() % (half + 1);
  p->backoff_ms = p->backoff_ms * 2 > RESUME_MAX_MS ? RESUME_MAX_MS : p->backoff_ms * 2;
  uv_timer_start(&p->resume_timer, on_resume_timer, delay, 0);
}

/* The current socket is gone: closed (`code`, `reason`) or given up on. */
static void socket_gone(sfu_peer_t *p, int code, const char *reason) {
  uv_timer_stop(&p->live_timer);
  sfu_ws_client_destroy(p->ws); /* dropped without a close frame if still open */
  p->ws = NULL;
  if (p->sig == SIG_JOINED && p->resume_token[0] && p->grace_ms && resumable(code)) {
    p->sig = SIG_RESUMING;
    p->dropped_ms = sfu_now_ms();
    p->drop_code = code;
    snprintf(p->drop_reason, sizeof(p->drop_reason), "%s", reason);
    p->attempts = 0;
    p->backoff_ms = RESUME_FIRST_MS;
    sfu_log(SFU_LOG_WARN, "peer", "%s: signaling dropped (%d %s): resuming for up to %llu s",
            p->sid, code, reason, (unsigned long long)(p->grace_ms / 1000));
    uv_timer_start(&p->resume_timer, on_resume_timer, 0, 0);
  } else if (p->sig == SIG_RESUMING) {
    if (!resumable(code))
      give_up(p, code, reason); /* 4014: no such session; or another final code */
    else
      retry_later(p);
  } else {
    end(p, code, reason);
  }
}

static void ws_closed(void *arg, int code, const char *reason) {
  sfu_peer_t *p = arg;
  if (p->dead || p->sig == SIG_ENDED) return;
  socket_gone(p, code, reason);
}

/* A ping or a `resume` got no answer in time: the socket is dead though
 * nothing closed it (a TCP connection whose path is gone). */
static void on_live_timeout(uv_timer_t *h) {
  sfu_peer_t *p = h->data;
  if (p->dead || p->sig == SIG_ENDED || !p->ws) return;
  sfu_log(SFU_LOG_WARN, "peer", "%s: no answer from the server: dropping the socket", p->sid);
  socket_gone(p, 1006, "no answer from the server");
}

static void on_ping(uv_timer_t *h) {
  sfu_peer_t *p = h->data;
  if (!p->dead) ping(p, LIVE_PING_MS);
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
  p->ice_opts.tcp = o->ice_tcp;
  int rv = sfu_nice_create(&p->ice, loop, ctx, &p->ice_opts);
  if (rv != 0) {
    free(p);
    return rv;
  }
  if (o->relay_only) sfu_nice_relay_only(p->ice, 1);
  uv_timer_t *timers[] = {&p->ping_timer, &p->live_timer, &p->resume_timer, &p->ice_timer,
                          &p->watch_timer};
  for (size_t i = 0; i < sizeof(timers) / sizeof(timers[0]); i++) {
    uv_timer_init(loop, timers[i]);
    timers[i]->data = p;
  }
  uv_timer_start(&p->ping_timer, on_ping, PING_MS, PING_MS);
  uv_timer_start(&p->watch_timer, on_watch, WATCH_MS, WATCH_MS);
  p->sig = SIG_JOINING;
  rv = open_socket(p);
  if (rv != 0) {
    sfu_peer_destroy(p);
    return rv;
  }
  *out = p;
  return 0;
}

int sfu_peer_send_rtp(sfu_peer_t *p, uint8_t *buf, size_t len, size_t cap) {
  if (!p->media_up || p->dead) return SFU_EAGAIN;
  int rv = sfu_transport_send_rtp(p->tp, buf, len, cap);
  if (rv == 0) {
    p->stats.rtp_sent++;
    p->send_fail_ms = 0;
  } else {
    p->stats.send_errors++;
    send_failed(p, rv);
  }
  return rv;
}

int sfu_peer_send_rtcp(sfu_peer_t *p, uint8_t *buf, size_t len, size_t cap) {
  if (!p->media_up || p->dead) return SFU_EAGAIN;
  int rv = sfu_transport_send_rtcp(p->tp, buf, len, cap);
  if (rv == 0)
    p->send_fail_ms = 0;
  else
    send_failed(p, rv);
  return rv;
}

void sfu_peer_leave(sfu_peer_t *p) {
  if (p->dead || p->sig == SIG_ENDED || p->sig == SIG_LEAVING) return;
  if (p->sig == SIG_RESUMING) { /* no socket to say it on: the grace ends the session */
    p->sig = SIG_LEAVING;
    uv_timer_stop(&p->live_timer);
    sfu_ws_client_destroy(p->ws);
    p->ws = NULL;
    uv_timer_start(&p->resume_timer, on_resume_timer, 0, 0); /* `closed` from the loop */
    return;
  }
  p->sig = SIG_LEAVING;
  if (!p->ws) return;
  sfu_peer_signal(p, json_pack("{s:s}", "type", "leave"));
  sfu_ws_client_close(p->ws, 1000, "leave");
}

const sfu_peer_stats_t *sfu_peer_stats(const sfu_peer_t *p) { return &p->stats; }
const char *sfu_peer_sid(const sfu_peer_t *p) { return p->sid; }
int sfu_peer_media_up(const sfu_peer_t *p) { return p->media_up && !p->dead; }

/* A timer has closed: the last one frees the peer. */
static void on_peer_closed(uv_handle_t *h) {
  sfu_peer_t *p = h->data;
  if (--p->closing > 0) return;
  sfu_transport_destroy(p->tp);
  sfu_ice_destroy(p->ice);
  sfu_sdp_destroy(p->local);
  sfu_vec_free(&p->subs);
  outbox_clear(p, 0);
  sfu_vec_free(&p->outbox);
  free(p);
}

void sfu_peer_destroy(sfu_peer_t *p) {
  if (!p || p->dead) return;
  p->dead = 1;
  if (p->ws) sfu_ws_client_destroy(p->ws);
  p->ws = NULL;
  uv_timer_t *timers[] = {&p->ping_timer, &p->live_timer, &p->resume_timer, &p->ice_timer,
                          &p->watch_timer};
  int n = (int)(sizeof(timers) / sizeof(timers[0]));
  p->closing = n;
  for (int i = 0; i < n; i++) uv_close((uv_handle_t *)timers[i], on_peer_closed);
}
