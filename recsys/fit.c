/* fit.c: the training loop shared by every model, as MMRec runs it:
 * per epoch, BPR triples from the sampler in batches, Adam on all
 * parameters; then evaluation on validation, early stopping after
 * `patience` evaluations without improvement of the selection metric, and
 * the test split evaluated at each new best epoch. Models without training
 * (MostPop) are evaluated once. With a checkpoint file, each evaluation
 * writes the run's state there, and a resumed run starts from it
 * (checkpoint.c).
 */
#include "mrec_recsys.h"
#include "recsys_internal.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

mrec_fit_options mrec_fit_defaults(void) {
    mrec_fit_options o = {.epochs = 1000, .batch_size = 2048, .patience = 20, .eval_every = 1, .lr = 0.001f,
                          .seed = 999, .select_metric = MREC_METRIC_RECALL, .select_k = 20, .lr_decay = 1,
                          .lr_decay_every = 50, .sample_ahead = -1};
    return o;
}


/* An epoch's BPR triples, drawn from rng: on the caller's thread, or on a
 * helper while the caller trains on the previous epoch's. A draw shuffles
 * the previous one's order further (the pairs, and the users for
 * sample_users), so a helper starts from a copy of it, made while the
 * caller only reads it; with the draws on one generator in turn, the
 * triples are the same either way. */
typedef struct {
    mrec_bpr_sampler *sampler, *from; /* from: the previous draw's sampler, or NULL (the same one) */
    mrec_rng *rng;
    int by_users, batch_size;
    pthread_t thread;
    int running;
} draw;

static void *draw_run(void *arg) {
    draw *d = arg;
    mrec_bpr_sampler *s = d->sampler;
    if (d->from && d->from != s) {
        memcpy(s->user, d->from->user, sizeof *s->user * (size_t)s->n);
        memcpy(s->pos, d->from->pos, sizeof *s->pos * (size_t)s->n);
        memcpy(s->users, d->from->users, sizeof *s->users * (size_t)s->n_users);
    }
    if (d->by_users) mrec_bpr_sampler_epoch_users(s, d->rng, d->batch_size);
    else mrec_bpr_sampler_epoch(s, d->rng);
    return NULL;
}

/* Starts drawing into sampler after from's draw; on the caller's thread when ahead is 0 or no thread can be had. */
static void draw_start(draw *d, mrec_bpr_sampler *sampler, mrec_bpr_sampler *from, int ahead) {
    d->sampler = sampler, d->from = from;
    d->running = ahead && pthread_create(&d->thread, NULL, draw_run, d) == 0;
    if (!d->running) draw_run(d);
}

static void draw_wait(draw *d) {
    if (d->running) pthread_join(d->thread, NULL);
    d->running = 0;
}

/* The run's lines so far, kept for a checkpoint (a resumed run's log and history begin with them). */
typedef struct {
    char *text;
    size_t len, cap;
} kept_lines;

static void keep_line(kept_lines *k, const char *line) {
    size_t n = strlen(line);
    if (k->len + n + 2 > k->cap) {
        size_t cap = 2 * k->cap + n + 256;
        char *grown = realloc(k->text, cap);
        if (!grown) return; /* the log only: the checkpoint then lacks lines, the run goes on */
        k->text = grown, k->cap = cap;
    }
    memcpy(k->text + k->len, line, n), k->len += n;
    k->text[k->len++] = '\n', k->text[k->len] = 0;
}

