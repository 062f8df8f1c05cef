// The config table of config_schema.h as JSON (esp_config_schema), and the
// "did you mean" of an unknown key. Printed once per process, kept for good.
#include "config_schema.h"

#include <cjson/cJSON.h>

#include <algorithm>
#include <cctype>
#include <memory>
#include <vector>

#include "esp.h"

namespace esp {

namespace {

// Lower case without '_' and '-': "maxRetries" and "Max-Retries" meet "max_retries".
std::string folded(const std::string &s) {
  std::string out;
  for (char ch : s)
    if (ch != '_' && ch != '-') out += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return out;
}

size_t edit_distance(const std::string &a, const std::string &b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

const char *type_name(KeyType t) {
  switch (t) {
    case KeyType::kInteger: return "integer";
    case KeyType::kNumber: return "number";
    case KeyType::kBoolean: return "boolean";
    case KeyType::kString: return "string";
    case KeyType::kObject: return "object";
    case KeyType::kArray: return "array";
    case KeyType::kStringArray: return "string_array";
    case KeyType::kObjectArray: return "object_array";
  }
  return "unknown";
}

cJSON *default_value(const ConfigKey &k) {
  if (!k.has_default()) return cJSON_CreateNull();
  switch (k.type) {
    case KeyType::kInteger: return cJSON_CreateNumber(static_cast<double>(k.integer));
    case KeyType::kBoolean: return cJSON_CreateBool(k.boolean);
    case KeyType::kString: return cJSON_CreateString(k.text);
    default: return cJSON_Parse(k.text);
  }
}

cJSON *describe(const ConfigKey *keys, size_t count) {
  cJSON *list = cJSON_CreateArray();
  for (size_t i = 0; i < count; ++i) {
    const ConfigKey &k = keys[i];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToArray(list, o);
    cJSON_AddStringToObject(o, "key", k.name);
    cJSON_AddStringToObject(o, "type", type_name(k.type));
    cJSON_AddItemToObject(o, "default", default_value(k));
    if (k.default_doc) cJSON_AddStringToObject(o, "default_doc", k.default_doc);
    if (k.type == KeyType::kInteger || k.type == KeyType::kObjectArray) {  // a value's bounds, an array's length
      cJSON_AddNumberToObject(o, "min", static_cast<double>(k.min));
      cJSON_AddNumberToObject(o, "max", static_cast<double>(k.max));
    }
    if (k.unit) cJSON_AddStringToObject(o, "unit", k.unit);
    if (k.one_of) {
      cJSON *values = cJSON_AddArrayToObject(o, "enum");
      for (const char *const *v = k.one_of; *v; ++v) cJSON_AddItemToArray(values, cJSON_CreateString(*v));
    }
    if (k.has(kNonEmpty)) cJSON_AddBoolToObject(o, "non_empty", true);
    if (k.has(kRequired)) cJSON_AddBoolToObject(o, "required", true);
    if (k.has(kSecret)) cJSON_AddBoolToObject(o, "secret", true);
    if (k.type == KeyType::kObject && k.key_count == 0) cJSON_AddStringToObject(o, "value_type", "string");
    if (k.key_count) cJSON_AddItemToObject(o, "keys", describe(k.keys, k.key_count));
    cJSON_AddStringToObject(o, "doc", k.doc);
  }
  return list;
}

}  // namespace

std::string suggest_key(const ConfigKey *keys, size_t count, const std::string &name) {
  const std::string wanted = folded(name);
  const ConfigKey *best = nullptr;
  size_t best_distance = 3;  // two edits at most, or a known key that extends the name ("timeout" -> "timeout_ms")
  for (size_t i = 0; i < count; ++i) {
    const std::string candidate = folded(keys[i].name);
    size_t d = edit_distance(wanted, candidate);
    if (!wanted.empty() && candidate.compare(0, wanted.size(), wanted) == 0) d = std::min<size_t>(d, 2);
    if (d < best_distance) {
      best = &keys[i];
      best_distance = d;
    }
  }
  return best ? std::string(" (did you mean '") + best->name + "'?)" : std::string();
}

const char *config_schema_json() {
  static const char *const text = [] {
    std::unique_ptr<cJSON, void (*)(cJSON *)> root(cJSON_CreateObject(), cJSON_Delete);
    cJSON_AddStringToObject(root.get(), "version", ESP_VERSION_STRING);
    cJSON_AddItemToObject(root.get(), "keys", describe(kClientKeys, sizeof kClientKeys / sizeof kClientKeys[0]));
    return static_cast<const char *>(cJSON_PrintUnformatted(root.get()));
  }();
  return text;
}

}  // namespace esp
