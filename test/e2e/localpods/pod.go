package localpods

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// minGracePeriod is the kubelet's floor for a termination grace period.
const minGracePeriod = 2 * time.Second

// probeClient probes without keeping connections to processes that come
// and go.
var probeClient = &http.Client{
	Transport: &http.Transport{
		DisableKeepAlives: true,
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, // like the kubelet's HTTPS probes
	},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// noBinaryError: no entry of Options.Binaries matches the container.
type noBinaryError struct{ command, image string }

func (e *noBinaryError) Error() string {
	return fmt.Sprintf("no local binary for command %q or image %q (see Options.Binaries)", e.command, e.image)
}

// localPod is one pod: its Pod object's facts, its process and what a
// kubelet would know about it.
type localPod struct {
	r           *Runner
	name, ns    string
	uid         types.UID
	dep         string
	depUID      types.UID
	hash        string
	seq         uint64
	created     time.Time
	labels      map[string]string
	annotations map[string]string
	spec        corev1.PodSpec
	ctr         corev1.Container
	logPath     string
	workDir     string

	stopCtx    context.Context // done when the pod is to stop
	stopCancel context.CancelFunc

	mu           sync.Mutex
	ports        map[int32]int
	stopping     bool
	stopReason   string
	grace        time.Duration
	apiDeleted   bool
	pid          int
	running      bool
	everRunning  bool
	ready        bool
	readySince   time.Time
	readyChanged time.Time
	successes    int32
	failures     int32
	restarts     int
	startedAt    time.Time
	waitReason   string
	waitMsg      string
	lastExit     *corev1.ContainerStateTerminated
	listen       string
	adminListen  string
	warned       bool
}

func newLocalPod(r *Runner, pod *corev1.Pod, d *appsv1.Deployment, hash string, seq uint64) *localPod {
	p := &localPod{
		r: r, name: pod.Name, ns: pod.Namespace, uid: pod.UID,
		dep: d.Name, depUID: d.UID, hash: hash, seq: seq, created: time.Now(),
		labels: pod.Labels, annotations: pod.Annotations, spec: *pod.Spec.DeepCopy(),
		ctr:     *pod.Spec.Containers[0].DeepCopy(),
		logPath: filepath.Join(r.opts.LogDir, pod.Name+".log"),
		workDir: filepath.Join(r.opts.LogDir, "pods", pod.Name),
		ports:   map[int32]int{},
	}
	p.readyChanged = p.created
	p.stopCtx, p.stopCancel = context.WithCancel(r.apiCtx)
	return p
}

// stop asks the pod to terminate. grace < 0 means the pod's
// terminationGracePeriodSeconds. apiDeleted says the Pod is already
// deleted in the API (by someone else). Only the first call counts.
func (p *localPod) stop(reason string, grace time.Duration, apiDeleted bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopping {
		return
	}
	if grace < 0 {
		grace = 30 * time.Second
		if s := p.spec.TerminationGracePeriodSeconds; s != nil {
			grace = time.Duration(*s) * time.Second
		}
	}
	grace = max(grace, minGracePeriod)
	if m := p.r.opts.MaxGracePeriod; m > 0 {
		grace = min(grace, m)
	}
	p.stopping, p.stopReason, p.grace, p.apiDeleted = true, reason, grace, apiDeleted
	p.stopCancel()
}

func (p *localPod) isStopping() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stopping
}

func (p *localPod) isReady() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.running && p.ready && !p.stopping
}

func (p *localPod) state() podState {
	p.mu.Lock()
	defer p.mu.Unlock()
	return podState{hash: p.hash, terminating: p.stopping, ready: p.running && p.ready, readySince: p.readySince}
}

