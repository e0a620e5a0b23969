#!/bin/sh
# check.sh (make gpu-check): everything a machine with a GPU should verify,
# in one command meant to end inside ten minutes, with one markdown report.
#
#   1. build dependencies: when the machine lacks the Debian -dev libraries,
#      the packages in .deps/ (make gpu-deps, on a Debian machine) are
#      unpacked under build/deps and used from there; cuDNN comes from the
#      CUDA toolkit or, failing that, from the nvidia-cudnn Python wheel;
#   2. the CUDA build for this GPU's architecture;
#   3. the GPU benchmarks (bench/bench_gpu_*, bench_train_gpu), alone on
#      the GPU, with full-size random checkpoints made here when
#      MREC_FULL_DIR is unset (build/bench-full), and where one forward's
#      time goes by kernel (ncu);
#   4. the whole test suite of that build (the GPU cases run instead of
#      printing "skipped") and, beside it, the GPU test programs
#      (tests/test_cuda*.c, test_align, test_altclip) under compute-sanitizer
#      (memcheck, racecheck).
#
# The report goes to $OUT/gpu-check.md when OUT is set, with every log in $OUT/logs.tar.gz,
# else to build/gpu-check.md with the logs beside it. The exit status is non-zero if a step failed.
#
# GPU_CHECK_PART=tests runs steps 1, 2 and 4 only, GPU_CHECK_PART=benches 1 to 3:
# two commands that each fit a device machine's ten minutes where the whole does not.
# GPU_CHECK_PART=reproduce runs steps 1 and 2, then a published-number run of
# bench/reproduce.sh on the GPU (GPU_CHECK_REPRODUCE, default gowalla-lightgcn:
# 1,000 epochs), cut at GPU_CHECK_REPRODUCE_S seconds (default 540): the report
# gives its last epochs and, when it ended, its best one beside the published; the
# next call on the same machine goes on from the cut run's last evaluation.
# GPU_CHECK_PART=encoders runs steps 1 and 2, then bench_gpu_ops' encoder table alone
# at batch 1, 32, 128 and 256 (GPU_CHECK_ENCODER_BATCHES) with torch.compile's
# bf16 peer at batch 128 (GPU_CHECK_COMPILE, a list of sizes; 0 for none).
set -u
cd "$(dirname "$0")/../.."
out=${OUT:-build}
mkdir -p "$out" build
report=$out/gpu-check.md
jobs=$(nproc 2>/dev/null || echo 4)
fail=0
part=${GPU_CHECK_PART:-all}
export PATH="$PATH:/usr/local/cuda/bin"

say() { printf '%s\n' "$*" | tee -a "$report"; }
# A benchmark's exit status for its heading: one cut by its time limit (124) is reported as such, any other
# failure fails the check.
bench_rc() {
    case $1 in
        0) echo "exit 0" ;;
        124) echo "exit 124: cut by the time limit" ;;
        *) echo "exit $1: FAILED"; return 1 ;;
    esac
}
: > "$report"
say "# mrec gpu-check"
say ""
say "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
say "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(git status --porcelain 2>/dev/null | wc -l) files differing from it"
say "- GPU: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo none found)"
say "- nvcc: $(nvcc --version 2>/dev/null | sed -n 's/.*release \([0-9.]*\).*/\1/p')"
say "- part: $part"

