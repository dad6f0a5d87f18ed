/*
 * vec.c -- growth of the growable array (vec.h).
 */
#include <stdint.h>
#include <string.h>

#include "sfu/base/sfu.h"
#include "sfu/base/vec.h"

int sfu__vec_reserve(void *items, int *cap, int need, size_t elem) {
  void *old, *grown;
  if (need <= *cap) return 0;
  if (need < 0) return SFU_ENOMEM;
  size_t n = *cap > 0 ? (size_t)*cap : SFU_VEC_MIN;
  while (n < (size_t)need) n *= 2;
  if (n > INT32_MAX || n > SIZE_MAX / elem) return SFU_ENOMEM;
  memcpy(&old, items, sizeof(old));
  if ((grown = realloc(old, n * elem)) == NULL) return SFU_ENOMEM;
  memcpy(items, &grown, sizeof(grown));
  *cap = (int)n;
  return 0;
}
