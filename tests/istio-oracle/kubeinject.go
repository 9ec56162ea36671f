package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	meshconfig "istio.io/api/mesh/v1alpha1"
	"istio.io/istio/pkg/kube/inject"
	"sigs.k8s.io/yaml"
)

// refusedError is Istio refusing to inject (an invalid annotation, a missing template, ...),
// as opposed to the oracle failing to run.
type refusedError struct{ err error }

func (r refusedError) Error() string { return r.err.Error() }
func (r refusedError) Unwrap() error { return r.err }

func asRefused(err error, target *refusedError) bool { return errors.As(err, target) }

// runKubeInject is `istioctl kube-inject -f MANIFEST --injectConfigFile --valuesFile
// --meshConfigFile`: inject.IntoResourceFile with no injector (so no cluster is asked), the
// injector ConfigMap's templates and values, and the mesh config.
func runKubeInject(o options, stdout, stderr io.Writer) error {
	inj, m, err := loadConfigs(o)
	if err != nil {
		return err
	}
	in, err := openInput(o.manifest)
	if err != nil {
		return err
	}
	defer in.Close()
	warn := func(s string) { fmt.Fprint(stderr, s) }
	var out bytes.Buffer
	if err := intoResourceFile(inj, m, in, &out, warn); err != nil {
		return refusedError{err}
	}
	_, err = stdout.Write(out.Bytes())
	return err
}

func intoResourceFile(inj injectorConfig, m *meshconfig.MeshConfig, in io.Reader, out io.Writer, warn func(string)) error {
	return inject.IntoResourceFile(nil, inj.config.Templates, inj.values, inj.revision, m, in, out, warn)
}

// batchResult is one line of --batch output.
type batchResult struct {
	Index int `json:"index"`
	// Outcome: "injected", "skipped" (Istio left the document alone and said why in a
	// warning: host network, sidecar.istio.io/inject false) or "refused" (an error).
	Outcome  string          `json:"outcome"`
	Object   json.RawMessage `json:"object,omitempty"`
	Error    string          `json:"error,omitempty"`
	Warnings []string        `json:"warnings,omitempty"`
}

// runBatch injects each document of -f on its own (so one refusal does not hide the others)
// and prints one JSON line per document, in order.
func runBatch(o options, stdout io.Writer) error {
	inj, m, err := loadConfigs(o)
	if err != nil {
		return err
	}
	docs, err := readDocuments(o.manifest)
	if err != nil {
		return fmt.Errorf("-f %s: %v", o.manifest, err)
	}
	enc := json.NewEncoder(stdout)
	for i, doc := range docs {
		if err := enc.Encode(injectOne(i, doc, inj, m)); err != nil {
			return err
		}
	}
	return nil
}

func injectOne(index int, doc []byte, inj injectorConfig, m *meshconfig.MeshConfig) batchResult {
	res := batchResult{Index: index}
	warn := func(s string) { res.Warnings = append(res.Warnings, strings.TrimSpace(s)) }
	var out bytes.Buffer
	if err := intoResourceFile(inj, m, bytes.NewReader(doc), &out, warn); err != nil {
		res.Outcome, res.Error = "refused", err.Error()
		return res
	}
	obj, err := yaml.YAMLToJSON(bytes.TrimSuffix(out.Bytes(), []byte("---\n")))
	if err != nil {
		res.Outcome, res.Error = "refused", fmt.Sprintf("output is not YAML: %v", err)
		return res
	}
	res.Object = obj
	res.Outcome = "injected"
	for _, w := range res.Warnings {
		if strings.Contains(w, "Skipping injection") {
			res.Outcome = "skipped"
		}
	}
	return res
}
