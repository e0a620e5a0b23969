/* bench_data.h: where the benchmarks find ../shared/data's files: under
 * MREC_DATA, ../shared/data or shared/data (make gpu-deps stages a part of
 * it there, for a GPU machine, where ../shared does not travel). */
#ifndef MREC_BENCH_DATA_H
#define MREC_BENCH_DATA_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* out = the first readable ROOT/rel; 0 (out empty) when there is none */
static int bench_data_path(char *out, size_t cap, const char *rel) {
    const char *roots[] = {getenv("MREC_DATA"), "../shared/data", "shared/data"};
    for (int i = 0; i < 3; i++) {
        if (!roots[i]) continue;
        snprintf(out, cap, "%s/%s", roots[i], rel);
        if (access(out, R_OK) == 0) return 1;
    }
    out[0] = 0;
    return 0;
}
#endif
