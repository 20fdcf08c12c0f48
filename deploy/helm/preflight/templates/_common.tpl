{{/*
Names, labels and small shared snippets. Per-component templates pass a
context dict: (dict "root" $ "name" "<component>" "c" <component values>).
*/}}

{{- define "preflight.components" -}}
intake benchmark clearinghouse notifier
{{- end -}}

{{- define "preflight.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "preflight.fullname" -}}
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

{{- define "preflight.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}


{{/* Object name of a component: <fullname>-<component>. Arg: (dict "root" $ "name" "intake"). */}}
{{- define "preflight.componentName" -}}
{{- printf "%s-%s" (include "preflight.fullname" .root) .name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels. Arg: (dict "root" $ "name" <component>). */}}
{{- define "preflight.selectorLabels" -}}
app.kubernetes.io/name: {{ include "preflight.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{/* Full label set. Arg: (dict "root" $ "name" <component>). */}}
{{- define "preflight.labels" -}}
{{ include "preflight.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: preflight
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ include "preflight.chart" .root }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Labels selecting every pod of the release (default-deny policy). */}}
{{- define "preflight.releaseSelector" -}}
app.kubernetes.io/name: {{ include "preflight.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Image reference. Arg: (dict "root" $ "image" <image values>). */}}
{{- define "preflight.image" -}}
{{- $registry := .root.Values.image.registry | trimSuffix "/" -}}
{{- $repo := .image.repository -}}
{{- if $registry -}}{{- $repo = printf "%s/%s" $registry $repo -}}{{- end -}}
{{- if .image.digest -}}
{{- printf "%s@%s" $repo .image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (.image.tag | default .root.Values.image.tag | default .root.Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/* Secret of a component. Arg: (dict "root" $ "name" <component> "c" <values>). */}}
{{- define "preflight.secretName" -}}
{{- .c.existingSecret | default (include "preflight.componentName" .) -}}
{{- end -}}

{{- define "preflight.workerSecretName" -}}
{{- .Values.benchmark.worker.existingSecret | default (printf "%s-worker" (include "preflight.fullname" .)) -}}
{{- end -}}

{{- define "preflight.jobNamespace" -}}
{{- .Values.benchmark.jobNamespace | default .Release.Namespace -}}
{{- end -}}

{{- define "preflight.workerServiceAccountName" -}}
{{- printf "%s-worker" (include "preflight.fullname" .) -}}
{{- end -}}

{{/* intake's gRPC address as seen from other pods (FQDN: workers may run in another namespace). */}}
{{- define "preflight.identityTarget" -}}
{{- if .Values.identity.target -}}
{{- .Values.identity.target -}}
{{- else -}}
{{- printf "%s.%s.svc:%d" (include "preflight.componentName" (dict "root" . "name" "intake")) .Release.Namespace (int .Values.intake.grpcPort) -}}
{{- end -}}
{{- end -}}

{{- define "preflight.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext -}}
{{- end -}}

{{- define "preflight.containerSecurityContext" -}}
{{- toYaml .Values.containerSecurityContext -}}
{{- end -}}

{{/* Volumes shared by every Preflight pod: /tmp and the Kafka CA. Arg: root. */}}
{{- define "preflight.commonVolumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- if .Values.kafka.tls.caSecret.name }}
- name: kafka-ca
  secret:
    secretName: {{ .Values.kafka.tls.caSecret.name }}
    items:
      - key: {{ .Values.kafka.tls.caSecret.key }}
        path: ca.crt
{{- end }}
{{- end -}}

{{- define "preflight.commonVolumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if .Values.kafka.tls.caSecret.name }}
- name: kafka-ca
  mountPath: /etc/preflight/kafka-ca
  readOnly: true
{{- end }}
{{- end -}}

{{/* Checks that fail rendering for combinations the schema cannot express. */}}
{{- define "preflight.validate" -}}
{{- $v := .Values -}}
{{- if and (hasPrefix "SASL" $v.kafka.securityProtocol) (not $v.kafka.sasl.username) -}}
{{- range $n := splitList " " (include "preflight.components" .) -}}
{{- $c := index $v $n -}}
{{- if and $c.enabled (not (and $c.kafkaCredentials $c.kafkaCredentials.username)) -}}
{{- fail (printf "kafka.securityProtocol=%s needs kafka.sasl.username (or %s.kafkaCredentials.username)" $v.kafka.securityProtocol $n) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and (hasPrefix "SASL" $v.kafka.securityProtocol) (not $v.kafka.sasl.passwordSecret.name) -}}
{{- fail "kafka.securityProtocol=SASL_* needs kafka.sasl.passwordSecret.name" -}}
{{- end -}}
{{- if and $v.telemetry.serviceMonitor.enabled (not $v.telemetry.metrics.enabled) -}}
{{- fail "telemetry.serviceMonitor.enabled needs telemetry.metrics.enabled" -}}
{{- end -}}
{{- if and $v.benchmark.worker.kueue.enabled (not $v.benchmark.worker.kueue.queueName) -}}
{{- fail "benchmark.worker.kueue.enabled needs benchmark.worker.kueue.queueName" -}}
{{- end -}}
{{- if and (not $v.intake.enabled) (not $v.identity.target) -}}
{{- if or $v.benchmark.enabled $v.clearinghouse.enabled $v.notifier.enabled -}}
{{- fail "intake.enabled=false needs identity.target (the other services validate tokens with intake)" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* One NetworkPolicy egress rule from {to: [peers], ports: [ports]}; no peers = any destination on those ports. */}}
{{- define "preflight.egressRule" -}}
- ports:
    {{- toYaml .ports | nindent 4 }}
  {{- with .to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}
