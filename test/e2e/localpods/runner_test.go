package localpods

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/chatr-ai/chatr/internal/testenv"
)

func TestEnvResolvedAndPodObject(t *testing.T) {
	needEnv(t)
	ns := newNamespace(t)
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db"}, Data: map[string][]byte{"url": []byte("postgres://db/room")}})
	create(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "cfg"}, Data: map[string]string{"CHATR_LOG_LEVEL": "debug"}})
	create(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bulk"}, Data: map[string]string{"ONE": "1", "TWO": "2"}})
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bulk-secret"}, Data: map[string][]byte{"TOKEN": []byte("s3cret")}})

	optional := true
	d := fakeDeployment(ns, "env", 1,
		corev1.EnvVar{Name: "CHATR_DATABASE_URL", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "db"}, Key: "url"}}},
		corev1.EnvVar{Name: "CHATR_LOG_LEVEL", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Key: "CHATR_LOG_LEVEL"}}},
		corev1.EnvVar{Name: "CHATR_POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
		corev1.EnvVar{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
		corev1.EnvVar{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
		corev1.EnvVar{Name: "APP_LABEL", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels['app']"}}},
		corev1.EnvVar{Name: "OPTIONAL", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "absent"}, Key: "k", Optional: &optional}}},
		corev1.EnvVar{Name: "DERIVED", Value: "$(CHATR_POD_NAME)-$(ONE_ONE)"},
		corev1.EnvVar{Name: "ESCAPED", Value: "$$(CHATR_POD_NAME)"},
		corev1.EnvVar{Name: "UNDEFINED", Value: "$(NOPE)"},
		corev1.EnvVar{Name: "TWO_TWO", Value: "overridden"},
	)
	ctr := &d.Spec.Template.Spec.Containers[0]
	ctr.EnvFrom = []corev1.EnvFromSource{
		{Prefix: "ONE_", ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "bulk"}}},
		{Prefix: "TWO_", ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "bulk"}}},
		{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "bulk-secret"}}},
	}
	ctr.Args = []string{"--pod=$(CHATR_POD_NAME)", "--listen=$(CHATR_LISTEN)"}
	d.Spec.Template.Annotations = map[string]string{"note": "kept"}
	create(t, d)

	r := startRunner(t, ns, Options{})
	pods := waitReady(t, r, ns, "env", 1)
	p := pods[0]

	args, env := podEnv(t, p)
	want := map[string]string{
		"CHATR_DATABASE_URL": "postgres://db/room",
		"CHATR_LOG_LEVEL":    "debug",
		"CHATR_POD_NAME":     p.Name,
		"POD_NAMESPACE":      ns,
		"POD_IP":             "127.0.0.1",
		"APP_LABEL":          "env",
		"DERIVED":            p.Name + "-1",
		"ESCAPED":            "$(CHATR_POD_NAME)",
		"UNDEFINED":          "$(NOPE)",
		"ONE_ONE":            "1",
		"TWO_TWO":            "overridden",
		"TOKEN":              "s3cret",
		"HOSTNAME":           p.Name,
		EnvListen:            p.Listen,
		EnvAdminListen:       p.AdminListen,
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("env %s = %q, want %q", k, env[k], v)
		}
	}
	if _, ok := env["OPTIONAL"]; ok {
		t.Errorf("optional key of a missing Secret is set: %q", env["OPTIONAL"])
	}
	if wantArgs := []string{"--pod=" + p.Name, "--listen=" + p.Listen}; !slices.Equal(args, wantArgs) {
		t.Errorf("args %q, want %q", args, wantArgs)
	}
	// The port table: each container port has its own local port, and the
	// listen variables name them.
	if p.Ports[8080] == 0 || p.Ports[9090] == 0 || p.Ports[8080] == p.Ports[9090] {
		t.Fatalf("port table %v", p.Ports)
	}
	if p.Listen != fmt.Sprintf("127.0.0.1:%d", p.Ports[8080]) || p.AdminListen != fmt.Sprintf("127.0.0.1:%d", p.Ports[9090]) {
		t.Errorf("listen %s admin %s, ports %v", p.Listen, p.AdminListen, p.Ports)
	}
	if a, _ := r.Addr(p.Name, 9090); a != p.AdminListen {
		t.Errorf("Addr(9090) = %s", a)
	}

	// The Pod object.
	api := apiPods(t, ns, "env")
	if len(api) != 1 || api[0].Name != p.Name {
		t.Fatalf("API pods %v, runner pod %s", api, p.Name)
	}
	ap := api[0]
	dep := getDeployment(t, ns, "env")
	if !strings.HasPrefix(ap.Name, "env-") || ap.Labels["app"] != "env" || ap.Labels[PodTemplateHashLabel] != p.TemplateHash || p.TemplateHash == "" {
		t.Errorf("name %s labels %v (hash %s)", ap.Name, ap.Labels, p.TemplateHash)
	}
	if ap.Annotations["note"] != "kept" {
		t.Errorf("annotations %v", ap.Annotations)
	}
	if len(ap.OwnerReferences) != 1 || ap.OwnerReferences[0].UID != dep.UID || ap.OwnerReferences[0].Kind != "Deployment" || ap.OwnerReferences[0].Controller == nil || !*ap.OwnerReferences[0].Controller {
		t.Errorf("owner references %+v", ap.OwnerReferences)
	}
	if !slices.Contains(ap.Finalizers, Finalizer) || ap.Spec.NodeName != DefaultNodeName {
		t.Errorf("finalizers %v node %q", ap.Finalizers, ap.Spec.NodeName)
	}
	st := ap.Status
	if st.Phase != corev1.PodRunning || st.PodIP != "127.0.0.1" || len(st.ContainerStatuses) != 1 || st.ContainerStatuses[0].State.Running == nil || !st.ContainerStatuses[0].Ready {
		t.Errorf("pod status %+v", st)
	}

	// The Deployment status, as the deployment controller would write it.
	testenv.Eventually(t, 5*time.Second, "deployment status", func() error {
		d := getDeployment(t, ns, "env")
		s := d.Status
		if s.ObservedGeneration != d.Generation || s.Replicas != 1 || s.ReadyReplicas != 1 || s.AvailableReplicas != 1 || s.UpdatedReplicas != 1 || s.UnavailableReplicas != 0 {
			return fmt.Errorf("status %+v", s)
		}
		if c, reason := deploymentCondition(d, appsv1.DeploymentAvailable); c != corev1.ConditionTrue {
			return fmt.Errorf("Available %s %s", c, reason)
		}
		if c, reason := deploymentCondition(d, appsv1.DeploymentProgressing); c != corev1.ConditionTrue || reason != "NewReplicaSetAvailable" {
			return fmt.Errorf("Progressing %s %s", c, reason)
		}
		return nil
	})
}

