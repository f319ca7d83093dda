package store

import (
	"context"
	"fmt"
	"time"
)

// Retention: what a room keeps, applied in small batches so that no
// statement holds the messages table for long (each batch deletes at most
// batch rows, found through the primary key from the oldest message on;
// posting goes on beside it, as a new message is always newer).
//
// Ids stay what they were: a resume from an id older than the oldest kept
// message replays from the oldest, and GET /api/messages pages through what
// is left. The room's counters (totalMessages) count every message ever
// posted, deleted or not.

// Retention says what to delete. Zero fields keep everything.
type Retention struct {
	// MaxAge deletes messages older than this.
	MaxAge time.Duration
	// MaxMessages keeps only the newest this many messages.
	MaxMessages int64
}

// DeleteOldMessages deletes, oldest first, at most batch messages with ids
// above after that the rules say go. It reports how many it deleted (fewer
// than batch: nothing more is due now) and the highest id it deleted, which
// the next batch of the same pass passes as after: starting there, the
// index scan does not walk again over the entries of the rows just deleted,
// which stay in the index until a vacuum.
func (s *Store) DeleteOldMessages(ctx context.Context, r Retention, after int64, batch int) (n, last int64, err error) {
	if r.MaxAge <= 0 && r.MaxMessages <= 0 {
		return 0, after, nil
	}
	// The head of the table by id: the rows a batch may touch. A row is
	// deleted when it is beyond the count (id <= newest - MaxMessages) or
	// older than the age limit. Rows are in id order, which is commit
	// order, so stopping at the first young row is right.
	upto := int64(-1) // no count limit
	cutoff := time.Time{}
	if r.MaxMessages > 0 {
		var newest int64
		if err := s.pool.QueryRow(ctx, `SELECT COALESCE(max(id), 0) FROM messages`).Scan(&newest); err != nil {
			return 0, after, fmt.Errorf("while reading the newest message id: %w", err)
		}
		upto = newest - r.MaxMessages
	}
	if r.MaxAge > 0 {
		cutoff = time.Now().Add(-r.MaxAge)
	}
	err = s.pool.QueryRow(ctx, `
		WITH head AS (SELECT id, created_at FROM messages WHERE id > $4 ORDER BY id LIMIT $1),
		     gone AS (DELETE FROM messages m USING head
		               WHERE m.id = head.id AND (head.id <= $2 OR ($3::timestamptz IS NOT NULL AND head.created_at < $3))
		               RETURNING m.id)
		SELECT count(*), COALESCE(max(id), $4) FROM gone`,
		batch, upto, nullTime(cutoff), after).Scan(&n, &last)
	if err != nil {
		return 0, after, fmt.Errorf("while deleting old messages: %w", err)
	}
	return n, last, nil
}

// DeleteFinishedJobs deletes at most batch verification jobs that finished
// more than maxAge ago (the verdicts stay on the agents themselves).
func (s *Store) DeleteFinishedJobs(ctx context.Context, maxAge time.Duration, batch int) (int64, error) {
	if maxAge <= 0 {
		return 0, nil
	}
	tag, err := s.pool.Exec(ctx, `
		DELETE FROM verification_jobs WHERE id IN (
		  SELECT id FROM verification_jobs WHERE state = 'done' AND finished_at < $1 ORDER BY finished_at LIMIT $2)`,
		time.Now().Add(-maxAge), batch)
	if err != nil {
		return 0, fmt.Errorf("while deleting finished verification jobs: %w", err)
	}
	return tag.RowsAffected(), nil
}

func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}
