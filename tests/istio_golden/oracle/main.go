// Istio's own injector behind revhook's offline flags, to check this test's harness (and to ask
// "what would istiod do?"): `inject -f INPUT` runs kube-inject (IntoResourceFile), `replay
// --apply REVIEW.json` runs the webhook (see inject_export.go.in) and prints the patched object.
// `--injector` is the istio-sidecar-injector ConfigMap, `--mesh` the istio ConfigMap (applied
// over Istio's default mesh config). `--native-sidecars` is read by the wrapper build.sh
// writes, from the environment (ENABLE_NATIVE_SIDECARS), as istiod reads it.
package main

import (
	"flag"
	"fmt"
	"os"

	"sigs.k8s.io/yaml"

	"istio.io/istio/pkg/config/mesh"
	"istio.io/istio/pkg/kube/inject"
	"istio.io/istio/pkg/log"
)

type configMap struct {
	Data map[string]string `json:"data"`
}

func main() {
	if len(os.Args) < 2 || (os.Args[1] != "inject" && os.Args[1] != "replay") {
		fail(fmt.Errorf("usage: oracle inject|replay ..."))
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	in := fs.String("f", "", "input manifests (inject)")
	injectorFile := fs.String("injector", "", "istio-sidecar-injector ConfigMap")
	meshFile := fs.String("mesh", "", "istio ConfigMap")
	_ = fs.String("native-sidecars", "false", "read from ENABLE_NATIVE_SIDECARS by the wrapper")
	_ = fs.Bool("apply", true, "replay: print the patched object")
	_ = fs.Parse(os.Args[2:])

	// Istio logs to stdout by default; stdout is for the result.
	opts := log.DefaultOptions()
	opts.OutputPaths = []string{"stderr"}
	opts.ErrorOutputPaths = []string{"stderr"}
	_ = log.Configure(opts)

	var injector, meshCM configMap
	fail(readYAML(*injectorFile, &injector))
	fail(readYAML(*meshFile, &meshCM))
	cfg, err := inject.UnmarshalConfig([]byte(injector.Data["config"]))
	fail(err)
	values, err := inject.NewValuesConfig(injector.Data["values"])
	fail(err)
	meshConfig, err := mesh.ApplyMeshConfig(meshCM.Data["mesh"], mesh.DefaultMeshConfig())
	fail(err)

	if os.Args[1] == "replay" {
		review, err := os.ReadFile(fs.Arg(0))
		fail(err)
		out, err := inject.OracleReplay(&cfg, values, meshConfig, review)
		fail(err)
		_, _ = os.Stdout.Write(out)
		return
	}
	f, err := os.Open(*in)
	fail(err)
	warn := func(s string) { fmt.Fprintln(os.Stderr, s) }
	fail(inject.IntoResourceFile(nil, cfg.Templates, values, "", meshConfig, f, os.Stdout, warn))
}

func readYAML(path string, out any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return yaml.Unmarshal(b, out)
}

func fail(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
