/*
 * The S3 backup store (backup/store_s3.c) against a real S3-compatible
 * server: s3rver, started by scripts/s3-server.sh (CTest fixture "s3"),
 * named by MODELCAT_TEST_S3_ENDPOINT and MODELCAT_TEST_S3_BUCKET with the
 * AWS_* keys from its env file. Without them the server tests skip with
 * a message, unless MODELCAT_TEST_S3_REQUIRED is set, when they fail.
 * Always run: the list-page scanner on fixed pages, and a closed port
 * (ERR_UNAVAIL, quickly).
 *
 * The big test puts a 150 MiB generated file (sparse, with random blocks)
 * through the multipart path, gets it back, and compares SHA-256 both
 * ways; it also checks that the process did not grow by anything near
 * the file's size. The store's .c files are included to reach the page
 * size and part size knobs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backup/store_s3.c"
#include "backup/store_s3_xml.c"

static const char *endpoint, *bucket;
static char run_id[32];   /* keys of this run live under run_id/ */

/* Skips (or fails, when required) a test that needs the server. */
#define NEED_SERVER()                                                              \
    do {                                                                           \
        if (!endpoint) {                                                           \
            if (getenv("MODELCAT_TEST_S3_REQUIRED"))                               \
                fail_msg("MODELCAT_TEST_S3_REQUIRED but no MODELCAT_TEST_S3_*");   \
            print_message("skipped: no MODELCAT_TEST_S3_ENDPOINT (scripts/s3-server.sh)\n"); \
            skip();                                                                \
        }                                                                          \
    } while (0)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static struct s3_store *open_store(const char *ep, const char *prefix, int timeout_ms)
{
    struct backup_store_opts o = {ep, NULL, timeout_ms};
    struct backup_store *bs = NULL;
    struct err_detail d;
    int rc = backup__store_s3_open(bucket ? bucket : "b", prefix, &o, &bs, &d);
    if (rc)
        fail_msg("open: %s: %s", err_name(rc), d.msg);
    return (struct s3_store *)bs;
}

/* A temporary file (unlinked) holding n bytes of s. */
static int tmp_with(const char *s, size_t n)
{
    char path[] = "/tmp/mc-s3-test-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    assert_int_equal(write_all(fd, s, n), 0);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    return fd;
}

/* The SHA-256 of fd's whole content, as hex, read in 1 MiB chunks. */
static void sha256_fd(int fd, char hex[65])
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned char md[32], *b = malloc(1 << 20);
    off_t off = 0;
    ssize_t n;
    assert_non_null(b);
    EVP_DigestInit_ex(c, EVP_sha256(), NULL);
    while ((n = pread(fd, b, 1 << 20, off)) > 0) {
        EVP_DigestUpdate(c, b, (size_t)n);
        off += n;
    }
    EVP_DigestFinal_ex(c, md, NULL);
    EVP_MD_CTX_free(c);
    free(b);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

static void key_of(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", run_id, name);
}

static void test_small_roundtrip(void **state)
{
    (void)state;
    NEED_SERVER();
    struct s3_store *s = open_store(endpoint, "", 10000);
    struct err_detail d;
    char key[256], buf[64];
    static const char msg[] = "hello, object store\n";
    int in = tmp_with(msg, sizeof(msg) - 1), out = tmp_with("", 0);
    /* Characters that need escaping in the URL and in the list XML. */
    key_of(key, sizeof(key), "small/a b+c&d=e\xc3\xa9.txt");
    assert_int_equal(s->base.ops->put(&s->base, key, in, sizeof(msg) - 1, &d), 0);
    assert_int_equal(s->base.ops->get(&s->base, key, out, 1024, &d), 0);
    assert_int_equal(pread(out, buf, sizeof(buf), 0), sizeof(msg) - 1);
    assert_memory_equal(buf, msg, sizeof(msg) - 1);
    /* Over max: ERR_RANGE. */
    int out2 = tmp_with("", 0);
    assert_int_equal(s->base.ops->get(&s->base, key, out2, 5, &d), ERR_RANGE);
    /* Missing: ERR_NOTFOUND. */
    key_of(key, sizeof(key), "small/missing");
    assert_int_equal(s->base.ops->get(&s->base, key, out2, 1024, &d), ERR_NOTFOUND);
    close(in);
    close(out);
    close(out2);
    s->base.ops->close(&s->base);
}

