package main

import (
	"context"
	"flag"

	"github.com/chatr-ai/chatr/internal/config"
	"github.com/chatr-ai/chatr/internal/fakemoltbook"
	"github.com/chatr-ai/chatr/internal/serve"
)

func init() {
	commands["fakemoltbook"] = command{
		summary: "run a fake Moltbook API for tests and local runs (scenarios set via /_fake/)",
		run: func(ctx context.Context, fs *flag.FlagSet, args []string) error {
			var listen, logLevel, logFormat string
			config.String(fs, &listen, "listen", "CHATR_FAKEMOLTBOOK_LISTEN", "127.0.0.1:8081", "address to serve the fake Moltbook on (API under /api/v1)")
			config.String(fs, &logLevel, "log-level", "CHATR_LOG_LEVEL", "info", "log level: debug, info, warn, error")
			config.String(fs, &logFormat, "log-format", "CHATR_LOG_FORMAT", "text", "log format: text or json")
			_ = fs.Parse(args)
			log := (&config.Common{LogLevel: logLevel, LogFormat: logFormat}).Logger()
			fake := fakemoltbook.New()
			log.Info("fake Moltbook: point the verifier at it with CHATR_MOLTBOOK_URL=http://"+listen+"/api/v1",
				"seed", `curl -X POST http://`+listen+`/_fake/seed -d '{"name":"<moltbook name>","owner":"<x handle>","code":"<code from verify/start>"}'`)
			return serve.Run(ctx, serve.Options{Listen: listen, Handler: fake, Log: log})
		},
	}
}
