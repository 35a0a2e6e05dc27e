{{/* The base name of every object of the release. */}}
{{- define "mcpgate.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels of every object. */}}
{{- define "mcpgate.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mcpgate
{{- end -}}

{{/* Labels that select the operator's pods; never change them, Deployment selectors are immutable. */}}
{{- define "mcpgate.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: manager
{{- end -}}

{{/* An image reference from {repository, tag, digest}; the tag defaults to the chart's appVersion. */}}
{{- define "mcpgate.image" -}}
{{- $image := index . 0 -}}
{{- $chart := index . 1 -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $image.repository $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $image.repository (default $chart.AppVersion $image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The manager's permissions: the rules generated from the controller's RBAC markers. */}}
{{- define "mcpgate.managerRules" -}}
{{- $role := .Files.Get "files/rbac/manager-role.yaml" | fromYaml -}}
{{- if not $role.rules -}}
{{- fail "files/rbac/manager-role.yaml holds no rules: run make manifests" -}}
{{- end -}}
{{- toYaml $role.rules -}}
{{- end -}}

{{/* Labels that select the broker's pods; immutable like the manager's. */}}
{{- define "mcpgate.brokerSelectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: broker
{{- end -}}

{{/* The broker's Service, ServiceAccount and Deployment name. */}}
{{- define "mcpgate.brokerName" -}}
{{- printf "%s-broker" (include "mcpgate.fullname" .) -}}
{{- end -}}

{{/* The TLS Secret the operator creates and rotates for the broker. */}}
{{- define "mcpgate.brokerTLSSecret" -}}
{{- printf "%s-broker-tls" (include "mcpgate.fullname" .) -}}
{{- end -}}

{{/* The URL gateways reach the broker at: its Service's cluster DNS name,
which the operator's serving certificate names. */}}
{{- define "mcpgate.brokerURL" -}}
{{- printf "https://%s.%s.svc:8443" (include "mcpgate.brokerName" .) .Release.Namespace -}}
{{- end -}}
