/* stopstr.c - see stopstr.h. */
#include "stopstr.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Longest suffix of text[0, len) that is a proper prefix of a stop string. */
static size_t stopstr_holdback(const char *text, size_t len, const char *const *stop,
                               size_t n_stop)
{
    size_t best = 0;
    for (size_t i = 0; i < n_stop; i++) {
        size_t sl = strlen(stop[i]);
        if (sl == 0)
            continue;
        for (size_t k = sl - 1 < len ? sl - 1 : len; k > best; k--)
            if (memcmp(text + len - k, stop[i], k) == 0) {
                best = k;
                break;
            }
    }
    return best;
}

int stopstr_add(struct stopstr *t, const char *piece, size_t n, const char *const *stop,
                size_t n_stop)
{
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 256;
        while (cap < t->len + n + 1)
            cap *= 2;
        char *b = realloc(t->buf, cap);
        if (!b)
            return -ENOMEM;
        t->buf = b;
        t->cap = cap;
    }
    size_t before = t->len;
    if (n)
        memcpy(t->buf + t->len, piece, n);
    t->len += n;
    t->buf[t->len] = 0;
    /* A match must end inside the new bytes; it can start up to the longest
     * stop string before them. */
    size_t cut = t->len;
    for (size_t i = 0; i < n_stop; i++) {
        size_t sl = strlen(stop[i]);
        if (!sl || sl > t->len)
            continue;
        size_t from = before + 1 > sl ? before + 1 - sl : 0;
        for (size_t p = from; p + sl <= t->len && p < cut; p++)
            if (memcmp(t->buf + p, stop[i], sl) == 0) {
                cut = p;
                break;
            }
    }
    if (cut == t->len)
        return 0;
    t->len = cut;
    t->buf[cut] = 0;
    if (t->emitted > cut) /* cannot happen: held-back text is never released */
        t->emitted = cut;
    return 1;
}

const char *stopstr_take(struct stopstr *t, bool final, const char *const *stop, size_t n_stop,
                         size_t *len)
{
    size_t hold = final ? 0 : stopstr_holdback(t->buf, t->len, stop, n_stop);
    size_t end = t->len - hold;
    if (!t->buf || end <= t->emitted) {
        *len = 0;
        return "";
    }
    const char *p = t->buf + t->emitted;
    *len = end - t->emitted;
    t->emitted = end;
    return p;
}

void stopstr_free(struct stopstr *t)
{
    free(t->buf);
    memset(t, 0, sizeof *t);
}
