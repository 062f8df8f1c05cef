"""Package smoke test: the README's few lines of use, against the mock server
at $ESP_MOCK_HTTP (run by `make test-packages` from an installed wheel/sdist)."""

import os

import esp

chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}

with esp.Client(base_url=os.environ["ESP_MOCK_HTTP"] + "/v1", api_key="sk-test") as client:
    reply = client.request("chat/completions", json=chat)
    print("chat:", reply.json()["choices"][0]["message"]["content"])

    text = ""
    with client.stream("chat/completions", json={**chat, "stream": True}) as events:
        for event in events:
            if event.data != "[DONE]":
                text += event.json()["choices"][0]["delta"].get("content") or ""
    print("stream:", text)
print("libesp", esp.__version__, "loaded from", esp.load())