func (p *localPod) victim(ap *corev1.Pod) victim {
	annotations := p.annotations
	if ap != nil {
		annotations = ap.Annotations
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return victim{
		name: p.name, running: p.running, ready: p.running && p.ready,
		cost: deletionCost(annotations), readySince: p.readySince, restarts: p.restarts, seq: p.seq,
	}
}

func (p *localPod) info() PodInfo {
	p.mu.Lock()
	defer p.mu.Unlock()
	pid := 0
	if p.running {
		pid = p.pid
	}
	return PodInfo{
		Name: p.name, Deployment: p.dep, TemplateHash: p.hash, PID: pid,
		Ports: clonePorts(p.ports), Listen: p.listen, AdminListen: p.adminListen,
		Ready: p.running && p.ready, Terminating: p.stopping, Restarts: p.restarts,
		LogPath: p.logPath, Created: p.created,
	}
}

func clonePorts(m map[int32]int) map[int32]int {
	out := make(map[int32]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// run is the pod's kubelet: start, probe, restart, terminate, finalize.
func (p *localPod) run() {
	p.writeStatus()
	backoff := p.r.opts.RestartBackoff
	for !p.isStopping() {
		argv, env, err := p.prepare(p.stopCtx)
		if err != nil {
			if p.isStopping() {
				break
			}
			reason := "CreateContainerConfigError"
			var nb *noBinaryError
			if errors.As(err, &nb) {
				reason = "NoLocalBinary"
			}
			p.setWaiting(reason, err.Error())
			p.r.log.Warn("pod cannot start", "pod", p.name, "reason", reason, "err", err)
			p.writeStatus()
			if !p.pause(backoff) {
				break
			}
			backoff = min(2*backoff, p.r.opts.MaxRestartBackoff)
			continue
		}
		began := time.Now()
		ex, stopped, err := p.runProcess(argv, env)
		if err != nil {
			p.setWaiting("RunContainerError", err.Error())
			p.r.log.Warn("pod process did not start", "pod", p.name, "err", err)
			p.writeStatus()
			if !p.pause(backoff) {
				break
			}
			backoff = min(2*backoff, p.r.opts.MaxRestartBackoff)
			continue
		}
		if stopped {
			p.mu.Lock()
			reason := p.stopReason
			p.running = false
			p.mu.Unlock()
			p.r.record(ex.record(p, reason))
			p.r.log.Info("pod process stopped", "pod", p.name, "reason", reason, "exit", ex.code, "signal", ex.signal, "killed", ex.killed)
			break
		}
		// Exited on its own: CrashLoopBackOff, then restart.
		p.r.record(ex.record(p, ""))
		p.r.log.Info("pod process exited", "pod", p.name, "exit", ex.code, "signal", ex.signal)
		p.mu.Lock()
		p.running = false
		if p.ready {
			p.ready, p.readyChanged = false, time.Now()
		}
		p.lastExit = ex.terminated(p.startedAt)
		p.waitReason, p.waitMsg = "CrashLoopBackOff", fmt.Sprintf("back-off %s restarting failed container", backoff)
		p.mu.Unlock()
		p.writeStatus()
		p.r.kick()
		if time.Since(began) > 10*time.Second {
			backoff = p.r.opts.RestartBackoff
		}
		if !p.pause(backoff) {
			break
		}
		backoff = min(2*backoff, p.r.opts.MaxRestartBackoff)
	}
	p.finalize()
}

// pause waits d unless the pod is stopped first.
func (p *localPod) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.stopCtx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (p *localPod) setWaiting(reason, msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.waitReason, p.waitMsg = reason, msg
}

// prepare resolves the command line and environment, and the pod's ports.
func (p *localPod) prepare(ctx context.Context) (argv, env []string, err error) {
	facts := podFacts{
		name: p.name, namespace: p.ns, uid: string(p.uid), nodeName: p.spec.NodeName,
		serviceAccount: p.spec.ServiceAccountName, labels: p.labels, annotations: p.annotations,
	}
	vars, err := resolveEnv(ctx, p.r.c, p.ns, &p.ctr, facts)
	if err != nil {
		return nil, nil, err
	}
	for _, cp := range p.ctr.Ports {
		if _, err := p.localPort(cp.ContainerPort); err != nil {
			return nil, nil, err
		}
	}
	if rp := p.ctr.ReadinessProbe; rp != nil {
		if _, err := p.probePort(rp); err != nil {
			return nil, nil, err
		}
	}
	lp, err := p.localPort(listenPort(vars.vals[EnvListen], DefaultMainPort))
	if err != nil {
		return nil, nil, err
	}
	listen := net.JoinHostPort(PodIP, fmt.Sprint(lp))
	vars.set(EnvListen, listen)
	admin := ""
	if v := vars.vals[EnvAdminListen]; v != "" {
		lp, err := p.localPort(listenPort(v, 9090))
		if err != nil {
			return nil, nil, err
		}
		admin = net.JoinHostPort(PodIP, fmt.Sprint(lp))
		vars.set(EnvAdminListen, admin)
	}
	if v := vars.vals[EnvModerationListen]; v != "" {
		lp, err := p.localPort(listenPort(v, 9091))
		if err != nil {
			return nil, nil, err
		}
		vars.set(EnvModerationListen, net.JoinHostPort(PodIP, fmt.Sprint(lp)))
	}
	p.mu.Lock()
	p.listen, p.adminListen = listen, admin
	p.mu.Unlock()

	bin, rest, err := p.binary()
	if err != nil {
		return nil, nil, err
	}
	argv = []string{bin}
	for _, a := range rest {
		argv = append(argv, expand(a, vars.vals))
	}

	tmp := filepath.Join(p.workDir, "tmp")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return nil, nil, err
	}
	env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + p.workDir, "TMPDIR=" + tmp, "HOSTNAME=" + p.name}
	env = append(env, p.r.opts.ExtraEnv...)
	for _, v := range vars.list() {
		env = append(env, v.name+"="+v.value)
	}
	return argv, env, nil
}

// binary maps the container to a local executable and the arguments after it.
func (p *localPod) binary() (string, []string, error) {
	c := p.ctr
	var rest []string
	if len(c.Command) > 0 {
		rest = append(rest, c.Command[1:]...)
	}
	rest = append(rest, c.Args...)
	if len(c.Command) > 0 {
		if b, ok := p.r.opts.Binaries[c.Command[0]]; ok {
			return b, rest, nil
		}
	}
	if b, ok := p.r.opts.Binaries[c.Image]; ok {
		return b, rest, nil
	}
	cmd := ""
	if len(c.Command) > 0 {
		cmd = c.Command[0]
	}
	return "", nil, &noBinaryError{command: cmd, image: c.Image}
}

// localPort returns (allocating once) the local port standing for a
// container port.
func (p *localPod) localPort(containerPort int32) (int, error) {
	p.mu.Lock()
	lp, ok := p.ports[containerPort]
	p.mu.Unlock()
	if ok {
		return lp, nil
	}
	lp, err := p.r.allocPort()
	if err != nil {
		return 0, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if prev, ok := p.ports[containerPort]; ok {
		return prev, nil
	}
	p.ports[containerPort] = lp
	return lp, nil
}

// containerPort resolves a probe's or Service's port (a number or the name
// of one of the container's ports).
func containerPort(ctr *corev1.Container, port intstr.IntOrString) (int32, bool) {
	if port.Type == intstr.Int {
		return port.IntVal, port.IntVal > 0
	}
	for _, cp := range ctr.Ports {
		if cp.Name == port.StrVal {
			return cp.ContainerPort, true
		}
	}
	return 0, false
}

func (p *localPod) probePort(pr *corev1.Probe) (int, error) {
	var port intstr.IntOrString
	switch {
	case pr.HTTPGet != nil:
		port = pr.HTTPGet.Port
	case pr.TCPSocket != nil:
		port = pr.TCPSocket.Port
	default:
		return 0, nil
	}
	cp, ok := containerPort(&p.ctr, port)
	if !ok {
		return 0, &configError{fmt.Sprintf("readiness probe port %s is not a port of container %s", port.String(), p.ctr.Name)}
	}
	return p.localPort(cp)
}

type exitStatus struct {
	code     int
	signal   string
	at       time.Time
	termSent time.Time
	killed   bool
}

func (e exitStatus) record(p *localPod, reason string) ProcessExit {
	return ProcessExit{Pod: p.name, Deployment: p.dep, Reason: reason, TermSent: e.termSent,
		Killed: e.killed, ExitCode: e.code, Signal: e.signal, Exited: e.at}
}

func (e exitStatus) terminated(started time.Time) *corev1.ContainerStateTerminated {
	t := &corev1.ContainerStateTerminated{ExitCode: int32(e.code), Reason: "Error",
		StartedAt: metav1.NewTime(started), FinishedAt: metav1.NewTime(e.at)}
	switch {
	case e.code == 0:
		t.Reason = "Completed"
	case e.signal != "":
		t.ExitCode = 128 + 15
		if e.signal == syscall.SIGKILL.String() {
			t.ExitCode = 128 + 9
		}
		t.Signal = t.ExitCode - 128
	}
	return t
}

// runProcess runs one instance of the container's process until it exits
// (stopped false) or the pod is stopped and it has been terminated
// (stopped true). err: the process did not start.
func (p *localPod) runProcess(argv, env []string) (exitStatus, bool, error) {
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return exitStatus{}, false, err
	}
	fmt.Fprintf(logf, "=== localpods %s: starting %q\n", time.Now().Format(time.RFC3339Nano), argv)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Dir = p.workDir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(logf, "=== localpods: start failed: %v\n", err)
		_ = logf.Close()
		return exitStatus{}, false, err
	}
	pid := cmd.Process.Pid
	exited := make(chan exitStatus, 1)
	go func() {
		_ = cmd.Wait()
		st := exitStatus{code: -1, at: time.Now()}
		if ps := cmd.ProcessState; ps != nil {
			st.code = ps.ExitCode()
			if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				st.signal = ws.Signal().String()
			}
		}
		_ = syscall.Kill(-pid, syscall.SIGKILL) // what the process left in its group
		fmt.Fprintf(logf, "=== localpods %s: exited code=%d signal=%q\n", st.at.Format(time.RFC3339Nano), st.code, st.signal)
		_ = logf.Close()
		exited <- st
	}()

	now := time.Now()
	p.mu.Lock()
	if p.everRunning {
		p.restarts++
	}
	p.pid, p.running, p.everRunning, p.startedAt = pid, true, true, now
	p.waitReason, p.waitMsg = "", ""
	p.successes, p.failures = 0, 0
	probe := p.ctr.ReadinessProbe
	if probe == nil {
		p.ready, p.readySince, p.readyChanged = true, now, now
	}
	p.mu.Unlock()
	p.r.log.Info("pod process started", "pod", p.name, "pid", pid, "argv", argv)
	p.writeStatus()
	p.r.kick()

	var initialDelay time.Time
	if probe != nil {
		initialDelay = now.Add(time.Duration(probe.InitialDelaySeconds) * time.Second)
	}
	tick := time.NewTicker(p.r.opts.ProbePeriod)
	defer tick.Stop()
	for {
		select {
		case st := <-exited:
			return st, false, nil
		case <-p.stopCtx.Done():
			return p.terminate(pid, exited), true, nil
		case <-tick.C:
			if probe == nil || time.Now().Before(initialDelay) {
				continue
			}
			if p.observe(probe, p.probe(probe)) {
				p.writeStatus()
				p.r.kick()
			}
		}
	}
}

