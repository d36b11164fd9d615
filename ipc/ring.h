/* ring.h - single-producer / single-consumer byte ring of length-prefixed
 * records over shared memory, the transport between inferd and a client.
 *
 * A ring is a shared control block (struct ring_ctl) plus a data area of a
 * power-of-two capacity. Each side owns a private handle (struct ring) that
 * keeps its own index and the ring's geometry; nothing the peer writes into
 * shared memory can change the capacity, the limits or the handle's own
 * index. The side that reads (the daemon on the submission ring) treats the
 * shared memory as hostile: ring_recv() reads the producer's index once per
 * call, bounds every length and answers -EPROTO on anything impossible.
 *
 * Shared control block (one per ring, 3 cache lines):
 *
 *   field       line  written by  read by    meaning
 *   tail          0   producer    consumer   end of the published bytes
 *   prod_flags    0   producer    consumer   RING_F_NEED_SPACE
 *   head          1   consumer    producer   end of the consumed bytes
 *   cons_flags    2   consumer    producer   RING_F_NEED_WAKEUP
 *
 * head and tail are free-running 32-bit byte counters, masked with
 * capacity - 1 on access; tail - head (mod 2^32) is the number of bytes in
 * the ring and is never more than the capacity. Both are multiples of 8.
 *
 * Data area: a sequence of records, each 8-byte aligned:
 *
 *   u32 len      payload bytes, at most the ring's record limit
 *   u32 flags    RING_REC_MORE | RING_REC_CONT, other bits zero
 *   len bytes    payload, then padding to a multiple of 8
 *
 * A record header never straddles the end of the data area (offsets and the
 * capacity are multiples of 8); a payload may, and is then continued at
 * offset 0. A message larger than the record limit is split into fragments:
 * the first has MORE, the middle ones MORE|CONT, the last CONT. Fragments
 * are never empty. The consumer reassembles them, up to the ring's message
 * limit.
 *
 * Waking (the io_uring SQPOLL idea, in both directions). A consumer that
 * found the ring empty may sleep on its doorbell (an eventfd): it calls
 * ring_wait_prepare(), which sets RING_F_NEED_WAKEUP and then re-reads the
 * tail; it sleeps only when that re-read still shows nothing new. A producer
 * publishes the tail and then reads the flag; only when it is set does it
 * write the consumer's doorbell. Both pairs (flag store, tail load) and
 * (tail store, flag load) are sequentially consistent, so in the single
 * total order of those operations either the consumer's re-read comes after
 * the producer's tail store (it sees the data and does not sleep) or the
 * producer's flag load comes after the consumer's flag store (it sees the
 * flag and rings). The eventfd counter keeps a ring that happens before the
 * consumer actually blocks. The flag is cleared (relaxed: a stale set only
 * costs a spurious doorbell, and a clear is always followed by a full
 * re-check before the next sleep) at the next ring_recv(). A producer that
 * found the ring full does the same with RING_F_NEED_SPACE, the head and
 * the producer's doorbell. Without a peer doorbell (ring_set_doorbell() not
 * called) neither side ever writes an eventfd: both are expected to spin.
 */
#ifndef INFERD_IPC_RING_H
#define INFERD_IPC_RING_H

#include <assert.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Bits of ring_ctl.cons_flags and ring_ctl.prod_flags. */
#define RING_F_NEED_WAKEUP 1u /* consumer is (about to be) asleep */
#define RING_F_NEED_SPACE 1u  /* producer is (about to be) asleep */

/* Bits of a record header's flags. */
#define RING_REC_MORE 1u /* more fragments of this message follow */
#define RING_REC_CONT 2u /* continues a message begun by an earlier record */
#define RING_REC_KNOWN (RING_REC_MORE | RING_REC_CONT)

#define RING_REC_HDR 8u                 /* bytes of a record header */
#define RING_CAPACITY_MIN 16u           /* one header + 8 payload bytes */
#define RING_CAPACITY_MAX (1u << 30)    /* keeps tail - head unambiguous */
#define RING_MSG_MAX_LIMIT (1u << 30)   /* hard cap on a message limit */

struct ring_ctl {
    /* line 0: written by the producer */
    alignas(64) _Atomic uint32_t tail;
    _Atomic uint32_t prod_flags;
    /* line 1: written by the consumer */
    alignas(64) _Atomic uint32_t head;
    /* line 2: written by the consumer, only around sleeps, so that the
     * producer's per-send flag read does not pull line 1 away from it */
    alignas(64) _Atomic uint32_t cons_flags;
};

