/*
 * source.h -- what a simulated participant publishes: one RTP stream of a
 * capture, loaded into memory, or Opus that the tool encodes itself (a
 * tone), paced in real time.
 *
 * A capture stream is selected by SSRC, payload type or UDP port (the first
 * RTP stream matching, in order of first packet). Its packets are kept as
 * payloads with their sequence number, timestamp, marker and send offset;
 * header extensions, CSRCs and padding are not replayed (the SFU would not
 * forward them either).
 *
 * A capture's video can be started again at any of its keyframes: a
 * publisher asked for a keyframe (PLI, FIR) skips ahead to the next one,
 * as an encoder asked for one makes it (tools/replay/replay.c). The
 * source says where they are (sfu_source_mark_keyframes(),
 * sfu_source_next_keyframe()); numbering across the skip is the caller's.
 *
 * Timing: by capture time, or by RTP timestamp when capture times are
 * synthetic (SFU_TIMING_AUTO decides: the two disagree by more than half,
 * or capture times do not advance). Looping continues sequence numbers and
 * timestamps so that a receiver sees one continuous stream.
 */
#ifndef SFU_REPLAY_SOURCE_H
#define SFU_REPLAY_SOURCE_H

#include <stddef.h>
#include <stdint.h>

typedef enum { SFU_TIMING_AUTO, SFU_TIMING_CAPTURE, SFU_TIMING_RTP } sfu_timing_t;

typedef struct sfu_src_pkt_s {
  uint64_t at_us;       /* send offset from the start of one pass */
  uint32_t off;         /* payload: offset into the source's bytes */
  uint16_t len;
  uint16_t seq;
  uint32_t ts;
  uint8_t marker;
  uint8_t level;        /* Opus: RFC 6464 level (0..127 -dBov), measured at load */
  uint8_t key;          /* video: a keyframe's picture starts here (a decoder can
                           start); set by sfu_source_mark_keyframes() */
} sfu_src_pkt_t;

typedef struct sfu_src_sel_s {
  int64_t ssrc;         /* -1: any */
  int pt;               /* -1: any */
  int port;             /* -1: any (source or destination port) */
} sfu_src_sel_t;

typedef struct sfu_source_s {
  char name[64];        /* for reports: file name or "tone:440" */
  char codec[16];       /* encoding name */
  int clock;            /* RTP clock */
  int pt;
  uint32_t orig_ssrc;
  sfu_src_pkt_t *pkts;
  size_t npkts;
  uint8_t *bytes;       /* payloads back to back */
  size_t nbytes;
  uint64_t pass_us;     /* duration of one pass incl. one frame interval */
  uint16_t seq_span;    /* sequence numbers one pass advances */
  uint32_t ts_span;     /* timestamp units one pass advances */
  sfu_timing_t timing;  /* as resolved */
  uint64_t skipped;     /* UDP datagrams of the capture not in the stream */
  /* tone or WAV: encoded on the fly */
  void *enc;            /* OpusEncoder */
  double freq;          /* tone */
  uint64_t enc_next;     /* the packet the encoder is ready for */
  int16_t *pcm;         /* WAV: interleaved samples, looped */
  size_t pcm_frames;    /* samples per channel */
  int rate, channels;   /* WAV */
} sfu_source_t;

/* A 16-bit PCM WAV file's layout, from its bytes (RIFF/WAVE, "fmt " with
 * format 1 or WAVE_FORMAT_EXTENSIBLE PCM, "data"; other chunks skipped).
 * Returns 0, or SFU_EPROTO with a reason in *why. `data` points into buf. */
typedef struct sfu_wav_s {
  int rate, channels;
  const uint8_t *data;  /* little-endian int16 samples, interleaved */
  size_t frames;        /* samples per channel */
} sfu_wav_t;
int sfu_wav_parse(const uint8_t *buf, size_t len, sfu_wav_t *out, const char **why);
/* Opus of a WAV file (8, 12, 16, 24 or 48 kHz; mono or stereo), 20 ms
 * frames, looped. */
int sfu_source_wav(sfu_source_t *s, const char *path, char *err, size_t errlen);

/* Loads a stream of a capture. Returns 0 or a negative error with a clear
 * message in err ("no RTP stream matches ssrc 0x1234 in x.pcap"). */
int sfu_source_load(sfu_source_t *s, const char *path, const sfu_src_sel_t *sel,
                    sfu_timing_t timing, char *err, size_t errlen);
/* An Opus tone of `freq` Hz, 20 ms frames, 48 kHz: encoded as it is sent. */
int sfu_source_tone(sfu_source_t *s, double freq, char *err, size_t errlen);
/* Packet i's send time from the start, in *at_us: returns 1, or 0 when
 * the source has no packet i (i >= npkts * loops; a tone or a WAV file
 * never ends). Nothing is built or encoded. */
int sfu_source_at(const sfu_source_t *s, uint64_t i, int loops, uint64_t *at_us);
/* Packet `i` (counting across loops) into `out` (a plain RTP packet with
 * `ssrc`); its send time from the start in *at_us. With level_ext (1..14)
 * an Opus packet carries its audio level in that one-byte extension, as
 * browsers send it (levels are measured with libopus when the source is
 * loaded, or on each frame encoded). Returns its length, 0 when the source
 * has no packet i (i >= npkts * loops), or negative.
 *
 * A tone or a WAV file is encoded here, and an Opus encoder carries state
 * from one frame to the next: its packets are built once each, in order
 * (SFU_EINVAL otherwise); sfu_source_at() says when the next is due. A
 * capture's packets can be built in any order, any number of times. */
int sfu_source_packet(sfu_source_t *s, uint64_t i, int loops, uint32_t ssrc, int level_ext,
                      uint8_t *out, size_t cap, uint64_t *at_us);
void sfu_source_free(sfu_source_t *s);

/* Marks the packets of a capture where a keyframe's picture starts: the
 * first packet of a picture (see sfu_source_starts_picture()) that the
 * keyframe rule of s->codec accepts (codecs/video.h). Call once the codec
 * is known. Returns how many; 0 for audio, an unknown codec, a tone or a
 * WAV file. */
int sfu_source_mark_keyframes(sfu_source_t *s);
/* Capture packet i (counting across loops) is the first of a picture: the
 * first of the capture, or its timestamp differs from the packet's before.
 * 0 for a tone or a WAV file. */
int sfu_source_starts_picture(const sfu_source_t *s, uint64_t i);
/* The first packet at or after i (across `loops` passes) marked as a
 * keyframe's start; UINT64_MAX when there is none before the end. */
uint64_t sfu_source_next_keyframe(const sfu_source_t *s, uint64_t i, int loops);

/* Encoding name and clock for a payload type without other information:
 * the numbers browsers and GStreamer use (111 opus, 96 VP8, 98 VP9,
 * 102/126 H264, 45 AV1). 0 if unknown. */
int sfu_source_guess_codec(int pt, char name[16], int *clock);

#endif
