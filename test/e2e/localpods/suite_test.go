package localpods

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/chatr-ai/chatr/internal/testenv"
)

// The envtest tests run a real kube-apiserver and etcd; the pods are
// processes of testdata/fakepod, built once in TestMain.
var (
	restCfg    *rest.Config
	k8s        client.Client
	fakepodBin string
	skipReason string
	nsCounter  atomic.Int64
)

// fakeCommand is the container command the tests' Deployments use; the
// runner maps it to fakepodBin.
const fakeCommand = "/fakepod"

func TestMain(m *testing.M) {
	if _, skipReason = testenv.EnvtestAssets(); skipReason != "" {
		fmt.Fprintln(os.Stderr, "NO ENVTEST:", skipReason)
		os.Exit(m.Run())
	}
	os.Exit(runWithEnvtest(m))
}

func runWithEnvtest(m *testing.M) int {
	dir, err := os.MkdirTemp("", "localpods-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	fakepodBin = filepath.Join(dir, "fakepod")
	build := exec.Command("go", "build", "-o", fakepodBin, "./testdata/fakepod")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building testdata/fakepod:", err)
		return 1
	}

	env := &envtest.Environment{}
	cfg, err := env.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting envtest:", err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	restCfg = cfg
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if k8s, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// needEnv ends the test, saying why, when there is no API server: a
// failure under CI and make test, a skip otherwise (testenv.Missing).
func needEnv(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		testenv.Missing(t, "%s", skipReason)
	}
}

func newNamespace(t *testing.T) string {
	t.Helper()
	ns := fmt.Sprintf("lp-%d", nsCounter.Add(1))
	if err := k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	return ns
}

// startRunner starts a Runner for ns; it is stopped (and its logs shown if
// the test failed) when the test ends.
func startRunner(t *testing.T, ns string, opts Options) *Runner {
	t.Helper()
	if opts.Binaries == nil {
		opts.Binaries = map[string]string{fakeCommand: fakepodBin}
	}
	if opts.LogDir == "" {
		opts.LogDir = t.TempDir()
	}
	r, err := New(restCfg, ns, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.Stop()
		if t.Failed() {
			dumpLogs(t, r.LogDir())
		}
	})
	return r
}

func dumpLogs(t *testing.T, dir string) {
	files, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		t.Logf("---- %s\n%s", filepath.Base(f), b)
	}
}

// fakeDeployment is a Deployment of fakepod shaped like the operator's:
// ports http 8080 and admin 9090, CHATR_LISTEN/CHATR_ADMIN_LISTEN on them,
// readiness on admin /readyz.
func fakeDeployment(ns, name string, replicas int32, env ...corev1.EnvVar) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	grace := int64(10)
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: &grace,
					Containers: []corev1.Container{{
						Name:    "app",
						Image:   "chatr:test",
						Command: []string{fakeCommand},
						Env: append([]corev1.EnvVar{
							{Name: EnvListen, Value: ":8080"},
							{Name: EnvAdminListen, Value: ":9090"},
						}, env...),
						Ports: []corev1.ContainerPort{
							{Name: "http", ContainerPort: 8080},
							{Name: "admin", ContainerPort: 9090},
						},
						ReadinessProbe: &corev1.Probe{
							ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
								Path: "/readyz", Port: intstr.FromString("admin"),
							}},
							PeriodSeconds: 5, FailureThreshold: 1,
						},
					}},
				},
			},
		},
	}
}

