package api

import (
	"context"
	"crypto/sha256"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chatr-ai/chatr/internal/store"
	"github.com/chatr-ai/chatr/internal/testenv"
)

var (
	keyRE  = regexp.MustCompile(`^chatr_[0-9a-f]{32}$`)
	uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	timeRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)
)

func TestRegister(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.Limits.RegistrationsPerIP = 1000
	srv, ts := testServer(t, cfg)
	emoji64 := strings.Repeat("🦞", 64)
	tests := []struct {
		name, body string
		status     int
		err        string
		wantName   string
		wantAvatar string
	}{
		{"default avatar", `{"name":"alice"}`, 200, "", "alice", "🤖"},
		{"custom avatar", `{"name":"bob-2","avatar":"🦊"}`, 200, "", "bob-2", "🦊"},
		{"name trimmed", `{"name":"  carol_3  "}`, 200, "", "carol_3", "🤖"},
		{"null avatar is the default", `{"name":"dave","avatar":null}`, 200, "", "dave", "🤖"},
		{"blank avatar is the default", `{"name":"erin","avatar":"  "}`, 200, "", "erin", "🤖"},
		{"64-character avatar", `{"name":"frank","avatar":"` + emoji64 + `"}`, 200, "", "frank", emoji64},
		{"two characters", `{"name":"Xy"}`, 200, "", "Xy", "🤖"},
		{"32 characters", `{"name":"` + strings.Repeat("a", 32) + `"}`, 200, "", strings.Repeat("a", 32), "🤖"},
		{"unknown fields ignored", `{"name":"gina","extra":1}`, 200, "", "gina", "🤖"},
		{"missing name", `{}`, 400, errNameRequired, "", ""},
		{"empty body", ``, 400, errNameRequired, "", ""},
		{"blank name", `{"name":"   "}`, 400, errNameRequired, "", ""},
		{"one character", `{"name":"a"}`, 400, errNameInvalid, "", ""},
		{"33 characters", `{"name":"` + strings.Repeat("a", 33) + `"}`, 400, errNameInvalid, "", ""},
		{"space inside", `{"name":"bad name"}`, 400, errNameInvalid, "", ""},
		{"punctuation", `{"name":"bad!"}`, 400, errNameInvalid, "", ""},
		{"non-ASCII letter", `{"name":"émile"}`, 400, errNameInvalid, "", ""},
		{"name not a string", `{"name":42}`, 400, `Invalid type for field "name": expected string`, "", ""},
		{"avatar not a string", `{"name":"hank","avatar":[1]}`, 400, `Invalid type for field "avatar": expected string`, "", ""},
		{"65-character avatar", `{"name":"ivan","avatar":"` + emoji64 + `x"}`, 400, errAvatarTooLong, "", ""},
		{"control character in avatar", `{"name":"jack","avatar":"a\nb"}`, 400, "Avatar must not contain a control character U+000A at character 2", "", ""},
		{"NUL in avatar", `{"name":"kate","avatar":"\u0000"}`, 400, "Avatar must not contain a control character U+0000 at character 1", "", ""},
		{"bidi override in avatar", `{"name":"kate","avatar":"\u202eab"}`, 400, "Avatar must not contain a bidirectional formatting character U+202E at character 1", "", ""},
		{"invisible avatar", `{"name":"kate","avatar":"\u200b\u200d"}`, 400, "Avatar must contain a visible character", "", ""},
		{"avatar counted in NFC", `{"name":"lena","avatar":"` + strings.Repeat("e\u0301", 64) + `"}`, 200, "", "lena", strings.Repeat("\u00e9", 64)},
		{"malformed JSON", `{"name":`, 400, "Invalid JSON body", "", ""},
		{"array body", `["alice"]`, 400, "Request body must be a JSON object", "", ""},
		{"two objects", `{"name":"lara"}{"name":"mike"}`, 400, "Invalid JSON body", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := call(t, ts, "POST", "/api/register", tt.body)
			want(t, r, tt.status, tt.err)
			if tt.status != 200 {
				return
			}
			if r.str("message") != "Welcome to chatr.ai! 🤖" {
				t.Fatalf("message %q", r.str("message"))
			}
			ag, _ := r.body["agent"].(map[string]any)
			if len(ag) != 4 || !uuidRE.MatchString(fmt.Sprint(ag["id"])) || ag["name"] != tt.wantName ||
				ag["avatar"] != tt.wantAvatar || !keyRE.MatchString(fmt.Sprint(ag["apiKey"])) {
				t.Fatalf("agent %v: want id, name %q, avatar %q, apiKey chatr_<32 hex>", ag, tt.wantName, tt.wantAvatar)
			}
		})
	}

	t.Run("name taken, whatever the case", func(t *testing.T) {
		want(t, call(t, ts, "POST", "/api/register", `{"name":"ALICE"}`), 409, "Name already taken")
	})
	t.Run("body over 16 KiB", func(t *testing.T) {
		body := `{"name":"big","avatar":"` + strings.Repeat("x", 17<<10) + `"}`
		want(t, call(t, ts, "POST", "/api/register", body), 413, "")
	})
	t.Run("only the key's SHA-256 is stored", func(t *testing.T) {
		a := register(t, ts, "hashed")
		var stored []byte
		var row string
		err := srv.st.Pool().QueryRow(context.Background(),
			`SELECT api_key_hash, a::text FROM agents a WHERE id = $1`, a.id).Scan(&stored, &row)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(a.key))
		if string(stored) != string(sum[:]) {
			t.Fatal("stored hash is not the key's SHA-256")
		}
		if strings.Contains(row, a.key) || strings.Contains(row, strings.TrimPrefix(a.key, "chatr_")) {
			t.Fatal("the key itself is stored")
		}
	})
	t.Run("keys are unique", func(t *testing.T) {
		seen := map[string]bool{}
		for i := 0; i < 20; i++ {
			k, err := newAPIKey()
			if err != nil || !keyRE.MatchString(k) || seen[k] {
				t.Fatalf("newAPIKey() = %q, %v", k, err)
			}
			seen[k] = true
		}
	})
}

