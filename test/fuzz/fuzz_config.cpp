// libFuzzer target: the client config parser (esp::parse_config), the way
// esp_client_get feeds it: a NUL-terminated string. Any input must either
// parse or throw esp::Error(ESP_ECONFIG) -- never crash, leak, hit UB or
// throw anything else -- and parsing is deterministic (same canonical form
// twice). The same bytes also go through the URL helpers the config uses.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "config.h"
#include "esp.h"
#include "status.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string json(reinterpret_cast<const char *>(data), size);  // stops at an inner NUL, as C does
  std::string first;
  bool ok = false;
  try {
    esp::ClientConfig c = esp::parse_config(json.c_str());
    first = c.canonical;
    ok = true;
    // Derived fields are consistent.
    if (c.base_origin.empty() || c.canonical.empty() || c.transport_key.empty()) std::abort();
    if (c.base_url.empty() || c.base_url.back() == '/') std::abort();
    for (const auto &h : c.default_headers)
      if (h.first.empty() || h.second.find_first_of("\r\n") != std::string::npos) std::abort();
  } catch (const esp::Error &e) {
    if (e.code() != ESP_ECONFIG) std::abort();
    if (std::string(e.what()).rfind("config: ", 0) != 0) std::abort();
  }
  if (ok) {
    try {
      if (esp::parse_config(json.c_str()).canonical != first) std::abort();
    } catch (const esp::Error &) {
      std::abort();  // parsed once, must parse again
    }
  }
  // The URL helpers: origin_of throws ESP_EINVAL or returns scheme://host:port.
  try {
    std::string o = esp::origin_of(json.c_str());
    if (o.rfind("http://", 0) != 0 && o.rfind("https://", 0) != 0) std::abort();
  } catch (const esp::Error &e) {
    if (e.code() != ESP_EINVAL) std::abort();
  }
  std::string r = esp::redact_url(json.c_str());
  if (r.find('?') == std::string::npos && r != std::string(json.c_str())) std::abort();
  return 0;
}
