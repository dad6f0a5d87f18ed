/*
 * engine_sim.h -- a simulated world around one call engine (sfu/room/engine.h)
 * for tests/test_engine.c: a clock, peers that signal and send media, and
 * impaired links, all in memory and deterministic.
 *
 * What it is:
 *
 *   - a recording sfu_room_io_t. Every message the engine emits is kept
 *     (with the simulated time) and can be searched; every packet it sends
 *     is copied into a log and handed to the destination peer's downlink;
 *     the transport operations are fakes (well-formed ICE credentials, a
 *     sha-256 fingerprint, one host candidate; our setup is "passive").
 *   - a simulated clock. sim_run() advances it event by event: the
 *     engine's own ticks (sfu_room_next_tick()), link deliveries, the
 *     peers' media sources (Opus every 20 ms, VP8 every 40 ms) and the
 *     peers' feedback timers. Nothing sleeps, nothing touches a socket.
 *   - peers. A peer joins (client_join), offers what it publishes (Opus
 *     with the RFC 6464 level extension, optionally in RED with one
 *     redundant frame, as Chrome sends it; VP8 + RTX single layer with
 *     a=ssrc, or rid simulcast with 2-3 layers; a second VP8 m-line, a
 *     single-layer screen share marked in the offer's "sources"), learns its answer, is
 *     marked connected, and answers every server offer (recvonly, same
 *     codecs and payload types, abs-send-time when offered). As a
 *     publisher it keeps what it sent, answers NACKs with RTX and PLI/FIR
 *     with a keyframe; as a subscriber it records every RTP packet it gets
 *     (per m-line), can NACK its own losses with sfu_nack_gen_t and can
 *     send REMB (fixed, or min(link capacity, 1.5 x what it receives)).
 *   - links: one uplink (peer -> engine) and one downlink (engine -> peer)
 *     per peer, with loss, duplication, reordering, delay, jitter and an
 *     optional rate limit with a tail-drop queue, driven by the sim's own
 *     seeded xorshift generator.
 *
 * Every payload a peer publishes ends in a 4-byte tag that names the
 * packet (publisher, layer, counter), so a test can tell exactly which of
 * a publisher's packets a subscriber got, whatever the engine rewrote.
 *
 * Callbacks never call back into the engine: reactions (answers, NACKs,
 * RTX, keyframes) happen from the event loop, after the engine call that
 * caused them has returned.
 */
#ifndef SFU_TESTS_ENGINE_SIM_H
#define SFU_TESTS_ENGINE_SIM_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "sfu/media/nack.h"
#include "sfu/media/twcc.h"
#include "sfu/room/engine.h"

#define SIM_MAX_PEERS 12
#define SIM_MAX_SUBS 24
#define SIM_LAYERS 3
#define SIM_HIST 512          /* packets a publisher layer keeps for RTX */
#define SIM_MAX_PKT 1200      /* largest packet a peer sends */

#define SIM_MONO0_US UINT64_C(1000000000)       /* the clock starts at 1000 s */
#define SIM_WALL0_US INT64_C(1700000000000000)  /* and on 2023-11-14 */

/* Payload types and extension ids the peers offer. */
#define SIM_PT_OPUS 111
#define SIM_PT_RED 63
#define SIM_PT_VP8 96
#define SIM_PT_RTX 97
#define SIM_EXT_LEVEL 1
#define SIM_EXT_MID 4
#define SIM_EXT_RID 10
#define SIM_EXT_RRID 11
#define SIM_EXT_TWCC 5          /* a publisher's transport-wide number (twcc_pub) */
#define SIM_EXT_DD 12           /* a publisher's Dependency Descriptor (av1_svc, h264_temporal) */
/* The screen share's index for sim_layer_of() and in packet tags (audio's
 * is 3, the camera's layers 0..2). */
#define SIM_SCREEN 4

typedef struct sim_s sim_t;
typedef struct sim_peer_s sim_peer_t;

/* A packet on its way through a link. */
typedef struct sim_qpkt_s {
  uint64_t due_us;      /* delivery time */
  uint64_t order;       /* FIFO among equal due times */
  int rtcp;
  size_t len;
  uint8_t *data;
} sim_qpkt_t;

