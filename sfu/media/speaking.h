/*
 * speaking.h -- speaking state of one audio stream from its levels.
 *
 * Input is one observation per audio packet: an RFC 6464 level (0..127,
 * -dBov, 127 = silence) either read from the ssrc-audio-level header
 * extension or measured by sfu_opus_meter_feed() (codecs/opus.h), the
 * extension's voice flag when the sender sets it, and the arrival time.
 * Output is a yes/no "speaking" state that does not flicker, and a 0..1
 * level for meters in the UI.
 *
 * The rule, exactly (docs/internals/speaking.md has the reasoning):
 *
 *   1. Smoothing. s = EMA of the levels in dB with time constant smooth_ms:
 *      at each observation s += (level - s) * (1 - exp(-dt / smooth_ms)),
 *      dt = time since s last moved. The first observation sets s. While
 *      no packet arrives for more than gap_ms, sfu_speaking_tick() moves s
 *      towards 127 the same way (so the UI meter falls during DTX).
 *   2. An observation is LOUD if s <= on_level and voice != 0, QUIET if
 *      s > off_level or voice == 0, and otherwise in between.
 *   3. Not speaking: a run of consecutive LOUD observations starts at the
 *      time of its first one; any other observation, or a gap of more than
 *      gap_ms between observations, ends the run. Speaking starts at the
 *      first observation at which the run has lasted >= on_ms (so with
 *      20 ms packets and on_ms = 100, the sixth loud packet in a row).
 *   4. Speaking: every observation that is not QUIET refreshes hold_ms.
 *      Speaking stops once now - hold_ms >= off_ms, checked at every tick,
 *      at every QUIET observation, and at an observation that follows more
 *      than gap_ms without packets (the silence a tick would have caught,
 *      judged before the new packet). So: QUIET observations only, or none
 *      at all, for off_ms. (A packet that is not QUIET and arrives on time
 *      keeps speaking on even at exactly hold_ms + off_ms.)
 *
 * Embedded value, no allocation, no callbacks: the caller (the room, one
 * per published audio track) owns the memory, calls sfu_speaking_init(),
 * may then change the configuration fields, and feeds observations. Time
 * is any monotonic millisecond clock; a time earlier than the previous one
 * is taken as equal to it.
 */
#ifndef SFU_SPEAKING_H
#define SFU_SPEAKING_H

#include <stdint.h>

/* Defaults set by sfu_speaking_init(). */
#define SFU_SPEAKING_ON_LEVEL 50   /* louder than -50 dBov counts as loud */
#define SFU_SPEAKING_OFF_LEVEL 60  /* quieter than -60 dBov counts as quiet */
#define SFU_SPEAKING_ON_MS 100     /* loud this long to start */
#define SFU_SPEAKING_OFF_MS 400    /* quiet (or no packets) this long to stop */
#define SFU_SPEAKING_SMOOTH_MS 40  /* EMA time constant */
#define SFU_SPEAKING_GAP_MS 100    /* a longer silence between packets breaks
                                      a loud run and starts the meter decay */

/*
 * Detector state. The first block is configuration (levels are RFC 6464
 * levels, larger = quieter; keep on_level <= off_level); the rest is state
 * that speaking.c owns and callers only read through the functions below.
 */
typedef struct {
  int on_level;       /* LOUD: smoothed level <= on_level */
  int off_level;      /* QUIET: smoothed level > off_level */
  uint32_t on_ms;     /* a LOUD run this long starts speaking */
  uint32_t off_ms;    /* no non-QUIET observation this long stops it */
  uint32_t smooth_ms; /* EMA time constant; 0 = no smoothing */
  uint32_t gap_ms;    /* max spacing of observations inside a LOUD run */
  /* ---------------------------------------------------------------------- */
  float smoothed;        /* EMA of the level, 0..127 */
  uint64_t last_ms;      /* time of the last observation */
  uint64_t smoothed_ms;  /* time `smoothed` was last moved */
  uint64_t run_ms;       /* start of the current LOUD run (not speaking) */
  uint64_t hold_ms;      /* last non-QUIET observation (speaking) */
  uint8_t seen;          /* 1 once the first observation arrived */
  uint8_t in_run;        /* 1 while a LOUD run is under way */
  uint8_t active;        /* 1 while speaking */
} sfu_speaking_t;

/* Set the defaults above and the state "silent, nothing seen yet". */
void sfu_speaking_init(sfu_speaking_t *s);

/*
 * Feed one observation.
 *
 *   level   0..127 (values above 127 count as 127). A negative level (a
 *           meter decode error) carries no information: the call acts as
 *           sfu_speaking_tick(s, now_ms).
 *   voice   the RFC 6464 V flag: 1 voice, 0 no voice, or -1 when unknown
 *           (no flag, the meter, or an extension negotiated with vad=off).
 *           0 makes the observation QUIET whatever its level.
 *   now_ms  arrival time.
 *
 * Returns 1 if the speaking state changed (read it with
 * sfu_speaking_active()), else 0.
 */
int sfu_speaking_update(sfu_speaking_t *s, int level, int voice,
                        uint64_t now_ms);

/*
 * Time passes with no packet (DTX, mute, loss): call from a timer, e.g.
 * every 100 ms. Ends speaking once off_ms have passed since the last
 * non-QUIET observation, ends a LOUD run and lets the meter level fall
 * once no packet came for gap_ms. Returns 1 on a state change, else 0.
 */
int sfu_speaking_tick(sfu_speaking_t *s, uint64_t now_ms);

/* 1 while speaking. */
int sfu_speaking_active(const sfu_speaking_t *s);

/*
 * Smoothed level as linear amplitude for display: 10^(-s/20), so 1.0 is
 * 0 dBov, 0.1 is -20 dBov, and 127 (silence, or nothing seen yet) is 0.
 */
float sfu_speaking_level(const sfu_speaking_t *s);

#endif
