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
 * Legs. Everything above belongs to a leg (leg_t): a signaling socket, the
 * session state on it (resume token, outbox, offers), and the media
 * negotiated over it (an ICE agent of its own, the transport: DTLS, SRTP).
 * A peer has one leg, `cur`, whose media is played (handed up); and while
 * its room moves to another node a second one, `next`; and for a few
 * seconds legs that are retiring (their socket closing). Resume, ICE
 * restarts, offers and glare below are per leg: each of the two runs them
 * against its own node. Subscriptions are the peer's, mapped from each
 * leg's m-lines by track (tools/client/subs.h).
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
 * Moving to another node (docs/signaling.md), make-before-break. `migrate`
 * on the socket of `cur` opens `next`: a leg whose socket goes to the
 * message's ws_url and starts as a resume does (the message's room and
 * token, attempts backed off as above for MOVE_OPEN_MS; the first one
 * after the owner's move_delay_ms, a slow client, else at once). On
 * `resumed` it opens its transport and offers the same tracks; it answers
 * the new node's offers and runs its own restarts. Every packet we send
 * goes out on both legs; what `next` receives is counted (rtp_standby),
 * not played. `mute`, `video_quality` and `leave` go on both sockets.
 * Then, on the old socket:
 *   - `migrated`: `next` becomes `cur` at once, whether its media is up or
 *     not (then it carries on connecting: break-before-make for this
 *     peer), and is played from the next packet; the owner hears
 *     SFU_PEER_MIGRATED before that packet, and each subscription the new
 *     leg brings that it did not have. The old leg retires: nothing sent
 *     or played on it, its socket left to the server's close (4015),
 *     closed by us after RETIRE_MS, then freed. A close 4015 of the old
 *     socket without `migrated` before it counts as `migrated`. Drops of
 *     the new socket resume on the new node, with its last token.
 *   - `migrate_abort`: `next` retires (its socket closed by us) and `cur`
 *     carries on. So does a `next` that fails on its own before `migrated`
 *     (resume refused, grace over, transport failed): a move given up.
 * The old node closes its media as the move ends, and its DTLS close may
 * overtake `migrated`: a transport of `cur` failing during a move is held
 * until the move ends, and ends the peer only if the move is given up.
 * A `migrate` while a move is under way is ignored; so is one on the new
 * socket before it plays, or after our `leave`. A `migrated` with no new
 * leg (it failed) ends the peer with 4015: it cannot follow.
 *
 * Rejoin (docs/internals/relay.md). A close 4016 of the socket of `cur`
 * (not during a move) says the relay process serving us ended while its
 * room goes on: a new leg joins again at once with our token at the same
 * URL (sfud places it anew), offers the same tracks and plays as soon as
 * it has media; the old leg retires. Subscriptions are the peer's, so the
 * same tracks come back to the same ones. At most REJOIN_MAX times; then
 * 4016 ends the peer as any final code does. The relay's DTLS close may
 * overtake its 4016: a transport of `cur` that fails while its socket is
 * joined ends the peer only FAIL_HOLD_MS later (on the ICE timer, which a
 * failed transport does not use), unless the 4016 came meanwhile.
 *
 * Teardown is deferred: sfu_peer_destroy() may run inside any callback of
 * the peer (a libnice receive, a WebSocket message), so it only marks the
 * peer and its legs dead and closes their timers; each leg's last close
 * callback, which runs outside every other callback, frees its transport,
 * agent and memory, and the last leg's frees the peer. A leg that goes
 * while the peer lives (retired, dropped) goes the same way.
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
#include "sfu/media/rtcp.h"
#include "signaling/sdp.h"
#include "tools/client/peer.h"
#include "tools/client/subs.h"
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
#define RR_MS 5000              /* an RTCP receiver report about this often (0.5-1.5x, as
                                   browsers do for audio): the room takes a transport
                                   silent for 15 s for gone, and a listener sends no RTP */
#define MOVE_OPEN_MS 10000      /* a move's new leg: attempts to reach the new node */
#define RETIRE_MS 5000          /* a retiring leg's socket: the server's close awaited */
#define REJOIN_MAX 5            /* joins again after 4016 in one peer's life */
#define FAIL_HOLD_MS 2000       /* a failed transport of `cur` ends it after this ... */

typedef enum {
  SIG_JOINING,  /* socket opening, `join` sent, no welcome yet */
  SIG_JOINED,   /* welcome or resumed on the current socket */
  SIG_RESUMING, /* the socket dropped (or a move's first socket): reconnecting,
                   `resume` not answered */
  SIG_LEAVING   /* `leave` said, or asked for while resuming */
} sig_state_t;

typedef struct leg_s leg_t;

/* One connection to a node: a signaling socket and the media negotiated
 * on it. Owned by the peer (its `legs` list); `cur`, `next` or retiring. */
struct leg_s {
  sfu_peer_t *p;
  leg_t *link;                /* the peer's list of legs */
  char ws_url[256];           /* where its sockets go */
  sfu_ice_t *ice;             /* its own full agent */
  sfu_ice_opts_t ice_opts;
  sfu_transport_t *tp;
  sfu_ws_client_t *ws;        /* the current socket; NULL between attempts */
  uv_timer_t ping_timer;      /* heartbeat */
  uv_timer_t live_timer;      /* an answer the server owes (ping, resume);
                                 retiring: the socket's close */
  uv_timer_t resume_timer;    /* next resume attempt */
  uv_timer_t ice_timer;       /* an ICE restart, out of the callbacks */
  uv_timer_t watch_timer;     /* received bytes: a stalled path */
  int closing;                /* timers still to close before the free */
  int dead;                   /* destroyed: callbacks ignored */
  int moving;                 /* a move's new leg, not `resumed` yet */
  int retire_closed;          /* retiring: we closed its socket ourselves */
  char failed[128];           /* its transport failed during a move, or before a
                                 4016 may come: why */
  sig_state_t sig;
  sfu_sdp_t *local;           /* our last description (offer or answer) */
  uint64_t session_id, sdp_version;
  sfu_subs_leg_t lines;      /* the server's m-lines (tools/client/subs.h) */
  int media_up;
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
  uint64_t rr_next_ms;        /* the next receiver report; 0 = at once */
};

struct sfu_peer_s {
  uv_loop_t *loop;
  GMainContext *gctx;
  sfu_dtls_cert_t *cert;
  sfu_peer_cb_t cb;
  sfu_peer_opts_t o;          /* strings below are our copies */
  char ws_url[256], room[128], token[2048], address[256];
  char sid[72];
  int next_id;                /* request ids, on every socket */
  sfu_subs_t subs;            /* what the owner sees */
  leg_t *cur;                 /* the leg that plays; NULL once destroyed */
  leg_t *next;                /* a move's new leg */
  leg_t *legs;                /* every leg not yet freed */
  int nlegs;
  json_t *ice_servers;        /* the welcome's, for every leg's agent */
  int announced_up;           /* `connected` reported */
  int ended;                  /* `closed` reported */
  int dead;                   /* destroyed: callbacks ignored */
  uint64_t move_ms;           /* `migrate` of the last move */
  uint64_t last_play_ms;      /* the last RTP handed up */
  uint32_t rtcp_ssrc;         /* sender SSRC of our reports: our first track's, else random */
  uint64_t gap_from_ms;       /* a move's last packet of the old leg ... */
  int gap_pending;            /* ... until the first of the new one */
  uint8_t spare[SFU_PEER_MAX_PACKET + SFU_SRTP_TRAILER]; /* the second leg's copy */
  sfu_peer_stats_t stats;
};

