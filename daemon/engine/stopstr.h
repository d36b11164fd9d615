/* stopstr.h - generated text with stop strings: accumulates token pieces,
 * cuts the text before the first stop string, and releases only text that
 * no stop string can still claim (a suffix that could start one is held
 * back until the next piece decides). */
#ifndef INFERD_STOPSTR_H
#define INFERD_STOPSTR_H

#include <stdbool.h>
#include <stddef.h>

struct stopstr {
    char *buf;      /* NUL-terminated */
    size_t len, cap;
    size_t emitted; /* bytes already released */
};

/* Append n bytes. Returns 1 when a stop string now occurs (the text is cut
 * where it starts), 0 otherwise, or -ENOMEM. */
int stopstr_add(struct stopstr *t, const char *piece, size_t n, const char *const *stop,
                size_t n_stop);
/* The releasable text since the last call (all of it when final): pointer
 * into the buffer and its length (0 if nothing). */
const char *stopstr_take(struct stopstr *t, bool final, const char *const *stop, size_t n_stop,
                         size_t *len);
void stopstr_free(struct stopstr *t);

#endif