struct pipe_feed { int fd; size_t n; };

static void *feed(void *arg)
{
    struct pipe_feed *pf = arg;
    char b[4096];
    for (size_t i = 0; i < sizeof(b); i++)
        b[i] = (char)('a' + i % 26);
    for (size_t left = pf->n; left;) {
        size_t k = left < sizeof(b) ? left : sizeof(b);
        if (write_all(pf->fd, b, k))
            break;
        left -= k;
    }
    close(pf->fd);
    return NULL;
}

/* A pipe is not seekable: put reads it in order. */
static void test_put_from_pipe(void **state)
{
    (void)state;
    NEED_SERVER();
    struct s3_store *s = open_store(endpoint, "", 10000);
    struct err_detail d;
    char key[256];
    int p[2];
    pthread_t th;
    assert_int_equal(pipe(p), 0);
    struct pipe_feed pf = {p[1], 3u << 20};
    assert_int_equal(pthread_create(&th, NULL, feed, &pf), 0);
    key_of(key, sizeof(key), "pipe.bin");
    assert_int_equal(s->base.ops->put(&s->base, key, p[0], pf.n, &d), 0);
    pthread_join(th, NULL);
    close(p[0]);
    int out = tmp_with("", 0);
    assert_int_equal(s->base.ops->get(&s->base, key, out, 1ull << 30, &d), 0);
    struct stat st;
    assert_int_equal(fstat(out, &st), 0);
    assert_int_equal(st.st_size, pf.n);
    close(out);
    s->base.ops->close(&s->base);
}

static void test_big_multipart(void **state)
{
    (void)state;
    NEED_SERVER();
    const uint64_t size = 150ull << 20;
    struct s3_store *s = open_store(endpoint, "", 60000);
    struct err_detail d;
    char key[256], h1[65], h2[65];
    char path[] = "/tmp/mc-s3-big-XXXXXX";
    int in = mkstemp(path);
    assert_true(in >= 0);
    unlink(path);
    /* Sparse, with a random 1 MiB block every 10 MiB and a tail. */
    assert_int_equal(ftruncate(in, (off_t)size), 0);
    char *blk = malloc(1 << 20);
    assert_non_null(blk);
    for (uint64_t at = 0; at < size; at += 10ull << 20) {
        for (size_t i = 0; i < (1u << 20); i++)
            blk[i] = (char)(rand() & 0xff);
        assert_int_equal(pwrite(in, blk, 1 << 20, (off_t)at), 1 << 20);
    }
    assert_int_equal(pwrite(in, "tail", 4, (off_t)size - 4), 4);
    free(blk);
    sha256_fd(in, h1);
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    key_of(key, sizeof(key), "big.bin");
    double t0 = now_s();
    int rc = s->base.ops->put(&s->base, key, in, size, &d);
    if (rc)
        fail_msg("put: %s: %s", err_name(rc), d.msg);
    double t1 = now_s();
    int out = tmp_with("", 0);
    rc = s->base.ops->get(&s->base, key, out, size, &d);
    if (rc)
        fail_msg("get: %s: %s", err_name(rc), d.msg);
    double t2 = now_s();
    getrusage(RUSAGE_SELF, &ru1);
    sha256_fd(out, h2);
    assert_string_equal(h1, h2);
    print_message("150 MiB: put (multipart, %d parts) %.2fs, get %.2fs; maxrss %ld KiB (+%ld); sha256 %s\n",
                  (int)((size + S3_PART_SIZE - 1) / S3_PART_SIZE), t1 - t0, t2 - t1,
                  ru1.ru_maxrss, ru1.ru_maxrss - ru0.ru_maxrss, h1);
    /* Streamed: far less than the object stayed resident. */
    assert_true(ru1.ru_maxrss - ru0.ru_maxrss < 48 * 1024);
    /* One byte short of the declared size: the upload fails and is aborted. */
    assert_int_equal(ftruncate(in, (off_t)size - 1), 0);
    assert_int_equal(lseek(in, 0, SEEK_SET), 0);
    key_of(key, sizeof(key), "big-short.bin");
    assert_int_equal(s->base.ops->put(&s->base, key, in, size, &d), ERR_IO);
    assert_non_null(strstr(d.msg, "ended before"));
    close(in);
    close(out);
    s->base.ops->close(&s->base);
}