func TestMissingSecretWaitsThenStarts(t *testing.T) {
	needEnv(t)
	ns := newNamespace(t)
	create(t, fakeDeployment(ns, "late", 1, corev1.EnvVar{Name: "PASSWORD", ValueFrom: &corev1.EnvVarSource{
		SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "late"}, Key: "pw"}}}))
	r := startRunner(t, ns, Options{RestartBackoff: 100 * time.Millisecond, MaxRestartBackoff: 200 * time.Millisecond})

	testenv.Eventually(t, 10*time.Second, "pod waiting for its Secret", func() error {
		api := apiPods(t, ns, "late")
		if len(api) != 1 || len(api[0].Status.ContainerStatuses) != 1 {
			return fmt.Errorf("pods %d", len(api))
		}
		w := api[0].Status.ContainerStatuses[0].State.Waiting
		if w == nil || w.Reason != "CreateContainerConfigError" || !strings.Contains(w.Message, `secret "late" not found`) {
			return fmt.Errorf("state %+v", api[0].Status.ContainerStatuses[0].State)
		}
		if api[0].Status.Phase != corev1.PodPending || podReady(&api[0]) {
			return fmt.Errorf("phase %s", api[0].Status.Phase)
		}
		return nil
	})
	if ps := r.Pods(); len(ps) != 1 || ps[0].PID != 0 {
		t.Fatalf("a process runs without its Secret: %+v", ps)
	}
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "late"}, Data: map[string][]byte{"pw": []byte("hunter2")}})
	p := waitReady(t, r, ns, "late", 1)[0]
	if _, env := podEnv(t, p); env["PASSWORD"] != "hunter2" {
		t.Fatalf("PASSWORD = %q", env["PASSWORD"])
	}
}

