/* tokenizer_bpe.c - byte-level BPE ("gpt2" tokenizer model), as llama.cpp
 * does it:
 *
 *  1. the text is decoded leniently (an invalid byte becomes U+FFFD) and
 *     re-encoded;
 *  2. a pre-tokenizer chosen by tokenizer.ggml.pre splits it into words: each
 *     regex of the set splits every piece left by the previous one into its
 *     matches and the gaps between them (PCRE2, Unicode properties);
 *  3. each word's bytes are mapped to code points with GPT-2's byte table,
 *     then adjacent symbols merge, lowest merge rank first (ties: leftmost),
 *     through a priority queue;
 *  4. each final symbol is a token; one that is not falls back to its single
 *     bytes where those are tokens.
 *
 * Whitespace follows llama.cpp's table (the Unicode White_Space property): \s
 * in the patterns below is widened with U+0085. Where llama.cpp's regex
 * engine cannot see a class member (its non-ASCII whitespace is folded to
 * one code point before matching), the class leaves it out here too.
 */
#include "tokenizer_impl.h"

#include "gguf.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#ifdef INFERD_HAVE_VALGRIND_H
#include <valgrind/valgrind.h>
#endif

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NONE   SIZE_MAX
#define MAX_RE 8

/* Under valgrind the regexes run in PCRE2's interpreter: memcheck cannot
 * follow JIT-compiled code and reports its reads as uninitialised. */
static bool tok_under_valgrind(void)
{
#ifdef INFERD_HAVE_VALGRIND_H
    return RUNNING_ON_VALGRIND != 0;
#else
    return false;
#endif
}

/* ---- pre-tokenizer regex sets ------------------------------------------- */

#define WS  "\\s\\x{85}" /* whitespace, for use inside a character class */
#define SP  "[" WS "]"
#define NSP "[^" WS "]"

#define RE_GPT2                                                                                    \
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" WS "\\p{L}\\p{N}]+|" SP "+(?!" NSP ")"
#define RE_CONTRACT "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
#define RE_LLAMA3_TAIL                                                                             \
    "| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n]*|" SP "*[\\r\\n]+|" SP "+(?!" NSP ")|" SP "+"
#define RE_LLAMA3 RE_CONTRACT "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}" RE_LLAMA3_TAIL
#define RE_QWEN2  RE_CONTRACT "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}" RE_LLAMA3_TAIL
/* CJK ranges of the DeepSeek pre-tokenizers ([U+4E00-U+9FA5 U+0800-U+4E00
 * U+AC00-U+D7FF]), less the White_Space code points inside them. */
#define RE_DS_CJK                                                                                  \
    "[\\x{4E00}-\\x{9FA5}\\x{800}-\\x{167F}\\x{1681}-\\x{1FFF}\\x{200B}-\\x{2027}"                 \
    "\\x{202A}-\\x{202E}\\x{2030}-\\x{205E}\\x{2060}-\\x{2FFF}\\x{3001}-\\x{4E00}"                 \
    "\\x{AC00}-\\x{D7FF}]+"
#define RE_DS_LETTERS                                                                              \
    "[A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}"                \
    "\\x{1C4}-\\x{293}\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}"         \
    "\\x{37F}\\x{386}\\x{388}-\\x{38A}\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}"                  \
    "\\x{3F7}-\\x{481}\\x{48A}-\\x{52F}\\x{531}-\\x{556}\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}"    \
    "\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}\\x{1D00}-\\x{1D2B}"                 \
    "\\x{1D6B}-\\x{1D77}\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}"                 \
    "\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}"         \
    "\\x{1F5F}-\\x{1F7D}\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}"        \
    "\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}"                 \
    "\\x{1FF2}-\\x{1FF4}\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}\\x{210A}-\\x{2113}\\x{2115}"         \
    "\\x{2119}-\\x{211D}\\x{2124}\\x{2126}\\x{2128}\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}"         \
    "\\x{2139}\\x{213C}-\\x{213F}\\x{2145}-\\x{2149}\\x{214E}\\x{2183}\\x{2184}"                   \
    "\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}\\x{2CEB}-\\x{2CEE}\\x{2CF2}\\x{2CF3}"                  \
    "\\x{A640}-\\x{A66D}\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}\\x{A771}-\\x{A787}"                 \
    "\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}\\x{FB13}-\\x{FB17}"                 \
    "\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}\\x{104B0}-\\x{104D3}"             \
    "\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}\\x{118A0}-\\x{118DF}"         \
    "\\x{1E900}-\\x{1E943}]"
