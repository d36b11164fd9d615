/* test_tokenizer.c - tests of the tokenizers (daemon/engine/tokenizer*.c).
 *
 *  - llama.cpp's vocab fixtures (../shared/vocab/ggml-vocab-NAME.gguf with
 *    .inp/.out): every string, encoded without BOS and without special-token
 *    parsing, must give exactly the recorded ids; where the tokenizer is
 *    lossless the pieces must give back the input;
 *  - the golden tokenizations (../shared/golden/tokenize): all four id
 *    lists of every case, and the vocab strings of the pieces;
 *  - the contracts of tokenizer.h: -ENOSPC, empty input, invalid UTF-8 and
 *    NUL bytes, pieces of byte and control tokens, refused metadata;
 *  - speed: 100 KB inputs (text, one long word, one long space run) must
 *    tokenize fast, which needs the O(n log n) merge loops.
 */
#include "gguf.h"
#include "tokenizer.h"

#include "testutil.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- helpers ------------------------------------------------------------ */

static struct tok_vocab *load_vocab(const char *path)
{
    struct gguf_file *f = NULL;
    char err[256] = "";
    int rc = gguf_open(path, &f, err, sizeof err);
    ck_assert_msg(rc == 0, "gguf_open(%s): %d %s", path, rc, err);
    struct tok_vocab *v = NULL;
    rc = tok_load(f, &v, err, sizeof err);
    gguf_close(f); /* the vocab must not point into the file */
    ck_assert_msg(rc == 0, "tok_load(%s): %d %s", path, rc, err);
    return v;
}

/* Encode into a malloc'd array; *n receives the count. */
static int32_t *encode(const struct tok_vocab *v, const char *s, size_t len, bool add_special,
                       bool parse_special, size_t *n)
{
    size_t need = 0;
    int rc = tok_encode(v, s, len, add_special, parse_special, NULL, 0, &need);
    ck_assert_msg(rc == 0 || rc == -ENOSPC, "tok_encode sizing: %d", rc);
    int32_t *ids = malloc((need ? need : 1) * sizeof(int32_t));
    ck_assert_ptr_nonnull(ids);
    size_t got = 0;
    rc = tok_encode(v, s, len, add_special, parse_special, ids, need, &got);
    ck_assert_msg(rc == 0 && got == need, "tok_encode: %d (%zu vs %zu)", rc, got, need);
    for (size_t i = 0; i < got; i++)
        ck_assert_msg(ids[i] >= 0 && (uint32_t)ids[i] < tok_n_vocab(v), "id %d out of range",
                      ids[i]);
    *n = got;
    return ids;
}

/* Concatenated pieces of ids into a malloc'd buffer. */
static char *detok(const struct tok_vocab *v, const int32_t *ids, size_t n, bool special,
                   size_t *len)
{
    size_t cap = 64, w = 0;
    char *out = malloc(cap);
    ck_assert_ptr_nonnull(out);
    for (size_t i = 0; i < n; i++) {
        int k = tok_piece(v, ids[i], NULL, 0, special);
        ck_assert_int_ge(k, 0);
        while (w + (size_t)k + 1 > cap) {
            cap *= 2;
            out = realloc(out, cap);
            ck_assert_ptr_nonnull(out);
        }
        ck_assert_int_eq(tok_piece(v, ids[i], out + w, (size_t)k, special), k);
        w += (size_t)k;
    }
    out[w] = 0;
    *len = w;
    return out;
}

static char *ids_str(const int32_t *ids, size_t n)
{
    static char buf[4096];
    size_t w = 0;
    buf[0] = 0;
    for (size_t i = 0; i < n && w + 16 < sizeof buf; i++)
        w += (size_t)snprintf(buf + w, sizeof buf - w, " %d", ids[i]);
    return buf;
}

/* ---- llama.cpp vocab fixtures ------------------------------------------- */

static const struct fixture {
    const char *name;
    enum tok_model model;
    bool lossless; /* pieces give back the input (SPM: after the space prefix) */
} fixtures[] = {
    {"llama-spm", TOK_MODEL_SPM, true},    {"phi-3", TOK_MODEL_SPM, true},
    {"gpt-2", TOK_MODEL_BPE, true},        {"mpt", TOK_MODEL_BPE, true},
    {"falcon", TOK_MODEL_BPE, true},       {"refact", TOK_MODEL_BPE, true},
    {"starcoder", TOK_MODEL_BPE, true},    {"deepseek-coder", TOK_MODEL_BPE, true},
    {"deepseek-llm", TOK_MODEL_BPE, true}, {"bert-bge", TOK_MODEL_WPM, false},
};
#define N_FIXTURES (sizeof fixtures / sizeof fixtures[0])

