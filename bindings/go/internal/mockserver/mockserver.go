// Package mockserver runs libesp's mock LLM server (test/mock/server.js) as
// a child process for the tests of the Go binding.
package mockserver

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// Server is a running mock server on 127.0.0.1.
type Server struct {
	HTTPPort  int    `json:"http_port"`  // plain HTTP/1.1
	HTTPSPort int    `json:"https_port"` // TLS, HTTP/2 and HTTP/1.1
	CAFile    string `json:"ca_file"`    // the CA of the TLS port's certificate

	cmd   *exec.Cmd
	stdin io.Closer
}

// Start runs the mock server of the libesp tree at $ESP_ROOT (default: the
// tree this file is in) and waits until it listens.
func Start() (*Server, error) {
	root := os.Getenv("ESP_ROOT")
	if root == "" {
		_, file, _, _ := runtime.Caller(0)
		root = filepath.Join(filepath.Dir(file), "..", "..", "..", "..")
	}
	s := &Server{cmd: exec.Command("node", filepath.Join(root, "test", "mock", "server.js"))}
	s.cmd.Stderr = os.Stderr
	// The server exits when its stdin closes, so it cannot outlive the tests.
	stdin, err := s.cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	s.stdin = stdin
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("mock server: %w", err)
	}
	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, s)
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("mock server: first line %q: %w", line, err)
	}
	return s, nil
}

// BaseURL is the base URL of the OpenAI-compatible API on the plain port.
func (s *Server) BaseURL() string { return fmt.Sprintf("http://127.0.0.1:%d/v1", s.HTTPPort) }

// Close stops the server and waits for it to exit.
func (s *Server) Close() {
	s.stdin.Close()
	s.cmd.Wait()
}
