/*
 * participant.h -- media objects of a room: participants, the tracks they
 * publish, and the down-tracks that carry a track to one subscriber.
 *
 * Ownership is a tree: room -> participant -> {transport, tracks,
 * downtracks}. A track knows the down-tracks that forward it (one per
 * subscriber); a down-track points back at its track, and the pointer is
 * cleared when the track goes away (the m-line then turns inactive at the
 * next negotiation). Nothing here is shared between threads.
 *
 * Memory: a participant is one allocation plus its transport (the room
 * shell's, opaque here); a track keeps a growable array (sfu/base/vec.h) of
 * down-track pointers, bounded by max_participants.
 */
#ifndef SFU_PARTICIPANT_H
#define SFU_PARTICIPANT_H

#include <stdint.h>

#include "codecs/opus.h"
#include "codecs/video.h"
#include "codecs/vp8.h"
#include "sfu/media/bwe.h"
#include "sfu/media/dd.h"
#include "sfu/media/nack.h"
#include "sfu/media/rtp.h"
#include "sfu/media/speaking.h"
#include "sfu/media/twcc.h"
#include "sfu/base/vec.h"
#include "sfu/room/usage.h"
#include "signaling/sdp.h"

typedef struct sfu_participant_s sfu_participant_t;
typedef struct sfu_downtrack_s sfu_downtrack_t;

/* Receive statistics of an inbound stream (RFC 3550 A.3, A.8). */
typedef struct sfu_rx_stats_s {
  sfu_seq_unwrap_t unwrap;   /* extended sequence numbers */
  uint64_t base_seq;         /* first extended seq */
  uint64_t max_seq;          /* highest extended seq */
  uint64_t packets, bytes;   /* received */
  uint64_t expected_prior;   /* at the last report */
  uint64_t received_prior;   /* at the last report */
  double jitter;             /* in RTP timestamp units */
  int64_t last_transit;      /* arrival - rtp ts, in ts units */
  uint32_t sr_ntp_mid;       /* middle 32 bits of the last SR's NTP time */
  uint64_t sr_arrival_us;    /* when it arrived */
} sfu_rx_stats_t;

typedef enum { SFU_KIND_AUDIO, SFU_KIND_VIDEO } sfu_kind_t;

/* What a video track shows (docs/signaling.md "Screen share"): the
 * publisher's camera, or its screen. An audio track is a camera's. A
 * screen share is the track a subscriber is least willing to lose:
 * whoever shares bandwidth between tracks may rank it first. */
typedef enum { SFU_SOURCE_CAMERA = 0, SFU_SOURCE_SCREEN = 1 } sfu_source_t;

/* The tracks a participant may publish at once, and the index of each in
 * the arrays that hold one entry per track (sfu_track_slot()). */
#define SFU_TRACK_SLOTS 3
#define SFU_SLOT_AUDIO 0
#define SFU_SLOT_VIDEO 1
#define SFU_SLOT_SCREEN 2

#define SFU_MAX_LAYERS 3        /* simulcast encodings of a video track */
#define SFU_MAX_TIDS 4          /* temporal layers a VP8 descriptor can name */

/* One encoding a publisher sends for a track: the only one, or one
 * simulcast layer (by rid, or by a=ssrc-group:SIM). */
