/*
 * whip.c -- WHIP (RFC 9725) publishers and WHEP viewers as participants
 * of a room (whip.h, docs/whip.md).
 *
 * The smallest change that gives a room a participant without a
 * WebSocket: sfud keeps a session per HTTP resource, in the same id space
 * as the WebSocket sessions (sfu_ws_new_id()), and speaks to the room
 * exactly as ws.c does for a socket -- client_join with what the token
 * said, then the offer as a client_msg -- so the room's engine runs the
 * same join, offer/answer, usage and timeouts for both. What differs is
 * where the room's words go:
 *
 *   POST   join + offer     the room's `answer` to that offer becomes the
 *                           201 (pending until it comes: the request is
 *                           kept, guarded against h2o freeing it);
 *                           `error` (bad_sdp) a 400, a refused join (room
 *                           full, gone) its status
 *   PATCH  trickle ICE      candidates: 204 (an ICE-lite room needs none);
 *                           new credentials: the stored offer with them is
 *                           offered again (an ICE restart for the room),
 *                           the answer's credentials come back as a
 *                           fragment (200)
 *   DELETE leave            client_gone "left"
 *
 * Everything else the room says to the session (events, speaking,
 * dynacast) has no HTTP counterpart and is dropped. The room ends a
 * session by client_close -- media timeout (the room's own 15 s / 30 s),
 * a kick, a replacing session -- and sfud by sfu_whip_on_room_gone(); the
 * resource then answers 404.
 *
 * The grants: a WHIP session joins with the token's grants less
 * `subscribe` (a publisher receives nothing, so the room never offers it
 * the others' tracks), a WHEP session with them less `publish` (an
 * audience member: counted, not listed) and `whep` in its client_join,
 * so that the room gives it fixed m-lines (sfu/room/whep.c).
 *
 * A resource is named by 16 random bytes in its URL (the Location): that
 * name is what authorises PATCH and DELETE, as the token did the POST.
 * Sessions are not carried over an sfud upgrade: the room keeps the
 * participant while its media flows, the resource is gone.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "sfu/base/log.h"
#include "sfu/base/sfu.h"
#include "sfu/node/turn.h"
#include "sfu/node/whip.h"
#include "signaling/sdp.h"
#include "signaling/sdpfrag.h"
#include "signaling/token.h"

#define ANSWER_TIMEOUT_MS 10000 /* the room answers a join and an offer within this */
#define MAX_SESSIONS 10000      /* resources of a node at once */
#define OFFER_ID 1              /* the id of the offer in a POST's client_msg */

typedef enum { S_JOINING, S_OFFERED, S_LIVE, S_RESTARTING } state_t;

typedef struct sess_s sess_t;
struct sess_s {
  sfu_whip_t *w;                 /* owner */
  sess_t *next;                  /* all sessions */
  uint32_t id;                   /* IPC address, shared with ws.c's */
  int whep;                      /* a viewer, else a publisher */
  state_t state;
  sfu_room_rec_t *room;          /* joined room (or relay); NULL once gone */
  char rid[33];                  /* the resource's name in its URL */
  char prefix[16];               /* "/whip" or "/v1/whip" (and whep): of the Location */
  char room_key[72];             /* the room as the URL named it */
  char identity[SFU_TOKEN_MAX_ID + 1];
  char *offer;                   /* the current offer (owned): re-offered with new
                                    credentials at an ICE restart */
  char ufrag[SFU_SDPFRAG_MAX_CRED + 1]; /* the client's current ICE credentials */
  int etag;                      /* bumped at every ICE restart */
  int next_msg_id;               /* of our client_msg offers */
  h2o_req_t *req;                /* the request waiting for the room, or NULL */
  sess_t **slot;                 /* in that request's pool, pointing back here */
  uint64_t since_ms;             /* the wait began */
  json_t *ice;                   /* TURN servers for the Link headers, or NULL */
};

struct sfu_whip_s {
  uv_loop_t *loop;
  const sfu_config_t *cfg;
  sfu_supervisor_t *sup;
  sfu_ws_t *ws;
  uv_timer_t tick;               /* answer timeouts, once a second */
  sess_t *sessions;
  int count;
};

/* --- responses ---------------------------------------------------------- */