START_TEST(test_vocab_fixture)
{
    const struct fixture *fx = &fixtures[_i];
    char rel[256];
    snprintf(rel, sizeof rel, "vocab/ggml-vocab-%s.gguf", fx->name);
    struct tok_vocab *v = load_vocab(tu_path(rel));
    ck_assert_int_eq(tok_model(v), fx->model);

    snprintf(rel, sizeof rel, "vocab/ggml-vocab-%s.gguf.inp", fx->name);
    size_t inp_len = 0, out_len = 0;
    char *inp = tu_read_file(tu_path(rel), &inp_len);
    ck_assert_msg(inp != NULL, "cannot read %s", rel);
    snprintf(rel, sizeof rel, "vocab/ggml-vocab-%s.gguf.out", fx->name);
    char *exp = tu_read_file(tu_path(rel), &out_len);
    ck_assert_msg(exp != NULL, "cannot read %s", rel);

    /* Strings are separated (and the last one ended) by this line. */
    static const char sep[] = "\n__ggml_vocab_test__\n";
    const size_t sep_len = sizeof sep - 1;
    size_t pos = 0, line_pos = 0, n_cases = 0, n_roundtrip = 0;
    for (;;) {
        const char *end = memmem(inp + pos, inp_len - pos, sep, sep_len);
        if (!end)
            break;
        size_t len = (size_t)(end - (inp + pos));
        const char *text = inp + pos;

        /* The expected line: space-separated ids. */
        ck_assert_msg(line_pos <= out_len, "%s: .out has too few lines", fx->name);
        const char *nl = memchr(exp + line_pos, '\n', out_len - line_pos);
        size_t line_end = nl ? (size_t)(nl - exp) : out_len;
        int32_t want[1024];
        size_t n_want = 0;
        for (char *p = exp + line_pos; p < exp + line_end;) {
            char *q;
            long x = strtol(p, &q, 10);
            if (q == p)
                break;
            ck_assert(n_want < 1024);
            want[n_want++] = (int32_t)x;
            p = q;
        }
        line_pos = line_end + 1;

        size_t n = 0;
        int32_t *ids = encode(v, text, len, false, false, &n);
        bool same = n == n_want && memcmp(ids, want, n * sizeof(int32_t)) == 0;
        if (!same) {
            char got_s[4096];
            snprintf(got_s, sizeof got_s, "%s", ids_str(ids, n));
            ck_abort_msg("%s case %zu (\"%.*s\"): got [%s ] want [%s ]", fx->name, n_cases,
                         (int)(len > 60 ? 60 : len), text, got_s, ids_str(want, n_want));
        }
        if (fx->lossless) {
            size_t dl = 0;
            char *d = detok(v, ids, n, false, &dl);
            const char *dd = d;
            if (fx->model == TOK_MODEL_SPM && len > 0) {
                ck_assert_msg(dl > 0 && d[0] == ' ', "%s case %zu: no space prefix", fx->name,
                              n_cases);
                dd++;
                dl--;
            }
            ck_assert_msg(dl == len && memcmp(dd, text, len) == 0,
                          "%s case %zu: pieces \"%s\" != input", fx->name, n_cases, dd);
            free(d);
            n_roundtrip++;
        }
        free(ids);
        n_cases++;
        pos = (size_t)(end - inp) + sep_len;
    }
    ck_assert_msg(n_cases >= 40, "%s: only %zu cases parsed", fx->name, n_cases);
    fprintf(stderr, "fixture %-15s %zu/%zu cases match, %zu round-trips\n", fx->name, n_cases,
            n_cases, n_roundtrip);
    free(inp);
    free(exp);
    tok_free(v);
}
END_TEST

/* ---- golden tokenizations ----------------------------------------------- */

