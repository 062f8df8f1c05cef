//go:build frameworks

// Command perrow is an LLM program that knows nothing of libesp: it builds a
// new openai-go and anthropic-sdk-go client for every row, from the
// environment (OPENAI_BASE_URL, OPENAI_API_KEY, ANTHROPIC_BASE_URL,
// ANTHROPIC_API_KEY), and asks each one question, BATCH rows at a time.
// Built with -tags esp it gains one line (install_esp.go) and runs on libesp.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	"github.com/openai/openai-go"
)

func main() {
	rows := envInt("ROWS", 200)
	batch := envInt("BATCH", 20)
	started := time.Now()
	rssBefore := rssKiB()
	peakFds := openFds()
	var failures []string
	var mu sync.Mutex
	for first := 0; first < rows; first += batch {
		var wg sync.WaitGroup
		for row := first; row < min(first+batch, rows); row++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := answer(row); err != nil {
					mu.Lock()
					failures = append(failures, err.Error())
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		peakFds = max(peakFds, openFds())
	}
	json.NewEncoder(os.Stdout).Encode(map[string]any{
		"rows": rows, "failures": failures, "ms": time.Since(started).Milliseconds(),
		"peak_fds": peakFds, "rss_growth_mib": (rssKiB() - rssBefore) / 1024,
	})
}

// openFds counts this process's open descriptors.
func openFds() int {
	entries, _ := os.ReadDir("/proc/self/fd")
	return len(entries)
}

// rssKiB reads this process's resident set size.
func rssKiB() int {
	status, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return n
		}
	}
	return 0
}

// answer asks one row's question of both providers, each through a client
// made for this row alone.
func answer(row int) error {
	ctx := context.Background()
	question := fmt.Sprintf("row %d", row)
	oa := openai.NewClient()
	completion, err := oa.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model:    openai.ChatModelGPT4oMini,
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(question)},
	})
	if err != nil {
		return fmt.Errorf("openai %s: %w", question, err)
	}
	if got := completion.Choices[0].Message.Content; got != "echo: "+question {
		return fmt.Errorf("openai %s: answered %q", question, got)
	}
	claude := anthropic.NewClient()
	message, err := claude.Messages.New(ctx, anthropic.MessageNewParams{
		Model:     anthropic.ModelClaudeSonnet4_5,
		MaxTokens: 64,
		Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock(question))},
	})
	if err != nil {
		return fmt.Errorf("anthropic %s: %w", question, err)
	}
	if got := message.Content[0].Text; !strings.HasSuffix(got, question) {
		return fmt.Errorf("anthropic %s: answered %q", question, got)
	}
	return nil
}

func envInt(name string, fallback int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return n
	}
	return fallback
}
