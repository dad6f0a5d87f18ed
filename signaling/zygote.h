/*
 * zygote.h -- the wire format between sfud's spawner (sfu/node/spawner.c)
 * and the room zygote (sfu/room/zygote.c).
 *
 * Control channel: an AF_UNIX SOCK_SEQPACKET pair (message boundaries
 * kept), the zygote's end on its fd 3.
 *
 *   sfud -> zygote   sfu_zygote_req_t + argv strings (NUL-separated),
 *                    SCM_RIGHTS: the room's IPC socket (becomes its fd 3)
 *   zygote -> sfud   sfu_zygote_msg_t: SPAWNED (req_id, pid), FAILED
 *                    (req_id, err), EXITED (pid, status, signal)
 */
#ifndef SFU_SIGNALING_ZYGOTE_H
#define SFU_SIGNALING_ZYGOTE_H

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

#endif
