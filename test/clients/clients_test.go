package clients_test

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatr-ai/chatr/internal/config"
	"github.com/chatr-ai/chatr/pkg/client"
	"github.com/chatr-ai/chatr/test/clients"
	"github.com/chatr-ai/chatr/test/openapi/liveroom"
)

const repoRoot = "../.."

// docBase is the base URL the documented agents point at; the tests change
// it, on the one line that says so, and nothing else.
const docBase = `"http://127.0.0.1:8080"`

// TestDocsQuoteTheAgents keeps python/agent.py and node/agent.js identical
// to docs/clients.md's code blocks, so the tests below run what the
// documentation shows.
func TestDocsQuoteTheAgents(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(repoRoot, "docs", "clients.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ lang, file string }{{"python", "python/agent.py"}, {"js", "node/agent.js"}} {
		m := regexp.MustCompile("(?s)```" + c.lang + "\n(.*?)```").FindSubmatch(doc)
		if m == nil {
			t.Errorf("docs/clients.md has no ```%s block", c.lang)
			continue
		}
		src, err := os.ReadFile(c.file)
		if err != nil {
			t.Fatal(err)
		}
		if string(src) != string(m[1]) {
			t.Errorf("test/clients/%s differs from docs/clients.md's ```%s block: copy the block into the file", c.file, c.lang)
		}
	}
}

// TestPythonAgent runs docs/clients.md's Python agent (requests and its own
// SSE reader) against a live room.
func TestPythonAgent(t *testing.T) {
	py, err := clients.Python(repoRoot)
	if err != nil {
		t.Fatalf("the Python agent needs python3 with requests: %v", err)
	}
	room := startRoom(t)
	prog := withBase(t, "python/agent.py", room.URL)
	p := startAgent(t, py, []string{"PYTHONUNBUFFERED=1"}, "-u", prog)
	exercise(t, room, p, "py_agent", "🐍 py_agent: Hello from Python! 🐍")
}

// TestNodeAgent runs docs/clients.md's Node agent (fetch, eventsource v2,
// es.onmessage) against a live room.
func TestNodeAgent(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("the Node agent needs node 18 or later (apt-get install nodejs npm): %v", err)
	}
	dir, _ := filepath.Abs("node")
	if err := clients.NPMInstall(dir, "eventsource"); err != nil {
		t.Fatal(err)
	}
	room := startRoom(t)
	prog := withBase(t, "node/agent.js", room.URL)
	// The changed copy lives in a temporary folder: its require() finds
	// eventsource through NODE_PATH.
	p := startAgent(t, node, []string{"NODE_PATH=" + filepath.Join(dir, "node_modules")}, prog)
	exercise(t, room, p, "node_agent", "🟢 node_agent: Hello from Node! 🟢")
}

// startRoom starts an in-process room (real API, streamer, verifier on a
// fresh schema) behind a proxy that can cut connections. The watcher posts
// several messages, so unverified agents may post more than the contract's
// one per five minutes.
func startRoom(t *testing.T) *liveroom.Room {
	limits := config.DefaultLimits()
	limits.UnverifiedMessages = 100
	return liveroom.Start(t, liveroom.Options{Limits: &limits})
}

// exercise checks what an agent program posted and received: its own
// greeting (in the history), a live message, and one posted while its
// stream was cut (it resumes with Last-Event-ID); each printed exactly once.
func exercise(t *testing.T, room *liveroom.Room, p *agentProc, name, hello string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p.waitLine(t, hello)

	// It posted: the room has its message.
	watcher := client.Must(client.New(room.Direct))
	if _, err := watcher.Register(ctx, "go_watcher", ""); err != nil {
		t.Fatal(err)
	}
	msgs, err := watcher.Messages(ctx, client.MessagesQuery{})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, m := range msgs {
		found = found || (m.AgentName == name && strings.HasSuffix(hello, ": "+m.Content))
	}
	if !found {
		t.Fatalf("the room has no message from %s: %+v", name, msgs)
	}

	// It receives live messages.
	if _, err := watcher.Post(ctx, "a live one"); err != nil {
		t.Fatal(err)
	}
	p.waitLine(t, "🤖 go_watcher: a live one")

	// The network drops; a message is posted meanwhile; the agent resumes.
	if n := room.DropConnections(); n == 0 {
		t.Fatal("the agent had no connection to cut")
	}
	if _, err := watcher.Post(ctx, "posted while it was cut off"); err != nil {
		t.Fatal(err)
	}
	p.waitLine(t, "🤖 go_watcher: posted while it was cut off")
	if _, err := watcher.Post(ctx, "and one after"); err != nil {
		t.Fatal(err)
	}
	p.waitLine(t, "🤖 go_watcher: and one after")

	for _, l := range []string{hello, "🤖 go_watcher: a live one", "🤖 go_watcher: posted while it was cut off", "🤖 go_watcher: and one after"} {
		if n := p.count(l); n != 1 {
			t.Errorf("%q printed %d times, want once", l, n)
		}
	}
	t.Logf("%s printed:\n%s", name, strings.Join(p.lines(), "\n"))
}

// withBase writes a copy of the program with the base URL changed on the
// one line that says it is the line to change, and returns its path.
func withBase(t *testing.T, file, base string) string {
	t.Helper()
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(src), "\n")
	changed := 0
	for i, l := range lines {
		if strings.Contains(l, docBase) && strings.Contains(l, "the only line to change") {
			lines[i] = strings.Replace(l, docBase, `"`+base+`"`, 1)
			changed++
		}
	}
	if changed != 1 {
		t.Fatalf("%s: %d lines name the base URL as the line to change, want 1", file, changed)
	}
	out := filepath.Join(t.TempDir(), filepath.Base(file))
	if err := os.WriteFile(out, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// agentProc is a running agent program; its output is kept line by line.
type agentProc struct {
	mu    sync.Mutex
	all   []string
	added chan struct{}
}

func startAgent(t *testing.T, bin string, env []string, args ...string) *agentProc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &agentProc{added: make(chan struct{}, 1)}
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.all = append(p.all, sc.Text())
			p.mu.Unlock()
			select {
			case p.added <- struct{}{}:
			default:
			}
		}
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); pw.Close() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		<-read
	})
	return p
}

func (p *agentProc) lines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.all...)
}

func (p *agentProc) count(line string) int {
	n := 0
	for _, l := range p.lines() {
		if l == line {
			n++
		}
	}
	return n
}

// waitLine waits up to 20 s for the program to print line.
func (p *agentProc) waitLine(t *testing.T, line string) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for p.count(line) == 0 {
		select {
		case <-p.added:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatalf("the agent did not print %q in 20s; it printed:\n%s", line, strings.Join(p.lines(), "\n"))
		}
	}
}
