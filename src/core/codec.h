/*
 * Small encoders: base64url (cursors), hex, percent-decoding (URL paths and
 * query strings), FNV-1a hashing (ETags) and random ids (UUIDv7).
 */
#ifndef MC_CORE_CODEC_H
#define MC_CORE_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

/* Appends base64url without padding of n bytes at p to b. */
void codec_b64url_encode(struct buf *b, const void *p, size_t n);
/*
 * Decodes base64url (no padding, no whitespace) of n chars at s into out
 * (capacity outcap). Returns the decoded length, or -1 on a bad character,
 * a bad length or overflow of out.
 */
long codec_b64url_decode(const char *s, size_t n, unsigned char *out,
                         size_t outcap);

/*
 * Percent-decodes n bytes at s into out (capacity >= n + 1, NUL-terminated);
 * with plus_space, '+' becomes ' ' (query strings). Returns the length, or
 * -1 on a malformed escape or a decoded NUL byte.
 */
long codec_pct_decode(const char *s, size_t n, char *out, int plus_space);
/* Appends s percent-encoded for one path segment (unreserved kept). */
void codec_pct_encode(struct buf *b, const char *s, size_t n);

uint64_t codec_fnv1a64(const void *p, size_t n, uint64_t h);
#define CODEC_FNV_INIT 0xcbf29ce484222325ULL

/* Writes a random UUIDv7 for time ms (36 chars + NUL) into out[37]. 0 or -1. */
int codec_uuid7(char out[37], int64_t ms);

/* 1 when the n bytes at s are valid UTF-8 without NUL, else 0. */
int codec_utf8_valid(const char *s, size_t n);

#endif
