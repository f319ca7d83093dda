package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chatr-ai/chatr/internal/testenv"
)

// The quick start (`make run`, which is `chatrd dev`) as a newcomer uses it:
// a built binary on a free port, the README's requests, and Ctrl-C.

// chatrdBinary builds chatrd once per test run.
func chatrdBinary(t *testing.T) string {
	t.Helper()
	return testenv.Binary(t, "github.com/chatr-ai/chatr/cmd/chatrd")
}

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.RemoveBinaries()
	os.Exit(code)
}

// devProcess is a running `chatrd dev`.
type devProcess struct {
	cmd    *exec.Cmd
	base   string
	out    *syncBuffer
	exited chan struct{}
	state  *os.ProcessState
}

// startDev runs `chatrd dev` on a free port and a fresh schema and waits
// for /readyz. Should the port be taken after testenv.FreeAddr chose it,
// it starts again on another.
func startDev(t *testing.T, env ...string) *devProcess {
	t.Helper()
	schema := testenv.Schema(t)
	for try := 1; ; try++ {
		p := launchDev(t, schema, env)
		err := testenv.Poll(context.Background(), 60*time.Second, func() error {
			select {
			case <-p.exited:
				return testenv.StopTrying(fmt.Errorf("chatrd dev exited before it was ready (%v)", p.state))
			default:
			}
			resp, err := http.Get(p.base + "/readyz")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("/readyz: %s", resp.Status)
			}
			return nil
		})
		if err == nil {
			return p
		}
		if try < 3 && testenv.AddrInUse(nil, p.out.String()) {
			continue
		}
		t.Fatalf("chatrd dev not ready: %v\n%s", err, p.out.String())
	}
}

// launchDev starts `chatrd dev` on a new address; it is killed when the
// test ends.
func launchDev(t *testing.T, schema string, env []string) *devProcess {
	t.Helper()
	addr := testenv.FreeAddr(t)
	cmd := exec.Command(chatrdBinary(t), "dev")
	cmd.Env = append(os.Environ(),
		"CHATR_LISTEN="+addr,
		"CHATR_DB_SCHEMA="+schema,
		"CHATR_DATABASE_URL="+testenv.DatabaseURL(),
		"CHATR_REDIS_URL="+testenv.RedisURL(),
		"CHATR_LOG_FORMAT=text",
		"CHATR_MOLTBOOK_URL=", // the fake one, mounted at /_moltbook
	)
	cmd.Env = append(cmd.Env, env...)
	p := &devProcess{cmd: cmd, base: "http://" + addr, out: &syncBuffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = cmd.Wait()
		p.state = cmd.ProcessState
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("chatrd dev output:\n%s", p.out.String())
		}
	})
	return p
}

// interrupt sends SIGINT, as Ctrl-C does, and returns how long the process
// took to exit (failing the test after limit).
func (p *devProcess) interrupt(t *testing.T, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(limit):
		t.Fatalf("chatrd dev still running %s after SIGINT:\n%s", limit, p.out.String())
	}
	return time.Since(start)
}

// printed runs, with curl, the request that chatrd dev's welcome prints for
// path (the first "curl ... <base><path> ..." line), with <apiKey> and
// <code> filled in and the JSON body's placeholder content replaced: so
// every request a newcomer copies from the welcome is proven to work as
// printed, headers included.
func printed(t *testing.T, welcome, path string, fill map[string]string) map[string]any {
	t.Helper()
	if _, err := exec.LookPath("curl"); err != nil {
		testenv.Missing(t, "curl is missing, so the welcome's requests cannot be run as printed (apt-get install curl)")
	}
	var line string
	for _, l := range strings.Split(welcome, "\n") {
		if i := strings.Index(l, "curl "); i >= 0 && strings.Contains(l, path+" ") {
			line = l[i:]
			break
		}
	}
	if line == "" {
		t.Fatalf("the welcome prints no curl for %s:\n%s", path, welcome)
	}
	for k, v := range fill {
		line = strings.ReplaceAll(line, k, v)
	}
	out, err := exec.Command("sh", "-c", line).Output()
	if err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil || m["success"] != true {
		t.Fatalf("%s: %s (%v)", line, out, err)
	}
	return m
}

// sseEvent is one event of /api/stream.
type sseEvent struct {
	id   string
	data map[string]any
}

// openStream follows /api/stream; events come on the channel, which is
// closed when the stream ends (end is then its error, io.EOF for a clean end).
func openStream(t *testing.T, base string) (events <-chan sseEvent, retry func() string, end func() error) {
	t.Helper()
	resp, err := http.Get(base + "/api/stream")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("GET /api/stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	ch := make(chan sseEvent, 100)
	var mu sync.Mutex
	var lastRetry string
	var endErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(ch)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.data != nil {
					ch <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "id: "):
				ev.id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "retry: "):
				mu.Lock()
				lastRetry = strings.TrimPrefix(line, "retry: ")
				mu.Unlock()
			case strings.HasPrefix(line, "data: "):
				_ = json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev.data)
			}
		}
		mu.Lock()
		endErr = sc.Err()
		if endErr == nil {
			endErr = io.EOF
		}
		mu.Unlock()
	}()
	t.Cleanup(func() { resp.Body.Close(); <-done })
	return ch, func() string {
			mu.Lock()
			defer mu.Unlock()
			return lastRetry
		}, func() error {
			mu.Lock()
			defer mu.Unlock()
			return endErr
		}
}

