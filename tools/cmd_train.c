/* cmd_train.c: `mrec train --data ... --model ... --out DIR`: the command-line
 * front of one training run. Its options are the table below plus every model
 * hyper-parameter of the registry; once they check out it fills an
 * mrec_train_spec, trains through mrec_train and writes the run's folder:
 * DIR/results.tsv (one row per evaluated split, Elliot-style: model,
 * hyper-parameters, best epoch, metric@k columns), history.tsv, timing.tsv,
 * users.tsv and items.tsv (dense id -> original id), and on request
 * test_per_user.tsv and recommendations.tsv. (`mrec train CONFIG.yml` is an
 * Elliot experiment, cmd_elliot.c.)
 */
#include "../nn/mrec_io.h"
#include "mrec_options.h"
#include "mrec_parse.h"
#include "mrec_pipeline.h"
#include "mrec_tools.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum {
    O_DATA, O_FORMAT, O_DUPLICATES, O_SPLIT, O_SEED_SPLIT, O_FOLD, O_MIN_RATING, O_KCORE, O_KCORE_ONCE, O_PREFILTER, O_FEATURES, O_MISSING, O_KNOCKOUT,
    O_SAVE_SPLITS, O_CACHE, O_CLIP, O_ITEMS, O_ID_COLUMN, O_TEXT_COLUMN, O_IMAGES, O_IMAGE_COLUMN, O_MODEL, O_PARAMS, O_METRICS, O_K, O_SELECT, O_THRESHOLD, O_MASK_VALID, O_OUT, O_OVERWRITE, O_RESUME,
    O_SAVE_TOPK, O_PER_USER, O_SAVE, O_RESTORE, O_THREADS, O_DEVICE, O_PRECISION, N_OPTIONS
};

