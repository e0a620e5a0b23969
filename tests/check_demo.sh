#!/bin/sh
# check_demo.sh: runs `mrec demo` and checks what it prints: that the Baby data is named for
# what it is (MMRec's Baby interactions, DiffMM's split) and each published column says what it
# shares with the run; the test values of the collaborative part on Amazon Baby against ranges
# near MMRec's published values (same data, other split; the demo trains few epochs, so the
# ranges are wide: BPRMF lands at about .058, LightGCN at about .072 Recall@20); and, when the
# MiniLM weights are present, the multimodal part on H&M (text features must help: VBPR and
# FREEDOM above BPRMF).
set -eu
out=${MREC_DEMO_OUT:-build/demo}
rm -rf "$out"
./bin/mrec demo --out "$out" > "$out.log" 2>&1 || { tail -20 "$out.log"; echo "demo: mrec demo failed"; exit 1; }
grep -v '^epoch' "$out.log" | sed -n '/^model  *Recall@20  *nDCG@20/,/^$/p'
value() { # part, model -> Recall@20 of the part's first table (part 1: test)
    awk -v part="$1" -v m="$2" '/^mrec demo, part /{n++; t=0} /^model  *Recall@20  *nDCG@20/{t++}
        n==part && t==1 && $1==m {print $2; exit}' "$out.log"
}
fail=0
label() { # text the demo must print
    if grep -qF "$1" "$out.log"; then echo "demo: prints \"$1\""; else echo "demo: does not print \"$1\""; fail=1; fi
}
label "MMRec's Baby interactions, DiffMM's split"
label "MMRec, published (same data, other split)"
label "DiffMM Table 1 (same split"
if grep -q "MMRec's split" "$out.log"; then echo "demo: calls the data \"MMRec's split\""; fail=1; fi
check() { # part model lo hi
    v=$(value "$1" "$2")
    if [ -z "$v" ] || ! awk -v v="$v" -v lo="$3" -v hi="$4" 'BEGIN{exit !(v >= lo && v <= hi)}'; then
        echo "demo: $2 Recall@20 '${v:-missing}' is outside [$3, $4]"; fail=1
    else
        echo "demo: $2 Recall@20 $v in [$3, $4]"
    fi
}
check 1 MostPop 0.045 0.055
check 1 BPRMF 0.050 0.066
check 1 LightGCN 0.064 0.080
if grep -q "mrec demo, part 2" "$out.log"; then
    check 2 BPRMF 0.005 0.060
    b=$(value 2 BPRMF); v=$(value 2 VBPR); f=$(value 2 FREEDOM)
    if awk -v b="$b" -v v="$v" -v f="$f" 'BEGIN{exit !(v > b && f > b)}'; then echo "demo: VBPR $v and FREEDOM $f beat BPRMF $b with text features"
    else echo "demo: text features did not help (BPRMF $b, VBPR $v, FREEDOM $f)"; fail=1; fi
else
    echo "demo: part 2 skipped (no MiniLM weights)"
fi
grep '^demo done' "$out.log"
exit $fail
