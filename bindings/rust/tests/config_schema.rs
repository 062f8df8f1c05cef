//! `Config` against libesp's own table (`config_schema`): a field for every
//! key that holds the key's whole range, and no field libesp lacks.

use std::collections::BTreeSet;

use libesp::{Config, Deployment, RateLimit, SharedState};
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde_json::{json, Map, Value};

/// A deserializer that only records the field names serde's derive asks for.
struct FieldNames<'a>(&'a mut &'static [&'static str]);

impl<'de> Deserializer<'de> for FieldNames<'_> {
    type Error = de::value::Error;
    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not a struct"))
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(de::Error::custom("names taken"))
    }
    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

fn fields_of<T: DeserializeOwned>() -> BTreeSet<&'static str> {
    let mut names: &'static [&'static str] = &[];
    let _ = T::deserialize(FieldNames(&mut names));
    names.iter().copied().collect()
}

fn schema() -> Value {
    serde_json::from_str(libesp::config_schema().expect("esp_config_schema"))
        .expect("the schema is JSON")
}

fn keys(list: &Value) -> BTreeSet<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|k| k["key"].as_str().unwrap())
        .collect()
}

fn nested<'a>(list: &'a Value, key: &str) -> &'a Value {
    &list
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key"] == key)
        .unwrap()["keys"]
}

/// A value at the edge of each key's range: its maximum, every nested key set.
fn extreme(key: &Value) -> Value {
    match key["type"].as_str().unwrap() {
        "integer" => key["max"].clone(),
        "boolean" => json!(true),
        "string" => key["enum"].get(0).cloned().unwrap_or_else(|| json!("x")),
        "string_array" => json!(["https://files.example.com"]),
        "array" => json!([]),
        "object" if key["keys"].is_array() => extreme_object(&key["keys"]),
        "object" => json!({"X-A": "1"}),
        "object_array" => json!([extreme_object(&key["keys"])]),
        other => panic!("no sample for type {other}"),
    }
}

fn extreme_object(keys: &Value) -> Value {
    let mut object = Map::new();
    for key in keys.as_array().unwrap() {
        object.insert(key["key"].as_str().unwrap().to_owned(), extreme(key));
    }
    Value::Object(object)
}

#[test]
fn config_has_a_field_for_every_key_and_no_other() {
    let s = schema();
    assert_eq!(
        s["version"],
        libesp::version_string().split(' ').next().unwrap()
    );
    let list = &s["keys"];
    assert_eq!(
        fields_of::<Config>(),
        keys(list),
        "Config's fields against the schema's keys"
    );
    assert_eq!(fields_of::<RateLimit>(), keys(nested(list, "rate_limit")));
    assert_eq!(
        fields_of::<SharedState>(),
        keys(nested(list, "shared_state"))
    );
    assert_eq!(fields_of::<Deployment>(), keys(nested(list, "deployments")));
}

#[test]
fn every_key_at_the_end_of_its_range_fits_its_field() {
    let everything = extreme_object(&schema()["keys"]);
    let config: Config = serde_json::from_value(everything.clone())
        .unwrap_or_else(|e| panic!("the schema's extremes do not fit Config: {e}\n{everything}"));
    let back: Value = serde_json::from_str(&config.to_json()).unwrap();
    assert_eq!(back, everything, "Config dropped or changed a value");
}

#[test]
fn every_default_fits_its_field() {
    for key in schema()["keys"].as_array().unwrap() {
        if key["default"].is_null() {
            continue;
        }
        let one = json!({ key["key"].as_str().unwrap(): key["default"] });
        let config: Result<Config, _> = serde_json::from_value(one.clone());
        assert!(config.is_ok(), "{one}: {config:?}");
    }
}