func TestNoLocalBinary(t *testing.T) {
	needEnv(t)
	ns := newNamespace(t)
	d := fakeDeployment(ns, "nobin", 1)
	d.Spec.Template.Spec.Containers[0].Command = []string{"/not-mapped"}
	create(t, d)
	startRunner(t, ns, Options{})
	testenv.Eventually(t, 10*time.Second, "NoLocalBinary", func() error {
		api := apiPods(t, ns, "nobin")
		if len(api) != 1 || len(api[0].Status.ContainerStatuses) != 1 {
			return fmt.Errorf("pods %d", len(api))
		}
		if w := api[0].Status.ContainerStatuses[0].State.Waiting; w == nil || w.Reason != "NoLocalBinary" {
			return fmt.Errorf("state %+v", api[0].Status.ContainerStatuses[0].State)
		}
		return nil
	})
}

// Scale up and down: the process count follows spec.replicas, the victims
// are chosen by deletion cost, and each is deleted in the API (terminating
// while it drains), sent SIGTERM, and let go when it has exited.
func TestScaleFollowsReplicasWithDeletionCost(t *testing.T) {
	needEnv(t)
	ns := newNamespace(t)
	create(t, fakeDeployment(ns, "web", 3, corev1.EnvVar{Name: "FAKEPOD_TERM_DELAY", Value: "1500ms"}))
	r := startRunner(t, ns, Options{})
	pods := waitReady(t, r, ns, "web", 3)
	pids := map[int]bool{}
	for _, p := range pods {
		if !alive(p.PID) {
			t.Fatalf("pod %s: process %d not alive", p.Name, p.PID)
		}
		pids[p.PID] = true
	}
	if len(pids) != 3 {
		t.Fatalf("pids %v", pids)
	}

	costs := []string{"100", "-5", "50"}
	for i, p := range pods {
		annotatePod(t, ns, p.Name, DeletionCostAnnotation, costs[i])
	}
	// The cheapest pod goes first, and is seen terminating while its
	// process drains.
	scale(t, ns, "web", 2)
	victim := pods[1]
	testenv.Eventually(t, 10*time.Second, "victim terminating in the API while its process runs", func() error {
		var ap corev1.Pod
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: victim.Name}, &ap); err != nil {
			return err
		}
		info, ok := r.Pod(victim.Name)
		if ap.DeletionTimestamp == nil || !ok || !info.Terminating {
			return fmt.Errorf("deletionTimestamp %v, runner %+v", ap.DeletionTimestamp, info)
		}
		if !slices.Contains(ap.Finalizers, Finalizer) || !alive(victim.PID) {
			return fmt.Errorf("finalizers %v alive %v", ap.Finalizers, alive(victim.PID))
		}
		return nil
	})
	testenv.Eventually(t, 10*time.Second, "victim gone", func() error {
		if len(apiPods(t, ns, "web")) != 2 {
			return errNotYet
		}
		if _, ok := r.Pod(victim.Name); ok || alive(victim.PID) {
			return fmt.Errorf("runner still has %s or its process lives", victim.Name)
		}
		return nil
	})
	h := historyOf(r, victim.Name)
	if len(h) != 1 || h[0].Reason != "scale-down" || h[0].TermSent.IsZero() || h[0].Killed || h[0].ExitCode != 0 {
		t.Fatalf("history of %s: %+v", victim.Name, h)
	}
	if d := h[0].Exited.Sub(h[0].TermSent); d < time.Second {
		t.Errorf("exited %s after SIGTERM; fakepod waits 1.5s", d)
	}
	log := readFile(t, victim.LogPath)
	if !contains(log, "fakepod: SIGTERM") || !contains(log, "fakepod: exiting") {
		t.Errorf("log of %s:\n%s", victim.Name, log)
	}
	if got := names(waitReady(t, r, ns, "web", 2)); !slices.Equal(got, []string{pods[0].Name, pods[2].Name}) {
		t.Fatalf("survivors %v", got)
	}

	scale(t, ns, "web", 1)
	if got := names(waitReady(t, r, ns, "web", 1)); !slices.Equal(got, []string{pods[0].Name}) {
		t.Fatalf("survivor %v, want the costliest %s", got, pods[0].Name)
	}
	if alive(pods[2].PID) {
		t.Fatalf("process of %s still alive", pods[2].Name)
	}

	scale(t, ns, "web", 3)
	after := waitReady(t, r, ns, "web", 3)
	if !slices.Contains(names(after), pods[0].Name) {
		t.Fatalf("scale up replaced the survivor: %v", names(after))
	}
	d := getDeployment(t, ns, "web")
	testenv.Eventually(t, 5*time.Second, "status 3/3", func() error {
		d = getDeployment(t, ns, "web")
		if d.Status.ReadyReplicas != 3 || d.Status.Replicas != 3 || d.Status.ObservedGeneration != d.Generation {
			return fmt.Errorf("status %+v", d.Status)
		}
		return nil
	})
}

