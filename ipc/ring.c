/* ring.c - the SPSC byte ring of ring.h: record framing, fragmentation and
 * reassembly, the hostile-input checks of the consumer, and the
 * NEED_WAKEUP / NEED_SPACE doorbell protocol.
 *
 * Memory ordering, in one place (each use below names its pair):
 *  - P1: producer's release store of tail  <-> C1: consumer's acquire load of
 *    tail. The record bytes written before P1 are visible after C1.
 *  - C2: consumer's release store of head  <-> P2: producer's acquire load of
 *    head. The consumer's reads of the freed bytes happen before the
 *    producer overwrites them.
 *  - Wake-up handshakes use seq_cst on both sides (store then load), see the
 *    argument in ring.h: W1 (consumer sets NEED_WAKEUP, loads tail) against
 *    W2 (producer stores tail, loads NEED_WAKEUP); S1 (producer sets
 *    NEED_SPACE, loads head) against S2 (consumer stores head, loads
 *    NEED_SPACE). A seq_cst store is also a release and a seq_cst load an
 *    acquire, so P1/C1 and C2/P2 keep holding on those paths.
 */
#include "ring.h"

#include "doorbell.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

enum ring_asm {
    RING_ASM_NONE = 0, /* no fragmented message in progress */
    RING_ASM_PARTIAL,  /* first fragments are in asm_buf */
    RING_ASM_COMPLETE, /* a whole message waits in asm_buf for a bigger buf */
};

struct ring {
    struct ring_ctl *ctl;
    unsigned char *data;
    uint32_t cap, mask, record_max, msg_max;
    enum ring_role role;
    int peer_fd;
    bool broken;  /* the peer broke the protocol: every call is -EPROTO */
    bool waiting; /* our NEED_* flag may be set in shared memory */

    /* producer side */
    uint32_t tail;       /* authoritative; the shared copy is only published */
    uint32_t head_cache; /* last validated head of the consumer */
    bool pending;        /* a streamed message is half sent */
    size_t pend_len, pend_off;
    uint32_t want; /* bytes of room the last -EAGAIN lacked */

    /* consumer side */
    uint32_t head; /* authoritative; the shared copy is only published */
    enum ring_asm asm_state;
    unsigned char *asm_buf;
    size_t asm_len, asm_cap;
};

/* A reassembly buffer larger than this is given back after delivery. */
#define RING_ASM_KEEP (64u * 1024u)

int ring_params_check(const struct ring_params *p)
{
    if (!p)
        return -EINVAL;
    uint32_t c = p->capacity;
    if (c < RING_CAPACITY_MIN || c > RING_CAPACITY_MAX || (c & (c - 1)) != 0)
        return -EINVAL;
    if (p->record_max == 0 || p->record_max > c - RING_REC_HDR ||
        ring_rec_size(p->record_max) > c)
        return -EINVAL;
    if (p->msg_max < p->record_max || p->msg_max > RING_MSG_MAX_LIMIT)
        return -EINVAL;
    return 0;
}

void ring_ctl_init(struct ring_ctl *ctl)
{
    /* Relaxed: the block is not shared yet; handing the memory over (fd
     * passing, thread creation) orders these stores for the peer. */
    atomic_store_explicit(&ctl->tail, 0, memory_order_relaxed);
    atomic_store_explicit(&ctl->prod_flags, 0, memory_order_relaxed);
    atomic_store_explicit(&ctl->head, 0, memory_order_relaxed);
    atomic_store_explicit(&ctl->cons_flags, 0, memory_order_relaxed);
}

/* Whether head/tail, as read from shared memory, can describe this ring. */
static bool ring_indices_ok(const struct ring *r, uint32_t head, uint32_t tail)
{
    return ((head | tail) & 7u) == 0 && (uint32_t)(tail - head) <= r->cap;
}

int ring_open(struct ring **out, struct ring_ctl *ctl, void *data,
              const struct ring_params *p, enum ring_role role)
{
    if (!out || !ctl || !data || ring_params_check(p) != 0 ||
        (role != RING_PRODUCER && role != RING_CONSUMER))
        return -EINVAL;
    *out = NULL;
    struct ring *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    r->ctl = ctl;
    r->data = data;
    r->cap = p->capacity;
    r->mask = p->capacity - 1;
    r->record_max = p->record_max;
    r->msg_max = p->msg_max;
    r->role = role;
    r->peer_fd = -1;
    /* Acquire: pairs with whichever side last published these indices
     * (P1 / C2) in case the ring was in use before this handle opened. */
    uint32_t head = atomic_load_explicit(&ctl->head, memory_order_acquire);
    uint32_t tail = atomic_load_explicit(&ctl->tail, memory_order_acquire);
    if (!ring_indices_ok(r, head, tail)) {
        free(r);
        return -EPROTO;
    }
    r->tail = tail;
    r->head_cache = head;
    r->head = head;
    *out = r;
    return 0;
}