#define RE_PORO " ?[^(" WS "|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{964}\\x{6D4}\\x{60C})]+"
/* In llama.cpp's folding '~' is neither \p{P} nor \p{S}. */
#define RE_DS3_PS "(?:(?!~)[\\p{P}\\p{S}])"

static const char *const set_default[] = {"[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+",
                                          "[0-9][0-9][0-9]", NULL};
static const char *const set_gpt2[] = {RE_GPT2, NULL};
static const char *const set_llama3[] = {RE_LLAMA3, NULL};
static const char *const set_qwen2[] = {RE_QWEN2, NULL};
static const char *const set_falcon[] = {"[\\p{P}\\$\\+<=>\\^~\\|`]+", RE_GPT2, "[0-9][0-9][0-9]",
                                         NULL};
static const char *const set_starcoder[] = {"\\p{N}", RE_GPT2, NULL};
static const char *const set_ds_coder[] = {"[\\r\\n]", SP "?\\p{L}+", SP "?\\p{P}+",
                                           RE_DS_CJK,  "\\p{N}",      NULL};
static const char *const set_ds_llm[] = {
    "[\\r\\n]",
    SP "?" RE_DS_LETTERS "+",
    SP "?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3001}-\\x{3002}]+",
    SP "+$",
    RE_DS_CJK,
    "\\p{N}+",
    NULL};
static const char *const set_ds3[] = {
    "\\p{N}{1,3}", "[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|(?:~|[^\\r\\n\\p{L}\\p{P}\\p{S}])?"
    "[\\p{L}\\p{M}]+| ?" RE_DS3_PS "+[\\r\\n]*|" SP "*[\\r\\n]+|" SP "+(?!" NSP ")|" SP "+",
    NULL};
static const char *const set_poro[] = {RE_PORO, NULL};
static const char *const set_viking[] = {RE_PORO, "\\p{N}", NULL};
static const char *const set_tekken[] = {
    "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+|[^\\r\\n\\p{L}\\p{N}]?"
    "((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*|\\p{N}| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n/]*|" SP
    "*[\\r\\n]+|" SP "+(?!" NSP ")|" SP "+",
    NULL};
static const char *const set_chameleon[] = {"<sentinel:[0-9]+>",
                                            "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z",
                                            "([\\t\\n]|    |  )",
                                            "\\p{N}",
                                            "[\\p{P}!-/:-@\\[-`{-~]",
                                            RE_GPT2,
                                            NULL};

enum { PRE_IGNORE_MERGES = 1, PRE_ADD_BOS = 2, PRE_NO_BOS = 4 };

static const struct pre_type {
    const char *names; /* space-separated tokenizer.ggml.pre values */
    const char *const *set;
    unsigned flags;
} pre_types[] = {
    {"default", set_default, 0},
    {"llama3 llama-v3 llama-bpe falcon3", set_llama3, PRE_IGNORE_MERGES | PRE_ADD_BOS},
    {"dbrx smaug-bpe", set_llama3, 0},
    {"chatglm-bpe", set_llama3, PRE_NO_BOS},
    {"deepseek-llm", set_ds_llm, 0},
    {"deepseek-coder", set_ds_coder, 0},
    {"deepseek-v3", set_ds3, 0},
    {"falcon", set_falcon, 0},
    {"gpt-2 mpt olmo jais phi-2 jina-es jina-de gigachat jina-v1-en jina-v2-es jina-v2-de "
     "jina-v2-code roberta-bpe exaone4",
     set_gpt2, 0},
    {"starcoder refact command-r smollm codeshell exaone minerva-7b", set_starcoder, 0},
    {"qwen2 deepseek-r1-qwen megrez stablelm2", set_qwen2, 0},
    {"poro-chat bloom gpt3-finnish", set_poro, 0},
    {"viking", set_viking, 0},
    {"tekken", set_tekken, PRE_IGNORE_MERGES | PRE_ADD_BOS},
    {"chameleon", set_chameleon, PRE_ADD_BOS},
};

