/* fuzz_gguf.c - fuzz harness for the GGUF reader: any byte string goes
 * through gguf_open_mem(); when it loads, every metadata value (all array
 * elements, nested arrays included), every lookup and the first and last
 * byte of every tensor's data are touched, so that a view pointing outside
 * the input shows up under the sanitizers. */
#include "gguf.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint64_t fuzz_gguf_sink;

static uint64_t fuzz_gguf_str(struct gguf_str s)
{
    uint64_t h = s.len;
    if (s.len)
        h += (uint8_t)s.ptr[0] + (uint8_t)s.ptr[s.len - 1];
    return h;
}

static uint64_t fuzz_gguf_array(const struct gguf_array *a)
{
    uint64_t h = a->n + (uint64_t)a->type;
    for (uint64_t i = 0; i < a->n; i++) {
        switch (a->type) {
        case GGUF_VT_STRING:
            h += fuzz_gguf_str(a->strs[i]);
            break;
        case GGUF_VT_ARRAY:
            h += fuzz_gguf_array(&a->arrs[i].arr);
            break;
        default:
            h += (uint64_t)gguf_arr_i64(a, i);
            h += gguf_arr_f32(a, i) > 0.0f;
            break;
        }
    }
    return h;
}

static uint64_t fuzz_gguf_value(const struct gguf_file *f, const struct gguf_kv *kv)
{
    char key[128];
    size_t n = kv->key.len < sizeof key - 1 ? (size_t)kv->key.len : sizeof key - 1;
    memcpy(key, kv->key.ptr, n);
    key[n] = '\0';

    uint64_t h = fuzz_gguf_str(kv->key);
    uint32_t u32;
    uint64_t u64;
    int64_t i64;
    float f32;
    bool b;
    struct gguf_str s;
    const struct gguf_array *a;
    h += (uint64_t)gguf_get_u32(f, key, &u32);
    h += (uint64_t)gguf_get_u64(f, key, &u64);
    h += (uint64_t)gguf_get_i64(f, key, &i64);
    h += (uint64_t)gguf_get_f32(f, key, &f32);
    h += (uint64_t)gguf_get_bool(f, key, &b);
    if (gguf_get_str(f, key, &s) == 0)
        h += fuzz_gguf_str(s);
    h += (uint64_t)gguf_get_arr(f, key, GGUF_VT_COUNT, &a);
    h += (uint64_t)gguf_get_arr(f, key, GGUF_VT_STRING, &a);

    switch (kv->v.type) {
    case GGUF_VT_STRING:
        h += fuzz_gguf_str(kv->v.str);
        break;
    case GGUF_VT_ARRAY:
        h += fuzz_gguf_array(&kv->v.arr);
        break;
    case GGUF_VT_BOOL:
        h += kv->v.b;
        break;
    case GGUF_VT_FLOAT32:
    case GGUF_VT_FLOAT64:
        h += kv->v.f64 > 0.0;
        break;
    case GGUF_VT_INT8:
    case GGUF_VT_INT16:
    case GGUF_VT_INT32:
    case GGUF_VT_INT64:
        h += (uint64_t)kv->v.i64;
        break;
    default:
        h += kv->v.u64;
        break;
    }
    h += (uint64_t)strlen(gguf_vtype_name(kv->v.type));
    return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gguf_file *f = NULL;
    char err[256];
    if (gguf_open_mem(data, size, &f, err, sizeof err) != 0) {
        fuzz_gguf_sink += strlen(err);
        return 0;
    }
    uint64_t h = gguf_version(f) + gguf_alignment(f) + gguf_data_offset(f) + gguf_file_size(f);
    for (size_t i = 0; i < gguf_n_kv(f); i++)
        h += fuzz_gguf_value(f, gguf_kv_at(f, i));
    for (size_t i = 0; i < gguf_n_tensors(f); i++) {
        const struct gguf_tensor *t = gguf_tensor_at(f, i);
        h += fuzz_gguf_str(t->name) + t->type + t->n_dims + t->ne[0] + t->ne[3] + t->offset;
        if (t->nbytes) {
            const uint8_t *d = t->data;
            h += d[0] + d[t->nbytes - 1];
        }
        char name[128];
        size_t n = t->name.len < sizeof name - 1 ? (size_t)t->name.len : sizeof name - 1;
        memcpy(name, t->name.ptr, n);
        name[n] = '\0';
        h += gguf_find_tensor(f, name) != NULL;
    }
    h += gguf_find(f, "general.architecture") != NULL;
    fuzz_gguf_sink += h;
    gguf_close(f);
    return 0;
}
