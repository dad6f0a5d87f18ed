/*
 * zygote.h -- rooms forked from a pre-initialised template process.
 *
 * exec'ing sfu-room costs tens of milliseconds: the dynamic linker maps and
 * relocates some fifty libraries (libnice pulls in GIO, GnuTLS, ...). So
 * sfud starts one `sfu-room --zygote` at boot; it loads everything once,
 * warms the libraries up, and forks a room per request. A fork of that
 * small process costs a fraction of a millisecond, and the children share
 * its pages copy-on-write, which also keeps a room's private memory small.
 *
 * Control channel: an AF_UNIX SOCK_SEQPACKET pair (message boundaries
 * kept), the zygote's end on its fd 3.
 *
 *   sfud -> zygote   sfu_zygote_req_t + argv strings (NUL-separated),
 *                    SCM_RIGHTS: the room's IPC socket (becomes its fd 3)
 *   zygote -> sfud   sfu_zygote_msg_t: SPAWNED (req_id, pid), FAILED
 *                    (req_id, err), EXITED (pid, status, signal)
 *
 * The zygote reaps its children (signalfd on SIGCHLD) and reports every
 * exit. Rooms die with it (PR_SET_PDEATHSIG), so sfud can report them as
 * crashed if the zygote ever dies, and start a new one.
 */
#ifndef SFU_ZYGOTE_H
#define SFU_ZYGOTE_H

#include <stdint.h>

#define SFU_ZYGOTE_MAGIC 0x5346555aU /* "SFUZ" */
#define SFU_ZYGOTE_MAX_ARGS 32
#define SFU_ZYGOTE_MAX_ARGBYTES 2048

typedef struct sfu_zygote_req_s {
  uint32_t magic;     /* SFU_ZYGOTE_MAGIC */
  uint32_t req_id;    /* echoed in the reply */
  uint32_t argc;      /* strings that follow */
  uint32_t args_len;  /* their bytes, NULs included */
} sfu_zygote_req_t;

enum { SFU_ZYGOTE_SPAWNED = 1, SFU_ZYGOTE_FAILED = 2, SFU_ZYGOTE_EXITED = 3 };

typedef struct sfu_zygote_msg_s {
  uint32_t type;      /* SFU_ZYGOTE_* */
  uint32_t req_id;    /* SPAWNED, FAILED */
  int32_t pid;        /* SPAWNED, EXITED */
  int32_t status;     /* EXITED: exit status */
  int32_t signal;     /* EXITED: terminating signal, 0 if none */
  int32_t err;        /* FAILED: negative errno */
} sfu_zygote_msg_t;

/* Room side: runs the zygote on `ctl_fd` until sfud closes it. Each child
 * returns from here into `room_main(argc, argv)` and exits with its result. */
int sfu_zygote_run(int ctl_fd, int (*room_main)(int argc, char **argv));

#endif
