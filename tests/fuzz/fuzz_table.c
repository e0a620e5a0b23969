/* fuzz_table.c: libFuzzer target for the item-table reader (CSV with RFC
 * 4180 quoting, or TSV), which Ducho-style extraction reads item ids and
 * texts from. Anything may be refused; nothing may crash, leak or hang, and
 * an accepted table must be rectangular, every cell a NUL-terminated
 * string, and every header name found again by a column lookup.
 *
 * Input: byte 0 picks the separator (bit 0: tab, else comma); the rest is
 * the file. The reader takes a path, so each input is written to a scratch
 * file first. The fuzz build links only the parsers the Makefile lists, so
 * the reader's source is compiled in here. */
#include "../../extractors/table.c"

#include "scratch.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    char path[256];
    fuzz_scratch("fuzz_table");
    fuzz_put("items.csv", data + 1, size - 1, path, sizeof path);
    mrec_table t;
    if (mrec_table_read(&t, path, (data[0] & 1) ? '\t' : ',') != MREC_OK) return 0;
    if (t.n_cols < 1 || t.n_rows < 0 || !t.header) abort();
    for (int c = 0; c < t.n_cols; c++) {
        if (!t.header[c]) abort();
        (void)strlen(t.header[c]);
        int col = -1;
        if (mrec_table_column(&t, t.header[c], path, &col) != MREC_OK || col < 0 || col >= t.n_cols) abort();
    }
    for (int64_t i = 0; i < (int64_t)t.n_rows * t.n_cols; i++) {
        if (!t.cells[i]) abort();
        (void)strlen(t.cells[i]);
    }
    mrec_table_free(&t);
    return 0;
}
