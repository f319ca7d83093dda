package config

import (
	"bytes"
	"flag"
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"postgres://chatr:s3cret@db:5432/chatr?sslmode=require", "postgres://chatr:xxxxx@db:5432/chatr?sslmode=require"},
		{"redis://:s3cret@redis:6379/0", "redis://:xxxxx@redis:6379/0"},
		{"postgres://postgres@127.0.0.1:5432/test?sslmode=disable", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"},
		{"postgres://db/chatr?user=u&password=s3cret", "postgres://db/chatr?password=xxxxx&user=u"},
		{"host=db user=u password=s3cret dbname=chatr", "host=db user=u password=xxxxx dbname=chatr"},
		{"host=db password='s3 cret' dbname=chatr", "host=db password=xxxxx dbname=chatr"},
	} {
		if got := Redact(c.in); got != c.want {
			t.Errorf("Redact(%q) = %q, want %q", c.in, got, c.want)
		}
		if strings.Contains(Redact(c.in), "s3") {
			t.Errorf("Redact(%q) leaks the password", c.in)
		}
	}
}

// -h shows the environment's URLs without their passwords, while the flag
// still holds the whole URL.
func TestHelpRedactsURLPasswords(t *testing.T) {
	t.Setenv("CHATR_DATABASE_URL", "postgres://chatr:pg-s3cret@db:5432/chatr")
	t.Setenv("CHATR_REDIS_URL", "redis://:redis-s3cret@redis:6379/0")
	var c Common
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	RegisterCommon(fs, &c)
	var help bytes.Buffer
	fs.SetOutput(&help)
	fs.PrintDefaults()
	if strings.Contains(help.String(), "s3cret") {
		t.Fatalf("-h prints a password:\n%s", help.String())
	}
	if !strings.Contains(help.String(), "postgres://chatr:xxxxx@db:5432/chatr") {
		t.Fatalf("-h does not show the redacted URL:\n%s", help.String())
	}
	if c.DatabaseURL != "postgres://chatr:pg-s3cret@db:5432/chatr" || c.RedisURL != "redis://:redis-s3cret@redis:6379/0" {
		t.Fatalf("the flags lost their values: %q %q", c.DatabaseURL, c.RedisURL)
	}
	if err := fs.Parse([]string{"-database-url", "postgres://other:pw@h/db"}); err != nil || c.DatabaseURL != "postgres://other:pw@h/db" {
		t.Fatalf("setting the flag: %v %q", err, c.DatabaseURL)
	}
}
