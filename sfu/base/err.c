/*
 * err.c -- text for error codes (SFU_ERR_MAP, in the shape of UV_ERRNO_MAP).
 */
#include <string.h>

#include "sfu/base/sfu.h"

const char *sfu_strerror(int err) {
  switch (err) {
#define XX(name, val, msg) \
  case val:                \
    return msg;
    SFU_ERR_MAP(XX)
#undef XX
  default:
    return err < 0 ? strerror(-err) : "success";
  }
}

const char *sfu_err_name(int err) {
  switch (err) {
#define XX(name, val, msg) \
  case val:                \
    return #name;
    SFU_ERR_MAP(XX)
#undef XX
  default:
    return err == 0 ? "OK" : "EUNKNOWN";
  }
}
