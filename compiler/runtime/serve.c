#define _POSIX_C_SOURCE 200809L
#include "serve.h"

#include "buckets.h"
#include "errors.h"
#include "serve_infer.h"
#include "serve_metrics.h"
#include "strbuf.h"
#include "tensor.h"

#include <civetweb.h>
#include <malloc.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

struct server {
    struct session *session;
    struct bucket_sessions sessions;
    struct serve_model model;
    struct batcher batcher;
    struct serve_metrics metrics;
    const struct options *options;
    atomic_bool ready;
};

enum { ONE_WRITE_BYTES = 64 * 1024 };

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* civetweb's rule for the connection after this request: the client's Connection header, else HTTP/1.1. */
static bool keeps_alive(const struct mg_connection *c)
{
    const char *header = mg_get_header(c, "Connection");
    if (header == NULL) {
        return strcmp(mg_get_request_info(c)->http_version, "1.1") == 0;
    }
    for (const char *token = header; *token != '\0'; token += strcspn(token, ",")) {
        token += strspn(token, ", \t");
        if (strncasecmp(token, "keep-alive", 10) == 0 && strchr(", \t", token[10]) != NULL) {
            return true;
        }
    }
    return false;
}

/* The status line and headers, written here rather than by civetweb's response API, which sends each
 * header line as a write of its own: with TCP_NODELAY, eight packets per answer. */
static void write_head(struct strbuf *out, struct mg_connection *c, int status, const char *type, size_t length,
                       long header_length)
{
    char date[64];
    time_t now_utc = time(NULL);
    struct tm utc;
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", gmtime_r(&now_utc, &utc));
    strbuf_printf(out, "HTTP/%s %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nDate: %s\r\n"
                  "Connection: %s\r\n", mg_get_request_info(c)->http_version, status,
                  mg_get_response_code_text(c, status), type, length, date, keeps_alive(c) ? "keep-alive" : "close");
    if (header_length >= 0) {
        strbuf_printf(out, "Inference-Header-Content-Length: %ld\r\n", header_length);
    }
    strbuf_printf(out, "\r\n");
}

/* Head and body in one write, or two when the body is large enough that copying it costs more. */
static int respond(struct mg_connection *c, int status, const char *type, const struct strbuf *body,
                   long header_length)
{
    struct strbuf out = {0};
    write_head(&out, c, status, type, body->len, header_length);
    bool joined = body->len <= ONE_WRITE_BYTES;
    if (joined) {
        strbuf_append(&out, body->data, body->len);
    }
    mg_write(c, out.data, out.len);
    if (!joined) {
        mg_write(c, body->data, body->len);
    }
    strbuf_free(&out);
    return status;
}

static int respond_json(struct mg_connection *c, int status, struct strbuf *body)
{
    int code = respond(c, status, "application/json", body, -1);
    strbuf_free(body);
    return code;
}

static int respond_error(struct mg_connection *c, int status, const char *message)
{
    struct strbuf body = {0};
    strbuf_printf(&body, "{\"error\":");
    strbuf_json_string(&body, message);
    strbuf_printf(&body, "}");
    return respond_json(c, status, &body);
}

/* Shapes as the protocol shows them: with shape buckets, the batch dim as -1 (dynamic), as Triton does. */
static void write_tensors(struct strbuf *b, const char *key, const kiln_tensor_desc *descs, uint32_t count,
                          bool bucketed)
{
    strbuf_printf(b, ",\"%s\":[", key);
    for (uint32_t i = 0; i < count; i++) {
        strbuf_printf(b, "%s{\"name\":", i ? "," : "");
        strbuf_json_string(b, descs[i].name);
        strbuf_printf(b, ",\"datatype\":\"%s\",\"shape\":[", v2_datatype(descs[i].dtype));
        for (uint32_t d = 0; d < descs[i].rank; d++) {
            strbuf_printf(b, "%s%lld", d ? "," : "", d == 0 && bucketed ? -1LL : (long long)descs[i].shape[d]);
        }
        strbuf_printf(b, "]}");
    }
    strbuf_printf(b, "]");
}

