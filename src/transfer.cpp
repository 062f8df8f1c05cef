// One request's life on the engine's driver: its easy-handle setup, how each
// attempt ended (named by what happened), whether to try again.
#include "transfer.h"

#include <openssl/ssl.h>
#include <strings.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cerrno>
#include <cstring>

#include "esp.h"
#include "log.h"
#include "retry.h"
#include "status.h"
#include "trust_store.h"

namespace esp {

namespace {

// A TLS handshake that failed because the peer reset or closed the
// connection (not a certificate or protocol problem).
bool connection_dropped_text(const char *err) {
  for (const char *cause : {"reset by peer", "SSL_ERROR_SYSCALL", "unexpected eof", "Connection closed",
                            "connection was closed", "Broken pipe"})
    if (std::strstr(err, cause)) return true;
  return false;
}

// The text of an errno value, thread-safely: glibc's strerror_r returns it,
// the POSIX one writes it into the buffer.
[[maybe_unused]] const char *errno_text(const char *returned, const char *) { return returned; }
[[maybe_unused]] const char *errno_text(int, const char *buffer) { return buffer; }
std::string errno_text(int err) {
  char buffer[128] = "unknown error";
  return errno_text(strerror_r(err, buffer, sizeof buffer), buffer);
}

}  // namespace

size_t Sink::body(Transfer &t, const char *p, size_t n) {
  t.resp->body.append(p, n);
  return n;
}

Transfer::Transfer(std::shared_ptr<Client> c, RequestSpec s, std::unique_ptr<Sink> k)
    : client(std::move(c)), spec(std::move(s)), sink(std::move(k)), resp(esp_response::make()) {
  submitted_us = now_us();
  deadline_us = spec.timeout_ms > 0 ? submitted_us + spec.timeout_ms * 1000 : kNever;
}

void release_spec_headers(RequestSpec &spec) {
  if (spec.headers != spec.shared_tail) {
    if (spec.shared_tail) {  // the client's lines end the list: free only ours
      struct curl_slist *last = spec.headers;
      while (last->next != spec.shared_tail) last = last->next;
      last->next = nullptr;
    }
    curl_slist_free_all(spec.headers);
  }
  spec.headers = spec.shared_tail = nullptr;
}

Transfer::~Transfer() { release_spec_headers(spec); }

void EasySlot::forget() {
  client_id = 0;
  method = Method::kUnknown;
  url.clear();
  custom_method.clear();
  headers = nullptr;
  post_fields = nullptr;
  post_size = pipewait = timeout_ms = connect_timeout_ms = no_progress = buffer_bytes = upload_buffer_bytes = -1;
  socket_data = nullptr;
}

// What depends on the client's config only, and the slot's own data for the
// callbacks: kept on the pooled handle for the client's next transfers
// (Engine::take_easy), so set once per handle.
void Transfer::set_client_options(EasySlot &slot, CURLSH *share) const {
  const ClientConfig &cfg = client->config;
  CURL *e = slot.easy;
  curl_easy_setopt(e, CURLOPT_PRIVATE, &slot);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, slot.errbuf);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, &slot);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &slot);
  curl_easy_setopt(e, CURLOPT_PREREQDATA, &slot);
  curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, &Transfer::on_progress);
  curl_easy_setopt(e, CURLOPT_XFERINFODATA, &slot);
  if (!cfg.socket_options.empty()) curl_easy_setopt(e, CURLOPT_SOCKOPTDATA, &slot);
  curl_easy_setopt(e, CURLOPT_SHARE, share);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_HTTP_VERSION, cfg.http2 ? CURL_HTTP_VERSION_2TLS : CURL_HTTP_VERSION_1_1);
  // HTTP/2 needs TLS 1.2 or later (RFC 9113, 9.2). Saying so also keeps the
  // TLS connections of clients that want HTTP/2 apart from HTTP/1.1-only
  // ones: libcurl 7.88 reuses a connection only for matching TLS settings
  // (this one included), and would otherwise hand a transfer that wants
  // HTTP/2 an idle connection on which another client negotiated HTTP/1.1.
  curl_easy_setopt(e, CURLOPT_SSLVERSION, cfg.http2 ? CURL_SSLVERSION_TLSv1_2 : CURL_SSLVERSION_DEFAULT);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, 30L);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPINTVL, 15L);
  // The engine retires idle connections to the millisecond (Engine::
  // retire_idle_connections); libcurl's whole-second limit is a backstop.
  curl_easy_setopt(e, CURLOPT_MAXAGE_CONN, static_cast<long>(cfg.conn_max_idle_ms / 1000 + 1));
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, cfg.verify_tls ? 1L : 0L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, cfg.verify_tls ? 2L : 0L);
  // Debian's default CApath disables libcurl's CA-store cache: 10x slower handshakes.
  curl_easy_setopt(e, CURLOPT_CAPATH, nullptr);
  if (!cfg.ca_file.empty()) curl_easy_setopt(e, CURLOPT_CAINFO, cfg.ca_file.c_str());
  else if (const char *system_ca = default_ca_file()) curl_easy_setopt(e, CURLOPT_CAINFO, system_ca);
  if (!cfg.client_cert.empty()) curl_easy_setopt(e, CURLOPT_SSLCERT, cfg.client_cert.c_str());
  if (!cfg.client_key.empty()) curl_easy_setopt(e, CURLOPT_SSLKEY, cfg.client_key.c_str());
  curl_easy_setopt(e, CURLOPT_PROXY, cfg.proxy.empty() ? "" : cfg.proxy.c_str());
  curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(cfg.max_response_bytes));
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &Transfer::on_header);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &Transfer::on_write);
  // libcurl's silent resend on a dead reused connection would send the
  // request a second time within one attempt: the pre-request callback
  // refuses it, so that every send is an attempt libesp counted.
  curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, &Transfer::on_prereq);
  if (!cfg.socket_options.empty()) curl_easy_setopt(e, CURLOPT_SOCKOPTFUNCTION, &Transfer::on_sockopt);
}