// observe counts a probe result against the thresholds and says whether
// readiness changed.
func (p *localPod) observe(pr *corev1.Probe, ok bool) bool {
	success, failure := max(pr.SuccessThreshold, 1), pr.FailureThreshold
	if failure <= 0 {
		failure = 3
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if ok {
		p.successes, p.failures = p.successes+1, 0
		if !p.ready && p.successes >= success {
			now := time.Now()
			p.ready, p.readySince, p.readyChanged = true, now, now
			return true
		}
		return false
	}
	p.successes, p.failures = 0, p.failures+1
	if p.ready && p.failures >= failure {
		p.ready, p.readyChanged = false, time.Now()
		return true
	}
	return false
}

// probe runs a readiness probe once against the pod's local ports. Exec and
// gRPC probes are not run: they count as passing.
func (p *localPod) probe(pr *corev1.Probe) bool {
	timeout := time.Duration(max(pr.TimeoutSeconds, 1)) * time.Second
	ctx, cancel := context.WithTimeout(p.stopCtx, timeout)
	defer cancel()
	port, err := p.probePort(pr)
	if err != nil {
		return false
	}
	switch {
	case pr.HTTPGet != nil:
		g := pr.HTTPGet
		scheme := "http"
		if g.Scheme == corev1.URISchemeHTTPS {
			scheme = "https"
		}
		path := g.Path
		if path == "" || path[0] != '/' {
			path = "/" + path
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s://%s:%d%s", scheme, PodIP, port, path), nil)
		if err != nil {
			return false
		}
		req.Header.Set("User-Agent", "kube-probe/localpods")
		for _, h := range g.HTTPHeaders {
			req.Header.Add(h.Name, h.Value)
		}
		resp, err := probeClient.Do(req)
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode >= 200 && resp.StatusCode < 400
	case pr.TCPSocket != nil:
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(PodIP, fmt.Sprint(port)))
		if err != nil {
			return false
		}
		_ = c.Close()
		return true
	default:
		p.mu.Lock()
		if !p.warned {
			p.warned = true
			p.r.log.Warn("exec and gRPC probes are not run; counted as passing", "pod", p.name)
		}
		p.mu.Unlock()
		return true
	}
}

// terminate ends the process like a kubelet: the Pod is marked deleted
// (deletionTimestamp), preStop runs, SIGTERM, then SIGKILL when the grace
// period is over.
func (p *localPod) terminate(pid int, exited <-chan exitStatus) exitStatus {
	p.mu.Lock()
	grace, apiDeleted := p.grace, p.apiDeleted
	p.mu.Unlock()
	deadline := time.Now().Add(grace)
	if !apiDeleted {
		p.deleteInAPI(grace)
	}
	p.r.kick()

	if lc := p.ctr.Lifecycle; lc != nil && lc.PreStop != nil {
		hookCtx, cancel := context.WithDeadline(p.r.apiCtx, deadline)
		hookDone := make(chan struct{})
		go func() {
			defer close(hookDone)
			p.preStop(hookCtx, lc.PreStop)
		}()
		select {
		case st := <-exited:
			cancel()
			<-hookDone
			return st
		case <-hookDone:
		}
		cancel()
	}

	termSent := time.Now()
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case st := <-exited:
		st.termSent = termSent
		return st
	case <-t.C:
	}
	p.r.log.Info("grace period over: SIGKILL", "pod", p.name, "grace", grace)
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	st := <-exited
	st.termSent, st.killed = termSent, true
	return st
}

