package main

// The chatr command against the real room (test/openapi/liveroom: the API,
// streamer and verifier on real Postgres and Redis, the fake Moltbook).

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chatr-ai/chatr/internal/config"
	"github.com/chatr-ai/chatr/internal/fakemoltbook"
	"github.com/chatr-ai/chatr/internal/store"
	"github.com/chatr-ai/chatr/internal/testenv"
	"github.com/chatr-ai/chatr/pkg/client"
	"github.com/chatr-ai/chatr/test/openapi/liveroom"
)

// result is one run of the command.
type result struct {
	code           int
	stdout, stderr string
}

// chatr runs the command with args and returns what it printed.
func chatr(args ...string) result {
	var out, errOut bytes.Buffer
	code := run(args, &out, &errOut)
	return result{code, out.String(), errOut.String()}
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
}

// isolate keeps the test away from the developer's own settings.
func isolate(t *testing.T) (configPath string) {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", dir)
	t.Setenv("HOME", dir)
	t.Setenv("CHATR_URL", "")
	t.Setenv("CHATR_API_KEY", "")
	t.Setenv("CHATR_CONFIG", "")
	return filepath.Join(dir, "chatr", "config.json")
}

func chatty() *config.Limits {
	l := config.DefaultLimits()
	l.UnverifiedMessages = 1000
	l.RegistrationsPerIP = 1000
	l.RequestsPerIP = 100000
	return &l
}

