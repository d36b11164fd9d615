/* kvcache.c - block pool and per-sequence block tables. See kvcache.h. */
#include "kvcache.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static size_t kv_elem_size(enum dt_type type)
{
    switch (type) {
    case DT_F32:
        return 4;
    case DT_F16:
    case DT_BF16:
        return 2;
    default:
        return 0;
    }
}

size_t kv_block_bytes_total(enum dt_type type, uint32_t n_layer, uint32_t kv_dim)
{
    return 2 * (size_t)n_layer * KV_BLOCK_TOKENS * kv_dim * kv_elem_size(type);
}

int kv_pool_init(struct kv_pool *p, enum dt_type type, uint32_t n_layer, uint32_t kv_dim,
                 uint32_t n_blocks)
{
    memset(p, 0, sizeof *p);
    size_t es = kv_elem_size(type);
    if (!es || !n_layer || !kv_dim || !n_blocks)
        return -EINVAL;
    p->type = type;
    p->n_layer = n_layer;
    p->kv_dim = kv_dim;
    p->n_blocks = n_blocks;
    p->row_bytes = (size_t)kv_dim * es;
    p->block_bytes = KV_BLOCK_TOKENS * p->row_bytes;
    size_t per_layer = (size_t)n_blocks * p->block_bytes;
    if (per_layer / n_blocks != p->block_bytes || per_layer > SIZE_MAX / n_layer)
        return -EINVAL;
    size_t total = per_layer * n_layer;
    /* calloc: never-written slots read as zeros, not garbage. */
    p->k = calloc(1, total);
    p->v = calloc(1, total);
    p->free_ids = malloc((size_t)n_blocks * sizeof *p->free_ids);
    if (!p->k || !p->v || !p->free_ids) {
        kv_pool_free(p);
        return -ENOMEM;
    }
    /* Hand out low ids first. */
    for (uint32_t i = 0; i < n_blocks; i++)
        p->free_ids[i] = n_blocks - 1 - i;
    p->n_free = n_blocks;
    return 0;
}

void kv_pool_free(struct kv_pool *p)
{
    free(p->k);
    free(p->v);
    free(p->free_ids);
    memset(p, 0, sizeof *p);
}

int kv_seq_reserve(struct kv_pool *p, struct kv_seq *seq, uint32_t n_tokens)
{
    uint32_t need = (n_tokens + KV_BLOCK_TOKENS - 1) / KV_BLOCK_TOKENS;
    if (need <= seq->n_blocks)
        return 0;
    uint32_t more = need - seq->n_blocks;
    if (more > p->n_free)
        return -ENOSPC;
    if (need > seq->cap) {
        uint32_t cap = seq->cap ? seq->cap : 4;
        while (cap < need)
            cap *= 2;
        uint32_t *nb = realloc(seq->blocks, (size_t)cap * sizeof *nb);
        if (!nb)
            return -ENOMEM;
        seq->blocks = nb;
        seq->cap = cap;
    }
    for (uint32_t i = 0; i < more; i++)
        seq->blocks[seq->n_blocks++] = p->free_ids[--p->n_free];
    return 0;
}

void kv_seq_release(struct kv_pool *p, struct kv_seq *seq)
{
    for (uint32_t i = 0; i < seq->n_blocks; i++)
        p->free_ids[p->n_free++] = seq->blocks[i];
    free(seq->blocks);
    memset(seq, 0, sizeof *seq);
}
