/*
 * ice.c -- ICE-lite on libnice.
 *
 * The SFU is always ICE-lite and controlled: it only answers connectivity
 * checks, and the peer (a full agent) nominates. It has host candidates
 * only, on the configured addresses, so gathering completes synchronously
 * and every SDP the SFU writes carries all its candidates (peers such as
 * aiortc need them there; trickle is optional).
 *
 * Streams are looked up by libnice's stream id in a small array: a room has
 * at most max_participants streams and the lookup runs once per datagram
 * before any other work, so it is a direct index, not a search.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <agent.h>

#include "sfu/ice.h"
#include "sfu/log.h"
#include "sfu/sfu.h"

struct sfu_ice_stream_s {
  sfu_ice_t *ice;          /* owner */
  guint id;                /* libnice stream id */
  sfu_ice_cb_t cb;         /* to the transport */
  char ufrag[64], pwd[128];
  char remote_ufrag[64];   /* to detect a peer's ICE restart */
  int connected;           /* last state reported */
};

#define MAX_STREAM_IDS 4096 /* libnice ids grow by one per stream */

struct sfu_ice_s {
  NiceAgent *agent;
  sfu_ice_opts_t opts;
  sfu_ice_stream_t **by_id; /* index: libnice stream id (mod MAX_STREAM_IDS) */
};

static sfu_ice_stream_t *stream_of(sfu_ice_t *ice, guint id) {
  sfu_ice_stream_t *st = ice->by_id[id % MAX_STREAM_IDS];
  return st && st->id == id ? st : NULL;
}

static void on_recv(NiceAgent *agent, guint stream_id, guint component_id, guint len,
                    gchar *buf, gpointer data) {
  sfu_ice_stream_t *st = stream_of(data, stream_id);
  if (st) st->cb.recv(st->cb.arg, (uint8_t *)buf, len);
}

static void on_state(NiceAgent *agent, guint stream_id, guint component_id, guint state,
                     gpointer data) {
  sfu_ice_stream_t *st = stream_of(data, stream_id);
  if (!st) return;
  int connected = state == NICE_COMPONENT_STATE_CONNECTED || state == NICE_COMPONENT_STATE_READY;
  if (state == NICE_COMPONENT_STATE_FAILED || connected) {
    if (connected != st->connected) {
      st->connected = connected;
      st->cb.state(st->cb.arg, connected);
    }
  }
}

int sfu_ice_create(sfu_ice_t **out, GMainContext *ctx, const sfu_ice_opts_t *o) {
  sfu_ice_t *ice = calloc(1, sizeof(*ice));
  *out = NULL;
  if (!ice) return SFU_ENOMEM;
  ice->by_id = calloc(MAX_STREAM_IDS, sizeof(*ice->by_id));
  ice->agent = nice_agent_new_full(ctx, NICE_COMPATIBILITY_RFC5245,
                                   NICE_AGENT_OPTION_LITE_MODE);
  if (!ice->by_id || !ice->agent) {
    sfu_ice_destroy(ice);
    return SFU_ENOMEM;
  }
  ice->opts = *o;
  g_object_set(ice->agent, "controlling-mode", FALSE, "upnp", FALSE, "ice-tcp", FALSE,
               "keepalive-conncheck", FALSE, NULL);
  char addrs[256];
  snprintf(addrs, sizeof(addrs), "%s", o->addresses && o->addresses[0] ? o->addresses : "127.0.0.1");
  for (char *save = NULL, *a = strtok_r(addrs, ", ", &save); a; a = strtok_r(NULL, ", ", &save)) {
    NiceAddress na;
    nice_address_init(&na);
    if (!nice_address_set_from_string(&na, a)) {
      sfu_log(SFU_LOG_ERROR, "ice", "'%s' is not an IP address", a);
      sfu_ice_destroy(ice);
      return SFU_EINVAL;
    }
    nice_agent_add_local_address(ice->agent, &na);
  }
  g_signal_connect(ice->agent, "component-state-changed", G_CALLBACK(on_state), ice);
  *out = ice;
  return 0;
}

void sfu_ice_destroy(sfu_ice_t *ice) {
  if (!ice) return;
  if (ice->agent) g_object_unref(ice->agent);
  free(ice->by_id);
  free(ice);
}

static void read_credentials(sfu_ice_stream_t *st) {
  gchar *u = NULL, *p = NULL;
  nice_agent_get_local_credentials(st->ice->agent, st->id, &u, &p);
  snprintf(st->ufrag, sizeof(st->ufrag), "%s", u ? u : "");
  snprintf(st->pwd, sizeof(st->pwd), "%s", p ? p : "");
  g_free(u);
  g_free(p);
}

