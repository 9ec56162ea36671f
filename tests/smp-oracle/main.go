// Command smp-oracle is the reference for revhook's strategic merge (src/inject/strategic.rs):
// apimachinery's own strategic merge over corev1.Pod, as istiod applies an injection template.
//
//	smp-oracle         reads JSON lines {"pod": {...}, "patch": {...}} and prints one line per
//	                   case: {"ok": merged} | {"error": "..."} | {"panic": "..."}
//	smp-oracle schema  prints the patch metadata that apimachinery reads from corev1.Pod's
//	                   struct tags, for every type reachable from Pod
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
)

func main() {
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	if len(os.Args) > 1 && os.Args[1] == "schema" {
		if err := json.NewEncoder(out).Encode(describe(reflect.TypeOf(corev1.Pod{}))); err != nil {
			fatal(err)
		}
		return
	}
	schema, err := strategicpatch.NewPatchMetaFromStruct(corev1.Pod{})
	if err != nil {
		fatal(err)
	}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<30)
	for in.Scan() {
		line, err := json.Marshal(mergeOne(in.Bytes(), schema))
		if err != nil {
			fatal(err)
		}
		out.Write(append(line, '\n'))
	}
	if err := in.Err(); err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "smp-oracle:", err)
	os.Exit(2)
}

type outcome struct {
	OK    any    `json:"ok,omitempty"`
	Error string `json:"error,omitempty"`
	Panic string `json:"panic,omitempty"`
}

// mergeOne decodes both documents as istiod does (encoding/json into maps: every number a
// float64) and merges them; a panic inside apimachinery is reported, not fatal.
func mergeOne(line []byte, schema strategicpatch.LookupPatchMeta) (res outcome) {
	var c struct {
		Pod   json.RawMessage `json:"pod"`
		Patch json.RawMessage `json:"patch"`
	}
	if err := json.Unmarshal(line, &c); err != nil {
		return outcome{Error: "bad case line: " + err.Error()}
	}
	var pod, patch map[string]any
	if err := json.Unmarshal(c.Pod, &pod); err != nil {
		return outcome{Error: "pod: " + err.Error()}
	}
	if err := json.Unmarshal(c.Patch, &patch); err != nil {
		return outcome{Error: "patch: " + err.Error()}
	}
	defer func() {
		if p := recover(); p != nil {
			res = outcome{Panic: fmt.Sprint(p)}
		}
	}()
	merged, err := strategicpatch.StrategicMergeMapPatchUsingLookupPatchMeta(pod, patch, schema)
	if err != nil {
		return outcome{Error: err.Error()}
	}
	if merged == nil {
		merged = map[string]any{}
	}
	return outcome{OK: merged}
}

// === schema ===

type typeInfo struct {
	Name   string      `json:"name"`
	Kind   string      `json:"kind"`
	Elem   *int        `json:"elem,omitempty"`
	Fields []fieldInfo `json:"fields,omitempty"`
}

type fieldInfo struct {
	Name      string `json:"name"`
	Type      int    `json:"type"`
	Strategy  string `json:"strategy"`
	MergeKey  string `json:"mergeKey"`
	OmitEmpty bool   `json:"omitEmpty"`
}

// describe lists every type reachable from root (id = position, root first). Field names are
// found by walking the struct as encoding/json does; each field's type and tags are then read
// back through apimachinery's own lookup, so the table holds what the merge really sees.
func describe(root reflect.Type) []typeInfo {
	ids := map[reflect.Type]int{}
	var types []typeInfo
	var visit func(t reflect.Type) int
	visit = func(t reflect.Type) int {
		if id, ok := ids[t]; ok {
			return id
		}
		id := len(types)
		ids[t] = id
		name := t.Name()
		if name == "" {
			name = t.String()
		}
		types = append(types, typeInfo{Name: name, Kind: t.Kind().String()})
		switch t.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Array, reflect.Map:
			elem := visit(t.Elem())
			types[id].Elem = &elem
		case reflect.Struct:
			meta := strategicpatch.PatchMetaFromStruct{T: t}
			var fields []fieldInfo
			omitEmpty := jsonOmitEmpty(t)
			for _, name := range jsonNames(t) {
				sub, pm, err := meta.LookupPatchMetadataForStruct(name)
				if err != nil {
					fatal(fmt.Errorf("%s.%s: %w", t, name, err))
				}
				fields = append(fields, fieldInfo{
					Name:      name,
					Type:      visit(sub.(strategicpatch.PatchMetaFromStruct).T),
					Strategy:  strings.Join(pm.GetPatchStrategies(), ","),
					MergeKey:  pm.GetPatchMergeKey(),
					OmitEmpty: omitEmpty[name],
				})
			}
			types[id].Fields = fields
		}
		return id
	}
	visit(root)
	return types
}

// jsonOmitEmpty tells, by JSON name, which of t's fields (embedded structs flattened) carry
// `omitempty`: encoding/json leaves them out when they hold their zero value.
func jsonOmitEmpty(t reflect.Type) map[string]bool {
	out := map[string]bool{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			sf := t.Field(i)
			tag := sf.Tag.Get("json")
			name, opts, _ := strings.Cut(tag, ",")
			ft := sf.Type
			if ft.Name() == "" && ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if name == "" && sf.Anonymous && ft.Kind() == reflect.Struct {
				walk(ft)
				continue
			}
			if name == "" {
				name = sf.Name
			}
			if _, seen := out[name]; !seen {
				out[name] = strings.Contains(","+opts+",", ",omitempty,")
			}
		}
	}
	walk(t)
	return out
}

// jsonNames are the names encoding/json gives t's fields, in field order (embedded structs
// without a name are flattened; a name seen at a shallower level wins).
func jsonNames(t reflect.Type) []string {
	var names []string
	seen := map[string]bool{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			sf := t.Field(i)
			if sf.PkgPath != "" && !sf.Anonymous {
				continue
			}
			tag := sf.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, _, _ := strings.Cut(tag, ",")
			ft := sf.Type
			if ft.Name() == "" && ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if name == "" && sf.Anonymous && ft.Kind() == reflect.Struct {
				walk(ft)
				continue
			}
			if sf.PkgPath != "" {
				continue
			}
			if name == "" {
				name = sf.Name
			}
			if !seen[name] {
				seen[name] = true
				names = append(names, name)
			}
		}
	}
	walk(t)
	return names
}
