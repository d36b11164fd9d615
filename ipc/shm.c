/* shm.c - sealed memfd session regions (see shm.h): creation by the daemon,
 * checked attachment by the client, and the rings inside. */
#include "shm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Linux 6.3 uapi; absent from older headers. Kernels without it refuse the
 * flag with EINVAL and the region is created without it. */
#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif

#define SHM_SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)

struct shm_region {
    void *base;
    size_t size;
    int fd; /* owned (creator) or -1 (attacher) */
    struct shm_params params;
};

static int shm_ring_params_ok(const struct ring_params *p)
{
    return ring_params_check(p) == 0 && p->capacity >= SHM_RING_CAPACITY_MIN &&
           p->capacity <= SHM_RING_CAPACITY_MAX;
}

int shm_layout(const struct shm_params *p, struct shm_header *hdr)
{
    if (!p || !hdr)
        return -EINVAL;
    memset(hdr, 0, sizeof *hdr);
    uint64_t off = SHM_DATA_OFFSET;
    for (unsigned i = 0; i < SHM_RING_COUNT; i++) {
        const struct ring_params *rp = &p->ring[i];
        if (!shm_ring_params_ok(rp))
            return -EINVAL;
        hdr->ring[i] = (struct shm_ring_desc){
            .ctl_offset = SHM_CTL_OFFSET + (uint64_t)i * SHM_CTL_STRIDE,
            .data_offset = off,
            .capacity = rp->capacity,
            .record_max = rp->record_max,
            .msg_max = rp->msg_max,
        };
        off += rp->capacity;
    }
    hdr->magic = SHM_MAGIC;
    hdr->version = SHM_VERSION;
    hdr->header_size = SHM_HEADER_SIZE;
    hdr->total_size = off;
    hdr->ring_count = SHM_RING_COUNT;
    return 0;
}

int shm_header_check(const void *hdr, size_t hdr_len, uint64_t file_size,
                     struct shm_params *out)
{
    if (!hdr || !out)
        return -EINVAL;
    if (hdr_len < sizeof(struct shm_header))
        return -EPROTO;
    struct shm_header h; /* one copy; every check below reads the copy */
    memcpy(&h, hdr, sizeof h);
    if (h.magic != SHM_MAGIC)
        return -EPROTO;
    if (h.version != SHM_VERSION)
        return -EPROTONOSUPPORT;
    if (h.header_size != SHM_HEADER_SIZE || h.ring_count != SHM_RING_COUNT ||
        h.flags != 0)
        return -EPROTO;
    struct shm_params p;
    for (unsigned i = 0; i < SHM_RING_COUNT; i++) {
        if (h.ring[i].reserved != 0)
            return -EPROTO;
        p.ring[i] = (struct ring_params){
            .capacity = h.ring[i].capacity,
            .record_max = h.ring[i].record_max,
            .msg_max = h.ring[i].msg_max,
        };
    }
    /* The layout follows from the parameters: anything else is refused. */
    struct shm_header want;
    if (shm_layout(&p, &want) != 0)
        return -EPROTO;
    if (memcmp(&want, &h, sizeof h) != 0 || h.total_size != file_size)
        return -EPROTO;
    *out = p;
    return 0;
}

int shm_create(struct shm_region **out, const struct shm_params *p)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    struct shm_header hdr;
    int rc = shm_layout(p, &hdr);
    if (rc < 0)
        return rc;
    struct shm_region *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->fd = -1;
    s->base = MAP_FAILED;
    s->params = *p;
    s->size = (size_t)hdr.total_size;

    s->fd = memfd_create("inferd-session",
                         MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL);
    if (s->fd < 0 && errno == EINVAL)
        s->fd = memfd_create("inferd-session", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (s->fd < 0) {
        rc = -errno;
        goto fail;
    }
    if (ftruncate(s->fd, (off_t)s->size) < 0) {
        rc = -errno;
        goto fail;
    }
    s->base = mmap(NULL, s->size, PROT_READ | PROT_WRITE, MAP_SHARED, s->fd, 0);
    if (s->base == MAP_FAILED) {
        rc = -errno;
        goto fail;
    }
    memcpy(s->base, &hdr, sizeof hdr);
    for (unsigned i = 0; i < SHM_RING_COUNT; i++)
        ring_ctl_init((struct ring_ctl *)((char *)s->base + hdr.ring[i].ctl_offset));
    if (fcntl(s->fd, F_ADD_SEALS, SHM_SEALS) < 0) {
        rc = -errno;
        goto fail;
    }
    *out = s;
    return 0;
fail:
    shm_free(s);
    return rc;
}

int shm_attach(struct shm_region **out, int fd)
{
    if (!out || fd < 0)
        return -EINVAL;
    *out = NULL;
    /* Seals first: once SHRINK and GROW are on, the size read next cannot
     * change under the mapping (no SIGBUS from a shrinking file). */
    int seals = fcntl(fd, F_GET_SEALS);
    if (seals < 0)
        return errno == EINVAL ? -EINVAL : -errno;
    if ((seals & SHM_SEALS) != SHM_SEALS)
        return -EPERM;
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode) || st.st_size < (off_t)(SHM_DATA_OFFSET + 2 * SHM_RING_CAPACITY_MIN) ||
        (uint64_t)st.st_size > SHM_SIZE_MAX)
        return -EPROTO;

    struct shm_region *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->fd = -1;
    s->size = (size_t)st.st_size;
    s->base = mmap(NULL, s->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (s->base == MAP_FAILED) {
        int rc = -errno;
        free(s);
        return rc;
    }
    int rc = shm_header_check(s->base, s->size, (uint64_t)st.st_size, &s->params);
    if (rc < 0) {
        shm_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void shm_free(struct shm_region *s)
{
    if (!s)
        return;
    if (s->base != MAP_FAILED && s->base)
        munmap(s->base, s->size);
    if (s->fd >= 0)
        close(s->fd);
    free(s);
}

int shm_fd(const struct shm_region *s)
{
    return s ? s->fd : -1;
}

size_t shm_size(const struct shm_region *s)
{
    return s ? s->size : 0;
}

void *shm_base(const struct shm_region *s)
{
    return s ? s->base : NULL;
}

const struct shm_params *shm_get_params(const struct shm_region *s)
{
    return s ? &s->params : NULL;
}

int shm_ring_open(struct shm_region *s, enum shm_ring_id id, enum ring_role role,
                  struct ring **out)
{
    if (!s || !out || (unsigned)id >= SHM_RING_COUNT)
        return -EINVAL;
    /* Offsets from the private copy of the layout, never from the header
     * in shared memory (the peer may have rewritten it since). */
    struct shm_header lay;
    if (shm_layout(&s->params, &lay) != 0)
        return -EINVAL;
    char *base = s->base;
    return ring_open(out, (struct ring_ctl *)(base + lay.ring[id].ctl_offset),
                     base + lay.ring[id].data_offset, &s->params.ring[id], role);
}