void Transfer::set_long(CURL *e, CURLoption option, long &applied, long value) {
  if (applied == value) return;
  curl_easy_setopt(e, option, value);
  applied = value;
}

void Transfer::prepare_attempt(EasySlot &s, CURLSH *share, int64_t now) {
  slot = &s;
  easy = s.easy;
  s.transfer = this;
  ++attempts;
  attempt_start_us = now;
  first_byte_us = last_byte_us = 0;
  headers_done = will_retry = too_large = silent_resend = false;
  sends = 0;
  sent_us = upload_progress_us = upload_done_us = 0;
  uploaded = 0;
  conn_fd = -1;
  body_bytes = 0;
  retry_body.clear();
  s.errbuf[0] = '\0';
  sockopt_error.clear();
  resp->reset();
  if (client->limiter) usage.reset();

  CURL *e = s.easy;
  if (s.client_id != client->id) {
    set_client_options(s, share);
    s.client_id = client->id;
  }
  if (s.url != spec.url) {
    curl_easy_setopt(e, CURLOPT_URL, spec.url.c_str());
    s.url = spec.url;
  }
  if (s.headers != spec.headers) {
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, spec.headers);
    s.headers = spec.headers;
  }
  const bool get = spec.method == "GET", head = !get && spec.method == "HEAD";
  if (get) {
    // also undoes a previous POST or HEAD
    if (s.method != EasySlot::Method::kGet) curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    s.method = EasySlot::Method::kGet;
  } else if (head) {
    if (s.method != EasySlot::Method::kHead) curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    s.method = EasySlot::Method::kHead;
  } else {
    if (s.method != EasySlot::Method::kBody) curl_easy_setopt(e, CURLOPT_NOBODY, 0L);
    const curl_off_t size = static_cast<curl_off_t>(spec.body.size());
    if (s.method != EasySlot::Method::kBody || s.post_fields != spec.body.data() || s.post_size != size) {
      curl_easy_setopt(e, CURLOPT_POSTFIELDS, spec.body.data());
      curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, size);
      s.post_fields = spec.body.data();
      s.post_size = size;
    }
    s.method = EasySlot::Method::kBody;
  }
  const bool custom = !get && !head && spec.method != "POST";
  if (custom ? s.custom_method != spec.method : !s.custom_method.empty()) {
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, custom ? spec.method.c_str() : nullptr);
    s.custom_method = custom ? spec.method : std::string();
  }
  // Waiting for a connection to multiplex on only pays over TLS with HTTP/2;
  // on plain HTTP/1.1 it queues requests behind a busy connection. An opener
  // opens its own: waiting would tie it to a connect that may hang.
  set_long(e, CURLOPT_PIPEWAIT, s.pipewait, spec.multiplexable && !opening ? 1L : 0L);
  // libesp enforces the deadline itself (Engine::check_timers): libcurl 7.88
  // lets a transfer waiting for an HTTP/2 connection overrun it. Its own
  // limit, a little later, is a backstop.
  const int64_t remaining_ms = deadline_us == kNever ? 0 : std::max<int64_t>(1, (deadline_us - now) / 1000) + 50;
  set_long(e, CURLOPT_TIMEOUT_MS, s.timeout_ms, static_cast<long>(remaining_ms));
  // libcurl reads 0 as its 300 s default: "none" is a day, within the total.
  set_long(e, CURLOPT_CONNECTTIMEOUT_MS, s.connect_timeout_ms,
           static_cast<long>(spec.connect_timeout_ms > 0 ? spec.connect_timeout_ms : 86400000));
  const bool watch_upload = spec.write_timeout_ms > 0 || spec.read_timeout_ms > 0;
  set_long(e, CURLOPT_NOPROGRESS, s.no_progress, watch_upload ? 0L : 1L);
  // Streams of events read with a small buffer: most of the memory a live
  // stream holds otherwise (StreamSink::read_buffer_bytes).
  set_long(e, CURLOPT_BUFFERSIZE, s.buffer_bytes, sink->read_buffer_bytes());
  set_long(e, CURLOPT_UPLOAD_BUFFERSIZE, s.upload_buffer_bytes, sink->upload_buffer_bytes());
  client->stats.add(client->stats.attempts);
  if (origin) origin->stats.add(origin->stats.attempts);
}

