#!/bin/sh
# mutate.sh: plants a bug in a transformed copy of a kernel file (build/emu/KERNEL_emu.cpp, never the source)
# and requires an emulator test to catch it: the tests' proof that they can fail.
#
#   mutate.sh one EMU NAME KERNEL TEST 'SED-EXPRESSION'
#   mutate.sh all EMU LIST
#
# EMU is the build folder (build/emu) after make emu-check has built the tests; EMU_CXX and EMU_KFLAGS the
# compiler and the kernels' flags (the Makefile passes them). The bug is the sed expression applied to the
# kernel's copy (it must change something); the test program then runs its quick cases against the copy
# and must fail. A TEST written asan/TEST is the AddressSanitizer build's (EMU/asan, EMU_ASAN_FLAGS added to the
# compiler), and must fail with AddressSanitizer's report. LIST holds one planted bug a line,
# "NAME KERNEL TEST SED-EXPRESSION" ('#' starts a comment);
# `all` plants each and prints "emu_mutations: N passed, N failed, 0 skipped", a caught bug a pass.
# MREC_TEST_VERBOSE=1 shows how each was caught.
one() { # EMU NAME KERNEL TEST EXPR: 0 when caught (sh has no local variables: the caller's emu is left alone)
    build=$1 name=$2 kernel=$3 test=$4 expr=$5 cxx=$EMU_CXX want=
    case $test in
    asan/*) build=$build/asan test=${test#asan/} cxx="$EMU_CXX $EMU_ASAN_FLAGS" want=AddressSanitizer ;;
    esac
    dir=$build/mut/$name
    mkdir -p "$dir" || return 2
    sed "$expr" "$build/${kernel}_emu.cpp" > "$dir/${kernel}_emu.cpp" || return 2
    if cmp -s "$build/${kernel}_emu.cpp" "$dir/${kernel}_emu.cpp"; then
        echo "mutation $name: the expression changes nothing in ${kernel}.cu: $expr" >&2
        return 2
    fi
    # shellcheck disable=SC2086 # the flags and the link line are word lists
    $cxx $EMU_KFLAGS -c "$dir/${kernel}_emu.cpp" -o "$dir/${kernel}_emu.o" || return 2
    # shellcheck disable=SC2046
    $cxx -o "$dir/$test" $(sed "s|$build/${kernel}_emu\.o|$dir/${kernel}_emu.o|" "$build/$test.link") || return 2
    if ASAN_OPTIONS=detect_leaks=0 "$dir/$test" quick > "$dir/out.txt" 2>&1; then
        return 1
    fi
    if [ -n "$want" ] && ! grep -q "$want" "$dir/out.txt"; then
        return 1
    fi
    [ -n "$MREC_TEST_VERBOSE" ] && grep -m 3 -E 'FAIL|EMU ERROR|ERROR: AddressSanitizer|#0 ' "$dir/out.txt" | cut -c 1-200 | sed 's/^/    /'
    return 0
}

case $1 in
one)
    shift
    one "$@"
    rc=$?
    [ $rc -eq 0 ] && echo "caught" || echo "NOT caught (status $rc)"
    exit $rc ;;
all)
    emu=$2 list=$3 pass=0 fail=0
    while read -r name kernel test expr; do
        case $name in '' | '#'*) continue ;; esac
        one "$emu" "$name" "$kernel" "$test" "$expr"
        rc=$?
        if [ $rc -eq 0 ]; then
            pass=$((pass + 1))
            [ -n "$MREC_TEST_VERBOSE" ] && echo "  planted bug $name ($kernel.cu, $test): caught"
        elif [ $rc -eq 1 ]; then
            fail=$((fail + 1))
            echo "FAIL [emu_mutations] planted bug $name ($kernel.cu: $expr): $test passes, the bug is not caught" >&2
        else
            fail=$((fail + 1))
            echo "FAIL [emu_mutations] planted bug $name: could not be built" >&2
        fi
    done < "$list"
    echo "emu_mutations: $pass passed, $fail failed, 0 skipped"
    [ $fail -eq 0 ] ;;
*)
    echo "usage: mutate.sh one EMU NAME KERNEL TEST 'SED-EXPRESSION' | mutate.sh all EMU LIST" >&2
    exit 2 ;;
esac