static const mrec_option OPTIONS[N_OPTIONS] = {
    [O_DATA] = {"--data", MREC_OPT_TEXT, "PATH", "the interactions; Elliot's fixed split as train,[valid,]test (format tsv)", .section = "data"},
    [O_FORMAT] = {"--format", MREC_OPT_ENUM, "inter|tsv|lightgcn",
                  "MMRec's .inter, Elliot's TSV (user item [rating [timestamp]]), LightGCN's train.txt and test.txt", "inter",
                  .choices = "inter|tsv|lightgcn"},
    [O_DUPLICATES] = {"--duplicates", MREC_OPT_ENUM, "drop|error", "a pair given again: kept once and counted, or refused", "drop",
                      .choices = "drop|error"},
    [O_SPLIT] = {"--split", MREC_OPT_TEXT, "HOW",
                 "a split made here instead of the data's own: mmrec (MMRec's rule); random:T[:V] and temporal:T[:V] (Elliot's "
                 "random_subsampling and temporal_hold_out, test ratio T, validation ratio V of the rest, numpy's stream as Elliot "
                 "draws it); elliot:TEST[/VALID], each part random:R, random:n=N, temporal:R, temporal:n=N or timestamp:SECONDS|DATE|best "
                 "(Elliot's test_ratio, leave_n_out, fixed_timestamp; random:R,folds=F and random:n=N,folds=F for its folds, kfold:F for "
                 "random_cross_validation); leave:N[:valid] (the N latest per user, users with more); "
                 "splitmix:T[:V] (mrec's own per-user random split)"},
    [O_SEED_SPLIT] = {"--seed-split", MREC_OPT_U64, "N", "the split's seed", "999"},
    [O_FOLD] = {"--fold", MREC_OPT_TEXT, "T[/V]", "with an elliot split of several folds: test fold T, validation fold V within it", "0/0"},
    [O_MIN_RATING] = {"--min-rating", MREC_OPT_REAL, "X", "interactions rated below X leave first", .lo = -1e9, .hi = 1e9},
    [O_KCORE] = {"--kcore", MREC_OPT_INT, "K", "users and items with fewer than K interactions leave, until none is left", "0 (none)", 0,
                 1000000},
    [O_KCORE_ONCE] = {"--kcore-once", MREC_OPT_SWITCH, NULL, "one round of --kcore instead"},
    [O_PREFILTER] = {"--prefilter", MREC_OPT_TEXT, "STEP,...",
                     "Elliot's prefiltering, in order: rating:X (global_threshold), user:K (user_k_core), item:K (item_k_core), "
                     "kcore:K (iterative_k_core), rounds:K:N (n_rounds_k_core)"},
    [O_FEATURES] = {"--features", MREC_OPT_TEXT, "NAME=PATH,...",
                    "item features per modality: a .npy matrix or a folder of <id>.npy (see below)"},
    [O_MISSING] = {"--missing", MREC_OPT_ENUM, "mean|drop", "items a modality lacks get its mean (MMRec), or leave with their interactions",
                   "mean", .choices = "mean|drop"},
    [O_KNOCKOUT] = {"--knockout", MREC_OPT_TEXT, "NAME[:noise]",
                    "a modality replaced by its mean, or by Gaussian noise of its mean and std, to measure what it brings"},
    [O_SAVE_SPLITS] = {"--save-splits", MREC_OPT_TEXT, "DIR", "the split used, as DIR/train.tsv, val.tsv and test.tsv (user, item, rating)"},
    [O_CACHE] = {"--cache", MREC_OPT_TEXT, "DIR|none", "kNN item graphs kept between runs, under a hash of the features, k and the weights",
                 "$MREC_CACHE, else ~/.cache/mrec"},
    [O_CLIP] = {"--clip", MREC_OPT_PATH, "DIR", "clip-e2e: a CLIP folder (config.json, model.safetensors, tokenizer, preprocessor_config.json)",
                .allow_dir = 1, .section = "clip-e2e's items (the CLIP towers read each item's photo and text)"},
    [O_ITEMS] = {"--items", MREC_OPT_PATH, "TABLE", "the item table (CSV or TSV with a header), every item of the data in it"},
    [O_ID_COLUMN] = {"--id-column", MREC_OPT_TEXT, "C", "its item id column", "id"},
    [O_TEXT_COLUMN] = {"--text-column", MREC_OPT_TEXT, "C", "its text column"},
    [O_IMAGES] = {"--images", MREC_OPT_PATH, "DIR|TABLE", "the photos by item id: a folder of <id>.<ext>, or an image table", .allow_dir = 1},
    [O_IMAGE_COLUMN] = {"--image-column", MREC_OPT_TEXT, "C", "or the table's column of photo paths (relative to its folder)"},
    [O_MODEL] = {"--model", MREC_OPT_TEXT, "NAME", "one of the models above", .section = "model"},
    [O_PARAMS] = {NULL, MREC_OPT_MODEL_PARAMS,
                  .section = "hyper-parameters (each model's default; a model leaves alone those it does not read)"},
    [O_METRICS] = {"--metrics", MREC_OPT_TEXT, "LIST", "of recall, precision, hr, mrr, ndcg, ndcg_graded, map, map_elliot; Elliot's efd, epc, gini, sentropy, "
                   "item_coverage, user_coverage, aplt, aclt, arp, pop_reo, pop_rsp",
                   "recall,ndcg,precision,map", .section = "evaluation (full ranking, training items masked)"},
    [O_K] = {"--k", MREC_OPT_LIST, "K,...", "cut-offs, ascending", "5,10,20,50", 1, 100000, .max_items = MREC_EVAL_MAX_K},
    [O_SELECT] = {"--select", MREC_OPT_TEXT, "METRIC@K", "the best epoch's metric, on validation (on test without a validation split)",
                  "recall@20"},
    [O_THRESHOLD] = {"--threshold", MREC_OPT_REAL, "X", "relevant: rating >= X (graded gains count from it)", "0", -1e9, 1e9},
    [O_MASK_VALID] = {"--mask-valid", MREC_OPT_SWITCH, NULL, "test masks the validation items too (MMRec masks training items only)"},
    [O_OUT] = {"--out", MREC_OPT_TEXT, "DIR", "the run's folder: built beside itself, it appears whole when training is done",
               .section = "output"},
    [O_OVERWRITE] = {"--overwrite", MREC_OPT_SWITCH, NULL, "replace an existing DIR (it stays as it was until the new one is whole)"},
    [O_RESUME] = {"--resume", MREC_OPT_SWITCH, NULL, "go on from where a stopped run into DIR was (its last evaluation)"},
    [O_SAVE_TOPK] = {"--save-topk", MREC_OPT_INT, "N", "DIR/recommendations.tsv: each user's N best items at the best epoch", "0 (none)", 0,
                     100000},
    [O_PER_USER] = {"--per-user", MREC_OPT_SWITCH, NULL, "DIR/test_per_user.tsv: each test user's metrics at the best epoch"},
    [O_SAVE] = {"--save", MREC_OPT_TEXT, "MODEL_DIR",
                "the trained model at the best epoch, for mrec recommend, similar and serve (a folder that appears whole)"},
    [O_RESTORE] = {"--restore", MREC_OPT_PATH, "MODEL_DIR",
                   "start from the parameters of a saved model (the same model on the same users and items), then train --epochs more",
                   .allow_dir = 1},
    [O_THREADS] = {"--threads", MREC_OPT_INT, "N", "threads", "0 (one per core)", 0, 1024, .section = "where it runs"},
    [O_DEVICE] = {"--device", MREC_OPT_ENUM, "auto|cpu|cuda",
                  "where the model trains and ranks: cuda refuses a model without a GPU path, auto takes the CPU then", "cpu",
                  .choices = "auto|cpu|cuda"},
    [O_PRECISION] = {"--precision", MREC_OPT_ENUM, "fp32|tf32|bf16",
                     "the GEMMs' precision in training and ranking (fp32 sums either way; the sparse products stay fp32): tf32 "
                     "on a GPU, bf16 on a GPU or a CPU with AVX-512 BF16; asking the CPU for one it lacks is an error (auto falls "
                     "back to fp32 with a notice)",
                     "fp32", .choices = "fp32|tf32|bf16"},
};