static void send_reoffer(leg_t *L);
static void schedule_ice(leg_t *L, uint64_t ms);
static void leg_fail(leg_t *L, int code, const char *reason);
static void leg_retire(leg_t *L, int code, const char *reason);
static void leg_destroy(leg_t *L);
static int leg_send(leg_t *L, int rtcp, uint8_t *buf, size_t len, size_t cap);

/* A leg whose events count: the one that plays or a move's new one, of a
 * peer that has not ended. */
static int live(const leg_t *L) {
  const sfu_peer_t *p = L->p;
  return !L->dead && !p->dead && !p->ended && (L == p->cur || L == p->next);
}

/* --- signaling out --------------------------------------------------------- */

static int send_now(leg_t *L, const char *text) {
  return L->ws ? sfu_ws_client_send(L->ws, text, strlen(text)) : SFU_ECANCELED;
}

/* While the socket is being resumed, what we say waits for `resumed`. */
static int say(leg_t *L, const char *text) {
  if (L->sig != SIG_RESUMING) return send_now(L, text);
  size_t n = strlen(text);
  if (L->outbox.n >= OUTBOX_MAX || L->outbox_bytes + n > OUTBOX_BYTES) return SFU_EAGAIN;
  char *copy = strdup(text);
  if (!copy || sfu_vec_push(&L->outbox, copy) != 0) {
    free(copy);
    return SFU_ENOMEM;
  }
  L->outbox_bytes += n;
  return 0;
}

static void outbox_clear(leg_t *L, int send) {
  for (int i = 0; i < L->outbox.n; i++) {
    if (send) send_now(L, L->outbox.items[i]);
    free(L->outbox.items[i]);
  }
  L->outbox.n = 0;
  L->outbox_bytes = 0;
}

/* A message on one leg's socket (reference taken). */
static int leg_signal(leg_t *L, json_t *msg) {
  int rv = SFU_EPROTO;
  char *text = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
  if (text && !L->dead && !L->p->dead && !L->p->ended) rv = say(L, text);
  free(text);
  json_decref(msg);
  return rv;
}

/* What goes on both sockets while the room moves (docs/signaling.md). */
static int for_both(const char *type) {
  return type && (strcmp(type, "mute") == 0 || strcmp(type, "video_quality") == 0 ||
                  strcmp(type, "leave") == 0);
}

int sfu_peer_signal(sfu_peer_t *p, json_t *msg) {
  if (!p->cur) {
    json_decref(msg);
    return SFU_EPROTO;
  }
  if (p->next && for_both(json_string_value(json_object_get(msg, "type"))))
    leg_signal(p->next, json_incref(msg));
  return leg_signal(p->cur, msg);
}

/* join or resume: the first message of a socket, never kept. */
static void send_first(leg_t *L, json_t *msg) {
  char *text = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
  if (text) send_now(L, text);
  free(text);
  json_decref(msg);
}

/* The session is over: `closed`, once. A move's new leg goes with it. */
static void end(sfu_peer_t *p, int code, const char *reason) {
  if (p->ended) return;
  p->ended = 1;
  leg_t *L = p->cur;
  if (L) {
    uv_timer_stop(&L->live_timer);
    uv_timer_stop(&L->resume_timer);
    uv_timer_stop(&L->ice_timer);
    outbox_clear(L, 0);
  }
  if (p->next) leg_destroy(p->next);
  if (p->cb.closed) p->cb.closed(p->cb.arg, code, reason);
}

static void send_sdp(leg_t *L, sfu_sdp_t *s, const char *type, const char *idkey,
                     json_int_t id) {
  char *text = malloc(SDP_CAP);
  if (!text) return;
  s->session_id = L->session_id;
  s->session_version = ++L->sdp_version;
  snprintf(s->origin_user, sizeof(s->origin_user), "-");
  sfu_sdp_bundle_live(s);
  int n = sfu_sdp_write(s, text, SDP_CAP);
  if (n > 0)
    leg_signal(L, json_pack("{s:s, s:s%, s:I}", "type", type, "sdp", text, (size_t)n, idkey, id));
  free(text);
}

/* --- descriptions ------------------------------------------------------------ */

static sfu_sdp_t *sdp_alloc(int n) {
  sfu_sdp_t *s = sfu_sdp_new(n);
  if (s) s->nmedia = n;
  return s;
}

