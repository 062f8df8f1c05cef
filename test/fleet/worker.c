/*
 * One process of a fleet, for the fleet tests and `make bench SCEN=fleet`:
 * AGENTS concurrent agents each send requests back to back (asynchronous
 * calls chained from on_complete) for DURATION_MS, then it prints one line
 * of JSON with what happened and the process's esp_stats, and exits.
 *
 *   fleet_worker CONFIG_JSON DURATION_MS AGENTS [PATH] [HEADER:VALUE] [PAUSE_MS]
 *
 * PAUSE_MS: an agent whose call failed (or was not a 200) waits that long
 * before its next one, so that calls failing fast (an open breaker) do not
 * spin; its next call is started by a pacer thread, never on libesp's.
 *
 * Exit status 0; 3 when the calls did not all complete within DURATION_MS
 * plus 30 s (something hung).
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "esp.h"

#define MAX_SAMPLES 200000
#define MAX_CODE 32

static const char kBody[] =
    "{\"model\":\"gpt-mock\",\"max_tokens\":8,\"messages\":[{\"role\":\"user\",\"content\":\"hello fleet\"}]}";

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int agents_running;
static double deadline_ms;
static esp_client client;
static esp_request_opts req;
static esp_header extra;
static long ok_count, http_429, http_other, failures[MAX_CODE], retries;
static double latencies[MAX_SAMPLES];
static long samples;
static double pause_ms;
static double **paused;        /* agents waiting for their pause to end (pacer thread) */
static double *paused_until;
static int paused_count;
static pthread_cond_t pacer_cv = PTHREAD_COND_INITIALIZER;

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static void on_complete(void *user, int status, esp_response *r);

static esp_callbacks callbacks = {sizeof(esp_callbacks), NULL, NULL, NULL, on_complete};

/* Starts the agent's next request, or ends the agent. */
static void next(double *started) {
  if (now_ms() < deadline_ms) {
    *started = now_ms();
    if (esp_request_async(client, &req, &callbacks, started, NULL) == ESP_OK) return;
    pthread_mutex_lock(&mu);
    failures[MAX_CODE - 1]++;
    pthread_mutex_unlock(&mu);
  }
  pthread_mutex_lock(&mu);
  if (--agents_running == 0) pthread_cond_signal(&cv);
  pthread_mutex_unlock(&mu);
}

static void on_complete(void *user, int status, esp_response *r) {
  double *started = user;
  double took = now_ms() - *started;
  int failed = status != ESP_OK || esp_response_status(r) != 200;
  pthread_mutex_lock(&mu);
  if (status == ESP_OK) {
    int http = esp_response_status(r);
    if (http == 200) ok_count++;
    else if (http == 429) http_429++;
    else http_other++;
    retries += esp_response_attempts(r) - 1;
    if (samples < MAX_SAMPLES) latencies[samples++] = took;
  } else {
    failures[-status < MAX_CODE - 1 ? -status : MAX_CODE - 1]++;
  }
  if (failed && pause_ms > 0) {
    paused[paused_count] = started;
    paused_until[paused_count++] = now_ms() + pause_ms;
    pthread_cond_signal(&pacer_cv);
  }
  pthread_mutex_unlock(&mu);
  esp_response_free(r);
  if (!failed || pause_ms <= 0) next(started);
}

/* Starts the paused agents whose pause is over; ends with the run. */
static void *pacer(void *unused) {
  (void)unused;
  pthread_mutex_lock(&mu);
  while (agents_running > 0) {
    double now = now_ms();
    for (int i = 0; i < paused_count; ++i) {
      if (paused_until[i] > now) continue;
      double *agent = paused[i];
      paused[i] = paused[--paused_count];
      paused_until[i] = paused_until[paused_count];
      --i;
      pthread_mutex_unlock(&mu);
      next(agent);
      pthread_mutex_lock(&mu);
    }
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += 1000000;
    if (until.tv_nsec >= 1000000000) {
      until.tv_sec += 1;
      until.tv_nsec -= 1000000000;
    }
    if (agents_running > 0) pthread_cond_timedwait(&pacer_cv, &mu, &until);
  }
  pthread_mutex_unlock(&mu);
  return NULL;
}

static int by_value(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: fleet_worker CONFIG_JSON DURATION_MS AGENTS [PATH] [HEADER:VALUE] [PAUSE_MS]\n");
    return 2;
  }
  int agents = atoi(argv[3]);
  if (esp_client_get(argv[1], &client) != ESP_OK) {
    fprintf(stderr, "fleet_worker: %s\n", esp_last_error());
    return 2;
  }
  memset(&req, 0, sizeof req);
  req.struct_size = sizeof req;
  req.path = argc > 4 ? argv[4] : "chat/completions";
  req.body = kBody;
  req.body_len = sizeof kBody - 1;
  if (argc > 5) {
    char *colon = strchr(argv[5], ':');
    if (colon) {
      *colon = '\0';
      extra.name = argv[5];
      extra.value = colon + 1;
      req.headers = &extra;
      req.header_count = 1;
    }
  }
  pause_ms = argc > 6 ? atof(argv[6]) : 0;
  double *started = calloc((size_t)agents, sizeof *started);
  paused = calloc((size_t)agents, sizeof *paused);
  paused_until = calloc((size_t)agents, sizeof *paused_until);
  double t0 = now_ms();
  deadline_ms = t0 + atof(argv[2]);
  agents_running = agents;
  pthread_t pacer_thread;
  if (pause_ms > 0) pthread_create(&pacer_thread, NULL, pacer, NULL);
  for (int i = 0; i < agents; ++i) next(&started[i]);
  int hung = 0;
  pthread_mutex_lock(&mu);
  while (agents_running > 0 && !hung) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 1;
    pthread_cond_timedwait(&cv, &mu, &until);
    hung = now_ms() > deadline_ms + 30000;
  }
  pthread_mutex_unlock(&mu);
  double elapsed = now_ms() - t0;
  if (pause_ms > 0 && !hung) pthread_join(pacer_thread, NULL);
  if (hung) {
    fprintf(stderr, "fleet_worker: %d agents still waiting 30 s past the end\n", agents_running);
    return 3;
  }
  qsort(latencies, (size_t)samples, sizeof latencies[0], by_value);
  double p50 = samples ? latencies[samples / 2] : 0, p99 = samples ? latencies[samples * 99 / 100] : 0;
  char *stats = NULL;
  esp_stats(&stats);
  printf("{\"ok\":%ld,\"http_429\":%ld,\"http_other\":%ld,\"retries\":%ld,\"elapsed_ms\":%.0f,\"p50_ms\":%.1f,"
         "\"p99_ms\":%.1f,\"failures\":{",
         ok_count, http_429, http_other, retries, elapsed, p50, p99);
  int first = 1;
  for (int i = 0; i < MAX_CODE; ++i)
    if (failures[i]) {
      printf("%s\"%d\":%ld", first ? "" : ",", -i, failures[i]);
      first = 0;
    }
  printf("},\"stats\":%s}\n", stats ? stats : "null");
  esp_free(stats);
  free(started);
  free(paused);
  free(paused_until);
  esp_client_release(client);
  esp_shutdown(5000);
  return 0;
}
