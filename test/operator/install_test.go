// Package operator_test checks the operator's two install paths, the
// kustomize manifests in config/ and the Helm chart in charts/, against a
// real kube-apiserver (envtest): both render, every rendered object is
// accepted by the API server, and the operator binary, running as the
// ServiceAccount the install creates (so with exactly the RBAC the install
// grants), elects a leader and builds the sample room.
package operator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	chatrv1 "github.com/chatr-ai/chatr/api/v1alpha1"
	"github.com/chatr-ai/chatr/internal/testenv"
)

var (
	env        *envtest.Environment
	k8s        client.Client
	scheme     = runtime.NewScheme()
	skipReason string
	repoRoot   = filepath.Join("..", "..")
)

func TestMain(m *testing.M) {
	if _, skipReason = testenv.EnvtestAssets(); skipReason != "" {
		fmt.Fprintln(os.Stderr, "NO ENVTEST:", skipReason)
		os.Exit(m.Run())
	}
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, apiextensionsv1.AddToScheme, chatrv1.AddToScheme} {
		if err := add(scheme); err != nil {
			panic(err)
		}
	}
	// No CRDs here: the installs bring their own.
	env = &envtest.Environment{}
	start := time.Now()
	cfg, err := env.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting envtest:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "envtest control plane ready in %s\n", time.Since(start).Round(time.Millisecond))
	k8s, err = client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		panic(err)
	}
	code := m.Run()
	_ = env.Stop()
	testenv.RemoveBinaries()
	os.Exit(code)
}

// needEnv ends the test, saying why, when there is no API server: a
// failure under CI and make test, a skip otherwise (testenv.Missing).
func needEnv(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		testenv.Missing(t, "%s", skipReason)
	}
}

// decode splits a multi-document YAML stream into objects.
func decode(t *testing.T, b []byte) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	d := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	for {
		var u unstructured.Unstructured
		if err := d.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return out
			}
			t.Fatalf("decoding rendered YAML: %v", err)
		}
		if len(u.Object) > 0 {
			out = append(out, &u)
		}
	}
}

// kustomize renders a kustomization folder with the kustomize library.
func kustomize(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), filepath.Join(repoRoot, dir))
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	y, err := m.AsYaml()
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	return decode(t, y)
}

// helmBinary returns the pinned helm: $CHATR_HELM, else the project's
// script builds it once (about 2 minutes) and caches it.
func helmBinary(t *testing.T) string {
	t.Helper()
	if h := os.Getenv("CHATR_HELM"); h != "" {
		return h
	}
	out, err := exec.Command(filepath.Join(repoRoot, "hack", "tools-bin.sh"), "helm").Output()
	if err != nil {
		t.Fatalf("building helm with hack/tools-bin.sh: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// helm runs helm with args and returns its stdout, or the error with stderr.
func helm(t *testing.T, args ...string) ([]byte, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if len(args) > 0 && args[0] == "template" {
		// Offline, helm assumes an old cluster; say which one the tests run.
		args = append(args, "--kube-version", "v1.37.2")
	}
	cmd := exec.Command(helmBinary(t), args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// Keep helm's caches and config away from the user's.
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home, "HELM_CONFIG_HOME="+home, "HELM_DATA_HOME="+home)
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("helm %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes(), nil
}

// apply sends objects to the API server with server-side apply, as
// `kubectl apply --server-side` would: the Namespace and the CRD first (the
// CRD must be established before rooms can be sent), then the rest. Any
// object the API server refuses fails the test.
func apply(t *testing.T, objs []*unstructured.Unstructured, defaultNamespace string) {
	t.Helper()
	ctx := context.Background()
	rank := func(u *unstructured.Unstructured) int {
		switch u.GetKind() {
		case "Namespace":
			return 0
		case "CustomResourceDefinition":
			return 1
		}
		return 2
	}
	for pass := 0; pass <= 2; pass++ {
		for _, u := range objs {
			if rank(u) != pass {
				continue
			}
			u = u.DeepCopy()
			if defaultNamespace != "" && u.GetNamespace() == "" && u.GetKind() != "Namespace" &&
				!strings.HasPrefix(u.GetKind(), "Cluster") && u.GetKind() != "CustomResourceDefinition" {
				u.SetNamespace(defaultNamespace)
			}
			if err := k8s.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner("install-test"), client.ForceOwnership); err != nil {
				t.Fatalf("the API server refused %s %s/%s: %v", u.GetKind(), u.GetNamespace(), u.GetName(), err)
			}
			if u.GetKind() == "CustomResourceDefinition" {
				waitEstablished(t, u.GetName())
			}
		}
	}
}

func waitEstablished(t *testing.T, name string) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, "CRD "+name+" established", func() error {
		var crd apiextensionsv1.CustomResourceDefinition
		if err := k8s.Get(context.Background(), client.ObjectKey{Name: name}, &crd); err != nil {
			return err
		}
		for _, c := range crd.Status.Conditions {
			if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
				return nil
			}
		}
		return fmt.Errorf("not established yet")
	})
}