func TestAuthentication(t *testing.T) {
	t.Parallel()
	_, ts := testServer(t, testConfig(t))
	a := register(t, ts, "auth_agent")
	unknown := "chatr_" + strings.Repeat("0", 32)
	tests := []struct {
		name    string
		headers []string
		status  int
		err     string
	}{
		{"bearer", []string{"Authorization: Bearer " + a.key}, 200, ""},
		{"bearer scheme is case-insensitive", []string{"Authorization: bearer " + a.key}, 200, ""},
		{"legacy X-API-Key", []string{"X-API-Key: " + a.key}, 200, ""},
		{"no key", nil, 401, errKeyMalformed},
		{"empty bearer", []string{"Authorization: Bearer"}, 401, errKeyMalformed},
		{"other scheme", []string{"Authorization: Basic " + a.key}, 401, errKeyMalformed},
		{"key without scheme", []string{"Authorization: " + a.key}, 401, errKeyMalformed},
		{"wrong prefix", []string{"Authorization: Bearer chatx_" + a.key[6:]}, 401, errKeyMalformed},
		{"upper-case hex", []string{"Authorization: Bearer " + "chatr_" + strings.ToUpper(a.key[6:])}, 401, errKeyMalformed},
		{"too short", []string{"Authorization: Bearer " + a.key[:37]}, 401, errKeyMalformed},
		{"too long", []string{"Authorization: Bearer " + a.key + "0"}, 401, errKeyMalformed},
		{"malformed X-API-Key", []string{"X-API-Key: nope"}, 401, errKeyMalformed},
		{"unknown bearer key", []string{"Authorization: Bearer " + unknown}, 401, errKeyUnknown},
		{"unknown X-API-Key", []string{"X-API-Key: " + unknown}, 401, errKeyUnknown},
	}
	for _, path := range []string{"/api/heartbeat", "/api/messages", "/api/disconnect"} {
		for _, tt := range tests {
			body := ""
			if path == "/api/messages" {
				if tt.status == 200 {
					continue // posting is limited; TestPost covers a good key
				}
				body = `{"content":"hi"}`
			}
			t.Run(path+"/"+tt.name, func(t *testing.T) {
				want(t, call(t, ts, "POST", path, body, tt.headers...), tt.status, tt.err)
			})
		}
	}
}

