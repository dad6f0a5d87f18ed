/*
 * opus.h -- views over Opus packets (RFC 6716 §3.1/§3.2) and level metering.
 *
 * The SFU forwards Opus untouched. Two things here look inside a payload:
 *
 *   - sfu_opus_parse_toc() / sfu_opus_is_dtx(): read-only views over the
 *     packet bytes, no allocation, no libopus state. Used on every packet
 *     (stats, DTX detection, the fuzz target).
 *   - sfu_opus_meter_t: a libopus decoder at 16 kHz mono that turns packets
 *     into an RFC 6464 audio level. The room creates one per publisher that
 *     sends no ssrc-audio-level header extension, and only while someone
 *     needs speaking indicators; it is the one place the SFU decodes audio.
 *
 * Level scale (RFC 6464 §3, computed as RFC 6465 Appendix A does): the level
 * is -dBov rounded to an integer, where 0 dBov is the RMS of a full-scale
 * square wave, i.e. RMS 1.0 with samples in [-1, 1]. So
 *
 *   level = round(-10 * log10(mean(x[i]^2))), clamped to 0..127,
 *
 * and 127 also stands for digital silence. A full-scale sine has RMS
 * 1/sqrt(2), -3.01 dBov, level 3; a sine peaking at -20 dBFS has level 23,
 * and one whose RMS is -20 dBov (peak 0.1414) has level 20.
 */
#ifndef SFU_CODECS_OPUS_H
#define SFU_CODECS_OPUS_H

#include <stddef.h>
#include <stdint.h>

/* Codec modes (RFC 6716 §3.1, Table 2). */
#define SFU_OPUS_MODE_SILK 0
#define SFU_OPUS_MODE_HYBRID 1
#define SFU_OPUS_MODE_CELT 2

/* Audio bandwidths, narrowest first (RFC 6716 §2, Table 1). */
#define SFU_OPUS_BW_NB 0  /* narrowband, 4 kHz */
#define SFU_OPUS_BW_MB 1  /* medium-band, 6 kHz */
#define SFU_OPUS_BW_WB 2  /* wideband, 8 kHz */
#define SFU_OPUS_BW_SWB 3 /* super-wideband, 12 kHz */
#define SFU_OPUS_BW_FB 4  /* fullband, 20 kHz */

/* Largest frame the RFC allows (R2) and longest packet duration (R5). */
#define SFU_OPUS_MAX_FRAME_BYTES 1275
#define SFU_OPUS_MAX_PACKET_US 120000

/*
 * What the TOC byte (and, for code 3, the frame count byte) says about a
 * packet. Filled only by a successful sfu_opus_parse_toc(), which has also
 * checked that the frame lengths fit the packet (rules R1-R7).
 */
typedef struct {
  int config;    /* 0..31, the TOC's top five bits */
  int stereo;    /* 1 if the s bit is set */
  int code;      /* 0..3: frames per packet code (RFC 6716 §3.2) */
  int frames;    /* number of frames: 1, 2, 2, or M from the count byte */
  int frame_us;  /* duration of one frame: 2500..60000 microseconds */
  int bandwidth; /* SFU_OPUS_BW_* */
  int mode;      /* SFU_OPUS_MODE_*: 0 SILK, 1 hybrid, 2 CELT */
} sfu_opus_toc_t;

/*
 * Parse and validate an Opus packet (an RTP payload) as a view.
 *
 *   p, len  the packet; not kept past the call.
 *   out     filled on success, untouched on failure.
 *
 * Returns 0, or SFU_EPROTO for a packet the RFC calls malformed: empty, a
 * code 1 packet with an odd body, a code 2 length running past the end, a
 * code 3 packet with no count byte, zero frames, more than 120 ms, padding
 * or VBR lengths running past the end, a CBR body not divisible by the
 * count, or any frame longer than 1275 bytes. SFU_EINVAL if p or out is
 * NULL. Accepts exactly what libopus's opus_packet_parse() accepts (the
 * tests and the fuzz target check this).
 */
int sfu_opus_parse_toc(const uint8_t *p, size_t len, sfu_opus_toc_t *out);

/*
 * 1 if the packet carries no coded audio, so a decoder only conceals or
 * plays comfort noise: a payload of at most 2 bytes (the TOC-only packets a
 * libopus encoder emits while in DTX, or TOC plus one byte), or a valid
 * packet all of whose frames are 0 or 1 bytes long (libopus decodes such a
 * frame as a loss). 0 otherwise, including for malformed packets.
 *
 * Note that a payloader may drop DTX packets altogether (GStreamer's
 * rtpopuspay dtx=true does): then DTX shows only as a gap in the RTP
 * timestamps and the marker bit on the first packet after it.
 */
int sfu_opus_is_dtx(const uint8_t *p, size_t len);

/* Opaque: one OpusDecoder (16 kHz mono) and a PCM buffer, one allocation. */
typedef struct sfu_opus_meter_s sfu_opus_meter_t;

/*
 * Create a meter. On success *out owns one block of about 26 KB (18 KB of
 * decoder state plus a 7.5 KB buffer for 120 ms of PCM), and feeding it
 * never allocates. Returns 0, SFU_EINVAL (out NULL) or SFU_ENOMEM; *out is
 * NULL on failure.
 */
int sfu_opus_meter_create(sfu_opus_meter_t **out);

/* Free a meter. NULL is ignored. */
void sfu_opus_meter_destroy(sfu_opus_meter_t *m);

/*
 * Decode one packet, in RTP order, and return its level (see the top of this
 * file): 0..127 over all the packet's frames, 127 for silence. Decoding is
 * at 16 kHz mono whatever the packet's bandwidth or channel count, so the
 * level covers 0..8 kHz of the downmix, which is where speech energy is.
 *
 * Loss: either skip the packet (simplest; the decoder copes with the jump)
 * or pass p == NULL or len == 0 to run packet loss concealment for the last
 * packet's duration and get the level of the concealed audio.
 *
 * Returns SFU_EPROTO if libopus rejects the packet (the meter counts it in
 * sfu_opus_meter_errors(); the decoder stays usable), SFU_EINVAL if m is
 * NULL.
 */
int sfu_opus_meter_feed(sfu_opus_meter_t *m, const uint8_t *p, size_t len);

/*
 * Forget the decoder's history (OPUS_RESET_STATE). Call when metering
 * resumes after a pause, so the first packets are not decoded against the
 * state of audio from long ago. Counters are kept.
 */
void sfu_opus_meter_reset(sfu_opus_meter_t *m);

/* Packets libopus refused so far. */
uint64_t sfu_opus_meter_errors(const sfu_opus_meter_t *m);

/* Packets decoded so far (including concealment calls). */
uint64_t sfu_opus_meter_packets(const sfu_opus_meter_t *m);

#endif
