// Package moltbook is the verifier's client of the Moltbook API. It makes the
// one call verification needs (GET /agents/profile?name=), parses the answer
// leniently because the live service's field names and shapes have drifted,
// and turns every failure into a typed error the worker can decide on:
// retry (upstream trouble, rate limited), or give a final answer (not found).
package moltbook

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// DefaultBaseURL is Moltbook's API. Always the www host: the bare host
// redirects, and the redirect drops the Authorization header.
const DefaultBaseURL = "https://www.moltbook.com/api/v1"

// Defaults of Options.
const (
	DefaultTimeout = 10 * time.Second
	DefaultMaxBody = 1 << 20
)

// Options configure a Client.
type Options struct {
	// BaseURL is the API root, e.g. DefaultBaseURL (empty: DefaultBaseURL).
	BaseURL string
	// APIKey, if set, is sent as "Authorization: Bearer <key>". Reads need none.
	APIKey string
	// Timeout bounds one request, headers and body (0: DefaultTimeout).
	Timeout time.Duration
	// MaxBody caps the response body read, in bytes (0: DefaultMaxBody). A
	// larger answer is malformed, not a memory problem.
	MaxBody int64
	// Transport, if set, replaces http.DefaultTransport (tests).
	Transport http.RoundTripper
	// UserAgent is sent with every request (empty: "chatr-verifier").
	UserAgent string
}

// Client calls Moltbook. It is safe for concurrent use.
type Client struct {
	profileURL *url.URL
	apiKey     string
	maxBody    int64
	userAgent  string
	http       *http.Client
}

// New checks the options and returns a client.
func New(o Options) (*Client, error) {
	if o.BaseURL == "" {
		o.BaseURL = DefaultBaseURL
	}
	base, err := url.Parse(o.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("while parsing the Moltbook URL %q: %w", o.BaseURL, err)
	}
	if (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" || base.RawQuery != "" || base.Fragment != "" {
		return nil, fmt.Errorf("invalid Moltbook URL %q: want an absolute http(s) URL without query, e.g. %s", o.BaseURL, DefaultBaseURL)
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxBody <= 0 {
		o.MaxBody = DefaultMaxBody
	}
	if o.UserAgent == "" {
		o.UserAgent = "chatr-verifier"
	}
	tr := o.Transport
	if tr == nil {
		tr = http.DefaultTransport
	}
	return &Client{
		profileURL: base.JoinPath("agents", "profile"),
		apiKey:     o.APIKey,
		maxBody:    o.MaxBody,
		userAgent:  o.UserAgent,
		http: &http.Client{Transport: tr, Timeout: o.Timeout,
			// A redirect may stay on Moltbook's own host, a few times: the
			// API key must never be sent, nor a verification decided, by
			// anyone else.
			CheckRedirect: func(req *http.Request, via []*http.Request) error {
				if req.URL.Scheme != base.Scheme || req.URL.Host != base.Host {
					return fmt.Errorf("Moltbook redirected to %s, off its host %s", req.URL.Redacted(), base.Host)
				}
				if len(via) >= maxRedirects {
					return fmt.Errorf("Moltbook redirected more than %d times", maxRedirects)
				}
				return nil
			}},
	}, nil
}

// maxRedirects is how many redirects within Moltbook's host a request follows.
const maxRedirects = 3

// Errors the caller branches on. Use errors.Is / errors.As.
var (
	// ErrNotFound: Moltbook has no agent of that name.
	ErrNotFound = errors.New("moltbook: agent not found")
	// ErrInvalidName: the name cannot be a Moltbook name; no request was made.
	ErrInvalidName = errors.New("moltbook: invalid agent name")
)

// RateLimitedError is a 429. Wait tells how long to hold off: from
// Retry-After, else from X-RateLimit-Reset, else zero (the caller backs off).
type RateLimitedError struct {
	Wait  time.Duration
	Reset time.Time // zero when Moltbook did not say
}

func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("moltbook: rate limited (retry in %s)", e.Wait.Round(time.Millisecond))
}

// UpstreamError is Moltbook failing: a network error, a timeout, a 5xx, or
// an unexpected status. Temporary says whether asking again may help.
type UpstreamError struct {
	Status    int // 0 when no response arrived
	Temporary bool
	Err       error
}

func (e *UpstreamError) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("moltbook: HTTP %d: %v", e.Status, e.Err)
	}
	return fmt.Sprintf("moltbook: %v", e.Err)
}

func (e *UpstreamError) Unwrap() error { return e.Err }

// MalformedError is a 200 answer that cannot be understood (bad JSON, no
// agent, too large). It is retried like an upstream failure.
type MalformedError struct{ Err error }

func (e *MalformedError) Error() string { return "moltbook: malformed response: " + e.Err.Error() }
func (e *MalformedError) Unwrap() error { return e.Err }

// RateLimit is what Moltbook's X-RateLimit-* headers said (zero values when absent).
type RateLimit struct {
	Limit, Remaining int
	HasRemaining     bool
	Reset            time.Time
}

// nameRE is what a Moltbook name can be. Names are validated before they
// reach the URL, and are escaped as a query value anyway, so a name can
// change neither the path nor the query.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// ValidName reports whether name can be looked up.
func ValidName(name string) bool { return nameRE.MatchString(name) }

