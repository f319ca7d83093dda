// Command testreport runs `go test -json` (or reads its output on stdin) and
// turns the stream into what a person reads at the end of a long run: the
// full output of every failed test, the build errors, the skipped tests
// with their reasons, a table per package, and a last line exactly of the
// form "N passed, N failed, N skipped".
//
// A skipped test is a test that did not run, so under CI (CI=true, or
// -strict) every skip fails the run unless the allowlist file names it, with
// a reason. That keeps "green" meaning "tested": a missing tool or a
// placeholder skip cannot pass quietly.
//
//	go run ./hack/testreport -allow hack/skip-allowlist.txt -- go test -json -race ./...
//	go test -json ./... | go run ./hack/testreport
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
)

func main() {
	allowFile := flag.String("allow", "", "the skip allowlist: lines of `package Test reason`")
	strict := flag.Bool("strict", os.Getenv("CI") == "true", "fail the run on a skip the allowlist does not name (default: $CI == true)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: testreport [-allow file] [-strict] [-- go test -json args...]")
		flag.PrintDefaults()
	}
	flag.Parse()
	allow, err := readAllowlist(*allowFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testreport:", err)
		os.Exit(2)
	}
	in, wait, err := source(flag.Args())
	if err != nil {
		fmt.Fprintln(os.Stderr, "testreport:", err)
		os.Exit(2)
	}
	r := newReport(os.Stdout)
	if err := r.read(in); err != nil {
		fmt.Fprintln(os.Stderr, "testreport: reading the test stream:", err)
		os.Exit(2)
	}
	cmdErr := wait()
	if !r.finish(allow, *strict, cmdErr) {
		os.Exit(1)
	}
}

// source is the test stream: the output of the command in args, or stdin.
// wait reports how the command ended.
func source(args []string) (io.Reader, func() error, error) {
	if len(args) == 0 {
		return os.Stdin, func() error { return nil }, nil
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	return out, cmd.Wait, nil
}

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action      string
	Package     string
	Test        string
	Elapsed     float64
	Output      string
	ImportPath  string // build-output and build-fail
	FailedBuild string // a package's fail when its build failed
}

type test struct {
	pkg, name string
	output    strings.Builder
	result    string // pass, fail, skip; "" while running
}

type pkg struct {
	name                 string
	output               strings.Builder // lines outside any test
	passed, failed, skip int
	result               string // pass, fail, skip (no test files)
	elapsed              float64
	failedBuild          string // the build whose failure failed the package
	noTests              bool
}

type report struct {
	w      io.Writer
	pkgs   map[string]*pkg
	order  []string
	tests  map[string]*test // package + " " + test name
	torder []*test
	builds map[string]*strings.Builder // import path -> build output
	other  int                         // lines that were not JSON
}

func newReport(w io.Writer) *report {
	return &report{w: w, pkgs: map[string]*pkg{}, tests: map[string]*test{}, builds: map[string]*strings.Builder{}}
}

func (r *report) pkg(name string) *pkg {
	p := r.pkgs[name]
	if p == nil {
		p = &pkg{name: name}
		r.pkgs[name] = p
		r.order = append(r.order, name)
	}
	return p
}

func (r *report) test(pkgName, name string) *test {
	k := pkgName + " " + name
	t := r.tests[k]
	if t == nil {
		t = &test{pkg: pkgName, name: name}
		r.tests[k] = t
		r.torder = append(r.torder, t)
	}
	return t
}

// read consumes the stream, printing a progress line per finished package.
func (r *report) read(in io.Reader) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil {
			// Not the JSON stream (go itself complaining, say): keep it visible.
			r.other++
			fmt.Fprintln(r.w, string(line))
			continue
		}
		r.add(e)
	}
	return sc.Err()
}

func (r *report) add(e event) {
	switch e.Action {
	case "build-output":
		b := r.builds[e.ImportPath]
		if b == nil {
			b = &strings.Builder{}
			r.builds[e.ImportPath] = b
		}
		b.WriteString(e.Output)
		return
	case "build-fail":
		return
	}
	if e.Package == "" {
		return
	}
	p := r.pkg(e.Package)
	if e.Test == "" {
		switch e.Action {
		case "output":
			p.output.WriteString(e.Output)
			if strings.Contains(e.Output, "[no test files]") {
				p.noTests = true
			}
		case "pass", "fail", "skip":
			p.result, p.elapsed = e.Action, e.Elapsed
			p.failedBuild = e.FailedBuild
			r.progress(p)
		}
		return
	}
	t := r.test(e.Package, e.Test)
	switch e.Action {
	case "output":
		t.output.WriteString(e.Output)
	case "pass", "fail", "skip":
		t.result = e.Action
		switch e.Action {
		case "pass":
			p.passed++
		case "fail":
			p.failed++
		case "skip":
			p.skip++
		}
	}
}

func (r *report) progress(p *pkg) {
	if p.noTests {
		return
	}
	status := "ok  "
	if p.result == "fail" {
		status = "FAIL"
	}
	fmt.Fprintf(r.w, "%s %-60s %4d passed %3d failed %3d skipped  %6.1fs\n", status, p.name, p.passed, p.failed, p.skip, p.elapsed)
}