func ensureNamespace(t *testing.T, name string) {
	t.Helper()
	err := k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
}

// find returns the rendered object of that kind and name, or fails.
func find(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, u := range objs {
		if u.GetKind() == kind && (name == "" || u.GetName() == name) {
			return u
		}
	}
	t.Fatalf("no %s %q in the rendered objects", kind, name)
	return nil
}

func TestKustomizeInstallRunsTheOperator(t *testing.T) {
	needEnv(t)
	objs := kustomize(t, "config/default")
	// What the install must hold.
	for _, want := range [][2]string{
		{"Namespace", "chatr-system"}, {"CustomResourceDefinition", "chatrooms.chatr.ai"},
		{"ServiceAccount", "chatr-operator"}, {"ClusterRole", "chatr-operator"}, {"ClusterRoleBinding", "chatr-operator"},
		{"Role", "chatr-operator-leader-election"}, {"RoleBinding", "chatr-operator-leader-election"},
		{"Deployment", "chatr-operator"}, {"Service", "chatr-operator-metrics"},
	} {
		find(t, objs, want[0], want[1])
	}
	dep := find(t, objs, "Deployment", "chatr-operator")
	if img := nestedContainer(t, dep)["image"]; img != "ghcr.io/chatr-ai/chatr-operator:latest" {
		t.Errorf("manager image %v", img)
	}
	apply(t, objs, "")

	ns := "samples-kustomize"
	ensureNamespace(t, ns)
	apply(t, kustomize(t, "config/samples"), ns)

	runOperator(t, "chatr-system", "chatr-operator", ns, "lobby")
}

func TestHelmChartInstallRunsTheOperator(t *testing.T) {
	needEnv(t)
	chart := filepath.Join(repoRoot, "charts", "chatr-operator")
	if _, err := helm(t, "lint", "--strict", chart); err != nil {
		t.Fatal(err)
	}
	const release, ns = "ops", "chatr-helm"
	out, err := helm(t, "template", release, chart, "--namespace", ns, "--set", "image.tag=test")
	if err != nil {
		t.Fatal(err)
	}
	objs := decode(t, out)
	for _, want := range [][2]string{
		{"CustomResourceDefinition", "chatrooms.chatr.ai"}, {"ServiceAccount", "ops-chatr-operator"},
		{"ClusterRole", "ops-chatr-operator"}, {"ClusterRoleBinding", "ops-chatr-operator"},
		{"Role", "ops-chatr-operator-leader-election"}, {"RoleBinding", "ops-chatr-operator-leader-election"},
		{"Deployment", "ops-chatr-operator"}, {"Service", "ops-chatr-operator-metrics"},
	} {
		find(t, objs, want[0], want[1])
	}
	crd := find(t, objs, "CustomResourceDefinition", "chatrooms.chatr.ai")
	if crd.GetAnnotations()["helm.sh/resource-policy"] != "keep" {
		t.Errorf("the chart's CRD is not kept on uninstall: %v", crd.GetAnnotations())
	}
	if img := nestedContainer(t, find(t, objs, "Deployment", "ops-chatr-operator"))["image"]; img != "ghcr.io/chatr-ai/chatr-operator:test" {
		t.Errorf("manager image %v", img)
	}

	// The chart's RBAC is the generated one, rule for rule.
	kr := find(t, kustomize(t, "config/default"), "ClusterRole", "chatr-operator").Object["rules"]
	if hr := find(t, objs, "ClusterRole", "ops-chatr-operator").Object["rules"]; !reflect.DeepEqual(kr, hr) {
		t.Errorf("the chart's ClusterRole rules differ from config/rbac/role.yaml:\n chart: %v\n kustomize: %v", hr, kr)
	}

	ensureNamespace(t, ns)
	apply(t, objs, ns)
	rooms := "samples-helm"
	ensureNamespace(t, rooms)
	apply(t, kustomize(t, "config/samples"), rooms)
	runOperator(t, ns, "ops-chatr-operator", rooms, "lobby")
}

