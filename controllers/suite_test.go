package controllers

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	monv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	chatrv1 "github.com/chatr-ai/chatr/api/v1alpha1"
	"github.com/chatr-ai/chatr/internal/testenv"
)

// The tests below run against a real kube-apiserver and etcd (envtest), with
// the reconciler running in a real manager. envtest runs no other
// controllers: no Deployment controller (tests write Deployment status
// themselves) and no garbage collector (tests check owner references).
var (
	k8s        client.Client // direct, uncached: what a user sees
	restCfg    *rest.Config
	testScheme = runtime.NewScheme()
	skipReason string
	nsCounter  atomic.Int64
)

func TestMain(m *testing.M) {
	if _, skipReason = testenv.EnvtestAssets(); skipReason != "" {
		fmt.Fprintln(os.Stderr, "NO ENVTEST:", skipReason)
		os.Exit(m.Run())
	}
	os.Exit(runWithEnvtest(m))
}

func runWithEnvtest(m *testing.M) int {
	// Reconcile errors (and worse) go to stderr, to explain a failing test.
	logf.SetLogger(logr.FromSlogHandler(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	must(clientgoscheme.AddToScheme(testScheme))
	must(chatrv1.AddToScheme(testScheme))
	must(apiextensionsv1.AddToScheme(testScheme))
	must(monv1.AddToScheme(testScheme))

	start := time.Now()
	// Only the operator's CRD: TestMonitoringWithoutAndThenWithTheCRDs
	// installs the Prometheus Operator's while the operator runs.
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := env.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting envtest:", err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	fmt.Fprintf(os.Stderr, "envtest control plane and CRD ready in %s\n", time.Since(start).Round(time.Millisecond))
	restCfg = cfg

	k8s, err = client.New(cfg, client.Options{Scheme: testScheme})
	must(err)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mgr, err := ctrl.NewManager(operatorConfig(cfg), ctrl.Options{
		Scheme:  testScheme,
		Metrics: metricsserver.Options{BindAddress: "0"},
		Cache:   CacheOptions(),
	})
	must(err)
	rec := &ChatRoomReconciler{
		Client:                  mgr.GetClient(),
		APIReader:               mgr.GetAPIReader(),
		Recorder:                mgr.GetEventRecorder(chatrv1.ManagerName),
		MaxConcurrentReconciles: 2,
		ConflictRetry:           time.Second,
		SecretResync:            time.Second,
	}
	must(rec.SetupWithManager(ctx, mgr))
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()

	code := m.Run()
	cancel()
	if err := <-done; err != nil {
		fmt.Fprintln(os.Stderr, "manager:", err)
	}
	return code
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

// needEnv ends the test, saying why, when there is no API server: a
// failure under CI and make test, a skip otherwise (testenv.Missing).
func needEnv(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		testenv.Missing(t, "%s", skipReason)
	}
}

// newNamespace creates a namespace of its own for one test.
func newNamespace(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("t%d-%s", nsCounter.Add(1), strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")))
	if len(name) > 50 {
		name = strings.TrimRight(name[:50], "-")
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	return name
}

// createSecrets creates the Postgres and Redis Secrets a room reads.
func createSecrets(t *testing.T, ns, prefix string) {
	t.Helper()
	for _, s := range []*corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Name: prefix + "-pg", Namespace: ns}, StringData: map[string]string{"url": "postgres://u:p@pg:5432/chatr"}},
		{ObjectMeta: metav1.ObjectMeta{Name: prefix + "-redis", Namespace: ns}, StringData: map[string]string{"url": "redis://redis:6379/0"}},
	} {
		if err := k8s.Create(context.Background(), s); err != nil {
			t.Fatalf("creating secret %s: %v", s.Name, err)
		}
	}
}

// newRoom returns a minimal room reading the Secrets of createSecrets.
func newRoom(ns, name, secretPrefix string) *chatrv1.ChatRoom {
	return &chatrv1.ChatRoom{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: chatrv1.ChatRoomSpec{
			Image:    "ghcr.io/chatr-ai/chatr:test",
			Postgres: chatrv1.PostgresSpec{SecretName: secretPrefix + "-pg"},
			Redis:    chatrv1.RedisSpec{SecretName: secretPrefix + "-redis"},
		},
	}
}

// get reads obj (by its namespace and name) from the API server.
func get(obj client.Object) error {
	return k8s.Get(context.Background(), client.ObjectKeyFromObject(obj), obj)
}

// roomEvents returns the events.k8s.io Events about room, by reason.
func roomEvents(t *testing.T, room *chatrv1.ChatRoom) map[string][]eventsv1.Event {
	t.Helper()
	var list eventsv1.EventList
	if err := k8s.List(context.Background(), &list, client.InNamespace(room.Namespace)); err != nil {
		t.Fatalf("listing events: %v", err)
	}
	out := map[string][]eventsv1.Event{}
	for _, e := range list.Items {
		if e.Regarding.Kind == "ChatRoom" && e.Regarding.Name == room.Name {
			out[e.Reason] = append(out[e.Reason], e)
		}
	}
	return out
}