# 1. dependencies
make_args="CUDA=1"
if [ -d .deps ] && ls .deps/*.deb >/dev/null 2>&1 && { [ ! -f /usr/include/cjson/cJSON.h ] || [ ! -f /usr/include/zip.h ]; }; then
    prefix=$PWD/build/deps
    mkdir -p "$prefix"
    for f in .deps/*.deb; do dpkg-deb -x "$f" "$prefix" || { echo "cannot unpack $f"; exit 1; }; done
    # Some -dev links are absolute (libz.so -> /lib/...): point them into the prefix.
    for l in "$prefix"/usr/lib/x86_64-linux-gnu/*.so; do
        t=$(readlink "$l") || continue
        case "$t" in /*) [ -e "$prefix$t" ] && ln -sf "$prefix$t" "$l" ;; esac
    done
    make_args="$make_args DEPS=$prefix"
    say "- build libraries: unpacked from .deps/ ($(ls .deps/*.deb | wc -l) packages)"
fi
cuda_home=${CUDA_HOME:-/usr/local/cuda}
if [ ! -f "$cuda_home/include/cudnn.h" ]; then
    cudnn=$(python3 -c 'import nvidia.cudnn, os; print(os.path.dirname(nvidia.cudnn.__file__))' 2>/dev/null ||
            python3 -c 'import nvidia.cudnn, os; print(list(nvidia.cudnn.__path__)[0])' 2>/dev/null)
    if [ -n "$cudnn" ] && [ -f "$cudnn/include/cudnn.h" ]; then
        # The wheel ships libcudnn.so.N only; the linker wants libcudnn.so.
        mkdir -p build/cudnn/lib
        ln -sf "$cudnn/include" build/cudnn/include
        for l in "$cudnn"/lib/libcudnn*.so.*; do
            ln -sf "$l" build/cudnn/lib/
            base=$(basename "$l" | sed 's/\.so\..*/.so/')
            ln -sf "$l" "build/cudnn/lib/$base"
        done
        make_args="$make_args CUDNN_HOME=$PWD/build/cudnn"
        say "- cuDNN: from the Python wheel at $cudnn"
    else
        say "- cuDNN: not found (neither in $cuda_home nor as a Python wheel)"
    fi
fi
cc=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d '.')
[ -n "$cc" ] && make_args="$make_args CUDA_ARCH=$cc"

# 2. build
say ""
say "## Build"
start=$(date +%s)
gpu_tests=$(ls tests/test_cuda*.c | sed 's|tests/\(.*\)\.c|build/cuda/tests/\1|')
# every test program with GPU cases (each says so by failing where no GPU opens under MREC_REQUIRE_GPU: t_no_gpu)
gpu_cases=$(grep -l 't_no_gpu(' tests/test_*.c | sed 's|tests/\(.*\)\.c|build/cuda/tests/\1|')
# the programs compute-sanitizer runs: the GPU test programs, and the two whose GPU kernels live beside their model
# (ALIGN's depthwise conv, row mean and sigmoid gate; AltCLIP's text tower)
sanitized="$gpu_tests build/cuda/tests/test_align build/cuda/tests/test_altclip"
if make -j"$jobs" $make_args > "$out/build.log" 2>&1 && make -j"$jobs" $make_args $sanitized >> "$out/build.log" 2>&1; then
    say "make $make_args: ok in $(( $(date +%s) - start )) s"
else
    say "make $make_args: FAILED (build.log):"
    say '```'
    tail -n 30 "$out/build.log" | tee -a "$report"
    say '```'
    exit 1
fi
build/cuda/mrec info >> "$out/build.log" 2>&1

if [ "$part" = reproduce ]; then
    run=${GPU_CHECK_REPRODUCE:-gowalla-lightgcn}
    start=$(date +%s)
    # a run the time limit cut goes on from its last evaluation at the next call (mrec train --resume)
    MREC_RESUME=1 MREC_DEVICE=cuda MREC=build/cuda/mrec timeout "${GPU_CHECK_REPRODUCE_S:-540}" sh bench/reproduce.sh "$run" > "$out/reproduce.log" 2>&1
    rc=$?
    say ""
    say "## bench/reproduce.sh $run on the GPU (exit $rc$([ "$rc" = 124 ] && echo ': cut by the time limit'), $(( $(date +%s) - start )) s)"
    say '```'
    grep '^epoch' "$out/reproduce.log" | tail -n 6 | tee -a "$report" > /dev/null
    grep -v '^epoch' "$out/reproduce.log" | tail -n 10 | tee -a "$report" > /dev/null
    say '```'
    [ "$rc" = 0 ] || fail=1
    say ""
    say "gpu-check: $([ "$fail" -eq 0 ] && echo passed || echo FAILED)"
    exit "$fail"