static int model_metadata(struct mg_connection *c, struct server *srv)
{
    const kiln_model_desc *m = srv->session->model;
    struct strbuf b = {0};
    strbuf_printf(&b, "{\"name\":");
    strbuf_json_string(&b, m->model_name);
    strbuf_printf(&b, ",\"versions\":[\"1\"],\"platform\":\"kiln_%s\"", srv->metrics.platform);
    bool bucketed = srv->sessions.bucketed;
    write_tensors(&b, "inputs", m->inputs, m->n_inputs, bucketed);
    write_tensors(&b, "outputs", m->outputs, m->n_outputs, bucketed);
    strbuf_printf(&b, "}");
    return respond_json(c, 200, &b);
}

static int server_metadata(struct mg_connection *c)
{
    struct strbuf b = {0};
    strbuf_printf(&b, "{\"name\":\"kiln\",\"version\":\"1\",\"extensions\":[\"binary_tensor_data\"]}");
    return respond_json(c, 200, &b);
}

/* {"live": true} or {"ready": ...}: Triton's client reads the status (the protocol: 4xx is "not"),
 * KServe's reads this body. */
static int health(struct mg_connection *c, const char *key, bool yes)
{
    struct strbuf b = {0};
    strbuf_printf(&b, "{\"%s\":%s}", key, yes ? "true" : "false");
    return respond_json(c, yes ? 200 : 400, &b);
}

/* The body, or NULL after answering 411/413/400 (too large, unknown length, cut short). */
static char *read_body(struct mg_connection *c, size_t *size, long max, int *status)
{
    long long length = mg_get_request_info(c)->content_length;
    if (length < 0) {
        *status = respond_error(c, 411, "a Content-Length header is required");
        return NULL;
    }
    if (length > max) {
        *status = respond_error(c, 413, "request body larger than --max-request-bytes");
        return NULL;
    }
    char *body = malloc((size_t)length + 1);
    if (body == NULL) {
        fail("out of memory");
    }
    size_t got = 0;
    int n = 1;
    while (got < (size_t)length && (n = mg_read(c, body + got, (size_t)length - got)) > 0) {
        got += (size_t)n;
    }
    if (got < (size_t)length) {
        free(body);
        *status = respond_error(c, 400, "request body cut short");
        return NULL;
    }
    *size = got;
    return body;
}

/* A request the batcher was told of that will not reach it. */
static void expected_no_more(struct batcher *batcher)
{
    if (batcher != NULL) {
        batcher_forget(batcher);
    }
}

static int infer(struct mg_connection *c, struct server *srv)
{
    if (!atomic_load(&srv->ready)) {
        return respond_error(c, 503, "model is not ready");
    }
    int status = 0;
    struct infer_request req = {.header_length = -1};
    struct batcher *batcher = srv->model.batcher;
    if (batcher != NULL) {
        batcher_expect(batcher);  /* from its headers on: a batch waits for a body still arriving */
    }
    char *body = read_body(c, &req.size, srv->options->max_request_bytes, &status);
    if (body == NULL) {
        expected_no_more(batcher);
        return status;
    }
    req.body = body;
    const char *header = mg_get_header(c, "Inference-Header-Content-Length");
    if (header != NULL) {
        char *end;
        req.header_length = strtol(header, &end, 10);
        if (end == header || *end != '\0' || req.header_length < 0) {
            expected_no_more(batcher);
            free(body);
            return respond_error(c, 400, "Inference-Header-Content-Length must be a byte count");
        }
    }
    struct infer_reply reply;
    serve_infer(&srv->model, &req, &reply);
    if (reply.status != 200) {
        strbuf_free(&reply.body);
        return respond_error(c, reply.status, reply.error);
    }
    metrics_inference(&srv->metrics, reply.queue_seconds, reply.infer_seconds);
    bool binary = reply.json_length < reply.body.len;
    status = respond(c, 200, binary ? "application/octet-stream" : "application/json", &reply.body,
                     binary ? (long)reply.json_length : -1);
    strbuf_free(&reply.body);
    return status;
}

