/*
 * ipc.c -- frame decoder and JSON channel for sfud <-> room messages.
 *
 * The decoder's only state is the partial frame it holds. Feeding walks the
 * input: while a partial frame is pending, bytes are appended to it until it
 * is complete; then whole frames are delivered straight from the input and a
 * trailing fragment is copied into the buffer. The buffer grows to the size
 * of the largest frame seen, never beyond max_frame + header.
 *
 * Sends serialise the JSON object into one allocation holding header and
 * payload, and write it with uv_write; the allocation is freed in the write
 * callback. Queue growth is bounded by max_queued: a peer that stops reading
 * gets EAGAIN rather than unbounded memory.
 *
 * Congestion has hysteresis: sfu_ipc_congested() turns it on when the queue
 * reaches high_water, and the write callback that brings the queue down to
 * low_water turns it off and calls on_drain, so a sender paused at high
 * resumes with room to spare instead of flapping at one threshold. A send
 * refused at max_queued turns it on as well, so that its sender too hears
 * of the drain. Control
 * messages (sfu_ipc_send_control) ignore both the watermarks and the bound:
 * they are few, and losing one loses a join or a leave.
 */
#include <stdlib.h>
#include <string.h>

#include "sfu/base/bytes.h"
#include "sfu/base/sfu.h"
#include "signaling/ipc.h"

void sfu_ipc_put_header(uint8_t hdr[SFU_IPC_HDR_LEN], uint32_t len) { sfu_wr32(hdr, len); }

static uint32_t get_header(const char *p) { return sfu_rd32((const uint8_t *)p); }

void sfu_ipc_decoder_init(sfu_ipc_decoder_t *d, size_t max_frame) {
  memset(d, 0, sizeof(*d));
  d->max_frame = max_frame ? max_frame : SFU_IPC_DEFAULT_MAX_FRAME;
}

void sfu_ipc_decoder_free(sfu_ipc_decoder_t *d) {
  free(d->buf);
  d->buf = NULL;
  d->len = d->cap = 0;
}

static int reserve(sfu_ipc_decoder_t *d, size_t need) {
  if (need <= d->cap) return 0;
  size_t cap = d->cap ? d->cap : 256;
  while (cap < need) cap *= 2;
  char *p = realloc(d->buf, cap);
  if (!p) return SFU_ENOMEM;
  d->buf = p;
  d->cap = cap;
  return 0;
}

/* Checks a complete header; returns the payload length or an error. */
static int64_t frame_len(const sfu_ipc_decoder_t *d, const char *hdr) {
  uint32_t n = get_header(hdr);
  if (n == 0) return SFU_EPROTO;
  if (n > d->max_frame) return SFU_EMSGSIZE;
  return n;
}

int sfu_ipc_decoder_feed(sfu_ipc_decoder_t *d, const char *data, size_t len,
                         sfu_ipc_frame_cb cb, void *arg) {
  int rv;

  /* Complete a pending partial frame first. */
  while (d->len > 0 && len > 0) {
    size_t want = SFU_IPC_HDR_LEN;
    if (d->len >= SFU_IPC_HDR_LEN) {
      int64_t n = frame_len(d, d->buf);
      if (n < 0) return (int)n;
      want += (size_t)n;
    }
    size_t take = want - d->len < len ? want - d->len : len;
    if ((rv = reserve(d, d->len + take)) != 0) return rv;
    memcpy(d->buf + d->len, data, take);
    d->len += take;
    data += take;
    len -= take;
    if (d->len == SFU_IPC_HDR_LEN) {
      int64_t n = frame_len(d, d->buf);
      if (n < 0) return (int)n;
      continue; /* header known: loop again for the payload */
    }
    if (d->len == want) {
      d->len = 0;
      if ((rv = cb(arg, d->buf + SFU_IPC_HDR_LEN, want - SFU_IPC_HDR_LEN)))
        return rv;
    }
  }

  /* Whole frames straight from the input. */
  while (len >= SFU_IPC_HDR_LEN) {
    int64_t n = frame_len(d, data);
    if (n < 0) return (int)n;
    if (len - SFU_IPC_HDR_LEN < (size_t)n) break;
    if ((rv = cb(arg, data + SFU_IPC_HDR_LEN, (size_t)n))) return rv;
    data += SFU_IPC_HDR_LEN + (size_t)n;
    len -= SFU_IPC_HDR_LEN + (size_t)n;
  }

  /* Keep the fragment. */
  if (len > 0) {
    if ((rv = reserve(d, len)) != 0) return rv;
    memcpy(d->buf, data, len);
    d->len = len;
  }
  return 0;
}

