/*
 * The S3-compatible backup store: AWS S3, or any server that speaks its
 * REST API (MinIO, Ceph RGW, s3rver) when --s3-endpoint names one. One
 * libcurl easy handle per store, reset before every request and set up
 * with the limits that make a remote store safe to talk to: http and https
 * only, no redirects, a connect timeout, a total timeout for the small
 * requests and a stall timeout (no byte for timeout_ms) for the streaming
 * ones, and every response body that we keep in memory capped at
 * S3_XML_MAX. A store is not thread-safe; open one per thread.
 *
 * DESIGN. Requests are signed by libcurl (CURLOPT_AWS_SIGV4, curl >=
 * 7.75) with the keys from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and
 * x-amz-security-token from AWS_SESSION_TOKEN. Every request carries
 * "x-amz-content-sha256: UNSIGNED-PAYLOAD", which curl then signs as is,
 * so a body never has to be hashed (or held) before it is sent. curl
 * 7.88 signs the query string as written, so every URL here spells its
 * query in canonical form: names sorted, values percent-encoded, and
 * "name=" for a bare flag. Without an endpoint the URL is virtual-host
 * style (https://BUCKET.s3.REGION.amazonaws.com/KEY); with one it is
 * path style (ENDPOINT/BUCKET/KEY).
 *
 * put streams the fd through CURLOPT_READFUNCTION (pread at an offset,
 * or read() for a pipe). Objects over S3_MULTIPART_MIN go up in parts of
 * S3_PART_SIZE (more when 10,000 parts would not hold the object), each
 * streamed the same way; a failure aborts the upload so no parts are
 * left behind. get streams into the fd and stops at max bytes. Error
 * bodies, list pages and multipart answers are parsed by a small bounded
 * scanner (xml_elem, xml_text, s3_xml_list) that only looks for the few elements we need; it
 * is fuzzed by tests/fuzz/fuzz_s3_list.c.
 */
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>
#include <unistd.h>

#include "backup/store.h"
#include "core/buf.h"
#include "backup/store_s3_int.h"
#include "core/mem.h"

#define S3_XML_MAX (64 * 1024)            /* cap on a response body kept in memory */
#define S3_MULTIPART_MIN (64ull << 20)    /* larger objects go up in parts */
#define S3_PART_SIZE (16ull << 20)        /* default part size */
#define S3_MAX_PARTS 10000                /* S3's limit */
#define S3_ETAG_MAX 128
#define S3_URL_MAX (S3_KEY_MAX * 3 + 1024)
#define S3_DEFAULT_TIMEOUT_MS 30000

struct s3_store {
    struct backup_store base;   /* first: the store interface */
    CURL *easy;
    char *base_url;             /* ".../bucket" (path) or "https://bucket.s3..." (vhost) */
    char *host;                 /* for messages: the endpoint, without credentials */
    char *prefix;               /* "" or "dir/" prepended to every key */
    char *sigv4;                /* "aws:amz:REGION:s3" */
    char *access_key, *secret_key;
    char *token_hdr;            /* "x-amz-security-token: ..." or NULL */
    int timeout_ms;
    int max_keys;               /* list page size; 0: the server's (1000) */
    uint64_t part_size;         /* 0: S3_PART_SIZE; tests may lower it */
    uint64_t multipart_min;     /* 0: S3_MULTIPART_MIN; tests may lower it */
    char errbuf[CURL_ERROR_SIZE];
};

/* One request: where its body comes from and where the answer goes. */
struct s3_req {
    const char *method;         /* GET, PUT, POST, DELETE */
    const char *url;
    int stream;                 /* 1: stall timeout instead of a total timeout */
    /* Request body: from in_fd (in_len bytes at in_off, or read() when
     * in_off < 0), or from in_mem. */
    int in_fd;
    off_t in_off;
    uint64_t in_len, in_done;
    const char *in_mem;
    size_t in_mem_len;
    /* Response body: a 2xx body goes to out_fd when out_fd >= 0 (at most
     * out_max bytes); anything else into xml (capped). */
    int out_fd;
    uint64_t out_max, out_done;
    struct buf xml;
    char etag[S3_ETAG_MAX];
    long status;
    int fail;                   /* our code when a callback stopped the transfer */
    int fail_errno;
};

/* ------------------------------------------------------------------ */
/* Requests                                                           */
/* ------------------------------------------------------------------ */

