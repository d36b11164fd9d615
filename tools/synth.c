/* synth.c - synthetic llama-architecture GGUF models (see synth.h): presets,
 * tensor plan, metadata and tokenizer, deterministic weight generation and
 * parallel quantization streamed through the GGUF writer.
 */
#include "synth.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "gguf.h"
#include "gguf_writer.h"
#include "threadpool.h"

/* ---- presets ---- */

static const struct synth_preset sy_presets[] = {
    {.name = "tiny", .desc = "test model: dim 256, 2 layers, 4/2 heads, FFN 512, vocab 512",
     .n_embd = 256, .n_layer = 2, .n_head = 4, .n_head_kv = 2, .n_ff = 512, .n_vocab = 512,
     .n_ctx = 512, .rope_base = 10000.0f, .rms_eps = 1e-5f},
    {.name = "tiny-odd",
     .desc = "test model: dim 64, FFN 176 (F16 fallbacks), tied output, llama3 rope_freqs",
     .n_embd = 64, .n_layer = 2, .n_head = 4, .n_head_kv = 2, .n_ff = 176, .n_vocab = 320,
     .n_ctx = 1024, .rope_base = 500000.0f, .rms_eps = 1e-5f, .tied_output = true,
     .rope_factor = 8.0f, .rope_low_freq_factor = 1.0f, .rope_high_freq_factor = 4.0f,
     .rope_orig_ctx = 256},
    {.name = "tinyllama-1.1b", .desc = "TinyLlama 1.1B: dim 2048, 22 layers, 32/4 heads",
     .n_embd = 2048, .n_layer = 22, .n_head = 32, .n_head_kv = 4, .n_ff = 5632,
     .n_vocab = 32000, .n_ctx = 2048, .rope_base = 10000.0f, .rms_eps = 1e-5f},
    {.name = "llama-3.2-1b",
     .desc = "Llama 3.2 1B: dim 2048, 16 layers, 32/8 heads, tied, llama3 rope scaling",
     .n_embd = 2048, .n_layer = 16, .n_head = 32, .n_head_kv = 8, .head_dim = 64,
     .n_ff = 8192, .n_vocab = 128256, .n_ctx = 131072, .rope_base = 500000.0f,
     .rms_eps = 1e-5f, .tied_output = true, .rope_factor = 32.0f,
     .rope_low_freq_factor = 1.0f, .rope_high_freq_factor = 4.0f, .rope_orig_ctx = 8192},
    {.name = "llama-3-8b", .desc = "Llama 3 8B: dim 4096, 32 layers, 32/8 heads",
     .n_embd = 4096, .n_layer = 32, .n_head = 32, .n_head_kv = 8, .n_ff = 14336,
     .n_vocab = 128256, .n_ctx = 8192, .rope_base = 500000.0f, .rms_eps = 1e-5f},
};

#define SY_N_PRESETS (sizeof sy_presets / sizeof sy_presets[0])

size_t synth_n_presets(void)
{
    return SY_N_PRESETS;
}

const struct synth_preset *synth_preset_at(size_t i)
{
    return i < SY_N_PRESETS ? &sy_presets[i] : NULL;
}

const struct synth_preset *synth_preset_find(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < SY_N_PRESETS; i++)
        if (strcasecmp(sy_presets[i].name, name) == 0)
            return &sy_presets[i];
    return NULL;
}

static uint32_t sy_head_dim(const struct synth_preset *p)
{
    return p->head_dim ? p->head_dim : p->n_embd / p->n_head;
}

/* ---- types ---- */

/* Writable base types: llama_ftype number and whether output.weight becomes
 * Q6_K (llama-quantize's default recipe for these). */
static const struct {
    enum dt_type type;
    int ftype;
    bool q6k_output;
} sy_types[] = {
    {DT_F32, 0, false},  {DT_F16, 1, false},  {DT_BF16, 32, false}, {DT_Q8_0, 7, false},
    {DT_Q4_0, 2, true},  {DT_Q4_1, 3, true},  {DT_Q5_0, 8, true},   {DT_Q5_1, 9, true},
    {DT_Q2_K, 10, true}, {DT_Q3_K, 12, true}, {DT_Q4_K, 15, true},  {DT_Q5_K, 17, true},
    {DT_Q6_K, 18, false},
};

#define SY_N_TYPES (sizeof sy_types / sizeof sy_types[0])

