package localpods

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/json"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/watch"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

const (
	// Finalizer is held on every Pod the runner creates until its process
	// has exited, so a terminating pod shows its deletionTimestamp in the
	// API for as long as the process drains.
	Finalizer = "localpods.chatr.ai/process"
	// PodTemplateHashLabel is the label a ReplicaSet puts on its pods; the
	// runner sets it to a hash of the Deployment's pod template.
	PodTemplateHashLabel = "pod-template-hash"
	// PodIP is every local pod's address (status.podIP, fieldRef).
	PodIP = "127.0.0.1"
	// DefaultNodeName is the spec.nodeName of local pods.
	DefaultNodeName = "localpods"
)

// Options configure a Runner. Only Binaries is required.
type Options struct {
	// Binaries maps a container's command[0] (e.g. "/chatrd") or, failing
	// that, its image to a local executable. A container with a command runs
	// as binary + command[1:] + args; one without runs as binary + args. A
	// pod whose container matches nothing waits with reason NoLocalBinary.
	Binaries map[string]string
	// LogDir receives one log file per pod (<pod>.log, stdout and stderr,
	// all restarts), a work directory per pod, and the runner's own log
	// (runner.log). Default: a new temporary directory.
	LogDir string
	// NodeName is written to spec.nodeName. Default DefaultNodeName.
	NodeName string
	// ProbePeriod replaces the readiness probe's periodSeconds (the
	// thresholds still count). Default 200ms.
	ProbePeriod time.Duration
	// ResyncPeriod is how often the runner reconciles without a watch event.
	// Default 1s.
	ResyncPeriod time.Duration
	// RestartBackoff is the first wait before restarting a process that
	// exited on its own; it doubles up to MaxRestartBackoff and resets after
	// a run of 10s. Defaults 250ms and 5s.
	RestartBackoff    time.Duration
	MaxRestartBackoff time.Duration
	// MaxGracePeriod, if positive, caps every termination grace period
	// (handy for fast test teardown). Zero: the pod's own.
	MaxGracePeriod time.Duration
	// ExtraEnv ("KEY=value") is given to every process before the
	// container's own environment (which wins), e.g. GOCOVERDIR.
	ExtraEnv []string
	// Logger receives the runner's own log. Default: LogDir/runner.log.
	Logger *slog.Logger
}

// Runner runs the pods of every Deployment of one namespace as local
// processes: a test harness standing in for the ReplicaSet controller, the
// scheduler and the kubelet on a control plane (envtest) that has none.
//
// For each Deployment it keeps spec.replicas pods. Each is a real Pod object
// (name <deployment>-<random>, the template's labels plus pod-template-hash,
// its annotations, an owner reference to the Deployment, the Finalizer) and
// one process running the first container's command and args with its
// environment resolved like the kubelet does (value with $(VAR) expansion,
// secretKeyRef, configMapKeyRef, fieldRef, resourceFieldRef, envFrom).
//
// Ports: in a cluster every pod binds :8080 and :9090 on its own IP; here all
// share 127.0.0.1, so each pod gets its own free loopback port for every
// container port it declares or uses (the port table, see PodInfo.Ports and
// Runner.Addr) and the runner overrides CHATR_LISTEN (its container port,
// default 8080) and CHATR_ADMIN_LISTEN (when set and not empty) with
// 127.0.0.1:<local port>. The readiness probe and the Ingress use the same
// table.
//
// It reports back like a kubelet and a deployment controller: Pod status
// (phase, podIP 127.0.0.1, conditions, container status with restarts)
// through the status subresource, readiness from the container's
// readinessProbe (httpGet or tcpSocket, polled every ProbePeriod), and the
// Deployment's status (replicas, updated, ready, available, unavailable,
// terminating, observedGeneration, Available and Progressing conditions).
//
// Scale-down picks victims in the ReplicaSet controller's order (see
// rankVictims) and terminates them like a kubelet: the Pod is deleted (it
// stays, terminating, held by the Finalizer), preStop sleep/httpGet runs,
// SIGTERM goes to the process group, and SIGKILL after the grace period
// (deletionGracePeriodSeconds or terminationGracePeriodSeconds); then the
// finalizer is removed. Deleting a Pod in the API terminates its process the
// same way and the Deployment gets a replacement. A process that exits on its
// own is restarted after a short backoff. A changed pod template (new
// pod-template-hash) rolls: all new pods start at once, and old pods are
// stopped as new ones turn Ready (Recreate: old ones first).
type Runner struct {
	c    client.WithWatch
	ns   string
	opts Options
	log  *slog.Logger

	logFile *os.File

	apiCtx     context.Context // API calls; cancelled last in Stop
	apiCancel  context.CancelFunc
	loopCtx    context.Context // the reconcile loop and watches
	loopCancel context.CancelFunc
	loopWG     sync.WaitGroup
	podWG      sync.WaitGroup
	trigger    chan struct{}

	mu        sync.Mutex
	pods      map[string]*localPod
	usedPorts map[int]bool
	history   []ProcessExit
	seq       uint64
	holdUntil map[types.UID]time.Time // a Deployment whose pod creation failed waits
	started   bool
	stopOnce  sync.Once
}