static bool name_in(const char *names, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = names; *p;) {
        const char *e = strchr(p, ' ');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == n && memcmp(p, name, n) == 0)
            return true;
        p += l + (e ? 1 : 0);
    }
    return false;
}

/* ---- GPT-2 byte <-> code point map -------------------------------------- */

/* Printable Latin-1 bytes map to themselves; the other 68 bytes (0-32,
 * 127-160, 173) to U+0100.. in byte order. */
static uint32_t byte_to_cp(unsigned b)
{
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174)
        return b;
    if (b <= 32)
        return 256 + b;
    if (b <= 160)
        return 256 + 33 + (b - 127);
    return 256 + 67; /* 173 */
}

static int cp_to_byte(uint32_t cp)
{
    if ((cp >= 33 && cp <= 126) || (cp >= 161 && cp <= 172) || (cp >= 174 && cp <= 255))
        return (int)cp;
    if (cp < 256 || cp > 256 + 67)
        return -1;
    uint32_t k = cp - 256;
    if (k <= 32)
        return (int)k;
    if (k <= 66)
        return (int)(127 + k - 33);
    return 173;
}

size_t tok_bpe_unmap(const char *s, size_t n, char *buf, size_t cap)
{
    size_t w = 0;
    for (size_t i = 0; i < n;) {
        size_t start = i;
        uint32_t cp = tok_utf8_next(s, n, &i);
        int b = cp_to_byte(cp);
        if (b >= 0) {
            if (w < cap)
                buf[w] = (char)b;
            w++;
        } else {
            for (size_t k = start; k < i; k++, w++)
                if (w < cap)
                    buf[w] = s[k];
        }
    }
    return w;
}

/* ---- merges ------------------------------------------------------------- */

struct merge {
    size_t off; /* "first second" in pool */
    uint32_t first_len, second_len;
};

struct tok_bpe {
    char *pool;
    struct merge *m; /* rank = index */
    size_t n_m;
    uint64_t *slots; /* (hash32 << 32) | (rank + 1) */
    size_t mask;
    pcre2_code *re[MAX_RE];
    size_t n_re;
};

static uint64_t pair_hash(const char *a, size_t an, const char *b, size_t bn)
{
    uint64_t h = tok_hash(a, an);
    return (h ^ (h >> 29)) * 0x9e3779b97f4a7c15ull ^ tok_hash(b, bn);
}

/* Merge rank of (a, b), or -1. */
static int64_t merge_rank(const struct tok_bpe *bp, const char *a, size_t an, const char *b,
                          size_t bn)
{
    uint64_t h = pair_hash(a, an, b, bn);
    uint32_t h32 = (uint32_t)(h >> 32);
    for (size_t i = (size_t)h & bp->mask;; i = (i + 1) & bp->mask) {
        uint64_t slot = bp->slots[i];
        if (slot == 0)
            return -1;
        if ((uint32_t)(slot >> 32) != h32)
            continue;
        size_t r = (uint32_t)slot - 1;
        const struct merge *m = &bp->m[r];
        const char *s = bp->pool + m->off;
        if (m->first_len == an && m->second_len == bn && memcmp(s, a, an) == 0 &&
            memcmp(s + an + 1, b, bn) == 0)
            return (int64_t)r;
    }
}