/* One direction between a peer and the engine. Zeroed = perfect, instant. */
typedef struct sim_link_s {
  double loss;          /* probability a packet is dropped */
  double dup;           /* probability it is delivered twice */
  double reorder;       /* probability it is held back reorder_ms more */
  uint32_t delay_ms;    /* fixed one-way delay */
  uint32_t jitter_ms;   /* uniform extra delay 0..jitter_ms */
  uint32_t reorder_ms;
  uint32_t rate_bps;    /* 0 = no limit; else serialised at this rate ... */
  uint32_t queue_ms;    /* ... and dropped when the queue is longer (100 ms if 0) */
  int rtp_only;         /* impairments apply to RTP only (RTCP perfect) */
  /* state */
  sim_qpkt_t *q;
  int n, cap;
  uint64_t busy_until_us, order;
  /* counters */
  uint64_t sent, lost, duplicated, overflow, delivered;
} sim_link_t;

/* One RTP packet a subscriber received. */
typedef struct sim_rx_s {
  uint64_t at_us;
  uint32_t ssrc;
  uint8_t pt;
  uint8_t marker;
  uint16_t seq;
  uint32_t ts;
  int rtx;              /* came on the RTX SSRC */
  uint16_t osn;         /* RTX: original sequence number (payload bytes 0-1) */
  uint32_t tag;         /* the publisher's packet tag (last 4 payload bytes) */
  int level;            /* audio: RFC 6464 level if the extension came, else -1 */
  int red_blocks;       /* audio on the RED type: blocks in the payload (0: plain) */
  int block_pt;         /* and the payload type of its blocks */
  /* VP8 (video only; -1 / 0 when absent) */
  int begins, key, pid, tl0, width, height;
  int sid;              /* VP9: spatial layer id, -1 when absent */
  int tid;              /* VP8: temporal layer id (T bit), -1 when absent */
  /* its Dependency Descriptor, read through the structure the
   * subscription last received (sim_sub_t.dd_st) */
  int dd;               /* 0 none, 1 read, 2 read and carrying a structure,
                           -1 unreadable (no structure yet) */
  int dd_start, dd_end, dd_sid, dd_tid;
  uint16_t dd_fn;       /* its frame number */
  int64_t dd_mask;      /* the active decode targets it carried, -1 none */
  size_t len, payload_off, payload_len;
  uint32_t hash;        /* FNV-1a of the (original) payload */
} sim_rx_t;

/* One of the server's m-lines, as a subscriber sees it. */
typedef struct sim_sub_s {
  char mid[32];
  int video;
  int active;           /* sendonly from the server with an SSRC */
  uint32_t ssrc, rtx_ssrc;
  int pt, rtx_pt, abs_ext;
  int vp9;              /* the codec offered is VP9 */
  int av1;              /* ... AV1 (its payload is not read: sim_rx_t.dd_*) */
  int h264;             /* ... H.264 (begins, key from its NAL headers) */
  int dd_ext;           /* the Dependency Descriptor id we kept, 0 = none */
  sfu_dd_structure_t *dd_st; /* the last structure received, NULL = none */
  sfu_dd_structure_t *dd_spare;
  int red_pt;           /* audio: RED type we answered, -1 = none */
  char track_id[72], owner_sid[72];
  sim_rx_t *rx;         /* every RTP packet on ssrc or rtx_ssrc */
  int nrx, caprx;
  sfu_nack_gen_t *nack; /* auto_nack: our own loss tracking */
  uint64_t nacks_sent;
  uint64_t padding;     /* padding-only packets on the RTX SSRC */
  uint64_t remb_est;    /* remb_auto: the estimate, 0 = none yet ... */
  uint64_t remb_at_us, remb_cut_us; /* ... updated, last cut then */
  uint32_t sr_mid;      /* the last SR on it: NTP middle 32 bits ... */
  uint64_t sr_at_us;    /* ... and when it arrived, 0 = none */
} sim_sub_t;

/* One encoding a publisher sends. */
typedef struct sim_layer_s {
  char rid[8];          /* "" for a single layer */
  uint32_t ssrc, rtx_ssrc;
  uint16_t seq, rtx_seq;
  uint32_t ts;
  int pid, tl0;
  int width, height;
  int pkts, pkt_size;   /* per delta frame; keyframes are 3x */
  unsigned tframe;      /* frames since the last keyframe (temporal pattern) */
  int key_in;           /* a keyframe was asked for: it is the key_in-th frame
                           from now (counted down), 0 = none asked */
  int paused;           /* this layer is not sent */
  uint64_t frames, keyframes, rtx_sent;
  uint32_t tag_first, tag_next;  /* tags sent: [tag_first, tag_next) */
  int drop_seq;         /* one-shot: this seq is lost on the way (-1 none) */
  struct sim_hist_s {
    int used;
    uint16_t seq;
    uint32_t ts;
    uint8_t marker;
    uint8_t dd_len;       /* av1_svc, h264_temporal: its Dependency Descriptor */
    uint8_t dd[128];
    uint16_t plen;
    uint8_t payload[SIM_MAX_PKT];
  } *hist;              /* SIM_HIST entries, by seq */
} sim_layer_t;

