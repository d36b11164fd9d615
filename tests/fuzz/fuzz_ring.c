/* fuzz_ring.c - fuzz harness for the hostile side of the shared-memory
 * transport: the ring consumer reading memory a malicious client controls,
 * the ring producer facing a malicious consumer index, and the check of a
 * session header.
 *
 * Input layout (little-endian), by the first byte:
 *
 *  0xff  header:   u64 file_size, then the header bytes for
 *                  shm_header_check().
 *  0xfe  producer: u8 cap, u8 rec, u16 msg, u32 start, then steps of
 *                  { u32 head, u16 len } - the consumer's head is set to
 *                  head and a message of len bytes is sent.
 *  else  consumer: u8 cap, u8 rec, u16 msg, u32 start, u16 bufcap, the
 *                  initial data area (capacity bytes, zero-filled when
 *                  short), then steps of { u32 tail, u16 off, u16 n,
 *                  n bytes patched into the data at off } - after each,
 *                  ring_recv() is called until it stops returning messages.
 *
 * cap picks a capacity of 2^(4 + cap % 9) bytes; rec and msg pick limits
 * that ring_params_check() accepts. The data area and every buffer are
 * allocated at their exact size so that the sanitizers see any stray
 * access; a result that breaks the API's promises aborts. */
#include "ipc/ring.h"
#include "ipc/shm.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The harness is single-threaded: its stores into the control block stand
 * in for a peer and need no ordering, so they are relaxed. */

struct fuzz_in {
    const uint8_t *p;
    size_t n;
};

static uint64_t fuzz_take(struct fuzz_in *in, size_t bytes)
{
    uint64_t v = 0;
    for (size_t i = 0; i < bytes; i++) {
        uint64_t b = 0;
        if (in->n) {
            b = *in->p++;
            in->n--;
        }
        v |= b << (8 * i);
    }
    return v;
}

static void fuzz_check(int ok)
{
    if (!ok)
        abort();
}

static void fuzz_params(struct fuzz_in *in, struct ring_params *p)
{
    uint32_t cap = 1u << (4 + fuzz_take(in, 1) % 9);
    uint32_t rec = 1 + (uint32_t)fuzz_take(in, 1) % (cap - RING_REC_HDR);
    uint32_t msg = rec + (uint32_t)fuzz_take(in, 2);
    *p = (struct ring_params){cap, rec, msg};
    fuzz_check(ring_params_check(p) == 0);
}

static void fuzz_header(struct fuzz_in *in)
{
    uint64_t file_size = fuzz_take(in, 8);
    struct shm_params p;
    if (shm_header_check(in->p, in->n, file_size, &p) != 0)
        return;
    struct shm_header h;
    fuzz_check(shm_layout(&p, &h) == 0);
    fuzz_check(h.total_size == file_size && file_size <= SHM_SIZE_MAX);
    for (unsigned i = 0; i < SHM_RING_COUNT; i++)
        fuzz_check(h.ring[i].data_offset + h.ring[i].capacity <= file_size);
}

static void fuzz_producer(struct fuzz_in *in, struct ring_ctl *ctl)
{
    struct ring_params p;
    fuzz_params(in, &p);
    uint32_t start = (uint32_t)fuzz_take(in, 4) & ~7u;
    unsigned char *ring_data = malloc(p.capacity);
    unsigned char *msg = malloc(p.msg_max);
    struct ring *r = NULL;
    if (!ring_data || !msg)
        goto out;
    atomic_store_explicit(&ctl->head, start, memory_order_relaxed);
    atomic_store_explicit(&ctl->tail, start, memory_order_relaxed);
    fuzz_check(ring_open(&r, ctl, ring_data, &p, RING_PRODUCER) == 0);
    memset(msg, 0x5a, p.msg_max);
    size_t pend = 0;
    for (int step = 0; in->n && step < 256; step++) {
        atomic_store_explicit(&ctl->head, (uint32_t)fuzz_take(in, 4), memory_order_relaxed);
        size_t len = pend ? pend : fuzz_take(in, 2) % (p.msg_max + 1u);
        int rc = ring_send(r, msg, len);
        fuzz_check(rc == 0 || rc == -EAGAIN || rc == -EPROTO);
        (void)ring_wait_prepare(r);
        pend = rc == -EAGAIN ? len : 0;
        if (rc == -EPROTO)
            break;
    }
out:
    ring_close(r);
    free(msg);
    free(ring_data);
}

static void fuzz_consumer(struct fuzz_in *in, struct ring_ctl *ctl)
{
    struct ring_params p;
    fuzz_params(in, &p);
    uint32_t start = (uint32_t)fuzz_take(in, 4) & ~7u;
    size_t bufcap = fuzz_take(in, 2) % (p.msg_max + 16u);
    unsigned char *ring_data = malloc(p.capacity);
    unsigned char *buf = malloc(bufcap ? bufcap : 1);
    unsigned char *big = malloc(p.msg_max);
    struct ring *r = NULL;
    if (!ring_data || !buf || !big)
        goto out;
    for (uint32_t i = 0; i < p.capacity; i++)
        ring_data[i] = (uint8_t)fuzz_take(in, 1);
    atomic_store_explicit(&ctl->head, start, memory_order_relaxed);
    atomic_store_explicit(&ctl->tail, start, memory_order_relaxed);
    fuzz_check(ring_open(&r, ctl, ring_data, &p, RING_CONSUMER) == 0);
    for (int step = 0; in->n && step < 256; step++) {
        atomic_store_explicit(&ctl->tail, (uint32_t)fuzz_take(in, 4), memory_order_relaxed);
        uint32_t off = (uint32_t)fuzz_take(in, 2), n = (uint32_t)fuzz_take(in, 2);
        for (uint32_t i = 0; i < n && in->n; i++)
            ring_data[(off + i) & (p.capacity - 1)] = (uint8_t)fuzz_take(in, 1);
        int rc = 0;
        /* Each message consumes at least one 8-byte record. */
        for (uint32_t k = 0; k <= p.capacity / 8 + 1; k++) {
            size_t len = SIZE_MAX;
            rc = ring_recv(r, buf, bufcap, &len);
            if (rc == -EMSGSIZE) {
                fuzz_check(len > bufcap && len <= p.msg_max);
                rc = ring_recv(r, big, p.msg_max, &len);
            }
            if (rc != 0)
                break;
            fuzz_check(len <= p.msg_max);
        }
        fuzz_check(rc == -EAGAIN || rc == -EPROTO);
        fuzz_check(ring_used(r) <= p.capacity);
        (void)ring_wait_prepare(r);
        if (rc == -EPROTO) {
            fuzz_check(ring_recv(r, buf, bufcap, &(size_t){0}) == -EPROTO);
            break;
        }
    }
out:
    ring_close(r);
    free(big);
    free(buf);
    free(ring_data);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    struct ring_ctl *ctl = aligned_alloc(64, sizeof *ctl);
    if (!ctl)
        return 0;
    ring_ctl_init(ctl);
    uint8_t mode = (uint8_t)fuzz_take(&in, 1);
    if (mode == 0xff)
        fuzz_header(&in);
    else if (mode == 0xfe)
        fuzz_producer(&in, ctl);
    else
        fuzz_consumer(&in, ctl);
    free(ctl);
    return 0;
}
