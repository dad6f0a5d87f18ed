/*
 * fuzz_validate.c -- control-plane request bodies. Every input either
 * validates into in-range fields or produces a 400/413 with a code.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sfu/node/validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static sfu_config_t cfg;
  static int init;
  sfu_api_error_t e;
  if (!init) {
    sfu_config_defaults(&cfg);
    init = 1;
  }
  sfu_room_req_t r;
  int st = sfu_validate_room_create((const char *)data, size, &cfg, &r, &e);
  if (st == 0) {
    if (r.max_participants < 1 || r.max_participants > cfg.max_participants) abort();
    if (r.empty_timeout_s < 1 || r.empty_timeout_s > 86400) abort();
    sfu_room_req_free(&r);
  } else if ((st != 400 && st != 413) || !e.code) {
    abort();
  }
  sfu_token_req_t t;
  st = sfu_validate_token_req((const char *)data, size, &cfg, &t, &e);
  if (st == 0 && (!sfu_token_valid_id(t.identity) || t.ttl_s < 1)) abort();
  int d, m;
  sfu_validate_drain((const char *)data, size, &cfg, &d, &m, &e);
  char node[64];
  st = sfu_validate_migrate((const char *)data, size, &cfg, node, &e);
  if (st == 0 && strlen(node) > 63) abort();
  sfu_capture_req_t c;
  st = sfu_validate_capture((const char *)data, size, &cfg, &c, &e);
  if (st == 0 && ((c.action != 0 && c.action != 1) || c.max_mib < 1 || c.max_seconds < 1)) abort();
  char reason[SFU_BAN_MAX_REASON + 1];
  st = sfu_validate_ban((const char *)data, size, &cfg, reason, &e);
  if (st == 0 && strlen(reason) > SFU_BAN_MAX_REASON) abort();
  if (st != 0 && ((st != 400 && st != 413) || !e.code || reason[0])) abort();
  return 0;
}