static const char *reason_of(int status) {
  switch (status) {
  case 200: return "OK";
  case 201: return "Created";
  case 204: return "No Content";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 409: return "Conflict";
  case 412: return "Precondition Failed";
  case 415: return "Unsupported Media Type";
  case 500: return "Internal Server Error";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  default: return "Unknown";
  }
}

static void hdr(h2o_req_t *req, const char *name, const char *value) {
  h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 1, NULL,
                        h2o_strdup(&req->pool, value, SIZE_MAX).base, strlen(value));
}

/* Every answer may go to a page of another origin (CORS). */
static void cors(h2o_req_t *req) {
  hdr(req, "access-control-allow-origin", "*");
  hdr(req, "access-control-expose-headers", "Location, ETag, Link, Accept-Patch");
}

static int reply(h2o_req_t *req, int status, const char *ctype, const char *body, size_t len) {
  req->res.status = status;
  req->res.reason = reason_of(status);
  cors(req);
  hdr(req, "cache-control", "no-store");
  if (ctype) hdr(req, "content-type", ctype);
  req->res.content_length = len;
  h2o_send_inline(req, body, len);
  return 0;
}

/* The project's JSON error body (docs/api.md). */
static int fail(h2o_req_t *req, int status, const char *code, const char *msg) {
  json_t *j = json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", msg);
  char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
  json_decref(j);
  if (!text) return reply(req, 500, "text/plain", H2O_STRLIT("out of memory\n"));
  reply(req, status, "application/json", text, strlen(text));
  free(text);
  return 0;
}

/* --- sessions ------------------------------------------------------------ */

static void on_req_disposed(void *obj) {
  sess_t **slot = obj;
  if (*slot) {
    (*slot)->req = NULL;
    (*slot)->slot = NULL;
  }
}

/* s waits for the room on behalf of req. */
static void wait_on(sess_t *s, h2o_req_t *req) {
  s->req = req;
  s->slot = h2o_mem_alloc_shared(&req->pool, sizeof(*s->slot), on_req_disposed);
  *s->slot = s;
  s->since_ms = sfu_now_ms();
}

/* The waiting request, taken (NULL if none or its client went away). */
static h2o_req_t *take_req(sess_t *s) {
  h2o_req_t *req = s->req;
  if (s->slot) *s->slot = NULL;
  s->req = NULL;
  s->slot = NULL;
  return req;
}

static void tell_room(sess_t *s, const char *type, json_t *extra) {
  sfu_ws_tell_room(s->room, s->id, type, extra, "whip");
}

static void send_offer(sess_t *s) {
  s->next_msg_id++;
  tell_room(s, "client_msg", json_pack("{s:{s:s, s:i, s:s}}", "msg", "type", "offer", "id",
                                       s->next_msg_id, "sdp", s->offer));
}

/* Ends s: the room is told (`reason`, unless NULL: it knows), a waiting
 * request answered `status` (0: it is answered elsewhere). */
static void end_session(sess_t *s, const char *reason, int status, const char *code,
                        const char *msg) {
  sfu_whip_t *w = s->w;
  if (reason) tell_room(s, "client_gone", json_pack("{s:s}", "reason", reason));
  h2o_req_t *req = take_req(s);
  if (req && status) fail(req, status, code, msg);
  for (sess_t **pp = &w->sessions; *pp; pp = &(*pp)->next)
    if (*pp == s) {
      *pp = s->next;
      break;
    }
  w->count--;
  sfu_log(SFU_LOG_INFO, "whip", "session %u (%s, %s) ended%s%s", s->id, s->identity,
          s->whep ? "WHEP" : "WHIP", reason ? ": " : "", reason ? reason : "");
  json_decref(s->ice);
  free(s->offer);
  free(s);
}

static sess_t *by_rid(sfu_whip_t *w, int whep, const char *rid) {
  if (strlen(rid) != 32) return NULL;
  for (sess_t *s = w->sessions; s; s = s->next)
    if (s->whep == whep && CRYPTO_memcmp(s->rid, rid, 32) == 0) return s;
  return NULL;
}

/* --- POST: a new session --------------------------------------------------- */

