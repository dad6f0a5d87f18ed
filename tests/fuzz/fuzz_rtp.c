/*
 * fuzz_rtp.c -- libFuzzer target for sfu_rtp_parse() and everything that
 * reads a parsed packet: the extension walk, ext_find, audio level, mid,
 * and sfu_rtp_forward_copy().
 *
 * Each input is one datagram. When it parses:
 *
 *   - the view's invariants hold (areas inside the packet, in order);
 *   - every extension element lies inside the extension block;
 *   - forward_copy with an extension map taken from the input's last byte
 *     is done into a large buffer to learn its size n, then into a heap
 *     buffer of exactly n bytes (same bytes), and into one of n - 1 bytes
 *     (SFU_E2BIG; ASan catches a write past either);
 *   - the copy re-parses, with the given pt/seq/ts/ssrc, the source's
 *     marker and payload, no CSRCs or padding, and exactly the mapped
 *     elements, in order, with their values.
 *
 * Any broken property aborts.
 *
 * Build by hand:
 *   clang -g -fsanitize=fuzzer,address,undefined -I. \
 *     tests/fuzz/fuzz_rtp.c sfu/media/rtp.c sfu/base/err.c -o /tmp/frtp
 *   /tmp/frtp -max_total_time=60 /tmp/scratch tests/fuzz/corpus/rtp
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sfu/media/rtp.h"
#include "sfu/base/sfu.h"
#include "tests/fuzz/check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Maps id i to ((i + k) % 14) + 1 or drops it, from the bits of `k`. */
static void make_map(uint8_t map[15], uint8_t k) {
  int i;

  map[0] = 0;
  for (i = 1; i < 15; i++)
    map[i] = (k >> (i & 7) & 1) ? (uint8_t)((i + k) % 14 + 1) : 0;
}

/* Walks src's elements and out's in lockstep: out must hold exactly the
 * ones map keeps, renamed, with equal values. */
static void check_elements(const sfu_rtp_t *src, const sfu_rtp_t *out,
                           const uint8_t map[15]) {
  sfu_rtp_ext_iter_t a, b;
  const uint8_t *va, *vb;
  size_t la, lb;
  int ia, ib, kept = 0;

  sfu_rtp_ext_iter_init(&a, src);
  sfu_rtp_ext_iter_init(&b, out);
  while (sfu_rtp_ext_next(&a, &ia, &va, &la) == 1) {
    if (ia > 14 || la == 0 || la > 16 || map[ia] == 0)
      continue;
    kept++;
    CHECK(sfu_rtp_ext_next(&b, &ib, &vb, &lb) == 1);
    CHECK(ib == map[ia] && lb == la && memcmp(va, vb, la) == 0);
  }
  CHECK(sfu_rtp_ext_next(&b, &ib, &vb, &lb) == 0);
  CHECK(out->has_ext == (kept > 0));
  if (kept)
    CHECK(out->ext_profile == SFU_RTP_EXT_ONE_BYTE);
}