fi

if [ "$part" = encoders ]; then
    # the encoder table alone at every batch size the targets name, beside PyTorch eager and, at the sizes
    # GPU_CHECK_COMPILE lists (default 128: its compilation takes about a minute a model and size), torch.compile
    bench_full=${MREC_FULL_DIR:-}
    if [ -z "$bench_full" ] && python3 bench/peers/random_checkpoints.py build/bench-full > build/checkpoints.log 2>&1; then
        bench_full=$PWD/build/bench-full
    fi
    start=$(date +%s)
    make $make_args build/cuda/bench/bench_gpu_ops >> "$out/build.log" 2>&1 &&
        MREC_FULL_DIR=$bench_full MREC_BENCH_ENCODERS_ONLY=1 MREC_BENCH_BATCHES="${GPU_CHECK_ENCODER_BATCHES:-1 32 128 256}" \
        MREC_BENCH_COMPILE="${GPU_CHECK_COMPILE:-128}" timeout "${GPU_CHECK_ENCODERS_S:-540}" build/cuda/bench/bench_gpu_ops \
        > "$out/bench_gpu_encoders.log" 2>&1
    rc=$?
    say ""
    say "## The encoders on the GPU against PyTorch (bench_gpu_ops, exit $rc, $(( $(date +%s) - start )) s)"
    say '```'
    cat "$out/bench_gpu_encoders.log" | tee -a "$report" > /dev/null
    say '```'
    [ "$rc" = 0 ] || fail=1
    say ""
    say "gpu-check: $([ "$fail" -eq 0 ] && echo passed || echo FAILED)"
    exit "$fail"
fi

