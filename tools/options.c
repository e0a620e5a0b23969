/* options.c: the table-driven option parser and help of mrec_options.h.
 *
 * Values are read by the checked parsers of parse.c, so the command line
 * refuses what they refuse (trailing text, hexadecimal, NaN, out of range).
 * The model hyper-parameters come from the registry: their flags, types and
 * ranges are its, and help lists each model's default from its entries.
 */
#include "mrec_options.h"
#include "mrec_parse.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- hyper-parameter values ---- */

static mrec_status parse_item(const char *text, const mrec_range *r, double *out) {
    if (r->whole) {
        long v;
        long lo = r->lo < -2147483647.0 ? -2147483647L : (long)r->lo, hi = r->hi > 2147483647.0 ? 2147483647L : (long)r->hi;
        mrec_status st = mrec_parse_int(text, lo, hi, &v);
        if (!st) *out = (double)v;
        return st;
    }
    double x;
    mrec_status st = mrec_parse_real(text, r->lo, r->hi, r->open, &x);
    if (st) return st;
    float f = (float)x; /* rounding to single precision may leave the range: lr 1e-50 is 0 */
    int inside = isfinite(f) && (r->open & MREC_OPEN_LO ? f > r->lo : f >= r->lo) && (r->open & MREC_OPEN_HI ? f < r->hi : f <= r->hi);
    if (!inside) return mrec_fail(MREC_ERR_ARG, "'%.64s' is %g in single precision, outside the range", text, (double)f);
    *out = (double)f;
    return MREC_OK;
}

/* "[1, 1000000]"; with words, "a whole number in [1, 1000000]" or "in (0, 1]" */
static void range_text(char *out, size_t cap, const mrec_range *r, int words) {
    snprintf(out, cap, "%s%s%.10g, %.10g%s", !words ? "" : r->whole ? "a whole number in " : "in ", r->open & MREC_OPEN_LO ? "(" : "[", r->lo,
             r->hi, r->open & MREC_OPEN_HI ? ")" : "]");
}

mrec_status mrec_param_parse(mrec_hp h, const char *text, mrec_param_value *out) {
    const mrec_param_spec *s = mrec_param_spec_of(h);
    mrec_param_value v = {.given = 1};
    mrec_status st = MREC_OK;
    if (!s) return mrec_fail(MREC_ERR_ARG, "no hyper-parameter %d", (int)h);
    if (!text) text = "";
    switch (s->type) {
    case MREC_PARAM_INT:
    case MREC_PARAM_REAL: st = parse_item(text, &s->range, &v.x[0]); break;
    case MREC_PARAM_U64: st = mrec_parse_u64(text, 0, UINT64_MAX, &v.u); break;
    case MREC_PARAM_ENUM: {
        char all[256];
        size_t at = 0;
        st = MREC_ERR_ARG;
        for (int i = 0; s->choices[i]; i++) {
            if (!strcmp(text, s->choices[i])) v.x[0] = i, st = MREC_OK;
            at += (size_t)snprintf(all + at, at < sizeof all ? sizeof all - at : 0, "%s%s", i ? (s->choices[i + 1] ? ", " : " or ") : "",
                                   s->choices[i]);
        }
        if (st) return mrec_fail(MREC_ERR_ARG, "expected %s, got '%.64s'", all, text);
        break;
    }
    case MREC_PARAM_LIST: {
        /* F:EVERY on the command line, (F, EVERY) in an Elliot config */
        char buf[128], want[256], form[128];
        size_t len = strlen(text), at = 0, fat = 0;
        int tuple = len >= 2 && text[0] == '(' && text[len - 1] == ')';
        snprintf(buf, sizeof buf, "%.*s", tuple ? (int)len - 2 : (int)len, tuple ? text + 1 : text);
        for (int i = 0; i < s->n_items; i++) {
            char r[96];
            range_text(r, sizeof r, &s->item[i], 1);
            at += (size_t)snprintf(want + at, at < sizeof want ? sizeof want - at : 0, "%s%s %s", i ? ", " : "", s->item_name[i], r);
            fat += (size_t)snprintf(form + fat, fat < sizeof form ? sizeof form - fat : 0, "%s%s", i ? (tuple ? ", " : ":") : "", s->item_name[i]);
        }
        char *save = NULL, *part = strtok_r(buf, tuple ? "," : ":", &save);
        int n = 0;
        for (; part && n < s->n_items; part = strtok_r(NULL, tuple ? "," : ":", &save), n++) {
            while (*part == ' ') part++;
            for (char *e = part + strlen(part); e > part && e[-1] == ' ';) *--e = 0;
            if (s->item_none && !strcmp(part, s->item_none)) v.x[n] = 0;
            else if (parse_item(part, &s->item[n], &v.x[n])) break;
        }
        /* strtok passes over empty parts: "0.9::5" and "0.9:5:" are refused here */
        int empty = strstr(text, tuple ? ",," : "::") || (len && strchr(":,", text[len - 1 - tuple])) || strchr(":,", text[tuple]);
        if (n != s->n_items || part || len >= sizeof buf || empty)
            return mrec_fail(MREC_ERR_ARG, "expected %s%s%s, %s; got '%.64s'", tuple ? "(" : "", form, tuple ? ")" : "", want, text);
        break;
    }
    }
    if (!st) *out = v;
    return st;
}

