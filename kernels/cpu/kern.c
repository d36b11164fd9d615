/* kern.c - run-time ISA detection (CPUID + XGETBV, INFERD_ISA override), the
 * kernel context and the parallel matrix product kern_matmul().
 *
 * kern_matmul: y (n, rows) = x (n, cols) . W (rows, cols)^T
 *   1. x is converted once into the context's work buffer in W's activation
 *      format (in parallel over tokens when there are several);
 *   2. output rows are split into contiguous ranges, one per pool thread.
 *      Decode (n == 1) streams each range once through a tile kernel; prefill
 *      (n > 1) walks the range in row tiles small enough to stay in cache and
 *      runs every token over a tile before moving on.
 */
#include "kern_impl.h"

#include <cpuid.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- ISA detection -------------------------------------------------------- */

static const char *const kern_isa_names[KERN_ISA_COUNT] = {
    [KERN_ISA_SCALAR] = "scalar",
    [KERN_ISA_AVX2] = "avx2",
    [KERN_ISA_AVX512] = "avx512",
    [KERN_ISA_AVX512VNNI] = "avx512vnni",
};

const char *kern_isa_name(enum kern_isa isa)
{
    if ((unsigned)isa >= KERN_ISA_COUNT)
        return "?";
    return kern_isa_names[isa];
}

static uint64_t kern_xgetbv0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (uint64_t)hi << 32 | lo;
}

/* Bit i set: ISA i usable (CPU support and OS-enabled register state). */
static unsigned kern_detect(void)
{
    unsigned mask = 1u << KERN_ISA_SCALAR;
    unsigned a, b, c, d;
    if (!__get_cpuid_count(1, 0, &a, &b, &c, &d))
        return mask;
    const bool osxsave = c & (1u << 27), avx = c & (1u << 28);
    const bool fma = c & (1u << 12), f16c = c & (1u << 29);
    if (!osxsave || !avx)
        return mask;
    const uint64_t xcr0 = kern_xgetbv0();
    if ((xcr0 & 0x6) != 0x6) /* SSE and AVX state */
        return mask;
    unsigned b7 = 0, c7 = 0, a71 = 0, max7 = 0;
    if (__get_cpuid_count(7, 0, &max7, &b7, &c7, &d) && max7 >= 1)
        __get_cpuid_count(7, 1, &a71, &b, &c, &d);
    const bool avx2 = b7 & (1u << 5);
    if (!(avx2 && fma && f16c))
        return mask;
    mask |= 1u << KERN_ISA_AVX2;
    const bool zmm_state = (xcr0 & 0xe6) == 0xe6; /* opmask, ZMM0-15 hi, ZMM16-31 */
    const bool f = b7 & (1u << 16), dq = b7 & (1u << 17), bw = b7 & (1u << 30),
               vl = b7 & (1u << 31);
    if (!(zmm_state && f && dq && bw && vl))
        return mask;
    mask |= 1u << KERN_ISA_AVX512;
    const bool vnni = c7 & (1u << 11), bf16 = a71 & (1u << 5);
    if (vnni && bf16)
        mask |= 1u << KERN_ISA_AVX512VNNI;
    return mask;
}

static unsigned kern_isa_mask(void)
{
    /* Detection is idempotent: a race only computes the same value twice. */
    static _Atomic unsigned cached;
    unsigned m = atomic_load_explicit(&cached, memory_order_relaxed);
    if (m == 0) {
        m = kern_detect();
        atomic_store_explicit(&cached, m, memory_order_relaxed);
    }
    return m;
}

bool kern_isa_supported(enum kern_isa isa)
{
    if ((unsigned)isa >= KERN_ISA_COUNT)
        return false;
    return kern_isa_mask() & (1u << isa);
}

enum kern_isa kern_isa_best(void)
{
    const char *env = getenv("INFERD_ISA");
    if (env && *env) {
        for (int i = 0; i < KERN_ISA_COUNT; i++) {
            if (strcasecmp(env, kern_isa_names[i]) == 0 && kern_isa_supported((enum kern_isa)i))
                return (enum kern_isa)i;
        }
    }
    for (int i = KERN_ISA_COUNT - 1; i > 0; i--) {
        if (kern_isa_supported((enum kern_isa)i))
            return (enum kern_isa)i;
    }
    return KERN_ISA_SCALAR;
}

/* ---- context ---------------------------------------------------------------- */

int kern_ctx_init(struct kern_ctx *ctx, enum kern_isa isa, struct tp_pool *pool)
{
    if (!ctx || (unsigned)isa >= KERN_ISA_COUNT)
        return -EINVAL;
    if (!kern_isa_supported(isa))
        return -ENOTSUP;
    ctx->isa = isa;
    ctx->pool = pool;
    ctx->work = NULL;
    ctx->work_size = 0;
    return 0;
}

