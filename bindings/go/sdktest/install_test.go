//go:build frameworks

// Run by `make test-frameworks` (the SDKs take about a minute to compile on a
// fresh machine, too long for `make test`).

package sdktest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/anthropics/anthropic-sdk-go"
	anthropicoption "github.com/anthropics/anthropic-sdk-go/option"
	esp "github.com/libesp/libesp/bindings/go"
	"github.com/openai/openai-go"
	"github.com/openai/openai-go/option"
)

// control talks to the mock's control endpoints on a transport of its own.
var control = &http.Client{Transport: &http.Transport{}}

// mockConnections runs work and returns the API connections the mock
// accepted and the requests it served meanwhile.
func mockConnections(t *testing.T, work func()) (connections, requests int) {
	t.Helper()
	root := fmt.Sprintf("http://127.0.0.1:%d/_mock/", mock.HTTPPort)
	resp, err := control.Post(root+"reset", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	work()
	resp, err = control.Get(root + "stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s struct{ Connections, Requests int }
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	return s.Connections, s.Requests
}

// inBatches runs row(0..rows-1), batch rows at a time, and fails the test
// on the first error.
func inBatches(t *testing.T, rows, batch int, row func(int) error) {
	t.Helper()
	for first := 0; first < rows; first += batch {
		var wg sync.WaitGroup
		errs := make(chan error, batch)
		for r := first; r < min(first+batch, rows); r++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := row(r); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
}

// TestSDKsPerRowOnInstall: a new openai-go and anthropic-sdk-go client per
// row, given nothing but a base URL and a key, over TLS with the mock's
// private CA, share libesp's pool once esp.InstallConfig has run.
func TestSDKsPerRowOnInstall(t *testing.T) {
	if err := esp.InstallConfig(esp.Config{CAFile: mock.CAFile}); err != nil {
		t.Fatal(err)
	}
	defer esp.Uninstall()
	root := fmt.Sprintf("https://localhost:%d", mock.HTTPSPort)
	ctx := context.Background()
	const rows = 300
	conns, requests := mockConnections(t, func() {
		inBatches(t, rows, 25, func(row int) error {
			question := fmt.Sprintf("row %d", row)
			oa := openai.NewClient(option.WithBaseURL(root+"/v1"), option.WithAPIKey("sk-test"))
			claude := anthropic.NewClient(anthropicoption.WithBaseURL(root), anthropicoption.WithAPIKey("sk-ant-test"))
			params := openai.ChatCompletionNewParams{
				Model:    openai.ChatModelGPT4oMini,
				Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(question)},
			}
			claudeParams := anthropic.MessageNewParams{
				Model:     anthropic.ModelClaudeSonnet4_5,
				MaxTokens: 64,
				Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock(question))},
			}
			var openaiText, claudeText string
			if row%5 == 0 { // every fifth row streams
				stream := oa.Chat.Completions.NewStreaming(ctx, params)
				var acc openai.ChatCompletionAccumulator
				for stream.Next() {
					acc.AddChunk(stream.Current())
				}
				if err := stream.Err(); err != nil {
					return fmt.Errorf("openai stream %s: %w", question, err)
				}
				openaiText = acc.Choices[0].Message.Content
				events := claude.Messages.NewStreaming(ctx, claudeParams)
				var message anthropic.Message
				for events.Next() {
					if err := message.Accumulate(events.Current()); err != nil {
						return err
					}
				}
				if err := events.Err(); err != nil {
					return fmt.Errorf("anthropic stream %s: %w", question, err)
				}
				claudeText = message.Content[0].Text
			} else {
				completion, err := oa.Chat.Completions.New(ctx, params)
				if err != nil {
					return fmt.Errorf("openai %s: %w", question, err)
				}
				openaiText = completion.Choices[0].Message.Content
				message, err := claude.Messages.New(ctx, claudeParams)
				if err != nil {
					return fmt.Errorf("anthropic %s: %w", question, err)
				}
				claudeText = message.Content[0].Text
			}
			if openaiText != "echo: "+question || claudeText != "echo: "+question {
				return fmt.Errorf("%s: answered %q and %q", question, openaiText, claudeText)
			}
			return nil
		})
	})
	t.Logf("%d rows, 25 at a time, a new client of each SDK per row: %d requests over %d connection(s)", rows, requests, conns)
	if requests != 2*rows {
		t.Fatalf("the mock served %d requests, want %d", requests, 2*rows)
	}
	if conns > 4 {
		t.Fatalf("%d connections for %d rows", conns, rows)
	}
}

