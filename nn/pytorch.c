/* pytorch.c: PyTorch checkpoints (zip and legacy torch.save) read through a
 * restricted unpickler, and written as safetensors. mrec_pytorch.h states the
 * formats, the opcodes and globals taken, and the checks.
 *
 * What it deliberately does not do: run anything a pickle names (there is
 * no call but the few listed constructors, which build plain values here),
 * read tensors that are not in the state dict, keep torch's sharing of one
 * storage between tensors (safetensors has no views: each tensor is written
 * as its own contiguous copy), or take the tar format of torch before 0.4.
 * The reference is torch/serialization.py and torch/_utils.py (what
 * torch.save writes), and Python's pickletools for the opcodes.
 */
#include "mrec_pytorch.h"

#include "mrec_io.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zip.h>

/* Hard caps for hostile files. The largest real pickle (a 10-billion
 * parameter state dict) is a few MB; the caps leave room for far more. */
#define PT_MAX_PICKLE ((uint64_t)1 << 30)   /* data.pkl bytes */
#define PT_MAX_STACK (1 << 22)              /* values on the stack */
#define PT_MAX_VALUES (1 << 23)             /* values built (about 80 bytes each): a state dict takes ~15 a tensor */
#define PT_MAX_MARKS (1 << 16)              /* open MARKs */
#define PT_MAX_MEMO (1 << 24)               /* memo slots */
#define PT_MAX_ENTRIES (1 << 22)            /* zip entries */
#define PT_MAX_GLOBAL 256                   /* a GLOBAL's module or name */
#define PT_DEFLATE_RATIO 1032               /* the most deflate expands its input */

/* ---- values ----------------------------------------------------------------- */

typedef enum { V_NONE, V_BOOL, V_INT, V_BIGINT, V_FLOAT, V_STR, V_TUPLE, V_LIST, V_DICT, V_GLOBAL, V_STORAGE, V_TENSOR, V_MODULE } vkind;
static const char *const KIND_NAME[] = {"None", "bool", "int", "int", "float", "str", "tuple", "list", "dict", "a class or function",
                                        "a storage", "a tensor", "a module"};

/* The globals a state dict needs, and those of a whole module saved by
 * torch.save(model): its classes (never instantiated: a module is a record of
 * its attributes) and builtins.set (its non-persistent buffer names). */
typedef enum { G_ORDERED_DICT, G_REBUILD_V2, G_REBUILD_V3, G_REBUILD_PARAMETER, G_STORAGE, G_UNTYPED_STORAGE, G_DTYPE, G_SET, G_MODULE_CLASS } gkind;

typedef struct value {
    vkind kind;
    int64_t i;             /* BOOL, INT; GLOBAL: its gkind; STORAGE, TENSOR: the index */
    double f;
    mrec_dtype dtype;      /* GLOBAL of a storage class or a dtype */
    char *s;               /* STR (NUL-terminated; len bytes, may hold NUL); GLOBAL of a module class, MODULE: its name */
    size_t len;
    struct value **items;  /* TUPLE, LIST; DICT: key, value, key, value ...; MODULE: its attributes' dict, once built */
    int n, cap;
    struct value *next;    /* every value, for freeing */
} value;

typedef struct {
    const uint8_t *p, *end, *start;
    const char *label;
    value *all;
    value **stack;
    int sp, stack_cap;
    int marks[PT_MAX_MARKS];
    int n_marks;
    value **memo;
    uint32_t memo_len, memo_cap;
    int n_values;
    mrec_pytorch *pt;      /* storages and tensors land here */
    int tensors_cap;
} unpickler;

/* NULL when out of memory or past PT_MAX_VALUES (push() then says which). */
static value *new_value(unpickler *u, vkind kind) {
    if (u->n_values >= PT_MAX_VALUES) return NULL;
    value *v = calloc(1, sizeof *v);
    if (!v) return NULL;
    u->n_values++;
    v->kind = kind;
    v->next = u->all;
    u->all = v;
    return v;
}

static void free_values(unpickler *u) {
    for (value *v = u->all, *next; v; v = next) {
        next = v->next;
        free(v->s);
        free(v->items);
        free(v);
    }
    u->all = NULL;
    free(u->stack);
    free(u->memo);
    u->stack = NULL;
    u->memo = NULL;
}

static int add_item(value *c, value *item) {
    if (c->n == c->cap) {
        if (c->cap > (1 << 28)) return 0;
        int cap = c->cap ? 2 * c->cap : 4;
        value **grown = realloc(c->items, (size_t)cap * sizeof *grown);
        if (!grown) return 0;
        c->items = grown;
        c->cap = cap;
    }
    c->items[c->n++] = item;
    return 1;
}

/* ---- the unpickler ---------------------------------------------------------- */

static const char *opcode_name(int op) {
    switch (op) {
    case 0x80: return "PROTO"; case 0x95: return "FRAME"; case '.': return "STOP"; case '(': return "MARK";
    case '}': return "EMPTY_DICT"; case ']': return "EMPTY_LIST"; case ')': return "EMPTY_TUPLE"; case 't': return "TUPLE";
    case 0x85: return "TUPLE1"; case 0x86: return "TUPLE2"; case 0x87: return "TUPLE3"; case 's': return "SETITEM";
    case 'u': return "SETITEMS"; case 'a': return "APPEND"; case 'e': return "APPENDS"; case 'X': return "BINUNICODE";
    case 0x8c: return "SHORT_BINUNICODE"; case 'J': return "BININT"; case 'K': return "BININT1"; case 'M': return "BININT2";
    case 0x8a: return "LONG1"; case 'G': return "BINFLOAT"; case 0x88: return "NEWTRUE"; case 0x89: return "NEWFALSE";
    case 'N': return "NONE"; case 'q': return "BINPUT"; case 'r': return "LONG_BINPUT"; case 0x94: return "MEMOIZE";
    case 'h': return "BINGET"; case 'j': return "LONG_BINGET"; case 'c': return "GLOBAL"; case 0x93: return "STACK_GLOBAL";
    case 'Q': return "BINPERSID"; case 'R': return "REDUCE"; case 'b': return "BUILD";
    /* known to pickle, refused here */
    case 'i': return "INST"; case 'o': return "OBJ"; case 0x81: return "NEWOBJ"; case 0x92: return "NEWOBJ_EX";
    case 'P': return "PERSID"; case 0x82: return "EXT1"; case 0x83: return "EXT2"; case 0x84: return "EXT4";
    case 'I': return "INT"; case 'L': return "LONG"; case 0x8b: return "LONG4"; case 'F': return "FLOAT";
    case 'S': return "STRING"; case 'T': return "BINSTRING"; case 'U': return "SHORT_BINSTRING"; case 'V': return "UNICODE";
    case 'B': return "BINBYTES"; case 'C': return "SHORT_BINBYTES"; case 0x8e: return "BINBYTES8"; case 0x8d: return "BINUNICODE8";
    case 0x96: return "BYTEARRAY8"; case 0x97: return "NEXT_BUFFER"; case 0x98: return "READONLY_BUFFER";
    case 0x8f: return "EMPTY_SET"; case 0x90: return "ADDITEMS"; case 0x91: return "FROZENSET"; case 'd': return "DICT";
    case 'l': return "LIST"; case '0': return "POP"; case '1': return "POP_MARK"; case '2': return "DUP"; case 'g': return "GET";
    case 'p': return "PUT";
    default: return NULL;
    }
}

static long at(const unpickler *u) { return (long)(u->p - u->start); }

#define FAIL(...) return mrec_fail(MREC_ERR_FORMAT, __VA_ARGS__)

static mrec_status need(unpickler *u, size_t n, const char *what) {
    if ((size_t)(u->end - u->p) < n) FAIL("%s: the pickle ends inside %s at byte %ld", u->label, what, at(u));
    return MREC_OK;
}

static uint64_t le(const uint8_t *p, int n) {
    uint64_t x = 0;
    for (int i = n - 1; i >= 0; i--) x = x << 8 | p[i];
    return x;
}

static mrec_status push(unpickler *u, value *v) {
    if (!v && u->n_values >= PT_MAX_VALUES)
        return mrec_fail(MREC_ERR_FORMAT, "%s: the pickle builds more than %d values (at byte %ld); a state dict needs far fewer", u->label, PT_MAX_VALUES, at(u));
    if (!v) return push(u, NULL); /* says why */
    if (u->sp == u->stack_cap) {
        if (u->stack_cap >= PT_MAX_STACK) FAIL("%s: the pickle's stack grows past %d values at byte %ld", u->label, PT_MAX_STACK, at(u));
        int cap = u->stack_cap ? 2 * u->stack_cap : 64;
        value **grown = realloc(u->stack, (size_t)cap * sizeof *grown);
        if (!grown) return mrec_fail(MREC_ERR_NOMEM, "%s: unpickling", u->label);
        u->stack = grown;
        u->stack_cap = cap;
    }
    u->stack[u->sp++] = v;
    return MREC_OK;
}

