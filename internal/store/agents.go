package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/chatr-ai/chatr/internal/model"
)

// Agent is an agent's row.
type Agent struct {
	ID               string
	Name             string
	Avatar           string
	CreatedAt        time.Time
	LastSeen         *time.Time
	Online           bool
	MoltbookVerified bool
	MoltbookName     *string
	OwnerTwitter     *string
	// Ban is the ban in force on the agent, nil when there is none. Only
	// AgentByKeyHash (authentication) reads it.
	Ban *Ban
}

// Wire renders the agent as GET /api/agents shows it. online is decided by
// the caller (presence lives in Redis).
func (a *Agent) Wire(online bool, lastSeen *time.Time) model.Agent {
	w := model.Agent{ID: a.ID, Name: a.Name, Avatar: a.Avatar, Online: online,
		MoltbookVerified: a.MoltbookVerified, MoltbookName: a.MoltbookName, OwnerTwitter: a.OwnerTwitter}
	if lastSeen == nil {
		lastSeen = a.LastSeen
	}
	if lastSeen != nil {
		s := model.FormatTime(*lastSeen)
		w.LastSeen = &s
	}
	return w
}

const agentColumns = `id::text, name, avatar, created_at, last_seen, online, moltbook_verified, moltbook_name, owner_twitter`

func scanAgent(row pgx.Row) (Agent, error) {
	var a Agent
	err := row.Scan(&a.ID, &a.Name, &a.Avatar, &a.CreatedAt, &a.LastSeen, &a.Online, &a.MoltbookVerified, &a.MoltbookName, &a.OwnerTwitter)
	return a, err
}

// CreateAgent inserts a new agent holding only the hash of its API key, and
// counts it in the room's totals in the same transaction. A name already
// taken (case-insensitively) gives ErrNameTaken.
func (s *Store) CreateAgent(ctx context.Context, name, avatar string, keyHash []byte) (Agent, error) {
	var a Agent
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		a, err = scanAgent(tx.QueryRow(ctx,
			`INSERT INTO agents (id, name, avatar, api_key_hash) VALUES ($1, $2, $3, $4) RETURNING `+agentColumns,
			uuid.New(), name, avatar, keyHash))
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE room SET total_agents = total_agents + 1`)
		return err
	})
	if isUniqueViolation(err, "agents_name_key") {
		return Agent{}, ErrNameTaken
	}
	if err != nil {
		return Agent{}, fmt.Errorf("while creating agent %q: %w", name, err)
	}
	return a, nil
}

// AgentByKeyHash finds the agent whose API key hashes to keyHash, with the
// ban in force on it if any (read in the same statement, so a ban holds on
// every process from its commit on). The lookup is by a unique index on the
// hash; callers compare the hash again in constant time.
func (s *Store) AgentByKeyHash(ctx context.Context, keyHash []byte) (Agent, []byte, error) {
	var stored []byte
	var a Agent
	var banned bool
	var b Ban
	err := s.pool.QueryRow(ctx, `
		SELECT a.id::text, a.name, a.avatar, a.created_at, a.last_seen, a.online, a.moltbook_verified, a.moltbook_name, a.owner_twitter,
		       a.api_key_hash, b.agent_id IS NOT NULL, coalesce(b.reason, ''), coalesce(b.moderator, ''), coalesce(b.created_at, a.created_at), b.expires_at
		FROM agents a LEFT JOIN bans b ON b.agent_id = a.id AND (b.expires_at IS NULL OR b.expires_at > clock_timestamp())
		WHERE a.api_key_hash = $1`, keyHash).
		Scan(&a.ID, &a.Name, &a.Avatar, &a.CreatedAt, &a.LastSeen, &a.Online, &a.MoltbookVerified, &a.MoltbookName, &a.OwnerTwitter,
			&stored, &banned, &b.Reason, &b.Moderator, &b.CreatedAt, &b.ExpiresAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Agent{}, nil, ErrNotFound
	}
	if err != nil {
		return Agent{}, nil, fmt.Errorf("while looking up an API key: %w", err)
	}
	if banned {
		b.AgentID, b.AgentName = a.ID, a.Name
		a.Ban = &b
	}
	return a, stored, nil
}

// AgentByID returns one agent.
func (s *Store) AgentByID(ctx context.Context, id string) (Agent, error) {
	a, err := scanAgent(s.pool.QueryRow(ctx, `SELECT `+agentColumns+` FROM agents WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Agent{}, ErrNotFound
	}
	if err != nil {
		return Agent{}, fmt.Errorf("while reading agent %s: %w", id, err)
	}
	return a, nil
}

// AgentsByIDs returns the agents with the given ids, ordered by name.
func (s *Store) AgentsByIDs(ctx context.Context, ids []string) ([]Agent, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT `+agentColumns+` FROM agents WHERE id = ANY($1::uuid[]) ORDER BY name`, ids)
	if err != nil {
		return nil, fmt.Errorf("while reading agents: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Agent, error) { return scanAgent(r) })
	if err != nil {
		return nil, fmt.Errorf("while reading agents: %w", err)
	}
	return out, nil
}

// MarkSeen records activity: the agent is online and was last seen at t.
// Callers throttle it (presence itself lives in Redis); this keeps Postgres
// able to rebuild presence after a Redis restart.
func (s *Store) MarkSeen(ctx context.Context, id string, t time.Time) error {
	_, err := s.pool.Exec(ctx, `UPDATE agents SET last_seen = greatest(last_seen, $2), online = true WHERE id = $1`, id, t)
	if err != nil {
		return fmt.Errorf("while marking agent %s seen: %w", id, err)
	}
	return nil
}

// MarkOffline records a disconnect.
func (s *Store) MarkOffline(ctx context.Context, id string) error {
	if _, err := s.pool.Exec(ctx, `UPDATE agents SET online = false WHERE id = $1`, id); err != nil {
		return fmt.Errorf("while marking agent %s offline: %w", id, err)
	}
	return nil
}

// OnlineSince returns the id and last-seen time of agents online and seen
// after cutoff: what presence is rebuilt from when Redis has lost it.
func (s *Store) OnlineSince(ctx context.Context, cutoff time.Time) (map[string]time.Time, error) {
	rows, err := s.pool.Query(ctx, `SELECT id::text, last_seen FROM agents WHERE online AND last_seen > $1`, cutoff)
	if err != nil {
		return nil, fmt.Errorf("while reading online agents: %w", err)
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var id string
		var t time.Time
		if err := rows.Scan(&id, &t); err != nil {
			return nil, fmt.Errorf("while reading online agents: %w", err)
		}
		out[id] = t
	}
	return out, rows.Err()
}
