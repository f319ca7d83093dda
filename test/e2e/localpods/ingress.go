package localpods

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// BackendHeader is set on every proxied response to the name of the pod that
// served it (a harness aid; a real ingress does not add it).
const BackendHeader = "X-Localpods-Pod"

// Route is one path of the Ingress.
type Route struct {
	// Prefix matches like an Ingress path of type Prefix: by whole path
	// elements ("/api" matches /api and /api/x, not /apix). The longest
	// matching prefix wins.
	Prefix string
	// Backend names a Service in the namespace, whose selector and ports
	// are used; when no Service has that name, a Deployment, whose
	// spec.selector is used.
	Backend string
	// Port is the Service port (name or number) whose targetPort is used;
	// for a Deployment backend, the container port (name or number). Zero:
	// the Service's first port, or container port 8080.
	Port intstr.IntOrString
}

// ChatRoomRoutes is the routing of the ChatRoom Ingress the operator makes:
// the stream endpoints and the spectator page go to the streamers, the rest
// of /api to the API. streamer and api name the Services (or Deployments),
// e.g. "<room>-streamer" and "<room>-api"; the port is the one named "http".
func ChatRoomRoutes(streamer, api string) []Route {
	port := intstr.FromString("http")
	return []Route{
		{Prefix: "/api/stream", Backend: streamer, Port: port},
		{Prefix: "/api/ws", Backend: streamer, Port: port},
		{Prefix: "/api", Backend: api, Port: port},
		{Prefix: "/", Backend: streamer, Port: port},
	}
}

// Ingress is a local reverse proxy on one address that routes like an
// Ingress: each request goes to one of the Ready, not terminating pods of
// its route's backend, round robin, at the pod's local address from the
// Runner's port table. Backends are read from the API server (Services or
// Deployments, Pods and their Ready condition), kept current by watches.
// Responses are flushed as they are written (Server-Sent Events pass
// through) and WebSocket upgrades are proxied. No ready pod: 503. It sets
// X-Forwarded-For (replacing any the client sent, like ingress-nginx by
// default) and keeps the client's Host.
type Ingress struct {
	c      client.WithWatch
	ns     string
	runner *Runner
	routes []Route
	log    *slog.Logger
	proxy  *httputil.ReverseProxy
	tr     *http.Transport

	mu       sync.RWMutex
	backends [][]backend // per route
	rr       []atomic.Uint64

	trigger chan struct{}
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	srv     *http.Server
	ln      net.Listener
}

type backend struct{ pod, addr string }

type backendKey struct{}

