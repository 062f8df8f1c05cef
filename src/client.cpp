// A shared client's construction: its limiter and fleet state from the config,
// and its default header lines, built once and shared by every request that
// does not override one of them.
#include "client.h"

#include <curl/curl.h>

#include "esp.h"

namespace esp {

std::string client_label(const ClientConfig &cfg, uint64_t client_id) {
  return cfg.name.empty() ? "client-" + std::to_string(client_id) : cfg.name;
}

Client::Client(ClientConfig cfg, uint64_t client_id, std::shared_ptr<Router> deployments)
    : config(std::move(cfg)), id(client_id),
      label(client_label(config, client_id)),
      shared(config.shared_state.enabled ? shared_state_for(config.shared_state) : nullptr),
      limiter(config.rate_limit.enabled
                  ? limiter_for(credential_id(config.api_key, config.canonical), config.rate_limit)
                  : nullptr),
      router(std::move(deployments)) {
  if (limiter && shared) limiter->attach_shared(shared);
}

Client::~Client() { curl_slist_free_all(default_headers_); }

struct curl_slist *Client::default_header_list() const {
  std::call_once(default_headers_once_, [this] {
    struct curl_slist *list = nullptr;
    auto add = [&](const std::string &line) {
      struct curl_slist *next = curl_slist_append(list, line.c_str());
      if (next) list = next;
    };
    for (const auto &h : config.default_headers) add(h.first + ": " + h.second);
    if (!has_header(config.default_headers, "User-Agent")) add("User-Agent: libesp/" ESP_VERSION_STRING);
    add("Expect:");  // no 100-continue round trip on large bodies
    default_headers_ = list;
  });
  return default_headers_;
}

}  // namespace esp
