/* tokenizer_spm.c - SentencePiece-style ("llama" model) encoding of one raw
 * fragment, as llama.cpp does it: optional space prefix, spaces become
 * U+2581, the text is split into UTF-8 characters (the lead byte decides the
 * length), then adjacent symbols merge while the merged text is a token, the
 * pair whose token has the best score first (ties: the leftmost), through a
 * priority queue so that the whole is O(n log n). Symbols left that are not
 * tokens fall back to <0xXX> byte tokens.
 */
#include "tokenizer_impl.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NONE SIZE_MAX

struct spm_sym {
    size_t off, n;
    size_t prev, next;
};

struct spm_bigram {
    float score;
    size_t left, right, size;
};

struct spm_heap {
    struct spm_bigram *v;
    size_t n, cap;
};

/* a pops before b: higher score, then the leftmost. */
static bool spm_first(const struct spm_bigram *a, const struct spm_bigram *b)
{
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static int spm_push(struct spm_heap *h, struct spm_bigram x)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        if (cap > SIZE_MAX / sizeof(x))
            return -ENOMEM;
        struct spm_bigram *nv = realloc(h->v, cap * sizeof(x));
        if (!nv)
            return -ENOMEM;
        h->v = nv;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!spm_first(&x, &h->v[p]))
            break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = x;
    return 0;
}

static struct spm_bigram spm_pop(struct spm_heap *h)
{
    struct spm_bigram top = h->v[0];
    struct spm_bigram last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && spm_first(&h->v[c + 1], &h->v[c]))
            c++;
        if (!spm_first(&h->v[c], &last))
            break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n > 0)
        h->v[i] = last;
    return top;
}

static int spm_try(const struct tok_vocab *v, const char *buf, const struct spm_sym *sym, size_t l,
                   size_t r, struct spm_heap *h)
{
    if (l == NONE || r == NONE)
        return 0;
    size_t size = sym[l].n + sym[r].n;
    int32_t id = tok_find(v, buf + sym[l].off, size);
    if (id < 0)
        return 0;
    return spm_push(h, (struct spm_bigram){v->tok[id].score, l, r, size});
}

static int spm_emit(const struct tok_vocab *v, const char *s, size_t n, struct tok_ids *out)
{
    int32_t id = tok_find(v, s, n);
    if (id >= 0)
        return tok_ids_push(out, id);
    for (size_t i = 0; i < n; i++) {
        int32_t b = v->byte_tok[(unsigned char)s[i]];
        if (b >= 0) {
            int rc = tok_ids_push(out, b);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

int tok_spm_encode(const struct tok_vocab *v, const char *raw, size_t len, bool prefix,
                   struct tok_ids *out)
{
    size_t spaces = 0;
    for (size_t i = 0; i < len; i++)
        spaces += raw[i] == ' ';
    if (len > (SIZE_MAX - 3) / 3)
        return -ENOMEM;
    size_t n = len + 2 * spaces + (prefix ? 3 : 0);
    if (n == 0)
        return 0;
    char *buf = malloc(n);
    struct spm_sym *sym = malloc(n * sizeof(*sym));
    struct spm_heap heap = {0};
    int rc = -ENOMEM;
    if (!buf || !sym)
        goto out;
    size_t w = 0;
    if (prefix) {
        memcpy(buf, "\xe2\x96\x81", 3);
        w = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (raw[i] == ' ') {
            memcpy(buf + w, "\xe2\x96\x81", 3);
            w += 3;
        } else {
            buf[w++] = raw[i];
        }
    }

    size_t ns = 0;
    for (size_t off = 0; off < n;) {
        size_t cl = tok_utf8_len((unsigned char)buf[off]);
        if (cl > n - off)
            cl = n - off;
        sym[ns] = (struct spm_sym){off, cl, ns ? ns - 1 : NONE, NONE};
        if (ns)
            sym[ns - 1].next = ns;
        ns++;
        off += cl;
    }
    rc = 0;
    for (size_t i = 1; i < ns && rc == 0; i++)
        rc = spm_try(v, buf, sym, i - 1, i, &heap);
    while (rc == 0 && heap.n > 0) {
        struct spm_bigram b = spm_pop(&heap);
        struct spm_sym *l = &sym[b.left], *r = &sym[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size)
            continue; /* stale: one side changed since */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next != NONE)
            sym[r->next].prev = b.left;
        rc = spm_try(v, buf, sym, l->prev, b.left, &heap);
        if (rc == 0)
            rc = spm_try(v, buf, sym, b.left, l->next, &heap);
    }
    for (size_t i = 0; rc == 0 && i != NONE; i = sym[i].next)
        rc = spm_emit(v, buf + sym[i].off, sym[i].n, out);
out:
    free(heap.v);
    free(sym);
    free(buf);
    return rc;
}