static int load_merges(struct tok_bpe *bp, const struct gguf_file *f, char *err, size_t errlen)
{
    const struct gguf_array *a = NULL;
    int rc = gguf_get_arr(f, "tokenizer.ggml.merges", GGUF_VT_STRING, &a);
    if (rc < 0) {
        if (err && errlen)
            snprintf(err, errlen, "%s",
                     rc == -ENOENT ? "tokenizer.ggml.merges is missing (a gpt2 tokenizer needs it)"
                                   : "tokenizer.ggml.merges is not a string array");
        return -EINVAL;
    }
    if (a->n >= UINT32_MAX) {
        if (err && errlen)
            snprintf(err, errlen, "tokenizer.ggml.merges: too many merges");
        return -EINVAL;
    }
    size_t pool = 1;
    for (uint64_t i = 0; i < a->n; i++) {
        if (a->strs[i].len >= UINT32_MAX || pool > SIZE_MAX - a->strs[i].len)
            return -ENOMEM;
        pool += a->strs[i].len;
    }
    size_t cap = 16;
    while (cap < a->n * 2)
        cap *= 2;
    bp->pool = malloc(pool);
    bp->m = malloc((a->n ? a->n : 1) * sizeof(struct merge));
    bp->slots = calloc(cap, sizeof(uint64_t));
    if (!bp->pool || !bp->m || !bp->slots)
        return -ENOMEM;
    bp->mask = cap - 1;
    size_t off = 0;
    for (uint64_t i = 0; i < a->n; i++) {
        const struct gguf_str *s = &a->strs[i];
        const char *sp = s->len > 1 ? memchr(s->ptr + 1, ' ', s->len - 1) : NULL;
        struct merge *m = &bp->m[i];
        m->off = off;
        m->first_len = m->second_len = 0;
        bp->n_m = i + 1;
        if (!sp)
            continue; /* unusable: can never match a pair of symbols */
        memcpy(bp->pool + off, s->ptr, s->len);
        off += s->len;
        m->first_len = (uint32_t)(sp - s->ptr);
        m->second_len = (uint32_t)(s->len - m->first_len - 1);
        const char *first = bp->pool + m->off, *second = first + m->first_len + 1;
        uint64_t h = pair_hash(first, m->first_len, second, m->second_len);
        for (size_t k = (size_t)h & bp->mask;; k = (k + 1) & bp->mask) {
            uint64_t cur = bp->slots[k];
            if (cur == 0) {
                bp->slots[k] = ((h >> 32) << 32) | (i + 1);
                break;
            }
            if ((cur >> 32) != (h >> 32))
                continue;
            const struct merge *o = &bp->m[(uint32_t)cur - 1];
            const char *os = bp->pool + o->off;
            if (o->first_len == m->first_len && o->second_len == m->second_len &&
                memcmp(os, first, m->first_len) == 0 &&
                memcmp(os + o->first_len + 1, second, m->second_len) == 0)
                break; /* duplicate pair: the first (lowest rank) stays */
        }
    }
    return 0;
}

int tok_bpe_load(struct tok_vocab *v, const struct gguf_file *f, const char *pre, char *err,
                 size_t errlen)
{
    const struct pre_type *pt = &pre_types[0]; /* missing or unknown: the default set */
    for (size_t i = 0; i < sizeof pre_types / sizeof pre_types[0]; i++)
        if (name_in(pre_types[i].names, pre))
            pt = &pre_types[i];
    v->ignore_merges = pt->flags & PRE_IGNORE_MERGES;
    if (pt->flags & PRE_ADD_BOS)
        v->add_bos = true;
    if (pt->flags & PRE_NO_BOS)
        v->bos = -1;

    struct tok_bpe *bp = calloc(1, sizeof(*bp));
    if (!bp)
        return -ENOMEM;
    v->bpe = bp; /* freed by tok_free() on any failure below */
    int rc = load_merges(bp, f, err, errlen);
    if (rc < 0)
        return rc;
    for (const char *const *p = pt->set; *p && bp->n_re < MAX_RE; p++) {
        int code;
        PCRE2_SIZE at;
        pcre2_code *re =
            pcre2_compile((PCRE2_SPTR)*p, PCRE2_ZERO_TERMINATED,
                          PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF | PCRE2_DOLLAR_ENDONLY,
                          &code, &at, NULL);
        if (!re) {
            if (err && errlen)
                snprintf(err, errlen, "pre-tokenizer regex %zu of '%s' does not compile", bp->n_re,
                         pre);
            return -EINVAL;
        }
        if (!tok_under_valgrind())
            (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* no JIT: the interpreter runs */
        bp->re[bp->n_re++] = re;
    }
    return 0;
}

void tok_bpe_free(struct tok_bpe *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->n_re; i++)
        pcre2_code_free(b->re[i]);
    free(b->pool);
    free(b->m);
    free(b->slots);
    free(b);
}

/* ---- encoding ----------------------------------------------------------- */

struct span {
    size_t off, len;
};

struct spans {
    struct span *v;
    size_t n, cap;
};

static int span_push(struct spans *s, size_t off, size_t len)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        if (cap > SIZE_MAX / sizeof(struct span))
            return -ENOMEM;
        struct span *nv = realloc(s->v, cap * sizeof(struct span));
        if (!nv)
            return -ENOMEM;
        s->v = nv;
        s->cap = cap;
    }
    s->v[s->n++] = (struct span){off, len};
    return 0;
}