void ring_close(struct ring *r)
{
    if (!r)
        return;
    free(r->asm_buf);
    free(r);
}

void ring_set_doorbell(struct ring *r, int peer_fd)
{
    if (r)
        r->peer_fd = peer_fd < 0 ? -1 : peer_fd;
}

/* Copies n bytes into the data area at free-running position pos. */
static void ring_put(struct ring *r, uint32_t pos, const void *src, uint32_t n)
{
    if (n == 0)
        return;
    uint32_t off = pos & r->mask;
    uint32_t first = r->cap - off < n ? r->cap - off : n;
    memcpy(r->data + off, src, first);
    if (n > first)
        memcpy(r->data, (const unsigned char *)src + first, n - first);
}

/* Copies n bytes out of the data area from free-running position pos. The
 * caller has checked that [pos, pos + n) lies inside the published bytes,
 * so n <= capacity and both pieces stay inside the data area. */
static void ring_get(const struct ring *r, uint32_t pos, void *dst, uint32_t n)
{
    if (n == 0)
        return;
    uint32_t off = pos & r->mask;
    uint32_t first = r->cap - off < n ? r->cap - off : n;
    memcpy(dst, r->data + off, first);
    if (n > first)
        memcpy((unsigned char *)dst + first, r->data, n - first);
}

/* Bytes the records for msg[off..len) take, fragments of record_max. */
static uint64_t ring_footprint(const struct ring *r, size_t len, size_t off)
{
    size_t rest = len - off;
    if (rest == 0)
        return ring_rec_size(0);
    uint64_t full = rest / r->record_max;
    uint32_t last = (uint32_t)(rest % r->record_max);
    return full * ring_rec_size(r->record_max) + (last ? ring_rec_size(last) : 0);
}

/* Withdraws our NEED_* flag after a wait (see ring_wait_prepare). */
static void ring_wait_clear(struct ring *r)
{
    if (!r->waiting)
        return;
    r->waiting = false;
    /* Relaxed: clearing only stops doorbells; a stale set costs a spurious
     * one, and every later sleep re-checks after setting it again. */
    if (r->role == RING_PRODUCER)
        atomic_store_explicit(&r->ctl->prod_flags, 0, memory_order_relaxed);
    else
        atomic_store_explicit(&r->ctl->cons_flags, 0, memory_order_relaxed);
}

/* Free bytes from the producer's view, refreshing the consumer's head when
 * the cached one shows less than need. -EPROTO on an impossible head. */
static int ring_room(struct ring *r, uint64_t need, uint32_t *room)
{
    uint32_t used = r->tail - r->head_cache;
    if ((uint64_t)(r->cap - used) < need) {
        /* Acquire: pairs with C2, the consumer's release store of head in
         * ring_recv(), so its reads of the bytes it freed are done. */
        uint32_t h = atomic_load_explicit(&r->ctl->head, memory_order_acquire);
        if (!ring_indices_ok(r, h, r->tail)) {
            r->broken = true;
            return -EPROTO;
        }
        r->head_cache = h;
        used = r->tail - h;
    }
    *room = r->cap - used;
    return 0;
}

/* Publishes the producer's tail and rings the consumer if it sleeps. */
static void ring_publish_tail(struct ring *r)
{
    if (r->peer_fd < 0) {
        /* P1, release: pairs with C1 in ring_recv(). */
        atomic_store_explicit(&r->ctl->tail, r->tail, memory_order_release);
        return;
    }
    /* P1 + W2, seq_cst store: pairs with C1 (as a release) and with the
     * consumer's seq_cst flag store / tail load in ring_wait_prepare(). */
    atomic_store_explicit(&r->ctl->tail, r->tail, memory_order_seq_cst);
    /* W2, seq_cst load: see ring.h for why one of the two sides sees the
     * other's store. */
    uint32_t f = atomic_load_explicit(&r->ctl->cons_flags, memory_order_seq_cst);
    if (f & RING_F_NEED_WAKEUP)
        (void)doorbell_ring(r->peer_fd);
}