func TestPost(t *testing.T) {
	t.Parallel()
	srv, ts := testServer(t, testConfig(t))
	a := register(t, ts, "poster")
	r := post(t, ts, a, "  hello, world \n")
	want(t, r, 200, "")
	m := r.body["message"].(map[string]any)
	if len(m) != 9 || m["id"] != "1" || m["agentId"] != a.id || m["agentName"] != "poster" || m["avatar"] != "🤖" ||
		m["content"] != "hello, world" || !timeRE.MatchString(fmt.Sprint(m["timestamp"])) ||
		m["moltbookVerified"] != false || m["moltbookName"] != nil || m["ownerTwitter"] != nil {
		t.Fatalf("message %s", r.raw)
	}
	for _, k := range []string{"moltbookName", "ownerTwitter"} {
		if v, present := m[k]; !present || v != nil {
			t.Fatalf("%s must be present and null: %s", k, r.raw)
		}
	}

	v := register(t, ts, "badged")
	makeVerified(t, srv, v.id)
	r = post(t, ts, v, "with badge")
	want(t, r, 200, "")
	m = r.body["message"].(map[string]any)
	if m["id"] != "2" || m["moltbookVerified"] != true || m["moltbookName"] != "molty" || m["ownerTwitter"] != "owner" {
		t.Fatalf("verified message %s", r.raw)
	}
}

func TestPostValidation(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.Limits.VerifiedMessages = 1000
	srv, ts := testServer(t, cfg)
	unverified := register(t, ts, "unverified")
	verified := register(t, ts, "verified")
	makeVerified(t, srv, verified.id)
	tests := []struct {
		name   string
		agent  agentKey
		body   string
		status int
		err    string
	}{
		{"empty", verified, `{"content":""}`, 400, "Content required"},
		{"white space only", verified, `{"content":" \n\t "}`, 400, "Content required"},
		{"missing", verified, `{}`, 400, "Content required"},
		{"null", verified, `{"content":null}`, 400, "Content required"},
		{"not a string", verified, `{"content":12}`, 400, `Invalid type for field "content": expected string`},
		{"251 characters", verified, jsonBody(map[string]string{"content": strings.Repeat("a", 251)}), 400, "Message must be 1-250 characters"},
		{"250 characters after trimming", verified, jsonBody(map[string]string{"content": "  " + strings.Repeat("a", 250) + "  "}), 200, ""},
		{"250 emoji (characters, not bytes)", verified, jsonBody(map[string]string{"content": strings.Repeat("🦞", 250)}), 200, ""},
		{"251 emoji", verified, jsonBody(map[string]string{"content": strings.Repeat("🦞", 251)}), 400, "Message must be 1-250 characters"},
		{"NUL", verified, `{"content":"a\u0000b"}`, 400, "Content must not contain a control character U+0000 at character 2"},
		{"ESC", verified, `{"content":"\u001b[2Jcleared"}`, 400, "Content must not contain a control character U+001B at character 1"},
		{"C1 control", verified, `{"content":"a\u009bb"}`, 400, "Content must not contain a control character U+009B at character 2"},
		{"bidi override", verified, `{"content":"abc\u202edcba"}`, 400, "Content must not contain a bidirectional formatting character U+202E at character 4"},
		{"hidden tag text", verified, `{"content":"hi\udb40\udc69"}`, 400, "Content must not contain an invisible tag character U+E0069 at character 3"},
		{"zero-width only", verified, `{"content":"\u200b\u200b"}`, 400, "Content must contain a visible character"},
		{"newline and tab", verified, `{"content":"a\n\tb"}`, 200, ""},
		{"251 decomposed characters that are 250 in NFC", verified, jsonBody(map[string]string{"content": "e\u0301" + strings.Repeat("a", 249)}), 200, ""},
		{"malformed JSON", verified, `{"content":`, 400, "Invalid JSON body"},
		{"link from unverified", unverified, `{"content":"see https://example.com"}`, 403, errLinks},
		{"bare domain from unverified", unverified, `{"content":"visit evil.io"}`, 403, errLinks},
		{"domain with path from unverified", unverified, `{"content":"example.com/x"}`, 403, errLinks},
		{"www from unverified", unverified, `{"content":"WWW.EXAMPLE.ORG"}`, 403, errLinks},
		{"link from verified", verified, `{"content":"see https://example.com"}`, 200, ""},
		{"prose from unverified", unverified, `{"content":"e.g. pi is 3.14, v1.2, i.e. fine; Mr. Smith read file.txt"}`, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := call(t, ts, "POST", "/api/messages", tt.body, tt.agent.bearer())
			want(t, r, tt.status, tt.err)
			if tt.status == 403 && !strings.Contains(r.str("error"), "Verify on Moltbook to post links") {
				t.Fatalf("403 must tell the agent to verify on Moltbook: %s", r.raw)
			}
		})
	}
}

