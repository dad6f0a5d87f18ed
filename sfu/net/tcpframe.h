/*
 * tcpframe.h -- RFC 4571 framing of datagrams on a TCP stream (ICE-TCP,
 * RFC 6544): each datagram is sent as a 16-bit big-endian length followed
 * by that many bytes. Sans-IO: bytes in as the socket gave them, whole
 * datagrams out.
 *
 * A frame longer than SFU_TCPFRAME_MAX is a framing error: no STUN, DTLS or
 * SRTP datagram of a call comes near it, and a connection that claims one
 * is closed rather than buffered (the reassembly buffer is that size, per
 * connection, allocated with it).
 */
#ifndef SFU_NET_TCPFRAME_H
#define SFU_NET_TCPFRAME_H

#include <stddef.h>
#include <stdint.h>

#define SFU_TCPFRAME_MAX 2048

typedef struct sfu_tcpframe_s {
  uint8_t hdr[2];                /* a length split across reads */
  size_t nhdr;                   /* its bytes so far (0..2) */
  size_t need;                   /* length of the frame being gathered */
  size_t have;                   /* its bytes in buf so far */
  uint8_t buf[SFU_TCPFRAME_MAX]; /* a frame split across reads */
} sfu_tcpframe_t;

void sfu_tcpframe_init(sfu_tcpframe_t *f);

/*
 * The next whole frame from the stream. Reads from *data (*n bytes),
 * advancing both past what it consumed. Returns
 *
 *    1  a frame: *frame, *len (0 <= len <= SFU_TCPFRAME_MAX). It points
 *       into *data when the frame arrived in one piece (no copy), else
 *       into f->buf; valid until the next call or until *data changes;
 *    0  every byte consumed, no whole frame yet;
 *   -1  framing error: a length above SFU_TCPFRAME_MAX. The stream cannot
 *       be resynchronised; close the connection.
 *
 * Call it until it returns 0 for each buffer read from the socket.
 */
int sfu_tcpframe_next(sfu_tcpframe_t *f, const uint8_t **data, size_t *n,
                      const uint8_t **frame, size_t *len);

/* The 2-byte header of a frame of `len` bytes (len <= 65535). */
static inline void sfu_tcpframe_header(uint8_t out[2], size_t len) {
  out[0] = (uint8_t)(len >> 8);
  out[1] = (uint8_t)len;
}

#endif
