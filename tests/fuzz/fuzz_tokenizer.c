/* fuzz_tokenizer.c - fuzz harness for the tokenizers: arbitrary bytes are
 * encoded with the llama SPM vocab of stories260K, the GPT-2 byte-level BPE
 * vocab and the BERT WordPiece vocab (each loaded once), with special-token
 * parsing on and off and BOS/EOS on and off; then every id is decoded back
 * with tok_piece. Checks: ids in range, the -ENOSPC contract, piece lengths,
 * and that SPM decoding gives the input back (byte fallback is lossless).
 *
 * The vocabs come from $INFERD_SOURCE_ROOT/../shared (set by the meson test);
 * if they are missing the run is skipped (exit 77), or fails under CI.
 */
#include "gguf.h"
#include "tokenizer.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { N_VOCABS = 3 };

static const char *const vocab_paths[N_VOCABS] = {
    "models/stories260K.gguf",
    "vocab/ggml-vocab-gpt-2.gguf",
    "vocab/ggml-vocab-bert-bge.gguf",
};

static struct tok_vocab *vocabs[N_VOCABS];

static void missing(const char *path, const char *why)
{
    const char *ci = getenv("CI");
    fprintf(stderr, "fuzz_tokenizer: %s: %s\n", path, why);
    if (ci && *ci)
        exit(1);
    fprintf(stderr, "fuzz_tokenizer: SKIP (vocab files missing)\n");
    exit(77);
}

static void free_vocabs(void)
{
    for (int i = 0; i < N_VOCABS; i++)
        tok_free(vocabs[i]);
}

static void load_vocabs(void)
{
    const char *root = getenv("INFERD_SOURCE_ROOT");
    if (!root || !*root)
        root = ".";
    for (int i = 0; i < N_VOCABS; i++) {
        char path[4096], err[256] = "";
        snprintf(path, sizeof path, "%s/../shared/%s", root, vocab_paths[i]);
        struct gguf_file *f = NULL;
        int rc = gguf_open(path, &f, err, sizeof err);
        if (rc == -ENOENT)
            missing(path, "not found");
        if (rc < 0) {
            fprintf(stderr, "fuzz_tokenizer: %s: %s\n", path, err);
            abort();
        }
        rc = tok_load(f, &vocabs[i], err, sizeof err);
        gguf_close(f);
        if (rc < 0) {
            fprintf(stderr, "fuzz_tokenizer: tok_load(%s): %s\n", path, err);
            abort();
        }
    }
    atexit(free_vocabs);
}

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz_tokenizer: check failed: %s (line %d)\n", #c, __LINE__);         \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void run(const struct tok_vocab *v, const char *text, size_t len, bool add_special,
                bool parse_special)
{
    int32_t small[4];
    size_t n = 0;
    int rc = tok_encode(v, text, len, add_special, parse_special, small, 4, &n);
    CHECK(rc == 0 || rc == -ENOSPC);
    CHECK((rc == -ENOSPC) == (n > 4));
    int32_t *ids = malloc((n ? n : 1) * sizeof(int32_t));
    CHECK(ids != NULL);
    size_t n2 = 0;
    CHECK(tok_encode(v, text, len, add_special, parse_special, ids, n, &n2) == 0 && n2 == n);
    CHECK(memcmp(ids, small, (n < 4 ? n : 4) * sizeof(int32_t)) == 0);

    size_t cap = len + 64, w = 0;
    char *dec = malloc(cap);
    CHECK(dec != NULL);
    for (size_t i = 0; i < n; i++) {
        CHECK(ids[i] >= 0 && (uint32_t)ids[i] < tok_n_vocab(v));
        CHECK(tok_text(v, ids[i]) != NULL);
        (void)tok_type_of(v, ids[i]);
        (void)tok_is_eog(v, ids[i]);
        char buf[64];
        int k = tok_piece(v, ids[i], buf, sizeof buf, true);
        CHECK(k >= 0);
        k = tok_piece(v, ids[i], NULL, 0, false);
        CHECK(k >= 0);
        if (w + (size_t)k > cap) {
            cap = 2 * (w + (size_t)k);
            char *nd = realloc(dec, cap);
            CHECK(nd != NULL);
            dec = nd;
        }
        CHECK(tok_piece(v, ids[i], dec + w, (size_t)k, false) == k);
        w += (size_t)k;
    }
    /* SPM without special tokens: the pieces are " " + text, where an escaped
     * space swallowed by an invalid lead byte reads as U+2581. */
    if (tok_model(v) == TOK_MODEL_SPM && !parse_special && len > 0) {
        size_t j = 0;
        for (size_t i = 0; i < w; i++) {
            if (w - i >= 3 && memcmp(dec + i, "\xe2\x96\x81", 3) == 0) {
                dec[j++] = ' ';
                i += 2;
            } else {
                dec[j++] = dec[i];
            }
        }
        size_t tl = 0;
        char *t = malloc(len + 1);
        CHECK(t != NULL);
        for (size_t i = 0; i < len; i++) {
            if (len - i >= 3 && memcmp(text + i, "\xe2\x96\x81", 3) == 0) {
                t[tl++] = ' ';
                i += 2;
            } else {
                t[tl++] = text[i];
            }
        }
        CHECK(j == tl + 1 && dec[0] == ' ' && memcmp(dec + 1, t, tl) == 0);
        free(t);
    }
    free(dec);
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!vocabs[0])
        load_vocabs();
    const char *text = (const char *)data;
    for (int i = 0; i < N_VOCABS; i++)
        for (int m = 0; m < 4; m++)
            run(vocabs[i], text, size, m & 1, m & 2);
    return 0;
}
