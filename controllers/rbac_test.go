package controllers

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// operatorUser is who the suite's manager runs as: a user bound to the
// ClusterRole of config/rbac/role.yaml (what `make manifests` generates from
// the +kubebuilder:rbac markers, and what the install grants). So every
// envtest test of this package runs the reconciler with exactly the
// operator's RBAC, and a permission the code needs but the role lacks (or a
// watch the role does not allow, such as one of Secrets) fails them.
const operatorUser = "chatr-operator-under-test"

// operatorRole reads the generated ClusterRole.
func operatorRole() (*rbacv1.ClusterRole, error) {
	raw, err := os.ReadFile(filepath.Join("..", "config", "rbac", "role.yaml"))
	if err != nil {
		return nil, err
	}
	var role rbacv1.ClusterRole
	if err := yaml.Unmarshal(raw, &role); err != nil {
		return nil, err
	}
	return &role, nil
}

// operatorConfig installs the operator's ClusterRole for operatorUser (with
// the admin client k8s) and returns cfg impersonating that user.
func operatorConfig(cfg *rest.Config) *rest.Config {
	role, err := operatorRole()
	must(err)
	role.Name = "chatr-operator-under-test"
	ctx := context.Background()
	must(k8s.Create(ctx, role))
	must(k8s.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role.Name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: operatorUser}},
	}))
	return asOperator(cfg)
}

// asOperator returns cfg impersonating operatorUser.
func asOperator(cfg *rest.Config) *rest.Config {
	out := rest.CopyConfig(cfg)
	out.Impersonate = rest.ImpersonationConfig{UserName: operatorUser}
	return out
}

// TestOperatorGetsOnlyTheSecretsItNames: the role lets the operator get a
// Secret by name and nothing more: it can neither list nor watch Secrets, in
// a namespace or across the cluster, so it cannot learn what Secrets exist
// or stream their contents. (The reconciler working under this role is what
// every other envtest test of this package shows; TestSecretChangeRollsThePodsThatReadIt
// shows a changed Secret still rolls its pods.)
func TestOperatorGetsOnlyTheSecretsItNames(t *testing.T) {
	needEnv(t)
	role, err := operatorRole()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range role.Rules {
		if slices.Contains(r.Resources, "secrets") && !slices.Equal(r.Verbs, []string{"get"}) {
			t.Errorf("role.yaml grants %v on secrets, want get only", r.Verbs)
		}
	}

	ctx := context.Background()
	ns := newNamespace(t)
	createSecrets(t, ns, "rbac")
	as, err := client.NewWithWatch(asOperator(restCfg), client.Options{Scheme: testScheme})
	if err != nil {
		t.Fatal(err)
	}
	var sec corev1.Secret
	if err := as.Get(ctx, client.ObjectKey{Namespace: ns, Name: "rbac-pg"}, &sec); err != nil {
		t.Fatalf("get of a named Secret: %v", err)
	}
	if len(sec.Data["url"]) == 0 {
		t.Errorf("the Secret read has no url: %v", sec.Data)
	}
	var list corev1.SecretList
	if err := as.List(ctx, &list, client.InNamespace(ns)); !apierrors.IsForbidden(err) {
		t.Errorf("list of a namespace's Secrets: %v, want forbidden", err)
	}
	if err := as.List(ctx, &list); !apierrors.IsForbidden(err) {
		t.Errorf("list of the cluster's Secrets: %v, want forbidden", err)
	}
	var meta metav1.PartialObjectMetadataList
	meta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("SecretList"))
	if err := as.List(ctx, &meta); !apierrors.IsForbidden(err) {
		t.Errorf("list of the Secrets' metadata: %v, want forbidden", err)
	}
	if w, err := as.Watch(ctx, &corev1.SecretList{}, client.InNamespace(ns)); !apierrors.IsForbidden(err) {
		if w != nil {
			w.Stop()
		}
		t.Errorf("watch of a namespace's Secrets: %v, want forbidden", err)
	}
}