static char usage_text[4096];

/* The usage lines and the models, from the registry. */
static const char *usage_lines(void) {
    if (usage_text[0]) return usage_text;
    size_t at = (size_t)snprintf(usage_text, sizeof usage_text,
                                 "usage: mrec train --data PATH --model NAME --out DIR [options]\n"
                                 "       mrec train --data train.tsv,[valid.tsv,]test.tsv --format tsv ...   (Elliot's fixed splits)\n"
                                 "       mrec train CONFIG.yml [--out DIR]   (an Elliot experiment: mrec train CONFIG.yml --help)\n"
                                 "\n"
                                 "Trains with BPR and Adam (MMRec's protocol: early stopping on the validation metric, test\n"
                                 "reported at the best validation epoch; full ranking with training items masked).\n"
                                 "\nmodels:\n");
    for (int i = 0; i < mrec_model_count() && at < sizeof usage_text; i++) {
        const mrec_model_entry *e = mrec_model_at(i);
        at += (size_t)snprintf(usage_text + at, sizeof usage_text - at, "  %-10s %s%s\n", e->name, e->summary,
                               e->needs == MREC_NEEDS_ANY              ? "; needs --features"
                               : e->needs == MREC_NEEDS_VISUAL_TEXTUAL ? "; needs visual and textual --features"
                                                                       : "");
    }
    return usage_text;
}

static const char NOTES[] =
    "--eval-every N evaluates every N epochs and after the last; --patience counts evaluations.\n"
    "A (user, item) pair that appears more than once is kept once (its earliest split, then timestamp), the others\n"
    "counted and reported (--duplicates error refuses the file instead); NaN or infinite ratings, malformed numbers\n"
    "and empty train or test sets are errors naming the file and line. --split makes train/valid/test from a file\n"
    "without one (or replaces its split).\n"
    "\n"
    "Features: a .npy matrix is joined by id when NAME_ids.txt or item_ids.txt sits beside it, else row r is item\n"
    "id r as in MMRec and an item past the last row is an error; a folder of <id>.npy is Ducho's layout. Where a\n"
    "model takes one vector per item, the modalities are concatenated in the order given (MMRec's VBPR: textual,\n"
    "then visual). FREEDOM mixes the modalities' kNN graphs with visual 0.1 and the others sharing 0.9 (one\n"
    "modality: 1).\n"
    "\n"
    "Every run writes DIR/results.tsv, history.tsv (epoch, loss, the selection metric), timing.tsv, users.tsv and\n"
    "items.tsv. DIR is built beside itself and appears whole when training is done; an existing DIR is replaced\n"
    "only with --overwrite, and a second run into DIR at the same time is refused. While it trains, each\n"
    "evaluation writes the run's state beside it (checkpoint.safetensors in the folder being built: parameters,\n"
    "Adam's moments, the sampler, the best epoch so far): a run stopped on the way (killed, its machine taken back)\n"
    "goes on from its last evaluation with --resume, and ends with the bits of a run never stopped. A checkpoint of\n"
    "another run (model, data, seed, batch size, learning rate, device and precision) is refused, naming what\n"
    "differs; --resume leaves a finished DIR as it is.\n"
    "\n"
    "--save MODEL_DIR keeps the model as it was at the best epoch: model.safetensors (the users' and items' vectors\n"
    "whose dot products are its scores, each user's training items, the trained parameters, checksums), users.tsv,\n"
    "items.tsv and model.json. mrec recommend and mrec similar answer from it, and so does the C library\n"
    "(include/mrec.h). ItemKNN keeps its neighbour lists instead of vectors. --overwrite covers it too.\n"
    "--restore MODEL_DIR starts training from a saved model's parameters; the model, its users and items (in\n"
    "order) and its parameter shapes must be the same, or the run stops naming the difference.\n";