static_assert(sizeof(_Atomic uint32_t) == 4, "ring index is 4 bytes");
static_assert(ATOMIC_INT_LOCK_FREE == 2, "shared atomics must be lock-free");
static_assert(offsetof(struct ring_ctl, tail) == 0, "ring_ctl layout");
static_assert(offsetof(struct ring_ctl, prod_flags) == 4, "ring_ctl layout");
static_assert(offsetof(struct ring_ctl, head) == 64, "ring_ctl layout");
static_assert(offsetof(struct ring_ctl, cons_flags) == 128, "ring_ctl layout");
static_assert(sizeof(struct ring_ctl) == 192, "ring_ctl layout");

/* Header of one record in the data area (copied out, never read in place). */
struct ring_rec {
    uint32_t len;
    uint32_t flags;
};
static_assert(sizeof(struct ring_rec) == RING_REC_HDR, "record header");

/* Geometry and limits of one ring; both sides must agree on them (the shm
 * header carries them). */
struct ring_params {
    uint32_t capacity;   /* power of two, RING_CAPACITY_MIN..MAX */
    uint32_t record_max; /* payload bytes per record, >= 1, record fits */
    uint32_t msg_max;    /* bytes per message, record_max..LIMIT */
};

enum ring_role {
    RING_PRODUCER = 1,
    RING_CONSUMER = 2,
};

struct ring;

/* 0 when p describes a usable ring, -EINVAL otherwise. */
int ring_params_check(const struct ring_params *p);

/* Bytes one record with len payload bytes takes in the data area. */
static inline uint32_t ring_rec_size(uint32_t len)
{
    return RING_REC_HDR + ((len + 7u) & ~7u);
}

/* Zeroes a control block (the creator does it once, before sharing). */
void ring_ctl_init(struct ring_ctl *ctl);

/* Opens one side of a ring. ctl and data (capacity bytes) live in shared
 * memory and must stay mapped until ring_close(). The handle starts from the
 * indices found in ctl: -EPROTO when they are impossible. -ENOMEM, -EINVAL. */
int ring_open(struct ring **out, struct ring_ctl *ctl, void *data,
              const struct ring_params *p, enum ring_role role);
/* Frees the handle (NULL is fine); the shared memory is left alone. */
void ring_close(struct ring *r);

/* The eventfd to write when the peer has asked to be woken (the consumer's
 * doorbell for a producer handle, the producer's for a consumer handle), or
 * -1 for none. The handle does not own it; it must stay open while set. */
void ring_set_doorbell(struct ring *r, int peer_fd);

/* Producer: queues the message msg[0..len). 0 when it is wholly published;
 * -EAGAIN when the ring is too full. A message whose records fit in the
 * capacity is published whole or not at all. A larger one is streamed: the
 * fragments that fit are published and -EAGAIN asks the caller to call again
 * with the same msg and len, after the consumer made room, until it returns
 * 0 (any other call is -EBUSY meanwhile). -EMSGSIZE: len > msg_max. -EPROTO:
 * the consumer's head is impossible (the handle is then dead). -EINVAL. */
int ring_send(struct ring *r, const void *msg, size_t len);

/* Consumer: copies the next whole message into buf[0..cap) and sets *len.
 * 0 on success; -EAGAIN when no whole message is there yet (fragments read
 * so far are kept inside the handle); -EMSGSIZE when the next message is
 * larger than cap: *len says how large, and the message stays queued
 * (buf may be NULL with cap 0 to ask). -EPROTO when the ring's contents are
 * impossible: the handle is then dead and every later call says -EPROTO.
 * -ENOMEM when a fragmented message cannot be buffered. -EINVAL. */
int ring_recv(struct ring *r, void *buf, size_t cap, size_t *len);

/* Before sleeping on this side's own doorbell: announces the wait to the
 * peer and re-checks. 1: do not sleep (a consumer has something to read or
 * the ring is corrupt, a producer has the room it lacked), retry now.
 * 0: sleep; the peer will write the doorbell after its next publish. The
 * announcement is withdrawn by the next ring_recv() / ring_send(). */
int ring_wait_prepare(struct ring *r);

/* Bytes currently queued as seen by this side (a hint, for tests/stats). */
uint32_t ring_used(const struct ring *r);

#endif