/* /v2/models/<name>[/versions/1][/ready|/infer]: `path` is what follows /v2/models/. */
static int model_route(struct mg_connection *c, struct server *srv, const char *method, const char *path)
{
    const char *name = srv->session->model->model_name;
    size_t n = strlen(name);
    if (strncmp(path, name, n) != 0 || (path[n] != '\0' && path[n] != '/')) {
        return respond_error(c, 404, "unknown model");
    }
    const char *rest = path + n;
    if (strncmp(rest, "/versions/1", 11) == 0 && (rest[11] == '\0' || rest[11] == '/')) {
        rest += 11;
    }
    bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
    if (get && rest[0] == '\0') return model_metadata(c, srv);
    if (get && strcmp(rest, "/ready") == 0) return health(c, "ready", atomic_load(&srv->ready));
    if (post && strcmp(rest, "/infer") == 0) return infer(c, srv);
    if (strcmp(rest, "") == 0 || strcmp(rest, "/ready") == 0 || strcmp(rest, "/infer") == 0) {
        return respond_error(c, 405, "method not allowed");
    }
    return respond_error(c, 404, "not found");
}

static void render_bucket_runs(const struct bucket_sessions *sessions, struct strbuf *out)
{
    strbuf_printf(out, "# HELP kiln_bucket_runs_total Model runs, by the shape bucket's batch.\n"
                       "# TYPE kiln_bucket_runs_total counter\n");
    for (uint32_t i = 0; i < sessions->count; i++) {
        strbuf_printf(out, "kiln_bucket_runs_total{batch=\"%lld\"} %llu\n",
                      (long long)batch_rows(sessions->items[i]->model), atomic_load(&sessions->runs[i]));
    }
    strbuf_printf(out, "# HELP kiln_split_runs_total Runs whose rows ran side by side in smaller buckets, a "
                       "slice per lane.\n"
                       "# TYPE kiln_split_runs_total counter\n"
                       "kiln_split_runs_total %llu\n", atomic_load(&sessions->split_runs));
}

static void render_lane_runs(struct lanes *lanes, struct strbuf *out)
{
    strbuf_printf(out, "# HELP kiln_lane_runs_total Model runs without batching: alone on every thread (wide), "
                       "or side by side on a share of the threads each (narrow).\n"
                       "# TYPE kiln_lane_runs_total counter\n"
                       "kiln_lane_runs_total{lane=\"wide\"} %llu\nkiln_lane_runs_total{lane=\"narrow\"} %llu\n",
                  atomic_load(&lanes->wide_runs), atomic_load(&lanes->narrow_runs));
}

static int metrics(struct mg_connection *c, struct server *srv)
{
    struct strbuf b = {0};
    metrics_render(&srv->metrics, &b);
    render_bucket_runs(&srv->sessions, &b);
    render_lane_runs(&srv->model.lanes, &b);
    int status = respond(c, 200, "text/plain; version=0.0.4", &b, -1);
    strbuf_free(&b);
    return status;
}

static int route(struct mg_connection *c, struct server *srv)
{
    const struct mg_request_info *info = mg_get_request_info(c);
    const char *path = info->local_uri, *method = info->request_method;
    bool get = strcmp(method, "GET") == 0;
    if (strncmp(path, "/v2/models/", 11) == 0) return model_route(c, srv, method, path + 11);
    if (get && strcmp(path, "/v2/health/live") == 0) return health(c, "live", true);
    if (get && strcmp(path, "/v2/health/ready") == 0) return health(c, "ready", atomic_load(&srv->ready));
    if (get && strcmp(path, "/v2") == 0) return server_metadata(c);
    if (get && strcmp(path, "/metrics") == 0) return metrics(c, srv);
    return respond_error(c, 404, "not found");
}

static int handle(struct mg_connection *c, void *data)
{
    struct server *srv = data;
    double started = now();
    metrics_request_started(&srv->metrics);
    int status = route(c, srv);
    metrics_request_done(&srv->metrics, status, now() - started);
    return status;
}

