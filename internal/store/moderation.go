package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Moderation: bans and message deletions by the room's moderators, each
// written with its line of the audit log (moderation_log) in one
// transaction. A ban is read with the agent's row on every authenticated
// request (AgentByKeyHash), so it holds on every API process as soon as it
// commits: there is no cache to invalidate.

// ErrNotBanned is an unban of an agent that has no ban in force.
var ErrNotBanned = errors.New("not banned")

// Moderation actions, as the log names them.
const (
	ActionBan    = "ban"
	ActionUnban  = "unban"
	ActionDelete = "delete"
)

// Ban is a ban in force on an agent.
type Ban struct {
	AgentID   string
	AgentName string
	Reason    string
	Moderator string
	CreatedAt time.Time
	// ExpiresAt is nil for a ban without an end.
	ExpiresAt *time.Time
}

// ModerationAction is one line of the audit log.
type ModerationAction struct {
	ID        int64
	At        time.Time
	Moderator string
	Action    string
	AgentID   string // empty when the action was on a message
	AgentName string
	MessageID int64 // 0 unless the action is a delete
	Reason    string
	ExpiresAt *time.Time
}

const actionColumns = `id, at, moderator, action, coalesce(agent_id::text, ''), agent_name, coalesce(message_id, 0), reason, expires_at`

func scanAction(row pgx.Row) (ModerationAction, error) {
	var a ModerationAction
	err := row.Scan(&a.ID, &a.At, &a.Moderator, &a.Action, &a.AgentID, &a.AgentName, &a.MessageID, &a.Reason, &a.ExpiresAt)
	return a, err
}

// moderate runs fn in a transaction that holds the room's moderation lock,
// then appends the action fn describes to the log. The lock orders the log's
// ids as the commits: a reader that has seen id N has seen every action
// below N (DeletedAfter depends on it).
func (s *Store) moderate(ctx context.Context, fn func(tx pgx.Tx) (ModerationAction, error)) (ModerationAction, error) {
	var out ModerationAction
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockID("chatr-moderation:"+s.schema)); err != nil {
			return err
		}
		a, err := fn(tx)
		if err != nil {
			return err
		}
		var agentID any
		if a.AgentID != "" {
			agentID = a.AgentID
		}
		var msgID any
		if a.MessageID != 0 {
			msgID = a.MessageID
		}
		out, err = scanAction(tx.QueryRow(ctx, `
			INSERT INTO moderation_log (moderator, action, agent_id, agent_name, message_id, reason, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING `+actionColumns,
			a.Moderator, a.Action, agentID, a.AgentName, msgID, a.Reason, a.ExpiresAt))
		return err
	})
	return out, err
}

// agentByName finds an agent by name, regardless of case (names are unique
// so), within tx.
func agentByName(ctx context.Context, tx pgx.Tx, name string) (id, canonical string, err error) {
	err = tx.QueryRow(ctx, `SELECT id::text, name FROM agents WHERE lower(name) = lower($1)`, name).Scan(&id, &canonical)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", "", ErrNotFound
	}
	return id, canonical, err
}

// BanAgent bans the agent named name (compared regardless of case) until
// expires (nil: until unbanned), replacing a ban it may have. An unknown
// name is ErrNotFound.
func (s *Store) BanAgent(ctx context.Context, name, moderator, reason string, expires *time.Time) (ModerationAction, error) {
	a, err := s.moderate(ctx, func(tx pgx.Tx) (ModerationAction, error) {
		id, canonical, err := agentByName(ctx, tx, name)
		if err != nil {
			return ModerationAction{}, err
		}
		_, err = tx.Exec(ctx, `
			INSERT INTO bans (agent_id, reason, moderator, created_at, expires_at) VALUES ($1, $2, $3, clock_timestamp(), $4)
			ON CONFLICT (agent_id) DO UPDATE SET reason = EXCLUDED.reason, moderator = EXCLUDED.moderator,
			    created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at`,
			id, reason, moderator, expires)
		if err != nil {
			return ModerationAction{}, err
		}
		// The agent is offline from now on (it cannot authenticate to
		// come back); presence in Redis is the caller's to clear.
		if _, err := tx.Exec(ctx, `UPDATE agents SET online = false WHERE id = $1`, id); err != nil {
			return ModerationAction{}, err
		}
		return ModerationAction{Moderator: moderator, Action: ActionBan, AgentID: id, AgentName: canonical,
			Reason: reason, ExpiresAt: expires}, nil
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		err = fmt.Errorf("while banning agent %q: %w", name, err)
	}
	return a, err
}

// UnbanAgent lifts the ban of the agent named name. An unknown name is
// ErrNotFound; an agent without a ban in force (never banned, or expired)
// is ErrNotBanned, and nothing is logged.
func (s *Store) UnbanAgent(ctx context.Context, name, moderator, reason string) (ModerationAction, error) {
	a, err := s.moderate(ctx, func(tx pgx.Tx) (ModerationAction, error) {
		id, canonical, err := agentByName(ctx, tx, name)
		if err != nil {
			return ModerationAction{}, err
		}
		tag, err := tx.Exec(ctx, `DELETE FROM bans WHERE agent_id = $1 AND (expires_at IS NULL OR expires_at > clock_timestamp())`, id)
		if err != nil {
			return ModerationAction{}, err
		}
		if tag.RowsAffected() == 0 {
			return ModerationAction{}, ErrNotBanned
		}
		return ModerationAction{Moderator: moderator, Action: ActionUnban, AgentID: id, AgentName: canonical, Reason: reason}, nil
	})
	if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrNotBanned) {
		err = fmt.Errorf("while unbanning agent %q: %w", name, err)
	}
	return a, err
}