void kern_ctx_free(struct kern_ctx *ctx)
{
    if (!ctx)
        return;
    free(ctx->work);
    ctx->work = NULL;
    ctx->work_size = 0;
}

static int kern_work_reserve(struct kern_ctx *ctx, size_t size)
{
    if (size <= ctx->work_size)
        return 0;
    if (size > SIZE_MAX - 4096)
        return -ENOMEM;
    size_t grow = ctx->work_size + ctx->work_size / 2;
    size = (size > grow ? size : grow);
    size = (size + 63) & ~(size_t)63; /* aligned_alloc wants a multiple */
    void *p = aligned_alloc(64, size);
    if (!p)
        return -ENOMEM;
    free(ctx->work);
    ctx->work = p;
    ctx->work_size = size;
    return 0;
}

/* ---- matrix product ------------------------------------------------------------ */

/* Output rows are handed out in multiples of this (tile kernels work on small
 * groups of rows; keeping ranges aligned keeps every call on the fast path). */
#define KERN_ROW_GRAIN 16
/* Bytes of weights per prefill row tile: small enough to stay in L2 while
 * every token runs over it. */
#define KERN_TILE_BYTES (64 * 1024)
/* Below this many multiply-adds a product runs on the calling thread only. */
#define KERN_PAR_MIN_WORK (1u << 16)

struct kern_mm_job {
    const struct kern_mat *w;
    size_t n;
    const float *x;
    size_t x_stride;
    float *y;
    size_t y_stride;
    uint8_t *act;     /* n converted activation rows */
    size_t act_row;   /* bytes per converted row (64-byte multiple) */
    enum dt_type act_type;
    enum kern_isa isa;
    kern_vec_dot_fn vec_dot;
    kern_tile_fn tile;
    const struct kern_tile_ops *tops; /* NULL: no tile kernel */
    bool split_tokens; /* few rows, many tokens: split tokens instead */
};

static void kern_mm_convert(void *arg, unsigned ith, unsigned nth)
{
    struct kern_mm_job *j = arg;
    size_t lo, hi;
    tp_split(j->n, ith, nth, &lo, &hi);
    for (size_t t = lo; t < hi; t++) {
        const float *x = j->x + t * j->x_stride;
        if (j->tops && j->tops->act_unit) { /* interleaved by unit, KERN_XG tokens a group */
            const size_t g = t / KERN_XG * KERN_XG, m = j->n - g < KERN_XG ? j->n - g : KERN_XG;
            const size_t unit = j->tops->act_unit;
            j->tops->act_units(x, j->act + g * j->act_row + (t - g) * unit, j->w->cols, m * unit);
        } else if (j->tops && j->tops->act_size) {
            j->tops->act_from_float(x, j->act + t * j->act_row, j->w->cols);
        } else {
            kern_quantize_act(j->isa, j->act_type, x, j->act + t * j->act_row, j->w->cols);
        }
    }
}

/* Rows [r0, r1) for tokens [t0, t1). */
static void kern_mm_block(const struct kern_mm_job *j, size_t r0, size_t r1, size_t t0, size_t t1)
{
    const struct kern_mat *w = j->w;
    const uint8_t *wd = w->data;
    if (r0 >= r1 || t0 >= t1)
        return;
    if (t1 - t0 == 1) { /* decode: one pass over the rows */
        const uint8_t *xa = j->act + t0 * j->act_row;
        float *y = j->y + t0 * j->y_stride;
        if (j->tile) {
            j->tile(w->cols, r1 - r0, 1, wd + r0 * w->row_bytes, w->row_bytes, xa, j->act_row,
                    y + r0, j->y_stride);
        } else {
            for (size_t r = r0; r < r1; r++)
                j->vec_dot(w->cols, y + r, wd + r * w->row_bytes, xa);
        }
        return;
    }
    size_t rt = KERN_TILE_BYTES / (w->row_bytes ? w->row_bytes : 1);
    /* whole groups of 16 rows (the widest tile kernels), even past the size */
    rt = rt < 16 ? 16 : (rt > 64 ? 64 : rt & ~(size_t)15);
    for (size_t r = r0; r < r1; r += rt) {
        const size_t nr = r1 - r < rt ? r1 - r : rt;
        if (j->tile) {
            j->tile(w->cols, nr, t1 - t0, wd + r * w->row_bytes, w->row_bytes,
                    j->act + t0 * j->act_row, j->act_row, j->y + t0 * j->y_stride + r,
                    j->y_stride);
            continue;
        }
        for (size_t t = t0; t < t1; t++) {
            const uint8_t *xa = j->act + t * j->act_row;
            float *y = j->y + t * j->y_stride;
            for (size_t i = r; i < r + nr; i++)
                j->vec_dot(w->cols, y + i, wd + i * w->row_bytes, xa);
        }
    }
}