/* ---- parsing ---- */

static int refuse(const mrec_command *c, const char *flag) {
    fprintf(stderr, "mrec %s: %s: %s\n", c->name, flag, mrec_error_detail());
    return MREC_OPTS_USAGE;
}

static int has_model_params(const mrec_command *c) {
    for (int i = 0; i < c->n_opt; i++)
        if (c->opt[i].type == MREC_OPT_MODEL_PARAMS) return 1;
    return 0;
}

static int parse_value(const mrec_command *c, const mrec_option *o, const char *v, mrec_opt_value *out) {
    mrec_opt_value x = {.given = 1, .text = v};
    switch (o->type) {
    case MREC_OPT_INT: {
        long lo = o->lo < INT_MIN ? INT_MIN : (long)o->lo, hi = o->hi > INT_MAX ? INT_MAX : (long)o->hi;
        if (mrec_parse_int(v, lo, hi, &x.i)) return refuse(c, o->flag);
        break;
    }
    case MREC_OPT_U64:
        if (mrec_parse_u64(v, 0, UINT64_MAX, &x.u)) return refuse(c, o->flag);
        break;
    case MREC_OPT_REAL: {
        mrec_range r = {o->lo, o->hi, o->open, 0};
        if (parse_item(v, &r, &x.r)) return refuse(c, o->flag);
        break;
    }
    case MREC_OPT_ENUM: {
        x.i = -1;
        size_t n = strlen(v);
        int k = 0;
        for (const char *p = o->choices; *p; k++) {
            size_t len = strcspn(p, "|");
            if (len == n && !strncmp(p, v, n)) x.i = k;
            p += len + (p[len] == '|');
        }
        if (x.i < 0) {
            fprintf(stderr, "mrec %s: %s: expected one of %s, got '%.64s'\n", c->name, o->flag, o->choices, v);
            return MREC_OPTS_USAGE;
        }
        break;
    }
    case MREC_OPT_PATH:
        if (mrec_check_input(v, o->flag, o->allow_dir)) { /* a FIFO would block the reader */
            fprintf(stderr, "mrec %s: %s\n", c->name, mrec_error_detail());
            return MREC_OPTS_INPUT;
        }
        break;
    case MREC_OPT_LIST:
        for (const char *p = v;; x.n++) {
            size_t len = strcspn(p, ",");
            char tok[32];
            int ok = x.n < o->max_items && len < sizeof tok;
            if (ok) memcpy(tok, p, len), tok[len] = 0;
            if (!ok || mrec_parse_int(tok, (long)o->lo, (long)o->hi, &x.list[x.n]) || (x.n && x.list[x.n] <= x.list[x.n - 1])) {
                fprintf(stderr, "mrec %s: %s: expected up to %d ascending whole numbers in [%g, %g] separated by commas, like %s, got '%.64s'\n",
                        c->name, o->flag, o->max_items, o->lo, o->hi, o->def ? o->def : "1,2", v);
                return MREC_OPTS_USAGE;
            }
            if (!p[len]) {
                x.n++;
                break;
            }
            p += len + 1;
        }
        break;
    default: break;
    }
    *out = x;
    return MREC_OPTS_OK;
}