/* Appends s percent-encoded (RFC 3986 unreserved kept; '/' kept if slash). */
static void put_enc(struct buf *b, const char *s, int slash)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~' || (slash && c == '/')) {
            buf_putc(b, (char)c);
        } else {
            buf_putc(b, '%');
            buf_putc(b, hex[c >> 4]);
            buf_putc(b, hex[c & 15]);
        }
    }
}

/* Appends BASE/PREFIXKEY to b. */
static void put_obj_url(struct buf *b, const struct s3_store *s, const char *key)
{
    buf_puts(b, s->base_url);
    buf_putc(b, '/');
    put_enc(b, s->prefix, 1);
    put_enc(b, key, 1);
}

/* Sends the request body: from memory, pread at an offset, or read(). */
static size_t on_read(char *p, size_t size, size_t nmemb, void *arg)
{
    struct s3_req *r = arg;
    size_t want = size * nmemb;
    if (r->in_mem) {
        size_t left = r->in_mem_len - (size_t)r->in_done;
        size_t n = want < left ? want : left;
        memcpy(p, r->in_mem + r->in_done, n);
        r->in_done += n;
        return n;
    }
    uint64_t left = r->in_len - r->in_done;
    if (left == 0)
        return 0;
    if (want > left)
        want = (size_t)left;
    ssize_t n;
    do {
        n = r->in_off >= 0 ? pread(r->in_fd, p, want, r->in_off + (off_t)r->in_done)
                           : read(r->in_fd, p, want);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) {
        r->fail = ERR_IO;
        r->fail_errno = n < 0 ? errno : 0;
        return CURL_READFUNC_ABORT;
    }
    r->in_done += (uint64_t)n;
    return (size_t)n;
}

/* Rewinds the request body when curl must send it again. */
static int on_seek(void *arg, curl_off_t off, int origin)
{
    struct s3_req *r = arg;
    if (origin != SEEK_SET || off < 0 || (r->in_fd >= 0 && r->in_off < 0))
        return CURL_SEEKFUNC_CANTSEEK;
    uint64_t lim = r->in_mem ? r->in_mem_len : r->in_len;
    if ((uint64_t)off > lim)
        return CURL_SEEKFUNC_FAIL;
    r->in_done = (uint64_t)off;
    return CURL_SEEKFUNC_OK;
}

/* Writes all of [p, p+n) to fd; 0 or -1 with errno. */
static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* A 2xx body to out_fd (up to out_max), anything else into xml (capped). */
static size_t on_write(char *p, size_t size, size_t nmemb, void *arg)
{
    struct s3_req *r = arg;
    size_t n = size * nmemb;
    if (r->out_fd >= 0 && r->status / 100 == 2) {
        if (r->out_done + n > r->out_max) {
            r->fail = ERR_RANGE;
            return 0;
        }
        if (write_all(r->out_fd, p, n)) {
            r->fail = ERR_IO;
            r->fail_errno = errno;
            return 0;
        }
        r->out_done += n;
        return n;
    }
    buf_append(&r->xml, p, n);
    if (buf_err(&r->xml)) {
        r->fail = buf_err(&r->xml);
        return 0;
    }
    return n;
}

/* Notes the status line and the ETag header. */
static size_t on_header(char *p, size_t size, size_t nmemb, void *arg)
{
    struct s3_req *r = arg;
    size_t n = size * nmemb;
    if (n > 5 && memcmp(p, "HTTP/", 5) == 0) {
        /* A new response (after 100 Continue, say): forget the last one. */
        long st = 0;
        const char *q = memchr(p, ' ', n);
        for (q = q ? q + 1 : p + n; q < p + n && *q >= '0' && *q <= '9' && st < 1000; q++)
            st = st * 10 + (*q - '0');
        r->status = st;
        r->etag[0] = '\0';
    } else if (n > 5 && strncasecmp(p, "ETag:", 5) == 0) {
        const char *v = p + 5, *e = p + n;
        while (v < e && (*v == ' ' || *v == '\t'))
            v++;
        while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' ' || e[-1] == '\t'))
            e--;
        size_t l = (size_t)(e - v);
        if (l < sizeof(r->etag)) {
            memcpy(r->etag, v, l);
            r->etag[l] = '\0';
        }
    }
    return n;
}

