#!/bin/sh
# mutate_pipe.sh: plants a missing wait in a copy of extractors/pipe.c and requires test_extract_pipeline, on the
# emulated GPU under a given stream schedule, to catch it: the proof that the schedules find what they are for.
#
#   mutate_pipe.sh GPU LIST
#
# GPU is the folder of the emulated GPU programs (build/emu/gpu, after make emu-gpu-check has built them);
# CC and CFLAGS compile the copy; the program is linked as "$LINK -o PROGRAM pipe.o $OBJS", the copy's pipe.o
# ahead of the library's (the Makefile passes the four). LIST holds one planted bug a line, "NAME SCHEDULE
# EXPECT SED-EXPRESSION" ('#' starts a comment): EXPECT is "-" for any failure of the program, or words its
# output must hold, which the first run must show (the race check finds what it finds whatever the timing).
# Prints "emu_pipe_mutations: N passed, N failed, 0 skipped", a caught bug a pass.
gpu=$1 list=$2 pass=0 fail=0
while read -r name schedule expect expr; do
    case $name in '' | '#'*) continue ;; esac
    dir=$gpu/mut/$name
    mkdir -p "$dir"
    sed "$expr" extractors/pipe.c > "$dir/pipe.c"
    if cmp -s extractors/pipe.c "$dir/pipe.c"; then
        echo "FAIL [emu_pipe_mutations] planted bug $name: the expression changes nothing in extractors/pipe.c: $expr" >&2
        fail=$((fail + 1))
        continue
    fi
    # shellcheck disable=SC2086 # the flags and the link line are word lists
    if ! $CC $CFLAGS -Iextractors -c "$dir/pipe.c" -o "$dir/pipe.o" || ! $LINK -o "$dir/test_extract_pipeline" "$dir/pipe.o" $OBJS; then
        echo "FAIL [emu_pipe_mutations] planted bug $name: could not be built" >&2
        fail=$((fail + 1))
        continue
    fi
    # whether the pipeline's producer threads rewrite a slot before the host's next wait is their timing: three
    # tries, where any failure will do; one where the words are expected
    caught=0 tries="1 2 3"
    [ "$expect" != - ] && tries=1
    for try in $tries; do
        if ! EMU_SCHEDULE=$schedule "$dir/test_extract_pipeline" > "$dir/out.txt" 2>&1; then
            [ "$expect" = - ] || grep -q -- "$expect" "$dir/out.txt" && caught=1
            break
        fi
    done
    if [ $caught -eq 0 ]; then
        echo "FAIL [emu_pipe_mutations] planted bug $name (schedule $schedule): not caught in $try run(s)$([ "$expect" != - ] && echo " as \"$expect\"")" >&2
        fail=$((fail + 1))
    else
        pass=$((pass + 1))
        [ -n "$MREC_TEST_VERBOSE" ] && echo "  planted bug $name (schedule $schedule): caught at try $try" && grep -m 2 -E 'FAIL|EMU ERROR' "$dir/out.txt" | cut -c 1-200
    fi
done < "$list"
echo "emu_pipe_mutations: $pass passed, $fail failed, 0 skipped"
[ $fail -eq 0 ]