// A not-ready pod goes before a cheaper ready one, as in a ReplicaSet.
func TestScaleDownPrefersNotReady(t *testing.T) {
	needEnv(t)
	ns := newNamespace(t)
	create(t, fakeDeployment(ns, "nr", 3))
	r := startRunner(t, ns, Options{})
	pods := waitReady(t, r, ns, "nr", 3)
	annotatePod(t, ns, pods[0].Name, DeletionCostAnnotation, "-100")
	annotatePod(t, ns, pods[2].Name, DeletionCostAnnotation, "100")
	setReady(t, pods[2], false)
	testenv.Eventually(t, 5*time.Second, "pod not ready", func() error {
		if p, _ := r.Pod(pods[2].Name); p.Ready {
			return errNotYet
		}
		return nil
	})
	scale(t, ns, "nr", 2)
	testenv.Eventually(t, 10*time.Second, "not-ready pod removed", func() error {
		if _, ok := r.Pod(pods[2].Name); ok {
			return errNotYet
		}
		return nil
	})
	if got := names(waitReady(t, r, ns, "nr", 2)); !slices.Equal(got, []string{pods[0].Name, pods[1].Name}) {
		t.Fatalf("survivors %v", got)
	}
}

func TestReadinessReflectedInPodAndDeployment(t *testing.T) {
	needEnv(t)
	ns := newNamespace(t)
	d := fakeDeployment(ns, "rd", 2)
	create(t, d)
	r := startRunner(t, ns, Options{})
	pods := waitReady(t, r, ns, "rd", 2)

	deploymentIs := func(ready int32, avail corev1.ConditionStatus, availReason string) func() error {
		return func() error {
			d := getDeployment(t, ns, "rd")
			s := d.Status
			if s.ReadyReplicas != ready || s.AvailableReplicas != ready || s.UnavailableReplicas != 2-ready || s.Replicas != 2 {
				return fmt.Errorf("status %+v", s)
			}
			if c, reason := deploymentCondition(d, appsv1.DeploymentAvailable); c != avail || reason != availReason {
				return fmt.Errorf("Available %s %s", c, reason)
			}
			return nil
		}
	}
	testenv.Eventually(t, 5*time.Second, "2 ready", deploymentIs(2, corev1.ConditionTrue, "MinimumReplicasAvailable"))

	setReady(t, pods[0], false)
	testenv.Eventually(t, 5*time.Second, "pod not Ready in the API", func() error {
		var ap corev1.Pod
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: pods[0].Name}, &ap); err != nil {
			return err
		}
		if podCondition(&ap, corev1.PodReady) != corev1.ConditionFalse || podCondition(&ap, corev1.ContainersReady) != corev1.ConditionFalse {
			return fmt.Errorf("conditions %+v", ap.Status.Conditions)
		}
		if ap.Status.Phase != corev1.PodRunning || ap.Status.ContainerStatuses[0].Ready {
			return fmt.Errorf("status %+v", ap.Status)
		}
		return nil
	})
	// 2 replicas, maxUnavailable 25% rounds down to 0: one unready pod
	// makes the Deployment unavailable.
	testenv.Eventually(t, 5*time.Second, "1 ready", deploymentIs(1, corev1.ConditionFalse, "MinimumReplicasUnavailable"))

	setReady(t, pods[0], true)
	testenv.Eventually(t, 5*time.Second, "2 ready again", deploymentIs(2, corev1.ConditionTrue, "MinimumReplicasAvailable"))
}

