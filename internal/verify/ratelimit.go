package verify

import (
	"context"
	"fmt"
	"time"
)

// TakeMoltbook asks the room's fleet-wide Moltbook budget for one request
// at rpm requests per minute. It returns 0 when the request may go now, or
// how long to wait before asking again.
//
// The budget is one Postgres row shared by every verifier replica (GCRA:
// the row holds the theoretical arrival time of the next request, so
// requests are spaced 60s/rpm apart whatever the number of replicas, and no
// minute ever sees more than rpm of them). Postgres rather than Redis: the
// verifier needs Postgres anyway, so the limiter adds no dependency and no
// way to fail open. The row lock is held for one statement, at most rpm
// times a minute. Postgres's clock is used, so replicas with skewed clocks
// agree.
func (q *Queue) TakeMoltbook(ctx context.Context, rpm int) (time.Duration, error) {
	if rpm <= 0 {
		return 0, nil
	}
	spacing := time.Minute / time.Duration(rpm)
	var ok bool
	var waitUS int64
	err := q.pool.QueryRow(ctx, `
WITH cur AS (
    SELECT tat, paused_until, clock_timestamp() AS now FROM moltbook_rate FOR UPDATE
), take AS (
    UPDATE moltbook_rate SET tat = greatest(cur.tat, cur.now) + $1::bigint * interval '1 microsecond'
    FROM cur WHERE cur.tat <= cur.now AND cur.paused_until <= cur.now
    RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM take),
       (extract(epoch FROM greatest(cur.tat, cur.paused_until) - cur.now) * 1000000)::bigint
FROM cur`, spacing.Microseconds()).Scan(&ok, &waitUS)
	if err != nil {
		return 0, fmt.Errorf("while taking from the Moltbook rate budget: %w", err)
	}
	if ok {
		return 0, nil
	}
	return max(time.Duration(waitUS)*time.Microsecond, time.Millisecond), nil
}

// PauseMoltbook stops every replica's Moltbook requests for d: Moltbook
// said it is limiting us (429, or X-RateLimit-Remaining: 0 with a reset).
// The pause is measured on Postgres's clock like the budget, and only ever
// extended, never shortened.
func (q *Queue) PauseMoltbook(ctx context.Context, d time.Duration) error {
	_, err := q.pool.Exec(ctx, `UPDATE moltbook_rate
SET paused_until = greatest(paused_until, clock_timestamp() + $1::bigint * interval '1 microsecond')`, d.Microseconds())
	if err != nil {
		return fmt.Errorf("while pausing Moltbook requests for %s: %w", d, err)
	}
	return nil
}
