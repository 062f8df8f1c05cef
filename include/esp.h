/*
 * libesp: one shared, pooled, config-keyed HTTP client for LLM provider APIs.
 *
 * This is the only public header. It is valid C99 and C++ and is the ABI
 * contract of libesp.so.0: functions and struct fields are only ever added,
 * status codes are never renumbered, and every struct passed in starts with
 * `uint32_t struct_size` so it can grow without breaking old callers.
 *
 * Conventions
 * - Functions that can fail return int: ESP_OK (0) or a negative esp_status.
 *   esp_last_error() gives the detail of the last failure on the calling
 *   thread. An HTTP error status (404, 429, 500) is not a failure: it is in
 *   the response.
 * - Handles (esp_client, esp_call, esp_stream) are integers, 0 is never
 *   valid; a released, stale or forged handle gets ESP_EHANDLE.
 * - Memory the library returns is freed by the library (esp_response_free,
 *   esp_free); freeing NULL is a no-op.
 * - Every function may be called from any thread at any time.
 */
#ifndef ESP_H
#define ESP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#  define ESP_API
#elif defined(__GNUC__)
#  define ESP_API __attribute__((visibility("default")))
#else
#  define ESP_API
#endif

/* ---- version ------------------------------------------------------------ */

#define ESP_VERSION_MAJOR 0
#define ESP_VERSION_MINOR 2
#define ESP_VERSION_PATCH 0
#define ESP_VERSION_NUMBER \
  (ESP_VERSION_MAJOR * 10000 + ESP_VERSION_MINOR * 100 + ESP_VERSION_PATCH)
#define ESP_VERSION_STRING "0.2.0"

/** ESP_VERSION_NUMBER of the library actually loaded. */
ESP_API uint32_t esp_version(void);
/** "0.1.0 (libcurl/7.88.1 ...)": this library's version and libcurl's. */
ESP_API const char *esp_version_string(void);

/* ---- status codes ------------------------------------------------------- */

typedef enum esp_status {
  ESP_OK = 0,
  ESP_EINVAL = -1,       /* bad argument: NULL, CR/LF in a header, bad size */
  ESP_ECONFIG = -2,      /* config JSON malformed, unknown key, wrong type; a socket_options entry the kernel refuses */
  ESP_EHANDLE = -3,      /* handle released, stale or never valid            */
  ESP_ENOMEM = -4,       /* out of memory                                    */
  ESP_ETIMEDOUT = -5,    /* total, connect, read, write, first-byte or idle timeout */
  ESP_EPOOLTIMEOUT = -6, /* no connection slot within pool_timeout_ms        */
  ESP_ECONNECT = -7,     /* DNS, connect refused, reset or cut before the request went out (TCP or TLS handshake) */
  ESP_ETLS = -8,         /* TLS proper: certificate verification, TLS protocol */
  ESP_EIO = -9,          /* connection failed after the request went out     */
  ESP_EPROTOCOL = -10,   /* the server did not speak HTTP                     */
  ESP_ECANCELLED = -11,  /* esp_call_cancel / esp_stream_close               */
  ESP_ECIRCUIT = -12,    /* the origin's circuit breaker is open             */
  ESP_ETOOLARGE = -13,   /* response larger than max_response_bytes          */
  ESP_ESHUTDOWN = -14,   /* esp_shutdown ran while the call was in flight    */
  ESP_EINTERNAL = -15,   /* a bug in libesp: please report it                */
  ESP_EAGAIN = -16,      /* esp_stream_next: nothing arrived within its wait */
  ESP_ERATELIMITED = -17 /* rate_limit: no budget before the request's timeout */
} esp_status;

/** A fixed, static description of a status code ("unknown status" if none). */
ESP_API const char *esp_strerror(int status);
/** The detail of the last failure on this thread; "" if none. Never NULL.
 *  Valid until the next libesp call on this thread. */
