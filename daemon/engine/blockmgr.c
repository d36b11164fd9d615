/* blockmgr.c - reference-counted KV blocks and the prefix cache. See
 * blockmgr.h. Hashing uses xxHash (XXH3, 64 bits). */
#include "blockmgr.h"
#include "probes.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

int bm_init(struct bm *m, struct kv_pool *pool)
{
    memset(m, 0, sizeof *m);
    if (!pool->n_blocks)
        return -EINVAL;
    if (pool->n_free != pool->n_blocks)
        return -EBUSY; /* blocks are held by sequences outside the manager */
    m->pool = pool;
    m->n_blocks = pool->n_blocks;
    m->blocks = calloc(m->n_blocks, sizeof *m->blocks);
    m->free_ids = malloc((size_t)m->n_blocks * sizeof *m->free_ids);
    m->n_buckets = 16;
    while (m->n_buckets < m->n_blocks)
        m->n_buckets *= 2;
    m->buckets = malloc((size_t)m->n_buckets * sizeof *m->buckets);
    if (!m->blocks || !m->free_ids || !m->buckets) {
        free(m->blocks);
        free(m->free_ids);
        free(m->buckets);
        memset(m, 0, sizeof *m);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < m->n_buckets; i++)
        m->buckets[i] = BM_NONE;
    /* Take the pool's free blocks, keeping its order (low ids first). */
    while (pool->n_free)
        m->free_ids[m->n_free++] = pool->free_ids[--pool->n_free];
    for (uint32_t i = 0; i < m->n_free / 2; i++) {
        uint32_t t = m->free_ids[i];
        m->free_ids[i] = m->free_ids[m->n_free - 1 - i];
        m->free_ids[m->n_free - 1 - i] = t;
    }
    m->lru_head = m->lru_tail = BM_NONE;
    return 0;
}

void bm_free(struct bm *m)
{
    if (!m->pool)
        return;
    /* The manager took every block at init; all go back (low ids on top). */
    for (uint32_t i = 0; i < m->n_blocks; i++)
        m->pool->free_ids[m->pool->n_free++] = m->n_blocks - 1 - i;
    free(m->blocks);
    free(m->free_ids);
    free(m->buckets);
    memset(m, 0, sizeof *m);
}

static void bm_lru_remove(struct bm *m, uint32_t id)
{
    struct bm_block *b = &m->blocks[id];
    if (b->lru_prev != BM_NONE)
        m->blocks[b->lru_prev].lru_next = b->lru_next;
    else
        m->lru_head = b->lru_next;
    if (b->lru_next != BM_NONE)
        m->blocks[b->lru_next].lru_prev = b->lru_prev;
    else
        m->lru_tail = b->lru_prev;
    b->lru_prev = b->lru_next = BM_NONE;
    m->n_evictable--;
}

static void bm_lru_push(struct bm *m, uint32_t id)
{
    struct bm_block *b = &m->blocks[id];
    b->lru_next = BM_NONE;
    b->lru_prev = m->lru_tail;
    if (m->lru_tail != BM_NONE)
        m->blocks[m->lru_tail].lru_next = id;
    else
        m->lru_head = id;
    m->lru_tail = id;
    m->n_evictable++;
}

static void bm_table_remove(struct bm *m, uint32_t id)
{
    struct bm_block *b = &m->blocks[id];
    uint32_t *link = &m->buckets[b->hash & (m->n_buckets - 1)];
    while (*link != BM_NONE && *link != id)
        link = &m->blocks[*link].next_in_bucket;
    if (*link == id)
        *link = b->next_in_bucket;
    b->cached = false;
}

uint32_t bm_alloc(struct bm *m)
{
    uint32_t id;
    int source = 0;
    if (m->n_free) {
        id = m->free_ids[--m->n_free];
    } else if (m->lru_head != BM_NONE) {
        id = m->lru_head;
        bm_lru_remove(m, id);
        bm_table_remove(m, id);
        m->stats.evictions++;
        source = 1;
    } else {
        return BM_NONE;
    }
    m->blocks[id].ref = 1;
    m->blocks[id].cached = false;
    INFERD_PROBE3(kv_alloc, id, bm_in_use(m), source);
    return id;
}

void bm_ref(struct bm *m, uint32_t id)
{
    m->blocks[id].ref++;
}

void bm_unref(struct bm *m, uint32_t id)
{
    struct bm_block *b = &m->blocks[id];
    if (--b->ref)
        return;
    if (b->cached)
        bm_lru_push(m, id);
    else
        m->free_ids[m->n_free++] = id;
    INFERD_PROBE3(kv_free, id, bm_in_use(m), (int)b->cached);
}

uint64_t bm_salt_hash(const char *salt, size_t len)
{
    return XXH3_64bits_withSeed(salt, len, 0x696e66657264ULL);
}

uint64_t bm_chain_hash(uint64_t parent, const int32_t *tokens)
{
    return XXH3_64bits_withSeed(tokens, KV_BLOCK_TOKENS * sizeof *tokens, parent);
}

uint32_t bm_lookup(struct bm *m, uint64_t parent, const int32_t *tokens)
{
    uint64_t h = bm_chain_hash(parent, tokens);
    for (uint32_t id = m->buckets[h & (m->n_buckets - 1)]; id != BM_NONE;
         id = m->blocks[id].next_in_bucket) {
        struct bm_block *b = &m->blocks[id];
        if (b->hash == h && b->parent == parent &&
            memcmp(b->tokens, tokens, sizeof b->tokens) == 0) {
            bool revived = b->ref == 0;
            if (revived)
                bm_lru_remove(m, id);
            b->ref++;
            if (revived)
                INFERD_PROBE3(kv_alloc, id, bm_in_use(m), 2);
            return id;
        }
    }
    return BM_NONE;
}

void bm_publish(struct bm *m, uint32_t id, uint64_t parent, const int32_t *tokens)
{
    struct bm_block *b = &m->blocks[id];
    if (b->cached)
        return;
    uint64_t h = bm_chain_hash(parent, tokens);
    uint32_t *head = &m->buckets[h & (m->n_buckets - 1)];
    for (uint32_t o = *head; o != BM_NONE; o = m->blocks[o].next_in_bucket) {
        const struct bm_block *ob = &m->blocks[o];
        if (ob->hash == h && ob->parent == parent && memcmp(ob->tokens, tokens, sizeof ob->tokens) == 0)
            return;
    }
    b->hash = h;
    b->parent = parent;
    memcpy(b->tokens, tokens, sizeof b->tokens);
    b->cached = true;
    b->next_in_bucket = *head;
    *head = id;
}

void bm_copy(struct bm *m, uint32_t dst, uint32_t src)
{
    const struct kv_pool *p = m->pool;
    for (uint32_t l = 0; l < p->n_layer; l++) {
        size_t base = (size_t)l * p->n_blocks;
        memcpy((char *)p->k + (base + dst) * p->block_bytes,
               (const char *)p->k + (base + src) * p->block_bytes, p->block_bytes);
        memcpy((char *)p->v + (base + dst) * p->block_bytes,
               (const char *)p->v + (base + src) * p->block_bytes, p->block_bytes);
    }
    m->stats.cow_copies++;
}

uint32_t bm_in_use(const struct bm *m)
{
    return m->n_blocks - m->n_free - m->n_evictable;
}
