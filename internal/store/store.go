// Package store is the room's Postgres data layer: the connection pool, the
// embedded schema migrations and the queries every component shares. Postgres
// is the source of truth for agents, messages and (later) verification jobs.
package store

import (
	"context"
	"errors"
	"fmt"
	"regexp"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Errors callers branch on.
var (
	ErrNotFound  = errors.New("not found")
	ErrNameTaken = errors.New("name already taken")
)

// Options say where the room's data lives.
type Options struct {
	// URL is the Postgres connection URL.
	URL string
	// Schema holds the room's tables; many rooms can share one server.
	Schema string
	// Migrate applies pending migrations (exactly once across processes) on Open.
	Migrate bool
	// MaxConns caps the pool (0: pgx's default, max(4, cores)).
	MaxConns int32
}

// Store is a room's Postgres handle. It is safe for concurrent use.
type Store struct {
	pool   *pgxpool.Pool
	schema string
	url    string
}

var schemaRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// ValidSchema reports whether s can name a room's schema: a lower-case
// Postgres identifier that needs no quoting.
func ValidSchema(s string) bool { return schemaRE.MatchString(s) }

// Open connects to Postgres, makes sure the room's schema exists and, when
// asked, migrates it. Every connection of the pool uses the room's schema.
func Open(ctx context.Context, o Options) (*Store, error) {
	if !ValidSchema(o.Schema) {
		return nil, fmt.Errorf("invalid schema name %q: want a lower-case identifier of at most 63 characters", o.Schema)
	}
	cfg, err := pgxpool.ParseConfig(o.URL)
	if err != nil {
		return nil, fmt.Errorf("while parsing the database URL: %w", err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = o.Schema
	if o.MaxConns > 0 {
		cfg.MaxConns = o.MaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("while connecting to Postgres: %w", err)
	}
	s := &Store{pool: pool, schema: o.Schema, url: o.URL}
	if o.Migrate {
		if err := s.Migrate(ctx); err != nil {
			pool.Close()
			return nil, err
		}
	}
	return s, nil
}

// Close releases the pool.
func (s *Store) Close() { s.pool.Close() }

// Pool exposes the pool for component-specific queries (the verifier's job
// queue, LISTEN/NOTIFY). Its connections use the room's schema.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Schema is the room's schema name.
func (s *Store) Schema() string { return s.schema }

// Ping checks that Postgres answers (readiness).
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// isUniqueViolation reports a Postgres unique_violation on the named constraint or index.
func isUniqueViolation(err error, constraint string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == constraint
}
