package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// lineBin is the line binary built once for these tests.
var lineBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "line-bin")
	if err != nil {
		panic(err)
	}
	lineBin = filepath.Join(dir, "line")
	build := exec.Command("go", "build", "-race", "-o", lineBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		panic("build line: " + err.Error())
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// devProc is a running `line dev`.
type devProc struct {
	cmd    *exec.Cmd
	http   string
	kafka  string
	stderr *bytes.Buffer
	exited chan error
}

// startDev runs `line dev` on dataDir with random ports and waits until it
// prints its addresses.
func startDev(t *testing.T, dataDir string) *devProc {
	t.Helper()
	cmd := exec.Command(lineBin, "dev")
	cmd.Env = append(os.Environ(),
		"LINE_DATA_DIR="+dataDir,
		"LINE_DEV_KAFKA_ADDR=127.0.0.1:0",
		"LINE_HTTP_ADDR=127.0.0.1:0",
		"LINE_EVENTS_PARTITIONS=3",
	)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &devProc{cmd: cmd, stderr: &bytes.Buffer{}, exited: make(chan error, 1)}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	go func() { p.exited <- cmd.Wait() }()
	deadline := time.After(60 * time.Second)
	for p.http == "" || p.kafka == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("line dev exited before listening; stderr:\n%s", p.stderr)
			}
			if a, ok := strings.CutPrefix(l, "line dev: http listening on "); ok {
				p.http = a
			}
			if a, ok := strings.CutPrefix(l, "line dev: kafka listening on "); ok {
				p.kafka = a
			}
		case <-deadline:
			_ = cmd.Process.Kill()
			t.Fatalf("line dev did not print its addresses in time; stderr:\n%s", p.stderr)
		}
	}
	go func() {
		for range lines {
		}
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

// stop sends SIGTERM and waits for a clean exit.
func (p *devProc) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.exited:
		if err != nil {
			t.Fatalf("line dev exited with %v; stderr:\n%s", err, p.stderr)
		}
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		t.Fatalf("line dev did not stop on SIGTERM; stderr:\n%s", p.stderr)
	}
}

// post sends a JSON body and returns the status and body.
func post(t *testing.T, url, body string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitHealthy polls /healthz until it answers 200.
func waitHealthy(t *testing.T, base string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s/healthz never answered 200", base)
}

// TestDevRestartKeepsLog: what one line dev appended is there after a
// restart on the same data dir.
func TestDevRestartKeepsLog(t *testing.T) {
	dir := t.TempDir()
	p := startDev(t, dir)
	waitHealthy(t, p.http)
	if code, body := post(t, p.http+"/v1/pools", `{"pool_id":"kept"}`); code != http.StatusCreated {
		t.Fatalf("create pool: %d %s", code, body)
	}
	if code, body := post(t, p.http+"/v1/pools/kept/evals", `{"eval_id":"e1"}`); code != http.StatusAccepted {
		t.Fatalf("submit eval: %d %s", code, body)
	}
	p.stop(t)

	p2 := startDev(t, dir)
	waitHealthy(t, p2.http)
	// The pool is known from the replayed log: creating it again conflicts,
	// and the eval is a duplicate.
	if code, body := post(t, p2.http+"/v1/pools", `{"pool_id":"kept"}`); code != http.StatusConflict {
		t.Fatalf("create existing pool after restart: want 409, got %d %s", code, body)
	}
	if code, body := post(t, p2.http+"/v1/pools/kept/evals", `{"eval_id":"e1"}`); code != http.StatusOK || !strings.Contains(body, `"duplicate":true`) {
		t.Fatalf("resubmit eval after restart: want 200 duplicate, got %d %s", code, body)
	}
	p2.stop(t)
}

// TestDevRefusesLockedDataDir: a second line dev on the same data dir exits
// with a clear message, and the first keeps running.
func TestDevRefusesLockedDataDir(t *testing.T) {
	dir := t.TempDir()
	p := startDev(t, dir)
	waitHealthy(t, p.http)

	second := exec.Command(lineBin, "dev")
	second.Env = append(os.Environ(), "LINE_DATA_DIR="+dir, "LINE_DEV_KAFKA_ADDR=127.0.0.1:0", "LINE_HTTP_ADDR=127.0.0.1:0")
	out, err := second.CombinedOutput()
	if err == nil {
		t.Fatalf("second line dev on the same data dir started; output:\n%s", out)
	}
	if !strings.Contains(string(out), "in use by another line dev") || !strings.Contains(string(out), "LINE_DATA_DIR") {
		t.Fatalf("second line dev: unclear message:\n%s", out)
	}
	if code, body := post(t, p.http+"/v1/pools", `{}`); code != http.StatusCreated {
		t.Fatalf("first line dev stopped working: %d %s", code, body)
	}
	p.stop(t)
}
