/*
 * vp9.h -- VP9 RTP payloads (RFC 9628, formerly draft-ietf-payload-vp9):
 * the payload descriptor as a view, keyframe detection and picture size.
 *
 * sfu_vp9_parse() (declared in codecs/video.h) fills sfu_video_info_t:
 *
 *   begins_frame  the B bit: first packet of a layer frame (with spatial
 *                 layers, each layer's frame of a picture has its own B).
 *   keyframe      B = 1, P = 0 (no inter-picture prediction), and SID = 0
 *                 or no layer byte: a decoder can start here. An upper
 *                 spatial layer with P = 0 still predicts from the layer
 *                 below, so it does not count.
 *   tid, sid, switch_up  TID, SID and the U bit when L = 1.
 *   picture_id, pid_bits  7- or 15-bit id when I = 1.
 *   tl0picidx     when L = 1 in non-flexible mode (F = 0).
 *   width, height the size of this layer's frame: from the VP9
 *                 uncompressed header when the packet begins a keyframe
 *                 (frame_width_minus_1 + 1, ...), else from the
 *                 scalability structure (V = 1) entry of this packet's
 *                 spatial layer (layer 0 without L), else 0.
 *
 * SFU_EINVAL: len 0, a descriptor field past the end, a fourth P_DIFF
 * (N set on the third), SS sizes or picture groups past the end, or no
 * payload byte after the descriptor.
 */
#ifndef SFU_CODECS_VP9_H
#define SFU_CODECS_VP9_H

#include <stddef.h>
#include <stdint.h>

#include "codecs/video.h"

#endif
