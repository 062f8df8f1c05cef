/*
 * libesp demo: a three-stage synthesis pipeline (parallel answers, peer
 * review, final synthesis) run by many short-lived "agents", each of which
 * takes a lease on a client, makes one asynchronous chat completion and
 * releases its lease -- the pattern that exhausts sockets when every agent
 * builds its own HTTP client. Each stage is started from the callbacks of
 * the one before. The same workload runs twice: with the shared client,
 * and the naive way (a client of its own per agent), and the pool's
 * numbers are printed side by side.
 *
 *   test/mock/with-mock.sh build/examples/demo      (or: make demo)
 */
#include <esp.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { AGENTS = 64, STAGES = 3 };

struct run;

struct agent_call {
  struct run *run;
  int stage;
  int index;
  double started_ms;
};

struct run {
  const char *label;
  int naive;
  char base_url[256];
  char ca_file[512];
  pthread_mutex_t mu;
  pthread_cond_t done_cv;
  int answers_done, reviews_done, done;
  int failures;
  int requests;
  double latencies_ms[AGENTS * 2 + 1];
  int latency_count;
  struct agent_call calls[AGENTS * 2 + 1];
};

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void config_for(struct run *r, int stage, int index, char *out, size_t n) {
  if (r->naive) /* one client per agent: its own connections, freed after use */
    snprintf(out, n,
             "{\"base_url\":\"%s\",\"ca_file\":\"%s\",\"api_key\":\"sk-demo\",\"name\":\"naive-%d-%d\","
             "\"isolate\":true,\"idle_ttl_ms\":0}",
             r->base_url, r->ca_file, stage, index);
  else
    snprintf(out, n, "{\"base_url\":\"%s\",\"ca_file\":\"%s\",\"api_key\":\"sk-demo\",\"name\":\"pipeline\"}",
             r->base_url, r->ca_file);
}

static void on_complete(void *user, int status, esp_response *resp);

/* One agent's life: lease, one asynchronous request, release. The request
   keeps going after the release: a lease is not the connection. */
static void run_agent(struct run *r, int stage, int index, const char *question) {
  char config[512], body[512];
  esp_client client = 0;
  struct agent_call *call = &r->calls[stage == 2 ? AGENTS * 2 : (stage * AGENTS) + index];
  call->run = r;
  call->stage = stage;
  call->index = index;
  call->started_ms = now_ms();
  config_for(r, stage, index, config, sizeof config);
  snprintf(body, sizeof body,
           "{\"model\":\"gpt-mock\",\"messages\":[{\"role\":\"user\",\"content\":\"%s %d\"}]}", question, index);
  esp_request_opts req;
  memset(&req, 0, sizeof req);
  req.struct_size = sizeof req;
  req.path = "chat/completions";
  req.body = body;
  req.body_len = strlen(body);
  esp_header delay = {"x-mock-delay-ms", "5"};
  req.headers = &delay;
  req.header_count = 1;
  esp_callbacks cb;
  memset(&cb, 0, sizeof cb);
  cb.struct_size = sizeof cb;
  cb.on_complete = on_complete;
  if (esp_client_get(config, &client) != ESP_OK ||
      esp_request_async(client, &req, &cb, call, NULL) != ESP_OK) {
    fprintf(stderr, "agent %d/%d: %s\n", stage, index, esp_last_error());
    pthread_mutex_lock(&r->mu);
    r->failures++;
    r->done = 1;
    pthread_cond_signal(&r->done_cv);
    pthread_mutex_unlock(&r->mu);
  }
  if (client) esp_client_release(client);
}