/* RTCP a peer received from the engine (feedback and reports). */
enum { SIM_FB_PLI = 1, SIM_FB_FIR, SIM_FB_NACK, SIM_FB_REMB, SIM_FB_SR, SIM_FB_RR, SIM_FB_TWCC };

typedef struct sim_fb_s {
  uint64_t at_us;
  int kind;             /* SIM_FB_* */
  uint32_t sender_ssrc;
  uint32_t media_ssrc;  /* PLI/FIR/NACK target; SR: its SSRC; REMB: first SSRC */
  uint16_t seqs[64];    /* NACK */
  int nseqs;
  uint64_t bps;         /* REMB */
  int twcc_received;    /* TWCC: statuses that say received ... */
  int twcc_count;       /* ... of this many */
} sim_fb_t;

struct sim_peer_s {
  sim_t *sim;
  int idx;
  uint32_t session;
  char identity[65];
  unsigned grants;
  char sid[72];         /* from welcome */
  json_t *ice_servers;  /* what sfud adds to its client_join (owned; NULL: none) */
  int joined, gone;
  uint32_t rtcp_ssrc;   /* our RTCP sender SSRC */
  /* publishing */
  int audio;            /* publishes Opus */
  uint32_t audio_ssrc;
  uint16_t aseq;
  uint32_t ats;
  int level;            /* RFC 6464 level we send: 0 loud .. 127 silent */
  int red;              /* offers red/48000/2 over Opus and sends every frame
                           as RED, the previous frame repeated before it */
  uint8_t prev_frame[64]; /* red: the last Opus frame sent ... */
  size_t prev_len;      /* ... and its length, 0 = none yet */
  uint32_t atag_first, atag_next;
  int video;            /* publishes VP8 */
  int temporal;         /* VP8 with three temporal layers (TID 0,2,1,2 from
                           each keyframe, T bit set), set before sim_enter() */
  int vp9_svc;          /* ... as VP9 instead: one stream, 3 spatial layers
                           per picture (one packet each, SID 0..2, the
                           marker on the last), set before sim_enter() */
  int av1_svc;          /* ... as AV1 instead, L3T3 with keyframes predicting
                           upwards: per picture S0, S1, S2 (S2 in two
                           packets, the second continuing its OBU), TID 0,
                           2, 1, 2 from each keyframe, a Dependency
                           Descriptor on every packet (SIM_EXT_DD) and its
                           structure on the keyframe's first; set before
                           sim_enter() */
  int h264_temporal;    /* ... as H.264 instead (packetization mode 1), one
                           stream of three temporal layers, TID 0, 2, 1, 2
                           from each keyframe, a Dependency Descriptor on
                           every packet (SIM_EXT_DD) and its structure on
                           the keyframe's first, the tags naming the TID;
                           set before sim_enter() */
  int nlayers;          /* 1 = a=ssrc single layer, 2-3 = rid simulcast */
  int rtx;              /* offers RTX for video */
  sim_layer_t layers[SIM_LAYERS];
  int screen;           /* publishes a screen share (single VP8 layer + RTX) */
  sim_layer_t screen_layer;
  char screen_mid[32];  /* its m-line, in our offer */
  int pli_keyframe;     /* PLI/FIR -> a keyframe of that layer (1) ... */
  int key_delay;        /* ... after this many delta frames (0: the next frame) */
  int auto_rtx;         /* NACK -> RTX from history (1) */
  int media_on;         /* sources running */
  uint64_t next_audio_us, next_video_us;
  /* signaling */
  int auto_answer;      /* answer server offers at once (1) */
  int offers_answered;
  long long pending_offer_id; /* auto_answer 0: the unanswered one, 0 none */
  char *pending_offer_sdp;
  sfu_sdp_t *own;       /* our first offer: the m-lines we publish on */
  sfu_sdp_t *local;     /* our last description */
  int next_req_id;
  int no_rtx_answer;    /* answer server video m-lines without RTX */
  int no_red_answer;    /* answer server audio m-lines without RED */
  int no_dd_answer;     /* answer server video m-lines without the
                           Dependency Descriptor */
  int opus_pt;          /* a listener's Opus type in its offer, 0 = SIM_PT_OPUS */
  int whep;             /* a WHEP viewer (sfu/room/whep.c): its client_join
                           says so (with `follow` if set), its offer is one
                           recvonly Opus and one recvonly VP8 (+ RTX)
                           m-line, and its m-lines are learnt from the
                           server's answer; set before sim_join() */
  char follow[65];      /* whep: the identity it follows, "" the first */
  /* receiving */
  sim_sub_t subs[SIM_MAX_SUBS];
  int nsubs;
  uint64_t rtp_unknown; /* RTP on no SSRC we were told of */
  int auto_nack;        /* NACK our video losses (sfu_nack_gen_t) */
  uint32_t remb_bps;    /* fixed REMB for every video m-line, 0 none */
  int remb_auto;        /* REMB as a receiver's estimator makes it (Chrome's
                           AIMD over delay): cut to 0.85 x the received rate
                           when its downlink queues over 30 ms (at most every
                           300 ms), else up 8 %/s, never over 1.5 x the
                           received rate + 10 kb/s */
  uint32_t remb_ms;     /* REMB period (250 ms if 0) */
  int auto_rr;          /* receiver reports every 200 ms for each video
                           m-line an SR came on: LSR and DLSR of that SR,
                           rr_lost as the fraction lost */
  uint8_t rr_lost;
  uint64_t next_fb_us, next_remb_us, next_rr_us;
  /* transport-cc */
  int twcc;             /* answers keep the transport-wide number; feedback
                           every 50 ms */
  int twcc_pub;         /* its own video packets carry one (SIM_EXT_TWCC) */
  uint16_t twcc_seq;    /* twcc_pub: the next */
  int twcc_ext;         /* twcc: the id the server's offer gave it */
  sfu_twcc_rx_t *twcc_rx;
  uint64_t next_twcc_us, twcc_fbs;
  /* RTCP received */
  sim_fb_t *fb;
  int nfb, capfb;
  /* transport */
  uint64_t last_rx_us;  /* transport_last_rx_us(); 0 = always "now" */
  sim_link_t up, down;
};

