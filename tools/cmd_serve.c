/* cmd_serve.c: `mrec serve MODEL_DIR`: an HTTP/JSON service over a model
 * saved by `mrec train --save`, on libmicrohttpd.
 *
 *   GET /recommend?user=U&k=K   the user's K best items (K 1..1000, default 20)
 *   GET /similar?item=I&k=K     the item's K nearest items
 *   GET /health                 the model, its counts, requests served
 *
 * Answers are JSON; an unknown user or item is 404, a missing or bad
 * parameter 400, another method 405, an unknown path 404, each with
 * {"error": "..."}. libmicrohttpd refuses requests past its memory limit
 * (a URL or headers too long) and slow clients past a timeout. It listens
 * on 127.0.0.1 unless --host says otherwise. A thread pool answers; each
 * thread has its own handle on the one loaded model (mrec_recommender_clone).
 * SIGTERM or SIGINT stops new connections, lets the requests in flight
 * finish (up to --drain seconds), then exits 0.
 *
 * Built without libmicrohttpd (its header not found), the command says so.
 */
#include "../include/mrec.h"
#include "mrec_options.h"
#include "mrec_tools.h"

#include <stdio.h>
#include <string.h>

enum { S_HOST, S_PORT, S_THREADS, S_TIMEOUT, S_DRAIN, S_MAX_CONN, N_OPTIONS };

static const mrec_option OPTIONS[N_OPTIONS] = {
    [S_HOST] = {"--host", MREC_OPT_TEXT, "ADDR", "the IPv4 address to listen on", "127.0.0.1", .section = "listening"},
    [S_PORT] = {"--port", MREC_OPT_INT, "N", "the TCP port (0: any free one; the one taken is printed)", "8080", 0, 65535},
    [S_THREADS] = {"--threads", MREC_OPT_INT, "N", "threads answering requests", "4", 1, 256},
    [S_TIMEOUT] = {"--timeout", MREC_OPT_INT, "S", "a connection idle this many seconds is closed", "10", 1, 3600},
    [S_DRAIN] = {"--drain", MREC_OPT_INT, "S", "on SIGTERM, how long requests in flight may take to finish", "10", 0, 3600},
    [S_MAX_CONN] = {"--max-connections", MREC_OPT_INT, "N", "connections at once; more wait in the kernel's queue", "512", 1, 65536},
};

static const mrec_command SERVE = {
    "serve", "usage: mrec serve MODEL_DIR [--host ADDR] [--port N] [--threads N]\n\n"
             "Serves a model saved by mrec train --save over HTTP, answering in JSON:\n"
             "  GET /recommend?user=U&k=K   the user's K best items, training items left out (K 1..1000, default 20)\n"
             "  GET /similar?item=I&k=K     the item's K nearest items by cosine\n"
             "  GET /health                 the model and its counts",
    "An unknown user or item is 404, a missing or malformed parameter 400, another method 405, each with\n"
    "{\"error\": ...}. Stops on SIGTERM or SIGINT after the requests in flight are answered.\n",
    OPTIONS, N_OPTIONS, 1};

#ifndef MREC_HAVE_MHD

int mrec_cmd_serve(int argc, char **argv) {
    mrec_opt_value v[N_OPTIONS];
    const char *pos[1];
    int n_pos = 0, rc = mrec_options_parse(&SERVE, argc, argv, v, NULL, pos, &n_pos);
    if (rc) return rc == MREC_OPTS_HELP ? 0 : rc;
    fprintf(stderr, "mrec serve: this mrec was built without libmicrohttpd (apt-get install libmicrohttpd-dev, then make)\n");
    return 1;
}

#else

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define MAX_K 1000

typedef struct {
    mrec_recommender *model; /* the first handle; each thread clones it */
    pthread_key_t handle;    /* the thread's own clone */
    atomic_long served, in_flight;
} server;

/* An answer is written to a memory stream and handed to libmicrohttpd. */
typedef struct {
    FILE *f; /* NULL when open_memstream failed: the request gets a 500 */
    char *s;
    size_t len;
} text;

static void text_open(text *t) {
    t->s = NULL, t->len = 0;
    t->f = open_memstream(&t->s, &t->len);
}

