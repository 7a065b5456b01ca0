/*
 * Fuzz target: what the simulator reads from a client — the request head
 * parser (sim/http.c) and, when a head is complete, the body parser of
 * every endpoint (sim/params.c) over the bytes after it. Properties: a
 * complete head never claims more bytes than it was given.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sim/sim_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    struct sim__head h;
    int rc = sim__head_parse(p, size, &h);
    if (rc != 1)
        return 0;
    if (h.len > size)
        abort();
    for (int api = SIM_API_COMPL; api <= SIM_API_TGI; api++) {
        struct sim__params prm;
        struct err_detail d;
        memset(&prm, 0, sizeof(prm));
        int prc = sim__params_parse(api, p + h.len, size - h.len, "sim-model", &prm, &d);
        if (prc == 0 && (prm.max_tokens < 0 || prm.max_tokens > SIM_MAX_TOKENS))
            abort(); /* accepted a budget the sim refuses to serve */
    }
    return 0;
}
