// Package smoke test: the README's few lines of use, against the mock server
// at $ESP_MOCK_HTTP (run by `make test-packages` in a fresh module outside the
// repository, through a replace and as a fetched module).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"

	esp "github.com/libesp/libesp/bindings/go"
)

func main() {
	ctx := context.Background()
	client, err := esp.Get(esp.Config{BaseURL: os.Getenv("ESP_MOCK_HTTP") + "/v1", APIKey: "sk-test"})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	chat := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]`
	resp, err := client.Do(ctx, &esp.Request{Method: "POST", Path: "chat/completions", Body: []byte(chat + "}")})
	if err != nil {
		log.Fatal(err)
	}
	var reply struct {
		Choices []struct{ Message struct{ Content string } }
	}
	if err := json.Unmarshal(resp.Body, &reply); err != nil || len(reply.Choices) == 0 {
		log.Fatalf("chat: %v %s", err, resp.Body)
	}
	fmt.Println("chat:", reply.Choices[0].Message.Content)

	stream, err := client.Stream(ctx, &esp.Request{Method: "POST", Path: "chat/completions", Body: []byte(chat + `,"stream":true}`)})
	if err != nil {
		log.Fatal(err)
	}
	defer stream.Close()
	text := ""
	for stream.Next() {
		var chunk struct {
			Choices []struct{ Delta struct{ Content string } }
		}
		if data := stream.Event().Data; string(data) != "[DONE]" && json.Unmarshal(data, &chunk) == nil && len(chunk.Choices) > 0 {
			text += chunk.Choices[0].Delta.Content
		}
	}
	if err := stream.Err(); err != nil {
		log.Fatal(err)
	}
	fmt.Println("stream:", text)
	fmt.Println("libesp", esp.Version())
}
