/*
 * The S3 backend's bounded XML scanner (store_s3_xml.c), shared by
 * store_s3.c and the fuzz target tests/fuzz/fuzz_s3_list.c. It is not an
 * XML parser: it finds the first <Name>text</Name> of a few element names
 * S3 uses, in a buffer of known length, and decodes the entities S3 puts
 * in keys and tokens. Nothing here allocates or reads past the buffer.
 */
#ifndef MC_BACKUP_STORE_S3_INT_H
#define MC_BACKUP_STORE_S3_INT_H

#include <stddef.h>
#include <stdint.h>

#define S3_KEY_MAX 1024   /* S3's limit on a key, in bytes */

/*
 * Finds the text of the first <name>...</name> in [p, e). Returns 1 and
 * sets *tb and *te to the raw (still escaped) text, or 0 when absent. Only
 * the plain form "<name>" matches: S3 puts no attributes on these.
 */
int backup__s3_xml_elem(const char *p, const char *e, const char *name,
                        const char **tb, const char **te);

/*
 * Copies the XML text [b, e) into out (cap bytes with the NUL), decoding
 * the five named entities and &#N; / &#xN; for 0 < N < 128. Returns the
 * length, or -1 when it does not fit, holds a control byte, or an entity
 * it does not decode.
 */
long backup__s3_xml_text(const char *b, const char *e, char *out, size_t cap);

/*
 * Parses one ListObjectsV2 page of len bytes (not NUL-terminated): calls
 * cb(arg, key, size) for each <Contents>, in order, with the decoded key;
 * sets *truncated from <IsTruncated> and copies <NextContinuationToken>
 * into token (cap bytes; "" when absent). Returns 0, cb's non-zero
 * return, or ERR_PARSE for a page that is not a list result, a Contents
 * without a usable Key or Size, a key over S3_KEY_MAX bytes, or a
 * truncated page without a token.
 */
int backup__s3_xml_list(const char *xml, size_t len,
                        int (*cb)(void *arg, const char *key, uint64_t size), void *arg,
                        int *truncated, char *token, size_t cap);

#endif
