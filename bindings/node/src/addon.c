/*
 * The N-API half of the Node binding: converts arguments, starts libesp calls
 * and carries their callbacks from libesp's I/O thread to the JS thread.
 *
 * Every request is asynchronous (esp_request_async). The I/O thread copies
 * what it was given into a heap message and appends it to the instance's
 * completion queue. Streams are libesp's non-blocking readers
 * (esp_stream_start): libesp buffers and pauses, its ready callback only
 * appends the stream's id to the instance's ready list, and JS takes the
 * items with streamNext. Either one wakes the JS thread through one
 * napi_threadsafe_function per addon instance only when no wake is queued
 * yet: one wake-up (one callback scope, one microtask checkpoint: Node pays
 * both per queued call) carries every ready and completion that arrived
 * meanwhile, the readies to JS in one call. The JS thread turns each message
 * into JS values and calls the request's JS callback. The thread-safe
 * function is referenced only while a call is in flight or JS waits for a
 * stream, so an idle process exits (also with a stream left unread).
 * Everything above this (Promises, streams, errors) is in lib/.
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <esp.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct Call Call;

/* Stream ids, a growable array. */
typedef struct IdList {
  uint32_t *ids;
  size_t count, capacity;
} IdList;
typedef struct StreamReader StreamReader;
typedef struct Message Message;

/* Per addon instance (per Node environment: main thread or a Worker). It
 * outlives the environment while calls are still in flight, because their
 * I/O-thread callbacks read `closed` under `lock`, and while a wake is
 * queued, because Node hands that to `deliver` (without env) at teardown. */
typedef struct Instance {
  pthread_mutex_t lock;
  int closed;                /* the environment is gone: drop messages */
  size_t pending;            /* calls whose on_complete has not run    */
  Call *calls;               /* the pending calls, to cancel at exit   */
  int wake_queued;           /* a wake is queued (or being) on tsfn     */
  atomic_int posting;        /* I/O threads inside a tsfn call: waited
                                for before the tsfn is released        */
  Message *done_head;        /* completions not yet taken by JS         */
  Message *done_tail;
  IdList ready;              /* streams whose ready ran since the last
                                wake was taken                         */
  IdList taken;              /* JS thread only: what the wake took      */
  napi_threadsafe_function tsfn;
  size_t referenced_calls;   /* JS thread only: calls and waiting streams keeping it ref'd */
  StreamReader *streams;     /* JS thread only: open streams, closed at exit */
  napi_ref stream_ready;     /* JS function (id | Uint32Array of ids) => void */
} Instance;

/* One asynchronous call. Freed on the JS thread after its completion was
 * delivered, or on the I/O thread when the environment is gone. */
struct Call {
  Instance *instance;
  Call *prev, *next;         /* in instance->calls, under instance->lock */
  esp_call handle;
  napi_ref callback;         /* the JS function receiving the messages   */
};

/* One open esp_stream_start stream, owned by its JS external object. Its
 * ready callback reads only `instance` and `id`, and never runs once
 * esp_stream_close has returned, so the JS thread frees it after that. */
struct StreamReader {
  Instance *instance;
  StreamReader *prev, *next; /* in instance->streams while open */
  esp_stream handle;
  uint32_t id;               /* what a ready hands to JS */
  int open;
  int waiting;               /* JS waits for ready: keeps the process alive */
};

/* Request headers as C strings, for the duration of esp_request_async
 * (libesp copies the request before it returns). */
typedef struct HeaderList {
  char *block;               /* every name and value, NUL-terminated     */
  esp_header *items;
  size_t count;
} HeaderList;

/* A call's completion, from the I/O thread to the JS thread. */
struct Message {
  Message *next;             /* in instance->done_head, under lock       */
  Call *call;
  int status;                /* ESP_OK or a negative code                */
  int sent;                  /* esp_last_error_sent()                    */
  esp_response *response;    /* may be NULL                              */
  size_t len;                /* bytes in data                            */
  char data[];               /* esp_last_error() text                    */
};

/* ---- helpers ---------------------------------------------------------------- */

#define NAPI_OK(call)                                                        \
  do {                                                                       \
    if ((call) != napi_ok) return NULL;                                      \
  } while (0)

static napi_value make_int(napi_env env, int64_t value) {
  napi_value out;
  napi_create_int64(env, value, &out);
  return out;
}

static napi_value make_string(napi_env env, const char *s, size_t len) {
  napi_value out;
  napi_create_string_utf8(env, s ? s : "", s ? len : 0, &out);
  return out;
}

static napi_value make_handle(napi_env env, uint64_t handle) {
  napi_value out;
  napi_create_bigint_uint64(env, handle, &out);
  return out;
}

static int read_handle(napi_env env, napi_value value, uint64_t *out) {
  bool lossless;
  if (napi_get_value_bigint_uint64(env, value, out, &lossless) != napi_ok) {
    napi_throw_type_error(env, NULL, "handle must be a bigint");
    return 0;
  }
  return 1;
}