func TestSIGKILLAfterGracePeriod(t *testing.T) {
	needEnv(t)
	ns := newNamespace(t)
	d := fakeDeployment(ns, "stubborn", 1, corev1.EnvVar{Name: "FAKEPOD_IGNORE_TERM", Value: "1"})
	grace := int64(2)
	d.Spec.Template.Spec.TerminationGracePeriodSeconds = &grace
	create(t, d)
	r := startRunner(t, ns, Options{})
	p := waitReady(t, r, ns, "stubborn", 1)[0]
	scale(t, ns, "stubborn", 0)
	testenv.Eventually(t, 10*time.Second, "pod gone", func() error {
		if len(apiPods(t, ns, "stubborn")) != 0 || len(r.Pods()) != 0 {
			return errNotYet
		}
		return nil
	})
	h := historyOf(r, p.Name)
	if len(h) != 1 || !h[0].Killed || h[0].Signal != "killed" || h[0].TermSent.IsZero() {
		t.Fatalf("history %+v", h)
	}
	if d := h[0].Exited.Sub(h[0].TermSent); d < 1900*time.Millisecond || d > 5*time.Second {
		t.Errorf("killed %s after SIGTERM, grace is 2s", d)
	}
	if alive(p.PID) {
		t.Fatal("process alive")
	}
	if log := readFile(t, p.LogPath); !contains(log, "fakepod: ignoring SIGTERM") {
		t.Errorf("log:\n%s", log)
	}
}

func TestRestartsProcessThatExits(t *testing.T) {
	needEnv(t)
	ns := newNamespace(t)
	create(t, fakeDeployment(ns, "crash", 1))
	r := startRunner(t, ns, Options{RestartBackoff: 100 * time.Millisecond})
	p := waitReady(t, r, ns, "crash", 1)[0]
	resp, err := http.Post("http://"+p.AdminListen+"/exit?code=3", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	testenv.Eventually(t, 10*time.Second, "restarted", func() error {
		q, ok := r.Pod(p.Name)
		if !ok || q.Restarts != 1 || q.PID == 0 || q.PID == p.PID || !q.Ready {
			return fmt.Errorf("pod %+v", q)
		}
		var ap corev1.Pod
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: p.Name}, &ap); err != nil {
			return err
		}
		cs := ap.Status.ContainerStatuses
		if len(cs) != 1 || cs[0].RestartCount != 1 || cs[0].LastTerminationState.Terminated == nil || cs[0].LastTerminationState.Terminated.ExitCode != 3 || !podReady(&ap) {
			return fmt.Errorf("container status %+v", cs)
		}
		return nil
	})
	if h := historyOf(r, p.Name); len(h) != 1 || h[0].Reason != "" || h[0].ExitCode != 3 || !h[0].TermSent.IsZero() {
		t.Fatalf("history %+v", h)
	}
	if len(r.Pods()) != 1 {
		t.Fatalf("pods %v", names(r.Pods()))
	}
}

