package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/chatr-ai/chatr/internal/version"
)

func init() {
	commands["version"] = command{
		summary: "print the version, commit and Go release this binary was built from",
		run: func(ctx context.Context, fs *flag.FlagSet, args []string) error {
			asJSON := fs.Bool("json", false, "print {\"version\",\"commit\",\"goVersion\"} as JSON")
			_ = fs.Parse(args)
			i := version.Get()
			if *asJSON {
				return json.NewEncoder(os.Stdout).Encode(i)
			}
			_, err := fmt.Println("chatrd", i)
			return err
		},
	}
}

// logStart is the first line every long-running command logs, so a log
// says which build produced it.
func logStart(log *slog.Logger, command string) {
	log.Info("starting chatrd "+command, version.Get().LogAttrs()...)
}
