{{/* The name every object has: "revhook" for a release named revhook (as the kustomize
manifests), else <release>-revhook, or fullnameOverride. */}}
{{- define "revhook.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "revhook.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Every object's labels: the kustomize base's two, then Helm's usual ones. */}}
{{- define "revhook.labels" -}}
app.kubernetes.io/name: {{ include "revhook.name" . }}
app.kubernetes.io/part-of: revhook
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The pods' selector (the kustomize base's, so a kustomize install can be taken over). */}}
{{- define "revhook.selectorLabels" -}}
app: {{ include "revhook.fullname" . }}
{{- end -}}

{{- define "revhook.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "revhook.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "revhook.secretName" -}}
{{- default (printf "%s-tls" (include "revhook.fullname" .)) .Values.certificates.secretName -}}
{{- end -}}

{{- define "revhook.configMapName" -}}
{{- default (printf "%s-config" (include "revhook.fullname" .)) .Values.revisions.existingConfigMap -}}
{{- end -}}

{{- define "revhook.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The Service's DNS names, which the serving certificate must carry. */}}
{{- define "revhook.dnsNames" -}}
{{- $svc := printf "%s.%s.svc" (include "revhook.fullname" .) .Release.Namespace -}}
{{- list $svc (printf "%s.cluster.local" $svc) | toJson -}}
{{- end -}}

{{- define "revhook.selfManaged" -}}
{{- if eq .Values.certificates.provider "self-managed" }}true{{ end -}}
{{- end -}}

{{- define "revhook.manageCaBundle" -}}
{{- if and (include "revhook.selfManaged" .) .Values.certificates.selfManaged.manageCaBundle }}true{{ end -}}
{{- end -}}

{{/* The generated serving Secret's data: the one already in the cluster when it has all three
keys (so upgrades keep the CA the webhooks trust), else a new CA and serving certificate. */}}
{{- define "revhook.generatedTls" -}}
{{- $sm := .Values.certificates.selfManaged -}}
{{/* Made once per render: the Secret and the webhook configurations share one CA. */}}
{{- if not (hasKey $sm "_generated") -}}
{{- $_ := set $sm "_generated" (include "revhook.makeTls" .) -}}
{{- end -}}
{{- $sm._generated -}}
{{- end -}}

{{- define "revhook.makeTls" -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "revhook.secretName" .) -}}
{{- $data := dict -}}
{{- if and $existing $existing.data -}}
{{- $data = $existing.data -}}
{{- end -}}
{{- if and (hasKey $data "ca.crt") (hasKey $data "tls.crt") (hasKey $data "tls.key") -}}
{{- dict "ca.crt" (index $data "ca.crt") "tls.crt" (index $data "tls.crt") "tls.key" (index $data "tls.key") | toJson -}}
{{- else -}}
{{- $sm := .Values.certificates.selfManaged -}}
{{- $ca := genCA (printf "%s-ca" (include "revhook.fullname" .)) (int $sm.caValidityDays) -}}
{{- $dns := include "revhook.dnsNames" . | fromJsonArray -}}
{{- $cert := genSignedCert (first $dns) nil $dns (int $sm.certValidityDays) $ca -}}
{{- dict "ca.crt" ($ca.Cert | b64enc) "tls.crt" ($cert.Cert | b64enc) "tls.key" ($cert.Key | b64enc) | toJson -}}
{{- end -}}
{{- end -}}

{{/* The caBundle the chart writes into the webhook configurations, or nothing: revhook
(manageCaBundle) or cert-manager's CA injector writes it, and the chart leaving the field out
keeps an upgrade from blanking what they wrote. */}}
{{- define "revhook.caBundle" -}}
{{- $sm := .Values.certificates.selfManaged -}}
{{- if include "revhook.selfManaged" . -}}
{{- if $sm.generate -}}
{{- index (include "revhook.generatedTls" . | fromJson) "ca.crt" -}}
{{- else if $sm.caBundle -}}
{{- $sm.caBundle -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Settings that cannot work together fail the render with what to change. */}}
{{- define "revhook.validate" -}}
{{- if and (include "revhook.manageCaBundle" .) (ne .Values.revisions.source "cluster") -}}
{{- fail "certificates.selfManaged.manageCaBundle needs revisions.source=cluster: with source=file set certificates.selfManaged.manageCaBundle=false and give caBundle or generate=true" -}}
{{- end -}}
{{- if and (eq .Values.revisions.source "file") (not .Values.revisions.config) (not .Values.revisions.existingConfigMap) -}}
{{- fail "revisions.source=file needs revisions.config or revisions.existingConfigMap" -}}
{{- end -}}
{{- if and (include "revhook.selfManaged" .) .Values.certificates.selfManaged.generate .Values.certificates.selfManaged.caBundle -}}
{{- fail "certificates.selfManaged: give caBundle or generate=true, not both" -}}
{{- end -}}
{{- /* The API server calls mutating webhook configurations in name order. */ -}}
{{- if and (eq .Values.mode "guard") (lt (include "revhook.fullname" .) "j") -}}
{{- fail (printf "mode=guard: the webhook configuration name %q sorts before Istio's (istio-*, istiod-*), and the API server calls them in name order: revhook must see pods after Istio's injector; set fullnameOverride (e.g. revhook)" (include "revhook.fullname" .)) -}}
{{- end -}}
{{- end -}}

{{/* A webhook's clientConfig: revhook's Service on 443 at `path`. Call with (list $ "/inject"). */}}
{{- define "revhook.clientConfig" -}}
{{- $ := index . 0 -}}
{{- $caBundle := include "revhook.caBundle" $ -}}
clientConfig:
  service:
    name: {{ include "revhook.fullname" $ }}
    namespace: {{ $.Release.Namespace }}
    path: {{ index . 1 }}
    port: 443
  {{- with $caBundle }}
  caBundle: {{ . }}
  {{- end }}
{{- end -}}

{{/* The namespaceSelector term that keeps system namespaces and revhook's own away. */}}
{{- define "revhook.notExcluded" -}}
- key: kubernetes.io/metadata.name
  operator: NotIn
  values:
    {{- range .Values.webhooks.excludedNamespaces }}
    - {{ . }}
    {{- end }}
    - {{ .Release.Namespace }}
{{- end -}}

{{/* What every injection webhook shares after its selectors. */}}
{{- define "revhook.injectPolicy" -}}
admissionReviewVersions:
  - v1
sideEffects: None
failurePolicy: {{ .Values.webhooks.inject.failurePolicy }}
timeoutSeconds: {{ .Values.webhooks.inject.timeoutSeconds }}
{{- /* guard: judged again should a later webhook change the pod (revhook never patches) */}}
reinvocationPolicy: {{ if eq .Values.mode "guard" }}IfNeeded{{ else }}Never{{ end }}
{{- end -}}

{{- define "revhook.validatePolicy" -}}
admissionReviewVersions:
  - v1
sideEffects: None
failurePolicy: {{ .Values.webhooks.validate.failurePolicy }}
timeoutSeconds: {{ .Values.webhooks.validate.timeoutSeconds }}
{{- end -}}

{{/* The cert-manager CA injector's annotation, with the cert-manager provider. */}}
{{- define "revhook.webhookAnnotations" -}}
{{- if eq .Values.certificates.provider "cert-manager" }}
annotations:
  cert-manager.io/inject-ca-from: {{ .Release.Namespace }}/{{ include "revhook.fullname" . }}-serving
{{- end }}
{{- end -}}

{{/* Pods are sent for CREATE only: injection happens once, when the pod is made. */}}
{{- define "revhook.podCreateRule" -}}
rules:
  - operations: ["CREATE"]
    apiGroups: [""]
    apiVersions: ["v1"]
    resources: ["pods"]
{{- end -}}