static void put_transport(leg_t *L, sfu_sdp_media_t *m, const char *setup) {
  sfu_transport_put_sdp(L->tp, m, setup);
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

/* A leg's first offer: the tracks we publish (the same on every leg), or
 * one recvonly audio m-line for a listener. */
static void send_offer(leg_t *L) {
  sfu_peer_t *p = L->p;
  int n = p->o.npubs > 0 ? p->o.npubs : 1;
  sfu_sdp_t *s = sdp_alloc(n);
  if (!s) return;
  for (int i = 0; i < n; i++) {
    sfu_sdp_media_t *m = &s->media[i];
    snprintf(m->proto, sizeof(m->proto), "UDP/TLS/RTP/SAVPF");
    snprintf(m->mid, sizeof(m->mid), "%d", i);
    m->port = 9;
    put_transport(L, m, "actpass");
    if (p->o.npubs > 0)
      put_pub(p, m, i);
    else
      put_listener(m);
  }
  L->offer_id = ++p->next_id;
  send_sdp(L, s, "offer", "id", L->offer_id);
  L->offer_out = 1;
  sfu_sdp_destroy(L->local);
  L->local = s;
}

/* A later offer (ICE restart, glare, resume): every m-line of the session
 * as our last description has it -- ours as offered, the server's as we
 * answered them, rejected ones rejected -- with the transport as it is
 * now (new ICE credentials after a restart) and setup:actpass. */
static void send_reoffer(leg_t *L) {
  sfu_sdp_t *s = L->local ? sdp_alloc(L->local->nmedia) : NULL;
  if (!s) return;
  for (int i = 0; i < s->nmedia; i++) {
    s->media[i] = L->local->media[i];
    if (s->media[i].port) put_transport(L, &s->media[i], "actpass");
  }
  L->offer_id = ++L->p->next_id;
  send_sdp(L, s, "offer", "id", L->offer_id);
  L->offer_out = 1;
  sfu_sdp_destroy(L->local);
  L->local = s;
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

/* One of the server's m-lines on leg L, new or changed: its subscription,
 * told to the owner when it changed on the leg that plays. */
static void note_sub(leg_t *L, const sfu_sdp_media_t *m, sfu_sdp_dir_t dir) {
  sfu_peer_t *p = L->p;
  sfu_subs_line_t line;
  memset(&line, 0, sizeof(line));
  snprintf(line.mid, sizeof(line.mid), "%s", m->mid);
  line.active = dir == SFU_DIR_RECVONLY && m->nssrcs > 0 && m->ncodecs > 0;
  line.sub = -1;
  if (line.active) {
    snprintf(line.kind, sizeof(line.kind), "%.7s", m->kind);
    snprintf(line.owner_sid, sizeof(line.owner_sid), "%s", m->msid_stream);
    snprintf(line.track_id, sizeof(line.track_id), "%s", m->msid_track);
    line.ssrc = m->ssrcs[0];
    line.pt = m->codecs[0].pt;
    snprintf(line.codec, sizeof(line.codec), "%s", m->codecs[0].name);
    line.clock = m->codecs[0].clock;
  }
  sfu_peer_sub_t *u = sfu_subs_note(&p->subs, &L->lines, &line, L == p->cur);
  if (u && p->cb.subscription) p->cb.subscription(p->cb.arg, u);
}

static int our_index(const leg_t *L, const char *mid) {
  for (int i = 0; L->local && i < L->local->nmedia; i++)
    if (strcmp(L->local->media[i].mid, mid) == 0 && strlen(mid) < 3 && mid[0] >= '0' &&
        mid[0] <= '9')
      return i;
  return -1;
}

static int apply_remote(leg_t *L, const sfu_sdp_t *s) {
  const sfu_sdp_media_t *first = NULL;
  const char *our_setup = NULL;
  for (int i = 0; i < s->nmedia && !first; i++)
    if (s->media[i].port) first = &s->media[i];
  if (!first) return SFU_EPROTO;
  int rv = sfu_transport_set_remote(L->tp, first->ice_ufrag, first->ice_pwd, first->fp_alg,
                                    first->fp, first->fp_len, first->setup, &our_setup);
  if (rv < 0) return rv;
  for (int i = 0; i < first->ncandidates; i++) sfu_transport_add_candidate(L->tp, first->candidates[i]);
  return 0;
}

/* Our offer was refused for glare, or is about to be: offer again once
 * the server's offer is answered. Bounded: GLARE_MAX in a row end the leg. */
static void glare(leg_t *L) {
  L->offer_out = 0;
  L->reoffer = 1;
  if (++L->glares > GLARE_MAX) {
    L->reoffer = 0;
    leg_fail(L, 0, "our offer kept meeting glare");
  }
}

static void on_server_offer(leg_t *L, const char *text, json_int_t offer_id) {
  sfu_peer_t *p = L->p;
  sfu_sdp_t off;
  const char *why = NULL;
  memset(&off, 0, sizeof(off));
  if (sfu_sdp_parse(text, strlen(text), &off, &why) != 0 || !L->local) {
    sfu_log(SFU_LOG_WARN, "peer", "%s: server offer refused: %s", p->sid, why ? why : "early");
    sfu_sdp_free(&off);
    return;
  }
  sfu_sdp_t *ans = sdp_alloc(off.nmedia);
  if (!ans) {
    sfu_sdp_free(&off);
    return;
  }
  if (L->offer_out) glare(L); /* the server refuses ours: offer again after this */
  if (!live(L)) {
    sfu_sdp_free(&off);
    sfu_sdp_destroy(ans);
    return;
  }
  /* Mid-restart, its ICE credentials are the old ones: the answer to our
   * re-offer brings the new. */
  if (!L->ice_restarting) apply_remote(L, &off);
  for (int i = 0; i < off.nmedia; i++) {
    const sfu_sdp_media_t *om = &off.media[i];
    sfu_sdp_media_t *am = &ans->media[i];
    int ours = our_index(L, om->mid);
    if (ours >= 0) {
      *am = L->local->media[ours];
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
      note_sub(L, om, am->dir);
    }
    am->port = om->port ? 9 : 0;
    if (am->port) put_transport(L, am, "active");
  }
  sfu_sdp_free(&off);
  p->stats.offers++;
  send_sdp(L, ans, "answer", "offer_id", offer_id);
  sfu_sdp_destroy(L->local);
  L->local = ans;
  if (L->reoffer && live(L)) {
    L->reoffer = 0;
    send_reoffer(L);
  }
}

static void on_answer(leg_t *L, const char *text) {
  sfu_sdp_t ans;
  const char *why = NULL;
  memset(&ans, 0, sizeof(ans));
  int rv = sfu_sdp_parse(text, strlen(text), &ans, &why);
  if (rv == 0) rv = apply_remote(L, &ans);
  sfu_sdp_free(&ans);
  if (rv != 0) {
    sfu_log(SFU_LOG_WARN, "peer", "%s: answer refused: %s", L->p->sid,
            why ? why : sfu_strerror(rv));
    leg_fail(L, 0, "the server's answer was refused");
    return;
  }
  L->offer_out = 0;
  L->glares = 0;
  L->p->stats.answers++;
  if (L->ice_wanted) schedule_ice(L, 0); /* asked for while this offer was out */
}

/* An `error` about our outstanding offer (its id): glare is ours to
 * handle, as is any error about an offer we have replaced. Returns 1 when
 * the error was handled here. */
static int on_offer_error(leg_t *L, json_t *m) {
  const char *code = json_string_value(json_object_get(m, "code"));
  json_t *id = json_object_get(m, "id");
  if (!code || strcmp(code, "glare") != 0 || !json_is_integer(id)) return 0;
  if (L->offer_out && json_integer_value(id) == L->offer_id) glare(L);
  return 1; /* about an older offer: already offered again */
}

/* --- transport --------------------------------------------------------------- */

/* RTP of the leg that plays is handed up; a move's new leg's is counted
 * until it plays; a retiring leg's is dropped. */
static void tp_rtp(void *arg, uint8_t *buf, size_t len) {
  leg_t *L = arg;
  sfu_peer_t *p = L->p;
  if (L->dead || p->dead || len < 12) return;
  if (L != p->cur) {
    if (L != p->next) return;
    p->stats.rtp_standby++;
    const sfu_subs_line_t *l = sfu_subs_line_by_ssrc(&L->lines, sfu_rd32(buf + 8));
    if (l && l->sub >= 0 && p->cb.standby_rtp)
      p->cb.standby_rtp(p->cb.arg, sfu_subs_get(&p->subs, l->sub), buf, len);
    return;
  }
  const sfu_subs_line_t *l = sfu_subs_line_by_ssrc(&L->lines, sfu_rd32(buf + 8));
  if (!l) {
    p->stats.rtp_unknown++;
    return;
  }
  uint64_t now = sfu_now_ms();
  if (p->gap_pending) { /* the first packet played after a move */
    p->gap_pending = 0;
    p->stats.migration_gap_ms = now - p->gap_from_ms;
    sfu_log(SFU_LOG_INFO, "peer", "%s: the new node's media plays: %llu ms after the old one's",
            p->sid, (unsigned long long)p->stats.migration_gap_ms);
  }
  p->last_play_ms = now;
  p->stats.rtp_received++;
  if (p->cb.rtp) p->cb.rtp(p->cb.arg, sfu_subs_get(&p->subs, l->sub), buf, len);
}

/* RTCP from a node: keyframe requests (PLI, FIR) for a track we send go
 * to the owner; the rest (reports, NACKs, REMB) is not acted on. */
static void tp_rtcp(void *arg, uint8_t *buf, size_t len) {
  leg_t *L = arg;
  sfu_peer_t *p = L->p;
  sfu_rtcp_iter_t it;
  sfu_rtcp_hdr_t h;
  uint32_t sender, media, ssrcs[4];
  uint8_t seqnrs[4];
  if (!live(L) || p->dead) return;
  sfu_rtcp_iter_init(&it, buf, len);
  while (sfu_rtcp_next(&it, &h) == 1) {
    sfu_rtcp_fb_kind_t kind = sfu_rtcp_fb_kind(&h);
    if (kind == SFU_RTCP_FB_PLI) {
      if (sfu_rtcp_parse_pli(&h, &sender, &media) != 0) continue;
    } else if (kind == SFU_RTCP_FB_FIR) {
      if (sfu_rtcp_parse_fir(&h, ssrcs, seqnrs, 4) <= 0) continue;
      media = ssrcs[0];
    } else {
      continue;
    }
    for (int i = 0; i < p->o.npubs; i++) {
      if (p->o.pubs[i].ssrc != media) continue;
      p->stats.keyframe_requests++;
      if (p->cb.keyframe_request) p->cb.keyframe_request(p->cb.arg, media);
      if (p->dead) return;
    }
  }
}

/* `connected` once: the first time the leg that plays has media. */
static void announce_up(sfu_peer_t *p) {
  if (p->announced_up || !p->cur || !p->cur->media_up) return;
  p->announced_up = 1;
  if (p->cb.connected) p->cb.connected(p->cb.arg);
}

static void tp_connected(void *arg) {
  leg_t *L = arg;
  sfu_peer_t *p = L->p;
  if (!live(L)) return;
  L->media_up = 1;
  if (L != p->cur || p->announced_up)
    sfu_log(SFU_LOG_INFO, "peer", "%s: the new node's leg has media, %llu ms after `migrate`",
            p->sid, (unsigned long long)(sfu_now_ms() - p->move_ms));
  if (L == p->cur) announce_up(p);
}

/* A transport that fails ends its leg; but the old node closes its
 * media (DTLS close_notify) as soon as the move is over, which may come
 * here before `migrated` does on the socket: during a move the leg that
 * plays waits for the end of the move, and fails only if it is aborted. */
/* A transport failure held (tp_failed) that no 4016 followed. */
static void on_fail_held(uv_timer_t *h) {
  leg_t *L = h->data;
  if (live(L) && L == L->p->cur) leg_fail(L, 0, L->failed);
}

static void tp_failed(void *arg, const char *why) {
  leg_t *L = arg;
  sfu_peer_t *p = L->p;
  if (!live(L)) return;
  L->media_up = 0;
  if (L == p->cur && p->next) {
    snprintf(L->failed, sizeof(L->failed), "%s", why ? why : "transport failed");
    sfu_log(SFU_LOG_INFO, "peer", "%s: the old node's media ended (%s): the move decides",
            p->sid, L->failed);
    return;
  }
  if (L == p->cur && L->ws && L->sig == SIG_JOINED) { /* a 4016 may be on its way (Rejoin) */
    snprintf(L->failed, sizeof(L->failed), "%s", why ? why : "transport failed");
    uv_timer_start(&L->ice_timer, on_fail_held, FAIL_HOLD_MS, 0);
    return;
  }
  leg_fail(L, 0, why);
}

/* --- ICE restart ------------------------------------------------------------- */

static void on_live_timeout(uv_timer_t *h);

/* Sends a ping that must be answered within `ms` (live_timer; a shorter
 * deadline replaces a running one); any message from the server counts. */
static void ping(leg_t *L, uint64_t ms) {
  if (L->sig != SIG_JOINED) return;
  leg_signal(L, json_pack("{s:s, s:i}", "type", "ping", "id", ++L->p->next_id));
  if (!uv_is_active((uv_handle_t *)&L->live_timer) || ms < LIVE_PING_MS)
    uv_timer_start(&L->live_timer, on_live_timeout, ms, 0);
}

static void socket_gone(leg_t *L, int code, const char *reason);

/* ICE is to restart (from the loop): the path is lost (`path`), or a
 * restart was asked for. A lost path may have taken the signaling socket
 * with it, silently (a changed address): the session is first taken over
 * on a fresh socket -- the server replaces the old one -- and ICE restarts
 * once it is `resumed`. A restart that failed again within the same outage,
 * or a node without resume, gets a ping instead, which a dead socket
 * leaves unanswered (LIVE_PROBE_MS): then the socket is let go as a drop. */
static void ice_lost(leg_t *L, const char *why, int path) {
  if (!live(L) || !L->tp) return;
  int first = !L->ice_lost_ms;
  if (first) {
    L->ice_lost_ms = sfu_now_ms();
    sfu_log(SFU_LOG_WARN, "peer", "%s: restarting ICE%s: %s", L->p->sid,
            L == L->p->cur ? "" : " (the new node's leg)", why);
  }
  L->ice_wanted = 1;
  if (path && first && L->sig == SIG_JOINED && L->resume_token[0] && L->grace_ms) {
    socket_gone(L, 1006, "taken over on a fresh socket: the media path broke");
    return;
  }
  if (path) ping(L, LIVE_PROBE_MS);
  schedule_ice(L, 0);
}

static void on_ice_timer(uv_timer_t *h) {
  leg_t *L = h->data;
  if (!live(L) || !L->ice_wanted || !L->tp) return;
  if (L->sig != SIG_JOINED || L->offer_out) return; /* after `resumed`, or the answer */
  if (L->ice_tries >= ICE_TRIES) {
    leg_fail(L, 0, "ICE failed: no path after restarts");
    return;
  }
  L->ice_tries++;
  int rv = sfu_transport_restart_ice(L->tp);
  if (rv != 0) { /* no address to gather on (yet): try again shortly */
    sfu_log(SFU_LOG_WARN, "peer", "%s: ICE restart %d: %s", L->p->sid, L->ice_tries,
            sfu_strerror(rv));
    schedule_ice(L, ICE_RETRY_MS);
    return;
  }
  L->ice_wanted = 0;
  L->ice_restarting = 1;
  L->send_fail_ms = 0;
  L->p->stats.ice_restarts++;
  sfu_log(SFU_LOG_INFO, "peer", "%s: ICE restart %d: re-offering with new credentials",
          L->p->sid, L->ice_tries);
  send_reoffer(L);
}

static void schedule_ice(leg_t *L, uint64_t ms) {
  if (live(L)) uv_timer_start(&L->ice_timer, on_ice_timer, ms, 0);
}

/* The transport's ICE stream changed state (sfu_transport_watch_ice()). */
static void tp_ice(void *arg, int connected) {
  leg_t *L = arg;
  if (!live(L)) return;
  if (!connected) {
    ice_lost(L, "ICE failed (no consent)", 1);
    return;
  }
  if (L->ice_lost_ms) {
    L->p->stats.ice_gap_ms = sfu_now_ms() - L->ice_lost_ms;
    sfu_log(SFU_LOG_WARN, "peer", "%s: ICE connected again after %llu ms (%d restarts)",
            L->p->sid, (unsigned long long)L->p->stats.ice_gap_ms, L->ice_tries);
  }
  L->ice_lost_ms = 0;
  L->ice_restarting = 0;
  L->ice_tries = 0;
  L->send_fail_ms = 0;
}

/* A send failed for something else than a full buffer: once they have
 * failed for SEND_FAIL_MS in a row, the path is lost (the local address
 * went away: ENETUNREACH), which libnice's consent would tell only 10 s
 * later. */
static void send_failed(leg_t *L, int rv) {
  uint64_t now = sfu_now_ms();
  if (rv != SFU_EPROTO || L->ice_lost_ms) return;
  if (!L->send_fail_ms)
    L->send_fail_ms = now;
  else if (now - L->send_fail_ms >= SEND_FAIL_MS)
    ice_lost(L, "sends failing", 1);
}

/* An empty RTCP receiver report (RFC 3550 6.4.2: no report blocks), as a
 * receiving browser sends one every few seconds: it keeps the transport
 * alive at the room for a participant that publishes nothing. */
static void send_rr(leg_t *L, uint64_t now) {
  uint8_t b[8 + SFU_SRTP_TRAILER];
  uint32_t ssrc = L->p->rtcp_ssrc;
  b[0] = 0x80, b[1] = 201, b[2] = 0, b[3] = 1; /* V=2, RC=0, PT=RR, length 1 word */
  b[4] = (uint8_t)(ssrc >> 24), b[5] = (uint8_t)(ssrc >> 16), b[6] = (uint8_t)(ssrc >> 8);
  b[7] = (uint8_t)ssrc;
  leg_send(L, 1, b, 8, sizeof(b));
  L->rr_next_ms = now + RR_MS / 2 + sfu_random_u32() % RR_MS;
}

/* Every WATCH_MS: what the transport received. Once media flowed (a
 * tick of at least FLOWING_BPS within FLOW_RECENT_MS of the last byte),
 * STALL_MS with nothing at all -- the room sends RTCP reports every second
 * besides the media -- is a lost path: a receiver notices it so, long
 * before consent does. A late tick (our own loop was busy) starts the
 * watch again rather than blaming the path. */
static void on_watch(uv_timer_t *h) {
  leg_t *L = h->data;
  uint64_t now = sfu_now_ms(), dt = now - L->watch_tick_ms;
  int late = L->watch_tick_ms && dt > 2 * WATCH_MS;
  L->watch_tick_ms = now;
  if (!live(L) || !L->tp || !L->media_up) return;
  if (now >= L->rr_next_ms) send_rr(L, now);
  uint64_t bytes = sfu_transport_stats(L->tp)->rx_bytes;
  if (late || !L->watch_change_ms || bytes != L->watch_bytes) {
    if (!late && L->watch_change_ms && dt && (bytes - L->watch_bytes) * 1000 / dt >= FLOWING_BPS)
      L->watch_flow_ms = now;
    L->watch_bytes = bytes;
    L->watch_change_ms = now;
    return;
  }
  if (L->watch_flow_ms && L->watch_change_ms - L->watch_flow_ms <= FLOW_RECENT_MS &&
      now - L->watch_change_ms >= STALL_MS && !L->ice_lost_ms) {
    L->watch_flow_ms = 0; /* once per stall */
    ice_lost(L, "nothing received", 1);
  }
}

void sfu_peer_restart_ice(sfu_peer_t *p) {
  if (p->cur) ice_lost(p->cur, "asked for", 0);
}

/* --- moving to another node -------------------------------------------------- */

static int leg_create(sfu_peer_t *p, leg_t **out, const char *url);
static void on_resume_timer(uv_timer_t *h);

/* `migrate` on the socket of the leg that plays: a second leg to the new
 * node, which resumes the session there with the message's token. */
static void start_move(sfu_peer_t *p, json_t *m) {
  const char *room = json_string_value(json_object_get(m, "room"));
  const char *url = json_string_value(json_object_get(m, "ws_url"));
  const char *tok = json_string_value(json_object_get(m, "resume_token"));
  leg_t *L;
  if (p->next) return; /* a move under way: not sent twice, ignored */
  if (!url || !tok || !tok[0] || strlen(tok) >= sizeof(L->resume_token) ||
      (room && strlen(room) >= sizeof(L->room_id))) {
    sfu_log(SFU_LOG_WARN, "peer", "%s: `migrate` without a usable ws_url and resume_token: "
            "ignored", p->sid);
    return;
  }
  int rv = leg_create(p, &L, url);
  if (rv != 0) {
    sfu_log(SFU_LOG_WARN, "peer", "%s: cannot follow the move to %s: %s", p->sid, url,
            sfu_strerror(rv));
    return;
  }
  p->next = L;
  p->move_ms = sfu_now_ms();
  snprintf(L->room_id, sizeof(L->room_id), "%s", room ? room : p->cur->room_id);
  snprintf(L->resume_token, sizeof(L->resume_token), "%s", tok);
  L->grace_ms = MOVE_OPEN_MS;
  L->moving = 1;
  L->sig = SIG_RESUMING;
  L->dropped_ms = p->move_ms + p->o.move_delay_ms; /* the attempts' grace from there */
  L->drop_code = 1006;
  snprintf(L->drop_reason, sizeof(L->drop_reason), "the new node");
  L->backoff_ms = RESUME_FIRST_MS;
  sfu_log(SFU_LOG_WARN, "peer", "%s: the room moves to %s: connecting there%s", p->sid, url,
          p->o.move_delay_ms ? " after a delay" : "");
  uv_timer_start(&L->resume_timer, on_resume_timer, p->o.move_delay_ms, 0);
  if (p->cb.migration) p->cb.migration(p->cb.arg, SFU_PEER_MIGRATING, url);
}

static int announce_sub(void *arg, sfu_peer_sub_t *sub) {
  sfu_peer_t *p = arg;
  if (p->cb.subscription) p->cb.subscription(p->cb.arg, sub);
  return p->dead || p->ended;
}

/* `migrated` (or the old socket's 4015): the new leg plays from now on,
 * up or not; the old one retires. */
static void moved(sfu_peer_t *p) {
  leg_t *old = p->cur, *L = p->next;
  uint64_t now = sfu_now_ms();
  p->cur = L;
  p->next = NULL;
  p->stats.migrations++;
  p->stats.migrate_ms = now - p->move_ms;
  p->gap_from_ms = p->last_play_ms;
  p->gap_pending = p->last_play_ms != 0;
  sfu_log(SFU_LOG_WARN, "peer", "%s: migrated %llu ms after `migrate`: the new node's leg plays%s",
          p->sid, (unsigned long long)p->stats.migrate_ms,
          L->media_up ? "" : " (still connecting)");
  leg_retire(old, 0, NULL);
  if (p->cb.migration) p->cb.migration(p->cb.arg, SFU_PEER_MIGRATED, NULL);
  if (p->dead || p->ended) return;
  sfu_subs_play(&p->subs, &L->lines, announce_sub, p);
  if (p->dead || p->ended) return;
  announce_up(p);
}

/* The move is given up (`migrate_abort`, or the new leg failed): the new
 * leg retires, the old one carries on. */
static void drop_move(sfu_peer_t *p, const char *why) {
  leg_t *L = p->next;
  p->next = NULL;
  p->stats.migrations_aborted++;
  sfu_log(SFU_LOG_WARN, "peer", "%s: the move is given up: %s", p->sid, why);
  leg_retire(L, 1000, "migration aborted");
  if (p->cb.migration) p->cb.migration(p->cb.arg, SFU_PEER_MIGRATE_ABORTED, why);
  if (!p->dead && p->cur && p->cur->failed[0]) end(p, 0, p->cur->failed);
}

/* A leg cannot go on: the one that plays ends the peer; a move's new one
 * ends the move; a retiring one just goes. */
static void leg_fail(leg_t *L, int code, const char *reason) {
  sfu_peer_t *p = L->p;
  char why[200];
  if (L == p->cur) {
    end(p, code, reason);
  } else if (L == p->next) {
    snprintf(why, sizeof(why), "the new node's leg failed: %d %s", code, reason);
    drop_move(p, why);
  } else {
    leg_destroy(L);
  }
}

/* --- WebSocket ----------------------------------------------------------------- */

static void ws_open(void *arg) {
  leg_t *L = arg;
  sfu_peer_t *p = L->p;
  if (!live(L)) return;
  if (L->sig == SIG_RESUMING)
    send_first(L, json_pack("{s:s, s:i, s:i, s:s, s:s}", "type", "resume", "id", ++p->next_id,
                            "v", 1, "room", L->room_id[0] ? L->room_id : p->room,
                            "resume_token", L->resume_token));
  else
    send_first(L, json_pack("{s:s, s:i, s:i, s:s, s:s}", "type", "join", "id", ++p->next_id,
                            "v", 1, "room", p->room, "token", p->token));
}

/* TURN servers (the welcome's, docs/signaling.md), for the ICE stream the
 * leg's transport opens next. URLs the agent cannot use (turns:) are
 * skipped. */
static void add_relays(leg_t *L, json_t *servers) {
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
      int rv = url ? sfu_nice_add_relay(L->ice, url, user, cred) : SFU_EINVAL;
      if (rv != 0)
        sfu_log(SFU_LOG_DEBUG, "peer", "TURN server %s %s", url ? url : "(not a string)",
                rv == 1 ? "skipped: not supported by libnice" : sfu_strerror(rv));
    }
    json_decref(one);
  }
}

