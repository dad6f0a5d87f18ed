/*
 * h264.c -- H.264 RTP payloads (RFC 6184 §5.6-§5.8) read in place, and the
 * picture size from a sequence parameter set (ITU-T H.264 §7.3.2.1.1).
 *
 * Every RTP payload starts with a one-byte NAL unit header whose type says
 * how the rest is framed: 1-23 is one whole NAL unit, 24 (STAP-A) is a run
 * of 16-bit-length-prefixed NAL units, 28 (FU-A) is one fragment of a NAL
 * unit too big for a packet. sfu_h264_parse() frames the payload, checks
 * every aggregated size against what is left, and hands each NAL unit (or
 * an FU-A start fragment, with its reconstructed header) to nal_unit(),
 * which sets the flags; see codecs/h264.h for the rules.
 *
 * The SPS is the one place the parser reads the bitstream proper. Its RBSP
 * has emulation prevention bytes (00 00 03) that must go before the
 * Exp-Golomb fields can be read, so the SPS is unescaped into a buffer on
 * the stack (SPS_MAX bytes; a real SPS is 10-30 bytes, a few hundred with
 * scaling lists). A longer one is read as far as the buffer goes, which
 * only matters if its size fields lie past that point, and then the size
 * is simply left at 0.
 */
#include "codecs/h264.h"
#include "sfu/base/bytes.h"
#include "sfu/base/sfu.h"

/*
 * NAL unit header (RFC 6184 §1.3):
 *
 *   +---------------+
 *   |0|1|2|3|4|5|6|7|
 *   +-+-+-+-+-+-+-+-+
 *   |F|NRI|  Type   |
 *   +---------------+
 *
 * STAP-A (§5.7.1): STAP-A NAL header, then for each unit
 *
 *   | NALU size (16) | NAL unit (header + body) | ...
 *
 * FU-A (§5.8): FU indicator (F, NRI, type 28), FU header, fragment:
 *
 *   +---------------+---------------+
 *   |F|NRI|  Type   |S|E|R|  Type   |   S: first fragment, E: last,
 *   +---------------+---------------+   second Type: the fragmented
 *   | FU payload ...                    NAL unit's type
 */
#define NAL_TYPE(b) ((b) & 0x1f)
#define FU_S 0x80
#define FU_E 0x40
#define SPS_MAX 512
#define MAX_DIM 65535

/*
 * Picture size from an SPS body (the bytes after its NAL header, still
 * escaped). Syntax (§7.3.2.1.1), reading only up to frame_cropping:
 *
 *   profile_idc u(8), constraint flags u(8), level_idc u(8),
 *   seq_parameter_set_id ue,
 *   [high profiles: chroma_format_idc ue, [separate_colour_plane u(1) if
 *    3], bit_depth_luma_minus8 ue, bit_depth_chroma_minus8 ue,
 *    qpprime_y_zero_transform_bypass u(1), seq_scaling_matrix_present u(1)
 *    and 8 (12 for 4:4:4) optional scaling lists],
 *   log2_max_frame_num_minus4 ue, pic_order_cnt_type ue, [its fields],
 *   max_num_ref_frames ue, gaps_in_frame_num_allowed u(1),
 *   pic_width_in_mbs_minus1 ue, pic_height_in_map_units_minus1 ue,
 *   frame_mbs_only u(1), [mb_adaptive_frame_field u(1) if 0],
 *   direct_8x8_inference u(1), frame_cropping u(1),
 *   [left, right, top, bottom offsets ue].
 *
 * The cropped size is (§7.4.2.1.1)
 *   width  = 16 * mbs_wide - CropUnitX * (left + right)
 *   height = 16 * (2 - frame_mbs_only) * map_units_high
 *            - CropUnitY * (top + bottom)
 * with CropUnitX = SubWidthC and CropUnitY = SubHeightC * (2 -
 * frame_mbs_only) for chroma formats 1-3, and 1 / (2 - frame_mbs_only)
 * for monochrome or separate colour planes.
 *
 * Returns 1 and the size, or 0 if the SPS is cut short or nonsensical.
 */