/* A JS string argument as a NUL-terminated C string: in `inline_text` when
 * it fits, else in `heap` (the owner frees it). */
typedef struct TextArg {
  char inline_text[256];
  char *heap;
} TextArg;

/* The text of a string argument in *arg; NULL for null/undefined, and NULL
 * with a TypeError pending for anything else (or out of memory). */
static const char *read_text(napi_env env, napi_value value, TextArg *arg) {
  size_t len;
  arg->heap = NULL;
  if (napi_get_value_string_utf8(env, value, arg->inline_text, sizeof arg->inline_text, &len) != napi_ok) {
    napi_valuetype type = napi_undefined;
    napi_typeof(env, value, &type);
    if (type != napi_null && type != napi_undefined) napi_throw_type_error(env, NULL, "expected a string");
    return NULL;
  }
  /* N-API cuts a string short of a character that does not fit whole, so
   * only a result with room left for the longest UTF-8 character (4 bytes)
   * is surely all of it; anything longer is read again at its full length. */
  if (len + 4 < sizeof arg->inline_text) return arg->inline_text;
  napi_get_value_string_utf8(env, value, NULL, 0, &len);
  arg->heap = malloc(len + 1);
  if (arg->heap) napi_get_value_string_utf8(env, value, arg->heap, len + 1, &len);
  return arg->heap;
}

/* A heap copy of a JS string, NUL-terminated; NULL for null/undefined. */
static char *read_string(napi_env env, napi_value value) {
  napi_valuetype type;
  size_t len;
  if (napi_typeof(env, value, &type) != napi_ok) return NULL;
  if (type == napi_null || type == napi_undefined) return NULL;
  if (napi_get_value_string_utf8(env, value, NULL, 0, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "expected a string");
    return NULL;
  }
  char *s = malloc(len + 1);
  if (s) napi_get_value_string_utf8(env, value, s, len + 1, &len);
  return s;
}

static void call_free(napi_env env, Call *call) {
  if (env && call->callback) napi_delete_reference(env, call->callback);
  free(call);
}

static void instance_free(Instance *inst) {
  pthread_mutex_destroy(&inst->lock);
  free(inst->ready.ids);
  free(inst->taken.ids);
  free(inst);
}

/* Nothing can reach inst any more once the environment is gone: no call in
 * flight, no wake queued. Under inst->lock. */
static int instance_unused(const Instance *inst) {
  return inst->closed && inst->pending == 0 && !inst->wake_queued;
}

/* Remove a call from its instance's pending list. Returns 1 when the
 * instance is unused after it: the caller frees the instance. */
static int untrack(Call *call) {
  Instance *inst = call->instance;
  pthread_mutex_lock(&inst->lock);
  if (call->prev) call->prev->next = call->next;
  else inst->calls = call->next;
  if (call->next) call->next->prev = call->prev;
  inst->pending--;
  int last = instance_unused(inst);
  pthread_mutex_unlock(&inst->lock);
  return last;
}

/* Whether the caller, about to add something for JS, must queue the wake
 * (then with wake_posted after unlocking); under inst->lock, environment
 * alive. The wake is queued outside the lock: the eventfd write in it wakes
 * the JS thread, which would otherwise find the lock still held. */
static int wake_needed(Instance *inst) {
  if (inst->wake_queued) return 0;
  inst->wake_queued = 1;
  atomic_fetch_add(&inst->posting, 1);
  return 1;
}

/* Queues the wake wake_needed asked for. It cannot fail: the tsfn is not
 * released while `posting` counts this call, and its queue has no limit. */
static void wake_posted(Instance *inst) {
  napi_call_threadsafe_function(inst->tsfn, NULL, napi_tsfn_nonblocking);
  atomic_fetch_sub(&inst->posting, 1);
}

/* Appends a completion to its instance's queue; from the I/O thread.
 * Returns 0 when the environment is gone (the caller then owns the message
 * again). */
static int queue_completion(Instance *inst, Message *m) {
  pthread_mutex_lock(&inst->lock);
  if (inst->closed) {
    pthread_mutex_unlock(&inst->lock);
    return 0;
  }
  if (inst->done_head) inst->done_tail->next = m;
  else inst->done_head = m;
  inst->done_tail = m;
  int wake = wake_needed(inst);
  pthread_mutex_unlock(&inst->lock);
  if (wake) wake_posted(inst);
  return 1;
}

/* Appends id to list, doubling it when full. Returns 0 when out of memory. */
static int id_append(IdList *list, uint32_t id) {
  if (list->count == list->capacity) {
    size_t capacity = list->capacity ? list->capacity * 2 : 64;
    uint32_t *grown = realloc(list->ids, capacity * sizeof *grown);
    if (!grown) return 0;
    list->ids = grown;
    list->capacity = capacity;
  }
  list->ids[list->count++] = id;
  return 1;
}

/* ---- libesp callbacks (I/O thread) -------------------------------------------- */

/* libesp has news for a stream's reader: list it for JS, which reads it
 * itself. (Out of memory, the ready is lost: there is no way to tell JS.) */