// Profile fetches the agent's profile and recent posts. The returned
// RateLimit is filled from the response headers on success and failure.
func (c *Client) Profile(ctx context.Context, name string) (*Profile, RateLimit, error) {
	if !ValidName(name) {
		return nil, RateLimit{}, fmt.Errorf("%w: %q", ErrInvalidName, name)
	}
	u := *c.profileURL
	u.RawQuery = url.Values{"name": {name}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, RateLimit{}, fmt.Errorf("while building the Moltbook request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if c.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.apiKey)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			// Our caller gave up (shutdown, lease ending): not Moltbook's fault.
			return nil, RateLimit{}, fmt.Errorf("while asking Moltbook for %q: %w", name, ctx.Err())
		}
		return nil, RateLimit{}, &UpstreamError{Temporary: true, Err: describeNetErr(err)}
	}
	defer resp.Body.Close()
	now := time.Now()
	rl := parseRateLimit(resp.Header, now)
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBody+1))
	if err != nil {
		if ctx.Err() != nil {
			return nil, rl, fmt.Errorf("while reading Moltbook's answer for %q: %w", name, ctx.Err())
		}
		return nil, rl, &UpstreamError{Status: resp.StatusCode, Temporary: true, Err: fmt.Errorf("while reading the body: %w", describeNetErr(err))}
	}
	tooLarge := int64(len(body)) > c.maxBody

	switch {
	case resp.StatusCode == http.StatusOK:
		if tooLarge {
			return nil, rl, &MalformedError{Err: fmt.Errorf("body larger than %d bytes", c.maxBody)}
		}
		p, err := ParseProfile(body)
		if err != nil {
			return nil, rl, &MalformedError{Err: err}
		}
		return p, rl, nil
	case resp.StatusCode == http.StatusNotFound:
		// Moltbook says "no such agent" in its JSON envelope. A 404 that is
		// not its envelope (an HTML page) means the base URL is wrong:
		// answering "user not found" then would mislead every agent.
		if !tooLarge && isErrorEnvelope(body) {
			return nil, rl, fmt.Errorf("%w: %q", ErrNotFound, name)
		}
		return nil, rl, &UpstreamError{Status: resp.StatusCode, Err: errors.New("not Moltbook's error envelope (is the base URL right?)")}
	case resp.StatusCode == http.StatusTooManyRequests:
		return nil, rl, &RateLimitedError{Wait: retryWait(resp.Header, rl, now), Reset: rl.Reset}
	case resp.StatusCode >= 500, resp.StatusCode == http.StatusRequestTimeout:
		return nil, rl, &UpstreamError{Status: resp.StatusCode, Temporary: true, Err: errors.New(snippet(body))}
	default:
		// 400, 401, 403...: asking again the same way will not help.
		return nil, rl, &UpstreamError{Status: resp.StatusCode, Err: errors.New(snippet(body))}
	}
}

// describeNetErr keeps a network error's message short and says "timeout"
// plainly, for last_error and logs.
func describeNetErr(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("timeout: %w", err)
	}
	return err
}

// parseRateLimit reads X-RateLimit-Limit/Remaining/Reset. Reset is epoch
// seconds; a small number is taken as seconds from now (both are seen in
// the wild).
func parseRateLimit(h http.Header, now time.Time) RateLimit {
	var rl RateLimit
	if n, err := strconv.Atoi(strings.TrimSpace(h.Get("X-RateLimit-Limit"))); err == nil {
		rl.Limit = n
	}
	if n, err := strconv.Atoi(strings.TrimSpace(h.Get("X-RateLimit-Remaining"))); err == nil {
		rl.Remaining, rl.HasRemaining = n, true
	}
	if s := strings.TrimSpace(h.Get("X-RateLimit-Reset")); s != "" {
		if f, err := strconv.ParseFloat(s, 64); err == nil && f > 0 && f < 1e11 {
			if f < 1e9 { // seconds from now, not an epoch
				rl.Reset = now.Add(time.Duration(f * float64(time.Second)))
			} else {
				rl.Reset = time.Unix(0, int64(f*1e9))
			}
		}
	}
	return rl
}

// maxWait bounds any wait Moltbook asks for, so a bogus header cannot park
// the fleet for days.
const maxWait = time.Hour

// retryWait decides how long a 429 asks us to wait: Retry-After (seconds or
// an HTTP date) first, else until X-RateLimit-Reset.
func retryWait(h http.Header, rl RateLimit, now time.Time) time.Duration {
	var d time.Duration
	if s := strings.TrimSpace(h.Get("Retry-After")); s != "" {
		if n, err := strconv.ParseFloat(s, 64); err == nil && n >= 0 && n < maxWait.Seconds() {
			d = time.Duration(n * float64(time.Second))
		} else if t, err := http.ParseTime(s); err == nil {
			d = t.Sub(now)
		}
	}
	if d <= 0 && !rl.Reset.IsZero() {
		d = rl.Reset.Sub(now)
	}
	return min(max(d, 0), maxWait)
}

// snippet is the start of an error body, for last_error and logs.
func snippet(body []byte) string {
	s := strings.TrimSpace(string(body))
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	if s == "" {
		return "empty body"
	}
	return strings.ToValidUTF8(s, "?")
}
