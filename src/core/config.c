/*
 * The settings table and its parser (see config.h). Adding a setting means
 * one row here and one enum entry in config.h; flags, environment,
 * `--help` and `modelcat config` follow from the row.
 */
#include "core/config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/mem.h"

const struct cfg_def cfg_defs[CFG__COUNT] = {
    [CFG_LISTEN] = {"listen", CFG_T_STR, "127.0.0.1:8000", 0, 0, NULL, CMD_SERVE,
                    "address:port to listen on (IPv6 as [::1]:8000)"},
    [CFG_DB] = {"db", CFG_T_URL, "sqlite:./var/modelcat.db", 0, 0, NULL, CMD_STORE,
                "store URL: sqlite:PATH"},
    [CFG_DB_SYNC] = {"db-sync", CFG_T_ENUM, "full", 0, 0, "full|normal", CMD_STORE,
                     "SQLite durability: full fsyncs every commit"},
    [CFG_DB_BUSY_TIMEOUT] = {"db-busy-timeout", CFG_T_INT, "5000", 0, 600000, NULL,
                             CMD_STORE, "ms to wait for a locked store before 503"},
    [CFG_THREADS] = {"threads", CFG_T_INT, NULL, 1, 256, NULL, CMD_SERVE,
                     "HTTP worker threads (default: number of cores)"},
    [CFG_MAX_BODY] = {"max-body", CFG_T_SIZE, "1M", 1024, 1073741824, NULL, CMD_SERVE,
                      "largest request body accepted, bytes (K/M/G suffix)"},
    [CFG_MAX_CONNECTIONS] = {"max-connections", CFG_T_INT, "4096", 16, 1000000, NULL,
                             CMD_SERVE, "open client connections at most"},
    [CFG_IDLE_TIMEOUT] = {"idle-timeout", CFG_T_INT, "60", 1, 86400, NULL, CMD_SERVE,
                          "seconds before an idle connection is closed"},
    [CFG_SHUTDOWN_TIMEOUT] = {"shutdown-timeout", CFG_T_INT, "10", 0, 3600, NULL,
                              CMD_SERVE, "seconds to finish in-flight requests on SIGTERM"},
    [CFG_LOG_LEVEL] = {"log-level", CFG_T_ENUM, "info", 0, 0, "debug|info|warn|error",
                       CMD_ALL, "least severe level logged"},
    [CFG_LOG_FORMAT] = {"log-format", CFG_T_ENUM, "text", 0, 0, "text|json", CMD_ALL,
                        "log line format"},
    [CFG_DEMO] = {"demo", CFG_T_BOOL, "0", 0, 1, NULL, CMD_SEED,
                  "load the demo catalog (models and GPU prices)"},
};

/* "max-body" -> "MODELCAT_MAX_BODY" */
static void env_name(char *out, size_t n, const char *name)
{
    size_t i = (size_t)snprintf(out, n, "MODELCAT_");
    for (; *name && i + 1 < n; name++)
        out[i++] = *name == '-' ? '_' : (char)toupper((unsigned char)*name);
    out[i] = '\0';
}

static int parse_int(const char *s, int64_t *out, int is_size)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || errno)
        return -1;
    if (is_size && *end) {
        int64_t mul = 1;
        switch (*end) {
        case 'k': case 'K': mul = 1024; break;
        case 'm': case 'M': mul = 1024 * 1024; break;
        case 'g': case 'G': mul = 1024 * 1024 * 1024; break;
        default: return -1;
        }
        end++;
        if (v > INT64_MAX / mul || v < INT64_MIN / mul)
            return -1;
        v *= mul;
    }
    if (*end)
        return -1;
    *out = v;
    return 0;
}

static int enum_has(const char *choices, const char *v)
{
    size_t n = strlen(v);
    for (const char *p = choices; *p;) {
        const char *e = strchr(p, '|');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && memcmp(p, v, n) == 0)
            return 1;
        p += len + (e != NULL);
    }
    return 0;
}