static void on_stream_ready(void *user) {
  StreamReader *r = user;
  Instance *inst = r->instance;
  pthread_mutex_lock(&inst->lock);
  int wake = !inst->closed && id_append(&inst->ready, r->id) && wake_needed(inst);
  pthread_mutex_unlock(&inst->lock);
  if (wake) wake_posted(inst);
}

static void on_complete(void *user, int status, esp_response *resp) {
  Call *call = user;
  Instance *inst = call->instance;
  const char *detail = status < 0 ? esp_last_error() : "";
  size_t len = strlen(detail);
  Message *m = calloc(1, sizeof(Message) + len + 1);
  if (m) {
    m->call = call;
    m->status = status;
    m->sent = status < 0 ? esp_last_error_sent() : 0;
    m->response = resp;
    memcpy(m->data, detail, len + 1);
    m->len = len;
    if (queue_completion(inst, m)) return;
    free(m);
  }
  /* The environment is gone, so nobody will read this completion: release
   * everything here. (Also reached when out of memory, where the JS side
   * then never settles: there is no way to tell it.) */
  esp_response_free(resp);
  int last = untrack(call);
  call_free(NULL, call); /* the napi_refs died with the environment */
  if (last) instance_free(inst);
}

/* ---- JS thread: messages -> JS values ----------------------------------------- */

static void free_response(napi_env env, void *data, void *hint) {
  (void)env;
  (void)data;
  esp_response_free(hint);
}

/* A body for JS: a small one copied into an ArrayBuffer (JS wraps it in a
 * Buffer: a Buffer made here costs a prototype change per object in V8,
 * which JS's own constructor avoids), resp freed at once (cheaper than an
 * external buffer, whose finalizer waits for a GC); a larger one as a Buffer
 * borrowing resp's memory (zero-copy), freed when collected; undefined when
 * empty. Takes ownership of resp. */
#define COPIED_BODY_MAX 16384
static napi_value body_value(napi_env env, esp_response *resp) {
  napi_value body;
  size_t len = 0;
  const void *bytes = esp_response_body(resp, &len);
  if (len > COPIED_BODY_MAX &&
      napi_create_external_buffer(env, len, (void *)bytes, free_response, resp, &body) == napi_ok)
    return body;
  void *copy = NULL;
  if (!bytes || len == 0 || napi_create_arraybuffer(env, len, &copy, &body) != napi_ok) {
    napi_get_undefined(env, &body);
    len = 0;
  }
  if (len) memcpy(copy, bytes, len);
  esp_response_free(resp);
  return body;
}

/* Every header of resp in one Latin-1 string, "name\0value\0..." (C strings
 * hold no NUL, so the split is exact): one JS string per response instead of
 * two per header; JS splits it only if the headers are looked at. */
static napi_value joined_headers(napi_env env, const esp_response *resp) {
  size_t count = esp_response_header_count(resp), total = 0;
  for (size_t i = 0; i < count; i++) {
    const char *name = "", *value = "";
    esp_response_header_at(resp, i, &name, &value);
    total += strlen(name) + strlen(value) + 2;
  }
  char small[2048];
  char *text = total <= sizeof small ? small : malloc(total);
  napi_value out;
  if (!text) {
    napi_create_string_latin1(env, "", 0, &out);
    return out;
  }
  char *p = text;
  for (size_t i = 0; i < count; i++) {
    const char *name = "", *value = "";
    esp_response_header_at(resp, i, &name, &value);
    size_t n = strlen(name) + 1, v = strlen(value) + 1;
    memcpy(p, name, n);
    memcpy(p + n, value, v);
    p += n + v;
  }
  napi_create_string_latin1(env, text, total, &out);
  if (text != small) free(text);
  return out;
}

/* A stream's head for JS, {status, headers: "name\0value\0...", attempts,
 * httpVersion}; frees head. */
static napi_value head_object(napi_env env, esp_response *head) {
  napi_value obj;
  napi_create_object(env, &obj);
  napi_set_named_property(env, obj, "status", make_int(env, esp_response_status(head)));
  napi_set_named_property(env, obj, "headers", joined_headers(env, head));
  napi_set_named_property(env, obj, "attempts", make_int(env, esp_response_attempts(head)));
  napi_set_named_property(env, obj, "httpVersion", make_int(env, esp_response_http_version(head)));
  esp_response_free(head);
  return obj;
}

/* A call's completion as the arguments of its JS callback:
 * (status, detail?, requestSent, httpStatus?, headers?, body?, attempts?,
 * httpVersion?), the last five only with a response (no object built here:
 * lib/ makes the one it returns). Takes ownership of m->response. */
