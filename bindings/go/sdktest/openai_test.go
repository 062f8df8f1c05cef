package sdktest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"

	esp "github.com/libesp/libesp/bindings/go"
	"github.com/libesp/libesp/bindings/go/internal/mockserver"
	"github.com/openai/openai-go"
	"github.com/openai/openai-go/option"
)

var mock *mockserver.Server

func TestMain(m *testing.M) {
	var err error
	if mock, err = mockserver.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	mock.Close()
	os.Exit(code)
}

// newOpenAI returns an openai-go client whose HTTP goes through libesp. The
// SDK's own retries are off: libesp retries (see esp.Client.Transport).
func newOpenAI(t *testing.T) openai.Client {
	c, err := esp.Get(esp.Config{BaseURL: mock.BaseURL(), APIKey: "sk-test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return openai.NewClient(
		option.WithHTTPClient(&http.Client{Transport: c.Transport()}),
		option.WithBaseURL(mock.BaseURL()),
		option.WithAPIKey("sk-test"),
		option.WithMaxRetries(0),
	)
}

func chatParams() openai.ChatCompletionNewParams {
	return openai.ChatCompletionNewParams{
		Model:    openai.ChatModelGPT4oMini,
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hello")},
	}
}

func TestOpenAIChatCompletion(t *testing.T) {
	client := newOpenAI(t)
	completion, err := client.Chat.Completions.New(context.Background(), chatParams())
	if err != nil {
		t.Fatal(err)
	}
	if len(completion.Choices) != 1 || completion.Choices[0].Message.Content == "" {
		t.Fatalf("completion %+v", completion)
	}
	if completion.Usage.TotalTokens == 0 {
		t.Fatalf("no usage in %s", completion.RawJSON())
	}
}

func TestOpenAIStreamedChatCompletion(t *testing.T) {
	client := newOpenAI(t)
	stream := client.Chat.Completions.NewStreaming(context.Background(), chatParams(),
		option.WithHeader("X-Mock-Events", "6"), option.WithHeader("X-Mock-Chunk-Delay-Ms", "5"))
	defer stream.Close()
	var acc openai.ChatCompletionAccumulator
	chunks := 0
	for stream.Next() {
		acc.AddChunk(stream.Current())
		chunks++
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if chunks != 8 { // role, 6 tokens, stop ([DONE] ends the stream)
		t.Fatalf("%d chunks", chunks)
	}
	if got := acc.Choices[0].Message.Content; got != "tok0 tok1 tok2 tok3 tok4 tok5 " {
		t.Fatalf("accumulated %q", got)
	}
	if acc.Choices[0].FinishReason != "stop" {
		t.Fatalf("finish reason %q", acc.Choices[0].FinishReason)
	}
}

func TestOpenAIHTTPErrorBecomesAnAPIError(t *testing.T) {
	client := newOpenAI(t)
	_, err := client.Chat.Completions.New(context.Background(), chatParams(), option.WithHeader("X-Mock-Status", "401"))
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 401 || !strings.Contains(apiErr.Error(), "401") {
		t.Fatalf("want a 401 openai.Error, got %v", err)
	}
}
