/* client_impl.h - what client.c and client_msg.c share inside
 * libinferclient (nothing here is exported). */
#ifndef INFERCLIENT_IMPL_H
#define INFERCLIENT_IMPL_H

#include "inferclient.h"

#include "ipc/ring.h"
#include "ipc/shm.h"
#include "ipc/wire.h"

#include <stdalign.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A received message kept for later delivery. */
struct cl_msg {
    struct cl_msg *next;
    size_t len;
    alignas(8) unsigned char data[];
};

struct infer_client {
    int sock, bell_daemon, bell_client, epfd;
    struct shm_region *shm;
    struct ring *sub, *comp;
    struct wire_builder *b;
    struct wire_limits lim;
    uint64_t session_id;
    uint64_t next_id;
    uint64_t spin_ns;     /* the most a wait spins before sleeping */
    uint64_t spin_cur_ns; /* what the next wait spins (adaptive) */
    bool armed;  /* NEED_WAKEUP announced: drain the doorbell before reading */
    bool gone;   /* the daemon hung up */
    bool broken; /* the completion ring is impossible */

    struct cl_msg *q_head, *q_tail; /* events that arrived during other calls */
    unsigned char *rx;              /* the message being read (ring msg_max bytes) */
    size_t rx_cap;
    unsigned char *cur;             /* the queued message behind the current event */

    /* storage behind the current event */
    char *text;
    size_t text_cap;
    float *lp;
    size_t lp_cap;
    struct infer_top_logprob *top;
    size_t top_cap;
    uint8_t finish1; /* DONE of a request with n = 1: its sample_finish */
};

uint64_t cl_now_ns(void);
void cl_disarm(struct infer_client *c);
int cl_wait_complete(struct infer_client *c, uint64_t deadline_ns);
int cl_recv(struct infer_client *c, size_t *len);
int cl_queue_rx(struct infer_client *c, size_t len);
int cl_send(struct infer_client *c, const void *buf, size_t len);

/* client_msg.c */
int cl_hello(struct infer_client *c, const struct infer_connect_opts *o);
/* Fills ev from a TokenChunk / Done / Error; -ENOMSG for other messages
 * (dropped), -EPROTO when it does not verify. */
int cl_decode_event(struct infer_client *c, const void *buf, size_t len, struct infer_event *ev);

#endif