/* welcome and resumed: the next resume token and the grace. */
static void take_resume(leg_t *L, json_t *m) {
  const char *tok = json_string_value(json_object_get(m, "resume_token"));
  json_int_t grace = json_integer_value(json_object_get(m, "resume_grace_s"));
  snprintf(L->resume_token, sizeof(L->resume_token), "%s", tok ? tok : "");
  L->grace_ms = tok && grace > 0 ? (uint64_t)grace * 1000 : 0;
}

/* The leg's media: its transport (TURN servers first), then our offer. */
static void leg_media(leg_t *L, json_t *servers) {
  add_relays(L, servers);
  sfu_transport_cb_t tcb = {L, tp_rtp, tp_rtcp, tp_connected, tp_failed};
  int rv = sfu_transport_create(&L->tp, L->p->loop, L->ice, L->p->cert, &tcb);
  if (rv != 0) {
    L->tp = NULL;
    leg_fail(L, 0, "cannot open a transport");
    return;
  }
  sfu_transport_watch_ice(L->tp, tp_ice);
  send_offer(L);
}

static void on_welcome(leg_t *L, json_t *m) {
  sfu_peer_t *p = L->p;
  const char *sid = json_string_value(json_object_get(json_object_get(m, "participant"), "sid"));
  const char *rid = json_string_value(json_object_get(json_object_get(m, "room"), "room_id"));
  snprintf(p->sid, sizeof(p->sid), "%s", sid ? sid : "?");
  snprintf(L->room_id, sizeof(L->room_id), "%s", rid ? rid : "");
  take_resume(L, m);
  L->sig = SIG_JOINED;
  if (p->cb.joined) p->cb.joined(p->cb.arg, p->sid);
  if (!live(L)) return;
  json_t *servers = json_object_get(m, "ice_servers");
  if (json_is_array(servers)) {
    json_decref(p->ice_servers); /* (a rejoin's welcome has fresh ones) */
    p->ice_servers = json_incref(servers);
  }
  leg_media(L, p->ice_servers);
}