static void completion_arguments(napi_env env, Message *m, napi_value argv[8]) {
  napi_value undefined;
  napi_get_undefined(env, &undefined);
  argv[0] = make_int(env, m->status);
  argv[1] = m->status < 0 ? make_string(env, m->data, m->len) : undefined;
  napi_get_boolean(env, m->sent != 0, &argv[2]);
  esp_response *resp = m->response;
  if (!resp) {
    for (int i = 3; i < 8; i++) argv[i] = undefined;
    return;
  }
  argv[3] = make_int(env, esp_response_status(resp));
  argv[4] = joined_headers(env, resp);
  argv[6] = make_int(env, esp_response_attempts(resp));
  argv[7] = make_int(env, esp_response_http_version(resp));
  argv[5] = body_value(env, resp); /* frees resp: last */
}

/* Streams' readies, on the JS thread: one call of the stream-ready function
 * with the id (one ready, the usual case) or a Uint32Array of them. */
static void deliver_readies(napi_env env, Instance *inst, const uint32_t *ids, size_t count) {
  napi_value fn, arg, undefined, result;
  if (!inst->stream_ready || napi_get_reference_value(env, inst->stream_ready, &fn) != napi_ok || !fn) return;
  if (count == 1) {
    napi_create_uint32(env, ids[0], &arg);
  } else {
    napi_value buffer;
    void *data;
    if (napi_create_arraybuffer(env, count * sizeof *ids, &data, &buffer) != napi_ok ||
        napi_create_typedarray(env, napi_uint32_array, count, buffer, 0, &arg) != napi_ok)
      return;
    memcpy(data, ids, count * sizeof *ids);
  }
  napi_get_undefined(env, &undefined);
  if (napi_call_function(env, undefined, fn, 1, &arg, &result) == napi_pending_exception) {
    napi_value error;
    napi_get_and_clear_last_exception(env, &error);
    napi_fatal_exception(env, error);
  }
}

/* A call's completion, on the JS thread: its JS callback runs, then the call
 * is freed. env NULL: the queue is being dropped at teardown, so only the
 * memory is released (the last call of a closed instance frees it). */
static void deliver_completion(napi_env env, Message *m) {
  Call *call = m->call;
  Instance *inst = call->instance;
  if (!env) {
    esp_response_free(m->response);
    int last = untrack(call);
    call_free(NULL, call);
    if (last) instance_free(inst);
    free(m);
    return;
  }
  napi_value argv[8], fn, undefined;
  napi_get_undefined(env, &undefined);
  completion_arguments(env, m, argv);
  if (napi_get_reference_value(env, call->callback, &fn) == napi_ok && fn) {
    napi_value result;
    if (napi_call_function(env, undefined, fn, 8, argv, &result) == napi_pending_exception) {
      /* A throwing handler is a bug in lib/: surface it like any uncaught error. */
      napi_value error;
      napi_get_and_clear_last_exception(env, &error);
      napi_fatal_exception(env, error);
    }
  }
  untrack(call); /* never the last of a closed instance: env is alive */
  call_free(env, call);
  if (--inst->referenced_calls == 0) napi_unref_threadsafe_function(env, inst->tsfn);
  free(m);
}

/* The thread-safe function's callback, for a wake: takes every ready and
 * completion queued so far (those arriving meanwhile queue the next wake).
 * env is NULL when Node drops the wake at teardown. */
static void deliver(napi_env env, napi_value js_cb, void *context, void *data) {
  (void)js_cb;
  (void)data;
  Instance *inst = context;
  pthread_mutex_lock(&inst->lock);
  inst->wake_queued = 0;
  Message *m = inst->done_head;
  inst->done_head = inst->done_tail = NULL;
  /* The readies swap lists with the (empty) one taken last time: no
   * allocation once both have grown to the usual batch. */
  IdList taken = inst->ready;
  inst->ready = inst->taken;
  inst->taken = (IdList){NULL, 0, 0};
  /* A completion in m keeps inst alive (its call is pending) until the last
   * of them is delivered; a wake with none may be the last use of inst. */
  int last = !m && instance_unused(inst);
  pthread_mutex_unlock(&inst->lock);
  if (env && taken.count) deliver_readies(env, inst, taken.ids, taken.count);
  taken.count = 0;
  inst->taken = taken;
  while (m) {
    Message *next = m->next;
    deliver_completion(env, m);
    m = next;
  }
  if (last) instance_free(inst);
}

/* ---- exported functions ----------------------------------------------------- */

/* clientGet(configJson: string) -> bigint handle | negative status */
static napi_value js_client_get(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char *config = read_string(env, argv[0]);
  bool thrown;
  napi_is_exception_pending(env, &thrown);
  if (thrown) return NULL;
  esp_client client = 0;
  int rc = esp_client_get(config, &client);
  free(config);
  return rc < 0 ? make_int(env, rc) : make_handle(env, client);
}

/* The handle in a function's only argument; 0 with a TypeError pending if
 * it is not a bigint. */
static int handle_argument(napi_env env, napi_callback_info info, uint64_t *handle) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return 0;
  return read_handle(env, argv[0], handle);
}

/* clientRelease(handle: bigint) -> status */
static napi_value js_client_release(napi_env env, napi_callback_info info) {
  uint64_t handle;
  if (!handle_argument(env, info, &handle)) return NULL;
  return make_int(env, esp_client_release(handle));
}