/* Validates v for setting i and stores it. */
static int set_value(struct cfg *c, int i, const char *v, enum cfg_source src,
                     struct err_detail *d)
{
    const struct cfg_def *def = &cfg_defs[i];
    char label[80];
    if (src == CFG_SRC_ENV)
        env_name(label, sizeof(label), def->name);
    else
        snprintf(label, sizeof(label), "--%s", def->name);
    int64_t n = 0;
    double x = 0;
    switch (def->type) {
    case CFG_T_DOUBLE: {
        char *end;
        errno = 0;
        x = strtod(v, &end);
        if (end == v || *end || errno || !isfinite(x))
            return err_set(d, ERR_INVAL, def->name, "%s: '%s' is not a number", label, v);
        if (x < def->min || x > def->max)
            return err_set(d, ERR_INVAL, def->name, "%s: %s is out of range (%g..%g)",
                           label, v, def->min, def->max);
        break;
    }
    case CFG_T_INT:
    case CFG_T_SIZE:
        if (parse_int(v, &n, def->type == CFG_T_SIZE))
            return err_set(d, ERR_INVAL, def->name, "%s: '%s' is not %s", label,
                           v, def->type == CFG_T_SIZE ? "a size" : "an integer");
        if ((double)n < def->min || (double)n > def->max)
            return err_set(d, ERR_INVAL, def->name,
                           "%s: %s is out of range (%.0f..%.0f)", label, v,
                           def->min, def->max);
        x = (double)n;
        break;
    case CFG_T_BOOL:
        if (!strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "yes"))
            n = 1;
        else if (!strcmp(v, "0") || !strcmp(v, "false") || !strcmp(v, "no"))
            n = 0;
        else
            return err_set(d, ERR_INVAL, def->name, "%s: '%s' is not a boolean",
                           label, v);
        break;
    case CFG_T_ENUM:
        if (!enum_has(def->choices, v))
            return err_set(d, ERR_INVAL, def->name, "%s: '%s' is not one of %s",
                           label, v, def->choices);
        break;
    case CFG_T_STR:
    case CFG_T_URL:
        if (!*v || strlen(v) > 4096)
            return err_set(d, ERR_INVAL, def->name, "%s: empty or too long", label);
        break;
    }
    char *copy = mem_strdup(v);
    if (!copy)
        return err_set(d, ERR_NOMEM, def->name, "out of memory");
    mem_free((void *)c->str[i]);
    c->str[i] = copy;
    c->num[i] = n;
    c->dbl[i] = x;
    c->src[i] = src;
    return 0;
}