func create(t *testing.T, obj client.Object) {
	t.Helper()
	if err := k8s.Create(context.Background(), obj); err != nil {
		t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}

// active returns the runner's pods of a Deployment that are not terminating.
func active(r *Runner, dep string) []PodInfo {
	var out []PodInfo
	for _, p := range r.Pods() {
		if p.Deployment == dep && !p.Terminating {
			out = append(out, p)
		}
	}
	return out
}

// waitReady waits until the Deployment has exactly n pods, all running and
// Ready (in the runner and in the API), and returns them sorted by name.
func waitReady(t *testing.T, r *Runner, ns, dep string, n int) []PodInfo {
	t.Helper()
	var pods []PodInfo
	testenv.Eventually(t, 20*time.Second, fmt.Sprintf("%d ready pods of %s", n, dep), func() error {
		all := r.Pods()
		pods = pods[:0]
		for _, p := range all {
			if p.Deployment != dep {
				continue
			}
			if p.Terminating {
				return fmt.Errorf("%s still terminating", p.Name)
			}
			if p.PID == 0 || !p.Ready {
				return fmt.Errorf("%s not running and ready: %+v", p.Name, p)
			}
			pods = append(pods, p)
		}
		if len(pods) != n {
			return fmt.Errorf("%d pods", len(pods))
		}
		api := apiPods(t, ns, dep)
		if len(api) != n {
			return fmt.Errorf("%d pods in the API", len(api))
		}
		for _, ap := range api {
			if !podReady(&ap) {
				return fmt.Errorf("pod %s not Ready in the API", ap.Name)
			}
		}
		return nil
	})
	return pods
}

// apiPods lists the Pods of a Deployment (by its app label) in the API.
func apiPods(t *testing.T, ns, dep string) []corev1.Pod {
	t.Helper()
	var pl corev1.PodList
	if err := k8s.List(context.Background(), &pl, client.InNamespace(ns), client.MatchingLabels{"app": dep}); err != nil {
		t.Fatal(err)
	}
	sort.Slice(pl.Items, func(i, j int) bool { return pl.Items[i].Name < pl.Items[j].Name })
	return pl.Items
}

func getDeployment(t *testing.T, ns, name string) *appsv1.Deployment {
	t.Helper()
	d := &appsv1.Deployment{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, d); err != nil {
		t.Fatal(err)
	}
	return d
}

func scale(t *testing.T, ns, name string, n int32) {
	t.Helper()
	d := getDeployment(t, ns, name)
	patch := client.MergeFrom(d.DeepCopy())
	d.Spec.Replicas = &n
	if err := k8s.Patch(context.Background(), d, patch); err != nil {
		t.Fatal(err)
	}
}

func annotatePod(t *testing.T, ns, name, key, value string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{key: value}}})
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if err := k8s.Patch(context.Background(), pod, client.RawPatch("application/merge-patch+json", body)); err != nil {
		t.Fatal(err)
	}
}

// podEnv asks a fakepod for its arguments and environment.
func podEnv(t *testing.T, p PodInfo) (args []string, env map[string]string) {
	t.Helper()
	resp, err := http.Get("http://" + p.Listen + "/env")
	if err != nil {
		t.Fatalf("GET /env of %s: %v", p.Name, err)
	}
	defer resp.Body.Close()
	var out struct {
		Pod  string
		Args []string
		Env  map[string]string
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	if out.Pod != p.Name {
		t.Fatalf("pod %s answered as %q", p.Name, out.Pod)
	}
	return out.Args, out.Env
}

// setReady flips a fakepod's /readyz.
func setReady(t *testing.T, p PodInfo, ready bool) {
	t.Helper()
	v := "0"
	if ready {
		v = "1"
	}
	resp, err := http.Post("http://"+p.AdminListen+"/ready?v="+v, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

func alive(pid int) bool {
	return pid > 0 && syscall.Kill(pid, 0) == nil
}

func historyOf(r *Runner, pod string) []ProcessExit {
	var out []ProcessExit
	for _, e := range r.History() {
		if e.Pod == pod {
			out = append(out, e)
		}
	}
	return out
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func podCondition(p *corev1.Pod, c corev1.PodConditionType) corev1.ConditionStatus {
	for _, x := range p.Status.Conditions {
		if x.Type == c {
			return x.Status
		}
	}
	return ""
}

func deploymentCondition(d *appsv1.Deployment, c appsv1.DeploymentConditionType) (corev1.ConditionStatus, string) {
	for _, x := range d.Status.Conditions {
		if x.Type == c {
			return x.Status, x.Reason
		}
	}
	return "", ""
}

func names(ps []PodInfo) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Name)
	}
	return out
}

var errNotYet = errors.New("not yet")

func contains(s, sub string) bool { return strings.Contains(s, sub) }