/* The stack above the last MARK must hold at least n values. */
static mrec_status want(unpickler *u, int n, const char *op) {
    int floor = u->n_marks ? u->marks[u->n_marks - 1] : 0;
    if (u->sp - floor < n) FAIL("%s: %s at byte %ld needs %d value%s on the stack", u->label, op, at(u) - 1, n, n == 1 ? "" : "s");
    return MREC_OK;
}

static value *pop(unpickler *u) { return u->stack[--u->sp]; }

static mrec_status pop_mark(unpickler *u, const char *op, int *from) {
    if (!u->n_marks) FAIL("%s: %s at byte %ld without a MARK", u->label, op, at(u) - 1);
    *from = u->marks[--u->n_marks];
    return MREC_OK;
}

static mrec_status memo_put(unpickler *u, uint64_t idx) {
    if (!u->sp || (u->n_marks && u->marks[u->n_marks - 1] == u->sp))
        FAIL("%s: a memo put at byte %ld with nothing to store", u->label, at(u));
    if (idx >= PT_MAX_MEMO) FAIL("%s: memo index %llu at byte %ld is out of range (at most %d)", u->label, (unsigned long long)idx, at(u), PT_MAX_MEMO - 1);
    if (idx >= u->memo_cap) {
        uint32_t cap = u->memo_cap ? u->memo_cap : 64;
        while (cap <= idx) cap *= 2;
        value **grown = realloc(u->memo, (size_t)cap * sizeof *grown);
        if (!grown) return mrec_fail(MREC_ERR_NOMEM, "%s: unpickling", u->label);
        memset(grown + u->memo_cap, 0, (size_t)(cap - u->memo_cap) * sizeof *grown);
        u->memo = grown;
        u->memo_cap = cap;
    }
    u->memo[idx] = u->stack[u->sp - 1];
    if (idx >= u->memo_len) u->memo_len = (uint32_t)idx + 1;
    return MREC_OK;
}

static mrec_status memo_get(unpickler *u, uint64_t idx) {
    if (idx >= u->memo_len || !u->memo[idx])
        FAIL("%s: memo index %llu at byte %ld was never stored (memo out of range)", u->label, (unsigned long long)idx, at(u));
    return push(u, u->memo[idx]);
}

/* A module class of torch.nn or torchvision.models ("torch.nn.modules.conv",
 * "Conv2d"): a name starting with a capital, of letters, digits and '_'. */
static int module_class(const char *module, const char *name) {
    if (strncmp(module, "torch.nn.modules.", 17) && strncmp(module, "torchvision.models.", 19)) return 0;
    if (!(name[0] >= 'A' && name[0] <= 'Z')) return 0;
    for (const char *c = name; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '_')) return 0;
    return 1;
}

/* A global by its module and name: one of the few allowed, or refused by name. */
static mrec_status find_global(unpickler *u, const char *module, const char *name, long where) {
    static const struct { const char *name; mrec_dtype dtype; } storages[] = {
        {"FloatStorage", MREC_F32}, {"DoubleStorage", MREC_F64}, {"HalfStorage", MREC_F16}, {"BFloat16Storage", MREC_BF16},
        {"LongStorage", MREC_I64}, {"IntStorage", MREC_I32}, {"ShortStorage", MREC_I16}, {"CharStorage", MREC_I8},
        {"ByteStorage", MREC_U8}, {"BoolStorage", MREC_BOOL},
    };
    static const struct { const char *name; mrec_dtype dtype; } dtypes[] = {
        {"float32", MREC_F32}, {"float64", MREC_F64}, {"float16", MREC_F16}, {"bfloat16", MREC_BF16}, {"int64", MREC_I64},
        {"int32", MREC_I32}, {"int16", MREC_I16}, {"int8", MREC_I8}, {"uint8", MREC_U8}, {"bool", MREC_BOOL},
        {"uint16", MREC_U16}, {"uint32", MREC_U32}, {"uint64", MREC_U64}, {"float8_e4m3fn", MREC_F8_E4M3},
        {"float8_e5m2", MREC_F8_E5M2},
    };
    value *v = new_value(u, V_GLOBAL);
    if (!v) return push(u, NULL); /* says why */
    int found = 1;
    if (!strcmp(module, "collections") && !strcmp(name, "OrderedDict")) v->i = G_ORDERED_DICT;
    else if (!strcmp(module, "torch._utils") && !strcmp(name, "_rebuild_tensor_v2")) v->i = G_REBUILD_V2;
    else if (!strcmp(module, "torch._utils") && !strcmp(name, "_rebuild_tensor_v3")) v->i = G_REBUILD_V3;
    else if (!strcmp(module, "torch._utils") && !strcmp(name, "_rebuild_parameter")) v->i = G_REBUILD_PARAMETER;
    else if (!strcmp(module, "torch.storage") && !strcmp(name, "UntypedStorage")) v->i = G_UNTYPED_STORAGE, v->dtype = MREC_U8;
    else if ((!strcmp(module, "__builtin__") || !strcmp(module, "builtins")) && !strcmp(name, "set")) v->i = G_SET;
    else if (module_class(module, name)) {
        size_t len = strlen(module) + 1 + strlen(name);
        if (!(v->s = malloc(len + 1))) return mrec_fail(MREC_ERR_NOMEM, "%s: a global's name", u->label);
        snprintf(v->s, len + 1, "%s.%s", module, name);
        v->len = len, v->i = G_MODULE_CLASS;
    } else found = 0;
    for (size_t k = 0; !found && !strcmp(module, "torch") && k < sizeof storages / sizeof *storages; k++)
        if (!strcmp(name, storages[k].name)) found = 1, v->i = G_STORAGE, v->dtype = storages[k].dtype;
    for (size_t k = 0; !found && !strcmp(module, "torch") && k < sizeof dtypes / sizeof *dtypes; k++)
        if (!strcmp(name, dtypes[k].name)) found = 1, v->i = G_DTYPE, v->dtype = dtypes[k].dtype;
    if (!found)
        return mrec_fail(MREC_ERR_UNSUPPORTED,
                         "%s: the pickle names the global '%s.%s' at byte %ld; only collections.OrderedDict, torch's tensor "
                         "rebuilders, storage classes and dtypes, builtins.set and the classes of torch.nn and torchvision.models "
                         "(as records of their attributes) are allowed, and nothing is executed",
                         u->label, module, name, where);
    return push(u, v);
}

/* ('storage', class, key, location, numel[, view]) -> the storage, added to pt
 * or found there by key. */
static mrec_status persistent_load(unpickler *u, value *pid, long where) {
    int legacy = u->pt->legacy;
    if (pid->kind != V_TUPLE || pid->n < 5 || pid->n > 6 || pid->items[0]->kind != V_STR || strcmp(pid->items[0]->s, "storage") ||
        pid->items[1]->kind != V_GLOBAL || (pid->items[1]->i != G_STORAGE && pid->items[1]->i != G_UNTYPED_STORAGE) ||
        pid->items[2]->kind != V_STR || pid->items[3]->kind != V_STR || pid->items[4]->kind != V_INT)
        FAIL("%s: BINPERSID at byte %ld: expected ('storage', <storage class>, key, location, numel), not a %s of %d", u->label,
             where, KIND_NAME[pid->kind], pid->n);
    if (pid->n == 6 && (!legacy || pid->items[5]->kind != V_NONE))
        return mrec_fail(MREC_ERR_UNSUPPORTED, "%s: BINPERSID at byte %ld: a storage view (torch before 1.0) is not supported", u->label, where);
    const char *key = pid->items[2]->s;
    size_t klen = pid->items[2]->len;
    int ok = klen > 0 && klen < sizeof u->pt->storages[0].key;
    for (size_t k = 0; ok && k < klen; k++) ok = (key[k] >= '0' && key[k] <= '9') || (key[k] >= 'a' && key[k] <= 'z') || (key[k] >= 'A' && key[k] <= 'Z') || key[k] == '_';
    if (!ok) FAIL("%s: BINPERSID at byte %ld: storage key '%.64s' is not a plain name", u->label, where, key);
    mrec_dtype dt = pid->items[1]->dtype;
    int64_t numel = pid->items[4]->i;
    if (numel < 0 || (uint64_t)numel > UINT64_MAX / 8 / mrec_dtype_size(dt))
        FAIL("%s: storage '%s' declares %lld elements", u->label, key, (long long)numel);
    uint64_t nbytes = (uint64_t)numel * mrec_dtype_size(dt);
    mrec_pytorch *pt = u->pt;
    int idx = -1;
    for (int k = pt->n_storages - 1; k >= 0 && idx < 0; k--)
        if (!strcmp(pt->storages[k].key, key)) idx = k;
    if (idx >= 0) {
        if (pt->storages[idx].dtype != dt || pt->storages[idx].nbytes != nbytes)
            FAIL("%s: storage '%s' is declared twice, as %s x %llu bytes and as %s x %llu bytes", u->label, key,
                 mrec_dtype_name(pt->storages[idx].dtype), (unsigned long long)pt->storages[idx].nbytes, mrec_dtype_name(dt),
                 (unsigned long long)nbytes);
    } else {
        if (pt->n_storages >= (1 << 24)) FAIL("%s: more than %d storages", u->label, 1 << 24);
        if ((pt->n_storages & (pt->n_storages - 1)) == 0) { /* grow at powers of two */
            mrec_pt_storage *grown = realloc(pt->storages, (size_t)(pt->n_storages ? 2 * pt->n_storages : 1) * sizeof *grown);
            if (!grown) return mrec_fail(MREC_ERR_NOMEM, "%s: unpickling", u->label);
            pt->storages = grown;
        }
        idx = pt->n_storages++;
        mrec_pt_storage *s = &pt->storages[idx];
        memset(s, 0, sizeof *s);
        memcpy(s->key, key, klen + 1);
        s->dtype = dt;
        s->nbytes = nbytes;
    }
    value *v = new_value(u, V_STORAGE);
    if (!v) return push(u, NULL); /* says why */
    v->i = idx;
    return push(u, v);
}