static int sy_type_index(enum dt_type t)
{
    for (size_t i = 0; i < SY_N_TYPES; i++)
        if (sy_types[i].type == t)
            return (int)i;
    return -1;
}

bool synth_type_ok(enum dt_type t)
{
    return sy_type_index(t) >= 0;
}

int synth_ftype(enum dt_type t)
{
    int i = sy_type_index(t);
    return i < 0 ? -1 : sy_types[i].ftype;
}

/* ---- plan ---- */

static int sy_plan_add(struct synth_tensor *plan, size_t *n, const char *name,
                       enum dt_type type, uint32_t n_dims, uint64_t ne0, uint64_t ne1,
                       enum synth_init init, float std)
{
    struct synth_tensor *t = &plan[*n];
    memset(t, 0, sizeof *t);
    int len = snprintf(t->name, sizeof t->name, "%s", name);
    if (len < 0 || (size_t)len >= sizeof t->name)
        return -ENAMETOOLONG;
    const struct dt_traits *tr = dt_get(type);
    if (!tr || tr->block_size == 0)
        return -ENOTSUP;
    if (ne0 % tr->block_size != 0) {
        type = DT_F16;
        t->fallback = true;
    }
    t->type = type;
    t->n_dims = n_dims;
    t->ne[0] = ne0;
    t->ne[1] = n_dims > 1 ? ne1 : 1;
    t->init = init;
    t->std = std;
    t->index = (uint32_t)*n;
    (*n)++;
    return 0;
}

int synth_plan(const struct synth_params *p, uint32_t n_vocab, struct synth_tensor **out,
               size_t *n_out)
{
    if (!p || !p->preset || !out || !n_out || n_vocab == 0)
        return -EINVAL;
    const struct synth_preset *ps = p->preset;
    int ti = sy_type_index(p->type);
    if (ti < 0)
        return -ENOTSUP;
    if (ps->n_head == 0 || ps->n_head_kv == 0 || ps->n_head % ps->n_head_kv != 0 ||
        ps->n_layer == 0 || ps->n_embd == 0 || ps->n_ff == 0 || sy_head_dim(ps) == 0 ||
        sy_head_dim(ps) % 2 != 0)
        return -EINVAL;

    size_t cap = 4 + 9 * (size_t)ps->n_layer;
    struct synth_tensor *plan = calloc(cap, sizeof *plan);
    if (!plan)
        return -ENOMEM;
    size_t n = 0;
    int rc = 0;
    const enum dt_type base = p->type;
    const uint64_t d = ps->n_embd, hd = sy_head_dim(ps);
    const uint64_t q_out = hd * ps->n_head, kv_out = hd * ps->n_head_kv;
    const float s_embd = 1.0f / sqrtf((float)d);

    if (ps->rope_factor > 0.0f)
        rc = sy_plan_add(plan, &n, "rope_freqs.weight", DT_F32, 1, hd / 2, 1,
                         SYNTH_INIT_ROPE_FREQS, 0.0f);
    if (!rc)
        rc = sy_plan_add(plan, &n, "token_embd.weight", base, 2, d, n_vocab, SYNTH_INIT_NORMAL,
                         1.0f);
    for (uint32_t l = 0; l < ps->n_layer && !rc; l++) {
        static const char *const names[] = {"attn_norm", "attn_q",   "attn_k",
                                            "attn_v",    "attn_output", "ffn_norm",
                                            "ffn_gate",  "ffn_up",   "ffn_down"};
        for (size_t k = 0; k < sizeof names / sizeof names[0] && !rc; k++) {
            char name[64];
            snprintf(name, sizeof name, "blk.%u.%s.weight", l, names[k]);
            uint64_t cols = d, rows = d;
            switch (k) {
            case 0:
            case 5:
                rc = sy_plan_add(plan, &n, name, DT_F32, 1, d, 1, SYNTH_INIT_NORM, 0.1f);
                continue;
            case 1: rows = q_out; break;
            case 2:
            case 3: rows = kv_out; break;
            case 4: cols = q_out; break;
            case 6:
            case 7: rows = ps->n_ff; break;
            case 8: cols = ps->n_ff; break;
            default: break;
            }
            float std = cols == d ? s_embd : 1.0f / sqrtf((float)cols);
            rc = sy_plan_add(plan, &n, name, base, 2, cols, rows, SYNTH_INIT_NORMAL, std);
        }
    }
    if (!rc)
        rc = sy_plan_add(plan, &n, "output_norm.weight", DT_F32, 1, d, 1, SYNTH_INIT_NORM, 0.1f);
    if (!rc && !ps->tied_output) {
        enum dt_type ot = (sy_types[ti].q6k_output && !p->pure) ? DT_Q6_K : base;
        rc = sy_plan_add(plan, &n, "output.weight", ot, 2, d, n_vocab, SYNTH_INIT_NORMAL, 0.15f);
    }
    if (rc) {
        free(plan);
        return rc;
    }
    *out = plan;
    *n_out = n;
    return 0;
}

