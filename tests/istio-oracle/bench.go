package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"testing"
	"time"

	meshconfig "istio.io/api/mesh/v1alpha1"
)

// benchCase is one AdmissionReview posted to Istio's handler in a loop.
type benchCase struct {
	name string
	body []byte
	// injected: the answer must carry a patch (else Istio skipped the pod).
	injected bool
}

// sizedReview builds the pod shape of revhook's benches/inject.rs `review()` (a Deployment's
// pod as the ReplicaSet controller creates it: `containers` containers of `env` variables, a
// last-applied annotation of `annotationBytes`, `managedFields` entries). encoding/json sorts
// map keys and writes compact JSON, as serde_json does for `json!` values, so for the same
// parameters the bytes are the same as the Rust bench's.
func sizedReview(containers, env, annotationBytes, managedFields int) []byte {
	cs := make([]any, 0, containers)
	for c := 0; c < containers; c++ {
		envs := make([]any, 0, env)
		for i := 0; i < env; i++ {
			envs = append(envs, map[string]any{"name": fmt.Sprintf("SETTING_%d", i), "value": fmt.Sprintf("value-%d-%s", i, strings.Repeat("x", i%24))})
		}
		cs = append(cs, map[string]any{
			"name":                   fmt.Sprintf("app-%d", c),
			"image":                  fmt.Sprintf("registry.example.com/shop/app-%d:2.4.1", c),
			"ports":                  []any{map[string]any{"name": "http", "containerPort": 8080 + c, "protocol": "TCP"}},
			"env":                    envs,
			"resources":              map[string]any{"requests": map[string]any{"cpu": "200m", "memory": "256Mi"}, "limits": map[string]any{"memory": "512Mi"}},
			"readinessProbe":         map[string]any{"httpGet": map[string]any{"path": "/ready", "port": 8080 + c}, "periodSeconds": 5},
			"volumeMounts":           []any{map[string]any{"name": "config", "mountPath": "/etc/app"}},
			"terminationMessagePath": "/dev/termination-log",
			"imagePullPolicy":        "IfNotPresent",
		})
	}
	managed := make([]any, 0, managedFields)
	for i := 0; i < managedFields; i++ {
		managed = append(managed, map[string]any{
			"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1",
			"time": "2026-11-24T10:00:00Z", "fieldsType": "FieldsV1",
			"fieldsV1": map[string]any{
				"f:metadata": map[string]any{"f:labels": map[string]any{".": map[string]any{}, "f:app": map[string]any{}}},
				"f:spec":     map[string]any{"f:containers": map[string]any{fmt.Sprintf("k:{\"name\":\"app-%d\"}", i): map[string]any{".": map[string]any{}}}},
			},
		})
	}
	review := map[string]any{
		"apiVersion": "admission.k8s.io/v1",
		"kind":       "AdmissionReview",
		"request": map[string]any{
			"uid":       "4b6c9a43-2f0e-4d7b-9d3e-1f5c2a7e8b01",
			"kind":      map[string]any{"group": "", "version": "v1", "kind": "Pod"},
			"resource":  map[string]any{"group": "", "version": "v1", "resource": "pods"},
			"namespace": "shop",
			"operation": "CREATE",
			"userInfo":  map[string]any{"username": "system:serviceaccount:kube-system:replicaset-controller", "groups": []any{"system:serviceaccounts", "system:authenticated"}},
			"object": map[string]any{
				"apiVersion": "v1", "kind": "Pod",
				"metadata": map[string]any{
					"generateName":    "checkout-6f7d9c8b5-",
					"namespace":       "shop",
					"labels":          map[string]any{"app": "checkout", "version": "v2", "pod-template-hash": "6f7d9c8b5"},
					"annotations":     map[string]any{"kubectl.kubernetes.io/last-applied-configuration": "{\"a\":\"" + strings.Repeat("b", annotationBytes) + "\"}"},
					"ownerReferences": []any{map[string]any{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "checkout-6f7d9c8b5", "uid": "0e5a1f3c", "controller": true, "blockOwnerDeletion": true}},
					"managedFields":   managed,
				},
				"spec": map[string]any{
					"serviceAccountName":            "checkout",
					"containers":                    cs,
					"volumes":                       []any{map[string]any{"name": "config", "configMap": map[string]any{"name": "checkout-config"}}},
					"restartPolicy":                 "Always",
					"dnsPolicy":                     "ClusterFirst",
					"terminationGracePeriodSeconds": 30,
				},
				"status": map[string]any{},
			},
			"oldObject": nil,
			"dryRun":    false,
			"options":   map[string]any{"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
		},
	}
	out, err := json.Marshal(review)
	if err != nil {
		panic(err) // only our own literal values above
	}
	return out
}

// sizeCases are the pod sizes of the side-by-side table. 2, 8 and 64 KiB use revhook's
// benches/inject.rs parameters (small, typical, large); 32 KiB is the 64 KiB pod halved (32,771 bytes).
func sizeCases() []benchCase {
	return []benchCase{
		{name: "2KiB", body: sizedReview(1, 6, 500, 1), injected: true},
		{name: "8KiB", body: sizedReview(2, 24, 3600, 3), injected: true},
		{name: "32KiB", body: sizedReview(6, 70, 5500, 5), injected: true},
		{name: "64KiB", body: sizedReview(12, 70, 11000, 10), injected: true},
	}
}

// mixCases are the pods of revhook's load mix (benches/support: tests/fixtures) that reach
// Istio's injector: the injected pod, and the opted-out one (sidecar.istio.io/inject=false),
// which Istio's handler skips. The mix's other requests never reach istiod (the API server's
// namespace selector, or revhook's own validating webhook).
func mixCases(dir string) ([]benchCase, error) {
	var out []benchCase
	for _, c := range []struct {
		name, file string
		injected   bool
	}{
		{"mix/inject", "pod-create-prod-stable.json", true},
		{"mix/opt-out", "pod-create-opt-out.json", false},
	} {
		raw, err := os.ReadFile(filepath.Join(dir, c.file))
		if err != nil {
			return nil, fmt.Errorf("load mix: %v (--fixtures DIR)", err)
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, raw); err != nil {
			return nil, fmt.Errorf("%s: %v", c.file, err)
		}
		out = append(out, benchCase{name: c.name, body: compact.Bytes(), injected: c.injected})
	}
	return out, nil
}

// fixturesDir finds the repository's tests/fixtures: from the flag, the working directory, or
// beside this source file.
func fixturesDir(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if _, err := os.Stat("tests/fixtures"); err == nil {
		return "tests/fixtures"
	}
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "fixtures")
}