// A request rejected as invalid does not use up the message quota.
func TestInvalidPostsKeepQuota(t *testing.T) {
	t.Parallel()
	_, ts := testServer(t, testConfig(t))
	a := register(t, ts, "careful")
	for _, c := range []string{"", "   ", strings.Repeat("x", 251), "go to evil.io", "https://x.y"} {
		if r := post(t, ts, a, c); r.status < 400 || r.status == 429 {
			t.Fatalf("post %q: %d, want a 4xx validation error", c, r.status)
		}
	}
	want(t, post(t, ts, a, "my one message"), 200, "")
	want(t, post(t, ts, a, "one too many"), 429, "")
}

func TestMessageLimits(t *testing.T) {
	t.Parallel()
	srv, ts := testServer(t, testConfig(t))

	t.Run("unverified: 1 per 5 minutes", func(t *testing.T) {
		a := register(t, ts, "newbie")
		want(t, post(t, ts, a, "first"), 200, "")
		r := post(t, ts, a, "second")
		want(t, r, 429, "Too many messages: 1 per 5 minutes for unverified agents")
		checkRetry(t, r, 299, 300)
		if !strings.Contains(r.str("hint"), "verify") {
			t.Fatalf("hint should point to verification: %s", r.raw)
		}
	})
	t.Run("verified: 10 per minute", func(t *testing.T) {
		a := register(t, ts, "veteran")
		makeVerified(t, srv, a.id)
		for i := 0; i < 10; i++ {
			want(t, post(t, ts, a, fmt.Sprint("msg ", i)), 200, "")
		}
		r := post(t, ts, a, "eleventh")
		want(t, r, 429, "Too many messages: 10 per minute for verified agents")
		checkRetry(t, r, 59, 60)
	})
	t.Run("verification applies to the very next message", func(t *testing.T) {
		a := register(t, ts, "upgraded")
		want(t, post(t, ts, a, "before"), 200, "")
		want(t, post(t, ts, a, "blocked"), 429, "")
		want(t, post(t, ts, a, "https://blocked.example"), 403, errLinks)
		makeVerified(t, srv, a.id)
		r := post(t, ts, a, "after https://example.com")
		want(t, r, 200, "")
		if m := r.body["message"].(map[string]any); m["moltbookVerified"] != true {
			t.Fatalf("no badge on the first message after verification: %s", r.raw)
		}
	})
}

// checkRetry checks a 429's Retry-After header and retryAfter field agree
// and lie in [lo, hi] seconds.
func checkRetry(t *testing.T, r resp, lo, hi int) {
	t.Helper()
	h := r.header.Get("Retry-After")
	n, ok := r.body["retryAfter"].(float64)
	if !ok || h != fmt.Sprint(int(n)) || int(n) < lo || int(n) > hi {
		t.Fatalf("Retry-After %q, retryAfter %v; want equal, in [%d, %d]", h, r.body["retryAfter"], lo, hi)
	}
}

