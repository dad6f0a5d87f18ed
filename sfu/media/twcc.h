/*
 * twcc.h -- transport-wide congestion control
 * (draft-holmer-rmcat-transport-wide-cc-extensions-01): the two halves of
 * the bookkeeping around the transport-wide sequence number extension.
 *
 *   we receive (publishers)   sfu_twcc_rx_t notes when each numbered
 *                             packet arrived and writes the feedback
 *                             (RTPFB FMT 15) that lets the publisher's own
 *                             send-side estimator work against us.
 *
 *   we send (subscribers)     sfu_twcc_tx_t numbers every packet we send
 *                             a subscriber and keeps its send time and
 *                             size; the subscriber's feedback is matched
 *                             against it (sfu_twcc_tx_feedback()) and
 *                             each packet's fate goes to the bandwidth
 *                             estimator (sfu/media/bwe.h).
 *
 * Both are fixed-size structs (a ring indexed by sequence number), allocate
 * nothing and read no clock: times are the caller's microseconds. A
 * packet older than the ring is forgotten (neither reported nor matched).
 */
#ifndef SFU_TWCC_H
#define SFU_TWCC_H

#include <stddef.h>
#include <stdint.h>

#include "sfu/media/rtcp.h"
#include "sfu/media/rtp.h"

#define SFU_TWCC_URI "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"

#define SFU_TWCC_SLOTS 1024   /* a power of two: ~5 s of a 2 Mb/s video */

/* ---- receive side ------------------------------------------------------- */

typedef struct sfu_twcc_rx_s {
  sfu_seq_unwrap_t unwrap;
  int64_t next;              /* first number not yet reported, -1 = none seen */
  int64_t max;               /* highest number received */
  uint8_t fb_count;          /* feedback packets written */
  uint16_t tag[SFU_TWCC_SLOTS];  /* the number whose arrival a slot holds */
  uint32_t at[SFU_TWCC_SLOTS];   /* its arrival, low 32 bits of the clock in
                                    us; 0 = nothing */
} sfu_twcc_rx_t;

void sfu_twcc_rx_init(sfu_twcc_rx_t *rx);
/* Packet `seq` (the extension's value) arrived at now_us. */
void sfu_twcc_rx_note(sfu_twcc_rx_t *rx, uint16_t seq, uint64_t now_us);
/*
 * One feedback packet for what arrived since the last one (from the first
 * unreported number to the highest received, missing ones as not
 * received), as large as `cap` allows; what does not fit (or would need a
 * receive delta beyond 8 s) waits for the next call. Bytes written, or 0
 * when there is nothing to report.
 */
int sfu_twcc_rx_feedback(sfu_twcc_rx_t *rx, uint64_t now_us, uint32_t sender_ssrc,
                         uint32_t media_ssrc, uint8_t *buf, size_t cap);

/* ---- send side ---------------------------------------------------------- */

typedef struct sfu_twcc_sent_s {
  uint16_t seq;              /* the number (the key) */
  uint16_t size;             /* bytes on the wire (RTP) */
  uint32_t send_us;          /* low 32 bits of the send time */
  uint8_t probe;             /* probe cluster (bwe.h), 0 = none */
  uint8_t state;             /* 0 empty, 1 sent, 2 reported */
} sfu_twcc_sent_t;

typedef struct sfu_twcc_tx_s {
  uint16_t next_seq;         /* the number of the next packet */
  sfu_twcc_sent_t s[SFU_TWCC_SLOTS];
} sfu_twcc_tx_t;

/* One packet's fate, as sfu_twcc_tx_feedback() reports it. */
typedef struct sfu_twcc_result_s {
  int64_t send_us;           /* our clock */
  int64_t arrival_us;        /* the receiver's clock (only differences mean
                                anything); -1 = lost */
  uint16_t size;
  uint8_t probe;
} sfu_twcc_result_t;

/* The number for a packet of `size` bytes sent now, noted. */
uint16_t sfu_twcc_tx_send(sfu_twcc_tx_t *tx, uint64_t now_us, size_t size, int probe);
/*
 * Matches a feedback packet against what was sent: calls fn(arg, &result)
 * for every packet it reports that we sent and that no earlier feedback
 * reported, in sequence order. now_us (our clock) rebuilds the full send
 * times. 0, or SFU_EPROTO / SFU_EINVAL (not a valid TWCC feedback).
 */
int sfu_twcc_tx_feedback(sfu_twcc_tx_t *tx, const sfu_rtcp_hdr_t *h, uint64_t now_us,
                         void (*fn)(void *arg, const sfu_twcc_result_t *r), void *arg);

#endif