/* A move's new leg is in: the new node has our session (same sid). Its
 * media now: the same tracks, offered there. */
static void moved_in(leg_t *L, json_t *m) {
  sfu_peer_t *p = L->p;
  const char *sid = json_string_value(json_object_get(json_object_get(m, "participant"), "sid"));
  json_t *servers = json_object_get(m, "ice_servers");
  L->moving = 0;
  if (sid && strcmp(sid, p->sid) != 0)
    sfu_log(SFU_LOG_WARN, "peer", "%s: the new node resumed us as %s", p->sid, sid);
  sfu_log(SFU_LOG_INFO, "peer", "%s: resumed on the new node after %llu ms (%d attempts)",
          p->sid, (unsigned long long)(sfu_now_ms() - p->move_ms), L->attempts);
  leg_media(L, json_is_array(servers) ? servers : p->ice_servers);
  if (live(L)) outbox_clear(L, 1); /* mute, video_quality said meanwhile */
}

/* The session is back on a new socket: what waited goes out, an offer
 * that was out goes again, a restart that waited for the socket starts. */
static void on_resumed(leg_t *L, json_t *m) {
  sfu_peer_t *p = L->p;
  take_resume(L, m);
  L->sig = SIG_JOINED;
  if (L->moving) {
    moved_in(L, m);
    return;
  }
  p->stats.resumes++;
  p->stats.resume_gap_ms = sfu_now_ms() - L->dropped_ms;
  sfu_log(SFU_LOG_WARN, "peer", "%s: signaling resumed after %llu ms (%d attempts)", p->sid,
          (unsigned long long)p->stats.resume_gap_ms, L->attempts);
  outbox_clear(L, 1);
  if (L->offer_out && L->local) { /* its answer, if any, was lost with the socket */
    L->offer_id = ++p->next_id;
    send_sdp(L, L->local, "offer", "id", L->offer_id);
  }
  if (L->ice_wanted) schedule_ice(L, 0);
}

