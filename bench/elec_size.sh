#!/bin/sh
# elec_size.sh: LATTICE and FREEDOM at the size of MMRec's Amazon Elec set (192,403 users, 63,001 items,
# 1,689,188 pairs), where MMRec's dense LATTICE holds 63,001 x 63,001 item matrices (15.9 GB each).
# Not part of the tests. Interactions of that size are drawn (Zipf-like item popularity, MMRec's per-user
# split: 1 valid and 1 test below 10 pairs, else a fifth shared between them), with random 4096-d visual
# and 384-d textual features, then one epoch of each model; GNU time reports the peak resident memory.
#
#   bench/elec_size.sh [THREADS]        needs python3 with numpy, and /usr/bin/time
#   MREC_DEVICE=cuda MREC=build/cuda/mrec bench/elec_size.sh    the same on a GPU: the host's peak, and the GPU's
#                                                               memory in use at its highest (nvidia-smi every 100 ms)
set -eu
cd "$(dirname "$0")/.."
threads=${1:-0}
out=runs/elec
mrec=${MREC:-bin/mrec}
[ -x "$mrec" ] || make -s
mkdir -p "$out"
if [ ! -f "$out/elec.tsv" ]; then
    python3 - "$out" <<'PY'
import sys
import numpy as np
out = sys.argv[1]
rng = np.random.default_rng(0)
U, I, P = 192403, 63001, 1689188
n = np.full(U, 5)
extra = rng.zipf(1.8, size=4 * U)
extra = (extra[extra < 300][:U] - 1).astype(np.int64)
n += (extra * ((P - n.sum()) / extra.sum())).astype(np.int64)
n[: P - n.sum()] += 1
pop = 1.0 / np.arange(1, I + 1) ** 0.8
pop /= pop.sum()
with open(out + "/elec.tsv", "w") as f:
    f.write("userID\titemID\tx_label\n")
    for u in range(U):
        k = int(n[u])
        v, t = (1, 1) if k < 10 else (int(0.2 * k) // 2, int(0.2 * k) - int(0.2 * k) // 2)
        label = [0] * (k - v - t) + [1] * v + [2] * t
        f.write("".join(f"{u}\t{i}\t{l}\n" for i, l in zip(rng.choice(I, size=k, replace=False, p=pop), label)))
np.save(out + "/image_feat.npy", rng.random((I, 4096), dtype=np.float32))
np.save(out + "/text_feat.npy", rng.random((I, 384), dtype=np.float32))
PY
fi
gpu=0
[ "${MREC_DEVICE:-cpu}" = cuda ] && command -v nvidia-smi > /dev/null 2>&1 && gpu=1
for m in lattice freedom; do
    echo "== $m"
    if [ "$gpu" = 1 ]; then # the device's memory in use, sampled while the run lasts
        nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > "$out/$m.gpu_mem" 2>/dev/null &
        poll=$!
        before=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -n 1)
    fi
    /usr/bin/time -f "$m: peak resident memory %M KB, %e s" "$mrec" train --data "$out/elec.tsv" --model "$m" \
        --features "visual=$out/image_feat.npy,textual=$out/text_feat.npy" --epochs 1 --threads "$threads" \
        --device "${MREC_DEVICE:-cpu}" \
        --cache "$out/cache" --overwrite --out "$out/$m" 2>&1 | grep -E '^(model|epoch|test)|peak resident'
    if [ "$gpu" = 1 ]; then
        kill "$poll" 2>/dev/null; wait "$poll" 2>/dev/null || true
        sort -n "$out/$m.gpu_mem" | tail -n 1 | awk -v m="$m" -v b="$before" '{ printf "%s: GPU memory in use at most %d MiB (%d MiB before the run)\n", m, $1, b }'
    fi
done
