{{/*
Helpers shared by every template; all are namespaced `vibexp.*`.
*/}}

{{/* Chart name, overridable. */}}
{{- define "vibexp.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Object-name prefix: "<release>-vibexp", or the release name alone when it already says vibexp. */}}
{{- define "vibexp.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* "vibexp-0.1.0" for the helm.sh/chart label. */}}
{{- define "vibexp.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "vibexp.labels" -}}
helm.sh/chart: {{ include "vibexp.chart" . }}
{{ include "vibexp.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: vibexp
{{- end }}

{{/* Labels that select the release's pods (never change them: Deployment selectors are immutable). */}}
{{- define "vibexp.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vibexp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of one component; call with (dict "ctx" $ "component" "api"). */}}
{{- define "vibexp.componentLabels" -}}
{{ include "vibexp.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Selector of one component's pods; call with (dict "ctx" $ "component" "api"). */}}
{{- define "vibexp.componentSelectorLabels" -}}
{{ include "vibexp.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Image reference; the tag defaults to the chart's appVersion. */}}
{{- define "vibexp.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Object names. */}}
{{- define "vibexp.api.fullname" -}}
{{- printf "%s-api" (include "vibexp.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "vibexp.operator.fullname" -}}
{{- printf "%s-operator" (include "vibexp.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "vibexp.api.serviceAccountName" -}}
{{- if .Values.api.serviceAccount.create }}
{{- default (include "vibexp.api.fullname" .) .Values.api.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.api.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "vibexp.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create }}
{{- default (include "vibexp.operator.fullname" .) .Values.operator.serviceAccount.name }}
{{- else }}
{{- required "operator.serviceAccount.name is required when operator.serviceAccount.create is false" .Values.operator.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Secret holding VIBEXP_SECRET_KEY: its own, or the database Secret. */}}
{{- define "vibexp.secretKeySecret" -}}
{{- default .Values.database.existingSecret .Values.secretKey.existingSecret }}
{{- end }}

{{/*
Host headers the MCP endpoint accepts: the API Service's names (short, namespaced, .svc, FQDN; each also with any
port), every Ingress host, and api.mcpAllowedHosts. Comma-separated, as VIBEXP_MCP_ALLOWED_HOSTS reads it.
*/}}
{{- define "vibexp.mcpAllowedHosts" -}}
{{- $svc := include "vibexp.api.fullname" . }}
{{- $ns := .Release.Namespace }}
{{- $hosts := list }}
{{- range $name := list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.%s" $svc $ns .Values.clusterDomain) }}
{{- $hosts = append $hosts $name }}
{{- $hosts = append $hosts (printf "%s:*" $name) }}
{{- end }}
{{- if .Values.api.ingress.enabled }}
{{- range .Values.api.ingress.hosts }}
{{- $hosts = append $hosts .host }}
{{- end }}
{{- end }}
{{- $hosts = concat $hosts .Values.api.mcpAllowedHosts }}
{{- $hosts | uniq | join "," }}
{{- end }}

{{/* Environment shared by every VibeXP container: settings and the two secrets. */}}
{{- define "vibexp.commonEnv" -}}
- name: VIBEXP_ENVIRONMENT
  value: {{ .Values.environment | quote }}
- name: VIBEXP_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
- name: VIBEXP_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ required "database.existingSecret is required: the Secret holding the database URL" .Values.database.existingSecret }}
      key: {{ .Values.database.existingSecretKey }}
- name: VIBEXP_SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "vibexp.secretKeySecret" . }}
      key: {{ .Values.secretKey.existingSecretKey }}
{{- /* Migrations run in the hook Job; no process migrates at start-up (several replicas would race). */}}
- name: VIBEXP_AUTO_MIGRATE
  value: "false"
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Pod-level settings shared by every pod. */}}
{{- define "vibexp.podCommon" -}}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* The /tmp emptyDir (the root filesystem is read-only). */}}
{{- define "vibexp.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- end }}

{{- define "vibexp.tmpVolumeMount" -}}
- name: tmp
  mountPath: /tmp
{{- end }}

{{/* prometheus.io/* pod annotations for annotation-based scraping; call with (dict "ctx" $ "port" 9090). */}}
{{- define "vibexp.scrapeAnnotations" -}}
{{- if .ctx.Values.metrics.podAnnotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .port | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- end }}

{{/*
The API's trusted proxies (VIBEXP_TRUSTED_PROXIES), comma-joined: api.trustedProxies when set, else the Ingress
path's default (api.ingress.trustedProxies) when the chart creates an Ingress, else none.
*/}}
{{- define "vibexp.api.trustedProxies" -}}
{{- if .Values.api.trustedProxies -}}
{{- join "," .Values.api.trustedProxies -}}
{{- else if .Values.api.ingress.enabled -}}
{{- join "," .Values.api.ingress.trustedProxies -}}
{{- end -}}
{{- end }}
