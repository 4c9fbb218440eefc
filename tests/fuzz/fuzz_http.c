/*
 * fuzz_http.c: libFuzzer target for the HTTP endpoint's query parser: arbitrary bytes
 * as the query of GET /check; whatever parses must point inside the query.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http_query.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *query = malloc(size + 1), why[256];
    rl_http_params p = {{NULL, NULL, NULL}, {0, 0, 0}};
    int64_t cost;
    if (!query)
        return 0;
    memcpy(query, data, size);
    query[size] = '\0';
    if (!rl_http_parse_query(query, &p, why, sizeof(why))) {
        for (int i = 0; i < RL_PARAM_COUNT; i++)
            if (p.value[i] && (p.value[i] < query || p.value[i] + p.len[i] > query + size))
                __builtin_trap();
        if (!rl_http_params_valid(&p, &cost, why, sizeof(why)) && (cost < 1 || cost > UINT32_MAX))
            __builtin_trap();
    }
    free(query);
    return 0;
}
