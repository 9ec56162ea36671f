#!/usr/bin/env bash
# End-to-end check of revhook in a kind cluster: the upgrade guides' flows that
# tests/kube_*.rs run against a bare kube-apiserver (issue #16), here with real nodes:
# the canary upgrade (tag move, restart, refusals, rollback), `kubectl apply --server-side` of
# each overlay, `revhook check` live and on the README's dump, a blanked caBundle repaired,
# `revhook tags` as the CLI, and a rolling restart of revhook under a stream of pod creations.
#
#   tests/e2e/kind.sh            # create cluster, build and load the image, run every step
#   REUSE=1 tests/e2e/kind.sh    # reuse an existing cluster named revhook-e2e
#   KEEP=1 tests/e2e/kind.sh     # leave the cluster running afterwards
#   INSTALL=helm tests/e2e/kind.sh  # install with the Helm chart instead of kustomize
#
# Needs docker, kind, kubectl, helm and cargo on PATH, and Istio's charts (ISTIO_REFERENCE,
# default ../shared/reference beside the repository: istio-<version>/chart) to install two
# revisions' injector ConfigMaps as Istio's chart renders them. Each step checks its result and
# stops with what it expected and what it saw. Not run in CI (no Docker there).
set -euo pipefail

CLUSTER=${CLUSTER:-revhook-e2e}
IMAGE=${IMAGE:-revhook:e2e}
NS=revhook-system
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TMP=$(mktemp -d)

ISTIO_REFERENCE=${ISTIO_REFERENCE:-$ROOT/../shared/reference}
INSTALL=${INSTALL:-kustomize}
case "$INSTALL" in
  kustomize|helm) tools="docker kind kubectl cargo helm" ;;
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

step "revhook's CLI (check, tags, certs)"
(cd "$ROOT" && cargo build --quiet --release)
revhook() { "$ROOT/target/release/revhook" "$@"; }

step "certificates and revhook"
revhook certs --out "$TMP/certs" --namespace "$NS" >/dev/null
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
    | kubectl apply --server-side -f -
  kubectl -n "$NS" patch deployment revhook --type=json -p '[
    {"op":"add","path":"/spec/template/spec/containers/0/imagePullPolicy","value":"Never"},
    {"op":"add","path":"/spec/template/spec/containers/0/args/-","value":"--reload-interval=1s"}]'
fi

step "two revisions as Istio's chart installs them, and their tags written by revhook tags set"
revision() { # revision REV VERSION: the injector and mesh ConfigMaps and the istiod Service
  local chart="$ISTIO_REFERENCE/istio-${2%.*}.0/chart"
  [[ -f "$chart/Chart.yaml" ]] || fail "Istio's chart for $2 is not at $chart (set ISTIO_REFERENCE)"
  helm template istiod "$chart" -n istio-system --set revision="$1" \
    --set global.hub=docker.io/istio --set global.tag="$2" --set global.istioNamespace=istio-system \
    --show-only templates/configmap.yaml --show-only templates/istiod-injector-configmap.yaml \
    --show-only templates/service.yaml | kubectl apply --server-side -f -
}
revision asm-1-22 1.22.0
revision asm-1-23 1.23.0
# revhook injects (inject mode): its tags are webhook configurations only revhook acts on.
revhook tags set prod-stable --revision asm-1-22 --mode inject
revhook tags set prod-canary --revision asm-1-23 --mode inject
tags=$(revhook tags list)
echo "$tags"
grep -Eq '^prod-stable +asm-1-22 ' <<<"$tags" || fail "tags list: $tags"
grep -Eq '^prod-canary +asm-1-23 ' <<<"$tags" || fail "tags list: $tags"
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
plan=$(revhook tags plan prod-stable --revision asm-1-23)
echo "$plan"
grep -q "namespaces selecting the tag: shop" <<<"$plan" || fail "tags plan: $plan"
grep -q "kubectl rollout restart deployment/web -n shop" <<<"$plan" || fail "tags plan: $plan"
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

step "a tag moved to a missing revision: stored (no webhook sees tag writes), then nothing may select it"
kubectl label mutatingwebhookconfiguration istio-revision-tag-prod-canary istio.io/rev=asm-1-99 --overwrite
sleep 3
kubectl create namespace canary --dry-run=client -o yaml | kubectl apply -f -
if out=$(kubectl label namespace canary istio.io/rev=prod-canary --overwrite 2>&1); then
  fail "a namespace on the dangling tag was accepted: $out"
fi
grep -q 'points at revision "asm-1-99" that is not installed' <<<"$out" || fail "refusal does not say why: $out"
echo "ok: refused: $out"
kubectl label mutatingwebhookconfiguration istio-revision-tag-prod-canary istio.io/rev=asm-1-23 --overwrite