struct seen { int n, stop_at; char keys[16][64]; uint64_t sizes[16]; };

static int collect(void *arg, const char *key, uint64_t size)
{
    struct seen *sn = arg;
    if (sn->n < 16) {
        snprintf(sn->keys[sn->n], sizeof(sn->keys[0]), "%s", key);
        sn->sizes[sn->n] = size;
    }
    sn->n++;
    return sn->stop_at && sn->n == sn->stop_at ? 42 : 0;
}

/* Pages of 2 keys, a store prefix that list strips, delete, stop early. */
static void test_list_paged_and_delete(void **state)
{
    (void)state;
    NEED_SERVER();
    struct s3_store *s = open_store(endpoint, run_id, 10000);
    struct err_detail d;
    char key[64];
    int in = tmp_with("0123456789", 10);
    for (int i = 0; i < 5; i++) {
        snprintf(key, sizeof(key), "list/k%d", i);
        assert_int_equal(lseek(in, 0, SEEK_SET), 0);
        assert_int_equal(s->base.ops->put(&s->base, key, in, (uint64_t)i + 1, &d), 0);
    }
    assert_int_equal(s->base.ops->put(&s->base, "other/x", in, 1, &d), 0);
    s->max_keys = 2;
    struct seen sn = {0};
    int lrc = s->base.ops->list(&s->base, "list/", collect, &sn, &d);
    if (lrc)
        fail_msg("list: %s: %s", err_name(lrc), d.msg);
    assert_int_equal(sn.n, 5);
    for (int i = 0; i < 5; i++) {
        snprintf(key, sizeof(key), "list/k%d", i);
        assert_string_equal(sn.keys[i], key);
        assert_int_equal(sn.sizes[i], i + 1);
    }
    struct seen stop = {.stop_at = 3};
    assert_int_equal(s->base.ops->list(&s->base, "list/", collect, &stop, &d), 42);
    assert_int_equal(stop.n, 3);
    assert_int_equal(s->base.ops->del(&s->base, "list/k0", &d), 0);
    assert_int_equal(s->base.ops->del(&s->base, "list/k0", &d), 0);   /* missing: fine */
    int out = tmp_with("", 0);
    assert_int_equal(s->base.ops->get(&s->base, "list/k0", out, 100, &d), ERR_NOTFOUND);
    struct seen after = {0};
    assert_int_equal(s->base.ops->list(&s->base, "list/", collect, &after, &d), 0);
    assert_int_equal(after.n, 4);
    close(in);
    close(out);
    s->base.ops->close(&s->base);
}

static void test_wrong_credentials(void **state)
{
    (void)state;
    NEED_SERVER();
    char *ak = strdup(getenv("AWS_ACCESS_KEY_ID") ? getenv("AWS_ACCESS_KEY_ID") : "");
    setenv("AWS_ACCESS_KEY_ID", "NOT-A-KEY", 1);
    struct s3_store *s = open_store(endpoint, "", 10000);
    setenv("AWS_ACCESS_KEY_ID", ak, 1);
    free(ak);
    struct err_detail d;
    struct seen sn = {0};
    assert_int_equal(s->base.ops->list(&s->base, "", collect, &sn, &d), ERR_DENIED);
    assert_non_null(strstr(d.msg, "the object store refused the credentials: InvalidAccessKeyId"));
    int in = tmp_with("x", 1);
    assert_int_equal(s->base.ops->put(&s->base, "denied", in, 1, &d), ERR_DENIED);
    close(in);
    s->base.ops->close(&s->base);
}

static void test_closed_port(void **state)
{
    (void)state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    close(fd);   /* nothing listens there now */
    char ep[64];
    snprintf(ep, sizeof(ep), "http://127.0.0.1:%d", ntohs(sa.sin_port));
    const char *ak = getenv("AWS_ACCESS_KEY_ID");
    if (!ak) {
        setenv("AWS_ACCESS_KEY_ID", "k", 1);
        setenv("AWS_SECRET_ACCESS_KEY", "s", 1);
    }
    struct s3_store *s = open_store(ep, "", 3000);
    struct err_detail d;
    struct seen sn = {0};
    double t0 = now_s();
    assert_int_equal(s->base.ops->list(&s->base, "", collect, &sn, &d), ERR_UNAVAIL);
    assert_true(now_s() - t0 < 2.0);
    assert_non_null(strstr(d.msg, "cannot reach the object store at http://127.0.0.1:"));
    s->base.ops->close(&s->base);
    if (!ak) {
        unsetenv("AWS_ACCESS_KEY_ID");
        unsetenv("AWS_SECRET_ACCESS_KEY");
    }
}

