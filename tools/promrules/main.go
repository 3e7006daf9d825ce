// Command promrules reads rendered Kubernetes manifests on standard input
// and writes the rule groups of their PrometheusRule objects as a
// Prometheus rules file, for `promtool check rules` in the artefacts
// check (scripts/deploy-artifacts).
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"go.yaml.in/yaml/v3"
)

func main() {
	dec := yaml.NewDecoder(os.Stdin)
	var groups []any
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "promrules:", err)
			os.Exit(1)
		}
		if doc["kind"] != "PrometheusRule" {
			continue
		}
		spec, _ := doc["spec"].(map[string]any)
		g, _ := spec["groups"].([]any)
		groups = append(groups, g...)
	}
	if len(groups) == 0 {
		fmt.Fprintln(os.Stderr, "promrules: no PrometheusRule groups in the input")
		os.Exit(1)
	}
	if err := yaml.NewEncoder(os.Stdout).Encode(map[string]any{"groups": groups}); err != nil {
		fmt.Fprintln(os.Stderr, "promrules:", err)
		os.Exit(1)
	}
}