/* Copies the [name, value, ...] strings into list->block, one allocation
 * for all of them, and points list->items into it. */
static int read_headers(napi_env env, napi_value flat, HeaderList *list) {
  uint32_t strings = 0;
  napi_get_array_length(env, flat, &strings);
  size_t count = strings / 2, block_len = 0;
  if (count == 0) return 1;
  for (uint32_t i = 0; i < count * 2; i++) {
    napi_value s;
    size_t len;
    napi_get_element(env, flat, i, &s);
    if (napi_get_value_string_utf8(env, s, NULL, 0, &len) != napi_ok) {
      napi_throw_type_error(env, NULL, "header names and values must be strings");
      return 0;
    }
    block_len += len + 1;
  }
  list->block = malloc(block_len + 1);
  list->items = calloc(count + 1, sizeof(esp_header));
  if (!list->block || !list->items) return 0;
  char *p = list->block, *end = p + block_len + 1;
  for (uint32_t i = 0; i < count * 2; i++) {
    napi_value s;
    size_t written;
    napi_get_element(env, flat, i, &s);
    napi_get_value_string_utf8(env, s, p, (size_t)(end - p), &written);
    if (i % 2 == 0) list->items[i / 2].name = p;
    else list->items[i / 2].value = p;
    p += written + 1;
  }
  list->count = count;
  return 1;
}

/* Per-request timeouts from an optional [connect, read, write, pool,
 * firstByte, idle] array, shorter ones meaning the rest are 0 (milliseconds;
 * 0 the client's, ESP_NO_TIMEOUT none). */
static void read_phase_timeouts(napi_env env, napi_value array, esp_request_opts *opts) {
  bool is_array = false;
  napi_is_array(env, array, &is_array);
  if (!is_array) return;
  int64_t *fields[] = {&opts->connect_timeout_ms, &opts->read_timeout_ms,       &opts->write_timeout_ms,
                       &opts->pool_timeout_ms,    &opts->first_byte_timeout_ms, &opts->idle_timeout_ms};
  for (uint32_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
    napi_value item;
    double ms = 0;
    if (napi_get_element(env, array, i, &item) == napi_ok && napi_get_value_double(env, item, &ms) == napi_ok)
      *fields[i] = (int64_t)ms;
  }
}

/* The strings of a request, owned until libesp has copied the request.
 * Method and path usually fit the inline buffers: no allocation per call. */
typedef struct RequestArgs {
  TextArg method;
  TextArg path;
  HeaderList headers;
} RequestArgs;

static void free_request_args(RequestArgs *a) {
  free(a->method.heap);
  free(a->path.heap);
  free(a->headers.block);
  free(a->headers.items);
}

/* Fills opts from arguments 1-6 of request() and streamStart() (method,
 * path, headers, body, timeoutMs, flags) and their phase timeouts (may be
 * NULL). Returns 0 with an exception pending (or out of memory). */
static int read_request(napi_env env, napi_value *argv, napi_value phases, esp_request_opts *opts,
                        RequestArgs *args) {
  memset(opts, 0, sizeof *opts);
  opts->struct_size = sizeof *opts;
  opts->method = read_text(env, argv[1], &args->method);
  opts->path = read_text(env, argv[2], &args->path);
  bool thrown;
  napi_is_exception_pending(env, &thrown);
  if (thrown || !opts->path || !read_headers(env, argv[3], &args->headers)) return 0;
  opts->headers = args->headers.items;
  opts->header_count = args->headers.count;
  napi_valuetype body_type;
  napi_typeof(env, argv[4], &body_type);
  if (body_type != napi_null && body_type != napi_undefined) {
    void *data;
    size_t len;
    if (napi_get_buffer_info(env, argv[4], &data, &len) != napi_ok) {
      napi_throw_type_error(env, NULL, "body must be a Buffer");
      return 0;
    }
    opts->body = data;
    opts->body_len = len;
  }
  double timeout_ms = 0;
  uint32_t flags = 0;
  napi_get_value_double(env, argv[5], &timeout_ms);
  napi_get_value_uint32(env, argv[6], &flags);
  opts->timeout_ms = (int64_t)timeout_ms;
  opts->flags = flags;
  if (phases) read_phase_timeouts(env, phases, opts);
  return 1;
}

/* After read_request failed: throw out-of-memory unless something else is pending. */
static napi_value request_args_failed(napi_env env) {
  bool thrown;
  napi_is_exception_pending(env, &thrown);
  if (!thrown) napi_throw_error(env, "ESP_ENOMEM", "out of memory");
  return NULL;
}

/*
 * request(client: bigint, method: string|null, path: string,
 *         headers: string[] (name, value, ...), body: Buffer|null,
 *         timeoutMs: number, flags: number,
 *         callback: (status, detail?, requestSent, httpStatus?, headers?
 *                    ("name\0value\0..."), body?: ArrayBuffer (up to 16 KiB)
 *                    | Buffer, attempts?,
 *                    httpVersion?) => void,
 *         phaseTimeouts?: number[])
 *   -> bigint call | negative status
 */
