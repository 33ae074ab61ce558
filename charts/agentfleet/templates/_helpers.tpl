{{/* Names, labels and images shared by every template. */}}

{{- define "agentfleet.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "agentfleet.fullname" -}}
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

{{- define "agentfleet.operator.fullname" -}}
{{- printf "%s-operator" (include "agentfleet.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "agentfleet.redis.fullname" -}}
{{- printf "%s-redis" (include "agentfleet.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "agentfleet.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "agentfleet.operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "agentfleet.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every object; the selector labels are a subset and never change. */}}
{{- define "agentfleet.labels" -}}
helm.sh/chart: {{ include "agentfleet.chart" . }}
app.kubernetes.io/part-of: agentfleet
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{- define "agentfleet.operator.selectorLabels" -}}
app.kubernetes.io/name: agentfleet-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "agentfleet.operator.labels" -}}
{{ include "agentfleet.labels" . }}
{{ include "agentfleet.operator.selectorLabels" . }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "agentfleet.redis.selectorLabels" -}}
app.kubernetes.io/name: agentfleet-redis
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "agentfleet.redis.labels" -}}
{{ include "agentfleet.labels" . }}
{{ include "agentfleet.redis.selectorLabels" . }}
app.kubernetes.io/component: state
{{- end -}}

{{/* repository:tag, or repository@digest; the tag defaults to the chart's appVersion.
     Call with (dict "image" .Values.x.image "root" $). */}}
{{- define "agentfleet.image" -}}
{{- $image := .image -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $image.repository $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $image.repository (default .root.Chart.AppVersion $image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Is Redis the state backend, and does this chart run it? */}}
{{- define "agentfleet.redis.bundled" -}}
{{- if and (eq .Values.state.backend "redis") (eq .Values.redis.mode "bundled") -}}true{{- end -}}
{{- end -}}

{{/* The Redis URL runtime pods get. $(VAR) references are expanded by Kubernetes from
     the operator container's env (AGENTFLEET_REDIS_PASSWORD / AGENTFLEET_REDIS_URL, set
     from a Secret before AGENTFLEET_OPERATOR_RUNTIME_ENV). */}}
{{- define "agentfleet.redis.url" -}}
{{- if eq .Values.redis.mode "bundled" -}}
{{- $host := printf "%s.%s.svc.%s:6379" (include "agentfleet.redis.fullname" .) .Release.Namespace .Values.clusterDomain -}}
{{- if .Values.redis.bundled.auth.enabled -}}
{{- printf "redis://:$(AGENTFLEET_REDIS_PASSWORD)@%s/0" $host -}}
{{- else -}}
{{- printf "redis://%s/0" $host -}}
{{- end -}}
{{- else if .Values.redis.external.existingSecret -}}
$(AGENTFLEET_REDIS_URL)
{{- else -}}
{{- .Values.redis.external.url -}}
{{- end -}}
{{- end -}}

{{/* AGENTFLEET_OPERATOR_RUNTIME_ENV: NAME=value pairs, comma-separated, for every runtime
     container the operator renders. */}}
{{- define "agentfleet.runtimeEnv" -}}
{{- $pairs := list (printf "AGENTFLEET_LOG_LEVEL=%s" .Values.runtime.logLevel) -}}
{{- $pairs = append $pairs (printf "AGENTFLEET_STATE__BACKEND=%s" .Values.state.backend) -}}
{{- if eq .Values.state.backend "redis" -}}
{{- $pairs = append $pairs (printf "AGENTFLEET_STATE__REDIS_URL=%s" (include "agentfleet.redis.url" .)) -}}
{{- end -}}
{{- $pairs = append $pairs (printf "AGENTFLEET_AUTH__MODE=%s" .Values.runtime.auth.mode) -}}
{{- with .Values.runtime.auth.bootstrapTokenFile -}}
{{- $pairs = append $pairs (printf "AGENTFLEET_AUTH__BOOTSTRAP_TOKEN_FILE=%s" .) -}}
{{- end -}}
{{- range $flag, $on := .Values.runtime.featureFlags -}}
{{- $pairs = append $pairs (printf "AGENTFLEET_RESILIENCE__FLAGS__%s=%t" (upper (snakecase $flag)) $on) -}}
{{- end -}}
{{- range $name, $value := .Values.runtime.env -}}
{{- /* YAML numbers arrive as float64: print whole ones as integers, never 1e+06. */ -}}
{{- if and (kindIs "float64" $value) (eq (float64 (int64 $value)) $value) -}}
{{- $value = int64 $value -}}
{{- end -}}
{{- $pairs = append $pairs (printf "%s=%v" $name $value) -}}
{{- end -}}
{{- join "," $pairs -}}
{{- end -}}
