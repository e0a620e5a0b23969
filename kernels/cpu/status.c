/* status.c: status strings and the thread-local error detail. */
#include "../mrec_status.h"

#include <stdarg.h>
#include <stdio.h>

static _Thread_local char detail[512];

const char *mrec_strerror(mrec_status status) {
    switch (status) {
    case MREC_OK:              return "ok";
    case MREC_ERR_NOMEM:       return "out of memory";
    case MREC_ERR_IO:          return "I/O error";
    case MREC_ERR_FORMAT:      return "malformed file";
    case MREC_ERR_DTYPE:       return "unsupported dtype";
    case MREC_ERR_SHAPE:       return "bad shape";
    case MREC_ERR_NOT_FOUND:   return "not found";
    case MREC_ERR_ARG:         return "invalid argument";
    case MREC_ERR_DEVICE:      return "device error";
    case MREC_ERR_UNSUPPORTED: return "unsupported";
    case MREC_STATUS_COUNT:    break;
    }
    return "unknown status";
}

const char *mrec_error_detail(void) { return detail; }

void mrec_clear_error(void) { detail[0] = '\0'; }

mrec_status mrec_fail(mrec_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    return status;
}
