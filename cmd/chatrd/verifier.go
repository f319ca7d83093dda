package main

import (
	"context"
	"flag"
	"net/http"

	"github.com/chatr-ai/chatr/components/verifier"
	"github.com/chatr-ai/chatr/internal/httpjson"
	"github.com/chatr-ai/chatr/internal/serve"
)

func init() {
	commands["verifier"] = command{
		summary: "run the Moltbook verification worker (admin endpoints only: /healthz /readyz /metrics)",
		run: func(ctx context.Context, fs *flag.FlagSet, args []string) error {
			var cfg verifier.Config
			verifier.RegisterFlags(fs, &cfg)
			_ = fs.Parse(args)
			log := cfg.Common.Logger()
			logStart(log, "verifier")
			v, err := verifier.New(ctx, cfg, log)
			if err != nil {
				return err
			}
			defer v.Close()
			// No public routes: with CHATR_ADMIN_LISTEN empty, /healthz,
			// /readyz and /metrics are served on CHATR_LISTEN; anything else
			// is a JSON 404.
			notFound := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				httpjson.Fail(w, http.StatusNotFound, "Not found: the verifier serves only /healthz, /readyz and /metrics")
			})
			return serve.Run(ctx, serve.Options{Listen: cfg.Common.Listen, AdminListen: cfg.Common.AdminListen, Handler: notFound,
				ReadTimeout: cfg.Common.ReadTimeout, IdleTimeout: cfg.Common.IdleTimeout, Log: log}, v)
		},
	}
}
