//go:build realnode

package realnode

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	chatrv1 "github.com/chatr-ai/chatr/api/v1alpha1"
	"github.com/chatr-ai/chatr/internal/fakemoltbook"
	"github.com/chatr-ai/chatr/internal/testenv"
)

var metav1GetOptions = metav1.GetOptions{}

// repoRoot is the repository, from this package's folder.
var repoRoot = filepath.Join("..", "..")

// pauseImage is the sandbox image hack/node-e2e.sh builds (test/realnode/pause).
const pauseImage = "chatr.ai/pause:test"

// probeImage runs test/realnode/probe: "another pod in the cluster".
const probeImage = "chatr.ai/probe:test"

// env is what hack/node-e2e.sh hands the test. A missing value fails the
// test: a real-node run that cannot run must not pass.
type env struct {
	assets        string // CHATR_NODE_ASSETS: kube binaries
	helm          string // CHATR_HELM
	imagesDir     string // CHATR_IMAGES_DIR: OCI archives to load
	image         string // CHATR_IMAGE: the room's image
	operatorImage string // CHATR_OPERATOR_IMAGE
}

func readEnv(t *testing.T) env {
	t.Helper()
	e := env{
		assets:        os.Getenv("CHATR_NODE_ASSETS"),
		helm:          os.Getenv("CHATR_HELM"),
		imagesDir:     os.Getenv("CHATR_IMAGES_DIR"),
		image:         os.Getenv("CHATR_IMAGE"),
		operatorImage: os.Getenv("CHATR_OPERATOR_IMAGE"),
	}
	if e.assets == "" || e.helm == "" || e.imagesDir == "" || e.image == "" || e.operatorImage == "" {
		t.Fatal("run this test with `make node-e2e` (hack/node-e2e.sh): it builds the cluster's binaries and the images, and sets CHATR_NODE_ASSETS, CHATR_HELM, CHATR_IMAGES_DIR, CHATR_IMAGE and CHATR_OPERATOR_IMAGE")
	}
	if os.Geteuid() != 0 {
		t.Fatal("a real node needs root (network namespaces, containerd, the kubelet's mounts)")
	}
	imagesDirForImport = e.imagesDir
	return e
}

var imagesDirForImport string

// imageArchives lists the OCI archives containerd imports.
func imageArchives() []string {
	ms, _ := filepath.Glob(filepath.Join(imagesDirForImport, "*.tar"))
	sort.Strings(ms)
	return ms
}

func lookupUser(name string) (*syscall.Credential, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func newClient(t *testing.T, n *node) client.Client {
	t.Helper()
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, chatrv1.AddToScheme} {
		must(t, add(scheme))
	}
	ctrllog.SetLogger(logr.Discard())
	cl, err := client.New(n.cfg, client.Options{Scheme: scheme})
	must(t, err)
	return cl
}

// eventually is testenv.Poll that fails the test on timeout and returns how
// long the condition took: the figures the run prints.
func eventually(t *testing.T, what string, timeout time.Duration, f func() error) time.Duration {
	t.Helper()
	start := time.Now()
	if err := testenv.Poll(context.Background(), timeout, f); err != nil {
		t.Fatalf("%s: not within %s: %v", what, timeout, err)
	}
	return time.Since(start)
}

// helm runs the pinned helm against the node.
func (n *node) helm(e env, args ...string) (string, error) {
	cmd := exec.Command(e.helm, append(args, "--kubeconfig", n.kubeconfig)...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+n.path("helm", "cache"), "HELM_CONFIG_HOME="+n.path("helm", "config"), "HELM_DATA_HOME="+n.path("helm", "data"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("helm %s: %v: %s", strings.Join(args, " "), err, out.String())
	}
	return out.String(), nil
}

// kustomize renders a kustomization folder of the repository.
func kustomize(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), filepath.Join(repoRoot, dir))
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	y, err := m.AsYaml()
	must(t, err)
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(y), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			break
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
	return objs
}

// apply server-side-applies objects: namespaces and CRDs first.
func apply(t *testing.T, cl client.Client, objs []*unstructured.Unstructured) {
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
			if err := cl.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner("realnode-test"), client.ForceOwnership); err != nil {
				t.Fatalf("the API server refused %s %s/%s: %v", u.GetKind(), u.GetNamespace(), u.GetName(), err)
			}
			if u.GetKind() == "CustomResourceDefinition" {
				eventually(t, "CRD "+u.GetName()+" established", 30*time.Second, func() error {
					var crd unstructured.Unstructured
					crd.SetGroupVersionKind(u.GroupVersionKind())
					if err := cl.Get(ctx, client.ObjectKey{Name: u.GetName()}, &crd); err != nil {
						return err
					}
					conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
					for _, c := range conds {
						m, _ := c.(map[string]any)
						if m["type"] == "Established" && m["status"] == "True" {
							return nil
						}
					}
					return fmt.Errorf("not established yet")
				})
			}
		}
	}
}

