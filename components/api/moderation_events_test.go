package api

import (
	"context"
	"strings"
	"testing"

	"github.com/chatr-ai/chatr/internal/roomevents"
	"github.com/chatr-ai/chatr/internal/testenv"
)

// Each moderation action is handed to the operator as a room event, which
// it records as an Event on the ChatRoom: who did what to whom, and why.
func TestModerationActionsBecomeRoomEvents(t *testing.T) {
	cfg := testConfig(t)
	cfg.ModerationToken = testModToken
	_, ts, mod := modServer(t, cfg)
	spam := register(t, ts, "spammer")
	r := post(t, ts, spam, "buy now")
	want(t, r, 200, "")
	id := r.body["message"].(map[string]any)["id"].(string)

	want(t, modCall(t, mod, "POST", "/admin/ban", `{"agent":"spammer","reason":"spam","expires":"24h"}`), 200, "")
	want(t, modCall(t, mod, "POST", "/admin/unban", `{"agent":"spammer","reason":"appeal"}`), 200, "")
	want(t, modCall(t, mod, "POST", "/admin/delete", `{"id":"`+id+`","reason":"spam"}`), 200, "")
	// A refused action is no event.
	want(t, modCall(t, mod, "POST", "/admin/ban", `{"agent":"ghost","reason":"x"}`), 404, `Agent "ghost" not found`)

	got, err := roomevents.Read(context.Background(), testenv.Redis(t), cfg.Common.Schema, 10)
	if err != nil {
		t.Fatal(err)
	}
	wantEvents := []struct{ reason, says string }{
		{"AgentBanned", `alice banned agent "spammer" until `},
		{"AgentUnbanned", `alice unbanned agent "spammer"`},
		{"MessageDeleted", "alice deleted message " + id + ": spam"},
	}
	if len(got) != len(wantEvents) {
		t.Fatalf("%d room events %+v, want %d", len(got), got, len(wantEvents))
	}
	for i, w := range wantEvents {
		if got[i].Reason != w.reason || got[i].Type != roomevents.Normal || !strings.Contains(got[i].Message, w.says) {
			t.Errorf("event %d: %+v, want %s saying %q", i, got[i].Event, w.reason, w.says)
		}
	}
}