/* Split every span of in by re into matches and the gaps between them. */
static int regex_split(const pcre2_code *re, pcre2_match_data *md, const char *subj,
                       const struct spans *in, struct spans *out)
{
    out->n = 0;
    for (size_t i = 0; i < in->n; i++) {
        const char *p = subj + in->v[i].off;
        size_t base = in->v[i].off, n = in->v[i].len, start = 0, gap = 0;
        int rc = 0;
        while (start < n) {
            int m = pcre2_match(re, (PCRE2_SPTR)p, n, start, 0, md, NULL);
            if (m == PCRE2_ERROR_JIT_STACKLIMIT)
                m = pcre2_match(re, (PCRE2_SPTR)p, n, start, PCRE2_NO_JIT, md, NULL);
            if (m < 0)
                break; /* no match (or a resource limit): the rest is one gap */
            const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            size_t ms = ov[0], me = ov[1];
            if (ms < start || me < ms || me > n)
                break;
            if (ms > gap && (rc = span_push(out, base + gap, ms - gap)) < 0)
                return rc;
            if (me > ms && (rc = span_push(out, base + ms, me - ms)) < 0)
                return rc;
            gap = me;
            if (me == ms) {
                size_t cl = tok_utf8_len((unsigned char)p[me]);
                start = me + (cl < n - me ? cl : n - me);
            } else {
                start = me;
            }
        }
        if (gap < n && (rc = span_push(out, base + gap, n - gap)) < 0)
            return rc;
    }
    return 0;
}

struct bsym {
    size_t off, n, prev, next;
};

struct bbigram {
    uint32_t rank;
    size_t left, right, size;
};

/* a pops before b: lower rank, then the leftmost. */
static bool bb_first(const struct bbigram *a, const struct bbigram *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

struct work {
    char *w; /* byte-encoded word */
    size_t w_cap;
    struct bsym *sym;
    size_t sym_cap;
    struct bbigram *heap;
    size_t heap_n, heap_cap;
};

static int heap_push(struct work *wk, struct bbigram x)
{
    if (wk->heap_n == wk->heap_cap) {
        size_t cap = wk->heap_cap ? wk->heap_cap * 2 : 64;
        if (cap > SIZE_MAX / sizeof(x))
            return -ENOMEM;
        struct bbigram *nv = realloc(wk->heap, cap * sizeof(x));
        if (!nv)
            return -ENOMEM;
        wk->heap = nv;
        wk->heap_cap = cap;
    }
    size_t i = wk->heap_n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!bb_first(&x, &wk->heap[p]))
            break;
        wk->heap[i] = wk->heap[p];
        i = p;
    }
    wk->heap[i] = x;
    return 0;
}

static struct bbigram heap_pop(struct work *wk)
{
    struct bbigram top = wk->heap[0];
    struct bbigram last = wk->heap[--wk->heap_n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= wk->heap_n)
            break;
        if (c + 1 < wk->heap_n && bb_first(&wk->heap[c + 1], &wk->heap[c]))
            c++;
        if (!bb_first(&wk->heap[c], &last))
            break;
        wk->heap[i] = wk->heap[c];
        i = c;
    }
    if (wk->heap_n > 0)
        wk->heap[i] = last;
    return top;
}

static int try_pair(const struct tok_bpe *bp, struct work *wk, size_t l, size_t r)
{
    if (l == NONE || r == NONE)
        return 0;
    const struct bsym *a = &wk->sym[l], *b = &wk->sym[r];
    int64_t rank = merge_rank(bp, wk->w + a->off, a->n, wk->w + b->off, b->n);
    if (rank < 0)
        return 0;
    return heap_push(wk, (struct bbigram){(uint32_t)rank, l, r, a->n + b->n});
}

