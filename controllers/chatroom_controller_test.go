package controllers

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	chatrv1 "github.com/chatr-ai/chatr/api/v1alpha1"
	"github.com/chatr-ai/chatr/internal/config"
	"github.com/chatr-ai/chatr/internal/testenv"
)

// childObjects returns an empty object, by kind and name, for every child a
// room with an ingress has.
func childObjects(room *chatrv1.ChatRoom) []client.Object {
	ns := room.Namespace
	m := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Namespace: ns, Name: name} }
	objs := []client.Object{
		&corev1.ServiceAccount{ObjectMeta: m(room.ServiceAccountName())},
		&corev1.ConfigMap{ObjectMeta: m(room.ConfigMapName())},
		&networkingv1.Ingress{ObjectMeta: m(room.IngressName())},
	}
	for _, c := range chatrv1.Components {
		objs = append(objs,
			&appsv1.Deployment{ObjectMeta: m(room.ComponentName(c))},
			&policyv1.PodDisruptionBudget{ObjectMeta: m(room.ComponentName(c))},
			&networkingv1.NetworkPolicy{ObjectMeta: m(room.ComponentName(c))})
	}
	for _, c := range servedComponents {
		objs = append(objs, &corev1.Service{ObjectMeta: m(room.ComponentName(c))})
	}
	return objs
}

func kindOf(o client.Object) string { return fmt.Sprintf("%T", o) }

func deployment(room *chatrv1.ChatRoom, c chatrv1.Component) *appsv1.Deployment {
	return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: room.Namespace, Name: room.ComponentName(c)}}
}

func condition(room *chatrv1.ChatRoom, t string) *metav1.Condition {
	return meta.FindStatusCondition(room.Status.Conditions, t)
}

// wantCondition waits until the room's condition t has status s and reason.
func wantCondition(t *testing.T, room *chatrv1.ChatRoom, typ string, s metav1.ConditionStatus, reason string) {
	t.Helper()
	testenv.Eventually(t, 20*time.Second, fmt.Sprintf("condition %s=%s (%s)", typ, s, reason), func() error {
		r := &chatrv1.ChatRoom{ObjectMeta: room.ObjectMeta}
		if err := get(r); err != nil {
			return err
		}
		c := condition(r, typ)
		if c == nil {
			return fmt.Errorf("no %s condition", typ)
		}
		if c.Status != s || (reason != "" && c.Reason != reason) {
			return fmt.Errorf("%s is %s/%s: %s", typ, c.Status, c.Reason, c.Message)
		}
		if c.ObservedGeneration != r.Generation || r.Status.ObservedGeneration != r.Generation {
			return fmt.Errorf("observedGeneration %d/%d, generation %d", c.ObservedGeneration, r.Status.ObservedGeneration, r.Generation)
		}
		return nil
	})
}

// createRoom creates the room and waits until every child exists.
func createRoom(t *testing.T, room *chatrv1.ChatRoom) {
	t.Helper()
	if err := k8s.Create(context.Background(), room); err != nil {
		t.Fatalf("creating room: %v", err)
	}
	for _, obj := range childObjects(room) {
		if _, ok := obj.(*networkingv1.Ingress); ok && room.Spec.Ingress == nil {
			continue
		}
		testenv.Eventually(t, 20*time.Second, kindOf(obj)+" "+obj.GetName()+" created", func() error { return get(obj) })
	}
}

// updateRoom applies change to the latest room and writes it back.
func updateRoom(t *testing.T, room *chatrv1.ChatRoom, change func(*chatrv1.ChatRoom)) {
	t.Helper()
	testenv.Eventually(t, 20*time.Second, "updating room", func() error {
		if err := get(room); err != nil {
			return err
		}
		change(room)
		return k8s.Update(context.Background(), room)
	})
}

