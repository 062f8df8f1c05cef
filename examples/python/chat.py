"""libesp from Python: a chat completion, a streamed one, and the official
openai SDK running on libesp's shared pool.

    ESP_LIBRARY=/path/to/libesp.so OPENAI_API_KEY=sk-... python chat.py

Set ESP_MOCK_BASE_URL to run it against the project's mock server instead
(`make -C bindings/python example` does).
"""

from __future__ import annotations

import asyncio
import os

import httpx2
import openai

import esp

BASE_URL = os.environ.get("ESP_MOCK_BASE_URL", "https://api.openai.com/v1")
MODEL = "gpt-mock" if "ESP_MOCK_BASE_URL" in os.environ else "gpt-4o-mini"
API_KEY = "sk-mock" if "ESP_MOCK_BASE_URL" in os.environ else os.environ["OPENAI_API_KEY"]


def ask(content: str) -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": content}]}


def main() -> None:
    print("libesp", esp.version())
    # Equal configs share one native client; make as many Clients as you like.
    with esp.Client(provider="openai", base_url=BASE_URL, api_key=API_KEY) as client:
        reply = client.request("chat/completions", json=ask("Say hello"))
        print("request:", reply.status, reply.json()["choices"][0]["message"]["content"])

        print("stream: ", end="")
        with client.stream("chat/completions", json={**ask("Count to three"), "stream": True}) as stream:
            for event in stream:
                if event.data != "[DONE]":
                    print(event.json()["choices"][0]["delta"].get("content") or "", end="", flush=True)
        print()

        async def concurrently() -> list:
            replies = await asyncio.gather(*(client.arequest("chat/completions", json=ask(f"#{i}")) for i in range(3)))
            return [r.json()["choices"][0]["message"]["content"] for r in replies]

        print("arequest:", asyncio.run(concurrently()))

    # The openai SDK on libesp. The transport leaves retries to the SDK.
    sdk = openai.OpenAI(base_url=BASE_URL, api_key=API_KEY, http_client=httpx2.Client(transport=esp.HTTPTransport()))
    completion = sdk.chat.completions.create(**ask("Hello from the SDK"))
    print("openai SDK:", completion.choices[0].message.content)
    sdk.close()


if __name__ == "__main__":
    main()
