/*
 * The one allocation hook. Every allocation of ours goes through these, so
 * tests can make the Nth allocation fail (mem_fail_after) and check that
 * each error path cleans up. Default: the C library's allocator.
 */
#ifndef MC_CORE_MEM_H
#define MC_CORE_MEM_H

#include <stddef.h>

void *mem_malloc(size_t n);
void *mem_calloc(size_t nmemb, size_t size);
void *mem_realloc(void *p, size_t n);
void mem_free(void *p);
/* Copy of the n bytes at s plus a NUL; NULL when out of memory. */
char *mem_strndup(const char *s, size_t n);
char *mem_strdup(const char *s);

/*
 * Test hook: after `n` more successful allocations, every allocation fails
 * until mem_fail_after(-1) turns failure injection off.
 */
void mem_fail_after(long n);

#endif
