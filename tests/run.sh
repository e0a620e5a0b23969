#!/bin/sh
# run.sh BUILD TEST...: runs each test program from the repository root and
# adds up their "suite: N passed, N failed, N skipped" lines. A program that
# crashes or prints no such line counts as one failure. The last line is the
# total, and the exit status is non-zero if anything failed.
#
# MREC_TEST_JOBS=N runs N programs at a time (default 1; make gpu-check uses
# the GPU machine's cores); the outputs are still printed in the order given.
build=$1
shift
MREC_BIN=$build/mrec
export MREC_BIN
jobs=${MREC_TEST_JOBS:-1}
runs=$(mktemp -d)
trap 'rm -rf "$runs"' EXIT
# each program's output and exit status into $runs/<index>.out and .rc (the
# .rc whole, by a rename, once the program has ended)
i=0
for t in "$@"; do
    i=$((i + 1))
    printf '%s %s\n' "$i" "$t"
done | xargs -P "$jobs" -L 1 sh -c '"$2" > "$0/$1.out" 2>&1; echo $? > "$0/$1.tmp"; mv "$0/$1.tmp" "$0/$1.rc"' "$runs" &
running=$!
passed=0 failed=0 skipped=0
i=0
for t in "$@"; do
    i=$((i + 1))
    # in the order given, each as soon as it has ended: one job prints as the programs finish
    while [ ! -f "$runs/$i.rc" ] && kill -0 "$running" 2>/dev/null; do sleep 0.1; done
    out=$(cat "$runs/$i.out" 2>/dev/null)
    rc=$(cat "$runs/$i.rc" 2>/dev/null || echo 1)
    printf '%s\n' "$out" | grep -v '^$'
    line=$(printf '%s\n' "$out" | grep -E '^[A-Za-z0-9_-]+: [0-9]+ passed, [0-9]+ failed' | tail -n 1)
    if [ -z "$line" ]; then
        echo "FAIL $(basename "$t"): exited $rc without a result line"
        failed=$((failed + 1))
        continue
    fi
    p=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed.*/\1/')
    f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
    s=$(echo "$line" | sed -nE 's/.* ([0-9]+) skipped.*/\1/p')
    passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + ${s:-0}))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "FAIL $(basename "$t"): exited $rc"
        failed=$((failed + 1))
    fi
done
wait
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
