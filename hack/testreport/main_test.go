package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A stream with a pass, a failing test (its output printed in full), an
// allowed and a disallowed skip, a package whose build failed and one
// without test files.
const stream = `{"Action":"start","Package":"ex/a"}
{"Action":"run","Package":"ex/a","Test":"TestOK"}
{"Action":"output","Package":"ex/a","Test":"TestOK","Output":"=== RUN   TestOK\n"}
{"Action":"pass","Package":"ex/a","Test":"TestOK","Elapsed":0.1}
{"Action":"run","Package":"ex/a","Test":"TestBad"}
{"Action":"output","Package":"ex/a","Test":"TestBad","Output":"    a_test.go:9: first line of the failure\n"}
{"Action":"output","Package":"ex/a","Test":"TestBad","Output":"    a_test.go:10: second line of the failure\n"}
{"Action":"fail","Package":"ex/a","Test":"TestBad","Elapsed":0.2}
{"Action":"run","Package":"ex/a","Test":"TestAllowed"}
{"Action":"output","Package":"ex/a","Test":"TestAllowed","Output":"    a_test.go:20: needs a GPU\n"}
{"Action":"output","Package":"ex/a","Test":"TestAllowed","Output":"--- SKIP: TestAllowed (0.00s)\n"}
{"Action":"skip","Package":"ex/a","Test":"TestAllowed"}
{"Action":"run","Package":"ex/a","Test":"TestQuiet"}
{"Action":"output","Package":"ex/a","Test":"TestQuiet","Output":"    a_test.go:30: feature missing\n"}
{"Action":"skip","Package":"ex/a","Test":"TestQuiet"}
{"Action":"output","Package":"ex/a","Output":"FAIL\n"}
{"Action":"fail","Package":"ex/a","Elapsed":1.5}
{"ImportPath":"ex/b [ex/b.test]","Action":"build-output","Output":"b_test.go:3:1: syntax error\n"}
{"ImportPath":"ex/b [ex/b.test]","Action":"build-fail"}
{"Action":"start","Package":"ex/b"}
{"Action":"output","Package":"ex/b","Output":"FAIL\tex/b [build failed]\n"}
{"Action":"fail","Package":"ex/b","Elapsed":0,"FailedBuild":"ex/b [ex/b.test]"}
{"Action":"start","Package":"ex/c"}
{"Action":"output","Package":"ex/c","Output":"?   \tex/c\t[no test files]\n"}
{"Action":"skip","Package":"ex/c","Elapsed":0}
`

func run(t *testing.T, in string, allow allowlist, strict bool) (string, bool) {
	t.Helper()
	var out strings.Builder
	r := newReport(&out)
	if err := r.read(strings.NewReader(in)); err != nil {
		t.Fatal(err)
	}
	ok := r.finish(allow, strict, nil)
	return out.String(), ok
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

func TestReport(t *testing.T) {
	allow := allowlist{"ex/a TestAllowed": "no GPU on CI"}
	out, ok := run(t, stream, allow, true)
	if ok {
		t.Fatalf("a run with a failure passed:\n%s", out)
	}
	// One passed; TestBad and the package ex/b (its build) failed.
	if got, want := lastLine(out), "1 passed, 2 failed, 2 skipped"; got != want {
		t.Fatalf("last line %q, want %q\n%s", got, want, out)
	}
	for _, want := range []string{
		"first line of the failure", "second line of the failure", // in full
		"b_test.go:3:1: syntax error", // the build error
		"needs a GPU [allowed: no GPU on CI]",
		"ex/a TestQuiet: a_test.go:30: feature missing [NOT IN THE ALLOWLIST]",
		"FAIL: 1 skipped test(s) not in the skip allowlist",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "ex/c  ") {
		t.Errorf("a package without test files is in the table:\n%s", out)
	}
}

// Under CI a disallowed skip alone fails the run; outside CI it is listed
// but the run passes.
func TestSkipFailsOnlyWhenStrict(t *testing.T) {
	in := `{"Action":"run","Package":"ex/a","Test":"TestOK"}
{"Action":"pass","Package":"ex/a","Test":"TestOK"}
{"Action":"run","Package":"ex/a","Test":"TestQuiet"}
{"Action":"output","Package":"ex/a","Test":"TestQuiet","Output":"    a_test.go:30: feature missing\n"}
{"Action":"skip","Package":"ex/a","Test":"TestQuiet"}
{"Action":"pass","Package":"ex/a","Elapsed":1}
`
	if out, ok := run(t, in, allowlist{}, true); ok || lastLine(out) != "1 passed, 0 failed, 1 skipped" {
		t.Fatalf("strict: passed=%v\n%s", ok, out)
	}
	if out, ok := run(t, in, allowlist{}, false); !ok {
		t.Fatalf("not strict: failed\n%s", out)
	}
	if out, ok := run(t, in, allowlist{"ex/a TestQuiet": "why"}, true); !ok {
		t.Fatalf("strict, allowed: failed\n%s", out)
	}
}

// A test cut short by a panic or a timeout has no result of its own: it
// counts as failed and what it printed is shown.
func TestUnfinishedTestFails(t *testing.T) {
	in := `{"Action":"run","Package":"ex/a","Test":"TestHang"}
{"Action":"output","Package":"ex/a","Test":"TestHang","Output":"panic: test timed out after 1s\n"}
{"Action":"fail","Package":"ex/a","Elapsed":1}
`
	out, ok := run(t, in, allowlist{}, false)
	if ok || lastLine(out) != "0 passed, 1 failed, 0 skipped" || !strings.Contains(out, "panic: test timed out") {
		t.Fatalf("passed=%v\n%s", ok, out)
	}
}

func TestNothingRanFails(t *testing.T) {
	if out, ok := run(t, "", allowlist{}, false); ok || lastLine(out) != "0 passed, 0 failed, 0 skipped" {
		t.Fatalf("passed=%v\n%s", ok, out)
	}
}

// The repository's allowlist parses, and every entry has a reason.
func TestAllowlistFile(t *testing.T) {
	if _, err := readAllowlist(filepath.Join("..", "skip-allowlist.txt")); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "allow")
	if err := os.WriteFile(bad, []byte("ex/a TestX\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readAllowlist(bad); err == nil {
		t.Fatal("an entry without a reason was accepted")
	}
}