static enum MHD_Result answer(struct MHD_Connection *c, unsigned code, text *t) {
    int ok = t->f && fputc('\n', t->f) != EOF;
    if (t->f && fclose(t->f) != 0) ok = 0;
    struct MHD_Response *r;
    if (ok && t->s) {
        r = MHD_create_response_from_buffer(t->len, t->s, MHD_RESPMEM_MUST_FREE);
        if (!r) free(t->s);
    } else {
        free(t->s);
        static const char oom[] = "{\"error\": \"out of memory\"}\n";
        r = MHD_create_response_from_buffer(sizeof oom - 1, (void *)oom, MHD_RESPMEM_PERSISTENT);
        code = MHD_HTTP_INTERNAL_SERVER_ERROR;
    }
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result q = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return q;
}

static enum MHD_Result error(struct MHD_Connection *c, unsigned code, const char *what, const char *detail) {
    text t;
    text_open(&t);
    char msg[1024];
    snprintf(msg, sizeof msg, "%s%s%s", what, detail ? ": " : "", detail ? detail : "");
    if (t.f) fputs("{\"error\": ", t.f), mrec_json_write_string(t.f, msg), fputs("}", t.f);
    return answer(c, code, &t);
}

/* k from the query: absent is 20; else a whole number in 1..MAX_K. */
static int parse_k(const char *s, int *k) {
    if (!s) return *k = 20, 1;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < 1 || v > MAX_K) return 0;
    *k = (int)v;
    return 1;
}

/* The calling thread's handle on the model, cloned on its first request. */
static mrec_recommender *thread_handle(server *sv) {
    mrec_recommender *h = pthread_getspecific(sv->handle);
    if (!h && !mrec_recommender_clone(&h, sv->model)) pthread_setspecific(sv->handle, h);
    return h;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method, const char *version,
                                  const char *upload, size_t *upload_size, void **state) {
    (void)version, (void)upload;
    server *sv = cls;
    if (!*state) { /* the headers: answer once the (empty) body is in */
        *state = sv;
        return MHD_YES;
    }
    if (*upload_size) { /* a body is not part of any request here */
        *upload_size = 0;
        return MHD_YES;
    }
    if (strcmp(method, "GET") && strcmp(method, "HEAD")) return error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET is served", NULL);
    int rec = !strcmp(url, "/recommend"), sim = !strcmp(url, "/similar");
    if (!strcmp(url, "/health")) {
        text t;
        text_open(&t);
        if (t.f) fputs("{\"status\": \"ok\", \"model\": ", t.f), mrec_json_write_string(t.f, mrec_recommender_model(sv->model));
        if (t.f) fprintf(t.f, ", \"users\": %d, \"items\": %d, \"served\": %ld}", mrec_recommender_n_users(sv->model),
            mrec_recommender_n_items(sv->model), atomic_load(&sv->served));
        return answer(c, MHD_HTTP_OK, &t);
    }
    if (!rec && !sim) return error(c, MHD_HTTP_NOT_FOUND, "no such path (GET /recommend, /similar or /health)", NULL);
    const char *key = rec ? "user" : "item";
    const char *id = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, key);
    const char *ks = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "k");
    int k;
    if (!id || !*id) return error(c, MHD_HTTP_BAD_REQUEST, rec ? "the user parameter is missing" : "the item parameter is missing", NULL);
    if (!parse_k(ks, &k)) return error(c, MHD_HTTP_BAD_REQUEST, "k must be a whole number from 1 to 1000", NULL);
    mrec_recommender *h = thread_handle(sv);
    if (!h) return error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "no handle for this thread", mrec_error_detail());
    atomic_fetch_add(&sv->in_flight, 1);
    int items[MAX_K], n;
    float scores[MAX_K];
    mrec_status st = rec ? mrec_recommender_recommend(h, id, k, items, scores, &n) : mrec_recommender_similar(h, id, k, items, scores, &n);
    enum MHD_Result q;
    if (st == MREC_ERR_NOT_FOUND) {
        q = error(c, MHD_HTTP_NOT_FOUND, mrec_error_detail(), NULL);
    } else if (st) {
        q = error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, mrec_strerror(st), mrec_error_detail());
    } else {
        text t;
        text_open(&t);
        if (t.f) {
            fprintf(t.f, "{\"%s\": ", key), mrec_json_write_string(t.f, id), fputs(", \"items\": [", t.f);
            for (int j = 0; j < n; j++) {
                fputs(j ? ", {\"item\": " : "{\"item\": ", t.f), mrec_json_write_string(t.f, mrec_recommender_item_id(h, items[j]));
                fprintf(t.f, ", \"%s\": %.9g}", rec ? "score" : "similarity", scores[j]);
            }
            fputs("]}", t.f);
        }
        q = answer(c, MHD_HTTP_OK, &t);
        atomic_fetch_add(&sv->served, 1);
    }
    atomic_fetch_sub(&sv->in_flight, 1);
    return q;
}

