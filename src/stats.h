// esp_stats / esp_client_stats / esp_metrics_prometheus renderings.
#pragma once

#include <cstdint>
#include <string>

namespace esp {

constexpr int kStatsSchema = 1;

std::string process_stats_json();
std::string client_stats_json(uint64_t lease);
std::string prometheus_text();

}  // namespace esp
