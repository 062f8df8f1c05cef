// One request: its easy-handle setup, header and body handling, how an
// attempt ended, and whether to try again. Lives on the engine's driver.
#pragma once

#include <curl/curl.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "client.h"
#include "clock.h"
#include "esp.h"
#include "origin.h"
#include "response.h"
#include "status.h"

namespace esp {

class Engine;
class Shard;
class Transfer;

// Where a transfer's results go: a waiting caller, user callbacks, or a
// pull reader. Called on the driving thread.
class Sink {
 public:
  virtual ~Sink() = default;
  // Status and headers are in (not called for attempts that will be retried).
  virtual void head(Transfer &) {}
  // Body bytes: returns n, or CURL_WRITEFUNC_PAUSE to get the same bytes
  // again after a resume. The default keeps them in the response.
  virtual size_t body(Transfer &t, const char *p, size_t n);
  // The body of an attempt withheld for a retry that did not happen after all.
  virtual void replay(Transfer &t, const std::string &b) { body(t, b.data(), b.size()); }
  // Exactly once. resp is null unless status is ESP_OK.
  virtual void complete(Transfer &t, int status, std::unique_ptr<esp_response> resp,
                        const std::string &error) = 0;
  // libcurl's receive buffer for the transfer (CURLOPT_BUFFERSIZE, held per
  // handle for as long as the transfer lives).
  virtual long read_buffer_bytes() const { return CURL_MAX_WRITE_SIZE; }
  // libcurl's upload buffer (CURLOPT_UPLOAD_BUFFERSIZE; 7.88 allocates it for
  // a body over 64 KiB and holds it per handle): 64 KiB, libcurl's default.
  virtual long upload_buffer_bytes() const { return 65536; }
  // The body goes to the caller as it arrives (a stream, often paced for
  // minutes). Such transfers share their origin's home shard: one wake-up of
  // its I/O thread then serves many streams' events (spread over two shards,
  // Go's CPU per paced event rose from 11 to 15 us).
  virtual bool streams_body() const { return false; }
};

// A request routed over the deployments of the client it was made on
// (router.h implements it): the engine and the transfer ask it whether and
// where the request moves on, without knowing how deployments are picked.
// Called on the driving thread.
class Route {
 public:
  virtual ~Route() = default;
  // May the attempt that just ended move on to another deployment?
  virtual bool can_fail_over(const Transfer &t, int attempt_status, int64_t now_us) const = 0;
  // Moves t to the next deployment (its client, spec and origin); false when
  // none is left. The deployment left behind is counted and cooled down.
  virtual bool fail_over(Transfer &t, int attempt_status, const std::string &reason, int64_t now_us) = 0;
  // Reserves t's rate-limit budget on its deployment (t.rate), or moves t to
  // a deployment with budget sooner (kMoved: the move is to be started
  // afresh, its budget already reserved when t.rate_reserved), or finds none
  // within t's deadline (kRefused: t.rate.why says why).
  enum class Budget { kReserved, kMoved, kRefused };
  virtual Budget reserve_budget(Transfer &t, int64_t now_us) = 0;
  // The transfer completed (outcome: metrics.h): the deployments' accounting.
  virtual void completed(Transfer &t, int status, int outcome, int64_t elapsed_us) = 0;
  // The request never started (refused by the engine, or its spec failed).
  virtual void refused() = 0;
  // The transfer's attempts before its current deployment, and its moves
  // between deployments (not retries).
  virtual int attempts_before() const = 0;
  virtual int moves() const = 0;
};

// "No limit" for a timeout in microseconds since the steady clock's epoch.
constexpr int64_t kNever = INT64_MAX / 4;

struct RequestSpec {
  std::string method;
  std::string url;
  // The origin's key (origin + transport settings) and label ("scheme://host:port"): for a path
  // relative to base_url the client config's own strings, which the transfer's client keeps alive
  // (no copy per request); for an absolute URL the spec's.
  const std::string &origin_key() const { return config_origin_key ? *config_origin_key : own_origin_key; }
  const std::string &origin_label() const { return config_origin_label ? *config_origin_label : own_origin_label; }
  const std::string *config_origin_key = nullptr;
  const std::string *config_origin_label = nullptr;
  std::string own_origin_key;
  std::string own_origin_label;
  struct curl_slist *headers = nullptr;  // owned, up to shared_tail
  struct curl_slist *shared_tail = nullptr;  // the client's default lines, when the list ends in them
  std::string body;
  int64_t timeout_ms = 0;          // total; 0: none (ESP_NO_TIMEOUT)
  int64_t connect_timeout_ms = 0;  // 0: none
  int64_t read_timeout_ms = 0;     // per request, also before the first byte; 0: none
  int64_t idle_timeout_ms = 0;     // between body bytes only; 0: none
  int64_t first_byte_timeout_ms = 0;  // to the response head, per attempt; 0: none
  int64_t write_timeout_ms = 0;    // 0: none
  int64_t pool_timeout_ms = 0;     // 0: none but the total
  uint32_t flags = 0;
  bool retry_allowed = true;
  bool multiplexable = false;  // HTTP/2 over TLS may carry it on a shared connection
  // Sending it twice cannot do harm: an idempotent method, or an
  // idempotency key the server deduplicates on.
  bool replay_safe = false;
};

// Frees a spec's own header lines (not the client's shared tail).
void release_spec_headers(RequestSpec &spec);

// A pooled easy handle (the engine keeps them) and what libcurl was last told
// on it: an attempt sets only the options that differ from the handle's last
// attempt. The callbacks' data and the error buffer are the slot's own, set
// once per handle; the callbacks find the attempt's transfer through it.
struct EasySlot {
  explicit EasySlot(CURL *e) : easy(e) {}
  // After curl_easy_reset: nothing is set any more.
  void forget();

