package main

import (
	"context"
	"flag"

	"github.com/chatr-ai/chatr/internal/config"
	"github.com/chatr-ai/chatr/internal/store"
)

func init() {
	commands["migrate"] = command{
		summary: "apply the room's schema migrations (exactly once, under an advisory lock) and exit",
		run: func(ctx context.Context, fs *flag.FlagSet, args []string) error {
			var c config.Common
			config.RegisterCommon(fs, &c)
			_ = fs.Parse(args)
			log := c.Logger()
			logStart(log, "migrate")
			s, err := store.Open(ctx, store.Options{URL: c.DatabaseURL, Schema: c.Schema, Migrate: true})
			if err != nil {
				return err
			}
			defer s.Close()
			v, err := s.SchemaVersion(ctx)
			if err != nil {
				return err
			}
			log.Info("schema up to date", "schema", c.Schema, "version", v)
			return nil
		},
	}
}
