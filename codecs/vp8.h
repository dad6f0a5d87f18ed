/*
 * vp8.h -- VP8 RTP payloads (RFC 7741): the payload descriptor as a view,
 * keyframe detection, and the in-place picture id / TL0PICIDX rewrite the
 * forwarder uses to switch simulcast layers without a visible jump.
 *
 * sfu_vp8_parse() (declared in codecs/video.h) fills sfu_video_info_t:
 *
 *   begins_frame  S = 1 and PID = 0: the packet starts partition 0, so
 *                 the frame.
 *   keyframe      begins_frame and the P bit of the VP8 payload header is
 *                 0 (RFC 7741 §4.3, RFC 6386 §9.1).
 *   tid, switch_up  TID and Y when the T bit is set, else -1 and 0.
 *   picture_id, pid_bits  7- or 15-bit picture id (the M bit), when I = 1.
 *   tl0picidx     when L = 1.
 *   width, height the 14-bit sizes of a keyframe's frame header, if this
 *                 packet holds all 10 bytes of it and the start code
 *                 9d 01 2a is right; else 0. Scaling bits are dropped.
 *   sid           always -1 (VP8 has no spatial layers; simulcast is by
 *                 SSRC/RID).
 *
 * SFU_EINVAL: len 0, an X/I/L/T/K field past the end, or no payload byte
 * after the descriptor.
 */
#ifndef SFU_CODECS_VP8_H
#define SFU_CODECS_VP8_H

#include <stddef.h>
#include <stdint.h>

#include "codecs/video.h"

/*
 * Rewrites the picture id and TL0PICIDX of a VP8 payload in place, keeping
 * the descriptor's layout: a 7-bit id stays 7 bits and a 15-bit id stays
 * 15 bits, so no byte moves and the payload length is unchanged.
 *
 *   p, len      a writable payload (the forwarder's own copy).
 *   picture_id  the new id, taken modulo the field (& 0x7f or & 0x7fff),
 *               so a caller may pass a running counter; < 0 leaves the
 *               field as it is.
 *   tl0picidx   the new TL0PICIDX, taken & 0xff; < 0 leaves it.
 *
 * A field the descriptor does not carry is left absent (there is no room
 * to add it); the caller can tell from sfu_vp8_parse() which are there.
 * Returns 0, or SFU_EINVAL if p is NULL or the descriptor is malformed (as
 * sfu_vp8_parse() would say), in which case nothing was written.
 */
int sfu_vp8_rewrite(uint8_t *p, size_t len, int picture_id, int tl0picidx);

#endif