if [ "$part" != tests ]; then
    # 3. benchmarks, first, while nothing else uses the GPU. Without MREC_FULL_DIR,
    #    full-size checkpoints with random weights are written under
    #    build/bench-full when this machine's python3 has PyTorch and transformers.
    say ""
    say "## Benchmarks"
    # (The tests read MREC_FULL_DIR too, for reference outputs these checkpoints
    # lack: the folder is named to the benchmarks alone.)
    bench_full=${MREC_FULL_DIR:-}
    if [ -z "$bench_full" ] && python3 bench/peers/random_checkpoints.py build/bench-full > build/checkpoints.log 2>&1; then
        bench_full=$PWD/build/bench-full
    fi
    found=0
    # bench_gpu_*: the ops and encoders against PyTorch; bench_train_gpu: every
    # GPU-trained model's epoch on the GPU (synthetic data, 2 epochs; its CPU
    # column, which takes minutes, left out by MREC_BENCH_GPU_ONLY).
    # GPU_CHECK_BENCHES="NAME..." picks some.
    for b in ${GPU_CHECK_BENCHES:-bench/bench_gpu_*.c bench/bench_train_gpu.c}; do
        case $b in */*) ;; *) b=bench/$b.c ;; esac
        [ -f "$b" ] || continue
        found=1
        name=$(basename "$b" .c)
        make $make_args "build/cuda/bench/$name" >> "$out/build.log" 2>&1 && MREC_FULL_DIR=$bench_full MREC_BENCH_GPU_ONLY=1 timeout "${GPU_CHECK_BENCH_S:-300}" "build/cuda/bench/$name" > "$out/$name.log" 2>&1
        rc=$?; heading=$(bench_rc $rc) || fail=1
        say "### $name ($heading)"
        say '```'
        tail -n 70 "$out/$name.log" | tee -a "$report" > /dev/null
        say '```'
    done
    [ "$found" -eq 1 ] || say "none yet"

    # Every recommender's epoch on Baby on the GPU, beside its PyTorch peer on the same GPU (MMRec's models
    # and the recent ones, bench_multimodal and bench_recent with MREC_DEVICE=cuda). GPU_CHECK_BABY=0 leaves
    # it out.
    if [ "${GPU_CHECK_BABY:-1}" != 0 ]; then
        for name in bench_multimodal bench_recent; do
            make $make_args "build/cuda/bench/$name" >> "$out/build.log" 2>&1 &&
                MREC_DEVICE=cuda MREC_PYTHON=python3 timeout "${GPU_CHECK_BABY_S:-240}" "build/cuda/bench/$name" 1 10 > "build/$name.log" 2>&1
            rc=$?; heading=$(bench_rc $rc) || fail=1
            say "### $name on the GPU, Baby ($heading)"
            say '```'
            grep -v '^  ' "build/$name.log" | tail -n 16 | tee -a "$report" > /dev/null
            say '```'
        done
    fi

    # Where one forward's GPU time goes, kernel by kernel (ncu's gpu__time_duration over a
    # forward that bench_gpu_ops marks), beside the same forward timed without the profiler;
    # "gowalla MODEL STEPS" does the same for training steps on Gowalla (bench_gpu_gowalla), and
    # "baby MODEL STEPS" for one of bench_recent's models on Baby at its defaults.
    # GPU_CHECK_PROFILE="MODEL PRECISION BATCH; ..." picks them; "" leaves it out.
    if command -v ncu > /dev/null 2>&1 && [ -n "$bench_full" ] && [ -n "${GPU_CHECK_PROFILE-x}" ]; then
        say ""
        say "## Where a forward's time goes (ncu, kernel time by kernel)"
        make $make_args build/cuda/bench/bench_gpu_ops build/cuda/bench/bench_gpu_gowalla build/cuda/bench/bench_recent >> "$out/build.log" 2>&1
        echo "${GPU_CHECK_PROFILE:-bert-base bf16 32; resnet50 bf16 128; vit-b16 bf16 32; gowalla lightgcn 20}" | tr ';' '\n' | while read -r spec; do
            [ -n "$spec" ] || continue
            tag=$(echo "$spec" | tr ' ' '-') label=$spec
            prog=build/cuda/bench/bench_gpu_ops
            case $spec in
                gowalla\ *) prog=build/cuda/bench/bench_gpu_gowalla spec=${spec#gowalla } ;;
                baby\ *) prog="env MREC_DEVICE=cuda build/cuda/bench/bench_recent" spec=${spec#baby } ;;
            esac
            MREC_FULL_DIR=$bench_full MREC_BENCH_PROFILE="$spec" timeout 120 $prog > "build/profile-$tag.txt" 2>> build/profile.log
            wall=$(sed -nE 's/.*(one forward|all of them) in ([0-9.]+) ms.*/\2/p' "build/profile-$tag.txt")
            MREC_FULL_DIR=$bench_full MREC_BENCH_PROFILE="$spec" timeout 180 ncu --profile-from-start off --csv \
                --metrics gpu__time_duration.sum $prog > "build/ncu-$tag.csv" 2>> build/profile.log
            say "### $label (ncu exit $?)"
            python3 tools/gpu/kernel_times.py "build/ncu-$tag.csv" $wall 2>&1 | tee -a "$report" > /dev/null
            sed -n 's/^  host: /host (without the profiler): /p' "build/profile-$tag.txt" | tee -a "$report" > /dev/null
            # the same range with CUDA graphs off (mrec_graph_run runs each body as it is): what the graphs save
            nograph=$(MREC_CUDA_GRAPHS=0 MREC_FULL_DIR=$bench_full MREC_BENCH_PROFILE="$spec" timeout 120 $prog 2>> build/profile.log |
                      sed -nE 's/.*(one forward|all of them) in ([0-9.]+) ms.*/\2/p')
            say "the same range with CUDA graphs off (MREC_CUDA_GRAPHS=0): ${nograph:-failed} ms, with them ${wall:-failed} ms"
        done
    fi

    # The whole H&M catalogue (1,674 photos, 11,800 texts) extracted on the GPU in bf16, and where the
    # time goes, beside PyTorch on the GPU (bench/catalogue.sh). The text encoder is BERT-base sized,
    # Ducho's default's size: the random bert-base above under all-MiniLM-L6-v2's tokenizer and
    # sentence-transformers files (the same uncased vocabulary). GPU_CHECK_CATALOGUE=0 leaves it out;
    # GPU_CHECK_CATALOGUE_ITEMS=10000 lists the photos over again up to that many items.
    data=""
    for d in ${MREC_DATA:-} ../shared/data shared/data; do [ -d "$d/hm-fashion-sample/images" ] && { data=$d; break; }; done
    tok=$data/tokenizers/all-MiniLM-L6-v2
    if [ "${GPU_CHECK_CATALOGUE:-1}" != 0 ] && [ -n "$data" ] && [ -f "$tok/tokenizer.json" ] &&
        [ -f "$bench_full/resnet50/model.safetensors" ] && [ -f "$bench_full/bert-base/model.safetensors" ]; then
        st=build/bench-full-st-bert-base
        mkdir -p "$st/1_Pooling" "$st/2_Normalize"
        for f in tokenizer.json tokenizer_config.json special_tokens_map.json modules.json sentence_bert_config.json; do
            [ -f "$tok/$f" ] && cp "$tok/$f" "$st/"
        done
        ln -sf "$bench_full/bert-base/config.json" "$st/config.json"
        ln -sf "$bench_full/bert-base/model.safetensors" "$st/model.safetensors"
        printf '{"word_embedding_dimension": 768, "pooling_mode_mean_tokens": true}\n' > "$st/1_Pooling/config.json"
        MREC=build/cuda/mrec MREC_DATA=$data MREC_DEVICE=cuda MREC_PRECISION=bf16 MREC_PYTHON=python3 \
            MREC_CATALOGUE_ITEMS=${GPU_CHECK_CATALOGUE_ITEMS:-0} \
            timeout "${GPU_CHECK_CATALOGUE_S:-300}" sh bench/catalogue.sh "$bench_full/resnet50" "$st" "$jobs" > build/catalogue.log 2>&1
        rc=$?; heading=$(bench_rc $rc) || fail=1
        say "### the H&M catalogue on the GPU, bf16 (bench/catalogue.sh, $heading)"
        say '```'
        tail -n 20 build/catalogue.log | tee -a "$report" > /dev/null
        say '```'
    fi

