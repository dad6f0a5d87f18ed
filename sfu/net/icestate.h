/*
 * icestate.h -- the room's ICE-lite state machine, apart from its sockets:
 * credentials, which stream a check or a datagram belongs to, validated
 * addresses, nomination, role conflict, the error-response rate limit,
 * consent freshness and ICE restart (RFC 8445 lite and controlled, RFC
 * 7675). sfu/net/icelite.c is its socket layer; docs/internals/icelite.md
 * explains both.
 *
 * Sans-IO (the shape of str0m's ICE agent and quicly): it never touches a
 * socket, a loop or a clock. Every input is a call that carries the time,
 * any monotonic millisecond clock (a time earlier than one already seen is
 * taken as equal to it):
 *
 *   sfu_icestate_input()   one received datagram, from an address, on a
 *                          local socket (an index the caller chose)
 *   sfu_icestate_tick()    time passed (consent freshness)
 *
 * and every output is a value the caller acts on:
 *
 *   what input() returns   DELIVER: media for a stream (hand the bytes to
 *                          its owner); TRANSMIT: a STUN response to send
 *                          from that socket to that address; NONE: nothing
 *                          (a counted drop, an ignored message)
 *   sfu_icestate_poll_event()  a stream whose state changed: connected or
 *                          not, and its selected pair (where its media
 *                          goes), queued by input(), tick() and nothing
 *                          else, to be polled after each of those calls
 *
 * Nothing is allocated per datagram: media costs one hash lookup. Memory
 * is allocated by create (two maps), by stream create (one struct), and
 * when a check validates a new address or a stream gets new credentials
 * (a map may double, up to its cap).
 * The random credentials and the map's hash seed come from
 * sfu_random_bytes(). One thread owns a machine; no function calls back.
 */
#ifndef SFU_ICESTATE_H
#define SFU_ICESTATE_H

#include <stddef.h>
#include <stdint.h>

#define SFU_ICESTATE_UFRAG_LEN 8          /* local ufrag: 48 random bits */
#define SFU_ICESTATE_PWD_LEN 24           /* local password: 144 random bits */
#define SFU_ICESTATE_REMOTE_MAX 256       /* RFC 8839: remote ufrag/pwd up to 256 chars */
#define SFU_ICESTATE_MAX_KNOWN 8          /* validated addresses per stream */
#define SFU_ICESTATE_MAX_STREAMS 4096     /* per machine */
#define SFU_ICESTATE_CONSENT_MS 30000     /* RFC 7675: consent lost after this */
#define SFU_ICESTATE_STALE_MS 6000        /* a nominated pair unchecked this long yields */
#define SFU_ICESTATE_ERR_PER_S 100        /* STUN error responses per second */
#define SFU_ICESTATE_TX_MAX 128           /* largest response written */
#define SFU_ICESTATE_CHECK_MAX 348        /* largest check written: header 20, USERNAME
                                             4 + 268 (256 + ':' + 8, padded), PRIORITY 8,
                                             ICE-CONTROLLING 12, USE-CANDIDATE 4,
                                             MESSAGE-INTEGRITY 24, FINGERPRINT 8 */

typedef struct sfu_icestate_s sfu_icestate_t;
typedef struct sfu_icestate_stream_s sfu_icestate_stream_t;

#define SFU_ICESTATE_UDP 0 /* sfu_icestate_addr_t.transport: a UDP source */
#define SFU_ICESTATE_TCP 1 /* ... the far end of a TCP connection (ICE-TCP) */

/* A transport address as a value: what the maps hash and compare, byte
 * for byte, so every byte is defined (the caller zeroes the struct before
 * filling it). The transport is part of the value: the same ip:port over
 * UDP and over TCP are two addresses, so a check that arrived on a TCP
 * connection validates that connection's path only, and a selected pair
 * says which transport its media takes. sfu/net/icelite.c converts
 * sockaddrs to and from it. */
