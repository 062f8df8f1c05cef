// Command example sends a chat completion and then a streamed chat
// completion through libesp's Go binding.
//
//	OPENAI_BASE_URL=http://127.0.0.1:PORT/v1 OPENAI_API_KEY=sk-test go run .
//
// Without OPENAI_BASE_URL it talks to the OpenAI API (the "openai" preset).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"os"
	"time"

	esp "github.com/libesp/libesp/bindings/go"
)

func main() {
	client, err := esp.Get(esp.Config{
		Provider:  "openai",
		BaseURL:   os.Getenv("OPENAI_BASE_URL"),
		APIKeyEnv: "OPENAI_API_KEY",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	header := http.Header{"Content-Type": {"application/json"}}

	// One whole response.
	resp, err := client.Do(ctx, &esp.Request{
		Method: "POST",
		Path:   "chat/completions",
		Header: header,
		Body:   []byte(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello"}]}`),
	})
	if err != nil {
		log.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		log.Fatalf("HTTP %d: %s", resp.StatusCode, resp.Body)
	}
	var completion struct {
		Choices []struct {
			Message struct{ Content string } `json:"message"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(resp.Body, &completion); err != nil {
		log.Fatal(err)
	}
	fmt.Println("completion:", completion.Choices[0].Message.Content)

	// The same question, streamed as Server-Sent Events.
	stream, err := client.Stream(ctx, &esp.Request{
		Method: "POST",
		Path:   "chat/completions",
		Header: header,
		Body:   []byte(`{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Say hello"}]}`),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer stream.Close()
	if code := stream.Response().StatusCode; code != http.StatusOK {
		log.Fatalf("HTTP %d", code)
	}
	fmt.Print("stream: ")
	for stream.Next() {
		data := stream.Event().Data
		if string(data) == "[DONE]" {
			break
		}
		var chunk struct {
			Choices []struct {
				Delta struct{ Content string } `json:"delta"`
			} `json:"choices"`
		}
		if err := json.Unmarshal(data, &chunk); err != nil {
			log.Fatal(err)
		}
		for _, c := range chunk.Choices {
			fmt.Print(c.Delta.Content)
		}
	}
	fmt.Println()
	if err := stream.Err(); err != nil {
		log.Fatal(err)
	}
}