// PodInfo is a snapshot of one local pod.
type PodInfo struct {
	Name         string
	Deployment   string
	TemplateHash string
	// PID of the running process; 0 while it is not running.
	PID int
	// Ports maps each container port to its local port on 127.0.0.1.
	Ports map[int32]int
	// Listen and AdminListen are the values given in CHATR_LISTEN and
	// CHATR_ADMIN_LISTEN (empty if not given).
	Listen, AdminListen string
	Ready               bool
	Terminating         bool
	Restarts            int
	LogPath             string
	Created             time.Time
}

// ProcessExit records one process that ended.
type ProcessExit struct {
	Pod        string
	Deployment string
	// Reason says why the runner stopped it: "scale-down", "rollout",
	// "pod-deleted", "deployment-deleted", "runner-stop"; empty when the
	// process exited on its own (and was restarted unless the pod was
	// stopping).
	Reason string
	// TermSent is when SIGTERM was sent (zero if it was not).
	TermSent time.Time
	// Killed: SIGKILL was needed after the grace period.
	Killed bool
	// ExitCode is the exit status, or -1 when a signal ended the process.
	ExitCode int
	// Signal ends the process, if one did ("terminated", "killed").
	Signal string
	Exited time.Time
}

// New returns a Runner for the namespace; Start starts it.
func New(cfg *rest.Config, namespace string, opts Options) (*Runner, error) {
	if namespace == "" {
		return nil, errors.New("localpods: namespace is required")
	}
	if len(opts.Binaries) == 0 {
		return nil, errors.New("localpods: Options.Binaries is empty")
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, err
	}
	if opts.LogDir == "" {
		if opts.LogDir, err = os.MkdirTemp("", "localpods-"); err != nil {
			return nil, err
		}
	} else if err := os.MkdirAll(opts.LogDir, 0o755); err != nil {
		return nil, err
	}
	if opts.NodeName == "" {
		opts.NodeName = DefaultNodeName
	}
	if opts.ProbePeriod <= 0 {
		opts.ProbePeriod = 200 * time.Millisecond
	}
	if opts.ResyncPeriod <= 0 {
		opts.ResyncPeriod = time.Second
	}
	if opts.RestartBackoff <= 0 {
		opts.RestartBackoff = 250 * time.Millisecond
	}
	if opts.MaxRestartBackoff <= 0 {
		opts.MaxRestartBackoff = 5 * time.Second
	}
	r := &Runner{
		c: c, ns: namespace, opts: opts,
		trigger:   make(chan struct{}, 1),
		pods:      map[string]*localPod{},
		usedPorts: map[int]bool{},
		holdUntil: map[types.UID]time.Time{},
	}
	r.log = opts.Logger
	if r.log == nil {
		f, err := os.OpenFile(filepath.Join(opts.LogDir, "runner.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, err
		}
		r.logFile = f
		r.log = slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	r.log = r.log.With("namespace", namespace)
	r.apiCtx, r.apiCancel = context.WithCancel(context.Background())
	r.loopCtx, r.loopCancel = context.WithCancel(r.apiCtx)
	return r, nil
}

// Start starts watching Deployments and running their pods. It returns at
// once; cancelling ctx is the same as calling Stop.
func (r *Runner) Start(ctx context.Context) error {
	r.mu.Lock()
	if r.started {
		r.mu.Unlock()
		return errors.New("localpods: runner already started")
	}
	r.started = true
	r.mu.Unlock()
	r.loopWG.Add(3)
	go func() { defer r.loopWG.Done(); watchAndKick(r.loopCtx, r.c, &appsv1.DeploymentList{}, r.ns, r.kick) }()
	go func() { defer r.loopWG.Done(); watchAndKick(r.loopCtx, r.c, &corev1.PodList{}, r.ns, r.kick) }()
	go func() { defer r.loopWG.Done(); r.loop() }()
	go func() {
		select {
		case <-ctx.Done():
			r.Stop()
		case <-r.loopCtx.Done():
		}
	}()
	r.kick()
	return nil
}

// Stop stops the reconcile loop, terminates every process (preStop,
// SIGTERM, SIGKILL after the grace period, capped by MaxGracePeriod),
// removes the Pods from the API and returns when all is done. It is safe
// to call more than once.
func (r *Runner) Stop() {
	r.stopOnce.Do(func() {
		r.loopCancel()
		r.loopWG.Wait()
		r.mu.Lock()
		pods := slices.Collect(maps.Values(r.pods))
		r.mu.Unlock()
		for _, p := range pods {
			p.stop("runner-stop", -1, false)
		}
		r.podWG.Wait()
		r.apiCancel()
		r.log.Info("stopped")
		if r.logFile != nil {
			_ = r.logFile.Close()
		}
	})
}

// LogDir is the folder of the pods' logs.
func (r *Runner) LogDir() string { return r.opts.LogDir }

// Pods returns a snapshot of the local pods (terminating ones included),
// sorted by name.
func (r *Runner) Pods() []PodInfo {
	r.mu.Lock()
	pods := slices.Collect(maps.Values(r.pods))
	r.mu.Unlock()
	out := make([]PodInfo, 0, len(pods))
	for _, p := range pods {
		out = append(out, p.info())
	}
	slices.SortFunc(out, func(a, b PodInfo) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return out
}

// Pod returns the snapshot of one pod.
func (r *Runner) Pod(name string) (PodInfo, bool) {
	r.mu.Lock()
	p := r.pods[name]
	r.mu.Unlock()
	if p == nil {
		return PodInfo{}, false
	}
	return p.info(), true
}

// Addr returns "127.0.0.1:<local port>" for a pod's container port, from
// the port table.
func (r *Runner) Addr(pod string, containerPort int32) (string, bool) {
	r.mu.Lock()
	p := r.pods[pod]
	r.mu.Unlock()
	if p == nil {
		return "", false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	lp, ok := p.ports[containerPort]
	if !ok {
		return "", false
	}
	return net.JoinHostPort(PodIP, fmt.Sprint(lp)), true
}

// WaitReady waits until the Deployment has exactly n pods, none of them
// terminating, all running and Ready as the runner sees them (the Pods'
// status in the API follows within one write).
func (r *Runner) WaitReady(ctx context.Context, deployment string, n int) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		count, settled := 0, true
		for _, p := range r.Pods() {
			if p.Deployment != deployment {
				continue
			}
			if p.Terminating || !p.Ready {
				settled = false
			}
			count++
		}
		if settled && count == n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("localpods: %s: %d pods (want %d ready, none terminating): %w", deployment, count, n, ctx.Err())
		case <-t.C:
		}
	}
}

// History returns every process that has ended, oldest first.
func (r *Runner) History() []ProcessExit {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.history)
}