static int is_int_tuple(const value *v, int max) {
    if (v->kind != V_TUPLE || v->n > max) return 0;
    for (int k = 0; k < v->n; k++)
        if (v->items[k]->kind != V_INT) return 0;
    return 1;
}

/* _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata]),
 * _rebuild_tensor_v3(..., hooks, dtype[, metadata]): the tensor's fields, checked
 * against its storage when the state dict is taken (when its key is known). */
static mrec_status rebuild_tensor(unpickler *u, int v3, value *args, long where) {
    int n = v3 ? 7 : 6;
    if (args->kind != V_TUPLE || args->n < n || args->n > n + 1 || args->items[0]->kind != V_STORAGE ||
        args->items[1]->kind != V_INT || args->items[2]->kind != V_TUPLE || args->items[3]->kind != V_TUPLE ||
        args->items[4]->kind != V_BOOL || args->items[5]->kind != V_DICT || (v3 && (args->items[6]->kind != V_GLOBAL || args->items[6]->i != G_DTYPE)))
        FAIL("%s: %s at byte %ld: expected (storage, offset, size, stride, requires_grad, hooks%s), got other arguments", u->label,
             v3 ? "_rebuild_tensor_v3" : "_rebuild_tensor_v2", where, v3 ? ", dtype" : "");
    if (args->items[5]->n) return mrec_fail(MREC_ERR_UNSUPPORTED, "%s: a tensor at byte %ld carries backward hooks", u->label, where);
    value *size = args->items[2], *stride = args->items[3];
    if (!is_int_tuple(size, MREC_ST_MAX_DIMS) || !is_int_tuple(stride, MREC_ST_MAX_DIMS) || size->n != stride->n)
        FAIL("%s: a tensor at byte %ld: size and stride must be tuples of as many whole numbers, at most %d", u->label, where, MREC_ST_MAX_DIMS);
    mrec_pytorch *pt = u->pt;
    if (pt->n_tensors == u->tensors_cap) {
        if (u->tensors_cap >= (1 << 24)) FAIL("%s: more than %d tensors", u->label, 1 << 24);
        int cap = u->tensors_cap ? 2 * u->tensors_cap : 16;
        mrec_pt_tensor *grown = realloc(pt->tensors, (size_t)cap * sizeof *grown);
        if (!grown) return mrec_fail(MREC_ERR_NOMEM, "%s: unpickling", u->label);
        pt->tensors = grown;
        u->tensors_cap = cap;
    }
    mrec_pt_tensor *t = &pt->tensors[pt->n_tensors];
    memset(t, 0, sizeof *t);
    t->storage = (int)args->items[0]->i;
    t->dtype = v3 ? args->items[6]->dtype : pt->storages[t->storage].dtype;
    t->offset = args->items[1]->i;
    t->ndim = size->n;
    for (int d = 0; d < t->ndim; d++) t->shape[d] = size->items[d]->i, t->stride[d] = stride->items[d]->i;
    value *v = new_value(u, V_TENSOR);
    if (!v) return push(u, NULL); /* says why */
    v->i = pt->n_tensors++;
    return push(u, v);
}

static mrec_status reduce(unpickler *u, long where) {
    mrec_status st = want(u, 2, "REDUCE");
    if (st) return st;
    value *args = pop(u), *fn = pop(u);
    if (fn->kind != V_GLOBAL || args->kind != V_TUPLE)
        FAIL("%s: REDUCE at byte %ld calls %s with %s; only the allowed globals are called", u->label, where, KIND_NAME[fn->kind], KIND_NAME[args->kind]);
    switch ((gkind)fn->i) {
    case G_ORDERED_DICT:
        if (args->n) FAIL("%s: REDUCE at byte %ld: OrderedDict takes no arguments here", u->label, where);
        return push(u, new_value(u, V_DICT));
    case G_SET: /* set([names]): kept as the list */
        if (args->n != 1 || args->items[0]->kind != V_LIST)
            FAIL("%s: REDUCE at byte %ld: set takes one list here", u->label, where);
        return push(u, args->items[0]);
    case G_REBUILD_V2: return rebuild_tensor(u, 0, args, where);
    case G_REBUILD_V3: return rebuild_tensor(u, 1, args, where);
    case G_REBUILD_PARAMETER: /* (tensor, requires_grad, hooks): the tensor */
        if (args->n != 3 || args->items[0]->kind != V_TENSOR || args->items[1]->kind != V_BOOL || args->items[2]->kind != V_DICT || args->items[2]->n)
            FAIL("%s: _rebuild_parameter at byte %ld: expected (tensor, requires_grad, no hooks)", u->label, where);
        return push(u, args->items[0]);
    default:
        FAIL("%s: REDUCE at byte %ld calls a %s, which is not called here", u->label, where,
             fn->i == G_DTYPE ? "dtype" : fn->i == G_MODULE_CLASS ? "module class" : "storage class");
    }
}

static mrec_status read_string(unpickler *u, size_t len, const char *op) {
    mrec_status st = need(u, len, op);
    if (st) return st;
    value *v = new_value(u, V_STR);
    if (!v) return push(u, NULL);
    if (!(v->s = malloc(len + 1))) return mrec_fail(MREC_ERR_NOMEM, "%s: unpickling", u->label);
    memcpy(v->s, u->p, len);
    v->s[len] = 0;
    v->len = len;
    u->p += len;
    return push(u, v);
}

