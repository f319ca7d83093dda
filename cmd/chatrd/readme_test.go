package main

import (
	"flag"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/chatr-ai/chatr/components/api"
	"github.com/chatr-ai/chatr/components/streamer"
	"github.com/chatr-ai/chatr/components/verifier"
)

// TestREADMEDocumentsEverySetting keeps the README's configuration reference
// true: every environment variable a component reads must appear in it.
func TestREADMEDocumentsEverySetting(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("all", flag.ContinueOnError)
	var a api.Config
	a.RegisterFlags(fs)
	var s streamer.Config
	sfs := flag.NewFlagSet("s", flag.ContinueOnError)
	streamer.RegisterFlags(sfs, &s)
	var v verifier.Config
	vfs := flag.NewFlagSet("v", flag.ContinueOnError)
	verifier.RegisterFlags(vfs, &v)

	envRE := regexp.MustCompile(`\$(CHATR_[A-Z0-9_]+)`)
	seen := 0
	for _, set := range []*flag.FlagSet{fs, sfs, vfs} {
		set.VisitAll(func(f *flag.Flag) {
			for _, m := range envRE.FindAllStringSubmatch(f.Usage, -1) {
				seen++
				if !strings.Contains(string(readme), "`"+m[1]+"`") {
					t.Errorf("README.md does not document $%s (flag -%s: %s)", m[1], f.Name, f.Usage)
				}
			}
		})
	}
	if seen < 30 {
		t.Fatalf("found only %d settings; the flag usage strings no longer name their variables?", seen)
	}
}