int mrec_options_parse(const mrec_command *c, int argc, char **argv, mrec_opt_value *val, mrec_param_values *hp, const char **pos,
                       int *n_pos) {
    int with_hp = has_model_params(c) && hp;
    memset(val, 0, sizeof *val * (size_t)c->n_opt);
    if (with_hp) memset(hp, 0, sizeof *hp);
    if (n_pos) *n_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            mrec_options_help(stdout, c);
            return MREC_OPTS_HELP;
        }
        const mrec_option *o = NULL;
        int row = -1;
        for (int k = 0; k < c->n_opt && !o; k++)
            if (c->opt[k].flag && c->opt[k].type != MREC_OPT_MODEL_PARAMS && !strcmp(c->opt[k].flag, a)) o = &c->opt[k], row = k;
        if (o && o->type == MREC_OPT_SWITCH) {
            val[row] = (mrec_opt_value){.given = 1, .text = a};
            continue;
        }
        if (o) {
            if (mrec_opt_missing(c->name, a, v)) return MREC_OPTS_USAGE;
            int rc = parse_value(c, o, v, &val[row]);
            if (rc) return rc;
            i++;
            continue;
        }
        int h = -1, sw = 0;
        for (int k = 0; with_hp && k < MREC_HP_COUNT && h < 0; k++) {
            const mrec_param_spec *s = mrec_param_spec_of((mrec_hp)k);
            if (!strcmp(s->flag, a)) h = k;
            else if (s->sw && !strcmp(s->sw, a)) h = k, sw = 1;
        }
        if (h >= 0 && sw) {
            hp->v[h] = (mrec_param_value){.x = {mrec_param_spec_of((mrec_hp)h)->sw_value}, .given = 1};
            continue;
        }
        if (h >= 0) {
            if (mrec_opt_missing(c->name, a, v)) return MREC_OPTS_USAGE;
            if (mrec_param_parse((mrec_hp)h, v, &hp->v[h])) return refuse(c, a);
            i++;
            continue;
        }
        if (a[0] == '-' && a[1]) {
            fprintf(stderr, "mrec %s: unknown option '%s' (mrec %s --help lists them)\n", c->name, a, c->name);
            return MREC_OPTS_USAGE;
        }
        if (!pos || !n_pos || *n_pos >= c->max_positional) {
            fprintf(stderr, "mrec %s: unexpected '%s' (mrec %s --help lists the options)\n", c->name, a, c->name);
            return MREC_OPTS_USAGE;
        }
        pos[(*n_pos)++] = a;
    }
    return MREC_OPTS_OK;
}

/* ---- help ---- */

/* "  --flag META   help", the help wrapped at word ends to 110 columns under its first line */
static void line(FILE *f, const char *left, const char *help) {
    enum { INDENT = 29, WIDTH = 110 };
    if (strlen(left) <= INDENT - 3) fprintf(f, "  %-*s ", INDENT - 3, left);
    else fprintf(f, "  %s\n%*s", left, INDENT, "");
    for (const char *p = help; *p;) {
        size_t len = strlen(p);
        if (len > WIDTH - INDENT) {
            len = WIDTH - INDENT;
            while (len > 0 && p[len] != ' ') len--;
            if (!len) len = strcspn(p, " ");
        }
        fprintf(f, "%.*s\n", (int)len, p);
        p += len;
        while (*p == ' ') p++;
        if (*p) fprintf(f, "%*s", INDENT, "");
    }
}

/* Each model's default of h, grouped by value: "default 3 (lightgcn, ngcf, ngcfm); 2 (freedom); 1 (bm3)". The
 * models of the shared default are named only when some models that train do not read h. */
