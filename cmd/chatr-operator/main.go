// Command chatr-operator runs the chatr operator: a controller-runtime
// manager with the ChatRoom reconciler and the streamer autoscaler, leader election (so several replicas
// can run and one acts), Prometheus metrics and health probes.
//
// Every flag can also be given as an environment variable ($CHATR_OPERATOR_*).
// Outside a cluster it uses $KUBECONFIG (or --kubeconfig), so `go run
// ./cmd/chatr-operator` works against any cluster the current user can reach.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"

	"github.com/go-logr/logr"
	monv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	chatrv1 "github.com/chatr-ai/chatr/api/v1alpha1"
	"github.com/chatr-ai/chatr/controllers"
	"github.com/chatr-ai/chatr/internal/config"
	"github.com/chatr-ai/chatr/internal/version"
)

func main() {
	ctx := ctrl.SetupSignalHandler()
	if err := run(ctx, os.Args[1:], nil); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "chatr-operator:", err)
		os.Exit(1)
	}
}

// options are the operator's settings.
type options struct {
	kubeconfig              string
	metricsAddr             string
	probeAddr               string
	leaderElect             bool
	leaderElectionID        string
	leaderElectionNamespace string
	maxConcurrentReconciles int
	logLevel, logFormat     string
	showVersion             bool
}

// parseFlags reads the settings from args, with $CHATR_OPERATOR_* defaults.
func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("chatr-operator", flag.ContinueOnError)
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig file; empty: in-cluster config, then $KUBECONFIG, then ~/.kube/config")
	config.String(fs, &o.metricsAddr, "metrics-bind-address", "CHATR_OPERATOR_METRICS_ADDR", ":8080", "address of the Prometheus /metrics endpoint; 0 disables it")
	config.String(fs, &o.probeAddr, "health-probe-bind-address", "CHATR_OPERATOR_PROBE_ADDR", ":8081", "address of /healthz and /readyz")
	config.Bool(fs, &o.leaderElect, "leader-elect", "CHATR_OPERATOR_LEADER_ELECT", false, "elect a leader through a Lease, so that only one of several replicas acts")
	config.String(fs, &o.leaderElectionID, "leader-election-id", "CHATR_OPERATOR_LEADER_ELECTION_ID", "chatr-operator.chatr.ai", "name of the leader election Lease")
	config.String(fs, &o.leaderElectionNamespace, "leader-election-namespace", "CHATR_OPERATOR_LEADER_ELECTION_NAMESPACE", "", "namespace of the Lease; empty: the operator's own namespace")
	config.Int(fs, &o.maxConcurrentReconciles, "max-concurrent-reconciles", "CHATR_OPERATOR_MAX_CONCURRENT_RECONCILES", 4, "how many ChatRooms reconcile at once (and, apart, how many the streamer autoscaler evaluates at once)")
	config.String(fs, &o.logLevel, "log-level", "CHATR_OPERATOR_LOG_LEVEL", "info", "log level: debug, info, warn, error")
	config.String(fs, &o.logFormat, "log-format", "CHATR_OPERATOR_LOG_FORMAT", "json", "log format: text or json")
	fs.BoolVar(&o.showVersion, "version", false, "print the version, commit and Go release of this binary and exit")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if o.maxConcurrentReconciles < 1 {
		return o, fmt.Errorf("--max-concurrent-reconciles must be at least 1")
	}
	return o, nil
}

