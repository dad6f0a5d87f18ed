/*
 * fuzz_opus.c -- libFuzzer target for codecs/opus.c: the packet view and
 * the level meter, on bytes straight off the network.
 *
 * Per input:
 *
 *   1. The whole input is one packet. sfu_opus_parse_toc() must agree with
 *      libopus's opus_packet_parse() on validity and frame count, and
 *      sfu_opus_is_dtx() must agree with the frame sizes libopus reports
 *      (every frame <= 1 byte) for valid packets longer than 2 bytes.
 *   2. The meter decodes it, then conceals one loss (NULL packet). Each
 *      call returns a level in 0..127 or a negative error.
 *   3. The input is cut into a packet stream, each piece led by a length
 *      byte, and fed to the same decoder in turn, so mode, bandwidth and
 *      channel switches between packets are reached too.
 *
 * The meter is created once and reset for every input, so a crash
 * reproduces from its input alone.
 *
 * Build by hand:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -I. \
 *     tests/fuzz/fuzz_opus.c codecs/opus.c sfu/base/err.c \
 *     $(pkg-config --cflags --libs opus) -lm
 *   ./a.out -max_len=1500 tests/fuzz/corpus/opus
 *
 * Seeds in tests/fuzz/corpus/opus/ are real payloads from the GStreamer
 * captures plus hand-made code 1/2/3 packets (tests/data/opus/
 * extract_pcap.py writes them).
 */
#include <stdint.h>
#include <stdlib.h>

#include <opus.h>

#include "codecs/opus.h"
#include "sfu/base/sfu.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static sfu_opus_meter_t *meter;

static void check_level(int lv) {
  if (lv > 127 || (lv < 0 && lv != SFU_EPROTO))
    abort();
}

static void check_view(const uint8_t *data, size_t size) {
  const unsigned char *frames[48];
  opus_int16 sizes[48];
  unsigned char toc;
  sfu_opus_toc_t t;
  int ours, theirs, i, dtx = 1;

  ours = sfu_opus_parse_toc(data, size, &t);
  theirs = size > (size_t)INT32_MAX
               ? OPUS_BAD_ARG
               : opus_packet_parse(data, (opus_int32)size, &toc, frames,
                                   sizes, NULL);
  if ((ours == 0) != (theirs >= 0))
    abort();
  if (ours != 0) {
    if (ours != SFU_EPROTO)
      abort();
    if (size > 2 && sfu_opus_is_dtx(data, size))
      abort();
    return;
  }
  if (t.frames != theirs || t.config != data[0] >> 3 ||
      t.frames * t.frame_us > SFU_OPUS_MAX_PACKET_US)
    abort();
  for (i = 0; i < theirs; i++)
    if (sizes[i] > 1)
      dtx = 0;
  if (size > 2 && sfu_opus_is_dtx(data, size) != dtx)
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  size_t off = 0;

  if (meter == NULL && sfu_opus_meter_create(&meter) != 0)
    abort();
  sfu_opus_meter_reset(meter);

  check_view(data, size);
  check_level(sfu_opus_meter_feed(meter, data, size));
  check_level(sfu_opus_meter_feed(meter, NULL, 0));

  sfu_opus_meter_reset(meter);
  while (off < size) {
    size_t len = data[off++];
    if (len > size - off)
      len = size - off;
    check_level(sfu_opus_meter_feed(meter, data + off, len));
    off += len;
  }
  return 0;
}
