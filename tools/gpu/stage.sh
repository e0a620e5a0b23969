#!/bin/sh
# stage.sh (make gpu-deps runs it): copies the part of ../shared/data that make gpu-check reads into
# shared/data, which travels with the working tree to a GPU machine (../shared does not; /shared/ is
# ignored by git): Gowalla for bench_gpu_gowalla, Baby's split for bench_multimodal and bench_recent,
# the H&M article texts, the all-MiniLM-L6-v2
# tokenizer files and as many H&M photos as the tree's 64 MiB allow (every one when they fit; else
# the first ones in path order, which bench/catalogue.sh then counts) for bench/catalogue.sh.
set -eu
cd "$(dirname "$0")/../.."
src=${MREC_DATA:-../shared/data}
[ -d "$src" ] || { echo "stage.sh: $src not found: nothing staged"; exit 0; }
rm -rf shared/data
mkdir -p shared/data/hm-fashion-sample/original shared/data/tokenizers shared/data/amazon-baby-mmrec
copy() {
    [ -e "$src/$1" ] || return 0
    cp -r "$src/$1" "shared/data/$1" && chmod -R u+w "shared/data/$1"
}
copy gowalla-lightgcn
copy amazon-baby-mmrec/baby_split.tsv
copy hm-fashion-sample/original/articles_train_sample.csv
copy tokenizers/all-MiniLM-L6-v2
# what travels besides the photos: the tracked files, .deps and the data above; 56 MiB in all. The device
# tool refused a tree of 62.3 MiB by this count (65.3 million bytes), so its limit is not counted the same way:
# the margin is wide
used=$(( $(git ls-files -z | xargs -0 cat | wc -c) + $(du -sb shared .deps 2>/dev/null | awk '{s += $1} END {print s}') ))
room=$(( 56 * 1048576 - used ))
n=0
if [ -d "$src/hm-fashion-sample/images" ]; then
    find "$src/hm-fashion-sample/images" -name '*.jpg' | sort | while read -r f; do
        size=$(wc -c < "$f")
        [ "$size" -le "$room" ] || break
        room=$(( room - size ))
        rel=${f#"$src/"}
        mkdir -p "shared/data/$(dirname "$rel")"
        cp "$f" "shared/data/$rel"
    done
    n=$(find shared/data/hm-fashion-sample/images -name '*.jpg' | wc -l)
fi
echo "staged under shared/data: $(du -sh shared/data | cut -f1), $n of" \
    "$(find "$src/hm-fashion-sample/images" -name '*.jpg' 2>/dev/null | wc -l) H&M photos (the working tree travels up to 64 MiB)"