ESP_API const char *esp_last_error(void);
/** 1 when the calling thread's last failure happened after the request may
 *  have reached the server (so the server may have processed it), else 0.
 *  Set together with esp_last_error(), also inside on_complete. */
ESP_API int esp_last_error_sent(void);

/* ---- handles ------------------------------------------------------------ */

typedef uint64_t esp_client; /* a lease on a shared client */
typedef uint64_t esp_call;   /* an asynchronous request    */
typedef uint64_t esp_stream; /* a blocking pull reader     */

/* ---- clients ------------------------------------------------------------ */

/**
 * Take a lease on the client for `config_json` (a JSON object, see README;
 * NULL or "" mean "{}"). Configs equal in canonical form (key order and
 * defaults do not matter) share one client; each call is its own lease.
 * Returns ESP_ECONFIG with a message naming the key on a bad config.
 */
ESP_API int esp_client_get(const char *config_json, esp_client *out);
/** Drop a lease. In-flight requests finish. The client lingers idle_ttl_ms
 *  after its last lease. A second release returns ESP_EHANDLE. */
ESP_API int esp_client_release(esp_client client);
/**
 * Every config key as JSON (0.2.0), the one table the parser checks against:
 * {"version":"<ESP_VERSION_STRING>","keys":[{"key":"timeout_ms",
 * "type":"integer","default":45000,"min":1,"max":86400000,"unit":"ms",
 * "doc":"..."},...]}.
 * "type" is integer, number, boolean, string, object, array, string_array or
 * object_array. A key may also have "default_doc" (its default in words,
 * "default" is then null), "enum" (the values a string may take),
 * "non_empty", "required", "secret" (true when present), "min" and "max"
 * (an integer's bounds, an object_array's length), "keys" (an object's,
 * or each entry's of an object_array, described the same way) and
 * "value_type" (an object without "keys" maps any name to that type).
 * The text belongs to the library and is never freed; NULL only when memory
 * ran out.
 */
ESP_API const char *esp_config_schema(void);

/* ---- requests ----------------------------------------------------------- */

typedef struct esp_header {
  const char *name;
  const char *value;
} esp_header;

/** Do not retry this request, whatever the client's max_retries. */
#define ESP_REQ_NO_RETRY 0x1u
/** esp_stream_next delivers raw body chunks even for text/event-stream
 *  responses. (Asynchronous calls choose with on_data / on_event.) */
#define ESP_REQ_STREAM_RAW 0x2u

/** A timeout value meaning "no limit" (timeout_ms and the per-phase ones). */
#define ESP_NO_TIMEOUT (-1)

/**
 * One request. `path` is relative to the client's base_url ("chat/completions",
 * "/v1/models?x=1") or an absolute http:// or https:// URL; any other scheme,
 * or something like "localhost:8080/x", is ESP_EINVAL. The client's
 * credentials (auth header, credential-like default headers) go only to its
 * own origin and those its config lists in credential_origins.
 * Fields after `flags` came in 0.2.0: a caller with an older struct_size gets
 * their defaults (0).
 */
typedef struct esp_request_opts {
  uint32_t struct_size;      /* sizeof(esp_request_opts)                    */
  const char *method;        /* NULL: GET, or POST when there is a body      */
  const char *path;          /* relative to base_url, or an absolute URL     */
  const esp_header *headers; /* extra headers; override the client's        */
  size_t header_count;
  const void *body;
  size_t body_len;
  int64_t timeout_ms;        /* total; 0: the client's timeout_ms; ESP_NO_TIMEOUT: none */
  uint32_t flags;            /* ESP_REQ_*                                    */
  /* 0: the client's connect_timeout_ms; ESP_NO_TIMEOUT: none */
  int64_t connect_timeout_ms;
  /* longest silence between response bytes; 0: the client's idle_timeout_ms */
  int64_t read_timeout_ms;
  /* longest stall while sending the request body; 0: none */
  int64_t write_timeout_ms;
  /* longest wait for a connection slot; 0: the client's pool_timeout_ms */
  int64_t pool_timeout_ms;
  /* longest wait for the response head, per attempt; 0: the client's
   * first_byte_timeout_ms; ESP_NO_TIMEOUT: none */
  int64_t first_byte_timeout_ms;
  /* longest silence between body bytes once the head arrived (not before);
   * 0: the client's idle_timeout_ms (none when read_timeout_ms is set) */
  int64_t idle_timeout_ms;
} esp_request_opts;