static napi_value js_request(napi_env env, napi_callback_info info) {
  size_t argc = 9;
  napi_value argv[9];
  Instance *inst;
  uint64_t client;
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  NAPI_OK(napi_get_instance_data(env, (void **)&inst));
  if (argc < 8) {
    napi_throw_type_error(env, NULL, "request: 8 arguments expected");
    return NULL;
  }
  if (!read_handle(env, argv[0], &client)) return NULL;

  Call *call = calloc(1, sizeof(Call));
  if (!call) {
    napi_throw_error(env, "ESP_ENOMEM", "out of memory");
    return NULL;
  }
  call->instance = inst;
  esp_request_opts opts;
  RequestArgs args = {.headers = {NULL, NULL, 0}};
  if (!read_request(env, argv, argc > 8 ? argv[8] : NULL, &opts, &args) ||
      napi_create_reference(env, argv[7], 1, &call->callback) != napi_ok) {
    free_request_args(&args);
    call_free(env, call);
    return request_args_failed(env);
  }

  esp_callbacks cb;
  memset(&cb, 0, sizeof cb);
  cb.struct_size = sizeof cb;
  cb.on_complete = on_complete;

  /* Count the call before starting it: on_complete may run at once. */
  pthread_mutex_lock(&inst->lock);
  call->next = inst->calls;
  if (inst->calls) inst->calls->prev = call;
  inst->calls = call;
  inst->pending++;
  pthread_mutex_unlock(&inst->lock);
  if (inst->referenced_calls++ == 0) napi_ref_threadsafe_function(env, inst->tsfn);

  esp_call handle = 0;
  int rc = esp_request_async(client, &opts, &cb, call, &handle);
  free_request_args(&args);
  if (rc < 0) { /* no callback will ever run for this call */
    untrack(call);
    if (--inst->referenced_calls == 0) napi_unref_threadsafe_function(env, inst->tsfn);
    call_free(env, call);
    return make_int(env, rc);
  }
  /* Still valid: the call is freed on this thread, after this returns. */
  call->handle = handle;
  return make_handle(env, handle);
}

/* cancel(call: bigint) -> status (ESP_EHANDLE once it completed) */
static napi_value js_cancel(napi_env env, napi_callback_info info) {
  uint64_t handle;
  if (!handle_argument(env, info, &handle)) return NULL;
  return make_int(env, esp_call_cancel(handle));
}

/* ---- streams (esp_stream_start), JS thread only ---------------------------------- */

/* JS starts or stops waiting for a stream's ready: like a socket read, a
 * wait keeps the process alive, an unread stream does not. */
static void set_waiting(napi_env env, StreamReader *r, int waiting) {
  Instance *inst = r->instance;
  if (r->waiting == waiting) return;
  r->waiting = waiting;
  if (!env) return;
  if (waiting && inst->referenced_calls++ == 0) napi_ref_threadsafe_function(env, inst->tsfn);
  if (!waiting && --inst->referenced_calls == 0) napi_unref_threadsafe_function(env, inst->tsfn);
}

/* Closes a stream: libesp cancels an unfinished transfer, and ready never
 * runs again once this returns. env is NULL at teardown. */
static void stream_close(napi_env env, StreamReader *r) {
  if (!r->open) return;
  r->open = 0;
  esp_stream_close(r->handle);
  Instance *inst = r->instance;
  if (r->prev) r->prev->next = r->next;
  else inst->streams = r->next;
  if (r->next) r->next->prev = r->prev;
  set_waiting(env, r, 0);
}

/* A forgotten stream, garbage-collected: close it. */
static void stream_finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  stream_close(env, data);
  free(data);
}

/* The StreamReader of an external, or NULL with a TypeError pending. */
static StreamReader *read_stream(napi_env env, napi_value value) {
  void *data = NULL;
  if (napi_get_value_external(env, value, &data) != napi_ok || !data) {
    napi_throw_type_error(env, NULL, "expected a stream");
    return NULL;
  }
  return data;
}

/* onStreamReady(fn: (id: number) => void): where a stream's ready goes. */
static napi_value js_on_stream_ready(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  Instance *inst;
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  NAPI_OK(napi_get_instance_data(env, (void **)&inst));
  if (inst->stream_ready) napi_delete_reference(env, inst->stream_ready);
  NAPI_OK(napi_create_reference(env, argv[0], 1, &inst->stream_ready));
  return NULL;
}

/*
 * streamStart(client: bigint, method, path, headers, body, timeoutMs, flags
 *             (as for request), id: number, phaseTimeouts?: number[])
 *   -> stream (an external) | negative status
 */