/* Sets the options every request shares; CURLE_OK or the failing code. */
static CURLcode setup(struct s3_store *s, struct s3_req *r, struct curl_slist *hdrs)
{
    CURL *c = s->easy;
    CURLcode cc = CURLE_OK;
    long secs = (s->timeout_ms + 999) / 1000;
#define SET(opt, val) if (cc == CURLE_OK) cc = curl_easy_setopt(c, opt, val)
    SET(CURLOPT_URL, r->url);
#if LIBCURL_VERSION_NUM >= 0x075500
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
    SET(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
    SET(CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_CONNECTTIMEOUT_MS, (long)s->timeout_ms);
    if (r->stream) {
        SET(CURLOPT_LOW_SPEED_LIMIT, 1L);
        SET(CURLOPT_LOW_SPEED_TIME, secs);
    } else {
        SET(CURLOPT_TIMEOUT_MS, (long)s->timeout_ms);
    }
    SET(CURLOPT_AWS_SIGV4, s->sigv4);
    SET(CURLOPT_USERNAME, s->access_key);
    SET(CURLOPT_PASSWORD, s->secret_key);
    SET(CURLOPT_HTTPHEADER, hdrs);
    SET(CURLOPT_WRITEFUNCTION, on_write);
    SET(CURLOPT_WRITEDATA, r);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, r);
    SET(CURLOPT_ERRORBUFFER, s->errbuf);
    SET(CURLOPT_USERAGENT, "modelcat-backup/" MODELCAT_VERSION);
    if (strcmp(r->method, "PUT") == 0) {
        SET(CURLOPT_UPLOAD, 1L);
        SET(CURLOPT_INFILESIZE_LARGE, (curl_off_t)r->in_len);
    } else if (strcmp(r->method, "POST") == 0) {
        SET(CURLOPT_POST, 1L);
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->in_mem_len);
    } else if (strcmp(r->method, "DELETE") == 0) {
        SET(CURLOPT_CUSTOMREQUEST, "DELETE");
    }
    if (r->in_mem || r->in_fd >= 0) {
        SET(CURLOPT_READFUNCTION, on_read);
        SET(CURLOPT_READDATA, r);
        SET(CURLOPT_SEEKFUNCTION, on_seek);
        SET(CURLOPT_SEEKDATA, r);
    }
#undef SET
    return cc;
}

/* Our code and message for a failed transfer or a non-2xx answer. */
static int fail_detail(struct s3_store *s, struct s3_req *r, CURLcode cc, const char *what,
                       struct err_detail *d)
{
    const char *tb, *te, *x = r->xml.p ? r->xml.p : "";
    char code[64] = "";
    if (cc != CURLE_OK) {
        if (r->fail == ERR_RANGE)
            return err_set(d, ERR_RANGE, "", "%s: the object is larger than %" PRIu64 " bytes",
                           what, r->out_max);
        if (r->fail == ERR_IO)
            return err_set(d, ERR_IO, "", "%s: %s", what,
                           r->fail_errno == ENOSPC ? "no space left on device"
                           : r->fail_errno ? strerror(r->fail_errno)
                                           : "the file ended before its size");
        if (r->fail == ERR_TOOBIG || r->fail == ERR_NOMEM)
            return err_set(d, r->fail, "", "%s: response body over %d bytes", what, S3_XML_MAX);
        const char *m = s->errbuf[0] ? s->errbuf : curl_easy_strerror(cc);
        switch (cc) {
        case CURLE_COULDNT_CONNECT:
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
        case CURLE_OPERATION_TIMEDOUT:
        case CURLE_SEND_ERROR:
        case CURLE_RECV_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_SSL_CONNECT_ERROR:
            return err_set(d, ERR_UNAVAIL, "", "cannot reach the object store at %s: %s",
                           s->host, m);
        default:
            return err_set(d, ERR_IO, "", "%s: %s", what, m);
        }
    }
    if (backup__s3_xml_elem(x, x + r->xml.len, "Code", &tb, &te) &&
        backup__s3_xml_text(tb, te, code, sizeof(code)) < 0)
        code[0] = '\0';
    if (r->status == 401 || r->status == 403)
        return err_set(d, ERR_DENIED, "", "the object store refused the credentials: %s",
                       code[0] ? code : r->status == 401 ? "401 Unauthorized" : "403 Forbidden");
    if (r->status == 404)
        return err_set(d, ERR_NOTFOUND, "", "%s: %s", what, code[0] ? code : "404 Not Found");
    if (r->status == 503 || r->status == 500)
        return err_set(d, ERR_UNAVAIL, "", "%s: the object store answered %ld %s", what,
                       r->status, code);
    return err_set(d, ERR_IO, "", "%s: the object store answered %ld %s", what, r->status,
                   code);
}

