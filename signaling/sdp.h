/*
 * sdp.h -- WebRTC session descriptions (RFC 8866 SDP as JSEP, RFC 8829, uses
 * it): parse a client's offer or answer into fixed-size structs, and write
 * the SFU's own answers and offers.
 *
 * The parser keeps what an SFU acts on -- per m-section: mid, direction,
 * ICE credentials, DTLS fingerprint and role, codecs with their feedback and
 * RTX pairing, header extensions, SSRCs, msid, RID simulcast, candidates --
 * and ignores every attribute it does not know. It never allocates per line:
 * the only allocation is the media array, grown as m= lines appear.
 *
 * Session-level ICE, fingerprint, setup, direction and extmap attributes are
 * inherited by every m-section (a media-level line overrides them), so a
 * consumer only ever looks at sfu_sdp_media_t.
 *
 * Parse -> write -> parse gives back the same struct, field for field; the
 * fuzz target (tests/fuzz/fuzz_sdp.c) checks this. Notes on the choices:
 * docs/internals/sdp.md.
 */
#ifndef SFU_SIGNALING_SDP_H
#define SFU_SIGNALING_SDP_H

#include <stddef.h>
#include <stdint.h>

#define SFU_SDP_MAX_TEXT 65536 /* bytes of SDP text accepted */
#define SFU_SDP_MAX_LINE 4096  /* bytes of one line, without its CRLF */

#define SFU_SDP_MAX_CODECS 16
#define SFU_SDP_MAX_EXTMAP 16
#define SFU_SDP_MAX_CANDIDATES 8
#define SFU_SDP_MAX_SSRCS 4
#define SFU_SDP_MAX_RIDS 4
#define SFU_SDP_MAX_MEDIA 256

/* The largest description (offer or answer) a room of `max_participants`
 * may need: a subscriber's m-lines are its own plus the audio and video of
 * everyone else (removed ones are recycled: sfu/room/negotiation.c), at up
 * to 1.5 KiB each as a browser writes them, plus 16 KiB of session and
 * own m-lines; never less than 64 KiB, never more than SFU_SDP_MAX_MEDIA
 * m-lines take. The room writes its offers within it and sfud's signaling
 * frame bound follows it (sfu/node/ws.c), so a full room's answer fits. */
static inline size_t sfu_sdp_max_len(int max_participants) {
  size_t mlines = max_participants > 0 ? 2 * (size_t)max_participants : 0;
  if (mlines > SFU_SDP_MAX_MEDIA) mlines = SFU_SDP_MAX_MEDIA;
  size_t n = 16384 + mlines * 1536;
  return n < 65536 ? 65536 : n;
}
#define SFU_SDP_MSID_MAX 64 /* RFC 8830: msid-id is 1*64 token chars */

/* rtcp-fb kinds a codec accepts (sfu_sdp_codec_t.fb). */
enum {
  SFU_FB_NACK = 1,  /* a=rtcp-fb:<pt> nack */
  SFU_FB_PLI = 2,   /* a=rtcp-fb:<pt> nack pli */
  SFU_FB_FIR = 4,   /* a=rtcp-fb:<pt> ccm fir */
  SFU_FB_REMB = 8,  /* a=rtcp-fb:<pt> goog-remb */
  SFU_FB_TWCC = 16  /* a=rtcp-fb:<pt> transport-cc */
};

typedef enum {
  SFU_DIR_SENDRECV, /* default when no direction attribute is present */
  SFU_DIR_SENDONLY,
  SFU_DIR_RECVONLY,
  SFU_DIR_INACTIVE
} sfu_sdp_dir_t;

/*
 * One payload type of an RTP m-section. Codecs are created from the m= line's
 * format list (so their order is the peer's preference) and filled in by
 * a=rtpmap, a=fmtp and a=rtcp-fb. A static payload type without a=rtpmap
 * (0 PCMU, 8 PCMA, 9 G722, 13 CN, ...) gets its RFC 3551 name and clock.
 * An "apt=N" parameter is taken out of fmtp and kept in rtx_apt only, so the
 * SFU can remap payload types by changing one field; the writer puts it back
 * first ("apt=N;rest").
 */
typedef struct sfu_sdp_codec_s {
  int pt;          /* payload type, 0..127 */
  char name[16];   /* encoding name as written ("opus", "VP8", "rtx"); "" if unknown */
  int clock;       /* clock rate in Hz; 0 if unknown */
  int channels;    /* audio: 1 unless given; other kinds: 0 unless given */
  char fmtp[160];  /* a=fmtp parameters without apt=, verbatim otherwise */
  unsigned fb;     /* SFU_FB_* bits */
  int rtx_apt;     /* -1, or the payload type this RTX stream repairs */
} sfu_sdp_codec_t;

