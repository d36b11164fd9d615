/* kvcache.h - paged key/value storage for attention.
 *
 * The pool holds n_blocks blocks; a block has KV_BLOCK_TOKENS token slots in
 * every layer, for both K and V. A sequence owns an ordered block table:
 * position p of the sequence lives in slot p % KV_BLOCK_TOKENS of block
 * table[p / KV_BLOCK_TOKENS]. The forward pass only ever reaches K/V through
 * such tables, so a scheduler can share, move and recycle blocks freely.
 *
 * Layout, per layer l and block b: K[l][b] is KV_BLOCK_TOKENS rows of kv_dim
 * values (kv_dim = n_head_kv * head_dim) of the pool's element type (F32,
 * F16 or BF16); V likewise.
 *
 * Thread-safety: none; the engine thread owns the pool.
 */
#ifndef INFERD_KVCACHE_H
#define INFERD_KVCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "dtype.h"

#define KV_BLOCK_TOKENS 16

struct kv_pool {
    enum dt_type type;   /* DT_F32, DT_F16 or DT_BF16 */
    uint32_t n_layer;
    uint32_t kv_dim;
    uint32_t n_blocks;
    size_t row_bytes;    /* kv_dim * element size */
    size_t block_bytes;  /* KV_BLOCK_TOKENS * row_bytes */
    void *k, *v;         /* [n_layer][n_blocks][KV_BLOCK_TOKENS][kv_dim] */
    uint32_t *free_ids;  /* stack of free block ids */
    uint32_t n_free;
};

/* A sequence's block table. */
struct kv_seq {
    uint32_t *blocks;
    uint32_t n_blocks;
    uint32_t cap;
};

/* Bytes one block takes across all layers (K and V). */
size_t kv_block_bytes_total(enum dt_type type, uint32_t n_layer, uint32_t kv_dim);

/* Allocate a pool of n_blocks blocks. Returns 0, -EINVAL (type not F32/F16/
 * BF16, zero sizes, overflow) or -ENOMEM. */
int kv_pool_init(struct kv_pool *p, enum dt_type type, uint32_t n_layer, uint32_t kv_dim,
                 uint32_t n_blocks);
void kv_pool_free(struct kv_pool *p);

/* Make seq's table cover positions [0, n_tokens): appends blocks from the
 * pool. Returns 0 or -ENOSPC (pool exhausted; the table is unchanged) or
 * -ENOMEM. */
int kv_seq_reserve(struct kv_pool *p, struct kv_seq *seq, uint32_t n_tokens);
/* Return all of seq's blocks to the pool and free its table. */
void kv_seq_release(struct kv_pool *p, struct kv_seq *seq);

/* Address of the K (or V) row of position pos of seq in layer l. pos must be
 * covered by the table. */
static inline void *kv_k_row(const struct kv_pool *p, const struct kv_seq *seq, uint32_t l,
                             uint32_t pos)
{
    uint32_t b = seq->blocks[pos / KV_BLOCK_TOKENS];
    return (char *)p->k + ((size_t)l * p->n_blocks + b) * p->block_bytes +
           (pos % KV_BLOCK_TOKENS) * p->row_bytes;
}

static inline void *kv_v_row(const struct kv_pool *p, const struct kv_seq *seq, uint32_t l,
                             uint32_t pos)
{
    uint32_t b = seq->blocks[pos / KV_BLOCK_TOKENS];
    return (char *)p->v + ((size_t)l * p->n_blocks + b) * p->block_bytes +
           (pos % KV_BLOCK_TOKENS) * p->row_bytes;
}

#endif
