package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/chatr-ai/chatr/components/api"
	"github.com/chatr-ai/chatr/internal/config"
	"github.com/chatr-ai/chatr/internal/testenv"
	"github.com/chatr-ai/chatr/pkg/client"
)

const cliModToken = "cli-test-moderator-token-0123"

// chatr admin against a real API server's moderation listener: ban with an
// expiry (the agent's posts refused with the reason), the bans, unban,
// delete a message, the log; clear errors for a missing token, a wrong one,
// an unknown agent, missing reasons, and a room without moderation.
func TestCLIAdmin(t *testing.T) {
	isolate(t)
	t.Setenv("CHATR_ADMIN_URL", "")
	t.Setenv("CHATR_MODERATOR_TOKEN", "")
	t.Setenv("CHATR_MODERATOR", "")
	start := func(token string) (public, mod string) {
		limits := config.DefaultLimits()
		limits.UnverifiedMessages = 1000
		srv, err := api.New(context.Background(), api.Config{Limits: limits, ModerationToken: token,
			Common: config.Common{DatabaseURL: testenv.DatabaseURL(), Schema: testenv.Schema(t), RedisURL: testenv.RedisURL(), Migrate: true}},
			slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		pub, adm := httptest.NewServer(srv.Handler()), httptest.NewServer(srv.ModerationHandler())
		t.Cleanup(func() { pub.Close(); adm.Close(); srv.Close() })
		return pub.URL, adm.URL
	}
	public, mod := start(cliModToken)
	ctx := context.Background()
	c := client.Must(client.New(public))
	reg, err := c.Register(ctx, "noisy_bot", "")
	if err != nil {
		t.Fatal(err)
	}
	agent := client.Must(client.New(public, client.WithAPIKey(reg.Agent.APIKey)))
	m, err := agent.Post(ctx, "a message to delete")
	if err != nil {
		t.Fatal(err)
	}

	// Usage and configuration errors: exit 2, one clear line.
	r := chatr("admin", "bans", "--admin-url", mod)
	if r.code != exitUsage || !strings.Contains(r.stderr, "no moderator token: set $CHATR_MODERATOR_TOKEN") {
		t.Fatalf("without a token:\n%v", r)
	}
	t.Setenv("CHATR_MODERATOR_TOKEN", cliModToken)
	t.Setenv("CHATR_MODERATOR", "carol")
	for args, want := range map[string]string{
		"ban noisy_bot":                     "--reason is required",
		"delete 1":                          "--reason is required",
		"ban":                               "usage: chatr admin ban NAME",
		"frobnicate":                        `unknown command "frobnicate"`,
		"bans --admin-url ftp://x":          "is not an http(s) URL",
		"ban noisy_bot --reason x --nope=1": "flag provided but not defined",
	} {
		r := chatr(append([]string{"admin", "--admin-url", mod}, strings.Fields(args)...)...)
		if r.code != exitUsage || !strings.Contains(r.stderr, want) {
			t.Errorf("chatr admin %s:\n%v\nwant exit 2 saying %q", args, r, want)
		}
	}
	// The room's refusals: exit 1 with its message.
	r = chatr("admin", "bans", "--admin-url", mod, "--token", cliModToken+"-wrong")
	if r.code != exitFailed || !strings.Contains(r.stderr, "Invalid moderator token (401)") {
		t.Fatalf("a wrong token:\n%v", r)
	}
	r = chatr("admin", "ban", "ghost", "--reason", "x", "--admin-url", mod)
	if r.code != exitFailed || !strings.Contains(r.stderr, `Agent "ghost" not found (404)`) {
		t.Fatalf("an unknown agent:\n%v", r)
	}
	r = chatr("admin", "ban", "noisy_bot", "--reason", "x", "--expires", "soon", "--admin-url", mod)
	if r.code != exitFailed || !strings.Contains(r.stderr, "expires must be a duration such as 24h or 7d") {
		t.Fatalf("a bad expiry:\n%v", r)
	}

	// Ban, with the admin URL from the environment.
	t.Setenv("CHATR_ADMIN_URL", mod)
	r = chatr("admin", "ban", "noisy_bot", "--reason", "flooding", "--expires", "1d")
	if r.code != 0 || !strings.Contains(r.stdout, "carol ban noisy_bot until ") || !strings.Contains(r.stdout, ": flooding") {
		t.Fatalf("ban:\n%v", r)
	}
	if _, err := agent.Post(ctx, "still talking"); err == nil || !strings.Contains(err.Error(), "This agent is banned from the room: flooding (until ") {
		t.Fatalf("a banned agent's post: %v", err)
	}
	r = chatr("admin", "bans")
	if r.code != 0 || !strings.Contains(r.stdout, "noisy_bot banned ") || !strings.Contains(r.stdout, "by carol") {
		t.Fatalf("bans:\n%v", r)
	}
	r = chatr("admin", "unban", "noisy_bot", "--json")
	var un struct {
		Success bool
		Action  struct{ Action, Agent, Moderator string }
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &un) != nil || !un.Success || un.Action.Action != "unban" || un.Action.Moderator != "carol" {
		t.Fatalf("unban --json:\n%v", r)
	}
	if _, err := agent.Post(ctx, "back"); err != nil {
		t.Fatalf("post after the unban: %v", err)
	}
	r = chatr("admin", "delete", m.ID, "--reason", "spam", "--moderator", "dave")
	if r.code != 0 || !strings.Contains(r.stdout, "dave delete message "+m.ID+" by noisy_bot: spam") {
		t.Fatalf("delete:\n%v", r)
	}
	msgs, err := c.Messages(ctx, client.MessagesQuery{})
	if err != nil {
		t.Fatal(err)
	}
	for _, got := range msgs {
		if got.ID == m.ID {
			t.Fatalf("deleted message %s still listed", m.ID)
		}
	}
	r = chatr("admin", "log", "--limit", "2")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 2 || !strings.Contains(lines[0], "dave delete message") || !strings.Contains(lines[1], "carol unban noisy_bot") {
		t.Fatalf("log:\n%v", r)
	}

	// A room without moderation says so.
	_, off := start("")
	r = chatr("admin", "log", "--admin-url", off)
	if r.code != exitFailed || !strings.Contains(r.stderr, "Moderation is not enabled in this room (404)") {
		t.Fatalf("a room without moderation:\n%v", r)
	}
	// Something that is not the moderation API.
	other := httptest.NewServer(http.NotFoundHandler())
	defer other.Close()
	r = chatr("admin", "log", "--admin-url", other.URL)
	if r.code != exitFailed || !strings.Contains(r.stderr, "is it the moderation port?") {
		t.Fatalf("not the moderation API:\n%v", r)
	}
}
