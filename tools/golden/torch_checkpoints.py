#!/usr/bin/env python3
"""torch_checkpoints.py: PyTorch checkpoints for mrec convert, and hostile ones.

Run from the repository root with PyTorch installed:

    python tools/golden/torch_checkpoints.py

Writes into tests/fixtures/torch/:
  dtypes.bin        a real nn.Module state_dict (an OrderedDict with its _metadata) plus one tensor
                    of every element type torch.save writes for a state dict (F32 F64 F16 BF16 I64 I32
                    I16 I8 U8 BOOL; U16 and F8_E4M3 through _rebuild_tensor_v3), a 0-d tensor, an empty
                    one and an nn.Parameter (_rebuild_parameter)
  views.bin         tensors that are views of one storage: a slice at an offset, a transpose, a strided
                    slice, an expand (stride 0) and the base itself
  nested.pth        an mmcv-style checkpoint: {'meta': ..., 'state_dict': ..., 'optimizer': ...}
  legacy.pth        the same saved in the legacy (pre-1.6) format, _use_new_zipfile_serialization=False
  proto4.bin        dtypes.bin's dict saved with pickle_protocol=4 (FRAME, SHORT_BINUNICODE, MEMOIZE,
                    STACK_GLOBAL)
  bigendian.bin     a zip whose byteorder says "big" and whose storages are byte-swapped, as torch.save
                    writes on a big-endian machine; torch.load reads it back to the same values here
  module.pt         a whole torchvision ResNet saved by torch.save(model), as Ducho's MMFashion.pt is made:
                    the real classes (ResNet, Bottleneck, Conv2d without bias, BatchNorm2d, Sequential,
                    ReLU, MaxPool2d, AdaptiveAvgPool2d, Linear) at a tiny width, plus a non-persistent
                    buffer; its expected tensors are model.state_dict()
  mmfashion.pth     an mmcv checkpoint as MMFashion's: {'meta', 'state_dict': backbone.* then a head}; its
                    expected tensors are the backbone's, "backbone." taken off (mrec convert --prefix)
  <name>.expected.safetensors  for each of those, the state dict's tensors, contiguous, written by a
                    plain writer here from torch's own bytes (not by mrec): what mrec convert must give
  hostile/*.bin     one defect each (see HOSTILE below); mrec must refuse each, naming it, and write nothing

Fixed seeds; the zips written here have fixed timestamps (torch.save's own carry a random
serialization_id, so those files differ from run to run in that entry only).
"""
import collections
import io
import json
import os
import pickle
import struct
import zipfile

import torch

OUT = "tests/fixtures/torch"


def expected(path, sd):
    """A safetensors file of sd's tensors in order, contiguous, little-endian: torch's own bytes."""
    dt = {torch.float32: "F32", torch.float64: "F64", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64",
          torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL",
          torch.uint16: "U16", torch.float8_e4m3fn: "F8_E4M3"}
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for k, v in sd.items():
        b = v.detach().contiguous().view(-1).view(torch.uint8).numpy().tobytes() if v.numel() else b""
        header[k] = {"dtype": dt[v.dtype], "shape": list(v.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def dtypes_dict():
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3), torch.nn.Embedding(5, 2))
    m[1].running_mean.uniform_()
    m[1].num_batches_tracked += 7
    sd = m.state_dict()  # an OrderedDict carrying _metadata
    sd["f64"] = torch.randn(2, 3, dtype=torch.float64)
    sd["f16"] = torch.randn(3, 2).half()
    sd["bf16"] = torch.randn(2, 2).bfloat16()
    sd["position_ids"] = torch.arange(7).unsqueeze(0)
    sd["i32"] = torch.tensor([-5, 0, 2 ** 31 - 1], dtype=torch.int32)
    sd["i16"] = torch.tensor([-300, 300], dtype=torch.int16)
    sd["i8"] = torch.tensor([-128, 5, 127], dtype=torch.int8)
    sd["u8"] = torch.tensor([0, 200, 255], dtype=torch.uint8)
    sd["mask"] = torch.tensor([[True, False], [False, True]])
    sd["u16"] = torch.tensor([1, 65535], dtype=torch.uint16)
    sd["f8"] = torch.tensor([0.5, -2.0, 448.0]).to(torch.float8_e4m3fn)
    sd["scalar"] = torch.tensor(3.25)
    sd["empty"] = torch.zeros(0, 3)
    sd["param"] = torch.nn.Parameter(torch.randn(2, 2))
    sd["a.b.c"] = torch.randn(1, 1, 2, 1)
    return sd


