/*
 * zygote.h -- rooms forked from a pre-initialised template process.
 *
 * exec'ing sfu-room costs milliseconds: the dynamic linker maps and
 * relocates its libraries and OpenSSL initialises. So sfud starts one
 * `sfu-room --zygote` at boot; it loads everything once, warms the
 * libraries up, and forks a room per request. A fork of that small process
 * costs a fraction of a millisecond, and the children share its pages
 * copy-on-write, which also keeps a room's private memory small.
 *
 * The control channel and its messages are in signaling/zygote.h (sfud's
 * spawner speaks the other end). The zygote reaps its children (signalfd
 * on SIGCHLD) and reports every exit. Rooms die with it
 * (PR_SET_PDEATHSIG), so sfud can report them as crashed if the zygote
 * ever dies, and start a new one. When sfud goes (its channel closes) the
 * zygote stays until its last room has ended: rooms may outlive sfud for
 * their orphan grace (sfu/room/shell.h).
 */
#ifndef SFU_ROOM_ZYGOTE_H
#define SFU_ROOM_ZYGOTE_H

#include "signaling/zygote.h"

/* Room side: runs the zygote on `ctl_fd` until sfud closes it. Each child
 * returns from here into `room_main(argc, argv)` and exits with its result. */
int sfu_zygote_run(int ctl_fd, int (*room_main)(int argc, char **argv));

#endif
