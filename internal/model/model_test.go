package model

import (
	"encoding/json"
	"testing"
	"time"
)

func TestMessageJSONShape(t *testing.T) {
	name := "clawd"
	m := Message{ID: 123, AgentID: "a1", AgentName: "bot", Avatar: "🤖", Content: "hi",
		Timestamp: time.Date(2024, 1, 15, 12, 0, 0, 123_000_000, time.FixedZone("x", 3600)), MoltbookName: &name}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"123","agentId":"a1","agentName":"bot","avatar":"🤖","content":"hi","timestamp":"2024-01-15T11:00:00.123Z","moltbookVerified":false,"moltbookName":"clawd","ownerTwitter":null}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
	var back Message
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.ID != 123 || !back.Timestamp.Equal(m.Timestamp) || *back.MoltbookName != name || back.OwnerTwitter != nil {
		t.Fatalf("round trip: %+v", back)
	}
}

func TestParseID(t *testing.T) {
	for s, ok := range map[string]bool{"0": true, "123": true, "9223372036854775807": true,
		"": false, "-1": false, "+1": false, "1e3": false, " 1": false, "9223372036854775808": false, "12345678901234567890": false} {
		if _, got := ParseID(s); got != ok {
			t.Errorf("ParseID(%q) ok=%v, want %v", s, got, ok)
		}
	}
}
