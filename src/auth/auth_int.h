/*
 * Helpers shared by the files of src/auth; not part of the interface.
 */
#ifndef MC_AUTH_AUTH_INT_H
#define MC_AUTH_AUTH_INT_H

#include <stddef.h>

/*
 * Writes base64url without padding of the n bytes at in to out, which
 * must hold (4 * n + 2) / 3 + 1 bytes; NUL-terminates. Returns the length.
 * Allocates nothing (for secrets, which must not linger in heap buffers).
 */
size_t auth__b64url(const unsigned char *in, size_t n, char *out);

/*
 * 1 when the n bytes at s are printable ASCII without space (0x21..0x7e),
 * with min <= n <= max; else 0. For subjects, kids and created_by.
 */
int auth__token_text(const char *s, size_t n, size_t min, size_t max);

#endif
