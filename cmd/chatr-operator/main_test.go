package main

import (
	"errors"
	"flag"
	"strings"
	"testing"
)

func TestParseFlags(t *testing.T) {
	cases := []struct {
		name    string
		args    []string
		env     map[string]string
		check   func(options) bool
		wantErr string
	}{
		{name: "defaults work locally", check: func(o options) bool {
			return o.metricsAddr == ":8080" && o.probeAddr == ":8081" && !o.leaderElect &&
				o.leaderElectionID == "chatr-operator.chatr.ai" && o.maxConcurrentReconciles == 4 && o.logFormat == "json"
		}},
		{name: "flags", args: []string{"--leader-elect", "--metrics-bind-address=0", "--max-concurrent-reconciles=8", "--log-format=text"},
			check: func(o options) bool {
				return o.leaderElect && o.metricsAddr == "0" && o.maxConcurrentReconciles == 8 && o.logFormat == "text"
			}},
		{name: "environment", env: map[string]string{"CHATR_OPERATOR_LEADER_ELECT": "true", "CHATR_OPERATOR_LOG_LEVEL": "debug"},
			check: func(o options) bool { return o.leaderElect && o.logLevel == "debug" }},
		{name: "flags win over the environment", args: []string{"--log-level=warn"}, env: map[string]string{"CHATR_OPERATOR_LOG_LEVEL": "debug"},
			check: func(o options) bool { return o.logLevel == "warn" }},
		{name: "no reconciles", args: []string{"--max-concurrent-reconciles=0"}, wantErr: "at least 1"},
		{name: "stray argument", args: []string{"run"}, wantErr: "unexpected arguments"},
		{name: "unknown flag", args: []string{"--nope"}, wantErr: "not defined"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			o, err := parseFlags(tc.args)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(o) {
				t.Errorf("options %+v", o)
			}
		})
	}
	if _, err := parseFlags([]string{"-h"}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
}

func TestNewLogger(t *testing.T) {
	for _, tc := range []struct {
		level, format string
		ok            bool
	}{{"info", "json", true}, {"debug", "text", true}, {"loud", "json", false}, {"info", "xml", false}} {
		_, err := newLogger(options{logLevel: tc.level, logFormat: tc.format})
		if (err == nil) != tc.ok {
			t.Errorf("%s/%s: %v", tc.level, tc.format, err)
		}
	}
}