static napi_value js_stream_start(napi_env env, napi_callback_info info) {
  size_t argc = 9;
  napi_value argv[9];
  Instance *inst;
  uint64_t client;
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  NAPI_OK(napi_get_instance_data(env, (void **)&inst));
  if (argc < 8) {
    napi_throw_type_error(env, NULL, "streamStart: 8 arguments expected");
    return NULL;
  }
  if (!read_handle(env, argv[0], &client)) return NULL;
  StreamReader *r = calloc(1, sizeof(StreamReader));
  if (!r) {
    napi_throw_error(env, "ESP_ENOMEM", "out of memory");
    return NULL;
  }
  r->instance = inst;
  esp_request_opts opts;
  RequestArgs args = {.headers = {NULL, NULL, 0}};
  if (!read_request(env, argv, argc > 8 ? argv[8] : NULL, &opts, &args) ||
      napi_get_value_uint32(env, argv[7], &r->id) != napi_ok) {
    free_request_args(&args);
    free(r);
    return request_args_failed(env);
  }
  int rc = esp_stream_start(client, &opts, on_stream_ready, r, &r->handle);
  free_request_args(&args);
  napi_value out;
  if (rc < 0) { /* refused: ready never runs */
    free(r);
    return make_int(env, rc);
  }
  r->open = 1;
  r->next = inst->streams;
  if (inst->streams) inst->streams->prev = r;
  inst->streams = r;
  if (napi_create_external(env, r, stream_finalize, NULL, &out) != napi_ok) {
    stream_close(env, r);
    free(r);
    napi_throw_error(env, "ESP_ENOMEM", "out of memory");
    return NULL;
  }
  return out;
}

/* streamHead(stream) -> {status, headers ("name\0value\0..."), attempts,
 * httpVersion} | negative status (ESP_EAGAIN: not yet; ready will say) */
static napi_value js_stream_head(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  StreamReader *r = read_stream(env, argv[0]);
  if (!r) return NULL;
  esp_response *head = NULL;
  int rc = r->open ? esp_stream_head(r->handle, &head) : ESP_ECANCELLED;
  set_waiting(env, r, rc == ESP_EAGAIN);
  return rc < 0 ? make_int(env, rc) : head_object(env, head);
}

/* streamNext(stream, wait = true) -> Buffer (a raw chunk) | {event, data,
 * id, retry} (an SSE event) | string (the data of an event of type "message"
 * with no id or retry: most events, and one JS value instead of an object
 * built through N-API) | null (the end) | negative status (ESP_EAGAIN:
 * nothing yet; with wait false the caller will not wait for the ready, so
 * the process is not kept alive for it) */
static napi_value js_stream_next(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], out;
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  StreamReader *r = read_stream(env, argv[0]);
  if (!r) return NULL;
  bool wait = true;
  if (argc > 1) napi_get_value_bool(env, argv[1], &wait);
  esp_stream_item item = ESP_STREAM_ITEM_INIT;
  int rc = r->open ? esp_stream_next(r->handle, 0, &item) : ESP_ECANCELLED;
  set_waiting(env, r, wait && rc == ESP_EAGAIN);
  if (rc < 0) return make_int(env, rc);
  if (rc == 0) {
    napi_get_null(env, &out);
  } else if (item.kind == ESP_ITEM_CHUNK) {
    napi_create_buffer_copy(env, item.chunk_len, item.chunk, NULL, &out);
  } else if (item.ev->retry_ms < 0 && item.ev->id[0] == '\0' && strcmp(item.ev->event, "message") == 0) {
    out = make_string(env, item.ev->data, item.ev->data_len);
  } else {
    const esp_sse_event *ev = item.ev;
    napi_create_object(env, &out);
    napi_set_named_property(env, out, "event", make_string(env, ev->event, strlen(ev->event)));
    napi_set_named_property(env, out, "data", make_string(env, ev->data, ev->data_len));
    napi_set_named_property(env, out, "id", make_string(env, ev->id, strlen(ev->id)));
    if (ev->retry_ms >= 0) napi_set_named_property(env, out, "retry", make_int(env, ev->retry_ms));
  }
  return out;
}

/* streamClose(stream): cancels an unfinished transfer; idempotent. */
static napi_value js_stream_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  StreamReader *r = read_stream(env, argv[0]);
  if (r) stream_close(env, r);
  return NULL;
}

/* lastErrorSent() -> esp_last_error_sent() of the JS thread */
static napi_value js_last_error_sent(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
  napi_get_boolean(env, esp_last_error_sent() != 0, &out);
  return out;
}

/* Turns an esp_free()-owned string result into a JS string or a status. */
static napi_value owned_string(napi_env env, int rc, char *text) {
  if (rc < 0) return make_int(env, rc);
  napi_value out = make_string(env, text, text ? strlen(text) : 0);
  esp_free(text);
  return out;
}

/* stats(client?: bigint) -> JSON string | negative status */
static napi_value js_stats(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_valuetype type = napi_undefined;
  char *json = NULL;
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc > 0) napi_typeof(env, argv[0], &type);
  int rc;
  if (type == napi_undefined) {
    rc = esp_stats(&json);
  } else {
    uint64_t handle;
    if (!read_handle(env, argv[0], &handle)) return NULL;
    rc = esp_client_stats(handle, &json);
  }
  return owned_string(env, rc, json);
}