static int content_type_is(h2o_req_t *req, const char *want) {
  ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_CONTENT_TYPE, -1);
  if (i < 0) return 0;
  h2o_iovec_t v = req->headers.entries[i].value;
  size_t n = strlen(want);
  if (v.len < n || strncasecmp(v.base, want, n) != 0) return 0;
  return v.len == n || v.base[n] == ';' || v.base[n] == ' ';
}

/* The bearer token of the request, in buf; NULL if none. */
static const char *bearer(h2o_req_t *req, char *buf, size_t cap) {
  ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
  if (i < 0) return NULL;
  h2o_iovec_t v = req->headers.entries[i].value;
  if (v.len < 8 || v.len - 7 >= cap || strncasecmp(v.base, "Bearer ", 7) != 0) return NULL;
  memcpy(buf, v.base + 7, v.len - 7);
  buf[v.len - 7] = '\0';
  return buf;
}

/* The value of query parameter `name` (percent-decoding not needed: ids
 * are of [A-Za-z0-9_.@:-]), in buf; "" if absent. */
static void query_param(h2o_req_t *req, const char *name, char *buf, size_t cap) {
  buf[0] = '\0';
  if (req->query_at == SIZE_MAX) return;
  const char *q = req->path.base + req->query_at + 1, *end = req->path.base + req->path.len;
  size_t n = strlen(name);
  while (q < end) {
    const char *amp = memchr(q, '&', (size_t)(end - q));
    const char *e = amp ? amp : end;
    if ((size_t)(e - q) > n && memcmp(q, name, n) == 0 && q[n] == '=') {
      size_t len = (size_t)(e - q) - n - 1;
      if (len >= cap) len = cap - 1;
      memcpy(buf, q + n + 1, len);
      buf[len] = '\0';
      return;
    }
    q = amp ? amp + 1 : end;
  }
}

static int unauthorized(h2o_req_t *req, const char *msg) {
  hdr(req, "www-authenticate", "Bearer realm=\"sfu\"");
  return fail(req, 401, "unauthorized", msg);
}