void synth_plan_free(struct synth_tensor *plan)
{
    free(plan);
}

/* ---- weights ---- */

#define SY_GOLDEN UINT64_C(0x9e3779b97f4a7c15)

static inline uint64_t sy_mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* Llama3 rope scaling divisor of frequency pair i (of head_dim / 2). */
static float sy_rope_factor(const struct synth_preset *ps, uint64_t i)
{
    const double pi = 3.14159265358979323846;
    double hd = (double)sy_head_dim(ps);
    double freq = 1.0 / pow((double)ps->rope_base, (double)(2 * i) / hd);
    double wavelen = 2.0 * pi / freq;
    double lo_wavelen = (double)ps->rope_orig_ctx / ps->rope_low_freq_factor;
    double hi_wavelen = (double)ps->rope_orig_ctx / ps->rope_high_freq_factor;
    if (wavelen < hi_wavelen)
        return 1.0f;
    if (wavelen > lo_wavelen)
        return ps->rope_factor;
    double smooth = ((double)ps->rope_orig_ctx / wavelen - ps->rope_low_freq_factor) /
                    (ps->rope_high_freq_factor - ps->rope_low_freq_factor);
    return (float)(1.0 / ((1.0 - smooth) / ps->rope_factor + smooth));
}

/* Values k0 .. k0+n-1 of the stream `key`: four 16-bit uniforms summed
 * (mean 131070, variance (2^32 - 1) / 3), centred, times scale. Integer
 * arithmetic and one multiply per value, so every ISA gives the same bits.
 * The hot loop of synth: on x86-64 it is also compiled for AVX2 and AVX-512
 * (the 64-bit multiplies vectorize there, not with the baseline SSE2) and
 * chosen at run time (a plain CPU check: no ifunc, which some sanitizers
 * cannot start with). */
static inline __attribute__((always_inline)) void
sy_gen_normal_body(uint64_t key, uint64_t k0, uint64_t n, float scale, float *dst)
{
    for (uint64_t k = 0; k < n; k++) {
        uint64_t r = sy_mix(key + (k0 + k + 1) * SY_GOLDEN);
        int32_t s = (int32_t)(r & 0xffff) + (int32_t)((r >> 16) & 0xffff) +
                    (int32_t)((r >> 32) & 0xffff) + (int32_t)(r >> 48) - 131070;
        dst[k] = (float)s * scale;
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx2"))) static void sy_gen_normal_avx2(uint64_t key, uint64_t k0,
                                                               uint64_t n, float scale, float *dst)
{
    sy_gen_normal_body(key, k0, n, scale, dst);
}

__attribute__((target("avx512f,avx512dq,avx512vl,avx512bw"))) static void
sy_gen_normal_avx512(uint64_t key, uint64_t k0, uint64_t n, float scale, float *dst)
{
    sy_gen_normal_body(key, k0, n, scale, dst);
}
#endif

static void sy_gen_normal(uint64_t key, uint64_t k0, uint64_t n, float scale, float *dst)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (__builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")) {
        sy_gen_normal_avx512(key, k0, n, scale, dst);
        return;
    }
    if (__builtin_cpu_supports("avx2")) {
        sy_gen_normal_avx2(key, k0, n, scale, dst);
        return;
    }
#endif
    sy_gen_normal_body(key, k0, n, scale, dst);
}