func (p *localPod) preStop(ctx context.Context, h *corev1.LifecycleHandler) {
	switch {
	case h.Sleep != nil:
		t := time.NewTimer(time.Duration(h.Sleep.Seconds) * time.Second)
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	case h.HTTPGet != nil:
		cp, ok := containerPort(&p.ctr, h.HTTPGet.Port)
		if !ok {
			return
		}
		lp, err := p.localPort(cp)
		if err != nil {
			return
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s:%d%s", PodIP, lp, h.HTTPGet.Path), nil)
		if err != nil {
			return
		}
		if resp, err := probeClient.Do(req); err == nil {
			_ = resp.Body.Close()
		}
	default:
		p.r.log.Warn("exec preStop hooks are not run", "pod", p.name)
	}
}

// deleteInAPI deletes the Pod gracefully: it stays, with its
// deletionTimestamp, until finalize.
func (p *localPod) deleteInAPI(grace time.Duration) {
	ctx, cancel := context.WithTimeout(p.r.apiCtx, 10*time.Second)
	defer cancel()
	secs := int64(math.Ceil(grace.Seconds()))
	err := p.r.c.Delete(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: p.ns, Name: p.name}},
		client.GracePeriodSeconds(max(secs, 1)), client.Preconditions{UID: &p.uid})
	if client.IgnoreNotFound(err) != nil {
		p.r.log.Warn("delete pod", "pod", p.name, "err", err)
	}
	p.mu.Lock()
	p.apiDeleted = true
	p.mu.Unlock()
}

