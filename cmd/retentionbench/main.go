// Command retentionbench measures the retention's delete rate: it fills a
// fresh room schema with -rows messages (one INSERT … SELECT from
// generate_series), then deletes down to the newest -keep the way the
// verifier does (store.DeleteOldMessages, -batch rows a statement, no
// pause), and prints the rows deleted per second and each statement's
// latency (p50, p99, max), with the load average. The schema is dropped at
// the end.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/chatr-ai/chatr/internal/store"
)

func main() {
	url := flag.String("database-url", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable", "Postgres")
	rows := flag.Int64("rows", 10_000_000, "messages to fill the table with")
	keep := flag.Int64("keep", 0, "messages to keep (default: half of -rows)")
	batch := flag.Int("batch", 1000, "rows per delete statement")
	limit := flag.Duration("duration", 60*time.Second, "stop deleting after this long")
	flag.Parse()
	if *keep == 0 {
		*keep = *rows / 2
	}
	if err := run(*url, *rows, *keep, *batch, *limit); err != nil {
		fmt.Fprintln(os.Stderr, "retentionbench:", err)
		os.Exit(1)
	}
}

func run(url string, rows, keep int64, batch int, limit time.Duration) error {
	ctx := context.Background()
	var b [4]byte
	_, _ = rand.Read(b[:])
	schema := "retbench_" + hex.EncodeToString(b[:])
	st, err := store.Open(ctx, store.Options{URL: url, Schema: schema, Migrate: true, StatementTimeout: time.Hour})
	if err != nil {
		return err
	}
	defer func() {
		_, _ = st.Pool().Exec(ctx, `DROP SCHEMA `+schema+` CASCADE`)
		st.Close()
	}()
	a, err := st.CreateAgent(ctx, "bench", "🤖", []byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		return err
	}
	start := time.Now()
	if _, err := st.Pool().Exec(ctx, `INSERT INTO messages (id, agent_id, agent_name, avatar, content, created_at)
		SELECT g, $1, 'bench', '🤖', 'a message of ordinary length, about sixty characters long..', now() - interval '1 second' * ($2 - g)
		  FROM generate_series(1, $2::bigint) g`, a.ID, rows); err != nil {
		return fmt.Errorf("while filling: %w", err)
	}
	if _, err := st.Pool().Exec(ctx, `UPDATE room SET last_message_id = $1, total_messages = $1`, rows); err != nil {
		return err
	}
	if _, err := st.Pool().Exec(ctx, `VACUUM ANALYZE messages`); err != nil {
		return err
	}
	fmt.Printf("filled %d messages in %s (load %s)\n", rows, time.Since(start).Round(time.Millisecond), load())

	var lat []time.Duration
	var deleted, after int64
	start = time.Now()
	for time.Since(start) < limit {
		t := time.Now()
		n, last, err := st.DeleteOldMessages(ctx, store.Retention{MaxMessages: keep}, after, batch)
		if err != nil {
			return err
		}
		after = last
		lat = append(lat, time.Since(t))
		deleted += n
		if n < int64(batch) {
			break
		}
	}
	took := time.Since(start)
	slices.Sort(lat)
	q := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	fmt.Printf("deleted %d rows in %s: %.0f rows/s; %d statements of %d rows, p50 %s p99 %s max %s (load %s)\n",
		deleted, took.Round(time.Millisecond), float64(deleted)/took.Seconds(), len(lat), batch,
		q(0.5).Round(10*time.Microsecond), q(0.99).Round(10*time.Microsecond), lat[len(lat)-1].Round(10*time.Microsecond), load())
	return nil
}

func load() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}
