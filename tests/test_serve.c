/* test_serve.c: `mrec serve` as a client meets it, over a loopback socket.
 *
 * A BPRMF trained on data/baby (users below 1500) and saved; the server on
 * a free port. Its answers are compared with the library's own
 * (mrec_recommender_*), byte for byte, for many users and items, also with
 * eight clients at once. Then what clients get wrong: a missing or bad
 * parameter (400), unknown ids and paths (404, the id named in valid JSON
 * even when it is not UTF-8), another method (405), a 100 KB URL (refused,
 * and the server still answers), a client that sends half a request and
 * stalls (others are answered meanwhile; it is dropped after --timeout),
 * and SIGTERM, after which the server exits 0. Skipped when mrec was built
 * without libmicrohttpd. Runs the binary in $MREC_BIN.
 */
#include "harness.h"

#include "../include/mrec.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *bin;
static char dir[] = "/tmp/mrec-serve-XXXXXX";
static int port;

static int connect_local(void) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (s >= 0 && connect(s, (struct sockaddr *)&a, sizeof a) != 0) close(s), s = -1;
    if (s >= 0) {
        struct timeval tv = {10, 0}; /* a test never waits forever */
        setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }
    return s;
}

/* Sends raw request bytes, reads the whole answer; returns the status code
 * (0 when none came) and the body in body. */
static int http_raw(const char *request, size_t len, char *body, size_t cap) {
    int s = connect_local();
    if (s < 0) return 0;
    for (size_t at = 0; at < len;) {
        ssize_t w = send(s, request + at, len - at, MSG_NOSIGNAL);
        if (w <= 0) break;
        at += (size_t)w;
    }
    static __thread char buf[1 << 20];
    size_t got = 0;
    for (ssize_t r; got < sizeof buf - 1 && (r = recv(s, buf + got, sizeof buf - 1 - got, 0)) > 0;) got += (size_t)r;
    close(s);
    buf[got] = '\0';
    int code = 0;
    sscanf(buf, "HTTP/1.%*d %d", &code);
    const char *b = strstr(buf, "\r\n\r\n");
    snprintf(body, cap, "%s", b ? b + 4 : "");
    return code;
}

static int http_get(const char *path, char *body, size_t cap) {
    static __thread char req[1 << 18];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", path);
    return http_raw(req, (size_t)n, body, cap);
}

/* What the server should answer for /recommend (or /similar), from the library. */
static void expected(mrec_recommender *r, int similar, const char *id, int k, char *out, size_t cap) {
    int items[1000], n;
    float scores[1000];
    mrec_status st = similar ? mrec_recommender_similar(r, id, k, items, scores, &n) : mrec_recommender_recommend(r, id, k, items, scores, &n);
    size_t at = (size_t)snprintf(out, cap, "{\"%s\": \"%s\", \"items\": [", similar ? "item" : "user", id);
    for (int j = 0; !st && j < n; j++)
        at += (size_t)snprintf(out + at, cap - at, "%s{\"item\": \"%s\", \"%s\": %.9g}", j ? ", " : "", mrec_recommender_item_id(r, items[j]),
                               similar ? "similarity" : "score", scores[j]);
    snprintf(out + at, cap - at, "]}\n");
}

typedef struct {
    mrec_recommender *r;
    int first, ok;
} client;

static void *many(void *arg) {
    client *c = arg;
    char path[128], body[1 << 16], want[1 << 16];
    c->ok = 1;
    for (int i = 0; i < 40 && c->ok; i++) {
        int u = (c->first + 37 * i) % 1500;
        snprintf(path, sizeof path, "/recommend?user=%d&k=10", u);
        char id[16];
        snprintf(id, sizeof id, "%d", u);
        expected(c->r, 0, id, 10, want, sizeof want);
        c->ok = http_get(path, body, sizeof body) == 200 && !strcmp(body, want);
    }
    return NULL;
}