static void check_copy(const sfu_rtp_t *p, const uint8_t *map) {
  uint8_t *big, *exact;
  sfu_rtp_t q;
  int n, m;

  big = malloc(p->len + 64);
  CHECK(big != NULL);
  n = sfu_rtp_forward_copy(p, 97, 0x1234, 0xabcdef01, 0x0badcafe, map, big,
                           p->len + 64);
  CHECK(n >= SFU_RTP_HEADER_LEN && (size_t)n <= p->len);

  exact = malloc((size_t)n);
  CHECK(exact != NULL);
  m = sfu_rtp_forward_copy(p, 97, 0x1234, 0xabcdef01, 0x0badcafe, map, exact,
                           (size_t)n);
  CHECK(m == n && memcmp(big, exact, (size_t)n) == 0);
  free(big);

  CHECK(sfu_rtp_parse(exact, (size_t)n, &q) == 0);
  CHECK(q.pt == 97 && q.seq == 0x1234 && q.ts == 0xabcdef01 &&
        q.ssrc == 0x0badcafe && q.marker == p->marker);
  CHECK(q.csrc_count == 0 && !q.has_padding && q.pad_len == 0);
  CHECK(q.payload_len == p->payload_len);
  CHECK(memcmp(q.data + q.payload_off, p->data + p->payload_off,
               p->payload_len) == 0);
  if (map != NULL)
    check_elements(p, &q, map);
  else
    CHECK(!q.has_ext);
  free(exact);

  /* one byte short */
  exact = malloc((size_t)n - 1);
  CHECK(exact != NULL);
  CHECK(sfu_rtp_forward_copy(p, 97, 0x1234, 0xabcdef01, 0x0badcafe, map,
                             exact, (size_t)n - 1) == SFU_E2BIG);
  free(exact);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  sfu_rtp_ext_iter_t it;
  sfu_rtp_t p;
  const uint8_t *v, *ext_end;
  uint8_t map[15], *copy;
  size_t l;
  static const int probe[] = {0, 1, 14, 15, 16, 255};
  int id, voice, level, n, i;
  char mid[32];

  if (sfu_rtp_parse(data, size, &p) != 0)
    return 0;
  CHECK(p.data == data && p.len == size);
  CHECK(p.header_len == p.payload_off);
  CHECK(p.payload_off + p.payload_len + p.pad_len == size);
  CHECK(p.header_len >= SFU_RTP_HEADER_LEN + 4 * (size_t)p.csrc_count);
  CHECK(p.has_padding ? p.pad_len >= 1 : p.pad_len == 0);
  if (p.has_ext)
    CHECK(p.ext_off + p.ext_len == p.header_len && p.ext_len % 4 == 0);

  /* every element found by the walk, and a few ids that may be absent */
  ext_end = data + p.ext_off + p.ext_len;
  sfu_rtp_ext_iter_init(&it, &p);
  for (i = 0;; i++) {
    int want = i < (int)SFU_ARRAY_SIZE(probe) ? probe[i] : -1;
    if (want < 0) {
      if (sfu_rtp_ext_next(&it, &want, &v, &l) != 1)
        break;
      CHECK(want >= 1 && want <= 255 && v >= data + p.ext_off &&
            v + l <= ext_end);
    }
    if (sfu_rtp_ext_find(&p, want, &v, &l))
      CHECK(v >= data + p.ext_off && v + l <= ext_end);
    if (sfu_rtp_audio_level(&p, want, &voice, &level))
      CHECK((voice == 0 || voice == 1) && level >= 0 && level <= 127);
    n = sfu_rtp_ext_mid(&p, want, mid, sizeof(mid));
    if (n > 0)
      CHECK((size_t)n == strlen(mid));
  }

  check_copy(&p, NULL);
  make_map(map, data[size - 1]);
  check_copy(&p, map);
  memset(map, 0, sizeof(map));
  for (id = 1; id < 15; id++)
    map[id] = (uint8_t)id;
  check_copy(&p, map);

  /* the setters only touch their fields */
  copy = malloc(size);
  CHECK(copy != NULL);
  memcpy(copy, data, size);
  sfu_rtp_set_seq(copy, (uint16_t)~p.seq);
  sfu_rtp_set_ts(copy, ~p.ts);
  sfu_rtp_set_ssrc(copy, ~p.ssrc);
  sfu_rtp_set_pt(copy, (uint8_t)(p.pt ^ 0x55));
  {
    sfu_rtp_t q;
    CHECK(sfu_rtp_parse(copy, size, &q) == 0);
    CHECK(q.seq == (uint16_t)~p.seq && q.ts == ~p.ts && q.ssrc == ~p.ssrc &&
          q.pt == (p.pt ^ 0x55) && q.marker == p.marker);
    CHECK(memcmp(copy + 12, data + 12, size - 12) == 0);
  }
  free(copy);

  /* unwrapping keeps the low 16 bits and stays within half a cycle */
  {
    sfu_seq_unwrap_t u = {0};
    uint64_t e, max = 0;
    size_t k;
    for (k = 0; k + 1 < size && k < 64; k += 2) {
      uint16_t s = (uint16_t)(data[k] << 8 | data[k + 1]);
      e = sfu_seq_unwrap(&u, s);
      CHECK((uint16_t)e == s);
      CHECK(e + 0x8000 >= u.max_ext && e <= u.max_ext);
      CHECK(u.max_ext >= max);
      max = u.max_ext;
    }
  }
  return 0;
}