// newLogger returns the slog logger every part of the operator logs
// through: controller-runtime and client-go (klog) via the logr bridge.
func newLogger(o options) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(o.logLevel)); err != nil {
		return nil, fmt.Errorf("while parsing --log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch o.logFormat {
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format must be text or json, not %q", o.logFormat)
}

// run starts the operator and blocks until ctx ends. restConfig, when not
// nil, replaces the kubeconfig lookup (tests pass envtest's).
func run(ctx context.Context, args []string, restConfig *rest.Config) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	if o.showVersion {
		_, err := fmt.Println("chatr-operator", version.Get())
		return err
	}
	logger, err := newLogger(o)
	if err != nil {
		return err
	}
	lr := logr.FromSlogHandler(logger.Handler())
	ctrl.SetLogger(lr)
	klog.SetLogger(lr)

	if restConfig == nil {
		if restConfig, err = loadConfig(o.kubeconfig); err != nil {
			return err
		}
	}

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return fmt.Errorf("while building the scheme: %w", err)
	}
	if err := chatrv1.AddToScheme(scheme); err != nil {
		return fmt.Errorf("while building the scheme: %w", err)
	}
	// PodMonitors, for spec.monitoring; used only when the cluster serves them.
	if err := monv1.AddToScheme(scheme); err != nil {
		return fmt.Errorf("while building the scheme: %w", err)
	}

	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsserver.Options{BindAddress: o.metricsAddr},
		HealthProbeBindAddress:  o.probeAddr,
		LeaderElection:          o.leaderElect,
		LeaderElectionID:        o.leaderElectionID,
		LeaderElectionNamespace: o.leaderElectionNamespace,
		// A replica that stops hands the lease over at once instead of
		// making the next leader wait for it to expire.
		LeaderElectionReleaseOnCancel: true,
		Cache:                         controllers.CacheOptions(),
	})
	if err != nil {
		return fmt.Errorf("while creating the manager: %w", err)
	}

	rec := &controllers.ChatRoomReconciler{
		Client:                  mgr.GetClient(),
		APIReader:               mgr.GetAPIReader(),
		Recorder:                mgr.GetEventRecorder(chatrv1.ManagerName),
		MaxConcurrentReconciles: o.maxConcurrentReconciles,
	}
	if err := rec.SetupWithManager(ctx, mgr); err != nil {
		return fmt.Errorf("while setting up the chatroom controller: %w", err)
	}
	// The streamer autoscaler, a reconciler of its own: the only writer of
	// the streamer Deployments' replicas.
	autoscaler := &controllers.StreamerAutoscaler{
		Client:                  mgr.GetClient(),
		APIReader:               mgr.GetAPIReader(),
		Recorder:                mgr.GetEventRecorder(chatrv1.ManagerName),
		MaxConcurrentReconciles: o.maxConcurrentReconciles,
	}
	if err := autoscaler.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("while setting up the streamer autoscaler: %w", err)
	}
	if err := registerBuildInfo(crmetrics.Registry); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("while adding the health check: %w", err)
	}
	// Ready once the informers have synced: before that a replica would act
	// on an empty cache.
	if err := mgr.AddReadyzCheck("readyz", func(req *http.Request) error {
		if !mgr.GetCache().WaitForCacheSync(req.Context()) {
			return errors.New("caches not synced")
		}
		return nil
	}); err != nil {
		return fmt.Errorf("while adding the readiness check: %w", err)
	}

	logger.Info("starting chatr-operator", append(version.Get().LogAttrs(),
		"leaderElection", o.leaderElect, "metrics", o.metricsAddr, "probes", o.probeAddr)...)
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("while running the manager: %w", err)
	}
	return nil
}

// registerBuildInfo puts chatr_build_info{component="operator"} in reg (the
// manager's /metrics registry), as every component exports it in its own.
// That registry is process-wide and run may be called more than once in a
// process (tests): the first registration stays.
func registerBuildInfo(reg prometheus.Registerer) error {
	if err := reg.Register(version.NewCollector("operator")); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return fmt.Errorf("while registering the build-info metric: %w", err)
		}
	}
	return nil
}

// loadConfig returns the Kubernetes client configuration: the given
// kubeconfig file, else controller-runtime's usual lookup (in-cluster,
// then $KUBECONFIG and ~/.kube/config).
func loadConfig(path string) (*rest.Config, error) {
	if path != "" {
		c, err := clientcmd.BuildConfigFromFlags("", path)
		if err != nil {
			return nil, fmt.Errorf("while loading kubeconfig %s: %w", path, err)
		}
		return c, nil
	}
	c, err := ctrl.GetConfig()
	if err != nil {
		return nil, fmt.Errorf("while loading the Kubernetes client configuration: %w", err)
	}
	return c, nil
}