static int route_post(sfu_whip_t *w, h2o_req_t *req, int whep, const char *room_key,
                      const char *prefix) {
  char tok[SFU_TOKEN_MAX_LEN + 8], why_buf[160], follow[SFU_TOKEN_MAX_ID + 2];
  const char *why = NULL;
  sfu_token_claims_t c;

  if (!content_type_is(req, "application/sdp"))
    return fail(req, 415, "unsupported_media_type", "the offer must be Content-Type: application/sdp");
  const char *token = bearer(req, tok, sizeof(tok));
  if (!token) return unauthorized(req, "missing 'Authorization: Bearer <join token>'");
  int rv = sfu_token_verify((const uint8_t *)w->cfg->token_secret, strlen(w->cfg->token_secret),
                            token, NULL, sfu_wall_ms() / 1000, &c, &why);
  if (rv != 0) {
    snprintf(why_buf, sizeof(why_buf), "%s: %s",
             rv == SFU_EEXPIRED ? "token expired" : "invalid token", why ? why : sfu_strerror(rv));
    return unauthorized(req, why_buf);
  }
  sfu_room_rec_t *r = sfu_supervisor_find(w->sup, room_key);
  if (!r) r = sfu_supervisor_relay_for(w->sup, room_key);
  if (!r || r->state == SFU_ROOM_CRASHED || r->state == SFU_ROOM_CLOSING)
    return fail(req, 404, "room_not_found", "no such live room");
  if (strcmp(c.room, r->origin_id[0] ? r->origin_id : r->id) != 0)
    return fail(req, 403, "wrong_room", "the token is for another room");
  unsigned need = whep ? SFU_GRANT_SUBSCRIBE : SFU_GRANT_PUBLISH;
  if (!(c.grants & need))
    return fail(req, 403, "not_allowed", whep ? "the token may not subscribe" : "the token may not publish");
  sfu_mod_verdict_t v = sfu_supervisor_admit(r, &c, sfu_wall_ms() / 1000);
  if (v != SFU_MOD_ADMIT)
    return fail(req, 403, v == SFU_MOD_BANNED ? "banned" : "kicked",
                v == SFU_MOD_BANNED ? "this identity is banned from the room" : "this token was kicked");
  /* the offer: checked here, so that a malformed one never joins anyone */
  size_t len = req->entity.base ? req->entity.len : 0;
  if (len == 0) return fail(req, 400, "bad_sdp", "the body must be an SDP offer");
  sfu_sdp_t sdp;
  memset(&sdp, 0, sizeof(sdp));
  if ((rv = sfu_sdp_parse(req->entity.base, len, &sdp, &why)) != 0) {
    snprintf(why_buf, sizeof(why_buf), "malformed SDP offer: %s", why ? why : sfu_strerror(rv));
    return fail(req, 400, "bad_sdp", why_buf);
  }
  int live = 0;
  const char *ufrag = NULL;
  for (int i = 0; i < sdp.nmedia; i++)
    if (sdp.media[i].port) {
      live++;
      if (!ufrag) ufrag = sdp.media[i].ice_ufrag;
    }
  if (!live) {
    sfu_sdp_free(&sdp);
    return fail(req, 400, "bad_sdp", "the offer has no usable m-line");
  }
  if (w->count >= MAX_SESSIONS) {
    sfu_sdp_free(&sdp);
    return fail(req, 503, "too_many_sessions", "this node has too many WHIP/WHEP sessions");
  }
  sess_t *s = calloc(1, sizeof(*s));
  if (!s || !(s->offer = strndup(req->entity.base, len))) {
    free(s);
    sfu_sdp_free(&sdp);
    return fail(req, 500, "internal", "out of memory");
  }
  snprintf(s->ufrag, sizeof(s->ufrag), "%s", ufrag ? ufrag : "");
  sfu_sdp_free(&sdp);
  s->w = w;
  s->id = sfu_ws_new_id(w->ws);
  s->whep = whep;
  s->state = S_JOINING;
  s->etag = 1;
  sfu_random_hex(s->rid, "", 16);
  snprintf(s->prefix, sizeof(s->prefix), "%s", prefix);
  snprintf(s->room_key, sizeof(s->room_key), "%s", room_key);
  memcpy(s->identity, c.identity, sizeof(s->identity));
  s->next = w->sessions;
  w->sessions = s;
  w->count++;
  s->room = sfu_supervisor_place(w->sup, r, whep ? SFU_GRANT_SUBSCRIBE : c.grants);
  s->ice = sfu_turn_ice_servers(w->cfg->turn_urls, w->cfg->turn_secret, w->cfg->turn_ttl_s,
                                c.identity, sfu_wall_ms() / 1000);
  unsigned grants = whep ? c.grants & ~(unsigned)SFU_GRANT_PUBLISH
                         : c.grants & ~(unsigned)SFU_GRANT_SUBSCRIBE;
  json_t *join = json_pack("{s:s, s:s, s:i, s:s, s:i}", "identity", c.identity, "name", c.name,
                           "grants", (int)grants, "jti", c.jti, "id", 0);
  if (whep) {
    query_param(req, "participant", follow, sizeof(follow));
    json_object_set_new(join, "whep", json_true());
    if (follow[0]) json_object_set_new(join, "follow", json_string(follow));
  }
  wait_on(s, req);
  tell_room(s, "client_join", join);
  sfu_log(SFU_LOG_INFO, "whip", "session %u: %s joining room %s by %s", s->id, c.identity, r->id,
          whep ? "WHEP" : "WHIP");
  return 0;
}

/* RFC 9725 section 4.4: one Link per ICE server URL. */
static void link_headers(h2o_req_t *req, json_t *ice) {
  size_t i, k;
  json_t *srv, *url;
  json_array_foreach(ice, i, srv) {
    const char *user = json_string_value(json_object_get(srv, "username"));
    const char *cred = json_string_value(json_object_get(srv, "credential"));
    json_array_foreach(json_object_get(srv, "urls"), k, url) {
      char v[768];
      if (!json_is_string(url)) continue;
      if (user && cred)
        snprintf(v, sizeof(v),
                 "<%s>; rel=\"ice-server\"; username=\"%s\"; credential=\"%s\"; "
                 "credential-type=\"password\"",
                 json_string_value(url), user, cred);
      else
        snprintf(v, sizeof(v), "<%s>; rel=\"ice-server\"", json_string_value(url));
      hdr(req, "link", v);
    }
  }
}

