// Structured logging: the process's logger (ESP_LOG or esp_set_logger), with a
// level check cheap enough to call before building any field.
#include "log.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>

namespace esp {

namespace {

void stderr_logger(void *, int, const char *line) { std::fprintf(stderr, "%s\n", line); }

int level_from_env() {
  const char *v = std::getenv("ESP_LOG");
  if (!v) return 0;
  if (!std::strcmp(v, "debug")) return ESP_LOG_DEBUG;
  if (!std::strcmp(v, "info")) return ESP_LOG_INFO;
  if (!std::strcmp(v, "warn")) return ESP_LOG_WARN;
  if (!std::strcmp(v, "error")) return ESP_LOG_ERROR;
  return 0;
}

struct Logger {
  Logger() {
    int env = level_from_env();
    if (env) {
      fn = stderr_logger;
      min_level.store(env);
    }
  }
  std::mutex mu;  // serialises delivery, so lines never interleave
  esp_log_fn fn = nullptr;
  void *user = nullptr;
  std::atomic<int> min_level{1 << 30};
};

Logger &logger() {
  static Logger *l = new Logger;  // never destroyed: may log during exit
  return *l;
}

const char *level_name(int level) {
  if (level >= ESP_LOG_ERROR) return "error";
  if (level >= ESP_LOG_WARN) return "warn";
  if (level >= ESP_LOG_INFO) return "info";
  return "debug";
}

void append_value(std::string &line, const std::string &v) {
  bool quote = v.empty() || v.find_first_of(" \"=\t") != std::string::npos;
  if (!quote) {
    for (char c : v) line += (c == '\n' || c == '\r') ? ' ' : c;
    return;
  }
  line += '"';
  for (char c : v) {
    if (c == '"' || c == '\\') line += '\\';
    line += (c == '\n' || c == '\r') ? ' ' : c;
  }
  line += '"';
}

}  // namespace

bool log_enabled(int level) noexcept {
  return level >= logger().min_level.load(std::memory_order_relaxed);
}

void log_event(int level, const char *event, std::initializer_list<LogField> fields) noexcept {
  if (!log_enabled(level)) return;
  try {
    std::string line = "level=";
    line += level_name(level);
    line += " event=";
    line += event;
    for (const LogField &f : fields) {
      line += ' ';
      line += f.first;
      line += '=';
      append_value(line, f.second);
    }
    Logger &l = logger();
    std::lock_guard<std::mutex> lock(l.mu);
    if (l.fn) l.fn(l.user, level, line.c_str());
  } catch (...) {
    // Logging never fails a request.
  }
}

void reset_logger_lock_after_fork() { new (&logger().mu) std::mutex(); }

void set_logger(esp_log_fn fn, void *user, int min_level) {
  Logger &l = logger();
  std::lock_guard<std::mutex> lock(l.mu);
  l.fn = fn;
  l.user = user;
  l.min_level.store(fn ? min_level : 1 << 30);
}

}  // namespace esp