int sfu_ice_stream_create(sfu_ice_t *ice, const sfu_ice_cb_t *cb, sfu_ice_stream_t **out) {
  sfu_ice_stream_t *st = calloc(1, sizeof(*st));
  *out = NULL;
  if (!st) return SFU_ENOMEM;
  st->ice = ice;
  st->cb = *cb;
  st->id = nice_agent_add_stream(ice->agent, 1);
  if (st->id == 0 || ice->by_id[st->id % MAX_STREAM_IDS]) {
    if (st->id) nice_agent_remove_stream(ice->agent, st->id);
    free(st);
    return SFU_EBUSY;
  }
  ice->by_id[st->id % MAX_STREAM_IDS] = st;
  if (ice->opts.port_min > 0)
    nice_agent_set_port_range(ice->agent, st->id, 1, (guint)ice->opts.port_min,
                              (guint)ice->opts.port_max);
  if (!nice_agent_gather_candidates(ice->agent, st->id) ||
      !nice_agent_attach_recv(ice->agent, st->id, 1,
                              g_main_context_get_thread_default(), on_recv, ice)) {
    sfu_ice_stream_destroy(st);
    return SFU_EAGAIN;
  }
  read_credentials(st);
  *out = st;
  return 0;
}

void sfu_ice_stream_destroy(sfu_ice_stream_t *st) {
  if (!st) return;
  sfu_ice_t *ice = st->ice;
  nice_agent_attach_recv(ice->agent, st->id, 1, g_main_context_get_thread_default(), NULL, NULL);
  nice_agent_remove_stream(ice->agent, st->id);
  ice->by_id[st->id % MAX_STREAM_IDS] = NULL;
  free(st);
}

const char *sfu_ice_ufrag(const sfu_ice_stream_t *st) { return st->ufrag; }
const char *sfu_ice_pwd(const sfu_ice_stream_t *st) { return st->pwd; }

int sfu_ice_local_candidates(sfu_ice_stream_t *st, char out[][200], int max) {
  GSList *list = nice_agent_get_local_candidates(st->ice->agent, st->id, 1);
  int n = 0;
  for (GSList *i = list; i && n < max; i = i->next) {
    NiceCandidate *c = i->data;
    if (st->ice->opts.announce) { /* behind 1:1 NAT: the public address */
      NiceAddress pub;
      nice_address_init(&pub);
      if (nice_address_set_from_string(&pub, st->ice->opts.announce)) {
        nice_address_set_port(&pub, nice_address_get_port(&c->addr));
        c->addr = pub;
      }
    }
    gchar *s = nice_agent_generate_local_candidate_sdp(st->ice->agent, c);
    const char *v = s && strncmp(s, "a=", 2) == 0 ? s + 2 : s;
    if (v) snprintf(out[n++], 200, "%s", v);
    g_free(s);
  }
  g_slist_free_full(list, (GDestroyNotify)nice_candidate_free);
  return n;
}

int sfu_ice_set_remote(sfu_ice_stream_t *st, const char *ufrag, const char *pwd) {
  int restart = 0;
  if (!ufrag || !pwd || !ufrag[0] || !pwd[0]) return SFU_EINVAL;
  if (st->remote_ufrag[0] && strcmp(st->remote_ufrag, ufrag) != 0) {
    /* The peer restarted ICE: new local credentials, fresh checks. */
    nice_agent_restart_stream(st->ice->agent, st->id);
    read_credentials(st);
    st->connected = 0;
    restart = 1;
  }
  snprintf(st->remote_ufrag, sizeof(st->remote_ufrag), "%s", ufrag);
  if (!nice_agent_set_remote_credentials(st->ice->agent, st->id, ufrag, pwd)) return SFU_EINVAL;
  return restart;
}

/* An ICE-lite agent never checks: it answers the peer's checks and learns
 * the peer's address from them (peer-reflexive). So a remote candidate is
 * only parsed, to refuse garbage, and not given to libnice, which would
 * otherwise start connectivity checks of its own even in lite mode -- and
 * a check from the lite side confuses full agents (aioice) in nomination. */
int sfu_ice_add_remote_candidate(sfu_ice_stream_t *st, const char *cand) {
  char buf[300];
  if (strncmp(cand, "a=", 2) == 0) cand += 2;
  snprintf(buf, sizeof(buf), "a=%s", cand);
  NiceCandidate *c = nice_agent_parse_remote_candidate_sdp(st->ice->agent, st->id, buf);
  if (!c) return SFU_EINVAL;
  nice_candidate_free(c);
  return 0;
}

int sfu_ice_send(sfu_ice_stream_t *st, const uint8_t *buf, size_t len) {
  gint n = nice_agent_send(st->ice->agent, st->id, 1, (guint)len, (const gchar *)buf);
  if (n == (gint)len) return 0;
  return st->connected ? SFU_EPROTO : SFU_EAGAIN;
}
