{{- define "maestro.labels" -}}
app.kubernetes.io/name: maestro
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}

{{- define "maestro.selector" -}}
app.kubernetes.io/name: maestro
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}