  CURL *const easy;
  uint64_t client_id = 0;        // whose client options it carries; 0: none
  Transfer *transfer = nullptr;  // the attempt running on it (driver only)
  char errbuf[CURL_ERROR_SIZE] = {0};
  // Per-attempt options as last set (meaningful while client_id is not 0).
  enum class Method { kUnknown, kGet, kHead, kBody } method = Method::kUnknown;
  std::string url;
  std::string custom_method;  // CURLOPT_CUSTOMREQUEST, "" when unset
  const struct curl_slist *headers = nullptr;
  const char *post_fields = nullptr;
  curl_off_t post_size = -1;
  long pipewait = -1;
  long timeout_ms = -1;
  long connect_timeout_ms = -1;
  long no_progress = -1;
  long buffer_bytes = -1;
  long upload_buffer_bytes = -1;
  const void *socket_data = nullptr;  // the origin its open/close callbacks get
};

class Transfer {
 public:
  Transfer(std::shared_ptr<Client> client, RequestSpec spec, std::unique_ptr<Sink> sink);
  ~Transfer();
  Transfer(const Transfer &) = delete;
  Transfer &operator=(const Transfer &) = delete;

  // ---- set up and read back one attempt (driver thread only) ----
  // Configures the slot's handle for the next attempt; `share` carries DNS
  // and TLS sessions. A handle last used by this client keeps its client
  // settings, and every option that has not changed since its last attempt.
  void prepare_attempt(EasySlot &slot, CURLSH *share, int64_t now_us);
  // Reads what the attempt's easy handle learnt; returns the ESP status of
  // the attempt (ESP_OK when an HTTP response arrived).
  int finish_attempt(CURLcode code, int64_t now_us);
  // Delay before the next attempt in microseconds, or -1 not to retry.
  int64_t retry_delay_us(int attempt_status, int64_t now_us);
  // The engine took it: counted a request, in flight until complete().
  void count_accepted();
  // Delivers the outcome: to the sink, stats and logs. Exactly once.
  void complete(int status, const std::string &error);
  // The breaker probe it holds (is_probe) ends without an outcome (it
  // finished unsent or moved to another deployment): another request may probe.
  void give_up_probe();

  // The client it goes out as: the deployment's when routed (it changes on
  // a fail-over, together with spec and origin).
  std::shared_ptr<Client> client;
  RequestSpec spec;
  std::unique_ptr<Route> routed;  // over the deployments of the client called (else null)
  std::unique_ptr<Sink> sink;
  std::unique_ptr<esp_response> resp;