// NewIngress returns an Ingress for the namespace's pods run by runner.
func NewIngress(cfg *rest.Config, namespace string, runner *Runner, routes []Route) (*Ingress, error) {
	if runner == nil {
		return nil, errors.New("localpods: NewIngress needs the Runner (its port table)")
	}
	if len(routes) == 0 {
		return nil, errors.New("localpods: NewIngress needs routes")
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, err
	}
	rs := slices.Clone(routes)
	// Longest prefix first.
	slices.SortStableFunc(rs, func(a, b Route) int { return len(b.Prefix) - len(a.Prefix) })
	in := &Ingress{
		c: c, ns: namespace, runner: runner, routes: rs,
		log:      runner.log.With("component", "ingress"),
		backends: make([][]backend, len(rs)),
		rr:       make([]atomic.Uint64, len(rs)),
		trigger:  make(chan struct{}, 1),
	}
	in.tr = http.DefaultTransport.(*http.Transport).Clone()
	in.proxy = &httputil.ReverseProxy{
		Transport: in.tr,
		Rewrite: func(pr *httputil.ProxyRequest) {
			b := pr.In.Context().Value(backendKey{}).(backend)
			pr.SetURL(&url.URL{Scheme: "http", Host: b.addr})
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		},
		FlushInterval: -1,
		ModifyResponse: func(resp *http.Response) error {
			if b, ok := resp.Request.Context().Value(backendKey{}).(backend); ok {
				resp.Header.Set(BackendHeader, b.pod)
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			b, _ := r.Context().Value(backendKey{}).(backend)
			if r.Context().Err() == nil {
				in.log.Warn("proxy", "pod", b.pod, "path", r.URL.Path, "err", err)
			}
			http.Error(w, "bad gateway: "+b.pod+": "+err.Error(), http.StatusBadGateway)
		},
	}
	return in, nil
}

// Start listens on addr ("" or "127.0.0.1:0": a free port), resolves the
// backends once and serves until Close.
func (in *Ingress) Start(addr string) error {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	in.ln = ln
	in.ctx, in.cancel = context.WithCancel(context.Background())
	if err := in.refresh(in.ctx); err != nil {
		in.log.Warn("first refresh", "err", err)
	}
	in.srv = &http.Server{Handler: in, ReadHeaderTimeout: 10 * time.Second}
	kick := func() {
		select {
		case in.trigger <- struct{}{}:
		default:
		}
	}
	in.wg.Add(5)
	go func() { defer in.wg.Done(); _ = in.srv.Serve(ln) }()
	go func() { defer in.wg.Done(); watchAndKick(in.ctx, in.c, &corev1.PodList{}, in.ns, kick) }()
	go func() { defer in.wg.Done(); watchAndKick(in.ctx, in.c, &corev1.ServiceList{}, in.ns, kick) }()
	go func() { defer in.wg.Done(); watchAndKick(in.ctx, in.c, &appsv1.DeploymentList{}, in.ns, kick) }()
	go func() {
		defer in.wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-in.ctx.Done():
				return
			case <-in.trigger:
			case <-t.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			err := in.refresh(ctx)
			cancel()
			if err != nil && in.ctx.Err() == nil {
				in.log.Warn("refresh", "err", err)
			}
		}
	}()
	return nil
}

// Addr is the address it listens on.
func (in *Ingress) Addr() string { return in.ln.Addr().String() }

// URL is its base URL, http://<addr>.
func (in *Ingress) URL() string { return "http://" + in.Addr() }

// Close stops listening and closes open connections (upgraded WebSocket
// connections end when their backend closes them).
func (in *Ingress) Close() error {
	if in.cancel == nil {
		return nil
	}
	in.cancel()
	err := in.srv.Close()
	in.wg.Wait()
	in.tr.CloseIdleConnections()
	return err
}

// Backends returns the names of the pods that the route with this prefix
// sends to now.
func (in *Ingress) Backends(prefix string) []string {
	in.mu.RLock()
	defer in.mu.RUnlock()
	for i, rt := range in.routes {
		if rt.Prefix == prefix {
			var out []string
			for _, b := range in.backends[i] {
				out = append(out, b.pod)
			}
			return out
		}
	}
	return nil
}

// ServeHTTP routes one request.
func (in *Ingress) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	i := in.match(r.URL.Path)
	if i < 0 {
		http.NotFound(w, r)
		return
	}
	in.mu.RLock()
	bs := in.backends[i]
	in.mu.RUnlock()
	if len(bs) == 0 {
		http.Error(w, fmt.Sprintf("no ready backend for %s (%s)", in.routes[i].Prefix, in.routes[i].Backend), http.StatusServiceUnavailable)
		return
	}
	b := bs[(in.rr[i].Add(1)-1)%uint64(len(bs))]
	in.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), backendKey{}, b)))
}

func (in *Ingress) match(path string) int {
	for i, rt := range in.routes {
		if prefixMatch(rt.Prefix, path) {
			return i
		}
	}
	return -1
}

// prefixMatch is the Ingress Prefix path type: element-wise.
func prefixMatch(prefix, path string) bool {
	p := strings.TrimSuffix(prefix, "/")
	if p == "" {
		return true
	}
	return path == p || strings.HasPrefix(path, p+"/")
}