// TestHelmValuesSchemaRefusesBadValues: values.schema.json stops a bad
// value at `helm install`, before anything reaches the cluster.
func TestHelmValuesSchemaRefusesBadValues(t *testing.T) {
	needEnv(t)
	chart := filepath.Join(repoRoot, "charts", "chatr-operator")
	cases := []struct{ set, want string }{
		{"replicaCount=-1", "replicaCount"},
		{"operator.logLevel=loud", "logLevel"},
		{"operator.maxConcurrentReconciles=0", "maxConcurrentReconciles"},
		{"image.pullPolicy=Sometimes", "pullPolicy"},
		{"nosuchvalue=1", "nosuchvalue"},
	}
	for _, tc := range cases {
		_, err := helm(t, "template", "x", chart, "--set", tc.set)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("--set %s: %v, want a schema error naming %s", tc.set, err, tc.want)
		}
	}
	if _, err := helm(t, "template", "x", chart, "--set", "crds.install=false"); err != nil {
		t.Errorf("crds.install=false: %v", err)
	}
}

func nestedContainer(t *testing.T, dep *unstructured.Unstructured) map[string]any {
	t.Helper()
	cs, _, _ := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "containers")
	if len(cs) != 1 {
		t.Fatalf("containers %v", cs)
	}
	return cs[0].(map[string]any)
}

// syncBuffer collects output written from another goroutine.
type syncBuffer = testenv.SyncBuffer

// operatorBinary builds cmd/chatr-operator once per test run.
func operatorBinary(t *testing.T) string {
	t.Helper()
	return testenv.Binary(t, "github.com/chatr-ai/chatr/cmd/chatr-operator")
}