static void etag_header(h2o_req_t *req, const sess_t *s) {
  char v[48];
  snprintf(v, sizeof(v), "\"%s-%d\"", s->rid + 24, s->etag);
  hdr(req, "etag", v);
}

/* The room answered the POST's offer. */
static void created(sess_t *s, const char *sdp) {
  h2o_req_t *req = take_req(s);
  s->state = S_LIVE;
  if (!req) { /* the client went away meanwhile: nobody to give the resource */
    end_session(s, "left", 0, NULL, NULL);
    return;
  }
  char loc[200];
  snprintf(loc, sizeof(loc), "%s/%s/%s", s->prefix, s->room_key, s->rid);
  hdr(req, "location", loc);
  etag_header(req, s);
  hdr(req, "accept-patch", "application/trickle-ice-sdpfrag");
  link_headers(req, s->ice);
  reply(req, 201, "application/sdp", sdp, strlen(sdp));
  sfu_log(SFU_LOG_INFO, "whip", "session %u (%s): %s resource %s", s->id, s->identity,
          s->whep ? "WHEP" : "WHIP", loc);
}

/* The room answered an ICE restart: its new credentials and candidates, as
 * a fragment (RFC 9725 section 4.3.2). */
static void restarted(sess_t *s, const char *sdp) {
  h2o_req_t *req = take_req(s);
  s->state = S_LIVE;
  if (!req) return;
  sfu_sdp_t a;
  memset(&a, 0, sizeof(a));
  const sfu_sdp_media_t *m = NULL;
  if (sfu_sdp_parse(sdp, strlen(sdp), &a, NULL) == 0)
    for (int i = 0; i < a.nmedia && !m; i++)
      if (a.media[i].port) m = &a.media[i];
  if (!m) {
    sfu_sdp_free(&a);
    fail(req, 500, "internal", "the room's answer has no transport");
    return;
  }
  size_t cap = 512 + (size_t)m->ncandidates * 260;
  char *frag = malloc(cap);
  if (!frag) {
    sfu_sdp_free(&a);
    fail(req, 500, "internal", "out of memory");
    return;
  }
  int n = snprintf(frag, cap, "a=ice-lite\r\na=ice-ufrag:%s\r\na=ice-pwd:%s\r\n", m->ice_ufrag,
                   m->ice_pwd);
  n += snprintf(frag + n, cap - (size_t)n, "m=%s 9 %s", m->kind, m->proto);
  for (int k = 0; k < m->ncodecs; k++)
    n += snprintf(frag + n, cap - (size_t)n, " %d", m->codecs[k].pt);
  n += snprintf(frag + n, cap - (size_t)n, "\r\na=mid:%s\r\n", m->mid);
  for (int k = 0; k < m->ncandidates && (size_t)n < cap; k++)
    n += snprintf(frag + n, cap - (size_t)n, "a=%s\r\n", m->candidates[k]);
  if ((size_t)n < cap) n += snprintf(frag + n, cap - (size_t)n, "a=end-of-candidates\r\n");
  if ((size_t)n >= cap) n = (int)cap - 1;
  sfu_sdp_free(&a);
  etag_header(req, s);
  reply(req, 200, "application/trickle-ice-sdpfrag", frag, (size_t)n);
  free(frag);
}

/* --- PATCH, DELETE ----------------------------------------------------------- */