// finish prints the failures, the skips, the table and the summary line,
// and reports whether the run passed.
func (r *report) finish(allow allowlist, strict bool, cmdErr error) bool {
	ok := true
	var passed, failed, skipped int
	// Tests still running when their package ended (a panic, a timeout)
	// failed; their output is all there is.
	for _, t := range r.torder {
		if t.result == "" {
			t.result = "fail"
			t.output.WriteString("testreport: the test never finished (its package ended during it: panic, timeout or exit)\n")
			r.pkg(t.pkg).failed++
		}
	}
	var failures []*test
	var skips []*test
	for _, t := range r.torder {
		switch t.result {
		case "pass":
			passed++
		case "fail":
			failed++
			failures = append(failures, t)
		case "skip":
			skipped++
			skips = append(skips, t)
		}
	}
	for _, t := range failures {
		fmt.Fprintf(r.w, "\n=== FAILED %s %s\n%s", t.pkg, t.name, t.output.String())
	}
	// A package that failed without a failed test: its build, TestMain or
	// the binary itself. Everything it printed is the evidence.
	var brokenPkgs []string
	printed := map[string]bool{} // build outputs already shown
	for _, name := range r.order {
		p := r.pkgs[name]
		if p.result == "" {
			p.result = "fail"
			p.output.WriteString("testreport: the package never reported a result\n")
		}
		if p.result == "fail" && p.failed == 0 {
			brokenPkgs = append(brokenPkgs, name)
			failed++
			p.failed++
			fmt.Fprintf(r.w, "\n=== FAILED %s (the package, not a test)\n", name)
			if b := r.builds[p.failedBuild]; b != nil {
				fmt.Fprint(r.w, b.String())
				printed[p.failedBuild] = true
			}
			fmt.Fprint(r.w, p.output.String())
		}
	}
	// Build output for import paths that are not a test package of their own.
	var orphanBuilds []string
	for path := range r.builds {
		if !printed[path] {
			orphanBuilds = append(orphanBuilds, path)
		}
	}
	sort.Strings(orphanBuilds)
	for _, path := range orphanBuilds {
		fmt.Fprintf(r.w, "\n=== BUILD FAILED %s\n%s", path, r.builds[path].String())
		ok = false
	}
	var notAllowed []string
	if len(skips) > 0 {
		fmt.Fprintf(r.w, "\n=== SKIPPED (%d)\n", len(skips))
		for _, t := range skips {
			reason := skipReason(t.output.String())
			mark := ""
			if why, listed := allow.reason(t.pkg, t.name); listed {
				mark = " [allowed: " + why + "]"
			} else if strict {
				mark = " [NOT IN THE ALLOWLIST]"
				notAllowed = append(notAllowed, t.pkg+" "+t.name)
			}
			fmt.Fprintf(r.w, "%s %s: %s%s\n", t.pkg, t.name, reason, mark)
		}
	}
	fmt.Fprintln(r.w)
	r.table()
	if failed > 0 {
		ok = false
	}
	if len(notAllowed) > 0 {
		ok = false
		fmt.Fprintf(r.w, "FAIL: %d skipped test(s) not in the skip allowlist (a skip is a test that did not run): %s\n",
			len(notAllowed), strings.Join(notAllowed, ", "))
	}
	if cmdErr != nil {
		var exit *exec.ExitError
		if !errors.As(cmdErr, &exit) || failed == 0 {
			ok = false
			fmt.Fprintf(r.w, "FAIL: the test command: %v\n", cmdErr)
		}
	}
	if len(r.torder) == 0 && len(brokenPkgs) == 0 {
		ok = false
		fmt.Fprintln(r.w, "FAIL: no test ran")
	}
	fmt.Fprintf(r.w, "%d passed, %d failed, %d skipped\n", passed, failed, skipped)
	return ok
}

func (r *report) table() {
	width := len("package")
	var rows []*pkg
	var noTests int
	for _, name := range r.order {
		p := r.pkgs[name]
		if p.noTests && p.passed+p.failed+p.skip == 0 {
			noTests++
			continue
		}
		rows = append(rows, p)
		width = max(width, len(name))
	}
	fmt.Fprintf(r.w, "%-*s  %6s  %6s  %7s  %8s\n", width, "package", "passed", "failed", "skipped", "time")
	for _, p := range rows {
		fmt.Fprintf(r.w, "%-*s  %6d  %6d  %7d  %7.1fs\n", width, p.name, p.passed, p.failed, p.skip, p.elapsed)
	}
	if noTests > 0 {
		fmt.Fprintf(r.w, "(%d packages without test files)\n", noTests)
	}
}

// skipReason is what the test said when it skipped (the lines after
// "--- SKIP"), or the last thing it printed.
func skipReason(out string) string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "=== ") || strings.HasPrefix(l, "--- SKIP") {
			continue
		}
		lines = append(lines, l)
	}
	if len(lines) == 0 {
		return "(no reason given)"
	}
	return strings.Join(lines, " ")
}

// allowlist maps "package Test" to the reason the skip is allowed.
type allowlist map[string]string

func (a allowlist) reason(pkg, test string) (string, bool) {
	why, ok := a[pkg+" "+test]
	return why, ok
}

// readAllowlist reads lines of `package Test reason...`; # starts a comment.
// An entry without a reason is an error: the file exists to say why.
func readAllowlist(path string) (allowlist, error) {
	a := allowlist{}
	if path == "" {
		return a, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 3 {
			return nil, fmt.Errorf("%s:%d: want `package Test reason`, got %q", path, i+1, line)
		}
		a[f[0]+" "+f[1]] = strings.Join(f[2:], " ")
	}
	return a, nil
}