typedef struct sfu_layer_s {
  char rid[16];                 /* simulcast rid, "" without */
  uint32_t ssrc;                /* 0 until known (SDP or first packet) */
  uint32_t rtx_ssrc;            /* its RFC 4588 repair stream, 0 if none yet */
  sfu_rx_stats_t rx;            /* receive statistics */
  int width, height;            /* from its latest keyframe; 0 = not seen */
  uint64_t last_keyframe_ms;
  uint64_t last_ms;             /* last packet */
  uint64_t last_pli_ms;         /* keyframe requests are throttled per layer */
  uint64_t win_bytes, win_start_ms; /* bitrate measurement window */
  uint32_t bitrate_bps;         /* over the last full window */
  uint64_t tid_win[SFU_MAX_TIDS]; /* the window's bytes by temporal layer (VP8) */
  uint32_t tid_bps[SFU_MAX_TIDS]; /* and over the last full window */
  uint64_t sid_win[SFU_MAX_LAYERS]; /* by spatial layer (SVC) */
  uint32_t sid_bps[SFU_MAX_LAYERS];
  uint32_t sr_rtp;              /* last sender report: RTP time ... */
  uint64_t sr_ntp;              /* ... and NTP time of it */
  sfu_nack_gen_t *nack;         /* losses to NACK upstream (video), lazily */
  sfu_rtx_cache_t *cache;       /* its packets as received (video), for every
                                   subscriber's NACKs; lazily */
} sfu_layer_t;

/* What a track whose publisher sends the Dependency Descriptor (AV1, H.264)
 * keeps of it: the template structure of its last keyframe, which every
 * later descriptor is read with, and the decode targets the publisher
 * says are active. Allocated at the track's first descriptor, freed with
 * the track (about 7 KiB). */
typedef struct sfu_dd_track_s {
  sfu_dd_structure_t st[2];     /* the structure in use, and room for the next */
  int cur;                      /* st[cur] is in use; -1 = none seen yet */
  uint32_t active;              /* the publisher's active decode targets */
} sfu_dd_track_t;

/* A published track (inbound): per participant one audio (Opus), one
 * camera video and one screen-share video. Video is forwarded in the
 * publisher's codec, one simulcast layer per subscriber. */
typedef struct sfu_track_s {
  char id[24];                  /* "TR_<hex>" */
  sfu_participant_t *owner;     /* publisher */
  sfu_kind_t kind;
  int source;                   /* SFU_SOURCE_*: camera (and every audio) or screen */
  char mid[32];                 /* publisher's mid */
  uint8_t pt;                   /* publisher's payload type */
  int rtx_pt;                   /* its RTX payload type, -1 = none */
  int red_pt;                   /* audio: the RED (RFC 2198) type it may send
                                   its Opus in, -1 = none (plain Opus only) */
  sfu_sdp_codec_t codec;        /* as the publisher offered it (fb bits cleared) */
  sfu_video_parse_fn parse;     /* its payload inspector (video), set at publish */
  int level_ext;                /* publisher's audio-level extension id, 0 = none */
  int rid_ext, rrid_ext;        /* rtp-stream-id / repaired-rtp-stream-id ids */
  int mid_ext;                  /* sdes:mid extension id, 0 = none: a packet naming
                                   another mid never teaches this track its SSRC */
  int dd_ext;                   /* Dependency Descriptor extension id (AV1, H.264), 0 = none */
  sfu_dd_track_t *dd;           /* what its descriptors said; at the first one */
  sfu_layer_t layers[SFU_MAX_LAYERS];
  int nlayers;                  /* 1, or the simulcast layers offered */
  int svc_layers;               /* SVC (VP9, AV1 with a Dependency Descriptor):
                                   spatial layers seen in its packets (highest
                                   SID + 1), 0 = none */
  int tid_layers;               /* temporal layers seen (highest TID + 1), 0 = none */
  uint32_t out_ssrc;            /* room-unique SSRC toward subscribers */
  uint32_t out_rtx_ssrc;        /* and of its RTX stream (video) */
  int muted;                    /* publisher says muted */
  uint64_t dropped_muted;       /* packets not forwarded: server mute */
  uint64_t keyframes, nacks_sent;
  int imported;                 /* its id came from the room it moved from:
                                   published again without an event */
  /* dynacast (forwarder.c): the layers someone takes, as the publisher
   * was last told (bit k: layer k; all at first), and since
   * when each has had no taker (0: it has one) */
  unsigned wanted_told;
  int wanted_sent;              /* told at all (the first time: every layer) */
  uint64_t unwanted_ms[SFU_MAX_LAYERS];
  sfu_opus_meter_t *meter;      /* created when no level extension comes */
  sfu_speaking_t speaking;      /* speaking detector */
  int loud_rank;                /* loudest.c: 0 = loudest at the last media tick */
  SFU_VEC(sfu_downtrack_t *) down; /* subscribers' down-tracks */
} sfu_track_t;