def views_dict():
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    return collections.OrderedDict([
        ("base", base), ("rows", base[1:3]), ("t", base.t()), ("every_other", base[:, ::2]),
        ("expand", base[0:1, 0:2].expand(3, 2)), ("col", base[:, 5]), ("tail", base.view(-1)[20:]),
    ])


def nested():
    torch.manual_seed(1)
    m = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 2))
    opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    m(torch.randn(2, 3, 5, 4)).sum().backward()
    opt.step()
    ckpt = {"meta": {"mmcv_version": "0.2.10", "time": "Tue Feb 11 10:00:00 2020", "epoch": 12, "iter": 48000,
                     "CLASSES": ("Anorak", "Blazer"), "lr": [0.02, 0.002], "flag": True, "none": None,
                     "big": 2 ** 70, "neg": -3},
            "state_dict": m.state_dict(), "optimizer": opt.state_dict()}
    return ckpt, ckpt["state_dict"]


def fixed_zip(path, entries):
    """A stored zip with fixed timestamps."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            z.writestr(info, data)


def torch_zip_entries(obj):
    """torch.save's entries (names and bytes), to rewrite or corrupt."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    with zipfile.ZipFile(buf) as z:
        return [(i.filename, z.read(i.filename)) for i in z.infolist()]


def bigendian(path):
    sd = collections.OrderedDict([("w", torch.randn(2, 3)), ("h", torch.randn(3).half()), ("i", torch.arange(3)),
                                  ("u8", torch.tensor([1, 2], dtype=torch.uint8)), ("t", torch.randn(3, 2).t())])
    entries = torch_zip_entries(sd)
    names = {n.split("/")[-1]: n for n, _ in entries}
    pkl = dict(entries)[names["data.pkl"]]
    # torch numbers storages in the order it meets them: here one per tensor, in order
    sizes = {str(i): t.element_size() for i, t in enumerate(sd.values())}
    out = []
    for n, b in entries:
        parts = n.split("/")
        if parts[-1] == "byteorder":
            b = b"big"
        elif len(parts) == 3 and parts[1] == "data" and parts[2] in sizes and sizes[parts[2]] > 1:
            es = sizes[parts[2]]
            b = b"".join(b[i:i + es][::-1] for i in range(0, len(b), es))
        out.append((n, b))
    fixed_zip(path, out)
    back = torch.load(path, weights_only=True)  # torch reads it as a big-endian checkpoint
    for k in sd:
        assert torch.equal(back[k], sd[k]), k
    return sd


# ---- hostile files ----------------------------------------------------------

def pk_zip(path, pkl, storages=(), folder="archive"):
    fixed_zip(path, [(folder + "/data.pkl", pkl), (folder + "/byteorder", b"little")] +
              [(folder + "/data/" + k, v) for k, v in storages] + [(folder + "/version", b"3\n")])


def tiny_resnet():
    """torchvision's ResNet with every part replaced by a tiny one of the same class (8 to 32 channels)."""
    from torchvision.models.resnet import Bottleneck, ResNet
    nn = torch.nn
    torch.manual_seed(3)

    def down(c_in, c_out, stride):
        return nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
    m = ResNet(Bottleneck, [1, 1, 1, 1], num_classes=5, width_per_group=4)
    m.conv1, m.bn1 = nn.Conv2d(3, 8, 7, 2, 3, bias=False), nn.BatchNorm2d(8)
    m.layer1 = nn.Sequential(Bottleneck(8, 2))
    m.layer2 = nn.Sequential(Bottleneck(8, 4, 2, down(8, 16, 2)))
    m.layer3 = nn.Sequential(Bottleneck(16, 4, 2, down(16, 16, 2)))
    m.layer4 = nn.Sequential(Bottleneck(16, 8, 2, down(16, 32, 2)))
    m.fc = nn.Linear(32, 5)
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.weight.data.uniform_(0.5, 1.5), mod.bias.data.uniform_(-0.2, 0.2)
            mod.running_mean.uniform_(-0.3, 0.3), mod.running_var.uniform_(0.5, 2.0)
            mod.num_batches_tracked += 11
    m.register_buffer("scratch", torch.ones(3), persistent=False)  # not in state_dict()
    return m.eval()