static void hp_defaults(char *out, size_t cap, mrec_hp h) {
    const mrec_param_spec *s = mrec_param_spec_of(h);
    char values[32][64], users[32][256];
    int n = 0, fit = h < MREC_HP_DIM, shared = -1, all_trainers = 1;
    mrec_param_value shared_v = {.x = {s->def[0], s->def[1]}, .u = (uint64_t)s->def[0]};
    char shared_text[64];
    mrec_param_format(shared_text, sizeof shared_text, h, &shared_v);
    for (int m = 0; m < mrec_model_count(); m++) {
        const mrec_model_entry *e = mrec_model_at(m);
        const mrec_model_param *q = mrec_model_param_of(e, h);
        if (!q && (e->flags & MREC_MODEL_TRAINS) && !fit) all_trainers = 0;
        if (!q && !(fit && (e->flags & MREC_MODEL_TRAINS))) continue;
        mrec_param_value v = shared_v;
        if (q && q->own_default) v.x[0] = q->def[0], v.x[1] = q->def[1];
        char text[64];
        mrec_param_format(text, sizeof text, h, &v);
        int g = 0;
        while (g < n && strcmp(values[g], text)) g++;
        if (g == n && n == 32) continue;
        if (g == n) snprintf(values[n], sizeof values[0], "%s", text), users[n][0] = 0, n++;
        if (!strcmp(text, shared_text) && (!q || !q->own_default)) shared = g;
        size_t at = strlen(users[g]);
        snprintf(users[g] + at, sizeof users[0] - at, "%s%s", at ? ", " : "", e->name);
    }
    size_t at = (size_t)snprintf(out, cap, "default");
    for (int g = 0; g < n && at < cap; g++) {
        int named = g != shared || !all_trainers;
        at += (size_t)snprintf(out + at, cap - at, "%s %s%s%s%s", g ? ";" : "", values[g], named ? " (" : "", named ? users[g] : "", named ? ")" : "");
    }
}

static void show_model_params(FILE *f) {
    for (int h = 0; h < MREC_HP_COUNT; h++) {
        const mrec_param_spec *s = mrec_param_spec_of((mrec_hp)h);
        char left[96], help[1024], range[256] = "";
        snprintf(left, sizeof left, "%s %s", s->flag, s->meta);
        if (s->type == MREC_PARAM_INT || s->type == MREC_PARAM_REAL) {
            char r[96];
            range_text(r, sizeof r, &s->range, 0);
            snprintf(range, sizeof range, " %s;", r);
        } else if (s->type == MREC_PARAM_LIST) {
            size_t at = 0;
            for (int i = 0; i < s->n_items; i++) {
                char r[96];
                range_text(r, sizeof r, &s->item[i], 0);
                at += (size_t)snprintf(range + at, sizeof range - at, "%s %s %s", i ? "," : "", s->item_name[i], r);
            }
            snprintf(range + at, sizeof range - at, ";");
        }
        char defaults[600];
        hp_defaults(defaults, sizeof defaults, (mrec_hp)h);
        snprintf(help, sizeof help, "%s;%s %s", s->help, range, defaults);
        line(f, left, help);
        if (s->sw) {
            char same[128];
            snprintf(same, sizeof same, "the same as %s %s", s->flag, s->choices ? s->choices[s->sw_value] : "");
            line(f, s->sw, same);
        }
    }
}

void mrec_options_help(FILE *f, const mrec_command *c) {
    fprintf(f, "%s", c->usage);
    for (int i = 0; i < c->n_opt; i++) {
        const mrec_option *o = &c->opt[i];
        if (o->section) fprintf(f, "\n%s:\n", o->section);
        if (o->type == MREC_OPT_MODEL_PARAMS) {
            show_model_params(f);
            continue;
        }
        char left[96], help[768];
        snprintf(left, sizeof left, "%s%s%s", o->flag, o->meta ? " " : "", o->meta ? o->meta : "");
        size_t at = (size_t)snprintf(help, sizeof help, "%s", o->help);
        if (o->type == MREC_OPT_INT || o->type == MREC_OPT_REAL)
            at += (size_t)snprintf(help + at, sizeof help - at, "; %s%.10g, %.10g%s", o->open & MREC_OPEN_LO ? "(" : "[", o->lo, o->hi,
                                   o->open & MREC_OPEN_HI ? ")" : "]");
        if (o->def && at < sizeof help) snprintf(help + at, sizeof help - at, "; default %s", o->def);
        line(f, left, help);
    }
    if (c->notes) fprintf(f, "\n%s", c->notes);
}

int mrec_options_device(const mrec_opt_value *device, const mrec_opt_value *precision, mrec_context_options *o) {
    /* the parser checked both against their choices, so these cannot fail */
    if (device->given) mrec_device_request_parse(device->text, &o->device);
    if (precision->given) mrec_precision_parse(precision->text, &o->precision);
    return device->given;
}
