package store_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/chatr-ai/chatr/internal/store"
	"github.com/chatr-ai/chatr/internal/testenv"
)

func hash(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }

// Several processes starting together must apply each migration exactly once.
func TestMigrateConcurrently(t *testing.T) {
	schema := testenv.Schema(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := store.Open(ctx, store.Options{URL: testenv.DatabaseURL(), Schema: schema, Migrate: true})
			if err != nil {
				errs <- err
				return
			}
			s.Close()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	s := testenv.StoreFor(t, schema)
	var applied, rooms int
	if err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM goose_db_version WHERE version_id > 0`).Scan(&applied); err != nil {
		t.Fatal(err)
	}
	if err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM room`).Scan(&rooms); err != nil {
		t.Fatal(err)
	}
	entries, _ := fsCount()
	if applied != entries || rooms != 1 {
		t.Fatalf("applied %d migrations (want %d), %d room rows (want 1)", applied, entries, rooms)
	}
}

func fsCount() (int, error) {
	n := 0
	entries, err := readDir()
	for _, e := range entries {
		if !e.IsDir() {
			n++
		}
	}
	return n, err
}

func TestInvalidSchemaRejected(t *testing.T) {
	for _, s := range []string{"", "Upper", "a-b", "x; DROP TABLE y", "1abc"} {
		if _, err := store.Open(context.Background(), store.Options{URL: testenv.DatabaseURL(), Schema: s}); err == nil {
			t.Errorf("schema %q accepted", s)
		}
	}
}

func TestAgentsAndCounters(t *testing.T) {
	s := testenv.Store(t)
	ctx := context.Background()
	a, err := s.CreateAgent(ctx, "Alice", "🤖", hash("k1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateAgent(ctx, "alice", "🤖", hash("k2")); !errors.Is(err, store.ErrNameTaken) {
		t.Fatalf("case-insensitive duplicate: got %v, want ErrNameTaken", err)
	}
	got, stored, err := s.AgentByKeyHash(ctx, hash("k1"))
	if err != nil || got.ID != a.ID || string(stored) != string(hash("k1")) {
		t.Fatalf("AgentByKeyHash: %+v %v", got, err)
	}
	if _, _, err := s.AgentByKeyHash(ctx, hash("nope")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown key: %v", err)
	}
	c, err := s.Counters(ctx)
	if err != nil || c.TotalAgents != 1 || c.TotalMessages != 0 {
		t.Fatalf("counters %+v %v", c, err)
	}
}

// Concurrent writers get dense ids, strictly increasing in commit order.
func TestInsertMessagesIDsDenseAndOrdered(t *testing.T) {
	s := testenv.Store(t)
	ctx := context.Background()
	a, err := s.CreateAgent(ctx, "bot", "🤖", hash("k"))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[int64]bool{}
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				batch := []store.NewMessage{{Agent: a, Content: fmt.Sprintf("%d-%d-a", w, i)}, {Agent: a, Content: fmt.Sprintf("%d-%d-b", w, i)}}
				ms, err := s.InsertMessages(ctx, batch)
				if err != nil {
					t.Error(err)
					return
				}
				if len(ms) != 2 || ms[1].ID != ms[0].ID+1 || ms[0].Content != batch[0].Content {
					t.Errorf("batch came back as %+v", ms)
				}
				mu.Lock()
				for _, m := range ms {
					if seen[m.ID] {
						t.Errorf("duplicate id %d", m.ID)
					}
					seen[m.ID] = true
				}
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	for id := int64(1); id <= 160; id++ {
		if !seen[id] {
			t.Fatalf("id %d missing", id)
		}
	}
	all, err := s.ListMessages(ctx, 100, 0, 0)
	if err != nil || len(all) != 100 || all[0].ID != 61 || all[99].ID != 160 {
		t.Fatalf("latest 100: %d msgs, first %v", len(all), all[0].ID)
	}
	before, _ := s.ListMessages(ctx, 5, 10, 0)
	after, _ := s.ListMessages(ctx, 5, 0, 10)
	if len(before) != 5 || before[0].ID != 5 || before[4].ID != 9 || len(after) != 5 || after[0].ID != 11 {
		t.Fatalf("before/after windows wrong: %v %v", ids(before), ids(after))
	}
	c, _ := s.Counters(ctx)
	if c.TotalMessages != 160 || c.LastMessageID != 160 {
		t.Fatalf("counters %+v", c)
	}
}

func ids[T interface{ IDString() string }](ms []T) []string {
	out := []string{}
	for _, m := range ms {
		out = append(out, m.IDString())
	}
	return out
}