/** Every field of esp_request_opts at its default, struct_size set. */
#define ESP_REQUEST_OPTS_INIT \
  { sizeof(esp_request_opts), NULL, NULL, NULL, 0, NULL, 0, 0, 0, 0, 0, 0, 0, 0, 0 }

typedef struct esp_response esp_response;

/** Send a request and wait for the whole response. */
ESP_API int esp_request(esp_client client, const esp_request_opts *req,
                        esp_response **out);

ESP_API int esp_response_status(const esp_response *r);
/** The body (not NUL-terminated, may contain NULs); *len may be NULL. */
ESP_API const void *esp_response_body(const esp_response *r, size_t *len);
/** The value of a header by case-insensitive name, or NULL. Repeated
 *  headers are joined with ", ". */
ESP_API const char *esp_response_header(const esp_response *r, const char *name);
ESP_API size_t esp_response_header_count(const esp_response *r);
/** The i-th header in arrival order (names in lower case). */
ESP_API int esp_response_header_at(const esp_response *r, size_t i,
                                   const char **name, const char **value);
/** 10 for HTTP/1.0, 11 for HTTP/1.1, 20 for HTTP/2. */
ESP_API int esp_response_http_version(const esp_response *r);
/** How many attempts this response took (1 when it was not retried). */
ESP_API int esp_response_attempts(const esp_response *r);
ESP_API void esp_response_free(esp_response *r);

/* ---- asynchronous requests and streaming ---------------------------------- */

typedef struct esp_sse_event {
  const char *event;   /* "message" when the stream named none              */
  const char *data;    /* NUL-terminated; data_len excludes the NUL         */
  size_t data_len;
  const char *id;      /* last event id, "" when none                       */
  int64_t retry_ms;    /* -1 when this event set none                       */
} esp_sse_event;

/**
 * Callbacks of an asynchronous call. All run on a libesp I/O thread, one at
 * a time per call, in order: on_headers once, then on_data / on_event, then
 * on_complete exactly once per accepted call (also on error, cancel and
 * shutdown). Pointers passed in are valid only during the callback. Inside
 * on_complete, esp_last_error() gives the detail of a failure.
 *
 * Body delivery: on_data gets every body byte when set; on_event gets the
 * parsed events of a text/event-stream response when set (both are called
 * when both are set). The body reaches on_complete's response only when
 * neither consumed it: with neither callback set, or with only on_event set
 * and a response that is not an event stream (e.g. a JSON error).
 *
 * A callback MAY: call esp_request_async, esp_call_cancel, esp_call_pause,
 * esp_client_get / esp_client_release, esp_stats, esp_response_* and
 * esp_free; hand the data to another thread.
 * A callback MUST NOT: call the blocking functions (esp_request,
 * esp_stream_open, esp_stream_next, esp_shutdown) -- they return ESP_EINVAL
 * there -- or block for long: every other transfer waits while it runs.
 */
typedef struct esp_callbacks {
  uint32_t struct_size; /* sizeof(esp_callbacks) */
  /* status and headers, no body; optional */
  void (*on_headers)(void *user, const esp_response *head);
  /* raw body bytes as they arrive; optional */
  void (*on_data)(void *user, const void *chunk, size_t len);
  /* parsed Server-Sent Events (text/event-stream bodies); optional */
  void (*on_event)(void *user, const esp_sse_event *ev);
  /* required. status is ESP_OK or a negative code; resp is NULL on failure
     and otherwise the callee's to free with esp_response_free. */
  void (*on_complete)(void *user, int status, esp_response *resp);
} esp_callbacks;