step "rollback: prod-stable back to asm-1-22"
kubectl label mutatingwebhookconfiguration istio-revision-tag-prod-stable istio.io/rev=asm-1-22 --overwrite
sleep 3
kubectl -n shop rollout restart deployment web
sleep 5
expect_eq "proxy image after rollback" "docker.io/istio/proxyv2:1.22.0" "$(proxy_image shop web)"

step "revhook check on the live cluster and on the README's dump agree"
(cd "$TMP" && sed -n '/^kubectl get namespaces,pods/p;/^{ echo ---; kubectl get secret/p' "$ROOT/README.md" | bash -euo pipefail)
live=$(revhook check -o json || true)
dumped=$(revhook check --from-file "$TMP/dump.yaml" -o json || true)
[[ -n "$live" && "$live" == "$dumped" ]] || fail "check live and on the dump differ:
$(diff <(echo "$live") <(echo "$dumped") || true)"
echo "ok: the same report"

step "a blanked caBundle is reported by check and repaired by --manage-ca-bundle"
kubectl -n "$NS" scale deployment revhook --replicas=0
kubectl -n "$NS" wait --for=delete pod -l app=revhook --timeout=90s
# The webhook configurations re-applied as the base ships them (`caBundle: ''`).
kubectl apply --server-side --force-conflicts >/dev/null \
  -f "$ROOT/manifests/base/mutatingwebhook.yaml" -f "$ROOT/manifests/base/validatingwebhook.yaml"
found=$(revhook check || true)
grep -q "REVHOOK-CA-BUNDLE" <<<"$found" || fail "check does not report the blank caBundle: $found"
echo "ok: reported while blank"
kubectl -n "$NS" scale deployment revhook --replicas=2
wait_rollout "$NS" revhook
for _ in $(seq 1 30); do
  bundle=$(kubectl get mutatingwebhookconfiguration revhook -o jsonpath='{.webhooks[0].clientConfig.caBundle}')
  [[ -n "$bundle" ]] && break
  sleep 2
done
[[ -n "$bundle" ]] || fail "caBundle was not repaired"
found=$(revhook check || true)
if grep -q "REVHOOK-CA-BUNDLE" <<<"$found"; then fail "still reported after the repair: $found"; fi
echo "ok: repaired"

step "every overlay is accepted server-side (cert-manager's CRDs as stubs)"
for kind in Certificate Issuer; do
  plural="$(tr '[:upper:]' '[:lower:]' <<<"$kind")s"
  kubectl apply --server-side -f - <<YAML
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: $plural.cert-manager.io}
spec:
  group: cert-manager.io
  names: {kind: $kind, listKind: ${kind}List, plural: $plural, singular: ${plural%s}}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
YAML
  kubectl wait --for=condition=Established "crd/$plural.cert-manager.io" --timeout=60s
done
kubectl create namespace aks-istio-system --dry-run=client -o yaml | kubectl apply -f -
for overlay in "$ROOT"/manifests/overlays/*/; do
  kubectl apply --server-side --dry-run=server --force-conflicts -k "$overlay" >/dev/null \
    || fail "overlay $overlay refused"
  echo "ok: $(basename "$overlay")"
done

step "a rolling restart of revhook under a stream of pod creations refuses none"
failures=0
created=0
( for i in $(seq 1 400); do
    kubectl -n shop run "stream-$i" --image=registry.k8s.io/pause:3.9 --restart=Never >/dev/null 2>>"$TMP/stream-errors" \
      || echo "stream-$i" >>"$TMP/stream-failed"
    [[ -f "$TMP/stream-stop" ]] && break
    sleep 0.1
  done ) &
stream=$!
sleep 3
kubectl -n "$NS" rollout restart deployment revhook
wait_rollout "$NS" revhook
sleep 3
touch "$TMP/stream-stop"
wait "$stream"
[[ -f "$TMP/stream-failed" ]] && failures=$(wc -l <"$TMP/stream-failed")
created=$(kubectl -n shop get pods -o name | grep -c stream- || true)
[[ "$failures" == 0 ]] || fail "$failures pod creations refused during the rolling restart: $(cat "$TMP/stream-errors")"
echo "ok: $created pods created, none refused"
kubectl -n shop delete pods -l run --ignore-not-found >/dev/null

step "revhook tags remove says what it breaks, and removes only with --yes"
revhook tags set prod-next --revision asm-1-23 --mode inject
if out=$(revhook tags remove prod-next </dev/null 2>&1); then fail "removed without --yes: $out"; fi
grep -q "pass --yes" <<<"$out" || fail "tags remove: $out"
revhook tags remove prod-next --yes
if kubectl get mutatingwebhookconfiguration istio-revision-tag-prod-next >/dev/null 2>&1; then
  fail "tag prod-next still exists"
fi
echo "ok: removed"

echo
echo "e2e: all steps passed"