def modules(out):
    m = tiny_resnet()
    torch.save(m, f"{out}/module.pt")
    expected(f"{out}/module.expected.safetensors", m.state_dict())
    head = collections.OrderedDict([("head.fc.weight", torch.randn(4, 32)), ("head.fc.bias", torch.zeros(4))])
    sd = collections.OrderedDict([("backbone." + k, v) for k, v in m.state_dict().items()] + list(head.items()))
    torch.save({"meta": {"epoch": 3}, "state_dict": sd}, f"{out}/mmfashion.pth")
    expected(f"{out}/mmfashion.expected.safetensors", m.state_dict())
    # hostile modules: a class from outside torch.nn / torchvision, a module class given arguments,
    # a module that holds itself
    d = f"{out}/hostile"
    attrs = b"}(X\x0b\x00\x00\x00_parametersq\x02}X\x08\x00\x00\x00_buffers}X\x08\x00\x00\x00_modules}(X\x04\x00\x00\x00selfh\x01uub."
    pk_zip(f"{d}/module_main.pt", b"\x80\x02c__main__\nNet\nq\x00)\x81q\x01" + attrs, [])
    pk_zip(f"{d}/module_args.pt", b"\x80\x02ctorch.nn.modules.linear\nLinear\nq\x00K\x02\x85\x81q\x01" + attrs, [])
    pk_zip(f"{d}/module_cycle.pt", b"\x80\x02ctorch.nn.modules.container\nSequential\nq\x00)\x81q\x01" + attrs, [])


