{{/* The prefix of every object's name. */}}
{{- define "mosaic.fullname" -}}
{{- if contains "mosaic" .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-mosaic" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "mosaic.labels" -}}
app.kubernetes.io/name: mosaic
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "mosaic.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "mosaic.controllersServiceAccount" -}}
{{- .Values.serviceAccounts.controllers | default (printf "%s-controllers" (include "mosaic.fullname" .)) -}}
{{- end -}}

{{- define "mosaic.agentServiceAccount" -}}
{{- .Values.serviceAccounts.agent | default (printf "%s-agent" (include "mosaic.fullname" .)) -}}
{{- end -}}

{{/*
Mosaic's Leases (the controllers' leader Lease and the agents' heartbeats) live
in mosaic-system whatever namespace the chart is installed in.
*/}}
{{- define "mosaic.leaseNamespace" -}}mosaic-system{{- end -}}