func TestCreateBuildsEveryChildOwnedByTheRoom(t *testing.T) {
	needEnv(t)
	ns := newNamespace(t)
	createSecrets(t, ns, "lobby")
	room := newRoom(ns, "lobby", "lobby")
	room.Spec.Ingress = &chatrv1.IngressSpec{Host: "lobby.example.com", ClassName: ptr("nginx"), TLSSecretName: "lobby-tls"}
	room.Spec.Streamer.Autoscaling.MinReplicas = 3
	room.Spec.TrustedProxies = []string{"10.0.0.0/8"}
	createRoom(t, room)
	if err := get(room); err != nil {
		t.Fatal(err)
	}

	// Every child exists with a controller reference to this room (by UID)
	// that blocks the room's foreground deletion: that is what makes the
	// garbage collector delete them with the room (envtest runs no GC).
	for _, obj := range childObjects(room) {
		testenv.Eventually(t, 20*time.Second, kindOf(obj)+" "+obj.GetName(), func() error { return get(obj) })
		refs := obj.GetOwnerReferences()
		if len(refs) != 1 {
			t.Fatalf("%s %s: owner references %v, want one", kindOf(obj), obj.GetName(), refs)
		}
		r := refs[0]
		if r.UID != room.UID || r.Kind != "ChatRoom" || r.APIVersion != "chatr.ai/v1alpha1" || r.Name != room.Name ||
			r.Controller == nil || !*r.Controller || r.BlockOwnerDeletion == nil || !*r.BlockOwnerDeletion {
			t.Errorf("%s %s: owner reference %+v is not a blocking controller reference to the room", kindOf(obj), obj.GetName(), r)
		}
		if obj.GetLabels()[chatrv1.LabelManagedBy] != chatrv1.ManagerName || obj.GetLabels()[chatrv1.LabelInstance] != room.Name {
			t.Errorf("%s %s: labels %v", kindOf(obj), obj.GetName(), obj.GetLabels())
		}
		if obj.GetAnnotations()[annotationSpecHash] == "" {
			t.Errorf("%s %s: no spec hash annotation", kindOf(obj), obj.GetName())
		}
	}

	st := deployment(room, chatrv1.ComponentStreamer)
	must(get(st))
	if *st.Spec.Replicas != 3 {
		t.Errorf("streamer replicas = %d, want minReplicas 3", *st.Spec.Replicas)
	}
	ctr := st.Spec.Template.Spec.Containers[0]
	if strings.Join(ctr.Command, " ") != "/chatrd streamer" || ctr.Image != room.Spec.Image {
		t.Errorf("streamer container %q %v", ctr.Image, ctr.Command)
	}
	if g := *st.Spec.Template.Spec.TerminationGracePeriodSeconds; g < 30+preStopSleep {
		t.Errorf("streamer grace period %d s is shorter than the drain time", g)
	}
	api := deployment(room, chatrv1.ComponentAPI)
	must(get(api))
	if *api.Spec.Replicas != 2 {
		t.Errorf("api replicas = %d, want the default 2", *api.Spec.Replicas)
	}

	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: room.ConfigMapName()}}
	must(get(cm))
	if got, want := cm.Data[config.EnvSchema], strings.ReplaceAll(ns, "-", "_")+"__lobby"; got != want {
		t.Errorf("schema %q, want %q, derived from the namespace and name", got, want)
	}
	if cm.Data[config.EnvTrustedProxies] != "10.0.0.0/8" || cm.Data[config.EnvMessageMaxChars] != "250" {
		t.Errorf("config map data %v", cm.Data)
	}

	in := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: room.IngressName()}}
	must(get(in))
	if in.Spec.IngressClassName == nil || *in.Spec.IngressClassName != "nginx" || len(in.Spec.TLS) != 1 || in.Spec.TLS[0].SecretName != "lobby-tls" {
		t.Errorf("ingress spec %+v", in.Spec)
	}

	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: room.ServiceAccountName()}}
	must(get(sa))
	if sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
		t.Error("service account mounts a token")
	}

	// The status describes the room at once: no pod is up yet.
	wantCondition(t, room, chatrv1.ConditionAvailable, metav1.ConditionFalse, chatrv1.ReasonComponentUnavailable)
	wantCondition(t, room, chatrv1.ConditionProgressing, metav1.ConditionTrue, chatrv1.ReasonRollingOut)
	wantCondition(t, room, chatrv1.ConditionDegraded, metav1.ConditionFalse, chatrv1.ReasonAsExpected)
	must(get(room))
	if room.Status.PostgresSchema != cm.Data[config.EnvSchema] || room.Status.Endpoints.URL != "https://lobby.example.com/" ||
		room.Status.Endpoints.API != "http://lobby-api."+ns+".svc:8080" || room.Status.Streamers != "0/3" {
		t.Errorf("status %+v", room.Status)
	}
	if ev := roomEvents(t, room); len(ev["Created"]) == 0 {
		t.Errorf("no Created event; events: %v", ev)
	}

	// Once in line, nothing is written again: no reconcile loop patches a
	// child whose server-side defaults differ from what the builders set.
	versions := func() map[string]string {
		out := map[string]string{}
		for _, obj := range childObjects(room) {
			must(get(obj))
			out[kindOf(obj)+"/"+obj.GetName()] = obj.GetResourceVersion()
		}
		return out
	}
	before := versions()
	testenv.Consistently(t, 1500*time.Millisecond, "children left alone", func() error {
		if now := versions(); fmt.Sprint(now) != fmt.Sprint(before) {
			return fmt.Errorf("children rewritten: %v -> %v", before, now)
		}
		return nil
	})
	if ev := roomEvents(t, room); len(ev["Updated"]) != 0 {
		t.Errorf("children updated with no change: %v", ev["Updated"][0].Note)
	}
}