func (r *Runner) kick() {
	select {
	case r.trigger <- struct{}{}:
	default:
	}
}

func (r *Runner) loop() {
	t := time.NewTicker(r.opts.ResyncPeriod)
	defer t.Stop()
	for {
		select {
		case <-r.loopCtx.Done():
			return
		case <-r.trigger:
		case <-t.C:
		}
		// API calls finish even when Stop begins (they use apiCtx, cancelled
		// last); the loop then ends.
		ctx, cancel := context.WithTimeout(r.apiCtx, 30*time.Second)
		err := r.reconcile(ctx)
		cancel()
		if err != nil && r.loopCtx.Err() == nil {
			r.log.Warn("reconcile", "err", err)
		}
	}
}

// reconcile is one pass of the ReplicaSet and deployment controllers' work,
// plus noticing pods deleted in the API.
func (r *Runner) reconcile(ctx context.Context) error {
	var dl appsv1.DeploymentList
	if err := r.c.List(ctx, &dl, client.InNamespace(r.ns)); err != nil {
		return fmt.Errorf("list deployments: %w", err)
	}
	listedAt := time.Now()
	var pl corev1.PodList
	if err := r.c.List(ctx, &pl, client.InNamespace(r.ns)); err != nil {
		return fmt.Errorf("list pods: %w", err)
	}
	apiPods := map[string]*corev1.Pod{}
	for i := range pl.Items {
		apiPods[pl.Items[i].Name] = &pl.Items[i]
	}
	deps := map[types.UID]*appsv1.Deployment{}
	for i := range dl.Items {
		if dl.Items[i].DeletionTimestamp == nil {
			deps[dl.Items[i].UID] = &dl.Items[i]
		}
	}

	r.mu.Lock()
	local := slices.Collect(maps.Values(r.pods))
	r.mu.Unlock()

	// The kubelet's side: a pod deleted in the API (or gone) is terminated.
	// A pod is in the list once its creation has returned, so a pod missing
	// from a list taken after its creation is really gone.
	for _, p := range local {
		if p.isStopping() {
			continue
		}
		ap := apiPods[p.name]
		switch {
		case ap == nil || ap.UID != p.uid:
			if p.created.Before(listedAt) {
				p.stop("pod-deleted", -1, true)
			}
		case ap.DeletionTimestamp != nil:
			grace := time.Duration(-1)
			if ap.DeletionGracePeriodSeconds != nil {
				grace = time.Duration(*ap.DeletionGracePeriodSeconds) * time.Second
			}
			p.stop("pod-deleted", grace, true)
		case deps[p.depUID] == nil:
			p.stop("deployment-deleted", -1, false)
		}
	}

	// Pods holding our finalizer that no process stands for (left by a
	// runner that crashed): let them go.
	r.mu.Lock()
	for _, ap := range apiPods {
		if _, ok := r.pods[ap.Name]; !ok && slices.Contains(ap.Finalizers, Finalizer) {
			go r.releasePod(ap.Name, ap.UID)
		}
	}
	r.mu.Unlock()

	var errs []error
	for _, d := range dl.Items {
		if d.DeletionTimestamp != nil {
			continue
		}
		if err := r.syncDeployment(ctx, &d, apiPods); err != nil {
			errs = append(errs, fmt.Errorf("deployment %s: %w", d.Name, err))
		}
	}
	return errors.Join(errs...)
}