static void logf_(const mrec_fit_options *o, kept_lines *k, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void logf_(const mrec_fit_options *o, kept_lines *k, const char *fmt, ...) {
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (o->checkpoint) keep_line(k, line);
    if (o->log) o->log(o->log_ctx, line);
}

/* Every user's top items, with test-time masking, into out->topk. */
static mrec_status keep_topk(mrec_fit_result *out, mrec_model *m, const mrec_user_items *train,
                             const mrec_user_items *test_mask, int k, mrec_context *ctx) {
    if (!out->topk) out->topk = malloc(sizeof *out->topk * (size_t)train->n_rows * k);
    if (!out->topk) return mrec_fail(MREC_ERR_NOMEM, "top-%d lists for %d users", k, train->n_rows);
    const mrec_user_items *masked[2] = {train, test_mask};
    return mrec_recommend(out->topk, train->n_rows, train->n_cols, k, masked, m->score, m->self, ctx);
}

/* The model as it is now (after prepare) into out: its embeddings and its
 * parameters, in host memory, for saving. */
static mrec_status keep_model(mrec_fit_result *out, mrec_model *m, const mrec_user_items *train, mrec_context *ctx) {
    mrec_status st = MREC_OK;
    if (m->embeddings && m->embed_dim > 0) {
        size_t d = (size_t)m->embed_dim;
        if (!out->users) out->users = malloc(sizeof(float) * d * (size_t)train->n_rows);
        if (!out->items) out->items = malloc(sizeof(float) * d * (size_t)train->n_cols);
        if (!out->users || !out->items) return mrec_fail(MREC_ERR_NOMEM, "keeping the embeddings of %d users and %d items", train->n_rows, train->n_cols);
        out->embed_dim = m->embed_dim;
        st = m->embeddings(m->self, out->users, out->items);
    } else if (m->neighbours && m->knn_k > 0) {
        size_t ik = (size_t)m->knn_k * train->n_cols;
        if (!out->nbr) out->nbr = malloc(sizeof *out->nbr * ik);
        if (!out->sim) out->sim = malloc(sizeof *out->sim * ik);
        if (!out->nbr || !out->sim) return mrec_fail(MREC_ERR_NOMEM, "keeping %d neighbours of %d items", m->knn_k, train->n_cols);
        out->knn_k = m->knn_k;
        st = m->neighbours(m->self, out->nbr, out->sim);
    }
    for (int p = 0; p < m->n_params && !st; p++) {
        if (!out->param[p]) out->param[p] = malloc(sizeof(float) * (size_t)m->size[p]);
        if (!out->param[p]) return mrec_fail(MREC_ERR_NOMEM, "keeping parameter %d (%lld floats)", p, (long long)m->size[p]);
        out->n_params = p + 1;
        st = mrec_copy_to_host(ctx, out->param[p], m->param[p], sizeof(float) * (size_t)m->size[p]);
    }
    return st;
}

void mrec_fit_result_free(mrec_fit_result *r) {
    free(r->topk), free(r->users), free(r->items), free(r->nbr), free(r->sim);
    for (int p = 0; p < r->n_params; p++) free(r->param[p]);
    memset(r, 0, sizeof *r);
}

static mrec_status bad_loss(const char *name, double l, int epoch, int batch) {
    return mrec_fail(MREC_ERR_ARG, "fit: %s: loss is %g at epoch %d, batch %d; stopped (learning rate too high, or "
                     "non-finite inputs?)", name, l, epoch, batch);
}

/* A batch's work on the device, for a model in two halves (mrec_model.stage and .launch): the model's launches, its
 * loss added to the epoch's, then Adam. On a GPU it is one CUDA graph from the second batch of a size on, replayed
 * (mrec_graph_run), so the host queues one launch a batch where it queued dozens. */
typedef struct {
    mrec_model *m;
    mrec_optimizer *adam;
    mrec_loss_sum *sum;
} batch_work;

static mrec_status batch_body(mrec_context *ctx, void *arg) {
    batch_work *w = arg;
    const double *loss = NULL;
    mrec_status st = w->m->launch(w->m->self, &loss);
    if (!st && !loss) st = mrec_fail(MREC_ERR_ARG, "fit: %s: a batch left no loss", w->m->name ? w->m->name : "model");
    if (!st) st = mrec_loss_add(ctx, w->sum, loss);
    if (st) return st;
    /* on the CPU the sum is in host memory: a bad loss stops before Adam, as the host's check does (a GPU's body
     * runs on, its sum read at the epoch's end), so the replay check leaves this call out */
    if (ctx->device == MREC_DEVICE_CPU && w->sum->bad >= 0) return mrec_graph_check_skip(ctx), MREC_OK;
    return mrec_adam_launch(w->adam, w->m->active, ctx);
}

static mrec_status halves_run(mrec_model *m, mrec_optimizer *adam, mrec_loss_sum *sum, const int32_t *u, const int32_t *i,
                              const int32_t *j, int n, mrec_context *ctx) {
    mrec_status st = m->stage(m->self, u, i, j, n);
    if (!st) st = mrec_adam_stage(adam, m->active, ctx);
    if (st) return st;
    batch_work w = {m, adam, sum};
    if (m->launch_syncs && *m->launch_syncs) return batch_body(ctx, &w);
    /* the graph's key: everything its launches depend on that may differ between batches */
    struct {
        const void *self, *adam, *sum;
        int n;
        uint8_t active[MREC_MAX_PARAMS];
        unsigned char model[64];
    } key;
    memset(&key, 0, sizeof key);
    key.self = m->self, key.adam = adam, key.sum = sum, key.n = n;
    for (int p = 0; p < m->n_params; p++) key.active[p] = !m->active || m->active[p];
    if (m->launch_key && m->launch_key_bytes > (int)sizeof key.model)
        return mrec_fail(MREC_ERR_ARG, "fit: %s: a launch key of %d bytes (at most %zu)", m->name ? m->name : "model", m->launch_key_bytes,
                         sizeof key.model);
    if (m->launch_key) memcpy(key.model, m->launch_key, (size_t)m->launch_key_bytes);
    return mrec_graph_run(ctx, &key, sizeof key, batch_body, &w);
}

static mrec_status fit_batch(mrec_model *m, mrec_optimizer *adam, mrec_loss_sum *sum, const int32_t *u, const int32_t *i,
                             const int32_t *j, int n, mrec_context *ctx) {
    const char *name = m->name ? m->name : "model";
    if (!m->loss_grad && !m->step && !m->stage) return mrec_fail(MREC_ERR_ARG, "fit: %s has no training step", name);
    if (m->stage && m->launch) return halves_run(m, adam, sum, u, i, j, n, ctx); /* its work, loss and Adam as one body */
    mrec_status st;
    if (m->step) {
        const double *left = m->step(m->self, u, i, j, n);
        /* an op failed: its own error, not a loss to blame on the learning rate */
        if (m->status && *m->status) return *m->status;
        if (!left) return mrec_fail(MREC_ERR_ARG, "fit: %s: a batch left no loss", name);
        st = mrec_loss_add(ctx, sum, left);
    } else { /* the loss comes back to the host: a sum in host memory (a CPU context's) */
        if (ctx->device != MREC_DEVICE_CPU)
            return mrec_fail(MREC_ERR_UNSUPPORTED, "fit: %s returns its loss to the host only: it trains on the CPU", name);
        double l = m->loss_grad(m->self, u, i, j, n);
        if (m->status && *m->status) return *m->status;
        st = mrec_loss_add(ctx, sum, &l);
    }
    /* on the CPU the sum is in host memory: a bad loss stops before Adam */
    if (st || (ctx->device == MREC_DEVICE_CPU && sum->bad >= 0)) return st;
    return mrec_adam_step_active(adam, m->active, ctx);
}

/* Subnormals flushed while a batch trains (mrec_flush_subnormals_begin); the caller's mode back for what follows
 * (evaluation and top-k as mrec recommend ranks them). */
mrec_status mrec_fit_batch(mrec_model *m, mrec_optimizer *adam, mrec_loss_sum *sum, const int32_t *u, const int32_t *i,
                           const int32_t *j, int n, mrec_context *ctx) {
    mrec_fp_mode before = mrec_flush_subnormals_begin();
    mrec_status st = fit_batch(m, adam, sum, u, i, j, n, ctx);
    mrec_flush_subnormals_end(before);
    return st;
}

/* The evaluator of split rel (masking train and also_masked), opened at its first use and kept for the run. */
static mrec_status evaluate(mrec_evaluator **ev, mrec_eval_result *r, mrec_model *m, const mrec_user_items *rel,
                            const mrec_user_items *train, const mrec_user_items *also_masked, const int *k, int n_k,
                            float threshold, int accuracy_only, mrec_context *ctx) {
    if (!*ev) {
        mrec_eval_spec spec = {.relevant = rel, .masked = {train, also_masked}, .n_k = n_k, .rel_threshold = threshold,
                               .accuracy_only = accuracy_only};
        memcpy(spec.k, k, (size_t)n_k * sizeof *k);
        mrec_status st = mrec_evaluator_open(ev, &spec, ctx);
        if (st) return st;
    }
    return mrec_evaluator_run(*ev, r, m->score, m->self);
}

mrec_status mrec_fit(mrec_fit_result *out, mrec_model *m, const mrec_user_items *train, const mrec_user_items *valid,
                     const mrec_user_items *test, const int *k, int n_k, float rel_threshold,
                     const mrec_fit_options *opt, mrec_context *ctx) {
    memset(out, 0, sizeof *out);
    int sel_k = -1;
    for (int i = 0; i < n_k; i++)
        if (k[i] == opt->select_k) sel_k = i;
    if (sel_k < 0) return mrec_fail(MREC_ERR_ARG, "fit: the selection cut-off %d is not among the cut-offs", opt->select_k);
    int has_valid = valid && valid->row_ptr[valid->n_rows] > 0;
    const mrec_user_items *select = has_valid ? valid : test;
    out->selected_on_test = !has_valid;
    const mrec_user_items *test_mask = opt->mask_valid_in_test && has_valid ? valid : NULL;
    int acc_only = opt->accuracy_only && opt->select_metric < MREC_METRIC_FIRST_BEYOND;
    mrec_status st;

    const char *name = m->name ? m->name : "model";
    /* No pairs would make every epoch's mean loss 0 / 0 and "train" nothing
     * (and leave MostPop or ItemKNN nothing to count). */
    if (train->row_ptr[train->n_rows] == 0)
        return mrec_fail(MREC_ERR_ARG, "fit: %s: no training pairs; check the data's train split", name);

    if (!m->loss_grad || opt->epochs == 0) { /* nothing to train, or a restored model only evaluated */
        double t0 = mrec_seconds();
        if (m->prepare && (st = m->prepare(m->self))) return st;
        mrec_evaluator *ev[2] = {NULL, NULL};
        if (has_valid) st = evaluate(&ev[0], &out->valid, m, valid, train, NULL, k, n_k, rel_threshold, acc_only, ctx);
        if (!st) st = evaluate(&ev[1], &out->test, m, test, train, test_mask, k, n_k, rel_threshold, acc_only, ctx);
        mrec_evaluator_close(ev[0]), mrec_evaluator_close(ev[1]);
        if (!st && opt->save_topk > 0) st = keep_topk(out, m, train, test_mask, opt->save_topk, ctx);
        if (!st && opt->keep_model) st = keep_model(out, m, train, ctx);
        out->eval_seconds = mrec_seconds() - t0;
        return st;
    }

    /* two samplers where the next epoch is drawn while one trains: on a GPU the host mostly waits, and a draw
     * (53 ms on Gowalla) is a tenth of the epoch LightGCN aims at there */
    int ahead = opt->sample_ahead < 0 ? ctx->device != MREC_DEVICE_CPU : opt->sample_ahead;
    mrec_bpr_sampler samplers[2];
    memset(samplers, 0, sizeof samplers);
    mrec_optimizer adam;
    if ((st = mrec_bpr_sampler_init(&samplers[0], train))) return st;
    if (ahead && (st = mrec_bpr_sampler_init(&samplers[1], train))) {
        mrec_bpr_sampler_free(&samplers[0]);
        return st;
    }
    mrec_adam_init_on(&adam, opt->lr, opt->weight_decay, ctx);
    for (int p = 0; p < m->n_params && !st; p++) st = mrec_adam_add(&adam, m->param[p], m->grad[p], m->size[p]);
    /* the sum of the losses a model leaves on the device (mrec_model.step), kept there */
    mrec_arena sum_mem = {0};
    mrec_loss_sum *on_device = NULL;
    if (!st && !(st = mrec_arena_reserve(&sum_mem, sizeof *on_device, ctx->device, ctx->cuda)))
        on_device = mrec_arena_alloc(&sum_mem, sizeof *on_device);
    mrec_rng rng = {opt->seed};
    draw next = {.rng = &rng, .by_users = opt->sample_users, .batch_size = opt->batch_size};
    double best = -1;
    int bad_evals = 0, first = 1;
    mrec_evaluator *ev_select = NULL, *ev_test = NULL; /* opened at their first evaluation */
    kept_lines lines = {0};
    /* a checkpoint of this run: its epochs so far are done (the log says them again), the next one starts */
    if (!st && opt->checkpoint && opt->resume && access(opt->checkpoint, F_OK) == 0) {
        mrec_fit_progress p = {.model = m, .adam = &adam, .sampler = &samplers[0], .opt = opt, .out = out};
        char *log = NULL;
        st = mrec_checkpoint_read(opt->checkpoint, &p, &log, ctx);
        for (char *at = log, *nl; !st && at && *at; at = nl + 1) {
            if (!(nl = strchr(at, '\n'))) break;
            *nl = 0;
            logf_(opt, &lines, "%s", at);
        }
        free(log);
        if (!st) {
            first = p.epoch + 1, best = p.best, bad_evals = p.bad_evals, rng.state = p.rng;
            logf_(opt, &lines, "resumed from %s after epoch %d", opt->checkpoint, p.epoch);
        }
    }
    if (!st && first > 1 && bad_evals >= opt->patience) first = opt->epochs + 1; /* it had stopped early */
    for (int epoch = first; epoch <= opt->epochs && !st; epoch++) {
        double t0 = mrec_seconds(), loss = 0;
        if (epoch == first || !ahead) draw_start(&next, &samplers[0], NULL, 0); /* this epoch's draw, here */
        draw_wait(&next);
        mrec_bpr_sampler *sampler = next.sampler;
        uint64_t drawn = rng.state; /* the generator as this epoch's draw left it, before the next one's starts */
        if (ahead && epoch < opt->epochs) draw_start(&next, &samplers[sampler == &samplers[0]], sampler, 1);
        if (m->epoch_start && (st = m->epoch_start(m->self))) break;
        float decay = opt->lr_decay > 0 ? opt->lr_decay : 1.0f;
        int every = opt->lr_decay_every > 0 ? opt->lr_decay_every : 50;
        adam.lr = opt->lr * (decay == 1.0f ? 1.0f : powf(decay, (float)(epoch - 1) / every));
        int batches = 0;
        mrec_loss_sum sum = {.bad = -1};
        if ((st = mrec_copy_to_device(ctx, on_device, &sum, sizeof sum))) break;
        for (int64_t at = 0; at < sampler->n; at += opt->batch_size, batches++) {
            int n = (int)(sampler->n - at < opt->batch_size ? sampler->n - at : opt->batch_size);
            const int32_t *u = sampler->user + at, *i = sampler->pos + at, *j = sampler->neg + at;
            if ((st = mrec_fit_batch(m, &adam, on_device, u, i, j, n, ctx))) break;
            /* on the CPU the sum is in host memory: a bad loss stops here */
            if (ctx->device == MREC_DEVICE_CPU && on_device->bad >= 0) break;
        }
        /* the device's sum, read once an epoch; the first bad loss it saw stops training as the host's check would */
        if (!st && !(st = mrec_copy_to_host(ctx, &sum, on_device, sizeof sum))) {
            if (sum.bad >= 0) st = bad_loss(name, sum.bad_loss, epoch, sum.bad + 1);
            loss += sum.sum;
        }
        if (!st && (batches == 0 || !isfinite(loss / batches)))
            st = mrec_fail(MREC_ERR_ARG, "fit: %s: epoch %d loss is %g over %d batches; stopped", name, epoch,
                           batches ? loss / batches : NAN, batches);
        double t1 = mrec_seconds();
        out->train_seconds += t1 - t0;
        if (epoch == 1) out->first_epoch_seconds = t1 - t0;
        out->epochs_run = epoch;
        if (st || (epoch % opt->eval_every != 0 && epoch != opt->epochs)) continue; /* the last epoch is always evaluated */
        mrec_eval_result r;
        if (m->prepare && (st = m->prepare(m->self))) break;
        if ((st = evaluate(&ev_select, &r, m, select, train, select == test ? test_mask : NULL, k, n_k, rel_threshold,
                           acc_only, ctx)))
            break;
        double score = r.value[opt->select_metric][sel_k];
        int improved = score > best;
        if (improved) {
            best = score, bad_evals = 0, out->best_epoch = epoch;
            if (has_valid) {
                out->valid = r;
                st = evaluate(&ev_test, &out->test, m, test, train, test_mask, k, n_k, rel_threshold, acc_only, ctx);
            } else {
                out->test = r;
            }
            if (!st && opt->save_topk > 0) st = keep_topk(out, m, train, test_mask, opt->save_topk, ctx);
            if (!st && opt->keep_model) st = keep_model(out, m, train, ctx);
        } else {
            bad_evals++;
        }
        double t2 = mrec_seconds();
        out->eval_seconds += t2 - t1;
        logf_(opt, &lines, "epoch %4d  loss %.6f  %s %s@%d %.4f%s  train %.2fs  eval %.2fs", epoch, loss / batches,
              has_valid ? "valid" : "test", mrec_metric_name(opt->select_metric), opt->select_k, score,
              improved ? " *" : "", t1 - t0, t2 - t1);
        if (!st && opt->checkpoint) {
            mrec_fit_progress p = {m, &adam, sampler, opt, out, epoch, bad_evals, best, drawn, lines.text};
            st = mrec_checkpoint_write(opt->checkpoint, &p, ctx);
        }
        if (bad_evals >= opt->patience) {
            logf_(opt, &lines, "no improvement in %d evaluations: stopping; best epoch %d", opt->patience, out->best_epoch);
            break;
        }
    }
    draw_wait(&next); /* a draw for an epoch that early stopping or an error cut off */
    mrec_evaluator_close(ev_select), mrec_evaluator_close(ev_test);
    free(lines.text);
    mrec_bpr_sampler_free(&samplers[0]), mrec_bpr_sampler_free(&samplers[1]);
    mrec_adam_free(&adam);
    mrec_arena_release(&sum_mem, ctx->cuda);
    return st;
}