// startMoltbook serves the fake Moltbook on the host's end of the veth pair,
// port 443 (plain HTTP: the verifier's egress policy allows port 443).
func startMoltbook(t *testing.T, n *node) (*fakemoltbook.Server, string) {
	t.Helper()
	fake := fakemoltbook.New()
	ln, err := net.Listen("tcp", n.hostIP+":443")
	must(t, err)
	srv := &http.Server{Handler: fake, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return fake, "http://" + n.hostIP + ":443"
}

// nginxFromIngress writes an nginx configuration that routes the room's
// Ingress as an ingress controller would: each rule's paths (Prefix paths
// match whole segments), longest first, to the backend Service's ClusterIP;
// no buffering (SSE), the WebSocket upgrade passed on, and X-Forwarded-For
// appended, which the room trusts from the node's bridge address.
func nginxFromIngress(dir, listen string, ing *networkingv1.Ingress, svcs map[string]*corev1.Service) (string, error) {
	var locs strings.Builder
	for _, rule := range ing.Spec.Rules {
		if rule.HTTP == nil {
			continue
		}
		for _, p := range rule.HTTP.Paths {
			if p.Backend.Service == nil {
				return "", fmt.Errorf("path %s has no Service backend", p.Path)
			}
			svc := svcs[p.Backend.Service.Name]
			if svc == nil {
				return "", fmt.Errorf("path %s: Service %s not found", p.Path, p.Backend.Service.Name)
			}
			port := p.Backend.Service.Port.Number
			if port == 0 {
				for _, sp := range svc.Spec.Ports {
					if sp.Name == p.Backend.Service.Port.Name {
						port = sp.Port
					}
				}
			}
			if port == 0 {
				return "", fmt.Errorf("path %s: no port %q on Service %s", p.Path, p.Backend.Service.Port.Name, svc.Name)
			}
			upstream := fmt.Sprintf("http://%s:%d", svc.Spec.ClusterIP, port)
			exact := p.PathType != nil && *p.PathType == networkingv1.PathTypeExact
			var matchers []string
			switch {
			case exact:
				matchers = []string{"= " + p.Path}
			case p.Path == "/":
				matchers = []string{"/"}
			default:
				matchers = []string{"= " + strings.TrimSuffix(p.Path, "/"), strings.TrimSuffix(p.Path, "/") + "/"}
			}
			for _, m := range matchers {
				fmt.Fprintf(&locs, "    location %s { proxy_pass %s; }\n", m, upstream)
			}
		}
	}
	conf := fmt.Sprintf(`worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections 4096; }
http {
  access_log %[1]s/access.log;
  client_body_temp_path %[1]s/tmp;
  proxy_temp_path %[1]s/tmp;
  map $http_upgrade $connection_upgrade { default upgrade; '' ''; }
  server {
    listen %[2]s;
    proxy_http_version 1.1;
    proxy_buffering off;
    proxy_request_buffering off;
    proxy_connect_timeout 5s;   # ingress-nginx's default: a lost SYN is retried, not waited on for a minute
    proxy_read_timeout 1h;
    proxy_set_header Host $host;
    proxy_set_header Upgrade $http_upgrade;
    proxy_set_header Connection $connection_upgrade;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
%[3]s  }
}
`, dir, listen, locs.String())
	return conf, nil
}

// startIngress reads the room's Ingress and its Services and runs nginx on
// the node's address, port 80: the room's base URL for everything below.
func (n *node) startIngress(t *testing.T, cl client.Client, ns, name string) string {
	t.Helper()
	ctx := context.Background()
	var ing networkingv1.Ingress
	must(t, cl.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &ing))
	var list corev1.ServiceList
	must(t, cl.List(ctx, &list, client.InNamespace(ns)))
	svcs := map[string]*corev1.Service{}
	for i := range list.Items {
		svcs[list.Items[i].Name] = &list.Items[i]
	}
	dir := n.path("nginx")
	must(t, os.MkdirAll(filepath.Join(dir, "tmp"), 0o755))
	conf, err := nginxFromIngress(dir, n.nodeIP+":80", &ing, svcs)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644))
	if p := n.procs["nginx"]; p != nil {
		p.stop(5 * time.Second)
	}
	_, err = n.start("nginx", "nginx", "-c", filepath.Join(dir, "nginx.conf"), "-p", dir, "-g", "daemon off;")
	must(t, err)
	base := "http://" + n.nodeIP
	// Both backends answer through nginx: the page (streamers) and the
	// agent list (API). kube-proxy may program a Service's rules a moment
	// after its pods turn Ready.
	hc := &http.Client{Timeout: 10 * time.Second}
	must(t, n.waitFor("nginx serving the room's page and API", 90*time.Second, func() error {
		for _, path := range []string{"/", "/api/agents"} {
			resp, err := hc.Get(base + path)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("GET %s via the ingress: %d", path, resp.StatusCode)
			}
		}
		return nil
	}, "nginx"))
	return base
}

// podsOf lists the running pods of a room component.
func podsOf(ctx context.Context, cl client.Client, ns string, labels map[string]string) ([]corev1.Pod, error) {
	var list corev1.PodList
	if err := cl.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels(labels)); err != nil {
		return nil, err
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning {
			out = append(out, p)
		}
	}
	return out, nil
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// containerPID finds the host PID of a pod's container through containerd.
func (n *node) containerPID(containerID string) (int, error) {
	id := strings.TrimPrefix(containerID, "containerd://")
	out, err := run("ctr", "--address", n.path("containerd", "containerd.sock"), "-n", "k8s.io", "tasks", "ls")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == id {
			return strconv.Atoi(f[1])
		}
	}
	return 0, errors.New("no task for container " + id)
}

// podLog reads a pod's container log from the kubelet's log folder.
func (n *node) podLog(ns, pod string) string {
	ms, _ := filepath.Glob(filepath.Join(n.path("pod-logs"), ns+"_"+pod+"_*", "*", "*.log"))
	var b strings.Builder
	for _, m := range ms {
		c, _ := os.ReadFile(m)
		b.Write(c)
	}
	return b.String()
}
