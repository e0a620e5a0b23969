/* recsys_internal.h: what the files of recsys/ share and the public header
 * does not promise. */
#ifndef MREC_RECSYS_INTERNAL_H
#define MREC_RECSYS_INTERNAL_H

#include <stdio.h>

#include "mrec_recsys.h"

/* Opens path for reading only if it is a regular file: a folder, FIFO or
 * device is an error naming it, found before anything blocks or is read. */

/* A graph in host memory as the op layer's sparse matrix (mrec_spmm). */
static inline mrec_csr mrec_graph_csr(const mrec_graph *g) {
    mrec_csr a = {.n_rows = g->n_nodes, .n_cols = g->n_nodes, .row_ptr = g->row_ptr, .col = g->col, .val = g->val,
                  .device = MREC_DEVICE_CPU};
    return a;
}

/* What keeps its arrays in host memory runs on a CPU context only: on
 * another, an error naming it, so nothing hands host pointers to a GPU op. */
mrec_status mrec_recsys_host_only(const mrec_context *ctx, const char *what);

#endif
