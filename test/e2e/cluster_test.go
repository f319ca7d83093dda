package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	chatrv1 "github.com/chatr-ai/chatr/api/v1alpha1"
	"github.com/chatr-ai/chatr/internal/testenv"
)

// repoRoot is the repository, from this package's folder.
var repoRoot = filepath.Join("..", "..")

// cluster is a bare control plane (envtest) with the ChatRoom CRD.
type cluster struct {
	cfg        *rest.Config
	k8s        client.Client
	scheme     *runtime.Scheme
	kubeconfig string // a kubeconfig file for processes (the operator)
}

// startCluster starts kube-apiserver and etcd with the CRD from config/crd
// installed, and writes a kubeconfig file for them into dir.
func startCluster(t *testing.T, dir string) *cluster {
	t.Helper()
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, chatrv1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(repoRoot, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := env.Start()
	// Stop also when Start failed halfway (a CRD the API server refused):
	// kube-apiserver and etcd may be running already.
	t.Cleanup(func() { _ = env.Stop() })
	if err != nil {
		t.Fatalf("starting envtest (KUBEBUILDER_ASSETS=%s): %v", os.Getenv("KUBEBUILDER_ASSETS"), err)
	}
	kc, err := clientcmd.Load(env.KubeConfig)
	if err != nil {
		t.Fatalf("loading envtest's kubeconfig: %v", err)
	}
	path := filepath.Join(dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	k8s, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return &cluster{cfg: cfg, k8s: k8s, scheme: scheme, kubeconfig: path}
}

// buildBinaries builds chatrd and chatr-operator into dir with one go build
// (the build cache makes it quick after the first time).
func buildBinaries(t *testing.T, dir string) (chatrd, operator string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator),
		"github.com/chatr-ai/chatr/cmd/chatrd", "github.com/chatr-ai/chatr/cmd/chatr-operator")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build chatrd chatr-operator: %v\n%s", err, out)
	}
	return filepath.Join(dir, "chatrd"), filepath.Join(dir, "chatr-operator")
}

// process is a child process with its output in a log file.
type process struct {
	name   string
	cmd    *exec.Cmd
	log    string
	exited chan struct{}
	err    error
}

// startProcess starts bin with args, logging to logPath, in its own process
// group; it is stopped (SIGTERM, then SIGKILL after 10 s) when the test ends.
func startProcess(t *testing.T, name, logPath, bin string, args ...string) *process {
	t.Helper()
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("starting %s: %v", name, err)
	}
	p := &process{name: name, cmd: cmd, log: logPath, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.exited)
	}()
	t.Cleanup(func() { p.stop(10 * time.Second) })
	return p
}

// stop sends SIGTERM and waits up to grace before SIGKILL; it returns how
// long the process took to exit.
func (p *process) stop(grace time.Duration) time.Duration {
	start := time.Now()
	select {
	case <-p.exited:
		return 0
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	return time.Since(start)
}

// alive reports whether the process is still running.
func (p *process) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// startOperator runs the chatr-operator binary against the cluster, as
// `go run ./cmd/chatr-operator --kubeconfig ...` would outside a cluster,
// and waits for its /readyz (caches synced).
func startOperator(t *testing.T, c *cluster, bin, logDir string) *process {
	t.Helper()
	for try := 1; ; try++ {
		probe := testenv.FreeAddr(t)
		p := startProcess(t, "chatr-operator", filepath.Join(logDir, "operator.log"), bin,
			"--kubeconfig", c.kubeconfig,
			"--metrics-bind-address", "0",
			"--health-probe-bind-address", probe,
			"--log-format", "text")
		err := testenv.Poll(context.Background(), 30*time.Second, func() error {
			if !p.alive() {
				return testenv.StopTrying(fmt.Errorf("the operator exited: %v\n%s", p.err, tail(p.log, 30)))
			}
			resp, err := http.Get("http://" + probe + "/readyz")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("status %d", resp.StatusCode)
			}
			return nil
		})
		if err == nil {
			return p
		}
		// Its probe address was taken after FreeAddr chose it: again, elsewhere.
		if try < 3 && !p.alive() && testenv.AddrInUse(p.err, tail(p.log, 30)) {
			continue
		}
		t.Fatalf("the operator's /readyz: %v", err)
	}
}

// sample is the room of config/samples and its Secrets, as decoded from the
// files its kustomization lists.
type sample struct {
	// room is kept unstructured: the test sets spec fields by their JSON
	// names, so it follows the CRD as it is, and the API server checks them
	// (strict field validation).
	room    *unstructured.Unstructured
	secrets []*corev1.Secret
}

// loadSample reads config/samples: the resources of its kustomization.yaml,
// decoded into typed objects.
func loadSample(t *testing.T) sample {
	t.Helper()
	dir := filepath.Join(repoRoot, "config", "samples")
	var kust struct {
		Resources []string `json:"resources"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := utilyaml.Unmarshal(b, &kust); err != nil {
		t.Fatalf("config/samples/kustomization.yaml: %v", err)
	}
	var s sample
	for _, res := range kust.Resources {
		b, err := os.ReadFile(filepath.Join(dir, res))
		if err != nil {
			t.Fatal(err)
		}
		d := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
		for {
			var u unstructured.Unstructured
			if err := d.Decode(&u.Object); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				t.Fatalf("config/samples/%s: %v", res, err)
			}
			if len(u.Object) == 0 {
				continue
			}
			switch u.GetKind() {
			case "ChatRoom":
				s.room = u.DeepCopy()
			case "Secret":
				sec := &corev1.Secret{}
				if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, sec); err != nil {
					t.Fatalf("config/samples/%s: %v", res, err)
				}
				s.secrets = append(s.secrets, sec)
			default:
				t.Fatalf("config/samples/%s: unexpected %s", res, u.GetKind())
			}
		}
	}
	if s.room == nil {
		t.Fatal("config/samples holds no ChatRoom")
	}
	return s
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