size_t Transfer::on_header(char *p, size_t size, size_t n, void *self) {
  Transfer &t = *static_cast<EasySlot *>(self)->transfer;
  size_t len = size * n;
  // Only the status line is parsed here: fields are kept raw and parsed
  // when the head is first read, often by the caller, not this thread.
  switch (header_line_kind(p, len)) {
    case HeaderLine::kStatus:
      t.resp->clear_headers();
      t.headers_done = false;
      t.resp->status = parse_header_line(p, len).status;
      break;
    case HeaderLine::kEnd:
      if (t.resp->status >= 200 && !t.headers_done) t.headers_complete();
      break;
    case HeaderLine::kField:
      t.resp->add_header_line(p, len);
      break;
    case HeaderLine::kSkip:
      break;
  }
  return len;
}

void Transfer::headers_complete() {
  headers_done = true;
  int64_t now = now_us();
  if (!first_byte_us) first_byte_us = last_byte_us = now;
  long version = 0;
  curl_easy_getinfo(easy, CURLINFO_HTTP_VERSION, &version);
  resp->http_version = version == CURL_HTTP_VERSION_2_0 ? 20 : version == CURL_HTTP_VERSION_1_0 ? 10 : 11;
  if (origin && version == CURL_HTTP_VERSION_2_0) origin->multiplexed = true;
  if (origin && spec.multiplexable && version != CURL_HTTP_VERSION_2_0) origin->http1_only = true;
  resp->attempts = attempts;
  if (client->limiter) client->limiter->learn(*resp, now);  // limits, pauses, 429s
  will_retry = retry_delay_us(ESP_OK, now) >= 0;
  if (will_retry) return;
  sink->head(*this);
  if (sink->streams_body()) release_sent_body();
}

void Transfer::release_sent_body() {
  if (spec.body.empty()) return;
  curl_off_t sent = 0;
  curl_easy_getinfo(easy, CURLINFO_SIZE_UPLOAD_T, &sent);
  if (sent < static_cast<curl_off_t>(spec.body.size())) return;  // libcurl may read it yet
  std::string().swap(spec.body);
  body_released = true;
}