func TestCLI(t *testing.T) {
	cfgPath := isolate(t)
	room := liveroom.Start(t, liveroom.Options{Limits: chatty()})

	// register writes the key to the default config file, 0600 in a 0700 folder.
	r := chatr("register", "cli_bot", "--url", room.URL, "--avatar", "🦉")
	if r.code != 0 || !strings.Contains(r.stdout, "Registered 🦉 cli_bot") || !strings.Contains(r.stdout, "Key saved to "+cfgPath) {
		t.Fatalf("register:\n%v", r)
	}
	fi, err := os.Stat(cfgPath)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("config file: %v %v", fi, err)
	}
	if di, _ := os.Stat(filepath.Dir(cfgPath)); di.Mode().Perm() != 0o700 {
		t.Errorf("config folder mode %v, want 0700", di.Mode().Perm())
	}
	var cfg fileConfig
	b, _ := os.ReadFile(cfgPath)
	if json.Unmarshal(b, &cfg) != nil || cfg.URL != room.URL || !strings.HasPrefix(cfg.APIKey, "chatr_") || cfg.Name != "cli_bot" {
		t.Fatalf("config %s", b)
	}

	// A second register would lose the saved key: refused before asking the room.
	r = chatr("register", "cli_other")
	if r.code != exitUsage || !strings.Contains(r.stderr, `already holds the key of agent "cli_bot"`) {
		t.Fatalf("register over a saved key:\n%v", r)
	}
	c := client.Must(client.New(room.Direct))
	if _, err := c.Register(context.Background(), "cli_other", ""); err != nil {
		t.Fatalf("the refused register reached the room: %v", err)
	}

	// post: the URL and key come from the config file; text from args or stdin.
	r = chatr("post", "hello", "from", "the", "cli")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "Posted #") {
		t.Fatalf("post:\n%v", r)
	}
	stdin = strings.NewReader("from stdin\n")
	r = chatr("post", "--json")
	stdin = os.Stdin
	var posted struct {
		Success bool
		Message struct{ ID, Content, AgentName string }
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &posted) != nil || !posted.Success || posted.Message.Content != "from stdin" || posted.Message.AgentName != "cli_bot" {
		t.Fatalf("post from stdin --json:\n%v", r)
	}
	// Terminal safety: escape sequences from the room never reach the
	// terminal. This API refuses them (a 400 the CLI reports), so the
	// message goes into the room's table directly, as another server's
	// room might hold it.
	evil := "-evil \x1b]0;pwned\x07 \x1b[2J \u202eoll\u202c"
	r = chatr("post", "--", evil)
	if r.code == 0 || !strings.Contains(r.stderr, "control character U+001B") {
		t.Fatalf("post of escape sequences (starting with a dash, after --):\n%v", r)
	}
	st := testenv.StoreFor(t, room.Schema)
	sum := sha256.Sum256([]byte(cfg.APIKey))
	agent, _, err := st.AgentByKeyHash(context.Background(), sum[:])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.InsertMessages(context.Background(), []store.NewMessage{{Agent: agent, Content: evil}}); err != nil {
		t.Fatal(err)
	}
	r = chatr("messages", "--limit", "3")
	if r.code != 0 || strings.Count(r.stdout, "\n") != 3 || !strings.Contains(r.stdout, "🦉 cli_bot: hello from the cli") || !strings.Contains(r.stdout, "-evil") {
		t.Fatalf("messages:\n%v", r)
	}
	if strings.ContainsAny(r.stdout, "\x1b\x07\u202e") {
		t.Fatalf("control characters reached the terminal: %q", r.stdout)
	}
	r = chatr("messages", "--json", "--after", posted.Message.ID)
	var list struct{ Messages []struct{ Content string } }
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &list) != nil || len(list.Messages) != 1 || !strings.HasPrefix(list.Messages[0].Content, "-evil \x1b]0;pwned") {
		t.Fatalf("messages --json keeps the content exact:\n%v", r)
	}

	// agents, heartbeat, disconnect.
	if r = chatr("agents"); r.code != 0 || !strings.Contains(r.stdout, "cli_bot") || !strings.Contains(r.stdout, "1 online, 2 agents, 3 messages") {
		t.Fatalf("agents:\n%v", r)
	}
	if r = chatr("heartbeat", "--json"); r.code != 0 || strings.TrimSpace(r.stdout) != `{"success":true}` {
		t.Fatalf("heartbeat:\n%v", r)
	}
	if r = chatr("disconnect"); r.code != 0 || r.stdout != "Offline.\n" {
		t.Fatalf("disconnect:\n%v", r)
	}
	r = chatr("agents", "--json")
	var agents struct {
		Agents []any
		Stats  struct{ OnlineAgents int }
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &agents) != nil || len(agents.Agents) != 0 || agents.Stats.OnlineAgents != 0 {
		t.Fatalf("agents after disconnect:\n%v", r)
	}

	// The room's errors: one clear line, the status in it, exit 1; --json adds an object.
	r = chatr("register", "CLI_BOT", "--no-save")
	if r.code != exitFailed || r.stderr != "chatr: Name already taken (409)\n" || r.stdout != "" {
		t.Fatalf("taken name:\n%v", r)
	}
	r = chatr("register", "CLI_BOT", "--no-save", "--json")
	if r.code != exitFailed || strings.TrimSpace(r.stdout) != `{"error":"Name already taken","status":409,"success":false}` {
		t.Fatalf("taken name --json:\n%v", r)
	}
	r = chatr("post", "x", "--key", "chatr_00000000000000000000000000000000")
	if r.code != exitFailed || r.stderr != "chatr: Invalid API key (401)\n" {
		t.Fatalf("--key beats the config file:\n%v", r)
	}
	t.Setenv("CHATR_API_KEY", "nonsense")
	r = chatr("heartbeat")
	if r.code != exitFailed || r.stderr != "chatr: Invalid API key. Use: Authorization: Bearer YOUR_KEY (401)\n" {
		t.Fatalf("$CHATR_API_KEY beats the config file:\n%v", r)
	}
	t.Setenv("CHATR_API_KEY", "")
	t.Setenv("CHATR_URL", "http://127.0.0.1:1")
	if r = chatr("agents"); r.code != exitFailed || !strings.HasPrefix(r.stderr, "chatr: cannot reach http://127.0.0.1:1/api/agents") {
		t.Fatalf("$CHATR_URL beats the config file:\n%v", r)
	}
	t.Setenv("CHATR_URL", "")
	if r = chatr("post", strings.Repeat("x", 251)); r.code != exitFailed || r.stderr != "chatr: Message must be 1-250 characters (400)\n" {
		t.Fatalf("long message:\n%v", r)
	}

	// A config file others can read is refused, with the fix.
	if err := os.Chmod(cfgPath, 0o644); err != nil {
		t.Fatal(err)
	}
	r = chatr("post", "x")
	if r.code != exitUsage || !strings.Contains(r.stderr, "readable by others (mode 0644)") || !strings.Contains(r.stderr, "chmod 600 "+cfgPath) {
		t.Fatalf("config file 0644:\n%v", r)
	}
	_ = os.Chmod(cfgPath, 0o600)

	// --force replaces the saved key.
	if r = chatr("register", "cli_new", "--force", "--json"); r.code != 0 || !strings.Contains(r.stdout, `"apiKey":"chatr_`) {
		t.Fatalf("register --force:\n%v", r)
	}
	b, _ = os.ReadFile(cfgPath)
	if json.Unmarshal(b, &cfg) != nil || cfg.Name != "cli_new" {
		t.Fatalf("config after --force: %s", b)
	}
}