// finalize lets the Pod go: the process has ended.
func (p *localPod) finalize() {
	p.mu.Lock()
	apiDeleted, grace := p.apiDeleted, p.grace
	p.mu.Unlock()
	if !apiDeleted {
		// stopped while no process ran: still show the deletion
		p.deleteInAPI(grace)
	}
	ctx, cancel := context.WithTimeout(p.r.apiCtx, 15*time.Second)
	defer cancel()
	if err := removeFinalizer(ctx, p.r.c, p.ns, p.name, p.uid); err != nil {
		p.r.log.Warn("remove finalizer", "pod", p.name, "err", err)
	}
	err := p.r.c.Delete(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: p.ns, Name: p.name}},
		client.GracePeriodSeconds(0), client.Preconditions{UID: &p.uid})
	if client.IgnoreNotFound(err) != nil {
		p.r.log.Warn("final delete", "pod", p.name, "err", err)
	}
	p.r.log.Info("pod gone", "pod", p.name)
}

// writeStatus writes the pod's status through the status subresource.
func (p *localPod) writeStatus() {
	st := p.podStatus()
	body, err := json.Marshal(map[string]any{"status": st})
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(p.r.apiCtx, 10*time.Second)
	defer cancel()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: p.ns, Name: p.name}}
	if err := p.r.c.Status().Patch(ctx, pod, client.RawPatch(types.MergePatchType, body)); client.IgnoreNotFound(err) != nil && ctx.Err() == nil {
		p.r.log.Warn("write pod status", "pod", p.name, "err", err)
	}
}