static void check_list(json_t *c, const char *key, const int32_t *ids, size_t n, const char *golden,
                       size_t ci)
{
    json_t *arr = json_object_get(c, key);
    ck_assert_msg(json_is_array(arr), "%s case %zu: no %s", golden, ci, key);
    size_t m = json_array_size(arr);
    bool same = m == n;
    for (size_t i = 0; same && i < n; i++)
        same = json_integer_value(json_array_get(arr, i)) == ids[i];
    if (!same) {
        char got_s[4096];
        snprintf(got_s, sizeof got_s, "%s", ids_str(ids, n));
        int32_t want[1024];
        for (size_t i = 0; i < m && i < 1024; i++)
            want[i] = (int32_t)json_integer_value(json_array_get(arr, i));
        ck_abort_msg("%s case %zu %s (%s): got [%s ] want [%s ]", golden, ci, key,
                     json_string_value(json_object_get(c, "text")), got_s,
                     ids_str(want, m < 1024 ? m : 1024));
    }
}

static void run_golden(const char *golden, const char *vocab)
{
    struct tok_vocab *v = load_vocab(tu_path(vocab));
    json_error_t jerr;
    json_t *root = json_load_file(tu_path(golden), 0, &jerr);
    ck_assert_msg(root != NULL, "%s: %s", golden, jerr.text);
    ck_assert_int_eq(json_integer_value(json_object_get(root, "n_vocab")), tok_n_vocab(v));
    ck_assert_int_eq(json_integer_value(json_object_get(root, "bos_id")), tok_bos(v));
    ck_assert_int_eq(json_integer_value(json_object_get(root, "eos_id")), tok_eos(v));
    ck_assert(tok_add_bos(v));
    json_t *cases = json_object_get(root, "cases");
    ck_assert(json_array_size(cases) > 0);
    for (size_t ci = 0; ci < json_array_size(cases); ci++) {
        json_t *c = json_array_get(cases, ci);
        const char *text = json_string_value(json_object_get(c, "text"));
        ck_assert_ptr_nonnull(text);
        size_t len = json_string_length(json_object_get(c, "text"));
        static const struct {
            const char *key;
            bool bos, special;
        } lists[] = {{"ids_with_bos", true, false},
                     {"ids_no_bos", false, false},
                     {"ids_with_bos_parse_special", true, true},
                     {"ids_no_bos_parse_special", false, true}};
        for (size_t k = 0; k < 4; k++) {
            size_t n = 0;
            int32_t *ids = encode(v, text, len, lists[k].bos, lists[k].special, &n);
            check_list(c, lists[k].key, ids, n, golden, ci);
            if (k == 1) {
                json_t *pieces = json_object_get(c, "pieces_no_bos");
                ck_assert_uint_eq(json_array_size(pieces), n);
                for (size_t i = 0; i < n; i++)
                    ck_assert_str_eq(tok_text(v, ids[i]),
                                     json_string_value(json_array_get(pieces, i)));
                /* SPM decodes losslessly: the pieces are " " + text. */
                size_t dl = 0;
                char *d = detok(v, ids, n, false, &dl);
                if (len > 0)
                    ck_assert_msg(dl == len + 1 && d[0] == ' ' && memcmp(d + 1, text, len) == 0,
                                  "%s case %zu: decoded \"%s\"", golden, ci, d);
                free(d);
            }
            free(ids);
        }
    }
    fprintf(stderr, "golden %s: %zu cases x 4 lists match\n", golden, json_array_size(cases));
    json_decref(root);
    tok_free(v);
}

START_TEST(test_golden_tok512)
{
    run_golden("golden/tokenize/tok512.json", "models/stories260K.gguf");
}
END_TEST

START_TEST(test_golden_llama_spm)
{
    run_golden("golden/tokenize/llama-spm-32000.json", "golden/tokenize/ggml-vocab-llama-spm.gguf");
}
END_TEST

/* ---- contracts ---------------------------------------------------------- */

