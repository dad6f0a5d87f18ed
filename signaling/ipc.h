/*
 * ipc.h -- framed JSON messages between sfud and its room processes.
 *
 * Wire format (docs/internals/ipc.md):
 *
 *    0                   1                   2                   3
 *   +---------------------------------------------------------------+
 *   |              payload length N (32-bit, big endian)            |
 *   +---------------------------------------------------------------+
 *   |              N bytes: one JSON object, UTF-8                  |
 *   +---------------------------------------------------------------+
 *
 * N is 1..max_frame. A frame announcing more than max_frame cannot be skipped
 * safely (the stream would have to be trusted to resynchronise), so the
 * decoder reports SFU_EMSGSIZE and the channel is closed.
 *
 * Two layers: the decoder is pure (bytes in, frames out; unit-tested with
 * partial reads), the channel puts it on a uv_pipe_t and parses JSON.
 *
 * Backpressure (docs/internals/ipc.md): a channel is "congested" from the
 * moment its write queue reaches high_water until it drains to low_water;
 * then on_drain runs once. A sender of bulk traffic asks
 * sfu_ipc_congested() first and holds its messages (sfud pauses the client
 * sessions that feed a room) instead of having them refused.
 */
#ifndef SFU_SIGNALING_IPC_H
#define SFU_SIGNALING_IPC_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define SFU_IPC_HDR_LEN 4
#define SFU_IPC_DEFAULT_MAX_FRAME (1u << 20)
/* Bytes a channel may hold queued for writing before sends fail (EAGAIN). */
#define SFU_IPC_DEFAULT_MAX_QUEUED (8u << 20)
/* Congestion watermarks of the write queue (bytes): congested at high,
 * drained (on_drain) at low. */
#define SFU_IPC_DEFAULT_HIGH_WATER (1u << 20)
#define SFU_IPC_DEFAULT_LOW_WATER (256u << 10)

/*
 * Frame decoder. Holds at most one partial frame; complete frames in the
 * input are handed out straight from the caller's buffer (no copy), a frame
 * split across reads is assembled in `buf`.
 */
typedef struct sfu_ipc_decoder_s {
  char *buf;         /* partial frame: header and payload bytes so far */
  size_t len;        /* bytes held in buf */
  size_t cap;        /* allocated size of buf */
  size_t max_frame;  /* largest payload accepted */
} sfu_ipc_decoder_t;

/* Called for every complete payload; return non-zero to stop decoding. */
typedef int (*sfu_ipc_frame_cb)(void *arg, const char *payload, size_t len);

void sfu_ipc_decoder_init(sfu_ipc_decoder_t *d, size_t max_frame);
void sfu_ipc_decoder_free(sfu_ipc_decoder_t *d);
/*
 * Feeds `len` bytes. Returns 0, SFU_EMSGSIZE (frame over max_frame),
 * SFU_EPROTO (zero-length frame), SFU_ENOMEM, or the non-zero value a
 * callback returned. After an error the decoder must not be fed again.
 */
int sfu_ipc_decoder_feed(sfu_ipc_decoder_t *d, const char *data, size_t len,
                         sfu_ipc_frame_cb cb, void *arg);
/* Writes the 4-byte header for a payload of `len` bytes. */
void sfu_ipc_put_header(uint8_t hdr[SFU_IPC_HDR_LEN], uint32_t len);

/* A channel: decoder + JSON on a pipe (the inherited socketpair). */
typedef struct sfu_ipc_s sfu_ipc_t;
/* A complete message. `msg` is borrowed: valid during the call only. */
typedef void (*sfu_ipc_msg_cb)(sfu_ipc_t *ipc, json_t *msg);
/* The channel failed or the peer closed it; `err` is 0 on EOF. */
typedef void (*sfu_ipc_error_cb)(sfu_ipc_t *ipc, int err);
/* A congested channel's write queue fell to low_water (once per episode).
 * Runs from a write callback: it may send, and may close the channel. */
typedef void (*sfu_ipc_drain_cb)(sfu_ipc_t *ipc);

struct sfu_ipc_s {
  void *data;                 /* user pointer */
  uv_pipe_t pipe;             /* the socketpair end */
  sfu_ipc_decoder_t dec;      /* incoming frames */
  sfu_ipc_msg_cb on_msg;      /* each message */
  sfu_ipc_error_cb on_error;  /* once, on EOF or failure */
  size_t max_queued;          /* bound on bytes waiting to be written */
  size_t high_water;          /* queued bytes at which the channel is congested */
  size_t low_water;           /* queued bytes at which it is drained again */
  int congested;              /* 1 from high_water until drained to low_water */
  uint64_t congestions;       /* episodes: times congested went 0 -> 1 */
  sfu_ipc_drain_cb on_drain;  /* end of an episode, or NULL (set after init) */
  uint64_t msgs_in, msgs_out; /* counters */
  uint64_t bad_msgs;          /* frames that were not a JSON object */
  int failed;                 /* on_error was called; reads stopped */
  int closing;                /* uv_close issued */
  void (*close_cb)(sfu_ipc_t *ipc);
};

/*
 * Starts a channel on `fd` (room side: the inherited descriptor) or, with
 * fd < 0, on ipc->pipe that the caller already initialised (sfud side: the
 * pipe uv_spawn created). Reading starts at once.
 */
int sfu_ipc_init(uv_loop_t *loop, sfu_ipc_t *ipc, int fd, sfu_ipc_msg_cb on_msg,
                 sfu_ipc_error_cb on_error);
/* Feeds bytes read from the pipe elsewhere (by the sfud an upgrade
 * replaced: docs/internals/upgrade.md) before what is read from now on.
 * Returns 0 or a decoder error. */
int sfu_ipc_preload(sfu_ipc_t *ipc, const char *data, size_t len);
/* Queues one message. Returns 0, SFU_EAGAIN (queue bound reached), or an
 * error from serialisation or the pipe. `msg` stays owned by the caller. */
int sfu_ipc_send(sfu_ipc_t *ipc, json_t *msg);
/* Queues a message that must not be lost (a join, a leave, a kick): like
 * sfu_ipc_send() but never refused for the queue bound. Its callers bound
 * their own rate; bulk traffic waits for on_drain instead. */
int sfu_ipc_send_control(sfu_ipc_t *ipc, json_t *msg);
/* Bytes queued for writing. */
size_t sfu_ipc_queued(const sfu_ipc_t *ipc);
/* 1 while the channel is congested (the queue reached high_water and has
 * not drained to low_water since): bulk senders hold their messages until
 * on_drain. Starts an episode when the queue has just reached high_water. */
int sfu_ipc_congested(sfu_ipc_t *ipc);
/* Closes the pipe; `cb` runs when the memory may be freed. */
void sfu_ipc_close(sfu_ipc_t *ipc, void (*cb)(sfu_ipc_t *ipc));

#endif