  // Bookkeeping of the engine (driver thread only).
  std::shared_ptr<Engine> engine;  // the engine that carries it, kept while the transfer lives
  // The shard whose driver has it now: set before it is submitted, changed
  // only by that driver when it hands the transfer to another shard.
  std::atomic<Shard *> shard{nullptr};
  // Its place in the order of submission to the engine: a queue for a slot
  // serves first attempts in this order whichever shard they reached first.
  uint64_t ticket = 0;
  // The engine's own reference while it drives the transfer (from start to
  // finish), and its place in the engine's list of those (no allocation).
  std::shared_ptr<Transfer> held;
  Transfer *held_prev = nullptr;
  Transfer *held_next = nullptr;
  ConnectionWatcher *watcher = nullptr;  // that engine, told about the connection
  Origin *origin = nullptr;
  EasySlot *slot = nullptr;  // the handle of the running attempt
  CURL *easy = nullptr;      // and its libcurl handle (slot->easy)
  // Its slot (Origin::mu guards these four: another shard's driver grants
  // a waiting transfer the slot it freed).
  bool holds_slot = false;
  bool slot_granted = false;  // by another shard, not taken up yet by its own
  bool in_waiting = false;    // in its origin's queue and still waiting
  int slot_token = -1;        // the shard whose HTTP/1.1 connection token it has
  bool is_probe = false;       // the half-open breaker's single probe
  bool fleet_probe = false;    // and the fleet's (shared_state), its outcome not yet published
  bool opening = false;        // admitted to open a new HTTP/2 connection, not up yet (under Origin::mu)
  bool user_paused = false;
  bool reader_paused = false;  // the write callback returned PAUSE
  bool finished = false;
  int attempts = 0;
  int64_t submitted_us = 0;
  int64_t deadline_us = 0;        // total timeout, across attempts
  int64_t queued_since_us = 0;    // waiting for a slot since (0: not queued)
  int64_t pool_deadline_us = 0;
  int64_t retry_at_us = 0;        // waiting to retry until (0: not waiting)
  int64_t attempt_start_us = 0;
  int64_t first_byte_us = 0;      // of the current attempt
  int64_t last_byte_us = 0;
  TimeoutKind timeout_kind = TimeoutKind::kNone;
  std::atomic<bool> cancel_requested{false};
  // esp_call_pause: the next body bytes wait, from this instant (the pause
  // command itself reaches libcurl only on the driver's next round).
  std::atomic<bool> pause_requested{false};
  uint64_t call_handle = 0;       // esp_call of async and prepared calls, 0 otherwise
  bool prepared = false;          // from esp_call_prepare: run by esp_call_run
  std::atomic<bool> run_started{false};

  // Rate limiting (ratelimit.h), when the client has a limiter.
  Reservation rate;                // the limiter's admission of the next attempt
  bool rate_reserved = false;      // `rate` is held and not yet used
  int64_t rate_wait_until_us = 0;  // admitted, waiting for its turn (0: not waiting)
  int64_t rate_tokens = 0;         // the estimate each attempt reserves
  UsageScanner usage;              // of the current attempt's body

  // Per-attempt state filled in by libcurl callbacks.
  bool headers_done = false;
  bool will_retry = false;        // this attempt's body is withheld: retrying
  bool too_large = false;
  bool silent_resend = false;
  int sends = 0;                  // times libcurl sent this attempt's request
  bool ever_sent = false;         // some attempt may have reached the server
  bool stale_retried = false;     // took its one retry for a dead pooled connection
  int64_t sent_us = 0;            // this attempt's request started going out
  int64_t upload_progress_us = 0; // the body last moved (with a write/read timeout)
  int64_t upload_done_us = 0;     // the whole body is out (with a write/read timeout)
  curl_off_t uploaded = 0;
  int conn_fd = -1;               // the connection this attempt runs on, once known
  uint64_t conn_serial = 0;       // and its Engine::ConnUse serial
  int64_t body_bytes = 0;
  // A stream's request body, freed once its head went to the reader and
  // libcurl sent all of it (release_sent_body): no attempt follows then.
  bool body_released = false;
  std::string retry_body;         // body of a withheld attempt
  std::string sockopt_error;      // a socket option the kernel refused
  int last_error_status = ESP_OK;
  std::string last_error;

 private:
  void set_client_options(EasySlot &slot, CURLSH *share) const;
  // Sets a long option unless the handle has it already.
  static void set_long(CURL *e, CURLoption option, long &applied, long value);
  static size_t on_header(char *p, size_t size, size_t n, void *self);
  static size_t on_write(char *p, size_t size, size_t n, void *self);
  static int on_prereq(void *self, char *, char *, int, int local_port);
  static int on_progress(void *self, curl_off_t, curl_off_t, curl_off_t, curl_off_t ulnow);
  static int on_sockopt(void *self, curl_socket_t fd, curlsocktype purpose);
  bool connection_dropped(CURLcode code) const;
  // Which limit made libcurl report CURLE_OPERATION_TIMEDOUT.
  TimeoutKind libcurl_timeout_kind(int64_t now) const;
  void headers_complete();
  // A stream lives for minutes, its request long sent: the body (an LLM
  // prompt, often tens of KiB) need not live with it. Called once the head
  // went to the reader, after which no attempt follows; kept while libcurl
  // has not sent all of it (it reads CURLOPT_POSTFIELDS in place).
  void release_sent_body();
  // A multiplexable transfer's connection is up: the origin learns from
  // ALPN whether it speaks HTTP/2, if it did not know yet.
  void learn_protocol();
  // Reports the usage of the response, correcting the token reservation.
  void settle_usage();
};

}  // namespace esp
