/* mrec_pytorch.h: PyTorch checkpoints (torch.save of a state dict) read
 * without Python, to be written as safetensors (mrec convert).
 *
 * Two container formats:
 *  - zip (torch.save since 1.6): "<archive>/data.pkl" (the pickle),
 *    "<archive>/data/<key>" (one entry per storage), "<archive>/byteorder"
 *    ("little" or "big"; absent means little), "<archive>/version"; the
 *    folder name varies. Read through libzip, from memory.
 *  - legacy (torch.save before 1.6, or _use_new_zipfile_serialization=False):
 *    five pickles in a row (magic number, protocol 1001, system info, the
 *    object, the sorted storage keys), then each storage as an int64 element
 *    count and its little-endian bytes.
 *
 * The pickle is read by a restricted unpickler that builds plain values and
 * executes nothing. It knows the opcodes torch writes at protocol 2 (and the
 * protocol 4 framing): PROTO FRAME STOP MARK EMPTY_DICT EMPTY_LIST
 * EMPTY_TUPLE TUPLE TUPLE1-3 SETITEM(S) APPEND(S) BINUNICODE
 * SHORT_BINUNICODE BININT BININT1 BININT2 LONG1 BINFLOAT NEWTRUE NEWFALSE
 * NONE BINPUT LONG_BINPUT MEMOIZE BINGET LONG_BINGET GLOBAL STACK_GLOBAL
 * BINPERSID REDUCE NEWOBJ BUILD, and these globals: collections.OrderedDict,
 * torch._utils._rebuild_tensor_v2 / _rebuild_tensor_v3 /
 * _rebuild_parameter, the torch.<Type>Storage classes of the element types
 * below, torch.storage.UntypedStorage, the torch.<dtype> names
 * _rebuild_tensor_v3 takes, builtins.set, and the classes of torch.nn.modules.*
 * and torchvision.models.* (a whole module saved by torch.save(model), as
 * Ducho's MMFashion.pt). REDUCE calls only the first five and set (OrderedDict
 * with no arguments, set with one list); NEWOBJ takes only a module class with
 * no arguments and makes an inert record of it: no constructor, no
 * __setstate__, nothing of the class is run; BUILD is taken only on such a
 * record (its attribute dict) or on an OrderedDict (its _metadata, dropped).
 * Any other opcode or global is refused by name with its byte offset.
 *
 * Element types: F32 F64 F16 BF16 I64 I32 I16 I8 U8 BOOL, and through
 * _rebuild_tensor_v3 U16 U32 U64 F8_E4M3 F8_E5M2; others (complex,
 * quantized) are refused by name.
 *
 * The state dict: a module's state_dict() when the file holds a module (its
 * _parameters, then its _buffers but those in _non_persistent_buffers_set,
 * then each child of _modules under "child.", None entries left out, as
 * torch.nn.Module.state_dict names them); the top-level dict when all its values are tensors; else
 * the dict under `key` (a '/'-separated path of dict keys) when given; else
 * the first of "state_dict", "model_state_dict", "model", "module" that holds
 * a dict. Every value of the chosen dict must be a tensor (else refused,
 * naming the key); everything else in the file (an optimizer's state, meta
 * data) is parsed, never loaded.
 *
 * Bounds: every length, memo index, stack and mark depth, dimension count,
 * size, stride, storage offset and storage length is checked before use, the
 * size arithmetic for overflow; a tensor must lie inside its storage (offset
 * + extent, times the element size, at most the storage's bytes), and a
 * storage's entry must hold exactly the bytes the pickle declares (and, for
 * a compressed zip entry, no more than deflate can expand its compressed
 * bytes to), so a declared size is never allocated before it is checked. A
 * failure names the file, and the key or storage, and the problem.
 */
#ifndef MREC_PYTORCH_H
#define MREC_PYTORCH_H

#include "mrec_safetensors.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char key[64];          /* the storage's name in the archive */
    mrec_dtype dtype;      /* its element type (U8 for an UntypedStorage: bytes) */
    uint64_t nbytes;       /* as the pickle declares it */
    const uint8_t *data;   /* nbytes, once loaded (NULL before) */
    uint8_t *owned;        /* data when it was read out of a zip entry */
} mrec_pt_storage;

typedef struct {
    char *name;            /* the state dict's key */
    mrec_dtype dtype;
    int ndim;
    int64_t shape[MREC_ST_MAX_DIMS], stride[MREC_ST_MAX_DIMS]; /* stride in elements */
    int64_t offset;        /* the storage offset, in elements */
    int storage;           /* index into mrec_pytorch.storages */
} mrec_pt_tensor;

typedef struct {
    char *path;            /* for messages */
    int legacy;            /* 1: the pre-1.6 format; 0: zip */
    int big_endian;        /* the zip's byteorder says "big": elements are swapped when copied */
    char selected[256];    /* where the state dict was: "" for the top level, else its key path, or the module's class */
    int n_tensors;
    mrec_pt_tensor *tensors; /* in the order of the file */
    int n_storages;
    mrec_pt_storage *storages;
    void *map;             /* the file, when opened from a path */
    size_t map_size;
} mrec_pytorch;

/* Maps `path`, reads and checks the state dict (under `key` when not NULL)
 * and loads the storages its tensors use. On failure *pt is left empty. */
mrec_status mrec_pytorch_open(mrec_pytorch *pt, const char *path, const char *key);
/* The same over a file in memory (borrowed: it must outlive pt, as storages
 * of a legacy file point into it); label names it in messages. This is what
 * the fuzzer drives. */
mrec_status mrec_pytorch_parse(mrec_pytorch *pt, const void *buf, size_t size, const char *label, const char *key);
void mrec_pytorch_close(mrec_pytorch *pt);

/* Bytes of tensor i, numel x dtype size. */
uint64_t mrec_pt_tensor_bytes(const mrec_pt_tensor *t);
/* Tensor i, contiguous and little-endian, into out (mrec_pt_tensor_bytes). */
void mrec_pytorch_copy(const mrec_pytorch *pt, int i, void *out);

/* Keeps only the tensors whose names start with prefix, the prefix taken
 * off ("backbone." of an mmcv detector's or MMFashion's state dict); none
 * left, or a name left empty, is an error naming the prefix. */
mrec_status mrec_pytorch_keep_prefix(mrec_pytorch *pt, const char *prefix);
/* Reads `in` (key as above; prefix, when not NULL, as mrec_pytorch_keep_prefix)
 * and writes its tensors to `out` as safetensors, in the file's order, with
 * __metadata__ {"format": "pt"} as Hugging Face's converter writes; through a
 * temporary file renamed at the end, so `out` appears whole or not at all.
 * n_tensors and params (either may be NULL) receive what was written. */
mrec_status mrec_pytorch_to_safetensors(const char *in, const char *out, const char *key, const char *prefix, int *n_tensors,
                                        int64_t *params, char *selected, size_t selected_cap);
/* A PyTorch checkpoint read as safetensors in memory, for the loaders that
 * take safetensors: every tensor of its state dict copied contiguous and
 * little-endian into one buffer that st owns (mrec_safetensors_close frees
 * it). Nothing is written. */
mrec_status mrec_safetensors_from_pytorch(mrec_safetensors *st, const char *path);
/* mrec_safetensors_open, or mrec_safetensors_from_pytorch for a file named
 * .pt, .pth or .bin. */
mrec_status mrec_safetensors_open_any(mrec_safetensors *st, const char *path);

#endif
