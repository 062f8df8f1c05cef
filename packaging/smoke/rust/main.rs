//! Package smoke test: the README's few lines of use, against the mock server
//! at $ESP_MOCK_HTTP (run by `make test-packages` in a fresh `cargo new` app).
use libesp::{Client, Config, Event, Request};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let base_url = format!("{}/v1", std::env::var("ESP_MOCK_HTTP")?);
    let client = Client::get(&Config::default().base_url(base_url).api_key("sk-test"))?;
    let chat = serde_json::json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]});

    let reply: serde_json::Value = client.request(&Request::post("chat/completions").json(&chat)?)?.json()?;
    println!("chat: {}", reply["choices"][0]["message"]["content"].as_str().unwrap_or(""));

    let mut streamed = chat.clone();
    streamed["stream"] = true.into();
    let mut text = String::new();
    for event in client.stream(&Request::post("chat/completions").json(&streamed)?)? {
        if let Event::Sse(event) = event? {
            if event.data != "[DONE]" {
                let chunk: serde_json::Value = serde_json::from_str(&event.data)?;
                text += chunk["choices"][0]["delta"]["content"].as_str().unwrap_or("");
            }
        }
    }
    println!("stream: {text}");
    println!("libesp {}", libesp::version_string());
    Ok(())
}
