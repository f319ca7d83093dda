package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/chatr-ai/chatr/internal/model"
)

// NewMessage is a message to insert: its author (as the author is now),
// content, and the client's Idempotency-Key if it sent one (see InsertPosts).
type NewMessage struct {
	Agent   Agent
	Content string
	Key     string
}

// InsertMessages stores a batch of messages in one transaction and returns
// them with their ids, in order. The ids come from the room's counter row,
// updated in the same statement: the row lock serialises writers, so ids are
// strictly increasing in commit order and dense, however many API replicas
// insert at once. One batch costs one round trip and one commit. The
// messages' idempotency keys are stored with them, in the same statement;
// InsertPosts is what honours them.
func (s *Store) InsertMessages(ctx context.Context, batch []NewMessage) ([]model.Message, error) {
	return insertMessages(ctx, s.pool, batch)
}

// querier is a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func insertMessages(ctx context.Context, q querier, batch []NewMessage) ([]model.Message, error) {
	n := len(batch)
	if n == 0 {
		return nil, nil
	}
	ids := make([]string, n)
	names := make([]string, n)
	avatars := make([]string, n)
	contents := make([]string, n)
	verified := make([]bool, n)
	mnames := make([]*string, n)
	owners := make([]*string, n)
	keys := make([]string, n)
	for i, m := range batch {
		ids[i], names[i], avatars[i], contents[i] = m.Agent.ID, m.Agent.Name, m.Agent.Avatar, m.Content
		verified[i], mnames[i], owners[i], keys[i] = m.Agent.MoltbookVerified, m.Agent.MoltbookName, m.Agent.OwnerTwitter, m.Key
	}
	// A key older than the idempotency window may still have its row (the
	// purge runs now and then): it is reused, as if it were new.
	rows, err := q.Query(ctx, `
WITH seq AS (
    UPDATE room SET last_message_id = last_message_id + $1, total_messages = total_messages + $1
    RETURNING last_message_id - $1 AS base
), t AS (
    SELECT * FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::bool[], $7::text[], $8::text[], $9::text[])
        WITH ORDINALITY AS t(agent_id, name, avatar, content, verified, mname, owner, key, ord)
), keys AS (
    INSERT INTO idempotency_keys (agent_id, key, message_id, created_at)
    SELECT t.agent_id, t.key, seq.base + t.ord, clock_timestamp() FROM seq, t WHERE t.key <> ''
    ON CONFLICT (agent_id, key) DO UPDATE SET message_id = EXCLUDED.message_id, created_at = EXCLUDED.created_at
)
INSERT INTO messages (id, agent_id, agent_name, avatar, content, created_at, moltbook_verified, moltbook_name, owner_twitter)
SELECT seq.base + t.ord, t.agent_id, t.name, t.avatar, t.content, clock_timestamp(), t.verified, t.mname, t.owner
FROM seq, t
ORDER BY t.ord
RETURNING `+messageColumns, n, ids, names, avatars, contents, verified, mnames, owners, keys)
	if err != nil {
		return nil, fmt.Errorf("while inserting %d messages: %w", n, err)
	}
	out, err := collectMessages(rows)
	if err != nil {
		return nil, fmt.Errorf("while inserting %d messages: %w", n, err)
	}
	sortByID(out)
	return out, nil
}

const messageColumns = `id, agent_id::text, agent_name, avatar, content, created_at, moltbook_verified, moltbook_name, owner_twitter`

func collectMessages(rows pgx.Rows) ([]model.Message, error) {
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (model.Message, error) {
		var m model.Message
		err := r.Scan(&m.ID, &m.AgentID, &m.AgentName, &m.Avatar, &m.Content, &m.Timestamp, &m.MoltbookVerified, &m.MoltbookName, &m.OwnerTwitter)
		return m, err
	})
}

func sortByID(ms []model.Message) {
	for i := 1; i < len(ms); i++ {
		for j := i; j > 0 && ms[j].ID < ms[j-1].ID; j-- {
			ms[j], ms[j-1] = ms[j-1], ms[j]
		}
	}
}

// ListMessages returns up to limit messages, oldest first: the newest ones,
// or those just before `before`, or those just after `after` (ids; 0 means
// unset). With after set it returns the oldest messages after it, which is
// what a client catching up (or a streamer filling a gap) needs.
func (s *Store) ListMessages(ctx context.Context, limit int, before, after int64) ([]model.Message, error) {
	var rows pgx.Rows
	var err error
	switch {
	case after > 0:
		return s.MessagesAfter(ctx, after, limit)
	case before > 0:
		rows, err = s.pool.Query(ctx, `SELECT * FROM (SELECT `+messageColumns+` FROM messages WHERE id < $1 ORDER BY id DESC LIMIT $2) m ORDER BY id`, before, limit)
	default:
		rows, err = s.pool.Query(ctx, `SELECT * FROM (SELECT `+messageColumns+` FROM messages ORDER BY id DESC LIMIT $1) m ORDER BY id`, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("while listing messages: %w", err)
	}
	out, err := collectMessages(rows)
	if err != nil {
		return nil, fmt.Errorf("while listing messages: %w", err)
	}
	return out, nil
}

// MessagesAfter returns up to limit messages with id > after, oldest first
// (after may be 0: from the beginning).
func (s *Store) MessagesAfter(ctx context.Context, after int64, limit int) ([]model.Message, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+messageColumns+` FROM messages WHERE id > $1 ORDER BY id LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("while reading messages after %d: %w", after, err)
	}
	out, err := collectMessages(rows)
	if err != nil {
		return nil, fmt.Errorf("while reading messages after %d: %w", after, err)
	}
	return out, nil
}

// Counters are the room's totals, kept as data changes.
type Counters struct {
	TotalAgents   int64
	TotalMessages int64
	LastMessageID int64
}

// Counters reads the room's counter row (one primary-key read).
func (s *Store) Counters(ctx context.Context) (Counters, error) {
	var c Counters
	err := s.pool.QueryRow(ctx, `SELECT total_agents, total_messages, last_message_id FROM room`).
		Scan(&c.TotalAgents, &c.TotalMessages, &c.LastMessageID)
	if err != nil {
		return Counters{}, fmt.Errorf("while reading the room counters: %w", err)
	}
	return c, nil
}
