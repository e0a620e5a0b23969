#!/bin/sh
# ducho_elliot.sh: the Ducho-meets-Elliot benchmark's pipeline (its run_experiments.sh) with mrec in place
# of Ducho and Elliot, on the H&M sample: the benchmark's config_ducho (six extractors), its Elliot split
# config, its id mapping, and its five config_elliot settings, each file as config_templates.py writes it
# for a dataset named hm. Not a test: it prints the time of each step and the best results.
#
#   bench/ducho_elliot.sh WEIGHTS_DIR [WORK_DIR]
#   ITEMS=N    the N most purchased items only (default: all 1,674 of data/hm/items.tsv)
#   EPOCHS=N   mrec train --epochs N (default: the template's 200)
#   BATCH=8    the template's batch_size (it only names the output folders)
#
# WEIGHTS_DIR holds the six extractors under the names the config gives them: resnet50/,
# sentence-transformers/all-mpnet-base-v2/, openai/clip-vit-base-patch16/, kakaobrain/align-base/,
# BAAI/AltCLIP/ (weights/fetch downloads them), and MMFashion.pt, the benchmark's own file. Images come
# from ../shared/data/hm-fashion-sample (MREC_DATA to point elsewhere), the item texts from data/hm/items.tsv,
# the purchases from hm_2core_interactions.tsv (one row per customer and article).
set -eu
cd "$(dirname "$0")/.."
root=$(pwd)
[ $# -ge 1 ] || { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
weights=$(cd "$1" && pwd)
work=${2:-runs/ducho-elliot}
data=${MREC_DATA:-../shared/data}/hm-fashion-sample
batch=${BATCH:-8}
mrec=$root/bin/mrec
[ -x "$mrec" ] || mrec=$root/build/cpu/mrec
for f in resnet50 sentence-transformers/all-mpnet-base-v2 openai/clip-vit-base-patch16 kakaobrain/align-base BAAI/AltCLIP MMFashion.pt; do
    [ -e "$weights/$f" ] || { echo "ducho_elliot.sh: $weights/$f: missing" >&2; exit 2; }
done
[ -r "$data/hm_2core_interactions.tsv" ] || { echo "ducho_elliot.sh: $data/hm_2core_interactions.tsv: cannot read" >&2; exit 2; }
data=$(cd "$data" && pwd)
rm -rf "$work"
mkdir -p "$work/Ducho/local/data/demo_hm/images" "$work/Ducho/demos/demo_hm" "$work/data/hm" "$work/config_files"
work=$(cd "$work" && pwd)
demo=$work/Ducho/local/data/demo_hm
t0=$(date +%s)

# the items: the ITEMS most purchased (ties by id), each with its photo and text
tab=$(printf '\t')
tail -n +2 "$data/hm_2core_interactions.tsv" | cut -f2 | sort | uniq -c | sort -k1,1nr -k2,2 | awk '{print $2}' |
    head -n "${ITEMS:-1000000}" | sort > "$work/items.txt"
find "$data/images" -name '*.jpg' | awk -F/ '{id=$NF; sub(/\.jpg$/, "", id); print id "\t" $0}' | sort > "$work/photos.tsv"
join -t "$tab" "$work/items.txt" "$work/photos.tsv" | while IFS="$tab" read -r id path; do
    ln -s "$path" "$demo/images/$id.jpg"
done
{ printf 'asin\tdescription\n'; tail -n +2 data/hm/items.tsv | sort | join -t "$tab" "$work/items.txt" -; } > "$demo/meta.tsv"
ln -s "$weights/MMFashion.pt" "$work/Ducho/demos/demo_hm/MMFashion.pt"
echo "items: $(wc -l < "$work/items.txt"), photos: $(ls "$demo/images" | wc -l), texts: $(($(wc -l < "$demo/meta.tsv") - 1))"

# config_ducho, as config_templates.py writes it for dataset hm
cat > "$work/Ducho/config.yml" <<EOF
dataset_path: ./local/data/demo_hm
gpu list: 0

visual:
    items:
        input_path: images
        output_path: visual_embeddings_$batch
        model: [
                { model_name: ResNet50,  output_layers: avgpool, reshape: [224, 224], preprocessing: zscore, backend: torch, batch_size: $batch},
                { model_name: ./demos/demo_hm/MMFashion.pt,  output_layers: avgpool, reshape: [224, 224], preprocessing: zscore, backend: torch, batch_size: $batch},
        ]

textual:
    items:
        input_path: meta.tsv
        item_column: asin
        text_column: description
        output_path: textual_embeddings_$batch
        model: [
            { model_name: sentence-transformers/all-mpnet-base-v2,  output_layers: 1, clear_text: False, backend: sentence_transformers, batch_size: $batch},
          ]

visual_textual:
    items:
        input_path: {visual: images, textual: meta.tsv}
        item_column: asin
        text_column: description
        output_path: {visual: visual_embeddings_$batch, textual: textual_embeddings_$batch}
        model: [
            { model_name: openai/clip-vit-base-patch16, backend: transformers, output_layers: 1, batch_size: $batch},
            { model_name: kakaobrain/align-base, backend: transformers, output_layers: 1, batch_size: $batch},
            { model_name: BAAI/AltCLIP, backend: transformers, output_layers: 1, batch_size: $batch},
        ]
EOF
(cd "$work/Ducho" && "$mrec" extract config.yml --weights "$weights") > "$work/extract.log" 2>&1 ||
    { tail -n 20 "$work/extract.log"; exit 1; }
grep '^time: ' "$work/extract.log"
t1=$(date +%s)
echo "extraction: $((t1 - t0)) s"
mv "$demo/visual_embeddings_$batch" "$demo/textual_embeddings_$batch" "$work/data/hm/"

# the purchases of those items, split by the benchmark's split config (Elliot's random_subsampling)
tail -n +2 "$data/hm_2core_interactions.tsv" | awk -F'\t' '{print $2 "\t" $1}' | sort | join -t "$tab" "$work/items.txt" - |
    awk -F'\t' '{print $2 "\t" $1 "\t1"}' > "$work/data/hm/reviews.tsv"
cat > "$work/config_files/split_hm.yml" <<'EOF'
experiment:
  backend: pytorch
  data_config:
    strategy: dataset
    dataset_path: ../data/{0}/reviews.tsv
  splitting:
    save_on_disk: True
    save_folder: ../data/{0}_splits/
    test_splitting:
      strategy: random_subsampling
      test_ratio: 0.2
    validation_splitting:
      strategy: random_subsampling
      test_ratio: 0.1
  dataset: hm
  top_k: 20
  evaluation:
    cutoffs: [ 10, 20 ]
    simple_metrics: [ Recall, nDCG ]
  gpu: 0
  external_models_path: ../external/models/__init__.py
  models:
    MostPop:
      meta:
        verbose: True
        save_recs: True
EOF
(cd "$work/config_files" && "$mrec" train split_hm.yml --out "$work/results/split") > "$work/split.log" 2>&1 || { tail -n 20 "$work/split.log"; exit 1; }
mv "$work/data/hm_splits/0/test.tsv" "$work/data/hm/test.tsv"
mv "$work/data/hm_splits/0/0/train.tsv" "$work/data/hm/train.tsv"
mv "$work/data/hm_splits/0/0/val.tsv" "$work/data/hm/val.tsv"
rm -rf "$work/data/hm_splits"
echo "purchases: $(wc -l < "$work/data/hm/reviews.tsv") (train $(wc -l < "$work/data/hm/train.tsv"), val $(wc -l < "$work/data/hm/val.tsv"), test $(wc -l < "$work/data/hm/test.tsv"))"

# mapping.py: users and items numbered in order of first appearance over train, val and test, the three
# files written with those numbers, and each item's feature file of every setting saved under its number
# (links here). The split reads ids as pandas does, as numbers (0372860001 -> 372860001), so the
# feature files, named by the full id, are found through the id's digits.
cat "$work/data/hm/train.tsv" "$work/data/hm/val.tsv" "$work/data/hm/test.tsv" | awk -F'\t' -v out="$work/data/hm" '
    !($1 in u) { u[$1] = nu++ } !($2 in it) { it[$2] = ni++; print $2 "\t" it[$2] > (out "/items_indexed.tsv") }
    END { close(out "/items_indexed.tsv") }'
for f in train val test; do
    awk -F'\t' 'FNR == 1 { k++ } k <= 3 { if (!($1 in u)) u[$1] = nu++; if (!($2 in it)) it[$2] = ni++; next }
        { print u[$1] "\t" it[$2] "\t" $3 }' "$work/data/hm/train.tsv" "$work/data/hm/val.tsv" "$work/data/hm/test.tsv" \
        "$work/data/hm/$f.tsv" > "$work/data/hm/${f}_indexed.tsv"
done
for leaf in torch/ResNet50/avgpool torch/MMFashion/avgpool transformers/openai/clip-vit-base-patch16/1 \
            transformers/kakaobrain/align-base/1 transformers/BAAI/AltCLIP/1; do
    mkdir -p "$work/data/hm/visual_embeddings_indexed_$batch/$leaf"
done
for leaf in sentence_transformers/sentence-transformers/all-mpnet-base-v2/1 transformers/openai/clip-vit-base-patch16/1 \
            transformers/kakaobrain/align-base/1 transformers/BAAI/AltCLIP/1; do
    mkdir -p "$work/data/hm/textual_embeddings_indexed_$batch/$leaf"
done
while IFS="$tab" read -r id n; do
    full=$(grep -m 1 "^0*$id\$" "$work/items.txt")
    for d in "$work/data/hm"/*_embeddings_indexed_$batch/*/*/*/ "$work/data/hm"/*_embeddings_indexed_$batch/*/*/*/*/; do
        src=$(echo "$d" | sed "s|_indexed_$batch/|_$batch/|")
        [ -f "$src$full.npy" ] && ln -sf "$src$full.npy" "$d$n.npy"
    done
done < "$work/data/hm/items_indexed.tsv"

# the five settings of config_elliot: the models and grids as config_templates.py writes them
setting() { # N VISUAL_PATH TEXTUAL_PATH
    cat > "$work/config_files/hm_$1_$batch.yml" <<EOF
experiment:
  backend: pytorch
  data_config:
    strategy: fixed
    train_path: ../data/{0}/train_indexed.tsv
    validation_path: ../data/{0}/val_indexed.tsv
    test_path: ../data/{0}/test_indexed.tsv
    side_information:
      - dataloader: VisualAttribute
        visual_features: ../data/{0}/visual_embeddings_indexed_$batch/$2
      - dataloader: TextualAttribute
        textual_features: ../data/{0}/textual_embeddings_indexed_$batch/$3
  dataset: hm
  top_k: 20
  evaluation:
    cutoffs: [ 20 ]
    simple_metrics: [ Recall, Precision, nDCG, HR ]
  gpu: 0
  external_models_path: ../external/models/__init__.py
  models:
EOF
    cat "$root/bench/elliot_template_models.yml" >> "$work/config_files/hm_$1_$batch.yml"
}
setting 1 torch/ResNet50/avgpool sentence_transformers/sentence-transformers/all-mpnet-base-v2/1
setting 2 transformers/openai/clip-vit-base-patch16/1 transformers/openai/clip-vit-base-patch16/1
setting 3 torch/MMFashion/avgpool sentence_transformers/sentence-transformers/all-mpnet-base-v2/1
setting 4 transformers/kakaobrain/align-base/1 transformers/kakaobrain/align-base/1
setting 5 transformers/BAAI/AltCLIP/1 transformers/BAAI/AltCLIP/1
for k in 1 2 3 4 5; do
    t2=$(date +%s)
    (cd "$work/config_files" && "$mrec" train "hm_${k}_$batch.yml" --out "$work/results/setting_$k" ${EPOCHS:+--epochs "$EPOCHS"}) > "$work/train_$k.log" 2>&1 ||
        { tail -n 20 "$work/train_$k.log"; exit 1; }
    echo "setting $k ($(sed -n "s/.*visual_features: .*indexed_$batch\/\(.*\)/\1/p" "$work/config_files/hm_${k}_$batch.yml")): $(($(date +%s) - t2)) s"
    sed -n '/^best of each model/,/^time:/p' "$work/train_$k.log"
done
