/*
 * fuzz_config.c: libFuzzer target for the config parser: arbitrary bytes as a config
 * file; whatever parses must answer policy lookups without fault.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    char err[512];
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    rl_config *c = rl_config_parse(text, "fuzz", err, sizeof(err));
    for (size_t i = 0; c && i < c->policy_count; i++) {
        const rl_policy *p = rl_config_policy(c, c->policies[i].name, c->policies[i].name_len);
        if (p != &c->policies[i])
            __builtin_trap();
        (void)rl_policy_limits(p, "k", 1);
    }
    rl_config_free(c);
    free(text);
    return 0;
}