/*
 * Runs one request. Returns 0 for a 2xx answer (a body not sent to
 * out_fd is in r->xml), or our code with detail in d.
 */
static int request(struct s3_store *s, struct s3_req *r, const char *what,
                   struct err_detail *d)
{
    struct curl_slist *h = NULL, *t;
    int rc = 0;
    r->status = 0;
    r->fail = 0;
    r->fail_errno = 0;
    r->etag[0] = '\0';
    r->in_done = r->out_done = 0;
    buf_reset(&r->xml);
    s->errbuf[0] = '\0';
    curl_easy_reset(s->easy);
    const char *hv[] = {"x-amz-content-sha256: UNSIGNED-PAYLOAD", "Expect:", s->token_hdr,
                        r->in_mem ? "Content-Type: application/xml" : NULL};
    for (size_t i = 0; i < sizeof(hv) / sizeof(hv[0]); i++) {
        if (!hv[i])
            continue;
        if (!(t = curl_slist_append(h, hv[i]))) {
            rc = err_set(d, ERR_NOMEM, "", "%s: out of memory", what);
            goto out;
        }
        h = t;
    }
    CURLcode cc = setup(s, r, h);
    if (cc != CURLE_OK) {
        rc = err_set(d, ERR_INTERNAL, "", "%s: libcurl setup: %s", what, curl_easy_strerror(cc));
        goto out;
    }
    cc = curl_easy_perform(s->easy);
    curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &r->status);
    if (cc != CURLE_OK || r->status / 100 != 2)
        rc = fail_detail(s, r, cc, what, d);
out:
    curl_slist_free_all(h);
    return rc;
}

/* A request on no fd, with an empty capped xml buffer. */
static void req_init(struct s3_req *r, const char *method, const char *url)
{
    memset(r, 0, sizeof(*r));
    r->method = method;
    r->url = url;
    r->in_fd = r->out_fd = -1;
    buf_init(&r->xml, S3_XML_MAX);
}

/* ------------------------------------------------------------------ */
/* The ops                                                            */
/* ------------------------------------------------------------------ */

/* Rejects keys S3 would refuse or that we could not put in a URL. */
static int check_key(const struct s3_store *s, const char *key, struct err_detail *d)
{
    size_t n = strlen(key);
    if (n == 0 || n + strlen(s->prefix) > S3_KEY_MAX)
        return err_set(d, ERR_INVAL, "key", "an object key must have 1 to %d bytes", S3_KEY_MAX);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)key[i] < 0x20 || key[i] == 0x7f)
            return err_set(d, ERR_INVAL, "key", "an object key may not hold control characters");
    return 0;
}

/* Builds a URL into b; ERR_NOMEM/ERR_TOOBIG when it did not fit. */
static int url_done(struct buf *b, struct err_detail *d)
{
    if (buf_err(b))
        return err_set(d, buf_err(b), "", "object URL too long or out of memory");
    return 0;
}

static int s3_put_single(struct s3_store *s, const char *key, int fd, off_t off,
                         uint64_t size, struct err_detail *d)
{
    struct buf url;
    struct s3_req r;
    buf_init(&url, S3_URL_MAX);
    put_obj_url(&url, s, key);
    req_init(&r, "PUT", url.p);
    int rc = url_done(&url, d);
    if (rc == 0) {
        r.stream = 1;
        r.in_fd = fd;
        r.in_off = off;
        r.in_len = size;
        rc = request(s, &r, "upload", d);
    }
    buf_free(&r.xml);
    buf_free(&url);
    return rc;
}

/* Appends "?uploadId=ID" (or "?partNumber=N&uploadId=ID" when part > 0). */
static void put_upload_query(struct buf *b, int part, const char *upload_id)
{
    if (part > 0)
        buf_printf(b, "?partNumber=%d&uploadId=", part);
    else
        buf_puts(b, "?uploadId=");
    put_enc(b, upload_id, 0);
}

/* Appends text to b with the characters XML reserves escaped. */
static void put_backup__s3_xml_text(struct buf *b, const char *t)
{
    for (; *t; t++) {
        switch (*t) {
        case '&': buf_puts(b, "&amp;"); break;
        case '<': buf_puts(b, "&lt;"); break;
        case '>': buf_puts(b, "&gt;"); break;
        default: buf_putc(b, *t);
        }
    }
}