typedef struct sim_msg_s {
  json_t *m;
  uint64_t at_us;
} sim_msg_t;

typedef struct sim_pkt_s {
  uint64_t at_us;
  uint32_t session;     /* destination */
  int rtcp;
  size_t len;
  uint8_t *data;
} sim_pkt_t;

struct sim_s {
  sfu_room_t room;
  sfu_room_io_t io;
  sfu_time_t now;
  uint64_t rng;
  int in_engine;        /* inside an engine call (callbacks must not re-enter) */
  sim_msg_t *msgs;      /* everything emitted */
  int nmsgs, capmsgs, pumped;
  sim_pkt_t *pkts;      /* everything sent */
  int npkts, cappkts;
  sim_peer_t *peers[SIM_MAX_PEERS];
  int npeers;
  int empty, empty_calls;
  int ended;
  uint64_t ticks;
  /* sim_bridge(): our engine and another one as two processes of a call */
  sim_t *other;         /* the engine at the other end of our link */
  char link_id[24];
  sim_link_t relay_in;  /* packets from its engine to ours (impairable) */
  int link_remote;      /* link_remote given to our engine */
  int link_connected;   /* and its transport marked connected */
};

/* --- the world --------------------------------------------------------- */

/* A room at SIM_MONO0_US with these options (usage_interval_s 0 = 10). */
sim_t *sim_new(uint64_t seed, int usage_interval_s);
/* Ends the room (if still running) and frees everything. */
void sim_free(sim_t *s);
/* Milliseconds since the start, and the time in us of the engine clock. */
uint64_t sim_ms(const sim_t *s);
uint64_t sim_us(const sim_t *s);
/* Advance the clock by ms / to t_ms after the start, running every event. */
void sim_run(sim_t *s, uint32_t ms);
void sim_run_until(sim_t *s, uint64_t t_ms);
void sim_run_until_us(sim_t *s, uint64_t t_us);
/* Runs what is due now (messages, deliveries, ticks) until nothing is. */
void sim_settle(sim_t *s);
uint32_t sim_rand(sim_t *s);
double sim_uniform(sim_t *s);

/* Joins two rooms as two processes of one call (sfu/room/relay.c): a
 * link `id` opened at both (a the origin's end), link_local of each
 * given to the other as link_remote, both transports marked connected,
 * link_msg carried between them at once and packets through each one's
 * relay_in. Run both with sim_run2(). */
void sim_bridge(sim_t *a, sim_t *b, const char *id);
/* Both clocks forward by ms, in 1 ms steps, alternately. */
void sim_run2(sim_t *a, sim_t *b, uint32_t ms);
/* The engine's link participant, or NULL. */
sfu_participant_t *sim_link_part(sim_t *s);