/* What a video down-track sent under one outbound sequence number: enough
 * to rebuild that copy from the publisher layer's cache byte for byte
 * (numbering, picture ids, abs-send-time) when the subscriber NACKs it --
 * a plain resend must repeat the plaintext exactly under SRTP's
 * allow_repeat_tx. 32 bytes; a down-track keeps SFU_SENT_SLOTS of them,
 * indexed by seq. */
typedef struct sfu_sent_s {
  uint16_t seq;                 /* outbound sequence number (the key) */
  uint16_t orig_seq;            /* the publisher's */
  int8_t layer;                 /* its layer, -1 = empty slot */
  uint8_t resends;              /* NACKs answered for it */
  uint16_t resend_ms;           /* last answer, ms mod 65536 */
  uint32_t ts;                  /* RTP timestamp written */
  int16_t pid;                  /* VP8 picture id written, -1 = not rewritten */
  int16_t tl0;                  /* TL0PICIDX written, -1 = none */
  uint32_t abs;                 /* abs-send-time written (24 bits) */
  uint16_t tseq;                /* transport-wide number written ... */
  uint8_t has_tseq;             /* ... if any */
  uint8_t marker;               /* the marker bit was set on it (SVC) */
  uint8_t dd;                   /* its Dependency Descriptor: 0 none, 1 the
                                   publisher's, 2 with dd_mask written */
  uint16_t dd_fn;               /* the frame number written */
  uint32_t dd_mask;             /* the active decode targets written (dd 2) */
} sfu_sent_t;

#define SFU_SENT_SLOTS 512      /* ~3 s of a 1.5 Mb/s video */

