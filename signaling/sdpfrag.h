/*
 * sdpfrag.h -- the SDP fragments of WHIP/WHEP's PATCH (RFC 9725 section
 * 4.3, RFC 8840 section 4.4: media type application/trickle-ice-sdpfrag)
 * and the rewrite of an offer's ICE credentials for an ICE restart.
 *
 * Stateless, no allocation but the rewritten text. Used by sfud
 * (sfu/node/whip.c) on bytes from any HTTP client: every length is
 * checked, malformed input is an error code, never a crash.
 */
#ifndef SFU_SIGNALING_SDPFRAG_H
#define SFU_SIGNALING_SDPFRAG_H

#include <stddef.h>

#define SFU_SDPFRAG_MAX_TEXT 16384 /* bytes of fragment accepted */
#define SFU_SDPFRAG_MAX_CRED 256   /* bytes of an ice-ufrag or ice-pwd */

/* What a fragment says. ufrag/pwd are "" when absent. */
typedef struct sfu_sdpfrag_s {
  char ufrag[SFU_SDPFRAG_MAX_CRED + 1]; /* a=ice-ufrag */
  char pwd[SFU_SDPFRAG_MAX_CRED + 1];   /* a=ice-pwd */
  int candidates;                       /* a=candidate lines */
  int end_of_candidates;                /* a=end-of-candidates seen */
  int mlines;                           /* m= lines */
} sfu_sdpfrag_t;

/*
 * Parses `len` bytes of a fragment: lines ending in LF or CRLF (the last
 * may lack it), each "<letter>=<value>"; only a=ice-ufrag, a=ice-pwd,
 * a=candidate, a=end-of-candidates and m= are read, other lines are
 * skipped. 0, or SFU_E2BIG (over SFU_SDPFRAG_MAX_TEXT, a credential over
 * SFU_SDPFRAG_MAX_CRED), SFU_EPROTO (a line that is not <letter>=, a NUL
 * or stray CR, an ice-ufrag without an ice-pwd or the reverse, an empty
 * or non-ICE-char credential), with *why (may be NULL) a static reason.
 */
int sfu_sdpfrag_parse(const char *text, size_t len, sfu_sdpfrag_t *out, const char **why);

/*
 * A copy of SDP `text` with every a=ice-ufrag and a=ice-pwd value replaced
 * by `ufrag` and `pwd` (malloc'd, NUL-terminated; the caller frees it), or
 * NULL (out of memory, or no a=ice-ufrag line in `text`).
 */
char *sfu_sdpfrag_set_ice(const char *text, const char *ufrag, const char *pwd);

#endif
