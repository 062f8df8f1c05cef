package esp

// Config against libesp's own table (esp_config_schema): a field for every
// key, of a type that holds the key's values, and no field libesp lacks.

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func jsonFields(t reflect.Type) map[string]reflect.StructField {
	fields := map[string]reflect.StructField{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "" && name != "-" {
			fields[name] = f
		}
	}
	return fields
}

// The field's type with pointers taken off.
func base(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

func checkFields(t *testing.T, where string, keys []ConfigKey, typ reflect.Type) {
	t.Helper()
	fields := jsonFields(typ)
	for _, k := range keys {
		path := where + k.Key
		f, ok := fields[k.Key]
		if !ok {
			t.Errorf("%s has no field for config key %q (%s): add it", typ.Name(), path, k.Type)
			continue
		}
		delete(fields, k.Key)
		ft := base(f.Type)
		kinds := map[string]bool{
			"integer":      ft.Kind() == reflect.Int || ft.Kind() == reflect.Int64 || ft.Kind() == reflect.Uint64,
			"boolean":      ft.Kind() == reflect.Bool,
			"string":       ft.Kind() == reflect.String,
			"string_array": ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.String,
			"array":        ft.Kind() == reflect.Slice || ft.Kind() == reflect.Array,
			"object":       (len(k.Keys) > 0 && ft.Kind() == reflect.Struct) || (len(k.Keys) == 0 && ft.Kind() == reflect.Map && ft.Elem().Kind() == reflect.String),
			"object_array": ft.Kind() == reflect.Slice && base(ft.Elem()).Kind() == reflect.Struct,
		}
		if !kinds[k.Type] {
			t.Errorf("%s.%s is %s, config key %q is %s", typ.Name(), f.Name, f.Type, path, k.Type)
			continue
		}
		switch k.Type {
		case "object":
			if len(k.Keys) > 0 {
				checkFields(t, path+".", k.Keys, ft)
			}
		case "object_array":
			checkFields(t, path+"[].", k.Keys, base(ft.Elem()))
		}
		// A zero that means something else than "leave it out" needs a pointer.
		pointer := f.Type.Kind() == reflect.Pointer
		def := string(k.Default)
		zeroMeaningful := false
		switch k.Type {
		case "integer":
			// A default said in words ("`timeout_ms`") is no 0 either.
			zeroMeaningful = k.Min != nil && *k.Min <= 0 && (def != "0" || k.DefaultDoc != "")
		case "boolean":
			zeroMeaningful = def == "true"
		case "string":
			zeroMeaningful = !k.NonEmpty && def != "null" && def != `""`
		}
		if zeroMeaningful && !pointer {
			t.Errorf("%s.%s: config key %q takes a zero value other than its default (%s): make the field a pointer", typ.Name(), f.Name, path, def)
		}
	}
	for name, f := range fields {
		t.Errorf("%s.%s (json %q) is no config key of libesp", typ.Name(), f.Name, where+name)
	}
}

func TestConfigHasAFieldForEveryKeyOfTheSchema(t *testing.T) {
	s, err := ConfigSchema()
	if err != nil {
		t.Fatal(err)
	}
	if s.Version == "" || len(s.Keys) < 40 {
		t.Fatalf("schema: version %q, %d keys", s.Version, len(s.Keys))
	}
	checkFields(t, "", s.Keys, reflect.TypeOf(Config{}))
}

// Every default in the table decodes into Config and back to the same JSON,
// and the result is a config libesp takes.
func TestSchemaDefaultsRoundTripThroughConfig(t *testing.T) {
	s, err := ConfigSchema()
	if err != nil {
		t.Fatal(err)
	}
	defaults := map[string]json.RawMessage{}
	for _, k := range s.Keys {
		if string(k.Default) != "null" {
			defaults[k.Key] = k.Default
		}
	}
	text, _ := json.Marshal(defaults)
	var c Config
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("the schema's defaults do not decode into Config: %v\n%s", err, text)
	}
	back, _ := json.Marshal(c)
	var got map[string]json.RawMessage
	_ = json.Unmarshal(back, &got)
	for key, want := range defaults {
		if string(got[key]) != string(want) && !(string(want) == "0" || string(want) == "false" || string(want) == "{}" || string(want) == "[]") {
			t.Errorf("%s: default %s came back as %s", key, want, got[key])
		}
	}
	c.BaseURL = mock.BaseURL()
	client, err := Get(c)
	if err != nil {
		t.Fatalf("Get with every default spelled out: %v", err)
	}
	client.Close()
}
