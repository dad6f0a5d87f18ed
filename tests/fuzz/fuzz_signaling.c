/*
 * fuzz_signaling.c -- client signaling messages: any bytes, parsed as JSON
 * the way sfud does, then checked by sfu_msg_parse(). Whatever passes must
 * hold what the rest of the code relies on.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "signaling/message.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  json_t *j = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
  sfu_msg_t m;
  const char *code = NULL, *why = NULL;
  if (sfu_msg_parse(j, &m, &code, &why) == 0) {
    switch (m.type) {
    case SFU_MSG_JOIN:
      if (!m.room || !m.token) abort();
      break;
    case SFU_MSG_OFFER:
    case SFU_MSG_ANSWER:
      if (!m.sdp || strlen(m.sdp) != m.sdp_len || m.sdp_len > SFU_MSG_MAX_SDP) abort();
      if (m.sources && (!json_is_object(m.sources) ||
                        json_object_size(m.sources) > SFU_MSG_MAX_SOURCES))
        abort();
      break;
    case SFU_MSG_CANDIDATE:
      if (m.candidate && strlen(m.candidate) > 512) abort();
      break;
    default:
      break;
    }
    if (m.id && !json_is_integer(m.id) && !json_is_string(m.id)) abort();
  } else if (!code || !why) {
    abort();
  }
  json_decref(j);
  return 0;
}
