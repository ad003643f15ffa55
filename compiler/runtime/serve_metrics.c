#include "serve_metrics.h"

/* Upper bounds in seconds, from 50 us (one mnist inference) to 10 s. */
static const double bounds[METRICS_BUCKETS] = {
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 10.0,
};

void metrics_init(struct serve_metrics *m, const char *platform)
{
    *m = (struct serve_metrics){.platform = platform};
    pthread_mutex_init(&m->lock, NULL);
}

static void observe(struct histogram *h, double seconds)
{
    for (int i = 0; i < METRICS_BUCKETS; i++) {
        if (seconds <= bounds[i]) {
            h->buckets[i]++;
            break;
        }
    }
    h->count++;
    h->sum += seconds;
}

void metrics_request_started(struct serve_metrics *m)
{
    pthread_mutex_lock(&m->lock);
    m->in_flight++;
    pthread_mutex_unlock(&m->lock);
}

static void count_code(struct serve_metrics *m, int status)
{
    for (int i = 0; i < METRICS_CODES; i++) {
        if (m->codes[i] == status || m->codes[i] == 0) {
            m->codes[i] = status;
            m->code_counts[i]++;
            return;
        }
    }
}

void metrics_request_done(struct serve_metrics *m, int status, double seconds)
{
    pthread_mutex_lock(&m->lock);
    m->in_flight--;
    count_code(m, status);
    observe(&m->latency, seconds);
    pthread_mutex_unlock(&m->lock);
}

void metrics_inference(struct serve_metrics *m, double queue_seconds, double infer_seconds)
{
    pthread_mutex_lock(&m->lock);
    observe(&m->queue, queue_seconds);
    observe(&m->inference, infer_seconds);
    pthread_mutex_unlock(&m->lock);
}

static void render_histogram(struct strbuf *out, const char *name, const char *help, const struct histogram *h)
{
    strbuf_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    unsigned long long cumulative = 0;
    for (int i = 0; i < METRICS_BUCKETS; i++) {
        cumulative += h->buckets[i];
        strbuf_printf(out, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i], cumulative);
    }
    strbuf_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.9g\n%s_count %llu\n", name, h->count, name, h->sum,
                  name, h->count);
}

void metrics_render(struct serve_metrics *m, struct strbuf *out)
{
    pthread_mutex_lock(&m->lock);
    strbuf_printf(out, "# HELP kiln_requests_total HTTP requests answered, by status code.\n"
                       "# TYPE kiln_requests_total counter\n");
    for (int i = 0; i < METRICS_CODES && m->codes[i] != 0; i++) {
        strbuf_printf(out, "kiln_requests_total{code=\"%d\"} %llu\n", m->codes[i], m->code_counts[i]);
    }
    render_histogram(out, "kiln_request_duration_seconds", "Time from request to response.", &m->latency);
    render_histogram(out, "kiln_queue_duration_seconds", "Time an inference waited for the model.", &m->queue);
    render_histogram(out, "kiln_inference_duration_seconds", "Time the model ran for one request.", &m->inference);
    strbuf_printf(out, "# HELP kiln_requests_in_flight Requests being answered.\n"
                       "# TYPE kiln_requests_in_flight gauge\nkiln_requests_in_flight %ld\n", m->in_flight);
    strbuf_printf(out, "# HELP kiln_platform_info The platform chosen at startup.\n"
                       "# TYPE kiln_platform_info gauge\nkiln_platform_info{platform=\"%s\"} 1\n", m->platform);
    pthread_mutex_unlock(&m->lock);
}
