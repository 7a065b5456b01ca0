/*
 * Leveled logging to stderr. The macros test the level before formatting
 * anything, so a disabled debug line costs one comparison. Text lines by
 * default, one JSON object per line with log_set_format(LOG_FMT_JSON).
 * Libraries (db, catalog, parsers) return errors and do not log.
 */
#ifndef MC_CORE_LOG_H
#define MC_CORE_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_OFF };
enum log_format { LOG_FMT_TEXT, LOG_FMT_JSON };

extern enum log_level log_min_level;

void log_set_level(enum log_level l);
void log_set_format(enum log_format f);
/* Parses "debug", "info", "warn", "error"; returns -1 when unknown. */
int log_level_parse(const char *s);

/* ctx: component or request context ("serve", "req=42"), may be NULL. */
void log_write(enum log_level l, const char *ctx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_at(l, ctx, ...) \
    do { if ((l) >= log_min_level) log_write((l), (ctx), __VA_ARGS__); } while (0)
#define log_debug(ctx, ...) log_at(LOG_DEBUG, ctx, __VA_ARGS__)
#define log_info(ctx, ...) log_at(LOG_INFO, ctx, __VA_ARGS__)
#define log_warn(ctx, ...) log_at(LOG_WARN, ctx, __VA_ARGS__)
#define log_error(ctx, ...) log_at(LOG_ERROR, ctx, __VA_ARGS__)

#endif
