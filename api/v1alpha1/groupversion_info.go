// Package v1alpha1 holds the mcpgate.dev/v1alpha1 API: the McpServer,
// ClerkInstance and ClusterClerkInstance kinds.
//
// +kubebuilder:object:generate=true
// +groupName=mcpgate.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of every kind in this package.
	GroupVersion = schema.GroupVersion{Group: "mcpgate.dev", Version: "v1alpha1"}

	// schemeBuilder is apimachinery's scheme builder, which
	// controller-runtime's deprecated scheme.Builder wrapped.
	schemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the kinds of this package to a runtime.Scheme.
	AddToScheme = schemeBuilder.AddToScheme
)

// addKnownTypes registers every kind of this package, with their lists.
func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&McpServer{}, &McpServerList{},
		&ClerkInstance{}, &ClerkInstanceList{},
		&ClusterClerkInstance{}, &ClusterClerkInstanceList{},
	)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
