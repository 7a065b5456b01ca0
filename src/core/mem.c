/*
 * Allocation through one hook (see mem.h): the C library's allocator, with an
 * optional countdown after which allocations fail, for error-path tests.
 */
#include "core/mem.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static atomic_long fail_countdown = -1;

static int should_fail(void)
{
    long n = atomic_load_explicit(&fail_countdown, memory_order_relaxed);
    if (n < 0)
        return 0;
    if (n == 0)
        return 1;
    atomic_fetch_sub_explicit(&fail_countdown, 1, memory_order_relaxed);
    return 0;
}

void mem_fail_after(long n)
{
    atomic_store(&fail_countdown, n);
}

void *mem_malloc(size_t n)
{
    return should_fail() ? NULL : malloc(n ? n : 1);
}

void *mem_calloc(size_t nmemb, size_t size)
{
    return should_fail() ? NULL : calloc(nmemb ? nmemb : 1, size ? size : 1);
}

void *mem_realloc(void *p, size_t n)
{
    return should_fail() ? NULL : realloc(p, n ? n : 1);
}

void mem_free(void *p)
{
    free(p);
}

char *mem_strndup(const char *s, size_t n)
{
    char *d = mem_malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

char *mem_strdup(const char *s)
{
    return mem_strndup(s, strlen(s));
}