void synth_tensor_fill(const struct synth_params *p, const struct synth_tensor *t,
                       uint64_t row0, uint64_t nrows, float *dst)
{
    const uint64_t cols = t->ne[0];
    if (t->init == SYNTH_INIT_ROPE_FREQS) {
        for (uint64_t r = 0; r < nrows; r++)
            for (uint64_t c = 0; c < cols; c++)
                dst[r * cols + c] = sy_rope_factor(p->preset, c);
        return;
    }
    /* Counter-based: value k of the tensor is a function of (key, k) only. */
    const uint64_t key =
        sy_mix(p->seed * SY_GOLDEN + sy_mix(t->index + UINT64_C(0x5851f42d4c957f2d)));
    const float scale = t->std * (float)(1.0 / sqrt((4294967296.0 - 1.0) / 3.0));
    const uint64_t n = nrows * cols;
    sy_gen_normal(key, row0 * cols, n, scale, dst);
    if (t->init == SYNTH_INIT_NORM)
        for (uint64_t k = 0; k < n; k++)
            dst[k] += 1.0f;
}

/* ---- vocab ---- */

struct sy_vocab {
    uint32_t n;
    char *text;             /* token bytes */
    struct gguf_str *toks;  /* views into text */
    float *scores;
    int32_t *types;
};

enum { SY_TOK_NORMAL = 1, SY_TOK_UNKNOWN = 2, SY_TOK_CONTROL = 3, SY_TOK_BYTE = 6 };

#define SY_TOK_MAX 16 /* bytes reserved per generated token */

static void sy_vocab_free(struct sy_vocab *v)
{
    free(v->text);
    free(v->toks);
    free(v->scores);
    free(v->types);
    memset(v, 0, sizeof *v);
}

/* <unk> <s> </s>, the 256 byte tokens, then unique pieces: "▁", "a".."z",
 * "▁a".."▁z", "▁aa".. (bijective base 26), scores decreasing. */
static int sy_vocab_generate(struct sy_vocab *v, uint32_t n)
{
    static const char spm_space[] = "\xe2\x96\x81"; /* U+2581 */
    if (n < 3 + 256 + 1)
        return -EINVAL;
    v->n = n;
    v->text = malloc((size_t)n * SY_TOK_MAX);
    v->toks = calloc(n, sizeof *v->toks);
    v->scores = calloc(n, sizeof *v->scores);
    v->types = calloc(n, sizeof *v->types);
    if (!v->text || !v->toks || !v->scores || !v->types) {
        sy_vocab_free(v);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < n; i++) {
        char *s = v->text + (size_t)i * SY_TOK_MAX;
        int len;
        if (i < 3) {
            static const char *const specials[] = {"<unk>", "<s>", "</s>"};
            len = snprintf(s, SY_TOK_MAX, "%s", specials[i]);
            v->types[i] = i == 0 ? SY_TOK_UNKNOWN : SY_TOK_CONTROL;
        } else if (i < 3 + 256) {
            len = snprintf(s, SY_TOK_MAX, "<0x%02X>", i - 3);
            v->types[i] = SY_TOK_BYTE;
        } else {
            uint32_t j = i - 259; /* index among normal pieces */
            v->types[i] = SY_TOK_NORMAL;
            v->scores[i] = -(float)j;
            if (j == 0) {
                len = snprintf(s, SY_TOK_MAX, "%s", spm_space);
            } else if (j <= 26) {
                len = snprintf(s, SY_TOK_MAX, "%c", 'a' + (int)(j - 1));
            } else {
                /* bijective base 26 of m >= 1, most significant letter first */
                char letters[8];
                size_t nl = 0;
                for (uint32_t m = j - 26; m > 0; m = (m - 1) / 26)
                    letters[nl++] = (char)('a' + (m - 1) % 26);
                len = snprintf(s, SY_TOK_MAX, "%s", spm_space);
                while (nl > 0)
                    s[len++] = letters[--nl];
                s[len] = '\0';
            }
        }
        v->toks[i] = (struct gguf_str){.ptr = s, .len = (uint64_t)len};
    }
    return 0;
}

