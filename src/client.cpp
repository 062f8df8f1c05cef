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

struct curl_slist *Client::default_header_list(bool with_body) const {
  std::call_once(default_headers_once_, [this] {
    struct curl_slist *list = nullptr;
    auto add = [&](const std::string &line) {
      struct curl_slist *next = curl_slist_append(list, line.c_str());
      if (next) list = next;
    };
    // First, so that a request without a body (which libcurl never sends
    // with Expect) starts its list after it and libcurl has one line less
    // to check against the headers it adds itself.
    add("Expect:");  // no 100-continue round trip on large bodies
    for (const auto &h : config.default_headers) add(h.first + ": " + h.second);
    if (!has_header(config.default_headers, "User-Agent")) add("User-Agent: libesp/" ESP_VERSION_STRING);
    default_headers_ = list;
  });
  return with_body || !default_headers_ ? default_headers_ : default_headers_->next;
}

}  // namespace esp