/* --- peers ------------------------------------------------------------- */

/* A new peer (session 100 + index, grants publish + subscribe). */
sim_peer_t *sim_peer_new(sim_t *s, const char *identity);
/* What it will offer: Opus; VP8 with nlayers (1 single, 2-3 simulcast). */
void sim_peer_audio(sim_peer_t *pe);
void sim_peer_video(sim_peer_t *pe, int nlayers);
/* And a screen share: 1920x1080 VP8 with RTX, after the other m-lines. */
void sim_peer_screen(sim_peer_t *pe);
/* Stops the screen share: its m-line inactive in a re-offer (request id
 * `id`), its packets no more. */
void sim_stop_screen(sim_peer_t *pe, int id);
/* client_join; the offer; SFU_TP_CONNECTED; all three + media on. */
void sim_join(sim_peer_t *pe);
void sim_offer(sim_peer_t *pe);
void sim_connect(sim_peer_t *pe);
void sim_enter(sim_peer_t *pe);
/* Media sources on / off (on: audio now, video now). */
void sim_media(sim_peer_t *pe, int on);
/* client_gone (reason "left"). */
void sim_leave(sim_peer_t *pe);
/* A new peer with the same identity, publishing the same kinds. */
sim_peer_t *sim_peer_like(sim_peer_t *pe);
/* server_mute / kick from the control plane. */
void sim_server_mute(sim_t *s, const char *identity, int muted);
void sim_kick(sim_t *s, const char *identity);
/* A client message (reference stolen) through client_msg. */
void sim_client_msg(sim_peer_t *pe, json_t *msg);
/* A re-offer of every m-line we know (JSEP), with request id `id`. */
void sim_reoffer(sim_peer_t *pe, int id);
/* The same, with the fields of `extra` (reference stolen) added to the
 * offer message (e.g. "sources"). */
void sim_reoffer_with(sim_peer_t *pe, int id, json_t *extra);
/* Answer the offer held back (auto_answer 0). */
void sim_answer_pending(sim_peer_t *pe);

/* The engine's participant of this peer's session, or NULL. */
sfu_participant_t *sim_part(sim_peer_t *pe);
/* A subscriber's m-line carrying pub's track of this kind (the newest). */
sim_sub_t *sim_sub_of(sim_peer_t *sub, const sim_peer_t *pub, int video);
/* A subscriber's m-line carrying the track `track_id` (the newest), or NULL. */
sim_sub_t *sim_sub_by_track(sim_peer_t *sub, const char *track_id);

/* --- RTCP from a peer, straight into the engine (no link) ---------------- */

void sim_send_pli(sim_peer_t *pe, uint32_t media_ssrc);
void sim_send_fir(sim_peer_t *pe, uint32_t media_ssrc, uint8_t seqnr);
void sim_send_nack(sim_peer_t *pe, uint32_t media_ssrc, const uint16_t *seqs, int n);
void sim_send_remb(sim_peer_t *pe, uint64_t bps, uint32_t media_ssrc);
/* An RTP packet straight into the engine. */
void sim_send_rtp(sim_peer_t *pe, const uint8_t *buf, size_t len);

/* --- looking at what happened -------------------------------------------- */

/* The inner msg of the n-th-from-last (0 = last) client_msg of `type`
 * that reached `session` (directly or by broadcast) from message index
 * `from` on; NULL if none. *at_us gets when (if not NULL). */
json_t *sim_msg_to(sim_t *s, uint32_t session, const char *type, int from, uint64_t *at_us);
/* The client message of s->msgs[i] if it goes to `session`, else NULL. */
json_t *sim_msg_at(sim_t *s, int i, uint32_t session);
int sim_count_to(sim_t *s, uint32_t session, const char *type, int from);
/* Feedback of `kind` a peer received for `media_ssrc` (0 = any) in
 * [from_us, to_us). */
int sim_fb_count(const sim_peer_t *pe, int kind, uint32_t media_ssrc, uint64_t from_us,
                 uint64_t to_us);
/* Fails the test unless every packet of layer k of `pub` with a tag
 * counter in [first, end) reached the subscription (original or
 * retransmission). */
void sim_assert_all_tags(const sim_sub_t *u, const sim_peer_t *pub, int k, uint32_t first,
                         uint32_t end);
/* The layer index of a publisher's SSRC (SIM_SCREEN: its screen share), or -1. */
int sim_layer_of(const sim_peer_t *pub, uint32_t ssrc);
/* Which publisher layer a tag is of, and its counter. */
int sim_tag_layer(uint32_t tag);
int sim_tag_peer(uint32_t tag);

#endif