static void ws_message(void *arg, const char *text, size_t len) {
  leg_t *L = arg;
  sfu_peer_t *p = L->p;
  if (!live(L)) return; /* a retiring leg's socket: only its close is awaited */
  uv_timer_stop(&L->live_timer); /* the server answers */
  json_t *m = json_loadb(text, len, 0, NULL);
  const char *type = json_string_value(json_object_get(m, "type"));
  const char *sdp = json_string_value(json_object_get(m, "sdp"));
  if (!type) {
    json_decref(m);
    return;
  }
  if (strcmp(type, "welcome") == 0 && L->sig == SIG_JOINING) {
    on_welcome(L, m);
  } else if (strcmp(type, "resumed") == 0 && L->sig == SIG_RESUMING) {
    on_resumed(L, m);
  } else if (strcmp(type, "offer") == 0 && sdp && L->tp) {
    on_server_offer(L, sdp, json_integer_value(json_object_get(m, "offer_id")));
  } else if (strcmp(type, "answer") == 0 && sdp && L->tp) {
    on_answer(L, sdp);
  } else if (strcmp(type, "candidate") == 0) {
    const char *c = json_string_value(json_object_get(json_object_get(m, "candidate"), "candidate"));
    if (c && c[0] && L->tp) sfu_transport_add_candidate(L->tp, c);
  } else if (strcmp(type, "error") == 0 && on_offer_error(L, m)) {
    /* glare on our offer: handled */
  } else if (strcmp(type, "migrate") == 0 && L == p->cur && L->sig == SIG_JOINED) {
    start_move(p, m);
  } else if (strcmp(type, "migrated") == 0 && L == p->cur) {
    if (p->next)
      moved(p);
    else
      end(p, 4015, "room migrated, and we have no leg to the new node");
  } else if (strcmp(type, "migrate_abort") == 0 && L == p->cur) {
    const char *why = json_string_value(json_object_get(m, "reason"));
    char reason[200];
    snprintf(reason, sizeof(reason), "migrate_abort: %s", why ? why : "(no reason)");
    if (p->next) drop_move(p, reason);
  } else {
    if (strcmp(type, "error") == 0) p->stats.errors++;
    /* the owner hears the node that plays (and a new node's errors) */
    if (p->cb.message && (L == p->cur || strcmp(type, "error") == 0)) p->cb.message(p->cb.arg, m);
  }
  json_decref(m);
}

/* --- resume ------------------------------------------------------------------ */

static void ws_closed(void *arg, int code, const char *reason);

/* A new socket to the leg's signaling URL; `join` or `resume` goes when it
 * opens. */
static int open_socket(leg_t *L) {
  sfu_ws_client_cb_t wcb = {L, ws_open, ws_message, ws_closed};
  int rv = sfu_ws_client_connect(&L->ws, L->p->loop, L->ws_url, &wcb);
  if (rv != 0) L->ws = NULL;
  return rv;
}

/* Close codes after which the session may still be there: no close frame
 * (1006), or the server going away or restarting (1001, 1011, 1012).
 * Every other code, 4000-4015, 1008 and 1013 among them, is final. */