/* a=extmap:<id> <uri> (RFC 8285). A "/direction" suffix is not kept. */
typedef struct sfu_sdp_extmap_s {
  int id;        /* 1..255 */
  char uri[96];  /* extension URI */
} sfu_sdp_extmap_t;

/* a=rid:<id> send|recv (RFC 8851). Restrictions (pt=, max-width=) not kept. */
typedef struct sfu_sdp_rid_s {
  char rid[16];  /* 1..15 of [A-Za-z0-9_-] */
  int send;      /* 1 send, 0 recv */
} sfu_sdp_rid_t;

/*
 * One m-section. A section with port 0 and no a=bundle-only is rejected (or
 * removed): the parser keeps only kind, proto, mid, the payload type list
 * and fmt, forces dir to INACTIVE and clears the rest, which is also exactly
 * what the writer emits for it.
 */
typedef struct sfu_sdp_media_s {
  char kind[12];   /* audio | video | application | anything else as written */
  int port;        /* 0 = rejected / removed, unless bundle_only */
  char proto[32];  /* UDP/TLS/RTP/SAVPF, UDP/DTLS/SCTP, ... */
  char fmt[32];    /* non-RTP proto: the m= format list as text
                      ("webrtc-datachannel", "5000"); "" for RTP */
  char mid[32];    /* a=mid, "" if absent; unique when present */
  sfu_sdp_dir_t dir;      /* direction, media level else session level */
  int rtcp_mux;           /* a=rtcp-mux */
  int rtcp_rsize;         /* a=rtcp-rsize */
  int bundle_only;        /* a=bundle-only (port 0 but not rejected) */
  char ice_ufrag[64];     /* media level, else copied from session level */
  char ice_pwd[128];      /* media level, else copied from session level */
  char fp_alg[16];        /* a=fingerprint hash name, "sha-256"; inherited */
  uint8_t fp[64];         /* fingerprint bytes */
  size_t fp_len;          /* 0 = none */
  char setup[12];         /* actpass | active | passive | holdconn ("" if absent) */
  sfu_sdp_codec_t codecs[SFU_SDP_MAX_CODECS]; /* m= line order */
  int ncodecs;
  sfu_sdp_extmap_t ext[SFU_SDP_MAX_EXTMAP];   /* attribute order */
  int next;
  uint32_t ssrcs[SFU_SDP_MAX_SSRCS]; /* distinct a=ssrc values, in order */
  int nssrcs;
  char cname[64];         /* first a=ssrc:<n> cname: seen */
  uint32_t fid_ssrc[2];   /* a=ssrc-group:FID <primary> <rtx> */
  int has_fid;
  uint32_t sim_ssrcs[3];  /* a=ssrc-group:SIM, lowest layer first */
  int nsim;
  char msid_stream[SFU_SDP_MSID_MAX + 1]; /* a=msid (else a=ssrc msid:); "-" = no stream */
  char msid_track[SFU_SDP_MSID_MAX + 1];  /* "" if the a=msid had one token */
  sfu_sdp_rid_t rids[SFU_SDP_MAX_RIDS];
  int nrids;
  int has_simulcast;      /* a=simulcast present (and at least one rid) */
  char candidates[SFU_SDP_MAX_CANDIDATES][200]; /* "candidate:..." as in
                                                    RTCIceCandidate.candidate */
  int ncandidates;
  int end_of_candidates;  /* a=end-of-candidates (media or session level) */
  char sctp_port[8];      /* a=sctp-port, or the port of an old a=sctpmap */
  uint32_t max_message_size; /* a=max-message-size, 0 if absent */
} sfu_sdp_media_t;

/*
 * A whole description. The BUNDLE group is kept as indexes into `media`, in
 * the group's order (its first entry is the tagged m-section, RFC 8843):
 * every mid in the group names exactly one m-section. Only the first
 * a=group:BUNDLE is kept.
 */
typedef struct sfu_sdp_s {
  uint64_t session_id;      /* o= sess-id */
  uint64_t session_version; /* o= sess-version */
  char origin_user[32];     /* o= username, usually "-" */
  uint16_t bundle[SFU_SDP_MAX_MEDIA]; /* media indexes of a=group:BUNDLE */
  int nbundle;              /* 0 = no BUNDLE group */
  int ice_lite;             /* a=ice-lite */
  int ice_options_trickle;  /* a=ice-options with "trickle", at any level */
  int extmap_allow_mixed;   /* a=extmap-allow-mixed (RFC 8285), any level */
  sfu_sdp_media_t *media;   /* heap array of nmedia, freed by sfu_sdp_free() */
  int nmedia;
} sfu_sdp_t;

