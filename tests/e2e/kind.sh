#!/usr/bin/env bash
# End-to-end check of revhook in a kind cluster: the canary upgrade flow of the AKS / ASM guides.
#
#   tests/e2e/kind.sh            # create cluster, build and load the image, run every step
#   REUSE=1 tests/e2e/kind.sh    # reuse an existing cluster named revhook-e2e
#   KEEP=1 tests/e2e/kind.sh     # leave the cluster running afterwards
#   INSTALL=helm tests/e2e/kind.sh  # install with the Helm chart instead of kustomize
#
# Needs docker, kind and kubectl on PATH (and helm with INSTALL=helm), and cargo (to make
# certificates). Each step checks its
# result and stops with what it expected and what it saw. Not run in CI (no Docker there).
set -euo pipefail

CLUSTER=${CLUSTER:-revhook-e2e}
IMAGE=${IMAGE:-revhook:e2e}
NS=revhook-system
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TMP=$(mktemp -d)

INSTALL=${INSTALL:-kustomize}
case "$INSTALL" in
  kustomize) tools="docker kind kubectl cargo" ;;
  helm) tools="docker kind kubectl cargo helm" ;;
  *) echo "e2e: INSTALL is kustomize or helm, not $INSTALL" >&2; exit 2 ;;
esac
for tool in $tools; do
  command -v "$tool" >/dev/null || { echo "e2e: $tool is required on PATH" >&2; exit 2; }
done

