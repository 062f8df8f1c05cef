"""Parses libesp's Prometheus exposition with the reference client's parser."""
import sys

from prometheus_client.parser import text_string_to_metric_families

text = open(sys.argv[1]).read()
families = {f.name: f for f in text_string_to_metric_families(text)}
required = ["esp_client_requests", "esp_origin_requests", "esp_leases_live",
            "esp_origin_request_duration_seconds", "esp_origin_sockets_open", "esp_client_retries",
            "esp_origin_connections_closed"]
missing = [name for name in required if name not in families]
assert not missing, f"missing families: {missing}"
samples = [s for f in families.values() for s in f.samples]
assert all("origin" in s.labels for s in families["esp_origin_requests"].samples)
assert any(s.labels.get("client") == "metrics-agent" for s in families["esp_client_requests"].samples)
assert "SECRET" not in text
print(f"prometheus: {len(families)} families, {len(samples)} samples parsed")