/* Starts a multipart upload of key; 0 and the id in id (cap bytes), or our code. */
static int mp_create(struct s3_store *s, const char *key, char *id, size_t cap,
                     struct err_detail *d)
{
    struct buf url;
    struct s3_req r;
    const char *tb, *te;
    buf_init(&url, S3_URL_MAX);
    put_obj_url(&url, s, key);
    buf_puts(&url, "?uploads=");
    req_init(&r, "POST", url.p);
    r.in_mem = "";
    int rc = url_done(&url, d);
    if (rc == 0)
        rc = request(s, &r, "start multipart upload", d);
    if (rc == 0 && (!r.xml.p || !backup__s3_xml_elem(r.xml.p, r.xml.p + r.xml.len, "UploadId", &tb, &te) ||
                    backup__s3_xml_text(tb, te, id, cap) <= 0))
        rc = err_set(d, ERR_IO, "", "start multipart upload: no UploadId in the answer");
    buf_free(&r.xml);
    buf_free(&url);
    return rc;
}

/* Uploads part (1-based) of len bytes at off; its ETag into etag. 0 or our code. */
static int mp_part(struct s3_store *s, const char *key, const char *id, int part, int fd,
                   off_t off, uint64_t len, char *etag, struct err_detail *d)
{
    struct buf url;
    struct s3_req r;
    buf_init(&url, S3_URL_MAX);
    put_obj_url(&url, s, key);
    put_upload_query(&url, part, id);
    req_init(&r, "PUT", url.p);
    int rc = url_done(&url, d);
    if (rc == 0) {
        r.stream = 1;
        r.in_fd = fd;
        r.in_off = off;
        r.in_len = len;
        rc = request(s, &r, "upload part", d);
    }
    if (rc == 0 && !r.etag[0])
        rc = err_set(d, ERR_IO, "", "upload part %d: no ETag in the answer", part);
    if (rc == 0)
        memcpy(etag, r.etag, S3_ETAG_MAX);
    buf_free(&r.xml);
    buf_free(&url);
    return rc;
}

/*
 * Completes the upload with the n part ETags (POST, or DELETE to abort
 * when abort is set). S3 may answer 200 with an <Error> body; that is a
 * failure too. Returns 0 or our code.
 */
static int mp_finish(struct s3_store *s, const char *key, const char *id, int abort_,
                     char (*etags)[S3_ETAG_MAX], int n, struct err_detail *d)
{
    struct buf url, body;
    struct s3_req r;
    const char *tb, *te;
    buf_init(&url, S3_URL_MAX);
    buf_init(&body, (size_t)n * (S3_ETAG_MAX * 2 + 64) + 128);
    put_obj_url(&url, s, key);
    put_upload_query(&url, 0, id);
    req_init(&r, abort_ ? "DELETE" : "POST", url.p);
    int rc = url_done(&url, d);
    if (rc == 0 && !abort_) {
        buf_puts(&body, "<CompleteMultipartUpload>");
        for (int i = 0; i < n; i++) {
            buf_printf(&body, "<Part><PartNumber>%d</PartNumber><ETag>", i + 1);
            put_backup__s3_xml_text(&body, etags[i]);
            buf_puts(&body, "</ETag></Part>");
        }
        buf_puts(&body, "</CompleteMultipartUpload>");
        if (buf_err(&body))
            rc = err_set(d, buf_err(&body), "", "complete multipart upload: out of memory");
        r.in_mem = body.p;
        r.in_mem_len = body.len;
        r.stream = 1;
    }
    if (rc == 0)
        rc = request(s, &r, abort_ ? "abort multipart upload" : "complete multipart upload", d);
    if (rc == 0 && !abort_ && r.xml.p &&
        backup__s3_xml_elem(r.xml.p, r.xml.p + r.xml.len, "Code", &tb, &te)) {
        char code[64];
        if (backup__s3_xml_text(tb, te, code, sizeof(code)) < 0)
            code[0] = '\0';
        rc = err_set(d, ERR_IO, "", "complete multipart upload: %s", code);
    }
    buf_free(&r.xml);
    buf_free(&body);
    buf_free(&url);
    return rc;
}

/*
 * Uploads size bytes of fd from off (or, off < 0, read() in order) to key
 * in parts; aborts the upload when a part or the completion fails.
 * Returns 0 or our code; the ETags are the only thing held in memory.
 */