/* Runs the pickle at u->p up to its STOP; *out is the value it built. */
static mrec_status unpickle(unpickler *u, value **out) {
    mrec_status st = MREC_OK;
    u->sp = 0;
    u->n_marks = 0;
    u->memo_len = 0;
    if (u->memo) memset(u->memo, 0, (size_t)u->memo_cap * sizeof *u->memo);
    while (!st) {
        if (u->p >= u->end) FAIL("%s: the pickle ends at byte %ld without STOP (truncated)", u->label, at(u));
        long where = at(u);
        int op = *u->p++;
        switch (op) {
        case 0x80: /* PROTO */
            if ((st = need(u, 1, "PROTO"))) break;
            if (*u->p > 5) FAIL("%s: pickle protocol %d at byte %ld (at most 5)", u->label, *u->p, where);
            u->p++;
            break;
        case 0x95: /* FRAME: a length hint, the opcodes follow inline */
            if ((st = need(u, 8, "FRAME"))) break;
            if (le(u->p, 8) > (uint64_t)(u->end - u->p - 8)) FAIL("%s: FRAME at byte %ld is longer than the pickle (truncated)", u->label, where);
            u->p += 8;
            break;
        case '.': /* STOP */
            if (u->sp != 1 || u->n_marks) FAIL("%s: STOP at byte %ld with %d values and %d MARKs on the stack (expected one value)", u->label, where, u->sp, u->n_marks);
            *out = u->stack[0];
            return MREC_OK;
        case '(':
            if (u->n_marks == PT_MAX_MARKS) FAIL("%s: more than %d open MARKs at byte %ld", u->label, PT_MAX_MARKS, where);
            u->marks[u->n_marks++] = u->sp;
            break;
        case '}': st = push(u, new_value(u, V_DICT)); break;
        case ']': st = push(u, new_value(u, V_LIST)); break;
        case ')': st = push(u, new_value(u, V_TUPLE)); break;
        case 't': case 0x85: case 0x86: case 0x87: {
            int from = 0;
            if (op == 't') {
                if ((st = pop_mark(u, "TUPLE", &from))) break;
            } else {
                if ((st = want(u, op - 0x84, opcode_name(op)))) break;
                from = u->sp - (op - 0x84);
            }
            value *v = new_value(u, V_TUPLE);
            if (!v) return push(u, NULL); /* says why */
            for (int k = from; k < u->sp; k++)
                if (!add_item(v, u->stack[k])) return mrec_fail(MREC_ERR_NOMEM, "%s: unpickling", u->label);
            u->sp = from;
            st = push(u, v);
            break;
        }
        case 's': case 'u': case 'a': case 'e': {
            int dict = op == 's' || op == 'u', from = 0;
            if (op == 's' || op == 'a') {
                if ((st = want(u, dict ? 3 : 2, opcode_name(op)))) break;
                from = u->sp - (dict ? 2 : 1);
            } else {
                if ((st = pop_mark(u, opcode_name(op), &from))) break;
                if (from <= (u->n_marks ? u->marks[u->n_marks - 1] : 0))
                    FAIL("%s: %s at byte %ld has no container below its MARK", u->label, opcode_name(op), where);
                if (dict && (u->sp - from) % 2) FAIL("%s: SETITEMS at byte %ld with an odd number of values", u->label, where);
            }
            value *c = u->stack[from - 1];
            if (c->kind != (dict ? V_DICT : V_LIST))
                FAIL("%s: %s at byte %ld on a %s (expected a %s)", u->label, opcode_name(op), where, KIND_NAME[c->kind], dict ? "dict" : "list");
            for (int k = from; k < u->sp; k++)
                if (!add_item(c, u->stack[k])) return mrec_fail(MREC_ERR_NOMEM, "%s: unpickling", u->label);
            u->sp = from;
            break;
        }
        case 'X': case 0x8c: {
            int w = op == 'X' ? 4 : 1;
            if ((st = need(u, (size_t)w, opcode_name(op)))) break;
            size_t len = (size_t)le(u->p, w);
            u->p += w;
            st = read_string(u, len, opcode_name(op));
            break;
        }
        case 'J': case 'K': case 'M': {
            int w = op == 'J' ? 4 : op == 'K' ? 1 : 2;
            if ((st = need(u, (size_t)w, opcode_name(op)))) break;
            value *v = new_value(u, V_INT);
            if (!v) return push(u, NULL); /* says why */
            v->i = op == 'J' ? (int64_t)(int32_t)(uint32_t)le(u->p, 4) : (int64_t)le(u->p, w);
            u->p += w;
            st = push(u, v);
            break;
        }
        case 0x8a: { /* LONG1: n bytes, two's complement, little-endian */
            if ((st = need(u, 1, "LONG1"))) break;
            int n = *u->p++;
            if ((st = need(u, (size_t)n, "LONG1"))) break;
            value *v = new_value(u, n <= 8 ? V_INT : V_BIGINT);
            if (!v) return push(u, NULL); /* says why */
            if (n > 0 && n <= 8) {
                uint64_t x = le(u->p, n);
                if (n < 8 && (u->p[n - 1] & 0x80)) x |= ~(uint64_t)0 << (8 * n); /* sign-extend */
                v->i = (int64_t)x;
            }
            u->p += n;
            st = push(u, v);
            break;
        }
        case 'G': {
            if ((st = need(u, 8, "BINFLOAT"))) break;
            uint64_t bits = 0;
            for (int k = 0; k < 8; k++) bits = bits << 8 | u->p[k]; /* big-endian */
            value *v = new_value(u, V_FLOAT);
            if (!v) return push(u, NULL); /* says why */
            memcpy(&v->f, &bits, 8);
            u->p += 8;
            st = push(u, v);
            break;
        }
        case 0x88: case 0x89: {
            value *v = new_value(u, V_BOOL);
            if (v) v->i = op == 0x88;
            st = push(u, v);
            break;
        }
        case 'N': st = push(u, new_value(u, V_NONE)); break;
        case 'q': case 'r': case 'h': case 'j': {
            int w = op == 'q' || op == 'h' ? 1 : 4;
            if ((st = need(u, (size_t)w, opcode_name(op)))) break;
            uint64_t idx = le(u->p, w);
            u->p += w;
            st = op == 'q' || op == 'r' ? memo_put(u, idx) : memo_get(u, idx);
            break;
        }
        case 0x94: st = memo_put(u, u->memo_len); break;
        case 'c': { /* GLOBAL "module\nname\n" */
            char parts[2][PT_MAX_GLOBAL + 1];
            for (int k = 0; k < 2 && !st; k++) {
                const uint8_t *nl = memchr(u->p, '\n', (size_t)(u->end - u->p) < PT_MAX_GLOBAL + 1 ? (size_t)(u->end - u->p) : PT_MAX_GLOBAL + 1);
                if (!nl) FAIL("%s: GLOBAL at byte %ld: no end of line within %d bytes", u->label, where, PT_MAX_GLOBAL);
                memcpy(parts[k], u->p, (size_t)(nl - u->p));
                parts[k][nl - u->p] = 0;
                for (const uint8_t *q = u->p; q < nl; q++)
                    if (*q < 0x20 || *q > 0x7e) FAIL("%s: GLOBAL at byte %ld: a name with byte 0x%02x", u->label, where, *q);
                u->p = nl + 1;
            }
            if (!st) st = find_global(u, parts[0], parts[1], where);
            break;
        }
        case 0x93: { /* STACK_GLOBAL */
            if ((st = want(u, 2, "STACK_GLOBAL"))) break;
            value *name = pop(u), *module = pop(u);
            if (name->kind != V_STR || module->kind != V_STR || strlen(name->s) != name->len || strlen(module->s) != module->len)
                FAIL("%s: STACK_GLOBAL at byte %ld needs two strings", u->label, where);
            st = find_global(u, module->s, name->s, where);
            break;
        }
        case 'Q':
            if ((st = want(u, 1, "BINPERSID"))) break;
            st = persistent_load(u, pop(u), where);
            break;
        case 'R': st = reduce(u, where); break;
        case 0x81: { /* NEWOBJ: only a module class with no arguments, as a record (nothing is run) */
            if ((st = want(u, 2, "NEWOBJ"))) break;
            value *args = pop(u), *cls = pop(u);
            if (cls->kind != V_GLOBAL || cls->i != G_MODULE_CLASS)
                return mrec_fail(MREC_ERR_UNSUPPORTED, "%s: NEWOBJ at byte %ld on %s that is not a module class of torch.nn or "
                                 "torchvision.models", u->label, where, KIND_NAME[cls->kind]);
            if (args->kind != V_TUPLE || args->n)
                return mrec_fail(MREC_ERR_UNSUPPORTED, "%s: NEWOBJ at byte %ld makes %s with arguments; a module is taken only as "
                                 "torch.save writes it, with none", u->label, where, cls->s);
            value *m = new_value(u, V_MODULE);
            if (m && !(m->s = strdup(cls->s))) return mrec_fail(MREC_ERR_NOMEM, "%s: a module's name", u->label);
            st = push(u, m);
            break;
        }
        case 'b': { /* BUILD: a module's attributes, or an OrderedDict's (state_dict()'s _metadata, dropped) */
            if ((st = want(u, 2, "BUILD"))) break;
            value *state = pop(u), *target = u->stack[u->sp - 1];
            if (target->kind == V_MODULE) {
                if (state->kind != V_DICT || target->n)
                    FAIL("%s: BUILD at byte %ld: module %s takes one dict of attributes, not %s", u->label, where, target->s, KIND_NAME[state->kind]);
                if (!add_item(target, state)) return mrec_fail(MREC_ERR_NOMEM, "%s: a module", u->label);
            } else if (target->kind != V_DICT) {
                FAIL("%s: BUILD at byte %ld on a %s (only a module's or an OrderedDict's attributes are taken)", u->label, where, KIND_NAME[target->kind]);
            }
            break;
        }
        default: {
            const char *name = opcode_name(op);
            if (name) return mrec_fail(MREC_ERR_UNSUPPORTED, "%s: the pickle's opcode %s (0x%02x) at byte %ld is not allowed in a state dict", u->label, name, op, where);
            FAIL("%s: unknown pickle opcode 0x%02x at byte %ld", u->label, op, where);
        }
        }
    }
    return st;
}

#undef FAIL

/* ---- the state dict ------------------------------------------------------ */

/* The value of `key` in a dict (the last one set, as Python keeps), or NULL. */
static value *dict_get(const value *d, const char *key, size_t len) {
    value *found = NULL;
    for (int k = 0; k + 1 < d->n; k += 2)
        if (d->items[k]->kind == V_STR && d->items[k]->len == len && !memcmp(d->items[k]->s, key, len)) found = d->items[k + 1];
    return found;
}

static int all_tensors(const value *d) {
    for (int k = 1; k < d->n; k += 2)
        if (d->items[k]->kind != V_TENSOR) return 0;
    return 1;
}

