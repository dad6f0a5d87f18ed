/*
 * dd.h -- the Dependency Descriptor RTP header extension (AV1 RTP payload
 * specification, appendix A): a view of one descriptor, the template
 * dependency structure it refers to, and the rewrite the forwarder needs.
 *
 * A descriptor says, for the frame its packet belongs to: whether the
 * packet starts or ends the frame, the frame's number, and a template id.
 * The template, from a structure the sender attaches to the first packet
 * of each keyframe, gives the frame's spatial and temporal ids, its
 * decode target indications, frame diffs and chain diffs; a descriptor
 * may override the last three (custom dtis, fdiffs, chains). So a packet
 * can be read only with the structure last attached: the caller keeps it
 * (sfu_dd_structure_t, one per published stream) and hands it to every
 * parse.
 *
 * Nothing here allocates or keeps anything between calls: the parser is a
 * view over the extension's bytes, every read bounded by them
 * (sfu__bits_t), and the rewriter writes into the caller's buffer. The
 * forwarder (sfu/room/forwarder.c) is the only user; docs/internals/codecs.md
 * describes what it does with them.
 */
#ifndef SFU_MEDIA_DD_H
#define SFU_MEDIA_DD_H

#include <stddef.h>
#include <stdint.h>

#define SFU_DD_URI "https://aomediacodec.github.io/av1-rtp-spec/#dependency-descriptor-rtp-header-extension"

#define SFU_DD_MAX_TEMPLATES 64 /* template ids are 6 bits */
#define SFU_DD_MAX_TARGETS 32   /* dt_cnt_minus_one is 5 bits */
#define SFU_DD_MAX_SPATIAL 4    /* spatial ids 0..3 */
#define SFU_DD_MAX_TEMPORAL 8   /* temporal ids 0..7 */
#define SFU_DD_MAX_FDIFFS 16    /* frame diffs of one frame or template */
#define SFU_DD_MAX_LEN 255      /* the most a two-byte header element holds */

/* Decode target indications (appendix A.8.3), 2 bits each. */
#define SFU_DD_DTI_NOT_PRESENT 0
#define SFU_DD_DTI_DISCARDABLE 1
#define SFU_DD_DTI_SWITCH 2
#define SFU_DD_DTI_REQUIRED 3

/*
 * A template dependency structure, as attached to a keyframe's first
 * packet. Owned by the caller (per published stream, about 3.5 KiB),
 * filled by sfu_dd_parse() when a packet carries one; valid once
 * ntemplates > 0. Arrays are indexed by template index (template id minus
 * id_offset, modulo 64) or by decode target.
 */
typedef struct sfu_dd_structure_s {
  int id_offset;                /* template_id_offset: template 0's id */
  int ntemplates;               /* 1..64; 0 = none known */
  int ntargets;                 /* decode targets, 1..32 */
  int nchains;                  /* chains, 0..ntargets */
  int max_sid, max_tid;         /* highest spatial / temporal id of a template */
  uint8_t sid[SFU_DD_MAX_TEMPLATES], tid[SFU_DD_MAX_TEMPLATES]; /* per template */
  uint64_t dti[SFU_DD_MAX_TEMPLATES]; /* per template: target i's DTI at bits 2i..2i+1 */
  uint8_t nfdiffs[SFU_DD_MAX_TEMPLATES]; /* per template: its frame diffs ... */
  uint8_t fdiff[SFU_DD_MAX_TEMPLATES][SFU_DD_MAX_FDIFFS]; /* ... 1..16 each */
  uint8_t chain_fdiff[SFU_DD_MAX_TEMPLATES][SFU_DD_MAX_TARGETS]; /* per template and chain, 0..15 */
  uint8_t protected_by[SFU_DD_MAX_TARGETS]; /* per target: the chain protecting it */
  uint8_t target_sid[SFU_DD_MAX_TARGETS]; /* per target: the highest spatial ... */
  uint8_t target_tid[SFU_DD_MAX_TARGETS]; /* ... and temporal id it decodes */
  int has_resolutions;          /* render resolutions are given ... */
  uint16_t width[SFU_DD_MAX_SPATIAL], height[SFU_DD_MAX_SPATIAL]; /* ... per spatial id */
} sfu_dd_structure_t;

