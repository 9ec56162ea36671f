// Command istio-oracle runs Istio's own sidecar injector code (istio.io/istio/pkg/kube/inject)
// on manifests and AdmissionReviews, so that revhook's output can be compared with what istiod
// and istioctl kube-inject produce from the same ConfigMaps. See README.md beside this file.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"istio.io/istio/pilot/pkg/features"
	istiolog "istio.io/istio/pkg/log"
)

// stringList is a repeatable string flag (--set a=b --set c=d).
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

type options struct {
	manifest        string
	injector        string
	mesh            string
	nativeSidecars  string
	webhook         string
	path            string
	revision        string
	revisionSet     bool
	printConfigmaps bool
	sets            stringList
	batch           bool
	bench           bool
	benchTime       string
	benchDump       string
	fixtures        string
	cpuProfile      string
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	opts, err := parseFlags(args, stderr)
	if err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		fmt.Fprintf(stderr, "istio-oracle: %v\n", err)
		return 2
	}
	if err := quietIstioLogs(opts.bench); err != nil {
		fmt.Fprintf(stderr, "istio-oracle: %v\n", err)
		return 1
	}
	if err := setNativeSidecars(opts.nativeSidecars); err != nil {
		fmt.Fprintf(stderr, "istio-oracle: %v\n", err)
		return 2
	}
	switch {
	case opts.printConfigmaps:
		err = printConfigmaps(opts.sets, stdout)
	case opts.bench:
		err = runBench(opts, stdout)
	case opts.webhook != "":
		err = runWebhookFile(opts, stdout, stderr)
	case opts.batch:
		err = runBatch(opts, stdout)
	default:
		err = runKubeInject(opts, stdout, stderr)
	}
	if err != nil {
		fmt.Fprintf(stderr, "istio-oracle: %v\n", err)
		var refused refusedError
		if asRefused(err, &refused) {
			return 3
		}
		return 1
	}
	return 0
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("istio-oracle", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.manifest, "f", "", "manifest to inject (YAML stream; - for standard input), as istioctl kube-inject -f")
	fs.StringVar(&o.injector, "injector", "", "istio-sidecar-injector ConfigMap YAML (data.config, data.values); a YAML stream is searched for it")
	fs.StringVar(&o.mesh, "mesh", "", "istio ConfigMap YAML (data.mesh) or a bare MeshConfig YAML, applied over Istio's defaults")
	fs.StringVar(&o.nativeSidecars, "native-sidecars", "", "true|false: ENABLE_NATIVE_SIDECARS for this run (default: Istio's default, auto, which without nodes to look at means false)")
	fs.StringVar(&o.webhook, "webhook", "", "AdmissionReview JSON to run through Istio's webhook handler; prints the patched pod as JSON")
	fs.StringVar(&o.path, "path", "/inject", "URL path the review is posted to (/inject/cluster/<id>/net/<network> sets cluster and network)")
	fs.Func("revision", "revision of the injector (default: the values' \"revision\"; the webhook uses \"default\" when that is empty, as istiod's chart does)", func(v string) error {
		o.revision, o.revisionSet = v, true
		return nil
	})
	fs.BoolVar(&o.printConfigmaps, "print-configmaps", false, "print the injector and mesh ConfigMaps this Istio version's charts render by default")
	fs.Var(&o.sets, "set", "with --print-configmaps: an IstioOperator setting as istioctl's --set (repeatable), e.g. values.global.proxy.holdApplicationUntilProxyStarts=true")
	fs.BoolVar(&o.batch, "batch", false, "with -f: inject each document on its own and print one JSON line per document (outcome, object, error, warnings)")
	fs.BoolVar(&o.bench, "bench", false, "time Istio's webhook handler on pods of 2, 8, 32, 64 KiB and the load mix; prints ns/op")
	fs.StringVar(&o.benchTime, "benchtime", "2s", "with --bench: minimum time per case")
	fs.StringVar(&o.benchDump, "bench-dump", "", "with --bench: also write each case's AdmissionReview into this directory")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "with --bench: write a CPU profile (go tool pprof) to this file")
	fs.StringVar(&o.fixtures, "fixtures", "", "with --bench: the directory of the load mix's reviews (default: tests/fixtures of the repository)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	needsConfig := !o.printConfigmaps && !o.bench
	if needsConfig && o.webhook == "" && o.manifest == "" {
		return o, fmt.Errorf("one of -f, --webhook, --print-configmaps or --bench is required")
	}
	if needsConfig && (o.injector == "" || o.mesh == "") {
		return o, fmt.Errorf("--injector and --mesh are required (--print-configmaps prints Istio's defaults for both)")
	}
	if o.batch && o.manifest == "" {
		return o, fmt.Errorf("--batch needs -f")
	}
	return o, nil
}

// setNativeSidecars sets Istio's ENABLE_NATIVE_SIDECARS feature for this process. Istio reads the
// environment once at start; the flag overrides it the way istiod's env would.
func setNativeSidecars(v string) error {
	switch v {
	case "":
		return nil
	case "true":
		features.EnableNativeSidecars = features.NativeSidecarModeEnabled
	case "false":
		features.EnableNativeSidecars = features.NativeSidecarModeDisabled
	default:
		return fmt.Errorf("--native-sidecars: want true or false, got %q", v)
	}
	return nil
}

// quietIstioLogs sends Istio's logs to stderr (its default is stdout, which is our output) and
// keeps only warnings and errors (only errors while benchmarking).
func quietIstioLogs(bench bool) error {
	o := istiolog.DefaultOptions()
	o.OutputPaths = []string{"stderr"}
	o.ErrorOutputPaths = []string{"stderr"}
	if err := istiolog.Configure(o); err != nil {
		return fmt.Errorf("configure Istio's logging: %v", err)
	}
	level := istiolog.WarnLevel
	if bench {
		level = istiolog.ErrorLevel
	}
	for _, s := range istiolog.Scopes() {
		s.SetOutputLevel(level)
	}
	return nil
}