func TestSpecChangePatchesOnlyWhatItAffects(t *testing.T) {
	needEnv(t)
	ctx := context.Background()
	ns := newNamespace(t)
	createSecrets(t, ns, "s")
	room := newRoom(ns, "room", "s")
	room.Spec.Ingress = &chatrv1.IngressSpec{Host: "a.example.com", Annotations: map[string]string{"x.example.com/one": "1"}}
	createRoom(t, room)

	templateHash := func(c chatrv1.Component) string {
		d := deployment(room, c)
		must(get(d))
		return d.Spec.Template.Annotations[annotationConfigHash]
	}
	before := map[chatrv1.Component]string{}
	for _, c := range chatrv1.Components {
		before[c] = templateHash(c)
	}

	// The autoscaler's move: the streamer fleet is scaled to 7.
	st := deployment(room, chatrv1.ComponentStreamer)
	must(get(st))
	st.Spec.Replicas = ptr(int32(7))
	must(k8s.Update(ctx, st))

	updateRoom(t, room, func(r *chatrv1.ChatRoom) {
		r.Spec.Limits.MessageMaxChars = 500
		r.Spec.API.Replicas = ptr(int32(4))
		r.Spec.Streamer.Autoscaling.MinReplicas = 3
		r.Spec.Ingress.Host = "b.example.com"
		r.Spec.Ingress.Annotations = map[string]string{"x.example.com/two": "2"}
	})

	testenv.Eventually(t, 20*time.Second, "config map holds the new limit", func() error {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: room.ConfigMapName()}}
		if err := get(cm); err != nil {
			return err
		}
		if cm.Data[config.EnvMessageMaxChars] != "500" {
			return fmt.Errorf("%s = %q", config.EnvMessageMaxChars, cm.Data[config.EnvMessageMaxChars])
		}
		return nil
	})
	testenv.Eventually(t, 20*time.Second, "api rolls with 4 replicas", func() error {
		d := deployment(room, chatrv1.ComponentAPI)
		if err := get(d); err != nil {
			return err
		}
		if *d.Spec.Replicas != 4 || d.Spec.Template.Annotations[annotationConfigHash] == before[chatrv1.ComponentAPI] {
			return fmt.Errorf("replicas %d, config hash %s", *d.Spec.Replicas, d.Spec.Template.Annotations[annotationConfigHash])
		}
		return nil
	})
	testenv.Eventually(t, 20*time.Second, "ingress moves to the new host and annotations", func() error {
		in := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: room.IngressName()}}
		if err := get(in); err != nil {
			return err
		}
		a := in.Annotations
		if in.Spec.Rules[0].Host != "b.example.com" || a["x.example.com/two"] != "2" || a["x.example.com/one"] != "" ||
			a["nginx.ingress.kubernetes.io/proxy-buffering"] != "off" {
			return fmt.Errorf("host %s, annotations %v", in.Spec.Rules[0].Host, a)
		}
		return nil
	})
	// The streamers read the limit (their guide states it) and the host
	// (their public URL), so they roll, and keep the autoscaler's 7
	// replicas; the verifier reads neither and is left alone.
	testenv.Eventually(t, 20*time.Second, "streamer rolls", func() error {
		if h := templateHash(chatrv1.ComponentStreamer); h == before[chatrv1.ComponentStreamer] {
			return fmt.Errorf("streamer config hash still %s", h)
		}
		return nil
	})
	testenv.Consistently(t, 2*time.Second, "verifier untouched, streamer at the autoscaler's replicas", func() error {
		if h := templateHash(chatrv1.ComponentVerifier); h != before[chatrv1.ComponentVerifier] {
			return fmt.Errorf("verifier config hash moved from %s to %s", before[chatrv1.ComponentVerifier], h)
		}
		d := deployment(room, chatrv1.ComponentStreamer)
		must(get(d))
		if *d.Spec.Replicas != 7 {
			return fmt.Errorf("streamer replicas %d, want the autoscaler's 7", *d.Spec.Replicas)
		}
		return nil
	})

	// Removing the ingress from the spec removes the Ingress.
	updateRoom(t, room, func(r *chatrv1.ChatRoom) { r.Spec.Ingress = nil })
	testenv.Eventually(t, 20*time.Second, "ingress deleted", func() error {
		err := get(&networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: room.IngressName()}})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("ingress still there (%v)", err)
	})
}

