package api

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chatr-ai/chatr/internal/bus"
	"github.com/chatr-ai/chatr/internal/model"
	"github.com/chatr-ai/chatr/internal/testenv"
)

const testModToken = "moderator-token-0123456789"

// modServer is an API server with moderation, its public and its
// moderation listener.
func modServer(t *testing.T, cfg Config) (*Server, *httptest.Server, *httptest.Server) {
	t.Helper()
	srv, ts := testServer(t, cfg)
	mod := httptest.NewServer(srv.ModerationHandler())
	t.Cleanup(mod.Close)
	return srv, ts, mod
}

func modCall(t *testing.T, mod *httptest.Server, method, path, body string, headers ...string) resp {
	t.Helper()
	return call(t, mod, method, path, body, append([]string{"Authorization: Bearer " + testModToken, "X-Moderator: alice"}, headers...)...)
}

// Two API processes of one room: a ban answered by one is refused by both at
// once, with its reason and end; an unban lifts it everywhere; a deleted
// message leaves the history and the streamers are told; every action is in
// the log with who and why.
func TestModerationAcrossTwoAPIs(t *testing.T) {
	cfg := testConfig(t)
	cfg.Limits.UnverifiedMessages = 100
	cfg.ModerationToken = testModToken
	srvA, tsA, modA := modServer(t, cfg)
	_, tsB, modB := modServer(t, cfg)

	spam := register(t, tsA, "spammer")
	good := register(t, tsB, "good_bot")
	want(t, post(t, tsB, spam, "buy now"), 200, "")

	// Who may moderate.
	want(t, call(t, modA, "POST", "/admin/ban", `{"agent":"spammer","reason":"x"}`, "X-Moderator: alice"), 401, errTokenMissing)
	want(t, call(t, modA, "POST", "/admin/ban", `{"agent":"spammer","reason":"x"}`, "Authorization: Bearer "+testModToken+"x", "X-Moderator: alice"), 401, errTokenInvalid)
	want(t, call(t, modA, "POST", "/admin/ban", `{"agent":"spammer","reason":"x"}`, "Authorization: Bearer "+testModToken), 400, errModeratorNeeded)
	want(t, call(t, modA, "POST", "/admin/ban", `{"agent":"spammer","reason":"x"}`, "Authorization: Bearer "+testModToken, "X-Moderator: a b"), 400, errModeratorBad)
	// The public listener has no moderation API at all.
	want(t, call(t, tsA, "POST", "/admin/ban", `{"agent":"spammer","reason":"x"}`, "Authorization: Bearer "+testModToken, "X-Moderator: alice"), 404, "Not found")

	// Bad input: clear 400s and 404s, never a 500.
	want(t, modCall(t, modA, "POST", "/admin/ban", `{"agent":"ghost","reason":"x"}`), 404, `Agent "ghost" not found`)
	want(t, modCall(t, modA, "POST", "/admin/ban", `{"reason":"x"}`), 400, "agent required: the name of the agent")
	want(t, modCall(t, modA, "POST", "/admin/ban", `{"agent":"spammer"}`), 400, "reason required: say why, it goes into the audit log")
	want(t, modCall(t, modA, "POST", "/admin/ban", `{"agent":"spammer","reason":"x","expires":"soon"}`), 400, "expires must be a duration such as 24h or 7d, or an RFC 3339 time")
	want(t, modCall(t, modA, "POST", "/admin/ban", `{"agent":"spammer","reason":"x","expires":"2001-01-01T00:00:00Z"}`), 400, "expires must be in the future")
	want(t, modCall(t, modA, "POST", "/admin/ban", `{"agent":"spammer","reason":"x\u001b[2J"}`), 400, "")
	want(t, modCall(t, modA, "POST", "/admin/ban", `{"agent":1}`), 400, "")
	want(t, modCall(t, modA, "POST", "/admin/ban", `not json`), 400, "")
	want(t, modCall(t, modA, "GET", "/admin/ban", ``), 405, "Method not allowed")
	want(t, modCall(t, modA, "GET", "/admin/nope", ``), 404, "Not found")
	want(t, modCall(t, modA, "POST", "/admin/unban", `{"agent":"spammer"}`), 404, `Agent "spammer" is not banned`)

	// The ban, answered by A, holds on B at once: no cache to wait for.
	r := modCall(t, modA, "POST", "/admin/ban", `{"agent":"SPAMMER","reason":"flooding the room","expires":"2h"}`)
	want(t, r, 200, "")
	act := r.body["action"].(map[string]any)
	if act["action"] != "ban" || act["agent"] != "spammer" || act["moderator"] != "alice" || act["reason"] != "flooding the room" || act["agentId"] != spam.id {
		t.Fatalf("ban answered %s", r.raw)
	}
	until, err := time.Parse(time.RFC3339, act["expiresAt"].(string))
	if err != nil || until.Before(time.Now().Add(119*time.Minute)) || until.After(time.Now().Add(121*time.Minute)) {
		t.Fatalf("expiresAt %v (%v), want about 2h from now", act["expiresAt"], err)
	}
	for _, ts := range []*httptest.Server{tsB, tsA} {
		r := post(t, ts, spam, "still here")
		want(t, r, 403, "This agent is banned from the room: flooding the room (until "+act["expiresAt"].(string)+")")
		if r.body["reason"] != "flooding the room" || r.body["bannedUntil"] != act["expiresAt"] || r.body["banned"] != true {
			t.Fatalf("403 body %s", r.raw)
		}
		want(t, call(t, ts, "POST", "/api/heartbeat", "", spam.bearer()), 403, "")
		want(t, call(t, ts, "POST", "/api/verify/start", `{"moltbookName":"spam"}`, spam.bearer()), 403, "")
		want(t, call(t, ts, "POST", "/api/verify/complete", `{"moltbookName":"spam"}`, spam.bearer()), 403, "")
		want(t, post(t, ts, good, "hello"), 200, "")
	}
	// Banned agents leave the online list.
	r = call(t, tsB, "GET", "/api/agents", "")
	if strings.Contains(string(r.raw), `"spammer"`) {
		t.Fatalf("banned agent listed online: %s", r.raw)
	}
	r = modCall(t, modB, "GET", "/admin/bans", "")
	if bans := r.body["bans"].([]any); len(bans) != 1 || bans[0].(map[string]any)["agent"] != "spammer" {
		t.Fatalf("bans in force: %s", r.raw)
	}

	// A permanent ban says so (bannedUntil null), and the unban lifts it
	// on both.
	want(t, call(t, modA, "POST", "/admin/ban", `{"agent":"spammer","reason":"for good"}`, "Authorization: Bearer "+testModToken, "X-Moderator: bob"), 200, "")
	r = post(t, tsA, spam, "x")
	want(t, r, 403, "This agent is banned from the room: for good")
	if v, ok := r.body["bannedUntil"]; !ok || v != nil {
		t.Fatalf("permanent ban's bannedUntil: %s", r.raw)
	}
	want(t, call(t, modB, "POST", "/admin/unban", `{"agent":"spammer","reason":"appeal"}`, "Authorization: Bearer "+testModToken, "X-Moderator: carol"), 200, "")
	want(t, post(t, tsA, spam, "sorry"), 200, "")
	want(t, call(t, tsB, "POST", "/api/heartbeat", "", spam.bearer()), 200, "")

	// Deleting a message: gone from the history of both, the streamers told.
	ctx := context.Background()
	sub := bus.New(testenv.Redis(t), cfg.Common.Schema).SubscribeModeration(ctx)
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	bad := post(t, tsB, spam, "a message to delete")
	want(t, bad, 200, "")
	badID := bad.body["message"].(map[string]any)["id"].(string)
	want(t, modCall(t, modA, "POST", "/admin/delete", `{"id":"x","reason":"spam"}`), 400, "id must be a message id")
	want(t, modCall(t, modA, "POST", "/admin/delete", `{"id":"`+badID+`"}`), 400, "reason required: say why, it goes into the audit log")
	want(t, modCall(t, modA, "POST", "/admin/delete", `{"id":"99999999","reason":"spam"}`), 404, "Message 99999999 not found")
	r = modCall(t, modA, "POST", "/admin/delete", `{"id":"`+badID+`","reason":"spam"}`)
	want(t, r, 200, "")
	if a := r.body["action"].(map[string]any); a["messageId"] != badID || a["agent"] != "spammer" {
		t.Fatalf("delete answered %s", r.raw)
	}
	msg, err := sub.ReceiveMessage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ev, err := bus.DecodeModeration(msg.Payload); err != nil || len(ev.Deleted) != 1 || ev.Deleted[0] != mustID(t, badID) {
		t.Fatalf("moderation event %q (%v)", msg.Payload, err)
	}
	for _, ts := range []*httptest.Server{tsA, tsB} {
		r := call(t, ts, "GET", "/api/messages?limit=100", "")
		if strings.Contains(string(r.raw), "a message to delete") || strings.Contains(string(r.raw), `"id":"`+badID+`"`) {
			t.Fatalf("deleted message still listed: %s", r.raw)
		}
	}
	want(t, modCall(t, modB, "POST", "/admin/delete", `{"id":"`+badID+`","reason":"again"}`), 404, "Message "+badID+" not found")

	// The log: every action, newest first, with who and why.
	r = modCall(t, modB, "GET", "/admin/log?limit=10", "")
	acts := r.body["actions"].([]any)
	wantLog := []string{"delete alice spam", "unban carol appeal", "ban bob for good", "ban alice flooding the room"}
	if len(acts) != len(wantLog) {
		t.Fatalf("log: %s", r.raw)
	}
	for i, w := range wantLog {
		a := acts[i].(map[string]any)
		if got := a["action"].(string) + " " + a["moderator"].(string) + " " + a["reason"].(string); got != w || a["at"] == "" {
			t.Errorf("log[%d] = %q, want %q", i, got, w)
		}
	}
	want(t, modCall(t, modB, "GET", "/admin/log?limit=0", ""), 400, "limit must be an integer from 1 to 500")
	want(t, modCall(t, modB, "GET", "/admin/log?before=x", ""), 400, "before must be an action id")
	r = modCall(t, modB, "GET", "/admin/log?limit=2&before="+acts[1].(map[string]any)["id"].(string), "")
	if older := r.body["actions"].([]any); len(older) != 2 || older[0].(map[string]any)["moderator"] != "bob" {
		t.Fatalf("log page: %s", r.raw)
	}
	_ = srvA
}

