/*
 * fuzz_wav.c -- the WAV reader of sfu-replay (tools/replay/source.h): any
 * input parses into samples that lie inside it, or is refused with a reason.
 */
#include <stdint.h>
#include <stdlib.h>

#include "tools/replay/source.h"

static volatile unsigned sink; /* every sample is read */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  sfu_wav_t w;
  const char *why = NULL;
  if (sfu_wav_parse(data, size, &w, &why) == 0) {
    if (w.data < data || w.frames == 0 ||
        (size_t)(w.data - data) + w.frames * 2 * (size_t)w.channels > size)
      abort();
    for (size_t i = 0; i < w.frames * (size_t)w.channels; i++) /* ASan checks the bounds */
      sink += w.data[2 * i];
  } else if (!why) {
    abort();
  }
  return 0;
}