func TestDeletedChildIsRecreated(t *testing.T) {
	needEnv(t)
	ctx := context.Background()
	ns := newNamespace(t)
	createSecrets(t, ns, "s")
	room := newRoom(ns, "room", "s")
	createRoom(t, room)

	for _, obj := range []client.Object{
		deployment(room, chatrv1.ComponentStreamer),
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: room.ComponentName(chatrv1.ComponentAPI)}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: room.ConfigMapName()}},
		&networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: room.ComponentName(chatrv1.ComponentVerifier)}},
	} {
		testenv.Eventually(t, 20*time.Second, "child exists", func() error { return get(obj) })
		oldUID := obj.GetUID()
		if err := k8s.Delete(ctx, obj, client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil {
			t.Fatalf("deleting %s: %v", obj.GetName(), err)
		}
		testenv.Eventually(t, 20*time.Second, kindOf(obj)+" recreated", func() error {
			if err := get(obj); err != nil {
				return err
			}
			if obj.GetUID() == oldUID {
				return fmt.Errorf("still the old object")
			}
			return nil
		})
	}
}

func TestDriftIsPatchedBack(t *testing.T) {
	needEnv(t)
	ctx := context.Background()
	ns := newNamespace(t)
	createSecrets(t, ns, "s")
	room := newRoom(ns, "room", "s")
	createRoom(t, room)

	api := deployment(room, chatrv1.ComponentAPI)
	must(get(api))
	api.Spec.Template.Spec.Containers[0].Image = "evil:latest"
	api.Spec.Template.Spec.Containers[0].SecurityContext.ReadOnlyRootFilesystem = ptr(false)
	api.Spec.Replicas = ptr(int32(9))
	must(k8s.Update(ctx, api))

	np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: room.ComponentName(chatrv1.ComponentAPI)}}
	must(get(np))
	// Someone opens the API to every pod and its egress to everywhere.
	np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
	np.Spec.Ingress[0].From = nil
	np.Spec.Egress = nil
	must(k8s.Update(ctx, np))

	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: room.ConfigMapName()}}
	must(get(cm))
	cm.Data[config.EnvStreamsPerIP] = "100000"
	must(k8s.Update(ctx, cm))

	testenv.Eventually(t, 20*time.Second, "api deployment patched back", func() error {
		must(get(api))
		c := api.Spec.Template.Spec.Containers[0]
		if c.Image != room.Spec.Image || !*c.SecurityContext.ReadOnlyRootFilesystem || *api.Spec.Replicas != 2 {
			return fmt.Errorf("image %s, readOnlyRootFilesystem %v, replicas %d", c.Image, *c.SecurityContext.ReadOnlyRootFilesystem, *api.Spec.Replicas)
		}
		return nil
	})
	testenv.Eventually(t, 20*time.Second, "network policy patched back", func() error {
		must(get(np))
		if len(np.Spec.PolicyTypes) != 2 || len(np.Spec.Ingress) == 0 || len(np.Spec.Ingress[0].From) == 0 || len(np.Spec.Egress) == 0 {
			return fmt.Errorf("policy types %v, ingress %+v, egress %+v", np.Spec.PolicyTypes, np.Spec.Ingress, np.Spec.Egress)
		}
		return nil
	})
	testenv.Eventually(t, 20*time.Second, "config map patched back", func() error {
		must(get(cm))
		if cm.Data[config.EnvStreamsPerIP] != "10" {
			return fmt.Errorf("%s = %s", config.EnvStreamsPerIP, cm.Data[config.EnvStreamsPerIP])
		}
		return nil
	})

	// An object whose operator labels were removed drops out of the
	// operator's cache; it is still found, and its labels come back.
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: room.ComponentName(chatrv1.ComponentStreamer)}}
	must(get(svc))
	delete(svc.Labels, chatrv1.LabelManagedBy)
	must(k8s.Update(ctx, svc))
	// Nudge the room (a spec change) since the Service left the cache.
	updateRoom(t, room, func(r *chatrv1.ChatRoom) { r.Spec.Logging.Level = "debug" })
	testenv.Eventually(t, 20*time.Second, "service labels restored", func() error {
		must(get(svc))
		if svc.Labels[chatrv1.LabelManagedBy] != chatrv1.ManagerName {
			return fmt.Errorf("labels %v", svc.Labels)
		}
		return nil
	})
}