START_TEST(test_enospc)
{
    struct tok_vocab *v = load_vocab(tu_path("models/stories260K.gguf"));
    const char *s = "Hello world, once upon a time";
    size_t full_n = 0;
    int32_t *full = encode(v, s, strlen(s), true, false, &full_n);
    ck_assert_uint_gt(full_n, 4);

    int32_t buf[64];
    for (size_t cap = 0; cap < full_n; cap++) {
        for (size_t i = 0; i < 64; i++)
            buf[i] = -7;
        size_t n = 0;
        int rc = tok_encode(v, s, strlen(s), true, false, buf, cap, &n);
        ck_assert_int_eq(rc, -ENOSPC);
        ck_assert_uint_eq(n, full_n); /* the full count, also when it exceeds cap */
        ck_assert(memcmp(buf, full, cap * sizeof(int32_t)) == 0);
        ck_assert_int_eq(buf[cap], -7); /* nothing written past cap */
    }
    size_t n = 0;
    ck_assert_int_eq(tok_encode(v, s, strlen(s), true, false, buf, full_n, &n), 0);
    ck_assert_uint_eq(n, full_n);
    ck_assert_int_eq(tok_encode(v, NULL, 0, true, false, NULL, 0, &n), -ENOSPC);
    ck_assert_uint_eq(n, 1);
    free(full);
    tok_free(v);
}
END_TEST

