/*
 * h264.h -- H.264 RTP payloads (RFC 6184, packetization modes 0 and 1):
 * single NAL unit packets, STAP-A and FU-A as views, keyframe detection,
 * and the picture size from a sequence parameter set.
 *
 * sfu_h264_parse() (declared in codecs/video.h) looks at the first NAL
 * unit of the packet for begins_frame and at every NAL unit for keyframe;
 * for FU-A only the start fragment (S = 1) says anything, through the
 * fragmented NAL unit's type in the FU header.
 *
 *   begins_frame  the packet's first NAL unit is one that can open an
 *                 access unit (H.264 §7.4.1.2.3): SEI (6), SPS (7),
 *                 PPS (8), access unit delimiter (9), types 14-18, or a
 *                 slice (1, 2, 5) whose first_mb_in_slice is 0 (the first
 *                 slice of a picture). An SPS+PPS packet followed by an
 *                 FU-A with the IDR start flags both: the frame boundary
 *                 is at the first one whose RTP timestamp is new.
 *   keyframe      the packet holds an SPS, or the start of an IDR slice
 *                 (type 5) with first_mb_in_slice 0. Browsers send
 *                 SPS + PPS + IDR together, in one STAP-A or as separate
 *                 packets of one timestamp, so the flag is on the first
 *                 packet of the keyframe either way. An encoder that
 *                 repeats its SPS before non-IDR pictures (or uses
 *                 intra refresh) gets those flagged too; browser
 *                 encoders normally send the SPS only with an IDR.
 *   width, height from a complete SPS in the packet (single NAL unit or
 *                 inside a STAP-A; not a fragmented one): the cropped
 *                 size a decoder outputs (§7.4.2.1.1, frame_cropping).
 *   tid, sid, picture_id, tl0picidx  always -1: base H.264 carries no
 *                 layer ids in the payload (they travel in the dependency
 *                 descriptor or frame marking header extensions).
 *
 * SFU_EINVAL: len 0, a STAP-A with no NAL unit, a NAL unit size of 0 or
 * past the end, an FU-A without its FU header, or one with both S and E
 * set. Types 0 and 30-31 (undefined) and the interleaved-mode types
 * (STAP-B 25, MTAP 26-27, FU-B 29), which the SFU never negotiates, parse
 * as 0 with nothing flagged.
 */
#ifndef SFU_CODECS_H264_H
#define SFU_CODECS_H264_H

#include <stddef.h>
#include <stdint.h>

#include "codecs/video.h"

/* NAL unit types (H.264 Table 7-1, RFC 6184 Table 3). */
#define SFU_H264_NAL_SLICE 1
#define SFU_H264_NAL_IDR 5
#define SFU_H264_NAL_SEI 6
#define SFU_H264_NAL_SPS 7
#define SFU_H264_NAL_PPS 8
#define SFU_H264_NAL_AUD 9
#define SFU_H264_NAL_STAP_A 24
#define SFU_H264_NAL_FU_A 28

#endif