static int route_patch(sfu_whip_t *w, h2o_req_t *req, sess_t *s) {
  (void)w;
  const char *why = NULL;
  sfu_sdpfrag_t f;
  if (!content_type_is(req, "application/trickle-ice-sdpfrag"))
    return fail(req, 415, "unsupported_media_type",
                "PATCH takes Content-Type: application/trickle-ice-sdpfrag");
  if (s->state != S_LIVE)
    return fail(req, 409, "busy", "the session is being negotiated; retry");
  int rv = sfu_sdpfrag_parse(req->entity.base, req->entity.base ? req->entity.len : 0, &f, &why);
  if (rv != 0) {
    char msg[120];
    snprintf(msg, sizeof(msg), "malformed fragment: %s", why ? why : sfu_strerror(rv));
    return fail(req, 400, "bad_sdpfrag", msg);
  }
  ssize_t im = h2o_find_header(&req->headers, H2O_TOKEN_IF_MATCH, -1);
  if (im >= 0) {
    char cur[48];
    h2o_iovec_t v = req->headers.entries[im].value;
    snprintf(cur, sizeof(cur), "\"%s-%d\"", s->rid + 24, s->etag);
    if (!(v.len == 1 && v.base[0] == '*') && !h2o_memis(v.base, v.len, cur, strlen(cur)))
      return fail(req, 412, "precondition_failed", "If-Match does not match the session's ETag");
  }
  if (!f.ufrag[0] || strcmp(f.ufrag, s->ufrag) == 0) {
    /* trickled candidates: an ICE-lite server learns the client's
     * addresses from its checks, so there is nothing to do */
    req->res.status = 204;
    req->res.reason = reason_of(204);
    cors(req);
    h2o_send_inline(req, "", 0);
    return 0;
  }
  char *offer = sfu_sdpfrag_set_ice(s->offer, f.ufrag, f.pwd);
  if (!offer) return fail(req, 500, "internal", "cannot restart ICE on this offer");
  free(s->offer);
  s->offer = offer;
  snprintf(s->ufrag, sizeof(s->ufrag), "%s", f.ufrag);
  s->etag++;
  s->state = S_RESTARTING;
  wait_on(s, req);
  send_offer(s);
  sfu_log(SFU_LOG_INFO, "whip", "session %u (%s): ICE restart", s->id, s->identity);
  return 0;
}

int sfu_whip_handle(sfu_whip_t *w, h2o_req_t *req, char seg[][72], int n) {
  int whep = strcmp(seg[0], "whep") == 0;
  char pre[16];
  snprintf(pre, sizeof(pre), "%s/%s", req->path_normalized.len > 3 &&
           strncmp(req->path_normalized.base, "/v1/", 4) == 0 ? "/v1" : "", seg[0]);
  if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("OPTIONS"))) {
    /* CORS preflight (RFC 9725 section 4.9) */
    hdr(req, "access-control-allow-methods", n == 2 ? "POST, OPTIONS" : "PATCH, DELETE, OPTIONS");
    hdr(req, "access-control-allow-headers", "Authorization, Content-Type, If-Match");
    hdr(req, "access-control-max-age", "86400");
    if (n == 2) hdr(req, "accept-post", "application/sdp");
    req->res.status = 204;
    req->res.reason = reason_of(204);
    cors(req);
    h2o_send_inline(req, "", 0);
    return 0;
  }
  if (n == 2) {
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"))) {
      hdr(req, "allow", "POST, OPTIONS");
      return fail(req, 405, "method_not_allowed", "use POST with an SDP offer");
    }
    return route_post(w, req, whep, seg[1], pre);
  }
  sess_t *s = by_rid(w, whep, seg[2]);
  if (!s || strcmp(s->room_key, seg[1]) != 0)
    return fail(req, 404, "not_found", "no such session (it ended, or never was)");
  if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("DELETE"))) {
    if (s->req) { /* a PATCH still waits: it will not be answered by the room */
      h2o_req_t *other = take_req(s);
      fail(other, 409, "gone", "the session was deleted");
    }
    end_session(s, "left", 0, NULL, NULL);
    req->res.status = 200;
    req->res.reason = reason_of(200);
    cors(req);
    req->res.content_length = 0;
    h2o_send_inline(req, "", 0);
    return 0;
  }
  if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("PATCH")))
    return route_patch(w, req, s);
  hdr(req, "allow", "PATCH, DELETE, OPTIONS");
  return fail(req, 405, "method_not_allowed", "a session takes PATCH or DELETE");
}

/* --- the room's side --------------------------------------------------------- */

/* A close code of the room (docs/signaling.md) as the POST's status. */
static int close_status(int code, const char **err) {
  switch (code) {
  case 4005: *err = "room_full"; return 409;
  case 4004: case 4010: case 4011: *err = "room_not_found"; return 404;
  case 4012: *err = "kicked"; return 403;
  default: *err = "refused"; return 409;
  }
}