typedef struct sfu_icestate_addr_s {
  uint8_t fam;       /* 4 or 6 */
  uint8_t transport; /* SFU_ICESTATE_UDP (0) or SFU_ICESTATE_TCP */
  uint16_t port;     /* host order */
  uint8_t ip[16];    /* network order; IPv4 in the first 4 bytes, the rest 0 */
} sfu_icestate_addr_t;

/* What sfu_icestate_input() asks of the caller. */
typedef enum {
  SFU_ICESTATE_NONE = 0,     /* nothing: dropped (counted) or ignored */
  SFU_ICESTATE_DELIVER = 1,  /* media for the stream of out->user */
  SFU_ICESTATE_TRANSMIT = 2, /* send out->data from out->sock to out->to */
} sfu_icestate_action_t;

/* The details of an action, filled by sfu_icestate_input(): only the
 * fields of the action returned are written. Lives on the caller's
 * stack. */
typedef struct sfu_icestate_out_s {
  void *user;             /* DELIVER: the owner pointer of the stream;
                             TRANSMIT: the owner pointer of the stream whose
                             password authenticated the request (a success,
                             a signed 420 or 487), NULL for an unauthenticated
                             error (400, 401) */
  int sock;               /* TRANSMIT: local socket, the one the request came on */
  sfu_icestate_addr_t to; /* TRANSMIT: destination, the request's source */
  const uint8_t *data;    /* TRANSMIT: the response, in the machine's buffer,
                             valid until the next call into the machine */
  size_t len;             /* TRANSMIT: its length, at most SFU_ICESTATE_TX_MAX */
} sfu_icestate_out_t;

/* A stream's selected pair: the remote address its media is sent to and
 * the local socket it leaves from. A copy, valid as long as the caller
 * keeps it. */
typedef struct sfu_icestate_pair_s {
  sfu_icestate_addr_t remote; /* the peer's address (learnt from its checks) */
  int sock;                   /* local socket index */
  int nominated;              /* 1: chosen by a check with USE-CANDIDATE */
  uint32_t priority;          /* PRIORITY of the nominating check; 0 before */
  uint64_t checked_ms;        /* time of its last authenticated check */
} sfu_icestate_pair_t;

/* One stream's change, from sfu_icestate_poll_event(): its state now, not
 * a history (changes between two polls are folded into one event). A
 * copy on the caller's stack. */
typedef struct sfu_icestate_event_s {
  sfu_icestate_stream_t *stream; /* the stream (alive when polled) */
  void *user;                    /* its owner pointer */
  int state;                     /* 1 connected, 0 lost, -1 unchanged since
                                    the last event (only the pair moved) */
  int has_pair;                  /* 1: `pair` is where media goes; 0: no
                                    pair, sending must stop */
  sfu_icestate_pair_t pair;      /* if has_pair; zeroed otherwise */
} sfu_icestate_event_t;

/* The machine's counters, all monotonic. */
typedef struct sfu_icestate_stats_s {
  uint64_t drop_unknown;     /* media from an address no stream validated */
  uint64_t stun_requests;    /* Binding requests that parsed with a FINGERPRINT */
  uint64_t stun_ok;          /* answered with success */
  uint64_t stun_malformed;   /* first byte 0..3 but not a valid STUN message */
  uint64_t stun_fingerprint; /* no or a wrong FINGERPRINT: dropped silently */
  uint64_t stun_ignored;     /* indications: nothing to do */
  uint64_t stun_responses;   /* success and error responses: the answers to the
                                checks of sfu_icestate_write_check() (or strays),
                                dropped unanswered */
  uint64_t stun_400;         /* no USERNAME/MESSAGE-INTEGRITY, not Binding */
  uint64_t stun_401_user;    /* unknown local ufrag */
  uint64_t stun_401_mac;     /* wrong MESSAGE-INTEGRITY */
  uint64_t stun_420;         /* unknown comprehension-required attributes */
  uint64_t stun_487;         /* ICE-CONTROLLED from the peer */
  uint64_t stun_err_limited; /* error responses not sent (SFU_ICESTATE_ERR_PER_S) */
  uint64_t stun_write_fail;  /* a response did not fit (never expected) */
  uint64_t addr_map_full;    /* an address could not be validated */
  uint64_t consent_lost;     /* streams that lost consent */
  uint64_t restarts;         /* ICE restarts by peers */
} sfu_icestate_stats_t;