func TestCLIUsage(t *testing.T) {
	cfgPath := isolate(t)
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{nil, exitUsage, "chatr: no command given"},
		{[]string{"frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{[]string{"register"}, exitUsage, "usage: chatr register NAME"},
		{[]string{"verify", "start"}, exitUsage, "usage: chatr verify"},
		{[]string{"verify", "bogus", "x"}, exitUsage, "usage: chatr verify"},
		{[]string{"tail", "--max", "x"}, exitUsage, "tail: invalid value"},
		{[]string{"post", "hi"}, exitUsage, "no API key: run chatr register NAME first"},
		{[]string{"agents", "--url", "ftp://x"}, exitUsage, "want http:// or https://"},
		{[]string{"help"}, exitOK, ""},
		{[]string{"post", "-h"}, exitOK, ""},
	} {
		r := chatr(c.args...)
		if r.code != c.code || !strings.Contains(r.stderr, c.want) {
			t.Errorf("chatr %q:\n%v\nwant exit %d and %q", c.args, r, c.code, c.want)
		}
		if c.code == exitOK && !strings.Contains(r.stdout, "usage: chatr") {
			t.Errorf("chatr %q printed no help", c.args)
		}
	}
	if _, err := os.Stat(cfgPath); err == nil {
		t.Error("a failed command wrote the config file")
	}
}

func TestCLIRateLimited(t *testing.T) {
	isolate(t)
	room := liveroom.Start(t, liveroom.Options{})
	key := client.Must(client.New(room.Direct))
	if _, err := key.Register(context.Background(), "slow_bot", ""); err != nil {
		t.Fatal(err)
	}
	if r := chatr("post", "one", "--url", room.URL, "--key", key.APIKey()); r.code != 0 {
		t.Fatalf("first post:\n%v", r)
	}
	r := chatr("post", "two", "--url", room.URL, "--key", key.APIKey(), "--json")
	if r.code != exitLimited || !strings.Contains(r.stderr, "(429), retry in 5m0s") || !strings.Contains(r.stdout, `"retryAfter":300`) {
		t.Fatalf("second post:\n%v", r)
	}
}

// TestCLITail follows the room, through connection drops, and prints each
// message exactly once.
func TestCLITail(t *testing.T) {
	isolate(t)
	room := liveroom.Start(t, liveroom.Options{Limits: chatty()})
	ctx := context.Background()
	poster := client.Must(client.New(room.Direct))
	if _, err := poster.Register(ctx, "tail_poster", "🐙"); err != nil {
		t.Fatal(err)
	}
	post := func(s string) {
		t.Helper()
		if _, err := poster.Post(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	post("m1")
	post("m2")

	// --json prints the wire events as lines; --max stops it. (The post is
	// answered once committed; the streamer has it a moment later, so a
	// history without it yet is asked again.)
	var r result
	testenv.Eventually(t, 10*time.Second, "tail --json --max 1 shows m2 in the history", func() error {
		r = chatr("tail", "--url", room.URL, "--json", "--max", "1")
		var ev struct {
			Type string
			Data []struct{ ID, Content string }
		}
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &ev) != nil || ev.Type != "history" || len(ev.Data) != 1 {
			return testenv.StopTrying(fmt.Errorf("tail --json --max 1:\n%v", r))
		}
		if ev.Data[0].Content != "m2" {
			return fmt.Errorf("the history ends with %q", ev.Data[0].Content)
		}
		return nil
	})

	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() { done <- run([]string{"tail", "--url", room.URL, "--max", "7"}, &out, &errOut) }()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		testenv.Eventually(t, 20*time.Second, what, func() error {
			if cond() {
				return nil
			}
			return fmt.Errorf("not yet:\nstdout: %s\nstderr: %s", out.String(), errOut.String())
		})
	}
	waitFor("the history", func() bool { return strings.Count(out.String(), "\n") == 2 })
	post("m3")
	waitFor("m3", func() bool { return strings.Contains(out.String(), "m3") })
	for round := range 2 {
		room.DropConnections()
		post(fmt.Sprintf("missed %d", round))
		waitFor("the resume", func() bool { return strings.Count(errOut.String(), "stream resumed") == round+1 })
		post(fmt.Sprintf("live %d", round))
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("tail exit %d\nstderr: %s", code, errOut.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("tail did not stop after 7 messages:\n%s", out.String())
	}
	var contents []string
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		_, content, _ := strings.Cut(line, "tail_poster: ")
		contents = append(contents, content)
		if !strings.Contains(line, " 🐙 tail_poster: ") {
			t.Errorf("line %q", line)
		}
	}
	if got := strings.Join(contents, ","); got != "m1,m2,m3,missed 0,live 0,missed 1,live 1" {
		t.Errorf("printed %s, want each message once, in order", got)
	}
	if n := strings.Count(errOut.String(), "stream interrupted"); n != 2 {
		t.Errorf("%d interruption notices, want 2:\n%s", n, errOut.String())
	}
}

// syncBuffer collects output written from another goroutine.
type syncBuffer = testenv.SyncBuffer

func TestCLIVerify(t *testing.T) {
	cfgPath := isolate(t)
	room := liveroom.Start(t, liveroom.Options{Limits: chatty(), VerifyWait: 300 * time.Millisecond})
	if r := chatr("register", "verif_cli", "--url", room.URL, "--config", cfgPath); r.code != 0 {
		t.Fatalf("register:\n%v", r)
	}
	r := chatr("verify", "status", "--config", cfgPath)
	if r.code != exitFailed || r.stderr != "chatr: No verification started. Call POST /api/verify/start first (400)\n" {
		t.Fatalf("status before start:\n%v", r)
	}
	r = chatr("verify", "start", "Verif_CLI", "--config", cfgPath, "--json")
	var start struct{ Code, MoltbookName, Message string }
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &start) != nil || len(start.Code) != 8 || start.MoltbookName != "verif_cli" {
		t.Fatalf("verify start:\n%v", r)
	}
	r = chatr("verify", "start", "verif_cli", "--config", cfgPath)
	if r.code != 0 || !strings.Contains(r.stdout, "Your code is "+start.Code) || !strings.Contains(r.stdout, "chatr verify complete verif_cli") {
		t.Fatalf("verify start (text):\n%v", r)
	}
	// No post yet: the contract's 404, with the hint naming the code.
	room.Moltbook.Set(fakemoltbook.Agent{Name: "verif_cli", Claimed: true})
	r = chatr("verify", "complete", "verif_cli", "--config", cfgPath)
	if r.code != exitFailed || !strings.HasPrefix(r.stderr, "chatr: checking Moltbook...\nchatr: Verification POST not found.") || !strings.Contains(r.stderr, "(404); Your post content must contain: ["+start.Code+"]") {
		t.Fatalf("verify complete without the post:\n%v", r)
	}
	// A slow Moltbook (202 then polling) that finds the post.
	a := fakemoltbook.Verified("verif_cli", "human", start.Code)
	a.Faults = []fakemoltbook.Fault{{Delay: fakemoltbook.Duration(1200 * time.Millisecond)}}
	room.Moltbook.Set(a)
	r = chatr("verify", "complete", "verif_cli", "--config", cfgPath)
	if r.code != 0 || r.stdout != "🦞 Verified as verif_cli on Moltbook! (owner: @human)\n" {
		t.Fatalf("verify complete:\n%v", r)
	}
	r = chatr("verify", "complete", "verif_cli", "--config", cfgPath, "--json")
	if r.code != 0 || !strings.Contains(r.stdout, `"alreadyVerified":true`) {
		t.Fatalf("verify complete again:\n%v", r)
	}
	r = chatr("verify", "status", "--config", cfgPath)
	if r.code != 0 || !strings.Contains(r.stdout, "status: verified") {
		t.Fatalf("verify status:\n%v", r)
	}
	// The badge shows in the room.
	chatr("post", "badge check", "--config", cfgPath)
	if r = chatr("messages", "--config", cfgPath); !strings.Contains(r.stdout, "verif_cli 🦞: badge check") {
		t.Fatalf("messages after verification:\n%v", r)
	}
}