// TestUnawareProgramCollapsesOntoTheSharedPool runs perrow, a program that
// knows nothing of libesp, as it is and with its one added line
// (go build -tags esp), and compares the connections each opened.
func TestUnawareProgramCollapsesOntoTheSharedPool(t *testing.T) {
	dir := t.TempDir()
	build := func(name, tags string) string {
		out := filepath.Join(dir, name)
		// ESP_GO_TAGS: how this test's own build linked libesp (esp_system).
		if extra := os.Getenv("ESP_GO_TAGS"); extra != "" {
			tags += "," + extra
		}
		cmd := exec.Command("go", "build", "-o", out, "-tags", tags, "./perrow")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, b)
		}
		return out
	}
	plain, onESP := build("perrow", "frameworks"), build("perrow-esp", "frameworks,esp")
	type result struct {
		connections, peakFds, rssGrowthMiB int
		ms                                 int64
	}
	run := func(program, scheme string) result {
		t.Helper()
		root := fmt.Sprintf("http://127.0.0.1:%d", mock.HTTPPort)
		if scheme == "https" {
			root = fmt.Sprintf("https://localhost:%d", mock.HTTPSPort)
		}
		var stdout bytes.Buffer
		var report struct {
			Rows         int
			Failures     []string
			MS           int64
			PeakFds      int `json:"peak_fds"`
			RSSGrowthMiB int `json:"rss_growth_mib"`
		}
		connections, _ := mockConnections(t, func() {
			cmd := exec.Command(program)
			cmd.Env = append(os.Environ(), "ROWS=200", "BATCH=20", "SSL_CERT_FILE="+mock.CAFile,
				"OPENAI_BASE_URL="+root+"/v1", "OPENAI_API_KEY=sk-test",
				"ANTHROPIC_BASE_URL="+root, "ANTHROPIC_API_KEY=sk-ant-test")
			cmd.Stdout, cmd.Stderr = &stdout, io.Discard
			if err := cmd.Run(); err != nil {
				t.Fatalf("%s: %v", program, err)
			}
		})
		if err := json.Unmarshal(stdout.Bytes(), &report); err != nil || report.Rows != 200 || len(report.Failures) > 0 {
			t.Fatalf("%s over %s: %v %s", filepath.Base(program), scheme, err, strings.TrimSpace(stdout.String()))
		}
		return result{connections, report.PeakFds, report.RSSGrowthMiB, report.MS}
	}
	for _, scheme := range []string{"http", "https"} {
		p, e := run(plain, scheme), run(onESP, scheme)
		t.Logf("%s, 200 rows in batches of 20: net/http %+v; libesp %+v", scheme, p, e)
		plainConns, espConns := p.connections, e.connections
		limit := 20 // HTTP/1.1: one connection per request in flight
		if scheme == "https" {
			limit = 4 // HTTP/2: multiplexed
		}
		if espConns > limit {
			t.Fatalf("%s: %d connections on libesp", scheme, espConns)
		}
		if scheme == "http" && plainConns < 2*espConns {
			t.Fatalf("http: net/http opened %d connections, libesp %d: nothing collapsed", plainConns, espConns)
		}
	}
}

// TestSDKRetriesStayTheSDKsOnInstall: the installed transport does not retry,
// so openai-go's own 2 retries are the only ones (3 sends, not 3 x 3), and
// anthropic-sdk-go sees a 529 as its own error.
func TestSDKRetriesStayTheSDKsOnInstall(t *testing.T) {
	if err := esp.InstallConfig(esp.Config{CAFile: mock.CAFile}); err != nil {
		t.Fatal(err)
	}
	defer esp.Uninstall()
	root := fmt.Sprintf("https://localhost:%d", mock.HTTPSPort)
	key := fmt.Sprintf("retries-%d", os.Getpid())
	oa := openai.NewClient(option.WithBaseURL(root+"/v1"), option.WithAPIKey("sk-test"))
	_, err := oa.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model:    openai.ChatModelGPT4oMini,
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("again")},
	}, option.WithHeader("X-Mock-Key", key), option.WithHeader("X-Mock-Status", "503"),
		option.WithHeader("X-Mock-Retry-After-Ms", "10"))
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 503 {
		t.Fatalf("want a 503 openai.Error, got %v", err)
	}
	resp, err := control.Get(fmt.Sprintf("http://127.0.0.1:%d/_mock/requests?key=%s", mock.HTTPPort, key))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var seen []json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&seen); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 3 {
		t.Fatalf("the server saw %d sends, want 3 (the SDK's first try and its 2 retries)", len(seen))
	}

	claude := anthropic.NewClient(anthropicoption.WithBaseURL(root), anthropicoption.WithAPIKey("sk-ant-test"),
		anthropicoption.WithMaxRetries(0))
	_, err = claude.Messages.New(context.Background(), anthropic.MessageNewParams{
		Model: anthropic.ModelClaudeSonnet4_5, MaxTokens: 8,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))},
	}, anthropicoption.WithHeader("X-Mock-Status", "529"))
	var claudeErr *anthropic.Error
	if !errors.As(err, &claudeErr) || claudeErr.StatusCode != 529 {
		t.Fatalf("want a 529 anthropic.Error, got %v", err)
	}
}