size_t Transfer::on_write(char *p, size_t size, size_t n, void *self) {
  Transfer &t = *static_cast<EasySlot *>(self)->transfer;
  size_t len = size * n;
  if (!t.headers_done) t.headers_complete();
  if (t.body_bytes + static_cast<int64_t>(len) > t.client->config.max_response_bytes) {
    t.too_large = true;
    return 0;
  }
  t.last_byte_us = now_us();
  if (t.client->limiter) t.usage.feed(p, len);
  if (t.will_retry) {
    t.retry_body.append(p, len);
    t.body_bytes += static_cast<int64_t>(len);
    return len;
  }
  size_t taken = t.sink->body(t, p, len);
  if (taken == CURL_WRITEFUNC_PAUSE) {
    t.reader_paused = true;
    return taken;
  }
  t.body_bytes += static_cast<int64_t>(len);
  return taken;
}

namespace {

// The protocol the server chose by ALPN on e's connection, read from its TLS
// session once connected: false when unknown (a TLS backend other than
// OpenSSL's; then the first head tells).
bool alpn_chose_h2(CURL *e, bool *h2) {
  const struct curl_tlssessioninfo *tls = nullptr;
  if (curl_easy_getinfo(e, CURLINFO_TLS_SSL_PTR, &tls) != CURLE_OK || !tls || tls->backend != CURLSSLBACKEND_OPENSSL ||
      !tls->internals)
    return false;
  const unsigned char *proto = nullptr;
  unsigned len = 0;
  SSL_get0_alpn_selected(static_cast<SSL *>(tls->internals), &proto, &len);
  *h2 = len == 2 && std::memcmp(proto, "h2", 2) == 0;
  return true;
}

}  // namespace

void Transfer::learn_protocol() {
  if (!origin || !spec.multiplexable || origin->multiplexed || origin->http1_only) return;
  bool h2 = false;
  if (!alpn_chose_h2(easy, &h2)) return;
  (h2 ? origin->multiplexed : origin->http1_only) = true;
}

int Transfer::on_prereq(void *self, char *, char *, int, int local_port) {
  Transfer &t = *static_cast<EasySlot *>(self)->transfer;
  if (++t.sends > 1) {
    // libcurl found the reused connection dead after sending on it and
    // would send again unseen: refuse; the engine decides on a counted retry.
    t.silent_resend = true;
    t.client->stats.add(t.client->stats.silent_resends);
    if (t.origin) t.origin->stats.add(t.origin->stats.silent_resends);
    log_event(ESP_LOG_WARN, "silent_resend_refused", {{"origin", t.spec.origin_label()}, {"method", t.spec.method}});
    return CURL_PREREQFUNC_ABORT;
  }
  t.sent_us = now_us();
  // Known before the waiters are admitted (connection_ready): as HTTP/2
  // streams they would each open a connection to a server that refuses h2.
  t.learn_protocol();
  if (t.watcher) {
    t.watcher->connection_in_use(t, local_port);
    t.watcher->connection_ready(t);  // connected: an opener's waiters may use it
  }
  return CURL_PREREQFUNC_OK;
}

int Transfer::on_progress(void *self, curl_off_t, curl_off_t, curl_off_t, curl_off_t ulnow) {
  Transfer &t = *static_cast<EasySlot *>(self)->transfer;
  if (ulnow != t.uploaded) {
    t.uploaded = ulnow;
    t.upload_progress_us = now_us();
  }
  if (!t.upload_done_us && t.sent_us && ulnow >= static_cast<curl_off_t>(t.spec.body.size()))
    t.upload_done_us = t.upload_progress_us ? t.upload_progress_us : now_us();
  return 0;
}

// After libcurl's own options (TCP_NODELAY, keepalive), so the caller's win.
int Transfer::on_sockopt(void *self, curl_socket_t fd, curlsocktype purpose) {
  Transfer &t = *static_cast<EasySlot *>(self)->transfer;
  if (purpose != CURLSOCKTYPE_IPCXN) return CURL_SOCKOPT_OK;
  for (const SocketOption &o : t.client->config.socket_options) {
    if (setsockopt(fd, o.level, o.name, &o.value, sizeof o.value) != 0) {
      const int err = errno;
      t.sockopt_error = "socket option [" + std::to_string(o.level) + ", " + std::to_string(o.name) + ", " +
                        std::to_string(o.value) + "] refused: " + errno_text(err);
      return CURL_SOCKOPT_ERROR;
    }
  }
  return CURL_SOCKOPT_OK;
}

