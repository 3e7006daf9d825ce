// Command k8sschema writes JSON schemas for the Kubernetes kinds Sluice's
// manifests use, generated from the Go types of the Kubernetes API module
// (k8s.io/api), in the file layout kubeconform reads
// ({kind}-{group}-{version}.json). The test command validates the
// manifests and the Helm chart against them offline: nothing is
// downloaded at test time.
//
// It is its own module so that the Kubernetes API module never becomes a
// dependency of Sluice itself.
//
//	go run . -out DIR
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"github.com/invopop/jsonschema"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// kinds are the kinds the manifests use, with their group and version.
var kinds = []struct {
	kind, group, version string
	obj                  any
}{
	{"ConfigMap", "", "v1", corev1.ConfigMap{}},
	{"Service", "", "v1", corev1.Service{}},
	{"Pod", "", "v1", corev1.Pod{}}, // the chart's helm test
	{"ServiceAccount", "", "v1", corev1.ServiceAccount{}},
	{"StatefulSet", "apps", "v1", appsv1.StatefulSet{}},
	{"Deployment", "apps", "v1", appsv1.Deployment{}},
	{"PodDisruptionBudget", "policy", "v1", policyv1.PodDisruptionBudget{}},
	{"HorizontalPodAutoscaler", "autoscaling", "v2", autoscalingv2.HorizontalPodAutoscaler{}},
}

// special maps the types whose JSON form is not their Go struct.
func special(t reflect.Type) *jsonschema.Schema {
	switch t {
	case reflect.TypeOf(resource.Quantity{}):
		return &jsonschema.Schema{OneOf: []*jsonschema.Schema{{Type: "string"}, {Type: "number"}}}
	case reflect.TypeOf(intstr.IntOrString{}):
		return &jsonschema.Schema{OneOf: []*jsonschema.Schema{{Type: "string"}, {Type: "integer"}}}
	case reflect.TypeOf(metav1.Time{}), reflect.TypeOf(metav1.MicroTime{}):
		return &jsonschema.Schema{Type: "string"}
	case reflect.TypeOf(runtime.RawExtension{}):
		return &jsonschema.Schema{Type: "object"}
	}
	return nil
}

func main() {
	out := flag.String("out", "", "directory to write the schemas to")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "k8sschema: -out is required")
		os.Exit(2)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "k8sschema:", err)
		os.Exit(1)
	}
	r := &jsonschema.Reflector{
		// Inline every type: k8s.io/api has many types of the same name in
		// different packages, which shared definitions would confuse.
		DoNotReference: true,
		// Kubernetes marks optional fields with omitempty; the others are
		// required, as in its own OpenAPI.
		RequiredFromJSONSchemaTags: false,
		Mapper:                     special,
	}
	for _, k := range kinds {
		s := r.Reflect(k.obj)
		apiVersion := k.version
		if k.group != "" {
			apiVersion = k.group + "/" + k.version
		}
		s.Properties.Set("apiVersion", &jsonschema.Schema{Type: "string", Enum: []any{apiVersion}})
		s.Properties.Set("kind", &jsonschema.Schema{Type: "string", Enum: []any{k.kind}})
		s.Required = append(s.Required, "apiVersion", "kind")
		data, err := json.MarshalIndent(s, "", "  ")
		if err != nil {
			fmt.Fprintln(os.Stderr, "k8sschema:", err)
			os.Exit(1)
		}
		name := strings.ToLower(k.kind)
		if k.group != "" {
			name += "-" + k.group
		}
		name += "-" + k.version + ".json"
		if err := os.WriteFile(filepath.Join(*out, name), data, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "k8sschema:", err)
			os.Exit(1)
		}
	}
}