// runOperator runs the operator binary as the install's ServiceAccount
// (impersonated, so every request is authorised by the install's RBAC and
// nothing more), with leader election in the install's namespace, and checks
// that it becomes ready, takes the lease, builds the room and reports
// metrics; then that it stops cleanly on SIGTERM.
func runOperator(t *testing.T, ns, serviceAccount, roomNamespace, roomName string) {
	t.Helper()
	kc, err := clientcmd.Load(env.KubeConfig)
	if err != nil {
		t.Fatalf("loading envtest's kubeconfig: %v", err)
	}
	for _, ai := range kc.AuthInfos {
		ai.Impersonate = "system:serviceaccount:" + ns + ":" + serviceAccount
	}
	kcPath := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, kcPath); err != nil {
		t.Fatal(err)
	}

	// The impersonation works: the ServiceAccount may not read nodes (the
	// operator never needs them), so the run below is held to the install's RBAC.
	restCfg, err := clientcmd.BuildConfigFromFlags("", kcPath)
	if err != nil {
		t.Fatal(err)
	}
	asSA, err := client.New(restCfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	if err := asSA.List(context.Background(), &corev1.NodeList{}); !apierrors.IsForbidden(err) {
		t.Fatalf("listing nodes as %s: %v, want forbidden", serviceAccount, err)
	}

	start := time.Now()
	var (
		metricsAddr, probeAddr string
		logs                   *syncBuffer
		cmd                    *exec.Cmd
		exited                 chan error
	)
	// launch starts the operator on two new addresses (testenv.FreeAddr).
	launch := func() {
		metricsAddr, probeAddr = testenv.FreeAddr(t), testenv.FreeAddr(t)
		logs = &syncBuffer{}
		cmd = exec.Command(operatorBinary(t), "--kubeconfig", kcPath, "--leader-elect", "--leader-election-namespace", ns,
			"--metrics-bind-address", metricsAddr, "--health-probe-bind-address", probeAddr, "--log-format", "text")
		cmd.Stdout, cmd.Stderr = logs, logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited = make(chan error, 1)
		go func(c *exec.Cmd, ch chan error) { ch <- c.Wait() }(cmd, exited)
	}
	launch()
	stopped := false
	defer func() {
		if !stopped {
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("operator logs:\n%s", logs.String())
		}
	}()

	httpGet := func(url string) (string, error) {
		resp, err := http.Get(url)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("%s: %s", url, resp.Status)
		}
		return string(b), nil
	}
	testenv.Eventually(t, 60*time.Second, "operator ready", func() error {
		select {
		case err := <-exited:
			if testenv.AddrInUse(err, logs.String()) {
				// Its address was taken after FreeAddr chose it: again, elsewhere.
				launch()
				return errors.New("the operator found its address taken; started again")
			}
			exited <- err // for the clean-up
			return testenv.StopTrying(fmt.Errorf("the operator exited: %v", err))
		default:
		}
		_, err := httpGet("http://" + probeAddr + "/readyz")
		return err
	})
	testenv.Eventually(t, 30*time.Second, "leader lease taken", func() error {
		var lease coordinationv1.Lease
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "chatr-operator.chatr.ai"}, &lease); err != nil {
			return err
		}
		if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
			return fmt.Errorf("no holder")
		}
		return nil
	})
	room := &chatrv1.ChatRoom{}
	for _, c := range chatrv1.Components {
		testenv.Eventually(t, 30*time.Second, "the sample room's "+string(c)+" Deployment", func() error {
			return k8s.Get(context.Background(), client.ObjectKey{Namespace: roomNamespace, Name: roomName + "-" + string(c)}, &appsv1.Deployment{})
		})
	}
	testenv.Eventually(t, 30*time.Second, "the sample room's status", func() error {
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: roomNamespace, Name: roomName}, room); err != nil {
			return err
		}
		if c := meta.FindStatusCondition(room.Status.Conditions, chatrv1.ConditionDegraded); c == nil || c.Status != metav1.ConditionFalse {
			return fmt.Errorf("degraded condition %+v", c)
		}
		if room.Status.ObservedGeneration != room.Generation {
			return fmt.Errorf("observedGeneration %d, generation %d", room.Status.ObservedGeneration, room.Generation)
		}
		// The streamer autoscaler lists the pods (envtest has none) and says so.
		if c := meta.FindStatusCondition(room.Status.Conditions, chatrv1.ConditionScalingActive); c == nil || c.Reason != "NoReadyPods" {
			return fmt.Errorf("ScalingActive condition %+v", c)
		}
		return nil
	})
	// A spec change makes it patch children, with the same RBAC.
	testenv.Eventually(t, 10*time.Second, "room spec changed", func() error {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(room), room); err != nil {
			return err
		}
		room.Spec.Limits.MessageMaxChars++
		return k8s.Update(context.Background(), room)
	})
	want := fmt.Sprint(room.Spec.Limits.MessageMaxChars)
	testenv.Eventually(t, 30*time.Second, "children patched after the spec change", func() error {
		var cm corev1.ConfigMap
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: roomNamespace, Name: roomName + "-config"}, &cm); err != nil {
			return err
		}
		if cm.Data["CHATR_MESSAGE_MAX_CHARS"] != want {
			return fmt.Errorf("CHATR_MESSAGE_MAX_CHARS = %q, want %s", cm.Data["CHATR_MESSAGE_MAX_CHARS"], want)
		}
		return nil
	})
	testenv.Eventually(t, 10*time.Second, "reconcile metrics", func() error {
		body, err := httpGet("http://" + metricsAddr + "/metrics")
		if err != nil {
			return err
		}
		if !strings.Contains(body, `controller_runtime_reconcile_total{controller="chatroom",result="success"}`) {
			return fmt.Errorf("no chatroom reconcile metric")
		}
		if !strings.Contains(body, `controller_runtime_reconcile_total{controller="streamerautoscaler",result="requeue_after"}`) {
			return fmt.Errorf("no streamer autoscaler reconcile metric")
		}
		return nil
	})
	t.Logf("operator as %s/%s: ready, leader and the room built in %s", ns, serviceAccount, time.Since(start).Round(time.Millisecond))
	if strings.Contains(logs.String(), "forbidden") {
		t.Errorf("the operator was refused something by the install's RBAC")
	}

	// SIGTERM: the operator releases the lease and exits cleanly.
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			t.Errorf("operator exited with %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Errorf("operator did not stop within 20s of SIGTERM")
	}
	// It handed the lease over on the way out, so another replica leads at
	// once instead of waiting for the lease to expire.
	var lease coordinationv1.Lease
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "chatr-operator.chatr.ai"}, &lease); err != nil {
		t.Fatal(err)
	}
	if h := lease.Spec.HolderIdentity; h != nil && *h != "" {
		t.Errorf("lease still held by %q after a clean stop", *h)
	}
}

