#!/usr/bin/env bash
# Builds the oracle from an istio/istio source tree at the version to compare, e.g.
#   git -C <istio clone> archive 1.27.0 | tar -x -C /tmp/istio-1.27
#   tests/istio_golden/oracle/build.sh /tmp/istio-1.27 /tmp/oracle-1.27
#   REVHOOK_GOLDEN_BIN=/tmp/oracle-1.27 REVHOOK_GOLDEN_VERSIONS=1.27.0 \
#     cargo test --test istio_golden -- --ignored --nocapture
# Modules come from the Go module proxy; the first build takes 10 to 20 minutes.
set -euo pipefail
src=$(cd "$1" && pwd)
out=$2
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$src/tools/goldenoracle"
cp "$here/main.go" "$src/tools/goldenoracle/main.go"
cp "$here/inject_export.go.in" "$src/pkg/kube/inject/zz_oracle_export.go"
(cd "$src" && go build -o "$out.bin" ./tools/goldenoracle)
# istiod reads ENABLE_NATIVE_SIDECARS once, at start (up to 1.26 the template reads it too).
cat >"$out" <<WRAPPER
#!/usr/bin/env bash
native=false
args=("\$@")
for ((i = 0; i < \${#args[@]}; i++)); do
  [ "\${args[i]}" = --native-sidecars ] && native=\${args[i+1]}
done
ENABLE_NATIVE_SIDECARS=\$native exec "$out.bin" "\$@"
WRAPPER
chmod +x "$out"
echo "built $out"
