/*
 * What the telemetry files share inside the component: the NVML source
 * (nvml.c) and the bounded HTTP GET of the scrapes (scrape.c).
 */
#ifndef MC_TELEMETRY_INT_H
#define MC_TELEMETRY_INT_H

#include "core/buf.h"
#include "telemetry/telemetry.h"

struct tel__nvml;

/*
 * Loads NVML from path (NULL or "": libnvidia-ml.so.1), initializes it and
 * finds its GPUs. Returns 0 with *out, or ERR_UNAVAIL with a sentence
 * (dlopen's or NVML's message) in d.
 */
int tel__nvml_open(struct tel__nvml **out, const char *path, struct err_detail *d);
/* Shuts NVML down and unloads it. */
void tel__nvml_close(struct tel__nvml *n);
/*
 * One sample per GPU at now_ms into out (at most max). Returns the count;
 * a reading NVML refuses (or a symbol it lacks) leaves its bit unset.
 */
int tel__nvml_sample(struct tel__nvml *n, int64_t now_ms, struct tel_gpu_sample *out, int max);

struct tel__http;

int tel__http_create(struct tel__http **out, struct err_detail *d);
void tel__http_destroy(struct tel__http *h);
/*
 * GET url (http:// only, no proxy, no redirects) into body, which is reset
 * first and capped at TEL_PROM_MAX_BODY. Returns 0 for a 200, ERR_UNAVAIL
 * when no answer came in timeout_ms, ERR_TOOBIG, or ERR_IO with detail.
 */
int tel__http_get(struct tel__http *h, const char *url, int timeout_ms, struct buf *body,
                  struct err_detail *d);

#endif