static int sps_size(const uint8_t *body, size_t len, int *w, int *h) {
  uint8_t rbsp[SPS_MAX];
  size_t n = 0, i;
  int zeros = 0;
  sfu__bits_t b;
  uint32_t profile, chroma = 1, poc_type, mbs_w, map_h, frame_mbs_only;
  uint32_t sub_w, sub_h, crop_x, crop_y;
  uint64_t width, height, cl = 0, cr = 0, ct = 0, cb = 0;
  int separate = 0;

  for (i = 0; i < len && n < sizeof(rbsp); i++) {
    if (zeros >= 2 && body[i] == 3) { /* emulation prevention byte */
      zeros = 0;
      continue;
    }
    zeros = body[i] == 0 ? zeros + 1 : 0;
    rbsp[n++] = body[i];
  }
  sfu__bits_init(&b, rbsp, n);

  profile = sfu__bits_get(&b, 8);
  sfu__bits_get(&b, 16); /* constraint flags, level_idc */
  sfu__bits_ue(&b);      /* seq_parameter_set_id */
  switch (profile) {
  case 100: case 110: case 122: case 244: case 44: case 83: case 86:
  case 118: case 128: case 138: case 139: case 134: case 135:
    chroma = sfu__bits_ue(&b);
    if (chroma > 3)
      return 0;
    if (chroma == 3)
      separate = (int)sfu__bits_get(&b, 1);
    sfu__bits_ue(&b);     /* bit_depth_luma_minus8 */
    sfu__bits_ue(&b);     /* bit_depth_chroma_minus8 */
    sfu__bits_get(&b, 1); /* qpprime_y_zero_transform_bypass_flag */
    if (sfu__bits_get(&b, 1)) { /* seq_scaling_matrix_present_flag */
      int lists = chroma != 3 ? 8 : 12, l, j;
      for (l = 0; l < lists && !b.err; l++) {
        int size = l < 6 ? 16 : 64, last = 8, next = 8;
        if (!sfu__bits_get(&b, 1)) /* seq_scaling_list_present_flag */
          continue;
        for (j = 0; j < size && !b.err; j++) {
          if (next != 0) {
            int32_t delta = sfu__bits_se(&b);
            if (delta < -128 || delta > 127)
              return 0;
            next = (last + delta + 256) % 256;
          }
          last = next == 0 ? last : next;
        }
      }
    }
    break;
  default:
    break;
  }
  sfu__bits_ue(&b); /* log2_max_frame_num_minus4 */
  poc_type = sfu__bits_ue(&b);
  if (poc_type == 0) {
    sfu__bits_ue(&b); /* log2_max_pic_order_cnt_lsb_minus4 */
  } else if (poc_type == 1) {
    uint32_t cycle, k;
    sfu__bits_get(&b, 1); /* delta_pic_order_always_zero_flag */
    sfu__bits_se(&b);     /* offset_for_non_ref_pic */
    sfu__bits_se(&b);     /* offset_for_top_to_bottom_field */
    cycle = sfu__bits_ue(&b);
    if (cycle > 255)
      return 0;
    for (k = 0; k < cycle && !b.err; k++)
      sfu__bits_se(&b); /* offset_for_ref_frame[k] */
  } else if (poc_type > 2) {
    return 0;
  }
  sfu__bits_ue(&b);     /* max_num_ref_frames */
  sfu__bits_get(&b, 1); /* gaps_in_frame_num_value_allowed_flag */
  mbs_w = sfu__bits_ue(&b);
  map_h = sfu__bits_ue(&b);
  frame_mbs_only = sfu__bits_get(&b, 1);
  if (!frame_mbs_only)
    sfu__bits_get(&b, 1); /* mb_adaptive_frame_field_flag */
  sfu__bits_get(&b, 1);   /* direct_8x8_inference_flag */
  if (sfu__bits_get(&b, 1)) { /* frame_cropping_flag */
    cl = sfu__bits_ue(&b);
    cr = sfu__bits_ue(&b);
    ct = sfu__bits_ue(&b);
    cb = sfu__bits_ue(&b);
  }
  if (b.err)
    return 0;

  if (chroma == 0 || separate) {
    crop_x = 1;
    crop_y = 2 - frame_mbs_only;
  } else {
    sub_w = chroma == 3 ? 1 : 2;
    sub_h = chroma == 1 ? 2 : 1;
    crop_x = sub_w;
    crop_y = sub_h * (2 - frame_mbs_only);
  }
  width = ((uint64_t)mbs_w + 1) * 16;
  height = ((uint64_t)map_h + 1) * 16 * (2 - frame_mbs_only);
  if (width > MAX_DIM || height > MAX_DIM ||
      crop_x * (cl + cr) >= width || crop_y * (ct + cb) >= height)
    return 0;
  *w = (int)(width - crop_x * (cl + cr));
  *h = (int)(height - crop_y * (ct + cb));
  return 1;
}

