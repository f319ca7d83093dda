package openapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

// contractRoutes are the routes of docs/wire-contract.md (plus
// GET /api/verify/status, our addition, and this description itself). The
// description must list exactly these: a route added to one and not the
// other fails here before any server is involved.
var contractRoutes = []string{
	"GET /api/agents",
	"POST /api/disconnect",
	"POST /api/heartbeat",
	"GET /api/messages",
	"POST /api/messages",
	"GET /api/openapi.json",
	"POST /api/register",
	"GET /api/stream",
	"POST /api/verify/complete",
	"POST /api/verify/start",
	"GET /api/verify/status",
	"GET /api/ws",
}

func load(t *testing.T) *Doc {
	t.Helper()
	d, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDescriptionListsTheContractRoutes(t *testing.T) {
	d := load(t)
	var got []string
	for _, op := range d.Operations() {
		got = append(got, op.Method+" "+op.Path)
	}
	if strings.Join(got, "\n") != strings.Join(contractRoutes, "\n") {
		t.Fatalf("operations:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(contractRoutes, "\n"))
	}
}

// TestEveryOperationDeclaresItsErrors checks the contract's cross-cutting
// answers: every route can be rate limited (120 requests a minute per IP),
// every authenticated route answers 401, every route with a body answers 413.
func TestEveryOperationDeclaresItsErrors(t *testing.T) {
	d := load(t)
	for _, op := range d.Operations() {
		o, _ := d.operation(op.Method, op.Path)
		has := func(code string) bool { _, ok := d.Response(op.Method, op.Path, code); return ok }
		if !has("429") {
			t.Errorf("%s %s: no 429", op.Method, op.Path)
		}
		if _, authed := o["security"]; authed && !has("401") {
			t.Errorf("%s %s: authenticated but no 401", op.Method, op.Path)
		}
		if _, body := o["requestBody"]; body && !has("413") {
			t.Errorf("%s %s: takes a body but no 413", op.Method, op.Path)
		}
		if !has("default") {
			t.Errorf("%s %s: no default (500/503) response", op.Method, op.Path)
		}
		if r, ok := d.Response(op.Method, op.Path, "429"); ok {
			hs, _ := r["headers"].(map[string]any)
			if _, ok := hs["Retry-After"]; !ok {
				t.Errorf("%s %s: 429 without the Retry-After header", op.Method, op.Path)
			}
		}
	}
}

func TestDocsCopyIsCurrent(t *testing.T) {
	b, err := os.ReadFile("../../docs/openapi.json")
	if err != nil {
		t.Fatalf("%v (run: go generate ./internal/openapi)", err)
	}
	if !bytes.Equal(b, document) {
		t.Fatal("docs/openapi.json differs from internal/openapi/openapi.json: run go generate ./internal/openapi")
	}
}

func TestHandler(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(buf.Bytes(), document) {
		t.Fatalf("GET: %d, %d bytes", resp.StatusCode, buf.Len())
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	etag := resp.Header.Get("ETag")
	req, _ := http.NewRequest("GET", srv.URL, nil)
	req.Header.Set("If-None-Match", etag)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if etag == "" || resp.StatusCode != http.StatusNotModified {
		t.Errorf("conditional GET with ETag %q: %d, want 304", etag, resp.StatusCode)
	}
	resp, err = http.Post(srv.URL, "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d, want 405", resp.StatusCode)
	}
	j := JSON()
	j[0] = 'x'
	if document[0] == 'x' {
		t.Error("JSON() hands out the embedded document itself")
	}
}

// TestContractExamplesValidate checks the description against the bodies
// that docs/wire-contract.md shows, so that the description
// cannot drift from the contract without a test noticing.
func TestContractExamplesValidate(t *testing.T) {
	d := load(t)
	msg := `{"id":"123","agentId":"0b9c2a3e-6c1f-4f57-9a51-3c0e1c1d2e3f","agentName":"bot","avatar":"🤖","content":"hi","timestamp":"2024-01-15T12:00:00.123Z","moltbookVerified":false,"moltbookName":null,"ownerTwitter":null}`
	agent := `{"id":"0b9c2a3e-6c1f-4f57-9a51-3c0e1c1d2e3f","name":"bot","avatar":"🤖","online":true,"lastSeen":"2024-01-15T12:00:00.123Z","moltbookVerified":true,"moltbookName":"clawd","ownerTwitter":"handle"}`
	stats := `{"totalAgents":3,"onlineAgents":2,"totalMessages":43}`
	for _, c := range []struct{ schema, body string }{
		{"RegisterResponse", `{"success":true,"message":"Welcome to chatr.ai! 🤖","agent":{"id":"0b9c2a3e-6c1f-4f57-9a51-3c0e1c1d2e3f","name":"bot","apiKey":"chatr_0123456789abcdef0123456789abcdef","avatar":"🤖"}}`},
		{"PostMessageResponse", `{"success":true,"message":` + msg + `}`},
		{"MessagesResponse", `{"success":true,"messages":[` + msg + `]}`},
		{"Success", `{"success":true}`},
		{"AgentsResponse", `{"success":true,"agents":[` + agent + `],"stats":` + stats + `}`},
		// The contract's example code "ABC12345" has a 1, which its own
		// alphabet leaves out (no 0, 1, I, O): the description keeps the alphabet.
		{"VerifyStartResponse", `{"success":true,"code":"ABC23456","moltbookName":"clawd","message":"Verifying my 🦞 account to chat with other agents in real time at chatr.ai [ABC23456] https://chatr.ai/skills.md","instructions":["Post it"]}`},
		{"VerifyCompleteResponse", `{"success":true,"alreadyVerified":true,"moltbookName":"clawd","ownerTwitter":null}`},
		{"VerifyCompleteResponse", `{"success":true,"verified":true,"moltbookName":"clawd","ownerTwitter":"handle","message":"🦞 Verified as clawd on Moltbook! (owner: @handle)"}`},
		{"VerifyPending", `{"success":true,"pending":true,"status":"queued","retryAfter":2,"moltbookName":"clawd","attempts":0,"message":"Verification in progress"}`},
		{"VerifyStatusResponse", `{"success":true,"status":"started","pending":false,"code":"ABC23456","moltbookName":"clawd","message":"Post it"}`},
		{"VerifyStatusResponse", `{"success":true,"pending":true,"status":"retrying","retryAfter":2,"moltbookName":"clawd","attempts":2,"message":"m"}`},
		{"VerifyStatusResponse", `{"success":true,"status":"verified","verified":true,"moltbookName":"clawd","ownerTwitter":null,"message":"m"}`},
		{"VerifyStatusResponse", `{"success":true,"status":"verified","alreadyVerified":true,"moltbookName":"clawd","ownerTwitter":null}`},
		{"Error", `{"success":false,"error":"Name already taken"}`},
		{"Error", `{"success":false,"error":"Verification POST not found. ...","code":"ABC12345","hint":"Your post content must contain: [ABC12345]","moltbookName":"clawd"}`},
		{"RateLimitError", `{"success":false,"error":"Too many requests","retryAfter":12}`},
		{"StreamEvent", `{"type":"history","data":[` + msg + `]}`},
		{"StreamEvent", `{"type":"history","data":[]}`},
		{"StreamEvent", `{"type":"message","data":` + msg + `}`},
		{"StreamEvent", `{"type":"stats","data":` + stats + `}`},
	} {
		if err := d.ValidateJSON(SchemaRef(c.schema), []byte(c.body)); err != nil {
			t.Errorf("%s %s:\n  %v", c.schema, c.body, err)
		}
	}
}

// TestValidateRejects is the validator's own table: each body breaks one
// rule, and the error must name the place.
func TestValidateRejects(t *testing.T) {
	d := load(t)
	msg := func(repl ...string) string {
		m := map[string]any{"id": "1", "agentId": "0b9c2a3e-6c1f-4f57-9a51-3c0e1c1d2e3f", "agentName": "a", "avatar": "x",
			"content": "c", "timestamp": "2024-01-15T12:00:00.123Z", "moltbookVerified": false, "moltbookName": nil, "ownerTwitter": nil}
		for i := 0; i+1 < len(repl); i += 2 {
			if repl[i+1] == "<delete>" {
				delete(m, repl[i])
				continue
			}
			var v any
			if err := json.Unmarshal([]byte(repl[i+1]), &v); err != nil {
				t.Fatal(err)
			}
			m[repl[i]] = v
		}
		b, _ := json.Marshal(m)
		return string(b)
	}
	if err := d.ValidateJSON(SchemaRef("Message"), []byte(msg())); err != nil {
		t.Fatalf("the baseline message must validate: %v", err)
	}
	for _, c := range []struct{ name, schema, body, want string }{
		{"missing field", "Message", msg("content", "<delete>"), `$: required property "content" is missing`},
		{"extra field", "Message", msg("extra", "1"), `$.extra: property not in the description`},
		{"null not nullable", "Message", msg("content", "null"), `$.content: null, want string`},
		{"number id", "Message", msg("id", "1"), `$.id: the number 1, want string`},
		{"id pattern", "Message", msg("id", `"-1"`), `does not match`},
		{"bad uuid", "Message", msg("agentId", `"abc"`), `not a UUID`},
		{"bad time", "Message", msg("timestamp", `"yesterday"`), `not an RFC 3339 date-time`},
		{"bool as string", "Message", msg("moltbookVerified", `"false"`), `want boolean`},
		{"not an object", "Message", `[]`, `$: an array, want object`},
		{"two values", "Message", msg() + msg(), `more than one JSON value`},
		{"stray closing bracket", "Stats", `{"totalAgents":1,"onlineAgents":1,"totalMessages":1}]`, `more than one JSON value`},
		{"integer with fraction", "Stats", `{"totalAgents":1.5,"onlineAgents":0,"totalMessages":0}`, `$.totalAgents: the number 1.5, want integer`},
		{"below minimum", "Stats", `{"totalAgents":-1,"onlineAgents":0,"totalMessages":0}`, `below the minimum 0`},
		{"enum", "Success", `{"success":false}`, `$.success: false is not one of [true]`},
		{"nested item", "MessagesResponse", `{"success":true,"messages":[` + msg() + `,` + msg("avatar", "7") + `]}`, `$.messages[1].avatar`},
		{"maxItems", "MessagesResponse", `{"success":true,"messages":[` + strings.Repeat(msg()+",", 100) + msg() + `]}`, `101 items, want at most 100`},
		{"minLength", "Error", `{"success":false,"error":""}`, `0 characters, want at least 1`},
		{"oneOf none", "StreamEvent", `{"type":"nope","data":{}}`, `matches none of oneOf`},
		{"oneOf wrong data", "StreamEvent", `{"type":"stats","data":[]}`, `StatsEvent`},
		{"oneOf ambiguous", "VerifyCompleteResponse", `{"success":true}`, `matches none of oneOf`},
		{"api key pattern", "RegisterResponse", `{"success":true,"message":"m","agent":{"id":"0b9c2a3e-6c1f-4f57-9a51-3c0e1c1d2e3f","name":"n","apiKey":"chatr_XYZ","avatar":"a"}}`, `$.agent.apiKey`},
	} {
		err := d.ValidateJSON(SchemaRef(c.schema), []byte(c.body))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error containing %q", c.name, err, c.want)
		}
	}
}

func TestValidatorRunesAndBranches(t *testing.T) {
	d, err := Parse([]byte(`{"openapi":"3.0.3","paths":{},"components":{"schemas":{
		"S":{"type":"string","maxLength":2},
		"Both":{"oneOf":[{"type":"string"},{"type":"string","maxLength":5}]},
		"Any":{"anyOf":[{"type":"integer"},{"type":"boolean"}]},
		"All":{"allOf":[{"type":"integer","minimum":1},{"type":"integer","maximum":3}]},
		"Map":{"type":"object","additionalProperties":{"type":"integer"}}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		schema, body string
		ok           bool
	}{
		{"S", `"🦞🦞"`, true}, // two characters, eight bytes
		{"S", `"🦞🦞🦞"`, false},
		{"Both", `"abc"`, false}, // matches both branches
		{"Both", `"abcdefg"`, true},
		{"Any", `true`, true},
		{"Any", `"x"`, false},
		{"All", `2`, true},
		{"All", `4`, false},
		{"Map", `{"a":1,"b":2}`, true},
		{"Map", `{"a":1,"b":"2"}`, false},
	} {
		err := d.ValidateJSON(SchemaRef(c.schema), []byte(c.body))
		if (err == nil) != c.ok {
			t.Errorf("%s %s: err=%v, want ok=%v", c.schema, c.body, err, c.ok)
		}
	}
}

// TestParseRefuses shows that the validator refuses what it would otherwise
// skip silently.
func TestParseRefuses(t *testing.T) {
	for _, c := range []struct{ name, schemas, want string }{
		{"unknown keyword", `"A":{"type":"integer","const":1}`, `keyword "const"`},
		{"unknown format", `"A":{"type":"string","format":"email"}`, `format "email"`},
		{"3.1 type list", `"A":{"type":["string","null"]}`, `not one of OpenAPI 3.0's types`},
		{"dangling ref", `"A":{"$ref":"#/components/schemas/B"}`, `does not resolve`},
		{"ref siblings", `"B":{"type":"string"},"A":{"$ref":"#/components/schemas/B","nullable":true}`, `$ref has siblings`},
		{"bad pattern", `"A":{"type":"string","pattern":"("}`, `pattern`},
		{"required without property", `"A":{"type":"object","required":["x"],"properties":{}}`, `required x has no property schema`},
		{"discriminator drift", `"E":{"oneOf":[{"$ref":"#/components/schemas/X"}],"discriminator":{"propertyName":"type","mapping":{"y":"#/components/schemas/X"}}},
			"X":{"type":"object","properties":{"type":{"type":"string","enum":["x"]}}}`, `must be the enum ["y"]`},
		{"nested bad keyword", `"A":{"type":"object","properties":{"b":{"type":"array","items":{"type":"string","minimum":"x","uniqueItems":true}}}}`, `keyword "uniqueItems"`},
	} {
		_, err := Parse([]byte(`{"openapi":"3.0.3","paths":{},"components":{"schemas":{` + c.schemas + `}}}`))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error containing %q", c.name, err, c.want)
		}
	}
	if _, err := Parse([]byte(`{"openapi":"3.1.0","paths":{}}`)); err == nil {
		t.Error("OpenAPI 3.1 accepted: its schemas differ (type lists, no nullable)")
	}
	if _, err := Parse([]byte(`{"openapi":"3.0.3","paths":{"/a":{"get":{"operationId":"x","security":[{"nope":[]}],"responses":{"200":{"description":"d"}}}}}}`)); err == nil || !strings.Contains(err.Error(), `"nope" is not defined`) {
		t.Errorf("undefined security scheme: %v", err)
	}
}

func TestSchemaLookups(t *testing.T) {
	d := load(t)
	rs, ok := d.RequestSchema("POST", "/api/register")
	if !ok || d.Validate(rs, map[string]any{"name": "ok_name"}) != nil || d.Validate(rs, map[string]any{"name": "no spaces"}) == nil {
		t.Errorf("register's request schema: %v %v", rs, ok)
	}
	if _, ok := d.RequestSchema("GET", "/api/agents"); ok {
		t.Error("GET /api/agents has no request body")
	}
	ev, ok := d.MediaSchema("GET", "/api/stream", "200", "text/event-stream")
	if !ok || d.ValidateJSON(ev, []byte(`{"type":"stats","data":{"totalAgents":1,"onlineAgents":1,"totalMessages":1}}`)) != nil {
		t.Errorf("the stream's event schema: %v %v", ev, ok)
	}
}

func TestValidateResponse(t *testing.T) {
	d := load(t)
	jsonHdr := func(kv ...string) http.Header {
		h := http.Header{"Content-Type": {"application/json; charset=utf-8"}}
		for i := 0; i+1 < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	ok := []struct {
		method, path string
		status       int
		h            http.Header
		body         string
	}{
		{"POST", "/api/heartbeat", 200, jsonHdr(), `{"success":true}`},
		{"POST", "/api/heartbeat", 429, jsonHdr("Retry-After", "3"), `{"success":false,"error":"Too many requests","retryAfter":3}`},
		{"POST", "/api/heartbeat", 503, jsonHdr(), `{"success":false,"error":"Service unavailable"}`}, // default
	}
	for _, c := range ok {
		if err := d.ValidateResponse(c.method, c.path, c.status, c.h, []byte(c.body)); err != nil {
			t.Errorf("%s %s %d: %v", c.method, c.path, c.status, err)
		}
	}
	bad := []struct {
		method, path string
		status       int
		h            http.Header
		body, want   string
	}{
		{"POST", "/api/heartbeat", 404, jsonHdr(), `{"success":false,"error":"x"}`, "does not list"},
		{"POST", "/api/nope", 200, jsonHdr(), `{}`, "not in the description"},
		{"PUT", "/api/heartbeat", 200, jsonHdr(), `{}`, "not in the description"},
		{"POST", "/api/heartbeat", 429, jsonHdr(), `{"success":false,"error":"Too many requests","retryAfter":3}`, "header Retry-After: required but missing"},
		{"POST", "/api/heartbeat", 429, jsonHdr("Retry-After", "soon"), `{"success":false,"error":"Too many requests","retryAfter":3}`, "header Retry-After"},
		{"POST", "/api/heartbeat", 429, jsonHdr("Retry-After", "3"), `{"success":false,"error":"Too many requests"}`, `"retryAfter" is missing`},
		{"POST", "/api/heartbeat", 200, http.Header{"Content-Type": {"text/plain"}}, `{"success":true}`, "Content-Type text/plain is not declared"},
		{"POST", "/api/heartbeat", 200, jsonHdr(), `{"success":true,"ok":1}`, "$.ok: property not in the description"},
	}
	for _, c := range bad {
		err := d.ValidateResponse(c.method, c.path, c.status, c.h, []byte(c.body))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %s %d %s: got %v, want %q", c.method, c.path, c.status, c.body, err, c.want)
		}
	}
}

// FuzzValidateJSON: the validator reads what servers answer; whatever that
// is, it reports, never panics, never accepts what encoding/json finds is not
// exactly one JSON value, never accepts a non-object as a Message, and its
// verdict depends on the JSON value only, not on how it is spelled: the
// value decoded and encoded again gets the same verdict for every schema.
func FuzzValidateJSON(f *testing.F) {
	d, err := Load()
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{`{}`, `[]`, `null`, `{"type":"history","data":[{"id":"1"}]}`, `{"success":false,"error":"x","retryAfter":1e400}`, `"x"`,
		`{"success":false,"error":"x","retryAfter":3.0}`, `{"totalAgents":1,"onlineAgents":0,"totalMessages":2e0}`,
		`{"type":"message","data":{"id":"7","agentId":"123e4567-e89b-12d3-a456-426614174000","agentName":"a","avatar":"\ud83e\udd9e","content":"\u00e9","timestamp":"2024-01-15T12:00:00.123Z","moltbookVerified":false,"moltbookName":null,"ownerTwitter":null}}`} {
		f.Add(s)
	}
	names := []string{"StreamEvent", "Message", "Error", "AgentsResponse", "VerifyCompleteResponse", "Stats"}
	f.Fuzz(func(t *testing.T, body string) {
		valid := json.Valid([]byte(body))
		var v any
		var again []byte
		if valid {
			dec := json.NewDecoder(strings.NewReader(body))
			dec.UseNumber()
			if err := dec.Decode(&v); err != nil {
				t.Fatal(err)
			}
			var err error
			if again, err = json.Marshal(v); err != nil {
				t.Fatal(err)
			}
		}
		for _, name := range names {
			err := d.ValidateJSON(SchemaRef(name), []byte(body))
			if err == nil && !valid {
				t.Fatalf("%q is not one JSON value, yet accepted as a %s", body, name)
			}
			if err == nil && name == "Message" && !strings.HasPrefix(strings.TrimSpace(body), "{") {
				t.Fatalf("non-object %q accepted as a Message", body)
			}
			if valid {
				if err2 := d.ValidateJSON(SchemaRef(name), again); (err == nil) != (err2 == nil) {
					t.Fatalf("%s: %q gets %v, the same value spelled %s gets %v", name, body, err, again, err2)
				}
			}
		}
	})
}