static struct mg_context *start(struct server *srv, const struct options *o)
{
    char port[300], threads[16], timeout[16];
    snprintf(port, sizeof port, strchr(o->host, ':') ? "[%s]:%d" : "%s:%d", o->host, o->port);
    snprintf(threads, sizeof threads, "%d", o->http_threads);
    snprintf(timeout, sizeof timeout, "%ld", o->timeout_ms);
    const char *settings[] = {
        "listening_ports", port, "num_threads", threads, "request_timeout_ms", timeout,
        "keep_alive_timeout_ms", timeout, "enable_keep_alive", "yes",
        /* headers and body go out in two writes: with Nagle, the second waits for the client's delayed ACK */
        "tcp_nodelay", "1",
        /* each HTTP thread keeps a buffer this large for headers (and the body's first bytes): 8 KiB, as
         * Apache's header limit, instead of civetweb's 16 KiB saves half a megabyte at 64 connections */
        "max_request_size", "8192", NULL,
    };
    struct mg_callbacks callbacks = {0};
    char why[256] = "";
    struct mg_init_data init = {.callbacks = &callbacks, .configuration_options = settings};
    struct mg_error_data error = {.text = why, .text_buffer_size = sizeof why};
    struct mg_context *ctx = mg_start2(&init, &error);
    if (ctx == NULL) {
        fail("serve: cannot listen on %s: %s", port, why[0] ? why : "civetweb refused to start");
    }
    mg_set_request_handler(ctx, "/", handle, srv);
    return ctx;
}

static void catch_signals(void)
{
    struct sigaction action = {.sa_handler = on_signal};
    sigemptyset(&action.sa_mask);
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGINT, &action, NULL);
    signal(SIGPIPE, SIG_IGN);  /* a client that hangs up mid-response is a write error, not a kill */
}

static bool leads_with(const kiln_tensor_desc *descs, uint32_t count, int64_t rows)
{
    for (uint32_t i = 0; i < count; i++) {
        if (descs[i].rank == 0 || descs[i].shape[0] != rows) {
            return false;
        }
    }
    return true;
}

/* --max-batch: rows gathered per run, at most the (largest bucket's) batch the model was compiled for;
 * 0 is off. Batching and shape buckets both split runs into requests' rows. */
static int64_t batching_rows(const struct session *s, const struct options *o, bool bucketed)
{
    const kiln_model_desc *m = s->model;
    int64_t compiled = batch_rows(m);
    if (o->max_batch > compiled) {
        fail("serve: --max-batch %d exceeds the batch of %lld that model '%s' was compiled with", o->max_batch,
             (long long)compiled, m->model_name);
    }
    bool split = leads_with(m->inputs, m->n_inputs, compiled) && leads_with(m->outputs, m->n_outputs, compiled);
    if ((o->max_batch > 1 || bucketed) && !split) {
        fail("serve: %s needs every input and output of model '%s' to lead with its batch %lld",
             bucketed ? "serving shape buckets" : "--max-batch", m->model_name, (long long)compiled);
    }
    return o->max_batch > 1 ? o->max_batch : 0;
}

void serve_tune_malloc(char **argv)
{
    const char *tunables = getenv("GLIBC_TUNABLES");
    if (tunables != NULL && strstr(tunables, "glibc.malloc.tcache_count") != NULL) {
        return;  /* set by the user, or by the exec below */
    }
    char value[1024];
    int n = snprintf(value, sizeof value, "%s%sglibc.malloc.tcache_count=0", tunables ? tunables : "",
                     tunables ? ":" : "");
    if (n < 0 || (size_t)n >= sizeof value) {
        return;
    }
    setenv("GLIBC_TUNABLES", value, 1);
    execv("/proc/self/exe", argv);  /* returns only if it cannot: then glibc's defaults it is */
}

/* Whether the buckets differ only in their inputs' leading (batch) dim, as batch_sizes buckets do. */
static bool batch_only(struct bucket_set set)
{
    const kiln_model_desc *last = set.models[set.count - 1];
    for (uint32_t b = 0; b + 1 < set.count; b++) {
        for (uint32_t i = 0; i < last->n_inputs; i++) {
            const kiln_tensor_desc *t = &set.models[b]->inputs[i], *u = &last->inputs[i];
            if (t->rank != u->rank || (t->rank > 1 && memcmp(t->shape + 1, u->shape + 1,
                                                              (t->rank - 1) * sizeof *t->shape) != 0)) {
                return false;
            }
        }
    }
    return true;
}

/* One session per shape bucket, smallest first; `s` (the largest, opened by main) lends the others its
 * weights and pool. GPU and PJRT sessions serve their own bucket alone, and so does a model whose
 * buckets differ in more than the batch (model(shapes)): requests take the largest one's shapes. */