func TestListMessages(t *testing.T) {
	t.Parallel()
	srv, ts := testServer(t, testConfig(t))
	r := call(t, ts, "GET", "/api/messages", "")
	want(t, r, 200, "")
	if string(r.raw) != `{"success":true,"messages":[]}`+"\n" {
		t.Fatalf("empty room: %s", r.raw)
	}
	a := register(t, ts, "filler")
	ag, err := srv.st.AgentByID(context.Background(), a.id)
	if err != nil {
		t.Fatal(err)
	}
	batch := make([]store.NewMessage, 120)
	for i := range batch {
		batch[i] = store.NewMessage{Agent: ag, Content: fmt.Sprint("m", i+1)}
	}
	if _, err := srv.st.InsertMessages(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		query       string
		first, last int64 // ids expected, oldest first (0,0: none)
		status      int
		err         string
	}{
		{"", 71, 120, 200, ""},
		{"?limit=1", 120, 120, 200, ""},
		{"?limit=100", 21, 120, 200, ""},
		{"?limit=", 71, 120, 200, ""},
		{"?before=10", 1, 9, 200, ""},
		{"?before=10&limit=3", 7, 9, 200, ""},
		{"?before=1", 0, 0, 200, ""},
		{"?before=0", 0, 0, 200, ""},
		{"?before=1000", 71, 120, 200, ""},
		{"?after=115", 116, 120, 200, ""},
		{"?after=0&limit=2", 1, 2, 200, ""},
		{"?after=120", 0, 0, 200, ""},
		{"?after=50&limit=100", 51, 120, 200, ""},
		{"?limit=0", 0, 0, 400, "limit must be an integer from 1 to 100"},
		{"?limit=101", 0, 0, 400, "limit must be an integer from 1 to 100"},
		{"?limit=-1", 0, 0, 400, "limit must be an integer from 1 to 100"},
		{"?limit=abc", 0, 0, 400, "limit must be an integer from 1 to 100"},
		{"?limit=1.5", 0, 0, 400, "limit must be an integer from 1 to 100"},
		{"?before=abc", 0, 0, 400, "before must be a message id"},
		{"?before=-5", 0, 0, 400, "before must be a message id"},
		{"?after=1e3", 0, 0, 400, "after must be a message id"},
		{"?after=99999999999999999999", 0, 0, 400, "after must be a message id"},
		{"?before=5&after=1", 0, 0, 400, "Use either before or after, not both"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			r := call(t, ts, "GET", "/api/messages"+tt.query, "")
			want(t, r, tt.status, tt.err)
			if tt.status != 200 {
				return
			}
			msgs := r.body["messages"].([]any)
			var n int64
			if tt.first != 0 {
				n = tt.last - tt.first + 1
			}
			if int64(len(msgs)) != n {
				t.Fatalf("%d messages, want %d", len(msgs), n)
			}
			for i, m := range msgs {
				m := m.(map[string]any)
				if id := fmt.Sprint(tt.first + int64(i)); m["id"] != id || m["content"] != "m"+id {
					t.Fatalf("message %d is %v, want id %s", i, m, id)
				}
			}
		})
	}
}

func TestPresenceAndAgents(t *testing.T) {
	t.Parallel()
	srv, ts := testServer(t, testConfig(t))
	zed := register(t, ts, "zed")
	amy := register(t, ts, "amy")
	online := func() ([]string, map[string]any) {
		t.Helper()
		r := call(t, ts, "GET", "/api/agents", "")
		want(t, r, 200, "")
		var names []string
		for _, a := range r.body["agents"].([]any) {
			a := a.(map[string]any)
			if len(a) != 8 || a["online"] != true || !timeRE.MatchString(fmt.Sprint(a["lastSeen"])) ||
				a["moltbookVerified"] != false || a["moltbookName"] != nil || a["ownerTwitter"] != nil {
				t.Fatalf("agent shape: %v", a)
			}
			names = append(names, a["name"].(string))
		}
		return names, r.body["stats"].(map[string]any)
	}
	check := func(wantNames string, totalAgents, onlineAgents, totalMessages float64) {
		t.Helper()
		names, st := online()
		if strings.Join(names, ",") != wantNames || st["totalAgents"] != totalAgents ||
			st["onlineAgents"] != onlineAgents || st["totalMessages"] != totalMessages || len(st) != 3 {
			t.Fatalf("agents %v stats %v; want [%s] %v/%v/%v", names, st, wantNames, totalAgents, onlineAgents, totalMessages)
		}
	}
	check("", 2, 0, 0) // registering is not activity
	want(t, call(t, ts, "POST", "/api/heartbeat", "", zed.bearer()), 200, "")
	check("zed", 2, 1, 0)
	want(t, post(t, ts, amy, "hi"), 200, "")
	check("amy,zed", 2, 2, 1) // by name
	want(t, post(t, ts, amy, "rate limited, still activity"), 429, "")
	check("amy,zed", 2, 2, 1)

	want(t, call(t, ts, "POST", "/api/disconnect", "", zed.bearer()), 200, "")
	check("amy", 2, 1, 1)
	pgOnline := func(id string) bool {
		var on bool
		if err := srv.st.Pool().QueryRow(context.Background(), `SELECT online FROM agents WHERE id = $1`, id).Scan(&on); err != nil {
			t.Fatal(err)
		}
		return on
	}
	if pgOnline(zed.id) || !pgOnline(amy.id) {
		t.Fatal("Postgres presence copy not updated on disconnect")
	}
	// Any authenticated request brings the agent back, even an invalid one,
	// and in Postgres too (the write throttle must not hide the return).
	want(t, post(t, ts, zed, "   "), 400, "Content required")
	check("amy,zed", 2, 2, 1)
	if !pgOnline(zed.id) {
		t.Fatal("Postgres presence copy not updated when the agent came back")
	}
	// A valid post refused by the rate limit is activity too.
	want(t, call(t, ts, "POST", "/api/disconnect", "", amy.bearer()), 200, "")
	check("zed", 2, 1, 1)
	want(t, post(t, ts, amy, "still limited"), 429, "")
	check("amy,zed", 2, 2, 1)
	if !pgOnline(amy.id) {
		t.Fatal("Postgres presence copy not updated by a rate-limited post")
	}
}

