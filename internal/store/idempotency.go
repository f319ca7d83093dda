package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chatr-ai/chatr/internal/model"
)

// IdempotencyWindow is how long an Idempotency-Key of POST /api/messages is
// honoured: the same key from the same agent within it gets the first post's
// answer again, and no second message.
const IdempotencyWindow = 24 * time.Hour

// windowSQL is IdempotencyWindow as a Postgres interval. The cut-off is taken
// from the database's clock, the one created_at was written with.
var windowSQL = fmt.Sprintf("interval '%d seconds'", int64(IdempotencyWindow/time.Second))

// Posted is one post's outcome: its message, and whether that message is an
// earlier post's, answered again for a repeated idempotency key.
type Posted struct {
	Message  model.Message
	Replayed bool
}

// InsertPosts is InsertMessages honouring idempotency keys: a post whose
// agent already posted with the same key within IdempotencyWindow gets that
// message back (Replayed) and inserts nothing, and so does a second post with
// the same key in the batch. A batch without keys is exactly InsertMessages.
//
// With keys, the batch first takes the room's counter row lock, the lock
// every message insert of the room takes anyway: once it is held, every
// other insert has committed or not started, so the look-up sees every key
// there is and no other process can slip the same key in before the commit.
func (s *Store) InsertPosts(ctx context.Context, batch []NewMessage) ([]Posted, error) {
	keyed := false
	for _, m := range batch {
		if m.Key != "" {
			keyed = true
			break
		}
	}
	out := make([]Posted, len(batch))
	if !keyed {
		msgs, err := s.InsertMessages(ctx, batch)
		if err != nil {
			return nil, err
		}
		if len(msgs) != len(batch) {
			return nil, fmt.Errorf("inserted %d messages, got %d back", len(batch), len(msgs))
		}
		for i := range msgs {
			out[i].Message = msgs[i]
		}
		return out, nil
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT 1 FROM room FOR UPDATE`); err != nil {
			return err
		}
		found, err := postsByKeys(ctx, tx, batch)
		if err != nil {
			return err
		}
		type ak struct{ agent, key string }
		first := map[ak]int{} // a key's first post in this batch
		var fresh []NewMessage
		var freshAt []int // batch index of each fresh post
		for i, m := range batch {
			if m.Key == "" {
				fresh, freshAt = append(fresh, m), append(freshAt, i)
				continue
			}
			k := ak{m.Agent.ID, m.Key}
			if msg, ok := found[k.agent+"\x00"+k.key]; ok {
				out[i] = Posted{Message: msg, Replayed: true}
				continue
			}
			if _, dup := first[k]; dup {
				out[i].Replayed = true // filled in below, from the first
				continue
			}
			first[k] = i
			fresh, freshAt = append(fresh, m), append(freshAt, i)
		}
		msgs, err := insertMessages(ctx, tx, fresh)
		if err != nil {
			return err
		}
		if len(msgs) != len(fresh) {
			return fmt.Errorf("inserted %d messages, got %d back", len(fresh), len(msgs))
		}
		for j, i := range freshAt {
			out[i].Message = msgs[j]
		}
		for i, m := range batch {
			if out[i].Replayed && out[i].Message.ID == 0 {
				out[i].Message = out[first[ak{m.Agent.ID, m.Key}]].Message
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("while inserting %d posts: %w", len(batch), err)
	}
	return out, nil
}

// postsByKeys returns the messages of the batch's keys that are still
// honoured, by "agent id \x00 key".
func postsByKeys(ctx context.Context, q querier, batch []NewMessage) (map[string]model.Message, error) {
	var agents, keys []string
	for _, m := range batch {
		if m.Key != "" {
			agents, keys = append(agents, m.Agent.ID), append(keys, m.Key)
		}
	}
	rows, err := q.Query(ctx, `
SELECT k.agent_id::text, k.key, m.* FROM idempotency_keys k
JOIN LATERAL (SELECT `+messageColumns+` FROM messages WHERE id = k.message_id) m ON true
WHERE (k.agent_id, k.key) IN (SELECT * FROM unnest($1::uuid[], $2::text[]))
  AND k.created_at > clock_timestamp() - `+windowSQL, agents, keys)
	if err != nil {
		return nil, fmt.Errorf("while reading idempotency keys: %w", err)
	}
	defer rows.Close()
	found := map[string]model.Message{}
	for rows.Next() {
		var agent, key string
		var m model.Message
		if err := rows.Scan(&agent, &key, &m.ID, &m.AgentID, &m.AgentName, &m.Avatar, &m.Content, &m.Timestamp,
			&m.MoltbookVerified, &m.MoltbookName, &m.OwnerTwitter); err != nil {
			return nil, fmt.Errorf("while reading idempotency keys: %w", err)
		}
		found[agent+"\x00"+key] = m
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("while reading idempotency keys: %w", err)
	}
	return found, nil
}

// PostByKey returns the message agent posted with key within
// IdempotencyWindow; ok is false when there is none. The API asks before
// counting a post against the agent's message limit, so that a retry is
// answered even when the limit is used up (by the very post retried).
func (s *Store) PostByKey(ctx context.Context, agentID, key string) (m model.Message, ok bool, err error) {
	found, err := postsByKeys(ctx, s.pool, []NewMessage{{Agent: Agent{ID: agentID}, Key: key}})
	if err != nil {
		return model.Message{}, false, err
	}
	m, ok = found[agentID+"\x00"+key]
	return m, ok, nil
}

// PurgeIdempotencyKeys deletes the keys older than IdempotencyWindow (they
// are no longer honoured) and reports how many it deleted.
func (s *Store) PurgeIdempotencyKeys(ctx context.Context) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM idempotency_keys WHERE created_at <= clock_timestamp() - `+windowSQL)
	if err != nil {
		return 0, fmt.Errorf("while purging idempotency keys: %w", err)
	}
	return tag.RowsAffected(), nil
}
