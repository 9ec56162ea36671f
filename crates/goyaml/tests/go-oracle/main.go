// Command go-oracle answers YAML questions the way Go's sigs.k8s.io/yaml does, so the Rust
// crate goyaml can be checked against Go itself. It reads one JSON request per line on
// stdin and writes one JSON answer per line on stdout:
//
//	{"mode":"first","input":TEXT}   -> {"json":JSON}     sigs.k8s.io/yaml.YAMLToJSON(TEXT)
//	{"mode":"stream","input":TEXT}  -> {"docs":[JSON]}   each document of go-yaml v2's Decoder,
//	                                                     converted as YAMLToJSON converts one
//	{"mode":"marshal","input":JSON} -> {"yaml":TEXT}     sigs.k8s.io/yaml.Marshal of the JSON
//	                                                     value (integers kept as int64/uint64)
//
// or {"error":MESSAGE} when Go refuses (a Go panic is reported as an error too).
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	yamlv2 "go.yaml.in/yaml/v2"
	"sigs.k8s.io/yaml"
)

type request struct {
	Mode  string `json:"mode"`
	Input string `json:"input"`
}

type answer struct {
	JSON  json.RawMessage    `json:"json,omitempty"`
	Docs  *[]json.RawMessage `json:"docs,omitempty"`
	YAML  *string            `json:"yaml,omitempty"`
	Error string             `json:"error,omitempty"`
}

func first(input string) (a answer) {
	j, err := yaml.YAMLToJSON([]byte(input))
	if err != nil {
		a.Error = err.Error()
		return
	}
	a.JSON = j
	return
}

func stream(input string) (a answer) {
	dec := yamlv2.NewDecoder(bytes.NewReader([]byte(input)))
	docs := []json.RawMessage{}
	for {
		var doc any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			a.Docs = &docs
			return
		}
		if err != nil {
			a.Error = err.Error()
			return
		}
		j, err := json.Marshal(jsonable(doc))
		if err != nil {
			a.Error = err.Error()
			return
		}
		docs = append(docs, j)
	}
}

// jsonable converts a decoded document as sigs.k8s.io/yaml's convertToJSONableObject does
// (unexported there): mapping keys become strings (int, float with 32-bit precision, bool);
// other key types are refused.
func jsonable(v any) any {
	switch t := v.(type) {
	case map[interface{}]interface{}:
		m := make(map[string]any, len(t))
		for k, e := range t {
			var s string
			switch kt := k.(type) {
			case string:
				s = kt
			case int:
				s = strconv.Itoa(kt)
			case int64:
				s = strconv.FormatInt(kt, 10)
			case float64:
				s = strconv.FormatFloat(kt, 'g', -1, 32)
				switch s {
				case "+Inf":
					s = ".inf"
				case "-Inf":
					s = "-.inf"
				case "NaN":
					s = ".nan"
				}
			case bool:
				s = strconv.FormatBool(kt)
			default:
				panic(fmt.Sprintf("unsupported map key of type: %T", k))
			}
			m[s] = jsonable(e)
		}
		return m
	case []interface{}:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = jsonable(e)
		}
		return out
	}
	return v
}

// exactNumbers turns json.Number into int64, uint64 or float64, as serde_json holds them.
func exactNumbers(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			t[k] = exactNumbers(e)
		}
		return t
	case []any:
		for i, e := range t {
			t[i] = exactNumbers(e)
		}
		return t
	case json.Number:
		if i, err := strconv.ParseInt(string(t), 10, 64); err == nil {
			return i
		}
		if u, err := strconv.ParseUint(string(t), 10, 64); err == nil {
			return u
		}
		f, _ := strconv.ParseFloat(string(t), 64)
		return f
	}
	return v
}

func marshal(input string) (a answer) {
	dec := json.NewDecoder(bytes.NewReader([]byte(input)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		a.Error = "bad JSON: " + err.Error()
		return
	}
	out, err := yaml.Marshal(exactNumbers(v))
	if err != nil {
		a.Error = err.Error()
		return
	}
	s := string(out)
	a.YAML = &s
	return
}

func answerOne(r request) (a answer) {
	defer func() {
		if p := recover(); p != nil {
			a = answer{Error: fmt.Sprintf("panic: %v", p)}
		}
	}()
	switch r.Mode {
	case "first":
		return first(r.Input)
	case "stream":
		return stream(r.Input)
	case "marshal":
		return marshal(r.Input)
	}
	return answer{Error: "unknown mode " + r.Mode}
}

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<30)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	enc := json.NewEncoder(out)
	for in.Scan() {
		var r request
		if err := json.Unmarshal(in.Bytes(), &r); err != nil {
			fmt.Fprintln(os.Stderr, "bad request:", err)
			os.Exit(2)
		}
		if err := enc.Encode(answerOne(r)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	if err := in.Err(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
