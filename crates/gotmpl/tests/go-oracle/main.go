// Command go-oracle renders every tests/cases/*.tmpl case with Go's text/template and
// sprig's TxtFuncMap, the way istiod does, and prints one JSON object per case:
// {"name": ..., "output": ..., "error": ...}. The Rust test compares them with the
// expected files, so the expectations are checked against Go itself.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig/v3"
)

type result struct {
	Name   string `json:"name"`
	Output string `json:"output"`
	Error  string `json:"error,omitempty"`
}

func render(tmplPath string) result {
	name := strings.TrimSuffix(filepath.Base(tmplPath), ".tmpl")
	res := result{Name: name}
	src, err := os.ReadFile(tmplPath)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	var data any
	if raw, err := os.ReadFile(strings.TrimSuffix(tmplPath, ".tmpl") + ".json"); err == nil {
		if err := json.Unmarshal(raw, &data); err != nil {
			res.Error = "bad data: " + err.Error()
			return res
		}
	}
	t, err := template.New("inject").Funcs(sprig.TxtFuncMap()).Parse(string(src))
	if err != nil {
		res.Error = err.Error()
		return res
	}
	var out bytes.Buffer
	if err := t.Execute(&out, data); err != nil {
		res.Error = err.Error()
		return res
	}
	res.Output = out.String()
	return res
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: go-oracle CASES_DIR")
		os.Exit(2)
	}
	paths, err := filepath.Glob(filepath.Join(os.Args[1], "*.tmpl"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sort.Strings(paths)
	enc := json.NewEncoder(os.Stdout)
	for _, p := range paths {
		if err := enc.Encode(render(p)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}