static int emit(const struct tok_vocab *v, const char *s, size_t n, struct tok_ids *out)
{
    int32_t id = tok_find(v, s, n);
    if (id >= 0)
        return tok_ids_push(out, id);
    for (size_t i = 0; i < n; i++) {
        id = tok_find(v, s + i, 1);
        if (id >= 0) {
            int rc = tok_ids_push(out, id);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

static int encode_word(const struct tok_vocab *v, struct work *wk, const char *word, size_t len,
                       struct tok_ids *out)
{
    if (len > SIZE_MAX / 2)
        return -ENOMEM;
    if (wk->w_cap < 2 * len) {
        char *nw = realloc(wk->w, 2 * len);
        if (!nw)
            return -ENOMEM;
        wk->w = nw;
        wk->w_cap = 2 * len;
    }
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char tmp[4];
        size_t k = tok_utf8_put(byte_to_cp((unsigned char)word[i]), tmp);
        memcpy(wk->w + n, tmp, k);
        n += k;
    }
    if (v->ignore_merges) {
        int32_t id = tok_find(v, wk->w, n);
        if (id >= 0)
            return tok_ids_push(out, id);
    }
    if (wk->sym_cap < n) {
        if (n > SIZE_MAX / sizeof(struct bsym))
            return -ENOMEM;
        struct bsym *ns = realloc(wk->sym, n * sizeof(struct bsym));
        if (!ns)
            return -ENOMEM;
        wk->sym = ns;
        wk->sym_cap = n;
    }
    size_t ns = 0;
    for (size_t off = 0; off < n;) {
        size_t cl = tok_utf8_len((unsigned char)wk->w[off]);
        if (cl > n - off)
            cl = n - off;
        wk->sym[ns] = (struct bsym){off, cl, ns ? ns - 1 : NONE, NONE};
        if (ns)
            wk->sym[ns - 1].next = ns;
        ns++;
        off += cl;
    }
    int rc = 0;
    wk->heap_n = 0;
    for (size_t i = 1; i < ns && rc == 0; i++)
        rc = try_pair(v->bpe, wk, i - 1, i);
    while (rc == 0 && wk->heap_n > 0) {
        struct bbigram b = heap_pop(wk);
        struct bsym *l = &wk->sym[b.left], *r = &wk->sym[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size)
            continue; /* stale: a side has merged since */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next != NONE)
            wk->sym[r->next].prev = b.left;
        rc = try_pair(v->bpe, wk, l->prev, b.left);
        if (rc == 0)
            rc = try_pair(v->bpe, wk, b.left, l->next);
    }
    for (size_t i = 0; rc == 0 && ns > 0 && i != NONE; i = wk->sym[i].next)
        rc = emit(v, wk->w + wk->sym[i].off, wk->sym[i].n, out);
    return rc;
}

int tok_bpe_encode(const struct tok_vocab *v, const char *text, size_t len, struct tok_ids *out)
{
    const struct tok_bpe *bp = v->bpe;
    if (len > SIZE_MAX / 3)
        return -ENOMEM;
    /* Re-encode leniently decoded text (invalid bytes become U+FFFD). The
     * regexes run on a copy where surrogates (valid for llama.cpp, not for
     * PCRE2) read as U+FFFD, which has the same length and class. */
    char *norm = malloc(3 * len + 1), *shadow = NULL;
    struct spans a = {0}, b = {0};
    struct work wk = {0};
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    int rc = -ENOMEM;
    if (!norm || !md)
        goto out;
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp = tok_utf8_next(text, len, &i);
        if (cp >= 0xd800 && cp <= 0xdfff && !shadow) {
            shadow = malloc(3 * len + 1);
            if (!shadow)
                goto out;
            memcpy(shadow, norm, n);
        }
        if (shadow)
            tok_utf8_put(cp >= 0xd800 && cp <= 0xdfff ? 0xfffd : cp, shadow + n);
        n += tok_utf8_put(cp, norm + n);
    }
    const char *subj = shadow ? shadow : norm;
    if (n > 0 && (rc = span_push(&a, 0, n)) < 0)
        goto out;
    rc = 0;
    for (size_t r = 0; r < bp->n_re && rc == 0; r++) {
        rc = regex_split(bp->re[r], md, subj, &a, &b);
        struct spans t = a;
        a = b;
        b = t;
    }
    for (size_t i = 0; i < a.n && rc == 0; i++)
        rc = encode_word(v, &wk, norm + a.v[i].off, a.v[i].len, out);
out:
    pcre2_match_data_free(md);
    free(wk.w);
    free(wk.sym);
    free(wk.heap);
    free(a.v);
    free(b.v);
    free(shadow);
    free(norm);
    return rc;
}
