/*
 * The S3 backend's bounded XML scanner (backup/store_s3_xml.c) on
 * arbitrary bytes: ListObjectsV2 pages with every key checked to be
 * NUL-free and at most 1024 bytes, plus the <Code> and <UploadId>
 * look-ups the error and multipart paths make. The input is copied to a
 * buffer of exactly its size, so reads past the end are caught.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backup/store_s3_xml.c"

static int on_key(void *arg, const char *key, uint64_t size)
{
    (void)size;
    size_t n = strlen(key);
    if (n == 0 || n > S3_KEY_MAX)
        abort();
    ++*(int *)arg;
    return *(int *)arg > 100000;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data, *tb, *te;
    char token[2048], code[64];
    int truncated, n = 0;
    int rc = backup__s3_xml_list(p, size, on_key, &n, &truncated, token, sizeof(token));
    if (rc == 0 && truncated && (token[0] == '\0' || strlen(token) >= sizeof(token)))
        abort();
    if (backup__s3_xml_elem(p, p + size, "Code", &tb, &te)) {
        if (tb < p || te > p + size || tb > te)
            abort();
        long l = backup__s3_xml_text(tb, te, code, sizeof(code));
        if (l >= (long)sizeof(code))
            abort();
    }
    if (backup__s3_xml_elem(p, p + size, "UploadId", &tb, &te) &&
        (tb < p || te > p + size || tb > te))
        abort();
    return 0;
}