static const mrec_command TRAIN = {"train", NULL, NOTES, OPTIONS, N_OPTIONS, 0};


/* --features is NAME=PATH[,NAME=PATH...]: a pair without its name or path is a usage error, said before any file
 * is opened. */
static int features_well_formed(const char *list) {
    for (const char *p = list ? list : ""; *p;) {
        size_t len = strcspn(p, ",");
        const char *eq = memchr(p, '=', len);
        if (len && (!eq || eq == p || eq + 1 == p + len)) {
            fprintf(stderr, "mrec train: --features wants NAME=PATH[,NAME=PATH...], got '%.*s'\n", (int)len, p);
            return 0;
        }
        p += len + (p[len] == ',');
    }
    return 1;
}

/* Every input path up front, each part of a comma list (after NAME= with names): a FIFO or a device would block
 * or stream forever. */
static int inputs_readable(const char *list, const char *flag, int named) {
    for (const char *p = list ? list : ""; *p;) {
        char file[4096];
        size_t len = strcspn(p, ",");
        const char *eq = named ? memchr(p, '=', len) : NULL, *start = named ? (eq ? eq + 1 : NULL) : p;
        snprintf(file, sizeof file, "%.*s", start ? (int)(p + len - start) : 0, start ? start : "");
        if (start && mrec_check_input(file, flag, 1)) return fprintf(stderr, "mrec train: %s\n", mrec_error_detail()), 0;
        p += len + (p[len] == ',');
    }
    return 1;
}

