package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"
)

// VerifyStart asks for the code to post on Moltbook. The agent keeps its
// code once issued.
func (c *Client) VerifyStart(ctx context.Context, moltbookName string) (*VerifyCode, error) {
	var out VerifyCode
	if _, err := c.call(ctx, http.MethodPost, "/api/verify/start", nil, true, map[string]string{"moltbookName": moltbookName}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// VerifyState is the state of the agent's verification check.
type VerifyState struct {
	// Status is the check's state as the room names it ("queued",
	// "running", "retrying", "done", ...).
	Status string
	// Pending tells whether the check is still running.
	Pending bool
	// RetryAfter is when to ask again, if the room said.
	RetryAfter time.Duration
	// Fields holds the whole answer, for what this type does not name.
	Fields map[string]any
}

// liveStates are the states of a check that is still running.
var liveStates = map[string]bool{"queued": true, "running": true, "retrying": true, "pending": true}

func (s *VerifyState) UnmarshalJSON(b []byte) error {
	if err := json.Unmarshal(b, &s.Fields); err != nil {
		return err
	}
	s.Status, _ = s.Fields["status"].(string)
	p, _ := s.Fields["pending"].(bool)
	s.Pending = p || liveStates[s.Status]
	if n, ok := s.Fields["retryAfter"].(float64); ok {
		s.RetryAfter = seconds(n)
	}
	return nil
}

// VerifyStatus tells the state of the agent's verification check.
func (c *Client) VerifyStatus(ctx context.Context) (*VerifyState, error) {
	var out VerifyState
	if _, err := c.call(ctx, http.MethodGet, "/api/verify/status", nil, true, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// VerifyComplete asks the room to check Moltbook for the post with the
// code. The check runs in the background: when the room answers 202 (still
// checking), VerifyComplete waits the time the room asks, polls
// VerifyStatus until the check is over, and asks once more for the final
// answer, so the caller sees only the contract's outcomes: a *Verification,
// or a *Error (404 no such user or no post with the code, 403 not claimed,
// 502 Moltbook failing, ...). Give ctx a deadline to bound the wait.
func (c *Client) VerifyComplete(ctx context.Context, moltbookName string) (*Verification, error) {
	in := map[string]string{"moltbookName": moltbookName}
	for {
		var out Verification
		var pending VerifyState
		var raw json.RawMessage
		status, err := c.call(ctx, http.MethodPost, "/api/verify/complete", nil, true, in, &raw)
		if err != nil {
			return nil, err
		}
		if status != http.StatusAccepted {
			if err := json.Unmarshal(raw, &out); err != nil {
				return nil, err
			}
			return &out, nil
		}
		if err := json.Unmarshal(raw, &pending); err != nil {
			return nil, err
		}
		if err := c.waitVerification(ctx, pending.RetryAfter); err != nil {
			return nil, err
		}
	}
}

// waitVerification waits until the running check is over: first the time
// the room asked for, then as long as VerifyStatus says it is still running.
// If the room cannot tell the status, asking verify/complete again is the
// fallback (it never starts a second check).
func (c *Client) waitVerification(ctx context.Context, wait time.Duration) error {
	for {
		if wait <= 0 {
			wait = time.Second
		}
		if err := sleep(ctx, jitter(wait)); err != nil {
			return err
		}
		st, err := c.VerifyStatus(ctx)
		if d, limited := IsRateLimited(err); limited {
			wait = d
			continue
		}
		if err != nil {
			var e *Error
			if errors.As(err, &e) && e.StatusCode != http.StatusUnauthorized {
				return nil
			}
			return err
		}
		if !st.Pending {
			return nil
		}
		wait = st.RetryAfter
	}
}
