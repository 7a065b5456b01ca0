/*
 * Request bodies of the three generation APIs, read into one struct
 * sim__params: prompt size in the simulator's tokens (whitespace-separated
 * words, since it has no tokenizer), output budget, streaming options.
 * Validation follows what vLLM and TGI refuse with 400, with messages a
 * client can act on; unknown members are ignored, as both servers do.
 */
#include <jansson.h>
#include <string.h>

#include "sim/sim_int.h"

int64_t sim__count_words(const char *s, size_t n)
{
    int64_t words = 0;
    int in = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        int ws = c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
        if (!ws && !in)
            words++;
        in = !ws;
    }
    return words;
}

static int64_t str_words(const json_t *v)
{
    return sim__count_words(json_string_value(v), json_string_length(v));
}

/* Optional boolean member: 0 when absent or null. */
static int opt_bool(const json_t *o, const char *key, int *out, struct err_detail *d)
{
    const json_t *v = json_object_get(o, key);
    *out = 0;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_boolean(v))
        return err_set(d, ERR_INVAL, key, "%s must be a boolean", key);
    *out = json_is_true(v);
    return 0;
}

/* Optional integer member in [1, SIM_MAX_TOKENS]; def when absent or null. */
static int opt_tokens(const json_t *o, const char *key, int64_t def, int64_t *out,
                      struct err_detail *d)
{
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_integer(v))
        return err_set(d, ERR_INVAL, key, "%s must be an integer", key);
    json_int_t x = json_integer_value(v);
    if (x < 1)
        return err_set(d, ERR_INVAL, key, "%s must be at least 1, got %lld.", key,
                       (long long)x);
    if (x > SIM_MAX_TOKENS)
        return err_set(d, ERR_INVAL, key, "%s must be at most %d, got %lld.", key,
                       SIM_MAX_TOKENS, (long long)x);
    *out = x;
    return 0;
}

static int completion_prompt(const json_t *root, struct sim__params *p,
                             struct err_detail *d)
{
    const json_t *v = json_object_get(root, "prompt");
    if (json_is_string(v)) {
        p->prompt_tokens = str_words(v);
        return 0;
    }
    if (!json_is_array(v) || json_array_size(v) == 0)
        return err_set(d, ERR_INVAL, "prompt",
                       "prompt must be a string, a list of one string or a list of "
                       "token ids");
    if (json_array_size(v) == 1 && json_is_string(json_array_get(v, 0))) {
        p->prompt_tokens = str_words(json_array_get(v, 0));
        return 0;
    }
    size_t i;
    const json_t *x;
    json_array_foreach(v, i, x) {
        if (!json_is_integer(x))
            return err_set(d, ERR_INVAL, "prompt",
                           "the simulator serves one prompt per request: a string or "
                           "a list of token ids");
    }
    p->prompt_tokens = (int64_t)json_array_size(v);
    return 0;
}

/* Words of one message's content: a string, null, or a list of parts. */
static int content_words(const json_t *c, int64_t *words, struct err_detail *d)
{
    if (!c || json_is_null(c))
        return 0;
    if (json_is_string(c)) {
        *words += str_words(c);
        return 0;
    }
    if (!json_is_array(c))
        return err_set(d, ERR_INVAL, "messages", "message content must be a string or "
                                                 "a list of parts");
    size_t i;
    const json_t *part;
    json_array_foreach(c, i, part) {
        const json_t *t = json_object_get(part, "text");
        if (json_is_string(t))
            *words += str_words(t);
    }
    return 0;
}

static int chat_messages(const json_t *root, struct sim__params *p, struct err_detail *d)
{
    const json_t *v = json_object_get(root, "messages");
    if (!json_is_array(v) || json_array_size(v) == 0)
        return err_set(d, ERR_INVAL, "messages", "messages must be a non-empty list");
    size_t i;
    const json_t *m;
    p->prompt_tokens = 0;
    json_array_foreach(v, i, m) {
        if (!json_is_object(m))
            return err_set(d, ERR_INVAL, "messages", "each message must be an object");
        int rc = content_words(json_object_get(m, "content"), &p->prompt_tokens, d);
        if (rc)
            return rc;
    }
    return 0;
}

