package main

import (
	"context"
	"flag"

	"github.com/chatr-ai/chatr/components/streamer"
	"github.com/chatr-ai/chatr/internal/serve"
)

func init() {
	commands["streamer"] = command{
		summary: "run the SSE/WebSocket streamer and the spectator page",
		run: func(ctx context.Context, fs *flag.FlagSet, args []string) error {
			var c streamer.Config
			streamer.RegisterFlags(fs, &c)
			_ = fs.Parse(args)
			log := c.Common.Logger()
			logStart(log, "streamer")
			srv, err := streamer.New(ctx, c, log)
			if err != nil {
				return err
			}
			defer srv.Close()
			return serve.Run(ctx, serve.Options{
				Listen:      c.Common.Listen,
				AdminListen: c.Common.AdminListen,
				Handler:     srv.Handler(),
				// Drain closes streams over the drain time; the margin lets the
				// last slow clients hit their write deadline.
				DrainTimeout: streamer.DrainTimeout(c),
				ReadTimeout:  c.Common.ReadTimeout,
				IdleTimeout:  c.Common.IdleTimeout,
				Log:          log,
			}, srv)
		},
	}
}
