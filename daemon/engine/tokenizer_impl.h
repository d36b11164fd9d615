/* tokenizer_impl.h - internals shared by tokenizer.c (vocab, special-token
 * partitioning, pieces), tokenizer_spm.c (SentencePiece-style encoding),
 * tokenizer_bpe.c (byte-level BPE) and tokenizer_wpm.c (WordPiece). Not a
 * public header: only the tokenizer sources include it.
 */
#ifndef INFERD_TOKENIZER_IMPL_H
#define INFERD_TOKENIZER_IMPL_H

#include "tokenizer.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct gguf_file;
struct tok_bpe;

/* Per-token strip flags (set by per-model fixups, used by partitioning). */
enum { TOK_STRIP_LEFT = 1, TOK_STRIP_RIGHT = 2 };

struct tok_token {
    size_t off;   /* text in vocab->pool, NUL-terminated */
    uint32_t len; /* bytes, without the terminator */
    float score;
    uint8_t type;  /* enum tok_type (after fixups) */
    uint8_t strip; /* TOK_STRIP_* */
};

struct tok_vocab {
    enum tok_model model;
    uint32_t n;
    struct tok_token *tok;
    char *pool;
    /* text -> id: open addressing, slot = (hash32 << 32) | (id + 1), 0 empty */
    uint64_t *slots;
    size_t mask;
    size_t max_len; /* longest token text, bytes */

    int32_t bos, eos, eot, eom, unk, sep, pad, mask_id;
    int32_t fim_pre, fim_suf, fim_mid, fim_pad, fim_rep, fim_sep;
    bool add_bos, add_eos, add_sep, add_space_prefix, remove_extra_ws, ignore_merges;

    int32_t *eog; /* sorted ascending */
    size_t n_eog;
    int32_t *special; /* partition candidates, longest text first */
    size_t n_special;
    int32_t byte_tok[256]; /* SPM byte fallback (-1: none) */

    struct tok_bpe *bpe; /* BPE only; owned by tokenizer_bpe.c */
};

/* Growable id list. */
struct tok_ids {
    int32_t *v;
    size_t n, cap;
};

int tok_ids_push(struct tok_ids *o, int32_t id);

/* 64-bit hash of n bytes. */
uint64_t tok_hash(const void *s, size_t n);
/* Id of the token whose text is exactly s[0..n), or -1. */
int32_t tok_find(const struct tok_vocab *v, const char *s, size_t n);

/* Lenient UTF-8 decoding as llama.cpp does it: the lead byte decides the
 * length, continuation bytes must be 10xxxxxx and present, otherwise one byte
 * is consumed and U+FFFD returned. Overlong forms and surrogates are accepted.
 * Reads s[*pos..n), advances *pos (always by >= 1). Requires *pos < n. */
uint32_t tok_utf8_next(const char *s, size_t n, size_t *pos);
/* Encode cp (<= 0x10FFFF, surrogates allowed) into out (4 bytes). */
size_t tok_utf8_put(uint32_t cp, char *out);
/* Length of the UTF-8 sequence that lead byte c announces (1..4). */
size_t tok_utf8_len(unsigned char c);

/* tokenizer_spm.c: encode one raw fragment (prefix: add the space prefix). */
int tok_spm_encode(const struct tok_vocab *v, const char *raw, size_t len, bool prefix,
                   struct tok_ids *out);

/* tokenizer_bpe.c */
int tok_bpe_load(struct tok_vocab *v, const struct gguf_file *f, const char *pre, char *err,
                 size_t errlen);
void tok_bpe_free(struct tok_bpe *b);
int tok_bpe_encode(const struct tok_vocab *v, const char *text, size_t len, struct tok_ids *out);
/* Undo the GPT-2 byte-to-code-point mapping of a token text; code points
 * outside the mapping are copied as their UTF-8 bytes. Writes up to cap
 * bytes, returns the full length. */
size_t tok_bpe_unmap(const char *s, size_t n, char *buf, size_t cap);

/* tokenizer_wpm.c */
int tok_wpm_encode(const struct tok_vocab *v, const char *text, size_t len, struct tok_ids *out);

#endif