func (p *localPod) podStatus() corev1.PodStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	created := metav1.NewTime(p.created)
	ready := p.running && p.ready
	st := corev1.PodStatus{
		Phase:     corev1.PodPending,
		HostIP:    PodIP,
		HostIPs:   []corev1.HostIP{{IP: PodIP}},
		PodIP:     PodIP,
		PodIPs:    []corev1.PodIP{{IP: PodIP}},
		StartTime: &created,
	}
	if p.everRunning {
		st.Phase = corev1.PodRunning
	}
	cond := func(t corev1.PodConditionType, ok bool, since time.Time) corev1.PodCondition {
		s := corev1.ConditionFalse
		if ok {
			s = corev1.ConditionTrue
		}
		return corev1.PodCondition{Type: t, Status: s, LastTransitionTime: metav1.NewTime(since)}
	}
	st.Conditions = []corev1.PodCondition{
		cond(corev1.PodReadyToStartContainers, true, p.created),
		cond(corev1.PodInitialized, true, p.created),
		cond(corev1.PodReady, ready, p.readyChanged),
		cond(corev1.ContainersReady, ready, p.readyChanged),
		cond(corev1.PodScheduled, true, p.created),
	}
	started := p.running
	cs := corev1.ContainerStatus{
		Name: p.ctr.Name, Image: p.ctr.Image, Ready: ready, Started: &started,
		RestartCount: int32(p.restarts), LastTerminationState: corev1.ContainerState{Terminated: p.lastExit},
	}
	if p.running {
		cs.ContainerID = fmt.Sprintf("localpods://%d", p.pid)
		cs.State.Running = &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(p.startedAt)}
	} else {
		reason := p.waitReason
		if reason == "" {
			reason = "ContainerCreating"
		}
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: reason, Message: p.waitMsg}
	}
	st.ContainerStatuses = []corev1.ContainerStatus{cs}
	return st
}
