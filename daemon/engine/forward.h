/* forward.h - the Llama-family forward pass over a flat batch of tokens.
 *
 * A batch is a list of tokens, each with its position in its sequence, its
 * sequence (an index into a table of kv_seq block tables) and whether its
 * logits are wanted. Tokens of several sequences and several positions mix
 * freely (prefill chunks and decode steps in one batch); within one
 * sequence, a token at position p attends to positions 0..p, which must
 * already be in the KV cache or appear earlier in the same batch.
 *
 *   x = embed(token)
 *   per layer: h = x + Wo attn(rope(Wq n(x)), rope(Wk n(x)), Wv n(x))
 *              x = h + Wdown (silu(Wgate n(h)) * Wup n(h))   n = RMSNorm
 *   logits = Wout n(x)
 */
#ifndef INFERD_FORWARD_H
#define INFERD_FORWARD_H

#include <stddef.h>
#include <stdint.h>

#include "kern.h"
#include "kvcache.h"
#include "model.h"

struct fwd_batch {
    uint32_t n_tokens;
    const int32_t *tokens; /* (n_tokens,) ids < n_vocab */
    const int32_t *pos;    /* (n_tokens,) positions, 0-based */
    const uint32_t *seq;   /* (n_tokens,) index into the seqs table */
    const uint8_t *logits; /* (n_tokens,) nonzero: output logits for this row;
                              NULL: only for the last token */
};

struct fwd_ctx;

/* Workspace for batches of up to max_tokens tokens per internal step (longer
 * batches are split) over contexts of up to max_ctx positions. The context
 * borrows m, kv and kc; they must outlive it. */
int fwd_init(struct fwd_ctx **out, const struct model *m, struct kv_pool *kv,
             struct kern_ctx *kc, uint32_t max_tokens, uint32_t max_ctx);
void fwd_free(struct fwd_ctx *c);

/* Run the batch: writes K/V of every token into its sequence's blocks and
 * the logits of the selected rows, in batch order, to logits (n_out rows of
 * n_vocab floats). Returns 0, -EINVAL (token id, position or block table
 * out of range; nothing is written) or -ENOMEM. */
int fwd_eval(struct fwd_ctx *c, const struct fwd_batch *b, const struct kv_seq *seqs,
             size_t n_seqs, float *logits);

/* Tokens run through the model since fwd_init (for tests and statistics). */
uint64_t fwd_tokens_processed(const struct fwd_ctx *c);

#endif
