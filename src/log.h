// Structured logging: one line per event, key=value fields, never a secret
// (callers pass only redacted values: origins, names, ids, numbers).
#pragma once

#include <initializer_list>
#include <string>
#include <utility>

#include "esp.h"

namespace esp {

using LogField = std::pair<const char *, std::string>;

// True when an event at this level would be delivered: check it before
// building fields, so logging costs nothing when it is off.
bool log_enabled(int level) noexcept;
void log_event(int level, const char *event, std::initializer_list<LogField> fields) noexcept;
void set_logger(esp_log_fn fn, void *user, int min_level);
// In a forked child: the logger's lock may have been held by a thread that
// did not survive the fork.
void reset_logger_lock_after_fork();

}  // namespace esp
