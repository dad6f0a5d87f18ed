/*
 * fuzz_etcd.c -- libFuzzer target for what sfud reads from etcd's JSON
 * gateway: the watch stream (answers one per line, each given to
 * sfu_fleet_read_watch()) and the base64 keys and values in it
 * (sfu_etcd_decode(), sfu_etcd_kv_json()).
 *
 * Checks, beyond memory safety: a room reported lost or back has a
 * non-empty id without '/' in reach of the prefix's rooms/ keys; whatever
 * decodes encodes back to the same base64.
 *
 * Corpus: tests/fuzz/corpus/etcd/ (answers recorded from etcd 3.4: a
 * node's lease expiring with its rooms, a clean leave, puts, a
 * compaction).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sfu/node/etcd.h"
#include "sfu/node/fleet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_id(const char *room_id) {
  if (!room_id[0] || strchr(room_id, '/')) abort();
}

static void lost(void *arg, const char *room_id, const char *name, const char *node) {
  (void)arg, (void)name, (void)node;
  check_id(room_id);
}

static void back(void *arg, const char *room_id) {
  (void)arg;
  check_id(room_id);
}

static void roundtrip(const json_t *s) {
  char *out;
  size_t len;
  if (sfu_etcd_decode(s, &out, &len) != 0) return;
  json_t *again = sfu_etcd_bytes(out, len);
  /* canonical base64 only: padding bits may differ in what was decoded */
  if (again && json_string_length(again) != json_string_length(s)) abort();
  json_decref(again);
  free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const sfu_fleet_watch_cbs_t cbs = {lost, back};
  size_t start = 0;
  for (size_t i = 0; i <= size; i++) {
    if (i < size && data[i] != '\n') continue;
    json_t *msg = json_loadb((const char *)data + start, i - start, 0, NULL);
    if (msg) {
      int64_t compacted;
      sfu_fleet_read_watch("/sfu", msg, &cbs, NULL, &compacted);
      json_t *kv = json_object_get(msg, "kv");
      json_decref(sfu_etcd_kv_json(kv));
      if (json_is_string(json_object_get(kv, "key"))) roundtrip(json_object_get(kv, "key"));
      json_decref(msg);
    }
    start = i + 1;
  }
  json_t *s = json_stringn((const char *)data, size);
  if (s) roundtrip(s);
  json_decref(s);
  return 0;
}
