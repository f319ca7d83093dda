package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/chatr-ai/chatr/internal/store"
	"github.com/chatr-ai/chatr/internal/testenv"
)

// Two API processes (two pools) inserting batches that carry the same keys
// at the same time store each key's post once: the batch that comes second
// waits for the room's row lock, then finds the key and replays its message.
// Ids stay dense, and a post without a key in a replaying batch is stored.
func TestInsertPostsSameKeyAcrossProcesses(t *testing.T) {
	schema := testenv.Schema(t)
	s1 := testenv.StoreFor(t, schema)
	s2 := testenv.StoreFor(t, schema)
	ctx := context.Background()
	a, err := s1.CreateAgent(ctx, "keyed", "🤖", hash("keyed"))
	if err != nil {
		t.Fatal(err)
	}
	const rounds = 20
	var wg sync.WaitGroup
	results := make([][]store.Posted, 2*rounds)
	for i := 0; i < rounds; i++ {
		for j, s := range []*store.Store{s1, s2} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				batch := []store.NewMessage{
					{Agent: a, Content: fmt.Sprintf("keyed %d", i), Key: fmt.Sprintf("k%d", i)},
					{Agent: a, Content: fmt.Sprintf("keyed %d again", i), Key: fmt.Sprintf("k%d", i)}, // same key, same batch
					{Agent: a, Content: fmt.Sprintf("unkeyed %d/%d", i, j)},
				}
				p, err := s.InsertPosts(ctx, batch)
				if err != nil {
					t.Error(err)
					return
				}
				results[2*i+j] = p
			}()
		}
	}
	wg.Wait()
	for i := 0; i < rounds; i++ {
		a, b := results[2*i], results[2*i+1]
		if a == nil || b == nil {
			t.Fatal("a batch failed")
		}
		ids := map[int64]bool{a[0].Message.ID: true, a[1].Message.ID: true, b[0].Message.ID: true, b[1].Message.ID: true}
		if len(ids) != 1 {
			t.Errorf("key k%d answered messages %v, want one", i, ids)
		}
		if replays := btoi(a[0].Replayed) + btoi(b[0].Replayed); replays != 1 || !a[1].Replayed || !b[1].Replayed {
			t.Errorf("key k%d: replayed flags %v %v / %v %v", i, a[0].Replayed, a[1].Replayed, b[0].Replayed, b[1].Replayed)
		}
	}
	all, err := s1.MessagesAfter(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3*rounds { // one keyed and two unkeyed per round
		t.Fatalf("%d messages stored, want %d", len(all), 3*rounds)
	}
	for i, m := range all {
		if m.ID != int64(i+1) {
			t.Fatalf("ids not dense: message %d has id %d", i, m.ID)
		}
	}
	if m, ok, err := s2.PostByKey(ctx, a.ID, "k3"); err != nil || !ok || m.Content != "keyed 3" {
		t.Errorf("PostByKey k3: %+v %v %v", m, ok, err)
	}
	if _, ok, err := s2.PostByKey(ctx, a.ID, "never"); err != nil || ok {
		t.Errorf("PostByKey of an unknown key: %v %v", ok, err)
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
