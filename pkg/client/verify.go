package client

import (
	"context"
	"encoding/json"
	"fmt"
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

// VerifyStatus tells the state of the agent's verification check: pending
// while it runs, then the check's final answer — a failed check is a
// *Error, as verify/complete would give it.
func (c *Client) VerifyStatus(ctx context.Context) (*VerifyState, error) {
	var out VerifyState
	if _, err := c.call(ctx, http.MethodGet, "/api/verify/status", nil, true, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// VerifyComplete asks the room to check Moltbook for the post with the
// code. The check runs in the background: when the room answers 202 (still
// checking), VerifyComplete waits the time the room asks and polls
// VerifyStatus, which gives the check's final answer once it is over — so
// the caller sees only the contract's outcomes: a *Verification, or a
// *Error (404 no such user or no post with the code, 403 not claimed, 502
// Moltbook failing, ...). It does not ask verify/complete again: once a
// check has ended, that would start another. Give ctx a deadline to bound
// the wait.
func (c *Client) VerifyComplete(ctx context.Context, moltbookName string) (*Verification, error) {
	var raw json.RawMessage
	status, err := c.call(ctx, http.MethodPost, "/api/verify/complete", nil, true, map[string]string{"moltbookName": moltbookName}, &raw)
	if err != nil {
		return nil, err
	}
	for status == http.StatusAccepted || isPending(raw) {
		var pending VerifyState
		if err := json.Unmarshal(raw, &pending); err != nil {
			return nil, err
		}
		wait := pending.RetryAfter
		for {
			if wait <= 0 {
				wait = time.Second
			}
			if err := sleep(ctx, jitter(wait)); err != nil {
				return nil, err
			}
			raw = nil
			status, err = c.call(ctx, http.MethodGet, "/api/verify/status", nil, true, nil, &raw)
			if d, limited := IsRateLimited(err); limited {
				wait = d
				continue
			}
			if err != nil {
				return nil, err
			}
			break
		}
	}
	var out Verification
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, err
	}
	if !out.Verified && !out.AlreadyVerified {
		return nil, fmt.Errorf("chatr: verify answered %d without a result: %.200s", status, raw)
	}
	return &out, nil
}

// isPending tells whether an answer says the check is still running.
func isPending(raw json.RawMessage) bool {
	var st VerifyState
	return json.Unmarshal(raw, &st) == nil && st.Pending
}