int Transfer::finish_attempt(CURLcode code, int64_t now) {
  long connects = 0;
  curl_easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &connects);
  curl_off_t up = 0, down = 0;
  curl_easy_getinfo(easy, CURLINFO_SIZE_UPLOAD_T, &up);
  curl_easy_getinfo(easy, CURLINFO_SIZE_DOWNLOAD_T, &down);
  // An attempt that never reached a server used no connection at all.
  const bool connected = connects > 0 || headers_done || code == CURLE_OK;
  for (Counters *c : {&client->stats, origin ? &origin->stats : nullptr}) {
    if (!c) continue;
    if (connected) c->add(connects > 0 ? c->conns_opened : c->conns_reused);
    c->add(c->bytes_sent, static_cast<uint64_t>(up));
    c->add(c->bytes_received, static_cast<uint64_t>(down));
  }
  if (connected && connects == 0 && log_enabled(ESP_LOG_DEBUG))
    log_event(ESP_LOG_DEBUG, "connection_reused", {{"origin", spec.origin_label()}});
  Counters &cs = client->stats;
  if (first_byte_us) {
    cs.first_byte.record_us(first_byte_us - attempt_start_us);
    if (origin) origin->stats.first_byte.record_us(first_byte_us - attempt_start_us);
  }

  int status = map_curl_code(code);
  if (too_large) status = ESP_ETOOLARGE;
  // The config's fault, not the origin's: no retry, no breaker failure.
  if (code == CURLE_ABORTED_BY_CALLBACK && !sockopt_error.empty()) status = ESP_ECONFIG;
  if (status == ESP_OK && !headers_done) status = ESP_EPROTOCOL;
  if (sends > 0) ever_sent = true;
  // A connection reset or closed before the request went out (during the
  // TCP or TLS handshake) is a connection failure, not a TLS or I/O one.
  if (!silent_resend && sends == 0 && !headers_done &&
      (status == ESP_EIO || (status == ESP_ETLS && connection_dropped(code))))
    status = ESP_ECONNECT;
  timeout_kind = status == ESP_ETIMEDOUT ? libcurl_timeout_kind(now) : TimeoutKind::kNone;
  last_error_status = status;
  if (silent_resend) {
    status = last_error_status = ESP_EIO;
    last_error = "connection closed by the server before a response (libcurl's resend refused)";
  } else if (status == ESP_OK) {
    last_error.clear();
  } else {
    last_error = status_text(status);
    if (timeout_kind == TimeoutKind::kConnect)
      last_error = "connect timeout: no connection within " + std::to_string(spec.connect_timeout_ms) + " ms";
    else if (timeout_kind == TimeoutKind::kTotal)
      last_error = "total timeout: the request took longer than " + std::to_string(spec.timeout_ms) + " ms";
    else if (status == ESP_ETOOLARGE)
      last_error += " (" + std::to_string(client->config.max_response_bytes) + " bytes)";
    if (status == ESP_ECONFIG) last_error += ": 'socket_options': " + sockopt_error;
    else if (slot && slot->errbuf[0] && status != ESP_ETOOLARGE) last_error += std::string(": ") + slot->errbuf;
    if (status == ESP_ETLS) last_error += trust_store_note(client->config.ca_file);
  }
  return status;
}

// libcurl ran out of one of its own two limits (libesp's timers name theirs
// in Engine::fire_timer): the connect limit (DNS, TCP, TLS), which runs
// only until the request goes out, or the total one, set as a backstop a
// little after libesp's deadline. Named by which has elapsed, read after
// libcurl's decision; libcurl's clock (CLOCK_MONOTONIC_RAW) runs apart from
// libesp's by up to NTP's slew (0.05 %), hence the slack. Neither (libcurl's
// own reason) is named by libcurl's words alone.
TimeoutKind Transfer::libcurl_timeout_kind(int64_t now) const {
  auto elapsed = [](int64_t since, int64_t now_us, int64_t limit_us) {
    return now_us - since >= limit_us - limit_us / 500 - 1000;
  };
  if (sends == 0 && spec.connect_timeout_ms > 0 && elapsed(attempt_start_us, now, spec.connect_timeout_ms * 1000))
    return TimeoutKind::kConnect;
  if (deadline_us != kNever && elapsed(submitted_us, now, deadline_us - submitted_us)) return TimeoutKind::kTotal;
  return TimeoutKind::kNone;
}

