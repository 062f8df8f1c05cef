//! A chat completion, then the same question streamed token by token.
//!
//! Talks to OPENAI_BASE_URL (default: OpenAI) with OPENAI_API_KEY;
//! `make example` runs it against the mock server.

use std::io::Write;

use libesp::{Client, Config, Event, Request};
use serde_json::{json, Value};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = Config::default()
        .provider("openai")
        .api_key_env("OPENAI_API_KEY")
        .max_retries(2);
    if let Ok(base_url) = std::env::var("OPENAI_BASE_URL") {
        config = config.base_url(base_url);
    }
    // One lease on the process-wide client for this config; dropped at the end.
    let client = Client::get(&config)?;

    let question = json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "Say hello in five words."}],
    });
    let response = client.request(&Request::post("chat/completions").json(&question)?)?;
    if !response.is_success() {
        return Err(format!("HTTP {}: {}", response.status(), response.text()).into());
    }
    let answer: Value = response.json()?;
    println!("answer: {}", answer["choices"][0]["message"]["content"]);

    let mut streamed = question;
    streamed["stream"] = json!(true);
    print!("streamed: ");
    for event in client.stream(&Request::post("chat/completions").json(&streamed)?)? {
        let Event::Sse(event) = event? else { continue };
        if event.data == "[DONE]" {
            break;
        }
        let chunk: Value = serde_json::from_str(&event.data)?;
        if let Some(token) = chunk["choices"][0]["delta"]["content"].as_str() {
            print!("{token}");
            std::io::stdout().flush()?;
        }
    }
    println!();

    let stats: Value = serde_json::from_str(&client.stats()?)?;
    let stats = &stats["client"];
    println!(
        "requests: {}, connections opened: {}",
        stats["requests"], stats["connections_opened"]
    );
    Ok(())
}
