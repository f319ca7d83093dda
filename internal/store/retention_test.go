package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chatr-ai/chatr/internal/store"
	"github.com/chatr-ai/chatr/internal/testenv"
)

// fill posts n messages and returns the store.
func fill(t *testing.T, n int) *store.Store {
	t.Helper()
	ctx := context.Background()
	s := testenv.Store(t)
	a, err := s.CreateAgent(ctx, "bot", "🤖", hash("k"))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i += 500 {
		var batch []store.NewMessage
		for j := i; j < min(n, i+500); j++ {
			batch = append(batch, store.NewMessage{Agent: a, Content: fmt.Sprintf("m%d", j+1)})
		}
		if _, err := s.InsertMessages(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// untilDone runs the retention in batches until a batch comes back short,
// as the verifier does, and returns the batches it took.
func untilDone(t *testing.T, s *store.Store, r store.Retention, batch int) (deleted int64, batches int) {
	t.Helper()
	var after int64
	for {
		n, last, err := s.DeleteOldMessages(context.Background(), r, after, batch)
		if err != nil {
			t.Fatal(err)
		}
		if last < after {
			t.Fatalf("the last deleted id went back from %d to %d", after, last)
		}
		after = last
		deleted += n
		batches++
		if n < int64(batch) {
			return deleted, batches
		}
	}
}

func keptRange(t *testing.T, s *store.Store) (oldest, newest, count int64) {
	t.Helper()
	if err := s.Pool().QueryRow(context.Background(), `SELECT COALESCE(min(id),0), COALESCE(max(id),0), count(*) FROM messages`).
		Scan(&oldest, &newest, &count); err != nil {
		t.Fatal(err)
	}
	return
}

// MaxMessages keeps exactly the newest N, in batches of at most the batch
// size; pages and resumes work from the new oldest id; the room's total
// still counts every message.
func TestRetentionMaxMessages(t *testing.T) {
	s := fill(t, 1234)
	deleted, batches := untilDone(t, s, store.Retention{MaxMessages: 200}, 100)
	if deleted != 1034 || batches != 11 {
		t.Fatalf("deleted %d in %d batches, want 1034 in 11", deleted, batches)
	}
	oldest, newest, count := keptRange(t, s)
	if oldest != 1035 || newest != 1234 || count != 200 {
		t.Fatalf("kept ids %d..%d (%d), want 1035..1234 (200)", oldest, newest, count)
	}
	ctx := context.Background()
	// A resume from before the oldest kept id replays from the oldest.
	after, err := s.MessagesAfter(ctx, 10, 1000)
	if err != nil || len(after) != 200 || after[0].ID != 1035 {
		t.Fatalf("messages after 10: %d (first %v) %v", len(after), after[0].ID, err)
	}
	// Paging back reaches the oldest kept message and stops.
	page, err := s.ListMessages(ctx, 100, 1036, 0)
	if err != nil || len(page) != 1 || page[0].ID != 1035 {
		t.Fatalf("the page before 1036: %v %v", page, err)
	}
	c, err := s.Counters(ctx)
	if err != nil || c.TotalMessages != 1234 {
		t.Fatalf("counters %+v %v, want every message ever posted (1234)", c, err)
	}
	// Nothing more to do: one short batch.
	if d, b := untilDone(t, s, store.Retention{MaxMessages: 200}, 100); d != 0 || b != 1 {
		t.Fatalf("a second pass deleted %d in %d batches", d, b)
	}
}

// MaxAge deletes what is older than the limit and nothing younger, and
// both rules together delete what either says.
func TestRetentionMaxAge(t *testing.T) {
	s := fill(t, 300)
	ctx := context.Background()
	if _, err := s.Pool().Exec(ctx, `UPDATE messages SET created_at = now() - interval '2 days' WHERE id <= 120`); err != nil {
		t.Fatal(err)
	}
	if d, _ := untilDone(t, s, store.Retention{MaxAge: 24 * time.Hour}, 50); d != 120 {
		t.Fatalf("deleted %d, want the 120 older than a day", d)
	}
	if oldest, _, count := keptRange(t, s); oldest != 121 || count != 180 {
		t.Fatalf("oldest %d, count %d", oldest, count)
	}
	if d, _ := untilDone(t, s, store.Retention{MaxAge: 24 * time.Hour, MaxMessages: 100}, 50); d != 80 {
		t.Fatalf("with a count limit too: deleted %d, want 80", d)
	}
	if d, _ := untilDone(t, s, store.Retention{}, 50); d != 0 {
		t.Fatalf("no rule deleted %d", d)
	}
}

// Finished verification jobs older than the limit go; live ones and young
// ones stay.
func TestRetentionFinishedJobs(t *testing.T) {
	ctx := context.Background()
	s := testenv.Store(t)
	var agents []string
	for i := 0; i < 3; i++ {
		a, err := s.CreateAgent(ctx, fmt.Sprintf("agent%d", i), "🤖", hash(fmt.Sprint("k", i)))
		if err != nil {
			t.Fatal(err)
		}
		agents = append(agents, a.ID)
	}
	for i, q := range []string{
		`INSERT INTO verification_jobs (agent_id, moltbook_name, code, state, outcome, finished_at) VALUES ($1, 'a', 'ABCDEFGH', 'done', 'not_found', now() - interval '10 days')`,
		`INSERT INTO verification_jobs (agent_id, moltbook_name, code, state, outcome, finished_at) VALUES ($1, 'b', 'ABCDEFGH', 'done', 'not_found', now() - interval '1 hour')`,
		`INSERT INTO verification_jobs (agent_id, moltbook_name, code) VALUES ($1, 'c', 'ABCDEFGH')`,
	} {
		if _, err := s.Pool().Exec(ctx, q, agents[i]); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	n, err := s.DeleteFinishedJobs(ctx, 7*24*time.Hour, 100)
	if err != nil || n != 1 {
		t.Fatalf("deleted %d (%v), want the one finished 10 days ago", n, err)
	}
	var left int
	if err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM verification_jobs`).Scan(&left); err != nil || left != 2 {
		t.Fatalf("%d jobs left (%v)", left, err)
	}
}