bool Transfer::connection_dropped(CURLcode code) const {
  long os_errno = 0;
  curl_easy_getinfo(easy, CURLINFO_OS_ERRNO, &os_errno);
  return code == CURLE_SSL_CONNECT_ERROR &&
         (os_errno == ECONNRESET || os_errno == EPIPE || (slot && connection_dropped_text(slot->errbuf)));
}

int64_t Transfer::retry_delay_us(int attempt_status, int64_t now) {
  if (body_released) return -1;  // nothing left to send again (and its head went out)
  // To the next deployment, at once, where one may take it.
  if (routed && !cancel_requested.load() && routed->can_fail_over(*this, attempt_status, now)) return 0;
  RetryFacts f;
  f.attempt_status = attempt_status;
  f.resp = resp.get();
  f.timeout_kind = timeout_kind;
  f.attempts = attempts - (routed ? routed->attempts_before() : 0);  // on the current deployment
  f.sent = sends > 0;
  f.silent_resend = silent_resend;
  f.delivered = headers_done && !will_retry;
  f.cancelled = cancel_requested.load();
  f.retry_allowed = spec.retry_allowed;
  f.no_retry_flag = (spec.flags & ESP_REQ_NO_RETRY) != 0;
  f.replay_safe = spec.replay_safe;
  f.stale_retried = stale_retried;
  const RetryDecision d = decide_retry(f, client->config, now, deadline_us);
  if (d.stale_retry) stale_retried = true;
  return d.delay_us;
}

void Transfer::count_accepted() {
  for (Counters *c : {&client->stats, origin ? &origin->stats : nullptr}) {
    if (!c) continue;
    c->add(c->requests);
    c->in_flight.fetch_add(1, std::memory_order_relaxed);
  }
}

void Transfer::complete(int status, const std::string &error) {
  if (finished) return;
  finished = true;
  int64_t now = now_us();
  int outcome = outcome_of(status, resp ? resp->status : 0, timeout_kind);
  Counters &cs = client->stats;
  cs.add(cs.outcomes[outcome]);
  cs.in_flight.fetch_sub(1, std::memory_order_relaxed);
  cs.total.record_us(now - submitted_us);
  if (origin) {
    origin->stats.add(origin->stats.outcomes[outcome]);
    origin->stats.in_flight.fetch_sub(1, std::memory_order_relaxed);
    origin->stats.total.record_us(now - submitted_us);
  }
  const int retried = attempts - 1 - (routed ? routed->moves() : 0);
  if (retried > 0) {
    cs.add(cs.retries, static_cast<uint64_t>(retried));
    if (origin) origin->stats.add(origin->stats.retries, static_cast<uint64_t>(retried));
  }
  if (routed) routed->completed(*this, status, outcome, now - submitted_us);
  int64_t elapsed_ms = (now - submitted_us) / 1000;
  if (client->config.slow_request_ms > 0 && elapsed_ms >= client->config.slow_request_ms &&
      log_enabled(ESP_LOG_INFO))
    log_event(ESP_LOG_INFO, "slow_request",
              {{"client", client->label}, {"origin", spec.origin_label()}, {"method", spec.method},
               {"ms", std::to_string(elapsed_ms)}, {"attempts", std::to_string(attempts)}});
  if (resp) resp->attempts = attempts;
  if (client->limiter && status == ESP_OK) settle_usage();
  std::unique_ptr<esp_response> out;
  if (status == ESP_OK) out = std::move(resp);
  if (sends > 0) ever_sent = true;
  sink->complete(*this, status, std::move(out), status != ESP_OK && ever_sent ? error + kMaySentSuffix : error);
}

void Transfer::give_up_probe() {
  if (!is_probe) return;
  {
    std::lock_guard<std::mutex> lock(origin->mu);
    breaker_probe_done(origin->breaker);
  }
  if (fleet_probe) client->shared->breaker_probe_released(origin->label);
  is_probe = fleet_probe = false;
}

void Transfer::settle_usage() {
  const Usage u = usage.result();
  client->usage.add(u);
  client->limiter->usage.add(u);
  if (u.known()) client->limiter->settle(rate, u.total);
}

}  // namespace esp