int mrec_cmd_train(int argc, char **argv) {
    mrec_opt_value v[N_OPTIONS];
    mrec_train_spec s = mrec_train_defaults();
    mrec_command cmd = TRAIN;
    cmd.usage = usage_lines();
    int rc = mrec_options_parse(&cmd, argc, argv, v, &s.params, NULL, NULL);
    if (rc == MREC_OPTS_HELP) return 0;
    if (rc) return rc;
    if (!v[O_DATA].given || !v[O_MODEL].given || !v[O_OUT].given) {
        fprintf(stderr, "mrec train: --data, --model and --out are needed (mrec train --help)\n");
        return 1;
    }
    if (!(s.model = mrec_model_find(v[O_MODEL].text))) {
        char names[512];
        size_t at = 0;
        for (int i = 0; i < mrec_model_count() && at < sizeof names; i++)
            at += (size_t)snprintf(names + at, sizeof names - at, "%s%s", i ? ", " : "", mrec_model_at(i)->name);
        fprintf(stderr, "mrec train: --model: '%s' is not one of %s\n", v[O_MODEL].text, names);
        return 1;
    }
    s.data = v[O_DATA].text;
    if (v[O_FORMAT].given) s.format = v[O_FORMAT].text;
    s.duplicates = v[O_DUPLICATES].given && v[O_DUPLICATES].i == 1 ? MREC_DUPLICATES_ERROR : MREC_DUPLICATES_DROP;
    s.split = v[O_SPLIT].text;
    if (v[O_SEED_SPLIT].given) s.split_seed = v[O_SEED_SPLIT].u;
    if (v[O_FOLD].given) {
        char buf[64], *slash;
        long t = -1, f = 0;
        snprintf(buf, sizeof buf, "%s", v[O_FOLD].text);
        if ((slash = strchr(buf, '/'))) *slash = 0;
        if (mrec_parse_int(buf, 0, MREC_ELLIOT_MAX_FOLDS - 1, &t) || (slash && mrec_parse_int(slash + 1, 0, MREC_ELLIOT_MAX_FOLDS - 1, &f))) {
            fprintf(stderr, "mrec train: --fold '%s': T or T/V, whole numbers from 0 (%s)\n", v[O_FOLD].text, mrec_error_detail());
            return 1;
        }
        s.split_fold[0] = (int)t, s.split_fold[1] = (int)f;
        /* a fold the split does not make is refused here, before the data is read */
        int kind, n_test = 1, n_valid = 1;
        double a, b;
        mrec_elliot_part test, valid;
        if (s.split && !mrec_split_parse(s.split, &kind, &a, &b) && kind == 5) {
            snprintf(buf, sizeof buf, "%s", s.split + 7);
            if ((slash = strchr(buf, '/'))) *slash = 0;
            if (!mrec_elliot_part_parse(buf, &test)) n_test = mrec_elliot_part_folds(&test);
            if (slash && !mrec_elliot_part_parse(slash + 1, &valid)) n_valid = mrec_elliot_part_folds(&valid);
        }
        if (t >= n_test || f >= n_valid) {
            fprintf(stderr, "mrec train: --fold %s: %s makes %d test and %d validation folds\n", v[O_FOLD].text, s.split ? s.split : "the data's split",
                    n_test, n_valid);
            return 1;
        }
    }
    if (v[O_MIN_RATING].given) s.min_rating = (float)v[O_MIN_RATING].r;
    s.kcore = (int)v[O_KCORE].i, s.kcore_once = v[O_KCORE_ONCE].given;
    s.prefilter = v[O_PREFILTER].text;
    s.features = v[O_FEATURES].text, s.knockout = v[O_KNOCKOUT].text, s.save_splits = v[O_SAVE_SPLITS].text;
    s.missing_drop = v[O_MISSING].given && v[O_MISSING].i == 1;
    s.cache = v[O_CACHE].text;
    s.clip = v[O_CLIP].text, s.clip_items = v[O_ITEMS].text, s.clip_id_col = v[O_ID_COLUMN].text, s.clip_text_col = v[O_TEXT_COLUMN].text;
    s.clip_images = v[O_IMAGES].text, s.clip_image_col = v[O_IMAGE_COLUMN].text;
    if ((s.clip_items || s.clip_text_col || s.clip_images || s.clip_image_col) && !s.clip) {
        fprintf(stderr, "mrec train: --items, --text-column, --images and --image-column go with --clip DIR (clip-e2e)\n");
        return 1;
    }
    if (s.clip && s.model != mrec_model_find("clip-e2e")) {
        fprintf(stderr, "mrec train: --clip goes with --model clip-e2e, not %s\n", s.model->name);
        return 1;
    }
    if (v[O_K].given) {
        s.n_k = v[O_K].n;
        for (int i = 0; i < s.n_k; i++) s.k[i] = (int)v[O_K].list[i];
    }
    if (v[O_METRICS].given) {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", v[O_METRICS].text);
        s.n_metrics = 0;
        for (char *save, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            if (s.n_metrics == MREC_METRIC_COUNT || mrec_metric_parse(tok, &s.metrics[s.n_metrics]) != MREC_OK) {
                fprintf(stderr, "mrec train: --metrics: %s\n", s.n_metrics == MREC_METRIC_COUNT ? "too many" : mrec_error_detail());
                return 1;
            }
            s.n_metrics++;
        }
        if (!s.n_metrics) return fprintf(stderr, "mrec train: --metrics: none given\n"), 1;
    }
    if (v[O_SELECT].given) {
        const char *select = v[O_SELECT].text, *at = strchr(select, '@');
        char name[32];
        long k = 0;
        snprintf(name, sizeof name, "%.*s", at ? (int)(at - select) : 0, select);
        if (!at || mrec_parse_int(at + 1, 1, 100000, &k) || mrec_metric_parse(name, &s.select_metric)) {
            fprintf(stderr, "mrec train: --select wants metric@k, like recall@20, got '%s'\n", select);
            return 1;
        }
        s.select_k = (int)k;
    }
    if (v[O_THRESHOLD].given) s.threshold = (float)v[O_THRESHOLD].r;
    s.mask_valid = v[O_MASK_VALID].given;
    s.save_topk = (int)v[O_SAVE_TOPK].i, s.per_user = v[O_PER_USER].given;
    s.threads = (int)v[O_THREADS].i;
    if (v[O_DEVICE].given) s.device = v[O_DEVICE].i == 0 ? MREC_WANT_AUTO : v[O_DEVICE].i == 1 ? MREC_WANT_CPU : MREC_WANT_CUDA;
    if (v[O_PRECISION].given) mrec_precision_parse(v[O_PRECISION].text, &s.precision); /* checked against its choices */
    s.log = mrec_train_log_stdout, s.notice = mrec_train_notice_stderr;
    int kind;
    double a, b;
    if (s.split && mrec_split_parse(s.split, &kind, &a, &b)) { /* checked before the data is read */
        fprintf(stderr, "mrec train: --split: %s\n", mrec_error_detail());
        return 1;
    }
    mrec_prefilter steps[16];
    int n_steps;
    if (s.prefilter && mrec_prefilter_parse(s.prefilter, steps, 16, &n_steps)) {
        fprintf(stderr, "mrec train: --prefilter: %s\n", mrec_error_detail());
        return 1;
    }
    if (!features_well_formed(s.features)) return 1;
    if (!inputs_readable(s.data, "--data", 0) || !inputs_readable(s.features, "--features", 1)) return 2;
    int commas = 0;
    for (const char *p = s.data; *p; p++) commas += *p == ',';
    if (commas && (strcmp(s.format, "tsv") || commas > 2)) {
        fprintf(stderr, "mrec train: --data with commas is Elliot's fixed split, train,[valid,]test, in --format tsv\n");
        return 1;
    }

    const char *save = v[O_SAVE].text;
    if (save && !strcmp(save, v[O_OUT].text)) {
        fprintf(stderr, "mrec train: --save and --out name the same folder; give the model a folder of its own\n");
        return 1;
    }
    s.keep_model = save != NULL;
    s.restore = v[O_RESTORE].text;

    /* the output folders are built beside themselves and appear whole */
    int flags = v[O_OVERWRITE].given ? MREC_OUT_OVERWRITE : 0;
    mrec_out_dir od = {.lock_fd = -1}, sd = {.lock_fd = -1};
    mrec_status st = mrec_out_begin(&od, v[O_OUT].text, flags | (v[O_RESUME].given ? MREC_OUT_RESUME : 0));
    if (!st && save && (st = mrec_out_begin(&sd, save, flags))) mrec_out_abort(&od);
    /* the training's state, in the folder being built: a killed run leaves it for --resume, a finished one takes it
     * out before the folder appears */
    char checkpoint[4300], finished[4200];
    snprintf(checkpoint, sizeof checkpoint, "%s/checkpoint.safetensors", od.scratch);
    snprintf(finished, sizeof finished, "%s/results.tsv", v[O_OUT].text);
    s.checkpoint = checkpoint, s.resume = od.resumed;
    if (!st && od.resumed && !v[O_OVERWRITE].given && access(checkpoint, F_OK) != 0 && access(finished, F_OK) == 0) { /* nothing stopped */
        fprintf(stderr, "mrec train: %s is a finished run; --resume leaves it as it is (--overwrite trains it again)\n", v[O_OUT].text);
        mrec_out_abort(&od), mrec_out_abort(&sd);
        return 0;
    }
    if (st) {
        fprintf(stderr, "mrec train: the output folder: %s: %s\n", mrec_strerror(st), mrec_error_detail());
        return st == MREC_ERR_NOMEM ? 3 : 2;
    }
    mrec_train_result r;
    if ((st = mrec_train(&s, &r))) rc = mrec_train_fail("train", &r, st);
    if (!rc && (st = mrec_train_write(od.scratch, &s, &r))) rc = mrec_train_fail("train", &(mrec_train_result){.stage = "writing"}, st);
    if (!rc && save && (st = mrec_train_save(sd.scratch, &r)))
        rc = mrec_train_fail("train", &(mrec_train_result){.stage = "saving the model"}, st);
    if (!rc && unlink(checkpoint) != 0 && errno != ENOENT)
        rc = mrec_train_fail("train", &(mrec_train_result){.stage = "the output folder"},
                             mrec_fail(MREC_ERR_IO, "%s: %s", checkpoint, strerror(errno)));
    if (!rc && (st = mrec_out_commit(&od))) rc = mrec_train_fail("train", &(mrec_train_result){.stage = "the output folder"}, st);
    if (!rc && save && (st = mrec_out_commit(&sd))) rc = mrec_train_fail("train", &(mrec_train_result){.stage = "the model folder"}, st);
    mrec_out_abort(&od), mrec_out_abort(&sd);
    mrec_train_result_free(&r);
    return rc;
}
