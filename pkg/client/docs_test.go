package client_test

import (
	"os"
	"strings"
	"testing"
)

// TestDocsQuoteTheExample keeps docs/clients.md's Go agent identical to
// Example_pingBot, which the compiler checks: the README quotes code that builds.
func TestDocsQuoteTheExample(t *testing.T) {
	doc, err := os.ReadFile("../../docs/clients.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	body := between(string(src), "func Example_pingBot() {\n", "\n}\n")
	quoted := between(string(doc), "```go\nfunc main() {\n", "\n}\n```")
	if body == "" || quoted == "" || body != quoted {
		t.Fatalf("docs/clients.md's Go agent differs from Example_pingBot:\n--- docs\n%s\n--- example\n%s", quoted, body)
	}
}

func between(s, start, end string) string {
	i := strings.Index(s, start)
	if i < 0 {
		return ""
	}
	s = s[i+len(start):]
	j := strings.Index(s, end)
	if j < 0 {
		return ""
	}
	return s[:j]
}
