#!/bin/sh
# catalogue.sh: the whole H&M catalogue extracted, images and texts, and where the time goes.
#
#   bench/catalogue.sh RESNET50 TEXT_MODEL [THREADS]
#
# RESNET50: a torchvision ResNet50 (tools/golden/vision.py --full DIR writes DIR/resnet50 with
# random weights: the time is the same as a trained one's). TEXT_MODEL: a sentence-transformers
# folder (all-MiniLM-L6-v2, all-mpnet-base-v2). Data from ../shared/data/hm-fashion-sample
# (MREC_DATA to point elsewhere): its 1,674 photos and the 11,800 article descriptions.
#
# mrec runs `extract-image` and `extract-text` on the CPU, each printing where its time went
# (decoding overlaps the encoding on --decode-threads threads). With MREC_PYTHON set to a Python
# with torch, torchvision and sentence-transformers, bench/peers/catalogue_peer.py does the same
# work with PIL, torchvision and sentence-transformers on as many threads, in the same run.
# MREC_DEVICE=cuda (and MREC_PRECISION=tf32 or bf16) extracts on the GPU instead, the peer too and
# at the same precision (build/cuda/mrec then, unless MREC names another). MREC_CATALOGUE_ITEMS=N lists the photos over and over
# (each time under new ids) until the image table has N items, for a catalogue larger than the
# sample (N = 10000: where a GPU leaves the time, decoding or encoding).
set -eu
[ $# -ge 2 ] || { echo "usage: bench/catalogue.sh RESNET50 TEXT_MODEL [THREADS]" >&2; exit 2; }
resnet=$1 text=$2 threads=${3:-2} device=${MREC_DEVICE:-cpu} precision=${MREC_PRECISION:-fp32}
data=$(cd "${MREC_DATA:-../shared/data}/hm-fashion-sample" && pwd) # absolute: the image table's paths are read from its folder
mrec=${MREC:-build/$([ "$device" = cuda ] && echo cuda || echo cpu)/mrec}
[ -d "$data/images" ] || { echo "catalogue.sh: $data/images not found" >&2; exit 2; }
[ -e "$mrec" ] || { echo "catalogue.sh: $mrec not found (make)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
{ printf 'id\tpath\n'; find "$data/images" -name '*.jpg' | sort | awk -F/ -v n="${MREC_CATALOGUE_ITEMS:-0}" '
    { id[NR] = $NF; sub(/\.jpg$/, "", id[NR]); path[NR] = $0 }
    END { total = n > NR ? n : NR
          for (k = 0; k < total; k++) { i = k % NR + 1; print (k < NR ? id[i] : id[i] "-" int(k / NR)) "\t" path[i] } }'
} > "$work/images.tsv"
echo "== mrec extract-image ($resnet, $threads threads, $device, $precision)"
"$mrec" extract-image --model "$resnet" --images "$work/images.tsv" --out "$work/img" --device "$device" --precision "$precision" \
    --threads "$threads" 2>&1 |
    grep -E '^(mrec extract-image|time:)' | tee "$work/img.log"
echo "== mrec extract-text ($text, $threads threads, $device, $precision)"
"$mrec" extract-text --model "$text" --input "$data/original/articles_train_sample.csv" --id-column article_id \
    --text-column detail_desc --out "$work/txt" --device "$device" --precision "$precision" --threads "$threads" 2>&1 |
    grep -E '^(mrec extract-text|time:)' | tee "$work/txt.log"
# mrec's wall times (decode + encode for images, everything for texts)
img=$(sed -n 's/.* in \([0-9.]*\) s,.*/\1/p' "$work/img.log")
txt=$(sed -n 's/.* in \([0-9.]*\) s,.*/\1/p' "$work/txt.log")
[ -n "$img" ] && [ -n "$txt" ] || { echo "catalogue.sh: an extraction failed (above)" >&2; exit 1; }
[ -n "${MREC_PYTHON:-}" ] || { echo "(set MREC_PYTHON for the PyTorch peer)"; exit 0; }
echo "== PyTorch peer"
MREC_PEER_DEVICE=$device MREC_PEER_PRECISION=$precision "$MREC_PYTHON" bench/peers/catalogue_peer.py "$resnet" "$work/images.tsv" "$text" \
    "$data/original/articles_train_sample.csv" "$threads" 2>/dev/null | tee "$work/peer.log"
# against the peer's
[ -s "$work/peer.log" ] || { echo "catalogue.sh: the peer printed nothing" >&2; exit 1; }
awk -v img="$img" -v txt="$txt" '
    $1 == "image_decode" { dec = $2; n = $3 } $1 == "image_encode" { enc = $2 } $1 == "text" { t = $2; m = $3 }
    END {
        printf "%-28s %10s %10s %8s\n", "", "mrec s", "peer s", "ratio"
        printf "%-28s %10.1f %10.1f %7.2fx\n", n " photos, decode + encode", img, dec + enc, (dec + enc) / img
        printf "%-28s %10.1f %10.1f %7.2fx\n", m " texts, tokenize + encode", txt, t, t / txt
    }' "$work/peer.log"