/* --- channel ------------------------------------------------------------ */

static void channel_fail(sfu_ipc_t *ipc, int err) {
  if (ipc->failed) return;
  ipc->failed = 1;
  uv_read_stop((uv_stream_t *)&ipc->pipe);
  if (ipc->on_error) ipc->on_error(ipc, err);
}

static int on_frame(void *arg, const char *payload, size_t len) {
  sfu_ipc_t *ipc = arg;
  json_error_t jerr;
  json_t *msg = json_loadb(payload, len, JSON_REJECT_DUPLICATES, &jerr);
  if (!msg || !json_is_object(msg)) {
    ipc->bad_msgs++;
    json_decref(msg);
    return 0; /* framing is intact: skip the message, keep the channel */
  }
  ipc->msgs_in++;
  ipc->on_msg(ipc, msg);
  json_decref(msg);
  return ipc->failed || ipc->closing; /* stop if the callback closed us */
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  static char slab[64 * 1024]; /* one loop thread per process */
  (void)h;
  (void)suggested;
  buf->base = slab;
  buf->len = sizeof(slab);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  sfu_ipc_t *ipc = s->data;
  if (nread == UV_EOF) {
    channel_fail(ipc, 0);
    return;
  }
  if (nread < 0) {
    channel_fail(ipc, (int)nread);
    return;
  }
  int rv = sfu_ipc_decoder_feed(&ipc->dec, buf->base, (size_t)nread, on_frame, ipc);
  if (rv < 0) channel_fail(ipc, rv);
}

int sfu_ipc_preload(sfu_ipc_t *ipc, const char *data, size_t len) {
  int rv = sfu_ipc_decoder_feed(&ipc->dec, data, len, on_frame, ipc);
  return rv < 0 ? rv : 0;
}

int sfu_ipc_init(uv_loop_t *loop, sfu_ipc_t *ipc, int fd, sfu_ipc_msg_cb on_msg,
                 sfu_ipc_error_cb on_error) {
  int rv;
  if (fd >= 0) {
    if ((rv = uv_pipe_init(loop, &ipc->pipe, 0)) != 0) return rv;
    if ((rv = uv_pipe_open(&ipc->pipe, fd)) != 0) {
      uv_close((uv_handle_t *)&ipc->pipe, NULL);
      return rv;
    }
  }
  ipc->pipe.data = ipc;
  sfu_ipc_decoder_init(&ipc->dec, SFU_IPC_DEFAULT_MAX_FRAME);
  ipc->on_msg = on_msg;
  ipc->on_error = on_error;
  ipc->max_queued = SFU_IPC_DEFAULT_MAX_QUEUED;
  ipc->high_water = SFU_IPC_DEFAULT_HIGH_WATER;
  ipc->low_water = SFU_IPC_DEFAULT_LOW_WATER;
  ipc->congested = 0;
  ipc->congestions = 0;
  ipc->on_drain = NULL;
  ipc->msgs_in = ipc->msgs_out = ipc->bad_msgs = 0;
  ipc->failed = ipc->closing = 0;
  return uv_read_start((uv_stream_t *)&ipc->pipe, on_alloc, on_read);
}

typedef struct {
  uv_write_t req;
  size_t len;
  char bytes[];
} send_req_t;