/* One m-line of a subscriber: a track forwarded to it. */
struct sfu_downtrack_s {
  sfu_track_t *track;           /* NULL once the track is gone */
  sfu_participant_t *sub;       /* subscriber */
  char mid[16];                 /* subscriber-side mid */
  char owner_sid[24];           /* for a=msid, kept after the track goes */
  char track_id[24];
  sfu_kind_t kind;              /* the track's, kept after it goes */
  sfu_sdp_codec_t codec;        /* offered: the publisher's codec */
  uint32_t ssrc;                /* = track->out_ssrc */
  uint8_t pt;                   /* pt from the subscriber's answer */
  int red_pt;                   /* audio: RED over Opus, offered, then as the
                                   answer kept it; -1 = none: RED from the
                                   publisher goes as its primary, plain Opus */
  int negotiated;               /* answered: packets may flow */
  int fixed;                    /* a WHEP viewer's m-line: carries whichever
                                   track whep.c binds to it (track NULL:
                                   none now), never removed */
  int removed;                  /* the track is gone: inactive from the next offer */
  int removal_offered;          /* an offer carried it inactive: freed at the answer */
  uint16_t seq_offset;          /* out seq = in seq + offset */
  uint16_t last_seq;            /* last seq sent */
  int started;                  /* a packet was sent */
  int resync;                   /* next packet re-bases seq_offset */
  uint32_t last_ts;             /* last RTP timestamp sent */
  uint64_t last_send_us;        /* wall clock of that packet */
  uint64_t packets, octets;     /* sent, for sender reports */
  /* audio, with max_audio_streams (loudest.c) */
  int unheard;                  /* not among its subscriber's loudest: not
                                   forwarded (resync set when it turns 1) */
  uint64_t loud_ms;             /* last media tick it was among them, 0 = never */
  /* video */
  int layer;                    /* layer forwarded, -1 = none yet */
  uint64_t layer_ms;            /* since when */
  int keyed;                    /* a keyframe of it was forwarded since */
  int target;                   /* layer wanted; switched to at its keyframe */
  int max_layer;                /* the subscriber's request (quality) */
  int max_height;               /* or its resolution bound, 0 = none */
  int paused;                   /* the subscriber paused this video */
  int tid_target, tid_cur;      /* temporal layers (VP8, AV1, H.264): the highest its
                                   estimate allows (allocate()) and forwarded
                                   now (lowered at a frame start, raised at a
                                   TID 0 frame); SFU_MAX_TIDS - 1 = all */
  int tid_quality;              /* and that its quality allows (one stream of
                                   temporal layers only) */
  int tid_dropping;             /* the frame under way is dropped */
  int svc_target, svc_cur;      /* SVC: the highest spatial layer wanted,
                                   and forwarded now (switched at a picture
                                   start; up only at a keyframe) */
  int svc_bw;                   /* and the highest its estimate allows
                                   (allocate()) */
  int dd_ext;                   /* Dependency Descriptor id its answer kept, 0 = none */
  int dd_ext_offer;             /* the id we offer for it (AV1, H.264 with one), 0 = none */
  uint16_t dd_fn_offset;        /* frame numbers: out = in + offset */
  uint16_t dd_last_fn;          /* the last written, for a switch of stream */
  uint32_t dd_told;             /* the active decode targets it was last told
                                   (a structure tells all of them) */
  uint32_t ts_offset;           /* out ts = in ts + ts_offset */
  int pid_offset, tl0_offset;   /* VP8 picture id / TL0PICIDX rewriting */
  int last_pid, last_tl0;       /* last sent, -1 = none */
  int rtx_pt;                   /* RTX negotiated with the subscriber, -1 none */
  int abs_ext;                  /* abs-send-time extension id, 0 = none */
  int abs_ext_offer;            /* the id we offer for it */
  int twcc_ext_offer;           /* and for the transport-wide number (the
                                   subscriber's: p->twcc_out_ext) */
  uint16_t rtx_seq;             /* next RTX sequence number */
  uint32_t remb_bps;            /* the subscriber's estimate, 0 = none */
  uint8_t rr_lost;              /* fraction lost in its last receiver report (/256) */
  uint64_t rr_ms;               /* when it came, 0 = none */
  uint64_t rr_from_ms;          /* when the one before came (what rr_lost covers
                                   began), 0 = none */
  /* round trips through its reports (video, REMB only: the queue on its
   * downlink, bandwidth_bound()) */
  uint32_t sr_mid[2];           /* our last two SRs: NTP middle 32 bits ... */
  uint64_t sr_us[2];            /* ... and when they went */
  uint64_t next_sr_ms;          /* the next one's time */
  uint32_t rtt_us;              /* the last round trip a report gave ... */
  uint64_t rtt_sr_ms;           /* ... through the SR sent then, 0 = none */
  uint32_t rtt_floor_us[2];     /* the least of this window and of the one
                                   before (0 = none: a round trip is >= 1 us) ... */
  uint64_t rtt_floor_ms;        /* ... this one began then */
  uint32_t win_nacked;          /* sequence numbers it NACKed since win_ms ... */
  uint64_t win_packets, win_ms; /* ... of those sent since (packets then) */
  uint8_t nack_lost;            /* their ratio over the last window (/256) */
  uint64_t remb_ms;             /* when it came */
  int bw_cap;                   /* highest layer rank its bandwidth allows */
  int bw_paused;                /* its subscriber's estimate leaves it no room */
  uint64_t bw_short_ms;         /* its lowest layer has not fitted since, 0 = fits */
  int shed;                     /* the current layer is not sent while the
                                   target's keyframe is awaited (allocate()) */
  int remb_fell;                /* its last REMB fell: its estimator saw
                                   overuse (not yet judged) */
  uint64_t bw_hold_ms;          /* bw_cap goes up no sooner than this */
  uint64_t bw_up_ms;            /* when it last went up, 0 = never */
  int bw_backoff;               /* going up failed this many times running */
  sfu_sent_t *sent;             /* SFU_SENT_SLOTS, for its NACKs (video), lazily */
  uint64_t plis_received, nacks_received, retransmitted, switches;
};