static volatile sig_atomic_t stop_signal;
static void on_signal(int sig) { stop_signal = sig; }

static void close_handle(void *h) { mrec_recommender_close(h); }

int mrec_cmd_serve(int argc, char **argv) {
    mrec_opt_value v[N_OPTIONS];
    const char *pos[1];
    int n_pos = 0, rc = mrec_options_parse(&SERVE, argc, argv, v, NULL, pos, &n_pos);
    if (rc) return rc == MREC_OPTS_HELP ? 0 : rc;
    if (n_pos != 1) {
        fprintf(stderr, "mrec serve: a model folder is needed (mrec serve --help)\n");
        return 1;
    }
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)(v[S_PORT].given ? v[S_PORT].i : 8080))};
    const char *host = v[S_HOST].given ? v[S_HOST].text : "127.0.0.1";
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        fprintf(stderr, "mrec serve: --host: '%s' is not an IPv4 address\n", host);
        return 1;
    }
    server sv = {0};
    mrec_status st = mrec_recommender_open(&sv.model, pos[0]);
    if (st) {
        fprintf(stderr, "mrec serve: %s: %s\n", mrec_strerror(st), mrec_error_detail());
        return st == MREC_ERR_NOMEM ? 3 : 2;
    }
    pthread_key_create(&sv.handle, close_handle);
    unsigned threads = (unsigned)(v[S_THREADS].given ? v[S_THREADS].i : 4);
    unsigned timeout = (unsigned)(v[S_TIMEOUT].given ? v[S_TIMEOUT].i : 10);
    unsigned limit = (unsigned)(v[S_MAX_CONN].given ? v[S_MAX_CONN].i : 512);
    /* signals before the threads start, so that they inherit the mask and the main thread alone takes them */
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL), sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    sigset_t block, old;
    sigemptyset(&block), sigaddset(&block, SIGTERM), sigaddset(&block, SIGINT);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC, 0, NULL, NULL, on_request, &sv, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_CONNECTION_TIMEOUT, timeout, MHD_OPTION_CONNECTION_LIMIT, limit,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)32768, MHD_OPTION_END);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!d) {
        fprintf(stderr, "mrec serve: could not listen on %s:%u (%s)\n", host, (unsigned)ntohs(addr.sin_port), strerror(errno));
        mrec_recommender_close(sv.model);
        return 2;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    printf("mrec serve: %s (%d users, %d items) on http://%s:%u\n", mrec_recommender_model(sv.model), mrec_recommender_n_users(sv.model),
           mrec_recommender_n_items(sv.model), host, info ? (unsigned)info->port : (unsigned)ntohs(addr.sin_port));
    fflush(stdout);
    while (!stop_signal) pause();
    /* drain: no new connections, the requests in flight answered, then stop */
    MHD_quiesce_daemon(d);
    int drain = (int)(v[S_DRAIN].given ? v[S_DRAIN].i : 10);
    struct timespec nap = {0, 10 * 1000 * 1000};
    for (int waited = 0; atomic_load(&sv.in_flight) > 0 && waited < drain * 100; waited++) nanosleep(&nap, NULL);
    MHD_stop_daemon(d);
    printf("mrec serve: stopped (signal %d) after %ld answers\n", (int)stop_signal, atomic_load(&sv.served));
    mrec_recommender_close(sv.model);
    pthread_key_delete(sv.handle);
    return 0;
}

#endif
