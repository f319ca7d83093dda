package verifier

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/chatr-ai/chatr/internal/config"
	"github.com/chatr-ai/chatr/internal/roomevents"
	"github.com/chatr-ai/chatr/internal/store"
	"github.com/chatr-ai/chatr/internal/testenv"
)

// The backoff doubles per attempt up to the cap, with half of it random.
func TestBackoff(t *testing.T) {
	v := &Verifier{cfg: Config{BackoffBase: time.Second, BackoffMax: 10 * time.Second}}
	for attempt, full := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 8 * time.Second, 5: 10 * time.Second, 60: 10 * time.Second} {
		lo, hi := full, time.Duration(0)
		for i := 0; i < 200; i++ {
			d := v.backoff(attempt)
			lo, hi = min(lo, d), max(hi, d)
		}
		if lo < full/2 || hi > full || hi-lo < full/10 {
			t.Errorf("attempt %d: backoff in [%s, %s], want within [%s, %s] and spread out", attempt, lo, hi, full/2, full)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	good := Config{MoltbookRPM: 100, MoltbookTimeout: 10 * time.Second, MaxAttempts: 8, PostAttempts: 3, Lease: time.Minute,
		PollInterval: 5 * time.Second, Concurrency: 4, BackoffBase: 2 * time.Second, BackoffMax: 5 * time.Minute}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(*Config){
		"rpm":          func(c *Config) { c.MoltbookRPM = 0 },
		"lease":        func(c *Config) { c.Lease = c.MoltbookTimeout },
		"attempts":     func(c *Config) { c.MaxAttempts = 0 },
		"postattempts": func(c *Config) { c.PostAttempts = 0 },
		"concurrency":  func(c *Config) { c.Concurrency = 0 },
		"backoff":      func(c *Config) { c.BackoffMax = time.Second },
		"poll":         func(c *Config) { c.PollInterval = 0 },
	} {
		c := good
		mutate(&c)
		if c.Validate() == nil {
			t.Errorf("%s: invalid configuration accepted", name)
		}
	}
}

// The verifier's Postgres sessions get the configured statement timeout, as
// the API's and the streamers' do, so a frozen Postgres cannot hold a
// worker's query (and its lease) for ever.
func TestVerifierPostgresTimeouts(t *testing.T) {
	cfg := Config{MoltbookRPM: 100, MoltbookTimeout: 10 * time.Second, MaxAttempts: 8, PostAttempts: 3, Lease: time.Minute,
		PollInterval: 5 * time.Second, Concurrency: 4, BackoffBase: 2 * time.Second, BackoffMax: 5 * time.Minute,
		MoltbookURL: "http://127.0.0.1:1"}
	cfg.Common = config.Common{DatabaseURL: testenv.DatabaseURL(), Schema: testenv.Schema(t), Migrate: true,
		DBStatementTimeout: 1234 * time.Millisecond, DBConnectTimeout: 3 * time.Second}
	v, err := New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	var got string
	if err := v.st.Pool().QueryRow(context.Background(), "SHOW statement_timeout").Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != "1234ms" {
		t.Errorf("statement_timeout %q, want 1234ms", got)
	}
	if ct := v.st.Pool().Config().ConnConfig.ConnectTimeout; ct != 3*time.Second {
		t.Errorf("connect timeout %s, want 3s", ct)
	}
}

// The verifier applies the room's retention while it runs: a room capped at
// 100 messages is brought down to its newest 100, in batches, and the
// deletes are counted; bad retention settings stop it at start.
func TestVerifierAppliesRetention(t *testing.T) {
	ctx := context.Background()
	schema := testenv.Schema(t)
	st := testenv.StoreFor(t, schema)
	a, err := st.CreateAgent(ctx, "talker", "🤖", []byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	var batch []store.NewMessage
	for i := 0; i < 350; i++ {
		batch = append(batch, store.NewMessage{Agent: a, Content: "m"})
	}
	if _, err := st.InsertMessages(ctx, batch); err != nil {
		t.Fatal(err)
	}
	cfg := Config{MoltbookRPM: 100, MoltbookTimeout: 10 * time.Second, MaxAttempts: 8, PostAttempts: 3, Lease: time.Minute,
		PollInterval: time.Second, Concurrency: 1, BackoffBase: time.Second, BackoffMax: time.Minute,
		MoltbookURL: "http://127.0.0.1:1", RetentionMaxMessages: 100, RetentionInterval: 50 * time.Millisecond, RetentionBatch: 40}
	cfg.Common = config.Common{DatabaseURL: testenv.DatabaseURL(), Schema: schema, Migrate: true, RedisURL: testenv.RedisURL()}
	v, err := New(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	rdb := testenv.Redis(t)
	t.Cleanup(func() { rdb.Del(context.Background(), roomevents.Key(schema)) })
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = v.Run(rctx) }()
	defer func() { cancel(); <-done }()
	testenv.Eventually(t, 20*time.Second, "the room holds its newest 100 messages", func() error {
		var oldest, count int64
		if err := st.Pool().QueryRow(ctx, `SELECT min(id), count(*) FROM messages`).Scan(&oldest, &count); err != nil {
			return err
		}
		if count != 100 || oldest != 251 {
			return fmt.Errorf("%d messages from id %d", count, oldest)
		}
		return nil
	})
	if got := testutil.ToFloat64(v.ret.deleted.WithLabelValues("messages")); got != 250 {
		t.Errorf("chatr_retention_deleted_total{table=messages} = %v, want 250", got)
	}
	// The pass's summary waits in the room's Redis for the operator, which
	// emits it as an Event on the ChatRoom; passes with nothing due add none.
	testenv.Eventually(t, 20*time.Second, "the retention pass's summary published", func() error {
		got, err := roomevents.Read(ctx, rdb, schema, 10)
		if err != nil {
			return err
		}
		if len(got) != 1 {
			return fmt.Errorf("%d summaries: %+v", len(got), got)
		}
		e := got[0]
		if e.Type != roomevents.Normal || e.Reason != "RetentionRun" || e.Source != "verifier/"+v.ID() ||
			!strings.HasPrefix(e.Message, "retention deleted 250 messages and 0 finished verification jobs in ") ||
			!strings.HasSuffix(e.Message, "(keeps the newest 100 messages)") {
			return testenv.StopTrying(fmt.Errorf("summary %+v", e))
		}
		return nil
	})

	for name, mutate := range map[string]func(*Config){
		"negative age":      func(c *Config) { c.RetentionMaxAge = -time.Hour },
		"below the history": func(c *Config) { c.RetentionMaxMessages = 50 },
		"negative jobs":     func(c *Config) { c.RetentionJobs = -time.Second },
	} {
		c := cfg
		mutate(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "retention-") {
			t.Errorf("%s: Validate() = %v, want a retention error", name, err)
		}
	}
}
