/* transform.c: turns one CUDA source file of kernels/cuda into host C++ for the CPU emulator.
 *
 *   transform IN.cu OUT.cpp
 *
 * The output is compiled by g++ with `-include tests/emu/cuda_emu.h`, which defines the CUDA built-ins.
 * What cannot be done by a header alone is done here, textually:
 *   - the inline-PTX helpers of attention.cu (tf32_bits, mma_tf32, mma_bf16, cp_async16, cp_async_commit,
 *     cp_async_wait<N>, ldmatrix_x4_trans) are removed; cuda_emu.h defines emulations with the same
 *     names and signatures;
 *   - `__CUDA_ARCH__` becomes `EMU_ARCH` (900: the device path of every `#if __CUDA_ARCH__ >= 800`);
 *   - `extern __shared__ [__align__(n)] T name[];` becomes `T *name = (T *)emu_dyn_smem();`;
 *   - `kernel<<<cfg>>>(args)` becomes `emu_launch_fn("kernel", emu_cfg(cfg),
 *     [=](auto... emu_a) { emu_args("kernel", emu_a...); kernel(emu_a...); }, kernel, args)`: the arguments are
 *     evaluated at the launch and kept by value, as CUDA does, so that the kernel may run later (a stream's
 *     queue, a CUDA graph's replay); a generic lambda, so arrays of kernels work as in C++ (a NULL argument
 *     becomes nullptr, which stays a pointer); emu_args checks that its pointers are device memory when it
 *     runs. The kernel is passed as well, for its parameters' types (the race check, cuda_emu.h's
 *     emu_accesses), so a template kernel names its arguments (kernel<Op><<<...>>>), not left to deduction.
 * Every line keeps its number (removed lines become empty lines) and the output starts with a #line
 * directive naming IN, so compiler messages and the emulator's reports (which print __LINE__) point
 * into the real kernel source. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* a growable string */
typedef struct {
    char *s;
    size_t n, cap;
} buf;

static void put(buf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->s = realloc(b->s, b->cap);
        if (!b->s) {
            fprintf(stderr, "transform: out of memory\n");
            exit(1);
        }
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}
static void puts_(buf *b, const char *s) { put(b, s, strlen(s)); }
static void newlines(buf *b, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\n') put(b, "\n", 1);
}

static const char *helpers[] = {"tf32_bits", "mma_tf32", "mma_bf16", "cp_async16", "cp_async_commit", "cp_async_wait", "ldmatrix_x4_trans"};

/* "__device__ static inline TYPE NAME(" with NAME a helper: the helper's name, else NULL */
static const char *helper_at(const char *line) {
    static const char pre[] = "__device__ static inline ";
    if (strncmp(line, pre, sizeof pre - 1)) return NULL;
    const char *p = line + sizeof pre - 1;
    while (isalnum((unsigned char)*p) || *p == '_') p++; /* the return type */
    if (*p++ != ' ') return NULL;
    const char *name = p;
    while (isalnum((unsigned char)*p) || *p == '_') p++;
    if (*p != '(') return NULL;
    for (size_t i = 0; i < sizeof helpers / sizeof *helpers; i++)
        if (strlen(helpers[i]) == (size_t)(p - name) && !strncmp(name, helpers[i], (size_t)(p - name))) return helpers[i];
    return NULL;
}

/* pass 1: drop the helpers (from their first line, or the template line before it, to the next line "}") */
static buf drop_helpers(const char *src) {
    buf out = {0};
    size_t last_line = 0; /* where the previous line starts in out */
    const char *p = src;
    while (*p) {
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        const char *name = helper_at(p);
        if (name) {
            if (!strncmp(out.s ? out.s + last_line : "", "template", 8)) { /* template <int N> before it */
                out.n = last_line;
                out.s[out.n] = 0;
                puts_(&out, "\n");
            }
            char note[96];
            snprintf(note, sizeof note, "/* %s: emulated in cuda_emu.h */", name);
            puts_(&out, note);
            for (;;) { /* through the closing brace, each line kept as an empty one */
                int closing = len == 1 && p[0] == '}';
                if (!e) break;
                p = e + 1;
                puts_(&out, "\n");
                if (closing) break;
                e = strchr(p, '\n');
                len = e ? (size_t)(e - p) : strlen(p);
            }
            last_line = out.n;
            continue;
        }
        last_line = out.n;
        put(&out, p, len);
        if (!e) break;
        puts_(&out, "\n");
        p = e + 1;
    }
    return out;
}

static int word_at(const char *s, size_t i, const char *w) {
    size_t n = strlen(w);
    return !strncmp(s + i, w, n) && (i == 0 || !(isalnum((unsigned char)s[i - 1]) || s[i - 1] == '_')) &&
           !(isalnum((unsigned char)s[i + n]) || s[i + n] == '_');
}