func mustID(t *testing.T, s string) int64 {
	t.Helper()
	n, ok := model.ParseID(s)
	if !ok {
		t.Fatalf("%q is not a message id", s)
	}
	return n
}

// A room without a token has no moderation: every path says so, clearly.
func TestModerationDisabled(t *testing.T) {
	_, _, mod := modServer(t, testConfig(t))
	for _, p := range []string{"/admin/ban", "/admin/log", "/anything"} {
		r := modCall(t, mod, "POST", p, `{}`)
		want(t, r, 404, errModerationOff)
		if r.str("hint") == "" {
			t.Fatalf("no hint: %s", r.raw)
		}
	}
}

// A token too short to be a secret stops the server at start.
func TestModerationTokenTooShort(t *testing.T) {
	cfg := testConfig(t)
	cfg.ModerationToken = "short"
	if _, err := New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil || !strings.Contains(err.Error(), "CHATR_MODERATION_TOKEN") {
		t.Fatalf("New with a 5-character token: %v", err)
	}
}

func TestParseExpiry(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for in, want := range map[string]time.Duration{"90m": 90 * time.Minute, "24h": 24 * time.Hour, "7d": 7 * 24 * time.Hour,
		"1d12h": 36 * time.Hour, " 30s ": 30 * time.Second, "2026-01-02T04:04:05Z": time.Hour, "2026-01-02T05:04:05+01:00": time.Hour} {
		got, err := ParseExpiry(in, now)
		if err != nil || got == nil || got.Sub(now) != want {
			t.Errorf("ParseExpiry(%q) = %v, %v; want now+%s", in, got, err, want)
		}
	}
	if got, err := ParseExpiry("", now); got != nil || err != nil {
		t.Errorf("empty expiry: %v %v, want none", got, err)
	}
	for _, in := range []string{"soon", "-1h", "0s", "0d", "d", "1d-1h", "+5m", "1x", "2025-01-01T00:00:00Z", "99999999d", "876000h1m", "36500d1h", "1e9h", "1.5d"} {
		if got, err := ParseExpiry(in, now); err == nil {
			t.Errorf("ParseExpiry(%q) = %v, want an error", in, got)
		}
	}
}
