/*
 * fuzz_capture.c -- libFuzzer target for sfu/media/capture.c: the frame
 * parser on its own, and the whole reader (libpcap's pcap/pcapng parsing
 * of a hostile file, then ours) over the same input.
 *
 * Each input is used twice:
 *
 *   1. As a link-layer frame. The first byte picks the link type (low
 *      nibble, modulo the table below, which ends with one the parser does
 *      not know) and whether the frame was cut by the snap length (bit 7:
 *      wire length 100 bytes more than captured); the rest is the frame,
 *      copied to a heap buffer of exactly its size so ASan sees any read
 *      past it. Checks: the verdict is 0 or 1, the frame is counted once
 *      and in exactly one of udp / skipped_*, and a datagram's payload
 *      lies inside the frame with a family and ports that make sense.
 *
 *   2. As a capture file, through fmemopen() and sfu_cap_open_fp(): every
 *      datagram read must lie in some record (we can only check it is a
 *      non-NULL view and the counters add up), the end or the error code
 *      must stick, and sfu_cap_scan_cap() over a second reader must list
 *      no more packets than there were datagrams.
 *
 * Any broken property aborts.
 *
 * Build by hand:
 *   clang -g -fsanitize=fuzzer,address,undefined -I. \
 *     tests/fuzz/fuzz_capture.c sfu/media/capture.c sfu/base/err.c -lpcap \
 *     -o /tmp/fcap
 *   /tmp/fcap -max_total_time=60 /tmp/scratch tests/fuzz/corpus/capture
 */
#include <pcap/pcap.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "sfu/base/sfu.h"
#include "sfu/media/capture.h"
#include "tests/fuzz/check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const int LINKTYPES[] = {
    DLT_EN10MB, DLT_LINUX_SLL, DLT_LINUX_SLL2, DLT_RAW, 101 /* LINKTYPE_RAW */,
    DLT_IPV4,   DLT_IPV6,      DLT_NULL,       DLT_LOOP, 147 /* unknown */,
};

static void check_sum(const sfu_cap_stats_t *st) {
  CHECK(st->frames == st->udp + st->skipped_not_udp + st->skipped_truncated +
                          st->skipped_fragment + st->skipped_linktype +
                          st->skipped_malformed);
}

static void check_pkt(const sfu_cap_pkt_t *p) {
  static const uint8_t zero[12];

  CHECK(p->data != NULL);
  CHECK(p->family == AF_INET || p->family == AF_INET6);
  if (p->family == AF_INET)
    CHECK(memcmp(p->src + 4, zero, 12) == 0 &&
          memcmp(p->dst + 4, zero, 12) == 0);
  CHECK(p->len <= 65535 - 8);
  /* the heuristic must be total over any payload */
  (void)sfu_cap_is_rtp(p->data, p->len);
}

static void fuzz_frame(const uint8_t *data, size_t size) {
  sfu_cap_stats_t st;
  sfu_cap_pkt_t p;
  uint8_t *frame;
  size_t caplen, wirelen;
  int lt, rv;

  if (size < 1)
    return;
  lt = LINKTYPES[(data[0] & 0x0f) % SFU_ARRAY_SIZE(LINKTYPES)];
  caplen = size - 1;
  wirelen = (data[0] & 0x80) ? caplen + 100 : caplen;
  frame = malloc(caplen ? caplen : 1);
  CHECK(frame != NULL);
  memcpy(frame, data + 1, caplen);

  memset(&st, 0, sizeof(st));
  rv = sfu_cap_parse_frame(lt, frame, caplen, wirelen, &p, &st);
  CHECK(rv == 0 || rv == 1);
  CHECK(st.frames == 1);
  check_sum(&st);
  CHECK(st.udp == (uint64_t)rv);
  if (lt == 147)
    CHECK(st.skipped_linktype == 1);
  else
    CHECK(st.skipped_linktype == 0);
  if (!(data[0] & 0x80))
    CHECK(st.skipped_truncated == 0);
  if (rv == 1) {
    check_pkt(&p);
    CHECK(p.data >= frame && p.data + p.len <= frame + caplen);
    /* the same frame without stats gives the same answer */
    {
      sfu_cap_pkt_t q;
      CHECK(sfu_cap_parse_frame(lt, frame, caplen, wirelen, &q, NULL) == 1);
      CHECK(q.data == p.data && q.len == p.len && q.sport == p.sport &&
            q.dport == p.dport && q.family == p.family);
    }
  }
  free(frame);
}

static FILE *mem_file(const uint8_t *data, size_t size) {
  return fmemopen((void *)(uintptr_t)data, size, "rb");
}

static void fuzz_file(const uint8_t *data, size_t size) {
  sfu_cap_stream_t streams[4];
  sfu_cap_pkt_t p;
  sfu_cap_t *c;
  uint64_t udp, listed = 0, non_rtp = 0;
  char err[256];
  FILE *fp;
  int rv, n, i, guard;

  if (size == 0)
    return;
  fp = mem_file(data, size);
  CHECK(fp != NULL);
  err[0] = 'x';
  rv = sfu_cap_open_fp(&c, fp, "fuzz", err, sizeof(err));
  if (rv != 0) {
    CHECK(rv < 0 && c == NULL);
    CHECK(strncmp(err, "fuzz: ", 6) == 0);
    return;
  }
  CHECK(err[0] == '\0');
  for (guard = 0; guard < 100000; guard++) {
    rv = sfu_cap_next(c, &p);
    if (rv != 1)
      break;
    check_pkt(&p);
    CHECK(p.frame == sfu_cap_stats(c)->frames);
  }
  if (rv != 1) {
    CHECK(sfu_cap_next(c, &p) == rv); /* sticky */
    if (rv < 0)
      CHECK(strncmp(sfu_cap_error(c), "fuzz: ", 6) == 0);
    else
      CHECK(sfu_cap_error(c)[0] == '\0');
  }
  check_sum(sfu_cap_stats(c));
  CHECK(sfu_cap_stats(c)->skipped_linktype == 0);
  udp = sfu_cap_stats(c)->udp;
  sfu_cap_close(c);

  if (guard == 100000)
    return;
  fp = mem_file(data, size);
  CHECK(fp != NULL);
  CHECK(sfu_cap_open_fp(&c, fp, "fuzz", err, sizeof(err)) == 0);
  n = sfu_cap_scan_cap(c, streams, 4, &non_rtp);
  if (rv < 0)
    CHECK(n == rv);
  else
    CHECK(n >= 0 && n <= 4);
  for (i = 0; i < n; i++) {
    CHECK(streams[i].packets >= 1);
    if (streams[i].packets == 1)
      CHECK(streams[i].first_us == streams[i].last_us &&
            streams[i].seq_gaps == 0 && streams[i].late == 0);
    CHECK(streams[i].late < streams[i].packets);
    listed += streams[i].packets;
  }
  CHECK(listed + non_rtp <= udp);
  sfu_cap_close(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_frame(data, size);
  fuzz_file(data, size);
  return 0;
}