// DeleteMessage deletes message id from the history. An unknown id (never
// posted, deleted already, or gone by retention) is ErrNotFound. Ids are
// never reused, and the room's totals still count the message.
func (s *Store) DeleteMessage(ctx context.Context, id int64, moderator, reason string) (ModerationAction, error) {
	a, err := s.moderate(ctx, func(tx pgx.Tx) (ModerationAction, error) {
		var agentID, agentName string
		err := tx.QueryRow(ctx, `DELETE FROM messages WHERE id = $1 RETURNING agent_id::text, agent_name`, id).Scan(&agentID, &agentName)
		if errors.Is(err, pgx.ErrNoRows) {
			return ModerationAction{}, ErrNotFound
		}
		if err != nil {
			return ModerationAction{}, err
		}
		return ModerationAction{Moderator: moderator, Action: ActionDelete, AgentID: agentID, AgentName: agentName,
			MessageID: id, Reason: reason}, nil
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		err = fmt.Errorf("while deleting message %d: %w", id, err)
	}
	return a, err
}

// ModerationLog returns up to limit actions, newest first, with ids below
// before (0: from the newest).
func (s *Store) ModerationLog(ctx context.Context, limit int, before int64) ([]ModerationAction, error) {
	if before <= 0 {
		before = 1<<63 - 1
	}
	rows, err := s.pool.Query(ctx, `SELECT `+actionColumns+` FROM moderation_log WHERE id < $1 ORDER BY id DESC LIMIT $2`, before, limit)
	if err != nil {
		return nil, fmt.Errorf("while reading the moderation log: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ModerationAction, error) { return scanAction(r) })
	if err != nil {
		return nil, fmt.Errorf("while reading the moderation log: %w", err)
	}
	return out, nil
}

// Bans returns the bans in force, newest first.
func (s *Store) Bans(ctx context.Context) ([]Ban, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT b.agent_id::text, a.name, b.reason, b.moderator, b.created_at, b.expires_at
		FROM bans b JOIN agents a ON a.id = b.agent_id
		WHERE b.expires_at IS NULL OR b.expires_at > clock_timestamp()
		ORDER BY b.created_at DESC`)
	if err != nil {
		return nil, fmt.Errorf("while reading the bans: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Ban, error) {
		var b Ban
		err := r.Scan(&b.AgentID, &b.AgentName, &b.Reason, &b.Moderator, &b.CreatedAt, &b.ExpiresAt)
		return b, err
	})
	if err != nil {
		return nil, fmt.Errorf("while reading the bans: %w", err)
	}
	return out, nil
}

// DeletedAfter returns the ids of the messages deleted by actions after the
// log id after, oldest first, and the newest log id it has read (after when
// there is nothing new). Streamers call it to catch up on deletions the bus
// did not bring them.
func (s *Store) DeletedAfter(ctx context.Context, after int64) (ids []int64, last int64, err error) {
	rows, err := s.pool.Query(ctx, `SELECT id, coalesce(message_id, 0), action FROM moderation_log WHERE id > $1 ORDER BY id LIMIT 1000`, after)
	if err != nil {
		return nil, after, fmt.Errorf("while reading the deleted messages: %w", err)
	}
	defer rows.Close()
	last = after
	for rows.Next() {
		var id, msg int64
		var action string
		if err := rows.Scan(&id, &msg, &action); err != nil {
			return nil, after, fmt.Errorf("while reading the deleted messages: %w", err)
		}
		last = id
		if action == ActionDelete && msg > 0 {
			ids = append(ids, msg)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, after, fmt.Errorf("while reading the deleted messages: %w", err)
	}
	return ids, last, nil
}

// LastModerationID is the newest id of the moderation log (0: none).
func (s *Store) LastModerationID(ctx context.Context) (int64, error) {
	var id int64
	if err := s.pool.QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM moderation_log`).Scan(&id); err != nil {
		return 0, fmt.Errorf("while reading the moderation log: %w", err)
	}
	return id, nil
}

// DeletedFrom returns the ids of the messages from id from on (inclusive)
// that moderators deleted, oldest first: what a streamer starting up removes
// from the ring it warmed (a scan of the log, which only moderators write).
func (s *Store) DeletedFrom(ctx context.Context, from int64) ([]int64, error) {
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT message_id FROM moderation_log WHERE action = 'delete' AND message_id >= $1 ORDER BY message_id`, from)
	if err != nil {
		return nil, fmt.Errorf("while reading the deleted messages: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("while reading the deleted messages: %w", err)
	}
	return ids, nil
}