static int sy_add_vocab_generated(struct gguf_w *w, const struct sy_vocab *v)
{
    struct gguf_value toks = {.type = GGUF_VT_ARRAY,
                              .arr = {.type = GGUF_VT_STRING, .n = v->n, .strs = v->toks}};
    int rc = gguf_w_add_str(w, "tokenizer.ggml.model", "llama");
    if (!rc)
        rc = gguf_w_add_str(w, "tokenizer.ggml.pre", "default");
    if (!rc)
        rc = gguf_w_add_value(w, "tokenizer.ggml.tokens", &toks);
    if (!rc)
        rc = gguf_w_add_arr(w, "tokenizer.ggml.scores", GGUF_VT_FLOAT32, v->scores, v->n);
    if (!rc)
        rc = gguf_w_add_arr(w, "tokenizer.ggml.token_type", GGUF_VT_INT32, v->types, v->n);
    if (!rc)
        rc = gguf_w_add_u32(w, "tokenizer.ggml.bos_token_id", 1);
    if (!rc)
        rc = gguf_w_add_u32(w, "tokenizer.ggml.eos_token_id", 2);
    if (!rc)
        rc = gguf_w_add_u32(w, "tokenizer.ggml.unknown_token_id", 0);
    if (!rc)
        rc = gguf_w_add_bool(w, "tokenizer.ggml.add_bos_token", true);
    if (!rc)
        rc = gguf_w_add_bool(w, "tokenizer.ggml.add_eos_token", false);
    return rc;
}