func (r *Runner) podsOf(uid types.UID) []*localPod {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*localPod
	for _, p := range r.pods {
		if p.depUID == uid {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b *localPod) int { return int(a.seq) - int(b.seq) })
	return out
}

// syncDeployment keeps the Deployment's pod count and rolls its template.
func (r *Runner) syncDeployment(ctx context.Context, d *appsv1.Deployment, apiPods map[string]*corev1.Pod) error {
	hash := templateHash(&d.Spec.Template)
	desired := replicasOf(d)

	var cur, old []*localPod
	oldTerminating := false
	for _, p := range r.podsOf(d.UID) {
		stopping := p.isStopping()
		switch {
		case p.hash == hash && !stopping:
			cur = append(cur, p)
		case p.hash != hash && !stopping:
			old = append(old, p)
		case p.hash != hash:
			oldTerminating = true
		}
	}

	stopSome := func(ps []*localPod, n int, reason string) {
		if n <= 0 {
			return
		}
		vs := make([]victim, len(ps))
		byName := map[string]*localPod{}
		for i, p := range ps {
			vs[i] = p.victim(apiPods[p.name])
			byName[p.name] = p
		}
		rankVictims(vs)
		for _, v := range vs[:min(n, len(vs))] {
			r.log.Info("stopping pod", "pod", v.name, "reason", reason, "cost", v.cost, "ready", v.ready)
			byName[v.name].stop(reason, -1, false)
		}
	}

	var err error
	recreate := d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType
	switch {
	case recreate && (len(old) > 0 || oldTerminating):
		stopSome(old, len(old), "rollout")
	default:
		if len(cur) < desired {
			err = r.createPods(ctx, d, hash, desired-len(cur))
		}
		if len(cur) > desired {
			stopSome(cur, len(cur)-desired, "scale-down")
			cur = cur[:0]
			for _, p := range r.podsOf(d.UID) {
				if p.hash == hash && !p.isStopping() {
					cur = append(cur, p)
				}
			}
		}
		if len(old) > 0 {
			ready := 0
			for _, p := range cur {
				if p.isReady() {
					ready++
				}
			}
			keep := max(0, desired-ready)
			stopSome(old, len(old)-keep, "rollout")
		}
	}

	if serr := r.syncDeploymentStatus(ctx, d, hash); serr != nil {
		err = errors.Join(err, serr)
	}
	return err
}

func (r *Runner) createPods(ctx context.Context, d *appsv1.Deployment, hash string, n int) error {
	r.mu.Lock()
	hold := r.holdUntil[d.UID]
	r.mu.Unlock()
	if time.Now().Before(hold) {
		return nil
	}
	for range n {
		if err := r.createPod(ctx, d, hash); err != nil {
			r.mu.Lock()
			r.holdUntil[d.UID] = time.Now().Add(time.Second)
			r.mu.Unlock()
			return fmt.Errorf("create pod: %w", err)
		}
	}
	return nil
}