int cfg_load(struct cfg *c, unsigned cmd, int argc, char **argv,
             struct err_detail *d)
{
    int rc = 0;
    memset(c, 0, sizeof(*c));
    c->cmd = cmd;
    for (int i = 0; i < CFG__COUNT; i++) {
        char tmp[24];
        const char *v = cfg_defs[i].def;
        if (!v) { /* computed defaults */
            long n = sysconf(_SC_NPROCESSORS_ONLN);
            snprintf(tmp, sizeof(tmp), "%ld", n < 1 ? 1 : n > 256 ? 256 : n);
            v = tmp;
        }
        if ((rc = set_value(c, i, v, CFG_SRC_DEFAULT, d)))
            goto out;
    }
    for (int i = 0; i < CFG__COUNT; i++) {
        char name[80];
        if (!(cfg_defs[i].cmds & cmd))
            continue;
        env_name(name, sizeof(name), cfg_defs[i].name);
        const char *v = getenv(name);
        if (v && (rc = set_value(c, i, v, CFG_SRC_ENV, d)))
            goto out;
    }
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a];
        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
            if (arg[0] == '-' && arg[1] != '\0' && strcmp(arg, "--") != 0) {
                rc = err_set(d, ERR_INVAL, "", "unknown flag '%s'", arg);
                goto out;
            }
            if (c->nargs >= (int)(sizeof(c->args) / sizeof(c->args[0]))) {
                rc = err_set(d, ERR_INVAL, "", "too many arguments");
                goto out;
            }
            c->args[c->nargs++] = argv[a];
            continue;
        }
        const char *name = arg + 2, *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        int i;
        for (i = 0; i < CFG__COUNT; i++)
            if ((cfg_defs[i].cmds & cmd) && strlen(cfg_defs[i].name) == nlen &&
                memcmp(cfg_defs[i].name, name, nlen) == 0)
                break;
        if (i == CFG__COUNT) {
            rc = err_set(d, ERR_INVAL, "", "unknown flag '--%.*s'", (int)nlen, name);
            goto out;
        }
        const char *v;
        if (eq)
            v = eq + 1;
        else if (cfg_defs[i].type == CFG_T_BOOL)
            v = "1";
        else if (a + 1 < argc)
            v = argv[++a];
        else {
            rc = err_set(d, ERR_INVAL, cfg_defs[i].name, "--%s needs a value",
                         cfg_defs[i].name);
            goto out;
        }
        if ((rc = set_value(c, i, v, CFG_SRC_FLAG, d)))
            goto out;
    }
out:
    if (rc)
        cfg_free(c);
    return rc;
}

void cfg_free(struct cfg *c)
{
    for (int i = 0; i < CFG__COUNT; i++) {
        mem_free((void *)c->str[i]);
        c->str[i] = NULL;
    }
}

void cfg_print_help(void *fp, unsigned cmd)
{
    FILE *f = fp;
    for (int i = 0; i < CFG__COUNT; i++) {
        const struct cfg_def *def = &cfg_defs[i];
        char flag[64], env[80];
        if (!(def->cmds & cmd))
            continue;
        env_name(env, sizeof(env), def->name);
        snprintf(flag, sizeof(flag), "--%s%s", def->name,
                 def->type == CFG_T_BOOL ? "" : " V");
        fprintf(f, "  %-24s %s\n  %-24s [%s; default %s", flag, def->help, "",
                env, def->def ? def->def : "auto");
        if (def->type == CFG_T_INT || def->type == CFG_T_SIZE)
            fprintf(f, "; %.0f..%.0f", def->min, def->max);
        if (def->type == CFG_T_DOUBLE)
            fprintf(f, "; %g..%g", def->min, def->max);
        if (def->type == CFG_T_ENUM)
            fprintf(f, "; %s", def->choices);
        fprintf(f, "]\n");
    }
}

void cfg_mask_url(char *out, size_t outlen, const char *url)
{
    const char *scheme = strstr(url, "://");
    const char *at = scheme ? strchr(scheme + 3, '@') : NULL;
    const char *colon = at ? memchr(scheme + 3, ':', (size_t)(at - scheme - 3)) : NULL;
    if (!colon) {
        snprintf(out, outlen, "%s", url);
        return;
    }
    snprintf(out, outlen, "%.*s:****%s", (int)(colon - url), url, at);
}

void cfg_print(void *fp, const struct cfg *c)
{
    FILE *f = fp;
    for (int i = 0; i < CFG__COUNT; i++) {
        char v[512];
        if (cfg_defs[i].type == CFG_T_URL)
            cfg_mask_url(v, sizeof(v), c->str[i]);
        else if (cfg_defs[i].type == CFG_T_SIZE)
            snprintf(v, sizeof(v), "%lld", (long long)c->num[i]);
        else
            snprintf(v, sizeof(v), "%s", c->str[i]);
        if (cfg_defs[i].scope)
            fprintf(f, "%s.%s = %s\n", cfg_defs[i].scope, cfg_defs[i].name, v);
        else
            fprintf(f, "%s = %s\n", cfg_defs[i].name, v);
    }
}