/* ---- the machine ---------------------------------------------------------- */

/* A machine with no streams, consent timeout SFU_ICESTATE_CONSENT_MS.
 * 0 or SFU_ENOMEM (nothing to free then). */
int sfu_icestate_create(sfu_icestate_t **out);
/* Frees the machine and every stream still in it (their owners' pointers
 * to them dangle from then on). NULL is ignored. */
void sfu_icestate_destroy(sfu_icestate_t *sm);

/*
 * One received datagram: `buf` (`len` bytes, borrowed for the call) from
 * `from` on local socket `sock` (0..255, the caller's numbering), at
 * `now_ms`. By RFC 7983's first byte:
 *
 *   0..3   STUN: a Binding request is routed by the local half of its
 *          USERNAME to a stream, authenticated (MESSAGE-INTEGRITY with the
 *          stream's password, FINGERPRINT) and answered: TRANSMIT, a
 *          success (XOR-MAPPED-ADDRESS of `from`) or an error (400, 401,
 *          420, 487; at most SFU_ICESTATE_ERR_PER_S a second), with
 *          out->user naming the stream if its password authenticated the
 *          request. A success makes `from` a validated address of the
 *          stream and may select its pair, queueing an event. Anything
 *          else: NONE.
 *   other  media: DELIVER if a stream validated `from` (out->user is that
 *          stream's owner pointer; the bytes are the caller's), else NONE
 *          and counted (drop_unknown, or the stream's drop_foreign if it
 *          retired `from`). DELIVER never queues an event.
 *
 * Every path is counted in sfu_icestate_stats(). Poll events after a call
 * that did not return DELIVER.
 */
sfu_icestate_action_t sfu_icestate_input(sfu_icestate_t *sm, int sock,
                                         const sfu_icestate_addr_t *from, const uint8_t *buf,
                                         size_t len, uint64_t now_ms, sfu_icestate_out_t *out);
/* The path to `addr` on local socket `sock` is gone (its TCP connection
 * closed): the address stops being a validated address of its stream, so
 * media from it is unknown from then on. If it was the stream's selected
 * pair, the stream has no pair (an event with has_pair 0 is queued:
 * sending must stop) but stays connected until a check selects another
 * pair or consent runs out: a peer that lost a connection may reconnect
 * or move to another path within the consent timeout. Returns 1 if the
 * address was known, 0 if not (nothing changes then). */
int sfu_icestate_forget(sfu_icestate_t *sm, int sock, const sfu_icestate_addr_t *addr);
/* Time passed: a connected stream whose selected pair has had no
 * authenticated check for the consent timeout loses consent (its pair is
 * dropped: an event with state 0 and no pair is queued). */
void sfu_icestate_tick(sfu_icestate_t *sm, uint64_t now_ms);
/* The earliest time a tick() can change something (a consent deadline
 * passed), or UINT64_MAX if none can. A caller may tick on a coarser
 * period instead; icelite.c ticks every second. O(streams). */
uint64_t sfu_icestate_next_timeout(const sfu_icestate_t *sm);
/* Takes the next queued event into *ev (streams in the order they first
 * changed): 1, or 0 if none is queued. Destroying a stream drops its
 * event; a stream may be destroyed between polls. */
int sfu_icestate_poll_event(sfu_icestate_t *sm, sfu_icestate_event_t *ev);
/* The counters; the pointer lives as long as the machine. */
const sfu_icestate_stats_t *sfu_icestate_stats(const sfu_icestate_t *sm);

/* ---- streams -------------------------------------------------------------- */