int main(void) {
    t_suite("serve");
    bin = getenv("MREC_BIN") ? getenv("MREC_BIN") : "bin/mrec";
    T_REQUIRE(mkdtemp(dir) != NULL);
    char cmd[16384], data[3][4200];
    const char *parts[3] = {"train", "val", "test"};
    for (int p = 0; p < 3; p++) { /* data/baby cut to users below 1500 */
        char src[64], line[256];
        snprintf(src, sizeof src, "data/baby/%s.tsv", parts[p]);
        snprintf(data[p], sizeof data[p], "%s/%s.tsv", dir, parts[p]);
        FILE *in = fopen(src, "r"), *out = fopen(data[p], "w");
        if (!in || !out) {
            t_skip("serve: data/baby not found");
            return t_finish();
        }
        while (fgets(line, sizeof line, in))
            if (atoi(line) < 1500) fputs(line, out);
        fclose(in), fclose(out);
    }
    snprintf(cmd, sizeof cmd, "%s train --data %s,%s,%s --format tsv --model bprmf --epochs 3 --out %s/run --save %s/model > /dev/null 2>&1",
             bin, data[0], data[1], data[2], dir, dir);
    T_REQUIRE(system(cmd) == 0);
    char model[4300];
    snprintf(model, sizeof model, "%s/model", dir);

    /* the server, its first line read for the port */
    int out[2];
    T_REQUIRE(pipe(out) == 0);
    pid_t pid = fork();
    T_REQUIRE(pid >= 0);
    if (pid == 0) {
        dup2(out[1], 1), dup2(out[1], 2), close(out[0]);
        execl(bin, bin, "serve", model, "--port", "0", "--threads", "4", "--timeout", "2", (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    FILE *so = fdopen(out[0], "r");
    char line[1024] = "";
    if (!fgets(line, sizeof line, so)) line[0] = '\0';
    if (strstr(line, "without libmicrohttpd")) {
        waitpid(pid, NULL, 0);
        t_skip("serve: mrec was built without libmicrohttpd");
        return t_finish();
    }
    const char *colon = strrchr(line, ':');
    port = colon ? atoi(colon + 1) : 0;
    if (!t_check(port > 0, "the server says where it listens: %s", line)) {
        kill(pid, SIGKILL), waitpid(pid, NULL, 0);
        return t_finish();
    }
    static char body[1 << 20], want[1 << 16];
    mrec_recommender *r;
    T_REQUIRE(mrec_recommender_open(&r, model) == MREC_OK);

    t_check(http_get("/health", body, sizeof body) == 200 && strstr(body, "\"model\": \"BPRMF\"") && strstr(body, "\"status\": \"ok\""),
            "/health: %s", body);
    int same = 1;
    for (int u = 0; u < 1500 && same; u += 13) {
        char path[64], id[16];
        snprintf(id, sizeof id, "%d", u), snprintf(path, sizeof path, "/recommend?user=%d&k=20", u);
        expected(r, 0, id, 20, want, sizeof want);
        same = http_get(path, body, sizeof body) == 200 && !strcmp(body, want);
    }
    t_check(same, "/recommend equals the library's lists and scores for 116 users: %s", body);
    same = 1;
    for (int i = 0; i < 300 && same; i += 7) {
        const char *id = mrec_recommender_item_id(r, i);
        char path[256];
        snprintf(path, sizeof path, "/similar?item=%s&k=5", id);
        expected(r, 1, id, 5, want, sizeof want);
        same = http_get(path, body, sizeof body) == 200 && !strcmp(body, want);
    }
    t_check(same, "/similar equals the library's for 43 items");
    t_check(http_get("/recommend?user=3", body, sizeof body) == 200 && strstr(body, "\"items\": [{") &&
                (size_t)(strstr(body, "]}") - body) > 0,
            "k defaults to 20");

    /* eight clients at once */
    client cl[8];
    pthread_t th[8];
    mrec_recommender *clones[8];
    for (int c = 0; c < 8; c++) {
        T_REQUIRE(mrec_recommender_clone(&clones[c], r) == MREC_OK);
        cl[c] = (client){.r = clones[c], .first = 101 * c};
    }
    for (int c = 0; c < 8; c++) pthread_create(&th[c], NULL, many, &cl[c]);
    int all = 1;
    for (int c = 0; c < 8; c++) pthread_join(th[c], NULL), all &= cl[c].ok, mrec_recommender_close(clones[c]);
    t_check(all, "eight clients at once, 320 requests: every answer right");

    /* what clients get wrong */
    struct {
        const char *path;
        int code;
        const char *says;
    } bad[] = {
        {"/recommend", 400, "user parameter is missing"},
        {"/recommend?user=", 400, "user parameter is missing"},
        {"/recommend?user=3&k=0", 400, "k must be"},
        {"/recommend?user=3&k=-1", 400, "k must be"},
        {"/recommend?user=3&k=abc", 400, "k must be"},
        {"/recommend?user=3&k=1001", 400, "k must be"},
        {"/recommend?user=3&k=99999999999999999999", 400, "k must be"},
        {"/recommend?user=no-such-user", 404, "\"no-such-user\\\" is not in the model"},
        {"/similar?item=no-such-item", 404, "not in the model"},
        {"/similar", 400, "item parameter is missing"},
        {"/recommend?user=%FF%FE", 404, "\\ufffd\\ufffd"},
        {"/nowhere", 404, "no such path"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int code = http_get(bad[i].path, body, sizeof body);
        t_check(code == bad[i].code && strstr(body, "{\"error\": ") && strstr(body, bad[i].says), "%s: %d %s", bad[i].path, code, body);
    }
    const char post[] = "POST /recommend?user=3 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc";
    t_check(http_raw(post, sizeof post - 1, body, sizeof body) == 405, "POST: 405");
    char *longurl = malloc(100100);
    if (longurl) {
        int n = snprintf(longurl, 100100, "/recommend?user=");
        memset(longurl + n, 'a', 100000 - n), longurl[100000] = '\0';
        int code = http_get(longurl, body, sizeof body);
        t_check(code == 414 || code == 431 || code == 400, "a 100 KB URL is refused: %d", code);
        free(longurl);
    }
    t_check(http_get("/health", body, sizeof body) == 200, "and the server still answers");

    /* a client that stalls half-way: others are answered; it is dropped after --timeout */
    int slow = connect_local();
    const char half[] = "GET /recommend?user=3 HTTP/1.1\r\nHo";
    if (t_check(slow >= 0 && send(slow, half, sizeof half - 1, MSG_NOSIGNAL) > 0, "a slow client connects")) {
        t_check(http_get("/recommend?user=4", body, sizeof body) == 200, "another client is answered meanwhile");
        char c;
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        ssize_t got = recv(slow, &c, 1, 0); /* the server closes it: 0 */
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double waited = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        t_check(got <= 0 && waited < 8, "the stalled client is dropped after the timeout (%.1f s)", waited);
        close(slow);
    }

    /* SIGTERM: a clean stop */
    kill(pid, SIGTERM);
    int status = 0;
    waitpid(pid, &status, 0);
    char rest[512] = "";
    if (!fgets(rest, sizeof rest, so)) rest[0] = '\0';
    t_check(WIFEXITED(status) && WEXITSTATUS(status) == 0 && strstr(rest, "stopped"), "SIGTERM: exit 0 after \"%s\"", rest);
    fclose(so);
    mrec_recommender_close(r);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return t_finish();
}
