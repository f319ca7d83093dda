// Package store is the room's Postgres data layer: the connection pool, the
// embedded schema migrations and the queries every component shares. Postgres
// is the source of truth for agents, messages and (later) verification jobs.
package store

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chatr-ai/chatr/internal/config"
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
	// ConnectTimeout bounds dialling and authenticating one connection;
	// StatementTimeout is the sessions' statement_timeout, so a query the
	// server cannot finish (a lock wait, a runaway plan) ends on the server
	// too. Callers' contexts bound the wait on the client side (a frozen
	// server answers nothing, not even a timeout). Zero: the defaults of
	// internal/config; negative: none.
	ConnectTimeout, StatementTimeout time.Duration
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
	// An explicit connect_timeout in the URL wins.
	if ct := orDefault(o.ConnectTimeout, config.DefaultDBConnectTimeout); ct > 0 && cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = ct
	}
	if o.Migrate {
		// Migrations may rightly run long (an index on a big table, waiting
		// for another process's migration): they get a pool of their own
		// without the statement timeout, closed when they are done.
		if err := migrateWith(ctx, cfg.Copy(), o.Schema); err != nil {
			return nil, err
		}
	}
	if st := orDefault(o.StatementTimeout, config.DefaultDBStatementTimeout); st > 0 {
		if _, set := cfg.ConnConfig.RuntimeParams["statement_timeout"]; !set {
			cfg.ConnConfig.RuntimeParams["statement_timeout"] = strconv.FormatInt(st.Milliseconds(), 10)
		}
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("while connecting to Postgres: %w", err)
	}
	return &Store{pool: pool, schema: o.Schema, url: o.URL}, nil
}

// orDefault is d when v is zero.
func orDefault(v, d time.Duration) time.Duration {
	if v == 0 {
		return d
	}
	return v
}

// migrateWith migrates schema through a short-lived pool built from cfg.
func migrateWith(ctx context.Context, cfg *pgxpool.Config, schema string) error {
	cfg.MaxConns = 4
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("while connecting to Postgres: %w", err)
	}
	defer pool.Close()
	return (&Store{pool: pool, schema: schema}).Migrate(ctx)
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
