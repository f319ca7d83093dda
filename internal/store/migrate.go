package store

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"hash/fnv"
	"io/fs"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations returns the embedded migration files (for tools and tests).
func Migrations() fs.FS {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		panic(err)
	}
	return sub
}

// Migrate creates the room's schema if needed and applies the pending embedded
// migrations. A Postgres session advisory lock (one per schema) makes this
// safe when many processes start together: one migrates, the others wait and
// then find nothing to do, so each migration is applied exactly once.
func (s *Store) Migrate(ctx context.Context) error {
	// CREATE SCHEMA IF NOT EXISTS is not safe against itself: serialise it.
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockID("chatr-schema:"+s.schema)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+s.schema)
		return err
	})
	if err != nil {
		return fmt.Errorf("while creating schema %s: %w", s.schema, err)
	}
	db := stdlib.OpenDBFromPool(s.pool)
	defer db.Close()
	return migrate(ctx, db, s.schema)
}

func migrate(ctx context.Context, db *sql.DB, schema string) error {
	locker, err := lock.NewPostgresSessionLocker(
		lock.WithLockID(lockID("chatr-migrate:"+schema)),
		// Wait up to ~5 minutes for another process's migration.
		lock.WithLockTimeout(1, 300),
	)
	if err != nil {
		return fmt.Errorf("while creating the migration lock: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, Migrations(),
		goose.WithSessionLocker(locker),
		goose.WithTableName(schema+".goose_db_version"),
		goose.WithDisableGlobalRegistry(true),
	)
	if err != nil {
		return fmt.Errorf("while preparing migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("while migrating schema %s: %w", schema, err)
	}
	return nil
}

// lockID derives a Postgres advisory lock key from a name.
func lockID(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return int64(h.Sum64() >> 1)
}

// SchemaVersion returns the newest applied migration version (0: none).
func (s *Store) SchemaVersion(ctx context.Context) (int64, error) {
	var v int64
	err := s.pool.QueryRow(ctx, "SELECT coalesce(max(version_id), 0) FROM goose_db_version WHERE is_applied").Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("while reading the schema version: %w", err)
	}
	return v, nil
}