// TestHelmChartShipsAlertsAndDashboard: with monitoring.* on, the chart
// renders a PrometheusRule holding every alert of files/prometheus-rules.yaml,
// each with a description and a runbook; a ServiceMonitor of the operator's
// metrics Service; and the dashboard as a ConfigMap Grafana's sidecar picks
// up. The Prometheus Operator's CRDs (generated from its Go module,
// test/crds) are installed and the API server accepts all three.
func TestHelmChartShipsAlertsAndDashboard(t *testing.T) {
	needEnv(t)
	chart := filepath.Join(repoRoot, "charts", "chatr-operator")
	out, err := helm(t, "template", "mon", chart, "--namespace", "chatr-mon",
		"--set", "monitoring.prometheusRule.enabled=true,monitoring.serviceMonitor.enabled=true,monitoring.grafanaDashboard.enabled=true",
		"--set", "monitoring.prometheusRule.labels.release=kube-prometheus-stack")
	if err != nil {
		t.Fatal(err)
	}
	objs := decode(t, out)
	rule := find(t, objs, "PrometheusRule", "mon-chatr-operator")
	if rule.GetLabels()["release"] != "kube-prometheus-stack" {
		t.Errorf("PrometheusRule labels %v", rule.GetLabels())
	}
	groups, _, _ := unstructured.NestedSlice(rule.Object, "spec", "groups")
	var alerts []string
	for _, g := range groups {
		rules, _ := g.(map[string]any)["rules"].([]any)
		for _, r := range rules {
			r := r.(map[string]any)
			name, _ := r["alert"].(string)
			alerts = append(alerts, name)
			ann, _ := r["annotations"].(map[string]any)
			for _, k := range []string{"summary", "description", "runbook"} {
				if s, _ := ann[k].(string); strings.TrimSpace(s) == "" {
					t.Errorf("alert %s has no %s", name, k)
				}
			}
			if e, _ := r["expr"].(string); strings.TrimSpace(e) == "" {
				t.Errorf("alert %s has no expr", name)
			}
		}
	}
	for _, want := range []string{"ChatRoomStreamerNearConnectionCap", "ChatRoomAPIErrors", "ChatRoomAPIOverloaded", "ChatRoomPostLatencyHigh",
		"ChatRoomVerifierBacklog", "ChatRoomMoltbookFailing", "ChatRoomDependencyDown", "ChatRoomAutoscalerLimited"} {
		if !slices.Contains(alerts, want) {
			t.Errorf("no alert %s in %v", want, alerts)
		}
	}
	find(t, objs, "ServiceMonitor", "mon-chatr-operator")
	cm := find(t, objs, "ConfigMap", "mon-chatr-operator-dashboard")
	if cm.GetLabels()["grafana_dashboard"] != "1" {
		t.Errorf("dashboard ConfigMap labels %v", cm.GetLabels())
	}
	data, _, _ := unstructured.NestedStringMap(cm.Object, "data")
	var dash struct {
		Panels []struct{ Title string }
	}
	if err := json.Unmarshal([]byte(data["chatr-rooms.json"]), &dash); err != nil || len(dash.Panels) < 10 {
		t.Errorf("dashboard JSON: %v, %d panels", err, len(dash.Panels))
	}

	if _, err := envtest.InstallCRDs(env.Config, envtest.CRDInstallOptions{
		Paths: []string{filepath.Join(repoRoot, "test", "crds", "monitoring.coreos.com")}, ErrorIfPathMissing: true}); err != nil {
		t.Fatalf("installing the monitoring CRDs: %v", err)
	}
	ensureNamespace(t, "chatr-mon")
	var monitoring []*unstructured.Unstructured
	for _, u := range objs {
		switch u.GetKind() {
		case "PrometheusRule", "ServiceMonitor", "ConfigMap":
			monitoring = append(monitoring, u)
		}
	}
	apply(t, monitoring, "chatr-mon")

	// Off by default.
	out, err = helm(t, "template", "plain", chart)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range decode(t, out) {
		if k := u.GetKind(); k == "PrometheusRule" || k == "ServiceMonitor" || u.GetLabels()["grafana_dashboard"] != "" {
			t.Errorf("rendered by default: %s %s", k, u.GetName())
		}
	}
}