/* A subscriber's downlink as the SFU estimates it from transport-wide
 * feedback (docs/internals/bwe.md): what it sent, the estimate, and the
 * probing that looks for more room. */
typedef struct sfu_cc_s {
  sfu_twcc_tx_t tx;             /* every packet sent to it that carries a number */
  sfu_bwe_t bwe;
  uint32_t desired_bps;         /* what its videos would take unbounded */
  uint32_t allocated_bps;       /* what the allocation gave them */
  int short_of;                 /* it left one below what it would take */
  uint8_t probe_id;             /* the last probe cluster */
  int probe_ticks;              /* feedback ticks of padding left in it */
  uint32_t probe_pad;           /* padding bytes per tick */
  uint64_t next_probe_ms;       /* no probe before */
  int probe_fails;              /* in a row: the next waits longer */
  uint64_t probes_ok, probes_failed; /* the estimator's, as last seen */
} sfu_cc_t;

typedef enum { NEG_IDLE, NEG_OFFER_SENT } sfu_neg_state_t;

/* A subscriber's choices for one video, carried over a move to another
 * node (sfu/room/migration.c) and applied when its down-track is made. */
typedef struct sfu_sub_pref_s {
  char track_id[24];
  int max_layer, max_height, paused;
} sfu_sub_pref_t;

/* An SSRC a link carries and the remote participant it belongs to. */
typedef struct sfu_link_ssrc_s {
  uint32_t ssrc;
  sfu_participant_t *p;
} sfu_link_ssrc_t;