int sfu_whip_on_room_msg(sfu_whip_t *w, sfu_room_rec_t *r, const char *type, json_t *msg) {
  json_t *sv = json_object_get(msg, "session");
  if (!json_is_integer(sv)) return 0;
  uint32_t id = (uint32_t)json_integer_value(sv);
  sess_t *s = w->sessions;
  while (s && s->id != id) s = s->next;
  if (!s) return 0;
  if (s->room != r) return 1;
  if (strcmp(type, "client_close") == 0) {
    json_int_t code = json_integer_value(json_object_get(msg, "code"));
    const char *reason = json_string_value(json_object_get(msg, "reason"));
    const char *err = "refused";
    int status = close_status((int)code, &err);
    s->room = NULL; /* the room dropped it already */
    end_session(s, NULL, status, err, reason ? reason : "closed by the room");
    return 1;
  }
  if (strcmp(type, "client_msg") != 0) return 1;
  json_t *m = json_object_get(msg, "msg");
  const char *t = json_string_value(json_object_get(m, "type"));
  if (!t) return 1;
  if (strcmp(t, "welcome") == 0 && s->state == S_JOINING) {
    s->state = S_OFFERED;
    send_offer(s);
  } else if (strcmp(t, "answer") == 0 &&
             json_integer_value(json_object_get(m, "id")) == s->next_msg_id) {
    const char *sdp = json_string_value(json_object_get(m, "sdp"));
    if (!sdp) return 1;
    if (s->state == S_OFFERED)
      created(s, sdp);
    else if (s->state == S_RESTARTING)
      restarted(s, sdp);
  } else if (strcmp(t, "error") == 0 &&
             json_integer_value(json_object_get(m, "id")) == s->next_msg_id) {
    const char *code = json_string_value(json_object_get(m, "code"));
    const char *text = json_string_value(json_object_get(m, "message"));
    char why[200];
    snprintf(why, sizeof(why), "%s", text ? text : "refused by the room");
    if (s->state == S_OFFERED) { /* the offer was refused: the session never was */
      end_session(s, "left", code && strcmp(code, "bad_sdp") == 0 ? 400 : 409,
                  code ? code : "refused", why);
    } else if (s->state == S_RESTARTING) {
      h2o_req_t *req = take_req(s);
      s->state = S_LIVE;
      if (req) fail(req, code && strcmp(code, "bad_sdp") == 0 ? 400 : 409, code ? code : "refused", why);
    }
  }
  return 1;
}

void sfu_whip_on_room_gone(sfu_whip_t *w, sfu_room_rec_t *r) {
  sess_t *next;
  for (sess_t *s = w->sessions; s; s = next) {
    next = s->next;
    if (s->room != r) continue;
    s->room = NULL;
    end_session(s, NULL, 404, "room_not_found", "the room ended");
  }
}

int sfu_whip_session_count(const sfu_whip_t *w) { return w->count; }

static void on_tick(uv_timer_t *t) {
  sfu_whip_t *w = t->data;
  uint64_t now = sfu_now_ms();
  sess_t *next;
  for (sess_t *s = w->sessions; s; s = next) {
    next = s->next;
    if (s->state == S_LIVE || now - s->since_ms < ANSWER_TIMEOUT_MS) continue;
    if (s->state == S_RESTARTING) { /* the session goes on; this restart failed */
      h2o_req_t *req = take_req(s);
      s->state = S_LIVE;
      if (req) fail(req, 504, "timeout", "the room did not answer in time");
      continue;
    }
    end_session(s, "timeout", 504, "timeout", "the room did not answer in time");
  }
}

int sfu_whip_create(sfu_whip_t **out, uv_loop_t *loop, const sfu_config_t *cfg,
                    sfu_supervisor_t *sup, sfu_ws_t *ws) {
  sfu_whip_t *w = calloc(1, sizeof(*w));
  *out = NULL;
  if (!w) return SFU_ENOMEM;
  w->loop = loop;
  w->cfg = cfg;
  w->sup = sup;
  w->ws = ws;
  uv_timer_init(loop, &w->tick);
  w->tick.data = w;
  uv_timer_start(&w->tick, on_tick, 1000, 1000);
  uv_unref((uv_handle_t *)&w->tick);
  *out = w;
  return 0;
}