// A new pod template rolls: new pods start, old ones stop only as new ones
// turn Ready, so the ready count never drops below replicas.
func TestTemplateChangeRolls(t *testing.T) {
	needEnv(t)
	ns := newNamespace(t)
	create(t, fakeDeployment(ns, "roll", 2, corev1.EnvVar{Name: "VERSION", Value: "1"}))
	r := startRunner(t, ns, Options{})
	old := waitReady(t, r, ns, "roll", 2)

	d := getDeployment(t, ns, "roll")
	patch := client.MergeFrom(d.DeepCopy())
	for i, e := range d.Spec.Template.Spec.Containers[0].Env {
		if e.Name == "VERSION" {
			d.Spec.Template.Spec.Containers[0].Env[i].Value = "2"
		}
	}
	if err := k8s.Patch(context.Background(), d, patch); err != nil {
		t.Fatal(err)
	}

	minReady := 2
	deadline := time.Now().Add(20 * time.Second)
	for {
		ready, fresh := 0, 0
		for _, p := range r.Pods() {
			if p.Ready && !p.Terminating {
				ready++
				if p.TemplateHash != old[0].TemplateHash {
					fresh++
				}
			}
		}
		minReady = min(minReady, ready)
		if fresh == 2 && len(r.Pods()) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rollout not done: %+v", r.Pods())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if minReady < 2 {
		t.Errorf("ready pods dropped to %d during the rollout", minReady)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.WaitReady(ctx, "roll", 2); err != nil {
		t.Fatal(err)
	}
	short, cancelShort := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancelShort()
	if err := r.WaitReady(short, "roll", 3); err == nil {
		t.Fatal("WaitReady for 3 of 2 pods returned nil")
	}
	for _, p := range waitReady(t, r, ns, "roll", 2) {
		if _, env := podEnv(t, p); env["VERSION"] != "2" {
			t.Errorf("pod %s VERSION=%q", p.Name, env["VERSION"])
		}
	}
	for _, p := range old {
		if h := historyOf(r, p.Name); len(h) != 1 || h[0].Reason != "rollout" {
			t.Errorf("old pod %s history %+v", p.Name, h)
		}
	}
	testenv.Eventually(t, 5*time.Second, "status after rollout", func() error {
		d := getDeployment(t, ns, "roll")
		s := d.Status
		if s.ObservedGeneration != d.Generation || s.UpdatedReplicas != 2 || s.ReadyReplicas != 2 || s.Replicas != 2 {
			return fmt.Errorf("status %+v", s)
		}
		if _, reason := deploymentCondition(d, appsv1.DeploymentProgressing); reason != "NewReplicaSetAvailable" {
			return fmt.Errorf("Progressing %s", reason)
		}
		return nil
	})
}

// Deleting a Pod in the API terminates its process and the Deployment gets
// a new pod.
func TestPodDeletedInAPIIsReplaced(t *testing.T) {
	needEnv(t)
	ns := newNamespace(t)
	create(t, fakeDeployment(ns, "del", 1))
	r := startRunner(t, ns, Options{})
	p := waitReady(t, r, ns, "del", 1)[0]
	if err := k8s.Delete(context.Background(), &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: p.Name}}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "deleted pod terminating or gone", func() error {
		if q, ok := r.Pod(p.Name); ok && !q.Terminating {
			return errNotYet
		}
		return nil
	})
	q := waitReady(t, r, ns, "del", 1)[0]
	if q.Name == p.Name {
		t.Fatalf("same pod %s", q.Name)
	}
	testenv.Eventually(t, 10*time.Second, "old process ended", func() error {
		if h := historyOf(r, p.Name); len(h) != 1 || h[0].Reason != "pod-deleted" || h[0].TermSent.IsZero() {
			return fmt.Errorf("history %+v", h)
		}
		if alive(p.PID) {
			return errNotYet
		}
		return nil
	})
}

func TestDeploymentDeletedAndStop(t *testing.T) {
	needEnv(t)
	ns := newNamespace(t)
	create(t, fakeDeployment(ns, "gone", 1))
	create(t, fakeDeployment(ns, "stay", 2))
	r := startRunner(t, ns, Options{})
	gone := waitReady(t, r, ns, "gone", 1)[0]
	stay := waitReady(t, r, ns, "stay", 2)

	if err := k8s.Delete(context.Background(), getDeployment(t, ns, "gone")); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "pods of a deleted Deployment stopped", func() error {
		if len(apiPods(t, ns, "gone")) != 0 || alive(gone.PID) {
			return errNotYet
		}
		return nil
	})
	if h := historyOf(r, gone.Name); len(h) != 1 || h[0].Reason != "deployment-deleted" {
		t.Fatalf("history %+v", h)
	}

	r.Stop()
	for _, p := range stay {
		if alive(p.PID) {
			t.Errorf("process of %s alive after Stop", p.Name)
		}
		if h := historyOf(r, p.Name); len(h) != 1 || h[0].Reason != "runner-stop" || h[0].ExitCode != 0 {
			t.Errorf("history of %s: %+v", p.Name, h)
		}
	}
	if left := apiPods(t, ns, "stay"); len(left) != 0 {
		t.Errorf("pods left in the API after Stop: %d", len(left))
	}
	if len(r.Pods()) != 0 {
		t.Errorf("runner pods after Stop: %v", names(r.Pods()))
	}
	r.Stop() // twice is fine
}

