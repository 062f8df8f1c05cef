package esp

// ConfigSchema is libesp's table of config keys, read from the library
// itself: what each key takes, its default and its bounds. Config's fields
// are checked against it (config_schema_test.go).

/*
#include "esp.h"
*/
import "C"

import (
	"encoding/json"
	"errors"
)

// ConfigKey describes one key of the JSON config, as esp_config_schema()
// does (see include/esp.h).
type ConfigKey struct {
	Key  string `json:"key"`
	Type string `json:"type"` // integer, number, boolean, string, object, array, string_array, object_array
	// Default is the key's default as JSON ("null" when DefaultDoc says it in words).
	Default    json.RawMessage `json:"default"`
	DefaultDoc string          `json:"default_doc,omitempty"`
	Min        *int64          `json:"min,omitempty"`
	Max        *int64          `json:"max,omitempty"`
	Unit       string          `json:"unit,omitempty"`
	Enum       []string        `json:"enum,omitempty"`
	NonEmpty   bool            `json:"non_empty,omitempty"`
	Required   bool            `json:"required,omitempty"`
	Secret     bool            `json:"secret,omitempty"`
	ValueType  string          `json:"value_type,omitempty"`
	Keys       []ConfigKey     `json:"keys,omitempty"`
	Doc        string          `json:"doc"`
}

// Schema is the whole table.
type Schema struct {
	Version string      `json:"version"`
	Keys    []ConfigKey `json:"keys"`
}

// ConfigSchema returns libesp's config table.
func ConfigSchema() (*Schema, error) {
	text := C.esp_config_schema()
	if text == nil {
		return nil, errors.New("esp: esp_config_schema: out of memory")
	}
	var s Schema
	if err := json.Unmarshal([]byte(C.GoString(text)), &s); err != nil {
		return nil, err
	}
	return &s, nil
}
