/* tokenizer_wpm.c - WordPiece ("bert" tokenizer model), as llama.cpp does it.
 *
 * Pre-processing, per code point (invalid UTF-8 reads as U+FFFD): replace it
 * by the first code point of its canonical decomposition (which drops
 * accents of precomposed letters), split words at whitespace, drop NUL,
 * U+FFFD and control/format characters, lower-case the rest, and make every
 * punctuation character, ASCII symbol and CJK ideograph a word of its own.
 * Each word then gets the U+2581 word-start marker (the GGUF form of the
 * vocab keeps "##" continuations bare and marks word starts) and is cut
 * greedily into the longest tokens from the left; a word that cannot be
 * covered becomes the unknown token. Unicode data comes from utf8proc.
 */
#include "tokenizer_impl.h"

#include <utf8proc.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static bool is_space(uint32_t cp)
{
    if ((cp >= 9 && cp <= 13) || cp == 0x85)
        return true;
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return c == UTF8PROC_CATEGORY_ZS || c == UTF8PROC_CATEGORY_ZL || c == UTF8PROC_CATEGORY_ZP;
}

static bool is_control(utf8proc_category_t c)
{
    return c == UTF8PROC_CATEGORY_CC || c == UTF8PROC_CATEGORY_CF || c == UTF8PROC_CATEGORY_CO ||
           c == UTF8PROC_CATEGORY_CS;
}

static bool is_punct(utf8proc_category_t c)
{
    return c >= UTF8PROC_CATEGORY_PC && c <= UTF8PROC_CATEGORY_PO;
}

static bool is_symbol(utf8proc_category_t c)
{
    return c >= UTF8PROC_CATEGORY_SM && c <= UTF8PROC_CATEGORY_SO;
}

/* CJK ideograph blocks as BERT defines them. */
static bool is_cjk(uint32_t cp)
{
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
           (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
           (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B920 && cp <= 0x2CEAF) ||
           (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

static uint32_t nfd_first(uint32_t cp)
{
    utf8proc_int32_t buf[8];
    int bound = 0;
    utf8proc_ssize_t n =
        utf8proc_decompose_char((utf8proc_int32_t)cp, buf, 8, UTF8PROC_DECOMPOSE, &bound);
    return (n >= 1 && n <= 8) ? (uint32_t)buf[0] : cp;
}

struct word {
    char *s; /* "\u2581" + word */
    size_t n, cap;
};

static int word_add(struct word *w, const char *s, size_t n)
{
    if (w->n + n > w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 64;
        while (cap < w->n + n)
            cap *= 2;
        char *ns = realloc(w->s, cap);
        if (!ns)
            return -ENOMEM;
        w->s = ns;
        w->cap = cap;
    }
    memcpy(w->s + w->n, s, n);
    w->n += n;
    return 0;
}

/* Cut the pending word into tokens and start a new one. */
static int flush(const struct tok_vocab *v, struct word *w, struct tok_ids *out)
{
    if (w->n <= 3)
        return 0; /* only the marker: no word */
    size_t start = out->n, n = w->n;
    int rc = 0;
    for (size_t i = 0; i < n;) {
        size_t j = n - i > v->max_len + 1 ? i + v->max_len + 1 : n;
        int32_t id = -1;
        for (; j > i; j--)
            if ((id = tok_find(v, w->s + i, j - i)) >= 0)
                break;
        if (id < 0) {
            out->n = start; /* the word cannot be covered: drop its pieces */
            break;
        }
        if ((rc = tok_ids_push(out, id)) < 0)
            return rc;
        i = j;
    }
    if (out->n == start && v->unk >= 0)
        rc = tok_ids_push(out, v->unk);
    w->n = 3;
    return rc;
}

int tok_wpm_encode(const struct tok_vocab *v, const char *text, size_t len, struct tok_ids *out)
{
    struct word w = {0};
    int rc = word_add(&w, "\xe2\x96\x81", 3);
    for (size_t i = 0; i < len && rc == 0;) {
        uint32_t cp = nfd_first(tok_utf8_next(text, len, &i));
        if (is_space(cp)) {
            rc = flush(v, &w, out);
            continue;
        }
        utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)cp);
        if (cp == 0 || cp == 0xfffd || is_control(cat))
            continue;
        char s[4];
        size_t sn = tok_utf8_put((uint32_t)utf8proc_tolower((utf8proc_int32_t)cp), s);
        if (is_punct(cat) || (cp < 0x7f && is_symbol(cat)) || is_cjk(cp)) {
            rc = flush(v, &w, out);
            if (rc == 0)
                rc = word_add(&w, s, sn);
            if (rc == 0)
                rc = flush(v, &w, out);
        } else {
            rc = word_add(&w, s, sn);
        }
    }
    if (rc == 0)
        rc = flush(v, &w, out);
    free(w.s);
    return rc;
}