// Recreate: every old pod has ended before a new one starts.
func TestRecreateStopsOldPodsFirst(t *testing.T) {
	needEnv(t)
	ns := newNamespace(t)
	d := fakeDeployment(ns, "rec", 2, corev1.EnvVar{Name: "VERSION", Value: "1"}, corev1.EnvVar{Name: "FAKEPOD_TERM_DELAY", Value: "300ms"})
	d.Spec.Strategy.Type = appsv1.RecreateDeploymentStrategyType
	create(t, d)
	r := startRunner(t, ns, Options{})
	old := waitReady(t, r, ns, "rec", 2)

	d = getDeployment(t, ns, "rec")
	patch := client.MergeFrom(d.DeepCopy())
	d.Spec.Template.Spec.Containers[0].Env[2].Value = "2"
	if err := k8s.Patch(context.Background(), d, patch); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		var olds, news, newReady int
		for _, p := range r.Pods() {
			if p.TemplateHash == old[0].TemplateHash {
				olds++
				continue
			}
			news++
			if p.Ready {
				newReady++
			}
		}
		if olds > 0 && news > 0 {
			t.Fatalf("old and new pods at once: %+v", r.Pods())
		}
		if newReady == 2 && olds == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not recreated: %+v", r.Pods())
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, p := range old {
		if h := historyOf(r, p.Name); len(h) != 1 || h[0].Reason != "rollout" {
			t.Errorf("old pod %s history %+v", p.Name, h)
		}
	}
}

// A pod spec shaped like the operator's (service account, security
// contexts, volumes, spread constraints, startup and liveness probes, a
// preStop sleep) runs, and the preStop sleep comes before SIGTERM.
func TestOperatorShapedPodWithPreStop(t *testing.T) {
	needEnv(t)
	ns := newNamespace(t)
	create(t, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "room-chatr"}})
	d := fakeDeployment(ns, "shaped", 1)
	yes, no, uid := true, false, int64(65532)
	spec := &d.Spec.Template.Spec
	spec.ServiceAccountName = "room-chatr"
	spec.AutomountServiceAccountToken = &no
	spec.EnableServiceLinks = &no
	spec.SecurityContext = &corev1.PodSecurityContext{RunAsNonRoot: &yes, RunAsUser: &uid,
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}}
	spec.Volumes = []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: corev1.LabelHostname,
		WhenUnsatisfiable: corev1.ScheduleAnyway, LabelSelector: d.Spec.Selector}}
	ctr := &spec.Containers[0]
	ctr.Env = append(ctr.Env, corev1.EnvVar{Name: "SA", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.serviceAccountName"}}})
	ctr.SecurityContext = &corev1.SecurityContext{AllowPrivilegeEscalation: &no, ReadOnlyRootFilesystem: &yes,
		Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}
	ctr.VolumeMounts = []corev1.VolumeMount{{Name: "tmp", MountPath: "/tmp"}}
	probe := func(path string) *corev1.Probe {
		return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString("admin")}}}
	}
	ctr.StartupProbe, ctr.LivenessProbe = probe("/healthz"), probe("/healthz")
	ctr.Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 1}}}
	create(t, d)
	r := startRunner(t, ns, Options{})
	p := waitReady(t, r, ns, "shaped", 1)[0]
	if _, env := podEnv(t, p); env["SA"] != "room-chatr" {
		t.Errorf("SA = %q", env["SA"])
	}

	scaled := time.Now()
	scale(t, ns, "shaped", 0)
	testenv.Eventually(t, 10*time.Second, "stopped", func() error {
		if h := historyOf(r, p.Name); len(h) != 1 {
			return errNotYet
		}
		return nil
	})
	h := historyOf(r, p.Name)[0]
	if wait := h.TermSent.Sub(scaled); wait < time.Second {
		t.Errorf("SIGTERM %s after the scale-down; the preStop sleep is 1s", wait)
	}
	if h.Killed || h.ExitCode != 0 {
		t.Errorf("history %+v", h)
	}
}
