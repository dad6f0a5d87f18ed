/*
 * fuzz_video.c -- libFuzzer target for the video payload views:
 * codecs/vp8.c, vp9.c, h264.c and av1.c, on bytes straight off the network.
 *
 * The input's first byte picks the codec (low two bits: 0 VP8, 1 VP9,
 * 2 H.264, 3 AV1, looked up by name through sfu_video_parser()), the rest
 * is one RTP payload, parsed from a heap copy of exactly its size so ASan
 * sees any read past the end. Per input:
 *
 *   1. The parser returns 0 or SFU_EINVAL, and on 0 every field is in its
 *      range: flags 0/1, tid and sid -1..7, a picture id that fits its
 *      pid_bits (7 or 15, or -1 with 0), TL0PICIDX -1..255, sizes
 *      0..65536, and no field a codec cannot carry (no sid for VP8, no
 *      picture id for H.264 and AV1, ...). For VP8 and VP9 a keyframe
 *      always begins a frame.
 *   2. Parsing again gives the same result (no hidden state).
 *   3. VP8 only: sfu_vp8_rewrite() on a copy succeeds exactly when the
 *      parse did, changes at most the three id/TL0PICIDX bytes, and the
 *      rewritten payload parses to the same info but for the new ids,
 *      which are the requested ones cut to the field widths.
 *
 * Build by hand:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -I. \
 *     tests/fuzz/fuzz_video.c codecs/vp8.c codecs/vp9.c codecs/h264.c \
 *     codecs/av1.c sfu/base/err.c
 *   ./a.out -max_len=1500 tests/fuzz/corpus/video
 *
 * Seeds in tests/fuzz/corpus/video/ are payloads cut out of the captures
 * in tests/data/pcaps (VP8, VP9, H.264, AV1: keyframe and first packets
 * with their SS / SPS / sequence header, middle and last packets, FU-A
 * starts and ends, cut to at most 300 bytes), each behind its codec byte,
 * plus a few hand-made ones for what the captures lack (VP9 spatial
 * layers and flexible mode, AV1 OBU extensions and W = 0, H.264 SEI/AUD).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codecs/video.h"
#include "codecs/vp8.h"
#include "sfu/base/sfu.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const NAMES[4] = {"vp8", "VP9", "h264", "Av1"};

static void check_range(int codec, const sfu_video_info_t *v) {
  if ((v->keyframe != 0 && v->keyframe != 1) ||
      (v->begins_frame != 0 && v->begins_frame != 1) ||
      (v->switch_up != 0 && v->switch_up != 1))
    abort();
  if (v->tid < -1 || v->tid > 7 || v->sid < -1 || v->sid > 7)
    abort();
  if (v->tl0picidx < -1 || v->tl0picidx > 255)
    abort();
  if (v->pid_bits == 0) {
    if (v->picture_id != -1)
      abort();
  } else if (v->pid_bits != 7 && v->pid_bits != 15) {
    abort();
  } else if (v->picture_id < 0 || v->picture_id >= 1 << v->pid_bits) {
    abort();
  }
  if (v->width < 0 || v->width > 65536 || v->height < 0 ||
      v->height > 65536)
    abort();
  if (!v->keyframe && (codec == 0 || codec == 2) && v->width != 0)
    abort(); /* VP8 and H.264 sizes only come with a keyframe */

  switch (codec) {
  case 0: /* VP8: no spatial layers */
    if (v->sid != -1 || (v->keyframe && !v->begins_frame))
      abort();
    break;
  case 1: /* VP9 */
    if (v->keyframe && (!v->begins_frame || v->sid > 0))
      abort();
    break;
  case 2: /* H.264: nothing but the flags and sizes */
    if (v->tid != -1 || v->sid != -1 || v->pid_bits != 0 ||
        v->tl0picidx != -1 || v->switch_up != 0)
      abort();
    break;
  default: /* AV1: ids from OBU extensions only */
    if (v->sid > 3 || v->pid_bits != 0 || v->tl0picidx != -1 ||
        v->switch_up != 0)
      abort();
    break;
  }
}

static void check_rewrite(const uint8_t *p, size_t len, int parsed,
                          const sfu_video_info_t *v) {
  sfu_video_info_t w;
  uint8_t *copy = malloc(len ? len : 1);
  int pid = (int)(len * 7919u & 0x1ffff), tl0 = (int)(len * 31u & 0x1ff);
  size_t i, diff = 0;

  if (copy == NULL)
    abort();
  if (len)
    memcpy(copy, p, len);
  if ((sfu_vp8_rewrite(copy, len, pid, tl0) == 0) != parsed)
    abort();
  if (!parsed) {
    if (len && memcmp(copy, p, len) != 0) /* refused: nothing written */
      abort();
    free(copy);
    return;
  }
  for (i = 0; i < len; i++)
    diff += copy[i] != p[i];
  if (diff > 3 || (len > 5 && memcmp(copy + 5, p + 5, len - 5) != 0))
    abort();
  if (sfu_vp8_parse(copy, len, &w) != 0)
    abort();
  if (v->pid_bits && w.picture_id != (pid & ((1 << v->pid_bits) - 1)))
    abort();
  if (v->tl0picidx >= 0 && w.tl0picidx != (tl0 & 0xff))
    abort();
  w.picture_id = v->picture_id;
  w.tl0picidx = v->tl0picidx;
  if (memcmp(&w, v, sizeof(w)) != 0)
    abort();
  free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  sfu_video_info_t a, b;
  sfu_video_parse_fn fn;
  uint8_t *p;
  size_t len;
  int codec, ra, rb;

  if (size < 1)
    return 0;
  codec = data[0] & 3;
  fn = sfu_video_parser(NAMES[codec]);
  if (fn == NULL)
    abort();
  len = size - 1;
  p = malloc(len ? len : 1);
  if (p == NULL)
    abort();
  if (len)
    memcpy(p, data + 1, len);

  memset(&a, 0x5a, sizeof(a));
  memset(&b, 0xa5, sizeof(b));
  ra = fn(p, len, &a);
  rb = fn(p, len, &b);
  if (ra != rb || (ra != 0 && ra != SFU_EINVAL))
    abort();
  if (ra == 0) {
    check_range(codec, &a);
    if (memcmp(&a, &b, sizeof(a)) != 0)
      abort();
  }
  if (codec == 0)
    check_rewrite(p, len, ra == 0, &a);
  free(p);
  return 0;
}
