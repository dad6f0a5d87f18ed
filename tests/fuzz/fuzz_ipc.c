/*
 * fuzz_ipc.c -- the IPC frame decoder fed arbitrary bytes in arbitrary
 * chunks (the first byte picks the chunk size), with each frame parsed as
 * JSON the way the channel does. Frames must be delivered whole and within
 * max_frame, whatever the chunking.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sfu/base/sfu.h"
#include "signaling/ipc.h"

static int on_frame(void *arg, const char *p, size_t len) {
  size_t *total = arg;
  if (len == 0 || len > 4096) abort();
  *total += len;
  json_t *j = json_loadb(p, len, JSON_REJECT_DUPLICATES, NULL);
  json_decref(j);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  sfu_ipc_decoder_t d;
  size_t total = 0;
  if (size < 1) return 0;
  size_t chunk = (size_t)data[0] % 17 + 1;
  data++;
  size--;
  sfu_ipc_decoder_init(&d, 4096);
  for (size_t off = 0; off < size; off += chunk) {
    size_t n = size - off < chunk ? size - off : chunk;
    if (sfu_ipc_decoder_feed(&d, (const char *)data + off, n, on_frame, &total) != 0) break;
  }
  if (total > size) abort();
  sfu_ipc_decoder_free(&d);
  return 0;
}