static int resumable(int code) {
  return code == 1006 || code == 1001 || code == 1011 || code == 1012;
}

/* The session is not coming back on this leg: it fails with the server's
 * final code (4014: no such session), or, when no server refused it (the
 * grace is over), with the drop's code and why it was not resumed. */
static void give_up(leg_t *L, int code, const char *why) {
  char reason[200];
  const char *sid = L->p->sid;
  if (code)
    sfu_log(SFU_LOG_WARN, "peer", "%s: resume refused (%d %s) after %d attempts", sid, code,
            why, L->attempts);
  else
    sfu_log(SFU_LOG_WARN, "peer", "%s: could not resume after %d attempts: %s", sid,
            L->attempts, why);
  if (code) {
    leg_fail(L, code, why);
  } else {
    snprintf(reason, sizeof(reason), "%s (not resumed: %s)", L->drop_reason, why);
    leg_fail(L, L->drop_code, reason);
  }
}

static void on_resume_timer(uv_timer_t *h) {
  leg_t *L = h->data;
  if (!live(L)) return;
  if (L->sig == SIG_LEAVING) { /* left while the socket was down */
    leg_fail(L, 1000, "left");
    return;
  }
  if (L->sig != SIG_RESUMING || L->ws) return;
  uint64_t now = sfu_now_ms();
  if (now >= L->dropped_ms && now - L->dropped_ms >= L->grace_ms) {
    give_up(L, 0, "the grace is over");
    return;
  }
  L->attempts++;
  if (!L->moving) L->p->stats.resume_attempts++;
  sfu_log(SFU_LOG_INFO, "peer", "%s: %s attempt %d", L->p->sid,
          L->moving ? "new node" : "resume", L->attempts);
  int rv = open_socket(L);
  if (rv != 0) {
    give_up(L, 0, sfu_strerror(rv));
    return;
  }
  uv_timer_start(&L->live_timer, on_live_timeout, LIVE_RESUME_MS, 0);
}

/* The next attempt, after the backoff: between half and all of it. */
static void retry_later(leg_t *L) {
  unsigned half = L->backoff_ms / 2;
  uint64_t delay = half + sfu_random_u32() % (half + 1);
  L->backoff_ms = L->backoff_ms * 2 > RESUME_MAX_MS ? RESUME_MAX_MS : L->backoff_ms * 2;
  uv_timer_start(&L->resume_timer, on_resume_timer, delay, 0);
}

/* 4016 on `cur` (see Rejoin above). */
static void rejoin(sfu_peer_t *p, leg_t *L, const char *reason) {
  leg_t *N = NULL;
  if (p->stats.rejoins >= REJOIN_MAX || leg_create(p, &N, L->ws_url) != 0) {
    leg_fail(L, 4016, reason);
    return;
  }
  p->stats.rejoins++;
  sfu_log(SFU_LOG_WARN, "peer", "%s: %s: joining again", p->sid, reason);
  leg_retire(L, 0, NULL); /* (its socket is gone: it goes now) */
  p->cur = N;
  N->sig = SIG_JOINING;
  if (open_socket(N) != 0) end(p, 4016, reason);
}

/* The leg's current socket is gone: closed (`code`, `reason`) or given up on. */
static void socket_gone(leg_t *L, int code, const char *reason) {
  sfu_peer_t *p = L->p;
  uv_timer_stop(&L->live_timer);
  sfu_ws_client_destroy(L->ws); /* dropped without a close frame if still open */
  L->ws = NULL;
  if (code == 4016 && L == p->cur && !p->next && L->sig == SIG_JOINED) {
    rejoin(p, L, reason);
    return;
  }
  if (code == 4015 && L == p->cur && p->next) { /* room migrated: `migrated` it is */
    moved(p);
    return; /* L retires, and with its socket gone it goes */
  }
  if (L->sig == SIG_JOINED && L->resume_token[0] && L->grace_ms && resumable(code)) {
    L->sig = SIG_RESUMING;
    L->dropped_ms = sfu_now_ms();
    L->drop_code = code;
    snprintf(L->drop_reason, sizeof(L->drop_reason), "%s", reason);
    L->attempts = 0;
    L->backoff_ms = RESUME_FIRST_MS;
    sfu_log(SFU_LOG_WARN, "peer", "%s: signaling%s dropped (%d %s): resuming for up to %llu s",
            p->sid, L == p->cur ? "" : " to the new node", code, reason,
            (unsigned long long)(L->grace_ms / 1000));
    uv_timer_start(&L->resume_timer, on_resume_timer, 0, 0);
  } else if (L->sig == SIG_RESUMING) {
    if (!resumable(code))
      give_up(L, code, reason); /* 4014: no such session; or another final code */
    else
      retry_later(L);
  } else {
    leg_fail(L, code, reason);
  }
}

static void ws_closed(void *arg, int code, const char *reason) {
  leg_t *L = arg;
  if (L->dead || L->p->dead) return;
  if (L != L->p->cur && L != L->p->next) { /* retiring: its socket closed */
    leg_destroy(L);
    return;
  }
  if (L->p->ended) return;
  socket_gone(L, code, reason);
}

/* A ping or a `resume` got no answer in time: the socket is dead though
 * nothing closed it (a TCP connection whose path is gone). */
static void on_live_timeout(uv_timer_t *h) {
  leg_t *L = h->data;
  if (!live(L) || !L->ws) return;
  sfu_log(SFU_LOG_WARN, "peer", "%s: no answer from the server: dropping the socket", L->p->sid);
  socket_gone(L, 1006, "no answer from the server");
}

static void on_ping(uv_timer_t *h) {
  leg_t *L = h->data;
  if (live(L)) ping(L, LIVE_PING_MS);
}

/* --- legs ---------------------------------------------------------------------- */

/* A retiring leg's socket did not close in time: we close it (once), then
 * give up on it. */
static void on_retire_timer(uv_timer_t *h) {
  leg_t *L = h->data;
  if (L->dead) return;
  if (L->ws && !L->retire_closed) {
    L->retire_closed = 1;
    sfu_ws_client_close(L->ws, 1000, "migrated");
    uv_timer_start(&L->live_timer, on_retire_timer, SFU_WS_CLIENT_TIMEOUT_MS + 1000, 0);
    return;
  }
  leg_destroy(L);
}

/* A leg of `p` to `url`: its own agent, its timers running, linked into
 * the peer's list; neither `cur` nor `next` yet (the caller says which). */
static int leg_create(sfu_peer_t *p, leg_t **out, const char *url) {
  leg_t *L = calloc(1, sizeof(*L));
  *out = NULL;
  if (!L) return SFU_ENOMEM;
  if (strlen(url) >= sizeof(L->ws_url)) {
    free(L);
    return SFU_E2BIG;
  }
  L->p = p;
  snprintf(L->ws_url, sizeof(L->ws_url), "%s", url);
  sfu_random_bytes(&L->session_id, sizeof(L->session_id));
  L->session_id = (L->session_id & 0x3fffffffffffffffULL) | 1;
  L->ice_opts.addresses = p->address;
  L->ice_opts.full = 1;
  L->ice_opts.tcp = p->o.ice_tcp;
  int rv = sfu_nice_create(&L->ice, p->loop, p->gctx, &L->ice_opts);
  if (rv != 0) {
    free(L);
    return rv;
  }
  if (p->o.relay_only) sfu_nice_relay_only(L->ice, 1);
  uv_timer_t *timers[] = {&L->ping_timer, &L->live_timer, &L->resume_timer, &L->ice_timer,
                          &L->watch_timer};
  for (size_t i = 0; i < sizeof(timers) / sizeof(timers[0]); i++) {
    uv_timer_init(p->loop, timers[i]);
    timers[i]->data = L;
  }
  uv_timer_start(&L->ping_timer, on_ping, PING_MS, PING_MS);
  uv_timer_start(&L->watch_timer, on_watch, WATCH_MS, WATCH_MS);
  L->link = p->legs;
  p->legs = L;
  p->nlegs++;
  *out = L;
  return 0;
}