func (r *Runner) createPod(ctx context.Context, d *appsv1.Deployment, hash string) error {
	tmpl := d.Spec.Template.DeepCopy()
	if len(tmpl.Spec.Containers) == 0 {
		return errors.New("pod template has no container")
	}
	labels := maps.Clone(tmpl.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[PodTemplateHashLabel] = hash
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: d.Name + "-",
			Namespace:    r.ns,
			Labels:       labels,
			Annotations:  tmpl.Annotations,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion:         "apps/v1",
				Kind:               "Deployment",
				Name:               d.Name,
				UID:                d.UID,
				Controller:         ptr(true),
				BlockOwnerDeletion: ptr(true),
			}},
			Finalizers: []string{Finalizer},
		},
		Spec: tmpl.Spec,
	}
	pod.Spec.NodeName = r.opts.NodeName
	if err := r.c.Create(ctx, pod); err != nil {
		return err
	}
	r.mu.Lock()
	r.seq++
	p := newLocalPod(r, pod, d, hash, r.seq)
	r.pods[p.name] = p
	r.mu.Unlock()
	r.log.Info("created pod", "pod", p.name, "deployment", d.Name, "hash", hash)
	r.podWG.Add(1)
	go func() {
		defer r.podWG.Done()
		p.run()
		r.mu.Lock()
		delete(r.pods, p.name)
		r.mu.Unlock()
		r.kick()
	}()
	return nil
}

// releasePod removes our finalizer from a pod no process stands for and
// deletes it.
func (r *Runner) releasePod(name string, uid types.UID) {
	ctx, cancel := context.WithTimeout(r.apiCtx, 10*time.Second)
	defer cancel()
	if err := removeFinalizer(ctx, r.c, r.ns, name, uid); err != nil {
		r.log.Warn("release pod", "pod", name, "err", err)
	}
	_ = client.IgnoreNotFound(r.c.Delete(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: r.ns, Name: name}},
		client.GracePeriodSeconds(0), client.Preconditions{UID: &uid}))
}

func removeFinalizer(ctx context.Context, c client.Client, ns, name string, uid types.UID) error {
	for attempt := 0; ; attempt++ {
		pod := &corev1.Pod{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, pod); err != nil {
			return client.IgnoreNotFound(err)
		}
		if pod.UID != uid || !slices.Contains(pod.Finalizers, Finalizer) {
			return nil
		}
		pod.Finalizers = slices.DeleteFunc(pod.Finalizers, func(f string) bool { return f == Finalizer })
		err := c.Update(ctx, pod)
		if err == nil || apierrors.IsNotFound(err) {
			return nil
		}
		if attempt >= 20 || ctx.Err() != nil {
			return err
		}
		if !apierrors.IsConflict(err) {
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// allocPort returns a free loopback port not handed out before by this
// runner.
func (r *Runner) allocPort() (int, error) {
	for range 50 {
		l, err := net.Listen("tcp", net.JoinHostPort(PodIP, "0"))
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		r.mu.Lock()
		used := r.usedPorts[port]
		r.usedPorts[port] = true
		r.mu.Unlock()
		if !used {
			return port, nil
		}
	}
	return 0, errors.New("no free port")
}

func (r *Runner) record(e ProcessExit) {
	r.mu.Lock()
	r.history = append(r.history, e)
	r.mu.Unlock()
}

// templateHash is the pod-template-hash of a template: FNV-1a of its JSON,
// encoded as the ReplicaSet controller encodes its own.
func templateHash(t *corev1.PodTemplateSpec) string {
	b, _ := json.Marshal(t)
	h := fnv.New32a()
	_, _ = h.Write(b)
	return utilrand.SafeEncodeString(fmt.Sprint(h.Sum32()))
}

func replicasOf(d *appsv1.Deployment) int {
	if d.Spec.Replicas == nil {
		return 1
	}
	return int(*d.Spec.Replicas)
}

// watchAndKick watches a kind in the namespace and calls kick on every event
// until ctx ends, re-establishing the watch when it closes.
func watchAndKick(ctx context.Context, c client.WithWatch, list client.ObjectList, ns string, kick func()) {
	for ctx.Err() == nil {
		w, err := c.Watch(ctx, list, client.InNamespace(ns))
		if err != nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(500 * time.Millisecond):
			}
			continue
		}
		func() {
			defer w.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case ev, ok := <-w.ResultChan():
					if !ok || ev.Type == watch.Error {
						return
					}
					kick()
				}
			}
		}()
		kick()
	}
}

func ptr[T any](v T) *T { return &v }
