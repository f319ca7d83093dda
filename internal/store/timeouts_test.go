package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/chatr-ai/chatr/internal/store"
	"github.com/chatr-ai/chatr/internal/testenv"
)

// The pool's sessions carry the statement timeout, so a statement the server
// cannot finish is cancelled by the server itself (57014); the default
// applies when none is given, and an explicit one in the URL wins.
func TestStatementTimeout(t *testing.T) {
	ctx := context.Background()
	schema := testenv.Schema(t)
	testenv.StoreFor(t, schema) // migrated
	show := func(s *store.Store) string {
		var v string
		if err := s.Pool().QueryRow(ctx, "SHOW statement_timeout").Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	open := func(url string, o store.Options) *store.Store {
		o.URL, o.Schema = url, schema
		s, err := store.Open(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s
	}
	if v := show(open(testenv.DatabaseURL(), store.Options{})); v != "10s" {
		t.Errorf("default statement_timeout %q, want 10s", v)
	}
	short := open(testenv.DatabaseURL(), store.Options{StatementTimeout: 200 * time.Millisecond})
	if v := show(short); v != "200ms" {
		t.Errorf("statement_timeout %q, want 200ms", v)
	}
	start := time.Now()
	_, err := short.Pool().Exec(ctx, "SELECT pg_sleep(30)")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "57014" {
		t.Fatalf("a 30 s statement under a 200 ms timeout: %v, want query_canceled", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("cancelled after %s", took)
	}
	if v := show(open(testenv.DatabaseURL()+"&statement_timeout=3000", store.Options{StatementTimeout: time.Second})); v != "3s" {
		t.Errorf("the URL's statement_timeout: %q, want 3s", v)
	}
	if v := show(open(testenv.DatabaseURL(), store.Options{StatementTimeout: -1})); v != "0" {
		t.Errorf("a negative timeout should leave none: %q", v)
	}
}