func TestSecretChangeRollsThePodsThatReadIt(t *testing.T) {
	needEnv(t)
	ctx := context.Background()
	ns := newNamespace(t)
	createSecrets(t, ns, "s")
	room := newRoom(ns, "room", "s")
	room.Spec.Moltbook.APIKeySecretName = "molt"
	must(k8s.Create(ctx, room))

	// The Moltbook Secret is missing: the room says so and waits for it.
	wantCondition(t, room, chatrv1.ConditionDegraded, metav1.ConditionTrue, chatrv1.ReasonSecretNotFound)
	must(get(room))
	if msg := condition(room, chatrv1.ConditionDegraded).Message; !strings.Contains(msg, `Secret "molt" not found`) {
		t.Errorf("degraded message %q does not name the Secret", msg)
	}
	testenv.Eventually(t, 20*time.Second, "warning event", func() error {
		if len(roomEvents(t, room)[chatrv1.ReasonSecretNotFound]) == 0 {
			return fmt.Errorf("no SecretNotFound event")
		}
		return nil
	})
	if err := get(deployment(room, chatrv1.ComponentAPI)); !apierrors.IsNotFound(err) {
		t.Errorf("deployment made before its Secrets exist: %v", err)
	}
	if err := get(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: room.ConfigMapName()}}); err != nil {
		t.Errorf("the rest of the room should be built meanwhile: %v", err)
	}

	molt := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "molt", Namespace: ns}, StringData: map[string]string{"apiKey": "k1"}}
	must(k8s.Create(ctx, molt))
	for _, c := range chatrv1.Components {
		testenv.Eventually(t, 20*time.Second, "deployment "+string(c)+" created once the Secret exists", func() error { return get(deployment(room, c)) })
	}
	wantCondition(t, room, chatrv1.ConditionDegraded, metav1.ConditionFalse, chatrv1.ReasonAsExpected)

	secretsHash := func() map[chatrv1.Component]string {
		out := map[chatrv1.Component]string{}
		for _, c := range chatrv1.Components {
			d := deployment(room, c)
			must(get(d))
			out[c] = d.Spec.Template.Annotations[annotationSecretsHash]
		}
		return out
	}
	h0 := secretsHash()

	// The Moltbook key is the verifier's alone.
	must(get(molt))
	molt.Data["apiKey"] = []byte("k2")
	must(k8s.Update(ctx, molt))
	testenv.Eventually(t, 20*time.Second, "verifier rolls on the Moltbook key", func() error {
		if h := secretsHash(); h[chatrv1.ComponentVerifier] == h0[chatrv1.ComponentVerifier] {
			return fmt.Errorf("verifier secrets hash unchanged")
		}
		return nil
	})
	h1 := secretsHash()
	if h1[chatrv1.ComponentAPI] != h0[chatrv1.ComponentAPI] || h1[chatrv1.ComponentStreamer] != h0[chatrv1.ComponentStreamer] {
		t.Errorf("api or streamer rolled on a key they do not read: %v -> %v", h0, h1)
	}

	// The Postgres URL is everyone's.
	pg := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s-pg", Namespace: ns}}
	must(get(pg))
	pg.Data["url"] = []byte("postgres://u:new@pg:5432/chatr")
	must(k8s.Update(ctx, pg))
	testenv.Eventually(t, 20*time.Second, "every component rolls on the Postgres URL", func() error {
		h := secretsHash()
		for _, c := range chatrv1.Components {
			if h[c] == h1[c] {
				return fmt.Errorf("%s secrets hash unchanged", c)
			}
		}
		return nil
	})

	// A Secret deleted under a running room: Degraded, and the Deployments
	// stay as they are (and are still reported, not taken for missing).
	must(k8s.Delete(ctx, molt))
	wantCondition(t, room, chatrv1.ConditionDegraded, metav1.ConditionTrue, chatrv1.ReasonSecretNotFound)
	for _, c := range chatrv1.Components {
		must(get(deployment(room, c)))
	}
	must(get(room))
	if cnd := condition(room, chatrv1.ConditionAPIAvailable); cnd.Reason == chatrv1.ReasonDeploymentMissing {
		t.Errorf("api reported missing while its Secret is: %+v", cnd)
	}
	molt = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "molt", Namespace: ns}, StringData: map[string]string{"apiKey": "k2"}}
	must(k8s.Create(ctx, molt))
	wantCondition(t, room, chatrv1.ConditionDegraded, metav1.ConditionFalse, chatrv1.ReasonAsExpected)

	// A key no one reads changes nothing.
	h2 := secretsHash()
	must(get(pg))
	pg.Data["unrelated"] = []byte("x")
	must(k8s.Update(ctx, pg))
	testenv.Consistently(t, time.Second, "unrelated key rolls nothing", func() error {
		if h := secretsHash(); fmt.Sprint(h) != fmt.Sprint(h2) {
			return fmt.Errorf("hashes moved: %v -> %v", h2, h)
		}
		return nil
	})
}

