/* recsys_internal.h: what the files of recsys/ share and the public header
 * does not promise. */
#ifndef MREC_RECSYS_INTERNAL_H
#define MREC_RECSYS_INTERNAL_H

#include <stdio.h>

#include "../kernels/mrec_status.h"

/* Opens path for reading only if it is a regular file: a folder, FIFO or
 * device is an error naming it, found before anything blocks or is read. */

#endif