// benchConfigs are --injector and --mesh when given, else this Istio version's default
// ConfigMaps (as --print-configmaps prints them).
func benchConfigs(o options) (injectorConfig, *meshconfig.MeshConfig, error) {
	if o.injector != "" && o.mesh != "" {
		return loadConfigs(o)
	}
	if o.injector != "" || o.mesh != "" {
		return injectorConfig{}, nil, fmt.Errorf("--bench takes both --injector and --mesh, or neither")
	}
	docs, err := renderConfigmaps(nil)
	if err != nil {
		return injectorConfig{}, nil, err
	}
	inj, err := parseInjector("default injector", docs[:1])
	if err != nil {
		return injectorConfig{}, nil, err
	}
	m, err := parseMesh("default mesh", docs[1:])
	return inj, m, err
}

func runBench(o options, out io.Writer) error {
	benchtime, err := time.ParseDuration(o.benchTime)
	if err != nil {
		return fmt.Errorf("--benchtime: %v", err)
	}
	inj, m, err := benchConfigs(o)
	if err != nil {
		return err
	}
	h, err := newWebhookHandler(inj, m)
	if err != nil {
		return err
	}
	mix, err := mixCases(fixturesDir(o.fixtures))
	if err != nil {
		return err
	}
	cases := append(sizeCases(), mix...)
	if o.benchDump != "" {
		if err := dumpCases(o.benchDump, cases); err != nil {
			return err
		}
	}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	fmt.Fprintf(out, "Istio's injector (webhook handler, %s), GOMAXPROCS=%d, %s per case\n", "POST /inject via net/http/httptest", runtime.GOMAXPROCS(0), benchtime)
	fmt.Fprintf(out, "%-12s %8s %12s %12s %10s %10s\n", "case", "bytes", "ns/op", "cpu-ns/op", "B/op", "allocs/op")
	for _, c := range cases {
		if err := checkCase(h, c); err != nil {
			return fmt.Errorf("%s: %v", c.name, err)
		}
		r := benchmark(h, c.body, benchtime)
		fmt.Fprintf(out, "%-12s %8d %12d %12d %10d %10d\n", c.name, len(c.body), r.NsPerOp(), r.cpuPerOp(), r.AllocedBytesPerOp(), r.AllocsPerOp())
	}
	return nil
}

// checkCase makes sure the case does what it is timed for (a patch, or a skip).
func checkCase(h http.Handler, c benchCase) error {
	resp, err := serve(h, "/inject", c.body)
	if err != nil {
		return err
	}
	before, err := patchedPod(c.body, []byte("{\"response\":{\"allowed\":true}}"))
	if err != nil {
		return err
	}
	after, err := patchedPod(c.body, resp)
	if err != nil {
		return err
	}
	if changed := !bytes.Equal(before, after); changed != c.injected {
		return fmt.Errorf("want injected=%v, got a pod that changed=%v", c.injected, changed)
	}
	return nil
}

// timing is one case's totals over its runs.
type timing struct {
	testing.BenchmarkResult
	// cpu is the process's user+system CPU time over the timed runs: on a shared machine the
	// wall time (ns/op) also counts the time other processes held the cores.
	cpu time.Duration
}

func (t timing) cpuPerOp() int64 {
	if t.N == 0 {
		return 0
	}
	return t.cpu.Nanoseconds() / int64(t.N)
}

// benchmark times the handler with testing.Benchmark, which grows b.N until one run lasts
// about a second; runs repeat until benchtime has passed and their totals are added up.
func benchmark(h http.Handler, body []byte, benchtime time.Duration) timing {
	var total timing
	deadline := time.Now().Add(benchtime)
	for first := true; first || time.Now().Before(deadline); first = false {
		// testing.Benchmark calls the function with growing b.N; the result is the last call's.
		var lastCPU time.Duration
		r := testing.Benchmark(func(b *testing.B) {
			b.ReportAllocs()
			start := processCPU()
			for i := 0; i < b.N; i++ {
				if _, err := serve(h, "/inject", body); err != nil {
					b.Fatal(err)
				}
			}
			lastCPU = processCPU() - start
		})
		total.N += r.N
		total.T += r.T
		total.MemAllocs += r.MemAllocs
		total.MemBytes += r.MemBytes
		total.cpu += lastCPU
	}
	return total
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func dumpCases(dir string, cases []benchCase) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, c := range cases {
		name := strings.ReplaceAll(c.name, "/", "-") + ".json"
		if err := os.WriteFile(filepath.Join(dir, name), c.body, 0o644); err != nil {
			return err
		}
	}
	return nil
}
