/*
 * fuzz_tcpframe.c -- libFuzzer target for sfu/net/tcpframe.c.
 *
 * The input's first byte picks a read size (1..256); the rest is the TCP
 * stream. The stream is deframed twice, whole and in reads of that size;
 * both must give the same frames in the same order (lengths and bytes),
 * stop at the same framing error if any, and never return a frame longer
 * than SFU_TCPFRAME_MAX or one that reaches past the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sfu/net/tcpframe.h"
#include "tests/fuzz/check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAXF 4096

typedef struct {
  size_t off[MAXF], len[MAXF]; /* frames as (offset in stream, length) */
  int n, error;
} frames_t;

static sfu_tcpframe_t f;

static void deframe(const uint8_t *s, size_t size, size_t chunk, frames_t *out) {
  size_t consumed = 0;
  out->n = 0;
  out->error = 0;
  sfu_tcpframe_init(&f);
  for (size_t at = 0; at < size && !out->error; at += chunk) {
    const uint8_t *p = s + at, *fr;
    size_t n = size - at < chunk ? size - at : chunk, len;
    int r;
    while ((r = sfu_tcpframe_next(&f, &p, &n, &fr, &len)) == 1) {
      CHECK(len <= SFU_TCPFRAME_MAX);
      consumed = (size_t)(p - s);
      CHECK(consumed >= len + 2);
      /* the frame's bytes are the stream's just before where it stopped */
      CHECK(len == 0 || memcmp(fr, s + consumed - len, len) == 0);
      if (out->n < MAXF) out->off[out->n] = consumed - len, out->len[out->n] = len, out->n++;
    }
    if (r < 0) out->error = 1;
    else CHECK(n == 0);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static frames_t a, b;
  if (size < 1) return 0;
  size_t chunk = (size_t)data[0] + 1;
  deframe(data + 1, size - 1, size - 1 ? size - 1 : 1, &a);
  deframe(data + 1, size - 1, chunk, &b);
  CHECK(a.n == b.n && a.error == b.error);
  for (int i = 0; i < a.n; i++) CHECK(a.off[i] == b.off[i] && a.len[i] == b.len[i]);
  return 0;
}
