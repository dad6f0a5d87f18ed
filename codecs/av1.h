/*
 * av1.h -- AV1 RTP payloads (AOMedia "RTP Payload Format for AV1" v1.0):
 * the aggregation header and OBU elements as views, keyframe detection,
 * layer ids and the sequence header's maximum picture size.
 *
 * sfu_av1_parse() (declared in codecs/video.h) fills sfu_video_info_t:
 *
 *   keyframe      the N bit: the packet is the first of a coded video
 *                 sequence, which is where a decoder can start (senders
 *                 set it on the first packet of each keyframe, which
 *                 carries the sequence header).
 *   begins_frame  Z = 0 (the first element is not the tail of an OBU
 *                 from the previous packet) and that first OBU is one a
 *                 frame can open with: sequence header (1), temporal
 *                 delimiter (2), frame header (3), metadata (5) or frame
 *                 (6). A packet opening with a tile group continues a
 *                 frame. With spatial layers, each layer's frame begins.
 *   tid, sid      temporal_id / spatial_id of the first OBU that starts in
 *                 this packet and has an extension header, else -1.
 *   width, height max_frame_width_minus_1 + 1 / max_frame_height_minus_1
 *                 + 1 of a sequence header that starts in this packet (the
 *                 largest frame of the sequence: what a non-scalable
 *                 encoder sends, and the top layer's size with spatial
 *                 layers), else 0.
 *   picture_id, tl0picidx  always -1 (layer structure travels in the
 *                 dependency descriptor header extension).
 *
 * SFU_EINVAL: len < 2 (no OBU element), an element length (leb128) that is
 * overlong or runs past the end, an element of length 0, or with W != 0
 * fewer elements than W says.
 */
#ifndef SFU_CODECS_AV1_H
#define SFU_CODECS_AV1_H

#include <stddef.h>
#include <stdint.h>

#include "codecs/video.h"

/* OBU types (AV1 bitstream §6.2.2). */
#define SFU_AV1_OBU_SEQUENCE_HEADER 1
#define SFU_AV1_OBU_TEMPORAL_DELIMITER 2
#define SFU_AV1_OBU_FRAME_HEADER 3
#define SFU_AV1_OBU_TILE_GROUP 4
#define SFU_AV1_OBU_METADATA 5
#define SFU_AV1_OBU_FRAME 6

#endif