static void open_buckets(struct bucket_sessions *b, struct session *s)
{
    struct bucket_set set = buckets_linked(s->model);
    b->bucketed = set.count > 1 && batch_only(set);
    bool siblings = b->bucketed && s->gpu == NULL && s->pjrt == NULL;
    b->count = siblings ? set.count : 1;
    b->items = calloc(b->count, sizeof *b->items);
    b->runs = calloc(b->count, sizeof *b->runs);
    if (b->items == NULL || b->runs == NULL) {
        fail("out of memory");
    }
    for (uint32_t i = 0; i < b->count; i++) {
        b->items[i] = s;
        if (siblings && set.models[i] != s->model) {
            b->items[i] = malloc(sizeof *b->items[i]);
            if (b->items[i] == NULL) {
                fail("out of memory");
            }
            session_open_sibling(b->items[i], s, set.models[i]);
        }
    }
}

/* Frees the siblings; `s` stays open for main to close. */
static void close_buckets(struct bucket_sessions *b, const struct session *s)
{
    for (uint32_t i = 0; i < b->count; i++) {
        if (b->items[i] != s) {
            session_close(b->items[i]);
            free(b->items[i]);
        }
    }
    free(b->items);
    free(b->runs);
}

void serve_run(struct session *s, const struct options *o, const char *platform)
{
    struct server srv = {.options = o};
    open_buckets(&srv.sessions, s);
    srv.session = srv.sessions.items[srv.sessions.count - 1];  /* requests are checked against its shapes */
    srv.model = (struct serve_model){.session = srv.session, .sessions = &srv.sessions};
    int64_t rows = batching_rows(srv.session, o, srv.sessions.bucketed);
    /* side by side only where a request is one whole run: with buckets or batching, runs hold rows */
    lanes_open(&srv.model.lanes, srv.session, !srv.sessions.bucketed && rows == 0, o->lanes);
    row_lanes_open(&srv.sessions.split, srv.sessions.items, srv.sessions.count, o->lanes);
    sem_init(&srv.model.parsers, 0, (unsigned)s->threads);
    /* glibc gives each busy thread its own arena, up to 8 per core: with one HTTP thread per connection
     * that is megabytes of heap kept per arena; one arena per parser is enough. */
    mallopt(M_ARENA_MAX, s->threads);
    metrics_init(&srv.metrics, platform);
    catch_signals();
    mg_init_library(0);
    struct mg_context *ctx = start(&srv, o);
    note("serving model '%s' on http://%s:%d (Open Inference Protocol v2; /metrics)", s->model->model_name,
         o->host, o->port);
    for (uint32_t i = srv.sessions.count; i-- > 0;) {
        session_run(srv.sessions.items[i]);  /* the warm-up, before any request: ready once each bucket ran */
    }
    for (int i = 0; i < srv.model.lanes.count; i++) {
        session_run(srv.model.lanes.narrow[i]);  /* and each lane */
    }
    int lanes = row_lanes_plan(&srv.sessions.split, batch_rows(srv.session->model));
    if (lanes > 0) {
        row_lanes_run(&srv.sessions.split, lanes, NULL);  /* and the row lanes, on a full batch */
    }
    if (rows > 0) {
        batcher_init(&srv.batcher, &srv.sessions, rows, o->batch_timeout_us);
        srv.model.batcher = &srv.batcher;
    }
    atomic_store(&srv.ready, true);
    struct timespec tick = {.tv_nsec = 20 * 1000 * 1000};
    while (!stopping) {
        nanosleep(&tick, NULL);
    }
    atomic_store(&srv.ready, false);
    mg_stop(ctx);  /* stops accepting, then joins the workers once their requests are answered */
    mg_exit_library();
    if (srv.model.batcher != NULL) {
        batcher_destroy(&srv.batcher);
    }
    lanes_close(&srv.model.lanes);
    row_lanes_close(&srv.sessions.split);
    sem_destroy(&srv.model.parsers);
    pthread_mutex_destroy(&srv.metrics.lock);
    close_buckets(&srv.sessions, s);
    note("serve: stopped");
}