// refresh resolves every route's backends from the API server.
func (in *Ingress) refresh(ctx context.Context) error {
	var pods corev1.PodList
	if err := in.c.List(ctx, &pods, client.InNamespace(in.ns)); err != nil {
		return err
	}
	table := make([][]backend, len(in.routes))
	var errs []error
	type resolved struct {
		sel  labels.Selector
		port intstr.IntOrString
		err  error
	}
	seen := map[string]resolved{} // routes share backends
	for i, rt := range in.routes {
		key := rt.Backend + "\x00" + rt.Port.String()
		res, ok := seen[key]
		if !ok {
			res.sel, res.port, res.err = in.resolve(ctx, rt)
			seen[key] = res
		}
		sel, port, err := res.sel, res.port, res.err
		if err != nil {
			errs = append(errs, fmt.Errorf("route %s: %w", rt.Prefix, err))
			continue
		}
		for j := range pods.Items {
			pod := &pods.Items[j]
			if !sel.Matches(labels.Set(pod.Labels)) || pod.DeletionTimestamp != nil || !podReady(pod) {
				continue
			}
			cp, ok := podPort(pod, port)
			if !ok {
				continue
			}
			addr, ok := in.runner.Addr(pod.Name, cp)
			if !ok {
				continue
			}
			table[i] = append(table[i], backend{pod: pod.Name, addr: addr})
		}
		slices.SortFunc(table[i], func(a, b backend) int { return strings.Compare(a.pod, b.pod) })
	}
	in.mu.Lock()
	in.backends = table
	in.mu.Unlock()
	return errors.Join(errs...)
}

// resolve returns a route's pod selector and the container port (name or
// number) to send to.
func (in *Ingress) resolve(ctx context.Context, rt Route) (labels.Selector, intstr.IntOrString, error) {
	svc := &corev1.Service{}
	err := in.c.Get(ctx, client.ObjectKey{Namespace: in.ns, Name: rt.Backend}, svc)
	switch {
	case err == nil:
		if len(svc.Spec.Selector) == 0 || len(svc.Spec.Ports) == 0 {
			return labels.Nothing(), intstr.IntOrString{}, nil
		}
		sp := svc.Spec.Ports[0]
		if !isZero(rt.Port) {
			found := false
			for _, p := range svc.Spec.Ports {
				if (rt.Port.Type == intstr.String && p.Name == rt.Port.StrVal) || (rt.Port.Type == intstr.Int && p.Port == rt.Port.IntVal) {
					sp, found = p, true
					break
				}
			}
			if !found {
				return nil, intstr.IntOrString{}, fmt.Errorf("service %s has no port %s", rt.Backend, rt.Port.String())
			}
		}
		target := sp.TargetPort
		if isZero(target) {
			target = intstr.FromInt32(sp.Port)
		}
		return labels.SelectorFromSet(svc.Spec.Selector), target, nil
	case !apierrors.IsNotFound(err):
		return nil, intstr.IntOrString{}, err
	}
	d := &appsv1.Deployment{}
	if err := in.c.Get(ctx, client.ObjectKey{Namespace: in.ns, Name: rt.Backend}, d); err != nil {
		if apierrors.IsNotFound(err) {
			return labels.Nothing(), intstr.IntOrString{}, nil // not made yet
		}
		return nil, intstr.IntOrString{}, err
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return nil, intstr.IntOrString{}, err
	}
	port := rt.Port
	if isZero(port) {
		port = intstr.FromInt32(DefaultMainPort)
	}
	return sel, port, nil
}

func isZero(p intstr.IntOrString) bool {
	return (p.Type == intstr.Int && p.IntVal == 0) || (p.Type == intstr.String && p.StrVal == "")
}

// podPort resolves a port number or name against the pod's containers.
func podPort(pod *corev1.Pod, port intstr.IntOrString) (int32, bool) {
	if port.Type == intstr.Int {
		return port.IntVal, port.IntVal > 0
	}
	for i := range pod.Spec.Containers {
		if cp, ok := containerPort(&pod.Spec.Containers[i], port); ok {
			return cp, true
		}
	}
	return 0, false
}

func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