int ring_send(struct ring *r, const void *msg, size_t len)
{
    if (!r || r->role != RING_PRODUCER || (len && !msg))
        return -EINVAL;
    if (r->broken)
        return -EPROTO;
    if (len > r->msg_max)
        return -EMSGSIZE;
    if (r->pending && len != r->pend_len)
        return -EBUSY;
    ring_wait_clear(r);

    size_t off = r->pending ? r->pend_off : 0;
    uint64_t total = ring_footprint(r, len, off);
    uint32_t room;
    int rc = ring_room(r, total, &room);
    if (rc < 0)
        return rc;
    if (!r->pending && total <= r->cap && total > room) {
        r->want = (uint32_t)total; /* all or nothing: wait for the room */
        return -EAGAIN;
    }

    /* Write every fragment that fits (all of them unless streaming). */
    const unsigned char *src = msg;
    bool wrote = false;
    do {
        size_t rest = len - off;
        uint32_t flen = rest > r->record_max ? r->record_max : (uint32_t)rest;
        uint32_t need = ring_rec_size(flen);
        if (need > room)
            break;
        struct ring_rec h = {
            .len = flen,
            .flags = (off ? RING_REC_CONT : 0) | (off + flen < len ? RING_REC_MORE : 0),
        };
        ring_put(r, r->tail, &h, sizeof h);
        ring_put(r, r->tail + RING_REC_HDR, src ? src + off : NULL, flen);
        r->tail += need;
        room -= need;
        off += flen;
        wrote = true;
    } while (off < len);

    if (wrote)
        ring_publish_tail(r);
    if (off == len && wrote) {
        r->pending = false;
        r->want = 0;
        return 0;
    }
    if (!wrote && !r->pending) {
        /* Not one fragment fitted: the message has not begun. */
        r->want = ring_rec_size(len > r->record_max ? r->record_max : (uint32_t)len);
        return -EAGAIN;
    }
    r->pending = true;
    r->pend_len = len;
    r->pend_off = off;
    size_t rest = len - off;
    r->want = ring_rec_size(rest > r->record_max ? r->record_max : (uint32_t)rest);
    return -EAGAIN;
}

/* Hands a reassembled message to the caller (or says how big it is). */
static int ring_deliver(struct ring *r, void *buf, size_t cap, size_t *len)
{
    *len = r->asm_len;
    if (r->asm_len > cap)
        return -EMSGSIZE;
    if (r->asm_len)
        memcpy(buf, r->asm_buf, r->asm_len);
    r->asm_state = RING_ASM_NONE;
    r->asm_len = 0;
    if (r->asm_cap > RING_ASM_KEEP) {
        free(r->asm_buf);
        r->asm_buf = NULL;
        r->asm_cap = 0;
    }
    return 0;
}

/* Makes room for need bytes in the reassembly buffer (need <= msg_max). */
static int ring_asm_reserve(struct ring *r, size_t need)
{
    if (need <= r->asm_cap)
        return 0;
    size_t nc = r->asm_cap ? r->asm_cap : 2 * (size_t)r->record_max;
    while (nc < need)
        nc *= 2;
    if (nc > r->msg_max)
        nc = r->msg_max;
    unsigned char *nb = realloc(r->asm_buf, nc);
    if (!nb)
        return -ENOMEM;
    r->asm_buf = nb;
    r->asm_cap = nc;
    return 0;
}

static int ring_corrupt(struct ring *r)
{
    r->broken = true;
    r->asm_state = RING_ASM_NONE;
    r->asm_len = 0;
    return -EPROTO;
}

/* Publishes the consumer's head and rings the producer if it sleeps. */
static void ring_publish_head(struct ring *r)
{
    if (r->peer_fd < 0) {
        /* C2, release: pairs with P2 in ring_room(). */
        atomic_store_explicit(&r->ctl->head, r->head, memory_order_release);
        return;
    }
    /* C2 + S2, seq_cst store: pairs with P2 (as a release) and with the
     * producer's seq_cst flag store / head load in ring_wait_prepare(). */
    atomic_store_explicit(&r->ctl->head, r->head, memory_order_seq_cst);
    /* S2, seq_cst load: one of the two sides sees the other's store. */
    uint32_t f = atomic_load_explicit(&r->ctl->prod_flags, memory_order_seq_cst);
    if (f & RING_F_NEED_SPACE)
        (void)doorbell_ring(r->peer_fd);
}

