#!/bin/sh
# template_tiktok.sh: the Ducho-meets-Elliot benchmark's config_elliot (its six multimodal models and grids,
# bench/elliot_template_models.yml) on TikTok, whose item features are real: the MMSSL/DiffMM split and its
# 128-d visual and acoustic features (../shared/data/tiktok-mmssl). The template's two slots are filled with
# visual (VisualAttribute) and acoustic (TextualAttribute: Elliot's models read a slot's vectors, not its
# name; FREEDOM's mw gives the second slot 0.9). Metrics at 20: Recall, nDCG, EFD, Gini, APLT, ItemCoverage.
# Not a test: it prints the best point of each model on validation, with its test metrics.
#
#   bench/template_tiktok.sh [WORK_DIR]
#   GRID=quick   lr 0.001 and 0.005 for VBPR, BM3, FREEDOM and LATTICE, 0.001 and 0.01 for GRCN, 0.001
#                for NGCF-M, the smallest l_w (BM3: reg_weight 0.1): 11 points instead of the template's 60
#   EPOCHS=N     caps every model's epochs (default: the template's 200)
#   THREADS=N    default: one per core
set -eu
cd "$(dirname "$0")/.."
root=$(pwd)
work=${1:-runs/template-tiktok}
data=${MREC_DATA:-../shared/data}/tiktok-mmssl
mrec=$root/bin/mrec
[ -x "$mrec" ] || mrec=$root/build/cpu/mrec
[ -r "$data/tiktok_split.tsv" ] || { echo "template_tiktok.sh: $data/tiktok_split.tsv: cannot read" >&2; exit 2; }
data=$(cd "$data" && pwd)
mkdir -p "$work"
work=$(cd "$work" && pwd)

# the split's three parts as Elliot's fixed files (split 0 train, 1 valid, 2 test)
for part in 0:train 1:val 2:test; do
    awk -F'\t' -v s="${part%%:*}" 'NR > 1 && $3 == s { print $1 "\t" $2 "\t1" }' "$data/tiktok_split.tsv" > "$work/${part#*:}.tsv"
done
cat > "$work/config.yml" <<CFG
experiment:
  backend: pytorch
  data_config:
    strategy: fixed
    train_path: train.tsv
    validation_path: val.tsv
    test_path: test.tsv
    side_information:
      - dataloader: VisualAttribute
        visual_features: $data/original_diffmm/image_feat.npy
      - dataloader: TextualAttribute
        textual_features: $data/original_diffmm/audio_feat.npy
  dataset: tiktok
  top_k: 20
  evaluation:
    cutoffs: [ 20 ]
    simple_metrics: [ Recall, nDCG, EFD, Gini, APLT, ItemCoverage ]
  gpu: 0
  models:
CFG
if [ "${GRID:-}" = quick ]; then
    # one model's block at a time: its lr list and its regularization lists cut down
    awk '/^    external\./ { m = $1 }
         /^      lr:/ { print "      lr: " (m ~ /VBPR|BM3|FREEDOM|LATTICE/ ? "[ 0.001, 0.005 ]" : m ~ /GRCN/ ? "[ 0.001, 0.01 ]" : "[ 0.001 ]"); next }
         /^      l_w:/ { print "      l_w: [ 1e-5 ]"; next }
         /^      reg_weight:/ { print "      reg_weight: [ 0.1 ]"; next }
         { print }' bench/elliot_template_models.yml >> "$work/config.yml"
else
    cat bench/elliot_template_models.yml >> "$work/config.yml"
fi
(cd "$work" && "$mrec" train config.yml --out results --overwrite --threads "${THREADS:-0}" ${EPOCHS:+--epochs "$EPOCHS"}) > "$work/train.log" 2>&1 ||
    { tail -n 20 "$work/train.log"; exit 1; }
sed -n '/^best of each model/,/^time:/p' "$work/train.log"
