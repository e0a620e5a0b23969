/* fuzz_checkpoint.c: libFuzzer target for the reader of a training run's
 * checkpoint (recsys/checkpoint.c), as `mrec train --resume` meets it: any
 * file may be refused, nothing may crash or leak, and an accepted one leaves
 * the run in a state its next epoch can take: the sampler's pairs a
 * permutation of the training pairs and its users those with pairs, every
 * kept item id inside the catalogue (or -1 past a neighbour list's end),
 * the numbers in the ranges a run leaves them in.
 *
 * The run is fixed: four users, six items and eight training pairs, a model
 * of two parameters with one state word that keeps, at its best epoch,
 * either embeddings of 3 dimensions or 2 neighbours an item; each input is
 * read by both. Their own checkpoints are the seeds
 * (tests/fuzz/corpus/fuzz_checkpoint): `MREC_FUZZ_SEED=DIR
 * build/fuzz/fuzz_checkpoint -runs=0` writes them into DIR. */
#include "../../recsys/recsys_internal.h"
#include "scratch.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { U = 4, I = 6, DIM = 3, KNN = 2 };

static int64_t row_ptr[U + 1] = {0, 2, 4, 7, 8};
static int32_t col[8] = {0, 3, 1, 2, 0, 4, 5, 1};
static float val[8] = {1, 1, 1, 1, 1, 1, 1, 1};
static const mrec_user_items train = {U, I, row_ptr, col, val};

typedef struct {
    mrec_context *ctx;
    mrec_model m;
    mrec_optimizer adam;
    mrec_bpr_sampler sampler;
    mrec_fit_options opt;
    mrec_fit_result out;
    float param[2][12], grad[2][12];
    uint64_t word;
} run;

static mrec_status no_embeddings(void *self, float *users, float *items) {
    (void)self, (void)users, (void)items;
    return MREC_OK;
}
static mrec_status no_neighbours(void *self, int32_t *nbr, float *sim) {
    (void)self, (void)nbr, (void)sim;
    return MREC_OK;
}

/* kind 0: a model with embeddings; 1: one with neighbour lists */
static void run_open(run *r, int kind) {
    memset(r, 0, sizeof *r);
    mrec_context_options o = mrec_context_defaults();
    o.device = MREC_WANT_CPU, o.n_threads = 1;
    if (mrec_context_create(&r->ctx, &o)) abort();
    r->m.name = "fuzz", r->m.n_params = 2;
    if (kind == 0) r->m.embed_dim = DIM, r->m.embeddings = no_embeddings;
    else r->m.knn_k = KNN, r->m.neighbours = no_neighbours;
    r->m.state[0] = &r->word, r->m.n_state = 1;
    mrec_adam_init(&r->adam, 0.01f, 0);
    for (int q = 0; q < 2; q++) {
        r->m.param[q] = r->param[q], r->m.grad[q] = r->grad[q], r->m.size[q] = 12;
        if (mrec_adam_add(&r->adam, r->param[q], r->grad[q], 12)) abort();
    }
    if (mrec_bpr_sampler_init(&r->sampler, &train)) abort();
    r->opt = mrec_fit_defaults();
    r->opt.seed = 7, r->opt.batch_size = 4, r->opt.save_topk = 3, r->opt.keep_model = 1;
}

static void run_close(run *r) {
    mrec_fit_result_free(&r->out);
    mrec_bpr_sampler_free(&r->sampler);
    mrec_adam_free(&r->adam);
    mrec_context_destroy(r->ctx);
}