static int put_multipart(struct s3_store *s, const char *key, int fd, off_t off,
                         uint64_t size, struct err_detail *d)
{
    uint64_t part = s->part_size ? s->part_size : S3_PART_SIZE;
    if ((size + part - 1) / part > S3_MAX_PARTS)
        part = ((size + S3_MAX_PARTS - 1) / S3_MAX_PARTS + (1u << 20) - 1) & ~(uint64_t)((1u << 20) - 1);
    int n = (int)((size + part - 1) / part);
    char id[1024];
    char (*etags)[S3_ETAG_MAX] = mem_calloc((size_t)n, S3_ETAG_MAX);
    if (!etags)
        return err_set(d, ERR_NOMEM, "", "upload: out of memory");
    int rc = mp_create(s, key, id, sizeof(id), d);
    if (rc)
        goto out;
    for (int i = 0; i < n && rc == 0; i++) {
        uint64_t at = (uint64_t)i * part;
        uint64_t len = size - at < part ? size - at : part;
        rc = mp_part(s, key, id, i + 1, fd, off < 0 ? -1 : off + (off_t)at, len, etags[i], d);
    }
    if (rc == 0)
        rc = mp_finish(s, key, id, 0, etags, n, d);
    if (rc) {
        /* Best effort; the first error is the one to report. */
        struct err_detail ignore;
        if (mp_finish(s, key, id, 1, NULL, 0, &ignore)) {
        }
    }
out:
    mem_free(etags);
    return rc;
}

/*
 * Uploads size bytes of fd (from its current offset) to key, in one PUT
 * or, over the multipart threshold, in parts. Returns 0 or our code.
 */
static int s3_put(struct backup_store *bs, const char *key, int fd, uint64_t size,
                  struct err_detail *d)
{
    struct s3_store *s = (struct s3_store *)bs;
    int rc = check_key(s, key, d);
    if (rc)
        return rc;
    off_t off = lseek(fd, 0, SEEK_CUR);   /* -1 for a pipe: read() it in order */
    uint64_t min = s->multipart_min ? s->multipart_min : S3_MULTIPART_MIN;
    if (size > min)
        return put_multipart(s, key, fd, off < 0 ? -1 : off, size, d);
    return s3_put_single(s, key, fd, off < 0 ? -1 : off, size, d);
}

/* Streams key into fd, at most max bytes. Returns 0 or our code. */
static int s3_get(struct backup_store *bs, const char *key, int fd, uint64_t max,
                  struct err_detail *d)
{
    struct s3_store *s = (struct s3_store *)bs;
    struct buf url;
    struct s3_req r;
    int rc = check_key(s, key, d);
    if (rc)
        return rc;
    buf_init(&url, S3_URL_MAX);
    put_obj_url(&url, s, key);
    req_init(&r, "GET", url.p);
    rc = url_done(&url, d);
    if (rc == 0) {
        r.stream = 1;
        r.out_fd = fd;
        r.out_max = max;
        rc = request(s, &r, "download", d);
    }
    buf_free(&r.xml);
    buf_free(&url);
    return rc;
}

/* Deletes key; S3 answers 204 also for a missing key. Returns 0 or our code. */
static int s3_del(struct backup_store *bs, const char *key, struct err_detail *d)
{
    struct s3_store *s = (struct s3_store *)bs;
    struct buf url;
    struct s3_req r;
    int rc = check_key(s, key, d);
    if (rc)
        return rc;
    buf_init(&url, S3_URL_MAX);
    put_obj_url(&url, s, key);
    req_init(&r, "DELETE", url.p);
    rc = url_done(&url, d);
    if (rc == 0) {
        rc = request(s, &r, "delete", d);
        if (rc == ERR_NOTFOUND)
            rc = 0;
    }
    buf_free(&r.xml);
    buf_free(&url);
    return rc;
}

/* Hands the caller keys without the store's prefix. */
struct list_ctx {
    const struct s3_store *s;
    int (*cb)(void *arg, const char *key, uint64_t size);
    void *arg;
};

static int list_item(void *arg, const char *key, uint64_t size)
{
    struct list_ctx *lc = arg;
    size_t pl = strlen(lc->s->prefix);
    if (strncmp(key, lc->s->prefix, pl) != 0 || key[pl] == '\0')
        return 0;
    return lc->cb(lc->arg, key + pl, size);
}

/*
 * Calls cb for every key under prefix, page by page (ListObjectsV2 with
 * continuation tokens). Returns 0, cb's non-zero return, or our code.
 */