static void kern_mm_compute(void *arg, unsigned ith, unsigned nth)
{
    const struct kern_mm_job *j = arg;
    size_t lo, hi;
    if (j->split_tokens) {
        if (j->tops && j->tops->act_unit) { /* whole groups of interleaved tokens */
            tp_split((j->n + KERN_XG - 1) / KERN_XG, ith, nth, &lo, &hi);
            lo *= KERN_XG;
            hi = hi * KERN_XG < j->n ? hi * KERN_XG : j->n;
        } else {
            tp_split(j->n, ith, nth, &lo, &hi);
        }
        kern_mm_block(j, 0, j->w->rows, lo, hi);
        return;
    }
    const size_t units = (j->w->rows + KERN_ROW_GRAIN - 1) / KERN_ROW_GRAIN;
    tp_split(units, ith, nth, &lo, &hi);
    lo *= KERN_ROW_GRAIN;
    hi *= KERN_ROW_GRAIN;
    if (hi > j->w->rows)
        hi = j->w->rows;
    kern_mm_block(j, lo, hi, 0, j->n);
}

int kern_matmul(struct kern_ctx *ctx, const struct kern_mat *w, size_t n, const float *x,
                size_t x_stride, float *y, size_t y_stride)
{
    if (!ctx || !w || (n && (!x || !y)))
        return -EINVAL;
    const struct dt_traits *tr = dt_get((uint32_t)w->type);
    if (!tr || !tr->supported || w->cols == 0)
        return -EINVAL;
    const size_t min_row = dt_row_size(w->type, w->cols);
    if (min_row == 0 || w->row_bytes < min_row || (w->rows && !w->data))
        return -EINVAL;
    if (n > 1 && (x_stride < w->cols || y_stride < w->rows))
        return -EINVAL;
    if (n == 0 || w->rows == 0)
        return 0;

    struct kern_mm_job j = {
        .w = w, .n = n, .x = x, .x_stride = x_stride, .y = y, .y_stride = y_stride,
        .act_type = tr->vec_dot_type, .isa = ctx->isa,
    };
    j.vec_dot = kern_vec_dot(ctx->isa, w->type, NULL);
    if (!j.vec_dot)
        return -EINVAL;
    j.tops = kern_tile(ctx->isa, w->type);
    j.tile = j.tops ? j.tops->fn : NULL;
    const size_t act_row = j.tops && j.tops->act_size ? j.tops->act_size(w->cols)
                                                      : dt_row_size(j.act_type, w->cols);
    if (act_row == 0)
        return -EINVAL;
    /* Rows of the converted activations: whole cache lines, an odd number
     * of them, so that the rows of the tokens a tile kernel reads together
     * fall in different L1 sets (strides of 4 KiB multiples alias); packed
     * when interleaved (the rows of a group are one block). */
    if (j.tops && j.tops->act_unit) {
        if (act_row % j.tops->act_unit)
            return -EINVAL;
        j.act_row = act_row;
    } else {
        j.act_row = (act_row + 63) & ~(size_t)63;
        if ((j.act_row / 64) % 2 == 0)
            j.act_row += 64;
    }
    if (n > SIZE_MAX / j.act_row)
        return -ENOMEM;
    int rc = kern_work_reserve(ctx, n * j.act_row);
    if (rc)
        return rc;
    j.act = ctx->work;

    unsigned nth = ctx->pool ? tp_size(ctx->pool) : 1;
    const double work = (double)w->rows * (double)w->cols * (double)n;
    if (work < KERN_PAR_MIN_WORK)
        nth = 1;

    if (nth > 1 && n >= 2)
        tp_run_n(ctx->pool, nth, kern_mm_convert, &j);
    else
        kern_mm_convert(&j, 0, 1);

    const size_t units = (w->rows + KERN_ROW_GRAIN - 1) / KERN_ROW_GRAIN;
    const size_t token_units =
        j.tops && j.tops->act_unit ? (n + KERN_XG - 1) / KERN_XG : n;
    j.split_tokens = units < nth && token_units >= nth;
    if (nth > 1)
        tp_run_n(ctx->pool, nth, kern_mm_compute, &j);
    else
        kern_mm_compute(&j, 0, 1);
    return 0;
}