/* A seed: this run after an epoch, as mrec_fit would leave it. */
static void write_seed(const char *path, int kind) {
    run r;
    run_open(&r, kind);
    mrec_rng rng = {7};
    mrec_bpr_sampler_epoch(&r.sampler, &rng);
    for (int q = 0; q < 2; q++)
        for (int k = 0; k < 12; k++) r.param[q][k] = 0.1f * (float)(k - q), r.adam.m[q][k] = 0.01f * k, r.adam.v[q][k] = 0.001f * k;
    r.adam.step = 2, r.adam.steps[0] = 2, r.adam.steps[1] = 1, r.word = 12345;
    static int32_t topk[U * 3] = {1, 2, 4, 0, 3, 5, 1, 2, 3, 0, 2, 3};
    static int32_t nbr[I * KNN] = {1, 2, 0, -1, 5, 4, 2, 1, 3, -1, 0, 1};
    static float sim[I * KNN], users[U * DIM], items[I * DIM];
    for (int k = 0; k < I * KNN; k++) sim[k] = nbr[k] < 0 ? 0 : 1.0f / (k + 1);
    r.out.topk = topk;
    if (kind == 0) r.out.users = users, r.out.items = items, r.out.embed_dim = DIM;
    else r.out.nbr = nbr, r.out.sim = sim, r.out.knn_k = KNN;
    r.out.n_params = 2, r.out.param[0] = r.param[0], r.out.param[1] = r.param[1];
    r.out.best_epoch = 1, r.out.valid.n_users = 3, r.out.test.n_users = 4;
    r.out.valid.value[MREC_METRIC_RECALL][0] = 0.5;
    mrec_fit_progress p = {&r.m, &r.adam, &r.sampler, &r.opt, &r.out, 1, 0, 0.5, rng.state, "epoch 1: loss 0.69\n"};
    if (mrec_checkpoint_write(path, &p, r.ctx)) abort();
    memset(&r.out, 0, sizeof r.out); /* its arrays are static */
    run_close(&r);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    const char *dir = getenv("MREC_FUZZ_SEED");
    for (int kind = 0; dir && *dir && kind < 2; kind++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, kind ? "neighbours" : "embeddings");
        write_seed(path, kind);
    }
    return 0;
}

static void read_as(const char *path, int kind) {
    run r;
    run_open(&r, kind);
    mrec_fit_progress p = {.model = &r.m, .adam = &r.adam, .sampler = &r.sampler, .opt = &r.opt, .out = &r.out};
    char *log = (char *)1;
    if (mrec_checkpoint_read(path, &p, &log, r.ctx) == MREC_OK) {
        if (!log || p.epoch < 1 || p.bad_evals < 0 || !isfinite(p.best)) abort();
        if (r.out.best_epoch < 0 || r.out.best_epoch > p.epoch) abort();
        if (r.out.valid.n_users < 0 || r.out.valid.n_users > U || r.out.test.n_users < 0 || r.out.test.n_users > U) abort();
        if (r.adam.step < 0 || r.adam.steps[0] > r.adam.step || r.adam.steps[1] > r.adam.step) abort();
        /* the next epoch's draw must find what a draw leaves: this run's pairs, and its users with pairs */
        int seen[U][I] = {{0}};
        for (int k = 0; k < 8; k++) {
            int u = r.sampler.user[k], i = r.sampler.pos[k];
            if (u < 0 || u >= U || i < 0 || i >= I || seen[u][i]++) abort();
            int found = 0;
            for (int64_t e = row_ptr[u]; e < row_ptr[u + 1]; e++) found |= col[e] == i;
            if (!found) abort();
        }
        int user_seen[U] = {0};
        for (int k = 0; k < r.sampler.n_users; k++)
            if (r.sampler.users[k] < 0 || r.sampler.users[k] >= U || user_seen[r.sampler.users[k]]++) abort();
        for (int k = 0; r.out.topk && k < U * 3; k++)
            if (r.out.topk[k] < 0 || r.out.topk[k] >= I) abort();
        if ((r.out.users && r.out.embed_dim != DIM) || (r.out.nbr && r.out.knn_k != KNN)) abort();
        for (int k = 0; r.out.nbr && k < I * KNN; k++)
            if (r.out.nbr[k] < -1 || r.out.nbr[k] >= I || !isfinite(r.out.sim[k])) abort();
        mrec_rng rng = {p.rng};
        mrec_bpr_sampler_epoch(&r.sampler, &rng); /* the next epoch's draw, as the run would take it */
    } else if (log) {
        abort(); /* a refused file leaves no log to free */
    }
    free(log);
    run_close(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[512];
    fuzz_put("run.ckpt", data, size, path, sizeof path);
    read_as(path, 0), read_as(path, 1);
    return 0;
}