/* L is no longer `cur` or `next`: nothing is sent or played on it; its
 * socket, if open, is closed with `code` (by the server when 0: RETIRE_MS
 * at most), then the leg goes. */
static void leg_retire(leg_t *L, int code, const char *reason) {
  sfu_peer_t *p = L->p;
  if (p->cur == L) p->cur = NULL;
  if (p->next == L) p->next = NULL;
  sfu_subs_release(&p->subs, &L->lines);
  uv_timer_stop(&L->ping_timer);
  uv_timer_stop(&L->resume_timer);
  uv_timer_stop(&L->ice_timer);
  uv_timer_stop(&L->watch_timer);
  outbox_clear(L, 0);
  if (!L->ws) {
    leg_destroy(L);
    return;
  }
  if (code) {
    L->retire_closed = 1;
    sfu_ws_client_close(L->ws, code, reason);
  }
  uv_timer_start(&L->live_timer, on_retire_timer,
                 code ? SFU_WS_CLIENT_TIMEOUT_MS + 1000 : RETIRE_MS, 0);
}

static void peer_free(sfu_peer_t *p) {
  sfu_subs_free(&p->subs);
  json_decref(p->ice_servers);
  free(p);
}

/* A leg's timer has closed: the last one frees the leg, the last leg the
 * peer once destroyed. */
static void on_leg_closed(uv_handle_t *h) {
  leg_t *L = h->data;
  if (--L->closing > 0) return;
  sfu_peer_t *p = L->p;
  sfu_transport_destroy(L->tp);
  sfu_ice_destroy(L->ice);
  sfu_sdp_destroy(L->local);
  outbox_clear(L, 0);
  sfu_vec_free(&L->outbox);
  sfu_vec_free(&L->lines.v);
  for (leg_t **pp = &p->legs; *pp; pp = &(*pp)->link)
    if (*pp == L) {
      *pp = L->link;
      break;
    }
  free(L);
  if (--p->nlegs == 0 && p->dead) peer_free(p);
}

/* Ends the leg now: no callback of it follows; the memory goes once its
 * timers have closed. */
static void leg_destroy(leg_t *L) {
  sfu_peer_t *p = L->p;
  if (L->dead) return;
  L->dead = 1;
  if (p->cur == L) p->cur = NULL;
  if (p->next == L) p->next = NULL;
  sfu_subs_release(&p->subs, &L->lines);
  sfu_ws_client_destroy(L->ws);
  L->ws = NULL;
  uv_timer_t *timers[] = {&L->ping_timer, &L->live_timer, &L->resume_timer, &L->ice_timer,
                          &L->watch_timer};
  int n = (int)(sizeof(timers) / sizeof(timers[0]));
  L->closing = n;
  for (int i = 0; i < n; i++) uv_close((uv_handle_t *)timers[i], on_leg_closed);
}

/* --- the peer ------------------------------------------------------------------ */

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
  p->gctx = ctx;
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
  p->rtcp_ssrc = o->npubs > 0 ? o->pubs[0].ssrc : (sfu_random_u32() | 1);
  int rv = leg_create(p, &p->cur, p->ws_url);
  if (rv != 0) {
    free(p);
    return rv;
  }
  p->cur->sig = SIG_JOINING;
  rv = open_socket(p->cur);
  if (rv != 0) {
    sfu_peer_destroy(p);
    return rv;
  }
  *out = p;
  return 0;
}

/* One leg's send; a failing one may mean its path is lost. */
static int leg_send(leg_t *L, int rtcp, uint8_t *buf, size_t len, size_t cap) {
  int rv = rtcp ? sfu_transport_send_rtcp(L->tp, buf, len, cap)
                : sfu_transport_send_rtp(L->tp, buf, len, cap);
  if (rv == 0) {
    L->send_fail_ms = 0;
  } else {
    if (!rtcp) L->p->stats.send_errors++;
    send_failed(L, rv);
  }
  return rv;
}

/* On every leg with media up: the one that plays, and a move's new one (a
 * copy: protecting works in place). */
static int send_media(sfu_peer_t *p, int rtcp, uint8_t *buf, size_t len, size_t cap) {
  leg_t *a = p->cur && p->cur->media_up ? p->cur : NULL;
  leg_t *b = p->next && p->next->media_up ? p->next : NULL;
  int rv_a = SFU_EAGAIN, rv_b = SFU_EAGAIN;
  if (p->dead || p->ended || (!a && !b)) return SFU_EAGAIN;
  if (b && !a) {
    rv_b = leg_send(b, rtcp, buf, len, cap);
  } else if (b && len <= SFU_PEER_MAX_PACKET) {
    memcpy(p->spare, buf, len);
    rv_b = leg_send(b, rtcp, p->spare, len, sizeof(p->spare));
  } else if (b && !rtcp) {
    p->stats.send_errors++; /* too large to copy: the old leg only */
  }
  if (a) rv_a = leg_send(a, rtcp, buf, len, cap);
  if (rv_a == 0 || rv_b == 0) {
    if (!rtcp) p->stats.rtp_sent++;
    return 0;
  }
  return a ? rv_a : rv_b;
}

int sfu_peer_send_rtp(sfu_peer_t *p, uint8_t *buf, size_t len, size_t cap) {
  return send_media(p, 0, buf, len, cap);
}

int sfu_peer_send_rtcp(sfu_peer_t *p, uint8_t *buf, size_t len, size_t cap) {
  return send_media(p, 1, buf, len, cap);
}

void sfu_peer_leave(sfu_peer_t *p) {
  leg_t *L = p->cur;
  if (p->dead || p->ended || !L || L->sig == SIG_LEAVING) return;
  if (p->next) { /* `leave` there too; the move ends with us */
    leg_t *n = p->next;
    p->next = NULL;
    if (n->sig == SIG_JOINED) leg_signal(n, json_pack("{s:s}", "type", "leave"));
    leg_retire(n, 1000, "leave");
  }
  if (L->sig == SIG_RESUMING) { /* no socket to say it on: the grace ends the session */
    L->sig = SIG_LEAVING;
    uv_timer_stop(&L->live_timer);
    sfu_ws_client_destroy(L->ws);
    L->ws = NULL;
    uv_timer_start(&L->resume_timer, on_resume_timer, 0, 0); /* `closed` from the loop */
    return;
  }
  L->sig = SIG_LEAVING;
  if (!L->ws) return;
  leg_signal(L, json_pack("{s:s}", "type", "leave"));
  sfu_ws_client_close(L->ws, 1000, "leave");
}

const sfu_peer_stats_t *sfu_peer_stats(const sfu_peer_t *p) { return &p->stats; }
const char *sfu_peer_sid(const sfu_peer_t *p) { return p->sid; }
int sfu_peer_media_up(const sfu_peer_t *p) { return p->cur && p->cur->media_up && !p->dead; }

void sfu_peer_destroy(sfu_peer_t *p) {
  if (!p || p->dead) return;
  p->dead = 1;
  for (leg_t *L = p->legs; L; L = L->link) leg_destroy(L);
  if (p->nlegs == 0) peer_free(p);
}