/* pass 2: __CUDA_ARCH__ and extern __shared__ arrays */
static buf rewrite_decls(const char *s) {
    buf out = {0};
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        if (word_at(s, i, "__CUDA_ARCH__")) {
            puts_(&out, "EMU_ARCH");
            i += strlen("__CUDA_ARCH__");
            continue;
        }
        if (word_at(s, i, "extern")) {
            size_t j = i + 6;
            while (isspace((unsigned char)s[j])) j++;
            if (word_at(s, j, "__shared__")) {
                j += strlen("__shared__");
                while (isspace((unsigned char)s[j])) j++;
                if (!strncmp(s + j, "__align__(", 10)) {
                    j = strchr(s + j, ')') - s + 1;
                    while (isspace((unsigned char)s[j])) j++;
                }
                const char *end = strstr(s + j, "[];");
                if (!end || memchr(s + j, ';', (size_t)(end - (s + j)))) {
                    fprintf(stderr, "transform: an extern __shared__ declaration not of the form 'T name[];'\n");
                    exit(1);
                }
                size_t k = (size_t)(end - s); /* the name ends at k */
                size_t a = k;
                while (a > j && (isalnum((unsigned char)s[a - 1]) || s[a - 1] == '_')) a--;
                size_t t = a;
                while (t > j && isspace((unsigned char)s[t - 1])) t--;
                char decl[256];
                snprintf(decl, sizeof decl, "%.*s *%.*s = (%.*s *)emu_dyn_smem();", (int)(t - j), s + j, (int)(k - a), s + a,
                         (int)(t - j), s + j);
                puts_(&out, decl);
                i = k + 3;
                continue;
            }
        }
        put(&out, s + i, 1);
        i++;
    }
    return out;
}

/* where the callee before "<<<" at i starts: back over names, ::, ., and balanced (), [], <> */
static size_t callee_start(const char *s, size_t i) {
    size_t j = i;
    while (j > 0 && (s[j - 1] == ' ' || s[j - 1] == '\t')) j--;
    int depth = 0;
    while (j > 0) {
        char c = s[j - 1];
        if (c == ')' || c == ']' || c == '>') depth++;
        else if (c == '(' || c == '[' || c == '<') {
            if (depth == 0) break;
            depth--;
        } else if (depth == 0 && !(isalnum((unsigned char)c) || c == '_' || c == ':' || c == '.'))
            break;
        j--;
    }
    return j;
}

/* pass 3: the launches */
static buf rewrite_launches(const char *s) {
    buf out = {0};
    const char *p = s;
    for (;;) {
        const char *l = strstr(p, "<<<");
        if (!l) break;
        size_t a = callee_start(s, (size_t)(l - s));
        if (s + a < p) {
            fprintf(stderr, "transform: a launch inside another launch's arguments\n");
            exit(1);
        }
        const char *g = strstr(l, ">>>");
        const char *q = g ? g + 3 : NULL;
        while (q && isspace((unsigned char)*q)) q++;
        if (!q || *q != '(') {
            fprintf(stderr, "transform: a launch without its arguments after >>>\n");
            exit(1);
        }
        const char *r = q;
        int depth = 0;
        for (; *r; r++) {
            if (*r == '(') depth++;
            else if (*r == ')' && --depth == 0) break;
        }
        if (!*r) {
            fprintf(stderr, "transform: unbalanced parentheses in a launch\n");
            exit(1);
        }
        size_t cs = a, ce = (size_t)(l - s);
        while (ce > cs && isspace((unsigned char)s[ce - 1])) ce--;
        put(&out, p, (size_t)(s + a - p));
        puts_(&out, "emu_launch_fn(\"");
        for (size_t k = cs; k < ce; k++)
            if (s[k] != '"') put(&out, s + k, 1);
        puts_(&out, "\", emu_cfg(");
        put(&out, l + 3, (size_t)(g - (l + 3)));
        puts_(&out, "), [=](auto... emu_a) { emu_args(\"");
        for (size_t k = cs; k < ce; k++)
            if (s[k] != '"') put(&out, s + k, 1);
        puts_(&out, "\", emu_a...); ");
        put(&out, s + cs, ce - cs);
        puts_(&out, "(emu_a...); }, ");
        put(&out, s + cs, ce - cs); /* the kernel itself: its parameters' types, for the race check */
        const char *arg = q + 1;
        while (arg < r && isspace((unsigned char)*arg)) arg++;
        if (arg < r) puts_(&out, ", ");
        for (const char *t = q + 1; t <= r; t++) /* args), NULL as nullptr: a pointer, once held by value */
            if (!strncmp(t, "NULL", 4) && !(isalnum((unsigned char)t[-1]) || t[-1] == '_') && !(isalnum((unsigned char)t[4]) || t[4] == '_'))
                puts_(&out, "nullptr"), t += 3;
            else
                put(&out, t, 1);
        newlines(&out, g + 3, (size_t)(q - (g + 3))); /* the line breaks between >>> and ( */
        p = r + 1;
    }
    puts_(&out, p);
    return out;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: transform IN.cu OUT.cpp\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    buf src = {0};
    char chunk[65536];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) put(&src, chunk, got);
    fclose(f);
    if (!src.s) put(&src, "", 0);
    buf a = drop_helpers(src.s);
    buf b = rewrite_decls(a.s ? a.s : "");
    buf c = rewrite_launches(b.s ? b.s : "");
    FILE *o = fopen(argv[2], "wb");
    if (!o) {
        perror(argv[2]);
        return 1;
    }
    fprintf(o, "/* generated by tests/emu/transform from %s: do not edit */\n#line 1 \"%s\"\n", argv[1], argv[1]);
    fputs(c.s ? c.s : "", o);
    if (fclose(o)) {
        perror(argv[2]);
        return 1;
    }
    free(src.s), free(a.s), free(b.s), free(c.s);
    return 0;
}