int ring_recv(struct ring *r, void *buf, size_t cap, size_t *len)
{
    if (!r || r->role != RING_CONSUMER || !len || (cap && !buf))
        return -EINVAL;
    if (r->broken)
        return -EPROTO;
    ring_wait_clear(r);
    if (r->asm_state == RING_ASM_COMPLETE)
        return ring_deliver(r, buf, cap, len);

    /* C1, acquire, the one read of the producer's index in this call:
     * pairs with P1 in ring_publish_tail(). */
    uint32_t tail = atomic_load_explicit(&r->ctl->tail, memory_order_acquire);
    if (!ring_indices_ok(r, r->head, tail))
        return ring_corrupt(r);
    uint32_t avail = tail - r->head;
    uint32_t start = r->head;
    int rc = -EAGAIN;

    /* Each pass consumes at least RING_REC_HDR bytes of avail, or ends. */
    while (avail >= RING_REC_HDR) {
        struct ring_rec h; /* local copy: the length is read exactly once */
        ring_get(r, r->head, &h, sizeof h);
        if ((h.flags & ~RING_REC_KNOWN) != 0 || h.len > r->record_max)
            return ring_corrupt(r);
        uint32_t need = ring_rec_size(h.len);
        if (need > avail)
            return ring_corrupt(r);
        uint32_t payload = r->head + RING_REC_HDR;

        if (!(h.flags & RING_REC_CONT)) {
            if (r->asm_state == RING_ASM_PARTIAL)
                return ring_corrupt(r); /* a new message inside a message */
            if (!(h.flags & RING_REC_MORE)) {
                /* The whole message in one record: straight to buf. */
                *len = h.len;
                if (h.len > cap) {
                    rc = -EMSGSIZE; /* stays queued */
                    break;
                }
                ring_get(r, payload, buf, h.len);
                r->head += need;
                rc = 0;
                break;
            }
        } else if (r->asm_state != RING_ASM_PARTIAL) {
            return ring_corrupt(r); /* continuation without a start */
        }
        size_t have = (h.flags & RING_REC_CONT) ? r->asm_len : 0;
        if (h.len == 0 || h.len > r->msg_max - have)
            return ring_corrupt(r); /* empty fragment or message too big */
        if (ring_asm_reserve(r, have + h.len) < 0) {
            rc = -ENOMEM; /* nothing of this record consumed: retry later */
            break;
        }
        ring_get(r, payload, r->asm_buf + have, h.len);
        r->asm_state = RING_ASM_PARTIAL;
        r->asm_len = have + h.len;
        r->head += need;
        avail -= need;
        if (!(h.flags & RING_REC_MORE)) {
            r->asm_state = RING_ASM_COMPLETE;
            rc = ring_deliver(r, buf, cap, len);
            break;
        }
    }
    if (r->head != start)
        ring_publish_head(r);
    return rc;
}

int ring_wait_prepare(struct ring *r)
{
    if (!r || r->broken)
        return 1;
    r->waiting = true;
    if (r->role == RING_CONSUMER) {
        if (r->asm_state == RING_ASM_COMPLETE)
            return 1;
        /* W1, seq_cst store then seq_cst load: against the producer's
         * tail store / flag load in ring_publish_tail() (ring.h). */
        atomic_store_explicit(&r->ctl->cons_flags, RING_F_NEED_WAKEUP,
                              memory_order_seq_cst);
        uint32_t tail = atomic_load_explicit(&r->ctl->tail, memory_order_seq_cst);
        return tail != r->head ? 1 : 0;
    }
    if (r->want == 0)
        return 1;
    /* S1, seq_cst store then seq_cst load: against the consumer's head
     * store / flag load in ring_publish_head(). */
    atomic_store_explicit(&r->ctl->prod_flags, RING_F_NEED_SPACE, memory_order_seq_cst);
    uint32_t h = atomic_load_explicit(&r->ctl->head, memory_order_seq_cst);
    if (!ring_indices_ok(r, h, r->tail))
        return 1; /* ring_send() will report it */
    return (uint32_t)(r->cap - (r->tail - h)) >= r->want ? 1 : 0;
}

uint32_t ring_used(const struct ring *r)
{
    if (!r)
        return 0;
    if (r->role == RING_PRODUCER)
        return r->tail - r->head_cache;
    /* Relaxed: a hint only; nothing is read on the strength of it. */
    uint32_t tail = atomic_load_explicit(&r->ctl->tail, memory_order_relaxed);
    return ring_indices_ok(r, r->head, tail) ? tail - r->head : 0;
}
