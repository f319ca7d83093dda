// Package v1alpha1 holds the ChatRoom API (group chatr.ai, version v1alpha1):
// the one object a platform team writes to get a running chat room.
//
// +kubebuilder:object:generate=true
// +groupName=chatr.ai
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of every type in this package.
	GroupVersion = schema.GroupVersion{Group: "chatr.ai", Version: "v1alpha1"}

	// SchemeBuilder registers the types of this package with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the types of this package to a scheme; the operator's
	// main and the tests call it once at start.
	AddToScheme = SchemeBuilder.AddToScheme
)