// setDeploymentStatus writes a Deployment's status as the Deployment
// controller would (envtest runs none).
func setDeploymentStatus(t *testing.T, d *appsv1.Deployment, s appsv1.DeploymentStatus) {
	t.Helper()
	testenv.Eventually(t, 20*time.Second, "writing deployment status", func() error {
		if err := get(d); err != nil {
			return err
		}
		s.ObservedGeneration = d.Generation
		d.Status = s
		return k8s.Status().Update(context.Background(), d)
	})
}

func healthy(n int32) appsv1.DeploymentStatus {
	return appsv1.DeploymentStatus{Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n,
		Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: "NewReplicaSetAvailable"}}}
}

func TestConditionsFollowDeploymentStatus(t *testing.T) {
	needEnv(t)
	ns := newNamespace(t)
	createSecrets(t, ns, "s")
	room := newRoom(ns, "room", "s")
	createRoom(t, room)
	api, st, ver := deployment(room, chatrv1.ComponentAPI), deployment(room, chatrv1.ComponentStreamer), deployment(room, chatrv1.ComponentVerifier)

	setDeploymentStatus(t, api, healthy(2))
	setDeploymentStatus(t, st, healthy(2))
	setDeploymentStatus(t, ver, healthy(1))
	wantCondition(t, room, chatrv1.ConditionAvailable, metav1.ConditionTrue, chatrv1.ReasonAvailable)
	wantCondition(t, room, chatrv1.ConditionProgressing, metav1.ConditionFalse, chatrv1.ReasonRolledOut)
	wantCondition(t, room, chatrv1.ConditionDegraded, metav1.ConditionFalse, chatrv1.ReasonAsExpected)
	wantCondition(t, room, chatrv1.ConditionStreamerAvailable, metav1.ConditionTrue, chatrv1.ReasonMinimumReplicasAvailable)
	testenv.Eventually(t, 20*time.Second, "ready/desired streamers", func() error {
		must(get(room))
		if room.Status.Streamers != "2/2" || room.Status.API.AvailableReplicas != 2 {
			return fmt.Errorf("streamers %q, api %+v", room.Status.Streamers, room.Status.API)
		}
		return nil
	})

	// The streamer autoscaler writes its part of the status; the ChatRoom
	// reconciler's later status writes must keep it.
	testenv.Eventually(t, 20*time.Second, "autoscaler status written", func() error {
		must(get(room))
		room.Status.Connections = ptr(int64(1234))
		room.Status.DesiredStreamers = ptr(int32(3))
		room.Status.LastScaleTime = &metav1.Time{Time: time.Now().Truncate(time.Second)}
		meta.SetStatusCondition(&room.Status.Conditions, metav1.Condition{Type: chatrv1.ConditionScalingActive,
			Status: metav1.ConditionTrue, Reason: "ConnectionsRead", Message: "test", ObservedGeneration: room.Generation})
		return k8s.Status().Update(context.Background(), room)
	})

	// A streamer rollout: one new pod, the two old ones still serving.
	setDeploymentStatus(t, st, appsv1.DeploymentStatus{Replicas: 3, UpdatedReplicas: 1, ReadyReplicas: 2, AvailableReplicas: 2})
	wantCondition(t, room, chatrv1.ConditionProgressing, metav1.ConditionTrue, chatrv1.ReasonRollingOut)
	wantCondition(t, room, chatrv1.ConditionAvailable, metav1.ConditionTrue, chatrv1.ReasonAvailable)
	must(get(room))
	if room.Status.Connections == nil || *room.Status.Connections != 1234 || room.Status.DesiredStreamers == nil ||
		room.Status.LastScaleTime == nil || condition(room, chatrv1.ConditionScalingActive) == nil {
		t.Errorf("the autoscaler's status was lost: %+v", room.Status)
	}

	// The rollout is stuck past its deadline.
	s := appsv1.DeploymentStatus{Replicas: 3, UpdatedReplicas: 1, ReadyReplicas: 2, AvailableReplicas: 2,
		Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse,
			Reason: "ProgressDeadlineExceeded", Message: `ReplicaSet "room-streamer-x" has timed out progressing.`}}}
	setDeploymentStatus(t, st, s)
	wantCondition(t, room, chatrv1.ConditionDegraded, metav1.ConditionTrue, chatrv1.ReasonProgressDeadlineExceeded)

	// Every streamer pod is gone: the room does not serve.
	lost := healthy(2)
	lost.ReadyReplicas, lost.AvailableReplicas = 0, 0
	setDeploymentStatus(t, st, lost)
	wantCondition(t, room, chatrv1.ConditionAvailable, metav1.ConditionFalse, chatrv1.ReasonComponentUnavailable)
	wantCondition(t, room, chatrv1.ConditionStreamerAvailable, metav1.ConditionFalse, chatrv1.ReasonNoReplicasAvailable)
	wantCondition(t, room, chatrv1.ConditionDegraded, metav1.ConditionTrue, chatrv1.ReasonReplicasUnavailable)

	// Back to health.
	setDeploymentStatus(t, st, healthy(2))
	wantCondition(t, room, chatrv1.ConditionAvailable, metav1.ConditionTrue, chatrv1.ReasonAvailable)
	wantCondition(t, room, chatrv1.ConditionDegraded, metav1.ConditionFalse, chatrv1.ReasonAsExpected)

	// The verifier alone down: the room serves, but is Degraded.
	down := healthy(1)
	down.ReadyReplicas, down.AvailableReplicas = 0, 0
	setDeploymentStatus(t, ver, down)
	wantCondition(t, room, chatrv1.ConditionVerifierAvailable, metav1.ConditionFalse, chatrv1.ReasonNoReplicasAvailable)
	wantCondition(t, room, chatrv1.ConditionDegraded, metav1.ConditionTrue, chatrv1.ReasonComponentUnavailable)
	wantCondition(t, room, chatrv1.ConditionAvailable, metav1.ConditionTrue, chatrv1.ReasonAvailable)

	// A reconcile that finds nothing new writes nothing: a label someone
	// adds to a Deployment wakes the reconciler (and is kept). (Not an
	// annotation: that bumps a Deployment's generation, a real change.)
	must(get(room))
	rv, beforeStatus := room.ResourceVersion, room.Status
	must(get(api))
	api.Labels["example.com/note"] = "hello"
	must(k8s.Update(context.Background(), api))
	testenv.Consistently(t, time.Second, "status unchanged", func() error {
		must(get(room))
		if room.ResourceVersion != rv {
			return fmt.Errorf("room rewritten: resourceVersion %s -> %s:\n before %+v\n after  %+v", rv, room.ResourceVersion, beforeStatus, room.Status)
		}
		must(get(api))
		if api.Labels["example.com/note"] != "hello" {
			return fmt.Errorf("someone else's label removed")
		}
		return nil
	})
}

