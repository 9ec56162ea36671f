package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"

	jsonpatch "github.com/evanphx/json-patch/v5"
	meshconfig "istio.io/api/mesh/v1alpha1"
	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pkg/config/mesh/meshwatcher"
	"istio.io/istio/pkg/kube/inject"
	"istio.io/istio/pkg/kube/multicluster"
)

// staticWatcher hands the webhook one injector configuration and never changes it (istiod's
// watcher reads the ConfigMap; the handler is the same).
type staticWatcher struct {
	config *inject.Config
	values string
}

func (w staticWatcher) SetHandler(func(*inject.Config, string) error) {}
func (w staticWatcher) Run(<-chan struct{})                           {}
func (w staticWatcher) Get() (*inject.Config, string, error)          { return w.config, w.values, nil }

// newWebhookHandler builds Istio's webhook (inject.NewWebhook) as istiod does, minus the
// cluster: the mesh config is fixed, there are no ProxyConfig resources, and the multicluster
// controller has no cluster (so no namespace or node is ever looked up).
func newWebhookHandler(inj injectorConfig, m *meshconfig.MeshConfig) (http.Handler, error) {
	env := &model.Environment{Watcher: meshwatcher.NewTestWatcher(m)}
	env.SetPushContext(&model.PushContext{ProxyConfigs: &model.ProxyConfigs{}})
	mux := http.NewServeMux()
	// istiod's REVISION env is the chart's `.Values.revision | default "default"`.
	revision := inj.revision
	if revision == "" {
		revision = "default"
	}
	_, err := inject.NewWebhook(inject.WebhookParameters{
		Watcher:      staticWatcher{config: inj.config, values: inj.rawValues},
		Env:          env,
		Mux:          mux,
		Revision:     revision,
		MultiCluster: multicluster.NewFakeController(),
	})
	if err != nil {
		return nil, err
	}
	return mux, nil
}

// serve posts one review to the handler as the API server does and returns the response body.
func serve(h http.Handler, path string, review []byte) ([]byte, error) {
	req := httptest.NewRequest(http.MethodPost, "https://istiod.istio-system.svc:443"+path, bytes.NewReader(review))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		return nil, fmt.Errorf("webhook answered HTTP %d: %s", rec.Code, bytes.TrimSpace(rec.Body.Bytes()))
	}
	return rec.Body.Bytes(), nil
}

// reviewWire is the part of an AdmissionReview (v1 or v1beta1) the oracle reads.
type reviewWire struct {
	Request *struct {
		Object json.RawMessage `json:"object"`
	} `json:"request"`
	Response *struct {
		Allowed bool   `json:"allowed"`
		Patch   []byte `json:"patch"`
		Result  *struct {
			Message string `json:"message"`
		} `json:"result"`
	} `json:"response"`
}

// patchedPod applies the response's JSON Patch to the request's object, as the API server does.
func patchedPod(review, response []byte) ([]byte, error) {
	var req, resp reviewWire
	if err := json.Unmarshal(review, &req); err != nil {
		return nil, fmt.Errorf("review: %v", err)
	}
	if req.Request == nil || len(req.Request.Object) == 0 {
		return nil, fmt.Errorf("review has no request.object")
	}
	if err := json.Unmarshal(response, &resp); err != nil {
		return nil, fmt.Errorf("response: %v", err)
	}
	if resp.Response == nil {
		return nil, fmt.Errorf("response without a response: %s", response)
	}
	if !resp.Response.Allowed {
		msg := ""
		if resp.Response.Result != nil {
			msg = resp.Response.Result.Message
		}
		return nil, refusedError{fmt.Errorf("refused: %s", msg)}
	}
	if len(resp.Response.Patch) == 0 {
		return req.Request.Object, nil
	}
	patch, err := jsonpatch.DecodePatch(resp.Response.Patch)
	if err != nil {
		return nil, fmt.Errorf("patch: %v", err)
	}
	out, err := patch.Apply(req.Request.Object)
	if err != nil {
		return nil, fmt.Errorf("patch does not apply: %v", err)
	}
	return out, nil
}

// runWebhookFile runs --webhook REVIEW.json and prints the patched pod.
func runWebhookFile(o options, stdout, _ io.Writer) error {
	inj, m, err := loadConfigs(o)
	if err != nil {
		return err
	}
	review, err := os.ReadFile(o.webhook)
	if err != nil {
		return err
	}
	h, err := newWebhookHandler(inj, m)
	if err != nil {
		return err
	}
	response, err := serve(h, o.path, review)
	if err != nil {
		return err
	}
	pod, err := patchedPod(review, response)
	if err != nil {
		return err
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, pod, "", "  "); err != nil {
		return err
	}
	pretty.WriteByte('\n')
	_, err = stdout.Write(pretty.Bytes())
	return err
}