/*
 * Parses an offer or answer: `len` bytes of `text` (CRLF or LF line ends; no
 * NUL required or allowed). `out` is overwritten: call sfu_sdp_free() on a
 * previous result first. On failure `out` holds no media and freeing it is
 * harmless.
 *
 * Returns 0, or
 *   SFU_EPROTO  malformed: no v=0 first, no o=, a bad m= / rtpmap / fmtp /
 *               rtcp-fb / extmap / ssrc / fingerprint / setup / rid line, a
 *               media-only attribute before the first m=, a NUL or stray CR,
 *               a duplicate mid, a BUNDLE mid that names no m-section;
 *   SFU_E2BIG   text over SFU_SDP_MAX_TEXT, a line over SFU_SDP_MAX_LINE,
 *               more than SFU_SDP_MAX_MEDIA m-sections, or an identifier
 *               (kind, proto, mid, ufrag, pwd, cname, msid, rid, o= user)
 *               longer than its field;
 *   SFU_ENOMEM, or SFU_EINVAL for a NULL text with a non-zero len,
 * and sets *err_desc (if err_desc is not NULL) to a thread-local string
 * naming the line, "line 12: bad a=rtpmap"; NULL on success.
 *
 * Codecs, extmaps, candidates, SSRCs and rids beyond their arrays are
 * dropped, as is a codec whose name or fmtp, an extmap whose URI, or a
 * candidate that does not fit its field. Unknown attributes are ignored.
 */
int sfu_sdp_parse(const char *text, size_t len, sfu_sdp_t *out, const char **err_desc);

/* Frees the media array and zeroes `sdp`. NULL and repeated calls are fine. */
void sfu_sdp_free(sfu_sdp_t *sdp);

/*
 * Writes `sdp` as CRLF text into buf (cap bytes, NUL-terminated):
 *
 *   v=0, o=<user|-> <id> <version> IN IP4 0.0.0.0, s=-, t=0 0,
 *   a=group:BUNDLE, a=extmap-allow-mixed, a=ice-lite, a=msid-semantic: WMS *,
 *   then per m-section: m=, c=IN IP4 0.0.0.0, a=rtcp:9 IN IP4 0.0.0.0,
 *   ice-ufrag, ice-pwd, ice-options:trickle, fingerprint, setup, mid,
 *   bundle-only, extmaps, direction, rtcp-mux, rtcp-rsize, per codec rtpmap /
 *   rtcp-fb / fmtp (with apt=), ssrc-group SIM and FID, per ssrc cname and
 *   msid, msid, rids and simulcast, sctp-port (a=sctpmap when the m= format
 *   is a port number, the pre-RFC 8841 form Chromium wants with it),
 *   max-message-size, candidates, end-of-candidates.
 *
 * Attributes whose field is empty are left out. A rejected m-section
 * (port 0, not bundle_only) is written as m=<kind> 0 <proto> <pts>, a=mid,
 * a=inactive. Used by the room to write its answers and offers.
 *
 * Returns the length written (without the NUL), SFU_E2BIG if cap is too
 * small (buf then holds a truncated, NUL-terminated prefix when cap > 0), or
 * SFU_EINVAL for a BUNDLE index outside media.
 */
int sfu_sdp_write(const sfu_sdp_t *sdp, char *buf, size_t cap);

/* First codec named `name` (case-insensitive) with this clock rate, or any
 * clock rate when clock <= 0; NULL if none. */
const sfu_sdp_codec_t *sfu_sdp_find_codec(const sfu_sdp_media_t *m, const char *name,
                                          int clock);
/* The id mapped to extension `uri`, or 0. */
int sfu_sdp_find_ext(const sfu_sdp_media_t *m, const char *uri);
/* Index of the m-section with this mid, or -1. */
int sfu_sdp_find_mid(const sfu_sdp_t *sdp, const char *mid);
/*
 * "AB:CD:..." (either case) to bytes. Returns the byte count, SFU_EPROTO if
 * not pairs of hex digits joined by single colons, SFU_E2BIG over cap.
 */
int sfu_sdp_fingerprint_parse(const char *hex_colon, uint8_t *out, size_t cap);

/* One BUNDLE group of every live m-line (port != 0), candidates left on
 * the first only (the bundle's transport). */
void sfu_sdp_bundle_live(sfu_sdp_t *s);

/*
 * An offer's bundle-only m-sections (RFC 8843 section 6: port 0 and
 * a=bundle-only, as GStreamer's webrtcbin offers every m-section after the
 * first) made live: each one the BUNDLE group holds gets port 9 and the
 * group's transport where it has none of its own (ICE credentials,
 * fingerprint, setup, rtcp-mux). One outside the group, or in a group
 * whose tagged m-section (its first) has no port itself, is rejected (left
 * as the parser leaves a port 0 m-section). Returns how many were made
 * live.
 */
int sfu_sdp_bundle_only_live(sfu_sdp_t *s);

/* A heap description with room for nmedia_cap m-sections (nmedia 0), or
 * NULL; sfu_sdp_destroy() frees it (NULL is fine). */
sfu_sdp_t *sfu_sdp_new(int nmedia_cap);
void sfu_sdp_destroy(sfu_sdp_t *s);

#endif