static int s3_list(struct backup_store *bs, const char *prefix,
                   int (*cb)(void *arg, const char *key, uint64_t size), void *arg,
                   struct err_detail *d)
{
    struct s3_store *s = (struct s3_store *)bs;
    struct list_ctx lc = {s, cb, arg};
    char token[S3_KEY_MAX * 2];
    struct buf url;
    struct s3_req r;
    int rc = 0, truncated = 1, pages = 0;
    token[0] = '\0';
    buf_init(&url, S3_URL_MAX + sizeof(token) * 3);
    req_init(&r, "GET", NULL);
    while (truncated && rc == 0) {
        buf_reset(&url);
        buf_puts(&url, s->base_url);
        buf_puts(&url, "/?");
        if (token[0]) {
            buf_puts(&url, "continuation-token=");
            put_enc(&url, token, 0);
            buf_putc(&url, '&');
        }
        buf_puts(&url, "list-type=2");
        if (s->max_keys > 0)
            buf_printf(&url, "&max-keys=%d", s->max_keys);
        buf_puts(&url, "&prefix=");
        put_enc(&url, s->prefix, 0);
        put_enc(&url, prefix ? prefix : "", 0);
        if ((rc = url_done(&url, d)))
            break;
        r.url = url.p;
        if ((rc = request(s, &r, "list", d)))
            break;
        rc = backup__s3_xml_list(r.xml.p ? r.xml.p : "", r.xml.len, list_item, &lc, &truncated,
                          token, sizeof(token));
        if (rc == ERR_PARSE)
            rc = err_set(d, ERR_IO, "", "list: the object store sent a malformed page");
        else if (rc == 0 && truncated && ++pages > 1000000)
            rc = err_set(d, ERR_IO, "", "list: more than a million pages");
    }
    buf_free(&r.xml);
    buf_free(&url);
    return rc;
}

/* Frees the store, wiping the secret. */
static void s3_close(struct backup_store *bs)
{
    struct s3_store *s = (struct s3_store *)bs;
    if (!s)
        return;
    if (s->easy)
        curl_easy_cleanup(s->easy);
    if (s->secret_key)
        explicit_bzero(s->secret_key, strlen(s->secret_key));
    if (s->token_hdr)
        explicit_bzero(s->token_hdr, strlen(s->token_hdr));
    mem_free(s->base_url);
    mem_free(s->host);
    mem_free(s->prefix);
    mem_free(s->sigv4);
    mem_free(s->access_key);
    mem_free(s->secret_key);
    mem_free(s->token_hdr);
    mem_free(s);
}

static const struct backup_store_ops s3_ops = {
    .name = "s3",
    .put = s3_put,
    .get = s3_get,
    .list = s3_list,
    .del = s3_del,
    .close = s3_close,
};

/* A copy of the environment variable name when set and not empty, else NULL. */
static const char *env_nonempty(const char *name)
{
    const char *v = getenv(name);
    return v && v[0] ? v : NULL;
}

/* 1 when s is 1..63 bytes of [a-z0-9-] (regions) or also '.', '_' and
 * upper case (bucket names, which path style allows more freely). */
static int name_ok(const char *s, int bucket)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
              (bucket && (c == '.' || c == '_' || (c >= 'A' && c <= 'Z')))))
            return 0;
    }
    return 1;
}

/* Fills the URLs from the endpoint (path style) or the region (virtual host). */
static int s3_urls(struct s3_store *s, const char *bucket, const char *endpoint,
                   const char *region, struct err_detail *d)
{
    struct buf b;
    buf_init(&b, 2048);
    if (endpoint) {
        size_t el = strlen(endpoint);
        while (el > 0 && endpoint[el - 1] == '/')
            el--;
        if (strncmp(endpoint, "http://", 7) != 0 && strncmp(endpoint, "https://", 8) != 0)
            return err_set(d, ERR_INVAL, "s3-endpoint", "the S3 endpoint must be an http:// or https:// URL");
        const char *hs = endpoint + (endpoint[4] == 's' ? 8 : 7);
        if (memchr(endpoint, '@', el) || memchr(hs, '?', el - (size_t)(hs - endpoint)) ||
            memchr(hs, '#', el - (size_t)(hs - endpoint)) || el > 1024 || hs == endpoint + el)
            return err_set(d, ERR_INVAL, "s3-endpoint", "the S3 endpoint must be scheme://host[:port][/path], without credentials or query");
        s->host = mem_strndup(endpoint, el);
        buf_append(&b, endpoint, el);
        buf_putc(&b, '/');
        put_enc(&b, bucket, 0);
    } else {
        if (!name_ok(bucket, 0))
            return err_set(d, ERR_INVAL, "bucket", "bucket '%.64s' is not a DNS-style name; use --s3-endpoint for path-style buckets", bucket);
        buf_printf(&b, "https://%s.s3.%s.amazonaws.com", bucket, region);
        s->host = mem_strdup(b.p ? b.p : "");
    }
    if (buf_err(&b) || !s->host) {
        buf_free(&b);
        return err_set(d, ERR_NOMEM, "", "out of memory");
    }
    s->base_url = buf_steal(&b, NULL);
    return 0;
}

