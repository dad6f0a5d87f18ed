/*
 * vec.h -- the one growable array of the project.
 *
 *   SFU_VEC(sfu_downtrack_t *) down;     a struct { items, n, cap }
 *   if (sfu_vec_push(&t->down, d) != 0)  append; 0 or SFU_ENOMEM
 *   sfu_vec_reserve(&v, need)            room for `need` items in all
 *   sfu_vec_remove_swap(&v, i)           O(1) removal, order not kept
 *   sfu_vec_free(&v)                     items freed, n = cap = 0
 *
 * Capacity doubles from SFU_VEC_MIN, so appends are amortised O(1); it
 * never shrinks (the arrays of a room are bounded by its participant
 * limit). A failed push or reserve leaves the array as it was. Callers
 * bound what they append: the array has no limit of its own.
 */
#ifndef SFU_BASE_VEC_H
#define SFU_BASE_VEC_H

#include <stddef.h>
#include <stdlib.h>

#include "sfu/base/sfu.h"

#define SFU_VEC_MIN 8

#define SFU_VEC(T) \
  struct {         \
    T *items;      \
    int n, cap;    \
  }

/* Makes `*items` (an array of `elem`-byte items, `*cap` of them) hold at
 * least `need`. 0, or SFU_ENOMEM (-ENOMEM) with nothing changed. */
int sfu__vec_reserve(void *items, int *cap, int need, size_t elem);

#define sfu_vec_reserve(v, need) \
  sfu__vec_reserve(&(v)->items, &(v)->cap, (need), sizeof(*(v)->items))

#define sfu_vec_push(v, x) \
  (sfu_vec_reserve((v), (v)->n + 1) != 0 ? SFU_ENOMEM : ((v)->items[(v)->n++] = (x), 0))

#define sfu_vec_remove_swap(v, i) ((v)->items[(i)] = (v)->items[--(v)->n])

#define sfu_vec_free(v)   \
  do {                    \
    free((v)->items);     \
    (v)->items = NULL;    \
    (v)->n = (v)->cap = 0; \
  } while (0)

#endif
