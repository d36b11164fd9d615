/* blockmgr.h - reference-counted KV blocks with a prefix cache.
 *
 * The manager owns the ids of a kv_pool's blocks (it takes every free block
 * of the pool at init and gives them back at free). A block is
 *   free      ref 0, not cached: on the free list;
 *   in use    ref > 0 (one per sequence whose table holds it);
 *   cached    full (16 computed tokens) and published under its hash: it can
 *             be found by later requests; when its ref drops to 0 it stays
 *             findable on an LRU list and is evicted (oldest first) only when
 *             an allocation finds the free list empty.
 *
 * A full block's key is the hash chain of the prefix it ends:
 * hash = H(parent hash, its 16 token ids); the first block's parent is the
 * hash of the request's cache salt (empty salt = no tenant separation). A
 * lookup compares the parent hash and the 16 ids exactly, so equal hashes of
 * different content never share KV.
 *
 * Thread-safety: none; the engine thread owns it.
 */
#ifndef INFERD_BLOCKMGR_H
#define INFERD_BLOCKMGR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kvcache.h"

#define BM_NONE UINT32_MAX

struct bm_block {
    uint32_t ref;
    bool cached;           /* published in the hash table */
    uint32_t lru_prev, lru_next; /* on the evictable list when cached && ref == 0 */
    uint32_t next_in_bucket;
    uint64_t hash;         /* chain hash of the prefix ending here */
    uint64_t parent;       /* chain hash of the prefix before this block */
    int32_t tokens[KV_BLOCK_TOKENS];
};

struct bm_stats {
    uint64_t queries;      /* full blocks looked up by admitted requests (kept by the scheduler) */
    uint64_t hits;         /* of which found */
    uint64_t evictions;
    uint64_t cow_copies;
};

struct bm {
    struct kv_pool *pool;
    uint32_t n_blocks;
    struct bm_block *blocks;
    uint32_t *free_ids;    /* stack */
    uint32_t n_free;
    uint32_t lru_head, lru_tail; /* oldest at head */
    uint32_t n_evictable;
    uint32_t *buckets;     /* hash table heads, n_buckets (power of two) */
    uint32_t n_buckets;
    struct bm_stats stats;
};

/* Take every block of pool. Returns 0, -ENOMEM, -EINVAL (empty pool) or
 * -EBUSY (some blocks are held outside the manager). */
int bm_init(struct bm *m, struct kv_pool *pool);
/* Give the blocks back to the pool (all must be unreferenced). */
void bm_free(struct bm *m);

/* Blocks an allocation could get now: free plus evictable. */
static inline uint32_t bm_available(const struct bm *m)
{
    return m->n_free + m->n_evictable;
}

/* A block with ref 1: from the free list, else by evicting the least
 * recently used unreferenced cached block. BM_NONE when none. */
uint32_t bm_alloc(struct bm *m);
void bm_ref(struct bm *m, uint32_t id);
/* Drop one reference; at 0 a cached block becomes evictable, another one
 * free. */
void bm_unref(struct bm *m, uint32_t id);

/* Hash of a cache salt (the parent of a prefix's first block). */
uint64_t bm_salt_hash(const char *salt, size_t len);
/* Chain hash of a full block after parent. */
uint64_t bm_chain_hash(uint64_t parent, const int32_t *tokens);

/* Find the cached block holding exactly these 16 tokens after parent; on a
 * hit it gains a reference (leaving the LRU list). */
uint32_t bm_lookup(struct bm *m, uint64_t parent, const int32_t *tokens);
/* Publish a full, computed block. If an equal block is already cached the
 * call does nothing (the caller keeps its own copy). */
void bm_publish(struct bm *m, uint32_t id, uint64_t parent, const int32_t *tokens);

/* Copy K and V of every layer from block src to block dst. */
void bm_copy(struct bm *m, uint32_t dst, uint32_t src);

/* Blocks with ref > 0. */
uint32_t bm_in_use(const struct bm *m);

#endif
