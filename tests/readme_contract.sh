#!/bin/sh
# readme_contract.sh: runs the README's quick-start lines, as written, in a
# fresh clone of this repository's HEAD placed in an empty folder: no
# ../shared beside it, no downloaded weights, no build outputs. This is what
# a new user gets; both lines must succeed and the test line must end in
# "N passed, 0 failed". Needs root for the apt-get line (or sudo).
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git clone -q "$repo" "$work/mrec"
cd "$work/mrec"
# The quick-start block: the lines of the first ```sh block after "## Quick start".
awk '/^## Quick start/{q=1} q && /^```sh/{b=1; next} b && /^```/{exit} b' README.md > "$work/lines"
[ "$(wc -l < "$work/lines")" -eq 2 ] || { echo "readme: expected two quick-start lines"; cat "$work/lines"; exit 1; }
[ "$(id -u)" -eq 0 ] || sed -i 's/apt-get /sudo apt-get /g' "$work/lines"
n=0
while IFS= read -r line; do
    n=$((n + 1))
    echo "readme line $n: $line"
    sh -c "$line" > "$work/out$n" 2>&1 || { grep -E '^FAIL' "$work/out$n"; tail -30 "$work/out$n"; echo "readme line $n failed"; exit 1; }
    tail -5 "$work/out$n"
done < "$work/lines"
last=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$work/out2" | tail -n 1)
case "$last" in
    *" passed, 0 failed"*) echo "readme: both lines pass on a fresh clone ($last)" ;;
    *) echo "readme: the test line did not end in 0 failed: '$last'"; exit 1 ;;
esac
