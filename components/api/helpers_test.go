package api

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/chatr-ai/chatr/internal/config"
	"github.com/chatr-ai/chatr/internal/testenv"
)

// testConfig is a room on a fresh schema with the contract's default limits.
func testConfig(t *testing.T) Config {
	t.Helper()
	return Config{
		Common: config.Common{DatabaseURL: testenv.DatabaseURL(), Schema: testenv.Schema(t),
			RedisURL: testenv.RedisURL(), Migrate: true},
		Limits:     config.DefaultLimits(),
		DBMaxConns: 4,
	}
}

// testServer starts an API server on cfg behind an httptest server; both stop
// when the test ends (HTTP first, then the server, as in production).
func testServer(t *testing.T, cfg Config) (*Server, *httptest.Server) {
	t.Helper()
	return testServerLog(t, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

func testServerLog(t *testing.T, cfg Config, log *slog.Logger) (*Server, *httptest.Server) {
	t.Helper()
	srv, err := New(context.Background(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { ts.Close(); srv.Close() })
	return srv, ts
}

// resp is a decoded answer.
type resp struct {
	status int
	header http.Header
	body   map[string]any
	raw    []byte
}

func (r resp) str(k string) string { s, _ := r.body[k].(string); return s }

// call sends one request; headers are "Name: value" strings.
func call(t *testing.T, ts *httptest.Server, method, path, body string, headers ...string) resp {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, ts.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json") // unless a header below says otherwise
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		if k = strings.TrimSpace(k); http.CanonicalHeaderKey(k) == "Content-Type" {
			req.Header.Set(k, strings.TrimSpace(v))
			continue
		}
		req.Header.Add(k, strings.TrimSpace(v))
	}
	res, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := resp{status: res.StatusCode, header: res.Header, raw: raw}
	if method != "HEAD" {
		if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Fatalf("%s %s: Content-Type %q, want JSON; body %s", method, path, ct, raw)
		}
		if err := json.Unmarshal(raw, &r.body); err != nil {
			t.Fatalf("%s %s: body is not a JSON object: %v: %s", method, path, err, raw)
		}
		if r.status >= 400 {
			if r.body["success"] != false || r.str("error") == "" {
				t.Fatalf("%s %s: %d without the error envelope: %s", method, path, r.status, raw)
			}
		} else if r.body["success"] != true {
			t.Fatalf("%s %s: %d without success:true: %s", method, path, r.status, raw)
		}
	}
	return r
}

// want checks an answer's status and, when given, its error string.
func want(t *testing.T, r resp, status int, errMsg string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.raw)
	}
	if errMsg != "" && r.str("error") != errMsg {
		t.Fatalf("error %q, want %q", r.str("error"), errMsg)
	}
}

// agentKey is a registered agent.
type agentKey struct{ id, name, key string }

func (a agentKey) bearer() string { return "Authorization: Bearer " + a.key }

func register(t *testing.T, ts *httptest.Server, name string, headers ...string) agentKey {
	t.Helper()
	r := call(t, ts, "POST", "/api/register", `{"name":"`+name+`"}`, headers...)
	want(t, r, 200, "")
	ag := r.body["agent"].(map[string]any)
	return agentKey{id: ag["id"].(string), name: ag["name"].(string), key: ag["apiKey"].(string)}
}

// makeVerified gives an agent the Moltbook badge, as the verifier would:
// as Moltbook's "molty", or, since a Moltbook account verifies at most one
// agent, as "molty_<id>" when molty already verifies another agent of the room.
func makeVerified(t *testing.T, srv *Server, id string) {
	t.Helper()
	_, err := srv.st.Pool().Exec(context.Background(),
		`UPDATE agents SET moltbook_verified = true, owner_twitter = 'owner',
		   moltbook_name = CASE WHEN EXISTS (SELECT 1 FROM agents WHERE moltbook_name = 'molty' AND id <> $1)
		                        THEN 'molty_' || id::text ELSE 'molty' END
		 WHERE id = $1`, id)
	if err != nil {
		t.Fatal(err)
	}
}

func jsonBody(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func post(t *testing.T, ts *httptest.Server, a agentKey, content string, headers ...string) resp {
	t.Helper()
	return call(t, ts, "POST", "/api/messages", jsonBody(map[string]string{"content": content}), append(headers, a.bearer())...)
}

// syncBuffer collects output written from another goroutine.
type syncBuffer = testenv.SyncBuffer