/* A stream (a participant) with fresh local credentials, unique in the
 * machine. `user` is the owner's, given back in outputs. 0, SFU_ENOMEM or
 * SFU_EBUSY (SFU_ICESTATE_MAX_STREAMS reached). */
int sfu_icestate_stream_create(sfu_icestate_t *sm, void *user, sfu_icestate_stream_t **out);
/* Removes the stream from the maps and frees it, with its queued event.
 * Its addresses are unknown from then on. NULL is ignored. */
void sfu_icestate_stream_destroy(sfu_icestate_stream_t *s);
/* Local credentials (NUL-terminated, valid until the next restart or the
 * stream's end). */
const char *sfu_icestate_ufrag(const sfu_icestate_stream_t *s);
const char *sfu_icestate_pwd(const sfu_icestate_stream_t *s);
/* The peer's credentials from its SDP. A remote ufrag other than the last
 * one is an ICE restart: new local credentials (the old ones get 401),
 * every validated address but the selected pair's retired (its media is
 * dropped as foreign), nomination open again; returns 1. The password is
 * kept either way (sfu_icestate_write_check() signs with it). 0 otherwise, or
 * SFU_EINVAL (empty, longer than SFU_ICESTATE_REMOTE_MAX), SFU_ENOMEM,
 * SFU_EBUSY. Queues no event. */
int sfu_icestate_set_remote(sfu_icestate_stream_t *s, const char *ufrag, const char *pwd);
/* The peer's ufrag as last given to sfu_icestate_set_remote(), "" before
 * (valid until the next call or the stream's end). */
const char *sfu_icestate_remote_ufrag(const sfu_icestate_stream_t *s);
/*
 * A Binding request from stream `s` to its peer, for an agent that checks
 * as well as answers (a link between two lite agents, where each side's
 * checks validate the other side's stream: docs/internals/icelite.md,
 * "Checking streams"), written into (buf, cap): USERNAME "<remote
 * ufrag>:<local ufrag>", PRIORITY `priority`, ICE-CONTROLLING with the
 * machine's random tie-breaker, USE-CANDIDATE, MESSAGE-INTEGRITY keyed
 * with the remote password, FINGERPRINT, under a fresh random transaction
 * id. At most SFU_ICESTATE_CHECK_MAX bytes. Returns the length, SFU_EAGAIN
 * if the remote credentials are not known yet, or SFU_E2BIG. Changes
 * nothing in the machine: the answers that come back are dropped and
 * counted (stun_responses); the peer's own checks are what validate this
 * stream.
 */
int sfu_icestate_write_check(const sfu_icestate_stream_t *s, uint8_t *buf, size_t cap,
                             uint32_t priority);
/* 1 and *out filled if the stream has a selected pair, else 0 and *out
 * zeroed. */
int sfu_icestate_selected(const sfu_icestate_stream_t *s, sfu_icestate_pair_t *out);
/* 1 if connected (a pair was selected and consent has not been lost). */
int sfu_icestate_connected(const sfu_icestate_stream_t *s);
/* Media datagrams dropped because they came from an address this stream
 * retired (ICE restart). */
uint64_t sfu_icestate_drop_foreign(const sfu_icestate_stream_t *s);
/* The owner pointer given to sfu_icestate_stream_create(). */
void *sfu_icestate_user(const sfu_icestate_stream_t *s);

/* The streams, newest first: the first, the one after `s`, NULL at the
 * end; and the oldest. Not to be walked across a destroy of the current
 * stream. */
sfu_icestate_stream_t *sfu_icestate_streams(const sfu_icestate_t *sm);
sfu_icestate_stream_t *sfu_icestate_stream_next(const sfu_icestate_stream_t *s);
sfu_icestate_stream_t *sfu_icestate_oldest(const sfu_icestate_t *sm);

/* Tests only: the consent timeout of this machine (real-time tests of
 * icelite.c cannot wait 30 s). */
void sfu__icestate_set_consent_timeout(sfu_icestate_t *sm, uint64_t ms);

#endif
