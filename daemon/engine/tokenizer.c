/* tokenizer.c - vocab loading from GGUF tokenizer.ggml.* metadata, special
 * token partitioning, the encode entry point and token pieces.
 * SentencePiece-style ("llama") merging lives in tokenizer_spm.c, byte-level
 * BPE in tokenizer_bpe.c, WordPiece in tokenizer_wpm.c. The behaviour follows
 * llama.cpp's tokenizer, which the test fixtures pin:
 *
 *  - special tokens (control, user-defined, unknown) are cut out of the text
 *    first, longest text first; user-defined ones always, control/unknown
 *    ones only with parse_special;
 *  - SPM: every raw fragment that starts the text or follows a special token
 *    gets a space prefix (unless tokenizer.ggml.add_space_prefix is false),
 *    spaces become U+2581, then adjacent symbols merge, best score first
 *    (ties: leftmost), while the merged text is a token; what is left and is
 *    not a token falls back to <0xXX> byte tokens.
 */
#include "tokenizer_impl.h"

#include "gguf.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- small helpers ------------------------------------------------------ */

static void set_err(char *err, size_t errlen, const char *fmt, const char *arg)
{
    if (err && errlen > 0)
        snprintf(err, errlen, fmt, arg);
}

int tok_ids_push(struct tok_ids *o, int32_t id)
{
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 64;
        if (cap > SIZE_MAX / sizeof(int32_t))
            return -ENOMEM;
        int32_t *nv = realloc(o->v, cap * sizeof(int32_t));
        if (!nv)
            return -ENOMEM;
        o->v = nv;
        o->cap = cap;
    }
    o->v[o->n++] = id;
    return 0;
}

uint64_t tok_hash(const void *s, size_t n)
{
    const unsigned char *p = s;
    uint64_t h = 0x9e3779b97f4a7c15ull ^ ((uint64_t)n * 0xff51afd7ed558ccdull);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
        h ^= h >> 31;
        p += 8;
        n -= 8;
    }
    uint64_t w = 0;
    for (size_t i = 0; i < n; i++)
        w |= (uint64_t)p[i] << (8 * i);
    h = (h ^ w) * 0x94d049bb133111ebull;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    return h;
}

int32_t tok_find(const struct tok_vocab *v, const char *s, size_t n)
{
    if (n == 0 || n > v->max_len)
        return -1;
    uint64_t h = tok_hash(s, n);
    uint32_t h32 = (uint32_t)(h >> 32);
    for (size_t i = (size_t)h & v->mask;; i = (i + 1) & v->mask) {
        uint64_t slot = v->slots[i];
        if (slot == 0)
            return -1;
        if ((uint32_t)(slot >> 32) != h32)
            continue;
        uint32_t id = (uint32_t)slot - 1;
        const struct tok_token *t = &v->tok[id];
        if (t->len == n && memcmp(v->pool + t->off, s, n) == 0)
            return (int32_t)id;
    }
}

