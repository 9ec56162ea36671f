package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	meshconfig "istio.io/api/mesh/v1alpha1"
	"istio.io/istio/pkg/config/mesh"
	"istio.io/istio/pkg/kube/inject"
	yamlutil "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// injectorConfig is what istiod reads from its injector ConfigMap.
type injectorConfig struct {
	config    *inject.Config
	rawValues string
	values    inject.ValuesConfig
	// revision is the values' "revision" (empty for the default revision).
	revision string
}

// configMapData is the part of a ConfigMap (or any document) the oracle looks at.
type configMapData struct {
	Kind string            `json:"kind"`
	Data map[string]string `json:"data"`
}

// readDocuments splits a YAML stream into its non-empty documents.
func readDocuments(path string) ([][]byte, error) {
	f, err := openInput(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return splitDocuments(f)
}

func splitDocuments(r io.Reader) ([][]byte, error) {
	reader := yamlutil.NewYAMLReader(bufio.NewReader(r))
	var docs [][]byte
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(stripComments(doc))) > 0 {
			docs = append(docs, doc)
		}
	}
}

// stripComments drops whole-line comments, so a document of only comments counts as empty.
func stripComments(doc []byte) []byte {
	var out []byte
	for _, line := range bytes.Split(doc, []byte("\n")) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] == '#' {
			continue
		}
		out = append(out, line...)
		out = append(out, '\n')
	}
	return out
}

func openInput(path string) (io.ReadCloser, error) {
	if path == "-" {
		return io.NopCloser(os.Stdin), nil
	}
	return os.Open(path)
}

// loadInjector reads the first document of the file that has data.config (the
// istio-sidecar-injector ConfigMap, as `kubectl get configmap -o yaml` or --print-configmaps
// prints it) and parses it as istiod does (UnmarshalConfig, NewValuesConfig).
func loadInjector(path string) (injectorConfig, error) {
	docs, err := readDocuments(path)
	if err != nil {
		return injectorConfig{}, fmt.Errorf("--injector %s: %v", path, err)
	}
	return parseInjector(path, docs)
}

func parseInjector(path string, docs [][]byte) (injectorConfig, error) {
	for _, doc := range docs {
		var cm configMapData
		if err := yaml.Unmarshal(doc, &cm); err != nil {
			return injectorConfig{}, fmt.Errorf("--injector %s: %v", path, err)
		}
		raw, ok := cm.Data["config"]
		if !ok {
			continue
		}
		cfg, err := inject.UnmarshalConfig([]byte(raw))
		if err != nil {
			return injectorConfig{}, fmt.Errorf("--injector %s: data.config: %v", path, err)
		}
		values, err := inject.NewValuesConfig(cm.Data["values"])
		if err != nil {
			return injectorConfig{}, fmt.Errorf("--injector %s: data.values: %v", path, err)
		}
		revision, _ := values.Map()["revision"].(string)
		return injectorConfig{config: &cfg, rawValues: cm.Data["values"], values: values, revision: revision}, nil
	}
	return injectorConfig{}, fmt.Errorf("--injector %s: no ConfigMap with data.config", path)
}

// loadMesh reads the istio ConfigMap's data.mesh (first document that has it) or, when no
// document is a ConfigMap, the whole file as a MeshConfig; either is applied over
// mesh.DefaultMeshConfig() as istiod does.
func loadMesh(path string) (*meshconfig.MeshConfig, error) {
	docs, err := readDocuments(path)
	if err != nil {
		return nil, fmt.Errorf("--mesh %s: %v", path, err)
	}
	return parseMesh(path, docs)
}

func parseMesh(path string, docs [][]byte) (*meshconfig.MeshConfig, error) {
	sawConfigMap := false
	for _, doc := range docs {
		var cm configMapData
		if err := yaml.Unmarshal(doc, &cm); err != nil {
			// A MeshConfig is not a ConfigMap (its "data"-less shape may still fail here).
			continue
		}
		if cm.Kind == "ConfigMap" {
			sawConfigMap = true
		}
		if text, ok := cm.Data["mesh"]; ok {
			return applyMesh(path, text)
		}
	}
	if sawConfigMap {
		return nil, fmt.Errorf("--mesh %s: no ConfigMap with data.mesh", path)
	}
	if len(docs) != 1 {
		return nil, fmt.Errorf("--mesh %s: want one MeshConfig document, found %d", path, len(docs))
	}
	return applyMesh(path, string(docs[0]))
}

func applyMesh(path, text string) (*meshconfig.MeshConfig, error) {
	m, err := mesh.ApplyMeshConfig(text, mesh.DefaultMeshConfig())
	if err != nil {
		return nil, fmt.Errorf("--mesh %s: %v", path, err)
	}
	return m, nil
}

// loadConfigs reads both files and settles the revision the way the chosen path does.
func loadConfigs(o options) (injectorConfig, *meshconfig.MeshConfig, error) {
	inj, err := loadInjector(o.injector)
	if err != nil {
		return inj, nil, err
	}
	m, err := loadMesh(o.mesh)
	if err != nil {
		return inj, nil, err
	}
	if o.revisionSet {
		inj.revision = o.revision
	}
	return inj, m, nil
}