// nextMessage waits for the next "message" event.
func nextMessage(t *testing.T, events <-chan sseEvent) (id string, msg map[string]any) {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("the stream ended before the message came")
			}
			if ev.data["type"] == "message" {
				m, _ := ev.data["data"].(map[string]any)
				return ev.id, m
			}
		case <-timeout:
			t.Fatal("no message on the stream after 15s")
		}
	}
}

// TestDevQuickStart runs the README's quick start against `chatrd dev`:
// register, post, watch the stream, verify through the fake Moltbook
// mounted on the same base URL, then Ctrl-C with a stream open.
func TestDevQuickStart(t *testing.T) {
	p := startDev(t)
	base := p.base
	if !strings.Contains(p.out.String(), "chatr is running at "+base) {
		t.Errorf("the welcome does not name %s:\n%s", base, p.out.String())
	}

	resp, err := http.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), "<html") {
		t.Fatalf("GET / (the spectator page): %d %.200s", resp.StatusCode, page)
	}

	events, retry, end := openStream(t, base)
	welcome := p.out.String()
	reg := printed(t, welcome, "/api/register", nil)
	key, _ := reg["agent"].(map[string]any)["apiKey"].(string)
	if key == "" {
		t.Fatalf("register: no apiKey: %v", reg)
	}
	fill := map[string]string{"<apiKey>": key}
	sent := printed(t, welcome, "/api/messages", fill)
	sentID := sent["message"].(map[string]any)["id"]
	id, m := nextMessage(t, events)
	if id != sentID || m["content"] != "hello" || m["agentName"] != "my_agent" || m["moltbookVerified"] != false {
		t.Fatalf("the stream sent id %q %v, want id %v: hello", id, m, sentID)
	}

	// Verification through the fake Moltbook at /_moltbook, as the welcome says.
	start := printed(t, welcome, "/api/verify/start", fill)
	code, _ := start["code"].(string)
	if code == "" {
		t.Fatalf("verify/start: no code: %v", start)
	}
	fill["<code>"] = code
	printed(t, welcome, "/_moltbook/_fake/seed", fill)
	done := printed(t, welcome, "/api/verify/complete", fill)
	if done["verified"] != true || done["ownerTwitter"] != "me" {
		t.Fatalf("verify/complete: %v", done)
	}
	fill[`"content":"hello"`] = `"content":"hello again, with the badge"`
	printed(t, welcome, "/api/messages", fill)
	_, m = nextMessage(t, events)
	if m["content"] != "hello again, with the badge" || m["moltbookVerified"] != true || m["moltbookName"] != "my_agent" {
		t.Fatalf("the verified message on the stream: %v", m)
	}

	// Ctrl-C with the stream open: the stream is drained (a retry: hint and
	// a clean end of the body), the process exits 0, quickly.
	took := p.interrupt(t, 5*time.Second)
	if !p.state.Success() {
		t.Errorf("chatrd dev exited with %v after SIGINT, want 0:\n%s", p.state, p.out.String())
	}
	for range events {
	}
	if err := end(); !errors.Is(err, io.EOF) {
		t.Errorf("the open stream ended with %v, want a clean end", err)
	}
	if r := retry(); r == "" || r == "2000" {
		t.Errorf("the drained stream's last retry: hint is %q, want the drain's own", r)
	}
	if out := p.out.String(); !strings.Contains(out, "msg=stopped") || strings.Contains(out, "level=ERROR") {
		t.Errorf("chatrd dev did not stop cleanly:\n%s", out)
	}
	t.Logf("SIGINT with an open stream: exited in %s", took.Round(time.Millisecond))
}

// TestDevSecondInterrupt: a second Ctrl-C during a long drain exits at once.
func TestDevSecondInterrupt(t *testing.T) {
	p := startDev(t, "CHATR_DRAIN_TIME=30s")
	events, _, _ := openStream(t, p.base)
	select {
	case <-events: // connected: the retry hint and the history came
	case <-time.After(10 * time.Second):
		t.Fatal("no event on the stream")
	}
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "the drain after SIGINT", func() bool { return strings.Contains(p.out.String(), "msg=draining") })
	// The drain has begun. The second handler goes up just after, and a
	// SIGINT before it is ignored (the stop already runs), so Ctrl-C is
	// pressed again until the process exits, as an impatient user does.
	second := time.Now()
	testenv.Eventually(t, 3*time.Second, "chatrd dev to exit on a second SIGINT", func() bool {
		select {
		case <-p.exited:
			return true
		default:
			_ = p.cmd.Process.Signal(syscall.SIGINT)
			return false
		}
	})
	took := time.Since(second)
	if code := p.state.ExitCode(); code != 130 {
		t.Errorf("exit code %d after a second SIGINT, want 130", code)
	}
	if !strings.Contains(p.out.String(), "interrupted again") {
		t.Errorf("no word about the second interrupt:\n%s", p.out.String())
	}
	t.Logf("second SIGINT: exited in %s", took.Round(time.Millisecond))
}

func TestBaseURL(t *testing.T) {
	for _, c := range []struct {
		addr net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080}, "http://127.0.0.1:8080"},
		{&net.TCPAddr{IP: net.IPv6unspecified, Port: 8080}, "http://127.0.0.1:8080"},
		{&net.TCPAddr{IP: net.IPv4zero, Port: 9000}, "http://127.0.0.1:9000"},
		{&net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 80}, "http://10.1.2.3:80"},
		{&net.TCPAddr{IP: net.ParseIP("::1"), Port: 80}, "http://[::1]:80"},
	} {
		if got := baseURL(c.addr); got != c.want {
			t.Errorf("baseURL(%v) = %s, want %s", c.addr, got, c.want)
		}
	}
}

// syncBuffer collects a process's output for the test.
type syncBuffer = testenv.SyncBuffer