static int utf8_ok(const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!len || i + (size_t)len > n || c == 0) return 0;
        for (int k = 1; k < len; k++)
            if ((s[i + k] & 0xC0) != 0x80) return 0;
        if ((len == 2 && c < 0xC2) || (len == 3 && c == 0xE0 && s[i + 1] < 0xA0) || (len == 3 && c == 0xED && s[i + 1] >= 0xA0) ||
            (len == 4 && ((c == 0xF0 && s[i + 1] < 0x90) || c > 0xF4 || (c == 0xF4 && s[i + 1] >= 0x90))))
            return 0;
        i += (size_t)len;
    }
    return 1;
}

static int by_name(const void *a, const void *b) {
    const mrec_pt_tensor *x = *(const mrec_pt_tensor *const *)a, *y = *(const mrec_pt_tensor *const *)b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x < y ? -1 : x > y);
}

/* A state dict's (name, value) pairs: a dict's own keys, or the names a module's state_dict() gives. */
typedef struct {
    value **key;   /* V_STR each */
    value **val;
    int n, cap;
} pairs;

static int pairs_add(pairs *p, value *key, value *val) {
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 64;
        value **k = realloc(p->key, (size_t)cap * sizeof *k);
        if (k) p->key = k;
        value **v = k ? realloc(p->val, (size_t)cap * sizeof *v) : NULL;
        if (v) p->val = v;
        if (!k || !v) return 0;
        p->cap = cap;
    }
    p->key[p->n] = key, p->val[p->n++] = val;
    return 1;
}

static mrec_status name_tensors(mrec_pytorch *pt, const pairs *pr, const char *where);

#define PT_MAX_MODULE_DEPTH 64
#define PT_MAX_NAME 1024

/* Module m's entries as torch's state_dict() lists them: its parameters, its
 * persistent buffers (None ones left out), then each child's under
 * "child." (None children left out). The names are new STR values. */
static mrec_status module_pairs(unpickler *u, pairs *out, const value *m, char *prefix, size_t plen, int depth) {
    const char *label = u->label;
    if (depth > PT_MAX_MODULE_DEPTH)
        return mrec_fail(MREC_ERR_FORMAT, "%s: modules nested more than %d deep (a cycle?) at '%.80s...'", label, PT_MAX_MODULE_DEPTH, prefix);
    if (!m->n || m->items[0]->kind != V_DICT)
        return mrec_fail(MREC_ERR_FORMAT, "%s: module %s at '%s' has no attributes", label, m->s, plen ? prefix : "the top");
    const value *attrs = m->items[0];
    static const char *const parts[3] = {"_parameters", "_buffers", "_modules"};
    const value *skip = dict_get(attrs, "_non_persistent_buffers_set", 27);
    for (int p = 0; p < 3; p++) {
        const value *d = dict_get(attrs, parts[p], strlen(parts[p]));
        if (!d || d->kind != V_DICT)
            return mrec_fail(MREC_ERR_FORMAT, "%s: module %s at '%s' has no %s dict", label, m->s, plen ? prefix : "the top", parts[p]);
        for (int k = 0; k + 1 < d->n; k += 2) {
            value *name = d->items[k], *v = d->items[k + 1];
            if (name->kind != V_STR || strlen(name->s) != name->len)
                return mrec_fail(MREC_ERR_FORMAT, "%s: module %s at '%s': a %s key is not a string", label, m->s, plen ? prefix : "the top", parts[p]);
            if (v->kind == V_NONE) continue;
            int skipped = 0;
            for (int q = 0; p == 1 && skip && skip->kind == V_LIST && q < skip->n; q++)
                skipped |= skip->items[q]->kind == V_STR && !strcmp(skip->items[q]->s, name->s);
            if (skipped) continue;
            if (plen + name->len + 2 > PT_MAX_NAME)
                return mrec_fail(MREC_ERR_FORMAT, "%s: a module path longer than %d bytes at '%.100s'", label, PT_MAX_NAME, prefix);
            memcpy(prefix + plen, name->s, name->len + 1);
            size_t len = plen + name->len;
            mrec_status st = MREC_OK;
            if (p == 2) {
                if (v->kind != V_MODULE)
                    return mrec_fail(MREC_ERR_FORMAT, "%s: child '%s' is %s, not a module", label, prefix, KIND_NAME[v->kind]);
                prefix[len] = '.', prefix[len + 1] = 0;
                st = module_pairs(u, out, v, prefix, len + 1, depth + 1);
            } else {
                value *full = new_value(u, V_STR);
                if (!full || !(full->s = strdup(prefix))) return mrec_fail(MREC_ERR_NOMEM, "%s: names", label);
                full->len = len;
                if (!pairs_add(out, full, v)) return mrec_fail(MREC_ERR_NOMEM, "%s: names", label);
            }
            prefix[plen] = 0;
            if (st) return st;
        }
    }
    return MREC_OK;
}

/* Picks the state dict out of the pickle's value, names its tensors, checks
 * each against its storage and keeps only those tensors and storages. */
static mrec_status take_state_dict(mrec_pytorch *pt, unpickler *u, value *root, const char *key) {
    const char *label = pt->path;
    value *d = root;
    pt->selected[0] = 0;
    pairs pr = {0};
    if (root->kind == V_MODULE) { /* torch.save(model): its state_dict() */
        char prefix[PT_MAX_NAME] = "";
        if (key && *key) return mrec_fail(MREC_ERR_ARG, "%s: holds a whole module (%s); --key applies to dicts", label, root->s);
        mrec_status st = module_pairs(u, &pr, root, prefix, 0, 0);
        if (!st) snprintf(pt->selected, sizeof pt->selected, "%s", root->s);
        if (!st) st = name_tensors(pt, &pr, pt->selected);
        free(pr.key), free(pr.val);
        return st;
    }
    if (root->kind != V_DICT)
        return mrec_fail(MREC_ERR_FORMAT, "%s: the checkpoint holds %s, not a dict of tensors", label, KIND_NAME[root->kind]);
    if (key && *key) {
        for (const char *p = key; d;) {
            const char *slash = strchr(p, '/');
            size_t len = slash ? (size_t)(slash - p) : strlen(p);
            value *next = d->kind == V_DICT ? dict_get(d, p, len) : NULL;
            if (!next) return mrec_fail(MREC_ERR_NOT_FOUND, "%s: no key '%.*s' (of --key %s) in the checkpoint", label, (int)len, p, key);
            d = next;
            if (!slash) break;
            p = slash + 1;
        }
        if (d->kind != V_DICT) return mrec_fail(MREC_ERR_FORMAT, "%s: key '%s' holds %s, not a dict of tensors", label, key, KIND_NAME[d->kind]);
        snprintf(pt->selected, sizeof pt->selected, "%s", key);
    } else if (!all_tensors(root)) {
        static const char *const keys[] = {"state_dict", "model_state_dict", "model", "module"};
        d = NULL;
        for (size_t k = 0; k < sizeof keys / sizeof *keys && !d; k++) {
            value *v = dict_get(root, keys[k], strlen(keys[k]));
            if (v && v->kind == V_DICT) d = v, snprintf(pt->selected, sizeof pt->selected, "%s", keys[k]);
        }
        if (!d) {
            char listed[512] = "";
            size_t at = 0;
            for (int k = 0; k + 1 < root->n && at + 80 < sizeof listed; k += 2)
                at += (size_t)snprintf(listed + at, sizeof listed - at, "%s'%.60s' (%s)", k ? ", " : "",
                                       root->items[k]->kind == V_STR ? root->items[k]->s : "?", KIND_NAME[root->items[k + 1]->kind]);
            return mrec_fail(MREC_ERR_FORMAT,
                             "%s: no state dict: the top-level values are not all tensors and none of state_dict, model_state_dict, "
                             "model, module holds a dict (keys: %s); --key names the one to take",
                             label, at ? listed : "none");
        }
    }
    mrec_status st = MREC_OK;
    for (int k = 0; k + 1 < d->n && !st; k += 2)
        if (!pairs_add(&pr, d->items[k], d->items[k + 1])) st = mrec_fail(MREC_ERR_NOMEM, "%s: names", label);
    if (!st) st = name_tensors(pt, &pr, pt->selected[0] ? pt->selected : "the top level");
    free(pr.key), free(pr.val);
    return st;
}

/* Names the tensors of pr, checks each against its storage, and keeps only
 * those (pt->tensors replaced). where: the state dict's place, for messages. */
