/*
 * Fuzz target: the parsers of src/auth that take outside input.
 *
 * Every input goes, as text, through
 *  - auth_parse_authorization (the Authorization header); a credential it
 *    classifies goes on to auth_key_parse or auth_jwt_verify;
 *  - auth_jwt_verify on the raw text, with a fixed keyring and clock;
 *  - auth_key_parse on the raw bytes (not NUL-terminated);
 *  - auth_rl_parse and auth_keyring_parse (settings from the environment);
 *  - and, split at the first newline into header and payload JSON, a token
 *    built from them and signed with the ring's key "kf", so the fuzzer
 *    reaches the header and claim checks and libjwt's decoder, which a
 *    mutated signature would otherwise stop.
 * Properties (abort() on violation): results are consistent with their
 * contracts, a verified token has a sane principal, refusals are
 * refusals, and no message quotes the ring's secret.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth/auth.h"
#include "core/buf.h"
#include "core/codec.h"

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "fuzz_auth: property failed at line %d: %s\n",       \
                    __LINE__, #cond);                                            \
            abort();                                                             \
        }                                                                        \
    } while (0)

#define NOW_S 1800000000LL
#define MAX_IN 8192

/* With spaces and '!': no quoted field (kid, alg) can hold these texts. */
static const unsigned char secret_f[32] = "fuzz secret! 0123456789 abcdefgh";
static const unsigned char secret_o[32] = "older secret! 0123456789 abcdefg";
static struct auth_keyring ring;

static void ring_init(void)
{
    static int done;
    struct err_detail d;
    if (done)
        return;
    CHECK(auth_keyring_add(&ring, "kf", secret_f, sizeof(secret_f), AUTH_KS_ACTIVE, &d) == 0);
    CHECK(auth_keyring_add(&ring, "ko", secret_o, sizeof(secret_o), AUTH_KS_RETIRED, &d) == 0);
    done = 1;
}

static const char *input; /* the current input as text */

/*
 * The detail of a refusal: UTF-8, NUL-terminated, and without the ring's
 * secrets (messages quote only kids and algorithm names, whose alphabet
 * has no space or '!', so any piece of a secret would be a leak).
 */
static void check_detail(const struct err_detail *d)
{
    CHECK(memchr(d->msg, '\0', sizeof(d->msg)) != NULL);
    CHECK(codec_utf8_valid(d->msg, strlen(d->msg)));
    CHECK(strstr(d->msg, "secret!") == NULL);
    CHECK(strstr(d->msg, "0123456789 ") == NULL);
}