/* metricsPrometheus() -> text | negative status */
static napi_value js_metrics(napi_env env, napi_callback_info info) {
  (void)info;
  char *text = NULL;
  int rc = esp_metrics_prometheus(&text);
  return owned_string(env, rc, text);
}

/* lastError() -> esp_last_error() of the JS thread */
static napi_value js_last_error(napi_env env, napi_callback_info info) {
  (void)info;
  const char *s = esp_last_error();
  return make_string(env, s, strlen(s));
}

/* strerror(status: number) -> fixed description */
static napi_value js_strerror(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t status = 0;
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  napi_get_value_int32(env, argv[0], &status);
  const char *s = esp_strerror(status);
  return make_string(env, s, strlen(s));
}

/* version() -> esp_version_string() */
static napi_value js_version(napi_env env, napi_callback_info info) {
  (void)info;
  const char *s = esp_version_string();
  return make_string(env, s, strlen(s));
}

/* configSchema() -> esp_config_schema(): the config table as JSON text (null: out of memory) */
static napi_value js_config_schema(napi_env env, napi_callback_info info) {
  (void)info;
  const char *s = esp_config_schema();
  if (!s) {
    napi_value null;
    napi_get_null(env, &null);
    return null;
  }
  return make_string(env, s, strlen(s));
}

/* ---- lifecycle ---------------------------------------------------------------- */

/* The environment is going away (process exit or Worker termination): stop
 * delivering, cancel what is in flight, and let the last completion free the
 * instance if calls are still pending. */
static void instance_teardown(void *data) {
  Instance *inst = data;
  while (inst->streams) stream_close(NULL, inst->streams); /* no ready after this */
  pthread_mutex_lock(&inst->lock);
  inst->closed = 1;
  /* An I/O thread may still be queuing a wake it took on before `closed`. */
  while (atomic_load(&inst->posting)) sched_yield();
  size_t n = inst->pending, i = 0;
  esp_call *live = n ? malloc(n * sizeof(esp_call)) : NULL;
  for (Call *c = inst->calls; c && live; c = c->next) live[i++] = c->handle;
  int last = instance_unused(inst);
  pthread_mutex_unlock(&inst->lock);
  napi_release_threadsafe_function(inst->tsfn, napi_tsfn_abort);
  for (size_t k = 0; k < i; k++)
    if (live[k]) esp_call_cancel(live[k]);
  free(live);
  if (last) instance_free(inst);
}

static napi_value init(napi_env env, napi_value exports) {
  Instance *inst = calloc(1, sizeof(Instance));
  if (!inst) return NULL;
  pthread_mutex_init(&inst->lock, NULL);
  napi_value name;
  napi_create_string_utf8(env, "libesp", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, NULL, NULL, name, 0, 1, NULL, NULL, inst,
                                      deliver, &inst->tsfn) != napi_ok) {
    instance_free(inst);
    napi_throw_error(env, NULL, "libesp: cannot create a threadsafe function");
    return NULL;
  }
  napi_unref_threadsafe_function(env, inst->tsfn);
  napi_set_instance_data(env, inst, NULL, NULL);
  /* Hooks run newest first: this one runs before Node's own teardown of the
   * thread-safe function, so no I/O thread posts to it after that. */
  napi_add_env_cleanup_hook(env, instance_teardown, inst);

  napi_property_descriptor props[] = {
      {"clientGet", NULL, js_client_get, NULL, NULL, NULL, napi_enumerable, NULL},
      {"clientRelease", NULL, js_client_release, NULL, NULL, NULL, napi_enumerable, NULL},
      {"request", NULL, js_request, NULL, NULL, NULL, napi_enumerable, NULL},
      {"cancel", NULL, js_cancel, NULL, NULL, NULL, napi_enumerable, NULL},
      {"onStreamReady", NULL, js_on_stream_ready, NULL, NULL, NULL, napi_enumerable, NULL},
      {"streamStart", NULL, js_stream_start, NULL, NULL, NULL, napi_enumerable, NULL},
      {"streamHead", NULL, js_stream_head, NULL, NULL, NULL, napi_enumerable, NULL},
      {"streamNext", NULL, js_stream_next, NULL, NULL, NULL, napi_enumerable, NULL},
      {"streamClose", NULL, js_stream_close, NULL, NULL, NULL, napi_enumerable, NULL},
      {"lastErrorSent", NULL, js_last_error_sent, NULL, NULL, NULL, napi_enumerable, NULL},
      {"stats", NULL, js_stats, NULL, NULL, NULL, napi_enumerable, NULL},
      {"metricsPrometheus", NULL, js_metrics, NULL, NULL, NULL, napi_enumerable, NULL},
      {"lastError", NULL, js_last_error, NULL, NULL, NULL, napi_enumerable, NULL},
      {"strerror", NULL, js_strerror, NULL, NULL, NULL, napi_enumerable, NULL},
      {"version", NULL, js_version, NULL, NULL, NULL, napi_enumerable, NULL},
      {"configSchema", NULL, js_config_schema, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  NAPI_OK(napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