static mrec_status name_tensors(mrec_pytorch *pt, const pairs *pr, const char *where) {
    const char *label = pt->path;
    int n = pr->n > 0 ? pr->n : 0;
    mrec_pt_tensor *kept = calloc((size_t)(n ? n : 1), sizeof *kept);
    if (!kept) return mrec_fail(MREC_ERR_NOMEM, "%s: %d tensors", label, n);
    mrec_status st = MREC_OK;
    for (int k = 0; k < n && !st; k++) {
        value *name = pr->key[k], *v = pr->val[k];
        if (name->kind != V_STR) {
            st = mrec_fail(MREC_ERR_FORMAT, "%s: a key of the state dict (%s) is %s, not a string", label, where, KIND_NAME[name->kind]);
            break;
        }
        if (v->kind != V_TENSOR) {
            st = mrec_fail(MREC_ERR_FORMAT, "%s: key '%.200s' of the state dict (%s) holds %s, not a tensor", label, name->s, where, KIND_NAME[v->kind]);
            break;
        }
        if (strlen(name->s) != name->len || !name->len || !utf8_ok((const unsigned char *)name->s, name->len) || !strcmp(name->s, "__metadata__")) {
            st = mrec_fail(MREC_ERR_FORMAT, "%s: key '%.200s' of the state dict is empty, holds a NUL or is not UTF-8 or is __metadata__", label, name->s);
            break;
        }
        kept[k] = pt->tensors[v->i];
        if (!(kept[k].name = strdup(name->s))) st = mrec_fail(MREC_ERR_NOMEM, "%s: names", label);
    }
    /* A key set twice keeps its first place and its last value, as a Python dict does. */
    mrec_pt_tensor **order = st ? NULL : malloc((size_t)(n ? n : 1) * sizeof *order);
    if (!st && !order) st = mrec_fail(MREC_ERR_NOMEM, "%s: names", label);
    int out = 0;
    if (!st) {
        for (int k = 0; k < n; k++) order[k] = &kept[k];
        qsort(order, (size_t)n, sizeof *order, by_name);
        for (int k = 0; k + 1 < n; k++)
            if (!strcmp(order[k]->name, order[k + 1]->name)) {
                mrec_pt_tensor *later = order[k + 1] > order[k] ? order[k + 1] : order[k];
                mrec_pt_tensor *first = later == order[k + 1] ? order[k] : order[k + 1];
                char *keep_name = first->name;
                *first = *later;
                first->name = keep_name;
                free(later->name);
                later->name = NULL;
                order[k + 1] = first; /* a third copy compares against the survivor */
            }
        for (int k = 0; k < n; k++)
            if (kept[k].name) kept[out++] = kept[k];
        for (int k = out; k < n; k++) kept[k].name = NULL;
    }
    free(order);
    for (int k = 0; k < out && !st; k++) {
        mrec_pt_tensor *t = &kept[k];
        const mrec_pt_storage *s = &pt->storages[t->storage];
        uint64_t es = mrec_dtype_size(t->dtype);
        if (s->dtype != MREC_U8 && s->dtype != t->dtype) {
            st = mrec_fail(MREC_ERR_FORMAT, "%s: tensor '%s' is %s on a %s storage", label, t->name, mrec_dtype_name(t->dtype), mrec_dtype_name(s->dtype));
            break;
        }
        if (t->offset < 0) {
            st = mrec_fail(MREC_ERR_SHAPE, "%s: tensor '%s' has a negative storage offset %lld", label, t->name, (long long)t->offset);
            break;
        }
        /* The last element: offset + sum (size - 1) x stride, every step checked. */
        uint64_t numel = 1, last = (uint64_t)t->offset, limit = ((uint64_t)1 << 62) / es;
        for (int d2 = 0; d2 < t->ndim && !st; d2++) {
            int64_t sz = t->shape[d2], sd = t->stride[d2];
            if (sz < 0 || sd < 0)
                st = mrec_fail(MREC_ERR_SHAPE, "%s: tensor '%s' dimension %d has size %lld, stride %lld", label, t->name, d2, (long long)sz, (long long)sd);
            else if (sz && numel > limit / (uint64_t)sz)
                st = mrec_fail(MREC_ERR_SHAPE, "%s: tensor '%s': its element count overflows", label, t->name);
            else
                numel *= (uint64_t)sz;
        }
        for (int d2 = 0; d2 < t->ndim && !st && numel; d2++) {
            uint64_t step = (uint64_t)(t->shape[d2] - 1);
            if (t->stride[d2] && step > (limit - last) / (uint64_t)t->stride[d2])
                st = mrec_fail(MREC_ERR_SHAPE, "%s: tensor '%s': its strides reach past any storage", label, t->name);
            else
                last += step * (uint64_t)t->stride[d2];
        }
        if (!st && numel && (last + 1 > limit || (last + 1) * es > s->nbytes))
            st = mrec_fail(MREC_ERR_SHAPE,
                           "%s: tensor '%s' (offset %lld) reaches byte %llu of storage '%s', which holds %llu bytes", label, t->name,
                           (long long)t->offset, (unsigned long long)((last + 1) * es), s->key, (unsigned long long)s->nbytes);
        if (!st && !numel && (uint64_t)t->offset * es > s->nbytes)
            st = mrec_fail(MREC_ERR_SHAPE, "%s: tensor '%s': storage offset %lld beyond storage '%s' (%llu bytes)", label, t->name,
                           (long long)t->offset, s->key, (unsigned long long)s->nbytes);
    }
    for (int k = 0; k < pt->n_tensors; k++) free(pt->tensors[k].name);
    free(pt->tensors);
    pt->tensors = kept;
    pt->n_tensors = out;
    if (st) {
        for (int k = 0; k < n; k++) free(kept[k].name), kept[k].name = NULL;
        pt->n_tensors = 0;
    }
    return st;
}

/* ---- containers ------------------------------------------------------------ */

static int storage_used(const mrec_pytorch *pt, int s) {
    for (int k = 0; k < pt->n_tensors; k++)
        if (pt->tensors[k].storage == s) return 1;
    return 0;
}

/* One zip entry, whole: its declared size checked (against `expect` when not
 * UINT64_MAX, against what its compressed bytes, at most the archive's
 * `file_size`, can hold, and `cap`) before anything is allocated. */
static mrec_status zip_read_entry(zip_t *za, const char *label, const char *name, uint64_t expect, uint64_t cap, uint64_t file_size,
                                  uint8_t **out, uint64_t *size) {
    *out = NULL;
    zip_stat_t zs;
    zip_int64_t idx = zip_name_locate(za, name, 0);
    if (idx < 0 || zip_stat_index(za, (zip_uint64_t)idx, 0, &zs) != 0)
        return mrec_fail(MREC_ERR_FORMAT, "%s: the archive has no entry '%s'", label, name);
    if (!(zs.valid & ZIP_STAT_SIZE) || !(zs.valid & ZIP_STAT_COMP_SIZE) || !(zs.valid & ZIP_STAT_COMP_METHOD))
        return mrec_fail(MREC_ERR_FORMAT, "%s: entry '%s' has no sizes", label, name);
    if (expect != UINT64_MAX && zs.size != expect)
        return mrec_fail(MREC_ERR_FORMAT, "%s: entry '%s' holds %llu bytes where the pickle declares %llu", label, name,
                         (unsigned long long)zs.size, (unsigned long long)expect);
    if (zs.size > cap) return mrec_fail(MREC_ERR_FORMAT, "%s: entry '%s' declares %llu bytes (at most %llu)", label, name, (unsigned long long)zs.size, (unsigned long long)cap);
    uint64_t comp = zs.comp_size < file_size ? zs.comp_size : file_size;
    uint64_t most = zs.comp_method == ZIP_CM_STORE ? comp : comp * PT_DEFLATE_RATIO + 64;
    if (zs.size > most)
        return mrec_fail(MREC_ERR_FORMAT, "%s: entry '%s' declares %llu bytes from %llu compressed ones (a zip bomb?)", label, name,
                         (unsigned long long)zs.size, (unsigned long long)zs.comp_size);
    uint8_t *buf = malloc(zs.size ? (size_t)zs.size : 1);
    if (!buf) return mrec_fail(MREC_ERR_NOMEM, "%s: entry '%s' (%llu bytes)", label, name, (unsigned long long)zs.size);
    zip_file_t *zf = zip_fopen_index(za, (zip_uint64_t)idx, 0);
    if (!zf) {
        free(buf);
        return mrec_fail(MREC_ERR_FORMAT, "%s: entry '%s' cannot be opened (%s)", label, name, zip_strerror(za));
    }
    zip_int64_t got = zs.size ? zip_fread(zf, buf, zs.size) : 0;
    char extra;
    int more = got == (zip_int64_t)zs.size ? (int)zip_fread(zf, &extra, 1) : 0; /* reads to the end: the CRC is checked there */
    mrec_status st = MREC_OK;
    if (got != (zip_int64_t)zs.size || more != 0)
        st = mrec_fail(MREC_ERR_FORMAT, "%s: entry '%s': %s", label, name, got < 0 || more < 0 ? zip_file_strerror(zf) : "its size is not what the archive declares");
    zip_fclose(zf);
    if (st) {
        free(buf);
        return st;
    }
    *out = buf;
    *size = zs.size;
    return MREC_OK;
}

