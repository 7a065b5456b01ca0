/*
 * Inside the notice watcher: the bounded HTTP client that notice.c uses
 * to ask the metadata services (notice_http.c). Not part of the interface.
 */
#ifndef MC_WORKER_NOTICE_INT_H
#define MC_WORKER_NOTICE_INT_H

#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"

struct worker__http;

/* One response: status, capped body, and the headers we care about. */
struct worker__resp {
    long status;        /* HTTP status; 0 when none was read */
    struct buf body;    /* NUL-terminated, at most WORKER_BODY_MAX bytes */
    int flavor_google;  /* 1 when "Metadata-Flavor: Google" came back */
    int toobig;         /* 1 when the body was refused for passing the cap */
};

/* A libcurl handle with our limits; 0, ERR_NOMEM or ERR_INTERNAL. */
int worker__http_create(struct worker__http **out, struct err_detail *d) MC_WUR;
/* Frees h (and its connection); NULL is a no-op. */
void worker__http_destroy(struct worker__http *h);

/*
 * Sends method ("GET" or "PUT", empty body) to url with the header lines
 * hdrs (NULL-terminated array of "Name: value", may be NULL), waiting at
 * most timeout_ms for connect and for the whole exchange. Fills *r (reset
 * first) whatever the status. Returns 0 when a response came back;
 * ERR_UNAVAIL when the server could not be reached or timed out;
 * ERR_TOOBIG when the body passed WORKER_BODY_MAX; ERR_IO otherwise.
 * what names the request in d ("aws token", ...).
 */
int worker__http_call(struct worker__http *h, const char *method, const char *url,
                      const char *const *hdrs, int timeout_ms, struct worker__resp *r,
                      const char *what, struct err_detail *d) MC_WUR;

#endif
