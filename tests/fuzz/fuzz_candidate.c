/*
 * fuzz_candidate.c -- libFuzzer target for sfu/net/candidate.c, the parser
 * of the candidate lines peers send (SDP and trickle).
 *
 * The input is the line. A line that parses must describe what the
 * grammar allows (every offset inside the line, a foundation of ICE
 * characters, numbers in range, a tcptype exactly on TCP candidates);
 * written back in the canonical form (single spaces, the known fields
 * only) it must parse to the same values, and with "a=" in front it must
 * parse the same. Any broken property aborts.
 *
 * Build by hand:
 *   clang -g -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -I. \
 *     tests/fuzz/fuzz_candidate.c sfu/net/candidate.c -o /tmp/fcandidate
 *   /tmp/fcandidate -max_total_time=60 /tmp/scratch tests/fuzz/corpus/candidate
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sfu/net/candidate.h"
#include "tests/fuzz/check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void valid(const char *line, size_t len, const sfu_candidate_t *c) {
  static const char ice_chars[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  CHECK(c->foundation_len >= 1 && c->foundation_len <= 32);
  CHECK(c->foundation_off + c->foundation_len <= len);
  for (size_t i = 0; i < c->foundation_len; i++)
    CHECK(line[c->foundation_off + i] && strchr(ice_chars, line[c->foundation_off + i]));
  CHECK(c->addr_len >= 1 && c->addr_len <= 253 && c->addr_off + c->addr_len <= len);
  CHECK(!memchr(line + c->addr_off, ' ', c->addr_len));
  CHECK(c->component >= 1 && c->component <= 256);
  CHECK(c->priority >= 1);
  CHECK(c->type >= SFU_CANDIDATE_HOST && c->type <= SFU_CANDIDATE_RELAY);
  if (c->transport == SFU_CANDIDATE_TCP)
    CHECK(c->tcptype >= SFU_CANDIDATE_TCP_ACTIVE && c->tcptype <= SFU_CANDIDATE_TCP_SO);
  else
    CHECK(c->transport == SFU_CANDIDATE_UDP && c->tcptype == SFU_CANDIDATE_TCP_NONE);
}

static int same(const char *l1, const sfu_candidate_t *a, const char *l2,
                const sfu_candidate_t *b) {
  return a->foundation_len == b->foundation_len &&
         memcmp(l1 + a->foundation_off, l2 + b->foundation_off, a->foundation_len) == 0 &&
         a->addr_len == b->addr_len && memcmp(l1 + a->addr_off, l2 + b->addr_off, a->addr_len) == 0 &&
         a->component == b->component && a->transport == b->transport &&
         a->priority == b->priority && a->port == b->port && a->type == b->type &&
         a->tcptype == b->tcptype;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char *const types[] = {"host", "srflx", "prflx", "relay"};
  static const char *const tcptypes[] = {"", " tcptype active", " tcptype passive", " tcptype so"};
  static char line[SFU_CANDIDATE_MAX + 3], canon[SFU_CANDIDATE_MAX + 1];
  const char *err = "unset";
  sfu_candidate_t c, c2;
  if (size > SFU_CANDIDATE_MAX + 1) return 0;
  memcpy(line, data, size);
  int rv = sfu_candidate_parse(line, size, &c, &err);
  if (rv != 0) {
    CHECK(err != NULL);
    return 0;
  }
  CHECK(err == NULL);
  valid(line, size, &c);

  int n = snprintf(canon, sizeof(canon), "candidate:%.*s %d %s %u %.*s %u typ %s%s",
                   (int)c.foundation_len, line + c.foundation_off, c.component,
                   c.transport == SFU_CANDIDATE_TCP ? "tcp" : "udp", c.priority, (int)c.addr_len,
                   line + c.addr_off, c.port, types[c.type], tcptypes[c.tcptype]);
  CHECK(n > 0 && (size_t)n < sizeof(canon));
  CHECK(sfu_candidate_parse(canon, (size_t)n, &c2, NULL) == 0);
  CHECK(same(line, &c, canon, &c2));

  if (size + 2 <= SFU_CANDIDATE_MAX && (size < 2 || memcmp(data, "a=", 2) != 0)) {
    line[0] = 'a';
    line[1] = '=';
    memcpy(line + 2, data, size);
    CHECK(sfu_candidate_parse(line, size + 2, &c2, NULL) == 0);
    c.foundation_off += 2;
    c.addr_off += 2;
    CHECK(same(line, &c, line, &c2));
  }
  return 0;
}