/* Occurrences of needle in hay. */
static int count_in(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

/*
 * No keyring message quotes the secret text of an entry (kid:secret...).
 * Checked for secrets that look like one (16+ base64url characters, so
 * not a word of a fixed message) and occur once in the input (so not
 * also some entry's kid, which messages may quote).
 */
static void check_ring_detail(const char *spec, const struct err_detail *d)
{
    char ent[MAX_IN + 1];
    for (const char *s = spec; *s;) {
        size_t n = strcspn(s, ",");
        memcpy(ent, s, n);
        ent[n] = '\0';
        char *c1 = strchr(ent, ':');
        if (c1) {
            *c1 = '\0';
            char *sec = c1 + 1, *c2 = strchr(sec, ':');
            if (c2)
                *c2 = '\0';
            size_t sl = strlen(sec);
            if (sl >= 16 && strspn(sec, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                        "0123456789-_") == sl && count_in(input, sec) == 1)
                CHECK(strstr(d->msg, sec) == NULL);
        }
        s += n + (s[n] == ',');
    }
}

static void check_verify(const char *tok)
{
    struct auth_principal p;
    struct err_detail d;
    err_clear(&d);
    int rc = auth_jwt_verify(&ring, tok, NOW_S, &p, &d);
    if (rc == 0) {
        CHECK(p.via == AUTH_VIA_JWT);
        CHECK(auth_allows(p.role, AUTH_READ));
        size_t n = strlen(p.id);
        CHECK(n >= 1 && n <= AUTH_SUB_MAX);
        CHECK(p.expires_s > NOW_S);
        CHECK(strlen(tok) <= AUTH_JWT_TOKEN_MAX);
    } else {
        CHECK(rc == ERR_NOMEM || auth_refused(rc));
        CHECK(p.via == AUTH_VIA_NONE);
        check_detail(&d);
    }
}

static void check_header(const char *s)
{
    struct auth_bearer b;
    struct err_detail d;
    err_clear(&d);
    int rc = auth_parse_authorization(s, &b, &d);
    if (rc) {
        CHECK(rc == ERR_PARSE || rc == ERR_TOOBIG);
        CHECK(b.kind == AUTH_CRED_NONE);
        check_detail(&d);
        return;
    }
    CHECK(b.kind == AUTH_CRED_KEY || b.kind == AUTH_CRED_JWT);
    CHECK(b.tok >= s && b.tok + b.len <= s + strlen(s) && b.len > 0);
    char *tok = malloc(b.len + 1);
    CHECK(tok);
    memcpy(tok, b.tok, b.len);
    tok[b.len] = '\0';
    CHECK(strchr(tok, ' ') == NULL && strchr(tok, '\t') == NULL);
    if (b.kind == AUTH_CRED_KEY) {
        CHECK(memcmp(tok, "mc_", 3) == 0);
        char id[AUTH_KEY_ID_BUF];
        if (auth_key_parse(tok, b.len, id, &d) == 0)
            CHECK(b.len == AUTH_KEY_LEN && memcmp(id, tok + 3, 8) == 0);
    } else {
        check_verify(tok);
    }
    free(tok);
}

static void check_key(const uint8_t *data, size_t size)
{
    char id[AUTH_KEY_ID_BUF];
    struct err_detail d;
    int rc = auth_key_parse((const char *)data, size, id, &d);
    if (rc == 0) {
        CHECK(size == AUTH_KEY_LEN && memcmp(data, "mc_", 3) == 0 && data[11] == '_');
        CHECK(strlen(id) == AUTH_KEY_ID_LEN && memcmp(id, data + 3, 8) == 0);
        /* Canonical: the secret decodes to 32 bytes and encodes back. */
        unsigned char raw[33];
        CHECK(codec_b64url_decode((const char *)data + 12, 43, raw, sizeof(raw)) == 32);
    } else {
        CHECK(rc == ERR_PARSE);
        check_detail(&d);
    }
}

static void check_settings(const char *s)
{
    struct err_detail d;
    struct auth_rl_opts o = {0};
    if (auth_rl_parse(s, &o, &d) == 0) {
        CHECK(o.rate >= 0 && o.rate <= 1e6 && o.burst >= 1 && o.burst <= 1e6);
        struct auth_rl *rl;
        o.max_entries = 16;
        CHECK(auth_rl_create(&o, &rl, &d) == 0);
        double retry = 0;
        for (int i = 0; i < 3; i++) {
            int lim = auth_rl_take(rl, s, i, &retry);
            CHECK(lim == 0 || retry > 0);
        }
        auth_rl_destroy(rl);
    } else {
        check_detail(&d);
    }
    struct auth_keyring kr;
    if (auth_keyring_parse(&kr, s, &d) == 0) {
        int active = 0;
        CHECK(kr.n >= 1 && kr.n <= AUTH_JWT_MAX_KEYS);
        for (int i = 0; i < kr.n; i++) {
            active += kr.k[i].state == AUTH_KS_ACTIVE;
            CHECK(kr.k[i].len >= AUTH_JWT_SECRET_MIN && kr.k[i].len <= AUTH_JWT_SECRET_MAX);
        }
        CHECK(active == 1);
        auth_keyring_clear(&kr);
    } else {
        CHECK(kr.n == 0);
        check_detail(&d);
        check_ring_detail(s, &d);
    }
}

/* header "\n" payload: signs base64url(header).base64url(payload) with kf. */
static void check_signed(const char *s)
{
    const char *nl = strchr(s, '\n');
    if (!nl)
        return;
    struct buf b;
    buf_init(&b, 3 * MAX_IN);
    codec_b64url_encode(&b, s, (size_t)(nl - s));
    buf_putc(&b, '.');
    codec_b64url_encode(&b, nl + 1, strlen(nl + 1));
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int ml = 0;
    CHECK(!buf_err(&b));
    CHECK(HMAC(EVP_sha256(), secret_f, sizeof(secret_f), (unsigned char *)b.p, b.len, mac,
               &ml));
    buf_putc(&b, '.');
    codec_b64url_encode(&b, mac, ml);
    CHECK(!buf_err(&b));
    check_verify(b.p);
    buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_IN)
        return 0;
    ring_init();
    char *s = malloc(size + 1);
    CHECK(s);
    memcpy(s, data, size);
    s[size] = '\0';
    input = s;
    check_header(s);
    check_verify(s);
    check_key(data, size);
    check_settings(s);
    check_signed(s);
    free(s);
    return 0;
}