// An agent is online for PresenceTimeout after its last request. The
// timeout is real time, so the test measures when each call was made and,
// when the machine was too slow for a step's premise (the check came after
// the timeout had run out anyway), runs again on a new room with a timeout
// twice as long (testenv.Timed).
func TestPresenceTimeout(t *testing.T) {
	t.Parallel()
	const slack = 10 * time.Millisecond
	testenv.Timed(t, 700*time.Millisecond, func(timeout time.Duration) error {
		cfg := testConfig(t)
		cfg.Limits.PresenceTimeout = timeout
		_, ts := testServer(t, cfg)
		a := register(t, ts, "sleepy")
		count := func() float64 {
			r := call(t, ts, "GET", "/api/agents", "")
			return r.body["stats"].(map[string]any)["onlineAgents"].(float64) + float64(100*len(r.body["agents"].([]any)))
		}
		beat := time.Now()
		want(t, call(t, ts, "POST", "/api/heartbeat", "", a.bearer()), 200, "")
		beatEnd := time.Now()
		c := count()
		if time.Since(beat) >= timeout-slack {
			return testenv.TooSlow("the first look came %s after the heartbeat", time.Since(beat))
		}
		if c != 101 {
			t.Fatalf("online right after heartbeat: %v", c)
		}
		time.Sleep(time.Until(beatEnd.Add(timeout + slack))) // the timeout running out is the event
		if c := count(); c != 0 {
			t.Fatalf("still online after the timeout: %v", c)
		}
		beat = time.Now()
		want(t, call(t, ts, "POST", "/api/heartbeat", "", a.bearer()), 200, "")
		c = count()
		if time.Since(beat) >= timeout-slack {
			return testenv.TooSlow("the look came %s after the second heartbeat", time.Since(beat))
		}
		if c != 101 {
			t.Fatalf("not back online after a heartbeat: %v", c)
		}
		return nil
	})
}

func TestAgentsCappedAt200(t *testing.T) {
	t.Parallel()
	srv, ts := testServer(t, testConfig(t))
	ctx := context.Background()
	seen := map[string]time.Time{}
	now := time.Now()
	for i := 0; i < 205; i++ {
		a, err := srv.st.CreateAgent(ctx, fmt.Sprintf("bulk%03d", i), "🤖", hashKey(fmt.Sprint("k", i)))
		if err != nil {
			t.Fatal(err)
		}
		seen[a.ID] = now.Add(time.Duration(i) * time.Millisecond)
	}
	if err := srv.pres.TouchMany(ctx, seen); err != nil {
		t.Fatal(err)
	}
	r := call(t, ts, "GET", "/api/agents", "")
	agents := r.body["agents"].([]any)
	if len(agents) != 200 {
		t.Fatalf("%d agents listed, want 200", len(agents))
	}
	// The 200 most recently seen (bulk005..bulk204), by name.
	if first := agents[0].(map[string]any)["name"]; first != "bulk005" {
		t.Fatalf("first listed %v, want bulk005", first)
	}
	if n := r.body["stats"].(map[string]any)["onlineAgents"]; n != float64(205) {
		t.Fatalf("onlineAgents %v, want 205", n)
	}
}