static int stream_opts(const json_t *root, struct sim__params *p, struct err_detail *d)
{
    int rc = opt_bool(root, "stream", &p->stream, d);
    if (rc)
        return rc;
    const json_t *so = json_object_get(root, "stream_options");
    if (!so || json_is_null(so))
        return 0;
    if (!json_is_object(so))
        return err_set(d, ERR_INVAL, "stream_options", "stream_options must be an object");
    if (!p->stream)
        return err_set(d, ERR_INVAL, "stream_options",
                       "Stream options can only be defined when `stream=True`.");
    if ((rc = opt_bool(so, "include_usage", &p->include_usage, d)))
        return rc;
    return opt_bool(so, "continuous_usage_stats", &p->continuous_usage, d);
}

static int openai(int api, const json_t *root, const char *model, struct sim__params *p,
                  struct err_detail *d)
{
    const json_t *m = json_object_get(root, "model");
    if (json_is_string(m) && strcmp(json_string_value(m), model) != 0)
        return err_set(d, ERR_NOTFOUND, "model", "The model `%.100s` does not exist.",
                       json_string_value(m));
    const json_t *n = json_object_get(root, "n");
    if (n && !json_is_null(n) && !(json_is_integer(n) && json_integer_value(n) == 1))
        return err_set(d, ERR_INVAL, "n", "the simulator only supports n=1");
    int rc = api == SIM_API_CHAT ? chat_messages(root, p, d) : completion_prompt(root, p, d);
    const json_t *mct = json_object_get(root, "max_completion_tokens");
    if (!rc && api == SIM_API_CHAT && mct && !json_is_null(mct))
        rc = opt_tokens(root, "max_completion_tokens", 256, &p->max_tokens, d);
    else if (!rc)
        rc = opt_tokens(root, "max_tokens", api == SIM_API_CHAT ? 256 : 16,
                        &p->max_tokens, d);
    if (!rc)
        rc = opt_bool(root, "ignore_eos", &p->ignore_eos, d);
    return rc ? rc : stream_opts(root, p, d);
}

static int tgi(const json_t *root, struct sim__params *p, struct err_detail *d)
{
    const json_t *in = json_object_get(root, "inputs");
    if (!json_is_string(in))
        return err_set(d, ERR_INVAL, "inputs", "`inputs` must be a string");
    p->prompt_tokens = str_words(in);
    const json_t *par = json_object_get(root, "parameters");
    if (par && !json_is_null(par) && !json_is_object(par))
        return err_set(d, ERR_INVAL, "parameters", "`parameters` must be an object");
    if (!par || json_is_null(par)) {
        p->max_tokens = 100;
        return 0;
    }
    int rc = opt_tokens(par, "max_new_tokens", 100, &p->max_tokens, d);
    if (!rc)
        rc = opt_bool(par, "details", &p->details, d);
    if (!rc)
        rc = opt_bool(par, "ignore_eos", &p->ignore_eos, d);
    return rc;
}

int sim__params_parse(int api, const char *body, size_t n, const char *model,
                      struct sim__params *p, struct err_detail *d)
{
    json_error_t je;
    int stream = p->stream;
    memset(p, 0, sizeof(*p));
    p->api = api;
    json_t *root = json_loadb(body, n, 0, &je);
    if (!root)
        return err_set(d, ERR_PARSE, "", "JSON decode error: %s (line %d, column %d)",
                       je.text, je.line, je.column);
    int rc;
    if (!json_is_object(root))
        rc = err_set(d, ERR_PARSE, "", "the request body must be a JSON object");
    else if (api == SIM_API_TGI) {
        p->stream = stream;
        rc = tgi(root, p, d);
    } else
        rc = openai(api, root, model, p, d);
    json_decref(root);
    return rc;
}
