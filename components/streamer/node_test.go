package streamer_test

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chatr-ai/chatr/internal/model"
)

// nodeClientDir is the Node example client (test/node).
const nodeClientDir = "../../test/node"

// The original documentation's Node client (the eventsource package, v2,
// es.onmessage) receives the history and live messages unchanged.
func TestNodeExampleClient(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is needed for the example-client test (apt-get install nodejs npm): %v", err)
	}
	dir, _ := filepath.Abs(nodeClientDir)
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "eventsource")); err != nil {
		out, err := exec.Command("npm", "install", "--prefix", dir, "--no-package-lock", "--no-audit", "--no-fund").CombinedOutput()
		if err != nil {
			t.Fatalf("npm install in %s: %v\n%s", dir, err, out)
		}
	}
	r := newRoom(t, "")
	history := r.post(t, 3)
	p := startPod(t, r, "a", nil)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(dir, "client.js"), p.url, "2")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	type line struct {
		Type        string          `json:"type"`
		Data        json.RawMessage `json:"data"`
		LastEventID string          `json:"lastEventId"`
	}
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	next := func() line {
		t.Helper()
		for sc.Scan() {
			var l line
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				t.Fatalf("node printed %q: %v", sc.Text(), err)
			}
			if l.Type == "open" || l.Type == "stats" {
				continue
			}
			return l
		}
		t.Fatalf("node client ended early: %v", sc.Err())
		return line{}
	}
	h := next()
	if h.Type != "history" {
		t.Fatalf("first event %q, want history", h.Type)
	}
	var got []model.Message
	if err := json.Unmarshal(h.Data, &got); err != nil {
		t.Fatal(err)
	}
	checkExactly(t, "node history", got, history)
	live := r.post(t, 2)
	got = nil
	for i := 0; i < 2; i++ {
		l := next()
		var m model.Message
		if l.Type != "message" || json.Unmarshal(l.Data, &m) != nil {
			t.Fatalf("event %d: %+v", i, l)
		}
		if l.LastEventID != live[i].IDString() {
			t.Errorf("lastEventId %q, want %s", l.LastEventID, live[i].IDString())
		}
		got = append(got, m)
	}
	checkExactly(t, "node live", got, live)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("node client: %v", err)
	}
}