def tensor_pickle(storage_cls=b"FloatStorage", key=b"0", numel=4, offset=0, size=(4,), stride=(1,)):
    """A state dict {'w': tensor} written opcode by opcode as torch does, with the numbers given."""
    def num(n):
        return b"\x8a" + bytes([8]) + struct.pack("<q", n) if n > 0xFFFF or n < 0 else b"M" + struct.pack("<H", n)

    def tup(xs):
        return b"(" + b"".join(num(x) for x in xs) + b"t"
    return (b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01X\x01\x00\x00\x00wq\x02ctorch._utils\n_rebuild_tensor_v2\nq\x03("
            b"(X\x07\x00\x00\x00storageq\x04ctorch\n" + storage_cls + b"\nq\x05X" + struct.pack("<I", len(key)) + key +
            b"X\x03\x00\x00\x00cpu" + num(numel) + b"tQ" + num(offset) + tup(size) + tup(stride) +
            b"\x89ccollections\nOrderedDict\n)Rtq\x06Rq\x07s.")


HOSTILE = {}


def hostile(dirpath):
    os.makedirs(dirpath, exist_ok=True)
    f4 = struct.pack("<4f", 1, 2, 3, 4)
    ok = tensor_pickle()
    assert torch.load(io.BytesIO(zip_bytes(ok, [("0", f4)])), weights_only=True)["w"].tolist() == [1, 2, 3, 4]

    def put(name, pkl, storages=(("0", f4),)):
        pk_zip(os.path.join(dirpath, name), pkl, storages)

    put("os_system.bin", b"\x80\x02cos\nsystem\nX\x05\x00\x00\x00touchR.")
    put("eval.bin", b"\x80\x02cbuiltins\neval\nX\x06\x00\x00\x00print(\x85R.")
    put("stack_global.bin", b"\x80\x04\x8c\x05posix\x8c\x06system\x93\x8c\x02id\x85R.")
    put("unknown_opcode.bin", b"\x80\x02}\xff.")
    put("newobj.bin", b"\x80\x02ccollections\nOrderedDict\n)\x81.")
    put("no_stop.bin", ok[:-1])
    put("memo.bin", b"\x80\x02}h\xc8.")
    put("memo_huge.bin", b"\x80\x02}r\xff\xff\xff\xff.")
    put("huge_size.bin", tensor_pickle(size=(1 << 40, 1 << 40), stride=(1 << 40, 1)))
    put("offset.bin", tensor_pickle(offset=3, size=(2,)))
    put("short_storage.bin", tensor_pickle(numel=8, size=(8,)))
    put("missing_storage.bin", tensor_pickle(key=b"7"))
    put("bad_key.bin", tensor_pickle(key=b"../0"))
    put("not_tensor.bin", b"\x80\x02}X\x0a\x00\x00\x00state_dict}X\x01\x00\x00\x00wX\x01\x00\x00\x00xss.")
    put("build.bin", b"\x80\x02]N\x85b.")
    put("marks.bin", b"\x80\x02" + b"(" * 70000 + b".")
    put("complex.bin", tensor_pickle(storage_cls=b"ComplexFloatStorage"))
    # a zip bomb in spirit: data/0 declares 4 GB that 1 KB of deflate cannot hold
    big = 0xFFFFFFF0
    pkl = tensor_pickle(storage_cls=b"ByteStorage", numel=big, size=(big,))
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as z:
        for n, d, c in [("archive/data.pkl", pkl, zipfile.ZIP_STORED), ("archive/data/0", bytes(1 << 20), zipfile.ZIP_DEFLATED)]:
            info = zipfile.ZipInfo(n, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = c
            z.writestr(info, d)
    b = bytearray(raw.getvalue())
    for sig, at in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):  # uncompressed size: local header, central directory
        i = b.find(sig, b.find(b"archive/data/0") - 60 if sig == b"PK\x03\x04" else 0)
        while i >= 0:
            if b[i + (30 if sig == b"PK\x03\x04" else 46):].startswith(b"archive/data/0"):
                b[i + at:i + at + 4] = struct.pack("<I", big)
            i = b.find(sig, i + 4)
    open(os.path.join(dirpath, "zipbomb.bin"), "wb").write(bytes(b))
    good = zip_bytes(ok, [("0", f4)])
    open(os.path.join(dirpath, "truncated.bin"), "wb").write(good[:len(good) // 2])
    leg = io.BytesIO()
    torch.save({"w": torch.arange(4.0)}, leg, _use_new_zipfile_serialization=False)
    open(os.path.join(dirpath, "legacy_truncated.pth"), "wb").write(leg.getvalue()[:-5])
    open(os.path.join(dirpath, "not_torch.bin"), "wb").write(b"\x00just some bytes, not a checkpoint\n")


def zip_bytes(pkl, storages):
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w", zipfile.ZIP_STORED) as z:
        for n, d in ([("archive/data.pkl", pkl), ("archive/byteorder", b"little")] +
                     [("archive/data/" + k, v) for k, v in storages] + [("archive/version", b"3\n")]):
            z.writestr(zipfile.ZipInfo(n, date_time=(2020, 1, 1, 0, 0, 0)), d)
    return raw.getvalue()


def main():
    os.makedirs(OUT, exist_ok=True)
    sd = dtypes_dict()
    torch.save(sd, f"{OUT}/dtypes.bin")
    expected(f"{OUT}/dtypes.expected.safetensors", sd)
    torch.save(sd, f"{OUT}/proto4.bin", pickle_protocol=4)
    expected(f"{OUT}/proto4.expected.safetensors", sd)
    v = views_dict()
    torch.save(v, f"{OUT}/views.bin")
    expected(f"{OUT}/views.expected.safetensors", v)
    ckpt, sd = nested()
    torch.save(ckpt, f"{OUT}/nested.pth")
    expected(f"{OUT}/nested.expected.safetensors", sd)
    torch.save(ckpt, f"{OUT}/legacy.pth", _use_new_zipfile_serialization=False)
    expected(f"{OUT}/legacy.expected.safetensors", sd)
    sd = bigendian(f"{OUT}/bigendian.bin")
    expected(f"{OUT}/bigendian.expected.safetensors", sd)
    hostile(f"{OUT}/hostile")
    modules(OUT)


if __name__ == "__main__":
    main()