size_t tok_utf8_len(unsigned char c)
{
    static const unsigned char len[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return len[c >> 4];
}

static bool is_cont(const char *s, size_t i)
{
    return ((unsigned char)s[i] & 0xc0) == 0x80;
}

uint32_t tok_utf8_next(const char *s, size_t n, size_t *pos)
{
    size_t i = *pos;
    unsigned char c = (unsigned char)s[i];
    if (c < 0x80) {
        *pos = i + 1;
        return c;
    }
    if ((c & 0xe0) == 0xc0 && i + 1 < n && is_cont(s, i + 1)) {
        *pos = i + 2;
        return ((uint32_t)(c & 0x1f) << 6) | ((unsigned char)s[i + 1] & 0x3fu);
    }
    if ((c & 0xf0) == 0xe0 && i + 2 < n && is_cont(s, i + 1) && is_cont(s, i + 2)) {
        *pos = i + 3;
        return ((uint32_t)(c & 0x0f) << 12) | (((unsigned char)s[i + 1] & 0x3fu) << 6) |
               ((unsigned char)s[i + 2] & 0x3fu);
    }
    if ((c & 0xf8) == 0xf0 && i + 3 < n && is_cont(s, i + 1) && is_cont(s, i + 2) &&
        is_cont(s, i + 3)) {
        *pos = i + 4;
        uint32_t cp = ((uint32_t)(c & 0x07) << 18) | (((unsigned char)s[i + 1] & 0x3fu) << 12) |
                      (((unsigned char)s[i + 2] & 0x3fu) << 6) | ((unsigned char)s[i + 3] & 0x3fu);
        return cp <= 0x10ffff ? cp : 0xfffd;
    }
    *pos = i + 1;
    return 0xfffd;
}

size_t tok_utf8_put(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

static const char *tok_str(const struct tok_vocab *v, int32_t id)
{
    return v->pool + v->tok[id].off;
}

/* ---- loading ------------------------------------------------------------ */

static int build_table(struct tok_vocab *v)
{
    size_t cap = 16;
    while (cap < (size_t)v->n * 2)
        cap *= 2;
    v->slots = calloc(cap, sizeof(uint64_t));
    if (!v->slots)
        return -ENOMEM;
    v->mask = cap - 1;
    for (uint32_t id = 0; id < v->n; id++) {
        const struct tok_token *t = &v->tok[id];
        if (t->len == 0)
            continue; /* never matched: symbols are never empty */
        const char *s = v->pool + t->off;
        uint64_t h = tok_hash(s, t->len);
        uint64_t slot = ((h >> 32) << 32) | ((uint64_t)id + 1);
        for (size_t i = (size_t)h & v->mask;; i = (i + 1) & v->mask) {
            uint64_t cur = v->slots[i];
            if (cur == 0) {
                v->slots[i] = slot;
                break;
            }
            if ((cur >> 32) == (h >> 32)) {
                const struct tok_token *o = &v->tok[(uint32_t)cur - 1];
                if (o->len == t->len && memcmp(v->pool + o->off, s, t->len) == 0) {
                    v->slots[i] = slot; /* duplicate text: the later id wins */
                    break;
                }
            }
        }
        if (t->len > v->max_len)
            v->max_len = t->len;
    }
    return 0;
}

static int load_tokens(struct tok_vocab *v, const struct gguf_file *f, char *err, size_t errlen)
{
    const struct gguf_array *toks = NULL, *scores = NULL, *types = NULL;
    int rc = gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_VT_STRING, &toks);
    if (rc < 0) {
        set_err(err, errlen, "%s",
                rc == -ENOENT ? "tokenizer.ggml.tokens is missing"
                              : "tokenizer.ggml.tokens is not a string array");
        return -EINVAL;
    }
    if (toks->n == 0 || toks->n > INT32_MAX) {
        set_err(err, errlen, "%s", "tokenizer.ggml.tokens: bad token count");
        return -EINVAL;
    }
    v->n = (uint32_t)toks->n;

    rc = gguf_get_arr(f, "tokenizer.ggml.scores", GGUF_VT_COUNT, &scores);
    if (rc == 0 && ((scores->type != GGUF_VT_FLOAT32 && scores->type != GGUF_VT_FLOAT64 &&
                     scores->type != GGUF_VT_INT32) ||
                    scores->n < toks->n)) {
        set_err(err, errlen, "%s", "tokenizer.ggml.scores: wrong type or too few elements");
        return -EINVAL;
    } else if (rc < 0 && rc != -ENOENT) {
        set_err(err, errlen, "%s", "tokenizer.ggml.scores is not an array");
        return -EINVAL;
    }
    if (rc < 0)
        scores = NULL;

    rc = gguf_get_arr(f, "tokenizer.ggml.token_type", GGUF_VT_COUNT, &types);
    if (rc == 0 &&
        (types->type == GGUF_VT_STRING || types->type == GGUF_VT_ARRAY ||
         types->type == GGUF_VT_FLOAT32 || types->type == GGUF_VT_FLOAT64 || types->n < toks->n)) {
        set_err(err, errlen, "%s", "tokenizer.ggml.token_type: wrong type or too few elements");
        return -EINVAL;
    } else if (rc < 0 && rc != -ENOENT) {
        set_err(err, errlen, "%s", "tokenizer.ggml.token_type is not an array");
        return -EINVAL;
    }
    if (rc < 0)
        types = NULL;

    size_t pool = 0;
    for (uint64_t i = 0; i < toks->n; i++) {
        if (toks->strs[i].len >= UINT32_MAX || pool > SIZE_MAX - toks->strs[i].len - 1)
            return -ENOMEM;
        pool += toks->strs[i].len + 1;
    }
    v->tok = calloc(v->n, sizeof(*v->tok));
    v->pool = malloc(pool);
    if (!v->tok || !v->pool)
        return -ENOMEM;
    size_t off = 0;
    for (uint32_t i = 0; i < v->n; i++) {
        struct tok_token *t = &v->tok[i];
        const struct gguf_str *s = &toks->strs[i];
        if (s->len)
            memcpy(v->pool + off, s->ptr, s->len);
        v->pool[off + s->len] = 0;
        t->off = off;
        t->len = (uint32_t)s->len;
        off += s->len + 1;
        t->score = 0.0f;
        if (scores)
            t->score = scores->type == GGUF_VT_INT32 ? (float)gguf_arr_i64(scores, i)
                                                     : gguf_arr_f32(scores, i);
        t->type = TOK_TYPE_NORMAL;
        if (types) {
            int64_t ty = gguf_arr_i64(types, i);
            t->type = (ty >= TOK_TYPE_UNDEFINED && ty <= TOK_TYPE_BYTE) ? (uint8_t)ty
                                                                        : TOK_TYPE_UNDEFINED;
        }
    }
    return build_table(v);
}

static void read_id(const struct tok_vocab *v, const struct gguf_file *f, const char *key,
                    int32_t *id)
{
    uint32_t x;
    if (gguf_get_u32(f, key, &x) == 0 && x < v->n)
        *id = (int32_t)x; /* out of range: keep the default, as llama.cpp does */
}

static void read_bool(const struct gguf_file *f, const char *key, bool *b)
{
    bool x;
    if (gguf_get_bool(f, key, &x) == 0)
        *b = x;
}

static void mark_control(struct tok_vocab *v, int32_t id)
{
    v->tok[id].type = TOK_TYPE_CONTROL;
}

/* The token whose text comes first in list, or -1. */
static int32_t find_any(const struct tok_vocab *v, const char *const *list)
{
    for (const char *const *p = list; *p; p++) {
        int32_t id = tok_find(v, *p, strlen(*p));
        if (id >= 0)
            return id;
    }
    return -1;
}

/* Tokens recognised by their text when the metadata does not name them
 * (llama.cpp does the same); such tokens are treated as control tokens. */
static void detect_by_text(struct tok_vocab *v)
{
    static const char *const eot[] = {"<|eot_id|>",
                                      "<|im_end|>",
                                      "<|end|>",
                                      "<end_of_turn>",
                                      "<|endoftext|>",
                                      "<|end_of_text|>",
                                      "<EOT>",
                                      "_<EOT>",
                                      "<\xef\xbd\x9c"
                                      "end\xe2\x96\x81of\xe2\x96\x81sentence"
                                      "\xef\xbd\x9c>",
                                      NULL};
    static const char *const eom[] = {"<|eom_id|>", NULL};
    static const char *const pre[] = {"<|fim_prefix|>",
                                      "<fim-prefix>",
                                      "<fim_prefix>",
                                      "<\xef\xbd\x9c"
                                      "fim\xe2\x96\x81"
                                      "begin\xef\xbd\x9c>",
                                      "<PRE>",
                                      "\xe2\x96\x81<PRE>",
                                      NULL};
    static const char *const suf[] = {"<|fim_suffix|>",
                                      "<fim-suffix>",
                                      "<fim_suffix>",
                                      "<\xef\xbd\x9c"
                                      "fim\xe2\x96\x81hole\xef\xbd\x9c>",
                                      "<SUF>",
                                      "\xe2\x96\x81<SUF>",
                                      NULL};
    static const char *const mid[] = {"<|fim_middle|>",
                                      "<fim-middle>",
                                      "<fim_middle>",
                                      "<\xef\xbd\x9c"
                                      "fim\xe2\x96\x81"
                                      "end\xef\xbd\x9c>",
                                      "<MID>",
                                      "\xe2\x96\x81<MID>",
                                      NULL};
    static const char *const pad[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", NULL};
    static const char *const rep[] = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>",
                                      "<REPO>",       "<reponame>",    NULL};
    static const char *const fsep[] = {"<|file_sep|>", NULL};
    struct {
        int32_t *id;
        const char *const *list;
    } const rules[] = {{&v->eot, eot},     {&v->eom, eom},     {&v->fim_pre, pre},
                       {&v->fim_suf, suf}, {&v->fim_mid, mid}, {&v->fim_pad, pad},
                       {&v->fim_rep, rep}, {&v->fim_sep, fsep}};
    for (size_t r = 0; r < sizeof rules / sizeof rules[0]; r++) {
        if (*rules[r].id >= 0)
            continue;
        int32_t id = find_any(v, rules[r].list);
        if (id >= 0) {
            *rules[r].id = id;
            mark_control(v, id);
        }
    }
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

static int build_eog(struct tok_vocab *v)
{
    static const char *const eog[] = {"<|eot_id|>",    "<|im_end|>",    "<|end|>",
                                      "<end_of_turn>", "<|endoftext|>", "<|eom_id|>",
                                      "<EOT>",         "_<EOT>",        "<|end_of_text|>"};
    int32_t cand[9 + 6];
    size_t n = 0;
    for (size_t i = 0; i < sizeof eog / sizeof eog[0]; i++) {
        int32_t id = tok_find(v, eog[i], strlen(eog[i]));
        if (id >= 0) {
            mark_control(v, id);
            cand[n++] = id;
        }
    }
    const int32_t fixed[] = {v->fim_pad, v->fim_rep, v->fim_sep, v->eos, v->eot, v->eom};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (fixed[i] >= 0)
            cand[n++] = fixed[i];
    qsort(cand, n, sizeof cand[0], cmp_i32);
    v->eog = malloc((n ? n : 1) * sizeof(int32_t));
    if (!v->eog)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        if (v->n_eog == 0 || v->eog[v->n_eog - 1] != cand[i])
            v->eog[v->n_eog++] = cand[i];
    return 0;
}

struct special_key {
    uint32_t len;
    int32_t id;
};

static int cmp_special(const void *a, const void *b)
{
    const struct special_key *x = a, *y = b;
    if (x->len != y->len)
        return x->len > y->len ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

static bool is_special_type(uint8_t t)
{
    return t == TOK_TYPE_CONTROL || t == TOK_TYPE_USER_DEFINED || t == TOK_TYPE_UNKNOWN;
}

static int build_special(struct tok_vocab *v)
{
    size_t n = 0;
    for (uint32_t i = 0; i < v->n; i++)
        if (is_special_type(v->tok[i].type) && v->tok[i].len > 0)
            n++;
    v->special = malloc((n ? n : 1) * sizeof(int32_t));
    if (!v->special)
        return -ENOMEM;
    for (uint32_t i = 0; i < v->n; i++)
        if (is_special_type(v->tok[i].type) && v->tok[i].len > 0)
            v->special[v->n_special++] = (int32_t)i;
    struct special_key *keys = malloc((n ? n : 1) * sizeof(*keys));
    if (!keys)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        keys[i] = (struct special_key){v->tok[v->special[i]].len, v->special[i]};
    qsort(keys, n, sizeof(*keys), cmp_special);
    for (size_t i = 0; i < n; i++)
        v->special[i] = keys[i].id;
    free(keys);
    return 0;
}

static bool contains_ci(const char *hay, size_t n, const char *needle)
{
    size_t m = strlen(needle);
    for (size_t i = 0; i + m <= n; i++) {
        size_t j = 0;
        while (j < m) {
            char c = hay[i + j];
            if (c >= 'A' && c <= 'Z')
                c = (char)(c - 'A' + 'a');
            if (c != needle[j])
                break;
            j++;
        }
        if (j == m)
            return true;
    }
    return false;
}

/* Per-model strip flags on special tokens (llama.cpp hard-codes these; the
 * GGUF does not carry them). */
static void strip_fixups(struct tok_vocab *v, const struct gguf_file *f, const char *pre)
{
    struct gguf_str name = {NULL, 0};
    if (strstr(pre, "jina-v2-de") || strstr(pre, "jina-v2-es") || strstr(pre, "jina-v2-code")) {
        int32_t id = tok_find(v, "<mask>", 6);
        if (id >= 0)
            v->tok[id].strip |= TOK_STRIP_LEFT;
    } else if (gguf_get_str(f, "general.name", &name) == 0 &&
               (contains_ci(name.ptr, name.len, "phi-3") ||
                contains_ci(name.ptr, name.len, "phi3"))) {
        for (size_t i = 0; i < v->n_special; i++)
            v->tok[v->special[i]].strip |= TOK_STRIP_RIGHT;
        int32_t id = tok_find(v, "</s>", 4);
        if (id >= 0)
            v->tok[id].strip |= TOK_STRIP_RIGHT;
        static const char *const keep[] = {"<unk>", "<s>", "<|endoftext|>"};
        for (size_t i = 0; i < 3; i++) {
            id = tok_find(v, keep[i], strlen(keep[i]));
            if (id >= 0)
                v->tok[id].strip &= (uint8_t)~TOK_STRIP_RIGHT;
        }
    }
}

static void build_byte_tokens(struct tok_vocab *v)
{
    static const char hex[] = "0123456789ABCDEF";
    for (int b = 0; b < 256; b++) {
        char buf[7] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>', 0};
        char one = (char)b;
        int32_t id = tok_find(v, buf, 6);
        if (id < 0)
            id = tok_find(v, &one, 1);
        v->byte_tok[b] = id >= 0 ? id : v->unk;
    }
}

int tok_load(const struct gguf_file *f, struct tok_vocab **out, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = 0;
    if (!f || !out)
        return -EINVAL;
    *out = NULL;

    struct gguf_str model;
    int rc = gguf_get_str(f, "tokenizer.ggml.model", &model);
    if (rc < 0) {
        set_err(err, errlen, "%s",
                rc == -ENOENT ? "tokenizer.ggml.model is missing"
                              : "tokenizer.ggml.model is not a string");
        return -EINVAL;
    }
    char pre[64] = "";
    struct gguf_str pre_s;
    if (gguf_get_str(f, "tokenizer.ggml.pre", &pre_s) == 0 && pre_s.len < sizeof pre) {
        memcpy(pre, pre_s.ptr, pre_s.len);
        pre[pre_s.len] = 0;
    } else if (gguf_find(f, "tokenizer.ggml.pre")) {
        snprintf(pre, sizeof pre, "?"); /* unusable value: an unknown pre-tokenizer */
    }

    struct tok_vocab *v = calloc(1, sizeof(*v));
    if (!v)
        return -ENOMEM;
    v->eot = v->eom = v->sep = v->pad = v->mask_id = -1;
    v->fim_pre = v->fim_suf = v->fim_mid = v->fim_pad = v->fim_rep = v->fim_sep = -1;
    if (gguf_str_eq(model, "llama")) {
        v->model = TOK_MODEL_SPM;
        v->bos = 1;
        v->eos = 2;
        v->unk = 0;
        v->add_space_prefix = true;
        v->add_bos = true;
    } else if (gguf_str_eq(model, "gpt2")) {
        v->model = TOK_MODEL_BPE;
        v->bos = 11;
        v->eos = 11;
        v->unk = -1;
    } else if (gguf_str_eq(model, "bert")) {
        v->model = TOK_MODEL_WPM;
        v->bos = 101;
        v->eos = -1;
        v->unk = 100;
        v->sep = 102;
        v->pad = 0;
        v->mask_id = 103;
        v->add_bos = true;
        v->add_sep = true;
    } else {
        if (err && errlen)
            snprintf(err, errlen,
                     "unsupported tokenizer model '%.*s' in tokenizer.ggml.model "
                     "(supported: llama, gpt2, bert)",
                     (int)(model.len < 64 ? model.len : 64), model.ptr ? model.ptr : "");
        free(v);
        return -ENOTSUP;
    }

    rc = load_tokens(v, f, err, errlen);
    if (rc < 0)
        goto fail;
    if (v->model == TOK_MODEL_BPE) {
        rc = tok_bpe_load(v, f, pre, err, errlen);
        if (rc < 0)
            goto fail;
    }

    int32_t *ids[] = {&v->bos, &v->eos, &v->unk, &v->sep, &v->pad, &v->mask_id};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        if (*ids[i] >= 0 && (uint32_t)*ids[i] >= v->n)
            *ids[i] = -1; /* default beyond a small vocab: none */
    static const struct {
        const char *key;
        size_t field;
    } keys[] = {
        {"tokenizer.ggml.bos_token_id", offsetof(struct tok_vocab, bos)},
        {"tokenizer.ggml.eos_token_id", offsetof(struct tok_vocab, eos)},
        {"tokenizer.ggml.eot_token_id", offsetof(struct tok_vocab, eot)},
        {"tokenizer.ggml.eom_token_id", offsetof(struct tok_vocab, eom)},
        {"tokenizer.ggml.unknown_token_id", offsetof(struct tok_vocab, unk)},
        {"tokenizer.ggml.seperator_token_id", offsetof(struct tok_vocab, sep)},
        {"tokenizer.ggml.padding_token_id", offsetof(struct tok_vocab, pad)},
        {"tokenizer.ggml.mask_token_id", offsetof(struct tok_vocab, mask_id)},
        {"tokenizer.ggml.fim_pre_token_id", offsetof(struct tok_vocab, fim_pre)},
        {"tokenizer.ggml.fim_suf_token_id", offsetof(struct tok_vocab, fim_suf)},
        {"tokenizer.ggml.fim_mid_token_id", offsetof(struct tok_vocab, fim_mid)},
        {"tokenizer.ggml.fim_pad_token_id", offsetof(struct tok_vocab, fim_pad)},
        {"tokenizer.ggml.fim_rep_token_id", offsetof(struct tok_vocab, fim_rep)},
        {"tokenizer.ggml.fim_sep_token_id", offsetof(struct tok_vocab, fim_sep)},
        {"tokenizer.ggml.prefix_token_id", offsetof(struct tok_vocab, fim_pre)},
        {"tokenizer.ggml.suffix_token_id", offsetof(struct tok_vocab, fim_suf)},
        {"tokenizer.ggml.middle_token_id", offsetof(struct tok_vocab, fim_mid)},
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        read_id(v, f, keys[i].key, (int32_t *)(void *)((char *)v + keys[i].field));
    read_bool(f, "tokenizer.ggml.add_bos_token", &v->add_bos);
    read_bool(f, "tokenizer.ggml.add_eos_token", &v->add_eos);
    read_bool(f, "tokenizer.ggml.add_sep_token", &v->add_sep);
    read_bool(f, "tokenizer.ggml.add_space_prefix", &v->add_space_prefix);
    read_bool(f, "tokenizer.ggml.remove_extra_whitespaces", &v->remove_extra_ws);

    detect_by_text(v);
    rc = build_eog(v);
    if (rc < 0)
        goto fail;
    rc = build_special(v);
    if (rc < 0)
        goto fail;
    strip_fixups(v, f, pre);
    build_byte_tokens(v);
    *out = v;
    return 0;

fail:
    if (rc == -ENOMEM && err && errlen && !err[0])
        set_err(err, errlen, "%s", "out of memory loading the vocab");
    tok_free(v);
    return rc;
}

void tok_free(struct tok_vocab *v)
{
    if (!v)
        return;
    tok_bpe_free(v->bpe);
    free(v->tok);
    free(v->pool);
    free(v->slots);
    free(v->eog);
    free(v->special);
    free(v);
}

enum tok_model tok_model(const struct tok_vocab *v)
{
    return v->model;
}

uint32_t tok_n_vocab(const struct tok_vocab *v)
{
    return v->n;
}

int32_t tok_bos(const struct tok_vocab *v)
{
    return v->bos;
}

int32_t tok_eos(const struct tok_vocab *v)
{
    return v->eos;
}

bool tok_add_bos(const struct tok_vocab *v)
{
    return v->add_bos && v->bos >= 0;
}

bool tok_add_eos(const struct tok_vocab *v)
{
    return v->add_eos && v->eos >= 0;
}

bool tok_is_eog(const struct tok_vocab *v, int32_t id)
{
    for (size_t i = 0; i < v->n_eog; i++)
        if (v->eog[i] == id)
            return true;
    return false;
}

enum tok_type tok_type_of(const struct tok_vocab *v, int32_t id)
{
    if (id < 0 || (uint32_t)id >= v->n)
        return TOK_TYPE_UNDEFINED;
    return (enum tok_type)v->tok[id].type;
}

const char *tok_text(const struct tok_vocab *v, int32_t id)
{
    if (id < 0 || (uint32_t)id >= v->n)
        return NULL;
    return tok_str(v, id);
}

/* ---- special-token partitioning ----------------------------------------- */

/* A fragment of the input: raw text [off, off + len) or a token (id >= 0). */
struct frag {
    size_t off, len;
    int32_t id;
};

struct frags {
    struct frag *v;
    size_t n, cap;
};

static int frag_push(struct frags *fs, size_t off, size_t len, int32_t id)
{
    if (fs->n == fs->cap) {
        size_t cap = fs->cap ? fs->cap * 2 : 16;
        if (cap > SIZE_MAX / sizeof(struct frag))
            return -ENOMEM;
        struct frag *nv = realloc(fs->v, cap * sizeof(struct frag));
        if (!nv)
            return -ENOMEM;
        fs->v = nv;
        fs->cap = cap;
    }
    fs->v[fs->n++] = (struct frag){off, len, id};
    return 0;
}

static bool is_ascii_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* Split every raw fragment of a at the occurrences of token id (leftmost
 * first, non-overlapping) into b. */
static int split_on(const struct tok_vocab *v, int32_t id, const char *text, const struct frags *a,
                    struct frags *b)
{
    const char *tt = tok_str(v, id);
    size_t tl = v->tok[id].len;
    uint8_t strip = v->tok[id].strip;
    b->n = 0;
    for (size_t i = 0; i < a->n; i++) {
        struct frag f = a->v[i];
        int rc;
        if (f.id >= 0) {
            if ((rc = frag_push(b, f.off, f.len, f.id)) < 0)
                return rc;
            continue;
        }
        size_t off = f.off, rem = f.len;
        while (rem > 0) {
            const char *m = rem >= tl ? memmem(text + off, rem, tt, tl) : NULL;
            if (!m) {
                if ((rc = frag_push(b, off, rem, -1)) < 0)
                    return rc;
                break;
            }
            size_t pos = (size_t)(m - text);
            size_t left = pos - off;
            if (strip & TOK_STRIP_LEFT)
                while (left > 0 && is_ascii_space(text[off + left - 1]))
                    left--;
            if (left > 0 && (rc = frag_push(b, off, left, -1)) < 0)
                return rc;
            if ((rc = frag_push(b, pos, tl, id)) < 0)
                return rc;
            size_t roff = pos + tl, rlen = off + rem - roff;
            if (strip & TOK_STRIP_RIGHT)
                while (rlen > 0 && is_ascii_space(text[roff])) {
                    roff++;
                    rlen--;
                }
            off = roff;
            rem = rlen;
        }
    }
    return 0;
}

static int partition(const struct tok_vocab *v, const char *text, size_t len, bool parse_special,
                     struct frags *out)
{
    out->n = 0;
    if (len == 0)
        return 0;
    int rc = frag_push(out, 0, len, -1);
    if (rc < 0 || v->n_special == 0)
        return rc;

    /* Which bytes and byte pairs occur at all: a cheap exact pre-check that
     * skips most special tokens without scanning the text. */
    uint64_t *pairs = calloc(65536 / 64 + 256 / 64, sizeof(uint64_t));
    if (!pairs)
        return -ENOMEM;
    uint64_t *bytes = pairs + 65536 / 64;
    for (size_t i = 0; i < len; i++) {
        unsigned b = (unsigned char)text[i];
        bytes[b >> 6] |= 1ull << (b & 63);
        if (i + 1 < len) {
            unsigned p = (b << 8) | (unsigned char)text[i + 1];
            pairs[p >> 6] |= 1ull << (p & 63);
        }
    }

    struct frags tmp = {0};
    for (size_t s = 0; s < v->n_special && rc == 0; s++) {
        int32_t id = v->special[s];
        const struct tok_token *t = &v->tok[id];
        if (!parse_special && (t->type == TOK_TYPE_CONTROL || t->type == TOK_TYPE_UNKNOWN))
            continue;
        if (t->len > len)
            continue;
        const unsigned char *tt = (const unsigned char *)tok_str(v, id);
        bool maybe = (bytes[tt[0] >> 6] >> (tt[0] & 63)) & 1;
        for (size_t i = 0; maybe && i + 1 < t->len; i++) {
            unsigned p = ((unsigned)tt[i] << 8) | tt[i + 1];
            maybe = (pairs[p >> 6] >> (p & 63)) & 1;
        }
        if (!maybe || !memmem(text, len, tt, t->len))
            continue;
        rc = split_on(v, id, text, out, &tmp);
        struct frags sw = *out;
        *out = tmp;
        tmp = sw;
    }
    free(tmp.v);
    free(pairs);
    return rc;
}

/* ---- public encode ------------------------------------------------------ */

int tok_encode(const struct tok_vocab *v, const char *text, size_t len, bool add_special,
               bool parse_special, int32_t *out, size_t cap, size_t *n_out)
{
    if (n_out)
        *n_out = 0;
    if (!v || !n_out || (!text && len) || (!out && cap))
        return -EINVAL;
    struct frags fs = {0};
    struct tok_ids ids = {0};
    int rc = partition(v, text, len, parse_special, &fs);
    if (rc < 0)
        goto done;

    if (add_special && v->add_bos && v->bos >= 0 && (rc = tok_ids_push(&ids, v->bos)) < 0)
        goto done;
    bool prev_special = true; /* the start of the text counts as after a special token */
    for (size_t i = 0; i < fs.n && rc == 0; i++) {
        const struct frag *f = &fs.v[i];
        if (f->id >= 0) {
            rc = tok_ids_push(&ids, f->id);
            prev_special = true;
            continue;
        }
        switch (v->model) {
        case TOK_MODEL_SPM:
            rc =
                tok_spm_encode(v, text + f->off, f->len, v->add_space_prefix && prev_special, &ids);
            break;
        case TOK_MODEL_BPE:
            rc = tok_bpe_encode(v, text + f->off, f->len, &ids);
            break;
        case TOK_MODEL_WPM:
            rc = tok_wpm_encode(v, text + f->off, f->len, &ids);
            break;
        }
        prev_special = false;
    }
    if (rc < 0)
        goto done;
    if (add_special && v->model == TOK_MODEL_WPM && v->add_sep && v->sep >= 0 &&
        (rc = tok_ids_push(&ids, v->sep)) < 0)
        goto done;
    if (add_special && v->add_eos && v->eos >= 0 && (rc = tok_ids_push(&ids, v->eos)) < 0)
        goto done;

    *n_out = ids.n;
    if (cap > 0 && ids.n > 0)
        memcpy(out, ids.v, (ids.n < cap ? ids.n : cap) * sizeof(int32_t));
    rc = ids.n > cap ? -ENOSPC : 0;
done:
    free(ids.v);
    free(fs.v);
    return rc;
}

/* ---- pieces ------------------------------------------------------------- */

static size_t put_bytes(char *buf, size_t cap, size_t at, const char *s, size_t n)
{
    if (at < cap)
        memcpy(buf + at, s, (cap - at) < n ? (cap - at) : n);
    return at + n;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int tok_piece(const struct tok_vocab *v, int32_t id, char *buf, size_t cap, bool render_special)
{
    if (!v || id < 0 || (uint32_t)id >= v->n || (!buf && cap))
        return -EINVAL;
    const struct tok_token *t = &v->tok[id];
    const char *s = tok_str(v, id);
    size_t n = 0;
    switch (t->type) {
    case TOK_TYPE_CONTROL:
    case TOK_TYPE_UNKNOWN:
        if (!render_special)
            return 0;
        /* fall through */
    case TOK_TYPE_USER_DEFINED:
        n = put_bytes(buf, cap, 0, s, t->len);
        break;
    case TOK_TYPE_NORMAL:
        if (v->model == TOK_MODEL_BPE) {
            n = tok_bpe_unmap(s, t->len, buf, cap);
            break;
        }
        for (size_t i = 0; i < t->len;) {
            if (t->len - i >= 3 && memcmp(s + i, "\xe2\x96\x81", 3) == 0) {
                n = put_bytes(buf, cap, n, " ", 1);
                i += 3;
            } else {
                n = put_bytes(buf, cap, n, s + i, 1);
                i++;
            }
        }
        break;
    case TOK_TYPE_BYTE:
        if (v->model != TOK_MODEL_BPE && t->len == 6 && memcmp(s, "<0x", 3) == 0 && s[5] == '>' &&
            hexval(s[3]) >= 0 && hexval(s[4]) >= 0) {
            char b = (char)(hexval(s[3]) * 16 + hexval(s[4]));
            n = put_bytes(buf, cap, 0, &b, 1);
        }
        break;
    default: /* undefined, unused: nothing, as llama.cpp */
        break;
    }
    return n > INT_MAX ? INT_MAX : (int)n;
}