fi

if [ "$part" != benches ]; then
    # 4. the tests, and beside them (the GPU has room, the machine has cores) the
    #    GPU test programs under compute-sanitizer, each bounded so that one slow
    #    program cannot cost the report (exit 124: timed out).
    start=$(date +%s)
    # test_cuda and test_cuda_train fail, not skip, when no GPU opens here (sanitized or not)
    export MREC_REQUIRE_GPU=1
    sanitizers=""
    if command -v compute-sanitizer > /dev/null 2>&1; then
        for t in $sanitized; do
            for tool in memcheck racecheck; do
                log=$out/sanitizer-$(basename "$t")-$tool.log
                ( MREC_UNDER_SANITIZER=1 timeout "${GPU_CHECK_SANITIZER_S:-300}" compute-sanitizer --tool "$tool" --error-exitcode 9 \
                      --target-processes application-only "$t" > "$log" 2>&1
                  echo "exit $?" >> "$log" ) &
                sanitizers="$sanitizers $log"
            done
        done
    fi
    # GPU_CHECK_TESTS="gpu [NAME...]" runs every test program with GPU cases and the
    # test_NAME programs named (a short look); the default, all, runs the whole suite,
    # GPU_CHECK_TEST_JOBS programs at a time (default: half the cores).
    export MREC_TEST_JOBS=${GPU_CHECK_TEST_JOBS:-$(( jobs > 1 ? jobs / 2 : 1 ))}
    if [ "${GPU_CHECK_TESTS:-all}" != all ]; then
        picked=$gpu_cases
        for name in ${GPU_CHECK_TESTS#gpu}; do picked="$picked build/cuda/tests/test_$name"; done
        make $make_args $picked >> "$out/build.log" 2>&1
        MREC_BIN=build/cuda/mrec timeout "${GPU_CHECK_TESTS_S:-600}" sh tests/run.sh build/cuda $picked > "$out/test.log" 2>&1 || fail=1
    else
        timeout "${GPU_CHECK_TESTS_S:-600}" make $make_args test > "$out/test.log" 2>&1 || fail=1
    fi
    tests_s=$(( $(date +%s) - start ))
    wait
    say ""
    say "## Tests (CUDA build, GPU present)"
    say "$(tail -n 1 "$out/test.log") in $tests_s s"
    say '```'
    grep -E '^(FAIL|skipped|[a-z_]+: [0-9]+ passed)|failed:' "$out/test.log" | head -n 80 | tee -a "$report" > /dev/null
    say '```'

    say ""
    say "## compute-sanitizer on the GPU test programs ($(( $(date +%s) - start )) s)"
    if [ -z "$sanitizers" ]; then
        say "- compute-sanitizer not found"
        fail=1
    fi
    # racecheck also reports hazards inside cuBLASLt's and cuDNN's own Hopper kernels (nvjet_*, *xmma*,
    # cutlass), whose asynchronous copies and barriers it does not follow: counted apart, and a finding
    # only when one of this project's kernels has a hazard.
    library='nvjet_|xmma|cutlass|cudnn|cublas'
    for log in $sanitizers; do
        rc=$(tail -n 1 "$log" | sed 's/exit //')
        summary=$(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$log" | tail -n 1)
        races=$(grep -c 'Race reported between' "$log")
        theirs=$(grep 'Race reported between' "$log" | grep -cE "$library")
        note=""
        if [ "$rc" = 9 ] && [ "$races" -gt 0 ] && [ "$races" = "$theirs" ] && ! grep -qE 'ERROR SUMMARY: [1-9]|Target application returned an error' "$log"; then
            rc=0
            note="; all $races in the libraries' kernels ($(grep 'Race reported between' "$log" | grep -oE "($library)[A-Za-z0-9_]*" | sort -u | head -n 3 | tr '\n' ' '))"
        fi
        say "- $(basename "$log" .log | sed 's/^sanitizer-//'): exit $rc; ${summary:-no summary line}$note"
        [ "$rc" = 0 ] || fail=1
    done
    # one file for the four logs: what comes back from a device machine is counted in files
    for log in $sanitizers; do printf '==== %s\n' "$(basename "$log")"; cat "$log"; done > "$out/sanitizer.log" 2>/dev/null && rm -f $sanitizers

fi
say ""
say "gpu-check: $([ "$fail" -eq 0 ] && echo passed || echo FAILED)"
# A device machine returns at most 8 files from $OUT: with OUT set, every log (those above and the benches' and
# profiles' under build/) goes into one archive beside the report.
if [ -n "${OUT:-}" ]; then
    logs=$(cd "$out" && ls *.log 2>/dev/null)
    extra=$(ls build/bench_*.log build/catalogue.log build/checkpoints.log build/profile*.txt build/profile.log build/ncu-*.csv 2>/dev/null)
    mkdir -p build/check-logs
    for f in $logs; do mv "$out/$f" build/check-logs/; done
    for f in $extra; do cp "$f" build/check-logs/; done
    tar czf "$out/logs.tar.gz" -C build check-logs && rm -rf build/check-logs
fi
exit "$fail"
