/*
 * fuzz_sdpfrag.c -- libFuzzer target for signaling/sdpfrag.c: the
 * trickle-ice-sdpfrag bodies of WHIP/WHEP PATCH requests, and the rewrite
 * of an offer's ICE credentials with what one carried.
 *
 * The input is the fragment. One that parses has credentials of ICE
 * characters within their bound, both or neither; rewriting the input
 * itself with them (when it has an a=ice-ufrag line) gives a text in
 * which the fragment parses to the same credentials. Any broken property
 * aborts.
 *
 * Build by hand:
 *   clang -g -fsanitize=fuzzer,address,undefined -I. tests/fuzz/fuzz_sdpfrag.c \
 *     signaling/sdpfrag.c sfu/base/err.c -o /tmp/fsdpfrag
 *   /tmp/fsdpfrag -max_total_time=60 /tmp/scratch tests/fuzz/corpus/sdpfrag
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "signaling/sdpfrag.h"
#include "tests/fuzz/check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void creds_ok(const char *v) {
  static const char ice[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  CHECK(strlen(v) <= SFU_SDPFRAG_MAX_CRED);
  for (const char *c = v; *c; c++) CHECK(strchr(ice, *c) != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  sfu_sdpfrag_t f, g;
  const char *why = NULL;
  if (sfu_sdpfrag_parse((const char *)data, size, &f, &why) != 0) {
    CHECK(why != NULL);
    CHECK(f.ufrag[0] == '\0' && f.pwd[0] == '\0');
    return 0;
  }
  creds_ok(f.ufrag);
  creds_ok(f.pwd);
  CHECK(!f.ufrag[0] == !f.pwd[0]);
  if (!f.ufrag[0] || memchr(data, '\0', size)) return 0;
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  char *again = sfu_sdpfrag_set_ice(text, f.ufrag, f.pwd);
  CHECK(again != NULL);
  if (strlen(again) <= SFU_SDPFRAG_MAX_TEXT) {
    CHECK(sfu_sdpfrag_parse(again, strlen(again), &g, NULL) == 0);
    CHECK(strcmp(g.ufrag, f.ufrag) == 0 && strcmp(g.pwd, f.pwd) == 0);
    CHECK(g.candidates == f.candidates && g.mlines == f.mlines);
  }
  free(again);
  free(text);
  return 0;
}
