/* mrec_status.h: the status codes every library function returns.
 *
 * Library code never exits and never prints: it returns a status and, for
 * errors about an input, records a one-line detail (file, tensor, offset)
 * that the caller reads with mrec_error_detail(). The detail lives in a
 * thread-local buffer, like errno, so concurrent loaders do not clobber it.
 */
#ifndef MREC_STATUS_H
#define MREC_STATUS_H

typedef enum {
    MREC_OK = 0,
    MREC_ERR_NOMEM,       /* an allocation failed */
    MREC_ERR_IO,          /* open / read / write / mmap / rename failed */
    MREC_ERR_FORMAT,      /* a file's contents are malformed */
    MREC_ERR_DTYPE,       /* unknown or unsupported element type */
    MREC_ERR_SHAPE,       /* shapes disagree, or a dimension is out of range */
    MREC_ERR_NOT_FOUND,   /* a named tensor or key is absent */
    MREC_ERR_ARG,         /* an argument is invalid */
    MREC_ERR_DEVICE,      /* no such device, or a device call failed */
    MREC_ERR_UNSUPPORTED, /* valid, but not something mrec does */
    MREC_STATUS_COUNT
} mrec_status;

/* A short, constant description of a status ("malformed file"). */
const char *mrec_strerror(mrec_status status);

/* The detail of the last error recorded on this thread ("" if none). */
const char *mrec_error_detail(void);

/* Records a printf-style detail and returns `status`, so library code can
 * write `return mrec_fail(MREC_ERR_FORMAT, "%s: header past end", path);`. */
mrec_status mrec_fail(mrec_status status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Clears this thread's detail. */
void mrec_clear_error(void);

#endif
