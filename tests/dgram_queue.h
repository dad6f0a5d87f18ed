/*
 * dgram_queue.h -- a bounded queue of datagrams, for tests that carry DTLS
 * and SRTP between two ends in memory (tests/test_dtls.c,
 * tests/test_transport.c): what one end sends waits in its queue until
 * the test delivers it, drops it or looks at it.
 *
 * A queue is plain memory, zeroed to start (no init, nothing to free);
 * each datagram is copied in. q_push() fails the running cmocka test when
 * the queue is full or the datagram too long.
 */
#ifndef SFU_TESTS_DGRAM_QUEUE_H
#define SFU_TESTS_DGRAM_QUEUE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#define QCAP 64 /* datagrams a queue holds */

/* One datagram, copied. */
typedef struct {
  uint8_t data[2048]; /* its bytes */
  size_t len;         /* bytes in data */
} dgram_t;

/* A ring of QCAP datagrams, oldest at `head`. */
typedef struct {
  dgram_t items[QCAP];
  int head;  /* index of the oldest */
  int count; /* datagrams queued, 0..QCAP; 0 empties the queue */
} queue_t;

/* Appends a copy of data[0..len). */
static inline void q_push(queue_t *q, const uint8_t *data, size_t len) {
  dgram_t *g;
  assert_true(q->count < QCAP);
  assert_true(len <= sizeof(g->data));
  g = &q->items[(q->head + q->count) % QCAP];
  memcpy(g->data, data, len);
  g->len = len;
  q->count++;
}

/* Takes the oldest datagram into *out: 1, or 0 when the queue is empty. */
static inline int q_pop(queue_t *q, dgram_t *out) {
  if (q->count == 0) return 0;
  *out = q->items[q->head];
  q->head = (q->head + 1) % QCAP;
  q->count--;
  return 1;
}

#endif
