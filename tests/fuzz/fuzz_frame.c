/*
 * fuzz_frame.c: libFuzzer target for the frame decoder: header, request and response
 * decoding of arbitrary bytes, and the re-encoding of whatever decodes.
 */
#include <stdint.h>
#include <string.h>

#include "rlproto.h"

static void roundtrip_request(const rl_request *req) {
    uint8_t out[70000];
    size_t n = rl_request_encode(req, out, sizeof(out));
    rl_request again;
    rl_status status;
    if (n > 0 && rl_request_decode(out, n, &again, &status) != RL_OK)
        __builtin_trap(); /* what the codec encodes, it must decode */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    rl_header hdr;
    rl_status status;
    rl_request req;
    rl_response resp;
    if (rl_header_read(data, size, RL_DEFAULT_MAX_FRAME, &hdr, &status) == RL_OK &&
        4 + (size_t)hdr.length <= size &&
        rl_request_decode(data, 4 + (size_t)hdr.length, &req, &status) == RL_OK)
        roundtrip_request(&req);
    (void)rl_response_decode(data, size, &resp);
    return 0;
}