/*
 * One descriptor read by sfu_dd_parse(): values, and where its parts lie
 * (bit offsets from its first byte) for sfu_dd_rewrite(). Lives on the
 * caller's stack; points at nothing.
 */
typedef struct sfu_dd_s {
  int start, end;               /* start_of_frame, end_of_frame: 0/1 */
  int template_id;              /* frame_dependency_template_id, 0..63 */
  uint16_t frame_number;        /* 16 bits, wrapping */
  int extended;                 /* longer than the 3 mandatory bytes */
  int has_structure;            /* carries a template dependency structure */
  int has_mask;                 /* active_decode_targets_present_flag */
  uint32_t active_mask;         /* the active decode targets it carries, or
                                   all of them with a structure; else 0 */
  int custom_dtis, custom_fdiffs, custom_chains; /* flags: 0/1 */
  int sid, tid;                 /* the frame's spatial / temporal id */
  uint64_t dti;                 /* its decode target indications (as in the structure) */
  int nfdiffs;                  /* its frame diffs ... */
  uint16_t fdiff[SFU_DD_MAX_FDIFFS]; /* ... 1..4096 each */
  uint8_t chain_fdiff[SFU_DD_MAX_TARGETS]; /* per chain */
  int width, height;            /* its spatial layer's render size; 0 = not given */
  size_t structure_at, structure_end; /* template_dependency_structure() bits, or 0, 0 */
  size_t custom_at, custom_end; /* the custom dtis / fdiffs / chains bits */
  size_t len;                   /* bytes of the descriptor */
} sfu_dd_t;

/*
 * Reads the descriptor p/len (an extension element's value). `known` is
 * the structure last attached to the stream (NULL or ntemplates 0: none);
 * a descriptor that carries a structure has it parsed into `fresh`
 * (required then, and different from `known`), which it is read with:
 * the caller makes `fresh` its known structure once the call succeeds.
 *
 * Returns 0 and *out; SFU_EINVAL if len < 3 or > SFU_DD_MAX_LEN, a field
 * runs past the end, a structure breaks the limits above (more templates,
 * spatial or temporal ids, frame diffs; layers out of order), or the
 * template id names no template of the structure; SFU_ENOENT if the
 * descriptor needs a structure and none is known (out then holds the
 * mandatory fields). `fresh` may be written even on failure.
 */
int sfu_dd_parse(const uint8_t *p, size_t len, const sfu_dd_structure_t *known,
                 sfu_dd_structure_t *fresh, sfu_dd_t *out);

/*
 * The decode targets of `st` that a receiver of spatial ids 0..max_sid and
 * temporal ids 0..max_tid gets whole: bit i for target i. 0 if st is NULL
 * or empty.
 */
uint32_t sfu_dd_targets_upto(const sfu_dd_structure_t *st, int max_sid, int max_tid);

/*
 * Writes descriptor p/len (parsed as `v`, with a structure of `ntargets`
 * decode targets) into out/cap with frame number `frame_number` and the
 * active decode targets `mask` (bits above ntargets ignored): the same
 * descriptor otherwise, its structure and custom fields copied bit for
 * bit, a mandatory-only one made extended. Returns the length (at most
 * len + 5), SFU_E2BIG if it does not fit in cap or SFU_DD_MAX_LEN,
 * SFU_EINVAL if ntargets is out of 1..32. Never reads p past len.
 */
int sfu_dd_rewrite(const uint8_t *p, size_t len, const sfu_dd_t *v, int ntargets, uint32_t mask,
                   uint16_t frame_number, uint8_t *out, size_t cap);

/* Sets the frame number of a descriptor in place (len >= 3). */
void sfu_dd_set_frame_number(uint8_t *p, uint16_t frame_number);

#endif
