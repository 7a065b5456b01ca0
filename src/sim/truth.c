/*
 * The truth file (--truth FILE.jsonl): one JSON line per generation request
 * that finished or failed, with the instants the server itself saw, so a
 * benchmark client's measurements can be checked against the server side.
 * Lines go through a 1 MiB stdio buffer (a write(2) per line would cost
 * more than the event it describes) and are flushed when the simulator
 * stops.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/jw.h"
#include "core/mem.h"
#include "sim/sim_int.h"

#define TRUTH_BUF (1 << 20)

int sim__truth_open(struct sim__truth *t, const char *path, struct err_detail *d)
{
    t->f = NULL;
    t->vbuf = NULL;
    if (!path)
        return 0;
    t->f = fopen(path, "w");
    if (!t->f)
        return err_set(d, ERR_IO, "truth", "cannot open %s: %s", path, strerror(errno));
    t->vbuf = mem_malloc(TRUTH_BUF);
    if (t->vbuf)
        setvbuf(t->f, t->vbuf, _IOFBF, TRUTH_BUF);
    return 0;
}

static void opt_ns(struct jw *w, const char *key, int64_t v)
{
    jw_key(w, key);
    if (v < 0)
        jw_null(w);
    else
        jw_i64(w, v);
}

void sim__truth_write(struct sim__truth *t, const struct sim__truth_rec *r)
{
    if (!t->f)
        return;
    struct buf b;
    buf_init(&b, 4096);
    struct jw w;
    jw_init(&w, &b);
    jw_obj_open(&w);
    jw_key(&w, "request_id");
    jw_cstr(&w, r->request_id);
    jw_key(&w, "traceparent");
    jw_cstr(&w, r->traceparent && r->traceparent[0] ? r->traceparent : NULL);
    jw_key(&w, "endpoint");
    jw_cstr(&w, r->endpoint);
    jw_key(&w, "status");
    jw_i64(&w, r->status);
    jw_key(&w, "arrival_ns");
    jw_i64(&w, r->arrival_ns);
    opt_ns(&w, "first_token_ns", r->first_ns);
    opt_ns(&w, "last_token_ns", r->last_ns);
    jw_key(&w, "prompt_tokens");
    jw_i64(&w, r->prompt_tokens);
    jw_key(&w, "output_tokens");
    jw_i64(&w, r->output_tokens);
    jw_key(&w, "fault");
    jw_cstr(&w, r->fault);
    jw_obj_close(&w);
    buf_putc(&b, '\n');
    if (!buf_err(&b))
        fwrite(b.p, 1, b.len, t->f);
    buf_free(&b);
}

int sim__truth_close(struct sim__truth *t)
{
    int rc = 0;
    if (t->f && fclose(t->f) != 0)
        rc = ERR_IO;
    t->f = NULL;
    mem_free(t->vbuf);
    t->vbuf = NULL;
    return rc;
}