/*
 * Opens the S3 store for bucket, keys under prefix ("" or NULL: the whole
 * bucket; a missing trailing '/' is added). Credentials come from the
 * environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, optional
 * AWS_SESSION_TOKEN); the region from o->s3_region, AWS_REGION,
 * AWS_DEFAULT_REGION, else us-east-1. Sends nothing yet. Returns 0 and
 * *out (closed with (*out)->ops->close), or ERR_INVAL (bad name, endpoint
 * or missing credentials), ERR_NOMEM or ERR_INTERNAL with detail in d.
 */
int backup__store_s3_open(const char *bucket, const char *prefix,
                          const struct backup_store_opts *o, struct backup_store **out,
                          struct err_detail *d)
{
    const char *ak = env_nonempty("AWS_ACCESS_KEY_ID");
    const char *sk = env_nonempty("AWS_SECRET_ACCESS_KEY");
    const char *tok = env_nonempty("AWS_SESSION_TOKEN");
    const char *region = o && o->s3_region && o->s3_region[0] ? o->s3_region : NULL;
    struct buf b;
    int rc = 0;
    if (!region)
        region = env_nonempty("AWS_REGION");
    if (!region)
        region = env_nonempty("AWS_DEFAULT_REGION");
    if (!region)
        region = "us-east-1";
    if (!bucket || !name_ok(bucket, 1))
        return err_set(d, ERR_INVAL, "bucket", "an S3 bucket name has 1 to 63 letters, digits, '.', '-' or '_'");
    if (!name_ok(region, 0))
        return err_set(d, ERR_INVAL, "s3-region", "'%.64s' is not an S3 region name", region);
    if (!ak || !sk)
        return err_set(d, ERR_INVAL, "", "S3 needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment");
    if (strchr(ak, '\n') || (tok && (strchr(tok, '\n') || strchr(tok, '\r'))))
        return err_set(d, ERR_INVAL, "", "AWS credentials may not hold line breaks");
    if (!prefix)
        prefix = "";
    if (strlen(prefix) > 512)
        return err_set(d, ERR_INVAL, "prefix", "the S3 key prefix is over 512 bytes");
    struct s3_store *s = mem_calloc(1, sizeof(*s));
    if (!s)
        return err_set(d, ERR_NOMEM, "", "out of memory");
    s->base.ops = &s3_ops;
    s->timeout_ms = o && o->timeout_ms > 0 ? o->timeout_ms : S3_DEFAULT_TIMEOUT_MS;
    if ((rc = s3_urls(s, bucket, o ? o->s3_endpoint : NULL, region, d)))
        goto fail;
    buf_init(&b, 8192);
    buf_puts(&b, prefix);
    if (prefix[0] && prefix[strlen(prefix) - 1] != '/')
        buf_putc(&b, '/');
    s->prefix = b.p ? buf_steal(&b, NULL) : mem_strdup("");
    buf_init(&b, 128);
    buf_printf(&b, "aws:amz:%s:s3", region);
    s->sigv4 = buf_steal(&b, NULL);
    s->access_key = mem_strdup(ak);
    s->secret_key = mem_strdup(sk);
    if (tok) {
        buf_init(&b, 8192);
        buf_printf(&b, "x-amz-security-token: %s", tok);
        s->token_hdr = buf_err(&b) ? NULL : buf_steal(&b, NULL);
        buf_free(&b);
    }
    if (!s->prefix || !s->sigv4 || !s->access_key || !s->secret_key || (tok && !s->token_hdr)) {
        rc = err_set(d, ERR_NOMEM, "", "out of memory");
        goto fail;
    }
    if (!(s->easy = curl_easy_init())) {
        rc = err_set(d, ERR_INTERNAL, "", "libcurl could not create a handle");
        goto fail;
    }
    *out = &s->base;
    return 0;
fail:
    s3_close(&s->base);
    return rc;
}