static mrec_status parse_zip(mrec_pytorch *pt, const void *buf, size_t size, const char *key, unpickler *u) {
    const char *label = pt->path;
    zip_error_t ze;
    zip_error_init(&ze);
    zip_source_t *src = zip_source_buffer_create(buf, size, 0, &ze);
    zip_t *za = src ? zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &ze) : NULL;
    if (!za) {
        mrec_status st = mrec_fail(MREC_ERR_FORMAT, "%s: not a readable zip archive (%s)", label, zip_error_strerror(&ze));
        if (src) zip_source_free(src);
        zip_error_fini(&ze);
        return st;
    }
    zip_error_fini(&ze);
    mrec_status st = MREC_OK;
    /* The archive folder: the one holding data.pkl, whatever its name. */
    zip_int64_t n = zip_get_num_entries(za, 0);
    char prefix[512] = "";
    int found = 0;
    if (n < 0 || n > PT_MAX_ENTRIES) st = mrec_fail(MREC_ERR_FORMAT, "%s: %lld zip entries (at most %d)", label, (long long)n, PT_MAX_ENTRIES);
    for (zip_int64_t k = 0; k < n && !st; k++) {
        const char *name = zip_get_name(za, (zip_uint64_t)k, ZIP_FL_ENC_RAW);
        const char *slash = name ? strchr(name, '/') : NULL;
        if (!slash || strcmp(slash, "/data.pkl")) continue;
        if (found++) st = mrec_fail(MREC_ERR_FORMAT, "%s: two data.pkl entries ('%s/' and '%s')", label, prefix, name);
        else if ((size_t)(slash - name) >= sizeof prefix - 1) st = mrec_fail(MREC_ERR_FORMAT, "%s: archive folder name too long", label);
        else memcpy(prefix, name, (size_t)(slash - name)), prefix[slash - name] = 0;
    }
    if (!st && !found) st = mrec_fail(MREC_ERR_FORMAT, "%s: a zip without <folder>/data.pkl: not a torch.save checkpoint", label);
    char name[1024];
    uint8_t *bytes = NULL;
    uint64_t len = 0;
    if (!st) { /* byteorder: absent in files of torch before 2.1, which were little-endian */
        snprintf(name, sizeof name, "%s/byteorder", prefix);
        if (zip_name_locate(za, name, 0) >= 0 && !(st = zip_read_entry(za, label, name, UINT64_MAX, 16, size, &bytes, &len))) {
            if (len == 3 && !memcmp(bytes, "big", 3)) pt->big_endian = 1;
            else if (!(len == 6 && !memcmp(bytes, "little", 6)))
                st = mrec_fail(MREC_ERR_FORMAT, "%s: byteorder says '%.*s' (expected little or big)", label, (int)len, (const char *)bytes);
            free(bytes);
            bytes = NULL;
        }
    }
    value *root = NULL;
    if (!st) {
        snprintf(name, sizeof name, "%s/data.pkl", prefix);
        st = zip_read_entry(za, label, name, UINT64_MAX, PT_MAX_PICKLE, size, &bytes, &len);
    }
    if (!st) {
        u->p = u->start = bytes;
        u->end = bytes + len;
        st = unpickle(u, &root);
        if (!st && u->p != u->end) st = mrec_fail(MREC_ERR_FORMAT, "%s: %ld bytes after the pickle's STOP", label, (long)(u->end - u->p));
    }
    if (!st) st = take_state_dict(pt, u, root, key);
    free(bytes);
    for (int k = 0; k < pt->n_storages && !st; k++) {
        mrec_pt_storage *s = &pt->storages[k];
        if (!storage_used(pt, k)) continue;
        snprintf(name, sizeof name, "%s/data/%s", prefix, s->key);
        uint64_t got;
        st = zip_read_entry(za, label, name, s->nbytes, UINT64_MAX, size, &s->owned, &got);
        s->data = s->owned;
    }
    zip_discard(za);
    return st;
}

/* The magic-number pickle that opens a legacy file: PROTO 2, LONG1 of 10 bytes, STOP. */
static const uint8_t LEGACY_MAGIC[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e};

static mrec_status parse_legacy(mrec_pytorch *pt, const uint8_t *buf, size_t size, const char *key, unpickler *u) {
    const char *label = pt->path;
    u->start = buf;
    u->p = buf + sizeof LEGACY_MAGIC;
    u->end = buf + size;
    value *v = NULL;
    mrec_status st = unpickle(u, &v); /* protocol version */
    if (!st && (v->kind != V_INT || v->i != 1001))
        st = mrec_fail(MREC_ERR_UNSUPPORTED, "%s: legacy torch format, protocol %lld (only 1001 is known)", label, v->kind == V_INT ? (long long)v->i : -1LL);
    if (!st) st = unpickle(u, &v); /* system info */
    if (!st && v->kind == V_DICT) {
        value *little = dict_get(v, "little_endian", 13);
        if (little && (little->kind != V_BOOL || !little->i))
            st = mrec_fail(MREC_ERR_UNSUPPORTED, "%s: a legacy checkpoint saved on a big-endian machine is not supported", label);
    } else if (!st) {
        st = mrec_fail(MREC_ERR_FORMAT, "%s: legacy torch format: its system info is %s, not a dict", label, KIND_NAME[v->kind]);
    }
    value *root = NULL, *keys = NULL;
    if (!st) st = unpickle(u, &root);
    if (!st) st = unpickle(u, &keys);
    if (!st && keys->kind != V_LIST) st = mrec_fail(MREC_ERR_FORMAT, "%s: legacy torch format: the storage keys are %s, not a list", label, KIND_NAME[keys->kind]);
    if (!st) st = take_state_dict(pt, u, root, key);
    /* Then each storage, in the list's order: an int64 element count and its bytes. */
    const uint8_t *p = u->p, *end = buf + size;
    for (int k = 0; k < (keys ? keys->n : 0) && !st; k++) {
        value *kv = keys->items[k];
        int idx = -1;
        for (int s = 0; kv->kind == V_STR && s < pt->n_storages && idx < 0; s++)
            if (!strcmp(pt->storages[s].key, kv->s)) idx = s;
        if (idx < 0) {
            st = mrec_fail(MREC_ERR_FORMAT, "%s: storage key %d of the list is not one the pickle declared", label, k);
            break;
        }
        mrec_pt_storage *s = &pt->storages[idx];
        if ((size_t)(end - p) < 8) {
            st = mrec_fail(MREC_ERR_FORMAT, "%s: the file ends before storage '%s' (truncated)", label, s->key);
            break;
        }
        uint64_t numel = le(p, 8), es = mrec_dtype_size(s->dtype);
        p += 8;
        if (numel * es != s->nbytes || numel > UINT64_MAX / es) {
            st = mrec_fail(MREC_ERR_FORMAT, "%s: storage '%s' holds %llu elements where the pickle declares %llu", label, s->key,
                           (unsigned long long)numel, (unsigned long long)(s->nbytes / es));
            break;
        }
        if ((uint64_t)(end - p) < s->nbytes) {
            st = mrec_fail(MREC_ERR_FORMAT, "%s: storage '%s' needs %llu bytes, the file has %llu left (truncated)", label, s->key,
                           (unsigned long long)s->nbytes, (unsigned long long)(end - p));
            break;
        }
        if (s->data) {
            st = mrec_fail(MREC_ERR_FORMAT, "%s: storage '%s' is listed twice", label, s->key);
            break;
        }
        s->data = p;
        p += s->nbytes;
    }
    for (int k = 0; k < pt->n_storages && !st; k++)
        if (!pt->storages[k].data && storage_used(pt, k))
            st = mrec_fail(MREC_ERR_FORMAT, "%s: storage '%s' of a tensor is not in the file", label, pt->storages[k].key);
    return st;
}

mrec_status mrec_pytorch_parse(mrec_pytorch *pt, const void *buf, size_t size, const char *label, const char *key) {
    memset(pt, 0, sizeof *pt);
    if (!(pt->path = strdup(label))) return mrec_fail(MREC_ERR_NOMEM, "%s", label);
    const uint8_t *b = buf;
    unpickler u = {.label = pt->path, .pt = pt};
    mrec_status st;
    if (size >= 4 && b[0] == 'P' && b[1] == 'K') {
        st = parse_zip(pt, buf, size, key, &u);
    } else if (size >= sizeof LEGACY_MAGIC && !memcmp(b, LEGACY_MAGIC, sizeof LEGACY_MAGIC)) {
        pt->legacy = 1;
        st = parse_legacy(pt, b, size, key, &u);
    } else if (size >= 262 && !memcmp(b + 257, "ustar", 5)) {
        st = mrec_fail(MREC_ERR_UNSUPPORTED, "%s: a tar checkpoint (torch before 0.4) is not supported; load and re-save it with a newer torch", label);
    } else {
        st = mrec_fail(MREC_ERR_FORMAT, "%s: not a PyTorch checkpoint (neither a zip archive nor the legacy torch.save format)", label);
    }
    free_values(&u);
    if (st) mrec_pytorch_close(pt);
    return st;
}