struct sfu_participant_s {
  struct sfu_room_s *room;      /* the engine it is in */
  char sid[24];                 /* "PA_<hex>", stable across reconnects */
  char identity[65];
  char name[129];
  unsigned grants;              /* SFU_GRANT_* */
  uint32_t session;             /* sfud's WebSocket session id */
  char resume_token[33];        /* its session's, as sfud last said (session_token):
                                   a new sfud takes the session over with it */
  unsigned number;              /* 1, 2, ... in order of joining the room */
  uint64_t joined_ms;
  int muted;                    /* client mute */
  uint64_t mute_window_ms;      /* start of the current second of mute messages */
  int mute_msgs;                /* mute messages in it (bounded: proto.c) */
  int server_muted;             /* control-plane mute */
  uint32_t rtcp_ssrc;           /* our SSRC in RTCP to this peer */
  void *transport;              /* the shell's, after the first offer
                                   (sfu_room_io_t.transport_open) */
  int tp_ready;                 /* SRTP keys in place: packets may be sent */
  int media_connected;          /* DTLS done, and ICE has not failed since */
  uint64_t transport_failed_ms; /* ICE failed / DTLS closed at, 0 = fine */
  /* negotiation */
  char *local_sdp;              /* text of the last SDP we sent (answer or offer):
                                   kept as text, parsed when renegotiating (a few
                                   hundred bytes an m-line instead of 7 KiB) */
  sfu_neg_state_t neg;          /* an offer of ours is outstanding */
  int offer_id;                 /* its id */
  int needs_offer;              /* changes wait for the next offer */
  int first_answered;           /* the client's first offer was answered */
  int ext_mixed;                /* a=extmap-allow-mixed: offered by the client,
                                   then kept by its answers (RFC 8285 two-byte
                                   header elements, a long Dependency Descriptor) */
  uint64_t sdp_version;         /* o= version */
  int next_mid;                 /* for our m-lines: "s<N>" */
  /* media */
  sfu_track_t *audio;           /* published audio, or NULL */
  sfu_track_t *video;           /* published camera video, or NULL */
  sfu_track_t *screen;          /* published screen share (video), or NULL */
  SFU_VEC(sfu_downtrack_t *) down; /* by m-line order of our additions */
  /* transport-wide congestion control (docs/internals/bwe.md) */
  int twcc_in_ext;              /* the extension's id in its packets, 0 = none */
  int twcc_out_ext;             /* in ours to it (its answer kept it), 0 = none */
  sfu_twcc_rx_t *twcc_rx;       /* arrivals of its packets, at the first one */
  uint64_t twcc_fb_ms;          /* last feedback sent to it */
  sfu_cc_t *cc;                 /* its downlink, once twcc_out_ext is set */
  int speaking;                 /* last broadcast state */
  sfu_usage_t usage;            /* time connected / publishing / receiving */
  /* moved in from another node (migration.c): until the commit it counts
   * no usage (the old node does), and the ids of the tracks it published
   * there are kept for it to publish again */
  int migrating;
  char import_track[SFU_TRACK_SLOTS][24]; /* by SFU_SLOT_*; "" = none (or published) */
  SFU_VEC(sfu_sub_pref_t) prefs; /* its video subscriptions' choices there */
  /* a call spread over several processes (relay.c) */
  sfu_participant_t *via;       /* a remote participant: another process of the
                                   call serves it, reached over this link; NULL
                                   for our own */
  int link_dirty;               /* its description changed: tell the links */
  int is_link;                  /* not a person: a link to another process of the
                                   call (room->links; its id in `sid`) */
  int link_origin;              /* a link: ours is the origin's end */
  SFU_VEC(sfu_link_ssrc_t) link_ssrcs; /* a link: every SSRC its remote participants'
                                   tracks were described with, and whose it is:
                                   the per-packet lookup (relay.c) */
  int link_audience;            /* a link: the audience its side serves, as it
                                   last said (relay.c "audience") */
  int link_audience_told;       /* a link: the audience of ours we last told it */
  /* an audience member (a token without `publish`): never listed to the
   * others one by one, only counted (docs/signaling.md "Audience") */
  int audience;
  /* a WHEP viewer (docs/whip.md): it offers once and never renegotiates,
   * so its own recvonly m-lines carry the media of the publisher it
   * follows (whep.c), switched by the SFU */
  int fixed;
  char follow[65];              /* the identity it follows, "" = the room's
                                   first publisher (whep.c) */
  sfu_participant_t *next;      /* room list (room->links for a link) */
};

/* The slot of a track of this kind and source: SFU_SLOT_*. */
static inline int sfu_track_slot(sfu_kind_t kind, int source) {
  return kind == SFU_KIND_AUDIO ? SFU_SLOT_AUDIO
         : source == SFU_SOURCE_SCREEN ? SFU_SLOT_SCREEN : SFU_SLOT_VIDEO;
}

/* Where p keeps its track of that slot (&p->audio, &p->video, &p->screen). */
static inline sfu_track_t **sfu_track_at(sfu_participant_t *p, int slot) {
  return slot == SFU_SLOT_AUDIO ? &p->audio : slot == SFU_SLOT_SCREEN ? &p->screen : &p->video;
}

/* p's published tracks by slot, NULL where none: the one walk every
 * per-track loop (reports, SSRC lookups, descriptions) makes. */
static inline void sfu_participant_tracks(const sfu_participant_t *p,
                                          sfu_track_t *ts[SFU_TRACK_SLOTS]) {
  ts[SFU_SLOT_AUDIO] = p->audio;
  ts[SFU_SLOT_VIDEO] = p->video;
  ts[SFU_SLOT_SCREEN] = p->screen;
}

/* "camera" or "screen". */
static inline const char *sfu_source_name(int source) {
  return source == SFU_SOURCE_SCREEN ? "screen" : "camera";
}

#endif