static void test_open_rejects(void **state)
{
    (void)state;
    struct backup_store_opts o = {"ftp://127.0.0.1:1", NULL, 1000};
    struct backup_store *bs = NULL;
    struct err_detail d;
    setenv("AWS_ACCESS_KEY_ID", getenv("AWS_ACCESS_KEY_ID") ? getenv("AWS_ACCESS_KEY_ID") : "k", 1);
    setenv("AWS_SECRET_ACCESS_KEY",
           getenv("AWS_SECRET_ACCESS_KEY") ? getenv("AWS_SECRET_ACCESS_KEY") : "s", 1);
    assert_int_equal(backup__store_s3_open("b", "", &o, &bs, &d), ERR_INVAL);
    o.s3_endpoint = "http://user:pw@127.0.0.1:1";
    assert_int_equal(backup__store_s3_open("b", "", &o, &bs, &d), ERR_INVAL);
    o.s3_endpoint = NULL;
    assert_int_equal(backup__store_s3_open("Bad_Bucket", "", &o, &bs, &d), ERR_INVAL);
    o.s3_region = "us-east-1/../x";
    assert_int_equal(backup__store_s3_open("b", "", &o, &bs, &d), ERR_INVAL);
    o.s3_region = "eu-west-3";
    assert_int_equal(backup__store_s3_open("my-bucket", "p", &o, &bs, &d), 0);
    struct s3_store *s = (struct s3_store *)bs;
    assert_string_equal(s->base_url, "https://my-bucket.s3.eu-west-3.amazonaws.com");
    assert_string_equal(s->sigv4, "aws:amz:eu-west-3:s3");
    assert_string_equal(s->prefix, "p/");
    bs->ops->close(bs);
}

static int count_cb(void *arg, const char *key, uint64_t size)
{
    (void)key;
    (void)size;
    ++*(int *)arg;
    return 0;
}

static void test_xml_pages(void **state)
{
    (void)state;
    static const char page[] =
        "<?xml version=\"1.0\"?><ListBucketResult><IsTruncated>true</IsTruncated>"
        "<Contents><Key>a&amp;b&#x41;</Key><Size>7</Size></Contents>"
        "<Contents><Key>c</Key><Size>18446744073709551615</Size></Contents>"
        "<NextContinuationToken>t/+=</NextContinuationToken></ListBucketResult>";
    char tok[64];
    int tr, n = 0;
    assert_int_equal(backup__s3_xml_list(page, sizeof(page) - 1, count_cb, &n, &tr, tok,
                                         sizeof(tok)), 0);
    assert_int_equal(n, 2);
    assert_int_equal(tr, 1);
    assert_string_equal(tok, "t/+=");
    static const char *bad[] = {
        "<Error><Code>x</Code></Error>",
        "<ListBucketResult><Contents><Key>a</Key></Contents></ListBucketResult>",
        "<ListBucketResult><Contents><Key>a</Key><Size>-1</Size></Contents>",
        "<ListBucketResult><Contents><Key>a&#0;</Key><Size>1</Size></Contents>",
        "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>",
        "<ListBucketResult><Contents><Key>a",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(backup__s3_xml_list(bad[i], strlen(bad[i]), count_cb, &n, &tr, tok,
                                             sizeof(tok)), ERR_PARSE);
}

int main(void)
{
    endpoint = getenv("MODELCAT_TEST_S3_ENDPOINT");
    bucket = getenv("MODELCAT_TEST_S3_BUCKET");
    if (endpoint && (!endpoint[0] || !bucket || !bucket[0]))
        endpoint = NULL;
    snprintf(run_id, sizeof(run_id), "t%ld-%d", (long)time(NULL), (int)getpid());
    srand((unsigned)getpid());
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_xml_pages),
        cmocka_unit_test(test_open_rejects),
        cmocka_unit_test(test_closed_port),
        cmocka_unit_test(test_small_roundtrip),
        cmocka_unit_test(test_put_from_pipe),
        cmocka_unit_test(test_list_paged_and_delete),
        cmocka_unit_test(test_wrong_credentials),
        cmocka_unit_test(test_big_multipart),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
