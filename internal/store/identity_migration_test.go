package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/chatr-ai/chatr/internal/store"
	"github.com/chatr-ai/chatr/internal/testenv"
)

// Migration 00003 (one Moltbook account, one verified agent) on a room that
// already has agents sharing an account: the one verified first keeps the
// badge, the later ones lose it, agents with accounts of their own are
// untouched, and from then on the schema refuses a second verified agent.
func TestMigrationKeepsTheFirstVerifiedAgentPerAccount(t *testing.T) {
	ctx := context.Background()
	schema := testenv.Schema(t)
	cfg, err := pgx.ParseConfig(testenv.DatabaseURL())
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["search_path"] = schema
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	if _, err := db.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, store.Migrations(),
		goose.WithTableName(schema+".goose_db_version"), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 2); err != nil {
		t.Fatal(err)
	}
	// Before the rule: three agents verified with "shared", one with its own.
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	agents := []struct {
		id, name, account string
		verifiedAt        time.Time
	}{
		{"00000000-0000-0000-0000-000000000002", "second", "shared", base.Add(2 * time.Hour)},
		{"00000000-0000-0000-0000-000000000001", "first", "shared", base.Add(time.Hour)},
		{"00000000-0000-0000-0000-000000000003", "third", "shared", base.Add(3 * time.Hour)},
		{"00000000-0000-0000-0000-000000000004", "loner", "own", base},
	}
	for _, a := range agents {
		if _, err := db.ExecContext(ctx, `INSERT INTO agents (id, name, avatar, api_key_hash, moltbook_verified, moltbook_name, verified_at)
VALUES ($1, $2, 'x', $3, true, $4, $5)`, a.id, a.name, hash(a.name), a.account, a.verifiedAt); err != nil {
			t.Fatal(err)
		}
	}

	st, err := store.Open(ctx, store.Options{URL: testenv.DatabaseURL(), Schema: schema, Migrate: true})
	if err != nil {
		t.Fatalf("migrating a room with shared accounts: %v", err)
	}
	defer st.Close()
	for _, a := range agents {
		got, err := st.AgentByID(ctx, a.id)
		if err != nil {
			t.Fatal(err)
		}
		if want := a.name == "first" || a.name == "loner"; got.MoltbookVerified != want {
			t.Errorf("%s verified %v after the migration, want %v", a.name, got.MoltbookVerified, want)
		}
	}
	if _, err := st.Pool().Exec(ctx, `UPDATE agents SET moltbook_verified = true WHERE name = 'second'`); err == nil {
		t.Error("after the migration a second agent could be verified with the same account")
	}
}