func TestTwoRoomsInOneNamespaceDoNotCollide(t *testing.T) {
	needEnv(t)
	ctx := context.Background()
	ns := newNamespace(t)
	createSecrets(t, ns, "a")
	createSecrets(t, ns, "b")
	alpha, beta := newRoom(ns, "alpha", "a"), newRoom(ns, "beta", "b")
	// A name that is another room's child name plus a suffix.
	alphaAPI := newRoom(ns, "alpha-api", "b")
	for _, r := range []*chatrv1.ChatRoom{alpha, beta, alphaAPI} {
		createRoom(t, r)
		must(get(r))
	}
	for _, r := range []*chatrv1.ChatRoom{alpha, beta, alphaAPI} {
		for _, c := range chatrv1.Components {
			d := deployment(r, c)
			must(get(d))
			if d.OwnerReferences[0].UID != r.UID {
				t.Errorf("%s owned by %s, want %s", d.Name, d.OwnerReferences[0].Name, r.Name)
			}
			sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
			must(err)
			// The selector matches this room's pods and no other room's.
			for _, o := range []*chatrv1.ChatRoom{alpha, beta, alphaAPI} {
				for _, oc := range chatrv1.Components {
					matches := sel.Matches(labels.Set(o.ComponentLabels(oc)))
					if want := o.Name == r.Name && oc == c; matches != want {
						t.Errorf("selector of %s matches pods of %s/%s: %v", d.Name, o.Name, oc, matches)
					}
				}
			}
		}
	}
	schemas := map[string]string{}
	for _, r := range []*chatrv1.ChatRoom{alpha, beta, alphaAPI} {
		testenv.Eventually(t, 20*time.Second, "schema in status", func() error {
			must(get(r))
			if r.Status.PostgresSchema == "" {
				return fmt.Errorf("no schema yet")
			}
			return nil
		})
		if other, dup := schemas[r.Status.PostgresSchema]; dup {
			t.Errorf("rooms %s and %s share schema %s", other, r.Name, r.Status.PostgresSchema)
		}
		schemas[r.Status.PostgresSchema] = r.Name
	}

	// Changing one room leaves the other alone.
	b := deployment(beta, chatrv1.ComponentAPI)
	must(get(b))
	gen := b.Generation
	updateRoom(t, alpha, func(r *chatrv1.ChatRoom) { r.Spec.Image = "ghcr.io/chatr-ai/chatr:v2" })
	testenv.Eventually(t, 20*time.Second, "alpha rolls", func() error {
		a := deployment(alpha, chatrv1.ComponentAPI)
		must(get(a))
		if a.Spec.Template.Spec.Containers[0].Image != "ghcr.io/chatr-ai/chatr:v2" {
			return fmt.Errorf("alpha image %s", a.Spec.Template.Spec.Containers[0].Image)
		}
		return nil
	})
	must(get(b))
	if b.Generation != gen || b.Spec.Template.Spec.Containers[0].Image != "ghcr.io/chatr-ai/chatr:test" {
		t.Errorf("beta's api changed with alpha's spec")
	}

	// A Secret two rooms share rolls both, and only them.
	hash := func(r *chatrv1.ChatRoom) string {
		d := deployment(r, chatrv1.ComponentAPI)
		must(get(d))
		return d.Spec.Template.Annotations[annotationSecretsHash]
	}
	h := map[string]string{}
	for _, r := range []*chatrv1.ChatRoom{alpha, beta, alphaAPI} {
		h[r.Name] = hash(r)
	}
	shared := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "b-pg"}}
	must(get(shared))
	shared.Data["url"] = []byte("postgres://other")
	must(k8s.Update(ctx, shared))
	for _, r := range []*chatrv1.ChatRoom{beta, alphaAPI} {
		testenv.Eventually(t, 20*time.Second, r.Name+" rolls on the shared Secret", func() error {
			if hash(r) == h[r.Name] {
				return fmt.Errorf("secrets hash unchanged")
			}
			return nil
		})
	}
	if hash(alpha) != h[alpha.Name] {
		t.Errorf("alpha rolled on a Secret it does not read")
	}
}