cleanup() {
  rm -rf "$TMP"
  if [[ -z "${KEEP:-}" && -z "${REUSE:-}" ]]; then kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

step() { printf '\n=== %s\n' "$*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
expect_eq() { # expect_eq WHAT EXPECTED ACTUAL
  if [[ "$2" != "$3" ]]; then fail "$1: expected '$2', got '$3'"; fi
  echo "ok: $1 = $3"
}

proxy_image() { # proxy_image NAMESPACE APP-LABEL: the proxy image of the newest pod
  kubectl -n "$1" get pods -l "app=$2" --sort-by=.metadata.creationTimestamp \
    -o jsonpath='{.items[-1:].spec.containers[?(@.name=="istio-proxy")].image}'
}

wait_rollout() { kubectl -n "$1" rollout status "deployment/$2" --timeout=180s; }

step "cluster"
if [[ -z "${REUSE:-}" ]]; then kind create cluster --name "$CLUSTER" --wait 120s; fi
kubectl config use-context "kind-$CLUSTER"

step "image"
docker build -t "$IMAGE" "$ROOT"
kind load docker-image "$IMAGE" --name "$CLUSTER"

step "certificates and revhook"
(cd "$ROOT" && cargo run --quiet --release -- certs --out "$TMP/certs" --namespace "$NS" >/dev/null)
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f -
kubectl -n "$NS" create secret generic revhook-tls --from-file="$TMP/certs" --dry-run=client -o yaml | kubectl apply -f -
# Istio comes first: revhook's Role that reads Istio's objects lives in its namespace.
kubectl create namespace istio-system --dry-run=client -o yaml | kubectl apply -f -
if [[ "$INSTALL" == helm ]]; then
  # The chart's defaults are the self-managed overlay; the Secret above is its serving Secret.
  helm upgrade --install revhook "$ROOT/manifests/helm/revhook" -n "$NS" \
    --set image.repository="${IMAGE%:*}" --set image.tag="${IMAGE##*:}" \
    --set image.pullPolicy=Never --set 'extraArgs={--reload-interval=1s}'
else
  kubectl kustomize "$ROOT/manifests/overlays/self-managed" \
    | sed "s#image: ghcr.io/example/revhook:0.1.0#image: $IMAGE#" \
    | kubectl apply -f -
  kubectl -n "$NS" patch deployment revhook --type=json -p '[
    {"op":"add","path":"/spec/template/spec/containers/0/imagePullPolicy","value":"Never"},
    {"op":"add","path":"/spec/template/spec/containers/0/args/-","value":"--reload-interval=1s"}]'
fi

step "two fake revisions and their tags (what istioctl / helm would have installed)"
kubectl create namespace istio-system --dry-run=client -o yaml | kubectl apply -f -
for rev in 1-22 1-23; do
  kubectl apply -f - <<YAML
apiVersion: v1
kind: ConfigMap
metadata:
  name: istio-sidecar-injector-asm-$rev
  namespace: istio-system
  labels: {istio.io/rev: asm-$rev}
data:
  values: '{"global":{"hub":"docker.io/istio","tag":"${rev/-/.}.0","istioNamespace":"istio-system"},"revision":"asm-$rev"}'
YAML
done
tag() { # tag NAME REVISION
  kubectl apply -f - <<YAML
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: istio-revision-tag-$1
  labels: {istio.io/tag: $1, istio.io/rev: $2}
webhooks: []
YAML
}
tag prod-stable asm-1-22
tag prod-canary asm-1-23
wait_rollout "$NS" revhook
for _ in $(seq 1 30); do
  bundle=$(kubectl get mutatingwebhookconfiguration revhook -o jsonpath='{.webhooks[0].clientConfig.caBundle}')
  [[ -n "$bundle" ]] && break
  sleep 2
done
[[ -n "$bundle" ]] || fail "caBundle was not written by --manage-ca-bundle"
echo "ok: caBundle managed"

step "a namespace on prod-stable gets asm-1-22's proxy"
kubectl create namespace shop --dry-run=client -o yaml | kubectl apply -f -
kubectl label namespace shop istio.io/rev=prod-stable --overwrite
kubectl -n shop create deployment web --image=registry.k8s.io/pause:3.9 --dry-run=client -o yaml | kubectl apply -f -
wait_rollout shop web || true # the fake proxy image may not start; injection is what is checked
sleep 3
expect_eq "proxy image on prod-stable" "docker.io/istio/proxyv2:1.22.0" "$(proxy_image shop web)"

step "retag prod-stable to asm-1-23 (istioctl tag set prod-stable --revision asm-1-23 --overwrite) and restart"
kubectl label mutatingwebhookconfiguration istio-revision-tag-prod-stable istio.io/rev=asm-1-23 --overwrite
sleep 3
kubectl -n shop rollout restart deployment web
sleep 5
expect_eq "proxy image after retag" "docker.io/istio/proxyv2:1.23.0" "$(proxy_image shop web)"

step "relabel to a removed revision is refused"
if out=$(kubectl label namespace shop istio.io/rev=asm-1-20 --overwrite 2>&1); then
  fail "relabel to asm-1-20 was accepted: $out"
fi
grep -q "not installed" <<<"$out" || fail "refusal does not say why: $out"
echo "ok: refused: $out"

step "both injection labels on a namespace are refused"
kubectl create namespace mixed --dry-run=client -o yaml | kubectl apply -f -
if out=$(kubectl label namespace mixed istio-injection=enabled istio.io/rev=prod-canary 2>&1); then
  fail "conflicting labels were accepted: $out"
fi
grep -q "both istio-injection" <<<"$out" || fail "refusal does not say why: $out"
echo "ok: refused: $out"

step "a tag pointing at a missing revision is refused"
if out=$(kubectl label mutatingwebhookconfiguration istio-revision-tag-prod-canary istio.io/rev=asm-1-99 --overwrite 2>&1); then
  fail "dangling tag was accepted: $out"
fi
echo "ok: refused: $out"

step "rollback: prod-stable back to asm-1-22"
kubectl label mutatingwebhookconfiguration istio-revision-tag-prod-stable istio.io/rev=asm-1-22 --overwrite
sleep 3
kubectl -n shop rollout restart deployment web
sleep 5
expect_eq "proxy image after rollback" "docker.io/istio/proxyv2:1.22.0" "$(proxy_image shop web)"

echo
echo "e2e: all steps passed"
