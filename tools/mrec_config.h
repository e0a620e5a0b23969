/* mrec_config.h: YAML config files (Ducho's and Elliot's) as a tree with
 * line numbers, and typed reads whose errors name the file, the key and the
 * line, so a config is checked against what mrec implements key by key.
 *
 * The YAML is read by libyaml: block and flow style, quoting, comments. One
 * document per file; aliases and tags are refused (neither tool's configs use
 * them). Scalars keep their text; the readers below convert and check them.
 */
#ifndef MREC_CONFIG_H
#define MREC_CONFIG_H

#include "../kernels/mrec_status.h"

typedef enum { MREC_CFG_MAP, MREC_CFG_SEQ, MREC_CFG_SCALAR } mrec_cfg_kind;

typedef struct mrec_cfg_node {
    mrec_cfg_kind kind;
    int line;                          /* 1-based, where the node starts */
    char *key;                         /* in a map: the entry's key, else NULL */
    char *value;                       /* a scalar's text */
    int quoted;                        /* a quoted scalar: a string, never a number */
    struct mrec_cfg_node *child, *next; /* a map's entries or a sequence's items, in order */
} mrec_cfg_node;

typedef struct {
    mrec_cfg_node *root;
    char *path;
} mrec_cfg;

#include <stddef.h>

mrec_status mrec_cfg_load(mrec_cfg *c, const char *path);
/* The same from memory; label names it in messages. */
mrec_status mrec_cfg_parse(mrec_cfg *c, const char *text, size_t len, const char *label);
void mrec_cfg_free(mrec_cfg *c);

/* The entry `key` of a map, or NULL. */
const mrec_cfg_node *mrec_cfg_get(const mrec_cfg_node *map, const char *key);
int mrec_cfg_count(const mrec_cfg_node *seq_or_map);

/* Every key of map must be among allowed (NULL-terminated); `where` names the
 * section in the message ("experiment.models.BPRMF"). A map repeating a key
 * is an error too. */
mrec_status mrec_cfg_check_keys(const mrec_cfg *c, const mrec_cfg_node *map, const char *where, const char *const *allowed);

/* Typed reads of map[key]. A missing key is an error when required, else
 * leaves *out as it is. Numbers must be plain YAML numbers (unquoted), in
 * range; booleans true/false (also True/False, yes/no). */
mrec_status mrec_cfg_string(const mrec_cfg *c, const mrec_cfg_node *map, const char *key, int required, const char **out);
mrec_status mrec_cfg_int(const mrec_cfg *c, const mrec_cfg_node *map, const char *key, int required, long lo, long hi, long *out);
mrec_status mrec_cfg_number(const mrec_cfg *c, const mrec_cfg_node *map, const char *key, int required, double lo, double hi,
                            double *out);
mrec_status mrec_cfg_bool(const mrec_cfg *c, const mrec_cfg_node *map, const char *key, int required, int *out);

/* The same checks on a node itself (a sequence item): `what` names it. */
mrec_status mrec_cfg_node_number(const mrec_cfg *c, const mrec_cfg_node *n, const char *what, double lo, double hi, double *out);

#endif