/* first_mb_in_slice == 0: ue(v) is 0 exactly when its first bit is 1. */
static int first_slice(const uint8_t *body, size_t len) {
  return len >= 1 && (body[0] & 0x80);
}

/*
 * One NAL unit, or the start of a fragmented one: `hdr` is its header
 * byte, body/len what follows it (for a fragment, only what this packet
 * has). `first`: it is the packet's first NAL unit. `whole`: all of it is
 * here, so an SPS can be read.
 */
static void nal_unit(uint8_t hdr, const uint8_t *body, size_t len,
                     int first, int whole, sfu_video_info_t *out) {
  int type = NAL_TYPE(hdr);

  switch (type) {
  case SFU_H264_NAL_SLICE:
  case 2: /* slice data partition A: starts with a slice header too */
    if (first)
      out->begins_frame = first_slice(body, len);
    break;
  case SFU_H264_NAL_IDR:
    if (first_slice(body, len)) {
      out->keyframe = 1;
      if (first)
        out->begins_frame = 1;
    }
    break;
  case SFU_H264_NAL_SPS:
    out->keyframe = 1;
    if (whole && out->width == 0)
      sps_size(body, len, &out->width, &out->height);
    /* fall through */
  case SFU_H264_NAL_SEI:
  case SFU_H264_NAL_PPS:
  case SFU_H264_NAL_AUD:
  case 14: case 15: case 16: case 17: case 18:
    if (first)
      out->begins_frame = 1;
    break;
  default:
    break;
  }
}

int sfu_h264_parse(const uint8_t *p, size_t len, sfu_video_info_t *out) {
  size_t off, size;
  int type, count;

  if (p == NULL || out == NULL || len < 1)
    return SFU_EINVAL;
  sfu__video_info_reset(out);
  type = NAL_TYPE(p[0]);

  if (type >= 1 && type <= 23) {
    nal_unit(p[0], p + 1, len - 1, 1, 1, out);
    return 0;
  }

  switch (type) {
  case SFU_H264_NAL_STAP_A:
    off = 1;
    count = 0;
    while (off < len) {
      if (len - off < 2)
        return SFU_EINVAL;
      size = sfu_rd16(p + off);
      off += 2;
      if (size == 0 || size > len - off)
        return SFU_EINVAL;
      nal_unit(p[off], p + off + 1, size - 1, count == 0, 1, out);
      off += size;
      count++;
    }
    if (count == 0)
      return SFU_EINVAL;
    return 0;

  case SFU_H264_NAL_FU_A:
    if (len < 2 || ((p[1] & FU_S) && (p[1] & FU_E)))
      return SFU_EINVAL;
    if (p[1] & FU_S)
      nal_unit((uint8_t)((p[0] & 0xe0) | NAL_TYPE(p[1])), p + 2, len - 2, 1,
               0, out);
    return 0;

  default: /* 0, 25-27, 29-31: undefined or interleaved mode */
    return 0;
  }
}