START_TEST(test_empty)
{
    static const char *const vocabs[] = {"models/stories260K.gguf", "vocab/ggml-vocab-gpt-2.gguf",
                                         "vocab/ggml-vocab-bert-bge.gguf",
                                         "vocab/ggml-vocab-deepseek-llm.gguf"};
    for (size_t k = 0; k < 4; k++) {
        struct tok_vocab *v = load_vocab(tu_path(vocabs[k]));
        int32_t ids[4];
        size_t n = 99;
        ck_assert_int_eq(tok_encode(v, "", 0, false, true, ids, 4, &n), 0);
        ck_assert_uint_eq(n, 0);
        ck_assert_int_eq(tok_encode(v, "", 0, true, true, ids, 4, &n), 0);
        size_t want = tok_add_bos(v) ? 1 : 0;
        if (tok_model(v) == TOK_MODEL_WPM)
            want = 2; /* [CLS] [SEP] */
        ck_assert_uint_eq(n, want);
        if (want)
            ck_assert_int_eq(ids[0], tok_bos(v));
        tok_free(v);
    }
    /* "" with BOS -> [bos] (llama SPM) */
    struct tok_vocab *v = load_vocab(tu_path("models/stories260K.gguf"));
    int32_t id = -1;
    size_t n = 0;
    ck_assert_int_eq(tok_encode(v, "", 0, true, false, &id, 1, &n), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(id, 1);
    tok_free(v);
}
END_TEST

START_TEST(test_invalid_utf8_and_nul)
{
    static const char text[] =
        "a\xff\xfe b\x80\xc3 \xe2\x82 \xf0\x9f\x98 \xed\xa0\x80 \xf4\x90\x80\x80"
        " c\0d\0\0 \xc0\x80 end\xe2";
    const size_t len = sizeof text - 1;
    static const char *const vocabs[] = {"models/stories260K.gguf",
                                         "vocab/ggml-vocab-llama-spm.gguf",
                                         "vocab/ggml-vocab-gpt-2.gguf",
                                         "vocab/ggml-vocab-deepseek-llm.gguf",
                                         "vocab/ggml-vocab-deepseek-coder.gguf",
                                         "vocab/ggml-vocab-falcon.gguf",
                                         "vocab/ggml-vocab-bert-bge.gguf"};
    for (size_t k = 0; k < sizeof vocabs / sizeof vocabs[0]; k++) {
        struct tok_vocab *v = load_vocab(tu_path(vocabs[k]));
        for (int ps = 0; ps < 2; ps++) {
            size_t n = 0;
            int32_t *ids = encode(v, text, len, true, ps, &n);
            ck_assert_uint_gt(n, 2);
            size_t dl = 0;
            char *d = detok(v, ids, n, false, &dl);
            if (tok_model(v) == TOK_MODEL_SPM) {
                /* Byte fallback keeps every byte, NULs and invalid ones. An
                 * invalid lead byte can swallow part of an escaped space, which
                 * then comes back as U+2581 bytes (as in llama.cpp). */
                size_t w = 0;
                for (size_t i = 0; i < dl; i++) {
                    if (dl - i >= 3 && memcmp(d + i, "\xe2\x96\x81", 3) == 0) {
                        d[w++] = ' ';
                        i += 2;
                    } else {
                        d[w++] = d[i];
                    }
                }
                ck_assert_uint_eq(w, len + 1);
                ck_assert(d[0] == ' ' && memcmp(d + 1, text, len) == 0);
            }
            free(d);
            free(ids);
        }
        /* every prefix too (cuts inside sequences) */
        for (size_t cut = 0; cut <= len; cut++) {
            size_t n = 0;
            int32_t *ids = encode(v, text, cut, false, false, &n);
            free(ids);
        }
        tok_free(v);
    }
    /* NUL bytes are plain text: <0x00> in the llama vocab */
    struct tok_vocab *v = load_vocab(tu_path("vocab/ggml-vocab-llama-spm.gguf"));
    size_t n = 0;
    int32_t *ids = encode(v, "\0", 1, false, false, &n);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(tok_text(v, ids[0]), "\xe2\x96\x81");
    ck_assert_str_eq(tok_text(v, ids[1]), "<0x00>");
    free(ids);
    tok_free(v);
}
END_TEST

START_TEST(test_piece)
{
    struct tok_vocab *v = load_vocab(tu_path("vocab/ggml-vocab-llama-spm.gguf"));
    char buf[32];
    /* byte tokens */
    ck_assert_str_eq(tok_text(v, 13), "<0x0A>");
    ck_assert_int_eq(tok_type_of(v, 13), TOK_TYPE_BYTE);
    ck_assert_int_eq(tok_piece(v, 13, buf, sizeof buf, false), 1);
    ck_assert_int_eq(buf[0], '\n');
    ck_assert_int_eq(tok_piece(v, 3 + 0xff, buf, sizeof buf, false), 1);
    ck_assert_int_eq((unsigned char)buf[0], 0xff);
    /* control tokens: "" unless render_special */
    ck_assert_int_eq(tok_type_of(v, 1), TOK_TYPE_CONTROL);
    ck_assert_int_eq(tok_piece(v, 1, buf, sizeof buf, false), 0);
    ck_assert_int_eq(tok_piece(v, 1, buf, sizeof buf, true), 3);
    ck_assert(memcmp(buf, "<s>", 3) == 0);
    ck_assert_int_eq(tok_type_of(v, 0), TOK_TYPE_UNKNOWN);
    ck_assert_int_eq(tok_piece(v, 0, buf, sizeof buf, false), 0);
    ck_assert_int_eq(tok_piece(v, 0, buf, sizeof buf, true), 5);
    /* U+2581 -> space */
    ck_assert_str_eq(tok_text(v, 15043), "\xe2\x96\x81Hello");
    ck_assert_int_eq(tok_piece(v, 15043, buf, sizeof buf, false), 6);
    ck_assert(memcmp(buf, " Hello", 6) == 0);
    /* short buffer: full length returned, nothing past cap written */
    memset(buf, 'x', sizeof buf);
    ck_assert_int_eq(tok_piece(v, 15043, buf, 3, false), 6);
    ck_assert(memcmp(buf, " He", 3) == 0 && buf[3] == 'x');
    ck_assert_int_eq(tok_piece(v, 15043, NULL, 0, false), 6);
    /* out of range */
    ck_assert_int_eq(tok_piece(v, -1, buf, sizeof buf, false), -EINVAL);
    ck_assert_int_eq(tok_piece(v, 32000, buf, sizeof buf, false), -EINVAL);
    ck_assert_ptr_null(tok_text(v, 32000));
    ck_assert_ptr_null(tok_text(v, -5));
    ck_assert_int_eq(tok_type_of(v, 99999), TOK_TYPE_UNDEFINED);
    ck_assert(tok_is_eog(v, 2));
    ck_assert(!tok_is_eog(v, 1));
    ck_assert(!tok_add_eos(v));
    tok_free(v);

    /* byte-level BPE: "Ġworld" -> " world", control <|endoftext|> */
    v = load_vocab(tu_path("vocab/ggml-vocab-gpt-2.gguf"));
    ck_assert_int_eq(tok_model(v), TOK_MODEL_BPE);
    ck_assert_str_eq(tok_text(v, 995), "\xc4\xa0world");
    ck_assert_int_eq(tok_piece(v, 995, buf, sizeof buf, false), 6);
    ck_assert(memcmp(buf, " world", 6) == 0);
    ck_assert_int_eq(tok_piece(v, 198, buf, sizeof buf, false), 1); /* "Ċ" */
    ck_assert_int_eq(buf[0], '\n');
    ck_assert_int_eq(tok_piece(v, 50256, buf, sizeof buf, false), 0);
    ck_assert_int_eq(tok_piece(v, 50256, buf, sizeof buf, true), 13);
    ck_assert(tok_is_eog(v, 50256));
    ck_assert(!tok_add_bos(v));
    tok_free(v);
}
END_TEST

START_TEST(test_parse_special)
{
    /* control tokens only with parse_special; user-defined always */
    struct tok_vocab *v = load_vocab(tu_path("vocab/ggml-vocab-gpt-2.gguf"));
    const char *s = "a<|endoftext|>b";
    size_t n = 0;
    int32_t *ids = encode(v, s, strlen(s), false, true, &n);
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(ids[1], 50256);
    free(ids);
    ids = encode(v, s, strlen(s), false, false, &n);
    ck_assert_uint_gt(n, 3);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_ne(ids[i], 50256);
    free(ids);
    tok_free(v);

    v = load_vocab(tu_path("vocab/ggml-vocab-mpt.gguf"));
    ck_assert_int_eq(tok_type_of(v, 50276), TOK_TYPE_USER_DEFINED);
    const char *sp = tok_text(v, 50276); /* a run of spaces */
    ids = encode(v, sp, strlen(sp), false, false, &n);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(ids[0], 50276);
    free(ids);
    tok_free(v);
}
END_TEST

/* ---- refused metadata (GGUF built in memory) ---------------------------- */

struct gb {
    unsigned char *p;
    size_t n, cap;
};

static void gb_put(struct gb *b, const void *d, size_t n)
{
    while (b->n + n > b->cap) {
        b->cap = b->cap ? 2 * b->cap : 256;
        b->p = realloc(b->p, b->cap);
        ck_assert_ptr_nonnull(b->p);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}

static void gb_le(struct gb *b, uint64_t v, size_t n)
{
    unsigned char q[8];
    for (size_t i = 0; i < n; i++)
        q[i] = (unsigned char)(v >> (8 * i));
    gb_put(b, q, n);
}

static void gb_str(struct gb *b, const char *s)
{
    gb_le(b, strlen(s), 8);
    gb_put(b, s, strlen(s));
}

static void kv_str(struct gb *b, const char *k, const char *s)
{
    gb_str(b, k);
    gb_le(b, GGUF_VT_STRING, 4);
    gb_str(b, s);
}

static void kv_strs(struct gb *b, const char *k, const char *const *s, size_t n)
{
    gb_str(b, k);
    gb_le(b, GGUF_VT_ARRAY, 4);
    gb_le(b, GGUF_VT_STRING, 4);
    gb_le(b, n, 8);
    for (size_t i = 0; i < n; i++)
        gb_str(b, s[i]);
}

/* A vocab-only GGUF: model, optional pre, tokens, optional merges. */
static int load_mem(const char *model, const char *pre, bool merges, struct tok_vocab **v,
                    char *err, size_t errlen)
{
    static const char *const toks[] = {"<unk>", "<s>", "</s>", "a", "b", "ab", "\xc4\xa0", "c"};
    static const char *const mg[] = {"a b"};
    struct gb b = {0};
    gb_le(&b, GGUF_MAGIC, 4);
    gb_le(&b, 3, 4);
    gb_le(&b, 0, 8);
    gb_le(&b, 1 + (pre != NULL) + 1 + merges, 8);
    kv_str(&b, "tokenizer.ggml.model", model);
    if (pre)
        kv_str(&b, "tokenizer.ggml.pre", pre);
    kv_strs(&b, "tokenizer.ggml.tokens", toks, 8);
    if (merges)
        kv_strs(&b, "tokenizer.ggml.merges", mg, 1);
    while (b.n % 32)
        gb_le(&b, 0, 1);
    struct gguf_file *f = NULL;
    char gerr[256];
    int rc = gguf_open_mem(b.p, b.n, &f, gerr, sizeof gerr);
    ck_assert_msg(rc == 0, "gguf_open_mem: %s", gerr);
    rc = tok_load(f, v, err, errlen);
    gguf_close(f);
    free(b.p);
    return rc;
}

START_TEST(test_refused)
{
    struct tok_vocab *v = NULL;
    char err[256] = "";
    ck_assert_int_eq(load_mem("t5", NULL, false, &v, err, sizeof err), -ENOTSUP);
    ck_assert_ptr_null(v);
    ck_assert_msg(strstr(err, "t5") && strstr(err, "tokenizer.ggml.model"), "message: %s", err);
    ck_assert_int_eq(load_mem("gpt2", "gpt-2", false, &v, err, sizeof err), -EINVAL);
    ck_assert_msg(strstr(err, "merges") != NULL, "message: %s", err);

    /* unknown pre-tokenizer: the default regex set */
    ck_assert_int_eq(load_mem("gpt2", "no-such-pre", true, &v, err, sizeof err), 0);
    size_t n = 0;
    int32_t *ids = encode(v, "ab a", 4, false, false, &n);
    ck_assert_uint_eq(n, 3); /* "ab" merged, then "Ġ" and "a" (no merge) */
    ck_assert_int_eq(ids[0], 5);
    ck_assert_int_eq(ids[1], 6);
    ck_assert_int_eq(ids[2], 3);
    free(ids);
    ck_assert_int_eq(tok_bos(v), -1); /* default 11 is beyond this vocab */
    tok_free(v);

    /* a tiny llama vocab: unknown characters fall back to unk (no byte tokens) */
    ck_assert_int_eq(load_mem("llama", NULL, false, &v, err, sizeof err), 0);
    ids = encode(v, "abz", 3, true, false, &n);
    /* <s>, then "\u2581" (3 bytes, none a token) and "z" each as <unk>, "ab" merged */
    static const int32_t want[] = {1, 0, 0, 0, 5, 0};
    ck_assert_uint_eq(n, 6);
    ck_assert(memcmp(ids, want, sizeof want) == 0);
    free(ids);
    tok_free(v);
    tok_free(NULL);
}
END_TEST

/* Every vocab file present loads, encodes and (SPM, BPE) decodes losslessly,
 * also those without fixtures (baichuan, gpt-neox: no pre-tokenizer name). */
START_TEST(test_all_vocabs)
{
    static const char text[] = " Hello, World!  It's 2024\n\tcaf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87 "
                               "\xf0\x9f\xa6\x99 x  ";
    const size_t len = sizeof text - 1;
    static const char *const names[] = {"baichuan", "bert-bge", "deepseek-coder", "deepseek-llm",
                                        "falcon",   "gpt-2",    "gpt-neox",       "llama-spm",
                                        "mpt",      "phi-3",    "refact",         "starcoder"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        char rel[128];
        snprintf(rel, sizeof rel, "vocab/ggml-vocab-%s.gguf", names[k]);
        struct tok_vocab *v = load_vocab(tu_path(rel));
        size_t n = 0;
        int32_t *ids = encode(v, text, len, false, false, &n);
        ck_assert_uint_gt(n, 5);
        if (tok_model(v) != TOK_MODEL_WPM) {
            size_t dl = 0;
            char *d = detok(v, ids, n, false, &dl);
            size_t skip = tok_model(v) == TOK_MODEL_SPM ? 1 : 0;
            ck_assert_msg(dl == len + skip && memcmp(d + skip, text, len) == 0,
                          "%s: decoded \"%s\"", names[k], d);
            free(d);
        }
        free(ids);
        tok_free(v);
    }
}
END_TEST

struct thread_arg {
    const struct tok_vocab *v;
    const char *text;
    size_t len, n;
    int32_t ids[512];
    int rc;
};

static void *encode_thread(void *p)
{
    struct thread_arg *a = p;
    for (int r = 0; r < 50 && a->rc == 0; r++)
        a->rc = tok_encode(a->v, a->text, a->len, true, true, a->ids, 512, &a->n);
    return NULL;
}

/* A loaded vocab is immutable: concurrent encodes give identical results. */
START_TEST(test_threads)
{
    static const char *const vocabs[] = {"vocab/ggml-vocab-llama-spm.gguf",
                                         "vocab/ggml-vocab-deepseek-llm.gguf",
                                         "vocab/ggml-vocab-bert-bge.gguf"};
    static const char text[] = "The quick brown fox <s> jumps over \xe4\xb8\xad\xe6\x96\x87 "
                               "the lazy dog 12345 <|endoftext|> caf\xc3\xa9!";
    for (size_t k = 0; k < 3; k++) {
        struct tok_vocab *v = load_vocab(tu_path(vocabs[k]));
        struct thread_arg a[4];
        pthread_t th[4];
        for (int i = 0; i < 4; i++) {
            a[i] = (struct thread_arg){.v = v, .text = text, .len = sizeof text - 1};
            ck_assert_int_eq(pthread_create(&th[i], NULL, encode_thread, &a[i]), 0);
        }
        for (int i = 0; i < 4; i++) {
            pthread_join(th[i], NULL);
            ck_assert_int_eq(a[i].rc, 0);
            ck_assert_uint_eq(a[i].n, a[0].n);
            ck_assert(memcmp(a[i].ids, a[0].ids, a[0].n * sizeof(int32_t)) == 0);
        }
        tok_free(v);
    }
}
END_TEST

/* ---- speed -------------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

START_TEST(test_speed)
{
    const size_t len = 100 * 1024;
    char *texts[4];
    for (int k = 0; k < 4; k++) {
        texts[k] = malloc(len);
        ck_assert_ptr_nonnull(texts[k]);
    }
    static const char prose[] = "Once upon a time, there was a little llama named Lily. She "
                                "liked to run; \xc3\xa9t\xc3\xa9 \xe2\x80\x94 caf\xc3\xa9 42! "
                                "\xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\xa6\x99\n";
    for (size_t i = 0; i < len; i++) {
        texts[0][i] = prose[i % (sizeof prose - 1)];
        texts[1][i] = 'a';
        texts[2][i] = ' ';
        texts[3][i] = "\xe4\xb8\xad\xe6\x96\x87\xe6\xb5\x8b\xe8\xaf\x95 "[i % 13];
    }
    texts[0][len - 1] = '.';
    const char *mult = getenv("CK_TIMEOUT_MULTIPLIER");
    const double slow = mult ? fmax(atof(mult), 1.0) : 1.0;
    static const char *const vocabs[] = {
        "vocab/ggml-vocab-llama-spm.gguf",    "vocab/ggml-vocab-gpt-2.gguf",
        "vocab/ggml-vocab-deepseek-llm.gguf", "vocab/ggml-vocab-deepseek-coder.gguf",
        "vocab/ggml-vocab-mpt.gguf",          "vocab/ggml-vocab-bert-bge.gguf"};
    for (size_t k = 0; k < sizeof vocabs / sizeof vocabs[0]; k++) {
        struct tok_vocab *v = load_vocab(tu_path(vocabs[k]));
        for (int t = 0; t < 4; t++) {
            double t0 = now_s();
            size_t n = 0;
            int32_t *ids = encode(v, texts[t], len, true, true, &n);
            double dt = now_s() - t0;
            fprintf(stderr, "speed %-40s %s: 100 KB -> %zu tokens in %.3f s\n", vocabs[k],
                    t == 0   ? "prose"
                    : t == 1 ? "one word"
                    : t == 2 ? "spaces"
                             : "CJK",
                    n, dt);
            /* A guard against super-linear blowups on long runs of one
             * class (a quadratic merge loop takes minutes here), not a
             * speed target: 10 s, times CK_TIMEOUT_MULTIPLIER for sanitizer
             * and valgrind runs. */
            ck_assert_msg(dt < 10.0 * slow, "%s: %.2f s for 100 KB", vocabs[k], dt);
            free(ids);
        }
        tok_free(v);
    }
    for (int k = 0; k < 4; k++)
        free(texts[k]);
}
END_TEST

static Suite *tokenizer_suite(void)
{
    Suite *s = suite_create("tokenizer");
    TCase *tc = tcase_create("fixtures");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_vocab_fixture, 0, (int)N_FIXTURES);
    tcase_add_test(tc, test_golden_tok512);
    tcase_add_test(tc, test_golden_llama_spm);
    suite_add_tcase(s, tc);

    tc = tcase_create("contracts");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_enospc);
    tcase_add_test(tc, test_empty);
    tcase_add_test(tc, test_invalid_utf8_and_nul);
    tcase_add_test(tc, test_piece);
    tcase_add_test(tc, test_parse_special);
    tcase_add_test(tc, test_refused);
    tcase_add_test(tc, test_all_vocabs);
    tcase_add_test(tc, test_threads);
    suite_add_tcase(s, tc);

    tc = tcase_create("speed");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_speed);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    tu_shared();
    return tu_run_suite(tokenizer_suite());
}