mrec_status mrec_pytorch_open(mrec_pytorch *pt, const char *path, const char *key) {
    void *map;
    size_t size;
    memset(pt, 0, sizeof *pt);
    mrec_status st = mrec_map_file(path, &map, &size);
    if (st) return st;
    st = mrec_pytorch_parse(pt, map, size, path, key);
    if (st) {
        mrec_unmap_file(map, size);
        return st;
    }
    pt->map = map;
    pt->map_size = size;
    return MREC_OK;
}

void mrec_pytorch_close(mrec_pytorch *pt) {
    for (int k = 0; k < pt->n_tensors; k++) free(pt->tensors[k].name);
    for (int k = 0; k < pt->n_storages; k++) free(pt->storages[k].owned);
    free(pt->tensors);
    free(pt->storages);
    free(pt->path);
    if (pt->map) mrec_unmap_file(pt->map, pt->map_size);
    memset(pt, 0, sizeof *pt);
}

uint64_t mrec_pt_tensor_bytes(const mrec_pt_tensor *t) {
    uint64_t n = mrec_dtype_size(t->dtype);
    for (int d = 0; d < t->ndim; d++) n *= (uint64_t)t->shape[d];
    return n;
}

static int is_contiguous(const mrec_pt_tensor *t) {
    int64_t want = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (t->shape[d] != 1 && t->stride[d] != want) return 0;
        want *= t->shape[d];
    }
    return 1;
}

void mrec_pytorch_copy(const mrec_pytorch *pt, int i, void *out) {
    const mrec_pt_tensor *t = &pt->tensors[i];
    size_t es = mrec_dtype_size(t->dtype);
    uint64_t bytes = mrec_pt_tensor_bytes(t);
    if (!bytes) return;
    const uint8_t *base = pt->storages[t->storage].data + (uint64_t)t->offset * es;
    uint8_t *o = out;
    if (is_contiguous(t)) {
        memcpy(o, base, (size_t)bytes);
    } else { /* walk the indices, last dimension fastest */
        int64_t idx[MREC_ST_MAX_DIMS] = {0};
        for (uint64_t k = 0; k < bytes / es; k++) {
            int64_t off = 0;
            for (int d = 0; d < t->ndim; d++) off += idx[d] * t->stride[d];
            memcpy(o + k * es, base + (uint64_t)off * es, es);
            for (int d = t->ndim - 1; d >= 0 && ++idx[d] == t->shape[d]; d--) idx[d] = 0;
        }
    }
    if (pt->big_endian && es > 1)
        for (uint64_t k = 0; k < bytes; k += es)
            for (size_t a = 0, b = es - 1; a < b; a++, b--) {
                uint8_t x = o[k + a];
                o[k + a] = o[k + b];
                o[k + b] = x;
            }
}

mrec_status mrec_pytorch_keep_prefix(mrec_pytorch *pt, const char *prefix) {
    size_t len = strlen(prefix);
    int out = 0;
    for (int k = 0; k < pt->n_tensors; k++) {
        mrec_pt_tensor *t = &pt->tensors[k];
        if (strncmp(t->name, prefix, len) || !t->name[len]) {
            free(t->name);
            continue;
        }
        memmove(t->name, t->name + len, strlen(t->name + len) + 1);
        pt->tensors[out++] = *t;
    }
    int before = pt->n_tensors;
    pt->n_tensors = out;
    if (!out)
        return mrec_fail(MREC_ERR_NOT_FOUND, "%s: none of its %d tensors has a name that starts with '%s' (--prefix)", pt->path, before, prefix);
    return MREC_OK;
}

mrec_status mrec_pytorch_to_safetensors(const char *in, const char *out, const char *key, const char *prefix, int *n_tensors,
                                        int64_t *params, char *selected, size_t selected_cap) {
    mrec_pytorch pt;
    mrec_status st = mrec_pytorch_open(&pt, in, key);
    if (st) return st;
    if (prefix && *prefix && (st = mrec_pytorch_keep_prefix(&pt, prefix))) {
        mrec_pytorch_close(&pt);
        return st;
    }
    int n = pt.n_tensors > 0 ? pt.n_tensors : 0;
    mrec_st_tensor_in *ts = calloc((size_t)(n ? n : 1), sizeof *ts);
    void **copies = calloc((size_t)(n ? n : 1), sizeof *copies);
    if (!ts || !copies) st = mrec_fail(MREC_ERR_NOMEM, "%s: %d tensors", in, n);
    int64_t count = 0;
    static const uint8_t none[1];
    for (int k = 0; k < n && !st; k++) {
        const mrec_pt_tensor *t = &pt.tensors[k];
        uint64_t bytes = mrec_pt_tensor_bytes(t);
        ts[k] = (mrec_st_tensor_in){t->name, t->dtype, t->ndim, t->shape, none};
        count += (int64_t)(bytes / mrec_dtype_size(t->dtype));
        if (!bytes) continue;
        /* A contiguous little-endian tensor is written from its storage; the rest from a copy. */
        if (is_contiguous(t) && !pt.big_endian) {
            ts[k].data = pt.storages[t->storage].data + (uint64_t)t->offset * mrec_dtype_size(t->dtype);
        } else if (!(copies[k] = malloc((size_t)bytes))) {
            st = mrec_fail(MREC_ERR_NOMEM, "%s: tensor '%s' (%llu bytes)", in, t->name, (unsigned long long)bytes);
        } else {
            mrec_pytorch_copy(&pt, k, copies[k]);
            ts[k].data = copies[k];
        }
    }
    const char *mk[] = {"format"}, *mv[] = {"pt"};
    if (!st) st = mrec_safetensors_write(out, ts, n, mk, mv, 1);
    if (!st) {
        if (n_tensors) *n_tensors = n;
        if (params) *params = count;
        if (selected) snprintf(selected, selected_cap, "%s", pt.selected);
    }
    for (int k = 0; copies && k < n; k++) free(copies[k]);
    free(copies);
    free(ts);
    mrec_pytorch_close(&pt);
    return st;
}

static int entry_by_name(const void *a, const void *b) {
    return strcmp(((const mrec_st_entry *)a)->name, ((const mrec_st_entry *)b)->name);
}

mrec_status mrec_safetensors_from_pytorch(mrec_safetensors *st, const char *path) {
    memset(st, 0, sizeof *st);
    mrec_pytorch pt;
    mrec_status s = mrec_pytorch_open(&pt, path, NULL);
    if (s) return s;
    int n = pt.n_tensors > 0 ? pt.n_tensors : 0;
    uint64_t total = 0;
    for (int k = 0; k < n; k++) total += (mrec_pt_tensor_bytes(&pt.tensors[k]) + 63) / 64 * 64; /* each tensor 64-byte aligned */
    st->path = strdup(path);
    st->tensors = calloc((size_t)(n ? n : 1), sizeof *st->tensors);
    st->map = aligned_alloc(64, (size_t)(total ? total : 64));
    if (!st->path || !st->tensors || !st->map) {
        free(st->path), free(st->tensors), free(st->map);
        memset(st, 0, sizeof *st);
        mrec_pytorch_close(&pt);
        return mrec_fail(MREC_ERR_NOMEM, "%s: %llu bytes of tensors", path, (unsigned long long)total);
    }
    st->owned = 1, st->map_size = (size_t)total, st->data = st->map, st->data_size = total;
    uint64_t at = 0;
    for (int k = 0; k < n && !s; k++) {
        const mrec_pt_tensor *t = &pt.tensors[k];
        mrec_st_entry *e = &st->tensors[k];
        uint64_t bytes = mrec_pt_tensor_bytes(t);
        e->dtype = t->dtype, e->ndim = t->ndim, e->begin = at, e->end = at + bytes, e->data = (uint8_t *)st->map + at;
        memcpy(e->shape, t->shape, sizeof e->shape);
        mrec_pytorch_copy(&pt, k, (uint8_t *)st->map + at);
        if (!(e->name = strdup(t->name))) s = mrec_fail(MREC_ERR_NOMEM, "%s: names", path);
        st->n_tensors = k + 1;
        at += (bytes + 63) / 64 * 64;
    }
    mrec_pytorch_close(&pt);
    if (s) {
        mrec_safetensors_close(st);
        return s;
    }
    qsort(st->tensors, (size_t)n, sizeof *st->tensors, entry_by_name);
    return MREC_OK;
}

mrec_status mrec_safetensors_open_any(mrec_safetensors *st, const char *path) {
    size_t len = strlen(path);
    int pytorch = (len > 3 && !strcmp(path + len - 3, ".pt")) || (len > 4 && !strcmp(path + len - 4, ".pth")) ||
                  (len > 4 && !strcmp(path + len - 4, ".bin"));
    return pytorch ? mrec_safetensors_from_pytorch(st, path) : mrec_safetensors_open(st, path);
}
