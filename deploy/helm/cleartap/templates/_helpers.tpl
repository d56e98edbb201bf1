{{- define "cleartap.name" -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "cleartap.labels" -}}
app.kubernetes.io/name: cleartap
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "cleartap.selector" -}}
app.kubernetes.io/name: cleartap
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "cleartap.serviceAccount" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "cleartap.name" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding the fleet's redaction key. */}}
{{- define "cleartap.tokenKeySecret" -}}
{{- default (printf "%s-token-key" (include "cleartap.name" .)) .Values.tokenKey.secretName -}}
{{- end }}