size_t sfu_ipc_queued(const sfu_ipc_t *ipc) {
  return uv_stream_get_write_queue_size((const uv_stream_t *)&ipc->pipe);
}

int sfu_ipc_congested(sfu_ipc_t *ipc) {
  if (!ipc->congested && sfu_ipc_queued(ipc) >= ipc->high_water) {
    ipc->congested = 1;
    ipc->congestions++;
  }
  return ipc->congested;
}

static void on_written(uv_write_t *req, int status) {
  send_req_t *sr = (send_req_t *)req;
  sfu_ipc_t *ipc = req->handle->data;
  free(sr);
  if (status < 0 && status != UV_ECANCELED) {
    channel_fail(ipc, status);
    return;
  }
  if (ipc->congested && !ipc->failed && !ipc->closing && sfu_ipc_queued(ipc) <= ipc->low_water) {
    ipc->congested = 0;
    if (ipc->on_drain) ipc->on_drain(ipc);
  }
}

static int send_msg(sfu_ipc_t *ipc, json_t *msg, int control) {
  if (ipc->failed || ipc->closing) return SFU_ECANCELED;
  size_t n = json_dumpb(msg, NULL, 0, JSON_COMPACT);
  if (n == 0) return SFU_EINVAL;
  if (n > ipc->dec.max_frame) return SFU_EMSGSIZE;
  if (!control && sfu_ipc_queued(ipc) + n > ipc->max_queued) {
    if (!ipc->congested) { /* on_drain tells the refused sender when to retry */
      ipc->congested = 1;
      ipc->congestions++;
    }
    return SFU_EAGAIN;
  }
  send_req_t *sr = malloc(sizeof(*sr) + SFU_IPC_HDR_LEN + n);
  if (!sr) return SFU_ENOMEM;
  sfu_ipc_put_header((uint8_t *)sr->bytes, (uint32_t)n);
  json_dumpb(msg, sr->bytes + SFU_IPC_HDR_LEN, n, JSON_COMPACT);
  sr->len = SFU_IPC_HDR_LEN + n;
  uv_buf_t b = uv_buf_init(sr->bytes, (unsigned)sr->len);
  int rv = uv_write(&sr->req, (uv_stream_t *)&ipc->pipe, &b, 1, on_written);
  if (rv != 0) {
    free(sr);
    return rv;
  }
  ipc->msgs_out++;
  return 0;
}

int sfu_ipc_send(sfu_ipc_t *ipc, json_t *msg) { return send_msg(ipc, msg, 0); }

int sfu_ipc_send_control(sfu_ipc_t *ipc, json_t *msg) { return send_msg(ipc, msg, 1); }

static void on_pipe_closed(uv_handle_t *h) {
  sfu_ipc_t *ipc = h->data;
  sfu_ipc_decoder_free(&ipc->dec);
  if (ipc->close_cb) ipc->close_cb(ipc);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  sfu_ipc_t *ipc = req->handle->data;
  free(req);
  uv_close((uv_handle_t *)&ipc->pipe, on_pipe_closed);
}

/* Queued messages are flushed first (uv_shutdown waits for pending writes),
 * so a room's last words -- "closing", final usage -- reach sfud. */
void sfu_ipc_close(sfu_ipc_t *ipc, void (*cb)(sfu_ipc_t *ipc)) {
  if (ipc->closing) return;
  ipc->closing = 1;
  ipc->close_cb = cb;
  uv_read_stop((uv_stream_t *)&ipc->pipe);
  if (!ipc->failed && uv_stream_get_write_queue_size((uv_stream_t *)&ipc->pipe) > 0) {
    uv_shutdown_t *req = malloc(sizeof(*req));
    if (req && uv_shutdown(req, (uv_stream_t *)&ipc->pipe, on_shutdown) == 0) return;
    free(req);
  }
  uv_close((uv_handle_t *)&ipc->pipe, on_pipe_closed);
}
