// Status codes as C++ exceptions inside the library, and the per-thread
// detail message that esp_last_error() returns at the ABI.
#pragma once

#include <exception>
#include <string>

namespace esp {

class Error : public std::exception {
 public:
  Error(int code, std::string message) : code_(code), message_(std::move(message)) {}
  int code() const noexcept { return code_; }
  const char *what() const noexcept override { return message_.c_str(); }

 private:
  int code_;
  std::string message_;
};

[[noreturn]] void fail(int code, std::string message);

const char *status_text(int code) noexcept;
void set_last_error(const char *message) noexcept;
const char *last_error() noexcept;

}  // namespace esp