func TestRefusesToAdoptObjectsItDoesNotOwn(t *testing.T) {
	needEnv(t)
	ctx := context.Background()
	ns := newNamespace(t)
	createSecrets(t, ns, "s")
	// Someone else's Service with a room child's name, with and without the
	// operator's labels (so one is in the operator's cache, one is not).
	theirs := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gamma-api", Labels: map[string]string{"team": "other"}},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "web", Port: 80}}},
	}
	must(k8s.Create(ctx, theirs))
	labelled := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gamma-config", Labels: map[string]string{chatrv1.LabelManagedBy: chatrv1.ManagerName}},
		Data:       map[string]string{"mine": "yes"},
	}
	must(k8s.Create(ctx, labelled))

	// An Ingress with the room's Ingress name, which the room (without
	// spec.ingress) does not want: it must be neither deleted nor reported.
	foreignIngress := &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gamma", Labels: map[string]string{chatrv1.LabelManagedBy: chatrv1.ManagerName}},
		Spec: networkingv1.IngressSpec{DefaultBackend: &networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
			Name: "web", Port: networkingv1.ServiceBackendPort{Number: 80}}}},
	}
	must(k8s.Create(ctx, foreignIngress))

	room := newRoom(ns, "gamma", "s")
	createRoom(t, room)
	wantCondition(t, room, chatrv1.ConditionDegraded, metav1.ConditionTrue, chatrv1.ReasonNotOwned)
	must(get(room))
	msg := condition(room, chatrv1.ConditionDegraded).Message
	if !strings.Contains(msg, `Service "gamma-api"`) || !strings.Contains(msg, `ConfigMap "gamma-config"`) {
		t.Errorf("degraded message %q does not name both objects", msg)
	}
	if strings.Contains(msg, "Ingress") {
		t.Errorf("an unwanted Ingress is reported: %q", msg)
	}
	testenv.Eventually(t, 20*time.Second, "warning event", func() error {
		ev := roomEvents(t, room)[chatrv1.ReasonNotOwned]
		if len(ev) == 0 || ev[0].Type != corev1.EventTypeWarning {
			return fmt.Errorf("no ResourceNotOwned warning: %v", ev)
		}
		return nil
	})
	testenv.Consistently(t, time.Second, "the foreign objects stay as they were", func() error {
		must(get(theirs))
		must(get(labelled))
		if len(theirs.OwnerReferences) != 0 || theirs.Spec.Ports[0].Name != "web" || len(labelled.OwnerReferences) != 0 || labelled.Data["mine"] != "yes" {
			return fmt.Errorf("adopted or changed: %+v %+v", theirs.ObjectMeta, labelled.Data)
		}
		return get(foreignIngress)
	})

	// Once the conflict is gone, the room completes.
	must(k8s.Delete(ctx, theirs))
	must(k8s.Delete(ctx, labelled))
	testenv.Eventually(t, 20*time.Second, "service created after the conflict is gone", func() error {
		s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gamma-api"}}
		if err := get(s); err != nil {
			return err
		}
		if !metav1.IsControlledBy(s, room) {
			return fmt.Errorf("not ours yet")
		}
		return nil
	})
}