/** An esp_callbacks with struct_size set and no callback (set on_complete). */
#define ESP_CALLBACKS_INIT { sizeof(esp_callbacks), NULL, NULL, NULL, NULL }

/** Start a request; returns at once, having copied everything `req`
 *  points to. `out` may be NULL. on_complete may run before this returns.
 *  On failure no callback is ever called. */
ESP_API int esp_request_async(esp_client client, const esp_request_opts *req,
                              const esp_callbacks *cb, void *user,
                              esp_call *out);
/**
 * Cancel a call: it completes with ESP_ECANCELLED (unless it completed
 * already) and its connection is closed or its HTTP/2 stream reset, never
 * returned to the pool half-read. Returns ESP_OK while the call is live,
 * ESP_EHANDLE once on_complete has run.
 */
ESP_API int esp_call_cancel(esp_call call);
/** Pause (1) or resume (0) the delivery of a call's body: backpressure for
 *  consumers that buffer on_data chunks elsewhere. */
ESP_API int esp_call_pause(esp_call call, int paused);

/**
 * A blocking request that another thread can cancel (e.g. on a context's
 * deadline): esp_call_prepare checks the request and returns its call
 * handle without sending anything; esp_call_run sends it and blocks until
 * the response, like esp_request; esp_call_cancel from any thread makes the
 * run return ESP_ECANCELLED. Run every prepared call exactly once (a call
 * cancelled before its run returns ESP_ECANCELLED at once); the handle is
 * stale after the run.
 */
ESP_API int esp_call_prepare(esp_client client, const esp_request_opts *req,
                             esp_call *out);
ESP_API int esp_call_run(esp_call call, esp_response **out);

/** Item kinds of esp_stream_next. */
#define ESP_ITEM_EVENT 1 /* item.event is set */
#define ESP_ITEM_CHUNK 2 /* item.chunk / item.chunk_len are set */

typedef struct esp_stream_item {
  uint32_t struct_size; /* sizeof(esp_stream_item), set by the caller */
  int kind;             /* ESP_ITEM_EVENT or ESP_ITEM_CHUNK */
  esp_sse_event event;  /* the event's 0.1.0 fields (a copy of *ev's) */
  const void *chunk;
  size_t chunk_len;
  /* 0.2.0: the whole event, library-owned, valid like the item. Read new
     esp_sse_event fields through this pointer: it can grow, `event` cannot. */
  const esp_sse_event *ev;
} esp_stream_item;

/** An esp_stream_item with struct_size set. */
#define ESP_STREAM_ITEM_INIT \
  { sizeof(esp_stream_item), 0, { NULL, NULL, 0, NULL, 0 }, NULL, 0, NULL }

/**
 * Open a blocking pull reader: sends the request and returns once the
 * status and headers are in (*head, optional, is then the caller's to free).
 * The body is read with esp_stream_next: as SSE events when the response is
 * text/event-stream (unless ESP_REQ_STREAM_RAW), otherwise as raw chunks.
 * The transfer pauses while the reader is more than the client's
 * stream_buffer_bytes (1 MiB) behind, and resumes once it is back under
 * stream_resume_bytes (a quarter of it).
 */
ESP_API int esp_stream_open(esp_client client, const esp_request_opts *req,
                            esp_stream *out, esp_response **head);
/**
 * Wait up to timeout_ms (< 0: no limit but the request's own timeouts; 0:
 * do not wait, also allowed inside callbacks) for the next item. Returns 1 with *item filled (valid until the next call on
 * this stream), 0 at the end of the body, ESP_EAGAIN when the wait elapsed,
 * or the failure of the transfer (ESP_ETIMEDOUT, ESP_ECANCELLED, ...).
 */
