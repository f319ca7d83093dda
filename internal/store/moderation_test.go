package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/chatr-ai/chatr/internal/store"
	"github.com/chatr-ai/chatr/internal/testenv"
)

// A ban is read with the agent's row at authentication, ends at its expiry,
// and every action lands in the log with who, what, when and why.
func TestBansAndTheLog(t *testing.T) {
	s := testenv.Store(t)
	ctx := context.Background()
	a, err := s.CreateAgent(ctx, "Spammer", "🤖", hash("k1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.BanAgent(ctx, "nobody", "mod", "x", nil); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("ban of an unknown agent: %v, want ErrNotFound", err)
	}
	if _, err := s.UnbanAgent(ctx, "spammer", "mod", ""); !errors.Is(err, store.ErrNotBanned) {
		t.Fatalf("unban of an agent never banned: %v, want ErrNotBanned", err)
	}
	// By name regardless of case, like registration.
	act, err := s.BanAgent(ctx, "SPAMMER", "alice", "flooding", nil)
	if err != nil {
		t.Fatal(err)
	}
	if act.Action != store.ActionBan || act.AgentID != a.ID || act.AgentName != "Spammer" || act.Moderator != "alice" || act.Reason != "flooding" || act.ExpiresAt != nil {
		t.Fatalf("ban action %+v", act)
	}
	got, _, err := s.AgentByKeyHash(ctx, hash("k1"))
	if err != nil || got.Ban == nil || got.Ban.Reason != "flooding" || got.Ban.ExpiresAt != nil || got.Ban.Moderator != "alice" {
		t.Fatalf("authenticated agent's ban: %+v %v", got.Ban, err)
	}
	// A second ban replaces the first: now with an end already past, so it
	// no longer bans.
	past := time.Now().Add(-time.Minute)
	if _, err := s.BanAgent(ctx, "spammer", "bob", "shorter", &past); err != nil {
		t.Fatal(err)
	}
	got, _, err = s.AgentByKeyHash(ctx, hash("k1"))
	if err != nil || got.Ban != nil {
		t.Fatalf("an expired ban still bans: %+v %v", got.Ban, err)
	}
	if _, err := s.UnbanAgent(ctx, "spammer", "bob", ""); !errors.Is(err, store.ErrNotBanned) {
		t.Fatalf("unban of an expired ban: %v, want ErrNotBanned", err)
	}
	future := time.Now().Add(time.Hour)
	if _, err := s.BanAgent(ctx, "spammer", "bob", "again", &future); err != nil {
		t.Fatal(err)
	}
	bans, err := s.Bans(ctx)
	if err != nil || len(bans) != 1 || bans[0].AgentName != "Spammer" || bans[0].ExpiresAt == nil || !bans[0].ExpiresAt.Equal(future.Truncate(time.Microsecond)) {
		t.Fatalf("bans in force: %+v %v", bans, err)
	}
	if _, err := s.UnbanAgent(ctx, "spammer", "carol", "appeal granted"); err != nil {
		t.Fatal(err)
	}
	got, _, _ = s.AgentByKeyHash(ctx, hash("k1"))
	if got.Ban != nil {
		t.Fatalf("unbanned agent still banned: %+v", got.Ban)
	}
	log, err := s.ModerationLog(ctx, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ action, mod, reason string }{{"unban", "carol", "appeal granted"}, {"ban", "bob", "again"}, {"ban", "bob", "shorter"}, {"ban", "alice", "flooding"}}
	if len(log) != len(want) {
		t.Fatalf("log has %d actions, want %d: %+v", len(log), len(want), log)
	}
	for i, w := range want {
		if log[i].Action != w.action || log[i].Moderator != w.mod || log[i].Reason != w.reason || log[i].AgentName != "Spammer" || log[i].At.IsZero() {
			t.Errorf("log[%d] = %+v, want %+v", i, log[i], w)
		}
		if i > 0 && log[i].ID >= log[i-1].ID {
			t.Errorf("log not newest first: %d after %d", log[i].ID, log[i-1].ID)
		}
	}
	older, err := s.ModerationLog(ctx, 2, log[1].ID)
	if err != nil || len(older) != 2 || older[0].ID != log[2].ID {
		t.Fatalf("log page before %d: %+v %v", log[1].ID, older, err)
	}
}

// A deleted message is gone from every read; its id is not reused, the
// totals still count it, and DeletedAfter reports it to a streamer.
func TestDeleteMessage(t *testing.T) {
	s := testenv.Store(t)
	ctx := context.Background()
	a, err := s.CreateAgent(ctx, "bot", "🤖", hash("k"))
	if err != nil {
		t.Fatal(err)
	}
	ms, err := s.InsertMessages(ctx, []store.NewMessage{{Agent: a, Content: "one"}, {Agent: a, Content: "two"}, {Agent: a, Content: "three"}})
	if err != nil {
		t.Fatal(err)
	}
	start, err := s.LastModerationID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	act, err := s.DeleteMessage(ctx, ms[1].ID, "mod", "spam")
	if err != nil {
		t.Fatal(err)
	}
	if act.Action != store.ActionDelete || act.MessageID != ms[1].ID || act.AgentName != "bot" || act.AgentID != a.ID {
		t.Fatalf("delete action %+v", act)
	}
	if _, err := s.DeleteMessage(ctx, ms[1].ID, "mod", "again"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second delete: %v, want ErrNotFound", err)
	}
	if _, err := s.DeleteMessage(ctx, 999999, "mod", "x"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete of an unknown id: %v, want ErrNotFound", err)
	}
	list, err := s.ListMessages(ctx, 10, 0, 0)
	if err != nil || len(list) != 2 || list[0].ID != ms[0].ID || list[1].ID != ms[2].ID {
		t.Fatalf("history after the delete: %+v %v", list, err)
	}
	after, err := s.MessagesAfter(ctx, ms[0].ID, 10)
	if err != nil || len(after) != 1 || after[0].ID != ms[2].ID {
		t.Fatalf("messages after %d: %+v %v", ms[0].ID, after, err)
	}
	next, err := s.InsertMessages(ctx, []store.NewMessage{{Agent: a, Content: "four"}})
	if err != nil || next[0].ID != ms[2].ID+1 {
		t.Fatalf("the next id is %v (%v), want %d: ids are never reused", next, err, ms[2].ID+1)
	}
	c, err := s.Counters(ctx)
	if err != nil || c.TotalMessages != 4 {
		t.Fatalf("counters %+v %v: totalMessages counts every message posted", c, err)
	}
	ids, last, err := s.DeletedAfter(ctx, start)
	if err != nil || len(ids) != 1 || ids[0] != ms[1].ID || last != act.ID {
		t.Fatalf("DeletedAfter(%d) = %v, %d, %v; want [%d], %d", start, ids, last, err, ms[1].ID, act.ID)
	}
	ids, last2, err := s.DeletedAfter(ctx, last)
	if err != nil || len(ids) != 0 || last2 != last {
		t.Fatalf("DeletedAfter(%d) = %v, %d, %v; want nothing new", last, ids, last2, err)
	}
}
