/* shm.h - the shared-memory region of one session: a sealed memfd holding a
 * header page and two rings (ring.h), submission (client -> daemon) and
 * completion (daemon -> client).
 *
 * The daemon creates the region (shm_create), seals it against shrinking
 * and growing, and passes the fd to the client, which maps it with
 * shm_attach(). The attacher checks the seals and the header against the
 * file before using anything in it; a hostile or stale header is refused.
 *
 * Region layout (offsets in bytes; capacities are powers of two >= 4096):
 *
 *   offset           size   contents                 written by      read by
 *   0                4096   struct shm_header        creator, once   attacher (copied)
 *   4096             192    ring_ctl, submission     see ring.h: client produces,
 *   4096 + 256       192    ring_ctl, completion     daemon consumes; and reverse
 *   8192             cap_s  data, submission         client          daemon
 *   8192 + cap_s     cap_c  data, completion         daemon          client
 *
 * The layout is a pure function of the two rings' parameters
 * (shm_layout), so the attacher recomputes it and requires every offset and
 * the total size to be exactly what the header says. Any change to it bumps
 * SHM_VERSION.
 */
#ifndef INFERD_IPC_SHM_H
#define INFERD_IPC_SHM_H

#include "ring.h"

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#define SHM_MAGIC 0x4853445245464e49ull /* the bytes "INFERDSH", little-endian */
#define SHM_VERSION 1u
#define SHM_HEADER_SIZE 4096u
#define SHM_CTL_OFFSET 4096u
#define SHM_CTL_STRIDE 256u
#define SHM_DATA_OFFSET 8192u
#define SHM_RING_CAPACITY_MIN 4096u
#define SHM_RING_CAPACITY_MAX (256u << 20)

enum shm_ring_id {
    SHM_RING_SUBMIT = 0,   /* client produces, daemon consumes */
    SHM_RING_COMPLETE = 1, /* daemon produces, client consumes */
    SHM_RING_COUNT = 2,
};

#define SHM_SIZE_MAX ((uint64_t)SHM_DATA_OFFSET + (uint64_t)SHM_RING_COUNT * SHM_RING_CAPACITY_MAX)

/* One ring as the header describes it. */
struct shm_ring_desc {
    uint64_t ctl_offset;
    uint64_t data_offset;
    uint32_t capacity;
    uint32_t record_max;
    uint32_t msg_max;
    uint32_t reserved; /* zero */
};

/* The first bytes of the region. Written by the creator before the fd is
 * shared; never written again, never trusted by the attacher unchecked. */
struct shm_header {
    uint64_t magic;       /* SHM_MAGIC */
    uint32_t version;     /* SHM_VERSION */
    uint32_t header_size; /* SHM_HEADER_SIZE */
    uint64_t total_size;  /* bytes of the memfd */
    uint32_t ring_count;  /* SHM_RING_COUNT */
    uint32_t flags;       /* zero */
    struct shm_ring_desc ring[SHM_RING_COUNT];
};

static_assert(sizeof(struct shm_ring_desc) == 32, "shm layout");
static_assert(offsetof(struct shm_header, total_size) == 16, "shm layout");
static_assert(offsetof(struct shm_header, ring) == 32, "shm layout");
static_assert(sizeof(struct shm_header) == 96, "shm layout");
static_assert(sizeof(struct shm_header) <= SHM_HEADER_SIZE, "shm layout");
static_assert(SHM_CTL_OFFSET >= SHM_HEADER_SIZE, "shm layout");
static_assert(sizeof(struct ring_ctl) <= SHM_CTL_STRIDE, "shm layout");
static_assert(SHM_CTL_OFFSET + SHM_RING_COUNT * SHM_CTL_STRIDE <= SHM_DATA_OFFSET,
              "shm layout");
static_assert(SHM_CTL_STRIDE % 64 == 0 && SHM_CTL_OFFSET % 64 == 0, "shm layout");

struct shm_params {
    struct ring_params ring[SHM_RING_COUNT];
};

struct shm_region;

/* Fills *hdr with the header of a region for p. 0, or -EINVAL when a ring's
 * parameters are unusable or outside SHM_RING_CAPACITY_MIN..MAX. */
int shm_layout(const struct shm_params *p, struct shm_header *hdr);

/* Validates a header copied out of a region of file_size bytes (hdr_len
 * bytes available at hdr). 0 and the rings' parameters in *out;
 * -EPROTONOSUPPORT for another version; -EPROTO for anything else wrong. */
int shm_header_check(const void *hdr, size_t hdr_len, uint64_t file_size,
                     struct shm_params *out);

/* Creator (daemon): a new sealed memfd region with zeroed rings. The region
 * owns the fd (shm_fd() to pass it on). -EINVAL, -errno. */
int shm_create(struct shm_region **out, const struct shm_params *p);

/* Attacher (client): maps the region behind fd after checking its seals
 * (-EPERM when it could still shrink or grow; -EINVAL when it cannot be
 * sealed at all), its size and its header (see shm_header_check). The fd
 * stays the caller's; it may be closed at once. */
int shm_attach(struct shm_region **out, int fd);

/* Unmaps; closes the fd when the region owns it. NULL is fine. */
void shm_free(struct shm_region *s);

int shm_fd(const struct shm_region *s);        /* -1 for an attached region */
size_t shm_size(const struct shm_region *s);   /* bytes mapped */
void *shm_base(const struct shm_region *s);    /* start of the mapping */
const struct shm_params *shm_get_params(const struct shm_region *s);

/* Opens one side of ring id of the region (see ring_open). The ring
 * handle must be closed before the region is freed. */
int shm_ring_open(struct shm_region *s, enum shm_ring_id id, enum ring_role role,
                  struct ring **out);

#endif