ESP_API int esp_stream_next(esp_stream stream, int64_t timeout_ms,
                            esp_stream_item *item);
/** Close the reader, cancelling the transfer if unfinished. May be called
 *  from another thread while esp_stream_next waits: that call then returns
 *  ESP_ECANCELLED. */
ESP_API int esp_stream_close(esp_stream stream);

/**
 * Tells a non-blocking reader that its stream has news: the head, an item,
 * the end or a failure. Runs on a libesp I/O thread, once after the start
 * and then once after each esp_stream_head / esp_stream_next that returned
 * ESP_EAGAIN, once that call would return something else: at the end of the
 * I/O thread's round that brought the news (every socket ready in it served
 * first, so the readies of one round come together). A reader that waits
 * only after ESP_EAGAIN therefore never misses news, and a fast stream costs
 * one call per wait, not one per item. It should only wake the reader (it
 * may call esp_stream_head and esp_stream_next with timeout 0).
 */
typedef void (*esp_stream_ready_fn)(void *user);

/**
 * Start a non-blocking reader (0.2.0): sends the request and returns at
 * once. Read the head with esp_stream_head and the body with
 * esp_stream_next(stream, 0, &item) whenever `ready` (optional) says so;
 * buffering, pausing the transfer past stream_buffer_bytes and the choice
 * between SSE events and raw chunks are the same as for esp_stream_open.
 * `ready` may run before this returns. After esp_stream_close returns,
 * `ready` is not running and never runs again (called from inside `ready`,
 * esp_stream_close does not wait for that call), so `user` may be freed then;
 * do not hold a lock that `ready` takes while calling esp_stream_close.
 * esp_shutdown ends a started stream: `ready` runs, esp_stream_next and
 * esp_stream_head return ESP_ESHUTDOWN and esp_stream_close ESP_OK.
 */
ESP_API int esp_stream_start(esp_client client, const esp_request_opts *req,
                             esp_stream_ready_fn ready, void *user,
                             esp_stream *out);
/**
 * The status and headers of a stream (0.2.0): ESP_OK with *head set (the
 * caller's to free), ESP_EAGAIN while they are not in yet (`ready` runs once
 * they are), or the failure that ended the stream before them. Never blocks.
 */
ESP_API int esp_stream_head(esp_stream stream, esp_response **head);

/* ---- observability -------------------------------------------------------- */

/** JSON stats of one client (its origins, requests, connections, latency). */
ESP_API int esp_client_stats(esp_client client, char **json);
/** JSON stats of the whole process: registry, every client and origin. */
ESP_API int esp_stats(char **json);
/** The same numbers in the Prometheus text exposition format. */
ESP_API int esp_metrics_prometheus(char **text);

#define ESP_LOG_DEBUG 10
#define ESP_LOG_INFO 20
#define ESP_LOG_WARN 30
#define ESP_LOG_ERROR 40

/** One log line: key=value fields, no trailing newline, never a secret. */
typedef void (*esp_log_fn)(void *user, int level, const char *line);
/** Send events at or above min_level to fn (NULL: no logging, the default
 *  unless the environment sets ESP_LOG=debug|info|warn|error, which logs to
 *  stderr). fn may run on any thread and must not call into libesp. */
ESP_API int esp_set_logger(esp_log_fn fn, void *user, int min_level);

/* ---- memory and lifecycle --------------------------------------------------- */

/** Free a string returned by esp_client_stats, esp_stats, ... */
ESP_API void esp_free(void *p);
/**
 * Cancel everything in flight (on_complete gets ESP_ESHUTDOWN), close every
 * connection, join the I/O threads and invalidate every handle. Waits up to
 * timeout_ms for callbacks to finish. The library is usable again after.
 */
ESP_API int esp_shutdown(int64_t timeout_ms);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* ESP_H */
