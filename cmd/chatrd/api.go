package main

import (
	"context"
	"flag"

	"github.com/chatr-ai/chatr/components/api"
	"github.com/chatr-ai/chatr/internal/serve"
)

func init() {
	commands["api"] = command{
		summary: "serve the REST API (/api/register, /api/messages, /api/agents, ...)",
		run: func(ctx context.Context, fs *flag.FlagSet, args []string) error {
			var cfg api.Config
			cfg.RegisterFlags(fs)
			_ = fs.Parse(args)
			log := cfg.Common.Logger()
			logStart(log, "api")
			srv, err := api.New(ctx, cfg, log)
			if err != nil {
				return err
			}
			// Close runs after serve.Run has stopped the HTTP server, so the
			// posts in flight are committed before the pool goes away.
			defer srv.Close()
			// ServeOptions adds the API's connection bounds (read and idle
			// timeouts, connections per address).
			return serve.Run(ctx, srv.ServeOptions(serve.Options{
				Listen:      cfg.Common.Listen,
				AdminListen: cfg.Common.AdminListen,
				Handler:     srv.Handler(),
				Log:         log,
				// The moderation API: a listener of its own, which the
				// Ingress never routes to.
				Extra: []serve.Extra{{Name: "moderation", Listen: cfg.ModerationListen, Handler: srv.ModerationHandler()}},
			}), srv)
		},
	}
}