/* Every tokenizer.* key of src, same types and values. */
static int sy_add_vocab_copied(struct gguf_w *w, const struct gguf_file *src)
{
    static const char prefix[] = "tokenizer.";
    for (size_t i = 0; i < gguf_n_kv(src); i++) {
        const struct gguf_kv *kv = gguf_kv_at(src, i);
        if (kv->key.len < sizeof prefix - 1 || memcmp(kv->key.ptr, prefix, sizeof prefix - 1))
            continue;
        if (kv->key.len > GGUF_W_MAX_KEY || memchr(kv->key.ptr, '\0', (size_t)kv->key.len))
            return -EINVAL;
        char *key = malloc((size_t)kv->key.len + 1);
        if (!key)
            return -ENOMEM;
        memcpy(key, kv->key.ptr, (size_t)kv->key.len);
        key[kv->key.len] = '\0';
        int rc = gguf_w_add_value(w, key, &kv->v);
        free(key);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- metadata ---- */

static int sy_add_metadata(struct gguf_w *w, const struct synth_params *p, uint32_t n_vocab)
{
    const struct synth_preset *ps = p->preset;
    const uint32_t hd = sy_head_dim(ps);
    int rc = gguf_w_add_str(w, "general.architecture", "llama");
    if (!rc)
        rc = gguf_w_add_str(w, "general.name", ps->name);
    if (!rc)
        rc = gguf_w_add_u32(w, "llama.context_length", ps->n_ctx);
    if (!rc)
        rc = gguf_w_add_u32(w, "llama.embedding_length", ps->n_embd);
    if (!rc)
        rc = gguf_w_add_u32(w, "llama.block_count", ps->n_layer);
    if (!rc)
        rc = gguf_w_add_u32(w, "llama.feed_forward_length", ps->n_ff);
    if (!rc)
        rc = gguf_w_add_u32(w, "llama.rope.dimension_count", hd);
    if (!rc)
        rc = gguf_w_add_u32(w, "llama.attention.head_count", ps->n_head);
    if (!rc)
        rc = gguf_w_add_u32(w, "llama.attention.head_count_kv", ps->n_head_kv);
    if (!rc && hd * ps->n_head != ps->n_embd) {
        rc = gguf_w_add_u32(w, "llama.attention.key_length", hd);
        if (!rc)
            rc = gguf_w_add_u32(w, "llama.attention.value_length", hd);
    }
    if (!rc)
        rc = gguf_w_add_f32(w, "llama.attention.layer_norm_rms_epsilon", ps->rms_eps);
    if (!rc)
        rc = gguf_w_add_f32(w, "llama.rope.freq_base", ps->rope_base);
    if (!rc)
        rc = gguf_w_add_u32(w, "llama.vocab_size", n_vocab);
    if (!rc)
        rc = gguf_w_add_u32(w, "general.file_type", (uint32_t)synth_ftype(p->type));
    if (!rc && p->type != DT_F32)
        rc = gguf_w_add_u32(w, "general.quantization_version", 2);
    return rc;
}

/* ---- generation ---- */

#define SY_CHUNK_BYTES ((size_t)32 << 20) /* output bytes per parallel step */
#define SY_SCRATCH_VALUES ((size_t)16384) /* floats per thread scratch (minimum) */

struct sy_job {
    const struct synth_params *p;
    const struct synth_tensor *t;
    dt_from_float_fn from_float;
    size_t row_bytes;
    uint64_t row0, nrows;     /* this chunk */
    unsigned char *out;       /* chunk output */
    float **scratch;          /* one per thread */
    size_t scratch_values;
};

static void sy_job_run(void *arg, unsigned ith, unsigned nth)
{
    struct sy_job *j = arg;
    size_t lo, hi;
    tp_split((size_t)j->nrows, ith, nth, &lo, &hi);
    const uint64_t cols = j->t->ne[0];
    const size_t rows_per = j->scratch_values / cols;
    float *buf = j->scratch[ith];
    for (size_t r = lo; r < hi; r += rows_per) {
        size_t nr = hi - r < rows_per ? hi - r : rows_per;
        synth_tensor_fill(j->p, j->t, j->row0 + r, nr, buf);
        j->from_float(buf, j->out + r * j->row_bytes, nr * (size_t)cols);
    }
}

static void sy_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Generate, quantize and write every tensor of plan, in order. */
static int sy_write_tensors(struct gguf_w *w, const struct synth_params *p,
                            const struct synth_tensor *plan, size_t n, struct tp_pool *pool,
                            char *err, size_t errlen)
{
    const unsigned nth = tp_size(pool);
    size_t max_cols = 0, max_chunk = 0;
    for (size_t i = 0; i < n; i++) {
        size_t rb = dt_row_size(plan[i].type, (size_t)plan[i].ne[0]);
        size_t rows = SY_CHUNK_BYTES / rb ? SY_CHUNK_BYTES / rb : 1;
        if (rows > plan[i].ne[1])
            rows = (size_t)plan[i].ne[1];
        if (rows * rb > max_chunk)
            max_chunk = rows * rb;
        if (plan[i].ne[0] > max_cols)
            max_cols = (size_t)plan[i].ne[0];
    }
    size_t scratch_values = max_cols > SY_SCRATCH_VALUES ? max_cols : SY_SCRATCH_VALUES;
    unsigned char *out = malloc(max_chunk);
    float **scratch = calloc(nth, sizeof *scratch);
    int rc = out && scratch ? 0 : -ENOMEM;
    for (unsigned t = 0; t < nth && !rc; t++)
        if (!(scratch[t] = malloc(scratch_values * sizeof(float))))
            rc = -ENOMEM;
    if (rc)
        sy_err(err, errlen, "out of memory");

    for (size_t i = 0; i < n && !rc; i++) {
        const struct synth_tensor *t = &plan[i];
        const struct dt_traits *tr = dt_get(t->type);
        if (!tr || !tr->from_float) {
            rc = -ENOTSUP;
            sy_err(err, errlen, "no quantizer for type %s", dt_name(t->type));
            break;
        }
        struct sy_job job = {
            .p = p, .t = t, .from_float = tr->from_float,
            .row_bytes = dt_row_size(t->type, (size_t)t->ne[0]),
            .out = out, .scratch = scratch, .scratch_values = scratch_values,
        };
        uint64_t chunk_rows = max_chunk / job.row_bytes;
        for (uint64_t r = 0; r < t->ne[1] && !rc; r += chunk_rows) {
            job.row0 = r;
            job.nrows = t->ne[1] - r < chunk_rows ? t->ne[1] - r : chunk_rows;
            if (job.nrows >= nth)
                tp_run(pool, sy_job_run, &job);
            else
                sy_job_run(&job, 0, 1);
            rc = gguf_w_write_data(w, out, (size_t)job.nrows * job.row_bytes);
            if (rc)
                sy_err(err, errlen, "writing %s: %s", t->name, strerror(-rc));
        }
    }
    for (unsigned t = 0; scratch && t < nth; t++)
        free(scratch[t]);
    free(scratch);
    free(out);
    return rc;
}

static int sy_open_vocab(const struct synth_params *p, struct gguf_file **src, uint32_t *n_vocab,
                         char *err, size_t errlen)
{
    char msg[256] = "";
    int rc = gguf_open(p->vocab_from, src, msg, sizeof msg);
    if (rc) {
        sy_err(err, errlen, "%s: %s", p->vocab_from, msg[0] ? msg : strerror(-rc));
        return rc;
    }
    const struct gguf_array *toks;
    rc = gguf_get_arr(*src, "tokenizer.ggml.tokens", GGUF_VT_STRING, &toks);
    if (rc || toks->n == 0 || toks->n > UINT32_MAX) {
        sy_err(err, errlen, "%s: no usable tokenizer.ggml.tokens array", p->vocab_from);
        gguf_close(*src);
        *src = NULL;
        return rc ? rc : -EINVAL;
    }
    *n_vocab = (uint32_t)toks->n;
    return 0;
}

int synth_write(const char *path, const struct synth_params *p, struct synth_stats *st,
                char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!path || !p || !p->preset) {
        sy_err(err, errlen, "invalid arguments");
        return -EINVAL;
    }
    if (!synth_type_ok(p->type)) {
        sy_err(err, errlen, "type %s cannot be written", dt_name(p->type));
        return -ENOTSUP;
    }

    struct gguf_file *src = NULL;
    struct sy_vocab vocab = {0};
    struct synth_tensor *plan = NULL;
    struct gguf_w *w = NULL;
    struct tp_pool *pool = NULL;
    char *tmp = NULL;
    size_t n_tensors = 0;
    uint32_t n_vocab = p->preset->n_vocab;
    int rc;

    if (p->vocab_from) {
        rc = sy_open_vocab(p, &src, &n_vocab, err, errlen);
    } else {
        rc = sy_vocab_generate(&vocab, n_vocab);
        if (rc)
            sy_err(err, errlen, "cannot generate a vocab of %u tokens", n_vocab);
    }
    if (rc)
        goto out;
    rc = synth_plan(p, n_vocab, &plan, &n_tensors);
    if (rc) {
        sy_err(err, errlen, "preset %s: cannot plan tensors: %s", p->preset->name, strerror(-rc));
        goto out;
    }
    if (p->note) {
        for (size_t i = 0; i < n_tensors; i++) {
            if (!plan[i].fallback)
                continue;
            char msg[160];
            snprintf(msg, sizeof msg, "%s: row length %llu is not a multiple of the block size, "
                     "stored as F16", plan[i].name, (unsigned long long)plan[i].ne[0]);
            p->note(p->note_ctx, msg);
        }
    }
    rc = tp_create(p->n_threads, &pool);
    if (rc) {
        sy_err(err, errlen, "cannot start threads: %s", strerror(-rc));
        goto out;
    }
    size_t plen = strlen(path);
    tmp = malloc(plen + 5);
    if (!tmp) {
        rc = -ENOMEM;
        sy_err(err, errlen, "out of memory");
        goto out;
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    rc = gguf_w_open(tmp, &w);
    if (rc) {
        sy_err(err, errlen, "%s: %s", tmp, strerror(-rc));
        free(tmp);
        tmp = NULL; /* nothing to remove */
        goto out;
    }

    rc = sy_add_metadata(w, p, n_vocab);
    if (!rc)
        rc = src ? sy_add_vocab_copied(w, src) : sy_add_vocab_generated(w, &vocab);
    for (size_t i = 0; i < n_tensors && !rc; i++)
        rc = gguf_w_add_tensor(w, plan[i].name, plan[i].type, plan[i].n_dims, plan[i].ne);
    if (rc) {
        sy_err(err, errlen, "building the header: %s", strerror(-rc));
        goto out;
    }
    rc = gguf_w_write_header(w);
    if (rc) {
        sy_err(err, errlen, "writing %s: %s", tmp, strerror(-rc));
        goto out;
    }
    rc = sy_write_tensors(w, p, plan, n_tensors, pool, err, errlen);
    if (rc)
        goto out;
    if (st) {
        memset(st, 0, sizeof *st);
        st->bytes = gguf_w_file_size(w);
        st->n_tensors = n_tensors;
        st->n_vocab = n_vocab;
        for (size_t i = 0; i < n_tensors; i++) {
            st->n_params += plan[i].ne[0] * plan[i].ne[1];
            st->n_fallback += plan[i].fallback;
        }
    }
    rc = gguf_w_finish(w);
    if (rc) {
        sy_err(err, errlen, "closing %s: %s", tmp, strerror(-rc));
        goto out;
    }
    if (rename(tmp, path) != 0) {
        rc = -errno;
        sy_err(err, errlen, "renaming %s to %s: %s", tmp, path, strerror(-rc));
    }

out:
    gguf_w_free(w);
    if (rc && tmp)
        unlink(tmp);
    free(tmp);
    tp_free(pool);
    synth_plan_free(plan);
    sy_vocab_free(&vocab);
    gguf_close(src);
    return rc;
}