static void on_complete(void *user, int status, esp_response *resp) {
  struct agent_call *call = user;
  struct run *r = call->run;
  int ok = status == ESP_OK && esp_response_status(resp) == 200;
  esp_response_free(resp);
  pthread_mutex_lock(&r->mu);
  r->requests++;
  if (!ok) r->failures++;
  r->latencies_ms[r->latency_count++] = now_ms() - call->started_ms;
  int start_review = call->stage == 0;
  int start_synthesis = call->stage == 1 && ++r->reviews_done == AGENTS;
  if (call->stage == 2) {
    r->done = 1;
    pthread_cond_signal(&r->done_cv);
  }
  pthread_mutex_unlock(&r->mu);
  /* Chaining from the callback: the next stage's requests start here. */
  if (start_review) run_agent(r, 1, call->index, "Review this answer:");
  if (start_synthesis) run_agent(r, 2, 0, "Synthesize the reviewed answers:");
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static long mock_connections(const char *mock_url) {
  char url[300];
  snprintf(url, sizeof url, "%s/_mock/stats", mock_url);
  esp_client c = 0;
  esp_response *resp = NULL;
  esp_request_opts req;
  memset(&req, 0, sizeof req);
  req.struct_size = sizeof req;
  req.path = url;
  long n = -1;
  if (esp_client_get("{\"provider\":\"generic\",\"base_url\":\"http://127.0.0.1\",\"isolate\":true}", &c) ==
          ESP_OK &&
      esp_request(c, &req, &resp) == ESP_OK) {
    size_t len = 0;
    const char *b = esp_response_body(resp, &len);
    const char *p = strstr(b, "\"connections\":");
    if (p) n = strtol(p + 14, NULL, 10); /* the mock does not count control requests */
  }
  esp_response_free(resp);
  if (c) esp_client_release(c);
  return n;
}

struct result {
  double wall_ms, p50, p90, p99;
  long connections;
  int requests, failures;
};

static struct result run_pipeline(struct run *r, const char *mock_url) {
  struct result res;
  memset(&res, 0, sizeof res);
  pthread_mutex_init(&r->mu, NULL);
  pthread_cond_init(&r->done_cv, NULL);
  long conns_before = mock_connections(mock_url);
  double t0 = now_ms();
  for (int i = 0; i < AGENTS; ++i) run_agent(r, 0, i, "Answer question");
  pthread_mutex_lock(&r->mu);
  while (!r->done) pthread_cond_wait(&r->done_cv, &r->mu);
  pthread_mutex_unlock(&r->mu);
  res.wall_ms = now_ms() - t0;
  res.connections = mock_connections(mock_url) - conns_before;
  qsort(r->latencies_ms, (size_t)r->latency_count, sizeof(double), cmp_double);
  res.p50 = r->latencies_ms[r->latency_count * 50 / 100];
  res.p90 = r->latencies_ms[r->latency_count * 90 / 100];
  res.p99 = r->latencies_ms[r->latency_count * 99 / 100];
  res.requests = r->requests;
  res.failures = r->failures;
  return res;
}

int main(void) {
  const char *mock_url = getenv("ESP_MOCK_HTTP");
  const char *tls_url = getenv("ESP_MOCK_HTTPS");
  const char *ca_file = getenv("ESP_MOCK_CA");
  if (!mock_url || !tls_url || !ca_file) {
    fprintf(stderr, "ESP_MOCK_HTTP is not set: run through test/mock/with-mock.sh (make demo)\n");
    return 2;
  }
  static struct run pooled, naive;
  snprintf(pooled.base_url, sizeof pooled.base_url, "%s/v1", tls_url);
  snprintf(naive.base_url, sizeof naive.base_url, "%s/v1", tls_url);
  snprintf(pooled.ca_file, sizeof pooled.ca_file, "%s", ca_file);
  snprintf(naive.ca_file, sizeof naive.ca_file, "%s", ca_file);
  naive.naive = 1;
  printf("libesp %s\n", esp_version_string());
  printf("pipeline: %d agents answer, %d agents review, 1 synthesizes; each agent = lease + 1 async call + release\n",
         AGENTS, AGENTS);
  printf("server: the bundled mock LLM server over TLS (HTTP/2), 5 ms per completion\n\n");
  struct result a = run_pipeline(&pooled, mock_url);
  char *stats = NULL;
  esp_stats(&stats);
  const char *reused = stats ? strstr(stats, "\"connections_reused\":") : NULL;
  const char *opened = stats ? strstr(stats, "\"connections_opened\":") : NULL;
  long n_reused = reused ? strtol(reused + 21, NULL, 10) : 0;
  long n_opened = opened ? strtol(opened + 21, NULL, 10) : 0;
  esp_free(stats);
  struct result b = run_pipeline(&naive, mock_url);

  printf("%-28s %18s %24s\n", "", "shared client", "client per agent");
  printf("%-28s %18d %24d\n", "requests", a.requests, b.requests);
  printf("%-28s %18d %24d\n", "failures", a.failures, b.failures);
  printf("%-28s %18ld %24ld\n", "TCP connections opened", a.connections, b.connections);
  printf("%-28s %17.0f%% %23s\n", "connection reuse",
         n_opened + n_reused ? 100.0 * (double)n_reused / (double)(n_opened + n_reused) : 0.0, "0%");
  printf("%-28s %15.1f ms %21.1f ms\n", "wall time", a.wall_ms, b.wall_ms);
  printf("%-28s %7.1f/%4.1f/%4.1f ms %13.1f/%4.1f/%4.1f ms\n", "latency p50/p90/p99", a.p50, a.p90, a.p99, b.p50,
         b.p90, b.p99);
  esp_shutdown(5000);
  return a.failures || b.failures ? 1 : 0;
}
