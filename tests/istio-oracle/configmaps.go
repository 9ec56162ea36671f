package main

import (
	"fmt"
	"io"

	"istio.io/istio/operator/pkg/render"
	"sigs.k8s.io/yaml"
)

// printConfigmaps renders this Istio version's charts (compiled into the module from its
// manifests/) the way Istio's own inject tests do (webhook_test.go getInjectionSettings:
// profile=empty, components.pilot.enabled=true, plus any --set) and prints the injector
// ConfigMap, then the mesh ConfigMap, as one YAML stream.
func printConfigmaps(sets []string, out io.Writer) error {
	docs, err := renderConfigmaps(sets)
	if err != nil {
		return err
	}
	for _, y := range docs {
		if _, err := fmt.Fprintf(out, "---\n%s", y); err != nil {
			return err
		}
	}
	return nil
}

// renderConfigmaps returns the injector ConfigMap and the mesh ConfigMap, as YAML, in that order.
func renderConfigmaps(sets []string) ([][]byte, error) {
	flags := append([]string{"profile=empty", "components.pilot.enabled=true"}, sets...)
	manifests, _, err := render.GenerateManifest(nil, flags, false, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("render Istio's charts: %v", err)
	}
	found := map[string][]byte{}
	for _, set := range manifests {
		for _, m := range set.Manifests {
			if m.GetKind() != "ConfigMap" {
				continue
			}
			// The injector ConfigMap holds data.config, the mesh one data.mesh (their names
			// carry the revision, if one is --set).
			data, _ := m.Object["data"].(map[string]any)
			name := ""
			if _, ok := data["config"]; ok {
				name = "injector"
			} else if _, ok := data["mesh"]; ok {
				name = "mesh"
			} else {
				continue
			}
			y, err := yaml.Marshal(m.Object)
			if err != nil {
				return nil, err
			}
			found[name] = y
		}
	}
	var docs [][]byte
	for _, name := range []string{"injector", "mesh"} {
		y, ok := found[name]
		if !ok {
			return nil, fmt.Errorf("the charts rendered no %s ConfigMap", name)
		}
		docs = append(docs, y)
	}
	return docs, nil
}
