/*
 * Log line formatting (see log.h). A line is formatted into a stack buffer
 * and written with one write(2), so lines from different threads never
 * interleave.
 */
#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/jw.h"
#include "core/timeutil.h"

enum log_level log_min_level = LOG_INFO;
static enum log_format log_fmt = LOG_FMT_TEXT;

static const char *const names[] = {"debug", "info", "warn", "error"};

void log_set_level(enum log_level l) { log_min_level = l; }
void log_set_format(enum log_format f) { log_fmt = f; }

int log_level_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

void log_write(enum log_level l, const char *ctx, const char *fmt, ...)
{
    char msg[1024], ts[40];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    time_fmt_rfc3339(ts, sizeof(ts), time_wall_ms());

    struct buf b;
    buf_init(&b, 4096);
    if (log_fmt == LOG_FMT_JSON) {
        struct jw w;
        jw_init(&w, &b);
        jw_obj_open(&w);
        jw_key(&w, "ts"); jw_cstr(&w, ts);
        jw_key(&w, "level"); jw_cstr(&w, names[l < 4 ? l : 3]);
        if (ctx) { jw_key(&w, "ctx"); jw_cstr(&w, ctx); }
        jw_key(&w, "msg"); jw_cstr(&w, msg);
        jw_obj_close(&w);
    } else {
        buf_printf(&b, "%s %-5s %s%s%s", ts, names[l < 4 ? l : 3],
                   ctx ? ctx : "", ctx ? ": " : "", msg);
    }
    buf_putc(&b, '\n');
    if (!buf_err(&b)) {
        ssize_t rc = write(STDERR_FILENO, b.p, b.len);
        (void)rc;
    }
    buf_free(&b);
}
